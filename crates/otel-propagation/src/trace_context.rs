//! W3C Trace Context (Level 2) propagator.

use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use std::sync::OnceLock;

/// Header carrying the trace id, parent id and flags.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Header carrying vendor-specific trace state.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// Flag bit 0: the caller may have recorded this trace.
const FLAG_SAMPLED: u8 = 0x01;
/// Flag bit 1 (Level 2): the trace id's right-most 7 bytes are random.
const FLAG_RANDOM: u8 = 0x02;
/// The flag bits this implementation understands; the others are zeroed, as
/// the specification asks of a participant that does not know them.
const KNOWN_FLAGS: u8 = FLAG_SAMPLED | FLAG_RANDOM;

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
pub(crate) const TRACEPARENT_LEN: usize = 55;
/// The most list members a `tracestate` may carry.
const MAX_TRACESTATE_MEMBERS: usize = 32;
/// The longest key and the longest value a `tracestate` member may carry.
const MAX_TRACESTATE_KEY_LEN: usize = 256;
const MAX_TRACESTATE_VALUE_LEN: usize = 256;

/// Propagates span context in the W3C Trace Context format (`traceparent` and
/// `tracestate`), following the Level 2 specification to the letter.
///
/// It is a drop-in replacement for the SDK's `TraceContextPropagator` that
/// also:
///
/// - keeps the Level 2 `random` trace-id flag (bit `0x02`) so it reaches the
///   next service unchanged, and zeroes flag bits it does not know;
/// - treats two `traceparent` header lines as invalid input;
/// - combines several `tracestate` header lines in order, trims optional
///   white space, skips empty members, and discards the whole `tracestate`
///   when it has more than 32 members or any member is malformed;
/// - accepts future versions (`cc-…-01-what-the-future-will-be-like`) by
///   their version-00 prefix and re-emits them as version `00`;
/// - rejects a version-00 header with anything after the flags.
///
/// Extraction never fails: malformed input leaves the context unchanged, so
/// the server starts a new trace.
///
/// # Example
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::TraceContextExt;
/// use opentelemetry::Context;
/// use otel_propagation::TraceContextPropagator;
/// use std::collections::HashMap;
///
/// let propagator = TraceContextPropagator::new();
/// let mut carrier = HashMap::new();
/// carrier.insert(
///     "traceparent".to_string(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03".to_string(),
/// );
/// let cx = propagator.extract_with_context(&Context::new(), &carrier);
/// let span = cx.span();
/// let sc = span.span_context();
/// assert!(sc.is_remote() && sc.is_sampled());
/// // The Level 2 random flag is carried on.
/// assert_eq!(sc.trace_flags().to_u8(), 0x03);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// Creates the propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A `tracestate` we validated but the `opentelemetry` API's stricter
/// [`TraceState`] refused (it rejects, for example, a valid 14-character
/// vendor suffix). Kept in the context, tied to its trace id, so that what we
/// received is still what we send on.
#[derive(Debug, Clone)]
struct RawTraceState {
    trace_id: TraceId,
    header: String,
}

/// A context value saying that one trace's id is random (Trace Context
/// Level 2's random flag): every `traceparent` this propagator sends for that
/// trace carries the flag, whatever the span in the context says.
///
/// It exists because the SDK writes default flags (none) for a span it drops,
/// so a sampled-out request's context would lose the flag it came in with,
/// and because the SDK never sets the flag on a trace it starts. The
/// propagator adds it when it extracts a `traceparent` with the flag; an
/// instrumentation that starts a trace with random ids adds it with
/// [`with_random_trace_id`]. (An SDK that kept the parent's random flag on
/// every span it starts, and set it on new traces from a random id
/// generator, would make this unnecessary.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomTraceId(pub TraceId);

