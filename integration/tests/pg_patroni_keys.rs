//! Patroni's `postgresql` keys with real agents and PostgreSQL 15: the cluster-wide pg_hba of
//! `bootstrap.dcs.postgresql` (as Patroni's own sample files write it) reaches every member and a
//! `PATCH /config` of it applies with a reload, as do the cluster's recovery settings on a replica;
//! `proxy_address` is published; a former primary whose
//! data diverged is re-cloned with its old data set aside, not deleted.

use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// The harness's `bootstrap.pg_hba` moved into `bootstrap.dcs.postgresql.pg_hba`, Patroni's place.
fn cluster_wide_pg_hba(yaml: &str) -> String {
    let lines = "  pg_hba:\n    - host replication replicator 127.0.0.1/32 scram-sha-256\n\
                 \x20   - host all all 127.0.0.1/32 scram-sha-256\n";
    assert!(yaml.contains(lines), "the harness's pg_hba moved: {yaml}");
    yaml.replace(lines, "").replace(
        "      use_pg_rewind: true\n",
        "      use_pg_rewind: true\n      pg_hba:\n      - host replication replicator 127.0.0.1/32 scram-sha-256\n\
         \x20     - host all all 127.0.0.1/32 scram-sha-256\n",
    )
}

/// Whether a TCP session as `user` (password `pw`) is accepted by node `i`.
async fn accepts(cluster: &AgentCluster, i: usize, user: &str) -> bool {
    let node = &cluster.nodes[i];
    let conn = format!(
        "host={} port={} user={user} password=pw dbname=postgres connect_timeout=2",
        node.host, node.pg_port
    );
    tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clusters_pg_hba_and_recovery_conf_reach_the_members_and_apply_with_a_reload() {
    init_tracing();
    let edit = |yaml: &str| {
        cluster_wide_pg_hba(yaml).replace("  pgpass:", "  proxy_address: 127.0.0.1:6432\n  pgpass:")
    };
    let cluster = AgentCluster::start_edited(2, "", Box::new(edit));
    let all = [0, 1];
    let primary = cluster.settled(&all, PATIENCE).await;
    cluster.query(primary, "CREATE ROLE app LOGIN PASSWORD 'pw'").await.expect("role");
    for i in all {
        let hba = std::fs::read_to_string(cluster.home(i).join("pg/pg_hba.conf")).expect("pg_hba.conf");
        assert!(hba.ends_with("host all all 127.0.0.1/32 scram-sha-256\n"), "{hba}");
        wait_for("app to be let in", PATIENCE, || async { accepts(&cluster, i, "app").await.then_some(()) })
            .await;
    }

    // The cluster's list replaces the whole: app is refused from now on, by a reload (same postmaster).
    let started: Vec<_> = all.iter().map(|i| cluster.postmaster_pid(*i)).collect();
    let patch = json!({"postgresql": {"pg_hba": [
        "host all app 127.0.0.1/32 reject",
        "host replication replicator 127.0.0.1/32 scram-sha-256",
        "host all all 127.0.0.1/32 scram-sha-256",
    ]}});
    let (code, body) = cluster.send(primary, Method::PATCH, "/config", &patch.to_string()).await;
    assert_eq!(code, 200, "{body}");
    for i in all {
        wait_for("app to be refused", PATIENCE, || async {
            (!accepts(&cluster, i, "app").await).then_some(())
        })
        .await;
        let hba = std::fs::read_to_string(cluster.home(i).join("pg/pg_hba.conf")).expect("pg_hba.conf");
        assert!(hba.contains("\nhost all app 127.0.0.1/32 reject\n"), "{hba}");
        assert_eq!(cluster.postmaster_pid(i), started[i], "reloaded, not restarted");
    }
    // The cluster's recovery settings reach the replica only, by a reload too.
    let replica = 1 - primary;
    let patch = r#"{"postgresql": {"recovery_conf": {"recovery_min_apply_delay": "2s"}}}"#;
    let (code, body) = cluster.send(primary, Method::PATCH, "/config", patch).await;
    assert_eq!(code, 200, "{body}");
    cluster.eventually(replica, "SHOW recovery_min_apply_delay", &["2s"]).await;
    cluster.eventually(primary, "SHOW recovery_min_apply_delay", &["0"]).await;
    assert_eq!(cluster.postmaster_pid(replica), started[replica], "reloaded, not restarted");
    // Refused with the key named: a blank line, and a command in the cluster's recovery settings.
    for (patch, named) in [
        (r#"{"postgresql": {"pg_hba": [" "]}}"#, "postgresql.pg_hba[0]"),
        (r#"{"postgresql": {"recovery_conf": {"restore_command": "cp a b"}}}"#, "postgresql.recovery_conf"),
    ] {
        let (code, body) = cluster.send(primary, Method::PATCH, "/config", patch).await;
        assert!(code == 400 && body.contains(named), "{patch}: {code} {body}");
    }

    let (_, listed) = cluster.rest(primary, "/cluster").await.expect("/cluster");
    for member in listed["members"].as_array().expect("members") {
        assert_eq!(member["proxy_url"], "postgres://127.0.0.1:6432/postgres", "{listed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_former_primary_is_re_cloned_with_its_data_set_aside() {
    init_tracing();
    // Without pg_rewind, as Patroni's default leaves remove_data_directory_on_diverged_timelines.
    let edit = |yaml: &str| yaml.replace("use_pg_rewind: true", "use_pg_rewind: false");
    let mut cluster = AgentCluster::start_edited(3, "", Box::new(edit));
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.query(old, "CREATE TABLE t (v int)").await.expect("create");
    cluster.replicated_table(old, &all, "t").await;

    // The Raft group keeps its majority without the old primary's agent.
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    cluster.query(new, "INSERT INTO t VALUES (1)").await.expect("insert");

    cluster.start_agent(old);
    cluster.streaming_replica(old, PATIENCE).await;
    cluster.eventually(old, "SELECT count(*) FROM t", &["1"]).await;
    let home = cluster.home(old);
    let kept: Vec<_> = std::fs::read_dir(&home)
        .expect("home")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("pg.diverged-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(home.join(&kept[0]).join("global/pg_control").is_file(), "the old data is all there");
    let path = home.join(&kept[0]).display().to_string();
    let (_, status) = cluster.rest(old, "/patroni").await.expect("/patroni");
    assert_eq!(status["vigil"]["data_set_aside"], path.as_str(), "{status}");
    let (_, listed) = cluster.rest(new, "/cluster").await.expect("/cluster");
    let shown =
        listed["members"].as_array().into_iter().flatten().find(|m| m["name"] == cluster.nodes[old].name);
    assert_eq!(shown.map(|m| m["data_set_aside"].clone()), Some(json!(path)), "{listed}");
    assert!(cluster.plain_log(old).contains("diverged data set aside"), "logged with its reason");
}
