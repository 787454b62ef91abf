//! What this member tells the others: its member record in the store (written when it changes, or when
//! half its ttl has passed) and the status its REST API serves (`GET /patroni`, the health checks).

use super::identity::Identity;
use super::lease_keeper::before;
use crate::config::DynamicConfig;
use crate::db::{DataState, DbState, ReplicaLink, Role};
use crate::member::MemberRecord;
use crate::status::SharedStatus;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use vigil_api::{NodeStatus, PatroniInfo, Replication, Xlog};
use vigil_dcs::{Condition, DcsNode, FencingToken, Key, RaftStatus};
use vigil_fencing::HolderDeadline;
use vigil_policy::sync::sync_health;
use vigil_policy::{ClusterView, Refusal, Veto};

/// This member's standing in the cluster, as the loop knows it this cycle.
pub(super) struct Standing {
    /// The token of the lease it holds.
    pub token: Option<FencingToken>,
    /// Its lease's deadline: `/primary` turns 503 the moment it passes.
    pub deadline: Option<HolderDeadline>,
    /// How long a store request may be waited for (`LeaseKeeper::wait_limit`).
    pub wait_limit: Option<Instant>,
    /// A synchronous standby shutting down: its record says `stopping`.
    pub leaving: bool,
    /// While nobody holds the lease: why this member does not take over ("why no failover?").
    pub refusal: Option<Refusal>,
    /// What refused this member's last promotion, less than `ttl` ago.
    pub promotion_refused: Option<Veto>,
    /// The database was observed after a store read showed the lease free.
    pub observed_leaderless: bool,
    /// The free period it was seen free in, named by the latest grant before it.
    pub leaderless_after: Option<FencingToken>,
    /// Promotions this agent carried out.
    pub failovers: u64,
    /// The watchdog is required and could not be armed.
    pub watchdog_failed: bool,
    /// The restart scheduled through the API, with its schedule.
    pub scheduled_restart: Option<vigil_api::RestartRequest>,
}

/// Writes the member record and the REST status.
pub(super) struct Publisher {
    dcs: Arc<DcsNode>,
    status: Arc<SharedStatus>,
    /// This member's `conn_url`, in its engine's words.
    conn_url: String,
    /// The member record last written to the store, and when.
    published: Option<(MemberRecord, Instant)>,
    /// When the store was last read successfully (Unix seconds), for `dcs_last_seen`.
    dcs_last_seen: u64,
    /// The largest fencing token seen: this member's own, or the lease holder's in the store.
    known_token: Option<FencingToken>,
}

impl Publisher {
    /// A publisher whose loop starts now, under `dynamic` (`/liveness` counts from here).
    pub(super) fn new(
        dcs: Arc<DcsNode>,
        status: Arc<SharedStatus>,
        conn_url: String,
        dynamic: &DynamicConfig,
    ) -> Self {
        status.cycle_completed(dynamic.loop_wait, dynamic.ttl);
        status.set_timings(dcs.timings());
        Publisher { dcs, status, conn_url, published: None, dcs_last_seen: 0, known_token: None }
    }

    /// Notes that the store was read just now.
    pub(super) fn store_seen(&mut self) {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        self.dcs_last_seen = since_epoch.map_or(0, |d| d.as_secs());
    }

    /// Writes the member record at the next publication, changed or not.
    pub(super) fn forget(&mut self) {
        self.published = None;
    }

    /// The REST status this publisher writes.
    pub(super) fn status(&self) -> Arc<SharedStatus> {
        self.status.clone()
    }

    /// The REST status no longer claims a lease (the agent is stopping).
    pub(super) fn no_deadline(&self) {
        self.status.set_deadline(None);
    }

