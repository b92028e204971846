//! The batching queue behind spans and log records: what the SDK's batch
//! processors do (a bounded queue, an export every schedule delay or as soon
//! as a full batch is waiting, one export at a time, each bounded by the
//! export timeout), plus what they do not: a bound in bytes, batches cut so
//! no request exceeds the receiver's limit, every loss counted by cause, and
//! a shutdown that gives up at one deadline shared with the other signals.

use super::losses::{DropCause, Losses, Signal};
use super::Cancel;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How one queue batches and what bounds it.
#[derive(Clone, Debug)]
pub(crate) struct BatchSettings {
    pub(crate) schedule_delay: Duration,
    /// `None`: no limit (a timeout of 0 in the environment).
    pub(crate) export_timeout: Option<Duration>,
    pub(crate) max_queue_size: usize,
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_export_batch_size: usize,
    /// The estimated bytes one export request may carry, resource included.
    pub(crate) max_request_bytes: usize,
}

impl BatchSettings {
    /// How long a force flush waits: one export's timeout (30 s without
    /// one), and at least a second.
    pub(crate) fn flush_timeout(&self) -> Duration {
        self.export_timeout
            .unwrap_or(Duration::from_secs(30))
            .max(Duration::from_secs(1))
    }
}

pub(crate) type ExportFuture = Pin<Box<dyn Future<Output = OTelSdkResult> + Send>>;
pub(crate) type ExportFn<T> = Box<dyn Fn(Vec<T>) -> ExportFuture + Send + Sync>;

struct Queue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    shut: bool,
    flushes: Vec<mpsc::Sender<()>>,
}

struct Shared<T> {
    queue: Mutex<Queue<T>>,
    wake: Notify,
    settings: BatchSettings,
    signal: Signal,
    losses: Arc<Losses>,
    cancel: Arc<Cancel>,
    /// Items in the queue, read without the lock by the self-metrics.
    len: AtomicUsize,
    done: AtomicBool,
    done_waiters: Mutex<Vec<mpsc::Sender<()>>>,
}

/// The producer side, held by the span or log processor.
pub(crate) struct Batcher<T> {
    shared: Arc<Shared<T>>,
}

impl<T> std::fmt::Debug for Batcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("signal", &self.shared.signal)
            .field("settings", &self.shared.settings)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Batcher {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// What an export error is counted as.
pub(crate) fn classify(error: &OTelSdkError) -> DropCause {
    match error {
        OTelSdkError::Timeout(_) => DropCause::Timeout,
        other => {
            let text = other.to_string();
            // A receiver's own size limit: HTTP 413, gRPC RESOURCE_EXHAUSTED
            // or OUT_OF_RANGE for a message over its maximum.
            if text.contains("413")
                || text.contains("ResourceExhausted")
                || text.contains("resource exhausted")
                || text.contains("message length too large")
            {
                DropCause::TooLarge
            } else {
                DropCause::ExportFailed
            }
        }
    }
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts the export task on `rt`.
    pub(crate) fn start(
        signal: Signal,
        settings: BatchSettings,
        export: ExportFn<T>,
        losses: Arc<Losses>,
        cancel: Arc<Cancel>,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                shut: false,
                flushes: Vec::new(),
            }),
            wake: Notify::new(),
            settings,
            signal,
            losses,
            cancel,
            len: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            done_waiters: Mutex::new(Vec::new()),
        });
        rt.spawn(run(Arc::clone(&shared), export));
        Batcher { shared }
    }

    /// Queues one item of `bytes` estimated bytes, or counts why it cannot
    /// be. Never blocks beyond the queue's lock.
    pub(crate) fn offer(&self, item: T, bytes: usize) {
        let s = &self.shared;
        let cause = {
            let Ok(mut q) = s.queue.lock() else { return };
            if q.shut {
                Some(DropCause::AlreadyShutdown)
            } else if bytes > s.settings.max_request_bytes {
                Some(DropCause::TooLarge)
            } else if q.items.len() >= s.settings.max_queue_size
                || q.bytes + bytes > s.settings.max_queue_bytes
            {
                Some(DropCause::QueueFull)
            } else {
                q.items.push_back((item, bytes));
                q.bytes += bytes;
                let len = q.items.len();
                s.len.store(len, Ordering::Relaxed);
                if len == s.settings.max_export_batch_size {
                    s.wake.notify_one();
                }
                None
            }
        };
        if let Some(cause) = cause {
            s.losses.lost(s.signal, cause, 1, None);
        }
    }

    /// Exports everything queued so far; waits at most `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> OTelSdkResult {
        let (tx, rx) = mpsc::channel();
        {
            let Ok(mut q) = self.shared.queue.lock() else {
                return Err(OTelSdkError::InternalFailure("queue poisoned".into()));
            };
            if q.shut {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            q.flushes.push(tx);
        }
        self.shared.wake.notify_one();
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }

    /// Starts the shutdown: the task exports what is queued and stops; `tx`
    /// hears when it has. Items that arrive from now on are counted as
    /// [`DropCause::AlreadyShutdown`].
    pub(crate) fn begin_shutdown(&self, tx: mpsc::Sender<()>) {
        if let Ok(mut w) = self.shared.done_waiters.lock() {
            if self.shared.done.load(Ordering::Acquire) {
                let _ = tx.send(());
            } else {
                w.push(tx);
            }
        }
        if let Ok(mut q) = self.shared.queue.lock() {
            q.shut = true;
        }
        self.shared.wake.notify_one();
    }

    /// [`begin_shutdown`](Self::begin_shutdown), then waits up to `timeout`.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let (tx, rx) = mpsc::channel();
        self.begin_shutdown(tx);
        rx.recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }

    /// Items waiting now.
    pub(crate) fn len(&self) -> usize {
        self.shared.len.load(Ordering::Relaxed)
    }

    /// The queue's capacity in items.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.settings.max_queue_size
    }
}

