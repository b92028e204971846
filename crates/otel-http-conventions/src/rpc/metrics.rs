//! `rpc.server.call.duration` and `rpc.client.call.duration`, with a cache
//! of bound handles: each distinct attribute set is bound once, and later
//! calls with the same values record without building attributes.

use super::{GrpcCode, CALL_DURATION_BUCKETS, GRPC, RPC_METHOD, RPC_STATUS_CODE, RPC_SYSTEM_NAME};
use crate::Side;
use opentelemetry::metrics::{BoundHistogram, Histogram, Meter};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as attr;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

/// How many distinct attribute sets one [`RpcMetrics`] binds; calls beyond
/// them are recorded through the unbound path (the SDK's cardinality limit
/// then applies as usual).
pub const MAX_BOUND_RPC_ATTRIBUTE_SETS: usize = 1024;

/// The attribute values of one call's duration.
///
/// ```
/// use otel_http_conventions::rpc::{GrpcCode, RpcMetricKey};
/// let key = RpcMetricKey {
///     method: "inventory.v1.Inventory/Reserve",
///     status: GrpcCode::Ok,
///     error_type: None,
///     server_address: None,
///     server_port: None,
/// };
/// // rpc.system.name, rpc.method, rpc.response.status_code
/// assert_eq!(key.attributes().len(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RpcMetricKey<'a> {
    /// `rpc.method` (`_OTHER` for a method not recognized).
    pub method: &'a str,
    /// `rpc.response.status_code`.
    pub status: GrpcCode,
    /// `error.type`, iff the call failed.
    pub error_type: Option<&'a str>,
    /// `server.address` (client side).
    pub server_address: Option<&'a str>,
    /// `server.port` (client side, with the address).
    pub server_port: Option<u16>,
}

impl RpcMetricKey<'_> {
    /// The attributes these values stand for.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut out = Vec::with_capacity(6);
        out.push(KeyValue::new(RPC_SYSTEM_NAME, GRPC));
        out.push(KeyValue::new(RPC_METHOD, self.method.to_owned()));
        out.push(KeyValue::new(RPC_STATUS_CODE, self.status.name()));
        if let Some(error_type) = self.error_type {
            out.push(KeyValue::new(attr::ERROR_TYPE, error_type.to_owned()));
        }
        if let Some(address) = self.server_address {
            out.push(KeyValue::new(attr::SERVER_ADDRESS, address.to_owned()));
            if let Some(port) = self.server_port {
                out.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
            }
        }
        out
    }
}

/// An [`RpcMetricKey`] with its strings owned: what the cache stores.
#[derive(Debug)]
struct StoredKey {
    method: Box<str>,
    status: GrpcCode,
    error_type: Option<Box<str>>,
    server_address: Option<Box<str>>,
    server_port: Option<u16>,
}

impl StoredKey {
    fn as_key(&self) -> RpcMetricKey<'_> {
        RpcMetricKey {
            method: &self.method,
            status: self.status,
            error_type: self.error_type.as_deref(),
            server_address: self.server_address.as_deref(),
            server_port: self.server_port,
        }
    }
}

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

impl hashbrown::Equivalent<StoredKey> for RpcMetricKey<'_> {
    fn equivalent(&self, key: &StoredKey) -> bool {
        *self == key.as_key()
    }
}

/// The call-duration histogram of one side.
pub struct RpcMetrics {
    duration: Histogram<f64>,
    bound: RwLock<hashbrown::HashMap<StoredKey, BoundHistogram<f64>>>,
}

impl fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcMetrics")
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl RpcMetrics {
    /// Creates `rpc.{server,client}.call.duration` (seconds, the advised
    /// buckets).
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// use otel_http_conventions::rpc::{GrpcCode, RpcMetricKey, RpcMetrics};
    /// use otel_http_conventions::Side;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::default();
    /// let metrics = RpcMetrics::new(&provider.meter("example"), Side::Server);
    /// let key = RpcMetricKey {
    ///     method: "inventory.v1.Inventory/Reserve",
    ///     status: GrpcCode::NotFound,
    ///     error_type: None,
    ///     server_address: None,
    ///     server_port: None,
    /// };
    /// metrics.record(&key, 0.002);
    /// metrics.record(&key, 0.003);
    /// assert_eq!(metrics.bound_attribute_sets(), 1);
    /// ```
    pub fn new(meter: &Meter, side: Side) -> Self {
        let (name, who) = match side {
            Side::Server => (super::RPC_SERVER_CALL_DURATION, "server"),
            Side::Client => (super::RPC_CLIENT_CALL_DURATION, "client"),
        };
        RpcMetrics {
            duration: meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(format!("Duration of RPC {who} calls."))
                .with_boundaries(CALL_DURATION_BUCKETS.to_vec())
                .build(),
            bound: RwLock::new(hashbrown::HashMap::new()),
        }
    }

    /// Records one finished call's duration, in seconds.
    pub fn record(&self, key: &RpcMetricKey<'_>, seconds: f64) {
        if let Ok(bound) = self.bound.read() {
            if let Some(h) = bound.get(key) {
                h.record(seconds);
                return;
            }
            if bound.len() >= MAX_BOUND_RPC_ATTRIBUTE_SETS {
                drop(bound);
                self.duration.record(seconds, &key.attributes());
                return;
            }
        }
        let attrs = key.attributes();
        let Ok(mut bound) = self.bound.write() else {
            self.duration.record(seconds, &attrs);
            return;
        };
        let h = bound
            .entry(StoredKey {
                method: key.method.into(),
                status: key.status,
                error_type: key.error_type.map(Box::from),
                server_address: key.server_address.map(Box::from),
                server_port: key.server_port,
            })
            .or_insert_with(|| self.duration.bind(&attrs));
        h.record(seconds);
    }

    /// How many attribute sets are bound (at most
    /// [`MAX_BOUND_RPC_ATTRIBUTE_SETS`]).
    pub fn bound_attribute_sets(&self) -> usize {
        self.bound.read().map_or(0, |b| b.len())
    }
}
