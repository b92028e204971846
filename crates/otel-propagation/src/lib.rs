//! W3C Trace Context and Baggage propagation for OpenTelemetry, and helpers
//! that inject into and extract from an [`http::HeaderMap`].
//!
//! - [`TraceContextPropagator`]: W3C Trace Context Level 2, conformant where
//!   the SDK's propagator is not (the `random` flag, duplicate `traceparent`
//!   lines, multi-line `tracestate`, OWS, member limits, future versions).
//!   Its `tracestate` keys follow Level 2's grammar (one production, `@`
//!   allowed anywhere but first, up to 256 characters); a duplicate key
//!   drops only the later member. The random flag received is sent on for
//!   the whole trace, even through spans the SDK drops (whose flags it
//!   resets), and [`with_random_trace_id`] marks a trace an instrumentation
//!   starts from random ids: see [`RandomTraceId`].
//! - [`BaggagePropagator`]: W3C Baggage with the 64-member / 8192-byte
//!   limits, whole members only; values encoded only where the grammar
//!   requires.
//! - [`SampledFlagOnly`]: wraps a propagator, such as B3, that would read
//!   the random flag as a flag of its own.
//! - [`default_propagator`]: both, composed, as `OTEL_PROPAGATORS` defaults to;
//!   [`set_global_default`] installs it as the global propagator and lets
//!   [`extract`] read a [`HeaderMap`] directly while it stays installed.
//! - [`inject`], [`inject_context`], [`extract`], [`extract_with`]: carry a
//!   context over any transport that has HTTP-style headers (a hyper client,
//!   a message queue), like the Python API's `inject(headers)`.
//!
//! Both propagators are drop-in [`TextMapPropagator`]s. Installed together
//! with [`set_global_default`], they are also read from a [`HeaderMap`]
//! directly by [`extract`]:
//!
//! ```
//! use opentelemetry::global;
//!
//! global::set_text_map_propagator(otel_propagation::default_propagator());
//! // or, the same propagator, with the direct path:
//! otel_propagation::set_global_default();
//! ```
//!
//! Carrying the current context to another service by hand:
//!
//! ```
//! use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
//! use opentelemetry::Context;
//! use otel_propagation::{extract_with, inject_context, TraceContextPropagator};
//!
//! let sc = SpanContext::new(
//!     TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
//!     SpanId::from(0x00f067aa0ba902b7),
//!     TraceFlags::SAMPLED,
//!     false,
//!     TraceState::NONE,
//! );
//! let cx = Context::new().with_remote_span_context(sc);
//!
//! let propagator = TraceContextPropagator::new();
//! let mut headers = http::HeaderMap::new();
//! otel_propagation::inject_with(&propagator, &cx, &mut headers);
//! assert_eq!(
//!     headers["traceparent"],
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
//! );
//!
//! let received = extract_with(&propagator, &headers);
//! assert_eq!(received.span().span_context().trace_id(), cx.span().span_context().trace_id());
//! # let _ = inject_context;
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod baggage;
mod trace_context;

pub use baggage::{BaggagePropagator, BAGGAGE_HEADER, MAX_BAGGAGE_BYTES, MAX_BAGGAGE_MEMBERS};
pub use trace_context::{
    with_random_trace_id, RandomTraceId, TraceContextPropagator, TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
};

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::{global, Context};
use std::sync::atomic::{AtomicIsize, Ordering};

/// W3C Trace Context followed by W3C Baggage: the `OTEL_PROPAGATORS` default
/// (`tracecontext,baggage`), built from this crate's propagators.
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
///
/// let propagator = otel_propagation::default_propagator();
/// let mut fields: Vec<&str> = propagator.fields().collect();
/// fields.sort_unstable();
/// assert_eq!(fields, ["baggage", "traceparent", "tracestate"]);
/// ```
pub fn default_propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// How many [`GlobalDefault`]s are installed as the global propagator: one
/// while [`set_global_default`]'s propagator is the global one, zero once
/// anything replaced it. Signed: a replacement racing an install may drop
/// the installed value before the install counts it.
static DEFAULT_IS_GLOBAL: AtomicIsize = AtomicIsize::new(0);

/// [`default_propagator`] as [`set_global_default`] installs it: it counts
/// itself out of [`DEFAULT_IS_GLOBAL`] when the global propagator is
/// replaced (and so dropped), so the direct path is never taken for a
/// propagator that is not this one.
#[derive(Debug)]
struct GlobalDefault(TextMapCompositePropagator);

