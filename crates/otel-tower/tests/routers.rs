//! The full route template, however the router is put together: `nest`,
//! `nest_service` (an inner router, nested twice too), `merge`, `fallback`,
//! and a tower service mounted with `route_service`; the span name, its
//! `http.route` and the duration metric's `http.route` agree.

mod common;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use common::*;
use http::Request;
use otel_testkit::{SpanDataExt, TestTelemetry};
use tower::ServiceExt;

/// The span name, `http.route` and the metric's `http.route` of one request.
async fn recorded(
    app: Router,
    t: &TestTelemetry,
    path: &str,
) -> (String, Option<String>, Option<String>) {
    t.reset();
    let req = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("request");
    let status = app.oneshot(req).await.expect("infallible").status();
    assert!(status.is_success() || status == 404, "{path}: {status}");
    let span = server_span(t);
    let route = span.attr("http.route").map(|v| v.as_str().into_owned());
    let metric = t.histogram("http.server.request.duration");
    assert_eq!(metric.len(), 1, "{path}: one series");
    let metric_route = metric[0]
        .attr("http.route")
        .map(|v| v.as_str().into_owned());
    (span.name.to_string(), route, metric_route)
}

fn users() -> Router {
    Router::new().route("/users/{id}", get(|| async { "u" }))
}

type Build = fn(&TestTelemetry) -> Router;

fn inner_layered(t: &TestTelemetry) -> Router {
    users().layer(layer(t).build())
}

/// A plain tower service answering every request.
type Answer = std::future::Ready<Result<axum::response::Response, std::convert::Infallible>>;

fn service() -> tower::util::ServiceFn<fn(Request<Body>) -> Answer> {
    tower::service_fn(|_r: Request<Body>| {
        std::future::ready(Ok(axum::response::Response::new(Body::from("s"))))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_of_composing_a_router_reports_the_full_route() {
    let cases: [(&str, Build, &str, Option<&str>); 7] = [
        (
            "nest",
            |_| Router::new().nest("/api", users()),
            "/api/users/1",
            Some("/api/users/{id}"),
        ),
        (
            "nest_service, the inner router layered too",
            |t| Router::new().nest_service("/api", inner_layered(t)),
            "/api/users/1",
            Some("/api/users/{id}"),
        ),
        (
            "nest_service twice",
            |t| {
                Router::new().nest_service(
                    "/a",
                    Router::new()
                        .nest_service("/b", inner_layered(t))
                        .layer(layer(t).build()),
                )
            },
            "/a/b/users/1",
            Some("/a/b/users/{id}"),
        ),
        (
            "merge",
            |_| Router::new().merge(users()),
            "/users/1",
            Some("/users/{id}"),
        ),
        (
            "route_service",
            |_| Router::new().route_service("/svc/{id}", service()),
            "/svc/1",
            Some("/svc/{id}"),
        ),
        (
            "fallback: nothing matched",
            |_| {
                Router::new()
                    .route("/x", get(|| async { "x" }))
                    .fallback(|| async { "fb" })
            },
            "/nothing",
            None,
        ),
        (
            "nest_service with nothing matched inside",
            |t| Router::new().nest_service("/api", inner_layered(t)),
            "/api/nothing",
            None,
        ),
    ];
    for (what, build, path, want) in cases {
        let t = TestTelemetry::new();
        let app = build(&t).layer(layer(&t).build());
        let (name, route, metric_route) = recorded(app, &t, path).await;
        match want {
            Some(route_want) => {
                assert_eq!(name, format!("GET {route_want}"), "{what}");
                assert_eq!(route.as_deref(), Some(route_want), "{what}");
                assert_eq!(metric_route.as_deref(), Some(route_want), "{what}");
            }
            None => {
                assert_eq!(name, "GET", "{what}");
                assert_eq!(route, None, "{what}");
                assert_eq!(metric_route, None, "{what}");
            }
        }
        // One request, one span: an inner layer makes none of its own.
        assert_eq!(t.spans().len(), 1, "{what}: {:?}", t.spans());
        assert!(t.spans()[0].attr("http.response.status_code").is_some());
    }
}
