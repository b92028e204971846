//! What an `OtelMiddleware` was built with.

use opentelemetry::global::ObjectSafeTracerProvider;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::SpanRef;
use otel_http_conventions::{
    CommonOptions, HeaderCapture, HeaderSide, KnownMethods, PropagatorChoice, Resolved,
    SensitiveQueryParameters, Side,
};
use std::fmt;
use std::sync::Arc;

pub(crate) type UrlPredicate = dyn Fn(&reqwest::Url) -> bool + Send + Sync;
pub(crate) type RequestPredicate = dyn Fn(&reqwest::Request) -> bool + Send + Sync;
pub(crate) type SpanNameFn = dyn Fn(&reqwest::Request, Option<&str>) -> String + Send + Sync;
pub(crate) type RequestHook = dyn Fn(&SpanRef<'_>, &reqwest::Request) + Send + Sync;
pub(crate) type ResponseHook = dyn Fn(&SpanRef<'_>, &reqwest::Response) + Send + Sync;

pub(crate) struct Config {
    pub(crate) common: Resolved,
    pub(crate) propagate_to: Option<Box<UrlPredicate>>,
    pub(crate) filter: Option<Box<RequestPredicate>>,
    pub(crate) span_name: Option<Box<SpanNameFn>>,
    pub(crate) request_hook: Option<Box<RequestHook>>,
    pub(crate) response_hook: Option<Box<ResponseHook>>,
}

fn scope() -> opentelemetry::InstrumentationScope {
    otel_http_conventions::scope(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// Builds an [`OtelMiddleware`](crate::OtelMiddleware); mirrors
/// `otel_tower::OtelLayerBuilder`. Every method sets one behaviour.
///
/// ```
/// use otel_reqwest::OtelMiddleware;
///
/// let middleware = OtelMiddleware::builder()
///     // Keep our trace context and baggage away from third parties.
///     .propagate_to(|url| url.host_str().is_some_and(|h| h.ends_with(".internal")))
///     .capture_response_headers(["x-request-id"])
///     .build();
/// # let _ = middleware;
/// ```
#[must_use]
#[derive(Default)]
pub struct OtelMiddlewareBuilder {
    common: CommonOptions,
    propagate_to: Option<Box<UrlPredicate>>,
    filter: Option<Box<RequestPredicate>>,
    span_name: Option<Box<SpanNameFn>>,
    request_hook: Option<Box<RequestHook>>,
    response_hook: Option<Box<ResponseHook>>,
}

impl fmt::Debug for OtelMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelMiddlewareBuilder")
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl OtelMiddlewareBuilder {
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

    /// The propagator that writes the context into outgoing headers.
    /// Default: the global propagator, read per request.
    pub fn propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.common.propagator = PropagatorChoice::Fixed(Arc::new(propagator));
        self
    }

    /// Send trace context and baggage only to URLs for which `allow` returns
    /// `true`; other requests still get a span. Default: everywhere.
    pub fn propagate_to<F>(mut self, allow: F) -> Self
    where
        F: Fn(&reqwest::Url) -> bool + Send + Sync + 'static,
    {
        self.propagate_to = Some(Box::new(allow));
        self
    }

    /// Instrument only requests for which `filter` returns `true`; others
    /// get no span, no metrics and no propagation.
    pub fn filter<F>(mut self, filter: F) -> Self
    where
        F: Fn(&reqwest::Request) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Names spans with `name(request, url_template)` instead of `{method}`
    /// / `{method} {url.template}`. Keep it low-cardinality.
    pub fn span_name<F>(mut self, name: F) -> Self
    where
        F: Fn(&reqwest::Request, Option<&str>) -> String + Send + Sync + 'static,
    {
        self.span_name = Some(Box::new(name));
        self
    }

    /// Records these request headers as `http.request.header.<name>`.
    /// Default: `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`,
    /// else none.
    pub fn capture_request_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.common.request_headers = Some(HeaderCapture::new(HeaderSide::Request, names));
        self
    }

    /// Records these response headers as `http.response.header.<name>`.
    /// Default: `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE`,
    /// else none.
    pub fn capture_response_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.common.response_headers = Some(HeaderCapture::new(HeaderSide::Response, names));
        self
    }

    /// Query keys whose values are recorded as `REDACTED` in `url.full` (and in
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

    /// The methods recorded as themselves; others become `_OTHER`. Replaces
    /// the defaults. Default: `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`, else
    /// the conventions' list.
    pub fn known_methods<I, M>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: AsRef<str>,
    {
        self.common.known_methods = Some(KnownMethods::new(methods));
        self
    }

    /// Pass `server.address` and `url.full` to the sampler at span creation
    /// too. Default `false`: the sampler sees `http.request.method` and
    /// `server.port`, and strings are built only for sampled requests.
    pub fn sampling_attributes(mut self, enabled: bool) -> Self {
        self.common.sampling_attributes = enabled;
        self
    }

    /// Record `http.client.active_requests` (opt-in).
    pub fn active_requests(mut self, enabled: bool) -> Self {
        self.common.active_requests = enabled;
        self
    }

    /// Record `http.client.request.body.size` (bodies held in memory) and
    /// `http.client.response.body.size` (from `Content-Length`; the span
    /// ends before the body is read), and the matching span attributes.
    pub fn body_size(mut self, enabled: bool) -> Self {
        self.common.body_size = enabled;
        self
    }

    /// Calls `hook` with the client span and the outgoing request, when the
    /// span is recording, after context injection.
    pub fn request_hook<F>(mut self, hook: F) -> Self
    where
        F: Fn(&SpanRef<'_>, &reqwest::Request) + Send + Sync + 'static,
    {
        self.request_hook = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with the client span and the response, when the span is
    /// recording.
    pub fn response_hook<F>(mut self, hook: F) -> Self
    where
        F: Fn(&SpanRef<'_>, &reqwest::Response) + Send + Sync + 'static,
    {
        self.response_hook = Some(Box::new(hook));
        self
    }

    /// Builds the middleware, resolving the tracer and meter once.
    pub fn build(self) -> crate::OtelMiddleware {
        crate::OtelMiddleware {
            config: Arc::new(Config {
                common: self.common.resolve(Side::Client, scope()),
                propagate_to: self.propagate_to,
                filter: self.filter,
                span_name: self.span_name,
                request_hook: self.request_hook,
                response_hook: self.response_hook,
            }),
        }
    }
}
