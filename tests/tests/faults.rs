//! Fault isolation: user-service (a real process, exporting traces, metrics
//! and logs over OTLP as it runs by default) under steady load while its
//! OTLP endpoint is healthy, not listening, accepting but never answering,
//! answering after 5 s, or answering UNAVAILABLE. Every request must still
//! succeed, memory must stay bounded, the process must exit within 6 s of
//! SIGTERM without a panic, the spans it reports lost must match the spans
//! that did not arrive, and, with a healthy collector, every served
//! request's span must arrive, even across a SIGTERM under load. A flood of
//! 100 kB headers must neither grow memory past 64 MiB nor make a 4 MiB
//! receiver refuse a request.
//!
//! It prints the table kept in RELIABILITY.md. Latency ratios are printed,
//! not asserted: this machine is shared, so they are measurements, not
//! pass/fail lines. `FAULT_LOAD_SECS` sets the load per scenario (default 3).

mod support;

use otel_testkit::otlp::OtlpReceiver;
use std::net::TcpListener;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{free_port, sigterm_and_wait, start_user_service};

const SERVER: i32 = 2;
const WORKERS: usize = 4;
const PACE: Duration = Duration::from_millis(10);

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The spans the service said it lost in its final line, if it printed one.
fn reported_lost_spans(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.split("telemetry lost during this run: ").nth(1))
        .filter_map(|rest| rest.split("spans ").nth(1))
        .filter_map(|n| n.split_whitespace().next()?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

fn start_service(endpoint: &str) -> (Child, std::path::PathBuf, u16) {
    start_service_with(endpoint, "grpc")
}

fn start_service_with(endpoint: &str, protocol: &str) -> (Child, std::path::PathBuf, u16) {
    start_user_service(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.into()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into()),
    ])
}

#[derive(Default, Debug)]
struct Load {
    ok: usize,
    errors: usize,
    latencies: Vec<Duration>,
}

impl Load {
    fn p(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    }
}

/// Paced load: each worker sends one request every 10 ms until `stop`.
async fn load(port: u16, stop: Arc<AtomicBool>) -> Load {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let client = client.clone();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut l = Load::default();
            let url = format!("http://127.0.0.1:{port}/users/1");
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        l.ok += 1;
                        l.latencies.push(t.elapsed());
                    }
                    _ => l.errors += 1,
                }
                tokio::time::sleep(PACE.saturating_sub(t.elapsed())).await;
            }
            l
        }));
    }
    let mut total = Load::default();
    for t in tasks {
        let l = t.await.expect("worker");
        total.ok += l.ok;
        total.errors += l.errors;
        total.latencies.extend(l.latencies);
    }
    total
}

struct Row {
    fault: &'static str,
    load: Load,
    rss_start: u64,
    rss_end: u64,
    received: Option<usize>,
    /// Every span received, any kind.
    received_all: usize,
    /// Spans the service reported lost at exit.
    reported_lost: u64,
    /// Requests served, warm-up included: what spans were made for.
    served: usize,
    stop_time: Duration,
}

