//! The HA policy: one pure function from an [`Observation`] to a [`Decision`].
//!
//! It reads no clock, does no I/O and keeps no state; the loop around it observes and acts. Each case of
//! Patroni's HA cycle is one small function below, tried in order of precedence: safety (a primary without
//! a valid lease is fenced), bootstrap, the data directory, then the lease (held by me, by another, by
//! nobody).

use crate::candidate::within_maximum_lag;
use crate::observation::SyncState;
use crate::observation::{ClusterView, Initialize, LeaseHold, Observation, PeerView, Switchover};
use crate::sync::{self, SyncChange};
use crate::topology;
use crate::MemberName;
use crate::SynchronousMode;
use crate::{DataState, DbState, Position, Refusal, Role, SyncRule, Upstream, Veto};

/// Something the loop does to the store or the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Claim the bootstrap (create `initialize` if absent, naming this member).
    ClaimInitialize,
    /// Record the bootstrapped database's system identifier in `initialize`.
    SetSystemId(String),
    /// Take the leader lease.
    AcquireLease,
    /// Renew the leader lease.
    RenewLease,
    /// Give the leader lease up.
    ReleaseLease,
    /// Publish the primary's position in `status`.
    PublishOptime(Position),
    /// Create a new database and start it as primary.
    Bootstrap,
    /// Start the local database as primary.
    StartPrimary,
    /// Promote the running replica, with the lease's token.
    Promote,
    /// Record the lease's token in the server, which already runs as primary: one this agent neither
    /// started nor promoted (a cluster moved from Patroni, a primary kept running through a pause).
    RecordToken,
    /// Fence: stop the local primary at once (it rejoins as a replica afterwards).
    Demote,
    /// Fence a server that does not answer (stopped processes, hung storage): kill its processes, so that
    /// it can acknowledge nothing afterwards. Carried out before any later action; those are skipped
    /// when it fails.
    Kill,
    /// Copy the database from a member.
    Clone(Upstream),
    /// Make the database with no member to copy from (PostgreSQL: the replica methods with `no_leader`,
    /// restoring from a backup), as a standby of nobody.
    Restore,
    /// Bring the diverged local data back onto a member's history in place (PostgreSQL: pg_rewind),
    /// configured to follow it.
    Repair(Upstream),
    /// Remove the local data (to re-clone it).
    RemoveData,
    /// Move the local data aside, out of the way of a re-clone, keeping it for the operator.
    SetDataAside,
    /// Run as a replica of a member (or, with `None`, as a standby of nobody until a primary exists).
    Follow(Option<Upstream>),
    /// Keep on the primary what these members need to follow it after a pause (PostgreSQL: a replication
    /// slot each), and nothing for anybody else.
    RetainFor(Vec<String>),
    /// Planned switchover away from this primary: stop it so that its replicas receive everything it
    /// wrote (PostgreSQL streams its shutdown checkpoint before it exits), then release the lease.
    HandOver,
    /// Remove the `failover` key (the switchover it asked for is done, or cannot be done).
    ClearSwitchover,
    /// Make the database's commits wait for these replicas.
    SetSyncRule(SyncRule),
    /// Write the `sync` key.
    PublishSync(SyncState),
}

impl Action {
    /// Whether it may make the local server a primary.
    pub fn starts_primary(&self) -> bool {
        matches!(self, Action::Bootstrap | Action::StartPrimary | Action::Promote)
    }
}

/// What to do this cycle, and why (one line for the log and the member status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// Why.
    pub reason: String,
    /// While nobody holds the lease: why this member does not take over (or gave the lease back without
    /// promoting); `None` when it races, or when there is a lease holder.
    pub refusal: Option<Refusal>,
}

impl Decision {
    fn act(actions: Vec<Action>, reason: impl Into<String>) -> Self {
        Decision { actions, reason: reason.into(), refusal: None }
    }

    fn wait(reason: impl Into<String>) -> Self {
        Decision::act(Vec::new(), reason)
    }

    /// Waiting, for `refusal`.
    fn refuse(refusal: Refusal) -> Self {
        Decision::wait(format!("not taking over: {refusal}")).because(refusal)
    }

    /// The same decision, taken for `refusal`.
    fn because(self, refusal: Refusal) -> Self {
        Decision { refusal: Some(refusal), ..self }
    }

