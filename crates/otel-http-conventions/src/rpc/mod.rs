//! The gRPC rules of the RPC semantic conventions (Release Candidate;
//! pinned to the release `opentelemetry-semantic-conventions` carries,
//! schema 1.42.0) that a server layer and a client layer share: which
//! requests are gRPC, the method name, status codes and which of them are
//! errors on each side, the status a client makes up when the server sent
//! none, `grpc-message` decoding and `grpc-timeout` parsing.
//!
//! | rule | where |
//! | --- | --- |
//! | a request is gRPC iff its content-type is `application/grpc`, or starts with `application/grpc+` or `application/grpc;` (gRPC-Web is not) | [`is_grpc_content_type`] |
//! | `rpc.method` is the path without its leading `/` (`inventory.v1.Inventory/Reserve`); the span is named by it, or `grpc` | [`method_from_path`], [`span_name`] |
//! | `rpc.response.status_code` is the code's name, `OK` included; an unparsable `grpc-status` is `UNKNOWN` | [`GrpcCode`] |
//! | server errors: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`; client errors: every code but `OK` | [`GrpcCode::is_server_error`], [`GrpcCode::is_client_error`] |
//! | the status is `grpc-status` in the trailers, or in the headers of a trailers-only response | [`status_from_headers`] |
//! | a client that got no `grpc-status` maps the HTTP status | [`GrpcCode::from_http_status`] |
//! | a call given up before its status is `CANCELLED`, or `DEADLINE_EXCEEDED` once its `grpc-timeout` has passed (on the server, counted a fifth early, as the client's count started first) | [`GrpcCode::of_abandoned_call`], [`deadline`], [`server_deadline`] |
//! | `grpc-message` is percent-decoded UTF-8; bad input is kept, never an error | [`decode_grpc_message`] |
//! | `grpc-timeout`: 1 to 8 digits and a unit `H M S m u n` | [`parse_grpc_timeout`] |
//! | a client's `server.address` / `server.port` come from the target it was built for (`dns://…/host:port`, `unix://path`, others whole) | [`Target::parse`] |
//! | `rpc.{server,client}.call.duration`: seconds, the advised buckets; `rpc.system.name`, `rpc.method`, `rpc.response.status_code`, `error.type` iff failed, and on the client `server.address` / `server.port` | [`RpcMetrics`], [`RpcMetricKey`] |

use std::borrow::Cow;
use std::time::Duration;

mod metrics;
mod target;

pub use metrics::{RpcMetricKey, RpcMetrics, MAX_BOUND_RPC_ATTRIBUTE_SETS};
pub use target::Target;

/// `rpc.system.name`.
pub const RPC_SYSTEM_NAME: &str = opentelemetry_semantic_conventions::attribute::RPC_SYSTEM_NAME;
/// `rpc.method`.
pub const RPC_METHOD: &str = opentelemetry_semantic_conventions::attribute::RPC_METHOD;
/// `rpc.method_original`.
pub const RPC_METHOD_ORIGINAL: &str =
    opentelemetry_semantic_conventions::attribute::RPC_METHOD_ORIGINAL;
/// The status attribute: `rpc.response.status_code` in this release (the
/// conventions' main branch renames it `rpc.status_code`; this is the one
/// place to change).
pub const RPC_STATUS_CODE: &str =
    opentelemetry_semantic_conventions::attribute::RPC_RESPONSE_STATUS_CODE;
/// `rpc.server.call.duration`, in seconds.
pub const RPC_SERVER_CALL_DURATION: &str =
    opentelemetry_semantic_conventions::metric::RPC_SERVER_CALL_DURATION;
/// `rpc.client.call.duration`, in seconds.
pub const RPC_CLIENT_CALL_DURATION: &str =
    opentelemetry_semantic_conventions::metric::RPC_CLIENT_CALL_DURATION;
/// The value of `rpc.system.name` for gRPC, and the span name when the
/// method is unknown.
pub const GRPC: &str = "grpc";
/// The buckets the conventions advise for the call durations, in seconds.
pub const CALL_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Whether a `content-type` is gRPC's: exactly `application/grpc`, or
/// `application/grpc+…` (`+proto`, `+json`) or `application/grpc;…`,
/// compared without regard to ASCII case. gRPC-Web
/// (`application/grpc-web…`), which carries its status in the body, is not.
///
/// ```
/// use otel_http_conventions::rpc::is_grpc_content_type;
/// assert!(is_grpc_content_type("application/grpc"));
/// assert!(is_grpc_content_type("application/grpc+proto"));
/// assert!(!is_grpc_content_type("application/grpc-web+proto"));
/// assert!(!is_grpc_content_type("application/json"));
/// ```
pub fn is_grpc_content_type(content_type: &str) -> bool {
    is_grpc_content_type_bytes(content_type.as_bytes())
}

