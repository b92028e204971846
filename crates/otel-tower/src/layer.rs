//! The `Layer`.

use crate::config::{Config, OtelLayerBuilder};
use crate::service::OtelService;
use std::sync::Arc;
use tower_layer::Layer;

/// A tower layer that gives every HTTP request an OpenTelemetry SERVER span
/// and the HTTP server metrics. See the [crate documentation](crate).
///
/// Cheap to clone: every service it makes shares one configuration.
///
/// ```
/// use axum::{routing::get, Router};
/// use otel_tower::OtelLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "alice" }))
///     .layer(OtelLayer::new());
/// ```
#[derive(Clone, Debug)]
pub struct OtelLayer {
    pub(crate) config: Arc<Config>,
}

impl OtelLayer {
    /// A layer with the global tracer provider, meter provider and
    /// propagator, and every other option at its default.
    ///
    /// The providers are read now: build the layer after installing them.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for every other option.
    pub fn builder() -> OtelLayerBuilder {
        OtelLayerBuilder::default()
    }
}

impl Default for OtelLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for OtelLayer {
    type Service = OtelService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OtelService {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
