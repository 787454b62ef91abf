//! Real agents managing real PostgreSQL 15 servers: bootstrap, failover, rejoin, restarts.

use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until `sql` returns `expected` on node `i`.
async fn eventually(cluster: &AgentCluster, i: usize, sql: &str, expected: &[&str]) {
    let what = format!("{sql:?} to return {expected:?} on {}", cluster.nodes[i].name);
    wait_for(&what, PATIENCE, || async {
        let rows = cluster.query(i, sql).await.ok()?;
        (rows == expected).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_bootstrap_one_primary_and_two_streaming_replicas() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let primary = cluster.primary(PATIENCE).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
    for r in &replicas {
        cluster.streaming_replica(*r, PATIENCE).await;
    }
    cluster.query(primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await.expect("write");
    for r in replicas {
        eventually(&cluster, r, "SELECT v FROM t", &["1"]).await;
        let (code, _) = cluster.rest(r, "/replica").await.expect("rest");
        assert_eq!(code, 200);
    }
}