    /// Whether it changes who leads or may lead (the bootstrap, the lease, the `sync` key): the loop then
    /// runs its next cycle at once rather than after `loop_wait`.
    pub fn changes_roles(&self) -> bool {
        self.actions.iter().any(|a| {
            matches!(
                a,
                Action::ClaimInitialize
                    | Action::SetSystemId(_)
                    | Action::AcquireLease
                    | Action::ReleaseLease
                    | Action::HandOver
                    | Action::PublishSync(_)
            )
        })
    }

    /// Whether it stops the database (a handover or a fence): what the member publishes afterwards must
    /// come from a fresh observation.
    pub fn stops_database(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::HandOver | Action::Demote | Action::Kill))
    }
}

/// Decides what this member does now.
pub fn decide(o: &Observation) -> Decision {
    if let Some(fence) = fence_unleased_primary(o) {
        return fence;
    }
    let Some(cluster) = &o.cluster else {
        return store_unreachable(o);
    };
    if o.policy.pause {
        return paused(o, cluster);
    }
    let system_id = match bootstrap(o, cluster) {
        Ok(system_id) => system_id,
        Err(decision) => return decision,
    };
    if let Some(decision) = data_directory(o, cluster, system_id) {
        return decision;
    }
    match &cluster.leader {
        _ if o.leads(cluster) => lead(o, cluster),
        Some((holder, token)) if *holder == o.me => Decision::act(
            vec![Action::AcquireLease],
            format!("the store still names me as holder (token {token}): re-acquiring the lease"),
        ),
        Some((holder, _)) => follow_leader(o, cluster, holder),
        None if o.db.is_running_primary() => Decision::act(
            vec![Action::Demote],
            "fencing: the store shows no lease holder while this member runs as primary",
        ),
        None => leader_race(o, cluster),
    }
}

impl Observation {
    fn lease_is_valid(&self) -> bool {
        matches!(self.lease, LeaseHold::Valid(_))
    }

    fn holds_lease_in_store(&self, cluster: &ClusterView) -> bool {
        cluster.leader.as_ref().is_some_and(|(holder, _)| *holder == self.me)
    }

    /// Holds the lease by its own deadline, with the very token the store shows: only then may it act as
    /// primary (a larger token in the store means a newer grant this agent has not seen).
    fn leads(&self, cluster: &ClusterView) -> bool {
        match (self.lease, &cluster.leader) {
            (LeaseHold::Valid(mine), Some((holder, token))) => *holder == self.me && *token == mine,
            _ => false,
        }
    }

    /// The members this server retains what they need for (a slot each), under lease holder `holder`:
    /// those streaming from it ([`topology::streaming_from`]), unless that is off.
    fn retained_members(&self, cluster: &ClusterView, holder: &MemberName) -> Vec<String> {
        if !self.policy.retain_for_replicas {
            return Vec::new();
        }
        topology::streaming_from(cluster, &self.me, holder)
    }
}

/// Safety before anything else: a database running as primary without a lease valid by this agent's own
/// deadline is stopped at once. The one exception is an agent that just started and finds the store still
/// naming it as holder: it re-acquires first (the same token comes back).
fn fence_unleased_primary(o: &Observation) -> Option<Decision> {
    if o.lease_is_valid() || o.policy.pause {
        return None;
    }
    if fence_action(&o.db, o.fenced)? == Action::Kill {
        let LeaseHold::Lapsed(token) = o.lease else { return None };
        return Some(Decision::act(
            vec![Action::Kill],
            format!("fencing: my lease (token {token}) passed its deadline while my server does not answer"),
        ));
    }
    let reclaim =
        o.lease == LeaseHold::Never && o.cluster.as_ref().is_some_and(|c| o.holds_lease_in_store(c));
    Some(match o.lease {
        _ if reclaim => {
            Decision::act(vec![Action::AcquireLease], "primary after a restart: re-acquiring my lease")
        }
        LeaseHold::Lapsed(token) => Decision::act(
            vec![Action::Demote],
            format!("fencing: my lease (token {token}) passed its deadline without renewal"),
        ),
        _ => Decision::act(vec![Action::Demote], "fencing: running as primary without holding the lease"),
    })
}

/// How a server is fenced once its lease is gone: one running as primary is stopped ([`Action::Demote`]),
/// one that answers nothing (it may be a primary about to resume) is killed ([`Action::Kill`]), unless it
/// was `fenced` already and started as a standby at most since (a standby slow to start under load
/// answers nothing either, and killing it again and again would keep the member out of the race for
/// good); anything else needs nothing.
pub fn fence_action(db: &DbState, fenced: bool) -> Option<Action> {
    match () {
        _ if db.is_running_primary() => Some(Action::Demote),
        _ if db.hung && !fenced => Some(Action::Kill),
        _ => None,
    }
}

