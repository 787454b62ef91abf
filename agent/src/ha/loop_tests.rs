//! The whole loop, with no real database: three agents on one in-process store, each managing a server
//! of a [`FakeCluster`], their REST status served on loopback for the leader race. What the integration
//! tests prove with PostgreSQL, in seconds and on any engine: one primary is elected, a lost primary is
//! replaced by the most advanced replica with a larger fencing token, and the old one rejoins.

use super::identity::Identity;
use super::restart_tests::store;
use super::run::Agent;
use super::{Commands, LocalCommand};
use crate::config::DynamicConfig;
use crate::db::fake::FakeCluster;
use crate::status::SharedStatus;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use vigil_dcs::{Condition, DcsNode, Key, MemberName};

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
    /// What the REST API would send its loop.
    commands: Commands,
    /// Its REST status, `http://127.0.0.1:PORT/patroni`.
    status_url: String,
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
        use_pg_rewind: None,
        discard: Default::default(),
        proxy_url: None,
        config_path: None,
        api_client_tls: Default::default(),
        api_read_auth: None,
    };
    let agent = Agent::new(me, dcs.clone(), Arc::new(servers.server(name)), status);
    let (commands, queue) = Commands::channel();
    let agent = tokio::spawn(agent.run(std::future::pending(), queue));
    let status_url = format!("http://127.0.0.1:{port}/patroni");
    Running { agent, api, commands, status_url }
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

/// The members' names.
const NAMES: [&str; 3] = ["a", "b", "c"];

/// Three agents on one store, each managing a server of `servers`; their agents die with it.
struct Trio {
    _dir: tempfile::TempDir,
    dcs: Arc<DcsNode>,
    servers: FakeCluster,
    agents: BTreeMap<&'static str, Running>,
}

impl Trio {
    /// Starts the agents, waits for a primary, writes 1 to 10 on it and waits for every replica to hold
    /// them; returns the primary's name.
    async fn start() -> (Trio, &'static str) {
        let dir = tempfile::tempdir().expect("dir");
        let dcs = store(dir.path()).await;
        let mut trio = Trio { _dir: dir, dcs, servers: FakeCluster::default(), agents: BTreeMap::new() };
        for name in NAMES {
            trio.restart(name).await;
        }
        let primary = trio.converged().await;
        let primary = NAMES.into_iter().find(|n| *n == primary).expect("a member");
        for id in 1..=10 {
            trio.servers.write(primary, id).expect("write on the primary");
        }
        trio.converged().await;
        (trio, primary)
    }

    /// Starts `name`'s agent (again).
    async fn restart(&mut self, name: &'static str) {
        let agent = start(&self.dcs, &self.servers, name).await;
        self.agents.insert(name, agent);
    }

    /// `name`'s agent dies and its server crashes.
    fn lose(&mut self, name: &str) {
        self.agents.remove(name).expect("running").kill();
        self.servers.crash(name);
    }

    /// Waits for one primary holding every write, every other server too; returns the primary.
    async fn converged(&self) -> String {
        converged(&self.servers, &NAMES).await
    }
}

impl Drop for Trio {
    fn drop(&mut self) {
        for (_, agent) in std::mem::take(&mut self.agents) {
            agent.kill();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_primary_is_replaced_by_the_most_advanced_replica_and_rejoins() {
    let (mut trio, old) = Trio::start().await;
    let servers = trio.servers.clone();
    let old_token = servers.token(old).expect("the primary was given a token");

    // One replica stops receiving; the other gets ten more writes; then the primary is lost.
    let replicas: Vec<&str> = NAMES.into_iter().filter(|n| *n != old).collect();
    let (behind, ahead) = (replicas[0], replicas[1]);
    servers.cut(behind, true);
    for id in 11..=20 {
        servers.write(old, id).expect("write on the primary");
    }
    wait_for(&servers, "the replica ahead to catch up", || async {
        (servers.history(ahead).len() == 20).then_some(())
    })
    .await;
    trio.lose(old);
    servers.cut(behind, false);

    let new = wait_for(&servers, "a new primary", || async { servers.primaries().pop() }).await;
    assert_eq!(new, ahead, "the replica holding every write takes over");
    let new_token = servers.token(&new).expect("the new primary was given a token");
    assert!(new_token > old_token, "token {new_token} after {old_token}");
    assert_eq!(servers.history(&new), (1..=20).collect::<Vec<_>>(), "no acknowledged write lost");
    servers.write(&new, 21).expect("the new primary takes writes");

    // The old primary's agent comes back: its server rejoins as a replica of the new primary.
    trio.restart(old).await;
    assert_eq!(trio.converged().await, new);
    assert_eq!(servers.history(old), (1..=21).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_primary_with_writes_nobody_else_has_is_rewound_to_the_new_history() {
    let (mut trio, old) = Trio::start().await;
    let servers = trio.servers.clone();
    // Asynchronous replication: writes 11 to 15 reach no replica before the primary is lost.
    let replicas: Vec<&str> = NAMES.into_iter().filter(|n| *n != old).collect();
    replicas.iter().for_each(|r| servers.cut(r, true));
    for id in 11..=15 {
        servers.write(old, id).expect("write on the primary");
    }
    trio.lose(old);
    replicas.iter().for_each(|r| servers.cut(r, false));

    let new = wait_for(&servers, "a new primary", || async { servers.primaries().pop() }).await;
    servers.write(&new, 21).expect("the new primary takes writes");
    trio.restart(old).await;
    assert_eq!(trio.converged().await, new);
    let expected: Vec<u64> = (1..=10).chain([21]).collect();
    assert_eq!(servers.history(old), expected, "the diverged writes are gone, the new ones there");
}

/// As Patroni's (its `patroni_api.feature`): a reinitialize is carried out in pause, when the loop starts
/// nothing by itself: the replica's data is removed, cloned from the primary again, and it follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_replica_is_reinitialized_and_follows_again() {
    let (trio, primary) = Trio::start().await;
    let paused = DynamicConfig { pause: true, ..timing() };
    let value = serde_json::to_value(&paused).expect("json");
    trio.dcs.put(&Key::Config, value, Condition::Always, None).await.expect("paused");
    let replica = NAMES.into_iter().find(|n| *n != primary).expect("a replica");
    let url = trio.agents[replica].status_url.clone();
    wait_for(&trio.servers, "the replica's loop to see the pause", || async {
        let status: serde_json::Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
        (status["pause"] == true).then_some(())
    })
    .await;
    let request = vigil_api::ReinitializeRequest { force: true, from_leader: true };
    let answer = trio.agents[replica].commands.call(LocalCommand::Reinitialize(request)).await;
    assert!(answer.is_ok(), "{answer:?}");
    trio.servers.write(primary, 11).expect("write on the primary");
    wait_for(&trio.servers, "the reinitialized replica to follow", || async {
        (trio.servers.history(replica) == trio.servers.history(primary)).then_some(())
    })
    .await;
}
