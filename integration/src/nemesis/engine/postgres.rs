//! The suite on PostgreSQL: the clients write as the superuser over tokio-postgres, reading the fencing
//! token with `current_setting('vigil.fencing_token')` in the insert; a replica streams when its WAL
//! receiver does (`pg_stat_wal_receiver`).

use super::Written;
use crate::agents::{AgentCluster, PASSWORD};
use crate::writer::pg_error;
use tokio::task::JoinHandle;
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// The table, created on the first primary before the clients start.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS nemesis_writes \
    (client int, seq bigint, token text, node text, timeline int, PRIMARY KEY (client, seq))";

/// Every row's key.
const SELECT_KEYS: &str = "SELECT client || ' ' || seq FROM nemesis_writes";

/// An open connection; its connection task ends with it.
pub struct Session {
    client: tokio_postgres::Client,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) async fn create_table(cluster: &AgentCluster, primary: usize) -> Result<(), String> {
    cluster.query(primary, CREATE_TABLE).await.map(drop).map_err(|e| pg_error(&e))
}

pub(super) async fn keys(cluster: &AgentCluster, primary: usize) -> Result<Vec<String>, String> {
    cluster.query(primary, SELECT_KEYS).await.map_err(|e| pg_error(&e))
}

pub(super) async fn streams_from(
    cluster: &AgentCluster,
    replica: usize,
    primary: usize,
) -> Result<(), String> {
    let expected = format!("streaming {}", cluster.nodes[primary].host);
    let sql = "SELECT status || ' ' || sender_host FROM pg_stat_wal_receiver";
    match cluster.query(replica, sql).await {
        Ok(rows) if rows == [expected.as_str()] => Ok(()),
        Ok(rows) => Err(format!("WAL receiver {rows:?}")),
        Err(e) => Err(pg_error(&e)),
    }
}

pub(super) async fn open(host: &str, port: u16) -> Result<Session, String> {
    let conn = format!(
        "host={host} port={port} user=postgres password={PASSWORD} dbname=postgres connect_timeout=2"
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await.map_err(|e| pg_error(&e))?;
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Session { client, task })
}

impl Session {
    /// One insert that reads, in the same statement, the fencing token (NULL until the agent sets one),
    /// the server's address and its timeline (from the current WAL file's name; fails on a replica).
    pub(super) async fn insert(&self, client: u32, seq: u64) -> Result<Option<Written>, String> {
        let sql = format!(
            "INSERT INTO nemesis_writes (client, seq, token, node, timeline) \
             SELECT {client}, {seq}, NULLIF(current_setting('vigil.fencing_token', true), ''), \
             host(inet_server_addr()), ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int \
             RETURNING coalesce(token, ''), node, timeline"
        );
        let messages = self.client.simple_query(&sql).await.map_err(|e| pg_error(&e))?;
        let row = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        Ok(row.and_then(|row| {
            Some(Written {
                token: row.get(0).and_then(|t| t.trim().parse().ok()),
                node: row.get(1)?.to_owned(),
                timeline: row.get(2)?.parse().ok()?,
            })
        }))
    }
}
