//! Real OTLP export, over gRPC and HTTP, to an in-test receiver built on
//! opentelemetry-proto; shutdown flushes; a dead collector costs nothing but
//! counted drops.

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry::KeyValue;
use otel_setup::{Protocol, Telemetry};
use otel_testkit::otlp::OtlpReceiver;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Waits, bounded, until `f` holds: an export that fails is counted when
/// it gives up, which a loaded machine may delay past a flush.
fn until(what: &str, f: impl FnMut() -> bool) {
    otel_testkit::wait_until(what, Duration::from_secs(20), f);
}

/// Installed locally: no test here changes process-wide state but
/// `sdk_disabled_installs_no_providers_but_propagates`, which must.
fn install(vars: &[(&str, String)]) -> Telemetry {
    Telemetry::builder()
        .local()
        .service_name("export-test")
        .service_version("1.2.3")
        .resource_attribute(KeyValue::new("deployment.environment.name", "test"))
        // Only shutdown (or flush) exports, so the test proves it flushes.
        .env_map(
            [
                ("OTEL_BSP_SCHEDULE_DELAY", "60000".to_string()),
                ("OTEL_METRIC_EXPORT_INTERVAL", "60000".to_string()),
            ]
            .into_iter()
            .chain(vars.iter().map(|(k, v)| (*k, v.clone()))),
        )
        .quiet()
        .install()
        .expect("install")
}

fn record(t: &Telemetry, n: usize) {
    let tracer = t.tracer_provider().expect("enabled").tracer("test");
    for i in 0..n {
        tracer.in_span(format!("work-{i}"), |_| {});
    }
    let counter = t
        .meter_provider()
        .expect("enabled")
        .meter("test")
        .u64_counter("jobs")
        .build();
    counter.add(n as u64, &[]);
}

fn assert_received(rx: &OtlpReceiver, n: usize) {
    let spans = rx.wait_for_spans(n, WAIT);
    // OTLP allows a batch to arrive twice (a retry after an answer that came
    // too late on a loaded machine): each span counts once.
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id()).collect();
    assert_eq!(ids.len(), n, "every span arrives after shutdown");
    for s in &spans {
        assert_eq!(
            s.resource_attr("service.name").as_deref(),
            Some("export-test")
        );
        assert_eq!(
            s.resource_attr("deployment.environment.name").as_deref(),
            Some("test")
        );
        assert_eq!(
            s.resource_attr("telemetry.sdk.language").as_deref(),
            Some("rust")
        );
    }
    let deadline = Instant::now() + WAIT;
    while rx.metrics().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let metrics = rx.metrics();
    assert!(
        metrics
            .iter()
            .any(|(name, svc)| name == "jobs" && svc.as_deref() == Some("export-test")),
        "{metrics:?}"
    );
}

#[test]
fn grpc_export_outside_any_runtime() {
    let rx = OtlpReceiver::start();
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s%20ecret".into()),
    ]);
    record(&t, 25);
    t.shutdown();
    assert_received(&rx, 25);
    let headers = rx.trace_request_headers();
    assert_eq!(headers[0]["x-api-key"], "s ecret");
}

#[test]
fn http_protobuf_export_with_gzip() {
    let rx = OtlpReceiver::start();
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=a".into()),
    ]);
    record(&t, 10);
    t.shutdown();
    assert_received(&rx, 10);
    let headers = rx.trace_request_headers();
    assert_eq!(headers[0]["x-tenant"], "a");
    assert_eq!(headers[0]["content-encoding"], "gzip");
}

#[test]
fn http_json_export() {
    let rx = OtlpReceiver::start();
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
    ]);
    record(&t, 3);
    t.shutdown();
    assert_received(&rx, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_from_inside_a_tokio_runtime_and_drop_flushes() {
    let rx = OtlpReceiver::start();
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint()),
    ]);
    record(&t, 5);
    // Dropping the guard inside async code must neither panic nor lose data.
    drop(t);
    let spans = tokio::task::spawn_blocking(move || {
        let s = rx.wait_for_spans(5, WAIT);
        s.len()
    })
    .await
    .expect("join");
    assert_eq!(spans, 5);
}

#[test]
fn per_signal_endpoints_split_traces_and_metrics() {
    let traces_rx = OtlpReceiver::start();
    let metrics_rx = OtlpReceiver::start();
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/v1/traces", traces_rx.http_endpoint()),
        ),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc".into()),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            metrics_rx.grpc_endpoint(),
        ),
    ]);
    record(&t, 2);
    t.shutdown();
    assert_eq!(traces_rx.wait_for_spans(2, WAIT).len(), 2);
    assert!(traces_rx.metrics().is_empty());
    assert!(metrics_rx.spans().is_empty());
    let deadline = Instant::now() + WAIT;
    while metrics_rx.metrics().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(metrics_rx.metrics().iter().any(|(n, _)| n == "jobs"));
}

#[test]
fn collector_down_install_succeeds_and_drops_are_counted() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let t = Telemetry::builder()
            .local()
            .service_name("down")
            .otlp_endpoint(format!("http://{closed}"), protocol)
            .env_map([("OTEL_EXPORTER_OTLP_TIMEOUT", "500")])
            .quiet()
            .install()
            .expect("install succeeds with the collector down");
        record(&t, 20);
        t.flush();
        until(&format!("{protocol:?}: 20 drops counted"), || {
            t.dropped_spans() >= 20
        });
        let started = Instant::now();
        t.shutdown();
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "shutdown is bounded"
        );
    }
}

