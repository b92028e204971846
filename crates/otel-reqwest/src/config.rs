//! What an `OtelMiddleware` was built with.

use opentelemetry::global::{self, BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::{Histogram, Meter, MeterProvider, UpDownCounter};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::SpanRef;
use opentelemetry::InstrumentationScope;
use otel_http_conventions::semconv::metric;
use otel_http_conventions::{
    header_env, HeaderCapture, HeaderSide, KnownMethods, SensitiveQueryParameters,
    DURATION_BUCKETS, SCHEMA_URL,
};
use std::fmt;
use std::sync::Arc;

pub(crate) type UrlPredicate = dyn Fn(&reqwest::Url) -> bool + Send + Sync;
pub(crate) type RequestPredicate = dyn Fn(&reqwest::Request) -> bool + Send + Sync;
pub(crate) type SpanNameFn = dyn Fn(&reqwest::Request, Option<&str>) -> String + Send + Sync;
pub(crate) type RequestHook = dyn Fn(&SpanRef<'_>, &reqwest::Request) + Send + Sync;
pub(crate) type ResponseHook = dyn Fn(&SpanRef<'_>, &reqwest::Response) + Send + Sync;

pub(crate) enum Propagator {
    Global,
    Fixed(Arc<dyn TextMapPropagator + Send + Sync>),
}

pub(crate) struct Metrics {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: Option<UpDownCounter<i64>>,
    pub(crate) request_body: Option<Histogram<u64>>,
    pub(crate) response_body: Option<Histogram<u64>>,
}

pub(crate) struct Config {
    pub(crate) tracer: BoxedTracer,
    pub(crate) metrics: Metrics,
    pub(crate) propagator: Propagator,
    pub(crate) propagate_to: Option<Box<UrlPredicate>>,
    pub(crate) filter: Option<Box<RequestPredicate>>,
    pub(crate) span_name: Option<Box<SpanNameFn>>,
    pub(crate) request_hook: Option<Box<RequestHook>>,
    pub(crate) response_hook: Option<Box<ResponseHook>>,
    pub(crate) request_headers: HeaderCapture,
    pub(crate) response_headers: HeaderCapture,
    pub(crate) sensitive_query: SensitiveQueryParameters,
    pub(crate) known_methods: KnownMethods,
    pub(crate) sampling_attributes: bool,
    pub(crate) body_size: bool,
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(env!("CARGO_PKG_NAME"))
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build()
}

/// Body-size buckets: 0 B to 1 GiB in powers of four.
const BODY_SIZE_BUCKETS: [f64; 14] = [
    0.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
];

impl Metrics {
    fn new(meter: &Meter, active: bool, body_size: bool) -> Self {
        let body = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(BODY_SIZE_BUCKETS.to_vec())
                .build()
        };
        Metrics {
            duration: meter
                .f64_histogram(metric::HTTP_CLIENT_REQUEST_DURATION)
                .with_unit("s")
                .with_description("Duration of HTTP client requests.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: active.then(|| {
                meter
                    .i64_up_down_counter(metric::HTTP_CLIENT_ACTIVE_REQUESTS)
                    .with_unit("{request}")
                    .with_description("Number of active HTTP client requests.")
                    .build()
            }),
            request_body: body_size.then(|| {
                body(
                    metric::HTTP_CLIENT_REQUEST_BODY_SIZE,
                    "Size of HTTP client request bodies.",
                )
            }),
            response_body: body_size.then(|| {
                body(
                    metric::HTTP_CLIENT_RESPONSE_BODY_SIZE,
                    "Size of HTTP client response bodies.",
                )
            }),
        }
    }
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
pub struct OtelMiddlewareBuilder {
    tracer: Option<BoxedTracer>,
    meter: Option<Meter>,
    propagator: Propagator,
    propagate_to: Option<Box<UrlPredicate>>,
    filter: Option<Box<RequestPredicate>>,
    span_name: Option<Box<SpanNameFn>>,
    request_hook: Option<Box<RequestHook>>,
    response_hook: Option<Box<ResponseHook>>,
    request_headers: Option<HeaderCapture>,
    response_headers: Option<HeaderCapture>,
    sensitive_query: SensitiveQueryParameters,
    known_methods: Option<KnownMethods>,
    sampling_attributes: bool,
    active_requests: bool,
    body_size: bool,
}

impl fmt::Debug for OtelMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelMiddlewareBuilder")
            .finish_non_exhaustive()
    }
}

