//! `GET`, `POST` and `DELETE /members`, `POST /members/promote`: the Raft group as operators see and
//! change it (`vigil members`).

use vigil_api::{ApiError, RaftMemberInfo};
use vigil_dcs::{ClusterState, DcsError, NodeId, RaftMember, RaftStatus};

/// Every node of the group, as this node's membership knows it.
pub(super) fn list(raft: &RaftStatus) -> Vec<RaftMemberInfo> {
    raft.nodes.iter().map(|(id, node)| info(raft, *id, node)).collect()
}

/// One node as `GET /members` shows it.
pub(super) fn info(raft: &RaftStatus, id: NodeId, node: &RaftMember) -> RaftMemberInfo {
    RaftMemberInfo {
        id,
        name: node.name.clone(),
        raft_addr: node.addr.clone(),
        raft_role: if raft.voters.contains(&id) { "voter" } else { "learner" }.to_owned(),
        witness: node.witness,
        raft_leader: raft.leader == Some(id),
        lag: raft.lag.get(&id).copied(),
    }
}

/// The id of the node `member` names: a member name, a node id or a Raft address.
pub(super) fn find(raft: &RaftStatus, member: &str) -> Result<NodeId, ApiError> {
    let named = |node: &RaftMember| node.name == member || node.addr == member;
    if let Some((id, _)) = raft.nodes.iter().find(|(_, node)| named(node)) {
        return Ok(*id);
    }
    match member.parse::<NodeId>() {
        Ok(id) if raft.nodes.contains_key(&id) => Ok(id),
        _ => Err(ApiError::new(404, format!("{member:?} is no member's name, node id or Raft address"))),
    }
}

/// Refuses to remove the primary: its database would go on taking writes outside the group.
pub(super) fn not_the_primary(state: &ClusterState, node: &RaftMember) -> Result<(), ApiError> {
    match &state.leader {
        Some(lease) if !node.name.is_empty() && lease.holder.as_str() == node.name => Err(ApiError::new(
            409,
            format!(
                "{} is the primary (it holds the lease, token {}): switch over first (vigil switchover), then \
                 remove it",
                node.name, lease.token
            ),
        )),
        _ => Ok(()),
    }
}

/// A membership change's failure as an answer: 409 for a refusal, 503 when the store did not answer.
pub(super) fn change_error(e: DcsError) -> ApiError {
    match e {
        DcsError::Refused(why) => ApiError::new(409, why),
        DcsError::Invalid(why) => ApiError::new(400, why),
        other => ApiError::new(503, format!("cluster store: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn raft() -> RaftStatus {
        let node =
            |addr: &str, name: &str, witness| RaftMember { addr: addr.into(), name: name.into(), witness };
        RaftStatus {
            node_id: 1,
            term: 2,
            leader: Some(1),
            voters: [1, 2, 3].into(),
            nodes: BTreeMap::from([
                (1, node("h1:5010", "pg1", false)),
                (2, node("h2:5010", "pg2", false)),
                (3, node("h3:5010", "w", true)),
                (7, node("h7:5010", "", false)),
            ]),
            lag: BTreeMap::from([(2, 0), (3, 1), (7, 400)]),
            last_applied: None,
            purged: None,
            committed: None,
        }
    }

    #[test]
    fn members_are_found_by_name_id_or_address() {
        let raft = raft();
        assert_eq!(find(&raft, "pg2").unwrap(), 2);
        assert_eq!(find(&raft, "h3:5010").unwrap(), 3);
        assert_eq!(find(&raft, "7").unwrap(), 7);
        let err = find(&raft, "pg9").unwrap_err();
        assert_eq!(err.status, 404);
        assert!(err.message.contains("\"pg9\""), "{}", err.message);
        assert_eq!(find(&raft, "9").unwrap_err().status, 404);
    }

    #[test]
    fn the_list_shows_roles_witnesses_and_lag() {
        let list = list(&raft());
        let roles: Vec<_> = list.iter().map(|m| (m.id, m.raft_role.as_str(), m.witness, m.lag)).collect();
        assert_eq!(
            roles,
            [
                (1, "voter", false, None),
                (2, "voter", false, Some(0)),
                (3, "voter", true, Some(1)),
                (7, "learner", false, Some(400))
            ]
        );
        assert!(list[0].raft_leader && !list[1].raft_leader);
    }
}
