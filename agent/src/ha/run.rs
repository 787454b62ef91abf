//! The loop around [`decide`], as a schedule: each cycle observes the database and the store
//! (`observe.rs`, with the fast fence), remembers what it saw (`remember.rs`), decides, acts (`act.rs`) and
//! publishes; [`NextCycle`] says when the next one comes.
//!
//! One cycle every `loop_wait`, sooner when the leader lease changes hands (a watch on the store), when a
//! background job ends, or when this member's own lease deadline comes (to fence in time). Long database
//! operations run as a background job; while one runs, the loop only keeps the lease renewed.

use super::events::{EventWriter, Takeover};
use super::execute::JobReport;
use super::guard::RoleGuard;
use super::identity::Identity;
use super::lease_keeper::LeaseKeeper;
use super::publisher::{Publisher, Standing};
use super::{cycle_wait, decide, Action, Decision, NextCycle, Refusal};
use crate::config::DynamicConfig;
use crate::db::lifeline::Lifeline;
use crate::db::{Database, DbState};
use crate::status::SharedStatus;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use vigil_dcs::{DcsNode, FencingToken};
use vigil_policy::{ClusterView, LeaseHold};
use vigil_policy::{Memory, Observation};

/// The agent: one member's HA loop.
pub struct Agent<D: Database> {
    pub(super) me: Identity,
    pub(super) dcs: Arc<DcsNode>,
    pub(super) db: Arc<D>,
    pub(super) http: reqwest::Client,
    pub(super) lease: LeaseKeeper,
    /// What the policy remembers between cycles.
    pub(super) memory: Memory,
    /// The background database job, which reports how it went when it ends.
    pub(super) job: Option<JoinHandle<JobReport>>,
    pub(super) wake: Arc<Notify>,
    pub(super) last_reason: String,
    /// What the running server's replication slots were last synced for.
    pub(super) retained_for: Option<crate::db::Retained>,
    /// When they were last synced.
    pub(super) retained_at: Option<std::time::Instant>,
    /// The primary's permanent logical slots' positions as last published in the `status` key.
    pub(super) slot_positions: BTreeMap<String, u64>,
    /// Writes the member record and the REST status.
    pub(super) publisher: Publisher,
    /// Set while a synchronous standby shuts down: its record then says `stopping`.
    pub(super) leaving: bool,
    /// The dynamic configuration as last read (the bootstrap one until then).
    pub(super) dynamic: DynamicConfig,
    /// The server parameters last handed to the database (`None`: none yet since the agent started).
    pub(super) parameters: Option<BTreeMap<String, String>>,
    /// Whether this cycle already renewed the lease (at its start).
    pub(super) renewed_this_cycle: bool,
    /// A restart scheduled through the API (`POST /restart {"schedule": …}`), carried out when due.
    pub(super) scheduled_restart: Option<(vigil_api::Schedule, vigil_api::RestartRequest)>,
    /// The next scheduled switchover or restart, for the loop to wake at.
    pub(super) scheduled_wake: Option<SystemTime>,
    /// The watchdog, `pre_promote` and the callbacks.
    pub(super) guard: Arc<RoleGuard>,
    /// How the lease was last taken (`failover`, `switchover`, …), for the history of the promotion.
    pub(super) lease_taken_for: &'static str,
    /// When and under which token this member last took the lease, for the failover's phases.
    pub(super) takeover: Option<Takeover>,
    /// Writes this member's events to the store.
    pub(super) events: EventWriter,
    /// The database's lifeline, told the peers (see [`crate::db::lifeline`]).
    pub(super) lifeline: Option<Lifeline>,
}

impl<D: Database> Agent<D> {
    /// An agent for `me`, over its store node and database.
    pub fn new(me: Identity, dcs: Arc<DcsNode>, db: Arc<D>, status: Arc<SharedStatus>) -> Self {
        let me_dynamic = me.bootstrap_dcs.clone();
        let http = super::peers::peer_client(&me.api_client_tls);
        let events = EventWriter::spawn(dcs.clone());
        let lease = LeaseKeeper::new(dcs.clone(), me.name.clone(), events.sender());
        let conn_url = D::connection_url(&me.db_host, me.db_port);
        let publisher = Publisher::new(dcs.clone(), status, conn_url, &me_dynamic);
        Agent {
            me,
            dcs,
            db,
            http,
            lease,
            memory: Memory::default(),
            job: None,
            wake: Arc::new(Notify::new()),
            last_reason: String::new(),
            retained_for: None,
            retained_at: None,
            slot_positions: BTreeMap::new(),
            publisher,
            leaving: false,
            dynamic: me_dynamic,
            parameters: None,
            renewed_this_cycle: false,
            scheduled_restart: None,
            scheduled_wake: None,
            guard: Arc::default(),
            lease_taken_for: super::history::FAILOVER,
            takeover: None,
            events,
            lifeline: None,
        }
    }

