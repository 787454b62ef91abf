//! Environment overrides, applied to the YAML tree before it is read, so an overridden value is checked
//! like one from the file. Each variable is read as `VIGIL_*` or, when that is not set, under Patroni's
//! name: the same with `PATRONI_` (`PATRONI_SCOPE`, `PATRONI_SUPERUSER_PASSWORD`, …). The programs the
//! agent starts inherit neither ([`withhold`]). A whole file may come in `VIGIL_CONFIGURATION` or
//! `PATRONI_CONFIGURATION` ([`CONFIGURATION_VARS`]).
//!
//! | Variable | Key |
//! |---|---|
//! | `VIGIL_NAME` | `name` |
//! | `VIGIL_SCOPE` | `scope` |
//! | `VIGIL_NAMESPACE` | `namespace` |
//! | `VIGIL_LOG_LEVEL` | `log.level` |
//! | `VIGIL_LOG_TYPE` | `log.type` (`plain` or `json`) |
//! | `VIGIL_LOG_FORMAT`, `VIGIL_LOG_DATEFORMAT` | `log.format`, `log.dateformat` |
//! | `VIGIL_LOG_DIR`, `VIGIL_LOG_FILE_NUM`, `VIGIL_LOG_FILE_SIZE` | `log.dir`, `log.file_num`, `log.file_size` |
//! | `VIGIL_RESTAPI_LISTEN` | `restapi.listen` |
//! | `VIGIL_RESTAPI_CONNECT_ADDRESS` | `restapi.connect_address` |
//! | `VIGIL_RESTAPI_USERNAME` | `restapi.authentication.username` |
//! | `VIGIL_RESTAPI_PASSWORD` | `restapi.authentication.password` |
//! | `VIGIL_RESTAPI_READ_USERNAME` | `restapi.read_authentication.username` |
//! | `VIGIL_RESTAPI_READ_PASSWORD` | `restapi.read_authentication.password` |
//! | `VIGIL_RESTAPI_CERTFILE` | `restapi.certfile` |
//! | `VIGIL_RESTAPI_KEYFILE` | `restapi.keyfile` |
//! | `VIGIL_RESTAPI_CAFILE` | `restapi.cafile` |
//! | `VIGIL_RESTAPI_VERIFY_CLIENT` | `restapi.verify_client` |
//! | `VIGIL_RESTAPI_ALLOWLIST` | `restapi.allowlist` (comma-separated) |
//! | `VIGIL_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS` | `restapi.allowlist_include_members` (`true` or `false`) |
//! | `VIGIL_RESTAPI_INSECURE` | `restapi.insecure` (`true` or `false`) |
//! | `VIGIL_CTL_INSECURE` | `ctl.insecure` (`true` or `false`) |
//! | `VIGIL_CTL_CACERT` | `ctl.cacert` |
//! | `VIGIL_CTL_CERTFILE` | `ctl.certfile` |
//! | `VIGIL_CTL_KEYFILE` | `ctl.keyfile` |
//! | `VIGIL_RAFT_DATA_DIR` | `raft.data_dir` |
//! | `VIGIL_RAFT_SELF_ADDR`, `VIGIL_RAFT_BIND_ADDR` | `raft.self_addr`, `raft.bind_addr` |
//! | `VIGIL_RAFT_PARTNER_ADDRS` | `raft.partner_addrs` (comma-separated; `'a:1','b:2'` as Patroni also works) |
//! | `VIGIL_RAFT_JOIN` | `raft.join` |
//! | `VIGIL_RAFT_CERTFILE`, `VIGIL_RAFT_KEYFILE`, `VIGIL_RAFT_CAFILE` | `raft.certfile`, `raft.keyfile`, `raft.cafile` |
//! | `VIGIL_RAFT_PASSWORD` | `raft.password` |
//! | `VIGIL_RAFT_INSECURE` | `raft.insecure` (`true` or `false`) |
//! | `VIGIL_POSTGRESQL_LISTEN` | `postgresql.listen` |
//! | `VIGIL_POSTGRESQL_CONNECT_ADDRESS` | `postgresql.connect_address` |
//! | `VIGIL_POSTGRESQL_DATA_DIR` | `postgresql.data_dir` |
//! | `VIGIL_POSTGRESQL_BIN_DIR` | `postgresql.bin_dir` |
//! | `VIGIL_POSTGRESQL_PGPASS` | `postgresql.pgpass` |
//! | `VIGIL_POSTGRESQL_OS_USER` | `postgresql.os_user` |
//! | `VIGIL_KUBERNETES_NAMESPACE` | `kubernetes.namespace` |
//! | `VIGIL_KUBERNETES_POD_NAME` | `kubernetes.pod_name` |
//! | `VIGIL_KUBERNETES_API_URL` | `kubernetes.api_url` |
//! | `VIGIL_MYSQL_LISTEN` | `mysql.listen` |
//! | `VIGIL_MYSQL_CONNECT_ADDRESS` | `mysql.connect_address` |
//! | `VIGIL_MYSQL_DATA_DIR` | `mysql.data_dir` |
//! | `VIGIL_MYSQL_BIN_DIR` | `mysql.bin_dir` |
//! | `VIGIL_MYSQL_OS_USER` | `mysql.os_user` |
//! | `VIGIL_MYSQL_SUPERUSER_USERNAME`, `VIGIL_MYSQL_SUPERUSER_PASSWORD` | `mysql.authentication.superuser.username`, `.password` |
//! | `VIGIL_MYSQL_REPLICATION_USERNAME`, `VIGIL_MYSQL_REPLICATION_PASSWORD` | `mysql.authentication.replication.username`, `.password` |
//! | `VIGIL_SUPERUSER_USERNAME` | `postgresql.authentication.superuser.username` |
//! | `VIGIL_SUPERUSER_PASSWORD` | `postgresql.authentication.superuser.password` |
//! | `VIGIL_REPLICATION_USERNAME` | `postgresql.authentication.replication.username` |
//! | `VIGIL_REPLICATION_PASSWORD` | `postgresql.authentication.replication.password` |
//! | `VIGIL_SUPERUSER_SSLMODE` | `postgresql.authentication.superuser.sslmode` |
//! | `VIGIL_SUPERUSER_SSLCERT` | `postgresql.authentication.superuser.sslcert` |
//! | `VIGIL_SUPERUSER_SSLKEY` | `postgresql.authentication.superuser.sslkey` |
//! | `VIGIL_SUPERUSER_SSLPASSWORD` | `postgresql.authentication.superuser.sslpassword` |
//! | `VIGIL_SUPERUSER_SSLROOTCERT` | `postgresql.authentication.superuser.sslrootcert` |
//! | `VIGIL_SUPERUSER_SSLCRL` | `postgresql.authentication.superuser.sslcrl` |
//! | `VIGIL_SUPERUSER_SSLCRLDIR` | `postgresql.authentication.superuser.sslcrldir` |
//! | `VIGIL_SUPERUSER_GSSENCMODE` | `postgresql.authentication.superuser.gssencmode` |
//! | `VIGIL_SUPERUSER_CHANNEL_BINDING` | `postgresql.authentication.superuser.channel_binding` |
//! | `VIGIL_REPLICATION_SSLMODE` | `postgresql.authentication.replication.sslmode` |
//! | `VIGIL_REPLICATION_SSLCERT` | `postgresql.authentication.replication.sslcert` |
//! | `VIGIL_REPLICATION_SSLKEY` | `postgresql.authentication.replication.sslkey` |
//! | `VIGIL_REPLICATION_SSLPASSWORD` | `postgresql.authentication.replication.sslpassword` |
//! | `VIGIL_REPLICATION_SSLROOTCERT` | `postgresql.authentication.replication.sslrootcert` |
//! | `VIGIL_REPLICATION_SSLCRL` | `postgresql.authentication.replication.sslcrl` |
//! | `VIGIL_REPLICATION_SSLCRLDIR` | `postgresql.authentication.replication.sslcrldir` |
//! | `VIGIL_REPLICATION_GSSENCMODE` | `postgresql.authentication.replication.gssencmode` |
//! | `VIGIL_REPLICATION_CHANNEL_BINDING` | `postgresql.authentication.replication.channel_binding` |
//! | `VIGIL_REWIND_USERNAME`, `VIGIL_REWIND_PASSWORD`, `VIGIL_REWIND_SSL*`, … | `postgresql.authentication.rewind.*`, as the replication ones |

