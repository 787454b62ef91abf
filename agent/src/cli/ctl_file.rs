//! The configuration file the control commands read: an agent's whole file, or a ctl-only one for an
//! admin host without a database (patronictl's `patronictl.yaml`):
//!
//! ```yaml
//! scope: batman
//! restapi:
//!   connect_address: 10.0.0.1:8008      # or listen; the other members come from GET /cluster
//!   authentication: {username: admin, password: secret}
//! ctl:
//!   api: [https://10.0.0.1:8008, https://10.0.0.2:8008]   # Vigil's own: several agents to try
//!   authentication: {username: admin, password: secret}    # wins over restapi.authentication
//!   cacert: /etc/vigil/ca.pem
//!   insecure: false
//! ```
//!
//! Only the keys above are read and every other key is ignored, so that the agent's file works unchanged
//! on its host (without its programs or data directory being checked) and a ctl-only file needs no
//! `postgresql` or `raft` section. The `VIGIL_*` environment overrides apply as for the agent.

use crate::config::{CtlConfig, HostPort, UserPassword};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What the control commands read from a configuration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CtlFile {
    /// The cluster's name: the commands refuse to act on a cluster with another one.
    #[serde(default)]
    pub scope: Option<String>,
    /// The agent's REST API.
    #[serde(default)]
    restapi: Option<RestApiPart>,
    /// The control tool's own settings.
    #[serde(default)]
    ctl: Option<CtlPart>,
}

/// The keys of `restapi` the control commands use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct RestApiPart {
    #[serde(default)]
    connect_address: Option<HostPort>,
    #[serde(default)]
    listen: Option<HostPort>,
    #[serde(default)]
    authentication: Option<UserPassword>,
    #[serde(default)]
    cafile: Option<PathBuf>,
    #[serde(default)]
    certfile: Option<PathBuf>,
    #[serde(default)]
    keyfile: Option<PathBuf>,
}

/// The `ctl` section: patronictl's keys plus `api`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct CtlPart {
    /// Agents' REST API URLs (a list, or one comma-separated string).
    #[serde(default)]
    api: Option<UrlList>,
    #[serde(default)]
    authentication: Option<UserPassword>,
    #[serde(default)]
    cacert: Option<PathBuf>,
    #[serde(default)]
    certfile: Option<PathBuf>,
    #[serde(default)]
    keyfile: Option<PathBuf>,
    #[serde(default)]
    insecure: Option<bool>,
}

/// `ctl.api`: a list of URLs or one comma-separated string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
enum UrlList {
    One(String),
    Many(Vec<String>),
}

