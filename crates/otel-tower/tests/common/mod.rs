//! A real axum server on 127.0.0.1 with `OtelLayer`, and a real HTTP client.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{self, post};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::Context;
use otel_testkit::TestTelemetry;
use otel_tower::{OtelLayer, OtelLayerBuilder};
use std::net::SocketAddr;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(5);

/// The routes every test app has.
pub fn routes(telemetry: &TestTelemetry) -> Router {
    let tracer = telemetry.tracer_provider().tracer("handler");
    Router::new()
        .route(
            "/users/{id}",
            routing::get(move |Path(id): Path<String>| {
                let tracer = tracer.clone();
                async move {
                    tracer.in_span("db_query", |_| {});
                    let user = Context::current()
                        .baggage()
                        .get("user")
                        .map(|v| v.to_string())
                        .unwrap_or_default();
                    format!("{id}:{user}")
                }
            }),
        )
        .route(
            "/status/{code}",
            routing::get(|Path(code): Path<u16>| async move {
                StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
            }),
        )
        .route(
            "/stream",
            routing::get(|| async {
                let chunks = futures_util::stream::unfold(0u32, |i| async move {
                    if i == 5 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(format!("chunk{i}\n"))),
                        i + 1,
                    ))
                });
                // tower-http's compression polls its stream once more after
                // the end; `unfold` panics on that, so fuse it.
                Body::from_stream(futures_util::StreamExt::fuse(chunks))
            }),
        )
        .route(
            "/stream-error",
            routing::get(|| async {
                let chunks = futures_util::stream::iter(vec![
                    Ok(Bytes::from_static(b"partial")),
                    Err(std::io::Error::other("disk on fire")),
                ]);
                (StatusCode::CREATED, Body::from_stream(chunks))
            }),
        )
        .route(
            "/endless",
            routing::get(|| async {
                let chunks = futures_util::stream::unfold((), |()| async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from_static(b"tick\n")), ()))
                });
                Body::from_stream(chunks)
            }),
        )
        .route(
            "/panic",
            routing::get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "slow"
            }),
        )
        .route(
            "/context",
            routing::get(|| async {
                let cx = Context::current();
                let span = cx.span();
                let sc = span.span_context();
                format!("{}:{}", sc.trace_id(), sc.is_sampled())
            }),
        )
        .route("/health", routing::get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.into_response() }),
        )
}

/// A builder already pointed at the test providers.
pub fn layer(telemetry: &TestTelemetry) -> OtelLayerBuilder {
    OtelLayer::builder()
        .tracer_provider(telemetry.tracer_provider())
        .meter_provider(telemetry.meter_provider())
        .propagator(otel_propagation::default_propagator())
}

/// Serves `app` on 127.0.0.1 with connection info; returns its address.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server runs");
    });
    addr
}

/// The default app: routes + default layer.
pub async fn start(telemetry: &TestTelemetry) -> SocketAddr {
    serve(routes(telemetry).layer(layer(telemetry).build())).await
}

pub struct Reply {
    pub status: u16,
    /// The body's length in bytes, as received (still compressed, if it was).
    pub body_len: usize,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Sends one request over a real connection and reads the whole response.
pub async fn send(req: http::Request<Full<Bytes>>) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(req).await.expect("request sent");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Reply {
        status,
        body_len: bytes.len(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    }
}

pub fn request(method: &str, addr: SocketAddr, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(
        request("GET", addr, path)
            .body(Full::default())
            .expect("request"),
    )
    .await
}

/// Writes raw bytes to the server and returns the raw response head and
/// whatever body arrives before the server closes or `read_for` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    // Head is in; a Content-Length body is short in these tests.
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(len) = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|l| l.trim().parse::<usize>().ok())
                    {
                        let head_end = text.find("\r\n\r\n").map_or(0, |i| i + 4);
                        if buf.len() >= head_end + len {
                            break;
                        }
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The trace id a calling service sends.
pub const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The calling service's span id.
pub const PARENT: &str = "00f067aa0ba902b7";

/// The server span, once exported.
pub fn server_span(t: &TestTelemetry) -> otel_testkit::SpanData {
    t.wait_for_spans(1, WAIT)
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("a server span")
}

/// GET `path` with extra request headers.
pub async fn get_with(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = request("GET", addr, path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(Full::default()).expect("req")).await
}
