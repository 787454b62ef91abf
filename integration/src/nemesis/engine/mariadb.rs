//! The suite on MariaDB: the clients write as the application user ([`APP_USER`]: the superuser's
//! `READ_ONLY ADMIN` would let it write on a replica) over mysql_async, reading the fencing token from
//! the replicated table `vigil.fence` in the insert; a replica streams when `SHOW SLAVE STATUS` shows
//! both its threads running from the primary.

use crate::agents::AgentCluster;
use crate::mariadb::{connect, query, query_unbounded, APP_GRANTS, APP_USER, SUPERUSER};
use mysql_async::prelude::Queryable;
use mysql_async::Row;

/// The clients' schema and table.
const CREATE_TABLE: [&str; 2] = [
    "CREATE DATABASE IF NOT EXISTS app",
    "CREATE TABLE IF NOT EXISTS app.nemesis_writes (client INT UNSIGNED, seq BIGINT UNSIGNED, \
     token BIGINT UNSIGNED, node VARCHAR(64), timeline BIGINT UNSIGNED, PRIMARY KEY (client, seq)) ENGINE=InnoDB",
];

/// Every row's key.
const SELECT_KEYS: &str = "SELECT CONCAT(client, ' ', seq) FROM app.nemesis_writes";

pub(super) async fn create_table(cluster: &AgentCluster, primary: usize) -> Result<(), String> {
    let fence = format!("GRANT SELECT ON vigil.fence TO '{}'@'%'", APP_USER.0);
    for sql in CREATE_TABLE.iter().chain(&APP_GRANTS).map(|s| s.to_string()).chain([fence]) {
        query(cluster, primary, &sql).await.map_err(|e| format!("{sql}: {e}"))?;
    }
    Ok(())
}

pub(super) async fn keys(cluster: &AgentCluster, primary: usize) -> Result<Vec<String>, String> {
    let node = &cluster.nodes[primary];
    query_unbounded(&node.host, node.pg_port, SUPERUSER, SELECT_KEYS).await
}

pub(super) async fn streams_from(
    cluster: &AgentCluster,
    replica: usize,
    primary: usize,
) -> Result<(), String> {
    let node = &cluster.nodes[replica];
    let mut conn = connect(&node.host, node.pg_port, SUPERUSER).await.map_err(|e| e.to_string())?;
    let status: Option<Row> = conn.query_first("SHOW SLAVE STATUS").await.map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    let Some(row) = status else { return Err("replicates from nobody".to_owned()) };
    let text = |name: &str| {
        row.get_opt::<Option<String>, _>(name).and_then(Result::ok).flatten().unwrap_or_default()
    };
    let seen = format!(
        "IO {}, SQL {} from {}:{}",
        text("Slave_IO_Running"),
        text("Slave_SQL_Running"),
        text("Master_Host"),
        text("Master_Port")
    );
    let upstream = &cluster.nodes[primary];
    if seen == format!("IO Yes, SQL Yes from {}:{}", upstream.host, upstream.pg_port) {
        Ok(())
    } else {
        Err(seen)
    }
}

pub(super) async fn open(host: &str, port: u16) -> Result<mysql_async::Conn, String> {
    connect(host, port, APP_USER).await.map_err(|e| e.to_string())
}

/// One insert that reads, in the same statement, the term from `vigil.fence` (the fencing token, and the
/// branch of history) and the server's address.
pub(super) async fn insert(
    conn: &mut mysql_async::Conn,
    client: u32,
    seq: u64,
) -> Result<Option<super::Written>, String> {
    let sql = format!(
        "INSERT INTO app.nemesis_writes (client, seq, token, node, timeline) \
         SELECT {client}, {seq}, f.token, @@global.bind_address, f.token FROM vigil.fence f WHERE f.id = 1 \
         RETURNING token, node, timeline"
    );
    let row: Option<(Option<u64>, String, u64)> = conn.query_first(sql).await.map_err(|e| e.to_string())?;
    Ok(row.and_then(|(token, node, term)| {
        Some(super::Written { token, node, timeline: term.try_into().ok()? })
    }))
}
