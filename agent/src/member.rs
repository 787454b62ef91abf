//! The record each agent publishes about its member under `members/<name>` every loop, with a ttl, in
//! Patroni's shape so that tools reading it find the fields they know.

use crate::db::{DbState, Divergence, PendingSetting, Position, Role};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_api::PendingChange;
use vigil_policy::MemberView;

/// Whether a member publishing `tags` may become primary (not `nofailover`, `failover_priority` above
/// 0), as [`Tags::can_fail_over`](crate::config::Tags::can_fail_over) says of a member's own configuration.
pub fn tags_allow_failover(tags: &BTreeMap<String, serde_json::Value>) -> bool {
    let map = serde_json::Map::from_iter(tags.clone());
    serde_json::from_value::<crate::config::Tags>(serde_json::Value::Object(map))
        .is_ok_and(|tags| tags.can_fail_over())
}

/// One member's status as its agent last published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// `postgres://host:port/postgres`: where its database accepts connections.
    pub conn_url: String,
    /// Patroni's `proxy_url`: a pooler or proxy in front of its database (`postgresql.proxy_address`),
    /// for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// `http://host:port/patroni`: its REST API.
    pub api_url: String,
    /// `running`, `stopped`, `starting`, … (Patroni's states).
    pub state: String,
    /// `primary`, `replica` or `uninitialized`.
    pub role: String,
    /// The database host (from `postgresql.connect_address`).
    pub host: String,
    /// The database port.
    pub port: u16,
    /// Its position (primary: write position; replica: received or replayed, whichever is further), in
    /// the engine-tagged wire form (`wal:X/X`, `trx:N`): what the policy compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// Patroni's view of `position`: the number alone (PostgreSQL: the LSN in bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<u64>,
    /// Replica: the replayed position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lsn: Option<Position>,
    /// Its timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// `streaming` while a replica's WAL receiver streams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<String>,
    /// Why the agent does not do what one might expect (e.g. why it does not take over), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// While nobody holds the lease: why this member does not take over, in one line ("why no
    /// failover?", a [`vigil_policy::Refusal`]); absent when it races or follows a primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: BTreeMap<String, serde_json::Value>,
    /// Primary: how its commits are replicated (`async`, `sync`, `relaxed`, `blocked`; see the status JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_state: Option<String>,
    /// True while the database needs a restart to apply a changed parameter.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart: bool,
    /// The parameters that wait for a restart, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_restart_reason: BTreeMap<String, PendingChange>,
    /// What its data has that its upstream refused it for, until it is cloned again or follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<Divergence>,
    /// Where diverged data of this member was set aside before a re-clone, while it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_set_aside: Option<String>,
    /// A replica: the member it is configured to replicate from (the primary, or another replica with
    /// `replicatefrom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

impl MemberRecord {
    /// The record as the policy reads it.
    pub fn view(&self) -> MemberView {
        let tag = |key: &str| self.tags.get(key);
        MemberView {
            state: self.state.clone(),
            role: self.role.clone(),
            position: self.position,
            timeline: self.timeline,
            host: self.host.clone(),
            port: self.port,
            api_url: self.api_url.clone(),
            can_fail_over: tags_allow_failover(&self.tags),
            nosync: tag("nosync").and_then(|v| v.as_bool()).unwrap_or(false),
            sync_priority: tag("sync_priority").and_then(|v| v.as_i64()).unwrap_or(1),
            sync_state: self.sync_state.clone(),
            replicate_from: tag("replicatefrom").and_then(|v| v.as_str()).map(str::to_owned),
            clone_from: tag("clonefrom").and_then(|v| v.as_bool()).unwrap_or(false),
            nostream: tag("nostream").and_then(|v| v.as_bool()).unwrap_or(false),
        }
    }

    /// The parameters of `db` that wait for a restart, as Patroni reports them.
    pub fn pending_changes(db: &DbState) -> BTreeMap<String, PendingChange> {
        let change = |p: &PendingSetting| PendingChange {
            old_value: p.running.clone(),
            new_value: p.configured.clone().unwrap_or_default(),
        };
        db.pending_restart.iter().map(|p| (p.name.clone(), change(p))).collect()
    }

    /// The state and role fields for a database observation.
    pub fn state_and_role(db: &DbState) -> (&'static str, &'static str) {
        let state = match (db.running, db.starting, db.hung) {
            (true, _, _) => "running",
            (false, _, true) => "not responding",
            (false, true, false) => "starting",
            (false, false, _) => "stopped",
        };
        let role = match (&db.data, db.role) {
            (crate::db::DataState::Missing, _) => "uninitialized",
            (_, Some(Role::Primary)) => "primary",
            _ => "replica",
        };
        (state, role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn published_tags_allow_failover_as_the_configuration_does() {
        let tags = |v: serde_json::Value| serde_json::from_value::<BTreeMap<_, _>>(v).unwrap();
        assert!(tags_allow_failover(&tags(json!({}))));
        assert!(tags_allow_failover(&tags(json!({"failover_priority": 3, "rack": "r1"}))));
        assert!(!tags_allow_failover(&tags(json!({"nofailover": true}))));
        assert!(!tags_allow_failover(&tags(json!({"failover_priority": 0}))));
        assert!(!tags_allow_failover(&tags(json!({"nofailover": "yes"}))), "unreadable tags: no");
    }
}
