//! The order service: `POST /order` validates the order (`validate_order`),
//! asks user-service for the user through an instrumented reqwest client,
//! and stores the order (`save_to_database`).
//!
//! - an invalid order is a 400 (the client's error: no error status);
//! - an unknown user is a 404;
//! - user-service failing or unreachable is a 502, with the error recorded on
//!   the server span as an `exception` event.
//!
//! Logs and `validate_order` use `tracing`; otel-setup's `tracing` feature
//! turns them into log records and spans of the same trace.
#![forbid(unsafe_code)]

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use otel_reqwest::{OtelMiddleware, UrlTemplate};
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

struct AppState {
    tracer: BoxedTracer,
    client: reqwest_middleware::ClientWithMiddleware,
    user_service: String,
    next_id: AtomicU64,
}

/// The service's router, instrumented with the given providers, calling
/// user-service at `user_service` (`http://host:port`).
pub fn app<T, M>(tracer_provider: &T, meter_provider: &M, user_service: &str) -> Router
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
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
/// (default `http://127.0.0.1:8081`) says where user-service is.
pub async fn main() -> std::process::ExitCode {
    let user_service =
        std::env::var("USER_SERVICE_URL").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    example_support::run("order-service", 8080, || {
        app(
            &opentelemetry::global::tracer_provider(),
            &*opentelemetry::global::meter_provider(),
            &user_service,
        )
    })
    .await
}
