//! The order flow end to end: order-service, user-service and
//! inventory-service (gRPC) as separate processes, configured with the `environment:` entries of
//! docker-compose.yml (hosts rewritten to 127.0.0.1 and free ports),
//! exporting over OTLP to an in-test receiver: once over gRPC, once over
//! HTTP/protobuf.

use otel_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use yaml_rust2::{Yaml, YamlLoader};

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

fn compose() -> Yaml {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
    let text = std::fs::read_to_string(path).expect("docker-compose.yml at the project root");
    YamlLoader::load_from_str(&text)
        .expect("docker-compose.yml is YAML")
        .remove(0)
}

fn service_env(doc: &Yaml, service: &str) -> BTreeMap<String, String> {
    let env = &doc["services"][service]["environment"];
    let hash = env
        .as_hash()
        .unwrap_or_else(|| panic!("{service} has an environment: map"));
    hash.iter()
        .map(|(k, v)| {
            let value = match v {
                Yaml::String(s) => s.clone(),
                Yaml::Integer(i) => i.to_string(),
                other => panic!("{service}: unexpected value {other:?}"),
            };
            (k.as_str().expect("string key").to_owned(), value)
        })
        .collect()
}

#[test]
fn compose_file_is_consistent() {
    let doc = compose();
    for s in [
        "jaeger",
        "user-service",
        "inventory-service",
        "order-service",
        "traffic",
    ] {
        assert!(!doc["services"][s].is_badvalue(), "service {s} defined");
    }
    let jaeger_ports: Vec<&str> = doc["services"]["jaeger"]["ports"]
        .as_vec()
        .expect("jaeger ports")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    for port in ["16686:16686", "4317:4317", "4318:4318"] {
        assert!(jaeger_ports.contains(&port), "jaeger publishes {port}");
    }
    for s in ["user-service", "inventory-service", "order-service"] {
        let env = service_env(&doc, s);
        assert_eq!(env["OTEL_SERVICE_NAME"], s);
        let endpoint = &env["OTEL_EXPORTER_OTLP_ENDPOINT"];
        assert!(
            endpoint.starts_with("http://jaeger:43"),
            "{s} exports to jaeger: {endpoint}"
        );
        assert!(env.contains_key("PORT"));
        assert_eq!(
            doc["services"][s]["build"]["args"]["SERVICE"].as_str(),
            Some(s)
        );
        assert!(
            !doc["services"][s]["healthcheck"].is_badvalue(),
            "{s} has a healthcheck"
        );
    }
    assert_eq!(
        service_env(&doc, "order-service")["USER_SERVICE_URL"],
        "http://user-service:8081"
    );
    assert_eq!(
        service_env(&doc, "order-service")["INVENTORY_SERVICE_URL"],
        "http://inventory-service:8082"
    );
    for upstream in ["user-service", "inventory-service"] {
        assert_eq!(
            doc["services"]["order-service"]["depends_on"][upstream]["condition"].as_str(),
            Some("service_healthy")
        );
    }
}

mod support;

use support::free_port;

struct Service {
    child: Child,
    port: u16,
}

impl Service {
    /// Starts `bin` with the environment `env` gives for a free port, on
    /// another port if that one was taken before the service bound it
    /// (test binaries run side by side), and waits until it is healthy.
    fn start(bin: &str, env: impl Fn(u16) -> BTreeMap<String, String>) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(bin);
            // Only what the compose file says: nothing from the test's own OTEL_*.
            for (k, _) in std::env::vars() {
                if k.starts_with("OTEL_") {
                    cmd.env_remove(k);
                }
            }
            cmd.envs(env(port))
                .stdin(Stdio::null())
                .stderr(Stdio::inherit());
            if let Ok(child) = support::spawn_listening(cmd) {
                let svc = Service { child, port };
                svc.wait_healthy();
                return svc;
            }
        }
        panic!("{bin} found no free port in 5 tries");
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://127.0.0.1:{}/health", self.port);
        while Instant::now() < deadline {
            if probe::get_ok(&url) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{url} never answered");
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "SIGTERM sent");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "graceful exit: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "service did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking GET over std, so no second runtime is needed.
mod probe {
    pub fn get_ok(url: &str) -> bool {
        use std::io::{Read, Write};
        let Some(rest) = url.strip_prefix("http://") else {
            return false;
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Ok(mut s) = std::net::TcpStream::connect(host) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
        let req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 12];
        matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200"))
    }
}

fn rewrite(env: &mut BTreeMap<String, String>, from: &str, to: &str) {
    for v in env.values_mut() {
        *v = v.replace(from, to);
    }
}

/// Posts an order; its status, and its answer printed for a failing test.
fn post_order(port: u16, body: serde_json::Value) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/order"))
            .json(&body)
            .send()
            .await
            .expect("order-service answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        println!("POST /order {body} -> {status} {text}");
        status
    })
}

