//! How the loop carries out the commands of the REST API, between two cycles so they never race the
//! loop's own actions. A restart with a `schedule` is kept by the loop and carried out when its time
//! comes ([`Agent::run_scheduled_restart`]); `DELETE /restart` cancels it. A restart stops and starts the
//! database, which may take long: it runs as the loop's background job (answering the caller when done),
//! so the loop keeps renewing the lease and petting the watchdog. Its conditions are Patroni's: `role`,
//! `restart_pending`, `postgres_version` (only a server older than it); a `timeout` reports it failed
//! (503) when not done in time.

use super::commands::{LocalCommand, Reply};
use super::execute::JobReport;
use super::history::PromotionNote;
use super::hooks::Callback;
use super::run::Agent;
use super::view::cluster_view;
use super::Action;
use crate::config::Config;
use crate::db::{DataState, Database, Role, StopMode, Upstream};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use vigil_api::{
    postgres_version_number, schedule_for_request, ApiError, ReinitializeRequest, RestartRequest, Schedule,
};
use vigil_dcs::{DcsNode, FencingToken};
use vigil_policy::JobEvent;

/// How long `POST /reinitialize` waits for a running database operation of a replica to end.
const JOB_WAIT: Duration = Duration::from_secs(15);

impl<D: Database> Agent<D> {
    /// Carries out one command and answers on `reply`; a restart answers once its background job ends.
    pub(super) async fn dispatch(&mut self, command: LocalCommand, reply: Reply) {
        match command {
            LocalCommand::Restart(request) if request.schedule.is_none() && !self.busy() => {
                self.restart(request, RestartDone::Caller(reply)).await
            }
            command => {
                let _ = reply.send(self.handle(command).await);
            }
        }
    }

    /// Carries out one command, other than an immediate restart (see [`Agent::dispatch`]).
    async fn handle(&mut self, command: LocalCommand) -> Result<String, ApiError> {
        let touches_db = match &command {
            LocalCommand::Restart(request) => request.schedule.is_none(),
            LocalCommand::Reinitialize(_) => true,
            LocalCommand::CancelRestart | LocalCommand::Reload | LocalCommand::CheckParameters(_) => false,
        };
        if matches!(command, LocalCommand::Reinitialize(_)) && !self.holds_lease() {
            // A replica that cannot follow retries every cycle: its short jobs must not refuse the way out.
            self.wait_for_job(JOB_WAIT).await;
        }
        if touches_db && self.busy() {
            return Err(ApiError::new(503, "a database operation is in progress: try again when it ends"));
        }
        match command {
            LocalCommand::Restart(request) if request.schedule.is_some() => self.schedule_restart(request),
            // Reached only while a job runs, refused above.
            LocalCommand::Restart(_) => Err(ApiError::new(503, "a database operation is in progress")),
            LocalCommand::CancelRestart => self.cancel_restart(),
            LocalCommand::Reinitialize(request) => self.reinitialize(request).await,
            LocalCommand::Reload => self.reload().await,
            LocalCommand::CheckParameters(parameters) => {
                self.check_parameters(&parameters, "postgresql.parameters").await.map(|()| "valid".to_owned())
            }
        }
    }