    /// The agent telling `lifeline` its lease grants and peers, for a death certificate.
    pub fn with_lifeline(mut self, lifeline: Option<Lifeline>) -> Self {
        if let Some(lifeline) = &lifeline {
            self.lease.tell(lifeline.clone());
        }
        self.lifeline = lifeline;
        self
    }

    /// The agent with this watchdog and these hooks (none by default).
    pub fn with_guard(mut self, guard: RoleGuard) -> Self {
        self.guard = Arc::new(guard);
        self
    }

    /// Runs cycles until `shutdown` completes, then hands over (see [`Agent::shut_down`]); carries out
    /// the API's commands from `commands` between cycles.
    pub async fn run(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
        mut commands: tokio::sync::mpsc::Receiver<super::commands::Envelope>,
    ) {
        tokio::pin!(shutdown);
        let mut leader = self.dcs.watch_leader();
        let mut stopping = super::view::StoppingWatch::new(&self.dcs);
        loop {
            let started = Instant::now();
            let wait = self.cycle().await;
            self.dcs.timings().ha_cycle.observe(started.elapsed());
            if self.run_scheduled_restart().await {
                continue; // the next cycle observes the restarted database at once
            }
            let next = NextCycle {
                now: Instant::now(),
                wall_clock: SystemTime::now(),
                wait,
                lease: self.lease.times(),
                primary_down_since: self.memory.primary_down_since,
                primary_start_timeout: self.dynamic.primary_start_timeout,
                scheduled: self.scheduled_wake,
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = leader.changed() => {}
                _ = stopping.changed() => {}
                _ = self.wake.notified() => {}
                Some((command, reply)) = commands.recv() => self.dispatch(command, reply).await,
                _ = tokio::time::sleep_until(next.at().into()) => {}
            }
        }
        self.shut_down().await;
    }

    /// One cycle: observe → remember → decide → act → publish. Returns how long until the next one
    /// ([`cycle_wait`]; `loop_wait` while a database job runs), which [`NextCycle::at`] bounds.
    pub(super) async fn cycle(&mut self) -> Duration {
        // A holder renews first, before anything that may wait on the store: after a stall of this
        // process, every millisecond before the deadline counts.
        self.renewed_this_cycle = false;
        if self.holds_lease() {
            let known = self.dynamic.clone();
            self.renew(&known).await;
            self.renewed_this_cycle = true;
        }
        self.collect_job().await;
        // A job that ends while the database is observed leaves the observation older than what the job
        // reports (a rewind done, say): such a cycle does not decide, the job's end wakes the next one.
        let busy = self.busy();
        let seen = self.observe().await;
        let dynamic = self.dynamic.clone();
        if busy || self.busy() {
            // While a job runs, the loop only keeps the lease renewed.
            if matches!(seen.lease, LeaseHold::Valid(_))
                && (!self.renewed_this_cycle || self.lease.renewal_is_due(Instant::now()))
            {
                self.renew(&dynamic).await;
            }
            let busy = "busy: a database operation is running";
            // A promotion that returned meanwhile is already in the status: not undone by an older look.
            let db = match self.publisher.status().promoted_after(seen.observed_at) {
                true => self.db.observe().await,
                false => seen.db,
            };
            self.publish(&db, seen.cluster.as_ref(), &dynamic, busy, None).await;
            return dynamic.loop_wait;
        }
        self.apply_parameters(&dynamic).await;
        let observed_at = seen.observed_at;
        let mut observation = self.remember(seen, &dynamic).await;
        let mut decision = decide(&observation);
        let (mut stops_db, mut decided_again) = (false, false);
        loop {
            self.log(&decision);
            let wait = cycle_wait(&decision, &observation);
            stops_db |= decision.stops_database();
            let (takes_lease, held) = (decision.actions.contains(&Action::AcquireLease), self.lease.token());
            self.execute(std::mem::take(&mut decision.actions), &dynamic, &observation).await;
            // A lease just taken is acted on in this very cycle (a promotion, typically).
            if let Some(next) =
                self.with_new_lease(&observation, held).filter(|_| takes_lease && !decided_again)
            {
                (observation, decided_again) = (next, true);
                decision = decide(&observation);
                continue;
            }
            // After stopping the database, publish what it is now: peers racing for the lease must not see
            // a primary that no longer runs. Nor may a promotion started in this cycle, already returned
            // and in the status, be undone by the look taken before it.
            let promoted = self.publisher.status().promoted_after(observed_at);
            let db = if stops_db || promoted { self.db.observe().await } else { observation.db };
            let (reason, refusal) = (&decision.reason, decision.refusal.as_ref());
            self.publish(&db, observation.cluster.as_ref(), &dynamic, reason, refusal).await;
            return wait;
        }
    }

