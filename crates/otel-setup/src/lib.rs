//! One call from the standard `OTEL_*` environment variables to working
//! OpenTelemetry traces and metrics, and a guard that flushes them.
//!
//! ```no_run
//! fn main() -> Result<(), otel_setup::Error> {
//!     let _telemetry = otel_setup::init()?; // reads OTEL_*; flushes on drop
//!     // ... run the service ...
//!     Ok(())
//! }
//! ```
//!
//! Settings given in code win over the environment:
//!
//! ```
//! let telemetry = otel_setup::Telemetry::builder()
//!     .service_name("order-service")
//!     .env_map([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none")])
//!     .install()
//!     .expect("telemetry");
//! assert_eq!(telemetry.effective_config().service_name, "order-service");
//! telemetry.shutdown();
//! ```
//!
//! # What it installs
//!
//! - The global tracer provider (sampler from `OTEL_TRACES_SAMPLER`, span
//!   limits from `OTEL_SPAN_*_COUNT_LIMIT`, `OTEL_EVENT_*`, `OTEL_LINK_*` and
//!   `OTEL_ATTRIBUTE_COUNT_LIMIT`, batching from `OTEL_BSP_*`), meter
//!   provider (periodic reader, `OTEL_METRIC_EXPORT_INTERVAL` and
//!   `OTEL_METRIC_EXPORT_TIMEOUT`), and text-map propagator
//!   (`OTEL_PROPAGATORS`: `tracecontext` is otel-propagation's W3C Level 2
//!   propagator, `baggage` its W3C Baggage one, `b3` / `b3multi` the B3
//!   formats, seeing only the sampled flag so that Trace Context's random
//!   flag never reaches them as B3's "deferred", `none` nothing). The
//!   tracer provider is installed wrapped in
//!   `otel_http_conventions::InstalledTracerProvider`, and the default
//!   `tracecontext,baggage` through `otel_propagation::set_global_default`,
//!   so that otel-web's layers take the fast paths those offer; to anything
//!   else they are the same provider and propagator.
//! - The resource: `service.name` from `OTEL_SERVICE_NAME`, then
//!   `OTEL_RESOURCE_ATTRIBUTES`, then `unknown_service:<executable>`; the
//!   other `OTEL_RESOURCE_ATTRIBUTES` entries (percent-decoded); the SDK's
//!   `telemetry.sdk.*`; `host.*` and `os.type` from the OpenTelemetry
//!   resource detectors; `process.pid` (never the command line, which can
//!   hold secrets); and what code adds (`service.version`, attributes).
//! - Exporters per signal from `OTEL_TRACES_EXPORTER` /
//!   `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER` (`otlp`, `console`,
//!   `none`, a list, and `prometheus` for metrics). OTLP reads every
//!   `OTEL_EXPORTER_OTLP_*` setting, each with its per-signal override:
//!   endpoint, protocol (`grpc`, `http/protobuf`, `http/json`), headers,
//!   timeout, compression, insecure, the TLS files and the metrics'
//!   temporality and histogram aggregation. `console` prints each trace as
//!   a waterfall once no span of it is open in this process; `prometheus`
//!   serves `/metrics` on
//!   `OTEL_EXPORTER_PROMETHEUS_HOST:OTEL_EXPORTER_PROMETHEUS_PORT`
//!   (`localhost:9464`) with opentelemetry-prometheus.
//! - [`variables`]: the table of every variable read, its default, and the
//!   test that holds it.
//! - `OTEL_SDK_DISABLED=true`: no providers at all (the API's no-ops stay);
//!   propagation still works.
//!
//! A bad value is ignored, as the specification asks, with a warning that
//! names the variable, the value and what is allowed; each warning is
//! printed once to standard error (unless `OTEL_LOG_LEVEL` is `error` or
//! `none`) and kept in [`EffectiveConfig::warnings`].
//! An endpoint that cannot be used (not a URL, no scheme for HTTP, a scheme
//! other than `http`/`https`) turns that signal's OTLP export off with one
//! warning, and the service runs on. `install` fails only when no thread
//! can be started for exports, or, with [`TelemetryBuilder::strict`], for
//! any warning.
//!
//! # TLS (feature `tls`, on by default)
//!
//! OTLP over `https`, for gRPC and HTTP alike, with rustls:
//!
//! - **Crypto: aws-lc-rs**, rustls's own default. It has post-quantum hybrid
//!   key exchange (rustls deprecates ring's provider for lacking it) and a
//!   FIPS build, and it is the provider reqwest's `rustls` feature already
//!   brings, so an application using reqwest gets no second one. It builds
//!   with the C compiler the Rust toolchain links with; no CMake, Go or
//!   NASM on Linux. It is handed to otel-setup's own clients and never
//!   installed as the process default, so the application's choice stands.
//! - **Roots: the system's and webpki-roots' together.** The system's store
//!   holds a company CA an operator installed on the host; webpki-roots (a
//!   copy of Mozilla's) keeps public endpoints working in `scratch` and
//!   distroless images that have no CA bundle.
//! - `OTEL_EXPORTER_OTLP_CERTIFICATE` (or its per-signal form) replaces
//!   those roots with the CA(s) in that PEM file, as the other SDKs do;
//!   `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` with `_CLIENT_KEY` gives mTLS.
//!   A file that cannot be read or parsed, or one of the pair alone, is a
//!   warning naming the variable, and the export goes on without it.
//! - When the collector's certificate is not trusted, or it asks for a
//!   client certificate, standard error says so in words, with the variable
//!   to set, at most once a minute; every export that fails is counted.
//!
//! Without the feature, an `https` endpoint turns that signal's OTLP export
//! off with a warning. One caveat: with the feature on, reqwest is built
//! with rustls, so any reqwest client elsewhere in the application gains
//! TLS too.
//!
//! # `tracing` (feature `tracing`)
//!
//! The same call installs a `tracing` subscriber: `tracing` spans become
//! OpenTelemetry spans (tracing-opentelemetry), so an `info_span!` or
//! `#[instrument]` function inside an `OtelLayer` handler is a child of the
//! server span; events become OpenTelemetry log records
//! (opentelemetry-appender-tracing), exported per `OTEL_LOGS_EXPORTER` with
//! the trace and span ids of where they were logged; and each line printed
//! to the terminal starts with `trace_id=…`. `RUST_LOG` (default `info`)
//! says what is logged; it never removes `OtelLayer`'s or
//! `OtelMiddleware`'s spans, which are OpenTelemetry spans, not `tracing`
//! ones.
//!
//! # Never hurting the application
//!
//! Exports run on a one-thread runtime owned by the guard, not on the
//! application's threads; it works whether or not `install` is called
//! inside a tokio runtime. Between a finished span and the collector:
//!
//! - **Values are cut.** Every string attribute value of every exported
//!   span (events and links included, whoever recorded it) is cut to
//!   `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else
//!   `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`, else 4096 characters. The
//!   specification's default is no limit; ours keeps any real URL or user
//!   agent whole while a 100 kB hostile header cannot make a span 100 kB.
//! - **Queues are bounded in items and bytes.** Spans wait in a queue of
//!   `OTEL_BSP_MAX_QUEUE_SIZE` spans and at most 32 MiB
//!   ([`TelemetryBuilder::max_queue_bytes`]); log records in their own
//!   (`OTEL_BLRP_*`). A full queue drops the item being offered instead of
//!   waiting for room.
//! - **Batches fit the receiver.** Each export request is cut below 4 MiB
//!   (the OpenTelemetry Collector's and gRPC's usual limit;
//!   [`TelemetryBuilder::max_export_request_bytes`]); a span that alone is
//!   larger is dropped, never its neighbours.
//! - **Retries are the exporter's**, as the OTLP specification has them:
//!   HTTP 429, 502, 503 and 504 and gRPC UNAVAILABLE are retried with
//!   back-off (up to three times, honouring `Retry-After` when it fits the
//!   timeout); 500 and other errors are not.
//! - **Every loss is counted**, by signal and cause ([`DropCause`]): in code
//!   ([`Telemetry::dropped`]), as the SDK self-metrics
//!   (`otel.sdk.processor.span.processed`, `otel.sdk.exporter.span.exported`
//!   and their `log` / `metric_data_point` forms, with `error.type`), and on
//!   standard error: one line per signal and cause at most once a minute
//!   with the running total, and a final line at shutdown.
//! - **Exit is bounded.** [`Telemetry::shutdown`] (or dropping the guard)
//!   flushes every signal in parallel and gives up at one deadline, 5 s by
//!   default ([`TelemetryBuilder::shutdown_timeout`]); what is still queued
//!   then is counted as [`DropCause::ShutdownTimeout`].
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod diag;
mod env;
mod exporters;
mod pipeline;
#[cfg(feature = "prometheus")]
mod prometheus;
mod tls;
#[cfg(feature = "tracing")]
mod tracing_bridge;
pub mod waterfall;

