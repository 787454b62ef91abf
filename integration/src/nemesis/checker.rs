//! The checks over the acknowledged writes: nothing acknowledged is lost, no write is acknowledged under
//! a smaller fencing token after one with a larger token was, and no two primaries (node, timeline)
//! accepted writes in overlapping intervals.
//!
//! Times are conservative: a write committed somewhere between its `start` (sent) and `end`
//! (acknowledgement received), so "a committed after b" is only claimed when `a.start > b.end`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

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
}
