//! One client call: its span, how its status is found, how it ends.

use http::{HeaderMap, Request, StatusCode, Uri};
use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue};
use otel_http_conventions::rpc::{self, GrpcCode, RpcMetricKey, RpcMetrics, Target};
use otel_http_conventions::semconv::attribute as attr;
use otel_http_conventions::{HeaderCapture, Resolved, Side, OTHER_METHOD};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

pub(super) struct ClientConfig {
    pub(super) target: Target,
    /// Request metadata recorded.
    pub(super) request_metadata: HeaderCapture,
    /// Response metadata recorded (headers and trailers).
    pub(super) response_metadata: HeaderCapture,
    pub(super) common: Resolved,
    pub(super) rpc_metrics: RpcMetrics,
    pub(super) propagate_to: Option<Box<super::UriPredicate>>,
    /// `propagate_to`'s answer for the target, for path-only requests.
    pub(super) propagate_to_target: bool,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("target", &self.target)
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    fn propagates_to(&self, uri: &Uri) -> bool {
        match (&self.propagate_to, uri.authority()) {
            (Some(allow), Some(_)) => allow(uri),
            _ => self.propagate_to_target,
        }
    }
}

/// How a call failed before it had a status.
pub(crate) enum CallFailure {
    /// The inner service returned an error: no response at all.
    Transport(String),
    /// The response body failed: its error type and message.
    Body(Cow<'static, str>, String),
    /// The call was dropped before its status arrived.
    Dropped,
}

pub(crate) struct ClientCall {
    config: Arc<ClientConfig>,
    cx: Context,
    recording: bool,
    start: Instant,
    start_time: SystemTime,
    /// `rpc.method`, or `_OTHER` when the path names no method.
    method: StringValue,
    deadline: Option<Instant>,
    http_status: Option<StatusCode>,
    status: Option<(GrpcCode, Option<String>)>,
    finished: bool,
}

impl ClientCall {
    /// Starts the call's span as a child of the current context, and
    /// injects the span's context into the request headers.
    pub(super) fn start<B>(config: &Arc<ClientConfig>, req: &mut Request<B>) -> Box<Self> {
        let start = Instant::now();
        let start_time = SystemTime::now();
        let parent = Context::current();
        let path = req.uri().path();
        let method = rpc::method_from_path(path);
        let method_value = StringValue::from(method.unwrap_or(OTHER_METHOD).to_owned());
        let mut attrs = Vec::with_capacity(8);
        attrs.push(KeyValue::new(rpc::RPC_SYSTEM_NAME, rpc::GRPC));
        attrs.push(KeyValue::new(rpc::RPC_METHOD, method_value.clone()));
        if method.is_none() {
            attrs.push(KeyValue::new(rpc::RPC_METHOD_ORIGINAL, path.to_owned()));
        }
        attrs.push(KeyValue::new(
            attr::SERVER_ADDRESS,
            config.target.address.clone(),
        ));
        if let Some(port) = config.target.port {
            attrs.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
        }
        let name: Cow<'static, str> = match method {
            Some(m) => Cow::Owned(m.to_owned()),
            None => Cow::Borrowed(rpc::GRPC),
        };
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_start_time(start_time)
            .with_attributes(attrs);
        let mut span = config.common.tracer.build_with_context(builder, &parent);
        use opentelemetry::trace::Span as _;
        let recording = span.is_recording();
        if let Some(captured) = recording
            .then(|| config.request_metadata.captured(req.headers()))
            .flatten()
        {
            span.set_attributes(captured);
        }
        let cx = span.into_request_context(&parent, config.common.random_trace_ids);
        if config.propagates_to(req.uri()) {
            config.common.propagator.inject(&cx, req.headers_mut());
        }
        Box::new(ClientCall {
            config: Arc::clone(config),
            cx,
            recording,
            start,
            start_time,
            method: method_value,
            deadline: rpc::deadline(req.headers(), start),
            http_status: None,
            status: None,
            finished: false,
        })
    }

