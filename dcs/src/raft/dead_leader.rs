//! A faster Raft election when the leader is certainly dead (its agent's lifeline certified it, see
//! [`DcsNode::release_dead`]). Left alone, a voter calls an election only after the leader lease it grants
//! the leader (`election_timeout_max`) and then its own randomized timeout have passed since the last
//! heartbeat: 0.9–1.2 s with the default timing. Knowing the leader dead, the surviving voter with the
//! lowest id calls it once the others' lease has certainly run out, `election_timeout_max` after the
//! certificate (the dead leader sent nothing after it died, which was before): about 0.65 s.

use super::node::DcsNode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vigil_fencing::MemberName;

/// What the voters' leader lease may lag behind this node's view, on top of `election_timeout_max`.
const SLACK: Duration = Duration::from_millis(50);

impl DcsNode {
    /// When `member`, certainly dead, leads the Raft group and this node is the surviving voter with the
    /// lowest id: calls an election once the other voters stop honouring the dead leader's lease, unless a
    /// new leader came first. Once per term; a one-shot task, over within `election_timeout_max`.
    pub fn hasten_election(&self, member: &MemberName) {
        let status = self.raft_status();
        let Some(leader) = status.leader else { return };
        if status.nodes.get(&leader).is_none_or(|node| node.name != member.as_str()) {
            return;
        }
        let first = status.voters.iter().copied().filter(|id| *id != leader).min();
        if first != Some(status.node_id)
            || self.hastened_term.swap(status.term, Ordering::Relaxed) == status.term
        {
            return;
        }
        let raft = self.raft.clone();
        let lease = Duration::from_millis(raft.config().election_timeout_max) + SLACK;
        tokio::spawn(async move {
            tokio::time::sleep(lease).await;
            if raft.metrics().borrow().current_leader == Some(leader) {
                tracing::info!(
                    dead_leader = leader,
                    ?lease,
                    "calling a Raft election: the leader's agent is certainly dead"
                );
                if let Err(e) = raft.trigger().elect().await {
                    tracing::warn!(error = %e, "Raft election not called");
                }
            }
        });
    }
}
