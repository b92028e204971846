//! The HTTP metric instruments, and the cache that makes recording them
//! cheap: each distinct set of attribute values is bound to the instruments
//! once, and later requests with the same values record through the bound
//! handle, without building or hashing attributes again.

use crate::{Side, DURATION_BUCKETS};
use opentelemetry::metrics::{BoundHistogram, Histogram, Meter, UpDownCounter};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as attr;
use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Bucket boundaries for body sizes, which the conventions leave open:
/// 0 B, then 64 B to 1 GiB in powers of four.
pub const BODY_SIZE_BUCKETS: [f64; 14] = [
    0.0,
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262144.0,
    1048576.0,
    4194304.0,
    16777216.0,
    67108864.0,
    268435456.0,
    1073741824.0,
];

/// How many distinct attribute sets one [`HttpMetrics`] binds. Requests whose
/// set is not among them are still recorded, through the unbound (slower)
/// path: the SDK's own cardinality limit then applies as usual.
pub const MAX_BOUND_ATTRIBUTE_SETS: usize = 1024;

/// The attribute values of one request's metrics. Fields a side does not
/// use stay `None`; [`attributes`](Self::attributes) turns the rest into the
/// conventions' attributes.
///
/// ```
/// use otel_http_conventions::MetricKey;
/// let key = MetricKey {
///     method: "GET",
///     scheme: Some("http"),
///     route: Some("/users/{id}"),
///     status: Some(200),
///     protocol_version: Some("1.1"),
///     ..MetricKey::default()
/// };
/// assert_eq!(key.attributes().len(), 5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MetricKey<'a> {
    /// `http.request.method`, normalized (`_OTHER` for unknown methods).
    pub method: &'a str,
    /// `url.scheme`.
    pub scheme: Option<&'a str>,
    /// `server.address`.
    pub server_address: Option<&'a str>,
    /// `server.port`.
    pub server_port: Option<u16>,
    /// `http.route`.
    pub route: Option<&'a str>,
    /// `url.template`.
    pub url_template: Option<&'a str>,
    /// `http.response.status_code`.
    pub status: Option<u16>,
    /// `error.type`.
    pub error_type: Option<&'a str>,
    /// `network.protocol.version`.
    pub protocol_version: Option<&'a str>,
}

impl MetricKey<'_> {
    /// The attributes these values stand for.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(9);
        out.push(KeyValue::new(
            attr::HTTP_REQUEST_METHOD,
            self.method.to_owned(),
        ));
        let strings = [
            (attr::URL_SCHEME, self.scheme),
            (attr::SERVER_ADDRESS, self.server_address),
            (attr::HTTP_ROUTE, self.route),
            (attr::URL_TEMPLATE, self.url_template),
            (attr::ERROR_TYPE, self.error_type),
            (attr::NETWORK_PROTOCOL_VERSION, self.protocol_version),
        ];
        for (name, value) in strings {
            if let Some(value) = value {
                out.push(KeyValue::new(name, value.to_owned()));
            }
        }
        let numbers = [
            (attr::SERVER_PORT, self.server_port),
            (attr::HTTP_RESPONSE_STATUS_CODE, self.status),
        ];
        for (name, value) in numbers {
            if let Some(value) = value {
                out.push(KeyValue::new(name, i64::from(value)));
            }
        }
        out
    }
}

/// A [`MetricKey`] with its strings owned: what the cache stores.
#[derive(Debug)]
struct StoredKey {
    method: Box<str>,
    scheme: Option<Box<str>>,
    server_address: Option<Box<str>>,
    server_port: Option<u16>,
    route: Option<Box<str>>,
    url_template: Option<Box<str>>,
    status: Option<u16>,
    error_type: Option<Box<str>>,
    protocol_version: Option<Box<str>>,
}

impl StoredKey {
    fn new(key: &MetricKey<'_>) -> Self {
        let own = |s: Option<&str>| s.map(Box::from);
        StoredKey {
            method: key.method.into(),
            scheme: own(key.scheme),
            server_address: own(key.server_address),
            server_port: key.server_port,
            route: own(key.route),
            url_template: own(key.url_template),
            status: key.status,
            error_type: own(key.error_type),
            protocol_version: own(key.protocol_version),
        }
    }

    fn as_key(&self) -> MetricKey<'_> {
        MetricKey {
            method: &self.method,
            scheme: self.scheme.as_deref(),
            server_address: self.server_address.as_deref(),
            server_port: self.server_port,
            route: self.route.as_deref(),
            url_template: self.url_template.as_deref(),
            status: self.status,
            error_type: self.error_type.as_deref(),
            protocol_version: self.protocol_version.as_deref(),
        }
    }
}

