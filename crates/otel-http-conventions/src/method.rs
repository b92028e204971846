//! Request method normalisation (semantic conventions, `http.request.method`).

use opentelemetry::StringValue;
use std::borrow::Cow;
use std::sync::Arc;

/// The value recorded for a method outside the known set.
pub const OTHER_METHOD: &str = "_OTHER";

/// The environment variable that replaces the known-method list.
pub const KNOWN_METHODS_ENV: &str = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS";

/// The methods the conventions know: RFC 9110, PATCH (RFC 5789) and QUERY.
pub const DEFAULT_KNOWN_METHODS: [&str; 10] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY",
];

/// The set of methods recorded as themselves; every other method is recorded
/// as `_OTHER`, with the original in `http.request.method_original`.
///
/// Matching is case-sensitive, as the conventions require (`get` is not
/// `GET`). A custom list **replaces** the defaults.
///
/// ```
/// use otel_http_conventions::KnownMethods;
///
/// let known = KnownMethods::default();
/// let m = known.normalize(&http::Method::GET);
/// assert_eq!((m.value.as_str(), m.original), ("GET", None));
///
/// let purge = http::Method::from_bytes(b"PURGE").unwrap();
/// let m = known.normalize(&purge);
/// assert_eq!((m.value.as_str(), m.original), ("_OTHER", Some("PURGE")));
/// assert_eq!(m.span_name(), "HTTP");
///
/// let custom = KnownMethods::new(["GET", "PURGE"]);
/// assert_eq!(custom.normalize(&purge).value.as_str(), "PURGE");
/// assert_eq!(custom.normalize(&http::Method::POST).value.as_str(), "_OTHER");
/// ```
#[derive(Clone, Debug, Default)]
pub struct KnownMethods {
    /// `None`: the defaults, matched without allocation.
    custom: Option<Arc<[StringValue]>>,
}

/// A method as the conventions record it.
#[derive(Clone, Debug)]
pub struct NormalizedMethod<'a> {
    /// `http.request.method`: the method, or `_OTHER`.
    pub value: StringValue,
    /// `http.request.method_original`: set only when it differs from `value`.
    pub original: Option<&'a str>,
    /// `value` as a `'static` string, when it is one of the default methods
    /// or `_OTHER` (found while normalizing, not looked up again).
    static_value: Option<&'static str>,
}

impl NormalizedMethod<'_> {
    /// The method as a span name uses it: `HTTP` stands for `_OTHER`.
    pub fn span_name(&self) -> &str {
        if self.original.is_some() {
            "HTTP"
        } else {
            self.value.as_str()
        }
    }

    /// [`span_name`](Self::span_name) as a `&'static str` when it is one of
    /// the default methods or `HTTP`, so a span name costs no allocation.
    pub fn static_span_name(&self) -> Option<&'static str> {
        if self.original.is_some() {
            return Some("HTTP");
        }
        self.static_value()
    }

    /// [`value`](Self::value) as a `&'static str` when it is one of the
    /// default methods or `_OTHER`.
    ///
    /// ```
    /// use otel_http_conventions::KnownMethods;
    ///
    /// let known = KnownMethods::default();
    /// assert_eq!(known.normalize(&http::Method::GET).static_value(), Some("GET"));
    /// let purge = http::Method::from_bytes(b"PURGE").unwrap();
    /// assert_eq!(known.normalize(&purge).static_value(), Some("_OTHER"));
    /// let custom = KnownMethods::new(["PURGE"]);
    /// assert_eq!(custom.normalize(&purge).static_value(), None);
    /// ```
    pub fn static_value(&self) -> Option<&'static str> {
        self.static_value
    }

    /// The span name `{method} {target}` (`HTTP {target}` for an unknown
    /// method), built without the formatting machinery: it is on every
    /// request's path, sampled or not.
    ///
    /// ```
    /// let m = otel_http_conventions::KnownMethods::default().normalize(&http::Method::GET);
    /// assert_eq!(m.span_name_with("/users/{id}"), "GET /users/{id}");
    /// ```
    pub fn span_name_with(&self, target: &str) -> String {
        crate::span_names::join(self.span_name(), target)
    }

    /// The conventions' span name, `{method} {target}` or `{method}`, with
    /// no allocation where one can be avoided: known methods are static and
    /// `{method} {target}` is [kept](crate::interned_span_name) after its
    /// first use. The second value is `target` as `'static`, when kept, for
    /// an attribute (`http.route`, `url.template`) that then costs nothing
    /// either.
    ///
    /// ```
    /// use std::borrow::Cow;
    ///
    /// let m = otel_http_conventions::KnownMethods::default().normalize(&http::Method::GET);
    /// let (name, route) = m.span_name_for(Some("/users/{id}"));
    /// assert_eq!(name, "GET /users/{id}");
    /// assert!(matches!(name, Cow::Borrowed(_)));
    /// assert_eq!(route, Some("/users/{id}"));
    /// assert_eq!(m.span_name_for(None), (Cow::Borrowed("GET"), None));
    /// ```
    pub fn span_name_for(&self, target: Option<&str>) -> (Cow<'static, str>, Option<&'static str>) {
        match target {
            Some(target) => match crate::interned_span_name(self.span_name(), target) {
                Some(kept) => (Cow::Borrowed(kept.name), Some(kept.target)),
                None => (Cow::Owned(self.span_name_with(target)), None),
            },
            None => match self.static_span_name() {
                Some(name) => (Cow::Borrowed(name), None),
                None => (Cow::Owned(self.span_name().to_owned()), None),
            },
        }
    }

    /// Whether the method is outside the known set.
    pub fn is_other(&self) -> bool {
        self.original.is_some()
    }
}

