//! The inventory service: gRPC (tonic) on the same port as its HTTP
//! `/health`, one `OtelLayer` for both. `inventory.v1.Inventory/Reserve`
//! takes stock for an order line; `Watch`, `ReserveMany` and `Sync` are its
//! server-, client- and bidirectional-streaming forms.
//!
//! - an unknown item is `NOT_FOUND`;
//! - not enough stock is `FAILED_PRECONDITION` (the caller's problem: the
//!   server span stays unset, the client span is an error);
//! - [`FAILING_ITEM`] makes the stock database fail: `INTERNAL`, an error on
//!   both sides.
#![forbid(unsafe_code)]

use axum::Router;
use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Status as SpanStatus, TraceContextExt};
use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The generated gRPC code (from `proto/inventory.proto`, by protox and
/// tonic's build crate).
pub mod pb {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("inventory.v1");
}

use pb::inventory_server::{Inventory, InventoryServer};
use pb::{ReserveReply, ReserveRequest, StockLevel, WatchRequest};

/// The item whose stock lookup fails, to show a server error over gRPC.
pub const FAILING_ITEM: &str = "glitch";
/// An item that is never in stock, to show a refused reservation.
pub const OUT_OF_STOCK_ITEM: &str = "globe";
/// The gRPC service's full name.
pub const SERVICE: &str = pb::inventory_server::SERVICE_NAME;

/// The stock each item starts with.
const STOCK: [(&str, u32); 5] = [
    ("book", 1_000),
    ("pen", 10_000),
    ("lamp", 500),
    (OUT_OF_STOCK_ITEM, 0),
    (FAILING_ITEM, 1),
];

/// The service's state: stock by item.
pub struct InventoryService {
    tracer: BoxedTracer,
    stock: Mutex<HashMap<String, u32>>,
    next_id: AtomicU64,
}

impl InventoryService {
    /// A service with the starting stock; its own spans come from
    /// `tracer_provider`.
    pub fn new<T: ObjectSafeTracerProvider + ?Sized>(tracer_provider: &T) -> Self {
        InventoryService {
            tracer: example_support::tracer(tracer_provider, "inventory-service"),
            stock: Mutex::new(STOCK.iter().map(|(i, n)| ((*i).to_owned(), *n)).collect()),
            next_id: AtomicU64::new(1),
        }
    }

    /// Takes `quantity` of `item` (a `stock_lookup` span), returning what is
    /// left.
    async fn take(&self, item: &str, quantity: u32) -> Result<u32, Status> {
        example_support::step(&self.tracer, "stock_lookup", 4, |cx| {
            let span = cx.span();
            span.set_attribute(KeyValue::new("app.item", item.to_owned()));
            span.set_attribute(KeyValue::new("app.quantity", i64::from(quantity)));
            if item == FAILING_ITEM {
                span.set_status(SpanStatus::error("stock database unavailable"));
                tracing::error!(item, "stock database unavailable");
                return Err(Status::internal("stock database unavailable"));
            }
            let mut stock = self
                .stock
                .lock()
                .map_err(|_| Status::internal("stock table poisoned"))?;
            let Some(available) = stock.get_mut(item) else {
                return Err(Status::not_found(format!("no item {item:?}")));
            };
            if *available < quantity {
                tracing::warn!(item, quantity, available = *available, "not enough stock");
                return Err(Status::failed_precondition(format!(
                    "only {available} {item} in stock"
                )));
            }
            *available -= quantity;
            Ok(*available)
        })
        .await
    }

    fn level(&self, item: &str) -> Result<u32, Status> {
        let stock = self
            .stock
            .lock()
            .map_err(|_| Status::internal("stock table poisoned"))?;
        stock
            .get(item)
            .copied()
            .ok_or_else(|| Status::not_found(format!("no item {item:?}")))
    }
}

type StockStream = Pin<Box<dyn Stream<Item = Result<StockLevel, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for Arc<InventoryService> {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveReply>, Status> {
        let ReserveRequest { item, quantity } = request.into_inner();
        let remaining = self.take(&item, quantity).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::info!(item, quantity, remaining, "stock reserved");
        Ok(Response::new(ReserveReply {
            reservation_id: format!("r-{id}"),
            remaining,
        }))
    }

    type WatchStream = StockStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let WatchRequest { item, updates } = request.into_inner();
        let first = self.level(&item)?;
        let service = Arc::clone(self);
        let stream = async_stream(updates.min(100), move |n| {
            let level = if n == 0 {
                Ok(first)
            } else {
                service.level(&item)
            };
            level.map(|available| StockLevel {
                item: item.clone(),
                available,
            })
        });
        Ok(Response::new(stream))
    }

    async fn reserve_many(
        &self,
        request: Request<Streaming<ReserveRequest>>,
    ) -> Result<Response<ReserveReply>, Status> {
        let mut lines = request.into_inner();
        let mut remaining = 0;
        while let Some(line) = lines.next().await {
            let line = line?;
            remaining = self.take(&line.item, line.quantity).await?;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(ReserveReply {
            reservation_id: format!("r-{id}"),
            remaining,
        }))
    }

    type SyncStream = StockStream;

    async fn sync(
        &self,
        request: Request<Streaming<ReserveRequest>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let mut lines = request.into_inner();
        let service = Arc::clone(self);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(line) = lines.next().await {
                let reply = match line {
                    Ok(line) => service
                        .take(&line.item, line.quantity)
                        .await
                        .map(|available| StockLevel {
                            item: line.item,
                            available,
                        }),
                    Err(status) => Err(status),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// `count` items, 5 ms apart, each made by `next(n)`; an error ends it.
fn async_stream<F>(count: u32, mut next: F) -> StockStream
where
    F: FnMut(u32) -> Result<StockLevel, Status> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for n in 0..count {
            if n > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            let item = next(n);
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The gRPC service as a router (tonic's routes are tower services an axum
/// `Router` holds), without instrumentation.
pub fn grpc_routes(service: Arc<InventoryService>) -> Router {
    tonic::service::Routes::new(InventoryServer::new(service)).into_axum_router()
}

/// The service's router, instrumented with the given providers: gRPC calls
/// get RPC spans, `/health` is plain HTTP.
pub fn app<T, M>(tracer_provider: &T, meter_provider: &M) -> Router
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
    let service = Arc::new(InventoryService::new(tracer_provider));
    example_support::instrumented_with(
        grpc_routes(service),
        example_support::layer(tracer_provider, meter_provider).grpc_services([SERVICE]),
    )
}

/// The binary's entry point: see `example_support::run`.
pub async fn main() -> std::process::ExitCode {
    example_support::run("inventory-service", 8082, || {
        app(
            &opentelemetry::global::tracer_provider(),
            &*opentelemetry::global::meter_provider(),
        )
    })
    .await
}
