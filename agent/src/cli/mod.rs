//! The control tool, mirroring patronictl: `vigil list`, `topology`, `switchover`, `failover`, `pause`,
//! `resume`, `show-config`, `edit-config`, `history`, `dsn`, `completions`.
//!
//! It talks only to the agents' REST API (README, "REST API, CLI and HAProxy"): it finds one agent from `-c FILE` (its
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
mod member_ops;
mod members;
pub mod pause;
mod standby;
pub mod switchover;
pub mod table;
mod view;

pub use args::CtlCommand;

use crate::config::Config;
use member_ops::MemberOp;
use std::io::{BufRead, IsTerminal, Write};
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
        CtlCommand::Restart(args) => member_ops::run(MemberOp::Restart, args).await,
        CtlCommand::Reload(args) => member_ops::run(MemberOp::Reload, args).await,
        CtlCommand::Reinit(args) => member_ops::run(MemberOp::Reinit, args).await,
        CtlCommand::Members(command) => members::run(command).await,
        CtlCommand::DemoteCluster(args) => standby::demote(args).await,
        CtlCommand::PromoteCluster(args) => standby::promote(args).await,
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
    if !std::io::stdin().is_terminal() {
        emit("\n"); // the answer was not echoed
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

    /// The control commands as `vigil` has them (main.rs flattens [`CtlCommand`] into its own).
    fn app() -> clap::Command {
        use clap::Subcommand;
        CtlCommand::augment_subcommands(clap::Command::new("vigil"))
    }

    #[test]
    fn the_command_line_is_consistent_and_parses() {
        app().debug_assert();
        let parse = |args: &[&str]| {
            let matches = app().try_get_matches_from(args).map_err(|e| e.to_string())?;
            <CtlCommand as clap::FromArgMatches>::from_arg_matches(&matches).map_err(|e| e.to_string())
        };
        let list = parse(&["vigil", "list", "-f", "json", "-w", "5", "--api", "h:1"]).expect("list");
        let CtlCommand::List(list) = list else { panic!("not list: {list:?}") };
        assert_eq!((list.format, list.watch.interval()), (args::Format::Json, Some(5.0)));
        assert_eq!(list.connect.api.as_deref(), Some("h:1"));
        let edit = parse(&["vigil", "edit-config", "-s", "ttl=5", "-s", "a.b=1", "-p", "x=y", "--force"]);
        let Ok(CtlCommand::EditConfig(edit)) = edit else { panic!("not edit-config: {edit:?}") };
        assert_eq!((edit.set.len(), edit.pg.len(), edit.force), (2, 1, true));
        assert!(parse(&["vigil", "failover"]).is_err(), "failover needs --candidate");
        assert!(
            parse(&["vigil", "dsn", "-r", "replica", "-m", "n1"]).is_err(),
            "-r and -m exclude each other"
        );
        assert!(matches!(parse(&["vigil", "dsn", "-r", "leader"]), Ok(CtlCommand::Dsn(_))));
        let with_password = parse(&["vigil", "pause", "--username", "u", "--password", "hunter2"]);
        let Ok(CtlCommand::Pause(pause)) = &with_password else { panic!("not pause: {with_password:?}") };
        assert_eq!(pause.connect.password.as_ref().map(|p| p.expose()), Some("hunter2"));
        assert!(!format!("{with_password:?}").contains("hunter2"), "Debug must hide the password");
    }

    #[test]
    fn completions_cover_the_commands() {
        for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut app(), "vigil", &mut script);
            let script = String::from_utf8(script).expect("utf-8");
            for command in ["list", "switchover", "edit-config", "completions"] {
                assert!(script.contains(command), "{shell}: {command} missing");
            }
        }
    }

    #[test]
    fn only_yes_is_yes() {
        assert!(is_yes("y\n"));
        assert!(is_yes(" YES "));
        assert!(!is_yes(""));
        assert!(!is_yes("n\n"));
        assert!(!is_yes("yep"));
    }
}
