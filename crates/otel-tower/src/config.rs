//! What an `OtelLayer` was built with, shared by all its services.

use http::{Extensions, HeaderMap, Method, StatusCode, Uri, Version};
use opentelemetry::global::ObjectSafeTracerProvider;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::SpanRef;
use otel_http_conventions::rpc::RpcMetrics;
use otel_http_conventions::{
    CommonOptions, HeaderCapture, HeaderSide, KnownMethods, PropagatorChoice, Resolved,
    SensitiveQueryParameters, Side, TrustedProxies,
};
use std::fmt;
use std::sync::Arc;

/// What hooks and predicates see of a request: its head, never its body.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target.
    pub uri: &'a Uri,
    /// The HTTP version.
    pub version: Version,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request extensions (axum's `MatchedPath`, `ConnectInfo`, ...).
    pub extensions: &'a Extensions,
}

/// What a response hook sees of a response: its head, never its body.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResponseHead<'a> {
    /// The response status.
    pub status: StatusCode,
    /// The HTTP version.
    pub version: Version,
    /// The response headers.
    pub headers: &'a HeaderMap,
    /// The response extensions.
    pub extensions: &'a Extensions,
}

pub(crate) type Predicate = dyn Fn(&RequestHead<'_>) -> bool + Send + Sync;
pub(crate) type SpanNameFn = dyn Fn(&RequestHead<'_>, Option<&str>) -> String + Send + Sync;
pub(crate) type RequestHook = dyn Fn(&SpanRef<'_>, &RequestHead<'_>) + Send + Sync;
pub(crate) type ResponseHook = dyn Fn(&SpanRef<'_>, &ResponseHead<'_>) + Send + Sync;

pub(crate) struct Config {
    pub(crate) common: Resolved,
    pub(crate) filter: Option<Box<Predicate>>,
    pub(crate) public_endpoint: Option<Box<Predicate>>,
    pub(crate) span_name: Option<Box<SpanNameFn>>,
    pub(crate) request_hook: Option<Box<RequestHook>>,
    pub(crate) response_hook: Option<Box<ResponseHook>>,
    pub(crate) forwarding: Forwarding,
    /// The gRPC services the server serves, when told.
    pub(crate) grpc_services: Option<hashbrown::HashSet<Box<str>>>,
    /// The captured request headers' names, as gRPC request metadata.
    pub(crate) grpc_request_metadata: HeaderCapture,
    /// The captured response headers' names, as gRPC response metadata.
    pub(crate) grpc_response_metadata: HeaderCapture,
    /// `rpc.server.call.duration`, made with the first gRPC call.
    rpc_metrics: std::sync::OnceLock<RpcMetrics>,
    /// gRPC methods a response has shown the server serves.
    pub(crate) confirmed_methods: ConfirmedMethods,
}

/// How many gRPC methods [`ConfirmedMethods`] remembers.
pub(crate) const MAX_CONFIRMED_METHODS: usize = 1024;
/// The longest method name [`ConfirmedMethods`] remembers.
pub(crate) const MAX_CONFIRMED_METHOD_LEN: usize = 256;

/// The gRPC methods a real gRPC response has shown the server serves, so
/// that a later call of one that ends before any response (cancelled, or
/// past its deadline) keeps its name, and so that calls of a known method
/// name their spans without a copy. At most [`MAX_CONFIRMED_METHODS`]
/// names of at most [`MAX_CONFIRMED_METHOD_LEN`] bytes, kept for the life
/// of the process (a bounded 256 KiB at most): only methods a handler
/// answered get here, never a path a caller made up.
#[derive(Default)]
pub(crate) struct ConfirmedMethods(std::sync::RwLock<hashbrown::HashSet<&'static str>>);

impl ConfirmedMethods {
    /// The remembered copy of `method`, if it is confirmed.
    pub(crate) fn get(&self, method: &str) -> Option<&'static str> {
        self.0.read().ok()?.get(method).copied()
    }

    /// Remembers `method`, while there is room.
    pub(crate) fn confirm(&self, method: &str) {
        if method.len() > MAX_CONFIRMED_METHOD_LEN {
            return;
        }
        let full = match self.0.read() {
            Ok(m) if m.contains(method) => return,
            Ok(m) => m.len() >= MAX_CONFIRMED_METHODS,
            Err(_) => return,
        };
        if !full {
            if let Ok(mut m) = self.0.write() {
                if m.len() < MAX_CONFIRMED_METHODS && !m.contains(method) {
                    m.insert(Box::leak(Box::<str>::from(method)));
                }
            }
        }
    }
}

impl Config {
    /// The RPC instruments, made the first time a gRPC call needs them: a
    /// server that serves none shows no RPC metric.
    pub(crate) fn rpc_metrics(&self) -> &RpcMetrics {
        self.rpc_metrics
            .get_or_init(|| RpcMetrics::new(&self.common.meter, Side::Server))
    }
}

/// Whose `Forwarded` / `X-Forwarded-*` headers are believed.
#[derive(Clone, Debug)]
pub(crate) enum Forwarding {
    /// Everyone's (the conventions' default).
    All,
    /// No one's.
    Ignore,
    /// Only when the peer is one of these proxies.
    Trusted(TrustedProxies),
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("common", &self.common)
            .field("filter", &self.filter.is_some())
            .field("public_endpoint", &self.public_endpoint.is_some())
            .field("span_name", &self.span_name.is_some())
            .field("forwarding", &self.forwarding)
            .finish_non_exhaustive()
    }
}

fn scope() -> opentelemetry::InstrumentationScope {
    otel_http_conventions::scope(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// Builds an [`OtelLayer`](crate::OtelLayer). Every method sets one behaviour;
/// what is not set keeps the default described on the method.
///
/// ```
/// use otel_tower::OtelLayer;
///
/// let layer = OtelLayer::builder()
///     .filter(|req| req.uri.path() != "/health")
///     .capture_request_headers(["x-request-id"])
///     .active_requests(true)
///     .build();
/// # let _ = layer;
/// ```
#[must_use]
pub struct OtelLayerBuilder {
    common: CommonOptions,
    filter: Option<Box<Predicate>>,
    public_endpoint: Option<Box<Predicate>>,
    span_name: Option<Box<SpanNameFn>>,
    request_hook: Option<Box<RequestHook>>,
    response_hook: Option<Box<ResponseHook>>,
    forwarding: Forwarding,
    grpc_services: Option<hashbrown::HashSet<Box<str>>>,
}

impl fmt::Debug for OtelLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelLayerBuilder")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl Default for OtelLayerBuilder {
    fn default() -> Self {
        OtelLayerBuilder {
            common: CommonOptions::default(),
            filter: None,
            public_endpoint: None,
            span_name: None,
            request_hook: None,
            response_hook: None,
            forwarding: Forwarding::All,
            grpc_services: None,
        }
    }
}

impl OtelLayerBuilder {
    /// The tracer provider spans come from. Default: the global one, as it
    /// is when [`build`](Self::build) runs.
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: ObjectSafeTracerProvider + ?Sized,
    {
        self.common.set_tracer_provider(provider, scope());
        self
    }

    /// The meter provider metrics come from. Default: the global one, as it
    /// is when [`build`](Self::build) runs.
    pub fn meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: MeterProvider + ?Sized,
    {
        self.common.set_meter_provider(provider, scope());
        self
    }

    /// The propagator that reads the caller's context from request headers.
    /// Default: the global propagator, looked up per request so that one
    /// installed after the layer was built is still used.
    pub fn propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.common.propagator = PropagatorChoice::Fixed(Arc::new(propagator));
        self
    }

    /// Instrument only the requests for which `filter` returns `true`. The
    /// others get no span and no metrics (health checks, for example).
    pub fn filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Names spans with `name(request, route)` instead of the conventions'
    /// `{method} {route}`. Keep the result low-cardinality: never put the raw
    /// path or ids in it.
    pub fn span_name<F>(mut self, name: F) -> Self
    where
        F: Fn(&RequestHead<'_>, Option<&str>) -> String + Send + Sync + 'static,
    {
        self.span_name = Some(Box::new(name));
        self
    }

    /// Treats every caller as untrusted: each request starts a new trace,
    /// linked to (not parented by) the incoming trace context, and incoming
    /// baggage is dropped. For services on the public internet.
    pub fn public_endpoint(self) -> Self {
        self.public_endpoint_fn(|_| true)
    }

    /// Like [`public_endpoint`](Self::public_endpoint) for the requests where
    /// `f` returns `true` (for example, those without an internal token).
    pub fn public_endpoint_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static,
    {
        self.public_endpoint = Some(Box::new(f));
        self
    }

    /// Records these request headers as `http.request.header.<name>`, and
    /// on gRPC calls as `rpc.request.metadata.<name>` (binary `-bin` keys
    /// never). Default: the comma-separated list in
    /// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`, else none.
    pub fn capture_request_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.common.request_headers = Some(HeaderCapture::new(HeaderSide::Request, names));
        self
    }

    /// Records these response headers as `http.response.header.<name>`, and
    /// on gRPC calls, from the headers and the trailers, as
    /// `rpc.response.metadata.<name>`. Default: the comma-separated list in
    /// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE`, else none.
    pub fn capture_response_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.common.response_headers = Some(HeaderCapture::new(HeaderSide::Response, names));
        self
    }

    /// Query keys whose values are recorded as `REDACTED` in `url.query` (and in
    /// any URL an error message quotes), on top of the default list
    /// ([`DEFAULT_SENSITIVE_QUERY_PARAMETERS`](otel_http_conventions::DEFAULT_SENSITIVE_QUERY_PARAMETERS):
    /// the conventions' signature keys and the usual credential names).
    /// Keys match after percent-decoding, without regard to ASCII case.
    pub fn sensitive_query_parameters<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.common.sensitive_query = self.common.sensitive_query.and(keys);
        self
    }

    /// Whether a trace started here (no incoming or current context) carries
    /// Trace Context Level 2's random flag in every `traceparent` sent for
    /// it. Default: yes, as the SDK's default id generator is random, unless
    /// the provider is an `InstalledTracerProvider` (as otel-setup installs
    /// the global one) whose id generator is another. A provider given with
    /// `tracer_provider` cannot be asked: set `false` if its trace ids are
    /// not random.
    pub fn random_trace_ids(mut self, random: bool) -> Self {
        self.common.random_trace_ids = Some(random);
        self
    }

    /// Exactly these sensitive query keys, replacing the default list; pass
    /// [`CONVENTIONS_SENSITIVE_QUERY_PARAMETERS`](otel_http_conventions::CONVENTIONS_SENSITIVE_QUERY_PARAMETERS)
    /// for the semantic conventions' own, or nothing to redact no value.
    pub fn replace_sensitive_query_parameters<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.common.sensitive_query = SensitiveQueryParameters::new(keys);
        self
    }

    /// The methods recorded as themselves; any other becomes `_OTHER`.
    /// Replaces the defaults. Default: `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`
    /// if set, else the conventions' list.
    pub fn known_methods<I, M>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: AsRef<str>,
    {
        self.common.known_methods = Some(KnownMethods::new(methods));
        self
    }

    /// Whether `Forwarded` and `X-Forwarded-*` headers are read for
    /// `client.address`, `server.address`, `server.port` and `url.scheme`.
    /// Default `true`, as the conventions ask; turn it off when no proxy in
    /// front of the service overwrites them, so callers cannot choose what is
    /// recorded.
    pub fn trust_forwarded_headers(mut self, trust: bool) -> Self {
        self.forwarding = if trust {
            Forwarding::All
        } else {
            Forwarding::Ignore
        };
        self
    }

    /// Believe `Forwarded` and `X-Forwarded-*` only from these proxies: when
    /// the connection's peer is one of them, `client.address` is the
    /// right-most address in the forwarding chain that is not a trusted
    /// proxy, and the forwarded host and scheme are used; from any other peer
    /// the headers are ignored and the peer is the client. Needs the peer
    /// address (axum's `ConnectInfo<SocketAddr>`, or a `SocketAddr`
    /// extension); without it nothing forwarded is believed.
    ///
    /// ```
    /// use otel_http_conventions::TrustedProxies;
    ///
    /// let layer = otel_tower::OtelLayer::builder()
    ///     .trusted_proxies(TrustedProxies::new(["10.0.0.0/8"]).expect("valid CIDR"))
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.forwarding = Forwarding::Trusted(proxies);
        self
    }

    /// Pass every sampling-relevant attribute (`url.path`, `url.query`,
    /// `server.address`, `server.port`, `client.address`,
    /// `user_agent.original`, captured request headers) to the sampler at
    /// span creation. Default `false`: the sampler sees
    /// `http.request.method` and `url.scheme`, and the rest is built only
    /// for sampled requests. Turn this on for a sampler that decides by
    /// path, host or header.
    pub fn sampling_attributes(mut self, enabled: bool) -> Self {
        self.common.sampling_attributes = enabled;
        self
    }

    /// Record `http.server.active_requests` (opt-in in the conventions).
    pub fn active_requests(mut self, enabled: bool) -> Self {
        self.common.active_requests = enabled;
        self
    }

    /// Record `http.server.request.body.size` and
    /// `http.server.response.body.size` (opt-in), and the matching span
    /// attributes. The request size is its `Content-Length` (requests
    /// without one are not recorded); the response size is the bytes the
    /// body actually produced, counted as it streams.
    pub fn body_size(mut self, enabled: bool) -> Self {
        self.common.body_size = enabled;
        self
    }

    /// Calls `hook` with the server span and the request head when the span
    /// is recording (never for unsampled requests).
    pub fn request_hook<F>(mut self, hook: F) -> Self
    where
        F: Fn(&SpanRef<'_>, &RequestHead<'_>) + Send + Sync + 'static,
    {
        self.request_hook = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with the server span and the response head when the span
    /// is recording.
    pub fn response_hook<F>(mut self, hook: F) -> Self
    where
        F: Fn(&SpanRef<'_>, &ResponseHead<'_>) + Send + Sync + 'static,
    {
        self.response_hook = Some(Box::new(hook));
        self
    }

    /// The gRPC services this server serves, by their full names
    /// (`inventory.v1.Inventory`; a tonic server's `NamedService::NAME`).
    /// A call to any other service is recorded with `rpc.method = _OTHER`,
    /// its path in `rpc.method_original`, and the span named `grpc`, from
    /// the start (so the sampler sees that too).
    ///
    /// Default: the layer decides at the end of each call. A method that a
    /// gRPC response answered is believed, unless the answer is the
    /// trailers-only `UNIMPLEMENTED` without a message that tonic sends for
    /// a path it has no route for, and is remembered (up to 1024 methods).
    /// A call that ends before any gRPC response (cancelled, past its
    /// deadline) keeps its method only if one was remembered, else gets
    /// `_OTHER`. The sampler sees the method as the span name until then.
    /// Either way no caller can create exported span names or metric series
    /// at will.
    ///
    /// ```
    /// use otel_tower::OtelLayer;
    ///
    /// let layer = OtelLayer::builder()
    ///     .grpc_services(["inventory.v1.Inventory"])
    ///     .build();
    /// # let _ = layer;
    /// ```
    pub fn grpc_services<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.grpc_services = Some(names.into_iter().map(|n| n.as_ref().into()).collect());
        self
    }

    /// Builds the layer, resolving the tracer and meter once.
    pub fn build(self) -> crate::OtelLayer {
        let common = self.common.resolve(Side::Server, scope());
        let grpc_request_metadata = common.request_headers.for_side(HeaderSide::RpcRequest);
        let grpc_response_metadata = common.response_headers.for_side(HeaderSide::RpcResponse);
        let config = Config {
            common,
            filter: self.filter,
            public_endpoint: self.public_endpoint,
            span_name: self.span_name,
            request_hook: self.request_hook,
            response_hook: self.response_hook,
            forwarding: self.forwarding,
            grpc_services: self.grpc_services,
            grpc_request_metadata,
            grpc_response_metadata,
            rpc_metrics: std::sync::OnceLock::new(),
            confirmed_methods: ConfirmedMethods::default(),
        };
        crate::OtelLayer {
            config: Arc::new(config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_methods_are_bounded_in_count_and_length() {
        let confirmed = ConfirmedMethods::default();
        for n in 0..2 * MAX_CONFIRMED_METHODS {
            confirmed.confirm(&format!("pkg.Service/Method{n}"));
        }
        let kept = (0..2 * MAX_CONFIRMED_METHODS)
            .filter(|n| confirmed.get(&format!("pkg.Service/Method{n}")).is_some())
            .count();
        assert_eq!(kept, MAX_CONFIRMED_METHODS);
        let long = format!("pkg.Service/{}", "x".repeat(MAX_CONFIRMED_METHOD_LEN));
        let fresh = ConfirmedMethods::default();
        fresh.confirm(&long);
        assert_eq!(fresh.get(&long), None, "too long to keep");
        fresh.confirm("pkg.Service/Method");
        fresh.confirm("pkg.Service/Method");
        let kept = fresh.get("pkg.Service/Method").expect("kept");
        assert!(
            std::ptr::eq(kept, fresh.get("pkg.Service/Method").unwrap()),
            "one copy"
        );
    }
}
