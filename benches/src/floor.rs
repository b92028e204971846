//! The floor: the least an OpenTelemetry-native server layer can do per
//! request on this SDK, as a measuring point, not as instrumentation
//! anyone should use.
//!
//! Per request it extracts the caller's context (otel-web's direct W3C
//! extraction, the cheapest there is), builds one server span with a
//! fixed name on the SDK tracer, makes its context current while the
//! handler's future is polled, and when the response head is ready ends
//! the span and records one duration through a histogram bound once, at
//! start-up, to the only attribute set the bench sends. It does not wrap
//! the body (so a streamed response is timed short), looks nothing up,
//! normalizes nothing, and with `attributes` records six of the default
//! attributes (as many as the minimal layer of the budget's issue records:
//! five at span start, the status code at the end), without it none.
//! Whatever a real layer adds to that is its own cost; what the floor
//! costs is the SDK's, axum's and the propagation's.

use http::{Request, Response};
use opentelemetry::metrics::BoundHistogram;
use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt, Tracer as _, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use otel_http_conventions::semconv::attribute as attr;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Poll};
use std::time::Instant;

const ROUTE: &str = "/users/{id}";

struct Shared {
    tracer: SdkTracer,
    duration: BoundHistogram<f64>,
    attributes: bool,
}

/// The floor layer; `attributes` adds the six attributes.
#[derive(Clone)]
pub struct FloorLayer(Arc<Shared>);

impl FloorLayer {
    pub fn new(provider: &SdkTracerProvider, attributes: bool) -> Self {
        let histogram = opentelemetry::global::meter_provider()
            .meter("floor")
            .f64_histogram(otel_http_conventions::semconv::metric::HTTP_SERVER_REQUEST_DURATION)
            .with_unit("s")
            .build();
        let duration = histogram.bind(&[
            KeyValue::new(attr::HTTP_REQUEST_METHOD, "GET"),
            KeyValue::new(attr::URL_SCHEME, "http"),
            KeyValue::new(attr::HTTP_ROUTE, ROUTE),
            KeyValue::new(attr::HTTP_RESPONSE_STATUS_CODE, 200),
            KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, "1.1"),
        ]);
        FloorLayer(Arc::new(Shared {
            tracer: provider.tracer("floor"),
            duration,
            attributes,
        }))
    }
}

impl<S> tower::Layer<S> for FloorLayer {
    type Service = FloorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FloorService {
            inner,
            shared: Arc::clone(&self.0),
        }
    }
}

#[derive(Clone)]
pub struct FloorService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B, R> tower::Service<Request<B>> for FloorService<S>
where
    S: tower::Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = FloorFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let parent = otel_propagation::extract(req.headers());
        let mut builder = SpanBuilder::from_name("GET /users/{id}").with_kind(SpanKind::Server);
        if self.shared.attributes {
            builder = builder.with_attributes(vec![
                KeyValue::new(attr::HTTP_REQUEST_METHOD, "GET"),
                KeyValue::new(attr::HTTP_ROUTE, ROUTE),
                KeyValue::new(attr::URL_SCHEME, "http"),
                KeyValue::new(attr::URL_PATH, req.uri().path().to_owned()),
                KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, "1.1"),
            ]);
        }
        let span = self.shared.tracer.build_with_context(builder, &parent);
        FloorFuture {
            inner: self.inner.call(req),
            cx: parent.with_span(span),
            start,
            shared: Arc::clone(&self.shared),
        }
    }
}

pin_project! {
    pub struct FloorFuture<F> {
        #[pin]
        inner: F,
        cx: Context,
        start: Instant,
        shared: Arc<Shared>,
    }
}

impl<F, R, E> Future for FloorFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _guard = this.cx.clone().attach();
            ready!(this.inner.poll(cx))
        };
        let span = this.cx.span();
        if let Ok(response) = &result {
            if this.shared.attributes {
                span.set_attribute(KeyValue::new(
                    attr::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(response.status().as_u16()),
                ));
            }
        }
        if span.is_recording() {
            span.end();
        }
        this.shared
            .duration
            .record(this.start.elapsed().as_secs_f64());
        Poll::Ready(result)
    }
}
