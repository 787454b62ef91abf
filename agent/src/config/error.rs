//! [`ConfigError`]: what is wrong with a configuration, naming the file and the key.

use std::path::{Path, PathBuf};

/// Why a configuration was refused. Its `Display` names the file (when there is one), the full key path
/// (`postgresql.authentication.superuser.password`) and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read the configuration file: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The text is not valid YAML.
    #[error("{}not valid YAML: {message}", prefix(.file, ""))]
    Syntax {
        /// The file, when the text came from one.
        file: Option<PathBuf>,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is missing, unknown or has a value that is not allowed.
    #[error("{}{message}", prefix(.file, .key))]
    Invalid {
        /// The file, when the text came from one.
        file: Option<PathBuf>,
        /// The full dotted key path (`restapi.verify_client`, `raft.partner_addrs[1]`); empty for the whole
        /// document.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Every error found in one reading, in the order found (always two or more).
    #[error("{} errors:{}", .0.len(), listed(.0))]
    Several(Vec<ConfigError>),
}

fn listed(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("\n  {e}")).collect()
}

fn prefix(file: &Option<PathBuf>, key: &str) -> String {
    let mut out = String::new();
    if let Some(file) = file {
        out.push_str(&format!("{}: ", file.display()));
    }
    if !key.is_empty() {
        out.push_str(key);
        out.push_str(": ");
    }
    out
}

impl ConfigError {
    /// An error about `key`, not yet tied to a file.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { file: None, key: key.into(), message: message.into() }
    }

    /// The key path the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }

    /// One error for `errors`: the error itself when there is one, [`ConfigError::Several`] otherwise.
    pub(crate) fn all(mut errors: Vec<ConfigError>) -> Self {
        match errors.len() {
            1 => errors.remove(0),
            _ => ConfigError::Several(errors),
        }
    }

    /// The errors this one stands for: itself, or each of [`ConfigError::Several`].
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Several(errors) => errors.iter().collect(),
            one => vec![one],
        }
    }

    /// Ties the error to the file it came from.
    pub(crate) fn in_file(mut self, path: Option<&Path>) -> Self {
        match &mut self {
            ConfigError::Invalid { file, .. } | ConfigError::Syntax { file, .. } if file.is_none() => {
                *file = path.map(Path::to_path_buf);
            }
            ConfigError::Several(errors) => {
                *errors = std::mem::take(errors).into_iter().map(|e| e.in_file(path)).collect();
            }
            _ => {}
        }
        self
    }

    /// Appends a note to an `Invalid` error's message.
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        if let ConfigError::Invalid { message, .. } = &mut self {
            message.push_str(note);
        }
        self
    }

    /// Turns a deserialization error into an error naming the full key path. For a missing field the
    /// path names the field itself (`postgresql.authentication.superuser.password`).
    pub(crate) fn from_serde<E: std::fmt::Display>(err: serde_path_to_error::Error<E>) -> Self {
        let path = err.path().to_string();
        let mut key = if path == "." { String::new() } else { path };
        let message = err.inner().to_string();
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
            return ConfigError::invalid(key, "is required but missing");
        }
        let unknown = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next());
        if let Some(field) = unknown.filter(|f| key.rsplit('.').next() != Some(*f)) {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(field);
        }
        match unknown.and_then(|field| other_dcs_hint(&key, field)) {
            Some(hint) => ConfigError::invalid(key, hint),
            None => ConfigError::invalid(key, message),
        }
    }
}

/// The sections of Patroni's other stores, which Vigil replaces with its own Raft group.
const OTHER_DCS: &[&str] = &["etcd", "etcd3", "consul", "zookeeper", "exhibitor"];

/// For a section of another store Patroni supports: what to write instead.
fn other_dcs_hint(key: &str, field: &str) -> Option<String> {
    if key.strip_prefix("kubernetes.") == Some(field) {
        return Some(format!(
            "unknown field `{field}`: Vigil's `kubernetes:` section only labels this member's pod with its \
             role (namespace, pod_name, role_label, scope_label, api_url, token_file, cafile); it is not a \
             store: the cluster's state lives in the `raft:` group"
        ));
    }
    (key == field && OTHER_DCS.contains(&field)).then(|| {
        format!(
            "Vigil needs no {field}: its agents keep the cluster's state in a Raft group of their own. Replace \
             the `{field}:` section with `raft:` (self_addr: this agent's Raft address, partner_addrs: the \
             other agents', data_dir: where it keeps its log), as Patroni's own `raft:` section; to move a \
             running cluster, see \"Moving from Patroni\" in the README"
        )
    })
}
