//! Real agents and PostgreSQL 15 with a real pgBackRest (Debian's 2.45), its repository on local disk in the
//! test's temp dir, configured by a file there (`--config`) and run as the postgres user: a replica created
//! from a backup, a cluster bootstrapped from one at a target time (pgBackRest's recovery settings or
//! `recovery_conf`), a failing replica method falling through to pg_basebackup, and a lone member that
//! lost its data restoring it with a `no_leader` method (issue 19). pgBackRest runs with `examples/pgbackrest/pgbackrest.conf`, its repository moved into the
//! temp dir, and `examples/pgbackrest/node1.yml` passes `vigil agent --validate-config`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use vigil_integration::agents::{vigil_binary, AgentCluster};
use vigil_integration::managed::postgres_user;
use vigil_integration::{init_tracing, strip_ansi, wait_for};

const PATIENCE: Duration = Duration::from_secs(90);
/// The pgBackRest stanza of `examples/pgbackrest/pgbackrest.conf`.
const STANZA: &str = "main";
/// The clusters' scope.
const SCOPE: &str = "it";
/// The example's pgBackRest configuration, which the tests use with the repository in their temp dir.
const EXAMPLE_CONF: &str = include_str!("../../examples/pgbackrest/pgbackrest.conf");

/// A pgBackRest repository on local disk, with its configuration file and a restore script that records
/// how it was called.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::Builder::new().prefix("vigil-pgbackrest-").tempdir().expect("temp dir");
        for sub in ["repo", "log", "lock"] {
            std::fs::create_dir(dir.path().join(sub)).expect("repository dir");
        }
        let repo = Repo { dir };
        // The example's, its repository, log and lock files in the temp dir; the stanza's `pg1-*` paths are
        // given on each command line.
        let d = repo.path().display();
        let own = format!("[global]\nlog-path={d}/log\nlock-path={d}/lock\ncompress-type=none\n");
        let conf =
            EXAMPLE_CONF.replace("/var/lib/pgbackrest", &format!("{d}/repo")).replacen("[global]\n", &own, 1);
        std::fs::write(repo.conf(), conf).expect("pgbackrest.conf");
        // Restores the latest backup into --datadir with the other arguments passed on (--type=…), after
        // writing them all to `calls` (the agent's own: --scope, --role, --datadir, --connstring).
        let script = format!(
            "#!/bin/sh\nset -e\necho \"$*\" >> {calls}\ndatadir=\nfor a in \"$@\"; do\n  shift\n  case \"$a\" in\n\
             \x20   --datadir=*) datadir=\"${{a#--datadir=}}\" ;;\n    --scope=*|--role=*|--connstring=*) ;;\n\
             \x20   *) set -- \"$@\" \"$a\" ;;\n  esac\ndone\n\
             exec pgbackrest --config={conf} --stanza={STANZA} restore --pg1-path=\"$datadir\" \"$@\"\n",
            calls = repo.calls().display(),
            conf = repo.conf().display(),
        );
        std::fs::write(repo.restore_script(), script).expect("restore script");
        chmod(&repo.restore_script(), 0o755);
        chmod(repo.path(), 0o755);
        chown_to_postgres(repo.path());
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn conf(&self) -> PathBuf {
        self.path().join("pgbackrest.conf")
    }

    fn restore_script(&self) -> PathBuf {
        self.path().join("restore.sh")
    }

    /// What the restore script was called with, a line per call.
    fn calls(&self) -> PathBuf {
        self.path().join("calls")
    }

    /// The server parameters that archive every WAL file into the repository, and log replication commands
    /// (so that a base backup taken from a server shows in its log). PostgreSQL runs `archive_command` and
    /// `restore_command` in the data directory: `$(pwd)` is the member's own.
    fn archiving(&self) -> String {
        format!(
            "    archive_mode: 'on'\n    archive_command: 'pgbackrest --config={} --stanza={STANZA} --pg1-path=\"$(pwd)\" archive-push %p'\n\
             \x20   log_replication_commands: 'on'\n",
            self.conf().display()
        )
    }

    /// Runs `pgbackrest <args>` on the stanza of node `i` of `cluster`, as the postgres user; panics with
    /// its output when it fails.
    fn run(&self, cluster: &AgentCluster, i: usize, args: &[&str]) {
        let home = cluster.home(i);
        let mut all = vec![
            format!("PGPASSFILE={}", home.join("pgpass").display()),
            "pgbackrest".to_owned(),
            format!("--config={}", self.conf().display()),
            format!("--stanza={STANZA}"),
            format!("--pg1-path={}", home.join("pg").display()),
            format!("--pg1-port={}", cluster.nodes[i].pg_port),
            format!("--pg1-socket-path={}", home.join("sock").display()),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut command = match postgres_user() {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", "env"]);
                c
            }
            None => Command::new("env"),
        };
        let out = command.args(&all).output().expect("run pgbackrest");
        assert!(
            out.status.success(),
            "pgbackrest {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
}

/// Gives `dir` and everything in it to the postgres user (when running as root).
fn chown_to_postgres(dir: &Path) {
    let Some((uid, gid)) = postgres_user() else { return };
    let mut paths = vec![dir.to_path_buf()];
    while let Some(path) = paths.pop() {
        std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
        if path.is_dir() {
            paths.extend(std::fs::read_dir(&path).expect("read dir").map(|e| e.expect("entry").path()));
        }
    }
}

/// The node configuration with `parameters` added to `postgresql.parameters` and `postgresql` (indented
/// by two spaces) and `bootstrap` keys (also) added to their sections.
fn edited(yaml: &str, parameters: &str, postgresql: &str, bootstrap: &str) -> String {
    let yaml = yaml.replacen("\n  parameters:\n", &format!("\n  parameters:\n{parameters}"), 1);
    let yaml = yaml.replacen("\nbootstrap:\n", &format!("\nbootstrap:\n{bootstrap}"), 1);
    format!("{yaml}{postgresql}")
}

/// The lines of node `i`'s log that hold every one of `words`, without colours.
fn log_lines(cluster: &AgentCluster, i: usize, words: &[&str]) -> Vec<String> {
    let log = cluster.log(i);
    log.lines().map(strip_ansi).filter(|l| words.iter().all(|w| l.contains(w))).collect()
}

/// Prints how long node `i`'s replica took to make with `method` (its "replica created" line).
fn report_clone_time(cluster: &AgentCluster, i: usize, method: &str) {
    let lines = log_lines(cluster, i, &["replica created", &format!("method={method}")]);
    let ms = lines.last().and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("duration_ms=")));
    eprintln!("{}: replica made with {method} in {} ms", cluster.nodes[i].name, ms.unwrap_or("?"));
}

