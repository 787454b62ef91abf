//! When the next cycle comes: soon after a decision that changes who leads, often while nobody leads,
//! else after `loop_wait`; never later than the lease held must be renewed or fenced, than a primary down
//! since long enough is given up on, or than a scheduled switchover or restart.

use crate::{Decision, Observation, SynchronousMode};
use std::time::{Duration, Instant, SystemTime};
use vigil_fencing::instant_after;

/// Pause before the cycle after one that changed who leads.
pub const NEXT_STEP: Duration = Duration::from_millis(20);

/// Between two cycles while no member holds the lease.
pub const RACE_RETRY: Duration = Duration::from_millis(250);

/// Pause before retrying a failed renewal.
pub const RENEW_RETRY: Duration = Duration::from_millis(100);

/// How long after a cycle that made `decision` from `o` the next one comes, before [`NextCycle::at`]
/// bounds it.
pub fn cycle_wait(decision: &Decision, o: &Observation) -> Duration {
    // A synchronous standby is confirmed one cycle after its rule was first seen applied.
    let sync_settling =
        o.sync_applied_at.is_none() && o.db.sync_rule.is_some() && o.policy.sync.mode != SynchronousMode::Off;
    if decision.changes_roles() || sync_settling {
        // The next step (promote, bootstrap, follow the winner) should not wait a whole loop_wait.
        return NEXT_STEP;
    }
    // Nobody leads: what holds this member back (a WAL receiver that heard from the old primary
    // lately, a peer's state) may change any moment, and every moment is write downtime.
    let leaderless = o.cluster.as_ref().is_some_and(|c| c.leader.is_none());
    if leaderless && !o.policy.pause {
        // In a synchronous mode, the others' promotion gate waits for this member's status from a look
        // after it saw the lease free: that look comes at once, once per free period.
        if !o.observed_leaderless && o.policy.sync.mode != SynchronousMode::Off {
            return NEXT_STEP;
        }
        return o.policy.loop_wait.min(RACE_RETRY);
    }
    o.policy.loop_wait
}

/// The lease grant held, as the time of the next cycle depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    /// When it is due for renewal (halfway to its deadline).
    pub renewal_due: Instant,
    /// The holder's deadline.
    pub deadline: Instant,
    /// Whether the last renewal failed.
    pub renew_failed: bool,
}

/// What the time of the next cycle depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextCycle {
    /// The end of the cycle, on the monotonic clock.
    pub now: Instant,
    /// The same instant on the wall clock.
    pub wall_clock: SystemTime,
    /// The wait the cycle asked for ([`cycle_wait`], or `loop_wait` while a database job runs).
    pub wait: Duration,
    /// The grant held, if any (its deadline may have passed).
    pub lease: Option<LeaseTimes>,
    /// Since when this member's primary has been down (counted only while a grant is held).
    pub primary_down_since: Option<Instant>,
    /// How long a primary down may take to start again before it is given up on.
    pub primary_start_timeout: Duration,
    /// The next scheduled switchover or restart.
    pub scheduled: Option<SystemTime>,
}

impl NextCycle {
    /// When the next cycle starts, at the latest (the store's leader watch, a job's end or a command may
    /// start it sooner).
    pub fn at(&self) -> Instant {
        let now = self.now;
        // A Raft election or a lost message must not cost the primary its lease.
        let wait = if self.lease.is_some_and(|l| l.renew_failed) { RENEW_RETRY } else { self.wait };
        let mut next = instant_after(now, wait);
        if let Some(lease) = self.lease {
            // A cycle slowed down by a busy database must not use the lease up: renew halfway to the
            // deadline (retrying every RENEW_RETRY past that point), fence at the deadline itself.
            let renew_at = lease.renewal_due.max(now + RENEW_RETRY);
            next = next.min(lease.deadline).min(renew_at);
            // A primary down that long is given up on at once.
            if let Some(at) = self.primary_down_since.and_then(|s| s.checked_add(self.primary_start_timeout))
            {
                next = next.min(at);
            }
        }
        if let Some(at) = self.scheduled {
            let wait = at.duration_since(self.wall_clock).unwrap_or_default();
            next = next.min(instant_after(now, wait));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn next(now: Instant) -> NextCycle {
        NextCycle {
            now,
            wall_clock: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
            wait: SECOND,
            lease: None,
            primary_down_since: None,
            primary_start_timeout: Duration::from_secs(300),
            scheduled: None,
        }
    }

    #[test]
    fn without_a_lease_the_wait_asked_for_is_kept() {
        let now = Instant::now();
        assert_eq!(next(now).at(), now + SECOND);
        let down =
            NextCycle { primary_down_since: Some(now), primary_start_timeout: SECOND / 2, ..next(now) };
        assert_eq!(down.at(), now + SECOND, "a primary down counts only while a grant is held");
    }

    #[test]
    fn a_held_lease_is_renewed_halfway_and_fenced_at_its_deadline() {
        let now = Instant::now();
        let held = |renewal_due, deadline, renew_failed| NextCycle {
            lease: Some(LeaseTimes { renewal_due, deadline, renew_failed }),
            wait: Duration::from_secs(60),
            ..next(now)
        };
        let (due, deadline) = (now + Duration::from_secs(4), now + Duration::from_secs(8));
        assert_eq!(held(due, deadline, false).at(), due, "a long wait does not skip the renewal");
        assert_eq!(held(now, deadline, false).at(), now + RENEW_RETRY, "renewal due: retried");
        assert_eq!(held(due, now + SECOND / 20, false).at(), now + SECOND / 20, "the deadline first");
        assert_eq!(held(due, deadline, true).at(), now + RENEW_RETRY, "after a failed renewal");
        let asked = NextCycle { wait: NEXT_STEP, ..held(due, deadline, true) };
        assert_eq!(asked.at(), now + RENEW_RETRY, "a failed renewal paces even the next step");
    }

    #[test]
    fn a_primary_down_and_a_scheduled_switchover_bound_the_wait() {
        let now = Instant::now();
        let lease = Some(LeaseTimes {
            renewal_due: now + SECOND * 4,
            deadline: now + SECOND * 8,
            renew_failed: false,
        });
        let down = NextCycle {
            wait: Duration::from_secs(60),
            lease,
            primary_down_since: Some(now - SECOND),
            primary_start_timeout: SECOND * 2,
            ..next(now)
        };
        assert_eq!(down.at(), now + SECOND, "primary_start_timeout reached");
        let n = next(now);
        let soon = NextCycle { scheduled: Some(n.wall_clock + SECOND / 2), ..n };
        assert_eq!(soon.at(), now + SECOND / 2);
        let past = NextCycle { scheduled: Some(n.wall_clock - SECOND), ..n };
        assert_eq!(past.at(), now, "a schedule already due: at once");
    }
}
