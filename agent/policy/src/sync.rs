//! Synchronous replication, as pure policy: which standbys the primary's commits wait for, what it
//! publishes in the `sync` key, and whether a replica may take over without losing an acknowledged commit.
//!
//! The ordering invariant (Patroni's): a standby is added to the database's rule first and published in
//! `sync` only once the primary reports it synchronous and caught up; it is removed from `sync` first and
//! from the rule after. So every standby `sync` names holds every acknowledged commit, and a replica that
//! takes over after a failure is one of them (or provably as far as one of them).

use crate::observation::{ClusterView, Observation, PeerView, SyncState};
use crate::MemberName;
use crate::SynchronousMode;
use crate::{DbState, Position, Role, SyncRule};

/// How the primary's commits are replicated right now, for the status, the list and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncHealth {
    /// `synchronous_mode: off`.
    Asynchronous,
    /// Commits wait for the standbys the rule names, and enough of them confirm.
    Synchronous,
    /// Synchronous mode is on, but no standby qualifies: commits run unreplicated (not strict).
    Relaxed,
    /// Commits wait for more standbys than confirm them (strict mode): writes are blocked.
    Blocked,
}

impl SyncHealth {
    /// Its name in the status JSON and the metrics: `async`, `sync`, `relaxed` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncHealth::Asynchronous => "async",
            SyncHealth::Synchronous => "sync",
            SyncHealth::Relaxed => "relaxed",
            SyncHealth::Blocked => "blocked",
        }
    }
}

/// One step towards the wanted synchronous replication, for the primary: at most one change per cycle, in
/// the order that keeps the invariant. `None`: nothing to change.
pub fn sync_step(o: &Observation, cluster: &ClusterView) -> Option<SyncChange> {
    let applied = o.db.sync_rule.as_ref();
    let wanted = wanted_rule(o, cluster);
    if o.policy.sync.mode == SynchronousMode::Off {
        return applied.filter(|rule| **rule != SyncRule::Off).map(|_| SyncChange::Rule(SyncRule::Off));
    }
    let mine = cluster.sync.as_ref().filter(|_| published_by_me(o, cluster));
    let published = mine.cloned().unwrap_or_default();
    // 1. Shrink `sync` to what the wanted and the applied rule both keep: standbys of a `FIRST` rule one by
    //    one, a quorum only as a whole and unchanged.
    let keeps = |name: &String| {
        wanted.names().contains(name) && applied.is_some_and(|rule| rule.names().contains(name))
    };
    let kept = match (&wanted, published.quorum) {
        (SyncRule::First { .. }, None) => {
            published.sync_standby.iter().filter(|n| keeps(n)).cloned().collect()
        }
        (SyncRule::Any { .. }, Some(_))
            if applied == Some(&wanted) && quorum_state(o, &wanted) == published =>
        {
            published.sync_standby.clone()
        }
        _ => Vec::new(),
    };
    let shrunk = SyncState {
        leader: Some(o.me.clone()),
        quorum: published.quorum.filter(|_| !kept.is_empty()),
        sync_standby: kept,
    };
    if mine.is_none() || shrunk != published {
        return Some(SyncChange::Publish(shrunk));
    }
    // 2. Then change the rule.
    if applied != Some(&wanted) {
        return Some(SyncChange::Rule(wanted));
    }
    // 3. Then add the standbys that confirm commits and hold everything acknowledged before.
    let confirmed: Vec<String> = wanted
        .names()
        .iter()
        .filter(|n| published.sync_standby.contains(n) || confirmed(o, n))
        .cloned()
        .collect();
    let target = match &wanted {
        SyncRule::Any { .. } if confirmed.len() == wanted.names().len() => quorum_state(o, &wanted),
        SyncRule::Any { .. } => published.clone(),
        _ => SyncState { leader: Some(o.me.clone()), sync_standby: confirmed, quorum: None },
    };
    (target != published).then_some(SyncChange::Publish(target))
}

/// Whether the `sync` key is this member's own and names no standby: what a primary publishes before its
/// first write (see `decide`), so that no other member is promised to hold what it acknowledges.
pub fn claimed_by_me(o: &Observation, cluster: &ClusterView) -> bool {
    published_by_me(o, cluster) && cluster.sync.as_ref().is_some_and(|s| s.sync_standby.is_empty())
}

