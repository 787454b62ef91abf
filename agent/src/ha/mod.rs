//! The HA loop: observe → remember → decide → act → publish, with the policy in pure functions: [`decide`],
//! [`decide_fast_fence`] (fencing before the store is read), [`cycle_wait`] and [`NextCycle`] (when the next
//! cycle comes), and the handover steps (`handover_steps.rs`).

mod act;
mod candidate;
mod commands;
mod decide;
mod dispatch;
mod execute;
mod fast_fence;
mod guard;
mod handover;
mod handover_steps;
mod hooks;
mod identity;
mod job;
mod lease_keeper;
#[cfg(test)]
mod loop_tests;
mod memory;
mod next_cycle;
mod observation;
mod observe;
mod parameters;
mod peers;
mod publisher;
mod remember;
#[cfg(test)]
pub(crate) mod restart_tests;
mod run;
mod sync;
mod view;

pub use candidate::{tags_allow_failover, within_maximum_lag};
pub use commands::{Commands, LocalCommand};
pub use decide::{decide, fence_action, Action, Decision, FOLLOW_ATTEMPTS};
pub use fast_fence::decide_fast_fence;
pub use guard::RoleGuard;
pub use hooks::{Callback, Hooks, CALLBACK_TIMEOUT, PRE_PROMOTE_TIMEOUT};
pub use identity::Identity;
pub use next_cycle::{cycle_wait, LeaseTimes, NextCycle, NEXT_STEP, RACE_RETRY, RENEW_RETRY};
pub use observation::{
    ClusterView, Initialize, LeaseHold, Observation, PeerView, Policy, Switchover, SyncPolicy, SyncState,
};
pub use run::Agent;
pub use sync::{may_take_over, sync_health, sync_step, wanted_rule, SyncChange, SyncHealth};
pub use view::{append_history, cluster_view, dynamic_config, dynamic_or_last_good};

/// The tags a member publishes, from its configuration.
pub fn identity_tags(
    config: &crate::config::Config,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(&config.tags) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => Default::default(),
    }
}