impl TextMapPropagator for GlobalDefault {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.0.inject_context(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.0.extract_with_context(cx, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        self.0.fields()
    }
}

impl Drop for GlobalDefault {
    fn drop(&mut self) {
        DEFAULT_IS_GLOBAL.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Installs [`default_propagator`] (W3C Trace Context, then W3C Baggage) as
/// `opentelemetry::global`'s text-map propagator.
///
/// Everything that uses the global propagator sees it as usual. In addition,
/// while it stays installed, [`extract`] and [`extract_with_context`] (and
/// so otel-web's server layer) read the three headers from the
/// [`HeaderMap`] directly, with the same result and without the per-header
/// vectors the generic [`Extractor`] interface allocates. Installing another
/// global propagator turns this off by itself.
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
///
/// otel_propagation::set_global_default();
/// let mut headers = http::HeaderMap::new();
/// headers.insert(
///     "traceparent",
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap(),
/// );
/// let cx = otel_propagation::extract(&headers);
/// assert!(cx.span().span_context().is_sampled());
/// ```
pub fn set_global_default() {
    global::set_text_map_propagator(GlobalDefault(default_propagator()));
    // Counted once installed, so a request never takes the direct path
    // while another propagator is still the global one.
    DEFAULT_IS_GLOBAL.fetch_add(1, Ordering::Relaxed);
}

/// Whether [`set_global_default`]'s propagator is the global one.
fn default_is_global() -> bool {
    DEFAULT_IS_GLOBAL.load(Ordering::Relaxed) > 0
}

/// A header line as the propagators read it: a line that is not visible
/// ASCII is an empty string, so it still counts as a line.
fn line(value: &HeaderValue) -> &str {
    value.to_str().unwrap_or("")
}

/// Up to this many header lines, one pass over them finds the three
/// propagation headers more cheaply than three hashed lookups (most of
/// which find nothing); past it, the lookups are cheaper. Measured: the
/// pass costs about 25 instructions a line, the lookups about 450 in all.
const SCAN_MAX_LINES: usize = 16;

/// Where the propagation headers are in a request's [`HeaderMap`].
struct Found<'a> {
    /// The only `traceparent` line, if there is exactly one.
    traceparent: Option<&'a HeaderValue>,
    tracestate: bool,
    baggage: bool,
}

impl<'a> Found<'a> {
    fn in_headers(headers: &'a HeaderMap) -> Self {
        if headers.len() <= SCAN_MAX_LINES {
            Self::by_scan(headers)
        } else {
            Self::by_lookup(headers)
        }
    }

    fn by_scan(headers: &'a HeaderMap) -> Self {
        let mut traceparent_lines = 0usize;
        let mut traceparent = None;
        let (mut tracestate, mut baggage) = (false, false);
        for (name, value) in headers {
            match name.as_str() {
                "traceparent" => {
                    traceparent_lines += 1;
                    traceparent.get_or_insert(value);
                }
                "tracestate" => tracestate = true,
                "baggage" => baggage = true,
                _ => {}
            }
        }
        Found {
            // Absent, or repeated and so ambiguous: ignored.
            traceparent: traceparent.filter(|_| traceparent_lines == 1),
            tracestate,
            baggage,
        }
    }

