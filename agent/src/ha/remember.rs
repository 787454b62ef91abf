//! The cycle's second step: take in what was seen (the guard and the policy's memory follow it), ask the
//! peers while nobody leads, and put it all into the [`Observation`] the policy decides from.

use super::observe::Seen;
use super::peers::probe_peers;
use super::run::Agent;
use crate::config::DynamicConfig;
use crate::db::Database;
use std::time::SystemTime;
use vigil_policy::{LeaseHold, Observation, Policy, SyncPolicy};

impl<D: Database> Agent<D> {
    /// Remembers what this cycle `seen` under `dynamic`; the observation to decide from.
    pub(super) async fn remember(&mut self, seen: Seen, dynamic: &DynamicConfig) -> Observation {
        let Seen { observed_at, db, cluster, records, now, lease } = seen;
        let other_lease =
            cluster.as_ref().and_then(|c| c.leader.as_ref()).filter(|(h, _)| *h != self.me.name);
        self.guard.observe(dynamic, other_lease.map(|(holder, _)| holder));
        if let Some((holder, token)) = other_lease {
            // Should the holder's node die while it leads the Raft group, an election would come first.
            self.dcs.draw_leadership_from(holder, *token);
        }
        let token = self.lease.last_token();
        let leading = matches!(lease, LeaseHold::Valid(_)) && db.is_running_primary();
        self.guard.follow_role(leading, db.is_running_primary(), dynamic.pause, token, self.lease.grant());
        self.memory.observed(&db, lease, observed_at);
        if let Some(lifeline) = &self.lifeline {
            let peers = records.iter().filter(|(name, _)| **name != self.me.name);
            lifeline.tell_peers(peers.map(|(_, record)| record.api_url.clone()).collect());
        }
        if !db.running {
            self.retained_for = None; // a rewind or a clone may replace the slots before it runs again
        }
        let peers = match &cluster {
            Some(c) if c.leader.is_none() && db.running => {
                probe_peers(&self.http, self.me.api_read_auth.as_ref(), &self.me.name, records).await
            }
            _ => Vec::new(),
        };
        let switchover_at = cluster.as_ref().and_then(|c| c.switchover.as_ref()?.scheduled_at);
        self.scheduled_wake = self.next_scheduled(switchover_at);
        Observation {
            now,
            wall_clock: SystemTime::now(),
            me: self.me.name.clone(),
            policy: self.policy(dynamic),
            db,
            cluster,
            lease,
            primary_down_since: self.memory.primary_down_since,
            not_streaming_since: self.memory.not_streaming_since,
            repair_failed: self.memory.repair_failed,
            repaired: self.memory.repaired,
            follow_failures: self.memory.follow_failures,
            peers,
            sync_applied_at: self.memory.sync_applied_at(),
            fenced: self.memory.fenced,
            promotion_refused: self.guard.refused_recently(now, dynamic.ttl),
            observed_leaderless: self.memory.observed_leaderless,
        }
    }

    /// The earlier of a scheduled switchover and this member's scheduled restart.
    fn next_scheduled(&self, switchover_at: Option<vigil_api::Schedule>) -> Option<SystemTime> {
        let restart_at = self.scheduled_restart.as_ref().map(|(at, _)| at.at());
        switchover_at.map(|at| at.at()).into_iter().chain(restart_at).min()
    }

    /// The policy's settings: this member's tags and the dynamic configuration.
    fn policy(&self, dynamic: &DynamicConfig) -> Policy {
        Policy {
            can_fail_over: self.me.can_fail_over,
            failover_priority: self.me.failover_priority,
            maximum_lag_on_failover: dynamic.maximum_lag_on_failover,
            primary_start_timeout: dynamic.primary_start_timeout,
            repair_in_place: dynamic.use_pg_rewind(self.me.use_pg_rewind),
            discard: self.me.discard,
            retain_for_replicas: dynamic.postgresql.use_slots,
            check_timeline: dynamic.check_timeline,
            pause: dynamic.pause,
            loop_wait: dynamic.loop_wait,
            sync: SyncPolicy {
                max_lag: u64::try_from(dynamic.maximum_lag_on_syncnode).ok().filter(|lag| *lag > 0),
                mode: dynamic.synchronous_mode.into(),
                strict: dynamic.synchronous_mode_strict,
                node_count: dynamic.synchronous_node_count,
            },
            replicate_from: self.me.tags.get("replicatefrom").and_then(|v| v.as_str()).map(str::to_owned),
            standby_cluster: dynamic.standby_cluster.as_ref().map(|s| s.upstream()),
            restore_without_primary: self.db.restores_without_primary(),
        }
    }
}
