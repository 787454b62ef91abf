//! The control tool, mirroring patronictl: `vigil list`, `topology`, `switchover`, `failover`, `pause`,
//! `resume`, `show-config`, `edit-config`, `history`, `events`, `dsn`, `restart`, `reload`, `reinit`, `flush`,
//! `query`, `version`, `completions`, `man`.
//!
//! It talks to the agents' REST API (README, "REST API, CLI and HAProxy"), and `query` to a member's
//! database: it finds one agent from a configuration file (`-c FILE` before or after the subcommand,
//! `VIGIL_CTL_CONFIG_FILE` or `PATRONICTL_CONFIG_FILE`; an agent's file or a ctl-only one, [`ctl_file`]),
//! `--api URL` or `VIGIL_API`, and the other members from `GET /cluster` ([`client`]). What it prints is made by pure functions from the JSON ([`list`], [`history`], [`events`],
//! [`config_edit`], [`diff`], [`dsn`], [`switchover::Plan`]); reading stdin, the editor and the calls
//! stay at the edges. Errors are one sentence on stderr (`vigil: ...`) and exit status 1.

pub mod args;
pub mod client;
pub mod config_edit;
pub mod ctl_file;
pub mod diff;
pub mod dsn;
mod edit;
pub mod events;
mod flush;
pub mod history;
pub mod list;
mod man;
mod member_ops;
mod members;
pub mod pause;
mod query;
mod standby;
pub mod switchover;
pub mod table;
pub mod targets;
pub mod timeline;
mod version;
mod view;

pub use args::{CtlCommand, GlobalArgs};
pub use man::write_man_pages;

use ctl_file::CtlFile;
use member_ops::MemberOp;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

