//! Patroni's `restapi.allowlist` and `restapi.allowlist_include_members`: once either is set, a mutating
//! call (anything but GET, HEAD, OPTIONS) from an address that is not allowed answers 403 with a JSON
//! error. Reads (health checks, status, cluster view) stay open, as load balancers need them.
//!
//! Entries are IP addresses, CIDR networks or host names ([`AllowEntry`]); host names are resolved once,
//! at start ([`resolve`]). The client's address is the TCP peer's ([`ConnectInfo`], set by
//! [`crate::tls::serve`] over HTTP and HTTPS); a request without one is refused.

use crate::{ApiError, Management};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// An IP network: an address and a prefix length (a single address has the full length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// The network of one address.
    pub fn single(addr: IpAddr) -> Network {
        Network { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }

    /// Whether `ip` is in the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // Both kinds as the top bits of a u128, so the mask is the top `prefix` bits for either.
        let bits = |ip: IpAddr| match ip.to_canonical() {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, true),
            IpAddr::V6(v6) => (u128::from(v6), false),
        };
        let ((net, v4), (ip, ip_v4)) = (bits(self.addr), bits(ip));
        let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
        v4 == ip_v4 && net & mask == ip & mask
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
        let addr = IpAddr::from_str(addr).map_err(|_| format!("{addr:?} is not an IP address"))?;
        let width = Network::single(addr).prefix;
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("the prefix length {p:?} must be 0 to {width}")),
            },
        };
        Ok(Network { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One `restapi.allowlist` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    /// An address or a CIDR network.
    Network(Network),
    /// A host name, resolved at start.
    Host(String),
}

impl FromStr for AllowEntry {
    type Err = String;

    /// An IP address, a CIDR network or a host name; anything else says why it is none of them.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let looks_like_ip = text.contains('/') || text.contains(':') || text.parse::<IpAddr>().is_ok();
        let all_numeric = text.split('.').all(|label| label.bytes().all(|b| b.is_ascii_digit()));
        if looks_like_ip || all_numeric {
            return text.parse().map(AllowEntry::Network);
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if text.len() <= 253 && text.trim_end_matches('.').split('.').all(label_ok) {
            return Ok(AllowEntry::Host(text.to_owned()));
        }
        Err(format!("{text:?} is not an IP address, a CIDR network or a host name"))
    }
}

/// How long a host name of the allowlist may take to resolve.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The networks of `entries`, host names resolved to their addresses; a name that does not resolve is
/// logged and left out (it allows nothing).
pub async fn resolve(entries: &[AllowEntry]) -> Vec<Network> {
    let mut networks = Vec::new();
    for entry in entries {
        match entry {
            AllowEntry::Network(net) => networks.push(*net),
            AllowEntry::Host(host) => {
                let lookup = tokio::net::lookup_host((host.as_str(), 0));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(addrs)) => networks.extend(addrs.map(|a| Network::single(a.ip()))),
                    Ok(Err(e)) => {
                        tracing::warn!(host = %host, error = %e, "restapi.allowlist: host not resolved")
                    }
                    Err(_) => tracing::warn!(host = %host, "restapi.allowlist: host not resolved in time"),
                }
            }
        }
    }
    networks
}

/// Who may make mutating calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    /// `restapi.allowlist`, resolved.
    pub networks: Vec<Network>,
    /// `restapi.allowlist_include_members`: the members' addresses are allowed too (asked of the agent,
    /// [`Management::is_member_address`]).
    pub include_members: bool,
}

type Checked = Arc<(Allowlist, Arc<dyn Management>)>;

/// Adds the allowlist check to `router`; `agent` says which addresses are members'.
pub fn restrict(router: Router, allowlist: Allowlist, agent: Arc<dyn Management>) -> Router {
    router.layer(middleware::from_fn_with_state(Arc::new((allowlist, agent)), allowed_for_changes))
}

async fn allowed_for_changes(State(checked): State<Checked>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let (allowlist, agent) = checked.as_ref();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_canonical());
    let Some(ip) = peer else {
        return ApiError::new(403, "access denied: the client's address is unknown").into_response();
    };
    if allowlist.networks.iter().any(|n| n.contains(ip))
        || (allowlist.include_members && agent.is_member_address(ip).await)
    {
        return next.run(request).await;
    }
    tracing::debug!(client = %ip, method = %request.method(), path = %request.uri().path(), "call refused by the allowlist");
    let message = format!(
        "access denied: {ip} is not in restapi.allowlist{}",
        if allowlist.include_members { " nor a member's address" } else { "" }
    );
    ApiError::new(403, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Network {
        text.parse().expect("a network")
    }

    #[test]
    fn networks_contain_their_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(net("10.0.0.0/8").contains(ip("10.200.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("0.0.0.0/0").contains(ip("192.0.2.1")) && !net("0.0.0.0/0").contains(ip("::2")));
        assert!(net("fd00::/8").contains(ip("fd12::1")) && !net("fd00::/8").contains(ip("fe80::1")));
        assert!(net("::/0").contains(ip("::1")) && net("::1").contains(ip("::1")));
    }

    #[tokio::test]
    async fn host_names_resolve_to_their_addresses() {
        let entries = [AllowEntry::Network(net("10.0.0.0/8")), AllowEntry::Host("localhost".into())];
        let networks = resolve(&entries).await;
        assert_eq!(networks[0], net("10.0.0.0/8"));
        assert!(networks[1..].iter().any(|n| n.contains(IpAddr::from([127, 0, 0, 1]))), "{networks:?}");
    }

    #[test]
    fn entries_parse_or_say_why_not() {
        assert_eq!("db-1.example.com".parse(), Ok(AllowEntry::Host("db-1.example.com".into())));
        assert_eq!(" 192.0.2.0/24".parse(), Ok(AllowEntry::Network(net("192.0.2.0/24"))));
        for bad in
            ["10.0.0.0/33", "10.0.0.0/", "::1/129", "10.0.0.300", "10.1", "not a host", "-x.com", "a/b"]
        {
            assert!(bad.parse::<AllowEntry>().is_err(), "{bad} accepted");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<AllowEntry>(),
            Err("the prefix length \"33\" must be 0 to 32".to_string())
        );
    }
}
