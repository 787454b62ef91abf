//! A Patroni cluster moves to Vigil with PostgreSQL kept running (README, "Moving from Patroni"): real
//! Patroni 3.0.2 and etcd 3.4 from Debian 12 (`apt-get install patroni etcd-server`), three members of
//! PostgreSQL 15 in synchronous mode. The cluster is paused (`PATCH /config {"pause": true}`, as
//! `patronictl pause` does), the three Patroni processes are stopped with SIGTERM, and three Vigil agents
//! start on the same data directories and ports, each from its member's Patroni file with the DCS section
//! replaced by `raft:`, `pause: true` added to `bootstrap.dcs` and Patroni's timings taken out. Throughout,
//! one client keeps writing: the primary's postmaster is never restarted and takes every write, under the
//! lease's fencing token and still waiting for a synchronous standby. After `vigil resume` the old primary
//! keeps the lease, the replicas stream from it through Patroni's slots, Vigil publishes its synchronous
//! standby, and a kill -9 of the primary (agent and postmaster) fails over to a replica holding every
//! acknowledged write, those acknowledged under Patroni included.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vigil_integration::agents::vigil_binary;
use vigil_integration::managed::{query, rest, send, ClusterPorts, ManagedCluster, Member};
use vigil_integration::migration::{vigil_config, VigilMembers};
use vigil_integration::patroni::{PatroniCluster, PatroniTiming};
use vigil_integration::writer::Writer;
use vigil_integration::{init_tracing, wait_for};

/// Where Debian's `patroni` package (3.0.2) puts `patroni`.
const PATRONI_BIN: &str = "/usr/bin";
/// Debian's `etcd-server` (3.4).
const ETCD: &str = "/usr/bin/etcd";
/// The bound on each wait for the cluster to settle.
const PATIENCE: Duration = Duration::from_secs(90);
/// A REST call's bound.
const CALL: Duration = Duration::from_secs(2);

/// The members' postmaster PIDs and `pg_postmaster_start_time()`s: equal before and after means no
/// PostgreSQL server was restarted.
async fn postmasters(cluster: &PatroniCluster, members: &[Member]) -> Vec<(libc::pid_t, String)> {
    let mut found = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let pid = cluster.postmaster_pid(i).unwrap_or_else(|| panic!("{}'s postmaster.pid", m.name));
        assert!(alive(pid), "{}'s postmaster {pid} runs", m.name);
        let started = query(m.pg_port, "SELECT pg_postmaster_start_time()").await.expect("start time");
        found.push((pid, started[0].clone()));
    }
    found
}

fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits until exactly one member answers 200 on `/primary` and every other one 200 on `/replica`, with
/// the primary's PostgreSQL showing them all streaming; returns the primary's index.
async fn settled(members: &[Member], who: &str) -> usize {
    wait_for(&format!("{who}: one primary and every other member streaming"), PATIENCE, || async {
        let mut primaries = Vec::new();
        for (i, m) in members.iter().enumerate() {
            match rest(m.api_port, "/primary", CALL).await?.0 {
                200 => primaries.push(i),
                _ => (rest(m.api_port, "/replica", CALL).await?.0 == 200).then_some(())?,
            }
        }
        let [primary] = primaries[..] else { return None };
        let sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'";
        let streaming = query(members[primary].pg_port, sql).await.ok()?;
        (streaming == [(members.len() - 1).to_string()]).then_some(primary)
    })
    .await
}

