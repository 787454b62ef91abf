//! `kubernetes`: when set, the agent labels its own pod with its role so that a Service selecting
//! `vigil.io/role: primary` routes to the primary. Kubernetes is used for routing only: the Raft group
//! decides who the primary is, and failover never waits for the API.

use super::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// Where a pod's service account finds its token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// `kubernetes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The pod's namespace; by default the service account's (`<SERVICE_ACCOUNT_DIR>/namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The pod's name; by default `$POD_NAME` (the downward API), else the host name (a StatefulSet pod's).
    #[serde(default)]
    pub pod_name: Option<String>,
    /// The label carrying the role: `primary` or `replica` (Patroni's key).
    #[serde(default = "role_label")]
    pub role_label: String,
    /// The label carrying the cluster's scope, by which a new primary finds the other members' pods
    /// (Patroni's key).
    #[serde(default = "scope_label")]
    pub scope_label: String,
    /// The API server; by default `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// The bearer token, read again at every call (tokens are rotated).
    #[serde(default = "token_file")]
    pub token_file: PathBuf,
    /// The CA certificates the API server's certificate is checked with.
    #[serde(default = "cafile")]
    pub cafile: PathBuf,
}

fn role_label() -> String {
    "vigil.io/role".into()
}

fn scope_label() -> String {
    "vigil.io/scope".into()
}

fn token_file() -> PathBuf {
    PathBuf::from(SERVICE_ACCOUNT_DIR).join("token")
}

fn cafile() -> PathBuf {
    PathBuf::from(SERVICE_ACCOUNT_DIR).join("ca.crt")
}

impl KubernetesConfig {
    /// Checks the label names and the API address.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, label) in
            [("kubernetes.role_label", &self.role_label), ("kubernetes.scope_label", &self.scope_label)]
        {
            label_key(label).map_err(|why| ConfigError::invalid(key, format!("{label:?} {why}")))?;
        }
        if let Some(url) = &self.api_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::invalid(
                    "kubernetes.api_url",
                    format!("{url:?} is not an http(s) URL"),
                ));
            }
        }
        for (key, name) in
            [("kubernetes.namespace", &self.namespace), ("kubernetes.pod_name", &self.pod_name)]
        {
            if let Some(name) = name.as_deref().filter(|n| n.is_empty() || n.contains(['/', ' '])) {
                return Err(ConfigError::invalid(key, format!("{name:?} is not a Kubernetes name")));
            }
        }
        Ok(())
    }
}

/// Whether `label` is a valid label key: an optional DNS prefix and `/`, then a name of at most 63
/// characters, alphanumeric at both ends, with `-`, `_` and `.` inside.
fn label_key(label: &str) -> Result<(), &'static str> {
    let (prefix, name) = match label.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, label),
    };
    if prefix.is_some_and(|p| {
        p.is_empty()
            || p.len() > 253
            || !p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    }) {
        return Err("has a bad prefix: it must be a DNS subdomain");
    }
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let inner = name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if name.len() > 63 || !inner || !edge(name.chars().next()) || !edge(name.chars().last()) {
        return Err(
            "is not a label key: at most 63 letters, digits, '-', '_' or '.', alphanumeric at both ends",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_follow_kubernetes_rules() {
        for good in ["vigil.io/role", "role", "app.kubernetes.io/instance", "a-b_c.d"] {
            assert_eq!(label_key(good), Ok(()), "{good}");
        }
        for bad in ["", "/role", "Vigil.io/role", "role-", "-role", "a b", &"x".repeat(64)] {
            assert!(label_key(bad).is_err(), "{bad:?}");
        }
    }
}
