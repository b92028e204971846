//! The `OTEL_*` environment variables, read to the letter of the
//! specification: an empty value is unset, enums are case-insensitive, and a
//! bad value is ignored with a warning that names the variable, the value
//! and what is allowed.

use std::fmt;
use std::time::Duration;

/// Where variables are read from: the process environment, or a map (tests,
/// or a configuration file a user turned into one).
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A value that was ignored, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The variable.
    pub variable: String,
    /// What it held.
    pub value: String,
    /// What is allowed, and what was used instead.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} ignored: {}",
            self.variable, self.value, self.message
        )
    }
}

/// The OTLP transport and encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC.
    Grpc,
    /// OTLP over HTTP, protobuf-encoded (the default).
    HttpProtobuf,
    /// OTLP over HTTP, JSON-encoded.
    HttpJson,
}

/// Payload compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
}

/// Where and how one signal is exported over OTLP.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpConfig {
    /// The full URL (HTTP: including `/v1/traces` or `/v1/metrics`).
    pub endpoint: String,
    /// The variable that set the endpoint and its value as written, named in
    /// the warning when the endpoint cannot be used; `None` for the default
    /// or an endpoint given in code.
    pub endpoint_source: Option<(String, String)>,
    /// Transport and encoding.
    pub protocol: Protocol,
    /// Extra headers (`OTEL_EXPORTER_OTLP_HEADERS`), decoded.
    pub headers: Vec<(String, String)>,
    /// Export timeout.
    pub timeout: Duration,
    /// Compression.
    pub compression: Compression,
    /// The TLS files (`OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_CERTIFICATE`,
    /// `_CLIENT_KEY`, each with its per-signal override).
    pub tls: TlsFiles,
}

/// A file named by a variable: where it came from, and its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSetting {
    /// The variable that named it (or `set in code`).
    pub variable: String,
    /// The path, as given.
    pub path: String,
}

/// The PEM files OTLP's TLS uses for one signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates trusted for the collector's certificate, in place
    /// of the system's and webpki's roots (`*_CERTIFICATE`).
    pub certificate: Option<FileSetting>,
    /// The client's certificate chain, for mTLS (`*_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<FileSetting>,
    /// The client's private key, for mTLS (`*_CLIENT_KEY`).
    pub client_key: Option<FileSetting>,
}

/// Which temporality OTLP metrics are exported with
/// (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemporalityPreference {
    /// Every instrument cumulative (the default).
    Cumulative,
    /// Counters, asynchronous counters and histograms as deltas; up-down
    /// counters cumulative.
    Delta,
    /// Synchronous counters and histograms as deltas; the rest cumulative.
    LowMemory,
}

/// The default aggregation of histograms
/// (`OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistogramAggregation {
    /// Explicit buckets (the default; an instrument's own boundaries).
    ExplicitBucket,
    /// Base-2 exponential buckets (160 buckets, scale up to 20).
    Base2Exponential,
}

/// How much otel-setup itself prints to standard error (`OTEL_LOG_LEVEL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing.
    None,
    /// Losses and export failures.
    Error,
    /// Also settings that were ignored.
    Warn,
    /// The default: the same as `Warn` today.
    Info,
    /// Also what was installed, signal by signal.
    Debug,
}

/// An exporter a signal is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExporterKind {
    /// OTLP.
    Otlp,
    /// The terminal: a waterfall for traces, a dump for metrics.
    Console,
    /// Metrics only: served for scraping in the Prometheus text format.
    Prometheus,
}

/// The sampler, as configured.
#[derive(Clone, Debug, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio`
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default)
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`
    ParentBasedTraceIdRatio(f64),
}

/// Batch processor settings (`OTEL_BSP_*` for spans, `OTEL_BLRP_*` for log
/// records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Delay between exports.
    pub schedule_delay: Duration,
    /// Export timeout: how long one export may run, retries included, before
    /// it is given up. Zero means no limit.
    pub export_timeout: Duration,
    /// Spans kept waiting at most; more are dropped (and counted).
    pub max_queue_size: usize,
    /// Spans per export at most.
    pub max_export_batch_size: usize,
}

/// Span and attribute limits (`OTEL_ATTRIBUTE_*`, `OTEL_SPAN_*`,
/// `OTEL_EVENT_*`, `OTEL_LINK_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The longest attribute value kept, in characters: longer strings
    /// (and each string of a string array) are cut to it on every exported
    /// span, events and links included. `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`,
    /// then `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`; 4096 by default, where the
    /// specification has no limit, so that one hostile header cannot make a
    /// span megabytes long.
    pub attribute_value_length: usize,
    /// Attributes per span (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, then
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; 128).
    pub span_attribute_count: u32,
    /// Events per span (`OTEL_SPAN_EVENT_COUNT_LIMIT`; 128).
    pub span_event_count: u32,
    /// Links per span (`OTEL_SPAN_LINK_COUNT_LIMIT`; 128).
    pub span_link_count: u32,
    /// Attributes per event (`OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT`, then
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; 128).
    pub event_attribute_count: u32,
    /// Attributes per link (`OTEL_LINK_ATTRIBUTE_COUNT_LIMIT`, then
    /// `OTEL_ATTRIBUTE_COUNT_LIMIT`; 128).
    pub link_attribute_count: u32,
}

/// The default value length limit, in characters.
pub const DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT: usize = 4096;

