//! Patroni's health-check rules (api.py `do_GET`, `_readiness`): when each check answers 200.
//!
//! `leading` ([`Now`]) means this member holds the lease by its own deadline and its database is a
//! running, writable primary ([`crate::StatusSource::is_leading_primary`]). `replica_ok` means: not tagged
//! `noloadbalance`, role `replica`, state `running`, `?replication_state=` matched if given, not
//! lagging (the primary's position `vigil.primary_optime` > replayed position + `?lag=`), and, beyond
//! Patroni, replayed position ≥ `?min_lsn=` if given.
//!
//! The `tag_<key>=<value>` filters apply to every rule but [`Rule::Primary`], [`Rule::Leader`],
//! [`Rule::StandbyLeader`], [`Rule::Liveness`] and [`Rule::Readiness`], as in Patroni.

use crate::query::HealthQuery;
use crate::NodeStatus;

/// What holds at the moment of the request, beyond the member's status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// The member holds the lease by its own deadline and runs a writable primary.
    pub leading: bool,
    /// The agent's HA loop runs on time ([`crate::StatusSource::loop_alive`]; read for `/liveness` only).
    pub loop_alive: bool,
}

/// A health check: which member answers 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// `/`, `/primary`, `/read-write`, `/master`: a leading primary.
    Primary,
    /// `/leader`: a leading primary (or standby leader: Vigil has no standby clusters yet).
    Leader,
    /// `/standby-leader`: the leader of a standby cluster; always 503 (no standby clusters yet).
    StandbyLeader,
    /// `/replica`: `replica_ok`.
    Replica,
    /// `/read-only`: a leading primary, or `replica_ok`.
    ReadOnly,
    /// `/sync`, `/synchronous`: a synchronous standby that is `replica_ok`.
    Sync,
    /// `/quorum`: a quorum standby that is `replica_ok`.
    Quorum,
    /// `/read-only-sync`: a leading primary, or a synchronous standby that is `replica_ok`.
    ReadOnlySync,
    /// `/read-only-quorum`: a leading primary, or a quorum standby that is `replica_ok`.
    ReadOnlyQuorum,
    /// `/async`, `/asynchronous`: `replica_ok` and neither a synchronous nor a quorum standby.
    Async,
    /// `/health`: the database runs, whatever the role.
    Health,
    /// `/liveness`: the HA loop runs on time (Patroni: its next cycle is less than `ttl` late on a running
    /// primary, twice `ttl` elsewhere; always while paused).
    Liveness,
    /// `/readiness`: a leading primary, or a running, streaming replica within `?lag=` (default: the
    /// cluster's `maximum_lag_on_failover`; `?mode=write` measures the received position instead of the
    /// replayed one).
    Readiness,
}

impl Rule {
    /// Whether a member with `status` passes the check, `now` telling whether it leads and its loop runs.
    pub fn passes(self, now: Now, status: &NodeStatus, query: &HealthQuery) -> bool {
        let leading = now.leading;
        let replica_ok = || replica_ok(status, query);
        let ok = match self {
            Rule::Primary => leading,
            Rule::Leader => leading || standby_leader(status),
            Rule::StandbyLeader => standby_leader(status),
            Rule::Replica => replica_ok(),
            Rule::ReadOnly => leading || replica_ok(),
            Rule::Sync => status.is_sync_standby() && replica_ok(),
            Rule::Quorum => status.is_quorum_standby() && replica_ok(),
            Rule::ReadOnlySync => leading || status.is_sync_standby() && replica_ok(),
            Rule::ReadOnlyQuorum => leading || status.is_quorum_standby() && replica_ok(),
            Rule::Async => !status.is_sync_standby() && !status.is_quorum_standby() && replica_ok(),
            Rule::Health => status.state == "running",
            Rule::Liveness => now.loop_alive,
            Rule::Readiness => leading || ready(status, query),
        };
        ok && (!self.filters_tags() || query.tags_match(&status.tags))
    }

    /// Whether `?tag_<key>=<value>` filters apply to this check.
    pub fn filters_tags(self) -> bool {
        !matches!(self, Rule::Primary | Rule::Leader | Rule::StandbyLeader | Rule::Liveness | Rule::Readiness)
    }

    /// A one-line description of when the check answers 200, for the OpenAPI document.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::Primary => "200 on a running primary holding the lease by its own deadline",
            Rule::Leader => {
                "200 while this member holds the lease (a primary, or a standby cluster's standby leader)"
            }
            Rule::StandbyLeader => "200 on the running standby leader of a standby cluster",
            Rule::Replica => "200 on a running replica, not noloadbalance, within ?lag=, ?min_lsn=, filters",
            Rule::ReadOnly => "200 on a leading primary or on a replica as /replica",
            Rule::Sync => "200 on a synchronous standby that passes /replica",
            Rule::Quorum => "200 on a quorum standby that passes /replica",
            Rule::ReadOnlySync => "200 on a leading primary or on a synchronous standby that passes /replica",
            Rule::ReadOnlyQuorum => "200 on a leading primary or on a quorum standby that passes /replica",
            Rule::Async => "200 on a replica that passes /replica and is neither sync nor quorum standby",
            Rule::Health => "200 while the database runs, whatever the role",
            Rule::Liveness => "200 while the HA loop runs on time (its next cycle less than ttl late, 2 ttl on a replica)",
            Rule::Readiness => {
                "200 on a leading primary or on a running streaming replica within ?lag= (default maximum_lag_on_failover)"
            }
        }
    }

    /// The query parameters the check reads.
    pub fn parameters(self) -> &'static [&'static str] {
        const REPLICA: &[&str] = &["lag", "min_lsn", "replication_state", "tag_*"];
        match self {
            Rule::Primary | Rule::Leader | Rule::StandbyLeader | Rule::Liveness => &[],
            Rule::Health => &["tag_*"],
            Rule::Readiness => &["lag", "mode"],
            _ => REPLICA,
        }
    }
}

/// Whether `status` is a running standby cluster's leader.
fn standby_leader(status: &NodeStatus) -> bool {
    status.role == "standby_leader" && status.state == "running"
}

/// Patroni's `replica_ok`, plus Vigil's `?min_lsn=`.
fn replica_ok(status: &NodeStatus, query: &HealthQuery) -> bool {
    let replayed = status.xlog.replayed_location.unwrap_or(0);
    let state_matches =
        query.replication_state.as_ref().is_none_or(|w| status.replication_state.as_ref() == Some(w));
    !status.tag_is_set("noloadbalance")
        && status.role == "replica"
        && status.state == "running"
        && state_matches
        && lag(status, replayed) <= query.lag.unwrap_or(u64::MAX)
        && query.min_lsn.is_none_or(|min| replayed >= min)
}

/// Patroni's `_readiness` for a member that does not lead.
fn ready(status: &NodeStatus, query: &HealthQuery) -> bool {
    let x = &status.xlog;
    let position = if query.by_received { x.received_location } else { x.replayed_location };
    status.state == "running"
        && status.replication_state.as_deref() == Some("streaming")
        && lag(status, position.unwrap_or(0))
            <= query.lag.or(status.vigil.maximum_lag_on_failover).unwrap_or(u64::MAX)
}

/// How far `position` trails the primary's last known position (0 when that is unknown).
fn lag(status: &NodeStatus, position: u64) -> u64 {
    status.vigil.primary_optime.map_or(0, |primary| primary.saturating_sub(position))
}
