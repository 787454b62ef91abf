//! The agent's configuration: a YAML file with Patroni's structure (README, "Running an agent"),
//! `VIGIL_*` environment overrides ([`env`](mod@env)), and the dynamic settings shared by the cluster
//! ([`DynamicConfig`]).
//!
//! [`Config::load`] reads the file, applies the environment, deserializes (unknown keys are errors) and
//! validates; every error names the file and the full key path ([`ConfigError`]), and one reading reports
//! them all.

mod addr;
mod choice;
pub mod duration;
mod dynamic;
mod engine;
pub mod env;
mod error;
mod every_error;
mod haproxy;
mod kubernetes;
mod methods;
mod mysql;
mod mysql_parameters;
mod os_user;
mod pg_role;
mod postgresql;
mod postgresql_checks;
mod scalar;
pub mod schema;
mod sections;
mod slots;
mod tags;
pub(crate) mod unsafe_parameters;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;
#[cfg(test)]
mod tests_methods;
#[cfg(test)]
mod tests_mysql;
#[cfg(test)]
mod tests_patroni_keys;

pub use addr::HostPort;
pub use dynamic::{
    DynamicConfig, DynamicPostgresql, StandbyCluster, SynchronousMode, DEFAULT_LOOP_WAIT,
    DEFAULT_MAXIMUM_LAG_ON_FAILOVER, DEFAULT_PRIMARY_START_TIMEOUT, DEFAULT_RETRY_TIMEOUT,
    DEFAULT_SAFETY_MARGIN, DEFAULT_TTL,
};
pub use engine::EngineConfig;
pub use error::ConfigError;
pub use haproxy::{HaproxyConfig, RuntimeApi};
pub use kubernetes::{KubernetesConfig, SERVICE_ACCOUNT_DIR};
pub use methods::{long_arguments, Argument, CloneMethod, CustomBootstrap, CustomMethod, BASEBACKUP, INITDB};
pub use mysql::{Flavor, MysqlAuthentication, MysqlConfig, MysqlPrograms, ReplicaMethod};
pub use pg_role::{ChannelBinding, GssEncMode, PgRole, SslMode};
pub use postgresql::{
    find_bin_dir, Authentication, BinNames, Callbacks, PostgresqlConfig, DEFAULT_PG_CTL_TIMEOUT,
    DEFAULT_PG_LIB_ROOT, REQUIRED_BINARIES,
};
pub use postgresql_checks::OWNED_RECOVERY_SETTINGS;
pub use sections::{
    BootstrapConfig, CtlConfig, InitdbOption, LogConfig, LogLevel, LogType, RaftConfig, RestApiConfig,
    UserPassword, VerifyClient, WatchdogConfig, WatchdogMode,
};
pub use slots::{PermanentSlot, SlotMatcher};
pub use tags::Tags;

use crate::os_user::OsUser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use unsafe_parameters::is_unsafe;
use vigil_dcs::MemberName;

/// The agent's configuration file, read and validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The cluster's name.
    pub scope: String,
    /// The prefix of the cluster's keys, normalized to `/…/` (default `/service/`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// This member's name, unique in the cluster.
    pub name: MemberName,
    /// The REST API.
    pub restapi: RestApiConfig,
    /// The store's Raft group.
    pub raft: RaftConfig,
    /// What the first member uses to create the cluster.
    #[serde(default)]
    pub bootstrap: BootstrapConfig,
    /// This member's PostgreSQL server; a file has this section or `mysql`, not both.
    #[serde(default)]
    pub postgresql: Option<PostgresqlConfig>,
    /// This member's MariaDB or MySQL server; a file has this section or `postgresql`, not both.
    #[serde(default)]
    pub mysql: Option<MysqlConfig>,
    /// What this member says about itself.
    #[serde(default)]
    pub tags: Tags,
    /// The watchdog.
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How the CLI and the agent's calls to its peers speak HTTPS.
    #[serde(default)]
    pub ctl: CtlConfig,
    /// When running in Kubernetes: the pod labels that route clients to the primary.
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// HAProxy's Runtime API, told at once when this member starts or stops taking writes.
    #[serde(default)]
    pub haproxy: Option<HaproxyConfig>,
}

