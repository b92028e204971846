//! `url.full` and `url.query` redaction, and of URLs inside error texts.

use std::borrow::Cow;
use std::sync::Arc;

/// What replaces a redacted credential or query value.
pub const REDACTED: &str = "REDACTED";

/// The semantic conventions' own list of query keys whose values are
/// redacted (`url.query`, `url.full`): signature and credential keys of
/// presigned URLs. Give it to `replace_sensitive_query_parameters` for the
/// conventions' exact behaviour.
pub const CONVENTIONS_SENSITIVE_QUERY_PARAMETERS: [&str; 7] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
];

/// The credential names real services put in query strings, redacted by
/// default on top of the conventions' list: OAuth tokens, codes and
/// assertions, client secrets, passwords, API keys, JWTs and session ids.
pub const CREDENTIAL_QUERY_PARAMETERS: [&str; 23] = [
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "private_token",
    "code",
    "assertion",
    "client_secret",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "api_key",
    "apikey",
    "api-key",
    "key",
    "jwt",
    "auth",
    "session",
    "sessionid",
    "session_id",
];

/// Query keys whose values are redacted by default: the conventions' list
/// and [`CREDENTIAL_QUERY_PARAMETERS`]. Keys are matched after
/// percent-decoding and without regard to ASCII case, so `%73ig` and `SIG`
/// are `sig`.
///
/// The conventions redact only signatures, but a token in a query string
/// is as much a credential as one in an `Authorization` header, which is
/// never recorded; a redacted value costs a reader nothing but the secret.
pub const DEFAULT_SENSITIVE_QUERY_PARAMETERS: [&str; 30] = concat(
    CONVENTIONS_SENSITIVE_QUERY_PARAMETERS,
    CREDENTIAL_QUERY_PARAMETERS,
);

