//! What the export pipeline lost, counted by signal and cause, and reported:
//! in code ([`Dropped`]), as the SDK self-metrics, and on standard error (one
//! line per signal and cause at most once a minute, and a total at exit).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A telemetry signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metric data points.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// Every signal, in the order they are reported.
    pub const ALL: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

    fn index(self) -> usize {
        self as usize
    }

    /// What one item of this signal is called, plural.
    pub fn items(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Metrics => "metric data points",
            Signal::Logs => "log records",
        }
    }
}

/// Why telemetry was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropCause {
    /// The queue was full: `OTEL_BSP_MAX_QUEUE_SIZE` / `OTEL_BLRP_MAX_QUEUE_SIZE`
    /// items, or the queue's byte bound. The collector is slower than the
    /// service, or down.
    QueueFull,
    /// The export failed (refused, unreachable, or an error answer after the
    /// OTLP retries).
    ExportFailed,
    /// The export did not finish within its timeout.
    Timeout,
    /// The item alone is larger than one export request may be, or the
    /// receiver refused the request as too large.
    TooLarge,
    /// Still queued or being exported when the shutdown deadline passed.
    ShutdownTimeout,
    /// Ended after shutdown had begun.
    AlreadyShutdown,
}

impl DropCause {
    /// Every cause.
    pub const ALL: [DropCause; 6] = [
        DropCause::QueueFull,
        DropCause::ExportFailed,
        DropCause::Timeout,
        DropCause::TooLarge,
        DropCause::ShutdownTimeout,
        DropCause::AlreadyShutdown,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The `error.type` this cause is recorded with in the self-metrics.
    pub fn error_type(self) -> &'static str {
        match self {
            DropCause::QueueFull => "queue_full",
            DropCause::ExportFailed => "export_failed",
            DropCause::Timeout => "timeout",
            DropCause::TooLarge => "request_too_large",
            DropCause::ShutdownTimeout => "shutdown_timeout",
            DropCause::AlreadyShutdown => "already_shutdown",
        }
    }

    /// Whether the item was lost before it was handed to an exporter (the
    /// processor's `processed` metric) rather than by the export (the
    /// exporter's `exported` metric).
    pub(crate) fn before_export(self) -> bool {
        matches!(
            self,
            DropCause::QueueFull | DropCause::AlreadyShutdown | DropCause::ShutdownTimeout
        )
    }

    fn describe(self) -> &'static str {
        match self {
            DropCause::QueueFull => {
                "the export queue was full (the collector is slower than the service, or down)"
            }
            DropCause::ExportFailed => "the export failed",
            DropCause::Timeout => "the export timed out",
            DropCause::TooLarge => "they were larger than one export request may be",
            DropCause::ShutdownTimeout => {
                "they were still queued when the shutdown deadline passed"
            }
            DropCause::AlreadyShutdown => "they ended after telemetry was shut down",
        }
    }
}

impl fmt::Display for DropCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error_type())
    }
}

const SIGNALS: usize = 3;
const CAUSES: usize = 6;
/// One warning per signal and cause at most this often.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The counters. Shared by every part of the pipeline.
#[derive(Debug)]
pub(crate) struct Losses {
    dropped: [[AtomicU64; CAUSES]; SIGNALS],
    exported: [AtomicU64; SIGNALS],
    /// Milliseconds since `start` (plus one) of the last warning; 0: none yet.
    last_warning: [[AtomicU64; CAUSES]; SIGNALS],
    start: Instant,
    quiet: AtomicBool,
}

impl Default for Losses {
    fn default() -> Self {
        Losses {
            dropped: Default::default(),
            exported: Default::default(),
            last_warning: Default::default(),
            start: Instant::now(),
            quiet: AtomicBool::new(false),
        }
    }
}

