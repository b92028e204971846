//! Every variable in the table of `VARIABLES.md`, read two ways: from the
//! process environment (a child process of this test binary, started with
//! only that variable set) and from `Telemetry::builder().env_map(...)`.
//! Both must give the same effective configuration, and each row checks the
//! setting it is meant to change. The child processes keep the real
//! environment of this binary untouched, so no test here races another.
//!
//! Also `OTEL_LOG_LEVEL` as a user sees it: what lands on standard error.

use otel_setup::{
    Compression, EffectiveConfig, ExporterKind, HistogramAggregation, LogLevel, Protocol,
    SamplerConfig, Telemetry, TemporalityPreference,
};
use std::process::Command;
use std::time::Duration;

/// Set in a child: what it should do.
const CHILD: &str = "OTEL_SETUP_VARIABLES_CHILD";
const BEGIN: &str = "--- effective config ---";
const END: &str = "--- end ---";

/// In a child process: print the configuration read from the environment
/// (`config`), or install from it and make a span (`install`).
#[test]
fn child() {
    match std::env::var(CHILD).as_deref() {
        Ok("config") => {
            let cfg = Telemetry::builder().effective_config();
            println!("{BEGIN}\n{cfg:#?}\n{END}");
        }
        Ok("install") => {
            let t = Telemetry::builder().local().install().expect("install");
            drop(t);
        }
        Ok("export") => {
            // Settings from `env_map` only; the process environment holds
            // other OTLP headers, which must not be sent.
            use opentelemetry::trace::{Tracer, TracerProvider};
            let get = |k: &str| std::env::var(k).unwrap_or_default();
            let t = Telemetry::builder()
                .local()
                .quiet()
                .env_map([
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", get("TEST_ENDPOINT")),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", get("TEST_PROTOCOL")),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "ours=2".to_owned()),
                    ("OTEL_METRICS_EXPORTER", "none".to_owned()),
                    ("OTEL_LOGS_EXPORTER", "none".to_owned()),
                ])
                .install()
                .expect("install");
            if let Some(p) = t.tracer_provider() {
                p.tracer("t").in_span("exported", |_| {});
            }
            t.shutdown();
        }
        _ => {}
    }
}

/// Runs this binary's `child` test with only `vars` among the `OTEL_*`
/// variables; its standard output and error.
fn run_child(mode: &str, vars: &[(String, String)]) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
        .env(CHILD, mode)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("child runs");
    assert!(out.status.success(), "child failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn from_environment(vars: &[(String, String)]) -> String {
    let (stdout, _) = run_child("config", vars);
    let start = stdout.find(BEGIN).expect("begin marker") + BEGIN.len() + 1;
    let end = stdout.find(END).expect("end marker");
    stdout[start..end].trim_end().to_owned()
}

fn from_env_map(vars: &[(String, String)]) -> EffectiveConfig {
    Telemetry::builder()
        .env_map(vars.iter().cloned())
        .effective_config()
}

type Check = Box<dyn Fn(&EffectiveConfig) -> bool>;

struct Row {
    vars: Vec<(String, String)>,
    check: Check,
}

fn row(vars: &[(&str, &str)], check: impl Fn(&EffectiveConfig) -> bool + 'static) -> Row {
    Row {
        vars: vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        check: Box::new(check),
    }
}

fn warned(c: &EffectiveConfig, variable: &str) -> bool {
    c.warnings.iter().any(|w| w.variable == variable)
}

