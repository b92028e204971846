//! OTLP exporters, run on a small runtime of their own so that exporting
//! works whether or not the application uses tokio, and never on the
//! application's threads.

use crate::env::{Compression, OtlpConfig, Protocol};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// What export has lost, counted.
#[derive(Debug, Default)]
pub(crate) struct Losses {
    pub(crate) spans: AtomicU64,
    pub(crate) metric_exports: AtomicU64,
    /// Seconds since `start` of the last warning printed: one a minute at most.
    last_warning: AtomicU64,
    warnings: AtomicUsize,
    start: std::sync::OnceLock<Instant>,
}

impl Losses {
    fn warn(&self, what: &str, error: &OTelSdkError) {
        let start = *self.start.get_or_init(Instant::now);
        let now = start.elapsed().as_secs() + 60;
        let last = self.last_warning.load(Ordering::Relaxed);
        let first = self.warnings.load(Ordering::Relaxed) == 0;
        if (first || now >= last + 60)
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.warnings.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "otel-setup: {what} could not be exported and were dropped ({error}); \
                 so far {} spans dropped. The application is not affected; export resumes \
                 when the collector answers. (At most one such warning a minute.)",
                self.spans.load(Ordering::Relaxed)
            );
        }
    }
}

fn build_error(signal: &str, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Exporter(format!(
        "the OTLP {signal} exporter could not be built: {e}"
    ))
}

fn otlp_compression(c: Compression) -> Option<opentelemetry_otlp::Compression> {
    match c {
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        Compression::None => None,
    }
}

fn metadata(headers: &[(String, String)]) -> tonic::metadata::MetadataMap {
    let mut map = tonic::metadata::MetadataMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
            v.parse(),
        ) {
            map.insert(k, v);
        }
    }
    map
}

/// Applies endpoint, timeout, headers and compression to a gRPC builder.
fn tonic<B: WithExportConfig + WithTonicConfig>(b: B, cfg: &OtlpConfig) -> B {
    let b = b
        .with_endpoint(&cfg.endpoint)
        .with_timeout(cfg.timeout)
        .with_metadata(metadata(&cfg.headers));
    match otlp_compression(cfg.compression) {
        Some(c) => b.with_compression(c),
        None => b,
    }
}

/// The same for an HTTP builder, with the encoding.
fn http<B: WithExportConfig + WithHttpConfig>(b: B, cfg: &OtlpConfig) -> B {
    let b = b
        .with_protocol(http_protocol(cfg.protocol))
        .with_endpoint(&cfg.endpoint)
        .with_timeout(cfg.timeout)
        .with_headers(cfg.headers.iter().cloned().collect());
    match otlp_compression(cfg.compression) {
        Some(c) => b.with_compression(c),
        None => b,
    }
}

/// Builds one signal's OTLP exporter inside `rt` (gRPC channels spawn their
/// connection task there) and wraps it to run there.
macro_rules! otlp_exporter {
    ($exporter:ty, $signal:literal, $cfg:expr, $rt:expr, $losses:expr) => {{
        let (cfg, rt): (&OtlpConfig, &Handle) = ($cfg, $rt);
        let _enter = rt.enter();
        let built = match cfg.protocol {
            Protocol::Grpc => tonic(<$exporter>::builder().with_tonic(), cfg).build(),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                http(<$exporter>::builder().with_http(), cfg).build()
            }
        };
        built
            .map_err(|e| build_error($signal, e))
            .map(|exporter| OnRuntime {
                inner: Arc::new(exporter),
                rt: rt.clone(),
                losses: $losses,
            })
    }};
}

/// Builds the OTLP span exporter.
pub(crate) fn span_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
    losses: Arc<Losses>,
) -> Result<OnRuntime<opentelemetry_otlp::SpanExporter>, crate::Error> {
    otlp_exporter!(opentelemetry_otlp::SpanExporter, "trace", cfg, rt, losses)
}

/// Builds the OTLP metric exporter (cumulative temporality).
pub(crate) fn metric_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
    losses: Arc<Losses>,
) -> Result<OnRuntime<opentelemetry_otlp::MetricExporter>, crate::Error> {
    otlp_exporter!(
        opentelemetry_otlp::MetricExporter,
        "metric",
        cfg,
        rt,
        losses
    )
}

fn http_protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        _ => opentelemetry_otlp::Protocol::HttpBinary,
    }
}

/// An exporter whose work runs on the export runtime. The SDK calls it from
/// its own background threads; the export itself is spawned onto `rt`.
#[derive(Debug)]
pub(crate) struct OnRuntime<E> {
    inner: Arc<E>,
    rt: Handle,
    losses: Arc<Losses>,
}

impl<E: SpanExporter + 'static> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = Arc::clone(&self.inner);
        let n = batch.len() as u64;
        let result = match self
            .rt
            .spawn(async move { inner.export(batch).await })
            .await
        {
            Ok(result) => result,
            Err(e) => Err(OTelSdkError::InternalFailure(e.to_string())),
        };
        if let Err(e) = &result {
            self.losses.spans.fetch_add(n, Ordering::Relaxed);
            self.losses.warn("spans", e);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for OnRuntime<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        // The periodic reader calls this from its own thread, never from a
        // runtime, so blocking on the export runtime is allowed here.
        let result = if Handle::try_current().is_ok() {
            Err(OTelSdkError::InternalFailure(
                "metric export called from inside an async runtime".into(),
            ))
        } else {
            self.rt.block_on(self.inner.export(metrics))
        };
        if let Err(e) = &result {
            self.losses.metric_exports.fetch_add(1, Ordering::Relaxed);
            self.losses.warn("metrics", e);
        }
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// Builds the OTLP log exporter.
#[cfg(feature = "tracing")]
pub(crate) fn log_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
    losses: Arc<Losses>,
) -> Result<OnRuntime<opentelemetry_otlp::LogExporter>, crate::Error> {
    otlp_exporter!(opentelemetry_otlp::LogExporter, "log", cfg, rt, losses)
}

#[cfg(feature = "tracing")]
impl<E: opentelemetry_sdk::logs::LogExporter> opentelemetry_sdk::logs::LogExporter
    for OnRuntime<E>
{
    async fn export(&self, batch: opentelemetry_sdk::logs::LogBatch<'_>) -> OTelSdkResult {
        // The batch log processor calls this from its own thread.
        let result = if Handle::try_current().is_ok() {
            Err(OTelSdkError::InternalFailure(
                "log export called from inside an async runtime".into(),
            ))
        } else {
            self.rt.block_on(self.inner.export(batch))
        };
        if let Err(e) = &result {
            self.losses.warn("log records", e);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}
