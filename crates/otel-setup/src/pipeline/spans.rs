//! The span processor in front of every span exporter otel-setup installs.

use super::batch::{BatchSettings, Batcher, ExportFn};
use super::limits;
use super::losses::{Losses, Signal};
use super::Cancel;
use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;

/// What every span pipeline of one installation shares.
pub(crate) struct SpanPipelines {
    pub(crate) settings: BatchSettings,
    pub(crate) value_length_limit: Option<usize>,
    pub(crate) losses: Arc<Losses>,
    pub(crate) cancel: Arc<Cancel>,
    pub(crate) rt: tokio::runtime::Handle,
    pub(crate) resource: Resource,
}

impl SpanPipelines {
    /// A pipeline in front of `exporter`, which is given the resource.
    pub(crate) fn build<E: SpanExporter + 'static>(&self, mut exporter: E) -> SpanPipeline {
        exporter.set_resource(&self.resource);
        SpanPipeline::new(
            exporter,
            self.settings.clone(),
            self.value_length_limit,
            Arc::clone(&self.losses),
            Arc::clone(&self.cancel),
            &self.rt,
        )
    }
}

/// Cuts attribute values to the limit, then batches spans for `exporter`.
#[derive(Debug)]
pub(crate) struct SpanPipeline {
    batcher: Batcher<SpanData>,
    value_length_limit: Option<usize>,
    flush_timeout: Duration,
}

impl SpanPipeline {
    /// `exporter` must already carry its resource.
    pub(crate) fn new<E: SpanExporter + 'static>(
        exporter: E,
        settings: BatchSettings,
        value_length_limit: Option<usize>,
        losses: Arc<Losses>,
        cancel: Arc<Cancel>,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let exporter = Arc::new(exporter);
        let export: ExportFn<SpanData> = Box::new(move |batch| {
            let exporter = Arc::clone(&exporter);
            Box::pin(async move { exporter.export(batch).await })
        });
        let flush_timeout = settings.flush_timeout();
        SpanPipeline {
            batcher: Batcher::start(Signal::Traces, settings, export, losses, cancel, rt),
            value_length_limit,
            flush_timeout,
        }
    }

    pub(crate) fn batcher(&self) -> Batcher<SpanData> {
        self.batcher.clone()
    }
}

impl SpanProcessor for SpanPipeline {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, mut span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if let Some(limit) = self.value_length_limit {
            limits::truncate_span(&mut span, limit);
        }
        let bytes = limits::span_bytes(&span);
        self.batcher.offer(span, bytes);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.batcher.flush(self.flush_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.batcher.shutdown(timeout)
    }

    fn set_resource(&mut self, _resource: &Resource) {
        // The exporter was given the resource when it was built.
    }
}