/// Whether the `sync` key is this member's own.
pub fn published_by_me(o: &Observation, cluster: &ClusterView) -> bool {
    cluster.sync.as_ref().is_some_and(|s| s.leader.as_ref() == Some(&o.me))
}

/// A change [`sync_step`] asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncChange {
    /// Apply this rule to the database.
    Rule(SyncRule),
    /// Write this `sync` key.
    Publish(SyncState),
}

/// The rule the primary should apply: the best standbys (`on`) or all of them as voters, by name
/// (`quorum`); with none, asynchronous (or, strict, wait for any replica).
pub fn wanted_rule(o: &Observation, cluster: &ClusterView) -> SyncRule {
    let policy = o.policy.sync;
    let mut candidates = candidates(o, cluster);
    if policy.mode == SynchronousMode::On {
        candidates.truncate(policy.node_count as usize);
    }
    let mut names: Vec<String> = candidates.into_iter().map(|(name, _)| name).collect();
    if policy.mode == SynchronousMode::Quorum {
        // Voters are equals: listed by name, so that a change of who is ahead does not change the rule.
        names.sort();
    }
    let count = if policy.strict { policy.node_count } else { policy.node_count.min(names.len() as u32) };
    match policy.mode {
        SynchronousMode::Off => SyncRule::Off,
        _ if names.is_empty() && policy.strict => SyncRule::AnyReplica,
        _ if names.is_empty() => SyncRule::Off,
        SynchronousMode::On => SyncRule::First { count, names },
        SynchronousMode::Quorum => SyncRule::Any { count, names },
    }
}

/// Streaming replicas that may be synchronous, best first: not `nosync`, `sync_priority` above 0, running
/// by their own record (a member shutting down says `stopping`), within `maximum_lag_on_syncnode` (see
/// [`too_far_behind`]); then higher `sync_priority`, then those the applied rule already names (a standby
/// is not swapped for one that is momentarily less behind), then least lag.
fn candidates(o: &Observation, cluster: &ClusterView) -> Vec<(String, i64)> {
    let named = |name: &str| o.db.sync_rule.as_ref().is_some_and(|r| r.names().iter().any(|n| n == name));
    let mut found: Vec<(String, i64, Option<Position>)> =
        o.db.replicas
            .iter()
            .filter(|link| link.streaming && link.name != o.me.as_str())
            .filter_map(|link| {
                let (_, record) = cluster.members.iter().find(|(name, _)| name.as_str() == link.name)?;
                let usable = record.is_running() && !record.nosync && record.sync_priority > 0;
                usable.then(|| (link.name.clone(), record.sync_priority, link.flushed))
            })
            .collect();
    let too_far = too_far_behind(o, &found.iter().map(|f| f.2).collect::<Vec<_>>());
    found.retain(|f| !too_far(f.2));
    found.sort_by(|a, b| {
        // The primary's own view: every replica's position is in its unit.
        let ahead = b.2.partial_cmp(&a.2).unwrap_or(std::cmp::Ordering::Equal);
        (b.1, named(&b.0)).cmp(&(a.1, named(&a.0))).then(ahead).then(a.0.cmp(&b.0))
    });
    found.into_iter().map(|(name, priority, _)| (name, priority)).collect()
}

/// Whether a replica flushed to a position is further behind than `maximum_lag_on_syncnode` allows: than
/// the most advanced of `flushed` when there are several, else than the primary (Patroni's rule). A
/// replica with no known position is not judged.
fn too_far_behind(o: &Observation, flushed: &[Option<Position>]) -> impl Fn(Option<Position>) -> bool {
    let best = match flushed {
        [_, _, ..] => flushed.iter().flatten().map(|p| p.at).max(),
        _ => o.db.position.map(|p| p.at),
    };
    let limit = o.policy.sync.max_lag;
    move |at: Option<Position>| match (limit, best, at) {
        (Some(limit), Some(best), Some(at)) => best.saturating_sub(at.at) > limit,
        _ => false,
    }
}

/// The `sync` key for a quorum rule: its voters and their count.
fn quorum_state(o: &Observation, rule: &SyncRule) -> SyncState {
    let (count, names) = match rule {
        SyncRule::Any { count, names } => (*count, names.clone()),
        _ => (0, Vec::new()),
    };
    SyncState { leader: Some(o.me.clone()), sync_standby: names, quorum: Some(count) }
}