    /// 400 naming each parameter and value the database would reject, after `context`.
    async fn check_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
        context: &str,
    ) -> Result<(), ApiError> {
        self.db.check_parameters(parameters).await.map_err(|e| ApiError::new(400, format!("{context}: {e}")))
    }

    fn schedule_restart(&mut self, mut request: RestartRequest) -> Result<String, ApiError> {
        let text = request.schedule.take().unwrap_or_default();
        let at = schedule_for_request(&text, "restart", SystemTime::now())?;
        if let Some((pending, _)) = &self.scheduled_restart {
            return Err(ApiError::new(
                409,
                format!("a restart is already scheduled at {pending}: cancel it first (DELETE /restart)"),
            ));
        }
        tracing::info!(%at, "restart scheduled through the API");
        self.scheduled_restart = Some((at, request));
        self.wake(); // the loop then also wakes at that time
        Ok(format!("Restart scheduled at {at}"))
    }

    fn cancel_restart(&mut self) -> Result<String, ApiError> {
        let Some((at, _)) = self.scheduled_restart.take() else {
            return Err(ApiError::new(404, "no restart is scheduled"));
        };
        tracing::info!(%at, "scheduled restart cancelled through the API");
        Ok(format!("The restart scheduled at {at} was cancelled"))
    }

    /// Carries out the scheduled restart once its time has come and no database job runs; whether it
    /// did.
    pub(super) async fn run_scheduled_restart(&mut self) -> bool {
        let due = self.scheduled_restart.as_ref().is_some_and(|(at, _)| at.at() <= SystemTime::now());
        if !due || self.busy() {
            return false;
        }
        let Some((at, request)) = self.scheduled_restart.take() else { return false };
        self.restart(request, RestartDone::Log(at)).await;
        true
    }

    /// Checks the request against the database, then starts the restart as the background job, which
    /// reports to `done` when it ends; a refusal is reported to `done` at once.
    async fn restart(&mut self, request: RestartRequest, done: RestartDone) {
        let role = match self.restart_check(&request).await {
            Ok(role) => role,
            Err(e) => return done.report(Err(e)),
        };
        tracing::info!(role, "restart requested through the API");
        let (db, dcs, guard, wake) =
            (self.db.clone(), self.dcs.clone(), self.guard.clone(), self.wake.clone());
        let token = self.lease_token();
        if role == "primary" {
            self.memory.starting_primary();
        }
        let limit = request.timeout.map(Duration::from_secs);
        self.job = Some(tokio::spawn(async move {
            let restart = restart_db(db.as_ref(), &dcs, role == "primary", token);
            let result = match limit {
                None => restart.await,
                // Given up at the limit: the loop then takes the server as it finds it (starting, or
                // stopped: a primary is started in place or, past primary_start_timeout, failed over).
                Some(limit) => tokio::time::timeout(limit, restart).await.unwrap_or_else(|_| {
                    tracing::warn!(role, timeout_s = limit.as_secs(), "restart not done within its timeout");
                    Err(ApiError::new(
                        503,
                        format!("restart not done within the timeout of {} s", limit.as_secs()),
                    ))
                }),
            };
            if result.is_ok() {
                guard.hooks.callback(Callback::OnRestart, role, token);
            }
            done.report(result.map(|()| format!("restarted the {role}")));
            wake.notify_one();
            JobReport::default()
        }));
    }

    /// The role to restart in (`primary` or `replica`), or why the request's conditions do not hold.
    async fn restart_check(&self, request: &RestartRequest) -> Result<&'static str, ApiError> {
        let db = self.db.observe().await;
        if request.restart_pending == Some(true) && db.pending_restart.is_empty() {
            return Err(ApiError::new(412, "restart conditions are not satisfied: no restart is pending"));
        }
        let role = match db.role {
            Some(Role::Primary) => "primary",
            Some(Role::Replica) => "replica",
            // As Patroni: a stopped server with its data (e.g. in pause, which leaves it stopped) is
            // started, in the role this member has in the cluster.
            None if db.running || db.starting || !matches!(db.data, DataState::Present { .. }) => {
                return Err(ApiError::new(503, "the database is not running and cannot be started now"))
            }
            None if self.holds_lease() => "primary",
            None => "replica",
        };
        if request.role.as_deref().is_some_and(|wanted| wanted != role) {
            return Err(ApiError::new(
                412,
                format!("restart conditions are not satisfied: this member is a {role}"),
            ));
        }
        if let Some(wanted) = &request.postgres_version {
            let below = postgres_version_number(wanted).map_err(|e| ApiError::new(400, e))?;
            let running = db.server_version.unwrap_or(0);
            if running >= below {
                return Err(ApiError::new(
                    412,
                    format!(
                        "restart conditions are not satisfied: the server runs version {running}, not lower than postgres_version {wanted}"
                    ),
                ));
            }
        }
        Ok(role)
    }

    async fn reinitialize(&mut self, request: ReinitializeRequest) -> Result<String, ApiError> {
        if self.holds_lease() {
            return Err(ApiError::new(503, "this member is the primary: it cannot be reinitialized"));
        }
        tracing::info!(force = request.force, "reinitialize requested through the API");
        self.db.stop(StopMode::Immediate).await.map_err(|e| ApiError::new(503, e.to_string()))?;
        self.db.remove_data().await.map_err(|e| ApiError::new(503, e.to_string()))?;
        self.memory.job_reported(JobEvent::DataRemoved);
        if self.dynamic.pause {
            // Paused, the loop starts nothing; as Patroni's, a reinitialize is allowed then and clones and
            // starts the replica itself.
            let Some(upstream) = leader_upstream(&self.dcs).await? else {
                return Err(ApiError::new(503, "the data is removed, but there is no primary to clone from"));
            };
            let actions = vec![Action::Clone(upstream.clone()), Action::Follow(Some(upstream))];
            self.start_job(actions, PromotionNote::default());
            return Ok(
                "reinitialize started: the data is removed and is being cloned from the primary".to_owned()
            );
        }
        self.wake();
        Ok("reinitialize started: the data is removed and will be cloned from the primary".to_owned())
    }

    async fn reload(&mut self) -> Result<String, ApiError> {
        let Some(path) = self.config_path().map(PathBuf::from) else {
            return Err(ApiError::new(503, "this agent was not started from a configuration file"));
        };
        let config = Config::load(&path).map_err(|e| ApiError::new(400, format!("not reloaded: {e}")))?;
        let Some(engine) = config.engine() else {
            return Err(ApiError::new(
                400,
                format!(
                    "not reloaded: {}: no database section; a data member cannot become a witness",
                    path.display()
                ),
            ));
        };
        let section = engine.section();
        let new = crate::config::changed_parameters(engine.parameters(), self.own_parameters());
        self.check_parameters(&new, &format!("not reloaded: {}: {section}.parameters", path.display()))
            .await?;
        self.apply_reloaded(&config, engine);
        let role = if self.holds_lease() { "primary" } else { "replica" };
        self.guard.hooks.callback(Callback::OnReload, role, self.lease_token());
        self.wake();
        tracing::info!(file = %path.display(), "configuration reloaded: tags and {section}.parameters applied");
        Ok(format!(
            "reloaded: tags and {section}.parameters apply at once (parameters that need a restart show as \
             pending_restart); other settings take effect when the agent restarts"
        ))
    }
}

