//! C4 and D2 over the layer: with nothing set in code, the header lists and
//! the known methods come from their environment variables. (Own process:
//! it sets environment variables before building the layer.)

mod common;

use common::*;
use http_body_util::Full;
use opentelemetry::{Array, Value};
use otel_testkit::{SpanDataExt, TestTelemetry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_d2_header_lists_and_known_methods_from_the_environment() {
    std::env::set_var(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",
        "X-Request-Id, x-tenant",
    );
    std::env::set_var(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",
        "content-type",
    );
    std::env::set_var("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,PURGE");
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    send(
        request("PURGE", addr, "/users/1")
            .header("x-request-id", "r-1")
            .header("authorization", "Bearer not-listed")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = t
        .wait_for_spans(1, WAIT)
        .into_iter()
        .find(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .expect("server span");
    assert_eq!(
        span.name, "PURGE /users/{id}",
        "PURGE is known from the environment"
    );
    assert_eq!(
        span.attr("http.request.header.x-request-id"),
        Some(&Value::Array(Array::String(vec!["r-1".into()])))
    );
    assert!(!span.has_attr("http.request.header.authorization"));
    // The route has no PURGE handler (a bare 405); a GET has a body type.
    t.reset();
    get(addr, "/users/1").await;
    let span = t
        .wait_for_spans(1, WAIT)
        .into_iter()
        .find(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .expect("span");
    assert!(
        span.has_attr("http.response.header.content-type"),
        "{:?}",
        span.attributes
    );

    // Code wins over the environment.
    let t = TestTelemetry::new();
    let app = routes(&t).layer(
        layer(&t)
            .known_methods(["GET"])
            .capture_request_headers(["x-tenant"])
            .build(),
    );
    let addr = serve(app).await;
    send(
        request("PURGE", addr, "/users/1")
            .header("x-request-id", "r-2")
            .header("x-tenant", "t")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = t.wait_for_spans(1, WAIT).into_iter().next().expect("span");
    assert_eq!(span.name, "HTTP /users/{id}");
    assert!(!span.has_attr("http.request.header.x-request-id"));
    assert!(span.has_attr("http.request.header.x-tenant"));
}
