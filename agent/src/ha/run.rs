//! The loop around [`decide`]: observe the database and the cluster, decide, act, publish.
//!
//! One cycle every `loop_wait`, sooner when the leader lease changes hands (a watch on the store), when a
//! background job ends, or when this member's own lease deadline comes (to fence in time). Long database
//! operations run as a background job; while one runs, the loop only keeps the lease renewed.

use super::execute::{run_db_job, DbJob, Repair};
use super::guard::RoleGuard;
use super::observation::{ClusterView, LeaseHold, Observation, PeerView, Policy};
use super::sync::{handed_over, is_named_standby, sync_health, SyncPolicy};
use super::view::{cluster_view, dynamic_or_last_good, Status};
use super::{decide, fence_action, Action, Decision, Initialize};
use crate::config::DynamicConfig;
use crate::db::{Database, DbState, Position, Role, SyncRule};
use crate::member::MemberRecord;
use crate::status::SharedStatus;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use vigil_api::{NodeStatus, PatroniInfo, Replication, Xlog};
use vigil_dcs::{Condition, DcsNode, FencingToken, Key, LeaseGrant, MemberName};
use vigil_fencing::instant_after;

/// Who this member is and how it presents itself; fixed for the agent's life.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The member name.
    pub name: MemberName,
    /// The cluster's scope.
    pub scope: String,
    /// The REST API's URL for peers (`http://host:port/patroni`).
    pub api_url: String,
    /// The database's host for peers and clients.
    pub db_host: String,
    /// The database's port.
    pub db_port: u16,
    /// The member's tags, as published.
    pub tags: BTreeMap<String, serde_json::Value>,
    /// May it become primary.
    pub can_fail_over: bool,
    /// Its failover priority.
    pub failover_priority: i64,
    /// The dynamic configuration to publish at bootstrap, and to use while the store has none.
    pub bootstrap_dcs: DynamicConfig,
    /// This member's own server parameters (`postgresql.parameters`), over the dynamic configuration's.
    pub parameters: BTreeMap<String, String>,
    /// The configuration file, re-read by `POST /reload`.
    pub config_path: Option<std::path::PathBuf>,
    /// How to call the peers' REST API (HTTPS settings; plain HTTP needs none).
    pub api_client_tls: vigil_api::tls::ClientTls,
    /// The read-only credentials (`restapi.read_authentication`) to ask the peers' status with. Never
    /// the admin ones: peers' addresses come from the store, and a status read needs no more.
    pub api_read_auth: Option<vigil_api::BasicAuth>,
}

/// The agent: one member's HA loop.
pub struct Agent<D: Database> {
    me: Identity,
    pub(super) dcs: Arc<DcsNode>,
    pub(super) db: Arc<D>,
    http: reqwest::Client,
    status: Arc<SharedStatus>,
    lease: Option<LeaseGrant>,
    lapsed: Option<FencingToken>,
    primary_down_since: Option<Instant>,
    /// Since when this member, a running replica, has not been streaming.
    not_streaming_since: Option<Instant>,
    pub(super) repair: Arc<Repair>,
    pub(super) job: Option<JoinHandle<()>>,
    pub(super) wake: Arc<Notify>,
    last_reason: String,
    /// Whether the last renewal failed: the next one is then tried after [`RENEW_RETRY`], not `loop_wait`.
    renew_failed: bool,
    /// The member record last written to the store, and when.
    published: Option<(MemberRecord, Instant)>,
    /// The members whose replication slots were last synced on the running server (none on a replica).
    synced_slots: Option<Vec<String>>,
    /// When the store was last read successfully (Unix seconds), for `dcs_last_seen`.
    dcs_last_seen: u64,
    /// Promotions this agent carried out.
    failovers: Arc<AtomicU64>,
    /// Set while a synchronous standby shuts down: its record then says `stopping`.
    leaving: bool,
    /// The synchronous replication rule last seen applied on this primary, and its position then.
    sync_seen: Option<(SyncRule, Option<Position>)>,
    /// The dynamic configuration as last read (the bootstrap one until then).
    dynamic: DynamicConfig,
    /// The server parameters last handed to the database (`None`: none yet since the agent started).
    parameters: Option<BTreeMap<String, String>>,
    /// Whether this cycle already renewed the lease (at its start).
    renewed_this_cycle: bool,
    /// A restart scheduled through the API (`POST /restart {"schedule": …}`), carried out when due.
    pub(super) scheduled_restart: Option<(vigil_api::Schedule, vigil_api::RestartRequest)>,
    /// The next scheduled switchover or restart, for the loop to wake at.
    scheduled_wake: Option<SystemTime>,
    /// The watchdog, `pre_promote` and the callbacks.
    pub(super) guard: Arc<RoleGuard>,
    /// The watcher that stops the database if this agent dies (disarmed in pause).
    lifeline: Option<crate::lifeline::Lifeline>,
}

