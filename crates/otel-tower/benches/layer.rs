//! The layer's added cost per request, in process (no network): a bare axum
//! router against the same router with `OtelLayer` sampled, not sampled, and
//! with metrics only (a no-op tracer).
//!
//! Spans go to a batch processor with a discarding exporter, the pipeline a
//! production service runs. The providers and propagator are set up as
//! otel-setup sets them up: the tracer provider wrapped in
//! `InstalledTracerProvider`, the W3C propagators installed with
//! `set_global_default`.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::noop::NoopTracerProvider;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use otel_http_conventions::InstalledTracerProvider;
use otel_tower::OtelLayer;
use tower::{Service, ServiceExt};

fn router() -> Router {
    Router::new().route("/users/{id}", get(|| async { "alice" }))
}

fn tracer(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(BatchSpanProcessor::builder(otel_testkit::DiscardSpanExporter).build())
        .build()
}

fn meter() -> SdkMeterProvider {
    SdkMeterProvider::builder()
        // Aggregation is what costs per request; export is hourly.
        .with_reader(
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(std::time::Duration::from_secs(3600))
                .build(),
        )
        .build()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sampled = tracer(Sampler::AlwaysOn);
    let unsampled = tracer(Sampler::AlwaysOff);
    let meters = meter();
    otel_propagation::set_global_default();

    let variants: Vec<(&str, Router)> = vec![
        ("bare", router()),
        (
            "sampled",
            router().layer(
                OtelLayer::builder()
                    .tracer_provider(&InstalledTracerProvider::new(sampled.clone()))
                    .meter_provider(&meters)
                    .build(),
            ),
        ),
        (
            "not_sampled",
            router().layer(
                OtelLayer::builder()
                    .tracer_provider(&InstalledTracerProvider::new(unsampled.clone()))
                    .meter_provider(&meters)
                    .build(),
            ),
        ),
        (
            "metrics_only",
            router().layer(
                OtelLayer::builder()
                    .tracer_provider(&NoopTracerProvider::new())
                    .meter_provider(&meters)
                    .build(),
            ),
        ),
    ];

    let mut group = c.benchmark_group("otel_tower_layer");
    for (name, app) in variants {
        // As `axum::serve` prepares a router before its first request: its
        // handlers and layers turned into routes once, not on every call.
        let app = app.with_state(());
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut app = app.clone();
                async move {
                    let req = Request::get("/users/42?x=1")
                        .header("host", "127.0.0.1:8080")
                        .header("user-agent", "bench")
                        .header(
                            "traceparent",
                            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                        )
                        .body(Body::empty())
                        .expect("request");
                    let resp = app
                        .as_service()
                        .ready()
                        .await
                        .expect("ready")
                        .call(req)
                        .await
                        .expect("infallible");
                    let body = resp.into_body().collect().await.expect("body");
                    std::hint::black_box(body);
                }
            })
        });
    }
    group.finish();
    let _ = sampled.shutdown();
    let _ = unsampled.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
