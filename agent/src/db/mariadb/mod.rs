//! The MariaDB adapter: [`MariaDb`] implements [`Database`] with MariaDB's own programs
//! (`mariadb-install-db`, `mariadbd`, `mariadb-dump`, `mariadb`) and SQL over mysql_async, on MariaDB
//! 10.11's GTID replication in one domain with `gtid_strict_mode`.
//!
//! The adapter owns the server's option file: before every start it writes it from [`MariaDbSettings`]
//! with the invariants every member keeps (see [`render`]): every server starts read-only and without
//! replication running, and only the agent opens a primary (`SET GLOBAL read_only = 0`) or starts
//! replication. Positions count transactions: the sequence number of the cluster's GTID domain. The term
//! a server has applied is the fencing token in the one-row table `vigil.fence`, written by every new
//! primary before it takes a write and replicated to every member: the branch of history its data is on.
//! A server whose data cannot follow the holder's (errant transactions: the upstream refuses its GTID) is
//! not repaired in place but cloned again.

mod gtid;
mod render;
pub(crate) mod server;
mod sql;

use crate::config::{Config, MysqlPrograms, UserPassword};
use crate::db::{
    logged, DataState, Database, DbError, DbState, Position, ReplicaLink, Role, StopMode, SyncRule, Unit,
    Upstream,
};
use sql::{quote, Session};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_api::Secret;

/// How long `observe` waits for its connection and its queries.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long administrative statements may take to connect.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a promotion waits for the relay log to be applied.
const APPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long fencing by `read_only` and killing the sessions may take before the server is killed instead.
const FENCE_BUDGET: Duration = Duration::from_millis(300);
/// How long `follow` waits for the replication threads to connect before it reports success anyway.
const FOLLOW_CHECK: Duration = Duration::from_secs(3);
/// The upstream refuses the position a replica asks for (GTIDs it does not have: the replica diverged).
const ER_MASTER_FATAL_ERROR_READING_BINLOG: u32 = 1236;
/// The server's pid file, in the data directory.
const PID_FILE: &str = "mysqld.pid";
/// The file in the data directory that names the cluster the data belongs to.
const SYSTEM_ID_FILE: &str = "vigil_system_id";

/// A user name with its password (masked by `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The user name.
    pub username: String,
    /// Its password.
    pub password: Secret,
}

/// Everything the adapter needs to know about its server, taken from the agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MariaDbSettings {
    /// This member's name: its `report_host`, as its upstream lists it.
    pub name: String,
    /// Its `server_id`, unique in the cluster.
    pub server_id: u32,
    /// The cluster's GTID domain (`gtid_domain_id`).
    pub domain: u32,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The server and the tools the adapter runs (`mysql.bin_dir`, or found at load).
    pub programs: MysqlPrograms,
    /// The address to listen on.
    pub listen_host: String,
    /// The port.
    pub port: u16,
    /// The superuser the agent connects as, created at bootstrap.
    pub superuser: Account,
    /// The user replicas connect to their upstream as, created at bootstrap.
    pub replication: Account,
    /// Server parameters written into the option file.
    pub parameters: BTreeMap<String, String>,
    /// The OS user to run the server as, when the agent runs as root.
    pub os_user: Option<String>,
}

impl MariaDbSettings {
    /// The settings of the server `config`'s `mysql` section describes (`None` without one). Its
    /// `server_id` is `mysql.parameters.server_id` when set, else one derived from the member name (the
    /// same at every start); its GTID domain `mysql.parameters.gtid_domain_id`, else 0.
    pub fn from_config(config: &Config) -> Option<MariaDbSettings> {
        let my = config.mysql.as_ref()?;
        let mut parameters = my.parameters.clone();
        let mut number = |name: &str| parameters.remove(name).and_then(|v| v.trim().parse::<u32>().ok());
        let server_id = number("server_id").unwrap_or_else(|| derived_server_id(config.name.as_str()));
        let domain = number("gtid_domain_id").unwrap_or(0);
        let account =
            |a: &UserPassword| Account { username: a.username.clone(), password: a.password.clone() };
        Some(MariaDbSettings {
            name: config.name.to_string(),
            server_id,
            domain,
            data_dir: my.data_dir.clone(),
            programs: my.programs.clone(),
            listen_host: my.listen.host.clone(),
            port: my.listen.port,
            superuser: account(&my.authentication.superuser),
            replication: account(&my.authentication.replication),
            parameters,
            os_user: my.os_user.clone(),
        })
    }