fn default_namespace() -> String {
    vigil_dcs::DEFAULT_NAMESPACE.to_string()
}

/// Where programs left out of the file are looked for.
pub(crate) struct ProgramRoots {
    /// PostgreSQL's `<root>/<version>/bin` ([`DEFAULT_PG_LIB_ROOT`]).
    pub pg_lib_root: PathBuf,
    /// The directory searched after `$PATH` for MariaDB's or MySQL's programs (`/usr/sbin`).
    pub sbin: PathBuf,
}

impl Default for ProgramRoots {
    fn default() -> Self {
        ProgramRoots { pg_lib_root: DEFAULT_PG_LIB_ROOT.into(), sbin: mysql::SBIN_DIR.into() }
    }
}

/// The process environment, for [`Config::load`].
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where an agent's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A YAML file.
    File(PathBuf),
    /// A variable holding the whole file (one of [`env::CONFIGURATION_VARS`]).
    Env(&'static str),
}

impl Source {
    /// `file` when given, else the first of [`env::CONFIGURATION_VARS`] that is set.
    pub fn find(file: Option<PathBuf>) -> Result<Source, String> {
        if let Some(file) = file {
            return Ok(Source::File(file));
        }
        let set = env::CONFIGURATION_VARS.into_iter().find(|var| std::env::var_os(var).is_some());
        set.map(Source::Env).ok_or_else(|| {
            format!("no configuration: give a file (-c FILE) or set {}", env::CONFIGURATION_VARS.join(" or "))
        })
    }

    /// The file, when the configuration is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Source::File(path) => Some(path),
            Source::Env(_) => None,
        }
    }

    /// The YAML text.
    pub fn text(&self) -> Result<String, ConfigError> {
        match self {
            Source::File(path) => std::fs::read_to_string(path)
                .map_err(|source| ConfigError::Read { file: path.clone(), source }),
            Source::Env(var) => {
                std::env::var(var).map_err(|e| ConfigError::invalid("", format!("{var}: {e}")))
            }
        }
    }

    /// Reads and validates the configuration, with the process's environment overrides.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            Source::File(path) => Config::load(path),
            Source::Env(_) => Config::parse(&self.text()?, &process_env, &ProgramRoots::default()),
        }
    }

    /// The configuration as the agent reads it, before its checks: the YAML with the environment's
    /// overrides applied, every password shown as `********`.
    pub fn effective_yaml(&self) -> Result<String, ConfigError> {
        let mut tree = yaml_tree(&self.text()?)?;
        env::apply(&mut tree, &process_env)?;
        hide_passwords(&mut tree);
        serde_norway::to_string(&tree).map_err(|e| ConfigError::Syntax { file: None, message: e.to_string() })
    }
}

/// A commented sample configuration (`vigil agent --generate-sample-config`).
pub const SAMPLE: &str = include_str!("sample.yml");

/// The YAML text as a tree, keys with no value left out (see [`drop_nulls`]).
fn yaml_tree(text: &str) -> Result<serde_norway::Value, ConfigError> {
    let mut tree: serde_norway::Value = serde_norway::from_str(text)
        .map_err(|e| ConfigError::Syntax { file: None, message: e.to_string() })?;
    if tree.is_null() {
        tree = serde_norway::Value::Mapping(Default::default());
    }
    drop_nulls(&mut tree);
    Ok(tree)
}

/// Replaces the value of every key whose name holds `password`.
fn hide_passwords(value: &mut serde_norway::Value) {
    match value {
        serde_norway::Value::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                if key.as_str().is_some_and(|k| k.contains("password")) {
                    *value = serde_norway::Value::String("********".into());
                } else {
                    hide_passwords(value);
                }
            }
        }
        serde_norway::Value::Sequence(items) => items.iter_mut().for_each(hide_passwords),
        _ => {}
    }
}

