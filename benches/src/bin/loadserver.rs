//! One server variant over real HTTP, for the load script
//! (`benches/load.sh`): `loadserver <variant> <port>` serves the app on
//! `127.0.0.1:<port>` until killed, on a multi-thread tokio runtime with one
//! worker per core (or `WORKERS`).

use otel_web_benches::{providers, server_app, SERVER_VARIANTS};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let port: Option<u16> = args.next().and_then(|p| p.parse().ok());
    let (tracer, _meter) = providers(&variant);
    let (Some(app), Some(port)) = (server_app(&variant, &tracer), port) else {
        eprintln!(
            "usage: loadserver <variant> <port>; variants: {}",
            SERVER_VARIANTS.join(", ")
        );
        return ExitCode::from(2);
    };
    // Worker threads: WORKERS, else one per core, as `#[tokio::main]` does.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        builder.worker_threads(workers);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let served = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
        axum::serve(listener, app)
            .await
            .map_err(|e| format!("serve: {e}"))
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
