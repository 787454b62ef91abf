//! A running store node: the public face of the store.
//!
//! Writes and linearizable reads can be made on any node: a follower hands them to the Raft leader over
//! HTTP (see [`super::forward`]). Every operation has one deadline, the `op_timeout` in force when it starts
//! (the cluster's `retry_timeout`, see [`DcsNode::set_op_timeout`]); when no
//! quorum answers by then it fails with [`DcsError::NoQuorum`] and never hangs.

use super::auth::{self, Mac, PeerClient};
use super::forward::{self, CallFailure, Forwarded, LeaderWrite, ReadIndex};
use super::identity::{Identity, RpcHeader};
use super::lessor::Lessor;
use super::log_store::LogStore;
use super::membership::{Join, MemberChange};
use super::network::{self, HttpNetwork};
use super::op_timeout::OpTimeout;
use super::state_machine::StateMachineStore;
use super::storage::Storage;
use super::{ClientWriteError, Node, NodeId, Raft, RaftError};
use crate::command::{Command, Condition, Outcome};
use crate::config::DcsConfig;
use crate::error::DcsError;
use crate::member::RaftMember;
use crate::record::{Key, Lease, Revision};
use crate::state::ClusterState;
use openraft::error::{ChangeMembershipError, CheckIsLeaderError, Fatal, ForwardToLeader};
use openraft::{SnapshotPolicy, TryAsRef};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use vigil_fencing::MemberName;
use vigil_fencing::{FencingToken, HolderDeadline};

/// What a successful acquire or renew gives the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// The holder.
    pub holder: MemberName,
    /// The fencing token of the grant.
    pub token: FencingToken,
    /// The revision of this grant or renewal.
    pub renewed_at: Revision,
    /// The lease's time to live.
    pub ttl: Duration,
    /// The time the holder keeps in reserve before `ttl` runs out.
    pub safety_margin: Duration,
    /// When the holder must have stopped acting as primary unless it renews: `sent_at + ttl - margin`,
    /// counted from the moment the request was sent.
    pub deadline: HolderDeadline,
}

/// The Raft view of one node, for status pages and metrics. Never a source of "I am primary".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RaftStatus {
    /// This node's id.
    pub node_id: NodeId,
    /// The current Raft term.
    pub term: u64,
    /// The Raft leader as this node knows it.
    pub leader: Option<NodeId>,
    /// The voters of the current membership.
    pub voters: BTreeSet<NodeId>,
    /// Every member (voters and learners): its Raft address, name and whether it is a witness.
    pub nodes: BTreeMap<NodeId, RaftMember>,
    /// On the Raft leader only: how many log entries each other member is behind it.
    pub lag: BTreeMap<NodeId, u64>,
    /// The index of the last entry applied here.
    pub last_applied: Option<u64>,
    /// The index of the last entry purged from the log (covered by a snapshot).
    pub purged: Option<u64>,
    /// On the Raft leader only: the index of the last entry a quorum of voters holds.
    pub committed: Option<u64>,
}

/// A running store node.
pub struct DcsNode {
    pub(super) raft: Raft,
    state: watch::Receiver<Arc<ClusterState>>,
    pub(super) identity: Arc<Identity>,
    client: PeerClient,
    /// Checks the signatures of the requests this node serves, when `raft.password` is set.
    mac: Option<Arc<Mac>>,
    /// The TLS side of the Raft listener, when `raft.certfile` is set.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// The operation timeout, shared with the forwarding routes and the lessor.
    op_timeout: OpTimeout,
    lessor: Lessor,
    /// How long reads and writes take here (and, recorded by the agent, lease renewals and HA cycles).
    timings: Arc<vigil_api::Timings>,
    /// This process's number, drawn at start, carried by every acquire and renewal it sends.
    incarnation: u64,
    /// The last Raft term in which this node hastened an election (see `dead_leader.rs`).
    pub(super) hastened_term: std::sync::atomic::AtomicU64,
    /// When this node last accepted an append from the Raft leader.
    pub(super) heard: Arc<super::dead_leader::LeaderHeard>,
    /// The grant last seen held, and when this node last called an election to take the leadership off
    /// its holder's node.
    pub(super) placement: super::leader_placement::Placement,
}

