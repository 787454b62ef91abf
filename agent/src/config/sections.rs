//! The smaller sections: `restapi`, `raft`, `bootstrap`, `watchdog`, `log`.

use super::choice::choice_enum;
use super::{duration, scalar, CustomBootstrap, DynamicConfig, HostPort};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use vigil_api::Secret;

/// A user name with its password, as the configuration writes it (`{username, password}`). Its `Debug`
/// hides the password.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPassword {
    /// The user name.
    #[serde(deserialize_with = "scalar::string")]
    pub username: String,
    /// The password.
    #[serde(deserialize_with = "scalar::string")]
    pub password: Secret,
}

impl UserPassword {
    /// The pair as HTTP basic-auth credentials.
    pub fn basic_auth(&self) -> vigil_api::BasicAuth {
        vigil_api::BasicAuth { username: self.username.clone(), password: self.password.clone() }
    }
}

choice_enum! {
    /// `restapi.verify_client`: whether the REST API asks for TLS client certificates.
    pub enum VerifyClient {
        /// No client certificate is asked for.
        None = "none",
        /// A certificate is checked when one is sent.
        Optional = "optional",
        /// Every request must carry a valid certificate.
        Required = "required",
    }
}

/// `restapi`: where the REST API listens and how it is reached and protected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestApiConfig {
    /// The address to listen on.
    pub listen: HostPort,
    /// The address other members and tools use (part of this member's `api_url`).
    pub connect_address: HostPort,
    /// Basic auth for the management endpoints (Patroni's): needed for changes, good for reads too.
    #[serde(default)]
    pub authentication: Option<UserPassword>,
    /// Read-only basic auth (Vigil's own): when set, the status endpoints other than the health checks
    /// (`/patroni`, `/cluster`, `/history`, `GET /config`, `/metrics`, …) need these or
    /// `authentication`'s credentials.
    #[serde(default)]
    pub read_authentication: Option<UserPassword>,
    /// TLS certificate (PEM); the REST API speaks HTTPS when given.
    #[serde(default)]
    pub certfile: Option<PathBuf>,
    /// TLS private key (PEM), when not inside `certfile`.
    #[serde(default)]
    pub keyfile: Option<PathBuf>,
    /// CA certificates used to verify client certificates.
    #[serde(default)]
    pub cafile: Option<PathBuf>,
    /// Whether client certificates are asked for.
    #[serde(default)]
    pub verify_client: Option<VerifyClient>,
    /// IP addresses, CIDR networks or host names allowed to make mutating calls (all when empty).
    #[serde(default)]
    pub allowlist: Vec<String>,
    /// The members' addresses (their `api_url` and `conn_url` hosts) may make mutating calls too.
    #[serde(default)]
    pub allowlist_include_members: bool,
    /// Serve the management calls on a non-loopback `listen` address with nothing protecting them (no
    /// `authentication`, client certificates or allowlist); without it such a configuration is refused.
    #[serde(default)]
    pub insecure: bool,
    /// Headers added to every response (Patroni's).
    #[serde(default)]
    pub http_extra_headers: BTreeMap<String, String>,
    /// Headers added to every response when the API speaks HTTPS, beside `http_extra_headers`
    /// (Patroni's).
    #[serde(default)]
    pub https_extra_headers: BTreeMap<String, String>,
    /// What the `Server` header says (Patroni's).
    #[serde(default)]
    pub server_tokens: ServerTokens,
}

choice_enum! {
    /// `restapi.server_tokens`: how much the `Server` response header tells (Patroni's spellings,
    /// `Original`, `Minimal`, `ProductOnly`, in any case).
    #[derive(Default)]
    pub enum ServerTokens {
        /// Product, version and the Patroni API followed: `Vigil/0.1.0 Patroni/4.1.4`.
        #[default]
        Original = "original",
        /// Product and version: `Vigil/0.1.0`.
        Minimal = "minimal",
        /// The product alone: `Vigil`.
        ProductOnly = "productonly",
    }
}

impl ServerTokens {
    /// The `Server` header's value.
    pub fn header(self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        match self {
            ServerTokens::Original => {
                format!("Vigil/{version} Patroni/{}", vigil_api::metrics::PATRONI_VERSION)
            }
            ServerTokens::Minimal => format!("Vigil/{version}"),
            ServerTokens::ProductOnly => "Vigil".to_owned(),
        }
    }
}

