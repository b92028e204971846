//! One gRPC call by the RPC semantic conventions: a SERVER span named by
//! `rpc.method`, the status from `grpc-status` (trailers, or the headers of
//! a trailers-only response), and `rpc.server.call.duration`.

use super::{caller_context, peer_address, Failure, ERROR_TYPE_CANCELLED};
use crate::config::{Config, RequestHead, ResponseHead};
use http::{HeaderMap, StatusCode};
use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue};
use otel_http_conventions::rpc::{self, GrpcCode, RpcMetricKey};
use otel_http_conventions::semconv::attribute as attr;
use otel_http_conventions::{server_host_port, shared_string, Side, OTHER_METHOD};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Whether the method of a call is one the server serves. The conventions
/// want `_OTHER` for any other, so that no caller can make up span names or
/// metric series.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Recognition {
    /// Its service is not among those the layer was told of, or the path
    /// is no gRPC method at all.
    Unknown,
    /// The response decides (see [`GrpcState::recognized`]): a known
    /// service can still be sent a method it lacks.
    Undecided,
}

pub(crate) struct GrpcState {
    config: Arc<Config>,
    /// The server span's context: current while the handler runs.
    pub(super) cx: Context,
    recording: bool,
    start: Instant,
    start_time: SystemTime,
    /// The method as the path names it (`inventory.v1.Inventory/Reserve`),
    /// or the whole path when it names none: a `'static` string once the
    /// method is confirmed (see [`ConfirmedMethods`]), shared otherwise.
    method: StringValue,
    /// The method was confirmed by an earlier call.
    confirmed: bool,
    recognition: Recognition,
    /// When the caller's `grpc-timeout` runs out, as the server judges it.
    deadline: Option<Instant>,
    http_status: Option<StatusCode>,
    /// The response is gRPC (by its content-type).
    grpc_response: bool,
    /// The status came in the response headers, with no message before it.
    trailers_only: bool,
    status: Option<(GrpcCode, Option<String>)>,
    /// The response has no body left: dropping it completes the call.
    pub(super) complete_on_drop: bool,
    finished: bool,
}

impl GrpcState {
    /// Starts the call's span.
    pub(super) fn start(config: &Arc<Config>, head: &RequestHead<'_>) -> Self {
        let start = Instant::now();
        let start_time = SystemTime::now();
        let path = head.uri.path();
        let method = rpc::method_from_path(path);
        let recognition = match (method, &config.grpc_services) {
            (None, _) => Recognition::Unknown,
            (Some(m), Some(services)) => {
                let service = m.split_once('/').map_or(m, |(service, _)| service);
                if services.contains(service) {
                    Recognition::Undecided
                } else {
                    Recognition::Unknown
                }
            }
            (Some(_), None) => Recognition::Undecided,
        };
        // A method served before is found as a `'static` string: no copy
        // of it is made for the span name or the attributes.
        let confirmed = match (recognition, method) {
            (Recognition::Undecided, Some(m)) => config.confirmed_methods.get(m),
            _ => None,
        };
        let method = match confirmed {
            Some(m) => StringValue::from(m),
            None => StringValue::from(Arc::<str>::from(method.unwrap_or(path))),
        };
        let (parent, links) = caller_context(config, head);

        // The sampler sees the method as its name when it may be real; an
        // undecided method is renamed at the end if it was not.
        let name: Cow<'static, str> = match (recognition, confirmed) {
            (Recognition::Unknown, _) => Cow::Borrowed(rpc::GRPC),
            (_, Some(m)) => Cow::Borrowed(m),
            (_, None) => Cow::Owned(method.as_str().to_owned()),
        };
        let mut attrs = Vec::with_capacity(8);
        attrs.push(KeyValue::new(rpc::RPC_SYSTEM_NAME, rpc::GRPC));
        match (recognition, confirmed) {
            (Recognition::Unknown, _) => {
                attrs.push(KeyValue::new(rpc::RPC_METHOD, OTHER_METHOD));
                attrs.push(KeyValue::new(rpc::RPC_METHOD_ORIGINAL, method.clone()));
            }
            // Known to be served: the sampler sees it too.
            (Recognition::Undecided, Some(_)) => {
                attrs.push(KeyValue::new(rpc::RPC_METHOD, method.clone()));
            }
            // Set at the end, once known: a span keeps every value set.
            (Recognition::Undecided, None) => {}
        }
        if config.common.sampling_attributes {
            push_connection_attributes(head, |kv| attrs.push(kv));
        }
        let mut builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_start_time(start_time)
            .with_attributes(attrs);
        builder.links = links;
        let mut span = config.common.tracer.build_with_context(builder, &parent);

