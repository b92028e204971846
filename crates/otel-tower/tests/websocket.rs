//! A WebSocket upgrade (`101 Switching Protocols`, axum's
//! `WebSocketUpgrade`) over a real connection with a real WebSocket client:
//! the server span ends when the 101 is sent, not when the socket closes,
//! and `http.server.active_requests` drops then, while the socket lives on.

mod common;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;
use common::*;
use futures_util::{SinkExt, StreamExt};
use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use otel_testkit::{SpanDataExt, TestTelemetry};
use std::time::{Duration, Instant};

fn active(t: &TestTelemetry) -> f64 {
    t.sum("http.server.active_requests")
        .iter()
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_ends_its_span_with_the_101_and_the_socket_lives_on() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/ws",
            get(|ws: WebSocketUpgrade| async move {
                ws.on_upgrade(|mut socket| async move {
                    // Echo until the client closes.
                    while let Some(Ok(msg)) = socket.recv().await {
                        if matches!(msg, Message::Close(_)) {
                            break;
                        }
                        if socket.send(msg).await.is_err() {
                            break;
                        }
                    }
                })
            }),
        )
        .layer(layer(&t).active_requests(true).build());
    let addr = serve(app).await;
    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("the upgrade succeeds");
    assert_eq!(response.status(), 101);

    // While the socket is open: the request's span has ended...
    let deadline = Instant::now() + WAIT;
    let span = loop {
        if let Some(s) = t
            .spans()
            .into_iter()
            .find(|s| s.span_kind == SpanKind::Server)
        {
            break s;
        }
        assert!(Instant::now() < deadline, "the span ends with the 101");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(span.name, "GET /ws");
    assert_eq!(
        span.attr("http.response.status_code"),
        Some(&Value::I64(101))
    );
    assert!(!span.has_attr("error.type"), "an upgrade is not a failure");
    assert_eq!(span.status, opentelemetry::trace::Status::Unset);
    // ...the active-requests counter is back to zero...
    assert_eq!(active(&t), 0.0);
    // ...and the socket still works, for as long as it lives.
    for text in ["one", "two"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("send");
        let echoed = socket.next().await.expect("a reply").expect("a message");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    assert_eq!(active(&t), 0.0);
    let points = t.histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].count, 1);
    assert_eq!(
        points[0].attr("http.response.status_code"),
        Some(&Value::I64(101))
    );
    socket.close(None).await.expect("close");
    // The socket's end changes nothing of the request's.
    assert_eq!(
        t.spans()
            .iter()
            .filter(|s| s.span_kind == SpanKind::Server)
            .count(),
        1
    );
}