    fn by_lookup(headers: &'a HeaderMap) -> Self {
        let mut lines = headers.get_all(&TRACEPARENT_NAME).iter();
        Found {
            traceparent: match (lines.next(), lines.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
            tracestate: headers.contains_key(&TRACESTATE_NAME),
            baggage: headers.contains_key(&BAGGAGE_NAME),
        }
    }
}

/// What [`default_propagator`] extracts through [`HeaderExtractor`], read
/// from the map directly: the headers found as [`Found`] finds them, and
/// the `tracestate` and `baggage` lines, when there are any, then read in
/// order by name.
fn extract_default(cx: &Context, headers: &HeaderMap) -> Context {
    let found = Found::in_headers(headers);
    // A line of exactly a version-00 `traceparent`'s length is parsed as
    // bytes: the parser accepts it only if every byte is a hex digit or a
    // dash, so checking first that it is visible ASCII (as `line` does)
    // would change nothing. Any other line is checked as before.
    let traceparent = found.traceparent.map(|value| match value.len() {
        trace_context::TRACEPARENT_LEN => value.as_bytes(),
        _ => line(value).as_bytes(),
    });
    let cx = trace_context::extract_lines(cx, traceparent, || {
        found
            .tracestate
            .then(|| headers.get_all(&TRACESTATE_NAME).iter().map(line).collect())
    });
    if !found.baggage {
        return cx;
    }
    baggage::extract_lines(&cx, headers.get_all(&BAGGAGE_NAME).iter().map(line))
}

/// Reads an [`HeaderMap`] for a propagator.
///
/// Unlike a plain `get`, [`Extractor::get_all`] returns every line of a
/// header, and a line that is not visible ASCII is returned as an empty
/// string rather than skipped, so a propagator still sees that it was there
/// (two `traceparent` lines, one of them garbage, are still two).
#[derive(Debug, Clone, Copy)]
pub struct HeaderExtractor<'a>(pub &'a HeaderMap);

static TRACEPARENT_NAME: http::HeaderName = http::HeaderName::from_static("traceparent");
static TRACESTATE_NAME: http::HeaderName = http::HeaderName::from_static("tracestate");
static BAGGAGE_NAME: http::HeaderName = http::HeaderName::from_static("baggage");

/// The header names every request is asked for, ready-made: looking a
/// `&str` up in a `HeaderMap` parses it into a name first.
fn well_known(key: &str) -> Option<&'static http::HeaderName> {
    match key {
        "traceparent" => Some(&TRACEPARENT_NAME),
        "tracestate" => Some(&TRACESTATE_NAME),
        "baggage" => Some(&BAGGAGE_NAME),
        _ => None,
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match well_known(key) {
            Some(name) => self.0.get(name),
            None => self.0.get(key),
        };
        value.map(line)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all = match well_known(key) {
            Some(name) => self.0.get_all(name),
            None => self.0.get_all(key),
        };
        // Collecting nothing allocates nothing.
        let values: Vec<&str> = all.iter().map(line).collect();
        (!values.is_empty()).then_some(values)
    }
}

/// Writes a propagator's fields into an [`HeaderMap`], replacing any earlier
/// value of the same header. Values that are not valid header values are
/// skipped.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

/// Injects the current context into `headers` with the global propagator.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// otel_propagation::inject(&mut headers);
/// ```
pub fn inject(headers: &mut HeaderMap) {
    inject_context(&Context::current(), headers);
}

/// Injects `cx` into `headers` with the global propagator.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// otel_propagation::inject_context(&opentelemetry::Context::new(), &mut headers);
/// assert!(headers.is_empty());
/// ```
pub fn inject_context(cx: &Context, headers: &mut HeaderMap) {
    global::get_text_map_propagator(|p| inject_with(p, cx, headers));
}

/// Injects `cx` into `headers` with the given propagator.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// let p = otel_propagation::default_propagator();
/// otel_propagation::inject_with(&p, &opentelemetry::Context::new(), &mut headers);
/// ```
pub fn inject_with(propagator: &dyn TextMapPropagator, cx: &Context, headers: &mut HeaderMap) {
    propagator.inject_context(cx, &mut HeaderInjector(headers));
}

/// Extracts the caller's context from `headers` with the global propagator.
///
/// The result is built on an empty [`Context`], not on the current one, so
/// nothing of the current task (its span, its baggage) leaks into what a
/// request handler sees. Use [`extract_with_context`] to extract onto another.
///
/// ```
/// let headers = http::HeaderMap::new();
/// let cx = otel_propagation::extract(&headers);
/// # let _ = cx;
/// ```
pub fn extract(headers: &HeaderMap) -> Context {
    extract_with_context(&Context::new(), headers)
}

/// Extracts the caller's context from `headers` onto `cx`, with the global
/// propagator.
///
/// ```
/// let headers = http::HeaderMap::new();
/// let cx = otel_propagation::extract_with_context(&opentelemetry::Context::current(), &headers);
/// # let _ = cx;
/// ```
pub fn extract_with_context(cx: &Context, headers: &HeaderMap) -> Context {
    if default_is_global() {
        return extract_default(cx, headers);
    }
    global::get_text_map_propagator(|p| p.extract_with_context(cx, &HeaderExtractor(headers)))
}

/// Extracts the caller's context from `headers` onto an empty [`Context`],
/// with the given propagator.
///
/// ```
/// let p = otel_propagation::default_propagator();
/// let cx = otel_propagation::extract_with(&p, &http::HeaderMap::new());
/// # let _ = cx;
/// ```
pub fn extract_with(propagator: &dyn TextMapPropagator, headers: &HeaderMap) -> Context {
    propagator.extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::TraceContextExt;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn f7_duplicate_traceparent_with_a_non_ascii_line_is_still_duplicate() {
        let mut headers = HeaderMap::new();
        headers.append("traceparent", HeaderValue::from_static(TP));
        headers.append(
            "traceparent",
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are a valid header value"),
        );
        let cx = extract_with(&default_propagator(), &headers);
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn f9_multiline_tracestate_from_header_map() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(TP));
        headers.append("tracestate", HeaderValue::from_static("a=1"));
        headers.append("tracestate", HeaderValue::from_static("b=2"));
        let p = default_propagator();
        let cx = extract_with(&p, &headers);
        let mut out = HeaderMap::new();
        inject_with(&p, &cx, &mut out);
        assert_eq!(out["tracestate"], "a=1,b=2");
        assert_eq!(out["traceparent"], TP);
    }

