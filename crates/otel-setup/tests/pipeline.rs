//! The export pipeline against a real OTLP receiver on loopback: every span
//! is exported or counted by cause, retries follow the OTLP rules, batches
//! stay below the receiver's limit, values are cut to the length limit, and
//! shutdown keeps one deadline for every signal.

use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{Span, Tracer, TracerProvider};
use opentelemetry::KeyValue;
use otel_setup::{DropCause, Signal, Telemetry};
use otel_testkit::otlp::{OtlpReceiver, OtlpSignal};
use std::net::TcpListener;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn install(extra: &[(&str, String)]) -> Telemetry {
    Telemetry::builder()
        .service_name("pipeline-test")
        .local()
        .quiet()
        .env_map(
            [
                ("OTEL_METRICS_EXPORTER", "none".to_string()),
                ("OTEL_LOGS_EXPORTER", "none".to_string()),
                ("OTEL_BSP_SCHEDULE_DELAY", "50".to_string()),
            ]
            .into_iter()
            .chain(extra.iter().map(|(k, v)| (*k, v.clone()))),
        )
        .install()
        .expect("install")
}

fn http(rx: &OtlpReceiver) -> [(&'static str, String); 2] {
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
    ]
}

fn spans(t: &Telemetry, n: usize) {
    let tracer = t.tracer_provider().expect("enabled").tracer("test");
    for i in 0..n {
        tracer.in_span(format!("work-{i}"), |_| {});
    }
}

fn trace_attempts(rx: &OtlpReceiver) -> Vec<otel_testkit::otlp::Attempt> {
    rx.attempts()
        .into_iter()
        .filter(|a| a.signal == OtlpSignal::Traces)
        .collect()
}

/// Waits, bounded, until `f` holds.
fn until(what: &str, f: impl FnMut() -> bool) {
    otel_testkit::wait_until(what, WAIT, f);
}

/// Accepts connections and never answers.
fn blackhole() -> (String, std::thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    l.set_nonblocking(true).expect("nonblocking");
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok((s, _)) = l.accept() {
                held.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (format!("http://{addr}"), h)
}

#[test]
fn every_span_is_exported_or_counted_with_a_queue_of_one() {
    let rx = OtlpReceiver::start();
    rx.delay(Duration::from_millis(100));
    let mut vars = http(&rx).to_vec();
    vars.push(("OTEL_BSP_MAX_QUEUE_SIZE", "1".into()));
    let t = install(&vars);
    assert!(
        t.effective_config().warnings.is_empty(),
        "a small queue alone warns about nothing: {:?}",
        t.effective_config().warnings
    );
    let made = 300;
    spans(&t, made);
    let d = t.shutdown();
    let received = rx.spans().len() as u64;
    let queue_full = d.get(Signal::Traces, DropCause::QueueFull);
    assert!(queue_full > 0, "{d}");
    assert_eq!(
        received + d.signal(Signal::Traces),
        made as u64,
        "received {received}, counted {d}"
    );
}

#[test]
fn the_count_of_drops_is_exact_across_shutdown() {
    let rx = OtlpReceiver::start();
    rx.delay(Duration::from_millis(50));
    let mut vars = http(&rx).to_vec();
    vars.push(("OTEL_BSP_MAX_QUEUE_SIZE", "8".into()));
    vars.push(("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4".into()));
    let t = install(&vars);
    let made = 500u64;
    spans(&t, made as usize);
    let d = t.shutdown();
    let received = rx.spans().len() as u64;
    let lost = d.signal(Signal::Traces);
    assert!(lost > 0, "a queue of 8 behind a slow collector drops");
    // Every span ends exported or counted, nothing in between.
    assert_eq!(received + lost, made, "received {received}, counted {d}");
    assert_eq!(d.exported(Signal::Traces), received);
}

#[test]
fn http_503_is_retried_and_500_is_not() {
    for (status, min, max) in [(503u16, 2usize, 4usize), (500, 1, 1)] {
        let rx = OtlpReceiver::start();
        rx.fail_with(status);
        let mut vars = http(&rx).to_vec();
        vars.push(("OTEL_EXPORTER_OTLP_TIMEOUT", "5000".into()));
        let t = install(&vars);
        spans(&t, 5);
        t.flush();
        until("the batch to be given up", || {
            t.dropped().signal(Signal::Traces) == 5
        });
        let attempts = trace_attempts(&rx);
        assert!(
            (min..=max).contains(&attempts.len()),
            "{status}: {} attempts",
            attempts.len()
        );
        assert!(attempts.iter().all(|a| a.items == 5), "the same batch");
        assert_eq!(
            t.dropped().get(Signal::Traces, DropCause::ExportFailed),
            5,
            "{status}: the batch given up is counted once"
        );
        t.shutdown();
    }
}

#[test]
fn grpc_unavailable_is_retried() {
    let rx = OtlpReceiver::start();
    rx.fail_with(503);
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "5000".into()),
    ]);
    spans(&t, 3);
    t.flush();
    until("the batch to be given up", || {
        t.dropped().signal(Signal::Traces) == 3
    });
    let n = trace_attempts(&rx).len();
    assert!((2..=4).contains(&n), "{n} attempts");
    t.shutdown();
}

