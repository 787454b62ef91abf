//! The PostgreSQL adapter: [`Postgres`] implements [`Database`] with PostgreSQL's own tools (initdb, pg_ctl,
//! pg_basebackup, pg_rewind, pg_controldata), run as the configured OS user, and SQL over tokio-postgres.
//!
//! The adapter owns the server's configuration: before every start it writes postgresql.conf (including
//! the base configuration first), pg_hba.conf, pg_ident.conf (when configured) and
//! standby.signal from [`PostgresSettings`], in `config_dir` or the data directory, and drops per-node
//! settings from postgresql.auto.conf, so what pg_basebackup and pg_rewind copy from another member never
//! takes effect. The agent connects to its own server as the superuser with its password, over the first
//! `unix_socket_directories` entry (TCP when there is none, or with `use_unix_socket: false`); pg_hba.conf
//! gets one line for that ahead of the configured ones. It never connects to another
//! member itself: libpq does, in PostgreSQL's programs, with the role's TLS options ([`conninfo`]).

mod cluster_wide;
mod conf_files;
mod conninfo;
mod controldata;
mod files;
pub(crate) mod kill;
mod liveness;
mod methods;
mod observe;
mod ops;
mod parameter_check;
mod render;
mod set_aside;
mod slots;
mod sql;
mod standby_names;
mod stop;
mod tools;

pub use cluster_wide::{InForce, OwnFiles};
pub use conninfo::PeerOptions;
pub use render::slot_name;

pub use crate::config::InitdbOption;
use crate::config::{
    server_parameters, BinNames, CloneMethod, Config, CustomBootstrap, DynamicConfig, PgRole,
};
use crate::db::{DataState, Database, DbError, DbState, Retained, StopMode, SyncRule, Upstream};
use render::{Conf, Runtime};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tools::Tools;
use vigil_api::Secret;

/// A user name with its password (masked by `Debug`) and how to connect as it to other members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The role name.
    pub username: String,
    /// Its password.
    pub password: Secret,
    /// libpq's TLS and GSSAPI options for connections as this role to other members (the agent's own
    /// connection to its server, over the socket or loopback, does not use them).
    pub peer_options: PeerOptions,
}

