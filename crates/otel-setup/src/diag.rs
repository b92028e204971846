//! otel-setup's own diagnostics on standard error, at `OTEL_LOG_LEVEL`.

use crate::env::LogLevel;
use crate::pipeline::Signal;
use std::collections::HashMap;
use std::error::Error;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The same export failure is described once a minute at most.
const EVERY: Duration = Duration::from_secs(60);

/// Prints what otel-setup has to say, at its level.
#[derive(Debug)]
pub(crate) struct Diag {
    level: LogLevel,
    last: Mutex<HashMap<(Signal, &'static str), Instant>>,
}

impl Diag {
    pub(crate) fn new(level: LogLevel) -> Self {
        Diag {
            level,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// Whether messages of `level` are printed.
    pub(crate) fn enabled(&self, level: LogLevel) -> bool {
        level != LogLevel::None && self.level >= level
    }

    /// Prints one line at `level`.
    pub(crate) fn print(&self, level: LogLevel, message: &dyn std::fmt::Display) {
        if self.enabled(level) {
            eprintln!("otel-setup: {message}");
        }
    }

    /// Says why an export request got no answer, once a minute per signal
    /// and kind of failure. `target` is the collector's scheme, host and
    /// port (never its path or query).
    pub(crate) fn export_error(&self, signal: Signal, target: &str, error: &(dyn Error + 'static)) {
        if !self.enabled(LogLevel::Error) {
            return;
        }
        let (kind, text) = explain(&chain(error));
        let now = Instant::now();
        {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            match last.get(&(signal, kind)) {
                Some(at) if now.duration_since(*at) < EVERY => return,
                _ => {
                    last.insert((signal, kind), now);
                }
            }
        }
        eprintln!(
            "otel-setup: OTLP export of {} to {target} failed: {text} (one such line per minute at most)",
            signal.items()
        );
    }
}

/// A kind (for rate limiting) and a sentence for an export failure's text:
/// certificate problems are said in words, with what to set.
pub(crate) fn explain(text: &str) -> (&'static str, String) {
    let lower = text.to_ascii_lowercase();
    if lower.contains("invalid peer certificate")
        || lower.contains("unknownissuer")
        || lower.contains("badsignature")
        || lower.contains("notvalidforname")
        || lower.contains("certificate expired")
    {
        (
            "untrusted",
            format!(
                "the collector's certificate was not trusted ({text}); set \
                 OTEL_EXPORTER_OTLP_CERTIFICATE to the CA that signed it"
            ),
        )
    } else if lower.contains("certificaterequired") || lower.contains("certificate required") {
        (
            "client-certificate",
            format!(
                "the collector asks for a client certificate ({text}); set \
                 OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY"
            ),
        )
    } else if lower.contains("badcertificate")
        || lower.contains("bad certificate")
        || lower.contains("unknownca")
        || lower.contains("unknown ca")
    {
        (
            "client-refused",
            format!("the collector refused the client certificate ({text})"),
        )
    } else {
        ("other", text.to_owned())
    }
}

/// An error and its sources, each once, joined by `: `, with any URL an
/// HTTP client put in its text left out.
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn Error + 'static)> = Some(error);
    while let Some(e) = next {
        let mut text = e.to_string();
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if let Some(url) = r.url() {
                text = text.replace(&format!(" for url ({})", url.as_str()), "");
                text = text.replace(url.as_str(), "the endpoint");
            }
        }
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// `scheme://host:port` of an endpoint: what a diagnostic may show of it.
pub(crate) fn target(endpoint: &str) -> String {
    match endpoint.parse::<http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("http");
            let host = uri.host().unwrap_or("");
            match uri.port_u16() {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            }
        }
        Err(_) => "the configured endpoint".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_only_scheme_host_and_port() {
        assert_eq!(
            target("https://user:secret@collector.example:4318/v1/traces?token=x"),
            "https://collector.example:4318"
        );
        assert_eq!(target("http://c/v1/logs"), "http://c");
        assert_eq!(target("not a url"), "the configured endpoint");
    }

    #[test]
    fn levels_order_from_none_to_debug() {
        let d = Diag::new(LogLevel::Warn);
        assert!(d.enabled(LogLevel::Error));
        assert!(d.enabled(LogLevel::Warn));
        assert!(!d.enabled(LogLevel::Info));
        assert!(!Diag::new(LogLevel::None).enabled(LogLevel::Error));
        assert!(!Diag::new(LogLevel::Debug).enabled(LogLevel::None));
    }

    #[test]
    fn certificate_failures_are_named() {
        #[derive(Debug)]
        struct E(&'static str);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl Error for E {}
        let (kind, text) = explain(&chain(&E("invalid peer certificate: UnknownIssuer")));
        assert_eq!(kind, "untrusted");
        assert!(text.contains("not trusted"), "{text}");
        assert_eq!(explain(&chain(&E("connection refused"))).0, "other");
    }
}
