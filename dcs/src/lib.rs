//! The cluster store: a small replicated store kept by the agents themselves through Raft (openraft), so a
//! Vigil cluster needs no etcd, Consul or ZooKeeper.
//!
//! What it promises:
//! - **The leader lease.** At most one member holds it. Every grant carries a [`FencingToken`] strictly
//!   larger than every token granted before (the Raft log index of the granting entry). Only the holder,
//!   presenting its token, can renew or release it.
//! - **Expiry without wall clocks.** Only the Raft leader expires a lease, by its own monotonic clock, at
//!   least `ttl` after it (or, for a new leader, the node itself) first saw the lease's last renewal applied.
//!   The holder's own deadline ([`vigil_fencing::HolderDeadline`]) counts from when it *sent* the renewal,
//!   so it always passes first.
//! - **The cluster record** ([`Key`]: Patroni's keys, see ARCHITECTURE.md): create-if-absent,
//!   compare-and-set and delete-if-version by [`Revision`], member keys that expire after their ttl, and
//!   a watch of the state.
//! - **The event log** ([`EventLog`]): the last [`EVENTS_KEPT`] events the agents appended, each with
//!   its revision as id.
//! - **Linearizable reads and writes that never hang**: without a quorum they fail with
//!   [`DcsError::NoQuorum`] within the configured timeout.
//!
//! What it does not do: it knows nothing of databases, and "I am primary" is never derived from Raft
//! leadership, only from the lease.

mod command;
mod config;
mod error;
mod events;
mod member;
mod raft;
mod record;
mod state;

pub use command::{Command, Condition, Outcome};
pub use config::{DcsConfig, RaftTiming};
pub use error::DcsError;
pub use events::{EventLog, StoredEvent, EVENTS_KEPT, SINCE_DEATH, SINCE_LAST_RENEWAL};
pub use member::RaftMember;
pub use raft::{
    formed_without, join, remove_store, stored_node_id, DcsNode, LeaderWatch, LeaseGrant, NodeId,
    RaftSecurity, RaftStatus, RaftTls,
};
pub use record::{ExpiryTarget, Key, Lease, Revision, UnknownKey, Versioned};
pub use state::ClusterState;
pub use vigil_fencing::{FencingToken, InvalidMemberName, MemberName};

/// Patroni's default `namespace`, the one of nodes that send none.
pub const DEFAULT_NAMESPACE: &str = "/service/";
