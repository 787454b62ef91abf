//! Reading the cluster record into the policy's [`ClusterView`], and the values the agent writes.

use crate::config::unsafe_parameters::ONLY_FROM_OWN_FILE;
use crate::config::DynamicConfig;
use crate::db::Position;
use crate::member::MemberRecord;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use vigil_dcs::{ClusterState, Key, MemberName};
use vigil_policy::SyncState;
use vigil_policy::{ClusterView, Initialize, Switchover};

/// The `status` key: the primary's last position (Patroni's `optime`), and where its permanent logical
/// slots stand (Patroni's `slots`), which the replicas' copies follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The position.
    pub optime: Position,
    /// Each permanent logical slot's confirmed position (PostgreSQL: the LSN in bytes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, u64>,
}

/// The members' published records. Records that do not parse are left out, with a warning.
pub fn member_records(state: &ClusterState) -> BTreeMap<MemberName, MemberRecord> {
    state
        .keys
        .iter()
        .filter_map(|(key, v)| match key {
            Key::Member(name) => Some((name.clone(), parse::<MemberRecord>(key, &v.value)?)),
            _ => None,
        })
        .collect()
}

/// The cluster record as the policy sees it. Values that do not parse are left out, with a warning.
pub fn cluster_view(state: &ClusterState) -> ClusterView {
    cluster_view_with(state, &member_records(state))
}

/// [`cluster_view`] with the members' `records` already read from `state` (see [`member_records`]).
pub fn cluster_view_with(state: &ClusterState, records: &BTreeMap<MemberName, MemberRecord>) -> ClusterView {
    let members = records.iter().map(|(name, record)| (name.clone(), record.view())).collect();
    let value = |key: &Key| state.keys.get(key).map(|v| &v.value);
    let status = value(&Key::Status).and_then(|v| parse::<Status>(&Key::Status, v));
    ClusterView {
        initialize: value(&Key::Initialize).and_then(|v| parse::<Initialize>(&Key::Initialize, v)),
        leader: state.leader.as_ref().map(|l| (l.holder.clone(), l.token)),
        last_grant: state.last_grant,
        members,
        optime: status.as_ref().map(|s| s.optime),
        slots: status.map(|s| s.slots).unwrap_or_default(),
        switchover: value(&Key::Failover).and_then(|v| parse::<Switchover>(&Key::Failover, v)),
        sync: value(&Key::Sync).and_then(|v| parse::<SyncState>(&Key::Sync, v)),
        timeline: value(&Key::History)
            .and_then(|v| parse::<Vec<vigil_api::HistoryEntry>>(&Key::History, v))
            .and_then(|history| cluster_timeline(&history)),
    }
}

/// The timeline the cluster's last promotion in `history` reached (the highest recorded).
fn cluster_timeline(history: &[vigil_api::HistoryEntry]) -> Option<u64> {
    let promoted = history.iter().filter_map(|entry| match entry {
        vigil_api::HistoryEntry::Promotion { timeline, .. } => *timeline,
        _ => None,
    });
    promoted.max()
}

/// Wakes when a member announces that it is shutting down (its record says `stopping`): a primary then
/// moves the synchronous standby role off it in its next cycle, which should not wait a `loop_wait`.
pub struct StoppingWatch {
    state: tokio::sync::watch::Receiver<Arc<ClusterState>>,
    last: BTreeSet<MemberName>,
}

impl StoppingWatch {
    /// Watches `dcs`'s cluster record from now on.
    pub fn new(dcs: &vigil_dcs::DcsNode) -> Self {
        let mut state = dcs.watch();
        let last = stopping(&state.borrow_and_update());
        StoppingWatch { state, last }
    }

    /// Waits until the members that say `stopping` change; `None`: the store node stopped.
    pub async fn changed(&mut self) -> Option<()> {
        loop {
            self.state.changed().await.ok()?;
            let now = stopping(&self.state.borrow_and_update());
            if now != self.last {
                self.last = now;
                return Some(());
            }
        }
    }
}

