//! `vigil query`: runs SQL on a member's database (the one named, else the first with the role asked
//! for, default the leader), at the address the member publishes in `GET /cluster`, and prints the rows
//! of the last statement that returned some, as patronictl does (again and again with `-W`/`-w`). The
//! user is `-U`, else `PGUSER`, else `postgres`; the password is asked for with `--password`, else taken
//! from `PGPASSWORD`. Plain TCP only (no `sslmode`).

use super::args::QueryArgs;
use super::table::Table;
use super::{connect, emit};
use serde_json::Value;
use std::io::{BufRead, IsTerminal, Read};
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

/// How long connecting may take (patronictl's `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `vigil query`.
pub async fn run(args: QueryArgs) -> Result<(), String> {
    let sql = match (&args.command, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(file)) if file.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read stdin: {e}"))?;
            text
        }
        (None, Some(file)) => {
            std::fs::read_to_string(file).map_err(|e| format!("--file {}: {e}", file.display()))?
        }
        (None, None) => return Err("give the SQL with -c/--command or -f/--file".into()),
    };
    let password = match args.db_password {
        true => Some(ask_password()?),
        false => std::env::var("PGPASSWORD").ok(),
    };
    let interval = args.watch.interval()?;
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let cluster = client.cluster().await?;
    let (host, port) = super::dsn::address(&cluster, args.pick.role, args.pick.member.as_deref())?;
    let port = port.unwrap_or(5432);
    let mut config = tokio_postgres::Config::new();
    config
        .host(&host)
        .port(port)
        .user(args.db_user.clone().or_else(|| std::env::var("PGUSER").ok()).as_deref().unwrap_or("postgres"))
        .dbname(args.dbname.as_deref().unwrap_or("postgres"))
        .application_name("vigil query")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(password) = &password {
        config.password(password);
    }
    let (db, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let connection = tokio::spawn(connection); // owned here: aborted below
    let result = repeat(&db, &sql, args.format, interval).await;
    connection.abort();
    result
}

/// Runs `sql` and prints its rows, once or (watching) every `interval` until Ctrl-C; while watching, an
/// error is printed as a line of its own (patronictl's timestamped row) and the next round tries again.
async fn repeat(
    db: &tokio_postgres::Client,
    sql: &str,
    format: super::args::Format,
    interval: Option<std::time::Duration>,
) -> Result<(), String> {
    loop {
        let answer = db.simple_query(sql).await.map_err(|e| match e.as_db_error() {
            Some(db) => format!("ERROR, SQLSTATE: {}: {}", db.code().code(), db.message()),
            None => format!("the query failed: {e}"),
        });
        let text = answer.map(|messages| rows(&messages).render(format));
        let Some(interval) = interval else {
            emit(&text?);
            return Ok(());
        };
        let stamp = super::list::timestamp_line(chrono::Local::now());
        if !emit(&text.unwrap_or_else(|e| format!("{stamp}\t{e}\n"))) {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}

/// The rows of the last statement that described some columns, as a table of text cells (NULL empty).
fn rows(messages: &[SimpleQueryMessage]) -> Table {
    let mut table = Table::new(&[], &[]);
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
                table = Table::new(&names, &[]);
            }
            SimpleQueryMessage::Row(row) => {
                let cells = (0..row.len()).map(|i| row.get(i).map_or(Value::Null, Value::from)).collect();
                table.rows.push(cells);
            }
            _ => {}
        }
    }
    table
}

/// Asks for the database password on the terminal without echoing it (or reads a line from stdin when
/// it is no terminal).
fn ask_password() -> Result<String, String> {
    emit("Password: ");
    let stdin = std::io::stdin();
    let echo_off = stdin.is_terminal().then(Echo::off).flatten();
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    drop(echo_off);
    emit("\n");
    read.map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The terminal's settings while echo is off; restored when dropped.
struct Echo(libc::termios);

impl Echo {
    /// Turns echo off on stdin; `None` when its settings cannot be read.
    fn off() -> Option<Echo> {
        // SAFETY: tcgetattr fills the zeroed termios it is given; fd 0 is stdin.
        let mut settings: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(0, &mut settings) } != 0 {
            return None;
        }
        let mut quiet = settings;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a termios read from the same descriptor, with one flag changed.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        Some(Echo(settings))
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `off`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}
