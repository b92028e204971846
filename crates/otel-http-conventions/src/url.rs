//! `url.full` and `url.query` redaction.

use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a redacted credential or query value.
pub const REDACTED: &str = "REDACTED";

/// Query keys whose values are redacted by default (semantic conventions,
/// `url.query` and `url.full`). Matched case-sensitively.
pub const DEFAULT_SENSITIVE_QUERY_PARAMETERS: [&str; 7] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
];

/// The `&`-separated pairs of a query, each with its key and value when it
/// has an `=` (split at the first). One pass over the bytes per pair: a
/// query is usually a few bytes, too short for a string searcher's set-up
/// to pay off.
fn pairs(query: &str) -> impl Iterator<Item = (&str, Option<(&str, &str)>)> {
    let mut rest = Some(query);
    std::iter::from_fn(move || {
        let current = rest?;
        let mut eq = None;
        let mut end = current.len();
        for (i, &b) in current.as_bytes().iter().enumerate() {
            match b {
                b'&' => {
                    end = i;
                    break;
                }
                b'=' if eq.is_none() => eq = Some(i),
                _ => {}
            }
        }
        // `&` and `=` are ASCII, so every index here is a char boundary.
        rest = current.get(end + 1..);
        let pair = &current[..end];
        Some((pair, eq.map(|i| (&pair[..i], &pair[i + 1..]))))
    })
}

/// The query keys whose values are replaced by `REDACTED` before a URL or a
/// query is recorded. The key is kept, so the shape of the request is still
/// visible.
///
/// ```
/// use otel_http_conventions::SensitiveQueryParameters;
///
/// let keys = SensitiveQueryParameters::default();
/// assert_eq!(keys.redact_query("a=1&sig=abc&b"), "a=1&sig=REDACTED&b");
///
/// // A custom list replaces the defaults.
/// let keys = SensitiveQueryParameters::new(["token"]);
/// assert_eq!(keys.redact_query("token=t&sig=s"), "token=REDACTED&sig=s");
/// ```
#[derive(Clone, Debug)]
pub struct SensitiveQueryParameters {
    keys: Arc<[Box<str>]>,
}

impl Default for SensitiveQueryParameters {
    fn default() -> Self {
        Self::new(DEFAULT_SENSITIVE_QUERY_PARAMETERS)
    }
}

