//! Runs N in-process requests through one variant of the same axum app, for
//! `valgrind --tool=callgrind` to count instructions (see `benches/icount.sh`,
//! which runs two request counts and reports the difference per request).
//!
//! `icount <variant> <requests>`; variants: bare, otel_sampled,
//! otel_not_sampled, otel_metrics_only, tower_http_trace,
//! axum_tracing_opentelemetry, instrumentation_tower.
//!
//! Every instrumented variant uses the same SDK pipeline: an AlwaysOn (or
//! AlwaysOff) sampler, a batch span processor with a discarding exporter,
//! and a meter provider with an hourly reader; providers are shut down (and
//! so exported) before exit, inside the measurement.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use std::process::ExitCode;
use std::time::Duration;
use tower::ServiceExt;
use tracing_subscriber::layer::SubscriberExt;

const VARIANTS: [&str; 7] = [
    "bare",
    "otel_sampled",
    "otel_not_sampled",
    "otel_metrics_only",
    "tower_http_trace",
    "axum_tracing_opentelemetry",
    "instrumentation_tower",
];

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "alice" }))
}

fn providers(sampler: Sampler) -> (SdkTracerProvider, SdkMeterProvider) {
    let tracer = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(BatchSpanProcessor::builder(otel_testkit::DiscardSpanExporter).build())
        .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(Duration::from_secs(3600))
                .build(),
        )
        .build();
    opentelemetry::global::set_tracer_provider(tracer.clone());
    opentelemetry::global::set_meter_provider(meter.clone());
    opentelemetry::global::set_text_map_propagator(otel_propagation::default_propagator());
    (tracer, meter)
}

fn tracing_bridge(tracer: &SdkTracerProvider) {
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer.tracer("bench")));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(variant), Some(n)) = (
        args.next(),
        args.next().and_then(|n| n.parse::<usize>().ok()),
    ) else {
        eprintln!("usage: icount <{}> <requests>", VARIANTS.join("|"));
        return ExitCode::from(2);
    };
    let sampler = if variant == "otel_not_sampled" {
        Sampler::AlwaysOff
    } else {
        Sampler::AlwaysOn
    };
    let (tracer, meter) = providers(sampler);
    let app = match variant.as_str() {
        "bare" => router(),
        "otel_sampled" | "otel_not_sampled" => router().layer(otel_tower::OtelLayer::new()),
        "otel_metrics_only" => router().layer(
            otel_tower::OtelLayer::builder()
                .tracer_provider(&opentelemetry::trace::noop::NoopTracerProvider::new())
                .build(),
        ),
        "tower_http_trace" => {
            tracing_bridge(&tracer);
            router().layer(tower_http::trace::TraceLayer::new_for_http())
        }
        "axum_tracing_opentelemetry" => {
            tracing_bridge(&tracer);
            router().layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        }
        "instrumentation_tower" => {
            router().layer(opentelemetry_instrumentation_tower::http::server::Layer::new())
        }
        other => {
            eprintln!("unknown variant {other:?}; one of {}", VARIANTS.join(", "));
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ok = rt.block_on(async {
        let mut ok = 0usize;
        for _ in 0..n {
            let req = http::Request::get("/users/42?x=1")
                .header("host", "127.0.0.1:8080")
                .header("user-agent", "bench")
                .header(
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                )
                .body(Body::empty());
            let Ok(req) = req else { continue };
            let resp = match app.clone().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            if resp.into_body().collect().await.is_ok() {
                ok += 1;
            }
        }
        ok
    });
    let _ = tracer.shutdown();
    let _ = meter.shutdown();
    if ok == n {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} of {n} requests failed", n - ok);
        ExitCode::from(1)
    }
}
