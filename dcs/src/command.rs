//! The commands the store replicates and the outcome of applying each.

use crate::record::{ExpiryTarget, Key, Revision};
use serde::{Deserialize, Serialize};
use vigil_fencing::FencingToken;
use vigil_fencing::MemberName;

/// The condition a write or delete is applied under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// Whatever the key holds.
    Always,
    /// Only if the key does not exist (create-if-absent).
    Absent,
    /// Only if the key exists at exactly this version (compare-and-set).
    Version(Revision),
}

/// A change to the cluster record. Every command is applied by the same pure function on every replica
/// ([`crate::ClusterState::apply`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Take the leader lease if nobody holds it; a repeat by the current holder renews and returns its token.
    AcquireLease {
        /// Who asks.
        holder: MemberName,
        /// Time to live after each renewal, in milliseconds.
        ttl_ms: u64,
        /// The asking agent process (see [`crate::record::Lease::incarnation`]).
        #[serde(default)]
        incarnation: u64,
    },
    /// Renew the lease; only the holder presenting its current token succeeds.
    RenewLease {
        /// Who asks.
        holder: MemberName,
        /// The token of its grant.
        token: FencingToken,
        /// The asking agent process (see [`crate::record::Lease::incarnation`]).
        #[serde(default)]
        incarnation: u64,
    },
    /// Give the lease up; only the holder presenting its current token succeeds.
    ReleaseLease {
        /// Who asks.
        holder: MemberName,
        /// The token of its grant.
        token: FencingToken,
    },
    /// Release the lease of a holder that is certainly dead: its agent process has exited and no process of
    /// its database is left (what its lifeline certifies, see ARCHITECTURE.md). Applied only if the lease
    /// is still that grant, last taken or renewed by that very agent process (`incarnation`, never 0): a
    /// restarted agent's acquire or renewal makes it a no-op.
    ReleaseDead {
        /// The dead holder.
        holder: MemberName,
        /// The token of its grant.
        token: FencingToken,
        /// The dead agent process.
        incarnation: u64,
        /// The event recording the release, appended to the event log by the same entry when the lease
        /// is released (`null`: none), so that the release is never without its record.
        #[serde(default)]
        event: serde_json::Value,
    },
    /// Write a key under a condition, optionally with a ttl.
    Put {
        /// The key.
        key: Key,
        /// The new value.
        value: serde_json::Value,
        /// When to apply it.
        condition: Condition,
        /// Expire the key this long after this write unless written again.
        ttl_ms: Option<u64>,
    },
    /// Delete a key under a condition.
    Delete {
        /// The key.
        key: Key,
        /// When to apply it.
        condition: Condition,
    },
    /// Proposed by the Raft leader's lessor when a timer ran out; applied only if the target is still current.
    Expire(ExpiryTarget),
    /// Hand out a Raft node id no node ever had, for a node about to join.
    AllocateNodeId,
    /// Append an event to the event log (see [`crate::EventLog`]); its id is the entry's index.
    AppendEvent {
        /// The event, as JSON.
        event: serde_json::Value,
    },
}

/// What applying one command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The lease is the asker's, with this token, renewed at this revision.
    LeaseGranted {
        /// The fencing token.
        token: FencingToken,
        /// The revision of this grant or renewal.
        renewed_at: Revision,
    },
    /// An acquire was refused: somebody else holds the lease.
    LeaseHeld {
        /// The holder.
        holder: MemberName,
        /// Its token.
        token: FencingToken,
    },
    /// A renew or release was refused: the asker is not the holder with that token.
    NotHolder {
        /// The lease as it is, if any.
        current: Option<(MemberName, FencingToken)>,
    },
    /// The lease was released.
    LeaseReleased,
    /// A put or an event append succeeded.
    Written {
        /// The key's new version.
        version: Revision,
    },
    /// A delete succeeded (or the key was already absent with [`Condition::Always`]).
    Deleted,
    /// A conditional put or delete was refused.
    ConditionFailed {
        /// The key's version as it is (`None`: absent).
        current: Option<Revision>,
    },
    /// An expiry was applied.
    Expired,
    /// An expiry named a version that is no longer current: nothing changed.
    Stale,
    /// A Raft node id was handed out.
    NodeIdAllocated {
        /// The id, larger than every id any node of the group ever had.
        id: u64,
    },
}
