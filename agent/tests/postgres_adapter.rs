//! The PostgreSQL adapter against real PostgreSQL 15 servers (`/usr/lib/postgresql/15/bin`): bootstrap, clone,
//! streaming, failover with promotion, pg_rewind of the crashed and diverged former primary, upstream changes
//! by reload, removing data, and secrets kept out of the servers' environment and log. Runs the servers as the
//! `postgres` OS user when the test runs as root.

mod common;
mod postgres_files;

use common::{wait_state, WAIT};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_postgres::{NoTls, SimpleQueryMessage};
use vigil_agent::config::{Callbacks, CloneMethod};
use vigil_agent::db::postgres::{Credentials, InitdbOption, OwnFiles, Postgres, PostgresSettings};
use vigil_agent::db::{DataState, Database, DbState, Retained, Role, StopMode, Upstream};
use vigil_agent::ha::Hooks;
use vigil_dcs::{FencingToken, MemberName};

const BIN: &str = "/usr/lib/postgresql/15/bin";
const SUPERUSER_PASSWORD: &str = "su 'secret";

/// The OS user the servers run as: `postgres` when the test runs as root, else the test's own user.
fn os_user() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0).then(|| "postgres".to_string())
}

/// uid and gid of `name`, from /etc/passwd.
fn ids(name: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.split(':').next() == Some(name)).unwrap();
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// A temporary root for the servers' directories that stops every server registered with it when dropped,
/// also when a test fails, before the directories go away.
struct Lab {
    data_dirs: Mutex<Vec<PathBuf>>,
    root: TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab { data_dirs: Mutex::new(Vec::new()), root: common::server_root() }
    }

    /// Settings for member `name` on a free port, its directories under the root.
    fn node(&self, name: &str) -> (Postgres, PostgresSettings) {
        let dir = self.root.path().join(name);
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let parameters: BTreeMap<String, String> = [
            ("unix_socket_directories", dir.join("sock").to_string_lossy().into_owned()),
            ("wal_level", "logical".into()),
            ("fsync", "off".into()),
            ("shared_buffers", "16MB".into()),
            ("max_connections", "20".into()),
            ("wal_retrieve_retry_interval", "200ms".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        // As `bootstrap.pg_hba`: what applies while the dynamic configuration sets no pg_hba.
        let own_files = OwnFiles {
            bootstrap_pg_hba: vec![
                "local all all peer".into(),
                "host all postgres 127.0.0.1/32 scram-sha-256".into(),
                "host replication replicator 127.0.0.1/32 scram-sha-256".into(),
                "host postgres rewinder 127.0.0.1/32 scram-sha-256".into(),
            ],
            ..OwnFiles::default()
        };
        let settings = PostgresSettings {
            scope: "adapter".into(),
            name: name.into(),
            data_dir: dir.join("data"),
            bin_dir: BIN.into(),
            listen_host: "127.0.0.1".into(),
            port,
            connect_host: "127.0.0.1".into(),
            superuser: Credentials {
                username: "postgres".into(),
                password: SUPERUSER_PASSWORD.into(),
                peer_options: Default::default(),
            },
            replication: Credentials {
                username: "replicator".into(),
                password: "rep:se\\cret".into(),
                peer_options: Default::default(),
            },
            // pg_rewind connects as its own role, which the bootstrap creates with the grants it needs
            rewind: Some(Credentials {
                username: "rewinder".into(),
                password: "rew-pass".into(),
                peer_options: Default::default(),
            }),
            parameters,
            own_files: own_files.clone(),
            files: own_files.in_force(&Default::default()),
            config_dir: None,
            custom_conf: None,
            bin_name: Default::default(),
            pg_ctl_timeout: std::time::Duration::from_secs(60),
            before_stop: None,
            use_unix_socket: None,
            // Patroni's sample postgres1.yml's pg_basebackup options
            basebackup: vec![
                InitdbOption::Flag("verbose".into()),
                InitdbOption::Value("max-rate".into(), "100M".into()),
            ],
            clone_methods: vec![CloneMethod::Basebackup],
            custom_bootstrap: None,
            post_bootstrap: None,
            initdb: vec![
                InitdbOption::Value("encoding".into(), "UTF8".into()),
                InitdbOption::Value("locale".into(), "C".into()),
                InitdbOption::Flag("no-sync".into()),
            ],
            pgpass: dir.join("pgpass"),
            os_user: os_user(),
            nostream: false,
        };
        self.data_dirs.lock().unwrap().push(settings.data_dir.clone());
        (Postgres::new(settings.clone()), settings)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for dir in self.data_dirs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if !dir.join("postmaster.pid").exists() {
                continue;
            }
            let mut cmd = std::process::Command::new(Path::new(BIN).join("pg_ctl"));
            cmd.args(["stop", "-m", "immediate", "-w", "-D"]).arg(dir).current_dir("/");
            if let Some(user) = os_user() {
                let (uid, gid) = ids(&user);
                cmd.uid(uid).gid(gid);
            }
            let _ = cmd.output();
        }
    }
}

