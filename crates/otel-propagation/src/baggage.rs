//! W3C Baggage propagator.

use opentelemetry::baggage::{BaggageExt, KeyValueMetadata};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use std::fmt::Write as _;
use std::sync::OnceLock;

/// Header carrying baggage.
pub const BAGGAGE_HEADER: &str = "baggage";
/// The most members a platform must propagate (W3C Baggage, "Limits").
pub const MAX_BAGGAGE_MEMBERS: usize = 64;
/// The most bytes, all `baggage` lines combined, a platform must propagate.
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// Characters percent-encoded in a value: what `baggage-octet` excludes
/// (controls, space, `"`, `,`, `;`, `\\` and non-ASCII) and `%`, which the
/// specification requires encoded. Nothing else: `=` and the rest of
/// printable ASCII are legal as they are, and encoding them would make a
/// legal header longer, past the 8,192-byte limit.
const VALUE_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Propagates [`Baggage`](opentelemetry::baggage::Baggage) in the W3C Baggage
/// format.
///
/// Extraction reads every `baggage` header line, in order, keeps members
/// while there are at most 64 of them and their combined length is at most
/// 8192 bytes, and drops the rest as whole members, never a part of one: the
/// first members are the ones kept. A member
/// whose key is not an RFC 7230 token, or that has no `=`, is skipped on its
/// own. Values are percent-decoded; invalid UTF-8 becomes U+FFFD. Parsing
/// stops once the limits are reached, so a hostile 1 MB header costs no more
/// than a legal one.
///
/// Extracted baggage **replaces** the baggage of the context it is extracted
/// into; it is never merged, so baggage cannot leak between requests.
///
/// **Order.** The members' order is not kept on the way out: the API's
/// `Baggage` is a map, and W3C Baggage gives the order of list members no
/// meaning. A key given twice keeps its last value. Injection encodes only
/// what the grammar requires, so a legal header of up to 8,192 bytes goes
/// out whole and within the limit (a property test holds this).
///
/// # Example
///
/// ```
/// use opentelemetry::baggage::BaggageExt;
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::Context;
/// use otel_propagation::BaggagePropagator;
/// use std::collections::HashMap;
///
/// let mut carrier = HashMap::new();
/// carrier.insert("baggage".to_string(), "user=alice, region=eu%2Dwest;ttl=1".to_string());
/// let cx = BaggagePropagator::new().extract_with_context(&Context::new(), &carrier);
/// assert_eq!(cx.baggage().get("user").map(|v| v.as_str()), Some("alice"));
/// assert_eq!(cx.baggage().get("region").map(|v| v.as_str()), Some("eu-west"));
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct BaggagePropagator {
    _private: (),
}

