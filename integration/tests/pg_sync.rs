//! Synchronous replication with real agents and PostgreSQL 15: the primary names and publishes its
//! synchronous standbys, relaxes or blocks when none is left, hands the role over when a standby stops, and
//! no acknowledged commit is lost when the primary node is killed.

use reqwest::Method;
use std::collections::BTreeSet;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::writer::{self, Writer};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// `PATCH /config` with `patch` on node `i`, which must succeed.
async fn patch_config(cluster: &AgentCluster, i: usize, patch: &str) {
    let (code, body) = cluster.send(i, Method::PATCH, "/config", patch).await;
    assert_eq!(code, 200, "PATCH /config {patch}: {body}");
}

/// Waits until `GET /cluster` on the primary lists a member with `role` (`sync_standby`, `quorum_standby`):
/// published in the `sync` key, so a failover may promote it.
async fn published(cluster: &AgentCluster, primary: usize, role: &str) {
    wait_for(&format!("a published {role}"), PATIENCE, || async {
        roles(cluster, primary).await.iter().any(|(_, r)| r == role).then_some(())
    })
    .await;
}

/// The primary's `synchronous_standby_names`.
async fn standby_names(cluster: &AgentCluster, primary: usize) -> String {
    let rows = cluster.query(primary, "SHOW synchronous_standby_names").await.expect("SHOW");
    rows.into_iter().next().unwrap_or_default()
}

/// In a three-node cluster in `on` mode: the replica the primary's `synchronous_standby_names` names, and
/// the other one.
async fn standby_and_other(cluster: &AgentCluster, primary: usize) -> (usize, usize) {
    let names = standby_names(cluster, primary).await;
    let replicas: Vec<usize> = (0..cluster.nodes.len()).filter(|i| *i != primary).collect();
    let standby = *replicas
        .iter()
        .find(|r| names == format!("FIRST 1 (\"{}\")", cluster.nodes[**r].name))
        .unwrap_or_else(|| panic!("synchronous_standby_names {names:?} names no replica"));
    let other = *replicas.iter().find(|r| **r != standby).expect("another replica");
    (standby, other)
}

/// Starts `INSERT INTO t VALUES (id)` on the primary and returns once its commit waits for a synchronous
/// standby; the task ends when the commit completes.
async fn waiting_commit(
    cluster: &AgentCluster,
    primary: usize,
    id: i64,
) -> tokio::task::JoinHandle<Result<(), tokio_postgres::Error>> {
    let client = cluster.connect(primary).await.expect("connect");
    let insert = format!("INSERT INTO t VALUES ({id})");
    let task = tokio::spawn(async move { client.simple_query(&insert).await.map(|_| ()) });
    wait_for("the commit to wait for a synchronous standby", PATIENCE, || async {
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'";
        (cluster.query(primary, waiting).await.ok()? == ["1"]).then_some(())
    })
    .await;
    task
}

