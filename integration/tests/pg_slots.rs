//! Permanent replication slots with real agents and PostgreSQL 15: a logical decoding consumer continues on
//! the new primary after the old one is killed, with no change lost; permanent physical slots are kept,
//! ignored slots left alone, and other unwanted slots dropped.

use std::collections::BTreeSet;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// The dynamic configuration's slot settings: a logical slot for the consumer, a physical one for an
/// outside tool, one ignored slot, and a member's slot dropped as soon as nobody wants it.
const SLOTS: &str = "slots:\n  cdc: {type: logical, database: postgres, plugin: test_decoding}\n  \
                     backup_tool: {type: physical}\nignore_slots: [{name: external}]\nmember_slots_ttl: 0";

/// The values of `t` the consumer decodes from slot `cdc` on node `i` (consuming them).
async fn consume(cluster: &AgentCluster, i: usize) -> Vec<i64> {
    let changes = cluster
        .query(i, "SELECT data FROM pg_logical_slot_get_changes('cdc', NULL, NULL) WHERE data LIKE 'table public.t: INSERT%'")
        .await
        .expect("decode");
    changes
        .iter()
        .map(|line| line.rsplit(':').next().and_then(|v| v.trim().parse().ok()).expect("an integer value"))
        .collect()
}

/// Node `i`'s slots, sorted, comma-separated.
const SLOT_NAMES: &str =
    "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logical_consumer_continues_on_the_new_primary_without_losing_a_change() {
    init_tracing();
    let logical = |yaml: &str| {
        yaml.replace("parameters: {fsync: 'off'}", "parameters: {fsync: 'off', wal_level: logical}")
    };
    let mut cluster = AgentCluster::start_edited(3, SLOTS, Box::new(logical));
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
    let members: Vec<&str> = replicas.iter().map(|i| cluster.nodes[*i].name.as_str()).collect();
    let expected = format!("backup_tool,cdc,{}", members.join(","));
    cluster.eventually(primary, SLOT_NAMES, &[&expected]).await;

    // Slots nobody manages: one ignored stays, a stray one is dropped.
    cluster.query(primary, "SELECT pg_create_physical_replication_slot('external')").await.expect("external");
    cluster.query(primary, "SELECT pg_create_physical_replication_slot('stray')").await.expect("stray");
    cluster
        .eventually(primary, SLOT_NAMES, &[&format!("backup_tool,cdc,external,{}", members.join(","))])
        .await;

    cluster
        .query(primary, "CREATE TABLE t (v int); INSERT INTO t SELECT generate_series(1, 10)")
        .await
        .expect("write");
    assert_eq!(consume(&cluster, primary).await, (1..=10).collect::<Vec<_>>());
    // The copies are made once the slot restarts within the replicas' WAL (a copy of it could not be
    // decoded otherwise): new segments and checkpoints, read by the consumer, move it on.
    let mut caught_up = false;
    for _ in 0..20 {
        cluster.query(primary, "SELECT pg_switch_wal()").await.expect("switch");
        cluster.query(primary, "CHECKPOINT").await.expect("checkpoint");
        assert_eq!(consume(&cluster, primary).await, Vec::<i64>::new());
        let confirmed = cluster
            .query(primary, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'cdc'")
            .await
            .expect("confirmed")
            .concat();
        let copied = format!(
            "SELECT confirmed_flush_lsn >= '{confirmed}' FROM pg_replication_slots WHERE slot_name = 'cdc'"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while !caught_up && tokio::time::Instant::now() < deadline {
            let mut all = true;
            for &r in &replicas {
                all &= cluster.query(r, &copied).await.is_ok_and(|rows| rows == ["t"]);
            }
            caught_up = all;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if caught_up {
            break;
        }
    }
    assert!(caught_up, "the replicas' copies of cdc did not catch up with the primary's");
    for &r in &replicas {
        let feedback = cluster.query(r, "SHOW hot_standby_feedback").await.expect("SHOW");
        assert_eq!(feedback, ["on"], "a replica keeping a logical slot copy sends feedback");
    }

    // Changes the consumer has not read yet reach the replicas; the primary dies.
    cluster.query(primary, "INSERT INTO t SELECT generate_series(11, 20)").await.expect("write");
    for &r in &replicas {
        cluster.eventually(r, "SELECT count(*) FROM t", &["20"]).await;
    }
    cluster.signal_agent(primary, libc::SIGKILL);
    cluster.kill_server(primary);
    let next = wait_for("a new primary", PATIENCE, || async {
        for &r in &replicas {
            if cluster.rest(r, "/primary").await.is_some_and(|(code, _)| code == 200) {
                return Some(r);
            }
        }
        None
    })
    .await;
    let seen: BTreeSet<i64> = consume(&cluster, next).await.into_iter().collect();
    let unread: BTreeSet<i64> = (11..=20).collect();
    assert!(seen.is_superset(&unread), "changes lost in the failover: read {seen:?}");
    assert!(seen.iter().all(|v| (1..=20).contains(v)), "{seen:?}");
    eprintln!(
        "after the failover the consumer read {} changes, {} of them again",
        seen.len(),
        seen.len() - 10
    );
}
