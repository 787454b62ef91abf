//! The answers of `GET /cluster` and `GET /history`, made from the cluster record (pure: the caller
//! reads the store).

use crate::config::{DynamicConfig, SynchronousMode};
use crate::ha::ClusterView;
use crate::member::MemberRecord;
use std::collections::BTreeMap;
use vigil_api::{Cluster, ClusterMember, HistoryEntry, Lag, ScheduledSwitchover};
use vigil_dcs::{ClusterState, Key, MemberName, RaftStatus};

/// `GET /cluster` from the cluster record `view`, the members' `records`, under the dynamic configuration
/// in force.
pub(super) fn cluster(
    scope: &str,
    view: &ClusterView,
    records: &BTreeMap<MemberName, MemberRecord>,
    dynamic: &DynamicConfig,
) -> Cluster {
    let optime = view.optime;
    let leader = view.leader.as_ref().map(|(name, _)| name.clone());
    // The `sync` key counts only in its mode, and only while it is the current primary's.
    let sync = view.sync.as_ref().filter(|s| {
        dynamic.synchronous_mode != SynchronousMode::Off && s.leader.is_some() && s.leader == leader
    });
    let members = records
        .iter()
        .map(|(name, m)| {
            let listed = sync.filter(|s| s.sync_standby.iter().any(|n| n == name.as_str()));
            let role = match listed {
                _ if Some(name) == leader.as_ref() && m.role == "standby_leader" => "standby_leader",
                _ if Some(name) == leader.as_ref() => "leader",
                Some(s) if s.quorum.is_some() => "quorum_standby",
                Some(_) => "sync_standby",
                None => "replica",
            };
            let lag = match (optime, m.position) {
                (Some(primary), Some(mine)) if role != "leader" => {
                    mine.lag_behind(primary).map_or(Lag::Unknown, Lag::Behind)
                }
                (_, Some(_)) if role == "leader" => Lag::Behind(0),
                _ => Lag::Unknown,
            };
            ClusterMember {
                name: name.to_string(),
                role: role.to_owned(),
                state: m.replication_state.clone().unwrap_or_else(|| m.state.clone()),
                api_url: m.api_url.clone(),
                host: m.host.clone(),
                port: m.port,
                timeline: m.timeline,
                lsn: m.position.map(|p| p.to_string()),
                lag,
                receive_lsn: m.position.filter(|_| role != "leader").map(|p| p.to_string()),
                replay_lsn: m.replay_lsn.map(|p| p.to_string()),
                tags: m.tags.clone(),
                reason: m.reason.clone(),
                // Only while nobody holds the lease: a record written just before a new primary took
                // over may still carry its member's refusal for a cycle.
                why: m.why.clone().filter(|_| leader.is_none()),
                sync_state: m.sync_state.clone(),
                pending_restart: m.pending_restart,
                pending_restart_reason: m.pending_restart.then(|| m.pending_restart_reason.clone()),
                diverged: m.diverged.clone(),
                data_set_aside: m.data_set_aside.clone(),
                proxy_url: m.proxy_url.clone(),
                upstream: m.upstream.clone(),
            }
        })
        .collect();
    Cluster {
        scope: scope.to_owned(),
        members,
        fencing_token: view.leader.as_ref().map(|(_, token)| token.0),
        synchronous_mode: (dynamic.synchronous_mode != SynchronousMode::Off)
            .then(|| dynamic.synchronous_mode.as_str().to_owned()),
        pause: dynamic.pause,
        scheduled_switchover: view.switchover.as_ref().map(|request| ScheduledSwitchover {
            at: request.scheduled_at,
            from: request.leader.as_ref().map(|n| n.to_string()),
            to: request.candidate.as_ref().map(|n| n.to_string()),
        }),
    }
}

/// The witnesses of the Raft membership `raft`, as `GET /cluster` lists them: role `witness`, state
/// `voter` or `learner`, the host and port of their Raft address.
pub(super) fn witnesses(raft: &RaftStatus) -> Vec<ClusterMember> {
    let witnesses = raft.nodes.iter().filter(|(_, node)| node.witness && !node.name.is_empty());
    witnesses
        .map(|(id, node)| {
            let (host, port) = node.addr.rsplit_once(':').unwrap_or((&node.addr, ""));
            ClusterMember {
                name: node.name.clone(),
                role: "witness".to_owned(),
                state: super::raft_members::info(raft, *id, node).raft_role,
                host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
                port: port.parse().unwrap_or_default(),
                ..Default::default()
            }
        })
        .collect()
}

/// `GET /history`: the `history` key's entries (none while it is absent). A value that is not a list
/// (written past the agents) is answered as no history, with a warning.
pub(super) fn history(state: &ClusterState) -> Vec<HistoryEntry> {
    let Some(stored) = state.keys.get(&Key::History) else {
        return Vec::new();
    };
    serde_json::from_value(stored.value.clone()).unwrap_or_else(|e| {
        tracing::warn!(key = %Key::History, error = %e, "history in the store is not a list: answering none");
        Vec::new()
    })
}

/// `GET /events`: the event log, oldest first, each event with its id. An event this agent cannot read
/// (written past the agents) is left out, with a warning.
pub(super) fn events(state: &ClusterState) -> Vec<vigil_api::Event> {
    let read = |stored: &vigil_dcs::StoredEvent| match serde_json::from_value::<vigil_api::Event>(
        stored.event.clone(),
    ) {
        Ok(event) => Some(vigil_api::Event { id: stored.id.0, ..event }),
        Err(e) => {
            tracing::warn!(id = %stored.id, error = %e, "unreadable event left out");
            None
        }
    };
    state.events.iter().filter_map(read).collect()
}

#[cfg(test)]
mod tests;
