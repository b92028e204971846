//! One HTTP request by the HTTP semantic conventions: its span, its metric
//! attributes, and how it ends.

use super::route::{matched_route, NestedRoute, NestedSlot, RouteValue};
use super::{caller_context, peer_address, Failure};
use crate::config::{Config, Forwarding, RequestHead, ResponseHead};
use http::{HeaderMap, Method, StatusCode};
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue};
use otel_http_conventions::semconv::attribute as attr;
use otel_http_conventions::{
    forwarded_client_address, forwarded_scheme, has_forwarding_headers, protocol_version,
    server_host_port, server_status_is_error, shared_string, status_code_static, status_code_str,
    trusted_client_address, Measurement, MetricKey,
};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The attributes of `http.server.active_requests`.
fn active_attributes(method: &StringValue, scheme: &StringValue) -> [KeyValue; 2] {
    [
        KeyValue::new(attr::HTTP_REQUEST_METHOD, method.clone()),
        KeyValue::new(attr::URL_SCHEME, scheme.clone()),
    ]
}

/// Room for the attributes of a recorded server span without captured
/// headers: 13 request attributes, the status code, the error type.
const SPAN_ATTRIBUTES_CAPACITY: usize = 16;

pub(crate) struct HttpState {
    config: Arc<Config>,
    /// The server span's context: current while the handler runs.
    pub(crate) cx: Context,
    recording: bool,
    start: Instant,
    start_time: SystemTime,
    /// `http.request.method`, normalized.
    method: StringValue,
    /// `url.scheme`.
    scheme: StringValue,
    route: Option<RouteValue>,
    /// The method and the route as `'static` strings, when they are (the
    /// known methods, a kept route), and the scheme (always `http` or
    /// `https`): the metric cache then finds the request's binding by their
    /// addresses.
    static_method: Option<&'static str>,
    static_scheme: &'static str,
    static_route: Option<&'static str>,
    version: Option<&'static str>,
    status: Option<StatusCode>,
    request_body_size: Option<u64>,
    pub(crate) response_body_size: u64,
    /// A response that may have no body (HEAD, 204, 304) or whose body was
    /// already at its end: dropping it unread completes the request.
    pub(crate) complete_on_drop: bool,
    /// Set when no route was found: an inner layer may find it.
    nested: Option<Arc<NestedSlot>>,
    finished: bool,
}

impl HttpState {
    /// Starts the request's span and metrics.
    pub(super) fn start(config: &Arc<Config>, head: &RequestHead<'_>) -> Self {
        let start = Instant::now();
        let start_time = SystemTime::now();
        let method = config.common.known_methods.normalize(head.method);
        let route_value = matched_route(head.extensions);
        let route = route_value.as_ref().map(RouteValue::as_str);
        // Forwarding headers are looked for only when some are there at all:
        // most requests reach a service directly.
        let forwarding_headers = !matches!(config.forwarding, Forwarding::Ignore)
            && has_forwarding_headers(head.headers);
        // The peer's address, once looked up: only trusting proxies by
        // address needs it before the span is sampled.
        let mut peer = None;
        // Whether the forwarded scheme and host are believed.
        let forwarded = forwarding_headers
            && match &config.forwarding {
                Forwarding::All => true,
                Forwarding::Ignore => false,
                Forwarding::Trusted(proxies) => peer
                    .insert(peer_address(head.extensions))
                    .is_some_and(|p| proxies.contains(p.ip())),
            };
        // `http` or `https` only: a metric attribute no client can choose.
        let scheme: &'static str = forwarded
            .then(|| forwarded_scheme(head.headers))
            .flatten()
            .or_else(|| {
                head.uri
                    .scheme_str()
                    .and_then(otel_http_conventions::http_scheme)
            })
            .unwrap_or("http");

        let (parent, links) = caller_context(config, head);

        // The route as `'static` when its span name is kept, so that
        // `http.route` is not copied either and the metric binding is found
        // by address; kept whether or not the span is named by the user.
        let kept = match (method.static_span_name(), &route_value) {
            (Some(method), Some(route)) => crate::route_names::kept_span_name(method, route),
            _ => None,
        };
        let (name, static_route): (Cow<'static, str>, _) = match (&config.span_name, kept) {
            (Some(f), kept) => (Cow::Owned(f(head, route)), kept.map(|k| k.target)),
            (None, Some(kept)) => (Cow::Borrowed(kept.name), Some(kept.target)),
            (None, None) => method.span_name_for(route),
        };

        let method_value = method.value.clone();
        let scheme_value = StringValue::from(scheme);
        // Sized for every attribute a recorded span gets: the SDK keeps this
        // vector and pushes the rest onto it, so a small one would grow
        // (reallocate and copy) several times.
        let mut attrs = Vec::with_capacity(SPAN_ATTRIBUTES_CAPACITY);
        attrs.push(KeyValue::new(
            attr::HTTP_REQUEST_METHOD,
            method_value.clone(),
        ));
        attrs.push(KeyValue::new(attr::URL_SCHEME, scheme_value.clone()));
        let facts = RequestFacts {
            method: &method,
            route,
            static_route,
            scheme,
            forwarded,
            forwarding_headers,
            peer,
        };
        if config.common.sampling_attributes {
            push_request_attributes(config, head, facts, |kv| attrs.push(kv));
            config
                .common
                .request_headers
                .record(head.headers, &mut attrs);
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
            // Set one by one as they are made: the SDK would set a vector's
            // attributes one by one too, after one more allocation.
            push_request_attributes(config, head, facts, |kv| span.set_attribute(kv));
            if let Some(captured) = config.common.request_headers.captured(head.headers) {
                span.set_attributes(captured);
            }
        }
        let cx = span.into_request_context(&parent, config.common.random_trace_ids);
        if recording {
            if let Some(hook) = &config.request_hook {
                hook(&cx.span(), head);
            }
        }

        let request_body_size = config
            .common
            .body_size
            .then(|| content_length(head.headers))
            .flatten();
        if recording {
            if let Some(size) = request_body_size {
                cx.span()
                    .set_attribute(KeyValue::new(attr::HTTP_REQUEST_BODY_SIZE, size as i64));
            }
        }

        if let Some(active) = &config.common.metrics.active {
            active.add(1, &active_attributes(&method_value, &scheme_value));
        }
        HttpState {
            config: Arc::clone(config),
            cx,
            recording,
            start,
            start_time,
            method: method_value,
            scheme: scheme_value,
            route: route_value,
            static_method: method.static_value(),
            static_scheme: scheme,
            static_route,
            version: protocol_version(head.version),
            status: None,
            request_body_size,
            response_body_size: 0,
            complete_on_drop: *head.method == Method::HEAD,
            nested: None,
            finished: false,
        }
    }

