//! Real agents managing real PostgreSQL 15 servers: stalls of the primary's agent (SIGSTOP) and the loss
//! of the store's Raft leader. Agent defaults: ttl 3 s, loop_wait 1 s, retry_timeout 0.75 s, safety_margin
//! 0.5 s; the primary renews its lease every loop and its own deadline is `sent_at + ttl - safety_margin`.

use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// How long a request to an agent may take when that agent may be stopped (SIGSTOP): a stopped agent's
/// kernel still accepts the connection, but nobody answers.
const QUICK: Duration = Duration::from_millis(500);

/// Polling period of the observation windows.
const POLL: Duration = Duration::from_millis(100);

/// Node `i`'s `vigil.fencing_token` from `GET /patroni`.
async fn fencing_token(cluster: &AgentCluster, i: usize) -> Option<u64> {
    let (_, status) = cluster.rest(i, "/patroni").await?;
    status["vigil"]["fencing_token"].as_u64()
}

/// Node `i`'s `vigil.last_decision` from `GET /patroni`, if it answered within [`QUICK`].
async fn last_decision(cluster: &AgentCluster, i: usize) -> Option<String> {
    let (_, status) = cluster.rest_within(i, "/patroni", QUICK).await?;
    status["vigil"]["last_decision"].as_str().map(str::to_owned)
}

/// Whether node `i` answers 200 on `/primary` within [`QUICK`] (no answer counts as not 200), and the
/// token it then shows.
async fn answers_primary(cluster: &AgentCluster, i: usize) -> Option<Option<u64>> {
    match cluster.rest_within(i, "/primary", QUICK).await {
        Some((200, status)) => Some(status["vigil"]["fencing_token"].as_u64()),
        _ => None,
    }
}

/// Writes rows `from..to` of `t` on `primary` and waits until every node in `nodes` has replayed them.
async fn write_and_replicate(cluster: &AgentCluster, primary: usize, nodes: &[usize], from: u32, to: u32) {
    let sql = format!("INSERT INTO t SELECT generate_series({from}, {})", to - 1);
    cluster.query(primary, &sql).await.expect("write rows");
    for n in nodes {
        let count = format!("SELECT count(*) FROM t WHERE v >= {from} AND v < {to}");
        cluster.eventually(*n, &count, &[&(to - from).to_string()]).await;
    }
}

/// Every node of the 3-node clusters here.
const ALL: [usize; 3] = [0, 1, 2];

/// A settled 3-node cluster whose primary wrote rows `0..rows` of a table `t` that every node replayed.
struct Settled {
    cluster: AgentCluster,
    primary: usize,
    replicas: Vec<usize>,
    /// The primary's fencing token.
    token: u64,
    /// The primary's postmaster.
    postmaster: libc::pid_t,
}

async fn settled_with_rows(rows: u32) -> Settled {
    let cluster = AgentCluster::start_checked(3, |_| String::new()).await;
    let primary = cluster.settled(&ALL, PATIENCE).await;
    let replicas: Vec<usize> = ALL.iter().copied().filter(|i| *i != primary).collect();
    cluster.query(primary, "CREATE TABLE t (v int)").await.expect("create");
    write_and_replicate(&cluster, primary, &ALL, 0, rows).await;
    let token = fencing_token(&cluster, primary).await.expect("the primary shows its token");
    let postmaster = cluster.postmaster_pid(primary).expect("the primary's postmaster pid");
    Settled { cluster, primary, replicas, token, postmaster }
}

/// The lengths of every node's agent log (without colour codes) now: what a node logs later follows.
fn log_offsets(cluster: &AgentCluster) -> Vec<usize> {
    (0..cluster.nodes.len()).map(|i| cluster.plain_log(i).len()).collect()
}

/// What node `i` logged after `offsets` were taken, without colour codes.
fn log_since(cluster: &AgentCluster, offsets: &[usize], i: usize) -> String {
    cluster.plain_log(i).get(offsets[i]..).unwrap_or_default().to_owned()
}

/// The Raft leader named by the agents' logs, once the answer is the same twice 1.5 s apart (several
/// election timeouts): a settled Raft group.
async fn settled_raft_leader(cluster: &AgentCluster) -> usize {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let first = cluster.raft_leader();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let second = cluster.raft_leader();
        if let (Some(a), Some(b)) = (first, second) {
            if a == b {
                return a;
            }
        }
        assert!(Instant::now() < deadline, "no settled raft leader in the logs within {PATIENCE:?}");
    }
}

