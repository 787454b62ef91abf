//! SQL: what a running server reports (observe), replication slots, the replication role, and the query that
//! tells whether pg_rewind's source needs a checkpoint first (run by psql: the agent does not connect to
//! other members itself).

use super::parameter_check::Definition;
use super::render::Target;
use super::Credentials;
use crate::db::{LinkReport, PendingSetting, Position, ReplicaLink, ServerReport};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tokio_postgres::types::PgLsn;
use tokio_postgres::{Client, Config, NoTls};

/// An open connection. Dropping it ends the task that drives the connection.
pub(crate) struct Session {
    pub client: Client,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A connection that failed: refused with an error, or no answer at all in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// The server (or the system) answered with an error: not running, starting up, refused.
    Failed(String),
    /// Nothing answered within the timeout: the server's processes do not run (stopped) or hang.
    NoAnswer(Duration),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Failed(e) => f.write_str(e),
            ConnectError::NoAnswer(timeout) => write!(f, "no answer within {timeout:?}"),
        }
    }
}

/// Connects to `target`:`port` as `user`, database `postgres`, within `timeout` (handshake included).
pub(crate) async fn connect(
    target: &Target,
    port: u16,
    user: &Credentials,
    timeout: Duration,
) -> Result<Session, ConnectError> {
    connect_to(target, port, user, "postgres", timeout).await
}

/// [`connect`] to `database`.
pub(crate) async fn connect_to(
    target: &Target,
    port: u16,
    user: &Credentials,
    database: &str,
    timeout: Duration,
) -> Result<Session, ConnectError> {
    let mut config = Config::new();
    match target {
        Target::Socket(dir) => config.host_path(dir),
        Target::Tcp(host) => config.host(host),
    };
    config
        .port(port)
        .user(&user.username)
        .password(user.password.expose())
        .dbname(database)
        .application_name("vigil")
        .connect_timeout(timeout);
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(ConnectError::Failed(e.to_string())),
        Err(_) => return Err(ConnectError::NoAnswer(timeout)),
    };
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Session { client, task })
}

/// What a running server reports about replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    pub in_recovery: bool,
    /// Primary: the current WAL position. Replica: the larger of received and replayed.
    pub position: Option<Position>,
    /// Replica: the replayed position.
    pub replay: Option<Position>,
    pub timeline: Option<u64>,
    /// Replica: the WAL receiver's state (`streaming`, `starting`, …; `None`: no receiver runs).
    pub receiver: Option<String>,
    /// Replica: how long ago its WAL receiver last heard from the sender (WAL or a keepalive), by this
    /// server's clock.
    pub receiver_silence: Option<Duration>,
    /// `server_version_num`, e.g. 150018.
    pub server_version: Option<u32>,
    /// `synchronous_standby_names`.
    pub standby_names: String,
    /// Primary: its WAL senders.
    pub replicas: Vec<ReplicaLink>,
    /// Changed parameters that wait for a restart.
    pub pending_restart: Vec<PendingSetting>,
    /// Start time, replay paused, last replayed commit time.
    pub report: ServerReport,
    /// The database system identifier, as `pg_controldata` prints it.
    pub system_id: String,
}

/// `pg_is_in_recovery()` is read once (the CTE is materialized), so a promotion in between cannot make the
/// primary-only functions fail.
const LIVE_SQL: &str = "WITH r AS MATERIALIZED (SELECT pg_is_in_recovery() AS rec) \
    SELECT r.rec, \
      CASE WHEN r.rec THEN NULL ELSE pg_current_wal_lsn() END, \
      CASE WHEN r.rec THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END, \
      pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
      (SELECT status FROM pg_stat_wal_receiver), \
      (SELECT received_tli FROM pg_stat_wal_receiver), \
      (pg_control_checkpoint()).timeline_id, \
      current_setting('server_version_num')::int, \
      current_setting('synchronous_standby_names'), \
      (SELECT (extract(epoch FROM clock_timestamp() - last_msg_receipt_time) * 1000)::float8 \
        FROM pg_stat_wal_receiver), \
      extract(epoch FROM pg_postmaster_start_time())::float8, \
      CASE WHEN r.rec THEN pg_is_wal_replay_paused() END, \
      extract(epoch FROM pg_last_xact_replay_timestamp())::float8, \
      (pg_control_system()).system_identifier \
    FROM r";