/// Every setting `init()` applied, after the environment and the builder.
#[derive(Clone, Debug, PartialEq)]
pub struct EffectiveConfig {
    /// `OTEL_SDK_DISABLED`: no-op providers; propagation still works.
    pub disabled: bool,
    /// `service.name`.
    pub service_name: String,
    /// Resource attributes from `OTEL_RESOURCE_ATTRIBUTES`, decoded.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_PROPAGATORS`, deduplicated, in order.
    pub propagators: Vec<String>,
    /// `OTEL_TRACES_EXPORTER`.
    pub traces_exporters: Vec<ExporterKind>,
    /// `OTEL_METRICS_EXPORTER`.
    pub metrics_exporters: Vec<ExporterKind>,
    /// `OTEL_LOGS_EXPORTER` (used with the `tracing` feature's log bridge).
    pub logs_exporters: Vec<ExporterKind>,
    /// OTLP settings for traces.
    pub traces_otlp: OtlpConfig,
    /// OTLP settings for metrics.
    pub metrics_otlp: OtlpConfig,
    /// OTLP settings for logs.
    pub logs_otlp: OtlpConfig,
    /// `RUST_LOG`: what the `tracing` feature's subscriber logs (default
    /// `info`).
    pub rust_log: String,
    /// `OTEL_TRACES_SAMPLER` / `_ARG`.
    pub sampler: SamplerConfig,
    /// `OTEL_BSP_*`.
    pub batch: BatchConfig,
    /// `OTEL_BLRP_*`: the log record queue (`tracing` feature).
    pub logs_batch: BatchConfig,
    /// Span and attribute limits.
    pub limits: Limits,
    /// `OTEL_METRIC_EXPORT_INTERVAL`.
    pub metric_export_interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT`: one metric export at most, retries
    /// included. Zero means no limit.
    pub metric_export_timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    pub metrics_temporality: TemporalityPreference,
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`.
    pub histogram_aggregation: HistogramAggregation,
    /// `OTEL_EXPORTER_PROMETHEUS_HOST` and `_PORT` (`localhost:9464`): where
    /// `OTEL_METRICS_EXPORTER=prometheus` serves `/metrics`. Port 0 takes
    /// a free port ([`Telemetry::prometheus_address`](crate::Telemetry::prometheus_address)).
    pub prometheus_host: String,
    /// See [`prometheus_host`](Self::prometheus_host).
    pub prometheus_port: u16,
    /// `OTEL_LOG_LEVEL`: what otel-setup itself prints.
    pub log_level: LogLevel,
    /// How long shutdown waits for every signal's last export, all signals
    /// together (5 s unless set in code).
    pub shutdown_timeout: Duration,
    /// The most estimated bytes one export request carries: batches are cut
    /// below it, and an item alone above it is dropped and counted (4 MiB,
    /// the usual receiver limit, unless set in code).
    pub max_export_request_bytes: usize,
    /// The most estimated bytes each queue holds (spans, log records), on
    /// top of its item bound (32 MiB unless set in code).
    pub max_queue_bytes: usize,
    /// Every value that was ignored.
    pub warnings: Vec<ConfigWarning>,
}

pub(crate) struct Reader<'a> {
    lookup: Lookup<'a>,
    pub(crate) warnings: Vec<ConfigWarning>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(lookup: Lookup<'a>) -> Self {
        Reader {
            lookup,
            warnings: Vec::new(),
        }
    }

    /// The value, trimmed; `None` when unset or empty.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn warn(&mut self, variable: &str, value: &str, message: impl Into<String>) {
        self.warnings.push(ConfigWarning {
            variable: variable.to_owned(),
            value: value.to_owned(),
            message: message.into(),
        });
    }

    /// True only for a case-insensitive `true`; anything but `false` warns.
    pub(crate) fn bool(&mut self, name: &str) -> bool {
        match self.get(name) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                self.warn(name, &v, "allowed: true, false; using false");
                false
            }
        }
    }

    /// A duration in whole milliseconds.
    fn millis(&mut self, name: &str, default: Duration) -> Duration {
        match self.get(name) {
            None => default,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    self.warn(
                        name,
                        &v,
                        format!(
                            "allowed: a whole number of milliseconds; using {}",
                            default.as_millis()
                        ),
                    );
                    default
                }
            },
        }
    }

    /// A non-negative whole number (limits, where 0 is allowed).
    fn limit(&mut self, name: &str) -> Option<usize> {
        let v = self.get(name)?;
        match v.parse::<u32>() {
            Ok(n) if n <= i32::MAX as u32 => Some(n as usize),
            _ => {
                self.warn(
                    name,
                    &v,
                    "allowed: a whole number from 0 to 2147483647; using the default",
                );
                None
            }
        }
    }

    fn count(&mut self, name: &str, default: usize) -> usize {
        match self.get(name) {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    self.warn(
                        name,
                        &v,
                        format!("allowed: a positive whole number; using {default}"),
                    );
                    default
                }
            },
        }
    }

    /// One case-insensitive enum value; an unknown one warns (showing what
    /// the user wrote) and gives `None`, as unset.
    fn choice<T: Copy>(&mut self, name: &str, allowed: &[(&str, T)]) -> Option<T> {
        let v = self.get(name)?;
        if let Some((_, t)) = allowed.iter().find(|(n, _)| n.eq_ignore_ascii_case(&v)) {
            return Some(*t);
        }
        let mut names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
        names.dedup();
        self.warn(
            name,
            &v,
            format!("allowed: {}; using the default", names.join(", ")),
        );
        None
    }

    /// A TCP port, 0 to 65535 (0: any free port).
    fn port(&mut self, name: &str, default: u16) -> u16 {
        match self.get(name) {
            None => default,
            Some(v) => v.parse::<u16>().unwrap_or_else(|_| {
                self.warn(
                    name,
                    &v,
                    format!("allowed: a port from 0 to 65535; using {default}"),
                );
                default
            }),
        }
    }

    /// A comma-separated list of enum values; unknown ones are warned about
    /// and skipped. `None` when unset.
    fn list<T: Copy>(&mut self, name: &str, allowed: &[(&str, Option<T>)]) -> Option<Vec<T>> {
        let value = self.get(name)?;
        let mut out = Vec::new();
        let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match allowed.iter().find(|(n, _)| n.eq_ignore_ascii_case(item)) {
                Some((_, Some(kind))) => out.push(*kind),
                Some((_, None)) => {}
                None => self.warn(
                    name,
                    item,
                    format!("unknown value; allowed: {}", names.join(", ")),
                ),
            }
        }
        Some(out)
    }
}