/// A sub-second stall of the primary's agent: nobody else may take over, since the store expires the lease
/// only a full ttl (3 s) after the last renewal it saw, and the primary keeps its lease (same token).
///
/// What is deliberately not asserted: that `/primary` on the primary never blinks. Its own deadline is
/// `sent_at + 2.5 s` and it renews every loop_wait (1 s), so an 800 ms stop that starts just before a
/// renewal leaves it ~0.6 s after SIGCONT; when the stalled node was also the Raft leader, the other two
/// hold an election meanwhile and the resumed agent's first store call can wait the whole retry_timeout
/// (0.75 s) before it fails. It then reaches its deadline before renewing: `/primary` answers 503 for a
/// moment, and if a cycle starts past the deadline the agent fences (stops PostgreSQL) and re-acquires
/// its still-named lease with the same token, starting PostgreSQL in place. That is the design's timing
/// (loop_wait + stall + retry_timeout > ttl - safety_margin), not a failover; the test prints it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sub_second_stall_of_the_primarys_agent_causes_no_failover() {
    init_tracing();
    let Settled { mut cluster, primary, replicas, token, postmaster } = settled_with_rows(10).await;
    let all = ALL;
    let raft_leader = cluster.raft_leader();
    let offsets = log_offsets(&cluster);

    cluster.signal_agent(primary, libc::SIGSTOP);
    tokio::time::sleep(Duration::from_millis(800)).await;
    cluster.signal_agent(primary, libc::SIGCONT);
    let resumed = Instant::now();

    // A fixed observation window, longer than the ttl (3 s): had the stall cost the primary its lease in
    // the store, the store would have expired it within one ttl of the last renewal it saw and a replica
    // would have taken it inside the window. No other node may answer 200 on /primary at any point.
    let window_end = resumed + Duration::from_secs(5);
    let mut primary_gaps = Vec::new();
    while Instant::now() < window_end {
        let at = resumed.elapsed();
        match answers_primary(&cluster, primary).await {
            Some(shown) => assert_eq!(shown, Some(token), "the primary's token changed at {at:?}"),
            None => primary_gaps.push(at),
        }
        for &r in &replicas {
            if let Some(shown) = answers_primary(&cluster, r).await {
                panic!(
                    "{} answered 200 on /primary {at:?} after SIGCONT (token {shown:?})",
                    cluster.nodes[r].name
                );
            }
        }
        tokio::time::sleep(POLL).await;
    }

    assert_eq!(cluster.primary(Duration::from_secs(5)).await, primary, "the same node is the primary");
    assert_eq!(fencing_token(&cluster, primary).await, Some(token), "the same lease");
    for &r in &replicas {
        let log = log_since(&cluster, &offsets, r);
        assert!(!log.contains("leader lease held"), "{} took the lease:\n{log}", cluster.nodes[r].name);
    }
    write_and_replicate(&cluster, primary, &all, 10, 20).await;

    let primary_log = log_since(&cluster, &offsets, primary);
    let notable: Vec<&str> = primary_log
        .lines()
        .filter(|l| ["cannot read the cluster store", "not renewed", "fencing"].iter().any(|m| l.contains(m)))
        .collect();
    eprintln!(
        "{} stayed primary with token {token}; raft leader before the stall: {:?}; /primary not 200 at \
         {primary_gaps:?} after SIGCONT; PostgreSQL restarted: {}; notable lines: {notable:#?}",
        cluster.nodes[primary].name,
        raft_leader.map(|i| &cluster.nodes[i].name),
        cluster.postmaster_pid(primary) != Some(postmaster),
    );
}