/// A primary's WAL senders (standbys connect with their member name as `application_name`).
const REPLICAS_SQL: &str = "SELECT application_name::text, state::text, sync_state::text, flush_lsn, \
    usename::text, host(client_addr), sync_priority FROM pg_stat_replication WHERE application_name <> ''";

/// Parameters whose changed value waits for a restart: the value in force, and the one in the files (read
/// only for those).
const PENDING_RESTART_SQL: &str = "SELECT s.name, current_setting(s.name), \
      (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name ORDER BY f.seqno DESC LIMIT 1) \
    FROM pg_settings s WHERE s.pending_restart ORDER BY s.name";

/// Reads role, positions, timeline, WAL receiver state and the parameters waiting for a restart.
pub(crate) async fn live(client: &Client) -> Result<Live, tokio_postgres::Error> {
    let row = client.query_one(LIVE_SQL, &[]).await?;
    let in_recovery: bool = row.try_get(0)?;
    let lsn = |i: usize| -> Result<Option<Position>, tokio_postgres::Error> {
        Ok(row.try_get::<_, Option<PgLsn>>(i)?.map(|l| Position::wal(u64::from(l))))
    };
    let current = lsn(1)?;
    let walfile: Option<String> = row.try_get(2)?;
    let (received, replayed) = (lsn(3)?, lsn(4)?);
    let receiver_status: Option<String> = row.try_get(5)?;
    let received_tli: Option<i32> = row.try_get(6)?;
    let checkpoint_tli: Option<i32> = row.try_get(7)?;
    let server_version = row.try_get::<_, Option<i32>>(8)?.and_then(|v| u32::try_from(v).ok());
    let standby_names: String = row.try_get(9)?;
    // A receipt time ahead of the clock (it cannot be, on one server) counts as just now.
    let receiver_silence =
        row.try_get::<_, Option<f64>>(10)?.map(|ms| Duration::from_secs_f64(ms.clamp(0.0, 1e12) / 1000.0));
    let tli = |t: Option<i32>| t.and_then(|t| u64::try_from(t).ok()).filter(|t| *t > 0);
    let epoch = |i: usize| -> Result<Option<SystemTime>, tokio_postgres::Error> {
        let seconds = row.try_get::<_, Option<f64>>(i)?.filter(|s| s.is_finite() && *s >= 0.0);
        Ok(seconds.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s)))
    };
    let report =
        ServerReport { started_at: epoch(11)?, replay_paused: row.try_get(12)?, replayed_at: epoch(13)? };
    // A bigint in SQL, unsigned in the control file: the same 64 bits, printed as pg_controldata does.
    let system_id = (row.try_get::<_, i64>(14)? as u64).to_string();
    let pending_restart = pending_restart(client).await?;
    Ok(if in_recovery {
        Live {
            in_recovery,
            position: if replayed > received { replayed } else { received },
            replay: replayed,
            timeline: tli(received_tli).or(tli(checkpoint_tli)),
            receiver: receiver_status,
            receiver_silence,
            server_version,
            standby_names,
            replicas: Vec::new(),
            pending_restart,
            report,
            system_id,
        }
    } else {
        Live {
            in_recovery,
            position: current,
            replay: None,
            timeline: walfile.as_deref().and_then(walfile_timeline),
            receiver: None,
            receiver_silence: None,
            server_version,
            standby_names,
            replicas: replicas(client).await?,
            pending_restart,
            report,
            system_id,
        }
    })
}

/// A primary's replicas, from `pg_stat_replication`.
async fn replicas(client: &Client) -> Result<Vec<ReplicaLink>, tokio_postgres::Error> {
    let mut links = Vec::new();
    for row in client.query(REPLICAS_SQL, &[]).await? {
        let state: Option<String> = row.try_get(1)?;
        let sync_state: Option<String> = row.try_get(2)?;
        links.push(ReplicaLink {
            name: row.try_get(0)?,
            streaming: state.as_deref() == Some("streaming"),
            synchronous: matches!(sync_state.as_deref(), Some("sync" | "quorum")),
            flushed: row.try_get::<_, Option<PgLsn>>(3)?.map(|l| Position::wal(u64::from(l))),
            shown: LinkReport {
                user: row.try_get(4)?,
                address: row.try_get(5)?,
                state: state.unwrap_or_default(),
                sync_state: sync_state.unwrap_or_default(),
                sync_priority: row.try_get(6)?,
            },
        });
    }
    Ok(links)
}

