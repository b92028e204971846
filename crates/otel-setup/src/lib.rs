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
//! - The global tracer provider (sampler from `OTEL_TRACES_SAMPLER`, batch
//!   processor from `OTEL_BSP_*`), meter provider (periodic reader,
//!   `OTEL_METRIC_EXPORT_INTERVAL`), and text-map propagator
//!   (`OTEL_PROPAGATORS`: `tracecontext` is otel-propagation's W3C Level 2
//!   propagator, `baggage` its W3C Baggage one, `b3` / `b3multi` the B3
//!   formats, `none` nothing). The tracer provider is installed wrapped in
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
//!   `OTEL_METRICS_EXPORTER` (`otlp`, `console`, `none`, or a list). OTLP
//!   honours every `OTEL_EXPORTER_OTLP_*` variable and its per-signal
//!   override: endpoint, protocol (`grpc`, `http/protobuf`, `http/json`),
//!   headers, timeout and compression. `console` prints each finished trace
//!   as a waterfall.
//! - `OTEL_SDK_DISABLED=true`: no providers at all (the API's no-ops stay);
//!   propagation still works.
//!
//! A bad value is ignored, as the specification asks, with a warning that
//! names the variable, the value and what is allowed; the warnings are
//! printed once to standard error and kept in [`EffectiveConfig::warnings`].
//! `install` fails only for what cannot work at all.
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
//! application's threads, and spans wait in a bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`). When the collector is down or slow, spans are
//! dropped and counted ([`Telemetry::dropped_spans`]), with a warning at most
//! once a minute; requests are not slowed. It works whether or not it is
//! called inside a tokio runtime.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod env;
mod exporters;
#[cfg(feature = "tracing")]
mod tracing_bridge;
pub mod waterfall;

pub use env::{
    BatchConfig, Compression, ConfigWarning, EffectiveConfig, ExporterKind, OtlpConfig, Protocol,
    SamplerConfig,
};
/// Capture spans and metrics in memory in tests: see [`otel_testkit`].
pub use otel_testkit as testing;

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::{global, KeyValue};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Why telemetry could not be installed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An exporter could not be built (for example, an endpoint that is not
    /// a URL). The message names the setting.
    Exporter(String),
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
    quiet: bool,
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
        if let Some((endpoint, protocol)) = &self.otlp_endpoint {
            for (otlp, path) in [
                (&mut cfg.traces_otlp, "v1/traces"),
                (&mut cfg.metrics_otlp, "v1/metrics"),
                (&mut cfg.logs_otlp, "v1/logs"),
            ] {
                otlp.protocol = *protocol;
                otlp.endpoint = match protocol {
                    Protocol::Grpc => endpoint.clone(),
                    _ => format!("{}/{}", endpoint.trim_end_matches('/'), path),
                };
            }
        }
        cfg
    }

    /// Installs the providers and propagator globally and returns the guard.
    pub fn install(self) -> Result<Telemetry, Error> {
        let cfg = self.effective_config();
        if !self.quiet {
            for w in &cfg.warnings {
                eprintln!("otel-setup: {w}");
            }
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
            return Ok(Telemetry {
                config: cfg,
                tracer_provider: None,
                meter_provider: None,
                #[cfg(feature = "tracing")]
                logger_provider: None,
                #[cfg(feature = "tracing")]
                dispatch: None,
                runtime: None,
                losses: Arc::default(),
            });
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otel-export")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let losses = Arc::new(exporters::Losses::default());
        let mut code_attrs = self.attributes;
        if let Some(version) = self.service_version {
            code_attrs.push(KeyValue::new("service.version", version));
        }
        let resource = resource(&cfg, code_attrs);

        let mut tracer = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(sampler(&cfg.sampler));
        for kind in &cfg.traces_exporters {
            let batch = BatchConfigBuilder::default()
                .with_max_queue_size(cfg.batch.max_queue_size)
                .with_max_export_batch_size(cfg.batch.max_export_batch_size)
                .with_scheduled_delay(cfg.batch.schedule_delay)
                .build();
            tracer = match kind {
                ExporterKind::Otlp => {
                    // OTEL_BSP_EXPORT_TIMEOUT bounds each export too.
                    let mut otlp = cfg.traces_otlp.clone();
                    otlp.timeout = otlp.timeout.min(cfg.batch.export_timeout);
                    let exporter =
                        exporters::span_exporter(&otlp, runtime.handle(), Arc::clone(&losses))?;
                    tracer.with_span_processor(
                        BatchSpanProcessor::builder(exporter)
                            .with_batch_config(batch)
                            .build(),
                    )
                }
                ExporterKind::Console => tracer.with_span_processor(
                    BatchSpanProcessor::builder(waterfall::WaterfallExporter::stdout())
                        .with_batch_config(batch)
                        .build(),
                ),
            };
        }
        for add in self.span_processors {
            tracer = add(tracer);
        }
        let tracer_provider = tracer.build();

        #[cfg(feature = "tracing")]
        let mut cfg = cfg;
        #[cfg(feature = "tracing")]
        let (logger_provider, dispatch) = {
            let logger =
                tracing_bridge::logger_provider(&cfg, resource.clone(), runtime.handle(), &losses)?;
            let mut warnings = Vec::new();
            let dispatch = tracing_bridge::dispatch(&cfg, &tracer_provider, &logger, &mut warnings);
            if !self.quiet {
                for w in &warnings {
                    eprintln!("otel-setup: {w}");
                }
            }
            cfg.warnings.extend(warnings);
            if !self.local && tracing::dispatcher::set_global_default(dispatch.clone()).is_err() {
                cfg.warnings.push(ConfigWarning {
                    variable: "tracing".into(),
                    value: "global subscriber".into(),
                    message: "a global tracing subscriber was already set; ours was not installed \
                              (use Telemetry::tracing_dispatch to run code under it)"
                        .into(),
                });
            }
            (Some(logger), Some(dispatch))
        };

        let mut meter = SdkMeterProvider::builder().with_resource(resource);
        for kind in &cfg.metrics_exporters {
            meter = match kind {
                ExporterKind::Otlp => {
                    let exporter = exporters::metric_exporter(
                        &cfg.metrics_otlp,
                        runtime.handle(),
                        Arc::clone(&losses),
                    )?;
                    meter.with_reader(
                        PeriodicReader::builder(exporter)
                            .with_interval(cfg.metric_export_interval)
                            .build(),
                    )
                }
                ExporterKind::Console => meter.with_reader(
                    PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default())
                        .with_interval(cfg.metric_export_interval)
                        .build(),
                ),
            };
        }
        let meter_provider = meter.build();

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
            runtime: Some(runtime),
            losses,
        })
    }
}

