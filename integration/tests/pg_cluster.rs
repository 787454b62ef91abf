//! Real agents managing real PostgreSQL 15 servers: bootstrap, failover, rejoin, restarts.

use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

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
        cluster.eventually(r, "SELECT v FROM t", &["1"]).await;
        let (code, _) = cluster.rest(r, "/replica").await.expect("rest");
        assert_eq!(code, 200);
    }
}

/// Writes rows `from..to` on `primary` and waits until every node in `nodes` has replayed them.
async fn write_and_replicate(cluster: &AgentCluster, primary: usize, nodes: &[usize], from: u32, to: u32) {
    let sql = format!("INSERT INTO t SELECT generate_series({from}, {}) ", to - 1);
    cluster.query(primary, &sql).await.expect("write rows");
    for n in nodes {
        let count = format!("SELECT count(*) FROM t WHERE v < {to}");
        cluster.eventually(*n, &count, &[&to.to_string()]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_node_fails_over_and_the_old_primary_rejoins() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.query(old, "CREATE TABLE t (v int)").await.expect("create");
    write_and_replicate(&cluster, old, &all, 0, 100).await;

    // kill -9 of the primary's agent and its postgres.
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    assert_ne!(new, old);
    cluster.eventually(new, "SELECT count(*) FROM t", &["100"]).await;
    write_and_replicate(&cluster, new, &survivors, 100, 200).await;
    let timeline = cluster.query(new, "SELECT timeline_id FROM pg_control_checkpoint()").await.expect("tl");
    let (_, status) = cluster.rest(new, "/patroni").await.expect("status");
    assert!(status["timeline"].as_u64() >= Some(2), "{status} {timeline:?}");
    let new_name = serde_json::json!(cluster.nodes[new].name);
    let history = wait_for("the failover in /history", PATIENCE, || async {
        let (_, history) = cluster.rest(new, "/history").await?;
        let last = history.as_array()?.last()?.clone();
        (last[4] == new_name).then_some(last)
    })
    .await;
    assert_eq!(history[2], "failover", "the agents' own promotion: {history}");

    // The old primary, restarted, comes back as a streaming replica with the new rows.
    cluster.start_agent(old);
    cluster.streaming_replica(old, PATIENCE).await;
    cluster.eventually(old, "SELECT count(*) FROM t", &["200"]).await;
    assert_eq!(cluster.primary(PATIENCE).await, new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_postgres_on_the_primary_restarts_in_place_without_failover() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    cluster.query(primary, "CREATE TABLE t (v int)").await.expect("create");
    write_and_replicate(&cluster, primary, &all, 0, 10).await;
    let (_, before) = cluster.rest(primary, "/patroni").await.expect("status");
    let old_pid = cluster.postmaster_pid(primary).expect("postmaster pid");

    cluster.kill_postgres(primary);
    wait_for("a new postmaster", PATIENCE, || async {
        cluster.postmaster_pid(primary).filter(|pid| *pid != old_pid)
    })
    .await;
    assert_eq!(cluster.primary(PATIENCE).await, primary, "no failover");
    let (_, after) = cluster.rest(primary, "/patroni").await.expect("status");
    assert_eq!(after["timeline"], before["timeline"], "same timeline");
    assert_eq!(after["vigil"]["fencing_token"], before["vigil"]["fencing_token"], "same lease");
    write_and_replicate(&cluster, primary, &all, 10, 20).await;
}

/// The fencing token of node `i`'s lease, as its status shows it and as its database records it.
async fn tokens(cluster: &AgentCluster, i: usize) -> (String, String) {
    let (_, status) = cluster.rest(i, "/patroni").await.expect("status");
    let in_status = status["vigil"]["fencing_token"].to_string();
    let in_db = cluster.query(i, "SHOW vigil.fencing_token").await.expect("SHOW").concat();
    (in_status, in_db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primary_records_its_fencing_token_in_the_database_before_it_takes_writes() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    let (status, db) = tokens(&cluster, old).await;
    assert_eq!(status, db, "the bootstrapped primary");

    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    let (status, in_db) = tokens(&cluster, new).await;
    assert_eq!(status, in_db, "the promoted primary");
    assert!(in_db.parse::<u64>().expect("a number") > db.parse::<u64>().expect("a number"), "{in_db} > {db}");
    // A writer reads the token in the same statement as its write.
    let sql = "CREATE TABLE w (token bigint); \
               INSERT INTO w SELECT current_setting('vigil.fencing_token')::bigint RETURNING token";
    assert_eq!(cluster.query(new, sql).await.expect("write with the token"), [in_db]);
}

/// How many times node `member`'s lease was released and expired, in the event log as node `i` serves it.
async fn lease_events(cluster: &AgentCluster, i: usize, member: usize) -> (usize, usize) {
    let (code, body) = cluster.send(i, reqwest::Method::GET, "/events", "").await;
    assert_eq!(code, 200, "{body}");
    let events: Vec<serde_json::Value> = serde_json::from_str(&body).expect("events");
    let name = format!("node{}", member + 1);
    let count =
        |kind: &str| events.iter().filter(|e| e["kind"] == kind && e["member"] == name.as_str()).count();
    (count("lease_released"), count("lease_expired"))
}

/// A dead primary's lifeline certifies nothing while a process still names the data directory (it could
/// be starting a server): the lease expires, as it does without a lifeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_naming_the_data_directory_withholds_the_death_certificate() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    let data_dir = cluster.home(primary).join("pg");
    let mut tail =
        std::process::Command::new("tail").arg("-f").arg(data_dir.join("PG_VERSION")).spawn().expect("tail");
    cluster.signal_agent(primary, libc::SIGKILL);
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != primary).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    let _ = tail.kill();
    let _ = tail.wait();
    assert_eq!(lease_events(&cluster, new, primary).await, (0, 1), "expired, not released");
    let log = cluster.plain_log(primary);
    assert!(log.contains("no death certificate: processes of"), "{log}");
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dies_with_its_agent_except_in_pause() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;

    // Paused: a killed agent leaves its PostgreSQL running (maintenance).
    let replica = (primary + 1) % 3;
    let (code, body) = cluster.send(primary, reqwest::Method::PATCH, "/config", r#"{"pause": true}"#).await;
    assert_eq!(code, 200, "{body}");
    wait_for("the replica's lifeline disarmed", PATIENCE, || async {
        cluster.plain_log(replica).contains("lifeline disarmed").then_some(())
    })
    .await;
    let watcher = cluster.lifeline_pid(replica).expect("the lifeline's pid in the log");
    let postmaster = cluster.postmaster_pid(replica).expect("the replica's postmaster");
    cluster.signal_agent(replica, libc::SIGKILL);
    wait_for("the lifeline to exit", PATIENCE, || async { (!alive(watcher)).then_some(()) }).await;
    assert!(alive(postmaster), "paused: the replica's PostgreSQL outlives its agent");
    cluster.start_agent(replica);
    let (code, body) = cluster.send(primary, reqwest::Method::PATCH, "/config", r#"{"pause": null}"#).await;
    assert_eq!(code, 200, "{body}");
    cluster.streaming_replica(replica, PATIENCE).await;

    // Not paused: kill -9 of the primary's agent stops its PostgreSQL.
    wait_for("the primary's lifeline armed again", PATIENCE, || async {
        cluster.plain_log(primary).contains("lifeline armed pid=").then_some(())
    })
    .await;
    let postmaster = cluster.postmaster_pid(primary).expect("the primary's postmaster");
    cluster.signal_agent(primary, libc::SIGKILL);
    let killed = std::time::Instant::now();
    wait_for("the primary's postmaster to stop", PATIENCE, || async { (!alive(postmaster)).then_some(()) })
        .await;
    eprintln!("postmaster gone {:?} after its agent was killed", killed.elapsed());
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != primary).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    assert_ne!(new, primary);

    // The lifeline certified the death: the lease was released at once, not left to expire.
    let events = lease_events(&cluster, new, primary).await;
    assert_eq!(events, (1, 0), "released, not expired\n{}", cluster.plain_log(primary));
    assert!(
        cluster.plain_log(primary).contains("vigil lifeline: death certificate of"),
        "{}",
        cluster.plain_log(primary)
    );
}

/// The Raft leadership moves off the primary's node; so, when the primary's node dies, a survivor already
/// leads the store and no Raft election comes before the failover (the term stays the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_leadership_leaves_the_primarys_node_and_a_failover_needs_no_election() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    // Only the Raft leader shows a commit index.
    let leads_raft = |status: &serde_json::Value| status["vigil"]["raft"]["commit_index"].is_u64();
    let term = wait_for("a replica's node to lead the Raft group", PATIENCE, || async {
        let mut leaders = Vec::new();
        for i in all {
            let (_, status) = cluster.rest(i, "/patroni").await?;
            if leads_raft(&status) {
                leaders.push((i, status["vigil"]["raft"]["term"].as_u64()?));
            }
        }
        match leaders[..] {
            [(leader, term)] if leader != old => Some(term),
            _ => None,
        }
    })
    .await;

    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);
    // The new primary's node may lead the Raft group now, but the leadership is drawn from it only once
    // its lease has been held a while (`SETTLE`): the term still shows whether an election came first.
    let new = cluster.primary(PATIENCE).await;
    assert_ne!(new, old);
    let (_, status) = cluster.rest(new, "/patroni").await.expect("status");
    assert_eq!(status["vigil"]["raft"]["term"].as_u64(), Some(term), "no Raft election: {status}");
}
