//! The read-only commands: `list`, `topology`, `history`, `show-config`, `dsn`.

use super::args::{ConnectOnly, DsnArgs, Format, HistoryArgs, ListArgs, TopologyArgs, WatchArgs};
use super::{config_edit, connect, dsn, emit, history, list, timeline};
use std::io::IsTerminal;

/// `vigil list`.
pub async fn run_list(args: ListArgs) -> Result<(), String> {
    let shown =
        Shown { format: args.format, topology: false, extended: args.extended, timestamp: args.timestamp };
    members(&args.connect, args.cluster.as_deref(), &args.watch, shown).await
}

/// `vigil topology`.
pub async fn run_topology(args: TopologyArgs) -> Result<(), String> {
    let shown = Shown { format: Format::Pretty, topology: true, extended: false, timestamp: false };
    members(&args.connect, args.cluster.as_deref(), &args.watch, shown).await
}

/// How the member list is printed.
#[derive(Debug, Clone, Copy)]
struct Shown {
    format: Format,
    topology: bool,
    extended: bool,
    /// A timestamp line first (`list -t`).
    timestamp: bool,
}

/// Prints the member list, once or (watching) every interval until Ctrl-C; while watching, a failed
/// read is printed in place of the table and the next refresh tries again (members already seen are
/// asked too).
async fn members(
    connect_args: &super::args::ConnectArgs,
    cluster: Option<&str>,
    watch: &WatchArgs,
    shown: Shown,
) -> Result<(), String> {
    let interval = watch.interval()?;
    let mut client = connect(connect_args, cluster).await?;
    loop {
        let text = client.cluster().await.map(|c| {
            let table = list::render(&c, shown.format, shown.topology, shown.extended);
            match shown.timestamp {
                true => format!("{}\n{table}", list::timestamp_line(chrono::Local::now())),
                false => table,
            }
        });
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
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let history = client.get("/history").await?;
    emit(&history::render(&history, args.format));
    if args.format == Format::Pretty {
        // Agents from before the event log answer no events: the table alone then.
        if let Ok(events) = client.events(&vigil_api::EventQuery::default()).await {
            let timeline = timeline::timeline(&events);
            if !timeline.is_empty() {
                emit(&format!("\n{timeline}"));
            }
        }
    }
    Ok(())
}

/// `vigil show-config`.
pub async fn run_show_config(args: ConnectOnly) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let config = client.get("/config").await?;
    emit(&config_edit::to_yaml(&config));
    Ok(())
}

/// `vigil dsn`.
pub async fn run_dsn(args: DsnArgs) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let cluster = client.cluster().await?;
    emit(&format!("{}\n", dsn::dsn(&cluster, args.pick.role, args.pick.member.as_deref())?));
    Ok(())
}
