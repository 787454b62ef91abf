//! Database actions, run in order as one job; the first failure ends the job (the next cycle decides
//! again from what it then observes).

use super::guard::RoleGuard;
use super::hooks::Callback;
use super::Action;
use crate::db::{Database, DbError, StopMode};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vigil_dcs::{DcsNode, FencingToken, MemberName};

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
    /// How repairing the data went so far, updated by rewinds, removals and failed follows.
    pub repair: Arc<Repair>,
    /// Counts the promotions carried out.
    pub failovers: Arc<AtomicU64>,
    /// The watchdog and `pre_promote` before a promotion; the callbacks after each change.
    pub guard: Arc<RoleGuard>,
}

impl DbJob {
    /// A fencing job: `fence` ([`Action::Demote`] or [`Action::Kill`]) alone.
    pub fn fence(
        me: &MemberName,
        fence: Action,
        token: Option<FencingToken>,
        guard: &Arc<RoleGuard>,
    ) -> DbJob {
        DbJob {
            me: me.clone(),
            actions: vec![fence],
            token,
            dcs: None,
            repair: Arc::default(),
            failovers: Arc::new(AtomicU64::new(0)),
            guard: guard.clone(),
        }
    }
}

/// What the loop knows about repairing diverged data (see [`super::Observation::rewound`] and its
/// neighbours); shared with the jobs that rewind, remove or follow.
#[derive(Debug, Default)]
pub struct Repair {
    /// The last rewind failed.
    pub rewind_failed: AtomicBool,
    /// A rewind succeeded since the member last streamed or its data was removed.
    pub rewound: AtomicBool,
    /// Failed attempts in a row to start as the lease holder's replica.
    pub follow_failures: AtomicU32,
}

impl Repair {
    /// After a rewind: on success the failed follows start counting again.
    pub fn rewound(&self, ok: bool) {
        self.rewind_failed.store(!ok, Ordering::SeqCst);
        if ok {
            self.rewound.store(true, Ordering::SeqCst);
            self.follow_failures.store(0, Ordering::SeqCst);
        }
    }

    /// The member streams: whatever happened before worked.
    pub fn streaming(&self) {
        self.rewound.store(false, Ordering::SeqCst);
        self.follow_failures.store(0, Ordering::SeqCst);
    }

    /// The data was removed: everything starts afresh.
    pub fn reset(&self) {
        self.rewind_failed.store(false, Ordering::SeqCst);
        self.streaming();
    }
}

/// Runs the job's actions in order, logging each with its outcome and duration; true when all succeeded.
pub async fn run_db_job<D: Database>(db: &D, job: DbJob) -> bool {
    for action in &job.actions {
        let started = Instant::now();
        let result = run(db, &job, action).await;
        let ms = started.elapsed().as_millis() as u64;
        let token = job.token.map(|t| t.0);
        match result {
            Ok(()) => tracing::info!(member = %job.me, ?action, ?token, duration_ms = ms, "done"),
            Err(e) => {
                tracing::error!(member = %job.me, ?action, ?token, duration_ms = ms, error = %e, "failed");
                return false;
            }
        }
    }
    true
}

async fn run<D: Database>(db: &D, job: &DbJob, action: &Action) -> Result<(), DbError> {
    run_action(db, job, action).await?;
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

/// One action, without its callbacks.
async fn run_action<D: Database>(db: &D, job: &DbJob, action: &Action) -> Result<(), DbError> {
    match action {
        Action::Bootstrap => {
            record_token(db, job).await?;
            db.bootstrap().await
        }
        Action::StartPrimary => {
            record_token(db, job).await?;
            db.start_primary().await
        }
        Action::Promote => {
            let token = job.token.ok_or_else(|| DbError::new("promote", "no lease token"))?;
            job.guard.before_promote(&job.me, token).await.map_err(|why| DbError::new("promote", why))?;
            db.set_fencing_token(token.0).await?;
            db.promote().await?;
            job.failovers.fetch_add(1, Ordering::SeqCst);
            record_promotion(db, job).await;
            Ok(())
        }
        Action::Demote => db.stop(StopMode::Immediate).await,
        Action::Kill => db.kill().await,
        Action::Clone(upstream) => db.clone_from(upstream).await,
        Action::Rewind(upstream) => {
            let result = db.rewind_from(upstream).await;
            job.repair.rewound(result.is_ok());
            result
        }
        Action::RemoveData => {
            db.remove_data().await?;
            job.repair.reset();
            Ok(())
        }
        Action::Follow(upstream) => {
            let result = db.follow(upstream.as_ref()).await;
            if result.is_err() && upstream.is_some() {
                job.repair.follow_failures.fetch_add(1, Ordering::SeqCst);
            }
            result
        }
        Action::SetSyncRule(rule) => db.set_sync_rule(rule).await,
        store_action => Err(DbError::new(format!("{store_action:?}"), "not a database action")),
    }
}

/// Records the lease's token with the database before it starts as a primary.
async fn record_token<D: Database>(db: &D, job: &DbJob) -> Result<(), DbError> {
    match job.token {
        Some(token) => db.set_fencing_token(token.0).await,
        None => Ok(()),
    }
}

/// Appends the promotion to `history`: timeline, position, new primary and token.
async fn record_promotion<D: Database>(db: &D, job: &DbJob) {
    let Some(dcs) = &job.dcs else { return };
    let state = db.observe().await;
    let entry = vigil_api::HistoryEntry::Promotion {
        timeline: state.timeline,
        lsn: state.position.map(|p| p.to_string()),
        reason: "promoted after taking the leader lease".to_owned(),
        new_primary: job.me.to_string(),
        fencing_token: job.token.map(|t| t.0),
        timestamp: vigil_api::Schedule::from(std::time::SystemTime::now()).to_string(),
    };
    super::view::append_history(dcs, entry).await;
}
