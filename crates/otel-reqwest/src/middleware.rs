//! The middleware: one CLIENT span per attempt.

use crate::config::{Config, OtelMiddlewareBuilder};
use crate::UrlTemplate;
use http::Extensions;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue};
use otel_http_conventions::semconv::attribute as attr;
use otel_http_conventions::{
    client_status_is_error, protocol_version, shared_string, status_code_str, Measurement,
    MetricKey, ERROR_TYPE_OTHER,
};
use reqwest_middleware::{Middleware, Next};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// A reqwest-middleware middleware that gives each outgoing request an
/// OpenTelemetry CLIENT span and carries the trace context to the server.
/// See the [crate documentation](crate).
#[derive(Clone)]
pub struct OtelMiddleware {
    pub(crate) config: Arc<Config>,
}

impl std::fmt::Debug for OtelMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelMiddleware").finish_non_exhaustive()
    }
}

impl Default for OtelMiddleware {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelMiddleware {
    /// A middleware with the global providers and propagator.
    ///
    /// ```
    /// let middleware = otel_reqwest::OtelMiddleware::new();
    /// # let _ = middleware;
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for every other option.
    ///
    /// ```
    /// let middleware = otel_reqwest::OtelMiddleware::builder().active_requests(true).build();
    /// # let _ = middleware;
    /// ```
    pub fn builder() -> OtelMiddlewareBuilder {
        OtelMiddlewareBuilder::default()
    }
}

/// How many times this request has been handed to us: kept in the request's
/// extensions, which a retry middleware passes to every attempt.
#[derive(Clone, Copy)]
struct Attempts(u32);

/// An attempt in flight. Dropped unfinished (the caller dropped the future),
/// it ends the span with the status unset and no `error.type`.
struct Attempt {
    config: Arc<Config>,
    cx: Context,
    recording: bool,
    start: Instant,
    start_time: SystemTime,
    /// `http.request.method`, `server.address`, `server.port`, `url.template`:
    /// the span's first attributes and the active-requests set.
    base_attrs: Vec<KeyValue>,
    /// The same values, for the duration and body-size metrics.
    method: StringValue,
    host: Option<StringValue>,
    port: Option<u16>,
    template: Option<Arc<str>>,
    request_body_size: Option<u64>,
    finished: bool,
}

impl Attempt {
    fn finish(
        &mut self,
        status: Option<u16>,
        version: Option<&'static str>,
        error_type: Option<StringValue>,
        response_body_size: Option<u64>,
    ) {
        self.finished = true;
        let elapsed = self.start.elapsed();
        let span = self.cx.span();
        if self.recording {
            if let Some(error_type) = &error_type {
                span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type.clone()));
                span.set_status(Status::error(""));
            }
            if let Some(size) = response_body_size {
                span.set_attribute(KeyValue::new(attr::HTTP_RESPONSE_BODY_SIZE, size as i64));
            }
        }
        let metrics = &self.config.common.metrics;
        let key = MetricKey {
            method: self.method.as_str(),
            server_address: self.host.as_ref().map(StringValue::as_str),
            server_port: self.port,
            url_template: self.template.as_deref(),
            status,
            error_type: error_type.as_ref().map(StringValue::as_str),
            protocol_version: version,
            ..MetricKey::default()
        };
        metrics.record(
            &key,
            Measurement {
                duration: elapsed.as_secs_f64(),
                request_body_size: self.request_body_size,
                response_body_size,
            },
        );
        if let Some(active) = &metrics.active {
            active.add(-1, &self.base_attrs);
        }
        // Ended last, so that whoever sees the exported span also sees the
        // attempt's metrics recorded.
        span.end_with_timestamp(self.start_time + elapsed);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Cancelled by the caller: not a failure. End the span so it is not
        // lost, keep the active count balanced, record no duration (the
        // request has no outcome to describe).
        self.finished = true;
        let end = self.start_time + self.start.elapsed();
        if let Some(active) = &self.config.common.metrics.active {
            active.add(-1, &self.base_attrs);
        }
        self.cx.span().end_with_timestamp(end);
    }
}

/// The documented, low-cardinality `error.type` of a failed request.
fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Middleware(_) => "middleware",
        reqwest_middleware::Error::Reqwest(e) => {
            if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else if e.is_redirect() {
                "redirect"
            } else if e.is_body() {
                "body"
            } else if e.is_builder() {
                "builder"
            } else if e.is_request() {
                "request"
            } else {
                ERROR_TYPE_OTHER
            }
        }
    }
}

