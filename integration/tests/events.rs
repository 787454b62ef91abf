//! The event log with real agents and real PostgreSQL 15: a kill -9 of the primary's agent and server
//! shows up in `GET /events` (and `vigil events`) as the old lease's expiry, a grant with a larger token
//! and a promotion broken into its four phases, which add up to about the downtime measured here, and as
//! metrics; a switchover as asked and done; the old member's rejoin; and `vigil events -f` prints a new
//! event as it happens. A primary cut off from the others (network namespaces) fences itself and writes
//! that event once it reaches the store again, with its original time.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};
use vigil_api::{Event, EventKind};
use vigil_integration::agents::{vigil_binary, AgentCluster, Placement};
use vigil_integration::netns::Topology;
use vigil_integration::vigil_cli;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// The event log as node `i` answers it.
async fn events(cluster: &AgentCluster, i: usize) -> Vec<Event> {
    let (code, body) = cluster.send(i, reqwest::Method::GET, "/events", "").await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("events")
}

/// Waits until node `i`'s event log has an event matching `wanted`, and returns it.
async fn event(cluster: &AgentCluster, i: usize, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
    wait_for(what, PATIENCE, || async { events(cluster, i).await.into_iter().find(|e| wanted(e)) }).await
}

fn token(status: &Value) -> u64 {
    status["vigil"]["fencing_token"].as_u64().expect("a primary's token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_a_switchover_and_a_rejoin_are_in_the_event_log_with_their_phases() {
    init_tracing();
    let mut cluster = AgentCluster::start(3, |_| String::new());
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    let old_name = cluster.nodes[old].name.clone();
    cluster.query(old, "CREATE TABLE t (v int)").await.expect("create");
    cluster.replicated_table(old, &all, "t").await;
    let (_, status) = cluster.rest(old, "/patroni").await.expect("status");
    let old_token = token(&status);

    // kill -9 of the primary's agent and its server; the downtime as a client sees it: until a write
    // commits on another member.
    let (killed, killed_wall) = (Instant::now(), SystemTime::now());
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = wait_for("a write on a new primary", PATIENCE, || async {
        for s in &survivors {
            if cluster.query(*s, "INSERT INTO t VALUES (1)").await.is_ok() {
                return Some(*s);
            }
        }
        None
    })
    .await;
    let measured = killed.elapsed();
    let new_name = cluster.nodes[new].name.clone();

    let promoted = event(&cluster, new, "the promotion in the event log", |e| {
        e.kind == EventKind::Promoted && e.member == new_name
    })
    .await;
    let new_token = promoted.fencing_token.expect("the promotion's token");
    assert!(new_token > old_token, "a larger token: {promoted:?} after {old_token}");
    assert_eq!(promoted.reason, "failover");
    assert_eq!(promoted.other_member.as_deref(), Some(old_name.as_str()), "{promoted:?}");
    let phases = promoted.phases.expect("the four phases");
    let downtime = Duration::from_millis(phases.downtime_ms());
    let log = events(&cluster, new).await;
    // The lease ends by its lifeline's death certificate (released), or, should the certificate come too
    // late, by expiry.
    let ended = log
        .iter()
        .find(|e| {
            matches!(e.kind, EventKind::LeaseReleased | EventKind::LeaseExpired)
                && e.fencing_token == Some(old_token)
        })
        .unwrap_or_else(|| panic!("the old lease's end: {log:#?}"));
    assert_eq!(ended.member, old_name);
    let since = ["since_last_renewal_ms", "since_death_ms"].iter().find_map(|t| ended.timings.get(*t));
    let last_renewal = ended.at().expect("time") - Duration::from_millis(*since.expect("since when"));
    // The phases count from the old primary's last renewal, before the kill (or from its agent's death,
    // at the kill); the measured downtime from the kill to the first write this test got through
    // (between PostgreSQL accepting writes and a poll after the agent's own first write).
    let before_kill = killed_wall.duration_since(last_renewal).unwrap_or_default();
    let expected = measured + before_kill;
    eprintln!(
        "phases {phases:?}: {downtime:?} from the last renewal; measured {measured:?} from the kill, \
         {before_kill:?} after the last renewal"
    );
    assert!(phases.detection_ms > 0 && phases.promotion_ms > 0, "{phases:?}");
    let slack = Duration::from_millis(750);
    assert!(
        downtime + slack >= expected && downtime <= expected + slack,
        "phases add up to {downtime:?}, measured {expected:?} from the last renewal"
    );

    let granted = log
        .iter()
        .find(|e| e.kind == EventKind::LeaseGranted && e.fencing_token == Some(new_token))
        .unwrap_or_else(|| panic!("the new grant: {log:#?}"));
    assert_eq!(granted.member, new_name);
    assert!(ended.id < granted.id && granted.id < promoted.id, "in order: {log:#?}");
    assert!(log.windows(2).all(|w| w[0].id < w[1].id), "newest last: {log:#?}");

    // The same through the CLI, and as metrics.
    let api = format!("http://127.0.0.1:{}", cluster.nodes[new].api_port);
    let run = vigil_cli::run(&[("VIGIL_API", &api)], &["events", "--format", "json"]).await;
    assert!(run.success, "{run}");
    let printed: Vec<Event> = serde_json::from_str(&run.stdout).expect("vigil events --format json");
    assert!(printed.iter().any(|e| e.id == promoted.id && e.phases == Some(phases)), "{run}");
    let (_, metrics) = cluster.send(new, reqwest::Method::GET, "/metrics", "").await;
    for phase in ["detection", "lease", "promotion", "first_write"] {
        let count = format!(
            "vigil_failover_phase_seconds_count{{scope=\"it\",name=\"{new_name}\",phase=\"{phase}\"}} 1\n"
        );
        assert!(metrics.contains(&count), "{count} in:\n{metrics}");
    }
    let total = format!("vigil_failovers_total{{scope=\"it\",name=\"{new_name}\",reason=\"failover\"}} 1\n");
    assert!(metrics.contains(&total), "{metrics}");

    // A bad parameter is a 400 naming it.
    let (code, body) = cluster.send(new, reqwest::Method::GET, "/events?limit=0", "").await;
    assert_eq!(code, 400, "{body}");
    let error: Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("limit")), "{body}");
    let (_, body) =
        cluster.send(new, reqwest::Method::GET, &format!("/events?since={}&limit=1", ended.id), "").await;
    let page: Vec<Event> = serde_json::from_str(&body).expect("events");
    assert!(page.len() == 1 && page[0].id > ended.id, "{body}");

    // The old member, restarted, rejoins under the new primary.
    cluster.start_agent(old);
    cluster.streaming_replica(old, PATIENCE).await;
    let rejoined = event(&cluster, new, "the old primary's rejoin", |e| {
        e.kind == EventKind::Rejoined && e.member == old_name && e.id > promoted.id
    })
    .await;
    assert_eq!(rejoined.other_member.as_deref(), Some(new_name.as_str()), "{rejoined:?}");

    // `vigil events -f` prints the events of a switchover as it happens.
    let candidate = survivors.iter().copied().find(|s| *s != new).expect("the other survivor");
    let to = cluster.nodes[candidate].name.clone();
    cluster.streaming_replica(candidate, PATIENCE).await;
    let mut follow = Command::new(vigil_binary())
        .args(["events", "-f", "--format", "json"])
        .env("VIGIL_API", &api)
        .env_remove("VIGIL_CTL_CONFIG_FILE")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vigil events -f");
    let stdout = follow.stdout.take().expect("stdout");
    let (lines, printed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    // The backlog comes first: the switchover's events are those after the last event printed so far.
    let last_seen = events(&cluster, new).await.last().map_or(0, |e| e.id);
    let body = json!({"leader": new_name, "candidate": to}).to_string();
    let (code, text) = cluster.send(new, reqwest::Method::POST, "/switchover", &body).await;
    assert_eq!(code, 200, "{text}");
    let wanted = [
        (EventKind::SwitchoverRequested, new_name.clone()),
        (EventKind::Demoted, new_name.clone()),
        (EventKind::LeaseReleased, new_name.clone()),
        (EventKind::LeaseGranted, to.clone()),
        (EventKind::Promoted, to.clone()),
        (EventKind::SwitchoverDone, to.clone()),
    ];
    let deadline = Instant::now() + PATIENCE;
    let mut followed: Vec<Event> = Vec::new();
    let mut kinds: Vec<(EventKind, String)> = Vec::new();
    while !wanted.iter().all(|w| kinds.contains(w)) {
        let Ok(line) = printed.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        let event: Event = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        if event.id > last_seen {
            kinds.push((event.kind, event.member.clone()));
        }
        followed.push(event);
    }
    let pid = follow.id() as libc::pid_t;
    // SAFETY: kill(2) on the PID of the child this test started and has not yet waited for.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = follow.wait();
    for wanted in &wanted {
        assert!(kinds.contains(wanted), "{wanted:?} printed by vigil events -f: {kinds:?}");
    }
    let done = followed.iter().find(|e| e.kind == EventKind::Promoted && e.member == to).expect("promoted");
    assert_eq!(done.reason, "switchover");
    assert!(done.phases.is_some_and(|p| p.downtime_ms() < 10_000), "{done:?}");

    // A refused switchover says why.
    let body = json!({"leader": to, "candidate": "nobody"}).to_string();
    let (code, text) = cluster.send(candidate, reqwest::Method::POST, "/switchover", &body).await;
    assert!((400..500).contains(&code), "{code} {text}");
    let refused =
        event(&cluster, candidate, "the refused switchover", |e| e.kind == EventKind::SwitchoverRefused)
            .await;
    assert_eq!((refused.member.as_str(), refused.other_member.as_deref()), (to.as_str(), Some("nobody")));
    assert!(refused.reason.contains(&format!("refused ({code})")), "{refused:?} for {text}");

    // `vigil history` draws both failovers under its table.
    let run = vigil_cli::run(&[("VIGIL_API", &api)], &["history"]).await;
    assert!(run.success, "{run}");
    eprintln!("{}", run.stdout);
    assert!(run.stdout.contains(&format!("{old_name} → {new_name}  failover")), "{run}");
    assert!(run.stdout.contains(&format!("{new_name} → {to}  switchover")), "{run}");
}

