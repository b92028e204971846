//! Property tests of extraction: any input, no panic, bounded output,
//! malformed input ignored. Cases default to 10,000 per property; set
//! `PROPTEST_CASES=1000000` for a long run.

use http::{HeaderMap, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use otel_propagation::{default_propagator, extract_with, inject_with};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig::with_cases(cases)
}

fn headers(lines: &[(&'static str, Vec<u8>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, bytes) in lines {
        if let Ok(v) = HeaderValue::from_bytes(bytes) {
            h.append(*name, v);
        }
    }
    h
}

/// Bytes that look like a traceparent often enough to reach deep paths.
fn traceparent_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        "[0-9a-fA-F -]{0,70}".prop_map(String::into_bytes),
        (
            0u8..=255,
            any::<u128>(),
            any::<u64>(),
            any::<u8>(),
            "[ -~]{0,12}"
        )
            .prop_map(|(v, t, s, f, tail)| format!(
                "{v:02x}-{t:032x}-{s:016x}-{f:02x}{tail}"
            )
            .into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn traceparent_extraction_never_panics_and_is_valid_or_absent(
        lines in prop::collection::vec(traceparent_like(), 0..3),
        state in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..3),
    ) {
        let mut all: Vec<(&'static str, Vec<u8>)> = lines.into_iter().map(|l| ("traceparent", l)).collect();
        all.extend(state.into_iter().map(|s| ("tracestate", s)));
        let cx = extract_with(&default_propagator(), &headers(&all));
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            prop_assert!(sc.is_remote());
            prop_assert!(sc.trace_flags().to_u8() & !0x03 == 0, "only known flag bits");
            prop_assert!(sc.trace_state().header().split(',').filter(|m| !m.is_empty()).count() <= 32);
            // What we extracted, we can send on, and read back the same.
            let mut out = HeaderMap::new();
            inject_with(&default_propagator(), &cx, &mut out);
            let back = extract_with(&default_propagator(), &out);
            prop_assert_eq!(back.span().span_context().trace_id(), sc.trace_id());
            prop_assert_eq!(back.span().span_context().span_id(), sc.span_id());
            prop_assert_eq!(back.span().span_context().trace_flags(), sc.trace_flags());
        } else {
            prop_assert!(!sc.trace_state().header().contains('='), "no tracestate without traceparent");
        }
    }

    #[test]
    fn baggage_extraction_is_bounded_and_round_trips(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 0..4),
    ) {
        let all: Vec<(&'static str, Vec<u8>)> = lines.into_iter().map(|l| ("baggage", l)).collect();
        let cx = extract_with(&default_propagator(), &headers(&all));
        let baggage = cx.baggage();
        prop_assert!(baggage.len() <= 64);
        let mut out = HeaderMap::new();
        inject_with(&default_propagator(), &cx, &mut out);
        if let Some(v) = out.get("baggage") {
            prop_assert!(v.len() <= 8192);
            let back = extract_with(&default_propagator(), &out);
            prop_assert_eq!(back.baggage().len(), baggage.len());
            for (k, (v, _)) in baggage {
                prop_assert_eq!(back.baggage().get(k.as_str()), Some(v));
            }
        } else {
            prop_assert!(baggage.is_empty());
        }
    }

    #[test]
    fn any_valid_context_round_trips(
        trace in 1u128..,
        span in 1u64..,
        flags in 0u8..4,
        members in prop::collection::vec(("[a-z][a-z0-9_*/-]{0,20}", "[!-+--<>-~]{1,20}"), 0..10),
    ) {
        let mut seen = std::collections::HashSet::new();
        let members: Vec<(String, String)> = members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        let state = TraceState::from_key_value(members.clone()).unwrap_or_default();
        let sc = SpanContext::new(TraceId::from(trace), SpanId::from(span), TraceFlags::new(flags), true, state.clone());
        let cx = Context::new().with_remote_span_context(sc);
        let mut out = HeaderMap::new();
        inject_with(&default_propagator(), &cx, &mut out);
        let back = extract_with(&default_propagator(), &out);
        let got = back.span().span_context().clone();
        prop_assert_eq!(got.trace_id(), TraceId::from(trace));
        prop_assert_eq!(got.span_id(), SpanId::from(span));
        prop_assert_eq!(got.trace_flags().to_u8(), flags);
        prop_assert_eq!(got.trace_state().header(), state.header());
    }
}

#[test]
fn fields_cover_every_header_read() {
    let p = default_propagator();
    let mut fields: Vec<&str> = p.fields().collect();
    fields.sort_unstable();
    assert_eq!(fields, ["baggage", "traceparent", "tracestate"]);
}

/// A Level 2 tracestate member: key and value as the grammar allows them,
/// mostly short, sometimes up to the 256-character bounds.
fn tracestate_member() -> impl Strategy<Value = (String, String)> {
    let value = |n: usize| {
        proptest::string::string_regex(&format!(
            "[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{{0,{n}}}[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]"
        ))
        .expect("value regex")
    };
    prop_oneof![
        4 => ("[a-z0-9][a-z0-9_*/@-]{0,15}", value(15)),
        1 => ("[a-z0-9][a-z0-9_*/@-]{0,255}", value(255)),
    ]
}

