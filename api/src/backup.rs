//! `GET /backup`: a physical copy of this member's database, streamed to another member's agent that
//! clones a replica from it (MariaDB: `mariadb-backup --backup --stream=xbstream`), so that no SSH is
//! needed between the machines.
//!
//! The copy holds every row and every password hash, so the route asks for the cluster's replication
//! account as HTTP basic auth (the account a replica already logs in to its upstream with), whatever
//! `restapi.authentication` says: 401 without it. It answers 200 with the stream, or 503 with the reason
//! when no copy can be made now (the server is down, the tool is missing). A
//! copy that fails midway ends the stream without its last chunk, so the receiver sees a broken
//! transfer, never a short copy that looks whole.

use crate::auth::presents;
use crate::{ApiError, BasicAuth, BoxFuture};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// The route's path.
pub const BACKUP_PATH: &str = "/backup";

/// What makes the copies: the agent's database adapter.
pub trait BackupSource: Send + Sync + 'static {
    /// Starts a copy: its bytes as a body that ends in an error if the copy fails; or why none can be
    /// made now.
    fn open(&self) -> BoxFuture<'_, Result<Body, ApiError>>;
}

/// `GET /backup` over `source`, for callers presenting `account`.
pub fn backup_router(source: Arc<dyn BackupSource>, account: BasicAuth) -> Router {
    let handler = move |State(source): State<Arc<dyn BackupSource>>, request: Request| async move {
        let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !presents(&account, given) {
            let message = "GET /backup needs the replication account (mysql.authentication.replication) \
                           as basic auth";
            let mut response = ApiError::new(401, message).into_response();
            let realm = header::HeaderValue::from_static("Basic realm=\"vigil-backup\"");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, realm);
            return response;
        }
        match source.open().await {
            Ok(body) => ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response(),
            Err(e) => e.into_response(),
        }
    };
    Router::new().route(BACKUP_PATH, get(handler)).with_state(source)
}