/// Slots for `members` and nothing else (no permanent slots; a slot nobody wants is dropped at once).
fn retained(members: &[&str]) -> Retained {
    Retained { members: members.iter().map(|m| m.to_string()).collect(), ..Retained::default() }
}

fn upstream(s: &PostgresSettings) -> Upstream {
    Upstream {
        name: s.name.clone(),
        host: "127.0.0.1".into(),
        port: s.port,
        api_url: String::new(),
        slot: Default::default(),
    }
}

/// A session on the server at `port` as the superuser over TCP, with the task that drives it.
async fn connect(port: u16) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), String> {
    let conn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=2");
    let mut config: tokio_postgres::Config = conn.parse().map_err(|e| format!("{e}"))?;
    config.password(SUPERUSER_PASSWORD);
    let (client, connection) = config.connect(NoTls).await.map_err(|e| said(&e))?;
    Ok((client, tokio::spawn(async move { drop(connection.await) })))
}

/// What the server said, or else what failed.
fn said(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

/// Runs `query` on the server at `port` as the superuser over TCP; the first column of each row.
async fn sql(port: u16, query: &str) -> Result<Vec<String>, String> {
    let (client, task) = connect(port).await?;
    let result = client.simple_query(query).await.map_err(|e| said(&e));
    drop(client);
    task.abort();
    Ok(result?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .collect())
}

/// Polls `query` on `port` until it returns `expected`.
async fn wait_rows(port: u16, query: &str, expected: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows = sql(port, query).await;
        if rows.as_ref().is_ok_and(|r| r == expected) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {expected:?} from {query:?}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn present(system_id: &str, was_primary: bool) -> DataState {
    DataState::Present { system_id: system_id.into(), was_primary }
}

fn streaming_from<'a>(name: &'a str, timeline: u64) -> impl Fn(&DbState) -> bool + 'a {
    move |s: &DbState| {
        s.running
            && s.role == Some(Role::Replica)
            && s.streaming
            && s.upstream.as_deref() == Some(name)
            && s.timeline == Some(timeline)
    }
}

