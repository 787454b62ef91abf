//! Who this member is and how it presents itself to the others.

use crate::config::DynamicConfig;
use std::collections::BTreeMap;
use vigil_dcs::MemberName;

/// Who this member is and how it presents itself; fixed for the agent's life.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The member name.
    pub name: MemberName,
    /// The cluster's scope.
    pub scope: String,
    /// The REST API's URL for peers (`http://host:port/patroni`).
    pub api_url: String,
    /// The database's host for peers and clients.
    pub db_host: String,
    /// The database's port.
    pub db_port: u16,
    /// The member's tags, as published.
    pub tags: BTreeMap<String, serde_json::Value>,
    /// May it become primary.
    pub can_fail_over: bool,
    /// Its `failover_priority` as configured (1 unless set), whatever `nofailover` says.
    pub failover_priority: i64,
    /// The dynamic configuration to publish at bootstrap, and to use while the store has none.
    pub bootstrap_dcs: DynamicConfig,
    /// This member's own server parameters (`postgresql.parameters`), over the dynamic configuration's.
    pub parameters: BTreeMap<String, String>,
    /// This member's own `postgresql.use_pg_rewind`, over the dynamic configuration's.
    pub use_pg_rewind: Option<bool>,
    /// Whether diverged data is removed or set aside before a re-clone (`postgresql.
    /// remove_data_directory_on_*`; MariaDB and MySQL remove it).
    pub discard: vigil_policy::Discard,
    /// `postgres://<postgresql.proxy_address>/postgres`: a pooler or proxy in front of the server,
    /// published for information only.
    pub proxy_url: Option<String>,
    /// The configuration file, re-read by `POST /reload`.
    pub config_path: Option<std::path::PathBuf>,
    /// How to call the peers' REST API (HTTPS settings; plain HTTP needs none).
    pub api_client_tls: vigil_api::tls::ClientTls,
    /// The read-only credentials (`restapi.read_authentication`) to ask the peers' status with. Never
    /// the admin ones: peers' addresses come from the store, and a status read needs no more.
    pub api_read_auth: Option<vigil_api::BasicAuth>,
}