#[async_trait::async_trait]
impl Middleware for OtelMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let config = &self.config;
        if config.filter.as_ref().is_some_and(|f| !f(&req)) {
            return next.run(req, extensions).await;
        }
        let attempt_no = {
            let attempts = extensions.get_or_insert_with(|| Attempts(0));
            attempts.0 += 1;
            attempts.0
        };
        let template = extensions.get::<UrlTemplate>().map(|t| Arc::clone(&t.0));

        let start = Instant::now();
        let start_time = SystemTime::now();
        let method = config.common.known_methods.normalize(req.method());
        let url = req.url();
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        let port = url.port_or_known_default();

        let name: Cow<'static, str> = match (&config.span_name, &template) {
            (Some(f), t) => Cow::Owned(f(&req, t.as_deref())),
            (None, t) => method.span_name_for(t.as_deref()).0,
        };

        let method_value = method.value.clone();
        let mut base_attrs = Vec::with_capacity(4);
        base_attrs.push(KeyValue::new(
            attr::HTTP_REQUEST_METHOD,
            method.value.clone(),
        ));
        let host = host.map(shared_string);
        if let Some(host) = &host {
            base_attrs.push(KeyValue::new(attr::SERVER_ADDRESS, host.clone()));
        }
        if let Some(port) = port {
            base_attrs.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
        }
        if let Some(t) = &template {
            base_attrs.push(KeyValue::new(
                attr::URL_TEMPLATE,
                StringValue::from(Arc::clone(t)),
            ));
        }

        let url_full = || {
            config
                .common
                .sensitive_query
                .redact_url(url.as_str())
                .into_owned()
        };
        let mut at_start = base_attrs.clone();
        if config.common.sampling_attributes {
            at_start.push(KeyValue::new(attr::URL_FULL, url_full()));
        }
        let parent = Context::current();
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start_time)
            .with_attributes(at_start);
        // The span lives only in this block: a local held until the end of
        // the function would sit in the future's state across the await.
        let (cx, recording, request_body_size) = {
            let mut span = config.common.tracer.build_with_context(builder, &parent);
            let recording = span.is_recording();
            let request_body_size = config
                .common
                .body_size
                .then(|| {
                    req.body()
                        .and_then(|b| b.as_bytes())
                        .map(|b| b.len() as u64)
                })
                .flatten();
            if recording {
                // Set one by one: the SDK sets a vector's attributes one by
                // one too, after one more allocation.
                if !config.common.sampling_attributes {
                    span.set_attribute(KeyValue::new(attr::URL_FULL, url_full()));
                }
                if let Some(original) = method.original {
                    span.set_attribute(KeyValue::new(
                        attr::HTTP_REQUEST_METHOD_ORIGINAL,
                        original.to_owned(),
                    ));
                }
                if attempt_no > 1 {
                    span.set_attribute(KeyValue::new(
                        attr::HTTP_REQUEST_RESEND_COUNT,
                        i64::from(attempt_no - 1),
                    ));
                }
                if let Some(size) = request_body_size {
                    span.set_attribute(KeyValue::new(attr::HTTP_REQUEST_BODY_SIZE, size as i64));
                }
            }
            (
                span.into_request_context(&parent, config.common.random_trace_ids),
                recording,
                request_body_size,
            )
        };

        if config
            .propagate_to
            .as_ref()
            .is_none_or(|allow| allow(req.url()))
        {
            config.common.propagator.inject(&cx, req.headers_mut());
        }
        if recording {
            let span = cx.span();
            if let Some(captured) = config.common.request_headers.captured(req.headers()) {
                span.set_attributes(captured);
            }
            if let Some(hook) = &config.request_hook {
                hook(&span, &req);
            }
        }

        if let Some(active) = &config.common.metrics.active {
            active.add(1, &base_attrs);
        }
        let mut attempt = Attempt {
            config: Arc::clone(config),
            cx: cx.clone(),
            recording,
            start,
            start_time,
            base_attrs,
            method: method_value,
            host,
            port,
            template,
            request_body_size,
            finished: false,
        };

        let result = next.run(req, extensions).with_context(cx.clone()).await;
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                let version = protocol_version(response.version());
                if recording {
                    let span = cx.span();
                    let mut attrs = Vec::with_capacity(4);
                    attrs.push(KeyValue::new(
                        attr::HTTP_RESPONSE_STATUS_CODE,
                        i64::from(status),
                    ));
                    if let Some(version) = version {
                        attrs.push(KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, version));
                    }
                    if let Some(peer) = response.remote_addr() {
                        attrs.push(KeyValue::new(
                            attr::NETWORK_PEER_ADDRESS,
                            peer.ip().to_string(),
                        ));
                        attrs.push(KeyValue::new(
                            attr::NETWORK_PEER_PORT,
                            i64::from(peer.port()),
                        ));
                    }
                    config
                        .common
                        .response_headers
                        .record(response.headers(), &mut attrs);
                    span.set_attributes(attrs);
                    if let Some(hook) = &config.response_hook {
                        hook(&span, response);
                    }
                }
                let error = client_status_is_error(status).then(|| status_code_str(status));
                let body_size = config
                    .common
                    .body_size
                    .then(|| response.content_length())
                    .flatten();
                attempt.finish(Some(status), version, error, body_size);
            }
            Err(error) => {
                let kind = error_type(error);
                if recording {
                    // The text quotes the URL: redacted as `url.full` is.
                    config
                        .common
                        .add_exception(&cx.span(), kind, Some(&error.to_string()));
                }
                attempt.finish(None, None, Some(StringValue::from(kind)), None);
            }
        }
        result
    }
}
