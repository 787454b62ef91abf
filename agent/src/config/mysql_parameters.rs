//! `mysql.parameters` against the replication invariants the MariaDB adapter relies on: binary logs on,
//! in row format, replicas logging what they apply, strict GTID order, valid server and domain ids; and
//! the variables the agent sets itself (read-only state, replication start, where the server listens
//! and keeps its files).
//!
//! Names are read as the server reads option files: in any case, `-` and `_` alike, `loose-` ignored,
//! and `skip-`, `disable-` or `enable-` before a variable turning it off or on (`skip-log-bin`).

use super::ConfigError;
use std::collections::BTreeMap;

/// What a parameter may be set to.
enum Rule {
    /// A boolean that must be on, and why.
    On(&'static str),
    /// A value that must not be off (`log_bin` may also name the logs), and why.
    NotOff(&'static str),
    /// `ROW`, in any case.
    Row,
    /// An integer in this range.
    Integer(u64, u64),
    /// Set by the agent: where from, or what for.
    Owned(&'static str),
}

/// The rule for variable `name` (normalized: lowercase, `_` only), if it has one.
fn rule(name: &str) -> Option<Rule> {
    const REPLICA_LOGS: &str = "a replica logs what it applies, so that once promoted it serves the others";
    const LISTEN: &str = "from mysql.listen";
    const DATA_DIR: &str = "from mysql.data_dir";
    Some(match name {
        "log_slave_updates" | "log_replica_updates" => Rule::On(REPLICA_LOGS),
        "gtid_strict_mode" => {
            Rule::On("replicas must apply each domain's transactions in order, without gaps")
        }
        "log_bin" => Rule::NotOff("replicas read the primary's binary log"),
        "binlog_format" => Rule::Row,
        "server_id" => Rule::Integer(1, u32::MAX.into()),
        "gtid_domain_id" => Rule::Integer(0, u32::MAX.into()),
        "read_only" | "super_read_only" => Rule::Owned("(read-only on replicas, writable on the primary)"),
        "skip_slave_start" | "skip_replica_start" => Rule::Owned("(it starts replication itself)"),
        "port" | "bind_address" => Rule::Owned(LISTEN),
        _ if name.starts_with("rpl_semi_sync_") => {
            Rule::Owned("from bootstrap.dcs.synchronous_mode (semi-synchronous replication)")
        }
        "socket" | "datadir" | "pid_file" => Rule::Owned(DATA_DIR),
        _ => return None,
    })
}

/// Checks every entry of `mysql.parameters`; the error names the key as written.
pub(crate) fn check(parameters: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in parameters {
        check_one(name, value)
            .map_err(|why| ConfigError::invalid(format!("mysql.parameters.{name}"), why))?;
    }
    Ok(())
}

/// Why `name = value` breaks an invariant, if it does.
fn check_one(name: &str, value: &str) -> Result<(), String> {
    let Some(Setting { variable, rule, value, shown }) = setting(name, value) else { return Ok(()) };
    let lower = value.to_ascii_lowercase();
    let on = matches!(lower.as_str(), "on" | "1" | "true");
    let off = matches!(lower.as_str(), "off" | "0" | "false");
    let integer_in = |min, max| {
        value.bytes().all(|b| b.is_ascii_digit())
            && value.parse().is_ok_and(|n: u64| (min..=max).contains(&n))
    };
    match rule {
        Rule::On(why) if !on => Err(format!("{shown}: {variable} must be on ({why})")),
        Rule::NotOff(why) if off => Err(format!("{shown}: {variable} must not be off ({why})")),
        Rule::Row if lower != "row" => {
            Err(format!("{shown}: {variable} must be ROW (replicas apply the primary's row changes exactly)"))
        }
        Rule::Integer(min, max) if !integer_in(min, max) => {
            Err(format!("{shown}: {variable} must be an integer from {min} to {max}"))
        }
        Rule::Owned(by) => Err(format!("is set by the agent {by}: leave it out")),
        _ => Ok(()),
    }
}

/// What a parameter sets, when a rule applies to it.
struct Setting {
    /// The variable, normalized.
    variable: String,
    rule: Rule,
    /// The value it gets (`skip-x` gives `off`).
    value: String,
    /// How the error shows the value: as written, or what the prefix does.
    shown: String,
}

/// The variable `name = value` sets and its rule; `None`: no rule applies.
fn setting(name: &str, value: &str) -> Option<Setting> {
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    let name = name.strip_prefix("loose_").unwrap_or(&name);
    if let Some(rule) = rule(name) {
        let (variable, shown) = (name.to_owned(), format!("{value:?}"));
        return Some(Setting { variable, rule, value: value.trim().to_owned(), shown });
    }
    let prefixes = [("skip_", "off"), ("disable_", "off"), ("enable_", "on")];
    let (variable, word) = prefixes.into_iter().find_map(|(p, word)| Some((name.strip_prefix(p)?, word)))?;
    let shown = format!("turns {variable} {word}");
    Some(Setting { variable: variable.to_owned(), rule: rule(variable)?, value: word.to_owned(), shown })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(name: &str, value: &str) -> String {
        check_one(name, value).expect_err(name)
    }

    #[test]
    fn replication_needs_are_kept_in_any_spelling() {
        for (name, value) in [
            ("log_slave_updates", "off"),
            ("log-slave-updates", "0"),
            ("Log_Replica_Updates", "FALSE"),
            ("loose-log-slave-updates", "off"),
            ("skip-log-slave-updates", ""),
            ("gtid_strict_mode", "OFF"),
            ("gtid-strict-mode", "maybe"),
            ("log_bin", "off"),
            ("skip_log_bin", "1"),
            ("disable-log-bin", ""),
            ("binlog_format", "MIXED"),
            ("binlog-format", "statement"),
            ("server_id", "0"),
            ("server-id", "4294967296"),
            ("server_id", "-1"),
            ("server_id", "+1"),
            ("server_id", "one"),
            ("gtid_domain_id", "4294967296"),
            ("gtid_domain_id", ""),
        ] {
            assert!(check_one(name, value).is_err(), "{name} = {value:?} accepted");
        }
        assert_eq!(err("log-slave-updates", "off"), "\"off\": log_slave_updates must be on (a replica logs what it applies, so that once promoted it serves the others)");
        assert_eq!(
            err("skip-log-bin", ""),
            "turns log_bin off: log_bin must not be off (replicas read the primary's binary log)"
        );
        assert_eq!(
            err("binlog_format", "mixed"),
            "\"mixed\": binlog_format must be ROW (replicas apply the primary's row changes exactly)"
        );
        assert_eq!(err("server_id", "0"), "\"0\": server_id must be an integer from 1 to 4294967295");
    }

    #[test]
    fn the_agents_own_variables_are_refused_with_where_they_come_from() {
        for name in
            ["read_only", "super-read-only", "skip_slave_start", "skip-replica-start", "loose_read_only"]
        {
            assert!(err(name, "on").starts_with("is set by the agent ("), "{name}");
        }
        for name in ["port", "bind_address", "bind-address", "BIND-ADDRESS"] {
            assert_eq!(err(name, "x"), "is set by the agent from mysql.listen: leave it out");
        }
        for name in ["socket", "datadir", "pid_file", "pid-file"] {
            assert_eq!(err(name, "x"), "is set by the agent from mysql.data_dir: leave it out");
        }
    }

    #[test]
    fn values_that_keep_the_invariants_pass() {
        for (name, value) in [
            ("log_slave_updates", "ON"),
            ("log-slave-updates", "1"),
            ("enable-log-slave-updates", ""),
            ("gtid_strict_mode", "true"),
            ("log_bin", "mariadb-bin"),
            ("log-bin", "on"),
            ("binlog_format", "Row"),
            ("server_id", "1"),
            ("server-id", "4294967295"),
            ("gtid_domain_id", "0"),
            ("innodb_buffer_pool_size", "64M"),
            ("skip_name_resolve", "on"),
            ("skip-networking", "0"),
        ] {
            assert_eq!(check_one(name, value), Ok(()), "{name} = {value:?}");
        }
    }

    #[test]
    fn the_error_names_the_key_as_written() {
        let parameters = BTreeMap::from([
            ("innodb_buffer_pool_size".to_owned(), "64M".to_owned()),
            ("Binlog-Format".to_owned(), "STATEMENT".to_owned()),
        ]);
        assert_eq!(check(&parameters).unwrap_err().key(), Some("mysql.parameters.Binlog-Format"));
    }
}
