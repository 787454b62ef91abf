//! The HA loop: observe → decide → act, with all policy in the pure [`decide`] of the `vigil-policy`
//! crate (re-exported here).

mod commands;
mod dispatch;
mod execute;
mod guard;
mod hooks;
mod identity;
mod lease_keeper;
#[cfg(test)]
mod loop_tests;
mod publisher;
#[cfg(test)]
pub(crate) mod restart_tests;
mod run;
mod view;

pub use commands::{Commands, LocalCommand};
pub use guard::RoleGuard;
pub use hooks::{Callback, Hooks, CALLBACK_TIMEOUT, PRE_PROMOTE_TIMEOUT};
pub use identity::Identity;
pub use run::Agent;
pub use view::{append_history, cluster_view, dynamic_config, dynamic_or_last_good, member_records};
pub use vigil_policy::{
    decide, fence_action, may_take_over, sync, sync_health, sync_step, wanted_rule, within_maximum_lag,
    Action, ClusterView, Decision, Initialize, JobEvent, LeaseHold, Memory, Observation, PeerView, Policy,
    Switchover, SyncChange, SyncHealth, SyncPolicy, SyncState, FOLLOW_ATTEMPTS,
};

/// The tags a member publishes, from its configuration.
pub fn identity_tags(
    config: &crate::config::Config,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(&config.tags) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => Default::default(),
    }
}
