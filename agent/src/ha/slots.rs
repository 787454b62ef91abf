//! Carrying out [`Action::RetainFor`](super::Action::RetainFor): the members' replication slots, the
//! cluster's permanent slots and, on a replica, the copies of the primary's permanent logical slots. Synced
//! when what is retained changes, and every [`SLOT_UPKEEP`] besides: the copies follow the primary's
//! confirmed positions, and the slot of a member that left is dropped after `member_slots_ttl`.

use super::run::Agent;
use super::view::Status;
use crate::config::DynamicConfig;
use crate::db::{Database, Retained};
use std::time::{Duration, Instant};
use vigil_dcs::Key;
use vigil_policy::Observation;

/// How often slots are synced when nothing else changed.
pub(super) const SLOT_UPKEEP: Duration = Duration::from_secs(5);

/// What this server retains for `members` under `dynamic`, with the primary's logical slot positions from
/// the cluster record when this member is a replica.
fn retained(members: Vec<String>, dynamic: &DynamicConfig, o: &Observation) -> Retained {
    let primary = o.cluster.as_ref().filter(|_| !o.db.is_running_primary()).and_then(|cluster| {
        let (holder, _) = cluster.leader.as_ref()?;
        let upstream = cluster.members.get(holder)?.upstream(holder.as_str());
        Some((upstream, cluster.slots.clone()))
    });
    let present = o.cluster.iter().flat_map(|c| c.members.keys()).map(|m| m.to_string()).collect();
    Retained {
        members,
        present,
        permanent: dynamic.slots.clone(),
        ignored: dynamic.ignore_slots.clone(),
        member_slots_ttl: dynamic.member_slots_ttl,
        primary,
    }
}

impl<D: Database> Agent<D> {
    /// Syncs the slots for `members` if what is retained changed or the upkeep is due; a primary then
    /// publishes its permanent logical slots' positions when they moved.
    pub(super) async fn retain(&mut self, members: Vec<String>, dynamic: &DynamicConfig, o: &Observation) {
        let retained = retained(members, dynamic, o);
        let upkeep_due = self.retained_at.is_none_or(|at| at.elapsed() >= SLOT_UPKEEP);
        if self.retained_for.as_ref() == Some(&retained) && !upkeep_due {
            return;
        }
        match self.db.retain_for(&retained).await {
            Ok(positions) => {
                self.retained_for = Some(retained);
                self.retained_at = Some(Instant::now());
                if positions != self.slot_positions {
                    self.slot_positions = positions;
                    if let (Some(optime), true) = (o.db.position, o.db.is_running_primary()) {
                        self.publish_status(optime, true).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "what the replicas need not retained"),
        }
    }

    /// Writes the `status` key: `optime` and the permanent logical slots' positions; `primary` says
    /// whether this member's server runs as a primary.
    pub(super) async fn publish_status(&self, optime: crate::db::Position, primary: bool) {
        let status = Status { optime, slots: self.slot_positions.clone() };
        self.put(Key::Status, &status, "publish optime", primary).await;
    }
}