/// `a` then `b`, as one array (`N` must be their total length).
const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [&'static str; A],
    b: [&'static str; B],
) -> [&'static str; N] {
    assert!(A + B == N);
    let mut out = [""; N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

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

/// `key` percent-decoded, when it holds a `%` escape.
fn decoded(key: &str) -> Cow<'_, [u8]> {
    if key.as_bytes().contains(&b'%') {
        Cow::Owned(percent_encoding::percent_decode_str(key).collect())
    } else {
        Cow::Borrowed(key.as_bytes())
    }
}

impl SensitiveQueryParameters {
    /// Exactly these keys, replacing the defaults. Keys match after
    /// percent-decoding, without regard to ASCII case.
    pub fn new<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        SensitiveQueryParameters {
            keys: keys.into_iter().map(|k| k.as_ref().into()).collect(),
        }
    }

    /// The default list and these keys besides.
    ///
    /// ```
    /// use otel_http_conventions::SensitiveQueryParameters;
    ///
    /// let keys = SensitiveQueryParameters::with_defaults(["otp"]);
    /// assert_eq!(keys.redact_query("otp=1&token=2&a=3"), "otp=REDACTED&token=REDACTED&a=3");
    /// ```
    pub fn with_defaults<I, K>(extra: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let extra: Vec<Box<str>> = extra.into_iter().map(|k| k.as_ref().into()).collect();
        SensitiveQueryParameters {
            keys: DEFAULT_SENSITIVE_QUERY_PARAMETERS
                .iter()
                .map(|k| Box::<str>::from(*k))
                .chain(extra)
                .collect(),
        }
    }

    /// These keys added to the current ones.
    pub fn and<I, K>(&self, extra: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        SensitiveQueryParameters {
            keys: self
                .keys
                .iter()
                .cloned()
                .chain(extra.into_iter().map(|k| k.as_ref().into()))
                .collect(),
        }
    }

    /// Redacts nothing. For users who have decided query values are safe.
    pub fn none() -> Self {
        Self::new(std::iter::empty::<&str>())
    }

    fn is_sensitive(&self, key: &str) -> bool {
        let key = decoded(key);
        self.keys
            .iter()
            .any(|k| k.as_bytes().eq_ignore_ascii_case(&key))
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
        // A fragment can carry `k=v` pairs too (OAuth's implicit flow puts
        // the access token there).
        let fragment_redacted = match fragment.strip_prefix('#') {
            Some(f) if f.contains('=') => self.redact_query(f),
            _ => Cow::Borrowed(""),
        };
        let fragment_changed = matches!(fragment_redacted, Cow::Owned(_));
        if host.is_none() && !query_changed && !fragment_changed {
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
        if fragment_changed {
            out.push('#');
            out.push_str(&fragment_redacted);
        } else {
            out.push_str(fragment);
        }
        Cow::Owned(out)
    }

    /// Returns `text` with every URL in it (`scheme://…` up to a space or a
    /// quote) redacted as [`redact_url`](Self::redact_url) does: for error
    /// messages, which often quote the URL they failed on.
    ///
    /// ```
    /// use otel_http_conventions::SensitiveQueryParameters;
    ///
    /// let keys = SensitiveQueryParameters::default();
    /// assert_eq!(
    ///     keys.redact_text("error sending request for url (http://u:p@h/x?token=abc&a=1)"),
    ///     "error sending request for url (http://REDACTED:REDACTED@h/x?token=REDACTED&a=1)"
    /// );
    /// assert_eq!(keys.redact_text("no url here"), "no url here");
    /// ```
    pub fn redact_text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Option<String> = None;
        let mut done = 0;
        let mut search = 0;
        while let Some(found) = text[search..].find("://") {
            let sep = search + found;
            // The scheme: letters, digits, `+`, `-`, `.` before `://`.
            let start = text[..sep]
                .char_indices()
                .rev()
                .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                .last()
                .map_or(sep, |(i, _)| i);
            let end = text[sep..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
                .map_or(text.len(), |i| sep + i);
            search = end.max(sep + 3);
            if start == sep {
                continue;
            }
            // An error text often closes the URL with `)`, which is not
            // part of it.
            let url_end = if text[start..end].ends_with(')') && !text[start..end].contains('(') {
                end - 1
            } else {
                end
            };
            let url = &text[start..url_end];
            if let Cow::Owned(redacted) = self.redact_url(url) {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
                o.push_str(&text[done..start]);
                o.push_str(&redacted);
                done = url_end;
            }
        }
        match out {
            Some(mut o) => {
                o.push_str(&text[done..]);
                Cow::Owned(o)
            }
            None => Cow::Borrowed(text),
        }
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
            // Keys match without regard to case, and percent-decoded.
            ("SIG=abc&signature=x", "SIG=REDACTED&signature=REDACTED"),
            ("%73ig=abc&%53IG=d", "%73ig=REDACTED&%53IG=REDACTED"),
            ("x-amz-signature=1", "x-amz-signature=REDACTED"),
            ("sigma=1&keys=2&tokens=3", "sigma=1&keys=2&tokens=3"),
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
    fn every_default_key_is_redacted_plain_encoded_and_in_any_case() {
        let keys = SensitiveQueryParameters::default();
        for key in DEFAULT_SENSITIVE_QUERY_PARAMETERS {
            let encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
            for form in [
                key.to_owned(),
                key.to_ascii_uppercase(),
                key.to_ascii_lowercase(),
                encoded,
            ] {
                let q = format!("a=1&{form}=secret-value&b=2");
                let out = keys.redact_query(&q);
                assert_eq!(out, format!("a=1&{form}=REDACTED&b=2"), "{q}");
                let url = format!("https://h/p?{q}#{form}=in-fragment");
                let redacted = keys.redact_url(&url);
                assert!(
                    !redacted.contains("secret-value") && !redacted.contains("in-fragment"),
                    "{redacted}"
                );
            }
        }
    }

    #[test]
    fn urls_inside_text_are_redacted_wherever_they_are() {
        let keys = SensitiveQueryParameters::default();
        let cases = [
            (
                "error sending request for url (https://h/a?X-Amz-Signature=s3cr3t&sig=x)",
                "error sending request for url (https://h/a?X-Amz-Signature=REDACTED&sig=REDACTED)",
            ),
            (
                "two: http://a:b@x/ and 'https://y/?password=p'",
                "two: http://REDACTED:REDACTED@x/ and 'https://y/?password=REDACTED'",
            ),
            ("://nothing before", "://nothing before"),
            ("plain http://x/y?z=1 stays", "plain http://x/y?z=1 stays"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(keys.redact_text(text), want, "{text}");
        }
        assert!(matches!(keys.redact_text("a b c"), Cow::Borrowed(_)));
    }

    #[test]
    fn b3_custom_list_replaces_defaults_and_none_redacts_nothing() {
        let keys = SensitiveQueryParameters::new(["token"]);
        assert_eq!(keys.redact_query("token=1&sig=2"), "token=REDACTED&sig=2");
        let none = SensitiveQueryParameters::none();
        assert!(matches!(none.redact_query("sig=2"), Cow::Borrowed("sig=2")));
    }
}
