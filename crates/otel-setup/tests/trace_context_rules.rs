//! W3C Trace Context Level 2 and Baggage on every path a context takes: a
//! request comes in over real loopback HTTP to a service traced by
//! `OtelLayer`, whose handler calls a second service with `OtelMiddleware`;
//! what the second service receives is compared with what came in. Each
//! rule is checked for a sampled request, a sampled-out one and one with no
//! span at all (a no-op tracer on both sides: the context only passes
//! through), with the propagators otel-setup configures from
//! `OTEL_PROPAGATORS`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use otel_reqwest::OtelMiddleware;
use otel_setup::Telemetry;
use otel_tower::OtelLayer;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// How the front service treats the request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Path {
    /// Recorded and sampled (the sampler says yes whatever the caller did).
    Sampled,
    /// Sampled out (the sampler says no).
    SampledOut,
    /// No span at all: a no-op tracer on both sides, so the caller's context
    /// passes through as it came.
    NotTraced,
}

const PATHS: [Path; 3] = [Path::Sampled, Path::SampledOut, Path::NotTraced];

struct Chain {
    front: SocketAddr,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    _provider: SdkTracerProvider,
}

/// The two services for `path`, propagating with `OTEL_PROPAGATORS` =
/// `propagators`; `random_ids`: whether new traces are marked random.
async fn chain(path: Path, propagators: &str, random_ids: bool) -> Chain {
    let sampler = match path {
        Path::Sampled => Sampler::AlwaysOn,
        Path::SampledOut => Sampler::AlwaysOff,
        Path::NotTraced => Sampler::AlwaysOff,
    };
    let noop = opentelemetry::trace::noop::NoopTracerProvider::new();
    let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
    let telemetry = Telemetry::builder()
        .local()
        .quiet()
        .env_map([
            ("OTEL_PROPAGATORS", propagators),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_LOGS_EXPORTER", "none"),
        ])
        .install()
        .expect("telemetry");

    // The second service: keeps the headers it receives.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let downstream = Router::new()
        .route(
            "/seen",
            get(
                |State(seen): State<Arc<Mutex<Vec<HeaderMap>>>>, headers: HeaderMap| async move {
                    seen.lock().expect("lock").push(headers);
                    "ok"
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let down = serve(downstream).await;

    // The front service: traced, calls the second one.
    let middleware = OtelMiddleware::builder()
        .propagator(telemetry.propagator())
        .random_trace_ids(random_ids);
    let middleware = match path {
        Path::NotTraced => middleware.tracer_provider(&noop),
        _ => middleware.tracer_provider(&provider),
    };
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware.build())
        .build();
    let layer = OtelLayer::builder()
        .propagator(telemetry.propagator())
        .random_trace_ids(random_ids);
    let layer = match path {
        Path::NotTraced => layer.tracer_provider(&noop),
        _ => layer.tracer_provider(&provider),
    };
    let front = Router::new()
        .route(
            "/call",
            get(move || {
                let client = client.clone();
                async move {
                    let r = client
                        .get(format!("http://{down}/seen"))
                        .send()
                        .await
                        .expect("downstream answers");
                    r.status().as_u16().to_string()
                }
            }),
        )
        .layer(layer.build());
    let front = serve(front).await;
    Chain {
        front,
        seen,
        _provider: provider,
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

impl Chain {
    /// Sends `headers` to the front service; what the second one received.
    async fn call(&self, headers: &[(&str, String)]) -> HeaderMap {
        let mut req = reqwest::Client::new().get(format!("http://{}/call", self.front));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().await.expect("front answers");
        assert_eq!(r.status(), 200);
        self.seen
            .lock()
            .expect("lock")
            .pop()
            .expect("the second service was called")
    }
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The flags and trace id of the `traceparent` the second service got.
fn sent(h: &HeaderMap) -> (String, u8) {
    let tp = header(h, "traceparent");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp:?}");
    let flags = u8::from_str_radix(parts[3], 16).expect("hex flags");
    (parts[1].to_owned(), flags)
}

fn sampled_bit(path: Path, incoming: u8) -> u8 {
    match path {
        Path::Sampled => 1,
        Path::SampledOut => 0,
        Path::NotTraced => incoming & 1,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_1_the_random_flag_received_is_sent_on_every_path() {
    for path in PATHS {
        let c = chain(path, "tracecontext,baggage", true).await;
        for incoming in [0x02u8, 0x0a, 0x03, 0x01, 0x00] {
            let h = c
                .call(&[("traceparent", format!("00-{TRACE}-{PARENT}-{incoming:02x}"))])
                .await;
            let (trace, flags) = sent(&h);
            assert_eq!(trace, TRACE, "{path:?}: same trace");
            assert_eq!(
                flags & 0x02,
                incoming & 0x02,
                "{path:?}: random flag of {incoming:02x} kept"
            );
            assert_eq!(flags & 0x01, sampled_bit(path, incoming), "{path:?}");
            assert_eq!(flags & !0x03, 0, "{path:?}: unknown bits zeroed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_2_new_traces_set_the_random_flag_when_ids_are_random() {
    // Without a span no trace is started, so nothing is sent to mark.
    for path in [Path::Sampled, Path::SampledOut] {
        for random_ids in [true, false] {
            let c = chain(path, "tracecontext,baggage", random_ids).await;
            let (trace, flags) = sent(&c.call(&[]).await);
            assert_ne!(trace, TRACE);
            let sampled = u8::from(path != Path::SampledOut);
            let random = if random_ids { 0x02 } else { 0 };
            assert_eq!(flags, sampled | random, "{path:?}, random ids {random_ids}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_3_level2_tracestate_keys_are_sent_on() {
    let tenant = "t".repeat(242);
    let state = format!("foo@@bar=1,foo@bar@baz=2,1x=3,{tenant}@v=4,a/b*c_d-e=5");
    for path in PATHS {
        let c = chain(path, "tracecontext,baggage", true).await;
        let h = c
            .call(&[
                ("traceparent", format!("00-{TRACE}-{PARENT}-01")),
                ("tracestate", state.clone()),
            ])
            .await;
        assert_eq!(header(&h, "tracestate"), state, "{path:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_4_a_duplicate_tracestate_key_drops_only_the_later_member() {
    for path in PATHS {
        let c = chain(path, "tracecontext,baggage", true).await;
        let h = c
            .call(&[
                ("traceparent", format!("00-{TRACE}-{PARENT}-01")),
                ("tracestate", "foo=1,bar=2,foo=3,baz=4".to_owned()),
            ])
            .await;
        assert_eq!(header(&h, "tracestate"), "foo=1,bar=2,baz=4", "{path:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_5_baggage_equals_signs_go_out_as_they_came() {
    // 8 members of 1,023 bytes of `=`: a legal 8,191-byte header.
    let members: Vec<String> = (0..8)
        .map(|i| format!("k{i}={}", "=".repeat(1_020)))
        .collect();
    let full = members.join(",");
    for path in PATHS {
        let c = chain(path, "tracecontext,baggage", true).await;
        for baggage in ["q=a=b==".to_owned(), full.clone()] {
            let h = c
                .call(&[
                    ("traceparent", format!("00-{TRACE}-{PARENT}-01")),
                    ("baggage", baggage.clone()),
                ])
                .await;
            let out = header(&h, "baggage");
            let mut got: Vec<&str> = out.split(',').collect();
            let mut want: Vec<&str> = baggage.split(',').collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{path:?}: every member, unchanged");
            assert!(out.len() <= 8_192);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_6_baggage_keeps_the_first_members_and_order_is_not_promised() {
    let members: Vec<String> = (0..70).map(|i| format!("m{i:02}={i}")).collect();
    for path in PATHS {
        let c = chain(path, "tracecontext,baggage", true).await;
        let h = c
            .call(&[
                ("traceparent", format!("00-{TRACE}-{PARENT}-01")),
                ("baggage", members.join(",")),
            ])
            .await;
        let out = header(&h, "baggage");
        let mut got: Vec<&str> = out.split(',').collect();
        got.sort_unstable();
        let mut want: Vec<&str> = members[..64].iter().map(String::as_str).collect();
        want.sort_unstable();
        assert_eq!(got, want, "{path:?}: the first 64, as documented");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_7_b3_gets_only_the_sampling_decision() {
    for path in PATHS {
        let c = chain(path, "tracecontext,b3,b3multi", true).await;
        for incoming in [0x03u8, 0x02] {
            let h = c
                .call(&[("traceparent", format!("00-{TRACE}-{PARENT}-{incoming:02x}"))])
                .await;
            let (_, flags) = sent(&h);
            let sampled = sampled_bit(path, incoming);
            assert_eq!(flags, 0x02 | sampled, "{path:?}: traceparent keeps random");
            let b3 = header(&h, "b3");
            let parts: Vec<&str> = b3.split('-').collect();
            assert_eq!(parts.len(), 3, "{path:?}: {b3:?} has a decision");
            assert_eq!(parts[0], TRACE, "{path:?} {incoming}: {h:?}");
            assert_eq!(parts[2], sampled.to_string(), "{path:?}: {b3:?}");
            assert_eq!(header(&h, "x-b3-sampled"), sampled.to_string(), "{path:?}");
            assert!(h.get("x-b3-flags").is_none(), "{path:?}: no debug flag");
        }
        // A B3-only caller's deferred decision does not become a random
        // flag on the way out.
        let h = c.call(&[("b3", format!("{TRACE}-{PARENT}"))]).await;
        let (trace, flags) = sent(&h);
        assert_eq!(trace, TRACE, "{path:?}: {h:?}");
        assert_eq!(flags & 0x02, 0, "{path:?}: B3 promises no random trace id");
    }
}
