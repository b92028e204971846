//! Section A (server span) and C (header capture) rules, over a real server
//! on 127.0.0.1, asserted against an in-memory exporter.

// Rule tables are tuples on purpose: one row per case, read at a glance.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http_body_util::Full;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, Value};
use otel_testkit::{assert_child_of, SpanDataExt, TestTelemetry};

fn server_span(t: &TestTelemetry) -> otel_testkit::SpanData {
    let spans = t.wait_for_spans(1, WAIT);
    spans
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("a server span")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_a2_span_kind_and_name_table() {
    let cases = [
        ("GET", "/users/42", "GET /users/{id}", None),
        ("GET", "/nope/unmatched", "GET", None),
        ("POST", "/echo", "POST /echo", None),
        ("FOO", "/users/1", "HTTP /users/{id}", Some("FOO")),
        ("get", "/nope", "HTTP", Some("get")),
        ("PURGE", "/nope", "HTTP", Some("PURGE")),
    ];
    for (method, path, name, original) in cases {
        let t = TestTelemetry::new();
        let addr = start(&t).await;
        send(
            request(method, addr, path)
                .body(Full::default())
                .expect("req"),
        )
        .await;
        let span = server_span(&t);
        assert_eq!(span.span_kind, SpanKind::Server, "{method} {path}");
        assert_eq!(span.name, name, "{method} {path}");
        let want_method = if original.is_some() { "_OTHER" } else { method };
        assert_eq!(span.attr_str("http.request.method"), want_method);
        assert_eq!(
            span.attr("http.request.method_original")
                .map(|v| v.as_str().into_owned()),
            original.map(str::to_owned),
            "{method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a3_route_only_from_the_router_never_the_path() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/alice").await;
    let span = server_span(&t);
    assert_eq!(span.attr_str("http.route"), "/users/{id}");
    t.reset();
    get(addr, "/unmatched/42").await;
    let span = server_span(&t);
    assert!(!span.has_attr("http.route"), "no route for a 404 fallback");
    assert_eq!(span.attr_str("url.path"), "/unmatched/42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a4_attributes_and_types() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let reply = send(
        request("GET", addr, "/users/42?sig=secret&x=1")
            .header("user-agent", "otel-test/1.0")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let span = server_span(&t);
    let expect_str = [
        ("http.request.method", "GET"),
        ("url.path", "/users/42"),
        ("url.scheme", "http"),
        ("url.query", "sig=REDACTED&x=1"),
        ("http.route", "/users/{id}"),
        ("server.address", "127.0.0.1"),
        ("client.address", "127.0.0.1"),
        ("network.peer.address", "127.0.0.1"),
        ("network.protocol.version", "1.1"),
        ("user_agent.original", "otel-test/1.0"),
    ];
    for (key, want) in expect_str {
        assert_eq!(span.attr(key), Some(&Value::from(want)), "{key}");
    }
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(
        span.attr("server.port"),
        Some(&Value::I64(i64::from(addr.port())))
    );
    assert!(matches!(span.attr("network.peer.port"), Some(Value::I64(p)) if *p > 0));
    assert!(!span.has_attr("error.type"));
    assert!(!span.has_attr("http.request.method_original"));
    assert_eq!(span.status, Status::Unset);
    // No empty strings anywhere.
    for kv in &span.attributes {
        if let Value::String(s) = &kv.value {
            assert!(!s.as_str().is_empty(), "{} is empty", kv.key);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a4_url_query_absent_without_query() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/1").await;
    assert!(!server_span(&t).has_attr("url.query"));
    t.reset();
    get(addr, "/users/1?").await;
    assert!(
        !server_span(&t).has_attr("url.query"),
        "empty query is not recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_a7_forwarded_headers_table() {
    let cases: &[(&[(&str, &str)], &str, &str, i64, &str)] = &[
        (&[], "127.0.0.1", "127.0.0.1", 0, "http"),
        (
            &[
                ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
                ("x-forwarded-host", "shop.example"),
                ("x-forwarded-proto", "https"),
            ],
            "203.0.113.9",
            "shop.example",
            443,
            "https",
        ),
        (
            &[(
                "forwarded",
                "for=\"[2001:db8::1]:4711\";host=api.example:8443;proto=https",
            )],
            "2001:db8::1",
            "api.example",
            8443,
            "https",
        ),
    ];
    for (headers, client, server, port, scheme) in cases {
        let t = TestTelemetry::new();
        let addr = start(&t).await;
        let mut req = request("GET", addr, "/users/1");
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        send(req.body(Full::default()).expect("req")).await;
        let span = server_span(&t);
        assert_eq!(span.attr_str("client.address"), *client, "{headers:?}");
        assert_eq!(span.attr_str("server.address"), *server, "{headers:?}");
        let want_port = if *port == 0 {
            i64::from(addr.port())
        } else {
            *port
        };
        assert_eq!(
            span.attr("server.port"),
            Some(&Value::I64(want_port)),
            "{headers:?}"
        );
        assert_eq!(span.attr_str("url.scheme"), *scheme, "{headers:?}");
        assert_eq!(span.attr_str("network.peer.address"), "127.0.0.1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a6_a7_forwarded_headers_ignored_when_untrusted() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).trust_forwarded_headers(false).build());
    let addr = serve(app).await;
    send(
        request("GET", addr, "/users/1")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-host", "evil.example")
            .header("x-forwarded-proto", "https")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = server_span(&t);
    assert_eq!(span.attr_str("client.address"), "127.0.0.1");
    assert_eq!(span.attr_str("server.address"), "127.0.0.1");
    assert_eq!(span.attr_str("url.scheme"), "http");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a8_a9_status_table() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    for code in [
        200u16, 201, 204, 301, 302, 304, 400, 401, 404, 418, 499, 500, 502, 503, 599,
    ] {
        t.reset();
        let reply = get(addr, &format!("/status/{code}")).await;
        assert_eq!(reply.status, code);
        let span = server_span(&t);
        assert_eq!(
            span.attr("http.response.status_code"),
            Some(&Value::I64(code.into()))
        );
        if code >= 500 {
            assert_eq!(span.status, Status::error(""), "{code}");
            assert_eq!(span.attr_str("error.type"), code.to_string());
        } else {
            assert_eq!(span.status, Status::Unset, "{code}");
            assert!(!span.has_attr("error.type"), "{code}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_spans_nest_under_the_server_span() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/7").await;
    let spans = t.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_child_of(&t.span("db_query"), &t.span("GET /users/{id}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_c2_c3_header_capture() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(
        layer(&t)
            .capture_request_headers(["X-Request-Id", "x-multi"])
            .capture_response_headers(["content-type"])
            .build(),
    );
    let addr = serve(app).await;
    send(
        request("GET", addr, "/users/1")
            .header("x-request-id", "abc")
            .header("x-multi", "1")
            .header("x-multi", "2")
            .header("authorization", "Bearer secret")
            .header("cookie", "session=secret")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = server_span(&t);
    assert_eq!(
        span.attr("http.request.header.x-request-id"),
        Some(&Value::Array(Array::String(vec!["abc".into()])))
    );
    assert_eq!(
        span.attr("http.request.header.x-multi"),
        Some(&Value::Array(Array::String(vec!["1".into(), "2".into()])))
    );
    assert_eq!(
        span.attr("http.response.header.content-type"),
        Some(&Value::Array(Array::String(vec![
            "text/plain; charset=utf-8".into()
        ])))
    );
    for kv in &span.attributes {
        let text = kv.value.as_str();
        assert!(!text.contains("secret"), "{} leaked a secret", kv.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_no_headers_captured_by_default() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    send(
        request("GET", addr, "/users/1")
            .header("authorization", "Bearer secret")
            .header("x-api-key", "secret")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = server_span(&t);
    assert!(span
        .attributes
        .iter()
        .all(|kv| !kv.key.as_str().starts_with("http.request.header.")
            && !kv.key.as_str().starts_with("http.response.header.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d2_known_methods_replace_defaults() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).known_methods(["GET", "PURGE"]).build());
    let addr = serve(app).await;
    send(
        request("PURGE", addr, "/nope")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = server_span(&t);
    assert_eq!(span.name, "PURGE");
    assert_eq!(span.attr_str("http.request.method"), "PURGE");
    t.reset();
    send(
        request("POST", addr, "/echo")
            .body(Full::default())
            .expect("req"),
    )
    .await;
    let span = server_span(&t);
    assert_eq!(span.name, "HTTP /echo");
    assert_eq!(span.attr_str("http.request.method"), "_OTHER");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_skips_span_and_metrics() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).filter(|req| req.uri.path() != "/health").build());
    let addr = serve(app).await;
    assert_eq!(get(addr, "/health").await.body, "ok");
    get(addr, "/users/1").await;
    let spans = t.wait_for_spans(2, WAIT);
    assert!(spans.iter().all(|s| s.name != "GET /health"));
    let points = t.histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(
        points[0].attr("http.route"),
        Some(&Value::from("/users/{id}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_span_name() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(
        layer(&t)
            .span_name(|req, route| format!("handle {} {}", req.method, route.unwrap_or("?")))
            .build(),
    );
    let addr = serve(app).await;
    get(addr, "/users/1").await;
    assert_eq!(server_span(&t).name, "handle GET /users/{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_only_when_recording() {
    use opentelemetry::KeyValue;
    use opentelemetry_sdk::trace::Sampler;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    for (sampler, want_calls) in [(Sampler::AlwaysOn, 2), (Sampler::AlwaysOff, 0)] {
        let calls = Arc::new(AtomicUsize::new(0));
        let t = TestTelemetry::with_sampler(sampler);
        let (c1, c2) = (calls.clone(), calls.clone());
        let app = routes(&t).layer(
            layer(&t)
                .request_hook(move |span, req| {
                    c1.fetch_add(1, Ordering::SeqCst);
                    span.set_attribute(KeyValue::new("app.path_len", req.uri.path().len() as i64));
                })
                .response_hook(move |span, resp| {
                    c2.fetch_add(1, Ordering::SeqCst);
                    span.set_attribute(KeyValue::new(
                        "app.status",
                        resp.status.as_str().to_owned(),
                    ));
                })
                .build(),
        );
        let addr = serve(app).await;
        get(addr, "/users/1").await;
        // The unsampled request still has metrics: wait for them, not a span.
        assert_eq!(t.histogram("http.server.request.duration").len(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), want_calls);
        if want_calls > 0 {
            let span = server_span(&t);
            assert_eq!(span.attr("app.path_len"), Some(&Value::I64(8)));
            assert_eq!(span.attr_str("app.status"), "200");
        }
    }
}

/// A sampler that decides by the attributes it is shown at span creation.
#[derive(Clone)]
struct ByAttributes(std::sync::Arc<dyn Fn(&[opentelemetry::KeyValue]) -> bool + Send + Sync>);

impl std::fmt::Debug for ByAttributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ByAttributes")
    }
}

impl opentelemetry_sdk::trace::ShouldSample for ByAttributes {
    fn should_sample(
        &self,
        _: Option<&opentelemetry::Context>,
        _: opentelemetry::trace::TraceId,
        _: &str,
        _: &SpanKind,
        attributes: &[opentelemetry::KeyValue],
        _: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        use opentelemetry_sdk::trace::SamplingDecision;
        opentelemetry_sdk::trace::SamplingResult {
            decision: if (self.0)(attributes) {
                SamplingDecision::RecordAndSample
            } else {
                SamplingDecision::Drop
            },
            attributes: vec![],
            trace_state: Default::default(),
        }
    }
}

fn sampled_by(
    decide: impl Fn(&[opentelemetry::KeyValue]) -> bool + Send + Sync + 'static,
) -> TestTelemetry {
    let sampler = ByAttributes(std::sync::Arc::new(decide));
    TestTelemetry::with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
        sampler,
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_attributes_reach_the_sampler() {
    // Samples only requests for /users/*: a path-based sampler.
    let t = sampled_by(|attributes| {
        attributes
            .iter()
            .any(|kv| kv.key.as_str() == "url.path" && kv.value.as_str().starts_with("/users/"))
    });
    let app = routes(&t).layer(layer(&t).sampling_attributes(true).build());
    let addr = serve(app).await;
    get(addr, "/health").await;
    get(addr, "/users/1").await;
    let spans = t.wait_for_spans(2, WAIT);
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert!(names.contains(&"GET /users/{id}"), "{names:?}");
    assert!(!names.contains(&"GET /health"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampler_sees_method_and_scheme_by_default_and_every_attribute_on_request() {
    use std::sync::{Arc, Mutex};

    for opt_in in [false, true] {
        // Samples everything and keeps the attribute names it was shown.
        let shown: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let keep = Arc::clone(&shown);
        let t = sampled_by(move |attributes| {
            let mut names: Vec<String> = attributes.iter().map(|kv| kv.key.to_string()).collect();
            names.sort();
            if let Ok(mut shown) = keep.lock() {
                shown.push(names);
            }
            true
        });
        let app = routes(&t).layer(
            layer(&t)
                .sampling_attributes(opt_in)
                .capture_request_headers(["x-tenant"])
                .build(),
        );
        let addr = serve(app).await;
        send(
            request("GET", addr, "/users/1")
                .header("x-tenant", "acme")
                .body(Full::default())
                .expect("req"),
        )
        .await;
        // The recorded span has the server address, the port and the
        // captured header either way.
        let span = server_span(&t);
        assert_eq!(
            span.attr("http.request.header.x-tenant"),
            Some(&Value::Array(Array::String(vec!["acme".into()])))
        );
        assert_eq!(span.attr_str("server.address"), "127.0.0.1");
        assert_eq!(
            span.attr("server.port"),
            Some(&Value::I64(i64::from(addr.port())))
        );
        let shown = shown.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(shown.len(), 1, "{shown:?}");
        let names = &shown[0];
        if opt_in {
            for key in [
                "server.address",
                "server.port",
                "url.path",
                "client.address",
                "http.request.header.x-tenant",
            ] {
                assert!(
                    names.iter().any(|n| n == key),
                    "{key} missing from {names:?}"
                );
            }
        } else {
            // Nothing that needs the Host header parsed or a string built.
            assert_eq!(names, &["http.request.method", "url.scheme"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_carries_name_version_and_schema() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/1").await;
    let span = server_span(&t);
    let scope = &span.instrumentation_scope;
    assert_eq!(scope.name(), "otel-tower");
    assert_eq!(scope.version(), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(scope.schema_url(), Some(otel_http_conventions::SCHEMA_URL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_decide_whose_forwarded_headers_count() {
    use otel_http_conventions::TrustedProxies;
    let cases = [
        // The test client (127.0.0.1) is a trusted proxy: the right-most
        // untrusted hop is the client, the forwarded host is used.
        ("127.0.0.0/8", "198.51.100.1", "shop.example"),
        // It is not: nothing it forwards is believed.
        ("10.0.0.0/8", "127.0.0.1", "127.0.0.1"),
    ];
    for (cidr, client, server) in cases {
        let t = TestTelemetry::new();
        let proxies = TrustedProxies::new([cidr]).expect("cidr");
        let app = routes(&t).layer(layer(&t).trusted_proxies(proxies).build());
        let addr = serve(app).await;
        send(
            request("GET", addr, "/users/1")
                .header("x-forwarded-for", "6.6.6.6, 198.51.100.1")
                .header("x-forwarded-host", "shop.example")
                .body(Full::default())
                .expect("req"),
        )
        .await;
        let span = server_span(&t);
        assert_eq!(span.attr_str("client.address"), client, "{cidr}");
        assert_eq!(span.attr_str("server.address"), server, "{cidr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_recorded_by_default() {
    let t = TestTelemetry::new();
    let app = routes(&t)
        .route(
            "/login",
            axum::routing::get(|| async {
                ([("set-cookie", "session=s3cr3t-cookie; HttpOnly")], "ok")
            }),
        )
        .layer(layer(&t).build());
    let addr = serve(app).await;
    send(
        request(
            "GET",
            addr,
            "/login?sig=s3cr3t-sig&X-Amz-Credential=s3cr3t-cred&page=2",
        )
        .header("authorization", "Bearer s3cr3t-token")
        .header("cookie", "session=s3cr3t-cookie")
        .header("proxy-authorization", "Basic s3cr3t-proxy")
        .header("x-api-key", "s3cr3t-key")
        .body(Full::default())
        .expect("req"),
    )
    .await;
    let span = server_span(&t);
    assert_eq!(
        span.attr_str("url.query"),
        "sig=REDACTED&X-Amz-Credential=REDACTED&page=2"
    );
    for kv in &span.attributes {
        assert!(
            !kv.value.as_str().contains("s3cr3t"),
            "{} leaked: {}",
            kv.key,
            kv.value
        );
    }
}
