//! TLS for OTLP over gRPC and HTTP (feature `tls`, on by default).
//!
//! One rustls client configuration per signal, with the aws-lc-rs provider
//! (rustls's default: post-quantum hybrid key exchange, and a FIPS build for
//! those who need one; it builds with the C compiler the Rust toolchain
//! already links with, no CMake):
//!
//! - **Roots.** `*_CERTIFICATE` names the CA(s) trusted for the collector,
//!   and then only those, as the other OpenTelemetry SDKs do. Without it, the
//!   system's roots (so a company CA installed on the host is trusted) and
//!   webpki-roots' copy of Mozilla's (so a `scratch` or distroless image with
//!   no CA bundle still reaches a public endpoint).
//! - **Client certificate.** `*_CLIENT_CERTIFICATE` and `*_CLIENT_KEY`
//!   together give mTLS.
//!
//! A file that cannot be read or parsed, or a client certificate without its
//! key, is a setting ignored with a warning naming the variable, as the
//! specification asks of bad values: the export goes on without it.

use crate::env::{ConfigWarning, FileSetting, TlsFiles};

/// Why a TLS setting cannot be used, as a warning.
fn warning(file: &FileSetting, message: impl Into<String>) -> ConfigWarning {
    ConfigWarning {
        variable: file.variable.clone(),
        value: file.path.clone(),
        message: message.into(),
    }
}

/// Checks the files of one signal and forgets the ones that cannot be used,
/// with a warning each.
pub(crate) fn check(files: &mut TlsFiles, warnings: &mut Vec<ConfigWarning>) {
    #[cfg(not(feature = "tls"))]
    for slot in [
        &mut files.certificate,
        &mut files.client_certificate,
        &mut files.client_key,
    ] {
        if let Some(file) = slot.take() {
            warnings.push(warning(
                &file,
                "TLS is not built in (otel-setup's `tls` feature is off); the file is not used",
            ));
        }
    }
    #[cfg(feature = "tls")]
    {
        if let Some(file) = &files.certificate {
            if let Err(e) = material::roots(file) {
                warnings.push(warning(
                    file,
                    format!("{e}; trusting the system's roots instead"),
                ));
                files.certificate = None;
            }
        }
        match (&files.client_certificate, &files.client_key) {
            (None, None) => {}
            (Some(only), None) | (None, Some(only)) => {
                let other = if files.client_key.is_none() {
                    "CLIENT_KEY"
                } else {
                    "CLIENT_CERTIFICATE"
                };
                warnings.push(warning(
                    only,
                    format!(
                        "mTLS needs the matching OTEL_EXPORTER_OTLP_{other} too; \
                         no client certificate is sent"
                    ),
                ));
                files.client_certificate = None;
                files.client_key = None;
            }
            (Some(cert), Some(key)) => {
                if let Err((bad, e)) = material::identity(cert, key) {
                    warnings.push(warning(bad, format!("{e}; no client certificate is sent")));
                    files.client_certificate = None;
                    files.client_key = None;
                }
            }
        }
    }
}

#[cfg(feature = "tls")]
pub(crate) use material::{http_client_config, tonic_config};

#[cfg(feature = "tls")]
mod material {
    use crate::env::{FileSetting, TlsFiles};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::{Arc, OnceLock};

    fn read(file: &FileSetting) -> Result<Vec<u8>, String> {
        std::fs::read(&file.path).map_err(|e| format!("the file cannot be read ({e})"))
    }

    fn certificates(file: &FileSetting) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
        let pem = read(file)?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the file is not valid PEM ({e})"))?;
        if certs.is_empty() {
            return Err("the file holds no PEM certificate".to_owned());
        }
        Ok((pem, certs))
    }

    /// The CA file: its PEM and its certificates, checked to be usable as
    /// trust anchors.
    pub(super) fn roots(file: &FileSetting) -> Result<(Vec<u8>, rustls::RootCertStore), String> {
        let (pem, certs) = certificates(file)?;
        let mut store = rustls::RootCertStore::empty();
        let (added, _) = store.add_parsable_certificates(certs);
        if added == 0 {
            return Err("no certificate in the file can be a trust anchor".to_owned());
        }
        Ok((pem, store))
    }

    /// A certificate chain and its key, PEM.
    type Pair = (Vec<u8>, Vec<u8>);

    /// The client certificate and key: their PEM, checked to be a pair
    /// rustls accepts. The error names the file at fault.
    pub(super) fn identity<'a>(
        cert: &'a FileSetting,
        key: &'a FileSetting,
    ) -> Result<Pair, (&'a FileSetting, String)> {
        let (cert_pem, chain) = certificates(cert).map_err(|e| (cert, e))?;
        let key_pem = read(key).map_err(|e| (key, e))?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| (key, format!("the file holds no PEM private key ({e})")))?;
        // The pair must be one rustls can present.
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| (key, e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_client_auth_cert(chain, private)
            .map_err(|e| (key, format!("the key does not fit the certificate ({e})")))?;
        Ok((cert_pem, key_pem))
    }

    /// The aws-lc-rs provider, chosen here rather than installed as the
    /// process default, so that the application's own choice is never
    /// changed.
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    /// The system's roots, loaded once per process; empty where the host
    /// has none.
    fn native_roots() -> &'static [CertificateDer<'static>] {
        static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
        ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
    }

    fn default_roots() -> rustls::RootCertStore {
        let mut store = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        store.add_parsable_certificates(native_roots().iter().cloned());
        store
    }

    /// The rustls configuration of one signal's OTLP/HTTP client.
    pub(crate) fn http_client_config(files: &TlsFiles) -> Result<rustls::ClientConfig, String> {
        let roots = match &files.certificate {
            Some(file) => roots(file).map(|(_, store)| store)?,
            None => default_roots(),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        match (&files.client_certificate, &files.client_key) {
            (Some(cert), Some(key)) => {
                let (cert_pem, key_pem) = identity(cert, key).map_err(|(_, e)| e)?;
                let chain = CertificateDer::pem_slice_iter(&cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| e.to_string())?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| e.to_string())
            }
            _ => Ok(builder.with_no_client_auth()),
        }
    }

    /// The same trust and identity for a gRPC channel (tonic builds the
    /// rustls configuration; its `tls-aws-lc` feature gives it aws-lc-rs,
    /// unless the application installed a process default).
    pub(crate) fn tonic_config(
        files: &TlsFiles,
    ) -> Result<tonic::transport::ClientTlsConfig, String> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut tls = ClientTlsConfig::new();
        tls = match &files.certificate {
            Some(file) => tls.ca_certificate(Certificate::from_pem(roots(file)?.0)),
            None => {
                let tls = tls.with_webpki_roots();
                if native_roots().is_empty() {
                    tls
                } else {
                    tls.with_native_roots()
                }
            }
        };
        if let (Some(cert), Some(key)) = (&files.client_certificate, &files.client_key) {
            let (cert_pem, key_pem) = identity(cert, key).map_err(|(_, e)| e)?;
            tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
        }
        Ok(tls)
    }
}
