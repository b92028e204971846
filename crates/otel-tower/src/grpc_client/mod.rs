//! [`GrpcClientLayer`]: a CLIENT span and `rpc.client.call.duration` for
//! each call a tonic channel (or any tower HTTP client) makes, and the
//! caller's context injected into the request metadata.
//!
//! A layer around a tonic `Channel` sees only the request's path: the
//! generated client starts from an empty URI and the channel adds the
//! origin inside itself. So the layer is told the target it calls, and
//! `server.address` / `server.port` come from that (never from the socket).
//!
//! ```
//! use otel_tower::GrpcClientLayer;
//! use tower::ServiceBuilder;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let target = "http://127.0.0.1:50051";
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let traced = ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new(target))
//!     .service(channel);
//! // InventoryClient::new(traced) ... every call now has its span.
//! # let _ = traced;
//! # Ok(())
//! # }
//! ```
//!
//! Each call gets, by the RPC semantic conventions (see
//! [`otel_http_conventions::rpc`] for the shared rules):
//!
//! - a CLIENT span named `rpc.method` (`inventory.v1.Inventory/Reserve`),
//!   child of the current context, with `rpc.system.name`, `rpc.method`,
//!   `server.address` and `server.port` given at creation (the sampler sees
//!   them), then `rpc.response.status_code`;
//! - error status and `error.type` for every code but `OK` (the code's
//!   name), with the status message, redacted, as the description;
//! - the span ends when the response's trailers are read (a streaming call
//!   lasts until its stream ends), when a trailers-only response arrives,
//!   or when the call fails or is dropped;
//! - `rpc.client.call.duration` (seconds, the advised buckets) with
//!   `rpc.system.name`, `rpc.method`, `rpc.response.status_code`,
//!   `error.type` iff failed, `server.address` and `server.port`, for every
//!   call, sampled or not.
//!
//! | how the call ended | `rpc.response.status_code` | `error.type` |
//! | --- | --- | --- |
//! | `grpc-status` in the trailers or a trailers-only response | its code | the code's name, unless `OK` |
//! | a response that is not gRPC (no `grpc-status`, and a status other than 200 or a content-type other than gRPC) | from the HTTP status (404 `UNIMPLEMENTED`, 503 `UNAVAILABLE`, a 200 `UNKNOWN`, …) | the code's name |
//! | the inner service failed (no connection) | `UNAVAILABLE`, or `DEADLINE_EXCEEDED` once the call's `grpc-timeout` has passed | the code's name; an `exception` event carries the redacted message |
//! | the response body failed | `UNAVAILABLE`, or `DEADLINE_EXCEEDED` as above | the error's type; an `exception` event carries the redacted message |
//! | the call was dropped before its status | `CANCELLED`, or `DEADLINE_EXCEEDED` as above | the code's name |
//!
//! The context goes into the request headers (gRPC metadata) with the
//! configured propagator, to the targets [`propagate_to`](GrpcClientLayerBuilder::propagate_to)
//! allows, as `OtelMiddleware` does for HTTP.
//!
//! Each rule has its test in `tests/grpc.rs` (the table in the [crate
//! documentation](crate#grpc) names them), plus:
//! `b4_server_address_comes_from_the_target_never_the_socket`,
//! `c4_a_client_answered_503_without_grpc_status_records_unavailable`,
//! `c4_a_refused_connection_records_unavailable_and_the_error`,
//! `k8_propagate_to_keeps_the_context_from_targets_not_allowed` and
//! `f1_metadata_is_captured_only_when_named_and_never_binary` (metadata,
//! opt-in with [`capture_request_metadata`](GrpcClientLayerBuilder::capture_request_metadata)
//! and [`capture_response_metadata`](GrpcClientLayerBuilder::capture_response_metadata)).
//!
//! Decisions: a client counts `CANCELLED` as an error like every code but
//! `OK` (the conventions' client rule; the HTTP rule that a deliberate
//! cancel is no error has no RPC counterpart). A retrying channel inside
//! this layer gives one span for the whole call, as the conventions ask.

mod body;
mod call;
mod future;

pub use body::GrpcClientBody;
use call::ClientConfig;
pub use future::GrpcClientFuture;

use http::{Request, Response, Uri};
use opentelemetry::global::ObjectSafeTracerProvider;
use opentelemetry::metrics::MeterProvider;
use opentelemetry::propagation::TextMapPropagator;
use otel_http_conventions::rpc::{RpcMetrics, Target};
use otel_http_conventions::{CommonOptions, HeaderCapture, HeaderSide, PropagatorChoice, Side};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

type UriPredicate = dyn Fn(&Uri) -> bool + Send + Sync;

/// A tower layer for gRPC clients. See the [module documentation](self).
///
/// Cheap to clone: every service it makes shares one configuration.
#[derive(Clone, Debug)]
pub struct GrpcClientLayer {
    config: Arc<ClientConfig>,
}

impl GrpcClientLayer {
    /// A layer for calls to `target` (`http://inventory:50051`,
    /// `inventory:50051`, `dns://resolver/host:port`, `unix:///path`), with
    /// the global tracer provider, meter provider and propagator.
    pub fn new(target: impl AsRef<str>) -> Self {
        Self::builder(target).build()
    }

