//! Addresses and scheme from `Forwarded`, `X-Forwarded-*`, `:authority` and
//! `Host` (semantic conventions `client.address`, `server.address`,
//! `server.port`, `url.scheme`).

use http::header::{FORWARDED, HOST};
use http::{HeaderMap, Uri};

// Header names as constants: a lookup by `&str` parses the name every time.
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// Iterates the values of one `Forwarded` parameter (`for`, `host`,
/// `proto`) across every header line and element, in order, quotes removed.
fn forwarded_params<'a>(headers: &'a HeaderMap, param: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .flat_map(|element| element.split(';'))
        .filter_map(move |pair| {
            let (name, value) = pair.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case(param) {
                return None;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            Some(value)
        })
}

/// The host part of a `for=` or `X-Forwarded-For` node: `[v6]:port` gives
/// `v6`, `ip:port` gives `ip`, a bare IPv6 address is kept whole. `None` for
/// an empty node or `unknown`.
pub fn parse_node(node: &str) -> Option<&str> {
    let node = node.trim();
    let host = if let Some(rest) = node.strip_prefix('[') {
        &rest[..rest.find(']')?]
    } else {
        match node.matches(':').count() {
            1 => &node[..node.find(':')?],
            _ => node,
        }
    };
    if host.is_empty() || host.eq_ignore_ascii_case("unknown") {
        None
    } else {
        Some(host)
    }
}

/// Whether `host` can be recorded as an address: an IP address, or a name
/// of legal length (at most 253 characters, labels of 1 to 63) made of
/// letters, digits, `-`, `_` and `.` (`_` for RFC 7239's obfuscated
/// identifiers and the service names of container networks). Anything
/// else in a `Host` or forwarding header is not believed.
///
/// ```
/// use otel_http_conventions::is_valid_host;
/// assert!(is_valid_host("api.example.com") && is_valid_host("::1") && is_valid_host("_hidden"));
/// assert!(!is_valid_host(&"9".repeat(5000)) && !is_valid_host("a b") && !is_valid_host(""));
/// ```
pub fn is_valid_host(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut label = 0usize;
    for b in name.bytes() {
        match b {
            b'.' => {
                if label == 0 {
                    return false;
                }
                label = 0;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => {
                label += 1;
                if label > 63 {
                    return false;
                }
            }
            // Only an IPv6 address has colons (or anything else).
            _ => return host.parse::<std::net::Ipv6Addr>().is_ok(),
        }
    }
    label > 0
}

/// The original client's address: the first valid `Forwarded: for=`, then the
/// left-most `X-Forwarded-For` entry. `None` when neither carries one (the
/// caller then uses the peer address).
///
/// These headers are set by whoever sent the request. Trust them only behind
/// a proxy that overwrites them.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("forwarded", r#"for="[::1]:42";proto=https"#.parse().unwrap());
/// headers.insert("x-forwarded-for", "10.0.0.1, 10.0.0.2".parse().unwrap());
/// assert_eq!(otel_http_conventions::forwarded_client_address(&headers), Some("::1"));
/// ```
pub fn forwarded_client_address(headers: &HeaderMap) -> Option<&str> {
    if let Some(addr) = forwarded_params(headers, "for").find_map(parse_node) {
        // A left-most entry that is not an address is not believed.
        return Some(addr).filter(|a| is_valid_host(a));
    }
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|line| line.split(',').next().and_then(parse_node))
        .filter(|a| is_valid_host(a))
}

/// The proxies whose `Forwarded` / `X-Forwarded-*` headers are believed,
/// as CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
///
/// ```
/// use otel_http_conventions::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "192.0.2.7"]).unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("203.0.113.1".parse().unwrap()));
/// let err = TrustedProxies::new(["10.0.0.0/33"]).unwrap_err();
/// assert!(err.contains("10.0.0.0/33"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(std::sync::Arc<[ipnet::IpNet]>);