/// Without the store, a lease holder keeps trying to renew (and fences itself at its deadline, above);
/// everybody else waits.
fn store_unreachable(o: &Observation) -> Decision {
    if o.lease_is_valid() {
        Decision::act(vec![Action::RenewLease], "cluster store unreachable: renewing until my deadline")
    } else {
        Decision::wait("cluster store unreachable: waiting").because(Refusal::StoreUnreachable)
    }
}

/// Maintenance mode: the lease follows whoever runs as primary, nothing is started, stopped or promoted.
fn paused(o: &Observation, cluster: &ClusterView) -> Decision {
    match (o.db.is_running_primary(), &cluster.leader) {
        (true, None) => Decision::act(
            vec![Action::AcquireLease, Action::RecordToken],
            "paused: primary takes the free lease",
        ),
        (true, Some(_)) if o.holds_lease_in_store(cluster) => {
            Decision::act(vec![Action::RenewLease], "paused: primary renews its lease")
        }
        (false, Some(_)) if o.lease_is_valid() => {
            Decision::act(vec![Action::ReleaseLease], "paused: no longer primary, releasing the lease")
        }
        (_, None) => Decision::wait("paused: no automatic actions").because(Refusal::Paused),
        _ => Decision::wait("paused: no automatic actions"),
    }
}

/// The bootstrap race: `Ok(system id)` once the cluster is initialized, else the decision for now.
fn bootstrap<'a>(o: &Observation, cluster: &'a ClusterView) -> Result<&'a str, Decision> {
    let Some(Initialize { by, system_id }) = &cluster.initialize else {
        return Err(match &cluster.leader {
            // A store started paused on a running cluster (one moved from Patroni): its primary took the
            // lease in the pause and records its own database on resume. A claim by anybody else would
            // leave that primary waiting for a bootstrap that never comes, its lease running out.
            Some((holder, _)) if *holder != o.me => Decision::wait(format!(
                "cluster not initialized: waiting for {holder}, the lease holder, to record its database"
            )),
            _ if o.policy.can_fail_over => Decision::act(
                vec![Action::ClaimInitialize],
                "cluster not initialized: claiming the bootstrap",
            ),
            _ => Decision::wait("cluster not initialized; nofailover members do not bootstrap"),
        });
    };
    if let Some(system_id) = system_id {
        return Ok(system_id);
    }
    if *by != o.me {
        return Err(Decision::wait(format!("waiting for {by} to bootstrap the cluster")));
    }
    if let Some((holder, _)) = cluster.leader.as_ref().filter(|(holder, _)| *holder != o.me) {
        return Err(Decision::wait(format!(
            "bootstrap claimed by me, but {holder} holds the lease: waiting"
        )));
    }
    if !o.leads(cluster) {
        return Err(Decision::act(
            vec![Action::AcquireLease],
            "bootstrapping: taking the lease before initdb",
        ));
    }
    if let Some(remote) = &o.policy.standby_cluster {
        return Err(bootstrap_standby(o, remote));
    }
    Err(match &o.db.data {
        // As before a promotion: in a synchronous mode the new primary's `sync` key is in the store before
        // its first write, so that no other member takes over past commits it may have acknowledged.
        DataState::Missing
            if o.policy.sync.mode != SynchronousMode::Off && !sync::published_by_me(o, cluster) =>
        {
            let claim = SyncState { leader: Some(o.me.clone()), sync_standby: Vec::new(), quorum: None };
            Decision::act(
                vec![Action::RenewLease, Action::PublishSync(claim)],
                "bootstrapping: claiming the sync key before initdb",
            )
        }
        DataState::Missing => {
            Decision::act(vec![Action::RenewLease, Action::Bootstrap], "bootstrapping: initdb")
        }
        DataState::Present { system_id, .. } if o.db.is_running_primary() => Decision::act(
            vec![Action::RenewLease, Action::SetSystemId(system_id.clone())],
            format!("bootstrapped database {system_id}: recording it"),
        ),
        DataState::Present { .. } => Decision::act(
            vec![Action::RenewLease, Action::StartPrimary],
            "bootstrapping: starting the new primary",
        ),
    })
}