impl Config {
    /// Reads `path`, applies the `VIGIL_*` (or `PATRONI_*`) environment overrides and validates. Reads the disk only (the
    /// file, and the existence of the server's programs and of the TLS files named).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &process_env)
    }

    /// [`load`](Self::load) with the environment given as a lookup function.
    pub fn load_with_env(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = Source::File(path.to_path_buf()).text()?;
        Config::parse(&text, env, &ProgramRoots::default()).map_err(|e| e.in_file(Some(path)))
    }

    /// Reads a configuration from YAML text with the environment given as a lookup function (tests pass
    /// `&|_| None` or a map lookup).
    pub fn from_yaml_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::parse(text, env, &ProgramRoots::default())
    }

    /// The whole pipeline; `roots` are where programs left out of the file are looked for (and `env`'s
    /// `PATH`).
    pub(crate) fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        roots: &ProgramRoots,
    ) -> Result<Config, ConfigError> {
        let mut tree = yaml_tree(text)?;
        let applied = env::apply(&mut tree, env)?;
        let sections = methods::take(&mut tree);
        let note = |err: ConfigError| {
            let key = err.key().unwrap_or_default().to_string();
            match applied.iter().find(|(k, _)| every_error::is_under(&key, k)) {
                Some((_, var)) => err.with_note(&format!(" (set by {var})")),
                None => err,
            }
        };
        let reading = every_error::read::<Config>(tree, |e| note(ConfigError::from_serde(e)));
        let mut errors = reading.errors;
        let Some(mut config) = reading.value else {
            return Err(ConfigError::all(errors));
        };
        errors.extend(methods::read(&mut config, sections).into_iter().map(note));
        if !reading.lost_sections {
            // A key taken out took its default: what the checks say of it would not be about the file.
            let taken_out: Vec<String> = errors.iter().filter_map(|e| e.key().map(str::to_string)).collect();
            let checked =
                validate::validate(&mut config, roots, env("PATH").as_deref(), env("HOME").as_deref());
            errors.extend(
                checked
                    .into_iter()
                    .filter(|e| {
                        !taken_out.iter().any(|k| every_error::is_under(e.key().unwrap_or_default(), k))
                    })
                    .map(note),
            );
        }
        if !errors.is_empty() {
            return Err(ConfigError::all(errors));
        }
        Ok(config)
    }

    /// What is accepted but worth a warning, one line each: timing fitted to Vigil's safety margin,
    /// conflicting tags.
    pub fn warnings(&self) -> Vec<String> {
        let timing = self.bootstrap.dcs.timing_note().map(|note| format!("bootstrap.dcs: {note}"));
        timing.into_iter().chain(self.tags.conflict()).collect()
    }

    /// This member's database section; `None` for a witness (see [`EngineConfig`]).
    pub fn engine(&self) -> Option<EngineConfig<'_>> {
        match (&self.postgresql, &self.mysql) {
            (Some(pg), _) => Some(EngineConfig::Postgresql(pg)),
            (None, Some(mysql)) => Some(EngineConfig::Mysql(mysql)),
            (None, None) => None,
        }
    }

    /// A witness: no database section. It votes in the Raft group but never holds the lease.
    pub fn is_witness(&self) -> bool {
        self.engine().is_none()
    }

    /// Checks who the database server will run as: as root, `<section>.os_user` must be set; when set it
    /// must exist (looked up through NSS) and not be root.
    pub fn check_os_user(&self, running_as_root: bool) -> Result<(), ConfigError> {
        match self.engine() {
            Some(engine) => os_user::check(engine, running_as_root, OsUser::lookup).map(|_| ()),
            None => Ok(()),
        }
    }

    /// `<section>.os_user`, looked up; `None` when not set.
    pub fn os_user(&self) -> Result<Option<OsUser>, ConfigError> {
        self.engine().map_or(Ok(None), |engine| os_user::check(engine, false, OsUser::lookup))
    }

    /// The REST API's TLS settings; `None`: it serves plain HTTP.
    pub fn api_server_tls(&self) -> Option<vigil_api::tls::ServerTls> {
        let api = &self.restapi;
        Some(vigil_api::tls::ServerTls {
            certfile: api.certfile.clone()?,
            keyfile: api.keyfile.clone(),
            cafile: api.cafile.clone(),
            verify_client: match api.verify_client {
                None | Some(VerifyClient::None) => vigil_api::tls::VerifyClient::None,
                Some(VerifyClient::Optional) => vigil_api::tls::VerifyClient::Optional,
                Some(VerifyClient::Required) => vigil_api::tls::VerifyClient::Required,
            },
        })
    }

    /// How to call the agents' REST API: `ctl`, each file falling back to its `restapi` counterpart
    /// (as patronictl does).
    pub fn api_client_tls(&self) -> vigil_api::tls::ClientTls {
        let api = &self.restapi;
        self.ctl.client_tls(api.cafile.as_ref(), api.certfile.as_ref(), api.keyfile.as_ref())
    }

    /// The REST API's scheme: `https` when it serves TLS.
    pub fn api_scheme(&self) -> &'static str {
        if self.restapi.certfile.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The initial Raft group: `self_addr` and `partner_addrs` sorted, numbered from 1. Every member
    /// lists the same addresses (itself plus the others), so every member derives the same ids.
    pub fn raft_members(&self) -> BTreeMap<u64, String> {
        let mut addrs: Vec<String> = std::iter::once(&self.raft.self_addr)
            .chain(&self.raft.partner_addrs)
            .map(HostPort::to_string)
            .collect();
        addrs.sort();
        addrs.dedup();
        (1..).zip(addrs).collect()
    }

    /// How the members authenticate each other on the Raft port.
    pub fn raft_security(&self) -> vigil_dcs::RaftSecurity {
        let raft = &self.raft;
        let tls = match (&raft.certfile, &raft.cafile) {
            (Some(certfile), Some(cafile)) => Some(vigil_dcs::RaftTls {
                certfile: certfile.clone(),
                keyfile: raft.keyfile.clone(),
                cafile: cafile.clone(),
            }),
            _ => None,
        };
        vigil_dcs::RaftSecurity { tls, password: raft.password.clone() }
    }

    /// Whether this member is in a group of several whose members do not authenticate each other.
    pub fn raft_unauthenticated(&self) -> bool {
        !self.raft.partner_addrs.is_empty() && !self.raft_security().is_enabled()
    }

    /// Whether every Raft address (`self_addr`, `bind_addr`, `partner_addrs`) is a loopback address: a
    /// group on one machine, which others cannot reach.
    pub fn raft_is_loopback(&self) -> bool {
        let raft = &self.raft;
        let mut addrs = std::iter::once(&raft.self_addr).chain(&raft.bind_addr).chain(&raft.partner_addrs);
        addrs.all(HostPort::is_loopback)
    }

    /// This member's Raft id in [`raft_members`](Self::raft_members): its id if it forms the group.
    pub fn raft_node_id(&self) -> u64 {
        let me = self.raft.self_addr.to_string();
        self.raft_members().into_iter().find(|(_, a)| *a == me).map_or(1, |(id, _)| id)
    }
}

/// The server parameters a member runs with: the dynamic configuration's (`postgresql.parameters` in the
/// store) overlaid with its own file's `postgresql.parameters`. Those that run commands or load code come
/// from the file only, however `dynamic` was obtained (issue 13).
pub fn server_parameters(
    dynamic: &DynamicConfig,
    local: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let cluster_wide = dynamic.postgresql.parameters.iter().filter(|(name, _)| !is_unsafe(name));
    let mut parameters: BTreeMap<String, String> =
        cluster_wide.map(|(k, v)| (k.clone(), v.clone())).collect();
    parameters.extend(local.iter().map(|(k, v)| (k.clone(), v.clone())));
    parameters
}

/// The parameters of `new` whose value differs from `old`'s (names new to `old` included): the values a
/// change sets.
pub fn changed_parameters(
    new: &BTreeMap<String, String>,
    old: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    new.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Removes `key:` entries with no value, so they mean "left out" (and take their defaults) as in Patroni.
fn drop_nulls(value: &mut serde_norway::Value) {
    match value {
        serde_norway::Value::Mapping(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_norway::Value::Sequence(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