async fn start_time(port: u16) -> String {
    sql(port, "SELECT pg_postmaster_start_time()").await.unwrap().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_clone_failover_rewind() {
    let lab = Lab::new();
    let (a, sa) = lab.node("node-A");
    let (b, sb) = lab.node("node-B");
    let (c, sc) = lab.node("node-C");
    let (up_a, up_b) = (upstream(&sa), upstream(&sb));
    let members = ["node-A", "node-B", "node-C"];

    assert_eq!(a.observe().await, DbState::stopped(DataState::Missing));
    a.bootstrap(Some(1)).await.unwrap();
    let state = a.observe().await;
    let DataState::Present { system_id, was_primary: true } = state.data.clone() else { panic!("{state:?}") };
    assert!(state.is_running_primary() && state.timeline == Some(1) && state.position.is_some(), "{state:?}");
    sql(sa.port, "CREATE TABLE t (v text); INSERT INTO t VALUES ('one')").await.unwrap();

    // Slots: one per other member, stale physical slots dropped, logical slots untouched.
    sql(sa.port, "SELECT pg_create_physical_replication_slot('gone_member')").await.unwrap();
    sql(sa.port, "SELECT pg_create_logical_replication_slot('keep_logical', 'test_decoding')").await.unwrap();
    a.retain_for(&retained(&["node-A", "node-B"])).await.unwrap();
    let slots = "SELECT slot_name FROM pg_replication_slots ORDER BY 1";
    assert_eq!(sql(sa.port, slots).await.unwrap(), ["keep_logical", "node_b"]);

    // Clones follow A and stream; A's rows arrive. C's slot does not exist yet when it is cloned: it is
    // cloned without, and streams once the slot is there.
    for (node, settings) in [(&b, &sb), (&c, &sc)] {
        node.clone_from(&up_a).await.unwrap();
        let cloned =
            DbState { upstream: Some("node-A".into()), ..DbState::stopped(present(&system_id, false)) };
        assert_eq!(node.observe().await, cloned);
        node.follow(Some(&up_a)).await.unwrap();
        if settings.name == "node-C" {
            assert!(!c.observe().await.streaming);
            a.retain_for(&retained(&members)).await.unwrap();
            a.retain_for(&retained(&members)).await.unwrap();
            assert_eq!(sql(sa.port, slots).await.unwrap(), ["keep_logical", "node_b", "node_c"]);
        }
        wait_state(node, "streaming from A", streaming_from("node-A", 1)).await;
        wait_rows(settings.port, "SELECT v FROM t ORDER BY v", &["one"]).await;
    }
    let b_started = start_time(sb.port).await;
    b.follow(Some(&up_a)).await.unwrap();
    assert_eq!(start_time(sb.port).await, b_started, "following the same upstream again restarted B");

    // A crashes; B is promoted and writes.
    a.stop(StopMode::Immediate).await.unwrap();
    a.stop(StopMode::Immediate).await.unwrap();
    assert_eq!(a.observe().await, DbState::stopped(present(&system_id, true)));
    assert!(b.first_write().await.is_err(), "a replica took a write");
    b.promote(2).await.unwrap();
    b.promote(2).await.unwrap();
    // The first write takes a transaction id: the next one to be assigned moves on.
    let next_xid = "SELECT txid_snapshot_xmax(txid_current_snapshot())";
    let before: u64 = sql(sb.port, next_xid).await.unwrap()[0].parse().unwrap();
    b.first_write().await.expect("the first write on the new primary");
    let after: u64 = sql(sb.port, next_xid).await.unwrap()[0].parse().unwrap();
    assert!(after > before, "no transaction id was taken: {before} → {after}");
    let state = b.observe().await;
    assert!(state.is_running_primary() && state.timeline == Some(2), "{state:?}");
    assert_eq!(state.data, present(&system_id, true));
    b.retain_for(&retained(&members)).await.unwrap();
    sql(sb.port, "INSERT INTO t VALUES ('two')").await.unwrap();

    // C switches to B by a reload, without restarting; without an upstream it stops streaming.
    let c_started = start_time(sc.port).await;
    c.follow(Some(&up_b)).await.unwrap();
    wait_state(&c, "C streaming from B", streaming_from("node-B", 2)).await;
    wait_rows(sc.port, "SELECT v FROM t ORDER BY v", &["one", "two"]).await;
    c.follow(None).await.unwrap();
    wait_state(&c, "C standby of nobody", |s| s.running && s.role == Some(Role::Replica) && !s.streaming)
        .await;
    assert_eq!(c.observe().await.upstream, None);
    c.follow(Some(&up_b)).await.unwrap();
    wait_state(&c, "C streaming from B again", streaming_from("node-B", 2)).await;
    assert_eq!(start_time(sc.port).await, c_started, "changing C's upstream restarted it");

    // Split brain: A comes back as a primary on the old timeline, writes, and crashes again.
    a.start_primary(None).await.unwrap();
    assert!(a.observe().await.is_running_primary());
    sql(sa.port, "INSERT INTO t VALUES ('lost')").await.unwrap();
    a.stop(StopMode::Immediate).await.unwrap();
    assert_eq!(a.observe().await, DbState::stopped(present(&system_id, true)));

    // A is repaired to B's history (crash recovery by pg_rewind itself, connected to B as the rewind role,
    // no superuser) and streams from B.
    let rewinder = "SELECT rolsuper::text FROM pg_roles WHERE rolname = 'rewinder'";
    wait_rows(sb.port, rewinder, &["false"]).await;
    a.repair_from(&up_b).await.unwrap();
    assert_eq!(a.observe().await.data, present(&system_id, false));
    a.follow(Some(&up_b)).await.unwrap();
    let state = wait_state(&a, "A streaming from B", streaming_from("node-B", 2)).await;
    assert_eq!(state.data, present(&system_id, false));
    wait_rows(sa.port, "SELECT v FROM t ORDER BY v", &["one", "two"]).await;
    let b_state = b.observe().await;
    let a_state = wait_state(&a, "A caught up", |s| s.replay_position >= b_state.position).await;
    assert!(a_state.position >= a_state.replay_position);

    // C, a replica of B, crashes and is started as a primary (it took the lease, its server died before the
    // promotion): it is promoted onto a timeline of its own, not brought up on B's, where the WAL of a
    // replica further ahead would silently diverge from it.
    c.stop(StopMode::Immediate).await.unwrap();
    assert_eq!(c.observe().await.data, present(&system_id, false));
    c.start_primary(Some(3)).await.unwrap();
    let state = c.observe().await;
    assert!(state.is_running_primary() && state.timeline == Some(3), "{state:?}");
    wait_rows(sc.port, "SELECT v FROM t ORDER BY v", &["one", "two"]).await;

    for node in [&a, &b, &c] {
        node.stop(StopMode::Fast).await.unwrap();
        node.stop(StopMode::Fast).await.unwrap();
        assert!(!node.observe().await.running);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_data_leaves_an_empty_directory() {
    let lab = Lab::new();
    let (node, settings) = lab.node("solo");
    node.bootstrap(Some(1)).await.unwrap();
    assert!(node.remove_data().await.is_err(), "removed the data of a running server");
    assert!(node.clone_from(&upstream(&settings)).await.is_err(), "cloned over existing data");
    node.stop(StopMode::Fast).await.unwrap();
    let DataState::Present { was_primary: true, .. } = node.observe().await.data else { panic!("no data") };

    node.remove_data().await.unwrap();
    assert_eq!(node.observe().await, DbState::stopped(DataState::Missing));
    let meta = std::fs::metadata(&settings.data_dir).unwrap();
    assert_eq!(std::fs::read_dir(&settings.data_dir).unwrap().count(), 0);
    assert_eq!(meta.mode() & 0o777, 0o700);
    if let Some(user) = os_user() {
        assert_eq!(meta.uid(), ids(&user).0);
    }
    let err = node.start_primary(None).await.unwrap_err();
    assert!(err.detail.contains("no database"), "{err}");

    // The remains of an interrupted clone (no control file yet) count as no database and are cleared.
    std::fs::write(settings.data_dir.join("PG_VERSION"), "15\n").unwrap();
    assert_eq!(node.observe().await, DbState::stopped(DataState::Missing));
    node.bootstrap(Some(1)).await.unwrap();
    assert!(node.observe().await.is_running_primary());
    node.stop(StopMode::Immediate).await.unwrap();
}

/// Set in the environment of the re-run of this binary that runs [`secrets_in_the_agents_environment`].
const SECRETS_CHILD: &str = "VIGIL_TEST_SECRETS_CHILD";
/// A password in the agent's environment, as `VIGIL_SUPERUSER_PASSWORD`.
const ENV_SECRET: &str = "env-secret-4711";

/// The agent's `VIGIL_*` variables stay out of the environment of PostgreSQL's processes and of hooks, and
/// the replication role's password stays out of a server log written with `log_statement = all`. The
/// variables are set on a re-run of this test binary (not in this multi-threaded process), which runs
/// [`secrets_in_the_agents_environment`].
#[test]
fn secrets_stay_out_of_the_servers_environment_and_log() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "secrets_in_the_agents_environment", "--nocapture"])
        .env(SECRETS_CHILD, "1")
        .env("VIGIL_SUPERUSER_PASSWORD", ENV_SECRET)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
}