/// The bootstrap of a standby cluster: its first member copies the remote primary, starts as its standby
/// and records the database's system id.
fn bootstrap_standby(o: &Observation, remote: &Upstream) -> Decision {
    let from = &remote.name;
    match &o.db.data {
        DataState::Missing => Decision::act(
            vec![Action::RenewLease, Action::Clone(remote.clone())],
            format!("bootstrapping a standby cluster: cloning from {from}"),
        ),
        DataState::Present { system_id, .. } if o.db.running => Decision::act(
            vec![Action::RenewLease, Action::SetSystemId(system_id.clone())],
            format!("standby cluster copied from {from}: recording database {system_id}"),
        ),
        DataState::Present { .. } if o.db.starting => {
            Decision::act(vec![Action::RenewLease], "bootstrapping a standby cluster: recovery in progress")
        }
        DataState::Present { .. } => Decision::act(
            vec![Action::RenewLease, Action::Follow(Some(remote.clone()))],
            format!("bootstrapping a standby cluster: starting as a standby of {from}"),
        ),
    }
}

/// An empty data directory is cloned from the primary; one of another cluster is never touched.
fn data_directory(o: &Observation, cluster: &ClusterView, system_id: &str) -> Option<Decision> {
    match &o.db.data {
        DataState::Missing if o.lease_is_valid() => Some(Decision::act(
            vec![Action::ReleaseLease],
            "holding the lease without a database: handing it over",
        )),
        DataState::Missing if o.holds_lease_in_store(cluster) => Some(Decision::wait(
            "no data, and the store still names me as holder: waiting for the lease to expire",
        )),
        DataState::Missing => Some(match leader_upstream(cluster) {
            Some(primary) => {
                let upstream = topology::clone_source(cluster, &o.me, primary);
                let reason = format!("no data: cloning from {}", upstream.name);
                Decision::act(vec![Action::Clone(upstream)], reason)
            }
            None if cluster.leader.is_none() && o.policy.restore_without_primary => Decision::act(
                vec![Action::Restore],
                "no data and no primary: restoring with a method that needs none (no_leader)",
            ),
            None if cluster.leader.is_none() => {
                Decision::wait("no data, and no primary to clone from yet").because(Refusal::NoData)
            }
            None => Decision::wait("no data, and the lease holder has not published its address yet"),
        }),
        DataState::Present { system_id: mine, .. } if mine != system_id => Some(Decision::wait(format!(
            "data directory belongs to database {mine}, the cluster is {system_id}: not touching it"
        ))),
        DataState::Present { .. } => None,
    }
}

/// This member holds a valid lease: keep the primary running and the lease renewed.
fn lead(o: &Observation, cluster: &ClusterView) -> Decision {
    if let Some(remote) = &o.policy.standby_cluster {
        return standby_lead(o, cluster, remote);
    }
    switchover_from_leader(o, cluster).unwrap_or_else(|| steady_lead(o, cluster))
}

/// The lease holder of a standby cluster, its standby leader: replicates from the remote primary, keeps
/// slots for the members that follow it, and is never promoted. A primary (the cluster was just demoted
/// with `demote-cluster`) stops cleanly and starts again as the remote's standby; data that cannot follow
/// the remote after [`FOLLOW_ATTEMPTS`] tries is repaired from the remote's history.
fn standby_lead(o: &Observation, cluster: &ClusterView, remote: &Upstream) -> Decision {
    let from = &remote.name;
    if o.follow_failures >= FOLLOW_ATTEMPTS {
        let why = format!("standby cluster: {} failed attempts to replicate from {from}", o.follow_failures);
        return repair(o, from, remote.clone(), &why);
    }
    let mut actions = vec![Action::RenewLease];
    let from_remote = o.db.upstream.as_deref() == Some(from.as_str()) && !o.db.is_running_primary();
    if o.db.running && from_remote {
        actions.extend(new_optime(o, cluster));
        actions.push(Action::RetainFor(o.retained_members(cluster, &o.me)));
        return Decision::act(actions, format!("standby leader: replicating from {from}"));
    }
    if o.db.starting && from_remote {
        return Decision::act(actions, format!("standby leader starting as a standby of {from}"));
    }
    actions.push(Action::Follow(Some(remote.clone())));
    let reason = match o.db.is_running_primary() {
        true => format!("standby cluster: the primary stops and starts again as a standby of {from}"),
        false => format!("standby leader: following {from}"),
    };
    Decision::act(actions, reason)
}

