//! The pipeline's self-metrics, by the semantic conventions' SDK metrics
//! (Development status there): `otel.sdk.processor.{span,log}.processed`,
//! `otel.sdk.exporter.{span,log,metric_data_point}.exported`, and the
//! queues' `otel.sdk.processor.{span,log}.queue.size` / `.queue.capacity`.
//! Read from the same counters as [`Telemetry::dropped`](crate::Telemetry::dropped).

use super::batch::Batcher;
use super::losses::{DropCause, Losses, Signal};
use crate::env::{EffectiveConfig, Protocol};
use opentelemetry::metrics::{Meter, MeterProvider, ObservableCounter, ObservableUpDownCounter};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use std::sync::Arc;

/// Keeps the instruments registered for as long as the telemetry lives.
#[derive(Debug, Default)]
pub(crate) struct SelfMetrics {
    _counters: Vec<ObservableCounter<u64>>,
    _gauges: Vec<ObservableUpDownCounter<i64>>,
}

const COMPONENT_TYPE: &str = "otel.component.type";
const COMPONENT_NAME: &str = "otel.component.name";
const ERROR_TYPE: &str = "error.type";

/// The exporter's `otel.component.type` and `otel.component.name`
/// (`otlp_grpc_span_exporter`, `otlp_grpc_span_exporter/0`).
fn exporter_component(signal: &str, protocol: Protocol) -> (String, String) {
    let transport = match protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http",
        Protocol::HttpJson => "http_json",
    };
    let t = format!("otlp_{transport}_{signal}_exporter");
    let name = format!("{t}/0");
    (t, name)
}

/// One `processed` counter and one `exported` counter for a signal.
fn counters(
    meter: &Meter,
    losses: &Arc<Losses>,
    signal: Signal,
    (processed_name, exported_name, unit): (&'static str, &'static str, &'static str),
    processor: Option<(String, String)>,
    exporter: (String, String),
    out: &mut Vec<ObservableCounter<u64>>,
) {
    if let Some((ptype, pname)) = processor {
        let l = Arc::clone(losses);
        out.push(
            meter
                .u64_observable_counter(processed_name)
                .with_unit(unit)
                .with_description("Items whose processing ended, by whether they were lost and why")
                .with_callback(move |o| {
                    let d = l.snapshot();
                    let base = [
                        KeyValue::new(COMPONENT_TYPE, ptype.clone()),
                        KeyValue::new(COMPONENT_NAME, pname.clone()),
                    ];
                    // Handed to the exporter: exported, or lost by the export.
                    let handed: u64 = d.exported(signal)
                        + DropCause::ALL
                            .iter()
                            .filter(|c| !c.before_export() && **c != DropCause::TooLarge)
                            .map(|c| d.get(signal, *c))
                            .sum::<u64>();
                    o.observe(handed, &base);
                    for c in DropCause::ALL.iter().filter(|c| c.before_export()) {
                        let mut attrs = base.to_vec();
                        attrs.push(KeyValue::new(ERROR_TYPE, c.error_type()));
                        o.observe(d.get(signal, *c), &attrs);
                    }
                })
                .build(),
        );
    }
    let (etype, ename) = exporter;
    let l = Arc::clone(losses);
    out.push(
        meter
            .u64_observable_counter(exported_name)
            .with_unit(unit)
            .with_description("Items the exporter finished with, by whether they were lost and why")
            .with_callback(move |o| {
                let d = l.snapshot();
                let base = [
                    KeyValue::new(COMPONENT_TYPE, etype.clone()),
                    KeyValue::new(COMPONENT_NAME, ename.clone()),
                ];
                o.observe(d.exported(signal), &base);
                for c in DropCause::ALL.iter().filter(|c| !c.before_export()) {
                    let mut attrs = base.to_vec();
                    attrs.push(KeyValue::new(ERROR_TYPE, c.error_type()));
                    o.observe(d.get(signal, *c), &attrs);
                }
            })
            .build(),
    );
}

fn queue<T: Send + 'static>(
    meter: &Meter,
    names: (&'static str, &'static str, &'static str),
    batchers: &[Batcher<T>],
    ptype: &str,
    out: &mut Vec<ObservableUpDownCounter<i64>>,
) {
    let (size_name, capacity_name, unit) = names;
    for (measure, name) in [(true, size_name), (false, capacity_name)] {
        let queues: Vec<(Batcher<T>, [KeyValue; 2])> = batchers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    b.clone(),
                    [
                        KeyValue::new(COMPONENT_TYPE, ptype.to_owned()),
                        KeyValue::new(COMPONENT_NAME, format!("{ptype}/{i}")),
                    ],
                )
            })
            .collect();
        out.push(
            meter
                .i64_observable_up_down_counter(name)
                .with_unit(unit)
                .with_callback(move |o| {
                    for (b, attrs) in &queues {
                        let v = if measure { b.len() } else { b.capacity() };
                        o.observe(v as i64, attrs);
                    }
                })
                .build(),
        );
    }
}

pub(crate) fn register(
    provider: &SdkMeterProvider,
    losses: &Arc<Losses>,
    span_batchers: &[Batcher<opentelemetry_sdk::trace::SpanData>],
    #[cfg(feature = "tracing")] log_batchers: &[Batcher<(
        opentelemetry_sdk::logs::SdkLogRecord,
        opentelemetry::InstrumentationScope,
    )>],
    cfg: &EffectiveConfig,
) -> SelfMetrics {
    let meter = provider.meter("otel-setup");
    let mut counters_out = Vec::new();
    let mut gauges = Vec::new();
    counters(
        &meter,
        losses,
        Signal::Traces,
        (
            "otel.sdk.processor.span.processed",
            "otel.sdk.exporter.span.exported",
            "{span}",
        ),
        Some((
            "batching_span_processor".to_owned(),
            "batching_span_processor/0".to_owned(),
        )),
        exporter_component("span", cfg.traces_otlp.protocol),
        &mut counters_out,
    );
    queue(
        &meter,
        (
            "otel.sdk.processor.span.queue.size",
            "otel.sdk.processor.span.queue.capacity",
            "{span}",
        ),
        span_batchers,
        "batching_span_processor",
        &mut gauges,
    );
    counters(
        &meter,
        losses,
        Signal::Metrics,
        (
            "otel.sdk.processor.metric_data_point.processed",
            "otel.sdk.exporter.metric_data_point.exported",
            "{data_point}",
        ),
        None,
        exporter_component("metric", cfg.metrics_otlp.protocol),
        &mut counters_out,
    );
    #[cfg(feature = "tracing")]
    {
        counters(
            &meter,
            losses,
            Signal::Logs,
            (
                "otel.sdk.processor.log.processed",
                "otel.sdk.exporter.log.exported",
                "{log_record}",
            ),
            Some((
                "batching_log_processor".to_owned(),
                "batching_log_processor/0".to_owned(),
            )),
            exporter_component("log", cfg.logs_otlp.protocol),
            &mut counters_out,
        );
        queue(
            &meter,
            (
                "otel.sdk.processor.log.queue.size",
                "otel.sdk.processor.log.queue.capacity",
                "{log_record}",
            ),
            log_batchers,
            "batching_log_processor",
            &mut gauges,
        );
    }
    SelfMetrics {
        _counters: counters_out,
        _gauges: gauges,
    }
}
