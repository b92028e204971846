//! Section B rules against a real axum server on 127.0.0.1, asserting both
//! the client spans and the headers the server actually received.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{
    FutureExt as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue, Value};
use otel_reqwest::{OtelMiddleware, UrlTemplate};
use otel_testkit::{assert_child_of, SpanData, SpanDataExt, TestTelemetry};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

async fn serve() -> SocketAddr {
    let flaky = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/headers",
            get(|headers: HeaderMap| async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .unwrap_or_default()
                };
                format!("{}|{}", h("traceparent"), h("baggage"))
            }),
        )
        .route(
            "/status/{code}",
            get(|Path(code): Path<u16>| async move {
                StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "slow"
            }),
        )
        .route(
            "/flaky",
            get(
                |State(count): State<Arc<AtomicUsize>>, headers: HeaderMap| async move {
                    let tp = headers
                        .get("traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    if count.fetch_add(1, Ordering::SeqCst) == 0 {
                        (StatusCode::SERVICE_UNAVAILABLE, tp)
                    } else {
                        (StatusCode::OK, tp)
                    }
                },
            ),
        )
        .with_state(flaky);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

fn middleware(t: &TestTelemetry) -> otel_reqwest::OtelMiddlewareBuilder {
    OtelMiddleware::builder()
        .tracer_provider(t.tracer_provider())
        .meter_provider(t.meter_provider())
        .propagator(otel_propagation::default_propagator())
}

fn client(t: &TestTelemetry) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware(t).build())
        .build()
}