/// Everything the adapter needs to know about its server, taken from the agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    /// The cluster's name (`scope`), passed to the replica and bootstrap methods.
    pub scope: String,
    /// This member's name: its `application_name` upstream, and (sanitized) its replication slot's name.
    pub name: String,
    /// The data directory (`postgresql.data_dir`).
    pub data_dir: PathBuf,
    /// Where `postgres`, `pg_ctl`, `initdb`, `pg_basebackup`, `pg_rewind` and `pg_controldata` are.
    pub bin_dir: PathBuf,
    /// The address to listen on (`postgresql.listen`, host part; `*` or a list is allowed).
    pub listen_host: String,
    /// The port to listen on.
    pub port: u16,
    /// The host other members and clients connect to (`postgresql.connect_address`, host part).
    pub connect_host: String,
    /// The superuser (`postgresql.authentication.superuser`).
    pub superuser: Credentials,
    /// The replication user (`postgresql.authentication.replication`).
    pub replication: Credentials,
    /// The user pg_rewind connects as (`postgresql.authentication.rewind`); `None`: the superuser.
    pub rewind: Option<Credentials>,
    /// Server parameters at the agent's start (`bootstrap.dcs.postgresql.parameters`, or the store's dynamic
    /// ones, overlaid with `postgresql.parameters`); later changes come through `set_parameters`, except
    /// for `unix_socket_directories`, through which the agent connects.
    pub parameters: BTreeMap<String, String>,
    /// The member's own pg_hba, pg_ident and recovery settings (see [`OwnFiles`]).
    pub own_files: OwnFiles,
    /// Those in force at the agent's start; later changes of the dynamic configuration come through
    /// `set_cluster_config`.
    pub files: InForce,
    /// Where postgresql.conf, pg_hba.conf and pg_ident.conf live (`postgresql.config_dir`); `None`: the
    /// data directory.
    pub config_dir: Option<PathBuf>,
    /// The file postgresql.conf includes instead of postgresql.base.conf (`postgresql.custom_conf`).
    pub custom_conf: Option<PathBuf>,
    /// The programs' names inside `bin_dir` (`postgresql.bin_name`).
    pub bin_name: BinNames,
    /// How long `pg_ctl` may wait for a start or a fast stop (`postgresql.pg_ctl_timeout`).
    pub pg_ctl_timeout: Duration,
    /// A command run before every stop (`postgresql.before_stop`).
    pub before_stop: Option<String>,
    /// The agent connects over the socket (`true`) or TCP (`false`); `None`: the socket when there is
    /// one (`postgresql.use_unix_socket`).
    pub use_unix_socket: Option<bool>,
    /// initdb options (`bootstrap.initdb`).
    pub initdb: Vec<InitdbOption>,
    /// Extra pg_basebackup options (`postgresql.basebackup`).
    pub basebackup: Vec<InitdbOption>,
    /// How replicas are created, in order (`postgresql.create_replica_methods`).
    pub clone_methods: Vec<CloneMethod>,
    /// The bootstrap method when not initdb (`bootstrap.method`).
    pub custom_bootstrap: Option<CustomBootstrap>,
    /// Run after a bootstrap with a connection string to the new primary (`bootstrap.post_bootstrap`).
    pub post_bootstrap: Option<String>,
    /// The password file the adapter writes for the tools it runs (`postgresql.pgpass`).
    pub pgpass: PathBuf,
    /// The OS user to run PostgreSQL and its tools as, when the agent runs as root.
    pub os_user: Option<String>,
    /// `tags.nostream`: as a replica, take WAL from the archive only (`restore_command`), never stream.
    pub nostream: bool,
}

impl PostgresSettings {
    /// The settings of the server `config` describes, under the `dynamic` configuration: parameters are the
    /// dynamic ones overlaid with `postgresql.parameters`; pg_hba is `postgresql.pg_hba`, else
    /// `bootstrap.pg_hba` (see [`OwnFiles`]). `None` when `config` has no `postgresql` section.
    pub fn from_config(config: &Config, dynamic: &DynamicConfig) -> Option<PostgresSettings> {
        let pg = config.postgresql.as_ref()?;
        let parameters = server_parameters(dynamic, &pg.parameters);
        let own_files = OwnFiles::from_config(config);
        let credentials = |r: &PgRole| Credentials {
            username: r.username.clone(),
            password: r.password.clone(),
            peer_options: PeerOptions(r.libpq_options()),
        };
        Some(PostgresSettings {
            scope: config.scope.clone(),
            name: config.name.to_string(),
            data_dir: pg.data_dir.clone(),
            bin_dir: pg.bin_dir.clone(),
            listen_host: pg.listen.host.clone(),
            port: pg.listen.port,
            connect_host: pg.connect_address.host.clone(),
            superuser: credentials(&pg.authentication.superuser),
            replication: credentials(&pg.authentication.replication),
            rewind: pg.authentication.rewind.as_ref().map(credentials),
            parameters,
            own_files: own_files.clone(),
            files: own_files.in_force(&dynamic.postgresql),
            config_dir: pg.config_dir.clone(),
            custom_conf: pg.custom_conf.clone(),
            bin_name: pg.bin_name.clone(),
            pg_ctl_timeout: pg.pg_ctl_timeout,
            before_stop: pg.before_stop.clone(),
            use_unix_socket: pg.use_unix_socket,
            initdb: config.bootstrap.initdb.clone(),
            basebackup: pg.basebackup.clone(),
            clone_methods: pg.clone_methods.clone(),
            custom_bootstrap: config.bootstrap.custom.clone(),
            post_bootstrap: config.bootstrap.post_bootstrap().map(str::to_owned),
            pgpass: pg.pgpass.clone(),
            os_user: pg.os_user.clone(),
            nostream: config.tags.nostream,
        })
    }
}

