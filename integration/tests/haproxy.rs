//! HAProxy in front of real agents, configured like `examples/haproxy.cfg`: writes through the read-write
//! port survive a kill -9 of the primary node and a planned switchover, reads through the read-only port
//! reach a replica, and HAProxy's health checks leave no errors in the agents' logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use vigil_integration::agents::AgentCluster;
use vigil_integration::haproxy::{sample_up, HaProxy, PRIMARY_BACKEND, REPLICAS_BACKEND};
use vigil_integration::writer::{self, Writer};
use vigil_integration::{init_tracing, strip_ansi, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);
/// The bound on one write attempt through HAProxy (connect, authenticate, insert).
const ATTEMPT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_haproxy_reach_the_new_primary_after_the_primary_node_is_killed() {
    init_tracing();
    let mut cluster = AgentCluster::start_with(3, |_| String::new(), "synchronous_mode: on");
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.query(old, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    // Without it, "no acknowledged write is lost" would not hold: with asynchronous replication a commit
    // acknowledged by the old primary (even by a backend that outlived its killed postmaster, until HAProxy
    // cuts its session) may never reach the new one.
    cluster.sync_state(old, "sync", PATIENCE).await;
    let haproxy = HaProxy::start(&cluster).await;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let name = |i: usize| names[i].clone();
    let replicas: Vec<String> = all.iter().filter(|i| **i != old).map(|i| name(*i)).collect();
    haproxy.wait_for_up(PRIMARY_BACKEND, &[&name(old)], PATIENCE).await;
    haproxy.wait_for_up(REPLICAS_BACKEND, &[&replicas[0], &replicas[1]], PATIENCE).await;

    let writer = Writer::on_port(haproxy.rw_port);
    let count = || writer.count();
    wait_for("100 rows written through HAProxy", PATIENCE, || async { (count() >= 100).then_some(()) }).await;
    let old_port = cluster.nodes[old].pg_port;
    assert!(writer.acks().iter().all(|a| a.server_port == old_port), "all on the old primary");

    // kill -9 of the primary's agent and its postgres, while the writer keeps going.
    let killed_at = Instant::now();
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);

    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = cluster.primary(PATIENCE).await;
    assert_ne!(new, old, "a survivor took over");
    let new_port = cluster.nodes[new].pg_port;
    let resumed = wait_for("writes through HAProxy to succeed on the new primary", PATIENCE, || async {
        writer.acks().iter().find(|a| a.server_port == new_port).map(|a| a.at)
    })
    .await;
    // A few more writes on the new primary, then stop the writer.
    let resumed_count = count();
    wait_for("more writes on the new primary", PATIENCE, || async {
        (count() >= resumed_count + 20).then_some(())
    })
    .await;
    let (acks, failures) = writer.stop().await;
    eprintln!(
        "writes resumed through HAProxy {:?} after the kill; {} rows acknowledged, {} failed attempts",
        resumed - killed_at,
        acks.len(),
        failures.len()
    );

    // HAProxy routes writes to the new primary only; /primary on the agents agrees.
    assert_eq!(cluster.primary(PATIENCE).await, new);
    let up = haproxy.up_servers(PRIMARY_BACKEND).await.expect("show servers state");
    assert_eq!(up, [name(new)], "servers UP in {PRIMARY_BACKEND}: {:?}", haproxy.servers(None).await);
    for ack in acks.iter().filter(|a| a.at > resumed) {
        assert_eq!(ack.server_port, new_port, "row {} after the failover committed elsewhere", ack.id);
    }

    // Every acknowledged row is on the new primary.
    let present = writer::rows_on(&cluster, new).await;
    let lost: Vec<String> = acks
        .iter()
        .filter(|a| !present.contains(&a.id))
        .map(|a| {
            let (sign, delta) =
                if a.at >= killed_at { ("+", a.at - killed_at) } else { ("-", killed_at - a.at) };
            format!("row {} by port {} at kill{sign}{delta:?}", a.id, a.server_port)
        })
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged rows missing on the new primary (old primary's port {old_port}): {lost:?}"
    );

    // The read-only port answers, from the surviving replica.
    let replica = survivors.iter().copied().find(|i| *i != new).expect("a surviving replica");
    cluster.streaming_replica(replica, PATIENCE).await;
    haproxy.wait_for_up(REPLICAS_BACKEND, &[&name(replica)], PATIENCE).await;
    let sql = "SELECT pg_is_in_recovery(), inet_server_port(), count(*) FROM t";
    let (in_recovery, port, rows) = wait_for("a read through HAProxy's read-only port", PATIENCE, || async {
        let read = async {
            let client = writer::connect(&format!("host=127.0.0.1 port={}", haproxy.ro_port)).await.ok()?;
            let row = client.query_one(sql, &[]).await.ok()?;
            Some((row.get::<_, bool>(0), row.get::<_, i32>(1), row.get::<_, i64>(2)))
        };
        tokio::time::timeout(ATTEMPT, read).await.ok().flatten()
    })
    .await;
    assert!(in_recovery, "the read-only port reached a server that is not in recovery");
    assert_eq!(port as u16, cluster.nodes[replica].pg_port, "served by the surviving replica");
    assert!(rows > 0, "the replica has rows");
}

