//! Memory per request: runs one server variant in process and prints the
//! resident set size after each checkpoint, so a run of 1,000,000 requests
//! can be compared with its own state at 100,000.
//!
//! `rss <variant> <checkpoint>...`, e.g. `rss otel_sampled 100000 1000000`.
//! Prints `requests rss_kib` per checkpoint.

use http_body_util::BodyExt;
use otel_web_benches::{providers, request, rss_kib, runtime, server_app, SERVER_VARIANTS};
use std::process::ExitCode;
use tower::ServiceExt;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let checkpoints: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    let (tracer, meter) = providers(&variant);
    let (Some(app), false) = (server_app(&variant, &tracer), checkpoints.is_empty()) else {
        eprintln!(
            "usage: rss <variant> <checkpoint>...; variants: {}",
            SERVER_VARIANTS.join(", ")
        );
        return ExitCode::from(2);
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let failed = rt.block_on(async {
        let mut done = 0usize;
        let mut failed = 0usize;
        for &checkpoint in &checkpoints {
            while done < checkpoint {
                done += 1;
                let Some(req) = request() else {
                    failed += 1;
                    continue;
                };
                let resp = match app.clone().oneshot(req).await {
                    Ok(resp) => resp,
                    Err(never) => match never {},
                };
                if resp.into_body().collect().await.is_err() {
                    failed += 1;
                }
            }
            // Let the batch processor's thread catch up before reading.
            let _ = tracer.force_flush();
            println!("{done} {}", rss_kib().unwrap_or(0));
        }
        failed
    });
    let _ = tracer.shutdown();
    let _ = meter.shutdown();
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} requests failed");
        ExitCode::from(1)
    }
}
