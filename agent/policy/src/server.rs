//! What the agent sees of its own database server: one [`DbState`] per observation.

use crate::Position;
use serde::{Deserialize, Serialize};

/// What a running server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Accepting writes.
    Primary,
    /// Replaying changes from elsewhere, read-only.
    Replica,
}

/// The data directory as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataState {
    /// No database there (absent or empty): it must be bootstrapped or cloned.
    Missing,
    /// A database.
    Present {
        /// The database system identifier (PostgreSQL: `pg_controldata`'s "Database system identifier").
        system_id: String,
        /// Whether it was last shut down (or crashed) while a primary: it may hold changes no replica has, so
        /// it is repaired before it follows another primary.
        was_primary: bool,
    },
}

/// Where a replica streams from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    /// The member name of the upstream server.
    pub name: String,
    /// Its host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// Its agent's REST API (`http://host:8008/patroni`): where a clone asks for a backup of it.
    #[serde(default)]
    pub api_url: String,
    /// The replication slot to stream through on it.
    #[serde(default)]
    pub slot: UpstreamSlot,
}

/// Which replication slot a replica streams through on its upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpstreamSlot {
    /// This member's own, as every member of the cluster keeps for the others.
    #[default]
    Own,
    /// A slot of this name (a standby cluster's `primary_slot_name` on the remote primary).
    Named(String),
    /// None (a standby cluster's remote primary without `primary_slot_name`).
    Unslotted,
}

/// Which replicas a primary's commits wait for (PostgreSQL: `synchronous_standby_names`; MySQL: semi-sync).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRule {
    /// Commits do not wait for any replica (asynchronous replication).
    #[default]
    Off,
    /// Commits wait for the first `count` of `names`, in order (PostgreSQL `FIRST n (...)`).
    First {
        /// How many standbys confirm each commit.
        count: u32,
        /// The standbys, by member name.
        names: Vec<String>,
    },
    /// Commits wait for any `count` of `names` (PostgreSQL `ANY n (...)`, quorum commit).
    Any {
        /// How many standbys confirm each commit.
        count: u32,
        /// The standbys, by member name.
        names: Vec<String>,
    },
    /// Commits wait for one replica, whichever (PostgreSQL `*`): strict mode with no standby chosen, so
    /// that no commit is acknowledged unreplicated.
    AnyReplica,
}

impl SyncRule {
    /// The member names the rule waits for.
    pub fn names(&self) -> &[String] {
        match self {
            SyncRule::First { names, .. } | SyncRule::Any { names, .. } => names,
            SyncRule::Off | SyncRule::AnyReplica => &[],
        }
    }
}

/// A replica connected to this primary, as the primary sees it (PostgreSQL: `pg_stat_replication`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaLink {
    /// Its member name (PostgreSQL: `application_name`).
    pub name: String,
    /// Whether it streams (rather than catching up or starting).
    pub streaming: bool,
    /// Whether the primary counts it as synchronous now (PostgreSQL `sync_state` `sync` or `quorum`).
    pub synchronous: bool,
    /// How far it has written to disk (PostgreSQL `flush_lsn`).
    pub flushed: Option<Position>,
    /// The server's own words about it, for the status only (the policy never reads them).
    pub shown: LinkReport,
}

/// What the server reports of a replica link (PostgreSQL: `pg_stat_replication`), as Patroni shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkReport {
    /// The replication user.
    pub user: Option<String>,
    /// The replica's address (`None` over a Unix socket).
    pub address: Option<String>,
    /// Its state (`streaming`, `catchup`, …).
    pub state: String,
    /// Its synchronous state (`async`, `sync`, `potential`, `quorum`).
    pub sync_state: String,
    /// Its priority among the synchronous standbys (0: asynchronous).
    pub sync_priority: i32,
}

