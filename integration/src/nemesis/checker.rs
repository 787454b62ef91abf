//! The checks over the acknowledged writes: nothing acknowledged is lost, no write is acknowledged under
//! a smaller fencing token after one with a larger token was, no two primaries (node, timeline)
//! accepted writes in overlapping intervals, and no server acknowledged a write after another node took
//! the lease ([`after_lease_lost`]); and the measure of a failover: the time to the first write
//! acknowledged elsewhere ([`first_elsewhere`]).
//!
//! Times are conservative: a write committed somewhere between its `start` (sent) and `end`
//! (acknowledgement received), so "a committed after b" is only claimed when `a.start > b.end`.

use super::history::{takeover_keys, Key};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The client that wrote it.
    pub client: u32,
    /// Its number within the client's writes.
    pub seq: u64,
    /// When it was sent (since the run began).
    pub start: Duration,
    /// When its acknowledgement arrived.
    pub end: Duration,
    /// The fencing token read in the same statement, if the server had one.
    pub token: Option<u64>,
    /// The address of the server that accepted it.
    pub node: String,
    /// That server's timeline when it accepted it.
    pub timeline: u32,
}

impl std::fmt::Display for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.map_or("-".to_owned(), |t| t.to_string());
        write!(
            f,
            "({}, {}) on {} tl {} token {token} in [{:.3} s, {:.3} s]",
            self.client,
            self.seq,
            self.node,
            self.timeline,
            self.start.as_secs_f64(),
            self.end.as_secs_f64()
        )
    }
}

/// The acknowledged writes that ended before `before` and are not in `present` (`(client, seq)` rows of
/// the final primary).
pub fn lost<'a>(acks: &'a [Ack], present: &HashSet<(u32, u64)>, before: Duration) -> Vec<&'a Ack> {
    acks.iter().filter(|a| a.end < before && !present.contains(&(a.client, a.seq))).collect()
}

/// Writes acknowledged under a token smaller than that of a write acknowledged before they were sent:
/// `(late, earlier)` pairs (the earlier one with the largest token), and how many writes carried no
/// token (not checked).
pub fn stale_tokens(acks: &[Ack]) -> (Vec<(Ack, Ack)>, usize) {
    let mut with: Vec<&Ack> = acks.iter().filter(|a| a.token.is_some()).collect();
    with.sort_by_key(|a| a.end);
    // best[k]: the write with the largest token among the first k + 1 acknowledgements.
    let mut best: Vec<&Ack> = Vec::with_capacity(with.len());
    for a in &with {
        let keep = best.last().filter(|b| b.token >= a.token).copied().unwrap_or(a);
        best.push(keep);
    }
    let mut violations = Vec::new();
    for a in &with {
        let before = with.partition_point(|b| b.end < a.start);
        if let Some(earlier) = before.checked_sub(1).map(|k| best[k]) {
            if earlier.token > a.token {
                violations.push(((*a).clone(), earlier.clone()));
            }
        }
    }
    (violations, acks.len() - with.len())
}

/// A primary's reign: the server and the timeline it wrote on.
pub type Reign = (String, u32);

/// Two reigns that accepted writes in overlapping intervals: a write of `other` was sent after one of
/// `reign` was acknowledged and acknowledged before another of `reign` was sent.
#[derive(Clone, Debug)]
pub struct Overlap {
    /// The reign that wrote before and after.
    pub reign: Reign,
    /// The write of another reign in between.
    pub witness: Ack,
    /// The first acknowledgement and the last send of `reign` (seconds).
    pub window: (Duration, Duration),
}

/// Every reign that accepted writes both before and after a write of another reign (one witness each).
pub fn overlapping_reigns(acks: &[Ack]) -> Vec<Overlap> {
    let mut windows: BTreeMap<Reign, (Duration, Duration)> = BTreeMap::new();
    for a in acks {
        let w = windows.entry((a.node.clone(), a.timeline)).or_insert((a.end, a.start));
        w.0 = w.0.min(a.end);
        w.1 = w.1.max(a.start);
    }
    let mut overlaps = Vec::new();
    for (reign, (first_end, last_start)) in windows {
        let inside = acks.iter().find(|b| {
            (b.node.as_str(), b.timeline) != (reign.0.as_str(), reign.1)
                && b.start > first_end
                && b.end < last_start
        });
        if let Some(b) = inside {
            overlaps.push(Overlap { reign, witness: b.clone(), window: (first_end, last_start) });
        }
    }
    overlaps
}

/// The time from `fault` to the first write acknowledged by a node other than `old` (an address)
/// that ended by `until`; `None`: no such write. Writes that ended before the fault do not count.
pub fn first_elsewhere(acks: &[Ack], old: &str, fault: Duration, until: Duration) -> Option<Duration> {
    acks.iter().filter(|a| a.node != old && a.end >= fault && a.end <= until).map(|a| a.end - fault).min()
}

