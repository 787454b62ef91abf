//! PgBouncer re-pointed by the agents' `on_start`/`on_role_change` callback, as in `examples/pgbouncer/`:
//! a client writing through PgBouncer every 20 ms goes on writing on the new primary after a kill -9 of
//! the primary's agent and PostgreSQL, with no acknowledged write lost (synchronous mode); the write
//! downtime (last acknowledged write before the kill to the first after it) is printed. The agents'
//! `X-Vigil-Fencing-Token` header names the new primary's token on the primary and on the replica. And
//! the callback alone: a late callback with an older token, a demotion or a missing token leave
//! PgBouncer's `[databases]` as they are.

use std::time::Duration;
use tokio::time::Instant;
use vigil_api::FENCING_TOKEN_HEADER;
use vigil_integration::agents::{free_port, vigil_binary, AgentCluster};
use vigil_integration::pgbouncer::Site;
use vigil_integration::writer::{self, Writer};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);
/// The client's pause after each acknowledged write.
const PACE: Duration = Duration::from_millis(20);

/// Node `i`'s fencing token from `GET /patroni`.
async fn token(cluster: &AgentCluster, i: usize) -> u64 {
    let (_, status) = cluster.rest(i, "/patroni").await.expect("/patroni");
    status["vigil"]["fencing_token"].as_u64().unwrap_or_else(|| panic!("no token in {status}"))
}

/// The `X-Vigil-Fencing-Token` header of node `i`'s answer to `GET path`.
async fn header_token(cluster: &AgentCluster, i: usize, path: &str) -> Option<u64> {
    let node = &cluster.nodes[i];
    let url = format!("http://{}:{}{path}", node.host, node.api_port);
    let client = reqwest::Client::builder().no_proxy().build().expect("http client");
    let response = client.get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
    response.headers().get(FENCING_TOKEN_HEADER)?.to_str().ok()?.parse().ok()
}