/// A PostgreSQL server managed by the agent. `observe` may run at any time; the other operations are meant
/// to run one at a time (the HA loop performs one action at a time), except that `stop` may be called to
/// fence while another runs.
pub struct Postgres {
    settings: Arc<PostgresSettings>,
    tools: Tools,
    /// What the configuration was written for last (`None`: not since the agent started).
    conf: Mutex<Option<Conf>>,
    /// The settings changed while the server runs, written into every configuration.
    runtime: Mutex<Runtime>,
    /// The session `observe` keeps with the server between looks (`None`: none open).
    observer: Mutex<Option<sql::Session>>,
    /// The watcher that stops the server if the agent dies.
    lifeline: Option<crate::db::lifeline::Lifeline>,
    /// When each unwanted physical slot was first missed (a primary keeps it `member_slots_ttl`).
    slot_gone_since: Mutex<BTreeMap<String, std::time::Instant>>,
    /// How long a fast stop of a primary may take before it is killed (`primary_stop_timeout`, in
    /// synchronous mode only).
    primary_stop_timeout: Mutex<Option<Duration>>,
}

impl Postgres {
    /// An adapter for the server described by `settings` (relative paths are taken from the current directory).
    pub fn new(settings: PostgresSettings) -> Postgres {
        let mut settings = settings;
        let config_dir = settings.config_dir.iter_mut();
        for path in [&mut settings.data_dir, &mut settings.bin_dir, &mut settings.pgpass]
            .into_iter()
            .chain(config_dir)
        {
            if let Ok(absolute) = std::path::absolute(&*path) {
                *path = absolute;
            }
        }
        let tools = Tools::new(&settings);
        let runtime = Mutex::new(Runtime::starting(&settings));
        let lifeline = None;
        let slot_gone_since = Mutex::default();
        Postgres {
            settings: Arc::new(settings),
            tools,
            conf: Mutex::new(None),
            runtime,
            observer: Mutex::new(None),
            lifeline,
            slot_gone_since,
            primary_stop_timeout: Mutex::new(None),
        }
    }

    /// Records `token`, if any, before the server starts as a primary.
    async fn record_token(&self, token: Option<u64>) -> Result<(), DbError> {
        match token {
            Some(token) => self.set_fencing_token_now(token).await,
            None => Ok(()),
        }
    }

    /// The adapter stops the server when the agent dies, through `lifeline` (see
    /// [`crate::db::lifeline`]).
    pub fn with_lifeline(self, lifeline: Option<crate::db::lifeline::Lifeline>) -> Postgres {
        Self { lifeline, ..self }
    }

    fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    fn configured(&self) -> Option<Conf> {
        self.conf.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_configured(&self, conf: Option<Conf>) {
        *self.conf.lock().unwrap_or_else(|e| e.into_inner()) = conf;
    }

    fn runtime(&self) -> std::sync::MutexGuard<'_, Runtime> {
        self.runtime.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The member the configuration written last streams from.
    fn configured_upstream(&self) -> Option<String> {
        match self.configured() {
            Some(Conf::Standby(Some(up))) => Some(up.name),
            _ => None,
        }
    }

    /// Runs `op` and logs its outcome in one line.
    async fn logged(
        &self,
        action: &'static str,
        upstream: Option<&str>,
        op: impl Future<Output = Result<(), DbError>>,
    ) -> Result<(), DbError> {
        crate::db::logged(&self.settings.name, action, upstream, op).await
    }
}

impl Database for Postgres {
    fn connection_url(host: &str, port: u16) -> String {
        format!("postgres://{host}:{port}/postgres")
    }

    async fn observe(&self) -> DbState {
        self.observe_now().await
    }