impl RestApiConfig {
    /// `allowlist`, parsed; an entry that is no address, network or host name is an error naming it.
    pub fn allow_entries(&self) -> Result<Vec<vigil_api::allowlist::AllowEntry>, super::ConfigError> {
        (self.allowlist.iter().enumerate())
            .map(|(i, e)| {
                e.parse().map_err(|why| super::ConfigError::invalid(format!("restapi.allowlist[{i}]"), why))
            })
            .collect()
    }

    /// Whether anyone who can reach `listen` could make management calls: it is not a loopback address
    /// (`127.0.0.0/8`, `::1`, `localhost`) and neither `authentication`, client certificates
    /// (`verify_client` optional or required) nor an allowlist protects them.
    pub fn unprotected(&self) -> bool {
        let loopback = self.listen.is_loopback();
        let allowlist = !self.allowlist.is_empty() || self.allowlist_include_members;
        !loopback && self.authentication.is_none() && !self.verifies_clients() && !allowlist
    }

    /// The credentials the REST API asks for (`authentication`, `read_authentication`).
    pub fn credentials(&self) -> vigil_api::auth::Credentials {
        vigil_api::auth::Credentials {
            admin: self.authentication.as_ref().map(UserPassword::basic_auth),
            read: self.read_authentication.as_ref().map(UserPassword::basic_auth),
        }
    }

    /// The headers every response carries: the `Server` header and `http_extra_headers`, plus
    /// `https_extra_headers` when the API speaks HTTPS (`https`); the error names an invalid header.
    pub fn response_headers(&self, https: bool) -> Result<vigil_api::ResponseHeaders, String> {
        let http = self.http_extra_headers.iter().map(|(n, v)| ("restapi.http_extra_headers", n, v));
        let tls = self.https_extra_headers.iter().filter(|_| https);
        let extra = http.chain(tls.map(|(n, v)| ("restapi.https_extra_headers", n, v)));
        let extra = extra.map(|(context, name, value)| (context, name.as_str(), value.as_str()));
        vigil_api::ResponseHeaders::new(&self.server_tokens.header(), extra)
    }

    /// Whether client certificates are checked (`verify_client` optional or required).
    pub fn verifies_clients(&self) -> bool {
        matches!(self.verify_client, Some(VerifyClient::Optional | VerifyClient::Required))
    }
}

/// `ctl`: how the CLI (and this agent, calling its peers) talks HTTPS to the agents, as patronictl's
/// section. Each file left out falls back to its `restapi` counterpart (`cacert` to `restapi.cafile`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtlConfig {
    /// CA certificates (PEM) the agents' certificates are checked against.
    #[serde(default)]
    pub cacert: Option<PathBuf>,
    /// A client certificate (PEM) to show, for `verify_client: optional|required`.
    #[serde(default)]
    pub certfile: Option<PathBuf>,
    /// Its private key (PEM), when not inside `certfile`.
    #[serde(default)]
    pub keyfile: Option<PathBuf>,
    /// Do not check the agents' certificates at all.
    #[serde(default)]
    pub insecure: bool,
    /// The credentials the CLI calls the REST API with, over `restapi.authentication`'s.
    #[serde(default)]
    pub authentication: Option<UserPassword>,
}

impl CtlConfig {
    /// How to call the agents' REST API: these settings, each file left out falling back to the REST
    /// API's own (`restapi.cafile`, `certfile`, `keyfile`), as patronictl does.
    pub fn client_tls(
        &self,
        cafile: Option<&PathBuf>,
        certfile: Option<&PathBuf>,
        keyfile: Option<&PathBuf>,
    ) -> vigil_api::tls::ClientTls {
        vigil_api::tls::ClientTls {
            cacert: self.cacert.clone().or_else(|| cafile.cloned()),
            certfile: self.certfile.clone().or_else(|| certfile.cloned()),
            keyfile: if self.certfile.is_some() { self.keyfile.clone() } else { keyfile.cloned() },
            insecure: self.insecure,
        }
    }
}

