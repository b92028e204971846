//! What the end-to-end test binaries share: ports, service processes, their
//! standard error, and stopping them.

#![allow(dead_code)] // each binary uses its own part

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Where a service's standard error goes, read after it exits.
pub fn stderr_file() -> (std::fs::File, std::path::PathBuf) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "otel-web-e2e-{}-{}.stderr",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let f = std::fs::File::create(&path).expect("stderr file");
    (f, path)
}

/// Starts user-service on a free port with no `OTEL_*` variable but `env`,
/// and waits (30 s at most) until it listens: the child, where its standard
/// error goes, and its port.
pub fn start_user_service(env: &[(&str, String)]) -> (Child, std::path::PathBuf, u16) {
    start_service(env!("CARGO_BIN_EXE_e2e-user-service"), env)
}

/// Starts order-service the same way (`USER_SERVICE_URL` among `env`).
pub fn start_order_service(env: &[(&str, String)]) -> (Child, std::path::PathBuf, u16) {
    start_service(env!("CARGO_BIN_EXE_e2e-order-service"), env)
}

/// Starts the service `bin` on a free port with no `OTEL_*` variable but
/// `env`, and waits (30 s at most) until it listens. A port taken between
/// its choice and the service's bind (test binaries run side by side) is
/// tried again with another.
pub fn start_service(bin: &str, env: &[(&str, String)]) -> (Child, std::path::PathBuf, u16) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = free_port();
        let (stderr, path) = stderr_file();
        let mut cmd = Command::new(bin);
        for (k, _) in std::env::vars() {
            if k.starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs([
            ("PORT", port.to_string()),
            ("HOST", "127.0.0.1".into()),
            ("RUST_LOG", "warn".into()),
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stderr(Stdio::from(stderr));
        match spawn_listening(cmd) {
            Ok(child) => return (child, path, port),
            Err(status) => {
                last = format!(
                    "{status}:\n{}",
                    std::fs::read_to_string(&path).unwrap_or_default()
                );
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    panic!("{bin} did not start listening in 5 tries; the last: {last}");
}

/// Spawns a service (its standard output is taken) and waits, 30 s at
/// most, until it prints that it listens: then the port is its own, not
/// another process's that happens to answer there. `Err` (how it ended)
/// if it exited first, say because its port was taken meanwhile.
pub fn spawn_listening(mut cmd: Command) -> Result<Child, String> {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("the service starts");
    let stdout = child.stdout.take().expect("piped standard output");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(" listening on ") {
                let _ = tx.send(());
            }
        }
    });
    // A service that exits closes its output, which ends the wait at once.
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => Ok(child),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait();
            Err(format!("{status:?}"))
        }
    }
}

/// Sends SIGTERM and waits for a successful exit (30 s at most); returns
/// how long it took.
pub fn sigterm_and_wait(child: &mut Child) -> Duration {
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
