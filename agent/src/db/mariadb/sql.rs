//! What the adapter says to its own server, over the Unix socket (mysql_async, text protocol).

use super::dialect::Dialect;
use super::gtid;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row};
use std::path::Path;
use std::time::Duration;

/// How long one administrative statement may take: one that waits longer (a lock the server never
/// grants, a replication thread that does not stop) fails its operation instead of stopping the agent.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to the local server.
pub(super) type Session = Conn;

/// Connects as `user` over `socket` within `timeout`.
pub(super) async fn connect(
    socket: &Path,
    user: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Result<Session, String> {
    let opts = OptsBuilder::default()
        .socket(Some(socket.display().to_string()))
        .user(Some(user))
        .pass(password)
        .prefer_socket(true)
        .stmt_cache_size(0);
    open(opts, timeout).await
}

/// Connects to another member's server at `host:port` over TCP as `user` within `timeout`.
pub(super) async fn connect_tcp(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    timeout: Duration,
) -> Result<Session, String> {
    let opts = OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
        .stmt_cache_size(0);
    open(opts, timeout).await
}

async fn open(opts: OptsBuilder, timeout: Duration) -> Result<Session, String> {
    match tokio::time::timeout(timeout, Conn::new(opts)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Whether the server at `socket` answers: a session as `user`, or a refusal from the server itself (an
/// account not created yet).
pub(super) async fn answers(socket: &Path, user: &str, password: Option<&str>) -> bool {
    let opts = OptsBuilder::default()
        .socket(Some(socket.display().to_string()))
        .user(Some(user))
        .pass(password)
        .prefer_socket(true);
    match tokio::time::timeout(Duration::from_secs(1), Conn::new(opts)).await {
        Ok(Ok(conn)) => {
            drop(conn.disconnect().await);
            true
        }
        Ok(Err(mysql_async::Error::Server(_))) => true,
        _ => false,
    }
}

/// Runs `statement`, discarding any result; the error names it.
pub(super) async fn run(session: &mut Session, statement: &str) -> Result<(), String> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, session.query_drop(statement)).await {
        Ok(done) => done.map_err(|e| format!("{}: {e}", redact(statement))),
        Err(_) => Err(format!("{}: not done within {STATEMENT_TIMEOUT:?}", redact(statement))),
    }
}

/// The statement as it may be logged: cut before a password.
fn redact(statement: &str) -> String {
    let at = ["MASTER_PASSWORD", "IDENTIFIED BY"].iter().filter_map(|m| statement.find(m)).min();
    match at {
        Some(at) => format!("{}…", &statement[..at]),
        None => statement.to_owned(),
    }
}

/// A string literal for SQL text: quoted, with quotes and backslashes escaped.
pub(super) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The replica side, as `SHOW SLAVE STATUS` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct SlaveStatus {
    /// The upstream's host and port.
    pub master: (String, u16),
    /// `Slave_IO_Running`: `Yes`, `Connecting` or `No`.
    pub io_running: String,
    /// Whether the SQL thread runs.
    pub sql_running: bool,
    /// `Gtid_IO_Pos`: the last GTIDs received.
    pub io_pos: String,
    /// The IO thread's last error (0: none).
    pub io_errno: u32,
    /// Its message.
    pub io_error: String,
    /// The SQL thread's last error (0: none).
    pub sql_errno: u32,
    /// Its message.
    pub sql_error: String,
}

/// What one look at the server gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Live {
    /// `@@read_only`.
    pub read_only: bool,
    /// `@@gtid_binlog_pos`: what this server has logged.
    pub binlog_pos: String,
    /// `@@gtid_slave_pos`: what its replication applied.
    pub slave_pos: String,
    /// `@@version`.
    pub version: String,
    /// The term it has applied: the fencing token in `vigil.fence` (`None` before the bootstrap wrote it).
    pub term: Option<u64>,
    /// Its replica side, when replication is configured.
    pub slave: Option<SlaveStatus>,
    /// The replicas connected to it (`SHOW SLAVE HOSTS`).
    pub replicas: Vec<ReplicaHost>,
}

/// A replica connected to this server, as it reported itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ReplicaHost {
    /// Its member name (`report_host`).
    pub name: String,
    /// The port its server listens on (`report_port`).
    pub port: u16,
}

/// Looks at the server, in `dialect`.
pub(super) async fn live(session: &mut Session, dialect: Dialect) -> Result<Live, String> {
    let row: Option<(u8, String, String, String)> = session
        .query_first(
            "SELECT @@global.read_only, @@global.gtid_binlog_pos, @@global.gtid_slave_pos, @@version",
        )
        .await
        .map_err(|e| format!("read the server's state: {e}"))?;
    let (read_only, binlog_pos, slave_pos, version) = row.ok_or("read the server's state: no row")?;
    Ok(Live {
        read_only: read_only != 0,
        binlog_pos,
        slave_pos,
        version,
        term: term(session).await,
        slave: slave_status(session, dialect).await?,
        replicas: replicas(session, dialect).await?,
    })
}

