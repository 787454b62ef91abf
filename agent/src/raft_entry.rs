//! How this agent's store node takes its place in the Raft group.
//!
//! - A data directory that holds a node id keeps it for good.
//! - An empty one, with `raft.join` set, or with `partner_addrs` naming members of a group already
//!   formed without this node, joins that group: the group hands out a new id, never used before, and
//!   adds the node as a learner.
//! - Otherwise the node is one of the initial members, numbered by their sorted addresses, and forms the
//!   group with them ([`DcsNode::form`]).
//!
//! Once running, the node records its address, name and role in the membership (a member that moved
//! keeps its id), and a learner asks to become a voter until it has caught up ([`settle`]).

use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use vigil_dcs::{DcsConfig, DcsError, DcsNode, NodeId, RaftMember};

/// How long one attempt to join, describe or promote may take.
const ATTEMPT: Duration = Duration::from_secs(5);
/// The pause between two attempts.
const RETRY: Duration = Duration::from_secs(1);
/// How often a starting node looks whether the group has reached it.
const MEMBERSHIP_POLL: Duration = Duration::from_millis(100);

/// How this node enters the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// It ran before, under this id.
    Known(NodeId),
    /// It is one of the initial members, under this id.
    Initial(NodeId),
    /// It joined an existing group, which handed out this id.
    Joined(NodeId),
}

impl Entry {
    /// The node id.
    pub fn node_id(&self) -> NodeId {
        match self {
            Entry::Known(id) | Entry::Initial(id) | Entry::Joined(id) => *id,
        }
    }
}

/// This member as the membership records it.
pub fn raft_member(config: &Config) -> RaftMember {
    RaftMember {
        addr: config.raft.self_addr.to_string(),
        name: config.name.to_string(),
        witness: config.is_witness(),
    }
}

/// The members' Raft addresses to ask: `raft.join` first, then `partner_addrs`.
fn contacts(config: &Config) -> Vec<String> {
    config.raft.join.iter().chain(&config.raft.partner_addrs).map(ToString::to_string).collect()
}

/// Finds this node's id (see the module's documentation); a join is retried until the group answers.
pub async fn enter(config: &Config) -> Result<Entry, String> {
    let data_dir = &config.raft.data_dir;
    let stored = vigil_dcs::stored_node_id(data_dir).await.map_err(|e| format!("raft.data_dir: {e}"))?;
    if let Some(id) = stored {
        return Ok(Entry::Known(id));
    }
    let security = config.raft_security();
    let initial = config.raft_members();
    let formed = config.raft.join.is_some()
        || vigil_dcs::formed_without(&security, &config.scope, &initial, &config.raft.self_addr.to_string())
            .await;
    if !formed {
        return Ok(Entry::Initial(config.raft_node_id()));
    }
    let contacts = contacts(config);
    let me = raft_member(config);
    tracing::info!(?contacts, node = %me, "joining the existing Raft group");
    loop {
        match vigil_dcs::join(&security, &config.scope, &config.namespace, &contacts, me.clone(), ATTEMPT)
            .await
        {
            Ok(id) => {
                tracing::info!(node_id = id, "joined the Raft group as a learner");
                return Ok(Entry::Joined(id));
            }
            Err(DcsError::Refused(why)) if why.starts_with("no member accepted") => {
                tracing::warn!("cannot join the Raft group yet, retrying: {why}");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(format!("cannot join the Raft group: {e}")),
        }
    }
}

/// The store settings of this node, entering as `entry`.
pub fn dcs_config(config: &Config, entry: &Entry) -> DcsConfig {
    let mut dcs = DcsConfig::new(entry.node_id(), config.scope.clone(), &config.raft.data_dir);
    dcs.namespace = config.namespace.clone();
    dcs.joined = matches!(entry, Entry::Joined(_));
    dcs.security = config.raft_security();
    dcs
}

/// Records this member in the membership (address, name, witness), then, while it is a learner, asks to
/// become a voter until it has caught up. Runs until done.
pub async fn settle(dcs: Arc<DcsNode>, config: &Config) {
    let me = raft_member(config);
    let contacts = contacts(config);
    let id = dcs.raft_status().node_id;
    // Until the group has reached this node, no member would take its word.
    while !dcs.raft_status().nodes.contains_key(&id) {
        tokio::time::sleep(MEMBERSHIP_POLL).await;
    }
    let mut attempts = 0u32;
    while let Err(e) = dcs.describe(&contacts, me.clone()).await {
        attempts += 1;
        log_retry(attempts, "cannot record this member in the Raft membership yet", &e);
        if matches!(&e, DcsError::Refused(why) if why.contains("cannot rejoin")) {
            tracing::error!(
                node_id = id,
                "this node was removed from the Raft group: it takes no part in it"
            );
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
    attempts = 0;
    while !dcs.raft_status().voters.contains(&id) {
        // An even number of voters is accepted: a group grown one member at a time passes through one.
        match dcs.promote(id, true).await {
            Ok(()) => tracing::info!(node_id = id, "this member is a Raft voter now"),
            Err(e) => {
                attempts += 1;
                log_retry(attempts, "learner not promoted yet", &e);
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Removes this member from the Raft group for good, when its pod is scaled away: its database is stopped
/// and the lease released by then. Whether it left; a failure is logged with what to do instead.
pub async fn leave(dcs: &DcsNode) -> bool {
    let id = dcs.raft_status().node_id;
    // An even number of voters left is accepted: a group shrinks one member at a time.
    match dcs.remove(id, true).await {
        Ok(()) => {
            tracing::info!(node_id = id, "left the Raft group: this pod is scaled away");
            true
        }
        Err(e) => {
            tracing::error!(node_id = id, error = %e, "could not leave the Raft group: remove this member with vigil members remove");
            false
        }
    }
}

/// Empties the Raft data directory of a member that left the group (its store node stopped), so that an
/// agent started on it later joins as a new member rather than as one the group removed.
pub fn forget(data_dir: &std::path::Path) {
    match vigil_dcs::remove_store(data_dir) {
        Ok(()) => {
            tracing::info!(data_dir = %data_dir.display(), "Raft data removed: this member left the group")
        }
        Err(e) => tracing::warn!(data_dir = %data_dir.display(), error = %e, "Raft data not removed"),
    }
}

/// Logs every tenth failure at `warn`, the others at `debug`: the first ones are usual while the group
/// forms or the leader has not reached this node yet.
fn log_retry(attempts: u32, what: &str, e: &DcsError) {
    if attempts.is_multiple_of(10) {
        tracing::warn!(attempts, error = %e, "{what}, retrying");
    } else {
        tracing::debug!(attempts, error = %e, "{what}, retrying");
    }
}
