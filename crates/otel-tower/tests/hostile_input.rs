//! Bad input never panics and never fails the request.

mod common;

use axum::body::Body;
use common::*;
use http::{HeaderValue, Request};
use opentelemetry::trace::SpanKind;
use otel_testkit::{SpanDataExt, TestTelemetry};
use proptest::prelude::*;
use tower::ServiceExt;

fn app(t: &TestTelemetry) -> axum::Router {
    routes(t).layer(layer(t).capture_request_headers(["x-bin"]).build())
}

async fn call(t: &TestTelemetry, req: Request<Body>) -> u16 {
    app(t)
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

#[tokio::test]
async fn huge_and_invalid_headers_are_ignored() {
    let mb = "a".repeat(1 << 20);
    let many: Vec<String> = (0..10_000).map(|i| format!("k{i}=v{i}")).collect();
    let many = many.join(",");
    let bad_utf8 = HeaderValue::from_bytes(b"\xff\xfe\x80 bad").expect("opaque bytes");
    let cases: Vec<(&str, HeaderValue)> = vec![
        ("traceparent", HeaderValue::from_str(&mb).expect("ascii")),
        ("tracestate", HeaderValue::from_str(&mb).expect("ascii")),
        ("baggage", HeaderValue::from_str(&mb).expect("ascii")),
        ("baggage", HeaderValue::from_str(&many).expect("ascii")),
        ("traceparent", bad_utf8.clone()),
        ("baggage", bad_utf8.clone()),
        ("user-agent", bad_utf8.clone()),
        ("host", bad_utf8.clone()),
        ("forwarded", bad_utf8.clone()),
        ("x-forwarded-for", bad_utf8.clone()),
        ("x-forwarded-host", HeaderValue::from_static("[::1")),
        (
            "forwarded",
            HeaderValue::from_static("for=\"[;host=:;proto=,,,"),
        ),
        ("x-bin", bad_utf8.clone()),
        ("x-bin", HeaderValue::from_str(&mb).expect("ascii")),
    ];
    for (name, value) in cases {
        let t = TestTelemetry::new();
        let req = Request::get("/users/1")
            .header(name, value)
            .body(Body::empty())
            .expect("req");
        assert_eq!(call(&t, req).await, 200, "{name}");
        let spans = t.spans();
        let server = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Server)
            .expect("span recorded");
        assert_eq!(server.name, "GET /users/{id}", "{name}");
    }
}

#[tokio::test]
async fn absolute_form_and_connect_targets() {
    let t = TestTelemetry::new();
    let req = Request::get("http://user:pw@example.com:8080/users/9?sig=x")
        .body(Body::empty())
        .expect("req");
    assert_eq!(call(&t, req).await, 200);
    let span = t.span("GET /users/{id}");
    assert_eq!(span.attr_str("server.address"), "example.com");
    assert_eq!(span.attr_str("url.query"), "sig=REDACTED");
    assert!(span
        .attributes
        .iter()
        .all(|kv| !kv.value.as_str().contains("pw")));

    let t = TestTelemetry::new();
    let req = Request::connect("example.com:443")
        .body(Body::empty())
        .expect("req");
    let status = call(&t, req).await;
    assert!(status >= 400, "no CONNECT route: {status}");
    let span = t.spans().pop().expect("span");
    assert_eq!(span.name, "CONNECT");
    assert_eq!(span.attr_str("server.address"), "example.com");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_header_bytes_never_panic_or_fail(
        name in prop::sample::select(vec!["traceparent", "tracestate", "baggage", "forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "host", "user-agent", "content-length", "x-bin"]),
        bytes in prop::collection::vec(0x20u8..=0xff, 0..300),
    ) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()); };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let status = rt.block_on(async {
            let t = TestTelemetry::new();
            let req = Request::get("/users/1").header(name, value).body(Body::empty()).expect("req");
            call(&t, req).await
        });
        prop_assert_eq!(status, 200);
    }
}
