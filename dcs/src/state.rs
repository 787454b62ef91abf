//! The replicated state and the pure function that applies a command to it.
//!
//! [`ClusterState::apply`] reads no clock and depends on nothing but the state, the command and the log
//! index of the entry carrying it, so every replica, and every replay after a restart, reaches the same
//! state. Time enters only through `Expire` commands, which the Raft leader's lessor proposes.

use crate::command::{Command, Condition, Outcome};
use crate::events::EventLog;
use crate::record::{ExpiryTarget, Key, Lease, Revision, Versioned};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use vigil_fencing::FencingToken;
use vigil_fencing::MemberName;

/// The cluster record as of one revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The index of the last entry applied (0 before any).
    pub revision: Revision,
    /// The leader lease, if held.
    pub leader: Option<Lease>,
    /// The token of the latest grant, held or not: it names the period the lease has been free since it
    /// ended (absent from snapshots taken before it was kept, until the next grant).
    #[serde(default)]
    pub last_grant: Option<FencingToken>,
    /// Every other key.
    pub keys: BTreeMap<Key, Versioned>,
    /// The largest Raft node id any member ever had or was handed out: ids are never reused.
    #[serde(default)]
    pub highest_node_id: u64,
    /// The last events appended (absent from snapshots taken before there was an event log).
    #[serde(default)]
    pub events: EventLog,
}

impl ClusterState {
    /// Applies `command`, carried by the log entry at `index`, and says what it did.
    ///
    /// `index` must be greater than every index applied before (the Raft log guarantees it); it becomes the
    /// state's revision, the version of a written key and the token of a granted lease.
    pub fn apply(&mut self, index: u64, command: &Command) -> Outcome {
        debug_assert!(index > self.revision.0, "log index {index} applied after {}", self.revision);
        let rev = Revision(index);
        self.revision = rev;
        match command {
            Command::AcquireLease { holder, ttl_ms, incarnation } => {
                self.acquire(rev, holder, *ttl_ms, *incarnation)
            }
            Command::RenewLease { holder, token, incarnation } => match self.held_by(holder, *token) {
                Some(lease) => {
                    lease.renewed_at = rev;
                    lease.incarnation = *incarnation;
                    Outcome::LeaseGranted { token: *token, renewed_at: rev }
                }
                None => self.not_holder(),
            },
            Command::ReleaseLease { holder, token } => match self.held_by(holder, *token) {
                Some(_) => {
                    self.leader = None;
                    Outcome::LeaseReleased
                }
                None => self.not_holder(),
            },
            Command::ReleaseDead { holder, token, incarnation, event } => {
                match self
                    .held_by(holder, *token)
                    .filter(|l| *incarnation != 0 && l.incarnation == *incarnation)
                {
                    Some(_) => {
                        self.leader = None;
                        if !event.is_null() {
                            self.events.append(rev, event.clone());
                        }
                        Outcome::LeaseReleased
                    }
                    None => self.not_holder(),
                }
            }
            Command::Put { key, value, condition, ttl_ms } => {
                if let Err(current) = self.check(key, *condition) {
                    return Outcome::ConditionFailed { current };
                }
                let stored = Versioned { value: value.clone(), version: rev, ttl_ms: *ttl_ms };
                self.keys.insert(key.clone(), stored);
                Outcome::Written { version: rev }
            }
            Command::Delete { key, condition } => match self.check(key, *condition) {
                Ok(()) => {
                    self.keys.remove(key);
                    Outcome::Deleted
                }
                Err(current) => Outcome::ConditionFailed { current },
            },
            Command::Expire(target) => self.expire(target),
            Command::AllocateNodeId => {
                self.highest_node_id += 1;
                Outcome::NodeIdAllocated { id: self.highest_node_id }
            }
            Command::AppendEvent { event } => {
                self.events.append(rev, event.clone());
                Outcome::Written { version: rev }
            }
        }
    }

    /// Records the node ids of a membership applied, so that none is handed out again.
    pub(crate) fn saw_node_ids(&mut self, ids: impl IntoIterator<Item = u64>) {
        self.highest_node_id = ids.into_iter().fold(self.highest_node_id, u64::max);
    }

    /// Everything that expires unless renewed, with its ttl: what the lessor must time.
    pub fn expiry_targets(&self) -> Vec<(ExpiryTarget, Duration)> {
        let lease = self.leader.iter().map(|l| {
            let target = ExpiryTarget::Leader { token: l.token, renewed_at: l.renewed_at };
            (target, Duration::from_millis(l.ttl_ms))
        });
        let keys = self.keys.iter().filter_map(|(key, v)| {
            let ttl = v.ttl_ms?;
            Some((ExpiryTarget::Key { key: key.clone(), version: v.version }, Duration::from_millis(ttl)))
        });
        lease.chain(keys).collect()
    }

    fn acquire(&mut self, rev: Revision, holder: &MemberName, ttl_ms: u64, incarnation: u64) -> Outcome {
        match &mut self.leader {
            Some(lease) if &lease.holder == holder => {
                lease.renewed_at = rev;
                lease.ttl_ms = ttl_ms;
                lease.incarnation = incarnation;
                Outcome::LeaseGranted { token: lease.token, renewed_at: rev }
            }
            Some(lease) => Outcome::LeaseHeld { holder: lease.holder.clone(), token: lease.token },
            None => {
                let token = FencingToken(rev.0);
                self.leader =
                    Some(Lease { holder: holder.clone(), token, ttl_ms, renewed_at: rev, incarnation });
                self.last_grant = Some(token);
                Outcome::LeaseGranted { token, renewed_at: rev }
            }
        }
    }