/// The store survives the loss of its Raft leader (two of three voters remain), and the primary must not
/// notice beyond a renewal or two retried: an election takes 300-600 ms (plus a failed attempt of up to
/// retry_timeout, 0.75 s), well inside the 2.5 s between a renewal and the primary's own deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_raft_leader_on_a_replica_node_causes_no_failover() {
    init_tracing();
    let mut cluster = AgentCluster::start_checked(3, |_| String::new()).await;
    let all = [0, 1, 2];
    let primary = cluster.settled(&all, PATIENCE).await;
    cluster.query(primary, "CREATE TABLE t (v int)").await.expect("create");
    write_and_replicate(&cluster, primary, &all, 0, 10).await;
    let leader = settled_raft_leader(&cluster).await;
    // The Raft leader cannot be moved on purpose: when it is the primary's node, a replica is killed
    // anyway (the test then shows only that losing a follower costs nothing).
    let victim = if leader != primary {
        leader
    } else {
        eprintln!(
            "NOTE: the raft leader is the primary's node {}; killing a replica that is a raft follower",
            cluster.nodes[primary].name
        );
        all.iter().copied().find(|i| *i != primary).expect("a replica")
    };
    let survivor = all.iter().copied().find(|i| *i != primary && *i != victim).expect("a survivor");
    let token = fencing_token(&cluster, primary).await.expect("the primary shows its token");
    let postmaster = cluster.postmaster_pid(primary).expect("the primary's postmaster pid");
    let writer = cluster.connect(primary).await.expect("writer connection");
    let offsets = log_offsets(&cluster);

    cluster.signal_agent(victim, libc::SIGKILL);
    cluster.kill_postgres(victim);
    let killed = Instant::now();

    // Every 100 ms for 6 s (two ttl's worth of renewals): /primary must answer 200 each time (a 503
    // would mean the primary's own deadline passed, i.e. it fences itself), and a write must succeed.
    let mut gaps = Vec::new();
    let mut failed_writes = Vec::new();
    let mut written = 10u32;
    while killed.elapsed() < Duration::from_secs(6) {
        let at = killed.elapsed();
        match cluster.rest_within(primary, "/primary", Duration::from_secs(1)).await {
            Some((200, status)) => {
                assert_eq!(status["vigil"]["fencing_token"].as_u64(), Some(token), "token changed at {at:?}")
            }
            other => gaps.push((at, other.map(|(code, _)| code))),
        }
        let sql = format!("INSERT INTO t VALUES ({written})");
        let insert = writer.simple_query(&sql);
        match tokio::time::timeout(Duration::from_secs(1), insert).await {
            Ok(Ok(_)) => written += 1,
            Ok(Err(e)) => failed_writes.push((at, e.to_string())),
            Err(_) => failed_writes.push((at, "timed out".to_owned())),
        }
        tokio::time::sleep(POLL).await;
    }
    let primary_log = log_since(&cluster, &offsets, primary);
    assert!(
        gaps.is_empty(),
        "/primary on the primary was not 200 at {gaps:?} after the kill:\n{primary_log}"
    );
    assert!(failed_writes.is_empty(), "writes failed on the primary: {failed_writes:?}");
    assert!(!primary_log.contains("fencing"), "the primary fenced itself:\n{primary_log}");
    if victim == leader {
        let new_leader = wait_for("a new raft leader in the logs", Duration::from_secs(10), || async {
            cluster.raft_leader().filter(|l| *l != victim)
        })
        .await;
        eprintln!(
            "raft leader {} (a replica) killed; {} leads the store now",
            cluster.nodes[victim].name, cluster.nodes[new_leader].name
        );
    }
    assert_eq!(cluster.primary(Duration::from_secs(5)).await, primary, "no failover");
    assert_eq!(fencing_token(&cluster, primary).await, Some(token), "the same lease");
    assert_eq!(
        cluster.postmaster_pid(primary),
        Some(postmaster),
        "the primary's PostgreSQL was not restarted"
    );
    cluster.streaming_replica(survivor, Duration::from_secs(5)).await;
    let count = written.to_string();
    cluster.eventually(survivor, "SELECT count(*) FROM t", &[&count]).await;
    let log = log_since(&cluster, &offsets, survivor);
    assert!(!log.contains("leader lease held"), "{} took the lease:\n{log}", cluster.nodes[survivor].name);

    // The killed node comes back as a streaming replica with every row.
    cluster.start_agent(victim);
    cluster.streaming_replica(victim, PATIENCE).await;
    cluster.eventually(victim, "SELECT count(*) FROM t", &[&count]).await;
    assert_eq!(cluster.primary(Duration::from_secs(5)).await, primary, "still no failover");
    assert_eq!(fencing_token(&cluster, primary).await, Some(token), "still the same lease");
    eprintln!("{} writes acknowledged; {} rejoined", written - 10, cluster.nodes[victim].name);
}

