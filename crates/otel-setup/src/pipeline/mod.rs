//! The export pipeline: what runs between a finished span (or log record,
//! or metric collection) and the collector.
//!
//! - Spans and log records wait in queues of ours ([`batch`]), bounded in
//!   items and in bytes, exported in batches cut below the receiver's
//!   request limit, with every loss counted by cause ([`losses`]).
//! - Every attribute value is cut to the value length limit before it is
//!   queued ([`limits`]), whoever recorded it.
//! - Exports run on otel-setup's runtime. One [`Cancel`] ends them all when
//!   the shutdown deadline passes, so no export outlives the runtime it
//!   runs on.

pub(crate) mod batch;
pub(crate) mod limits;
#[cfg(feature = "tracing")]
pub(crate) mod logs;
pub(crate) mod losses;
pub(crate) mod metrics;
pub(crate) mod observe;
pub(crate) mod spans;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Fired once, at the shutdown deadline: every export still running gives
/// up, and none starts.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    fired: AtomicBool,
    notify: Notify,
    /// Exports that run on the export runtime from a thread that is not
    /// ours (the SDK's metric reader): the runtime is kept until they end.
    foreign_in_flight: AtomicUsize,
}

impl Cancel {
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Resolves once [`fire`](Self::fire) has been called.
    pub(crate) async fn cancelled(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Marks a foreign export as running; `None` once cancelled.
    pub(crate) fn enter(&self) -> Option<InFlight<'_>> {
        self.foreign_in_flight.fetch_add(1, Ordering::SeqCst);
        if self.is_cancelled() {
            self.foreign_in_flight.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(InFlight(self))
    }

    /// Waits until no foreign export runs, at most `timeout`. `false` if one
    /// still does.
    pub(crate) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.foreign_in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A running foreign export (see [`Cancel::enter`]).
pub(crate) struct InFlight<'a>(&'a Cancel);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.foreign_in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

pub use losses::{DropCause, Dropped, Signal};
