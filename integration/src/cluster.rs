//! A store cluster inside the test process, over real HTTPS with mutual TLS on 127.0.0.1 (a throwaway CA,
//! one certificate for 127.0.0.1 that every node shows): each node is a `DcsNode` behind its own server,
//! with its own data directory, and can be stopped and restarted from that directory.

use crate::{wait_for, Server};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use vigil_dcs::{DcsConfig, DcsNode, NodeId, RaftMember, RaftSecurity, RaftTls};

/// How long a test waits for elections, catch-up and the like.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running cluster of store nodes.
pub struct TestCluster {
    dir: tempfile::TempDir,
    addrs: BTreeMap<NodeId, SocketAddr>,
    running: BTreeMap<NodeId, (DcsNode, Server)>,
    tweak: fn(&mut DcsConfig),
}

impl TestCluster {
    /// Starts nodes `1..=size`, initializes the group on node 1 and waits for a Raft leader.
    pub async fn start(size: u64) -> TestCluster {
        Self::start_with(size, |_| {}).await
    }

    /// Like [`TestCluster::start`], with `tweak` applied to every node's settings.
    pub async fn start_with(size: u64, tweak: fn(&mut DcsConfig)) -> TestCluster {
        let cluster = Self::start_unformed(size, tweak).await;
        cluster.node(1).initialize(cluster.members()).await.expect("initialize");
        cluster.leader().await;
        cluster
    }

    /// Starts nodes `1..=size` that do not form a group yet.
    pub async fn start_unformed(size: u64, tweak: fn(&mut DcsConfig)) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = vigil_api::pki::Authority::new("test cluster CA").expect("CA");
        ca.write(dir.path(), "node", &["127.0.0.1"]).expect("certificates");
        let mut cluster = TestCluster { dir, addrs: BTreeMap::new(), running: BTreeMap::new(), tweak };
        for id in 1..=size {
            cluster.launch(id, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        }
        cluster
    }

    /// Every node's id and Raft address.
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        self.addrs.iter().map(|(id, a)| (*id, a.to_string())).collect()
    }

    /// The settings node `id` runs with.
    pub fn config(&self, id: NodeId) -> DcsConfig {
        let mut config = DcsConfig::new(id, "test", self.dir.path().join(format!("node{id}")));
        config.op_timeout = Duration::from_secs(2);
        let tls = RaftTls {
            certfile: self.dir.path().join("node.pem"),
            keyfile: Some(self.dir.path().join("node.key")),
            cafile: self.dir.path().join("ca.pem"),
        };
        config.security = RaftSecurity { tls: Some(tls), password: None };
        (self.tweak)(&mut config);
        config
    }

    /// Node `id`, which must be running.
    pub fn node(&self, id: NodeId) -> &DcsNode {
        &self.running.get(&id).unwrap_or_else(|| panic!("node {id} is not running")).0
    }

    /// The Raft address of node `id`.
    pub fn addr(&self, id: NodeId) -> SocketAddr {
        self.addrs[&id]
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.running.keys().copied().collect()
    }

    /// Waits until every running node names the same running Raft leader, and returns it.
    pub async fn leader(&self) -> NodeId {
        wait_for("a raft leader all running nodes agree on", PATIENCE, || async {
            let leaders: Vec<_> = self.running.values().map(|(n, _)| n.raft_status().leader).collect();
            let first = leaders.first().copied().flatten()?;
            let agreed = leaders.iter().all(|l| *l == Some(first)) && self.running.contains_key(&first);
            agreed.then_some(first)
        })
        .await
    }

    /// Stops node `id` (its server and Raft node), as a crash would, keeping its data directory.
    pub async fn stop(&mut self, id: NodeId) {
        let (node, server) = self.running.remove(&id).unwrap_or_else(|| panic!("node {id} is not running"));
        server.stop().await;
        node.shutdown().await;
    }

    /// Starts node `id` again from its data directory on its old address.
    pub async fn restart(&mut self, id: NodeId) {
        let addr = self.addrs[&id];
        let listener =
            wait_for("the old address to be free", PATIENCE, || async { TcpListener::bind(addr).await.ok() })
                .await;
        self.launch(id, listener).await;
    }

    /// Starts node `id` again from its data directory, on a new address; returns it.
    pub async fn restart_elsewhere(&mut self, id: NodeId) -> SocketAddr {
        self.launch(id, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        self.addrs[&id]
    }

    /// Starts a new, empty node `id` (not a member yet) and returns its address.
    pub async fn start_new(&mut self, id: NodeId) -> SocketAddr {
        self.launch(id, TcpListener::bind("127.0.0.1:0").await.expect("bind")).await;
        self.addrs[&id]
    }

    /// Starts a new, empty node that asks node `via` to join its group, under the id the group hands out;
    /// returns that id. The node is a learner until promoted.
    pub async fn join_new(&mut self, via: NodeId) -> NodeId {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let template = self.config(0);
        let contacts = [self.addr(via).to_string()];
        let (scope, namespace) = (&template.scope, &template.namespace);
        let id =
            vigil_dcs::join(&template.security, scope, namespace, &contacts, RaftMember::at(addr), PATIENCE)
                .await
                .expect("join");
        self.launch(id, listener).await;
        id
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for id in self.running() {
            self.stop(id).await;
        }
    }

    async fn launch(&mut self, id: NodeId, listener: TcpListener) {
        let addr = listener.local_addr().expect("local addr");
        // The data directory's lock is released when the previous incarnation's storage is dropped, which
        // can trail its shutdown by a moment.
        let node = wait_for("the node to start", PATIENCE, || async {
            DcsNode::start(self.config(id))
                .await
                .map_err(|e| tracing::warn!(id, error = %e, "start failed"))
                .ok()
        })
        .await;
        let server = Server::spawn(listener, node.router(), node.tls()).expect("serve");
        self.addrs.insert(id, addr);
        self.running.insert(id, (node, server));
    }
}