/// `raft`: this member's place in the store's Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftConfig {
    /// Where the Raft log, vote and snapshots live (absolute).
    pub data_dir: PathBuf,
    /// This member's Raft address, as the others reach it.
    pub self_addr: HostPort,
    /// The other members' Raft addresses, no duplicates (`self_addr`, if listed, is dropped at load).
    #[serde(default)]
    pub partner_addrs: Vec<HostPort>,
    /// A member's Raft address to join an existing group through, as a new member (a learner until it
    /// has caught up, then a voter). Without it, a new member whose `partner_addrs` already formed a group
    /// joins that group, and one whose partners have not forms the group with them.
    #[serde(default)]
    pub join: Option<HostPort>,
    /// The address to listen on, when not `self_addr` (e.g. `0.0.0.0:2222`).
    #[serde(default)]
    pub bind_addr: Option<HostPort>,
    /// Mutual TLS between the members: this member's certificate (PEM), naming `self_addr`'s host, and its
    /// key too when `keyfile` is not set.
    #[serde(default)]
    pub certfile: Option<PathBuf>,
    /// The private key of `certfile` (PEM).
    #[serde(default)]
    pub keyfile: Option<PathBuf>,
    /// The CA (PEM) every member's certificate must be signed by.
    #[serde(default)]
    pub cafile: Option<PathBuf>,
    /// Patroni's `raft.password`: every request between members, and its answer, is signed with it.
    #[serde(default, deserialize_with = "scalar::optional_string")]
    pub password: Option<Secret>,
    /// Run a group of several members on addresses other machines can reach without `certfile` nor
    /// `password`: anyone who reaches the Raft port could then run the cluster.
    #[serde(default)]
    pub insecure: bool,
}

/// One `bootstrap.initdb` item: a flag (`data-checksums`) or an option with a value (`encoding: UTF8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitdbOption {
    /// `--<flag>`.
    Flag(String),
    /// `--<name>=<value>`.
    Value(String, String),
}

impl InitdbOption {
    /// The option's name, as written.
    pub fn name(&self) -> &str {
        match self {
            InitdbOption::Flag(name) | InitdbOption::Value(name, _) => name,
        }
    }
}

/// `bootstrap`: what the first member uses to create the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapConfig {
    /// The initial dynamic configuration, written to the store once, at bootstrap.
    #[serde(default)]
    pub dcs: DynamicConfig,
    /// How the first member makes the database: `initdb` (the default), or a method with a
    /// `bootstrap.<method>` section ([`CustomBootstrap`]).
    #[serde(default)]
    pub method: Option<String>,
    /// `bootstrap.<method>` of a `method` other than initdb (filled in when the file is read).
    #[serde(skip)]
    pub custom: Option<CustomBootstrap>,
    /// initdb options: flags (`data-checksums`) and `name: value` items (`encoding: UTF8`), as a list or a
    /// mapping.
    #[serde(default, deserialize_with = "scalar::initdb_options")]
    pub initdb: Vec<InitdbOption>,
    /// pg_hba.conf lines used when `postgresql.pg_hba` is not set.
    #[serde(default)]
    pub pg_hba: Vec<String>,
    /// A command run once the new database runs as primary with the agent's roles, before the member
    /// takes the cluster, with a connection string to it as argument; a failure fails the bootstrap.
    #[serde(default)]
    pub post_bootstrap: Option<String>,
    /// Patroni's older name of `post_bootstrap`.
    #[serde(default)]
    pub post_init: Option<String>,
}

impl BootstrapConfig {
    /// `post_bootstrap`, else `post_init`.
    pub fn post_bootstrap(&self) -> Option<&str> {
        self.post_bootstrap.as_deref().or(self.post_init.as_deref())
    }
}

choice_enum! {
    /// `watchdog.mode`.
    pub enum WatchdogMode {
        /// No watchdog.
        Off = "off",
        /// Use the watchdog when the device can be opened.
        Automatic = "automatic",
        /// Refuse to become primary without a working watchdog.
        Required = "required",
    }
    bool: false => Off, true => Automatic
}

/// `watchdog`: a hardware or softdog timer that resets the host if the agent freezes while primary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchdogConfig {
    /// Whether the watchdog is used.
    #[serde(default = "watchdog_off")]
    pub mode: WatchdogMode,
    /// The device (absolute path).
    #[serde(default = "watchdog_device")]
    pub device: PathBuf,
    /// How long before the lease deadline the watchdog fires; default: the lease `safety_margin`.
    #[serde(default, with = "duration::option")]
    pub safety_margin: Option<Duration>,
}

