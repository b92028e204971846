//! The tracer an instrumentation starts its spans with.
//!
//! Through the API's `BoxedTracer`, every span is boxed once by the tracer
//! and again when its context is made, and every attribute set on it
//! crosses two dynamic calls. When the global tracer provider is an SDK
//! provider installed through [`InstalledTracerProvider`] (otel-setup
//! installs it that way), an instrumentation takes the SDK's tracer itself
//! and skips that layer. Any other provider is used through the API, as
//! before.

use opentelemetry::global::{self, BoxedSpan, BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::trace::{
    Span, SpanBuilder, SpanContext, Status, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::time::SystemTime;

thread_local! {
    /// Set while [`global_tracer`] asks the global provider for a tracer.
    static WANTED: Cell<bool> = const { Cell::new(false) };
    /// Where an [`InstalledTracerProvider`] asked by [`global_tracer`] leaves
    /// its SDK tracer, and whether its trace ids are random.
    static HANDED_OVER: RefCell<Option<(SdkTracer, bool)>> = const { RefCell::new(None) };
}

/// An SDK tracer provider, to install as the global one in place of the
/// provider itself (or to give an instrumentation in code): everything that
/// uses it works as before, and otel-web's instrumentations built with it,
/// or while it is the global one, start their spans with the SDK's tracer
/// directly (fewer allocations and dynamic calls per span). Installing
/// another global provider afterwards turns this off for instrumentations
/// built after that, as the global provider is read when an
/// instrumentation is built.
///
/// The hand-over happens whenever an instrumentation asks a provider for a
/// tracer and this one answers, so a provider of your own that forwards to
/// an `InstalledTracerProvider` is skipped: wrap only a provider whose
/// tracers you do not change.
///
/// ```
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use otel_http_conventions::InstalledTracerProvider;
///
/// let provider = SdkTracerProvider::builder().build();
/// opentelemetry::global::set_tracer_provider(InstalledTracerProvider::new(provider.clone()));
/// # let _ = provider.shutdown();
/// ```
#[derive(Clone, Debug)]
pub struct InstalledTracerProvider {
    provider: SdkTracerProvider,
    random_ids: bool,
}

impl InstalledTracerProvider {
    /// Wraps `provider` for installing as the global provider.
    pub fn new(provider: SdkTracerProvider) -> Self {
        let random_ids = random_ids_of(&provider).unwrap_or(true);
        InstalledTracerProvider {
            provider,
            random_ids,
        }
    }

    /// Whether the provider's trace ids are random (its id generator is the
    /// SDK's `RandomIdGenerator`, the default): new traces then carry the
    /// random flag.
    ///
    /// ```
    /// use opentelemetry_sdk::trace::{IdGenerator, SdkTracerProvider};
    /// use otel_http_conventions::InstalledTracerProvider;
    ///
    /// assert!(InstalledTracerProvider::new(SdkTracerProvider::builder().build()).random_trace_ids());
    ///
    /// #[derive(Debug)]
    /// struct Sequential;
    /// impl IdGenerator for Sequential {
    ///     fn new_trace_id(&self) -> opentelemetry::trace::TraceId { 1u128.into() }
    ///     fn new_span_id(&self) -> opentelemetry::trace::SpanId { 1u64.into() }
    /// }
    /// let custom = SdkTracerProvider::builder().with_id_generator(Sequential).build();
    /// assert!(!InstalledTracerProvider::new(custom).random_trace_ids());
    /// ```
    pub fn random_trace_ids(&self) -> bool {
        self.random_ids
    }
}

impl TracerProvider for InstalledTracerProvider {
    type Tracer = SdkTracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> SdkTracer {
        let tracer = self.provider.tracer_with_scope(scope);
        if WANTED.get() {
            HANDED_OVER.set(Some((tracer.clone(), self.random_ids)));
        }
        tracer
    }
}

/// Whether a provider's trace ids are random, when its description says:
/// the SDK keeps its id generator to itself, but its `Debug` names it. Only
/// the SDK's own `RandomIdGenerator` promises random ids (Trace Context
/// Level 2's random flag); any other is not trusted to. `None` for a
/// provider that does not describe an id generator.
pub(crate) fn random_ids_of<P: fmt::Debug + ?Sized>(provider: &P) -> Option<bool> {
    let text = format!("{provider:?}");
    let at = text.find("id_generator: ")?;
    Some(text[at..].starts_with("id_generator: RandomIdGenerator"))
}

/// A tracer for `scope` from the global provider: the SDK's own if the
/// global provider is an [`InstalledTracerProvider`], else through the API.
/// With it, whether its trace ids are known to be random (`None`: unknown).
pub(crate) fn global_tracer(scope: InstrumentationScope) -> (HttpTracer, Option<bool>) {
    provider_tracer(&global::tracer_provider(), scope)
}

/// A tracer for `scope` from `provider`: the SDK's own if `provider` is (or
/// forwards to) an [`InstalledTracerProvider`], else through the API; and
/// whether its trace ids are known to be random.
pub(crate) fn provider_tracer<P>(
    provider: &P,
    scope: InstrumentationScope,
) -> (HttpTracer, Option<bool>)
where
    P: ObjectSafeTracerProvider + ?Sized,
{
    HANDED_OVER.set(None);
    WANTED.set(true);
    let boxed = provider.boxed_tracer(scope);
    WANTED.set(false);
    match HANDED_OVER.take() {
        Some((sdk, random)) => (HttpTracer::Sdk(sdk), Some(random)),
        None => (HttpTracer::Boxed(BoxedTracer::new(boxed)), None),
    }
}

/// The tracer of an instrumentation: the SDK's, or any through the API.
///
/// ```
/// use opentelemetry::trace::{Span, SpanBuilder, Tracer};
/// use otel_http_conventions::{scope, CommonOptions, Side};
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let mut options = CommonOptions::default();
/// options.set_tracer_provider(&provider, scope("doc", "0"));
/// let tracer = options.resolve(Side::Server, scope("doc", "0")).tracer;
/// // A provider given in code goes through the API.
/// assert!(!tracer.is_sdk());
/// let mut span = tracer.build_with_context(SpanBuilder::from_name("GET /"), &Default::default());
/// assert!(span.is_recording());
/// span.end();
/// ```
pub enum HttpTracer {
    /// The SDK's tracer, from an [`InstalledTracerProvider`].
    Sdk(SdkTracer),
    /// Any other provider's tracer.
    Boxed(BoxedTracer),
}

impl fmt::Debug for HttpTracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpTracer::Sdk(t) => f.debug_tuple("Sdk").field(t).finish(),
            HttpTracer::Boxed(_) => f.write_str("Boxed"),
        }
    }
}

