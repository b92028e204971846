//! OpenTelemetry client spans, metrics and context propagation for reqwest,
//! as a [`reqwest_middleware`] middleware, to the letter of the stable HTTP
//! semantic conventions.
//!
//! ```
//! use otel_reqwest::OtelMiddleware;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(OtelMiddleware::new()) // global providers and propagator
//!     .build();
//! # let _ = client;
//! ```
//!
//! # What each request gets
//!
//! - One `CLIENT` span, a child of the current context (`Context::current()`),
//!   so a call made inside an `otel-tower` handler is a child of its server
//!   span. It is named `{method}` (`HTTP` for an unknown method), or
//!   `{method} {url.template}` when the request carries a [`UrlTemplate`].
//! - The context is injected into the outgoing headers with the propagator
//!   (unless [`propagate_to`](OtelMiddlewareBuilder::propagate_to) says no),
//!   into the middleware's own copy of the request: what the caller built is
//!   not changed. An unsampled request still propagates its context.
//! - Attributes: `http.request.method`, `server.address`, `server.port`,
//!   `url.full` (credentials replaced by `REDACTED:REDACTED`, sensitive query
//!   values redacted), `http.response.status_code`,
//!   `http.request.method_original`, `network.protocol.version` (from the
//!   response), `network.peer.address` / `network.peer.port`,
//!   `http.request.resend_count` (from the second attempt), `url.template`,
//!   and `error.type`.
//! - Status: 4xx, 5xx and codes outside 100..=599 are errors with
//!   `error.type` = the code. Transport failures are errors with a
//!   low-cardinality `error.type` (below) and no status code. A caller that
//!   drops the request future ends the span with the status unset and no
//!   `error.type`: cancelling is not a failure.
//! - **The span ends when the response headers have been read** (or the
//!   request failed), not when the body is consumed: its duration is the
//!   time to first response, as the conventions describe.
//! - `http.client.request.duration` for every request, sampled or not;
//!   `http.client.active_requests` and body sizes are opt-in.
//!
//! ## `error.type` values
//!
//! | value | when |
//! | --- | --- |
//! | `"400"` … `"599"` | the response had that status |
//! | `timeout` | the request timed out |
//! | `connect` | the connection could not be made (refused, DNS, TLS) |
//! | `redirect` | the redirect policy stopped the request |
//! | `body` | the request body failed |
//! | `request` | the request failed while being sent or its response read |
//! | `builder` | the request could not be built |
//! | `middleware` | a middleware after this one failed |
//! | `_OTHER` | any other failure |
//!
//! # Retries
//!
//! Put `OtelMiddleware` *inside* a retry middleware, so that each attempt is
//! its own span, and attempts after the first carry
//! `http.request.resend_count`:
//!
//! ```
//! use otel_reqwest::OtelMiddleware;
//! use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
//!
//! let policy = ExponentialBackoff::builder().build_with_max_retries(3);
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(RetryTransientMiddleware::new_with_policy(policy))
//!     .with(OtelMiddleware::new())
//!     .build();
//! # let _ = client;
//! ```
//!
//! Redirects are followed inside reqwest, below any middleware: they are one
//! span, whose `url.full` is the URL first requested.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
mod middleware;

pub use config::OtelMiddlewareBuilder;
pub use middleware::OtelMiddleware;

/// An error's text fit to log or return: every URL it quotes redacted as
/// `url.full` is (credentials, and the default sensitive query keys). For
/// reqwest's and reqwest-middleware's errors, which quote the URL they
/// failed on; the `exception` event of the middleware's span already
/// carries this text.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build();
/// let error = client
///     .get("http://user:hunter2@127.0.0.1:1/x?token=abc")
///     .send()
///     .await
///     .expect_err("nothing listens on port 1");
/// let text = otel_reqwest::redacted_error_message(&error);
/// assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
/// # }
/// ```
pub fn redacted_error_message(error: &impl std::fmt::Display) -> String {
    otel_http_conventions::SensitiveQueryParameters::default()
        .redact_text(&error.to_string())
        .into_owned()
}

/// A per-request URL template (`/users/{id}`): attach it with
/// `RequestBuilder::with_extension`, and the span is named
/// `{method} {template}` and records `url.template`.
///
/// ```
/// use otel_reqwest::{OtelMiddleware, UrlTemplate};
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(OtelMiddleware::new())
///     .build();
/// let request = client
///     .get("http://127.0.0.1:1/users/42")
///     .with_extension(UrlTemplate::new("/users/{id}"));
/// # let _ = request;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate(pub(crate) std::sync::Arc<str>);

impl UrlTemplate {
    /// A template; keep it low-cardinality.
    pub fn new(template: impl Into<std::sync::Arc<str>>) -> Self {
        UrlTemplate(template.into())
    }
}
