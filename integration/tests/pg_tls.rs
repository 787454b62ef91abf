//! Replication over TLS: the servers have a certificate from a throwaway CA, pg_hba.conf admits
//! replication over TLS only (`hostssl`), and the replication user and the superuser connect with
//! `sslmode: verify-full` and that CA as `sslrootcert`. Replicas stream, a failover happens, and the old
//! primary rejoins through pg_rewind, every connection to another member over TLS.

use std::path::Path;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::init_tracing;

const PATIENCE: Duration = Duration::from_secs(60);

/// Writes `ca.pem`, and `server.pem`/`server.key` for 127.0.0.1 signed by it, into `dir`, readable by
/// PostgreSQL: the key 0600, owned by `postgres` when the test runs as root.
fn certificates(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let ca = vigil_api::pki::Authority::new("vigil test PostgreSQL CA").expect("CA");
    let files = ca.write(dir, "server", &["127.0.0.1"]).expect("server certificate");
    // SAFETY: geteuid has no preconditions; getpwnam's result is read at once, before any other call.
    unsafe {
        if libc::geteuid() == 0 {
            let pw = libc::getpwnam(c"postgres".as_ptr());
            assert!(!pw.is_null(), "no postgres OS user");
            std::os::unix::fs::chown(&files.keyfile, Some((*pw).pw_uid), Some((*pw).pw_gid))
                .expect("chown the server key");
        }
    }
}

/// The harness' configuration with TLS: server certificate, `hostssl` for replication, and both roles
/// verifying the servers' certificate against the CA.
fn with_tls(certs: &Path, yaml: &str) -> String {
    let (ca, cert, key) = (certs.join("ca.pem"), certs.join("server.pem"), certs.join("server.key"));
    let verify = format!("sslmode: verify-full, sslrootcert: {}", ca.display());
    let changes = [
        ("- host replication replicator", "- hostssl replication replicator".to_owned()),
        (
            "replication: {username: replicator, password: rep-pass}",
            format!("replication: {{username: replicator, password: rep-pass, {verify}}}"),
        ),
        ("superuser: {username: postgres, password: su-pass}", {
            format!("superuser: {{username: postgres, password: su-pass, {verify}}}")
        }),
        (
            "  parameters:\n    unix_socket_directories:",
            format!(
                "  parameters:\n    ssl: 'on'\n    ssl_cert_file: {}\n    ssl_key_file: {}\n    \
                 log_connections: 'on'\n    unix_socket_directories:",
                cert.display(),
                key.display()
            ),
        ),
    ];
    changes.iter().fold(yaml.to_owned(), |text, (from, to)| {
        assert!(text.contains(from), "the harness' configuration has no {from:?}");
        text.replacen(from, to, 1)
    })
}

/// How many of node `i`'s WAL senders serve their replica over TLS.
const TLS_WALSENDERS: &str =
    "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_and_rewind_run_over_verified_tls_across_a_failover() {
    init_tracing();
    let certs = tempfile::tempdir().expect("certificate dir");
    certificates(certs.path());
    let dir = certs.path().to_owned();
    let mut cluster = AgentCluster::start_edited(3, "", Box::new(move |yaml| with_tls(&dir, yaml)));
    let all = [0, 1, 2];
    let old = cluster.settled(&all, PATIENCE).await;
    cluster.eventually(old, TLS_WALSENDERS, &["2"]).await;
    let replica = (old + 1) % 3;
    let conninfo =
        cluster.query(replica, "SELECT conninfo FROM pg_stat_wal_receiver").await.expect("conninfo");
    assert!(conninfo.concat().contains("sslmode=verify-full"), "{conninfo:?}");

    // kill -9 of the primary's agent and its postgres: the survivors stream from the new primary over TLS.
    cluster.signal_agent(old, libc::SIGKILL);
    cluster.kill_postgres(old);
    let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != old).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    assert_ne!(new, old);
    cluster.eventually(new, TLS_WALSENDERS, &["1"]).await;

    // The old primary rejoins: psql (the checkpoint check) and pg_rewind connect as the superuser over
    // TLS, then it streams over TLS.
    cluster.start_agent(old);
    cluster.streaming_replica(old, PATIENCE).await;
    cluster.eventually(new, TLS_WALSENDERS, &["2"]).await;
    let server_log =
        std::fs::read_to_string(cluster.home(new).join(format!("{}.log", cluster.nodes[new].name)))
            .expect("the new primary's server log");
    // psql names itself; pg_rewind sets no application_name
    for (program, line) in [
        ("psql", "user=postgres database=postgres application_name=psql SSL enabled"),
        ("pg_rewind", "user=postgres database=postgres SSL enabled"),
    ] {
        assert!(
            server_log.contains(line),
            "{program} did not connect over TLS:\n{server_log}\n{}",
            cluster.log(old)
        );
    }
}
