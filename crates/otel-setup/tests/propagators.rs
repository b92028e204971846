//! OTEL_PROPAGATORS installs what it names (own process: it sets the global
//! propagator).

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use otel_setup::Telemetry;

fn injected(propagators: &str) -> http::HeaderMap {
    let t = Telemetry::builder()
        .env_map([
            ("OTEL_PROPAGATORS", propagators),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ])
        .quiet()
        .install()
        .expect("install");
    let sc = SpanContext::new(
        TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
        SpanId::from(0x00f067aa0ba902b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    let cx = Context::new().with_remote_span_context(sc);
    let mut headers = http::HeaderMap::new();
    otel_propagation::inject_context(&cx, &mut headers);
    t.shutdown();
    headers
}

#[test]
fn g3_each_propagator_writes_its_headers() {
    let h = injected("b3multi");
    assert_eq!(h["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(h.get("traceparent").is_none());

    let h = injected("b3");
    assert_eq!(
        h["b3"],
        "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
    );

    let h = injected("tracecontext,baggage");
    assert_eq!(
        h["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );

    let h = injected("none");
    assert!(h.is_empty(), "{h:?}");
}
