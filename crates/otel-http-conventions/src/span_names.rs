//! Span names `{method} {target}` made once per distinct pair.
//!
//! A span name is a `Cow<'static, str>`: anything not `'static` is a fresh
//! allocation for every request, and the route attribute beside it another.
//! Routes and URL templates are few and fixed, so each name is built once,
//! kept for the life of the process, and looked up afterwards: first in a
//! per-thread table (no lock, no atomic shared between cores), then in one
//! shared table. Both are bounded; past [`MAX_INTERNED_SPAN_NAMES`] distinct
//! names nothing more is kept and callers build names per request as before.

use hashbrown::{Equivalent, HashSet};
use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, OnceLock};

/// At most this many distinct span names are kept, process-wide. A service
/// with more routes than this names the rest per request.
pub const MAX_INTERNED_SPAN_NAMES: usize = 1024;

/// An interned name: `{method} {target}`, the space at `split`.
#[derive(Clone, Copy, Debug)]
struct Interned {
    name: &'static str,
    split: usize,
}

impl Interned {
    fn method(&self) -> &'static str {
        &self.name[..self.split]
    }
    fn target(&self) -> &'static str {
        &self.name[self.split + 1..]
    }
}

// Hashed and compared as the pair it was made from, so a lookup by pair
// (`Pair`) needs no joined string.
impl Hash for Interned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Pair(self.method(), self.target()).hash(state);
    }
}

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        self.method() == other.method() && self.target() == other.target()
    }
}

impl Eq for Interned {}

#[derive(Hash)]
struct Pair<'a>(&'a str, &'a str);

impl Equivalent<Interned> for Pair<'_> {
    fn equivalent(&self, key: &Interned) -> bool {
        self.0 == key.method() && self.1 == key.target()
    }
}

/// The names kept process-wide: filled under a lock until `bound` names
/// are kept, then frozen, and read from the frozen copy without a lock, so
/// a name that did not fit costs no lock on every request.
struct Kept {
    filling: Mutex<Option<HashSet<Interned>>>,
    frozen: OnceLock<HashSet<Interned>>,
    bound: usize,
}

impl Kept {
    const fn new(bound: usize) -> Self {
        Kept {
            filling: Mutex::new(None),
            frozen: OnceLock::new(),
            bound,
        }
    }

    /// The kept name for the pair, made and kept if there is room.
    fn get(&self, method: &str, target: &str) -> Option<Interned> {
        if let Some(frozen) = self.frozen.get() {
            return frozen.get(&Pair(method, target)).copied();
        }
        // A poisoned lock only means another thread panicked while
        // inserting; the set itself is always whole.
        let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
        let set = filling.get_or_insert_with(HashSet::new);
        if let Some(hit) = set.get(&Pair(method, target)) {
            return Some(*hit);
        }
        if set.len() >= self.bound {
            // Nothing will be added any more.
            let _ = self.frozen.set(set.clone());
            return None;
        }
        let interned = Interned {
            // Kept for the life of the process, and bounded above.
            name: Box::leak(join(method, target).into_boxed_str()),
            split: method.len(),
        };
        set.insert(interned);
        Some(interned)
    }
}

static KEPT: Kept = Kept::new(MAX_INTERNED_SPAN_NAMES);

thread_local! {
    /// The names this thread has used: a subset of [`KEPT`], so bounded
    /// by it.
    static LOCAL: RefCell<HashSet<Interned>> = RefCell::new(HashSet::new());
}

/// A span name made of a method (as the conventions name it: `GET`, or
/// `HTTP` for an unknown one) and a route or URL template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanName {
    /// `{method} {target}`.
    pub name: &'static str,
    /// The `target` part of [`name`](Self::name): the route, as `'static`.
    pub target: &'static str,
}

/// The span name `{method} {target}`, made once and kept; `None` once
/// [`MAX_INTERNED_SPAN_NAMES`] distinct names are kept (build the name
/// per request then).
///
/// ```
/// use otel_http_conventions::interned_span_name;
///
/// let a = interned_span_name("GET", "/users/{id}").expect("room for one name");
/// assert_eq!((a.name, a.target), ("GET /users/{id}", "/users/{id}"));
/// // The same pair gives the same string, not a copy.
/// let b = interned_span_name("GET", "/users/{id}").expect("kept");
/// assert!(std::ptr::eq(a.name, b.name));
/// ```
pub fn interned_span_name(method: &str, target: &str) -> Option<SpanName> {
    let found = LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        if let Some(hit) = local.get(&Pair(method, target)) {
            return Some(*hit);
        }
        let kept = KEPT.get(method, target)?;
        local.insert(kept);
        Some(kept)
    })?;
    Some(SpanName {
        name: found.name,
        target: found.target(),
    })
}

/// `{method} {target}`, built.
pub(crate) fn join(method: &str, target: &str) -> String {
    let mut name = String::with_capacity(method.len() + 1 + target.len());
    name.push_str(method);
    name.push(' ');
    name.push_str(target);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_that_join_to_the_same_string_stay_apart() {
        // "GET /a b" from ("GET", "/a b") and ("GET /a", "b") is one string
        // but two pairs; each keeps its own route.
        let one = interned_span_name("GET", "/a b").expect("room");
        let two = interned_span_name("GET /a", "b").expect("room");
        assert_eq!(one.name, two.name);
        assert_eq!((one.target, two.target), ("/a b", "b"));
    }

    #[test]
    fn shared_across_threads() {
        let here = interned_span_name("POST", "/orders/{id}").expect("room");
        let there = std::thread::spawn(|| interned_span_name("POST", "/orders/{id}"))
            .join()
            .expect("thread")
            .expect("room");
        assert!(std::ptr::eq(here.name, there.name));
    }

    #[test]
    fn stops_keeping_names_at_the_bound() {
        let kept = Kept::new(3);
        let first = kept.get("PUT", "/kept").expect("room");
        for i in 0..2 {
            assert!(kept.get("GET", &format!("/fill/{i}")).is_some());
        }
        assert!(kept.get("GET", "/one-too-many").is_none());
        assert!(kept.get("GET", "/one-too-many").is_none());
        let again = kept.get("PUT", "/kept").expect("kept");
        assert!(std::ptr::eq(first.name, again.name));
        let len = kept
            .filling
            .lock()
            .map(|s| s.as_ref().map_or(0, HashSet::len))
            .unwrap_or(0);
        assert_eq!(len, 3);
        // Once full, the kept names are read without the lock.
        assert_eq!(kept.frozen.get().map(HashSet::len), Some(3));
        let fill = kept.get("GET", "/fill/1").expect("kept before the bound");
        assert_eq!(fill.target(), "/fill/1");
    }
}
