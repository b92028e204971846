//! What each setting does once installed, against real parts: TLS files
//! that cannot be used, the Prometheus endpoint scraped and parsed, the
//! OTLP metric temporality and histogram aggregation as a receiver sees
//! them, and the variables that are read only to be warned about.

use opentelemetry::metrics::MeterProvider;
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use otel_setup::{ConfigWarning, Telemetry};
use otel_testkit::otlp::OtlpReceiver;
use otel_testkit::tls::TestPki;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn install(vars: &[(&str, String)]) -> Telemetry {
    Telemetry::builder()
        .local()
        .quiet()
        .service_name("settings-test")
        .env_map(vars.iter().map(|(k, v)| (*k, v.clone())))
        .install()
        .expect("install never fails for a setting")
}

fn warnings_about<'a>(t: &'a Telemetry, variable: &str) -> Vec<&'a ConfigWarning> {
    t.effective_config()
        .warnings
        .iter()
        .filter(|w| w.variable == variable)
        .collect()
}

fn record(t: &Telemetry) {
    let meter = t.meter_provider().expect("enabled").meter("settings");
    let jobs = meter
        .u64_counter("jobs")
        .with_description("Jobs done")
        .build();
    jobs.add(3, &[KeyValue::new("queue", "a")]);
    jobs.add(4, &[KeyValue::new("queue", "b")]);
    let took = meter.f64_histogram("took").with_unit("s").build();
    for v in [0.002, 0.03, 0.4] {
        took.record(v, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_that_cannot_be_used_are_one_warning_each_and_the_service_runs() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let not_pem = pki.dir().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("file");
    let not_pem = not_pem.to_string_lossy().into_owned();
    let missing = pki.dir().join("missing.pem").to_string_lossy().into_owned();
    let base = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://127.0.0.1:9".to_owned(),
        ),
        ("OTEL_METRICS_EXPORTER", "none".to_owned()),
    ];
    // The variables set, the one warned about, and what its warning says.
    type Case<'a> = (Vec<(&'a str, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", missing.clone())],
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "cannot be read",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", not_pem.clone())],
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            "no PEM certificate",
        ),
        (
            vec![(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                pki.client_cert_file(),
            )],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
        ),
        (
            vec![("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.client_key_file())],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
        ),
        (
            vec![
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    pki.client_cert_file(),
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", other.client_key_file()),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "does not fit the certificate",
        ),
        (
            vec![
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", not_pem.clone()),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.client_key_file()),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            "no PEM certificate",
        ),
    ];
    for protocol in ["grpc", "http/protobuf"] {
        for (vars, variable, says) in &cases {
            let mut all: Vec<(&str, String)> = base.to_vec();
            all.push(("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_owned()));
            all.extend(vars.iter().cloned());
            let t = install(&all);
            let about = warnings_about(&t, variable);
            assert_eq!(
                about.len(),
                1,
                "{protocol} {variable}: {:?}",
                t.effective_config().warnings
            );
            assert!(about[0].to_string().contains(says), "{}", about[0]);
            // The shared variable is warned about once, not per signal, and
            // the export itself is still on.
            assert_eq!(
                t.effective_config().traces_exporters,
                [otel_setup::ExporterKind::Otlp]
            );
            drop(t);
        }
    }
}

/// GET over loopback with a raw HTTP/1.1 request; the status and the body.
fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("response");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn prometheus_serves_metrics_for_scraping_in_the_text_format() {
    let t = install(&[
        ("OTEL_TRACES_EXPORTER", "none".into()),
        ("OTEL_METRICS_EXPORTER", "prometheus".into()),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".into()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into()),
    ]);
    assert!(t.effective_config().warnings.is_empty());
    let addr = t.prometheus_address().expect("serving");
    assert!(addr.ip().is_loopback());
    record(&t);
    let (status, head, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("the Prometheus text format parses");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
    };
    match value("jobs_total", Some(("queue", "a"))).map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v)) => assert_eq!(*v, 3.0),
        other => panic!("jobs_total{{queue=a}}: {other:?}\n{body}"),
    }
    match value("took_seconds", None).map(|s| &s.value) {
        Some(prometheus_parse::Value::Histogram(buckets)) => {
            let all = buckets.iter().map(|b| b.count).fold(0.0, f64::max);
            assert_eq!(all, 3.0, "{body}");
        }
        other => panic!("took_seconds: {other:?}\n{body}"),
    }
    let target = value("target_info", None).expect("target_info");
    assert_eq!(
        target.labels.get("service_name"),
        Some("settings-test"),
        "{body}"
    );
    assert_eq!(get(addr, "/").0, 404);
}

#[test]
fn a_prometheus_port_in_use_is_a_warning_and_the_service_runs() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let t = install(&[
        ("OTEL_TRACES_EXPORTER", "none".into()),
        ("OTEL_METRICS_EXPORTER", "prometheus".into()),
        ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".into()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", port.to_string()),
    ]);
    assert!(t.prometheus_address().is_none());
    let about = warnings_about(&t, "OTEL_EXPORTER_PROMETHEUS_PORT");
    assert_eq!(about.len(), 1);
    assert!(
        about[0].to_string().contains("cannot listen"),
        "{}",
        about[0]
    );
    record(&t);
}

