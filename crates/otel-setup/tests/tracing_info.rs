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
    let app = Router::new()
        .route(
            "/work",
            get(|| async {
                tracing::info!("handling work");
                validate_order(7).await;
                "done"
            }),
        )
        .layer(otel_tower::OtelLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
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

    let spans = rx.wait_for_spans(2, Duration::from_secs(10));
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
