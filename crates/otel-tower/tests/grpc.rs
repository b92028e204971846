//! gRPC over real loopback HTTP/2: `OtelLayer` on a tonic server and
//! `GrpcClientLayer` on a tonic channel, one rule of the RPC conventions per
//! test (see `otel_http_conventions::rpc` and the crate docs).

use axum::routing::get;
use http::Uri;
use inventory_service::pb::inventory_client::InventoryClient;
use inventory_service::pb::inventory_server::{Inventory, InventoryServer};
use inventory_service::pb::{ReserveReply, ReserveRequest, StockLevel, WatchRequest};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    SpanKind, Status as SpanStatus, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue, Value};
use otel_http_conventions::rpc::CALL_DURATION_BUCKETS;
use otel_testkit::{SpanData, SpanDataExt, TestTelemetry};
use otel_tower::{GrpcClientLayer, OtelLayer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_stream::{Stream, StreamExt};
use tonic::{Code, Request, Response, Status, Streaming};
use tower::ServiceBuilder;

const WAIT: Duration = Duration::from_secs(10);
const RESERVE: &str = "inventory.v1.Inventory/Reserve";

/// The test service: the item names the outcome.
/// - `ok`: a reply;
/// - `code:N`: status N, before any message (trailers-only);
/// - `slow:MS`: a reply after MS milliseconds;
/// - Watch `fail-after:N`: N messages, then `DATA_LOSS` in the trailers.
#[derive(Clone, Default)]
struct TestInventory {
    /// The `traceparent` and `baggage` each call arrived with.
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A call's `traceparent` and `baggage`, as the handler saw them.
type Seen = (Option<String>, Option<String>);

fn outcome(item: &str) -> Result<(), Status> {
    match item.split_once(':') {
        Some(("code", n)) => {
            let code = Code::from(n.parse::<i32>().unwrap_or(2));
            Err(Status::new(code, format!("failed with {n}")))
        }
        _ => Ok(()),
    }
}

type LevelStream = Pin<Box<dyn Stream<Item = Result<StockLevel, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for TestInventory {
    async fn reserve(
        &self,
        request: Request<ReserveRequest>,
    ) -> Result<Response<ReserveReply>, Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.seen
            .lock()
            .unwrap()
            .push((header("traceparent"), header("baggage")));
        let item = request.into_inner().item;
        if let Some(ms) = item.strip_prefix("slow:") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        outcome(&item)?;
        let mut response = Response::new(ReserveReply {
            reservation_id: "r-1".into(),
            remaining: 1,
        });
        response
            .metadata_mut()
            .insert("x-served-by", "test-inventory".parse().unwrap());
        Ok(response)
    }

    type WatchStream = LevelStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let WatchRequest { item, updates } = request.into_inner();
        outcome(&item)?;
        let fail_after = item
            .strip_prefix("fail-after:")
            .and_then(|n| n.parse::<u32>().ok());
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            for n in 0..updates {
                if fail_after == Some(n) {
                    let _ = tx.send(Err(Status::data_loss("stock feed broke"))).await;
                    return;
                }
                let level = StockLevel {
                    item: item.clone(),
                    available: n,
                };
                if tx.send(Ok(level)).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn reserve_many(
        &self,
        request: Request<Streaming<ReserveRequest>>,
    ) -> Result<Response<ReserveReply>, Status> {
        let mut lines = request.into_inner();
        let mut count = 0;
        while let Some(line) = lines.next().await {
            outcome(&line?.item)?;
            count += 1;
        }
        Ok(Response::new(ReserveReply {
            reservation_id: "r-many".into(),
            remaining: count,
        }))
    }

    type SyncStream = LevelStream;

    async fn sync(
        &self,
        request: Request<Streaming<ReserveRequest>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        // The first line is read before answering: `slow:MS` delays the
        // answer's head by MS milliseconds.
        let mut lines = request.into_inner();
        let first = lines.next().await.transpose()?;
        if let Some(ms) = first.as_ref().and_then(|l| l.item.strip_prefix("slow:")) {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        let lines = tokio_stream::iter(first.map(Ok)).chain(lines);
        Ok(Response::new(Box::pin(lines.map(|line| {
            let line = line?;
            outcome(&line.item)?;
            Ok(StockLevel {
                item: line.item,
                available: line.quantity,
            })
        }))))
    }
}

struct Fixture {
    telemetry: TestTelemetry,
    service: TestInventory,
    addr: SocketAddr,
}

async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    addr
}

fn server_layer(telemetry: &TestTelemetry) -> otel_tower::OtelLayerBuilder {
    OtelLayer::builder()
        .tracer_provider(telemetry.tracer_provider())
        .meter_provider(telemetry.meter_provider())
        .propagator(otel_propagation::default_propagator())
}

/// The test service behind `layer`, with an axum route beside it.
async fn start_with(layer: impl FnOnce(&TestTelemetry) -> OtelLayer) -> Fixture {
    let telemetry = TestTelemetry::new();
    let service = TestInventory::default();
    let router = tonic::service::Routes::new(InventoryServer::new(service.clone()))
        .into_axum_router()
        .route("/hello", get(|| async { "hello" }))
        .layer(layer(&telemetry));
    let addr = serve(router).await;
    Fixture {
        telemetry,
        service,
        addr,
    }
}

async fn start() -> Fixture {
    start_with(|t| server_layer(t).build()).await
}

type TracedChannel = otel_tower::grpc_client::GrpcClientService<tonic::transport::Channel>;

impl Fixture {
    fn target(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client_layer(&self) -> otel_tower::GrpcClientLayerBuilder {
        GrpcClientLayer::builder(self.target())
            .tracer_provider(self.telemetry.tracer_provider())
            .meter_provider(self.telemetry.meter_provider())
            .propagator(otel_propagation::default_propagator())
    }

    /// A channel connected to the server, not traced.
    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.target())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn client_with(&self, layer: GrpcClientLayer) -> InventoryClient<TracedChannel> {
        let channel = self.channel().await;
        InventoryClient::new(ServiceBuilder::new().layer(layer).service(channel))
    }

    /// Waits (up to [`WAIT`], without blocking the runtime) until `ready`
    /// holds, and panics naming `what` if it never does.
    async fn wait_until(&self, what: &str, mut ready: impl FnMut(&TestTelemetry) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !ready(&self.telemetry) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn client(&self) -> InventoryClient<TracedChannel> {
        self.client_with(self.client_layer().build()).await
    }

    /// Waits for the one span of `kind` named `name`.
    async fn span(&self, kind: SpanKind, name: &str) -> SpanData {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans = self.telemetry.spans();
            let found: Vec<&SpanData> = spans
                .iter()
                .filter(|s| s.span_kind == kind && s.name == name)
                .collect();
            match found.as_slice() {
                [one] => return (*one).clone(),
                [_, _, ..] => panic!("more than one {kind:?} span {name:?}"),
                [] if Instant::now() >= deadline => panic!(
                    "no {kind:?} span {name:?}; spans: {:?}",
                    spans
                        .iter()
                        .map(|s| (&s.span_kind, &s.name))
                        .collect::<Vec<_>>()
                ),
                [] => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    async fn spans(&self, name: &str) -> (SpanData, SpanData) {
        let server = self.span(SpanKind::Server, name).await;
        let client = self.span(SpanKind::Client, name).await;
        (server, client)
    }
}

fn reserve(item: &str) -> ReserveRequest {
    ReserveRequest {
        item: item.into(),
        quantity: 1,
    }
}

fn int(span: &SpanData, key: &str) -> i64 {
    match span.attr(key) {
        Some(Value::I64(n)) => *n,
        other => panic!("{key} is not an int on {:?}: {other:?}", span.name),
    }
}

fn string(span: &SpanData, key: &str) -> String {
    match span.attr(key) {
        Some(Value::String(s)) => s.as_str().to_owned(),
        other => panic!("{key} is not a string on {:?}: {other:?}", span.name),
    }
}

fn is_error(span: &SpanData) -> bool {
    matches!(span.status, SpanStatus::Error { .. })
}

fn description(span: &SpanData) -> String {
    match &span.status {
        SpanStatus::Error { description } => description.to_string(),
        _ => String::new(),
    }
}

fn keys(span: &SpanData) -> Vec<String> {
    let mut k: Vec<String> = span
        .attributes
        .iter()
        .map(|kv| kv.key.to_string())
        .collect();
    k.sort();
    k
}

#[tokio::test]
async fn k1_unary_ok_spans_every_attribute_and_its_type() {
    let f = start().await;
    let mut client = f.client().await;
    client.reserve(reserve("ok")).await.unwrap();
    let (server, client) = f.spans(RESERVE).await;

    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(string(&server, "rpc.system.name"), "grpc");
    assert_eq!(string(&server, "rpc.method"), RESERVE);
    assert_eq!(string(&server, "rpc.response.status_code"), "OK");
    assert_eq!(string(&server, "server.address"), "127.0.0.1");
    assert_eq!(int(&server, "server.port"), i64::from(f.addr.port()));
    assert_eq!(string(&server, "network.peer.address"), "127.0.0.1");
    assert!(int(&server, "network.peer.port") > 0);
    assert_eq!(server.status, SpanStatus::Unset);
    assert_eq!(
        keys(&server),
        [
            "network.peer.address",
            "network.peer.port",
            "rpc.method",
            "rpc.response.status_code",
            "rpc.system.name",
            "server.address",
            "server.port",
        ],
        "no HTTP attribute on a gRPC span"
    );

    assert_eq!(client.span_kind, SpanKind::Client);
    assert_eq!(
        keys(&client),
        [
            "rpc.method",
            "rpc.response.status_code",
            "rpc.system.name",
            "server.address",
            "server.port",
        ]
    );
    assert_eq!(string(&client, "rpc.method"), RESERVE);
    assert_eq!(string(&client, "rpc.response.status_code"), "OK");
    assert_eq!(string(&client, "server.address"), "127.0.0.1");
    assert_eq!(int(&client, "server.port"), i64::from(f.addr.port()));
    assert_eq!(client.status, SpanStatus::Unset);
    otel_testkit::assert_child_of(&server, &client);
    assert!(
        server.events.is_empty() && client.events.is_empty(),
        "no message events"
    );
}

#[tokio::test]
async fn g1_g2_call_durations_have_the_conventions_attributes_and_buckets() {
    let f = start().await;
    let mut client = f.client().await;
    client.reserve(reserve("ok")).await.unwrap();
    let _ = client.reserve(reserve("code:13")).await;
    f.wait_until("4 spans", |t| t.spans().len() >= 4).await;

    let server = f.telemetry.histogram("rpc.server.call.duration");
    let client = f.telemetry.histogram("rpc.client.call.duration");
    assert_eq!(server.len(), 2, "{server:?}");
    assert_eq!(client.len(), 2, "{client:?}");
    for p in server.iter().chain(&client) {
        assert_eq!(p.unit, "s");
        assert_eq!(p.bounds, CALL_DURATION_BUCKETS.to_vec());
        assert_eq!(p.count, 1);
        assert_eq!(p.attr("rpc.system.name"), Some(&Value::from("grpc")));
        assert_eq!(p.attr("rpc.method"), Some(&Value::from(RESERVE)));
    }
    let ok = server
        .iter()
        .find(|p| p.attr("rpc.response.status_code") == Some(&Value::from("OK")))
        .unwrap();
    assert_eq!(
        ok.keys(),
        ["rpc.method", "rpc.response.status_code", "rpc.system.name"]
    );
    let failed = server
        .iter()
        .find(|p| p.attr("rpc.response.status_code") == Some(&Value::from("INTERNAL")))
        .unwrap();
    assert_eq!(failed.attr("error.type"), Some(&Value::from("INTERNAL")));
    let ok = client
        .iter()
        .find(|p| p.attr("rpc.response.status_code") == Some(&Value::from("OK")))
        .unwrap();
    assert_eq!(
        ok.keys(),
        [
            "rpc.method",
            "rpc.response.status_code",
            "rpc.system.name",
            "server.address",
            "server.port"
        ]
    );
    assert_eq!(
        ok.attr("server.port"),
        Some(&Value::I64(i64::from(f.addr.port())))
    );
    assert!(
        f.telemetry
            .histogram("http.server.request.duration")
            .is_empty(),
        "a gRPC call records no HTTP metric"
    );
}

#[tokio::test]
async fn c1_status_classes_on_each_side() {
    // (code, a server error?)
    let cases = [
        (Code::Cancelled, false),
        (Code::Unknown, true),
        (Code::InvalidArgument, false),
        (Code::DeadlineExceeded, true),
        (Code::NotFound, false),
        (Code::PermissionDenied, false),
        (Code::ResourceExhausted, false),
        (Code::FailedPrecondition, false),
        (Code::Unimplemented, true),
        (Code::Internal, true),
        (Code::Unavailable, true),
        (Code::DataLoss, true),
        (Code::Unauthenticated, false),
    ];
    for (code, server_error) in cases {
        let f = start().await;
        let mut client = f.client().await;
        let n = code as i32;
        let status = client
            .reserve(reserve(&format!("code:{n}")))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code);
        let (server, client) = f.spans(RESERVE).await;
        let name = otel_http_conventions::rpc::GrpcCode::from_number(n as u32).name();
        for span in [&server, &client] {
            assert_eq!(string(span, "rpc.response.status_code"), name, "{code:?}");
        }
        assert_eq!(is_error(&server), server_error, "server {code:?}");
        assert_eq!(
            server.attr("error.type").map(|v| v.as_str().into_owned()),
            server_error.then(|| name.to_owned()),
            "server {code:?}"
        );
        if server_error {
            assert_eq!(description(&server), format!("failed with {n}"));
        }
        assert!(is_error(&client), "client {code:?}");
        assert_eq!(string(&client, "error.type"), name);
        assert_eq!(description(&client), format!("failed with {n}"));
        // A known method keeps its name whatever the status.
        assert_eq!(string(&server, "rpc.method"), RESERVE);
    }
}

#[tokio::test]
async fn k4_status_after_messages_is_read_from_the_trailers() {
    let f = start().await;
    let mut client = f.client().await;
    let mut stream = client
        .watch(WatchRequest {
            item: "fail-after:2".into(),
            updates: 5,
        })
        .await
        .unwrap()
        .into_inner();
    let mut received = 0;
    let status = loop {
        match stream.next().await {
            Some(Ok(_)) => received += 1,
            Some(Err(status)) => break status,
            None => panic!("the stream ended without its error"),
        }
    };
    assert_eq!((received, status.code()), (2, Code::DataLoss));
    let (server, client) = f.spans("inventory.v1.Inventory/Watch").await;
    for span in [&server, &client] {
        assert_eq!(string(span, "rpc.response.status_code"), "DATA_LOSS");
        assert_eq!(string(span, "error.type"), "DATA_LOSS");
        assert_eq!(description(span), "stock feed broke");
    }
}

#[tokio::test]
async fn e1_each_streaming_kind_is_one_span_per_call_ending_with_the_stream() {
    let f = start().await;
    let mut client = f.client().await;

    // Server streaming: 4 messages, 5 ms apart.
    let started = Instant::now();
    let mut watch = client
        .watch(WatchRequest {
            item: "ok".into(),
            updates: 4,
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(level) = watch.next().await {
        level.unwrap();
        n += 1;
    }
    let streamed_for = started.elapsed();
    assert_eq!(n, 4);

    // Client streaming: 3 messages in, one out.
    let lines = tokio_stream::iter(vec![reserve("ok"), reserve("ok"), reserve("ok")]);
    let reply = client.reserve_many(lines).await.unwrap().into_inner();
    assert_eq!(reply.remaining, 3);

    // Bidirectional: 3 in, 3 out.
    let lines = tokio_stream::iter(vec![reserve("ok"), reserve("ok"), reserve("ok")]);
    let mut sync = client.sync(lines).await.unwrap().into_inner();
    let mut n = 0;
    while let Some(level) = sync.next().await {
        level.unwrap();
        n += 1;
    }
    assert_eq!(n, 3);

    for method in ["Watch", "ReserveMany", "Sync"] {
        let name = format!("inventory.v1.Inventory/{method}");
        let (server, client) = f.spans(&name).await;
        for span in [&server, &client] {
            assert_eq!(string(span, "rpc.response.status_code"), "OK", "{name}");
            assert!(span.events.is_empty(), "no message events");
        }
        otel_testkit::assert_child_of(&server, &client);
    }
    let (server, client) = f.spans("inventory.v1.Inventory/Watch").await;
    // The span lasts until the stream's end: at least the 15 ms between
    // the 4 messages.
    for span in [&server, &client] {
        let lasted = span.end_time.duration_since(span.start_time).unwrap();
        assert!(lasted >= Duration::from_millis(15), "{lasted:?}");
        assert!(lasted <= streamed_for + Duration::from_millis(50));
    }
    let durations = f.telemetry.histogram("rpc.server.call.duration");
    assert_eq!(durations.len(), 3, "one series per method");
    assert!(durations.iter().all(|p| p.count == 1));
}

#[tokio::test]
async fn e4_a_call_dropped_mid_stream_is_cancelled_on_both_sides() {
    let f = start().await;
    let mut client = f.client().await;
    let mut watch = client
        .watch(WatchRequest {
            item: "ok".into(),
            updates: 1000,
        })
        .await
        .unwrap()
        .into_inner();
    watch.next().await.unwrap().unwrap();
    drop(watch);
    let (server, client) = f.spans("inventory.v1.Inventory/Watch").await;
    assert_eq!(string(&client, "rpc.response.status_code"), "CANCELLED");
    assert_eq!(string(&client, "error.type"), "CANCELLED");
    assert!(is_error(&client));
    assert_eq!(string(&server, "rpc.response.status_code"), "CANCELLED");
    assert!(
        !server.has_attr("error.type"),
        "CANCELLED is the caller's doing"
    );
    assert_eq!(server.status, SpanStatus::Unset);
}

#[tokio::test]
async fn e5_an_expired_deadline_is_deadline_exceeded_on_both_sides() {
    let f = start().await;
    let mut client = f.client().await;
    // The method has answered once: the server believes it is real even
    // when a later call ends before any answer.
    client.reserve(reserve("ok")).await.unwrap();
    let _ = f.spans(RESERVE).await;
    f.telemetry.reset();
    let mut request = Request::new(reserve("slow:5000"));
    request.set_timeout(Duration::from_millis(500));
    let status = client.reserve(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "tonic's own word for it");
    let (server, client) = f.spans(RESERVE).await;
    for span in [&server, &client] {
        assert_eq!(
            string(span, "rpc.response.status_code"),
            "DEADLINE_EXCEEDED"
        );
        assert_eq!(string(span, "error.type"), "DEADLINE_EXCEEDED");
        assert!(is_error(span));
    }
}

/// Calls `path` (a method the server may not have) with an empty message.
async fn call_path(f: &Fixture, layer: GrpcClientLayer, path: &'static str) -> Status {
    let channel = f.channel().await;
    let mut grpc = tonic::client::Grpc::new(ServiceBuilder::new().layer(layer).service(channel));
    grpc.ready().await.unwrap();
    let codec: tonic_prost::ProstCodec<WatchRequest, ReserveReply> =
        tonic_prost::ProstCodec::default();
    grpc.unary(
        Request::new(WatchRequest::default()),
        http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn d1_d2_unknown_methods_are_other_named_grpc() {
    for told_services in [false, true] {
        let f = start_with(|t| {
            let b = server_layer(t);
            if told_services {
                b.grpc_services([inventory_service::SERVICE]).build()
            } else {
                b.build()
            }
        })
        .await;
        for path in ["/inventory.v1.Inventory/Nope", "/nope.v1.Nope/Reserve"] {
            f.telemetry.reset();
            let status = call_path(&f, f.client_layer().build(), path).await;
            assert_eq!(status.code(), Code::Unimplemented);
            let server = f.span(SpanKind::Server, "grpc").await;
            assert_eq!(string(&server, "rpc.method"), "_OTHER", "{path}");
            assert_eq!(string(&server, "rpc.method_original"), &path[1..]);
            assert_eq!(string(&server, "rpc.response.status_code"), "UNIMPLEMENTED");
            assert!(is_error(&server));
            assert_eq!(
                server
                    .attributes
                    .iter()
                    .filter(|kv| kv.key.as_str() == "rpc.method")
                    .count(),
                1,
                "rpc.method is set once"
            );
            let client = f.span(SpanKind::Client, &path[1..]).await;
            assert!(is_error(&client));
        }
    }
}

#[tokio::test]
async fn d1_made_up_methods_create_one_metric_series() {
    let f = start().await;
    // No client layer: only the server's series are counted.
    let mut grpc = tonic::client::Grpc::new(f.channel().await);
    for n in 0..200 {
        grpc.ready().await.unwrap();
        let codec: tonic_prost::ProstCodec<WatchRequest, ReserveReply> =
            tonic_prost::ProstCodec::default();
        let path: http::uri::PathAndQuery =
            format!("/made.up{n}.Service/Method{n}").parse().unwrap();
        let _ = grpc
            .unary(Request::new(WatchRequest::default()), path, codec)
            .await;
    }
    let calls = |t: &TestTelemetry| {
        t.histogram("rpc.server.call.duration")
            .iter()
            .map(|p| p.count)
            .sum::<u64>()
    };
    f.wait_until("200 calls recorded", |t| calls(t) == 200)
        .await;
    let points = f.telemetry.histogram("rpc.server.call.duration");
    assert_eq!(points.len(), 1, "{} series", points.len());
    assert_eq!(points[0].attr("rpc.method"), Some(&Value::from("_OTHER")));
    assert_eq!(points[0].count, 200);
    let spans = f.telemetry.spans();
    assert!(
        spans.iter().all(|s| s.name == "grpc"),
        "no made-up span name"
    );
}

#[tokio::test]
async fn k8_context_and_baggage_cross_in_the_metadata() {
    let f = start().await;
    let mut client = f.client().await;
    let tracer = f.telemetry.tracer_provider().tracer("test");
    let parent = tracer.start("parent");
    let cx = Context::current_with_span(parent).with_baggage([KeyValue::new("tenant", "acme")]);
    {
        let _guard = cx.clone().attach();
        client.reserve(reserve("ok")).await.unwrap();
    }
    cx.span().end();
    let (server, client) = f.spans(RESERVE).await;
    let parent = f.telemetry.span("parent");
    otel_testkit::assert_child_of(&client, &parent);
    otel_testkit::assert_child_of(&server, &client);
    let seen = f.service.seen.lock().unwrap().clone();
    let (traceparent, baggage) = &seen[0];
    assert!(traceparent
        .as_deref()
        .is_some_and(|t| t.contains(&client.span_id().to_string())));
    assert_eq!(baggage.as_deref(), Some("tenant=acme"));
}

#[tokio::test]
async fn k8_propagate_to_keeps_the_context_from_targets_not_allowed() {
    let f = start().await;
    let layer = f
        .client_layer()
        .propagate_to(|uri: &Uri| uri.host() == Some("inventory.internal"))
        .build();
    let mut client = f.client_with(layer).await;
    client.reserve(reserve("ok")).await.unwrap();
    let (server, client) = f.spans(RESERVE).await;
    assert_eq!(f.service.seen.lock().unwrap()[0], (None, None));
    assert_ne!(
        server.trace_id(),
        client.trace_id(),
        "the server starts its own trace"
    );
}

#[tokio::test]
async fn k8_a_malformed_traceparent_starts_a_new_trace() {
    let f = start().await;
    let mut client = InventoryClient::new(f.channel().await);
    let mut request = Request::new(reserve("ok"));
    request
        .metadata_mut()
        .insert("traceparent", "00-xyz-0000000000000001-01".parse().unwrap());
    client.reserve(request).await.unwrap();
    let server = f.span(SpanKind::Server, RESERVE).await;
    assert_eq!(server.parent_span_id, opentelemetry::trace::SpanId::INVALID);
}

#[tokio::test]
async fn k9_one_layer_serves_http_routes_beside_grpc_and_grpc_web_stays_http() {
    let f = start().await;
    let http = reqwest::Client::new();
    let hello = http
        .get(format!("http://{}/hello", f.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(hello.status(), 200);
    let span = f.span(SpanKind::Server, "GET /hello").await;
    assert_eq!(string(&span, "http.request.method"), "GET");
    assert!(!span.has_attr("rpc.system.name"));

    let _ = http
        .post(format!("http://{}/{RESERVE}", f.addr))
        .header("content-type", "application/grpc-web+proto")
        .body(vec![0u8; 5])
        .send()
        .await
        .unwrap();
    let is_post = |s: &SpanData| {
        s.attr("http.request.method")
            .is_some_and(|m| m.as_str() == "POST")
    };
    f.wait_until("the gRPC-Web span", |t| t.spans().iter().any(is_post))
        .await;
    let web = f.telemetry.spans().into_iter().find(is_post).unwrap();
    assert!(
        !web.has_attr("rpc.system.name"),
        "gRPC-Web is recorded as HTTP"
    );
}

#[tokio::test]
async fn c4_a_client_answered_503_without_grpc_status_records_unavailable() {
    let telemetry = TestTelemetry::new();
    let router = axum::Router::new()
        .fallback(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "maintenance") });
    let addr = serve(router).await;
    let f = Fixture {
        telemetry,
        service: TestInventory::default(),
        addr,
    };
    let mut client = f.client().await;
    // tonic reports its own reading of the body; the span follows gRPC's
    // HTTP-to-gRPC status mapping.
    client.reserve(reserve("ok")).await.unwrap_err();
    let span = f.span(SpanKind::Client, RESERVE).await;
    assert_eq!(string(&span, "rpc.response.status_code"), "UNAVAILABLE");
    assert_eq!(string(&span, "error.type"), "UNAVAILABLE");
}

#[tokio::test]
async fn c4_a_refused_connection_records_unavailable_and_the_error() {
    let telemetry = TestTelemetry::new();
    // A port with nothing listening: bound, then closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let f = Fixture {
        telemetry,
        service: TestInventory::default(),
        addr,
    };
    let channel = tonic::transport::Endpoint::from_shared(f.target())
        .unwrap()
        .connect_lazy();
    let mut client = InventoryClient::new(
        ServiceBuilder::new()
            .layer(f.client_layer().build())
            .service(channel),
    );
    let status = client.reserve(reserve("ok")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let span = f.span(SpanKind::Client, RESERVE).await;
    assert_eq!(string(&span, "rpc.response.status_code"), "UNAVAILABLE");
    assert_eq!(string(&span, "error.type"), "UNAVAILABLE");
    assert!(span.events.iter().any(|e| e.name == "exception"));
    let points = f.telemetry.histogram("rpc.client.call.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(
        points[0].attr("error.type"),
        Some(&Value::from("UNAVAILABLE"))
    );
}

#[tokio::test]
async fn g3_unsampled_calls_record_durations_and_no_span() {
    let telemetry = TestTelemetry::with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
    let service = TestInventory::default();
    let router = tonic::service::Routes::new(InventoryServer::new(service.clone()))
        .into_axum_router()
        .layer(server_layer(&telemetry).build());
    let addr = serve(router).await;
    let f = Fixture {
        telemetry,
        service,
        addr,
    };
    let mut client = f.client().await;
    client.reserve(reserve("ok")).await.unwrap();
    f.wait_until("the server's duration", |t| {
        !t.histogram("rpc.server.call.duration").is_empty()
    })
    .await;
    assert_eq!(f.telemetry.histogram("rpc.client.call.duration").len(), 1);
    assert!(f.telemetry.spans().is_empty());
    // The context still crosses, unsampled.
    let seen = f.service.seen.lock().unwrap().clone();
    let flags = seen[0]
        .0
        .as_deref()
        .and_then(|t| t.rsplit('-').next())
        .unwrap();
    let flags = u8::from_str_radix(flags, 16).unwrap();
    assert_eq!(flags & 1, 0, "sent as not sampled");
}

#[tokio::test]
async fn c1_status_classes_in_each_streaming_kind() {
    let f = start().await;
    let mut client = f.client().await;

    // Server streaming, failed before any message (trailers-only):
    // a client error class, so unset on the server.
    let status = client
        .watch(WatchRequest {
            item: "code:5".into(),
            updates: 3,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Client streaming, a server error after one message in.
    let lines = tokio_stream::iter(vec![reserve("ok"), reserve("code:13")]);
    let status = client.reserve_many(lines).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal);

    // Bidirectional: one answer, then a client error class in the trailers.
    let lines = tokio_stream::iter(vec![reserve("ok"), reserve("code:9")]);
    let mut sync = client.sync(lines).await.unwrap().into_inner();
    let mut answers = 0;
    let status = loop {
        match sync.next().await {
            Some(Ok(_)) => answers += 1,
            Some(Err(status)) => break status,
            None => panic!("the stream ended without its error"),
        }
    };
    assert_eq!((answers, status.code()), (1, Code::FailedPrecondition));

    for (method, code, server_error) in [
        ("Watch", "NOT_FOUND", false),
        ("ReserveMany", "INTERNAL", true),
        ("Sync", "FAILED_PRECONDITION", false),
    ] {
        let name = format!("inventory.v1.Inventory/{method}");
        let (server, client) = f.spans(&name).await;
        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(client.span_kind, SpanKind::Client);
        for span in [&server, &client] {
            assert_eq!(string(span, "rpc.system.name"), "grpc");
            assert_eq!(string(span, "rpc.method"), name);
            assert_eq!(string(span, "rpc.response.status_code"), code, "{name}");
        }
        assert_eq!(is_error(&server), server_error, "{name}");
        assert_eq!(server.has_attr("error.type"), server_error, "{name}");
        assert!(is_error(&client), "{name}");
        assert_eq!(string(&client, "error.type"), code);
        otel_testkit::assert_child_of(&server, &client);
    }
}

#[tokio::test]
async fn f1_metadata_is_captured_only_when_named_and_never_binary() {
    let f = start_with(|t| {
        server_layer(t)
            .capture_request_headers(["x-tenant", "x-blob-bin"])
            .capture_response_headers(["x-served-by"])
            .build()
    })
    .await;
    let layer = f
        .client_layer()
        .capture_request_metadata(["X-Tenant"])
        .capture_response_metadata(["x-served-by"])
        .build();
    let mut client = f.client_with(layer).await;
    let mut request = Request::new(reserve("ok"));
    request
        .metadata_mut()
        .insert("x-tenant", "acme".parse().unwrap());
    request
        .metadata_mut()
        .insert("x-other", "secret".parse().unwrap());
    request.metadata_mut().insert_bin(
        "x-blob-bin",
        tonic::metadata::MetadataValue::from_bytes(b"\x00\x01"),
    );
    client.reserve(request).await.unwrap();
    let (server, client) = f.spans(RESERVE).await;
    let array = |span: &SpanData, key: &str| span.attr(key).map(|v| v.to_string());
    for span in [&server, &client] {
        assert_eq!(
            array(span, "rpc.request.metadata.x-tenant").as_deref(),
            Some(r#"["acme"]"#)
        );
        assert_eq!(
            array(span, "rpc.response.metadata.x-served-by").as_deref(),
            Some(r#"["test-inventory"]"#)
        );
        assert!(
            !span.attributes.iter().any(|kv| {
                let k = kv.key.as_str();
                k.starts_with("http.") || k.ends_with("-bin") || k.ends_with("x-other")
            }),
            "only the named text keys, as RPC metadata: {:?}",
            span.attributes
        );
    }
}

#[tokio::test]
async fn e4_e5_cancel_and_deadline_in_each_streaming_kind() {
    let f = start().await;
    let mut client = f.client().await;
    // Each method answers once first: the server then knows it is real
    // even for calls that end before any answer.
    let one = || tokio_stream::iter(vec![reserve("ok")]);
    client.reserve_many(one()).await.unwrap();
    let mut sync = client.sync(one()).await.unwrap().into_inner();
    while sync.next().await.is_some() {}
    let mut watch = client
        .watch(WatchRequest {
            item: "ok".into(),
            updates: 1,
        })
        .await
        .unwrap()
        .into_inner();
    while watch.next().await.is_some() {}
    f.wait_until("the first calls' spans", |t| t.spans().len() >= 6)
        .await;
    f.telemetry.reset();

    // Client streaming, cancelled: one message sent, the stream left open,
    // the call dropped before any answer.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(reserve("ok")).await.unwrap();
    let lines = tokio_stream::wrappers::ReceiverStream::new(rx);
    let call = client.reserve_many(lines);
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());

    // Bidirectional, cancelled while the server is still working on its
    // answer (dropping only the answer stream of an open bidirectional call
    // cancels nothing: the request half is still open).
    let (tx2, rx2) = tokio::sync::mpsc::channel(1);
    tx2.send(reserve("slow:5000")).await.unwrap();
    let call = client.sync(tokio_stream::wrappers::ReceiverStream::new(rx2));
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());

    // Server streaming, given up once its deadline has passed.
    let mut request = Request::new(WatchRequest {
        item: "ok".into(),
        updates: 1000,
    });
    request.set_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let mut watch = client.watch(request).await.unwrap().into_inner();
    while started.elapsed() < Duration::from_millis(600) {
        watch.next().await.unwrap().unwrap();
    }
    drop(watch);

    for (method, code) in [
        ("ReserveMany", "CANCELLED"),
        ("Sync", "CANCELLED"),
        ("Watch", "DEADLINE_EXCEEDED"),
    ] {
        let name = format!("inventory.v1.Inventory/{method}");
        let (server, client) = f.spans(&name).await;
        for span in [&server, &client] {
            assert_eq!(string(span, "rpc.response.status_code"), code, "{name}");
            assert_eq!(string(span, "rpc.method"), name);
        }
        assert!(is_error(&client), "{name}");
        assert_eq!(string(&client, "error.type"), code);
        assert_eq!(
            server
                .attributes
                .iter()
                .filter(|kv| kv.key.as_str() == "rpc.method")
                .count(),
            1,
            "a confirmed method's rpc.method is set once, at the start"
        );
        let server_error = code == "DEADLINE_EXCEEDED";
        assert_eq!(is_error(&server), server_error, "{name}");
        assert_eq!(server.has_attr("error.type"), server_error, "{name}");
    }
    drop((tx, tx2));
}

#[tokio::test]
async fn b4_server_address_comes_from_the_target_never_the_socket() {
    let f = start().await;
    // The layer is told a name; the channel reaches 127.0.0.1.
    let layer = GrpcClientLayer::builder(format!("http://localhost:{}", f.addr.port()))
        .tracer_provider(f.telemetry.tracer_provider())
        .meter_provider(f.telemetry.meter_provider())
        .build();
    let mut client = f.client_with(layer).await;
    client.reserve(reserve("ok")).await.unwrap();
    let span = f.span(SpanKind::Client, RESERVE).await;
    assert_eq!(string(&span, "server.address"), "localhost");
    assert_eq!(int(&span, "server.port"), i64::from(f.addr.port()));
    assert!(!span.has_attr("network.peer.address"));
    let points = f.telemetry.histogram("rpc.client.call.duration");
    assert_eq!(
        points[0].attr("server.address"),
        Some(&Value::from("localhost"))
    );
}
