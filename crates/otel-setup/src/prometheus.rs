//! `OTEL_METRICS_EXPORTER=prometheus`: opentelemetry-prometheus's pull
//! exporter, served over HTTP/1.1 on the export runtime. `GET /metrics`
//! answers the text format 0.0.4; every other path is a 404.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// The reader to give the meter provider, and the bound address.
pub(crate) struct Served {
    pub(crate) reader: opentelemetry_prometheus::PrometheusExporter,
    pub(crate) address: SocketAddr,
}

/// Binds `host:port` and serves the registry's metrics there. `Err` says
/// why it could not bind, for a warning.
pub(crate) fn serve(host: &str, port: u16, rt: &tokio::runtime::Handle) -> Result<Served, String> {
    let registry = prometheus::Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|e| format!("the Prometheus exporter could not be built: {e}"))?;
    // Bound here, on the caller's thread, so that a taken port is known now.
    let listener = std::net::TcpListener::bind((host, port))
        .map_err(|e| format!("cannot listen on {host}:{port} ({e})"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {host}:{port} ({e})"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {host}:{port} ({e})"))?;
    let listener = {
        let _enter = rt.enter();
        tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("cannot listen on {host}:{port} ({e})"))?
    };
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let registry = registry.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(&req, &registry)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Served { reader, address })
}

fn answer(req: &Request<Incoming>, registry: &prometheus::Registry) -> Response<Full<Bytes>> {
    use prometheus::Encoder;
    let status = |code: u16, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or_default();
        r
    };
    if req.uri().path() != "/metrics" {
        return status(404, "not found; metrics are at /metrics\n");
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return status(405, "method not allowed\n");
    }
    let encoder = prometheus::TextEncoder::new();
    let mut body = Vec::new();
    if encoder.encode(&registry.gather(), &mut body).is_err() {
        return status(500, "the metrics could not be encoded\n");
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    if let Ok(v) = http::HeaderValue::from_str(encoder.format_type()) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}
