//! The routes, as one table ([`ROUTES`]): Patroni's health checks (200 or 503, the status JSON as
//! body), the status page, the metrics and the OpenAPI document. [`router`] is built from the table and
//! the OpenAPI document lists it, so the two cannot drift apart.
//!
//! Health checks answer `GET` with the status JSON, `HEAD` and `OPTIONS` with the status line alone (as
//! HAProxy's `option httpchk` expects); a malformed query parameter answers 400 with a JSON error. Every
//! health check's answer and the status carry the `X-Vigil-Fencing-Token` header: the largest fencing
//! token the member knows of ([`NodeStatus::known_fencing_token`]; the leading primary's own), so that a
//! client can refuse a server whose token is older than one it has seen. An unknown path answers 404 and
//! a known path asked with another method 405, both with a JSON error.

use crate::health::{Now, Rule};
use crate::query::HealthQuery;
use crate::{metrics, NodeStatus};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use std::sync::Arc;

/// What the router asks the agent.
pub trait StatusSource: Send + Sync + 'static {
    /// The member's latest status.
    fn status(&self) -> NodeStatus;
    /// Whether the member is, right now, a writable primary holding the lease by its own deadline.
    fn is_leading_primary(&self) -> bool;
    /// Whether the agent's HA loop runs on time (Patroni's `/liveness` rule); true for an agent without one.
    fn loop_alive(&self) -> bool {
        true
    }
    /// The durations the agent measures, for `/metrics` (`None`: an agent without an HA loop).
    fn timings(&self) -> Option<Arc<crate::Timings>> {
        None
    }
}

type Source = Arc<dyn StatusSource>;

/// What a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A health check: 200 or 503 by the rule.
    Health(Rule),
    /// The status JSON, always 200 (`/patroni`, `/status`).
    Status,
    /// Prometheus metrics.
    Metrics,
    /// This API's OpenAPI document.
    OpenApi,
}

impl Endpoint {
    /// The methods the endpoint answers.
    pub const fn methods(self) -> &'static [&'static str] {
        match self {
            Endpoint::Health(_) | Endpoint::Status => &["GET", "HEAD", "OPTIONS"],
            Endpoint::Metrics | Endpoint::OpenApi => &["GET", "HEAD"],
        }
    }
}

/// Every route this module serves: the contract, read by [`router`] and by [`openapi::openapi`].
pub const ROUTES: &[(&str, Endpoint)] = &[
    ("/", Endpoint::Health(Rule::Primary)),
    ("/primary", Endpoint::Health(Rule::Primary)),
    ("/read-write", Endpoint::Health(Rule::Primary)),
    ("/master", Endpoint::Health(Rule::Primary)),
    ("/leader", Endpoint::Health(Rule::Leader)),
    ("/standby-leader", Endpoint::Health(Rule::StandbyLeader)),
    ("/standby_leader", Endpoint::Health(Rule::StandbyLeader)),
    ("/replica", Endpoint::Health(Rule::Replica)),
    ("/read-only", Endpoint::Health(Rule::ReadOnly)),
    ("/sync", Endpoint::Health(Rule::Sync)),
    ("/synchronous", Endpoint::Health(Rule::Sync)),
    ("/quorum", Endpoint::Health(Rule::Quorum)),
    ("/read-only-sync", Endpoint::Health(Rule::ReadOnlySync)),
    ("/read-only-synchronous", Endpoint::Health(Rule::ReadOnlySync)),
    ("/read-only-quorum", Endpoint::Health(Rule::ReadOnlyQuorum)),
    ("/async", Endpoint::Health(Rule::Async)),
    ("/asynchronous", Endpoint::Health(Rule::Async)),
    ("/health", Endpoint::Health(Rule::Health)),
    ("/liveness", Endpoint::Health(Rule::Liveness)),
    ("/readiness", Endpoint::Health(Rule::Readiness)),
    ("/patroni", Endpoint::Status),
    ("/status", Endpoint::Status),
    ("/metrics", Endpoint::Metrics),
    ("/openapi.json", Endpoint::OpenApi),
];

/// Whether `path` is a health check's (open to anyone, whatever the credentials configured).
pub(crate) fn is_health_check(path: &str) -> bool {
    ROUTES.iter().any(|&(route, endpoint)| route == path && matches!(endpoint, Endpoint::Health(_)))
}

/// The REST router over `source`: every route of [`ROUTES`] (`/openapi.json` answering `document`), and
/// a JSON 404 for any other path.
pub(crate) fn router(source: Source, document: serde_json::Value) -> Router {
    let document = Arc::new(document);
    let routes = ROUTES.iter().fold(Router::new(), |router, &(path, endpoint)| {
        router.route(path, method_router(endpoint, &document).fallback(method_not_allowed))
    });
    routes.fallback(not_found).with_state(source)
}

fn method_router(endpoint: Endpoint, document: &Arc<serde_json::Value>) -> MethodRouter<Source> {
    match endpoint {
        Endpoint::Health(rule) => {
            let handler = move |method: Method, uri: Uri, State(source): State<Source>| async move {
                health(&method, &uri, source.as_ref(), rule)
            };
            get(handler).options(handler)
        }
        Endpoint::Status => {
            let handler = |method: Method, State(source): State<Source>| async move {
                let status = source.status();
                let headers = fencing_header(&status);
                match method {
                    Method::OPTIONS => (StatusCode::OK, headers).into_response(),
                    _ => (headers, Json(status)).into_response(),
                }
            };
            get(handler).options(handler)
        }
        Endpoint::Metrics => get(|State(source): State<Source>| async move {
            let content_type = [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)];
            (content_type, metrics::render(&source.status(), source.timings().as_deref())).into_response()
        }),
        Endpoint::OpenApi => {
            let document = document.clone();
            get(|| async move { Json(document.as_ref().clone()) })
        }
    }
}

fn health(method: &Method, uri: &Uri, source: &dyn StatusSource, rule: Rule) -> Response {
    let query = match HealthQuery::from_uri(uri) {
        Ok(query) => query,
        Err(_) if method == Method::OPTIONS => return StatusCode::BAD_REQUEST.into_response(),
        Err(bad) => return error(StatusCode::BAD_REQUEST, bad.0),
    };
    let status = source.status();
    let leading = source.is_leading_primary();
    let now = Now { leading, loop_alive: rule == Rule::Liveness && source.loop_alive() };
    let ok = rule.passes(now, &status, &query);
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let headers = fencing_header(&status);
    if method == Method::OPTIONS {
        return (code, headers).into_response();
    }
    (code, headers, Json(status)).into_response()
}

/// The fencing token header's name (`X-Vigil-Fencing-Token`; HTTP header names are case-insensitive).
pub const FENCING_TOKEN_HEADER: &str = "x-vigil-fencing-token";

/// `X-Vigil-Fencing-Token` with the largest token `status` knows of (none before any lease was seen).
fn fencing_header(status: &NodeStatus) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(token) = status.known_fencing_token() {
        headers.insert(FENCING_TOKEN_HEADER, HeaderValue::from(token));
    }
    headers
}

/// A JSON error: `{"error": message}`.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed: {method} {}", uri.path()))
}
