//! The user service: `GET /users/{id}` looks a user up (`db_query`) and
//! caches it (`cache_set`). Users 1-3 exist; any other id is 404; id 13
//! makes the "database" fail with a 500, for the demo's failure path.
#![forbid(unsafe_code)]

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::KeyValue;
use std::sync::Arc;

/// The user this id fails for, to show an error crossing services.
pub const FAILING_USER: u32 = 13;

const USERS: [(u32, &str); 3] = [(1, "alice"), (2, "bob"), (3, "carol")];

/// A user, as the service returns it.
#[derive(serde::Serialize)]
pub struct User {
    /// Its id.
    pub id: u32,
    /// Its name.
    pub name: &'static str,
}

/// The service's router, instrumented with the given providers.
pub fn app<T, M>(tracer_provider: &T, meter_provider: &M) -> Router
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
    let tracer = Arc::new(example_support::tracer(tracer_provider, "user-service"));
    let router = Router::new().route(
        "/users/{id}",
        get(move |Path(id): Path<u32>| get_user(tracer.clone(), id)),
    );
    example_support::instrumented(router, tracer_provider, meter_provider)
}

async fn get_user(tracer: Arc<BoxedTracer>, id: u32) -> Response {
    let found = example_support::step(&tracer, "db_query", 15, |cx| {
        let span = cx.span();
        span.set_attribute(KeyValue::new("db.system.name", "memory"));
        span.set_attribute(KeyValue::new("app.user_id", i64::from(id)));
        if id == FAILING_USER {
            span.set_status(Status::error("database unavailable"));
            return Err(());
        }
        Ok(USERS
            .iter()
            .find(|(uid, _)| *uid == id)
            .map(|(_, name)| *name))
    })
    .await;
    match found {
        Err(()) => {
            tracing::error!(id, "database unavailable");
            (StatusCode::INTERNAL_SERVER_ERROR, "database unavailable").into_response()
        }
        Ok(None) => {
            tracing::info!(id, "no such user");
            (StatusCode::NOT_FOUND, "no such user").into_response()
        }
        Ok(Some(name)) => {
            example_support::step(&tracer, "cache_set", 3, |cx| {
                cx.span()
                    .set_attribute(KeyValue::new("app.cache.key", format!("user:{id}")));
            })
            .await;
            Json(User { id, name }).into_response()
        }
    }
}

/// The binary's entry point: see `example_support::run`.
pub async fn main() -> std::process::ExitCode {
    example_support::run("user-service", 8081, || {
        app(
            &opentelemetry::global::tracer_provider(),
            &*opentelemetry::global::meter_provider(),
        )
    })
    .await
}
