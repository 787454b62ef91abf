//! Everything that touches openraft lives below this module, so that a move to openraft 0.10 changes
//! nothing outside it.

mod auth;
mod dead_leader;
mod forward;
mod identity;
mod leader_placement;
mod lessor;
mod log_store;
mod membership;
mod network;
mod node;
mod op_timeout;
mod refusal;
mod snapshot_stream;
mod state_machine;
mod storage;

pub use auth::{RaftSecurity, RaftTls};
pub use node::{formed_without, join, stored_node_id, DcsNode, LeaderWatch, LeaseGrant, RaftStatus};
pub use storage::remove_store;

use crate::command::{Command, Outcome};
use std::io::Cursor;
use std::time::Duration;
use tokio::time::Instant;

openraft::declare_raft_types!(
    /// The openraft type configuration of the store: commands in, outcomes out.
    pub TypeConfig:
        D = Command,
        R = Outcome,
        Node = crate::RaftMember,
);

/// A Raft node id. Never reused within a cluster.
pub type NodeId = u64;
/// The Raft handle.
pub(crate) type Raft = openraft::Raft<TypeConfig>;
/// What membership records about each node.
pub(crate) type Node = crate::RaftMember;
/// openraft's error of an API call, with the call's own error type `E`.
pub(crate) type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
/// The error of a write or membership change.
pub(crate) type ClientWriteError = openraft::error::ClientWriteError<NodeId, Node>;

/// `base + wait` on tokio's clock, capped as [`vigil_fencing::instant_after`]: ttls and timeouts come
/// from the configuration and must not overflow the clock.
pub(crate) fn instant_after(base: Instant, wait: Duration) -> Instant {
    Instant::from_std(vigil_fencing::instant_after(base.into_std(), wait))
}
