//! The database the suite runs against, behind one seam: how its cluster starts, the table the clients
//! write, a client session whose insert reads the fencing token in the same statement, whether a replica
//! streams from the primary, the keys on the final primary, and where the server logs. The rest of the
//! suite (faults, schedule, checker, report) does not know which engine runs.

mod mariadb;
mod postgres;

use crate::agents::{AgentCluster, ConfigEdit, Placement};
use std::path::PathBuf;

/// A database engine the suite can run against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// PostgreSQL 15, streaming replication.
    #[default]
    Postgres,
    /// MariaDB 10.11, GTID replication; the clients write as the application user.
    Mariadb,
}

/// What the server said of a write it acknowledged, in the same statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The fencing token the server had, if any.
    pub token: Option<u64>,
    /// The server's address.
    pub node: String,
    /// The server's branch of history (PostgreSQL's timeline, MariaDB's term in `vigil.fence`).
    pub timeline: u32,
}

/// A client's open connection to one server.
pub enum Session {
    /// To PostgreSQL.
    Postgres(postgres::Session),
    /// To MariaDB, as the application user.
    Mariadb(mysql_async::Conn),
}

impl Engine {
    /// Its name, as `--engine` takes it and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Mariadb => "mariadb",
        }
    }

    /// The server's port inside every node's namespace.
    pub fn port(self) -> u16 {
        match self {
            Engine::Postgres => 5432,
            Engine::Mariadb => 3306,
        }
    }

    /// Starts the agents running `binary` at `placements`, clients admitted from `network`.
    pub fn start(self, binary: PathBuf, placements: &[Placement], network: &str) -> AgentCluster {
        let edit: ConfigEdit = match self {
            Engine::Postgres => Box::new(str::to_owned),
            Engine::Mariadb => Box::new(|yaml: &str| crate::mariadb::with_mysql_section(yaml)),
        };
        AgentCluster::start_placed(binary, placements, network, edit)
    }

    /// Creates the clients' table (and what they need to write it) on node `primary`.
    pub async fn create_table(self, cluster: &AgentCluster, primary: usize) -> Result<(), String> {
        match self {
            Engine::Postgres => postgres::create_table(cluster, primary).await,
            Engine::Mariadb => mariadb::create_table(cluster, primary).await,
        }
    }

    /// Opens a client session to the server at `host` (on [`port`](Self::port)).
    pub async fn open(self, host: &str) -> Result<Session, String> {
        match self {
            Engine::Postgres => postgres::open(host, self.port()).await.map(Session::Postgres),
            Engine::Mariadb => mariadb::open(host, self.port()).await.map(Session::Mariadb),
        }
    }

    /// `Ok` when node `replica` streams from node `primary`; else what it does instead.
    pub async fn streams_from(
        self,
        cluster: &AgentCluster,
        replica: usize,
        primary: usize,
    ) -> Result<(), String> {
        match self {
            Engine::Postgres => postgres::streams_from(cluster, replica, primary).await,
            Engine::Mariadb => mariadb::streams_from(cluster, replica, primary).await,
        }
    }

    /// The `(client, seq)` keys of every row on node `primary`.
    pub async fn keys(self, cluster: &AgentCluster, primary: usize) -> Result<Vec<(u32, u64)>, String> {
        let rows = match self {
            Engine::Postgres => postgres::keys(cluster, primary).await,
            Engine::Mariadb => mariadb::keys(cluster, primary).await,
        }?;
        Ok(rows
            .iter()
            .filter_map(|r| r.split_once(' ').and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?))))
            .collect())
    }

    /// Node `i`'s server log (the agent keeps it in the node's directory).
    pub fn server_log(self, cluster: &AgentCluster, i: usize) -> PathBuf {
        match self {
            Engine::Postgres => cluster.home(i).join(format!("{}.log", cluster.nodes[i].name)),
            Engine::Mariadb => cluster.home(i).join("mysql/mysqld.err"),
        }
    }
}

impl Session {
    /// Inserts row `(client, seq)`; `Ok(None)` when the server acknowledged it without saying what it
    /// wrote (not counted as acknowledged).
    pub async fn insert(&mut self, client: u32, seq: u64) -> Result<Option<Written>, String> {
        match self {
            Session::Postgres(session) => session.insert(client, seq).await,
            Session::Mariadb(conn) => mariadb::insert(conn, client, seq).await,
        }
    }
}