/// Runs a control command with the options given before it; `app` is the whole `vigil` command line
/// (for `completions`).
pub fn run(mut command: CtlCommand, global: &GlobalArgs, mut app: clap::Command) -> ExitCode {
    if let Some(connect) = command.connect_mut() {
        connect.inherit(global);
    }
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
        CtlCommand::Events(args) => events::run(args).await,
        CtlCommand::Dsn(args) => view::run_dsn(args).await,
        CtlCommand::Restart(args) => member_ops::restart(args).await,
        CtlCommand::Reload(args) => member_ops::run(MemberOp::Reload, &args.targets, args.role).await,
        CtlCommand::Reinit(args) => member_ops::reinit(args).await,
        CtlCommand::Flush(args) => flush::run(args).await,
        CtlCommand::Query(args) => query::run(args).await,
        CtlCommand::Version(args) => version::run(args).await,
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

/// A client for the cluster the arguments point to (reading the configuration file if one is named:
/// `-c`, else `VIGIL_CTL_CONFIG_FILE`, else `PATRONICTL_CONFIG_FILE`, else, when neither `--api` nor
/// `VIGIL_API` is given either, patronictl's `~/.config/patroni/patronictl.yaml` if it exists). When
/// `cluster` (or the file's `scope`) names the cluster, the agent is asked at once and must belong to it.
async fn connect(args: &args::ConnectArgs, cluster: Option<&str>) -> Result<client::Client, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let patronictl_default = || {
        let home = env("HOME").filter(|_| args.api.is_none() && env("VIGIL_API").is_none())?;
        let file = std::path::Path::new(&home).join(".config/patroni/patronictl.yaml");
        file.is_file().then_some(file)
    };
    let path = args.config.clone().or_else(|| {
        ["VIGIL_CTL_CONFIG_FILE", "PATRONICTL_CONFIG_FILE"].into_iter().find_map(env).map(Into::into)
    });
    let path = path.or_else(patronictl_default);
    let file = match &path {
        Some(path) => Some(CtlFile::load(path, &env)?),
        None => None,
    };
    let target = client::resolve(args, cluster, file.as_ref(), &env)?;
    let checked = target.scope.is_some();
    let mut client = client::Client::new(target)?;
    if checked {
        client.cluster().await?;
    }
    Ok(client)
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
        use std::time::Duration;
        app().debug_assert();
        let parse = |args: &[&str]| {
            let matches = app().try_get_matches_from(args).map_err(|e| e.to_string())?;
            <CtlCommand as clap::FromArgMatches>::from_arg_matches(&matches).map_err(|e| e.to_string())
        };
        let list = parse(&["vigil", "list", "-f", "json", "-w", "5", "--api", "h:1"]).expect("list");
        let CtlCommand::List(list) = list else { panic!("not list: {list:?}") };
        assert_eq!(
            (list.format, list.watch.interval()),
            (args::Format::Json, Ok(Some(Duration::from_secs(5))))
        );
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
    fn patronictl_command_lines_parse() {
        use clap::{Args, FromArgMatches};
        let app = GlobalArgs::augment_args(app());
        let parse = |args: &[&str]| {
            let matches = app.clone().try_get_matches_from(args).map_err(|e| e.to_string())?;
            let global = GlobalArgs::from_arg_matches(&matches).map_err(|e| e.to_string())?;
            let mut command = CtlCommand::from_arg_matches(&matches).map_err(|e| e.to_string())?;
            if let Some(connect) = command.connect_mut() {
                connect.inherit(&global);
            }
            Ok::<_, String>(command)
        };
        let list = parse(&["vigil", "-c", "ctl.yaml", "-k", "--cacert", "ca.pem", "list", "batman", "-t"]);
        let Ok(CtlCommand::List(list)) = list else { panic!("not list: {list:?}") };
        assert_eq!(list.connect.config.as_deref(), Some(std::path::Path::new("ctl.yaml")));
        assert!(list.connect.tls.insecure && list.timestamp);
        assert_eq!(list.connect.tls.cacert.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert_eq!(list.cluster.as_deref(), Some("batman"));
        let own = parse(&["vigil", "-c", "global.yaml", "list", "--config-file", "own.yaml"]);
        let Ok(CtlCommand::List(own)) = own else { panic!("not list: {own:?}") };
        assert_eq!(own.connect.config.as_deref(), Some(std::path::Path::new("own.yaml")));

        let query =
            parse(&["vigil", "-c", "f", "query", "batman", "-c", "select 1", "-r", "replica", "-U", "u"]);
        let Ok(CtlCommand::Query(query)) = query else { panic!("not query: {query:?}") };
        assert_eq!((query.command.as_deref(), query.db_user.as_deref()), (Some("select 1"), Some("u")));
        assert_eq!((query.pick.role, query.format), (Some(args::MemberRole::Replica), args::Format::Tsv));
        assert!(
            parse(&["vigil", "query", "-c", "x", "-f", "y.sql"]).is_err(),
            "-c and -f exclude each other"
        );
        assert!(parse(&["vigil", "query"]).is_err(), "query needs SQL");
        assert!(parse(&["vigil", "query", "-c", "x", "--api-password", "p", "--password"]).is_ok());

        let flush = parse(&["vigil", "flush", "batman", "n1", "restart", "--force"]);
        let Ok(CtlCommand::Flush(flush)) = flush else { panic!("not flush: {flush:?}") };
        let (target, members) = flush.split().expect("split");
        assert_eq!(target, args::FlushTarget::Restart);
        assert_eq!(members.names, ["batman", "n1"]);
        let Ok(CtlCommand::Flush(bad)) = parse(&["vigil", "flush", "batman"]) else { panic!("flush") };
        assert_eq!(
            bad.split().expect_err("no target"),
            "flush batman: the last argument must be restart or switchover"
        );

        let restart = parse(&["vigil", "restart", "batman", "n1", "n2", "--any", "--pg-version", "15.8"]);
        let Ok(CtlCommand::Restart(restart)) = restart else { panic!("not restart: {restart:?}") };
        assert_eq!(restart.targets.names, ["batman", "n1", "n2"]);
        let reinit = parse(&["vigil", "reinit", "batman", "--wait", "--from-leader", "--force"]);
        assert!(matches!(reinit, Ok(CtlCommand::Reinit(ref r)) if r.wait && r.from_leader), "{reinit:?}");
        assert!(
            matches!(parse(&["vigil", "edit-config", "-q", "-s", "a=1"]), Ok(CtlCommand::EditConfig(e)) if e.quiet)
        );
        assert!(matches!(parse(&["vigil", "version", "batman"]), Ok(CtlCommand::Version(_))));
        let key_alone = parse(&["vigil", "list", "--key", "k.pem"]).expect_err("--key needs --cert");
        assert!(key_alone.contains("--cert"), "{key_alone}");
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
