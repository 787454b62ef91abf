//! Keeping the Raft leadership off the lease holder's node. When the node that leads the Raft group dies,
//! the survivors first wait out the Raft lease they granted it and elect a new leader, whose lessor then
//! restarts every lease timer: a primary whose node led Raft is replaced an election later (about 0.7 s
//! more when its lifeline certifies its death, an election and a whole `ttl` more when it dies silently).
//! So a follower takes the leadership from the lease holder's node while both are well.
//!
//! openraft 0.9 has no leadership transfer, but a leader that has led longer than the Raft lease
//! (`election_timeout_max`) votes for a candidate of a later term whose log is as long as its own, and
//! steps down. The other voters still honour its lease and refuse, so the caller has two votes: a majority
//! of two or three voters (a larger group keeps its leader where it is). Only one voter may call (the
//! voter with a database with the lowest id other than the leader's), so that two candidates do not split
//! the votes. It calls only while it hears the leader, just after an entry arrived (its log is then as long
//! as the leader's, unless a write came in the last milliseconds: then the leader refuses, the group elects
//! anew within about a second, and the next attempt comes a [`PAUSE`] later), and only once the grant has
//! been held for [`SETTLE`].

use super::node::DcsNode;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vigil_fencing::{FencingToken, MemberName};

/// How long a grant must have been seen held before its holder's node loses the leadership: not in the
/// middle of a failover, when the new primary's first writes should not wait for an election.
pub(crate) const SETTLE: Duration = Duration::from_secs(10);

/// Between two elections this node calls to take the leadership off the holder's node.
pub(crate) const PAUSE: Duration = Duration::from_secs(10);

/// How long the caller waits for the next entry to arrive before it calls the election (the lease holder
/// renews every `loop_wait`, so one comes within a second at rest).
const NEXT_ENTRY: Duration = Duration::from_secs(2);

/// How recently this node must have heard the leader to call an election: about two heartbeats.
const HEARD_WITHIN: Duration = Duration::from_millis(250);

/// The grant this node last saw held, since when, and when it last called an election to take the
/// leadership off the holder's node.
#[derive(Debug, Default)]
pub(crate) struct Placement(Mutex<PlacementState>);

#[derive(Debug, Default)]
struct PlacementState {
    grant: Option<(FencingToken, Instant)>,
    last_call: Option<Instant>,
}

impl Placement {
    /// Whether an election may be called now for `token`, seen held now: held for `settle` at least, and no
    /// call within `pause`; if so, records the call.
    fn may_call(&self, token: FencingToken, settle: Duration, pause: Duration) -> bool {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let since = match state.grant {
            Some((seen, since)) if seen == token => since,
            _ => state.grant.insert((token, Instant::now())).1,
        };
        if since.elapsed() < settle || state.last_call.is_some_and(|at| at.elapsed() < pause) {
            return false;
        }
        state.last_call = Some(Instant::now());
        true
    }
}

impl DcsNode {
    /// When the Raft leader is the node of `holder`, which holds the lease with `token` (seen held for
    /// [`SETTLE`]), and this node is the voter with a database with the lowest id among the others and
    /// hears the leader: calls an election to take the leadership (see the module). At most once per
    /// [`PAUSE`]; returns whether it called one.
    pub fn draw_leadership_from(&self, holder: &MemberName, token: FencingToken) -> bool {
        let status = self.raft_status();
        let Some(leader) = status.caller_against(holder) else { return false };
        // The caller wins with its own vote and the old leader's: a majority of three voters at most.
        let winnable = status.voters.len() <= 3;
        if !winnable || !self.heard.within(HEARD_WITHIN) {
            return false;
        }
        if !self.placement.may_call(token, SETTLE, PAUSE) {
            return false;
        }
        tracing::info!(
            raft_leader = leader,
            %holder,
            %token,
            term = status.term,
            "calling a Raft election: the lease holder's node leads the Raft group, and its death would wait for an election"
        );
        let raft = self.raft.clone();
        tokio::spawn(async move {
            // Right after an entry arrived, this log is as long as the leader's but for a write made in
            // the last milliseconds: the leader then votes for it.
            let mut metrics = raft.metrics();
            let before = metrics.borrow_and_update().last_log_index;
            let appended = async {
                while metrics.changed().await.is_ok() {
                    if metrics.borrow_and_update().last_log_index != before {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(NEXT_ENTRY, appended).await;
            if let Err(e) = raft.trigger().elect().await {
                tracing::warn!(error = %e, "Raft election not called");
            }
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_waits_until_the_grant_settled_and_for_the_pause_after_the_last() {
        let placement = Placement::default();
        let (settle, pause) = (Duration::from_millis(50), Duration::from_secs(10));
        assert!(!placement.may_call(FencingToken(7), settle, pause), "a grant just seen");
        placement.0.lock().unwrap().grant = Some((FencingToken(7), Instant::now() - settle));
        assert!(placement.may_call(FencingToken(7), settle, pause));
        placement.0.lock().unwrap().grant = Some((FencingToken(7), Instant::now() - settle));
        assert!(!placement.may_call(FencingToken(7), settle, pause), "within the pause");
        placement.0.lock().unwrap().last_call = Some(Instant::now() - pause);
        assert!(!placement.may_call(FencingToken(9), settle, pause), "a new grant starts over");
        placement.0.lock().unwrap().grant = Some((FencingToken(9), Instant::now() - settle));
        assert!(placement.may_call(FencingToken(9), settle, pause));
    }
}
