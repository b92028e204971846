//! The log record queue (feature `tracing`): every record emitted is
//! exported or counted by cause, behind a slow collector with a small queue,
//! and its self-metrics name the log processor.

use otel_setup::{DropCause, Signal, Telemetry};
use otel_testkit::otlp::OtlpReceiver;
use std::time::Duration;

#[test]
fn every_log_record_is_exported_or_counted() {
    let rx = OtlpReceiver::start();
    rx.delay(Duration::from_millis(50));
    let t = Telemetry::builder()
        .service_name("logs-test")
        .local()
        .quiet()
        .env_map([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_TRACES_EXPORTER", "none".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000".into()),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "8".into()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "20".into()),
            ("RUST_LOG", "info".into()),
        ])
        .install()
        .expect("install");
    let dispatch = t.tracing_dispatch().expect("a subscriber").clone();
    let made = 400u64;
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..made {
            tracing::info!(i, "record");
        }
    });
    let d = t.shutdown();
    let received = rx.logs().len() as u64;
    assert!(d.get(Signal::Logs, DropCause::QueueFull) > 0, "{d}");
    assert_eq!(
        received + d.signal(Signal::Logs),
        made,
        "received {received}, counted {d}"
    );
    assert_eq!(d.exported(Signal::Logs), received);
    let queue_full = rx
        .last_sum_with(
            "otel.sdk.processor.log.processed",
            "error.type",
            "queue_full",
        )
        .map(|v| v as u64);
    assert_eq!(queue_full, Some(d.get(Signal::Logs, DropCause::QueueFull)));
}
