//! `cargo run`: starts order-service, user-service and inventory-service
//! (gRPC) on 127.0.0.1, sends a few orders (a good one, an invalid one, one
//! for an unknown user, one that makes user-service fail, one for an item
//! out of stock and one that makes inventory-service fail), prints each
//! trace as a waterfall across the services, and exits.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans also go there (Jaeger,
//! a collector), as from the real services.
#![forbid(unsafe_code)]

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SimpleSpanProcessor, SpanData, SpanExporter};
use otel_setup::waterfall::{render, WaterfallSpan};
use otel_setup::{ExporterKind, Telemetry};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// Keeps every span a service ends, tagged with its service name.
#[derive(Debug, Clone)]
struct Collect {
    service: &'static str,
    spans: Arc<Mutex<Vec<WaterfallSpan>>>,
}

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if let Ok(mut spans) = self.spans.lock() {
            spans.extend(
                batch
                    .iter()
                    .map(|s| WaterfallSpan::from_span_data(s, self.service)),
            );
        }
        Ok(())
    }
}

fn telemetry(
    service: &'static str,
    spans: &Arc<Mutex<Vec<WaterfallSpan>>>,
) -> Result<Telemetry, otel_setup::Error> {
    let otlp = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.trim().is_empty());
    let exporters = if otlp {
        vec![ExporterKind::Otlp]
    } else {
        vec![]
    };
    Telemetry::builder()
        .service_name(service)
        .local()
        .traces_exporters(exporters.clone())
        .metrics_exporters(exporters.clone())
        .logs_exporters(exporters)
        .span_processor(SimpleSpanProcessor::new(Collect {
            service,
            spans: Arc::clone(spans),
        }))
        .install()
}

fn with_dispatch(app: axum::Router, telemetry: &Telemetry) -> axum::Router {
    let Some(dispatch) = telemetry.tracing_dispatch().cloned() else {
        return app;
    };
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            use tracing::instrument::WithSubscriber;
            next.run(req).with_subscriber(dispatch.clone())
        },
    ))
}

async fn serve(app: axum::Router) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    Ok(addr)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    otel_propagation::set_global_default();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let users = telemetry("user-service", &spans)?;
    let orders = telemetry("order-service", &spans)?;
    let inventory = telemetry("inventory-service", &spans)?;
    let (Some(ut), Some(um), Some(ot), Some(om), Some(it), Some(im)) = (
        users.tracer_provider(),
        users.meter_provider(),
        orders.tracer_provider(),
        orders.meter_provider(),
        inventory.tracer_provider(),
        inventory.meter_provider(),
    ) else {
        return Err("OTEL_SDK_DISABLED is set: nothing to show".into());
    };
    // Both services share this process: each runs its requests under its
    // own tracing subscriber, so its tracing spans and logs are its own.
    let user_addr = serve(with_dispatch(user_service::app(ut, um), &users)).await?;
    let inventory_addr = serve(with_dispatch(inventory_service::app(it, im), &inventory)).await?;
    let upstreams = order_service::Upstreams {
        user_service: format!("http://{user_addr}"),
        inventory_service: format!("http://{inventory_addr}"),
    };
    let order_addr = serve(with_dispatch(
        order_service::app(ot, om, &upstreams),
        &orders,
    ))
    .await?;
    println!("user-service      on http://{user_addr}");
    println!("inventory-service on http://{inventory_addr} (gRPC)");
    println!("order-service     on http://{order_addr}\n");

    let orders_to_send = [
        (
            "a good order",
            serde_json::json!({"user_id": 1, "item": "book", "quantity": 2}),
        ),
        (
            "an invalid order",
            serde_json::json!({"user_id": 1, "item": "", "quantity": 0}),
        ),
        (
            "an unknown user",
            serde_json::json!({"user_id": 42, "item": "pen", "quantity": 1}),
        ),
        (
            "user-service failing",
            serde_json::json!({"user_id": user_service::FAILING_USER, "item": "lamp", "quantity": 1}),
        ),
        (
            "an item out of stock",
            serde_json::json!({"user_id": 2, "item": inventory_service::OUT_OF_STOCK_ITEM, "quantity": 1}),
        ),
        (
            "inventory-service failing",
            serde_json::json!({"user_id": 3, "item": inventory_service::FAILING_ITEM, "quantity": 1}),
        ),
    ];
    let client = reqwest::Client::new();
    for (what, body) in orders_to_send {
        let resp = client
            .post(format!("http://{order_addr}/order"))
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        println!("POST /order ({what}) -> {status} {text}");
    }
    println!();

    // Spans end with the response bodies; give the last ones a moment, then
    // flush everything (OTLP too, if configured).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    tokio::task::spawn_blocking(move || {
        users.shutdown();
        orders.shutdown();
        inventory.shutdown();
    })
    .await?;
    let spans = spans.lock().map(|s| s.clone()).unwrap_or_default();
    print!("{}", render(&spans));
    Ok(())
}