fn by_trace(spans: &[ReceivedSpan]) -> BTreeMap<String, Vec<ReceivedSpan>> {
    let mut out: BTreeMap<String, Vec<ReceivedSpan>> = BTreeMap::new();
    for s in spans {
        out.entry(s.trace_id()).or_default().push(s.clone());
    }
    out
}

fn find<'a>(
    trace: &'a [ReceivedSpan],
    service: &str,
    name: &str,
    kind: Option<i32>,
) -> &'a ReceivedSpan {
    trace
        .iter()
        .find(|s| {
            s.resource_attr("service.name").as_deref() == Some(service)
                && s.span.name == name
                && kind.is_none_or(|k| s.span.kind == k)
        })
        .unwrap_or_else(|| {
            let names: Vec<_> = trace
                .iter()
                .map(|s| (s.resource_attr("service.name"), &s.span.name))
                .collect();
            panic!("no {service} span {name:?} in {names:?}")
        })
}

fn child_of(child: &ReceivedSpan, parent: &ReceivedSpan) {
    assert_eq!(child.trace_id(), parent.trace_id());
    assert_eq!(
        child.parent_id(),
        parent.span_id(),
        "{} is a child of {}",
        child.span.name,
        parent.span.name
    );
}

fn is_error(s: &ReceivedSpan) -> bool {
    s.span
        .status
        .as_ref()
        .is_some_and(|st| st.code == STATUS_ERROR)
}

