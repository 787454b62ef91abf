//! Environment overrides, applied to the YAML tree before it is read, so an overridden value is checked
//! like one from the file. Every key outside `bootstrap` and `tags` that takes a value or a mapping
//! (written `{name: value, …}`) has a variable, named from its path as Patroni names them
//! ([`variable`]):
//!
//! - `VIGIL_` and the path in capitals with `_` for `.`: `VIGIL_RESTAPI_LISTEN` for `restapi.listen`,
//!   `VIGIL_LOG_FILE_NUM` for `log.file_num`, `VIGIL_RAFT_PARTNER_ADDRS` for `raft.partner_addrs`;
//! - without `postgresql.authentication`: `VIGIL_SUPERUSER_PASSWORD`, `VIGIL_REPLICATION_SSLMODE`,
//!   `VIGIL_REWIND_USERNAME`;
//! - without `authentication` elsewhere: `VIGIL_RESTAPI_USERNAME`, `VIGIL_MYSQL_SUPERUSER_PASSWORD`; and
//!   `VIGIL_RESTAPI_READ_USERNAME` for `restapi.read_authentication.username`.
//!
//! Each is also read under Patroni's name, `PATRONI_` for `VIGIL_` (`PATRONI_SCOPE`), when the `VIGIL_`
//! one is not set. Lists are written `a:1,b:2` (or `'a:1','b:2'`, `[a:1, b:2]`), booleans `true` or
//! `false`. A whole file may come in `VIGIL_CONFIGURATION` or `PATRONI_CONFIGURATION`
//! ([`CONFIGURATION_VARS`]). The programs the agent starts inherit none of them ([`withhold`]).

use super::schema::{self, Kind};
use super::{Config, ConfigError};
use serde_norway::{Mapping, Value};
use std::ffi::OsStr;
use std::process::Command;
use std::sync::LazyLock;

/// The prefix of the agent's and the CLI's variables (passwords among them).
pub const PREFIX: &str = "VIGIL_";

/// The prefix of Patroni's names for the same variables, read when the `VIGIL_` one is not set.
pub const PATRONI_PREFIX: &str = "PATRONI_";

/// The variables that hold a whole configuration file, read when no file is given (as Patroni's
/// container images pass it), in order of precedence.
pub const CONFIGURATION_VARS: [&str; 2] = ["VIGIL_CONFIGURATION", "PATRONI_CONFIGURATION"];

/// One variable: its name after the prefix, the key it sets and what the key takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The name without `VIGIL_` or `PATRONI_` (`RESTAPI_LISTEN`).
    pub name: String,
    /// The dotted key (`restapi.listen`).
    pub key: String,
    /// What the key takes.
    pub kind: Kind,
}

/// Every override, from the configuration's keys that take a value or a mapping ([`schema::keys`]).
pub fn overrides() -> &'static [Override] {
    static ALL: LazyLock<Vec<Override>> = LazyLock::new(|| {
        let keys = schema::keys::<Config>();
        let values = keys.into_iter().filter(|(_, kind)| !matches!(kind, Kind::Section(_)));
        let overrides = values.filter_map(|(key, kind)| Some(Override { name: variable(&key)?, key, kind }));
        overrides.collect()
    });
    &ALL
}

/// The variable (without its prefix) of `key`; `None` for the keys that have none: sections, mappings,
/// and what is under `bootstrap` (seeded once into the store) and `tags`.
pub fn variable(key: &str) -> Option<String> {
    let parts: Vec<&str> = key.split('.').collect();
    let name: Vec<&str> = match parts.as_slice() {
        ["bootstrap" | "tags", ..] => return None,
        ["postgresql", "authentication", rest @ ..] => rest.to_vec(),
        [section, "authentication", rest @ ..] => [section].into_iter().chain(rest).copied().collect(),
        // Patroni's PATRONI_POSTGRESQL_BIN_PG_CTL, …, and BIN_IS_READY for pg_isready.
        ["postgresql", "bin_name", "pg_isready"] => vec!["postgresql", "bin", "is_ready"],
        ["postgresql", "bin_name", program] => vec!["postgresql", "bin", program],
        [section, "read_authentication", rest @ ..] => {
            [*section, "read"].into_iter().chain(rest.iter().copied()).collect()
        }
        all => all.to_vec(),
    };
    Some(name.join("_").to_ascii_uppercase())
}

