//! `haproxy`: when set, the agent tells HAProxy through its Runtime API which server takes writes the
//! moment this member's `/primary` answer changes, rather than waiting for HAProxy's next health check.
//! The push only accelerates: the `/primary` checks stay configured and correct whatever was pushed.

use super::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `haproxy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    /// The Runtime API of every HAProxy in front of the cluster (each a `stats socket … level admin`):
    /// a unix socket path (`/run/haproxy/admin.sock`, `unix@/run/haproxy/admin.sock`) or a TCP address
    /// (`ipv4@127.0.0.1:9999`, `ipv6@[::1]:9999`, `127.0.0.1:9999`).
    pub runtime_api: Vec<String>,
    /// The read-write backend (`listen` or `backend` section) whose servers are the members.
    pub backend: String,
    /// The server name of a member in that backend, by member name; a member left out is the server of
    /// its own name.
    #[serde(default)]
    pub servers: BTreeMap<String, String>,
}

/// Where a Runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeApi {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl std::fmt::Display for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeApi::Unix(path) => write!(f, "unix@{}", path.display()),
            RuntimeApi::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

impl RuntimeApi {
    /// Reads an address as HAProxy's `stats socket` writes it.
    pub fn parse(text: &str) -> Result<RuntimeApi, String> {
        let text = text.trim();
        let tcp = |addr: &str| {
            addr.parse::<SocketAddr>()
                .map(RuntimeApi::Tcp)
                .map_err(|_| format!("{text:?} is not a host:port with an IP address"))
        };
        if let Some(path) = text.strip_prefix("unix@") {
            return unix(text, path);
        }
        if let Some(addr) = text.strip_prefix("ipv4@") {
            return tcp(addr).and_then(|api| match api {
                RuntimeApi::Tcp(a) if a.is_ipv4() => Ok(api),
                _ => Err(format!("{text:?}: ipv4@ needs an IPv4 address")),
            });
        }
        if let Some(addr) = text.strip_prefix("ipv6@") {
            return tcp(addr).and_then(|api| match api {
                RuntimeApi::Tcp(a) if a.is_ipv6() => Ok(api),
                _ => Err(format!("{text:?}: ipv6@ needs an IPv6 address in brackets ([::1]:9999)")),
            });
        }
        if text.starts_with('/') {
            return unix(text, text);
        }
        tcp(text).map_err(|_| {
            format!("{text:?} is neither an absolute socket path nor an IP address with a port (ipv4@127.0.0.1:9999)")
        })
    }
}

fn unix(text: &str, path: &str) -> Result<RuntimeApi, String> {
    match path.starts_with('/') {
        true => Ok(RuntimeApi::Unix(PathBuf::from(path))),
        false => Err(format!("{text:?}: the socket path must be absolute")),
    }
}

impl HaproxyConfig {
    /// The Runtime API addresses, read (see [`HaproxyConfig::validate`]).
    pub fn addresses(&self) -> Vec<RuntimeApi> {
        self.runtime_api.iter().filter_map(|a| RuntimeApi::parse(a).ok()).collect()
    }

    /// The server of `member` in the backend.
    pub fn server_of<'a>(&'a self, member: &'a str) -> &'a str {
        self.servers.get(member).map_or(member, String::as_str)
    }

    /// Checks the addresses and the names (which go into Runtime API commands as they are).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.runtime_api.is_empty() {
            return Err(ConfigError::invalid(
                "haproxy.runtime_api",
                "is empty: name at least one HAProxy stats socket (`level admin`)",
            ));
        }
        for (i, address) in self.runtime_api.iter().enumerate() {
            RuntimeApi::parse(address)
                .map_err(|why| ConfigError::invalid(format!("haproxy.runtime_api[{i}]"), why))?;
        }
        name("haproxy.backend", &self.backend)?;
        for (member, server) in &self.servers {
            name(&format!("haproxy.servers.{member}"), server)?;
        }
        Ok(())
    }
}

/// A backend or server name: not empty, nothing that would end or split a Runtime API command.
fn name(key: &str, value: &str) -> Result<(), ConfigError> {
    let bad = value.is_empty()
        || value.chars().any(|c| c.is_whitespace() || c.is_control() || c == ';' || c == '/');
    match bad {
        true => Err(ConfigError::invalid(
            key,
            format!("{value:?} is not a HAProxy name (not empty, no spaces, `;` or `/`)"),
        )),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_addresses_read_as_haproxy_writes_them() {
        let unix = RuntimeApi::Unix(PathBuf::from("/run/haproxy/admin.sock"));
        assert_eq!(RuntimeApi::parse("/run/haproxy/admin.sock"), Ok(unix.clone()));
        assert_eq!(RuntimeApi::parse("unix@/run/haproxy/admin.sock"), Ok(unix));
        let tcp = RuntimeApi::Tcp("127.0.0.1:9999".parse().expect("addr"));
        assert_eq!(RuntimeApi::parse("ipv4@127.0.0.1:9999"), Ok(tcp.clone()));
        assert_eq!(RuntimeApi::parse("127.0.0.1:9999"), Ok(tcp));
        assert!(RuntimeApi::parse("ipv6@[::1]:9999").is_ok());
        assert!(RuntimeApi::parse("ipv4@[::1]:9999").is_err());
        assert!(RuntimeApi::parse("unix@run/admin.sock").is_err());
        assert!(RuntimeApi::parse("haproxy:9999").is_err());
    }
}
