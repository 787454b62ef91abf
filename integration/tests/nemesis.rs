//! The fault suite's CI run: a 3-node cluster in network namespaces, every nemesis once and one
//! combination of two (fixed seed), `synchronous_mode: on` (a lost acknowledged write fails the run). Long soaks:
//! the `vigil-nemesis` binary. Skipped, saying so, only where network namespaces cannot be created.

use std::time::Duration;
use vigil_integration::agents::vigil_binary;
use vigil_integration::nemesis::{self, faults::Kind, Config};
use vigil_integration::netns::Topology;

/// The CI seed; change it only together with the figures it is known to pass with.
const SEED: u64 = 20261122;
/// Every nemesis once, then two at once (see `nemesis::schedule::plans`).
const TRIALS: usize = Kind::ALL.len() + 1;

#[test]
fn every_nemesis_once_keeps_one_primary_and_converges() {
    if let Err(why) = Topology::usable() {
        eprintln!("SKIPPED: network namespaces are unusable here ({why}); the fault suite needs root and `ip netns`");
        return;
    }
    let config = Config {
        seed: SEED,
        trials: TRIALS,
        duration: Duration::from_secs(180),
        sync: true,
        nodes: 3,
        clients: 3,
        binary: vigil_binary(),
        keep_logs: None,
    };
    let report = nemesis::run(&config).unwrap_or_else(|e| panic!("the fault suite could not run: {e}"));
    println!("{}", report.summary());
    assert!(
        report.passed(),
        "violations (replay with vigil-nemesis --seed {SEED}):\n{}",
        report.violations.join("\n")
    );
    assert_eq!(report.trials(), TRIALS, "every nemesis once and a combination: {:?}", report.kinds);
}
