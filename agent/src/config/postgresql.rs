//! The `postgresql` section and the search for PostgreSQL's programs.

use super::{duration, scalar, CloneMethod, ConfigError, HostPort, InitdbOption, PgRole};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The programs `postgresql.bin_dir` must hold (under their `bin_name`).
pub const REQUIRED_BINARIES: [&str; 7] =
    ["postgres", "pg_ctl", "initdb", "pg_basebackup", "pg_rewind", "pg_controldata", "psql"];

/// Default `pg_ctl_timeout`: Patroni's 60 s.
pub const DEFAULT_PG_CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where Debian and Ubuntu install PostgreSQL (`<root>/<version>/bin`).
pub const DEFAULT_PG_LIB_ROOT: &str = "/usr/lib/postgresql";

/// `postgresql`: this member's PostgreSQL server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresqlConfig {
    /// The address and port to listen on (`*` or a comma-separated host list allowed).
    pub listen: HostPort,
    /// The address other members and clients connect to.
    pub connect_address: HostPort,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// Where PostgreSQL's programs are. When left out, the highest `/usr/lib/postgresql/<v>/bin` that
    /// exists; after loading it is always set.
    #[serde(default)]
    pub bin_dir: PathBuf,
    /// The password file written for the tools the agent runs (absolute); left out, `pgpass` in the home
    /// directory of `os_user` (or of the agent's user), as Patroni's `~/pgpass`.
    #[serde(default)]
    pub pgpass: PathBuf,
    /// The roles the agent uses.
    pub authentication: Authentication,
    /// Server parameters for this member, over the cluster-wide ones (values rendered as strings).
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub parameters: BTreeMap<String, String>,
    /// pg_hba.conf lines, over the dynamic configuration's `postgresql.pg_hba`; when neither is set,
    /// `bootstrap.pg_hba`.
    #[serde(default)]
    pub pg_hba: Option<Vec<String>>,
    /// pg_ident.conf lines, over the dynamic configuration's; when neither is set the file is left alone.
    #[serde(default)]
    pub pg_ident: Option<Vec<String>>,
    /// Recovery settings a replica runs with (`restore_command`, `recovery_min_apply_delay`…), instead
    /// of the dynamic configuration's.
    #[serde(default, deserialize_with = "scalar::optional_string_map")]
    pub recovery_conf: Option<BTreeMap<String, String>>,
    /// Where postgresql.conf, pg_hba.conf and pg_ident.conf live when not in `data_dir` (Debian's
    /// `/etc/postgresql/<version>/main`).
    #[serde(default)]
    pub config_dir: Option<PathBuf>,
    /// A configuration file the generated postgresql.conf includes instead of `postgresql.base.conf`.
    #[serde(default)]
    pub custom_conf: Option<PathBuf>,
    /// The names of PostgreSQL's programs inside `bin_dir`, when not their own.
    #[serde(default)]
    pub bin_name: BinNames,
    /// How long a start or stop may take (`pg_ctl -t`).
    #[serde(default = "pg_ctl_timeout", with = "duration")]
    pub pg_ctl_timeout: Duration,
    /// A command run before every stop of PostgreSQL; its exit status is ignored, and it is stopped
    /// after `pg_ctl_timeout`.
    #[serde(default)]
    pub before_stop: Option<String>,
    /// The agent connects to its server through the socket in `unix_socket_directories` (`true`) or
    /// over TCP (`false`); left out: the socket when there is an absolute directory.
    #[serde(default)]
    pub use_unix_socket: Option<bool>,
    /// Patroni's choice of socket for replication connections to the member's own server. Accepted;
    /// it changes nothing: the agent makes no replication connection to its own server.
    #[serde(default)]
    pub use_unix_socket_repl: bool,
    /// The address of a connection pooler or proxy in front of this server: published in the member
    /// record, informational only.
    #[serde(default)]
    pub proxy_address: Option<HostPort>,
    /// When pg_rewind fails, remove the data directory before re-cloning; `false`: keep it aside.
    #[serde(default)]
    pub remove_data_directory_on_rewind_failure: bool,
    /// When diverged data is not rewound, remove the data directory before re-cloning; `false`: keep
    /// it aside.
    #[serde(default)]
    pub remove_data_directory_on_diverged_timelines: bool,
    /// This member's `use_pg_rewind`, over the dynamic configuration's (see
    /// [`super::DynamicConfig::use_pg_rewind`]).
    #[serde(default)]
    pub use_pg_rewind: Option<bool>,
    /// Commands run on state changes.
    #[serde(default)]
    pub callbacks: Callbacks,
    /// A command run before promotion; a non-zero exit cancels it.
    #[serde(default)]
    pub pre_promote: Option<String>,
    /// Extra pg_basebackup options, as `bootstrap.initdb` writes them (`verbose`, `max-rate: 100M`), as a
    /// list or a mapping (`{max-rate: 100M, checkpoint: spread}`).
    #[serde(default, deserialize_with = "scalar::initdb_options")]
    pub basebackup: Vec<InitdbOption>,
    /// How replicas are created, in order of preference: `basebackup`, or a method with a
    /// `postgresql.<method>` section (see [`CloneMethod`]).
    #[serde(default = "basebackup")]
    pub create_replica_methods: Vec<String>,
    /// `create_replica_methods` with their sections (filled in when the file is read).
    #[serde(skip)]
    pub clone_methods: Vec<CloneMethod>,
    /// The OS user to run PostgreSQL as when the agent runs as root (Vigil's own key).
    #[serde(default)]
    pub os_user: Option<String>,
}

fn pg_ctl_timeout() -> Duration {
    DEFAULT_PG_CTL_TIMEOUT
}

