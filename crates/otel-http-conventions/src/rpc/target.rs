//! `server.address` and `server.port` of a client call, from the target
//! the channel was built for (never from the resolved socket).

/// The server a client calls, as the conventions want it recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `server.address`.
    pub address: String,
    /// `server.port`, when the target names one.
    pub port: Option<u16>,
}

impl Target {
    /// Reads a gRPC target or URI:
    ///
    /// - `host:port`, `http://host:port` and `https://host` (the default port
    ///   of the scheme) give the host and port;
    /// - `dns://resolver/host:port` gives the host and port after the
    ///   resolver;
    /// - `unix:///run/app.sock` gives the socket's path, no port;
    /// - anything else (`zk://zookeeper:2181/my-server`, a list of
    ///   addresses) is kept whole, no port.
    ///
    /// ```
    /// use otel_http_conventions::rpc::Target;
    /// let t = Target::parse("dns://1.2.3.4/grpc.io:50051");
    /// assert_eq!((t.address.as_str(), t.port), ("grpc.io", Some(50051)));
    /// let t = Target::parse("http://[::1]:50051");
    /// assert_eq!((t.address.as_str(), t.port), ("::1", Some(50051)));
    /// let t = Target::parse("unix:///run/containerd/containerd.sock");
    /// assert_eq!((t.address.as_str(), t.port), ("/run/containerd/containerd.sock", None));
    /// ```
    pub fn parse(target: &str) -> Target {
        let whole = || Target {
            address: target.to_owned(),
            port: None,
        };
        if let Some(path) = target.strip_prefix("unix://") {
            return Target {
                address: path.to_owned(),
                port: None,
            };
        }
        if let Some(rest) = target.strip_prefix("dns:") {
            // `dns:host:port` or `dns://resolver/host:port`.
            let name = match rest.strip_prefix("//") {
                Some(with_authority) => match with_authority.split_once('/') {
                    Some((_, name)) => name,
                    None => return whole(),
                },
                None => rest,
            };
            return host_port(name, None).unwrap_or_else(whole);
        }
        for (scheme, port) in [("http://", 80), ("https://", 443)] {
            if let Some(rest) = target.strip_prefix(scheme) {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
                return host_port(authority, Some(port)).unwrap_or_else(whole);
            }
        }
        if target.contains("://") {
            return whole();
        }
        host_port(target, None).unwrap_or_else(whole)
    }
}

/// `host:port`, `[v6]:port` or a bare host (then `default_port`).
fn host_port(s: &str, default_port: Option<u16>) -> Option<Target> {
    let hp = crate::parse_host_port(s)?;
    if !crate::is_valid_host(hp.host) {
        return None;
    }
    Some(Target {
        address: hp.host.to_owned(),
        port: hp.port.or(default_port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b4_targets_from_the_conventions_examples() {
        let cases: [(&str, &str, Option<u16>); 10] = [
            ("grpc.io:50051", "grpc.io", Some(50051)),
            ("dns://1.2.3.4/grpc.io:50051", "grpc.io", Some(50051)),
            ("dns:grpc.io:50051", "grpc.io", Some(50051)),
            (
                "unix:///run/containerd/containerd.sock",
                "/run/containerd/containerd.sock",
                None,
            ),
            (
                "zk://zookeeper:2181/my-server",
                "zk://zookeeper:2181/my-server",
                None,
            ),
            (
                "ipv4:198.51.100.123:50051,198.51.100.124:50051",
                "ipv4:198.51.100.123:50051,198.51.100.124:50051",
                None,
            ),
            ("http://127.0.0.1:50051", "127.0.0.1", Some(50051)),
            (
                "https://inventory.internal",
                "inventory.internal",
                Some(443),
            ),
            (
                "http://user:secret@inventory:50051/",
                "inventory",
                Some(50051),
            ),
            ("inventory", "inventory", None),
        ];
        for (target, address, port) in cases {
            let t = Target::parse(target);
            assert_eq!((t.address.as_str(), t.port), (address, port), "{target}");
        }
    }
}