/// The environment of process `pid`, as `NAME=value` lines.
fn environ(pid: &str) -> String {
    let bytes = std::fs::read(format!("/proc/{}/environ", pid.trim())).unwrap();
    String::from_utf8_lossy(&bytes).replace('\0', "\n")
}

/// Run by [`secrets_stay_out_of_the_servers_environment_and_log`] only; elsewhere it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_in_the_agents_environment() {
    if std::env::var_os(SECRETS_CHILD).is_none() {
        return;
    }
    assert_eq!(std::env::var("VIGIL_SUPERUSER_PASSWORD").as_deref(), Ok(ENV_SECRET));
    let lab = Lab::new();
    let (_, mut settings) = lab.node("secrets");
    settings.parameters.insert("log_statement".into(), "all".into());
    settings.parameters.insert("log_min_duration_statement".into(), "0".into());
    let node = Postgres::new(settings.clone());
    node.bootstrap(Some(1)).await.unwrap();

    let pid_file = std::fs::read_to_string(settings.data_dir.join("postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap();
    let (client, task) = connect(settings.port).await.unwrap();
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    // A backend writes its ps title over the area /proc shows (its environment moved); it inherits the
    // postmaster's, which is shown as it is.
    assert!(environ(postmaster).contains("PGPASSFILE="), "not the postmaster's environment");
    for (what, pid) in [("postmaster", postmaster.to_string()), ("backend", backend.to_string())] {
        let env = environ(&pid);
        assert!(!env.contains("VIGIL_") && !env.contains(ENV_SECRET), "{what} {pid} has: {env}");
    }
    drop(client);
    task.abort();

    let log_file = settings.data_dir.with_file_name("secrets.log");
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("statement: BEGIN"), "log_statement = all is not in force: {log}");
    assert!(!log.contains("rep:se"), "the replication password is in the server log: {log}");
    node.stop(StopMode::Immediate).await.unwrap();

    // A hook sees its own VIGIL_* variables only.
    let out = settings.data_dir.with_file_name("hook-env");
    let hooks = Hooks::new("demo", Some(format!("env > {}; :", out.display())), Callbacks::default());
    let name = MemberName::new("secrets").unwrap();
    hooks.pre_promote(&name, None, FencingToken(3)).await.unwrap();
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(env.contains("VIGIL_CANDIDATE=secrets\n"), "{env}");
    assert!(!env.contains(ENV_SECRET) && !env.contains(SECRETS_CHILD), "the hook has: {env}");
}

