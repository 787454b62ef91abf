//! The event log: what happened to the lease and the members' roles, appended by the agents (and by the
//! Raft leader's lessor for an expiry) and kept in the replicated state, bounded to the last
//! [`EVENTS_KEPT`].
//!
//! Each event is appended by its own command, not by compare-and-set on one key as `history` is: members
//! that log at the same moment (a failover has several) never conflict and retry, an append replicates
//! only the event (not the whole log), and its id is the Raft log index of the appending entry, so ids
//! are unique, increasing and identical on every replica (what `?since=<id>` pages by). The store does not
//! interpret an event: it is JSON, as the agents write it.

use crate::record::Revision;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;
use std::sync::Arc;

/// How many events the log keeps; the oldest are dropped beyond it. A failover appends about ten events
/// (fence, expiry, grant, promotion, a follow per replica, the old primary's rejoin), so this keeps the
/// last hundred or so failovers, while the log stays a few hundred kilobytes in every snapshot.
pub const EVENTS_KEPT: usize = 1000;

/// The timing of a lease's end (expiry, release): how long before it the holder last renewed, or stopped
/// taking writes (what a failover's detection phase counts from).
pub const SINCE_LAST_RENEWAL: &str = "since_last_renewal_ms";

/// The timing of a lease released by a death certificate: how long before the release its holder's
/// agent died (as its lifeline saw it).
pub const SINCE_DEATH: &str = "since_death_ms";

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Its id: the revision of the entry that appended it.
    pub id: Revision,
    /// The event, as JSON.
    pub event: serde_json::Value,
}

/// The last [`EVENTS_KEPT`] events, oldest first. Shared between the states published after each
/// applied batch (a clone is a reference count), copied only when an event is appended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog(Arc<VecDeque<StoredEvent>>);

impl EventLog {
    /// Appends `event` with id `id`, dropping the oldest beyond [`EVENTS_KEPT`].
    pub(crate) fn append(&mut self, id: Revision, event: serde_json::Value) {
        let log = Arc::make_mut(&mut self.0);
        log.push_back(StoredEvent { id, event });
        let excess = log.len().saturating_sub(EVENTS_KEPT);
        log.drain(..excess);
    }

    /// The events, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &StoredEvent> + ExactSizeIterator {
        self.0.iter()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for EventLog {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for EventLog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        VecDeque::deserialize(d).map(|log| EventLog(Arc::new(log)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_log_keeps_the_last_events_in_order() {
        let mut log = EventLog::default();
        for i in 1..=(EVENTS_KEPT as u64 + 5) {
            log.append(Revision(i * 2), json!({"n": i}));
        }
        assert_eq!(log.len(), EVENTS_KEPT);
        let first = log.iter().next().expect("kept");
        assert_eq!((first.id, &first.event), (Revision(12), &json!({"n": 6})), "the five oldest dropped");
        let last = log.iter().next_back().expect("kept");
        assert_eq!(last.id, Revision((EVENTS_KEPT as u64 + 5) * 2));
    }

    #[test]
    fn a_clone_shares_the_log_until_an_append() {
        let mut log = EventLog::default();
        log.append(Revision(1), json!("a"));
        let published = log.clone();
        log.append(Revision(2), json!("b"));
        assert_eq!((published.len(), log.len()), (1, 2), "the published state is not changed");
        let round_trip: EventLog = serde_json::from_value(serde_json::to_value(&log).unwrap()).unwrap();
        assert_eq!(round_trip, log);
    }
}
