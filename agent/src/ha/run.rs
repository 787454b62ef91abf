//! The loop around [`decide`]: observe the database and the cluster, decide, act, publish.
//!
//! One cycle every `loop_wait`, sooner when the leader lease changes hands (a watch on the store), when a
//! background job ends, or when this member's own lease deadline comes (to fence in time). Long database
//! operations run as a background job; while one runs, the loop only keeps the lease renewed.

use super::execute::JobReport;
use super::guard::RoleGuard;
use super::identity::Identity;
use super::lease_keeper::{before, LeaseKeeper};
use super::memory::Memory;
use super::observation::SyncPolicy;
use super::observation::{ClusterView, LeaseHold, Observation, Policy};
use super::publisher::{Publisher, Standing};
use super::sync::{handed_over, is_named_standby};
use super::view::{cluster_view, dynamic_or_last_good};
use super::{cycle_wait, decide, decide_fast_fence, Action, Decision, NextCycle};
use crate::config::DynamicConfig;
use crate::db::{Database, DbState};
use crate::status::SharedStatus;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use vigil_dcs::{DcsNode, FencingToken};
use vigil_fencing::instant_after;

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
    last_reason: String,
    /// The members whose replication slots were last synced on the running server (none on a replica).
    pub(super) synced_slots: Option<Vec<String>>,
    /// Writes the member record and the REST status.
    pub(super) publisher: Publisher,
    /// Set while a synchronous standby shuts down: its record then says `stopping`.
    leaving: bool,
    /// The dynamic configuration as last read (the bootstrap one until then).
    dynamic: DynamicConfig,
    /// The server parameters last handed to the database (`None`: none yet since the agent started).
    parameters: Option<BTreeMap<String, String>>,
    /// Whether this cycle already renewed the lease (at its start).
    pub(super) renewed_this_cycle: bool,
    /// A restart scheduled through the API (`POST /restart {"schedule": …}`), carried out when due.
    pub(super) scheduled_restart: Option<(vigil_api::Schedule, vigil_api::RestartRequest)>,
    /// The next scheduled switchover or restart, for the loop to wake at.
    scheduled_wake: Option<SystemTime>,
    /// The watchdog, `pre_promote` and the callbacks.
    pub(super) guard: Arc<RoleGuard>,
}

impl<D: Database> Agent<D> {
    /// An agent for `me`, over its store node and database.
    pub fn new(me: Identity, dcs: Arc<DcsNode>, db: Arc<D>, status: Arc<SharedStatus>) -> Self {
        let me_dynamic = me.bootstrap_dcs.clone();
        let http = super::peers::peer_client(&me.api_client_tls);
        let lease = LeaseKeeper::new(dcs.clone(), me.name.clone());
        let publisher = Publisher::new(dcs.clone(), status, D::connection_url(&me.db_host, me.db_port));
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
            synced_slots: None,
            publisher,
            leaving: false,
            dynamic: me_dynamic,
            parameters: None,
            renewed_this_cycle: false,
            scheduled_restart: None,
            scheduled_wake: None,
            guard: Arc::default(),
        }
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
            let wait = self.cycle().await;
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