impl Default for OtelMiddlewareBuilder {
    fn default() -> Self {
        OtelMiddlewareBuilder {
            tracer: None,
            meter: None,
            propagator: Propagator::Global,
            propagate_to: None,
            filter: None,
            span_name: None,
            request_hook: None,
            response_hook: None,
            request_headers: None,
            response_headers: None,
            sensitive_query: SensitiveQueryParameters::default(),
            known_methods: None,
            sampling_attributes: false,
            active_requests: false,
            body_size: false,
        }
    }
}

impl OtelMiddlewareBuilder {
    /// The tracer provider spans come from. Default: the global one, as it
    /// is when [`build`](Self::build) runs.
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: ObjectSafeTracerProvider + ?Sized,
    {
        self.tracer = Some(BoxedTracer::new(provider.boxed_tracer(scope())));
        self
    }

    /// The meter provider metrics come from. Default: the global one, as it
    /// is when [`build`](Self::build) runs.
    pub fn meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: MeterProvider + ?Sized,
    {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// The propagator that writes the context into outgoing headers.
    /// Default: the global propagator, read per request.
    pub fn propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.propagator = Propagator::Fixed(Arc::new(propagator));
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
        self.request_headers = Some(HeaderCapture::new(HeaderSide::Request, names));
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
        self.response_headers = Some(HeaderCapture::new(HeaderSide::Response, names));
        self
    }

    /// Query keys whose values become `REDACTED` in `url.full`. Replaces the
    /// default list.
    pub fn sensitive_query_parameters<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.sensitive_query = SensitiveQueryParameters::new(keys);
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
        self.known_methods = Some(KnownMethods::new(methods));
        self
    }

    /// Pass `server.address` and `url.full` to the sampler at span creation
    /// too. Default `false`: the sampler sees `http.request.method` and
    /// `server.port`, and strings are built only for sampled requests.
    pub fn sampling_attributes(mut self, enabled: bool) -> Self {
        self.sampling_attributes = enabled;
        self
    }

    /// Record `http.client.active_requests` (opt-in).
    pub fn active_requests(mut self, enabled: bool) -> Self {
        self.active_requests = enabled;
        self
    }

    /// Record `http.client.request.body.size` (bodies held in memory) and
    /// `http.client.response.body.size` (from `Content-Length`; the span
    /// ends before the body is read), and the matching span attributes.
    pub fn body_size(mut self, enabled: bool) -> Self {
        self.body_size = enabled;
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
        let tracer = self
            .tracer
            .unwrap_or_else(|| BoxedTracer::new(global::tracer_provider().boxed_tracer(scope())));
        let meter = self
            .meter
            .unwrap_or_else(|| global::meter_provider().meter_with_scope(scope()));
        crate::OtelMiddleware {
            config: Arc::new(Config {
                tracer,
                metrics: Metrics::new(&meter, self.active_requests, self.body_size),
                propagator: self.propagator,
                propagate_to: self.propagate_to,
                filter: self.filter,
                span_name: self.span_name,
                request_hook: self.request_hook,
                response_hook: self.response_hook,
                request_headers: self.request_headers.unwrap_or_else(|| {
                    HeaderCapture::from_env_or_none(HeaderSide::Request, header_env::CLIENT_REQUEST)
                }),
                response_headers: self.response_headers.unwrap_or_else(|| {
                    HeaderCapture::from_env_or_none(
                        HeaderSide::Response,
                        header_env::CLIENT_RESPONSE,
                    )
                }),
                sensitive_query: self.sensitive_query,
                known_methods: self.known_methods.unwrap_or_else(KnownMethods::from_env),
                sampling_attributes: self.sampling_attributes,
                body_size: self.body_size,
            }),
        }
    }
}
