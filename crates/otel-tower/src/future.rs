//! The response future: the handler runs with the span's context current.

use crate::body::OtelBody;
use crate::config::ResponseHead;
use crate::request::{Failure, RequestState};
use http::Response;
use otel_http_conventions::short_type_name;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The future [`OtelService`](crate::OtelService) returns.
    ///
    /// Dropping it before it completes (the client went away) ends the span
    /// with `error.type = cancelled`; a panic in the handler ends it with
    /// `error.type = panic`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Box<RequestState>>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: Option<Box<RequestState>>) -> Self {
        ResponseFuture { inner, state }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("instrumented", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: fmt::Display,
{
    type Output = Result<Response<OtelBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.state.as_ref() {
            Some(state) => {
                let _guard = state.cx().clone().attach();
                ready!(this.inner.poll(cx))
            }
            None => ready!(this.inner.poll(cx)),
        };
        let mut state = this.state.take();
        match result {
            Ok(response) => {
                if let Some(state) = state.as_mut() {
                    state.on_response(&ResponseHead {
                        status: response.status(),
                        version: response.version(),
                        headers: response.headers(),
                        extensions: response.extensions(),
                    });
                }
                Poll::Ready(Ok(response.map(|body| OtelBody::new(body, state))))
            }
            Err(error) => {
                if let Some(mut state) = state {
                    state.finish(Some(Failure {
                        error_type: short_type_name::<E>().into(),
                        message: Some(error.to_string()),
                    }));
                }
                Poll::Ready(Err(error))
            }
        }
    }
}
