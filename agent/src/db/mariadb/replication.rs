//! Replication: following an upstream, promotion once the relay log is applied, opening a primary, and
//! fencing one.

use super::{gtid, server, sql, MariaDb};
use crate::db::{DbError, Upstream};
use sql::{quote, Session};
use std::time::Duration;

/// How long a promotion waits for the relay log to be applied.
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long fencing by `read_only` and killing the sessions may take before the server is killed instead.
const FENCE_BUDGET: Duration = Duration::from_millis(300);
/// How long `follow` waits for the replication threads to connect before it reports success anyway.
const FOLLOW_CHECK: Duration = Duration::from_secs(3);
/// The upstream refuses the position a replica asks for (GTIDs it does not have: the replica diverged).
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u32 = 1236;

impl MariaDb {
    pub(super) async fn follow_now(&self, upstream: Option<&Upstream>) -> Result<(), DbError> {
        self.ensure_running().await?;
        let dialect = self.settings.dialect();
        let mut session = self.admin("follow").await?;
        // A replica waits for no acknowledgement: its replication thread's commits would wait forever.
        for statement in [dialect.read_only(), &dialect.wait_for_replicas(false)] {
            sql::run(&mut session, statement).await.map_err(|e| DbError::new("follow", e))?;
        }
        let Some(up) = upstream else {
            // A standby of nobody: apply what was received, fetch nothing more.
            self.runtime().upstream = None;
            return sql::run(&mut session, dialect.stop_io_thread())
                .await
                .map_err(|e| DbError::new("follow", e));
        };
        let status = sql::slave_status(&mut session, dialect).await.map_err(|e| DbError::new("follow", e))?;
        let same =
            status.as_ref().is_some_and(|s| s.master == (up.host.clone(), up.port) && s.io_running != "No");
        if same {
            self.runtime().upstream = Some(up.clone());
            return Ok(());
        }
        self.check_upstream("follow", up).await?;
        let rep = &self.settings.replication;
        let change = dialect.change_source(&up.host, up.port, &rep.username, rep.password.expose());
        // Acknowledging commits is for the primary it follows to turn on (see `semi_sync`).
        let no_acks = dialect.acknowledge(false);
        for statement in [dialect.stop_replica(), &change, &no_acks, dialect.start_replica()] {
            sql::run(&mut session, statement).await.map_err(|e| DbError::new("follow", e))?;
        }
        self.runtime().upstream = Some(up.clone());
        self.check_replication(&mut session, up).await
    }