    async fn bootstrap(&self, token: Option<u64>) -> Result<(), DbError> {
        self.record_token(token).await?;
        self.logged("bootstrap", None, self.bootstrap_now()).await
    }

    async fn clone_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.logged("clone_from", Some(&upstream.name), self.clone_now(Some(upstream))).await
    }

    fn restores_without_primary(&self) -> bool {
        self.settings.clone_methods.iter().any(CloneMethod::no_leader)
    }

    async fn restore_without_primary(&self) -> Result<(), DbError> {
        self.logged("restore_without_primary", None, self.clone_now(None)).await
    }

    async fn repair_from(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.logged("repair_from", Some(&upstream.name), self.rewind_now(upstream)).await
    }

    async fn remove_data(&self) -> Result<(), DbError> {
        self.logged("remove_data", None, self.remove_data_now()).await
    }

    async fn set_data_aside(&self) -> Result<(), DbError> {
        self.logged("set_data_aside", None, self.set_data_aside_now()).await
    }

    async fn start_primary(&self, token: Option<u64>) -> Result<(), DbError> {
        self.record_token(token).await?;
        self.logged("start_primary", None, self.start_primary_now()).await
    }

    async fn follow(&self, upstream: Option<&Upstream>) -> Result<(), DbError> {
        self.logged("follow", upstream.map(|u| u.name.as_str()), self.follow_now(upstream)).await
    }

    async fn stop(&self, mode: StopMode) -> Result<(), DbError> {
        let action = match mode {
            StopMode::Fast => "stop_fast",
            StopMode::Immediate => "stop_immediate",
        };
        self.logged(action, None, self.stop_now(mode)).await
    }

    async fn kill(&self) -> Result<(), DbError> {
        self.logged("kill", None, self.kill_now()).await
    }

    async fn promote(&self, token: u64) -> Result<(), DbError> {
        self.set_fencing_token_now(token).await?;
        self.logged("promote", None, self.promote_now()).await
    }

    async fn first_write(&self) -> Result<(), DbError> {
        self.logged("first_write", None, self.first_write_now()).await
    }

    async fn set_fencing_token(&self, token: u64) -> Result<(), DbError> {
        self.logged("set_fencing_token", None, self.set_fencing_token_now(token)).await
    }

    async fn set_sync_rule(&self, rule: &SyncRule) -> Result<(), DbError> {
        self.set_sync_rule_now(rule).await
    }

    async fn retain_for(&self, retained: &Retained) -> Result<BTreeMap<String, u64>, DbError> {
        self.keep_slots_now(retained).await
    }

    async fn set_parameters(&self, parameters: &BTreeMap<String, String>) -> Result<(), DbError> {
        self.set_parameters_now(parameters).await
    }

    async fn set_upstream_timeout(&self, timeout: Duration) -> Result<(), DbError> {
        self.set_upstream_timeout_now(timeout).await
    }

    async fn set_use_slots(&self, use_slots: bool) -> Result<(), DbError> {
        self.set_use_slots_now(use_slots).await
    }

    async fn set_cluster_config(&self, dynamic: &DynamicConfig) -> Result<(), DbError> {
        self.set_cluster_config_now(dynamic).await
    }

    fn die_with_agent(&self, armed: bool) {
        if let Some(lifeline) = &self.lifeline {
            lifeline.arm(armed);
        }
    }

    async fn check_parameters(&self, parameters: &BTreeMap<String, String>) -> Result<(), String> {
        let invalid: Vec<String> =
            self.invalid_parameters(parameters).await.into_iter().map(|(_, e)| e).collect();
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(invalid.join("; "))
        }
    }
}

/// The data state when `pg_controldata` cannot be read although a database is there: unknown identity, and
/// treated as a former primary (a needless rewind is harmless, following a diverged copy is not).
fn unreadable_data() -> DataState {
    DataState::Present { system_id: String::new(), was_primary: true }
}
