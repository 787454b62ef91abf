//! The cycle's first step: observe the database (fencing it at once if the lease lapsed) and read the
//! cluster record, with the dynamic configuration in it.

use super::decide_fast_fence;
use super::lease_keeper::before;
use super::run::Agent;
use super::view::{cluster_view_with, dynamic_or_last_good, member_records};
use crate::db::{Database, DbState};
use crate::member::MemberRecord;
use std::collections::BTreeMap;
use std::time::Instant;
use vigil_dcs::MemberName;
use vigil_policy::{ClusterView, LeaseHold};

/// What one cycle saw of the database and the store.
pub(super) struct Seen {
    /// When the database was first looked at: a server found down was down then.
    pub(super) observed_at: Instant,
    /// The database (observed again after a fast fence).
    pub(super) db: DbState,
    /// The cluster record; `None` when the store could not be read.
    pub(super) cluster: Option<ClusterView>,
    /// The members' records from the same read (empty when it failed), for the peers' REST addresses.
    pub(super) records: BTreeMap<MemberName, MemberRecord>,
    /// When the store read ended.
    pub(super) now: Instant,
    /// This agent's hold on the lease then.
    pub(super) lease: LeaseHold,
}

impl<D: Database> Agent<D> {
    /// Observes the database, then reads the store (see [`Agent::read_cluster`]).
    pub(super) async fn observe(&mut self) -> Seen {
        // A server found down was down when the look began (observing a hung one takes seconds).
        let observed_at = Instant::now();
        let mut db = self.db.observe().await;
        // A hung server makes observing slow: the renewal must not wait for the store read below.
        if self.lease.renewal_is_due(Instant::now()) && self.holds_lease() {
            let known = self.dynamic.clone();
            self.renew(&known).await;
        }
        if let Some(fence) =
            decide_fast_fence(self.lease.hold(Instant::now()), &db, self.memory.fenced, self.dynamic.pause)
        {
            // Fencing does not wait for a store read that may itself take retry_timeout.
            tracing::warn!(reason = %fence.reason, actions = ?fence.actions, "fencing before reading the store");
            for action in fence.actions {
                self.fence(action, &fence.reason).await;
            }
            db = self.db.observe().await;
            let deadline = self.lease.grant().map(|g| g.deadline.instant());
            let after = deadline.map(|d| Instant::now().saturating_duration_since(d).as_millis() as u64);
            let token = self.lease.last_token();
            tracing::warn!(?token, fenced_ms_after_deadline = ?after, running = db.running, "fenced");
        }
        let (cluster, records) = self.read_cluster(&db).await;
        let now = Instant::now();
        self.memory.read_store(cluster.as_ref(), observed_at, now);
        Seen { observed_at, db, cluster, records, now, lease: self.lease.hold(now) }
    }

    /// Reads the cluster record, not waiting past the lease's deadline while `db` runs as a primary, and
    /// takes the dynamic configuration from it; the policy's view of it, and the members' records.
    async fn read_cluster(
        &mut self,
        db: &DbState,
    ) -> (Option<ClusterView>, BTreeMap<MemberName, MemberRecord>) {
        let limit = self.lease.wait_limit(Instant::now(), db.is_running_primary());
        let read = before(limit, self.dcs.read()).await.unwrap_or({
            Err(vigil_dcs::DcsError::NoQuorum {
                op: "read (given up at the lease's deadline)",
                waited: self.dynamic.lease_timing().retry_timeout,
            })
        });
        // A stored config that cannot be used, or a failed read, leaves the last good one in force.
        if let Ok(state) = &read {
            let fresh = dynamic_or_last_good(state, &self.dynamic, &self.me.bootstrap_dcs);
            if let Some(note) =
                fresh.timing_note().filter(|_| fresh.lease_timing() != self.dynamic.lease_timing())
            {
                tracing::warn!("{note}");
            }
            self.dynamic = fresh;
        }
        // Like ttl and loop_wait, retry_timeout follows the stored configuration.
        self.dcs.set_op_timeout(self.dynamic.lease_timing().retry_timeout);
        self.db.die_with_agent(!self.dynamic.pause);
        match &read {
            Ok(state) => {
                self.publisher.store_seen();
                let records = member_records(state);
                (Some(cluster_view_with(state, &records)), records)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the cluster store");
                (None, BTreeMap::new())
            }
        }
    }
}
