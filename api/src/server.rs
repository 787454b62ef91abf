//! Serving a router on a TCP listener, over plain HTTP or HTTPS, with the limits every listener of the
//! agent needs (the REST API's and the Raft port's): [`serve`], or [`serve_with`] for other
//! [`ServeLimits`].
//!
//! One accept loop serves both kinds of connection with hyper's HTTP/1 server:
//! - a client must send each request's head (request line and headers) within
//!   [`ServeLimits::header_read_timeout`], counted from the moment the server starts waiting for it: the
//!   accept (the TLS handshake included) or the end of the previous response. A slow-loris client is
//!   closed, and so is a kept-alive connection that sends nothing more (hyper's header timer is the
//!   idle timer too);
//! - a request head is read into at most [`MAX_HEAD`] bytes of buffer (431 beyond; hyper checks between
//!   reads, so a head a little longer that arrives in one read still passes), and its URI, the health
//!   checks' query strings included, is under 64 KiB (414 beyond: the `http` crate's limit);
//! - at most [`ServeLimits::max_connections`] connections are served at once per listener; one more is
//!   closed as soon as it is accepted (a client sees the connection end at once instead of waiting in a
//!   queue), with a warning logged at most every [`REFUSAL_LOG_INTERVAL`].
//!
//! Each request carries its client's address ([`ConnectInfo`]`<SocketAddr>`, for
//! [`crate::allowlist`]); over TLS also whether the client showed a verified certificate
//! ([`ClientCert`]) and that certificate ([`PeerCertificate`]).

use crate::tls::{ClientCert, PeerCertificate};
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// The read buffer for a request head (request line and headers): 64 KiB, the longest request line
/// Python's `http.server` (Patroni's) reads. hyper answers 431 to a head that does not fit.
pub const MAX_HEAD: usize = 64 * 1024;

/// How often, at most, refused connections are logged (with how many since the last line).
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long the accept loop waits after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// The limits [`serve_with`] puts on a listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// How long a client has to send a request's head, from the accept (TLS handshake included) or from
    /// the end of the previous response on a kept-alive connection. Default 10 s: HAProxy, Prometheus
    /// and the CLI send theirs at once, and an idle connection is given up after as long.
    pub header_read_timeout: Duration,
    /// The most connections served at once; one more is closed at once. Default 256: far above what a
    /// cluster's agents, load balancers and monitoring open, small enough to bound the memory and tasks
    /// a flood of connections can take.
    pub max_connections: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits { header_read_timeout: Duration::from_secs(10), max_connections: 256 }
    }
}

/// Serves `router` on `listener` with the default [`ServeLimits`]: plain HTTP without `tls`, else HTTPS.
pub async fn serve(listener: TcpListener, router: Router, tls: Option<Arc<ServerConfig>>) {
    serve_with(listener, router, tls, ServeLimits::default()).await
}

/// Serves `router` on `listener` within `limits`: plain HTTP without `tls`, else HTTPS. Runs until
/// dropped (a failed accept is logged and retried a second later); connections are served by tasks this
/// future owns, so dropping it ends them.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: ServeLimits,
) {
    let local = listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string());
    let acceptor = tls.map(TlsAcceptor::from);
    let mut connections = JoinSet::new();
    let mut refused = Refused::default();
    loop {
        let accepted = tokio::select! {
            // Finished connections first, so a free slot is seen before the next accept is judged.
            biased;
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(listen = %local, error = %e, "accept failed; retrying in 1 s");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        if connections.len() >= limits.max_connections {
            refused.note(&local, peer, limits.max_connections);
            continue;
        }
        connections.spawn(connection(stream, peer, acceptor.clone(), router.clone(), limits));
    }
}

/// Counts connections refused over the cap, for a rate-limited warning.
#[derive(Debug, Default)]
struct Refused {
    since_last_log: u64,
    last_log: Option<Instant>,
}

impl Refused {
    fn note(&mut self, local: &str, peer: SocketAddr, max_connections: usize) {
        self.since_last_log += 1;
        if self.last_log.is_some_and(|at| at.elapsed() < REFUSAL_LOG_INTERVAL) {
            return;
        }
        tracing::warn!(
            listen = %local,
            %peer,
            refused = self.since_last_log,
            max_connections,
            "connection limit reached: new connections are closed at once"
        );
        self.since_last_log = 0;
        self.last_log = Some(Instant::now());
    }
}

/// One connection: the TLS handshake if `tls`, then HTTP/1 until the client or a limit ends it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: ServeLimits,
) {
    let mut extensions = Extensions::new();
    extensions.insert(ConnectInfo(peer));
    let Some(acceptor) = tls else {
        return http1(stream, peer, extensions, router, limits).await;
    };
    let stream = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let leaf = stream.get_ref().1.peer_certificates().and_then(|certs| certs.first());
    extensions.insert(ClientCert(leaf.is_some()));
    if let Some(leaf) = leaf {
        extensions.insert(PeerCertificate(Arc::new(leaf.clone().into_owned())));
    }
    http1(stream, peer, extensions, router, limits).await
}

/// Serves HTTP/1 requests on `io`, each given a copy of `extensions`.
async fn http1<S>(io: S, peer: SocketAddr, extensions: Extensions, router: Router, limits: ServeLimits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().extend(extensions.clone());
        tower::ServiceExt::oneshot(router.clone(), request)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
