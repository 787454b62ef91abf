//! The `postgresql` section and the search for PostgreSQL's programs.

use super::{scalar, ConfigError, HostPort, PgRole};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The programs `postgresql.bin_dir` must hold.
pub const REQUIRED_BINARIES: [&str; 7] =
    ["postgres", "pg_ctl", "initdb", "pg_basebackup", "pg_rewind", "pg_controldata", "psql"];

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
    /// The password file written for the tools the agent runs (absolute).
    pub pgpass: PathBuf,
    /// The roles the agent uses.
    pub authentication: Authentication,
    /// Server parameters for this member, over the cluster-wide ones (values rendered as strings).
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub parameters: BTreeMap<String, String>,
    /// pg_hba.conf lines; when left out, `bootstrap.pg_hba`.
    #[serde(default)]
    pub pg_hba: Option<Vec<String>>,
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
    /// How replicas are created, in order of preference.
    #[serde(default = "basebackup")]
    pub create_replica_methods: Vec<String>,
    /// The OS user to run PostgreSQL as when the agent runs as root (Vigil's own key).
    #[serde(default)]
    pub os_user: Option<String>,
}

fn basebackup() -> Vec<String> {
    vec!["basebackup".to_string()]
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
    let missing: Vec<&str> = REQUIRED_BINARIES.into_iter().filter(|b| !pg.bin_dir.join(b).exists()).collect();
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
