//! An OTLP receiver for tests: gRPC and HTTP (protobuf and JSON, plain or
//! gzip) on 127.0.0.1, built on `opentelemetry-proto`'s server types, that
//! keeps what it receives.

use opentelemetry_proto::tonic::collector::logs::v1::{
    logs_service_server::{LogsService, LogsServiceServer},
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_server::{MetricsService, MetricsServiceServer},
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_server::{TraceService, TraceServiceServer},
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received span with the resource and scope it came with.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The resource's attributes.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The span.
    pub span: Span,
}

impl ReceivedSpan {
    /// A resource attribute as a string.
    pub fn resource_attr(&self, key: &str) -> Option<String> {
        attr_string(&self.resource, key)
    }

    /// A span attribute as a string (ints and bools formatted).
    pub fn attr(&self, key: &str) -> Option<String> {
        attr_string(&self.span.attributes, key)
    }

    /// The span's trace id, hex.
    pub fn trace_id(&self) -> String {
        hex(&self.span.trace_id)
    }

    /// The span's id, hex.
    pub fn span_id(&self) -> String {
        hex(&self.span.span_id)
    }

    /// The parent span's id, hex (empty for a root).
    pub fn parent_id(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr_string(attrs: &[KeyValue], key: &str) -> Option<String> {
    let value = attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match value {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        any_value::Value::BoolValue(b) => b.to_string(),
        any_value::Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

/// One received log record.
#[derive(Clone, Debug)]
pub struct ReceivedLog {
    /// The resource's attributes.
    pub resource: Vec<KeyValue>,
    /// The body, as a string.
    pub body: String,
    /// Severity text (`INFO`, `ERROR`, ...).
    pub severity: String,
    /// Trace id, hex (empty when logged outside a trace).
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
}

#[derive(Default, Debug)]
struct Store {
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    headers: Mutex<Vec<http::HeaderMap>>,
    /// 0: answer normally; otherwise the HTTP status to fail with (gRPC
    /// answers UNAVAILABLE).
    fail_with: AtomicU16,
    /// Milliseconds to wait before answering.
    delay_ms: std::sync::atomic::AtomicU64,
}

impl Store {
    async fn pause(&self) {
        let ms = self.delay_ms.load(Ordering::Relaxed);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    fn failing(&self) -> Option<u16> {
        match self.fail_with.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }
}

struct Grpc(Arc<Store>);

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.pause().await;
        if self.0.failing().is_some() {
            return Err(tonic::Status::unavailable("receiver set to fail"));
        }
        if let Ok(mut h) = self.0.headers.lock() {
            h.push(request.metadata().clone().into_headers());
        }
        if let Ok(mut t) = self.0.traces.lock() {
            t.push(request.into_inner());
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.pause().await;
        if self.0.failing().is_some() {
            return Err(tonic::Status::unavailable("receiver set to fail"));
        }
        if let Ok(mut m) = self.0.metrics.lock() {
            m.push(request.into_inner());
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.pause().await;
        if self.0.failing().is_some() {
            return Err(tonic::Status::unavailable("receiver set to fail"));
        }
        if let Ok(mut l) = self.0.logs.lock() {
            l.push(request.into_inner());
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn decode<T: Message + Default + serde::de::DeserializeOwned>(
    headers: &http::HeaderMap,
    body: &[u8],
) -> Option<T> {
    let gz = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let mut plain = Vec::new();
    let body = if gz {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut plain)
            .ok()?;
        &plain[..]
    } else {
        body
    };
    let json = headers
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        serde_json::from_slice(body).ok()
    } else {
        T::decode(body).ok()
    }
}

/// The receiver. Runs on a thread of its own, so it serves whether or not
/// the test is async; stops when dropped.
#[derive(Debug)]
pub struct OtlpReceiver {
    grpc: SocketAddr,
    http: SocketAddr,
    store: Arc<Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Starts both servers on 127.0.0.1, on free ports.
    ///
    /// # Panics
    /// If it cannot bind a loopback port: a test cannot run without one.
    pub fn start() -> Self {
        let store = Arc::new(Store::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s = Arc::clone(&store);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let grpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1");
                let http_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind 127.0.0.1");
                let addrs = (
                    grpc_listener.local_addr().expect("addr"),
                    http_listener.local_addr().expect("addr"),
                );
                let _ = addr_tx.send(addrs);
                let grpc = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(Grpc(Arc::clone(&s))))
                    .add_service(MetricsServiceServer::new(Grpc(Arc::clone(&s))))
                    .add_service(LogsServiceServer::new(Grpc(Arc::clone(&s))))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                        grpc_listener,
                    ));
                let http = axum::serve(http_listener, http_app(Arc::clone(&s)));
                tokio::select! {
                    _ = grpc => {}
                    _ = http => {}
                    _ = stop_rx => {}
                }
            });
        });
        let (grpc, http) = addr_rx.recv().expect("receiver started");
        OtlpReceiver {
            grpc,
            http,
            store,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` of the gRPC server.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// `http://127.0.0.1:<port>` of the HTTP server (base, without `/v1/...`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// Makes every export fail (HTTP with `status`, gRPC with UNAVAILABLE)
    /// until [`recover`](Self::recover).
    pub fn fail_with(&self, status: u16) {
        self.store.fail_with.store(status, Ordering::Relaxed);
    }

    /// Answers normally again (no failure, no delay).
    pub fn recover(&self) {
        self.store.fail_with.store(0, Ordering::Relaxed);
        self.store.delay_ms.store(0, Ordering::Relaxed);
    }

    /// Waits `delay` before answering each export: a slow collector.
    pub fn delay(&self, delay: Duration) {
        self.store
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let Ok(traces) = self.store.traces.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for req in traces.iter() {
            for rs in &req.resource_spans {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                for ss in &rs.scope_spans {
                    let scope = ss
                        .scope
                        .as_ref()
                        .map(|s| s.name.clone())
                        .unwrap_or_default();
                    for span in &ss.spans {
                        out.push(ReceivedSpan {
                            resource: resource.clone(),
                            scope: scope.clone(),
                            span: span.clone(),
                        });
                    }
                }
            }
        }
        out
    }

    /// Waits (polling, up to `timeout`) for at least `count` spans.
    pub fn wait_for_spans(&self, count: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Names of the metrics received so far, with their resource's
    /// `service.name`.
    pub fn metrics(&self) -> Vec<(String, Option<String>)> {
        let Ok(metrics) = self.store.metrics.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for req in metrics.iter() {
            for rm in &req.resource_metrics {
                let service = rm
                    .resource
                    .as_ref()
                    .and_then(|r| attr_string(&r.attributes, "service.name"));
                for sm in &rm.scope_metrics {
                    for m in &sm.metrics {
                        out.push((m.name.clone(), service.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<ReceivedLog> {
        let Ok(logs) = self.store.logs.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for req in logs.iter() {
            for rl in &req.resource_logs {
                let resource = rl
                    .resource
                    .as_ref()
                    .map(|r| r.attributes.clone())
                    .unwrap_or_default();
                for sl in &rl.scope_logs {
                    for rec in &sl.log_records {
                        let body = match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
                            Some(any_value::Value::StringValue(s)) => s.clone(),
                            Some(other) => format!("{other:?}"),
                            None => String::new(),
                        };
                        out.push(ReceivedLog {
                            resource: resource.clone(),
                            body,
                            severity: rec.severity_text.clone(),
                            trace_id: hex(&rec.trace_id),
                            span_id: hex(&rec.span_id),
                        });
                    }
                }
            }
        }
        out
    }

    /// The headers (gRPC metadata) of every trace export received.
    pub fn trace_request_headers(&self) -> Vec<http::HeaderMap> {
        self.store
            .headers
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Decodes an HTTP export and hands it to `keep`, answering as a collector
/// does (or with the failure the test asked for).
fn ingest<T: Message + Default + serde::de::DeserializeOwned>(
    store: &Store,
    headers: &http::HeaderMap,
    body: &[u8],
    keep: impl FnOnce(&Store, T),
) -> axum::http::StatusCode {
    use axum::http::StatusCode;
    if let Some(status) = store.failing() {
        return StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    match decode::<T>(headers, body) {
        Some(req) => {
            keep(store, req);
            StatusCode::OK
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn push<T>(list: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut l) = list.lock() {
        l.push(item);
    }
}

fn http_app(store: Arc<Store>) -> axum::Router {
    use axum::extract::State;
    use axum::routing::post;
    axum::Router::new()
        .route(
            "/v1/traces",
            post(
                |State(s): State<Arc<Store>>, h: http::HeaderMap, b: bytes::Bytes| async move {
                    s.pause().await;
                    ingest(&s, &h, &b, |s, req: ExportTraceServiceRequest| {
                        push(&s.headers, h.clone());
                        push(&s.traces, req);
                    })
                },
            ),
        )
        .route(
            "/v1/metrics",
            post(
                |State(s): State<Arc<Store>>, h: http::HeaderMap, b: bytes::Bytes| async move {
                    s.pause().await;
                    ingest(&s, &h, &b, |s, req: ExportMetricsServiceRequest| {
                        push(&s.metrics, req)
                    })
                },
            ),
        )
        .route(
            "/v1/logs",
            post(
                |State(s): State<Arc<Store>>, h: http::HeaderMap, b: bytes::Bytes| async move {
                    s.pause().await;
                    ingest(&s, &h, &b, |s, req: ExportLogsServiceRequest| {
                        push(&s.logs, req)
                    })
                },
            ),
        )
        .with_state(store)
}