/// Applies every override `env` knows to `root`, each under its `VIGIL_` name or else its `PATRONI_`
/// one; returns the `(key, variable)` pairs applied.
pub(crate) fn apply(
    root: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let mut applied = Vec::new();
    for o in overrides() {
        let [vigil, patroni] = [PREFIX, PATRONI_PREFIX].map(|prefix| format!("{prefix}{}", o.name));
        let Some((var, text)) =
            env(&vigil).map(|t| (vigil, t)).or_else(|| Some((patroni.clone(), env(&patroni)?)))
        else {
            continue;
        };
        let value = match (&o.kind, text.as_str()) {
            (Kind::List, _) => list(&text),
            (Kind::Map, _) => serde_norway::from_str(&text).unwrap_or(Value::String(text)),
            (Kind::Bool, "true" | "false") => Value::Bool(text == "true"),
            (Kind::Number, _) => number(&text),
            _ => Value::String(text),
        };
        set(root, &o.key, value).map_err(|e| e.with_note(&format!(" (needed to apply {var})")))?;
        applied.push((o.key.as_str(), var));
    }
    Ok(applied)
}

/// The `PATRONI_*` variables among `names` that no key reads (Patroni's settings of its other stores,
/// of Citus, of its thread pools…), each with a warning saying so.
pub fn unread_patroni_variables(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let read = |name: &str| {
        CONFIGURATION_VARS.contains(&name)
            || overrides().iter().any(|o| o.name == name[PATRONI_PREFIX.len()..])
    };
    let unread = names.into_iter().filter(|n| n.starts_with(PATRONI_PREFIX) && !read(n));
    unread.map(|name| format!("{name} is not read: Vigil's configuration has no key for it")).collect()
}

/// A number when `text` is one (text that is none stays text, which the key's check refuses).
fn number(text: &str) -> Value {
    let t = text.trim();
    (t.parse::<u64>().map(Value::from).ok())
        .or_else(|| t.parse::<i64>().map(Value::from).ok())
        .or_else(|| t.parse::<f64>().map(Value::from).ok())
        .unwrap_or_else(|| Value::String(text.to_string()))
}

/// Keeps this process's `VIGIL_*` and `PATRONI_*` variables out of `cmd`'s environment: PostgreSQL, its
/// tools and the hooks never see the agent's passwords. Variables set on `cmd` afterwards still reach it.
pub fn withhold(cmd: &mut Command) -> &mut Command {
    withhold_names(cmd, std::env::vars_os().map(|(name, _)| name))
}

