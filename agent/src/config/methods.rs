//! Patroni's methods of the operator's own: `postgresql.create_replica_methods` with a `postgresql.<method>`
//! section for each that is not built in, and `bootstrap.method` with its `bootstrap.<method>` section. The
//! sections are named by the operator, so they are taken out of the tree before the rest is read (where
//! they would be unknown keys) and read here, their errors keyed as in the file. `postgresql.basebackup`
//! and `bootstrap.initdb` also take Patroni's mapping form (`{max-rate: 100M, checkpoint: fast}`).

use super::{scalar, Config, ConfigError};
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;

/// The built-in replica method: pg_basebackup from the upstream.
pub const BASEBACKUP: &str = "basebackup";
/// The built-in bootstrap method.
pub const INITDB: &str = "initdb";

/// What the agent passes to a replica method itself (Patroni's `--scope`, `--role`, `--datadir`,
/// `--connstring`): a section may not set them.
const CLONE_PARAMS: [&str; 4] = ["scope", "role", "datadir", "connstring"];
/// What the agent passes to a bootstrap method itself.
const BOOTSTRAP_PARAMS: [&str; 2] = ["scope", "datadir"];

/// One way of creating a replica, in the order of `postgresql.create_replica_methods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneMethod {
    /// pg_basebackup from the upstream, with the `postgresql.basebackup` options.
    Basebackup,
    /// The operator's command (`postgresql.<name>`).
    Custom {
        /// The method's name in `create_replica_methods`.
        name: String,
        /// Its section.
        method: CustomMethod,
    },
}

impl CloneMethod {
    /// Whether it may run with no primary (`no_leader`; never pg_basebackup).
    pub fn no_leader(&self) -> bool {
        matches!(self, CloneMethod::Custom { method, .. } if method.no_leader)
    }

    /// The method's name, as listed.
    pub fn name(&self) -> &str {
        match self {
            CloneMethod::Basebackup => BASEBACKUP,
            CloneMethod::Custom { name, .. } => name,
        }
    }
}

/// `postgresql.<method>`: a replica method of the operator's, run as
/// `<command> --scope=… --role=replica --datadir=… --connstring=… --<key>=<value>…`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CustomMethod {
    /// The command line (run by `sh -c`, the arguments appended).
    pub command: String,
    /// Leave what is in the data directory before the command runs, and after it fails.
    #[serde(default)]
    pub keep_data: bool,
    /// Pass none of the agent's arguments (`--scope`, `--role`, `--datadir`, `--connstring`); the
    /// section's own are still passed.
    #[serde(default)]
    pub no_params: bool,
    /// The method needs no running primary (it restores from a backup): it may run when there is none.
    #[serde(default)]
    pub no_leader: bool,
    /// Every other key, passed as `--<key>=<value>`.
    #[serde(flatten)]
    pub arguments: BTreeMap<String, Argument>,
}

/// `bootstrap.<method>`: a new cluster made by the operator's command (a restore from a backup), run as
/// `<command> --scope=… --datadir=… --<key>=<value>…`, then started, recovered and promoted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CustomBootstrap {
    /// The method's name (`bootstrap.method`).
    #[serde(skip)]
    pub name: String,
    /// The command line (run by `sh -c`, the arguments appended).
    pub command: String,
    /// Pass neither `--scope` nor `--datadir`.
    #[serde(default)]
    pub no_params: bool,
    /// Keep the recovery settings and signal files the command wrote (pgBackRest's, Barman's).
    #[serde(default)]
    pub keep_existing_recovery_conf: bool,
    /// Recovery settings to start with (`restore_command`, `recovery_target_time`…), with
    /// `recovery.signal`.
    #[serde(default, deserialize_with = "scalar::optional_string_map")]
    pub recovery_conf: Option<BTreeMap<String, String>>,
    /// Every other key, passed as `--<key>=<value>`.
    #[serde(flatten)]
    pub arguments: BTreeMap<String, Argument>,
}

/// A method's argument value: a scalar, as written (`true`, `100`, `text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argument(pub String);

impl<'de> Deserialize<'de> for Argument {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar::as_written(d).map(Argument)
    }
}

/// `--<key>=<value>` for each of `arguments`.
pub fn long_arguments(arguments: &BTreeMap<String, Argument>) -> impl Iterator<Item = String> + '_ {
    arguments.iter().map(|(k, v)| format!("--{k}={}", v.0))
}

/// The method sections taken out of a tree (see [`take`]), to be read by [`read`].
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// The sections of `postgresql` that are methods, by name.
    replica: BTreeMap<String, Value>,
    /// `bootstrap.method`'s section, when the method is not `initdb`.
    bootstrap: Option<Value>,
}

/// Takes the method sections out of `tree`: in `postgresql`, those `create_replica_methods` names and
/// every other mapping with a `command` (Patroni accepts a method's section whether listed or not); in
/// `bootstrap`, the one `bootstrap.method` names and every other mapping with a `command` (a method not
/// in use is ignored). Turns the mapping form of `postgresql.basebackup` and `bootstrap.initdb` into the
/// list form.
pub(crate) fn take(tree: &mut Value) -> Taken {
    let mut taken = Taken::default();
    if let Some(pg) = tree.get_mut("postgresql").and_then(Value::as_mapping_mut) {
        listed_form(pg, BASEBACKUP);
        let listed = pg.get("create_replica_methods").and_then(Value::as_sequence).cloned();
        let listed = listed.unwrap_or_default().into_iter().filter_map(|v| v.as_str().map(str::to_owned));
        let mut names: Vec<String> = listed.filter(|n| n != BASEBACKUP).collect();
        names.extend(methods_in(pg));
        for name in names {
            if let Some(section) = pg.remove(name.as_str()) {
                taken.replica.insert(name, section);
            }
        }
    }
    if let Some(bootstrap) = tree.get_mut("bootstrap").and_then(Value::as_mapping_mut) {
        listed_form(bootstrap, INITDB);
        let method = bootstrap.get("method").and_then(Value::as_str).map(str::to_owned);
        if let Some(method) = method.filter(|m| m != INITDB) {
            taken.bootstrap = bootstrap.remove(method.as_str());
        }
        for unused in methods_in(bootstrap) {
            bootstrap.remove(unused.as_str());
        }
    }
    taken
}

