//! The status JSON of `GET /patroni`, in Patroni's shape plus a `vigil` section.
//!
//! Every field added after the first release has a serde default, so a status written by an older member
//! still parses; optional flags (`pause`, `cluster_unlocked`, `pending_restart`, `sync_standby`,
//! `quorum_standby`, `watchdog_failed`) appear in the JSON only while true, as Patroni writes them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One member's status, as `GET /patroni` answers it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `running`, `stopped`, `starting`, …
    pub state: String,
    /// `primary`, `replica` or `uninitialized`.
    pub role: String,
    /// `pg_postmaster_start_time()`, as PostgreSQL prints it, while the database runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmaster_start_time: Option<String>,
    /// `server_version_num`, e.g. 150018 for 15.18, while the database runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<u32>,
    /// WAL positions.
    #[serde(default)]
    pub xlog: Xlog,
    /// The timeline, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// A primary's WAL senders (`pg_stat_replication`); absent on replicas and when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replication: Vec<Replication>,
    /// `streaming` while a replica streams, `in archive recovery` while it restores from the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// True while this replica is a synchronous standby (`synchronous_mode: on`), as listed in `/sync`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sync_standby: bool,
    /// True while this replica is a quorum standby (`synchronous_mode: quorum`), as listed in `/sync`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub quorum_standby: bool,
    /// True while the cluster is paused (maintenance mode: no automatic failover).
    #[serde(default, skip_serializing_if = "is_false")]
    pub pause: bool,
    /// True while no member holds the leader lease.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cluster_unlocked: bool,
    /// True while the watchdog is required but cannot be used (this member will not be promoted).
    #[serde(default, skip_serializing_if = "is_false")]
    pub watchdog_failed: bool,
    /// The restart scheduled through `POST /restart`: its `schedule` and conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_restart: Option<crate::RestartRequest>,
    /// True while the database needs a restart to apply a changed parameter.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pending_restart: bool,
    /// The parameters that wait for a restart, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_restart_reason: BTreeMap<String, PendingChange>,
    /// When this member last read the cluster store successfully, in Unix seconds (0: never).
    #[serde(default)]
    pub dcs_last_seen: u64,
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

/// A parameter change that waits for a restart, as Patroni reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// The value the database runs with.
    pub old_value: String,
    /// The value it will have after the restart (empty when the server does not say).
    pub new_value: String,
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
    /// Replica: the commit time of the last transaction replayed (ISO 8601), when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_timestamp: Option<String>,
    /// Replica: whether WAL replay is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// One WAL sender of a primary, as Patroni reports `pg_stat_replication`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// The replication user (`null` when unknown).
    #[serde(default)]
    pub usename: Option<String>,
    /// The standby's `application_name` (Vigil: the member name).
    #[serde(default)]
    pub application_name: String,
    /// The standby's address (`null` over a Unix socket).
    #[serde(default)]
    pub client_addr: Option<String>,
    /// `streaming`, `catchup`, `startup`, …
    #[serde(default)]
    pub state: String,
    /// `async`, `sync`, `potential` or `quorum`.
    #[serde(default)]
    pub sync_state: String,
    /// The standby's priority in `synchronous_standby_names` (0: asynchronous).
    #[serde(default)]
    pub sync_priority: i32,
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
    /// The fencing token of the current primary's lease as this member last knew it (its own while it
    /// holds the lease), kept while no lease is held: the largest token it has seen, never going back.
    /// Every health check and `/patroni` answer it in the `X-Vigil-Fencing-Token` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_fencing_token: Option<u64>,
    /// Time left before this member's lease deadline, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_remaining_ms: Option<u64>,
    /// What the agent decided last, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<String>,
    /// While nobody holds the lease: why this member does not take over, in one line ("why no
    /// failover?"); absent when it races or follows a primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Why this member's last promotion was refused (`pre_promote`, the watchdog, or failed attempts),
    /// less than `ttl` ago: meanwhile it keeps out of the leader race, and the others do not wait for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion_refused: Option<String>,
    /// While nobody holds the lease: the position shown was observed after this member's agent saw the
    /// lease free, so it is not behind what it acknowledged to the old primary. Only such a status lets a
    /// synchronous standby vouch for another member in the race.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub observed_leaderless: bool,
    /// The free period of `observed_leaderless`, named by the fencing token of the latest grant before it:
    /// a status from an earlier free period does not vouch in a later one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaderless_after: Option<u64>,
    /// The primary's last known position in bytes (the store's `status` key, Patroni's `optime`): the
    /// reference `?lag=` is measured against. `None`: unknown, and no replica counts as lagging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_optime: Option<u64>,
    /// This member's position in the engine-tagged wire form (`wal:X/X`, `trx:N`): what its peers
    /// compare (`xlog` is Patroni's PostgreSQL view of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<vigil_policy::Position>,
    /// The cluster's `synchronous_mode`: `None` or `off`, `on` (or `strict`), `quorum`. The
    /// `sync_standby` flag counts only in `on`/`strict`, `quorum_standby` only in `quorum`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_mode: Option<String>,
    /// Primary: how its commits are replicated: `async` (`synchronous_mode: off`), `sync` (they wait for
    /// the synchronous standbys, which confirm them), `relaxed` (synchronous mode, but no standby qualifies:
    /// commits are not replicated synchronously), `blocked` (strict: commits wait for a standby that is not
    /// there, writes hang).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_state: Option<String>,
    /// What this member's data has that its upstream refused it for (a former primary's errant
    /// transactions), from the refusal until the data is cloned again or follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<vigil_policy::Divergence>,
    /// The cluster's `maximum_lag_on_failover` in bytes: what `/readiness` allows without `?lag=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum_lag_on_failover: Option<u64>,
    /// Where diverged data of this member was set aside before a re-clone (a path), while it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_set_aside: Option<String>,
    /// How many times this agent has promoted its database.
    #[serde(default)]
    pub failovers_total: u64,
    /// This member's view of the store's Raft group, when it is a voter or learner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft: Option<RaftInfo>,
}