    /// A builder for every other option.
    pub fn builder(target: impl AsRef<str>) -> GrpcClientLayerBuilder {
        GrpcClientLayerBuilder {
            target: target.as_ref().to_owned(),
            common: CommonOptions::default(),
            propagate_to: None,
        }
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Builds a [`GrpcClientLayer`]. Every method sets one behaviour.
///
/// ```
/// use otel_tower::GrpcClientLayer;
///
/// let layer = GrpcClientLayer::builder("http://inventory.internal:50051")
///     // Keep our trace context and baggage away from third parties.
///     .propagate_to(|uri| uri.host().is_some_and(|h| h.ends_with(".internal")))
///     .build();
/// # let _ = layer;
/// ```
#[must_use]
pub struct GrpcClientLayerBuilder {
    target: String,
    common: CommonOptions,
    propagate_to: Option<Box<UriPredicate>>,
}

impl fmt::Debug for GrpcClientLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientLayerBuilder")
            .field("target", &self.target)
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

fn scope() -> opentelemetry::InstrumentationScope {
    otel_http_conventions::scope(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

impl GrpcClientLayerBuilder {
    /// The tracer provider spans come from. Default: the global one, as it
    /// is when [`build`](Self::build) runs.
    pub fn tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: ObjectSafeTracerProvider + ?Sized,
    {
        self.common.set_tracer_provider(provider, scope());
        self
    }

    /// The meter provider `rpc.client.call.duration` comes from. Default:
    /// the global one, as it is when [`build`](Self::build) runs.
    pub fn meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: MeterProvider + ?Sized,
    {
        self.common.set_meter_provider(provider, scope());
        self
    }

    /// The propagator that writes the context into the request metadata.
    /// Default: the global propagator, read per call.
    pub fn propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.common.propagator = PropagatorChoice::Fixed(Arc::new(propagator));
        self
    }

    /// Send trace context and baggage only where `allow` returns true for
    /// the request's URI when it is absolute, else for the target's.
    /// Default: always.
    pub fn propagate_to<F>(mut self, allow: F) -> Self
    where
        F: Fn(&Uri) -> bool + Send + Sync + 'static,
    {
        self.propagate_to = Some(Box::new(allow));
        self
    }

    /// Record these request metadata keys (matched case-insensitively) as
    /// `rpc.request.metadata.<key>`, a string array. Binary (`-bin`) keys
    /// are never recorded. Default: the names in
    /// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST`,
    /// else none.
    pub fn capture_request_metadata<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.common.request_headers = Some(HeaderCapture::new(HeaderSide::Request, names));
        self
    }

    /// Record these response metadata keys, from the response headers and
    /// trailers, as `rpc.response.metadata.<key>`. Default: the names in
    /// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE`,
    /// else none.
    pub fn capture_response_metadata<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.common.response_headers = Some(HeaderCapture::new(HeaderSide::Response, names));
        self
    }

    /// Whether new traces this client starts carry Trace Context Level 2's
    /// random flag. Default: yes, unless the tracer provider is known to use
    /// an id generator other than the SDK's random one.
    pub fn random_trace_ids(mut self, random: bool) -> Self {
        self.common.random_trace_ids = Some(random);
        self
    }

    /// Adds query keys whose values are redacted in any URL an error
    /// message quotes (the defaults stay).
    pub fn sensitive_query_parameters<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.common.sensitive_query = self.common.sensitive_query.and(keys);
        self
    }

    /// Builds the layer, resolving the tracer and meter once.
    pub fn build(self) -> GrpcClientLayer {
        let common = self.common.resolve(Side::Client, scope());
        let target_uri: Option<Uri> = self.target.parse().ok();
        // Decided once for a path-only request (what tonic sends).
        let propagate_to_target = match (&self.propagate_to, &target_uri) {
            (None, _) => true,
            (Some(allow), Some(uri)) => allow(uri),
            (Some(_), None) => false,
        };
        let rpc_metrics = RpcMetrics::new(&common.meter, Side::Client);
        GrpcClientLayer {
            config: Arc::new(ClientConfig {
                request_metadata: common.request_headers.for_side(HeaderSide::RpcRequest),
                response_metadata: common.response_headers.for_side(HeaderSide::RpcResponse),
                target: Target::parse(&self.target),
                common,
                rpc_metrics,
                propagate_to: self.propagate_to,
                propagate_to_target,
            }),
        }
    }
}

/// The service [`GrpcClientLayer`] wraps around a client.
#[derive(Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    config: Arc<ClientConfig>,
}

impl<S: fmt::Debug> fmt::Debug for GrpcClientService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GrpcClientService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: http_body::Body,
    ResB::Error: fmt::Display,
{
    type Response = Response<GrpcClientBody<ResB>>;
    type Error = S::Error;
    type Future = GrpcClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let call = call::ClientCall::start(&self.config, &mut req);
        GrpcClientFuture::new(self.inner.call(req), call)
    }
}