    /// Publishes the member record (when it changed, or when half its ttl has passed; only while the
    /// store can be read) and the REST status.
    pub(super) async fn publish(
        &mut self,
        me: &Identity,
        standing: &Standing,
        db: &DbState,
        cluster: Option<&ClusterView>,
        dynamic: &DynamicConfig,
        reason: &str,
    ) {
        let mut record = member_record(me, &self.conn_url, db, dynamic, reason, standing);
        // A standby cluster's lease holder replicates from the remote primary: Patroni's standby leader.
        if standing.token.is_some() && dynamic.standby_cluster.is_some() && record.role == "replica" {
            record.role = "standby_leader".to_owned();
        }
        let fresh = self
            .published
            .as_ref()
            .is_some_and(|(last, at)| *last == record && at.elapsed() < dynamic.ttl / 2);
        if cluster.is_some() && !fresh {
            let json = serde_json::to_value(&record).unwrap_or_default();
            let key = Key::Member(me.name.clone());
            let put = self.dcs.put(&key, json, Condition::Always, Some(dynamic.ttl));
            match before(standing.wait_limit, put).await {
                Some(Ok(_)) => self.published = Some((record.clone(), Instant::now())),
                Some(Err(e)) => tracing::debug!(error = %e, "member record not published"),
                None => tracing::debug!("member record not published before the lease's deadline"),
            }
        }
        let raft = self.dcs.raft_status();
        self.known_token = newest_token(self.known_token, standing.token, cluster);
        let shown =
            Shown { me, standing, raft, dcs_last_seen: self.dcs_last_seen, known_token: self.known_token };
        self.status.set(node_status(&shown, db, &record, cluster, dynamic));
        self.status.set_deadline(standing.deadline);
        self.status.cycle_completed(dynamic.loop_wait, dynamic.ttl);
    }
}

/// The largest of `known`, this member's own token `own` and the lease holder's token in `cluster`: the
/// token of the current primary's lease as last seen, kept while no lease is held or the store is unread.
fn newest_token(
    known: Option<FencingToken>,
    own: Option<FencingToken>,
    cluster: Option<&ClusterView>,
) -> Option<FencingToken> {
    let held = cluster.and_then(|c| c.leader.as_ref()).map(|(_, token)| *token);
    known.max(own).max(held)
}

/// The member record of this member, reached at `conn_url`, with its database in state `db`.
fn member_record(
    me: &Identity,
    conn_url: &str,
    db: &DbState,
    dynamic: &DynamicConfig,
    reason: &str,
    standing: &Standing,
) -> MemberRecord {
    let (state, role) = MemberRecord::state_and_role(db);
    let state = if standing.leaving { "stopping" } else { state };
    MemberRecord {
        conn_url: conn_url.to_owned(),
        proxy_url: me.proxy_url.clone(),
        api_url: me.api_url.clone(),
        state: state.into(),
        role: role.into(),
        host: me.db_host.clone(),
        port: me.db_port,
        position: db.position,
        xlog_location: db.position.map(|p| p.at),
        replay_lsn: db.replay_position,
        timeline: db.timeline,
        replication_state: db.streaming.then(|| "streaming".to_owned()),
        reason: Some(reason.to_owned()),
        why: standing.refusal.as_ref().map(Refusal::to_string),
        tags: me.tags.clone(),
        sync_state: db
            .is_running_primary()
            .then(|| sync_health(db, dynamic.synchronous_mode.into()).as_str().to_owned()),
        pending_restart: !db.pending_restart.is_empty(),
        pending_restart_reason: MemberRecord::pending_changes(db),
        diverged: db.diverged.clone(),
        data_set_aside: db.data_set_aside.clone(),
        upstream: db.upstream.clone().filter(|_| role == "replica"),
    }
}

/// What the status shows beyond the database and the member record.
struct Shown<'a> {
    me: &'a Identity,
    standing: &'a Standing,
    raft: RaftStatus,
    dcs_last_seen: u64,
    known_token: Option<FencingToken>,
}

