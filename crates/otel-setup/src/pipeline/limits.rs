//! Size bounds: attribute values cut to a length limit (in characters, as
//! the specification counts them), and a conservative estimate of the bytes
//! an item takes in an OTLP request, so that batches can be split below the
//! receiver's limit and queues bounded in bytes.

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;

/// Cuts `s` to at most `limit` characters, on a character boundary.
/// Returns `None` when it is already short enough.
fn cut(s: &str, limit: usize) -> Option<String> {
    // A string of at most `limit` bytes has at most `limit` characters: the
    // common case costs one comparison.
    if s.len() <= limit {
        return None;
    }
    let end = s.char_indices().nth(limit).map(|(i, _)| i)?;
    Some(s[..end].to_owned())
}

/// Applies the value length limit to one value: strings, and each string of
/// a string array. Other types are never cut (specification).
pub(crate) fn truncate_value(value: &mut Value, limit: usize) {
    match value {
        Value::String(s) => {
            if let Some(short) = cut(s.as_str(), limit) {
                *s = StringValue::from(short);
            }
        }
        Value::Array(Array::String(items)) => {
            for s in items.iter_mut() {
                if let Some(short) = cut(s.as_str(), limit) {
                    *s = StringValue::from(short);
                }
            }
        }
        _ => {}
    }
}

fn truncate_all(attrs: &mut [KeyValue], limit: usize) {
    for kv in attrs {
        truncate_value(&mut kv.value, limit);
    }
}

/// Applies the limit to every attribute of the span, its events and links,
/// and to its status description.
pub(crate) fn truncate_span(span: &mut SpanData, limit: usize) {
    truncate_all(&mut span.attributes, limit);
    for e in span.events.events.iter_mut() {
        truncate_all(&mut e.attributes, limit);
    }
    for l in span.links.links.iter_mut() {
        truncate_all(&mut l.attributes, limit);
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status {
        if let Some(short) = cut(description, limit) {
            *description = short.into();
        }
    }
}

/// Framing bytes counted per attribute: the KeyValue, AnyValue and length
/// prefixes in protobuf, and the quoted field names of OTLP/JSON.
const PER_ATTRIBUTE: usize = 48;
/// Ids, times, kind, flags, status and framing of one span, event or link,
/// with room for their JSON spelling (hex ids, decimal times in quotes).
const PER_RECORD: usize = 192;

fn value_bytes(v: &Value) -> usize {
    match v {
        // JSON escapes control characters, quotes and backslashes; counting
        // every byte twice bounds any realistic escaping.
        Value::String(s) => s.as_str().len() * 2,
        Value::Array(Array::String(items)) => items
            .iter()
            .map(|s| s.as_str().len() * 2 + 8)
            .sum::<usize>(),
        Value::Array(Array::Bool(b)) => b.len() * 8,
        Value::Array(Array::I64(i)) => i.len() * 24,
        Value::Array(Array::F64(f)) => f.len() * 32,
        _ => 32,
    }
}

pub(crate) fn attributes_bytes<'a>(attrs: impl IntoIterator<Item = &'a KeyValue>) -> usize {
    attrs
        .into_iter()
        .map(|kv| PER_ATTRIBUTE + kv.key.as_str().len() * 2 + value_bytes(&kv.value))
        .sum()
}

/// An upper bound of what the resource takes in one request.
pub(crate) fn resource_bytes(resource: &opentelemetry_sdk::Resource) -> usize {
    resource
        .iter()
        .map(|(k, v)| PER_ATTRIBUTE + k.as_str().len() * 2 + value_bytes(v))
        .sum()
}

/// An upper bound of what `span` takes in an OTLP request, protobuf or JSON.
pub(crate) fn span_bytes(span: &SpanData) -> usize {
    let mut n = PER_RECORD
        + span.name.len() * 2
        + span.instrumentation_scope.name().len()
        + span.span_context.trace_state().header().len()
        + attributes_bytes(&span.attributes);
    if let opentelemetry::trace::Status::Error { description } = &span.status {
        n += description.len() * 2;
    }
    for e in span.events.iter() {
        n += PER_RECORD + e.name.len() * 2 + attributes_bytes(&e.attributes);
    }
    for l in span.links.iter() {
        n += PER_RECORD
            + l.span_context.trace_state().header().len()
            + attributes_bytes(&l.attributes);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("abcdef", 4).as_deref(), Some("abcd"));
        assert_eq!(cut("abcd", 4), None);
        // Four characters of three bytes each stay whole at a limit of 4.
        assert_eq!(cut("€€€€", 4), None);
        assert_eq!(cut("€€€€€", 4).as_deref(), Some("€€€€"));
        assert_eq!(cut("x", 0).as_deref(), Some(""));
    }

    #[test]
    fn only_strings_are_truncated() {
        let mut v = Value::String("long value".into());
        truncate_value(&mut v, 4);
        assert_eq!(v, Value::String("long".into()));
        let mut v = Value::Array(Array::String(vec!["abcdef".into(), "ab".into()]));
        truncate_value(&mut v, 3);
        assert_eq!(
            v,
            Value::Array(Array::String(vec!["abc".into(), "ab".into()]))
        );
        let mut v = Value::I64(123_456_789);
        truncate_value(&mut v, 2);
        assert_eq!(v, Value::I64(123_456_789));
    }

    #[test]
    fn the_estimate_bounds_the_real_protobuf_and_json_encodings() {
        use opentelemetry::trace::{SpanContext, SpanKind, Status};
        use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "exception",
            std::time::SystemTime::now(),
            vec![KeyValue::new(
                "exception.message",
                "\"quoted\"\n".repeat(50),
            )],
            0,
        ));
        let span = SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: opentelemetry::trace::SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: "GET /users/{id}".into(),
            start_time: std::time::SystemTime::now(),
            end_time: std::time::SystemTime::now(),
            attributes: vec![
                KeyValue::new("user_agent.original", "x".repeat(4096)),
                KeyValue::new("http.response.status_code", 200),
            ],
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: Status::error("boom"),
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("otel-tower")
                .build(),
        };
        let estimate = span_bytes(&span);
        let proto = opentelemetry_proto::tonic::trace::v1::Span::from(span.clone());
        use prost::Message;
        assert!(
            estimate >= proto.encoded_len(),
            "{estimate} < {}",
            proto.encoded_len()
        );
        let json = serde_json::to_vec(&proto).expect("json");
        assert!(estimate >= json.len(), "{estimate} < {}", json.len());
    }
}
