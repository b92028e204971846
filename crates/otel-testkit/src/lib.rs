//! Capture OpenTelemetry spans and metrics in memory, and assert on them in
//! your own tests.
//!
//! ```
//! use opentelemetry::trace::{Tracer, TracerProvider};
//! use otel_testkit::TestTelemetry;
//!
//! let telemetry = TestTelemetry::new();
//! let tracer = telemetry.tracer_provider().tracer("test");
//! tracer.in_span("parent", |_| {
//!     tracer.in_span("child", |_| {});
//! });
//!
//! let parent = telemetry.span("parent");
//! let child = telemetry.span("child");
//! otel_testkit::assert_child_of(&child, &parent);
//! ```
//!
//! Testing an HTTP service? The `http` feature's `http::HttpTestKit`
//! gives, in one call, these providers with the W3C propagator, an
//! `OtelLayer` and an `OtelMiddleware` client wired to them, a loopback
//! server, and assertions such as
//! `kit.span("GET /users/{id}").kind(SpanKind::Server).child_of(&call).attr("http.route", "/users/{id}")`;
//! its page has a complete test to copy. (A bare `TestTelemetry` installs
//! no propagator: without one, a server span and the client span that
//! called it are in different traces.)
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "tls")]
pub mod tls;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};
use std::time::{Duration, Instant};

pub use opentelemetry_sdk::trace::SpanData;

/// A tracer provider and a meter provider that keep everything in memory.
///
/// Spans are exported as each one ends; metrics when [`metrics`] is called.
///
/// [`metrics`]: TestTelemetry::metrics
#[derive(Debug, Clone)]
pub struct TestTelemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTelemetry {
    /// Records every span.
    pub fn new() -> Self {
        Self::with_sampler(Sampler::AlwaysOn)
    }

    /// Samples with `sampler`, for tests of what unsampled requests do.
    pub fn with_sampler(sampler: Sampler) -> Self {
        let spans = InMemorySpanExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(spans.clone())
            .build();
        let metrics = InMemoryMetricExporter::default();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(metrics.clone()).build())
            .build();
        TestTelemetry {
            tracer_provider,
            meter_provider,
            spans,
            metrics,
        }
    }

    /// The tracer provider to instrument with.
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider to instrument with.
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Every span that has ended, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// Forgets the spans and metrics captured so far.
    pub fn reset(&self) {
        self.spans.reset();
        self.metrics.reset();
    }

    /// The one ended span named `name`. Panics, listing the spans there are,
    /// if there is none or more than one.
    pub fn span(&self, name: &str) -> SpanData {
        let spans = self.spans();
        let mut found = spans.iter().filter(|s| s.name == name);
        match (found.next(), found.next()) {
            (Some(span), None) => span.clone(),
            (None, _) => panic!("no span named {name:?}; ended spans: {:?}", names(&spans)),
            (Some(_), Some(_)) => panic!("more than one span named {name:?}: {:?}", names(&spans)),
        }
    }

    /// Waits (polling, up to `timeout`) until at least `count` spans have
    /// ended, and returns them. Spans end on whatever task finishes the
    /// work, so a test may see the response before the span.
    pub fn wait_for_spans(&self, count: usize, timeout: Duration) -> Vec<SpanData> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Collects the metrics recorded so far (cumulative).
    pub fn metrics(&self) -> Option<ResourceMetrics> {
        self.metrics.reset();
        self.meter_provider.force_flush().ok()?;
        self.metrics.get_finished_metrics().ok()?.pop()
    }

    /// Calls `f` with the data of every metric named `name` collected so far.
    fn each_metric(
        &self,
        name: &str,
        mut f: impl FnMut(&opentelemetry_sdk::metrics::data::Metric),
    ) {
        let Some(rm) = self.metrics() else {
            return;
        };
        for metric in rm
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
        {
            f(metric);
        }
    }

    /// The data points of the histogram `name`: attributes, count and sum.
    pub fn histogram(&self, name: &str) -> Vec<HistogramPoint> {
        let mut out = Vec::new();
        self.each_metric(name, |metric| {
            let unit = metric.unit();
            match metric.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    out.extend(h.data_points().map(|p| HistogramPoint {
                        attributes: sorted(p.attributes()),
                        count: p.count(),
                        sum: p.sum(),
                        bounds: p.bounds().collect(),
                        unit: unit.to_owned(),
                    }))
                }
                AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                    out.extend(h.data_points().map(|p| HistogramPoint {
                        attributes: sorted(p.attributes()),
                        count: p.count(),
                        sum: p.sum() as f64,
                        bounds: p.bounds().collect(),
                        unit: unit.to_owned(),
                    }))
                }
                _ => {}
            }
        });
        out
    }

    /// The data points of the sum or up-down counter `name`.
    pub fn sum(&self, name: &str) -> Vec<(Vec<KeyValue>, f64)> {
        let mut out = Vec::new();
        self.each_metric(name, |metric| match metric.data() {
            AggregatedMetrics::I64(MetricData::Sum(s)) => out.extend(
                s.data_points()
                    .map(|p| (sorted(p.attributes()), p.value() as f64)),
            ),
            AggregatedMetrics::U64(MetricData::Sum(s)) => out.extend(
                s.data_points()
                    .map(|p| (sorted(p.attributes()), p.value() as f64)),
            ),
            AggregatedMetrics::F64(MetricData::Sum(s)) => {
                out.extend(s.data_points().map(|p| (sorted(p.attributes()), p.value())))
            }
            _ => {}
        });
        out
    }
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_ref()).collect()
}

