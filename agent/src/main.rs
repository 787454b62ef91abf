//! `vigil`: the agent that runs beside each database server, and the control tool.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Vigil: a failover manager for PostgreSQL and MySQL/MariaDB.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent with a YAML configuration file.
    Agent {
        /// The configuration file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Start a local three-node cluster for trying Vigil out.
    Demo,
    /// Print the version.
    Version,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Version => {
            println!("vigil {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Agent { .. } | Command::Demo => {
            eprintln!(
                "vigil: the PostgreSQL agent is not ready yet. The cluster store it builds on (crate vigil-dcs) \
                 is; the agent and `vigil demo` arrive next."
            );
            ExitCode::FAILURE
        }
    }
}
