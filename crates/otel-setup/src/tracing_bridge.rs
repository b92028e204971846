//! The `tracing` feature: a subscriber whose spans are OpenTelemetry spans
//! (tracing-opentelemetry) and whose events are OpenTelemetry log records
//! (opentelemetry-appender-tracing), with human-readable lines that carry the
//! trace id.

use crate::env::{EffectiveConfig, ExporterKind};
use crate::exporters;
use crate::pipeline::batch::{BatchSettings, Batcher};
use crate::pipeline::logs::LogPipeline;
use crate::pipeline::losses::Losses;
use crate::pipeline::Cancel;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use tracing::Subscriber;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

type LogItem = (
    opentelemetry_sdk::logs::SdkLogRecord,
    opentelemetry::InstrumentationScope,
);

/// Crates whose own events must not become exported log records: exporting
/// them would log again, without end.
const EXPORT_PATH_TARGETS: [&str; 7] = [
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "tonic",
    "h2",
    "hyper",
    "reqwest",
];

/// The logger provider, with one queue of ours per OTLP log exporter; the
/// errors are exporters that could not be built (that export is off).
pub(crate) fn logger_provider(
    cfg: &EffectiveConfig,
    resource: Resource,
    settings: BatchSettings,
    rt: &tokio::runtime::Handle,
    losses: &Arc<Losses>,
    cancel: &Arc<Cancel>,
    diag: &Arc<crate::diag::Diag>,
) -> (SdkLoggerProvider, Vec<Batcher<LogItem>>, Vec<String>) {
    let mut builder = SdkLoggerProvider::builder().with_resource(resource.clone());
    let mut batchers = Vec::new();
    let mut errors = Vec::new();
    for kind in &cfg.logs_exporters {
        // `console`: the subscriber's own lines already go to the terminal.
        if *kind == ExporterKind::Otlp {
            match exporters::log_exporter(&cfg.logs_otlp, rt, diag) {
                Ok(mut exporter) => {
                    opentelemetry_sdk::logs::LogExporter::set_resource(&mut exporter, &resource);
                    let p = LogPipeline::new(
                        exporter,
                        settings.clone(),
                        Arc::clone(losses),
                        Arc::clone(cancel),
                        rt,
                    );
                    batchers.push(p.batcher());
                    builder = builder.with_log_processor(p);
                }
                Err(e) => errors.push(e),
            }
        }
    }
    (builder.build(), batchers, errors)
}

/// Human-readable lines, each starting with the trace id of the context it
/// was logged in.
struct TraceIdFormat(Format);

impl<S, N> FormatEvent<S, N> for TraceIdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            write!(writer, "trace_id={} ", sc.trace_id())?;
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// The subscriber: `RUST_LOG` filters what is logged and which `tracing`
/// spans exist (OtelLayer's and OtelMiddleware's spans are OpenTelemetry
/// spans and are never filtered by it).
pub(crate) fn dispatch(
    cfg: &EffectiveConfig,
    tracer_provider: &SdkTracerProvider,
    logger_provider: &SdkLoggerProvider,
    warnings: &mut Vec<crate::ConfigWarning>,
) -> tracing::Dispatch {
    let filter = EnvFilter::try_new(&cfg.rust_log).unwrap_or_else(|e| {
        warnings.push(crate::ConfigWarning {
            variable: "RUST_LOG".into(),
            value: cfg.rust_log.clone(),
            message: format!("{e}; allowed: tracing-subscriber filter directives; using info"),
        });
        EnvFilter::new("info")
    });
    let tracer = tracer_provider.tracer("otel-setup/tracing");
    let no_export_loop = EXPORT_PATH_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, target| t.with_target(*target, LevelFilter::OFF),
    );
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .with(OpenTelemetryTracingBridge::new(logger_provider).with_filter(no_export_loop))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .event_format(TraceIdFormat(Format::default())),
        );
    tracing::Dispatch::new(subscriber)
}
