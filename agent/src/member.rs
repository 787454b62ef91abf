//! The record each agent publishes about its member under `members/<name>` every loop, with a ttl, in
//! Patroni's shape so that tools reading it find the fields they know.

use crate::db::{DbState, PendingSetting, Position, Role, Upstream};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vigil_api::PendingChange;

/// One member's status as its agent last published it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// `postgres://host:port/postgres`: where its database accepts connections.
    pub conn_url: String,
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
    /// Its position (primary: write position; replica: received or replayed, whichever is further).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlog_location: Option<Position>,
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
}

impl MemberRecord {
    /// How to stream from this member, named `name`.
    pub fn upstream(&self, name: &str) -> Upstream {
        Upstream { name: name.to_owned(), host: self.host.clone(), port: self.port }
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
