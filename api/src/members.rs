//! The Raft group's membership as the management routes show and change it (`vigil members`).

use serde::{Deserialize, Serialize};

/// One node of the Raft group in `GET /members`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMemberInfo {
    /// Its Raft node id: handed out once, never reused.
    pub id: u64,
    /// Its member name; empty until the node has started and described itself.
    pub name: String,
    /// Its Raft address (`host:port`).
    pub raft_addr: String,
    /// `voter` or `learner` (a learner replicates the log but does not vote yet).
    pub raft_role: String,
    /// A witness votes but has no database and never holds the lease.
    pub witness: bool,
    /// Whether it is the Raft leader (not the database primary).
    pub raft_leader: bool,
    /// How many log entries it is behind the Raft leader, when the answering node is the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// `POST /members`: add a node by its Raft address before it starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// The new node's Raft address (its `raft.self_addr`).
    pub raft_addr: String,
}

/// `POST /members/promote` and `DELETE /members`: which member, and whether to accept an even number
/// of voters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    /// Its name, node id or Raft address.
    pub member: String,
    /// Accept an even number of voters (which tolerates no more failures than one fewer).
    #[serde(default)]
    pub force: bool,
}
