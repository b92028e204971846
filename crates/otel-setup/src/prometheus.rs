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
    // Bound here, on the caller's thread, so that a taken port is known now:
    // every address the host resolves to (`localhost` is both 127.0.0.1
    // and ::1 on many hosts), the first one's port for the others when the
    // port is 0.
    let fail = |e: std::io::Error| format!("cannot listen on {host}:{port} ({e})");
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(fail)?
        .collect();
    let first = std::net::TcpListener::bind(addrs.as_slice()).map_err(fail)?;
    let address = first.local_addr().map_err(fail)?;
    let mut listeners = vec![first];
    for other in addrs.iter().filter(|a| a.ip() != address.ip()) {
        let mut other = *other;
        other.set_port(address.port());
        // Best effort: the first address is served whatever happens here.
        if let Ok(l) = std::net::TcpListener::bind(other) {
            listeners.push(l);
        }
    }
    for listener in listeners {
        listener.set_nonblocking(true).map_err(fail)?;
        let listener = {
            let _enter = rt.enter();
            tokio::net::TcpListener::from_std(listener).map_err(fail)?
        };
        rt.spawn(accept(listener, registry.clone()));
    }
    Ok(Served { reader, address })
}

/// Serves every connection `listener` accepts, one HTTP/1.1 connection per
/// task.
async fn accept(listener: tokio::net::TcpListener, registry: prometheus::Registry) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: wait instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
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
