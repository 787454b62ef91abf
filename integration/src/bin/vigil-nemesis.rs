//! `vigil-nemesis`: the fault suite (see `vigil_integration::nemesis`) for long soaks outside CI. Runs as
//! root (network namespaces); needs `ip` and `nft`.
//!
//! ```text
//! cargo build --release -p vigil-agent -p vigil-integration --bins
//! target/release/vigil-nemesis --seed 1 --trials 200 --duration 3600
//! target/release/vigil-nemesis --seed 1 --trials 100 --sync        # about 45 min (holds up to 60 s)
//! target/release/vigil-nemesis --seed 2 --trials 6 --sync --kinds cut-primary,pause-postgres \
//!     --holds 30000,60000 --single                                   # a focused long-hold run
//! target/release/vigil-nemesis --engine mariadb --seed 3 --trials 50 # MariaDB (asynchronous only, for now)
//! ```
//!
//! Prints a line per trial, the Markdown table of the times to the first write elsewhere (for
//! BENCHMARKS.md), the trials whose fault hit the primary without a failover, and a summary line; exits
//! 1 on any violation, 2 when the run could not be carried out.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vigil_integration::nemesis::{self, faults::Kind, schedule::Menu, Config, Engine};

#[derive(Parser, Debug)]
#[command(
    about = "Jepsen-style fault suite for Vigil: real agents, PostgreSQL or MariaDB, network namespaces"
)]
struct Args {
    /// The database the agents manage.
    #[arg(long, value_enum, default_value_t = Engine::Postgres)]
    engine: Engine,
    /// Seeds the fault sequence (default: from the clock; printed, so a run can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// How many faults at most.
    #[arg(long, default_value_t = 50)]
    trials: usize,
    /// No fault starts after this many seconds.
    #[arg(long, default_value_t = 3600)]
    duration: u64,
    /// Synchronous replication: lost acknowledged writes fail the run.
    #[arg(long)]
    sync: bool,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 3)]
    clients: u32,
    /// The `vigil` binary; default: the one next to this binary.
    #[arg(long)]
    vigil_binary: Option<PathBuf>,
    /// Where to copy the agents' logs at the end.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// Only these nemeses, comma-separated (default: all): kill-node, kill-agent, kill-postgres,
    /// pause-agent, pause-postgres, isolate-primary, cut-primary, isolate-replica, split, asymmetric,
    /// slow-link.
    #[arg(long, value_delimiter = ',', value_parser = kind)]
    kinds: Option<Vec<Kind>>,
    /// Only these holds in ms, comma-separated, equally likely (default: 0.5 to 60 s, weighted).
    #[arg(long, value_delimiter = ',')]
    holds: Option<Vec<u64>>,
    /// One nemesis per trial: no combinations of two.
    #[arg(long)]
    single: bool,
}

/// A `--kinds` item.
fn kind(name: &str) -> Result<Kind, String> {
    Kind::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        format!("unknown nemesis {name:?}: expected one of {}", names.join(", "))
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let binary = match args
        .vigil_binary
        .map_or_else(|| std::env::current_exe().map(|p| p.with_file_name("vigil")), Ok)
    {
        Ok(path) => path,
        Err(e) => {
            println!("nemesis: cannot find the vigil binary next to this one ({e}): pass --vigil-binary");
            return ExitCode::from(2);
        }
    };
    let seed = args.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_nanos() as u64
    });
    let config = Config {
        engine: args.engine,
        seed,
        trials: args.trials,
        duration: Duration::from_secs(args.duration),
        sync: args.sync,
        nodes: args.nodes,
        clients: args.clients,
        binary,
        keep_logs: args.keep_logs,
        menu: Menu::narrowed(
            args.kinds,
            args.holds.map(|holds| holds.into_iter().map(Duration::from_millis).collect()),
            !args.single,
        ),
    };
    match nemesis::run(&config) {
        Ok(report) => {
            for violation in &report.violations {
                println!("VIOLATION: {violation}");
            }
            println!("\n{}", report.downtime_table());
            for trial in report.without_failover() {
                println!("without a failover: {trial}");
            }
            println!("{}", report.summary());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            println!("nemesis (seed {seed}) could not run: {e}");
            ExitCode::from(2)
        }
    }
}
