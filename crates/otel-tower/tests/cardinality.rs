//! Random paths and methods from hostile clients give a bounded number of
//! metric series and span names: `http.route` only from the router, `_OTHER`
//! for unknown methods.

mod common;

use axum::body::Body;
use common::*;
use http::Request;
use otel_testkit::TestTelemetry;
use std::collections::HashSet;
use tower::ServiceExt;

/// A small deterministic generator, so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn token(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
        (0..len)
            .map(|_| CHARS[(self.next() % CHARS.len() as u64) as usize] as char)
            .collect()
    }
}

fn server_span_names(t: &TestTelemetry) -> HashSet<String> {
    t.spans()
        .iter()
        .filter(|s| s.span_kind == opentelemetry::trace::SpanKind::Server)
        .map(|s| s.name.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_paths_and_methods_give_bounded_series_and_names() {
    let t = TestTelemetry::new();
    let app = routes(&t).layer(layer(&t).build());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let requests = std::env::var("CARDINALITY_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    let known = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    for i in 0..requests {
        let method = if i % 3 == 0 {
            let len = 1 + (rng.next() % 8) as usize;
            rng.token(len)
        } else {
            known[(rng.next() % known.len() as u64) as usize].to_string()
        };
        let path = if i % 5 == 0 {
            format!("/users/{}", rng.token(12))
        } else {
            format!("/{}/{}", rng.token(8), rng.token(16))
        };
        let req = Request::builder()
            .method(method.as_str())
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let status = app.clone().oneshot(req).await.expect("infallible").status();
        assert!(status.as_u16() < 500);
        if i % 2_000 == 0 {
            // Keep memory flat: spans are checked below from a sample.
            let names = server_span_names(&t);
            assert!(
                names.len() <= 2 * (known.len() + 1),
                "span names stay bounded: {names:?}"
            );
            t.reset();
        }
    }
    let names = server_span_names(&t);
    for name in &names {
        let (method, rest) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        assert!(known.contains(&method) || method == "HTTP", "{name}");
        assert!(rest.is_empty() || rest == "/users/{id}", "{name}");
    }
    let points = t.histogram("http.server.request.duration");
    // method (7 known + _OTHER) x route (none or /users/{id}) x a few statuses.
    assert!(points.len() <= 8 * 2 * 3, "{} series", points.len());
    let routes: HashSet<String> = points
        .iter()
        .filter_map(|p| p.attr("http.route").map(|v| v.as_str().into_owned()))
        .collect();
    assert_eq!(routes, HashSet::from(["/users/{id}".to_string()]));
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(total as usize, requests, "every request measured");
}