/// Where a restart's outcome goes: the API caller waiting for it, or the log (a scheduled restart).
enum RestartDone {
    /// `POST /restart` without a schedule.
    Caller(Reply),
    /// The restart scheduled at this time.
    Log(Schedule),
}

impl RestartDone {
    fn report(self, result: Result<String, ApiError>) {
        match (self, result) {
            (RestartDone::Caller(reply), result) => {
                let _ = reply.send(result);
            }
            (RestartDone::Log(at), Ok(done)) => tracing::info!(%at, result = %done, "scheduled restart done"),
            (RestartDone::Log(at), Err(e)) => {
                tracing::warn!(%at, error = %e.message, "scheduled restart not done")
            }
        }
    }
}

/// Stops the database (fast) and starts it again: as a primary under the lease's `token`, or as a replica
/// of the lease holder.
async fn restart_db<D: Database>(
    db: &D,
    dcs: &DcsNode,
    primary: bool,
    token: Option<FencingToken>,
) -> Result<(), ApiError> {
    let failed = |e: &dyn std::fmt::Display| ApiError::new(503, e.to_string());
    db.stop(StopMode::Fast).await.map_err(|e| failed(&e))?;
    let started = if primary {
        db.start_primary(token.map(|t| t.0)).await
    } else {
        db.follow(leader_upstream(dcs).await?.as_ref()).await
    };
    started.map_err(|e| failed(&e))
}

/// Where a replica of this cluster streams from: the lease holder, as the store names it (`None`: no
/// holder).
async fn leader_upstream(dcs: &DcsNode) -> Result<Option<Upstream>, ApiError> {
    let state = dcs.read().await.map_err(|e| ApiError::new(503, e.to_string()))?;
    let view = cluster_view(&state);
    Ok(view.leader.as_ref().and_then(|(holder, _)| Some(view.members.get(holder)?.upstream(holder.as_str()))))
}
