//! Membership with real agents and PostgreSQL 15: a cluster grows and shrinks under a write load without a
//! failover, a killed member is replaced by a new server at a new address, and two data nodes with a
//! witness survive the loss of any one of the three.

use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;
use vigil_integration::agents::AgentCluster;
use vigil_integration::writer::{self, Writer};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// `GET /members` on node `i`.
async fn members(cluster: &AgentCluster, i: usize) -> Vec<Value> {
    let (code, body) = cluster.rest(i, "/members").await.expect("GET /members");
    assert_eq!(code, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// The names of the voters node `i` knows.
async fn voters(cluster: &AgentCluster, i: usize) -> BTreeSet<String> {
    let members = members(cluster, i).await;
    let voters = members.iter().filter(|m| m["raft_role"] == "voter");
    voters.map(|m| m["name"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Waits until node `i` knows `name` as a voter, and every node named in `expected` and no other.
async fn voters_are(cluster: &AgentCluster, i: usize, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|n| n.to_string()).collect();
    wait_for(&format!("the voters to be {expected:?}"), PATIENCE, || async {
        (voters(cluster, i).await == expected).then_some(())
    })
    .await;
}

/// The fencing token node `i` holds.
async fn token(cluster: &AgentCluster, i: usize) -> u64 {
    let (_, status) = cluster.rest(i, "/patroni").await.expect("GET /patroni");
    status["vigil"]["fencing_token"].as_u64().expect("the primary's token")
}

/// Removes `member` through node `i`'s API; the status and answer.
async fn remove(cluster: &AgentCluster, i: usize, member: &str, force: bool) -> (u16, String) {
    let body = format!(r#"{{"member": "{member}", "force": {force}}}"#);
    cluster.send(i, Method::DELETE, "/members", &body).await
}

/// Starts a new node, waits until it is a voter and streams; returns it and the time from its start to
/// becoming a voter.
async fn grow(cluster: &mut AgentCluster, primary: usize) -> (usize, Duration) {
    let node = cluster.add_node("");
    let name = cluster.nodes[node].name.clone();
    let started = Instant::now();
    cluster.start_agent(node);
    wait_for(&format!("{name} to become a voter"), PATIENCE, || async {
        voters(cluster, primary).await.contains(&name).then_some(())
    })
    .await;
    let joined = started.elapsed();
    cluster.streaming_replica(node, PATIENCE).await;
    (node, joined)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_grows_to_five_and_shrinks_to_three_under_writes_without_a_failover() {
    init_tracing();
    let mut cluster = AgentCluster::start_checked(3, |_| String::new()).await;
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let before = token(&cluster, primary).await;
    cluster.query(primary, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create t");
    let writer = Writer::paced(
        Duration::from_millis(2),
        &format!("host=127.0.0.1 port={}", cluster.nodes[primary].pg_port),
    );
    wait_for("50 commits", PATIENCE, || async { (writer.count() >= 50).then_some(()) }).await;

    let grown_at = Instant::now();
    let (fourth, join4) = grow(&mut cluster, primary).await;
    let (fifth, join5) = grow(&mut cluster, primary).await;
    let grown = grown_at.elapsed();
    voters_are(&cluster, primary, &["node1", "node2", "node3", "node4", "node5"]).await;
    eprintln!("joins (agent start to voter): {join4:?}, {join5:?}; grow 3 -> 5 with both clones: {grown:?}");

    let shrunk_at = Instant::now();
    let (code, body) = remove(&cluster, primary, "node5", false).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("4 voters, an even number") && body.contains("--force"), "{body}");
    let primary_name = cluster.nodes[primary].name.clone();
    let (code, body) = remove(&cluster, fifth, &primary_name, true).await;
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("is the primary") && body.contains("switch over first"), "{body}");
    let (code, body) = remove(&cluster, primary, "node5", true).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = remove(&cluster, primary, "node4", false).await;
    assert_eq!(code, 200, "{body}");
    voters_are(&cluster, primary, &["node1", "node2", "node3"]).await;
    let shrunk = shrunk_at.elapsed();
    eprintln!("shrink 5 -> 3: {shrunk:?}");

    // The removed members' agents still run: they cannot disturb the group, and the writes go on.
    let count = writer.count();
    wait_for("50 more commits", PATIENCE, || async { (writer.count() >= count + 50).then_some(()) }).await;
    for node in [fourth, fifth] {
        cluster.signal_agent(node, libc::SIGTERM);
        assert!(cluster.agent_exited(node, PATIENCE).await, "{} exits", cluster.nodes[node].name);
    }
    let (acks, _) = writer.stop().await;
    assert_eq!(cluster.primary(PATIENCE).await, primary, "no failover");
    assert_eq!(token(&cluster, primary).await, before, "the same lease throughout");
    let rows = writer::rows_on(&cluster, primary).await;
    let lost: Vec<i64> = acks.iter().map(|a| a.id).filter(|id| !rows.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    for node in [fourth, fifth] {
        let log = cluster.plain_log(node);
        assert!(!log.contains("leader lease acquired"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_is_replaced_by_a_new_server_at_a_new_address() {
    init_tracing();
    let mut cluster = AgentCluster::start_checked(3, |_| String::new()).await;
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let victim = (primary + 1) % 3;
    let survivor = (primary + 2) % 3;
    cluster.signal_agent(victim, libc::SIGKILL);
    cluster.kill_server(victim);
    let victim_name = cluster.nodes[victim].name.clone();

    // While the survivors elect a new Raft leader (the victim may have led), the store answers 503.
    let (code, body) = wait_for("an answer from the store", PATIENCE, || async {
        let (code, body) = remove(&cluster, primary, &victim_name, false).await;
        (code != 503).then_some((code, body))
    })
    .await;
    assert_eq!(code, 409, "two voters are refused without --force: {body}");
    let (code, body) = remove(&cluster, primary, &victim_name, true).await;
    assert_eq!(code, 200, "{body}");
    let (new, _) = grow(&mut cluster, primary).await;
    let names = [&cluster.nodes[primary].name, &cluster.nodes[survivor].name, &cluster.nodes[new].name];
    voters_are(&cluster, primary, &names.map(String::as_str)).await;
    let ids: Vec<u64> = members(&cluster, primary).await.iter().filter_map(|m| m["id"].as_u64()).collect();
    assert_eq!(ids.iter().max(), Some(&4), "the new server got a new id: {ids:?}");

    // The new member counts in the quorum: with the primary killed, the survivor and it elect a new one.
    cluster.signal_agent(primary, libc::SIGKILL);
    cluster.kill_server(primary);
    let killed = Instant::now();
    let next = wait_for("a new primary", PATIENCE, || async {
        for i in [survivor, new] {
            if cluster.rest(i, "/primary").await.is_some_and(|(code, _)| code == 200) {
                return Some(i);
            }
        }
        None
    })
    .await;
    eprintln!(
        "failover with the replacement in the quorum: {:?} to {}",
        killed.elapsed(),
        cluster.nodes[next].name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_nodes_and_a_witness_survive_the_loss_of_any_one() {
    init_tracing();
    let mut cluster = AgentCluster::start_witnessed(2);
    let witness = 2;
    let primary = cluster.settled(&[0, 1], PATIENCE).await;
    let replica = 1 - primary;
    wait_for("the witness to describe itself", PATIENCE, || async {
        let members = members(&cluster, primary).await;
        members
            .iter()
            .any(|m| m["name"] == "node3" && m["witness"] == true && m["raft_role"] == "voter")
            .then_some(())
    })
    .await;
    let (_, listed) = cluster.rest(primary, "/cluster").await.expect("GET /cluster");
    let roles: Vec<(&str, &str)> = listed["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or(""), m["role"].as_str().unwrap_or("")))
        .collect();
    assert!(roles.contains(&("node3", "witness")), "{roles:?}");
    let (code, status) = cluster.rest(witness, "/patroni").await.expect("the witness answers");
    assert_eq!((code, status["role"].as_str()), (200, Some("witness")), "{status}");
    for path in ["/primary", "/replica", "/read-only"] {
        let (code, _) = cluster.rest(witness, path).await.expect("the witness answers");
        assert_eq!(code, 503, "a witness is no database for {path}");
    }
    assert!(!cluster.log(witness).contains("leader lease acquired"));

    // The primary dies: the replica and the witness are a quorum.
    cluster.signal_agent(primary, libc::SIGKILL);
    cluster.kill_server(primary);
    let killed = Instant::now();
    wait_for("the replica to take over", PATIENCE, || async {
        cluster.rest(replica, "/primary").await.is_some_and(|(code, _)| code == 200).then_some(())
    })
    .await;
    eprintln!("failover with a witness: {:?}", killed.elapsed());
    cluster.start_agent(primary);
    cluster.streaming_replica(primary, PATIENCE).await;

    // The witness dies: the two data nodes are a quorum, and the primary keeps its lease.
    let token_before = token(&cluster, replica).await;
    cluster.signal_agent(witness, libc::SIGKILL);
    let held_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < held_until {
        let (code, _) = cluster.rest(replica, "/primary").await.expect("the primary answers");
        assert_eq!(code, 200, "the primary lost its role with the witness gone");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster
        .query(replica, "CREATE TABLE after_the_witness (x int)")
        .await
        .expect("a write without the witness");
    assert_eq!(token(&cluster, replica).await, token_before);
}
