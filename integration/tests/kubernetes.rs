//! The agents' pod labels against a fake Kubernetes API server (`vigil_integration::kube_api`), with real
//! agents and PostgreSQL: the labels follow a failover, the new primary removes the crashed primary's
//! stale label before it is promoted (never two pods labelled primary), and an API server that is down
//! does not hold up a failover; the labels catch up once it is back.

use std::time::{Duration, Instant};
use vigil_integration::agents::AgentCluster;
use vigil_integration::kube_api::FakeKubeApi;
use vigil_integration::wait_for;

const PATIENCE: Duration = Duration::from_secs(60);
const TOKEN: &str = "service-account-token";

/// Three agents labelling pods node1..node3 of namespace `it` through `api`, with its token in `dir`.
async fn cluster_in_pods() -> (AgentCluster, FakeKubeApi, tempfile::TempDir) {
    let pods: Vec<String> = (1..=3).map(|i| format!("node{i}")).collect();
    let api = FakeKubeApi::start("it", &pods, TOKEN).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let (url, token) = (api.url().to_owned(), token.display().to_string());
    let cluster = AgentCluster::start(3, move |i| {
        format!(
            "kubernetes:\n  namespace: it\n  pod_name: node{}\n  api_url: {url}\n  token_file: {token}\n",
            i + 1
        )
    });
    (cluster, api, dir)
}

/// Waits until pod `i + 1` carries role `role` (`None`: no role label).
async fn labelled(api: &FakeKubeApi, i: usize, role: Option<&str>) {
    let pod = format!("node{}", i + 1);
    wait_for(&format!("{pod} labelled {role:?}"), PATIENCE, || async {
        (api.role(&pod).as_deref() == role).then_some(())
    })
    .await;
}

/// The node other than `old` whose `/primary` answers 200.
async fn new_primary(cluster: &AgentCluster, old: usize) -> usize {
    wait_for("a new primary", PATIENCE, || async {
        for i in (0..3).filter(|i| *i != old) {
            if cluster.rest(i, "/primary").await.is_some_and(|(code, _)| code == 200) {
                return Some(i);
            }
        }
        None
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn labels_follow_a_failover_and_the_crashed_primarys_label_is_removed() {
    let (mut cluster, api, _dir) = cluster_in_pods().await;
    let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
    for i in 0..3 {
        labelled(&api, i, Some(if i == old { "primary" } else { "replica" })).await;
        assert_eq!(api.labels(&format!("node{}", i + 1))["vigil.io/scope"], "it");
    }

    // The primary's agent dies (and its PostgreSQL with it): its pod keeps the label it had.
    cluster.signal_agent(old, libc::SIGKILL);
    let new = new_primary(&cluster, old).await;
    labelled(&api, new, Some("primary")).await;
    labelled(&api, old, None).await;
    assert_eq!(api.most_primaries(), 1, "never two pods labelled primary");
    let log = cluster.plain_log(new);
    assert!(log.contains("stale primary labels removed before the promotion"), "{log}");

    // Back, the old node's agent labels its pod a replica.
    cluster.start_agent(old);
    labelled(&api, old, Some("replica")).await;
    assert_eq!(api.most_primaries(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_server_that_is_down_does_not_hold_up_a_failover() {
    let (mut cluster, api, _dir) = cluster_in_pods().await;
    let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
    labelled(&api, old, Some("primary")).await;

    api.set_down(true);
    let crashed = Instant::now();
    cluster.signal_agent(old, libc::SIGKILL);
    let new = new_primary(&cluster, old).await;
    eprintln!("failover with the API server down: {:?}", crashed.elapsed());
    assert_eq!(api.role(&format!("node{}", old + 1)).as_deref(), Some("primary"), "nothing could change");

    api.set_down(false);
    labelled(&api, new, Some("primary")).await;
    labelled(&api, old, None).await;
    assert_eq!(api.most_primaries(), 1, "never two pods labelled primary");
}

/// The names of the voters node `i` knows (`GET /members`).
async fn voters(cluster: &AgentCluster, i: usize) -> Vec<String> {
    let (_, members) = cluster.rest(i, "/members").await.unwrap_or_default();
    let members = members.as_array().cloned().unwrap_or_default();
    let voters = members.iter().filter(|m| m["raft_role"] == "voter");
    let mut names: Vec<String> = voters.filter_map(|m| m["name"].as_str().map(str::to_owned)).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pods_scaled_away_leave_the_raft_group_and_a_restarted_pod_stays() {
    let pods: Vec<String> = (0..5).map(|i| format!("pg-{i}")).collect();
    let api = FakeKubeApi::start("it", &pods, TOKEN).await;
    api.set_replicas("pg", 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    let (url, token) = (api.url().to_owned(), token.display().to_string());
    let k8s = move |i: usize| {
        format!("kubernetes:\n  namespace: it\n  pod_name: pg-{i}\n  api_url: {url}\n  token_file: {token}\n")
    };
    let mut cluster = AgentCluster::start(3, &k8s);
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;

    // helm upgrade --set replicas=5: two more pods join.
    api.set_replicas("pg", 5);
    for i in 3..5 {
        let node = cluster.add_node(&k8s(i));
        cluster.start_agent(node);
    }
    let all: Vec<String> = (1..=5).map(|i| format!("node{i}")).collect();
    wait_for("five voters", PATIENCE, || async { (voters(&cluster, primary).await == all).then_some(()) })
        .await;

    // A pod within the count restarts (a rolling update): it stays a member.
    let replica = (primary + 1) % 3;
    cluster.signal_agent(replica, libc::SIGTERM);
    assert!(cluster.agent_exited(replica, PATIENCE).await, "the replica's agent stops");
    assert_eq!(voters(&cluster, primary).await, all, "a restarted pod stays a voter");
    cluster.start_agent(replica);
    cluster.streaming_replica(replica, PATIENCE).await;

    // helm upgrade --set replicas=3: the two highest pods stop, and leave the group.
    api.set_replicas("pg", 3);
    for node in [3, 4] {
        cluster.signal_agent(node, libc::SIGTERM);
        assert!(cluster.agent_exited(node, PATIENCE).await, "{} stops", cluster.nodes[node].name);
        assert!(cluster.log(node).contains("left the Raft group"), "{}", cluster.plain_log(node));
    }
    let three: Vec<String> = (1..=3).map(|i| format!("node{i}")).collect();
    wait_for("three voters", PATIENCE, || async { (voters(&cluster, primary).await == three).then_some(()) })
        .await;
    assert_eq!(cluster.primary(PATIENCE).await, primary, "no failover");
}
