//! Span status and `error.type` rules.

use opentelemetry::StringValue;
use std::sync::OnceLock;

/// `error.type` when nothing more specific is known.
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// Whether a server span with this response status is an error: 5xx, and
/// codes outside 100..=599 that no client can interpret. 4xx is the client's
/// error, not the server's, and leaves the status unset.
///
/// ```
/// use otel_http_conventions::server_status_is_error;
/// assert!(!server_status_is_error(404));
/// assert!(server_status_is_error(503));
/// ```
pub fn server_status_is_error(code: u16) -> bool {
    !(100..500).contains(&code)
}

/// Whether a client span with this response status is an error: 4xx, 5xx,
/// and codes outside 100..=599.
///
/// ```
/// use otel_http_conventions::client_status_is_error;
/// assert!(client_status_is_error(404));
/// assert!(!client_status_is_error(302));
/// ```
pub fn client_status_is_error(code: u16) -> bool {
    !(100..400).contains(&code)
}

/// The status code as a string, the `error.type` of an error status.
/// Codes below 1000 are cached, so recording them does not allocate.
///
/// ```
/// assert_eq!(otel_http_conventions::status_code_str(503).as_str(), "503");
/// ```
pub fn status_code_str(code: u16) -> StringValue {
    match status_code_static(code) {
        Some(s) => StringValue::from(s),
        None => StringValue::from(code.to_string()),
    }
}

/// [`status_code_str`] as a `'static` string: `None` only for codes of
/// 1000 and above, which are not cached.
///
/// ```
/// assert_eq!(otel_http_conventions::status_code_static(404), Some("404"));
/// assert_eq!(otel_http_conventions::status_code_static(1000), None);
/// ```
pub fn status_code_static(code: u16) -> Option<&'static str> {
    static CACHE: OnceLock<Vec<Box<str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| (0..1000u16).map(|c| c.to_string().into()).collect());
    cache.get(usize::from(code)).map(|s| &**s)
}

/// The last two segments of a Rust type's path (`std::fmt::Error` gives
/// `fmt::Error`): a low-cardinality `error.type` for an error value whose type
/// is all we know. Two segments, so that `fmt::Error` and `axum::Error` stay
/// apart.
///
/// ```
/// assert_eq!(otel_http_conventions::short_type_name::<std::io::Error>(), "error::Error");
/// ```
pub fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Ignore generic arguments when looking for the path separator.
    let base_end = full.find('<').unwrap_or(full.len());
    let base = &full[..base_end];
    let mut cut = 0;
    let mut seen = 0;
    for (i, _) in base.rmatch_indices("::") {
        seen += 1;
        if seen == 2 {
            cut = i + 2;
            break;
        }
    }
    &full[cut..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a8_server_status_table() {
        for code in 0..1000u16 {
            let want = !(100..=499).contains(&code);
            assert_eq!(server_status_is_error(code), want, "{code}");
        }
    }

    #[test]
    fn b4_client_status_table() {
        for code in 0..1000u16 {
            let want = !(100..=399).contains(&code);
            assert_eq!(client_status_is_error(code), want, "{code}");
        }
    }

    #[test]
    fn a9_status_code_strings() {
        for code in [0u16, 99, 100, 404, 500, 599, 600, 999, 1000, u16::MAX] {
            assert_eq!(status_code_str(code).as_str(), code.to_string());
        }
    }

    #[test]
    fn short_type_names() {
        assert_eq!(short_type_name::<std::fmt::Error>(), "fmt::Error");
        assert_eq!(short_type_name::<u8>(), "u8");
        assert_eq!(short_type_name::<Vec<u8>>(), "vec::Vec<u8>");
    }
}
