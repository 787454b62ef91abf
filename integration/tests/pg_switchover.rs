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
    let slots_of = |i: usize| {
        let mut others: Vec<&str> =
            (0..3).filter(|j| *j != i).map(|j| cluster.nodes[j].name.as_str()).collect();
        others.sort();
        others.join(",")
    };
    const SLOTS: &str =
        "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots";
    cluster.eventually(old, SLOTS, &[&slots_of(old)]).await;

    let body = json!({"leader": leader, "candidate": to}).to_string();
    let (code, text) = post(&cluster, old, "/switchover", &body).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(&to), "{text}");
    assert_eq!(cluster.primary(PATIENCE).await, candidate);
    let rows = cluster.query(candidate, "SELECT count(*) FROM t").await.expect("count");
    assert_eq!(rows, ["50"], "every acknowledged row is on the new primary");
    cluster.streaming_replica(old, PATIENCE).await;
    // The new primary keeps a slot for each other member; the old one, now a replica, keeps none (its
    // rewind drops them, and a replica drops unused ones: nobody would advance them).
    cluster.eventually(candidate, SLOTS, &[&slots_of(candidate)]).await;
    cluster.eventually(old, SLOTS, &[""]).await;

    let (_, history) = cluster.rest(candidate, "/history").await.expect("history");
    let last = history.as_array().and_then(|h| h.last()).cloned().unwrap_or(Value::Null);
    // Patroni's line: the timeline that ended, where it ended, why, when (with an offset), who.
    let line = last.as_array().expect("a Patroni history line");
    assert_eq!((line.len(), &line[2], &line[4]), (5, &json!("switchover"), &json!(to)), "{history}");
    let (_, status) = cluster.rest(candidate, "/patroni").await.expect("status");
    let ended = status["timeline"].as_u64().map(|t| t - 1);
    assert!(line[0].as_u64() == ended && line[1].as_u64() > Some(0), "{history} {status}");
    let at = line[3].as_str().and_then(|t| vigil_api::Schedule::parse(t).ok());
    assert!(at.is_some(), "an ISO 8601 time with an offset: {history}");
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
        (&json!({"leader": leader, "scheduled_at": "2030-01-01T00:00:00"}).to_string(), 400, "Timezone"),
        (&json!({"leader": leader, "scheduled_at": "2001-01-01T00:00:00Z"}).to_string(), 422, "in the past"),
        (&json!({"leader": leader, "scheduled_at": "soon"}).to_string(), 422, "Unable to parse"),
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

    // A scheduled switchover is stored (202), shown by /cluster, and cancelled by DELETE.
    let body = json!({"leader": leader, "scheduled_at": "2099-01-01T12:00:00+01:00"}).to_string();
    let (code, text) = post(&cluster, primary, "/switchover", &body).await;
    assert_eq!((code, text.as_str()), (202, "Switchover scheduled at 2099-01-01T12:00:00+01:00"));
    let (_, view) = cluster.rest(primary, "/cluster").await.expect("cluster");
    assert_eq!(view["scheduled_switchover"]["at"], "2099-01-01T12:00:00+01:00", "{view}");
    let url = format!("http://127.0.0.1:{}/switchover", cluster.nodes[primary].api_port);
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    assert_eq!(client.delete(&url).send().await.expect("delete").status(), 200);
    assert_eq!(client.delete(&url).send().await.expect("delete").status(), 404, "nothing left to cancel");
    assert_eq!(cluster.primary(PATIENCE).await, primary, "nothing changed");
}

/// A candidate whose WAL receiver is frozen (SIGSTOP) while the primary writes ~2 MB lags beyond
/// `maximum_lag_on_failover` (1 KiB): a switchover or failover to it is refused with 412 naming the lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_to_a_lagging_candidate_is_refused() {
    init_tracing();
    let cluster = AgentCluster::start_with(3, |_| String::new(), "maximum_lag_on_failover: 1024");
    let primary = settled(&cluster).await;
    let lagging = (0..3).find(|i| *i != primary).expect("a replica");
    let receiver = cluster.wal_receiver_pid(lagging, PATIENCE).await;
    assert!(cluster.signal_pid(receiver, libc::SIGSTOP), "SIGSTOP the WAL receiver {receiver}");
    let sql = "CREATE TABLE t AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 2000) g";
    cluster.write_published(primary, sql).await; // ~2 MB

    let (leader, to) = (cluster.nodes[primary].name.clone(), cluster.nodes[lagging].name.clone());
    for (path, body) in
        [("/switchover", json!({"leader": leader, "candidate": to})), ("/failover", json!({"candidate": to}))]
    {
        let (code, text) = post(&cluster, primary, path, &body.to_string()).await;
        assert_eq!(code, 412, "{path}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = error["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("candidate {to}: lagging by "))
                && message.contains("(maximum_lag_on_failover 1 kB)"),
            "{path}: {text}"
        );
    }
    assert!(cluster.signal_pid(receiver, libc::SIGCONT), "SIGCONT the WAL receiver {receiver}");
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