use super::ConfigError;
use serde_norway::{Mapping, Value};
use std::ffi::OsStr;
use std::process::Command;

/// The prefix of the agent's and the CLI's variables (passwords among them).
pub const PREFIX: &str = "VIGIL_";

/// The prefix of Patroni's names for the same variables, read when the `VIGIL_` one is not set.
pub const PATRONI_PREFIX: &str = "PATRONI_";

/// The variables that hold a whole configuration file, read when no file is given (as Patroni's
/// container images pass it), in order of precedence.
pub const CONFIGURATION_VARS: [&str; 2] = ["VIGIL_CONFIGURATION", "PATRONI_CONFIGURATION"];

/// Every override: `(variable, dotted key)`.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("VIGIL_NAME", "name"),
    ("VIGIL_SCOPE", "scope"),
    ("VIGIL_NAMESPACE", "namespace"),
    ("VIGIL_LOG_LEVEL", "log.level"),
    ("VIGIL_LOG_TYPE", "log.type"),
    ("VIGIL_LOG_FORMAT", "log.format"),
    ("VIGIL_LOG_DATEFORMAT", "log.dateformat"),
    ("VIGIL_LOG_DIR", "log.dir"),
    ("VIGIL_LOG_FILE_NUM", "log.file_num"),
    ("VIGIL_LOG_FILE_SIZE", "log.file_size"),
    ("VIGIL_RESTAPI_LISTEN", "restapi.listen"),
    ("VIGIL_RESTAPI_CONNECT_ADDRESS", "restapi.connect_address"),
    ("VIGIL_RESTAPI_USERNAME", "restapi.authentication.username"),
    ("VIGIL_RESTAPI_PASSWORD", "restapi.authentication.password"),
    ("VIGIL_RESTAPI_READ_USERNAME", "restapi.read_authentication.username"),
    ("VIGIL_RESTAPI_READ_PASSWORD", "restapi.read_authentication.password"),
    ("VIGIL_RESTAPI_CERTFILE", "restapi.certfile"),
    ("VIGIL_RESTAPI_KEYFILE", "restapi.keyfile"),
    ("VIGIL_RESTAPI_CAFILE", "restapi.cafile"),
    ("VIGIL_RESTAPI_VERIFY_CLIENT", "restapi.verify_client"),
    ("VIGIL_RESTAPI_ALLOWLIST", "restapi.allowlist"),
    ("VIGIL_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS", "restapi.allowlist_include_members"),
    ("VIGIL_RESTAPI_INSECURE", "restapi.insecure"),
    ("VIGIL_CTL_INSECURE", "ctl.insecure"),
    ("VIGIL_CTL_CACERT", "ctl.cacert"),
    ("VIGIL_CTL_CERTFILE", "ctl.certfile"),
    ("VIGIL_CTL_KEYFILE", "ctl.keyfile"),
    ("VIGIL_RAFT_DATA_DIR", "raft.data_dir"),
    ("VIGIL_RAFT_SELF_ADDR", "raft.self_addr"),
    ("VIGIL_RAFT_BIND_ADDR", "raft.bind_addr"),
    ("VIGIL_RAFT_PARTNER_ADDRS", "raft.partner_addrs"),
    ("VIGIL_RAFT_JOIN", "raft.join"),
    ("VIGIL_RAFT_CERTFILE", "raft.certfile"),
    ("VIGIL_RAFT_KEYFILE", "raft.keyfile"),
    ("VIGIL_RAFT_CAFILE", "raft.cafile"),
    ("VIGIL_RAFT_PASSWORD", "raft.password"),
    ("VIGIL_RAFT_INSECURE", "raft.insecure"),
    ("VIGIL_POSTGRESQL_LISTEN", "postgresql.listen"),
    ("VIGIL_POSTGRESQL_CONNECT_ADDRESS", "postgresql.connect_address"),
    ("VIGIL_POSTGRESQL_DATA_DIR", "postgresql.data_dir"),
    ("VIGIL_POSTGRESQL_BIN_DIR", "postgresql.bin_dir"),
    ("VIGIL_POSTGRESQL_PGPASS", "postgresql.pgpass"),
    ("VIGIL_POSTGRESQL_OS_USER", "postgresql.os_user"),
    ("VIGIL_KUBERNETES_NAMESPACE", "kubernetes.namespace"),
    ("VIGIL_KUBERNETES_POD_NAME", "kubernetes.pod_name"),
    ("VIGIL_KUBERNETES_API_URL", "kubernetes.api_url"),
    ("VIGIL_MYSQL_LISTEN", "mysql.listen"),
    ("VIGIL_MYSQL_CONNECT_ADDRESS", "mysql.connect_address"),
    ("VIGIL_MYSQL_DATA_DIR", "mysql.data_dir"),
    ("VIGIL_MYSQL_BIN_DIR", "mysql.bin_dir"),
    ("VIGIL_MYSQL_OS_USER", "mysql.os_user"),
    ("VIGIL_MYSQL_SUPERUSER_USERNAME", "mysql.authentication.superuser.username"),
    ("VIGIL_MYSQL_SUPERUSER_PASSWORD", "mysql.authentication.superuser.password"),
    ("VIGIL_MYSQL_REPLICATION_USERNAME", "mysql.authentication.replication.username"),
    ("VIGIL_MYSQL_REPLICATION_PASSWORD", "mysql.authentication.replication.password"),
    ("VIGIL_SUPERUSER_USERNAME", "postgresql.authentication.superuser.username"),
    ("VIGIL_SUPERUSER_PASSWORD", "postgresql.authentication.superuser.password"),
    ("VIGIL_REPLICATION_USERNAME", "postgresql.authentication.replication.username"),
    ("VIGIL_REPLICATION_PASSWORD", "postgresql.authentication.replication.password"),
    ("VIGIL_SUPERUSER_SSLMODE", "postgresql.authentication.superuser.sslmode"),
    ("VIGIL_SUPERUSER_SSLCERT", "postgresql.authentication.superuser.sslcert"),
    ("VIGIL_SUPERUSER_SSLKEY", "postgresql.authentication.superuser.sslkey"),
    ("VIGIL_SUPERUSER_SSLPASSWORD", "postgresql.authentication.superuser.sslpassword"),
    ("VIGIL_SUPERUSER_SSLROOTCERT", "postgresql.authentication.superuser.sslrootcert"),
    ("VIGIL_SUPERUSER_SSLCRL", "postgresql.authentication.superuser.sslcrl"),
    ("VIGIL_SUPERUSER_SSLCRLDIR", "postgresql.authentication.superuser.sslcrldir"),
    ("VIGIL_SUPERUSER_GSSENCMODE", "postgresql.authentication.superuser.gssencmode"),
    ("VIGIL_SUPERUSER_CHANNEL_BINDING", "postgresql.authentication.superuser.channel_binding"),
    ("VIGIL_REPLICATION_SSLMODE", "postgresql.authentication.replication.sslmode"),
    ("VIGIL_REPLICATION_SSLCERT", "postgresql.authentication.replication.sslcert"),
    ("VIGIL_REPLICATION_SSLKEY", "postgresql.authentication.replication.sslkey"),
    ("VIGIL_REPLICATION_SSLPASSWORD", "postgresql.authentication.replication.sslpassword"),
    ("VIGIL_REPLICATION_SSLROOTCERT", "postgresql.authentication.replication.sslrootcert"),
    ("VIGIL_REPLICATION_SSLCRL", "postgresql.authentication.replication.sslcrl"),
    ("VIGIL_REPLICATION_SSLCRLDIR", "postgresql.authentication.replication.sslcrldir"),
    ("VIGIL_REPLICATION_GSSENCMODE", "postgresql.authentication.replication.gssencmode"),
    ("VIGIL_REPLICATION_CHANNEL_BINDING", "postgresql.authentication.replication.channel_binding"),
    ("VIGIL_REWIND_USERNAME", "postgresql.authentication.rewind.username"),
    ("VIGIL_REWIND_PASSWORD", "postgresql.authentication.rewind.password"),
    ("VIGIL_REWIND_SSLMODE", "postgresql.authentication.rewind.sslmode"),
    ("VIGIL_REWIND_SSLCERT", "postgresql.authentication.rewind.sslcert"),
    ("VIGIL_REWIND_SSLKEY", "postgresql.authentication.rewind.sslkey"),
    ("VIGIL_REWIND_SSLPASSWORD", "postgresql.authentication.rewind.sslpassword"),
    ("VIGIL_REWIND_SSLROOTCERT", "postgresql.authentication.rewind.sslrootcert"),
    ("VIGIL_REWIND_SSLCRL", "postgresql.authentication.rewind.sslcrl"),
    ("VIGIL_REWIND_SSLCRLDIR", "postgresql.authentication.rewind.sslcrldir"),
    ("VIGIL_REWIND_GSSENCMODE", "postgresql.authentication.rewind.gssencmode"),
    ("VIGIL_REWIND_CHANNEL_BINDING", "postgresql.authentication.rewind.channel_binding"),
];

