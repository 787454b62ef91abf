//! The MariaDB adapter against real MariaDB 10.11 servers (Debian's `mariadb-server`): bootstrap, clone
//! with mariadb-dump, GTID replication, promotion under a new token, and the former primary following
//! the new one. Runs the servers as the `mysql` OS user when the test runs as root.

mod common;

use common::wait_state;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tempfile::TempDir;
use vigil_agent::config::{Flavor, MysqlPrograms, ReplicaMethod};
use vigil_agent::db::mariadb::{Account, MariaDb, MariaDbSettings};
use vigil_agent::db::{DataState, Database, DbState, Position, Role, Unit, Upstream};
use vigil_api::BasicAuth;

const PASSWORD: &str = "su 'secret";

/// Where Debian installs the server and its tools.
fn programs() -> MysqlPrograms {
    MysqlPrograms {
        server: "/usr/sbin/mariadbd".into(),
        install_db: Some("/usr/bin/mariadb-install-db".into()),
        dump: "/usr/bin/mariadb-dump".into(),
        client: "/usr/bin/mariadb".into(),
        backup: Some("/usr/bin/mariadb-backup".into()),
        mbstream: Some("/usr/bin/mbstream".into()),
    }
}

/// A temporary root for the servers that kills every server started under it when dropped, also when
/// a test fails, before the directories go away.
struct Lab {
    data_dirs: Mutex<Vec<PathBuf>>,
    root: TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab { data_dirs: Mutex::new(Vec::new()), root: common::server_root() }
    }

    /// Member `name` with `server_id`, on a free port, serving its copies (`GET /backup`) to the
    /// replication account on another.
    fn node(&self, name: &str, server_id: u32) -> (Arc<MariaDb>, Upstream) {
        let (settings, up) = self.settings(name, server_id);
        let db = Arc::new(MariaDb::new(settings));
        let api_url = serve_copies(&db, "replicator");
        (db, Upstream { api_url, ..up })
    }

    /// The settings of member `name` with `server_id` in GTID domain 0, on a free port.
    fn settings(&self, name: &str, server_id: u32) -> (MariaDbSettings, Upstream) {
        let data_dir = self.root.path().join(name).join("mysql");
        std::fs::create_dir_all(data_dir.parent().unwrap()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let account = |user: &str| Account { username: user.into(), password: PASSWORD.into() };
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let settings = MariaDbSettings {
            name: name.into(),
            flavor: Flavor::Mariadb,
            server_id,
            domain: 0,
            data_dir: data_dir.clone(),
            programs: programs(),
            listen_host: "127.0.0.1".into(),
            port,
            superuser: account("vigil"),
            replication: account("replicator"),
            parameters: BTreeMap::from([
                ("innodb_buffer_pool_size".to_owned(), "16M".to_owned()),
                ("innodb_log_file_size".to_owned(), "8M".to_owned()),
            ]),
            os_user: root.then(|| "mysql".to_owned()),
            create_replica_methods: vec![ReplicaMethod::MariadbBackup, ReplicaMethod::MariadbDump],
            api_client_tls: Default::default(),
        };
        self.data_dirs.lock().unwrap().push(data_dir);
        (
            settings,
            Upstream {
                name: name.into(),
                host: "127.0.0.1".into(),
                port,
                api_url: String::new(),
                slot: Default::default(),
            },
        )
    }
}

/// Serves `db`'s copies to `user` (password [`PASSWORD`]) on a free loopback port: the `api_url` to ask.
fn serve_copies(db: &Arc<MariaDb>, user: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/patroni", listener.local_addr().unwrap());
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let account = BasicAuth { username: user.into(), password: PASSWORD.into() };
    let router = vigil_api::backup::backup_router(db.clone(), account);
    tokio::spawn(vigil_api::tls::serve(listener, router, None));
    url
}