#[test]
fn retry_after_is_honoured_and_a_later_success_counts() {
    let rx = OtlpReceiver::start();
    rx.fail_with(503);
    rx.retry_after(1);
    let mut vars = http(&rx).to_vec();
    vars.push(("OTEL_EXPORTER_OTLP_TIMEOUT", "8000".into()));
    let t = install(&vars);
    spans(&t, 2);
    until("the first attempt", || !trace_attempts(&rx).is_empty());
    rx.recover();
    t.flush();
    until("the retried batch", || rx.spans().len() == 2);
    let attempts = trace_attempts(&rx);
    assert_eq!(attempts.len(), 2, "one refusal, one retry");
    let gap = attempts[1].at.duration_since(attempts[0].at);
    assert!(gap >= Duration::from_millis(990), "waited {gap:?}");
    assert_eq!(t.dropped().signal(Signal::Traces), 0);
    assert_eq!(t.dropped().exported(Signal::Traces), 2);
    t.shutdown();
}

#[test]
fn retry_after_beyond_the_timeout_gives_up_at_once() {
    let rx = OtlpReceiver::start();
    rx.fail_with(503);
    rx.retry_after(60);
    let mut vars = http(&rx).to_vec();
    vars.push(("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".into()));
    let t = install(&vars);
    spans(&t, 4);
    t.flush();
    until("the batch to be given up", || {
        t.dropped().signal(Signal::Traces) == 4
    });
    assert_eq!(trace_attempts(&rx).len(), 1);
    t.shutdown();
}

fn big_span(tracer: &impl Tracer, name: &str, attributes: usize, events: usize) {
    let value = "v".repeat(4096);
    let mut span = tracer.start(name.to_owned());
    for i in 0..attributes {
        span.set_attribute(KeyValue::new(format!("big.{i}"), value.clone()));
    }
    for e in 0..events {
        let attrs: Vec<KeyValue> = (0..40)
            .map(|i| KeyValue::new(format!("e.{i}"), value.clone()))
            .collect();
        span.add_event(format!("event-{e}"), attrs);
    }
    span.end();
}

#[test]
fn batches_stay_under_the_receiver_limit_and_only_the_oversized_span_is_dropped() {
    for protocol in ["grpc", "http/protobuf"] {
        let rx = OtlpReceiver::start();
        let endpoint = if protocol == "grpc" {
            rx.grpc_endpoint()
        } else {
            rx.http_endpoint()
        };
        let t = install(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ]);
        let tracer = t.tracer_provider().expect("enabled").tracer("test");
        let legit = 120;
        for i in 0..legit {
            big_span(&tracer, &format!("legit-{i}"), 40, 0);
            if i == legit / 2 {
                // About 20 MB in one span: no request can carry it.
                big_span(&tracer, "oversized", 10, 120);
            }
        }
        let d = t.shutdown();
        assert_eq!(
            d.get(Signal::Traces, DropCause::TooLarge),
            1,
            "{protocol}: {d}"
        );
        let received = rx.spans();
        // The queue's byte bound may have dropped some legitimate spans
        // (about 40 MB were offered at once); none was lost otherwise.
        let queue_full = d.get(Signal::Traces, DropCause::QueueFull) as usize;
        assert_eq!(
            received.len() + queue_full,
            legit,
            "{protocol}: every legitimate span arrives or is counted: {d}"
        );
        assert_eq!(d.signal(Signal::Traces) as usize, queue_full + 1, "{d}");
        assert!(received.len() >= legit / 2, "{protocol}: {d}");
        assert!(received.iter().all(|s| s.span.name != "oversized"));
        let attempts = trace_attempts(&rx);
        assert!(
            attempts.iter().all(|a| a.status == 200),
            "{protocol}: no request over the limit: {:?}",
            attempts.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        assert!(attempts.len() > 1, "{protocol}: the batch was cut");
    }
}