/// Each member's role in `GET /cluster`, by name.
async fn roles(cluster: &AgentCluster, i: usize) -> Vec<(String, String)> {
    let (_, body) = cluster.rest(i, "/cluster").await.expect("GET /cluster");
    let members = body["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or("").into(), m["role"].as_str().unwrap_or("").into()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enabling_on_publishes_a_sync_standby_that_hands_its_role_over_when_it_stops() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    patch_config(&cluster, primary, r#"{"synchronous_mode": "on"}"#).await;
    cluster.sync_state(primary, "sync", PATIENCE).await;

    let (standby, other) = standby_and_other(&cluster, primary).await;
    let (standby_name, other_name) = (cluster.nodes[standby].name.clone(), cluster.nodes[other].name.clone());
    // Published in `sync` once PostgreSQL reports it synchronous and caught up.
    wait_for("the sync standby in /cluster", PATIENCE, || async {
        let listed = roles(&cluster, primary).await;
        let expected =
            [(standby_name.clone(), "sync_standby".into()), (other_name.clone(), "replica".into())];
        expected.iter().all(|e| listed.contains(e)).then_some(())
    })
    .await;
    // Each member learns it from the store in its own next cycle.
    for (node, sync, not_sync) in [(standby, 200, 503), (other, 503, 200)] {
        wait_for(
            &format!("/sync {sync}, /async {not_sync} on {}", cluster.nodes[node].name),
            PATIENCE,
            || async {
                let codes = (cluster.rest(node, "/sync").await?.0, cluster.rest(node, "/async").await?.0);
                (codes == (sync, not_sync)).then_some(())
            },
        )
        .await;
    }
    // `GET /patroni` on the primary lists its WAL senders as Patroni does.
    wait_for("both replicas in the primary's /patroni replication list", PATIENCE, || async {
        let (_, status) = cluster.rest(primary, "/patroni").await?;
        let mut listed: Vec<(String, String, String, i64)> = status["replication"]
            .as_array()?
            .iter()
            .map(|r| {
                let text = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                (
                    text("application_name"),
                    text("state"),
                    text("sync_state"),
                    r["sync_priority"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        listed.sort();
        let mut expected = vec![
            (standby_name.clone(), "streaming".to_owned(), "sync".to_owned(), 1),
            (other_name.clone(), "streaming".to_owned(), "async".to_owned(), 0),
        ];
        expected.sort();
        let users_and_addresses = status["replication"].as_array()?.iter().all(|r| {
            r["usename"].as_str().is_some_and(|u| !u.is_empty())
                && r["client_addr"].as_str() == Some("127.0.0.1")
        });
        (listed == expected && users_and_addresses).then_some(())
    })
    .await;

    // A planned stop of the sync standby: the role moves to the other replica before it goes, so the
    // writer's commits never wait for a standby that is gone.
    cluster.query(primary, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    let writer = Writer::start(&format!("host=127.0.0.1 port={}", cluster.nodes[primary].pg_port));
    wait_for("50 commits", PATIENCE, || async { (writer.count() >= 50).then_some(()) }).await;
    let stopping_at = tokio::time::Instant::now();
    cluster.signal_agent(standby, libc::SIGTERM);
    assert!(cluster.agent_exited(standby, PATIENCE).await, "the standby's agent exits");
    let exited_after = stopping_at.elapsed();
    assert!(
        cluster.log(standby).contains("synchronous standby role handed over"),
        "{}",
        cluster.plain_log(standby)
    );
    assert_eq!(standby_names(&cluster, primary).await, format!("FIRST 1 (\"{other_name}\")"));
    let before = writer.count();
    wait_for("commits after the stop", PATIENCE, || async { (writer.count() >= before + 50).then_some(()) })
        .await;
    let (acks, failures) = writer.stop().await;
    let failed: Vec<String> = failures
        .iter()
        .map(|f| {
            let after = f.at.duration_since(stopping_at).as_secs_f64()
                - stopping_at.duration_since(f.at).as_secs_f64();
            format!("{after:+.3}s after SIGTERM: {}", f.error)
        })
        .collect();
    assert!(failed.is_empty(), "no commit failed while the sync standby stopped: {failed:?}");
    let stall = acks.windows(2).map(|w| w[1].at - w[0].at).max().unwrap_or_default();
    eprintln!(
        "the sync standby's agent exited {exited_after:?} after SIGTERM; longest wait between two commits \
         meanwhile: {stall:?}"
    );
    cluster.sync_state(primary, "sync", PATIENCE).await;
}

/// PostgreSQL releases a waiting commit only when a standby that the rule names reports its position, and
/// a standby that already holds the commit reports again only when new WAL comes or a timer fires. Here the
/// sync standby's WAL receiver is frozen while a commit waits for it; the other replica holds that commit,
/// nothing else writes, and every report timer is off (the replica's status interval is an hour, no
/// sender or receiver timeouts). Switching to quorum mode (`ANY 1` of both) must release the commit while
/// the standby is still frozen: the agent has the standbys report once the new rule is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_rule_releases_a_commit_that_waited_for_a_standby_it_no_longer_needs() {
    init_tracing();
    let cluster = AgentCluster::start_with(3, |_| String::new(), "synchronous_mode: on");
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    cluster.sync_state(primary, "sync", PATIENCE).await;
    let (standby, other) = standby_and_other(&cluster, primary).await;
    cluster.query(primary, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    let timers = [
        (other, "wal_receiver_status_interval", "1h"),
        (other, "wal_receiver_timeout", "0"),
        (primary, "wal_sender_timeout", "0"),
    ];
    for (node, name, value) in timers {
        // ALTER SYSTEM may not run in the transaction that a query of two statements is.
        for sql in [format!("ALTER SYSTEM SET {name} = '{value}'"), "SELECT pg_reload_conf()".into()] {
            cluster.query(node, &sql).await.unwrap_or_else(|e| panic!("{sql}: {}", writer::pg_error(&e)));
        }
        cluster.eventually(node, &format!("SHOW {name}"), &[value]).await;
    }
    let receiver = cluster.wal_receiver_pid(standby, PATIENCE).await;
    let frozen = cluster.freeze(receiver);

    let waiting = waiting_commit(&cluster, primary, 1).await;
    // The background writer logs the running transactions once after any WAL of note (every 15 s at most);
    // once the other replica has reported that too, nothing writes, and nothing makes it report again.
    let written = cluster.query(primary, "SELECT pg_current_wal_insert_lsn()").await.expect("lsn").remove(0);
    let quiet = format!(
        "SELECT pg_current_wal_insert_lsn() > '{written}' AND flush_lsn >= pg_current_wal_insert_lsn() \
         FROM pg_stat_replication WHERE application_name = '{}'",
        cluster.nodes[other].name
    );
    wait_for("the standby snapshot after the commit, reported by the other replica", PATIENCE, || async {
        (cluster.query(primary, &quiet).await.ok()? == ["t"]).then_some(())
    })
    .await;
    assert!(!waiting.is_finished(), "the commit waits for the frozen standby");

    patch_config(&cluster, primary, r#"{"synchronous_mode": "quorum"}"#).await;
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the commit completes while the standby is still frozen")
        .expect("task")
        .expect("insert");
    assert!(standby_names(&cluster, primary).await.starts_with("ANY 1 ("));
    drop(frozen);
    cluster.sync_state(primary, "sync", PATIENCE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_standbys_on_relaxes_and_strict_blocks_until_one_returns() {
    init_tracing();
    let cluster = AgentCluster::start_with(3, |_| String::new(), "synchronous_mode: on");
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    cluster.sync_state(primary, "sync", PATIENCE).await;
    cluster.query(primary, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    // Both replicas stop replicating: their WAL senders are ended and the replication role may no longer
    // log in. (Their agents keep running: stopping two agents of three would take the store's majority.)
    let replicas: Vec<usize> = all.into_iter().filter(|i| *i != primary).collect();
    // Committed before the WAL senders end, so that the standbys cannot reconnect.
    for sql in ["ALTER ROLE replicator NOLOGIN", "SELECT pg_terminate_backend(pid) FROM pg_stat_replication"]
    {
        cluster.query(primary, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    // Relaxed: writes go on, and the status says replication is asynchronous.
    cluster.sync_state(primary, "relaxed", PATIENCE).await;
    cluster.query(primary, "INSERT INTO t VALUES (1)").await.expect("a relaxed commit");
    assert_eq!(standby_names(&cluster, primary).await, "");

    // Strict: a commit waits for a standby, and the status says so.
    patch_config(&cluster, primary, r#"{"synchronous_mode_strict": true}"#).await;
    cluster.sync_state(primary, "blocked", PATIENCE).await;
    let blocked = waiting_commit(&cluster, primary, 2).await;
    assert!(!blocked.is_finished(), "the commit is still waiting");
    let (_, listed) = cluster.rest(primary, "/cluster").await.expect("/cluster");
    let leader = listed["members"].as_array().into_iter().flatten().find(|m| m["role"] == "leader").cloned();
    assert_eq!(leader.map(|m| m["sync_state"].clone()), Some("blocked".into()), "{listed}");
    let (code, metrics) = cluster.send(primary, Method::GET, "/metrics", "").await;
    assert_eq!(code, 200);
    assert!(
        metrics.lines().any(|l| l.starts_with("vigil_sync_writes_blocked{") && l.ends_with(" 1")),
        "{metrics}"
    );

    // The standbys return: the commit completes.
    // This commit itself must not wait for a standby.
    let allow = "SET synchronous_commit = local; ALTER ROLE replicator LOGIN";
    cluster.query(primary, allow).await.expect("allow replication");
    tokio::time::timeout(PATIENCE, blocked)
        .await
        .expect("the commit completes")
        .expect("task")
        .expect("insert");
    cluster.sync_state(primary, "sync", PATIENCE).await;
    assert_eq!(writer::rows_on(&cluster, replicas[0]).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_commit_is_lost_when_the_primary_node_is_killed_five_times() {
    init_tracing();
    let mut cluster = AgentCluster::start_with(3, |_| String::new(), "synchronous_mode: on");
    let all = [0, 1, 2];
    let mut primary = cluster.settled(&all, PATIENCE).await;
    cluster.query(primary, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    let ports: Vec<String> = cluster.nodes.iter().map(|n| n.pg_port.to_string()).collect();
    // Paced: a rewound former primary replays what was written since the fork before it streams again.
    let writer = Writer::paced(
        Duration::from_millis(2),
        &format!(
            "host={} port={} target_session_attrs=read-write",
            vec!["127.0.0.1"; ports.len()].join(","),
            ports.join(",")
        ),
    );
    for round in 1..=5 {
        published(&cluster, primary, "sync_standby").await;
        let before = writer.count();
        wait_for("50 more commits", PATIENCE, || async { (writer.count() >= before + 50).then_some(()) })
            .await;

        cluster.signal_agent(primary, libc::SIGKILL);
        cluster.kill_postgres(primary);
        let survivors: Vec<usize> = all.into_iter().filter(|i| *i != primary).collect();
        let new = cluster.settled(&survivors, PATIENCE).await;
        let new_port = cluster.nodes[new].pg_port;
        wait_for("commits on the new primary", PATIENCE, || async {
            writer.acks().iter().any(|a| a.server_port == new_port).then_some(())
        })
        .await;
        let acknowledged: BTreeSet<i64> = writer.acks().iter().map(|a| a.id).collect();
        let present = writer::rows_on(&cluster, new).await;
        let lost: Vec<&i64> = acknowledged.difference(&present).collect();
        assert!(lost.is_empty(), "round {round}: acknowledged commits lost: {lost:?}");
        eprintln!("round {round}: {} acknowledged commits, all on the new primary", acknowledged.len());

        if round < 5 {
            cluster.start_agent(primary);
            cluster.streaming_replica(primary, PATIENCE).await;
        }
        primary = new;
    }
    writer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_publishes_any_k_and_a_replica_that_cannot_prove_it_holds_every_commit_waits() {
    init_tracing();
    let mut cluster = AgentCluster::start_with(3, |_| String::new(), "synchronous_mode: quorum\nttl: 6");
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    cluster.sync_state(primary, "sync", PATIENCE).await;
    let replicas: Vec<usize> = all.into_iter().filter(|i| *i != primary).collect();
    wait_for("both replicas published as quorum standbys", PATIENCE, || async {
        let listed = roles(&cluster, primary).await;
        replicas
            .iter()
            .all(|r| listed.contains(&(cluster.nodes[*r].name.clone(), "quorum_standby".into())))
            .then_some(())
    })
    .await;
    let names = standby_names(&cluster, primary).await;
    assert!(
        names.starts_with("ANY 1 (") && replicas.iter().all(|r| names.contains(&cluster.nodes[*r].name)),
        "{names}"
    );
    for r in &replicas {
        wait_for("/quorum 200 on the replica", PATIENCE, || async {
            (cluster.rest(*r, "/quorum").await?.0 == 200).then_some(())
        })
        .await;
    }

    // Two voters, each commit confirmed by one: a candidate needs both to vouch for it. Kill the primary
    // node first (so that it cannot drop a voter from the quorum), then freeze one replica's postmaster (its
    // agent and the store stay up, but it can tell no position): the other replica cannot prove it holds
    // every acknowledged commit, and waits. With ttl 6 s the frozen voter's agent reports "no position"
    // (after its two 1 s checks) well before the lease passes. The whole node dies, lifeline included: a
    // death certificate would free the lease at once, before the frozen voter's agent could tell.
    let (frozen, last) = (replicas[0], replicas[1]);
    let postmaster = cluster.postmaster_pid(frozen).expect("postmaster pid");
    let lifeline = cluster.lifeline_pid(primary).expect("the primary's lifeline pid");
    assert!(cluster.signal_pid(lifeline, libc::SIGKILL));
    cluster.signal_agent(primary, libc::SIGKILL);
    cluster.kill_postgres(primary);
    assert!(cluster.signal_pid(postmaster, libc::SIGSTOP));
    wait_for("the last replica to say why it does not take over", PATIENCE, || async {
        let (_, status) = cluster.rest(last, "/patroni").await?;
        status["vigil"]["last_decision"].as_str()?.contains("voters").then_some(())
    })
    .await;
    for r in [frozen, last] {
        assert_eq!(cluster.rest(r, "/primary").await.expect("/primary").0, 503, "nobody promoted");
    }

    // The frozen voter comes back: both voters vouch, and one of them takes over.
    assert!(cluster.signal_pid(postmaster, libc::SIGCONT));
    let new = cluster.primary(PATIENCE).await;
    assert!(new == frozen || new == last);
}
