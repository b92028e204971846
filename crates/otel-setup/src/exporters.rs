//! OTLP exporters, built inside otel-setup's own runtime (gRPC channels
//! spawn their connection task there), so that exporting works whether or
//! not the application uses tokio, and never on the application's threads.
//!
//! The transport is built here, not by opentelemetry-otlp: the gRPC channel
//! and the HTTP client carry otel-setup's TLS settings, and nothing of the
//! endpoint or TLS is read from the environment behind `env_map`'s back.

use crate::diag::Diag;
use crate::env::{Compression, OtlpConfig, Protocol, TemporalityPreference};
use crate::pipeline::Signal;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use std::sync::Arc;
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

/// The header names opentelemetry-otlp adds on its own from the process
/// environment (`OTEL_EXPORTER_OTLP_{SIGNAL}_HEADERS`, else
/// `OTEL_EXPORTER_OTLP_HEADERS`), lowercased. Where they differ from the
/// headers otel-setup was given (through `env_map`, say), each request is
/// put back to exactly ours.
fn headers_from_process_env(signal: Signal) -> Vec<(String, String)> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal_var(signal));
    std::env::var(specific)
        .ok()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_HEADERS").ok())
        .and_then(|value| crate::env::parse_key_values(&value).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

fn signal_var(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "TRACES",
        Signal::Metrics => "METRICS",
        Signal::Logs => "LOGS",
    }
}

/// What a request's headers must be made again: names to remove (those
/// the environment added) and ours to set. `None` when nothing differs.
#[derive(Clone, Debug, Default)]
struct ExactHeaders {
    remove: Vec<String>,
    ours: Vec<(String, String)>,
}

impl ExactHeaders {
    fn new(signal: Signal, cfg: &OtlpConfig) -> Option<Self> {
        let from_env = headers_from_process_env(signal);
        let ours: Vec<(String, String)> = cfg
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        // Read from the environment, as in production, the two agree and
        // requests are left alone.
        if from_env.iter().all(|pair| ours.contains(pair)) {
            return None;
        }
        let remove = from_env.into_iter().map(|(k, _)| k).collect();
        Some(ExactHeaders { remove, ours })
    }
}

impl tonic::service::Interceptor for ExactHeaders {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        for k in &self.remove {
            md.remove(k.as_str());
        }
        for (k, v) in &self.ours {
            if let (Ok(k), Ok(v)) = (
                tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                v.parse(),
            ) {
                md.insert(k, v);
            }
        }
        Ok(req)
    }
}

/// The gRPC channel: TLS for `https`, connected lazily (so a collector that
/// is down at start-up is only an export failure, later).
fn channel(cfg: &OtlpConfig) -> Result<tonic::transport::Channel, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(cfg.endpoint.clone())
        .map_err(|e| format!("invalid endpoint {:?}: {e}", cfg.endpoint))?
        .timeout(cfg.timeout);
    #[cfg(feature = "tls")]
    let endpoint = if endpoint.uri().scheme_str() == Some("https") {
        endpoint
            .tls_config(crate::tls::tonic_config(&cfg.tls)?)
            .map_err(|e| format!("TLS could not be set up: {}", crate::diag::chain(&e)))?
    } else {
        endpoint
    };
    Ok(endpoint.connect_lazy())
}

/// Applies the channel, headers and compression to a gRPC builder.
fn tonic<B: WithExportConfig + WithTonicConfig>(
    b: B,
    cfg: &OtlpConfig,
    signal: Signal,
) -> Result<B, String> {
    let b = b
        .with_channel(channel(cfg)?)
        .with_timeout(cfg.timeout)
        .with_metadata(metadata(&cfg.headers));
    // Runs after the metadata opentelemetry-otlp adds (ours, then the
    // process environment's): the request leaves with ours only.
    let b = match ExactHeaders::new(signal, cfg) {
        Some(exact) => b.with_interceptor(exact),
        None => b,
    };
    Ok(match otlp_compression(cfg.compression) {
        Some(c) => b.with_compression(c),
        None => b,
    })
}

/// The HTTP client of one signal's exporter: rustls with the signal's trust
/// and identity, and failures described on standard error.
fn http_client(cfg: &OtlpConfig, signal: Signal, diag: &Arc<Diag>) -> Result<HttpClient, String> {
    let builder = reqwest::Client::builder().timeout(cfg.timeout);
    #[cfg(feature = "tls")]
    let builder = builder.tls_backend_preconfigured(crate::tls::http_client_config(&cfg.tls)?);
    let client = builder.build().map_err(|e| {
        format!(
            "the HTTP client could not be built: {}",
            crate::diag::chain(&e)
        )
    })?;
    Ok(HttpClient {
        client,
        signal,
        target: crate::diag::target(&cfg.endpoint),
        diag: Arc::clone(diag),
        exact: ExactHeaders::new(signal, cfg),
    })
}

