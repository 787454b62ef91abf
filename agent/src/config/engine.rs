//! [`EngineConfig`]: the database section a file chose, `postgresql` or `mysql`, with what engine-neutral
//! code reads from either.

use super::{HostPort, MysqlConfig, PostgresqlConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// This member's database section ([`super::Config::engine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineConfig<'a> {
    /// `postgresql`.
    Postgresql(&'a PostgresqlConfig),
    /// `mysql` (MariaDB or MySQL).
    Mysql(&'a MysqlConfig),
}

impl<'a> EngineConfig<'a> {
    /// The section's key: `postgresql` or `mysql`.
    pub fn section(self) -> &'static str {
        match self {
            EngineConfig::Postgresql(_) => "postgresql",
            EngineConfig::Mysql(_) => "mysql",
        }
    }

    /// The address other members and clients connect to.
    pub fn connect_address(self) -> &'a HostPort {
        match self {
            EngineConfig::Postgresql(pg) => &pg.connect_address,
            EngineConfig::Mysql(mysql) => &mysql.connect_address,
        }
    }

    /// The data directory.
    pub fn data_dir(self) -> &'a Path {
        match self {
            EngineConfig::Postgresql(pg) => &pg.data_dir,
            EngineConfig::Mysql(mysql) => &mysql.data_dir,
        }
    }

    /// This member's own server parameters (`<section>.parameters`).
    pub fn parameters(self) -> &'a BTreeMap<String, String> {
        match self {
            EngineConfig::Postgresql(pg) => &pg.parameters,
            EngineConfig::Mysql(mysql) => &mysql.parameters,
        }
    }

    /// The OS user the server runs as when the agent runs as root (`<section>.os_user`).
    pub fn os_user(self) -> Option<&'a str> {
        match self {
            EngineConfig::Postgresql(pg) => pg.os_user.as_deref(),
            EngineConfig::Mysql(mysql) => mysql.os_user.as_deref(),
        }
    }
}