/// Takes the next batch: at most `max_export_batch_size` items, and no more
/// estimated bytes than a request may carry.
fn take_batch<T>(s: &Shared<T>, q: &mut Queue<T>) -> Vec<T> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    while batch.len() < s.settings.max_export_batch_size {
        let Some((_, size)) = q.items.front() else {
            break;
        };
        if !batch.is_empty() && bytes + size > s.settings.max_request_bytes {
            break;
        }
        let Some((item, size)) = q.items.pop_front() else {
            break;
        };
        bytes += size;
        q.bytes -= size;
        batch.push(item);
    }
    s.len.store(q.items.len(), Ordering::Relaxed);
    batch
}

async fn export_one<T>(s: &Shared<T>, export: &ExportFn<T>, batch: Vec<T>) {
    let n = batch.len() as u64;
    let fut = export(batch);
    let result = match s.settings.export_timeout {
        Some(t) => match tokio::time::timeout(t, fut).await {
            Ok(r) => r,
            Err(_) => Err(OTelSdkError::Timeout(t)),
        },
        None => fut.await,
    };
    match result {
        Ok(()) => s.losses.exported(s.signal, n),
        Err(e) => s
            .losses
            .lost(s.signal, classify(&e), n, Some(&e.to_string())),
    }
}

async fn run<T: Send + 'static>(s: Arc<Shared<T>>, export: ExportFn<T>) {
    let mut next = tokio::time::Instant::now() + s.settings.schedule_delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = s.wake.notified() => {}
            _ = s.cancel.cancelled() => {}
        }
        let timer_fired = tokio::time::Instant::now() >= next;
        // Export while there is a reason to: a full batch waiting, the
        // delay passed, a flush or the shutdown asked for everything.
        let (shut, flushes) = loop {
            let (batch, shut, flushes) = {
                let Ok(mut q) = s.queue.lock() else { return };
                let everything = timer_fired || q.shut || !q.flushes.is_empty();
                if q.items.is_empty()
                    || (!everything && q.items.len() < s.settings.max_export_batch_size)
                {
                    (Vec::new(), q.shut, std::mem::take(&mut q.flushes))
                } else {
                    (take_batch(&s, &mut q), false, Vec::new())
                }
            };
            if batch.is_empty() {
                break (shut, flushes);
            }
            let n = batch.len() as u64;
            tokio::select! {
                _ = export_one(&s, &export, batch) => {}
                _ = s.cancel.cancelled() => {
                    // The deadline passed with this batch in flight.
                    s.losses.lost(s.signal, DropCause::ShutdownTimeout, n, None);
                    break (true, Vec::new());
                }
            }
        };
        for f in flushes {
            let _ = f.send(());
        }
        if s.cancel.is_cancelled() {
            let left = s.queue.lock().map(|mut q| {
                q.shut = true;
                q.bytes = 0;
                std::mem::take(&mut q.items).len()
            });
            s.len.store(0, Ordering::Relaxed);
            s.losses.lost(
                s.signal,
                DropCause::ShutdownTimeout,
                left.unwrap_or(0) as u64,
                None,
            );
            break;
        }
        if shut {
            break;
        }
        if timer_fired {
            next = tokio::time::Instant::now() + s.settings.schedule_delay;
        }
    }
    s.done.store(true, Ordering::Release);
    if let Ok(mut w) = s.done_waiters.lock() {
        for tx in w.drain(..) {
            let _ = tx.send(());
        }
    }
}
