//! What the agent knows at the start of one HA cycle: the input of [`crate::decide()`].

use crate::MemberView;
use crate::{DbState, Position, Role};
use crate::{FencingToken, MemberName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// Everything one decision is made from. Built by the loop from its own I/O; `decide` reads nothing else.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The instant of the observation (on the monotonic clock).
    pub now: Instant,
    /// The same instant on the wall clock, for scheduled switchovers (which name a time of day).
    pub wall_clock: SystemTime,
    /// This member's name.
    pub me: MemberName,
    /// This member's standing settings.
    pub policy: Policy,
    /// The local database server.
    pub db: DbState,
    /// The cluster record, read linearizably; `None` when the store could not be read this cycle.
    pub cluster: Option<ClusterView>,
    /// This agent's hold on the leader lease.
    pub lease: LeaseHold,
    /// Since when this member, holding the lease, has seen its primary not running.
    pub primary_down_since: Option<Instant>,
    /// Since when this member, a running replica, has not been streaming.
    pub not_streaming_since: Option<Instant>,
    /// Whether the last repair in place of this member's data failed (it is then re-cloned instead).
    pub repair_failed: bool,
    /// Whether this member's data was repaired since it last streamed or was cloned: should it still fail
    /// to run as a replica, it is re-cloned rather than repaired again.
    pub repaired: bool,
    /// How many times in a row following the lease holder failed (the server did not start as its
    /// replica), since this member last streamed or its data was repaired or removed.
    pub follow_failures: u32,
    /// What the other members said when asked directly (only gathered while nobody holds the lease).
    pub peers: Vec<PeerView>,
    /// Primary: its position when the synchronous replication rule in force was first seen applied (`None`
    /// in the cycle it changed). A standby that flushed this far holds every commit acknowledged before.
    pub sync_applied_at: Option<Position>,
    /// Whether the server was fenced since this agent last had it start or become a primary (see
    /// [`crate::Memory::fenced`]).
    pub fenced: bool,
    /// What refused this member's last promotion (`pre_promote` or a `required` watchdog), if that was
    /// less than `ttl` ago: it then gives the lease back and stays out of the leader race.
    pub promotion_refused: Option<crate::Veto>,
    /// Whether the look at the database began after a store read showed the lease free, in its current
    /// free period ([`crate::Memory::observed_leaderless`]): what this member's status then shows counts
    /// for the promotion gate of the others.
    pub observed_leaderless: bool,
}

/// The settings decisions depend on (from the local config and the cluster's dynamic config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// May this member become primary (not `nofailover`, `failover_priority` > 0)?
    pub can_fail_over: bool,
    /// Its `failover_priority` as configured, whatever `nofailover` says (higher wins among equally
    /// advanced candidates; 0 or less: it may not become primary).
    pub failover_priority: i64,
    /// A candidate further than this behind the last known primary position does not take over.
    pub maximum_lag_on_failover: u64,
    /// How long a crashed primary may take to start again in place before the lease is handed over.
    pub primary_start_timeout: Duration,
    /// Repair a diverged former primary in place (PostgreSQL: `use_pg_rewind`); else it is re-cloned.
    pub repair_in_place: bool,
    /// Whether diverged data that is re-cloned is removed or set aside first.
    pub discard: Discard,
    /// The primary retains what every other member needs to follow it (PostgreSQL: a replication slot
    /// each, `postgresql.use_slots`).
    pub retain_for_replicas: bool,
    /// A replica on an earlier or unknown timeline than the cluster's stays out of the leader race.
    pub check_timeline: bool,
    /// Maintenance mode: no automatic actions on the database.
    pub pause: bool,
    /// The cycle's period: a scheduled switchover more than 1.5 times this late is dropped as stale.
    pub loop_wait: Duration,
    /// Synchronous replication.
    pub sync: SyncPolicy,
    /// This member's tag `replicatefrom`: the member it streams from instead of the primary, while that
    /// one runs as a replica ([`crate::topology`]).
    pub replicate_from: Option<String>,
    /// A standby cluster (`standby_cluster`): the remote primary its lease holder, the standby leader,
    /// replicates from; nothing is promoted while it is set.
    pub standby_cluster: Option<crate::Upstream>,
    /// This member can make its data with no primary to copy from (PostgreSQL: a replica method with
    /// `no_leader`, restoring from a backup).
    pub restore_without_primary: bool,
}

/// What happens to diverged data that is re-cloned: removed, or (`false`, Patroni's default) set aside,
/// so that nothing it holds is lost without the operator's word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discard {
    /// Removed when a repair in place failed, or did not help (PostgreSQL:
    /// `remove_data_directory_on_rewind_failure`).
    pub after_failed_repair: bool,
    /// Removed when it is not repaired in place (PostgreSQL:
    /// `remove_data_directory_on_diverged_timelines`).
    pub without_repair: bool,
}

