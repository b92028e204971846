//! The `Service`: where each request starts.

use crate::config::{Config, RequestHead};
use crate::future::ResponseFuture;
use crate::request::{NestedRoute, RequestState};
use http::{Request, Response};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_service::Service;

/// The service [`OtelLayer`](crate::OtelLayer) wraps around another.
#[derive(Clone)]
pub struct OtelService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for OtelService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for OtelService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: fmt::Display,
    ResB: http_body::Body,
{
    type Response = Response<crate::OtelBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        // Inside a router that an outer `OtelLayer` sees as one opaque
        // service (`nest_service`): one request, one span, the outer one's;
        // this layer only tells it the route.
        if let Some(nested) = req.extensions().get::<NestedRoute>() {
            nested.offer(req.extensions());
            return ResponseFuture::new(self.inner.call(req), None);
        }
        let head = RequestHead {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            extensions: req.extensions(),
        };
        if let Some(filter) = &self.config.filter {
            if !filter(&head) {
                return ResponseFuture::new(self.inner.call(req), None);
            }
        }
        let mut state = RequestState::start(&self.config, &head);
        if let Some(nested) = state.nested_route() {
            req.extensions_mut().insert(nested);
        }
        // A service may do work in `call` itself: let it see the span too.
        let inner = {
            let _guard = state.cx().clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(inner, Some(state))
    }
}
