//! Standby clusters with real agents and PostgreSQL 15: two clusters on one machine. B replicates from A's
//! primary through its standby leader, its other member cascading from that one; the sites switch (A is
//! demoted to replicate from B, then B is promoted); then B is lost and A is promoted with every write B
//! took.

use std::process::Command;
use std::time::Duration;
use vigil_integration::agents::{vigil_binary, AgentCluster};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(90);

/// Waits until exactly one node of `cluster` answers 200 on `path`, and returns it.
async fn the_one(cluster: &AgentCluster, path: &str) -> usize {
    wait_for(&format!("exactly one node answering {path}"), PATIENCE, || async {
        let mut found = Vec::new();
        for i in 0..cluster.nodes.len() {
            if cluster.rest(i, path).await.is_some_and(|(code, _)| code == 200) {
                found.push(i);
            }
        }
        (found.len() == 1).then(|| found[0])
    })
    .await
}

/// Runs `vigil <args> --api <node i of cluster>`, which must succeed; its output.
fn vigil(cluster: &AgentCluster, i: usize, args: &[&str]) -> String {
    let api = format!("http://127.0.0.1:{}", cluster.nodes[i].api_port);
    let out = Command::new(vigil_binary()).args(args).args(["--api", &api]).output().expect("run vigil");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vigil {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_clusters_switch_sites_and_take_over_with_every_write() {
    init_tracing();
    let a = AgentCluster::start_checked(2, |_| String::new()).await;
    let primary = a.settled(&[0, 1], PATIENCE).await;
    a.query(primary, "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 5)")
        .await
        .expect("write");

    // B: a standby cluster of A.
    let remote = format!("standby_cluster: {{host: 127.0.0.1, port: {}}}", a.nodes[primary].pg_port);
    let mut b = AgentCluster::start_with(2, |_| String::new(), &remote);
    let b_leader = the_one(&b, "/standby-leader").await;
    let b_other = 1 - b_leader;
    b.streaming_replica(b_other, PATIENCE).await;
    for i in 0..2 {
        assert_eq!(
            b.rest(i, "/primary").await.map(|(code, _)| code),
            Some(503),
            "a standby cluster takes no writes"
        );
        b.eventually(i, "SELECT count(*) FROM t", &["5"]).await;
    }
    let (_, view) = b.rest(b_leader, "/cluster").await.expect("GET /cluster");
    let members = view["members"].as_array().expect("members");
    let role = |name: &str| members.iter().find(|m| m["name"] == name).map(|m| m["role"].clone());
    assert_eq!(role(&b.nodes[b_leader].name), Some(serde_json::json!("standby_leader")), "{view}");
    let other =
        members.iter().find(|m| m["name"] == b.nodes[b_other].name.as_str()).expect("the other member");
    assert_eq!(
        other["upstream"],
        b.nodes[b_leader].name.as_str(),
        "it cascades from the standby leader: {view}"
    );

    // A planned switch of sites: A is demoted to replicate from B, then B is promoted.
    let b_port = b.nodes[b_leader].pg_port.to_string();
    vigil(&a, primary, &["demote-cluster", "--host", "127.0.0.1", "--port", &b_port]);
    let a_leader = the_one(&a, "/standby-leader").await;
    let said = vigil(&b, b_other, &["promote-cluster"]);
    assert!(said.contains("promoted"), "{said}");
    let b_primary = b.primary(PATIENCE).await;
    assert_eq!(b_primary, b_leader, "the standby leader is promoted");
    b.query(b_primary, "INSERT INTO t SELECT generate_series(6, 10)").await.expect("a write on B");
    for i in 0..2 {
        a.eventually(i, "SELECT count(*) FROM t", &["10"]).await;
        assert_eq!(
            a.rest(i, "/primary").await.map(|(code, _)| code),
            Some(503),
            "A takes no writes any more"
        );
    }

    // B is lost; A, its standby cluster, is promoted with every write B took.
    for i in 0..2 {
        b.signal_agent(i, libc::SIGKILL);
        b.kill_server(i);
    }
    vigil(&a, a_leader, &["promote-cluster"]);
    let a_primary = a.primary(PATIENCE).await;
    assert_eq!(
        a.query(a_primary, "SELECT count(*) FROM t").await.expect("count"),
        ["10"],
        "every write of B"
    );
    a.query(a_primary, "INSERT INTO t VALUES (11)").await.expect("a write on A again");
    a.eventually(1 - a_primary, "SELECT count(*) FROM t", &["11"]).await;
}
