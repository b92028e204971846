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
use opentelemetry::trace::{Span, SpanBuilder, SpanContext, Status, Tracer, TracerProvider};
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
    /// its SDK tracer.
    static HANDED_OVER: RefCell<Option<SdkTracer>> = const { RefCell::new(None) };
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
pub struct InstalledTracerProvider(SdkTracerProvider);

impl InstalledTracerProvider {
    /// Wraps `provider` for installing as the global provider.
    pub fn new(provider: SdkTracerProvider) -> Self {
        InstalledTracerProvider(provider)
    }
}

impl TracerProvider for InstalledTracerProvider {
    type Tracer = SdkTracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> SdkTracer {
        let tracer = self.0.tracer_with_scope(scope);
        if WANTED.get() {
            HANDED_OVER.set(Some(tracer.clone()));
        }
        tracer
    }
}

/// A tracer for `scope` from the global provider: the SDK's own if the
/// global provider is an [`InstalledTracerProvider`], else through the API.
pub(crate) fn global_tracer(scope: InstrumentationScope) -> HttpTracer {
    provider_tracer(&global::tracer_provider(), scope)
}

/// A tracer for `scope` from `provider`: the SDK's own if `provider` is (or
/// forwards to) an [`InstalledTracerProvider`], else through the API.
pub(crate) fn provider_tracer<P>(provider: &P, scope: InstrumentationScope) -> HttpTracer
where
    P: ObjectSafeTracerProvider + ?Sized,
{
    HANDED_OVER.set(None);
    WANTED.set(true);
    let boxed = provider.boxed_tracer(scope);
    WANTED.set(false);
    match HANDED_OVER.take() {
        Some(sdk) => HttpTracer::Sdk(sdk),
        None => HttpTracer::Boxed(BoxedTracer::new(boxed)),
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
