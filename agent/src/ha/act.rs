//! Carrying out a decision's actions: store writes in order, fencing at once, the other database actions
//! as one background job.

use super::events::{wall_clock, Takeover};
use super::execute::{run_db_job, DbJob, PromotionWatchers};
use super::history::{promotion_reason, PromotionNote};
use super::lease_keeper::before;
use super::run::Agent;
use super::{Action, Initialize};
use crate::config::DynamicConfig;
use crate::db::Database;
use std::time::{Duration, Instant, SystemTime};
use vigil_api::{Event, EventKind};
use vigil_dcs::{Condition, Key};
use vigil_policy::switchover_steps;
use vigil_policy::Observation;

impl<D: Database> Agent<D> {
    /// Store actions run here, in order; database actions then run as one background job.
    pub(super) async fn execute(&mut self, actions: Vec<Action>, dynamic: &DynamicConfig, o: &Observation) {
        let mut db_actions = Vec::new();
        for action in actions {
            match action {
                Action::ClaimInitialize => self.claim_initialize(dynamic).await,
                Action::SetSystemId(system_id) => {
                    let value = Initialize { by: self.me.name.clone(), system_id: Some(system_id.clone()) };
                    self.put(Key::Initialize, &value, "record the system id", o.db.is_running_primary())
                        .await;
                    tracing::info!(%system_id, "cluster initialized");
                }
                Action::AcquireLease => {
                    let request = o.cluster.as_ref().and_then(|c| c.switchover.as_ref());
                    self.lease_taken_for = promotion_reason(request, &self.me.name, o.wall_clock);
                    self.acquire(dynamic, o.wall_clock).await
                }
                Action::RenewLease if self.renewed_this_cycle => {}
                Action::RenewLease => self.renew(dynamic).await,
                Action::ReleaseLease => {
                    let reason = self.last_reason.clone();
                    self.release(None, &reason).await
                }
                Action::PublishOptime(optime) => self.publish_status(optime, o.db.is_running_primary()).await,
                // Routine and quick: not worth a background job (whose end would wake the loop).
                Action::RetainFor(members) => self.retain(members, dynamic, o).await,
                Action::HandOver => self.hand_over(&switchover_steps(), dynamic, Some(o)).await,
                Action::PublishSync(state) => {
                    self.put(
                        Key::Sync,
                        &state,
                        "publish the synchronous standbys",
                        o.db.is_running_primary(),
                    )
                    .await;
                    tracing::info!(standbys = ?state.sync_standby, quorum = ?state.quorum, "sync key published");
                }
                Action::ClearSwitchover => {
                    let delete = self.dcs.delete(&Key::Failover, Condition::Always);
                    let limit = self.lease.wait_limit(Instant::now(), o.db.is_running_primary());
                    if let Some(Err(e)) = before(limit, delete).await {
                        tracing::warn!(error = %e, "could not clear the switchover request");
                    }
                }
                // Fencing does not wait for a background job.
                Action::Demote | Action::Kill => {
                    let kill = action == Action::Kill;
                    let reason = self.last_reason.clone();
                    if !self.fence(action, &reason).await && kill {
                        let token = self.lease.last_token();
                        tracing::error!(?token, "the server that does not answer could not be killed: nothing more this cycle (the lease is kept)");
                        return;
                    }
                }
                other => db_actions.push(other),
            }
        }
        if !db_actions.is_empty() {
            let takeover = self.takeover.filter(|t| Some(t.token) == self.lease.token());
            let promotion =
                PromotionNote { reason: self.lease_taken_for, switch_position: o.db.position, takeover };
            self.start_job(db_actions, promotion);
        }
    }

    /// Starts database `actions` as the loop's background job (there is none running).
    pub(super) fn start_job(&mut self, actions: Vec<Action>, promotion: PromotionNote) {
        if actions.iter().any(Action::starts_primary) {
            self.memory.starting_primary();
        }
        let job = DbJob {
            me: self.me.name.clone(),
            actions,
            token: self.lease.token(),
            dcs: Some(self.dcs.clone()),
            lease_deadline: Some(self.lease.deadline_watch()),
            guard: self.guard.clone(),
            promotion,
            events: self.events.sender(),
            watchers: Some(PromotionWatchers { status: self.publisher.status(), wake: self.wake.clone() }),
        };
        let (db, wake) = (self.db.clone(), self.wake.clone());
        self.job = Some(tokio::spawn(async move {
            // A failed job is retried on the next regular cycle, not at once.
            let report = run_db_job(db.as_ref(), job).await;
            if report.ok {
                wake.notify_one();
            }
            report
        }));
    }

