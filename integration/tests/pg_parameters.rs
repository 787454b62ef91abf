//! Server parameters changed while the cluster runs, with real agents and PostgreSQL 15: the dynamic
//! configuration's (`PATCH /config`) reach every member and a member's own file (`POST /reload`, or
//! SIGHUP) overrides them; what PostgreSQL applies on a reload applies at once, the rest shows as pending
//! until a restart.

use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// Waits until node `i`'s `/patroni` has `pending_restart_reason` equal to `reason` (absent when `null`).
async fn pending(cluster: &AgentCluster, i: usize, reason: Value) {
    let what = format!("pending_restart_reason {reason} on {}", cluster.nodes[i].name);
    wait_for(&what, PATIENCE, || async {
        let (_, status) = cluster.rest(i, "/patroni").await?;
        let shown = status.get("pending_restart_reason").cloned().unwrap_or(Value::Null);
        let flag = status.get("pending_restart").cloned().unwrap_or(Value::Null);
        (shown == reason && flag == if reason.is_null() { Value::Null } else { json!(true) }).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changed_parameters_reach_every_member_and_a_restart_applies_the_pending_ones() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    let replica = (primary + 1) % 3;

    // work_mem applies on a reload; shared_buffers needs a restart (initdb's default is 128MB).
    let patch = r#"{"postgresql": {"parameters": {"work_mem": "7MB", "shared_buffers": "96MB"}}}"#;
    let (code, body) = cluster.send(primary, Method::PATCH, "/config", patch).await;
    assert_eq!(code, 200, "{body}");
    let reason = json!({"shared_buffers": {"old_value": "128MB", "new_value": "96MB"}});
    for i in all {
        cluster.eventually(i, "SHOW work_mem", &["7MB"]).await;
        pending(&cluster, i, reason.clone()).await;
    }
    let (_, listed) = cluster.rest(primary, "/cluster").await.expect("/cluster");
    let flagged = listed["members"].as_array().into_iter().flatten().filter(|m| m["pending_restart"] == true);
    assert_eq!(flagged.count(), 3, "{listed}");
    let (_, metrics) = cluster.send(replica, Method::GET, "/metrics", "").await;
    assert!(
        metrics.lines().any(|l| l.starts_with("patroni_pending_restart{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // Values PostgreSQL would reject (and that would stop the next start) are refused, naming them.
    for (patch, named) in [
        (
            r#"{"postgresql": {"parameters": {"work_mem": "lots"}}}"#,
            r#"work_mem = \"lots\": expected a number"#,
        ),
        (r#"{"postgresql": {"parameters": {"bogus_param": 1}}}"#, "bogus_param"),
        (r#"{"postgresql": {"parameters": {"shared_buffers": "64kB"}}}"#, "below the minimum"),
    ] {
        let (code, body) = cluster.send(replica, Method::PATCH, "/config", patch).await;
        assert_eq!(code, 400, "{patch}: {body}");
        assert!(body.contains(named), "{patch}: {body}");
    }
    let (_, config) = cluster.rest(primary, "/config").await.expect("/config");
    let stored = &config["postgresql"]["parameters"];
    assert_eq!((&stored["work_mem"], stored.get("bogus_param")), (&json!("7MB"), None), "{config}");

    // A restart of the pending kind applies it; asked again, it is refused and changes nothing.
    let pending_only = r#"{"restart_pending": true}"#;
    let (code, body) = cluster.send(replica, Method::POST, "/restart", pending_only).await;
    assert_eq!(code, 200, "{body}");
    cluster.eventually(replica, "SHOW shared_buffers", &["96MB"]).await;
    pending(&cluster, replica, Value::Null).await;
    let started = cluster.postmaster_pid(replica);
    let (code, body) = cluster.send(replica, Method::POST, "/restart", pending_only).await;
    assert_eq!((code, body.contains("no restart is pending")), (412, true), "{body}");
    assert_eq!(cluster.postmaster_pid(replica), started, "not restarted");

    // The member's own file overrides the cluster's value once the agent re-reads it.
    let file = cluster.config_file(replica);
    let yaml = std::fs::read_to_string(&file).expect("read the config file");
    let with_own = |work_mem: &str| {
        let own =
            yaml.replacen("\n  parameters:\n", &format!("\n  parameters:\n    work_mem: {work_mem}\n"), 1);
        assert_ne!(own, yaml, "the file has a postgresql.parameters section");
        std::fs::write(&file, own).expect("write the config file");
    };
    with_own("9 parsecs");
    let (code, body) = cluster.send(replica, Method::POST, "/reload", "").await;
    assert_eq!((code, body.contains("not reloaded") && body.contains("work_mem")), (400, true), "{body}");
    with_own("9MB");
    let (code, body) = cluster.send(replica, Method::POST, "/reload", "").await;
    assert_eq!(code, 202, "{body}");
    cluster.eventually(replica, "SHOW work_mem", &["9MB"]).await;
    cluster.eventually(primary, "SHOW work_mem", &["7MB"]).await;
}

/// A hot standby does not start with `max_connections` below its primary's. Lowered cluster-wide, the
/// primary waits for a restart; a replica restarted before it keeps the primary's value, and takes the new
/// one at its first start after the primary runs with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_restarted_before_its_primary_keeps_the_primarys_hot_standby_settings() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let replica = (primary + 1) % 3;
    let patch = r#"{"postgresql": {"parameters": {"max_connections": 90}}}"#;
    let (code, body) = cluster.send(primary, Method::PATCH, "/config", patch).await;
    assert_eq!(code, 200, "{body}");
    pending(&cluster, primary, json!({"max_connections": {"old_value": "100", "new_value": "90"}})).await;

    let (code, body) = cluster.send(replica, Method::POST, "/restart", "{}").await;
    assert_eq!(code, 200, "the replica starts again: {body}");
    cluster.streaming_replica(replica, PATIENCE).await;
    assert_eq!(cluster.query(replica, "SHOW max_connections").await.expect("SHOW"), ["100"]);

    let (code, body) = cluster.send(primary, Method::POST, "/restart", r#"{"restart_pending": true}"#).await;
    assert_eq!(code, 200, "{body}");
    cluster.eventually(primary, "SHOW max_connections", &["90"]).await;
    let written = cluster.query(primary, "SELECT pg_current_wal_lsn()").await.expect("lsn").remove(0);
    let replayed = format!("SELECT pg_last_wal_replay_lsn() >= '{written}'");
    cluster.eventually(replica, &replayed, &["t"]).await;
    let (code, body) = cluster.send(replica, Method::POST, "/restart", "{}").await;
    assert_eq!(code, 200, "{body}");
    cluster.streaming_replica(replica, PATIENCE).await;
    assert_eq!(cluster.query(replica, "SHOW max_connections").await.expect("SHOW"), ["90"]);
}

/// `postgresql.use_slots: false` (Patroni's key) while the cluster runs: the primary drops the slots it
/// kept for the others, the replicas stream without one, and switching it on again brings the slots back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_slots_follow_use_slots_while_the_cluster_runs() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    let replicas: Vec<usize> = all.into_iter().filter(|i| *i != primary).collect();
    let slots = "SELECT count(*) FROM pg_replication_slots";
    cluster.eventually(primary, slots, &["2"]).await;

    let (code, body) =
        cluster.send(primary, Method::PATCH, "/config", r#"{"postgresql": {"use_slots": false}}"#).await;
    assert_eq!(code, 200, "{body}");
    for r in &replicas {
        cluster.eventually(*r, "SHOW primary_slot_name", &[""]).await;
    }
    cluster.eventually(primary, slots, &["0"]).await;
    cluster.query(primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await.expect("write");
    for r in &replicas {
        cluster.eventually(*r, "SELECT v FROM t", &["1"]).await;
        cluster.streaming_replica(*r, PATIENCE).await;
    }

    let (code, body) =
        cluster.send(primary, Method::PATCH, "/config", r#"{"postgresql": {"use_slots": true}}"#).await;
    assert_eq!(code, 200, "{body}");
    cluster.eventually(primary, "SELECT count(*) FROM pg_replication_slots WHERE active", &["2"]).await;
}

/// SIGHUP (what `systemctl reload` sends) re-reads the file as `POST /reload` does: on the primary, the
/// agent and PostgreSQL keep running, nobody fails over, and the file's new tag and parameter apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_the_file_and_the_primary_keeps_running() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let (agent, postmaster) = (cluster.agent_pid(primary), cluster.postmaster_pid(primary));
    let file = cluster.config_file(primary);
    let yaml = std::fs::read_to_string(&file).expect("read the config file");
    let edited = yaml.replacen("\n  parameters:\n", "\n  parameters:\n    work_mem: 11MB\n", 1);
    assert_ne!(edited, yaml, "the file has a postgresql.parameters section");
    std::fs::write(&file, format!("{edited}\ntags:\n  zone: reloaded\n")).expect("write the config file");

    cluster.signal_agent(primary, libc::SIGHUP);
    cluster.eventually(primary, "SHOW work_mem", &["11MB"]).await;
    wait_for("the new tag in /patroni", PATIENCE, || async {
        let (_, status) = cluster.rest(primary, "/patroni").await?;
        (status["tags"]["zone"] == "reloaded").then_some(())
    })
    .await;
    assert!(!cluster.agent_exited(primary, Duration::from_millis(500)).await, "the agent keeps running");
    assert_eq!(cluster.agent_pid(primary), agent, "the same agent process");
    assert_eq!(cluster.postmaster_pid(primary), postmaster, "the same PostgreSQL, not restarted");
    assert_eq!(cluster.primary(PATIENCE).await, primary, "no failover");
    let log = cluster.plain_log(primary);
    assert!(log.contains("SIGHUP received: reloading the configuration"), "{log}");
}
