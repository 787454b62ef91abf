//! Carrying out a decision's actions: store writes in order, fencing at once, the other database actions
//! as one background job.

use super::execute::{run_db_job, DbJob};
use super::history::{promotion_reason, PromotionNote};
use super::lease_keeper::before;
use super::run::Agent;
use super::{Action, Initialize};
use crate::config::DynamicConfig;
use crate::db::Database;
use std::time::Instant;
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
                    self.acquire(dynamic).await
                }
                Action::RenewLease if self.renewed_this_cycle => {}
                Action::RenewLease => self.renew(dynamic).await,
                Action::ReleaseLease => self.release().await,
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
                    if !self.fence(action).await && kill {
                        let token = self.lease.last_token();
                        tracing::error!(?token, "the server that does not answer could not be killed: nothing more this cycle (the lease is kept)");
                        return;
                    }
                }
                other => db_actions.push(other),
            }
        }
        if !db_actions.is_empty() {
            let promotion = PromotionNote { reason: self.lease_taken_for, switch_position: o.db.position };
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
    /// held, without a background job; whether it worked.
    pub(super) async fn fence(&mut self, fence: Action) -> bool {
        let token = self.lease.last_token();
        let job = DbJob::fence(&self.me.name, fence, token, &self.guard);
        let report = run_db_job(self.db.as_ref(), job).await;
        let fenced = report.ok;
        self.remember_job(report);
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

    pub(super) async fn acquire(&mut self, dynamic: &DynamicConfig) {
        self.lease.acquire(dynamic).await;
    }

    pub(super) async fn renew(&mut self, dynamic: &DynamicConfig) {
        if let Some(grant) = self.lease.renew(dynamic).await {
            self.guard.keepalive(&grant);
        }
    }

    pub(super) async fn release(&mut self) {
        self.lease.release().await;
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
