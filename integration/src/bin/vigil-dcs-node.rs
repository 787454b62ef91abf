//! One store node as its own OS process, for tests that kill -9 and restart nodes.
//!
//! It serves the node's Raft routes and, on the same address, a small test API:
//! `POST /test/acquire {"holder", "ttl_ms"}` → `{"token"}`, `POST /test/put {"key", "value"}` → `{"version"}`,
//! `GET /test/read` → the linearizable cluster record, `GET /test/status` → the Raft view.
//! Store errors answer 503 with `{"error": ...}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use vigil_dcs::{Condition, DcsConfig, DcsError, DcsNode, Key, MemberName, NodeId};

#[derive(Debug, Parser)]
struct Args {
    /// This node's Raft id.
    #[arg(long)]
    id: NodeId,
    /// The cluster's scope.
    #[arg(long, default_value = "test")]
    scope: String,
    /// The data directory.
    #[arg(long)]
    data_dir: PathBuf,
    /// Every initial member as ID=HOST:PORT, this node included; this node listens on its own address.
    #[arg(long = "member", value_parser = parse_member, required = true)]
    members: Vec<(NodeId, String)>,
    /// Initialize the group (ignored when this node already belongs to one).
    #[arg(long)]
    initialize: bool,
}

fn parse_member(s: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected ID=HOST:PORT"))?;
    Ok((id.parse().map_err(|e| format!("{s:?}: bad id: {e}"))?, addr.to_owned()))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    vigil_integration::init_tracing();
    let args = Args::parse();
    let members: BTreeMap<NodeId, String> = args.members.into_iter().collect();
    let addr = members.get(&args.id).ok_or(format!("no --member for this node's id {}", args.id))?.clone();
    let mut config = DcsConfig::new(args.id, args.scope, args.data_dir);
    config.op_timeout = Duration::from_secs(2);
    let node = Arc::new(DcsNode::start(config).await.map_err(|e| e.to_string())?);
    if args.initialize {
        match node.initialize(members).await {
            Ok(()) | Err(DcsError::AlreadyInitialized { .. }) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let test_api = Router::new()
        .route("/test/acquire", post(acquire))
        .route("/test/put", post(put))
        .route("/test/read", get(read))
        .route("/test/status", get(status))
        .with_state(node.clone());
    let listener = tokio::net::TcpListener::bind(&addr).await.map_err(|e| format!("bind {addr}: {e}"))?;
    axum::serve(listener, node.router().merge(test_api)).await.map_err(|e| e.to_string())
}

#[derive(Deserialize)]
struct AcquireBody {
    holder: MemberName,
    ttl_ms: u64,
}

async fn acquire(State(node): State<Arc<DcsNode>>, Json(body): Json<AcquireBody>) -> Response {
    let ttl = Duration::from_millis(body.ttl_ms);
    answer(node.acquire_lease(&body.holder, ttl, Duration::ZERO).await.map(|g| json!({ "token": g.token })))
}

#[derive(Deserialize)]
struct PutBody {
    key: Key,
    value: serde_json::Value,
}

async fn put(State(node): State<Arc<DcsNode>>, Json(body): Json<PutBody>) -> Response {
    answer(node.put(&body.key, body.value, Condition::Always, None).await.map(|v| json!({ "version": v })))
}

async fn read(State(node): State<Arc<DcsNode>>) -> Response {
    answer(node.read().await.map(|state| json!(*state)))
}

async fn status(State(node): State<Arc<DcsNode>>) -> Response {
    Json(json!(node.raft_status())).into_response()
}

fn answer(result: Result<serde_json::Value, DcsError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": e.to_string() }))).into_response(),
    }
}
