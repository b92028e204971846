//! The middleware's added cost per request: the same reqwest client against
//! the same axum server on 127.0.0.1, bare (through reqwest-middleware with
//! no middleware) and with `OtelMiddleware` sampled, not sampled, and with a
//! no-op tracer (metrics only). Loopback time dominates; read the difference.
//! The SDK providers are wrapped in `InstalledTracerProvider`, as otel-setup
//! installs them.

use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::trace::noop::NoopTracerProvider;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider};
use otel_http_conventions::InstalledTracerProvider;
use otel_reqwest::OtelMiddleware;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};

fn tracer(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_span_processor(BatchSpanProcessor::builder(otel_testkit::DiscardSpanExporter).build())
        .build()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let addr = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().route("/users/{id}", get(|| async { "alice" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let url = format!("http://{addr}/users/42?x=1");
    let meters = SdkMeterProvider::builder()
        .with_reader(
            PeriodicReader::builder(InMemoryMetricExporter::default())
                .with_interval(std::time::Duration::from_secs(3600))
                .build(),
        )
        .build();
    let sampled = tracer(Sampler::AlwaysOn);
    let unsampled = tracer(Sampler::AlwaysOff);
    let with = |mw: OtelMiddleware| ClientBuilder::new(reqwest::Client::new()).with(mw).build();
    let build = |b: otel_reqwest::OtelMiddlewareBuilder| {
        b.meter_provider(&meters)
            .propagator(otel_propagation::default_propagator())
            .build()
    };
    let variants: Vec<(&str, ClientWithMiddleware)> = vec![
        ("bare", ClientBuilder::new(reqwest::Client::new()).build()),
        (
            "sampled",
            with(build(OtelMiddleware::builder().tracer_provider(
                &InstalledTracerProvider::new(sampled.clone()),
            ))),
        ),
        (
            "not_sampled",
            with(build(OtelMiddleware::builder().tracer_provider(
                &InstalledTracerProvider::new(unsampled.clone()),
            ))),
        ),
        (
            "metrics_only",
            with(build(
                OtelMiddleware::builder().tracer_provider(&NoopTracerProvider::new()),
            )),
        ),
    ];
    let mut group = c.benchmark_group("otel_reqwest_middleware");
    for (name, client) in variants {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let resp = client.get(url).send().await.expect("response");
                    std::hint::black_box(resp.bytes().await.expect("body"));
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
