//! The order service: `POST /order` validates the order (`validate_order`),
//! asks user-service for the user through an instrumented reqwest client,
//! reserves the stock at inventory-service over gRPC through an
//! instrumented tonic channel, and stores the order (`save_to_database`).
//!
//! - an invalid order is a 400 (the client's error: no error status);
//! - an unknown user or item is a 404;
//! - not enough stock (`FAILED_PRECONDITION` from inventory-service) is a
//!   409;
//! - user-service or inventory-service failing or unreachable is a 502, with
//!   the error recorded on the server span as an `exception` event.
//!
//! Logs and `validate_order` use `tracing`; otel-setup's `tracing` feature
//! turns them into log records and spans of the same trace.
#![forbid(unsafe_code)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use inventory_service::pb::inventory_client::InventoryClient;
use inventory_service::pb::ReserveRequest;
use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use otel_reqwest::{OtelMiddleware, UrlTemplate};
use otel_tower::grpc_client::GrpcClientService;
use otel_tower::GrpcClientLayer;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An order as clients send it.
#[derive(serde::Deserialize, serde::Serialize, Clone, Debug)]
pub struct OrderRequest {
    /// Who orders.
    pub user_id: u32,
    /// What.
    pub item: String,
    /// How many (1 to 100).
    pub quantity: u32,
}

/// The gRPC client of inventory-service, every call traced.
type Inventory = InventoryClient<GrpcClientService<tonic::transport::Channel>>;

struct AppState {
    tracer: BoxedTracer,
    client: reqwest_middleware::ClientWithMiddleware,
    user_service: String,
    inventory: Inventory,
    next_id: AtomicU64,
}

/// Where the services order-service calls are (`http://host:port`).
#[derive(Clone, Debug)]
pub struct Upstreams {
    /// user-service, over HTTP.
    pub user_service: String,
    /// inventory-service, over gRPC.
    pub inventory_service: String,
}

/// A channel to inventory-service that connects on first use, so that
/// order-service starts (and answers 502) while inventory-service is down.
fn inventory_client<T, M>(tracer_provider: &T, meter_provider: &M, target: &str) -> Inventory
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
    let endpoint = tonic::transport::Endpoint::from_shared(target.to_owned())
        .unwrap_or_else(|_| tonic::transport::Endpoint::from_static("http://127.0.0.1:8082"))
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5));
    let layer = GrpcClientLayer::builder(target)
        .tracer_provider(tracer_provider)
        .meter_provider(meter_provider)
        .build();
    InventoryClient::new(
        tower::ServiceBuilder::new()
            .layer(layer)
            .service(endpoint.connect_lazy()),
    )
}

/// The service's router, instrumented with the given providers, calling
/// user-service and inventory-service where `upstreams` says.
pub fn app<T, M>(tracer_provider: &T, meter_provider: &M, upstreams: &Upstreams) -> Router
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
    let user_service = upstreams.user_service.as_str();
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
    )
    .with(
        OtelMiddleware::builder()
            .tracer_provider(tracer_provider)
            .meter_provider(meter_provider)
            .build(),
    )
    .build();
    let state = Arc::new(AppState {
        tracer: example_support::tracer(tracer_provider, "order-service"),
        client,
        user_service: user_service.trim_end_matches('/').to_owned(),
        inventory: inventory_client(
            tracer_provider,
            meter_provider,
            &upstreams.inventory_service,
        ),
        next_id: AtomicU64::new(1),
    });
    let router = Router::new()
        .route("/order", post(create_order))
        .with_state(state);
    example_support::instrumented(router, tracer_provider, meter_provider)
}

fn record_exception(message: &str) {
    tracing::error!(%message, "order failed");
    Context::current().span().add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "upstream_error"),
            KeyValue::new("exception.message", message.to_owned()),
        ],
    );
}

/// A `tracing` span: with otel-setup's `tracing` feature it is an
/// OpenTelemetry span, a child of the request's server span.
#[tracing::instrument(skip_all, fields(user_id = order.user_id, quantity = order.quantity))]
async fn validate_order(order: &OrderRequest) -> bool {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let ok = !order.item.trim().is_empty() && (1..=100).contains(&order.quantity);
    if !ok {
        tracing::warn!(item = %order.item, "rejected an invalid order");
    }
    ok
}

async fn create_order(
    State(state): State<Arc<AppState>>,
    Json(order): Json<OrderRequest>,
) -> Response {
    tracing::info!(user_id = order.user_id, item = %order.item, "order received");
    if !validate_order(&order).await {
        return (
            StatusCode::BAD_REQUEST,
            "an order needs an item and a quantity from 1 to 100",
        )
            .into_response();
    }

    let url = format!("{}/users/{}", state.user_service, order.user_id);
    let user = state
        .client
        .get(url)
        .with_extension(UrlTemplate::new("/users/{id}"))
        .send()
        .await;
    let user: serde_json::Value = match user {
        Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
            return (StatusCode::NOT_FOUND, "no such user").into_response();
        }
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(v) => v,
            Err(e) => {
                let msg = format!(
                    "user-service sent a bad body: {}",
                    otel_reqwest::redacted_error_message(&e)
                );
                record_exception(&msg);
                return (StatusCode::BAD_GATEWAY, msg).into_response();
            }
        },
        Ok(r) => {
            let msg = format!("user-service answered {}", r.status());
            record_exception(&msg);
            return (StatusCode::BAD_GATEWAY, msg).into_response();
        }
        Err(e) => {
            // The error quotes the URL: logged and answered redacted.
            let msg = format!(
                "user-service unreachable: {}",
                otel_reqwest::redacted_error_message(&e)
            );
            record_exception(&msg);
            return (StatusCode::BAD_GATEWAY, msg).into_response();
        }
    };

    // Stock is reserved over gRPC: a CLIENT span in this trace, and the
    // inventory-service's SERVER span under it.
    let reservation = state
        .inventory
        .clone()
        .reserve(ReserveRequest {
            item: order.item.clone(),
            quantity: order.quantity,
        })
        .await;
    if let Err(status) = reservation {
        return match status.code() {
            tonic::Code::FailedPrecondition => {
                tracing::warn!(item = %order.item, "out of stock");
                (StatusCode::CONFLICT, status.message().to_owned()).into_response()
            }
            tonic::Code::NotFound => (StatusCode::NOT_FOUND, "no such item").into_response(),
            code => {
                let msg = format!("inventory-service failed: {code:?}: {}", status.message());
                record_exception(&msg);
                (StatusCode::BAD_GATEWAY, msg).into_response()
            }
        };
    }

    let id = example_support::step(&state.tracer, "save_to_database", 10, |cx| {
        let id = state.next_id.fetch_add(1, Ordering::Relaxed);
        cx.span()
            .set_attribute(KeyValue::new("app.order.id", id as i64));
        id
    })
    .await;
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "order_id": id, "user": user["name"], "item": order.item })),
    )
        .into_response()
}

/// The binary's entry point: see `example_support::run`. `USER_SERVICE_URL`
/// (default `http://127.0.0.1:8081`) and `INVENTORY_SERVICE_URL` (default
/// `http://127.0.0.1:8082`) say where the other services are.
pub async fn main() -> std::process::ExitCode {
    let var = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let upstreams = Upstreams {
        user_service: var("USER_SERVICE_URL", "http://127.0.0.1:8081"),
        inventory_service: var("INVENTORY_SERVICE_URL", "http://127.0.0.1:8082"),
    };
    example_support::run("order-service", 8080, || {
        app(
            &opentelemetry::global::tracer_provider(),
            &*opentelemetry::global::meter_provider(),
            &upstreams,
        )
    })
    .await
}