impl BaggagePropagator {
    /// Creates the propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Parses one `key OWS "=" OWS value *(OWS ";" OWS property)` member.
fn parse_member(member: &str) -> Option<KeyValueMetadata> {
    let (head, properties) = match member.split_once(';') {
        Some((head, props)) => (head, props),
        None => (member, ""),
    };
    let (key, value) = head.split_once('=')?;
    let key = key.trim_matches(is_ows);
    if key.is_empty() || !key.bytes().all(is_tchar) {
        return None;
    }
    let value = percent_decode_str(value.trim_matches(is_ows)).decode_utf8_lossy();
    let properties = properties
        .split(';')
        .map(|p| p.trim_matches(is_ows))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(";");
    Some(KeyValueMetadata::new(
        key.to_owned(),
        value.into_owned(),
        properties,
    ))
}

impl TextMapPropagator for BaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let baggage = cx.baggage();
        if baggage.is_empty() {
            return;
        }
        let mut header = String::new();
        let mut count = 0;
        let mut member = String::new();
        for (key, (value, metadata)) in baggage {
            let key = key.as_str();
            if key.is_empty() || !key.bytes().all(is_tchar) {
                continue;
            }
            member.clear();
            member.push_str(key);
            member.push('=');
            let _ = write!(
                member,
                "{}",
                utf8_percent_encode(value.as_str(), VALUE_ENCODE)
            );
            let props = metadata.as_str().trim();
            if !props.is_empty() {
                member.push(';');
                member.push_str(props);
            }
            let extra = usize::from(!header.is_empty());
            if count == MAX_BAGGAGE_MEMBERS
                || header.len() + extra + member.len() > MAX_BAGGAGE_BYTES
            {
                // Whole members only: this one does not fit; a shorter later
                // one might.
                continue;
            }
            if extra == 1 {
                header.push(',');
            }
            header.push_str(&member);
            count += 1;
        }
        if !header.is_empty() {
            injector.set(BAGGAGE_HEADER, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get_all(BAGGAGE_HEADER) {
            Some(lines) => extract_lines(cx, lines),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
        FieldIter::new(FIELDS.get_or_init(|| [BAGGAGE_HEADER.to_owned()]))
    }
}

/// Extraction from the `baggage` header's lines, whatever carries them.
pub(crate) fn extract_lines<'a>(cx: &Context, lines: impl IntoIterator<Item = &'a str>) -> Context {
    let mut members = Vec::new();
    let mut bytes = 0usize;
    'lines: for line in lines {
        for raw in line.split(',') {
            let raw = raw.trim_matches(is_ows);
            if raw.is_empty() {
                continue;
            }
            let cost = raw.len() + usize::from(bytes > 0);
            if members.len() == MAX_BAGGAGE_MEMBERS || bytes + cost > MAX_BAGGAGE_BYTES {
                break 'lines;
            }
            // Skipped members count too, which bounds the work a hostile
            // header can cause.
            bytes += cost;
            if let Some(member) = parse_member(raw) {
                members.push(member);
            }
        }
    }
    cx.with_baggage(members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The extracted context; its baggage is read with [`get`].
    fn extract(header: &str) -> Context {
        let mut carrier = HashMap::new();
        carrier.insert("baggage".to_string(), header.to_string());
        BaggagePropagator::new().extract_with_context(&Context::new(), &carrier)
    }

    fn get(cx: &Context, k: &str) -> Option<String> {
        cx.baggage().get(k).map(|v| v.as_str().to_owned())
    }

    #[test]
    fn f12_member_grammar_table() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("a=1", &[("a", "1")]),
            ("a = 1 ,\tb=2\t", &[("a", "1"), ("b", "2")]),
            ("a=1;prop=x;flag", &[("a", "1")]),
            ("a=hello%20world", &[("a", "hello world")]),
            ("a=%E2%82%AC", &[("a", "\u{20ac}")]),
            // Invalid UTF-8 decodes to the replacement character.
            ("a=%FF", &[("a", "\u{fffd}")]),
            ("a=", &[("a", "")]),
            // Bad members are skipped alone.
            ("no-equals,b=2", &[("b", "2")]),
            ("bad key=1,b=2", &[("b", "2")]),
            ("=1,b=2", &[("b", "2")]),
            ("(x)=1,b=2", &[("b", "2")]),
            (",,b=2,,", &[("b", "2")]),
        ];
        for (header, want) in cases {
            let b = extract(header);
            assert_eq!(
                b.baggage().len(),
                want.len(),
                "{header:?}: {:?}",
                b.baggage()
            );
            for (k, v) in *want {
                assert_eq!(get(&b, k).as_deref(), Some(*v), "{header:?} key {k}");
            }
        }
        let b = extract("a=1;prop=x;flag");
        let (_, meta) = b.baggage().get_with_metadata("a").expect("a present");
        assert_eq!(meta.as_str(), "prop=x;flag");
    }

    #[test]
    fn f12_member_limit_is_64_whole_members() {
        let header: Vec<String> = (0..10_000).map(|i| format!("k{i}=v")).collect();
        let b = extract(&header.join(","));
        assert_eq!(b.baggage().len(), MAX_BAGGAGE_MEMBERS);
        assert!(get(&b, "k0").is_some() && get(&b, "k63").is_some());
        assert!(get(&b, "k64").is_none());
    }

    #[test]
    fn f12_byte_limit_is_8192_whole_members() {
        // a and b take 8005 bytes; c would pass 8192, so it and all after it
        // are dropped whole.
        let big = "x".repeat(4000);
        let header = format!("a={big},b={big},c={},d=1", "y".repeat(300));
        let b = extract(&header);
        assert!(get(&b, "a").is_some() && get(&b, "b").is_some());
        assert!(get(&b, "c").is_none(), "no partial member");
        assert!(
            get(&b, "d").is_none(),
            "stops at the first member that does not fit"
        );
        let huge = format!("a={}", "x".repeat(1 << 20));
        assert!(extract(&huge).baggage().is_empty());
    }

    #[test]
    fn f12_limits_apply_across_header_lines() {
        struct TwoLines(String, String);
        impl Extractor for TwoLines {
            fn get(&self, _: &str) -> Option<&str> {
                Some(&self.0)
            }
            fn keys(&self) -> Vec<&str> {
                vec!["baggage"]
            }
            fn get_all(&self, _: &str) -> Option<Vec<&str>> {
                Some(vec![&self.0, &self.1])
            }
        }
        let first: Vec<String> = (0..40).map(|i| format!("a{i}=1")).collect();
        let second: Vec<String> = (0..40).map(|i| format!("b{i}=1")).collect();
        let cx = BaggagePropagator::new().extract_with_context(
            &Context::new(),
            &TwoLines(first.join(","), second.join(",")),
        );
        assert_eq!(cx.baggage().len(), 64);
        assert!(cx.baggage().get("b23").is_some());
        assert!(cx.baggage().get("b24").is_none());
    }

    #[test]
    fn extract_replaces_existing_baggage() {
        let before = Context::new().with_baggage(vec![KeyValueMetadata::new("old", "1", "")]);
        let mut carrier = HashMap::new();
        carrier.insert("baggage".to_string(), "new=2".to_string());
        let cx = BaggagePropagator::new().extract_with_context(&before, &carrier);
        assert!(cx.baggage().get("old").is_none());
        assert!(cx.baggage().get("new").is_some());
    }

    #[test]
    fn inject_round_trips_and_encodes() {
        let cx = Context::new().with_baggage(vec![
            KeyValueMetadata::new("user", "alice smith,=;%", "ttl=1"),
            KeyValueMetadata::new("n", "\u{20ac}", ""),
        ]);
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&cx, &mut out);
        let header = &out["baggage"];
        assert!(!header.contains(' '), "{header}");
        let back = extract(header);
        assert_eq!(get(&back, "user").as_deref(), Some("alice smith,=;%"));
        assert_eq!(get(&back, "n").as_deref(), Some("\u{20ac}"));
    }

    /// `=` is a baggage octet: sent as it is, so a legal 8,192-byte header
    /// of such values is not pushed over the limit and dropped.
    #[test]
    fn equals_sign_is_sent_as_it_is_and_a_full_header_stays_whole() {
        let cx = Context::new().with_baggage(vec![KeyValueMetadata::new("q", "a=b==", "")]);
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&cx, &mut out);
        assert_eq!(out["baggage"], "q=a=b==");
        // 8 members of 1,023 bytes each, joined by commas: 8,191 bytes.
        let members: Vec<String> = (0..8)
            .map(|i| format!("k{i}={}", "=".repeat(1_023 - 3)))
            .collect();
        let header = members.join(",");
        assert!(header.len() <= MAX_BAGGAGE_BYTES, "{}", header.len());
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&extract(&header), &mut out);
        let sent = &out["baggage"];
        assert_eq!(sent.len(), header.len());
        assert_eq!(sent.split(',').count(), 8);
    }

    #[test]
    fn inject_nothing_without_baggage() {
        let mut out = HashMap::new();
        BaggagePropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
