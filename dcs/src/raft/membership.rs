//! Membership changes: a node joining, an operator adding, promoting or removing one. The Raft leader
//! carries them out (followers forward them, see [`super::forward`]), with the checks that keep the group
//! safe and available.
//!
//! Node ids are handed out by the store itself ([`Command::AllocateNodeId`]), so none is ever reused.
//! A new node joins as a learner and becomes a voter once it has caught up ([`MemberChange::Promote`]).

use super::auth::PeerClient;
use super::forward::Forwarded;
use super::identity::{Identity, RpcHeader};
use super::network;
use super::node::Transient;
use super::{ClientWriteError, Node, NodeId, Raft, RaftError};
use crate::command::{Command, Outcome};
use openraft::error::{ChangeMembershipError, ForwardToLeader};
use openraft::{ChangeMembers, ServerState, TryAsRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A learner becomes a voter only when it is at most this many log entries behind the leader.
const PROMOTE_MAX_LAG: u64 = 100;

/// How long the leader waits for each remaining voter to answer before removing a node.
const LIVENESS_PROBE: Duration = Duration::from_millis(500);

/// A change of the membership, sent by a member (or the operator through it) to the Raft leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum MemberChange {
    /// Add a node by address before it runs (`vigil members add`); it gets a new id.
    Add {
        /// The node.
        node: Node,
    },
    /// Make a learner a voter once it has caught up. Without `force`, refused when the voters would be
    /// an even number.
    Promote {
        /// The learner.
        id: NodeId,
        /// Accept an even number of voters.
        force: bool,
    },
    /// Remove a node. Refused when the voters left could not form a quorum, and, without `force`, when
    /// they would be an even number.
    Remove {
        /// The node.
        id: NodeId,
        /// Accept an even number of voters.
        force: bool,
    },
}

/// A node asking to join, sent by the node itself to any member: it has no id yet, or the one its data
/// directory holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Join {
    /// The joiner.
    pub node: Node,
    /// The id its data directory holds, if any.
    pub id: Option<NodeId>,
}

impl Forwarded for MemberChange {
    const PATH: &'static str = "/dcs/members";
}

impl Forwarded for Join {
    const PATH: &'static str = "/dcs/join";
}

/// The leader's answer: the node's id, or why the change was refused.
pub(crate) type ChangeResult = Result<Result<NodeId, String>, RaftError<MemberError>>;

/// Why a membership change did not run on this node: it is not the leader, or another change is under
/// way; the sender retries.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum MemberError {
    /// This node is not the Raft leader.
    #[error("{0}")]
    ForwardToLeader(Box<ForwardToLeader<NodeId, Node>>),
    /// Another membership change has not committed yet.
    #[error("another membership change is in progress")]
    InProgress,
    /// openraft refused the change.
    #[error("{0}")]
    Raft(String),
}

impl TryAsRef<ForwardToLeader<NodeId, Node>> for MemberError {
    fn try_as_ref(&self) -> Option<&ForwardToLeader<NodeId, Node>> {
        match self {
            MemberError::ForwardToLeader(f) => Some(&**f),
            _ => None,
        }
    }
}

impl Transient for MemberError {
    fn is_transient(&self) -> bool {
        matches!(self, MemberError::InProgress)
    }
}

/// What a change is checked against: the leader's membership and replication.
struct LeaderView {
    voters: BTreeSet<NodeId>,
    nodes: BTreeMap<NodeId, Node>,
    /// Entries each node is behind the leader's log.
    lag: BTreeMap<NodeId, u64>,
}

impl LeaderView {
    /// The view if this node is the leader; otherwise where to forward.
    fn of(raft: &Raft) -> Result<LeaderView, Box<ForwardToLeader<NodeId, Node>>> {
        let m = raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let nodes: BTreeMap<NodeId, Node> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        if m.state != ServerState::Leader {
            let leader_node = m.current_leader.and_then(|id| nodes.get(&id).cloned());
            let hint = ForwardToLeader { leader_id: m.current_leader, leader_node };
            return Err(Box::new(hint));
        }
        Ok(LeaderView { voters: membership.voter_ids().collect(), nodes, lag: replication_lag(&m) })
    }

    fn id_at(&self, addr: &str) -> Option<NodeId> {
        self.nodes.iter().find(|(_, n)| n.addr == addr).map(|(id, _)| *id)
    }
}

