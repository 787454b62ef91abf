//! Patroni's REST semantics against real agents and PostgreSQL 15: the status fields and metrics of
//! Patroni 4.1, `/readiness` bounded by `maximum_lag_on_failover`, `POST /restart`'s
//! `postgres_version`, `timeout` and `schedule`, the extra response headers and `server_tokens`, a
//! manual failover in `/history`, and `cluster_unlocked` once nobody holds the lease.

use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, SystemTime};
use vigil_integration::agents::{AgentCluster, ConfigEdit};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// The `restapi` lines every node gets: extra headers and the product alone in `Server`.
fn with_headers() -> ConfigEdit {
    Box::new(|yaml: &str| {
        yaml.replacen(
            "  insecure: true\n",
            "  insecure: true\n  http_extra_headers: {X-Frame-Options: SAMEORIGIN}\n\
             \x20 https_extra_headers: {Strict-Transport-Security: max-age=31536000}\n\
             \x20 server_tokens: ProductOnly\n",
            1,
        )
    })
}

/// The value of the sample `name{…}` in a Prometheus text, if there is one.
fn sample(text: &str, name: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with(&format!("{name}{{")))?;
    line.rsplit(' ').next()?.parse().ok()
}

/// `GET path` on node `i`: the status, the headers and the body as text.
async fn get(cluster: &AgentCluster, i: usize, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let node = &cluster.nodes[i];
    let url = format!("http://{}:{}{path}", node.host, node.api_port);
    let response = reqwest::get(url).await.expect("answer");
    let (code, headers) = (response.status().as_u16(), response.headers().clone());
    (code, headers, response.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_4_1_status_metrics_readiness_restart_headers_and_history() {
    init_tracing();
    let cluster = AgentCluster::start_edited(2, "", with_headers());
    let primary = cluster.settled(&[0, 1], PATIENCE).await;
    let replica = 1 - primary;

    // Headers: the http ones on every answer (a 404 too), not the https ones; Server says the product.
    for path in ["/patroni", "/primary", "/metrics", "/no-such-path"] {
        let (_, headers, _) = get(&cluster, primary, path).await;
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{path}");
        assert_eq!(headers["server"], "Vigil", "{path}");
        assert!(!headers.contains_key("strict-transport-security"), "{path}: not over http");
    }

    // Status: start time on both, replay state on the replica, the lease held.
    cluster.query(primary, "CREATE TABLE t AS SELECT 1 AS v").await.expect("write");
    let replayed = wait_for("a replayed commit time on the replica", PATIENCE, || async {
        let (_, status) = cluster.rest(replica, "/patroni").await?;
        status["xlog"]["replayed_timestamp"]
            .as_str()
            .map(str::to_owned)
            .filter(|_| status["xlog"]["paused"] == false)
    })
    .await;
    assert!(vigil_api::Schedule::parse(&replayed).is_ok(), "ISO 8601 with an offset: {replayed}");
    for i in [primary, replica] {
        let (_, status) = cluster.rest(i, "/patroni").await.expect("status");
        let started = status["postmaster_start_time"].as_str().expect("postmaster_start_time");
        assert!(vigil_api::Schedule::parse(started).is_ok(), "{status}");
        for absent in ["cluster_unlocked", "watchdog_failed", "scheduled_restart"] {
            assert!(status.get(absent).is_none(), "{absent}: {status}");
        }
    }
    let (_, status) = cluster.rest(primary, "/patroni").await.expect("status");
    assert!(status["xlog"].get("paused").is_none(), "a primary has no replay: {status}");
    assert_eq!(cluster.rest(primary, "/history").await.expect("history").1, Value::Array(Vec::new()));

    // Metrics: Patroni 4.1's names and Vigil's histograms and Raft indexes.
    let (_, _, text) = get(&cluster, primary, "/metrics").await;
    assert_eq!(sample(&text, "patroni_version"), Some(40104.0), "{text}");
    assert!(sample(&text, "patroni_postmaster_start_time") > Some(1.0e9), "{text}");
    assert_eq!(sample(&text, "patroni_postgres_state"), Some(5.0), "running: {text}");
    assert_eq!(sample(&text, "patroni_cluster_unlocked"), Some(0.0), "{text}");
    assert!(text
        .contains(&format!("vigil_version{{scope=\"it\",name=\"{}\",version=", cluster.nodes[primary].name)));
    for name in ["ha_cycle", "store_read", "store_write", "lease_renewal"] {
        let count = sample(&text, &format!("vigil_{name}_duration_seconds_count"));
        assert!(count >= Some(1.0), "{name}: {text}");
        assert!(text.contains(&format!("vigil_{name}_duration_seconds_bucket{{scope=\"it\"")), "{name}");
    }
    let mut commit_indexes = Vec::new();
    for i in [primary, replica] {
        let (_, _, text) = get(&cluster, i, "/metrics").await;
        assert!(sample(&text, "vigil_raft_applied_index") >= Some(1.0), "{text}");
        commit_indexes.extend(sample(&text, "vigil_raft_commit_index"));
    }
    assert_eq!(commit_indexes.len(), 1, "the Raft leader alone knows the commit index");

    // Readiness: a replica whose replay is paused falls behind by more than maximum_lag_on_failover
    // (1 MiB by default) and is not ready, unless ?lag= allows more.
    cluster.query(replica, "SELECT pg_wal_replay_pause()").await.expect("pause replay");
    let wal = "CREATE TABLE big AS SELECT repeat('x', 1000) AS v FROM generate_series(1, 4000)";
    cluster.query(primary, wal).await.expect("4 MB of WAL");
    wait_for("the paused replica to be not ready", PATIENCE, || async {
        let (code, _, _) = get(&cluster, replica, "/readiness").await;
        (code == 503).then_some(())
    })
    .await;
    let (_, status) = cluster.rest(replica, "/patroni").await.expect("status");
    assert_eq!(status["xlog"]["paused"], true, "{status}");
    let (_, _, text) = get(&cluster, replica, "/metrics").await;
    assert_eq!(sample(&text, "patroni_xlog_paused"), Some(1.0), "{text}");
    assert!(sample(&text, "patroni_xlog_replayed_timestamp") > Some(1.0e9), "{text}");
    assert_eq!(get(&cluster, replica, "/readiness?lag=1GB").await.0, 200);
    cluster.query(replica, "SELECT pg_wal_replay_resume()").await.expect("resume replay");
    wait_for("the replica to be ready again", PATIENCE, || async {
        (get(&cluster, replica, "/readiness").await.0 == 200).then_some(())
    })
    .await;

    // POST /restart: bad values are 400s naming the field; postgres_version restarts only an older server.
    for (body, field) in
        [(r#"{"timeout": "soon"}"#, "timeout"), (r#"{"postgres_version": "9.6"}"#, "postgres_version")]
    {
        let (code, text) = cluster.send(replica, Method::POST, "/restart", body).await;
        assert_eq!(code, 400, "{body}: {text}");
        let error: Value = serde_json::from_str(&text).expect("JSON error");
        assert!(error["error"].as_str().is_some_and(|e| e.contains(field)), "{body}: {text}");
    }
    let pid = cluster.postmaster_pid(replica).expect("postmaster");
    let (code, text) =
        cluster.send(replica, Method::POST, "/restart", r#"{"postgres_version": "15.0"}"#).await;
    assert_eq!(code, 412, "PostgreSQL 15.x is not older than 15.0: {text}");
    assert_eq!(cluster.postmaster_pid(replica), Some(pid), "not restarted");
    let body = r#"{"postgres_version": "99.0", "timeout": "2min"}"#;
    let (code, text) = cluster.send(replica, Method::POST, "/restart", body).await;
    assert_eq!(code, 200, "{text}");
    assert_ne!(cluster.postmaster_pid(replica), Some(pid), "restarted");
    cluster.streaming_replica(replica, PATIENCE).await;

    // A scheduled restart shows in the status until cancelled.
    let at = vigil_api::Schedule::from(SystemTime::now() + Duration::from_secs(3600)).to_string();
    let body = format!(r#"{{"schedule": "{at}", "postgres_version": "99.0"}}"#);
    let (code, text) = cluster.send(replica, Method::POST, "/restart", &body).await;
    assert_eq!(code, 202, "{text}");
    let scheduled = wait_for("the scheduled restart in the status", PATIENCE, || async {
        let (_, status) = cluster.rest(replica, "/patroni").await?;
        status.get("scheduled_restart").cloned()
    })
    .await;
    assert_eq!(scheduled["postgres_version"], "99.0", "{scheduled}");
    let shown = scheduled["schedule"].as_str().and_then(|s| vigil_api::Schedule::parse(s).ok());
    assert_eq!(shown.map(|s| s.at()), vigil_api::Schedule::parse(&at).ok().map(|s| s.at()), "{scheduled}");
    let (code, text) = cluster.send(replica, Method::DELETE, "/restart", "").await;
    assert_eq!(code, 200, "{text}");
    wait_for("the scheduled restart gone from the status", PATIENCE, || async {
        let (_, status) = cluster.rest(replica, "/patroni").await?;
        status.get("scheduled_restart").is_none().then_some(())
    })
    .await;

    // An operator's failover is recorded as Patroni's "manual failover".
    let body = format!(r#"{{"candidate": "{}"}}"#, cluster.nodes[replica].name);
    let (code, text) = cluster.send(primary, Method::POST, "/failover", &body).await;
    assert_eq!(code, 200, "{text}");
    let line = wait_for("the manual failover in /history", PATIENCE, || async {
        let (_, history) = cluster.rest(replica, "/history").await?;
        history.as_array()?.last().cloned()
    })
    .await;
    assert_eq!(
        (&line[2], &line[4]),
        (&Value::from("manual failover"), &Value::from(cluster.nodes[replica].name.as_str()))
    );
    assert_eq!(line[0], 1, "timeline 1 ended: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_cluster_without_a_lease_holder_says_it_is_unlocked_and_stays_live() {
    init_tracing();
    let mut cluster = AgentCluster::start_witnessed(2);
    let primary = cluster.settled(&[0, 1], PATIENCE).await;
    let replica = 1 - primary;
    let (code, text) = cluster.send(replica, Method::PATCH, "/config", r#"{"pause": true}"#).await;
    assert_eq!(code, 200, "{text}");
    wait_for("the pause on the replica", PATIENCE, || async {
        let (_, status) = cluster.rest(replica, "/patroni").await?;
        (status["pause"] == true).then_some(())
    })
    .await;

    // The primary's agent dies: nobody renews the lease, and paused, nobody takes it.
    cluster.signal_agent(primary, libc::SIGKILL);
    let status = wait_for("cluster_unlocked on the replica", PATIENCE, || async {
        let (_, status) = cluster.rest(replica, "/patroni").await?;
        (status["cluster_unlocked"] == true).then_some(status)
    })
    .await;
    assert_eq!(status["role"], "replica", "paused: no promotion");
    let (_, _, text) = get(&cluster, replica, "/metrics").await;
    assert_eq!(sample(&text, "patroni_cluster_unlocked"), Some(1.0), "{text}");
    assert_eq!(cluster.rest(replica, "/liveness").await.map(|(code, _)| code), Some(200));
    cluster.kill_postgres(primary);
}
