//! The other members as the policy reads the records they publish.

use crate::{Position, Upstream};

/// A member's published record, as the policy needs it (the agent reads it from the store's
/// `members/<name>` key, in Patroni's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Patroni's state word: `running`, `stopped`, `starting`, `stopping`, …
    pub state: String,
    /// `primary`, `replica` or `uninitialized`.
    pub role: String,
    /// Its position (primary: write position; replica: received or replayed, whichever is further).
    pub position: Option<Position>,
    /// Its timeline.
    pub timeline: Option<u64>,
    /// Its database host.
    pub host: String,
    /// Its database port.
    pub port: u16,
    /// Its agent's REST API (`http://host:8008/patroni`).
    pub api_url: String,
    /// Whether its tags let it become primary (not `nofailover`, `failover_priority` above 0).
    pub can_fail_over: bool,
    /// Its tag `nosync`: never a synchronous standby.
    pub nosync: bool,
    /// Its tag `sync_priority` (1 unless set; 0 or less: never a synchronous standby).
    pub sync_priority: i64,
    /// Primary: how its commits are replicated (`async`, `sync`, `relaxed`, `blocked`).
    pub sync_state: Option<String>,
    /// Its tag `replicatefrom`: the member it wants to stream from instead of the primary.
    pub replicate_from: Option<String>,
    /// Its tag `clonefrom`: new replicas prefer to clone from it.
    pub clone_from: bool,
    /// Its tag `nostream`: it takes WAL from the archive only, and needs nothing retained for it.
    pub nostream: bool,
}

impl MemberView {
    /// How to stream from this member, named `name`.
    pub fn upstream(&self, name: &str) -> Upstream {
        Upstream {
            name: name.to_owned(),
            host: self.host.clone(),
            port: self.port,
            api_url: self.api_url.clone(),
            slot: crate::UpstreamSlot::Own,
        }
    }

    /// Whether it runs as a replica by its own record.
    pub fn is_running_replica(&self) -> bool {
        self.state == "running" && self.role == "replica"
    }

    /// Whether it runs by its own record (a member shutting down says `stopping`).
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}
