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

    /// Ties the error to the file it came from.
    pub(crate) fn in_file(mut self, path: Option<&Path>) -> Self {
        if let ConfigError::Invalid { file, .. } | ConfigError::Syntax { file, .. } = &mut self {
            if file.is_none() {
                *file = path.map(Path::to_path_buf);
            }
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
        ConfigError::invalid(key, message)
    }
}
