//! TLS for OTLP export (feature `tls`, on by default).

/// Whether this build can export over `https`.
pub(crate) const ENABLED: bool = cfg!(feature = "tls");
