//! Section E1-E3: server metrics, their attribute sets, units and buckets.
// Rule tables are tuples on purpose: one row per case, read at a glance.
#![allow(clippy::type_complexity)]

mod common;

use common::*;
use http_body_util::Full;
use opentelemetry::Value;
use otel_testkit::TestTelemetry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_duration_attribute_sets_table() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/1").await;
    get(addr, "/status/503").await;
    get(addr, "/missing").await;
    send(
        request("FOO", addr, "/users/2")
            .body(Full::default())
            .expect("req"),
    )
    .await;

    let points = t.histogram("http.server.request.duration");
    let got: Vec<(Vec<&str>, Option<String>, Option<String>, i64)> = points
        .iter()
        .map(|p| {
            let status = match p.attr("http.response.status_code") {
                Some(Value::I64(c)) => *c,
                other => panic!("status code must be an int: {other:?}"),
            };
            (
                p.keys(),
                p.attr("http.route").map(|v| v.as_str().into_owned()),
                p.attr("error.type").map(|v| v.as_str().into_owned()),
                status,
            )
        })
        .collect();
    let with_route = vec![
        "http.request.method",
        "http.response.status_code",
        "http.route",
        "network.protocol.version",
        "url.scheme",
    ];
    let no_route = vec![
        "http.request.method",
        "http.response.status_code",
        "network.protocol.version",
        "url.scheme",
    ];
    let with_error = vec![
        "error.type",
        "http.request.method",
        "http.response.status_code",
        "http.route",
        "network.protocol.version",
        "url.scheme",
    ];
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.contains(&(with_route.clone(), Some("/users/{id}".into()), None, 200)));
    // FOO matches the route but no method on it: 405, not an error.
    assert!(got.contains(&(with_route, Some("/users/{id}".into()), None, 405)));
    assert!(got.contains(&(no_route, None, None, 404)));
    assert!(got.contains(&(
        with_error,
        Some("/status/{code}".into()),
        Some("503".into()),
        503
    )));
    let methods: Vec<String> = points
        .iter()
        .map(|p| {
            p.attr("http.request.method")
                .expect("method")
                .as_str()
                .into_owned()
        })
        .collect();
    assert!(
        methods.contains(&"_OTHER".to_string()),
        "D4: normalised method only"
    );
    assert!(points
        .iter()
        .all(|p| p.attr("http.request.method_original").is_none()));
    for p in &points {
        assert_eq!(p.unit, "s");
        assert_eq!(p.bounds, otel_http_conventions::DURATION_BUCKETS.to_vec());
        assert_eq!(p.attr("url.scheme"), Some(&Value::from("http")));
        assert_eq!(
            p.attr("network.protocol.version"),
            Some(&Value::from("1.1"))
        );
        assert!(p.attr("server.address").is_none(), "opt-in only");
        assert!(p.attr("url.path").is_none(), "never on metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e1_recorded_when_not_sampled() {
    let t = TestTelemetry::with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff);
    let addr = start(&t).await;
    for _ in 0..3 {
        get(addr, "/users/1").await;
    }
    let points = t.histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].count, 3);
    assert!(t.spans().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2_active_requests_opt_in_and_balanced() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/1").await;
    assert!(
        t.sum("http.server.active_requests").is_empty(),
        "off by default"
    );

    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).active_requests(true).build());
    let addr = serve(app).await;
    let slow = tokio::spawn(async move { get(addr, "/slow").await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let during = t.sum("http.server.active_requests");
    assert_eq!(during.len(), 1);
    let (attrs, value) = &during[0];
    assert_eq!(*value, 1.0);
    let keys: Vec<&str> = attrs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["http.request.method", "url.scheme"]);
    slow.await.expect("slow request");
    let after = t.sum("http.server.active_requests");
    assert_eq!(after[0].1, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3_body_sizes_opt_in() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    get(addr, "/users/1").await;
    assert!(
        t.histogram("http.server.request.body.size").is_empty(),
        "off by default"
    );
    assert!(t.histogram("http.server.response.body.size").is_empty());

    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).body_size(true).build());
    let addr = serve(app).await;
    let payload = "x".repeat(1234);
    let reply = send(
        request("POST", addr, "/echo")
            .header("content-length", payload.len())
            .body(Full::from(payload.clone()))
            .expect("req"),
    )
    .await;
    assert_eq!(reply.body_len, 1234);
    let req = t.histogram("http.server.request.body.size");
    let resp = t.histogram("http.server.response.body.size");
    assert_eq!((req.len(), resp.len()), (1, 1));
    assert_eq!(req[0].sum, 1234.0);
    assert_eq!(resp[0].sum, 1234.0);
    assert_eq!(req[0].unit, "By");
    assert_eq!(req[0].attr("http.route"), Some(&Value::from("/echo")));
}
