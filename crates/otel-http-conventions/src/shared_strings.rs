//! Attribute values that repeat from request to request (the server's
//! address, the caller's user agent), shared instead of copied.
//!
//! A recorded span owns its attribute strings, so each one is an allocation
//! and a copy on the request's thread and a free on the exporter's. A
//! service is addressed by a handful of host names and called by a handful
//! of clients, so each thread keeps the values it has seen recently and
//! hands out a reference-counted copy. The table is bounded: once full it
//! is emptied, so values that never repeat cost a little more than a copy,
//! and memory stays bounded whatever callers send.

use hashbrown::HashSet;
use opentelemetry::StringValue;
use std::cell::RefCell;
use std::sync::Arc;

/// How many values one thread keeps before it starts over.
pub const MAX_SHARED_STRINGS_PER_THREAD: usize = 256;
/// Longer values are copied, not kept.
pub const MAX_SHARED_STRING_LEN: usize = 256;

thread_local! {
    static RECENT: RefCell<HashSet<Arc<str>>> = RefCell::new(HashSet::new());
}

/// `value` as an attribute value, shared with earlier requests on this
/// thread that had the same value.
///
/// ```
/// let a = otel_http_conventions::shared_string("api.example.com");
/// let b = otel_http_conventions::shared_string("api.example.com");
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "api.example.com");
/// ```
pub fn shared_string(value: &str) -> StringValue {
    if value.len() > MAX_SHARED_STRING_LEN {
        return StringValue::from(value.to_owned());
    }
    RECENT.with(|recent| {
        let Ok(mut recent) = recent.try_borrow_mut() else {
            return StringValue::from(value.to_owned());
        };
        if let Some(kept) = recent.get(value) {
            return StringValue::from(Arc::clone(kept));
        }
        if recent.len() >= MAX_SHARED_STRINGS_PER_THREAD {
            recent.clear();
        }
        let kept: Arc<str> = Arc::from(value);
        recent.insert(Arc::clone(&kept));
        StringValue::from(kept)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_values_share_one_copy() {
        let a = shared_string("shared.example");
        let before = RECENT.with(|r| r.borrow().get("shared.example").map(Arc::strong_count));
        let b = shared_string("shared.example");
        let after = RECENT.with(|r| r.borrow().get("shared.example").map(Arc::strong_count));
        assert_eq!(a, b);
        assert_eq!(after, before.map(|n| n + 1));
    }

    #[test]
    fn the_table_is_bounded_and_long_values_are_copied() {
        for i in 0..MAX_SHARED_STRINGS_PER_THREAD * 3 {
            let v = format!("client-{i}");
            assert_eq!(shared_string(&v).as_str(), v);
        }
        assert!(RECENT.with(|r| r.borrow().len()) <= MAX_SHARED_STRINGS_PER_THREAD);
        let long = "x".repeat(MAX_SHARED_STRING_LEN + 1);
        assert_eq!(shared_string(&long).as_str(), long);
        assert!(RECENT.with(|r| r.borrow().get(long.as_str()).is_none()));
    }
}
