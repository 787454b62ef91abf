//! A node's local monotonic clock: it runs at its own rate (clock-rate drift), and the agent on the node
//! reads it as a `std::time::Instant`, so the real policy computes durations exactly as in production.

use crate::scheduler::Millis;
use std::time::{Duration, Instant};

/// Parts per million of a clock running exactly on time.
const EXACT_PPM: u64 = 1_000_000;

/// A clock that reads `rate_ppm / 1_000_000` local seconds per true second.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The epoch every local instant counts from (the same for all clocks: only durations matter).
    base: Instant,
    rate_ppm: u64,
}

impl Clock {
    /// A clock `drift_ppm` parts per million fast (positive) or slow (negative).
    pub fn new(base: Instant, drift_ppm: i64) -> Self {
        Clock { base, rate_ppm: (EXACT_PPM as i64 + drift_ppm) as u64 }
    }

    /// What the clock reads at true time `t`.
    pub fn at(&self, t: Millis) -> Instant {
        self.base + Duration::from_micros(t * self.rate_ppm / 1000)
    }

    /// How much true time passes while this clock advances by `local` (rounded up: never early).
    pub fn true_duration(&self, local: Duration) -> Millis {
        let local_us = local.as_micros() as u64;
        (local_us * EXACT_PPM).div_ceil(self.rate_ppm).div_ceil(1000)
    }

    /// The true time, at or after `now`, when this clock reads `instant` (`now` if it already has).
    pub fn when(&self, instant: Instant, now: Millis) -> Millis {
        now + self.true_duration(instant.saturating_duration_since(self.at(now)))
    }
}