impl TrustedProxies {
    /// Parses CIDR blocks or single addresses. The error names the entry
    /// that is neither.
    pub fn new<I, S>(cidrs: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for c in cidrs {
            let c = c.as_ref().trim();
            let net = c
                .parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    format!("{c:?} is not a CIDR block (like 10.0.0.0/8) or an IP address")
                })?;
            nets.push(net);
        }
        Ok(TrustedProxies(nets.into()))
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// `client.address` when only trusted proxies' headers count.
///
/// A peer that is not a trusted proxy is the client, whatever its headers
/// say. Otherwise the forwarding chain (`Forwarded: for=`, else
/// `X-Forwarded-For`) is read from the right, skipping trusted proxies: the
/// first address that is not one is the client, so a client cannot choose
/// what is recorded by sending its own header.
///
/// ```
/// use otel_http_conventions::{trusted_client_address, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap());
/// let via_proxy = trusted_client_address(&headers, "10.0.0.1".parse().unwrap(), &proxies);
/// assert_eq!(via_proxy, "203.0.113.9");
/// let direct = trusted_client_address(&headers, "198.51.100.4".parse().unwrap(), &proxies);
/// assert_eq!(direct, "198.51.100.4");
/// ```
pub fn trusted_client_address(
    headers: &HeaderMap,
    peer: std::net::IpAddr,
    trusted: &TrustedProxies,
) -> String {
    if !trusted.contains(peer) {
        return peer.to_string();
    }
    let mut chain: Vec<&str> = forwarded_params(headers, "for").collect();
    if chain.is_empty() {
        chain = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|line| line.split(','))
            .collect();
    }
    for entry in chain.iter().rev() {
        let Some(host) = parse_node(entry) else {
            break;
        };
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(ip) => continue,
            Ok(ip) => return ip.to_string(),
            // An obfuscated identifier (`_hidden`) set by a trusted proxy.
            Err(_) if is_valid_host(host) => return host.to_owned(),
            Err(_) => break,
        }
    }
    peer.to_string()
}

/// Whether the request carries any `Forwarded` or `X-Forwarded-*` header.
///
/// One pass over the header names, cheaper than the lookups it saves: most
/// requests reach a service directly and carry none, and then the forwarded
/// host, scheme and client need not be looked for.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("host", "example.com".parse().unwrap());
/// assert!(!otel_http_conventions::has_forwarding_headers(&headers));
/// headers.insert("x-forwarded-proto", "https".parse().unwrap());
/// assert!(otel_http_conventions::has_forwarding_headers(&headers));
/// ```
pub fn has_forwarding_headers(headers: &HeaderMap) -> bool {
    const PREFIX: &[u8] = b"x-forwarded-";
    headers.keys().any(|name| {
        *name == FORWARDED || {
            let name = name.as_str().as_bytes();
            name.len() > PREFIX.len() && name.starts_with(PREFIX)
        }
    })
}

/// `http` or `https`, whatever the case; `None` for anything else.
///
/// `url.scheme` is a metric attribute: it takes only these two values, so
/// that no header can create series.
pub fn http_scheme(scheme: &str) -> Option<&'static str> {
    if scheme.eq_ignore_ascii_case("https") {
        Some("https")
    } else if scheme.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// The scheme the client used: `Forwarded: proto=`, then
/// `X-Forwarded-Proto`, believed only when it is `http` or `https`.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-proto", "HTTPS".parse().unwrap());
/// assert_eq!(otel_http_conventions::forwarded_scheme(&headers), Some("https"));
/// headers.insert("x-forwarded-proto", "gopher".parse().unwrap());
/// assert_eq!(otel_http_conventions::forwarded_scheme(&headers), None);
/// ```
pub fn forwarded_scheme(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(proto) = forwarded_params(headers, "proto").next() {
        return http_scheme(proto.trim());
    }
    headers
        .get(X_FORWARDED_PROTO)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| http_scheme(v.trim()))
}