/// `k=v,k2=v2` with percent-encoded keys and values (resource attributes,
/// OTLP headers). `Err` names the first bad entry.
pub(crate) fn parse_key_values(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (k, v) = entry
            .split_once('=')
            .ok_or_else(|| format!("entry {entry:?} has no '='"))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s.trim())
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| format!("entry {entry:?} is not valid percent-encoded UTF-8"))
        };
        let key = decode(k)?;
        if key.is_empty() {
            return Err(format!("entry {entry:?} has an empty key"));
        }
        out.push((key, decode(v)?));
    }
    Ok(out)
}

const SIGNAL_TRACES: (&str, &str) = ("TRACES", "v1/traces");
const SIGNAL_METRICS: (&str, &str) = ("METRICS", "v1/metrics");
const SIGNAL_LOGS: (&str, &str) = ("LOGS", "v1/logs");

fn otlp(r: &mut Reader<'_>, (signal, path): (&str, &str)) -> OtlpConfig {
    let specific = |setting: &str| format!("OTEL_EXPORTER_OTLP_{signal}_{setting}");
    let general = |setting: &str| format!("OTEL_EXPORTER_OTLP_{setting}");
    // The per-signal variable wins; each is validated on its own.
    let pick = |r: &Reader<'_>, setting: &str| {
        let s = specific(setting);
        match r.get(&s) {
            Some(v) => Some((s, v)),
            None => {
                let g = general(setting);
                r.get(&g).map(|v| (g, v))
            }
        }
    };

    let mut protocol = Protocol::HttpProtobuf;
    for name in [specific("PROTOCOL"), general("PROTOCOL")] {
        let Some(v) = r.get(&name) else { continue };
        match v.to_ascii_lowercase().as_str() {
            "grpc" => protocol = Protocol::Grpc,
            "http/protobuf" => protocol = Protocol::HttpProtobuf,
            "http/json" => protocol = Protocol::HttpJson,
            _ => {
                r.warn(
                    &name,
                    &v,
                    "allowed: grpc, http/protobuf, http/json; using the next setting or http/protobuf",
                );
                continue;
            }
        }
        break;
    }

    let default_base = match protocol {
        Protocol::Grpc => "http://localhost:4317",
        _ => "http://localhost:4318",
    };
    let insecure = r.bool(&specific("INSECURE")) || r.bool(&general("INSECURE"));
    let (endpoint, endpoint_source) =
        match (r.get(&specific("ENDPOINT")), r.get(&general("ENDPOINT"))) {
            // A per-signal endpoint is used as it is; an empty path becomes "/".
            (Some(url), _) => (
                with_root_path(&grpc_scheme(&url, protocol, insecure)),
                Some((specific("ENDPOINT"), url)),
            ),
            (None, Some(base)) => (
                join_signal_path(&grpc_scheme(&base, protocol, insecure), path, protocol),
                Some((general("ENDPOINT"), base)),
            ),
            (None, None) => (join_signal_path(default_base, path, protocol), None),
        };

    let headers = match pick(r, "HEADERS") {
        None => Vec::new(),
        Some((name, v)) => parse_key_values(&v).unwrap_or_else(|e| {
            r.warn(
                &name,
                &v,
                format!("{e}; allowed: k=v,k2=v2 (percent-encoded); sending no extra headers"),
            );
            Vec::new()
        }),
    };
    let timeout = match pick(r, "TIMEOUT") {
        None => Duration::from_secs(10),
        Some((name, _)) => r.millis(&name, Duration::from_secs(10)),
    };
    let compression = match pick(r, "COMPRESSION") {
        None => Compression::None,
        Some((name, v)) => match v.to_ascii_lowercase().as_str() {
            "gzip" => Compression::Gzip,
            "none" => Compression::None,
            _ => {
                r.warn(&name, &v, "allowed: gzip, none; using none");
                Compression::None
            }
        },
    };
    let file = |r: &Reader<'_>, setting: &str| {
        pick(r, setting).map(|(variable, path)| FileSetting { variable, path })
    };
    let tls = TlsFiles {
        certificate: file(r, "CERTIFICATE"),
        client_certificate: file(r, "CLIENT_CERTIFICATE"),
        client_key: file(r, "CLIENT_KEY"),
    };
    OtlpConfig {
        endpoint,
        endpoint_source,
        protocol,
        headers,
        timeout,
        compression,
        tls,
    }
}

/// A gRPC endpoint without a scheme (`collector:4317`, as gRPC clients
/// accept) is TLS unless `OTEL_EXPORTER_OTLP_INSECURE` is true. HTTP
/// endpoints are left as given.
fn grpc_scheme(url: &str, protocol: Protocol, insecure: bool) -> String {
    if protocol != Protocol::Grpc || url.contains("://") {
        return url.to_owned();
    }
    let scheme = if insecure { "http" } else { "https" };
    format!("{scheme}://{url}")
}

