//! With the `tracing` feature, `tracing` spans and events inside an
//! `OtelLayer` handler join the request's trace, over real HTTP and OTLP.

use axum::routing::get;
use axum::Router;
use otel_setup::Telemetry;
use otel_testkit::otlp::OtlpReceiver;
use std::time::Duration;

#[tracing::instrument]
async fn validate_order(id: u32) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    tracing::info!(id, "order validated");
}

/// A tracing span around an instrumented reqwest call: the CLIENT span is
/// its child.
#[tracing::instrument(skip(client))]
async fn fetch_user(client: &reqwest_middleware::ClientWithMiddleware, url: String) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_spans_and_logs_join_the_request_trace() {
    let rx = OtlpReceiver::start();
    let t = Telemetry::builder()
        .service_name("tracing-test")
        .env_map([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            ("RUST_LOG", "info".into()),
        ])
        .quiet()
        .install()
        .expect("install");
    assert!(
        t.effective_config().warnings.is_empty(),
        "{:?}",
        t.effective_config().warnings
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(otel_reqwest::OtelMiddleware::new())
        .build();
    let app = Router::new()
        .route(
            "/work",
            get(move || {
                let client = client.clone();
                async move {
                    tracing::info!("handling work");
                    validate_order(7).await;
                    fetch_user(&client, format!("http://{addr}/user")).await;
                    "done"
                }
            }),
        )
        .route("/user", get(|| async { "alice" }))
        .layer(otel_tower::OtelLayer::new());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let body = reqwest::get(format!("http://{addr}/work"))
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "done");
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::task::spawn_blocking(move || t.shutdown())
        .await
        .expect("shutdown");

    let spans = rx.wait_for_spans(5, Duration::from_secs(10));
    let server = spans
        .iter()
        .find(|s| s.span.name == "GET /work")
        .expect("server span");
    let validate = spans
        .iter()
        .find(|s| s.span.name == "validate_order")
        .expect("tracing span");
    assert_eq!(validate.trace_id(), server.trace_id());
    assert_eq!(
        validate.parent_id(),
        server.span_id(),
        "the tracing span is a child of the server span"
    );

    let fetch = spans
        .iter()
        .find(|s| s.span.name == "fetch_user")
        .expect("tracing span");
    let call = spans
        .iter()
        .find(|s| s.span.kind == 3)
        .expect("client span");
    assert_eq!(fetch.parent_id(), server.span_id());
    assert_eq!(
        call.parent_id(),
        fetch.span_id(),
        "the tracing span parents the CLIENT span"
    );
    let downstream = spans
        .iter()
        .find(|s| s.span.name == "GET /user")
        .expect("downstream server span");
    assert_eq!(downstream.parent_id(), call.span_id());

    let logs = rx.logs();
    let handling = logs
        .iter()
        .find(|l| l.body == "handling work")
        .expect("handler log exported");
    assert_eq!(handling.trace_id, server.trace_id());
    assert_eq!(handling.span_id, server.span_id());
    assert_eq!(handling.severity, "INFO");
    let validated = logs
        .iter()
        .find(|l| l.body == "order validated")
        .expect("span log exported");
    assert_eq!(validated.trace_id, server.trace_id());
    assert_eq!(validated.span_id, validate.span_id());
    assert!(validated.resource.iter().any(|kv| kv.key == "service.name"));
}