/// The `[databases]` target and token the callback last wrote in `file`.
fn databases(file: &std::path::Path) -> String {
    std::fs::read_to_string(file).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_pgbouncer_continue_on_the_new_primary_after_a_kill_9_of_the_primary() {
    init_tracing();
    let site = Site::new();
    let file = site.databases_file();
    let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
    let callbacks = |i: usize| {
        let command = site.callback("127.0.0.1", ports[i].0);
        format!("  callbacks:\n    on_start: \"{command}\"\n    on_role_change: \"{command}\"\n")
    };
    let mut cluster = AgentCluster::start_on_ports(vigil_binary(), &ports, callbacks, "synchronous_mode: on");
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    let (old_port, old_token) = (cluster.nodes[old].pg_port, token(&cluster, old).await);
    // The first primary's on_start callback pointed PgBouncer at it, under its token.
    wait_for("the first primary's callback to write PgBouncer's [databases]", PATIENCE, || async {
        let text = databases(&file);
        (text.contains(&format!("vigil_fencing_token = {old_token}\n"))
            && text.contains(&format!("port={old_port}\n")))
        .then_some(())
    })
    .await;
    cluster.query(old, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    // Without it, "no acknowledged write is lost" would not hold: a commit the old primary acknowledged
    // may never have reached the new one.
    cluster.sync_state(old, "sync", PATIENCE).await;
    let bouncer = site.start().await;

    let writer = Writer::paced(PACE, &format!("host=127.0.0.1 port={}", bouncer.port));
    writer.more(50, PATIENCE).await;
    assert!(writer.acks().iter().all(|a| a.server_port == old_port), "all on the first primary");

    let killed_at = Instant::now();
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);

    let new = cluster.primary(PATIENCE).await;
    assert_ne!(new, old, "a survivor took over");
    let new_port = cluster.nodes[new].pg_port;
    let what = "writes through PgBouncer to succeed on the new primary";
    let resumed = writer.first(what, PATIENCE, |a| a.server_port == new_port).await;
    writer.more(20, PATIENCE).await;
    let (acks, failures) = writer.stop().await;
    // The old primary may acknowledge a write in flight at the kill (its backend outlives the postmaster
    // for a moment): the downtime runs from its last acknowledgement.
    let last_old = acks.iter().filter(|a| a.at < resumed).map(|a| a.at).max().expect("writes before");
    let downtime = resumed - last_old;
    eprintln!(
        "write downtime through PgBouncer: {:.3} s (the old primary's last acknowledged write to the new \
         primary's first; writes resumed {:.3} s after the kill); {} rows acknowledged, {} failed attempts",
        downtime.as_secs_f64(),
        (resumed - killed_at).as_secs_f64(),
        acks.len(),
        failures.len()
    );

    // PgBouncer names the new primary, under its larger token.
    let new_token = token(&cluster, new).await;
    assert!(new_token > old_token, "the new lease's token {new_token} after {old_token}");
    let text = databases(&file);
    assert!(
        text.contains(&format!("vigil_fencing_token = {new_token}\n"))
            && text.contains(&format!("port={new_port}\n")),
        "PgBouncer's [databases] after the failover: {text}"
    );
    for ack in acks.iter().filter(|a| a.at >= resumed) {
        assert_eq!(ack.server_port, new_port, "row {} after the failover committed elsewhere", ack.id);
    }
    let present = writer::rows_on(&cluster, new).await;
    let lost: Vec<i64> = acks.iter().filter(|a| !present.contains(&a.id)).map(|a| a.id).collect();
    assert!(lost.is_empty(), "acknowledged rows missing on the new primary: {lost:?}");

    // Every member's health checks name the new primary's token: its own /primary, the replica's /replica.
    let replica = all.into_iter().find(|i| *i != old && *i != new).expect("the other survivor");
    cluster.streaming_replica(replica, PATIENCE).await;
    assert_eq!(header_token(&cluster, new, "/primary").await, Some(new_token), "the primary's /primary");
    wait_for("the replica's /replica to name the new primary's token", PATIENCE, || async {
        (header_token(&cluster, replica, "/replica").await == Some(new_token)).then_some(())
    })
    .await;
}

/// Runs the example callback as `on_role_change <role>` with `token`, naming `host`, PgBouncer's admin
/// console on a port where nothing listens; its exit status and stderr.
fn run_callback(site: &Site, role: &str, host: &str, token: &str) -> (Option<i32>, String) {
    let out = std::process::Command::new("sh")
        .arg(vigil_integration::example("pgbouncer/vigil-pgbouncer.sh"))
        .args(["on_role_change", role, "it"])
        .env("PRIMARY_HOST", host)
        .env("PRIMARY_PORT", "5432")
        .env("PGBOUNCER_DATABASES", site.databases_file())
        .env(
            "PGBOUNCER_ADMIN",
            format!("host=127.0.0.1 port={} dbname=pgbouncer connect_timeout=2", free_port()),
        )
        .env("VIGIL_FENCING_TOKEN", token)
        .output()
        .expect("run the callback");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_callback_keeps_pgbouncer_on_the_newest_primary_whatever_the_order_of_the_callbacks() {
    let site = Site::new();
    let file = site.databases_file();
    // PgBouncer is not running: the file is written, and the callback says PgBouncer did not reload.
    let (code, stderr) = run_callback(&site, "primary", "10.0.0.2", "12");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("did not take RELOAD"), "{stderr}");
    assert!(databases(&file).contains("* = host=10.0.0.2 port=5432\n"), "{}", databases(&file));

    // A deposed primary's late callback, with an older token, changes nothing.
    let (code, stderr) = run_callback(&site, "primary", "10.0.0.1", "9");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("already names a newer primary (token 12 > 9)"), "{stderr}");
    assert!(databases(&file).contains("host=10.0.0.2 "), "{}", databases(&file));

    // Demotions, replicas and a missing token change nothing either; a newer primary takes over.
    assert_eq!(run_callback(&site, "demoted", "10.0.0.2", "").0, Some(0));
    assert_eq!(run_callback(&site, "replica", "10.0.0.3", "").0, Some(0));
    let (code, stderr) = run_callback(&site, "primary", "10.0.0.3", "");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no fencing token"), "{stderr}");
    assert!(databases(&file).contains("host=10.0.0.2 "), "{}", databases(&file));
    run_callback(&site, "primary", "10.0.0.3", "15");
    let text = databases(&file);
    assert!(text.contains("vigil_fencing_token = 15\n") && text.contains("host=10.0.0.3 "), "{text}");
}
