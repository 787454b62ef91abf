//! The MariaDB adapter: [`MariaDb`] implements [`Database`] with MariaDB's own programs
//! (`mariadb-install-db`, `mariadbd`, `mariadb-backup`, `mbstream`, `mariadb-dump`, `mariadb`) and SQL
//! over mysql_async, on MariaDB 10.11's GTID replication in one domain with `gtid_strict_mode`; and
//! [`BackupSource`](vigil_api::backup::BackupSource), the copies other members clone from.
//!
//! The adapter owns the server's option file: before every start it writes it from [`MariaDbSettings`]
//! with the invariants every member keeps (see [`render`]): every server starts read-only and without
//! replication running, and only the agent opens a primary (`SET GLOBAL read_only = 0`) or starts
//! replication. Positions count transactions: the sequence number of the cluster's GTID domain. The term
//! a server has applied is the fencing token in the one-row table `vigil.fence`, written by every new
//! primary before it takes a write and replicated to every member: the branch of history its data is on.
//! A server whose data cannot follow the holder's (errant transactions: the upstream refuses its GTID) is
//! not repaired in place but cloned again.
//!
//! | module | what it does |
//! |---|---|
//! | `data` | the bootstrap, a clone from another member (by the configured methods), the cluster's identity in the data directory |
//! | `backup` | physical copies with `mariadb-backup` streamed between agents: made here, or received to clone |
//! | `replication` | following an upstream, promotion once the relay log is applied, opening and fencing a primary |
//! | `semi_sync` | which replicas acknowledge the primary's commits, and whether that is the rule set |
//! | `observe` | what the server and its data directory are |
//! | `server` | the `mariadbd` process: install, start, stop, kill |
//! | `render` | the option file |
//! | `dialect` | the words that differ between MariaDB and MySQL 8 |
//! | `sql` | the statements and queries, over the Unix socket (TCP to another member) |
//! | `gtid` | GTID lists and the domain's sequence number |
//! | `upstream` | another member's server as an upstream: its session, the identity checks before following it |
//! | `errant` | the transactions a former primary has that its upstream lacks, reported before a re-clone |

mod backup;
mod data;
mod dialect;
mod errant;
mod gtid;
mod observe;
mod render;
mod replication;
mod semi_sync;
pub(crate) mod server;
mod sql;
mod upstream;

use crate::config::{Config, Flavor, MysqlPrograms, ReplicaMethod, UserPassword};
use crate::db::{logged, Database, DbError, DbState, Divergence, Retained, StopMode, SyncRule, Upstream};
use dialect::Dialect;
use sql::Session;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vigil_api::Secret;

/// How long administrative statements may take to connect.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The server's pid file, in the data directory.
const PID_FILE: &str = "mysqld.pid";

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
    /// The server's flavor: how the adapter words its statements and option file.
    pub flavor: Flavor,
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
    /// How a replica's data is copied, in order of preference (`mysql.create_replica_methods`).
    pub create_replica_methods: Vec<ReplicaMethod>,
    /// How to reach the other members' REST API (for their copies).
    pub api_client_tls: vigil_api::tls::ClientTls,
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
            flavor: my.flavor,
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
            create_replica_methods: my.create_replica_methods.clone(),
            api_client_tls: config.api_client_tls(),
        })
    }

    /// How the adapter words what it says to the server.
    fn dialect(&self) -> Dialect {
        Dialect::of(self.flavor)
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
    /// The synchronous rule set last (see `semi_sync`).
    sync: SyncRule,
    /// Where the replicas that followed this server listen, by member name, as found last.
    replica_addresses: BTreeMap<String, (String, u16)>,
    /// What the data has that an upstream refused, until the data is replaced or follows an upstream.
    diverged: Option<Divergence>,
}

/// A MariaDB server managed by the agent. `observe` may run at any time; the other operations one at a
/// time, except that `stop` and `kill` may fence while another runs.
pub struct MariaDb {
    settings: Arc<MariaDbSettings>,
    runtime: Mutex<Runtime>,
    lifeline: Option<crate::db::lifeline::Lifeline>,
}

impl MariaDb {
    /// An adapter for the server `settings` describe.
    pub fn new(settings: MariaDbSettings) -> MariaDb {
        let runtime = Runtime {
            upstream_timeout: Duration::from_secs(30),
            upstream: None,
            sync: SyncRule::Off,
            replica_addresses: BTreeMap::new(),
            diverged: None,
        };
        MariaDb { settings: Arc::new(settings), runtime: Mutex::new(runtime), lifeline: None }
    }

