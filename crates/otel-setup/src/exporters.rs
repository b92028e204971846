//! OTLP exporters, built inside otel-setup's own runtime (gRPC channels
//! spawn their connection task there), so that exporting works whether or
//! not the application uses tokio, and never on the application's threads.

use crate::env::{Compression, OtlpConfig, Protocol};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use tokio::runtime::Handle;

fn build_error(signal: &str, e: impl std::fmt::Display) -> String {
    format!("the OTLP {signal} exporter could not be built: {e}")
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

/// Builds one signal's OTLP exporter inside `rt`. `Err` is the reason, for
/// a warning.
macro_rules! otlp_exporter {
    ($exporter:ty, $signal:literal, $cfg:expr, $rt:expr) => {{
        let (cfg, rt): (&OtlpConfig, &Handle) = ($cfg, $rt);
        let _enter = rt.enter();
        let built = match cfg.protocol {
            Protocol::Grpc => tonic(<$exporter>::builder().with_tonic(), cfg).build(),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                http(<$exporter>::builder().with_http(), cfg).build()
            }
        };
        built.map_err(|e| build_error($signal, e))
    }};
}

/// Builds the OTLP span exporter.
pub(crate) fn span_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    otlp_exporter!(opentelemetry_otlp::SpanExporter, "trace", cfg, rt)
}

/// Builds the OTLP metric exporter (cumulative temporality).
pub(crate) fn metric_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
) -> Result<opentelemetry_otlp::MetricExporter, String> {
    otlp_exporter!(opentelemetry_otlp::MetricExporter, "metric", cfg, rt)
}

/// Builds the OTLP log exporter.
#[cfg(feature = "tracing")]
pub(crate) fn log_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
) -> Result<opentelemetry_otlp::LogExporter, String> {
    otlp_exporter!(opentelemetry_otlp::LogExporter, "log", cfg, rt)
}

fn http_protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        _ => opentelemetry_otlp::Protocol::HttpBinary,
    }
}
