//! One instrumented request. Each request chooses its conventions once,
//! when it starts: HTTP ([`http`]) or, for a gRPC content-type, RPC
//! ([`grpc`]). Each protocol's state reads as one story; this module only
//! dispatches to it and holds what both share (the caller's context, the
//! peer, how a failure is recorded).

mod grpc;
mod http;
mod route;

use crate::config::{Config, RequestHead, ResponseHead};
use ::http::HeaderMap;
use opentelemetry::trace::{Link, SpanRef, TraceContextExt};
use opentelemetry::{Context, Value};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) use route::{NestedRoute, RouteValue};

/// `error.type` when the request or its response body was dropped before the
/// response ended: the client disconnected, or a layer outside this one (a
/// timeout, say) gave up on it.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";
/// `error.type` when the handler panicked while this layer was polling it.
pub const ERROR_TYPE_PANIC: &str = "panic";

/// One request's span and metrics, by its protocol's conventions.
pub(crate) enum RequestState {
    Http(http::HttpState),
    Grpc(grpc::GrpcState),
}

impl RequestState {
    /// Starts the request's span and metrics. Boxed: the state rides in
    /// the response future and then the body, which are moved several
    /// times on their way to the server; a pointer moves cheaper than the
    /// state itself.
    pub(crate) fn start(config: &Arc<Config>, head: &RequestHead<'_>) -> Box<Self> {
        Box::new(if otel_http_conventions::rpc::is_grpc(head.headers) {
            RequestState::Grpc(grpc::GrpcState::start(config, head))
        } else {
            RequestState::Http(http::HttpState::start(config, head))
        })
    }

    /// The server span's context: current while the handler runs.
    pub(crate) fn cx(&self) -> &Context {
        match self {
            RequestState::Http(s) => &s.cx,
            RequestState::Grpc(s) => &s.cx,
        }
    }

    /// When no route was found here, a slot for an inner layer to leave
    /// the one it finds (see [`NestedRoute`]); `None` otherwise, and always
    /// for gRPC, whose method is in the path.
    pub(crate) fn nested_route(&mut self) -> Option<NestedRoute> {
        match self {
            RequestState::Http(s) => s.nested_route(),
            RequestState::Grpc(_) => None,
        }
    }

    /// Records the response head. The request ends later, with its body.
    pub(crate) fn on_response(&mut self, head: &ResponseHead<'_>) {
        match self {
            RequestState::Http(s) => s.on_response(head),
            RequestState::Grpc(s) => s.on_response(head),
        }
    }

    /// Counts a frame of response data.
    pub(crate) fn on_data(&mut self, bytes: usize) {
        if let RequestState::Http(s) = self {
            s.response_body_size += bytes as u64;
        }
    }

    /// Reads the response trailers (gRPC's status is there).
    pub(crate) fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let RequestState::Grpc(s) = self {
            s.on_trailers(trailers);
        }
    }

    /// The response has no body left: dropping it unread completes the
    /// request.
    pub(crate) fn complete_on_drop(&mut self) {
        match self {
            RequestState::Http(s) => s.complete_on_drop = true,
            RequestState::Grpc(s) => s.complete_on_drop = true,
        }
    }

    /// Ends the span and records the metrics. `failure` is set when the
    /// request failed in a way its response (if any) does not show.
    pub(crate) fn finish(&mut self, failure: Option<Failure>) {
        match self {
            RequestState::Http(s) => s.finish(failure),
            RequestState::Grpc(s) => s.finish(failure),
        }
    }
}

/// Why a request ended in error, when its response does not say.
pub(crate) struct Failure {
    pub(crate) error_type: Cow<'static, str>,
    pub(crate) message: Option<String>,
}

impl Failure {
    pub(crate) fn of_type(error_type: &'static str) -> Self {
        Failure {
            error_type: Cow::Borrowed(error_type),
            message: None,
        }
    }

    /// Adds the failure's `exception` event to `span`, its message redacted
    /// as `url.query` is (an error's text can quote a URL).
    fn record(&self, span: &SpanRef<'_>, config: &Config) {
        config.common.add_exception(
            span,
            Value::from(self.error_type.clone()),
            self.message.as_deref(),
        );
    }
}

/// How a request's state that was dropped before it finished ends: a panic
/// while the handler ran, complete when nothing was left to send, else
/// given up (the client went away, or an outer layer dropped it).
fn failure_on_drop(complete_on_drop: bool) -> Option<Failure> {
    if std::thread::panicking() {
        Some(Failure::of_type(ERROR_TYPE_PANIC))
    } else if complete_on_drop {
        None
    } else {
        Some(Failure::of_type(ERROR_TYPE_CANCELLED))
    }
}

/// The parent of the server span, and its links: the caller's context, or
/// for a public endpoint a new trace linked to the caller's span.
fn caller_context(config: &Config, head: &RequestHead<'_>) -> (Context, Option<Vec<Link>>) {
    let extracted = config.common.propagator.extract(head.headers);
    if config.public_endpoint.as_ref().is_some_and(|f| f(head)) {
        let remote = extracted.span().span_context().clone();
        let links = remote.is_valid().then(|| vec![Link::with_context(remote)]);
        // Neither the caller's span nor its baggage crosses in.
        (Context::new(), links)
    } else {
        (extracted, None)
    }
}

/// The address of the connection's peer: axum's `ConnectInfo<SocketAddr>`,
/// or a plain `SocketAddr` extension.
fn peer_address(extensions: &::http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    extensions.get::<SocketAddr>().copied()
}