    /// The option file, next to the data directory (`<data_dir>.cnf`).
    pub fn option_file(&self) -> PathBuf {
        self.data_dir.with_extension("cnf")
    }

    /// The server's temporary directory, next to the data directory (`<data_dir>.tmp`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.with_extension("tmp")
    }

    /// The server's Unix socket, in the data directory.
    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("mysqld.sock")
    }

    /// The server's pid file, in the data directory.
    pub fn pid_file(&self) -> PathBuf {
        self.data_dir.join(PID_FILE)
    }

    /// The server's error log, in the data directory.
    pub fn error_log(&self) -> PathBuf {
        self.data_dir.join("mysqld.err")
    }

    /// The base name of the binary and relay logs: the member name, with what is not a letter, a digit
    /// or `_` replaced by `_`.
    pub fn log_basename(&self) -> String {
        self.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
    }
}

/// What changes while the agent runs.
#[derive(Debug, Clone)]
struct Runtime {
    /// How long a replica may hear nothing from its upstream (`slave_net_timeout`).
    upstream_timeout: Duration,
    /// The upstream `follow` configured last.
    upstream: Option<Upstream>,
}

/// A MariaDB server managed by the agent. `observe` may run at any time; the other operations one at a
/// time, except that `stop` and `kill` may fence while another runs.
pub struct MariaDb {
    settings: Arc<MariaDbSettings>,
    runtime: Mutex<Runtime>,
    lifeline: Mutex<Option<crate::db::lifeline::Lifeline>>,
}

impl MariaDb {
    /// An adapter for the server `settings` describe.
    pub fn new(settings: MariaDbSettings) -> MariaDb {
        let runtime = Runtime { upstream_timeout: Duration::from_secs(30), upstream: None };
        MariaDb { settings: Arc::new(settings), runtime: Mutex::new(runtime), lifeline: Mutex::new(None) }
    }

