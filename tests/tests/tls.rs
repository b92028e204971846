//! user-service, a real process configured by standard variables only,
//! exporting traces, metrics and logs to a collector behind TLS and mTLS,
//! over gRPC and over HTTP, with certificates made at test time: spans
//! arrive with the CA (`*_CERTIFICATE`) and, where the collector requires
//! it, the client pair (`*_CLIENT_CERTIFICATE`, `*_CLIENT_KEY`, general or
//! per-signal); without the pair, or with a collector whose certificate is
//! not trusted, nothing is exported, every request is still served, and
//! standard error says why.

mod support;

use otel_testkit::otlp::{OtlpReceiver, OtlpSignal};
use otel_testkit::tls::TestPki;
use std::time::{Duration, Instant};
use support::{sigterm_and_wait, start_user_service};

const REQUESTS: usize = 20;
const SERVER: i32 = 2;

fn serve_requests(port: u16) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::new();
        for i in 0..REQUESTS {
            // Every fifth asks for a user that does not exist: a 404 and a
            // log record.
            let (id, status) = if i % 5 == 4 {
                (999, 404)
            } else {
                (i % 3 + 1, 200)
            };
            let r = client
                .get(format!("http://127.0.0.1:{port}/users/{id}"))
                .send()
                .await
                .expect("the service answers");
            assert_eq!(r.status(), status, "every request is served");
        }
    });
}

/// Runs user-service against `rx` with `vars`, serves the requests, stops
/// it; returns its standard error.
fn run(rx: &OtlpReceiver, protocol: &str, vars: Vec<(&str, String)>) -> String {
    let endpoint = if protocol == "grpc" {
        rx.grpc_endpoint()
    } else {
        rx.http_endpoint()
    };
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".to_owned()),
        // A missing user is logged at info: log records to export.
        ("RUST_LOG", "info".to_owned()),
    ];
    env.extend(vars);
    let (mut child, stderr_path, port) = start_user_service(&env);
    serve_requests(port);
    let took = sigterm_and_wait(&mut child);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < Duration::from_secs(7), "exit took {took:?}");
    stderr
}

fn server_spans(rx: &OtlpReceiver) -> usize {
    rx.spans().iter().filter(|s| s.span.kind == SERVER).count()
}

/// Every request's server span arrived (they are flushed at exit), and
/// metrics and logs came over the same TLS too.
fn assert_everything_arrived(rx: &OtlpReceiver, what: &str, stderr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server_spans(rx) < REQUESTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server_spans(rx), REQUESTS, "{what}: spans\n{stderr}");
    let ok = |signal| {
        rx.attempts()
            .iter()
            .any(|a| a.signal == signal && a.status == 200 && a.items > 0)
    };
    assert!(ok(OtlpSignal::Metrics), "{what}: metrics\n{stderr}");
    assert!(ok(OtlpSignal::Logs), "{what}: logs\n{stderr}");
    assert_eq!(rx.tls_failures(), 0, "{what}: no failed handshake");
    assert!(
        !stderr.contains("dropped"),
        "{what}: nothing lost\n{stderr}"
    );
}

#[test]
fn exports_to_a_tls_collector_with_the_certificate_variable() {
    let pki = TestPki::generate();
    for protocol in ["grpc", "http/protobuf"] {
        let rx = OtlpReceiver::start_tls(pki.server_tls());
        let stderr = run(
            &rx,
            protocol,
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file())],
        );
        assert_everything_arrived(&rx, &format!("TLS over {protocol}"), &stderr);
    }
}

#[test]
fn exports_to_an_mtls_collector_with_the_client_pair() {
    let pki = TestPki::generate();
    for protocol in ["grpc", "http/protobuf"] {
        let rx = OtlpReceiver::start_tls(pki.server_tls().require_client_certificate());
        let stderr = run(
            &rx,
            protocol,
            vec![
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file()),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    pki.client_cert_file(),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.client_key_file()),
            ],
        );
        assert_everything_arrived(&rx, &format!("mTLS over {protocol}"), &stderr);
    }
}

#[test]
fn per_signal_tls_variables_are_used() {
    let pki = TestPki::generate();
    for protocol in ["grpc", "http/protobuf"] {
        let rx = OtlpReceiver::start_tls(pki.server_tls().require_client_certificate());
        let mut vars = Vec::new();
        for signal in ["TRACES", "METRICS", "LOGS"] {
            let var = |setting: &str| -> &'static str {
                Box::leak(format!("OTEL_EXPORTER_OTLP_{signal}_{setting}").into_boxed_str())
            };
            vars.push((var("CERTIFICATE"), pki.ca_file()));
            vars.push((var("CLIENT_CERTIFICATE"), pki.client_cert_file()));
            vars.push((var("CLIENT_KEY"), pki.client_key_file()));
        }
        let stderr = run(&rx, protocol, vars);
        assert_everything_arrived(&rx, &format!("per-signal mTLS over {protocol}"), &stderr);
    }
}

#[test]
fn an_mtls_collector_refuses_a_service_without_the_pair() {
    let pki = TestPki::generate();
    for protocol in ["grpc", "http/protobuf"] {
        let rx = OtlpReceiver::start_tls(pki.server_tls().require_client_certificate());
        let stderr = run(
            &rx,
            protocol,
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file())],
        );
        assert_eq!(rx.spans().len(), 0, "{protocol}: nothing accepted");
        // The cause is named when the client reads the server's alert
        // ("asks for a client certificate"); with TLS 1.3 it may write
        // first and see a broken pipe instead, so only the loss is sure.
        assert!(
            rx.attempts().is_empty(),
            "{protocol}: no request got through"
        );
        assert!(
            rx.tls_failures() > 0,
            "{protocol}: refused at the handshake"
        );
        assert!(
            stderr.contains("telemetry lost during this run"),
            "{protocol}: the loss is reported\n{stderr}"
        );
    }
}

#[test]
fn an_untrusted_collector_certificate_exports_nothing_and_says_why() {
    let trusted = TestPki::generate();
    let other = TestPki::generate();
    for protocol in ["grpc", "http/protobuf"] {
        // The collector's certificate comes from a CA the service does not
        // trust.
        let rx = OtlpReceiver::start_tls(other.server_tls());
        let stderr = run(
            &rx,
            protocol,
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", trusted.ca_file())],
        );
        assert_eq!(rx.spans().len(), 0, "{protocol}: nothing exported");
        assert!(
            rx.attempts().is_empty(),
            "{protocol}: no request got through"
        );
        assert!(
            stderr.contains("certificate was not trusted"),
            "{protocol}: stderr names the cause\n{stderr}"
        );
        assert!(
            stderr.contains("telemetry lost during this run"),
            "{protocol}: the loss is reported\n{stderr}"
        );
    }
}
