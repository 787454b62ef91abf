//! How the nodes of a group know each other. Every call a node makes to another goes through
//! [`PeerClient`], and every call it serves through [`protect`]; the settings are [`RaftSecurity`].
//!
//! - **Mutual TLS** (`raft.certfile`, `keyfile`, `cafile`): the handshake refuses a peer without a
//!   certificate signed by the cluster's CA, in both directions. A client checks that the server's
//!   certificate names the address it dialed; a server checks that the certificate of a sender naming
//!   itself as a member names that member's address ([`check_certificate`]).
//! - **A shared password** (`raft.password`, Patroni's key): every request carries an HMAC-SHA256 of its
//!   method, the address it is sent to, its path, the time, a random nonce and its body; every answer an
//!   HMAC of that nonce, its status and its body. A server refuses (401) a request without a valid
//!   signature, signed more than [`WINDOW`] away from its own clock, sent to another address, or replayed
//!   (a nonce it has seen). A client refuses an answer without a valid signature. It authenticates but
//!   does not encrypt: the store's contents cross the network in clear.
//!
//! Both may be set together. With neither, anyone who reaches the Raft port can run the cluster: the
//! agent allows that only on loopback addresses or with `raft.insecure: true`.

use super::refusal::refuse;
use crate::error::DcsError;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use vigil_api::tls::{ClientTls, PeerCertificate, ServerTls, VerifyClient};
use vigil_api::Secret;

/// How far a signed request's time may be from the receiver's clock. The nodes' clocks must agree within
/// it (NTP); a captured request can be replayed within it only to a node that restarted since.
pub(crate) const WINDOW: Duration = Duration::from_secs(30);

/// The header carrying a signature.
const SIGNATURE: &str = "x-vigil-raft-auth";

/// The largest body a signed request may have (the largest Raft RPC).
pub(crate) const MAX_RPC_BODY: usize = 64 * 1024 * 1024;

/// How nodes prove to each other that they belong to the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftSecurity {
    /// Mutual TLS with certificates signed by one CA.
    pub tls: Option<RaftTls>,
    /// A secret every request and answer between nodes is signed with.
    pub password: Option<Secret>,
}

/// `raft.certfile`, `raft.keyfile`, `raft.cafile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTls {
    /// This node's certificate (PEM), naming its Raft address; the key too when `keyfile` is not set.
    pub certfile: PathBuf,
    /// Its private key (PEM).
    pub keyfile: Option<PathBuf>,
    /// The CA every node's certificate must be signed by (PEM).
    pub cafile: PathBuf,
}

impl RaftSecurity {
    /// Whether nodes authenticate each other at all.
    pub fn is_enabled(&self) -> bool {
        self.tls.is_some() || self.password.is_some()
    }

    /// The server side of TLS, read from the files now; errors name the `raft.*` key.
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, DcsError> {
        let Some(tls) = &self.tls else { return Ok(None) };
        let config = vigil_api::tls::server_config(&tls.server_tls(), "raft");
        config.map(Some).map_err(|e| DcsError::Invalid(e.to_string()))
    }

    /// The client every call to another node goes through.
    pub(crate) fn client(&self) -> Result<PeerClient, DcsError> {
        let tls = self.tls.as_ref().map(|tls| ClientTls {
            cacert: Some(tls.cafile.clone()),
            certfile: Some(tls.certfile.clone()),
            keyfile: tls.keyfile.clone(),
            insecure: false,
        });
        let builder = vigil_api::tls::client_builder(&tls.clone().unwrap_or_default(), "raft")
            .map_err(|e| DcsError::Invalid(e.to_string()))?;
        let http =
            builder.build().map_err(|e| DcsError::Raft(format!("cannot build the HTTP client: {e}")))?;
        Ok(PeerClient { http, scheme: if tls.is_some() { "https" } else { "http" }, mac: self.mac() })
    }

    /// Signatures with the password, when one is set. The routes a node serves need one instance of their
    /// own: it remembers the nonces seen.
    pub(crate) fn mac(&self) -> Option<Arc<Mac>> {
        self.password.as_ref().map(|p| Arc::new(Mac::new(p.expose())))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Client side

/// Sends requests to other nodes: over TLS with this node's certificate, signed with the password, or
/// plain, as [`RaftSecurity`] says. Cheap to clone.
#[derive(Clone)]
pub(crate) struct PeerClient {
    http: reqwest::Client,
    scheme: &'static str,
    mac: Option<Arc<Mac>>,
}

/// An answer whose signature, if the group uses a password, was checked.
pub(crate) struct Answer {
    /// Its HTTP status.
    pub status: StatusCode,
    /// Its body.
    pub body: Bytes,
}

/// Why a call to another node got no trustworthy answer.
#[derive(Debug)]
pub(crate) enum PeerError {
    /// The request was not sent or its answer not read.
    Http(reqwest::Error),
    /// The answer's signature is missing or wrong.
    Unsigned(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Http(e) => {
                // reqwest's own message is "error sending request"; the cause (refused, a certificate
                // of another CA...) is further down the chain.
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    write!(f, ": {cause}")?;
                    source = cause.source();
                }
                Ok(())
            }
            PeerError::Unsigned(why) => write!(f, "answer refused: {why}"),
        }
    }
}

