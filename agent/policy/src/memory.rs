//! What the policy remembers between cycles, as one plain value. It changes only through three functions:
//! [`Memory::observed`], with each observation of the database, [`Memory::read_store`], with each read of
//! the store, and [`Memory::job_reported`], with each outcome a database job reports when it ends (jobs
//! share no state with the loop).

use crate::observation::{ClusterView, LeaseHold};
use crate::{DbState, FencingToken, Position, Role, SyncRule};
use std::time::Instant;

/// Something a database job did that the policy must remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    /// A repair in place ended, successfully or not.
    Repaired {
        /// Whether it succeeded.
        ok: bool,
    },
    /// The data directory was emptied (for a re-clone).
    DataRemoved,
    /// Starting as the lease holder's replica failed.
    FollowFailed,
    /// A replica was promoted.
    Promoted,
    /// The server was fenced: stopped at once, or killed.
    Fenced,
}

/// The policy's memory (see [`crate::Observation`] for what each item means to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    /// Since when this member, holding the lease, has seen its primary not running.
    pub primary_down_since: Option<Instant>,
    /// Since when this member, a running replica, has not been streaming.
    pub not_streaming_since: Option<Instant>,
    /// The last repair in place failed.
    pub repair_failed: bool,
    /// A repair in place succeeded since the member last streamed or its data was removed.
    pub repaired: bool,
    /// Failed attempts in a row to start as the lease holder's replica.
    pub follow_failures: u32,
    /// The synchronous replication rule last seen applied on this primary.
    pub sync_seen: Option<SyncSeen>,
    /// Promotions this agent carried out.
    pub failovers: u64,
    /// The server was fenced since this agent last had it start or become a primary, or saw it run as
    /// one: whatever runs now was started as a standby at most (see [`crate::fence_action`]).
    pub fenced: bool,
    /// The lease's free period last seen, named by the latest grant then ([`ClusterView::last_grant`]),
    /// and when a store read first showed it; `None` once a read shows the lease held.
    pub free_since: Option<(Option<FencingToken>, Instant)>,
    /// The last look at the database began after a store read showed the lease free, in the free period
    /// of `free_since` (see [`crate::PeerView::observed_leaderless`]).
    pub observed_leaderless: bool,
}

impl Memory {
    /// Takes in an observation of the database made at `at`, under the lease hold `lease`.
    pub fn observed(&mut self, db: &DbState, lease: LeaseHold, at: Instant) {
        let down = matches!(lease, LeaseHold::Valid(_)) && !db.running;
        self.primary_down_since = since(down, self.primary_down_since, at);
        let idle_replica = db.running && db.role == Some(Role::Replica) && !db.streaming;
        self.not_streaming_since = since(idle_replica, self.not_streaming_since, at);
        if db.is_running_primary() {
            self.fenced = false; // however it became one
        }
        if db.streaming {
            // Whatever repaired the data worked.
            self.repaired = false;
            self.follow_failures = 0;
        }
        let rule = db.sync_rule.clone().filter(|_| db.is_running_primary());
        match (&mut self.sync_seen, rule) {
            (Some(seen), Some(rule)) if seen.rule == rule => seen.first = false,
            (_, rule) => self.sync_seen = rule.map(|rule| SyncSeen { rule, at: db.position, first: true }),
        }
    }

    /// The primary's position when the synchronous replication rule in force was first seen applied;
    /// `None` in the cycle it is first seen (see [`crate::Observation::sync_applied_at`]).
    pub fn sync_applied_at(&self) -> Option<Position> {
        self.sync_seen.as_ref().filter(|seen| !seen.first).and_then(|seen| seen.at)
    }

