//! What the Raft membership records about each node.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node of the Raft group as its membership records it: where it answers, and who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftMember {
    /// Its Raft RPC address (`host:port`).
    pub addr: String,
    /// Its member name (Patroni's `name`); empty until the node has described itself.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A witness: it votes, and counts in every quorum, but has no database and never holds the lease.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub witness: bool,
}

impl RaftMember {
    /// A node known only by its address.
    pub fn at(addr: impl Into<String>) -> Self {
        RaftMember { addr: addr.into(), ..Default::default() }
    }
}

impl fmt::Display for RaftMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name.is_empty(), self.witness) {
            (true, _) => write!(f, "{}", self.addr),
            (false, false) => write!(f, "{} at {}", self.name, self.addr),
            (false, true) => write!(f, "witness {} at {}", self.name, self.addr),
        }
    }
}