fn run_flow(protocol: &str) {
    let rx = OtlpReceiver::start();
    let doc = compose();
    let grpc = rx.grpc_endpoint().replace("http://", "");
    let http = rx.http_endpoint().replace("http://", "");
    // The compose file's environment for `service` on `port`, the upstreams
    // at the ports they were given.
    let prepare = |service: &str, port: u16, upstreams: &[(&str, u16)]| {
        let mut env = service_env(&doc, service);
        if protocol != "grpc" {
            env.insert("OTEL_EXPORTER_OTLP_PROTOCOL".into(), protocol.into());
            env.insert(
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                "http://jaeger:4318".into(),
            );
        }
        rewrite(&mut env, "jaeger:4317", &grpc);
        rewrite(&mut env, "jaeger:4318", &http);
        for (host, port) in upstreams {
            rewrite(&mut env, host, &format!("127.0.0.1:{port}"));
        }
        env.insert("PORT".into(), port.to_string());
        env.insert("HOST".into(), "127.0.0.1".into());
        env
    };
    let user = Service::start(env!("CARGO_BIN_EXE_e2e-user-service"), |port| {
        prepare("user-service", port, &[])
    });
    let inventory = Service::start(env!("CARGO_BIN_EXE_e2e-inventory-service"), |port| {
        prepare("inventory-service", port, &[])
    });
    let upstreams = [
        ("user-service:8081", user.port),
        ("inventory-service:8082", inventory.port),
    ];
    let order = Service::start(env!("CARGO_BIN_EXE_e2e-order-service"), |port| {
        prepare("order-service", port, &upstreams)
    });
    let order_port = order.port;

    let good = serde_json::json!({"user_id": 1, "item": "book", "quantity": 2});
    let invalid = serde_json::json!({"user_id": 1, "item": "", "quantity": 0});
    let failing = serde_json::json!({"user_id": 13, "item": "lamp", "quantity": 1});
    let out_of_stock = serde_json::json!({"user_id": 2, "item": "globe", "quantity": 1});
    let inventory_failing = serde_json::json!({"user_id": 3, "item": "glitch", "quantity": 1});
    assert_eq!(post_order(order_port, good.clone()), 201);
    assert_eq!(post_order(order_port, invalid), 400);
    assert_eq!(post_order(order_port, failing), 502);
    assert_eq!(post_order(order_port, out_of_stock), 409);
    assert_eq!(post_order(order_port, inventory_failing), 502);
    // user-service goes away (its spans must all be flushed on the way out);
    // order-service then reports it unreachable.
    user.stop();
    assert_eq!(post_order(order_port, good), 502);
    inventory.stop();
    order.stop();

    // 10 (good: 7 HTTP + 3 of the gRPC hop) + 2 (invalid) + 5 (failing
    // user) + 9 (out of stock) + 9 (failing inventory) + 3 (unreachable):
    // all of them, already delivered when the processes exited.
    let spans = rx.spans();
    assert_eq!(
        spans.len(),
        38,
        "{:#?}",
        spans.iter().map(|s| &s.span.name).collect::<Vec<_>>()
    );
    let traces = by_trace(&spans);
    assert_eq!(traces.len(), 6, "one trace per order");

    let mut seen = 0;
    for trace in traces.values() {
        let server = find(trace, "order-service", "POST /order", Some(SERVER));
        let status = server.attr("http.response.status_code").unwrap_or_default();
        let validate = find(trace, "order-service", "validate_order", None);
        child_of(validate, server);
        assert_eq!(server.attr("http.route").as_deref(), Some("/order"));
        match (status.as_str(), trace.len()) {
            ("201", 10) => {
                let reserve = grpc_hop(trace, server);
                assert!(!is_error(reserve.client) && !is_error(reserve.server));
                for span in [reserve.client, reserve.server] {
                    assert_eq!(span.attr("rpc.response.status_code").as_deref(), Some("OK"));
                    assert_eq!(span.attr("error.type"), None);
                }
                let client = find(trace, "order-service", "GET /users/{id}", Some(CLIENT));
                let user_server = find(trace, "user-service", "GET /users/{id}", Some(SERVER));
                child_of(client, server);
                child_of(user_server, client);
                child_of(find(trace, "user-service", "db_query", None), user_server);
                child_of(find(trace, "user-service", "cache_set", None), user_server);
                child_of(
                    find(trace, "order-service", "save_to_database", None),
                    server,
                );
                assert!(!is_error(server) && !is_error(client) && !is_error(user_server));
                assert_eq!(
                    user_server.attr("http.route").as_deref(),
                    Some("/users/{id}")
                );
                seen |= 1;
            }
            ("400", 2) => {
                assert!(!is_error(server), "a client error is not a server error");
                seen |= 2;
            }
            ("502", 5) => {
                let client = find(trace, "order-service", "GET /users/{id}", Some(CLIENT));
                let user_server = find(trace, "user-service", "GET /users/{id}", Some(SERVER));
                child_of(user_server, client);
                assert!(is_error(server) && is_error(client) && is_error(user_server));
                assert_eq!(user_server.attr("error.type").as_deref(), Some("500"));
                assert_eq!(client.attr("error.type").as_deref(), Some("500"));
                assert!(server.span.events.iter().any(|e| e.name == "exception"));
                seen |= 4;
            }
            ("502", 3) => {
                let client = find(trace, "order-service", "GET /users/{id}", Some(CLIENT));
                assert!(is_error(client));
                assert_eq!(client.attr("error.type").as_deref(), Some("connect"));
                assert!(server.span.events.iter().any(|e| e.name == "exception"));
                seen |= 8;
            }
            ("409", 9) => {
                // A refused reservation: the caller's problem, so an error on
                // the client span only.
                let reserve = grpc_hop(trace, server);
                for span in [reserve.client, reserve.server] {
                    assert_eq!(
                        span.attr("rpc.response.status_code").as_deref(),
                        Some("FAILED_PRECONDITION")
                    );
                }
                assert!(is_error(reserve.client));
                assert_eq!(
                    reserve.client.attr("error.type").as_deref(),
                    Some("FAILED_PRECONDITION")
                );
                assert!(!is_error(reserve.server));
                assert_eq!(reserve.server.attr("error.type"), None);
                assert!(!is_error(server), "a 409 is not a server error");
                seen |= 16;
            }
            ("502", 9) => {
                let reserve = grpc_hop(trace, server);
                for span in [reserve.client, reserve.server] {
                    assert!(is_error(span));
                    assert_eq!(
                        span.attr("rpc.response.status_code").as_deref(),
                        Some("INTERNAL")
                    );
                    assert_eq!(span.attr("error.type").as_deref(), Some("INTERNAL"));
                }
                assert!(is_error(server));
                seen |= 32;
            }
            other => panic!("unexpected trace shape {other:?}"),
        }
    }
    assert_eq!(seen, 63, "each order's trace was seen");
}

/// The spans of order-service's call to inventory-service.
struct GrpcHop<'a> {
    client: &'a ReceivedSpan,
    server: &'a ReceivedSpan,
}

/// Finds the gRPC hop under order-service's `server` span and checks what
/// every call has: the names, the links, the RPC attributes.
fn grpc_hop<'a>(trace: &'a [ReceivedSpan], server: &ReceivedSpan) -> GrpcHop<'a> {
    const METHOD: &str = "inventory.v1.Inventory/Reserve";
    let client = find(trace, "order-service", METHOD, Some(CLIENT));
    let grpc_server = find(trace, "inventory-service", METHOD, Some(SERVER));
    child_of(client, server);
    child_of(grpc_server, client);
    child_of(
        find(trace, "inventory-service", "stock_lookup", None),
        grpc_server,
    );
    for span in [client, grpc_server] {
        assert_eq!(span.attr("rpc.system.name").as_deref(), Some("grpc"));
        assert_eq!(span.attr("rpc.method").as_deref(), Some(METHOD));
        assert_eq!(span.attr("server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(span.attr("http.request.method"), None, "no HTTP attributes");
    }
    GrpcHop {
        client,
        server: grpc_server,
    }
}

#[test]
fn order_flow_over_grpc() {
    run_flow("grpc");
}

#[test]
fn order_flow_over_http_protobuf() {
    run_flow("http/protobuf");
}