    /// One cycle; returns how long until the next one ([`cycle_wait`]; `loop_wait` while a database job
    /// runs), which [`NextCycle::at`] bounds.
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
        // A server found down was down when the look began (observing a hung one takes seconds).
        let observed_at = Instant::now();
        let mut db = self.db.observe().await;
        // A hung server makes observing slow: the renewal must not wait for the store read below.
        if self.lease.renewal_is_due(Instant::now()) && self.holds_lease() {
            let known = self.dynamic.clone();
            self.renew(&known).await;
        }
        if let Some(fence) = decide_fast_fence(self.lease.hold(Instant::now()), &db, self.dynamic.pause) {
            // Fencing does not wait for a store read that may itself take retry_timeout.
            tracing::warn!(reason = %fence.reason, actions = ?fence.actions, "fencing before reading the store");
            for action in fence.actions {
                self.fence(action).await;
            }
            db = self.db.observe().await;
            let deadline = self.lease.grant().map(|g| g.deadline.instant());
            let after = deadline.map(|d| Instant::now().saturating_duration_since(d).as_millis() as u64);
            let token = self.lease.last_token();
            tracing::warn!(?token, fenced_ms_after_deadline = ?after, running = db.running, "fenced");
        }
        let limit = self.lease.wait_limit(Instant::now(), db.is_running_primary());
        let read = before(limit, self.dcs.read()).await.unwrap_or({
            Err(vigil_dcs::DcsError::NoQuorum {
                op: "read (given up at the lease's deadline)",
                waited: self.dynamic.retry_timeout,
            })
        });
        // A stored config that cannot be used, or a failed read, leaves the last good one in force.
        if let Ok(state) = &read {
            self.dynamic = dynamic_or_last_good(state, &self.dynamic, &self.me.bootstrap_dcs);
        }
        let dynamic = self.dynamic.clone();
        // Like ttl and loop_wait, retry_timeout follows the stored configuration.
        self.dcs.set_op_timeout(dynamic.retry_timeout);
        self.db.die_with_agent(!dynamic.pause);
        let cluster = match &read {
            Ok(state) => {
                self.publisher.store_seen();
                Some(cluster_view(state))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster store");
                None
            }
        };
        let now = Instant::now();
        let lease = self.lease.hold(now);
        if busy || self.busy() {
            if matches!(lease, LeaseHold::Valid(_))
                && (!self.renewed_this_cycle || self.lease.renewal_is_due(Instant::now()))
            {
                self.renew(&dynamic).await;
            }
            self.publish(&db, cluster.as_ref(), &dynamic, "busy: a database operation is running").await;
            return dynamic.loop_wait;
        }
        self.apply_parameters(&dynamic).await;
        let other_holder = cluster.as_ref().and_then(|c| c.leader.as_ref()).map(|(h, _)| h);
        self.guard.observe(&dynamic, other_holder.filter(|h| **h != self.me.name));
        let token = self.lease.last_token();
        let leading = matches!(lease, LeaseHold::Valid(_)) && db.is_running_primary();
        self.guard.follow_role(leading, db.is_running_primary(), dynamic.pause, token, self.lease.grant());
        self.memory.observed(&db, lease, observed_at);
        if !db.running {
            self.synced_slots = None; // a rewind or a clone may replace the slots before it runs again
        }
        let peers = match &cluster {
            Some(c) if c.leader.is_none() && db.running => self.probe_peers(c).await,
            _ => Vec::new(),
        };
        let switchover_at = cluster.as_ref().and_then(|c| c.switchover.as_ref()?.scheduled_at);
        self.scheduled_wake = self.next_scheduled(switchover_at);
        let observation = Observation {
            now,
            wall_clock: SystemTime::now(),
            me: self.me.name.clone(),
            policy: self.policy(&dynamic),
            db: db.clone(),
            cluster: cluster.clone(),
            lease,
            primary_down_since: self.memory.primary_down_since,
            not_streaming_since: self.memory.not_streaming_since,
            rewind_failed: self.memory.rewind_failed,
            rewound: self.memory.rewound,
            follow_failures: self.memory.follow_failures,
            peers,
            sync_applied_at: self.memory.sync_applied_at(),
            promotion_refused: self.guard.refused_recently(now, dynamic.ttl),
        };
        let decision = decide(&observation);
        self.log(&decision);
        let wait = cycle_wait(&decision, &observation);
        let stops_db = decision.stops_database();
        self.execute(decision.actions, &dynamic, &observation).await;
        // After stopping the database, publish what it is now: peers racing for the lease must not see
        // a primary that no longer runs.
        let db = if stops_db { self.db.observe().await } else { db };
        self.publish(&db, cluster.as_ref(), &dynamic, &decision.reason).await;
        wait
    }

    /// The earlier of a scheduled switchover and this member's scheduled restart.
    fn next_scheduled(&self, switchover_at: Option<vigil_api::Schedule>) -> Option<SystemTime> {
        let restart_at = self.scheduled_restart.as_ref().map(|(at, _)| at.at());
        switchover_at.map(|at| at.at()).into_iter().chain(restart_at).min()
    }

    /// Whether a background database job is running.
    pub(super) fn busy(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.is_finished())
    }

    /// Waits, at most `limit`, for the running background job to end.
    pub(super) async fn wait_for_job(&mut self, limit: Duration) {
        if let Some(job) = self.job.as_mut() {
            if let Ok(report) = tokio::time::timeout(limit, job).await {
                self.job = None; // a finished JoinHandle must not be polled again
                self.remember(report.unwrap_or_default());
            }
        }
    }

    /// Takes in the report of the background job, if it has ended.
    async fn collect_job(&mut self) {
        if let Some(job) = self.job.take_if(|job| job.is_finished()) {
            let report = job.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "the database job panicked");
                JobReport::default()
            });
            self.remember(report);
        }
    }

    /// Takes in what a database job reports.
    pub(super) fn remember(&mut self, report: JobReport) {
        for event in report.events {
            self.memory.job_reported(event);
        }
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

    /// The configuration file this agent was started from.
    pub(super) fn config_path(&self) -> Option<&std::path::Path> {
        self.me.config_path.as_deref()
    }

    /// Takes the tags (and what follows from them) from a reloaded configuration.
    /// Takes the tags and the server parameters of a configuration file read again.
    pub(super) fn apply_reloaded(&mut self, config: &crate::config::Config) {
        self.me.tags = super::identity_tags(config);
        self.me.can_fail_over = config.tags.can_fail_over();
        self.me.failover_priority = config.tags.failover_priority();
        self.me.parameters = config.postgresql.parameters.clone();
        self.publisher.forget();
    }

    /// This member's own server parameters (its file's `postgresql.parameters`).
    pub(super) fn own_parameters(&self) -> &BTreeMap<String, String> {
        &self.me.parameters
    }

    /// Hands the database the server parameters of `dynamic` and this member's file, and the ttl as the
    /// upstream timeout, once they change (the adapter reloads the server; what needs a restart shows as
    /// pending).
    async fn apply_parameters(&mut self, dynamic: &DynamicConfig) {
        // The adapter does nothing while the ttl stays the same.
        if let Err(e) = self.db.set_upstream_timeout(dynamic.ttl).await {
            tracing::warn!(error = %e, "replication timeouts not reloaded; kept for the next configuration written");
        }
        let wanted = crate::config::server_parameters(dynamic, &self.me.parameters);
        if self.parameters.as_ref() == Some(&wanted) {
            return;
        }
        match self.db.set_parameters(&wanted).await {
            Ok(()) => self.parameters = Some(wanted),
            Err(e) => tracing::warn!(error = %e, "server parameters not applied; trying again next cycle"),
        }
    }

    fn policy(&self, dynamic: &DynamicConfig) -> Policy {
        Policy {
            can_fail_over: self.me.can_fail_over,
            failover_priority: self.me.failover_priority,
            maximum_lag_on_failover: dynamic.maximum_lag_on_failover,
            primary_start_timeout: dynamic.primary_start_timeout,
            use_pg_rewind: dynamic.postgresql.use_pg_rewind,
            pause: dynamic.pause,
            loop_wait: dynamic.loop_wait,
            sync: SyncPolicy {
                mode: dynamic.synchronous_mode,
                strict: dynamic.synchronous_mode_strict,
                node_count: dynamic.synchronous_node_count,
            },
        }
    }

    fn log(&mut self, decision: &Decision) {
        let token = self.lease.token().map(|t| t.0);
        if decision.actions.is_empty() && decision.reason == self.last_reason {
            tracing::debug!(reason = %decision.reason, "no change");
        } else if decision
            .actions
            .iter()
            .all(|a| matches!(a, Action::RenewLease | Action::PublishOptime(_) | Action::SyncSlots(_)))
            && decision.reason == self.last_reason
        {
            tracing::debug!(reason = %decision.reason, ?token, "routine");
        } else {
            tracing::info!(reason = %decision.reason, actions = ?decision.actions, ?token, "decision");
        }
        self.last_reason = decision.reason.clone();
    }

    /// Publishes the member record (when it changed, or when half its ttl has passed) and the REST status.
    pub(super) async fn publish(
        &mut self,
        db: &DbState,
        cluster: Option<&ClusterView>,
        dynamic: &DynamicConfig,
        reason: &str,
    ) {
        let standing = Standing {
            token: self.lease.token(),
            deadline: self.lease.grant().map(|g| g.deadline),
            wait_limit: self.lease.wait_limit(Instant::now(), db.is_running_primary()),
            leaving: self.leaving,
            failovers: self.memory.failovers,
        };
        self.publisher.publish(&self.me, &standing, db, cluster, dynamic, reason).await;
    }

    /// On SIGTERM: a primary stops its database with a shutdown checkpoint, which PostgreSQL streams to
    /// its replicas before it exits, then releases the lease so the most advanced replica takes over
    /// without losing an acknowledged write. A synchronous standby first has the primary move its role to
    /// another standby, so that commits do not stall. Any other member just stops its database.
    async fn shut_down(mut self) {
        tracing::info!("shutting down");
        if let Some(job) = self.job.take() {
            let _ = job.await;
        }
        self.hand_over_sync_role().await;
        if let Err(e) = self.db.stop(crate::db::StopMode::Fast).await {
            tracing::warn!(error = %e, "database did not stop cleanly");
        }
        let token = self.lease.last_token();
        self.release().await;
        self.guard.disarm(token, "clean shutdown");
        self.publisher.no_deadline();
    }
}

