//! Topology tags with real agents and PostgreSQL 15: cascading (`replicatefrom`) with its fall-back to the
//! primary, a preferred clone source (`clonefrom`), and a replica fed from the WAL archive only
//! (`nostream`).

use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// Who streams from node `i`: the `application_name`s of its WAL senders, sorted, comma-separated.
const SENDERS: &str =
    "SELECT coalesce(string_agg(application_name, ',' ORDER BY application_name), '') FROM pg_stat_replication";
/// Node `i`'s replication slots, sorted, comma-separated.
const SLOTS: &str =
    "SELECT coalesce(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots";

/// Makes `node1` the primary (switching over to it if needed, once `streaming` stream) and returns its
/// index.
async fn node1_primary(cluster: &AgentCluster, streaming: &[usize]) -> usize {
    let primary = cluster.settled(streaming, PATIENCE).await;
    if primary != 0 {
        let body = json!({"leader": cluster.nodes[primary].name, "candidate": "node1"}).to_string();
        let (code, text) = cluster.send(primary, Method::POST, "/switchover", &body).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(cluster.primary(PATIENCE).await, 0);
    }
    0
}

/// The `upstream` node `i` publishes, as `GET /cluster` on node `at` lists it.
async fn upstream(cluster: &AgentCluster, at: usize, i: usize) -> Option<String> {
    let (_, view) = cluster.rest(at, "/cluster").await?;
    let members = view["members"].as_array()?;
    let member = members.iter().find(|m| m["name"] == cluster.nodes[i].name.as_str())?;
    member.get("upstream").and_then(Value::as_str).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cascades_from_its_replicatefrom_and_falls_back_to_the_primary() {
    init_tracing();
    let tags = |i: usize| if i == 2 { "tags:\n  replicatefrom: node2\n".to_owned() } else { String::new() };
    let mut cluster = AgentCluster::start_checked(3, tags).await;
    let primary = node1_primary(&cluster, &[0, 1, 2]).await;
    cluster.streaming_replica(2, PATIENCE).await;
    cluster.eventually(1, SENDERS, &["node3"]).await;
    cluster.eventually(primary, SENDERS, &["node2"]).await;
    cluster.eventually(1, SLOTS, &["node3"]).await;
    cluster.eventually(primary, SLOTS, &["node2"]).await;
    wait_for("node3 to publish node2 as its upstream", PATIENCE, || async {
        (upstream(&cluster, primary, 2).await.as_deref() == Some("node2")).then_some(())
    })
    .await;
    cluster.query(primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await.expect("write");
    cluster.eventually(2, "SELECT count(*) FROM t", &["1"]).await;

    // node2 dies: node3 streams from the primary, which now keeps a slot for it (and node2's, which
    // member_slots_ttl keeps for half an hour).
    cluster.signal_agent(1, libc::SIGKILL);
    cluster.kill_server(1);
    cluster.eventually(primary, SENDERS, &["node3"]).await;
    cluster.eventually(primary, SLOTS, &["node2,node3"]).await;
    cluster.query(primary, "INSERT INTO t VALUES (2)").await.expect("write");
    cluster.eventually(2, "SELECT count(*) FROM t", &["2"]).await;

    // node2 comes back: node3 cascades from it again, and the primary drops node3's slot.
    cluster.start_agent(1);
    cluster.eventually(1, SENDERS, &["node3"]).await;
    cluster.eventually(primary, SLOTS, &["node2"]).await;
    cluster.query(primary, "INSERT INTO t VALUES (3)").await.expect("write");
    cluster.eventually(2, "SELECT count(*) FROM t", &["3"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_clones_from_the_clonefrom_member() {
    init_tracing();
    let tags = |i: usize| if i == 1 { "tags:\n  clonefrom: true\n".to_owned() } else { String::new() };
    let mut cluster = AgentCluster::start_checked(3, tags).await;
    let primary = node1_primary(&cluster, &[0, 1, 2]).await;
    cluster.query(primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await.expect("write");
    let new = cluster.add_node("");
    cluster.start_agent(new);
    cluster.streaming_replica(new, PATIENCE).await;
    cluster.eventually(new, "SELECT count(*) FROM t", &["1"]).await;
    let log = cluster.plain_log(new);
    assert!(log.contains("no data: cloning from node2"), "{log}");
    // It streams from the primary, like any replica without replicatefrom.
    cluster.eventually(primary, SENDERS, &["node2,node3,node4"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nostream_replica_replays_the_archive_only() {
    init_tracing();
    let archive = tempfile::Builder::new().prefix("vigil-archive-").tempdir().expect("archive dir");
    std::fs::set_permissions(archive.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let dir = archive.path().display().to_string();
    let edit = move |yaml: &str| {
        let parameters = format!(
            "    archive_mode: 'on'\n    archive_command: 'test ! -f {dir}/%f && cp %p {dir}/%f'\n    \
             restore_command: 'cp {dir}/%f %p'\n    unix_socket_directories:"
        );
        let yaml = yaml.replace("    unix_socket_directories:", &parameters);
        match yaml.contains("name: node3\n") {
            true => format!("{yaml}tags:\n  nostream: true\n"),
            false => yaml,
        }
    };
    let cluster = AgentCluster::start_edited(3, "", Box::new(edit));
    let primary = node1_primary(&cluster, &[0, 1]).await;
    cluster.streaming_replica(1, PATIENCE).await;
    cluster.query(primary, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)").await.expect("write");
    cluster.query(primary, "SELECT pg_switch_wal()").await.expect("switch WAL");
    cluster.eventually(2, "SELECT count(*) FROM t", &["1"]).await;
    let (_, status) = cluster.rest(2, "/patroni").await.expect("node3 answers");
    assert_eq!(status["role"], "replica", "{status}");
    assert_ne!(status["replication_state"], "streaming", "{status}");
    assert_eq!(cluster.query(primary, SENDERS).await.expect("senders"), ["node2"]);
    assert_eq!(cluster.query(primary, SLOTS).await.expect("slots"), ["node2"], "no slot for node3");
}
