//! A virtual IP that follows the primary, in network namespaces (a bridge, a namespace per node, a client
//! namespace): keepalived in each node namespace, configured as `examples/keepalived/`, checks the local
//! agent's `GET /primary`. The VIP answers from the primary's namespace; after a kill -9 of the primary's
//! agent and PostgreSQL it moves to the new primary's namespace; it is never held by two namespaces at once
//! (every namespace's addresses polled every 20 ms throughout); and a client in the client namespace,
//! writing over the VIP every 20 ms and reading `X-Vigil-Fencing-Token` from `GET /primary` over the VIP,
//! never sees the fencing token go backwards nor loses an acknowledged write (synchronous mode). The write
//! downtime through the VIP is printed. Skipped, saying so, only where namespaces cannot be created.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use vigil_api::FENCING_TOKEN_HEADER;
use vigil_integration::agents::{vigil_binary, AgentCluster, Placement};
use vigil_integration::keepalived::{holders, Keepalived};
use vigil_integration::netns::Topology;
use vigil_integration::writer::{self, Writer};
use vigil_integration::{init_tracing, wait_for};

/// The virtual IP, on the bridge's subnet.
const VIP: &str = "10.77.0.200";
const PATIENCE: Duration = Duration::from_secs(60);
/// Ports inside every node's namespace.
const PG_PORT: u16 = 5432;
const API_PORT: u16 = 8008;
const RAFT_PORT: u16 = 8300;
/// The client's pause after each acknowledged write, and between two polls.
const PACE: Duration = Duration::from_millis(20);
/// The longest a watcher runs.
const WATCH_LIMIT: Duration = Duration::from_secs(300);

/// A node's configuration with PostgreSQL and the REST API listening on every address (so that they
/// answer on the VIP too).
fn on_every_address(yaml: &str) -> String {
    let lines: Vec<String> = yaml
        .lines()
        .map(|line| match line.strip_prefix("  listen: ").and_then(|addr| addr.rsplit_once(':')) {
            Some((_, port)) => format!("  listen: 0.0.0.0:{port}"),
            None => line.to_owned(),
        })
        .collect();
    lines.join("\n") + "\n"
}

/// A node's configuration with synchronous mode on.
fn synchronous(yaml: &str) -> String {
    yaml.replacen("bootstrap:\n  dcs:\n", "bootstrap:\n  dcs:\n    synchronous_mode: on\n", 1)
}

/// `GET http://VIP:API_PORT<path>` from the client namespace: the status code, the fencing token header
/// and the JSON body; `None` when nobody answered within 300 ms.
async fn over_vip(http: &reqwest::Client, path: &str) -> Option<(u16, Option<u64>, serde_json::Value)> {
    let url = format!("http://{VIP}:{API_PORT}{path}");
    let response = http.get(url).timeout(Duration::from_millis(300)).send().await.ok()?;
    let code = response.status().as_u16();
    let token = response.headers().get(FENCING_TOKEN_HEADER).and_then(|v| v.to_str().ok()?.parse().ok());
    Some((code, token, response.json().await.unwrap_or_default()))
}

/// Node `i`'s fencing token from `GET /patroni`.
async fn token(cluster: &AgentCluster, i: usize) -> u64 {
    let (_, status) = cluster.rest(i, "/patroni").await.expect("/patroni");
    status["vigil"]["fencing_token"].as_u64().unwrap_or_else(|| panic!("no token in {status}"))
}

/// Which of `namespaces` held the VIP, at each change, until `stop` (at most [`WATCH_LIMIT`]).
fn watch_holders(namespaces: &[String], stop: &AtomicBool) -> Vec<(Instant, Vec<usize>)> {
    let mut changes: Vec<(Instant, Vec<usize>)> = Vec::new();
    let started = Instant::now();
    for _ in 0..WATCH_LIMIT.as_millis() / PACE.as_millis() {
        if stop.load(Ordering::Relaxed) || started.elapsed() >= WATCH_LIMIT {
            break;
        }
        let now = holders(namespaces, VIP);
        if changes.last().is_none_or(|(_, last)| *last != now) {
            changes.push((Instant::now(), now));
        }
        std::thread::sleep(PACE);
    }
    changes
}

/// Every fencing token `GET /primary` over the VIP answered with, in order, until `stop` (at most
/// [`WATCH_LIMIT`]).
async fn watch_tokens(http: reqwest::Client, stop: Arc<AtomicBool>) -> Vec<(Instant, u16, u64)> {
    let mut seen = Vec::new();
    let started = Instant::now();
    for _ in 0..WATCH_LIMIT.as_millis() / PACE.as_millis() {
        if stop.load(Ordering::Relaxed) || started.elapsed() >= WATCH_LIMIT {
            break;
        }
        if let Some((code, Some(token), _)) = over_vip(&http, "/primary").await {
            seen.push((Instant::now(), code, token));
        }
        tokio::time::sleep(PACE).await;
    }
    seen
}