#[test]
fn a_primary_cut_off_records_its_fence_late_with_its_original_time() {
    init_tracing();
    if let Err(why) = Topology::usable() {
        eprintln!(
            "SKIPPED: network namespaces are unusable here ({why}); this test needs root and `ip netns`"
        );
        return;
    }
    let net = Topology::create(3).expect("network namespaces");
    // Everything that talks to the nodes runs in the client namespace (their addresses exist only there).
    net.block_on_in_client(|| async {
        let placements: Vec<Placement> = (0..3)
            .map(|i| Placement {
                host: net.node_addr(i),
                pg_port: 5432,
                api_port: 8008,
                raft_port: 8300,
                wrapper: Topology::exec_prefix(&net.node_ns(i)),
            })
            .collect();
        let cluster =
            AgentCluster::start_placed(vigil_binary(), &placements, &net.network(), Box::new(str::to_owned));
        let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
        let old_name = cluster.nodes[old].name.clone();
        let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();

        net.set_link(old, false).expect("cut the primary off");
        let new = cluster.primary(PATIENCE).await;
        assert_ne!(new, old);
        let new_name = cluster.nodes[new].name.clone();
        let promoted = event(&cluster, new, "the new primary's promotion", |e| {
            e.kind == EventKind::Promoted && e.member == new_name
        })
        .await;
        // Cut off, the old primary fenced itself at its deadline, but could not write that down yet.
        let log = events(&cluster, others[0]).await;
        assert!(!log.iter().any(|e| e.kind == EventKind::Fenced && e.member == old_name), "{log:#?}");

        net.set_link(old, true).expect("heal");
        let fenced = event(&cluster, new, "the old primary's fence, written once it is back", |e| {
            e.kind == EventKind::Fenced && e.member == old_name
        })
        .await;
        let (fenced_at, promoted_at) = (fenced.at().expect("time"), promoted.at().expect("time"));
        assert!(fenced.id > promoted.id, "written after the promotion: {fenced:?} {promoted:?}");
        assert!(fenced_at < promoted_at, "but with the time it happened, before: {fenced:?} {promoted:?}");
        assert!(fenced.fencing_token < promoted.fencing_token, "{fenced:?} {promoted:?}");
        cluster.streaming_replica(old, PATIENCE).await;
    });
}
