//! `restapi.allowlist_include_members`: whether a client address is a member's, from this node's view
//! of the store (no store read): the hosts of the members' `api_url` and `conn_url`.

use crate::config::HostPort;
use crate::member::MemberRecord;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use vigil_dcs::MemberName;

/// How long a member's host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The members' `api_url` and database (`conn_url`) hosts.
pub(super) fn member_hosts(records: &BTreeMap<MemberName, MemberRecord>) -> Vec<String> {
    let mut hosts: Vec<String> =
        records.values().flat_map(|m| [url_host(&m.api_url), Some(m.host.clone())]).flatten().collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The host of `scheme://[user@]host[:port]/path`, without IPv6 brackets.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match authority.parse::<HostPort>() {
        Ok(hp) => hp.host,
        Err(_) => authority.trim_start_matches('[').trim_end_matches(']').to_owned(),
    };
    (!host.is_empty()).then_some(host)
}

/// Whether `ip` is one of `hosts`: addresses compare directly, then host names are resolved (one that
/// does not resolve in time matches nothing).
pub(super) async fn is_member(hosts: &[String], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let (addresses, names): (Vec<_>, Vec<_>) = hosts.iter().partition(|h| h.parse::<IpAddr>().is_ok());
    if addresses.iter().any(|h| h.parse::<IpAddr>().is_ok_and(|a| a.to_canonical() == ip)) {
        return true;
    }
    for name in names {
        let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name.as_str(), 0))).await;
        match lookup {
            Ok(Ok(mut found)) => {
                if found.any(|a| a.ip().to_canonical() == ip) {
                    return true;
                }
            }
            Ok(Err(e)) => tracing::debug!(host = %name, error = %e, "member host name not resolved"),
            Err(_) => tracing::debug!(host = %name, "member host name not resolved in time"),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(api_url: &str, host: &str) -> MemberRecord {
        serde_json::from_value(serde_json::json!({
            "conn_url": format!("postgres://{host}:5432/postgres"), "api_url": api_url,
            "state": "running", "role": "replica", "host": host, "port": 5432,
        }))
        .expect("a member record")
    }

    #[tokio::test]
    async fn members_api_and_database_hosts_are_members_addresses() {
        let mut records = BTreeMap::new();
        for (name, api, db) in [
            ("a", "https://10.1.0.1:8008/patroni", "10.2.0.1"),
            ("b", "http://[fd00::2]:8008/patroni", "localhost"),
        ] {
            records.insert(MemberName::new(name).expect("name"), record(api, db));
        }
        let hosts = member_hosts(&records);
        assert_eq!(hosts, ["10.1.0.1", "10.2.0.1", "fd00::2", "localhost"]);
        for member in ["10.1.0.1", "10.2.0.1", "fd00::2", "::ffff:10.1.0.1", "127.0.0.1"] {
            assert!(is_member(&hosts, member.parse().expect("ip")).await, "{member}");
        }
        assert!(!is_member(&hosts, "10.1.0.2".parse().expect("ip")).await);
        assert!(!is_member(&[], "10.1.0.1".parse().expect("ip")).await);
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://u:p@db1.example:8008/patroni").as_deref(), Some("db1.example"));
        assert_eq!(url_host("http://[::1]/patroni").as_deref(), Some("::1"));
        assert_eq!(url_host("http:///patroni"), None);
    }
}
