//! The simulated agent: the HA loop of `run.rs` as a sequence of steps over virtual time. Each cycle it
//! renews a held lease, observes its database, fences at once if its lease lapsed, reads the store, builds
//! an `Observation` field by field as `run.rs` does, calls the real `vigil_agent::ha::decide`, and carries
//! out the actions: store actions one after the other (each a request that may be delayed, dropped or time
//! out), fencing at once, database actions as one background job.

use crate::store::Op;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use vigil_agent::db::{DbState, Role};
use vigil_agent::ha::{Action, ClusterView, LeaseHold, Memory, PeerView, PROMOTION_ATTEMPTS};
use vigil_agent::member::MemberRecord;
use vigil_dcs::{FencingToken, MemberName};
use vigil_fencing::HolderDeadline;
use vigil_policy::Veto;

/// How long a peer may take to answer a status request (`peers.rs` `PEER_TIMEOUT`).
pub const PEER_TIMEOUT: Duration = Duration::from_millis(500);

/// A lease grant, by the holder's own clock.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// Its token.
    pub token: FencingToken,
    /// `sent_at + ttl - safety_margin` of the request that granted or last renewed it.
    pub deadline: HolderDeadline,
}

/// One step of a cycle.
#[derive(Debug, Clone)]
pub enum Step {
    /// Renew first, if the lease is held (a stalled process must not lose it to the rest of the cycle).
    RenewIfHeld,
    /// Observe the database; fence it at once if the lease lapsed.
    Observe,
    /// Read the cluster record.
    Read,
    /// Ask the peers for their status (only while nobody holds the lease), then decide.
    ProbeAndDecide,
    /// A store action of the decision.
    Store(Op),
    /// Renew, unless this cycle already did.
    RenewLease,
    /// Give the lease up.
    ReleaseLease,
    /// Stop (`Demote`) or kill the database, at once.
    Fence(Action),
    /// Start the background job with the decision's database actions.
    Job(Vec<Action>),
    /// Observe the database again (after stopping it) and publish the member record.
    Publish {
        /// Observe again first.
        reobserve: bool,
    },
    /// End the cycle: sleep until the next one.
    Sleep,
}

/// A store request awaiting its answer.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The request's id (a late answer to an earlier one is ignored).
    pub id: u64,
    /// What was asked (`None`: a wait for the peers' answers).
    pub op: Option<Op>,
    /// When it was sent, on this node's clock.
    pub sent: Instant,
}

/// The background database job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The actions still to run, in order.
    pub actions: VecDeque<Action>,
    /// Its generation (a job of a crashed agent is forgotten).
    pub generation: u64,
}

/// What the cycle under way has learnt so far.
#[derive(Debug, Clone, Default)]
pub struct Cycle {
    pub observed_at: Option<Instant>,
    pub db: Option<DbState>,
    pub cluster: Option<ClusterView>,
    pub busy: bool,
    pub reason: String,
    /// Why it does not take over while the lease is free (`Decision::refusal`), published as `why`.
    pub refusal: Option<vigil_policy::Refusal>,
    /// How long to wait before the next cycle (`vigil_agent::ha::cycle_wait`), before the lease bounds it.
    pub wait: Duration,
}

/// One member's agent process.
#[derive(Debug, Clone)]
pub struct Agent {
    pub name: MemberName,
    /// This agent process's number (a restarted agent has a new one), sent with acquires and renewals.
    pub incarnation: u64,
    pub lease: Option<Grant>,
    pub lapsed: Option<FencingToken>,
    /// What the policy remembers between cycles: the agent's own `vigil_policy::Memory`.
    pub memory: Memory,
    pub job: Option<Job>,
    pub renew_failed: bool,
    pub renewed_this_cycle: bool,
    pub published: Option<(MemberRecord, Instant)>,
    /// The status its REST API shows peers (the database as last published).
    pub shown: Option<DbState>,
    pub plan: VecDeque<Step>,
    pub waiting: Option<Waiting>,
    pub cycle: Cycle,
    /// Generation of the pending wake-up timer; older ones are ignored.
    pub wake_generation: u64,
    /// Woken (lease change, job done) while a cycle ran: the next one starts at once.
    pub wake_pending: bool,
    /// When the armed watchdog fires, on this node's clock, and the generation of that timer.
    pub watchdog: Option<(Instant, u64)>,
    /// As `RoleGuard`: the promotions that failed in a row, and under which lease.
    pub failed_promotions: (Option<FencingToken>, u32),
    /// As `RoleGuard`: when the last promotion was refused (they failed every time), on this node's clock.
    pub promotion_refused_at: Option<Instant>,
    /// Its REST status says its promotion was refused (`vigil.promotion_refused`), as last published.
    pub shown_refused: bool,
    /// Its REST status says its look at the database came after a store read showed the lease free, and
    /// in which free period (`vigil.observed_leaderless`, `vigil.leaderless_after`), as last published.
    pub shown_leaderless: (bool, Option<FencingToken>),
}

