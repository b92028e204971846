//! Fault isolation: user-service (a real process) under steady load while its
//! OTLP endpoint is healthy, not listening, accepting but never answering,
//! answering after 5 s, or answering UNAVAILABLE. Every request must still
//! succeed, memory must stay bounded, and, with a healthy collector, every
//! served request's span must arrive, even across a SIGTERM under load.
//!
//! It prints the table kept in RELIABILITY.md. Latency ratios are printed,
//! not asserted: this machine is shared, so they are measurements, not
//! pass/fail lines. `FAULT_LOAD_SECS` sets the load per scenario (default 3).

use otel_testkit::otlp::OtlpReceiver;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVER: i32 = 2;
const WORKERS: usize = 4;
const PACE: Duration = Duration::from_millis(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

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

fn start_service(port: u16, endpoint: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_e2e-user-service"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .envs([
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("OTEL_SERVICE_NAME", "user-service".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.into()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            ("OTEL_LOGS_EXPORTER", "none".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200".into()),
            ("RUST_LOG", "warn".into()),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("user-service starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("user-service did not listen");
}

fn sigterm_and_wait(child: &mut Child) -> Duration {
    let started = Instant::now();
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "graceful exit: {status}");
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let port = free_port();
    let mut child = start_service(port, endpoint);
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
        served,
        stop_time,
    }
}

/// SIGTERM while requests are in flight: every request that completed has
/// its span delivered before the process exits.
async fn sigterm_under_load(rx: &OtlpReceiver) -> (usize, usize) {
    let port = free_port();
    let mut child = start_service(port, &rx.grpc_endpoint());
    let stop = Arc::new(AtomicBool::new(false));
    let running = tokio::spawn(load(port, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::spawn_blocking(move || sigterm_and_wait(&mut child))
        .await
        .expect("stop");
    stop.store(true, Ordering::Relaxed);
    let l = running.await.expect("load");
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
    println!("| fault | requests measured | errors | p50 | p99 | p99 / healthy | RSS start → end | spans made | spans received | spans dropped | exit after SIGTERM |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        let received = r.received.unwrap_or(0);
        println!(
            "| {} | {} | {} | {:.2} ms | {:.2} ms | {:.2} | {} → {} MiB | {} | {} | {} | {:.1} s |",
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
            r.served.saturating_sub(received),
            r.stop_time.as_secs_f64(),
        );
    }

    let term = OtlpReceiver::start();
    let (completed, received) = sigterm_under_load(&term).await;
    println!(
        "\nSIGTERM under load: {completed} requests completed, {received} server spans delivered"
    );

    for r in &rows {
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