    /// The adapter stops the server when the agent dies, through `lifeline`.
    pub fn with_lifeline(self, lifeline: Option<crate::db::lifeline::Lifeline>) -> MariaDb {
        Self { lifeline, ..self }
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `op`, which replaces the data: what an upstream refused of the old data is gone with it.
    async fn replacing_data(
        &self,
        op: impl std::future::Future<Output = Result<(), DbError>>,
    ) -> Result<(), DbError> {
        op.await?;
        self.runtime().diverged = None;
        Ok(())
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
        drop(tokio::time::timeout(ADMIN_TIMEOUT, session.disconnect()).await);
        Ok(())
    }

    /// Starts the server (read-only, replication stopped, waiting for no acknowledgement) if it does not
    /// run.
    async fn ensure_running(&self) -> Result<(), DbError> {
        if server::runs(&self.settings) {
            return Ok(());
        }
        let timeout = self.runtime().upstream_timeout;
        server::start(&self.settings, timeout).await
    }
}

impl Database for MariaDb {
    fn connection_url(host: &str, port: u16) -> String {
        format!("mysql://{host}:{port}/")
    }

    async fn observe(&self) -> DbState {
        let state = self.observe_now().await;
        DbState { diverged: self.runtime().diverged.clone(), ..state }
    }

    async fn bootstrap(&self, token: Option<u64>) -> Result<(), DbError> {
        let bootstrap = self.replacing_data(self.bootstrap_now(token));
        logged(&self.settings.name, "bootstrap", None, bootstrap).await
    }

    async fn clone_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        let clone = self.replacing_data(self.clone_now(upstream));
        logged(&self.settings.name, "clone_from", Some(&upstream.name), clone).await
    }

    async fn repair_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        let why = "MariaDB data is not repaired in place: it is cloned again";
        logged(&self.settings.name, "repair_from", Some(&upstream.name), async {
            Err(DbError::new("repair", why))
        })
        .await
    }

    async fn remove_data(&self) -> Result<(), DbError> {
        logged(&self.settings.name, "remove_data", None, self.discard_data()).await
    }

    async fn start_primary(&self, token: Option<u64>) -> Result<(), DbError> {
        logged(&self.settings.name, "start_primary", None, self.start_primary_now(token)).await
    }

    async fn follow(&self, upstream: Option<&Upstream>) -> Result<(), DbError> {
        let follow = async {
            self.follow_now(upstream).await?;
            if upstream.is_some() {
                self.runtime().diverged = None;
            }
            Ok(())
        };
        logged(&self.settings.name, "follow", upstream.map(|u| u.name.as_str()), follow).await
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

    async fn retain_for(&self, retained: &Retained) -> Result<BTreeMap<String, u64>, DbError> {
        // The binary logs are kept by the server's own expiry, for every replica alike.
        if !retained.permanent.is_empty() {
            tracing::warn!(member = %self.settings.name, "slots: replication slots are PostgreSQL's; MariaDB keeps binary logs by its own expiry");
        }
        Ok(BTreeMap::new())
    }

    async fn set_sync_rule(&self, rule: &SyncRule) -> Result<(), DbError> {
        logged(&self.settings.name, "set_sync_rule", None, self.set_sync_rule_now(rule)).await
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
        let statement = self.settings.dialect().upstream_timeout(timeout.as_secs().max(1));
        self.run("set the upstream timeout", &[statement]).await
    }

    async fn set_use_slots(&self, _use_slots: bool) -> Result<(), DbError> {
        Ok(())
    }

    fn die_with_agent(&self, armed: bool) {
        if let Some(lifeline) = &self.lifeline {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn settings() -> MariaDbSettings {
        let account = |name: &str| Account { username: name.into(), password: Secret::from("pw".to_owned()) };
        MariaDbSettings {
            name: "node1".into(),
            flavor: Flavor::Mariadb,
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
            create_replica_methods: vec![ReplicaMethod::MariadbBackup, ReplicaMethod::MariadbDump],
            api_client_tls: Default::default(),
        }
    }

    #[test]
    fn the_files_sit_in_and_beside_the_data_directory() {
        let s = settings();
        assert_eq!(s.option_file(), PathBuf::from("/tmp/v/node1/mysql.cnf"));
        assert_eq!(s.pid_file(), PathBuf::from("/tmp/v/node1/mysql/mysqld.pid"));
        assert_eq!(MariaDbSettings { name: "db-1.x".into(), ..settings() }.log_basename(), "db_1_x");
    }

    #[test]
    fn server_ids_derive_from_member_names() {
        assert_eq!(derived_server_id("node1"), derived_server_id("node1"));
        assert_ne!(derived_server_id("node1"), derived_server_id("node2"));
        assert!(derived_server_id("") >= 1);
    }
}