/// A bootstrap whose first start fails (its port is taken) leaves no data behind, so the next attempt
/// runs initdb again and creates the replication role, rather than starting a primary without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_that_cannot_start_leaves_nothing_and_the_next_creates_the_roles() {
    let lab = Lab::new();
    let (node, s) = lab.node("busy");
    let taken = std::net::TcpListener::bind(("127.0.0.1", s.port)).expect("take the port");
    let err = node.bootstrap(Some(1)).await.expect_err("the port is taken");
    assert!(err.to_string().contains("start"), "{err}");
    assert_eq!(node.observe().await.data, DataState::Missing, "initdb's output removed");
    drop(taken);
    node.bootstrap(Some(1)).await.expect("bootstrap");
    let roles = "SELECT rolname FROM pg_roles WHERE rolname = 'replicator'";
    assert_eq!(sql(s.port, roles).await.unwrap(), ["replicator"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bootstrap_gets_a_connection_string_and_its_failure_fails_the_bootstrap() {
    let lab = Lab::new();
    let (_, s) = lab.node("post");
    let failing = Postgres::new(PostgresSettings { post_bootstrap: Some("exit 4".into()), ..s.clone() });
    let err = failing.bootstrap(Some(1)).await.expect_err("post_bootstrap failed");
    assert!(
        err.to_string().contains("post_bootstrap") && err.to_string().contains("exit status: 4"),
        "{err}"
    );
    assert_eq!(failing.observe().await.data, DataState::Missing, "the data directory emptied again");

    // The connection string is the last argument; the password comes from the password file.
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(out.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let file = out.path().join("who");
    let query = "SELECT current_user || ' ' || current_setting('synchronous_commit')";
    let command = format!("{BIN}/psql -X -A -t -o {} -c \"{query}\"", file.display());
    let node = Postgres::new(PostgresSettings { post_bootstrap: Some(command), ..s.clone() });
    node.bootstrap(Some(1)).await.expect("bootstrap");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), "postgres local", "Patroni's PGOPTIONS");
    node.stop(StopMode::Immediate).await.unwrap();
}
