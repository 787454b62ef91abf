//! [`HostPort`]: a `host:port` address as the configuration writes it.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A `host:port` address: an IPv4 address, a host name, or an IPv6 address in brackets (`[::1]:5432`),
/// then a port from 1 to 65535. `postgresql.listen` may also use `*` or a comma-separated list as host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPort {
    /// The host, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// True when the host is a loopback address (`127.0.0.0/8`, `::1`, `::ffff:127.x`) or `localhost`:
    /// reachable from this machine only.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.to_canonical().is_loopback())
    }

    /// True when the host is not one address others can connect to: `*`, `0.0.0.0`, `::` or a list.
    pub fn is_wildcard(&self) -> bool {
        matches!(self.host.as_str(), "*" | "0.0.0.0" | "::") || self.host.contains(',')
    }
}

impl FromStr for HostPort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{s:?} is not host:port ({why})");
        let (host, port) = match s.strip_prefix('[') {
            Some(rest) => rest.split_once("]:").ok_or_else(|| bad("write IPv6 as [::1]:5432"))?,
            None => s.rsplit_once(':').ok_or_else(|| bad("the port is missing"))?,
        };
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the host is empty or has white space"));
        }
        if s.starts_with('[') != host.contains(':') && !host.contains(',') {
            return Err(bad("write IPv6 as [::1]:5432"));
        }
        let port = match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(bad("the port must be 1 to 65535")),
        };
        Ok(HostPort { host: host.to_string(), port })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') && !self.host.contains(',') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for HostPort {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HostPort;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("host:port, e.g. 127.0.0.1:5432")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HostPort, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> Result<HostPort, String> {
        s.parse()
    }

    #[test]
    fn parses_hosts_names_ipv6_and_lists() {
        assert_eq!(hp("127.0.0.1:5432"), Ok(HostPort { host: "127.0.0.1".into(), port: 5432 }));
        assert_eq!(hp("db-1.example:8008").unwrap().host, "db-1.example");
        let v6 = hp("[::1]:5432").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5432));
        assert_eq!(v6.to_string(), "[::1]:5432");
        let list = hp("127.0.0.1,::1:5432").unwrap();
        assert_eq!((list.host.as_str(), list.port, list.is_wildcard()), ("127.0.0.1,::1", 5432, true));
        assert_eq!(list.to_string(), "127.0.0.1,::1:5432");
        assert!(hp("*:5432").unwrap().is_wildcard());
    }

    #[test]
    fn refuses_what_is_not_host_port() {
        for bad in ["127.0.0.1", ":5432", "h:0", "h:65536", "h:+5", "h:x", "::1:5432", "[::1]5432", "a b:1"] {
            let err = hp(bad).unwrap_err();
            assert!(err.starts_with(&format!("{bad:?} is not host:port")), "{bad}: {err}");
        }
    }
}
