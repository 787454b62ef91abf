//! Observations for the unit tests of the pure functions around `decide`.

use super::observation::{ClusterView, Initialize, LeaseHold, Observation, Policy, SyncPolicy};
use crate::db::{DataState, DbState, Position, Role};
use std::time::{Duration, Instant, SystemTime};
use vigil_dcs::MemberName;

/// Member `name`.
pub(super) fn name(name: &str) -> MemberName {
    MemberName::new(name).expect("a valid member name")
}

/// A server running as primary at position 1000.
pub(super) fn primary() -> DbState {
    let data = DataState::Present { system_id: "1".into(), was_primary: true };
    DbState {
        running: true,
        role: Some(Role::Primary),
        timeline: Some(1),
        position: Some(Position(1000)),
        ..DbState::stopped(data)
    }
}

/// `me` with its server in state `db` and its hold `lease`, in an initialized cluster nobody leads,
/// `loop_wait` 1 s, asynchronous replication.
pub(super) fn observation(db: DbState, lease: LeaseHold) -> Observation {
    let cluster = ClusterView {
        initialize: Some(Initialize { by: name("me"), system_id: Some("1".into()) }),
        ..ClusterView::default()
    };
    Observation {
        now: Instant::now(),
        wall_clock: SystemTime::now(),
        me: name("me"),
        policy: Policy {
            can_fail_over: true,
            failover_priority: 1,
            maximum_lag_on_failover: 1 << 20,
            primary_start_timeout: Duration::from_secs(300),
            use_pg_rewind: true,
            pause: false,
            loop_wait: Duration::from_secs(1),
            sync: SyncPolicy::default(),
        },
        db,
        cluster: Some(cluster),
        lease,
        primary_down_since: None,
        not_streaming_since: None,
        rewind_failed: false,
        rewound: false,
        follow_failures: 0,
        peers: Vec::new(),
        sync_applied_at: None,
        promotion_refused: false,
    }
}