/// The members whose record says `stopping`.
fn stopping(state: &ClusterState) -> BTreeSet<MemberName> {
    let announced = |v: &vigil_dcs::Versioned| v.value["state"] == "stopping";
    state
        .keys
        .iter()
        .filter_map(|(key, v)| match key {
            Key::Member(name) if announced(v) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// The dynamic configuration in the store, if any and valid, without the server parameters only a
/// member's own file may set (each dropped with a warning naming it).
pub fn dynamic_config(state: &ClusterState) -> Option<DynamicConfig> {
    let value = &state.keys.get(&Key::Config)?.value;
    if !value.is_object() {
        // serde would read an array as the struct's fields in order: `[]` as every default.
        tracing::warn!(key = %Key::Config, "dynamic config in the store is not a JSON object: ignoring it");
        return None;
    }
    let mut config: DynamicConfig = parse(&Key::Config, value)?;
    // Only these are ignored, not the whole value: its timing and synchronous mode keep applying. The
    // value is not logged: such commands often carry credentials.
    for name in config.drop_unsafe_parameters().keys() {
        tracing::warn!(key = %Key::Config, parameter = %name, "server parameter in the dynamic config ignored: {ONLY_FROM_OWN_FILE}");
    }
    match config.validate() {
        Ok(()) => Some(config),
        Err(e) => {
            tracing::warn!(key = %Key::Config, error = %e, "dynamic config in the store is invalid: ignoring it");
            None
        }
    }
}

/// The dynamic configuration to act on: the store's when it is usable, the bootstrap one while the store
/// has none, and `last_good` (with a warning naming the key) when the stored value cannot be used, such
/// as an out-of-range ttl written past the REST validation: the agent keeps renewing and fencing by the
/// settings it had.
pub fn dynamic_or_last_good(
    state: &ClusterState,
    last_good: &DynamicConfig,
    bootstrap: &DynamicConfig,
) -> DynamicConfig {
    match state.keys.get(&Key::Config) {
        None => bootstrap.clone(),
        Some(_) => dynamic_config(state).unwrap_or_else(|| last_good.clone()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(key: &Key, value: &serde_json::Value) -> Option<T> {
    serde_json::from_value(value.clone())
        .map_err(|e| tracing::warn!(%key, error = %e, "unreadable value in the cluster store"))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use vigil_dcs::{Command, Condition};

    fn with_config(value: serde_json::Value) -> ClusterState {
        let mut state = ClusterState::default();
        state.apply(1, &Command::Put { key: Key::Config, value, condition: Condition::Always, ttl_ms: None });
        state
    }

    #[test]
    fn the_cluster_timeline_is_the_last_promotions() {
        let history = serde_json::json!([
            {"timeline": 2, "lsn": "0/3000000", "reason": "promoted", "new_primary": "a", "fencing_token": 4, "timestamp": "t"},
            {"reason": "failover", "new_primary": "b", "requested_at": 5},
            {"timeline": 3, "lsn": null, "reason": "promoted", "new_primary": "b", "fencing_token": 9, "timestamp": "t"},
        ]);
        let mut state = ClusterState::default();
        let put =
            Command::Put { key: Key::History, value: history, condition: Condition::Always, ttl_ms: None };
        state.apply(1, &put);
        assert_eq!(cluster_view(&state).timeline, Some(3));
        assert_eq!(cluster_view(&ClusterState::default()).timeline, None);
    }

    #[test]
    fn an_unusable_stored_config_leaves_the_last_good_one_in_force() {
        let bootstrap = DynamicConfig::default();
        let last_good = DynamicConfig { ttl: Duration::from_secs(6), ..DynamicConfig::default() };
        // Issue 12: written straight into the store, past the REST validation.
        for bad in [
            serde_json::json!({"ttl": u64::MAX, "loop_wait": i64::MAX}),
            serde_json::json!({"retry_timeout": u64::MAX}),
            serde_json::json!({"ttl": "soon"}),
            serde_json::json!([]),
            serde_json::json!("ttl"),
        ] {
            let state = with_config(bad.clone());
            assert_eq!(dynamic_or_last_good(&state, &last_good, &bootstrap), last_good, "{bad}");
        }
        let stored = with_config(serde_json::json!({"ttl": 4}));
        assert_eq!(dynamic_or_last_good(&stored, &last_good, &bootstrap).ttl, Duration::from_secs(4));
        let empty = ClusterState::default();
        assert_eq!(dynamic_or_last_good(&empty, &last_good, &bootstrap), bootstrap);
    }
}
