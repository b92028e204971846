//! Runs N requests through one variant, for `valgrind --tool=callgrind` to
//! count instructions (see `benches/icount.sh`, which runs two request
//! counts and reports the difference per request).
//!
//! `icount <variant> <requests>`. Server variants drive the app in process
//! through `tower::ServiceExt::oneshot`; client variants call a bare axum
//! server on 127.0.0.1 in the same process. Providers are shut down (and so
//! exported) before exit, inside the measurement.

use http_body_util::BodyExt;
use otel_web_benches::{
    call_over_loopback, client, grpc_app, grpc_request, providers_with_queue, request, router,
    runtime, server_app, CLIENT_VARIANTS, GRPC_VARIANTS, SERVER_VARIANTS,
};
use std::process::ExitCode;
use tower::ServiceExt;

/// Makes the request a server variant is sent.
type MakeRequest = fn() -> Option<http::Request<axum::body::Body>>;

fn usage() -> ExitCode {
    eprintln!(
        "usage: icount <variant> <requests>; variants: {}, {}, {}",
        SERVER_VARIANTS.join(", "),
        GRPC_VARIANTS.join(", "),
        CLIENT_VARIANTS.join(", ")
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(variant), Some(n)) = (
        args.next(),
        args.next().and_then(|n| n.parse::<usize>().ok()),
    ) else {
        return usage();
    };
    // Room for every span of the run: under valgrind, which runs one thread
    // at a time, the export thread falls behind, and a full queue would drop
    // spans (cheaper than exporting them) instead of exporting them.
    let (tracer, meter) = providers_with_queue(&variant, n.max(2048) + 64);
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    // `http_<server variant>`: the server variant over real HTTP on
    // 127.0.0.1, called by the bare client with a sampled traceparent.
    let over_http = variant
        .strip_prefix("http_")
        .and_then(|v| server_app(v, &tracer));
    let ok = if let Some(app) = over_http {
        let Some(client) = client("client_bare", &tracer) else {
            return usage();
        };
        rt.block_on(call_over_loopback(app, &client, n, true))
    } else if let Some((app, make_request)) = server_app(&variant, &tracer)
        .map(|app| (app, request as MakeRequest))
        .or_else(|| grpc_app(&variant, &tracer).map(|app| (app, grpc_request as MakeRequest)))
    {
        rt.block_on(async {
            let mut ok = 0usize;
            for _ in 0..n {
                let Some(req) = make_request() else { continue };
                let resp = match app.clone().oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                if resp.into_body().collect().await.is_ok() {
                    ok += 1;
                }
            }
            ok
        })
    } else if let Some(client) = client(&variant, &tracer) {
        rt.block_on(call_over_loopback(router(), &client, n, false))
    } else {
        return usage();
    };
    let _ = tracer.shutdown();
    let _ = meter.shutdown();
    if ok == n {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} of {n} requests failed", n - ok);
        ExitCode::from(1)
    }
}
