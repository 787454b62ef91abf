//! `vigil`: the agent that runs beside each database server, and the control tool.

use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vigil_agent::config::{LogLevel, Source};

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
        /// The configuration file; without it, the whole file is read from VIGIL_CONFIGURATION or
        /// PATRONI_CONFIGURATION.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
        /// The configuration file, as `patroni FILE` takes it.
        #[arg(value_name = "CONFIG_FILE", conflicts_with = "config")]
        file: Option<PathBuf>,
        /// Only check the configuration: exit 0 when it is valid, 1 listing every error when not.
        #[arg(long)]
        validate_config: bool,
        /// With --validate-config: first print the configuration as read, the environment's overrides
        /// applied and passwords hidden.
        #[arg(long, requires = "validate_config")]
        print: bool,
        /// Print a commented sample configuration.
        #[arg(long, exclusive = true)]
        generate_sample_config: bool,
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
    limit_malloc_arenas();
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
        Command::Agent { generate_sample_config: true, .. } => {
            print!("{}", vigil_agent::config::SAMPLE);
            ExitCode::SUCCESS
        }
        Command::Agent { config, file, validate_config, print, .. } => {
            let source = match Source::find(config.or(file)) {
                Ok(source) => source,
                Err(e) => return fail(&e),
            };
            if print {
                match source.effective_yaml() {
                    Ok(yaml) => print!("{yaml}"),
                    Err(e) => return fail(&e.to_string()),
                }
            }
            let config = match source.load() {
                Ok(config) => config,
                Err(e) => return fail(&e.to_string()),
            };
            let unread =
                vigil_agent::config::env::unread_patroni_variables(std::env::vars().map(|(name, _)| name));
            let warnings: Vec<String> = config.warnings().into_iter().chain(unread).collect();
            if validate_config {
                warnings.iter().for_each(|w| eprintln!("vigil: warning: {w}"));
                println!("{}: valid", config.name);
                return ExitCode::SUCCESS;
            }
            if let Err(e) = vigil_agent::logging::init(&config.log) {
                return fail(&e);
            }
            warnings.iter().for_each(|w| tracing::warn!("{w}"));
            runtime_then(vigil_agent::daemon::run(config, source.path()))
        }
        Command::Lifeline { engine, data_dir } => {
            vigil_agent::db::lifeline::watch(engine, &data_dir, std::io::stdin().lock());
            ExitCode::SUCCESS
        }
        Command::Ctl(command) => vigil_agent::cli::run(*command, &cli.global, Cli::command()),
        Command::Demo(args) => {
            vigil_agent::logging::init_stderr(LogLevel::Warn);
            runtime_then(vigil_agent::demo::run(args))
        }
    }
}

/// The async runtime's worker threads: the agent's tasks are small, and two workers keep one slow task
/// from holding up the lease renewal; one per core (tokio's default) costs a many-core host threads and
/// malloc arenas for nothing.
const WORKER_THREADS: usize = 2;

/// glibc's malloc arenas at most: by default every thread that allocates may get its own (up to eight
/// per core), each holding freed memory of its own. Two keep an idle agent's resident memory small.
const MALLOC_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`] before any thread starts (the `MALLOC_ARENA_MAX`
/// environment variable still overrides it when set).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

fn runtime_then(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(WORKER_THREADS).enable_all().build();
    let runtime = match runtime {
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
