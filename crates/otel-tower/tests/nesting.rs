//! What a handler does nests under the server span: `tracing` spans through
//! tracing-opentelemetry, and outgoing calls through otel-reqwest, whose
//! server is in the same trace.

mod common;

use axum::routing;
use axum::Router;
use common::*;
use opentelemetry::trace::{SpanKind, TracerProvider};
use otel_testkit::{assert_child_of, SpanDataExt, TestTelemetry};
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_spans_in_a_handler_are_children_of_the_server_span() {
    let t = TestTelemetry::new();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(t.tracer_provider().tracer("tracing")));
    let dispatch = tracing::Dispatch::new(subscriber);
    let app = Router::new()
        .route(
            "/work",
            routing::get(|| async {
                #[tracing::instrument]
                async fn validate_order() {
                    tracing::info_span!("inner_step").in_scope(|| {});
                }
                validate_order().await;
                "done"
            }),
        )
        .layer(layer(&t).build());
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let dispatch = dispatch.clone();
            async move {
                let _guard = tracing::dispatcher::set_default(&dispatch);
                next.run(req).await
            }
        },
    ));
    let addr = serve(app).await;
    assert_eq!(get(addr, "/work").await.body, "done");
    t.wait_for_spans(3, WAIT);
    let server = t.span("GET /work");
    let validate = t.span("validate_order");
    assert_child_of(&validate, &server);
    assert_child_of(&t.span("inner_step"), &validate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_from_a_handler_is_a_child_and_parents_the_next_service() {
    let t = TestTelemetry::new();
    // user-service
    let downstream = serve(routes(&t).layer(layer(&t).build())).await;
    // order-service calls it from its handler.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            otel_reqwest::OtelMiddleware::builder()
                .tracer_provider(t.tracer_provider())
                .meter_provider(t.meter_provider())
                .propagator(otel_propagation::default_propagator())
                .build(),
        )
        .build();
    let app = Router::new()
        .route(
            "/order",
            routing::get(move || {
                let client = client.clone();
                async move {
                    client
                        .get(format!("http://{downstream}/users/7"))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                        .to_string()
                }
            }),
        )
        .layer(layer(&t).build());
    let addr = serve(app).await;
    assert_eq!(get(addr, "/order").await.body, "200");
    let spans = t.wait_for_spans(4, WAIT);
    assert_eq!(
        spans.len(),
        4,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let order = t.span("GET /order");
    let call = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client span");
    let user = t.span("GET /users/{id}");
    assert_child_of(call, &order);
    assert_child_of(&user, call);
    assert_child_of(&t.span("db_query"), &user);
    assert!(user.parent_span_is_remote);
    assert_eq!(order.trace_id(), user.trace_id());
}
