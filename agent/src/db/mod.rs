//! The database adapter: everything the HA loop asks of a database server, without naming an engine.
//!
//! The HA policy sees only these types: an ordered [`Position`], a [`DbState`], and the operations of
//! [`Database`]. PostgreSQL is the first implementation ([`postgres`]); MySQL/MariaDB is planned, not built.

#[cfg(test)]
pub(crate) mod fake;
pub mod postgres;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// A replication position: how far a server's copy of the data goes (PostgreSQL: a WAL LSN). Ordered:
/// a larger position holds everything a smaller one holds, on the same timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// How far `self` is behind `other`, in bytes (zero when not behind).
    pub fn lag_behind(self, other: Position) -> u64 {
        other.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Position {
    /// PostgreSQL's LSN notation, `X/X`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

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
        /// it is rewound before it follows another primary.
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
    /// Its timeline, when known.
    pub timeline: Option<u64>,
    /// Primary: the current write position. Replica: the larger of the received and replayed positions.
    pub position: Option<Position>,
    /// Replica: the replayed position.
    pub replay_position: Option<Position>,
    /// Replica: the member it is configured to stream from.
    pub upstream: Option<String>,
    /// Replica: whether it streams from its upstream right now: its WAL receiver is connected *and* heard
    /// from the upstream (changes or a keepalive) within the upstream timeout (see
    /// [`Database::set_upstream_timeout`]). A connection alone proves nothing: a cut link keeps it open.
    pub streaming: bool,
    /// The server's version as a number (PostgreSQL: `server_version_num`, e.g. 150018), when running.
    pub server_version: Option<u32>,
    /// Primary: the synchronous replication rule in force (`None`: not one the agent wrote).
    pub sync_rule: Option<SyncRule>,
    /// Primary: the replicas connected to it.
    pub replicas: Vec<ReplicaLink>,
    /// Changed parameters that wait for a restart.
    pub pending_restart: Vec<PendingSetting>,
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
        }
    }

    /// Whether it runs as a primary (accepting writes).
    pub fn is_running_primary(&self) -> bool {
        self.running && self.role == Some(Role::Primary)
    }
}

/// How to stop a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect clients, finish with a checkpoint (PostgreSQL `-m fast`).
    Fast,
    /// Stop at once, without a checkpoint; crash recovery on the next start (PostgreSQL `-m immediate`).
    Immediate,
}

/// A failed database operation: what was done, and what the server or tool said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{action}: {detail}")]
pub struct DbError {
    /// The operation, e.g. "pg_basebackup from node1".
    pub action: String,
    /// Why it failed (the tool's own message where there is one).
    pub detail: String,
}

impl DbError {
    /// An error of `action` for `detail`.
    pub fn new(action: impl Into<String>, detail: impl fmt::Display) -> Self {
        DbError { action: action.into(), detail: detail.to_string() }
    }
}

