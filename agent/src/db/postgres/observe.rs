//! `observe`: the running server from SQL, over one session kept from cycle to cycle; the data directory
//! from `pg_controldata` only when the server does not answer (a running one reports the same in SQL).

use super::sql::Session;
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
        if !files::has_database(self.data_dir()) {
            return DbState::stopped(DataState::Missing);
        }
        // Asked twice: a first timeout may only mean that the agent itself was paused (a stall, SIGSTOP)
        // while the answer waited in the socket, and a running primary must not be taken for stopped.
        let answer = match self.ask(OBSERVE_TIMEOUT).await {
            (Answer::Live(live), _) => Answer::Live(live),
            // The kept session failed at once (the server restarted since it was opened, say): that tells
            // nothing of the server now, so the first look is taken again over a new session.
            (Answer::Refused, true) => match self.ask(OBSERVE_TIMEOUT).await.0 {
                Answer::Live(live) => Answer::Live(live),
                _ => self.ask(RETRY_TIMEOUT).await.0,
            },
            // A stalled agent finds the answer waiting in the socket: the second look needs no long wait.
            _ => self.ask(RETRY_TIMEOUT).await.0,
        };
        let standby_config = files::has_standby_signal(self.data_dir());
        let live = match answer {
            Answer::Live(live) => *live,
            not_live => {
                let mut state = DbState::stopped(self.data_state().await);
                state.starting = self.tools.pg_ctl_running(self.data_dir()).await.unwrap_or(false);
                state.hung = state.starting && matches!(not_live, Answer::Silent);
                state.upstream = self.configured_upstream().filter(|_| standby_config);
                return state;
            }
        };
        let role = if live.in_recovery { Role::Replica } else { Role::Primary };
        let timeout = self.runtime().upstream_timeout;
        // A running server out of recovery has a primary's cluster state in its control file, one in
        // recovery a replica's; its system identifier came with the report.
        let data = self.data_state_from(live.system_id.clone(), !live.in_recovery);
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

    /// What the server says when asked, over the session kept from the last look when there is one (then
    /// `true`), else a new one; a session that answered is kept for the next look, any other dropped.
    async fn ask(&self, timeout: Duration) -> (Answer, bool) {
        let (session, reused) = match self.kept_session(timeout).await {
            Ok(kept) => kept,
            Err(e @ sql::ConnectError::NoAnswer(_)) => {
                tracing::warn!(member = %self.settings.name, error = %e, "server does not answer");
                return (Answer::Silent, false);
            }
            Err(e) => {
                tracing::debug!(member = %self.settings.name, error = %e, "server refuses sessions");
                return (Answer::Refused, false);
            }
        };
        let answer = match tokio::time::timeout(timeout, sql::live(&session.client)).await {
            Ok(Ok(live)) => {
                self.keep_session(session);
                Answer::Live(Box::new(live))
            }
            Ok(Err(e)) if reused && session.client.is_closed() => {
                tracing::debug!(member = %self.settings.name, error = %e, "the kept session was closed");
                Answer::Refused
            }
            Ok(Err(e)) => {
                tracing::warn!(member = %self.settings.name, error = %e, "observe query failed");
                Answer::Refused
            }
            Err(_) => {
                tracing::warn!(member = %self.settings.name, "observe query timed out");
                Answer::Silent
            }
        };
        (answer, reused)
    }

    /// The session kept with the local server (then `true`), else a new one within `timeout`. A kept
    /// session is taken out while in use: whoever else needs one meanwhile opens their own. One the
    /// server closed (a restart), or whose postmaster is stopped or gone, is dropped. Only for queries
    /// bounded by a timeout: a frozen server keeps the session open and never answers.
    async fn kept_session(&self, timeout: Duration) -> Result<(Session, bool), sql::ConnectError> {
        let kept = self.observer.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Its backend answers even when the postmaster is stopped or dead: such a server can neither
        // start a session nor be promoted, and a new session finds that out.
        let serving = || files::lock_holder_serves(&super::render::pid_file(self.data_dir()));
        match kept.filter(|session| !session.client.is_closed() && serving()) {
            Some(session) => Ok((session, true)),
            None => Ok((self.connect_local(timeout).await?, false)),
        }
    }

    /// Keeps `session`, which just answered, for the next look (replacing any other kept meanwhile).
    fn keep_session(&self, session: Session) {
        *self.observer.lock().unwrap_or_else(|e| e.into_inner()) = Some(session);
    }

    /// What the data directory holds, from `pg_controldata`.
    async fn data_state(&self) -> DataState {
        let data = self.data_dir();
        let read = self.tools.run("pg_controldata", "pg_controldata", &[data.into()]).await;
        match read.map(|ran| controldata::parse(&ran.stdout)) {
            Ok(Some(control)) => {
                let primary_state = controldata::is_primary_state(&control.cluster_state);
                self.data_state_from(control.system_id, primary_state)
            }
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

    /// The data state of `system_id` with a primary's cluster state or not, and the replica markers in
    /// the data directory now.
    fn data_state_from(&self, system_id: String, primary_state: bool) -> DataState {
        let data = self.data_dir();
        controldata::data_state(
            system_id,
            primary_state,
            files::has_standby_signal(data),
            files::has_backup_label(data),
            files::former_primary_marker(&self.settings).exists(),
        )
    }
}