/// Leading with no switchover to carry out.
fn steady_lead(o: &Observation, cluster: &ClusterView) -> Decision {
    // A refusal that finds the server a primary came too late to matter: it keeps leading.
    if let Some(veto) = o.promotion_refused.filter(|_| o.db.role != Some(Role::Primary)) {
        return give_back_refused(veto);
    }
    let slots = Action::RetainFor(o.retained_members(cluster, &o.me));
    match (o.db.running, o.db.role) {
        (true, Some(Role::Primary)) => {
            let mut actions = vec![Action::RenewLease];
            actions.extend(new_optime(o, cluster));
            actions.push(slots);
            match sync::sync_step(o, cluster) {
                None => Decision::act(actions, "primary: lease renewed"),
                Some(change) => {
                    let reason = format!("primary: lease renewed; synchronous replication: {change}");
                    actions.push(match change {
                        SyncChange::Rule(rule) => Action::SetSyncRule(rule),
                        SyncChange::Publish(state) => Action::PublishSync(state),
                    });
                    Decision::act(actions, reason)
                }
            }
        }
        // In a synchronous mode, the new primary claims the `sync` key before it takes a write: should it
        // fail, only it may take over again (it alone may hold commits acknowledged before it published).
        // A key of its own from an earlier term is claimed again when it names standbys: the server starts
        // with a rule that may not wait for them, and the key must never promise more than the rule keeps.
        (true, _) if o.policy.sync.mode != SynchronousMode::Off && !sync::claimed_by_me(o, cluster) => {
            let claim = SyncState { leader: Some(o.me.clone()), sync_standby: Vec::new(), quorum: None };
            Decision::act(
                vec![Action::RenewLease, Action::PublishSync(claim)],
                "lease taken: claiming the sync key before promoting",
            )
        }
        (true, _) => {
            let mut actions = vec![Action::RenewLease];
            if o.policy.sync.mode != SynchronousMode::Off {
                // In strict mode, commits wait for a replica from the very first one on.
                actions.push(Action::SetSyncRule(sync::wanted_rule(o, cluster)));
            }
            // Slots first: made while the server is still in recovery, they hold the WAL from its last
            // restartpoint on, so the other members can follow it across the new timeline's first segment.
            actions.extend([slots, Action::Promote]);
            Decision::act(actions, "lease taken: promoting")
        }
        (false, _) => match o.primary_down_since {
            // Its processes may still run (starting, or hung and about to resume): killed first, so that
            // nothing is acknowledged once another member may hold the lease.
            Some(since) if o.now.duration_since(since) >= o.policy.primary_start_timeout => {
                let how = match () {
                    _ if o.db.hung => "did not answer: killing it and ",
                    _ if o.db.starting => "was still starting: killing it and ",
                    _ => "did not start: ",
                };
                let kill = o.db.starting.then_some(Action::Kill);
                let actions = kill.into_iter().chain([Action::ReleaseLease]).collect();
                Decision::act(
                    actions,
                    format!(
                        "primary {how}releasing the lease after primary_start_timeout ({:?})",
                        o.policy.primary_start_timeout
                    ),
                )
            }
            _ if o.db.hung => Decision::act(
                vec![Action::RenewLease],
                "primary does not answer (processes stopped or storage hung): waiting up to primary_start_timeout",
            ),
            _ if o.db.starting => {
                Decision::act(vec![Action::RenewLease], "primary starting: recovery in progress")
            }
            _ => Decision::act(
                vec![Action::RenewLease, Action::StartPrimary],
                "primary not running: starting it in place",
            ),
        },
    }
}

/// The lease holder whose promotion `veto` refused gives the lease back. A failed promotion may still be
/// under way in the server, which is killed first: nothing it would acknowledge may outlive the lease.
fn give_back_refused(veto: Veto) -> Decision {
    let refusal = Refusal::PromotionRefused(veto);
    let (actions, how) = match veto {
        Veto::Failed => (vec![Action::Kill, Action::ReleaseLease], "killing the server and "),
        Veto::PrePromote | Veto::Watchdog => (vec![Action::ReleaseLease], ""),
    };
    Decision::act(actions, format!("{refusal}: {how}releasing the lease")).because(refusal)
}

/// The leader's position to publish as the cluster's `optime`, when it moved since it was last published.
fn new_optime(o: &Observation, cluster: &ClusterView) -> Option<Action> {
    o.db.position.filter(|p| cluster.optime != Some(*p)).map(Action::PublishOptime)
}