/// Sets its flag when dropped: the watchers stop also when the test fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Three node namespaces and a client namespace; `None` where namespaces cannot be created (the test is
/// then skipped, saying so).
fn topology() -> Option<Topology> {
    if let Err(why) = Topology::usable() {
        eprintln!(
            "SKIPPED: network namespaces are unusable here ({why}); this test needs root and `ip netns`"
        );
        return None;
    }
    init_tracing();
    Some(Topology::create(3).expect("namespaces"))
}

#[test]
fn a_keepalived_vip_follows_the_primary_and_is_never_held_twice() {
    let Some(net) = topology() else { return };
    net.block_on_in_client(|| keepalived_vip(&net));
}

async fn keepalived_vip(net: &Topology) {
    let placements = Placement::in_namespaces(net, PG_PORT, API_PORT, RAFT_PORT);
    let edit = Box::new(|yaml: &str| synchronous(&on_every_address(yaml)));
    let mut cluster = AgentCluster::start_placed(vigil_binary(), &placements, &net.network(), edit);
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.query(old, "CREATE TABLE t (id bigint PRIMARY KEY)").await.expect("create table");
    cluster.sync_state(old, "sync", PATIENCE).await;
    let old_token = token(&cluster, old).await;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let name = |i: usize| names[i].clone();

    let namespaces: Vec<String> = all.iter().map(|i| net.node_ns(*i)).collect();
    let keepalived = Keepalived::start(net, VIP, cluster.dir());
    wait_for("the VIP on the primary's namespace alone", PATIENCE, || async {
        (holders(&namespaces, VIP) == [old]).then_some(())
    })
    .await;
    let http = reqwest::Client::builder().no_proxy().build().expect("http client");
    let (code, header, status) = wait_for("the primary's REST API over the VIP", PATIENCE, || async {
        over_vip(&http, "/patroni").await
    })
    .await;
    assert_eq!((code, status["patroni"]["name"].as_str()), (200, Some(name(old).as_str())), "over the VIP");
    assert_eq!(header, Some(old_token), "the primary's token over the VIP");

    // Watch the VIP's holders and the token over the VIP while a client writes over the VIP.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_panic = StopOnDrop(stop.clone());
    let holding = {
        let (namespaces, stop) = (namespaces.clone(), stop.clone());
        tokio::task::spawn_blocking(move || watch_holders(&namespaces, &stop))
    };
    let tokens = tokio::spawn(watch_tokens(http.clone(), stop.clone()));
    let writer = Writer::paced(PACE, &format!("host={VIP} port={PG_PORT}"));
    writer.more(50, PATIENCE).await;
    assert!(writer.acks().iter().all(|a| a.token == Some(old_token)), "all under the first primary's token");

    let killed_at = Instant::now();
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);

    let new = cluster.primary(PATIENCE).await;
    assert_ne!(new, old, "a survivor took over");
    let new_token = token(&cluster, new).await;
    assert!(new_token > old_token, "the new lease's token {new_token} after {old_token}");
    wait_for("the VIP on the new primary's namespace alone", PATIENCE, || async {
        (holders(&namespaces, VIP) == [new]).then_some(())
    })
    .await;
    let what = "writes over the VIP to succeed on the new primary";
    let resumed = writer.first(what, PATIENCE, |a| a.token == Some(new_token)).await;
    writer.more(20, PATIENCE).await;
    let (_, _, status) = over_vip(&http, "/patroni").await.expect("the new primary's REST API over the VIP");
    assert_eq!(
        status["patroni"]["name"].as_str(),
        Some(name(new).as_str()),
        "the VIP answers from the new primary"
    );
    let (acks, failures) = writer.stop().await;
    stop.store(true, Ordering::Relaxed);
    let holding = holding.await.expect("the holders' watcher");
    let tokens = tokens.await.expect("the tokens' watcher");
    drop(keepalived);

    let timeline: Vec<String> = holding
        .iter()
        .map(|(at, held)| {
            let at = at.saturating_duration_since(killed_at).as_secs_f64()
                - killed_at.saturating_duration_since(*at).as_secs_f64();
            format!("kill{at:+.3}s: {:?}", held.iter().map(|i| name(*i)).collect::<Vec<_>>())
        })
        .collect();
    eprintln!("VIP holders: {}", timeline.join(", "));
    assert!(holding.iter().all(|(_, held)| held.len() <= 1), "the VIP held twice: {timeline:?}");
    assert_eq!(holding.last().map(|(_, held)| held.clone()), Some(vec![new]), "{timeline:?}");
    let backwards: Vec<_> = tokens.windows(2).filter(|w| w[1].2 < w[0].2).collect();
    assert!(backwards.is_empty(), "the token over the VIP went backwards: {backwards:?}");
    assert_eq!(
        tokens.last().map(|t| (t.1, t.2)),
        Some((200, new_token)),
        "the new primary's /primary over the VIP"
    );
    let written: Vec<u64> = acks.iter().filter_map(|a| a.token).collect();
    assert!(written.windows(2).all(|w| w[0] <= w[1]), "a write under an older token after a newer one");
    let present = writer::rows_on(&cluster, new).await;
    let lost: Vec<i64> = acks.iter().filter(|a| !present.contains(&a.id)).map(|a| a.id).collect();
    assert!(lost.is_empty(), "acknowledged rows missing on the new primary: {lost:?}");

    let last_old =
        acks.iter().filter(|a| a.token == Some(old_token)).map(|a| a.at).max().expect("writes before");
    eprintln!(
        "write downtime through the keepalived VIP: {:.3} s (the old primary's last acknowledged write to the new \
         primary's first; writes resumed {:.3} s after the kill); {} rows acknowledged, {} failed attempts",
        (resumed - last_old).as_secs_f64(),
        (resumed - killed_at).as_secs_f64(),
        acks.len(),
        failures.len()
    );
}