/// The general and per-signal forms of each OTLP exporter setting.
fn otlp_rows(ca: &str, cert: &str, key: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for signal in ["", "TRACES_", "METRICS_", "LOGS_"] {
        let pick = move |c: &EffectiveConfig| -> Vec<otel_setup::OtlpConfig> {
            match signal {
                "TRACES_" => vec![c.traces_otlp.clone()],
                "METRICS_" => vec![c.metrics_otlp.clone()],
                "LOGS_" => vec![c.logs_otlp.clone()],
                _ => vec![
                    c.traces_otlp.clone(),
                    c.metrics_otlp.clone(),
                    c.logs_otlp.clone(),
                ],
            }
        };
        let var = |setting: &str| format!("OTEL_EXPORTER_OTLP_{signal}{setting}");
        let own = |rows: &mut Vec<Row>, vars: Vec<(String, String)>, check: Check| {
            rows.push(Row { vars, check });
        };
        own(
            &mut rows,
            vec![(var("ENDPOINT"), "http://collector:4318".into())],
            Box::new(move |c| {
                pick(c)
                    .iter()
                    .all(|o| o.endpoint.starts_with("http://collector:4318/"))
            }),
        );
        own(
            &mut rows,
            vec![(var("PROTOCOL"), "grpc".into())],
            Box::new(move |c| pick(c).iter().all(|o| o.protocol == Protocol::Grpc)),
        );
        own(
            &mut rows,
            vec![
                (var("PROTOCOL"), "grpc".into()),
                (var("ENDPOINT"), "collector:4317".into()),
                (var("INSECURE"), "true".into()),
            ],
            Box::new(move |c| {
                pick(c)
                    .iter()
                    .all(|o| o.endpoint.starts_with("http://collector:4317"))
            }),
        );
        own(
            &mut rows,
            vec![(var("HEADERS"), "api-key=a%3Db".into())],
            Box::new(move |c| {
                pick(c)
                    .iter()
                    .all(|o| o.headers == [("api-key".to_owned(), "a=b".to_owned())])
            }),
        );
        own(
            &mut rows,
            vec![(var("COMPRESSION"), "gzip".into())],
            Box::new(move |c| pick(c).iter().all(|o| o.compression == Compression::Gzip)),
        );
        own(
            &mut rows,
            vec![(var("TIMEOUT"), "1234".into())],
            Box::new(move |c| {
                pick(c)
                    .iter()
                    .all(|o| o.timeout == Duration::from_millis(1234))
            }),
        );
        let ca_path = ca.to_owned();
        own(
            &mut rows,
            vec![(var("CERTIFICATE"), ca.into())],
            Box::new(move |c| {
                pick(c).iter().all(|o| {
                    o.tls.certificate.as_ref().map(|f| f.path.as_str()) == Some(ca_path.as_str())
                })
            }),
        );
        let key_path = key.to_owned();
        own(
            &mut rows,
            vec![
                (var("CLIENT_CERTIFICATE"), cert.into()),
                (var("CLIENT_KEY"), key.into()),
            ],
            Box::new(move |c| {
                pick(c).iter().all(|o| {
                    o.tls.client_certificate.is_some()
                        && o.tls.client_key.as_ref().map(|f| f.path.as_str())
                            == Some(key_path.as_str())
                })
            }),
        );
    }
    rows
}