    /// When no route was found here, a slot for an inner layer to leave
    /// the one it finds (see [`NestedRoute`]); `None` otherwise.
    pub(super) fn nested_route(&mut self) -> Option<NestedRoute> {
        if self.route.is_some() {
            return None;
        }
        let name_method = match self.method.as_str() {
            otel_http_conventions::OTHER_METHOD => "HTTP".to_owned(),
            m => m.to_owned(),
        };
        let slot = Arc::new(NestedSlot {
            route: std::sync::Mutex::new(None),
            name_method,
        });
        self.nested = Some(Arc::clone(&slot));
        Some(NestedRoute(slot))
    }

    /// Takes the route an inner layer left, naming the span by it.
    fn adopt_nested_route(&mut self) {
        let Some(slot) = self.nested.take() else {
            return;
        };
        let Some(route) = slot.route.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        if self.recording {
            let span = self.cx.span();
            if self.config.span_name.is_none() {
                span.update_name(format!("{} {}", slot.name_method, route.as_str()));
            }
            span.set_attribute(KeyValue::new(attr::HTTP_ROUTE, route.as_str().to_owned()));
        }
        self.route = Some(route);
    }

    /// Records the response head. The request ends later, with its body.
    pub(super) fn on_response(&mut self, head: &ResponseHead<'_>) {
        let status = head.status;
        self.status = Some(status);
        if matches!(
            status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::SWITCHING_PROTOCOLS
        ) {
            self.complete_on_drop = true;
        }
        if !self.recording {
            return;
        }
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(
            attr::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status.as_u16()),
        ));
        if let Some(captured) = self.config.common.response_headers.captured(head.headers) {
            span.set_attributes(captured);
        }
        if let Some(hook) = &self.config.response_hook {
            hook(&span, head);
        }
    }

    /// Ends the span and records the metrics. `failure` is set when the
    /// request failed in a way its status code (if any) does not show.
    pub(super) fn finish(&mut self, failure: Option<Failure>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.adopt_nested_route();
        let elapsed = self.start.elapsed();
        let status_error = self
            .status
            .filter(|s| server_status_is_error(s.as_u16()))
            .map(|s| s.as_u16());
        // The error type as a `'static` string, when it is one (`None`
        // inside: no error): see `static_method`.
        let static_error: Option<Option<&'static str>> = match (&failure, status_error) {
            (Some(f), _) => match f.error_type {
                Cow::Borrowed(known) => Some(Some(known)),
                Cow::Owned(_) => None,
            },
            (None, Some(code)) => status_code_static(code).map(Some),
            (None, None) => Some(None),
        };
        let error_type: Option<StringValue> = match failure {
            Some(f) => {
                if self.recording {
                    f.record(&self.cx.span(), &self.config);
                }
                Some(StringValue::from(f.error_type))
            }
            None => status_error.map(status_code_str),
        };

        if self.recording {
            let span = self.cx.span();
            if let Some(error_type) = &error_type {
                span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type.clone()));
                // The error type explains the error; no description.
                span.set_status(Status::error(""));
            }
            if self.config.common.body_size {
                span.set_attribute(KeyValue::new(
                    attr::HTTP_RESPONSE_BODY_SIZE,
                    self.response_body_size as i64,
                ));
            }
        }
        let metrics = &self.config.common.metrics;
        let key = MetricKey {
            method: self.method.as_str(),
            scheme: Some(self.scheme.as_str()),
            route: self.route.as_ref().map(RouteValue::as_str),
            status: self.status.map(|s| s.as_u16()),
            error_type: error_type.as_ref().map(StringValue::as_str),
            protocol_version: self.version,
            ..MetricKey::default()
        };
        let measurement = Measurement {
            duration: elapsed.as_secs_f64(),
            request_body_size: self.request_body_size,
            response_body_size: Some(self.response_body_size),
        };
        let static_key = || {
            let route = match (&self.route, self.static_route) {
                (None, _) => None,
                (Some(_), Some(kept)) => Some(kept),
                (Some(_), None) => return None,
            };
            Some(MetricKey {
                method: self.static_method?,
                scheme: Some(self.static_scheme),
                route,
                status: key.status,
                error_type: static_error?,
                protocol_version: self.version,
                ..MetricKey::default()
            })
        };
        match static_key() {
            Some(key) => metrics.record_static(&key, measurement),
            None => metrics.record(&key, measurement),
        }
        if let Some(active) = &metrics.active {
            active.add(-1, &active_attributes(&self.method, &self.scheme));
        }
        // Ended last, so that whoever sees the exported span also sees the
        // request's metrics recorded.
        if self.recording {
            // A span that records nothing has nothing to end.
            self.cx.span().end_with_timestamp(self.start_time + elapsed);
        }
    }
}