#[test]
fn a_callback_vip_moves_with_a_switchover_and_to_the_new_primary_after_a_kill_9() {
    let Some(net) = topology() else { return };
    net.block_on_in_client(|| callback_vip(&net));
}

/// `examples/vip/vigil-vip.sh` as every agent's `on_start`, `on_stop` and `on_role_change` (the agents, and
/// so their callbacks, run in their node's namespace): the VIP on the first primary, moved by a switchover
/// without being held twice, and answering from the new primary after a kill -9 of the primary (whose
/// namespace keeps the address: no callback ran there), the new primary's gratuitous ARP having moved the
/// client's traffic.
async fn callback_vip(net: &Topology) {
    let script = vigil_integration::example("vip/vigil-vip.sh");
    let command = format!("VIP={VIP}/24 VIP_DEV=eth0 sh {}", script.display());
    let callbacks = format!(
        "  callbacks:\n    on_start: \"{command}\"\n    on_stop: \"{command}\"\n    on_role_change: \"{command}\"\n"
    );
    let edit = Box::new(move |yaml: &str| on_every_address(yaml) + &callbacks);
    let placements = Placement::in_namespaces(net, PG_PORT, API_PORT, RAFT_PORT);
    let mut cluster = AgentCluster::start_placed(vigil_binary(), &placements, &net.network(), edit);
    let all = [0, 1, 2];
    let first = cluster.settled(&all, PATIENCE).await;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let namespaces: Vec<String> = all.iter().map(|i| net.node_ns(*i)).collect();
    let http = reqwest::Client::builder().no_proxy().build().expect("http client");
    let answers_from = |i: usize| {
        let (http, name) = (http.clone(), names[i].clone());
        move || {
            let (http, name) = (http.clone(), name.clone());
            async move {
                let (code, _, status) = over_vip(&http, "/patroni").await?;
                (code == 200 && status["patroni"]["name"] == name.as_str()).then_some(())
            }
        }
    };
    wait_for("the first primary's on_start to add the VIP", PATIENCE, || async {
        (holders(&namespaces, VIP) == [first]).then_some(())
    })
    .await;
    wait_for("the VIP to answer from the first primary", PATIENCE, answers_from(first)).await;

    // A switchover: the old primary's on_role_change (demoted) removes the address, the candidate's
    // (primary) adds it; never both at once.
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_panic = StopOnDrop(stop.clone());
    let holding = {
        let (namespaces, stop) = (namespaces.clone(), stop.clone());
        tokio::task::spawn_blocking(move || watch_holders(&namespaces, &stop))
    };
    let candidate = (first + 1) % all.len();
    let body = serde_json::json!({"leader": names[first], "candidate": names[candidate]}).to_string();
    // A replica that just caught up may not have published its position yet: refused as lagging until it
    // has.
    wait_for("the switchover to be accepted", PATIENCE, || async {
        match cluster.send(first, reqwest::Method::POST, "/switchover", &body).await {
            (200, _) => Some(()),
            (412, text) if text.contains("lagging by") => None,
            (code, text) => panic!("switchover: {code} {text}"),
        }
    })
    .await;
    wait_for("the VIP on the candidate's namespace alone", PATIENCE, || async {
        (holders(&namespaces, VIP) == [candidate]).then_some(())
    })
    .await;
    wait_for("the VIP to answer from the candidate", PATIENCE, answers_from(candidate)).await;
    stop.store(true, Ordering::Relaxed);
    let holding = holding.await.expect("the holders' watcher");
    let seen: Vec<Vec<usize>> = holding.into_iter().map(|(_, held)| held).collect();
    assert!(seen.iter().all(|held| held.len() <= 1), "the VIP held twice during the switchover: {seen:?}");

    // kill -9 of the primary's agent and PostgreSQL: no callback runs there, the new primary's adds the
    // address and announces it.
    cluster.signal_agent(candidate, libc::SIGKILL);
    cluster.kill_postgres(candidate);
    let newest = cluster.primary(PATIENCE).await;
    assert_ne!(newest, candidate, "a survivor took over");
    wait_for("the VIP to answer from the new primary", PATIENCE, answers_from(newest)).await;
    let held = holders(&namespaces, VIP);
    assert!(held.contains(&newest), "the new primary holds the VIP: {held:?}");
    eprintln!(
        "after the kill -9 the VIP is held by {:?} (the killed agent's namespace keeps it: no callback ran there)",
        held.iter().map(|i| names[*i].as_str()).collect::<Vec<_>>()
    );
}