    /// Waits a moment for the replication threads: an upstream refusing this server's position, or an
    /// SQL thread that cannot apply what it sent, fails the follow (the data diverged). The server then
    /// counts as following nobody, so that the next cycle tries again and the policy counts the failures
    /// (`FOLLOW_ATTEMPTS`) instead of waiting for a replica that never streams.
    async fn check_replication(&self, session: &mut Session, up: &Upstream) -> Result<(), DbError> {
        let diverged = |why: String| {
            self.runtime().upstream = None;
            Err(DbError::new(format!("follow {}", up.name), why))
        };
        let deadline = tokio::time::Instant::now() + FOLLOW_CHECK;
        loop {
            let status = sql::slave_status(session, self.settings.dialect())
                .await
                .map_err(|e| DbError::new("follow", e))?;
            let status = status.unwrap_or_default();
            if status.sql_errno != 0 {
                return diverged(status.sql_error);
            }
            if status.io_errno == ER_MASTER_FATAL_ERROR_READING_BINLOG {
                let why = self.refused_by(session, up, &status.io_error).await;
                return diverged(why);
            }
            if status.io_errno != 0 && !status.io_running.eq_ignore_ascii_case("yes") {
                return Err(DbError::new(format!("follow {}", up.name), status.io_error));
            }
            if status.io_running == "Yes" || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(super) async fn promote_now(&self, token: u64) -> Result<(), DbError> {
        let dialect = self.settings.dialect();
        let mut session = self.admin("promote").await?;
        let fail = |e: String| DbError::new("promote", e);
        sql::run(&mut session, dialect.stop_io_thread()).await.map_err(fail)?;
        self.wait_applied(&mut session).await?;
        for statement in self.opening(Some(token)) {
            sql::run(&mut session, &statement).await.map_err(fail)?;
        }
        self.runtime().upstream = None;
        Ok(())
    }

    /// Waits until the SQL thread applied everything the IO thread received (a relay log not yet applied
    /// would be lost by `RESET SLAVE ALL`); fails on an SQL error or after [`APPLY_TIMEOUT`].
    async fn wait_applied(&self, session: &mut Session) -> Result<(), DbError> {
        let domain = self.settings.domain;
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        loop {
            let live =
                sql::live(session, self.settings.dialect()).await.map_err(|e| DbError::new("promote", e))?;
            let Some(slave) = &live.slave else { return Ok(()) };
            if slave.sql_errno != 0 {
                return Err(DbError::new(
                    "promote",
                    format!("the relay log cannot be applied: {}", slave.sql_error),
                ));
            }
            let received = gtid::seq_in(&slave.io_pos, domain).map_err(|e| DbError::new("promote", e))?;
            let applied = gtid::seq_in(&live.slave_pos, domain).map_err(|e| DbError::new("promote", e))?;
            if applied >= received {
                return Ok(());
            }
            if !slave.sql_running {
                sql::run(session, self.settings.dialect().start_sql_thread())
                    .await
                    .map_err(|e| DbError::new("promote", e))?;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DbError::new(
                    "promote",
                    format!("the relay log is not applied after {APPLY_TIMEOUT:?} ({applied} of {received})"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn start_primary_now(&self, token: Option<u64>) -> Result<(), DbError> {
        self.ensure_running().await?;
        self.run("start_primary", &self.opening(token)).await?;
        self.runtime().upstream = None;
        Ok(())
    }

    /// The statements that open this server as the primary of the term `token` (`None`: the term it
    /// recorded last): replication forgotten, its fence row written without waiting for a replica (the
    /// standbys the rule names are made to acknowledge only once they follow it), then commits waiting as
    /// the rule says, and writes allowed.
    pub(super) fn opening(&self, token: Option<u64>) -> Vec<String> {
        let dialect = self.settings.dialect();
        let mut statements = vec![
            dialect.stop_replica().to_owned(),
            dialect.reset_replica().to_owned(),
            dialect.wait_for_replicas(false),
        ];
        statements.extend(token.map(|t| self.fence_row(t)));
        statements.extend([self.acknowledgements(), dialect.writable().to_owned()]);
        statements
    }

    /// The statement that makes commits wait for a replica's acknowledgement or not, as the rule set last
    /// says.
    pub(super) fn acknowledgements(&self) -> String {
        let on = self.runtime().sync != crate::db::SyncRule::Off;
        self.settings.dialect().wait_for_replicas(on)
    }

    /// Makes the server read-only and ends every client session, the superuser's included (`read_only`
    /// does not stop accounts with `READ_ONLY ADMIN`); replication threads and the replicas' connections
    /// stay. Killed when that does not finish within [`FENCE_BUDGET`] (a hung server, a lock pile-up).
    pub(super) async fn fence_now(&self) -> Result<(), DbError> {
        let fence = async {
            let mut session = self.session(FENCE_BUDGET).await?;
            for statement in ["SET SESSION lock_wait_timeout = 1", self.settings.dialect().read_only()] {
                sql::run(&mut session, statement).await?;
            }
            let replication = quote(&self.settings.replication.username);
            let sessions = format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER NOT IN \
                 ('system user', 'event_scheduler', {replication}) AND COMMAND NOT IN ('Binlog Dump', \
                 'Binlog Dump GTID', 'Daemon', 'Killed')"
            );
            let ids: Vec<u64> = mysql_async::prelude::Queryable::query(&mut session, sessions)
                .await
                .map_err(|e| format!("list the sessions: {e}"))?;
            for id in &ids {
                // A session that ended meanwhile is no error.
                let _ = sql::run(&mut session, &format!("KILL CONNECTION {id}")).await;
            }
            Ok::<usize, String>(ids.len())
        };
        match tokio::time::timeout(FENCE_BUDGET, fence).await {
            Ok(Ok(killed)) => {
                tracing::info!(member = %self.settings.name, killed, "fenced: read-only, client sessions ended");
                Ok(())
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e,
                    _ => format!("not done within {FENCE_BUDGET:?}"),
                };
                tracing::warn!(member = %self.settings.name, why, "fencing by read_only failed: killing the server");
                server::kill(&self.settings).await
            }
        }
    }
}
