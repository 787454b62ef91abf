//! Requests a follower hands to the Raft leader: writes, membership changes and read-index rounds.
//!
//! `POST /dcs/write` carries a [`LeaderWrite`], `POST /dcs/read-index` a [`ReadIndex`] and
//! `POST /dcs/members` a [`MemberChange`], each in an [`Envelope`] admitted like any Raft RPC;
//! `POST /dcs/join` carries a [`Join`] from a node that is not a member yet. The answer is the JSON `Result`
//! of the leader's call (which may itself be `ForwardToLeader` when leadership moved), or `503` with
//! `{"error": ...}` when the call did not finish within the leader's own operation timeout.

use super::auth::PeerClient;
use super::identity::{Envelope, Identity, RpcHeader};
use super::membership::{Join, MemberChange};
use super::network::{accept, Admit, Peer, RpcState};
use super::op_timeout::OpTimeout;
use super::refusal::refuse;
use super::{ClientWriteError, Node, Raft, RaftError, TypeConfig};
use crate::command::Command;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use openraft::raft::ClientWriteResponse;
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
}

/// The result of a [`LeaderWrite`].
pub(crate) type WriteResult = Result<ClientWriteResponse<TypeConfig>, RaftError<ClientWriteError>>;

impl LeaderWrite {
    /// Carries the request out on `raft` (which answers `ForwardToLeader` unless it is the leader).
    pub(crate) async fn run(self, raft: &Raft) -> WriteResult {
        match self {
            LeaderWrite::Command(command) => raft.client_write(command).await,
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
        .route(MemberChange::PATH, post(change_members))
        .route(Join::PATH, post(join))
        .with_state(ForwardState { rpc: RpcState { raft, identity }, client, op_timeout })
}

async fn write(
    State(state): State<ForwardState>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let raft = state.rpc.raft.clone();
    serve(state, peer, body, "write", Admit::Member, |e: Envelope<LeaderWrite>| async move {
        e.rpc.run(&raft).await
    })
    .await
}

async fn read_index(
    State(state): State<ForwardState>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let raft = state.rpc.raft.clone();
    serve(state, peer, body, "read-index", Admit::Member, |_: Envelope<ReadIndex>| async move {
        raft.ensure_linearizable().await
    })
    .await
}

async fn change_members(
    State(state): State<ForwardState>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (raft, client) = (state.rpc.raft.clone(), state.client.clone());
    serve(state, peer, body, "membership change", Admit::Member, |e: Envelope<MemberChange>| async move {
        e.rpc.run(&raft, &client).await
    })
    .await
}

/// A node asking to join has no cluster id nor membership yet: it is admitted by namespace, scope and
/// cluster id alone ([`Identity::check_joiner`]), besides the password or certificate every route asks.
async fn join(
    State(state): State<ForwardState>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (raft, identity) = (state.rpc.raft.clone(), state.rpc.identity.clone());
    serve(state, peer, body, "join", Admit::Joiner, |e: Envelope<Join>| async move {
        e.rpc.run(&raft, &e.header, &identity).await
    })
    .await
}

/// Admits a `kind` request and answers with the JSON of `call`'s result, or 503 when it did not
/// complete within the operation timeout.
async fn serve<Req, T, F, Fut>(
    state: ForwardState,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
    kind: &str,
    admit: Admit,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    T: Serialize,
    F: FnOnce(Envelope<Req>) -> Fut,
    Fut: Future<Output = T>,
{
    let envelope: Envelope<Req> = match accept(&state.rpc, peer, body, kind, admit).await {
        Ok(envelope) => envelope,
        Err(refusal) => return refusal,
    };
    let timeout = state.op_timeout.get();
    match tokio::time::timeout(timeout, call(envelope)).await {
        Ok(result) => Json(result).into_response(),
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{kind} did not complete within {timeout:?}: no quorum"),
        ),
    }
}

/// Why a forwarded request got no answer from the leader's call.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// No answer: the node is down, unreachable or too slow, or answered something unreadable.
    Unanswered(String),
    /// The node refused the sender (wrong cluster, scope, password or certificate; not a member).
    Refused(String),
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Unanswered(why) | CallFailure::Refused(why) => f.write_str(why),
        }
    }
}

/// Sends `request` to the node `leader` as `header` says, answering by `deadline`. `Ok` holds the
/// leader's own result.
pub(crate) async fn call<Req: Forwarded, T: DeserializeOwned>(
    client: &PeerClient,
    header: RpcHeader,
    leader: &Node,
    request: &Req,
    deadline: Instant,
) -> Result<T, CallFailure> {
    let envelope = Envelope { header, rpc: request };
    let url = client.url(&leader.addr, Req::PATH);
    let unanswered = |e: &dyn std::fmt::Display| CallFailure::Unanswered(format!("{url}: {e}"));
    let body = serde_json::to_vec(&envelope).map_err(|e| unanswered(&e))?;
    let timeout = deadline.saturating_duration_since(Instant::now());
    let answer =
        client.call(&leader.addr, Req::PATH, Some(body), timeout).await.map_err(|e| unanswered(&e))?;
    let why = || format!("{url}: {}: {}", answer.status, String::from_utf8_lossy(&answer.body));
    if answer.status.is_client_error() {
        return Err(CallFailure::Refused(why()));
    }
    if !answer.status.is_success() {
        return Err(CallFailure::Unanswered(why()));
    }
    serde_json::from_slice(&answer.body).map_err(|e| unanswered(&format!("unreadable answer: {e}")))
}