// Hashed and compared as the borrowed key, so a `MetricKey` finds it.
impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_key().hash(state);
    }
}

impl PartialEq for StoredKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_key() == other.as_key()
    }
}

impl Eq for StoredKey {}

impl hashbrown::Equivalent<StoredKey> for MetricKey<'_> {
    fn equivalent(&self, key: &StoredKey) -> bool {
        *self == key.as_key()
    }
}

/// A [`MetricKey`] whose strings are all `'static`, held by the strings'
/// addresses and lengths: a `'static` string is never freed, so an address
/// and length always mean the same content. Equal strings at different
/// addresses make different keys, which find the same shared binding.
#[derive(Clone, Copy, PartialEq, Eq)]
struct StaticKey {
    /// The instruments' identity.
    metrics: u64,
    /// Method, scheme, server address, route, URL template, error type and
    /// protocol version, as (address, length); `None` as (0, `usize::MAX`).
    strings: [(usize, usize); 7],
    server_port: Option<u16>,
    status: Option<u16>,
}

// Hashed by the fields that tell a service's sets apart (the
// instruments, method, route and status), folded into one word for the
// hasher to mix; equality compares them all.
impl Hash for StaticKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let status = self.status.map_or(u64::MAX, u64::from);
        state.write_u64(
            self.metrics
                ^ (self.strings[0].0 as u64).rotate_left(16)
                ^ (self.strings[3].0 as u64).rotate_left(40)
                ^ status.rotate_left(56),
        );
    }
}

impl StaticKey {
    fn new(metrics: u64, key: &MetricKey<'static>) -> Self {
        let at =
            |s: Option<&'static str>| s.map_or((0, usize::MAX), |s| (s.as_ptr() as usize, s.len()));
        StaticKey {
            metrics,
            strings: [
                at(Some(key.method)),
                at(key.scheme),
                at(key.server_address),
                at(key.route),
                at(key.url_template),
                at(key.error_type),
                at(key.protocol_version),
            ],
            server_port: key.server_port,
            status: key.status,
        }
    }
}

/// How many bindings one thread's front holds, over all instruments. A full
/// front is emptied and fills again from the shared cache.
const FRONT_CAPACITY: usize = MAX_BOUND_ATTRIBUTE_SETS;

thread_local! {
    /// The bindings this thread has recorded through for keys of `'static`
    /// strings, found without the shared cache's lock and without reading
    /// the strings. Entries of instruments dropped since stay until the
    /// front is next emptied (or the thread ends): bounded, and never found
    /// again, as every instrument set has an identity of its own.
    static FRONT: RefCell<hashbrown::HashMap<StaticKey, Arc<Bound>>> =
        RefCell::new(hashbrown::HashMap::new());
}

/// Tells one [`HttpMetrics`] from every other in the process, for the
/// per-thread front.
static NEXT_METRICS_ID: AtomicU64 = AtomicU64::new(0);

/// The instruments bound to one attribute set, and the set's values.
/// Hashed and compared by the values alone, so that the shared cache is a
/// set of bindings that a [`MetricKey`] finds.
struct Bound {
    key: StoredKey,
    duration: BoundHistogram<f64>,
    request_body: Option<BoundHistogram<u64>>,
    response_body: Option<BoundHistogram<u64>>,
}

impl Hash for Bound {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Bound {}

impl hashbrown::Equivalent<Arc<Bound>> for MetricKey<'_> {
    fn equivalent(&self, bound: &Arc<Bound>) -> bool {
        hashbrown::Equivalent::equivalent(self, &bound.key)
    }
}

/// What one finished request measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Measurement {
    /// The request's duration, in seconds.
    pub duration: f64,
    /// The request body's size in bytes, when known.
    pub request_body_size: Option<u64>,
    /// The response body's size in bytes, when known.
    pub response_body_size: Option<u64>,
}

/// The HTTP metric instruments of one side.
pub struct HttpMetrics {
    /// `http.{server,client}.request.duration`, seconds.
    pub duration: Histogram<f64>,
    /// `http.{server,client}.active_requests`, when opted in.
    pub active: Option<UpDownCounter<i64>>,
    /// `http.{server,client}.request.body.size`, when opted in.
    pub request_body: Option<Histogram<u64>>,
    /// `http.{server,client}.response.body.size`, when opted in.
    pub response_body: Option<Histogram<u64>>,
    bound: RwLock<hashbrown::HashSet<Arc<Bound>>>,
    /// This instance's identity in the per-thread fronts.
    id: u64,
}

