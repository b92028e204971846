//! The server's metric instruments (semantic conventions, HTTP metrics).

use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use opentelemetry::KeyValue;
use otel_http_conventions::semconv::metric;
use otel_http_conventions::DURATION_BUCKETS;

/// Advised boundaries for body sizes are not given by the conventions; these
/// cover 0 B to 64 MiB in powers of four.
const BODY_SIZE_BUCKETS: [f64; 14] = [
    0.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
];

pub(crate) struct ServerMetrics {
    pub(crate) duration: Histogram<f64>,
    pub(crate) active: Option<UpDownCounter<i64>>,
    pub(crate) request_body: Option<Histogram<u64>>,
    pub(crate) response_body: Option<Histogram<u64>>,
}

impl ServerMetrics {
    pub(crate) fn new(meter: &Meter, active: bool, body_size: bool) -> Self {
        let duration = meter
            .f64_histogram(metric::HTTP_SERVER_REQUEST_DURATION)
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build();
        let active = active.then(|| {
            meter
                .i64_up_down_counter(metric::HTTP_SERVER_ACTIVE_REQUESTS)
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build()
        });
        let body = |name: &'static str, description: &'static str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(description)
                .with_boundaries(BODY_SIZE_BUCKETS.to_vec())
                .build()
        };
        let (request_body, response_body) = if body_size {
            (
                Some(body(
                    metric::HTTP_SERVER_REQUEST_BODY_SIZE,
                    "Size of HTTP server request bodies.",
                )),
                Some(body(
                    metric::HTTP_SERVER_RESPONSE_BODY_SIZE,
                    "Size of HTTP server response bodies.",
                )),
            )
        } else {
            (None, None)
        };
        ServerMetrics {
            duration,
            active,
            request_body,
            response_body,
        }
    }

    pub(crate) fn active_add(&self, delta: i64, attrs: &[KeyValue]) {
        if let Some(active) = &self.active {
            active.add(delta, attrs);
        }
    }
}
