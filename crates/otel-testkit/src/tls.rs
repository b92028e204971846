//! Certificates made at test time, and the TLS side of the OTLP receiver
//! (feature `tls`).
//!
//! ```
//! use otel_testkit::otlp::OtlpReceiver;
//! use otel_testkit::tls::TestPki;
//!
//! let pki = TestPki::generate();
//! // A collector that requires a client certificate signed by the test CA.
//! let receiver = OtlpReceiver::start_tls(pki.server_tls().require_client_certificate());
//! assert!(receiver.grpc_endpoint().starts_with("https://127.0.0.1:"));
//! // Point an exporter at it with the standard variables:
//! let vars = [
//!     ("OTEL_EXPORTER_OTLP_CERTIFICATE", pki.ca_file()),
//!     ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pki.client_cert_file()),
//!     ("OTEL_EXPORTER_OTLP_CLIENT_KEY", pki.client_key_file()),
//! ];
//! assert!(vars.iter().all(|(_, path)| std::path::Path::new(path).exists()));
//! ```

use crate::otlp::Store;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A CA, a server certificate for `127.0.0.1` and `localhost`, and a client
/// certificate, all made now, with their PEM files in a folder of their own
/// that is removed on drop.
#[derive(Debug)]
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server's certificate, PEM.
    pub server_cert_pem: String,
    /// The server's private key, PEM.
    pub server_key_pem: String,
    /// The client's certificate, PEM.
    pub client_cert_pem: String,
    /// The client's private key, PEM.
    pub client_key_pem: String,
    dir: PathBuf,
}

fn leaf(
    names: &[&str],
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'_, KeyPair>,
) -> (String, String) {
    let key = KeyPair::generate().expect("key pair");
    let mut params = CertificateParams::new(
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<Vec<String>>(),
    )
    .expect("certificate parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("signed certificate");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Makes the CA and both certificates and writes their files.
    ///
    /// # Panics
    /// If the certificates cannot be made or written (a test cannot go on).
    pub fn generate() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own, as two real CAs have.
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("otel-testkit test CA {}-{n}", std::process::id()),
        );
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let (server_cert_pem, server_key_pem) = leaf(
            &["127.0.0.1", "localhost"],
            "otel-testkit collector",
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        let (client_cert_pem, client_key_pem) = leaf(
            &["otel-testkit-client"],
            "otel-testkit client",
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
        );
        let dir = std::env::temp_dir().join(format!("otel-testkit-pki-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("PKI folder");
        let pki = TestPki {
            ca_pem: ca.pem(),
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            dir,
        };
        for (name, pem) in [
            ("ca.pem", &pki.ca_pem),
            ("server.pem", &pki.server_cert_pem),
            ("server.key", &pki.server_key_pem),
            ("client.pem", &pki.client_cert_pem),
            ("client.key", &pki.client_key_pem),
        ] {
            std::fs::write(pki.dir.join(name), pem).expect("PEM file");
        }
        pki
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// The folder the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate's file (for `OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub fn ca_file(&self) -> String {
        self.file("ca.pem")
    }

    /// The client certificate's file (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub fn client_cert_file(&self) -> String {
        self.file("client.pem")
    }

    /// The client key's file (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub fn client_key_file(&self) -> String {
        self.file("client.key")
    }

    /// The server side, for [`OtlpReceiver::start_tls`](crate::otlp::OtlpReceiver::start_tls):
    /// this PKI's server certificate, no client certificate asked for.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls {
            cert_pem: self.server_cert_pem.clone(),
            key_pem: self.server_key_pem.clone(),
            client_ca_pem: None,
            ca_pem: self.ca_pem.clone(),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How the receiver serves TLS.
#[derive(Clone, Debug)]
pub struct ServerTls {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
    client_ca_pem: Option<String>,
}

impl ServerTls {
    /// Requires a client certificate signed by the same test CA (mTLS); a
    /// client without one fails the handshake.
    pub fn require_client_certificate(mut self) -> Self {
        self.client_ca_pem = Some(self.ca_pem.clone());
        self
    }

    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("server certificate");
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("server key");
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions");
        let builder = match &self.client_ca_pem {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(cert.expect("CA")).expect("CA root");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .expect("server certificate and key");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Accepts TLS connections and serves `app` on each (HTTP/1.1 or HTTP/2,
/// as the client speaks); a failed handshake is counted.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
    store: Arc<Store>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(_) => {
                    store.tls_failed();
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
        });
    }
}
