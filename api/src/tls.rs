//! HTTPS for the REST API, as Patroni's `restapi.certfile`, `keyfile`, `cafile` and `verify_client`, and
//! for its clients (the CLI's `ctl.cacert`, `certfile`, `keyfile`, `insecure`; the agents' calls to
//! their peers).
//!
//! [`server_config`] reads the PEM files once, at start: a file that is not what its key says fails with
//! the key's name ([`TlsError`]). [`serve`] serves a router over plain HTTP or over TLS (see
//! [`crate::server`]); with TLS it tells each request whether its connection showed a client certificate
//! signed by `cafile` ([`ClientCert`]). With `verify_client: required` the handshake itself refuses a
//! client without one; with `optional` anyone may read, and [`require_client_cert`] answers a mutating
//! call without one with 403 (Patroni's `client certificate required`). Health checks stay open either
//! way (they are reads).

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
pub use rustls::ServerConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `restapi.verify_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyClient {
    /// No client certificate is asked for.
    None,
    /// A client may show a certificate (it must then be signed by `cafile`); mutating calls need one.
    Optional,
    /// Every connection must show a certificate signed by `cafile`.
    Required,
}

/// The server side: the `restapi` TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// `restapi.certfile`: the certificate chain (PEM), and the key too when `keyfile` is not given.
    pub certfile: PathBuf,
    /// `restapi.keyfile`: the private key (PEM).
    pub keyfile: Option<PathBuf>,
    /// `restapi.cafile`: the CA certificates client certificates must be signed by.
    pub cafile: Option<PathBuf>,
    /// `restapi.verify_client`.
    pub verify_client: VerifyClient,
}

/// The client side: whom to trust and what to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates to verify the agents' certificates with (PEM); the system's roots when `None`.
    pub cacert: Option<PathBuf>,
    /// A client certificate to show (PEM), and the key too when `keyfile` is not given.
    pub certfile: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub keyfile: Option<PathBuf>,
    /// Accept any server certificate (no verification at all).
    pub insecure: bool,
}

/// A TLS file that cannot be used: the configuration key naming it, the file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The configuration key (`restapi.certfile`, `ctl.cacert`, …).
    pub key: String,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.key, self.path.display(), self.why)
    }
}

impl std::error::Error for TlsError {}

fn tls_error(key: &str, path: &Path, why: impl fmt::Display) -> TlsError {
    TlsError { key: key.to_owned(), path: path.to_owned(), why: why.to_string() }
}

/// The crypto provider, named explicitly so no process-wide default is needed.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates in a PEM file (at least one).
fn certificates(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| tls_error(key, path, e))?;
    let certs = iter.collect::<Result<Vec<_>, _>>().map_err(|e| tls_error(key, path, e))?;
    if certs.is_empty() {
        return Err(tls_error(key, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The private key in a PEM file.
fn private_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => tls_error(key, path, "no PEM private key in it"),
        other => tls_error(key, path, other),
    })
}

/// The CA certificates of a PEM file, as a root store.
fn roots(key: &str, path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(key, path)? {
        store.add(cert).map_err(|e| tls_error(key, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

/// Reads the server's certificate, key and CA files into a TLS configuration; errors name the key, in
/// `section` (`restapi`, `raft`).
pub fn server_config(tls: &ServerTls, section: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let (cert_key, ca_key) = (format!("{section}.certfile"), format!("{section}.cafile"));
    let certs = certificates(&cert_key, &tls.certfile)?;
    let (key_name, key_path) = match &tls.keyfile {
        Some(path) => (format!("{section}.keyfile"), path.as_path()),
        None => (cert_key.clone(), tls.certfile.as_path()),
    };
    let key = private_key(&key_name, key_path)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&cert_key, &tls.certfile, e))?;
    let builder = match (tls.verify_client, &tls.cafile) {
        (VerifyClient::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            let why = format!("client certificates need {ca_key} to check them against");
            return Err(tls_error(&ca_key, Path::new("(not set)"), why));
        }
        (mode, Some(cafile)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(&ca_key, cafile)?, provider());
            let verifier =
                if mode == VerifyClient::Optional { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| tls_error(&ca_key, cafile, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| tls_error(&key_name, key_path, format!("does not fit {cert_key}: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A reqwest client builder that speaks HTTPS as `tls` says; `section` names the keys in errors (`ctl`,
/// `restapi`).
pub fn client_builder(tls: &ClientTls, section: &str) -> Result<reqwest::ClientBuilder, TlsError> {
    // Agents close a connection idle for `ServeLimits::header_read_timeout` (10 s): drop it sooner here, so
    // that a request is never sent on a connection the server is closing.
    let mut builder =
        reqwest::Client::builder().no_proxy().pool_idle_timeout(std::time::Duration::from_secs(5));
    if let Some(path) = &tls.cacert {
        let key = format!("{section}.{}", if section == "ctl" { "cacert" } else { "cafile" });
        let pem = std::fs::read(path).map_err(|e| tls_error(&key, path, e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| tls_error(&key, path, e))?;
        if certs.is_empty() {
            return Err(tls_error(&key, path, "no PEM certificate in it"));
        }
        builder = builder.tls_certs_only(certs);
    }
    if let Some(certfile) = &tls.certfile {
        let cert_key = format!("{section}.certfile");
        certificates(&cert_key, certfile)?;
        let (key_name, key_path) = match &tls.keyfile {
            Some(path) => (format!("{section}.keyfile"), path.as_path()),
            None => (cert_key.clone(), certfile.as_path()),
        };
        private_key(&key_name, key_path)?;
        let mut pem = std::fs::read(certfile).map_err(|e| tls_error(&cert_key, certfile, e))?;
        if tls.keyfile.is_some() {
            pem.push(b'\n');
            pem.extend(std::fs::read(key_path).map_err(|e| tls_error(&key_name, key_path, e))?);
        }
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| tls_error(&key_name, key_path, e))?;
        builder = builder.identity(identity);
    }
    if tls.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    Ok(builder)
}

/// A reqwest client built by [`client_builder`] with nothing more; `Err` says what is wrong.
pub fn client(tls: &ClientTls, section: &str) -> Result<reqwest::Client, String> {
    let builder = client_builder(tls, section).map_err(|e| e.to_string())?;
    builder.build().map_err(|e| format!("{section}: cannot build the HTTP client: {e}"))
}

/// Whether the request's connection showed a client certificate that was verified against `cafile`.
/// Set by [`serve`] on every request it serves over TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert(pub bool);

/// The verified certificate (the leaf) a client showed, set by [`serve`] on every request of a TLS
/// connection that had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate(pub Arc<CertificateDer<'static>>);

/// Serves a router over plain HTTP or HTTPS within the default limits: [`crate::server::serve`].
pub use crate::server::serve;

/// Adds Patroni's check for `verify_client: optional` (and `required`) to `router`: a mutating call
/// (anything but GET, HEAD, OPTIONS) over a connection without a verified client certificate answers
/// 403 `client certificate required`.
pub fn require_client_cert(router: Router) -> Router {
    router.layer(middleware::from_fn(client_cert_for_changes))
}

async fn client_cert_for_changes(request: Request, next: Next) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if reads || request.extensions().get::<ClientCert>() == Some(&ClientCert(true)) {
        return next.run(request).await;
    }
    crate::ApiError::new(
        403,
        "client certificate required: this call needs a TLS client certificate signed by restapi.cafile",
    )
    .into_response()
}