fn basebackup() -> Vec<String> {
    vec!["basebackup".to_string()]
}

/// `postgresql.bin_name`: Patroni's program names inside `bin_dir` (`psql` has none).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinNames {
    /// `pg_ctl`.
    #[serde(default)]
    pub pg_ctl: Option<String>,
    /// `initdb`.
    #[serde(default)]
    pub initdb: Option<String>,
    /// `pg_controldata`.
    #[serde(default)]
    pub pg_controldata: Option<String>,
    /// `pg_basebackup`.
    #[serde(default)]
    pub pg_basebackup: Option<String>,
    /// `postgres`.
    #[serde(default)]
    pub postgres: Option<String>,
    /// `pg_isready` (accepted; the agent does not run it).
    #[serde(default)]
    pub pg_isready: Option<String>,
    /// `pg_rewind`.
    #[serde(default)]
    pub pg_rewind: Option<String>,
}

impl BinNames {
    /// The file name of `program` inside `bin_dir`.
    pub fn of<'a>(&'a self, program: &'a str) -> &'a str {
        let named = match program {
            "pg_ctl" => &self.pg_ctl,
            "initdb" => &self.initdb,
            "pg_controldata" => &self.pg_controldata,
            "pg_basebackup" => &self.pg_basebackup,
            "postgres" => &self.postgres,
            "pg_isready" => &self.pg_isready,
            "pg_rewind" => &self.pg_rewind,
            _ => &None,
        };
        named.as_deref().unwrap_or(program)
    }

    /// The names set, as `(program, name)`.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("pg_ctl", &self.pg_ctl),
            ("initdb", &self.initdb),
            ("pg_controldata", &self.pg_controldata),
            ("pg_basebackup", &self.pg_basebackup),
            ("postgres", &self.postgres),
            ("pg_isready", &self.pg_isready),
            ("pg_rewind", &self.pg_rewind),
        ]
        .into_iter()
        .filter_map(|(program, name)| name.as_deref().map(|n| (program, n)))
    }
}

/// `postgresql.authentication`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// The superuser the agent connects as; psql connects as it to the member it rewinds from (to check
    /// for, and run, the checkpoint pg_rewind needs), and so does pg_rewind unless `rewind` is set.
    pub superuser: PgRole,
    /// The user replicas stream as (the WAL receiver and pg_basebackup).
    pub replication: PgRole,
    /// The role pg_rewind connects as, instead of the superuser: the bootstrap creates it with the
    /// functions pg_rewind needs (PostgreSQL 11 and later).
    #[serde(default)]
    pub rewind: Option<PgRole>,
}

/// `postgresql.callbacks`: a command per event, run with the action, role and scope as arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Callbacks {
    /// After PostgreSQL started.
    #[serde(default)]
    pub on_start: Option<String>,
    /// After PostgreSQL stopped.
    #[serde(default)]
    pub on_stop: Option<String>,
    /// After a restart.
    #[serde(default)]
    pub on_restart: Option<String>,
    /// After a reload.
    #[serde(default)]
    pub on_reload: Option<String>,
    /// After a promotion or demotion.
    #[serde(default)]
    pub on_role_change: Option<String>,
}

impl Callbacks {
    /// Every configured callback as `(event, command)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("on_start", &self.on_start),
            ("on_stop", &self.on_stop),
            ("on_restart", &self.on_restart),
            ("on_reload", &self.on_reload),
            ("on_role_change", &self.on_role_change),
        ]
        .into_iter()
        .filter_map(|(event, cmd)| cmd.as_deref().map(|c| (event, c)))
    }
}

/// The `<root>/<version>/bin` with the highest version (compared numerically: 9.6 < 15 < 16) that exists.
pub fn find_bin_dir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    let version = |name: &str| -> Option<Vec<u64>> { name.split('.').map(|p| p.parse().ok()).collect() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = version(e.file_name().to_str()?)?;
            let bin = e.path().join("bin");
            bin.is_dir().then_some((v, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// Fills in `bin_dir` when left out and checks that it holds [`REQUIRED_BINARIES`].
pub(crate) fn resolve_bin_dir(pg: &mut PostgresqlConfig, lib_root: &Path) -> Result<(), ConfigError> {
    const KEY: &str = "postgresql.bin_dir";
    if pg.bin_dir.as_os_str().is_empty() {
        pg.bin_dir = find_bin_dir(lib_root).ok_or_else(|| {
            ConfigError::invalid(
                KEY,
                format!("is not set and no {}/<version>/bin exists: set it", lib_root.display()),
            )
        })?;
    }
    let names = &pg.bin_name;
    let missing: Vec<&str> =
        REQUIRED_BINARIES.into_iter().map(|b| names.of(b)).filter(|b| !pg.bin_dir.join(b).exists()).collect();
    if !missing.is_empty() {
        return Err(ConfigError::invalid(
            KEY,
            format!(
                "{} lacks {} (it must hold {})",
                pg.bin_dir.display(),
                missing.join(", "),
                REQUIRED_BINARIES.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_highest_version_numerically() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "15", "16", "notaversion"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        std::fs::create_dir_all(root.path().join("17")).unwrap(); // no bin/
        assert_eq!(find_bin_dir(root.path()), Some(root.path().join("16/bin")));
        assert_eq!(find_bin_dir(&root.path().join("absent")), None);
    }

    #[test]
    fn lists_callbacks() {
        let c =
            Callbacks { on_start: Some("a".into()), on_role_change: Some("b".into()), ..Default::default() };
        assert_eq!(c.iter().collect::<Vec<_>>(), [("on_start", "a"), ("on_role_change", "b")]);
    }
}