/// A host and optional port, as parsed from an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// The host, without brackets for IPv6.
    pub host: &'a str,
    /// The port, if one was given and is a valid number.
    pub port: Option<u16>,
}

/// Splits `host[:port]` or `[v6][:port]`. `None` for an empty host.
pub fn parse_host_port(authority: &str) -> Option<HostPort<'_>> {
    let authority = authority.trim_ascii();
    let bytes = authority.as_bytes();
    // One pass from the end, byte by byte (this runs for every recorded
    // request): any userinfo an absolute-form URI carries ends at the last
    // `@`, and the colons after it are counted on the way.
    let mut start = 0;
    let mut colons = 0usize;
    let mut colon = 0;
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b'@' => {
                start = i + 1;
                break;
            }
            b':' => {
                colons += 1;
                colon = i;
            }
            _ => {}
        }
    }
    let (host, port) = if bytes.get(start) == Some(&b'[') {
        let end = start + bytes[start..].iter().position(|&b| b == b']')?;
        (
            &authority[start + 1..end],
            authority[end + 1..].strip_prefix(':'),
        )
    } else if colons == 1 {
        (&authority[start..colon], Some(&authority[colon + 1..]))
    } else {
        // No colon: no port. Two or more: a bare IPv6 address, no port.
        (&authority[start..], None)
    };
    if host.is_empty() {
        return None;
    }
    Some(HostPort {
        host,
        port: port.and_then(|p| p.parse().ok()),
    })
}

/// The port a scheme uses when none is given: 80 for http, 443 for https.
pub fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else {
        None
    }
}

