//! The cluster store as one linearizable authority (the Raft leader of a healthy group), with the real
//! lease state machine: lease commands go through `vigil_dcs::ClusterState::apply`, so grants, renewals,
//! releases and expiries follow the production rules (a token is the revision of its granting entry;
//! renewal and release need the holder's token; an expiry is a no-op unless that exact renewal is current).
//!
//! The lessor is modelled as ARCHITECTURE.md describes it: the leader times each lease on its own
//! drifting clock, at least `ttl` after it applied the last renewal, and a new Raft leader
//! ([`Store::take_over`]) restarts every timer at the moment it takes over. The other keys are kept
//! typed (the policy's own types), without the JSON round trip of the real store; member keys expire
//! after their ttl like the lease.

use crate::clock::Clock;
use crate::scheduler::Millis;
use std::collections::BTreeMap;
use std::time::Duration;
use vigil_agent::db::Position;
use vigil_agent::ha::{ClusterView, Initialize, SyncState};
use vigil_agent::member::MemberRecord;
use vigil_dcs::{ClusterState, Command, ExpiryTarget, FencingToken, MemberName, Outcome, Revision};

/// A request an agent sends to the store.
#[derive(Debug, Clone)]
pub enum Op {
    /// A linearizable read of the cluster record.
    Read,
    /// Take the lease (or, already holding it, renew it and get the same token back), as agent process
    /// number this.
    Acquire(u64),
    /// Renew the lease held with this token, as agent process number this.
    Renew(FencingToken, u64),
    /// Give up the lease held with this token.
    Release(FencingToken),
    /// A death certificate, sent by the lifeline of a dead agent through a peer: release the lease of
    /// this grant if this agent process holds it.
    ReleaseDead(FencingToken, u64),
    /// Create `initialize` naming the sender, if absent.
    ClaimInitialize,
    /// Record the system identifier in `initialize`.
    SetSystemId(String),
    /// Write `status`.
    PutOptime(Position),
    /// Write `sync`.
    PutSync(SyncState),
    /// Write the sender's member key (with the lease ttl).
    PutMember(Box<MemberRecord>),
}

/// The store's answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// The cluster record.
    View(Box<ClusterView>),
    /// The lease is the sender's, with this token.
    Granted(FencingToken),
    /// The lease request was refused (held by another; or, for a renew or release, not the holder).
    Refused,
    /// A write that was applied.
    Done,
}

/// Something the lessor times: the lease as of one renewal, or a member key as of one write.
#[derive(Debug, Clone)]
pub struct Expiry {
    /// The lessor generation that set the timer (a new Raft leader starts a new one).
    epoch: u64,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Lease(ExpiryTarget),
    Member(MemberName, Revision),
}

/// The store.
pub struct Store {
    /// The Raft leader's clock.
    pub clock: Clock,
    ttl: Duration,
    lease: ClusterState,
    revision: u64,
    epoch: u64,
    initialize: Option<Initialize>,
    optime: Option<Position>,
    sync: Option<SyncState>,
    members: BTreeMap<MemberName, (MemberRecord, Revision)>,
    /// The largest token granted so far.
    pub last_token: Option<FencingToken>,
}

/// A timer the caller must schedule: `expiry` is due this many true milliseconds from now.
pub type Timer = (Millis, Expiry);

impl Store {
    /// An empty store whose leases and member keys live `ttl`.
    pub fn new(clock: Clock, ttl: Duration) -> Self {
        Store {
            clock,
            ttl,
            lease: ClusterState::default(),
            revision: 0,
            epoch: 0,
            initialize: None,
            optime: None,
            sync: None,
            members: BTreeMap::new(),
            last_token: None,
        }
    }

    /// The lease holder and token, as the store has it.
    pub fn leader(&self) -> Option<(MemberName, FencingToken)> {
        self.lease.leader.as_ref().map(|l| (l.holder.clone(), l.token))
    }