fn is_grpc_content_type_bytes(content_type: &[u8]) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    let Some(head) = content_type.get(..PREFIX.len()) else {
        return false;
    };
    head.eq_ignore_ascii_case(PREFIX)
        && matches!(content_type.get(PREFIX.len()), None | Some(b'+' | b';'))
}

/// `rpc.method` from a gRPC request's path: the path without its leading
/// `/`, when it has the form `/service/method` (the service may carry a
/// package: `inventory.v1.Inventory`). `None` for any other path.
///
/// ```
/// use otel_http_conventions::rpc::method_from_path;
/// assert_eq!(method_from_path("/inventory.v1.Inventory/Reserve"), Some("inventory.v1.Inventory/Reserve"));
/// assert_eq!(method_from_path("/Reserve"), None);
/// assert_eq!(method_from_path("inventory.v1.Inventory/Reserve"), None);
/// ```
pub fn method_from_path(path: &str) -> Option<&str> {
    let method = path.strip_prefix('/')?;
    let (service, name) = method.split_once('/')?;
    (!service.is_empty() && !name.is_empty() && !name.contains('/')).then_some(method)
}

/// The span name of a call: its method, or `grpc` when the method is
/// unknown.
pub fn span_name(method: Option<&str>) -> &str {
    method.unwrap_or(GRPC)
}

/// The response header or trailer that carries the status code.
pub const GRPC_STATUS_HEADER: http::HeaderName = http::HeaderName::from_static("grpc-status");
/// The response header or trailer that carries the status message.
pub const GRPC_MESSAGE_HEADER: http::HeaderName = http::HeaderName::from_static("grpc-message");
/// The request header that carries the call's deadline.
pub const GRPC_TIMEOUT_HEADER: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// Whether a request or response is gRPC, by its `content-type` header (see
/// [`is_grpc_content_type`]).
pub fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| is_grpc_content_type_bytes(v.as_bytes()))
}

/// The status in a header map: trailers, or the headers of a trailers-only
/// response. `None` when there is no `grpc-status`; the message is decoded
/// (see [`decode_grpc_message`]) and `None` when absent or empty, or when
/// the code is `OK`.
///
/// ```
/// use otel_http_conventions::rpc::{status_from_headers, GrpcCode};
/// let mut trailers = http::HeaderMap::new();
/// trailers.insert("grpc-status", "5".parse().unwrap());
/// trailers.insert("grpc-message", "no%20such%20item".parse().unwrap());
/// let (code, message) = status_from_headers(&trailers).unwrap();
/// assert_eq!((code, message.as_deref()), (GrpcCode::NotFound, Some("no such item")));
/// ```
pub fn status_from_headers(headers: &http::HeaderMap) -> Option<(GrpcCode, Option<String>)> {
    let code = GrpcCode::from_header(headers.get(&GRPC_STATUS_HEADER)?.as_bytes());
    if code == GrpcCode::Ok {
        // An `OK` call's message says nothing anyone records.
        return Some((code, None));
    }
    let message = headers
        .get(&GRPC_MESSAGE_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .filter(|v| !v.is_empty())
        .map(|v| decode_grpc_message(&v).into_owned());
    Some((code, message))
}

/// The deadline a request's `grpc-timeout` sets, counted from `start`: the
/// client's view.
pub fn deadline(
    headers: &http::HeaderMap,
    start: std::time::Instant,
) -> Option<std::time::Instant> {
    let timeout = parse_grpc_timeout(headers.get(&GRPC_TIMEOUT_HEADER)?.to_str().ok()?)?;
    start.checked_add(timeout)
}

/// The deadline as a server judges a call its client gave up on. The
/// client's clock started before the request reached the server, so a
/// client that cancels at its deadline is seen by the server a little
/// before the server's own count runs out: the server's deadline is taken
/// a fifth of the timeout (at least 10 ms) early.
///
/// ```
/// use otel_http_conventions::rpc::server_deadline;
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("grpc-timeout", "500m".parse().unwrap());
/// assert_eq!(server_deadline(&headers, start), Some(start + Duration::from_millis(400)));
/// ```
pub fn server_deadline(
    headers: &http::HeaderMap,
    start: std::time::Instant,
) -> Option<std::time::Instant> {
    let timeout = parse_grpc_timeout(headers.get(&GRPC_TIMEOUT_HEADER)?.to_str().ok()?)?;
    let early = (timeout / 5).max(Duration::from_millis(10));
    start.checked_add(timeout.saturating_sub(early))
}

/// A gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GrpcCode {
    /// 0
    Ok,
    /// 1
    Cancelled,
    /// 2
    Unknown,
    /// 3
    InvalidArgument,
    /// 4
    DeadlineExceeded,
    /// 5
    NotFound,
    /// 6
    AlreadyExists,
    /// 7
    PermissionDenied,
    /// 8
    ResourceExhausted,
    /// 9
    FailedPrecondition,
    /// 10
    Aborted,
    /// 11
    OutOfRange,
    /// 12
    Unimplemented,
    /// 13
    Internal,
    /// 14
    Unavailable,
    /// 15
    DataLoss,
    /// 16
    Unauthenticated,
}

