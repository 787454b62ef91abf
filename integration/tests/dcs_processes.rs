//! The store as three separate OS processes: kill -9 and restart from disk.

use serde_json::{json, Value};
use std::path::Path;
use vigil_integration::cluster::PATIENCE;
use vigil_integration::process::ProcessCluster;
use vigil_integration::{init_tracing, wait_for};

/// The Raft leader all three nodes that answer agree on.
async fn agreed_leader(cluster: &ProcessCluster, ids: &[u64]) -> u64 {
    wait_for("an agreed raft leader", PATIENCE, || async {
        let mut leaders = Vec::new();
        for id in ids {
            leaders.push(cluster.get(*id, "/test/status").await?["leader"].as_u64()?);
        }
        let first = leaders[0];
        (leaders.iter().all(|l| *l == first) && ids.contains(&first)).then_some(first)
    })
    .await
}

async fn read(cluster: &ProcessCluster, id: u64) -> Value {
    wait_for("a linearizable read", PATIENCE, || cluster.get(id, "/test/read")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_survive_kill_9_and_restart_from_disk() {
    init_tracing();
    let binary = Path::new(env!("CARGO_BIN_EXE_vigil-dcs-node"));
    let mut cluster = ProcessCluster::start(binary, 3).expect("start processes");
    let leader = agreed_leader(&cluster, &[1, 2, 3]).await;

    let acquire = json!({"holder": "pg-a", "ttl_ms": 5000});
    let first =
        wait_for("a lease grant", PATIENCE, || cluster.post(2, "/test/acquire", acquire.clone())).await;
    let token = first["token"].as_u64().expect("token");

    // kill -9 the Raft leader: the other two elect a new one and keep the record.
    cluster.kill(leader).expect("kill leader");
    let survivors: Vec<u64> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let new_leader = agreed_leader(&cluster, &survivors).await;
    assert_ne!(new_leader, leader);
    let put = json!({"key": "config", "value": {"written": "while a node was down"}});
    wait_for("a write without the killed node", PATIENCE, || {
        cluster.post(survivors[0], "/test/put", put.clone())
    })
    .await;
    assert_eq!(read(&cluster, survivors[1]).await["leader"]["token"].as_u64(), Some(token));

    // Restarted from its data directory, the killed node rejoins and has every write.
    cluster.restart(leader).expect("restart");
    let state = wait_for("the restarted node to catch up", PATIENCE, || async {
        let state = cluster.get(leader, "/test/read").await?;
        (state["keys"]["config"]["value"]["written"] == "while a node was down").then_some(state)
    })
    .await;
    assert_eq!(state["leader"]["holder"], "pg-a");
    assert_eq!(state["leader"]["token"].as_u64(), Some(token));

    // kill -9 of every process, then all restart from disk: the record is intact and tokens move on.
    for id in [1, 2, 3] {
        cluster.kill(id).expect("kill");
    }
    for id in [1, 2, 3] {
        cluster.restart(id).expect("restart");
    }
    agreed_leader(&cluster, &[1, 2, 3]).await;
    let state = read(&cluster, 3).await;
    assert_eq!(state["leader"]["token"].as_u64(), Some(token));
    assert_eq!(state["keys"]["config"]["value"]["written"], "while a node was down");
    let again = wait_for("a repeat acquire by the holder", PATIENCE, || {
        cluster.post(1, "/test/acquire", acquire.clone())
    })
    .await;
    assert_eq!(again["token"].as_u64(), Some(token), "a repeated acquire by the holder returns its token");
    let other = json!({"holder": "pg-b", "ttl_ms": 5000});
    assert!(cluster.post(1, "/test/acquire", other).await.is_none(), "the lease is still held by pg-a");
}