/// The `p` quantile (0 < p ≤ 1, nearest rank) of `sorted` (ascending); `None` when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

/// A new primary in the lease history (`GET /history`): the node (its address) and a time by which it
/// had recorded taking over, on the run's clock (see [`Takeover::from_history`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Takeover {
    /// The new primary's address.
    pub node: String,
    /// Its fencing token.
    pub token: u64,
    /// When it was recorded at the latest, since the run's epoch (zero if before it).
    pub at: Duration,
}

impl Takeover {
    /// The takeovers in a `GET /history` body, in its order: its entries with a `new_primary` and a
    /// `fencing_token` (others, such as a requested failover, record no lease taken). `address` maps a
    /// member name to its address. The time is the entry's `timestamp` when it has one (seconds since
    /// the UNIX epoch, or ISO 8601 with a timezone; wall clock, converted through `epoch`, the wall-clock
    /// time of the run's epoch), else when the run first saw it (`seen`), else `fetched` (when `body`
    /// was read): each no earlier than the record. `Err`: not a list, or an unknown member.
    pub fn from_history(
        body: &serde_json::Value,
        address: impl Fn(&str) -> Option<String>,
        epoch: SystemTime,
        seen: &HashMap<Key, Duration>,
        fetched: Duration,
    ) -> Result<Vec<Takeover>, String> {
        if !body.is_array() {
            return Err(format!("GET /history: not a JSON array: {body}"));
        }
        takeover_keys(body)
            .map(|(key, entry)| {
                let node = address(&key.0).ok_or_else(|| format!("unknown member {:?} in {entry}", key.0))?;
                let recorded = match &entry["timestamp"] {
                    serde_json::Value::Number(n) => {
                        n.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()).map(|d| UNIX_EPOCH + d)
                    }
                    serde_json::Value::String(text) => vigil_api::Schedule::parse(text).ok().map(|s| s.at()),
                    _ => None,
                };
                let at = match recorded {
                    Some(wall) => wall.duration_since(epoch).unwrap_or_default(),
                    None => seen.get(&key).copied().unwrap_or(fetched),
                };
                Ok(Takeover { node, token: key.1, at })
            })
            .collect()
    }
}

/// How far apart two clock reads of one moment may be (the agents' wall clock against the run's
/// monotonic one, converted through the epoch's two reads; one machine, one clock).
pub const CLOCK_TOLERANCE: Duration = Duration::from_millis(50);

