//! The store as a group of 3 and 5 nodes in this process, over real HTTP on 127.0.0.1.

use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;
use vigil_dcs::{Condition, DcsConfig, DcsError, Key, MemberName, NodeId, RaftMember, RaftSecurity};
use vigil_integration::cluster::{TestCluster, PATIENCE};
use vigil_integration::{init_tracing, wait_for};

const TTL: Duration = Duration::from_millis(1500);
const MARGIN: Duration = Duration::from_millis(200);

fn member(name: &str) -> MemberName {
    MemberName::new(name).unwrap()
}

/// Writes through a follower, kills the Raft leader, and checks the record on the new leader.
async fn survives_the_loss_of_the_raft_leader(size: u64) {
    init_tracing();
    let mut cluster = TestCluster::start(size).await;
    let leader = cluster.leader().await;
    let follower = cluster.running().into_iter().find(|id| *id != leader).expect("a follower");

    // Long enough to outlive the election even on a loaded machine (at 1.5 s it expired now and then
    // while the whole suite ran).
    let ttl = Duration::from_secs(6);
    let grant = cluster.node(follower).acquire_lease(&member("pg-a"), ttl, MARGIN).await.expect("acquire");
    let config = cluster.node(follower).put(&Key::Config, json!({"ttl": 3}), Condition::Absent, None).await;
    let config_version = config.expect("create config");

    cluster.stop(leader).await;
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);

    let state = cluster.node(new_leader).read().await.expect("read after failover");
    assert_eq!(state.keys[&Key::Config].value, json!({"ttl": 3}));
    assert_eq!(state.keys[&Key::Config].version, config_version);
    // The lease outlives a Raft failover: the holder renews it with the token it was granted.
    let renewed = cluster.node(new_leader).renew_lease(&grant).await.expect("renew after failover");
    assert_eq!(renewed.token, grant.token);
    let taken = cluster.node(new_leader).acquire_lease(&member("pg-b"), ttl, MARGIN).await;
    assert!(
        matches!(taken, Err(DcsError::LeaseHeld { ref holder, token }) if *holder == member("pg-a") && token == grant.token)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_the_loss_of_the_raft_leader() {
    survives_the_loss_of_the_raft_leader(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_survive_the_loss_of_the_raft_leader() {
    survives_the_loss_of_the_raft_leader(5).await;
}

/// Races a competitor against a holder that stopped renewing; the grant must come after the holder's
/// deadline. `holder_on_raft_leader` also stops the Raft leader, which then holds the lease's timer.
async fn lease_passes_only_after_the_holders_deadline(holder_on_raft_leader: bool) {
    init_tracing();
    let mut cluster = TestCluster::start(3).await;
    let raft_leader = cluster.leader().await;
    let others: Vec<_> = cluster.running().into_iter().filter(|id| *id != raft_leader).collect();
    let (holder_node, competitor_node) =
        if holder_on_raft_leader { (raft_leader, others[0]) } else { (others[0], others[1]) };

    // No safety margin: the holder's deadline is then exactly `sent_at + ttl`, the tightest bound the
    // store must respect.
    let mut grant =
        cluster.node(holder_node).acquire_lease(&member("pg-a"), TTL, Duration::ZERO).await.expect("acquire");
    for _ in 0..3 {
        grant = cluster.node(holder_node).renew_lease(&grant).await.expect("renew");
    }
    let deadline = grant.deadline.instant();
    if holder_on_raft_leader {
        cluster.stop(holder_node).await;
    }

    let mut watch = cluster.node(competitor_node).watch_leader();
    let competitor = cluster.node(competitor_node);
    let taken = wait_for("the competitor to take the lease", PATIENCE, || async {
        match competitor.acquire_lease(&member("pg-b"), TTL, MARGIN).await {
            Ok(g) => Some((g, std::time::Instant::now())),
            Err(DcsError::LeaseHeld { .. } | DcsError::NoQuorum { .. }) => None,
            Err(e) => panic!("acquire failed: {e}"),
        }
    })
    .await;
    let (new_grant, granted_at) = taken;
    assert!(granted_at >= deadline, "granted {:?} before the holder's deadline", deadline - granted_at);
    assert!(new_grant.token > grant.token, "token {} not above {}", new_grant.token, grant.token);
    // The watch saw the change (expiry, then the new holder).
    let seen = tokio::time::timeout(PATIENCE, watch.changed()).await.expect("watch woke");
    assert!(seen.is_some());

    // The old holder's renewal is refused from now on.
    let stale = competitor.renew_lease(&grant).await;
    assert!(matches!(stale, Err(DcsError::NotHolder { .. })), "{stale:?}");
    let failover = granted_at - deadline;
    tracing::info!(?failover, holder_on_raft_leader, "lease passed after the holder's deadline");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_passes_only_after_the_holders_deadline_when_the_holder_stops_renewing() {
    lease_passes_only_after_the_holders_deadline(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_passes_only_after_the_holders_deadline_when_holder_and_raft_leader_die_together() {
    lease_passes_only_after_the_holders_deadline(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_free_at_once_and_the_watch_says_so() {
    init_tracing();
    let cluster = TestCluster::start(3).await;
    let node = cluster.node(2);
    let mut watch = node.watch_leader();
    let grant = node.acquire_lease(&member("pg-a"), TTL, MARGIN).await.expect("acquire");
    let seen = tokio::time::timeout(PATIENCE, watch.changed()).await.expect("watch woke on grant");
    assert_eq!(seen.flatten().map(|l| l.token), Some(grant.token));
    node.release_lease(&grant).await.expect("release");
    let seen = tokio::time::timeout(PATIENCE, watch.changed()).await.expect("watch woke on release");
    assert_eq!(seen, Some(None));
    let next =
        cluster.node(3).acquire_lease(&member("pg-b"), TTL, MARGIN).await.expect("acquire after release");
    assert!(next.token > grant.token);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_from_its_data_directory() {
    init_tracing();
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let down = cluster.running().into_iter().find(|id| *id != leader).expect("a follower");
    cluster.node(leader).put(&Key::Config, json!(1), Condition::Always, None).await.expect("put");
    cluster.stop(down).await;
    let version =
        cluster.node(leader).put(&Key::Config, json!(2), Condition::Always, None).await.expect("put");
    cluster.restart(down).await;
    let state = cluster.node(down).read().await.expect("read on the restarted node");
    assert_eq!(state.keys[&Key::Config].value, json!(2));
    assert_eq!(state.keys[&Key::Config].version, version);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_writes_and_reads_fail_within_the_timeout() {
    init_tracing();
    let mut cluster = TestCluster::start(3).await;
    let survivor = cluster.leader().await;
    for id in cluster.running() {
        if id != survivor {
            cluster.stop(id).await;
        }
    }
    let op_timeout = cluster.config(survivor).op_timeout;
    let node = cluster.node(survivor);
    let started = Instant::now();
    let write = node.put(&Key::Config, json!(1), Condition::Always, None).await;
    let write_took = started.elapsed();
    assert!(matches!(write, Err(DcsError::NoQuorum { op: "put", .. })), "{write:?}");
    let started = Instant::now();
    let read = node.read().await;
    let read_took = started.elapsed();
    assert!(matches!(read, Err(DcsError::NoQuorum { .. })), "{read:?}");
    // Within the timeout, plus scheduling slack on a loaded 2-core machine.
    let bound = op_timeout + Duration::from_millis(500);
    assert!(write_took <= bound && read_took <= bound, "write {write_took:?}, read {read_took:?}");
    assert!(write.unwrap_err().to_string().contains("majority"));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_keys_expire_after_their_ttl_unless_written_again() {
    init_tracing();
    let cluster = TestCluster::start(3).await;
    let node = cluster.node(1);
    let key = Key::Member(member("pg-a"));
    let ttl = Some(Duration::from_millis(600));
    let first = Instant::now();
    node.put(&key, json!({"role": "replica"}), Condition::Always, ttl).await.expect("put");
    let gone = wait_for("the member key to expire", PATIENCE, || async {
        let state = node.read().await.ok()?;
        (!state.keys.contains_key(&key)).then(Instant::now)
    })
    .await;
    assert!(gone - first >= Duration::from_millis(600), "expired after {:?}", gone - first);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_runs_once_and_membership_grows_and_shrinks() {
    init_tracing();
    let mut cluster = TestCluster::start(3).await;
    let again = cluster.node(2).initialize(cluster.members()).await;
    assert!(matches!(again, Err(DcsError::AlreadyInitialized { .. })), "{again:?}");

    let joined = cluster.join_new(2).await;
    assert_eq!(joined, 4, "the first id after the initial members'");
    assert!(!cluster.node(1).raft_status().voters.contains(&4), "a new node joins as a learner");
    let refused = cluster.node(1).promote(4, false).await;
    assert!(matches!(refused, Err(DcsError::Refused(ref why)) if why.contains("4 voters")), "{refused:?}");
    promote(&cluster, 4).await;
    let version =
        cluster.node(4).put(&Key::Sync, json!(["pg-a"]), Condition::Absent, None).await.expect("write");
    let state = cluster.node(3).read().await.expect("read");
    assert_eq!(state.keys[&Key::Sync].version, version);

    cluster.node(4).remove(1, false).await.expect("remove voter 1");
    wait_for("node 1 to leave the voters", PATIENCE, || async {
        (!cluster.node(4).raft_status().nodes.contains_key(&1)).then_some(())
    })
    .await;
    cluster.stop(1).await;
    cluster.node(3).put(&Key::Sync, json!(["pg-b"]), Condition::Always, None).await.expect("write without 1");

    // Ids are never reused: node 4 removed, the next joiner gets 5.
    cluster.node(2).remove(4, true).await.expect("remove node 4, leaving 2 voters");
    cluster.stop(4).await;
    assert_eq!(cluster.join_new(3).await, 5);
    cluster.shutdown().await;
}

/// Promotes learner `id` once it has caught up.
async fn promote(cluster: &TestCluster, id: NodeId) {
    wait_for("the learner to become a voter", PATIENCE, || async {
        cluster.node(id).promote(id, true).await.map_err(|e| tracing::info!("not yet: {e}")).ok()
    })
    .await;
    wait_for("the new voter to be known everywhere", PATIENCE, || async {
        cluster.running().iter().all(|n| cluster.node(*n).raft_status().voters.contains(&id)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_moved_keeps_its_id_and_an_added_address_joins_under_its_id() {
    init_tracing();
    let mut cluster = TestCluster::start(3).await;
    // Node 3 moves: same data directory, new address; it records the address through a member.
    cluster.stop(3).await;
    let moved = cluster.restart_elsewhere(3).await.to_string();
    let member = RaftMember { addr: moved.clone(), name: "pg-c".into(), witness: false };
    wait_for("node 3 to record its new address", PATIENCE, || async {
        cluster.node(3).describe(&[cluster.addr(1).to_string()], member.clone()).await.ok()
    })
    .await;
    wait_for("node 3 to take part again", PATIENCE, || async {
        let known = cluster.node(1).raft_status().nodes.get(&3).cloned();
        let caught_up =
            cluster.node(3).raft_status().last_applied >= cluster.node(1).raft_status().last_applied;
        (known.as_ref() == Some(&member) && caught_up).then_some(())
    })
    .await;
    assert!(cluster.node(1).raft_status().voters.contains(&3), "still voter 3");

    // An address added before its server runs: the server joins under the id handed out then.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    drop(listener);
    let id = cluster.node(2).add_member(RaftMember::at(addr.clone())).await.expect("add");
    assert_eq!(id, 4);
    let template = cluster.config(0);
    let contacts = [cluster.addr(1).to_string()];
    let joined =
        vigil_dcs::join(&template.security, "test", "/service/", &contacts, RaftMember::at(addr), PATIENCE)
            .await
            .expect("join");
    assert_eq!(joined, 4, "the address's id");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_would_lose_quorum_is_refused_and_a_removed_node_stays_out() {
    init_tracing();
    let mut cluster = TestCluster::start(3).await;
    let even = cluster.node(1).remove(3, false).await;
    assert!(matches!(even, Err(DcsError::Refused(ref why)) if why.contains("2 voters")), "{even:?}");

    cluster.stop(3).await;
    let lost = cluster.node(1).remove(2, true).await;
    let Err(DcsError::Refused(why)) = lost else { panic!("removal without quorum: {lost:?}") };
    assert!(why.contains("would lose quorum") && why.contains("only 1 answer"), "{why}");
    assert_eq!(cluster.node(2).raft_status().voters.len(), 3);

    // Node 3 is removed while down; restarted from its data directory it cannot rejoin nor disturb the
    // others' term.
    cluster.node(1).remove(3, true).await.expect("remove the dead node");
    let term = cluster.node(1).raft_status().term;
    cluster.restart(3).await;
    let rejoin = cluster
        .node(3)
        .describe(&[cluster.addr(1).to_string()], RaftMember::at(cluster.addr(3).to_string()))
        .await;
    assert!(matches!(rejoin, Err(DcsError::Refused(ref why)) if why.contains("cannot rejoin")), "{rejoin:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.node(1).raft_status().term, term, "the removed node's campaigns were refused");
    cluster.node(2).put(&Key::Sync, json!(["pg-a"]), Condition::Always, None).await.expect("write");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_cluster_cannot_join() {
    init_tracing();
    // Without TLS, so that the clusters reach each other (each test cluster has its own CA).
    let plain = |config: &mut DcsConfig| config.security = RaftSecurity::default();
    let a = TestCluster::start_with(3, plain).await;
    let mut b = TestCluster::start_with(1, plain).await;
    let stranger = b.join_new(1).await;
    b.node(stranger).read().await.expect("the stranger reads through cluster b");

    let member = RaftMember::at(b.addr(stranger).to_string());
    let joined = b.node(stranger).describe(&[a.addr(1).to_string()], member).await;
    let Err(DcsError::Refused(why)) = joined else {
        panic!("a member of another cluster was let in: {joined:?}")
    };
    assert!(why.contains("node 2 belongs to cluster test-"), "{why}");
    assert!(!a.node(1).raft_status().nodes.values().any(|n| n.addr == b.addr(stranger).to_string()));
    let taken = a.node(1).add_member(RaftMember::at(a.addr(2).to_string())).await;
    assert!(
        matches!(taken, Err(DcsError::Refused(ref why)) if why.contains("already the address of node 2")),
        "{taken:?}"
    );
    // The stranger still serves its own cluster.
    b.node(stranger).read().await.expect("the stranger reads through cluster b");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_certificate_of_another_ca_cannot_join() {
    init_tracing();
    let a = TestCluster::start(1).await;
    let b = TestCluster::start(1).await;
    let security = b.config(9).security;
    let contacts = [a.addr(1).to_string()];
    let joiner = RaftMember::at("127.0.0.1:9");
    let joined =
        vigil_dcs::join(&security, "test", "/service/", &contacts, joiner, Duration::from_secs(1)).await;
    let Err(DcsError::Refused(why)) = joined else { panic!("a node of another CA was let in: {joined:?}") };
    assert!(why.contains("no member accepted the join"), "{why}");
    assert_eq!(a.node(1).raft_status().nodes.len(), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_compacted_into_snapshots_and_a_node_restarts_from_one() {
    init_tracing();
    let mut cluster = TestCluster::start_with(3, |config| config.snapshot_every = 20).await;
    let grant = cluster.node(1).acquire_lease(&member("pg-a"), TTL, MARGIN).await.expect("acquire");
    let mut grant_now = grant.clone();
    for _ in 0..100 {
        grant_now = cluster.node(1).renew_lease(&grant_now).await.expect("renew");
    }
    wait_for("every node to purge its log", PATIENCE, || async {
        let purged: Vec<_> =
            cluster.running().iter().map(|id| cluster.node(*id).raft_status().purged).collect();
        purged.iter().all(|p| p.is_some_and(|p| p >= 60)).then_some(())
    })
    .await;
    cluster.stop(2).await;
    cluster.restart(2).await;
    let state = cluster.node(2).read().await.expect("read");
    let lease = state.leader.as_ref().expect("lease");
    assert_eq!((lease.token, lease.renewed_at), (grant.token, grant_now.renewed_at));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_forming_the_group_at_once_or_late_make_one_group() {
    init_tracing();
    let mut cluster = TestCluster::start_unformed(3, |_| {}).await;
    let members = cluster.members();
    let (a, b) = tokio::join!(cluster.node(1).form(&members), cluster.node(2).form(&members));
    a.expect("node 1 forms");
    b.expect("node 2 forms");
    let leader = cluster.leader().await;
    cluster.node(leader).put(&Key::Config, json!(1), Condition::Absent, None).await.expect("write");
    // A member that comes late, or forms again after a restart, joins the same group.
    cluster.node(3).form(&members).await.expect("node 3 joins");
    cluster.stop(1).await;
    cluster.restart(1).await;
    cluster.node(1).form(&members).await.expect("node 1 forms again");
    let state = cluster.node(3).read().await.expect("read on node 3");
    assert_eq!(state.keys[&Key::Config].value, json!(1));
    cluster.leader().await;
    cluster.shutdown().await;
}

/// The lease holder's node leads the Raft group: the first other voter calls an election, the old leader
/// votes for it, and the store serves on, the lease kept. A follower that is not first does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_takes_the_raft_leadership_off_the_lease_holders_node() {
    init_tracing();
    let cluster = TestCluster::start(3).await;
    for id in cluster.running() {
        let node = RaftMember { name: format!("pg-{id}"), ..RaftMember::at(cluster.addr(id).to_string()) };
        cluster.node(id).describe(&[cluster.addr(1).to_string()], node).await.expect("describe");
    }
    let leader = cluster.leader().await;
    let holder = member(&format!("pg-{leader}"));
    // Long enough to be held throughout: the election is called only once the grant settled.
    let grant =
        cluster.node(leader).acquire_lease(&holder, Duration::from_secs(60), MARGIN).await.expect("acquire");
    let mut followers: Vec<NodeId> = cluster.running().into_iter().filter(|id| *id != leader).collect();
    followers.sort();
    let (first, second) = (followers[0], followers[1]);

    let token = grant.token;
    assert!(!cluster.node(second).draw_leadership_from(&holder, token), "not the first follower");
    let elsewhere = member("pg-elsewhere");
    assert!(!cluster.node(first).draw_leadership_from(&elsewhere, token), "not the holder's node");
    // It calls once the grant has been held for a while (by then the old leader has led longer than the
    // Raft lease it was granted, and votes), while it hears the leader.
    wait_for("the first follower to call an election", PATIENCE, || async {
        cluster.node(first).draw_leadership_from(&holder, token).then_some(())
    })
    .await;
    let new_leader = wait_for("a new Raft leader", PATIENCE, || async {
        let status = cluster.node(first).raft_status();
        status.leader.filter(|l| *l != leader)
    })
    .await;
    assert_eq!(new_leader, first, "the old leader voted for the caller");
    assert!(!cluster.node(first).draw_leadership_from(&holder, token), "no longer the holder's node");
    let renewed = cluster.node(leader).renew_lease(&grant).await.expect("renewed through the new leader");
    assert_eq!(renewed.token, grant.token);
    cluster.shutdown().await;
}