/// Whether the primary counts `name` synchronous and it has flushed everything written before the rule
/// in force was applied (so also every commit acknowledged under the rule before).
fn confirmed(o: &Observation, name: &str) -> bool {
    let Some(from) = o.sync_applied_at else { return false };
    o.db.replicas
        .iter()
        .any(|link| link.name == name && link.synchronous && link.flushed.is_some_and(|f| f >= from))
}

/// How a primary's commits are replicated now, in `mode`.
pub fn sync_health(db: &DbState, mode: SynchronousMode) -> SyncHealth {
    let Some(rule) = &db.sync_rule else { return SyncHealth::Asynchronous };
    let required = match rule {
        SyncRule::Off if mode == SynchronousMode::Off => return SyncHealth::Asynchronous,
        SyncRule::Off => return SyncHealth::Relaxed,
        SyncRule::AnyReplica => 1,
        SyncRule::First { count, .. } | SyncRule::Any { count, .. } => *count as usize,
    };
    let confirming = db
        .replicas
        .iter()
        .filter(|l| l.synchronous && (*rule == SyncRule::AnyReplica || rule.names().contains(&l.name)))
        .count();
    if confirming >= required {
        SyncHealth::Synchronous
    } else {
        SyncHealth::Blocked
    }
}

/// The promotion gate: may this replica, at `mine`, take over without losing an acknowledged commit?
/// `Err` says why not.
pub fn may_take_over(o: &Observation, cluster: &ClusterView, mine: Position) -> Result<(), String> {
    if o.policy.sync.mode == SynchronousMode::Off {
        return Ok(());
    }
    // Nothing promised yet: synchronous mode was just switched on, and no primary published a `sync` key.
    let Some(sync) = &cluster.sync else { return Ok(()) };
    // The primary that published it holds every commit it acknowledged.
    if sync.leader.as_ref() == Some(&o.me) {
        return Ok(());
    }
    let reachable = |name: &str| -> Option<&PeerView> {
        o.peers.iter().find(|p| p.reachable && p.name.as_str() == name && p.position.is_some())
    };
    // A standby vouches with a position it can no longer pass: its WAL receiver has stopped. One that
    // still streams receives from the old primary (alive, with a frozen agent), which may go on
    // committing, and the position it last published may already be behind what it acknowledged; unless
    // the old primary itself answered that it no longer runs as one (restarted as a standby to race, or
    // stopped): then nothing more is committed, and every position a voter shows is final.
    let old_primary_quiet = sync.leader.as_ref().is_some_and(|leader| {
        o.peers
            .iter()
            .any(|p| p.reachable && p.name == *leader && !(p.running && p.role == Some(Role::Primary)))
    });
    // Either way, only a status observed after the voter saw the lease free is final: one observed before
    // may show a position it has passed since (it started streaming again, and acknowledged more).
    let settled =
        |peer: &&PeerView| saw_this_free_period(peer, cluster) && (!peer.streaming || old_primary_quiet);
    match sync.quorum {
        None => {
            if sync.sync_standby.iter().any(|n| n == o.me.as_str()) {
                return Ok(());
            }
            if let Some(peer) = sync
                .sync_standby
                .iter()
                .filter_map(|n| reachable(n))
                .filter(settled)
                .find(|p| p.position <= Some(mine))
            {
                tracing::debug!(proof = %peer.name, "as far as a sync standby");
                return Ok(());
            }
            Err(if sync.sync_standby.is_empty() {
                "the last primary published no synchronous standby (it ran relaxed, or had \
                 not confirmed one yet), so any replica may lack acknowledged commits"
                    .to_owned()
            } else {
                let strict = if o.policy.sync.strict { " (synchronous_mode_strict)" } else { "" };
                format!(
                    "not a synchronous standby{strict}, and no synchronous standby ({}) is reachable, done \
                     receiving and behind me",
                    sync.sync_standby.join(", ")
                )
            })
        }
        Some(k) => {
            let voters = sync.sync_standby.len();
            let needed = (voters + 1).saturating_sub(k as usize);
            let mut seen = 0;
            for voter in &sync.sync_standby {
                if voter == o.me.as_str() {
                    seen += 1;
                } else if let Some(peer) = reachable(voter) {
                    if peer.position > Some(mine) {
                        return Err(format!("voter {} is further ahead", peer.name));
                    }
                    if settled(&peer) {
                        seen += 1;
                    }
                }
            }
            if seen >= needed {
                Ok(())
            } else {
                Err(format!(
                    "only {seen} of the {needed} voters needed (of {voters}, each commit \
                     confirmed by {k}) can vouch that I hold every acknowledged commit (a voter still \
                     receiving cannot)"
                ))
            }
        }
    }
}