/// On the leader: how many entries each other node is behind its log (a node not replicated to yet is
/// the whole log behind).
pub(crate) fn replication_lag(m: &openraft::RaftMetrics<NodeId, Node>) -> BTreeMap<NodeId, u64> {
    let last = m.last_log_index.unwrap_or(0);
    let lag = m
        .replication
        .iter()
        .flatten()
        .map(|(id, matched)| (*id, last.saturating_sub(matched.map_or(0, |log_id| log_id.index))));
    lag.filter(|(id, _)| *id != m.id).collect()
}

/// On the Raft leader, the index of the last entry a quorum of the voters holds (the leader counting its
/// own log): what is committed. `None` elsewhere (openraft tells only the leader what others hold).
pub(crate) fn quorum_index(m: &openraft::RaftMetrics<NodeId, Node>) -> Option<u64> {
    let replication = m.replication.as_ref()?;
    let held = |id: &NodeId| match *id == m.id {
        true => m.last_log_index.unwrap_or(0),
        false => replication.get(id).copied().flatten().map_or(0, |log_id| log_id.index),
    };
    quorum_held(m.membership_config.membership().voter_ids().map(|id| held(&id)).collect())
}

/// The largest index that a quorum (n / 2 + 1) of the voters holding `indexes` hold.
fn quorum_held(mut indexes: Vec<u64>) -> Option<u64> {
    indexes.sort_unstable_by(|a, b| b.cmp(a));
    indexes.get(indexes.len() / 2).copied()
}

impl Join {
    /// Carries the join out on the leader. `sender` is the header it came with: a node that names its id
    /// must send as that node, with this cluster's id.
    pub(crate) async fn run(self, raft: &Raft, sender: &RpcHeader, identity: &Identity) -> ChangeResult {
        let view =
            LeaderView::of(raft).map_err(|hint| RaftError::APIError(MemberError::ForwardToLeader(hint)))?;
        let Join { node, id } = self;
        if let Some(id) = id {
            if sender.from != id || sender.cluster_id.is_none() || sender.cluster_id != identity.cluster_id()
            {
                return Ok(Err(format!(
                    "node {} of cluster {} cannot speak for node {id} of this cluster",
                    sender.from,
                    sender.cluster_id.as_deref().unwrap_or("(none)")
                )));
            }
        }
        let id = match id {
            Some(id) if view.nodes.contains_key(&id) => id,
            Some(id) => {
                return Ok(Err(format!(
                    "node {id} is not a member of this group (it was removed): a removed node cannot rejoin; \
                     empty its raft.data_dir to join as a new member"
                )))
            }
            None => match view.id_at(&node.addr) {
                Some(id) if view.voters.contains(&id) => {
                    return Ok(Err(format!(
                    "{} is the address of voter {id}: a new server at a member's address must be given that \
                         member's raft.data_dir, or the member removed first (vigil members remove {id})",
                    node.addr
                )))
                }
                // Added by an operator before it ran, or a join retried after its answer was lost.
                Some(id) => id,
                None => return add(raft, &view, node).await,
            },
        };
        describe(raft, &view, id, node).await
    }
}

impl MemberChange {
    /// Carries the change out on the leader.
    pub(crate) async fn run(self, raft: &Raft, client: &PeerClient) -> ChangeResult {
        let view =
            LeaderView::of(raft).map_err(|hint| RaftError::APIError(MemberError::ForwardToLeader(hint)))?;
        match self {
            MemberChange::Add { node } => add(raft, &view, node).await,
            MemberChange::Promote { id, force } => promote(raft, &view, id, force).await,
            MemberChange::Remove { id, force } => remove(raft, &view, client, id, force).await,
        }
    }
}

/// Hands out a new id and adds `node` as a learner under it.
async fn add(raft: &Raft, view: &LeaderView, node: Node) -> ChangeResult {
    if let Some(id) = view.id_at(&node.addr) {
        return Ok(Err(format!("{} is already the address of node {id}", node.addr)));
    }
    let id = match raft.client_write(Command::AllocateNodeId).await.map_err(from_write)?.data {
        Outcome::NodeIdAllocated { id } => id,
        other => return Err(RaftError::APIError(MemberError::Raft(format!("unexpected outcome {other:?}")))),
    };
    let changes = ChangeMembers::AddNodes(BTreeMap::from([(id, node.clone())]));
    raft.change_membership(changes, true).await.map_err(from_write)?;
    tracing::info!(node_id = id, %node, "raft learner added");
    Ok(Ok(id))
}

