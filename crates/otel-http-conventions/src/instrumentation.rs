//! What server and client instrumentation share beyond the conventions: how
//! the tracer, meter and propagator are chosen, and the HTTP metric
//! instruments.

use crate::metrics::HttpMetrics;
use crate::tracer::{global_tracer, provider_tracer, HttpTracer};
use crate::{HeaderCapture, HeaderSide, KnownMethods, SensitiveQueryParameters, SCHEMA_URL};
use http::HeaderMap;
use opentelemetry::global::{self, ObjectSafeTracerProvider};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::{Context, InstrumentationScope};
use otel_propagation::{HeaderExtractor, HeaderInjector};
use std::fmt;
use std::sync::Arc;

/// The propagator an instrumentation uses: one it was given, or the global
/// one, which cannot be held and so is read at each use.
#[derive(Clone, Default)]
pub enum PropagatorChoice {
    /// `opentelemetry::global`'s text-map propagator, read at each use.
    #[default]
    Global,
    /// A propagator given in code.
    Fixed(Arc<dyn TextMapPropagator + Send + Sync>),
}

impl fmt::Debug for PropagatorChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PropagatorChoice::Global => f.write_str("Global"),
            PropagatorChoice::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
        }
    }
}

impl PropagatorChoice {
    /// Extracts the caller's context from `headers` onto an empty context.
    ///
    /// ```
    /// use otel_http_conventions::PropagatorChoice;
    /// let cx = PropagatorChoice::Global.extract(&http::HeaderMap::new());
    /// # let _ = cx;
    /// ```
    pub fn extract(&self, headers: &HeaderMap) -> Context {
        match self {
            PropagatorChoice::Global => otel_propagation::extract(headers),
            PropagatorChoice::Fixed(p) => {
                p.extract_with_context(&Context::new(), &HeaderExtractor(headers))
            }
        }
    }

    /// Injects `cx` into `headers`.
    ///
    /// ```
    /// use otel_http_conventions::PropagatorChoice;
    /// let mut headers = http::HeaderMap::new();
    /// PropagatorChoice::Global.inject(&opentelemetry::Context::new(), &mut headers);
    /// ```
    pub fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        match self {
            PropagatorChoice::Global => otel_propagation::inject_context(cx, headers),
            PropagatorChoice::Fixed(p) => p.inject_context(cx, &mut HeaderInjector(headers)),
        }
    }
}

/// The options every otel-web HTTP instrumentation takes, as a builder
/// collects them; [`resolve`](Self::resolve) turns them into what it runs
/// with.
#[derive(Default)]
pub struct CommonOptions {
    /// The tracer, if a provider was given.
    pub tracer: Option<HttpTracer>,
    /// The meter, if a provider was given.
    pub meter: Option<Meter>,
    /// Where the propagator comes from.
    pub propagator: PropagatorChoice,
    /// Request headers to record; `None`: the environment's list, else none.
    pub request_headers: Option<HeaderCapture>,
    /// Response headers to record; `None`: the environment's list, else none.
    pub response_headers: Option<HeaderCapture>,
    /// Query keys whose values are redacted.
    pub sensitive_query: SensitiveQueryParameters,
    /// Known methods; `None`: the environment's list, else the defaults.
    pub known_methods: Option<KnownMethods>,
    /// Build every sampling-relevant attribute before the sampler runs.
    pub sampling_attributes: bool,
    /// Record the active-requests metric.
    pub active_requests: bool,
    /// Record body sizes.
    pub body_size: bool,
    /// Whether new traces get Trace Context Level 2's random flag; `None`:
    /// yes unless the tracer provider is known to use an id generator other
    /// than the SDK's random one.
    pub random_trace_ids: Option<bool>,
    /// What is known of the given provider's trace ids (set with it).
    pub provider_random_ids: Option<bool>,
}

impl fmt::Debug for CommonOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonOptions")
            .field("propagator", &self.propagator)
            .field("request_headers", &self.request_headers)
            .field("response_headers", &self.response_headers)
            .field("sensitive_query", &self.sensitive_query)
            .field("known_methods", &self.known_methods)
            .field("sampling_attributes", &self.sampling_attributes)
            .field("active_requests", &self.active_requests)
            .field("body_size", &self.body_size)
            .finish_non_exhaustive()
    }
}

/// Which side an instrumentation is on: names its metrics and its
/// header-capture environment variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `http.server.*`
    Server,
    /// `http.client.*`
    Client,
}