/// The server's address as the client addressed it: `Forwarded: host=`, then
/// `X-Forwarded-Host` (these two only when `trust_forwarded`), then the
/// request target's authority (`:authority` in HTTP/2 and 3, or an
/// absolute-form URI), then `Host`. When no port is given the scheme's
/// default port is filled in.
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert("host", "example.com".parse().unwrap());
/// headers.insert("x-forwarded-host", "public.example".parse().unwrap());
/// let uri: http::Uri = "/users/1".parse().unwrap();
/// let hp = otel_http_conventions::server_host_port(&headers, &uri, "https", true).unwrap();
/// assert_eq!((hp.host, hp.port), ("public.example", Some(443)));
/// let hp = otel_http_conventions::server_host_port(&headers, &uri, "https", false).unwrap();
/// assert_eq!((hp.host, hp.port), ("example.com", Some(443)));
/// ```
pub fn server_host_port<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
    scheme: &str,
    trust_forwarded: bool,
) -> Option<HostPort<'a>> {
    // Each source is believed only when its host is an address (see
    // `is_valid_host`); otherwise the next one is asked.
    let valid = |hp: &HostPort<'_>| is_valid_host(hp.host);
    let forwarded = || {
        forwarded_params(headers, "host")
            .find_map(parse_host_port)
            .or_else(|| {
                headers
                    .get(X_FORWARDED_HOST)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .and_then(parse_host_port)
            })
            .filter(valid)
    };
    let found = trust_forwarded
        .then(forwarded)
        .flatten()
        .or_else(|| {
            uri.authority()
                .and_then(|a| parse_host_port(a.as_str()))
                .filter(valid)
        })
        .or_else(|| {
            headers
                .get(HOST)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_host_port)
                .filter(valid)
        })?;
    Some(HostPort {
        host: found.host,
        port: found.port.or_else(|| default_port(scheme)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header lines of one test case.
    type Headers<'a> = &'a [(&'static str, &'a str)];
    /// An expected host and port.
    type Want<'a> = Option<(&'a str, Option<u16>)>;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn a7_client_address_table() {
        let cases: &[(Headers, Option<&str>)] = &[
            (&[], None),
            (&[("forwarded", "for=1.2.3.4")], Some("1.2.3.4")),
            (&[("forwarded", "for=\"[::1]:42\"")], Some("::1")),
            (&[("forwarded", "for=\"[::1]\"")], Some("::1")),
            (&[("forwarded", "for=\"::1\"")], Some("::1")),
            (&[("forwarded", "for=1.2.3.4:42")], Some("1.2.3.4")),
            (&[("forwarded", "for=1.2.3.4:42abc")], Some("1.2.3.4")),
            (&[("forwarded", "for=")], None),
            (&[("forwarded", "by=1.2.3.4")], None),
            (
                &[("forwarded", "for=unknown, for=5.6.7.8")],
                Some("5.6.7.8"),
            ),
            (
                &[("forwarded", "proto=https;for=1.2.3.4;by=x")],
                Some("1.2.3.4"),
            ),
            (&[("forwarded", "FOR=1.2.3.4")], Some("1.2.3.4")),
            (
                &[("forwarded", "for=1.1.1.1, for=2.2.2.2")],
                Some("1.1.1.1"),
            ),
            (
                &[("forwarded", "by=x"), ("forwarded", "for=3.3.3.3")],
                Some("3.3.3.3"),
            ),
            (&[("forwarded", "for=\"[::1\"")], None),
            (&[("x-forwarded-for", "1.2.3.4")], Some("1.2.3.4")),
            (&[("x-forwarded-for", "1.2.3.4, 5.6.7.8")], Some("1.2.3.4")),
            (&[("x-forwarded-for", "[::1]:80")], Some("::1")),
            (&[("x-forwarded-for", "1.2.3.4:80")], Some("1.2.3.4")),
            (&[("x-forwarded-for", "")], None),
            (
                &[("forwarded", "for=9.9.9.9"), ("x-forwarded-for", "1.2.3.4")],
                Some("9.9.9.9"),
            ),
            (
                &[("forwarded", "by=x"), ("x-forwarded-for", "1.2.3.4")],
                Some("1.2.3.4"),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(
                forwarded_client_address(&headers(pairs)),
                *want,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a6_server_address_and_port_table() {
        let uri_plain: Uri = "/x".parse().expect("uri");
        let uri_abs: Uri = "http://abs.example:8081/x".parse().expect("uri");
        let cases: &[(Headers, &Uri, &str, Want)] = &[
            (&[], &uri_plain, "http", None),
            (
                &[("host", "example.com")],
                &uri_plain,
                "http",
                Some(("example.com", Some(80))),
            ),
            (
                &[("host", "example.com")],
                &uri_plain,
                "https",
                Some(("example.com", Some(443))),
            ),
            (
                &[("host", "example.com:8080")],
                &uri_plain,
                "http",
                Some(("example.com", Some(8080))),
            ),
            (
                &[("host", "[::1]:8080")],
                &uri_plain,
                "http",
                Some(("::1", Some(8080))),
            ),
            (
                &[("host", "[::1]")],
                &uri_plain,
                "http",
                Some(("::1", Some(80))),
            ),
            (
                &[("host", "h:notaport")],
                &uri_plain,
                "http",
                Some(("h", Some(80))),
            ),
            (
                &[("host", "example.com")],
                &uri_abs,
                "http",
                Some(("abs.example", Some(8081))),
            ),
            (
                &[
                    ("host", "example.com"),
                    ("x-forwarded-host", "xf.example:9"),
                ],
                &uri_abs,
                "http",
                Some(("xf.example", Some(9))),
            ),
            (
                &[("x-forwarded-host", "xf.example, other")],
                &uri_plain,
                "https",
                Some(("xf.example", Some(443))),
            ),
            (
                &[
                    ("forwarded", "host=fw.example:7"),
                    ("x-forwarded-host", "xf.example"),
                ],
                &uri_plain,
                "http",
                Some(("fw.example", Some(7))),
            ),
            (
                &[("forwarded", "host=\"fw.example\"")],
                &uri_plain,
                "http",
                Some(("fw.example", Some(80))),
            ),
            (&[("host", "")], &uri_plain, "http", None),
        ];
        for (pairs, uri, scheme, want) in cases {
            let h = headers(pairs);
            let got = server_host_port(&h, uri, scheme, true).map(|hp| (hp.host, hp.port));
            assert_eq!(got, *want, "{pairs:?} {uri}");
        }
    }

    #[test]
    fn a6_forwarded_host_ignored_when_untrusted() {
        let uri: Uri = "/x".parse().expect("uri");
        let h = headers(&[
            ("host", "real:81"),
            ("x-forwarded-host", "fake"),
            ("forwarded", "host=fake2"),
        ]);
        let hp = server_host_port(&h, &uri, "http", false).map(|hp| (hp.host, hp.port));
        assert_eq!(hp, Some(("real", Some(81))));
    }

    #[test]
    fn trusted_proxies_client_address_table() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "fd00::/8"]).expect("cidrs");
        let cases: &[(Headers, &str, &str)] = &[
            // Untrusted peers are the client, whatever they send.
            (
                &[("x-forwarded-for", "1.1.1.1")],
                "203.0.113.5",
                "203.0.113.5",
            ),
            (
                &[("forwarded", "for=1.1.1.1")],
                "203.0.113.5",
                "203.0.113.5",
            ),
            // Through trusted proxies: the right-most untrusted entry.
            (
                &[("x-forwarded-for", "198.51.100.1")],
                "10.0.0.1",
                "198.51.100.1",
            ),
            (
                &[("x-forwarded-for", "6.6.6.6, 198.51.100.1, 10.0.0.9")],
                "10.0.0.1",
                "198.51.100.1",
            ),
            (
                &[
                    ("x-forwarded-for", "6.6.6.6"),
                    ("x-forwarded-for", "198.51.100.1"),
                ],
                "10.0.0.1",
                "198.51.100.1",
            ),
            (
                &[(
                    "forwarded",
                    "for=6.6.6.6, for=\"[2001:db8::1]:80\", for=fd00::2",
                )],
                "fd00::1",
                "2001:db8::1",
            ),
            (&[("forwarded", "for=_hidden")], "10.0.0.1", "_hidden"),
            // Nothing forwarded, or only proxies: the peer.
            (&[], "10.0.0.1", "10.0.0.1"),
            (&[("x-forwarded-for", "10.0.0.3")], "10.0.0.1", "10.0.0.1"),
            (&[("x-forwarded-for", "garbage")], "10.0.0.1", "garbage"),
            (&[("x-forwarded-for", "")], "10.0.0.1", "10.0.0.1"),
        ];
        for (pairs, peer, want) in cases {
            let got = trusted_client_address(&headers(pairs), peer.parse().expect("ip"), &proxies);
            assert_eq!(got, *want, "{pairs:?} from {peer}");
        }
    }

    #[test]
    fn forwarding_headers_are_noticed_whatever_else_is_there() {
        let none: Headers = &[
            ("host", "a.example"),
            ("x-forwarded", "not one of them"),
            ("user-agent", "x-forwarded-for"),
        ];
        assert!(!has_forwarding_headers(&headers(none)));
        for name in [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-forwarded-proto",
            "x-forwarded-port",
        ] {
            let mut map = headers(none);
            map.insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static("v"),
            );
            assert!(has_forwarding_headers(&map), "{name}");
        }
        assert!(!has_forwarding_headers(&HeaderMap::new()));
    }

    #[test]
    fn a4_original_scheme_table() {
        let cases: &[(Headers, Option<&str>)] = &[
            (&[], None),
            (&[("forwarded", "proto=https")], Some("https")),
            (
                &[("forwarded", "for=1.1.1.1;proto=\"https\"")],
                Some("https"),
            ),
            (&[("x-forwarded-proto", "https")], Some("https")),
            (&[("x-forwarded-proto", "https, http")], Some("https")),
            (&[("x-forwarded-proto", "ht tp")], None),
            (
                &[("forwarded", "proto=http"), ("x-forwarded-proto", "https")],
                Some("http"),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(forwarded_scheme(&headers(pairs)), *want, "{pairs:?}");
        }
    }
}
