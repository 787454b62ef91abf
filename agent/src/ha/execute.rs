//! Database actions, run in order as one job; the first failure ends the job (the next cycle decides
//! again from what it then observes).

use super::events::EventSender;
use super::guard::RoleGuard;
use super::history::PromotionNote;
use super::hooks::Callback;
use super::Action;
use crate::db::{Database, DbError};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::watch;
use vigil_dcs::{DcsNode, FencingToken, MemberName};
use vigil_policy::JobEvent;

/// A list of database actions with what they need.
pub struct DbJob {
    /// This member.
    pub me: MemberName,
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// The lease token, for the history of a promotion.
    pub token: Option<FencingToken>,
    /// The store, for the history of a promotion (`None` when fencing, which must not wait for it).
    pub dcs: Option<Arc<DcsNode>>,
    /// The deadline of the lease held, as it changes: a server is not started as a primary past it (a job
    /// may outlast the lease, e.g. in an agent frozen for a while). `None` when fencing.
    pub lease_deadline: Option<watch::Receiver<Option<Instant>>>,
    /// The watchdog and `pre_promote` before a promotion; the callbacks after each change.
    pub guard: Arc<RoleGuard>,
    /// For the history of a promotion: how it came about and where the former timeline ends.
    pub promotion: PromotionNote,
    /// Where promotions and rejoins are recorded.
    pub events: EventSender,
    /// Told as soon as a promotion returned (`None` when fencing).
    pub watchers: Option<PromotionWatchers>,
}

/// Who hears of a promotion the moment it returned, before the first write and the history: the REST
/// status (`/primary` turns 200, the HAProxy push follows) and the HA loop (which then publishes it all).
pub struct PromotionWatchers {
    /// The REST status.
    pub status: Arc<crate::status::SharedStatus>,
    /// Wakes the HA loop.
    pub wake: Arc<tokio::sync::Notify>,
}

impl DbJob {
    /// A fencing job: `fence` ([`Action::Demote`] or [`Action::Kill`]) alone.
    pub fn fence(
        me: &MemberName,
        fence: Action,
        token: Option<FencingToken>,
        guard: &Arc<RoleGuard>,
        events: &EventSender,
    ) -> DbJob {
        DbJob {
            me: me.clone(),
            actions: vec![fence],
            token,
            dcs: None,
            lease_deadline: None,
            guard: guard.clone(),
            promotion: PromotionNote::default(),
            events: events.clone(),
            watchers: None,
        }
    }
}

impl DbJob {
    /// Before `action` starts the server as a primary: the lease is valid, and the watchdog armed.
    fn guard_primary_start(&self, action: &str) -> Result<(), DbError> {
        let token = self.valid_token(action)?;
        self.guard.before_start_primary(token).map_err(|why| DbError::new(action, why))
    }

    /// The token of the lease held, for `action` (see [`DbJob::lease_valid`]).
    fn valid_token(&self, action: &str) -> Result<FencingToken, DbError> {
        self.lease_valid(action)?;
        self.token.ok_or_else(|| DbError::new(action, "no lease token"))
    }

    /// Refuses to `action` (start a primary) once the lease's deadline has passed, or without a lease.
    fn lease_valid(&self, action: &str) -> Result<(), DbError> {
        let deadline = self.lease_deadline.as_ref().and_then(|d| *d.borrow());
        match deadline {
            Some(deadline) if Instant::now() < deadline => Ok(()),
            Some(_) => Err(DbError::new(action, "the lease's deadline passed: not starting a primary")),
            None => Err(DbError::new(action, "no lease held: not starting a primary")),
        }
    }
}

/// How a job went: whether every action succeeded, and what the policy must remember of it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Every action succeeded.
    pub ok: bool,
    /// What happened, in order.
    pub events: Vec<JobEvent>,
}

