//! The HA loop: observe → remember → decide → act → publish. The policy is in pure functions of the
//! `vigil-policy` crate (re-exported here): [`decide`], [`decide_fast_fence`] (fencing before the store
//! is read), [`cycle_wait`] and [`NextCycle`] (when the next cycle comes), and the handover steps.

mod act;
mod commands;
mod dispatch;
mod events;
mod execute;
mod guard;
mod handover;
mod history;
pub(crate) mod hooks;
mod identity;
mod job;
mod lease_keeper;
#[cfg(test)]
mod loop_tests;
mod observe;
mod parameters;
mod peers;
mod promotion;
mod publisher;
mod remember;
#[cfg(test)]
pub(crate) mod restart_tests;
mod run;
mod slots;
mod view;

pub use commands::{Commands, Envelope, LocalCommand};
pub use events::append as append_event;
pub use guard::{RoleGuard, PROMOTION_ATTEMPTS};
pub use hooks::{Callback, Hooks, CALLBACK_TIMEOUT, PRE_PROMOTE_TIMEOUT};
pub use identity::Identity;
pub use run::Agent;
pub use view::{cluster_view, dynamic_config, dynamic_or_last_good, member_records};
pub use vigil_policy::{
    cycle_wait, decide, decide_fast_fence, fence_action, may_take_over, sync, sync_health, sync_step,
    wanted_rule, within_maximum_lag, Action, ClusterView, Decision, Initialize, JobEvent, LeaseHold,
    LeaseTimes, Memory, NextCycle, Observation, PeerView, Policy, Refusal, Switchover, SyncChange,
    SyncHealth, SyncPolicy, SyncState, FOLLOW_ATTEMPTS, NEXT_STEP, RACE_RETRY, RENEW_RETRY,
};

/// What happens to diverged data before a re-clone: `postgresql.remove_data_directory_on_*` (set
/// aside unless set); MariaDB and MySQL remove it.
pub fn discard(config: &crate::config::Config) -> vigil_policy::Discard {
    match &config.postgresql {
        Some(pg) => vigil_policy::Discard {
            after_failed_repair: pg.remove_data_directory_on_rewind_failure,
            without_repair: pg.remove_data_directory_on_diverged_timelines,
        },
        None => vigil_policy::Discard { after_failed_repair: true, without_repair: true },
    }
}

/// The tags a member publishes, from its configuration.
pub fn identity_tags(
    config: &crate::config::Config,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    match serde_json::to_value(&config.tags) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => Default::default(),
    }
}