fn sorted<'a>(attrs: impl Iterator<Item = &'a KeyValue>) -> Vec<KeyValue> {
    let mut v: Vec<KeyValue> = attrs.cloned().collect();
    v.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    v
}

/// A span exporter that drops every batch: for benchmarks that should pay
/// for the whole SDK pipeline but no I/O.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSpanExporter;

impl opentelemetry_sdk::trace::SpanExporter for DiscardSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// One histogram data point.
#[derive(Debug, Clone)]
pub struct HistogramPoint {
    /// Its attributes, sorted by key.
    pub attributes: Vec<KeyValue>,
    /// How many values were recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The bucket boundaries.
    pub bounds: Vec<f64>,
    /// The instrument's unit.
    pub unit: String,
}

impl HistogramPoint {
    /// The attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// The attribute keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        self.attributes.iter().map(|kv| kv.key.as_str()).collect()
    }
}

/// Reads a span's attributes.
pub trait SpanDataExt {
    /// The attribute `key`, if present.
    fn attr(&self, key: &str) -> Option<&Value>;
    /// The attribute `key` as a string; panics if absent.
    fn attr_str(&self, key: &str) -> String;
    /// Whether the span has the attribute `key`.
    fn has_attr(&self, key: &str) -> bool {
        self.attr(key).is_some()
    }
    /// The trace id.
    fn trace_id(&self) -> TraceId;
    /// The span id.
    fn span_id(&self) -> SpanId;
}

impl SpanDataExt for SpanData {
    fn attr(&self, key: &str) -> Option<&Value> {
        let key = Key::from(key.to_owned());
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }

    fn attr_str(&self, key: &str) -> String {
        match self.attr(key) {
            Some(v) => v.as_str().into_owned(),
            None => panic!(
                "span {:?} has no attribute {key}: {:?}",
                self.name, self.attributes
            ),
        }
    }

    fn trace_id(&self) -> TraceId {
        self.span_context.trace_id()
    }

    fn span_id(&self) -> SpanId {
        self.span_context.span_id()
    }
}

/// Waits (polling every 10 ms, up to `timeout`) until `ready` holds, and
/// panics naming `what` if it never does: for conditions another thread or
/// process brings about (a span exported, a drop counted), instead of a
/// sleep that hopes.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let done = Arc::new(AtomicBool::new(false));
/// let d = Arc::clone(&done);
/// std::thread::spawn(move || d.store(true, Ordering::SeqCst));
/// otel_testkit::wait_until("the thread to finish", Duration::from_secs(5), || {
///     done.load(Ordering::SeqCst)
/// });
/// ```
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts that `child` is a direct child of `parent` in the same trace.
pub fn assert_child_of(child: &SpanData, parent: &SpanData) {
    assert_eq!(
        child.span_context.trace_id(),
        parent.span_context.trace_id(),
        "{:?} and {:?} are in different traces",
        child.name,
        parent.name
    );
    assert_eq!(
        child.parent_span_id,
        parent.span_context.span_id(),
        "{:?} is not a child of {:?}",
        child.name,
        parent.name
    );
}
