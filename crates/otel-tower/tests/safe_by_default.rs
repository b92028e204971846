//! Safe by default: no header a client sends picks a metric series, garbage
//! is never recorded as an address, and every error text is redacted as
//! `url.query` is before it is recorded.

mod common;

use axum::body::Body;
use bytes::Bytes;
use common::*;
use http::Request;
use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use otel_testkit::{SpanDataExt, TestTelemetry};
use std::collections::HashSet;
use tower::ServiceExt;

/// Distinct values per header.
const VALUES: usize = 10_000;

/// A distinct, header-safe value for request `i`, shaped for the header.
fn value(header: &str, i: usize) -> String {
    let token = format!("v{i:05}x{}", i.wrapping_mul(2_654_435_761) % 100_000);
    match header {
        "forwarded" => format!("for={token};proto={token};host={token}.example"),
        // Every tenth one a scheme a proxy could really send, in some case.
        "x-forwarded-proto" if i % 10 == 0 => ["https", "HTTP", "Https"][i % 3].to_owned(),
        "traceparent" => format!("00-{:032x}-{:016x}-{:02x}", i + 1, i + 1, i % 256),
        "content-length" => "0".to_owned(),
        _ => token,
    }
}

/// Every header the layer reads, and the request target's own scheme.
const HEADERS: [&str; 12] = [
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "user-agent",
    "traceparent",
    "tracestate",
    "baggage",
    "content-length",
    "content-type",
    "absolute-form scheme",
];

