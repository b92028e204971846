//! What the example services share: telemetry from the `OTEL_*` variables,
//! serving on `HOST`:`PORT`, a `healthcheck` subcommand for containers, and
//! a graceful shutdown on SIGTERM or Ctrl-C that flushes telemetry.
#![forbid(unsafe_code)]

use axum::routing::get;
use axum::Router;
use opentelemetry::global::{BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::MeterProvider;
use opentelemetry::trace::{TraceContextExt, Tracer};
use opentelemetry::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Adds `GET /health` (not traced) and `OtelLayer` with the given providers.
pub fn instrumented<T, M>(router: Router, tracer_provider: &T, meter_provider: &M) -> Router
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
    instrumented_with(router, layer(tracer_provider, meter_provider))
}

/// The services' `OtelLayer` settings: the given providers, `/health` not
/// traced.
pub fn layer<T, M>(tracer_provider: &T, meter_provider: &M) -> otel_tower::OtelLayerBuilder
where
    T: ObjectSafeTracerProvider + ?Sized,
    M: MeterProvider + ?Sized,
{
    otel_tower::OtelLayer::builder()
        .tracer_provider(tracer_provider)
        .meter_provider(meter_provider)
        .filter(|req| req.uri.path() != "/health")
}

/// Adds `GET /health` and the layer `builder` makes.
pub fn instrumented_with(router: Router, builder: otel_tower::OtelLayerBuilder) -> Router {
    router
        .route("/health", get(|| async { "ok" }))
        .layer(builder.build())
}

/// A tracer for a service's own spans.
pub fn tracer<T: ObjectSafeTracerProvider + ?Sized>(
    provider: &T,
    name: &'static str,
) -> BoxedTracer {
    BoxedTracer::new(
        provider.boxed_tracer(opentelemetry::InstrumentationScope::builder(name).build()),
    )
}

/// Simulated work: a child span of the current context named `name`, lasting
/// `ms`, around `work`.
pub async fn step<R>(
    tracer: &BoxedTracer,
    name: &'static str,
    ms: u64,
    work: impl FnOnce(&Context) -> R,
) -> R {
    let cx = Context::current_with_span(tracer.start(name));
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let out = work(&cx);
    cx.span().end();
    out
}

/// Runs a service: `<binary>` serves, `<binary> healthcheck` probes a running
/// one (for container health checks, which have no curl).
///
/// Variables: `HOST` (default 127.0.0.1), `PORT` (default `default_port`),
/// and the `OTEL_*` variables otel-setup reads; `OTEL_SERVICE_NAME` defaults to `name`.
pub async fn run(name: &str, default_port: u16, app: impl FnOnce() -> Router) -> ExitCode {
    let port = match std::env::var("PORT") {
        Ok(p) if !p.trim().is_empty() => match p.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("{name}: PORT={p:?} is not a port number (1-65535)");
                return ExitCode::from(2);
            }
        },
        _ => default_port,
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(port).await;
    }
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let mut builder = otel_setup::Telemetry::builder().service_version(env!("CARGO_PKG_VERSION"));
    if std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty()) {
        builder = builder.service_name(name);
    }
    let telemetry = match builder.install() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{name}: telemetry could not start: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = format!("{host}:{port}");
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    println!("{name} listening on http://{addr}");
    let served = axum::serve(
        listener,
        app().into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    // Flushing blocks; keep it off the async workers.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    println!("{name} stopped; telemetry flushed");
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: server error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn healthcheck(port: u16) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.ok()?;
        Some(buf[..n].starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Some(true)) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}