/// A tenth of the usual cases: each holds up to 32 members.
fn tracestate_config() -> ProptestConfig {
    ProptestConfig::with_cases((config().cases / 10).max(1))
}

proptest! {
    #![proptest_config(tracestate_config())]

    /// Any valid Level 2 tracestate (up to 32 members, unique keys, spread
    /// over several lines with optional white space and empty members) is
    /// sent on unchanged, member for member, in order.
    #[test]
    fn valid_level2_tracestate_is_sent_on_unchanged(
        members in prop::collection::vec(tracestate_member(), 1..=32),
        ows in prop::collection::vec("[ \t]{0,2}", 64),
        lines in 1usize..4,
        empties in prop::collection::vec(any::<bool>(), 32),
    ) {
        let mut seen = std::collections::HashSet::new();
        let members: Vec<(String, String)> =
            members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        let want: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // Split into header lines, with white space and empty members.
        let per_line = want.len().div_ceil(lines);
        let mut all: Vec<(&'static str, Vec<u8>)> = vec![(
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
        )];
        for (li, chunk) in want.chunks(per_line).enumerate() {
            let mut line = String::new();
            for (i, m) in chunk.iter().enumerate() {
                let n = li * per_line + i;
                if i > 0 {
                    line.push(',');
                }
                line.push_str(&ows[(2 * n) % 64]);
                line.push_str(m);
                line.push_str(&ows[(2 * n + 1) % 64]);
                if empties[n % 32] {
                    line.push_str(", ");
                }
            }
            all.push(("tracestate", line.into_bytes()));
        }
        let cx = extract_with(&default_propagator(), &headers(&all));
        let mut out = HeaderMap::new();
        inject_with(&default_propagator(), &cx, &mut out);
        let sent = out.get("tracestate").and_then(|v| v.to_str().ok()).unwrap_or_default();
        prop_assert_eq!(sent, want.join(","));
    }
}

/// A baggage value as W3C Baggage writes it: a UTF-8 string, percent-encoded
/// where the grammar asks, and sometimes where it need not.
fn baggage_value() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{20ac}]{0,40}".prop_map(|raw| {
        let mut out = String::new();
        for c in raw.chars() {
            match c {
                ' ' | '"' | ',' | ';' | '\\' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
                'a' => out.push_str("%61"), // needlessly encoded: legal
                c if c.is_ascii() => out.push(c),
                c => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
        out
    })
}

/// Whether `header` is a valid W3C baggage header: members of a token key,
/// `=`, baggage octets, and properties, separated by commas.
fn valid_baggage(header: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let octet = |b: u8| matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e);
    header.split(',').all(|member| {
        let head = member.split(';').next().unwrap_or("");
        match head.split_once('=') {
            Some((k, v)) => !k.is_empty() && k.bytes().all(tchar) && v.bytes().all(octet),
            None => false,
        }
    })
}

proptest! {
    #![proptest_config(tracestate_config())]

    /// Any valid baggage header of up to 8,192 bytes and 64 members goes
    /// out valid, within the limit, with every member and its value.
    #[test]
    fn valid_baggage_goes_out_valid_whole_and_within_the_limit(
        members in prop::collection::vec(("[a-zA-Z0-9!#$&'*+.^_`|~-]{1,12}", baggage_value()), 1..=64),
        pad in 0usize..8_000,
    ) {
        let mut seen = std::collections::HashSet::new();
        let mut members: Vec<(String, String)> =
            members.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        // Pad the first value with `=` (a legal octet) toward the limit.
        let mut header = String::new();
        let fixed: usize = members.iter().map(|(k, v)| k.len() + 1 + v.len()).sum::<usize>()
            + members.len() - 1;
        let room = 8_192usize.saturating_sub(fixed);
        members[0].1.push_str(&"=".repeat(pad.min(room)));
        for (i, (k, v)) in members.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!("{k}={v}"));
        }
        prop_assume!(header.len() <= 8_192);
        let mut h = HeaderMap::new();
        h.insert("baggage", HeaderValue::from_str(&header).expect("ascii"));
        let cx = extract_with(&default_propagator(), &h);
        let mut out = HeaderMap::new();
        inject_with(&default_propagator(), &cx, &mut out);
        let sent = out.get("baggage").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        prop_assert!(sent.len() <= 8_192, "{} bytes", sent.len());
        prop_assert!(valid_baggage(&sent), "{sent}");
        let back = extract_with(&default_propagator(), &out);
        for (k, v) in &members {
            let want = percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned();
            prop_assert_eq!(
                back.baggage().get(k.as_str()).map(|x| x.as_str().to_owned()),
                Some(want),
                "{}", k
            );
        }
    }
}
