//! `RUST_LOG=error` filters `tracing` spans and info events, never the
//! OpenTelemetry server span.

use axum::routing::get;
use axum::Router;
use otel_setup::Telemetry;
use otel_testkit::otlp::OtlpReceiver;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_error_keeps_the_server_span() {
    let rx = OtlpReceiver::start();
    let t = Telemetry::builder()
        .service_name("tracing-error-test")
        .env_map([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            ("RUST_LOG", "error".into()),
        ])
        .quiet()
        .install()
        .expect("install");
    let app = Router::new()
        .route(
            "/work",
            get(|| async {
                let _span = tracing::info_span!("info_level_step").entered();
                tracing::info!("not exported");
                tracing::error!("exported");
                "done"
            }),
        )
        .layer(otel_tower::OtelLayer::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let status = reqwest::get(format!("http://{addr}/work"))
        .await
        .expect("response")
        .status();
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::task::spawn_blocking(move || t.shutdown())
        .await
        .expect("shutdown");

    let spans = rx.wait_for_spans(1, Duration::from_secs(10));
    let names: Vec<&str> = spans.iter().map(|s| s.span.name.as_str()).collect();
    assert_eq!(
        names,
        ["GET /work"],
        "the server span stays; the info span is filtered"
    );
    let logs = rx.logs();
    let bodies: Vec<&str> = logs.iter().map(|l| l.body.as_str()).collect();
    assert_eq!(bodies, ["exported"]);
    assert_eq!(logs[0].trace_id, spans[0].trace_id());
}