/// This member's view of the store's Raft group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftInfo {
    /// The current term.
    #[serde(default)]
    pub term: u64,
    /// The Raft leader's node id, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<u64>,
    /// The voters' node ids.
    #[serde(default)]
    pub voters: Vec<u64>,
    /// On the Raft leader: the index of the last log entry a quorum of voters holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_index: Option<u64>,
    /// The index of the last log entry applied to this node's store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_index: Option<u64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl NodeStatus {
    /// Whether the member may become primary (Patroni's tags: not `nofailover`, `failover_priority` > 0).
    pub fn can_fail_over(&self) -> bool {
        let nofailover = self.tags.get("nofailover").and_then(|v| v.as_bool()).unwrap_or(false);
        !nofailover && self.failover_priority() > 0
    }

    /// The `failover_priority` tag (1 when absent).
    pub fn failover_priority(&self) -> i64 {
        self.tags.get("failover_priority").and_then(|v| v.as_i64()).unwrap_or(1)
    }

    /// Whether the boolean tag `name` is set (`true`, a non-zero number, or `"true"`/`"on"`/`"yes"`).
    pub fn tag_is_set(&self, name: &str) -> bool {
        match self.tags.get(name) {
            Some(serde_json::Value::Bool(b)) => *b,
            Some(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            Some(serde_json::Value::String(s)) => {
                ["true", "on", "yes", "1"].iter().any(|t| s.eq_ignore_ascii_case(t))
            }
            _ => false,
        }
    }

    /// Whether this member counts as a synchronous standby: flagged `sync_standby` while
    /// `synchronous_mode` is on (any value but `off` and `quorum`).
    pub fn is_sync_standby(&self) -> bool {
        let mode = self.vigil.synchronous_mode.as_deref();
        self.sync_standby && mode.is_some_and(|m| m != "off" && m != "quorum")
    }

    /// Whether this member counts as a quorum standby: flagged `quorum_standby` in `quorum` mode.
    pub fn is_quorum_standby(&self) -> bool {
        self.quorum_standby && self.vigil.synchronous_mode.as_deref() == Some("quorum")
    }

    /// The largest fencing token this member knows of (its lease's, or the current primary's as last
    /// seen): the `X-Vigil-Fencing-Token` header's value.
    pub fn known_fencing_token(&self) -> Option<u64> {
        self.vigil.leader_fencing_token.max(self.vigil.fencing_token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_status_still_parses() {
        let old = r#"{"state":"running","role":"replica","xlog":{"replayed_location":5},
            "patroni":{"version":"0.1.0","scope":"s","name":"n"},"vigil":{"fencing_token":3}}"#;
        let status: NodeStatus = serde_json::from_str(old).expect("parses");
        assert_eq!(status.xlog.replayed_location, Some(5));
        assert_eq!(status.vigil.fencing_token, Some(3));
        assert!(!status.pause && status.replication.is_empty() && status.vigil.raft.is_none());
    }

    #[test]
    fn flags_appear_only_while_true() {
        let mut status = NodeStatus::default();
        let json = serde_json::to_value(&status).expect("json");
        for absent in [
            "pause",
            "pending_restart",
            "pending_restart_reason",
            "sync_standby",
            "quorum_standby",
            "replication",
            "cluster_unlocked",
            "watchdog_failed",
            "scheduled_restart",
        ] {
            assert!(json.get(absent).is_none(), "{absent}");
        }
        assert_eq!(json["dcs_last_seen"], 0);
        status.pause = true;
        status.replication.push(Replication { application_name: "b".into(), ..Default::default() });
        let json = serde_json::to_value(&status).expect("json");
        assert_eq!(json["pause"], true);
        assert_eq!(json["replication"][0]["client_addr"], serde_json::Value::Null);
        assert_eq!(serde_json::from_value::<NodeStatus>(json).expect("round trip"), status);
    }

    #[test]
    fn sync_flags_count_only_in_their_mode() {
        let mut status = NodeStatus { sync_standby: true, quorum_standby: true, ..Default::default() };
        assert!(!status.is_sync_standby() && !status.is_quorum_standby());
        status.vigil.synchronous_mode = Some("on".into());
        assert!(status.is_sync_standby() && !status.is_quorum_standby());
        status.vigil.synchronous_mode = Some("quorum".into());
        assert!(!status.is_sync_standby() && status.is_quorum_standby());
    }
}
