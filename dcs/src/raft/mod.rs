//! Everything that touches openraft lives below this module, so that a move to openraft 0.10 changes
//! nothing outside it.

pub(crate) mod identity;
pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod state_machine;
pub(crate) mod storage;

use crate::command::{Command, Outcome};
use std::io::Cursor;

openraft::declare_raft_types!(
    /// The openraft type configuration of the store: commands in, outcomes out.
    pub TypeConfig:
        D = Command,
        R = Outcome,
);

/// A Raft node id. Never reused within a cluster.
pub type NodeId = u64;
/// The Raft handle.
pub(crate) type Raft = openraft::Raft<TypeConfig>;
/// What membership records about each node: its Raft RPC address (`host:port`).
pub(crate) type Node = openraft::BasicNode;