/// The token in `vigil.fence`, if the table and its row exist.
async fn term(session: &mut Session) -> Option<u64> {
    session.query_first("SELECT token FROM vigil.fence WHERE id = 1").await.ok().flatten()
}

/// `SHOW SLAVE STATUS` (in `dialect`), when replication is configured.
pub(super) async fn slave_status(
    session: &mut Session,
    dialect: Dialect,
) -> Result<Option<SlaveStatus>, String> {
    let statement = dialect.replica_status();
    let rows: Vec<Row> = session.query(statement).await.map_err(|e| format!("{statement}: {e}"))?;
    let columns = dialect.status_columns();
    let Some(row) = rows.into_iter().next() else { return Ok(None) };
    let text = |name: &str| {
        row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten().unwrap_or_default()
    };
    let number = |name: &str| text(name).parse::<u32>().unwrap_or(0);
    let master_host = text(columns.host);
    if master_host.is_empty() {
        return Ok(None);
    }
    Ok(Some(SlaveStatus {
        master: (master_host, text(columns.port).parse().unwrap_or(0)),
        io_running: text(columns.io_running),
        sql_running: text(columns.sql_running) == "Yes",
        io_pos: text("Gtid_IO_Pos"),
        io_errno: number("Last_IO_Errno"),
        io_error: text("Last_IO_Error"),
        sql_errno: number("Last_SQL_Errno"),
        sql_error: text("Last_SQL_Error"),
    }))
}

/// The replicas connected to this server.
async fn replicas(session: &mut Session, dialect: Dialect) -> Result<Vec<ReplicaHost>, String> {
    let statement = dialect.replica_hosts();
    let rows: Vec<Row> = session.query(statement).await.map_err(|e| format!("{statement}: {e}"))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let name = row.get_opt::<String, _>("Host").and_then(Result::ok)?;
            let port = row.get_opt::<u16, _>("Port").and_then(Result::ok)?;
            Some(ReplicaHost { name, port })
        })
        .collect())
}

impl Live {
    /// Whether it runs as a primary: writable, and following nobody.
    pub fn is_primary(&self) -> bool {
        !self.read_only && self.slave.is_none()
    }

    /// How far its data goes in `domain`: a primary's what it logged; a replica's the furthest of
    /// what it received and what it applied.
    pub fn position(&self, domain: u32) -> Result<u64, String> {
        let logged = gtid::seq_in(&self.binlog_pos, domain)?;
        let applied = gtid::seq_in(&self.slave_pos, domain)?;
        let received = match &self.slave {
            Some(slave) => gtid::seq_in(&slave.io_pos, domain)?,
            None => 0,
        };
        Ok(logged.max(applied).max(received))
    }

    /// The server's version as a number, `10.11.19-MariaDB…` → 101119.
    pub fn version_number(&self) -> Option<u32> {
        let mut parts = self.version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
        let (major, minor, patch) = (parts.next()??, parts.next()??, parts.next()??);
        Some(major * 10000 + minor * 100 + patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_and_passwords_not_logged() {
        assert_eq!(quote("it's a \\ test"), "'it\\'s a \\\\ test'");
        assert_eq!(redact("CREATE USER 'a'@'%' IDENTIFIED BY 'x'"), "CREATE USER 'a'@'%' …");
        assert_eq!(
            redact("CHANGE MASTER TO MASTER_USER='r', MASTER_PASSWORD='x'"),
            "CHANGE MASTER TO MASTER_USER='r', …"
        );
        assert_eq!(redact("STOP SLAVE"), "STOP SLAVE");
    }

    #[test]
    fn a_replica_is_as_far_as_it_received_and_a_primary_as_far_as_it_logged() {
        let slave = SlaveStatus { io_pos: "0-1-12".into(), ..SlaveStatus::default() };
        let replica = Live {
            read_only: true,
            binlog_pos: "0-1-9".into(),
            slave_pos: "0-1-9".into(),
            slave: Some(slave),
            ..Live::default()
        };
        assert_eq!(replica.position(0), Ok(12));
        assert!(!replica.is_primary());
        let primary = Live { binlog_pos: "0-2-30".into(), slave_pos: "0-1-12".into(), ..Live::default() };
        assert_eq!(primary.position(0), Ok(30));
        assert!(primary.is_primary());
        assert_eq!(
            Live { version: "10.11.19-MariaDB-0+deb12u1".into(), ..Live::default() }.version_number(),
            Some(101119)
        );
    }
}
