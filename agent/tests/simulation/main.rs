//! A deterministic simulation of the whole HA policy (issue 14), after FoundationDB's simulator and
//! TigerBeetle's VOPR: several agents, each with a simulated database and a drifting clock, and one
//! in-memory store with the real lease state machine, run on virtual time with seeded crashes, pauses,
//! partitions, store elections and slow messages; after every event the safety invariants are checked
//! (see [`invariants`]), and at the end of each run that the cluster converged once every fault healed.
//!
//! Why a scheduler of our own rather than `turmoil` or `madsim`: the real loop (`ha/run.rs`) is async and
//! does real I/O (openraft over HTTP, PostgreSQL, REST probes), but all policy lives in the pure
//! `vigil_agent::ha::decide`, and that is what must be proven. Driving `decide` from a small discrete-event
//! scheduler — one priority queue, one seeded generator, no threads, no tokio — makes every run a pure
//! function of its seed (a failure replays exactly) and costs microseconds per event, so thousands of seeds
//! run in seconds. The agent's cycle ([`cycle`]) mirrors `run.rs` step by step and builds each
//! `Observation` field as `run.rs` does.
//!
//! Run: `cargo test -p vigil-agent --test simulation` (1,000 seeds). More: `VIGIL_SIM_SEEDS=100000`. One
//! seed, with its trace: `VIGIL_SIM_SEED=123 cargo test -p vigil-agent --test simulation -- --nocapture`.
//! The campaign measured in BENCHMARKS.md: `cargo test --release -p vigil-agent --test simulation --
//! --ignored --nocapture`.

mod agent;
mod clock;
mod cycle;
mod database;
mod faults;
mod invariants;
mod jobs;
mod replication;
mod rng;
mod scheduler;
mod store;
mod world;

use rng::Rng;
use std::time::{Duration, Instant};
use vigil_agent::ha::SyncPolicy;
use vigil_policy::SynchronousMode;
use world::{Settings, World};

/// How long after the last fault healed the cluster must have converged: a few lease lifetimes for the
/// lease to expire and move, plus time for a rewind or a clone and for the replicas to follow.
const CONVERGENCE: u64 = 20_000;

/// The settings of run `seed`, and the generator the run goes on with.
fn settings(seed: u64, max_drift_ppm: i64) -> (Settings, Rng) {
    let mut rng = Rng::new(seed);
    let nodes = if rng.chance(75) { 3 } else { 5 };
    let mode = match rng.between(0, 2) {
        0 => SynchronousMode::Off,
        1 => SynchronousMode::On,
        _ => SynchronousMode::Quorum,
    };
    let node_count = if nodes == 5 { rng.between(1, 2) as u32 } else { 1 };
    let sync = SyncPolicy { mode, strict: rng.chance(50), node_count, max_lag: None };
    let faults = rng.between(1, 6) as usize;
    let heal_by = 15_000;
    let settings = Settings {
        nodes,
        sync,
        ttl: Duration::from_secs(3),
        loop_wait: Duration::from_secs(1),
        retry_timeout: Duration::from_millis(750),
        safety_margin: Duration::from_millis(500),
        primary_start_timeout: Duration::from_secs(10),
        maximum_lag_on_failover: 1_048_576,
        max_drift_ppm,
        faults,
        faults_until: 10_000,
        heal_by,
        end: heal_by + CONVERGENCE,
        certificate_delay: (5, 150),
        failing_promotions: None,
    };
    (settings, rng)
}

/// Runs seed `seed`; on a broken invariant, the error is the full report: what broke, the settings, the
/// command that replays it and the last events.
fn run_seed(seed: u64, max_drift_ppm: i64) -> Result<World, String> {
    let (settings, rng) = settings(seed, max_drift_ppm);
    run_world(seed, settings, rng)
}

/// Runs `settings` of `seed` (see [`run_seed`]).
fn run_world(seed: u64, settings: Settings, rng: Rng) -> Result<World, String> {
    let mut world = World::new(settings, rng);
    match world.run() {
        Ok(()) => Ok(world),
        Err(broken) => {
            let trace: Vec<&str> = world.trace.iter().map(String::as_str).collect();
            Err(format!(
                "seed {seed}: {broken}\n  at {} ms, after {} events\n  settings: {:?}\n  replay: \
                 VIGIL_SIM_SEED={seed} cargo test -p vigil-agent --test simulation -- --nocapture\n  last \
                 events:\n    {}",
                world.now(),
                world.steps,
                world.settings,
                trace.join("\n    ")
            ))
        }
    }
}

/// Seeds left out of the CI set because they break an invariant for a reason not fixed yet; each
/// replays with `VIGIL_SIM_SEED`. (None now: what the first runs found is fixed, see the loop's
/// `LeaseKeeper::wait_limit`, `RoleGuard::may_pet` and `sync::may_take_over`.)
const KNOWN_FAILURES: &[u64] = &[];