/// A stall longer than the ttl. What the design promises:
/// - While the agent is stopped its PostgreSQL still runs and streams (only the agent is stopped, nothing
///   can fence it); the store expires the lease a ttl after the last renewal, but a replica whose WAL
///   receiver still streams does not take over (`last_decision`: "still streaming from the old primary"): no
///   replica answers 200 on `/primary`, and the writes the old primary still acknowledges reach both
///   replicas.
/// - After SIGCONT the old agent finds its deadline passed and fences (stops) its PostgreSQL before anything
///   else; `/primary` on it is 503 from the first request (the REST API checks the deadline itself), and
///   the old primary's client connections are cut.
/// - Then the cluster recovers with exactly one primary (a replica, or the old node re-acquiring the lease;
///   either way under a new token), and every acknowledged row is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_stall_of_the_primarys_agent_fails_over_and_the_old_primary_does_not_serve_writes() {
    init_tracing();
    let Settled { mut cluster, primary: old, replicas, token, postmaster } = settled_with_rows(100).await;
    let all = ALL;
    let writer = cluster.connect(old).await.expect("writer connection");
    let offsets = log_offsets(&cluster);

    cluster.signal_agent(old, libc::SIGSTOP);
    let stopped = Instant::now();
    let freeze = Duration::from_secs(6);

    // While frozen: the old PostgreSQL keeps serving (one write per poll, for the first 4 s), no replica
    // answers 200 on /primary, and both explain why they do not take over.
    let mut acked: Vec<u32> = (0..100).collect();
    let mut explained = BTreeSet::new();
    while stopped.elapsed() < freeze {
        let at = stopped.elapsed();
        if at < Duration::from_secs(4) {
            let v = acked.len() as u32;
            let sql = format!("INSERT INTO t VALUES ({v})");
            let insert = writer.simple_query(&sql);
            match tokio::time::timeout(Duration::from_secs(1), insert).await {
                Ok(Ok(_)) => acked.push(v),
                other => panic!("a write on the old primary failed {at:?} into the stall: {other:?}"),
            }
        }
        for &r in &replicas {
            if let Some(shown) = answers_primary(&cluster, r).await {
                panic!(
                    "{} answered 200 on /primary {at:?} into the stall (token {shown:?})",
                    cluster.nodes[r].name
                );
            }
            if last_decision(&cluster, r)
                .await
                .is_some_and(|d| d.contains("still streaming from the old primary"))
            {
                explained.insert(r);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(answers_primary(&cluster, old).await, None, "the frozen agent cannot answer");
    let explained: Vec<usize> = explained.into_iter().collect();
    assert_eq!(explained, replicas, "both replicas said they still stream from the old primary");
    // Both replicas have every write acknowledged so far (the old PostgreSQL streamed them).
    let count = acked.len().to_string();
    for &r in &replicas {
        cluster.eventually(r, "SELECT count(*) FROM t", &[&count]).await;
    }
    for &r in &replicas {
        let log = log_since(&cluster, &offsets, r);
        assert!(
            !log.contains("leader lease held"),
            "{} took the lease while the old primary ran:\n{log}",
            cluster.nodes[r].name
        );
    }

    cluster.signal_agent(old, libc::SIGCONT);
    let resumed = Instant::now();
    // /primary on the old node is 503 from the first answer on: its deadline passed long ago.
    let first = cluster.rest(old, "/primary").await.map(|(code, _)| code);
    assert_eq!(first, Some(503), "the old primary's first answer after SIGCONT");
    // The old agent fences: its postmaster stops (within a cycle or two), and the old primary's client
    // connection is gone with it.
    wait_for("the old primary's PostgreSQL to stop", Duration::from_secs(5), || async {
        (cluster.postmaster_pid(old) != Some(postmaster)).then_some(())
    })
    .await;
    let fenced_after = resumed.elapsed();
    let late =
        tokio::time::timeout(Duration::from_secs(2), writer.simple_query("INSERT INTO t VALUES (-1)")).await;
    assert!(!matches!(late, Ok(Ok(_))), "the old primary still took a write after its PostgreSQL stopped");
    // The way it should stop is the fence ("my lease passed its deadline"), the very first decision after
    // SIGCONT. When the stop came while the agent was inside its database check, it instead takes its
    // running primary for a stopped server and stops it on another path (see the ignored test
    // `a_stall_during_the_agents_database_check_is_not_taken_for_a_stopped_server`): the outcome here is the
    // same, so only the path is reported.
    let old_log = log_since(&cluster, &offsets, old);
    let path = old_log.lines().find(|l| l.contains("decision")).unwrap_or("no decision logged").to_owned();

    // Recovery: exactly one primary within 20 s of SIGCONT; never two at once, and never the old lease.
    let recover_by = resumed + Duration::from_secs(20);
    let new = loop {
        let mut primaries = Vec::new();
        for i in all {
            if let Some(shown) = answers_primary(&cluster, i).await {
                primaries.push((i, shown));
            }
        }
        assert!(primaries.len() <= 1, "two primaries at once: {primaries:?}");
        if let Some(&(i, shown)) = primaries.first() {
            let shown = shown.expect("a primary shows its token");
            assert!(
                shown > token,
                "{} is primary under token {shown}, not newer than {token}",
                cluster.nodes[i].name
            );
            break i;
        }
        assert!(Instant::now() < recover_by, "no primary within 20 s of SIGCONT");
        tokio::time::sleep(POLL).await;
    };
    let recovered_after = resumed.elapsed();
    // Still exactly one a moment later (the primary() helper asks every node).
    assert_eq!(cluster.primary(Duration::from_secs(5)).await, new);
    let rows = cluster.query(new, "SELECT v FROM t").await.expect("read on the new primary");
    let present: BTreeSet<u32> = rows.iter().map(|r| r.parse().expect("an integer")).collect();
    let lost: Vec<u32> = acked.iter().copied().filter(|v| !present.contains(v)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged rows missing: {lost:?}", lost.len(), acked.len());
    for i in all.iter().copied().filter(|i| *i != new) {
        cluster.streaming_replica(i, PATIENCE).await;
    }
    let next = 100 + acked.len() as u32 + 1000;
    write_and_replicate(&cluster, new, &all, next, next + 10).await;
    eprintln!(
        "{} writes acknowledged during the stall; old primary {} stopped {fenced_after:?} after SIGCONT \
         (first decision: {path}); {} primary {recovered_after:?} after SIGCONT",
        acked.len() - 100,
        cluster.nodes[old].name,
        cluster.nodes[new].name
    );
}

/// The agent checks its database every cycle with a connection and a query, each under a 1 s timeout. If
/// the agent stalls (SIGSTOP here; in production a CPU-throttled cgroup, swapping, a paused VM) for longer
/// than that while a check is in flight, the timeout fires as soon as it resumes, before the answer that
/// has been waiting in the socket is read, and the check reports the server as stopped. The stall here is
/// 1 s, inside the lease's slack: the agent asks again before it takes the server for stopped. The agent's check is caught in flight as an active `application_name = 'vigil'` session in
/// `pg_stat_activity`; an attempt whose stall cost the lease anyway (the primary fenced and PostgreSQL
/// restarted) proves nothing either way and is repeated, up to 5 attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_during_the_agents_database_check_is_not_taken_for_a_stopped_server() {
    init_tracing();
    let mut cluster = AgentCluster::start_checked(3, |_| String::new()).await;
    let all = [0, 1, 2];
    let mut conclusive = 0;
    for attempt in 1..=5 {
        let primary = cluster.settled(&all, PATIENCE).await;
        let name = cluster.nodes[primary].name.clone();
        let postmaster = cluster.postmaster_pid(primary).expect("the primary's postmaster pid");
        let poller = cluster.connect(primary).await.expect("poller connection");
        let offsets = log_offsets(&cluster);
        let sql = "SELECT count(*) FROM pg_stat_activity \
                   WHERE application_name = 'vigil' AND state = 'active' AND pid <> pg_backend_pid()";
        // The agent checks once per loop_wait (1 s): 10 s is many chances.
        let looking = Instant::now();
        loop {
            let rows = poller.simple_query(sql).await.expect("poll pg_stat_activity");
            let active = rows.iter().any(|m| {
                matches!(m, tokio_postgres::SimpleQueryMessage::Row(r) if r.get(0).is_some_and(|n| n != "0"))
            });
            if active {
                break;
            }
            assert!(looking.elapsed() < Duration::from_secs(10), "never saw the agent's database check");
        }
        cluster.signal_agent(primary, libc::SIGSTOP);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        cluster.signal_agent(primary, libc::SIGCONT);
        let resumed = Instant::now();

        // Two cycles' worth of the published state.
        let mut stopped_at = Vec::new();
        while resumed.elapsed() < Duration::from_secs(2) {
            if let Some((_, status)) = cluster.rest(primary, "/patroni").await {
                if status["state"] == "stopped" {
                    stopped_at.push(resumed.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = log_since(&cluster, &offsets, primary);
        if cluster.postmaster_pid(primary) != Some(postmaster) || log.contains("fencing") {
            eprintln!("attempt {attempt}: the stall cost {name} its lease; inconclusive, again");
            continue;
        }
        conclusive += 1;
        let decisions: Vec<&str> =
            log.lines().filter(|l| l.contains("decision") || l.contains("observe query")).collect();
        assert!(
            stopped_at.is_empty() && !log.contains("primary not running"),
            "attempt {attempt}: {name}'s PostgreSQL ran throughout (postmaster {postmaster}), yet after a 1 s \
             stall during its database check the agent published state=stopped at {stopped_at:?} after \
             SIGCONT and decided: {decisions:#?}"
        );
        if conclusive == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("{conclusive} conclusive attempts");
}

/// Whether process `pid` is gone: dead, or a zombie nobody reaped yet.
fn gone(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// A hung primary: its PostgreSQL (the postmaster's process group: postmaster and backends) stopped with
/// SIGSTOP, which is how a stalled volume or a frozen VM disk looks from outside (processes alive, TCP
/// connections open, nothing answers), while its agent runs. What the design promises:
/// - The agent takes the server for hung ("not responding"), not for starting, keeps its lease up to
///   primary_start_timeout (10 s) in case the server comes back, then kills its process group (SIGKILL
///   works on stopped processes) and only then releases the lease: by the first write another node
///   acknowledges, the old postmaster is already gone.
/// - The replicas do not take the frozen sender for a streaming one: a replica takes over (a new, larger
///   token) within primary_start_timeout + ttl + a few seconds; the figure is printed (the fault suite
///   measures it per nemesis).
/// - The old primary rejoins by pg_rewind, not by a new copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_is_killed_before_its_lease_is_released_and_rejoins_by_rewind() {
    init_tracing();
    let Settled { cluster, primary: old, replicas, token, postmaster } = settled_with_rows(100).await;
    let all = ALL;
    let offsets = log_offsets(&cluster);

    // pg_ctl makes the postmaster a process group leader: the group is the postmaster and its backends.
    let frozen = cluster.freeze(-postmaster);
    let hung = Instant::now();
    let (new, downtime) = wait_for("a write acknowledged by another node", PATIENCE, || async {
        for &r in &replicas {
            let insert = cluster.query(r, "INSERT INTO t VALUES (1000)");
            if matches!(tokio::time::timeout(Duration::from_secs(1), insert).await, Ok(Ok(_))) {
                return Some((r, hung.elapsed()));
            }
        }
        None
    })
    .await;
    assert!(gone(postmaster), "the hung postmaster {postmaster} still exists when another node takes writes");
    drop(frozen);
    let new_token = fencing_token(&cluster, new).await.expect("the new primary shows its token");
    assert!(new_token > token, "new token {new_token} not larger than {token}");
    let old_log = log_since(&cluster, &offsets, old);
    // Killed after primary_start_timeout, or (a loaded machine slowing its looks at the hung server) as
    // soon as its own lease deadline passed: either way by its agent, before anyone else took writes.
    let killed = old_log.lines().any(|l| l.contains("server killed (SIGKILL") && l.contains("killed=true"));
    assert!(killed, "the old agent killed its server:\n{old_log}");

    cluster.streaming_replica(old, PATIENCE).await;
    // The killed server's data is repaired by pg_rewind (which succeeds), not replaced by a new copy. What
    // may happen after the rewind (a replica that then fails to follow is re-cloned) is another matter:
    // it is reported, not asserted.
    let old_log = log_since(&cluster, &offsets, old);
    let repairs: Vec<&str> = old_log
        .lines()
        .filter(|l| l.contains("action=\"repair_from\"") || l.contains("action=\"clone_from\""))
        .collect();
    assert!(
        repairs
            .first()
            .is_some_and(|first| first.contains("repair_from") && first.contains("operation done")),
        "the old primary's first repair is a successful rewind, not a new copy: {repairs:#?}\n{old_log}"
    );
    write_and_replicate(&cluster, new, &all, 2000, 2010).await;
    eprintln!(
        "hung primary {}: first write acknowledged by {} {downtime:?} after SIGSTOP (token {token} -> {new_token}); \
         repairs of the old primary: {repairs:#?}",
        cluster.nodes[old].name, cluster.nodes[new].name
    );
}