/// The keys of `section` whose value is a mapping with a `command`: methods.
fn methods_in(section: &Mapping) -> Vec<String> {
    let is_method = |v: &Value| v.as_mapping().is_some_and(|m| m.contains_key("command"));
    section.iter().filter(|(_, v)| is_method(v)).filter_map(|(k, _)| k.as_str().map(str::to_owned)).collect()
}

/// `section.key` written as a mapping (Patroni's `{max-rate: 100M}`) becomes the list of one-key
/// mappings the reader takes.
fn listed_form(section: &mut Mapping, key: &str) {
    if let Some(Value::Mapping(options)) = section.get(key) {
        let items = options.iter().map(|(k, v)| Value::Mapping(Mapping::from_iter([(k.clone(), v.clone())])));
        let list = Value::Sequence(items.collect());
        section.insert(key.into(), list);
    }
}

/// Reads the sections `taken` out of the tree `config` was read from into `postgresql.create_replica_methods`
/// ([`CloneMethod`]) and `bootstrap.method` ([`CustomBootstrap`]); returns every error.
pub(crate) fn read(config: &mut Config, taken: Taken) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if let Some(pg) = &mut config.postgresql {
        let mut methods = Vec::new();
        for (i, name) in pg.create_replica_methods.iter().enumerate() {
            if name == BASEBACKUP {
                methods.push(CloneMethod::Basebackup);
                continue;
            }
            let key = format!("postgresql.{name}");
            let Some(section) = taken.replica.get(name).cloned() else {
                let why = format!(
                    "{name:?} is not built in ({BASEBACKUP}) and there is no {key} section: add one with its command"
                );
                errors.push(ConfigError::invalid(format!("postgresql.create_replica_methods[{i}]"), why));
                continue;
            };
            match section_at::<CustomMethod>(&key, section) {
                Ok(method) => methods.push(CloneMethod::Custom { name: name.clone(), method }),
                Err(e) => errors.push(e),
            }
        }
        pg.clone_methods = methods;
    }
    let bootstrap = &mut config.bootstrap;
    match (bootstrap.method.as_deref(), taken.bootstrap) {
        (None | Some(INITDB), _) => {}
        (Some(name), None) => errors.push(ConfigError::invalid(
            "bootstrap.method",
            format!("names {name:?}, but there is no bootstrap.{name} section: add one with its command, or use {INITDB}"),
        )),
        (Some(name), Some(section)) => {
            let key = format!("bootstrap.{name}");
            match section_at::<CustomBootstrap>(&key, section) {
                Ok(custom) => bootstrap.custom = Some(CustomBootstrap { name: name.to_owned(), ..custom }),
                Err(e) => errors.push(e),
            }
        }
    }
    errors
}

/// A method's section at `key`: its arguments (the keys other than [`Method::KEYS`]) scalars named fit
/// for `--<name>=` and none of [`Method::RESERVED`], read, its command not empty.
fn section_at<T: DeserializeOwned + Method>(key: &str, section: Value) -> Result<T, ConfigError> {
    let Value::Mapping(map) = &section else {
        return Err(ConfigError::invalid(key, "must be a mapping with at least a command"));
    };
    for (name, value) in map {
        let name = name.as_str().unwrap_or_default();
        if T::KEYS.contains(&name) {
            continue;
        }
        let why = if T::RESERVED.contains(&name) {
            "is passed to the command by the agent: leave it out"
        } else if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            "is not a name for a --name=value argument"
        } else if value.is_mapping() || value.is_sequence() {
            "is passed to the command as --key=value: give a string, number or boolean"
        } else {
            continue;
        };
        return Err(ConfigError::invalid(format!("{key}.{name}"), why));
    }
    let read: T =
        serde_path_to_error::deserialize(section).map_err(|e| match ConfigError::from_serde(e) {
            ConfigError::Invalid { key: inner, message, .. } => {
                ConfigError::invalid(format!("{key}.{inner}"), message)
            }
            other => other,
        })?;
    if read.command().trim().is_empty() {
        return Err(ConfigError::invalid(format!("{key}.command"), "is an empty command"));
    }
    Ok(read)
}

/// What [`section_at`] needs to know of a method section.
trait Method {
    /// The section's own keys: every other one is an argument.
    const KEYS: &'static [&'static str];
    /// The arguments the agent passes itself.
    const RESERVED: &'static [&'static str];
    /// The command line.
    fn command(&self) -> &str;
}

impl Method for CustomMethod {
    const KEYS: &'static [&'static str] = &["command", "keep_data", "no_params", "no_leader"];
    const RESERVED: &'static [&'static str] = &CLONE_PARAMS;
    fn command(&self) -> &str {
        &self.command
    }
}

impl Method for CustomBootstrap {
    const KEYS: &'static [&'static str] =
        &["command", "no_params", "keep_existing_recovery_conf", "recovery_conf"];
    const RESERVED: &'static [&'static str] = &BOOTSTRAP_PARAMS;
    fn command(&self) -> &str {
        &self.command
    }
}
