//! The `mysql` section (MariaDB and MySQL) and the search for the server's programs.

use super::choice::choice_enum;
use super::{scalar, ConfigError, HostPort, UserPassword};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the programs are looked for, after `$PATH`, when `mysql.bin_dir` is left out (Debian installs
/// the server there and the tools in `/usr/bin`).
pub(crate) const SBIN_DIR: &str = "/usr/sbin";

choice_enum! {
    /// `mysql.flavor`: which server the section describes.
    pub enum Flavor {
        /// MariaDB (`mariadbd`, GTIDs with domains, `gtid_strict_mode`).
        Mariadb = "mariadb",
        /// Oracle MySQL (`mysqld`).
        Mysql = "mysql",
    }
}

choice_enum! {
    /// An item of `mysql.create_replica_methods`: how a replica's data is copied from another member.
    pub enum ReplicaMethod {
        /// A physical copy: `mariadb-backup --stream` served by the other member's agent (`GET /backup`),
        /// extracted with `mbstream` and prepared here.
        MariadbBackup = "mariadb_backup",
        /// A logical copy: `mariadb-dump --gtid` from the other member's server, loaded here.
        MariadbDump = "mariadb_dump",
    }
}

/// `mysql.create_replica_methods` when left out: a physical copy, else a logical one.
fn backup_then_dump() -> Vec<ReplicaMethod> {
    vec![ReplicaMethod::MariadbBackup, ReplicaMethod::MariadbDump]
}

impl Flavor {
    /// The server program, whose presence tells the flavor when `flavor` is left out.
    pub fn server(self) -> &'static str {
        match self {
            Flavor::Mariadb => "mariadbd",
            Flavor::Mysql => "mysqld",
        }
    }

    /// Every program the agent runs for this flavor, the server first (see [`MysqlPrograms`]).
    pub fn programs(self) -> &'static [&'static str] {
        match self {
            Flavor::Mariadb => &["mariadbd", "mariadb-install-db", "mariadb-dump", "mariadb"],
            Flavor::Mysql => &["mysqld", "mysqldump", "mysql"],
        }
    }
}

/// `mysql`: this member's MariaDB or MySQL server.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlConfig {
    /// `flavor` as the file writes it; `None`: detected at load.
    #[serde(default, rename = "flavor")]
    written_flavor: Option<Flavor>,
    /// The server's flavor: `flavor` as written, else detected at load from the server program found
    /// (`mariadbd`: mariadb, else `mysqld`: mysql).
    #[serde(skip, default = "undetected")]
    pub flavor: Flavor,
    /// The address and port to listen on.
    pub listen: HostPort,
    /// The address other members and clients connect to.
    pub connect_address: HostPort,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// The directory holding every program of the flavor (absolute). When left out, each program is
    /// looked for on `$PATH`, then in `/usr/sbin`.
    #[serde(default)]
    pub bin_dir: Option<PathBuf>,
    /// The programs the agent runs, found at load.
    #[serde(skip)]
    pub programs: MysqlPrograms,
    /// How a replica's data is copied, tried in order until one succeeds (Patroni's key).
    #[serde(default = "backup_then_dump")]
    pub create_replica_methods: Vec<ReplicaMethod>,
    /// The accounts the agent uses.
    pub authentication: MysqlAuthentication,
    /// Server variables for this member (values rendered as strings; `-` and `_` alike in names).
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub parameters: BTreeMap<String, String>,
    /// The OS user to run the server as when the agent runs as root.
    #[serde(default)]
    pub os_user: Option<String>,
}

/// The value of `flavor` between reading the file and detecting it (replaced before loading returns).
fn undetected() -> Flavor {
    Flavor::Mariadb
}

/// `mysql.authentication`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlAuthentication {
    /// The account the agent connects as to manage the server.
    pub superuser: UserPassword,
    /// The account replicas replicate as.
    pub replication: UserPassword,
}

/// The programs of a flavor ([`Flavor::programs`]), found at load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MysqlPrograms {
    /// The server: `mariadbd` or `mysqld`.
    pub server: PathBuf,
    /// What creates a data directory: `mariadb-install-db`; `None` for MySQL, whose server does it
    /// (`--initialize-insecure`).
    pub install_db: Option<PathBuf>,
    /// What replicas are cloned with: `mariadb-dump` or `mysqldump`.
    pub dump: PathBuf,
    /// The command-line client the dump is loaded with: `mariadb` or `mysql`.
    pub client: PathBuf,
    /// `mariadb-backup`, when installed: it makes and prepares physical copies.
    pub backup: Option<PathBuf>,
    /// `mbstream`, when installed: it extracts a streamed physical copy.
    pub mbstream: Option<PathBuf>,
}

/// Detects the flavor when left out and finds its programs: in `bin_dir` when set, else each in the first
/// directory of `path` (the value of `$PATH`) then `sbin` (`/usr/sbin`) that holds it.
pub(crate) fn resolve_programs(
    mysql: &mut MysqlConfig,
    path: Option<&str>,
    sbin: &Path,
) -> Result<(), ConfigError> {
    const KEY: &str = "mysql.bin_dir";
    let on_path = path.into_iter().flat_map(|p| p.split(':')).filter(|d| !d.is_empty()).map(PathBuf::from);
    let (dirs, place, hint): (Vec<PathBuf>, String, &str) = match &mysql.bin_dir {
        Some(dir) => {
            (vec![dir.clone()], format!("{} lacks", dir.display()), "set it to the directory that holds them")
        }
        None => (
            on_path.chain([sbin.to_path_buf()]).collect(),
            format!("is not set and $PATH and {} lack", sbin.display()),
            "install them, or set mysql.bin_dir",
        ),
    };
    let find = |name: &str| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file());
    let flavor = match mysql.written_flavor {
        Some(flavor) => flavor,
        None if find(Flavor::Mariadb.server()).is_some() => Flavor::Mariadb,
        None if find(Flavor::Mysql.server()).is_some() => Flavor::Mysql,
        None => return Err(ConfigError::invalid(KEY, format!("{place} both mariadbd and mysqld: {hint}"))),
    };
    let names = flavor.programs();
    let missing: Vec<&str> = names.iter().copied().filter(|name| find(name).is_none()).collect();
    if !missing.is_empty() {
        return Err(ConfigError::invalid(
            KEY,
            format!(
                "{place} {} (mysql.flavor {flavor} needs {}): {hint}",
                missing.join(", "),
                names.join(", ")
            ),
        ));
    }
    // Every name was just found; the default is never taken.
    let found = |name: &str| find(name).unwrap_or_default();
    mysql.flavor = flavor;
    mysql.programs = match flavor {
        Flavor::Mariadb => MysqlPrograms {
            server: found("mariadbd"),
            install_db: Some(found("mariadb-install-db")),
            dump: found("mariadb-dump"),
            client: found("mariadb"),
            backup: find("mariadb-backup"),
            mbstream: find("mbstream"),
        },
        Flavor::Mysql => MysqlPrograms {
            server: found("mysqld"),
            install_db: None,
            dump: found("mysqldump"),
            client: found("mysql"),
            backup: None,
            mbstream: None,
        },
    };
    Ok(())
}