/// A server parameter whose new value takes effect only when the server restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSetting {
    /// The parameter's name.
    pub name: String,
    /// The value the server runs with.
    pub running: String,
    /// The value it will have after a restart, when the server says.
    pub configured: Option<String>,
}

/// What this server's data has that its upstream lacks, as the upstream refused it: changes a former
/// primary took after another member took over (MySQL's errant transactions). They are lost when the
/// data is cloned again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The member that refused this server's position.
    pub upstream: String,
    /// What it lacks, in the engine's words (MariaDB: the GTIDs and how many transactions they are).
    pub extra: String,
}

/// One observation of the local database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbState {
    /// The data directory.
    pub data: DataState,
    /// Whether the server process runs and answers queries.
    pub running: bool,
    /// Whether the server process runs without answering queries (recovery before consistency, or `hung`).
    pub starting: bool,
    /// Whether the server process runs but answered nothing at all, not even a refusal, within the
    /// observation's timeout: its processes are stopped or its storage hangs. A server starting up refuses
    /// sessions at once; a hung one never answers.
    pub hung: bool,
    /// Its role, when running.
    pub role: Option<Role>,
    /// The branch of the cluster's history its data is on, when known: it counts promotions (PostgreSQL:
    /// the timeline). On a later branch than the lease holder's the data has diverged.
    pub timeline: Option<u64>,
    /// Primary: the current write position. Replica: the larger of the received and replayed positions.
    pub position: Option<Position>,
    /// Replica: the replayed position.
    pub replay_position: Option<Position>,
    /// Replica: the member it is configured to stream from.
    pub upstream: Option<String>,
    /// Replica: whether it streams from its upstream right now: its receiver (PostgreSQL: the WAL
    /// receiver) is connected *and* heard from the upstream (changes or a keepalive) within the upstream
    /// timeout (the lease ttl). A connection alone proves nothing: a cut link keeps it open.
    pub streaming: bool,
    /// The server's version as a number (PostgreSQL: `server_version_num`, e.g. 150018), when running.
    pub server_version: Option<u32>,
    /// Primary: the synchronous replication rule in force (`None`: not one the agent wrote).
    pub sync_rule: Option<SyncRule>,
    /// Primary: the replicas connected to it.
    pub replicas: Vec<ReplicaLink>,
    /// Changed parameters that wait for a restart.
    pub pending_restart: Vec<PendingSetting>,
    /// What its data has that its upstream lacks, from the moment the upstream refused it until the data
    /// is replaced or follows an upstream (`None`: nothing known).
    pub diverged: Option<Divergence>,
    /// What the server reports for the status page and metrics alone.
    pub report: ServerReport,
    /// Where diverged data of this member was set aside and still is, the latest (a path).
    pub data_set_aside: Option<String>,
}

/// What a running server reports for people and dashboards (Patroni's status fields); no decision
/// reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerReport {
    /// When the server started (PostgreSQL: `pg_postmaster_start_time()`).
    pub started_at: Option<std::time::SystemTime>,
    /// Replica: whether replay is paused (PostgreSQL: `pg_is_wal_replay_paused()`).
    pub replay_paused: Option<bool>,
    /// Replica: the commit time of the last transaction replayed (`pg_last_xact_replay_timestamp()`).
    pub replayed_at: Option<std::time::SystemTime>,
}

impl DbState {
    /// A server that is not running, with `data` on disk.
    pub fn stopped(data: DataState) -> Self {
        DbState {
            data,
            running: false,
            starting: false,
            hung: false,
            role: None,
            timeline: None,
            position: None,
            replay_position: None,
            upstream: None,
            streaming: false,
            server_version: None,
            sync_rule: None,
            replicas: Vec::new(),
            pending_restart: Vec::new(),
            diverged: None,
            report: ServerReport::default(),
            data_set_aside: None,
        }
    }

    /// Whether it runs as a primary (accepting writes).
    pub fn is_running_primary(&self) -> bool {
        self.running && self.role == Some(Role::Primary)
    }
}
