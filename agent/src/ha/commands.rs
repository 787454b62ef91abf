//! Requests the REST API hands the HA loop (restart, reinitialize, reload), carried out between two
//! cycles so they never race the loop's own actions.

use super::run::Agent;
use super::view::cluster_view;
use crate::config::Config;
use crate::db::{Database, Role, StopMode};
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot};
use vigil_api::{ApiError, ReinitializeRequest, RestartRequest};

/// A request for the loop.
#[derive(Debug)]
pub enum LocalCommand {
    /// Restart the database in its current role.
    Restart(RestartRequest),
    /// Remove a replica's data; the loop then clones it again from the primary.
    Reinitialize(ReinitializeRequest),
    /// Re-read the configuration file.
    Reload,
}

/// A request with the channel its answer goes back on.
pub type Envelope = (LocalCommand, oneshot::Sender<Result<String, ApiError>>);

/// The sending side, held by the REST API.
#[derive(Clone)]
pub struct Commands(mpsc::Sender<Envelope>);

impl Commands {
    /// A channel for commands: the sender for the API, the receiver for [`Agent::run`].
    pub fn channel() -> (Commands, mpsc::Receiver<Envelope>) {
        let (tx, rx) = mpsc::channel(8);
        (Commands(tx), rx)
    }

    /// Sends `command` and waits for its answer.
    pub async fn call(&self, command: LocalCommand) -> Result<String, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.0.send((command, reply)).await.map_err(|_| ApiError::new(503, "the agent is shutting down"))?;
        answer.await.map_err(|_| ApiError::new(503, "the agent is shutting down"))?
    }
}

impl<D: Database> Agent<D> {
    /// Carries out one command.
    pub(super) async fn handle(&mut self, command: LocalCommand) -> Result<String, ApiError> {
        let touches_db = !matches!(command, LocalCommand::Reload);
        if touches_db && self.busy() {
            return Err(ApiError::new(503, "a database operation is in progress: try again when it ends"));
        }
        match command {
            LocalCommand::Restart(request) => self.restart(request).await,
            LocalCommand::Reinitialize(request) => self.reinitialize(request).await,
            LocalCommand::Reload => self.reload(),
        }
    }

    async fn restart(&mut self, request: RestartRequest) -> Result<String, ApiError> {
        if request.schedule.is_some() {
            return Err(ApiError::new(400, "schedule is not supported yet: restart now, without it"));
        }
        if request.restart_pending == Some(true) {
            return Err(ApiError::new(412, "no restart is pending on this member"));
        }
        let db = self.db.observe().await;
        let role = match db.role {
            Some(Role::Primary) => "primary",
            Some(Role::Replica) => "replica",
            None => return Err(ApiError::new(503, "the database is not running")),
        };
        if request.role.as_deref().is_some_and(|wanted| wanted != role) {
            return Err(ApiError::new(
                412,
                format!("restart conditions are not satisfied: this member is a {role}"),
            ));
        }
        tracing::info!(role, "restart requested through the API");
        self.db.stop(StopMode::Fast).await.map_err(|e| ApiError::new(503, e.to_string()))?;
        let started = if db.role == Some(Role::Primary) {
            self.db.start_primary().await
        } else {
            let state = self.dcs.read().await.map_err(|e| ApiError::new(503, e.to_string()))?;
            let view = cluster_view(&state);
            let upstream = view
                .leader
                .as_ref()
                .and_then(|(holder, _)| Some(view.members.get(holder)?.upstream(holder.as_str())));
            self.db.follow(upstream.as_ref()).await
        };
        started.map_err(|e| ApiError::new(503, e.to_string()))?;
        Ok(format!("restarted the {role}"))
    }

    async fn reinitialize(&mut self, request: ReinitializeRequest) -> Result<String, ApiError> {
        if self.holds_lease() {
            return Err(ApiError::new(503, "this member is the primary: it cannot be reinitialized"));
        }
        tracing::info!(force = request.force, "reinitialize requested through the API");
        self.db.stop(StopMode::Immediate).await.map_err(|e| ApiError::new(503, e.to_string()))?;
        self.db.remove_data().await.map_err(|e| ApiError::new(503, e.to_string()))?;
        self.wake();
        Ok("reinitialize started: the data is removed and will be cloned from the primary".to_owned())
    }

    fn reload(&mut self) -> Result<String, ApiError> {
        let Some(path) = self.config_path().map(PathBuf::from) else {
            return Err(ApiError::new(503, "this agent was not started from a configuration file"));
        };
        let config = Config::load(&path).map_err(|e| ApiError::new(400, format!("not reloaded: {e}")))?;
        self.apply_tags(&config);
        self.wake();
        tracing::info!(file = %path.display(), "configuration reloaded: tags applied");
        Ok("reloaded: tags apply at once; other settings take effect when the agent restarts".to_owned())
    }
}