impl Drop for Lab {
    fn drop(&mut self) {
        for dir in self.data_dirs.lock().unwrap().iter() {
            vigil_agent::db::lifeline::watch(vigil_agent::db::Engine::Mariadb, dir, &[][..]);
            if std::thread::panicking() {
                let log = std::fs::read_to_string(dir.join("mysqld.err")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!(
                    "---- {} (tail) ----\n{}",
                    dir.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }
}

/// A session with `node` over TCP, as the superuser.
async fn client(node: &Upstream) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(node.host.clone())
        .tcp_port(node.port)
        .user(Some("vigil"))
        .pass(Some(PASSWORD));
    mysql_async::Conn::new(opts).await.unwrap()
}

/// The rows of `test.t` on `node`.
async fn rows(node: &Upstream) -> Vec<u32> {
    client(node).await.query("SELECT id FROM test.t ORDER BY id").await.unwrap()
}

/// Waits until `node` streams and has received and applied everything up to `end`.
async fn caught_up(node: &impl Database, what: &str, end: Option<Position>) -> DbState {
    wait_state(node, what, |s| s.streaming && s.position == end && s.replay_position == end).await
}

/// node-a bootstrapped with the table `test.t`, and node-b cloned from it and streaming everything it has;
/// with a superuser session on node-a.
async fn primary_and_streaming_replica(
    lab: &Lab,
) -> (Arc<MariaDb>, Upstream, Arc<MariaDb>, Upstream, mysql_async::Conn) {
    let (a, up_a) = lab.node("node-a", 1);
    let (b, up_b) = lab.node("node-b", 2);
    a.bootstrap(Some(1)).await.unwrap();
    let mut session = client(&up_a).await;
    session.query_drop("CREATE DATABASE test").await.unwrap();
    session.query_drop("CREATE TABLE test.t (id INT UNSIGNED PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    Database::clone_from(&*b, &up_a).await.unwrap();
    b.follow(Some(&up_a)).await.unwrap();
    let written = a.observe().await.position;
    caught_up(&*b, "node-b catches up", written).await;
    (a, up_a, b, up_b, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_clone_follow_promote_and_the_former_primary_follows() {
    let lab = Lab::new();
    let (a, up_a) = lab.node("node-a", 1);
    let (b, up_b) = lab.node("node-b", 2);

    assert_eq!(a.observe().await.data, DataState::Missing);
    a.bootstrap(Some(1)).await.unwrap();
    let state = a.observe().await;
    assert!(state.running && state.role == Some(Role::Primary), "{state:?}");
    assert_eq!(state.timeline, Some(1), "the bootstrap's token is the first term");
    let system_id = match &state.data {
        DataState::Present { system_id, .. } => system_id.clone(),
        DataState::Missing => panic!("no data after the bootstrap"),
    };
    let mut session = client(&up_a).await;
    for statement in [
        "CREATE DATABASE test",
        "CREATE TABLE test.t (id INT UNSIGNED PRIMARY KEY) ENGINE=InnoDB",
        "INSERT INTO test.t VALUES (1), (2), (3)",
    ] {
        session.query_drop(statement).await.unwrap();
    }

    Database::clone_from(&*b, &up_a).await.unwrap();
    let state = b.observe().await;
    assert!(!state.running, "a clone is not started: {state:?}");
    assert_eq!(state.data, DataState::Present { system_id: system_id.clone(), was_primary: false });
    b.follow(Some(&up_a)).await.unwrap();
    session.query_drop("INSERT INTO test.t VALUES (4)").await.unwrap();
    let written = a.observe().await.position.unwrap();
    assert_eq!(written.unit, Unit::Transactions);
    let state = caught_up(&*b, "node-b streams and has everything", Some(written)).await;
    assert_eq!((state.role, state.upstream.as_deref()), (Some(Role::Replica), Some("node-a")));
    assert_eq!(rows(&up_b).await, [1, 2, 3, 4]);
    let primary = a.observe().await;
    assert_eq!(primary.replicas.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["node-b"]);
    let refused = client(&up_b).await.query_drop("INSERT INTO test.t VALUES (99)").await;
    assert!(refused.is_ok(), "the superuser may write on a read-only replica: the fence is not read_only");
    client(&up_b).await.query_drop("DELETE FROM test.t WHERE id = 99").await.ok();

    // The primary dies; the replica is promoted under a new token and takes writes.
    drop(session);
    a.kill().await.unwrap();
    assert!(!a.observe().await.running);
    b.promote(2).await.unwrap();
    let state = b.observe().await;
    assert_eq!((state.role, state.timeline), (Some(Role::Primary), Some(2)), "{state:?}");
    client(&up_b).await.query_drop("INSERT INTO test.t VALUES (5)").await.unwrap();

    // The former primary has nothing the new one lacks: it follows it.
    a.follow(Some(&up_b)).await.unwrap();
    let new_end = b.observe().await.position.unwrap();
    let state = caught_up(&*a, "node-a follows node-b", Some(new_end)).await;
    assert_eq!((state.role, state.timeline), (Some(Role::Replica), Some(2)), "the new term replicated");
    assert_eq!(rows(&up_a).await, [1, 2, 3, 4, 5]);
    assert!(Position::new(Unit::Transactions, 1) < new_end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_primary_with_transactions_the_new_one_lacks_cannot_follow_it_and_is_cloned_again() {
    let lab = Lab::new();
    let (a, up_a, b, up_b, mut session) = primary_and_streaming_replica(&lab).await;

    // Cut off, the old primary takes a write nobody receives; the replica is promoted meanwhile.
    b.follow(None).await.unwrap();
    session.query_drop("INSERT INTO test.t VALUES (1)").await.unwrap();
    let logged: String = session.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap();
    drop(session);
    a.kill().await.unwrap();
    b.promote(2).await.unwrap();
    client(&up_b).await.query_drop("INSERT INTO test.t VALUES (2)").await.unwrap();

    let refused = a.follow(Some(&up_b)).await.unwrap_err().to_string();
    let errant = format!("{logged} (1 transaction)");
    assert!(
        refused.contains(&format!("follow node-b: diverged: it has {errant} that node-b lacks")),
        "{refused}"
    );
    let state = a.observe().await;
    assert!(!state.streaming, "{state:?}");
    let reported = state.diverged.clone().expect("what node-b lacks, reported");
    assert_eq!((reported.upstream.as_str(), reported.extra), ("node-b", errant));
    // Following nobody, it is asked to follow again, and the second refusal has it cloned again.
    assert_eq!(state.upstream, None, "a refused follow leaves it following nobody: {state:?}");
    assert!(a.repair_from(&up_b).await.is_err(), "no repair in place: the policy re-clones");
    a.remove_data().await.unwrap();
    assert_eq!(a.observe().await.data, DataState::Missing);
    Database::clone_from(&*a, &up_b).await.unwrap();
    a.follow(Some(&up_b)).await.unwrap();
    let end = b.observe().await.position;
    let state = caught_up(&*a, "node-a follows node-b after the clone", end).await;
    assert_eq!(state.diverged, None, "nothing refused any more");
    assert_eq!(rows(&up_a).await, [2], "the transaction only the old primary had is gone with its copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_its_upstreams_server_id_or_another_gtid_domain_is_refused_naming_the_parameter() {
    let lab = Lab::new();
    let (a, up_a) = lab.node("node-a", 1);
    a.bootstrap(Some(1)).await.unwrap();
    let (twin, _) = lab.node("node-b", 1);
    let refused = Database::clone_from(&*twin, &up_a).await.unwrap_err().to_string();
    assert!(refused.starts_with("clone: server_id 1 is also node-a's"), "{refused}");
    assert!(refused.contains("mysql.parameters.server_id"), "{refused}");
    assert_eq!(twin.observe().await.data, DataState::Missing, "nothing copied");
    let (settings, _) = lab.settings("node-c", 3);
    let elsewhere = MariaDb::new(MariaDbSettings { domain: 5, ..settings });
    let refused = elsewhere.clone_from(&up_a).await.unwrap_err().to_string();
    assert!(refused.starts_with("clone: gtid_domain_id 5 differs from node-a's 0"), "{refused}");
    assert!(refused.contains("set mysql.parameters.gtid_domain_id to 0"), "{refused}");
    let (fine, _) = lab.node("node-d", 4);
    Database::clone_from(&*fine, &up_a).await.unwrap();
    fine.follow(Some(&up_a)).await.unwrap();
    let written = a.observe().await.position;
    caught_up(&*fine, "node-d streams", written).await;

    // Another replica's server_id: the upstream would drop one of the two for the other, back and forth.
    let (namesake, _) = lab.node("node-e", 4);
    let refused = Database::clone_from(&*namesake, &up_a).await.unwrap_err().to_string();
    assert!(refused.starts_with("clone: server_id 4 is also node-d's, a replica of node-a"), "{refused}");
    assert!(refused.contains("mysql.parameters.server_id"), "{refused}");
    assert_eq!(namesake.observe().await.data, DataState::Missing, "nothing copied");
    wait_state(&*fine, "node-d still streams", |s| s.streaming).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_makes_the_primary_read_only_and_ends_every_client_session_the_privileged_too() {
    let lab = Lab::new();
    let (a, up_a) = lab.node("node-a", 1);
    a.bootstrap(Some(1)).await.unwrap();
    let mut admin = client(&up_a).await;
    for statement in [
        "CREATE DATABASE test",
        "CREATE TABLE test.t (id INT UNSIGNED PRIMARY KEY) ENGINE=InnoDB",
        "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pass'",
        "GRANT SELECT, INSERT ON test.* TO 'app'@'%'",
    ] {
        admin.query_drop(statement).await.unwrap();
    }
    let app = || {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname(up_a.host.clone())
            .tcp_port(up_a.port)
            .user(Some("app"))
            .pass(Some("app-pass"));
        mysql_async::Conn::new(opts)
    };
    let mut open = app().await.unwrap();
    open.query_drop("BEGIN").await.unwrap();
    open.query_drop("INSERT INTO test.t VALUES (1)").await.unwrap();

    a.fence().await.unwrap();
    let state = a.observe().await;
    assert!(state.running && state.role == Some(Role::Replica), "fenced, not stopped: {state:?}");
    let refused = app().await.unwrap().query_drop("INSERT INTO test.t VALUES (2)").await.unwrap_err();
    assert!(refused.to_string().contains("read-only") || refused.to_string().contains("1290"), "{refused}");
    assert!(open.query_drop("COMMIT").await.is_err(), "the open transaction's session is gone");
    assert!(admin.query_drop("SELECT 1").await.is_err(), "the privileged session is gone too");
    let rows: Vec<u32> = client(&up_a).await.query("SELECT id FROM test.t").await.unwrap();
    assert!(rows.is_empty(), "nothing of the open transaction committed: {rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_waits_until_a_blocked_sql_thread_applied_everything_received() {
    let lab = Lab::new();
    let (a, _, b, up_b, mut session) = primary_and_streaming_replica(&lab).await;

    // A session on the replica holds a table lock: its SQL thread cannot apply what it receives.
    let mut lock = client(&up_b).await;
    lock.query_drop("LOCK TABLES test.t READ").await.unwrap();
    for id in 1..=5 {
        session.query_drop(format!("INSERT INTO test.t VALUES ({id})")).await.unwrap();
    }
    let written = a.observe().await.position;
    let state = wait_state(&*b, "node-b receives the rows", |s| s.position == written).await;
    assert!(state.replay_position < written, "received, not applied: {state:?}");
    drop(session);
    a.kill().await.unwrap();

    let promotion = tokio::spawn(async move {
        b.promote(2).await.unwrap();
        b
    });
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!promotion.is_finished(), "the promotion waits for the relay log to be applied");
    lock.query_drop("UNLOCK TABLES").await.unwrap();
    let b = promotion.await.unwrap();
    assert_eq!(b.observe().await.role, Some(Role::Primary));
    assert_eq!(rows(&up_b).await, [1, 2, 3, 4, 5], "every row received before the crash is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cloned_with_mariadb_backup_starts_at_the_copys_gtid_and_streams_from_there() {
    let lab = Lab::new();
    let (a, up_a) = lab.node("node-a", 1);
    a.bootstrap(Some(1)).await.unwrap();
    let mut session = client(&up_a).await;
    session.query_drop("CREATE DATABASE test").await.unwrap();
    session.query_drop("CREATE TABLE test.t (id INT UNSIGNED PRIMARY KEY) ENGINE=InnoDB").await.unwrap();
    session.query_drop("INSERT INTO test.t VALUES (1), (2)").await.unwrap();
    let copied: String = session.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap();

    // Only the physical copy: a fallback to the dump would hide a broken one.
    let (settings, up_b) = lab.settings("node-b", 2);
    let b = MariaDb::new(MariaDbSettings {
        create_replica_methods: vec![ReplicaMethod::MariadbBackup],
        ..settings
    });
    b.clone_from(&up_a).await.unwrap();
    let data_dir = lab.root.path().join("node-b").join("mysql");
    assert!(!data_dir.join("xtrabackup_binlog_info").exists(), "the copy's bookkeeping is removed");
    assert!(matches!(b.observe().await.data, DataState::Present { was_primary: false, .. }));
    b.follow(Some(&up_a)).await.unwrap();
    let slave_pos: String =
        client(&up_b).await.query_first("SELECT @@gtid_slave_pos").await.unwrap().unwrap();
    session.query_drop("INSERT INTO test.t VALUES (3)").await.unwrap();
    let written = a.observe().await.position;
    caught_up(&b, "node-b streams from the copy's position", written).await;
    assert_eq!(rows(&up_b).await, [1, 2, 3], "the copied rows and the one written after");
    assert_eq!(slave_pos, copied, "the replica position is the copy's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_refused_by_the_upstreams_agent_fails_naming_why_and_the_dump_takes_over() {
    let lab = Lab::new();
    let (a, up_a) = lab.node("node-a", 1);
    a.bootstrap(Some(1)).await.unwrap();
    // An agent that serves its copies to another account than the one node-b presents.
    let up_a = Upstream { api_url: serve_copies(&a, "someone-else"), ..up_a };

    let (settings, _) = lab.settings("node-b", 2);
    let backup_only =
        MariaDbSettings { create_replica_methods: vec![ReplicaMethod::MariadbBackup], ..settings.clone() };
    let refused = MariaDb::new(backup_only).clone_from(&up_a).await.unwrap_err().to_string();
    assert!(refused.contains("mariadb-backup from node-a") && refused.contains("HTTP 401"), "{refused}");

    let b = MariaDb::new(settings);
    b.clone_from(&up_a).await.unwrap();
    b.follow(Some(&up_a)).await.unwrap();
    let written = a.observe().await.position;
    caught_up(&b, "node-b, cloned with the dump, streams", written).await;
}

/// Time to clone a replica of `MARIADB_CLONE_BENCH_ROWS` rows (default 1,000,000, about 130 MB of data)
/// with each method: from the request to a server that has every row and streams from its upstream.
/// `cargo test -p vigil-agent --test mariadb_adapter -- --ignored --nocapture bench_clone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark, its figures are in BENCHMARKS.md"]
async fn bench_clone_methods() {
    let rows: u64 =
        std::env::var("MARIADB_CLONE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let lab = Lab::new();
    let (a, up_a) = lab.node("node-a", 1);
    a.bootstrap(Some(1)).await.unwrap();
    let mut session = client(&up_a).await;
    session.query_drop("CREATE DATABASE test").await.unwrap();
    let table = "CREATE TABLE test.big (id BIGINT UNSIGNED PRIMARY KEY, pad CHAR(100)) ENGINE=InnoDB";
    session.query_drop(table).await.unwrap();
    session.query_drop("INSERT INTO test.big VALUES (1, 'x')").await.unwrap();
    let mut have = 1;
    while have < rows {
        let more = have.min(rows - have);
        let double =
            format!("INSERT INTO test.big SELECT id + {have}, pad FROM test.big ORDER BY id LIMIT {more}");
        session.query_drop(double).await.unwrap();
        have += more;
    }
    session.query_drop("ANALYZE TABLE test.big").await.unwrap();
    let size: String = session
        .query_first("SELECT CONCAT(ROUND(SUM(data_length + index_length) / 1048576), ' MiB') FROM information_schema.tables WHERE table_schema = 'test'")
        .await
        .unwrap()
        .unwrap();
    for (i, method) in [ReplicaMethod::MariadbBackup, ReplicaMethod::MariadbDump].into_iter().enumerate() {
        let (settings, up) = lab.settings(&format!("copy-{i}"), 10 + i as u32);
        let copy = MariaDb::new(MariaDbSettings { create_replica_methods: vec![method], ..settings });
        let started = std::time::Instant::now();
        copy.clone_from(&up_a).await.unwrap();
        copy.follow(Some(&up_a)).await.unwrap();
        let written = a.observe().await.position;
        caught_up(&copy, "the copy streams", written).await;
        let elapsed = started.elapsed();
        let count: u64 =
            client(&up).await.query_first("SELECT COUNT(*) FROM test.big").await.unwrap().unwrap();
        assert_eq!(count, rows);
        println!("clone of {rows} rows ({size}) with {method}: {elapsed:.2?}");
    }
}