impl HttpTracer {
    /// Whether spans come from the SDK's tracer directly.
    pub fn is_sdk(&self) -> bool {
        matches!(self, HttpTracer::Sdk(_))
    }
}

impl Tracer for HttpTracer {
    type Span = HttpSpan;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> HttpSpan {
        match self {
            HttpTracer::Sdk(t) => HttpSpan::Sdk(t.build_with_context(builder, parent_cx)),
            HttpTracer::Boxed(t) => HttpSpan::Boxed(t.build_with_context(builder, parent_cx)),
        }
    }
}

/// A span of an [`HttpTracer`].
// The SDK span is kept inline: boxing it here would add back the allocation
// this type exists to save. It moves once, into its context.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum HttpSpan {
    /// An SDK span.
    Sdk(opentelemetry_sdk::trace::Span),
    /// Any other tracer's span.
    Boxed(BoxedSpan),
}

impl HttpSpan {
    /// `parent` with this span as its span: the context to make current
    /// while the span's work runs.
    ///
    /// An SDK span that does not record (sampled out) has nothing to record
    /// and nothing to end, so only its span context is kept: the context
    /// then holds no boxed span and no lock, and reads the same to everyone
    /// (same trace, span id and flags, not recording, ending is a no-op).
    /// Any other span is kept whole.
    ///
    /// ```
    /// use opentelemetry::trace::{SpanBuilder, TraceContextExt, Tracer};
    /// use opentelemetry::Context;
    /// use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    /// use otel_http_conventions::{HttpSpan, HttpTracer};
    /// use opentelemetry::trace::TracerProvider as _;
    ///
    /// let provider = SdkTracerProvider::builder()
    ///     .with_sampler(Sampler::AlwaysOff)
    ///     .build();
    /// let tracer = HttpTracer::Sdk(provider.tracer("doc"));
    /// let span = tracer.build_with_context(SpanBuilder::from_name("GET /"), &Context::new());
    /// let id = opentelemetry::trace::Span::span_context(&span).clone();
    /// let cx = span.into_context(&Context::new());
    /// assert_eq!(cx.span().span_context(), &id);
    /// assert!(!cx.span().is_recording());
    /// ```
    pub fn into_context(self, parent: &Context) -> Context {
        match self {
            HttpSpan::Sdk(span) if !span.is_recording() => {
                parent.with_remote_span_context(span.span_context().clone())
            }
            span => parent.with_span(span),
        }
    }