impl KnownMethods {
    /// A custom list of known methods, replacing the defaults. Entries are
    /// trimmed; empty ones are ignored.
    pub fn new<I, M>(methods: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: AsRef<str>,
    {
        let list: Vec<StringValue> = methods
            .into_iter()
            .map(|m| m.as_ref().trim().to_owned())
            .filter(|m| !m.is_empty())
            .map(|m| StringValue::from(Arc::<str>::from(m)))
            .collect();
        KnownMethods {
            custom: Some(list.into()),
        }
    }

    /// The list from `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` (comma
    /// separated, case-sensitive, a full replacement), or the defaults when
    /// it is unset or empty.
    pub fn from_env() -> Self {
        match std::env::var(KNOWN_METHODS_ENV) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v),
            _ => Self::default(),
        }
    }

    /// Parses a comma-separated list, as the environment variable holds it.
    pub fn parse(list: &str) -> Self {
        Self::new(list.split(','))
    }

    /// Normalises a method.
    pub fn normalize<'a>(&self, method: &'a http::Method) -> NormalizedMethod<'a> {
        let raw = method.as_str();
        let default = |name: &str| DEFAULT_KNOWN_METHODS.iter().find(|m| **m == name).copied();
        let known = match &self.custom {
            None => default(raw).map(|m| (StringValue::from(m), Some(m))),
            Some(list) => list
                .iter()
                .find(|m| m.as_str() == raw)
                .map(|m| (m.clone(), default(raw))),
        };
        match known {
            Some((value, static_value)) => NormalizedMethod {
                value,
                original: None,
                static_value,
            },
            None => NormalizedMethod {
                value: StringValue::from(OTHER_METHOD),
                original: Some(raw),
                static_value: Some(OTHER_METHOD),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn d1_d3_method_table() {
        let known = KnownMethods::default();
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            ("GET", "GET", None, "GET"),
            ("POST", "POST", None, "POST"),
            ("PUT", "PUT", None, "PUT"),
            ("DELETE", "DELETE", None, "DELETE"),
            ("HEAD", "HEAD", None, "HEAD"),
            ("OPTIONS", "OPTIONS", None, "OPTIONS"),
            ("PATCH", "PATCH", None, "PATCH"),
            ("TRACE", "TRACE", None, "TRACE"),
            ("CONNECT", "CONNECT", None, "CONNECT"),
            ("QUERY", "QUERY", None, "QUERY"),
            ("get", "_OTHER", Some("get"), "HTTP"),
            ("Put", "_OTHER", Some("Put"), "HTTP"),
            ("FOO", "_OTHER", Some("FOO"), "HTTP"),
            ("Unknown", "_OTHER", Some("Unknown"), "HTTP"),
        ];
        for (raw, value, original, name) in cases {
            let method = Method::from_bytes(raw.as_bytes()).expect("token");
            let m = known.normalize(&method);
            assert_eq!(m.value.as_str(), *value, "{raw}");
            assert_eq!(m.original, *original, "{raw}");
            assert_eq!(m.span_name(), *name, "{raw}");
        }
    }

    #[test]
    fn default_known_agrees_with_the_list() {
        let known = KnownMethods::default();
        for name in DEFAULT_KNOWN_METHODS {
            let method = Method::from_bytes(name.as_bytes()).expect("token");
            let m = known.normalize(&method);
            assert_eq!((m.value.as_str(), m.original), (name, None));
        }
        for other in ["get", "PURGE", "QUERYX", "Query"] {
            let method = Method::from_bytes(other.as_bytes()).expect("token");
            assert_eq!(known.normalize(&method).original, Some(other), "{other}");
        }
    }

    #[test]
    fn d2_known_methods_list_is_a_full_replacement() {
        let known = KnownMethods::parse(" GET , PURGE,,");
        assert_eq!(known.normalize(&Method::GET).value.as_str(), "GET");
        let purge = Method::from_bytes(b"PURGE").expect("token");
        assert_eq!(known.normalize(&purge).original, None);
        let post = known.normalize(&Method::POST);
        assert_eq!(
            (post.value.as_str(), post.original),
            ("_OTHER", Some("POST"))
        );
        // Case-sensitive.
        let lower = Method::from_bytes(b"purge").expect("token");
        assert!(known.normalize(&lower).is_other());
    }
}
