//! Patroni's file keys against a real server: `config_dir` with an existing postgresql.conf kept as
//! the included base, `custom_conf`, pg_hba and pg_ident from the dynamic configuration applied by a
//! reload, `before_stop`, `bin_name`, `pg_ctl_timeout`, `primary_stop_timeout`, and diverged data set
//! aside rather than removed.

use super::{ids, os_user, sql, wait_rows, Lab};
use std::os::unix::fs::chown;
use std::path::Path;
use std::time::{Duration, Instant};
use vigil_agent::config::{BinNames, DynamicConfig, SynchronousMode};
use vigil_agent::db::postgres::{OwnFiles, Postgres, PostgresSettings};
use vigil_agent::db::{DataState, Database, StopMode};

/// Gives `path` to the OS user the servers run as.
fn give(path: &Path) {
    if let Some(user) = os_user() {
        let (uid, gid) = ids(&user);
        chown(path, Some(uid), Some(gid)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_dir_base_conf_cluster_pg_hba_and_before_stop() {
    let lab = Lab::new();
    let (_, settings) = lab.node("debian");
    // Debian's layout: the configuration in /etc/postgresql/<v>/main, written before the agent came.
    let etc = settings.data_dir.with_file_name("etc");
    std::fs::create_dir_all(&etc).unwrap();
    give(&etc);
    std::fs::write(etc.join("postgresql.conf"), "work_mem = '7MB'\n").unwrap();
    let stopped = settings.data_dir.with_file_name("before_stop.out");
    let s = PostgresSettings {
        config_dir: Some(etc.clone()),
        // its exit status is ignored
        before_stop: Some(format!("echo stopping >> {}; exit 3", stopped.display())),
        ..settings
    };
    let node = Postgres::new(s.clone());
    node.bootstrap(Some(1)).await.unwrap();

    let base = etc.join("postgresql.base.conf");
    assert_eq!(std::fs::read_to_string(&base).unwrap(), "work_mem = '7MB'\n", "kept as the base");
    let show = |name: &str| format!("SELECT current_setting('{name}')");
    wait_rows(s.port, &show("work_mem"), &["7MB"]).await;
    let in_etc = |f: &str| etc.join(f).display().to_string();
    wait_rows(s.port, &show("config_file"), &[&in_etc("postgresql.conf")]).await;
    wait_rows(s.port, &show("hba_file"), &[&in_etc("pg_hba.conf")]).await;
    wait_rows(s.port, &show("ident_file"), &[&in_etc("pg_ident.conf")]).await;

    // The cluster's pg_hba and pg_ident, applied by a reload: TCP as the superuser is refused now.
    let mut dynamic = DynamicConfig::default();
    dynamic.postgresql.pg_hba = Some(vec!["host all postgres 127.0.0.1/32 reject".into()]);
    dynamic.postgresql.pg_ident = Some(vec!["vigilmap alice postgres".into()]);
    node.set_cluster_config(&dynamic).await.unwrap();
    let hba = std::fs::read_to_string(etc.join("pg_hba.conf")).unwrap();
    assert!(hba.ends_with("\nhost all postgres 127.0.0.1/32 reject\n"), "{hba}");
    let ident = std::fs::read_to_string(etc.join("pg_ident.conf")).unwrap();
    assert!(ident.ends_with("\nvigilmap alice postgres\n"), "{ident}");
    assert!(sql(s.port, "SELECT 1").await.is_err());
    let log = std::fs::read_to_string(s.data_dir.with_file_name("debian.log")).unwrap();
    assert!(log.contains("pg_hba.conf rejects connection for host \"127.0.0.1\""), "{log}");
    // The member's own pg_hba wins over the cluster's.
    let own = Postgres::new(PostgresSettings {
        own_files: OwnFiles { pg_hba: Some(s.files.pg_hba.clone()), ..s.own_files.clone() },
        ..s.clone()
    });
    own.set_cluster_config(&dynamic).await.unwrap();
    // Started by another adapter, the running primary is adopted: its files are written and reloaded.
    wait_rows(s.port, "SELECT 1", &["1"]).await;
    own.stop(StopMode::Fast).await.unwrap();
    assert_eq!(std::fs::read_to_string(&stopped).unwrap(), "stopping\n", "before_stop ran once");
    own.start_primary(None).await.unwrap();
    wait_rows(s.port, "SELECT map_name FROM pg_ident_file_mappings", &["vigilmap"]).await;
    wait_rows(s.port, "SELECT 1", &["1"]).await;
    own.stop(StopMode::Fast).await.unwrap();
    assert_eq!(std::fs::read_to_string(&stopped).unwrap(), "stopping\nstopping\n");
    assert!(!own.observe().await.running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_conf_and_bin_name_are_used_and_diverged_data_is_set_aside() {
    let lab = Lab::new();
    let (_, settings) = lab.node("aside");
    let custom = settings.data_dir.with_file_name("custom.conf");
    std::fs::create_dir_all(custom.parent().unwrap()).unwrap();
    std::fs::write(&custom, "work_mem = '9MB'\n").unwrap();
    // bin_name: pg_ctl and pg_controldata under other names (links to PostgreSQL's own).
    let bin = settings.data_dir.with_file_name("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for entry in std::fs::read_dir(&settings.bin_dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let renamed = if ["pg_ctl", "pg_controldata"].contains(&name.as_str()) {
            format!("{name}.15")
        } else {
            name.clone()
        };
        std::os::unix::fs::symlink(settings.bin_dir.join(&name), bin.join(renamed)).unwrap();
    }
    let bin_name = BinNames {
        pg_ctl: Some("pg_ctl.15".into()),
        pg_controldata: Some("pg_controldata.15".into()),
        ..BinNames::default()
    };
    assert!(!bin.join("pg_ctl").exists());
    let s = PostgresSettings { custom_conf: Some(custom), bin_dir: bin, bin_name, ..settings };
    let node = Postgres::new(s.clone());
    node.bootstrap(Some(1)).await.unwrap();
    wait_rows(s.port, "SELECT current_setting('work_mem')", &["9MB"]).await;
    assert!(!s.data_dir.join("postgresql.base.conf").exists(), "custom_conf replaces the base");
    let system_id = match node.observe().await.data {
        DataState::Present { system_id, .. } => system_id,
        other => panic!("no data: {other:?}"),
    };
    assert!(node.set_data_aside().await.is_err(), "set aside the data of a running primary");
    node.stop(StopMode::Fast).await.unwrap();

    node.set_data_aside().await.unwrap();
    let state = node.observe().await;
    assert_eq!(state.data, DataState::Missing);
    let kept = state.data_set_aside.expect("reported");
    let name = Path::new(&kept).file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("data.diverged-") && name.ends_with('Z'), "{name}");
    assert!(Path::new(&kept).join("global/pg_control").is_file(), "the data is all there");
    assert_eq!(std::fs::read_dir(&s.data_dir).unwrap().count(), 0, "a fresh data directory");

    // A new database in its place; what was set aside stays, and stays reported.
    node.bootstrap(Some(2)).await.unwrap();
    let state = node.observe().await;
    assert!(matches!(&state.data, DataState::Present { system_id: new, .. } if *new != system_id));
    assert_eq!(state.data_set_aside.as_deref(), Some(kept.as_str()));
    node.stop(StopMode::Immediate).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_waits_pg_ctl_timeout_and_a_synchronous_primary_is_killed_after_primary_stop_timeout() {
    let lab = Lab::new();
    let (_, settings) = lab.node("stuck");
    let s = PostgresSettings { pg_ctl_timeout: Duration::from_secs(3), ..settings };
    let node = Postgres::new(s.clone());
    node.bootstrap(Some(1)).await.unwrap();
    // A stopped checkpointer never writes the shutdown checkpoint: a fast stop waits in vain.
    let query = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'";
    let pid: libc::pid_t = sql(s.port, query).await.unwrap()[0].parse().unwrap();
    // SAFETY: kill with a PID this test's server just reported.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let started = Instant::now();
    let err = node.stop(StopMode::Fast).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(15), "pg_ctl_timeout: took {:?}", started.elapsed());
    assert!(err.action.contains("pg_ctl stop"), "{err}");
    assert!(node.observe().await.running || node.observe().await.starting, "still there");

    let mut dynamic =
        DynamicConfig { primary_stop_timeout: Duration::from_secs(2), ..DynamicConfig::default() };
    dynamic.synchronous_mode = SynchronousMode::On;
    node.set_cluster_config(&dynamic).await.unwrap();
    let started = Instant::now();
    node.stop(StopMode::Fast).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(!node.observe().await.running);
    // The stopped checkpointer leads a session of its own: it is killed too, not left behind.
    let gone = Instant::now() + Duration::from_secs(5);
    let alive = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    };
    while alive() && Instant::now() < gone {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(), "the checkpointer {pid} outlived its killed server");
}