/// Every variable otel-setup reads, its default, and where it is tested.
#[doc = include_str!("../VARIABLES.md")]
pub mod variables {}

pub use env::{
    BatchConfig, Compression, ConfigWarning, EffectiveConfig, ExporterKind, FileSetting,
    HistogramAggregation, Limits, LogLevel, OtlpConfig, Protocol, SamplerConfig,
    TemporalityPreference, TlsFiles, DEFAULT_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    DEFAULT_MAX_EXPORT_REQUEST_BYTES, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_SHUTDOWN_TIMEOUT,
};
/// Capture spans and metrics in memory in tests: see [`otel_testkit`].
pub use otel_testkit as testing;
pub use pipeline::{DropCause, Dropped, Signal};

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::{global, KeyValue};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanLimits};
use opentelemetry_sdk::Resource;
use pipeline::batch::{BatchSettings, Batcher};
use pipeline::losses::Losses;
use pipeline::Cancel;
use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Why telemetry could not be installed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An exporter could not be built (with [`TelemetryBuilder::strict`]
    /// only; otherwise that signal is turned off with a warning). The
    /// message names the setting.
    Exporter(String),
    /// A setting was ignored, with [`TelemetryBuilder::strict`]: every
    /// warning.
    Config(Vec<ConfigWarning>),
    /// The export runtime could not be started.
    Runtime(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Exporter(m) => write!(
                f,
                "{m}; check OTEL_EXPORTER_OTLP_ENDPOINT and its per-signal overrides"
            ),
            Error::Config(warnings) => {
                f.write_str("telemetry settings were ignored: ")?;
                for (i, w) in warnings.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{w}")?;
                }
                Ok(())
            }
            Error::Runtime(e) => write!(f, "the telemetry export thread could not start: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// Installs telemetry from the environment. See the [crate docs](crate).
pub fn init() -> Result<Telemetry, Error> {
    Telemetry::builder().install()
}

/// Sets up telemetry; every setting here wins over the environment.
#[derive(Default)]
#[must_use]
pub struct TelemetryBuilder {
    service_name: Option<String>,
    service_version: Option<String>,
    attributes: Vec<KeyValue>,
    env: Option<HashMap<String, String>>,
    traces_exporters: Option<Vec<ExporterKind>>,
    metrics_exporters: Option<Vec<ExporterKind>>,
    logs_exporters: Option<Vec<ExporterKind>>,
    otlp_endpoint: Option<(String, Protocol)>,
    otlp_certificate: Option<String>,
    otlp_client_identity: Option<(String, String)>,
    metrics_temporality: Option<TemporalityPreference>,
    histogram_aggregation: Option<HistogramAggregation>,
    prometheus_address: Option<(String, u16)>,
    log_level: Option<LogLevel>,
    shutdown_timeout: Option<Duration>,
    max_export_request_bytes: Option<usize>,
    max_queue_bytes: Option<usize>,
    quiet: bool,
    strict: bool,
    local: bool,
    span_processors: Vec<AddProcessor>,
}

type AddProcessor = Box<
    dyn FnOnce(
        opentelemetry_sdk::trace::TracerProviderBuilder,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder,
>;

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("service_name", &self.service_name)
            .field("local", &self.local)
            .field("span_processors", &self.span_processors.len())
            .finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    /// `service.name`, over `OTEL_SERVICE_NAME`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// `service.version`; pass `env!("CARGO_PKG_VERSION")` from your binary.
    pub fn service_version(mut self, version: impl Into<String>) -> Self {
        self.service_version = Some(version.into());
        self
    }

    /// A resource attribute, over `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn resource_attribute(mut self, attribute: KeyValue) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Reads the `OTEL_*` settings from this map instead of the process
    /// environment: for tests, and for configuration kept elsewhere.
    pub fn env_map<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Trace exporters, over `OTEL_TRACES_EXPORTER`.
    pub fn traces_exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.traces_exporters = Some(exporters.into_iter().collect());
        self
    }

    /// Metric exporters, over `OTEL_METRICS_EXPORTER`.
    pub fn metrics_exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.metrics_exporters = Some(exporters.into_iter().collect());
        self
    }

    /// Log exporters, over `OTEL_LOGS_EXPORTER` (`tracing` feature).
    pub fn logs_exporters(mut self, exporters: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.logs_exporters = Some(exporters.into_iter().collect());
        self
    }

    /// The OTLP base endpoint and protocol for every signal, over
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` / `_PROTOCOL` (per-signal variables
    /// included).
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>, protocol: Protocol) -> Self {
        self.otlp_endpoint = Some((endpoint.into(), protocol));
        self
    }

    /// The PEM file of the CA(s) trusted for the collector's certificate,
    /// for every signal, over `OTEL_EXPORTER_OTLP_CERTIFICATE` and its
    /// per-signal forms.
    pub fn otlp_certificate(mut self, pem_file: impl Into<String>) -> Self {
        self.otlp_certificate = Some(pem_file.into());
        self
    }

    /// The client certificate (chain) and private key PEM files for mTLS,
    /// for every signal, over `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` /
    /// `_CLIENT_KEY` and their per-signal forms.
    pub fn otlp_client_identity(
        mut self,
        certificate_pem_file: impl Into<String>,
        key_pem_file: impl Into<String>,
    ) -> Self {
        self.otlp_client_identity = Some((certificate_pem_file.into(), key_pem_file.into()));
        self
    }

    /// The temporality of OTLP metrics, over
    /// `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`.
    pub fn metrics_temporality(mut self, preference: TemporalityPreference) -> Self {
        self.metrics_temporality = Some(preference);
        self
    }

    /// The default histogram aggregation, over
    /// `OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION`.
    pub fn histogram_aggregation(mut self, aggregation: HistogramAggregation) -> Self {
        self.histogram_aggregation = Some(aggregation);
        self
    }

    /// Where `OTEL_METRICS_EXPORTER=prometheus` serves `/metrics`, over
    /// `OTEL_EXPORTER_PROMETHEUS_HOST` / `_PORT` (port 0: any free port).
    pub fn prometheus_address(mut self, host: impl Into<String>, port: u16) -> Self {
        self.prometheus_address = Some((host.into(), port));
        self
    }

    /// What otel-setup itself prints, over `OTEL_LOG_LEVEL`.
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = Some(level);
        self
    }

    /// How long [`Telemetry::shutdown`] waits for the last exports of every
    /// signal together (they are flushed in parallel); 5 s by default. What
    /// is still queued then is dropped and counted
    /// ([`DropCause::ShutdownTimeout`]).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = Some(timeout);
        self
    }

    /// The most estimated bytes one export request carries (4 MiB by
    /// default, the usual receiver limit). Batches are cut below it; a span
    /// or log record that alone exceeds it is dropped and counted
    /// ([`DropCause::TooLarge`]), never its neighbours.
    pub fn max_export_request_bytes(mut self, bytes: usize) -> Self {
        self.max_export_request_bytes = Some(bytes);
        self
    }

    /// The most estimated bytes each queue (spans, log records) holds, on
    /// top of `OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE` items
    /// (32 MiB by default).
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = Some(bytes);
        self
    }

    /// Build the providers without installing them (or the propagator)
    /// globally: for several services in one process, as the demo runs
    /// them. Use [`Telemetry::tracer_provider`] and
    /// [`Telemetry::meter_provider`] to instrument.
    pub fn local(mut self) -> Self {
        self.local = true;
        self
    }

    /// Adds a span processor next to the configured exporters (to collect
    /// spans in memory, say).
    pub fn span_processor<P>(mut self, processor: P) -> Self
    where
        P: opentelemetry_sdk::trace::SpanProcessor + 'static,
    {
        self.span_processors
            .push(Box::new(move |b| b.with_span_processor(processor)));
        self
    }

    /// Do not print configuration warnings (they stay in
    /// [`EffectiveConfig::warnings`]).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Fail [`install`](Self::install) with [`Error::Config`] when any
    /// setting would be ignored, instead of warning and going on.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// The configuration `install` would apply, without installing anything.
    pub fn effective_config(&self) -> EffectiveConfig {
        let mut cfg = match &self.env {
            Some(map) => env::read(&|name| map.get(name).cloned()),
            None => env::read(&|name| std::env::var(name).ok()),
        };
        if let Some(name) = &self.service_name {
            cfg.service_name = name.clone();
        }
        if let Some(e) = &self.traces_exporters {
            cfg.traces_exporters = e.clone();
        }
        if let Some(e) = &self.metrics_exporters {
            cfg.metrics_exporters = e.clone();
        }
        if let Some(e) = &self.logs_exporters {
            cfg.logs_exporters = e.clone();
        }
        if let Some(t) = self.shutdown_timeout {
            cfg.shutdown_timeout = t;
        }
        let in_code = |path: &String| FileSetting {
            variable: "set in code".to_owned(),
            path: path.clone(),
        };
        for otlp in [
            &mut cfg.traces_otlp,
            &mut cfg.metrics_otlp,
            &mut cfg.logs_otlp,
        ] {
            if let Some(ca) = &self.otlp_certificate {
                otlp.tls.certificate = Some(in_code(ca));
            }
            if let Some((cert, key)) = &self.otlp_client_identity {
                otlp.tls.client_certificate = Some(in_code(cert));
                otlp.tls.client_key = Some(in_code(key));
            }
        }
        if let Some(t) = self.metrics_temporality {
            cfg.metrics_temporality = t;
        }
        if let Some(a) = self.histogram_aggregation {
            cfg.histogram_aggregation = a;
        }
        if let Some((host, port)) = &self.prometheus_address {
            cfg.prometheus_host = host.clone();
            cfg.prometheus_port = *port;
        }
        if let Some(l) = self.log_level {
            cfg.log_level = l;
        }
        if let Some(b) = self.max_export_request_bytes {
            cfg.max_export_request_bytes = b;
        }
        if let Some(b) = self.max_queue_bytes {
            cfg.max_queue_bytes = b;
        }
        if let Some((endpoint, protocol)) = &self.otlp_endpoint {
            for (otlp, path) in [
                (&mut cfg.traces_otlp, "v1/traces"),
                (&mut cfg.metrics_otlp, "v1/metrics"),
                (&mut cfg.logs_otlp, "v1/logs"),
            ] {
                otlp.protocol = *protocol;
                otlp.endpoint_source = None;
                otlp.endpoint = match protocol {
                    Protocol::Grpc => endpoint.clone(),
                    _ => format!("{}/{}", endpoint.trim_end_matches('/'), path),
                };
            }
        }
        env::finish(&mut cfg);
        cfg
    }

    /// Installs the providers and propagator globally and returns the guard.
    ///
    /// It fails only for what cannot work at all (no thread for exports),
    /// or, with [`strict`](Self::strict), for any ignored setting: an
    /// endpoint that cannot be used turns that signal off with a warning.
    pub fn install(self) -> Result<Telemetry, Error> {
        let mut cfg = self.effective_config();
        let strict = self.strict;
        let diag = Arc::new(diag::Diag::new(cfg.log_level));
        let print_warnings = !self.quiet && diag.enabled(LogLevel::Warn);
        let warn = |cfg: &mut EffectiveConfig, w: ConfigWarning| {
            if print_warnings {
                eprintln!("otel-setup: {w}");
            }
            cfg.warnings.push(w);
        };
        if print_warnings {
            for w in &cfg.warnings {
                eprintln!("otel-setup: {w}");
            }
        }
        if strict && !cfg.warnings.is_empty() {
            return Err(Error::Config(cfg.warnings));
        }
        if !self.local {
            if cfg.propagators == ["tracecontext", "baggage"] {
                // The same propagator, installed so that otel-web's layer
                // reads it from the request's headers directly.
                otel_propagation::set_global_default();
            } else {
                global::set_text_map_propagator(propagator(&cfg.propagators));
            }
        }
        if cfg.disabled {
            return Ok(Telemetry::disabled(cfg));
        }

        let runtime = ExportRuntime::start()?;
        let rt = runtime.handle();
        let losses = Arc::new(Losses::default());
        losses.set_quiet(!diag.enabled(LogLevel::Error));
        let cancel = Arc::new(Cancel::default());
        let mut code_attrs = self.attributes;
        if let Some(version) = self.service_version {
            code_attrs.push(KeyValue::new("service.version", version));
        }
        let resource = resource(&cfg, code_attrs);
        let settings = |b: &BatchConfig| BatchSettings {
            schedule_delay: b.schedule_delay,
            export_timeout: nonzero(b.export_timeout),
            max_queue_size: b.max_queue_size,
            max_queue_bytes: cfg.max_queue_bytes,
            max_export_batch_size: b.max_export_batch_size,
            // The resource and the scopes' framing travel once per request.
            max_request_bytes: cfg
                .max_export_request_bytes
                .saturating_sub(pipeline::limits::resource_bytes(&resource) + 16 * 1024)
                .max(1),
        };
        let span_settings = settings(&cfg.batch);
        #[cfg(feature = "tracing")]
        let log_settings = settings(&cfg.logs_batch);

        let l = &cfg.limits;
        let mut tracer = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(&cfg.sampler))
            .with_span_limits(SpanLimits {
                max_events_per_span: l.span_event_count,
                max_attributes_per_span: l.span_attribute_count,
                max_links_per_span: l.span_link_count,
                max_attributes_per_event: l.event_attribute_count,
                max_attributes_per_link: l.link_attribute_count,
            });
        let mut span_batchers = Vec::new();
        let spans = pipeline::spans::SpanPipelines {
            settings: span_settings,
            value_length_limit: Some(cfg.limits.attribute_value_length),
            losses: Arc::clone(&losses),
            cancel: Arc::clone(&cancel),
            rt: rt.clone(),
            resource: resource.clone(),
        };
        let kinds = cfg.traces_exporters.clone();
        for kind in kinds {
            let pipeline = match kind {
                ExporterKind::Otlp => match exporters::span_exporter(&cfg.traces_otlp, rt, &diag) {
                    Ok(exporter) => spans.build(exporter),
                    Err(e) => {
                        if strict {
                            return Err(Error::Exporter(e));
                        }
                        warn(&mut cfg, exporter_off("OTEL_TRACES_EXPORTER", e));
                        continue;
                    }
                },
                ExporterKind::Console => {
                    // Printed when no span of a trace is open any more: a
                    // processor of its own, which sees spans start.
                    let mut console = waterfall::WaterfallProcessor::stdout();
                    opentelemetry_sdk::trace::SpanProcessor::set_resource(&mut console, &resource);
                    tracer = tracer.with_span_processor(console);
                    continue;
                }
                // Metrics only; `finish` keeps it off the other signals.
                ExporterKind::Prometheus => continue,
            };
            span_batchers.push(pipeline.batcher());
            tracer = tracer.with_span_processor(pipeline);
        }
        for add in self.span_processors {
            tracer = add(tracer);
        }
        let tracer_provider = tracer.build();

        #[cfg(feature = "tracing")]
        let (logger_provider, dispatch, log_batchers) = {
            let (logger, log_batchers, errors) = tracing_bridge::logger_provider(
                &cfg,
                resource.clone(),
                log_settings,
                rt,
                &losses,
                &cancel,
                &diag,
            );
            for e in errors {
                if strict {
                    return Err(Error::Exporter(e));
                }
                warn(&mut cfg, exporter_off("OTEL_LOGS_EXPORTER", e));
            }
            let mut warnings = Vec::new();
            let dispatch = tracing_bridge::dispatch(&cfg, &tracer_provider, &logger, &mut warnings);
            for w in warnings {
                warn(&mut cfg, w);
            }
            if !self.local && tracing::dispatcher::set_global_default(dispatch.clone()).is_err() {
                warn(
                    &mut cfg,
                    ConfigWarning {
                        variable: "tracing".into(),
                        value: "global subscriber".into(),
                        message: "a global tracing subscriber was already set; ours was not \
                                  installed (use Telemetry::tracing_dispatch to run code under it)"
                            .into(),
                    },
                );
            }
            (Some(logger), Some(dispatch), log_batchers)
        };

        let mut meter = SdkMeterProvider::builder().with_resource(resource);
        if cfg.histogram_aggregation == HistogramAggregation::Base2Exponential {
            meter = meter.with_view(exponential_histograms);
        }
        #[cfg_attr(not(feature = "prometheus"), allow(unused_mut))]
        let mut prometheus_address = None;
        let kinds = cfg.metrics_exporters.clone();
        for kind in kinds {
            meter = match kind {
                #[cfg(feature = "prometheus")]
                ExporterKind::Prometheus => {
                    match prometheus::serve(&cfg.prometheus_host, cfg.prometheus_port, rt) {
                        Ok(served) => {
                            prometheus_address = Some(served.address);
                            meter.with_reader(served.reader)
                        }
                        Err(e) => {
                            if strict {
                                return Err(Error::Exporter(e));
                            }
                            let w = prometheus_off(&cfg, e);
                            warn(&mut cfg, w);
                            meter
                        }
                    }
                }
                #[cfg(not(feature = "prometheus"))]
                ExporterKind::Prometheus => {
                    let e = "the Prometheus exporter is not built in (otel-setup's \
                             `prometheus` feature is off)"
                        .to_owned();
                    if strict {
                        return Err(Error::Exporter(e));
                    }
                    warn(&mut cfg, exporter_off("OTEL_METRICS_EXPORTER", e));
                    meter
                }
                ExporterKind::Otlp => match exporters::metric_exporter(
                    &cfg.metrics_otlp,
                    cfg.metrics_temporality,
                    rt,
                    &diag,
                ) {
                    Ok(exporter) => meter.with_reader(
                        PeriodicReader::builder(pipeline::metrics::MetricPipeline::new(
                            exporter,
                            rt.clone(),
                            nonzero(cfg.metric_export_timeout),
                            Arc::clone(&losses),
                            Arc::clone(&cancel),
                        ))
                        .with_interval(cfg.metric_export_interval)
                        .build(),
                    ),
                    Err(e) => {
                        if strict {
                            return Err(Error::Exporter(e));
                        }
                        warn(&mut cfg, exporter_off("OTEL_METRICS_EXPORTER", e));
                        meter
                    }
                },
                ExporterKind::Console => meter.with_reader(
                    PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default())
                        .with_interval(cfg.metric_export_interval)
                        .build(),
                ),
            };
        }
        let meter_provider = meter.build();
        if diag.enabled(LogLevel::Debug) {
            for line in installed(&cfg, prometheus_address) {
                diag.print(LogLevel::Debug, &line);
            }
        }
        let self_metrics = pipeline::observe::register(
            &meter_provider,
            &losses,
            &span_batchers,
            #[cfg(feature = "tracing")]
            &log_batchers,
            &cfg,
        );

        if !self.local {
            // The SDK provider, wrapped so that otel-web's instrumentations
            // can start spans with its tracer directly.
            global::set_tracer_provider(otel_http_conventions::InstalledTracerProvider::new(
                tracer_provider.clone(),
            ));
            global::set_meter_provider(meter_provider.clone());
        }
        Ok(Telemetry {
            config: cfg,
            tracer_provider: Some(tracer_provider),
            meter_provider: Some(meter_provider),
            #[cfg(feature = "tracing")]
            logger_provider,
            #[cfg(feature = "tracing")]
            dispatch,
            #[cfg(feature = "tracing")]
            log_batchers,
            span_batchers,
            _self_metrics: self_metrics,
            prometheus_address,
            runtime: Some(runtime),
            losses,
            cancel,
        })
    }
}

/// A timeout where zero means none (the specification's rule for
/// `*_TIMEOUT` variables).
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// Every histogram aggregated in base-2 exponential buckets (the
/// specification's defaults: 160 buckets, scale 20, min and max kept).
fn exponential_histograms(
    i: &opentelemetry_sdk::metrics::Instrument,
) -> Option<opentelemetry_sdk::metrics::Stream> {
    if i.kind() != opentelemetry_sdk::metrics::InstrumentKind::Histogram {
        return None;
    }
    opentelemetry_sdk::metrics::Stream::builder()
        .with_aggregation(
            opentelemetry_sdk::metrics::Aggregation::Base2ExponentialHistogram {
                max_size: 160,
                max_scale: 20,
                record_min_max: true,
            },
        )
        .build()
        .ok()
}

#[cfg(feature = "prometheus")]
fn prometheus_off(cfg: &EffectiveConfig, reason: String) -> ConfigWarning {
    ConfigWarning {
        variable: "OTEL_EXPORTER_PROMETHEUS_PORT".to_owned(),
        value: format!("{}:{}", cfg.prometheus_host, cfg.prometheus_port),
        message: format!(
            "{reason}; allowed: a free port (0 for any) on a host name or address of this \
             machine; metrics are not served for scraping, the service runs on"
        ),
    }
}

/// What was installed, one line per signal, for `OTEL_LOG_LEVEL=debug`.
fn installed(cfg: &EffectiveConfig, prometheus: Option<std::net::SocketAddr>) -> Vec<String> {
    let describe = |kinds: &[ExporterKind], otlp: &OtlpConfig| -> String {
        let list: Vec<String> = kinds
            .iter()
            .map(|k| match k {
                ExporterKind::Otlp => format!(
                    "otlp {:?} to {}{}",
                    otlp.protocol,
                    diag::target(&otlp.endpoint),
                    if otlp.tls.certificate.is_some() {
                        " (private CA)"
                    } else {
                        ""
                    }
                ),
                ExporterKind::Console => "console".to_owned(),
                ExporterKind::Prometheus => match prometheus {
                    Some(a) => format!("prometheus on http://{a}/metrics"),
                    None => "prometheus (not serving)".to_owned(),
                },
            })
            .collect();
        if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(", ")
        }
    };
    vec![
        format!(
            "service.name={}, sampler {:?}, propagators {:?}",
            cfg.service_name, cfg.sampler, cfg.propagators
        ),
        format!(
            "traces: {}",
            describe(&cfg.traces_exporters, &cfg.traces_otlp)
        ),
        format!(
            "metrics: {} every {:?}, {:?} temporality",
            describe(&cfg.metrics_exporters, &cfg.metrics_otlp),
            cfg.metric_export_interval,
            cfg.metrics_temporality
        ),
        format!("logs: {}", describe(&cfg.logs_exporters, &cfg.logs_otlp)),
    ]
}

fn exporter_off(variable: &str, reason: String) -> ConfigWarning {
    ConfigWarning {
        variable: variable.to_owned(),
        value: "otlp".to_owned(),
        message: format!("{reason}; that export is off, the service runs on"),
    }
}

/// The runtime exports run on. Dropping it never blocks, so it is safe in
/// async code too.
#[derive(Debug)]
struct ExportRuntime(Option<tokio::runtime::Runtime>);

impl ExportRuntime {
    fn start() -> Result<Self, Error> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otel-export")
            .enable_all()
            .build()
            .map(|rt| ExportRuntime(Some(rt)))
            .map_err(Error::Runtime)
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        // Always Some until dropped or leaked.
        self.0
            .as_ref()
            .map(|rt| rt.handle())
            .expect("export runtime")
    }

    /// Keeps the runtime (and its thread) for the rest of the process: for
    /// an export that another thread still runs on it.
    fn leak(mut self) {
        if let Some(rt) = self.0.take() {
            std::mem::forget(rt);
        }
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn propagator(names: &[String]) -> TextMapCompositePropagator {
    let list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = names
        .iter()
        .filter_map(|name| -> Option<Box<dyn TextMapPropagator + Send + Sync>> {
            match name.as_str() {
                "tracecontext" => Some(Box::new(otel_propagation::TraceContextPropagator::new())),
                "baggage" => Some(Box::new(otel_propagation::BaggagePropagator::new())),
                // B3 reads flag 0x02 (Trace Context's random flag) as its
                // own "deferred": it sees only the sampled bit.
                "b3" => Some(Box::new(otel_propagation::SampledFlagOnly::new(
                    opentelemetry_propagator_b3::Propagator::with_encoding(
                        opentelemetry_propagator_b3::B3Encoding::SingleHeader,
                    ),
                ))),
                "b3multi" => Some(Box::new(otel_propagation::SampledFlagOnly::new(
                    opentelemetry_propagator_b3::Propagator::with_encoding(
                        opentelemetry_propagator_b3::B3Encoding::MultipleHeader,
                    ),
                ))),
                _ => None,
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}

fn sampler(cfg: &SamplerConfig) -> Sampler {
    match cfg {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(*r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(*r)))
        }
    }
}

fn resource(cfg: &EffectiveConfig, code: Vec<KeyValue>) -> Resource {
    // From weakest to strongest: the environment, then code; service.name
    // as resolved.
    let env_attrs = cfg
        .resource_attributes
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()));
    // Host and OS from the contrib detectors; the process id, but not its
    // command line, which can carry secrets.
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_detector(Box::new(
            opentelemetry_resource_detectors::HostResourceDetector::default(),
        ))
        .with_detector(Box::new(
            opentelemetry_resource_detectors::OsResourceDetector,
        ))
        .with_attribute(KeyValue::new("process.pid", i64::from(std::process::id())))
        .with_attributes(env_attrs)
        .with_attributes(code)
        .with_service_name(cfg.service_name.clone())
        .build()
}

/// The installed telemetry. [`shutdown`](Self::shutdown), or dropping it,
/// flushes every finished span, metric and log record, all signals in
/// parallel, waiting at most the shutdown timeout (5 s by default).
#[derive(Debug)]
pub struct Telemetry {
    config: EffectiveConfig,
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    #[cfg(feature = "tracing")]
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    #[cfg(feature = "tracing")]
    dispatch: Option<tracing::Dispatch>,
    #[cfg(feature = "tracing")]
    log_batchers: Vec<
        Batcher<(
            opentelemetry_sdk::logs::SdkLogRecord,
            opentelemetry::InstrumentationScope,
        )>,
    >,
    span_batchers: Vec<Batcher<SpanData>>,
    _self_metrics: pipeline::observe::SelfMetrics,
    prometheus_address: Option<std::net::SocketAddr>,
    runtime: Option<ExportRuntime>,
    losses: Arc<Losses>,
    cancel: Arc<Cancel>,
}

impl Telemetry {
    /// A builder for settings in code.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    fn disabled(config: EffectiveConfig) -> Self {
        Telemetry {
            config,
            tracer_provider: None,
            meter_provider: None,
            #[cfg(feature = "tracing")]
            logger_provider: None,
            #[cfg(feature = "tracing")]
            dispatch: None,
            #[cfg(feature = "tracing")]
            log_batchers: Vec::new(),
            span_batchers: Vec::new(),
            _self_metrics: pipeline::observe::SelfMetrics::default(),
            prometheus_address: None,
            runtime: None,
            losses: Arc::default(),
            cancel: Arc::default(),
        }
    }

    /// What was applied, with every warning.
    pub fn effective_config(&self) -> &EffectiveConfig {
        &self.config
    }

    /// The text-map propagator `OTEL_PROPAGATORS` configures (the one
    /// installed globally unless [`TelemetryBuilder::local`] was used), for
    /// instrumentation that takes one explicitly.
    ///
    /// ```
    /// let telemetry = otel_setup::Telemetry::builder()
    ///     .env_map([("OTEL_PROPAGATORS", "tracecontext,b3"), ("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none")])
    ///     .local()
    ///     .install()
    ///     .expect("telemetry");
    /// use opentelemetry::propagation::TextMapPropagator;
    /// let propagator = telemetry.propagator();
    /// let fields: Vec<&str> = propagator.fields().collect();
    /// assert!(fields.contains(&"traceparent") && fields.contains(&"b3"));
    /// ```
    pub fn propagator(&self) -> TextMapCompositePropagator {
        propagator(&self.config.propagators)
    }

    /// Where `OTEL_METRICS_EXPORTER=prometheus` serves `/metrics` (the
    /// bound address, useful with port 0); `None` when it does not.
    ///
    /// ```
    /// let telemetry = otel_setup::Telemetry::builder()
    ///     .env_map([
    ///         ("OTEL_TRACES_EXPORTER", "none"),
    ///         ("OTEL_METRICS_EXPORTER", "prometheus"),
    ///         ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
    ///         ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
    ///     ])
    ///     .local()
    ///     .install()
    ///     .expect("telemetry");
    /// let address = telemetry.prometheus_address().expect("serving");
    /// assert!(address.ip().is_loopback() && address.port() != 0);
    /// ```
    pub fn prometheus_address(&self) -> Option<std::net::SocketAddr> {
        self.prometheus_address
    }

    /// The tracer provider, for instrumentation that takes one explicitly.
    /// `None` when the SDK is disabled.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.tracer_provider.as_ref()
    }

    /// The meter provider. `None` when the SDK is disabled.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter_provider.as_ref()
    }

    /// The `tracing` subscriber this telemetry feeds (`tracing` feature). It
    /// is installed globally unless [`TelemetryBuilder::local`] was used; run
    /// code under it with `tracing::instrument::WithSubscriber`.
    #[cfg(feature = "tracing")]
    pub fn tracing_dispatch(&self) -> Option<&tracing::Dispatch> {
        self.dispatch.as_ref()
    }

    /// What was dropped so far, by signal and cause, and what was exported.
    ///
    /// ```
    /// use otel_setup::{DropCause, Signal, Telemetry};
    /// let telemetry = Telemetry::builder()
    ///     .env_map([("OTEL_TRACES_EXPORTER", "none"), ("OTEL_METRICS_EXPORTER", "none")])
    ///     .install()
    ///     .expect("telemetry");
    /// let dropped = telemetry.dropped();
    /// assert_eq!(dropped.get(Signal::Traces, DropCause::QueueFull), 0);
    /// assert_eq!(dropped.total(), 0);
    /// ```
    pub fn dropped(&self) -> Dropped {
        self.losses.snapshot()
    }

    /// Spans dropped so far, for any cause (see [`dropped`](Self::dropped)).
    pub fn dropped_spans(&self) -> u64 {
        self.losses.snapshot().signal(Signal::Traces)
    }

    /// Exports everything finished so far, without shutting down.
    pub fn flush(&self) {
        if let Some(t) = &self.tracer_provider {
            let _ = t.force_flush();
        }
        if let Some(m) = &self.meter_provider {
            let _ = m.force_flush();
        }
        #[cfg(feature = "tracing")]
        if let Some(l) = &self.logger_provider {
            let _ = l.force_flush();
        }
    }

    /// Flushes and shuts down every signal in parallel, waiting at most the
    /// shutdown timeout in all; prints a line if anything was lost, and
    /// returns the final counts.
    pub fn shutdown(mut self) -> Dropped {
        self.shutdown_inner();
        self.losses.snapshot()
    }

    fn shutdown_inner(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let (tx, rx) = mpsc::channel();
        let mut pending = 0;
        for b in &self.span_batchers {
            b.begin_shutdown(tx.clone());
            pending += 1;
        }
        #[cfg(feature = "tracing")]
        for b in &self.log_batchers {
            b.begin_shutdown(tx.clone());
            pending += 1;
        }
        if let Some(m) = self.meter_provider.take() {
            // The periodic reader collects once more and exports; on a
            // thread of its own so that it runs beside the other signals.
            let tx = tx.clone();
            let timeout = self.config.shutdown_timeout;
            let spawned = std::thread::Builder::new()
                .name("otel-shutdown".into())
                .spawn(move || {
                    let _ = m.shutdown_with_timeout(timeout);
                    let _ = tx.send(());
                });
            if spawned.is_ok() {
                pending += 1;
            }
        }
        drop(tx);
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if rx.recv_timeout(left).is_err() {
                break;
            }
            pending -= 1;
        }
        // The deadline: whatever still runs gives up, and what is queued is
        // counted as lost. The providers' shutdown waits (briefly) for our
        // queues to finish counting, and shuts down any other processor.
        self.cancel.fire();
        let short = Duration::from_millis(200);
        if let Some(t) = self.tracer_provider.take() {
            let _ = t.shutdown_with_timeout(short);
        }
        #[cfg(feature = "tracing")]
        if let Some(l) = self.logger_provider.take() {
            let _ = l.shutdown_with_timeout(short);
        }
        let idle = self.cancel.wait_idle(short);
        // After the cancelled metric export has counted its loss.
        self.losses.final_report();
        if idle {
            drop(runtime);
        } else {
            // A metric export still runs on the runtime from the SDK's
            // thread: shutting the runtime down under it would panic that
            // thread, so it stays for the rest of the process.
            runtime.leak();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}
