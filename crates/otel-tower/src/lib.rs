//! OpenTelemetry tracing and metrics for tower and axum HTTP servers, to the
//! letter of the stable HTTP semantic conventions (and, for gRPC calls on
//! the same router, the RPC conventions: see [gRPC](#grpc)), with one line:
//!
//! ```
//! use axum::{routing::get, Router};
//! use otel_tower::OtelLayer;
//!
//! async fn get_user() -> &'static str { "alice" }
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(get_user))
//!     .layer(OtelLayer::new()); // global providers and propagator
//! ```
//!
//! # What each request gets
//!
//! - One `SERVER` span, named `{method} {route}` from axum's `MatchedPath`
//!   (`GET /users/{id}`), `{method}` when no route matched, and `HTTP` for a
//!   method outside the known set. The raw path never names a span.
//! - Its parent is the caller's context, read from the request headers by the
//!   propagator; the span's context is current while the handler runs and
//!   while the response body streams, so spans the handler starts (with the
//!   `opentelemetry` API or with `tracing` + `tracing-opentelemetry`), and
//!   calls it makes with `otel-reqwest`, nest under it. Incoming baggage is
//!   visible to the handler; the context is built fresh for each request, so
//!   nothing carries over to the next.
//! - The span ends when the response body ends, not when the headers go out:
//!   a 500 ms server-sent-events stream gives a 500 ms span. A `101
//!   Switching Protocols` (a WebSocket upgrade) ends its span, and leaves
//!   `http.server.active_requests`, when the 101 is sent: the socket's life
//!   is not the request's.
//! - Attributes: `http.request.method`, `url.path`, `url.scheme`,
//!   `url.query` (sensitive values redacted), `http.route`,
//!   `http.response.status_code`, `http.request.method_original`,
//!   `server.address`, `server.port`, `client.address`,
//!   `network.peer.address`, `network.peer.port`,
//!   `network.protocol.version`, `user_agent.original`, and `error.type`.
//!   Integers are integers. Attributes are built only for recorded spans.
//! - Safe by default: `url.query` redacts the values of
//!   [`DEFAULT_SENSITIVE_QUERY_PARAMETERS`](otel_http_conventions::DEFAULT_SENSITIVE_QUERY_PARAMETERS)
//!   (the conventions' signature keys and the usual credential names,
//!   matched after percent-decoding, in any case), and so does any URL
//!   quoted in a recorded error message. `url.scheme`, a metric attribute,
//!   is only `http` or `https`: a forwarded scheme that is neither is not
//!   believed. `client.address` and `server.address` are recorded only when
//!   they are an IP address or a host name of legal length; otherwise the
//!   socket's address, or the next source, is used.
//! - Status: 5xx (and codes outside 100..=599) set the span status to error
//!   with `error.type` = the code; 4xx does not. A request that fails after
//!   its head was sent is an error too, keeping its status code.
//! - `http.server.request.duration` (advised buckets), with exactly the
//!   span's duration, recorded whether or not the span is sampled.
//!   [`active_requests`](OtelLayerBuilder::active_requests) and
//!   [`body_size`](OtelLayerBuilder::body_size) turn on the opt-in metrics.
//!
//! ## `error.type` values
//!
//! | value | when |
//! | --- | --- |
//! | `"500"` … `"599"` (any code outside 100..=499) | the response had that status |
//! | `cancelled` ([`ERROR_TYPE_CANCELLED`]) | the request future or response body was dropped before the response ended: the client disconnected, or an outer layer gave up |
//! | `panic` ([`ERROR_TYPE_PANIC`]) | the handler panicked (with `CatchPanicLayer` inside this layer it is a `500` instead) |
//! | the error's type, last two path segments (`error::Error`) | the inner service returned an error, or the response body failed; an `exception` event carries the message |
//!
//! # gRPC
//!
//! A request whose content-type is `application/grpc`, `application/grpc+…`
//! or `application/grpc;…` (a tonic service, alone or in an axum router
//! beside HTTP routes) is recorded by the RPC semantic conventions instead,
//! chosen once when the request starts. They are a release candidate; this
//! crate follows the release `opentelemetry-semantic-conventions` 0.33
//! carries (schema 1.42.0), every key held once in
//! [`otel_http_conventions::rpc`]. gRPC-Web (`application/grpc-web…`) stays
//! HTTP. [`GrpcClientLayer`] gives the client side.
//!
//! | rule | test (`tests/grpc.rs`) |
//! | --- | --- |
//! | one SERVER span per call, named by `rpc.method` (`inventory.v1.Inventory/Reserve`), with `rpc.system.name = grpc`, `rpc.method`, `rpc.response.status_code` (a string, `OK` included), `server.address` / `server.port` from `:authority`, `network.peer.*`; no HTTP attribute | `k1_unary_ok_spans_every_attribute_and_its_type` |
//! | the status comes from `grpc-status` in the trailers, or in the headers of a trailers-only response | `c1_status_classes_on_each_side`, `k4_status_after_messages_is_read_from_the_trailers` |
//! | `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS` set the error status, `error.type` = the code's name and the `grpc-message` (redacted) as description; the other codes leave the status unset | `c1_status_classes_on_each_side`, `c1_status_classes_in_each_streaming_kind` |
//! | a streaming call (client, server, bidirectional) is one span that ends when the stream ends; no message events | `e1_each_streaming_kind_is_one_span_per_call_ending_with_the_stream` |
//! | a call the client gives up is `CANCELLED` (not an error on the server); once its `grpc-timeout` has passed (counted a fifth early: the client's count started first), `DEADLINE_EXCEEDED` | `e4_a_call_dropped_mid_stream_is_cancelled_on_both_sides`, `e5_an_expired_deadline_is_deadline_exceeded_on_both_sides`, `e4_e5_cancel_and_deadline_in_each_streaming_kind` |
//! | a method the server does not serve is `rpc.method = _OTHER`, its path in `rpc.method_original`, the span named `grpc`: made-up paths make no span names or series | `d1_d2_unknown_methods_are_other_named_grpc`, `d1_made_up_methods_create_one_metric_series` |
//! | `rpc.server.call.duration` (seconds, the advised buckets) with `rpc.system.name`, `rpc.method`, `rpc.response.status_code` and `error.type` iff failed, for every call, sampled or not; no HTTP metric | `g1_g2_call_durations_have_the_conventions_attributes_and_buckets`, `g3_unsampled_calls_record_durations_and_no_span` |
//! | the parent comes from the request metadata by the propagator; a malformed `traceparent` starts a new trace | `k8_context_and_baggage_cross_in_the_metadata`, `k8_a_malformed_traceparent_starts_a_new_trace` |
//! | HTTP routes beside tonic services keep the HTTP conventions, and gRPC-Web is HTTP | `k9_one_layer_serves_http_routes_beside_grpc_and_grpc_web_stays_http` |
//! | metadata is recorded only when named, by the same allow-lists as headers (`capture_request_headers` / `capture_response_headers`), as `rpc.request.metadata.<key>` / `rpc.response.metadata.<key>` string arrays, response metadata from headers and trailers; binary `-bin` keys never | `f1_metadata_is_captured_only_when_named_and_never_binary` |
//!
//! How a method is known to be served: with
//! [`grpc_services`](OtelLayerBuilder::grpc_services), only the services
//! named; in any case, a method is believed once a gRPC response answered
//! it, unless that answer is the trailers-only `UNIMPLEMENTED` without a
//! message that tonic gives a path it has no route for. A call that ends
//! before any answer keeps its method only if an earlier answer confirmed
//! it (up to 1024 methods are remembered). The sampler sees the method as
//! the span's name when the call starts, and as `rpc.method` too once the
//! method is confirmed (before that, `rpc.method` is set when the call
//! ends: a span keeps every value it is given, so it is set once).
//!
//! `error.type` on a gRPC span is the status code's name, or, when the call
//! failed before it had a status, `panic` or the error's type (with the
//! status `UNKNOWN`). The request and response hooks and the filter apply
//! to gRPC calls too; a [`span_name`](OtelLayerBuilder::span_name)
//! function names HTTP spans only. `OTEL_SEMCONV_STABILITY_OPT_IN` is not
//! read: this instrumentation is new, and emits the release candidate
//! only.
//!
//! # Options
//!
//! [`OtelLayer::builder`] sets one behaviour per method: `tracer_provider`,
//! `meter_provider`, `propagator`, `filter` (no span and no metrics),
//! `span_name`, `public_endpoint` / `public_endpoint_fn` (untrusted callers
//! start a new trace linked to theirs), `capture_request_headers` /
//! `capture_response_headers` (allow-lists; nothing by default),
//! `sensitive_query_parameters`, `known_methods`,
//! `trust_forwarded_headers` / `trusted_proxies` (whose forwarding headers
//! are believed), `sampling_attributes`, `request_hook` /
//! `response_hook` (called only for recorded spans), `active_requests` and
//! `body_size`.
//!
//! ```
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use otel_tower::OtelLayer;
//!
//! let provider = SdkTracerProvider::builder()
//!     .with_simple_exporter(InMemorySpanExporter::default())
//!     .build();
//! let layer = OtelLayer::builder()
//!     .tracer_provider(&provider)
//!     .propagator(otel_propagation::default_propagator())
//!     .filter(|req| req.uri.path() != "/health")
//!     .public_endpoint_fn(|req| !req.headers.contains_key("x-internal-token"))
//!     .capture_request_headers(["x-request-id"])
//!     .request_hook(|span, req| {
//!         if let Some(tenant) = req.headers.get("x-tenant") {
//!             span.set_attribute(opentelemetry::KeyValue::new(
//!                 "app.tenant",
//!                 String::from_utf8_lossy(tenant.as_bytes()).into_owned(),
//!             ));
//!         }
//!     })
//!     .build();
//! # let _ = layer;
//! ```
//!
//! # Decisions
//!
//! - Only the stable conventions are emitted; `OTEL_SEMCONV_STABILITY_OPT_IN`
//!   is not read. The tracer and meter carry the conventions' schema URL.
//! - The tracer and meter are resolved once, when the layer is built. The
//!   global propagator cannot be held, so unless one is given it is read per
//!   request (an uncontended read lock).
//! - The sampler sees `http.request.method` and `url.scheme` at span
//!   creation; the attributes that need header parsing or allocation
//!   (`server.address`, `server.port`, `url.path`, ...) are added once the
//!   span is known to be recorded, so an unsampled request never parses its
//!   `Host`. `sampling_attributes(true)` passes them all to the sampler
//!   instead.
//! - `Forwarded` / `X-Forwarded-*` are trusted by default, as the conventions
//!   ask; turn that off where no proxy overwrites them, or name the proxies
//!   with `trusted_proxies` so `client.address` cannot be spoofed.
//! - Place the layer with `Router::layer`, so it runs after routing and sees
//!   `MatchedPath`. Outside axum, put a [`Route`] in the request extensions
//!   before this layer runs to name the route. `nest`, `merge` and
//!   `route_service` need nothing more. A router mounted with
//!   `nest_service` is one opaque service to the layer outside it: give the
//!   inner router the layer too, and the inner one, finding the outer
//!   request's span, hands it the full route (`/api/users/{id}`) instead of
//!   starting a span of its own.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod body;
mod config;
mod future;
pub mod grpc_client;
mod layer;
mod request;
mod route_names;
mod service;

pub use body::OtelBody;
pub use config::{OtelLayerBuilder, RequestHead, ResponseHead};
pub use future::ResponseFuture;
pub use grpc_client::{GrpcClientLayer, GrpcClientLayerBuilder};
pub use layer::OtelLayer;
pub use request::{ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC};
pub use service::OtelService;

/// A route template for routers other than axum's: insert it in the request
/// extensions before [`OtelLayer`] runs, and it names the span and sets
/// `http.route` as axum's `MatchedPath` does.
///
/// ```
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(otel_tower::Route::new("/users/{id}"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route(pub(crate) std::sync::Arc<str>);

impl Route {
    /// A route template. Keep it low-cardinality: a template, never a path.
    pub fn new(template: impl Into<std::sync::Arc<str>>) -> Self {
        Route(template.into())
    }
}
