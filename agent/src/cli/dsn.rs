//! `vigil dsn`: a libpq connection string for the member asked for. Pure.

use super::args::DsnRole;
use super::list::is_leader;
use serde_json::Value;

/// `host=H port=P` of the member named `member`, else of the first member (by name) with `role`
/// (default: the leader), from a `GET /cluster` body.
pub fn dsn(cluster: &Value, role: Option<DsnRole>, member: Option<&str>) -> Result<String, String> {
    let scope = cluster["scope"].as_str().unwrap_or("");
    let mut members: Vec<&Value> =
        cluster["members"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    members.sort_by_key(|m| m["name"].as_str().unwrap_or("").to_string());
    let chosen = match (member, role.unwrap_or(DsnRole::Primary)) {
        (Some(name), _) => members
            .iter()
            .find(|m| m["name"].as_str() == Some(name))
            .ok_or_else(|| format!("{name} is not a member of cluster {scope}"))?,
        (None, DsnRole::Primary) => {
            members.iter().find(|m| is_leader(m)).ok_or_else(|| format!("cluster {scope} has no leader"))?
        }
        (None, DsnRole::Replica) => {
            members.iter().find(|m| !is_leader(m)).ok_or_else(|| format!("cluster {scope} has no replica"))?
        }
        (None, DsnRole::Any) => members.first().ok_or_else(|| format!("cluster {scope} has no members"))?,
    };
    let name = chosen["name"].as_str().unwrap_or("");
    let host = chosen["host"].as_str().filter(|h| !h.is_empty());
    let host = host.ok_or_else(|| format!("{name} has not published its database address yet"))?;
    Ok(match chosen["port"].as_u64() {
        Some(port) => format!("host={host} port={port}"),
        None => format!("host={host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Value {
        json!({"scope": "main", "members": [
            {"name": "n3", "role": "replica", "host": "10.0.0.3", "port": 5432},
            {"name": "n1", "role": "leader", "host": "10.0.0.1", "port": 5432},
            {"name": "n2", "role": "replica", "host": "10.0.0.2", "port": 5433}]})
    }

    #[test]
    fn the_leader_by_default_a_replica_or_a_named_member() {
        assert_eq!(dsn(&cluster(), None, None).expect("leader"), "host=10.0.0.1 port=5432");
        assert_eq!(
            dsn(&cluster(), Some(DsnRole::Replica), None).expect("replica"),
            "host=10.0.0.2 port=5433"
        );
        assert_eq!(dsn(&cluster(), Some(DsnRole::Any), None).expect("any"), "host=10.0.0.1 port=5432");
        assert_eq!(dsn(&cluster(), None, Some("n3")).expect("n3"), "host=10.0.0.3 port=5432");
    }

    #[test]
    fn missing_members_are_named() {
        assert_eq!(dsn(&cluster(), None, Some("n9")).expect_err("n9"), "n9 is not a member of cluster main");
        let leaderless = json!({"scope": "main", "members": [{"name": "a", "role": "replica", "host": "h"}]});
        assert_eq!(dsn(&leaderless, None, None).expect_err("no leader"), "cluster main has no leader");
        assert_eq!(dsn(&leaderless, Some(DsnRole::Replica), None).expect("replica"), "host=h");
    }
}
