//! The database adapter: everything the HA loop asks of a database server, without naming an engine.
//!
//! The HA policy sees only these types: a [`Position`] in the engine's [`Unit`], a [`DbState`], and the
//! operations of [`Database`]. [`postgres`] and [`mariadb`] implement it; the tests' fake (`db/fake.rs`)
//! counts in transactions, as MariaDB does.

#[cfg(test)]
pub(crate) mod fake;
mod leftovers;
pub mod lifeline;
pub mod mariadb;
pub mod postgres;
pub(crate) mod server_files;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
pub use vigil_policy::{
    DataState, DbState, Divergence, LinkReport, PendingSetting, Position, ReplicaLink, Role, ServerReport,
    SyncRule, Unit, Upstream, UpstreamSlot,
};

/// A database engine Vigil manages (the adapter the daemon runs, the server a lifeline ends, the nodes of
/// `vigil demo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// PostgreSQL.
    Postgresql,
    /// MariaDB.
    Mariadb,
}

impl Engine {
    /// The names of the server's executables: a process of one of them working in a data directory is
    /// that directory's server.
    pub fn server_programs(self) -> &'static [&'static str] {
        match self {
            Engine::Postgresql => &["postgres"],
            Engine::Mariadb => &["mariadbd", "mysqld"],
        }
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

/// What a server keeps replication slots for ([`Database::retain_for`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retained {
    /// The members that follow this server: a slot each.
    pub members: Vec<String>,
    /// The cluster's permanent slots (`slots`): on the primary, and the logical ones copied to the
    /// replicas.
    pub permanent: BTreeMap<String, crate::config::PermanentSlot>,
    /// Slots nobody manages (`ignore_slots`): never dropped.
    pub ignored: Vec<crate::config::SlotMatcher>,
    /// Every member with a record in the cluster: the slot of one of them that does not follow this
    /// server is dropped at once.
    pub present: Vec<String>,
    /// How long a primary keeps a slot nobody wants, such as a member's that is gone (no record), before
    /// dropping it (`member_slots_ttl`).
    pub member_slots_ttl: Duration,
    /// On a replica: the primary, whose permanent logical slots are copied from it, and their confirmed
    /// positions there, which the copies follow.
    pub primary: Option<(Upstream, BTreeMap<String, u64>)>,
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

    /// Whether [`restore_without_primary`](Self::restore_without_primary) can make the data.
    fn restores_without_primary(&self) -> bool {
        false
    }

    /// Makes the database in the empty data directory with no member to copy from (PostgreSQL: the
    /// replica methods with `no_leader`), configured as a standby of nobody; does not start it.
    fn restore_without_primary(&self) -> impl Future<Output = Result<(), DbError>> + Send {
        async { Err(DbError::new("restore without a primary", "no method can")) }
    }

    /// Repairs in place a stopped server whose data diverged from `upstream`'s history (a former
    /// primary): makes it a copy of that history, configured to follow it; does not start it (PostgreSQL:
    /// pg_rewind). An engine that cannot returns an error, and the policy re-clones instead.
    fn repair_from(&self, upstream: &Upstream) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Deletes the data directory's contents (before a re-clone).
    fn remove_data(&self) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Moves the diverged data out of the way of a re-clone, keeping it where [`DbState`]'s
    /// `data_set_aside` then says. An engine that cannot fails (its policy removes data instead).
    fn set_data_aside(&self) -> impl Future<Output = Result<(), DbError>> + Send {
        async { Err(DbError::new("set data aside", "this engine removes diverged data instead")) }
    }

    /// Starts the server as a primary under the fencing `token` (see [`Database::promote`]; `None`: the
    /// one recorded last). Its data must be a primary's, or it is promoted afterwards.
    fn start_primary(&self, token: Option<u64>) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Configures the server to follow `upstream` and (re)starts it as a replica if it is stopped or
    /// follows another upstream; a running replica of `upstream` is left alone. With `None` it runs as a
    /// standby of nobody (read-only, replaying what it has) until a primary exists.
    fn follow(&self, upstream: Option<&Upstream>) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Stops the server.
    fn stop(&self, mode: StopMode) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Fences the server: from now on it acknowledges no write, and no session opened before keeps writing
    /// (a primary without a valid lease). By default an immediate stop (PostgreSQL); an engine may keep
    /// the server running read-only instead, falling back to [`Database::kill`] when that does not finish
    /// at once.
    fn fence(&self) -> impl Future<Output = Result<(), DbError>> + Send {
        self.stop(StopMode::Immediate)
    }

    /// Ends the server's processes at once, also when they do not answer (stopped, storage hung), and
    /// waits until they are gone: nothing it acknowledged afterwards can exist. Crash recovery on the next
    /// start (PostgreSQL: SIGKILL of the postmaster's process group, backends included).
    fn kill(&self) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Promotes a running replica to primary under the fencing `token` of the lease this member now
    /// holds, and waits until it accepts writes. The token is recorded where every client can read it
    /// before the server takes a write (PostgreSQL: `SHOW vigil.fencing_token`), and kept for every later
    /// start.
    fn promote(&self, token: u64) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Commits a first write on the server just promoted and waits until it is committed as a client's
    /// would be (synchronous standbys included): the end of a failover's downtime. By default nothing: an
    /// engine whose promotion commits the term's first write (MariaDB's `vigil.fence`) has done it.
    fn first_write(&self) -> impl Future<Output = Result<(), DbError>> + Send {
        async { Ok(()) }
    }

    /// Records `token` where clients read it (see [`Database::promote`]) on a server that already runs as
    /// primary, one this agent neither started nor promoted. By default nothing: an engine that records
    /// the token with the first write of a term (MariaDB's `vigil.fence`) does so at its next promotion.
    fn set_fencing_token(&self, token: u64) -> impl Future<Output = Result<(), DbError>> + Send {
        let _ = token;
        async { Ok(()) }
    }

    /// Retains what every member in `retained.members` needs to follow this server after a pause, and
    /// nothing for members no longer listed (PostgreSQL: a replication slot each; an unused slot a standby
    /// still streams through is kept and reported as an error, so that the caller tries again); keeps the
    /// cluster's permanent slots, and on a replica their copies (see [`Retained`]). On a replica about to
    /// be promoted the slots hold the WAL from its last restartpoint on, so the others can follow it
    /// across the new timeline's start. Returns, on a primary, its permanent logical slots' confirmed
    /// positions, for the replicas' copies to follow.
    fn retain_for(
        &self,
        retained: &Retained,
    ) -> impl Future<Output = Result<BTreeMap<String, u64>, DbError>> + Send;

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

    /// Takes the engine's part of the dynamic configuration beyond the server parameters (PostgreSQL:
    /// pg_hba, pg_ident and recovery settings, `primary_stop_timeout`), applying changes to the running
    /// server; an engine with none ignores it.
    fn set_cluster_config(
        &self,
        _dynamic: &crate::config::DynamicConfig,
    ) -> impl Future<Output = Result<(), DbError>> + Send {
        async { Ok(()) }
    }

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

/// Runs the adapter operation `op` of `member` and logs its outcome in one line.
pub(crate) async fn logged(
    member: &str,
    action: &'static str,
    upstream: Option<&str>,
    op: impl Future<Output = Result<(), DbError>>,
) -> Result<(), DbError> {
    let started = Instant::now();
    let result = op.await;
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let upstream = upstream.unwrap_or("-");
    match &result {
        Ok(()) => tracing::info!(member, action, upstream, duration_ms, "database operation done"),
        Err(error) => {
            tracing::warn!(member, action, upstream, duration_ms, %error, "database operation failed")
        }
    }
    result
}