    /// Reads the response head. Returns whether the call is over: a
    /// trailers-only response carries its status here, and a response that
    /// is not gRPC's has nothing more to say.
    pub(super) fn on_response(&mut self, status: StatusCode, headers: &HeaderMap) -> bool {
        self.http_status = Some(status);
        self.capture_response_metadata(headers);
        if let Some(status) = rpc::status_from_headers(headers) {
            self.status = Some(status);
            return true;
        }
        // Not a gRPC answer at all (a proxy's 503, a web server's 404): its
        // HTTP status says what gRPC clients make of it, now.
        if status != StatusCode::OK || !rpc::is_grpc(headers) {
            self.status = Some((GrpcCode::from_http_status(status.as_u16()), None));
            return true;
        }
        false
    }

    /// Reads the trailers, where the status of a call that sent messages is.
    pub(super) fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let Some(status) = rpc::status_from_headers(trailers) {
            self.status = Some(status);
        }
        self.capture_response_metadata(trailers);
    }

    /// Records the allowed response metadata (headers, then trailers).
    fn capture_response_metadata(&self, headers: &HeaderMap) {
        if let Some(captured) = self
            .recording
            .then(|| self.config.response_metadata.captured(headers))
            .flatten()
        {
            self.cx.span().set_attributes(captured);
        }
    }

    /// Ends the span and records the duration.
    pub(super) fn finish(&mut self, failure: Option<CallFailure>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.start.elapsed();
        let deadline_passed = self.deadline.is_some_and(|d| Instant::now() >= d);
        let given_up = |otherwise| {
            if deadline_passed {
                GrpcCode::DeadlineExceeded
            } else {
                otherwise
            }
        };
        let mut exception: Option<(Cow<'static, str>, String)> = None;
        let (code, message, error_type): (GrpcCode, Option<String>, Option<Cow<'static, str>>) =
            match (failure, self.status.take()) {
                (Some(CallFailure::Transport(message)), _) => {
                    let code = given_up(GrpcCode::Unavailable);
                    exception = Some((Cow::Borrowed(code.name()), message));
                    (code, None, None)
                }
                (Some(CallFailure::Body(error_type, message)), _) => {
                    exception = Some((error_type.clone(), message));
                    (given_up(GrpcCode::Unavailable), None, Some(error_type))
                }
                (Some(CallFailure::Dropped), _) => {
                    (GrpcCode::of_abandoned_call(deadline_passed), None, None)
                }
                (None, Some((code, message))) => (code, message, None),
                // No `grpc-status` anywhere: what gRPC tells clients to make
                // of the HTTP status.
                (None, None) => (
                    self.http_status.map_or(GrpcCode::Unknown, |s| {
                        GrpcCode::from_http_status(s.as_u16())
                    }),
                    None,
                    None,
                ),
            };
        let error_type = error_type.or_else(|| {
            code.is_error(Side::Client)
                .then_some(Cow::Borrowed(code.name()))
        });
        if self.recording {
            let span = self.cx.span();
            span.set_attribute(KeyValue::new(rpc::RPC_STATUS_CODE, code.name()));
            if let Some((exception_type, message)) = &exception {
                self.config
                    .common
                    .add_exception(&span, exception_type.clone(), Some(message));
            }
            if let Some(error_type) = &error_type {
                // The status message describes the error; the code is in
                // its own attribute.
                self.config
                    .common
                    .set_error(&span, error_type.clone(), message.as_deref());
            }
        }
        let key = RpcMetricKey {
            method: self.method.as_str(),
            status: code,
            error_type: error_type.as_deref(),
            server_address: Some(&self.config.target.address),
            server_port: self.config.target.port,
        };
        self.config.rpc_metrics.record(&key, elapsed.as_secs_f64());
        if self.recording {
            self.cx.span().end_with_timestamp(self.start_time + elapsed);
        }
    }
}

impl Drop for ClientCall {
    fn drop(&mut self) {
        self.finish(Some(CallFailure::Dropped));
    }
}
