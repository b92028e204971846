//! Property tests of what the layer and the middleware read from hostile
//! requests: URLs, forwarding headers, methods. No panic; no credential or
//! sensitive query value survives redaction. `PROPTEST_CASES` raises the
//! count (default 10,000).

use otel_http_conventions::{
    forwarded_client_address, parse_host_port, server_host_port, KnownMethods,
    SensitiveQueryParameters, TrustedProxies,
};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn url_full_never_keeps_credentials_or_signatures(
        scheme in "(http|https|ftp)",
        user in "[a-zA-Z0-9._~-]{1,12}",
        pass in "[a-zA-Z0-9._~-]{0,12}",
        host in "[a-z0-9.-]{1,20}",
        path in "(/[a-zA-Z0-9._~@:-]{0,10}){0,3}",
        secret in "[a-zA-Z0-9]{6,16}",
        other in "[a-z]{1,8}=[a-z0-9]{0,8}",
    ) {
        let userinfo = if pass.is_empty() { user.clone() } else { format!("{user}:{pass}") };
        let url = format!("{scheme}://{userinfo}@{host}{path}?{other}&sig=SECRET{secret}&{other}");
        let out = SensitiveQueryParameters::default().redact_url(&url).into_owned();
        prop_assert!(out.starts_with(&format!("{scheme}://REDACTED:REDACTED@{host}")), "{out}");
        prop_assert!(!out.contains(&format!("SECRET{secret}")), "{out}");
        prop_assert!(out.contains("sig=REDACTED"), "{out}");
    }

    #[test]
    fn arbitrary_urls_and_queries_never_panic(s in "\\PC{0,200}") {
        let keys = SensitiveQueryParameters::default();
        let _ = keys.redact_url(&s);
        let _ = keys.redact_query(&s);
        let _ = parse_host_port(&s);
    }

    #[test]
    fn forwarding_headers_never_panic(
        fwd in prop::collection::vec(any::<u8>(), 0..200),
        xff in prop::collection::vec(any::<u8>(), 0..200),
        host in prop::collection::vec(any::<u8>(), 0..100),
        peer in any::<[u8; 4]>(),
    ) {
        let mut h = http::HeaderMap::new();
        for (name, bytes) in [("forwarded", fwd), ("x-forwarded-for", xff), ("host", host.clone()), ("x-forwarded-host", host)] {
            if let Ok(v) = http::HeaderValue::from_bytes(&bytes) {
                h.append(name, v);
            }
        }
        let uri: http::Uri = "/".parse().expect("uri");
        let _ = forwarded_client_address(&h);
        let _ = server_host_port(&h, &uri, "https", true);
        let proxies = TrustedProxies::new(["0.0.0.0/0"]).expect("cidr");
        let got = otel_http_conventions::trusted_client_address(&h, std::net::IpAddr::from(peer), &proxies);
        prop_assert!(!got.is_empty());
    }

    #[test]
    fn any_method_token_is_known_or_other(m in "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20}") {
        let method = http::Method::from_bytes(m.as_bytes()).expect("token");
        let n = KnownMethods::default().normalize(&method);
        if n.is_other() {
            prop_assert_eq!(n.value.as_str(), "_OTHER");
            prop_assert_eq!(n.original, Some(m.as_str()));
            prop_assert_eq!(n.span_name(), "HTTP");
        } else {
            prop_assert_eq!(n.value.as_str(), m.as_str());
        }
    }
}