/// The parameters waiting for a restart.
async fn pending_restart(client: &Client) -> Result<Vec<PendingSetting>, tokio_postgres::Error> {
    let rows = client.query(PENDING_RESTART_SQL, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(PendingSetting {
                name: row.try_get(0)?,
                running: row.try_get(1)?,
                configured: row.try_get(2)?,
            })
        })
        .collect()
}

/// The definitions of the parameters among `names` (lowercase) that the server knows, by name.
pub(crate) async fn definitions(
    client: &Client,
    names: &[String],
) -> Result<BTreeMap<String, Definition>, tokio_postgres::Error> {
    let sql = "SELECT name, vartype, unit, min_val::float8, max_val::float8, enumvals \
        FROM pg_settings WHERE name = ANY($1)";
    let rows = client.query(sql, &[&names]).await?;
    rows.iter()
        .map(|row| {
            let definition = Definition {
                vartype: row.try_get(1)?,
                unit: row.try_get(2)?,
                min: row.try_get(3)?,
                max: row.try_get(4)?,
                enumvals: row.try_get::<_, Option<Vec<String>>>(5)?.unwrap_or_default(),
            };
            Ok((row.try_get(0)?, definition))
        })
        .collect()
}

/// The timeline of a WAL file name (its first 8 hex digits).
fn walfile_timeline(name: &str) -> Option<u64> {
    u64::from_str_radix(name.get(..8)?, 16).ok()
}

/// Makes the server re-read its configuration files.
pub(crate) async fn reload(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("SELECT pg_reload_conf()").await
}

/// On a primary, commits a transaction of its own without waiting for any standby (`synchronous_commit`
/// `local`), so that every standby receives new WAL and reports its flush position at once.
pub(crate) async fn nudge_standbys(client: &Client) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute("SET synchronous_commit TO local; SELECT txid_current() WHERE NOT pg_is_in_recovery()")
        .await
}

/// A setting's value, as this session sees it.
pub(crate) async fn setting(client: &Client, name: &str) -> Result<String, tokio_postgres::Error> {
    client.query_one("SELECT current_setting($1)", &[&name]).await?.try_get(0)
}

/// Whether the server is in recovery.
pub(crate) async fn in_recovery(client: &Client) -> Result<bool, tokio_postgres::Error> {
    client.query_one("SELECT pg_is_in_recovery()", &[]).await?.try_get(0)
}

/// A write: a transaction that takes a transaction id, so that its commit is written to the WAL (and, in
/// synchronous mode, waits for the synchronous standbys) as a client's write does.
pub(crate) async fn first_write(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.query_one("SELECT pg_catalog.txid_current()", &[]).await.map(drop)
}

/// Whether WAL replay is paused (at a recovery target with `recovery_target_action: pause`).
pub(crate) async fn replay_paused(client: &Client) -> Result<bool, tokio_postgres::Error> {
    client.query_one("SELECT pg_is_wal_replay_paused()", &[]).await?.try_get(0)
}

/// Turns off, for the current transaction, every setting that would write a statement's text (or its
/// parameters) to the server log or to `pg_stat_statements`; the last only where the module is loaded.
const UNLOGGED: &str = "SET LOCAL log_statement = 'none'; \
    SET LOCAL log_min_duration_statement = -1; SET LOCAL log_min_duration_sample = -1; \
    SET LOCAL log_min_error_statement = 'panic'; \
    SELECT set_config('pg_stat_statements.track_utility', 'off', true) \
    WHERE current_setting('pg_stat_statements.track_utility', true) IS NOT NULL";

/// What a role the agent creates may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoleKind {
    /// Streams WAL and takes base backups.
    Replication,
    /// Runs pg_rewind against this server: a login with the functions it calls (as Patroni grants them).
    Rewind,
}