    /// [`into_context`](Self::into_context) for a request's span: when the
    /// span starts a new trace (`parent` has no span) and `random_trace_ids`
    /// says the ids are random, the trace is marked with
    /// [`otel_propagation::RandomTraceId`], so every `traceparent` sent for
    /// it carries Trace Context Level 2's random flag, sampled or not.
    ///
    /// ```
    /// use opentelemetry::propagation::TextMapPropagator;
    /// use opentelemetry::trace::{SpanBuilder, Tracer, TracerProvider as _};
    /// use opentelemetry::Context;
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    /// use otel_http_conventions::HttpTracer;
    /// use std::collections::HashMap;
    ///
    /// let tracer = HttpTracer::Sdk(SdkTracerProvider::builder().build().tracer("doc"));
    /// let span = tracer.build_with_context(SpanBuilder::from_name("GET /"), &Context::new());
    /// let cx = span.into_request_context(&Context::new(), true);
    /// let mut out = HashMap::new();
    /// otel_propagation::TraceContextPropagator::new().inject_context(&cx, &mut out);
    /// assert!(out["traceparent"].ends_with("-03"), "sampled and random");
    /// ```
    pub fn into_request_context(self, parent: &Context, random_trace_ids: bool) -> Context {
        if random_trace_ids && !parent.has_active_span() {
            let trace_id = self.span_context().trace_id();
            if trace_id != opentelemetry::trace::TraceId::INVALID {
                return self
                    .into_context(&otel_propagation::with_random_trace_id(parent, trace_id));
            }
        }
        self.into_context(parent)
    }
}

/// Forwards a call to whichever span this is.
macro_rules! either {
    ($self:ident, $span:ident => $call:expr) => {
        match $self {
            HttpSpan::Sdk($span) => $call,
            HttpSpan::Boxed($span) => $call,
        }
    };
}

impl Span for HttpSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        either!(self, s => s.add_event_with_timestamp(name, timestamp, attributes))
    }

    fn span_context(&self) -> &SpanContext {
        either!(self, s => s.span_context())
    }

    fn is_recording(&self) -> bool {
        either!(self, s => s.is_recording())
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        either!(self, s => s.set_attribute(attribute))
    }

    fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        either!(self, s => s.set_attributes(attributes))
    }

    fn set_status(&mut self, status: Status) {
        either!(self, s => s.set_status(status))
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        either!(self, s => s.update_name(new_name))
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        either!(self, s => s.add_link(span_context, attributes))
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        either!(self, s => s.end_with_timestamp(timestamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, TraceContextExt};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler};

    fn sdk_tracer(sampler: Sampler, exporter: &InMemorySpanExporter) -> HttpTracer {
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(exporter.clone())
            .build();
        HttpTracer::Sdk(provider.tracer("t"))
    }

    #[test]
    fn unsampled_span_context_reads_as_the_span_did() {
        let exporter = InMemorySpanExporter::default();
        let tracer = sdk_tracer(
            Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            &exporter,
        );
        let span = tracer.build_with_context(
            SpanBuilder::from_name("GET /").with_kind(SpanKind::Server),
            &Context::new(),
        );
        let sc = span.span_context().clone();
        assert!(sc.is_valid() && !sc.is_sampled() && !sc.is_remote());
        let cx = span.into_context(&Context::new());
        let in_cx = cx.span();
        assert_eq!(in_cx.span_context(), &sc);
        assert!(!in_cx.is_recording());
        // Recording calls and the end are no-ops, as on the span itself.
        in_cx.set_attribute(KeyValue::new("k", 1));
        in_cx.end();

        // A child follows the unsampled parent: same trace, not sampled.
        let mut child = tracer.build_with_context(SpanBuilder::from_name("child"), &cx);
        assert_eq!(child.span_context().trace_id(), sc.trace_id());
        assert!(!child.is_recording());
        child.end();
        assert!(exporter.get_finished_spans().unwrap_or_default().is_empty());
    }

    #[test]
    fn recording_span_is_kept_whole_in_its_context() {
        let exporter = InMemorySpanExporter::default();
        let tracer = sdk_tracer(Sampler::AlwaysOn, &exporter);
        let span = tracer.build_with_context(SpanBuilder::from_name("GET /"), &Context::new());
        let parent_id = span.span_context().span_id();
        let cx = span.into_context(&Context::new());
        assert!(cx.span().is_recording());
        let mut child = tracer.build_with_context(SpanBuilder::from_name("child"), &cx);
        child.end();
        cx.span().set_attribute(KeyValue::new("k", 1));
        cx.span().end();
        let spans = exporter.get_finished_spans().unwrap_or_default();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].parent_span_id, parent_id);
        assert_eq!(spans[1].name, "GET /");
        assert_eq!(spans[1].attributes, vec![KeyValue::new("k", 1)]);
    }
}
