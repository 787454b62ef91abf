//! Synchronous replication on MariaDB 10.11 (semi-synchronous, `AFTER_SYNC`) with real agents: in `on`
//! the primary's commits wait for the one standby it publishes and for no other replica, no failover goes
//! to a replica that may lack an acknowledged commit, and none is lost when the primary node is killed.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::mariadb::{self, app_query, query, AppWriter, APP_GRANTS};
use vigil_integration::wait_for;

const PATIENCE: Duration = Duration::from_secs(120);

/// Three settled nodes in `synchronous_mode: on` with the schema `app` and its user, and a published
/// synchronous standby; returns the cluster, the primary, the standby and the other replica.
async fn settled_in_on() -> (AgentCluster, usize, usize, usize) {
    let mut cluster = mariadb::start_with(3, "synchronous_mode: on");
    cluster.agents_started(Duration::from_secs(60)).await.expect("agents started");
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let schema = ["CREATE DATABASE app", "CREATE TABLE app.t (id INT UNSIGNED PRIMARY KEY) ENGINE=InnoDB"];
    for sql in schema.iter().chain(&APP_GRANTS) {
        query(&cluster, primary, sql).await.expect(sql);
    }
    let standby = sync_standby(&cluster, primary).await;
    let other = (0..3).find(|i| *i != primary && *i != standby).expect("another replica");
    (cluster, primary, standby, other)
}

/// Waits until `GET /cluster` on `primary` names a synchronous standby; returns it.
async fn sync_standby(cluster: &AgentCluster, primary: usize) -> usize {
    wait_for("a published synchronous standby", PATIENCE, || async {
        let (_, body) = cluster.rest(primary, "/cluster").await?;
        let members = body["members"].as_array()?.clone();
        let name = members.iter().find(|m| m["role"] == "sync_standby")?["name"].as_str()?.to_owned();
        cluster.nodes.iter().position(|n| n.name == name)
    })
    .await
}

/// The rows of `acked` that node `i` lacks.
async fn lost(cluster: &AgentCluster, i: usize, acked: &[(u32, usize)]) -> Vec<u32> {
    let present: BTreeSet<String> =
        query(cluster, i, "SELECT id FROM app.t").await.expect("rows").into_iter().collect();
    acked.iter().map(|(id, _)| *id).filter(|id| !present.contains(&id.to_string())).collect()
}