/// A pending switchover as seen by the primary: hand over to an available candidate once it is due, or
/// drop the request. A scheduled one waits for its time; one found more than 1.5 `loop_wait` past it
/// (the primary was paused or busy then) is dropped as stale, as Patroni does.
fn switchover_from_leader(o: &Observation, cluster: &ClusterView) -> Option<Decision> {
    let request = cluster.switchover.as_ref()?;
    if request.leader.as_ref().is_some_and(|l| *l != o.me) || request.candidate.as_ref() == Some(&o.me) {
        // Addressed to a former primary, or carried out by this member taking over: done. Leading goes on
        // as usual (a candidate that just took the lease promotes in this very cycle).
        return Some(steady_lead_and(o, cluster, Some(Action::ClearSwitchover), "switchover done"));
    }
    if !o.db.is_running_primary() {
        return None;
    }
    if let Some(at) = request.scheduled_at {
        if o.wall_clock < at.at() {
            return Some(steady_lead_and(o, cluster, None, &format!("switchover scheduled at {at}")));
        }
        let late = o.wall_clock.duration_since(at.at()).unwrap_or_default();
        if late > o.policy.loop_wait.saturating_mul(3) / 2 {
            let note =
                format!("switchover scheduled at {at} is stale ({} ms late): dropped", late.as_millis());
            return Some(steady_lead_and(o, cluster, Some(Action::ClearSwitchover), &note));
        }
    }
    match available_candidate(o, cluster, request) {
        Ok(to) => Some(Decision::act(vec![Action::HandOver], format!("switchover: handing over to {to}"))),
        Err(why) => Some(Decision::act(
            vec![Action::RenewLease, Action::ClearSwitchover],
            format!("switchover cancelled: {why}"),
        )),
    }
}

/// [`steady_lead`], then `then` (if any), with `note` added to the reason.
fn steady_lead_and(o: &Observation, cluster: &ClusterView, then: Option<Action>, note: &str) -> Decision {
    let mut decision = steady_lead(o, cluster);
    decision.actions.extend(then);
    decision.reason = format!("{}; {note}", decision.reason);
    decision
}

/// The switchover request in force: a scheduled one only once its time has come.
fn due_switchover<'a>(o: &Observation, cluster: &'a ClusterView) -> Option<&'a Switchover> {
    cluster.switchover.as_ref().filter(|r| r.scheduled_at.is_none_or(|at| at.at() <= o.wall_clock))
}

/// The member a switchover goes to: the named candidate, or any running replica that may fail over; it
/// must be within `maximum_lag_on_failover` of this primary's position.
fn available_candidate(
    o: &Observation,
    cluster: &ClusterView,
    request: &Switchover,
) -> Result<String, String> {
    let check = |name: &MemberName| -> Result<(), String> {
        let member = cluster.members.get(name).filter(|m| m.is_running_replica());
        let Some(member) = member.filter(|_| *name != o.me) else {
            return Err(format!("candidate {name} is not a running replica"));
        };
        match (o.db.position, member.position) {
            (Some(primary), Some(position)) => {
                within_maximum_lag(position, primary, o.policy.maximum_lag_on_failover)
                    .map_err(|why| format!("candidate {name}: {why}"))
            }
            _ => Ok(()),
        }
    };
    match &request.candidate {
        Some(name) => check(name).map(|()| name.to_string()),
        None => cluster
            .members
            .keys()
            .find(|name| check(name).is_ok())
            .map(|name| format!("the best of the replicas (first: {name})"))
            .ok_or_else(|| "no running replica within maximum_lag_on_failover to hand over to".to_owned()),
    }
}

/// Another member holds the lease: follow it, rewinding or re-cloning diverged data first.
fn follow_leader(o: &Observation, cluster: &ClusterView, holder: &MemberName) -> Decision {
    if o.db.is_running_primary() {
        return Decision::act(vec![Action::Demote], format!("fencing: {holder} holds the lease"));
    }
    let Some(primary) = leader_upstream(cluster) else {
        return Decision::wait(format!("{holder} holds the lease but has not published its address yet"));
    };
    if let Some(why) = diverged(o, cluster, holder) {
        return repair(o, holder.as_str(), primary, &why);
    }
    let cascade =
        topology::cascade_source(cluster, o.me.as_str(), o.policy.replicate_from.as_deref(), holder.as_str());
    let upstream = match cascade {
        Some(source) => cluster.members.get(source).map_or(primary, |m| m.upstream(source.as_str())),
        None => primary,
    };
    if o.db.starting && o.db.upstream.as_deref() == Some(upstream.name.as_str()) {
        return Decision::wait(format!("starting as a replica of {}: recovery in progress", upstream.name));
    }
    if o.db.running && o.db.upstream.as_deref() == Some(upstream.name.as_str()) {
        // Slots only for the members that stream from this one: another, as a former primary may have
        // kept, would never be advanced and would hold WAL on this replica for ever.
        let slots = Action::RetainFor(o.retained_members(cluster, holder));
        return Decision::act(vec![slots], format!("replica of {}", upstream.name));
    }
    let reason = match cascade {
        Some(source) => format!("following {source} (replicatefrom), a replica of the primary {holder}"),
        None => format!("following the primary {holder}"),
    };
    Decision::act(vec![Action::Follow(Some(upstream))], reason)
}