async fn promote(raft: &Raft, view: &LeaderView, id: NodeId, force: bool) -> ChangeResult {
    if view.voters.contains(&id) {
        return Ok(Ok(id));
    }
    if !view.nodes.contains_key(&id) {
        return Ok(Err(format!("node {id} is not a member of this group")));
    }
    match view.lag.get(&id) {
        Some(lag) if *lag <= PROMOTE_MAX_LAG => {}
        lag => {
            let behind =
                lag.map_or("not replicated to yet".to_owned(), |lag| format!("{lag} entries behind"));
            return Ok(Err(format!("learner {id} is {behind}; it can become a voter once it has caught up")));
        }
    }
    if let Err(why) = odd_voters(view.voters.len() + 1, force) {
        return Ok(Err(format!("promoting node {id} would make {why}")));
    }
    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
        .await
        .map_err(from_write)?;
    tracing::info!(node_id = id, voters = view.voters.len() + 1, "raft learner promoted to voter");
    Ok(Ok(id))
}

async fn remove(
    raft: &Raft,
    view: &LeaderView,
    client: &PeerClient,
    id: NodeId,
    force: bool,
) -> ChangeResult {
    let Some(node) = view.nodes.get(&id) else {
        return Ok(Err(format!("node {id} is not a member of this group")));
    };
    if view.voters.contains(&id) {
        let left: Vec<NodeId> = view.voters.iter().copied().filter(|v| *v != id).collect();
        if left.is_empty() {
            return Ok(Err(format!("node {id} is the only voter")));
        }
        let me = raft.metrics().borrow().id;
        let mut answering = 0;
        for voter in &left {
            let up = *voter == me
                || network::identity_at(client, &view.nodes[voter].addr, LIVENESS_PROBE)
                    .await
                    .is_ok_and(|h| h.from == *voter);
            answering += usize::from(up);
        }
        let quorum = left.len() / 2 + 1;
        if answering < quorum {
            return Ok(Err(format!(
                "removing node {id} would lose quorum: of the {} voters left only {answering} answer, {quorum} are needed",
                left.len()
            )));
        }
        if let Err(why) = odd_voters(left.len(), force) {
            return Ok(Err(format!("removing node {id} would leave {why}")));
        }
    }
    let changes = if view.voters.contains(&id) {
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    raft.change_membership(changes, false).await.map_err(from_write)?;
    tracing::info!(node_id = id, %node, "raft member removed");
    Ok(Ok(id))
}

/// Records what `node` says of itself under `id` (a new address, its name, whether it is a witness).
async fn describe(raft: &Raft, view: &LeaderView, id: NodeId, node: Node) -> ChangeResult {
    match view.nodes.get(&id) {
        None => Ok(Err(format!("node {id} is not a member of this group"))),
        Some(known) if *known == node => Ok(Ok(id)),
        Some(known) => {
            let changes = ChangeMembers::SetNodes(BTreeMap::from([(id, node.clone())]));
            raft.change_membership(changes, true).await.map_err(from_write)?;
            tracing::info!(node_id = id, before = %known, after = %node, "raft member described itself");
            Ok(Ok(id))
        }
    }
}

/// Refuses an even number of voters without `force`: it tolerates no more failures than one fewer.
fn odd_voters(voters: usize, force: bool) -> Result<(), String> {
    if voters % 2 == 1 || force {
        return Ok(());
    }
    Err(format!(
        "{voters} voters, an even number, which tolerates no more failures than {}; use --force to accept it",
        voters - 1
    ))
}

fn from_write(e: RaftError<ClientWriteError>) -> RaftError<MemberError> {
    match e {
        RaftError::Fatal(f) => RaftError::Fatal(f),
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            RaftError::APIError(MemberError::ForwardToLeader(Box::new(f)))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::InProgress(
            _,
        ))) => RaftError::APIError(MemberError::InProgress),
        RaftError::APIError(other) => RaftError::APIError(MemberError::Raft(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_index_is_what_a_quorum_holds() {
        assert_eq!(quorum_held(vec![9, 7, 3]), Some(7));
        assert_eq!(quorum_held(vec![9, 3, 7, 8, 1]), Some(7));
        assert_eq!(quorum_held(vec![9, 3, 7, 8]), Some(7), "4 voters: a quorum is 3");
        assert_eq!(quorum_held(vec![5]), Some(5));
        assert_eq!(quorum_held(Vec::new()), None);
    }

    #[test]
    fn even_voters_need_force() {
        assert!(odd_voters(3, false).is_ok());
        assert!(odd_voters(1, false).is_ok());
        let why = odd_voters(4, false).unwrap_err();
        assert!(why.contains("4 voters") && why.contains("--force"), "{why}");
        assert!(odd_voters(4, true).is_ok());
    }
}