/// `cx` with `trace_id` marked as random: see [`RandomTraceId`].
///
/// ```
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::Context;
/// use std::collections::HashMap;
///
/// let id = TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128);
/// let sc = SpanContext::new(id, SpanId::from(7u64), TraceFlags::SAMPLED, false, TraceState::NONE);
/// let cx = otel_propagation::with_random_trace_id(&Context::new().with_remote_span_context(sc), id);
/// let mut out = HashMap::new();
/// otel_propagation::TraceContextPropagator::new().inject_context(&cx, &mut out);
/// assert!(out["traceparent"].ends_with("-03"));
/// ```
pub fn with_random_trace_id(cx: &Context, trace_id: TraceId) -> Context {
    cx.with_value(RandomTraceId(trace_id))
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let mut flags = sc.trace_flags().to_u8() & KNOWN_FLAGS;
        if cx
            .get::<RandomTraceId>()
            .is_some_and(|r| r.0 == sc.trace_id())
        {
            flags |= FLAG_RANDOM;
        }
        injector.set(
            TRACEPARENT_HEADER,
            format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), flags),
        );
        let state = sc.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE_HEADER, state);
        } else if let Some(raw) = cx.get::<RawTraceState>() {
            if raw.trace_id == sc.trace_id() {
                injector.set(TRACESTATE_HEADER, raw.header.clone());
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let lines = extractor.get_all(TRACEPARENT_HEADER);
        // Two traceparent lines are ambiguous: the caller's context is unknown.
        let traceparent = match lines.as_deref() {
            Some([line]) => Some(*line),
            _ => None,
        };
        extract_lines(cx, traceparent.map(str::as_bytes), || {
            extractor.get_all(TRACESTATE_HEADER)
        })
    }

    fn fields(&self) -> FieldIter<'_> {
        static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
        FieldIter::new(
            FIELDS.get_or_init(|| [TRACEPARENT_HEADER.to_owned(), TRACESTATE_HEADER.to_owned()]),
        )
    }
}

/// Extraction from header lines, whatever carries them: `traceparent` is the
/// one line's bytes (`None` when absent or repeated), `tracestate` gives
/// every line, asked for only when the `traceparent` is valid.
pub(crate) fn extract_lines<'a>(
    cx: &Context,
    traceparent: Option<&[u8]>,
    tracestate: impl FnOnce() -> Option<Vec<&'a str>>,
) -> Context {
    let Some((trace_id, span_id, flags)) = traceparent.and_then(parse_traceparent) else {
        return cx.clone();
    };

    let mut raw_state = None;
    let trace_state = match tracestate().and_then(|lines| parse_tracestate(&lines)) {
        Some(members) => match TraceState::from_key_value(members.iter().copied()) {
            Ok(state) => state,
            Err(_) => {
                raw_state = Some(RawTraceState {
                    trace_id,
                    header: join_members(&members),
                });
                TraceState::NONE
            }
        },
        None => TraceState::NONE,
    };

    let random = flags.to_u8() & FLAG_RANDOM != 0;
    let sc = SpanContext::new(trace_id, span_id, flags, true, trace_state);
    let cx = cx.with_remote_span_context(sc);
    // The random flag is kept for every span of this trace made here, even
    // one the SDK drops: see `RandomTraceId`.
    let cx = if random {
        cx.with_value(RandomTraceId(trace_id))
    } else {
        cx
    };
    match raw_state {
        Some(raw) => cx.with_value(raw),
        None => cx,
    }
}