impl CtlFile {
    /// Reads `path`, with the `VIGIL_*` overrides `env` knows; errors name the file.
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<CtlFile, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        CtlFile::parse(&text, env).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// [`load`](Self::load) from text.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<CtlFile, String> {
        let mut tree: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        if tree.is_null() {
            tree = serde_norway::Value::Mapping(Default::default());
        }
        crate::config::env::apply(&mut tree, env).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(tree).map_err(|e| match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            key => format!("{key}: {}", e.inner()),
        })
    }

    /// The agents to ask first: `ctl.api`, else `restapi.connect_address`, else `restapi.listen` (a
    /// wildcard host meaning this host). Scheme: `https` when `https` (TLS options were given), the
    /// REST API serves TLS here (`restapi.certfile`) or the `ctl` section has TLS settings.
    pub fn urls(&self, https: bool) -> Vec<String> {
        let ctl = self.ctl.clone().unwrap_or_default();
        match ctl.api {
            Some(UrlList::One(list)) => return super::client::split_urls(&list),
            Some(UrlList::Many(urls)) => return urls.iter().map(|u| super::client::base_url(u)).collect(),
            None => {}
        }
        let api = self.restapi.clone().unwrap_or_default();
        let address = api.connect_address.or(api.listen.map(|listen| match listen.is_wildcard() {
            true => HostPort { host: "127.0.0.1".into(), port: listen.port },
            false => listen,
        }));
        let tls = https
            || api.certfile.is_some()
            || ctl.cacert.is_some()
            || ctl.certfile.is_some()
            || ctl.insecure == Some(true);
        let scheme = if tls { "https" } else { "http" };
        address.map(|a| format!("{scheme}://{a}")).into_iter().collect()
    }

    /// The REST API's credentials: `ctl.authentication`, else `restapi.authentication`.
    pub fn authentication(&self) -> Option<&UserPassword> {
        let ctl = self.ctl.as_ref().and_then(|c| c.authentication.as_ref());
        ctl.or(self.restapi.as_ref().and_then(|r| r.authentication.as_ref()))
    }

    /// The HTTPS settings: `ctl`'s, each file falling back to `restapi`'s.
    pub fn client_tls(&self) -> vigil_api::tls::ClientTls {
        let ctl = self.ctl.clone().unwrap_or_default();
        let settings = CtlConfig {
            cacert: ctl.cacert,
            certfile: ctl.certfile,
            keyfile: ctl.keyfile,
            insecure: ctl.insecure.unwrap_or(false),
            authentication: None,
        };
        let api = self.restapi.clone().unwrap_or_default();
        settings.client_tls(api.cafile.as_ref(), api.certfile.as_ref(), api.keyfile.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_ctl_only_file_needs_no_database_or_raft_section() {
        let file = CtlFile::parse(
            "scope: batman\nnamespace: /service/\nrestapi:\n  listen: 0.0.0.0:8008\n\
             \x20 authentication: {username: admin, password: s}\nctl:\n  cacert: /ca.pem\n  keyfile_password: x\n\
             log: {level: INFO}\n",
            &no_env,
        )
        .expect("ctl-only file");
        assert_eq!(file.scope.as_deref(), Some("batman"));
        assert_eq!(file.urls(false), ["https://127.0.0.1:8008"]);
        assert_eq!(file.authentication().map(|a| a.username.as_str()), Some("admin"));
        assert_eq!(file.client_tls().cacert, Some(PathBuf::from("/ca.pem")));
    }

    #[test]
    fn ctl_settings_win_over_the_rest_apis() {
        let file = CtlFile::parse(
            "restapi:\n  connect_address: 10.0.0.1:8008\n  certfile: /api.pem\n  cafile: /api-ca.pem\n\
             \x20 authentication: {username: a, password: b}\n\
             ctl:\n  api: 'h1:8008, https://h2:8008/'\n  authentication: {username: c, password: d}\n",
            &no_env,
        )
        .expect("file");
        assert_eq!(file.urls(false), ["http://h1:8008", "https://h2:8008"]);
        assert_eq!(file.authentication().map(|a| a.username.as_str()), Some("c"));
        let tls = file.client_tls();
        assert_eq!((tls.cacert, tls.certfile), (Some("/api-ca.pem".into()), Some("/api.pem".into())));
        let one = CtlFile::parse("restapi: {connect_address: '10.0.0.1:8008', certfile: /c}\n", &no_env);
        assert_eq!(one.expect("file").urls(false), ["https://10.0.0.1:8008"]);
        assert_eq!(CtlFile::parse("", &no_env).expect("empty").urls(true), Vec::<String>::new());
        let plain = CtlFile::parse("restapi: {connect_address: '10.0.0.1:8008'}\n", &no_env).expect("file");
        assert_eq!(
            (plain.urls(false), plain.urls(true)),
            (vec!["http://10.0.0.1:8008".to_string()], vec!["https://10.0.0.1:8008".to_string()])
        );
    }

    #[test]
    fn the_environment_applies_and_bad_values_name_their_key() {
        let env = |k: &str| (k == "VIGIL_CTL_INSECURE").then(|| "true".to_string());
        let file = CtlFile::parse("restapi: {connect_address: 'h:1'}\n", &env).expect("file");
        assert!(file.client_tls().insecure);
        let err = CtlFile::parse("restapi: {connect_address: nowhere}\n", &no_env).expect_err("bad");
        assert!(err.starts_with("restapi.connect_address: "), "{err}");
    }
}