/// The metrics a receiver got once the provider flushed (bounded wait).
fn flushed_metrics(
    rx: &OtlpReceiver,
    t: &Telemetry,
    name: &str,
) -> opentelemetry_proto::tonic::metrics::v1::Metric {
    t.flush();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(m) = rx.metric_data().into_iter().find(|m| m.name == name) {
            return m;
        }
        assert!(Instant::now() < deadline, "{name} never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn temporality_preference_reaches_the_exported_metrics() {
    // 1: delta, 2: cumulative (AggregationTemporality in the OTLP proto).
    for (preference, counter, histogram) in
        [("cumulative", 2, 2), ("delta", 1, 1), ("lowmemory", 1, 1)]
    {
        let rx = OtlpReceiver::start();
        let t = install(&[
            ("OTEL_TRACES_EXPORTER", "none".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
            (
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
                preference.into(),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000".into()),
        ]);
        record(&t);
        match flushed_metrics(&rx, &t, "jobs").data {
            Some(Data::Sum(s)) => assert_eq!(s.aggregation_temporality, counter, "{preference}"),
            other => panic!("{other:?}"),
        }
        match flushed_metrics(&rx, &t, "took").data {
            Some(Data::Histogram(h)) => {
                assert_eq!(h.aggregation_temporality, histogram, "{preference}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn exponential_histograms_when_asked_for() {
    let rx = OtlpReceiver::start();
    let t = install(&[
        ("OTEL_TRACES_EXPORTER", "none".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
        (
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            "BASE2_EXPONENTIAL_BUCKET_HISTOGRAM".into(),
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000".into()),
    ]);
    record(&t);
    match flushed_metrics(&rx, &t, "took").data {
        Some(Data::ExponentialHistogram(h)) => {
            assert_eq!(h.data_points.first().map(|p| p.count), Some(3))
        }
        other => panic!("an exponential histogram, got {other:?}"),
    }
    // Counters are untouched.
    assert!(matches!(
        flushed_metrics(&rx, &t, "jobs").data,
        Some(Data::Sum(_))
    ));
}

#[test]
fn variables_read_only_to_be_warned_about_say_so_and_the_rest_applies() {
    for (variable, value, says) in [
        ("OTEL_CONFIG_FILE", "/etc/otel.yaml", "not supported yet"),
        (
            "OTEL_EXPERIMENTAL_CONFIG_FILE",
            "/etc/otel.yaml",
            "not supported yet",
        ),
        (
            "OTEL_METRICS_EXEMPLAR_FILTER",
            "trace_based",
            "no exemplars",
        ),
        ("OTEL_METRICS_EXEMPLAR_FILTER", "sometimes", "allowed"),
    ] {
        let t = install(&[
            (variable, value.into()),
            ("OTEL_TRACES_EXPORTER", "none".into()),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "7".into()),
        ]);
        let about = warnings_about(&t, variable);
        assert_eq!(about.len(), 1, "{variable}");
        assert!(about[0].to_string().contains(says), "{}", about[0]);
        // The other variables are still applied.
        assert_eq!(t.effective_config().batch.max_queue_size, 7);
    }
    let t = install(&[
        ("OTEL_METRICS_EXEMPLAR_FILTER", "always_off".into()),
        ("OTEL_TRACES_EXPORTER", "none".into()),
        ("OTEL_METRICS_EXPORTER", "none".into()),
    ]);
    assert!(t.effective_config().warnings.is_empty());
}

/// The default host, `localhost`, is served on every address it names, so
/// a scraper of `127.0.0.1` finds it whichever address the host lists first.
#[test]
fn prometheus_on_localhost_answers_on_each_of_its_addresses() {
    let t = install(&[
        ("OTEL_TRACES_EXPORTER", "none".into()),
        ("OTEL_METRICS_EXPORTER", "prometheus".into()),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into()),
    ]);
    assert_eq!(t.effective_config().prometheus_host, "localhost");
    let port = t.prometheus_address().expect("serving").port();
    let addrs: Vec<std::net::SocketAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
            .expect("localhost resolves")
            .collect();
    assert!(!addrs.is_empty());
    for addr in addrs {
        assert_eq!(get(addr, "/metrics").0, 200, "{addr}");
    }
}