/// The status `GET /patroni` serves.
fn node_status(
    shown: &Shown<'_>,
    db: &DbState,
    record: &MemberRecord,
    cluster: Option<&ClusterView>,
    dynamic: &DynamicConfig,
) -> NodeStatus {
    let me = shown.me;
    let primary = db.role == Some(Role::Primary);
    let sync = cluster
        .and_then(|c| c.sync.as_ref())
        .filter(|s| !primary && s.sync_standby.iter().any(|n| n == me.name.as_str()));
    let system_id = match &db.data {
        DataState::Present { system_id, .. } => Some(system_id.clone()),
        DataState::Missing => None,
    };
    let time = |at: Option<SystemTime>| at.map(|at| vigil_api::Schedule::from(at).to_string());
    NodeStatus {
        state: record.state.clone(),
        role: record.role.clone(),
        postmaster_start_time: time(db.report.started_at),
        xlog: Xlog {
            location: db.position.filter(|_| primary).map(|p| p.at),
            received_location: db.position.filter(|_| !primary).map(|p| p.at),
            replayed_location: db.replay_position.map(|p| p.at),
            replayed_timestamp: time(db.report.replayed_at).filter(|_| !primary),
            paused: db.report.replay_paused.filter(|_| !primary),
        },
        timeline: db.timeline,
        replication_state: record.replication_state.clone(),
        database_system_identifier: system_id,
        tags: me.tags.clone(),
        patroni: PatroniInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            scope: me.scope.clone(),
            name: me.name.to_string(),
        },
        vigil: vigil_api::VigilInfo {
            fencing_token: shown.standing.token.map(|t| t.0),
            leader_fencing_token: shown.known_token.map(|t| t.0),
            lease_remaining_ms: None,
            last_decision: record.reason.clone(),
            why: record.why.clone(),
            observed_leaderless: shown.standing.observed_leaderless,
            leaderless_after: shown.standing.leaderless_after.map(|t| t.0),
            promotion_refused: shown
                .standing
                .promotion_refused
                .map(|veto| Refusal::PromotionRefused(veto).to_string()),
            primary_optime: cluster.and_then(|c| c.optime).map(|p| p.at),
            position: db.position,
            synchronous_mode: Some(dynamic.synchronous_mode.as_str().to_owned()),
            sync_state: record.sync_state.clone(),
            diverged: record.diverged.clone(),
            maximum_lag_on_failover: Some(dynamic.maximum_lag_on_failover),
            data_set_aside: record.data_set_aside.clone(),
            failovers_total: shown.standing.failovers,
            raft: Some(vigil_api::RaftInfo {
                term: shown.raft.term,
                leader: shown.raft.leader,
                voters: shown.raft.voters.iter().copied().collect(),
                commit_index: shown.raft.committed,
                applied_index: shown.raft.last_applied,
            }),
        },
        server_version: db.server_version,
        dcs_last_seen: shown.dcs_last_seen,
        pause: dynamic.pause,
        cluster_unlocked: cluster.is_some_and(|c| c.leader.is_none()),
        watchdog_failed: shown.standing.watchdog_failed,
        scheduled_restart: shown.standing.scheduled_restart.clone(),
        pending_restart: record.pending_restart,
        pending_restart_reason: record.pending_restart_reason.clone(),
        sync_standby: sync.is_some_and(|s| s.quorum.is_none()),
        quorum_standby: sync.is_some_and(|s| s.quorum.is_some()),
        replication: db.replicas.iter().map(shown_replication).collect(),
    }
}