impl std::error::Error for PeerError {}

impl PeerClient {
    /// The URL of `path` on the node at `addr` (`host:port`).
    pub(crate) fn url(&self, addr: &str, path: &str) -> String {
        format!("{}://{addr}{path}", self.scheme)
    }

    /// Sends `body` (JSON) to `path` on the node at `addr` (a GET when `None`), within `timeout`.
    pub(crate) async fn call(
        &self,
        addr: &str,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Answer, PeerError> {
        let method = if body.is_some() { Method::POST } else { Method::GET };
        let body = body.unwrap_or_default();
        let mut request = self.http.request(method.clone(), self.url(addr, path)).timeout(timeout);
        let nonce = match &self.mac {
            Some(mac) => {
                let (signature, nonce) = mac.sign_request(method.as_str(), addr, path, &body, unix_millis());
                request = request.header(SIGNATURE, signature);
                Some(nonce)
            }
            None => None,
        };
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request.send().await.map_err(PeerError::Http)?;
        let status = response.status();
        let signature = response.headers().get(SIGNATURE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(PeerError::Http)?;
        if let (Some(mac), Some(nonce)) = (&self.mac, nonce) {
            mac.check_response(&nonce, status.as_u16(), signature.as_deref(), &body)
                .map_err(PeerError::Unsigned)?;
        }
        Ok(Answer { status, body })
    }
}

// ---------------------------------------------------------------------------------------------------------
// Server side

/// Makes `router` refuse requests without a valid signature, and sign its answers, when `mac` is set.
/// `own_addr` gives this node's Raft address once it has one: a request signed for another is refused.
pub(crate) fn protect(
    router: Router,
    mac: Option<Arc<Mac>>,
    own_addr: impl Fn() -> Option<String> + Send + Sync + 'static,
) -> Router {
    let Some(mac) = mac else { return router };
    router.layer(middleware::from_fn_with_state((mac, Arc::new(own_addr)), check_signature))
}

type Guard<F> = (Arc<Mac>, Arc<F>);

async fn check_signature<F>(State((mac, own_addr)): State<Guard<F>>, request: Request, next: Next) -> Response
where
    F: Fn() -> Option<String> + Send + Sync + 'static,
{
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_RPC_BODY).await else {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {MAX_RPC_BODY} bytes"));
    };
    // The address the request was signed for: this node's own once it has one, so that a request captured
    // on its way to another node cannot be replayed here.
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let target = own_addr().unwrap_or_else(|| host.to_owned());
    let signature = parts.headers.get(SIGNATURE).and_then(|v| v.to_str().ok());
    let checked =
        mac.check_request(parts.method.as_str(), &target, parts.uri.path(), signature, &body, unix_millis());
    let nonce = match checked {
        Ok(nonce) => nonce,
        Err(why) => {
            tracing::warn!(path = parts.uri.path(), "Raft request refused: {why}");
            return refuse(StatusCode::UNAUTHORIZED, why);
        }
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (mut parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let signature = mac.sign_response(&nonce, parts.status.as_u16(), &body);
    if let Ok(value) = HeaderValue::from_str(&signature) {
        parts.headers.insert(SIGNATURE, value);
    }
    Response::from_parts(parts, Body::from(body))
}

/// Checks that `cert`, which the TLS handshake already found signed by the cluster's CA, names the
/// Raft address of the member `from` claims to be (`None`: `from` is not a member this node knows).
pub(crate) fn check_certificate(cert: &PeerCertificate, from: u64, addr: Option<&str>) -> Result<(), String> {
    let Some(addr) = addr else { return Ok(()) };
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    names(&cert.0, host).map_err(|why| format!("{why}, the address of node {from} it claims to be"))
}

/// Checks that a certificate is valid for `host` (an IP address or a DNS name).
fn names(cert: &CertificateDer<'_>, host: &str) -> Result<(), String> {
    let name = ServerName::try_from(host).map_err(|e| format!("{host:?}: {e}"))?;
    let leaf = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("unreadable certificate: {e}"))?;
    leaf.verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("the certificate shown is not valid for {host}"))
}

impl RaftTls {
    /// The listener's side: this node's certificate, and a certificate of the CA required of every client.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cafile: Some(self.cafile.clone()),
            verify_client: VerifyClient::Required,
        }
    }

    /// Checks that `certfile`'s certificate is valid for `host`, this node's Raft address: its peers
    /// check that it is.
    pub fn names(&self, host: &str) -> Result<(), String> {
        let path = self.certfile.display();
        let cert = CertificateDer::from_pem_file(&self.certfile).map_err(|e| format!("{path}: {e}"))?;
        names(&cert, host)
            .map_err(|why| format!("{path}: {why}, raft.self_addr's host: the other members would refuse it"))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Signatures

/// Signs and checks requests and answers with the shared password, and remembers the nonces it saw.
pub(crate) struct Mac {
    key: hmac::Key,
    /// `(time, nonce)` of every request accepted within the last [`WINDOW`].
    seen: Mutex<BTreeSet<(u64, [u8; 16])>>,
}

impl Mac {
    pub(crate) fn new(password: &str) -> Mac {
        Mac { key: hmac::Key::new(hmac::HMAC_SHA256, password.as_bytes()), seen: Mutex::default() }
    }

    fn request_text(method: &str, host: &str, path: &str, time: u64, nonce: &str, body: &[u8]) -> Vec<u8> {
        let mut text =
            format!("vigil-raft-request v1\n{method}\n{host}\n{path}\n{time}\n{nonce}\n").into_bytes();
        text.extend_from_slice(body);
        text
    }

    fn response_text(nonce: &str, status: u16, body: &[u8]) -> Vec<u8> {
        let mut text = format!("vigil-raft-response v1\n{nonce}\n{status}\n").into_bytes();
        text.extend_from_slice(body);
        text
    }

    /// The signature header of a request, and its nonce (hex).
    pub(crate) fn sign_request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: &[u8],
        now: u64,
    ) -> (String, String) {
        let mut nonce = [0u8; 16];
        // The system's random source does not fail on Linux; a zero nonce would only be refused as a replay.
        let _ = SystemRandom::new().fill(&mut nonce);
        let nonce = hex(&nonce);
        let tag = hmac::sign(&self.key, &Self::request_text(method, host, path, now, &nonce, body));
        (format!("{now}.{nonce}.{}", hex(tag.as_ref())), nonce)
    }

    /// Checks a request's signature header at time `now`; `Ok` is its nonce (hex).
    pub(crate) fn check_request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        signature: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<String, String> {
        let signature = signature.ok_or("no signature: raft.password is set on this node")?;
        let malformed = || format!("malformed {SIGNATURE} header {signature:?}");
        let mut fields = signature.splitn(3, '.');
        let (Some(time), Some(nonce), Some(tag)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(malformed());
        };
        let time: u64 = time.parse().map_err(|_| malformed())?;
        let nonce_bytes: [u8; 16] = unhex(nonce).and_then(|n| n.try_into().ok()).ok_or_else(malformed)?;
        let tag = unhex(tag).ok_or_else(malformed)?;
        hmac::verify(&self.key, &Self::request_text(method, host, path, time, nonce, body), &tag)
            .map_err(|_| {
                format!("wrong signature: the sender's raft.password differs from this node's, or it signed the request for another address than {host}")
            })?;
        let window = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
        if time.abs_diff(now) > window {
            return Err(format!(
                "signed {} ms {} this node's clock, more than {WINDOW:?} apart: are the clocks synchronized?",
                time.abs_diff(now),
                if time < now { "behind" } else { "ahead of" }
            ));
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = seen.split_off(&(now.saturating_sub(window), [0; 16]));
        if !seen.insert((time, nonce_bytes)) {
            return Err("replayed request: its nonce was already used".to_owned());
        }
        Ok(nonce.to_owned())
    }

    /// The signature header of an answer to the request with `nonce`.
    pub(crate) fn sign_response(&self, nonce: &str, status: u16, body: &[u8]) -> String {
        hex(hmac::sign(&self.key, &Self::response_text(nonce, status, body)).as_ref())
    }

    /// Checks an answer's signature header.
    pub(crate) fn check_response(
        &self,
        nonce: &str,
        status: u16,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let unsigned = || {
            let body = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            format!(
                "HTTP {status} without a valid signature (is raft.password the same on every node?): {body}"
            )
        };
        let tag = signature.and_then(unhex).ok_or_else(unsigned)?;
        hmac::verify(&self.key, &Self::response_text(nonce, status, body), &tag).map_err(|_| unsigned())
    }
}

fn unix_millis() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