    /// What `o` becomes once this cycle took the lease under a new token (not `held`, the one held
    /// before): the same database, the store naming this member as holder with that token, a lease
    /// valid now. Deciding from it starts the promotion at once rather than a cycle later, whose new look
    /// at the database would find it unchanged (the lease was all that moved). `None` when no new lease
    /// was taken, it is no longer valid, or in pause.
    fn with_new_lease(&mut self, o: &Observation, held: Option<FencingToken>) -> Option<Observation> {
        let token = self.lease.token().filter(|t| Some(*t) != held)?;
        let now = Instant::now();
        if o.policy.pause || self.lease.hold(now) != LeaseHold::Valid(token) {
            return None;
        }
        let mut cluster = o.cluster.clone()?;
        cluster.leader = Some((self.me.name.clone(), token));
        // Just granted: renewing again in this cycle would only cost a store write.
        self.renewed_this_cycle = true;
        let lease = LeaseHold::Valid(token);
        Some(Observation { now, wall_clock: SystemTime::now(), lease, cluster: Some(cluster), ..o.clone() })
    }

    /// Whether this agent holds a lease valid by its own deadline.
    pub(super) fn holds_lease(&self) -> bool {
        self.lease.is_valid()
    }

    /// The token of the lease this agent holds, if any.
    pub(super) fn lease_token(&self) -> Option<FencingToken> {
        self.lease.token()
    }

    /// Runs the next cycle at once.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Logs `decision`: at `info` when it changes something, at `debug` when routine or repeated.
    fn log(&mut self, decision: &Decision) {
        let token = self.lease.token().map(|t| t.0);
        if decision.actions.is_empty() && decision.reason == self.last_reason {
            tracing::debug!(reason = %decision.reason, "no change");
        } else if decision
            .actions
            .iter()
            .all(|a| matches!(a, Action::RenewLease | Action::PublishOptime(_) | Action::RetainFor(_)))
            && decision.reason == self.last_reason
        {
            tracing::debug!(reason = %decision.reason, ?token, "routine");
        } else {
            tracing::info!(reason = %decision.reason, actions = ?decision.actions, ?token, "decision");
        }
        self.last_reason = decision.reason.clone();
    }

    /// Publishes the member record (when it changed, or when half its ttl has passed) and the REST status,
    /// with the last decision's `reason` and `refusal`.
    pub(super) async fn publish(
        &mut self,
        db: &DbState,
        cluster: Option<&ClusterView>,
        dynamic: &DynamicConfig,
        reason: &str,
        refusal: Option<&Refusal>,
    ) {
        let standing = Standing {
            token: self.lease.token(),
            deadline: self.lease.grant().map(|g| g.deadline),
            wait_limit: self.lease.wait_limit(Instant::now(), db.is_running_primary()),
            leaving: self.leaving,
            refusal: refusal.cloned(),
            observed_leaderless: self.memory.observed_leaderless,
            leaderless_after: self.memory.leaderless_after(),
            promotion_refused: self.guard.refused_recently(Instant::now(), dynamic.ttl),
            failovers: self.memory.failovers,
            watchdog_failed: self.guard.watchdog_failed(),
            scheduled_restart: self.scheduled_restart.as_ref().map(|(at, request)| {
                vigil_api::RestartRequest { schedule: Some(at.to_string()), ..request.clone() }
            }),
        };
        self.publisher.publish(&self.me, &standing, db, cluster, dynamic, reason).await;
    }
}
