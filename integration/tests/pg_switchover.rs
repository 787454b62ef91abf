//! Planned switchover through the REST API, with real agents and real PostgreSQL.

use serde_json::{json, Value};
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

async fn post(cluster: &AgentCluster, i: usize, path: &str, body: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}{path}", cluster.nodes[i].api_port);
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let response =
        client.post(url).body(body.to_owned()).timeout(Duration::from_secs(60)).send().await.expect("post");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

async fn settled(cluster: &AgentCluster) -> usize {
    let primary = cluster.primary(PATIENCE).await;
    for r in (0..cluster.nodes.len()).filter(|r| *r != primary) {
        cluster.streaming_replica(r, PATIENCE).await;
    }
    primary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_moves_the_primary_without_losing_acknowledged_writes() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let old = settled(&cluster).await;
    let candidate = (0..3).find(|i| *i != old).expect("a replica");
    cluster.query(old, "CREATE TABLE t (v int)").await.expect("create");
    for v in 0..50 {
        cluster.query(old, &format!("INSERT INTO t VALUES ({v})")).await.expect("insert");
    }
    let leader = cluster.nodes[old].name.clone();
    let to = cluster.nodes[candidate].name.clone();

    let body = json!({"leader": leader, "candidate": to}).to_string();
    let (code, text) = post(&cluster, old, "/switchover", &body).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(&to), "{text}");
    assert_eq!(cluster.primary(PATIENCE).await, candidate);
    let rows = cluster.query(candidate, "SELECT count(*) FROM t").await.expect("count");
    assert_eq!(rows, ["50"], "every acknowledged row is on the new primary");
    cluster.streaming_replica(old, PATIENCE).await;

    let (_, history) = cluster.rest(candidate, "/history").await.expect("history");
    let last = history.as_array().and_then(|h| h.last()).cloned().unwrap_or(Value::Null);
    assert_eq!(last["new_primary"], json!(to), "{history}");
    let (_, cluster_json) = cluster.rest(old, "/cluster").await.expect("cluster");
    let roles: Vec<(String, String)> = cluster_json["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or("").to_owned(), m["role"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert!(roles.contains(&(to.clone(), "leader".into())), "{roles:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_switchovers_say_why_and_change_nothing() {
    init_tracing();
    let cluster =
        AgentCluster::start(3, |i| if i == 2 { "tags: {nofailover: true}\n".into() } else { String::new() });
    let primary = wait_for("node1 or node2 to lead", PATIENCE, || async {
        let p = cluster.primary(PATIENCE).await;
        (p != 2).then_some(p)
    })
    .await;
    for r in (0..3).filter(|r| *r != primary) {
        cluster.streaming_replica(r, PATIENCE).await;
    }
    let leader = cluster.nodes[primary].name.clone();
    let cases = [
        ("not json", 400, "malformed JSON"),
        (r#"{"leader": "node9"}"#, 412, "is not the leader"),
        (&json!({"leader": leader, "candidate": "node9"}).to_string(), 412, "no member named node9"),
        (&json!({"leader": leader, "candidate": "node3"}).to_string(), 412, "nofailover"),
        (&json!({"leader": leader, "candidate": leader}).to_string(), 412, "already the leader"),
        (&json!({"leader": leader, "scheduled_at": "2030-01-01T00:00:00Z"}).to_string(), 400, "scheduled_at"),
    ];
    for (body, status, message) in cases {
        let (code, text) = post(&cluster, primary, "/switchover", body).await;
        assert_eq!(code, status, "{body}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(error["error"].as_str().is_some_and(|e| e.contains(message)), "{body}: {text}");
    }
    let (code, _) = post(&cluster, primary, "/failover", "{}").await;
    assert_eq!(code, 400, "a failover needs a candidate");
    assert_eq!(cluster.primary(PATIENCE).await, primary, "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reinitialize_and_reload_through_the_api() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let primary = settled(&cluster).await;
    let replica = (0..3).find(|i| *i != primary).expect("a replica");
    cluster.query(primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await.expect("write");

    let (code, text) = post(&cluster, replica, "/restart", r#"{"role": "primary"}"#).await;
    assert_eq!(code, 412, "{text}");
    let old_pid = cluster.postmaster_pid(replica).expect("postmaster");
    let (code, text) = post(&cluster, replica, "/restart", "").await;
    assert_eq!(code, 200, "{text}");
    assert_ne!(cluster.postmaster_pid(replica), Some(old_pid), "a new postmaster");
    cluster.streaming_replica(replica, PATIENCE).await;

    let (code, text) = post(&cluster, primary, "/reinitialize", "{}").await;
    assert_eq!(code, 503, "the primary is never reinitialized: {text}");
    let (code, text) = post(&cluster, replica, "/reinitialize", r#"{"force": true}"#).await;
    assert_eq!(code, 200, "{text}");
    cluster.streaming_replica(replica, PATIENCE).await;
    let rows = wait_for("the re-cloned replica to have the row", PATIENCE, || async {
        cluster.query(replica, "SELECT count(*) FROM t").await.ok().filter(|r| r == &["1"])
    })
    .await;
    assert_eq!(rows, ["1"]);

    cluster.nodes[replica].extra_yaml = "tags: {nofailover: true}\n".into();
    cluster.config_file(replica);
    let (code, text) = post(&cluster, replica, "/reload", "").await;
    assert_eq!(code, 202, "{text}");
    wait_for("the reloaded tag in the status", PATIENCE, || async {
        let (_, status) = cluster.rest(replica, "/patroni").await?;
        (status["tags"]["nofailover"] == json!(true)).then_some(())
    })
    .await;
}
