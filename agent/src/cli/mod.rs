//! The control tool, mirroring patronictl: `vigil list`, `topology`, `switchover`, `failover`, `pause`,
//! `resume`, `show-config`, `edit-config`, `history`, `dsn`, `completions`.
//!
//! It talks only to the agents' REST API (DESIGN.md section 4): it finds one agent from `-c FILE` (its
//! `restapi.connect_address`), `--api URL` or `VIGIL_API`, and the other members from `GET /cluster`
//! ([`client`]). What it prints is made by pure functions from the JSON ([`list`], [`history`],
//! [`config_edit`], [`diff`], [`dsn`], [`switchover::Plan`]); reading stdin, the editor and the calls
//! stay at the edges. Errors are one sentence on stderr (`vigil: ...`) and exit status 1.

pub mod args;
pub mod client;
pub mod config_edit;
pub mod diff;
pub mod dsn;
mod edit;
pub mod history;
pub mod list;
pub mod pause;
pub mod switchover;
pub mod table;
mod view;

pub use args::CtlCommand;

use crate::config::Config;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// Runs a control command; `app` is the whole `vigil` command line (for `completions`).
pub fn run(command: CtlCommand, mut app: clap::Command) -> ExitCode {
    if let CtlCommand::Completions(args) = &command {
        let name = app.get_name().to_string();
        let mut script = Vec::new();
        clap_complete::generate(args.shell, &mut app, name, &mut script);
        emit(&String::from_utf8_lossy(&script));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(dispatch(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn dispatch(command: CtlCommand) -> Result<(), String> {
    match command {
        CtlCommand::List(args) => view::run_list(args).await,
        CtlCommand::Topology(args) => view::run_topology(args).await,
        CtlCommand::Switchover(args) => switchover::run_switchover(args).await,
        CtlCommand::Failover(args) => switchover::run_failover(args).await,
        CtlCommand::Pause(args) => pause::run(args, true).await,
        CtlCommand::Resume(args) => pause::run(args, false).await,
        CtlCommand::ShowConfig(args) => view::run_show_config(args).await,
        CtlCommand::EditConfig(args) => edit::run(args).await,
        CtlCommand::History(args) => view::run_history(args).await,
        CtlCommand::Dsn(args) => view::run_dsn(args).await,
        CtlCommand::Completions(_) => Ok(()),
    }
}

fn fail(message: &str) -> ExitCode {
    let _ = std::io::stdout().flush();
    eprintln!("vigil: {message}");
    ExitCode::FAILURE
}

/// A client for the cluster the arguments name (reading `-c FILE` if given).
fn connect(args: &args::ConnectArgs) -> Result<client::Client, String> {
    let config = match &args.config {
        Some(path) => Some(Config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    client::Client::new(client::resolve(args, config.as_ref(), &env)?)
}

/// Writes `text` to stdout; false when it could not (e.g. the reader of a pipe went away), which is
/// not worth a panic.
fn emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_ok()
}

/// Asks `question [y/N]` on stdout and reads the answer from stdin: yes only for `y` or `yes`.
fn confirm(question: &str) -> Result<bool, String> {
    if !emit(&format!("{question} [y/N]: ")) {
        return Err("cannot write the question to stdout".to_string());
    }
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| format!("cannot read the answer: {e}"))?;
    if answer.is_empty() {
        emit("\n");
    }
    Ok(is_yes(&answer))
}

/// `y` or `yes`, in any case, with blanks around.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        assert!(is_yes("y\n"));
        assert!(is_yes(" YES "));
        assert!(!is_yes(""));
        assert!(!is_yes("n\n"));
        assert!(!is_yes("yep"));
    }
}