fn join_members(members: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The value of each lowercase hex digit; 0xff for every other byte.
static LOWER_HEX: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Eight lowercase hex digits as the number they spell (the first digit
/// the most significant), or `None` if any byte is not one. Eight bytes at
/// once, in one 64-bit word: the trace and span ids are most of a
/// `traceparent`, and every traced request parses one.
fn hex8(digits: &[u8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let x = u64::from_le_bytes(digits.try_into().ok()?);
    // For bytes below 0x80, adding 0x80 - c sets a byte's high bit exactly
    // when the byte is at least c, and never carries into the next byte.
    let at_least = |c: u8| x.wrapping_add(ONES * u64::from(0x80 - c));
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    let letter = at_least(b'a') & !at_least(b'f' + 1);
    if x & HIGH != 0 || (digit | letter) & HIGH != HIGH {
        return None;
    }
    // Each byte's value: its low nibble, plus 9 for a letter ('a' is 0x61).
    let values = (x & (ONES * 0x0f)) + ((letter & HIGH) >> 7) * 9;
    // Pairs of digits into bytes, then the four bytes side by side.
    let bytes = ((values << 4) | (values >> 8)) & 0x00ff_00ff_00ff_00ff;
    let bytes = (bytes | (bytes >> 8)) & 0x0000_ffff_0000_ffff;
    let word = (bytes | (bytes >> 16)) as u32;
    // Read little-endian, so the first digits are in the lowest byte.
    Some(word.swap_bytes())
}

/// Sixteen lowercase hex digits as a number, or `None`.
fn hex16(digits: &[u8]) -> Option<u64> {
    let (high, low) = (digits.get(..8)?, digits.get(8..16)?);
    Some(u64::from(hex8(high)?) << 32 | u64::from(hex8(low)?))
}

/// Parses exactly `N` bytes of lowercase hex into a big-endian array.
fn parse_lower_hex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    // Accumulate the invalid marks and test once: no branch per digit.
    let mut invalid = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (hi, lo) = (LOWER_HEX[pair[0] as usize], LOWER_HEX[pair[1] as usize]);
        invalid |= hi | lo;
        *o = (hi << 4) | lo;
    }
    (invalid & 0xf0 == 0).then_some(out)
}

/// Parses one `traceparent` value. `None` means the header is to be ignored.
pub(crate) fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    // Optional white space is spaces and tabs only.
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b))?;
    let end = value.iter().rposition(|b| !ows(b))? + 1;
    let value = &value[start..end];
    if value.len() < TRACEPARENT_LEN {
        return None;
    }
    let [version] = parse_lower_hex::<1>(&value[0..2])?;
    if version == 0xff || value[2] != b'-' {
        return None;
    }
    match (version, value.len()) {
        (0, TRACEPARENT_LEN) => {}
        // Version 00 allows nothing after the flags.
        (0, _) => return None,
        // A later version may append fields, but only after a dash.
        (_, TRACEPARENT_LEN) => {}
        (_, _) if value[TRACEPARENT_LEN] == b'-' => {}
        _ => return None,
    }
    if value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = u128::from(hex16(&value[3..19])?) << 64 | u128::from(hex16(&value[19..35])?);
    let span_id = hex16(&value[36..52])?;
    let [flags] = parse_lower_hex::<1>(&value[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some((
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::new(flags & KNOWN_FLAGS),
    ))
}

/// Trace Context Level 2's `key`: a lowercase letter or a digit, then up to
/// 255 of lowercase letters, digits, `_`, `-`, `*`, `/` and `@` (Level 1's
/// tenant and system parts, with their own bounds, are one production now).
fn valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    b.len() <= MAX_TRACESTATE_KEY_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && rest.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// Up to 256 printable ASCII characters except `,` and `=`, the last not a
/// space.
fn valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TRACESTATE_VALUE_LEN
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// Combines `tracestate` header lines and validates them. `None` means the
/// whole `tracestate` is discarded (the `traceparent` is kept regardless).
pub(crate) fn parse_tracestate<'a>(lines: &[&'a str]) -> Option<Vec<(&'a str, &'a str)>> {
    let mut members: Vec<(&str, &str)> = Vec::new();
    for member in lines.iter().flat_map(|line| line.split(',')) {
        let member = member.trim_matches(is_ows);
        if member.is_empty() {
            continue;
        }
        if members.len() == MAX_TRACESTATE_MEMBERS {
            return None;
        }
        let (key, value) = member.split_once('=')?;
        if !valid_tracestate_key(key) || !valid_tracestate_value(value) {
            return None;
        }
        // A key appears once: a later duplicate is dropped, the first kept
        // (the specification allows discarding duplicates, not the rest).
        if !members.iter().any(|(k, _)| *k == key) {
            members.push((key, value));
        }
    }
    if members.is_empty() {
        None
    } else {
        Some(members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `hex8` by the byte table, one digit at a time: the reference.
    fn hex8_by_table(digits: &[u8]) -> Option<u32> {
        parse_lower_hex::<4>(digits).map(u32::from_be_bytes)
    }

    #[test]
    fn hex8_matches_the_table_for_every_byte_in_every_place() {
        for base in [*b"0123abcd", *b"fedc9876", *b"00000000", *b"ffffffff"] {
            for place in 0..8 {
                for byte in 0..=255u8 {
                    let mut digits = base;
                    digits[place] = byte;
                    assert_eq!(hex8(&digits), hex8_by_table(&digits), "{digits:?}");
                }
            }
        }
    }

    #[test]
    fn hex8_matches_the_table_on_mixed_bytes() {
        // Bytes at the edges of both digit ranges, upper case, and bytes
        // with the high bit set, in every mix.
        const BYTES: &[u8] = b"/09:`afgAF \x7f\x80\xb0\xe1\xff";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            let mut digits = [0u8; 8];
            for d in &mut digits {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *d = BYTES[(state % BYTES.len() as u64) as usize];
            }
            assert_eq!(hex8(&digits), hex8_by_table(&digits), "{digits:?}");
        }
        assert_eq!(hex8(b"0123abc"), None, "seven digits");
        assert_eq!(hex16(b"00f067aa0ba902b7"), Some(0x00f0_67aa_0ba9_02b7));
    }

    /// A carrier that can hold several lines per header, like an HTTP request.
    #[derive(Default)]
    struct Lines(Vec<(&'static str, String)>);

    impl Lines {
        fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
            self.0.push((name, value.into()));
            self
        }
    }

    impl Extractor for Lines {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| *k).collect()
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            let all: Vec<&str> = self
                .0
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
                .collect();
            (!all.is_empty()).then_some(all)
        }
    }

    const TID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SID: &str = "00f067aa0ba902b7";

    fn extract(carrier: &Lines) -> SpanContext {
        TraceContextPropagator::new()
            .extract_with_context(&Context::new(), carrier)
            .span()
            .span_context()
            .clone()
    }

    fn tp(value: &str) -> SpanContext {
        extract(&Lines::default().with("traceparent", value))
    }

    #[test]
    fn f1_f3_f4_f5_traceparent_table() {
        let cases: &[(&str, Option<u8>)] = &[
            (&format!("00-{TID}-{SID}-01"), Some(1)),
            (&format!("00-{TID}-{SID}-00"), Some(0)),
            // F6: flags read bitwise, random bit kept, unknown bits zeroed.
            (&format!("00-{TID}-{SID}-03"), Some(3)),
            (&format!("00-{TID}-{SID}-ff"), Some(3)),
            (&format!("00-{TID}-{SID}-09"), Some(1)),
            // F2: OWS around the value.
            (&format!(" \t00-{TID}-{SID}-01\t "), Some(1)),
            // F3: version 00 allows nothing after the flags.
            (&format!("00-{TID}-{SID}-01."), None),
            (&format!("00-{TID}-{SID}-01-"), None),
            (
                &format!("00-{TID}-{SID}-01-what-the-future-will-be-like"),
                None,
            ),
            (&format!("ff-{TID}-{SID}-01"), None),
            (&format!("0-{TID}-{SID}-01"), None),
            (&format!("0x-{TID}-{SID}-01"), None),
            (&format!("AA-{TID}-{SID}-01"), None),
            // F4: future versions.
            (&format!("cc-{TID}-{SID}-01"), Some(1)),
            (
                &format!("cc-{TID}-{SID}-01-what-the-future-will-be-like"),
                Some(1),
            ),
            (
                &format!("cc-{TID}-{SID}-01.what-the-future-will-be-like"),
                None,
            ),
            (&format!("cc-{TID}-{SID}-0"), None),
            // F5: ids and flags.
            (&format!("00-{}-{SID}-01", TID.to_uppercase()), None),
            (&format!("00-{TID}-{}-01", SID.to_uppercase()), None),
            (&format!("00-{}-{SID}-01", "0".repeat(32)), None),
            (&format!("00-{TID}-{}-01", "0".repeat(16)), None),
            (&format!("00-{}-{SID}-01", &TID[..31]), None),
            (&format!("00-{TID}-{}-01", &SID[..15]), None),
            (&format!("00-{TID}x-{SID}-01"), None),
            (&format!("00-{}g-{SID}-01", &TID[..31]), None),
            (&format!("00-{TID}-{SID}-1"), None),
            (&format!("00-{TID}-{SID}-001"), None),
            (&format!("00-{TID}-{SID}-0g"), None),
            (&format!("00_{TID}-{SID}-01"), None),
            (&format!("00-{TID}_{SID}-01"), None),
            ("", None),
            ("garbage", None),
        ];
        for (value, flags) in cases {
            let sc = tp(value);
            match flags {
                Some(f) => {
                    assert!(sc.is_valid(), "{value:?} should be accepted");
                    assert!(sc.is_remote());
                    assert_eq!(sc.trace_id().to_string(), TID, "{value:?}");
                    assert_eq!(sc.span_id().to_string(), SID, "{value:?}");
                    assert_eq!(sc.trace_flags().to_u8(), *f, "{value:?}");
                }
                None => assert!(!sc.is_valid(), "{value:?} should be rejected"),
            }
        }
    }

    #[test]
    fn f2_header_names_are_case_insensitive() {
        for name in ["TRACEPARENT", "TrAcEpArEnT"] {
            let sc = extract(&Lines::default().with(name, format!("00-{TID}-{SID}-01")));
            assert!(sc.is_valid(), "{name}");
        }
    }

    #[test]
    fn f7_duplicated_traceparent_is_invalid() {
        let carrier = Lines::default()
            .with("traceparent", format!("00-{TID}-{SID}-01"))
            .with("traceparent", format!("00-{TID}-{SID}-01"));
        assert!(!extract(&carrier).is_valid());
    }

    #[test]
    fn f1_invalid_traceparent_leaves_context_unchanged() {
        let parent = Context::new().with_value(42u32);
        let cx = TraceContextPropagator::new()
            .extract_with_context(&parent, &Lines::default().with("traceparent", "00-zz"));
        assert_eq!(cx.get::<u32>(), Some(&42));
        assert!(!cx.span().span_context().is_valid());
    }

    fn state(lines: &[&str]) -> String {
        let mut carrier = Lines::default().with("traceparent", format!("00-{TID}-{SID}-01"));
        for l in lines {
            carrier = carrier.with("tracestate", *l);
        }
        let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
        let mut out = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut out);
        assert!(out.contains_key("traceparent"), "traceparent must survive");
        out.remove("tracestate").unwrap_or_default()
    }

    #[test]
    fn f9_tracestate_table() {
        let members32: Vec<String> = (0..32).map(|i| format!("k{i}=v{i}")).collect();
        let members33: Vec<String> = (0..33).map(|i| format!("k{i}=v{i}")).collect();
        let long_vendor_key = format!("{}@{}", "t".repeat(241), "v".repeat(14));
        let cases: Vec<(Vec<String>, String)> = vec![
            (vec!["foo=1".into()], "foo=1".into()),
            (vec!["foo=1,bar=2".into()], "foo=1,bar=2".into()),
            // Multiple lines combine in order.
            (vec!["foo=1".into(), "bar=2".into()], "foo=1,bar=2".into()),
            // OWS and empty members are allowed.
            (vec![" foo=1 ,\t, bar=2\t".into()], "foo=1,bar=2".into()),
            (vec!["".into()], "".into()),
            (vec!["  ".into(), "foo=1".into()], "foo=1".into()),
            (vec![members32.join(",")], members32.join(",")),
            // More than 32 members: discard all.
            (vec![members33.join(",")], "".into()),
            (vec![members32.join(","), "extra=1".into()], "".into()),
            // Malformed members discard the whole tracestate.
            (vec!["foo=bar=baz".into()], "".into()),
            (vec!["foo=,bar=3".into()], "".into()),
            (vec!["foo".into()], "".into()),
            (vec!["Foo=1".into()], "".into()),
            // A duplicate key: the first kept, the rest of the list too.
            (vec!["foo=1,foo=2".into()], "foo=1".into()),
            (
                vec!["foo=1,bar=2,foo=3,baz=4".into()],
                "foo=1,bar=2,baz=4".into(),
            ),
            (vec!["foo=1".into(), "foo=1".into()], "foo=1".into()),
            // Trailing white space is list OWS, not part of the value.
            (vec!["foo=bar ".into()], "foo=bar".into()),
            (vec!["foo=b\u{7f}r".into()], "".into()),
            (vec![format!("foo={}", "v".repeat(257))], "".into()),
            (vec![format!("{}=1", "k".repeat(257))], "".into()),
            (
                vec![format!("{}=1", "k".repeat(256))],
                format!("{}=1", "k".repeat(256)),
            ),
            // Level 2 keys: `@` anywhere but first, any number of times.
            (vec!["foo@=1".into()], "foo@=1".into()),
            (vec!["@foo=1".into()], "".into()),
            (vec!["foo@bar@baz=1".into()], "foo@bar@baz=1".into()),
            (vec!["foo@@bar=1".into()], "foo@@bar=1".into()),
            (vec!["1foo=1".into()], "1foo=1".into()),
            (vec!["_foo=1".into()], "".into()),
            (
                vec![format!("{}@v=1", "t".repeat(242))],
                format!("{}@v=1", "t".repeat(242)),
            ),
            (
                vec![format!("{long_vendor_key}=1")],
                format!("{long_vendor_key}=1"),
            ),
            (vec![format!("{long_vendor_key}v=1")], "".into()),
            (vec!["foo=a b".into()], "foo=a b".into()),
            (vec!["foo=\u{e9}".into()], "".into()),
        ];
        for (lines, want) in cases {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            assert_eq!(state(&refs), want, "tracestate {lines:?}");
        }
    }

    /// Every byte at every position of a key (first, middle, last, and the
    /// 256th): allowed exactly when Level 2's grammar allows it.
    #[test]
    fn f9_level2_key_every_byte_at_every_position() {
        let keychar = |c: u8| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        };
        let first = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        for len in [1usize, 2, 3, 255, 256] {
            for pos in [0, len / 2, len - 1] {
                for c in 0x21u8..=0x7e {
                    if matches!(c, b',' | b'=') {
                        continue;
                    }
                    let mut key = vec![b'a'; len];
                    key[pos] = c;
                    let key = String::from_utf8(key).expect("ascii");
                    let want = if pos == 0 { first(c) } else { keychar(c) };
                    assert_eq!(valid_tracestate_key(&key), want, "{c:?} at {pos} of {len}");
                }
            }
        }
        assert!(!valid_tracestate_key(&"a".repeat(257)));
        assert!(!valid_tracestate_key(""));
    }

    #[test]
    fn f8_tracestate_ignored_when_traceparent_invalid() {
        let carrier = Lines::default()
            .with("traceparent", "00-bad")
            .with("tracestate", "foo=1");
        let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
        let mut out = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn f4_future_version_is_reemitted_as_00() {
        let carrier = Lines::default().with("traceparent", format!("cc-{TID}-{SID}-03-future"));
        let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
        let mut out = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut out);
        assert_eq!(out["traceparent"], format!("00-{TID}-{SID}-03"));
    }

    #[test]
    fn inject_skips_invalid_context() {
        let mut out = HashMap::new();
        TraceContextPropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
