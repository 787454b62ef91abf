//! The order of the faults: a small seeded PRNG, so that a printed seed replays a run.

use super::faults::Kind;
use std::time::Duration;

/// How long a fault lasts before it is healed: short blips (for false failovers) to longer than the lease.
const HOLDS_MS: [u64; 5] = [500, 1_500, 3_000, 5_000, 8_000];
/// After the first trials, one in this many applies two faults at once.
const COMBINED_ONE_IN: usize = 4;

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

/// One planned trial: one fault, or two of different kinds at once, held for the same time.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The faults with the random bits that pick their targets once the current primary is known (see
    /// [`Kind`]); applied in this order, healed in the reverse one.
    pub faults: Vec<(Kind, u64)>,
    /// How long they last.
    pub hold: Duration,
}

impl Plan {
    /// Its name in reports: the kinds joined by `+` (`kill-node+split`).
    pub fn name(&self) -> String {
        self.faults.iter().map(|(kind, _)| kind.name()).collect::<Vec<_>>().join("+")
    }

    /// Whether a short one should leave the primary in place (see [`Kind::is_blip`]).
    pub fn is_blip(&self) -> bool {
        self.faults.iter().all(|(kind, _)| kind.is_blip())
    }
}

/// `trials` plans from `seed`: the first [`Kind::ALL`]`.len()` are every kind once, in a random order,
/// and the next a combination (so a short run covers them all); the rest are random kinds, one trial in
/// [`COMBINED_ONE_IN`] a combination of two.
pub fn plans(seed: u64, trials: usize) -> Vec<Plan> {
    let mut rng = Rng::new(seed);
    let mut first = Kind::ALL.to_vec();
    rng.shuffle(&mut first);
    (0..trials)
        .map(|t| {
            let kinds = match first.get(t) {
                Some(kind) => vec![*kind],
                None if t == first.len() || rng.below(COMBINED_ONE_IN) == 0 => {
                    let mut kinds = Kind::ALL.to_vec();
                    rng.shuffle(&mut kinds);
                    kinds[..2].to_vec()
                }
                None => vec![Kind::ALL[rng.below(Kind::ALL.len())]],
            };
            let hold = Duration::from_millis(HOLDS_MS[rng.below(HOLDS_MS.len())]);
            Plan { faults: kinds.into_iter().map(|kind| (kind, rng.next_u64())).collect(), hold }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(seed: u64) -> Vec<(String, Duration, Vec<u64>)> {
        plans(seed, 60).iter().map(|p| (p.name(), p.hold, p.faults.iter().map(|f| f.1).collect())).collect()
    }

    #[test]
    fn a_seed_replays_and_a_short_run_covers_every_kind_and_a_combination() {
        let a = replay(7);
        assert_eq!(a, replay(7));
        assert_ne!(a, replay(8));
        let plans = plans(7, 60);
        let mut first: Vec<Kind> = plans[..Kind::ALL.len()].iter().map(|p| p.faults[0].0).collect();
        first.sort();
        assert_eq!(first, Kind::ALL.to_vec());
        assert!(plans[..Kind::ALL.len()].iter().all(|p| p.faults.len() == 1));
        let combined = &plans[Kind::ALL.len()];
        assert_eq!(combined.faults.len(), 2);
        assert_ne!(combined.faults[0].0, combined.faults[1].0, "two different kinds");
        let later = plans[Kind::ALL.len() + 1..].iter().filter(|p| p.faults.len() == 2).count();
        assert!((3..=25).contains(&later), "about one in {COMBINED_ONE_IN} later trials combined: {later}");
    }
}
