//! Whom each replica streams and clones from: cascading replication (a member's `replicatefrom` tag) and
//! preferred clone sources (`clonefrom`), read from the members' published records. Pure functions.
//!
//! A member with `replicatefrom: X` streams from X while X runs as a replica whose own chain of
//! `replicatefrom` does not lead back to the member; otherwise (X down, promoted, absent, or a cycle) it
//! streams from the lease holder. Whoever a member streams from retains what it needs (a replication
//! slot), and nobody else does.

use crate::{ClusterView, MemberName, Upstream};

/// The member `name` (whose `replicatefrom` is `wanted`) streams from, besides the lease holder `holder`:
/// `wanted` while it is another member running as a replica and its chain does not lead back to `name`.
/// `None`: it streams from the holder.
pub fn cascade_source<'a>(
    cluster: &'a ClusterView,
    name: &str,
    wanted: Option<&str>,
    holder: &str,
) -> Option<&'a MemberName> {
    let wanted = wanted.filter(|w| *w != name && *w != holder)?;
    let (source, _) = cluster.members.iter().find(|(n, m)| n.as_str() == wanted && m.is_running_replica())?;
    let mut at = source;
    for _ in 0..cluster.members.len() {
        let Some(next) = cluster.members.get(at).and_then(|m| m.replicate_from.as_deref()) else { break };
        if next == name {
            return None;
        }
        match cluster.members.iter().find(|(n, m)| n.as_str() == next && m.is_running_replica()) {
            Some((member, _)) => at = member,
            None => break,
        }
    }
    Some(source)
}

/// The members that stream from `me` under lease holder `holder` (`me` itself when it is the holder):
/// those a replication slot is kept for on `me`. A member with `nostream` streams from nobody.
pub fn streaming_from(cluster: &ClusterView, me: &MemberName, holder: &MemberName) -> Vec<String> {
    let others = cluster.members.iter().filter(|(name, m)| *name != me && *name != holder && !m.nostream);
    others
        .filter(|(name, m)| {
            let source = cascade_source(cluster, name.as_str(), m.replicate_from.as_deref(), holder.as_str());
            match source {
                Some(source) => source == me,
                None => me == holder,
            }
        })
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Where `me` clones its data from: the first member by name with `clonefrom` that runs as a replica,
/// else `primary`.
pub fn clone_source(cluster: &ClusterView, me: &MemberName, primary: Upstream) -> Upstream {
    let preferred =
        cluster.members.iter().find(|(name, m)| *name != me && m.clone_from && m.is_running_replica());
    preferred.map_or(primary, |(name, m)| m.upstream(name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemberView;

    fn member(role: &str, replicate_from: Option<&str>) -> MemberView {
        MemberView {
            state: "running".into(),
            role: role.into(),
            position: None,
            timeline: None,
            host: "h".into(),
            port: 5432,
            api_url: String::new(),
            can_fail_over: true,
            nosync: false,
            sync_priority: 1,
            sync_state: None,
            replicate_from: replicate_from.map(str::to_owned),
            clone_from: false,
            nostream: false,
        }
    }

    fn name(n: &str) -> MemberName {
        MemberName::new(n).unwrap()
    }

    fn cluster(members: &[(&str, MemberView)]) -> ClusterView {
        ClusterView {
            members: members.iter().map(|(n, m)| (name(n), m.clone())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_replica_cascades_from_a_running_replica_and_falls_back_to_the_holder() {
        let c = cluster(&[
            ("p", member("primary", None)),
            ("a", member("replica", None)),
            ("b", member("replica", Some("a"))),
        ]);
        assert_eq!(cascade_source(&c, "b", Some("a"), "p"), Some(&name("a")));
        assert_eq!(streaming_from(&c, &name("a"), &name("p")), ["b"]);
        assert_eq!(streaming_from(&c, &name("p"), &name("p")), ["a"]);

        let mut stopped = c.clone();
        stopped.members.get_mut(&name("a")).unwrap().state = "stopped".into();
        assert_eq!(cascade_source(&stopped, "b", Some("a"), "p"), None, "its upstream is down");
        assert_eq!(streaming_from(&stopped, &name("p"), &name("p")), ["a", "b"]);
        stopped.members.get_mut(&name("b")).unwrap().nostream = true;
        assert_eq!(
            streaming_from(&stopped, &name("p"), &name("p")),
            ["a"],
            "nothing kept for an archive-only member"
        );

        assert_eq!(
            cascade_source(&c, "b", Some("p"), "p"),
            None,
            "replicatefrom the primary is plain streaming"
        );
        assert_eq!(cascade_source(&c, "b", Some("zz"), "p"), None, "an unknown member");
        assert_eq!(cascade_source(&c, "b", Some("b"), "p"), None, "itself");
        // a is promoted: b follows the chain to the new primary.
        assert_eq!(cascade_source(&c, "b", Some("a"), "a"), None);
    }

    #[test]
    fn a_cycle_of_replicatefrom_falls_back_to_the_holder() {
        let c = cluster(&[
            ("p", member("primary", None)),
            ("a", member("replica", Some("c"))),
            ("b", member("replica", Some("a"))),
            ("c", member("replica", Some("b"))),
        ]);
        for n in ["a", "b", "c"] {
            let wanted = c.members[&name(n)].replicate_from.clone();
            assert_eq!(cascade_source(&c, n, wanted.as_deref(), "p"), None, "{n}");
        }
        assert_eq!(streaming_from(&c, &name("p"), &name("p")), ["a", "b", "c"]);
        // A chain that ends at a replica streaming from the primary is fine, however long.
        let chain = cluster(&[
            ("p", member("primary", None)),
            ("a", member("replica", None)),
            ("b", member("replica", Some("a"))),
            ("c", member("replica", Some("b"))),
        ]);
        assert_eq!(cascade_source(&chain, "c", Some("b"), "p"), Some(&name("b")));
        assert_eq!(streaming_from(&chain, &name("b"), &name("p")), ["c"]);
    }

    #[test]
    fn clones_come_from_a_running_clonefrom_member_else_the_primary() {
        let primary = Upstream {
            name: "p".into(),
            host: "hp".into(),
            port: 1,
            api_url: String::new(),
            slot: Default::default(),
        };
        let mut c = cluster(&[
            ("p", member("primary", None)),
            ("a", member("replica", None)),
            ("b", member("replica", None)),
        ]);
        assert_eq!(clone_source(&c, &name("x"), primary.clone()).name, "p");
        c.members.get_mut(&name("b")).unwrap().clone_from = true;
        assert_eq!(clone_source(&c, &name("x"), primary.clone()).name, "b");
        assert_eq!(clone_source(&c, &name("b"), primary.clone()).name, "p", "never from itself");
        c.members.get_mut(&name("b")).unwrap().state = "stopped".into();
        assert_eq!(clone_source(&c, &name("x"), primary).name, "p");
    }
}
