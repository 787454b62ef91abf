//! A witness: an agent without a database. It votes in the Raft group, so that two data members and a
//! witness survive the loss of any one of the three, and answers the REST API, but never holds the lease
//! (it runs no HA loop).

use crate::ha::{Envelope, LocalCommand};
use crate::status::SharedStatus;
use std::sync::Arc;
use tokio::sync::mpsc;
use vigil_api::{ApiError, NodeStatus, PatroniInfo};

/// The status a witness serves: `running`, role `witness`.
fn status(scope: &str, name: &str) -> NodeStatus {
    NodeStatus {
        state: "running".to_owned(),
        role: "witness".to_owned(),
        patroni: PatroniInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            scope: scope.to_owned(),
            name: name.to_owned(),
        },
        ..Default::default()
    }
}

/// Serves the witness's status and answers the local commands (restart, reload, …) until `stop`
/// completes.
pub async fn run(
    shared: Arc<SharedStatus>,
    (scope, name): (&str, &str),
    mut commands: mpsc::Receiver<Envelope>,
    stop: impl std::future::Future<Output = ()>,
) {
    tracing::info!(member = name, %scope, "witness started: it votes in the Raft group and never holds the lease");
    shared.set(status(scope, name));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            Some((command, reply)) = commands.recv() => {
                let _ = reply.send(Err(refusal(&command)));
            }
        }
    }
}

fn refusal(command: &LocalCommand) -> ApiError {
    match command {
        LocalCommand::Reload => {
            ApiError::new(400, "a witness has nothing to reload: its settings take effect when it restarts")
        }
        _ => ApiError::new(412, "this member is a witness: it has no database"),
    }
}
