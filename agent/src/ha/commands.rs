//! Requests the REST API hands the HA loop (restart, reinitialize, reload), and the channel they travel
//! on; the loop carries them out between two cycles (see `dispatch.rs`).

use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};
use vigil_api::{ApiError, ReinitializeRequest, RestartRequest};

/// A request for the loop.
#[derive(Debug)]
pub enum LocalCommand {
    /// Restart the database in its current role, now or at its `schedule`.
    Restart(RestartRequest),
    /// Cancel the scheduled restart.
    CancelRestart,
    /// Remove a replica's data; the loop then clones it again from the primary.
    Reinitialize(ReinitializeRequest),
    /// Re-read the configuration file.
    Reload,
    /// Check server parameter values against the database (before `PATCH /config` stores them).
    CheckParameters(BTreeMap<String, String>),
}

/// A request with the channel its answer goes back on.
pub type Envelope = (LocalCommand, oneshot::Sender<Result<String, ApiError>>);

/// The sending side, held by the REST API.
#[derive(Clone)]
pub struct Commands(mpsc::Sender<Envelope>);

impl Commands {
    /// A channel for commands: the sender for the API, the receiver for the loop (`Agent::run`).
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

/// The channel a command's answer goes back on.
pub type Reply = oneshot::Sender<Result<String, ApiError>>;
