//! Credentials in every place a client can put them, sent to the two
//! example services (real processes exporting spans, metrics and logs over
//! OTLP): none is found anywhere in what the collector receives, resources,
//! span attributes, events, metric points and log records included. Each
//! placement carries its own marker, so a failure names the place.
//! RELIABILITY.md's credential table lists these placements.

mod support;

use otel_testkit::otlp::OtlpReceiver;
use std::io::{Read, Write};
use std::time::Duration;
use support::{free_port, sigterm_and_wait, start_order_service, start_user_service};

/// One raw HTTP/1.1 request; the status code.
fn send(port: u16, head: &str) -> u16 {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn get(port: u16, target: &str, headers: &str) -> u16 {
    send(
        port,
        &format!(
            "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n"
        ),
    )
}

/// A placement: what it is, its marker, and what must be found instead
/// (proof the request was recorded at all).
struct Placement {
    place: String,
    marker: String,
    instead: String,
}

#[test]
fn no_credential_placement_reaches_the_collector() {
    let rx = OtlpReceiver::start();
    let otlp = |name: &str| {
        vec![
            ("OTEL_SERVICE_NAME", name.to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ]
    };
    let (mut user, user_err, user_port) = start_user_service(&otlp("user-service"));
    let mut placements: Vec<Placement> = Vec::new();

    // Headers: never recorded unless named.
    for (header, value) in [
        ("Authorization", "Bearer leak-authorization-z"),
        ("Cookie", "session=leak-cookie-z"),
        ("Proxy-Authorization", "Basic leak-proxy-authorization-z"),
        ("X-Api-Key", "leak-x-api-key-z"),
    ] {
        assert_eq!(
            get(user_port, "/users/1", &format!("{header}: {value}\r\n")),
            200
        );
        placements.push(Placement {
            place: format!("the {header} header"),
            marker: value.rsplit([' ', '=']).next().unwrap_or(value).to_owned(),
            instead: "/users/{id}".to_owned(),
        });
    }

    // Userinfo in an absolute-form request target.
    let target = format!("http://user:leak-userinfo-z@127.0.0.1:{user_port}/users/2");
    assert_eq!(get(user_port, &target, ""), 200);
    placements.push(Placement {
        place: "userinfo in the request target".to_owned(),
        marker: "leak-userinfo-z".to_owned(),
        instead: "/users/{id}".to_owned(),
    });

    // Each sensitive query key, plain, percent-encoded and upper-case.
    for key in otel_http_conventions::DEFAULT_SENSITIVE_QUERY_PARAMETERS {
        let encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
        for (how, form) in [
            ("plain", key.to_owned()),
            ("percent-encoded", encoded),
            ("upper-case", key.to_ascii_uppercase()),
        ] {
            let marker = format!("leak-q-{}-{how}-z", key.to_ascii_lowercase());
            assert_eq!(
                get(user_port, &format!("/users/3?page=1&{form}={marker}"), ""),
                200
            );
            placements.push(Placement {
                place: format!("query key {key} ({how})"),
                marker,
                instead: format!("{form}=REDACTED"),
            });
        }
    }

    // An error text on the client side: order-service calls a user-service
    // URL with a password and a token that does not answer, and records,
    // logs and answers reqwest's error, which quotes the URL.
    let closed = free_port();
    let mut env = otlp("order-service");
    env.push((
        "USER_SERVICE_URL",
        format!(
            "http://svc:leak-client-url-password-z@127.0.0.1:{closed}/api?token=leak-client-url-token-z&to="
        ),
    ));
    let (mut order, order_err, order_port) = start_order_service(&env);
    let body = r#"{"user_id":1,"item":"pen","quantity":1}"#;
    let status = send(
        order_port,
        &format!(
            "POST /order HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(status, 502);
    placements.push(Placement {
        place: "a URL password in a client call (url.full, error texts)".to_owned(),
        marker: "leak-client-url-password-z".to_owned(),
        instead: "user-service unreachable: error sending request".to_owned(),
    });
    placements.push(Placement {
        place: "a URL token in a client error text (event, log, answer)".to_owned(),
        marker: "leak-client-url-token-z".to_owned(),
        instead: "unreachable: error sending request for url (http://127.0.0.1".to_owned(),
    });
    placements.push(Placement {
        place: "a URL token in the client span (url.full)".to_owned(),
        marker: "leak-client-url-token-z".to_owned(),
        instead: "/api?token=REDACTED&to=/users/1".to_owned(),
    });

    // Stopping flushes everything.
    sigterm_and_wait(&mut user);
    sigterm_and_wait(&mut order);
    let _ = std::fs::remove_file(user_err);
    let _ = std::fs::remove_file(order_err);
    let dump = rx.dump_json();
    assert!(dump.contains("\"logRecords\""), "log records were exported");
    let mut leaks = Vec::new();
    for p in &placements {
        if dump.contains(&p.marker) {
            leaks.push(p.place.clone());
        }
        assert!(
            dump.contains(&p.instead),
            "{}: the request was recorded ({:?} not found)",
            p.place,
            p.instead
        );
    }
    assert!(leaks.is_empty(), "found in the export: {leaks:#?}");
    assert!(placements.len() > 90, "{} placements", placements.len());
}
