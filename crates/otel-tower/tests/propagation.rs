//! Section F over real HTTP: the caller's context parents the server span,
//! baggage reaches the handler and never the next request, public endpoints
//! link instead of adopting, and malformed headers start a new trace.

mod common;

use common::*;
use opentelemetry::trace::TraceId;
use otel_testkit::{SpanDataExt, TestTelemetry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_traceparent_parents_the_server_span() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    get_with(addr, "/users/1", &[("traceparent", &tp)]).await;
    let span = server_span(&t);
    assert_eq!(span.trace_id().to_string(), TRACE);
    assert_eq!(span.parent_span_id.to_string(), PARENT);
    assert!(span.parent_span_is_remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_random_flag_reaches_the_handler_context() {
    let t = TestTelemetry::new();
    let app = routes(&t).route(
        "/flags",
        axum::routing::get(|| async {
            use opentelemetry::trace::TraceContextExt;
            let cx = opentelemetry::Context::current();
            let flags = cx.span().span_context().trace_flags().to_u8();
            format!("{flags:02x}")
        }),
    );
    let addr = serve(app.layer(layer(&t).build())).await;
    let tp = format!("00-{TRACE}-{PARENT}-03");
    let reply = get_with(addr, "/flags", &[("traceparent", &tp)]).await;
    assert_eq!(
        reply.body, "03",
        "the Level 2 random bit is kept for children"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_f5_f7_bad_traceparent_starts_a_new_trace() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let bad = [
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("00-{TRACE}-{PARENT}-01-extra"),
        format!("00-{}-{PARENT}-01", "0".repeat(32)),
        "garbage".to_string(),
        "x".repeat(60_000),
    ];
    for value in bad {
        t.reset();
        let reply = get_with(addr, "/users/1", &[("traceparent", &value)]).await;
        assert_eq!(reply.status, 200, "a bad header never fails the request");
        let span = server_span(&t);
        assert_ne!(span.trace_id().to_string(), TRACE);
        assert_ne!(span.trace_id(), TraceId::INVALID);
        assert!(!span.parent_span_is_remote);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_f7_header_case_and_duplicates_over_the_wire() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let req = format!(
        "GET /users/1 HTTP/1.1\r\nHost: x\r\nTrAcEpArEnT: {tp}\r\nConnection: close\r\n\r\n"
    );
    assert!(raw(addr, req.as_bytes()).await.starts_with("HTTP/1.1 200"));
    assert_eq!(server_span(&t).trace_id().to_string(), TRACE);

    t.reset();
    let req = format!(
        "GET /users/1 HTTP/1.1\r\nHost: x\r\ntraceparent: {tp}\r\ntraceparent: {tp}\r\nConnection: close\r\n\r\n"
    );
    assert!(raw(addr, req.as_bytes()).await.starts_with("HTTP/1.1 200"));
    let span = server_span(&t);
    assert_ne!(
        span.trace_id().to_string(),
        TRACE,
        "duplicate traceparent is invalid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_reaches_the_handler_and_never_the_next_request() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let first = get_with(addr, "/users/1", &[("baggage", "user=alice")]).await;
    assert_eq!(first.body, "1:alice");
    // Same connection pool, same worker threads: nothing carries over.
    for _ in 0..20 {
        let next = get(addr, "/users/2").await;
        assert_eq!(next.body, "2:");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_oversized_baggage_is_cut_to_whole_members() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let members: Vec<String> = (0..10_000).map(|i| format!("k{i}=v")).collect();
    let mut header = String::from("user=bob,");
    header.push_str(&members.join(","));
    let reply = get_with(addr, "/users/1", &[("baggage", &header)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "1:bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoint_links_instead_of_parenting_and_drops_baggage() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).public_endpoint().build());
    let addr = serve(app).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    let reply = get_with(
        addr,
        "/users/1",
        &[("traceparent", &tp), ("baggage", "user=mallory")],
    )
    .await;
    assert_eq!(reply.body, "1:", "untrusted baggage is dropped");
    let span = server_span(&t);
    assert_ne!(span.trace_id().to_string(), TRACE);
    assert!(!span.parent_span_is_remote);
    let links: Vec<_> = span.links.iter().collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.trace_id().to_string(), TRACE);
    assert_eq!(links[0].span_context.span_id().to_string(), PARENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoint_fn_trusts_selected_callers() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(
        layer(&t)
            .public_endpoint_fn(|req| !req.headers.contains_key("x-internal"))
            .build(),
    );
    let addr = serve(app).await;
    let tp = format!("00-{TRACE}-{PARENT}-01");
    get_with(
        addr,
        "/users/1",
        &[("traceparent", &tp), ("x-internal", "1")],
    )
    .await;
    assert_eq!(server_span(&t).trace_id().to_string(), TRACE);
    t.reset();
    get_with(addr, "/users/1", &[("traceparent", &tp)]).await;
    assert_ne!(server_span(&t).trace_id().to_string(), TRACE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_request_still_propagates_its_context() {
    use opentelemetry_sdk::trace::Sampler;
    let t = TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let addr = start(&t).await;
    let tp = format!("00-{TRACE}-{PARENT}-00");
    let reply = get_with(addr, "/context", &[("traceparent", &tp)]).await;
    assert_eq!(reply.body, format!("{TRACE}:false"));
    assert!(t.spans().is_empty(), "nothing recorded");
    assert_eq!(
        t.histogram("http.server.request.duration").len(),
        1,
        "metrics still are"
    );
}