impl Drop for HttpState {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(super::failure_on_drop(self.complete_on_drop));
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What the start of a request has worked out, for the attributes built
/// from it.
#[derive(Clone, Copy)]
struct RequestFacts<'a> {
    method: &'a otel_http_conventions::NormalizedMethod<'a>,
    route: Option<&'a str>,
    /// `route`, when a `'static` copy of it is kept.
    static_route: Option<&'static str>,
    /// `url.scheme`, as found.
    scheme: &'a str,
    /// Whether the forwarded scheme and host are believed.
    forwarded: bool,
    /// Some `Forwarded` or `X-Forwarded-*` header is present.
    forwarding_headers: bool,
    /// The peer's address, when it has been looked up already.
    peer: Option<Option<SocketAddr>>,
}

/// The attributes built only for recorded requests (or for the sampler,
/// when asked), each handed to `out` as it is made. Captured request
/// headers are the caller's to add.
fn push_request_attributes(
    config: &Config,
    head: &RequestHead<'_>,
    facts: RequestFacts<'_>,
    mut out: impl FnMut(KeyValue),
) {
    // Looked up here, for the attributes, unless trusting proxies by
    // address needed it already: an unsampled request does not need it.
    let peer = facts.peer.unwrap_or_else(|| peer_address(head.extensions));
    // Formatted once: it is usually both the client and the peer address.
    let peer_ip = peer.map(|p| p.ip().to_string());
    out(KeyValue::new(attr::URL_PATH, head.uri.path().to_owned()));
    if let Some(query) = head.uri.query().filter(|q| !q.is_empty()) {
        out(KeyValue::new(
            attr::URL_QUERY,
            config
                .common
                .sensitive_query
                .redact_query(query)
                .into_owned(),
        ));
    }
    if let Some(original) = facts.method.original {
        out(KeyValue::new(
            attr::HTTP_REQUEST_METHOD_ORIGINAL,
            original.to_owned(),
        ));
    }
    match (facts.static_route, facts.route) {
        (Some(kept), _) => out(KeyValue::new(attr::HTTP_ROUTE, kept)),
        (None, Some(route)) => out(KeyValue::new(attr::HTTP_ROUTE, route.to_owned())),
        (None, None) => {}
    }
    if let Some(hp) = server_host_port(head.headers, head.uri, facts.scheme, facts.forwarded) {
        out(KeyValue::new(attr::SERVER_ADDRESS, shared_string(hp.host)));
        if let Some(port) = hp.port {
            out(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
        }
    }
    let from_peer = || peer_ip.clone();
    let client = match &config.forwarding {
        Forwarding::All if facts.forwarding_headers => forwarded_client_address(head.headers)
            .map(str::to_owned)
            .or_else(from_peer),
        Forwarding::All | Forwarding::Ignore => from_peer(),
        Forwarding::Trusted(proxies) => {
            peer.map(|p| trusted_client_address(head.headers, p.ip(), proxies))
        }
    };
    if let Some(client) = client {
        out(KeyValue::new(attr::CLIENT_ADDRESS, client));
    }
    if let (Some(peer), Some(ip)) = (peer, peer_ip) {
        out(KeyValue::new(attr::NETWORK_PEER_ADDRESS, ip));
        out(KeyValue::new(
            attr::NETWORK_PEER_PORT,
            i64::from(peer.port()),
        ));
    }
    if let Some(version) = protocol_version(head.version) {
        out(KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, version));
    }
    if let Some(ua) = head
        .headers
        .get(http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .filter(|v| !v.is_empty())
    {
        out(KeyValue::new(attr::USER_AGENT_ORIGINAL, shared_string(&ua)));
    }
}
