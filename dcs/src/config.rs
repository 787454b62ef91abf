//! The store's settings.

use std::path::PathBuf;
use std::time::Duration;

/// How a store node runs.
#[derive(Debug, Clone)]
pub struct DcsConfig {
    /// This node's Raft id, unique in the cluster and never reused.
    pub node_id: crate::NodeId,
    /// The cluster's name (Patroni's `scope`); RPCs from another scope are refused.
    pub scope: String,
    /// Patroni's `namespace` (normalized, e.g. `/service/`): RPCs from another namespace are refused, so
    /// that clusters of the same scope in different namespaces never form one group.
    pub namespace: String,
    /// Where the Raft log, vote and snapshots live (`raft.data_dir`).
    pub data_dir: PathBuf,
    /// Raft heartbeat and election timing.
    pub timing: RaftTiming,
    /// How long a write or linearizable read may take before it fails with
    /// [`crate::DcsError::NoQuorum`] (the cluster's `retry_timeout`).
    pub op_timeout: Duration,
    /// Build a snapshot, and purge the log behind it, after this many entries.
    pub snapshot_every: u64,
    /// How nodes authenticate each other (none by default).
    pub security: crate::RaftSecurity,
    /// This node joined an existing group, which handed out its id ([`crate::join`]): it never forms a
    /// group of its own ([`crate::DcsNode::form`]), even if it restarts before the group reached it.
    pub joined: bool,
}

/// Raft timing. The Raft leader's failover takes about `election_max + election_min..max + heartbeat`;
/// it must stay well below the lease ttl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    /// Leader heartbeat interval (also openraft's AppendEntries timeout).
    pub heartbeat: Duration,
    /// Lower bound of the randomized election timeout.
    pub election_min: Duration,
    /// Upper bound of the randomized election timeout.
    pub election_max: Duration,
}

impl Default for RaftTiming {
    /// 100 ms heartbeats with a 300–600 ms election timeout: a Raft failover of about 1.1 s measured on
    /// loopback, and room for 10–30 ms fsync stalls in a loaded debug build without needless elections.
    fn default() -> Self {
        RaftTiming {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(300),
            election_max: Duration::from_millis(600),
        }
    }
}

impl DcsConfig {
    /// A config with Vigil's defaults for everything but identity and place.
    pub fn new(node_id: crate::NodeId, scope: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        DcsConfig {
            node_id,
            scope: scope.into(),
            namespace: crate::DEFAULT_NAMESPACE.to_owned(),
            data_dir: data_dir.into(),
            timing: RaftTiming::default(),
            op_timeout: Duration::from_secs(1),
            snapshot_every: 1000,
            security: crate::RaftSecurity::default(),
            joined: false,
        }
    }
}
