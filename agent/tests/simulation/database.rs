//! The simulated database server of one node: its data (a log of committed writes), its process (stopped,
//! or running as a primary or a replica of some member) and the operations the HA loop asks of it.
//!
//! A write is a unique id; a server's data is the sequence of ids it committed or received, so a position
//! is the length of that sequence and two servers' histories are compared exactly: one's data can stream
//! from another's only if it is a prefix of it (anything else is a diverged history, as after a failover
//! that left writes on the old primary). Because every id is appended once, by one primary, two logs that
//! hold the same id at the same index agree on everything before it.

use crate::scheduler::Millis;
use vigil_agent::db::{DataState, DbState, Position, Role, SyncRule};

/// Bytes of WAL per write, so that positions look like LSNs and `maximum_lag_on_failover` means something.
pub const WRITE_BYTES: u64 = 128;

/// The system identifier every bootstrapped server of the simulated cluster shares.
pub const SYSTEM_ID: &str = "7340000000000000001";

/// A data directory's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The committed (or received) writes, in order.
    pub log: Vec<u64>,
    /// The timeline (one more on each promotion).
    pub timeline: u64,
    /// Marked when started or promoted as a primary; cleared by a rewind or a clone.
    pub was_primary: bool,
}

impl Data {
    /// Whether this history is a prefix of `other`'s (so it can stream from it).
    pub fn is_prefix_of(&self, other: &Data) -> bool {
        let n = self.log.len();
        n <= other.log.len() && (n == 0 || other.log[n - 1] == self.log[n - 1])
    }

    /// The length of the history both share.
    pub fn common_prefix(&self, other: &Data) -> usize {
        self.log.iter().zip(&other.log).take_while(|(a, b)| a == b).count()
    }

    /// The position reached.
    pub fn position(&self) -> Position {
        Position::wal(self.log.len() as u64 * WRITE_BYTES)
    }
}

/// What the server process is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Process {
    /// Not running.
    Stopped,
    /// Accepting writes.
    Primary,
    /// Read-only, streaming from `upstream` when it can (`None`: a standby of nobody).
    Replica {
        /// The member it follows.
        upstream: Option<String>,
    },
}

/// One node's database server.
#[derive(Debug, Clone)]
pub struct Database {
    /// `None`: an empty data directory.
    pub data: Option<Data>,
    /// The process.
    pub process: Process,
    /// The synchronous replication rule the agent set (kept across restarts).
    pub sync_rule: Option<SyncRule>,
    /// Replica: whether its WAL receiver is connected to its upstream.
    pub connected: bool,
    /// Replica: when (true time) it last heard from its upstream.
    pub last_heard: Option<Millis>,
}

impl Database {
    /// A node with an empty data directory and no server running.
    pub fn empty() -> Self {
        Database {
            data: None,
            process: Process::Stopped,
            sync_rule: None,
            connected: false,
            last_heard: None,
        }
    }

    /// Whether it runs as a primary (and so accepts writes).
    pub fn is_primary(&self) -> bool {
        self.process == Process::Primary
    }

    /// The member it streams from, when running as a replica of one.
    pub fn upstream(&self) -> Option<&str> {
        match &self.process {
            Process::Replica { upstream } => upstream.as_deref(),
            _ => None,
        }
    }

    /// Stops the server (`kill -9` or `pg_ctl stop`: the model makes no difference).
    pub fn stop(&mut self) {
        self.process = Process::Stopped;
        self.connected = false;
    }

    /// What the adapter's `observe` reports, at true time `now`; `upstream_timeout_ms` is how long a
    /// receiver may hear nothing and still count as streaming. The replica links are filled in by the
    /// world, which sees the other servers.
    pub fn observe(&self, now: Millis, upstream_timeout_ms: Millis) -> DbState {
        let data = match &self.data {
            None => DataState::Missing,
            Some(d) => DataState::Present { system_id: SYSTEM_ID.into(), was_primary: d.was_primary },
        };
        let mut state = DbState::stopped(data);
        let Some(d) = self.data.as_ref().filter(|_| self.process != Process::Stopped) else {
            return state;
        };
        state.running = true;
        state.timeline = Some(d.timeline);
        state.position = Some(d.position());
        state.sync_rule = self.sync_rule.clone();
        state.server_version = Some(150000);
        match &self.process {
            Process::Primary => state.role = Some(Role::Primary),
            Process::Replica { upstream } => {
                state.role = Some(Role::Replica);
                state.replay_position = state.position;
                state.upstream = upstream.clone();
                state.streaming = self.connected
                    && self.last_heard.is_some_and(|at| now.saturating_sub(at) < upstream_timeout_ms);
            }
            Process::Stopped => {}
        }
        state
    }
}
