//! The read-only commands: `list`, `topology`, `history`, `show-config`, `dsn`.

use super::args::{ConnectOnly, DsnArgs, Format, HistoryArgs, ListArgs, TopologyArgs, WatchArgs};
use super::{config_edit, connect, dsn, emit, history, list};
use std::io::IsTerminal;
use std::time::Duration;

/// `vigil list`.
pub async fn run_list(args: ListArgs) -> Result<(), String> {
    members(&args.connect, &args.watch, args.format, false, args.extended).await
}

/// `vigil topology`.
pub async fn run_topology(args: TopologyArgs) -> Result<(), String> {
    members(&args.connect, &args.watch, Format::Pretty, true, false).await
}

/// Prints the member list, once or (watching) every interval until Ctrl-C; while watching, a failed
/// read is printed in place of the table and the next refresh tries again (members already seen are
/// asked too).
async fn members(
    connect_args: &super::args::ConnectArgs,
    watch: &WatchArgs,
    format: Format,
    topology: bool,
    extended: bool,
) -> Result<(), String> {
    let interval = match watch.interval() {
        Some(secs) => Some(
            Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("-w {secs}: give a positive number of seconds"))?,
        ),
        None => None,
    };
    let mut client = connect(connect_args)?;
    loop {
        let text = client.cluster().await.map(|c| list::render(&c, format, topology, extended));
        let Some(interval) = interval else {
            emit(&text?);
            return Ok(());
        };
        let clear = if std::io::stdout().is_terminal() { "\x1b[H\x1b[2J" } else { "" };
        let text = text.unwrap_or_else(|e| format!("vigil: {e}\n"));
        if !emit(&format!("{clear}{text}")) {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

/// `vigil history`.
pub async fn run_history(args: HistoryArgs) -> Result<(), String> {
    let mut client = connect(&args.connect)?;
    let history = client.get("/history").await?;
    emit(&history::render(&history, args.format));
    Ok(())
}

/// `vigil show-config`.
pub async fn run_show_config(args: ConnectOnly) -> Result<(), String> {
    let mut client = connect(&args.connect)?;
    let config = client.get("/config").await?;
    emit(&config_edit::to_yaml(&config));
    Ok(())
}

/// `vigil dsn`.
pub async fn run_dsn(args: DsnArgs) -> Result<(), String> {
    let mut client = connect(&args.connect)?;
    let cluster = client.cluster().await?;
    emit(&format!("{}\n", dsn::dsn(&cluster, args.role, args.member.as_deref())?));
    Ok(())
}