#[test]
fn export_resumes_when_the_collector_recovers() {
    let rx = OtlpReceiver::start();
    rx.fail_with(503);
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000".into()),
    ]);
    record(&t, 4);
    t.flush();
    until("4 drops counted", || t.dropped_spans() >= 4);
    rx.recover();
    let tracer = t.tracer_provider().expect("enabled").tracer("test");
    tracer.in_span("after-recovery", |_| {});
    t.shutdown();
    let spans = rx.wait_for_spans(1, WAIT);
    assert!(spans.iter().any(|s| s.span.name == "after-recovery"));
}

#[test]
fn sdk_disabled_installs_no_providers_but_propagates() {
    let t = Telemetry::builder()
        .env_map([("OTEL_SDK_DISABLED", "true")])
        .quiet()
        .install()
        .expect("install");
    assert!(t.tracer_provider().is_none());
    assert!(t.effective_config().disabled);
    // The propagator is still installed: a remote context goes on.
    let mut incoming = http::HeaderMap::new();
    incoming.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let cx = otel_propagation::extract(&incoming);
    let mut outgoing = http::HeaderMap::new();
    otel_propagation::inject_context(&cx, &mut outgoing);
    assert_eq!(outgoing["traceparent"], incoming["traceparent"]);
}

#[test]
fn code_settings_beat_the_environment() {
    let t = Telemetry::builder()
        .service_name("from-code")
        .local()
        .traces_exporters([])
        .metrics_exporters([])
        .env_map([
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_TRACES_EXPORTER", "console"),
            ("OTEL_TRACES_SAMPLER", "nonsense"),
        ])
        .quiet()
        .install()
        .expect("install");
    let cfg = t.effective_config();
    assert_eq!(cfg.service_name, "from-code");
    assert!(cfg.traces_exporters.is_empty());
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].to_string().contains("OTEL_TRACES_SAMPLER"));
}

/// Every endpoint that cannot be used, in the runtime every axum service
/// runs in: install succeeds, no panic (installing or dropping), one
/// warning naming the variable, and that signal's OTLP export is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_cannot_work_is_one_warning_and_that_export_off() {
    let cases: &[(&str, &str, &str)] = &[
        ("http/protobuf", "OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
        (
            "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "127.0.0.1:4318",
        ),
        (
            "http/protobuf",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "ftp://collector:21",
        ),
        ("grpc", "OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
        (
            "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "unix:///tmp/otlp.sock",
        ),
        ("http/json", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://"),
    ];
    for (protocol, variable, value) in cases {
        let t = Telemetry::builder()
            .local()
            .quiet()
            .env_map([
                ("OTEL_EXPORTER_OTLP_PROTOCOL", *protocol),
                (*variable, *value),
            ])
            .install()
            .expect("an unusable endpoint does not fail install");
        let cfg = t.effective_config();
        let about: Vec<_> = cfg
            .warnings
            .iter()
            .filter(|w| w.variable == *variable)
            .collect();
        assert_eq!(about.len(), 1, "{value}: {:?}", cfg.warnings);
        let text = about[0].to_string();
        assert!(
            text.contains(value) && text.contains("http://") && text.contains("is off"),
            "{text}"
        );
        assert!(!cfg
            .traces_exporters
            .contains(&otel_setup::ExporterKind::Otlp));
        // The service goes on: spans can be made and the guard drops here,
        // inside the runtime, without a panic.
        record(&t, 1);
        drop(t);
    }
}

#[test]
fn strict_mode_turns_a_warning_into_an_error() {
    let err = Telemetry::builder()
        .local()
        .quiet()
        .strict()
        .env_map([("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url")])
        .install()
        .expect_err("strict");
    let text = err.to_string();
    assert!(
        text.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        "{text}"
    );
}

/// An `https` endpoint, over either protocol, inside a runtime: with TLS
/// built in (the default) it installs with no warning and the export is on;
/// without it, it is one warning and that export off. Never a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_is_tls_or_one_warning_never_a_panic() {
    for protocol in ["grpc", "http/protobuf"] {
        let t = Telemetry::builder()
            .local()
            .quiet()
            .env_map([
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example:4317",
                ),
            ])
            .install()
            .expect("install succeeds");
        let cfg = t.effective_config();
        if cfg!(feature = "tls") {
            assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
            assert_eq!(cfg.traces_exporters, [otel_setup::ExporterKind::Otlp]);
        } else {
            let w: Vec<_> = cfg
                .warnings
                .iter()
                .filter(|w| w.variable == "OTEL_EXPORTER_OTLP_ENDPOINT")
                .collect();
            assert_eq!(w.len(), 1, "{:?}", cfg.warnings);
            assert!(
                w[0].to_string().contains("`tls` feature is off"),
                "{}",
                w[0]
            );
            assert!(cfg.traces_exporters.is_empty());
        }
        record(&t, 1);
        drop(t);
    }
}
