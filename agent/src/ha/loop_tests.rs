//! The whole loop, with no real database: three agents on one in-process store, each managing a server
//! of a [`FakeCluster`], their REST status served on loopback for the leader race. What the integration
//! tests prove with PostgreSQL, in seconds and on any engine: one primary is elected, a lost primary is
//! replaced by the most advanced replica with a larger fencing token, and the old one rejoins.

use super::identity::Identity;
use super::restart_tests::store;
use super::run::Agent;
use super::Commands;
use crate::config::DynamicConfig;
use crate::db::fake::FakeCluster;
use crate::status::SharedStatus;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use vigil_dcs::{DcsNode, MemberName};

/// Fast timing: a lost primary is replaced within about a second.
fn timing() -> DynamicConfig {
    DynamicConfig {
        ttl: Duration::from_secs(1),
        loop_wait: Duration::from_millis(100),
        retry_timeout: Duration::from_millis(200),
        safety_margin: Duration::from_millis(200),
        ..DynamicConfig::default()
    }
}

/// An agent running its loop, and its REST status server.
struct Running {
    agent: JoinHandle<()>,
    api: JoinHandle<()>,
}

impl Running {
    /// The agent dies at once (its server keeps running, as after kill -9 without a lifeline).
    fn kill(self) {
        self.agent.abort();
        self.api.abort();
    }
}

async fn start(dcs: &Arc<DcsNode>, servers: &FakeCluster, name: &str) -> Running {
    let status = Arc::new(SharedStatus::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let api = tokio::spawn(vigil_api::tls::serve(listener, vigil_api::router(status.clone()), None));
    let me = Identity {
        name: MemberName::new(name).expect("name"),
        scope: "test".into(),
        api_url: format!("http://127.0.0.1:{port}/patroni"),
        db_host: "127.0.0.1".into(),
        db_port: 5432,
        tags: BTreeMap::new(),
        can_fail_over: true,
        failover_priority: 1,
        bootstrap_dcs: timing(),
        parameters: BTreeMap::new(),
        config_path: None,
        api_client_tls: Default::default(),
        api_read_auth: None,
    };
    let agent = Agent::new(me, dcs.clone(), Arc::new(servers.server(name)), status);
    let (_commands, queue) = Commands::channel();
    let agent = tokio::spawn(agent.run(std::future::pending(), queue));
    Running { agent, api }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` after 20 s. Every poll also
/// checks that at most one server runs as a primary.
async fn wait_for<T, Fut: Future<Output = Option<T>>>(
    servers: &FakeCluster,
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let primaries = servers.primaries();
        assert!(primaries.len() <= 1, "two primaries: {primaries:?}");
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for one primary, and for every server in `replicas` to hold all of its writes.
async fn converged(servers: &FakeCluster, replicas: &[&str]) -> String {
    wait_for(servers, "one primary and its replicas caught up", || async {
        let primary = servers.primaries().pop()?;
        let history = servers.history(&primary);
        replicas.iter().filter(|r| **r != primary).all(|r| servers.history(r) == history).then_some(primary)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_primary_is_replaced_by_the_most_advanced_replica_and_rejoins() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let servers = FakeCluster::default();
    let mut agents = BTreeMap::new();
    for name in ["a", "b", "c"] {
        agents.insert(name, start(&dcs, &servers, name).await);
    }
    let old = converged(&servers, &["a", "b", "c"]).await;
    for id in 1..=10 {
        servers.write(&old, id).expect("write on the primary");
    }
    converged(&servers, &["a", "b", "c"]).await;
    let old_token = servers.token(&old).expect("the primary was given a token");

    // One replica stops receiving; the other gets ten more writes; then the primary is lost.
    let replicas: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| *n != old).collect();
    let (behind, ahead) = (replicas[0], replicas[1]);
    servers.cut(behind, true);
    for id in 11..=20 {
        servers.write(&old, id).expect("write on the primary");
    }
    wait_for(&servers, "the replica ahead to catch up", || async {
        (servers.history(ahead).len() == 20).then_some(())
    })
    .await;
    agents.remove(old.as_str()).expect("running").kill();
    servers.crash(&old);
    servers.cut(behind, false);

    let new = wait_for(&servers, "a new primary", || async { servers.primaries().pop() }).await;
    assert_eq!(new, ahead, "the replica holding every write takes over");
    let new_token = servers.token(&new).expect("the new primary was given a token");
    assert!(new_token > old_token, "token {new_token} after {old_token}");
    assert_eq!(servers.history(&new), (1..=20).collect::<Vec<_>>(), "no acknowledged write lost");
    servers.write(&new, 21).expect("the new primary takes writes");

    // The old primary's agent comes back: its server rejoins as a replica of the new primary.
    let old_name: &'static str = ["a", "b", "c"].into_iter().find(|n| *n == old).expect("name");
    agents.insert(old_name, start(&dcs, &servers, old_name).await);
    assert_eq!(converged(&servers, &["a", "b", "c"]).await, new);
    assert_eq!(servers.history(old_name), (1..=21).collect::<Vec<_>>());
    for (_, agent) in agents {
        agent.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_primary_with_writes_nobody_else_has_is_rewound_to_the_new_history() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let servers = FakeCluster::default();
    let mut agents = BTreeMap::new();
    for name in ["a", "b", "c"] {
        agents.insert(name, start(&dcs, &servers, name).await);
    }
    let old = converged(&servers, &["a", "b", "c"]).await;
    let old_name: &'static str = ["a", "b", "c"].into_iter().find(|n| *n == old).expect("name");
    for id in 1..=10 {
        servers.write(old_name, id).expect("write on the primary");
    }
    converged(&servers, &["a", "b", "c"]).await;
    // Asynchronous replication: writes 11 to 15 reach no replica before the primary is lost.
    let replicas: Vec<&str> = ["a", "b", "c"].into_iter().filter(|n| *n != old).collect();
    replicas.iter().for_each(|r| servers.cut(r, true));
    for id in 11..=15 {
        servers.write(old_name, id).expect("write on the primary");
    }
    agents.remove(old_name).expect("running").kill();
    servers.crash(old_name);
    replicas.iter().for_each(|r| servers.cut(r, false));

    let new = wait_for(&servers, "a new primary", || async { servers.primaries().pop() }).await;
    servers.write(&new, 21).expect("the new primary takes writes");
    agents.insert(old_name, start(&dcs, &servers, old_name).await);
    assert_eq!(converged(&servers, &["a", "b", "c"]).await, new);
    let expected: Vec<u64> = (1..=10).chain([21]).collect();
    assert_eq!(servers.history(old_name), expected, "the diverged writes are gone, the new ones there");
    for (_, agent) in agents {
        agent.kill();
    }
}
