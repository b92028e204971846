//! One call for a test of an HTTP service (feature `http`): in-memory
//! providers, the W3C propagator, an [`OtelLayer`](otel_tower::OtelLayer)
//! and an [`OtelMiddleware`](otel_reqwest::OtelMiddleware) wired to them, a
//! server on loopback, and span assertions that read like the conventions.
//!
//! A complete test, as a new crate writes it. In its `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! otel-testkit = { version = "0.1", features = ["http"] }
//! axum = "0.8"
//! reqwest = "0.13"
//! tokio = { version = "1", features = ["full"] }
//! ```
//!
//! and in `tests/tracing.rs`:
//!
//! ```
//! use axum::{routing::get, Router};
//! use otel_testkit::http::{HttpTestKit, SpanKind};
//!
//! # fn main() {
//! # // As `#[tokio::test]` runs it: one thread.
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # rt.block_on(a_call_from_a_handler_is_one_trace());
//! # }
//! #[tokio::test]
//! # async fn unused() {}
//! async fn a_call_from_a_handler_is_one_trace() {
//!     let kit = HttpTestKit::new();
//!
//!     // A backend, and a frontend whose handler calls it.
//!     let backend = kit
//!         .serve(Router::new().route("/users/{id}", get(|| async { "alice" })).layer(kit.layer()))
//!         .await;
//!     let client = kit.client();
//!     let frontend = kit
//!         .serve(
//!             Router::new()
//!                 .route(
//!                     "/orders",
//!                     get(move || async move {
//!                         let url = format!("http://{backend}/users/1");
//!                         client.get(url).send().await.unwrap().text().await.unwrap()
//!                     }),
//!                 )
//!                 .layer(kit.layer()),
//!         )
//!         .await;
//!
//!     let body = reqwest::get(format!("http://{frontend}/orders")).await.unwrap().text().await.unwrap();
//!     assert_eq!(body, "alice");
//!
//!     let orders = kit.span("GET /orders").await.kind(SpanKind::Server).attr("http.route", "/orders");
//!     let call = kit.span("GET").await.kind(SpanKind::Client).child_of(&orders);
//!     kit.span("GET /users/{id}")
//!         .await
//!         .kind(SpanKind::Server)
//!         .child_of(&call)
//!         .attr("http.route", "/users/{id}")
//!         .attr("http.response.status_code", 200);
//! }
//! ```

use crate::{SpanData, SpanDataExt, TestTelemetry};
pub use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long [`HttpTestKit::span`] waits for a span to end.
pub const WAIT: Duration = Duration::from_secs(5);

/// In-memory telemetry and the instrumentation wired to it.
#[derive(Debug, Clone, Default)]
pub struct HttpTestKit {
    telemetry: TestTelemetry,
}

impl HttpTestKit {
    /// Records every span.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same, sampling with `sampler` (for what unsampled requests do).
    pub fn with_sampler(sampler: opentelemetry_sdk::trace::Sampler) -> Self {
        HttpTestKit {
            telemetry: TestTelemetry::with_sampler(sampler),
        }
    }

    /// The providers and what they captured.
    pub fn telemetry(&self) -> &TestTelemetry {
        &self.telemetry
    }

    /// An `OtelLayer` builder wired to the kit's providers and the W3C
    /// propagator, for options of your own.
    pub fn layer_builder(&self) -> otel_tower::OtelLayerBuilder {
        otel_tower::OtelLayer::builder()
            .tracer_provider(self.telemetry.tracer_provider())
            .meter_provider(self.telemetry.meter_provider())
            .propagator(otel_propagation::default_propagator())
    }

    /// The layer, as [`layer_builder`](Self::layer_builder) gives it.
    pub fn layer(&self) -> otel_tower::OtelLayer {
        self.layer_builder().build()
    }

    /// An `OtelMiddleware` builder wired the same way.
    pub fn middleware_builder(&self) -> otel_reqwest::OtelMiddlewareBuilder {
        otel_reqwest::OtelMiddleware::builder()
            .tracer_provider(self.telemetry.tracer_provider())
            .meter_provider(self.telemetry.meter_provider())
            .propagator(otel_propagation::default_propagator())
    }

    /// A reqwest client with the middleware: its calls are CLIENT spans and
    /// carry the current context.
    pub fn client(&self) -> reqwest_middleware::ClientWithMiddleware {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(self.middleware_builder().build())
            .build()
    }

    /// Serves `router` on 127.0.0.1 (a free port, with the peer's address
    /// for `client.address`) until the runtime ends; its address.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn serve(&self, router: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        addr
    }

    /// The one span named `name`, once it has ended (waiting up to
    /// [`WAIT`], without blocking the runtime, so it works in a one-thread
    /// `#[tokio::test]`), to assert on. Panics, listing the spans there are,
    /// if there is none or more than one.
    pub async fn span(&self, name: &str) -> SpanAssert {
        let deadline = Instant::now() + WAIT;
        loop {
            let spans = self.telemetry.spans();
            let found: Vec<&SpanData> = spans.iter().filter(|s| s.name == name).collect();
            match found.as_slice() {
                [one] => return SpanAssert((*one).clone()),
                [_, _, ..] => panic!(
                    "more than one span named {name:?}: {:?}",
                    spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
                ),
                [] if Instant::now() >= deadline => panic!(
                    "no span named {name:?} ended within {WAIT:?}; ended spans: {:?}",
                    spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
                ),
                [] => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

/// One ended span, with assertions that each panic with what was found
/// and return the span for the next.
#[derive(Debug, Clone)]
pub struct SpanAssert(SpanData);

impl SpanAssert {
    /// The span's data.
    pub fn data(&self) -> &SpanData {
        &self.0
    }

    /// Its kind is `kind`.
    #[track_caller]
    pub fn kind(self, kind: SpanKind) -> Self {
        assert_eq!(self.0.span_kind, kind, "span {:?}: kind", self.0.name);
        self
    }

    /// It is a direct child of `parent`, in the same trace.
    #[track_caller]
    pub fn child_of(self, parent: &SpanAssert) -> Self {
        crate::assert_child_of(&self.0, &parent.0);
        self
    }

    /// It has no parent in this process or from a caller: a new trace.
    #[track_caller]
    pub fn root(self) -> Self {
        assert_eq!(
            self.0.parent_span_id,
            opentelemetry::trace::SpanId::INVALID,
            "span {:?} has a parent",
            self.0.name
        );
        self
    }

    /// Its attribute `key` is `value` (an `i64` for integers).
    #[track_caller]
    pub fn attr(self, key: &str, value: impl Into<Value>) -> Self {
        let want = value.into();
        assert_eq!(
            self.0.attr(key),
            Some(&want),
            "span {:?}: attribute {key}; it has {:?}",
            self.0.name,
            self.0.attributes
        );
        self
    }

    /// It has no attribute `key`.
    #[track_caller]
    pub fn no_attr(self, key: &str) -> Self {
        assert!(
            self.0.attr(key).is_none(),
            "span {:?} has {key}: {:?}",
            self.0.name,
            self.0.attr(key)
        );
        self
    }

    /// Its status is an error.
    #[track_caller]
    pub fn error(self) -> Self {
        assert!(
            matches!(self.0.status, opentelemetry::trace::Status::Error { .. }),
            "span {:?}: status {:?}",
            self.0.name,
            self.0.status
        );
        self
    }
}