/// The operations the HA loop performs on its database server. Every operation leaves the server in a
/// state the next [`Database::observe`] reports truthfully, also when it fails.
pub trait Database: Send + Sync + 'static {
    /// The URL clients connect to a server of this engine at `host:port` with (a member record's
    /// `conn_url`; PostgreSQL: `postgres://host:port/postgres`).
    fn connection_url(host: &str, port: u16) -> String;

    /// Looks at the server and its data directory. Never fails: what cannot be seen is reported as such.
    fn observe(&self) -> impl Future<Output = DbState> + Send;

    /// Creates a new database (PostgreSQL: initdb with `bootstrap.initdb`, pg_hba from `bootstrap.pg_hba`),
    /// starts it as a primary under the fencing `token` (see [`Database::promote`]) and creates the
    /// superuser and replication roles with their passwords.
    fn bootstrap(&self, token: Option<u64>) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Copies the database from `upstream` into the empty data directory (PostgreSQL: pg_basebackup using
    /// this member's replication slot, unless slots are off: see [`Database::set_use_slots`]), configured
    /// to follow it; does not start it.
    fn clone_from(&self, upstream: &Upstream) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Makes a stopped server that diverged (a former primary) a copy of `upstream`'s history
    /// (PostgreSQL: pg_rewind), configured to follow it; does not start it.
    fn rewind_from(&self, upstream: &Upstream) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Deletes the data directory's contents (before a re-clone).
    fn remove_data(&self) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Starts the server as a primary under the fencing `token` (see [`Database::promote`]; `None`: the
    /// one recorded last). Its data must be a primary's, or it is promoted afterwards.
    fn start_primary(&self, token: Option<u64>) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Configures the server to follow `upstream` and (re)starts it as a replica if it is stopped or
    /// follows another upstream; a running replica of `upstream` is left alone. With `None` it runs as a
    /// standby of nobody (read-only, replaying what it has) until a primary exists.
    fn follow(&self, upstream: Option<&Upstream>) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Stops the server.
    fn stop(&self, mode: StopMode) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Ends the server's processes at once, also when they do not answer (stopped, storage hung), and
    /// waits until they are gone: nothing it acknowledged afterwards can exist. Crash recovery on the next
    /// start (PostgreSQL: SIGKILL of the postmaster's process group, backends included).
    fn kill(&self) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Promotes a running replica to primary under the fencing `token` of the lease this member now
    /// holds, and waits until it accepts writes. The token is recorded where every client can read it
    /// before the server takes a write (PostgreSQL: `SHOW vigil.fencing_token`), and kept for every later
    /// start.
    fn promote(&self, token: u64) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Makes sure every member in `members` has a replication slot, and drops the unused slots of members
    /// no longer listed. On a replica about to be promoted the slots hold the WAL from its last
    /// restartpoint on (PostgreSQL), so the others can follow it across the new timeline's start. An unused
    /// slot a standby still streams through is kept and reported as an error, so that the caller tries again.
    fn sync_slots(&self, members: &[String]) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Makes commits wait for the replicas `rule` names, without a restart (and remembers the rule for every
    /// later start). On a replica it takes effect when it is promoted.
    fn set_sync_rule(&self, rule: &SyncRule) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Runs the server with these parameters from now on: applied at once where the server allows it,
    /// else at its next restart (reported in [`DbState::pending_restart`]); kept for every later start. A
    /// value the running server would reject is not taken (it would stop the next start): logged, and the
    /// old value kept.
    fn set_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Sets how long a replica may hear nothing from its upstream and still count as streaming (the lease
    /// ttl), and the server's own replication timeouts that follow from it (PostgreSQL:
    /// `wal_receiver_timeout`, `wal_sender_timeout`, TCP keepalives in `primary_conninfo`); applied at once
    /// where the server allows it, and kept for every later start. The timeout in force changes nothing.
    fn set_upstream_timeout(&self, timeout: Duration) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Sets whether a replica streams, and a clone copies, through the replication slot its upstream
    /// keeps for this member (`true` at first); applied at once where the server allows it, and kept for
    /// every later start. The setting in force changes nothing.
    fn set_use_slots(&self, use_slots: bool) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Whether the server must stop when this agent dies (`true`, so that no primary outlives the agent
    /// that holds its lease) or may outlive it (`false`: in pause, to restart or upgrade the agent alone).
    /// PostgreSQL: a watcher process holding a pipe only the agent writes to (`vigil lifeline`).
    fn die_with_agent(&self, armed: bool);

    /// Checks `parameters` against the running server's own definitions; `Err` names each parameter and
    /// value it would reject, and why. A server that does not run checks nothing.
    fn check_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_print_as_lsns_and_measure_lag() {
        assert_eq!(Position(0x1_0000_0A28).to_string(), "1/A28");
        assert_eq!(Position(100).lag_behind(Position(350)), 250);
        assert_eq!(Position(350).lag_behind(Position(100)), 0);
    }
}
