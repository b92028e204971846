//! Opt-in header capture (`http.request.header.<key>`, `http.response.header.<key>`),
//! and its gRPC form (`rpc.request.metadata.<key>`, `rpc.response.metadata.<key>`).

use http::{HeaderMap, HeaderName};
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use std::sync::Arc;

/// Which side of an exchange a [`HeaderCapture`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderSide {
    /// `http.request.header.<key>`
    Request,
    /// `http.response.header.<key>`
    Response,
    /// `rpc.request.metadata.<key>` (gRPC; binary `-bin` keys are never
    /// captured)
    RpcRequest,
    /// `rpc.response.metadata.<key>`, from the response headers and
    /// trailers
    RpcResponse,
}

impl HeaderSide {
    fn prefix(self) -> &'static str {
        match self {
            HeaderSide::Request => "http.request.header.",
            HeaderSide::Response => "http.response.header.",
            HeaderSide::RpcRequest => "rpc.request.metadata.",
            HeaderSide::RpcResponse => "rpc.response.metadata.",
        }
    }
}

/// An allow-list of headers to record as span attributes. Nothing is
/// recorded unless named here.
///
/// Names are matched case-insensitively; the attribute key uses the
/// lower-case name with dashes kept (`http.request.header.x-request-id`).
/// The value is a string array with one element per header line. Names that
/// are not valid header names are ignored.
///
/// ```
/// use otel_http_conventions::{HeaderCapture, HeaderSide};
///
/// let capture = HeaderCapture::new(HeaderSide::Request, ["X-Request-Id"]);
/// let mut headers = http::HeaderMap::new();
/// headers.append("x-request-id", "a".parse().unwrap());
/// headers.append("x-request-id", "b".parse().unwrap());
/// headers.insert("authorization", "secret".parse().unwrap());
///
/// let mut attrs = Vec::new();
/// capture.record(&headers, &mut attrs);
/// assert_eq!(attrs.len(), 1);
/// assert_eq!(attrs[0].key.as_str(), "http.request.header.x-request-id");
/// assert_eq!(attrs[0].value.to_string(), r#"["a","b"]"#);
/// ```
#[derive(Clone, Debug)]
pub struct HeaderCapture {
    entries: Arc<[(HeaderName, Key)]>,
}

impl HeaderCapture {
    /// Captures the named headers.
    pub fn new<I, N>(side: HeaderSide, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let mut entries: Vec<(HeaderName, Key)> = Vec::new();
        for name in names {
            let Ok(name) = HeaderName::from_bytes(name.as_ref().trim().as_bytes()) else {
                continue;
            };
            if entries.iter().any(|(n, _)| *n == name) {
                continue;
            }
            // gRPC's binary metadata (base64 on the wire) is not text to
            // record.
            let rpc = matches!(side, HeaderSide::RpcRequest | HeaderSide::RpcResponse);
            if rpc && name.as_str().ends_with("-bin") {
                continue;
            }
            let key = Key::from(format!("{}{}", side.prefix(), name.as_str()));
            entries.push((name, key));
        }
        HeaderCapture {
            entries: entries.into(),
        }
    }

    /// The same names, recorded for `side` (an HTTP allow-list used for
    /// gRPC metadata, say).
    ///
    /// ```
    /// use otel_http_conventions::{HeaderCapture, HeaderSide};
    ///
    /// let http = HeaderCapture::new(HeaderSide::Request, ["x-tenant", "x-trace-bin"]);
    /// let grpc = http.for_side(HeaderSide::RpcRequest);
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("x-tenant", "acme".parse().unwrap());
    /// headers.insert("x-trace-bin", "AAEC".parse().unwrap());
    /// let mut attrs = Vec::new();
    /// grpc.record(&headers, &mut attrs);
    /// assert_eq!(attrs.len(), 1, "no -bin key");
    /// assert_eq!(attrs[0].key.as_str(), "rpc.request.metadata.x-tenant");
    /// ```
    pub fn for_side(&self, side: HeaderSide) -> Self {
        Self::new(side, self.entries.iter().map(|(name, _)| name.as_str()))
    }

