//! Requests a follower hands to the Raft leader: writes, membership changes and read-index rounds.
//!
//! `POST /dcs/write` carries a [`LeaderWrite`], `POST /dcs/read-index` a [`ReadIndex`], both in an
//! [`Envelope`] admitted like any Raft RPC. The answer is the JSON `Result` of the leader's openraft call
//! (which may itself be `ForwardToLeader` when leadership moved), or `503` with `{"error": ...}` when the
//! call did not finish within the leader's own operation timeout. A learner is added only after the
//! leader itself asked it who it is ([`Identity::check_joiner`]), whoever forwarded the request.

use super::auth::PeerClient;
use super::identity::{Envelope, Identity};
use super::network::{self, accept, Admit, Peer, RpcState};
use super::op_timeout::OpTimeout;
use super::refusal::refuse;
use super::{ClientWriteError, Node, NodeId, Raft, RaftError, TypeConfig};
use crate::command::Command;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::ClientWriteResponse;
use openraft::ChangeMembers;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;

/// A request that only the Raft leader can carry out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum LeaderWrite {
    /// Replicate a command.
    Command(Command),
    /// Add a learner (without waiting for it to catch up).
    AddLearner {
        /// Its id.
        id: NodeId,
        /// Its address.
        node: Node,
    },
    /// Change the voters.
    ChangeMembership(ChangeMembers<NodeId, Node>),
}

/// The result of a [`LeaderWrite`].
pub(crate) type WriteResult = Result<ClientWriteResponse<TypeConfig>, RaftError<ClientWriteError>>;

impl LeaderWrite {
    /// Carries the request out on `raft` (which answers `ForwardToLeader` unless it is the leader).
    pub(crate) async fn run(self, raft: &Raft) -> WriteResult {
        match self {
            LeaderWrite::Command(command) => raft.client_write(command).await,
            LeaderWrite::AddLearner { id, node } => raft.add_learner(id, node, false).await,
            LeaderWrite::ChangeMembership(changes) => raft.change_membership(changes, false).await,
        }
    }
}

/// A read-index request: the leader confirms its leadership with a quorum and answers the log id up to
/// which a reader must have applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReadIndex;

/// A request the leader serves, with the route it is sent to.
pub(crate) trait Forwarded: Serialize {
    /// The route.
    const PATH: &'static str;
}

impl Forwarded for LeaderWrite {
    const PATH: &'static str = "/dcs/write";
}

impl Forwarded for ReadIndex {
    const PATH: &'static str = "/dcs/read-index";
}

#[derive(Clone)]
struct ForwardState {
    rpc: RpcState,
    client: PeerClient,
    op_timeout: OpTimeout,
}

/// The routes serving requests forwarded by followers.
pub(crate) fn routes(
    raft: Raft,
    identity: Arc<Identity>,
    client: PeerClient,
    op_timeout: OpTimeout,
) -> Router {
    Router::new()
        .route(LeaderWrite::PATH, post(write))
        .route(ReadIndex::PATH, post(read_index))
        .with_state(ForwardState { rpc: RpcState { raft, identity }, client, op_timeout })
}

async fn write(
    State(state): State<ForwardState>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (raft, identity, client) = (state.rpc.raft.clone(), state.rpc.identity.clone(), state.client.clone());
    let timeout = state.op_timeout.get();
    serve(state, peer, body, "write", |request: LeaderWrite| async move {
        if let LeaderWrite::AddLearner { id, node } = &request {
            let joiner = network::node_at(&client, *id, &node.addr, timeout).await;
            if let Err(e) = joiner.and_then(|joiner| identity.check_joiner(&joiner)) {
                return Err(e.to_string());
            }
        }
        Ok(request.run(&raft).await)
    })
    .await
}

async fn read_index(
    State(state): State<ForwardState>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let raft = state.rpc.raft.clone();
    serve(state, peer, body, "read-index", |_: ReadIndex| async move { Ok(raft.ensure_linearizable().await) })
        .await
}

async fn serve<Req, T, F, Fut>(
    state: ForwardState,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
    kind: &str,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    T: Serialize,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let envelope: Envelope<Req> = match accept(&state.rpc, peer, body, kind, Admit::Member).await {
        Ok(envelope) => envelope,
        Err(refusal) => return refusal,
    };
    let timeout = state.op_timeout.get();
    match tokio::time::timeout(timeout, call(envelope.rpc)).await {
        Ok(Ok(result)) => Json(result).into_response(),
        Ok(Err(why)) => refuse(StatusCode::FORBIDDEN, why),
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{kind} did not complete within {timeout:?}: no quorum"),
        ),
    }
}

/// Sends `request` to the node `leader`, answering by `deadline`. An `Err` is a transport failure or a
/// refusal (the caller retries); `Ok` holds the leader's own result.
pub(crate) async fn call<Req: Forwarded, T: DeserializeOwned>(
    client: &PeerClient,
    identity: &Identity,
    leader: &Node,
    request: &Req,
    deadline: Instant,
) -> Result<T, String> {
    let envelope = Envelope { header: identity.header(), rpc: request };
    let url = client.url(&leader.addr, Req::PATH);
    let body = serde_json::to_vec(&envelope).map_err(|e| format!("{url}: {e}"))?;
    let timeout = deadline.saturating_duration_since(Instant::now());
    let answer =
        client.call(&leader.addr, Req::PATH, Some(body), timeout).await.map_err(|e| format!("{url}: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!("{url}: {}: {}", answer.status, String::from_utf8_lossy(&answer.body)));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: unreadable answer: {e}"))
}
