//! Handing this member's role over, as the steps the policy names and the loop carries out in order: a
//! planned switchover away from the primary ([`switchover_steps`]) and a clean shutdown
//! ([`shutdown_steps`]).

use std::time::Duration;

/// One step of a handover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOverStep {
    /// A synchronous standby announces that it stops (its record says `stopping`, which the primary takes
    /// as "not a candidate") and waits, at most this long, until the primary moved its role to another
    /// standby, so that commits do not stall.
    MoveSyncRole(Duration),
    /// Stop the database with a shutdown checkpoint, which PostgreSQL streams to its replicas before it
    /// exits. Should it fail: with `or_keep_lease`, the handover ends there and the lease is kept; else it
    /// goes on.
    Stop {
        /// End the handover, keeping the lease, if the database does not stop.
        or_keep_lease: bool,
    },
    /// Publish the stopped database: the candidate asks this member's REST status as soon as the lease is
    /// free, and must already see no primary there (or it waits a `loop_wait`: "still runs as a primary").
    PublishStopped,
    /// Run the callbacks of a primary that stopped being one.
    Demoted,
    /// Give the lease up.
    ReleaseLease,
    /// Disarm the watchdog; the REST status no longer claims a lease.
    Disarm,
}

/// A planned switchover away from this primary ([`crate::Action::HandOver`]): stop with a shutdown
/// checkpoint, so that the candidate has every write, show the stopped database, then free the lease. A
/// primary that does not stop keeps its lease.
pub fn switchover_steps() -> [HandOverStep; 4] {
    use HandOverStep::*;
    [Stop { or_keep_lease: true }, PublishStopped, Demoted, ReleaseLease]
}

/// On SIGTERM: a primary stops its database with a shutdown checkpoint, which PostgreSQL streams to its
/// replicas before it exits, then releases the lease so the most advanced replica takes over without
/// losing an acknowledged write. A synchronous standby (`sync_standby`: the `sync` key names it) first has
/// the primary, cycling every `loop_wait`, move its role to another standby. Any other member just stops
/// its database.
pub fn shutdown_steps(sync_standby: bool, loop_wait: Duration) -> Vec<HandOverStep> {
    use HandOverStep::*;
    let move_sync_role = sync_standby.then(|| MoveSyncRole(sync_handoff_wait(loop_wait)));
    move_sync_role.into_iter().chain([Stop { or_keep_lease: false }, ReleaseLease, Disarm]).collect()
}

/// How long a synchronous standby that shuts down waits for the primary to move its role: the primary
/// needs about three of its cycles (drop the standby from `sync`, change its rule, publish the new
/// standby once it confirms), each slower on a busy machine; never less than [`SYNC_HANDOFF_MIN`].
fn sync_handoff_wait(loop_wait: Duration) -> Duration {
    loop_wait.saturating_mul(4).max(SYNC_HANDOFF_MIN)
}

/// The least time a synchronous standby that shuts down waits for the primary to move its role.
const SYNC_HANDOFF_MIN: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::HandOverStep::*;
    use super::*;

    #[test]
    fn a_switchover_stops_the_primary_and_shows_it_stopped_before_the_lease_is_freed() {
        assert_eq!(switchover_steps(), [Stop { or_keep_lease: true }, PublishStopped, Demoted, ReleaseLease]);
    }

    #[test]
    fn a_shutdown_releases_the_lease_after_the_stop_and_stopping_anyway() {
        let steps = shutdown_steps(false, Duration::from_secs(1));
        assert_eq!(steps, [Stop { or_keep_lease: false }, ReleaseLease, Disarm]);
    }

    #[test]
    fn a_synchronous_standby_first_has_its_role_moved_waiting_four_primary_cycles_or_ten_seconds() {
        let steps = shutdown_steps(true, Duration::from_secs(1));
        assert_eq!(steps[0], MoveSyncRole(Duration::from_secs(10)));
        assert_eq!(steps[1..], shutdown_steps(false, Duration::from_secs(1)));
        assert_eq!(shutdown_steps(true, Duration::from_secs(5))[0], MoveSyncRole(Duration::from_secs(20)));
    }
}
