//! Finished traces drawn as a waterfall in the terminal:
//!
//! ```text
//! POST /order      order-service  [   0.0ms -  150.0ms]  ██████████████████████████████
//! ├─ validate_order order-service [   5.0ms -   15.0ms]   ██
//! └─ GET           order-service  [  20.0ms -  145.0ms]      █████████████████████████
//!    └─ GET /users/{id} user-service [22.0ms - 140.0ms]      ███████████████████████
//! ```
//!
//! [`render`] draws any set of spans (from one service or from several, as
//! the demo collects them), one picture per trace id, every span of the
//! trace in it, under its parent. [`WaterfallProcessor`] is the `console`
//! trace exporter: it prints a trace once no span of it is still open in
//! this process, so a service that calls itself (or another service in the
//! same process) over the network gets one picture, not one per server
//! span. [`WaterfallExporter`] prints each trace when a local root span (one
//! whose parent is not from this process) ends.

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One span as the waterfall needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct WaterfallSpan {
    /// Trace it belongs to.
    pub trace_id: TraceId,
    /// Its id.
    pub span_id: SpanId,
    /// Its parent's id (`SpanId::INVALID` for a root).
    pub parent_id: SpanId,
    /// Span name.
    pub name: String,
    /// `service.name` of the process that recorded it.
    pub service: String,
    /// Kind.
    pub kind: SpanKind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Whether its status is error.
    pub error: bool,
}

impl WaterfallSpan {
    /// From an SDK span and its service name.
    pub fn from_span_data(span: &SpanData, service: &str) -> Self {
        WaterfallSpan {
            trace_id: span.span_context.trace_id(),
            span_id: span.span_context.span_id(),
            parent_id: span.parent_span_id,
            name: span.name.to_string(),
            service: service.to_owned(),
            kind: span.span_kind.clone(),
            start: span.start_time,
            end: span.end_time,
            error: matches!(span.status, Status::Error { .. }),
        }
    }
}

const BAR_WIDTH: usize = 30;

fn millis(from: SystemTime, to: SystemTime) -> f64 {
    to.duration_since(from)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Draws every trace in `spans`, one tree per trace, children in start order.
///
/// ```
/// use opentelemetry::trace::{SpanId, SpanKind, TraceId};
/// use otel_setup::waterfall::{render, WaterfallSpan};
/// use std::time::{Duration, SystemTime};
///
/// let t0 = SystemTime::now();
/// let span = |id: u64, parent: u64, name: &str, from: u64, to: u64| WaterfallSpan {
///     trace_id: TraceId::from(1u128),
///     span_id: SpanId::from(id),
///     parent_id: SpanId::from(parent),
///     name: name.into(),
///     service: "order-service".into(),
///     kind: SpanKind::Internal,
///     start: t0 + Duration::from_millis(from),
///     end: t0 + Duration::from_millis(to),
///     error: false,
/// };
/// let text = render(&[span(1, 0, "POST /order", 0, 150), span(2, 1, "validate_order", 5, 15)]);
/// assert!(text.contains("POST /order"));
/// assert!(text.contains("└─ validate_order"));
/// ```
pub fn render(spans: &[WaterfallSpan]) -> String {
    let mut by_trace: Vec<(TraceId, Vec<&WaterfallSpan>)> = Vec::new();
    for s in spans {
        match by_trace.iter_mut().find(|(t, _)| *t == s.trace_id) {
            Some((_, v)) => v.push(s),
            None => by_trace.push((s.trace_id, vec![s])),
        }
    }
    // Traces in the order they started.
    by_trace.sort_by_key(|(_, spans)| spans.iter().map(|s| s.start).min());
    let mut out = String::new();
    for (trace_id, spans) in by_trace {
        let start = spans
            .iter()
            .map(|s| s.start)
            .min()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let end = spans.iter().map(|s| s.end).max().unwrap_or(start);
        let total = millis(start, end).max(0.001);
        let ids: Vec<SpanId> = spans.iter().map(|s| s.span_id).collect();
        let mut children: HashMap<SpanId, Vec<&WaterfallSpan>> = HashMap::new();
        let mut roots = Vec::new();
        for s in &spans {
            if ids.contains(&s.parent_id) {
                children.entry(s.parent_id).or_default().push(s);
            } else {
                roots.push(*s);
            }
        }
        for list in children.values_mut() {
            list.sort_by_key(|s| s.start);
        }
        roots.sort_by_key(|s| s.start);
        // One row a span: (tree prefix + name, service, from, to, error).
        let mut rows: Vec<(String, &str, f64, f64, bool)> = Vec::new();
        fn walk<'a>(
            s: &'a WaterfallSpan,
            prefix: &str,
            connector: &str,
            children: &HashMap<SpanId, Vec<&'a WaterfallSpan>>,
            start: SystemTime,
            rows: &mut Vec<(String, &'a str, f64, f64, bool)>,
        ) {
            let kind = match s.kind {
                SpanKind::Client => " (client)",
                _ => "",
            };
            rows.push((
                format!("{prefix}{connector}{}{kind}", s.name),
                &s.service,
                millis(start, s.start),
                millis(start, s.end),
                s.error,
            ));
            let child_prefix = match connector {
                "├─ " => format!("{prefix}│  "),
                "└─ " => format!("{prefix}   "),
                _ => prefix.to_owned(),
            };
            if let Some(list) = children.get(&s.span_id) {
                for (i, c) in list.iter().enumerate() {
                    let conn = if i + 1 == list.len() {
                        "└─ "
                    } else {
                        "├─ "
                    };
                    walk(c, &child_prefix, conn, children, start, rows);
                }
            }
        }
        for root in roots {
            walk(root, "", "", &children, start, &mut rows);
        }
        let name_w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
        let svc_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let _ = writeln!(out, "trace {trace_id}  {total:.1}ms");
        for (name, service, from, to, error) in rows {
            let lead = ((from / total) * BAR_WIDTH as f64).round() as usize;
            let len = (((to - from) / total) * BAR_WIDTH as f64).round().max(1.0) as usize;
            let bar = format!(
                "{}{}",
                " ".repeat(lead.min(BAR_WIDTH)),
                "█".repeat(len.min(BAR_WIDTH + 1 - lead.min(BAR_WIDTH)))
            );
            let pad_name = name_w - name.chars().count();
            let pad_svc = svc_w - service.chars().count();
            let _ = writeln!(
                out,
                "{name}{}  {service}{}  [{from:7.1}ms - {to:7.1}ms]  {bar}{}",
                " ".repeat(pad_name),
                " ".repeat(pad_svc),
                if error { "  ERROR" } else { "" }
            );
        }
        out.push('\n');
    }
    out
}

type Sink = Arc<Mutex<dyn std::io::Write + Send>>;

/// Where waterfalls go, and the service name spans are drawn with: what
/// the exporter and the processor share.
struct Printer {
    service: String,
    sink: Sink,
}

impl Printer {
    fn new(writer: impl std::io::Write + Send + 'static) -> Self {
        Printer {
            service: "unknown_service".into(),
            sink: Arc::new(Mutex::new(writer)),
        }
    }

    fn print(&self, spans: &[WaterfallSpan]) {
        let text = render(spans);
        if let Ok(mut sink) = self.sink.lock() {
            let _ = sink.write_all(text.as_bytes());
            let _ = sink.flush();
        }
    }

    fn span(&self, span: &SpanData) -> WaterfallSpan {
        WaterfallSpan::from_span_data(span, &self.service)
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(name) = resource.get(&opentelemetry::Key::from_static_str("service.name")) {
            self.service = name.as_str().into_owned();
        }
    }
}

/// The `console` trace exporter: buffers each trace's spans and prints the
/// waterfall when the trace's local root (a span whose parent is not from
/// this process) ends.
pub struct WaterfallExporter {
    printer: Printer,
    pending: Mutex<HashMap<TraceId, Vec<WaterfallSpan>>>,
}

impl std::fmt::Debug for WaterfallExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaterfallExporter")
            .field("service", &self.printer.service)
            .finish_non_exhaustive()
    }
}