impl<D: Database> Agent<D> {
    /// An agent for `me`, over its store node and database.
    pub fn new(me: Identity, dcs: Arc<DcsNode>, db: Arc<D>, status: Arc<SharedStatus>) -> Self {
        let me_dynamic = me.bootstrap_dcs.clone();
        let http = peer_client(&me.api_client_tls);
        Agent {
            me,
            dcs,
            db,
            http,
            status,
            lease: None,
            lapsed: None,
            primary_down_since: None,
            not_streaming_since: None,
            repair: Arc::default(),
            job: None,
            wake: Arc::new(Notify::new()),
            last_reason: String::new(),
            renew_failed: false,
            published: None,
            synced_slots: None,
            dcs_last_seen: 0,
            failovers: Arc::new(AtomicU64::new(0)),
            sync_seen: None,
            leaving: false,
            dynamic: me_dynamic,
            parameters: None,
            renewed_this_cycle: false,
            scheduled_restart: None,
            scheduled_wake: None,
            guard: Arc::default(),
            lifeline: None,
        }
    }

    /// The agent with this watchdog and these hooks (none by default).
    pub fn with_guard(mut self, guard: RoleGuard) -> Self {
        self.guard = Arc::new(guard);
        self
    }

    /// The agent keeps `lifeline` armed, except in pause.
    pub fn with_lifeline(mut self, lifeline: Option<crate::lifeline::Lifeline>) -> Self {
        self.lifeline = lifeline;
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
            let loop_wait = self.cycle().await;
            if self.run_scheduled_restart().await {
                continue; // the next cycle observes the restarted database at once
            }
            let mut next = instant_after(Instant::now(), loop_wait);
            if let Some(grant) = &self.lease {
                // Wake to renew at the latest halfway to the deadline (a cycle slowed down by a busy
                // database must not use the lease up), retrying every RENEW_RETRY past that point.
                let renew_at = renewal_due(grant).max(Instant::now() + RENEW_RETRY);
                next = next.min(grant.deadline.instant()).min(renew_at);
            }
            if let Some(at) = self.primary_start_deadline() {
                next = next.min(at); // a primary down that long is given up on at once
            }
            if let Some(at) = self.scheduled_wake {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                next = next.min(instant_after(Instant::now(), wait));
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = leader.changed() => {}
                _ = stopping.changed() => {}
                _ = self.wake.notified() => {}
                Some((command, reply)) = commands.recv() => self.dispatch(command, reply).await,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
        }
        self.shut_down().await;
    }