/// Why an endpoint cannot be used, if it cannot.
pub(crate) fn endpoint_problem(url: &str) -> Option<String> {
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(e) => return Some(format!("not a URL ({e})")),
    };
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Some(format!("the scheme {other:?} is not http or https")),
        None => return Some("no scheme".to_owned()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Some("no host".to_owned());
    }
    if cfg!(not(feature = "tls")) && uri.scheme_str() == Some("https") {
        return Some(
            "https needs TLS, which is not built in (otel-setup's `tls` feature is off)".to_owned(),
        );
    }
    None
}

fn with_root_path(url: &str) -> String {
    match url.find("://") {
        Some(i) if !url[i + 3..].contains('/') => format!("{url}/"),
        _ => url.to_owned(),
    }
}

fn join_signal_path(base: &str, path: &str, protocol: Protocol) -> String {
    if protocol == Protocol::Grpc {
        // gRPC addresses a service, not a path.
        return base.to_owned();
    }
    format!("{}/{}", base.trim_end_matches('/'), path)
}

fn sampler(r: &mut Reader<'_>) -> SamplerConfig {
    const NAME: &str = "OTEL_TRACES_SAMPLER";
    const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    let ratio = |r: &mut Reader<'_>| match r.get(ARG) {
        None => 1.0,
        Some(v) => match v.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => x,
            _ => {
                r.warn(ARG, &v, "allowed: a number from 0 to 1; using 1.0");
                1.0
            }
        },
    };
    let Some(v) = r.get(NAME) else {
        return SamplerConfig::ParentBasedAlwaysOn;
    };
    match v.to_ascii_lowercase().as_str() {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(ratio(r)),
        "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio(r)),
        _ => {
            r.warn(
                NAME,
                &v,
                "allowed: always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off, parentbased_traceidratio; using parentbased_always_on",
            );
            SamplerConfig::ParentBasedAlwaysOn
        }
    }
}

/// The known propagator names; `none` clears the list.
const PROPAGATORS: [&str; 4] = ["tracecontext", "baggage", "b3", "b3multi"];

