//! The metric exporter wrapper: the SDK's periodic reader calls it from its
//! own thread; the export runs against otel-setup's runtime, bounded by
//! `OTEL_METRIC_EXPORT_TIMEOUT` and by the shutdown deadline, and its data
//! points are counted.

use super::batch::classify;
use super::losses::{DropCause, Losses, Signal};
use super::Cancel;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;

/// Data points in one collection.
pub(crate) fn data_points(metrics: &ResourceMetrics) -> u64 {
    fn points<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(h) => h.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|sm| sm.metrics())
        .map(|m| match m.data() {
            AggregatedMetrics::F64(d) => points(d),
            AggregatedMetrics::U64(d) => points(d),
            AggregatedMetrics::I64(d) => points(d),
        })
        .sum::<usize>() as u64
}

#[derive(Debug)]
pub(crate) struct MetricPipeline<E> {
    inner: E,
    rt: Handle,
    /// `None`: no limit.
    timeout: Option<Duration>,
    losses: Arc<Losses>,
    cancel: Arc<Cancel>,
}

impl<E> MetricPipeline<E> {
    pub(crate) fn new(
        inner: E,
        rt: Handle,
        timeout: Option<Duration>,
        losses: Arc<Losses>,
        cancel: Arc<Cancel>,
    ) -> Self {
        MetricPipeline {
            inner,
            rt,
            timeout,
            losses,
            cancel,
        }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for MetricPipeline<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let n = data_points(metrics);
        let Some(_running) = self.cancel.enter() else {
            self.losses
                .lost(Signal::Metrics, DropCause::ShutdownTimeout, n, None);
            return Err(OTelSdkError::AlreadyShutdown);
        };
        if Handle::try_current().is_ok() {
            // The periodic reader runs on a thread of its own; a caller
            // inside a runtime cannot block on ours.
            self.losses.lost(
                Signal::Metrics,
                DropCause::ExportFailed,
                n,
                Some("metric export called from inside an async runtime"),
            );
            return Err(OTelSdkError::InternalFailure(
                "metric export called from inside an async runtime".into(),
            ));
        }
        // `_running` keeps the runtime alive until this returns, and the
        // cancel ends it at the shutdown deadline.
        let result = self.rt.block_on(async {
            let export = async {
                match self.timeout {
                    Some(t) => match tokio::time::timeout(t, self.inner.export(metrics)).await {
                        Ok(r) => r,
                        Err(_) => Err(OTelSdkError::Timeout(t)),
                    },
                    None => self.inner.export(metrics).await,
                }
            };
            tokio::select! {
                r = export => Some(r),
                _ = self.cancel.cancelled() => None,
            }
        });
        match result {
            Some(Ok(())) => {
                self.losses.exported(Signal::Metrics, n);
                Ok(())
            }
            Some(Err(e)) => {
                self.losses
                    .lost(Signal::Metrics, classify(&e), n, Some(&e.to_string()));
                Err(e)
            }
            None => {
                self.losses
                    .lost(Signal::Metrics, DropCause::ShutdownTimeout, n, None);
                Err(OTelSdkError::AlreadyShutdown)
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _enter = self.rt.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
