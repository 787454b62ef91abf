//! The Raft transport: JSON over HTTP/1.
//!
//! Every RPC is a `POST /raft/{append,vote,snapshot}` whose body is an [`Envelope`]: this node's
//! [`RpcHeader`] and the openraft request. The answer is `200` with the JSON `Result` of the receiving
//! node's openraft call, or a `4xx` with `{"error": "..."}` when the request is malformed or its sender is
//! not admitted (wrong scope or cluster id, not a member of the receiver's group, or showing a
//! certificate that is not the member's). Requests and answers go through [`super::auth`].

use super::auth::{self, PeerClient, PeerError, MAX_RPC_BODY};
use super::dead_leader::LeaderHeard;
use super::identity::{Envelope, Identity, RpcHeader};
use super::refusal::{refuse, ErrorBody};
use super::snapshot_stream::SnapshotStream;
use super::{Node, NodeId, Raft, RaftError, TypeConfig};
use crate::error::DcsError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use openraft::error::{Infallible, InstallSnapshotError, NetworkError, RPCError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::AnyError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use vigil_api::tls::PeerCertificate;

/// How a Raft RPC fails, as openraft sees it.
type RpcError<E = Infallible> = RPCError<NodeId, Node, RaftError<E>>;

// ---------------------------------------------------------------------------------------------------------
// Client side

/// Creates the connections to the other nodes. All share one pooled client.
#[derive(Clone)]
pub(crate) struct HttpNetwork {
    client: PeerClient,
    identity: Arc<Identity>,
}

impl HttpNetwork {
    /// A network sending RPCs as `identity` through `client`.
    pub(crate) fn new(client: PeerClient, identity: Arc<Identity>) -> Self {
        HttpNetwork { client, identity }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpConnection;

    /// Connects lazily: nothing is sent until the first RPC. openraft never asks for this node itself.
    async fn new_client(&mut self, target: NodeId, node: &Node) -> HttpConnection {
        HttpConnection {
            client: self.client.clone(),
            identity: self.identity.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// Sends RPCs to one node.
pub(crate) struct HttpConnection {
    client: PeerClient,
    identity: Arc<Identity>,
    target: NodeId,
    /// `host:port`.
    addr: String,
}

impl HttpConnection {
    /// POSTs `rpc` in an envelope to `/raft/{route}` within `option.hard_ttl()`, and maps the answer.
    async fn send<Req, Resp, E>(&self, route: &str, rpc: Req, option: &RPCOption) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let envelope = Envelope { header: self.identity.header(), rpc };
        let body = serde_json::to_vec(&envelope).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let path = format!("/raft/{route}");
        let answer = self
            .client
            .call(&self.addr, &path, Some(body), option.hard_ttl())
            .await
            .map_err(transport_error)?;
        if !answer.status.is_success() {
            let message = refusal_message(answer.status, &answer.body);
            tracing::warn!(target_id = self.target, "Raft {route} RPC refused: {message}");
            // Unreachable, not Network: openraft then backs off instead of retrying at heartbeat rate, and a
            // refusal will not clear within a heartbeat.
            return Err(RPCError::Unreachable(Unreachable::from(AnyError::error(message))));
        }
        let result: Result<Resp, RaftError<E>> =
            serde_json::from_slice(&answer.body).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A failed connect or an answer that is not signed makes openraft back off before retrying; anything
/// else (a timeout included) is retried at once.
fn transport_error<E: std::error::Error>(e: PeerError) -> RpcError<E> {
    match e {
        // A timeout is not a reason to back off: on a loaded host an append can take longer than the
        // heartbeat interval (its timeout), and a 500 ms pause of replication would delay every commit.
        PeerError::Http(e) if e.is_connect() && !e.is_timeout() => {
            RPCError::Unreachable(Unreachable::new(&e))
        }
        PeerError::Http(e) => RPCError::Network(NetworkError::new(&e)),
        unsigned @ PeerError::Unsigned(_) => RPCError::Unreachable(Unreachable::new(&unsigned)),
    }
}

/// The peer's `{"error": ...}` message, or the status and raw body if it sent something else.
fn refusal_message(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(refusal) => format!("HTTP {status}: {}", refusal.error),
        Err(_) => format!("HTTP {status}: {}", String::from_utf8_lossy(body)),
    }
}

impl RaftNetwork<TypeConfig> for HttpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.send("append", rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.send("snapshot", rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.send("vote", rpc, &option).await
    }
}

// ---------------------------------------------------------------------------------------------------------
// Server side

/// What the RPC handlers share.
#[derive(Clone)]
pub(crate) struct RpcState {
    /// This node's Raft handle.
    pub raft: Raft,
    /// This node's identity.
    pub identity: Arc<Identity>,
}

/// Whom a route admits, beyond the scope and cluster-id check every route makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Any sender of this cluster. Appends and snapshots come from the Raft leader, which may have been
    /// added by a membership change this node has not seen yet; openraft refuses stale leaders by term.
    Cluster,
    /// Only a voter or learner of this node's membership (or anyone while this node has none yet): a
    /// removed node cannot disrupt the group by campaigning or forwarding requests.
    Member,
    /// A node asking to join: no cluster id nor membership yet, but no other cluster's either.
    Joiner,
}

/// The routes serving this node's Raft RPCs.
pub(crate) fn rpc_routes(raft: Raft, identity: Arc<Identity>, heard: Arc<LeaderHeard>) -> Router {
    let stream = Arc::new(SnapshotStream::default());
    Router::new()
        .route("/raft/append", post(move |state, peer, body| append(state, heard, peer, body)))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(move |state, peer, body| snapshot(state, stream, peer, body)))
        .route(IDENTITY_PATH, get(identity_of_this_node))
        .layer(DefaultBodyLimit::max(MAX_RPC_BODY))
        .with_state(RpcState { raft, identity })
}

/// The route answering who a node is (its [`RpcHeader`]), asked before adding it to a group.
const IDENTITY_PATH: &str = "/raft/identity";

async fn identity_of_this_node(State(state): State<RpcState>) -> Json<RpcHeader> {
    Json(state.identity.header())
}

/// Asks the node at `addr` who it is, within `timeout`.
pub(crate) async fn identity_at(
    client: &PeerClient,
    addr: &str,
    timeout: std::time::Duration,
) -> Result<RpcHeader, String> {
    let url = client.url(addr, IDENTITY_PATH);
    let answer = client.call(addr, IDENTITY_PATH, None, timeout).await.map_err(|e| format!("{url}: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!("{url}: {}", refusal_message(answer.status, &answer.body)));
    }
    serde_json::from_slice(&answer.body).map_err(|e| format!("{url}: unreadable answer: {e}"))
}

/// The client certificate of the request, if it came over TLS with one.
pub(crate) type Peer = Option<Extension<PeerCertificate>>;

async fn append(
    State(state): State<RpcState>,
    heard: Arc<LeaderHeard>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let call = |raft: Raft, rpc| async move {
        let answer = raft.append_entries(rpc).await;
        // Accepted from the leader of this node's term (a higher vote refuses it): its lease here renewed.
        if matches!(&answer, Ok(a) if !matches!(a, AppendEntriesResponse::HigherVote(_))) {
            heard.now();
        }
        answer
    };
    serve(state, peer, body, "append", Admit::Cluster, call).await
}

async fn vote(State(state): State<RpcState>, peer: Peer, body: Result<Bytes, BytesRejection>) -> Response {
    serve(state, peer, body, "vote", Admit::Member, |raft, rpc| async move { raft.vote(rpc).await }).await
}

async fn snapshot(
    State(state): State<RpcState>,
    stream: Arc<SnapshotStream>,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let envelope = match accept(&state, peer, body, "snapshot", Admit::Cluster).await {
        Ok(envelope) => envelope,
        Err(refusal) => return refusal,
    };
    stream.receive(&state.raft, envelope.rpc).await
}

/// Accepts a request, and answers with the JSON `Result` of `call`.
async fn serve<Req, Resp, E, F, Fut>(
    state: RpcState,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
    kind: &str,
    admit: Admit,
    call: F,
) -> Response
where
    Req: DeserializeOwned,
    Resp: Serialize,
    E: Serialize,
    F: FnOnce(Raft, Req) -> Fut,
    Fut: Future<Output = Result<Resp, RaftError<E>>>,
{
    match accept(&state, peer, body, kind, admit).await {
        Ok(envelope) => Json(call(state.raft, envelope.rpc).await).into_response(),
        Err(refusal) => refusal,
    }
}

/// Parses the envelope of a `kind` request and admits its sender; `Err` is the refusal to answer
/// (400 for a malformed body, 403 for a sender that is not admitted).
pub(crate) async fn accept<Req: DeserializeOwned>(
    state: &RpcState,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
    kind: &str,
    admit: Admit,
) -> Result<Envelope<Req>, Response> {
    let body = body.map_err(|r| refuse(r.status(), format!("{kind} request: {}", r.body_text())))?;
    let envelope: Envelope<Req> = serde_json::from_slice(&body)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("malformed {kind} request: {e}")))?;
    let from = envelope.header.from;
    if let Some(Extension(cert)) = peer {
        let addr = member_addr(&state.raft, from);
        auth::check_certificate(&cert, from, addr.as_deref())
            .map_err(|m| refuse(StatusCode::FORBIDDEN, m))?;
    }
    let admitted = match admit {
        Admit::Joiner => state.identity.check_joiner(&envelope.header),
        Admit::Cluster | Admit::Member => state.identity.admit(&envelope.header).await,
    };
    match admitted {
        Ok(()) => {}
        Err(e @ DcsError::Refused(_)) => return Err(refuse(StatusCode::FORBIDDEN, e.to_string())),
        Err(e) => return Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
    if admit == Admit::Member {
        check_member(&state.raft, from).map_err(|m| refuse(StatusCode::FORBIDDEN, m))?;
    }
    Ok(envelope)
}

/// The Raft address of node `id` in this node's membership.
pub(crate) fn member_addr(raft: &Raft, id: NodeId) -> Option<String> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    metrics.membership_config.membership().get_node(&id).map(|node| node.addr.clone())
}

/// Refuses a sender that is neither a voter nor a learner of this node's membership, unless this node has
/// no membership yet (a fresh node being added learns it from its first RPCs).
fn check_member(raft: &Raft, from: NodeId) -> Result<(), String> {
    let metrics = raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    // `nodes()` holds every voter and every learner.
    if membership.nodes().next().is_none() || membership.get_node(&from).is_some() {
        Ok(())
    } else {
        Err(format!("node {from} is not a member of this Raft group"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::log_store::LogStore;
    use crate::raft::state_machine::StateMachineStore;
    use crate::raft::storage::Storage;
    use crate::RaftMember;
    use openraft::Vote;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::time::Duration;
    use tempfile::TempDir;
    use tokio::net::TcpListener;

    const SCOPE: &str = "pg-main";
    const CLUSTER: &str = "cluster-1";

    /// A Raft node serving [`rpc_routes`] on a loopback port.
    struct TestNode {
        raft: Raft,
        identity: Arc<Identity>,
        addr: SocketAddr,
        _dir: TempDir,
    }

    /// An identity with its own storage, for a node that only sends.
    async fn identity(id: NodeId, scope: &str, cluster_id: Option<&str>) -> (Arc<Identity>, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).await.unwrap();
        let identity =
            Identity::load(id, false, scope.to_owned(), crate::DEFAULT_NAMESPACE.to_owned(), storage)
                .await
                .unwrap();
        if let Some(cluster_id) = cluster_id {
            identity.set_cluster_id(cluster_id).await.unwrap();
        }
        (Arc::new(identity), dir)
    }

    async fn start_node(id: NodeId) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).await.unwrap();
        let identity = Arc::new(
            Identity::load(id, false, SCOPE.to_owned(), crate::DEFAULT_NAMESPACE.to_owned(), storage.clone())
                .await
                .unwrap(),
        );
        let config = openraft::Config {
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..Default::default()
        };
        let network = HttpNetwork::new(crate::RaftSecurity::default().client().unwrap(), identity.clone());
        let state_machine = StateMachineStore::restore(storage.clone()).await.unwrap();
        let raft = Raft::new(
            id,
            Arc::new(config.validate().unwrap()),
            network,
            LogStore::new(storage.clone()),
            state_machine,
        )
        .await
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = rpc_routes(raft.clone(), identity.clone(), Arc::default());
        tokio::spawn(async move { axum::serve(listener, routes).await });
        TestNode { raft, identity, addr, _dir: dir }
    }

    /// A node initialized with itself and node 2 (unreachable) as voters, in cluster [`CLUSTER`].
    async fn member_node() -> TestNode {
        let node = start_node(1).await;
        node.identity.set_cluster_id(CLUSTER).await.unwrap();
        let members =
            BTreeMap::from([(1, RaftMember::at(node.addr.to_string())), (2, RaftMember::at("127.0.0.1:9"))]);
        node.raft.initialize(members).await.unwrap();
        node.raft
            .wait(Some(Duration::from_secs(5)))
            .metrics(|m| m.membership_config.nodes().count() == 2, "membership")
            .await
            .unwrap();
        node
    }

    fn header(scope: &str, cluster_id: Option<&str>, from: NodeId) -> RpcHeader {
        RpcHeader {
            scope: scope.to_owned(),
            namespace: crate::DEFAULT_NAMESPACE.to_owned(),
            cluster_id: cluster_id.map(str::to_owned),
            from,
        }
    }

    fn vote_request(from: NodeId) -> VoteRequest<NodeId> {
        VoteRequest::new(Vote::new(1, from), None)
    }

    /// POSTs raw bytes; returns the status and the JSON body.
    async fn post(addr: SocketAddr, route: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("http://{addr}/raft/{route}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{route}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        (status, json)
    }

    async fn post_vote(addr: SocketAddr, header: RpcHeader) -> (StatusCode, serde_json::Value) {
        let body = serde_json::to_vec(&Envelope { header, rpc: vote_request(2) }).unwrap();
        post(addr, "vote", body).await
    }

    fn error_of(body: &serde_json::Value) -> &str {
        body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"))
    }

    #[tokio::test]
    async fn malformed_bodies_are_answered_400_and_the_server_keeps_serving() {
        let node = start_node(1).await;
        let good_header = serde_json::to_string(&header(SCOPE, None, 2)).unwrap();
        let bodies: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"garbage".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x80],
            b"{}".to_vec(),
            b"[1, 2, 3]".to_vec(),
            b"null".to_vec(),
            br#"{"header": {"scope": 7}, "rpc": {}}"#.to_vec(),
            format!(r#"{{"header": {good_header}, "rpc": {{"unexpected": true}}}}"#).into_bytes(),
            format!(r#"{{"header": {good_header}, "rpc": [1, 2]}}"#).into_bytes(),
            format!(r#"{{"header": {good_header}}}"#).into_bytes(),
            format!(r#"{{"header": {good_header}, "rpc": {}"#, "[".repeat(100_000)).into_bytes(),
            b"{\"header\": ".repeat(10_000),
        ];
        for route in ["append", "vote", "snapshot"] {
            for body in &bodies {
                let (status, json) = post(node.addr, route, body.clone()).await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{route}: {json}");
                let error = error_of(&json);
                assert!(error.starts_with(&format!("malformed {route} request: ")), "{error}");
            }
        }
        let (status, json) = post_vote(node.addr, header(SCOPE, None, 2)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }

    #[tokio::test]
    async fn another_namespace_of_the_same_scope_is_refused_403_naming_both() {
        let node = member_node().await;
        let other = RpcHeader { namespace: "/other/".to_owned(), ..header(SCOPE, Some(CLUSTER), 2) };
        let (status, json) = post_vote(node.addr, other).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let error = error_of(&json);
        assert!(error.contains("\"/other/\"") && error.contains("\"/service/\""), "{json}");
    }

    #[tokio::test]
    async fn another_scope_or_cluster_is_refused_403() {
        let node = member_node().await;
        let (status, json) = post_vote(node.addr, header("other-scope", Some(CLUSTER), 2)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(error_of(&json).contains("scope"), "{json}");
        let (status, json) = post_vote(node.addr, header(SCOPE, Some("another-cluster"), 2)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(error_of(&json).contains("another-cluster"), "{json}");
    }

    #[tokio::test]
    async fn a_node_outside_the_membership_is_refused_403() {
        let node = member_node().await;
        let body =
            serde_json::to_vec(&Envelope { header: header(SCOPE, Some(CLUSTER), 9), rpc: vote_request(9) })
                .unwrap();
        let (status, json) = post(node.addr, "vote", body).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(error_of(&json), "node 9 is not a member of this Raft group");
    }

    #[tokio::test]
    async fn a_fresh_node_admits_any_sender() {
        let node = start_node(1).await;
        let (status, json) = post_vote(node.addr, header(SCOPE, None, 9)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
    }

    #[tokio::test]
    async fn a_member_vote_is_answered_200_with_a_json_result() {
        let node = member_node().await;
        let (status, json) = post_vote(node.addr, header(SCOPE, Some(CLUSTER), 2)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        let result: Result<VoteResponse<NodeId>, RaftError> = serde_json::from_value(json).unwrap();
        assert!(result.is_ok(), "{result:?}");
    }

    async fn connect(sender: Arc<Identity>, target: NodeId, addr: String) -> HttpConnection {
        HttpNetwork::new(crate::RaftSecurity::default().client().unwrap(), sender)
            .new_client(target, &RaftMember::at(addr))
            .await
    }

    fn option(ttl_ms: u64) -> RPCOption {
        RPCOption::new(Duration::from_millis(ttl_ms))
    }

    #[tokio::test]
    async fn the_client_gets_the_remote_answer() {
        let node = member_node().await;
        let (sender, _dir) = identity(2, SCOPE, Some(CLUSTER)).await;
        let mut connection = connect(sender, 1, node.addr.to_string()).await;
        let response = connection.vote(vote_request(2), option(1000)).await.unwrap();
        assert!(!response.vote_granted, "{response:?}");

        node.raft.shutdown().await.unwrap();
        let err = connection.vote(vote_request(2), option(1000)).await.unwrap_err();
        assert!(
            matches!(err, RPCError::RemoteError(RemoteError { target: 1, source: RaftError::Fatal(_), .. })),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_client_reports_a_refusal_as_unreachable_so_openraft_backs_off() {
        let node = member_node().await;
        let (sender, _dir) = identity(2, "other-scope", Some(CLUSTER)).await;
        let mut connection = connect(sender, 1, node.addr.to_string()).await;
        let err = connection.vote(vote_request(2), option(1000)).await.unwrap_err();
        let RPCError::Unreachable(e) = err else { panic!("{err:?}") };
        assert!(e.to_string().contains("HTTP 403"), "{e}");
        assert!(e.to_string().contains("scope"), "{e}");
    }

    #[tokio::test]
    async fn the_client_reports_no_listener_as_unreachable_and_no_answer_as_a_network_error() {
        let (sender, _dir) = identity(2, SCOPE, Some(CLUSTER)).await;
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let mut connection = connect(sender.clone(), 1, closed.to_string()).await;
        let err = connection.vote(vote_request(2), option(1000)).await.unwrap_err();
        assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");

        // Accepts connections but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut connection = connect(sender, 1, silent.local_addr().unwrap().to_string()).await;
        let started = std::time::Instant::now();
        let err = connection.vote(vote_request(2), option(200)).await.unwrap_err();
        assert!(matches!(err, RPCError::Network(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }
}