/// What an instrumentation runs with, every choice made.
#[derive(Debug)]
pub struct Resolved {
    /// Spans come from here.
    pub tracer: HttpTracer,
    /// The metric instruments.
    pub metrics: HttpMetrics,
    /// The meter they came from, for instruments made later (the RPC ones).
    pub meter: Meter,
    /// Reads and writes trace context.
    pub propagator: PropagatorChoice,
    /// Request headers recorded.
    pub request_headers: HeaderCapture,
    /// Response headers recorded.
    pub response_headers: HeaderCapture,
    /// Query keys redacted.
    pub sensitive_query: SensitiveQueryParameters,
    /// Known methods.
    pub known_methods: KnownMethods,
    /// Build sampling attributes before sampling.
    pub sampling_attributes: bool,
    /// Record body sizes.
    pub body_size: bool,
    /// New traces carry Trace Context Level 2's random flag.
    pub random_trace_ids: bool,
}

impl Resolved {
    /// Adds an `exception` event to `span`: `exception.type`, and the
    /// message, if any, with the URLs it quotes redacted as `url.query` is
    /// (an error's text often quotes the URL it failed on).
    ///
    /// ```
    /// use opentelemetry::trace::TraceContextExt;
    /// use otel_http_conventions::{CommonOptions, Side};
    ///
    /// let resolved = CommonOptions::default().resolve(Side::Client, otel_http_conventions::scope("example", "0"));
    /// let cx = opentelemetry::Context::current();
    /// resolved.add_exception(&cx.span(), "connect", Some("http://h/?token=secret refused"));
    /// ```
    pub fn add_exception(
        &self,
        span: &opentelemetry::trace::SpanRef<'_>,
        error_type: impl Into<opentelemetry::Value>,
        message: Option<&str>,
    ) {
        let mut fields = vec![opentelemetry::KeyValue::new(
            "exception.type",
            error_type.into(),
        )];
        if let Some(message) = message {
            fields.push(opentelemetry::KeyValue::new(
                "exception.message",
                self.sensitive_query.redact_text(message).into_owned(),
            ));
        }
        span.add_event("exception", fields);
    }

    /// Marks `span` failed: `error.type`, and the error status with
    /// `description` (redacted as an exception's message is), or none.
    pub fn set_error(
        &self,
        span: &opentelemetry::trace::SpanRef<'_>,
        error_type: impl Into<opentelemetry::Value>,
        description: Option<&str>,
    ) {
        span.set_attribute(opentelemetry::KeyValue::new(
            opentelemetry_semantic_conventions::attribute::ERROR_TYPE,
            error_type.into(),
        ));
        let description = description
            .map(|d| self.sensitive_query.redact_text(d).into_owned())
            .unwrap_or_default();
        span.set_status(opentelemetry::trace::Status::error(description));
    }
}

/// The instrumentation scope of a crate: its name, version and the
/// conventions' schema URL.
pub fn scope(name: &'static str, version: &'static str) -> InstrumentationScope {
    InstrumentationScope::builder(name)
        .with_version(version)
        .with_schema_url(SCHEMA_URL)
        .build()
}

impl CommonOptions {
    /// Uses `provider` for spans.
    pub fn set_tracer_provider<P>(&mut self, provider: &P, scope: InstrumentationScope)
    where
        P: ObjectSafeTracerProvider + ?Sized,
    {
        let (tracer, random) = provider_tracer(provider, scope);
        self.tracer = Some(tracer);
        self.provider_random_ids = random;
    }

    /// Uses `provider` for metrics.
    pub fn set_meter_provider<P>(&mut self, provider: &P, scope: InstrumentationScope)
    where
        P: MeterProvider + ?Sized,
    {
        self.meter = Some(provider.meter_with_scope(scope));
    }

    /// Makes every choice left open: the global providers, the environment's
    /// header lists and known methods.
    pub fn resolve(self, side: Side, scope: InstrumentationScope) -> Resolved {
        use crate::header_env as env;
        let (req_env, resp_env) = match side {
            Side::Server => (env::SERVER_REQUEST, env::SERVER_RESPONSE),
            Side::Client => (env::CLIENT_REQUEST, env::CLIENT_RESPONSE),
        };
        let (tracer, known_random) = match self.tracer {
            Some(t) => (t, self.provider_random_ids),
            None => global_tracer(scope.clone()),
        };
        // The SDK's default id generator is random: unless told or shown
        // otherwise, new traces are marked so.
        let random_trace_ids = self.random_trace_ids.or(known_random).unwrap_or(true);
        let meter = self
            .meter
            .unwrap_or_else(|| global::meter_provider().meter_with_scope(scope));
        Resolved {
            tracer,
            metrics: HttpMetrics::new(&meter, side, self.active_requests, self.body_size),
            meter,
            propagator: self.propagator,
            request_headers: self
                .request_headers
                .unwrap_or_else(|| HeaderCapture::from_env_or_none(HeaderSide::Request, req_env)),
            response_headers: self
                .response_headers
                .unwrap_or_else(|| HeaderCapture::from_env_or_none(HeaderSide::Response, resp_env)),
            sensitive_query: self.sensitive_query,
            known_methods: self.known_methods.unwrap_or_else(KnownMethods::from_env),
            sampling_attributes: self.sampling_attributes,
            body_size: self.body_size,
            random_trace_ids,
        }
    }
}