/// Runs `vigil <args>` (the control tool), which must succeed; its output.
fn vigil(args: &[&str]) -> String {
    let out = Command::new(vigil_binary()).args(args).output().expect("run vigil");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vigil {args:?}: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patroni_cluster_moves_to_vigil_with_postgresql_running() {
    init_tracing();
    assert!(
        Path::new(PATRONI_BIN).join("patroni").is_file() && Path::new(ETCD).is_file(),
        "Patroni and etcd are missing: apt-get install -y patroni etcd-server (scripts/test.sh does)"
    );
    let ports = ClusterPorts::pick(3);
    let members = ports.members.clone();
    let (bin, etcd) = (Path::new(PATRONI_BIN), Path::new(ETCD));
    let mut patroni =
        PatroniCluster::start_with(bin, etcd, &ports, PatroniTiming::FASTEST, "synchronous_mode: true")
            .expect("start etcd and Patroni");
    patroni.started(PATIENCE).await.expect("etcd and Patroni answer");

    // 1. Patroni runs the cluster; a client writes to the primary through a read-write multi-host string.
    let t0 = Instant::now();
    let primary = settled(&members, "Patroni").await;
    let old = &members[primary];
    eprintln!("Patroni: {} primary, two replicas streaming, {:.1?} after start", old.name, t0.elapsed());
    query(old.pg_port, "CREATE TABLE t (id bigint)").await.expect("create t");
    let ports_list: Vec<String> = members.iter().map(|m| m.pg_port.to_string()).collect();
    let hosts = format!(
        "host=127.0.0.1,127.0.0.1,127.0.0.1 port={} target_session_attrs=read-write",
        ports_list.join(",")
    );
    let writer = Writer::paced(Duration::from_millis(20), &hosts);
    wait_for("the first writes", PATIENCE, || async { (writer.count() >= 10).then_some(()) }).await;
    // Patroni names its synchronous standby a cycle after the replicas stream: its rule is what the
    // takeover below must keep in force.
    wait_for("Patroni to name a synchronous standby", PATIENCE, || async {
        let names = query(old.pg_port, "SHOW synchronous_standby_names").await.ok()?;
        names.first().is_some_and(|n| !n.is_empty()).then_some(())
    })
    .await;
    let before = postmasters(&patroni, &members).await;

    // 2. Pause (patronictl pause), wait until every member saw it, stop every Patroni with SIGTERM.
    let (code, body) = send(old.api_port, reqwest::Method::PATCH, "/config", r#"{"pause": true}"#, CALL)
        .await
        .expect("PATCH /config on Patroni");
    assert_eq!(code, 200, "pause: {body}");
    for m in &members {
        wait_for(&format!("{} to report the pause", m.name), PATIENCE, || async {
            (rest(m.api_port, "/patroni", CALL).await?.1["pause"] == true).then_some(())
        })
        .await;
    }
    let handover = tokio::time::Instant::now();
    for i in 0..members.len() {
        patroni.stop_manager(i, Duration::from_secs(30)).await.expect("Patroni stops on SIGTERM");
    }
    assert_eq!(postmasters(&patroni, &members).await, before, "Patroni left PostgreSQL running, untouched");

    // 3. The same files with `raft:` for `etcd3:`, and the new store paused from its first entry.
    let files: Vec<(String, std::path::PathBuf)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let partners: Vec<String> = members
                .iter()
                .filter(|p| p.name != m.name)
                .map(|p| format!("127.0.0.1:{}", p.store_port))
                .collect();
            let raft = format!(
                "raft:\n  data_dir: {}/raft\n  self_addr: 127.0.0.1:{}\n  partner_addrs: [{}]\n",
                patroni.home(i).display(),
                m.store_port,
                partners.join(", ")
            );
            let text = std::fs::read_to_string(patroni.config_file(i)).expect("patroni.yml");
            let file = patroni.home(i).join("vigil.yml");
            std::fs::write(&file, vigil_config(&text, &raft).expect("convert")).expect("write vigil.yml");
            (m.name.clone(), file)
        })
        .collect();
    let mut vigil_members = VigilMembers::start(&vigil_binary(), &files).expect("start the agents");
    vigil_members.started(PATIENCE).await.expect("the agents start");
    let old_api = format!("http://127.0.0.1:{}", old.api_port);
    wait_for("the old primary to hold Vigil's lease, paused", PATIENCE, || async {
        let (code, status) = rest(old.api_port, "/primary", CALL).await?;
        (code == 200 && status["pause"] == true).then_some(())
    })
    .await;
    eprintln!("Vigil holds the paused cluster {:.1?} after Patroni was told to stop", handover.elapsed());
    // The lease's token is in the server, where clients read it, though Vigil neither started nor
    // promoted it.
    wait_for("the old primary to show the lease's fencing token", PATIENCE, || async {
        let (_, status) = rest(old.api_port, "/patroni", CALL).await?;
        let token = status["vigil"]["fencing_token"].as_u64()?.to_string();
        (query(old.pg_port, "SHOW vigil.fencing_token").await.ok()? == [token]).then_some(())
    })
    .await;
    let file = files[primary].1.to_str().expect("a UTF-8 path");
    let list = vigil(&["list", "-c", file]);
    assert!(list.contains("Maintenance mode: on"), "{list}");

    // Patroni's synchronous standby rule stays in force (as "any replica": commits keep waiting for one).
    let names = query(old.pg_port, "SHOW synchronous_standby_names").await.expect("SHOW");
    assert_eq!(names, ["*"], "the synchronous standbys of a primary taken over in pause");
    // 4. Nothing restarted; writes went on without a single failure, and a new session writes too.
    assert_eq!(postmasters(&patroni, &members).await, before, "paused Vigil restarted no server");
    query(old.pg_port, "INSERT INTO t VALUES (-1)").await.expect("a write in a new session");

    // 5. Resume: the old primary keeps the lease, the replicas stream from it.
    let resumed = tokio::time::Instant::now();
    vigil(&["resume", "--wait", "-c", file]);
    let primary_now = settled(&members, "Vigil").await;
    assert_eq!(primary_now, primary, "the old primary stays primary");
    eprintln!("Vigil resumed and settled in {:.1?}", resumed.elapsed());
    let after = postmasters(&patroni, &members).await;
    assert_eq!(after[primary], before[primary], "the primary's PostgreSQL was never restarted");
    for (i, m) in members.iter().enumerate().filter(|(i, _)| *i != primary) {
        let restarted = if after[i] == before[i] { "kept running" } else { "was restarted" };
        eprintln!("replica {}: PostgreSQL {restarted} on resume", m.name);
    }
    let acks = writer.acks();
    assert!(acks.iter().all(|a| a.server_port == old.pg_port), "every write so far went to the old primary");
    let during = acks.iter().filter(|a| a.at > handover && a.at < resumed).count();
    eprintln!("{during} writes acknowledged by the old primary between Patroni's pause and Vigil's resume");
    query(old.pg_port, "INSERT INTO t VALUES (-2)").await.expect("write after resume");
    for m in members.iter().filter(|m| m.name != old.name) {
        wait_for(&format!("the write to reach {}", m.name), PATIENCE, || async {
            let rows = query(m.pg_port, "SELECT count(*) FROM t WHERE id = -2").await.ok()?;
            (rows == ["1"]).then_some(())
        })
        .await;
        // Its WAL receiver restarts when the agent rewrites primary_conninfo: wait for it to reconnect.
        let sql = format!("SELECT active FROM pg_replication_slots WHERE slot_name = '{}'", m.name);
        wait_for(&format!("{} to stream through the slot Patroni made", m.name), PATIENCE, || async {
            (query(old.pg_port, &sql).await.ok()? == ["t"]).then_some(())
        })
        .await;
    }
    eprintln!("{}", vigil(&["list", "--api", &old_api]));
    // Vigil manages the servers now: a parameter changed cluster-wide reaches every one, the old primary too.
    vigil(&["edit-config", "--api", &old_api, "-s", "postgresql.parameters.work_mem=7MB", "--force"]);
    for m in &members {
        wait_for(&format!("work_mem changed on {}", m.name), PATIENCE, || async {
            (query(m.pg_port, "SHOW work_mem").await.ok()? == ["7MB"]).then_some(())
        })
        .await;
    }

    // Vigil's own synchronous standby, published and in the primary's rule.
    wait_for("Vigil to publish one synchronous standby", PATIENCE, || async {
        let mut found = Vec::new();
        for m in members.iter().filter(|m| m.name != old.name) {
            if rest(m.api_port, "/sync", CALL).await?.0 == 200 {
                found.push(m);
            }
        }
        let [standby] = found[..] else { return None };
        let names = query(old.pg_port, "SHOW synchronous_standby_names").await.ok()?;
        (names == [format!("FIRST 1 (\"{}\")", standby.name)]).then_some(())
    })
    .await;

    // kill -9 of the primary's agent and postmaster: a replica that holds every acknowledged commit (the
    // synchronous standby, or one as far as it) takes over, by Vigil's timings.
    let killed_at = tokio::time::Instant::now();
    vigil_members.kill_agent(primary);
    patroni.kill_postgres(primary);
    let first = wait_for("a write accepted by another member", PATIENCE, || async {
        writer.acks().into_iter().find(|a| a.at > killed_at && a.server_port != old.pg_port)
    })
    .await;
    eprintln!(
        "failover: first write accepted on port {} {:.2?} after kill -9 of {}'s agent and postmaster",
        first.server_port,
        first.at - killed_at,
        old.name
    );
    let (acks, failures) = writer.stop().await;
    let handover_failures: Vec<_> = failures.iter().filter(|f| f.at < killed_at).collect();
    assert!(handover_failures.is_empty(), "writes failed before the failover: {handover_failures:?}");
    let rows = query(first.server_port, "SELECT id FROM t").await.expect("the new primary's rows");
    let rows: std::collections::BTreeSet<i64> = rows.iter().map(|id| id.parse().expect("an id")).collect();
    let lost: Vec<i64> = acks.iter().map(|a| a.id).filter(|id| !rows.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes missing on the new primary: {lost:?}");
    eprintln!(
        "{} writes acknowledged, {} failed attempts (all during the failover)",
        acks.len(),
        failures.len()
    );
}
