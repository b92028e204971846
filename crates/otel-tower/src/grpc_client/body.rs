//! The response body of a client call: the call ends with its trailers.

use super::call::{CallFailure, ClientCall};
use http_body::{Body, Frame, SizeHint};
use otel_http_conventions::short_type_name;
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The response body [`GrpcClientService`](super::GrpcClientService)
    /// returns. The call's span and duration end when its trailers (the
    /// status) are read or the body ends; dropping it before then ends the
    /// call as `CANCELLED`.
    pub struct GrpcClientBody<B> {
        #[pin]
        inner: B,
        call: Option<Box<ClientCall>>,
    }
}

impl<B> GrpcClientBody<B> {
    pub(super) fn new(inner: B, call: Option<Box<ClientCall>>) -> Self {
        GrpcClientBody { inner, call }
    }
}

impl<B> fmt::Debug for GrpcClientBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientBody")
            .field("instrumented", &self.call.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for GrpcClientBody<B>
where
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        call.on_trailers(trailers);
                        call.finish(None);
                        *this.call = None;
                    }
                }
                Some(Err(error)) => {
                    call.finish(Some(CallFailure::Body(
                        short_type_name::<B::Error>().into(),
                        error.to_string(),
                    )));
                    *this.call = None;
                }
                None => {
                    call.finish(None);
                    *this.call = None;
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