        use opentelemetry::trace::Span as _;
        let recording = span.is_recording();
        if recording && !config.common.sampling_attributes {
            push_connection_attributes(head, |kv| span.set_attribute(kv));
        }
        if let Some(captured) = recording
            .then(|| config.grpc_request_metadata.captured(head.headers))
            .flatten()
        {
            span.set_attributes(captured);
        }
        let cx = span.into_request_context(&parent, config.common.random_trace_ids);
        if recording {
            if let Some(hook) = &config.request_hook {
                hook(&cx.span(), head);
            }
        }
        GrpcState {
            config: Arc::clone(config),
            cx,
            recording,
            start,
            start_time,
            method,
            confirmed: confirmed.is_some(),
            recognition,
            deadline: rpc::server_deadline(head.headers, start),
            http_status: None,
            grpc_response: false,
            trailers_only: false,
            status: None,
            complete_on_drop: false,
            finished: false,
        }
    }

    /// Reads the response head: a trailers-only response carries the
    /// status here.
    pub(super) fn on_response(&mut self, head: &ResponseHead<'_>) {
        self.http_status = Some(head.status);
        // Only an unconfirmed method needs to know (see `recognized`).
        if !self.confirmed {
            self.grpc_response = rpc::is_grpc(head.headers);
        }
        if let Some(status) = rpc::status_from_headers(head.headers) {
            self.status = Some(status);
            self.trailers_only = true;
        }
        if self.recording {
            self.capture_response_metadata(head.headers);
            if let Some(hook) = &self.config.response_hook {
                hook(&self.cx.span(), head);
            }
        }
    }

    /// Records the allowed response metadata, which gRPC sends in the
    /// headers and in the trailers.
    fn capture_response_metadata(&self, headers: &HeaderMap) {
        if let Some(captured) = self.config.grpc_response_metadata.captured(headers) {
            self.cx.span().set_attributes(captured);
        }
    }

    /// Reads the trailers, where a call that sent messages has its status.
    pub(super) fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let Some(status) = rpc::status_from_headers(trailers) {
            self.status = Some(status);
        }
        if self.recording {
            self.capture_response_metadata(trailers);
        }
    }

    /// Whether the method is one the server serves. The layer believes a
    /// method of a service it serves (any, when not told of services) that
    /// a gRPC response answered, unless the answer is the one tonic gives a
    /// path it has no route for (a trailers-only `UNIMPLEMENTED` with no
    /// message); such methods are remembered (a bounded set), and later
    /// calls of them are believed from the start, even one that ends
    /// before any answer.
    ///
    /// [`ConfirmedMethods`]: crate::config::ConfirmedMethods
    fn recognized(&self, code: GrpcCode, message: Option<&str>) -> bool {
        match self.recognition {
            Recognition::Unknown => false,
            // Served before: named so from the start.
            Recognition::Undecided if self.confirmed => true,
            Recognition::Undecided if !self.grpc_response => false,
            Recognition::Undecided => {
                let unrouted =
                    code == GrpcCode::Unimplemented && self.trailers_only && message.is_none();
                if !unrouted {
                    self.config.confirmed_methods.confirm(self.method.as_str());
                }
                !unrouted
            }
        }
    }

    /// Ends the span and records the duration. `failure` is set when the
    /// call failed before it had a status (the handler's error, a panic, a
    /// body error, or the call given up).
    pub(super) fn finish(&mut self, failure: Option<Failure>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let elapsed = self.start.elapsed();
        let deadline_passed = self.deadline.is_some_and(|d| Instant::now() >= d);
        let (code, message, failure) = match (failure, self.status.take()) {
            // Given up: the caller went away, or its deadline passed.
            (Some(f), _) if f.error_type == ERROR_TYPE_CANCELLED => {
                (GrpcCode::of_abandoned_call(deadline_passed), None, None)
            }
            // Failed with no status of the application's: the server made
            // one up.
            (Some(f), _) => (GrpcCode::Unknown, None, Some(f)),
            (None, Some((code, message))) => (code, message, None),
            // Ended with no `grpc-status` at all (an HTTP answer to a gRPC
            // request): the status a client would make of it.
            (None, None) => (
                self.http_status
                    .filter(|s| *s != StatusCode::OK)
                    .map_or(GrpcCode::Unknown, |s| {
                        GrpcCode::from_http_status(s.as_u16())
                    }),
                None,
                None,
            ),
        };
        let error_type: Option<Cow<'static, str>> = match &failure {
            Some(f) => Some(f.error_type.clone()),
            None => code
                .is_error(Side::Server)
                .then_some(Cow::Borrowed(code.name())),
        };
        let recognized = self.recognized(code, message.as_deref());

        if self.recording {
            let span = self.cx.span();
            if self.recognition == Recognition::Undecided && !self.confirmed {
                if recognized {
                    span.set_attribute(KeyValue::new(rpc::RPC_METHOD, self.method.clone()));
                } else {
                    span.update_name(rpc::GRPC);
                    span.set_attribute(KeyValue::new(rpc::RPC_METHOD, OTHER_METHOD));
                    span.set_attribute(KeyValue::new(
                        rpc::RPC_METHOD_ORIGINAL,
                        self.method.clone(),
                    ));
                }
            }
            span.set_attribute(KeyValue::new(rpc::RPC_STATUS_CODE, code.name()));
            if let Some(f) = &failure {
                f.record(&span, &self.config);
            }
            if let Some(error_type) = &error_type {
                // The status message describes the error; the code is in
                // its own attribute.
                self.config
                    .common
                    .set_error(&span, error_type.clone(), message.as_deref());
            }
        }
        let key = RpcMetricKey {
            method: if recognized {
                self.method.as_str()
            } else {
                OTHER_METHOD
            },
            status: code,
            error_type: error_type.as_deref(),
            server_address: None,
            server_port: None,
        };
        self.config
            .rpc_metrics()
            .record(&key, elapsed.as_secs_f64());
        // Ended last, so that whoever sees the exported span also sees the
        // call's duration recorded.
        if self.recording {
            self.cx.span().end_with_timestamp(self.start_time + elapsed);
        }
    }
}

impl Drop for GrpcState {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(super::failure_on_drop(self.complete_on_drop));
        }
    }
}

/// `server.address` / `server.port` from `:authority` (or `Host`), and the
/// peer's address: built only for recorded calls (or for the sampler, when
/// asked).
fn push_connection_attributes(head: &RequestHead<'_>, mut out: impl FnMut(KeyValue)) {
    let scheme = head
        .uri
        .scheme_str()
        .and_then(otel_http_conventions::http_scheme)
        .unwrap_or("http");
    if let Some(hp) = server_host_port(head.headers, head.uri, scheme, false) {
        out(KeyValue::new(attr::SERVER_ADDRESS, shared_string(hp.host)));
        if let Some(port) = hp.port {
            out(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
        }
    }
    if let Some(peer) = peer_address(head.extensions) {
        out(KeyValue::new(
            attr::NETWORK_PEER_ADDRESS,
            peer.ip().to_string(),
        ));
        out(KeyValue::new(
            attr::NETWORK_PEER_PORT,
            i64::from(peer.port()),
        ));
    }
}