/// Traces waiting for their root are kept up to this many; older are
/// printed as they are, so memory stays bounded.
const MAX_PENDING_TRACES: usize = 1024;

impl WaterfallExporter {
    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Prints to `writer`.
    pub fn to_writer(writer: impl std::io::Write + Send + 'static) -> Self {
        WaterfallExporter {
            printer: Printer::new(writer),
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl SpanExporter for WaterfallExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut ready = Vec::new();
        if let Ok(mut pending) = self.pending.lock() {
            for span in &batch {
                let local_root =
                    span.parent_span_is_remote || span.parent_span_id == SpanId::INVALID;
                let trace = span.span_context.trace_id();
                pending
                    .entry(trace)
                    .or_default()
                    .push(self.printer.span(span));
                if local_root {
                    if let Some(spans) = pending.remove(&trace) {
                        ready.push(spans);
                    }
                }
            }
            while pending.len() > MAX_PENDING_TRACES {
                let Some(oldest) = pending.keys().next().copied() else {
                    break;
                };
                if let Some(spans) = pending.remove(&oldest) {
                    ready.push(spans);
                }
            }
        }
        for spans in ready {
            self.printer.print(&spans);
        }
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        let rest: Vec<Vec<WaterfallSpan>> = match self.pending.lock() {
            Ok(mut pending) => pending.drain().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        for spans in rest {
            self.printer.print(&spans);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.printer.set_resource(resource);
    }
}

/// The `console` trace exporter, as a span processor: it counts the spans of
/// each trace that are open in this process (recording spans only) and
/// prints the trace, all of it in one picture, when the last one ends.
pub struct WaterfallProcessor {
    printer: Printer,
    /// Per trace: spans started and not yet ended, and those ended.
    open: Mutex<HashMap<TraceId, (usize, Vec<WaterfallSpan>)>>,
}

impl std::fmt::Debug for WaterfallProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaterfallProcessor")
            .field("service", &self.printer.service)
            .finish_non_exhaustive()
    }
}

impl WaterfallProcessor {
    /// Prints to standard output.
    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Prints to `writer`.
    ///
    /// ```
    /// use opentelemetry::trace::{Tracer, TracerProvider};
    /// use otel_setup::waterfall::WaterfallProcessor;
    ///
    /// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
    ///     .with_span_processor(WaterfallProcessor::to_writer(std::io::sink()))
    ///     .build();
    /// provider.tracer("doc").in_span("work", |_| {});
    /// ```
    pub fn to_writer(writer: impl std::io::Write + Send + 'static) -> Self {
        WaterfallProcessor {
            printer: Printer::new(writer),
            open: Mutex::new(HashMap::new()),
        }
    }
}

impl opentelemetry_sdk::trace::SpanProcessor for WaterfallProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {
        use opentelemetry::trace::Span as _;
        let trace = span.span_context().trace_id();
        let mut evicted = None;
        if let Ok(mut open) = self.open.lock() {
            open.entry(trace).or_default().0 += 1;
            if open.len() > MAX_PENDING_TRACES {
                // Bounded: a trace whose spans never end is printed as it is.
                let oldest = open.keys().copied().find(|t| *t != trace);
                evicted = oldest.and_then(|t| open.remove(&t)).map(|(_, spans)| spans);
            }
        }
        if let Some(spans) = evicted.filter(|s| !s.is_empty()) {
            self.printer.print(&spans);
        }
    }