    /// Takes in a store read (`None`: it failed) that ended at `now`, after the look at the database that
    /// began at `observed_at`.
    pub fn read_store(&mut self, cluster: Option<&ClusterView>, observed_at: Instant, now: Instant) {
        match cluster {
            Some(c) if c.leader.is_none() => {
                let since = match self.free_since {
                    Some((grant, since)) if grant == c.last_grant => since,
                    _ => now,
                };
                self.free_since = Some((c.last_grant, since));
                self.observed_leaderless = since < observed_at;
            }
            Some(_) => (self.free_since, self.observed_leaderless) = (None, false),
            None => self.observed_leaderless = false,
        }
    }

    /// The free period the last look at the database came after (the latest grant before it), as its
    /// status shows it with [`observed_leaderless`](Self::observed_leaderless).
    pub fn leaderless_after(&self) -> Option<FencingToken> {
        self.free_since.and_then(|(grant, _)| grant).filter(|_| self.observed_leaderless)
    }

    /// Takes in what a database job reported.
    pub fn job_reported(&mut self, event: JobEvent) {
        match event {
            JobEvent::Repaired { ok } => {
                self.repair_failed = !ok;
                if ok {
                    self.repaired = true;
                    self.follow_failures = 0;
                }
            }
            JobEvent::DataRemoved => {
                self.repair_failed = false;
                self.repaired = false;
                self.follow_failures = 0;
            }
            JobEvent::FollowFailed => self.follow_failures = self.follow_failures.saturating_add(1),
            JobEvent::Promoted => self.failovers += 1,
            JobEvent::Fenced => self.fenced = true,
        }
    }

    /// Takes in that a job about to run may make the server a primary (bootstrap, start as primary,
    /// promotion, restart of a primary): from now on a server that does not answer may be one.
    pub fn starting_primary(&mut self) {
        self.fenced = false;
    }
}

/// A synchronous replication rule seen applied on this primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSeen {
    /// The rule.
    pub rule: SyncRule,
    /// The primary's position when it was first seen.
    pub at: Option<Position>,
    /// Whether it was first seen in the last observation.
    pub first: bool,
}