/// `name`'s value in node `i`'s global status.
async fn status(cluster: &AgentCluster, i: usize, name: &str) -> String {
    let sql =
        format!("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '{name}'");
    query(cluster, i, &sql).await.expect("status").concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_on_commits_wait_for_the_published_standby_alone() {
    let (cluster, primary, standby, other) = settled_in_on().await;
    assert_eq!(status(&cluster, primary, "RPL_SEMI_SYNC_MASTER_STATUS").await, "ON");
    assert_eq!(
        status(&cluster, standby, "RPL_SEMI_SYNC_SLAVE_STATUS").await,
        "ON",
        "the standby acknowledges"
    );
    assert_eq!(
        status(&cluster, other, "RPL_SEMI_SYNC_SLAVE_STATUS").await,
        "OFF",
        "the other replica does not"
    );
    let (_, body) = cluster.rest(primary, "/patroni").await.expect("status");
    assert_eq!(body["vigil"]["sync_state"], "sync", "{body}");
    app_query(&cluster, primary, "INSERT INTO app.t VALUES (1)")
        .await
        .expect("a commit the standby acknowledges");

    // The standby's server stops answering: a commit waits, though the other replica receives it.
    let server = cluster.mariadbd_pid(standby).expect("the standby's mariadbd");
    // SAFETY: SIGSTOP to a server this test's agents started.
    unsafe { libc::kill(server, libc::SIGSTOP) };
    let waiting = tokio::spawn({
        let (host, port) = (cluster.nodes[primary].host.clone(), cluster.nodes[primary].pg_port);
        async move {
            let mut conn = mariadb::connect(&host, port, mariadb::APP_USER).await?;
            mysql_async::prelude::Queryable::query_drop(&mut conn, "INSERT INTO app.t VALUES (2)").await
        }
    });
    wait_for("a commit waiting for the standby's acknowledgement", PATIENCE, || async {
        let sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE '%semi-sync ACK%'";
        (query(&cluster, primary, sql).await.ok()? == ["1"]).then_some(())
    })
    .await;
    let on_other = query(&cluster, other, "SELECT COUNT(*) FROM app.t WHERE id = 2").await;
    // SAFETY: as above.
    unsafe { libc::kill(server, libc::SIGCONT) };
    assert_eq!(on_other.expect("count on the other replica"), ["1"], "the other replica received it");
    let done = tokio::time::timeout(PATIENCE, waiting).await.expect("the commit completes").expect("task");
    done.expect("the waiting commit is acknowledged once the standby answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_failover_to_a_replica_that_may_lack_a_commit_while_the_standby_is_down_too() {
    let (mut cluster, primary, standby, other) = settled_in_on().await;
    let writer = AppWriter::start(&cluster, Duration::from_millis(2));
    wait_for("100 commits", PATIENCE, || async { (writer.acks().len() >= 100).then_some(()) }).await;

    // The primary's node crashes (its agent killed, its server by the lifeline) while the standby's server
    // is down and cannot start (its data directory unreadable); the standby's agent still runs, so the
    // store keeps its quorum.
    let data_dir = cluster.home(standby).join("mysql");
    let mode = |bits: u32| std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(bits));
    mode(0o000).expect("chmod 000");
    cluster.kill_server(standby);
    cluster.signal_agent(primary, libc::SIGKILL);
    let hold = std::time::Instant::now();
    while hold.elapsed() < Duration::from_secs(12) {
        let (code, _) = cluster.rest(other, "/primary").await.unwrap_or_default();
        assert_ne!(
            code, 200,
            "{} took over without the commits only the standby may hold",
            cluster.nodes[other].name
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, view) = cluster.rest(other, "/cluster").await.expect("/cluster");
    let me = &cluster.nodes[other].name;
    let members = view["members"].as_array().cloned().unwrap_or_default();
    let reason = members.iter().find(|m| m["name"] == me.as_str()).map(|m| m["reason"].to_string());
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("not taking over")),
        "{me} says why it waits: {reason:?}"
    );

    // The standby's server starts again: a failover happens, and loses nothing acknowledged.
    mode(0o700).expect("chmod 700");
    let new = cluster.primary(PATIENCE).await;
    assert_ne!(new, primary);
    let acked = writer.stop().await;
    let lost = lost(&cluster, new, &acked).await;
    assert!(lost.is_empty(), "acknowledged commits lost: {lost:?}");
    eprintln!("{} acknowledged commits, all on {}", acked.len(), cluster.nodes[new].name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_commit_is_lost_when_the_primary_node_is_killed_five_times() {
    let (mut cluster, mut primary, _, _) = settled_in_on().await;
    let writer = AppWriter::start(&cluster, Duration::from_millis(2));
    for round in 1..=5 {
        sync_standby(&cluster, primary).await;
        let before = writer.acks().len();
        wait_for("50 more commits", PATIENCE, || async {
            (writer.acks().len() >= before + 50).then_some(())
        })
        .await;

        cluster.signal_agent(primary, libc::SIGKILL);
        cluster.kill_server(primary);
        let survivors: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
        let new = cluster.settled(&survivors, PATIENCE).await;
        wait_for("commits on the new primary", PATIENCE, || async {
            writer.acks().iter().any(|(_, node)| *node == new).then_some(())
        })
        .await;
        let acked = writer.acks();
        let lost = lost(&cluster, new, &acked).await;
        assert!(lost.is_empty(), "round {round}: acknowledged commits lost: {lost:?}");
        eprintln!("round {round}: {} acknowledged commits, all on {}", acked.len(), cluster.nodes[new].name);

        if round < 5 {
            cluster.start_agent(primary);
            cluster.streaming_replica(primary, PATIENCE).await;
        }
        primary = new;
    }
    writer.stop().await;
}

/// Commits one row at a time over one connection to `primary` as the application user, ids from
/// `first`; returns each commit's time.
async fn commit_times(cluster: &AgentCluster, primary: usize, first: u32, count: u32) -> Vec<Duration> {
    let node = &cluster.nodes[primary];
    let mut conn = mariadb::connect(&node.host, node.pg_port, mariadb::APP_USER).await.expect("connect");
    let mut times = Vec::new();
    for id in first..first + count {
        let started = std::time::Instant::now();
        let insert = format!("INSERT INTO app.t VALUES ({id})");
        mysql_async::prelude::Queryable::query_drop(&mut conn, insert).await.expect("insert");
        times.push(started.elapsed());
    }
    times
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark, its figures are in BENCHMARKS.md"]
async fn bench_semi_sync_commit_cost() {
    let (cluster, primary, _, _) = settled_in_on().await;
    let (rounds, count) = (3, 1000);
    let (mut semi_sync, mut asynchronous) = (Vec::new(), Vec::new());
    let mut id = 1;
    for _ in 0..rounds {
        for mode in ["on", "off"] {
            let patch = format!(r#"{{"synchronous_mode": "{mode}"}}"#);
            let (code, body) = cluster.send(primary, reqwest::Method::PATCH, "/config", &patch).await;
            assert_eq!(code, 200, "{body}");
            let wanted = if mode == "on" { "ON" } else { "OFF" };
            wait_for("the primary's semi-synchronous state", PATIENCE, || async {
                (status(&cluster, primary, "RPL_SEMI_SYNC_MASTER_STATUS").await == wanted).then_some(())
            })
            .await;
            if mode == "on" {
                sync_standby(&cluster, primary).await;
            }
            let acknowledged = status(&cluster, primary, "RPL_SEMI_SYNC_MASTER_YES_TX").await;
            let times = commit_times(&cluster, primary, id, count).await;
            let now = status(&cluster, primary, "RPL_SEMI_SYNC_MASTER_YES_TX").await;
            let waited = now.parse::<u64>().unwrap_or(0) - acknowledged.parse::<u64>().unwrap_or(0);
            assert_eq!(
                waited,
                if mode == "on" { u64::from(count) } else { 0 },
                "commits acknowledged by a replica"
            );
            id += count;
            if mode == "on" {
                semi_sync.extend(times)
            } else {
                asynchronous.extend(times)
            }
        }
    }
    for (mode, times) in [("async", &mut asynchronous), ("semi-sync (on)", &mut semi_sync)] {
        times.sort();
        let total: Duration = times.iter().sum();
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        eprintln!(
            "{mode}: {} commits, {:.0} commits/s, p50 {:?}, p99 {:?}, max {:?}",
            times.len(),
            times.len() as f64 / total.as_secs_f64(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}