impl Agent {
    /// A freshly started agent for `name`.
    pub fn new(name: MemberName, incarnation: u64) -> Self {
        Agent {
            name,
            incarnation,
            lease: None,
            lapsed: None,
            memory: Memory::default(),
            job: None,
            renew_failed: false,
            renewed_this_cycle: false,
            published: None,
            shown: None,
            plan: VecDeque::new(),
            waiting: None,
            cycle: Cycle::default(),
            wake_generation: 0,
            wake_pending: false,
            watchdog: None,
            failed_promotions: (None, 0),
            promotion_refused_at: None,
            shown_refused: false,
            shown_leaderless: (false, None),
        }
    }

    /// What refused its last promotion less than `ttl` before `now` (`RoleGuard::refused_recently`).
    pub fn promotion_refused(&self, now: Instant, ttl: Duration) -> Option<Veto> {
        let recent = self.promotion_refused_at.is_some_and(|at| now.duration_since(at) < ttl);
        recent.then_some(Veto::Failed)
    }

    /// Takes in that its promotion under `token` failed, at `now` (`RoleGuard::promotion_failed`); whether
    /// it now gives up.
    pub fn promotion_failed(&mut self, token: Option<FencingToken>, now: Instant) -> bool {
        let (last, count) = self.failed_promotions;
        let count = if last == token { count + 1 } else { 1 };
        self.failed_promotions = (token, count);
        let gives_up = count >= PROMOTION_ATTEMPTS;
        if gives_up {
            self.promotion_refused_at = Some(now);
        }
        gives_up
    }

    /// Its hold on the lease at `now` (`lease_keeper.rs` `hold`).
    pub fn lease_hold(&self, now: Instant) -> LeaseHold {
        match (&self.lease, self.lapsed) {
            (Some(grant), _) if grant.deadline.is_valid_at(now) => LeaseHold::Valid(grant.token),
            (Some(grant), _) => LeaseHold::Lapsed(grant.token),
            (None, Some(token)) => LeaseHold::Lapsed(token),
            (None, None) => LeaseHold::Never,
        }
    }

    /// Whether it holds a lease valid by its own deadline.
    pub fn holds_lease(&self, now: Instant) -> bool {
        matches!(self.lease_hold(now), LeaseHold::Valid(_))
    }

    /// Whether a cycle is under way.
    pub fn in_cycle(&self) -> bool {
        !self.plan.is_empty() || self.waiting.is_some()
    }

    /// When the holder renews at the latest: halfway to its deadline (`lease_keeper.rs` `renewal_due`).
    pub fn renewal_due(&self, ttl: Duration, margin: Duration) -> Option<Instant> {
        let deadline = self.lease?.deadline.instant();
        Some(deadline.checked_sub(ttl.saturating_sub(margin) / 2).unwrap_or(deadline))
    }
}

/// What a peer's REST API answers (`peers.rs` `peer_view`), from the status its agent last showed, and
/// what that status said of its promotion (`refused`) and of when it was observed (`leaderless`).
pub fn peer_view(
    name: MemberName,
    shown: Option<&DbState>,
    refused: bool,
    (leaderless, after): (bool, Option<FencingToken>),
) -> PeerView {
    match shown {
        Some(db) => {
            let (state, role) = MemberRecord::state_and_role(db);
            PeerView {
                name,
                reachable: true,
                running: state == "running",
                role: match role {
                    "primary" => Some(Role::Primary),
                    "replica" => Some(Role::Replica),
                    _ => None,
                },
                position: db.position,
                streaming: db.streaming,
                observed_leaderless: leaderless,
                leaderless_after: after,
                can_fail_over: !refused,
                failover_priority: 1,
            }
        }
        None => PeerView::unreachable(name),
    }
}