    /// The named headers `headers` carries, as attributes; `None` when
    /// there are none (or nothing is named), so a caller with nothing to
    /// record allocates nothing.
    ///
    /// ```
    /// use otel_http_conventions::{HeaderCapture, HeaderSide};
    ///
    /// let capture = HeaderCapture::new(HeaderSide::Response, ["x-served-by"]);
    /// let mut headers = http::HeaderMap::new();
    /// assert!(capture.captured(&headers).is_none());
    /// headers.insert("x-served-by", "a".parse().unwrap());
    /// assert_eq!(capture.captured(&headers).map(|a| a.len()), Some(1));
    /// ```
    pub fn captured(&self, headers: &HeaderMap) -> Option<Vec<KeyValue>> {
        if self.is_empty() {
            return None;
        }
        let mut out = Vec::new();
        self.record(headers, &mut out);
        (!out.is_empty()).then_some(out)
    }

    /// Captures nothing.
    pub fn none(side: HeaderSide) -> Self {
        Self::new(side, std::iter::empty::<&str>())
    }

    /// The list from a comma-separated environment variable, such as
    /// `OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`; `None`
    /// when it is unset or empty.
    pub fn from_env(side: HeaderSide, var: &str) -> Option<Self> {
        let value = std::env::var(var).ok()?;
        if value.trim().is_empty() {
            return None;
        }
        Some(Self::new(side, value.split(',')))
    }

    /// [`from_env`](Self::from_env), or nothing when the variable is unset.
    pub fn from_env_or_none(side: HeaderSide, var: &str) -> Self {
        Self::from_env(side, var).unwrap_or_else(|| Self::none(side))
    }

    /// Whether nothing is captured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an attribute for each captured header present in `headers`.
    pub fn record(&self, headers: &HeaderMap, out: &mut Vec<KeyValue>) {
        for (name, key) in self.entries.iter() {
            let values: Vec<StringValue> = headers
                .get_all(name)
                .iter()
                .map(|v| StringValue::from(String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            if !values.is_empty() {
                out.push(KeyValue::new(
                    key.clone(),
                    Value::Array(Array::String(values)),
                ));
            }
        }
    }
}

/// The environment variables naming headers to capture, as OpenTelemetry's
/// Python instrumentations read them.
pub mod env {
    /// Server, request headers.
    pub const SERVER_REQUEST: &str = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST";
    /// Server, response headers.
    pub const SERVER_RESPONSE: &str = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE";
    /// Client, request headers.
    pub const CLIENT_REQUEST: &str = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST";
    /// Client, response headers.
    pub const CLIENT_RESPONSE: &str = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c1_nothing_is_captured_by_default() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer x".parse().expect("value"));
        let mut out = Vec::new();
        HeaderCapture::none(HeaderSide::Request).record(&headers, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn c2_c3_key_keeps_dashes_and_value_is_an_array_per_line() {
        let capture = HeaderCapture::new(
            HeaderSide::Response,
            ["Content-Type", "X-Multi", "bad name"],
        );
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().expect("value"));
        headers.append("x-multi", "1".parse().expect("value"));
        headers.append("x-multi", "2, 3".parse().expect("value"));
        let mut out = Vec::new();
        capture.record(&headers, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].key.as_str(), "http.response.header.content-type");
        assert_eq!(
            out[0].value,
            Value::Array(Array::String(vec!["text/plain".into()]))
        );
        assert_eq!(out[1].key.as_str(), "http.response.header.x-multi");
        assert_eq!(
            out[1].value,
            Value::Array(Array::String(vec!["1".into(), "2, 3".into()]))
        );
    }

    #[test]
    fn invalid_utf8_is_recorded_lossily() {
        let capture = HeaderCapture::new(HeaderSide::Request, ["x-bin"]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-bin",
            http::HeaderValue::from_bytes(b"a\xffb").expect("opaque"),
        );
        let mut out = Vec::new();
        capture.record(&headers, &mut out);
        assert_eq!(
            out[0].value,
            Value::Array(Array::String(vec!["a\u{fffd}b".into()]))
        );
    }
}
