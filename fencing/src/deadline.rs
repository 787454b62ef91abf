use std::time::{Duration, Instant};

/// The instant, on the holder's own monotonic clock, by which the lease holder must have stopped acting as
/// primary unless a later renewal succeeded.
///
/// It is computed from the moment the holder *sent* its acquire or renew, not from when the answer came
/// back: the store starts its own expiry timer only after it applied the request, so the holder's deadline
/// always passes first (`deadline = sent_at + ttl - safety_margin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HolderDeadline(Instant);

impl HolderDeadline {
    /// The deadline for a grant or renewal whose request left the holder at `sent_at`. A ttl beyond
    /// [`MAX_TTL`](crate::MAX_TTL) counts as that (the store's timer is capped the same way), so it never
    /// panics.
    pub fn from_sent(sent_at: Instant, ttl: Duration, safety_margin: Duration) -> Self {
        HolderDeadline(crate::instant_after(sent_at, ttl.saturating_sub(safety_margin)))
    }

    /// The instant itself.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// Whether the holder may still act as primary at `now`.
    pub fn is_valid_at(self, now: Instant) -> bool {
        now < self.0
    }

    /// Time left before the deadline at `now` (zero once it has passed).
    pub fn remaining_at(self, now: Instant) -> Duration {
        self.0.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_counts_from_the_send_instant() {
        let sent = Instant::now();
        let d = HolderDeadline::from_sent(sent, Duration::from_secs(3), Duration::from_millis(500));
        assert_eq!(d.instant(), sent + Duration::from_millis(2500));
        assert!(d.is_valid_at(sent + Duration::from_millis(2499)));
        assert!(!d.is_valid_at(sent + Duration::from_millis(2500)));
        assert_eq!(d.remaining_at(sent + Duration::from_secs(1)), Duration::from_millis(1500));
        assert_eq!(d.remaining_at(sent + Duration::from_secs(9)), Duration::ZERO);
    }

    #[test]
    fn a_huge_ttl_is_capped_not_a_panic() {
        let sent = Instant::now();
        let d = HolderDeadline::from_sent(sent, Duration::MAX, Duration::ZERO);
        assert_eq!(d.instant(), sent + crate::MAX_TTL);
    }

    #[test]
    fn a_margin_larger_than_the_ttl_gives_no_time_at_all() {
        let sent = Instant::now();
        let d = HolderDeadline::from_sent(sent, Duration::from_secs(1), Duration::from_secs(2));
        assert!(!d.is_valid_at(sent));
    }
}
