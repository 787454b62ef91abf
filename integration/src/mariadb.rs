//! MariaDB test clusters: the agents of [`AgentCluster`] with a `mysql` section instead of the
//! `postgresql` one (MariaDB on the node's database port, run as the `mysql` OS user when the tests run
//! as root), and a client for the nodes.

use crate::agents::{AgentCluster, PASSWORD};
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Starts `size` agents managing MariaDB servers.
pub fn start(size: usize) -> AgentCluster {
    start_with(size, "")
}

/// [`start`] with `extra_dcs` added to every node's `bootstrap.dcs` (see [`AgentCluster::start_with`]).
pub fn start_with(size: usize, extra_dcs: &str) -> AgentCluster {
    AgentCluster::start_edited(size, extra_dcs, Box::new(|yaml: &str| with_mysql_section(yaml)))
}

/// `yaml` (a test node's configuration) with its `postgresql` section replaced by a `mysql` section on
/// the same address, port and home directory.
pub fn with_mysql_section(yaml: &str) -> String {
    let mut out = String::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        if line != "postgresql:" {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut section = Vec::new();
        while let Some(next) = lines.next_if(|l| l.starts_with(' ')) {
            section.push(next.trim());
        }
        let value = |key: &str| {
            section.iter().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or_default().to_owned()
        };
        let listen = value("listen:");
        let home = value("data_dir:").trim_end_matches("/pg").to_owned();
        // SAFETY: geteuid has no preconditions.
        let os_user = if unsafe { libc::geteuid() } == 0 { "\n  os_user: mysql" } else { "" };
        out.push_str(&format!(
            "mysql:\n  listen: {listen}\n  connect_address: {listen}\n  data_dir: {home}/mysql\n\
             \x20 authentication:\n    superuser: {{username: vigil, password: {PASSWORD}}}\n\
             \x20   replication: {{username: replicator, password: rep-pass}}\n\
             \x20 parameters: {{innodb_buffer_pool_size: 16M, innodb_log_file_size: 8M}}{os_user}\n"
        ));
    }
    out
}

/// The application account [`APP_GRANTS`] creates: it may not write on a read-only server, unlike the
/// superuser (`READ_ONLY ADMIN`, part of `ALL PRIVILEGES`).
pub const APP_USER: (&str, &str) = ("app", "app-pass");

/// The statements that create [`APP_USER`] with the rights on the schema `app` an application has.
pub const APP_GRANTS: [&str; 2] = [
    "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pass'",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON app.* TO 'app'@'%'",
];

/// The superuser of the test nodes, with its password.
pub const SUPERUSER: (&str, &str) = ("vigil", PASSWORD);

/// Runs `sql` on node `i`'s MariaDB over TCP as the superuser and returns the first column of every
/// row, as text.
pub async fn query(cluster: &AgentCluster, i: usize, sql: &str) -> Result<Vec<String>, String> {
    let node = &cluster.nodes[i];
    query_at(&node.host, node.pg_port, SUPERUSER, sql).await
}

