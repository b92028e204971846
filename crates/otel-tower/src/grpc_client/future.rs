//! The response future of a client call.

use super::body::GrpcClientBody;
use super::call::{CallFailure, ClientCall};
use http::Response;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The future [`GrpcClientService`](super::GrpcClientService) returns.
    ///
    /// Dropping it before the response arrives ends the span as
    /// `CANCELLED` (or `DEADLINE_EXCEEDED` past the call's deadline).
    pub struct GrpcClientFuture<F> {
        #[pin]
        inner: F,
        call: Option<Box<ClientCall>>,
    }
}

impl<F> GrpcClientFuture<F> {
    pub(super) fn new(inner: F, call: Box<ClientCall>) -> Self {
        GrpcClientFuture {
            inner,
            call: Some(call),
        }
    }
}

impl<F> fmt::Debug for GrpcClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GrpcClientFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
    E: fmt::Display,
{
    type Output = Result<Response<GrpcClientBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let mut call = this.call.take();
        match result {
            Ok(response) => {
                if let Some(c) = call.as_mut() {
                    if c.on_response(response.status(), response.headers()) {
                        // Trailers-only: the call is over now.
                        c.finish(None);
                        call = None;
                    }
                }
                Poll::Ready(Ok(response.map(|body| GrpcClientBody::new(body, call))))
            }
            Err(error) => {
                if let Some(mut c) = call {
                    c.finish(Some(CallFailure::Transport(error.to_string())));
                }
                Poll::Ready(Err(error))
            }
        }
    }
}