    /// The adapter stops the server when the agent dies, through `lifeline`.
    pub fn with_lifeline(self, lifeline: Option<crate::db::lifeline::Lifeline>) -> MariaDb {
        *self.lifeline.lock().unwrap_or_else(|e| e.into_inner()) = lifeline;
        self
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session as the superuser.
    async fn session(&self, timeout: Duration) -> Result<Session, String> {
        let su = &self.settings.superuser;
        sql::connect(&self.settings.socket(), &su.username, Some(su.password.expose()), timeout).await
    }

    /// A session as the superuser for `action`.
    async fn admin(&self, action: &str) -> Result<Session, DbError> {
        self.session(ADMIN_TIMEOUT).await.map_err(|e| DbError::new(action, e))
    }

    /// Runs `statements` in order in one session for `action`.
    async fn run(&self, action: &str, statements: &[String]) -> Result<(), DbError> {
        let mut session = self.admin(action).await?;
        for statement in statements {
            sql::run(&mut session, statement).await.map_err(|e| DbError::new(action, e))?;
        }
        Ok(())
    }

    /// Starts the server (read-only, replication stopped) if it does not run.
    async fn ensure_running(&self) -> Result<(), DbError> {
        if server::runs(&self.settings) {
            return Ok(());
        }
        let timeout = self.runtime().upstream_timeout;
        server::start(&self.settings, timeout).await
    }

    /// The cluster identity recorded in the data directory; `None` while none is (no data, or data the
    /// bootstrap or a clone did not finish: it is made again).
    fn system_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.settings.data_dir.join(SYSTEM_ID_FILE)).ok()?;
        Some(text.trim().to_owned()).filter(|id| !id.is_empty())
    }

    fn write_system_id(&self, id: &str) -> Result<(), DbError> {
        std::fs::write(self.settings.data_dir.join(SYSTEM_ID_FILE), format!("{id}\n"))
            .map_err(|e| DbError::new("record the cluster's identity", e))
    }

    /// Empties the data directory (the server must be stopped).
    fn empty_data_dir(&self) -> Result<(), DbError> {
        let dir = &self.settings.data_dir;
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(DbError::new("remove data", format!("{}: {e}", dir.display()))),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let removed =
                if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|e| DbError::new("remove data", format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// A fresh data directory with MariaDB's system tables, its server running read-only.
    async fn install_and_start(&self) -> Result<(), DbError> {
        if server::runs(&self.settings) {
            server::kill(&self.settings).await?;
        }
        self.empty_data_dir()?;
        let timeout = self.runtime().upstream_timeout;
        server::install(&self.settings, timeout).await?;
        self.ensure_running().await
    }

    /// The statement that records `token` as the current term in `vigil.fence`.
    fn fence_row(&self, token: u64) -> String {
        format!(
            "INSERT INTO vigil.fence (id, token, holder, server_id, promoted_at) VALUES (1, {token}, {}, \
             @@server_id, NOW(6)) ON DUPLICATE KEY UPDATE token = VALUES(token), holder = VALUES(holder), \
             server_id = VALUES(server_id), promoted_at = VALUES(promoted_at)",
            quote(&self.settings.name)
        )
    }

    async fn bootstrap_now(&self, token: Option<u64>) -> Result<(), DbError> {
        self.install_and_start().await?;
        let mut session = sql::connect(&self.settings.socket(), &installer_account(), None, ADMIN_TIMEOUT)
            .await
            .map_err(|e| DbError::new("bootstrap", e))?;
        let system_id = RandomId::new().to_string();
        let (su, rep) = (&self.settings.superuser, &self.settings.replication);
        let mut statements = Vec::new();
        for host in ["localhost", "%"] {
            let user = format!("{}@{}", quote(&su.username), quote(host));
            statements.push(format!("CREATE USER {user} IDENTIFIED BY {}", quote(su.password.expose())));
            statements.push(format!("GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION"));
        }
        let replicator = format!("{}@'%'", quote(&rep.username));
        statements.push(format!("CREATE USER {replicator} IDENTIFIED BY {}", quote(rep.password.expose())));
        statements.push(format!("GRANT REPLICATION SLAVE ON *.* TO {replicator}"));
        statements.push("CREATE DATABASE vigil".to_owned());
        statements.push(
            "CREATE TABLE vigil.fence (id TINYINT UNSIGNED PRIMARY KEY, token BIGINT UNSIGNED NOT NULL, \
             holder VARCHAR(255) NOT NULL, server_id INT UNSIGNED NOT NULL, promoted_at TIMESTAMP(6) NOT NULL) \
             ENGINE=InnoDB"
                .to_owned(),
        );
        statements.push(
            "CREATE TABLE vigil.cluster (id TINYINT UNSIGNED PRIMARY KEY, system_id VARCHAR(64) NOT NULL) \
             ENGINE=InnoDB"
                .to_owned(),
        );
        statements.push(format!("INSERT INTO vigil.cluster VALUES (1, {})", quote(&system_id)));
        statements.push(self.fence_row(token.unwrap_or(0)));
        statements.push("SET GLOBAL read_only = 0".to_owned());
        for statement in &statements {
            sql::run(&mut session, statement).await.map_err(|e| DbError::new("bootstrap", e))?;
        }
        self.write_system_id(&system_id)
    }

    /// Copies the data from `upstream` with `mariadb-dump` (its GTID position included) into a fresh
    /// server, without logging the load, then stops the server: `follow` starts it as a replica.
    async fn clone_now(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.install_and_start().await?;
        let su = &self.settings.superuser;
        let dump = format!(
            "set -o pipefail; {dump} --host={host} --port={port} --user={user} --all-databases \
             --single-transaction --gtid --master-data=1 --routines --events --triggers --flush-privileges \
             | {client} --socket={socket} --user={installer} --init-command='SET sql_log_bin = 0'",
            dump = shell_word(&self.settings.programs.dump.display().to_string()),
            client = shell_word(&self.settings.programs.client.display().to_string()),
            host = shell_word(&upstream.host),
            port = upstream.port,
            user = shell_word(&su.username),
            socket = shell_word(&self.settings.socket().display().to_string()),
            installer = shell_word(&installer_account()),
        );
        let args: Vec<OsString> = vec!["-c".into(), dump.into()];
        // The password reaches both programs through the environment, never their command lines.
        let mut cmd = tokio::process::Command::new("/bin/bash");
        crate::config::env::withhold(cmd.as_std_mut());
        let out = cmd
            .args(&args)
            .env("MYSQL_PWD", su.password.expose())
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| DbError::new(format!("mariadb-dump from {}", upstream.name), e))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(DbError::new(format!("mariadb-dump from {}", upstream.name), said.trim()));
        }
        let mut session = self.admin("clone").await?;
        let id: Option<String> = mysql_async::prelude::Queryable::query_first(
            &mut session,
            "SELECT system_id FROM vigil.cluster WHERE id = 1",
        )
        .await
        .map_err(|e| DbError::new("clone", format!("read the cluster's identity: {e}")))?;
        let id = id.ok_or_else(|| DbError::new("clone", "the copy has no vigil.cluster row"))?;
        drop(session);
        server::stop(&self.settings).await?;
        self.write_system_id(&id)
    }

    async fn follow_now(&self, upstream: Option<&Upstream>) -> Result<(), DbError> {
        self.ensure_running().await?;
        let mut session = self.admin("follow").await?;
        sql::run(&mut session, "SET GLOBAL read_only = 1").await.map_err(|e| DbError::new("follow", e))?;
        let Some(up) = upstream else {
            // A standby of nobody: apply what was received, fetch nothing more.
            self.runtime().upstream = None;
            return sql::run(&mut session, "STOP SLAVE IO_THREAD")
                .await
                .map_err(|e| DbError::new("follow", e));
        };
        let status = sql::slave_status(&mut session).await.map_err(|e| DbError::new("follow", e))?;
        let same =
            status.as_ref().is_some_and(|s| s.master == (up.host.clone(), up.port) && s.io_running != "No");
        if same {
            self.runtime().upstream = Some(up.clone());
            return Ok(());
        }
        let rep = &self.settings.replication;
        // MASTER_DEMOTE_TO_SLAVE: what this server logged itself counts as replicated, so that the upstream
        // refuses a server with transactions it does not have (error 1236) instead of skipping them.
        let change = format!(
            "CHANGE MASTER TO MASTER_HOST = {}, MASTER_PORT = {}, MASTER_USER = {}, MASTER_PASSWORD = {}, \
             MASTER_USE_GTID = slave_pos, MASTER_DEMOTE_TO_SLAVE = 1, MASTER_CONNECT_RETRY = 1, \
             MASTER_HEARTBEAT_PERIOD = 1",
            quote(&up.host),
            up.port,
            quote(&rep.username),
            quote(rep.password.expose())
        );
        for statement in ["STOP SLAVE", &change, "START SLAVE"] {
            sql::run(&mut session, statement).await.map_err(|e| DbError::new("follow", e))?;
        }
        self.runtime().upstream = Some(up.clone());
        self.check_replication(&mut session, up).await
    }

    /// Waits a moment for the replication threads: an upstream refusing this server's position, or an
    /// SQL thread that cannot apply what it sent, fails the follow (the data diverged).
    async fn check_replication(&self, session: &mut Session, up: &Upstream) -> Result<(), DbError> {
        let deadline = tokio::time::Instant::now() + FOLLOW_CHECK;
        loop {
            let status = sql::slave_status(session).await.map_err(|e| DbError::new("follow", e))?;
            let status = status.unwrap_or_default();
            if status.sql_errno != 0 {
                return Err(DbError::new(format!("follow {}", up.name), status.sql_error));
            }
            if status.io_errno == ER_MASTER_FATAL_ERROR_READING_BINLOG {
                let logged: Option<String> =
                    mysql_async::prelude::Queryable::query_first(session, "SELECT @@global.gtid_binlog_pos")
                        .await
                        .ok()
                        .flatten();
                let why = format!(
                    "diverged: {} refuses this server's position (its binlog ends at {}; transactions {} \
                     lacks are lost when it is cloned again): {}",
                    up.name,
                    logged.unwrap_or_default(),
                    up.name,
                    status.io_error
                );
                return Err(DbError::new(format!("follow {}", up.name), why));
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

    async fn promote_now(&self, token: u64) -> Result<(), DbError> {
        let mut session = self.admin("promote").await?;
        let fail = |e: String| DbError::new("promote", e);
        sql::run(&mut session, "STOP SLAVE IO_THREAD").await.map_err(fail)?;
        self.wait_applied(&mut session).await?;
        for statement in ["STOP SLAVE", "RESET SLAVE ALL", &self.fence_row(token), "SET GLOBAL read_only = 0"]
        {
            sql::run(&mut session, statement).await.map_err(fail)?;
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
            let live = sql::live(session).await.map_err(|e| DbError::new("promote", e))?;
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
                sql::run(session, "START SLAVE SQL_THREAD").await.map_err(|e| DbError::new("promote", e))?;
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

    async fn start_primary_now(&self, token: Option<u64>) -> Result<(), DbError> {
        self.ensure_running().await?;
        let mut statements = vec!["STOP SLAVE".to_owned(), "RESET SLAVE ALL".to_owned()];
        statements.extend(token.map(|t| self.fence_row(t)));
        statements.push("SET GLOBAL read_only = 0".to_owned());
        self.run("start_primary", &statements).await?;
        self.runtime().upstream = None;
        Ok(())
    }

    /// Makes the server read-only and ends every client session, the superuser's included (`read_only`
    /// does not stop accounts with `READ_ONLY ADMIN`); replication threads and the replicas' connections
    /// stay. Killed when that does not finish within [`FENCE_BUDGET`] (a hung server, a lock pile-up).
    async fn fence_now(&self) -> Result<(), DbError> {
        let fence = async {
            let mut session = self.session(FENCE_BUDGET).await?;
            for statement in ["SET SESSION lock_wait_timeout = 1", "SET GLOBAL read_only = 1"] {
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

    async fn observe_now(&self) -> DbState {
        let Some(system_id) = self.system_id() else { return DbState::stopped(DataState::Missing) };
        let data = DataState::Present { system_id, was_primary: false };
        let answer = match self.session(OBSERVE_TIMEOUT).await {
            Ok(mut session) => tokio::time::timeout(OBSERVE_TIMEOUT, sql::live(&mut session)).await,
            Err(e) => Ok(Err(e)),
        };
        let live = match answer {
            Ok(Ok(live)) => live,
            not_live => {
                let mut state = DbState::stopped(data);
                state.starting = server::runs(&self.settings);
                state.hung = state.starting && not_live.is_err();
                return state;
            }
        };
        let domain = self.settings.domain;
        let position = live.position(domain).ok().map(|at| Position::new(Unit::Transactions, at));
        let primary = live.is_primary();
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
            sync_rule: primary.then_some(SyncRule::Off),
            replicas: live
                .replicas
                .iter()
                .map(|name| ReplicaLink {
                    name: name.clone(),
                    streaming: true,
                    synchronous: false,
                    flushed: None,
                    shown: Default::default(),
                })
                .collect(),
            pending_restart: Vec::new(),
        }
    }
}

impl Database for MariaDb {
    fn connection_url(host: &str, port: u16) -> String {
        format!("mysql://{host}:{port}/")
    }

    async fn observe(&self) -> DbState {
        self.observe_now().await
    }

    async fn bootstrap(&self, token: Option<u64>) -> Result<(), DbError> {
        logged(&self.settings.name, "bootstrap", None, self.bootstrap_now(token)).await
    }

    async fn clone_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        logged(&self.settings.name, "clone_from", Some(&upstream.name), self.clone_now(upstream)).await
    }

    async fn repair_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        let why = "MariaDB data is not repaired in place: it is cloned again";
        logged(&self.settings.name, "repair_from", Some(&upstream.name), async {
            Err(DbError::new("repair", why))
        })
        .await
    }

    async fn remove_data(&self) -> Result<(), DbError> {
        logged(&self.settings.name, "remove_data", None, async {
            server::kill(&self.settings).await?;
            self.empty_data_dir()
        })
        .await
    }

    async fn start_primary(&self, token: Option<u64>) -> Result<(), DbError> {
        logged(&self.settings.name, "start_primary", None, self.start_primary_now(token)).await
    }

    async fn follow(&self, upstream: Option<&Upstream>) -> Result<(), DbError> {
        logged(&self.settings.name, "follow", upstream.map(|u| u.name.as_str()), self.follow_now(upstream))
            .await
    }

    async fn stop(&self, mode: StopMode) -> Result<(), DbError> {
        match mode {
            StopMode::Fast => {
                logged(&self.settings.name, "stop_fast", None, server::stop(&self.settings)).await
            }
            StopMode::Immediate => {
                logged(&self.settings.name, "stop_immediate", None, server::kill(&self.settings)).await
            }
        }
    }

    async fn kill(&self) -> Result<(), DbError> {
        logged(&self.settings.name, "kill", None, server::kill(&self.settings)).await
    }

    async fn fence(&self) -> Result<(), DbError> {
        logged(&self.settings.name, "fence", None, self.fence_now()).await
    }

    async fn promote(&self, token: u64) -> Result<(), DbError> {
        logged(&self.settings.name, "promote", None, self.promote_now(token)).await
    }

    async fn retain_for(&self, _members: &[String]) -> Result<(), DbError> {
        // The binary logs are kept by the server's own expiry, for every replica alike.
        Ok(())
    }

    async fn set_sync_rule(&self, rule: &SyncRule) -> Result<(), DbError> {
        match rule {
            SyncRule::Off => Ok(()),
            _ => {
                Err(DbError::new("set the synchronous rule", "semi-synchronous replication is not built yet"))
            }
        }
    }

    async fn set_parameters(&self, _parameters: &BTreeMap<String, String>) -> Result<(), DbError> {
        // The option file is written from the configuration at every start.
        Ok(())
    }

    async fn set_upstream_timeout(&self, timeout: Duration) -> Result<(), DbError> {
        self.runtime().upstream_timeout = timeout;
        if !server::runs(&self.settings) {
            return Ok(());
        }
        let statement = format!("SET GLOBAL slave_net_timeout = {}", timeout.as_secs().max(1));
        self.run("set the upstream timeout", &[statement]).await
    }

    async fn set_use_slots(&self, _use_slots: bool) -> Result<(), DbError> {
        Ok(())
    }

    fn die_with_agent(&self, armed: bool) {
        if let Some(lifeline) = self.lifeline.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            lifeline.arm(armed);
        }
    }

    async fn check_parameters(&self, _parameters: &BTreeMap<String, String>) -> Result<(), String> {
        Ok(())
    }
}

/// A `server_id` for member `name`, from 1 to 2^32 − 1: its FNV-1a hash (stable across restarts and
/// membership changes; `mysql.parameters.server_id` overrides it).
fn derived_server_id(name: &str) -> u32 {
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash.max(1)
}

/// A random 64-bit number, printed in decimal: a new cluster's identity.
struct RandomId(u64);

impl RandomId {
    fn new() -> RandomId {
        RandomId(std::collections::hash_map::RandomState::new().build_hasher().finish())
    }
}

impl std::fmt::Display for RandomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The account `mariadb-install-db` creates for the OS user the agent runs as, authenticated by the
/// socket's peer: `root` when the agent runs as root, else its own user's (`USER`). The agent uses it
/// only on a new server, before the superuser exists.
fn installer_account() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return "root".to_owned();
    }
    std::env::var("USER").unwrap_or_else(|_| "mysql".to_owned())
}

/// `text` as one word for bash: single-quoted.
fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings() -> MariaDbSettings {
        let account = |name: &str| Account { username: name.into(), password: Secret::from("pw".to_owned()) };
        MariaDbSettings {
            name: "node1".into(),
            server_id: 7,
            domain: 0,
            data_dir: "/tmp/v/node1/mysql".into(),
            programs: MysqlPrograms::default(),
            listen_host: "127.0.0.1".into(),
            port: 3306,
            superuser: account("vigil"),
            replication: account("replicator"),
            parameters: BTreeMap::new(),
            os_user: None,
        }
    }

    #[test]
    fn the_files_sit_in_and_beside_the_data_directory() {
        let s = settings();
        assert_eq!(s.option_file(), PathBuf::from("/tmp/v/node1/mysql.cnf"));
        assert_eq!(s.pid_file(), PathBuf::from("/tmp/v/node1/mysql/mysqld.pid"));
        assert_eq!(MariaDbSettings { name: "db-1.x".into(), ..settings() }.log_basename(), "db_1_x");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn server_ids_derive_from_member_names() {
        assert_eq!(derived_server_id("node1"), derived_server_id("node1"));
        assert_ne!(derived_server_id("node1"), derived_server_id("node2"));
        assert!(derived_server_id("") >= 1);
    }
}
