//! The route a request matched, and its handover between nested layers.

use std::sync::Arc;

/// The route template of a request, held without copying it. A clone
/// shares the string (both kinds hold an `Arc<str>`).
#[derive(Clone)]
pub(crate) enum RouteValue {
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    Given(Arc<str>),
}

impl RouteValue {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            #[cfg(feature = "axum")]
            RouteValue::Matched(path) => path.as_str(),
            RouteValue::Given(route) => route,
        }
    }
}

/// Where an `OtelLayer` on an inner router (one mounted with
/// `Router::nest_service`, opaque to the layer outside it) leaves the route
/// it matched, for the outer layer's span: put in the request's extensions
/// by the outer layer when it found no route itself.
#[derive(Clone)]
pub(crate) struct NestedRoute(pub(crate) Arc<NestedSlot>);

pub(crate) struct NestedSlot {
    pub(super) route: std::sync::Mutex<Option<RouteValue>>,
    /// The method as span names start with it.
    pub(super) name_method: String,
}

impl NestedRoute {
    /// Hands over the route an inner layer found, if any (the deepest
    /// layer's, which axum has joined to the outer prefixes, wins).
    pub(crate) fn offer(&self, extensions: &http::Extensions) {
        if let Some(route) = matched_route(extensions) {
            if let Ok(mut slot) = self.0.route.lock() {
                *slot = Some(route);
            }
        }
    }
}

/// The route template of the request, from axum's `MatchedPath` or a
/// [`Route`](crate::Route) extension.
pub(super) fn matched_route(extensions: &http::Extensions) -> Option<RouteValue> {
    #[cfg(feature = "axum")]
    if let Some(path) = extensions.get::<axum::extract::MatchedPath>() {
        return Some(RouteValue::Matched(path.clone()));
    }
    extensions
        .get::<crate::Route>()
        .map(|r| RouteValue::Given(Arc::clone(&r.0)))
}