/// A replica link as Patroni shows it in `GET /patroni` (`replication`).
fn shown_replication(link: &ReplicaLink) -> Replication {
    let shown = link.shown.clone();
    Replication {
        usename: shown.user,
        application_name: link.name.clone(),
        client_addr: shown.address,
        state: shown.state,
        sync_state: shown.sync_state,
        sync_priority: shown.sync_priority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Position;
    use std::collections::BTreeMap;
    use vigil_dcs::MemberName;

    fn me() -> Identity {
        Identity {
            name: MemberName::new("a").expect("name"),
            scope: "test".into(),
            api_url: "http://10.0.0.1:8008/patroni".into(),
            db_host: "10.0.0.1".into(),
            db_port: 5432,
            tags: BTreeMap::new(),
            can_fail_over: true,
            failover_priority: 1,
            bootstrap_dcs: DynamicConfig::default(),
            parameters: BTreeMap::new(),
            use_pg_rewind: None,
            discard: Default::default(),
            proxy_url: None,
            config_path: None,
            api_client_tls: Default::default(),
            api_read_auth: None,
        }
    }

    fn running(role: Role, position: u64) -> DbState {
        let data = DataState::Present { system_id: "7".into(), was_primary: role == Role::Primary };
        let position = Some(Position::wal(position));
        DbState { running: true, role: Some(role), timeline: Some(2), position, ..DbState::stopped(data) }
    }

    fn raft() -> RaftStatus {
        RaftStatus {
            node_id: 1,
            term: 3,
            leader: Some(1),
            voters: [1, 2, 3].into(),
            nodes: BTreeMap::new(),
            lag: BTreeMap::new(),
            last_applied: None,
            purged: None,
            committed: None,
        }
    }

    fn standing(leaving: bool, refusal: Option<Refusal>) -> Standing {
        Standing {
            token: Some(FencingToken(9)),
            deadline: None,
            wait_limit: None,
            leaving,
            refusal,
            promotion_refused: None,
            observed_leaderless: false,
            leaderless_after: None,
            failovers: 2,
            watchdog_failed: false,
            scheduled_restart: None,
        }
    }

    #[test]
    fn the_record_and_status_say_what_the_database_is() {
        let dynamic = DynamicConfig::default();
        let primary = running(Role::Primary, 0x100);
        let url = "postgres://10.0.0.1:5432/postgres";
        let renewed = "primary: lease renewed";
        let record = member_record(&me(), url, &primary, &dynamic, renewed, &standing(false, None));
        assert_eq!((record.state.as_str(), record.role.as_str()), ("running", "primary"));
        assert_eq!(record.conn_url, url);
        assert_eq!(record.position, Some(Position::wal(0x100)));
        assert_eq!(record.xlog_location, Some(0x100), "Patroni's view: the LSN as a number");
        assert!(record.sync_state.is_some(), "a primary says how its synchronous replication stands");
        assert_eq!((record.proxy_url, record.why), (None, None));
        let proxied = Identity { proxy_url: Some("postgres://10.0.0.9:6432/postgres".into()), ..me() };
        let aside =
            DbState { data_set_aside: Some("/d/data.diverged-20261207T054040Z".into()), ..primary.clone() };
        let record = member_record(&proxied, url, &aside, &dynamic, "primary", &standing(false, None));
        assert_eq!(record.proxy_url.as_deref(), Some("postgres://10.0.0.9:6432/postgres"));
        assert_eq!(record.data_set_aside.as_deref(), Some("/d/data.diverged-20261207T054040Z"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["proxy_url"], "postgres://10.0.0.9:6432/postgres", "Patroni's member key");

        let standing = standing(false, None);
        let shown = Shown {
            me: &me(),
            standing: &standing,
            raft: raft(),
            dcs_last_seen: 1_700_000_000,
            known_token: Some(FencingToken(9)),
        };
        let status = node_status(&shown, &primary, &record, None, &dynamic);
        assert_eq!((status.xlog.location, status.xlog.received_location), (Some(0x100), None));
        assert_eq!((status.vigil.fencing_token, status.vigil.failovers_total), (Some(9), 2));
        assert_eq!(status.vigil.leader_fencing_token, Some(9));
        assert_eq!(status.database_system_identifier.as_deref(), Some("7"));

        let replica = running(Role::Replica, 0x80);
        let leaving = self::standing(true, None);
        let record = member_record(&me(), url, &replica, &dynamic, "following a", &leaving);
        assert_eq!(
            (record.state.as_str(), record.role.as_str()),
            ("stopping", "replica"),
            "a leaving standby"
        );
        let status = node_status(&shown, &replica, &record, None, &dynamic);
        assert_eq!((status.xlog.location, status.xlog.received_location), (None, Some(0x80)));
    }

    #[test]
    fn a_member_that_does_not_take_over_says_why_in_its_record_and_status() {
        let dynamic = DynamicConfig::default();
        let replica = running(Role::Replica, 0x80);
        let url = "postgres://10.0.0.1:5432/postgres";
        let refused = standing(false, Some(Refusal::NoFailover));
        let record =
            member_record(&me(), url, &replica, &dynamic, "not taking over: nofailover tag", &refused);
        assert_eq!(record.why.as_deref(), Some("nofailover tag"));
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["why"], "nofailover tag");
        let shown =
            Shown { me: &me(), standing: &refused, raft: raft(), dcs_last_seen: 0, known_token: None };
        let status = node_status(&shown, &replica, &record, None, &dynamic);
        assert_eq!(status.vigil.why.as_deref(), Some("nofailover tag"));
    }

    #[test]
    fn the_known_token_is_the_newest_lease_seen_and_never_goes_back() {
        let view = |leader: Option<u64>| ClusterView {
            leader: leader.map(|t| (MemberName::new("b").expect("name"), FencingToken(t))),
            ..ClusterView::default()
        };
        let token = |t: u64| Some(FencingToken(t));
        assert_eq!(newest_token(None, None, None), None, "no lease seen yet");
        assert_eq!(newest_token(None, None, Some(&view(Some(5)))), token(5), "a replica: the holder's");
        assert_eq!(newest_token(token(5), None, Some(&view(None))), token(5), "kept while no lease is held");
        assert_eq!(newest_token(token(5), None, None), token(5), "kept while the store is unread");
        assert_eq!(newest_token(token(5), token(9), Some(&view(Some(9)))), token(9), "the holder: its own");
        assert_eq!(newest_token(token(9), None, Some(&view(Some(4)))), token(9), "never goes back");
        assert_eq!(newest_token(token(9), token(9), Some(&view(Some(12)))), token(12), "a newer grant");
    }
}
