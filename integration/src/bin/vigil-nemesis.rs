//! `vigil-nemesis`: the fault suite (see `vigil_integration::nemesis`) for long soaks outside CI. Runs as
//! root (network namespaces); needs `ip` and `nft`.
//!
//! ```text
//! cargo build --release -p vigil-agent -p vigil-integration --bins
//! target/release/vigil-nemesis --seed 1 --trials 200 --duration 3600
//! target/release/vigil-nemesis --seed 1 --trials 200 --sync        # once synchronous_mode is built
//! ```
//!
//! Prints a line per trial and a summary line; exits 1 on any violation, 2 when the run could not be
//! carried out.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vigil_integration::nemesis::{self, Config};

#[derive(Parser, Debug)]
#[command(about = "Jepsen-style fault suite for Vigil: real agents, PostgreSQL and network namespaces")]
struct Args {
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
}

fn main() -> ExitCode {
    let args = Args::parse();
    let binary = match args.vigil_binary {
        Some(path) => path,
        None => std::env::current_exe().expect("own path").with_file_name("vigil"),
    };
    let seed = args.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_nanos() as u64
    });
    let config = Config {
        seed,
        trials: args.trials,
        duration: Duration::from_secs(args.duration),
        sync: args.sync,
        nodes: args.nodes,
        clients: args.clients,
        binary,
        keep_logs: args.keep_logs,
    };
    match nemesis::run(&config) {
        Ok(report) => {
            for violation in &report.violations {
                println!("VIOLATION: {violation}");
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
