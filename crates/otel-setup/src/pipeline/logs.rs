//! The log record processor in front of the OTLP log exporter (`tracing`
//! feature): the same queue as spans, bounded in items and bytes.

use super::batch::{BatchSettings, Batcher, ExportFn};
use super::losses::{Losses, Signal};
use super::Cancel;
use opentelemetry::logs::AnyValue;
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::Resource;
use std::sync::Arc;
use std::time::Duration;

type Item = (SdkLogRecord, InstrumentationScope);

fn any_value_bytes(v: &AnyValue) -> usize {
    match v {
        AnyValue::String(s) => s.as_str().len() * 2,
        AnyValue::Bytes(b) => b.len() * 2,
        AnyValue::ListAny(l) => l.iter().map(|v| 16 + any_value_bytes(v)).sum(),
        AnyValue::Map(m) => m
            .iter()
            .map(|(k, v)| 48 + k.as_str().len() * 2 + any_value_bytes(v))
            .sum(),
        _ => 32,
    }
}

/// An upper bound of what a record takes in an OTLP request.
fn record_bytes(record: &SdkLogRecord, scope: &InstrumentationScope) -> usize {
    192 + scope.name().len()
        + record.body().map(any_value_bytes).unwrap_or(0)
        + record
            .attributes_iter()
            .map(|(k, v)| 48 + k.as_str().len() * 2 + any_value_bytes(v))
            .sum::<usize>()
}

#[derive(Debug)]
pub(crate) struct LogPipeline {
    batcher: Batcher<Item>,
    flush_timeout: Duration,
}

impl LogPipeline {
    /// `exporter` must already carry its resource.
    pub(crate) fn new<E: LogExporter + 'static>(
        exporter: E,
        settings: BatchSettings,
        losses: Arc<Losses>,
        cancel: Arc<Cancel>,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let exporter = Arc::new(exporter);
        let export: ExportFn<Item> = Box::new(move |items| {
            let exporter = Arc::clone(&exporter);
            Box::pin(async move {
                let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
                    items.iter().map(|(r, s)| (r, s)).collect();
                exporter.export(LogBatch::new(&refs)).await
            })
        });
        let flush_timeout = settings.flush_timeout();
        LogPipeline {
            batcher: Batcher::start(Signal::Logs, settings, export, losses, cancel, rt),
            flush_timeout,
        }
    }

    pub(crate) fn batcher(&self) -> Batcher<Item> {
        self.batcher.clone()
    }
}

impl LogProcessor for LogPipeline {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let bytes = record_bytes(record, scope);
        self.batcher.offer((record.clone(), scope.clone()), bytes);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.batcher.flush(self.flush_timeout)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.batcher.shutdown(timeout)
    }

    fn set_resource(&mut self, _resource: &Resource) {}
}