fn series(t: &TestTelemetry) -> Vec<Vec<(String, String)>> {
    t.histogram("http.server.request.duration")
        .into_iter()
        .map(|p| {
            p.attributes
                .iter()
                .map(|kv| (kv.key.to_string(), kv.value.as_str().into_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_values_of_every_header_make_no_new_series() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).build());
    for header in HEADERS {
        for i in 0..VALUES {
            let v = value(header, i);
            let req = if header == "absolute-form scheme" {
                let scheme: String = v.chars().filter(char::is_ascii_alphanumeric).collect();
                Request::builder().uri(format!("{scheme}://example.com/users/1"))
            } else {
                Request::builder()
                    .uri("/users/1")
                    .header(header, v.as_str())
            }
            .body(Body::empty())
            .expect("request");
            let status = app.clone().oneshot(req).await.expect("infallible").status();
            assert_eq!(status, 200, "{header}: every request is served");
            if i % 2_000 == 0 {
                t.reset();
            }
        }
    }
    let found = series(&t);
    let schemes: HashSet<String> = found
        .iter()
        .flat_map(|s| s.iter().filter(|(k, _)| k == "url.scheme"))
        .map(|(_, v)| v.clone())
        .collect();
    assert!(schemes.len() <= 3, "url.scheme values: {schemes:?}");
    assert_eq!(
        schemes,
        HashSet::from(["http".to_owned(), "https".to_owned()])
    );
    // GET /users/{id} 200 over http and over https: nothing else.
    assert_eq!(found.len(), 2, "{found:#?}");
    let total: u64 = t
        .histogram("http.server.request.duration")
        .iter()
        .map(|p| p.count)
        .sum();
    assert_eq!(
        total as usize,
        HEADERS.len() * VALUES,
        "every request measured"
    );

    // A legitimate 404 afterwards has a series of its own, not an overflow.
    let req = Request::builder()
        .uri("/nothing-here")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        app.clone().oneshot(req).await.expect("infallible").status(),
        404
    );
    let after = series(&t);
    assert_eq!(after.len(), 3);
    assert!(after.iter().any(|s| s
        .iter()
        .any(|(k, v)| k == "http.response.status_code" && v == "404")));
    assert!(after
        .iter()
        .all(|s| !s.iter().any(|(k, _)| k == "otel.metric.overflow")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_never_recorded_as_an_address() {
    let nines = "9".repeat(5_000);
    let long_host = format!("{}.example", "a".repeat(10_000));
    // Forwarding headers, and the client address to record (`None`: the
    // socket's).
    type Case<'a> = (Vec<(&'a str, String)>, Option<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![("forwarded", format!("for={nines}"))], None),
        (
            vec![("x-forwarded-for", format!("{nines}, 10.0.0.1"))],
            None,
        ),
        (vec![("x-forwarded-for", "not an address".into())], None),
        (vec![("forwarded", "for=\"[::1]:80\"".into())], Some("::1")),
        (
            vec![("x-forwarded-for", "203.0.113.9".into())],
            Some("203.0.113.9"),
        ),
    ];
    for (headers, client) in cases {
        let t = TestTelemetry::new();
        let addr = start(&t).await;
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(get_with(addr, "/health", &hs).await.status, 200);
        let span = server_span(&t);
        // Not believed: the socket's address instead.
        assert_eq!(
            span.attr_str("client.address"),
            client.unwrap_or("127.0.0.1"),
            "{headers:?}"
        );
        assert_eq!(span.attr_str("network.peer.address"), "127.0.0.1");
    }
    for (host, forwarded_host, want) in [
        (long_host.as_str(), None, None),
        ("a b", None, None),
        (
            "api.example:8080",
            Some(long_host.as_str()),
            Some("api.example"),
        ),
        ("api.example", Some("good.example"), Some("good.example")),
    ] {
        let t = TestTelemetry::new();
        let app = routes(&t).layer(layer(&t).build());
        let mut req = Request::builder().uri("/health").header("host", host);
        if let Some(f) = forwarded_host {
            req = req.header("x-forwarded-host", f);
        }
        let req = req.body(Body::empty()).expect("request");
        assert_eq!(app.oneshot(req).await.expect("infallible").status(), 200);
        let span = server_span(&t);
        match want {
            Some(w) => assert_eq!(span.attr_str("server.address"), w, "{host}"),
            None => assert!(span.attr("server.address").is_none(), "{host}"),
        }
    }
}

const SECRET_URL: &str =
    "https://user:hunter2@storage.example/bucket/o?X-Amz-Signature=s3cr3t&token=t0k3n&a=1";

fn assert_redacted(span: &otel_testkit::SpanData) {
    let exception = span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("an exception event");
    let message = exception
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "exception.message")
        .map(|kv| kv.value.as_str().into_owned())
        .expect("the event carries the error's message");
    assert!(message.contains("storage.example/bucket/o"), "{message}");
    for secret in ["hunter2", "s3cr3t", "t0k3n"] {
        assert!(!message.contains(secret), "{message}");
    }
    assert!(message.contains("X-Amz-Signature=REDACTED"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_error_is_recorded_redacted() {
    #[derive(Debug)]
    struct Upstream;
    impl std::fmt::Display for Upstream {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error sending request for url ({SECRET_URL})")
        }
    }
    let t = TestTelemetry::new();
    let svc = tower::ServiceBuilder::new()
        .layer(layer(&t).build())
        .service_fn(|_req: Request<Body>| async {
            Err::<http::Response<Body>, Upstream>(Upstream)
        });
    let req = Request::builder()
        .uri("/fail")
        .body(Body::empty())
        .expect("request");
    assert!(svc.oneshot(req).await.is_err());
    let span = t
        .wait_for_spans(1, WAIT)
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("a server span");
    assert_redacted(&span);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_error_carries_its_message_redacted() {
    let t = TestTelemetry::new();
    let app = axum::Router::new()
        .route(
            "/download",
            axum::routing::get(|| async {
                let chunks = futures_util::stream::iter(vec![
                    Ok(Bytes::from_static(b"partial")),
                    Err(std::io::Error::other(format!(
                        "upstream {SECRET_URL} reset"
                    ))),
                ]);
                Body::from_stream(chunks)
            }),
        )
        .layer(layer(&t).build());
    let addr = serve(app).await;
    raw(
        addr,
        b"GET /download HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let span = server_span(&t);
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_redacted(&span);
}
