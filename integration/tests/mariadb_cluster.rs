//! Agents managing real MariaDB 10.11 servers (`mariadb-server`): three nodes bootstrap and replicate
//! with GTIDs, a crashed primary node (its agent killed, and with it its server by the lifeline) is
//! replaced by a replica that has every acknowledged row, and the old node rejoins as a replica; of two
//! replicas, the one whose IO thread is throttled loses to the one that received more; a former primary
//! with transactions the new one lacks reports them and is cloned again.

use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};
use vigil_integration::agents::AgentCluster;
use vigil_integration::haproxy::{HaProxy, PRIMARY_BACKEND};
use vigil_integration::mariadb::{self, app_query, query, query_at, APP_GRANTS, APP_USER};
use vigil_integration::wait_for;

const PATIENCE: Duration = Duration::from_secs(120);

/// Crashes primary `old`'s node (its agent killed, and its server by the lifeline) once every replica has
/// the rows of `app.t` it has; returns the node that then accepted the application's write, and how long
/// after the crash. (Replication is asynchronous: a row the primary acknowledged just before a crash may
/// be on no replica; `mariadb_sync.rs` tests the synchronous modes, which keep it.)
async fn crash_and_first_write(cluster: &mut AgentCluster, old: usize) -> (usize, Duration) {
    replicas_have_every_row(cluster, old).await;
    let crashed = Instant::now();
    cluster.signal_agent(old, libc::SIGKILL);
    let new = first_write_elsewhere(cluster, old).await;
    (new, crashed.elapsed())
}

/// Waits until every replica has as many rows of `app.t` as `primary`.
async fn replicas_have_every_row(cluster: &AgentCluster, primary: usize) {
    let count = "SELECT COUNT(*) FROM app.t";
    let rows = query(cluster, primary, count).await.expect("count on the primary");
    for i in (0..cluster.nodes.len()).filter(|i| *i != primary) {
        wait_for("the replicas to have every row", PATIENCE, || async {
            (query(cluster, i, count).await.ok()? == rows).then_some(())
        })
        .await;
    }
}

/// The node other than `old` that first accepts the application's write of row 1000.
async fn first_write_elsewhere(cluster: &AgentCluster, old: usize) -> usize {
    let others: Vec<usize> = (0..cluster.nodes.len()).filter(|i| *i != old).collect();
    wait_for("a write accepted by another node", PATIENCE, || async {
        for &i in &others {
            if app_query(cluster, i, "INSERT INTO app.t VALUES (1000)").await.is_ok() {
                return Some(i);
            }
        }
        None
    })
    .await
}

/// Asks primary `old` to hand over to `candidate`; returns how long after the request the candidate accepted
/// the application's write of row `id`.
async fn switch_over_and_first_write(
    cluster: &AgentCluster,
    old: usize,
    candidate: usize,
    id: u32,
) -> Duration {
    let (leader, to) = (&cluster.nodes[old].name, &cluster.nodes[candidate].name);
    let body = serde_json::json!({"leader": leader, "candidate": to}).to_string();
    let asked = Instant::now();
    let (code, text) = cluster.send(old, reqwest::Method::POST, "/switchover", &body).await;
    assert_eq!(code, 200, "{text}");
    let insert = format!("INSERT INTO app.t VALUES ({id})");
    wait_for("a write on the candidate", PATIENCE, || async {
        app_query(cluster, candidate, &insert).await.ok().map(|_| asked.elapsed())
    })
    .await
}

