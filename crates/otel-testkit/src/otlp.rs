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

#[cfg(feature = "tls")]
type TlsServerConfig = rustls::ServerConfig;
/// Without the `tls` feature no configuration can be made.
#[cfg(not(feature = "tls"))]
type TlsServerConfig = std::convert::Infallible;

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

/// The signal of one OTLP export request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtlpSignal {
    /// `/v1/traces`, `TraceService/Export`.
    Traces,
    /// `/v1/metrics`, `MetricsService/Export`.
    Metrics,
    /// `/v1/logs`, `LogsService/Export`.
    Logs,
}

/// One export request as it arrived, answered or not.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// Which signal.
    pub signal: OtlpSignal,
    /// When it arrived.
    pub at: Instant,
    /// Items it carried (spans, data points, log records); 0 when it could
    /// not be decoded or was over the size limit.
    pub items: usize,
    /// The HTTP status it was answered with (gRPC: 200 for OK, 503 for
    /// UNAVAILABLE, 413 for RESOURCE_EXHAUSTED, 500 for others).
    pub status: u16,
}

/// The receiver's default request limit: the OpenTelemetry Collector's
/// (and gRPC's) usual 4 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct Store {
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    headers: Mutex<Vec<http::HeaderMap>>,
    /// 0: answer normally; otherwise the HTTP status to fail with (gRPC
    /// answers UNAVAILABLE).
    fail_with: AtomicU16,
    /// Milliseconds to wait before answering.
    delay_ms: std::sync::atomic::AtomicU64,
    /// Seconds for a `Retry-After` header on HTTP failures; 0: none.
    retry_after: std::sync::atomic::AtomicU64,
    max_request_bytes: std::sync::atomic::AtomicUsize,
    attempts: Mutex<Vec<Attempt>>,
    /// TLS handshakes that failed (an untrusted or missing client
    /// certificate, a client that does not trust the server).
    tls_failures: std::sync::atomic::AtomicUsize,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            logs: Mutex::default(),
            traces: Mutex::default(),
            metrics: Mutex::default(),
            headers: Mutex::default(),
            fail_with: AtomicU16::new(0),
            delay_ms: std::sync::atomic::AtomicU64::new(0),
            retry_after: std::sync::atomic::AtomicU64::new(0),
            max_request_bytes: std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_REQUEST_BYTES),
            attempts: Mutex::default(),
            tls_failures: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Store {
    #[cfg(feature = "tls")]
    pub(crate) fn tls_failed(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }
}