    fn held_by(&mut self, holder: &MemberName, token: FencingToken) -> Option<&mut Lease> {
        self.leader.as_mut().filter(|l| &l.holder == holder && l.token == token)
    }

    fn not_holder(&self) -> Outcome {
        Outcome::NotHolder { current: self.leader.as_ref().map(|l| (l.holder.clone(), l.token)) }
    }

    /// `Err(current version)` when `condition` does not hold for `key`.
    fn check(&self, key: &Key, condition: Condition) -> Result<(), Option<Revision>> {
        let current = self.keys.get(key).map(|v| v.version);
        let holds = match condition {
            Condition::Always => true,
            Condition::Absent => current.is_none(),
            Condition::Version(expected) => current == Some(expected),
        };
        if holds {
            Ok(())
        } else {
            Err(current)
        }
    }

    fn expire(&mut self, target: &ExpiryTarget) -> Outcome {
        match target {
            ExpiryTarget::Leader { token, renewed_at } => {
                let current =
                    self.leader.as_ref().is_some_and(|l| l.token == *token && l.renewed_at == *renewed_at);
                if !current {
                    return Outcome::Stale;
                }
                self.leader = None;
            }
            ExpiryTarget::Key { key, version } => {
                let current = self.keys.get(key).is_some_and(|v| v.version == *version && v.ttl_ms.is_some());
                if !current {
                    return Outcome::Stale;
                }
                self.keys.remove(key);
            }
        }
        Outcome::Expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> MemberName {
        MemberName::new(n).expect("name")
    }

    #[test]
    fn a_dead_holders_lease_is_released_only_while_its_agent_process_holds_it() {
        let mut state = ClusterState::default();
        let (a, b) = (name("a"), name("b"));
        let acquire = |holder: &MemberName, incarnation| Command::AcquireLease {
            holder: holder.clone(),
            ttl_ms: 3000,
            incarnation,
        };
        let granted = state.apply(1, &acquire(&a, 7));
        assert_eq!(granted, Outcome::LeaseGranted { token: FencingToken(1), renewed_at: Revision(1) });
        let renew = Command::RenewLease { holder: a.clone(), token: FencingToken(1), incarnation: 7 };
        assert_eq!(
            state.apply(2, &renew),
            Outcome::LeaseGranted { token: FencingToken(1), renewed_at: Revision(2) }
        );
        let dead = |holder: &MemberName, token, incarnation| Command::ReleaseDead {
            holder: holder.clone(),
            token: FencingToken(token),
            incarnation,
            event: serde_json::json!({"kind": "lease_released"}),
        };
        let held = Outcome::NotHolder { current: Some((a.clone(), FencingToken(1))) };
        // Another member's name, another token, another process, an unknown process: no-op.
        assert_eq!(state.apply(3, &dead(&b, 1, 7)), held);
        assert_eq!(state.apply(4, &dead(&a, 9, 7)), held);
        assert_eq!(state.apply(5, &dead(&a, 1, 8)), held);
        assert_eq!(state.apply(6, &dead(&a, 1, 0)), held);
        // A restarted agent (process 8) took its lease again (same token): the old certificate is stale.
        let again = state.apply(7, &acquire(&a, 8));
        assert_eq!(again, Outcome::LeaseGranted { token: FencingToken(1), renewed_at: Revision(7) });
        assert_eq!(state.apply(8, &dead(&a, 1, 7)), held);
        assert!(state.leader.is_some());
        // The certificate of the process holding it releases it.
        assert_eq!(state.apply(9, &dead(&a, 1, 8)), Outcome::LeaseReleased);
        assert_eq!(state.leader, None);
        assert_eq!(state.last_grant, Some(FencingToken(1)), "the free period names the grant it follows");
        assert_eq!(state.events.iter().count(), 1, "the release and its event, one entry");
        assert_eq!(state.apply(10, &dead(&a, 1, 8)), Outcome::NotHolder { current: None }, "idempotent");
        assert_eq!(state.events.iter().count(), 1, "no event without a release");
        let next = state.apply(11, &acquire(&b, 3));
        assert_eq!(next, Outcome::LeaseGranted { token: FencingToken(11), renewed_at: Revision(11) });
        assert_eq!(state.last_grant, Some(FencingToken(11)));
    }

    #[test]
    fn node_ids_are_never_handed_out_twice() {
        let mut state = ClusterState::default();
        state.saw_node_ids([1, 2, 3]);
        assert_eq!(state.apply(10, &Command::AllocateNodeId), Outcome::NodeIdAllocated { id: 4 });
        // Node 4 was removed: the membership no longer names it, but its id stays taken.
        state.saw_node_ids([1, 2, 3]);
        assert_eq!(state.apply(11, &Command::AllocateNodeId), Outcome::NodeIdAllocated { id: 5 });
        state.saw_node_ids([1, 9]);
        assert_eq!(state.apply(12, &Command::AllocateNodeId), Outcome::NodeIdAllocated { id: 10 });
        let snapshot: ClusterState = serde_json::from_value(serde_json::to_value(&state).unwrap()).unwrap();
        assert_eq!(snapshot.highest_node_id, 10, "kept in snapshots");
        let older: ClusterState =
            serde_json::from_str(r#"{"revision": 3, "leader": null, "keys": {}}"#).unwrap();
        assert_eq!(older.highest_node_id, 0, "a snapshot from before node ids were handed out");
    }
}