impl fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpMetrics")
            .field("duration", &self.duration)
            .field("active", &self.active)
            .field("request_body", &self.request_body)
            .field("response_body", &self.response_body)
            .finish_non_exhaustive()
    }
}

impl HttpMetrics {
    /// Creates the instruments: the duration always, the others if asked.
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// use otel_http_conventions::{HttpMetrics, Measurement, MetricKey, Side};
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::default();
    /// let metrics = HttpMetrics::new(&provider.meter("example"), Side::Server, false, false);
    /// let key = MetricKey { method: "GET", status: Some(200), ..MetricKey::default() };
    /// metrics.record(&key, Measurement { duration: 0.01, ..Measurement::default() });
    /// ```
    pub fn new(meter: &Meter, side: Side, active: bool, body_size: bool) -> Self {
        use opentelemetry_semantic_conventions::metric as m;
        let (duration, active_name, req_body, resp_body, who) = match side {
            Side::Server => (
                m::HTTP_SERVER_REQUEST_DURATION,
                m::HTTP_SERVER_ACTIVE_REQUESTS,
                m::HTTP_SERVER_REQUEST_BODY_SIZE,
                m::HTTP_SERVER_RESPONSE_BODY_SIZE,
                "server",
            ),
            Side::Client => (
                m::HTTP_CLIENT_REQUEST_DURATION,
                m::HTTP_CLIENT_ACTIVE_REQUESTS,
                m::HTTP_CLIENT_REQUEST_BODY_SIZE,
                m::HTTP_CLIENT_RESPONSE_BODY_SIZE,
                "client",
            ),
        };
        let body = |name: &'static str, what: &str| {
            meter
                .u64_histogram(name)
                .with_unit("By")
                .with_description(format!("Size of HTTP {who} {what} bodies."))
                .with_boundaries(BODY_SIZE_BUCKETS.to_vec())
                .build()
        };
        HttpMetrics {
            duration: meter
                .f64_histogram(duration)
                .with_unit("s")
                .with_description(format!("Duration of HTTP {who} requests."))
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            active: active.then(|| {
                meter
                    .i64_up_down_counter(active_name)
                    .with_unit("{request}")
                    .with_description(format!("Number of active HTTP {who} requests."))
                    .build()
            }),
            request_body: body_size.then(|| body(req_body, "request")),
            response_body: body_size.then(|| body(resp_body, "response")),
            bound: RwLock::new(hashbrown::HashSet::new()),
            id: NEXT_METRICS_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Adds `delta` to the active-requests counter, if it is on.
    pub fn active_add(&self, delta: i64, attrs: &[KeyValue]) {
        if let Some(active) = &self.active {
            active.add(delta, attrs);
        }
    }

    /// Records one finished request: its duration and, when the body-size
    /// instruments are on and the size is known, its body sizes.
    ///
    /// The first request with a given set of values binds the instruments
    /// to it (up to [`MAX_BOUND_ATTRIBUTE_SETS`] sets); every later one
    /// records through that binding, which neither builds nor hashes
    /// attributes.
    pub fn record(&self, key: &MetricKey<'_>, m: Measurement) {
        if self
            .with_binding(key, |bound| self.record_bound(bound, m))
            .is_none()
        {
            self.record_unbound(key, m);
        }
    }

    /// Like [`record`](Self::record), for a key whose strings are all
    /// `'static` (kept span routes, the known methods, the schemes, the
    /// protocol versions): each thread keeps the bindings it has used,
    /// found by the strings' addresses, so no shared lock is taken and no
    /// string is hashed or compared. Strings with equal contents at
    /// different addresses find the same binding through the shared cache,
    /// and each gets an entry of its own in the thread's front.
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// use otel_http_conventions::{HttpMetrics, Measurement, MetricKey, Side};
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::default();
    /// let metrics = HttpMetrics::new(&provider.meter("example"), Side::Server, false, false);
    /// let key = MetricKey {
    ///     method: "GET",
    ///     route: Some("/users/{id}"),
    ///     status: Some(200),
    ///     ..MetricKey::default()
    /// };
    /// let m = Measurement { duration: 0.01, ..Measurement::default() };
    /// metrics.record_static(&key, m);
    /// metrics.record(&key, m);
    /// assert_eq!(metrics.bound_attribute_sets(), 1);
    /// ```
    pub fn record_static(&self, key: &MetricKey<'static>, m: Measurement) {
        let front_key = StaticKey::new(self.id, key);
        let recorded = FRONT.with(|front| match front.try_borrow() {
            Ok(front) => match front.get(&front_key) {
                Some(bound) => {
                    self.record_bound(bound, m);
                    true
                }
                None => false,
            },
            Err(_) => false,
        });
        if recorded {
            return;
        }
        let bound = self.with_binding(key, |bound| {
            self.record_bound(bound, m);
            Arc::clone(bound)
        });
        let Some(bound) = bound else {
            self.record_unbound(key, m);
            return;
        };
        FRONT.with(|front| {
            if let Ok(mut front) = front.try_borrow_mut() {
                if front.len() >= FRONT_CAPACITY {
                    front.clear();
                }
                front.insert(front_key, bound);
            }
        });
    }

    /// Calls `f` with the shared binding of `key`, made if there is room;
    /// `None` once the cache is full without it.
    fn with_binding<R>(&self, key: &MetricKey<'_>, f: impl FnOnce(&Arc<Bound>) -> R) -> Option<R> {
        let mut full = false;
        if let Ok(bound) = self.bound.read() {
            if let Some(b) = bound.get(key) {
                return Some(f(b));
            }
            full = bound.len() >= MAX_BOUND_ATTRIBUTE_SETS;
        }
        // Once the cache is full, sets outside it never take the write lock.
        if full {
            return None;
        }
        let mut bound = self.bound.write().ok()?;
        if let Some(b) = bound.get(key) {
            return Some(f(b));
        }
        if bound.len() >= MAX_BOUND_ATTRIBUTE_SETS {
            return None;
        }
        let attrs = key.attributes();
        let b = Arc::new(Bound {
            key: StoredKey::new(key),
            duration: self.duration.bind(&attrs),
            request_body: self.request_body.as_ref().map(|h| h.bind(&attrs)),
            response_body: self.response_body.as_ref().map(|h| h.bind(&attrs)),
        });
        let out = f(&b);
        bound.insert(b);
        Some(out)
    }

    /// Records through the SDK's own attribute path: sets the cache has no
    /// room for.
    fn record_unbound(&self, key: &MetricKey<'_>, m: Measurement) {
        let attrs = key.attributes();
        self.duration.record(m.duration, &attrs);
        if let (Some(h), Some(size)) = (&self.request_body, m.request_body_size) {
            h.record(size, &attrs);
        }
        if let (Some(h), Some(size)) = (&self.response_body, m.response_body_size) {
            h.record(size, &attrs);
        }
    }

    fn record_bound(&self, b: &Bound, m: Measurement) {
        b.duration.record(m.duration);
        if let (Some(h), Some(size)) = (&b.request_body, m.request_body_size) {
            h.record(size);
        }
        if let (Some(h), Some(size)) = (&b.response_body, m.response_body_size) {
            h.record(size);
        }
    }

    /// How many attribute sets are bound (at most
    /// [`MAX_BOUND_ATTRIBUTE_SETS`]).
    pub fn bound_attribute_sets(&self) -> usize {
        self.bound.read().map_or(0, |b| b.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    fn key(status: u16) -> MetricKey<'static> {
        MetricKey {
            method: "GET",
            scheme: Some("http"),
            route: Some("/users/{id}"),
            status: Some(status),
            ..MetricKey::default()
        }
    }

    /// (attribute count, data point count, total count) of the duration.
    fn durations(exporter: &InMemoryMetricExporter) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        for rm in exporter.get_finished_metrics().unwrap_or_default() {
            for sm in rm.scope_metrics() {
                for m in sm.metrics() {
                    if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                        for dp in h.data_points() {
                            out.push((dp.attributes().count(), dp.count()));
                        }
                    }
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn bound_and_unbound_records_land_in_the_same_series() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let metrics = HttpMetrics::new(&provider.meter("t"), Side::Server, false, true);
        for _ in 0..3 {
            metrics.record(&key(200), Measurement::default());
        }
        // The same values, recorded the SDK's own way.
        metrics.duration.record(0.0, &key(200).attributes());
        metrics.record(&key(500), Measurement::default());
        assert_eq!(metrics.bound_attribute_sets(), 2);
        provider.force_flush().unwrap();
        assert_eq!(durations(&exporter), vec![(4, 1), (4, 4)]);
    }

    #[test]
    fn sets_beyond_the_bound_limit_are_still_recorded() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let metrics = HttpMetrics::new(&provider.meter("t"), Side::Server, false, false);
        let routes: Vec<String> = (0..MAX_BOUND_ATTRIBUTE_SETS + 10)
            .map(|i| format!("/r{i}"))
            .collect();
        for route in &routes {
            let key = MetricKey {
                route: Some(route),
                ..key(200)
            };
            metrics.record(&key, Measurement::default());
        }
        assert_eq!(metrics.bound_attribute_sets(), MAX_BOUND_ATTRIBUTE_SETS);
        provider.force_flush().unwrap();
        let points = durations(&exporter);
        assert_eq!(points.len(), MAX_BOUND_ATTRIBUTE_SETS + 10);
        assert!(points
            .iter()
            .all(|&(attrs, count)| attrs == 4 && count == 1));
    }

    fn metrics_with_exporter(
        body_size: bool,
    ) -> (HttpMetrics, SdkMeterProvider, InMemoryMetricExporter) {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let metrics = HttpMetrics::new(&provider.meter("t"), Side::Server, false, body_size);
        (metrics, provider, exporter)
    }

    #[test]
    fn static_records_from_every_thread_land_in_one_series() {
        let (metrics, provider, exporter) = metrics_with_exporter(false);
        let metrics = std::sync::Arc::new(metrics);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let metrics = std::sync::Arc::clone(&metrics);
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        metrics.record_static(&key(200), Measurement::default());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // The path by contents finds the same binding.
        metrics.record(&key(200), Measurement::default());
        assert_eq!(metrics.bound_attribute_sets(), 1);
        provider.force_flush().unwrap();
        assert_eq!(durations(&exporter), vec![(4, 201)]);
    }

    #[test]
    fn static_keys_tell_values_apart_and_equal_strings_apart_from_addresses() {
        let (metrics, provider, exporter) = metrics_with_exporter(false);
        // The same route at a second address: one series with the first.
        let copy: &'static str = Box::leak(String::from("/users/{id}").into_boxed_str());
        let same_route_elsewhere = MetricKey {
            route: Some(copy),
            ..key(200)
        };
        assert_ne!(
            copy.as_ptr(),
            key(200).route.map_or(std::ptr::null(), str::as_ptr)
        );
        // A prefix of the route, at the route's own address: another series.
        let prefix = MetricKey {
            route: key(200).route.map(|r| &r[..6]),
            ..key(200)
        };
        let no_scheme = MetricKey {
            scheme: None,
            ..key(200)
        };
        for _ in 0..3 {
            metrics.record_static(&key(200), Measurement::default());
            metrics.record_static(&key(500), Measurement::default());
            metrics.record_static(&same_route_elsewhere, Measurement::default());
            metrics.record_static(&prefix, Measurement::default());
            metrics.record_static(&no_scheme, Measurement::default());
        }
        assert_eq!(metrics.bound_attribute_sets(), 4);
        provider.force_flush().unwrap();
        assert_eq!(durations(&exporter), vec![(3, 3), (4, 3), (4, 3), (4, 6)]);
    }

    #[test]
    fn the_per_thread_front_is_bounded_and_tells_instruments_apart() {
        // Two instrument sets, same values: more bindings than one
        // thread's front holds, so it is emptied on the way.
        let a = metrics_with_exporter(false);
        let b = metrics_with_exporter(false);
        let routes: Vec<&'static str> = (0..FRONT_CAPACITY / 2 + 100)
            .map(|i| &*Box::leak(format!("/r{i}").into_boxed_str()))
            .collect();
        for _ in 0..2 {
            for route in &routes {
                let key = MetricKey {
                    route: Some(route),
                    ..key(200)
                };
                a.0.record_static(&key, Measurement::default());
                b.0.record_static(&key, Measurement::default());
            }
        }
        assert!(FRONT.with(|f| f.borrow().len()) <= FRONT_CAPACITY);
        for (_, provider, exporter) in [&a, &b] {
            provider.force_flush().unwrap();
            let points = durations(exporter);
            assert_eq!(points.len(), routes.len());
            assert!(points.iter().all(|&p| p == (4, 2)), "{points:?}");
        }
    }

    #[test]
    fn stored_and_borrowed_keys_hash_alike() {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let k = MetricKey {
            server_address: Some("example.com"),
            server_port: Some(443),
            error_type: Some("timeout"),
            protocol_version: Some("1.1"),
            url_template: Some("/x"),
            ..key(504)
        };
        assert_eq!(state.hash_one(k), state.hash_one(StoredKey::new(&k)));
        assert!(hashbrown::Equivalent::equivalent(&k, &StoredKey::new(&k)));
        assert!(!hashbrown::Equivalent::equivalent(
            &key(200),
            &StoredKey::new(&k)
        ));
    }
}
