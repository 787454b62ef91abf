//! The status JSON of `GET /patroni`, in Patroni's shape plus a `vigil` section.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One member's status, as `GET /patroni` answers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `running`, `stopped`, `starting`, …
    pub state: String,
    /// `primary`, `replica` or `uninitialized`.
    pub role: String,
    /// WAL positions.
    #[serde(default)]
    pub xlog: Xlog,
    /// The timeline, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// `streaming` while a replica streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// The database system identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_system_identifier: Option<String>,
    /// The member's tags (`nofailover`, `failover_priority`, …).
    #[serde(default)]
    pub tags: BTreeMap<String, serde_json::Value>,
    /// Agent identity.
    pub patroni: PatroniInfo,
    /// Vigil's own fields.
    #[serde(default)]
    pub vigil: VigilInfo,
}

/// WAL positions, as bytes (Patroni reports them as integers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xlog {
    /// Primary: the write position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<u64>,
    /// Replica: the received position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_location: Option<u64>,
    /// Replica: the replayed position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_location: Option<u64>,
}

/// Patroni's `patroni` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatroniInfo {
    /// The agent's version.
    pub version: String,
    /// The cluster's scope.
    pub scope: String,
    /// The member's name.
    pub name: String,
}

/// Vigil's own section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VigilInfo {
    /// The fencing token of the lease this member holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<u64>,
    /// Time left before this member's lease deadline, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_remaining_ms: Option<u64>,
    /// What the agent decided last, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
}

impl NodeStatus {
    /// The furthest position this member has: write position, or the furthest of received and replayed.
    pub fn position(&self) -> Option<u64> {
        let x = &self.xlog;
        x.location.or(x.received_location.max(x.replayed_location))
    }

    /// Whether the member may become primary (Patroni's tags: not `nofailover`, `failover_priority` > 0).
    pub fn can_fail_over(&self) -> bool {
        let nofailover = self.tags.get("nofailover").and_then(|v| v.as_bool()).unwrap_or(false);
        !nofailover && self.failover_priority() > 0
    }

    /// The `failover_priority` tag (1 when absent).
    pub fn failover_priority(&self) -> i64 {
        self.tags.get("failover_priority").and_then(|v| v.as_i64()).unwrap_or(1)
    }
}