/// `CHECKSUM TABLE table` on node `i`: the table's checksum, as text.
pub async fn checksum(cluster: &AgentCluster, i: usize, table: &str) -> Result<String, String> {
    let node = &cluster.nodes[i];
    let work = async {
        let mut conn = connect(&node.host, node.pg_port, SUPERUSER).await?;
        let row: Option<(String, Option<u64>)> = conn.query_first(format!("CHECKSUM TABLE {table}")).await?;
        conn.disconnect().await?;
        Ok::<_, mysql_async::Error>(row.and_then(|(_, sum)| sum).map(|sum| sum.to_string()))
    };
    match tokio::time::timeout(Duration::from_secs(2), work).await {
        Ok(Ok(Some(sum))) => Ok(sum),
        Ok(Ok(None)) => Err(format!("no checksum of {table}")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer within 2 s".to_owned()),
    }
}

/// [`query`] as the application user ([`APP_USER`]).
pub async fn app_query(cluster: &AgentCluster, i: usize, sql: &str) -> Result<Vec<String>, String> {
    let node = &cluster.nodes[i];
    query_at(&node.host, node.pg_port, APP_USER, sql).await
}

/// Runs `sql` on the server at `host:port` (a node, or a proxy in front of them) as `user` with its
/// password; the first column of every row, as text. Bounded by 2 s.
pub async fn query_at(host: &str, port: u16, user: (&str, &str), sql: &str) -> Result<Vec<String>, String> {
    match tokio::time::timeout(Duration::from_secs(2), query_unbounded(host, port, user, sql)).await {
        Ok(result) => result,
        Err(_) => Err("no answer within 2 s".to_owned()),
    }
}

/// [`query_at`] without its bound in time, for a read that may take longer (the caller bounds it).
pub async fn query_unbounded(
    host: &str,
    port: u16,
    user: (&str, &str),
    sql: &str,
) -> Result<Vec<String>, String> {
    let work = async {
        let mut conn = connect(host, port, user).await?;
        let rows: Vec<Option<String>> = conn.query(sql).await?;
        conn.disconnect().await?;
        Ok::<_, mysql_async::Error>(rows.into_iter().map(Option::unwrap_or_default).collect())
    };
    work.await.map_err(|e| e.to_string())
}

/// A connection over TCP to the server at `host:port` as `user` with its password (not bounded in time:
/// the caller bounds it).
pub async fn connect(
    host: &str,
    port: u16,
    (user, password): (&str, &str),
) -> Result<mysql_async::Conn, mysql_async::Error> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host.to_owned())
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password));
    mysql_async::Conn::new(opts).await
}

/// An application writing rows `1, 2, 3, …` into `app.t` as [`APP_USER`], each once acknowledged by a
/// node, to whichever node accepts: the node that took the last one first.
pub struct AppWriter {
    acks: Arc<Mutex<Vec<(u32, usize)>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl AppWriter {
    /// Starts writing to `cluster`'s nodes, one row at most every `pace`.
    pub fn start(cluster: &AgentCluster, pace: Duration) -> AppWriter {
        let nodes: Vec<(String, u16)> = cluster.nodes.iter().map(|n| (n.host.clone(), n.pg_port)).collect();
        let (acks, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (log, stopped) = (acks.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let (mut id, mut at) = (1u32, 0usize);
            while !stopped.load(Ordering::SeqCst) {
                let (host, port) = &nodes[at];
                // A row whose insert failed may still be committed: its id is not tried again.
                match query_at(host, *port, APP_USER, &format!("INSERT INTO app.t VALUES ({id})")).await {
                    Ok(_) => log.lock().expect("acks").push((id, at)),
                    Err(_) => at = (at + 1) % nodes.len(),
                }
                id += 1;
                tokio::time::sleep(pace).await;
            }
        });
        AppWriter { acks, stop, task }
    }

    /// The rows acknowledged so far, with the node that acknowledged each.
    pub fn acks(&self) -> Vec<(u32, usize)> {
        self.acks.lock().expect("acks").clone()
    }

    /// Stops writing; returns every acknowledged row.
    pub async fn stop(self) -> Vec<(u32, usize)> {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.task.await);
        Arc::try_unwrap(self.acks).map(|m| m.into_inner().expect("acks")).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgresql_section_becomes_a_mysql_section() {
        let yaml = "scope: it\npostgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /t/node1/pg\n  pgpass: x\n\
                    tags: {a: 1}\n";
        let out = with_mysql_section(yaml);
        assert!(out.starts_with("scope: it\nmysql:\n  listen: 127.0.0.1:5432\n"), "{out}");
        assert!(out.contains("  data_dir: /t/node1/mysql\n") && out.ends_with("tags: {a: 1}\n"), "{out}");
        assert!(!out.contains("pgpass"), "{out}");
    }
}
