//! `observe`: the data directory from `pg_controldata`, the running server from SQL.

use super::{controldata, files, liveness, set_aside, sql, standby_names, unreadable_data, Postgres};
use crate::db::{DataState, DbState, Role};
use std::time::Duration;

/// How long `observe` waits for its connection and for its query, each.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(1);
/// The same for a second look after the first got no answer.
const RETRY_TIMEOUT: Duration = Duration::from_millis(500);

/// What asking the server gave.
enum Answer {
    /// Its report.
    Live(Box<sql::Live>),
    /// An error: not running, starting up, shutting down, a failed query.
    Refused,
    /// Nothing within the timeout.
    Silent,
}

impl Postgres {
    pub(super) async fn observe_now(&self) -> DbState {
        let state = self.observe_server().await;
        let latest = self.blocking("look for data set aside", |s| Ok(set_aside::latest(s))).await;
        DbState { data_set_aside: latest.ok().flatten().map(|p| p.display().to_string()), ..state }
    }

    async fn observe_server(&self) -> DbState {
        let data = self.data_state().await;
        if data == DataState::Missing {
            return DbState::stopped(data);
        }
        // Asked twice: a first timeout may only mean that the agent itself was paused (a stall, SIGSTOP)
        // while the answer waited in the socket, and a running primary must not be taken for stopped.
        let answer = match self.ask(OBSERVE_TIMEOUT).await {
            Answer::Live(live) => Answer::Live(live),
            // A stalled agent finds the answer waiting in the socket: the second look needs no long wait.
            _ => self.ask(RETRY_TIMEOUT).await,
        };
        let standby_config = files::has_standby_signal(self.data_dir());
        let live = match answer {
            Answer::Live(live) => *live,
            not_live => {
                let mut state = DbState::stopped(data);
                state.starting = self.tools.pg_ctl_running(self.data_dir()).await.unwrap_or(false);
                state.hung = state.starting && matches!(not_live, Answer::Silent);
                state.upstream = self.configured_upstream().filter(|_| standby_config);
                return state;
            }
        };
        let role = if live.in_recovery { Role::Replica } else { Role::Primary };
        let timeout = self.runtime().upstream_timeout;
        DbState {
            data,
            running: true,
            starting: false,
            hung: false,
            role: Some(role),
            timeline: live.timeline,
            position: live.position,
            replay_position: live.replay,
            upstream: self.configured_upstream().filter(|_| live.in_recovery),
            streaming: liveness::streams(live.receiver.as_deref(), live.receiver_silence, timeout),
            server_version: live.server_version,
            sync_rule: standby_names::parse(&live.standby_names).filter(|_| !live.in_recovery),
            replicas: live.replicas,
            pending_restart: live.pending_restart,
            diverged: None,
            report: live.report,
            data_set_aside: None,
        }
    }

    /// What the server says when asked.
    async fn ask(&self, timeout: Duration) -> Answer {
        match self.connect_local(timeout).await {
            Ok(session) => match tokio::time::timeout(timeout, sql::live(&session.client)).await {
                Ok(Ok(live)) => Answer::Live(Box::new(live)),
                Ok(Err(e)) => {
                    tracing::warn!(member = %self.settings.name, error = %e, "observe query failed");
                    Answer::Refused
                }
                Err(_) => {
                    tracing::warn!(member = %self.settings.name, "observe query timed out");
                    Answer::Silent
                }
            },
            Err(e @ sql::ConnectError::NoAnswer(_)) => {
                tracing::warn!(member = %self.settings.name, error = %e, "server does not answer");
                Answer::Silent
            }
            Err(e) => {
                tracing::debug!(member = %self.settings.name, error = %e, "server refuses sessions");
                Answer::Refused
            }
        }
    }

    /// What the data directory holds, from `pg_controldata`.
    async fn data_state(&self) -> DataState {
        let data = self.data_dir();
        if !files::has_database(data) {
            return DataState::Missing;
        }
        let read = self.tools.run("pg_controldata", "pg_controldata", &[data.into()]).await;
        match read.map(|ran| controldata::parse(&ran.stdout)) {
            Ok(Some(control)) => controldata::data_state(
                control,
                files::has_standby_signal(data),
                files::has_backup_label(data),
                files::former_primary_marker(&self.settings).exists(),
            ),
            Ok(None) => {
                tracing::warn!(member = %self.settings.name, "pg_controldata output not understood");
                unreadable_data()
            }
            Err(error) => {
                tracing::warn!(member = %self.settings.name, %error, "cannot read the control file");
                unreadable_data()
            }
        }
    }
}