fn client_span(t: &TestTelemetry) -> SpanData {
    t.wait_for_spans(1, WAIT)
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("a client span")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_b2_b3_kind_name_and_attributes() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let url = format!(
        "http://user:pw@127.0.0.1:{}/status/200?sig=secret&x=1",
        addr.port()
    );
    let resp = client(&t).get(&url).send().await.expect("response");
    assert_eq!(resp.status(), 200);
    let span = client_span(&t);
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(span.name, "GET");
    assert_eq!(span.attr_str("http.request.method"), "GET");
    assert_eq!(span.attr_str("server.address"), "127.0.0.1");
    assert_eq!(
        span.attr("server.port"),
        Some(&Value::I64(addr.port().into()))
    );
    // reqwest moves URL credentials into an Authorization header before
    // the middleware sees the request; either way none are recorded.
    assert_eq!(
        span.attr_str("url.full"),
        format!(
            "http://127.0.0.1:{}/status/200?sig=REDACTED&x=1",
            addr.port()
        )
    );
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(span.attr_str("network.protocol.version"), "1.1");
    assert_eq!(span.attr_str("network.peer.address"), "127.0.0.1");
    assert_eq!(
        span.attr("network.peer.port"),
        Some(&Value::I64(addr.port().into()))
    );
    assert!(!span.has_attr("http.request.resend_count"));
    assert!(!span.has_attr("error.type"));
    assert_eq!(span.status, Status::Unset);
    assert!(span
        .attributes
        .iter()
        .all(|kv| !kv.value.as_str().contains("pw")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b1_d1_unknown_method_and_url_template() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let c = client(&t);
    c.request(
        reqwest::Method::from_bytes(b"PURGE").expect("token"),
        format!("http://{addr}/status/200"),
    )
    .send()
    .await
    .expect("response");
    let span = client_span(&t);
    assert_eq!(span.name, "HTTP");
    assert_eq!(span.attr_str("http.request.method"), "_OTHER");
    assert_eq!(span.attr_str("http.request.method_original"), "PURGE");

    t.reset();
    c.get(format!("http://{addr}/status/200"))
        .with_extension(UrlTemplate::new("/status/{code}"))
        .send()
        .await
        .expect("response");
    let span = client_span(&t);
    assert_eq!(span.name, "GET /status/{code}");
    assert_eq!(span.attr_str("url.template"), "/status/{code}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b4_status_table() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let c = client(&t);
    for code in [
        200u16, 201, 204, 301, 304, 399, 400, 401, 404, 418, 499, 500, 503, 599,
    ] {
        t.reset();
        let resp = c
            .get(format!("http://{addr}/status/{code}"))
            .send()
            .await
            .expect("response");
        assert_eq!(resp.status().as_u16(), code);
        let span = client_span(&t);
        assert_eq!(
            span.attr("http.response.status_code"),
            Some(&Value::I64(code.into()))
        );
        if code >= 400 {
            assert_eq!(span.status, Status::error(""), "{code}");
            assert_eq!(span.attr_str("error.type"), code.to_string());
        } else {
            assert_eq!(span.status, Status::Unset, "{code}");
            assert!(!span.has_attr("error.type"), "{code}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b7_context_and_baggage_reach_the_server_and_parent_the_span() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let tracer = t.tracer_provider().tracer("app");
    let parent_span = tracer.start("parent");
    let cx =
        Context::current_with_span(parent_span).with_baggage(vec![KeyValue::new("user", "alice")]);
    let body = client(&t)
        .get(format!("http://{addr}/headers"))
        .send()
        .with_context(cx.clone())
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    cx.span().end();
    let spans = t.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2);
    let client = t.span("GET");
    assert_child_of(&client, &t.span("parent"));
    let (tp, baggage) = body.split_once('|').expect("two fields");
    assert_eq!(
        tp,
        format!("00-{}-{}-01", client.trace_id(), client.span_id()),
        "the server is parented by the client span"
    );
    assert_eq!(baggage, "user=alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagate_to_keeps_context_from_other_hosts() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(
            middleware(&t)
                .propagate_to(|url| url.host_str() == Some("localhost"))
                .build(),
        )
        .build();
    let cx = Context::new().with_baggage(vec![KeyValue::new("secret", "1")]);
    let body = c
        .get(format!("http://{addr}/headers"))
        .send()
        .with_context(cx.clone())
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "|", "no traceparent, no baggage to 127.0.0.1");
    assert_eq!(client_span(&t).name, "GET", "still traced");

    let body = c
        .get(format!("http://localhost:{}/headers", addr.port()))
        .send()
        .with_context(cx)
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    assert!(body.starts_with("00-"), "allowed host gets context: {body}");
    assert!(body.ends_with("|secret=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b4_transport_errors_table() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let addr = serve().await;
    let cases = [
        (format!("http://{closed}/"), None, "connect"),
        (
            format!("http://{addr}/slow"),
            Some(Duration::from_millis(100)),
            "timeout",
        ),
    ];
    for (url, timeout, want) in cases {
        let t = TestTelemetry::new();
        let mut inner = reqwest::Client::builder();
        if let Some(timeout) = timeout {
            inner = inner.timeout(timeout);
        }
        let c = ClientBuilder::new(inner.build().expect("client"))
            .with(middleware(&t).build())
            .build();
        assert!(c.get(&url).send().await.is_err());
        let span = client_span(&t);
        assert_eq!(span.attr_str("error.type"), want, "{url}");
        assert_eq!(span.status, Status::error(""));
        assert!(!span.has_attr("http.response.status_code"));
        assert!(span.events.iter().any(|e| e.name == "exception"));
        let points = t.histogram("http.client.request.duration");
        assert_eq!(points[0].attr("error.type"), Some(&Value::from(want)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b6_each_retry_is_a_span_with_resend_count() {
    use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
    let t = TestTelemetry::new();
    let addr = serve().await;
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(RetryTransientMiddleware::new_with_policy(policy))
        .with(middleware(&t).build())
        .build();
    let resp = c
        .get(format!("http://{addr}/flaky"))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 200);
    let second_tp = resp.text().await.expect("body");
    let spans = t.wait_for_spans(2, WAIT);
    assert_eq!(spans.len(), 2, "one span per attempt");
    let first = &spans[0];
    let second = &spans[1];
    assert_eq!(
        first.attr("http.response.status_code"),
        Some(&Value::I64(503))
    );
    assert!(!first.has_attr("http.request.resend_count"));
    assert_eq!(
        second.attr("http.response.status_code"),
        Some(&Value::I64(200))
    );
    assert_eq!(
        second.attr("http.request.resend_count"),
        Some(&Value::I64(1))
    );
    assert_eq!(
        second_tp,
        // A new trace with random ids: sampled and random (Level 2).
        format!("00-{}-{}-03", second.trace_id(), second.span_id()),
        "each attempt carries its own span id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b4_cancelled_request_ends_span_unset() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(middleware(&t).active_requests(true).build())
        .build();
    let url = format!("http://{addr}/slow");
    let task = tokio::spawn(async move { c.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    task.abort();
    let span = client_span(&t);
    assert_eq!(span.status, Status::Unset);
    assert!(!span.has_attr("error.type"));
    let active: f64 = t
        .sum("http.client.active_requests")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(active, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_request_propagates_without_recording() {
    let t = TestTelemetry::with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
    let addr = serve().await;
    let body = client(&t)
        .get(format!("http://{addr}/headers"))
        .send()
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    // Not sampled, and a new trace with random ids: the random flag alone.
    assert!(body.starts_with("00-") && body.contains("-02|"), "{body}");
    assert!(t.spans().is_empty());
    assert_eq!(t.histogram("http.client.request.duration").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e4_duration_attribute_set() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    client(&t)
        .get(format!("http://{addr}/status/404"))
        .send()
        .await
        .expect("response");
    let points = t.histogram("http.client.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(
        points[0].keys(),
        [
            "error.type",
            "http.request.method",
            "http.response.status_code",
            "network.protocol.version",
            "server.address",
            "server.port",
        ]
    );
    assert_eq!(points[0].unit, "s");
    assert_eq!(
        points[0].bounds,
        otel_http_conventions::DURATION_BUCKETS.to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_skips_span_metrics_and_propagation() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(
            middleware(&t)
                .filter(|req| req.url().path() != "/headers")
                .build(),
        )
        .build();
    let body = c
        .get(format!("http://{addr}/headers"))
        .send()
        .await
        .expect("response")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "|");
    assert!(t.spans().is_empty());
    assert!(t.histogram("http.client.request.duration").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_header_capture_is_opt_in() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    let c = ClientBuilder::new(reqwest::Client::new())
        .with(
            middleware(&t)
                .capture_request_headers(["x-request-id"])
                .capture_response_headers(["content-type"])
                .build(),
        )
        .build();
    c.get(format!("http://{addr}/headers"))
        .header("x-request-id", "r1")
        .header("authorization", "Bearer secret")
        .send()
        .await
        .expect("response");
    let span = client_span(&t);
    assert_eq!(
        span.attr("http.request.header.x-request-id")
            .map(|v| v.to_string()),
        Some(r#"["r1"]"#.to_string())
    );
    assert!(span.has_attr("http.response.header.content-type"));
    assert!(span
        .attributes
        .iter()
        .all(|kv| !kv.value.as_str().contains("secret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_recorded_by_default() {
    let t = TestTelemetry::new();
    let addr = serve().await;
    client(&t)
        .get(format!(
            "http://user:s3cr3t-pw@127.0.0.1:{}/status/200?Signature=s3cr3t-sig&page=2",
            addr.port()
        ))
        .header("authorization", "Bearer s3cr3t-token")
        .header("cookie", "session=s3cr3t-cookie")
        .header("proxy-authorization", "Basic s3cr3t-proxy")
        .header("x-api-key", "s3cr3t-key")
        .send()
        .await
        .expect("response");
    let span = client_span(&t);
    assert!(span
        .attr_str("url.full")
        .ends_with("?Signature=REDACTED&page=2"));
    for kv in &span.attributes {
        assert!(
            !kv.value.as_str().contains("s3cr3t"),
            "{} leaked: {}",
            kv.key,
            kv.value
        );
    }
}

/// Everything a span holds, as text: attributes and every event's.
fn span_text(span: &SpanData) -> String {
    let mut out = String::new();
    for kv in span
        .attributes
        .iter()
        .chain(span.events.iter().flat_map(|e| e.attributes.iter()))
    {
        out.push_str(&format!("{}={}\n", kv.key, kv.value));
    }
    out
}

/// Each default sensitive key, plain and percent-encoded, in a URL that
/// fails (so reqwest's error text quotes it) and in one that answers: no
/// value reaches `url.full` or the `exception` event's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_query_values_never_reach_url_full_or_error_texts() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let addr = serve().await;
    for key in otel_http_conventions::DEFAULT_SENSITIVE_QUERY_PARAMETERS {
        let encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
        for form in [key.to_owned(), encoded, key.to_ascii_uppercase()] {
            for base in [
                format!("http://user:pw-s3cr3t@{closed}/x"),
                format!("http://{addr}/status/200"),
            ] {
                let t = TestTelemetry::new();
                let url = format!("{base}?page=2&{form}=val-s3cr3t");
                let _ = client(&t).get(&url).send().await;
                let span = client_span(&t);
                let text = span_text(&span);
                assert!(!text.contains("s3cr3t"), "{url}:\n{text}");
                assert!(text.contains(&format!("{form}=REDACTED")), "{url}:\n{text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_keys_join_the_defaults_and_the_list_can_be_replaced() {
    let addr = serve().await;
    let url = format!("http://{addr}/status/200?otp=1&token=2&sig=3");
    let recorded = |builder: otel_reqwest::OtelMiddlewareBuilder, t: TestTelemetry| {
        let url = url.clone();
        async move {
            let c = ClientBuilder::new(reqwest::Client::new())
                .with(builder.build())
                .build();
            c.get(&url).send().await.expect("response");
            client_span(&t).attr_str("url.full")
        }
    };
    let t = TestTelemetry::new();
    let full = recorded(middleware(&t).sensitive_query_parameters(["otp"]), t).await;
    assert!(
        full.ends_with("?otp=REDACTED&token=REDACTED&sig=REDACTED"),
        "{full}"
    );
    let t = TestTelemetry::new();
    let full = recorded(
        middleware(&t).replace_sensitive_query_parameters(
            otel_http_conventions::CONVENTIONS_SENSITIVE_QUERY_PARAMETERS,
        ),
        t,
    )
    .await;
    assert!(full.ends_with("?otp=1&token=2&sig=REDACTED"), "{full}");
}