/// Three settled nodes with the schema `app` (table `app.t`) and its application user; returns the
/// cluster and its primary.
async fn settled_with_app_schema() -> (AgentCluster, usize) {
    let mut cluster = mariadb::start(3);
    cluster.agents_started(Duration::from_secs(60)).await.expect("agents started");
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let schema = ["CREATE DATABASE app", "CREATE TABLE app.t (id INT UNSIGNED PRIMARY KEY) ENGINE=InnoDB"];
    for sql in schema.iter().chain(&APP_GRANTS) {
        query(&cluster, primary, sql).await.expect(sql);
    }
    (cluster, primary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crashed_primary_node_is_replaced_by_a_replica_with_every_acknowledged_row_and_rejoins() {
    let (mut cluster, old) = settled_with_app_schema().await;
    let replica = (old + 1) % 3;
    wait_for("the application user on a replica", PATIENCE, || async {
        app_query(&cluster, replica, "SELECT 1").await.ok()
    })
    .await;
    let refused = app_query(&cluster, replica, "INSERT INTO app.t VALUES (999)").await.unwrap_err();
    assert!(refused.contains("read-only") || refused.contains("1290"), "a replica refuses writes: {refused}");
    let mut acknowledged = Vec::new();
    for id in 1..=20u32 {
        app_query(&cluster, old, &format!("INSERT INTO app.t VALUES ({id})")).await.expect("insert");
        acknowledged.push(id.to_string());
    }
    let status = cluster.rest(old, "/patroni").await.expect("status").1;
    assert!(status["vigil"]["position"].as_str().is_some_and(|p| p.starts_with("trx:")), "{status}");
    let token = status["vigil"]["fencing_token"].as_u64().expect("the primary's token");
    let (_, view) = cluster.rest(old, "/cluster").await.expect("/cluster");
    for member in view["members"].as_array().expect("members") {
        assert!(member["lsn"].as_str().is_some_and(|p| p.starts_with('#')), "sequence numbers: {member}");
        assert!(member["lag"].is_u64(), "lag in transactions: {member}");
    }

    let server = cluster.mariadbd_pid(old).expect("the old primary's mariadbd");
    let (new, downtime) = crash_and_first_write(&mut cluster, old).await;
    eprintln!("node crash: first write on {} after {downtime:?}", cluster.nodes[new].name);
    wait_for("the lifeline to kill the old primary's mariadbd", PATIENCE, || async {
        // SAFETY: signal 0 only checks whether the process exists.
        (unsafe { libc::kill(server, 0) } != 0).then_some(())
    })
    .await;
    let rows = query(&cluster, new, "SELECT id FROM app.t WHERE id <= 20 ORDER BY id").await.expect("rows");
    assert_eq!(rows, acknowledged, "every acknowledged row is on the new primary");
    let status = cluster.rest(new, "/patroni").await.expect("status").1;
    let new_token = status["vigil"]["fencing_token"].as_u64().expect("the new primary's token");
    assert!(new_token > token, "new token {new_token} not above {token}");
    let term = query(&cluster, new, "SELECT token FROM vigil.fence").await.expect("term");
    assert_eq!(term, [new_token.to_string()], "the new term is recorded in vigil.fence");

    // The old node comes back and follows the new primary.
    cluster.start_agent(old);
    cluster.streaming_replica(old, PATIENCE).await;
    let all = "SELECT COUNT(*) FROM app.t";
    wait_for("the old node to have every row", PATIENCE, || async {
        (query(&cluster, old, all).await.ok()? == ["21"]).then_some(())
    })
    .await;
    assert_eq!(cluster.primary(PATIENCE).await, new, "one primary, the new one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_io_thread_is_throttled_loses_to_one_that_received_more() {
    let (mut cluster, old) = settled_with_app_schema().await;
    let (ahead, behind) = ((old + 1) % 3, (old + 2) % 3);
    let wide = "CREATE TABLE app.wide (id INT UNSIGNED PRIMARY KEY, pad VARCHAR(2000)) ENGINE=InnoDB";
    query(&cluster, old, wide).await.expect("table");
    for i in [ahead, behind] {
        wait_for("the table on every replica", PATIENCE, || async {
            query(&cluster, i, "SELECT COUNT(*) FROM app.wide").await.ok()
        })
        .await;
    }
    // One replica receives the binary log at 1 KiB/s: still streaming, but slowly.
    query(&cluster, behind, "SET GLOBAL read_binlog_speed_limit = 1").await.expect("throttle");
    for id in 1..=60u32 {
        let insert = format!("INSERT INTO app.wide VALUES ({id}, REPEAT('x', 1500))");
        query(&cluster, old, &insert).await.expect("insert");
    }
    let count = "SELECT COUNT(*) FROM app.wide";
    wait_for("the unthrottled replica to have every row", PATIENCE, || async {
        (query(&cluster, ahead, count).await.ok()? == ["60"]).then_some(())
    })
    .await;
    // It still streams, but has received less than the primary logged.
    let logged = query(&cluster, old, "SELECT @@gtid_binlog_pos").await.expect("position").remove(0);
    let node = &cluster.nodes[behind];
    let mut session = mariadb::connect(&node.host, node.pg_port, mariadb::SUPERUSER).await.expect("session");
    let status: mysql_async::Row =
        session.query_first("SHOW SLAVE STATUS").await.expect("status").expect("a replica");
    let io_running: String = status.get("Slave_IO_Running").expect("Slave_IO_Running");
    let received: String = status.get("Gtid_IO_Pos").expect("Gtid_IO_Pos");
    drop(session.disconnect().await);
    let seq = |gtid: &str| gtid.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()).expect("a GTID");
    assert!(seq(&received) < seq(&logged), "throttled, it received less: {received} of {logged}");
    assert_eq!(io_running, "Yes", "throttled, not cut");

    cluster.signal_agent(old, libc::SIGKILL);
    let new = first_write_elsewhere(&cluster, old).await;
    assert_eq!(new, ahead, "the replica that received more is promoted");
    assert_eq!(query(&cluster, new, count).await.expect("count"), ["60"], "with every acknowledged row");
    query(&cluster, behind, "SET GLOBAL read_binlog_speed_limit = 0").await.expect("unthrottle");
    wait_for("the throttled replica to follow the new primary and have every row", PATIENCE, || async {
        (query(&cluster, behind, count).await.ok()? == ["60"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_hands_over_every_acknowledged_row_and_the_old_primary_follows() {
    let (mut cluster, old) = settled_with_app_schema().await;
    for id in 1..=50u32 {
        app_query(&cluster, old, &format!("INSERT INTO app.t VALUES ({id})")).await.expect("insert");
    }
    let candidate = (old + 1) % 3;
    let downtime = switch_over_and_first_write(&cluster, old, candidate, 51).await;
    eprintln!("switchover: first write on {} {downtime:?} after the request", cluster.nodes[candidate].name);
    assert_eq!(cluster.primary(PATIENCE).await, candidate);
    let count = query(&cluster, candidate, "SELECT COUNT(*) FROM app.t WHERE id <= 50").await.expect("count");
    assert_eq!(count, ["50"], "every acknowledged row is on the new primary");
    cluster.streaming_replica(old, PATIENCE).await;
    wait_for("the old primary to have the new primary's write", PATIENCE, || async {
        (query(&cluster, old, "SELECT COUNT(*) FROM app.t").await.ok()? == ["51"]).then_some(())
    })
    .await;
    let refused = app_query(&cluster, old, "INSERT INTO app.t VALUES (52)").await.unwrap_err();
    assert!(
        refused.contains("read-only") || refused.contains("1290"),
        "the old primary is read-only: {refused}"
    );
    cluster.start_agent(old); // restarted in place: it stays a replica
    cluster.streaming_replica(old, PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_haproxy_reach_the_new_primary_after_the_primary_node_crashes() {
    let (mut cluster, old) = settled_with_app_schema().await;
    let haproxy = HaProxy::start(&cluster).await;
    haproxy.wait_for_up(PRIMARY_BACKEND, &[&cluster.nodes[old].name], PATIENCE).await;
    let port = haproxy.rw_port;
    let through = |sql: String| async move { query_at("127.0.0.1", port, APP_USER, &sql).await };
    for id in 1..=10u32 {
        through(format!("INSERT INTO app.t VALUES ({id})")).await.expect("a write through HAProxy");
    }
    let (new, _) = crash_and_first_write(&mut cluster, old).await;
    haproxy.wait_for_up(PRIMARY_BACKEND, &[&cluster.nodes[new].name], PATIENCE).await;
    wait_for("a write through HAProxy after the crash", PATIENCE, || async {
        through("INSERT INTO app.t VALUES (11)".to_owned()).await.ok()
    })
    .await;
    let rows = query(&cluster, new, "SELECT COUNT(*) FROM app.t WHERE id <= 11").await.expect("count");
    assert_eq!(rows, ["11"], "every write acknowledged through HAProxy is on the new primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_former_primary_with_errant_transactions_reports_them_and_is_cloned_again() {
    let (mut cluster, old) = settled_with_app_schema().await;
    for id in 1..=20u32 {
        app_query(&cluster, old, &format!("INSERT INTO app.t VALUES ({id})")).await.expect("insert");
    }
    replicas_have_every_row(&cluster, old).await;
    // The replicas stop receiving (a cut link), the primary acknowledges three more transactions that no
    // replica has (asynchronous replication), and its node crashes. The link is cut on the primary, so
    // that no replica's agent can mend it meanwhile: replication is refused to the replication user (not
    // logged, so no replica ever sees it) and the replicas' connections are ended.
    let node = &cluster.nodes[old];
    let mut session = mariadb::connect(&node.host, node.pg_port, mariadb::SUPERUSER).await.expect("session");
    session.query_drop("SET SESSION sql_log_bin = 0").await.expect("unlogged");
    session.query_drop("REVOKE REPLICATION SLAVE ON *.* FROM 'replicator'@'%'").await.expect("revoke");
    let dumps = "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'";
    for id in session.query::<u64, _>(dumps).await.expect("the replicas' connections") {
        session.query_drop(format!("KILL {id}")).await.expect("the replica's link cut");
    }
    drop(session.disconnect().await);
    for id in 2001..=2003u32 {
        app_query(&cluster, old, &format!("INSERT INTO app.t VALUES ({id})"))
            .await
            .expect("an unreplicated write");
    }
    let server_id = query(&cluster, old, "SELECT @@server_id").await.expect("server_id").remove(0);
    let logged = query(&cluster, old, "SELECT @@gtid_binlog_pos").await.expect("binlog position").remove(0);
    let last: u64 = logged.rsplit('-').next().and_then(|n| n.parse().ok()).expect("a GTID");
    let errant = format!("0-{server_id}-{}..0-{server_id}-{last} (3 transactions)", last - 2);
    cluster.signal_agent(old, libc::SIGKILL);
    let new = first_write_elsewhere(&cluster, old).await;

    // The old node comes back: the new primary refuses it for what it lacks.
    cluster.start_agent(old);
    let shown = wait_for("the old node to report what the new primary lacks", PATIENCE, || async {
        let (_, status) = cluster.rest(old, "/patroni").await?;
        let diverged = &status["vigil"]["diverged"];
        diverged["extra"].as_str().map(|extra| (extra.to_owned(), diverged["upstream"].clone()))
    })
    .await;
    assert_eq!(shown, (errant.clone(), serde_json::json!(cluster.nodes[new].name)));
    let log = cluster.plain_log(old);
    assert!(
        log.lines().any(|l| l.contains("WARN") && l.contains("errant transactions") && l.contains(&errant)),
        "the errant GTIDs are logged:\n{log}"
    );

    // Cloned again (mariadb-backup, streamed by the new primary's agent), it follows the new primary without the errant rows, and every node ends identical.
    cluster.streaming_replica(old, PATIENCE).await;
    app_query(&cluster, new, "INSERT INTO app.t VALUES (3000)").await.expect("a write after the re-clone");
    for i in 0..3 {
        wait_for("every node to have the last write", PATIENCE, || async {
            (query(&cluster, i, "SELECT COUNT(*) FROM app.t WHERE id = 3000").await.ok()? == ["1"])
                .then_some(())
        })
        .await;
    }
    let log = cluster.plain_log(old);
    let streamed = format!("upstream={} method=mariadb_backup", cluster.nodes[new].name);
    assert!(
        log.lines().any(|l| l.contains("cloned") && l.contains(&streamed)),
        "re-cloned with a copy its new upstream's agent streamed:\n{log}"
    );
    let errant_rows = query(&cluster, old, "SELECT COUNT(*) FROM app.t WHERE id > 2000 AND id < 3000").await;
    assert_eq!(errant_rows.expect("count"), ["0"], "the errant rows are gone with the re-clone");
    let look = "SELECT CONCAT(@@gtid_binlog_pos, ' ', (SELECT COUNT(*) FROM app.t))";
    let mut seen = Vec::new();
    for i in 0..3 {
        let checksum = mariadb::checksum(&cluster, i, "app.t").await.expect("checksum");
        seen.push((query(&cluster, i, look).await.expect("position"), checksum));
    }
    assert!(seen.iter().all(|s| *s == seen[new]), "every node has the same rows and position: {seen:?}");
    assert_eq!(cluster.primary(PATIENCE).await, new, "one primary, the new one");
}

/// Node-crash failover and switchover on MariaDB, repeated on a fresh cluster each run
/// (`MARIADB_BENCH_RUNS`, default 20). Node crash: from kill -9 of the primary's agent (the lifeline kills
/// its server) to the first write another node accepts. Switchover: from the request to the first write
/// the candidate accepts; every row acknowledged before is checked on it.
/// `cargo test -p vigil-integration --test mariadb_cluster -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark, its figures are in BENCHMARKS.md"]
async fn bench_node_crash_and_switchover() {
    let runs: usize = std::env::var("MARIADB_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(20);
    let (mut crashes, mut switchovers) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let (mut cluster, old) = settled_with_app_schema().await;
        for id in 1..=20 {
            app_query(&cluster, old, &format!("INSERT INTO app.t VALUES ({id})")).await.expect("insert");
        }
        let candidate = (old + 1) % 3;
        let switchover = switch_over_and_first_write(&cluster, old, candidate, 21).await;
        let kept =
            query(&cluster, candidate, "SELECT COUNT(*) FROM app.t WHERE id <= 20").await.expect("count");
        assert_eq!(kept, ["20"], "run {run}: every row acknowledged before the switchover is kept");
        cluster.streaming_replica(old, PATIENCE).await;
        let (_, crash) = crash_and_first_write(&mut cluster, candidate).await;
        eprintln!("run {run}: switchover {switchover:?}, node crash {crash:?}");
        switchovers.push(switchover);
        crashes.push(crash);
    }
    for (what, times) in [("switchover", &mut switchovers), ("node crash", &mut crashes)] {
        times.sort();
        let (median, min, max) = (times[times.len() / 2], times[0], times[times.len() - 1]);
        eprintln!("{what}, {runs} runs: median {median:?}, min {min:?}, max {max:?}");
    }
}
