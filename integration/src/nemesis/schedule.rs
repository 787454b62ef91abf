//! The order of the faults: a small seeded PRNG, so that a printed seed replays a run.

use super::faults::Kind;
use std::time::Duration;

/// How long a fault lasts before it is healed: short blips (for false failovers) to longer than the lease.
const HOLDS_MS: [u64; 5] = [500, 1_500, 3_000, 5_000, 8_000];

/// SplitMix64: tiny, fast and good enough to pick faults; the same seed gives the same sequence.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `items` in a random order (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// One planned trial: which fault, for how long, and the random bits that pick its targets.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The fault.
    pub kind: Kind,
    /// How long it lasts.
    pub hold: Duration,
    /// Picks the targets once the current primary is known (see [`Kind`]).
    pub salt: u64,
}

/// `trials` plans from `seed`: the first [`Kind::ALL`]`.len()` are every kind once, in a random order
/// (so a short run covers them all), the rest random kinds.
pub fn plans(seed: u64, trials: usize) -> Vec<Plan> {
    let mut rng = Rng::new(seed);
    let mut first = Kind::ALL.to_vec();
    rng.shuffle(&mut first);
    (0..trials)
        .map(|t| {
            let kind = first.get(t).copied().unwrap_or_else(|| Kind::ALL[rng.below(Kind::ALL.len())]);
            let hold = Duration::from_millis(HOLDS_MS[rng.below(HOLDS_MS.len())]);
            Plan { kind, hold, salt: rng.next_u64() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_a_short_run_covers_every_kind() {
        let a: Vec<(Kind, Duration, u64)> = plans(7, 30).iter().map(|p| (p.kind, p.hold, p.salt)).collect();
        let b: Vec<(Kind, Duration, u64)> = plans(7, 30).iter().map(|p| (p.kind, p.hold, p.salt)).collect();
        assert_eq!(a, b);
        let mut first: Vec<Kind> = a[..Kind::ALL.len()].iter().map(|p| p.0).collect();
        first.sort();
        assert_eq!(first, Kind::ALL.to_vec());
        assert_ne!(a, plans(8, 30).iter().map(|p| (p.kind, p.hold, p.salt)).collect::<Vec<_>>());
    }
}