impl DcsNode {
    /// Opens the data directory and starts the Raft node. A node that ran before resumes from its log and
    /// snapshot; a new one waits to be initialized ([`DcsNode::initialize`]) or added to a group.
    pub async fn start(config: DcsConfig) -> Result<DcsNode, DcsError> {
        let storage = Storage::open(&config.data_dir).await?;
        let identity = Arc::new(
            Identity::load(
                config.node_id,
                config.joined,
                config.scope.clone(),
                config.namespace.clone(),
                storage.clone(),
            )
            .await?,
        );
        let state_machine = StateMachineStore::restore(storage.clone()).await.map_err(DcsError::from)?;
        let state = state_machine.subscribe();
        let raft_config = openraft::Config {
            cluster_name: config.scope.clone(),
            heartbeat_interval: millis(config.timing.heartbeat),
            election_timeout_min: millis(config.timing.election_min),
            election_timeout_max: millis(config.timing.election_max),
            install_snapshot_timeout: 2000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every,
            replication_lag_threshold: config.snapshot_every * 2,
            ..Default::default()
        }
        .validate()
        .map_err(|e| DcsError::Invalid(format!("raft timing: {e}")))?;
        let client = config.security.client()?;
        let tls = config.security.server_config()?;
        let network = HttpNetwork::new(client.clone(), identity.clone());
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network,
            LogStore::new(storage.clone()),
            state_machine,
        )
        .await
        .map_err(|e| DcsError::Storage(e.to_string()))?;
        let op_timeout = OpTimeout::new(config.op_timeout);
        let lessor = Lessor::spawn(raft.clone(), state.clone(), op_timeout.clone());
        tracing::info!(node_id = config.node_id, scope = %config.scope, data_dir = %config.data_dir.display(),
            cluster_id = ?identity.cluster_id(), tls = tls.is_some(), password = config.security.password.is_some(),
            "store node started");
        let mac = config.security.mac();
        let timings = Arc::default();
        let incarnation = draw_incarnation();
        let hastened_term = Default::default();
        Ok(DcsNode {
            raft,
            state,
            identity,
            client,
            mac,
            tls,
            op_timeout,
            lessor,
            timings,
            incarnation,
            hastened_term,
            heard: Arc::default(),
            placement: Default::default(),
        })
    }

    /// This agent process's number, carried by its lease acquires and renewals (see
    /// [`crate::record::Lease::incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The durations measured on this node: its reads and writes, and what the agent records beside.
    pub fn timings(&self) -> Arc<vigil_api::Timings> {
        self.timings.clone()
    }

    /// How long a write or linearizable read may take before it fails with [`DcsError::NoQuorum`].
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout.get()
    }

    /// Sets that timeout from now on: the agent passes the cluster's `retry_timeout` as it reads it from
    /// the dynamic configuration in the store, every cycle. Operations under way keep the one they
    /// started with.
    pub fn set_op_timeout(&self, timeout: Duration) {
        let before = self.op_timeout.set(timeout);
        let now = self.op_timeout.get();
        if before != now {
            tracing::info!(before = ?before, after = ?now, "store operation timeout changed (retry_timeout)");
        }
    }

    /// The TLS configuration the Raft listener must be served with (`vigil_api::tls::serve`), when
    /// `raft.certfile` is set: client certificates of the cluster's CA required.
    pub fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.clone()
    }

    /// The routes this node serves to its peers (Raft RPCs and forwarded requests), with the password
    /// check when one is set. Serve them with [`DcsNode::tls`].
    pub fn router(&self) -> axum::Router {
        let rpc = network::rpc_routes(self.raft.clone(), self.identity.clone(), self.heard.clone());
        let routes = rpc.merge(forward::routes(
            self.raft.clone(),
            self.identity.clone(),
            self.client.clone(),
            self.op_timeout.clone(),
        ));
        let raft = self.raft.clone();
        let own_addr = move || network::member_addr(&raft, raft.metrics().borrow().id);
        auth::protect(routes, self.mac.clone(), own_addr)
    }

    /// Forms a new group from its initial members (id → Raft address), exactly once. Every initial member
    /// may call it with the same map; a node that already belongs to a group refuses.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), DcsError> {
        if !members.contains_key(&self.identity.node_id()) {
            return Err(DcsError::Invalid(format!(
                "initial members {members:?} do not include this node ({})",
                self.identity.node_id()
            )));
        }
        let cluster_id = cluster_id(self.identity.scope(), &members);
        let already = self.raft.is_initialized().await.map_err(fatal)?;
        match self.identity.cluster_id() {
            Some(existing) if already || existing != cluster_id => {
                return Err(DcsError::AlreadyInitialized { cluster_id: existing })
            }
            _ if already => return Err(DcsError::AlreadyInitialized { cluster_id: "unknown".into() }),
            _ => {}
        }
        // The id goes to disk first: a crash before `initialize` leaves a node that may retry with the same
        // members, never one that belongs to a group without knowing it.
        self.identity.set_cluster_id(&cluster_id).await?;
        let nodes: BTreeMap<NodeId, Node> = members.iter().map(|(id, addr)| (*id, Node::at(addr))).collect();
        self.raft.initialize(nodes).await.map_err(|e| match e {
            RaftError::APIError(_) => DcsError::AlreadyInitialized { cluster_id: cluster_id.clone() },
            RaftError::Fatal(f) => fatal(f),
        })?;
        tracing::info!(%cluster_id, ?members, "raft group initialized");
        Ok(())
    }

    /// Forms the group on first boot, as every initial member may do at once: initializes it with
    /// `members` unless this node already belongs to a group, or another initial member already formed
    /// this one (this node is then brought up to date by the Raft leader).
    /// A node that joined an existing group never forms one.
    pub async fn form(&self, members: &BTreeMap<NodeId, String>) -> Result<(), DcsError> {
        if self.identity.joined() || self.raft.is_initialized().await.map_err(fatal)? {
            return Ok(());
        }
        let expected = cluster_id(self.identity.scope(), members);
        let others = members.iter().filter(|(id, _)| **id != self.identity.node_id());
        for (id, addr) in others {
            if let Ok(peer) = network::identity_at(&self.client, addr, FORM_PROBE_TIMEOUT).await {
                if peer.cluster_id.as_deref() == Some(expected.as_str()) {
                    tracing::info!(peer = id, cluster_id = %expected, "raft group already formed: joining it");
                    return Ok(());
                }
            }
        }
        match self.initialize(members.clone()).await {
            Ok(()) | Err(DcsError::AlreadyInitialized { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Adds a node by address before it runs (`vigil members add`): it gets a new id, never used before,
    /// and joins as a learner when it starts with that address. Returns the id.
    pub async fn add_member(&self, node: RaftMember) -> Result<NodeId, DcsError> {
        self.change_members("add member", MemberChange::Add { node }).await
    }

    /// Makes learner `id` a voter once it has caught up with the leader; refused before then, and, without
    /// `force`, when the voters would be an even number.
    pub async fn promote(&self, id: NodeId, force: bool) -> Result<(), DcsError> {
        self.change_members("promote member", MemberChange::Promote { id, force }).await.map(|_| ())
    }

    /// Removes node `id` from the group (voter or learner). Refused when the voters left could not form a
    /// quorum of those that answer, and, without `force`, when they would be an even number.
    pub async fn remove(&self, id: NodeId, force: bool) -> Result<(), DcsError> {
        self.change_members("remove member", MemberChange::Remove { id, force }).await.map(|_| ())
    }

    /// Records this node's address, name and role in the membership, through any of `contacts` (Raft
    /// addresses of members) or the leader this node knows: a member that moved to a new address is
    /// found there again.
    pub async fn describe(&self, contacts: &[String], node: RaftMember) -> Result<(), DcsError> {
        let join = Join { node, id: Some(self.identity.node_id()) };
        let deadline = super::instant_after(Instant::now(), self.op_timeout.get());
        let mut contacts: Vec<String> = contacts.to_vec();
        contacts.extend(self.raft_status().leader.and_then(|id| network::member_addr(&self.raft, id)));
        join_via(&self.client, self.identity.header(), &contacts, &join, deadline).await.map(|_| ())
    }

    async fn change_members(&self, op: &'static str, change: MemberChange) -> Result<NodeId, DcsError> {
        let run = || change.clone().run(&self.raft, &self.client);
        self.leader_call(op, &change, run).await?.map_err(DcsError::Refused)
    }

    /// Takes the leader lease if it is free; a repeat by the holder renews it and returns its token.
    pub async fn acquire_lease(
        &self,
        holder: &MemberName,
        ttl: Duration,
        safety_margin: Duration,
    ) -> Result<LeaseGrant, DcsError> {
        let ttl_ms = ttl_millis("lease", ttl)?;
        let sent_at = Instant::now();
        let command = Command::AcquireLease { holder: holder.clone(), ttl_ms, incarnation: self.incarnation };
        match self.write("acquire lease", command).await? {
            Outcome::LeaseGranted { token, renewed_at } => {
                tracing::info!(%holder, %token, %renewed_at, ttl_ms, "leader lease acquired");
                Ok(grant(holder, token, renewed_at, ttl, safety_margin, sent_at))
            }
            Outcome::LeaseHeld { holder, token } => Err(DcsError::LeaseHeld { holder, token }),
            other => Err(unexpected("acquire lease", other)),
        }
    }

    /// Renews a lease this holder was granted; the new grant carries the new deadline.
    pub async fn renew_lease(&self, held: &LeaseGrant) -> Result<LeaseGrant, DcsError> {
        let sent_at = Instant::now();
        let command = Command::RenewLease {
            holder: held.holder.clone(),
            token: held.token,
            incarnation: self.incarnation,
        };
        match self.write("renew lease", command).await? {
            Outcome::LeaseGranted { token, renewed_at } => {
                tracing::debug!(holder = %held.holder, %token, %renewed_at, "leader lease renewed");
                Ok(grant(&held.holder, token, renewed_at, held.ttl, held.safety_margin, sent_at))
            }
            Outcome::NotHolder { current } => Err(not_holder(held, current)),
            other => Err(unexpected("renew lease", other)),
        }
    }

    /// Gives the lease up.
    pub async fn release_lease(&self, held: &LeaseGrant) -> Result<(), DcsError> {
        let command = Command::ReleaseLease { holder: held.holder.clone(), token: held.token };
        match self.write("release lease", command).await? {
            Outcome::LeaseReleased => {
                tracing::info!(holder = %held.holder, token = %held.token, "leader lease released");
                Ok(())
            }
            Outcome::NotHolder { current } => Err(not_holder(held, current)),
            other => Err(unexpected("release lease", other)),
        }
    }

    /// Releases the lease of `holder`, whose agent process `incarnation` is certainly dead and whose
    /// database is certainly stopped (its lifeline's certificate), if that process still holds its grant
    /// `token` ([`Command::ReleaseDead`]); `event` goes into the event log with the release.
    pub async fn release_dead(
        &self,
        holder: &MemberName,
        token: FencingToken,
        incarnation: u64,
        event: serde_json::Value,
    ) -> Result<(), DcsError> {
        let command = Command::ReleaseDead { holder: holder.clone(), token, incarnation, event };
        match self.write("release a dead holder's lease", command).await? {
            Outcome::LeaseReleased => {
                tracing::info!(%holder, %token, incarnation, "leader lease released: its holder is certainly dead");
                Ok(())
            }
            Outcome::NotHolder { current } => {
                Err(DcsError::NotHolder { member: holder.clone(), token, current })
            }
            other => Err(unexpected("release a dead holder's lease", other)),
        }
    }

    /// Writes `key` if `condition` holds; with a ttl the key expires unless written again in time.
    pub async fn put(
        &self,
        key: &Key,
        value: serde_json::Value,
        condition: Condition,
        ttl: Option<Duration>,
    ) -> Result<Revision, DcsError> {
        let ttl_ms = ttl.map(|t| ttl_millis(&key.to_string(), t)).transpose()?;
        let command = Command::Put { key: key.clone(), value, condition, ttl_ms };
        match self.write("put", command).await? {
            Outcome::Written { version } => Ok(version),
            Outcome::ConditionFailed { current } => Err(DcsError::Conflict { key: key.clone(), current }),
            other => Err(unexpected("put", other)),
        }
    }

    /// Appends `event` to the event log; its id is the returned revision.
    pub async fn append_event(&self, event: serde_json::Value) -> Result<Revision, DcsError> {
        match self.write("append event", Command::AppendEvent { event }).await? {
            Outcome::Written { version } => Ok(version),
            other => Err(unexpected("append event", other)),
        }
    }

    /// Deletes `key` if `condition` holds.
    pub async fn delete(&self, key: &Key, condition: Condition) -> Result<(), DcsError> {
        match self.write("delete", Command::Delete { key: key.clone(), condition }).await? {
            Outcome::Deleted => Ok(()),
            Outcome::ConditionFailed { current } => Err(DcsError::Conflict { key: key.clone(), current }),
            other => Err(unexpected("delete", other)),
        }
    }

    /// The cluster record as of now: every write that completed before this call is in it
    /// (a read-index round through the Raft leader, then a wait for the local node to apply up to it).
    pub async fn read(&self) -> Result<Arc<ClusterState>, DcsError> {
        let started = Instant::now();
        let timeout = self.op_timeout.get();
        let read_log_id = self.leader_call("read", &ReadIndex, || self.raft.ensure_linearizable()).await?;
        let index = read_log_id.map(|id| id.index);
        let remaining = timeout.saturating_sub(started.elapsed());
        self.raft
            .wait(Some(remaining))
            .applied_index_at_least(index, "linearizable read")
            .await
            .map_err(|_| DcsError::NoQuorum { op: "read", waited: timeout })?;
        self.timings.store_read.observe(started.elapsed());
        Ok(self.local())
    }

    /// The cluster record as applied on this node: fast, possibly behind the cluster. Not for decisions.
    pub fn local(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// A receiver of the cluster record after every change applied on this node.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.state.clone()
    }

    /// A watch that wakes as soon as the leader lease changes hands, is released or expires.
    pub fn watch_leader(&self) -> LeaderWatch {
        let mut state = self.state.clone();
        let last = state.borrow_and_update().leader.clone();
        LeaderWatch { state, last }
    }

    /// This node's Raft view.
    pub fn raft_status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        RaftStatus {
            node_id: m.id,
            term: m.current_term,
            leader: m.current_leader,
            voters: membership.voter_ids().collect(),
            nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
            lag: super::membership::replication_lag(&m),
            last_applied: m.last_applied.map(|id| id.index),
            purged: m.purged.map(|id| id.index),
            committed: super::membership::quorum_index(&m),
        }
    }

    /// Stops the lessor and the Raft node. The data directory stays as it is.
    pub async fn shutdown(self) {
        self.lessor.stop().await;
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft core did not stop cleanly");
        }
        tracing::info!(node_id = self.identity.node_id(), "store node stopped");
    }

    async fn write(&self, op: &'static str, command: Command) -> Result<Outcome, DcsError> {
        let started = Instant::now();
        let request = LeaderWrite::Command(command);
        let response = self.leader_call(op, &request, || request.clone().run(&self.raft)).await?;
        self.timings.store_write.observe(started.elapsed());
        Ok(response.data)
    }

    /// Runs `local` on this node if it is the Raft leader, else sends `request` to the leader, following
    /// `ForwardToLeader` hints until the deadline.
    async fn leader_call<Req, T, E, F, Fut>(
        &self,
        op: &'static str,
        request: &Req,
        local: F,
    ) -> Result<T, DcsError>
    where
        Req: Forwarded,
        T: DeserializeOwned,
        E: DeserializeOwned + Display + Debug + Transient + TryAsRef<ForwardToLeader<NodeId, Node>>,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RaftError<E>>>,
    {
        let timeout = self.op_timeout.get();
        let deadline = super::instant_after(Instant::now(), timeout);
        let attempts = async {
            let mut leader: Option<Node> = None;
            loop {
                let result = match &leader {
                    None => local().await,
                    Some(node) => match forward::call::<_, Result<T, RaftError<E>>>(
                        &self.client,
                        self.identity.header(),
                        node,
                        request,
                        deadline,
                    )
                    .await
                    {
                        Ok(result) => result,
                        Err(e) => {
                            tracing::debug!(op, leader = %node.addr, error = %e, "forwarding failed, retrying");
                            leader = None;
                            tokio::time::sleep(RETRY_PAUSE).await;
                            continue;
                        }
                    },
                };
                let error = match result {
                    Ok(value) => return Ok(value),
                    Err(e) => e,
                };
                if error.api_error().is_some_and(Transient::is_transient) {
                    tracing::debug!(op, error = %error, "transient failure, retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                    continue;
                }
                let Some(hint) = error.forward_to_leader() else {
                    return Err(raft_error(error));
                };
                leader = match (&hint.leader_id, &hint.leader_node) {
                    (Some(id), Some(node)) if *id != self.identity.node_id() => Some(node.clone()),
                    _ => {
                        tokio::time::sleep(RETRY_PAUSE).await;
                        None
                    }
                };
            }
        };
        tokio::time::timeout_at(deadline, attempts)
            .await
            .unwrap_or(Err(DcsError::NoQuorum { op, waited: timeout }))
    }
}

/// Waits for changes of the leader lease.
pub struct LeaderWatch {
    state: watch::Receiver<Arc<ClusterState>>,
    last: Option<Lease>,
}

impl LeaderWatch {
    /// The lease as last returned.
    pub fn current(&self) -> Option<&Lease> {
        self.last.as_ref()
    }

    /// Waits until the lease differs from the last one returned (new holder, new token, released or
    /// expired; renewals do not count) and returns it. `None` from the outer option: the node stopped.
    pub async fn changed(&mut self) -> Option<Option<Lease>> {
        loop {
            self.state.changed().await.ok()?;
            let lease = self.state.borrow_and_update().leader.clone();
            let key = |l: &Option<Lease>| l.as_ref().map(|l| (l.holder.clone(), l.token));
            if key(&lease) != key(&self.last) {
                self.last = lease.clone();
                return Some(lease);
            }
        }
    }
}

/// An openraft API error that may clear by itself, so the call is repeated until its deadline.
pub(super) trait Transient {
    /// Whether it may clear by itself.
    fn is_transient(&self) -> bool;
}

impl Transient for CheckIsLeaderError<NodeId, Node> {
    /// The leader could not reach a quorum this round.
    fn is_transient(&self) -> bool {
        matches!(self, CheckIsLeaderError::QuorumNotEnough(_))
    }
}

impl Transient for ClientWriteError {
    /// Another membership change (such as the initial one) has not committed yet.
    fn is_transient(&self) -> bool {
        matches!(self, ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(_)))
    }
}

/// How long [`DcsNode::form`] waits for each peer to say whether it already belongs to the group.
const FORM_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A ttl in whole milliseconds, from 1 ms to [`vigil_fencing::MAX_TTL`]: the lessor times it on the
/// monotonic clock, which must not overflow.
fn ttl_millis(what: &str, ttl: Duration) -> Result<u64, DcsError> {
    if ttl.as_millis() == 0 || ttl > vigil_fencing::MAX_TTL {
        return Err(DcsError::Invalid(format!("{what}: ttl {ttl:?} must be from 1 ms to 1 day")));
    }
    u64::try_from(ttl.as_millis()).map_err(|_| DcsError::Invalid(format!("{what}: ttl {ttl:?} is too large")))
}

/// Pause between two attempts while the Raft leader is unknown or unreachable.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

fn grant(
    holder: &MemberName,
    token: FencingToken,
    renewed_at: Revision,
    ttl: Duration,
    safety_margin: Duration,
    sent_at: Instant,
) -> LeaseGrant {
    let deadline = HolderDeadline::from_sent(sent_at.into_std(), ttl, safety_margin);
    LeaseGrant { holder: holder.clone(), token, renewed_at, ttl, safety_margin, deadline }
}

/// A number for this process, not 0, different from any other agent's with near certainty: std's
/// randomly seeded hasher over the process id and the time.
fn draw_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    hasher.finish().max(1)
}

