//! The console waterfall, fed by a service that calls itself over loopback:
//! one trace, two server spans in this process (the second a child of the
//! first's client call), printed as one picture, each span under its
//! parent.

use axum::routing::get;
use axum::Router;
use otel_setup::waterfall::WaterfallProcessor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().map(|v| v.clone()).unwrap_or_default()).unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_calling_itself_is_one_picture_per_trace() {
    let out = Shared::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name("self-caller")
                .build(),
        )
        .with_span_processor(WaterfallProcessor::to_writer(out.clone()))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            otel_reqwest::OtelMiddleware::builder()
                .tracer_provider(&provider)
                .propagator(otel_propagation::default_propagator())
                .build(),
        )
        .build();
    let app = Router::new()
        .route("/inner", get(|| async { "inner" }))
        .route(
            "/outer",
            get(move || {
                let client = client.clone();
                async move {
                    client
                        .get(format!("http://{addr}/inner"))
                        .send()
                        .await
                        .expect("inner answers")
                        .text()
                        .await
                        .expect("body")
                }
            }),
        )
        .layer(
            otel_tower::OtelLayer::builder()
                .tracer_provider(&provider)
                .propagator(otel_propagation::default_propagator())
                .build(),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    for _ in 0..3 {
        let body = reqwest::get(format!("http://{addr}/outer"))
            .await
            .expect("outer answers")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "inner");
    }
    // Printed when the last span of each trace ends (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.text().matches("trace ").count() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let text = out.text();
    let pictures: Vec<&str> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .collect();
    assert_eq!(
        pictures.len(),
        3,
        "one picture per request's trace:\n{text}"
    );
    let mut ids = std::collections::HashSet::new();
    for picture in pictures {
        let lines: Vec<&str> = picture.lines().collect();
        assert!(
            ids.insert(lines[0].to_owned()),
            "a trace printed twice:\n{text}"
        );
        assert_eq!(lines.len(), 4, "{picture}");
        assert!(lines[1].starts_with("GET /outer "), "{picture}");
        assert!(lines[2].starts_with("└─ GET (client) "), "{picture}");
        assert!(lines[3].starts_with("   └─ GET /inner "), "{picture}");
    }
}
