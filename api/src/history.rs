//! `GET /history`: the promotions the agents record in the store's `history` key ([`HistoryEntry`],
//! Vigil's record, with the fencing token) answered as Patroni's lines
//! (`[timeline, lsn, reason, timestamp, new_leader]`, [`HistoryEntry::patroni_line`]).
//!
//! As in Patroni, a line's timeline is the one that ended at the promotion and its lsn the position (an
//! integer) where it ended; the reason says how the promotion came about: `failover` (the agents'
//! own), `switchover`, `manual failover` or `manual failover (allow-data-loss)`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One entry of the store's `history` key, as the agents append them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum HistoryEntry {
    /// A member was promoted after taking the lease.
    Promotion {
        /// The timeline it was promoted to (the new one).
        timeline: Option<u64>,
        /// The position where the former timeline ended (`X/X`, or `#N` in transactions).
        lsn: Option<String>,
        /// How the promotion came about.
        reason: String,
        /// The new primary.
        new_primary: String,
        /// The token of its lease.
        fencing_token: Option<u64>,
        /// When (RFC 3339).
        timestamp: String,
    },
    /// An operator's failover with `allow_data_loss`, as earlier agents recorded it when requested (the
    /// promotion's own entry now says so). Not a line of `GET /history`: it has no timeline.
    DataLossFailover {
        /// What it allowed.
        reason: String,
        /// The candidate.
        new_primary: String,
        /// When it was requested, in Unix seconds.
        requested_at: u64,
    },
    /// An entry of another shape (written past the agents, e.g. Patroni's lines carried over).
    Other(Value),
}

impl HistoryEntry {
    /// The entry as a line of Patroni's `GET /history`: `[timeline, lsn, reason, timestamp,
    /// new_leader]` for a promotion (`null` where unknown), an entry of another shape as it is stored,
    /// `None` for an entry without a timeline ([`HistoryEntry::DataLossFailover`]).
    pub fn patroni_line(&self) -> Option<Value> {
        match self {
            HistoryEntry::Promotion { timeline, lsn, reason, new_primary, timestamp, .. } => {
                let ended = timeline.map(|t| t.saturating_sub(1));
                let lsn = lsn.as_deref().and_then(position_number);
                Some(json!([ended, lsn, reason, timestamp, new_primary]))
            }
            HistoryEntry::DataLossFailover { .. } => None,
            HistoryEntry::Other(value) => Some(value.clone()),
        }
    }
}

/// `X/X` (an LSN) or `#N` (a transaction count) as a number.
fn position_number(text: &str) -> Option<u64> {
    match text.strip_prefix('#') {
        Some(count) => count.parse().ok(),
        None => crate::parse_lsn(text).ok(),
    }
}

/// The body of `GET /history`: `entries` as Patroni's lines, oldest first.
pub fn patroni_history(entries: &[HistoryEntry]) -> Vec<Value> {
    entries.iter().filter_map(HistoryEntry::patroni_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_entries_keep_their_shape() {
        let promotion = json!({"timeline": 2, "lsn": null, "reason": "failover", "new_primary": "a",
            "fencing_token": 7, "timestamp": "2026-01-01T00:00:00+00:00"});
        let data_loss = json!({"reason": "failover", "new_primary": "b", "requested_at": 5});
        let other = json!([1, 50331744, "no recovery target specified", "2026-01-01", "a"]);
        let more = json!({"reason": "failover", "new_primary": "b", "requested_at": 5, "by": "ops"});
        let history = json!([promotion, data_loss, other, more]);
        let typed: Vec<HistoryEntry> = serde_json::from_value(history.clone()).unwrap();
        assert!(matches!(typed[0], HistoryEntry::Promotion { fencing_token: Some(7), .. }));
        assert!(matches!(typed[1], HistoryEntry::DataLossFailover { requested_at: 5, .. }));
        assert!(matches!(typed[2], HistoryEntry::Other(_)));
        assert!(matches!(typed[3], HistoryEntry::Other(_)), "an unknown field is kept, not dropped");
        assert_eq!(serde_json::to_value(&typed).unwrap(), history);
    }

    #[test]
    fn promotions_are_patroni_lines() {
        let promotion = |timeline, lsn: &str| HistoryEntry::Promotion {
            timeline,
            lsn: Some(lsn.to_owned()),
            reason: "switchover".into(),
            new_primary: "b".into(),
            fencing_token: Some(9),
            timestamp: "2026-01-01T00:00:00.5+00:00".into(),
        };
        let carried = json!([1, 100, "no recovery target specified"]);
        let entries = [
            promotion(Some(2), "0/3000060"),
            promotion(Some(3), "#42"),
            promotion(None, "garbage"),
            HistoryEntry::DataLossFailover { reason: "r".into(), new_primary: "b".into(), requested_at: 1 },
            HistoryEntry::Other(carried.clone()),
        ];
        let ts = "2026-01-01T00:00:00.5+00:00";
        assert_eq!(
            patroni_history(&entries),
            [
                json!([1, 0x3000060, "switchover", ts, "b"]),
                json!([2, 42, "switchover", ts, "b"]),
                json!([null, null, "switchover", ts, "b"]),
                carried,
            ]
        );
    }
}