/// Failed attempts in a row to run as a replica of the lease holder after which the data is taken for
/// diverged from the holder's history (PostgreSQL: "requested timeline … does not contain minimum recovery
/// point", "… is not a child of this server's history").
pub const FOLLOW_ATTEMPTS: u32 = 2;

/// How long a running replica on an earlier timeline than the holder's may go without streaming before
/// its data counts as diverged.
pub const STUCK_BEHIND_TIMELINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Why this member's data cannot simply follow `holder`, if it cannot: it was a primary (or was being
/// promoted) since it last followed anybody, the holder refused it for what it lacks, it is on a later
/// timeline than the holder publishes, or it failed [`FOLLOW_ATTEMPTS`] times in a row to start as the
/// holder's replica.
fn diverged(o: &Observation, cluster: &ClusterView, holder: &MemberName) -> Option<String> {
    if matches!(o.db.data, DataState::Present { was_primary: true, .. }) {
        return Some("former primary".to_owned());
    }
    if let Some(extra) = o.db.diverged.as_ref().filter(|d| d.upstream == holder.as_str()) {
        return Some(format!("it has what {holder} lacks: {}", extra.extra));
    }
    if o.follow_failures >= FOLLOW_ATTEMPTS {
        return Some(format!("{} failed attempts to start as a replica of {holder}", o.follow_failures));
    }
    let theirs = cluster.members.get(holder).and_then(|m| m.timeline);
    let stuck =
        o.not_streaming_since.is_some_and(|since| o.now.duration_since(since) >= STUCK_BEHIND_TIMELINE);
    match (o.db.timeline, theirs) {
        (Some(mine), Some(theirs)) if mine > theirs && !o.db.streaming => {
            Some(format!("on timeline {mine}, later than {holder}'s timeline {theirs}"))
        }
        // A healthy replica follows a new timeline within a second or two; one that cannot (it replayed
        // past the point where the holder's timeline forked off) never streams again.
        (Some(mine), Some(theirs)) if mine < theirs && stuck => Some(format!(
            "not streaming for {STUCK_BEHIND_TIMELINE:?} on timeline {mine} while {holder} is on timeline {theirs}"
        )),
        _ => None,
    }
}

/// Brings diverged data back onto `holder`'s history: in place when the engine can and it is allowed
/// and not tried in vain already, else remove it or set it aside (as [`Discard`](crate::observation::Discard)
/// says) to re-clone it on the next cycle.
fn repair(o: &Observation, holder: &str, upstream: Upstream, why: &str) -> Decision {
    if o.policy.repair_in_place && !o.repair_failed && !o.repaired {
        return Decision::act(
            vec![Action::Repair(upstream)],
            format!("{why}: repairing it in place from {holder}'s history"),
        );
    }
    let discard = o.policy.discard;
    let (how, remove) = match () {
        _ if o.repair_failed => ("repair in place failed", discard.after_failed_repair),
        _ if o.repaired => ("already repaired", discard.after_failed_repair),
        _ => ("repair in place is off", discard.without_repair),
    };
    match remove {
        true => Decision::act(vec![Action::RemoveData], format!("{why}, {how}: re-cloning from {holder}")),
        false => Decision::act(
            vec![Action::SetDataAside],
            format!("{why}, {how}: setting its data aside and re-cloning from {holder}"),
        ),
    }
}