impl std::fmt::Display for SyncChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncChange::Rule(SyncRule::Off) => f.write_str(
                "commits no longer wait for any standby (synchronous_mode off, or none qualifies)",
            ),
            SyncChange::Rule(SyncRule::AnyReplica) => {
                f.write_str("no standby qualifies, strict: commits wait for any replica")
            }
            SyncChange::Rule(SyncRule::First { count, names }) => {
                write!(f, "commits wait for the first {count} of {}", names.join(", "))
            }
            SyncChange::Rule(SyncRule::Any { count, names }) => {
                write!(f, "commits wait for any {count} of {}", names.join(", "))
            }
            SyncChange::Publish(state) if state.sync_standby.is_empty() => {
                f.write_str("publishing no synchronous standby")
            }
            SyncChange::Publish(SyncState { sync_standby, quorum: Some(k), .. }) => {
                write!(f, "publishing quorum {k} of {}", sync_standby.join(", "))
            }
            SyncChange::Publish(state) => {
                write!(f, "publishing sync standbys {}", state.sync_standby.join(", "))
            }
        }
    }
}

/// Whether `peer` showed a status observed after its agent saw the lease free in the current free period
/// of `cluster`. A status from an earlier one (its agent stalled since, say, while another primary came and
/// went) may be behind what it acknowledged to that primary.
fn saw_this_free_period(peer: &PeerView, cluster: &ClusterView) -> bool {
    peer.observed_leaderless && peer.leaderless_after == cluster.last_grant
}

/// Whether `peer` could pass the promotion gate, as far as this member can tell: the primary that published
/// the `sync` key, a standby it names, or (`on` mode) a peer as far as a named standby this member sees.
/// A peer that cannot is no better candidate, however far ahead: yielding to it would leave nobody to
/// take over.
pub fn peer_may_take_over(o: &Observation, cluster: &ClusterView, peer: &PeerView) -> bool {
    let Some(sync) = cluster.sync.as_ref().filter(|_| o.policy.sync.mode != SynchronousMode::Off) else {
        return true;
    };
    if sync.leader.as_ref() == Some(&peer.name) || sync.sync_standby.iter().any(|n| n == peer.name.as_str()) {
        return true;
    }
    // As in [`may_take_over`]: only a standby done receiving vouches.
    let position_of = |name: &str| match name == o.me.as_str() {
        true => o.db.position.filter(|_| !o.db.streaming),
        false => {
            let done = |p: &&PeerView| p.reachable && !p.streaming && saw_this_free_period(p, cluster);
            o.peers.iter().filter(done).find(|p| p.name.as_str() == name)?.position
        }
    };
    sync.quorum.is_none()
        && sync.sync_standby.iter().any(|n| position_of(n).is_some_and(|pos| Some(pos) <= peer.position))
}

/// Whether `me` is a standby the current `sync` key names (whose commits would stall if it left).
pub fn is_named_standby(cluster: &ClusterView, me: &MemberName) -> bool {
    let leader = cluster.leader.as_ref().map(|(holder, _)| holder);
    cluster
        .sync
        .as_ref()
        .is_some_and(|s| s.leader.as_ref() == leader && s.sync_standby.iter().any(|n| n == me.as_str()))
}

/// Whether a synchronous standby that announced it is stopping may go without stalling commits: the `sync`
/// key no longer names it, and names another standby, or the primary no longer waits for any.
pub fn handed_over(cluster: &ClusterView, me: &MemberName) -> bool {
    let Some(sync) = &cluster.sync else { return true };
    if is_named_standby(cluster, me) {
        return false;
    }
    let primary_state = cluster
        .leader
        .as_ref()
        .and_then(|(holder, _)| cluster.members.get(holder))
        .and_then(|record| record.sync_state.as_deref());
    !sync.sync_standby.is_empty() || matches!(primary_state, Some("relaxed" | "async"))
}