    fn on_end(&self, span: SpanData) {
        let trace = span.span_context.trace_id();
        let mut done = None;
        if let Ok(mut open) = self.open.lock() {
            let entry = open.entry(trace).or_default();
            entry.0 = entry.0.saturating_sub(1);
            entry.1.push(self.printer.span(&span));
            if entry.0 == 0 {
                done = open.remove(&trace).map(|(_, spans)| spans);
            }
        }
        if let Some(spans) = done {
            self.printer.print(&spans);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        let rest: Vec<Vec<WaterfallSpan>> = match self.open.lock() {
            Ok(mut open) => open.drain().map(|(_, (_, v))| v).collect(),
            Err(_) => Vec::new(),
        };
        for spans in rest.into_iter().filter(|s| !s.is_empty()) {
            self.printer.print(&spans);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.printer.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tree_order_alignment_and_errors() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let s = |id: u64,
                 parent: u64,
                 name: &str,
                 svc: &str,
                 kind: SpanKind,
                 from: u64,
                 to: u64,
                 error: bool| WaterfallSpan {
            trace_id: TraceId::from(7u128),
            span_id: SpanId::from(id),
            parent_id: SpanId::from(parent),
            name: name.into(),
            service: svc.into(),
            kind,
            start: t0 + Duration::from_millis(from),
            end: t0 + Duration::from_millis(to),
            error,
        };
        let spans = vec![
            s(
                4,
                3,
                "GET /users/{id}",
                "user-service",
                SpanKind::Server,
                22,
                140,
                false,
            ),
            s(
                3,
                1,
                "GET",
                "order-service",
                SpanKind::Client,
                20,
                145,
                true,
            ),
            s(
                2,
                1,
                "validate_order",
                "order-service",
                SpanKind::Internal,
                5,
                15,
                false,
            ),
            s(
                1,
                0,
                "POST /order",
                "order-service",
                SpanKind::Server,
                0,
                150,
                false,
            ),
        ];
        let text = render(&spans);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("trace 00000000000000000000000000000007"),
            "{text}"
        );
        assert!(lines[1].starts_with("POST /order "), "{text}");
        assert!(lines[2].starts_with("├─ validate_order"), "{text}");
        assert!(lines[3].starts_with("└─ GET (client)"), "{text}");
        assert!(lines[4].starts_with("   └─ GET /users/{id}"), "{text}");
        assert!(lines[3].ends_with("ERROR"), "{text}");
        assert!(
            lines[4].contains("user-service") && lines[4].contains("[   22.0ms -   140.0ms]"),
            "{text}"
        );
        // Columns line up: every '[' at the same place.
        let cols: Vec<usize> = lines[1..5]
            .iter()
            .map(|l| l.chars().position(|c| c == '[').unwrap_or(0))
            .collect();
        assert!(cols.windows(2).all(|w| w[0] == w[1]), "{text}");
        // The root's bar spans the full width.
        assert_eq!(lines[1].matches('█').count(), BAR_WIDTH);
    }

    #[test]
    fn exporter_prints_when_the_local_root_ends() {
        use opentelemetry::trace::{Tracer, TracerProvider};
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        #[derive(Clone)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map(|mut v| v.extend_from_slice(b)).ok();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_resource(Resource::builder_empty().with_service_name("svc-a").build())
            .with_simple_exporter(WaterfallExporter::to_writer(Shared(buf.clone())))
            .build();
        let tracer = provider.tracer("t");
        tracer.in_span("root", |_| {
            tracer.in_span("child", |_| {});
            let printed = buf.lock().map(|v| v.len()).unwrap_or(0);
            assert_eq!(printed, 0, "nothing before the root ends");
        });
        let text = String::from_utf8(buf.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(
            text.contains("root") && text.contains("└─ child") && text.contains("svc-a"),
            "{text}"
        );
    }
}