    /// Fences the server at once, `fence` being [`Action::Demote`] or [`Action::Kill`], under the last token
    /// held, without a background job, for `reason`; whether it worked. Recorded as a fence, or as a
    /// stale token refused when the store shows a newer grant than this member's.
    pub(super) async fn fence(&mut self, fence: Action, reason: &str) -> bool {
        let token = self.lease.last_token();
        let job = DbJob::fence(&self.me.name, fence, token, &self.guard, &self.events.sender());
        let started = Instant::now();
        let report = run_db_job(self.db.as_ref(), job).await;
        let fenced = report.ok;
        self.remember_job(report);
        let newer = self.dcs.local().leader.as_ref().map(|l| (l.holder.clone(), l.token));
        let newer = newer.filter(|(_, t)| token.is_none_or(|mine| *t > mine));
        let kind = if newer.is_some() { EventKind::StaleTokenRefused } else { EventKind::Fenced };
        let reason = match (&newer, fenced) {
            (Some((holder, t)), _) => {
                format!("{reason} (the store shows a newer token {t}, held by {holder})")
            }
            (None, true) => reason.to_owned(),
            (None, false) => format!("{reason} (the fence failed)"),
        };
        let event = Event::new(kind, self.me.name.as_str(), wall_clock(started), reason);
        let event = event.token(token.map(|t| t.0)).timing("duration_ms", started.elapsed());
        self.events.sender().record(event.other(newer.map(|(holder, _)| holder.to_string())));
        fenced
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

    /// Takes the lease, seen free at `seen_free`; a new grant is recorded.
    pub(super) async fn acquire(&mut self, dynamic: &DynamicConfig, seen_free: SystemTime) {
        let held = self.lease.token();
        let started = Instant::now();
        self.lease.acquire(dynamic).await;
        let Some(token) = self.lease.token().filter(|t| Some(*t) != held) else { return };
        let granted = SystemTime::now();
        self.takeover = Some(Takeover { token, seen_free, granted });
        // Why: the decision's reason (a race at a position, a bootstrap, a pause, a restart).
        let reason = if self.last_reason.is_empty() { self.lease_taken_for } else { &self.last_reason };
        let event = Event::new(EventKind::LeaseGranted, self.me.name.as_str(), granted, reason);
        self.events.sender().record(event.token(Some(token.0)).timing("acquire_ms", started.elapsed()));
    }

    pub(super) async fn renew(&mut self, dynamic: &DynamicConfig) {
        if let Some(grant) = self.lease.renew(dynamic).await {
            self.guard.keepalive(&grant);
        }
    }

    /// Gives the lease back, for `reason`, recorded with how long before the holder last renewed it or,
    /// when given, its server stopped taking writes (`writes_stopped`).
    pub(super) async fn release(&mut self, writes_stopped: Option<Instant>, reason: &str) {
        let Some(grant) = self.lease.grant().cloned() else { return };
        self.lease.release().await;
        // `/primary` turns 503 at once (and the HAProxy push follows), not at the next publication.
        self.publisher.no_deadline();
        let released = Instant::now();
        let renewed = grant.deadline.instant().checked_sub(grant.ttl.saturating_sub(grant.safety_margin));
        let since =
            writes_stopped.or(renewed).map_or(Duration::ZERO, |at| released.saturating_duration_since(at));
        let event = Event::new(EventKind::LeaseReleased, self.me.name.as_str(), SystemTime::now(), reason);
        let event = event.token(Some(grant.token.0)).timing(vigil_dcs::SINCE_LAST_RENEWAL, since);
        self.events.sender().record(event);
    }

    /// Writes `key`, waiting no longer than [`LeaseKeeper::wait_limit`] for a member whose server runs as a
    /// primary (`primary`).
    pub(super) async fn put<T: serde::Serialize>(&self, key: Key, value: &T, what: &str, primary: bool) {
        let json = serde_json::to_value(value).unwrap_or_default();
        let put = self.dcs.put(&key, json, Condition::Always, None);
        if let Some(Err(e)) = before(self.lease.wait_limit(Instant::now(), primary), put).await {
            tracing::warn!(%key, error = %e, "could not {what}");
        }
    }
}