    /// One cycle; returns the `loop_wait` in force.
    pub(super) async fn cycle(&mut self) -> Duration {
        // A holder renews first, before anything that may wait on the store: after a stall of this
        // process, every millisecond before the deadline counts.
        self.renewed_this_cycle = false;
        if self.holds_lease() {
            let known = self.dynamic.clone();
            self.renew(&known).await;
            self.renewed_this_cycle = true;
        }
        // A job that ends while the database is observed leaves the observation older than what the job
        // reports (a rewind done, say): such a cycle does not decide, the job's end wakes the next one.
        let busy = self.busy();
        // A server found down was down when the look began (observing a hung one takes seconds).
        let observed_at = Instant::now();
        let mut db = self.db.observe().await;
        // A hung server makes observing slow: the renewal must not wait for the store read below.
        if self.renewal_is_due() && self.holds_lease() {
            let known = self.dynamic.clone();
            self.renew(&known).await;
        }
        if let (LeaseHold::Lapsed(token), Some(fence)) = (self.lease_hold(Instant::now()), fence_action(&db))
        {
            // Fencing does not wait for a store read that may itself take retry_timeout.
            if !self.dynamic.pause {
                tracing::warn!(%token, ?fence, "fencing: my lease passed its deadline without renewal");
                let job = DbJob::fence(&self.me.name, fence, Some(token), &self.guard);
                run_db_job(self.db.as_ref(), job).await;
                db = self.db.observe().await;
                let deadline = self.lease.as_ref().map(|g| g.deadline.instant());
                let after = deadline.map(|d| Instant::now().saturating_duration_since(d).as_millis() as u64);
                tracing::warn!(%token, fenced_ms_after_deadline = ?after, running = db.running, "fenced");
            }
        }
        let read = self.dcs.read().await;
        // A stored config that cannot be used, or a failed read, leaves the last good one in force.
        if let Ok(state) = &read {
            self.dynamic = dynamic_or_last_good(state, &self.dynamic, &self.me.bootstrap_dcs);
        }
        let dynamic = self.dynamic.clone();
        // Like ttl and loop_wait, retry_timeout follows the stored configuration.
        self.dcs.set_op_timeout(dynamic.retry_timeout);
        if let Some(lifeline) = &mut self.lifeline {
            lifeline.arm(!dynamic.pause);
        }
        let cluster = match &read {
            Ok(state) => {
                self.dcs_last_seen = unix_now();
                Some(cluster_view(state))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster store");
                None
            }
        };
        let now = Instant::now();
        let lease = self.lease_hold(now);
        if busy || self.busy() {
            if matches!(lease, LeaseHold::Valid(_)) && (!self.renewed_this_cycle || self.renewal_is_due()) {
                self.renew(&dynamic).await;
            }
            self.publish(&db, cluster.as_ref(), &dynamic, "busy: a database operation is running").await;
            return self.next_wait(&dynamic);
        }
        self.apply_parameters(&dynamic).await;
        let other_holder = cluster.as_ref().and_then(|c| c.leader.as_ref()).map(|(h, _)| h);
        self.guard.observe(&dynamic, other_holder.filter(|h| **h != self.me.name));
        let token = self.lease.as_ref().map(|g| g.token).or(self.lapsed);
        let leading = matches!(lease, LeaseHold::Valid(_)) && db.is_running_primary();
        self.guard.follow_role(leading, db.is_running_primary(), dynamic.pause, token);
        self.track_primary_down(&db, lease, observed_at);
        if db.streaming {
            self.repair.streaming();
        }
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
            primary_down_since: self.primary_down_since,
            not_streaming_since: self.not_streaming_since,
            rewind_failed: self.repair.rewind_failed.load(Ordering::SeqCst),
            rewound: self.repair.rewound.load(Ordering::SeqCst),
            follow_failures: self.repair.follow_failures.load(Ordering::SeqCst),
            peers,
            sync_applied_at: self.track_sync_rule(&db),
            promotion_refused: self.guard.refused_recently(now, dynamic.ttl),
        };
        let decision = decide(&observation);
        self.log(&decision);
        let changes_roles = decision.actions.iter().any(|a| {
            matches!(
                a,
                Action::ClaimInitialize
                    | Action::SetSystemId(_)
                    | Action::AcquireLease
                    | Action::ReleaseLease
                    | Action::HandOver
                    | Action::PublishSync(_)
            )
        });
        let stops_db =
            decision.actions.iter().any(|a| matches!(a, Action::HandOver | Action::Demote | Action::Kill));
        self.execute(decision.actions, &dynamic, &observation).await;
        // After stopping the database, publish what it is now: peers racing for the lease must not see
        // a primary that no longer runs.
        let db = if stops_db { self.db.observe().await } else { db };
        self.publish(&db, cluster.as_ref(), &dynamic, &decision.reason).await;
        // A synchronous standby is confirmed one cycle after its rule was first seen applied.
        let sync_settling = observation.sync_applied_at.is_none()
            && observation.db.sync_rule.is_some()
            && dynamic.synchronous_mode != crate::config::SynchronousMode::Off;
        if changes_roles || sync_settling {
            // The next step (promote, bootstrap, follow the winner) should not wait a whole loop_wait.
            return NEXT_STEP;
        }
        // Nobody leads: what holds this member back (a WAL receiver that heard from the old primary
        // lately, a peer's state) may change any moment, and every moment is write downtime.
        let leaderless = cluster.as_ref().is_some_and(|c| c.leader.is_none());
        if leaderless && !dynamic.pause {
            return self.next_wait(&dynamic).min(RACE_RETRY);
        }
        self.next_wait(&dynamic)
    }

    /// The earlier of a scheduled switchover and this member's scheduled restart.
    fn next_scheduled(&self, switchover_at: Option<vigil_api::Schedule>) -> Option<SystemTime> {
        let restart_at = self.scheduled_restart.as_ref().map(|(at, _)| at.at());
        switchover_at.map(|at| at.at()).into_iter().chain(restart_at).min()
    }

    /// `loop_wait`, or [`RENEW_RETRY`] while the lease is held and its last renewal failed: a Raft
    /// election or a lost message must not cost the primary its lease.
    fn next_wait(&self, dynamic: &DynamicConfig) -> Duration {
        if self.renew_failed && self.lease.is_some() {
            RENEW_RETRY
        } else {
            dynamic.loop_wait
        }
    }

    /// Whether a background database job is running.
    pub(super) fn busy(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.is_finished())
    }

    /// Waits, at most `limit`, for the running background job to end.
    pub(super) async fn wait_for_job(&mut self, limit: Duration) {
        if let Some(job) = self.job.as_mut().filter(|j| !j.is_finished()) {
            if tokio::time::timeout(limit, job).await.is_ok() {
                self.job = None; // a finished JoinHandle must not be polled again
            }
        }
    }

    /// Whether the lease held is halfway to its deadline (see [`renewal_due`]).
    fn renewal_is_due(&self) -> bool {
        self.lease.as_ref().is_some_and(|g| Instant::now() >= renewal_due(g))
    }

    /// Whether this agent holds a lease valid by its own deadline.
    pub(super) fn holds_lease(&self) -> bool {
        matches!(self.lease_hold(Instant::now()), LeaseHold::Valid(_))
    }

    /// The token of the lease this agent holds, if any.
    pub(super) fn lease_token(&self) -> Option<FencingToken> {
        self.lease.as_ref().map(|g| g.token)
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
        self.published = None;
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

    fn lease_hold(&self, now: Instant) -> LeaseHold {
        match (&self.lease, self.lapsed) {
            (Some(grant), _) if grant.deadline.is_valid_at(now) => LeaseHold::Valid(grant.token),
            (Some(grant), _) => LeaseHold::Lapsed(grant.token),
            (None, Some(token)) => LeaseHold::Lapsed(token),
            (None, None) => LeaseHold::Never,
        }
    }

    /// The primary's position when the synchronous replication rule in force was first seen applied; `None`
    /// in the cycle it is first seen (see [`Observation::sync_applied_at`]).
    fn track_sync_rule(&mut self, db: &DbState) -> Option<Position> {
        let rule = db.sync_rule.clone().filter(|_| db.is_running_primary());
        match &self.sync_seen {
            Some((seen, at)) if Some(seen) == rule.as_ref() => *at,
            _ => {
                self.sync_seen = rule.map(|rule| (rule, db.position));
                None
            }
        }
    }

    /// When the primary, down since `primary_down_since`, reaches `primary_start_timeout`.
    fn primary_start_deadline(&self) -> Option<Instant> {
        let since = self.primary_down_since.filter(|_| self.lease.is_some())?;
        since.checked_add(self.dynamic.primary_start_timeout)
    }

    fn track_primary_down(&mut self, db: &DbState, lease: LeaseHold, now: Instant) {
        let down = matches!(lease, LeaseHold::Valid(_)) && !db.running;
        self.primary_down_since = since(down, self.primary_down_since, now);
        let idle_replica = db.running && db.role == Some(Role::Replica) && !db.streaming;
        self.not_streaming_since = since(idle_replica, self.not_streaming_since, now);
    }

    fn log(&mut self, decision: &Decision) {
        let token = self.lease.as_ref().map(|g| g.token.0);
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

    /// Store actions run here, in order; database actions then run as one background job.
    async fn execute(&mut self, actions: Vec<Action>, dynamic: &DynamicConfig, o: &Observation) {
        let mut db_actions = Vec::new();
        for action in actions {
            match action {
                Action::ClaimInitialize => self.claim_initialize(dynamic).await,
                Action::SetSystemId(system_id) => {
                    let value = Initialize { by: self.me.name.clone(), system_id: Some(system_id.clone()) };
                    self.put(Key::Initialize, &value, "record the system id").await;
                    tracing::info!(%system_id, "cluster initialized");
                }
                Action::AcquireLease => self.acquire(dynamic).await,
                Action::RenewLease if self.renewed_this_cycle => {}
                Action::RenewLease => self.renew(dynamic).await,
                Action::ReleaseLease => self.release().await,
                Action::PublishOptime(optime) => {
                    self.put(Key::Status, &Status { optime }, "publish optime").await
                }
                // Routine and quick: not worth a background job (whose end would wake the loop). Synced
                // when the members change, not every cycle.
                Action::SyncSlots(members) if self.synced_slots.as_ref() != Some(&members) => {
                    match self.db.sync_slots(&members).await {
                        Ok(()) => self.synced_slots = Some(members),
                        Err(e) => tracing::warn!(error = %e, "replication slots not synced"),
                    }
                }
                Action::SyncSlots(_) => {}
                Action::HandOver => {
                    if let Err(e) = self.db.stop(crate::db::StopMode::Fast).await {
                        tracing::error!(error = %e, "switchover: the primary did not stop; keeping the lease");
                        continue;
                    }
                    // The candidate asks this member's REST status as soon as the lease is free: it must
                    // already show a stopped database, or the candidate waits a loop_wait ("still runs
                    // as a primary").
                    let stopped = DbState::stopped(o.db.data.clone());
                    self.publish(&stopped, o.cluster.as_ref(), dynamic, "switchover: stopped").await;
                    self.guard.demoted(self.lease.as_ref().map(|g| g.token));
                    self.release().await;
                }
                Action::PublishSync(state) => {
                    self.put(Key::Sync, &state, "publish the synchronous standbys").await;
                    tracing::info!(standbys = ?state.sync_standby, quorum = ?state.quorum, "sync key published");
                }
                Action::ClearSwitchover => {
                    if let Err(e) = self.dcs.delete(&Key::Failover, Condition::Always).await {
                        tracing::warn!(error = %e, "could not clear the switchover request");
                    }
                }
                // Fencing does not wait for a background job.
                Action::Demote | Action::Kill => {
                    let token = self.lease.as_ref().map(|g| g.token).or(self.lapsed);
                    let kill = action == Action::Kill;
                    let fenced =
                        run_db_job(self.db.as_ref(), DbJob::fence(&o.me, action, token, &self.guard)).await;
                    if kill && !fenced {
                        tracing::error!(?token, "the server that does not answer could not be killed: nothing more this cycle (the lease is kept)");
                        return;
                    }
                }
                other => db_actions.push(other),
            }
        }
        if !db_actions.is_empty() {
            let job = DbJob {
                me: self.me.name.clone(),
                actions: db_actions,
                token: self.lease.as_ref().map(|g| g.token),
                dcs: Some(self.dcs.clone()),
                failovers: self.failovers.clone(),
                repair: self.repair.clone(),
                guard: self.guard.clone(),
            };
            let (db, wake) = (self.db.clone(), self.wake.clone());
            self.job = Some(tokio::spawn(async move {
                // A failed job is retried on the next regular cycle, not at once.
                if run_db_job(db.as_ref(), job).await {
                    wake.notify_one();
                }
            }));
        }
    }

    async fn claim_initialize(&self, dynamic: &DynamicConfig) {
        let value = Initialize { by: self.me.name.clone(), system_id: None };
        let json = serde_json::to_value(&value).unwrap_or_default();
        match self.dcs.put(&Key::Initialize, json, Condition::Absent, None).await {
            Ok(_) => {
                tracing::info!(member = %self.me.name, "won the bootstrap race");
                let config = serde_json::to_value(dynamic).unwrap_or_default();
                if let Err(e) = self.dcs.put(&Key::Config, config, Condition::Absent, None).await {
                    tracing::warn!(error = %e, "could not publish bootstrap.dcs as the dynamic config");
                }
            }
            Err(e) => tracing::info!(error = %e, "lost the bootstrap race"),
        }
    }

    pub(super) async fn acquire(&mut self, dynamic: &DynamicConfig) {
        match self.dcs.acquire_lease(&self.me.name, dynamic.ttl, dynamic.safety_margin).await {
            Ok(grant) => {
                tracing::info!(token = %grant.token, "leader lease held");
                self.lapsed = None;
                self.lease = Some(grant);
            }
            Err(e) => tracing::info!(error = %e, "leader lease not acquired"),
        }
    }

    async fn renew(&mut self, dynamic: &DynamicConfig) {
        let Some(grant) = self.lease.clone() else { return };
        // The store expires the lease by the ttl it was granted with (a renewal carries none): a ttl raised
        // since must not move this holder's own deadline past the store's expiry. A lowered one may.
        let ttl = grant.ttl.min(dynamic.ttl);
        let grant = LeaseGrant { ttl, safety_margin: dynamic.safety_margin, ..grant };
        let result = self.dcs.renew_lease(&grant).await;
        self.renew_failed = result.is_err();
        match result {
            Ok(renewed) => {
                self.guard.keepalive(renewed.token);
                self.lease = Some(renewed);
            }
            Err(e @ vigil_dcs::DcsError::NotHolder { .. }) => {
                tracing::warn!(token = %grant.token, error = %e, "leader lease lost");
                self.lapsed = Some(grant.token);
                self.lease = None;
            }
            // The renewal may or may not have committed: keep the old deadline, which is safe either way.
            Err(e) => tracing::warn!(token = %grant.token, error = %e, "leader lease not renewed"),
        }
    }

    async fn release(&mut self) {
        if let Some(grant) = self.lease.take() {
            if let Err(e) = self.dcs.release_lease(&grant).await {
                tracing::warn!(token = %grant.token, error = %e, "leader lease not released");
            }
        }
    }

    async fn put<T: serde::Serialize>(&self, key: Key, value: &T, what: &str) {
        let json = serde_json::to_value(value).unwrap_or_default();
        if let Err(e) = self.dcs.put(&key, json, Condition::Always, None).await {
            tracing::warn!(%key, error = %e, "could not {what}");
        }
    }

    /// Asks every other member for its status, in parallel, [`PEER_TIMEOUT`] each.
    async fn probe_peers(&self, cluster: &ClusterView) -> Vec<PeerView> {
        let mut probes = JoinSet::new();
        for (name, record) in cluster.members.iter().filter(|(n, _)| **n != self.me.name) {
            let (http, name, url) = (self.http.clone(), name.clone(), record.api_url.clone());
            let auth = self.me.api_read_auth.clone();
            probes.spawn(async move {
                let answer = vigil_api::client::status(&http, &url, auth.as_ref(), PEER_TIMEOUT).await;
                peer_view(name, answer.ok())
            });
        }
        probes.join_all().await
    }

    /// Publishes the member record (when it changed, or when half its ttl has passed) and the REST status.
    async fn publish(
        &mut self,
        db: &DbState,
        cluster: Option<&ClusterView>,
        dynamic: &DynamicConfig,
        reason: &str,
    ) {
        let (state, role) = MemberRecord::state_and_role(db);
        let state = if self.leaving { "stopping" } else { state };
        let record = MemberRecord {
            conn_url: format!("postgres://{}:{}/postgres", self.me.db_host, self.me.db_port),
            api_url: self.me.api_url.clone(),
            state: state.into(),
            role: role.into(),
            host: self.me.db_host.clone(),
            port: self.me.db_port,
            xlog_location: db.position,
            replay_lsn: db.replay_position,
            timeline: db.timeline,
            replication_state: db.streaming.then(|| "streaming".to_owned()),
            reason: Some(reason.to_owned()),
            tags: self.me.tags.clone(),
            sync_state: db
                .is_running_primary()
                .then(|| sync_health(db, dynamic.synchronous_mode).as_str().to_owned()),
            pending_restart: !db.pending_restart.is_empty(),
            pending_restart_reason: MemberRecord::pending_changes(db),
        };
        let fresh = self
            .published
            .as_ref()
            .is_some_and(|(last, at)| *last == record && at.elapsed() < dynamic.ttl / 2);
        if cluster.is_some() && !fresh {
            let json = serde_json::to_value(&record).unwrap_or_default();
            let key = Key::Member(self.me.name.clone());
            match self.dcs.put(&key, json, Condition::Always, Some(dynamic.ttl)).await {
                Ok(_) => self.published = Some((record.clone(), Instant::now())),
                Err(e) => tracing::debug!(error = %e, "member record not published"),
            }
        }
        self.status.set(self.node_status(db, &record, cluster, dynamic));
        let deadline = self.lease.as_ref().map(|g| g.deadline);
        self.status.set_deadline(deadline);
    }

    fn node_status(
        &self,
        db: &DbState,
        record: &MemberRecord,
        cluster: Option<&ClusterView>,
        dynamic: &DynamicConfig,
    ) -> NodeStatus {
        let raft = self.dcs.raft_status();
        let primary = db.role == Some(Role::Primary);
        let sync = cluster
            .and_then(|c| c.sync.as_ref())
            .filter(|s| !primary && s.sync_standby.iter().any(|n| n == self.me.name.as_str()));
        let system_id = match &db.data {
            crate::db::DataState::Present { system_id, .. } => Some(system_id.clone()),
            crate::db::DataState::Missing => None,
        };
        NodeStatus {
            state: record.state.clone(),
            role: record.role.clone(),
            xlog: Xlog {
                location: db.position.filter(|_| primary).map(|p| p.0),
                received_location: db.position.filter(|_| !primary).map(|p| p.0),
                replayed_location: db.replay_position.map(|p| p.0),
            },
            timeline: db.timeline,
            replication_state: record.replication_state.clone(),
            database_system_identifier: system_id,
            tags: self.me.tags.clone(),
            patroni: PatroniInfo {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                scope: self.me.scope.clone(),
                name: self.me.name.to_string(),
            },
            vigil: vigil_api::VigilInfo {
                fencing_token: self.lease.as_ref().map(|g| g.token.0),
                lease_remaining_ms: None,
                last_decision: record.reason.clone(),
                primary_optime: cluster.and_then(|c| c.optime).map(|p| p.0),
                synchronous_mode: Some(dynamic.synchronous_mode.as_str().to_owned()),
                sync_state: record.sync_state.clone(),
                failovers_total: self.failovers.load(Ordering::SeqCst),
                raft: Some(vigil_api::RaftInfo {
                    term: raft.term,
                    leader: raft.leader,
                    voters: raft.voters.into_iter().collect(),
                }),
            },
            server_version: db.server_version,
            dcs_last_seen: self.dcs_last_seen,
            pause: dynamic.pause,
            pending_restart: record.pending_restart,
            pending_restart_reason: record.pending_restart_reason.clone(),
            sync_standby: sync.is_some_and(|s| s.quorum.is_none()),
            quorum_standby: sync.is_some_and(|s| s.quorum.is_some()),
            replication: db.replicas.iter().map(shown_replication).collect(),
            ..Default::default()
        }
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
        let token = self.lease.as_ref().map(|g| g.token).or(self.lapsed);
        self.release().await;
        self.guard.disarm(token, "clean shutdown");
        self.status.set_deadline(None);
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
        self.published = None;
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

/// The client for peers' REST API; with unusable TLS files (checked when the configuration was read)
/// a plain one, whose HTTPS calls then fail and are logged.
fn peer_client(tls: &vigil_api::tls::ClientTls) -> reqwest::Client {
    let built = vigil_api::tls::client_builder(tls, "ctl")
        .map_err(|e| e.to_string())
        .and_then(|b| b.build().map_err(|e| e.to_string()));
    built.unwrap_or_else(|e| {
        tracing::error!(error = %e, "no HTTPS client for the peers' REST API");
        reqwest::Client::new()
    })
}

/// When a condition that holds `now` (`holds`) began: `started` if it already held, else `now`.
fn since(holds: bool, started: Option<Instant>, now: Instant) -> Option<Instant> {
    holds.then(|| started.unwrap_or(now))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// When the holder of `grant` renews at the latest: halfway between its last renewal and its deadline.
fn renewal_due(grant: &LeaseGrant) -> Instant {
    let deadline = grant.deadline.instant();
    deadline.checked_sub(grant.ttl.saturating_sub(grant.safety_margin) / 2).unwrap_or(deadline)
}

/// Pause before the cycle after one that changed who leads.
const NEXT_STEP: Duration = Duration::from_millis(20);

/// Pause before retrying a failed renewal.
const RENEW_RETRY: Duration = Duration::from_millis(100);
/// Between two cycles while no member holds the lease.
const RACE_RETRY: Duration = Duration::from_millis(250);

/// How long a peer may take to answer a status request during the leader race.
/// A peer's agent answers from memory in milliseconds; one cut off or stopped never does, and waiting for
/// it is write downtime.
const PEER_TIMEOUT: Duration = Duration::from_millis(500);

fn peer_view(name: MemberName, status: Option<NodeStatus>) -> PeerView {
    match status {
        Some(s) => PeerView {
            name,
            reachable: true,
            running: s.state == "running",
            role: match s.role.as_str() {
                "primary" => Some(Role::Primary),
                "replica" => Some(Role::Replica),
                _ => None,
            },
            position: s.position().map(crate::db::Position),
            streaming: s.replication_state.as_deref() == Some("streaming"),
            can_fail_over: s.can_fail_over(),
            failover_priority: s.failover_priority(),
        },
        None => PeerView {
            name,
            reachable: false,
            running: false,
            role: None,
            position: None,
            streaming: false,
            can_fail_over: false,
            failover_priority: 0,
        },
    }
}

/// A replica link as Patroni shows it in `GET /patroni` (`replication`).
fn shown_replication(link: &crate::db::ReplicaLink) -> Replication {
    let shown = link.shown.clone();
    Replication {
        usename: shown.user,
        application_name: link.name.clone(),
        client_addr: shown.address,
        state: shown.state,
        sync_state: shown.sync_state,
        sync_priority: shown.sync_priority,
    }
}