    /// Applies `op` from `who`; returns the answer, the timers to start, and whether a new token was
    /// granted that is not larger than every earlier one (a broken invariant).
    pub fn apply(&mut self, who: &MemberName, op: Op) -> (Answer, Vec<Timer>, Option<String>) {
        let mut timers = Vec::new();
        let mut broken = None;
        let answer = match op {
            Op::Read => Answer::View(Box::new(self.view())),
            Op::Acquire(incarnation) => {
                let ttl_ms = self.ttl.as_millis() as u64;
                let before = self.leader();
                match self.command(Command::AcquireLease { holder: who.clone(), ttl_ms, incarnation }) {
                    Outcome::LeaseGranted { token, renewed_at } => {
                        if before.is_none() {
                            if self.last_token.is_some_and(|last| token <= last) {
                                broken = Some(format!(
                                    "token {token} granted to {who} after token {:?}",
                                    self.last_token
                                ));
                            }
                            self.last_token = Some(token);
                        }
                        timers.push(self.lease_timer(token, renewed_at));
                        Answer::Granted(token)
                    }
                    _ => Answer::Refused,
                }
            }
            Op::Renew(token, incarnation) => {
                match self.command(Command::RenewLease { holder: who.clone(), token, incarnation }) {
                    Outcome::LeaseGranted { token, renewed_at } => {
                        timers.push(self.lease_timer(token, renewed_at));
                        Answer::Granted(token)
                    }
                    _ => Answer::Refused,
                }
            }
            Op::ReleaseDead(token, incarnation) => {
                match self.command(Command::ReleaseDead {
                    holder: who.clone(),
                    token,
                    incarnation,
                    event: serde_json::Value::Null,
                }) {
                    Outcome::LeaseReleased => Answer::Done,
                    _ => Answer::Refused,
                }
            }
            Op::Release(token) => match self.command(Command::ReleaseLease { holder: who.clone(), token }) {
                Outcome::LeaseReleased => Answer::Done,
                _ => Answer::Refused,
            },
            Op::ClaimInitialize => {
                self.initialize.get_or_insert_with(|| Initialize { by: who.clone(), system_id: None });
                Answer::Done
            }
            Op::SetSystemId(system_id) => {
                self.initialize = Some(Initialize { by: who.clone(), system_id: Some(system_id) });
                Answer::Done
            }
            Op::PutOptime(position) => {
                self.optime = Some(position);
                Answer::Done
            }
            Op::PutSync(state) => {
                self.sync = Some(state);
                Answer::Done
            }
            Op::PutMember(record) => {
                let version = self.next_revision();
                self.members.insert(who.clone(), (*record, version));
                let target = Target::Member(who.clone(), version);
                timers.push((self.clock.true_duration(self.ttl), Expiry { epoch: self.epoch, target }));
                Answer::Done
            }
        };
        (answer, timers, broken)
    }

    /// Applies a lessor timer that ran out; true when it expired the lease.
    pub fn expire(&mut self, expiry: Expiry) -> bool {
        if expiry.epoch != self.epoch {
            return false; // set by a former Raft leader
        }
        match expiry.target {
            Target::Lease(target) => self.command(Command::Expire(target)) == Outcome::Expired,
            Target::Member(name, version) => {
                if self.members.get(&name).is_some_and(|(_, v)| *v == version) {
                    self.members.remove(&name);
                }
                false
            }
        }
    }

    /// A new Raft leader takes over: every lease and member key counts as renewed now.
    pub fn take_over(&mut self) -> Vec<Timer> {
        self.epoch += 1;
        let mut timers = Vec::new();
        if let Some(lease) = &self.lease.leader {
            timers.push(self.lease_timer(lease.token, lease.renewed_at));
        }
        for (name, (_, version)) in &self.members {
            let target = Target::Member(name.clone(), *version);
            timers.push((self.clock.true_duration(self.ttl), Expiry { epoch: self.epoch, target }));
        }
        timers
    }

    fn lease_timer(&self, token: FencingToken, renewed_at: Revision) -> Timer {
        let target = Target::Lease(ExpiryTarget::Leader { token, renewed_at });
        (self.clock.true_duration(self.ttl), Expiry { epoch: self.epoch, target })
    }

    fn command(&mut self, command: Command) -> Outcome {
        let index = self.next_revision();
        self.lease.apply(index.0, &command)
    }

    fn next_revision(&mut self) -> Revision {
        self.revision += 1;
        Revision(self.revision)
    }

    fn view(&self) -> ClusterView {
        ClusterView {
            initialize: self.initialize.clone(),
            leader: self.leader(),
            last_grant: self.lease.last_grant,
            members: self.members.iter().map(|(name, (record, _))| (name.clone(), record.view())).collect(),
            optime: self.optime,
            slots: Default::default(),
            switchover: None,
            sync: self.sync.clone(),
            timeline: None,
        }
    }
}