/// Runs `seeds` from `first` (but the known failures), panicking with the report of the first broken
/// one and the list of all; prints the rate.
fn campaign(first: u64, seeds: u64) {
    let started = Instant::now();
    let (mut steps, mut certified) = (0, 0);
    let mut broken = Vec::new();
    for seed in (first..first + seeds).filter(|s| !KNOWN_FAILURES.contains(s)) {
        match run_seed(seed, DRIFT_PPM) {
            Ok(world) => (steps, certified) = (steps + world.steps, certified + world.certified),
            Err(report) => broken.push((seed, report)),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{seeds} seeds, {steps} events in {secs:.2} s: {:.0} seeds/s, {:.0} events/s, {} events per seed; \
         {certified} leases released by a death certificate",
        seeds as f64 / secs,
        steps as f64 / secs,
        steps / seeds.max(1)
    );
    assert!(seeds < 100 || certified > 0, "no death certificate released a lease: the path went untested");
    if let Some((_, report)) = broken.first() {
        let seeds: Vec<u64> = broken.iter().map(|(seed, _)| *seed).collect();
        panic!("{} seeds broke an invariant: {seeds:?}\nthe first:\n{report}", seeds.len());
    }
}

/// Clock-rate drift of every node and of the store: up to 5 % either way.
const DRIFT_PPM: i64 = 50_000;

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The CI run: 1,000 seeds (`VIGIL_SIM_SEEDS` for more, from `VIGIL_SIM_FIRST_SEED`), or the one seed
/// `VIGIL_SIM_SEED`, whose trace is then printed.
#[test]
fn policy_simulation() {
    if let Some(seed) = env("VIGIL_SIM_SEED") {
        let (settings, rng) = settings(seed, DRIFT_PPM);
        let mut world = World::new(settings, rng);
        let result = world.run();
        println!("{} leases released by a death certificate", world.certified);
        println!(
            "seed {seed}: {} events; last events:\n{}",
            world.steps,
            Vec::from(world.trace.clone()).join("\n")
        );
        if let Err(e) = result {
            panic!("{}", run_seed(seed, DRIFT_PPM).err().unwrap_or(e));
        }
        return;
    }
    campaign(env("VIGIL_SIM_FIRST_SEED").unwrap_or(0), env("VIGIL_SIM_SEEDS").unwrap_or(1_000));
}

/// The long campaign measured in BENCHMARKS.md (100,000 seeds unless `VIGIL_SIM_SEEDS` says otherwise).
#[test]
#[ignore = "a long campaign: run in release with --ignored"]
fn policy_simulation_campaign() {
    campaign(env("VIGIL_SIM_FIRST_SEED").unwrap_or(1_000_000), env("VIGIL_SIM_SEEDS").unwrap_or(100_000));
}

/// The checker is alive: with clocks drifting far beyond what `safety_margin` covers (a store clock 70 %
/// fast against a holder 70 % slow), some seed ends with a lease expired in the store while its former
/// holder still believes it valid, and an invariant breaks. (At 60 %, seed 1112 broke first; the look at
/// once after the lease is first seen free changed the synchronous seeds' timing, and since then none of
/// the first 2000 does.)
#[test]
fn invariants_catch_drift_beyond_the_safety_margin() {
    let broken = (0..2000).find_map(|seed| run_seed(seed, 700_000).err());
    assert!(broken.is_some(), "no seed broke an invariant with 70 % clock drift");
}

/// One member's promotions fail for seconds on end, on top of the seed's other faults: a candidate that
/// took the lease gives it back after `PROMOTION_ATTEMPTS` failures (its server killed first) and keeps out
/// of the race for a `ttl`, and the others do not wait for it. Nothing may break, and the cluster must
/// converge once the fault healed. The seeds are the CI set's.
#[test]
fn promotions_that_keep_failing_break_nothing() {
    let mut gave_up = 0;
    for seed in 0..300 {
        let (mut settings, rng) = settings(seed, DRIFT_PPM);
        settings.failing_promotions = Some(!seed);
        match run_world(seed, settings, rng) {
            Ok(world) => gave_up += world.gave_up,
            Err(report) => panic!("{report}"),
        }
    }
    println!("{gave_up} promotions given up after failing every time");
    assert!(gave_up > 0, "no candidate gave up after failed promotions: the path went untested");
}

/// Certificates held up for seconds (peers unreachable, the store electing) often arrive after the dead
/// holder's agent restarted and took its lease again: the store must ignore them (they name an older
/// renewal), and nothing may break. The seeds are the CI set's, which all pass with prompt certificates.
#[test]
fn late_certificates_break_nothing() {
    for seed in 0..300 {
        let (mut settings, rng) = settings(seed, DRIFT_PPM);
        settings.certificate_delay = (1000, 6000);
        if let Err(report) = run_world(seed, settings, rng) {
            panic!("{report}");
        }
    }
}