/// Waits until the WAL node `i` wrote so far is archived: switches to a new WAL file and waits for the
/// last one to be in the archive.
async fn archived(cluster: &AgentCluster, i: usize) {
    let rows = cluster.query(i, "SELECT pg_walfile_name(pg_switch_wal())").await.expect("switch WAL");
    let segment = rows[0].clone();
    wait_for(&format!("{segment} archived"), PATIENCE, || async {
        let rows =
            cluster.query(i, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").await.ok()?;
        (rows.first().is_some_and(|last| last.as_str() >= segment.as_str())).then_some(())
    })
    .await;
}

/// A one-node cluster archiving into `repo`, with `methods` added to its `postgresql` section: table `t`
/// with row 1 in a full backup and row 2 written after it, archived.
async fn backed_up(repo: &Repo, methods: String) -> AgentCluster {
    let archiving = repo.archiving();
    let cluster =
        AgentCluster::start_edited(1, "", Box::new(move |yaml| edited(yaml, &archiving, &methods, "")));
    cluster.primary(PATIENCE).await;
    repo.run(&cluster, 0, &["stanza-create"]);
    cluster.query(0, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await.expect("write");
    repo.run(&cluster, 0, &["backup", "--type=full"]);
    cluster.query(0, "INSERT INTO t VALUES (2)").await.expect("write after the backup");
    archived(&cluster, 0).await;
    cluster
}

/// `postgresql.create_replica_methods: [pgbackrest, basebackup]`, pgbackrest restoring `repo`'s backup as
/// a standby, with `more` keys in its section.
fn pgbackrest_first(repo: &Repo, more: &str) -> String {
    format!(
        "  create_replica_methods: [pgbackrest, basebackup]\n  pgbackrest:\n    command: {}\n    type: standby\n{more}",
        repo.restore_script().display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_restored_from_the_backup_without_copying_from_the_primary_then_streams() {
    init_tracing();
    let repo = Repo::new();
    let mut cluster = backed_up(&repo, pgbackrest_first(&repo, "")).await;

    let replica = cluster.add_node("");
    cluster.start_agent(replica);
    cluster.streaming_replica(replica, PATIENCE).await;
    cluster.query(0, "INSERT INTO t VALUES (3)").await.expect("write while it streams");
    cluster.eventually(replica, "SELECT id FROM t ORDER BY id", &["1", "2", "3"]).await;

    // The method ran, with Patroni's arguments, and nothing was copied from the primary: its log has the
    // replica's START_REPLICATION but no BASE_BACKUP.
    let calls = std::fs::read_to_string(repo.calls()).unwrap_or_default();
    let data = cluster.home(replica).join("pg");
    let primary = &cluster.nodes[0];
    assert_eq!(calls.lines().count(), 1, "{calls}");
    for expected in [
        "--type=standby".to_owned(),
        format!("--scope={SCOPE}"),
        "--role=replica".to_owned(),
        format!("--datadir={}", data.display()),
        format!("--connstring=host='{}' port='{}' user='replicator'", primary.host, primary.pg_port),
    ] {
        assert!(calls.contains(&expected), "{expected} not in {calls}");
    }
    assert_eq!(log_lines(&cluster, replica, &["replica created", "method=pgbackrest"]).len(), 1);
    assert!(log_lines(&cluster, replica, &["replica method failed"]).is_empty());
    let server_log =
        std::fs::read_to_string(cluster.home(0).join("node1.log")).expect("primary's server log");
    assert!(server_log.contains("START_REPLICATION"), "replication commands are logged");
    assert!(!server_log.contains("BASE_BACKUP"), "a base backup was taken from the primary");
    report_clone_time(&cluster, replica, "pgbackrest");
}

/// A two-node cluster bootstrapped from `repo`'s backup and archive up to a target time taken between
/// row 2 and row 3 of a former cluster: `bootstrap.pgbackrest` has `keys(target)` after its command (lines
/// indented by four spaces), and `post_bootstrap` writes its argument to `post_bootstrap` in the
/// repository. Returns it settled, with the index of its primary, once both members have exactly rows 1
/// and 2 and the primary took a write.
async fn bootstrapped_at_target(repo: &Repo, keys: impl FnOnce(&str) -> String) -> (AgentCluster, usize) {
    let old = backed_up(repo, String::new()).await;
    // pgBackRest picks the backup for a target by its stop time, in whole seconds: the target comes after.
    let second = "SELECT date_trunc('second', clock_timestamp()) + interval '1 second'";
    let next = old.query(0, second).await.expect("the next second")[0].clone();
    wait_for("the second after the backup", Duration::from_secs(5), || async {
        let rows = old.query(0, &format!("SELECT clock_timestamp() > '{next}'")).await.ok()?;
        (rows == ["t"]).then_some(())
    })
    .await;
    let target = old.query(0, "SELECT clock_timestamp()").await.expect("the target time")[0].clone();
    old.query(0, "INSERT INTO t VALUES (3)").await.expect("write after the target");
    archived(&old, 0).await;
    drop(old);

    let bootstrap = format!(
        "  method: pgbackrest\n  pgbackrest:\n    command: {script}\n{keys}\
         \x20 post_bootstrap: sh -c 'echo \"$0\" > {post}'\n",
        script = repo.restore_script().display(),
        keys = keys(&target),
        post = repo.path().join("post_bootstrap").display(),
    );
    let cluster = AgentCluster::start_edited(2, "", Box::new(move |yaml| edited(yaml, "", "", &bootstrap)));
    let primary = cluster.settled(&[0, 1], PATIENCE).await;
    let replica = 1 - primary;
    cluster.eventually(primary, "SELECT id FROM t ORDER BY id", &["1", "2"]).await;
    cluster.eventually(replica, "SELECT id FROM t ORDER BY id", &["1", "2"]).await;
    cluster.query(primary, "INSERT INTO t VALUES (4)").await.expect("the new primary takes writes");
    cluster.eventually(replica, "SELECT id FROM t ORDER BY id", &["1", "2", "4"]).await;
    (cluster, primary)
}

/// `bootstrap.pgbackrest` keys: pgBackRest restores without recovery settings, `recovery_conf` has them,
/// with `action` (a line, or nothing).
fn recovery_conf(repo: &Repo, target: &str, action: &str) -> String {
    format!(
        "    type: none\n    recovery_conf:\n\
         \x20     restore_command: 'pgbackrest --config={conf} --stanza={STANZA} --pg1-path=\"$(pwd)\" archive-get %f \"%p\"'\n\
         \x20     recovery_target_time: '{target}'\n{action}",
        conf = repo.conf().display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_bootstrapped_from_the_backup_at_a_target_time_has_the_rows_up_to_it() {
    init_tracing();
    let repo = Repo::new();
    let promote = "      recovery_target_action: promote\n";
    let (cluster, primary) =
        bootstrapped_at_target(&repo, |target| recovery_conf(&repo, target, promote)).await;
    let replica = 1 - primary;

    let calls = std::fs::read_to_string(repo.calls()).unwrap_or_default();
    let data = cluster.home(primary).join("pg");
    assert_eq!(calls.trim(), format!("--type=none --scope={SCOPE} --datadir={}", data.display()));
    assert!(!log_lines(&cluster, primary, &["restored database out of recovery"]).is_empty());
    assert!(log_lines(&cluster, primary, &["recovery paused"]).is_empty(), "it promoted itself");
    assert!(!log_lines(&cluster, replica, &["replica created", "method=basebackup"]).is_empty());
    let wal = cluster.query(primary, "SELECT pg_walfile_name(pg_current_wal_lsn())").await.expect("WAL file");
    assert!(!wal[0].starts_with("00000001"), "promoted at the target, on a new timeline: {wal:?}");
    let connstring = std::fs::read_to_string(repo.path().join("post_bootstrap")).expect("post_bootstrap ran");
    assert!(
        connstring.contains("user='postgres'") && connstring.contains("dbname='postgres'"),
        "{connstring}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_paused_at_its_target_is_promoted() {
    init_tracing();
    let repo = Repo::new();
    // No recovery_target_action: PostgreSQL pauses at the target.
    let (cluster, primary) = bootstrapped_at_target(&repo, |target| recovery_conf(&repo, target, "")).await;
    assert_eq!(log_lines(&cluster, primary, &["recovery paused at its target: promoting"]).len(), 1);
    assert!(!log_lines(&cluster, primary, &["restored database out of recovery"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_writes_its_own_recovery_settings_is_kept_to_them_then_rid_of_the_target() {
    init_tracing();
    let repo = Repo::new();
    // pgBackRest writes restore_command and the target to postgresql.auto.conf, with recovery.signal.
    let (cluster, primary) = bootstrapped_at_target(&repo, |target| {
        format!("    type: time\n    target: '{target}'\n    target-action: promote\n    keep_existing_recovery_conf: true\n")
    })
    .await;
    let calls = std::fs::read_to_string(repo.calls()).unwrap_or_default();
    assert!(calls.contains("--target-action=promote --type=time"), "{calls}");
    let auto =
        std::fs::read_to_string(cluster.home(primary).join("pg/postgresql.auto.conf")).expect("auto.conf");
    assert!(auto.contains("restore_command") && !auto.contains("recovery_target"), "{auto}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_replica_method_falls_through_to_basebackup() {
    init_tracing();
    let scripts = tempfile::Builder::new().prefix("vigil-methods-").tempdir().expect("temp dir");
    chmod(scripts.path(), 0o755);
    // Leaves a file in the data directory and fails: the next method must find it emptied.
    let broken = scripts.path().join("broken.sh");
    std::fs::write(
        &broken,
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in --datadir=*) d=\"${a#--datadir=}\" ;; esac; done\n\
         touch \"$d/left-by-broken\"\necho 'no backup to restore' >&2\nexit 3\n",
    )
    .expect("script");
    chmod(&broken, 0o755);
    let methods = format!(
        "  create_replica_methods: [broken, basebackup]\n  broken:\n    command: {}\n",
        broken.display()
    );
    let cluster = AgentCluster::start_edited(2, "", Box::new(move |yaml| edited(yaml, "", &methods, "")));
    let primary = cluster.settled(&[0, 1], PATIENCE).await;
    let replica = 1 - primary;
    cluster.query(primary, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await.expect("write");
    cluster.eventually(replica, "SELECT id FROM t", &["1"]).await;

    let failed = log_lines(&cluster, replica, &["replica method failed", "method=broken"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].contains("no backup to restore") && failed[0].contains("methods_left=1"), "{failed:?}");
    assert_eq!(
        log_lines(&cluster, replica, &["creating the replica", "method=basebackup", "broken failed"]).len(),
        1
    );
    assert_eq!(log_lines(&cluster, replica, &["replica created", "method=basebackup"]).len(), 1);
    assert!(!cluster.home(replica).join("pg/left-by-broken").exists(), "emptied before basebackup");
    report_clone_time(&cluster, replica, "basebackup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_lost_its_data_with_no_primary_left_restores_it_with_a_no_leader_method() {
    init_tracing();
    let repo = Repo::new();
    let mut cluster = backed_up(&repo, pgbackrest_first(&repo, "    no_leader: true\n")).await;

    // The only member loses its server and its data: nobody is left to copy from. Its lifeline stops the
    // server when the agent dies (and removes postmaster.pid as it exits).
    cluster.signal_agent(0, libc::SIGKILL);
    let data = cluster.home(0).join("pg");
    wait_for("the server stopped by the lifeline", PATIENCE, || async {
        (!data.join("postmaster.pid").exists()).then_some(())
    })
    .await;
    vigil_integration::managed::release_shared_memory(&data);
    std::fs::remove_dir_all(&data).expect("remove the data directory");
    cluster.start_agent(0);

    cluster.primary(PATIENCE).await;
    cluster.eventually(0, "SELECT id FROM t ORDER BY id", &["1", "2"]).await;
    assert!(!log_lines(&cluster, 0, &["no data and no primary: restoring"]).is_empty());
    assert_eq!(log_lines(&cluster, 0, &["replica created", "method=pgbackrest"]).len(), 1);
    let calls = std::fs::read_to_string(repo.calls()).unwrap_or_default();
    let call = calls.lines().last().unwrap_or_default();
    let expected = format!("--role=replica --datadir={} --connstring=", data.display());
    assert!(call.ends_with(&expected), "no primary, an empty connection string: {calls}");
}

#[test]
fn the_example_node_passes_validate_config_with_either_bootstrap() {
    let example = include_str!("../../examples/pgbackrest/node1.yml");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in
        [("initdb", example.to_owned()), ("restore", example.replace("method: initdb", "method: pgbackrest"))]
    {
        let file = dir.path().join(format!("{name}.yml"));
        std::fs::write(&file, text).expect("config");
        let out = Command::new(vigil_binary())
            .args(["agent", "--validate-config", "-c"])
            .arg(&file)
            .output()
            .expect("vigil");
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains("node1: valid"), "{name}: {said}");
    }
}
