//! The agents push the write path to HAProxy's Runtime API (`haproxy:` in their configuration): with
//! health checks far too slow to follow a switchover (`inter 5s fall 2`), HAProxy's read-write backend
//! still flips to the new primary within a second or so, and every write through it reaches the lease
//! holder alone (the fencing tokens of the acknowledged writes never go back, the old primary takes none
//! once the new one took one) and survives.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use vigil_integration::agents::{free_port, AgentCluster};
use vigil_integration::haproxy::{haproxy_binary, sample_up, HaProxy, Tuning, PRIMARY_BACKEND};
use vigil_integration::managed::ManagedCluster;
use vigil_integration::writer::{self, Writer};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);
/// Health checks this slow mark the old primary down no sooner than 5 s after its lease is gone (two
/// failed checks 5 s apart): any flip faster than that is the push's.
const SLOW_CHECKS: &str = "inter 5s fall 2 rise 1 on-marked-down shutdown-sessions";
/// How soon after the switchover request the old primary must have left the backend and the candidate be
/// up alone: the checks alone cannot mark the old primary down sooner than two failed checks 5 s apart
/// after its lease release, which comes after the request; the push does it as it stops.
const FLIPPED_WITHIN: Duration = Duration::from_millis(4900);

/// The shipped example's agent snippet, pushing to `127.0.0.1:<port>` instead of its port 9999.
fn example_snippet(port: u16) -> String {
    let snippet = include_str!("../../examples/haproxy-push/agent-snippet.yml");
    assert!(snippet.contains("ipv4@127.0.0.1:9999"), "the example pushes to port 9999");
    snippet.replace("ipv4@127.0.0.1:9999", &format!("ipv4@127.0.0.1:{port}"))
}