impl SensitiveQueryParameters {
    /// A custom list, replacing the defaults. Keys match case-sensitively.
    pub fn new<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        SensitiveQueryParameters {
            keys: keys.into_iter().map(|k| k.as_ref().into()).collect(),
        }
    }

    /// Redacts nothing. For users who have decided query values are safe.
    pub fn none() -> Self {
        Self::new(std::iter::empty::<&str>())
    }

    fn is_sensitive(&self, key: &str) -> bool {
        self.keys.iter().any(|k| **k == *key)
    }

    /// Returns `query` (without the `?`) with the values of sensitive keys
    /// replaced. Borrows when nothing needs redacting.
    pub fn redact_query<'a>(&self, query: &'a str) -> Cow<'a, str> {
        if self.keys.is_empty() {
            return Cow::Borrowed(query);
        }
        let needs = pairs(query).any(|(_, value)| {
            matches!(value, Some((k, v)) if !v.is_empty() && v != REDACTED && self.is_sensitive(k))
        });
        if !needs {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, (pair, value)) in pairs(query).enumerate() {
            if i > 0 {
                out.push('&');
            }
            match value {
                Some((k, v)) if !v.is_empty() && self.is_sensitive(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        Cow::Owned(out)
    }

    /// Returns an absolute URL fit for `url.full`: user name and password
    /// replaced by `REDACTED:REDACTED`, sensitive query values redacted.
    ///
    /// ```
    /// use otel_http_conventions::SensitiveQueryParameters;
    ///
    /// let keys = SensitiveQueryParameters::default();
    /// assert_eq!(
    ///     keys.redact_url("https://user:pw@example.com/p?sig=x&a=1#f"),
    ///     "https://REDACTED:REDACTED@example.com/p?sig=REDACTED&a=1#f"
    /// );
    /// assert_eq!(keys.redact_url("http://example.com/"), "http://example.com/");
    /// ```
    pub fn redact_url<'a>(&self, url: &'a str) -> Cow<'a, str> {
        let (head, fragment) = match url.find('#') {
            Some(i) => url.split_at(i),
            None => (url, ""),
        };
        let (before_query, query) = match head.find('?') {
            Some(i) => (&head[..i], Some(&head[i + 1..])),
            None => (head, None),
        };
        // The authority is what follows "scheme://" up to the path.
        let (prefix, authority, path) = match before_query.find("://") {
            Some(i) => {
                let rest = &before_query[i + 3..];
                let end = rest.find('/').unwrap_or(rest.len());
                (&before_query[..i + 3], &rest[..end], &rest[end..])
            }
            None => ("", "", before_query),
        };
        let host = authority.rfind('@').map(|at| &authority[at + 1..]);
        let query_redacted = query.map(|q| self.redact_query(q));
        let query_changed = matches!(query_redacted, Some(Cow::Owned(_)));
        if host.is_none() && !query_changed {
            return Cow::Borrowed(url);
        }
        let mut out = String::with_capacity(url.len() + 16);
        out.push_str(prefix);
        match host {
            Some(host) => {
                out.push_str("REDACTED:REDACTED@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        out.push_str(path);
        if let Some(q) = query_redacted {
            out.push('?');
            out.push_str(&q);
        }
        out.push_str(fragment);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_split_as_the_string_searchers_do() {
        // Every string of up to six characters over a small alphabet,
        // built one length at a time.
        const CHARS: [char; 5] = ['a', '=', '&', 'é', 'b'];
        let mut length = vec![String::new()];
        let mut queries = length.clone();
        for _ in 0..6 {
            length = length
                .iter()
                .flat_map(|q| CHARS.iter().map(move |c| format!("{q}{c}")))
                .collect();
            queries.extend(length.iter().cloned());
        }
        assert!(queries.len() > 5_000);
        for query in &queries {
            let by_searchers: Vec<_> = query
                .split('&')
                .map(|pair| (pair, pair.split_once('=')))
                .collect();
            let by_bytes: Vec<_> = pairs(query).collect();
            assert_eq!(by_bytes, by_searchers, "{query:?}");
        }
    }

    #[test]
    fn b3_query_redaction_table() {
        let keys = SensitiveQueryParameters::default();
        let cases = [
            ("", ""),
            ("a=1", "a=1"),
            ("sig=abc", "sig=REDACTED"),
            ("Signature=abc&x=1", "Signature=REDACTED&x=1"),
            (
                "AWSAccessKeyId=k&Signature=s",
                "AWSAccessKeyId=REDACTED&Signature=REDACTED",
            ),
            (
                "X-Goog-Signature=1&X-Amz-Signature=2",
                "X-Goog-Signature=REDACTED&X-Amz-Signature=REDACTED",
            ),
            (
                "X-Amz-Credential=c&X-Amz-Security-Token=t",
                "X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED",
            ),
            // Case-sensitive keys.
            ("SIG=abc&signature=x", "SIG=abc&signature=x"),
            // Keys without values and empty values stay.
            ("sig&sig=", "sig&sig="),
            ("a=1&sig=x&sig=y", "a=1&sig=REDACTED&sig=REDACTED"),
        ];
        for (q, want) in cases {
            assert_eq!(keys.redact_query(q), want, "{q}");
        }
    }

    #[test]
    fn b3_url_full_credentials_table() {
        let keys = SensitiveQueryParameters::default();
        let cases = [
            ("http://example.com/", "http://example.com/"),
            (
                "https://u:p@example.com/x",
                "https://REDACTED:REDACTED@example.com/x",
            ),
            (
                "https://u@example.com",
                "https://REDACTED:REDACTED@example.com",
            ),
            (
                "http://u:p@127.0.0.1:8080/",
                "http://REDACTED:REDACTED@127.0.0.1:8080/",
            ),
            (
                "http://u:p@[::1]:8080/a?b=1",
                "http://REDACTED:REDACTED@[::1]:8080/a?b=1",
            ),
            ("http://u:p@a@host/", "http://REDACTED:REDACTED@host/"),
            (
                "http://host/p?sig=1#frag",
                "http://host/p?sig=REDACTED#frag",
            ),
            ("http://host/p@x?y=1", "http://host/p@x?y=1"),
            ("http://host/?q=a@b", "http://host/?q=a@b"),
        ];
        for (url, want) in cases {
            assert_eq!(keys.redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn b3_custom_list_replaces_defaults_and_none_redacts_nothing() {
        let keys = SensitiveQueryParameters::new(["token"]);
        assert_eq!(keys.redact_query("token=1&sig=2"), "token=REDACTED&sig=2");
        let none = SensitiveQueryParameters::none();
        assert!(matches!(none.redact_query("sig=2"), Cow::Borrowed("sig=2")));
    }
}
