//! `vigil dsn`: a libpq connection string for the member asked for. Pure.

use super::args::MemberRole;
use super::targets;
use serde_json::Value;

/// `host=H port=P` of the member named `member`, else of the first member (by name) with `role`
/// (default: the leader), from a `GET /cluster` body.
pub fn dsn(cluster: &Value, role: Option<MemberRole>, member: Option<&str>) -> Result<String, String> {
    Ok(match address(cluster, role, member)? {
        (host, Some(port)) => format!("host={host} port={port}"),
        (host, None) => format!("host={host}"),
    })
}

/// The database host and port (when published) of the member [`dsn`] describes.
pub fn address(
    cluster: &Value,
    role: Option<MemberRole>,
    member: Option<&str>,
) -> Result<(String, Option<u16>), String> {
    let names: Vec<String> = member.map(str::to_owned).into_iter().collect();
    let role = if member.is_some() { MemberRole::Any } else { role.unwrap_or(MemberRole::Leader) };
    let chosen = targets::chosen(cluster, &names, role)?[0]; // `chosen` is never empty
    let name = chosen["name"].as_str().unwrap_or("");
    let host = chosen["host"].as_str().filter(|h| !h.is_empty());
    let host = host.ok_or_else(|| format!("{name} has not published its database address yet"))?;
    Ok((host.to_string(), chosen["port"].as_u64().and_then(|p| u16::try_from(p).ok())))
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
            dsn(&cluster(), Some(MemberRole::Replica), None).expect("replica"),
            "host=10.0.0.2 port=5433"
        );
        assert_eq!(dsn(&cluster(), Some(MemberRole::Any), None).expect("any"), "host=10.0.0.1 port=5432");
        assert_eq!(dsn(&cluster(), None, Some("n3")).expect("n3"), "host=10.0.0.3 port=5432");
    }

    #[test]
    fn missing_members_are_named() {
        assert_eq!(dsn(&cluster(), None, Some("n9")).expect_err("n9"), "n9 is not a member of cluster main");
        let leaderless = json!({"scope": "main", "members": [{"name": "a", "role": "replica", "host": "h"}]});
        assert_eq!(
            dsn(&leaderless, None, None).expect_err("no leader"),
            "cluster main has no member with role leader"
        );
        assert_eq!(dsn(&leaderless, Some(MemberRole::Replica), None).expect("replica"), "host=h");
    }
}
