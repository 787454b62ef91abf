//! `vigil`: the agent that runs beside each database server, and the control tool.

use clap::{CommandFactory, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_agent::config::{Config, LogType};

/// Vigil: a failover manager for PostgreSQL and MariaDB.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about)]
struct Cli {
    /// The options the control commands take before the subcommand (`vigil -c FILE list`).
    #[command(flatten)]
    global: vigil_agent::cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent with a YAML configuration file (Patroni's structure).
    Agent {
        /// The configuration file.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Only check the file: exit 0 when it is valid, 1 with the reason when not.
        #[arg(long)]
        validate_config: bool,
    },
    /// Start a local cluster of PostgreSQL nodes with their agents, until Ctrl-C.
    Demo(vigil_agent::demo::DemoArgs),
    /// Write the manual pages (vigil.1, vigil-list.1, …) into DIR, for packaging.
    #[command(hide = true)]
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
    /// Internal: the watcher that ends the database server of DIR when the agent that started it dies.
    #[command(hide = true)]
    Lifeline {
        /// The server's engine.
        #[arg(long, value_enum, default_value = "postgresql")]
        engine: vigil_agent::db::Engine,
        /// The data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    #[command(flatten)]
    Ctl(Box<vigil_agent::cli::CtlCommand>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Ctl(_)) && cli.global != Default::default() {
        return fail(
            "-c/--config-file, -k, --cacert, --cert and --key before the subcommand are for the control \
             commands (the agent's file: vigil agent -c FILE)",
        );
    }
    match cli.command {
        Command::Man { dir } => match vigil_agent::cli::write_man_pages(Cli::command(), &dir) {
            Ok(pages) => {
                println!("{} manual pages written to {}", pages.len(), dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Agent { config: path, validate_config } => {
            let config = match Config::load(&path) {
                Ok(config) => config,
                Err(e) => return fail(&e.to_string()),
            };
            if validate_config {
                println!("{}: valid", config.name);
                return ExitCode::SUCCESS;
            }
            init_tracing(config.log.level.as_str(), config.log.kind);
            runtime_then(vigil_agent::daemon::run(config, &path))
        }
        Command::Lifeline { engine, data_dir } => {
            vigil_agent::db::lifeline::watch(engine, &data_dir, std::io::stdin().lock());
            ExitCode::SUCCESS
        }
        Command::Ctl(command) => vigil_agent::cli::run(*command, &cli.global, Cli::command()),
        Command::Demo(args) => {
            init_tracing("warn", LogType::Plain);
            runtime_then(vigil_agent::demo::run(args))
        }
    }
}

fn runtime_then(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("vigil: {message}");
    ExitCode::FAILURE
}

/// Logs to standard error from `default_level` up (`VIGIL_LOG`, an `EnvFilter` directive, overrides it),
/// as `kind` says; colours only when standard error is a terminal.
fn init_tracing(default_level: &str, kind: LogType) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default_level},openraft=warn")));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match kind {
        LogType::Plain => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogType::Json => logs.json().init(),
    }
}
