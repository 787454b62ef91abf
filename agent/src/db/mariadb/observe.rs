//! `observe`: the data directory's identity, the running server from SQL.

use super::{gtid, server, sql, MariaDb};
use crate::db::{DataState, DbState, Position, Role, SyncRule, Unit};
use std::time::Duration;

/// How long `observe` waits for its connection and its queries.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(1);

impl MariaDb {
    pub(super) async fn observe_now(&self) -> DbState {
        let Some(system_id) = self.system_id() else { return DbState::stopped(DataState::Missing) };
        let data = DataState::Present { system_id, was_primary: false };
        let mut session = self.session(OBSERVE_TIMEOUT).await;
        let answer = match &mut session {
            Ok(session) => {
                tokio::time::timeout(OBSERVE_TIMEOUT, sql::live(session, self.settings.dialect())).await
            }
            Err(e) => Ok(Err(e.clone())),
        };
        let (live, mut session) = match (answer, session) {
            (Ok(Ok(live)), Ok(session)) => (live, session),
            (not_live, _) => {
                let mut state = DbState::stopped(data);
                state.starting = server::runs(&self.settings);
                state.hung = state.starting && not_live.is_err();
                return state;
            }
        };
        let domain = self.settings.domain;
        let position = live.position(domain).ok().map(|at| Position::new(Unit::Transactions, at));
        let primary = live.is_primary();
        let (replicas, sync_rule) = match primary {
            true => self.semi_sync_state(&mut session, &live.replicas).await,
            false => (Vec::new(), SyncRule::Off),
        };
        // Closed with a goodbye: a session just dropped is logged by the server as aborted, each look.
        drop(tokio::time::timeout(OBSERVE_TIMEOUT, session.disconnect()).await);
        let upstream = self.runtime().upstream.clone();
        let upstream = upstream
            .filter(|up| live.slave.as_ref().is_some_and(|s| s.master == (up.host.clone(), up.port)))
            .map(|up| up.name);
        DbState {
            data,
            running: true,
            starting: false,
            hung: false,
            role: Some(if primary { Role::Primary } else { Role::Replica }),
            timeline: live.term,
            position,
            replay_position: gtid::seq_in(&live.slave_pos, domain)
                .ok()
                .map(|at| Position::new(Unit::Transactions, at))
                .filter(|_| !primary),
            upstream,
            streaming: live.slave.as_ref().is_some_and(|s| s.io_running == "Yes"),
            server_version: live.version_number(),
            sync_rule: primary.then_some(sync_rule),
            replicas,
            pending_restart: Vec::new(),
            diverged: None,
            report: Default::default(),
            data_set_aside: None,
        }
    }
}