/// `rx`: the receiver behind `endpoint`, if any; `expect_all`: whether it
/// must have every span.
async fn run(
    fault: &'static str,
    endpoint: &str,
    rx: Option<&OtlpReceiver>,
    expect_all: bool,
    secs: u64,
) -> Row {
    let (mut child, stderr_path, port) = start_service(endpoint);
    let pid = child.id();
    // Warm up, then measure.
    let warm = Arc::new(AtomicBool::new(false));
    let w = tokio::spawn(load(port, Arc::clone(&warm)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    warm.store(true, Ordering::Relaxed);
    let warm_load = w.await.expect("warm-up");
    let rss_start = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let measured = tokio::spawn(load(port, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let l = measured.await.expect("load");
    let rss_end = rss_kib(pid);
    let stop_time = tokio::task::spawn_blocking(move || sigterm_and_wait(&mut child))
        .await
        .expect("stop");
    let received = rx.map(|rx| rx.spans().iter().filter(|s| s.span.kind == SERVER).count());
    let received_all = rx.map(|rx| rx.spans().len()).unwrap_or(0);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    assert!(
        !stderr.contains("panicked"),
        "{fault}: no thread panics:\n{stderr}"
    );
    assert_eq!(warm_load.errors, 0, "{fault}: warm-up requests all succeed");
    let served = warm_load.ok + l.ok;
    if expect_all {
        assert_eq!(
            received,
            Some(served),
            "{fault}: one server span per request served"
        );
    }
    Row {
        fault,
        load: l,
        rss_start,
        rss_end,
        received,
        received_all,
        reported_lost: reported_lost_spans(&stderr),
        served,
        stop_time,
    }
}

/// SIGTERM while requests are in flight: every request that completed has
/// its span delivered before the process exits.
async fn sigterm_under_load(rx: &OtlpReceiver) -> (usize, usize) {
    let (mut child, stderr_path, port) = start_service(&rx.grpc_endpoint());
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(port, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::spawn_blocking(move || sigterm_and_wait(&mut child))
        .await
        .expect("stop");
    stop.store(true, Ordering::Relaxed);
    let l = running.await.expect("load");
    let _ = std::fs::remove_file(&stderr_path);
    let received = rx.spans().iter().filter(|s| s.span.kind == SERVER).count();
    (l.ok, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_faults_never_reach_the_requests() {
    let secs: u64 = std::env::var("FAULT_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut rows = Vec::new();

    let healthy = OtlpReceiver::start();
    rows.push(
        run(
            "healthy",
            &healthy.grpc_endpoint(),
            Some(&healthy),
            true,
            secs,
        )
        .await,
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    rows.push(run("not listening", &closed, None, false, secs).await);

    // Accepts connections and never answers.
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hole_addr = hole.local_addr().expect("addr");
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for s in hole.incoming().flatten() {
            if let Ok(mut k) = keep.lock() {
                k.push(s);
            }
        }
    });
    rows.push(
        run(
            "accepts, never answers",
            &format!("http://{hole_addr}"),
            None,
            false,
            secs,
        )
        .await,
    );

    let slow = OtlpReceiver::start();
    slow.delay(Duration::from_secs(5));
    rows.push(
        run(
            "answers after 5 s",
            &slow.grpc_endpoint(),
            Some(&slow),
            false,
            secs,
        )
        .await,
    );

    let failing = OtlpReceiver::start();
    failing.fail_with(503);
    rows.push(
        run(
            "answers UNAVAILABLE",
            &failing.grpc_endpoint(),
            Some(&failing),
            false,
            secs,
        )
        .await,
    );

    let base_p99 = rows[0].load.p(0.99).as_secs_f64().max(1e-6);
    println!();
    // Spans per request, from the healthy run: what every run made.
    let per_request = rows[0].received_all / rows[0].served.max(1);
    assert_eq!(
        rows[0].received_all,
        per_request * rows[0].served,
        "a whole number of spans per request"
    );
    println!("| fault | requests measured | errors | p50 | p99 | p99 / healthy | RSS start → end | server spans made | server spans received | spans lost (all kinds) | spans reported lost | exit after SIGTERM |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let received = r.received.unwrap_or(0);
        let lost = (per_request * r.served).saturating_sub(r.received_all);
        println!(
            "| {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} | {} → {} MiB | {} | {} | {} | {} | {:.1} s |",
            r.fault,
            r.load.ok + r.load.errors,
            r.load.errors,
            r.load.p(0.50).as_secs_f64() * 1e3,
            r.load.p(0.99).as_secs_f64() * 1e3,
            r.load.p(0.99).as_secs_f64() / base_p99,
            r.rss_start / 1024,
            r.rss_end / 1024,
            r.served,
            received,
            lost,
            r.reported_lost,
            r.stop_time.as_secs_f64(),
        );
    }

    let term = OtlpReceiver::start();
    let (completed, received) = sigterm_under_load(&term).await;
    println!(
        "\nSIGTERM under load: {completed} requests completed, {received} server spans delivered"
    );

    for r in &rows {
        let lost = (per_request * r.served).saturating_sub(r.received_all) as f64;
        assert!(
            (r.reported_lost as f64 - lost).abs() <= lost * 0.1 + 2.0,
            "{}: reported {} lost, {} did not arrive",
            r.fault,
            r.reported_lost,
            lost
        );
        assert!(
            r.stop_time < Duration::from_secs(6),
            "{}: exit within 6 s of SIGTERM ({:?})",
            r.fault,
            r.stop_time
        );
        assert_eq!(r.load.errors, 0, "{}: every request succeeds", r.fault);
        assert!(r.load.ok > 0, "{}: load ran", r.fault);
        assert!(
            r.rss_end <= r.rss_start + 64 * 1024,
            "{}: memory stays bounded ({} → {} KiB)",
            r.fault,
            r.rss_start,
            r.rss_end
        );
    }
    assert_eq!(
        received, completed,
        "every completed request's span is delivered before exit"
    );
}

/// A collector that accepts connections and never answers.
fn blackhole() -> std::net::SocketAddr {
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = hole.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in hole.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

/// Requests with a 100 kB `User-Agent` (kept as `user_agent.original`),
/// `n` of them at `concurrency`; returns how many failed.
async fn flood(port: u16, n: usize, concurrency: usize) -> usize {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let agent = "A".repeat(100_000);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, agent, next) = (client.clone(), agent.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let r = client
                    .get(format!("http://127.0.0.1:{port}/users/1"))
                    .header("user-agent", agent.as_str())
                    .send()
                    .await;
                if !r.is_ok_and(|r| r.status() == 200) {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.expect("flood worker");
    }
    failed
}

/// With the collector blackholed, 6,000 requests carrying 100 kB headers
/// leave memory within 64 MiB of where it started: values are cut to the
/// length limit and the queue is bounded in bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_huge_headers_keeps_memory_bounded() {
    let hole_addr = blackhole();
    let (mut child, stderr_path, port) = start_service(&format!("http://{hole_addr}"));
    let pid = child.id();
    assert_eq!(flood(port, 200, 8).await, 0, "warm-up");
    let before = rss_kib(pid);
    assert_eq!(flood(port, 6_000, 16).await, 0, "every request succeeds");
    let after = rss_kib(pid);
    let took = tokio::task::spawn_blocking(move || sigterm_and_wait(&mut child))
        .await
        .expect("stop");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    println!("huge-header flood: RSS {before} → {after} KiB, exit {took:?}");
    assert!(
        after <= before + 64 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    assert!(took < Duration::from_secs(6), "exit took {took:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A receiver with the usual 4 MiB limit gets every span while requests
/// with 100 kB headers arrive among the ordinary ones: no batch is refused
/// as too large.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_headers_never_make_a_4_mib_receiver_refuse_a_batch() {
    let rx = OtlpReceiver::start();
    let (mut child, stderr_path, port) = start_service(&rx.grpc_endpoint());
    let stop = Arc::new(AtomicBool::new(false));
    let ordinary = tokio::spawn(load(port, Arc::clone(&stop)));
    let failed = flood(port, 1_500, 8).await;
    stop.store(true, Ordering::Relaxed);
    let l = ordinary.await.expect("load");
    tokio::task::spawn_blocking(move || sigterm_and_wait(&mut child))
        .await
        .expect("stop");
    let _ = std::fs::remove_file(&stderr_path);
    assert_eq!(failed, 0);
    assert_eq!(l.errors, 0);
    let refused: Vec<_> = rx
        .attempts()
        .into_iter()
        .filter(|a| a.status != 200)
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let received = rx.spans().iter().filter(|s| s.span.kind == SERVER).count();
    assert_eq!(received, l.ok + 1_500, "every server span arrives");
}

/// Over OTLP/HTTP, with a collector that accepts and never answers, the SDK's
/// metric reader and the log queue are mid-export at SIGTERM: the service
/// still exits within 6 s, and no thread panics as the export runtime goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stuck_http_collector_exits_in_time_without_a_panic() {
    let hole_addr = blackhole();
    for _ in 0..3 {
        let (mut child, stderr_path, port) =
            start_service_with(&format!("http://{hole_addr}"), "http/protobuf");
        let stop = Arc::new(AtomicBool::new(false));
        let running = tokio::spawn(load(port, Arc::clone(&stop)));
        // Past the first metric export (every second here), so one is stuck.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        let l = running.await.expect("load");
        let took = tokio::task::spawn_blocking(move || sigterm_and_wait(&mut child))
            .await
            .expect("stop");
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let _ = std::fs::remove_file(&stderr_path);
        assert_eq!(l.errors, 0);
        assert!(took < Duration::from_secs(6), "exit took {took:?}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains("telemetry lost during this run"),
            "the loss is reported at exit: {stderr}"
        );
    }
}
