//! The response body: the request ends when it does.

use crate::request::{Failure, RequestState};
use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use otel_http_conventions::short_type_name;
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The response body [`OtelService`](crate::OtelService) returns.
    ///
    /// The server span and `http.server.request.duration` end when this body
    /// yields its last frame (or fails, or is dropped unfinished), so a
    /// streamed response is timed in full. While a frame is produced the
    /// span's context is current, so work a streaming body does nests under
    /// the request.
    pub struct OtelBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<RequestState>>,
        // Set once the inner body has ended, so it is never polled again
        // (some bodies panic if they are).
        done: bool,
    }
}

impl<B> fmt::Debug for OtelBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelBody")
            .field("instrumented", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> OtelBody<B> {
    pub(crate) fn new(inner: B, mut state: Option<Box<RequestState>>) -> Self {
        if let Some(state) = state.as_mut() {
            if inner.is_end_stream() {
                // Nothing to stream: the request is over once the server
                // drops the body after writing the head.
                state.complete_on_drop();
            }
        }
        OtelBody {
            inner,
            state,
            done: false,
        }
    }
}

impl<B: Body> Body for OtelBody<B>
where
    B::Error: std::fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let Some(state) = this.state.as_mut() else {
            let frame = ready!(this.inner.poll_frame(cx));
            *this.done = frame.is_none();
            return Poll::Ready(frame);
        };
        let frame = {
            let _guard = state.cx().clone().attach();
            ready!(this.inner.as_mut().poll_frame(cx))
        };
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    state.on_data(data.remaining());
                } else if let Some(trailers) = frame.trailers_ref() {
                    state.on_trailers(trailers);
                }
                if this.inner.is_end_stream() {
                    state.finish(None);
                    *this.state = None;
                }
            }
            Some(Err(error)) => {
                state.finish(Some(Failure {
                    error_type: short_type_name::<B::Error>().into(),
                    message: Some(error.to_string()),
                }));
                *this.state = None;
            }
            None => {
                state.finish(None);
                *this.state = None;
                *this.done = true;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