/// Runs the job's actions in order, logging each with its outcome and duration, until one fails.
pub async fn run_db_job<D: Database>(db: &D, job: DbJob) -> JobReport {
    let mut events = Vec::new();
    for action in &job.actions {
        let started = Instant::now();
        let result = run(db, &job, action, &mut events).await;
        let ms = started.elapsed().as_millis() as u64;
        let token = job.token.map(|t| t.0);
        match result {
            Ok(()) => tracing::info!(member = %job.me, ?action, ?token, duration_ms = ms, "done"),
            Err(e) => {
                tracing::error!(member = %job.me, ?action, ?token, duration_ms = ms, error = %e, "failed");
                return JobReport { ok: false, events };
            }
        }
    }
    JobReport { ok: true, events }
}

async fn run<D: Database>(
    db: &D,
    job: &DbJob,
    action: &Action,
    events: &mut Vec<JobEvent>,
) -> Result<(), DbError> {
    run_action(db, job, action, events).await?;
    let (hooks, token) = (&job.guard.hooks, job.token);
    match action {
        Action::Bootstrap | Action::StartPrimary => hooks.callback(Callback::OnStart, "primary", token),
        Action::Follow(_) => hooks.callback(Callback::OnStart, "replica", token),
        Action::Promote => hooks.callback(Callback::OnRoleChange, "primary", token),
        Action::Demote | Action::Kill => job.guard.demoted(token),
        _ => {}
    }
    Ok(())
}

/// One action, without its callbacks; what the policy must remember of it goes to `events`.
async fn run_action<D: Database>(
    db: &D,
    job: &DbJob,
    action: &Action,
    events: &mut Vec<JobEvent>,
) -> Result<(), DbError> {
    match action {
        Action::Bootstrap => {
            job.guard_primary_start("bootstrap")?;
            db.bootstrap(job.token.map(|t| t.0)).await
        }
        Action::StartPrimary => {
            job.guard_primary_start("start as primary")?;
            db.start_primary(job.token.map(|t| t.0)).await
        }
        Action::Promote => {
            let token = job.valid_token("promote")?;
            job.guard.before_promote(&job.me, token).await.map_err(|why| DbError::new("promote", why))?;
            if let Err(e) = db.promote(token.0).await {
                job.guard.promotion_failed(token, &e.to_string());
                return Err(e);
            }
            let promoted = SystemTime::now();
            if let Some(watchers) = &job.watchers {
                watchers.status.promoted();
                watchers.wake.notify_one();
            }
            events.push(JobEvent::Promoted);
            super::promotion::first_write_and_record(db, job, promoted).await;
            super::history::record_promotion(db, job).await;
            Ok(())
        }
        Action::RecordToken => {
            let token = job.valid_token("record the fencing token")?;
            db.set_fencing_token(token.0).await
        }
        Action::Demote | Action::Kill => {
            match action {
                Action::Demote => db.fence().await?,
                _ => db.kill().await?,
            }
            events.push(JobEvent::Fenced);
            Ok(())
        }
        Action::Clone(upstream) => db.clone_from(upstream).await,
        Action::Restore => db.restore_without_primary().await,
        Action::Repair(upstream) => {
            let result = db.repair_from(upstream).await;
            events.push(JobEvent::Repaired { ok: result.is_ok() });
            result
        }
        Action::RemoveData | Action::SetDataAside => {
            match action {
                Action::RemoveData => db.remove_data().await?,
                _ => db.set_data_aside().await?,
            }
            events.push(JobEvent::DataRemoved);
            Ok(())
        }
        Action::Follow(upstream) => {
            let result = db.follow(upstream.as_ref()).await;
            match (&result, upstream) {
                (Err(_), Some(_)) => events.push(JobEvent::FollowFailed),
                (Ok(()), Some(upstream)) => super::promotion::record_rejoin(job, &upstream.name),
                _ => {}
            }
            result
        }
        Action::SetSyncRule(rule) => db.set_sync_rule(rule).await,
        store_action => Err(DbError::new(format!("{store_action:?}"), "not a database action")),
    }
}
