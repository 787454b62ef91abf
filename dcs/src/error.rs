//! The store's error type: what failed, with which value, and what to do.

use crate::record::{Key, Revision};
use std::time::Duration;
use vigil_fencing::FencingToken;
use vigil_fencing::MemberName;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcsError {
    /// No quorum answered in time; the outcome of a write is unknown (it may still commit).
    #[error(
        "no quorum: {op} did not complete within {waited:?}; a majority of the Raft members must be running \
         and reachable"
    )]
    NoQuorum {
        /// The operation.
        op: &'static str,
        /// How long it waited (the store's `retry_timeout`).
        waited: Duration,
    },
    /// An acquire was refused because another member holds the lease.
    #[error("the leader lease is held by {holder} with token {token}")]
    LeaseHeld {
        /// The holder.
        holder: MemberName,
        /// Its token.
        token: FencingToken,
    },
    /// A renew or release was refused: the caller does not hold the lease with that token.
    #[error("not the lease holder: {member} presented token {token}, the lease is {}", describe_lease(.current))]
    NotHolder {
        /// Who asked.
        member: MemberName,
        /// The token it presented.
        token: FencingToken,
        /// The lease as it is.
        current: Option<(MemberName, FencingToken)>,
    },
    /// A conditional write or delete was refused.
    #[error("{key}: version conflict, the key is {}", describe_version(.current))]
    Conflict {
        /// The key.
        key: Key,
        /// The key's version as it is (`None`: absent).
        current: Option<Revision>,
    },
    /// The request itself is invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The group was initialized before; it can be initialized only once.
    #[error("the Raft group is already initialized (cluster id {cluster_id}); initialize runs only once")]
    AlreadyInitialized {
        /// The group's cluster id.
        cluster_id: String,
    },
    /// A peer belongs to another cluster or scope.
    #[error("refused: {0}")]
    Refused(String),
    /// The local disk failed; the node stops rather than limp on.
    #[error("storage failure (the node stops): {0}")]
    Storage(String),
    /// Any other Raft failure, with openraft's message.
    #[error("raft: {0}")]
    Raft(String),
}

fn describe_lease(current: &Option<(MemberName, FencingToken)>) -> String {
    match current {
        Some((holder, token)) => format!("held by {holder} with token {token}"),
        None => "free".to_owned(),
    }
}

fn describe_version(current: &Option<Revision>) -> String {
    match current {
        Some(rev) => format!("at version {rev}"),
        None => "absent".to_owned(),
    }
}