fn watchdog_off() -> WatchdogMode {
    WatchdogMode::Off
}

fn watchdog_device() -> PathBuf {
    PathBuf::from("/dev/watchdog")
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig { mode: WatchdogMode::Off, device: watchdog_device(), safety_margin: None }
    }
}

choice_enum! {
    /// `log.level` (Patroni's upper-case names are accepted too).
    pub enum LogLevel {
        /// Errors only.
        Error = "error" | "critical" | "fatal",
        /// Warnings and errors.
        Warn = "warn" | "warning",
        /// The usual level.
        Info = "info",
        /// Debugging detail.
        Debug = "debug",
        /// Everything.
        Trace = "trace",
    }
}

choice_enum! {
    /// `log.type` (Patroni's key): how each line is written to standard error.
    pub enum LogType {
        /// Text for people: time, level, target, message, fields; coloured only on a terminal.
        Plain = "plain",
        /// One JSON object per line, for log collectors (`timestamp`, `level`, `target`, `fields`).
        Json = "json",
    }
}

/// `log`, with Patroni's keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The least severe level logged.
    #[serde(default = "info")]
    pub level: LogLevel,
    /// How lines are written.
    #[serde(default = "plain", rename = "type")]
    pub kind: LogType,
    /// For `type: plain`, the line as Python's logging writes it: `%(asctime)s`, `%(levelname)s`,
    /// `%(name)s` (the target), `%(message)s` (with the fields), `%(process)d`, `%(threadName)s`;
    /// Vigil's own layout when left out.
    #[serde(default)]
    pub format: Option<String>,
    /// How `%(asctime)s` is written, in `strftime` terms (`%Y-%m-%d %H:%M:%S,%3f` when left out).
    #[serde(default)]
    pub dateformat: Option<String>,
    /// A directory to write `vigil.log` in, instead of standard error (absolute).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// How many files are kept in `dir`: `vigil.log` and up to this many older ones.
    #[serde(default = "file_num")]
    pub file_num: u32,
    /// The size in bytes at which `vigil.log` is set aside for a new one.
    #[serde(default = "file_size")]
    pub file_size: u64,
    /// Levels for single targets (`vigil_agent::ha: debug`, `openraft: info`), over `level`.
    #[serde(default)]
    pub loggers: std::collections::BTreeMap<String, LogLevel>,
}

fn info() -> LogLevel {
    LogLevel::Info
}

fn plain() -> LogType {
    LogType::Plain
}

fn file_num() -> u32 {
    4
}

fn file_size() -> u64 {
    25_000_000
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            kind: LogType::Plain,
            format: None,
            dateformat: None,
            dir: None,
            file_num: file_num(),
            file_size: file_size(),
            loggers: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_headers_follow_patroni() {
        let yaml = "listen: 127.0.0.1:8008\nconnect_address: 127.0.0.1:8008\nserver_tokens: ProductOnly\n\
                    http_extra_headers: {X-A: a}\nhttps_extra_headers: {X-B: b}\n";
        let restapi: RestApiConfig = serde_norway::from_str(yaml).expect("restapi");
        assert_eq!(restapi.server_tokens, ServerTokens::ProductOnly);
        let expected = |https| {
            let extra = [("", "X-A", "a"), ("", "X-B", "b")];
            vigil_api::ResponseHeaders::new("Vigil", extra.into_iter().take(if https { 2 } else { 1 }))
        };
        assert_eq!(restapi.response_headers(false), expected(false), "https ones only over HTTPS");
        assert_eq!(restapi.response_headers(true), expected(true), "both over HTTPS");
        assert_eq!(ServerTokens::default(), ServerTokens::Original);
        assert!(
            ServerTokens::Original.header().starts_with("Vigil/")
                && ServerTokens::Original.header().ends_with(" Patroni/4.1.4")
        );
        assert_eq!(ServerTokens::parse("Minimal"), Some(ServerTokens::Minimal));
        let bad = "listen: 127.0.0.1:8008\nconnect_address: 127.0.0.1:8008\nserver_tokens: Full\n";
        assert!(serde_norway::from_str::<RestApiConfig>(bad).is_err());
    }
}