impl Losses {
    /// Counts without printing anything (`OTEL_LOG_LEVEL=none`, and tests
    /// that provoke losses on purpose).
    pub(crate) fn set_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::Relaxed);
    }

    /// Counts `n` items of `signal` lost to `cause`, and warns if this
    /// signal and cause have not warned for a minute. `detail` is the
    /// exporter's error text, if any.
    pub(crate) fn lost(&self, signal: Signal, cause: DropCause, n: u64, detail: Option<&str>) {
        if n == 0 {
            return;
        }
        let total = self.dropped[signal.index()][cause.index()].fetch_add(n, Ordering::Relaxed) + n;
        if self.quiet.load(Ordering::Relaxed) {
            return;
        }
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let slot = &self.last_warning[signal.index()][cause.index()];
        let last = slot.load(Ordering::Relaxed);
        let due = last == 0 || now >= last + WARN_EVERY.as_millis() as u64;
        if due
            && slot
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let detail = detail
                .map(|d| format!(" ({})", crate::diag::explain(d).1))
                .unwrap_or_default();
            eprintln!(
                "otel-setup: {n} {items} dropped: {why}{detail}; {total} {items} dropped this way \
                 so far. The application is not affected. (One such line per minute at most.)",
                items = signal.items(),
                why = cause.describe(),
            );
        }
    }

    /// Counts `n` items handed to the collector successfully.
    pub(crate) fn exported(&self, signal: Signal, n: u64) {
        self.exported[signal.index()].fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Dropped {
        let mut d = Dropped::default();
        for s in Signal::ALL {
            d.exported[s.index()] = self.exported[s.index()].load(Ordering::Relaxed);
            for c in DropCause::ALL {
                d.counts[s.index()][c.index()] =
                    self.dropped[s.index()][c.index()].load(Ordering::Relaxed);
            }
        }
        d
    }

    /// The line printed at shutdown when anything was lost.
    pub(crate) fn final_report(&self) {
        let d = self.snapshot();
        if d.total() == 0 || self.quiet.load(Ordering::Relaxed) {
            return;
        }
        eprintln!("otel-setup: telemetry lost during this run: {d}");
    }
}

/// Telemetry dropped so far, by signal and cause, and what was exported.
/// From [`Telemetry::dropped`](crate::Telemetry::dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    counts: [[u64; CAUSES]; SIGNALS],
    exported: [u64; SIGNALS],
}

impl Dropped {
    /// Items of `signal` dropped for `cause`.
    pub fn get(&self, signal: Signal, cause: DropCause) -> u64 {
        self.counts[signal.index()][cause.index()]
    }

    /// Items of `signal` dropped for any cause.
    pub fn signal(&self, signal: Signal) -> u64 {
        self.counts[signal.index()].iter().sum()
    }

    /// Every item dropped.
    pub fn total(&self) -> u64 {
        Signal::ALL.iter().map(|s| self.signal(*s)).sum()
    }

    /// Items of `signal` the collector accepted.
    pub fn exported(&self, signal: Signal) -> u64 {
        self.exported[signal.index()]
    }
}

impl fmt::Display for Dropped {
    /// `spans 12 (queue_full 10, export_failed 2); log records 3 (timeout 3)`,
    /// or `nothing`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in Signal::ALL {
            let n = self.signal(s);
            if n == 0 {
                continue;
            }
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{} {n} (", s.items())?;
            let mut inner = true;
            for c in DropCause::ALL {
                let k = self.get(s, c);
                if k > 0 {
                    if !inner {
                        f.write_str(", ")?;
                    }
                    inner = false;
                    write!(f, "{c} {k}")?;
                }
            }
            f.write_str(")")?;
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_signal_and_cause() {
        let l = Losses::default();
        l.set_quiet(true);
        l.lost(Signal::Traces, DropCause::QueueFull, 3, None);
        l.lost(Signal::Traces, DropCause::QueueFull, 2, None);
        l.lost(Signal::Logs, DropCause::Timeout, 1, Some("deadline"));
        let d = l.snapshot();
        assert_eq!(d.get(Signal::Traces, DropCause::QueueFull), 5);
        assert_eq!(d.get(Signal::Logs, DropCause::Timeout), 1);
        assert_eq!(d.signal(Signal::Metrics), 0);
        assert_eq!(d.total(), 6);
        assert_eq!(
            d.to_string(),
            "spans 5 (queue_full 5); log records 1 (timeout 1)"
        );
    }

    #[test]
    fn each_signal_and_cause_has_its_own_warning_slot() {
        let l = Losses::default();
        // A log warning must not use up the span warning (the slots are
        // separate), so both are due at the first drop.
        l.lost(Signal::Logs, DropCause::ExportFailed, 1, None);
        l.lost(Signal::Traces, DropCause::ExportFailed, 1, None);
        let logs = l.last_warning[Signal::Logs.index()][DropCause::ExportFailed.index()]
            .load(Ordering::Relaxed);
        let spans = l.last_warning[Signal::Traces.index()][DropCause::ExportFailed.index()]
            .load(Ordering::Relaxed);
        assert!(logs > 0 && spans > 0, "both warned: {logs} {spans}");
    }
}
