//! The gRPC variants: a tonic service (the demo's `inventory.v1.Inventory`,
//! answering `Reserve` at once) as axum serves it, bare or behind one
//! instrumentation, called in process with one unary request.

use axum::Router;
use inventory_service::pb::inventory_server::{Inventory, InventoryServer};
use inventory_service::pb::{ReserveReply, ReserveRequest, StockLevel, WatchRequest};
use opentelemetry_sdk::trace::SdkTracerProvider;
use prost::Message;
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

/// gRPC variants, compared with `grpc_bare`.
pub const GRPC_VARIANTS: [&str; 6] = [
    "grpc_bare",
    "grpc_otel_sampled",
    "grpc_otel_not_sampled",
    "grpc_tower_http_trace",
    "grpc_axum_tracing_opentelemetry",
    "grpc_instrumentation_tower",
];

/// The method every gRPC run calls.
pub const GRPC_PATH: &str = "/inventory.v1.Inventory/Reserve";

/// A service whose `Reserve` answers at once; the streaming methods are
/// not called.
#[derive(Clone, Copy)]
struct Instant;

type LevelStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<StockLevel, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for Instant {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveReply>, Status> {
        Ok(Response::new(ReserveReply {
            reservation_id: "r-1".into(),
            remaining: request.into_inner().quantity,
        }))
    }

    type WatchStream = LevelStream;

    async fn watch(&self, _: Request<WatchRequest>) -> Result<Response<LevelStream>, Status> {
        Err(Status::unimplemented("not benchmarked"))
    }

    async fn reserve_many(
        &self,
        _: Request<Streaming<ReserveRequest>>,
    ) -> Result<Response<ReserveReply>, Status> {
        Err(Status::unimplemented("not benchmarked"))
    }

    type SyncStream = LevelStream;

    async fn sync(
        &self,
        _: Request<Streaming<ReserveRequest>>,
    ) -> Result<Response<LevelStream>, Status> {
        Err(Status::unimplemented("not benchmarked"))
    }
}

fn routes() -> Router {
    tonic::service::Routes::new(InventoryServer::new(Instant)).into_axum_router()
}

/// The app of a gRPC variant; `None` for an unknown name.
pub fn grpc_app(variant: &str, tracer: &SdkTracerProvider) -> Option<Router> {
    let app = match variant {
        "grpc_bare" => routes(),
        "grpc_otel_sampled" | "grpc_otel_not_sampled" => {
            routes().layer(otel_tower::OtelLayer::new())
        }
        "grpc_tower_http_trace" => {
            super::tracing_bridge(tracer);
            routes().layer(tower_http::trace::TraceLayer::new_for_grpc())
        }
        // Its layer tells gRPC requests apart and records the RPC
        // attributes of its own (older) conventions.
        "grpc_axum_tracing_opentelemetry" => {
            super::tracing_bridge(tracer);
            routes().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        }
        // HTTP-only: a gRPC call is recorded as an HTTP POST.
        "grpc_instrumentation_tower" => {
            routes().layer(opentelemetry_instrumentation_tower::http::server::Layer::new())
        }
        _ => return None,
    };
    Some(app.with_state(()))
}

/// One unary `Reserve` call as a client sends it: a length-prefixed
/// message, with a sampled caller's `traceparent`.
pub fn grpc_request() -> Option<http::Request<axum::body::Body>> {
    let message = ReserveRequest {
        item: "book".into(),
        quantity: 2,
    }
    .encode_to_vec();
    let mut body = Vec::with_capacity(5 + message.len());
    body.push(0);
    body.extend_from_slice(&u32::try_from(message.len()).ok()?.to_be_bytes());
    body.extend_from_slice(&message);
    http::Request::post(GRPC_PATH)
        .version(http::Version::HTTP_2)
        .header("host", "127.0.0.1:8082")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", "bench")
        .header("traceparent", super::TRACEPARENT)
        .body(axum::body::Body::from(body))
        .ok()
}
