//! When a request ends: with its body, on a body error, on a client
//! disconnect, on a panic; and how the layer sits with tower-http.

mod common;

use common::*;
use opentelemetry::trace::Status;
use opentelemetry::Value;
use otel_testkit::{SpanDataExt, TestTelemetry};
use std::time::Duration;

fn active_total(t: &TestTelemetry) -> f64 {
    t.sum("http.server.active_requests")
        .iter()
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_body_is_timed_to_its_end_and_metric_matches_span() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let reply = get(addr, "/stream").await;
    assert_eq!(reply.body.lines().count(), 5);
    let span = server_span(&t);
    let span_secs = span
        .end_time
        .duration_since(span.start_time)
        .expect("end after start")
        .as_secs_f64();
    assert!(span_secs >= 0.45, "span covers the stream: {span_secs}s");
    let points = t.histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].count, 1);
    assert!(
        (points[0].sum - span_secs).abs() < 1e-6,
        "metric {} == span {span_secs}",
        points[0].sum
    );
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a8_body_error_after_head_is_an_error_keeping_the_status() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).active_requests(true).build());
    let addr = serve(app).await;
    // The connection is cut when the body fails; what matters is the span.
    raw(
        addr,
        b"GET /stream-error HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let span = server_span(&t);
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(201))
    );
    assert_eq!(span.status, Status::error(""));
    assert_eq!(span.attr_str("error.type"), "error::Error");
    assert!(span.events.iter().any(|e| e.name == "exception"));
    assert_eq!(active_total(&t), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_body_ends_span_as_cancelled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).active_requests(true).build());
    let addr = serve(app).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.expect("read head");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);
    let span = server_span(&t);
    assert_eq!(span.attr_str("error.type"), "cancelled");
    assert_eq!(span.status, Status::error(""));
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(200))
    );
    let points = t.histogram("http.server.request.duration");
    assert_eq!(
        points[0].attr("error.type"),
        Some(&Value::from("cancelled"))
    );
    assert_eq!(active_total(&t), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_during_handler_ends_span_as_cancelled() {
    use tokio::io::AsyncWriteExt;
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).active_requests(true).build());
    let addr = serve(app).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(active_total(&t), 1.0, "in flight");
    drop(stream);
    let span = server_span(&t);
    assert_eq!(span.attr_str("error.type"), "cancelled");
    assert!(!span.has_attr("http.response.status_code"));
    assert_eq!(active_total(&t), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_ends_span_with_error() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).active_requests(true).build());
    let addr = serve(app).await;
    let reply = raw(
        addr,
        b"GET /panic HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        reply.is_empty(),
        "the connection died with the handler: {reply}"
    );
    let span = server_span(&t);
    assert_eq!(span.name, "GET /panic");
    assert_eq!(span.attr_str("error.type"), "panic");
    assert_eq!(span.status, Status::error(""));
    assert_eq!(active_total(&t), 0.0);
    // The server lives on.
    assert_eq!(get(addr, "/health").await.body, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_panic_layer_inside_gives_a_500_error_span() {
    let t = TestTelemetry::new();
    let app = routes(&t)
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(layer(&t).build());
    let addr = serve(app).await;
    assert_eq!(get(addr, "/panic").await.status, 500);
    let span = server_span(&t);
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(500))
    );
    assert_eq!(span.attr_str("error.type"), "500");
    assert_eq!(span.status, Status::error(""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_layer_inside_shows_its_status() {
    let t = TestTelemetry::new();
    let app = routes(&t)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_millis(100),
        ))
        .layer(layer(&t).build());
    let addr = serve(app).await;
    assert_eq!(get(addr, "/slow").await.status, 503);
    let span = server_span(&t);
    assert_eq!(span.name, "GET /slow");
    assert_eq!(span.attr_str("error.type"), "503");
    let secs = span
        .end_time
        .duration_since(span.start_time)
        .expect("ordered")
        .as_secs_f64();
    assert!((0.09..1.5).contains(&secs), "ended at the timeout: {secs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_outside_or_inside_keeps_timing_and_body_sizes() {
    use tower_http::compression::CompressionLayer;
    for outside in [true, false] {
        let t = TestTelemetry::new();
        let otel = layer(&t).body_size(true).build();
        let app = if outside {
            routes(&t).layer(otel).layer(CompressionLayer::new())
        } else {
            routes(&t).layer(CompressionLayer::new()).layer(otel)
        };
        let addr = serve(app).await;
        let reply = send(
            request("GET", addr, "/stream")
                .header("accept-encoding", "gzip")
                .body(Default::default())
                .expect("req"),
        )
        .await;
        assert_eq!(reply.status, 200);
        let compressed = reply.headers.get("content-encoding").is_some();
        assert!(compressed, "gzip applied (outside={outside})");
        let span = server_span(&t);
        let secs = span
            .end_time
            .duration_since(span.start_time)
            .expect("ordered")
            .as_secs_f64();
        assert!(
            secs >= 0.45,
            "timed to the end of the stream: {secs} (outside={outside})"
        );
        let size = match span.attr("http.response.body.size") {
            Some(Value::I64(n)) => *n,
            other => panic!("body size missing: {other:?}"),
        };
        let plain: i64 = (0..5).map(|i| format!("chunk{i}\n").len() as i64).sum();
        if outside {
            // The layer sees the body before compression.
            assert_eq!(size, plain);
        } else {
            // Inside compression, the layer counts the bytes on the wire.
            assert_eq!(size, reply.body_len as i64);
            assert_ne!(size, plain);
        }
        let points = t.histogram("http.server.response.body.size");
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].sum as i64, size);
        assert_eq!(points[0].unit, "By");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_no_content_responses_are_not_cancelled() {
    let t = TestTelemetry::new();
    let addr = start(&t).await;
    let reply = send(
        request("HEAD", addr, "/users/1")
            .body(Default::default())
            .expect("req"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let span = server_span(&t);
    assert!(!span.has_attr("error.type"), "{:?}", span.attributes);
    t.reset();
    assert_eq!(get(addr, "/status/204").await.status, 204);
    assert!(!server_span(&t).has_attr("error.type"));
}