/// Words of an error about the REST server or its connections (hyper's and axum's errors included).
const REST_WORDS: [&str; 10] = [
    "server failed",
    "restapi",
    "rest api",
    "rest server",
    "hyper",
    "axum",
    "broken pipe",
    "connection reset",
    "incomplete message",
    "/primary",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_health_checks_leave_no_rest_errors_in_the_agents_logs() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    let haproxy = HaProxy::start(&cluster).await;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let name = |i: usize| names[i].clone();
    let replicas: Vec<String> = all.iter().filter(|i| **i != primary).map(|i| name(*i)).collect();
    haproxy.wait_for_up(PRIMARY_BACKEND, &[&name(primary)], PATIENCE).await;
    haproxy.wait_for_up(REPLICAS_BACKEND, &[&replicas[0], &replicas[1]], PATIENCE).await;

    // Let every server be checked a few more times in both backends (every 500 ms), then read the
    // results: L7OK (200) where UP, L7STS (503) where DOWN — each check a complete HTTP exchange.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expected = |backend: &str, server: &str| {
        let up = if backend == PRIMARY_BACKEND {
            server == name(primary)
        } else {
            replicas.iter().any(|r| r == server)
        };
        if up {
            ("UP", "L7OK", "200")
        } else {
            ("DOWN", "L7STS", "503")
        }
    };
    // `check_status` reads `* L7OK` (and `check_code` 0) while a check is under way: read again then.
    let mut mismatches = Vec::new();
    for _ in 0..50 {
        let stat = haproxy.stat().await.expect("show stat");
        mismatches = stat
            .iter()
            .filter(|l| l["svname"].starts_with("node"))
            .filter(|l| {
                let seen = (l["status"].as_str(), l["check_status"].as_str(), l["check_code"].as_str());
                seen != expected(&l["pxname"], &l["svname"])
            })
            .map(|l| {
                let (px, sv) = (&l["pxname"], &l["svname"]);
                format!("{px}/{sv}: {} {} {}", l["status"], l["check_status"], l["check_code"])
            })
            .collect();
        if mismatches.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(mismatches.is_empty(), "unexpected check results: {mismatches:?}");

    // No ERROR line about the REST server (or its connections) in any agent's log. (Raft's own transient
    // RPC errors between store nodes are not the REST server's.)
    let mut rest_errors = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let api = format!("127.0.0.1:{}", node.api_port);
        for line in cluster.log(i).lines().map(strip_ansi).filter(|l| l.contains("ERROR")) {
            let lower = line.to_lowercase();
            let about_rest = line.contains(&api) || REST_WORDS.iter().any(|word| lower.contains(word));
            if about_rest && !line.contains("openraft") {
                rest_errors.push(format!("{}: {line}", node.name));
            }
        }
    }
    assert!(rest_errors.is_empty(), "REST errors in the agents' logs:\n{}", rest_errors.join("\n"));
}