/// The cluster record, as the policy needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// The `initialize` key.
    pub initialize: Option<Initialize>,
    /// The lease holder and its token, if the lease is held.
    pub leader: Option<(MemberName, FencingToken)>,
    /// The token of the latest grant, held or not: while the lease is free, it names the free period (the
    /// one after that grant ended).
    pub last_grant: Option<FencingToken>,
    /// The members' published records (expired ones are gone).
    pub members: BTreeMap<MemberName, MemberView>,
    /// The primary's last published position (`status`).
    pub optime: Option<Position>,
    /// The primary's permanent logical slots' confirmed positions (`status`), which the replicas'
    /// copies follow; the policy does not read them.
    pub slots: BTreeMap<String, u64>,
    /// A requested switchover or failover (the `failover` key).
    pub switchover: Option<Switchover>,
    /// Who holds every acknowledged commit (the `sync` key).
    pub sync: Option<SyncState>,
    /// The cluster's timeline: the one its last promotion reached (`history`); `None` before any.
    pub timeline: Option<u64>,
}

/// The `failover` key: a switchover (from `leader`) or a manual failover, to `candidate` if named.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Switchover {
    /// The primary to switch away from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<MemberName>,
    /// The member to promote; `None`: the best candidate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<MemberName>,
    /// When to switch over; `None`: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<crate::Schedule>,
    /// A manual failover the operator allowed to lose acknowledged commits: the candidate takes over even
    /// when it cannot prove it holds them (synchronous mode) or lags beyond `maximum_lag_on_failover`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_data_loss: bool,
}

/// The `initialize` key: who bootstraps, and the system identifier once done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Initialize {
    /// The member that won the bootstrap race.
    pub by: MemberName,
    /// The database system identifier, once the bootstrap finished.
    pub system_id: Option<String>,
}

/// This agent's hold on the lease, by its own clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseHold {
    /// It has not held the lease since it started.
    Never,
    /// It holds the lease and its deadline has not passed.
    Valid(FencingToken),
    /// It held the lease with this token, and the deadline passed without a renewal.
    Lapsed(FencingToken),
}

/// What another member answered when asked for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    /// Its name.
    pub name: MemberName,
    /// Whether it answered.
    pub reachable: bool,
    /// Whether its database runs.
    pub running: bool,
    /// Its database role.
    pub role: Option<Role>,
    /// Its position.
    pub position: Option<Position>,
    /// Whether its WAL receiver streams (so its position may still grow).
    pub streaming: bool,
    /// Whether what it shows was observed after its agent saw the lease free. Only then is the position
    /// it shows not behind what it acknowledged before the old primary stopped: a status observed before
    /// may be (a standby that started streaming since, say).
    pub observed_leaderless: bool,
    /// The free period it saw, named by the latest grant then ([`ClusterView::last_grant`]). A status
    /// observed in an earlier free period says nothing of what it acknowledged to a primary since.
    pub leaderless_after: Option<FencingToken>,
    /// Whether it may become primary.
    pub can_fail_over: bool,
    /// Its `failover_priority`.
    pub failover_priority: i64,
}

impl PeerView {
    /// A member that did not answer: nothing is known of it.
    pub fn unreachable(name: MemberName) -> PeerView {
        PeerView {
            name,
            reachable: false,
            running: false,
            role: None,
            position: None,
            streaming: false,
            observed_leaderless: false,
            leaderless_after: None,
            can_fail_over: false,
            failover_priority: 0,
        }
    }
}

/// The `sync` key, written by the primary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The primary that wrote it.
    pub leader: Option<MemberName>,
    /// `on`: the standbys that hold every acknowledged commit. `quorum`: the voters, any `quorum` of which
    /// confirm each commit.
    #[serde(default)]
    pub sync_standby: Vec<String>,
    /// `quorum` mode: how many of the voters confirm each commit (`ANY k`); absent in `on` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
}

/// `synchronous_mode`: how the primary's commits are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynchronousMode {
    /// Asynchronous replication.
    Off,
    /// One or more named synchronous standbys.
    On,
    /// Quorum commit (`ANY n (...)`).
    Quorum,
}

/// The synchronous replication settings (dynamic configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncPolicy {
    /// `synchronous_mode`.
    pub mode: SynchronousMode,
    /// `synchronous_mode_strict`: never fall back to asynchronous commits.
    pub strict: bool,
    /// `synchronous_node_count`: how many standbys confirm each commit.
    pub node_count: u32,
    /// `maximum_lag_on_syncnode`: a standby further behind than this (bytes) than the most advanced one
    /// (or, when it is the only one, than the primary) is not synchronous; `None`: no limit.
    pub max_lag: Option<u64>,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy { mode: SynchronousMode::Off, strict: false, node_count: 1, max_lag: None }
    }
}
