//! Real agents managing real PostgreSQL 15 servers: who may (and may not) take over, and a clean hand-over
//! on SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// How long a cluster must stay without a primary to show that nobody takes over: well over the lease
/// ttl (3 s) plus a few HA cycles (1 s each), counted from the kill of the primary.
const NO_TAKEOVER_WINDOW: Duration = Duration::from_secs(12);

/// How long after the kill of the primary a surviving replica may take to explain why it does not take
/// over: the lease ttl (3 s) plus a few cycles.
const EXPLAINED_WITHIN: Duration = Duration::from_secs(20);

/// Node `i`'s `vigil.last_decision` from `GET /patroni`, if it answered.
async fn last_decision(cluster: &AgentCluster, i: usize) -> Option<String> {
    let (_, status) = cluster.rest(i, "/patroni").await?;
    status["vigil"]["last_decision"].as_str().map(str::to_owned)
}

/// A field of node `i`'s `GET /patroni` JSON, as an integer.
async fn status_u64(cluster: &AgentCluster, i: usize, pointer: &str) -> Option<u64> {
    let (_, status) = cluster.rest(i, "/patroni").await?;
    status.pointer(pointer)?.as_u64()
}

/// Kill -9 of node `i`'s agent and of its postmaster.
fn kill_node(cluster: &mut AgentCluster, i: usize) {
    cluster.signal_agent(i, libc::SIGKILL);
    cluster.kill_postgres(i);
}