fn span_count(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

fn point_count(r: &ExportMetricsServiceRequest) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

fn record_count(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum()
}

impl Store {
    fn attempt(&self, signal: OtlpSignal, items: usize, status: u16) {
        push(
            &self.attempts,
            Attempt {
                signal,
                at: Instant::now(),
                items,
                status,
            },
        );
    }

    /// The gRPC answer for a request of `len` bytes and `items` items, after
    /// recording the attempt; `None`: accept it.
    fn grpc_verdict(&self, signal: OtlpSignal, len: usize, items: usize) -> Option<tonic::Status> {
        if len > self.max_request_bytes.load(Ordering::Relaxed) {
            self.attempt(signal, 0, 413);
            return Some(tonic::Status::resource_exhausted(
                "request over the receiver's limit",
            ));
        }
        if self.failing().is_some() {
            self.attempt(signal, items, 503);
            return Some(tonic::Status::unavailable("receiver set to fail"));
        }
        self.attempt(signal, items, 200);
        None
    }

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
        let r = request.get_ref();
        if let Some(status) =
            self.0
                .grpc_verdict(OtlpSignal::Traces, r.encoded_len(), span_count(r))
        {
            return Err(status);
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
        let r = request.get_ref();
        if let Some(status) =
            self.0
                .grpc_verdict(OtlpSignal::Metrics, r.encoded_len(), point_count(r))
        {
            return Err(status);
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
        let r = request.get_ref();
        if let Some(status) =
            self.0
                .grpc_verdict(OtlpSignal::Logs, r.encoded_len(), record_count(r))
        {
            return Err(status);
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
    secure: bool,
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
        Self::start_with(None)
    }

    /// Starts both servers over TLS (and mTLS when `tls` asks for client
    /// certificates); their endpoints are then `https://`.
    ///
    /// # Panics
    /// If it cannot bind a loopback port, or the certificates are not
    /// usable.
    #[cfg(feature = "tls")]
    pub fn start_tls(tls: crate::tls::ServerTls) -> Self {
        Self::start_with(Some(tls.server_config()))
    }

    fn start_with(tls: Option<Arc<TlsServerConfig>>) -> Self {
        let store = Arc::new(Store::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let s = Arc::clone(&store);
        let secure = tls.is_some();
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
                // The size limit is checked in the handlers, so that a request
                // over it is recorded as an attempt.
                const DECODE_MAX: usize = 256 * 1024 * 1024;
                let trace = TraceServiceServer::new(Grpc(Arc::clone(&s)))
                    .max_decoding_message_size(DECODE_MAX);
                let metrics = MetricsServiceServer::new(Grpc(Arc::clone(&s)))
                    .max_decoding_message_size(DECODE_MAX);
                let logs = LogsServiceServer::new(Grpc(Arc::clone(&s)))
                    .max_decoding_message_size(DECODE_MAX);
                match tls {
                    #[cfg(feature = "tls")]
                    Some(config) => {
                        let grpc = tonic::service::Routes::new(trace)
                            .add_service(metrics)
                            .add_service(logs)
                            .into_axum_router();
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        tokio::select! {
                            _ = crate::tls::serve(grpc_listener, acceptor.clone(), grpc, Arc::clone(&s)) => {}
                            _ = crate::tls::serve(http_listener, acceptor, http_app(Arc::clone(&s)), Arc::clone(&s)) => {}
                            _ = stop_rx => {}
                        }
                    }
                    _ => {
                        let grpc = tonic::transport::Server::builder()
                            .add_service(trace)
                            .add_service(metrics)
                            .add_service(logs)
                            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                                grpc_listener,
                            ));
                        let http = axum::serve(http_listener, http_app(Arc::clone(&s)));
                        tokio::select! {
                            _ = grpc => {}
                            _ = http => {}
                            _ = stop_rx => {}
                        }
                    }
                }
            });
        });
        let (grpc, http) = addr_rx.recv().expect("receiver started");
        OtlpReceiver {
            grpc,
            http,
            secure,
            store,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// TLS handshakes the receiver failed so far (a client that did not
    /// trust it, or, with mTLS, one without an accepted certificate).
    pub fn tls_failures(&self) -> usize {
        self.store.tls_failures.load(Ordering::Relaxed)
    }

    fn scheme(&self) -> &'static str {
        if self.secure {
            "https"
        } else {
            "http"
        }
    }

    /// `http://127.0.0.1:<port>` of the gRPC server (`https` with TLS).
    pub fn grpc_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.grpc)
    }

    /// `http://127.0.0.1:<port>` of the HTTP server (base, without
    /// `/v1/...`; `https` with TLS).
    pub fn http_endpoint(&self) -> String {
        format!("{}://{}", self.scheme(), self.http)
    }

    /// Makes every export fail (HTTP with `status`, gRPC with UNAVAILABLE)
    /// until [`recover`](Self::recover).
    pub fn fail_with(&self, status: u16) {
        self.store.fail_with.store(status, Ordering::Relaxed);
    }

    /// Answers normally again (no failure, no delay, no `Retry-After`).
    pub fn recover(&self) {
        self.store.fail_with.store(0, Ordering::Relaxed);
        self.store.delay_ms.store(0, Ordering::Relaxed);
        self.store.retry_after.store(0, Ordering::Relaxed);
    }

    /// Sends `Retry-After: <seconds>` with every HTTP failure (see
    /// [`fail_with`](Self::fail_with)); 0 sends none.
    pub fn retry_after(&self, seconds: u64) {
        self.store.retry_after.store(seconds, Ordering::Relaxed);
    }

    /// Refuses requests larger than `bytes` (uncompressed), as a collector
    /// does: HTTP 413, gRPC RESOURCE_EXHAUSTED. 4 MiB unless set.
    pub fn max_request_bytes(&self, bytes: usize) {
        self.store.max_request_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Every export request received so far, answered or refused, in order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.store
            .attempts
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
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

    /// Everything received (every trace, metric and log request, resources
    /// included) as JSON text, one request per line: to search for what
    /// must never be exported.
    pub fn dump_json(&self) -> String {
        fn lines<T: serde::Serialize>(list: &Mutex<Vec<T>>, out: &mut String) {
            if let Ok(list) = list.lock() {
                for item in list.iter() {
                    if let Ok(text) = serde_json::to_string(item) {
                        out.push_str(&text);
                        out.push('\n');
                    }
                }
            }
        }
        let mut out = String::new();
        lines(&self.store.traces, &mut out);
        lines(&self.store.metrics, &mut out);
        lines(&self.store.logs, &mut out);
        out
    }

    /// Every metric received, as sent (data points, temporality,
    /// aggregation), in arrival order.
    pub fn metric_data(&self) -> Vec<opentelemetry_proto::tonic::metrics::v1::Metric> {
        let Ok(metrics) = self.store.metrics.lock() else {
            return Vec::new();
        };
        metrics
            .iter()
            .flat_map(|req| &req.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| sm.metrics.iter().cloned())
            .collect()
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

    /// The data points of the counter or up-down counter `name` in the last
    /// request that carried it: each point's attributes (as strings) and
    /// value.
    pub fn last_sum(&self, name: &str) -> Vec<(Vec<(String, String)>, i64)> {
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
        let Ok(metrics) = self.store.metrics.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for req in metrics.iter() {
            let mut found = Vec::new();
            for m in req
                .resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .filter(|m| m.name == name)
            {
                if let Some(Data::Sum(sum)) = &m.data {
                    for p in &sum.data_points {
                        let attrs = p
                            .attributes
                            .iter()
                            .map(|kv| {
                                (
                                    kv.key.clone(),
                                    attr_string(std::slice::from_ref(kv), &kv.key)
                                        .unwrap_or_default(),
                                )
                            })
                            .collect();
                        let v = match p.value {
                            Some(Value::AsInt(i)) => i,
                            Some(Value::AsDouble(d)) => d as i64,
                            None => 0,
                        };
                        found.push((attrs, v));
                    }
                }
            }
            if !found.is_empty() {
                out = found;
            }
        }
        out
    }

    /// The value of the point of [`last_sum`](Self::last_sum)`(name)` that
    /// has attribute `key` = `value`.
    pub fn last_sum_with(&self, name: &str, key: &str, value: &str) -> Option<i64> {
        self.last_sum(name)
            .into_iter()
            .find(|(attrs, _)| attrs.iter().any(|(k, v)| k == key && v == value))
            .map(|(_, v)| v)
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
    signal: OtlpSignal,
    headers: &http::HeaderMap,
    body: &[u8],
    count: impl Fn(&T) -> usize,
    keep: impl FnOnce(&Store, T),
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let req = decode::<T>(headers, body);
    let items = req.as_ref().map(&count).unwrap_or(0);
    let size = req.as_ref().map(Message::encoded_len).unwrap_or(body.len());
    if size > store.max_request_bytes.load(Ordering::Relaxed) {
        store.attempt(signal, 0, 413);
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    if let Some(status) = store.failing() {
        store.attempt(signal, items, status);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let retry_after = store.retry_after.load(Ordering::Relaxed);
        if retry_after > 0 {
            return (code, [("retry-after", retry_after.to_string())]).into_response();
        }
        return code.into_response();
    }
    match req {
        Some(req) => {
            store.attempt(signal, items, 200);
            keep(store, req);
            StatusCode::OK.into_response()
        }
        None => {
            store.attempt(signal, 0, 400);
            StatusCode::BAD_REQUEST.into_response()
        }
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
                    ingest(
                        &s,
                        OtlpSignal::Traces,
                        &h,
                        &b,
                        span_count,
                        |s, req: ExportTraceServiceRequest| {
                            push(&s.headers, h.clone());
                            push(&s.traces, req);
                        },
                    )
                },
            ),
        )
        .route(
            "/v1/metrics",
            post(
                |State(s): State<Arc<Store>>, h: http::HeaderMap, b: bytes::Bytes| async move {
                    s.pause().await;
                    ingest(
                        &s,
                        OtlpSignal::Metrics,
                        &h,
                        &b,
                        point_count,
                        |s, req: ExportMetricsServiceRequest| push(&s.metrics, req),
                    )
                },
            ),
        )
        .route(
            "/v1/logs",
            post(
                |State(s): State<Arc<Store>>, h: http::HeaderMap, b: bytes::Bytes| async move {
                    s.pause().await;
                    ingest(
                        &s,
                        OtlpSignal::Logs,
                        &h,
                        &b,
                        record_count,
                        |s, req: ExportLogsServiceRequest| push(&s.logs, req),
                    )
                },
            ),
        )
        // The size limit is the receiver's own (checked after decoding, so
        // that gzip bodies are measured as collectors measure them).
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(store)
}