fn propagators(r: &mut Reader<'_>) -> Vec<String> {
    const NAME: &str = "OTEL_PROPAGATORS";
    let Some(v) = r.get(NAME) else {
        return vec!["tracecontext".into(), "baggage".into()];
    };
    let mut out: Vec<String> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let item = item.to_ascii_lowercase();
        if item == "none" {
            continue;
        }
        if !PROPAGATORS.contains(&item.as_str()) {
            r.warn(
                NAME,
                &item,
                "unknown propagator; allowed: tracecontext, baggage, b3, b3multi, none",
            );
            continue;
        }
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn service_name(r: &mut Reader<'_>, resource: &[(String, String)]) -> String {
    if let Some(name) = r.get("OTEL_SERVICE_NAME") {
        return name;
    }
    if let Some((_, name)) = resource.iter().find(|(k, _)| k == "service.name") {
        return name.clone();
    }
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    if exe.is_empty() {
        "unknown_service".to_owned()
    } else {
        format!("unknown_service:{exe}")
    }
}

/// `OTEL_METRICS_EXEMPLAR_FILTER`: read, and said plainly that the SDK
/// records no exemplars, whatever the filter.
fn exemplar_filter(r: &mut Reader<'_>) {
    const NAME: &str = "OTEL_METRICS_EXEMPLAR_FILTER";
    let allowed = [
        ("always_off", false),
        ("always_on", true),
        ("trace_based", true),
    ];
    if let Some(true) = r.choice(NAME, &allowed) {
        let v = r.get(NAME).unwrap_or_default();
        r.warn(
            NAME,
            &v,
            "the OpenTelemetry Rust SDK records no exemplars yet; metrics are exported without them",
        );
    }
}

/// `OTEL_CONFIG_FILE` (and its old name): the declarative file is not read
/// yet, so the other variables still are, and the user is told so.
fn config_file(r: &mut Reader<'_>) {
    for name in ["OTEL_CONFIG_FILE", "OTEL_EXPERIMENTAL_CONFIG_FILE"] {
        if let Some(v) = r.get(name) {
            r.warn(
                name,
                &v,
                "declarative configuration files are not supported yet; the file is not read, \
                 and the other OTEL_* variables are applied as usual",
            );
        }
    }
}

/// Shutdown waits this long for all signals together by default: under the
/// 10 s a container runtime gives a process between SIGTERM and SIGKILL.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The default request bound: the OpenTelemetry Collector's (and gRPC's)
/// default 4 MiB receive limit.
pub const DEFAULT_MAX_EXPORT_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The default byte bound of each queue.
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// One batch processor's variables, `{prefix}_SCHEDULE_DELAY` and so on.
fn batch_config(r: &mut Reader<'_>, prefix: &str, default_delay: Duration) -> BatchConfig {
    let queue_var = format!("{prefix}_MAX_QUEUE_SIZE");
    let batch_var = format!("{prefix}_MAX_EXPORT_BATCH_SIZE");
    let max_queue_size = r.count(&queue_var, 2048);
    let batch_set = r.get(&batch_var).is_some();
    let mut max_export_batch_size = r.count(&batch_var, 512);
    if max_export_batch_size > max_queue_size {
        // Only a value the user set is warned about: with the queue alone
        // made small, the default batch size simply follows it.
        if batch_set {
            r.warn(
                &batch_var,
                &max_export_batch_size.to_string(),
                format!("must not exceed {queue_var} ({max_queue_size}); using {max_queue_size}"),
            );
        }
        max_export_batch_size = max_queue_size;
    }
    BatchConfig {
        schedule_delay: r.millis(&format!("{prefix}_SCHEDULE_DELAY"), default_delay),
        export_timeout: r.millis(
            &format!("{prefix}_EXPORT_TIMEOUT"),
            Duration::from_millis(30000),
        ),
        max_queue_size,
        max_export_batch_size,
    }
}

fn limits(r: &mut Reader<'_>) -> Limits {
    let general_count = r.limit("OTEL_ATTRIBUTE_COUNT_LIMIT");
    let general_length = r.limit("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT");
    let count = |r: &mut Reader<'_>, name: &str, general: Option<usize>| {
        r.limit(name)
            .or(general)
            .unwrap_or(128)
            .min(u32::MAX as usize) as u32
    };
    Limits {
        attribute_value_length: r
            .limit("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
            .or(general_length)
            .unwrap_or(DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT),
        span_attribute_count: count(r, "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", general_count),
        span_event_count: count(r, "OTEL_SPAN_EVENT_COUNT_LIMIT", None),
        span_link_count: count(r, "OTEL_SPAN_LINK_COUNT_LIMIT", None),
        event_attribute_count: count(r, "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", general_count),
        link_attribute_count: count(r, "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", general_count),
    }
}

/// Turns off OTLP export of each signal whose endpoint cannot be used, with
/// one warning naming the variable; and keeps one warning per variable and
/// value (a shared variable is read once per signal).
pub(crate) fn finish(cfg: &mut EffectiveConfig) {
    let mut off: Vec<(String, String, String, &str)> = Vec::new();
    for (signal, otlp, exporters) in [
        ("traces", &mut cfg.traces_otlp, &mut cfg.traces_exporters),
        ("metrics", &mut cfg.metrics_otlp, &mut cfg.metrics_exporters),
        ("logs", &mut cfg.logs_otlp, &mut cfg.logs_exporters),
    ] {
        // Prometheus serves metrics only.
        if signal != "metrics" && exporters.contains(&ExporterKind::Prometheus) {
            exporters.retain(|k| *k != ExporterKind::Prometheus);
        }
        if !exporters.contains(&ExporterKind::Otlp) {
            continue;
        }
        crate::tls::check(&mut otlp.tls, &mut cfg.warnings);
        if let Some(problem) = endpoint_problem(&otlp.endpoint) {
            let (variable, value) = otlp
                .endpoint_source
                .clone()
                .unwrap_or_else(|| ("endpoint (set in code)".to_owned(), otlp.endpoint.clone()));
            off.push((variable, value, problem, signal));
            exporters.retain(|k| *k != ExporterKind::Otlp);
        }
    }
    // One warning per variable, naming every signal it turned off.
    for (i, (variable, value, problem, _)) in off.iter().enumerate() {
        if off[..i].iter().any(|(v, ..)| v == variable) {
            continue;
        }
        let signals: Vec<&str> = off
            .iter()
            .filter(|(v, ..)| v == variable)
            .map(|(.., s)| *s)
            .collect();
        cfg.warnings.push(ConfigWarning {
            variable: variable.clone(),
            value: value.clone(),
            message: format!(
                "{problem}; allowed: an http:// or https:// URL such as http://localhost:4318 \
                 (gRPC also takes host:port); OTLP export of {} is off",
                signals.join(", ")
            ),
        });
    }
    let mut seen = std::collections::HashSet::new();
    cfg.warnings
        .retain(|w| seen.insert((w.variable.clone(), w.value.clone())));
}

/// Reads every variable. Code-level settings are applied afterwards by the
/// builder, so they win.
pub(crate) fn read(lookup: Lookup<'_>) -> EffectiveConfig {
    let mut r = Reader::new(lookup);
    let disabled = r.bool("OTEL_SDK_DISABLED");
    let resource_attributes = match r.get("OTEL_RESOURCE_ATTRIBUTES") {
        None => Vec::new(),
        Some(v) => parse_key_values(&v).unwrap_or_else(|e| {
            r.warn(
                "OTEL_RESOURCE_ATTRIBUTES",
                &v,
                format!("{e}; the whole value is discarded; allowed: k=v,k2=v2 (percent-encoded)"),
            );
            Vec::new()
        }),
    };
    let service_name = service_name(&mut r, &resource_attributes);
    let exporters: [(&str, Option<ExporterKind>); 3] = [
        ("otlp", Some(ExporterKind::Otlp)),
        ("console", Some(ExporterKind::Console)),
        ("none", None),
    ];
    let traces_exporters = r
        .list("OTEL_TRACES_EXPORTER", &exporters)
        .unwrap_or_else(|| vec![ExporterKind::Otlp]);
    let metric_exporters: [(&str, Option<ExporterKind>); 4] = [
        ("otlp", Some(ExporterKind::Otlp)),
        ("prometheus", Some(ExporterKind::Prometheus)),
        ("console", Some(ExporterKind::Console)),
        ("none", None),
    ];
    let metrics_exporters = r
        .list("OTEL_METRICS_EXPORTER", &metric_exporters)
        .unwrap_or_else(|| vec![ExporterKind::Otlp]);
    let logs_exporters = r
        .list("OTEL_LOGS_EXPORTER", &exporters)
        .unwrap_or_else(|| vec![ExporterKind::Otlp]);
    let propagators = propagators(&mut r);
    let sampler = sampler(&mut r);
    let traces_otlp = otlp(&mut r, SIGNAL_TRACES);
    let metrics_otlp = otlp(&mut r, SIGNAL_METRICS);
    let logs_otlp = otlp(&mut r, SIGNAL_LOGS);
    let rust_log = r.get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
    let batch = batch_config(&mut r, "OTEL_BSP", Duration::from_millis(5000));
    let logs_batch = batch_config(&mut r, "OTEL_BLRP", Duration::from_millis(1000));
    let limits = limits(&mut r);
    let metric_export_interval =
        r.millis("OTEL_METRIC_EXPORT_INTERVAL", Duration::from_millis(60000));
    let metric_export_timeout =
        r.millis("OTEL_METRIC_EXPORT_TIMEOUT", Duration::from_millis(30000));
    let metrics_temporality = r
        .choice(
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
            &[
                ("cumulative", TemporalityPreference::Cumulative),
                ("delta", TemporalityPreference::Delta),
                ("lowmemory", TemporalityPreference::LowMemory),
            ],
        )
        .unwrap_or(TemporalityPreference::Cumulative);
    let histogram_aggregation = r
        .choice(
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION",
            &[
                (
                    "explicit_bucket_histogram",
                    HistogramAggregation::ExplicitBucket,
                ),
                (
                    "base2_exponential_bucket_histogram",
                    HistogramAggregation::Base2Exponential,
                ),
            ],
        )
        .unwrap_or(HistogramAggregation::ExplicitBucket);
    exemplar_filter(&mut r);
    let prometheus_host = r
        .get("OTEL_EXPORTER_PROMETHEUS_HOST")
        .unwrap_or_else(|| "localhost".to_owned());
    let prometheus_port = r.port("OTEL_EXPORTER_PROMETHEUS_PORT", 9464);
    let log_level = r
        .choice(
            "OTEL_LOG_LEVEL",
            &[
                ("none", LogLevel::None),
                ("off", LogLevel::None),
                ("error", LogLevel::Error),
                ("warn", LogLevel::Warn),
                ("warning", LogLevel::Warn),
                ("info", LogLevel::Info),
                ("debug", LogLevel::Debug),
                ("trace", LogLevel::Debug),
                ("verbose", LogLevel::Debug),
                ("all", LogLevel::Debug),
            ],
        )
        .unwrap_or(LogLevel::Info);
    config_file(&mut r);
    EffectiveConfig {
        disabled,
        service_name,
        resource_attributes,
        propagators,
        traces_exporters,
        metrics_exporters,
        logs_exporters,
        traces_otlp,
        metrics_otlp,
        logs_otlp,
        rust_log,
        sampler,
        batch,
        logs_batch,
        limits,
        metric_export_interval,
        metric_export_timeout,
        metrics_temporality,
        histogram_aggregation,
        prometheus_host,
        prometheus_port,
        log_level,
        shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        max_export_request_bytes: DEFAULT_MAX_EXPORT_REQUEST_BYTES,
        max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
        warnings: r.warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read_map(map: &HashMap<String, String>) -> EffectiveConfig {
        read(&|name| map.get(name).cloned())
    }

    fn cfg(pairs: &[(&str, &str)]) -> EffectiveConfig {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        read_map(&map)
    }

    fn warned(c: &EffectiveConfig, var: &str) -> bool {
        c.warnings.iter().any(|w| w.variable == var)
    }

    #[test]
    fn g1_g2_defaults_when_nothing_is_set() {
        let c = cfg(&[]);
        assert!(!c.disabled);
        assert!(
            c.service_name.starts_with("unknown_service:"),
            "{}",
            c.service_name
        );
        assert_eq!(c.propagators, ["tracecontext", "baggage"]);
        assert_eq!(c.traces_exporters, [ExporterKind::Otlp]);
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.traces_otlp.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(c.metrics_otlp.endpoint, "http://localhost:4318/v1/metrics");
        assert_eq!(c.logs_otlp.endpoint, "http://localhost:4318/v1/logs");
        assert_eq!(c.logs_exporters, [ExporterKind::Otlp]);
        assert_eq!(c.rust_log, "info");
        assert_eq!(c.traces_otlp.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.traces_otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.batch.max_queue_size, 2048);
        assert_eq!(c.batch.max_export_batch_size, 512);
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(5000));
        assert_eq!(c.metric_export_interval, Duration::from_millis(60000));
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn g1_empty_values_are_unset() {
        let all = [
            "OTEL_SDK_DISABLED",
            "OTEL_SERVICE_NAME",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_PROPAGATORS",
            "OTEL_TRACES_EXPORTER",
            "OTEL_METRICS_EXPORTER",
            "OTEL_TRACES_SAMPLER",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_BSP_MAX_QUEUE_SIZE",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_LOGS_EXPORTER",
            "RUST_LOG",
        ];
        let pairs: Vec<(&str, &str)> = all.iter().map(|k| (*k, "  ")).collect();
        assert_eq!(cfg(&pairs), cfg(&[]));
    }

    #[test]
    fn g2_disabled_table() {
        for (v, want, warns) in [
            ("true", true, false),
            ("TRUE", true, false),
            ("false", false, false),
            ("yes", false, true),
            ("1", false, true),
        ] {
            let c = cfg(&[("OTEL_SDK_DISABLED", v)]);
            assert_eq!(c.disabled, want, "{v}");
            assert_eq!(warned(&c, "OTEL_SDK_DISABLED"), warns, "{v}");
        }
    }

    #[test]
    fn g2_service_name_precedence() {
        let c = cfg(&[
            ("OTEL_SERVICE_NAME", "orders"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=other"),
        ]);
        assert_eq!(c.service_name, "orders");
        let c = cfg(&[("OTEL_RESOURCE_ATTRIBUTES", "service.name=other,team=a")]);
        assert_eq!(c.service_name, "other");
    }

    #[test]
    fn g2_resource_attributes_decoding_and_errors() {
        let c = cfg(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "a=1, b = x%2Cy%3Dz ,c=%E2%82%AC",
        )]);
        assert_eq!(
            c.resource_attributes,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x,y=z".into()),
                ("c".into(), "\u{20ac}".into())
            ]
        );
        for bad in ["a=1,broken", "a=%FF", "=1"] {
            let c = cfg(&[("OTEL_RESOURCE_ATTRIBUTES", bad)]);
            assert!(
                c.resource_attributes.is_empty(),
                "whole value discarded: {bad}"
            );
            assert!(warned(&c, "OTEL_RESOURCE_ATTRIBUTES"), "{bad}");
        }
    }

    #[test]
    fn g3_propagators_table() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("tracecontext", &["tracecontext"], false),
            (
                "baggage,tracecontext,baggage",
                &["baggage", "tracecontext"],
                false,
            ),
            ("B3, b3multi", &["b3", "b3multi"], false),
            ("none", &[], false),
            ("xray,tracecontext", &["tracecontext"], true),
        ];
        for (v, want, warns) in cases {
            let c = cfg(&[("OTEL_PROPAGATORS", v)]);
            assert_eq!(c.propagators, *want, "{v}");
            assert_eq!(warned(&c, "OTEL_PROPAGATORS"), *warns, "{v}");
        }
    }

    #[test]
    fn g4_sampler_table() {
        use SamplerConfig::*;
        let cases: &[(&str, Option<&str>, SamplerConfig, bool)] = &[
            ("always_on", None, AlwaysOn, false),
            ("ALWAYS_OFF", None, AlwaysOff, false),
            ("traceidratio", Some("0.25"), TraceIdRatio(0.25), false),
            ("traceidratio", None, TraceIdRatio(1.0), false),
            ("traceidratio", Some("1.7"), TraceIdRatio(1.0), true),
            ("traceidratio", Some("-0.1"), TraceIdRatio(1.0), true),
            ("traceidratio", Some("half"), TraceIdRatio(1.0), true),
            (
                "parentbased_traceidratio",
                Some("0"),
                ParentBasedTraceIdRatio(0.0),
                false,
            ),
            ("parentbased_always_off", None, ParentBasedAlwaysOff, false),
            ("bogus", None, ParentBasedAlwaysOn, true),
        ];
        for (s, arg, want, warns) in cases {
            let mut pairs = vec![("OTEL_TRACES_SAMPLER", *s)];
            if let Some(a) = arg {
                pairs.push(("OTEL_TRACES_SAMPLER_ARG", a));
            }
            let c = cfg(&pairs);
            assert_eq!(c.sampler, *want, "{s} {arg:?}");
            assert_eq!(
                !c.warnings.is_empty(),
                *warns,
                "{s} {arg:?}: {:?}",
                c.warnings
            );
        }
    }

    #[test]
    fn g5_exporters_table() {
        use ExporterKind::*;
        let cases: &[(&str, &[ExporterKind], bool)] = &[
            ("otlp", &[Otlp], false),
            ("console", &[Console], false),
            ("otlp,console", &[Otlp, Console], false),
            ("none", &[], false),
            ("zipkin", &[], true),
            ("logging,otlp", &[Otlp], true),
        ];
        for (v, want, warns) in cases {
            let c = cfg(&[
                ("OTEL_TRACES_EXPORTER", v),
                ("OTEL_METRICS_EXPORTER", v),
                ("OTEL_LOGS_EXPORTER", v),
            ]);
            assert_eq!(c.traces_exporters, *want, "{v}");
            assert_eq!(c.metrics_exporters, *want, "{v}");
            assert_eq!(c.logs_exporters, *want, "{v}");
            assert_eq!(warned(&c, "OTEL_TRACES_EXPORTER"), *warns, "{v}");
        }
    }

    #[test]
    fn g6_otlp_endpoint_protocol_and_overrides() {
        let c = cfg(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]);
        assert_eq!(c.traces_otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.metrics_otlp.endpoint, "http://collector:4318/v1/metrics");

        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999"),
        ]);
        assert_eq!(
            c.traces_otlp.endpoint, "http://traces:9999/",
            "per-signal used as is, empty path is /"
        );
        assert_eq!(c.metrics_otlp.endpoint, "http://collector:4318/v1/metrics");

        let c = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(c.traces_otlp.protocol, Protocol::Grpc);
        assert_eq!(c.traces_otlp.endpoint, "http://localhost:4317");

        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
        ]);
        assert_eq!(c.traces_otlp.protocol, Protocol::Grpc);
        assert_eq!(c.metrics_otlp.protocol, Protocol::HttpJson);
        assert_eq!(c.metrics_otlp.endpoint, "http://localhost:4318/v1/metrics");

        let c = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]);
        assert_eq!(c.traces_otlp.protocol, Protocol::HttpProtobuf);
        assert!(warned(&c, "OTEL_EXPORTER_OTLP_PROTOCOL"));
    }

    #[test]
    fn g6_otlp_headers_timeout_compression() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b,x=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "only=traces"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "GZIP"),
        ]);
        assert_eq!(
            c.traces_otlp.headers,
            vec![("only".into(), "traces".into())]
        );
        assert_eq!(
            c.metrics_otlp.headers,
            vec![("api-key".into(), "a b".into()), ("x".into(), "1".into())]
        );
        assert_eq!(c.traces_otlp.timeout, Duration::from_millis(2500));
        assert_eq!(c.metrics_otlp.compression, Compression::Gzip);
        assert_eq!(c.traces_otlp.compression, Compression::None);

        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "novalue"),
        ]);
        assert_eq!(c.traces_otlp.timeout, Duration::from_secs(10));
        assert_eq!(c.traces_otlp.compression, Compression::None);
        assert!(c.traces_otlp.headers.is_empty());
        for var in [
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ] {
            assert!(warned(&c, var), "{var}");
        }
    }

    #[test]
    fn g7_batch_table() {
        let c = cfg(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "50"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "abc"),
        ]);
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(100));
        assert_eq!(c.batch.max_queue_size, 10);
        assert_eq!(
            c.batch.max_export_batch_size, 10,
            "clamped to the queue size"
        );
        assert!(warned(&c, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"));
        assert_eq!(c.metric_export_interval, Duration::from_millis(60000));
        assert!(warned(&c, "OTEL_METRIC_EXPORT_INTERVAL"));
        let w = c
            .warnings
            .iter()
            .find(|w| w.variable == "OTEL_METRIC_EXPORT_INTERVAL")
            .expect("warning");
        let text = w.to_string();
        assert!(
            text.contains("\"abc\"") && text.contains("milliseconds"),
            "{text}"
        );
    }

    #[test]
    fn c1_a_small_queue_alone_warns_about_nothing() {
        let c = cfg(&[("OTEL_BSP_MAX_QUEUE_SIZE", "1")]);
        assert_eq!(c.batch.max_queue_size, 1);
        assert_eq!(c.batch.max_export_batch_size, 1, "the default follows");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn c_log_record_queue_has_its_own_variables_and_defaults() {
        let c = cfg(&[]);
        assert_eq!(c.logs_batch.schedule_delay, Duration::from_millis(1000));
        assert_eq!(c.logs_batch.max_queue_size, 2048);
        let c = cfg(&[
            ("OTEL_BLRP_SCHEDULE_DELAY", "250"),
            ("OTEL_BLRP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "100"),
            ("OTEL_BLRP_EXPORT_TIMEOUT", "0"),
        ]);
        assert_eq!(c.logs_batch.schedule_delay, Duration::from_millis(250));
        assert_eq!(c.logs_batch.max_queue_size, 64);
        assert_eq!(c.logs_batch.max_export_batch_size, 64);
        assert_eq!(c.logs_batch.export_timeout, Duration::ZERO, "0: no limit");
        assert!(warned(&c, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE"));
        assert_eq!(c.batch.max_queue_size, 2048, "spans unaffected");
    }

    #[test]
    fn d_limits_precedence_and_bad_values() {
        let c = cfg(&[]);
        assert_eq!(c.limits.attribute_value_length, 4096);
        assert_eq!(c.limits.span_attribute_count, 128);
        let c = cfg(&[
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "10"),
            ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "20"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "3"),
            ("OTEL_SPAN_LINK_COUNT_LIMIT", "0"),
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "7"),
        ]);
        assert_eq!(c.limits.span_attribute_count, 20, "model-specific wins");
        assert_eq!(c.limits.event_attribute_count, 10, "then the general one");
        assert_eq!(c.limits.link_attribute_count, 10);
        assert_eq!(c.limits.span_event_count, 3);
        assert_eq!(c.limits.span_link_count, 0, "0 is allowed");
        assert_eq!(c.limits.attribute_value_length, 7);
        for bad in ["-1", "ten", "4294967296"] {
            let c = cfg(&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", bad)]);
            assert_eq!(c.limits.attribute_value_length, 4096, "{bad}");
            assert!(warned(&c, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"), "{bad}");
        }
    }

    #[test]
    fn f_metric_export_timeout_zero_is_no_limit() {
        assert_eq!(
            cfg(&[("OTEL_METRIC_EXPORT_TIMEOUT", "0")]).metric_export_timeout,
            Duration::ZERO
        );
        assert_eq!(
            cfg(&[("OTEL_METRIC_EXPORT_TIMEOUT", "1500")]).metric_export_timeout,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn g2_schemeless_grpc_endpoint_is_tls_unless_insecure() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
        ]);
        assert_eq!(c.traces_otlp.endpoint, "https://collector:4317");
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ]);
        assert_eq!(c.traces_otlp.endpoint, "http://collector:4317");
        // A scheme wins over INSECURE.
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ]);
        assert_eq!(c.traces_otlp.endpoint, "https://collector:4317");
    }

    #[test]
    fn a_shared_bad_variable_warns_once_for_every_signal() {
        let mut c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url"),
        ]);
        finish(&mut c);
        for var in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT"] {
            let n = c.warnings.iter().filter(|w| w.variable == var).count();
            assert_eq!(n, 1, "{var}: {:?}", c.warnings);
        }
        let w = c
            .warnings
            .iter()
            .find(|w| w.variable == "OTEL_EXPORTER_OTLP_ENDPOINT")
            .expect("endpoint warning");
        assert_eq!(w.value, "not a url", "the value as the user wrote it");
        assert!(w.message.contains("traces, metrics, logs"), "{}", w.message);
        assert!(c.traces_exporters.is_empty() && c.metrics_exporters.is_empty());
    }

    #[test]
    fn endpoint_problems_table() {
        for (url, ok) in [
            ("http://localhost:4318/v1/traces", true),
            // https needs the `tls` feature.
            (
                "https://collector.example.com/v1/metrics/",
                cfg!(feature = "tls"),
            ),
            ("http://[::1]:4317", true),
            ("not a url", false),
            ("127.0.0.1:4318", false),
            ("ftp://collector:21", false),
            ("unix:///tmp/otlp.sock", false),
            ("http://", false),
        ] {
            assert_eq!(endpoint_problem(url).is_none(), ok, "{url}");
        }
    }
}