impl RoleKind {
    /// The role's attributes.
    fn attributes(self) -> &'static str {
        match self {
            RoleKind::Replication => "REPLICATION LOGIN",
            RoleKind::Rewind => "LOGIN",
        }
    }

    /// The functions it may execute (none but PUBLIC's for replication).
    fn functions(self) -> &'static [&'static str] {
        match self {
            RoleKind::Replication => &[],
            RoleKind::Rewind => &[
                "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                "pg_catalog.pg_stat_file(text, boolean)",
                "pg_catalog.pg_read_binary_file(text)",
                "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
            ],
        }
    }
}

/// Creates a role of `kind`, or sets its password and attributes when it exists, and grants it its
/// functions, in a transaction whose statements (the password among them) are neither logged nor tracked
/// ([`UNLOGGED`]).
pub(crate) async fn ensure_role(
    client: &Client,
    role: &Credentials,
    kind: RoleKind,
) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("BEGIN").await?;
    let done = async {
        client.batch_execute(UNLOGGED).await?;
        create_or_alter_role(client, role, kind.attributes()).await?;
        for function in kind.functions() {
            let grant = format!("GRANT EXECUTE ON FUNCTION {function} TO %I");
            client.batch_execute(&server_format(client, &grant, &[&role.username]).await?).await?;
        }
        Ok(())
    }
    .await;
    let end = client.batch_execute(if done.is_ok() { "COMMIT" } else { "ROLLBACK" }).await;
    done.and(end)
}

/// Creates or alters a role with `attributes`, a login and its password.
async fn create_or_alter_role(
    client: &Client,
    role: &Credentials,
    attributes: &str,
) -> Result<(), tokio_postgres::Error> {
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname::text = $1", &[&role.username])
        .await?
        .is_some();
    let verb = if exists { "ALTER" } else { "CREATE" };
    let template = format!("{verb} ROLE %I WITH {attributes} PASSWORD %L");
    let statement = server_format(client, &template, &[&role.username, role.password.expose()]).await?;
    client.batch_execute(&statement).await
}

/// `template` with its `%I` and `%L` filled in by the server's `format`, which quotes names and literals.
async fn server_format(
    client: &Client,
    template: &str,
    args: &[&str],
) -> Result<String, tokio_postgres::Error> {
    let placeholders: Vec<String> = (2..=args.len() + 1).map(|i| format!("${i}::text")).collect();
    let query = format!("SELECT format($1::text, {})", placeholders.join(", "));
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&template];
    params.extend(args.iter().map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync)));
    client.query_one(&query, &params).await?.try_get(0)
}

/// On a member to rewind from: its checkpoint's timeline and, unless it is in recovery, its current WAL
/// file, as one psql row (`2|000000030000000000000005`). See [`timeline_pending`].
pub(crate) const REWIND_SOURCE_TIMELINES: &str =
    "WITH r AS MATERIALIZED (SELECT pg_is_in_recovery() AS rec) \
     SELECT (pg_control_checkpoint()).timeline_id, \
       CASE WHEN r.rec THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END FROM r";

/// Whether a freshly promoted primary, which answered [`REWIND_SOURCE_TIMELINES`] with `row`, still needs
/// the CHECKPOINT that records its new timeline in pg_control (pg_rewind reads the source's timeline from
/// there and would otherwise see nothing to rewind).
pub(crate) fn timeline_pending(row: &str) -> bool {
    let (recorded, walfile) = row.trim().split_once('|').unwrap_or((row.trim(), ""));
    let current = walfile_timeline(walfile);
    current.is_some() && current > recorded.parse::<u64>().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn walfile_names_carry_the_timeline() {
        assert_eq!(super::walfile_timeline("000000020000000000000003"), Some(2));
        assert_eq!(super::walfile_timeline("0000000A"), Some(10));
        assert_eq!(super::walfile_timeline("x"), None);
    }

    #[test]
    fn a_checkpoint_is_pending_while_the_current_timeline_is_newer() {
        assert!(super::timeline_pending("2|000000030000000000000005\n"));
        assert!(!super::timeline_pending("3|000000030000000000000005"));
        assert!(!super::timeline_pending("2|"), "in recovery");
        assert!(!super::timeline_pending(""));
    }
}
