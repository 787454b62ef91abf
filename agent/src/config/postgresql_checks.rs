//! Checks of the `postgresql` keys Patroni shares with Vigil that need more than their types.

use super::validate::no_blank_items;
use super::{ConfigError, InitdbOption, PostgresqlConfig};
use std::collections::BTreeMap;

impl PostgresqlConfig {
    /// Checks the keys Patroni shares with Vigil that need more than their type: paths absolute, program
    /// names plain file names, commands and lines not empty, timeouts within bounds.
    pub(crate) fn validate_patroni_keys(&self) -> Result<(), ConfigError> {
        for (key, path) in [("config_dir", &self.config_dir), ("custom_conf", &self.custom_conf)] {
            if let Some(path) = path.as_ref().filter(|p| !p.is_absolute()) {
                let why = format!("{:?} is not an absolute path", path.display().to_string());
                return Err(ConfigError::invalid(format!("postgresql.{key}"), why));
            }
        }
        if self.config_dir.as_ref() == Some(&self.data_dir) {
            return Err(ConfigError::invalid(
                "postgresql.config_dir",
                "is postgresql.data_dir: leave it out to keep the configuration in the data directory",
            ));
        }
        for (program, name) in self.bin_name.iter() {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                let why = format!("{name:?} is not a file name inside postgresql.bin_dir");
                return Err(ConfigError::invalid(format!("postgresql.bin_name.{program}"), why));
            }
        }
        if self.before_stop.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(ConfigError::invalid("postgresql.before_stop", "is an empty command"));
        }
        if self.pg_ctl_timeout.is_zero() || self.pg_ctl_timeout > vigil_fencing::MAX_TTL {
            let why = format!("{} s is not from 1 s to 1 day", self.pg_ctl_timeout.as_secs_f64());
            return Err(ConfigError::invalid("postgresql.pg_ctl_timeout", why));
        }
        let sockets = self.parameters.get("unix_socket_directories").map_or("", String::as_str);
        if self.use_unix_socket == Some(true) && !sockets.split(',').any(|d| d.trim().starts_with('/')) {
            return Err(ConfigError::invalid(
                "postgresql.use_unix_socket",
                format!(
                    "is true, but postgresql.parameters.unix_socket_directories ({sockets:?}) names no \
                     absolute directory to connect through: set one"
                ),
            ));
        }
        if let Some(proxy) = &self.proxy_address {
            if proxy.is_wildcard() {
                let why = format!("{proxy} is not an address clients can connect to: name this host");
                return Err(ConfigError::invalid("postgresql.proxy_address", why));
            }
        }
        for (i, option) in self.basebackup.iter().enumerate() {
            basebackup_option(option)
                .map_err(|why| ConfigError::invalid(format!("postgresql.basebackup[{i}]"), why))?;
        }
        if let Some(lines) = &self.pg_ident {
            no_blank_items("postgresql.pg_ident", lines)?;
        }
        match &self.recovery_conf {
            Some(settings) => recovery_names("postgresql.recovery_conf", settings),
            None => Ok(()),
        }
    }
}

/// pg_basebackup options the agent sets itself, or that would make a copy it cannot start (Patroni's
/// list, with the slot and the recovery configuration, which the agent writes).
const BASEBACKUP_OWNED: [&str; 14] = [
    "pgdata",
    "format",
    "wal-method",
    "xlog-method",
    "gzip",
    "version",
    "dbname",
    "host",
    "port",
    "username",
    "password",
    "slot",
    "create-slot",
    "write-recovery-conf",
];

/// Refuses a pg_basebackup option the agent owns, and client-side compression (the copy must be a plain
/// data directory; `compress: server-…` is allowed).
fn basebackup_option(option: &InitdbOption) -> Result<(), String> {
    let (name, value) = match option {
        InitdbOption::Flag(name) => (name, None),
        InitdbOption::Value(name, value) => (name, Some(value)),
    };
    let name = name.trim_start_matches('-');
    if BASEBACKUP_OWNED.contains(&name) {
        return Err(format!("--{name} is set by the agent: leave it out"));
    }
    if name == "compress" && !value.is_some_and(|v| v.starts_with("server-")) {
        return Err(format!(
            "--compress={} is client-side: only server-… compression keeps a plain copy",
            value.map_or("", String::as_str)
        ));
    }
    Ok(())
}

/// Recovery settings the agent writes itself: `recovery_conf` may not set them.
pub const OWNED_RECOVERY_SETTINGS: [&str; 3] =
    ["primary_conninfo", "primary_slot_name", "recovery_target_timeline"];

/// Refuses recovery setting names that are no parameter names, and those the agent sets itself.
pub(crate) fn recovery_names(key: &str, settings: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for name in settings.keys() {
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::invalid(format!("{key}.{name}"), "is not a parameter name"));
        }
        if OWNED_RECOVERY_SETTINGS.contains(&lower.as_str()) {
            let why = "is set by the agent for the member it follows; leave it out";
            return Err(ConfigError::invalid(format!("{key}.{name}"), why));
        }
    }
    Ok(())
}