fn propagator(names: &[String]) -> TextMapCompositePropagator {
    let list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = names
        .iter()
        .filter_map(|name| -> Option<Box<dyn TextMapPropagator + Send + Sync>> {
            match name.as_str() {
                "tracecontext" => Some(Box::new(otel_propagation::TraceContextPropagator::new())),
                "baggage" => Some(Box::new(otel_propagation::BaggagePropagator::new())),
                "b3" => Some(Box::new(
                    opentelemetry_propagator_b3::Propagator::with_encoding(
                        opentelemetry_propagator_b3::B3Encoding::SingleHeader,
                    ),
                )),
                "b3multi" => Some(Box::new(
                    opentelemetry_propagator_b3::Propagator::with_encoding(
                        opentelemetry_propagator_b3::B3Encoding::MultipleHeader,
                    ),
                )),
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
/// flushes every finished span and metric, waiting a bounded time.
#[derive(Debug)]
pub struct Telemetry {
    config: EffectiveConfig,
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    #[cfg(feature = "tracing")]
    logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    #[cfg(feature = "tracing")]
    dispatch: Option<tracing::Dispatch>,
    runtime: Option<tokio::runtime::Runtime>,
    losses: Arc<exporters::Losses>,
}

/// How long shutdown waits for each signal's final export.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

impl Telemetry {
    /// A builder for settings in code.
    pub fn builder() -> TelemetryBuilder {
        TelemetryBuilder::default()
    }

    /// What was applied, with every warning.
    pub fn effective_config(&self) -> &EffectiveConfig {
        &self.config
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

    /// Spans that could not be exported and were dropped so far.
    pub fn dropped_spans(&self) -> u64 {
        self.losses.spans.load(Ordering::Relaxed)
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

    /// Flushes and shuts down. Waits at most a few seconds per signal.
    pub fn shutdown(mut self) {
        self.shutdown_inner();
    }

    fn shutdown_inner(&mut self) {
        if let Some(t) = self.tracer_provider.take() {
            let _ = t.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        }
        if let Some(m) = self.meter_provider.take() {
            let _ = m.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        }
        #[cfg(feature = "tracing")]
        if let Some(l) = self.logger_provider.take() {
            let _ = l.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        }
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so it is safe inside an async context too.
            rt.shutdown_background();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}