/// When a condition that holds `now` (`holds`) began: `started` if it already held, else `now`.
fn since(holds: bool, started: Option<Instant>, now: Instant) -> Option<Instant> {
    holds.then(|| started.unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataState;
    use crate::FencingToken;
    use std::time::Duration;

    fn data() -> DataState {
        DataState::Present { system_id: "1".into(), was_primary: false }
    }

    fn primary(rule: Option<SyncRule>, position: u64) -> DbState {
        DbState {
            running: true,
            role: Some(Role::Primary),
            position: Some(Position::wal(position)),
            sync_rule: rule,
            ..DbState::stopped(data())
        }
    }

    #[test]
    fn a_fence_is_remembered_until_the_server_may_become_a_primary_again() {
        let mut memory = Memory::default();
        assert!(!memory.fenced);
        memory.job_reported(JobEvent::Fenced);
        assert!(memory.fenced);
        memory.starting_primary();
        assert!(!memory.fenced);
        memory.job_reported(JobEvent::Fenced);
        let data = DataState::Present { system_id: "1".into(), was_primary: true };
        let primary = DbState { running: true, role: Some(Role::Primary), ..DbState::stopped(data) };
        memory.observed(&primary, LeaseHold::Never, Instant::now());
        assert!(!memory.fenced, "a server seen running as a primary may be one again");
    }

    #[test]
    fn a_repair_is_remembered_until_the_member_streams_or_starts_afresh() {
        let mut memory = Memory::default();
        memory.job_reported(JobEvent::Repaired { ok: false });
        assert!(memory.repair_failed && !memory.repaired);
        memory.job_reported(JobEvent::FollowFailed);
        memory.job_reported(JobEvent::Repaired { ok: true });
        assert_eq!((memory.repair_failed, memory.repaired, memory.follow_failures), (false, true, 0));
        memory.job_reported(JobEvent::FollowFailed);
        memory.job_reported(JobEvent::FollowFailed);
        assert_eq!(memory.follow_failures, 2);
        let streaming =
            DbState { running: true, role: Some(Role::Replica), streaming: true, ..DbState::stopped(data()) };
        memory.observed(&streaming, LeaseHold::Never, Instant::now());
        assert_eq!((memory.repaired, memory.follow_failures), (false, 0));
        memory.job_reported(JobEvent::Repaired { ok: false });
        memory.job_reported(JobEvent::DataRemoved);
        assert!(!memory.repair_failed);
        memory.job_reported(JobEvent::Promoted);
        assert_eq!(memory.failovers, 1);
    }

    #[test]
    fn a_down_primary_and_an_idle_replica_are_timed_from_when_first_seen() {
        let mut memory = Memory::default();
        let t0 = Instant::now();
        let stopped = DbState::stopped(data());
        memory.observed(&stopped, LeaseHold::Valid(FencingToken(3)), t0);
        memory.observed(&stopped, LeaseHold::Valid(FencingToken(3)), t0 + Duration::from_secs(1));
        assert_eq!(memory.primary_down_since, Some(t0));
        memory.observed(&stopped, LeaseHold::Never, t0 + Duration::from_secs(2));
        assert_eq!(memory.primary_down_since, None, "without the lease it is no primary that is down");
        let idle = DbState { running: true, role: Some(Role::Replica), ..DbState::stopped(data()) };
        memory.observed(&idle, LeaseHold::Never, t0);
        memory.observed(&idle, LeaseHold::Never, t0 + Duration::from_secs(5));
        assert_eq!(memory.not_streaming_since, Some(t0));
    }

    #[test]
    fn a_sync_rule_counts_as_applied_from_the_second_observation_at_the_first_ones_position() {
        let mut memory = Memory::default();
        let rule = SyncRule::AnyReplica;
        memory.observed(&primary(Some(rule.clone()), 100), LeaseHold::Never, Instant::now());
        assert_eq!(memory.sync_applied_at(), None, "not in the cycle it is first seen");
        memory.observed(&primary(Some(rule.clone()), 150), LeaseHold::Never, Instant::now());
        assert_eq!(memory.sync_applied_at(), Some(Position::wal(100)));
        let other = SyncRule::First { count: 1, names: vec!["b".into()] };
        memory.observed(&primary(Some(other), 200), LeaseHold::Never, Instant::now());
        assert_eq!(memory.sync_applied_at(), None, "a new rule starts again");
        memory.observed(&primary(None, 300), LeaseHold::Never, Instant::now());
        assert_eq!(memory.sync_seen, None);
    }

    #[test]
    fn a_look_vouches_once_it_began_after_a_read_showed_this_free_period() {
        let mut memory = Memory::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let free_after =
            |grant| ClusterView { last_grant: Some(FencingToken(grant)), ..ClusterView::default() };
        let held = ClusterView { leader: Some(("a".parse().unwrap(), FencingToken(9))), ..free_after(9) };
        // The first read showing the lease free came after the look: that look may be from before.
        memory.read_store(Some(&free_after(4)), at(0), at(10));
        assert_eq!((memory.observed_leaderless, memory.leaderless_after()), (false, None));
        memory.read_store(Some(&free_after(4)), at(20), at(30));
        assert_eq!((memory.observed_leaderless, memory.leaderless_after()), (true, Some(FencingToken(4))));
        // Unread, it vouches for nothing; read again, for the same period as before.
        memory.read_store(None, at(40), at(50));
        assert!(!memory.observed_leaderless);
        memory.read_store(Some(&free_after(4)), at(60), at(70));
        assert_eq!(memory.leaderless_after(), Some(FencingToken(4)));
        // A later free period (a grant it never saw held came and went) starts over.
        memory.read_store(Some(&free_after(9)), at(80), at(90));
        assert_eq!((memory.observed_leaderless, memory.leaderless_after()), (false, None));
        memory.read_store(Some(&free_after(9)), at(100), at(110));
        assert_eq!(memory.leaderless_after(), Some(FencingToken(9)));
        memory.read_store(Some(&held), at(120), at(130));
        assert_eq!((memory.free_since, memory.observed_leaderless), (None, false));
    }
}