/// The same for an HTTP builder, with the encoding.
fn http<B: WithExportConfig + WithHttpConfig>(
    b: B,
    cfg: &OtlpConfig,
    signal: Signal,
    diag: &Arc<Diag>,
) -> Result<B, String> {
    let b = b
        .with_protocol(http_protocol(cfg.protocol))
        .with_http_client(http_client(cfg, signal, diag)?)
        .with_endpoint(&cfg.endpoint)
        .with_timeout(cfg.timeout)
        .with_headers(cfg.headers.iter().cloned().collect());
    Ok(match otlp_compression(cfg.compression) {
        Some(c) => b.with_compression(c),
        None => b,
    })
}

/// A reqwest client that says why a request never got an answer (an
/// untrusted certificate, a refused connection): opentelemetry-otlp reports
/// only "network error". The URL is left out of the text.
#[derive(Debug)]
struct HttpClient {
    client: reqwest::Client,
    signal: Signal,
    target: String,
    diag: Arc<Diag>,
    /// Set when the process environment's headers differ from ours.
    exact: Option<ExactHeaders>,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for HttpClient {
    async fn send_bytes(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        if let Some(exact) = &self.exact {
            let headers = request.headers_mut();
            for k in &exact.remove {
                headers.remove(k.as_str());
            }
            for (k, v) in &exact.ours {
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.as_bytes()),
                    http::HeaderValue::from_str(v),
                ) {
                    headers.insert(k, v);
                }
            }
        }
        match self.client.send_bytes(request).await {
            Ok(response) => Ok(response),
            Err(e) => {
                self.diag
                    .export_error(self.signal, &self.target, e.as_ref());
                Err(e)
            }
        }
    }
}

/// Builds one signal's OTLP exporter inside `rt`. `Err` is the reason, for
/// a warning.
macro_rules! otlp_exporter {
    ($builder:expr, $signal:expr, $cfg:expr, $rt:expr, $diag:expr) => {{
        let (cfg, rt, signal): (&OtlpConfig, &Handle, Signal) = ($cfg, $rt, $signal);
        let _enter = rt.enter();
        let name = signal_name(signal);
        match cfg.protocol {
            Protocol::Grpc => tonic($builder.with_tonic(), cfg, signal)
                .and_then(|b| b.build().map_err(|e| e.to_string())),
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                http($builder.with_http(), cfg, signal, $diag)
                    .and_then(|b| b.build().map_err(|e| e.to_string()))
            }
        }
        .map_err(|e| build_error(name, e))
    }};
}

fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "trace",
        Signal::Metrics => "metric",
        Signal::Logs => "log",
    }
}

/// Builds the OTLP span exporter.
pub(crate) fn span_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
    diag: &Arc<Diag>,
) -> Result<opentelemetry_otlp::SpanExporter, String> {
    otlp_exporter!(
        opentelemetry_otlp::SpanExporter::builder(),
        Signal::Traces,
        cfg,
        rt,
        diag
    )
}

/// Builds the OTLP metric exporter with the configured temporality.
pub(crate) fn metric_exporter(
    cfg: &OtlpConfig,
    temporality: TemporalityPreference,
    rt: &Handle,
    diag: &Arc<Diag>,
) -> Result<opentelemetry_otlp::MetricExporter, String> {
    use opentelemetry_sdk::metrics::Temporality;
    let temporality = match temporality {
        TemporalityPreference::Cumulative => Temporality::Cumulative,
        TemporalityPreference::Delta => Temporality::Delta,
        TemporalityPreference::LowMemory => Temporality::LowMemory,
    };
    otlp_exporter!(
        opentelemetry_otlp::MetricExporter::builder().with_temporality(temporality),
        Signal::Metrics,
        cfg,
        rt,
        diag
    )
}

/// Builds the OTLP log exporter.
#[cfg(feature = "tracing")]
pub(crate) fn log_exporter(
    cfg: &OtlpConfig,
    rt: &Handle,
    diag: &Arc<Diag>,
) -> Result<opentelemetry_otlp::LogExporter, String> {
    otlp_exporter!(
        opentelemetry_otlp::LogExporter::builder(),
        Signal::Logs,
        cfg,
        rt,
        diag
    )
}

fn http_protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
        _ => opentelemetry_otlp::Protocol::HttpBinary,
    }
}
