//! `InstalledTracerProvider`: an instrumentation built while it is the
//! global tracer provider starts spans with the SDK's tracer directly, and
//! those spans are exported like any other; with any other global provider
//! it goes through the API.
//!
//! One test, because it changes the process-wide tracer provider.

use opentelemetry::trace::{Span, SpanBuilder, TraceContextExt, Tracer};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use otel_http_conventions::{scope, CommonOptions, InstalledTracerProvider, Side};

fn resolved_tracer() -> otel_http_conventions::HttpTracer {
    CommonOptions::default()
        .resolve(Side::Server, scope("t", "0"))
        .tracer
}

#[test]
fn sdk_tracer_is_taken_from_the_installed_provider_only() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    global::set_tracer_provider(InstalledTracerProvider::new(provider.clone()));

    // Someone else asking the global provider first changes nothing.
    let _other = global::tracer("someone-else");
    let tracer = resolved_tracer();
    assert!(tracer.is_sdk());

    // Its spans nest and export as the API's do.
    let mut parent = tracer.build_with_context(SpanBuilder::from_name("parent"), &Context::new());
    let parent_id = parent.span_context().span_id();
    parent.set_attributes([KeyValue::new("a", 1), KeyValue::new("b", "x")]);
    let cx = Context::new().with_span(parent);
    let mut child = tracer.build_with_context(SpanBuilder::from_name("child"), &cx);
    child.end();
    cx.span().set_attribute(KeyValue::new("c", true));
    cx.span().end();
    let spans = exporter.get_finished_spans().unwrap_or_default();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].name, "child");
    assert_eq!(spans[0].parent_span_id, parent_id);
    assert_eq!(
        spans[1].attributes,
        vec![
            KeyValue::new("a", 1),
            KeyValue::new("b", "x"),
            KeyValue::new("c", true)
        ]
    );

    // Given in code: the installed wrapper hands over its tracer too, the
    // bare SDK provider goes through the API.
    let given = |provider: &dyn opentelemetry::global::ObjectSafeTracerProvider| {
        let mut options = CommonOptions::default();
        options.set_tracer_provider(provider, scope("t", "0"));
        options.resolve(Side::Server, scope("t", "0")).tracer
    };
    assert!(given(&InstalledTracerProvider::new(provider.clone())).is_sdk());
    assert!(!given(&provider).is_sdk());

    // Another global provider: through the API.
    global::set_tracer_provider(SdkTracerProvider::builder().build());
    assert!(!resolved_tracer().is_sdk());
    let _ = provider.shutdown();
}