    #[test]
    fn extract_does_not_inherit_current_baggage() {
        let _guard = Context::new()
            .with_baggage(vec![opentelemetry::KeyValue::new("leak", "1")])
            .attach();
        let cx = extract_with(&default_propagator(), &HeaderMap::new());
        assert!(cx.baggage().is_empty());
    }

    #[test]
    fn injector_replaces_existing_header() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("stale"));
        HeaderInjector(&mut headers).set("traceparent", TP.to_string());
        assert_eq!(headers.get_all("traceparent").iter().count(), 1);
        assert_eq!(headers["traceparent"], TP);
    }
}

/// Wraps a propagator that reads every bit of the trace flags as its own
/// (B3 reads `0x02`, Trace Context Level 2's random flag, as its private
/// "deferred" flag) so that it sees only the sampled bit, in both
/// directions: it injects the sampling decision and nothing else, and what
/// it extracts carries no other flag for a Trace Context propagator to send
/// on as the random flag.
///
/// ```
/// use opentelemetry::propagation::TextMapPropagator;
/// use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
/// use opentelemetry::Context;
/// use otel_propagation::SampledFlagOnly;
/// use std::collections::HashMap;
///
/// /// A stand-in that writes the flags it sees.
/// #[derive(Debug)]
/// struct Flags;
/// impl TextMapPropagator for Flags {
///     fn inject_context(&self, cx: &Context, injector: &mut dyn opentelemetry::propagation::Injector) {
///         injector.set("flags", cx.span().span_context().trace_flags().to_u8().to_string());
///     }
///     fn extract_with_context(&self, cx: &Context, _: &dyn opentelemetry::propagation::Extractor) -> Context {
///         cx.clone()
///     }
///     fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
///         opentelemetry::propagation::text_map_propagator::FieldIter::new(&[])
///     }
/// }
///
/// let sc = SpanContext::new(TraceId::from(1u128), SpanId::from(1u64), TraceFlags::new(0x03), true, TraceState::NONE);
/// let cx = Context::new().with_remote_span_context(sc);
/// let mut out = HashMap::new();
/// SampledFlagOnly::new(Flags).inject_context(&cx, &mut out);
/// assert_eq!(out["flags"], "1");
/// ```
#[derive(Debug, Clone)]
pub struct SampledFlagOnly<P>(P);

impl<P> SampledFlagOnly<P> {
    /// Wraps `inner`.
    pub fn new(inner: P) -> Self {
        SampledFlagOnly(inner)
    }
}

/// `sc` with every flag but the sampled one cleared.
fn sampled_only(sc: &opentelemetry::trace::SpanContext) -> opentelemetry::trace::SpanContext {
    opentelemetry::trace::SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED,
        sc.is_remote(),
        sc.trace_state().clone(),
    )
}

impl<P: TextMapPropagator> TextMapPropagator for SampledFlagOnly<P> {
    fn inject_context(
        &self,
        cx: &Context,
        injector: &mut dyn opentelemetry::propagation::Injector,
    ) {
        use opentelemetry::trace::TraceContextExt;
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() && sc.trace_flags().to_u8() & !0x01 != 0 {
            let masked = cx.with_remote_span_context(sampled_only(sc));
            self.0.inject_context(&masked, injector);
        } else {
            self.0.inject_context(cx, injector);
        }
    }

    fn extract_with_context(
        &self,
        cx: &Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> Context {
        use opentelemetry::trace::TraceContextExt;
        let out = self.0.extract_with_context(cx, extractor);
        let masked = {
            let (before, after) = (cx.span(), out.span());
            let (before, after) = (before.span_context(), after.span_context());
            // Only what this propagator extracted itself is masked.
            (after.is_valid() && after != before && after.trace_flags().to_u8() & !0x01 != 0)
                .then(|| sampled_only(after))
        };
        match masked {
            Some(sc) => out.with_remote_span_context(sc),
            None => out,
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        self.0.fields()
    }
}
