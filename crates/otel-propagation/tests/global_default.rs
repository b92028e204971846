//! `set_global_default`: while its propagator is the global one, `extract`
//! reads the `HeaderMap` directly, with exactly the result the composite
//! propagator gives through `HeaderExtractor`; once anything replaces it,
//! `extract` follows the new global propagator.
//!
//! One test, because both parts change the process-wide propagator.

use http::{HeaderMap, HeaderValue};
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{global, Context};
use otel_propagation::{default_propagator, extract, extract_with, inject_with};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn headers(lines: &[(&'static str, Vec<u8>)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, bytes) in lines {
        if let Ok(v) = HeaderValue::from_bytes(bytes) {
            h.append(*name, v);
        }
    }
    h
}

/// Everything a context carries onward: what the default propagator
/// injects from it (span context, trace state kept raw, baggage), whether
/// its span context is remote, and its baggage in order.
/// Header lines as (name, bytes), sorted.
type Lines = Vec<(String, Vec<u8>)>;

fn carried(cx: &Context) -> (Lines, bool, Vec<(String, String)>) {
    let mut out = HeaderMap::new();
    inject_with(&default_propagator(), cx, &mut out);
    // Baggage is compared as a sorted list below: its header's member
    // order follows a hash map's.
    let mut injected: Vec<(String, Vec<u8>)> = out
        .iter()
        .filter(|(k, _)| k.as_str() != "baggage")
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    injected.sort();
    let mut baggage: Vec<(String, String)> = cx
        .baggage()
        .iter()
        .map(|(k, (v, metadata))| {
            (
                k.as_str().to_owned(),
                format!("{};{}", v.as_str(), metadata.as_str()),
            )
        })
        .collect();
    baggage.sort();
    (injected, cx.span().span_context().is_remote(), baggage)
}

/// Header lines that reach every branch: valid and broken `traceparent`s,
/// repeated lines, `tracestate` lists, baggage lists, non-ASCII bytes.
fn line() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    let name = prop_oneof![
        Just("traceparent"),
        Just("tracestate"),
        Just("baggage"),
        Just("x-other"),
    ];
    let value = prop_oneof![
        Just(TP.as_bytes().to_vec()),
        Just(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03".to_vec()),
        (any::<u128>(), any::<u64>(), any::<u8>())
            .prop_map(|(t, s, f)| format!("00-{t:032x}-{s:016x}-{f:02x}").into_bytes()),
        "([a-z]{1,4}=[a-z0-9]{0,4},? ?){0,4}".prop_map(String::into_bytes),
        "[ -~]{0,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
        // A valid line with one byte changed to anything (the direct path
        // parses lines of this length as bytes), and a later version with
        // any bytes after its fields.
        (0usize..55, any::<u8>()).prop_map(|(at, byte)| {
            let mut line = TP.as_bytes().to_vec();
            line[at] = byte;
            line
        }),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(|tail| {
            let mut line = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-".to_vec();
            line.extend(tail);
            line
        }),
    ];
    (name, value)
}

#[test]
fn direct_extraction_matches_the_composite_and_yields_to_a_replacement() {
    otel_propagation::set_global_default();

    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(2_000)
    });
    // Up to 24 other header lines besides, so that both ways of finding
    // the three headers (a pass over few lines, lookups among many) run.
    let cases = (prop::collection::vec(line(), 0..5), 0usize..24);
    let outcome = runner.run(&cases, |(lines, others)| {
        let mut map = headers(&lines);
        for i in 0..others {
            let name = http::HeaderName::from_bytes(format!("x-other-{i}").as_bytes())
                .expect("a valid header name");
            map.append(name, HeaderValue::from_static("1"));
        }
        let direct = extract(&map);
        let composite = extract_with(&default_propagator(), &map);
        prop_assert_eq!(carried(&direct), carried(&composite));
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("direct and composite extraction differ: {failure}");
    }

    // The direct path reads the three headers, and only while installed.
    let mut map = HeaderMap::new();
    map.insert("traceparent", HeaderValue::from_static(TP));
    map.insert("baggage", HeaderValue::from_static("user=alice"));
    let cx = extract(&map);
    assert!(cx.span().span_context().is_valid());
    assert_eq!(
        cx.baggage().get("user").map(|v| v.as_str().to_owned()),
        Some("alice".to_owned())
    );

    // Replaced by a propagator that reads nothing: extract follows it.
    global::set_text_map_propagator(TextMapCompositePropagator::new(Vec::new()));
    let cx = extract(&map);
    assert!(!cx.span().span_context().is_valid());
    assert!(cx.baggage().is_empty());

    // Installed again, twice (the second replaces the first): still direct.
    otel_propagation::set_global_default();
    otel_propagation::set_global_default();
    assert!(extract(&map).span().span_context().is_valid());
    global::set_text_map_propagator(TextMapCompositePropagator::new(Vec::new()));
    assert!(!extract(&map).span().span_context().is_valid());
}