/// Writes acknowledged by a server after another node had taken the lease: `(write, takeover)` pairs.
///
/// A write by node X under token T is a violation when another node Y's takeover, with a token larger
/// than T, was recorded before the write was sent (`takeover.at + tolerance < write.start`) and X took
/// the lease in no later entry of the history. One node holds the lease at a time and a takeover is
/// recorded after its lease was granted, so X's term T had ended when it sent the write.
/// Conservative: the write committed between `start` and `end`, `at` is never earlier than the record,
/// a retake by X at any later time clears X, and takeovers before the epoch count as at it. Writes
/// without a token are not checked: a primary restarted in place takes the lease again without a
/// history entry, and only its newer token tells.
pub fn after_lease_lost(acks: &[Ack], takeovers: &[Takeover], tolerance: Duration) -> Vec<(Ack, Takeover)> {
    let mut violations = Vec::new();
    for a in acks {
        let lost = takeovers.iter().enumerate().find(|(k, t)| {
            let certain = t.node != a.node && t.at + tolerance < a.start;
            let older_term = a.token.is_some_and(|mine| mine < t.token);
            let retaken = takeovers[k + 1..].iter().any(|r| r.node == a.node);
            certain && older_term && !retaken
        });
        if let Some((_, t)) = lost {
            violations.push((a.clone(), t.clone()));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u64, start_ms: u64, end_ms: u64, token: Option<u64>, node: &str, timeline: u32) -> Ack {
        Ack {
            client: 1,
            seq,
            start: Duration::from_millis(start_ms),
            end: Duration::from_millis(end_ms),
            token,
            node: node.to_owned(),
            timeline,
        }
    }

    #[test]
    fn a_clean_failover_passes_every_check() {
        let acks = [
            ack(1, 0, 10, Some(5), "a", 1),
            ack(2, 20, 30, Some(5), "a", 1),
            ack(3, 25, 60, Some(9), "b", 2), // overlaps the last old write in time: not a violation
            ack(4, 70, 80, Some(9), "b", 2),
            ack(5, 90, 95, None, "b", 2),
        ];
        assert_eq!(stale_tokens(&acks), (vec![], 1));
        assert!(overlapping_reigns(&acks).is_empty());
        let present: HashSet<(u32, u64)> = [(1, 1), (1, 2), (1, 3), (1, 4)].into();
        let lost = lost(&acks, &present, Duration::from_millis(200));
        assert_eq!(lost.iter().map(|a| a.seq).collect::<Vec<_>>(), [5]);
    }

    #[test]
    fn a_deposed_primary_writing_after_the_new_one_is_caught_twice() {
        let acks = [
            ack(1, 0, 10, Some(5), "a", 1),
            ack(2, 20, 30, Some(9), "b", 2),
            ack(3, 40, 50, Some(5), "a", 1),
        ];
        let (stale, skipped) = stale_tokens(&acks);
        assert_eq!(skipped, 0);
        assert_eq!(stale.len(), 1);
        assert_eq!((stale[0].0.seq, stale[0].1.seq), (3, 2));
        let overlaps = overlapping_reigns(&acks);
        assert_eq!(overlaps.len(), 1);
        assert_eq!(overlaps[0].reign, ("a".to_owned(), 1));
        assert_eq!(overlaps[0].witness.seq, 2);
    }

    #[test]
    fn a_failback_to_the_same_node_on_a_new_timeline_is_no_overlap() {
        let acks = [ack(1, 0, 10, None, "a", 1), ack(2, 20, 30, None, "b", 2), ack(3, 40, 50, None, "a", 3)];
        assert!(overlapping_reigns(&acks).is_empty());
        assert_eq!(stale_tokens(&acks), (vec![], 3));
    }

    fn takeover(node: &str, token: u64, at_ms: u64) -> Takeover {
        Takeover { node: node.to_owned(), token, at: Duration::from_millis(at_ms) }
    }

    #[test]
    fn a_write_sent_after_another_node_took_the_lease_is_caught() {
        let history = [takeover("a", 3, 0), takeover("b", 9, 1_000)];
        let acks = [
            ack(1, 900, 990, Some(3), "a", 1),     // before b took over
            ack(2, 1_020, 1_400, Some(3), "a", 1), // sent within the tolerance: not certain
            ack(3, 1_200, 1_300, Some(9), "b", 2), // the new primary
            ack(4, 1_500, 1_600, Some(3), "a", 1), // the old primary, certainly after: a violation
            ack(5, 1_500, 1_600, None, "a", 1),    // the same without a token: not checked
        ];
        let found = after_lease_lost(&acks, &history, CLOCK_TOLERANCE);
        let found: Vec<(u64, &str)> = found.iter().map(|(a, t)| (a.seq, t.node.as_str())).collect();
        assert_eq!(found, [(4, "b")]);
    }

    #[test]
    fn a_node_that_took_the_lease_again_may_write() {
        let history = [takeover("a", 3, 0), takeover("b", 9, 1_000), takeover("a", 15, 2_000)];
        let acks = [
            ack(1, 500, 600, Some(3), "a", 1),
            ack(2, 1_200, 1_300, Some(9), "b", 2),
            ack(3, 2_100, 2_200, Some(15), "a", 3),
            ack(4, 1_990, 2_030, None, "a", 3), // sent just before its takeover was seen
        ];
        assert!(after_lease_lost(&acks, &history, CLOCK_TOLERANCE).is_empty());
        // A write carrying a newer token than the takeover's is a later term (a primary restarted in
        // place takes the lease again without a history entry): not claimed either.
        let history = [takeover("b", 9, 1_000)];
        let later_term = [ack(5, 1_500, 1_600, Some(12), "a", 3)];
        assert!(after_lease_lost(&later_term, &history, CLOCK_TOLERANCE).is_empty());
    }

    #[test]
    fn takeovers_are_read_from_the_history_on_the_runs_clock() {
        let epoch = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let history = serde_json::json!([
            {"timeline": 2, "new_primary": "node2", "fencing_token": 9, "timestamp": 1_800_000_001.5},
            {"reason": "failover to node3 with allow_data_loss", "new_primary": "node3", "requested_at": 1},
            {"timeline": 3, "new_primary": "node3", "fencing_token": 12, "timestamp": "2027-01-15T08:00:03Z"},
            {"timeline": 4, "new_primary": "node1", "fencing_token": 20},
            {"timeline": 5, "new_primary": "node2", "fencing_token": 31},
        ]);
        let address = |name: &str| name.strip_prefix("node").map(|i| format!("10.77.0.{i}"));
        let seen: HashMap<Key, Duration> = [(("node1".to_owned(), 20), Duration::from_secs(5))].into();
        let takeovers = Takeover::from_history(&history, address, epoch, &seen, Duration::from_secs(9))
            .expect("a history");
        let expected = [
            takeover("10.77.0.2", 9, 1_500),  // its timestamp, a number
            takeover("10.77.0.3", 12, 3_000), // its timestamp, ISO 8601
            takeover("10.77.0.1", 20, 5_000), // first seen by the poller
            takeover("10.77.0.2", 31, 9_000), // never seen before the final fetch
        ];
        assert_eq!(takeovers, expected);
        let err =
            Takeover::from_history(&history, |_| None, epoch, &seen, Duration::ZERO).expect_err("unknown");
        assert!(err.contains("unknown member \"node2\""), "{err}");
    }
}