impl<D: Database> Agent<D> {
    /// A synchronous standby about to stop announces it (its record says `stopping`, which the primary
    /// takes as "not a candidate") and waits, at most [`sync_handoff_wait`], until the primary handed its
    /// role over (see [`handed_over`]), keeping its record alive meanwhile.
    async fn hand_over_sync_role(&mut self) {
        let view = cluster_view(&self.dcs.local());
        if !is_named_standby(&view, &self.me.name) {
            return;
        }
        tracing::info!("synchronous standby shutting down: asking the primary to move the role first");
        self.leaving = true;
        self.publisher.forget();
        let db = self.db.observe().await;
        let dynamic = self.dynamic.clone();
        let wait = sync_handoff_wait(&dynamic);
        let deadline = instant_after(Instant::now(), wait);
        loop {
            let view = cluster_view(&self.dcs.local());
            if handed_over(&view, &self.me.name) {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    ?wait,
                    "the primary did not move the synchronous standby role: stopping anyway"
                );
                return;
            }
            // Written again only once half its ttl is gone: the primary must not see this member vanish.
            self.publish(
                &db,
                Some(&view),
                &dynamic,
                "shutting down: handing the synchronous standby role over",
            )
            .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!("synchronous standby role handed over");
    }
}

/// How long a synchronous standby that shuts down waits for the primary to move its role: the primary
/// needs about three of its cycles (drop the standby from `sync`, change its rule, publish the new
/// standby once it confirms), each slower on a busy machine; never less than [`SYNC_HANDOFF_MIN`].
fn sync_handoff_wait(dynamic: &DynamicConfig) -> Duration {
    dynamic.loop_wait.saturating_mul(4).max(SYNC_HANDOFF_MIN)
}

/// The least time a synchronous standby that shuts down waits for the primary to move its role.
const SYNC_HANDOFF_MIN: Duration = Duration::from_secs(10);