/// `POST` `body` to `path` on node `i`'s REST API: the status code and the answer's text.
async fn post(cluster: &AgentCluster, i: usize, path: &str, body: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{}{path}", cluster.nodes[i].api_port);
    let client = reqwest::Client::builder().no_proxy().build().expect("http client");
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .timeout(PATIENCE)
        .send()
        .await
        .expect("POST to the agent");
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// A planned switchover with the writer on HAProxy's read-write port and asynchronous replication (the
/// default): the old primary stops with a shutdown checkpoint that PostgreSQL streams to its replicas
/// before it exits, and the candidate takes over only once its WAL receiver has stopped, so no
/// acknowledged write may be lost; HAProxy then routes writes to the candidate alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_through_haproxy_loses_no_write_and_leaves_one_server_up() {
    init_tracing();
    let cluster = AgentCluster::start_checked(3, |_| String::new()).await;
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.query(old, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    let haproxy = Arc::new(HaProxy::start(&cluster).await);
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let name = |i: usize| names[i].clone();
    haproxy.wait_for_up(PRIMARY_BACKEND, &[&name(old)], PATIENCE).await;
    let candidate = all.into_iter().find(|i| *i != old).expect("a replica");
    let (old_port, new_port) = (cluster.nodes[old].pg_port, cluster.nodes[candidate].pg_port);

    let writer = Writer::on_port(haproxy.rw_port);
    let count = || writer.count();
    wait_for("100 rows written through HAProxy", PATIENCE, || async { (count() >= 100).then_some(()) }).await;
    assert!(writer.acks().iter().all(|a| a.server_port == old_port), "all on the old primary");

    // The switchover, while the writer keeps going; HAProxy's view is sampled throughout.
    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_up(haproxy.clone(), sampling.clone(), PATIENCE * 2));
    let asked_at = Instant::now();
    let body = serde_json::json!({"leader": name(old), "candidate": name(candidate)}).to_string();
    let (code, text) = post(&cluster, old, "/switchover", &body).await;
    let returned_at = Instant::now();
    assert_eq!(code, 200, "POST /switchover: {text}");
    assert!(text.contains(&name(candidate)), "POST /switchover: {text}");

    let resumed = wait_for("writes through HAProxy to succeed on the candidate", PATIENCE, || async {
        writer.acks().iter().find(|a| a.server_port == new_port).map(|a| a.at)
    })
    .await;
    let resumed_count = count();
    wait_for("more writes on the new primary", PATIENCE, || async {
        (count() >= resumed_count + 20).then_some(())
    })
    .await;
    // HAProxy's read-write backend: the candidate alone is UP. The old primary's `/primary` answers 503
    // from the moment it releases the lease, and HAProxy marks it DOWN after `fall 2` failed checks
    // `inter 500ms` apart: should the candidate come UP first, that takes up to about 1 s more.
    let mark_down = resumed + Duration::from_millis(1500);
    let mut up = haproxy.up_servers(PRIMARY_BACKEND).await.expect("show servers state");
    for _ in 0..100 {
        if up == [name(candidate)] || Instant::now() >= mark_down {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        up = haproxy.up_servers(PRIMARY_BACKEND).await.expect("show servers state");
    }
    let servers = haproxy.servers(None).await;
    sampling.store(true, Ordering::Relaxed);
    let (acks, failures) = writer.stop().await;
    let changes = sampler.await.expect("sampler task");
    let since = |t: Instant| {
        if t >= asked_at {
            format!("+{:.3}s", (t - asked_at).as_secs_f64())
        } else {
            format!("-{:.3}s", (asked_at - t).as_secs_f64())
        }
    };
    let last_old = acks.iter().filter(|a| a.server_port == old_port).map(|a| a.at).max().expect("old acks");
    let timeline: Vec<String> = changes.iter().map(|(t, up)| format!("{} UP {up:?}", since(*t))).collect();
    eprintln!(
        "switchover {} -> {}: POST answered 200 at {}; last write on the old primary at {}, first on the \
         candidate at {} (window {:?}); {} rows acknowledged, {} failed attempts; \
         HAProxy {PRIMARY_BACKEND}: {}",
        name(old),
        name(candidate),
        since(returned_at),
        since(last_old),
        since(resumed),
        resumed - last_old,
        acks.len(),
        failures.len(),
        timeline.join(", ")
    );
    assert_eq!(up, [name(candidate)], "servers UP in {PRIMARY_BACKEND}: {servers:?}");
    assert_eq!(cluster.primary(PATIENCE).await, candidate, "/primary answers 200 on the candidate alone");
    for ack in acks.iter().filter(|a| a.at > resumed) {
        assert_eq!(ack.server_port, new_port, "row {} after the switchover committed elsewhere", ack.id);
    }

    // Every acknowledged row is on the new primary.
    let present = writer::rows_on(&cluster, candidate).await;
    let lost: Vec<String> = acks
        .iter()
        .filter(|a| !present.contains(&a.id))
        .map(|a| format!("row {} by port {} at {}", a.id, a.server_port, since(a.at)))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged rows missing on the new primary {} (old primary's port {old_port}): {lost:?}",
        name(candidate)
    );

    // The old primary follows the candidate.
    cluster.streaming_replica(old, PATIENCE).await;
}
