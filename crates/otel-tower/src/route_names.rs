//! Span names found by the address of the route they name.
//!
//! The kept span names of `otel-http-conventions` are found by hashing and
//! comparing the method and route strings. A route here is always shared
//! (axum's `MatchedPath` and [`Route`](crate::Route) hold an `Arc<str>`
//! that every request of the route clones), so each thread also keeps the
//! names it has used by the route string's address. An entry holds a clone
//! of its route: while it is kept, that memory cannot be freed and reused
//! for another string, so an address and length found here always mean the
//! same route. The method part is a `'static` name (`GET`, ..., or `HTTP`),
//! never freed either.

use crate::request::RouteValue;
use hashbrown::HashMap;
use otel_http_conventions::{interned_span_name, SpanName};
use std::cell::RefCell;

/// How many (method, route) pairs one thread keeps by address. A full table
/// is emptied and fills again from the kept names.
const MAX_ROUTES_PER_THREAD: usize = 1024;

/// Addresses and lengths of the method name and the route string.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([usize; 4]);

// Folded into one word for the hasher to mix (the route's address tells
// most entries apart); equality compares all four.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [method, method_len, route, route_len] = self.0.map(|w| w as u64);
        state.write_u64(route ^ route_len.rotate_left(48) ^ method.rotate_left(24) ^ method_len);
    }
}

thread_local! {
    static BY_ADDRESS: RefCell<HashMap<Key, (SpanName, RouteValue)>> =
        RefCell::new(HashMap::new());
}

/// The kept span name `{method} {route}`, or `None` once no more names are
/// kept (the caller builds one then).
pub(crate) fn kept_span_name(method: &'static str, route: &RouteValue) -> Option<SpanName> {
    let target = route.as_str();
    let key = Key([
        method.as_ptr() as usize,
        method.len(),
        target.as_ptr() as usize,
        target.len(),
    ]);
    BY_ADDRESS.with(|table| {
        let Ok(mut table) = table.try_borrow_mut() else {
            return interned_span_name(method, target);
        };
        if let Some((name, _)) = table.get(&key) {
            return Some(*name);
        }
        let name = interned_span_name(method, target)?;
        if table.len() >= MAX_ROUTES_PER_THREAD {
            table.clear();
        }
        table.insert(key, (name, route.clone()));
        Some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn given(route: &str) -> RouteValue {
        RouteValue::Given(Arc::from(route))
    }

    #[test]
    fn equal_routes_at_different_addresses_get_the_same_kept_name() {
        let (a, b) = (given("/route-names/{id}"), given("/route-names/{id}"));
        assert_ne!(a.as_str().as_ptr(), b.as_str().as_ptr());
        let (na, nb) = (
            kept_span_name("GET", &a).expect("room"),
            kept_span_name("GET", &b).expect("room"),
        );
        assert_eq!(na.name, "GET /route-names/{id}");
        assert!(std::ptr::eq(na.name, nb.name));
        // Found again by address.
        let again = kept_span_name("GET", &a).expect("kept");
        assert!(std::ptr::eq(na.name, again.name));
        // The method is part of the key.
        let post = kept_span_name("POST", &a).expect("room");
        assert_eq!(post.name, "POST /route-names/{id}");
    }

    #[test]
    fn a_kept_route_outlives_its_request_and_the_table_is_bounded() {
        let first = given("/route-names/kept");
        let address = first.as_str().as_ptr() as usize;
        let name = kept_span_name("PUT", &first).expect("room");
        drop(first);
        // The table's clone keeps the string where it was.
        let held = BY_ADDRESS.with(|t| {
            t.borrow().values().any(|(n, r)| {
                std::ptr::eq(n.name, name.name) && r.as_str().as_ptr() as usize == address
            })
        });
        assert!(held);
        // Each a new string, so each a new address (the kept names stay
        // few: the process keeps a bounded number of them).
        for _ in 0..MAX_ROUTES_PER_THREAD * 2 {
            let route = given("/route-names/fill");
            let name = kept_span_name("GET", &route).expect("kept");
            assert_eq!(name.name, "GET /route-names/fill");
        }
        assert!(BY_ADDRESS.with(|t| t.borrow().len()) <= MAX_ROUTES_PER_THREAD);
    }
}