impl GrpcCode {
    /// Every code, by number.
    pub const ALL: [GrpcCode; 17] = [
        GrpcCode::Ok,
        GrpcCode::Cancelled,
        GrpcCode::Unknown,
        GrpcCode::InvalidArgument,
        GrpcCode::DeadlineExceeded,
        GrpcCode::NotFound,
        GrpcCode::AlreadyExists,
        GrpcCode::PermissionDenied,
        GrpcCode::ResourceExhausted,
        GrpcCode::FailedPrecondition,
        GrpcCode::Aborted,
        GrpcCode::OutOfRange,
        GrpcCode::Unimplemented,
        GrpcCode::Internal,
        GrpcCode::Unavailable,
        GrpcCode::DataLoss,
        GrpcCode::Unauthenticated,
    ];

    /// The code numbered `n`; `UNKNOWN` for a number outside 0 to 16 (as
    /// tonic reads it, keeping the attribute to 17 values).
    pub fn from_number(n: u32) -> GrpcCode {
        usize::try_from(n)
            .ok()
            .and_then(|i| GrpcCode::ALL.get(i).copied())
            .unwrap_or(GrpcCode::Unknown)
    }

    /// The code a `grpc-status` value names: decimal digits; anything else
    /// is `UNKNOWN`.
    ///
    /// ```
    /// use otel_http_conventions::rpc::GrpcCode;
    /// assert_eq!(GrpcCode::from_header(b"5"), GrpcCode::NotFound);
    /// assert_eq!(GrpcCode::from_header(b"99"), GrpcCode::Unknown);
    /// assert_eq!(GrpcCode::from_header(b"x"), GrpcCode::Unknown);
    /// ```
    pub fn from_header(value: &[u8]) -> GrpcCode {
        std::str::from_utf8(value)
            .ok()
            .filter(|v| !v.is_empty() && v.len() <= 3 && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u32>().ok())
            .map_or(GrpcCode::Unknown, GrpcCode::from_number)
    }

    /// The number.
    pub fn number(self) -> u32 {
        self as u32
    }

