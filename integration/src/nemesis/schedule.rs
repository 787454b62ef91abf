//! The order of the faults: a small seeded PRNG, so that a printed seed replays a run.

use super::faults::Kind;
use super::rng::Rng;
use std::time::Duration;

/// How long a fault lasts before it is healed, in ms, with its weight: short blips (for false
/// failovers), holds around the lease's ttl, and holds long enough for any failover to happen (30 s,
/// 60 s: two in five trials, so that 100 trials take about 45 min; see the test).
pub const HOLDS_MS: [(u64, u32); 7] =
    [(500, 2), (1_500, 1), (3_000, 1), (5_000, 1), (8_000, 1), (30_000, 2), (60_000, 2)];
/// After the first trials, one in this many applies two faults at once.
const COMBINED_ONE_IN: usize = 4;

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

/// What the plans are drawn from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Menu {
    /// The kinds (no duplicates).
    pub kinds: Vec<Kind>,
    /// The holds with their weights (> 0).
    pub holds: Vec<(Duration, u32)>,
    /// Whether some trials combine two kinds (needs two kinds at least).
    pub combine: bool,
}

impl Default for Menu {
    /// Every kind, [`HOLDS_MS`], combinations.
    fn default() -> Menu {
        let holds = HOLDS_MS.iter().map(|&(ms, weight)| (Duration::from_millis(ms), weight)).collect();
        Menu { kinds: Kind::ALL.to_vec(), holds, combine: true }
    }
}

impl Menu {
    /// The default menu narrowed to `kinds` and to `holds` (equally likely), when given.
    pub fn narrowed(kinds: Option<Vec<Kind>>, holds: Option<Vec<Duration>>, combine: bool) -> Menu {
        let mut menu = Menu { combine, ..Menu::default() };
        if let Some(mut kinds) = kinds.filter(|k| !k.is_empty()) {
            kinds.sort();
            kinds.dedup();
            menu.kinds = kinds;
        }
        if let Some(holds) = holds.filter(|h| !h.is_empty()) {
            menu.holds = holds.into_iter().map(|hold| (hold, 1)).collect();
        }
        menu
    }

    /// The mean hold.
    pub fn mean_hold(&self) -> Duration {
        let total: u32 = self.holds.iter().map(|(_, w)| w).sum();
        let sum: Duration = self.holds.iter().map(|(hold, w)| *hold * *w).sum();
        sum / total.max(1)
    }

    fn hold(&self, rng: &mut Rng) -> Duration {
        let total: u32 = self.holds.iter().map(|(_, w)| w).sum();
        let mut pick = rng.below(total.max(1) as usize) as u32;
        for (hold, weight) in &self.holds {
            if pick < *weight {
                return *hold;
            }
            pick -= weight;
        }
        self.holds.last().map_or(Duration::ZERO, |(hold, _)| *hold)
    }
}

/// `trials` plans from `seed`: the first `menu.kinds.len()` are every kind once, in a random order,
/// and the next a combination (so a short run covers them all); the rest are random kinds, one trial in
/// [`COMBINED_ONE_IN`] a combination of two (no combinations when `menu.combine` is off or it has one
/// kind).
pub fn plans(seed: u64, trials: usize, menu: &Menu) -> Vec<Plan> {
    let mut rng = Rng::new(seed);
    let mut first = menu.kinds.clone();
    rng.shuffle(&mut first);
    let combine = menu.combine && menu.kinds.len() >= 2;
    (0..trials)
        .map(|t| {
            let kinds = match first.get(t) {
                Some(kind) => vec![*kind],
                None if combine && (t == first.len() || rng.below(COMBINED_ONE_IN) == 0) => {
                    let mut kinds = menu.kinds.clone();
                    rng.shuffle(&mut kinds);
                    kinds[..2].to_vec()
                }
                None => vec![menu.kinds[rng.below(menu.kinds.len())]],
            };
            let hold = menu.hold(&mut rng);
            Plan { faults: kinds.into_iter().map(|kind| (kind, rng.next_u64())).collect(), hold }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(seed: u64) -> Vec<(String, Duration, Vec<u64>)> {
        plans(seed, 60, &Menu::default())
            .iter()
            .map(|p| (p.name(), p.hold, p.faults.iter().map(|f| f.1).collect()))
            .collect()
    }

    #[test]
    fn a_seed_replays_and_a_short_run_covers_every_kind_and_a_combination() {
        let a = replay(7);
        assert_eq!(a, replay(7));
        assert_ne!(a, replay(8));
        let plans = plans(7, 60, &Menu::default());
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

    #[test]
    fn a_hundred_trials_hold_long_often_enough_and_fit_in_an_hour() {
        let plans = plans(1, 100, &Menu::default());
        let long = plans.iter().filter(|p| p.hold >= Duration::from_secs(30)).count();
        assert!((25..=55).contains(&long), "about two in five holds of 30 s or 60 s: {long}");
        let blips = plans.iter().filter(|p| p.hold <= Duration::from_millis(500)).count();
        assert!(blips >= 10, "blips still drawn: {blips}");
        // Measured overhead per trial (convergence, checks): a few seconds; 10 s is generous.
        let expected = Menu::default().mean_hold() * 100 + Duration::from_secs(10 * 100);
        assert!(expected <= Duration::from_secs(3_600), "100 trials expected to take {expected:?}");
    }

    #[test]
    fn a_narrowed_menu_draws_only_its_kinds_and_holds() {
        let holds = vec![Duration::from_secs(30), Duration::from_secs(60)];
        let menu =
            Menu::narrowed(Some(vec![Kind::CutPrimary, Kind::PausePostgres]), Some(holds.clone()), false);
        let plans = plans(3, 20, &menu);
        assert!(plans.iter().all(|p| p.faults.len() == 1 && menu.kinds.contains(&p.faults[0].0)));
        assert!(plans.iter().all(|p| holds.contains(&p.hold)));
        let first: Vec<Kind> = plans[..2].iter().map(|p| p.faults[0].0).collect();
        assert!(first.contains(&Kind::CutPrimary) && first.contains(&Kind::PausePostgres), "{first:?}");
        let single = Menu::narrowed(Some(vec![Kind::CutPrimary]), None, true);
        assert!(super::plans(3, 5, &single).iter().all(|p| p.name() == "cut-primary"));
    }
}