#[test]
fn the_example_haproxy_config_opens_the_runtime_api_the_agent_snippet_names() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/haproxy-push/haproxy.cfg");
    let config = std::fs::read_to_string(&file).expect("examples/haproxy-push/haproxy.cfg");
    assert!(config.contains("stats socket ipv4@127.0.0.1:9999 level admin"), "{config}");
    let check = std::process::Command::new(haproxy_binary()).arg("-c").arg("-f").arg(&file).output();
    let check = check.expect("haproxy -c");
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_switchover_is_pushed_to_haproxy_faster_than_its_checks_and_writes_reach_the_holder_alone() {
    init_tracing();
    let push_port = free_port();
    let cluster = AgentCluster::start_checked(3, |_| example_snippet(push_port)).await;
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.query(old, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    let tuning = Tuning { default_server: SLOW_CHECKS.into(), runtime_api_port: Some(push_port) };
    let haproxy = Arc::new(
        HaProxy::start_tuned(cluster.dir(), &cluster.members(), free_port(), free_port(), &tuning).await,
    );
    let name = |i: usize| cluster.nodes[i].name.clone();
    let candidate = all.into_iter().find(|i| *i != old).expect("a replica");
    let (old_port, new_port) = (cluster.nodes[old].pg_port, cluster.nodes[candidate].pg_port);
    // The agents try again every second until HAProxy answers: the replicas mark themselves down.
    haproxy.wait_for_up(PRIMARY_BACKEND, &[&name(old)], PATIENCE).await;

    let writer = Writer::on_port(haproxy.rw_port);
    writer.more(100, PATIENCE).await;
    assert!(writer.acks().iter().all(|a| a.server_port == old_port), "all on the old primary");

    let sampling = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_up(haproxy.clone(), sampling.clone(), PATIENCE));
    let asked_at = Instant::now();
    let body = serde_json::json!({"leader": name(old), "candidate": name(candidate)}).to_string();
    let (code, text) = cluster.send(old, reqwest::Method::POST, "/switchover", &body).await;
    assert_eq!(code, 200, "POST /switchover: {text}");
    let resumed = writer.first("a write on the candidate", PATIENCE, |a| a.server_port == new_port).await;
    writer.more(20, PATIENCE).await;
    sampling.store(true, Ordering::Relaxed);
    let (acks, failures) = writer.stop().await;
    let changes = sampler.await.expect("sampler task");

    let since = |t: Instant| format!("+{:.3}s", t.saturating_duration_since(asked_at).as_secs_f64());
    let timeline: Vec<String> = changes.iter().map(|(t, up)| format!("{} UP {up:?}", since(*t))).collect();
    let last_old = acks.iter().filter(|a| a.server_port == old_port).map(|a| a.at).max().expect("old acks");
    eprintln!(
        "switchover {} -> {} through HAProxy ({SLOW_CHECKS}): last write on the old primary {}, first on the \
         candidate {} (window {:?}), {} acknowledged, {} failed attempts; {PRIMARY_BACKEND}: {}",
        name(old),
        name(candidate),
        since(last_old),
        since(resumed),
        resumed - last_old,
        acks.len(),
        failures.len(),
        timeline.join(", ")
    );

    // The backend flipped to the candidate alone, far sooner than its health checks could have.
    let flipped = changes.iter().find(|(_, up)| *up == [name(candidate)]).map(|(t, _)| *t);
    let flipped = flipped.unwrap_or_else(|| panic!("never the candidate alone: {timeline:?}"));
    assert!(
        flipped - asked_at < FLIPPED_WITHIN,
        "flipped {} after the request: {timeline:?}",
        since(flipped)
    );
    let log = haproxy.log();
    assert!(log.contains(&format!("{PRIMARY_BACKEND}/{} is going DOWN for maintenance", name(old))), "{log}");
    // The old primary left the write path before its server stopped: a connection the stopping server
    // refused would have HAProxy wait a second before trying it again.
    let old_log = cluster.log(old);
    let handover = &old_log[old_log.find("switchover: handing over").expect("the handover decided")..];
    let left = handover.find("state=\"maint\"").unwrap_or_else(|| panic!("no maint pushed: {handover}"));
    let stopped = handover.find("action=\"stop_fast\"").unwrap_or_else(|| panic!("no stop: {handover}"));
    assert!(left < stopped, "maint pushed after the server stopped: {handover}");
    assert!(log.contains(&format!("{PRIMARY_BACKEND}/{} is UP, changed from CLI", name(candidate))), "{log}");
    // Never two servers up, never a replica.
    for (t, up) in &changes {
        assert!(up.len() <= 1, "{} UP {up:?}", since(*t));
    }

    // Writes reached the lease holder alone: once the candidate took one, the old primary took none, and
    // the fencing tokens, in the order the writes were acknowledged, never go back.
    let mut by_time = acks.clone();
    by_time.sort_by_key(|a| a.at);
    let first_new = by_time.iter().position(|a| a.server_port == new_port).expect("a write on the candidate");
    assert!(
        by_time[first_new..].iter().all(|a| a.server_port == new_port),
        "a write on the old primary after the candidate's first"
    );
    assert!(by_time[..first_new].iter().all(|a| a.server_port == old_port), "a write on a replica");
    let tokens: Vec<u64> = by_time.iter().map(|a| a.token.expect("a fencing token")).collect();
    assert!(tokens.windows(2).all(|w| w[0] <= w[1]), "tokens went back: {tokens:?}");
    assert!(tokens[first_new] > tokens[first_new - 1], "the candidate writes under a newer token");

    // No acknowledged write lost.
    let present = writer::rows_on(&cluster, candidate).await;
    let lost: Vec<i64> = acks.iter().filter(|a| !present.contains(&a.id)).map(|a| a.id).collect();
    assert!(lost.is_empty(), "acknowledged rows missing on the new primary: {lost:?}");

    // The old primary goes back under its health check once its hold in maintenance ends (3 s), down.
    wait_for("the old primary back under its health check", PATIENCE, || async {
        let servers = haproxy.servers(Some(PRIMARY_BACKEND)).await.ok()?;
        servers.iter().any(|s| s.name == name(old) && s.admin_state == 0 && s.op_state == 0).then_some(())
    })
    .await;
    assert_eq!(haproxy.up_servers(PRIMARY_BACKEND).await.expect("servers"), [name(candidate)]);
}
