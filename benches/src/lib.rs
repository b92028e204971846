//! The variants the benchmarks compare, built the same way for every
//! binary: one axum app, one SDK pipeline, one exporter.
//!
//! Every instrumented variant uses an AlwaysOn (or, for `*not_sampled`,
//! AlwaysOff) sampler, a batch span processor with a discarding exporter,
//! and a meter provider with an hourly reader, all installed as the
//! globals, with otel-web's W3C propagators.

use axum::routing::get;
use axum::Router;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

pub mod floor;
pub mod grpc;

pub use grpc::{grpc_app, grpc_request, GRPC_VARIANTS};

/// With the `mimalloc` feature every bench binary allocates with mimalloc:
/// a second allocator, to tell work saved or added from the system
/// allocator's arithmetic (which of its paths an allocation pattern takes).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Server variants: the same app, bare or behind one instrumentation.
pub const SERVER_VARIANTS: [&str; 12] = [
    "bare",
    "identity_layer",
    "otel_filtered_out",
    "otel_sampled",
    "otel_not_sampled",
    "otel_metrics_only",
    "otel_not_sampled_no_metrics",
    "tower_http_trace",
    "axum_tracing_opentelemetry",
    "instrumentation_tower",
    "floor_sampled",
    "floor_not_sampled",
];

/// Client variants: the same reqwest-middleware client, bare or with one
/// instrumentation.
pub const CLIENT_VARIANTS: [&str; 4] = [
    "client_bare",
    "client_otel_sampled",
    "client_otel_not_sampled",
    "client_reqwest_tracing",
];

/// The app every server variant wraps: one route with a path parameter.
pub fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "alice" }))
}

/// The request path every run sends.
pub const PATH: &str = "/users/42?x=1";

/// A sampled caller's `traceparent`, sent with every request.
pub const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The SDK pipeline, installed as the globals, with the batch processor's
/// default queue (2,048 spans).
pub fn providers(variant: &str) -> (SdkTracerProvider, SdkMeterProvider) {
    providers_with_queue(variant, 2048)
}

/// [`providers`] with room for `queue` spans in the batch processor.
pub fn providers_with_queue(variant: &str, queue: usize) -> (SdkTracerProvider, SdkMeterProvider) {
    let sampler = if variant.contains("not_sampled") {
        Sampler::AlwaysOff
    } else {
        Sampler::AlwaysOn
    };
    let tracer = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(
            BatchSpanProcessor::builder(otel_testkit::DiscardSpanExporter)
                .with_batch_config(
                    BatchConfigBuilder::default()
                        .with_max_queue_size(queue)
                        .build(),
                )
                .build(),
        )
        .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    // As otel-setup installs it.
    opentelemetry::global::set_tracer_provider(
        otel_http_conventions::InstalledTracerProvider::new(tracer.clone()),
    );
    opentelemetry::global::set_meter_provider(meter.clone());
    // As otel-setup installs it for the default `OTEL_PROPAGATORS`.
    otel_propagation::set_global_default();
    (tracer, meter)
}

/// tracing-opentelemetry over the same tracer, as the global subscriber.
pub(crate) fn tracing_bridge(tracer: &SdkTracerProvider) {
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.tracer("bench")));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The app of a server variant; `None` for an unknown name.
pub fn server_app(variant: &str, tracer: &SdkTracerProvider) -> Option<Router> {
    let app = match variant {
        "bare" => router(),
        "otel_sampled" | "otel_not_sampled" => router().layer(otel_tower::OtelLayer::new()),
        "otel_not_sampled_no_metrics" => router().layer(
            otel_tower::OtelLayer::builder()
                .meter_provider(&opentelemetry::metrics::noop::NoopMeterProvider::new())
                .build(),
        ),
        // A layer that does nothing: what axum's `Router::layer` itself
        // costs per request (each route wrapped and boxed again).
        "identity_layer" => router().layer(tower::layer::util::Identity::new()),
        // The layer with every request filtered out: what wrapping the
        // service, its future and its body costs before any telemetry.
        "otel_filtered_out" => {
            router().layer(otel_tower::OtelLayer::builder().filter(|_| false).build())
        }
        "otel_metrics_only" => router().layer(
            otel_tower::OtelLayer::builder()
                .tracer_provider(&opentelemetry::trace::noop::NoopTracerProvider::new())
                .build(),
        ),
        "tower_http_trace" => {
            tracing_bridge(tracer);
            router().layer(tower_http::trace::TraceLayer::new_for_http())
        }
        "axum_tracing_opentelemetry" => {
            tracing_bridge(tracer);
            router().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        }
        "instrumentation_tower" => {
            router().layer(opentelemetry_instrumentation_tower::http::server::Layer::new())
        }
        // The least an OpenTelemetry-native layer does (see `floor`).
        "floor_sampled" => router().layer(floor::FloorLayer::new(tracer, true)),
        "floor_not_sampled" => router().layer(floor::FloorLayer::new(tracer, false)),
        _ => return None,
    };
    // What `axum::serve` does with a router before its first request: every
    // handler and every layer turned into a `Route` once. A `Router` called
    // without it converts its handlers (and applies its layers) again on each
    // request, a cost no served app pays.
    Some(app.with_state(()))
}

/// What reqwest-tracing's `opentelemetry_*` features add to its middleware:
/// the current span's context injected by the global propagator. Its
/// newest feature targets OpenTelemetry 0.32, so for the same pipeline as
/// the other variants this does the same on 0.33, as a middleware running
/// inside reqwest-tracing's span (one more middleware call than the
/// feature's inline code).
struct InjectCurrentSpan;

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for InjectCurrentSpan {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = tracing::Span::current().context();
        otel_propagation::inject_context(&cx, req.headers_mut());
        next.run(req, extensions).await
    }
}

/// The client of a client variant; `None` for an unknown name.
pub fn client(variant: &str, tracer: &SdkTracerProvider) -> Option<ClientWithMiddleware> {
    let builder = ClientBuilder::new(reqwest::Client::new());
    let client = match variant {
        "client_bare" => builder.build(),
        "client_otel_sampled" | "client_otel_not_sampled" => {
            builder.with(otel_reqwest::OtelMiddleware::new()).build()
        }
        "client_reqwest_tracing" => {
            tracing_bridge(tracer);
            builder
                .with(reqwest_tracing::TracingMiddleware::default())
                .with(InjectCurrentSpan)
                .build()
        }
        _ => return None,
    };
    Some(client)
}

/// The request every in-process server run sends.
pub fn request() -> Option<http::Request<axum::body::Body>> {
    http::Request::get(PATH)
        .header("host", "127.0.0.1:8080")
        .header("user-agent", "bench")
        .header("traceparent", TRACEPARENT)
        .body(axum::body::Body::empty())
        .ok()
}

/// This process's resident set size in KiB, from `/proc/self/status`.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A current-thread tokio runtime with I/O and time.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Serves `app` on 127.0.0.1 (a free port) and sends it `n` GET requests
/// with `client`, with a sampled `traceparent` if `traceparent` is set.
/// Returns how many got a response with its whole body.
pub async fn call_over_loopback(
    app: Router,
    client: &ClientWithMiddleware,
    n: usize,
    traceparent: bool,
) -> usize {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bind: {e}");
            return 0;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        return 0;
    };
    tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}{PATH}");
    let mut ok = 0usize;
    for _ in 0..n {
        let mut req = client.get(&url);
        if traceparent {
            req = req.header("traceparent", TRACEPARENT);
        }
        if let Ok(resp) = req.send().await {
            if resp.bytes().await.is_ok() {
                ok += 1;
            }
        }
    }
    ok
}