/// Nobody holds the lease: the healthiest eligible replica takes it.
fn leader_race(o: &Observation, cluster: &ClusterView) -> Decision {
    if o.db.starting {
        return Decision::wait("no primary, and the server is still starting: waiting")
            .because(Refusal::DatabaseStarting);
    }
    if !o.db.running {
        return Decision::act(
            vec![Action::Follow(None)],
            "no primary: starting as a standby to race for the lease",
        )
        .because(Refusal::DatabaseNotRunning);
    }
    if !o.policy.can_fail_over {
        return Decision::refuse(match o.policy.failover_priority {
            p if p <= 0 => Refusal::NoFailoverPriority(p),
            _ => Refusal::NoFailover,
        });
    }
    if let Some(veto) = o.promotion_refused {
        return Decision::refuse(Refusal::PromotionRefused(veto));
    }
    // A switchover or failover names who takes over: the others stand aside while it is available.
    let chosen = match due_switchover(o, cluster) {
        Some(request) if request.leader.as_ref() == Some(&o.me) => {
            return Decision::refuse(Refusal::HandedOver);
        }
        Some(request) => match &request.candidate {
            Some(candidate) if *candidate == o.me => true,
            Some(candidate) if cluster.members.get(candidate).is_some_and(|m| m.is_running()) => {
                return Decision::refuse(Refusal::SwitchoverTo(candidate.clone()));
            }
            _ => false,
        },
        None => false,
    };
    match may_race(o, cluster, chosen) {
        Ok(mine) => Decision::act(
            vec![Action::AcquireLease],
            format!("no primary: racing for the lease at position {mine}"),
        ),
        Err(refusal) => Decision::refuse(refusal),
    }
}

/// Whether this member, a running replica that may fail over (`chosen` by a switchover or failover, or
/// not), may race for the free lease: its position if so, else why not.
fn may_race(o: &Observation, cluster: &ClusterView, chosen: bool) -> Result<Position, Refusal> {
    let mine = o.db.position.ok_or(Refusal::PositionUnknown)?;
    // The operator's `failover --allow-data-loss` to this member overrides the data-loss guards below.
    let data_loss_allowed = chosen && due_switchover(o, cluster).is_some_and(|r| r.allow_data_loss);
    // As in Patroni, a switchover or failover naming this member does not look at timelines.
    if let Some(refusal) = behind_cluster_timeline(o, cluster).filter(|_| !chosen) {
        return Err(refusal);
    }
    if let Some(optime) = cluster.optime.filter(|_| !data_loss_allowed) {
        within_maximum_lag(mine, optime, o.policy.maximum_lag_on_failover)?;
    }
    match sync::may_take_over(o, cluster, mine) {
        Err(why) if !data_loss_allowed => return Err(Refusal::GateClosed(why)),
        _ => {}
    }
    // Streaming from a member that itself says it runs as a replica is cascading from a demoted primary
    // (restarted as a standby to race), not from a writable one.
    let upstream_is_standby = o.db.upstream.as_deref().is_some_and(|upstream| {
        o.peers
            .iter()
            .any(|p| p.reachable && p.name.as_str() == upstream && p.running && p.role == Some(Role::Replica))
    });
    if o.db.streaming && !upstream_is_standby {
        return Err(Refusal::StillStreaming);
    }
    for peer in o.peers.iter().filter(|p| p.reachable && p.name != o.me) {
        if peer.running && peer.role == Some(Role::Primary) {
            return Err(Refusal::PrimaryRunning(peer.name.clone()));
        }
        let rival = peer.can_fail_over && sync::peer_may_take_over(o, cluster, peer);
        if !chosen && rival && peer_is_healthier(o, mine, peer) {
            return Err(Refusal::HealthierMember(peer.name.clone()));
        }
    }
    Ok(mine)
}

/// With `check_timeline`, as in Patroni: why this member may not take over for its timeline, unknown or
/// earlier than the cluster's.
fn behind_cluster_timeline(o: &Observation, cluster: &ClusterView) -> Option<Refusal> {
    if !o.policy.check_timeline {
        return None;
    }
    match (o.db.timeline, cluster.timeline) {
        (None, _) => Some(Refusal::TimelineUnknown),
        (Some(mine), Some(theirs)) if mine < theirs => {
            Some(Refusal::BehindTimeline { mine, cluster: theirs })
        }
        _ => None,
    }
}

/// Further ahead; or as far, with a higher `failover_priority`; or both equal and a smaller name. A peer
/// whose position is unknown, or cannot be compared with mine, is not: the lease decides between us.
fn peer_is_healthier(o: &Observation, mine: Position, peer: &PeerView) -> bool {
    match peer.position.and_then(|theirs| theirs.partial_cmp(&mine)) {
        Some(std::cmp::Ordering::Greater) => true,
        Some(std::cmp::Ordering::Equal) => {
            (peer.failover_priority, std::cmp::Reverse(&peer.name))
                > (o.policy.failover_priority, std::cmp::Reverse(&o.me))
        }
        _ => false,
    }
}

/// How to stream from the lease holder, if it published its record.
fn leader_upstream(cluster: &ClusterView) -> Option<Upstream> {
    let (holder, _) = cluster.leader.as_ref()?;
    Some(cluster.members.get(holder)?.upstream(holder.as_str()))
}