/// [`withhold`] for the variables `names`.
fn withhold_names(cmd: &mut Command, names: impl IntoIterator<Item = impl AsRef<OsStr>>) -> &mut Command {
    for name in names {
        let name_bytes = name.as_ref().as_encoded_bytes();
        if [PREFIX, PATRONI_PREFIX].iter().any(|p| name_bytes.starts_with(p.as_bytes())) {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// `a:1, b:2`, `'a:1','b:2'` or `[a:1, b:2]` as a list of strings.
fn list(text: &str) -> Value {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    let items = inner
        .split(',')
        .map(|s| s.trim().trim_matches(|c| c == '\'' || c == '"').trim())
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_string()));
    Value::Sequence(items.collect())
}

/// Sets the dotted `key` in `root`, creating the mappings on the way (a missing or null section becomes
/// an empty mapping).
fn set(root: &mut Value, key: &str, value: Value) -> Result<(), ConfigError> {
    let mut node = root;
    let mut walked = String::new();
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(ConfigError::invalid(walked, "must be a mapping"));
        };
        if i + 1 == parts.len() {
            map.insert(Value::String(part.to_string()), value);
            return Ok(());
        }
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
        node = map.entry(Value::String(part.to_string())).or_insert(Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn sets_nested_keys_and_lists() {
        let mut root: Value = serde_norway::from_str("name: a\npostgresql:\n  listen: x:1\nraft:").unwrap();
        let e = env(&[
            ("VIGIL_NAME", "b"),
            ("VIGIL_SUPERUSER_PASSWORD", "s3cret"),
            ("VIGIL_RAFT_PARTNER_ADDRS", "'h1:1', \"h2:2\",, h3:3"),
        ]);
        let applied = apply(&mut root, &e).unwrap();
        assert_eq!(applied.len(), 3);
        let expected: Value = serde_norway::from_str(
            "name: b\npostgresql: {listen: 'x:1', authentication: {superuser: {password: s3cret}}}\n\
             raft: {partner_addrs: ['h1:1', 'h2:2', 'h3:3']}",
        )
        .unwrap();
        assert_eq!(root, expected);
    }

    #[test]
    fn sets_the_tls_keys_and_reads_a_boolean() {
        let mut root: Value = serde_norway::from_str("name: a").unwrap();
        let e = env(&[
            ("VIGIL_CTL_INSECURE", "true"),
            ("VIGIL_CTL_CACERT", "/etc/vigil/ca.pem"),
            ("VIGIL_RESTAPI_VERIFY_CLIENT", "required"),
        ]);
        assert_eq!(apply(&mut root, &e).unwrap().len(), 3);
        let expected: Value = serde_norway::from_str(
            "name: a\nctl: {insecure: true, cacert: /etc/vigil/ca.pem}\nrestapi: {verify_client: required}",
        )
        .unwrap();
        assert_eq!(root, expected);
        apply(&mut root, &env(&[("VIGIL_CTL_INSECURE", "yes please")])).unwrap();
        assert_eq!(
            root["ctl"]["insecure"],
            Value::String("yes please".into()),
            "left for the check to refuse"
        );
    }

    #[test]
    fn refuses_to_replace_a_scalar_section() {
        let mut root: Value = serde_norway::from_str("postgresql: 5").unwrap();
        let err = apply(&mut root, &env(&[("VIGIL_POSTGRESQL_LISTEN", "h:1")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "postgresql: must be a mapping (needed to apply VIGIL_POSTGRESQL_LISTEN)"
        );
    }

    #[test]
    fn withholds_only_the_vigil_variables() {
        let mut cmd = Command::new("true");
        cmd.env("VIGIL_FENCING_TOKEN", "7");
        withhold_names(&mut cmd, ["VIGIL_SUPERUSER_PASSWORD", "PATH", "VIGILANT"]);
        cmd.env("VIGIL_FENCING_TOKEN", "8");
        let envs: Vec<_> = cmd.get_envs().collect();
        let (token, password) = (OsStr::new("VIGIL_FENCING_TOKEN"), OsStr::new("VIGIL_SUPERUSER_PASSWORD"));
        assert_eq!(envs, [(token, Some(OsStr::new("8"))), (password, None)]);
    }

    #[test]
    fn every_variable_has_one_key_and_patronis_names_are_among_them() {
        let all = overrides();
        let names: std::collections::BTreeSet<&str> = all.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "two keys share a variable");
        // Patroni's ENVIRONMENT.rst, for the sections Vigil has.
        let patroni = "NAME NAMESPACE SCOPE LOG_TYPE LOG_LEVEL LOG_FORMAT LOG_DATEFORMAT LOG_DIR LOG_FILE_NUM \
            LOG_FILE_SIZE RAFT_SELF_ADDR RAFT_BIND_ADDR RAFT_PARTNER_ADDRS RAFT_DATA_DIR RAFT_PASSWORD \
            POSTGRESQL_LISTEN POSTGRESQL_CONNECT_ADDRESS POSTGRESQL_DATA_DIR POSTGRESQL_BIN_DIR POSTGRESQL_PGPASS \
            REPLICATION_USERNAME REPLICATION_PASSWORD REPLICATION_SSLMODE REPLICATION_SSLKEY REPLICATION_SSLPASSWORD \
            REPLICATION_SSLCERT REPLICATION_SSLROOTCERT REPLICATION_SSLCRL REPLICATION_SSLCRLDIR \
            REPLICATION_GSSENCMODE REPLICATION_CHANNEL_BINDING SUPERUSER_USERNAME SUPERUSER_PASSWORD \
            SUPERUSER_SSLMODE SUPERUSER_SSLKEY SUPERUSER_SSLPASSWORD SUPERUSER_SSLCERT SUPERUSER_SSLROOTCERT \
            SUPERUSER_SSLCRL SUPERUSER_SSLCRLDIR SUPERUSER_GSSENCMODE SUPERUSER_CHANNEL_BINDING REWIND_USERNAME \
            REWIND_PASSWORD REWIND_SSLMODE REWIND_SSLKEY REWIND_SSLPASSWORD REWIND_SSLCERT REWIND_SSLROOTCERT \
            REWIND_SSLCRL REWIND_SSLCRLDIR REWIND_GSSENCMODE REWIND_CHANNEL_BINDING RESTAPI_CONNECT_ADDRESS \
            RESTAPI_LISTEN RESTAPI_USERNAME RESTAPI_PASSWORD RESTAPI_CERTFILE RESTAPI_KEYFILE RESTAPI_CAFILE \
            RESTAPI_VERIFY_CLIENT RESTAPI_ALLOWLIST RESTAPI_ALLOWLIST_INCLUDE_MEMBERS CTL_INSECURE CTL_CACERT \
            CTL_CERTFILE CTL_KEYFILE KUBERNETES_NAMESPACE POSTGRESQL_PROXY_ADDRESS POSTGRESQL_CONFIG_DIR \
            POSTGRESQL_BIN_PG_CTL POSTGRESQL_BIN_INITDB POSTGRESQL_BIN_PG_CONTROLDATA POSTGRESQL_BIN_PG_BASEBACKUP \
            POSTGRESQL_BIN_POSTGRES POSTGRESQL_BIN_IS_READY POSTGRESQL_BIN_PG_REWIND CTL_USERNAME CTL_PASSWORD \
            RESTAPI_SERVER_TOKENS RESTAPI_HTTP_EXTRA_HEADERS RESTAPI_HTTPS_EXTRA_HEADERS LOG_LOGGERS";
        let missing: Vec<&str> = patroni.split_whitespace().filter(|n| !names.contains(n)).collect();
        assert!(missing.is_empty(), "no key for PATRONI_{missing:?}");
        let key = |name: &str| all.iter().find(|o| o.name == name).map(|o| o.key.as_str());
        assert_eq!(key("SUPERUSER_SSLMODE"), Some("postgresql.authentication.superuser.sslmode"));
        assert_eq!(key("RESTAPI_READ_PASSWORD"), Some("restapi.read_authentication.password"));
        assert_eq!(key("MYSQL_REPLICATION_USERNAME"), Some("mysql.authentication.replication.username"));
        assert_eq!(key("POSTGRESQL_PARAMETERS"), Some("postgresql.parameters"));
        assert_eq!(key("POSTGRESQL_AUTHENTICATION"), None, "a section has no variable");
        assert_eq!(key("BOOTSTRAP_DCS_TTL"), None);
    }

    #[test]
    fn patroni_variables_no_key_reads_are_named() {
        let names = [
            "PATRONI_SCOPE",
            "PATRONI_ETCD3_HOSTS",
            "PATRONI_CONFIGURATION",
            "VIGIL_API",
            "PATRONI_REWIND_SSLMODE",
        ];
        let warnings = unread_patroni_variables(names.map(String::from));
        assert_eq!(warnings, ["PATRONI_ETCD3_HOSTS is not read: Vigil's configuration has no key for it"]);
    }

    #[test]
    fn list_forms() {
        assert_eq!(list("[a:1,b:2]"), list("a:1, b:2"));
        assert_eq!(list(""), Value::Sequence(vec![]));
    }
}
