//! A faster Raft election when the leader is certainly dead (its agent's lifeline certified it, see
//! [`DcsNode::release_dead`]). Left alone, a voter calls an election only after the leader lease it grants
//! the leader (`election_timeout_max`) and then its own randomized timeout have passed since the last
//! heartbeat: 0.9–1.2 s with the default timing. Knowing the leader dead, the surviving voter with a
//! database with the lowest id calls it once the others' lease has certainly run out: `election_timeout_max` after this node
//! last heard the leader (the others heard its heartbeats at about the same moment), about 0.55–0.65 s
//! after the death.

use super::node::{DcsNode, RaftStatus};
use super::NodeId;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vigil_fencing::MemberName;

/// What the voters' leader lease may lag behind this node's view, on top of `election_timeout_max`.
const SLACK: Duration = Duration::from_millis(50);

/// When this node last accepted an append (entries or a heartbeat) from the Raft leader, which renews the
/// lease this node grants that leader.
#[derive(Debug, Default)]
pub(crate) struct LeaderHeard(Mutex<Option<Instant>>);

impl LeaderHeard {
    /// Records an append accepted just now.
    pub(crate) fn now(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether this node accepted an append within `recently`.
    pub(crate) fn within(&self, recently: Duration) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).is_some_and(|at| at.elapsed() <= recently)
    }

    /// How long the voters may still honour the leader's lease: `lease` after this node last heard it
    /// (all of `lease` when it never did).
    fn lease_left(&self, lease: Duration) -> Duration {
        let heard = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        lease.saturating_sub(heard.map_or(Duration::ZERO, |at| at.elapsed()))
    }
}

impl RaftStatus {
    /// When the Raft leader is the node of `member`, and this node is the one to call an election in its
    /// place: the voter with a database with the lowest id other than the leader's (a witness runs no HA
    /// loop and gets no death certificate, so it would never call). Returns the leader's id.
    pub(crate) fn caller_against(&self, member: &MemberName) -> Option<NodeId> {
        let leader = self.leader?;
        let led_by_member = self.nodes.get(&leader).is_some_and(|node| node.name == member.as_str());
        let others = self.voters.iter().copied().filter(|id| *id != leader);
        let first = others.filter(|id| self.nodes.get(id).is_some_and(|node| !node.witness)).min();
        (led_by_member && first == Some(self.node_id)).then_some(leader)
    }
}

impl DcsNode {
    /// When `member`, certainly dead, leads the Raft group and this node is the one to call an election in
    /// its place ([`RaftStatus::caller_against`]): calls an election once the other voters stop honouring the dead leader's lease, unless a
    /// new leader came first. Once per term; a one-shot task, over within `election_timeout_max` and
    /// [`SLACK`].
    pub fn hasten_election(&self, member: &MemberName) {
        let status = self.raft_status();
        let Some(leader) = status.caller_against(member) else { return };
        if self.hastened_term.swap(status.term, Ordering::Relaxed) == status.term {
            return;
        }
        let raft = self.raft.clone();
        let lease = Duration::from_millis(raft.config().election_timeout_max) + SLACK;
        let wait = self.heard.lease_left(lease);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if raft.metrics().borrow().current_leader == Some(leader) {
                tracing::info!(
                    dead_leader = leader,
                    ?lease,
                    ?wait,
                    "calling a Raft election: the leader's agent is certainly dead"
                );
                if let Err(e) = raft.trigger().elect().await {
                    tracing::warn!(error = %e, "Raft election not called");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RaftMember;

    /// Node `me`'s view of a group of voters 1..=4, led by node 1 (`pg-1`), node 2 being a witness.
    fn group(me: NodeId) -> RaftStatus {
        let member =
            |id: NodeId| RaftMember { name: format!("pg-{id}"), witness: id == 2, ..RaftMember::at("") };
        RaftStatus {
            node_id: me,
            term: 3,
            leader: Some(1),
            voters: (1..=4).collect(),
            nodes: (1..=4).map(|id| (id, member(id))).collect(),
            lag: Default::default(),
            last_applied: None,
            purged: None,
            committed: None,
        }
    }

    #[test]
    fn the_caller_is_the_voter_with_a_database_and_the_lowest_id_but_the_leader() {
        let leader = MemberName::new("pg-1").unwrap();
        assert_eq!(group(3).caller_against(&leader), Some(1), "node 2 is a witness");
        assert_eq!(group(2).caller_against(&leader), None, "a witness never calls");
        assert_eq!(group(4).caller_against(&leader), None, "not the first");
        assert_eq!(group(3).caller_against(&MemberName::new("pg-4").unwrap()), None, "not the leader's node");
        assert_eq!(RaftStatus { leader: None, ..group(3) }.caller_against(&leader), None, "no leader");
    }

    #[test]
    fn the_lease_left_counts_from_the_last_append_heard() {
        let heard = LeaderHeard::default();
        let lease = Duration::from_millis(650);
        assert_eq!(heard.lease_left(lease), lease, "never heard: the whole lease, from now");
        *heard.0.lock().unwrap() = Some(Instant::now() - Duration::from_millis(400));
        let left = heard.lease_left(lease);
        assert!(left <= Duration::from_millis(250) && left > Duration::from_millis(150), "{left:?}");
        *heard.0.lock().unwrap() = Some(Instant::now() - Duration::from_secs(1));
        assert_eq!(heard.lease_left(lease), Duration::ZERO, "long gone: at once");
        heard.now();
        assert!(heard.lease_left(lease) > Duration::from_millis(600));
    }
}