/// Watches `nodes` until `until`, polling every 100 ms: none of them may answer 200 on `/primary`. This
/// is a fixed observation window on purpose: the point is that nothing happens during it.
async fn no_primary_until(cluster: &AgentCluster, nodes: &[usize], until: Instant) {
    while Instant::now() < until {
        for &i in nodes {
            if let Some((200, status)) = cluster.rest(i, "/primary").await {
                panic!("{} became primary: {status}", cluster.nodes[i].name);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Three nodes, because the store is a Raft group of all agents: with two, killing one leaves the other
/// without a quorum, and it then only reports "cluster store unreachable" (it could not take over anyway).
/// node2 and node3 are both tagged `nofailover`, so after node1's death nobody may take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nofailover_replica_is_never_promoted() {
    init_tracing();
    let mut cluster =
        AgentCluster::start(3, |i| if i > 0 { "tags: {nofailover: true}\n".into() } else { String::new() });
    // nofailover members do not even bootstrap: node1 must be the primary.
    assert_eq!(cluster.primary(PATIENCE).await, 0, "node1 bootstraps, node2 and node3 have nofailover");
    let replicas = [1, 2];
    for r in replicas {
        cluster.streaming_replica(r, PATIENCE).await;
        let (_, status) = cluster.rest(r, "/patroni").await.expect("replica status");
        assert_eq!(status["tags"]["nofailover"], true, "{status}");
    }

    kill_node(&mut cluster, 0);
    let window_end = Instant::now() + NO_TAKEOVER_WINDOW;
    for r in replicas {
        let what = format!("{} to explain that it has nofailover", cluster.nodes[r].name);
        wait_for(&what, EXPLAINED_WITHIN, || async {
            last_decision(&cluster, r).await.filter(|d| d.contains("nofailover"))
        })
        .await;
    }
    no_primary_until(&cluster, &replicas, window_end).await;

    for r in replicas {
        let name = &cluster.nodes[r].name;
        let decision = last_decision(&cluster, r).await.expect("replica answers");
        assert!(decision.contains("nofailover"), "{name}'s last decision: {decision}");
        eprintln!("{name}: {decision}");
        let (_, status) = cluster.rest(r, "/patroni").await.expect("replica status");
        assert_eq!((&status["role"], &status["state"]), (&"replica".into(), &"running".into()), "{status}");
        assert!(!cluster.log(r).contains("leader lease held"), "{name} took the lease:\n{}", cluster.log(r));
    }
}

/// The agent measures a replica's position as the larger of received and replayed, so pausing replay
/// creates no lag by that measure. This test stops WAL *receipt* instead: both replicas' WAL receivers are
/// frozen with SIGSTOP while the primary writes ~40 MB, the primary publishes that position in `status`,
/// then the primary node is killed and the WAL receivers resumed. A receiver can then drain at most what
/// sat in its socket buffer (a few MB on loopback) before it finds the connection closed; both replicas
/// stay tens of MB behind the last published position, far beyond `maximum_lag_on_failover` (1 KiB).
/// Three nodes, because with two the survivor has no store quorum (see the nofailover test); both
/// replicas lag, so neither may take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lagging_beyond_maximum_lag_on_failover_is_not_promoted() {
    init_tracing();
    const MAX_LAG: u64 = 1024;
    let mut cluster =
        AgentCluster::start_with(3, |_| String::new(), &format!("maximum_lag_on_failover: {MAX_LAG}"));
    let primary = cluster.primary(PATIENCE).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
    let mut receivers = Vec::new();
    for &r in &replicas {
        cluster.streaming_replica(r, PATIENCE).await;
        receivers.push(cluster.wal_receiver_pid(r, PATIENCE).await);
    }
    cluster.query(primary, "CREATE TABLE t (v int, pad text)").await.expect("create");
    for &pid in &receivers {
        assert!(cluster.signal_pid(pid, libc::SIGSTOP), "SIGSTOP the WAL receiver {pid}");
    }

    let sql = "INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(1, 40000) g";
    let written = cluster.write_published(primary, sql).await; // ~40 MB
    for &r in &replicas {
        let received = status_u64(&cluster, r, "/xlog/received_location").await.expect("received");
        assert!(written > received + 16 * 1_048_576, "written {written}, replica received {received}");
    }

    kill_node(&mut cluster, primary);
    let window_end = Instant::now() + NO_TAKEOVER_WINDOW;
    for &pid in &receivers {
        assert!(cluster.signal_pid(pid, libc::SIGCONT), "SIGCONT the WAL receiver {pid}");
    }
    for &r in &replicas {
        let what = format!("{} to explain that it lags too far", cluster.nodes[r].name);
        wait_for(&what, EXPLAINED_WITHIN, || async {
            last_decision(&cluster, r).await.filter(|d| d.contains("maximum_lag_on_failover"))
        })
        .await;
    }
    no_primary_until(&cluster, &replicas, window_end).await;

    for &r in &replicas {
        let name = &cluster.nodes[r].name;
        let decision = last_decision(&cluster, r).await.expect("replica answers");
        assert!(decision.contains("maximum_lag_on_failover"), "{name}'s last decision: {decision}");
        eprintln!("{name}: {decision}");
        let (_, status) = cluster.rest(r, "/patroni").await.expect("replica status");
        assert_eq!(status["role"], "replica", "{status}");
        let log = cluster.log(r);
        assert!(!log.contains("leader lease held"), "{name} took the lease:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_primary_hands_over_without_losing_acknowledged_writes() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let old = cluster.primary(PATIENCE).await;
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    for &r in &survivors {
        cluster.streaming_replica(r, PATIENCE).await;
    }
    cluster.query(old, "CREATE TABLE w (v int PRIMARY KEY)").await.expect("create");

    // The writer: one autocommit INSERT at a time; a value counts once the server acknowledged it.
    let acked = Arc::new(Mutex::new(Vec::<u32>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = cluster.connect(old).await.expect("writer connection");
    let writer = tokio::spawn({
        let (acked, stop) = (acked.clone(), stop.clone());
        async move {
            let mut failure = None;
            for v in 0u32.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let sql = format!("INSERT INTO w VALUES ({v})");
                let insert = client.simple_query(&sql);
                match tokio::time::timeout(Duration::from_secs(5), insert).await {
                    Ok(Ok(_)) => acked.lock().expect("acked").push(v),
                    Ok(Err(e)) => {
                        failure = Some(e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().into()));
                        break;
                    }
                    Err(_) => {
                        failure = Some("insert timed out".into());
                        break;
                    }
                }
            }
            failure
        }
    });
    wait_for("the writer to get 200 writes acknowledged", PATIENCE, || async {
        (acked.lock().expect("acked").len() >= 200).then_some(())
    })
    .await;

    let sigterm_at = Instant::now();
    cluster.signal_agent(old, libc::SIGTERM);
    let exit = cluster.agent_exit_status(old, Duration::from_secs(30)).await;
    let exit = exit.unwrap_or_else(|| panic!("the old primary's agent did not exit within 30 s"));
    let exited_after = sigterm_at.elapsed();
    assert!(exit.success(), "the agent exited with {exit}");
    assert!(cluster.postmaster_pid(old).is_none(), "the old primary's PostgreSQL still runs");
    stop.store(true, Ordering::SeqCst);
    let failure = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer stops within 10 s")
        .expect("the writer task");
    let acked = acked.lock().expect("acked").clone();

    let new = cluster.primary(PATIENCE).await;
    let handed_over_after = sigterm_at.elapsed();
    assert_ne!(new, old);
    let rows = cluster.query(new, "SELECT v FROM w ORDER BY v").await.expect("read on the new primary");
    let present: std::collections::BTreeSet<u32> =
        rows.iter().map(|r| r.parse().expect("an integer")).collect();
    let lost: Vec<u32> = acked.iter().copied().filter(|v| !present.contains(v)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes are missing on the new primary {}: {lost:?}",
        lost.len(),
        acked.len(),
        cluster.nodes[new].name
    );
    let other = survivors.iter().copied().find(|i| *i != new).expect("another survivor");
    cluster.streaming_replica(other, PATIENCE).await;
    assert!(cluster.log(old).contains("shutting down"), "{}", cluster.log(old));
    eprintln!(
        "{} acknowledged writes kept (writer stopped by: {failure:?}); agent exited after {exited_after:?}, \
         {} primary after {handed_over_after:?}",
        acked.len(),
        cluster.nodes[new].name
    );
}