fn rows(ca: &str, cert: &str, key: &str) -> Vec<Row> {
    let mut rows = vec![
        row(&[("OTEL_SDK_DISABLED", "true")], |c| c.disabled),
        row(&[("OTEL_SERVICE_NAME", "orders")], |c| {
            c.service_name == "orders"
        }),
        row(&[("OTEL_RESOURCE_ATTRIBUTES", "team=a,tier=web")], |c| {
            c.resource_attributes.len() == 2
        }),
        row(&[("OTEL_LOG_LEVEL", "debug")], |c| {
            c.log_level == LogLevel::Debug
        }),
        row(&[("OTEL_PROPAGATORS", "b3,tracecontext")], |c| {
            c.propagators == ["b3", "tracecontext"]
        }),
        row(&[("OTEL_TRACES_SAMPLER", "always_off")], |c| {
            c.sampler == SamplerConfig::AlwaysOff
        }),
        row(
            &[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ],
            |c| c.sampler == SamplerConfig::ParentBasedTraceIdRatio(0.25),
        ),
        row(&[("OTEL_TRACES_EXPORTER", "console")], |c| {
            c.traces_exporters == [ExporterKind::Console]
        }),
        row(&[("OTEL_METRICS_EXPORTER", "prometheus,otlp")], |c| {
            c.metrics_exporters == [ExporterKind::Prometheus, ExporterKind::Otlp]
        }),
        row(&[("OTEL_LOGS_EXPORTER", "none")], |c| {
            c.logs_exporters.is_empty()
        }),
        row(&[("OTEL_BSP_SCHEDULE_DELAY", "100")], |c| {
            c.batch.schedule_delay == Duration::from_millis(100)
        }),
        row(&[("OTEL_BSP_EXPORT_TIMEOUT", "200")], |c| {
            c.batch.export_timeout == Duration::from_millis(200)
        }),
        row(&[("OTEL_BSP_MAX_QUEUE_SIZE", "100")], |c| {
            c.batch.max_queue_size == 100
        }),
        row(&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50")], |c| {
            c.batch.max_export_batch_size == 50
        }),
        row(&[("OTEL_BLRP_SCHEDULE_DELAY", "100")], |c| {
            c.logs_batch.schedule_delay == Duration::from_millis(100)
        }),
        row(&[("OTEL_BLRP_EXPORT_TIMEOUT", "200")], |c| {
            c.logs_batch.export_timeout == Duration::from_millis(200)
        }),
        row(&[("OTEL_BLRP_MAX_QUEUE_SIZE", "100")], |c| {
            c.logs_batch.max_queue_size == 100
        }),
        row(&[("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "50")], |c| {
            c.logs_batch.max_export_batch_size == 50
        }),
        row(&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "7")], |c| {
            c.limits.attribute_value_length == 7
        }),
        row(&[("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "9")], |c| {
            c.limits.attribute_value_length == 9
        }),
        row(&[("OTEL_ATTRIBUTE_COUNT_LIMIT", "5")], |c| {
            c.limits.span_attribute_count == 5
                && c.limits.event_attribute_count == 5
                && c.limits.link_attribute_count == 5
        }),
        row(&[("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "6")], |c| {
            c.limits.span_attribute_count == 6
        }),
        row(&[("OTEL_SPAN_EVENT_COUNT_LIMIT", "3")], |c| {
            c.limits.span_event_count == 3
        }),
        row(&[("OTEL_SPAN_LINK_COUNT_LIMIT", "2")], |c| {
            c.limits.span_link_count == 2
        }),
        row(&[("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "4")], |c| {
            c.limits.event_attribute_count == 4
        }),
        row(&[("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", "4")], |c| {
            c.limits.link_attribute_count == 4
        }),
        row(&[("OTEL_METRIC_EXPORT_INTERVAL", "1500")], |c| {
            c.metric_export_interval == Duration::from_millis(1500)
        }),
        row(&[("OTEL_METRIC_EXPORT_TIMEOUT", "700")], |c| {
            c.metric_export_timeout == Duration::from_millis(700)
        }),
        row(
            &[("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "Delta")],
            |c| c.metrics_temporality == TemporalityPreference::Delta,
        ),
        row(
            &[(
                "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
                "base2_exponential_bucket_histogram",
            )],
            |c| c.histogram_aggregation == HistogramAggregation::Base2Exponential,
        ),
        row(&[("OTEL_METRICS_EXEMPLAR_FILTER", "trace_based")], |c| {
            warned(c, "OTEL_METRICS_EXEMPLAR_FILTER")
        }),
        row(&[("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0")], |c| {
            c.prometheus_host == "0.0.0.0"
        }),
        row(&[("OTEL_EXPORTER_PROMETHEUS_PORT", "9999")], |c| {
            c.prometheus_port == 9999
        }),
        row(&[("OTEL_CONFIG_FILE", "/etc/otel.yaml")], |c| {
            warned(c, "OTEL_CONFIG_FILE")
        }),
        row(
            &[("OTEL_EXPERIMENTAL_CONFIG_FILE", "/etc/otel.yaml")],
            |c| warned(c, "OTEL_EXPERIMENTAL_CONFIG_FILE"),
        ),
        row(&[("RUST_LOG", "debug")], |c| c.rust_log == "debug"),
    ];
    rows.extend(otlp_rows(ca, cert, key));
    rows
}

#[test]
fn every_variable_reads_the_same_from_the_environment_and_from_env_map() {
    let pki = otel_testkit::tls::TestPki::generate();
    let default = from_env_map(&[]);
    let rows = rows(
        &pki.ca_file(),
        &pki.client_cert_file(),
        &pki.client_key_file(),
    );
    assert!(rows.len() > 60, "{} rows", rows.len());
    for Row { vars, check } in &rows {
        let mapped = from_env_map(vars);
        assert!(check(&mapped), "{vars:?} does what it says: {mapped:#?}");
        assert_ne!(mapped, default, "{vars:?} changes something");
        assert_eq!(
            from_environment(vars),
            format!("{mapped:#?}"),
            "{vars:?}: the environment and env_map agree"
        );
    }
}

/// The variable names in `VARIABLES.md` (before its "Not read" part).
fn documented() -> std::collections::BTreeSet<String> {
    let doc = include_str!("../VARIABLES.md");
    let read = doc.split("## Not read").next().unwrap_or(doc);
    read.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split(" | ").next())
        .flat_map(|cell| cell.split('`'))
        .filter(|t| t.starts_with("OTEL_") || *t == "RUST_LOG")
        .map(str::to_owned)
        .collect()
}

/// The table in `VARIABLES.md` and the rows above name the same variables:
/// nothing documented goes untested, nothing tested is undocumented.
#[test]
fn the_documented_table_and_the_tested_rows_agree() {
    let documented = documented();
    let mut tested = std::collections::BTreeSet::new();
    for Row { vars, .. } in rows("ca", "cert", "key") {
        for (k, _) in vars {
            // Per-signal forms are documented with their general form.
            let general = ["TRACES_", "METRICS_", "LOGS_"]
                .iter()
                .fold(k.clone(), |k, s| {
                    if k.starts_with("OTEL_EXPORTER_OTLP_")
                        && !k.contains("METRICS_TEMPORALITY")
                        && !k.contains("METRICS_DEFAULT_HISTOGRAM")
                    {
                        k.replacen(&format!("OTEL_EXPORTER_OTLP_{s}"), "OTEL_EXPORTER_OTLP_", 1)
                    } else {
                        k
                    }
                });
            tested.insert(general);
        }
    }
    let untested: Vec<_> = documented.difference(&tested).collect();
    let undocumented: Vec<_> = tested.difference(&documented).collect();
    assert!(untested.is_empty(), "documented, no row: {untested:?}");
    assert!(
        undocumented.is_empty(),
        "a row, not documented: {undocumented:?}"
    );
}

/// `OTEL_LOG_LEVEL`, through a real install: a bad value elsewhere is
/// printed at `warn` and above, not at `error`; `debug` also says what was
/// installed; `none` prints nothing.
#[test]
fn log_level_decides_what_otel_setup_prints() {
    let bad = ("OTEL_TRACES_SAMPLER".to_owned(), "sometimes".to_owned());
    let quiet_exports = [
        ("OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned()),
        ("OTEL_METRICS_EXPORTER".to_owned(), "none".to_owned()),
        ("OTEL_LOGS_EXPORTER".to_owned(), "none".to_owned()),
    ];
    for (level, warns, installed) in [
        (None, true, false),
        (Some("info"), true, false),
        (Some("WARN"), true, false),
        (Some("error"), false, false),
        (Some("none"), false, false),
        (Some("debug"), true, true),
    ] {
        let mut vars = vec![bad.clone()];
        vars.extend(quiet_exports.iter().cloned());
        if let Some(l) = level {
            vars.push(("OTEL_LOG_LEVEL".to_owned(), l.to_owned()));
        }
        let (_, stderr) = run_child("install", &vars);
        assert_eq!(
            stderr.contains("OTEL_TRACES_SAMPLER=\"sometimes\" ignored"),
            warns,
            "{level:?}: {stderr}"
        );
        assert_eq!(
            stderr.contains("traces: none"),
            installed,
            "{level:?}: {stderr}"
        );
        if level == Some("none") {
            assert!(!stderr.contains("otel-setup"), "{stderr}");
        }
    }
}

/// No value of any variable in the table makes `install` fail (without
/// `strict`) or anything panic, inside the runtime an axum service runs in,
/// on install, use and drop. Each value is tried in each variable alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_of_any_variable_fails_install_or_panics() {
    use opentelemetry::trace::{Tracer, TracerProvider};
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A panic on any thread counts, the export runtime's included (tokio
    // would catch it and go on).
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let long = "x".repeat(10_000);
    let values = [
        "",
        " ",
        "not a url",
        "-1",
        "0",
        "99999999999999999999",
        "1.5",
        "true",
        "NONE",
        "grpc",
        "http://",
        "https://[::1",
        "ftp://collector:21",
        "localhost:4317",
        "/dev/null",
        "/",
        "k=v,=x,,%zz",
        "\u{e9}\u{20ac}",
        "\t",
        long.as_str(),
    ];
    let mut variables: Vec<String> = documented().into_iter().collect();
    for signal in ["TRACES", "METRICS", "LOGS"] {
        for setting in [
            "ENDPOINT",
            "PROTOCOL",
            "INSECURE",
            "CERTIFICATE",
            "CLIENT_CERTIFICATE",
            "CLIENT_KEY",
            "HEADERS",
            "COMPRESSION",
            "TIMEOUT",
        ] {
            variables.push(format!("OTEL_EXPORTER_OTLP_{signal}_{setting}"));
        }
    }
    for variable in &variables {
        for value in values {
            let t = Telemetry::builder()
                .local()
                .quiet()
                // Port 0 wherever Prometheus is turned on, so that no run
                // depends on a fixed port being free.
                .env_map([
                    (variable.as_str(), value),
                    (
                        "OTEL_EXPORTER_PROMETHEUS_PORT",
                        if variable == "OTEL_EXPORTER_PROMETHEUS_PORT" {
                            value
                        } else {
                            "0"
                        },
                    ),
                    (
                        "OTEL_EXPORTER_OTLP_TIMEOUT",
                        if variable == "OTEL_EXPORTER_OTLP_TIMEOUT" {
                            value
                        } else {
                            "100"
                        },
                    ),
                ])
                .shutdown_timeout(Duration::from_millis(200))
                .install()
                .unwrap_or_else(|e| panic!("{variable}={value:?}: {e}"));
            if let Some(p) = t.tracer_provider() {
                p.tracer("t").in_span("work", |_| {});
            }
            drop(t);
            assert_eq!(
                PANICS.load(Ordering::SeqCst),
                0,
                "{variable}={value:?} panicked"
            );
        }
    }
}

/// `env_map` is the only source even where opentelemetry-otlp would read
/// the process environment itself: its `OTEL_EXPORTER_OTLP_HEADERS` is not
/// sent, over gRPC or HTTP, and a header both set is sent with our value.
#[test]
fn env_map_headers_are_the_only_ones_sent() {
    for protocol in ["grpc", "http/protobuf"] {
        let rx = otel_testkit::otlp::OtlpReceiver::start();
        let endpoint = if protocol == "grpc" {
            rx.grpc_endpoint()
        } else {
            rx.http_endpoint()
        };
        run_child(
            "export",
            &[
                ("OTEL_EXPORTER_OTLP_HEADERS".into(), "leak=1,ours=9".into()),
                ("TEST_ENDPOINT".into(), endpoint),
                ("TEST_PROTOCOL".into(), protocol.into()),
            ],
        );
        let spans = rx.wait_for_spans(1, Duration::from_secs(10));
        assert_eq!(spans.len(), 1, "{protocol}");
        let headers = rx.trace_request_headers();
        assert!(!headers.is_empty());
        for h in headers {
            assert!(h.get("leak").is_none(), "{protocol}: {h:?}");
            assert_eq!(
                h.get("ours").and_then(|v| v.to_str().ok()),
                Some("2"),
                "{protocol}: {h:?}"
            );
        }
    }
}
