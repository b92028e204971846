//! The layer with no propagator given reads the global one: installed with
//! `opentelemetry::global`, or with `otel_propagation::set_global_default`
//! (as otel-setup installs it), which the layer reads from the request
//! directly and which gives way to a propagator installed later. A file of
//! its own: these tests replace the process-wide propagator, which the other
//! propagation tests must not see change under them.

mod common;

use common::*;
use otel_testkit::{SpanDataExt, TestTelemetry};

/// An app whose layer was given no propagator, and its address.
async fn app_with_global_propagator(t: &TestTelemetry) -> std::net::SocketAddr {
    let app = routes(t).layer(
        otel_tower::OtelLayer::builder()
            .tracer_provider(t.tracer_provider())
            .meter_provider(t.meter_provider())
            .build(),
    );
    serve(app).await
}

/// Sends a request from the calling service's span; returns the trace id
/// of the server span it caused.
async fn traced_request(t: &TestTelemetry, addr: std::net::SocketAddr) -> String {
    let tp = format!("00-{TRACE}-{PARENT}-01");
    get_with(addr, "/users/1", &[("traceparent", &tp)]).await;
    server_span(t).trace_id().to_string()
}

// One test: its steps replace the process-wide propagator one after the
// other, which tests running side by side would see change under them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_propagator_is_used_by_default_and_followed_when_replaced() {
    // Installed through the API...
    opentelemetry::global::set_text_map_propagator(otel_propagation::default_propagator());
    let t = TestTelemetry::new();
    let addr = app_with_global_propagator(&t).await;
    assert_eq!(traced_request(&t, addr).await, TRACE);

    // ...as otel-setup installs it, read from the headers directly...
    otel_propagation::set_global_default();
    t.reset();
    let addr = app_with_global_propagator(&t).await;
    assert_eq!(traced_request(&t, addr).await, TRACE);

    // ...and a propagator installed later, here one that reads nothing,
    // takes over for the layer already built.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry::propagation::TextMapCompositePropagator::new(Vec::new()),
    );
    t.reset();
    assert_ne!(traced_request(&t, addr).await, TRACE);
    assert_eq!(
        server_span(&t).parent_span_id,
        opentelemetry::trace::SpanId::INVALID
    );
}