fn string_attr(attrs: &[opentelemetry_proto::tonic::common::v1::KeyValue], key: &str) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn values_are_cut_to_the_length_limit() {
    let cases: &[(&[(&str, &str)], usize)] = &[
        (&[], 4096),
        (&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")], 4),
        (
            &[
                ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4"),
                ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10"),
            ],
            10,
        ),
    ];
    for (limit_vars, want) in cases {
        let rx = OtlpReceiver::start();
        let mut vars = http(&rx).to_vec();
        vars.extend(limit_vars.iter().map(|(k, v)| (*k, v.to_string())));
        let t = install(&vars);
        assert_eq!(t.effective_config().limits.attribute_value_length, *want);
        let tracer = t.tracer_provider().expect("enabled").tracer("test");
        let mut span = tracer.start("long");
        span.set_attribute(KeyValue::new("user_agent.original", "é".repeat(100_000)));
        span.set_attribute(KeyValue::new("http.response.status_code", 123_456_789i64));
        span.add_event(
            "exception",
            vec![KeyValue::new("exception.message", "m".repeat(100_000))],
        );
        span.add_link(
            opentelemetry::trace::SpanContext::new(
                opentelemetry::trace::TraceId::from(7u128),
                opentelemetry::trace::SpanId::from(9u64),
                opentelemetry::trace::TraceFlags::SAMPLED,
                true,
                Default::default(),
            ),
            vec![KeyValue::new("link.note", "l".repeat(100_000))],
        );
        span.end();
        t.shutdown();
        let got = rx.wait_for_spans(1, WAIT);
        let s = &got[0];
        let ua = s.attr("user_agent.original").expect("kept, cut");
        assert_eq!(ua.chars().count(), *want, "{limit_vars:?}");
        assert_eq!(
            s.attr("http.response.status_code").as_deref(),
            Some("123456789"),
            "numbers are never cut"
        );
        let msg = string_attr(&s.span.events[0].attributes, "exception.message");
        assert_eq!(msg.chars().count(), *want, "event attributes are cut too");
        let note = string_attr(&s.span.links[0].attributes, "link.note");
        assert_eq!(note.chars().count(), *want, "link attributes are cut too");
    }
}

#[test]
fn shutdown_keeps_one_deadline_for_every_signal_with_a_blackholed_collector() {
    for protocol in ["grpc", "http/protobuf"] {
        let (endpoint, _hole) = blackhole();
        let t = Telemetry::builder()
            .service_name("blackhole")
            .local()
            .quiet()
            .shutdown_timeout(Duration::from_secs(1))
            .env_map([
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "10000".into()),
                ("OTEL_BSP_SCHEDULE_DELAY", "60000".into()),
                ("OTEL_METRIC_EXPORT_INTERVAL", "60000".into()),
            ])
            .install()
            .expect("install");
        spans(&t, 10);
        let counter = t
            .meter_provider()
            .expect("enabled")
            .meter("test")
            .u64_counter("jobs")
            .build();
        counter.add(1, &[]);
        let started = Instant::now();
        let d = t.shutdown();
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(3500),
            "{protocol}: shutdown took {took:?} with a 1 s deadline"
        );
        assert_eq!(
            d.get(Signal::Traces, DropCause::ShutdownTimeout),
            10,
            "{protocol}: {d}"
        );
        assert!(d.signal(Signal::Metrics) > 0, "{protocol}: {d}");
    }
}

#[test]
fn self_metrics_report_the_same_drops_as_the_code() {
    let rx = OtlpReceiver::start();
    rx.delay(Duration::from_millis(100));
    let t = Telemetry::builder()
        .service_name("self-metrics")
        .local()
        .quiet()
        .env_map([
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "2".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "60000".into()),
            ("OTEL_LOGS_EXPORTER", "none".into()),
        ])
        .install()
        .expect("install");
    spans(&t, 100);
    let queue_full = t.dropped().get(Signal::Traces, DropCause::QueueFull);
    assert!(queue_full > 0);
    t.shutdown();
    let reported = rx.last_sum_with(
        "otel.sdk.processor.span.processed",
        "error.type",
        "queue_full",
    );
    assert_eq!(reported, Some(queue_full as i64));
    let points = rx.last_sum("otel.sdk.processor.span.processed");
    assert!(points.iter().any(|(attrs, _)| attrs
        .iter()
        .any(|(k, v)| k == "otel.component.name" && v == "batching_span_processor/0")));
}

/// `OTEL_BSP_EXPORT_TIMEOUT` and `OTEL_METRIC_EXPORT_TIMEOUT` give an export
/// up at their own limit, well before the 10 s OTLP timeout, and the loss
/// is counted as a timeout.
#[test]
fn export_timeouts_give_up_at_their_own_limit() {
    let (endpoint, _hole) = blackhole();
    let t = install(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10000".into()),
        ("OTEL_BSP_EXPORT_TIMEOUT", "300".into()),
        ("OTEL_METRICS_EXPORTER", "otlp".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "60000".into()),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "300".into()),
    ]);
    spans(&t, 3);
    until("the span export to time out", || {
        t.dropped().get(Signal::Traces, DropCause::Timeout) == 3
    });
    t.meter_provider()
        .expect("enabled")
        .meter("test")
        .u64_counter("jobs")
        .build()
        .add(1, &[]);
    let started = Instant::now();
    t.flush();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the metric export gave up at its timeout, not the OTLP one: {:?}",
        started.elapsed()
    );
    until("the metric export to time out", || {
        t.dropped().get(Signal::Metrics, DropCause::Timeout) >= 1
    });
}
