//! "Why no failover?" with real agents and PostgreSQL 15: when the primary dies and no member may take
//! over, `GET /cluster` and `vigil list` say why, one line per member.

use serde_json::Value;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, vigil_cli, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// How long after the kill of the primary the survivors may take to say why they do not take over: the
/// lease ttl (3 s) plus a few cycles.
const EXPLAINED_WITHIN: Duration = Duration::from_secs(30);

/// node2 is tagged `nofailover`; the other replica's WAL receiver is stopped (SIGSTOP) while the primary
/// writes ~40 MB, so that it stays tens of MB behind the position the primary published, beyond
/// `maximum_lag_on_failover` (1 MB). Then the primary's agent and server are killed: nobody may take
/// over, and each survivor says why, in `/cluster` (`why`) and under `vigil list`'s table. Three nodes,
/// so that the survivors keep a store quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_primary_each_member_says_why_it_does_not_take_over() {
    init_tracing();
    let nofailover = |i| if i == 1 { "tags: {nofailover: true}\n".to_owned() } else { String::new() };
    let mut cluster = AgentCluster::start_with(3, nofailover, "maximum_lag_on_failover: 1048576");
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    assert_ne!(primary, 1, "node2 has nofailover: it does not bootstrap");
    let laggard = if primary == 0 { 2 } else { 0 };
    let (tagged, lagging) = (cluster.nodes[1].name.clone(), cluster.nodes[laggard].name.clone());

    let (_, listed) = cluster.rest(1, "/cluster").await.expect("/cluster");
    assert!(members(&listed).all(|m| m.get("why").is_none()), "a primary: nobody says why not: {listed}");

    cluster.query(primary, "CREATE TABLE t (v int, pad text)").await.expect("create");
    let receiver = cluster.wal_receiver_pid(laggard, PATIENCE).await;
    assert!(cluster.signal_pid(receiver, libc::SIGSTOP), "SIGSTOP the WAL receiver {receiver}");
    // ~40 MB.
    let sql = "INSERT INTO t SELECT g, repeat('x', 1000) FROM generate_series(1, 40000) g";
    cluster.write_published(primary, sql).await;
    cluster.signal_agent(primary, libc::SIGKILL);
    cluster.kill_postgres(primary);
    // Resumed only now: it drains what sat in its socket (a few MB) and finds the primary gone.
    assert!(cluster.signal_pid(receiver, libc::SIGCONT), "SIGCONT the WAL receiver {receiver}");

    let cluster_json =
        wait_for("both survivors to say why they do not take over", EXPLAINED_WITHIN, || async {
            let (_, json) = cluster.rest(1, "/cluster").await?;
            let why =
                |name: &str| members(&json).find(|m| m["name"] == name)?["why"].as_str().map(str::to_owned);
            (why(&tagged).is_some() && why(&lagging).is_some()).then_some(json)
        })
        .await;
    assert!(members(&cluster_json).all(|m| m["role"] != "leader"), "no primary: {cluster_json}");
    let why = |name: &str| {
        let member = members(&cluster_json).find(|m| m["name"] == name).expect("listed");
        member["why"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(why(&tagged), "nofailover tag", "{cluster_json}");
    let lag = why(&lagging);
    assert!(
        lag.starts_with("lagging by ") && lag.ends_with(" MB (maximum_lag_on_failover 1 MB)"),
        "{lagging}: {lag}"
    );
    eprintln!("{tagged}: {}\n{lagging}: {lag}", why(&tagged));

    let api = format!("http://127.0.0.1:{}", cluster.nodes[1].api_port);
    let list = vigil_cli::run(&[("VIGIL_API", &api)], &["list"]).await;
    assert!(list.success, "{list}");
    assert!(list.stdout.contains(" No primary. Why no failover:\n"), "{list}");
    assert!(list.stdout.contains(&format!(" {tagged}: nofailover tag\n")), "{list}");
    assert!(list.stdout.contains(&format!(" {lagging}: lagging by ")), "{list}");
    let dead = &cluster.nodes[primary].name;
    assert!(!list.stdout.contains(&format!(" {dead}: primary")), "the dead primary's stale record: {list}");
    eprintln!("{}", list.stdout);
    let json = vigil_cli::run(&[("VIGIL_API", &api)], &["list", "-f", "json"]).await;
    let rows: Value = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {json}"));
    let row = |name: &str| rows.as_array().into_iter().flatten().find(|r| r["Member"] == name).cloned();
    assert_eq!(row(&tagged).map(|r| r["Why"].clone()), Some("nofailover tag".into()), "{rows}");
    for survivor in [1, laggard] {
        let (code, _) = cluster.rest(survivor, "/primary").await.expect("answers");
        assert_eq!(code, 503, "{} is no primary", cluster.nodes[survivor].name);
    }
}

/// The members of a `GET /cluster` answer.
fn members(cluster: &Value) -> impl Iterator<Item = &Value> {
    cluster["members"].as_array().into_iter().flatten()
}
