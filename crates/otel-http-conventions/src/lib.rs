//! The OpenTelemetry HTTP semantic conventions (stable, v1.42 schema) that
//! otel-web's server ([`otel-tower`]) and client ([`otel-reqwest`])
//! instrumentations share, so each rule exists once:
//!
//! - [`KnownMethods`]: `http.request.method`, `_OTHER`,
//!   `http.request.method_original`, `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`;
//! - [`SensitiveQueryParameters`]: `url.query` / `url.full` redaction and
//!   credential removal;
//! - [`HeaderCapture`]: opt-in `http.{request,response}.header.<key>`;
//! - [`forwarded_client_address`], [`server_host_port`], [`forwarded_scheme`]:
//!   `client.address`, `server.address` / `server.port`, `url.scheme`;
//! - [`server_status_is_error`], [`client_status_is_error`],
//!   [`status_code_str`]: span status and `error.type`;
//! - [`protocol_version`] and [`DURATION_BUCKETS`];
//! - [`interned_span_name`]: `{method} {route}` span names made once, not
//!   per request; [`shared_string`]: attribute values that repeat between
//!   requests, shared per thread instead of copied;
//! - [`InstalledTracerProvider`] / [`HttpTracer`]: spans started with the
//!   SDK's tracer directly when it is the installed provider;
//! - [`CommonOptions`] / [`Resolved`], [`HttpMetrics`], [`PropagatorChoice`]:
//!   how both sides pick their tracer, meter, propagator and instruments;
//! - [`rpc`]: the gRPC rules of the RPC conventions (Release Candidate), for
//!   the gRPC server and client instrumentation being built on them:
//!   detection, `rpc.method`, status codes and their error sets,
//!   `grpc-message` and `grpc-timeout`.
//!
//! Attribute and metric names come from `opentelemetry-semantic-conventions`,
//! re-exported as [`semconv`].
//!
//! ```
//! use otel_http_conventions::{protocol_version, KnownMethods};
//!
//! let m = KnownMethods::default().normalize(&http::Method::DELETE);
//! assert_eq!(m.value.as_str(), "DELETE");
//! assert_eq!(protocol_version(http::Version::HTTP_2), Some("2"));
//! ```
//!
//! [`otel-tower`]: https://docs.rs/otel-tower
//! [`otel-reqwest`]: https://docs.rs/otel-reqwest
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod forwarded;
mod headers;
mod instrumentation;
mod method;
mod metrics;
pub mod rpc;
mod shared_strings;
mod span_names;
mod status;
mod tracer;
mod url;

pub use forwarded::{
    default_port, forwarded_client_address, forwarded_scheme, has_forwarding_headers, http_scheme,
    is_valid_host, parse_host_port, parse_node, server_host_port, trusted_client_address, HostPort,
    TrustedProxies,
};
pub use headers::{env as header_env, HeaderCapture, HeaderSide};
pub use instrumentation::{scope, CommonOptions, PropagatorChoice, Resolved, Side};
pub use method::{
    KnownMethods, NormalizedMethod, DEFAULT_KNOWN_METHODS, KNOWN_METHODS_ENV, OTHER_METHOD,
};
pub use metrics::{
    HttpMetrics, Measurement, MetricKey, BODY_SIZE_BUCKETS, MAX_BOUND_ATTRIBUTE_SETS,
};
pub use opentelemetry_semantic_conventions as semconv;
pub use shared_strings::{shared_string, MAX_SHARED_STRINGS_PER_THREAD, MAX_SHARED_STRING_LEN};
pub use span_names::{interned_span_name, SpanName, MAX_INTERNED_SPAN_NAMES};
pub use status::{
    client_status_is_error, server_status_is_error, short_type_name, status_code_static,
    status_code_str, ERROR_TYPE_OTHER,
};
pub use tracer::{HttpSpan, HttpTracer, InstalledTracerProvider};
pub use url::{
    SensitiveQueryParameters, CONVENTIONS_SENSITIVE_QUERY_PARAMETERS, CREDENTIAL_QUERY_PARAMETERS,
    DEFAULT_SENSITIVE_QUERY_PARAMETERS, REDACTED,
};

/// The schema URL of the conventions these crates follow.
pub const SCHEMA_URL: &str = opentelemetry_semantic_conventions::SCHEMA_URL;

/// Explicit bucket boundaries the conventions advise for
/// `http.server.request.duration` and `http.client.request.duration`, in
/// seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `network.protocol.version` for an HTTP version: `1.0`, `1.1`, `2`, `3`.
///
/// ```
/// assert_eq!(otel_http_conventions::protocol_version(http::Version::HTTP_11), Some("1.1"));
/// ```
pub fn protocol_version(version: http::Version) -> Option<&'static str> {
    match version {
        http::Version::HTTP_09 => Some("0.9"),
        http::Version::HTTP_10 => Some("1.0"),
        http::Version::HTTP_11 => Some("1.1"),
        http::Version::HTTP_2 => Some("2"),
        http::Version::HTTP_3 => Some("3"),
        _ => None,
    }
}