fn not_holder(held: &LeaseGrant, current: Option<(MemberName, FencingToken)>) -> DcsError {
    DcsError::NotHolder { member: held.holder.clone(), token: held.token, current }
}

fn unexpected(op: &str, outcome: Outcome) -> DcsError {
    DcsError::Raft(format!("{op}: unexpected outcome {outcome:?}"))
}

fn fatal(f: Fatal<NodeId>) -> DcsError {
    match f {
        Fatal::StorageError(e) => DcsError::Storage(e.to_string()),
        other => DcsError::Raft(other.to_string()),
    }
}

fn raft_error<E: Display>(e: RaftError<E>) -> DcsError {
    match e {
        RaftError::Fatal(f) => fatal(f),
        RaftError::APIError(api) => DcsError::Raft(api.to_string()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The id of a group formed from `members` in `scope`: the same on every initial member, different for
/// another scope or member set.
fn cluster_id(scope: &str, members: &BTreeMap<NodeId, String>) -> String {
    // FNV-1a (64 bit): stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let text = members.iter().fold(scope.to_owned(), |acc, (id, addr)| format!("{acc}\0{id}={addr}"));
    for byte in text.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{scope}-{hash:016x}")
}

/// Whether some of `members` (initial members' ids and Raft addresses, this node's `me` among them)
/// already belong to a group formed without this node: one whose cluster id is not the one `members`
/// form. Members that do not answer in time count as not belonging to any.
pub async fn formed_without(
    security: &crate::RaftSecurity,
    scope: &str,
    members: &BTreeMap<NodeId, String>,
    me: &str,
) -> bool {
    let Ok(client) = security.client() else { return false };
    let expected = cluster_id(scope, members);
    for addr in members.values().filter(|addr| *addr != me) {
        if let Ok(peer) = network::identity_at(&client, addr, FORM_PROBE_TIMEOUT).await {
            if peer.cluster_id.as_ref().is_some_and(|id| *id != expected) {
                tracing::info!(peer = %addr, cluster_id = ?peer.cluster_id, "a partner belongs to a group formed without this node");
                return true;
            }
        }
    }
    false
}

/// The Raft node id kept in the data directory `data_dir`, if a node ran there before.
pub async fn stored_node_id(data_dir: &std::path::Path) -> Result<Option<NodeId>, DcsError> {
    if !data_dir.exists() {
        return Ok(None);
    }
    Identity::stored_node_id(&Storage::open(data_dir).await?).await
}

/// Asks the group that any of `contacts` (members' Raft addresses) belongs to for a node id, for a new
/// node `node` of `scope` in `namespace` about to start: the group hands out an id never used before and
/// adds the node as a learner under it (or returns the id an operator added its address with). Tries
/// until `timeout`; a refusal is final.
pub async fn join(
    security: &crate::RaftSecurity,
    scope: &str,
    namespace: &str,
    contacts: &[String],
    node: RaftMember,
    timeout: Duration,
) -> Result<NodeId, DcsError> {
    let client = security.client()?;
    let header =
        RpcHeader { scope: scope.to_owned(), namespace: namespace.to_owned(), cluster_id: None, from: 0 };
    let deadline = super::instant_after(Instant::now(), timeout);
    join_via(&client, header, contacts, &Join { node, id: None }, deadline).await
}

/// Sends `join` to each of `contacts` in turn, following the leader hints, until one answers or `deadline`.
async fn join_via(
    client: &PeerClient,
    header: RpcHeader,
    contacts: &[String],
    join: &Join,
    deadline: Instant,
) -> Result<NodeId, DcsError> {
    let mut last_error = String::from("no member to ask");
    let mut hint: Option<Node> = None;
    while Instant::now() < deadline {
        let targets: Vec<Node> = hint.take().into_iter().chain(contacts.iter().map(RaftMember::at)).collect();
        for target in &targets {
            let answer = forward::call::<_, super::membership::ChangeResult>(
                client,
                header.clone(),
                target,
                join,
                deadline,
            )
            .await;
            match answer {
                Ok(Ok(Ok(id))) => return Ok(id),
                Ok(Ok(Err(why))) => return Err(DcsError::Refused(why)),
                Ok(Err(e)) => {
                    last_error = format!("{}: {e}", target.addr);
                    if let Some(leader) = e.forward_to_leader().and_then(|f| f.leader_node.clone()) {
                        hint = Some(leader);
                        break;
                    }
                }
                Err(CallFailure::Refused(why)) => return Err(DcsError::Refused(why)),
                Err(CallFailure::Unanswered(why)) => last_error = why,
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
    Err(DcsError::Refused(format!("no member accepted the join in time: {last_error}")))
}