/// The keys that take a list.
const LIST_KEYS: &[&str] = &["raft.partner_addrs", "restapi.allowlist"];
/// The keys that take a number (text that is none stays text, which the key's check refuses).
const NUMBER_KEYS: &[&str] = &["log.file_num", "log.file_size"];
/// The keys that take `true` or `false` (anything else stays text, which the key's check refuses).
const BOOL_KEYS: &[&str] =
    &["ctl.insecure", "restapi.allowlist_include_members", "restapi.insecure", "raft.insecure"];

/// Applies every override `env` knows to `root`, each under its `VIGIL_` name or else its `PATRONI_`
/// one; returns the `(key, variable)` pairs applied.
pub(crate) fn apply(
    root: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let mut applied = Vec::new();
    for &(vigil, key) in ENV_OVERRIDES {
        let patroni = format!("{PATRONI_PREFIX}{}", &vigil[PREFIX.len()..]);
        let found = env(vigil)
            .map(|text| (vigil.to_string(), text))
            .or_else(|| Some((patroni.clone(), env(&patroni)?)));
        if let Some((var, text)) = found {
            let value = match text.as_str() {
                _ if LIST_KEYS.contains(&key) => list(&text),
                "true" | "false" if BOOL_KEYS.contains(&key) => Value::Bool(text == "true"),
                _ if NUMBER_KEYS.contains(&key) => {
                    text.trim().parse::<u64>().map_or(Value::String(text), Value::from)
                }
                _ => Value::String(text),
            };
            set(root, key, value).map_err(|e| e.with_note(&format!(" (needed to apply {var})")))?;
            applied.push((key, var));
        }
    }
    Ok(applied)
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
    fn list_forms() {
        assert_eq!(list("[a:1,b:2]"), list("a:1, b:2"));
        assert_eq!(list(""), Value::Sequence(vec![]));
    }
}
