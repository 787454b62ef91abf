//! Which members a command acts on, from a `GET /cluster` body: `[CLUSTER] [MEMBER...]` as patronictl
//! takes them, and `-r/--role`. Pure.

use super::args::MemberRole;
use super::list::is_leader;
use clap::ValueEnum;
use serde_json::Value;

/// A member a command goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its REST API's base URL.
    pub url: String,
}

/// Whether `member` (from `GET /cluster`) has `role`.
pub fn has_role(member: &Value, role: MemberRole) -> bool {
    let name = member["role"].as_str().unwrap_or("");
    match role {
        MemberRole::Leader => is_leader(member),
        MemberRole::Primary => matches!(name, "leader" | "primary" | "master"),
        MemberRole::StandbyLeader => name == "standby_leader",
        MemberRole::Replica => !is_leader(member),
        MemberRole::Any => true,
    }
}

/// The member names in `names`, a leading cluster name taken off: patronictl's `CLUSTER [MEMBER...]`,
/// where Vigil also takes `MEMBER...` alone. A first name that is neither the cluster's nor a member's is
/// an error naming both.
pub fn member_names<'a>(names: &'a [String], cluster: &Value) -> Result<&'a [String], String> {
    let scope = cluster["scope"].as_str().unwrap_or("");
    let Some(first) = names.first() else { return Ok(names) };
    if first == scope {
        return Ok(&names[1..]);
    }
    if members(cluster).any(|m| m["name"].as_str() == Some(first.as_str())) {
        return Ok(names);
    }
    Err(format!("{first} is neither this cluster's name ({scope}) nor one of its members"))
}

/// The members to act on, sorted by name, with their REST API: see [`chosen`].
pub fn select(cluster: &Value, names: &[String], role: MemberRole) -> Result<Vec<Member>, String> {
    chosen(cluster, names, role)?
        .into_iter()
        .map(|m| {
            let name = m["name"].as_str().unwrap_or("").to_string();
            match m["api_url"].as_str() {
                Some(url) => Ok(Member { name, url: super::client::base_url(url) }),
                None => Err(format!("{name} has published no REST address")),
            }
        })
        .collect()
}

/// The members (from a `GET /cluster` body) sorted by name: those named (each must be a member;
/// those without `role` are left out), or, when none is named, every member with `role`. An error when
/// that leaves none.
pub fn chosen<'a>(cluster: &'a Value, names: &[String], role: MemberRole) -> Result<Vec<&'a Value>, String> {
    let scope = cluster["scope"].as_str().unwrap_or("");
    let named = |m: &Value| names.iter().any(|n| m["name"].as_str() == Some(n.as_str()));
    if let Some(stranger) =
        names.iter().find(|n| !members(cluster).any(|m| m["name"].as_str() == Some(n.as_str())))
    {
        return Err(format!("{stranger} is not a member of cluster {scope}"));
    }
    let mut chosen: Vec<&Value> =
        members(cluster).filter(|m| has_role(m, role) && (names.is_empty() || named(m))).collect();
    chosen.sort_by_key(|m| m["name"].as_str().unwrap_or(""));
    if chosen.is_empty() {
        let role = role.to_possible_value().map_or_else(String::new, |v| v.get_name().to_string());
        return Err(match names.is_empty() {
            true => format!("cluster {scope} has no member with role {role}"),
            false => format!("none of {} has role {role}", names.join(", ")),
        });
    }
    Ok(chosen)
}

/// The members of a `GET /cluster` body.
fn members(cluster: &Value) -> impl Iterator<Item = &Value> {
    cluster["members"].as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> Value {
        json!({"scope": "batman", "members": [
            {"name": "n2", "role": "replica", "api_url": "http://h2:8008/patroni"},
            {"name": "n1", "role": "leader", "api_url": "http://h1:8008/patroni"},
            {"name": "n3", "role": "sync_standby", "api_url": "http://h3:8008/patroni"}]})
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn chosen(members: &[Member]) -> Vec<&str> {
        members.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn the_cluster_name_comes_first_or_not_at_all() {
        let c = cluster();
        assert_eq!(member_names(&names(&["batman", "n1"]), &c), Ok(&names(&["n1"])[..]));
        assert_eq!(member_names(&names(&["n2", "n3"]), &c), Ok(&names(&["n2", "n3"])[..]));
        assert_eq!(member_names(&[], &c), Ok(&[][..]));
        assert_eq!(
            member_names(&names(&["robin"]), &c),
            Err("robin is neither this cluster's name (batman) nor one of its members".to_string())
        );
    }

    #[test]
    fn no_name_means_every_member_with_the_role() {
        let c = cluster();
        assert_eq!(chosen(&select(&c, &[], MemberRole::Any).expect("all")), ["n1", "n2", "n3"]);
        assert_eq!(chosen(&select(&c, &[], MemberRole::Replica).expect("replicas")), ["n2", "n3"]);
        let leader = select(&c, &[], MemberRole::Primary).expect("primary");
        assert_eq!(leader, [Member { name: "n1".into(), url: "http://h1:8008".into() }]);
        let err = select(&c, &[], MemberRole::StandbyLeader).expect_err("none");
        assert_eq!(err, "cluster batman has no member with role standby-leader");
    }

    #[test]
    fn named_members_must_exist_and_are_filtered_by_role() {
        let c = cluster();
        assert_eq!(chosen(&select(&c, &names(&["n3", "n1"]), MemberRole::Any).expect("two")), ["n1", "n3"]);
        assert_eq!(chosen(&select(&c, &names(&["n3", "n1"]), MemberRole::Replica).expect("one")), ["n3"]);
        assert_eq!(
            select(&c, &names(&["n1", "n9"]), MemberRole::Any),
            Err("n9 is not a member of cluster batman".to_string())
        );
        assert_eq!(
            select(&c, &names(&["n1"]), MemberRole::Replica),
            Err("none of n1 has role replica".to_string())
        );
    }
}
