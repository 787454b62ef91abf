//! Which cluster this node belongs to, and the check every incoming Raft RPC passes.
//!
//! Every RPC carries a [`RpcHeader`]: the sender's namespace, scope, cluster id and node id. A node refuses
//! RPCs from another namespace, scope or cluster id. A node that has no cluster id yet (a fresh node about to be added)
//! adopts the first one it is sent and keeps it on disk.

use super::storage::Storage;
use super::NodeId;
use crate::error::DcsError;
use serde::{Deserialize, Serialize};
use std::sync::RwLock;

const CLUSTER_ID_META: &str = "cluster_id";
const NODE_ID_META: &str = "node_id";
const JOINED_META: &str = "joined";

/// Sent with every Raft RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RpcHeader {
    /// The sender's scope (cluster name).
    pub scope: String,
    /// The sender's namespace (nodes that send none predate it, and ran in the default one).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The sender's cluster id, if it has one.
    pub cluster_id: Option<String>,
    /// The sender's Raft node id.
    pub from: NodeId,
}

fn default_namespace() -> String {
    crate::DEFAULT_NAMESPACE.to_owned()
}

/// A Raft RPC with its header.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Envelope<T> {
    /// Who sends it.
    pub header: RpcHeader,
    /// The openraft request.
    pub rpc: T,
}

/// This node's identity.
pub(crate) struct Identity {
    node_id: NodeId,
    joined: bool,
    scope: String,
    namespace: String,
    cluster_id: RwLock<Option<String>>,
    storage: Storage,
}

impl Identity {
    /// Loads the cluster id kept in `storage`, if any, and checks that the node id it keeps is `node_id`
    /// (keeping it on a first start): a data directory serves one node id for good. `joined` (kept too)
    /// says the id was handed out by an existing group.
    pub(crate) async fn load(
        node_id: NodeId,
        joined: bool,
        scope: String,
        namespace: String,
        storage: Storage,
    ) -> Result<Self, DcsError> {
        match Self::stored_node_id(&storage).await? {
            Some(stored) if stored != node_id => {
                return Err(DcsError::Invalid(format!(
                    "the Raft data directory holds the log of node {stored}, not of node {node_id}"
                )))
            }
            Some(_) => {}
            None => storage.write_meta(NODE_ID_META, node_id.to_string().as_bytes()).await?,
        }
        if joined {
            storage.write_meta(JOINED_META, b"true").await?;
        }
        let joined = storage.read_meta(JOINED_META).await?.is_some();
        let stored = storage.read_meta(CLUSTER_ID_META).await?;
        let cluster_id = stored.map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(Identity { node_id, joined, scope, namespace, cluster_id: RwLock::new(cluster_id), storage })
    }

    /// The node id kept in `storage`, if any.
    pub(crate) async fn stored_node_id(storage: &Storage) -> Result<Option<NodeId>, DcsError> {
        let Some(bytes) = storage.read_meta(NODE_ID_META).await? else { return Ok(None) };
        let text = String::from_utf8_lossy(&bytes);
        text.parse()
            .map(Some)
            .map_err(|_| DcsError::Storage(format!("stored node id {text:?} is not a number")))
    }

    /// This node's Raft id.
    pub(crate) fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Whether this node joined an existing group (it never forms one).
    pub(crate) fn joined(&self) -> bool {
        self.joined
    }

    /// This node's scope.
    pub(crate) fn scope(&self) -> &str {
        &self.scope
    }

    /// The cluster id, once the group was initialized or this node was added to one.
    pub(crate) fn cluster_id(&self) -> Option<String> {
        // A poisoned lock means a panic while holding it, which only the assignment below does; the value
        // is a plain Option and stays valid.
        self.cluster_id.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the cluster id on disk and in memory.
    pub(crate) async fn set_cluster_id(&self, id: &str) -> Result<(), DcsError> {
        self.storage.write_meta(CLUSTER_ID_META, id.as_bytes()).await?;
        *self.cluster_id.write().unwrap_or_else(|e| e.into_inner()) = Some(id.to_owned());
        Ok(())
    }

    /// The header this node sends.
    pub(crate) fn header(&self) -> RpcHeader {
        RpcHeader {
            scope: self.scope.clone(),
            namespace: self.namespace.clone(),
            cluster_id: self.cluster_id(),
            from: self.node_id,
        }
    }

    /// Refuses a node of another namespace, naming both.
    fn check_namespace(&self, other: &RpcHeader) -> Result<(), DcsError> {
        if other.namespace == self.namespace {
            return Ok(());
        }
        Err(DcsError::Refused(format!(
            "node {} belongs to namespace {:?}, this node to namespace {:?}",
            other.from, other.namespace, self.namespace
        )))
    }

    /// Checks that a node about to be added to this group (described by its own header) belongs to no
    /// other cluster or scope.
    pub(crate) fn check_joiner(&self, joiner: &RpcHeader) -> Result<(), DcsError> {
        self.check_namespace(joiner)?;
        let mine = self.cluster_id();
        let other_cluster = joiner.cluster_id.is_some() && joiner.cluster_id != mine;
        if joiner.scope != self.scope || other_cluster {
            return Err(DcsError::Refused(format!(
                "node {} belongs to cluster {} of scope {:?}; this is cluster {} of scope {:?}",
                joiner.from,
                joiner.cluster_id.as_deref().unwrap_or("(none)"),
                joiner.scope,
                mine.as_deref().unwrap_or("(none)"),
                self.scope
            )));
        }
        Ok(())
    }

    /// Admits an incoming RPC's sender by namespace, scope and cluster id, adopting the sender's cluster id when this
    /// node has none. A sender without a cluster id is refused by a node that has one. Membership of the sender is checked by the caller, which knows the Raft state.
    pub(crate) async fn admit(&self, header: &RpcHeader) -> Result<(), DcsError> {
        self.check_namespace(header)?;
        if header.scope != self.scope {
            return Err(DcsError::Refused(format!(
                "node {} belongs to scope {:?}, this node to scope {:?}",
                header.from, header.scope, self.scope
            )));
        }
        match (self.cluster_id(), &header.cluster_id) {
            (Some(mine), Some(theirs)) if &mine != theirs => Err(DcsError::Refused(format!(
                "node {} belongs to cluster {theirs}, this node to cluster {mine}",
                header.from
            ))),
            (Some(_), None) => Err(DcsError::Refused(format!(
                "node {} has no cluster id: it was never initialized nor added to this cluster",
                header.from
            ))),
            (None, Some(theirs)) => self.set_cluster_id(theirs).await,
            _ => Ok(()),
        }
    }
}