    /// The canonical name, `rpc.response.status_code`'s value
    /// (`NOT_FOUND`).
    pub fn name(self) -> &'static str {
        match self {
            GrpcCode::Ok => "OK",
            GrpcCode::Cancelled => "CANCELLED",
            GrpcCode::Unknown => "UNKNOWN",
            GrpcCode::InvalidArgument => "INVALID_ARGUMENT",
            GrpcCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            GrpcCode::NotFound => "NOT_FOUND",
            GrpcCode::AlreadyExists => "ALREADY_EXISTS",
            GrpcCode::PermissionDenied => "PERMISSION_DENIED",
            GrpcCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            GrpcCode::FailedPrecondition => "FAILED_PRECONDITION",
            GrpcCode::Aborted => "ABORTED",
            GrpcCode::OutOfRange => "OUT_OF_RANGE",
            GrpcCode::Unimplemented => "UNIMPLEMENTED",
            GrpcCode::Internal => "INTERNAL",
            GrpcCode::Unavailable => "UNAVAILABLE",
            GrpcCode::DataLoss => "DATA_LOSS",
            GrpcCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether a server span with this code is an error: `UNKNOWN`,
    /// `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`,
    /// `DATA_LOSS` (the others are the caller's doing, and leave the status
    /// unset).
    pub fn is_server_error(self) -> bool {
        matches!(
            self,
            GrpcCode::Unknown
                | GrpcCode::DeadlineExceeded
                | GrpcCode::Unimplemented
                | GrpcCode::Internal
                | GrpcCode::Unavailable
                | GrpcCode::DataLoss
        )
    }

    /// Whether a client span with this code is an error: every code but
    /// `OK`.
    pub fn is_client_error(self) -> bool {
        self != GrpcCode::Ok
    }

    /// Whether a span on `side` with this code is an error.
    pub fn is_error(self, side: crate::Side) -> bool {
        match side {
            crate::Side::Server => self.is_server_error(),
            crate::Side::Client => self.is_client_error(),
        }
    }

    /// The code of a call given up before it had a status (its future or
    /// body dropped): `DEADLINE_EXCEEDED` once its deadline has passed,
    /// `CANCELLED` otherwise (gRPC counts an expired deadline as the
    /// client's cancellation, and asks that it be reported as such).
    pub fn of_abandoned_call(deadline_passed: bool) -> GrpcCode {
        if deadline_passed {
            GrpcCode::DeadlineExceeded
        } else {
            GrpcCode::Cancelled
        }
    }

    /// The code a client makes up when a response carries no `grpc-status`,
    /// from its HTTP status (gRPC's HTTP-to-gRPC status mapping): 400 and
    /// 431 `INTERNAL`, 401 `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404
    /// `UNIMPLEMENTED`, 429, 502, 503 and 504 `UNAVAILABLE`, any other
    /// (a 200 included) `UNKNOWN`.
    pub fn from_http_status(status: u16) -> GrpcCode {
        match status {
            400 | 431 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        }
    }
}

/// A `grpc-message` value as text: percent-decoded UTF-8. Bad input never
/// fails: a `%` not followed by two hex digits is kept as it is, and bytes
/// that are not UTF-8 become U+FFFD.
///
/// ```
/// use otel_http_conventions::rpc::decode_grpc_message;
/// assert_eq!(decode_grpc_message("ok%20%E2%9C%93"), "ok ✓");
/// assert_eq!(decode_grpc_message("100%zz"), "100%zz");
/// ```
pub fn decode_grpc_message(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    percent_encoding::percent_decode_str(value).decode_utf8_lossy()
}

/// A `grpc-timeout` value: a positive number of at most 8 digits and a unit
/// (`H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u`
/// microseconds, `n` nanoseconds). `None` for anything else.
///
/// ```
/// use otel_http_conventions::rpc::parse_grpc_timeout;
/// use std::time::Duration;
/// assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
/// assert_eq!(parse_grpc_timeout("123456789S"), None);
/// assert_eq!(parse_grpc_timeout("10"), None);
/// ```
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a1_content_types() {
        for (ct, grpc) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc+json", true),
            ("application/grpc;charset=utf-8", true),
            ("Application/GRPC", true),
            ("application/grpc-web", false),
            ("application/grpc-web+proto", false),
            ("application/grpc-web-text", false),
            ("application/grpcx", false),
            ("application/json", false),
            ("", false),
            ("application/grp", false),
        ] {
            assert_eq!(is_grpc_content_type(ct), grpc, "{ct:?}");
        }
    }

    #[test]
    fn a2_a3_methods_and_span_names() {
        for (path, method) in [
            (
                "/inventory.v1.Inventory/Reserve",
                Some("inventory.v1.Inventory/Reserve"),
            ),
            ("/Greeter/SayHello", Some("Greeter/SayHello")),
            ("/", None),
            ("/only", None),
            ("//Reserve", None),
            ("/svc/", None),
            ("/a/b/c", None),
            ("svc/m", None),
        ] {
            assert_eq!(method_from_path(path), method, "{path:?}");
            assert_eq!(span_name(method), method.unwrap_or("grpc"));
        }
    }

    /// The conventions' two error sets, every code and an out-of-range
    /// one, on each side.
    #[test]
    fn c1_c2_every_code_on_each_side() {
        let server_errors = [2, 4, 12, 13, 14, 15];
        for n in 0..=17u32 {
            let code = GrpcCode::from_number(n);
            let expected_n = if n > 16 { 2 } else { n };
            assert_eq!(code.number(), expected_n);
            assert_eq!(
                code.is_server_error(),
                server_errors.contains(&expected_n),
                "{n}"
            );
            assert_eq!(code.is_client_error(), expected_n != 0, "{n}");
            assert_eq!(GrpcCode::from_header(n.to_string().as_bytes()), code);
            assert!(code
                .name()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
        let names: std::collections::HashSet<&str> =
            GrpcCode::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), 17);
        for bad in [&b""[..], b"-1", b" 5", b"5a", b"0005", b"\xff"] {
            assert_eq!(GrpcCode::from_header(bad), GrpcCode::Unknown, "{bad:?}");
        }
    }

    #[test]
    fn c4_http_status_without_grpc_status() {
        for (status, code) in [
            (400, GrpcCode::Internal),
            (401, GrpcCode::Unauthenticated),
            (403, GrpcCode::PermissionDenied),
            (404, GrpcCode::Unimplemented),
            (429, GrpcCode::Unavailable),
            (431, GrpcCode::Internal),
            (502, GrpcCode::Unavailable),
            (503, GrpcCode::Unavailable),
            (504, GrpcCode::Unavailable),
            (200, GrpcCode::Unknown),
            (500, GrpcCode::Unknown),
        ] {
            assert_eq!(GrpcCode::from_http_status(status), code, "{status}");
        }
    }

    #[test]
    fn c3_status_from_trailers_or_trailers_only_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(status_from_headers(&headers), None, "no grpc-status");
        headers.insert(GRPC_STATUS_HEADER, http::HeaderValue::from_static("0"));
        assert_eq!(status_from_headers(&headers), Some((GrpcCode::Ok, None)));
        headers.insert(GRPC_STATUS_HEADER, http::HeaderValue::from_static("14"));
        headers.insert(
            GRPC_MESSAGE_HEADER,
            http::HeaderValue::from_static("down%20%E2%9C%93"),
        );
        assert_eq!(
            status_from_headers(&headers),
            Some((GrpcCode::Unavailable, Some("down ✓".to_owned())))
        );
        headers.insert(GRPC_MESSAGE_HEADER, http::HeaderValue::from_static(""));
        headers.insert(GRPC_STATUS_HEADER, http::HeaderValue::from_static("abc"));
        assert_eq!(
            status_from_headers(&headers),
            Some((GrpcCode::Unknown, None))
        );
    }

    #[test]
    fn e4_e5_abandoned_calls_and_deadlines() {
        assert_eq!(GrpcCode::of_abandoned_call(false), GrpcCode::Cancelled);
        assert_eq!(
            GrpcCode::of_abandoned_call(true),
            GrpcCode::DeadlineExceeded
        );
        let start = std::time::Instant::now();
        let mut headers = http::HeaderMap::new();
        assert_eq!(deadline(&headers, start), None);
        headers.insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_static("250m"));
        assert_eq!(
            deadline(&headers, start),
            Some(start + Duration::from_millis(250))
        );
        assert_eq!(
            server_deadline(&headers, start),
            Some(start + Duration::from_millis(200))
        );
        headers.insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_static("20m"));
        assert_eq!(
            server_deadline(&headers, start),
            Some(start + Duration::from_millis(10)),
            "at least 10 ms early"
        );
        headers.insert(GRPC_TIMEOUT_HEADER, http::HeaderValue::from_static("-1S"));
        assert_eq!(deadline(&headers, start), None);
        assert_eq!(server_deadline(&headers, start), None);
    }

    #[test]
    fn h3_messages_and_e5_timeouts() {
        assert_eq!(decode_grpc_message("%E2%9C%93"), "✓");
        assert_eq!(decode_grpc_message("%zz"), "%zz");
        assert_eq!(decode_grpc_message("%E2%9C"), "\u{fffd}");
        assert!(matches!(
            decode_grpc_message("plain"),
            Cow::Borrowed("plain")
        ));
        for (value, want) in [
            ("1S", Some(Duration::from_secs(1))),
            ("100m", Some(Duration::from_millis(100))),
            ("99999999n", Some(Duration::from_nanos(99_999_999))),
            ("2H", Some(Duration::from_secs(7200))),
            ("3M", Some(Duration::from_secs(180))),
            ("7u", Some(Duration::from_micros(7))),
            ("123456789S", None),
            ("10", None),
            ("-1S", None),
            ("S", None),
            ("", None),
            ("1s", None),
            ("1 S", None),
        ] {
            assert_eq!(parse_grpc_timeout(value), want, "{value:?}");
        }
    }
}
