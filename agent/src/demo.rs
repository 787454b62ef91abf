//! `vigil demo`: a local cluster of PostgreSQL (or, with `--engine mariadb`, MariaDB) nodes with their
//! agents, each agent its own process, on 127.0.0.1, until Ctrl-C; then everything is stopped and its
//! directory removed. With a CA made for the demo (in `tls/`), as a production cluster should: the
//! agents' Raft group runs over mutual TLS, and PostgreSQL's replication, pg_basebackup and pg_rewind
//! connect over TLS, checking the server's certificate.

use crate::config::{find_bin_dir, DEFAULT_PG_LIB_ROOT};
use crate::db::Engine;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of `vigil demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Node i uses database port BASE+i, REST port BASE+100+i and Raft port BASE+200+i (default: 15432
    /// for PostgreSQL, 13306 for MariaDB).
    #[arg(long)]
    base_port: Option<u16>,
    /// The database the nodes run (MariaDB: Debian's `mariadb-server` must be installed).
    #[arg(long, value_enum, default_value = "postgresql")]
    engine: Engine,
}

/// The superuser's password in the demo.
const PASSWORD: &str = "vigil-demo";

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> Result<(), String> {
    let (section, os_user, base) = match args.engine {
        Engine::Postgresql => (Section::Postgresql(postgres_bin_dir()?), "postgres", 15432),
        Engine::Mariadb => (Section::Mysql, "mysql", 13306),
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let os_user = (unsafe { libc::geteuid() } == 0).then_some(os_user);
    let base = args.base_port.unwrap_or(base);
    let nodes: Vec<Node> = (0..args.nodes).map(|i| Node::new(base, i)).collect::<Result<_, _>>()?;
    check_ports_free(&nodes)?;
    let dir = fresh_dir(&std::env::temp_dir())?;
    let mut cluster = Cluster { dir: dir.clone(), children: Vec::new() };
    make_certificates(&dir, &nodes, os_user)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the vigil binary: {e}"))?;
    for node in &nodes {
        let config = node.config(&nodes, &dir, &section, os_user);
        let file = dir.join(format!("{}.yml", node.name));
        write_private(&file, &config)?;
        let log = std::fs::File::create(dir.join(format!("{}.log", node.name))).map_err(|e| e.to_string())?;
        let child = Command::new(&exe)
            .arg("agent")
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the agent of {}: {e}", node.name))?;
        cluster.children.push(child);
    }
    println!("Starting {} nodes in {} (logs: <node>.log there)...", nodes.len(), dir.display());
    let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    wait_for_cluster(&http, &nodes).await?;
    println!("{}", summary(&http, &nodes, args.engine).await);
    println!("Press Ctrl-C to stop the cluster and remove {}.", dir.display());
    // SIGTERM (a `timeout`, a service manager) stops it as Ctrl-C does, cleaning up.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped.map_err(|e| e.to_string())?,
        _ = term.recv() => {}
    }
    println!("Stopping...");
    drop(cluster);
    Ok(())
}

/// One demo node's name and ports.
struct Node {
    name: String,
    db_port: u16,
    api_port: u16,
    raft_port: u16,
}

impl Node {
    fn new(base: u16, i: u16) -> Result<Node, String> {
        let port = |offset: u16| {
            base.checked_add(offset + i)
                .ok_or(format!("--base-port {base} leaves no room for node {}", i + 1))
        };
        Ok(Node {
            name: format!("node{}", i + 1),
            db_port: port(0)?,
            api_port: port(100)?,
            raft_port: port(200)?,
        })
    }

    fn config(&self, all: &[Node], dir: &Path, section: &Section, os_user: Option<&str>) -> String {
        let partners: Vec<String> = all
            .iter()
            .filter(|n| n.name != self.name)
            .map(|n| format!("127.0.0.1:{}", n.raft_port))
            .collect();
        let home = dir.join(&self.name);
        let mut yaml = format!(
            "scope: demo\nname: {name}\nrestapi:\n  listen: 127.0.0.1:{api}\n  connect_address: 127.0.0.1:{api}\n\
             raft:\n  data_dir: {home}/raft\n  self_addr: 127.0.0.1:{raft}\n  partner_addrs: [{partners}]\n\
             \x20 certfile: {tls}/{name}.pem\n  keyfile: {tls}/{name}.key\n  cafile: {tls}/ca.pem\n",
            name = self.name,
            api = self.api_port,
            raft = self.raft_port,
            partners = partners.join(", "),
            home = home.display(),
            tls = dir.join("tls").display(),
        );
        match section {
            Section::Postgresql(bin_dir) => yaml.push_str(&format!(
                "bootstrap:\n  dcs:\n    postgresql:\n      use_pg_rewind: true\n  initdb: [{{encoding: UTF8}}, data-checksums]\n\
                 \x20 pg_hba:\n    - hostssl replication replicator 127.0.0.1/32 scram-sha-256\n\
                 \x20   - host all all 127.0.0.1/32 scram-sha-256\n\
                 postgresql:\n  listen: 127.0.0.1:{db}\n  connect_address: 127.0.0.1:{db}\n  data_dir: {home}/pg\n\
                 \x20 bin_dir: {bin}\n  pgpass: {home}/pgpass\n  authentication:\n\
                 \x20   replication: {{username: replicator, password: rep-pass, {verify}}}\n\
                 \x20   superuser: {{username: postgres, password: {PASSWORD}, {verify}}}\n\
                 \x20 parameters:\n    unix_socket_directories: {home}/sock\n\
                 \x20   ssl: 'on'\n    ssl_cert_file: {tls}/{name}.pem\n    ssl_key_file: {tls}/{name}.key\n",
                verify = format_args!("sslmode: verify-full, sslrootcert: {}/ca.pem", dir.join("tls").display()),
                name = self.name,
                db = self.db_port,
                home = home.display(),
                tls = dir.join("tls").display(),
                bin = bin_dir.display(),
            )),
            Section::Mysql => yaml.push_str(&format!(
                "bootstrap:\n  dcs:\n    maximum_lag_on_failover: 1000\n\
                 mysql:\n  listen: 127.0.0.1:{db}\n  connect_address: 127.0.0.1:{db}\n  data_dir: {home}/mysql\n\
                 \x20 authentication:\n    superuser: {{username: vigil, password: {PASSWORD}}}\n\
                 \x20   replication: {{username: replicator, password: rep-pass}}\n\
                 \x20 parameters: {{innodb_buffer_pool_size: 32M, innodb_log_file_size: 16M}}\n",
                db = self.db_port,
                home = home.display(),
            )),
        }
        if let Some(user) = os_user {
            let _ = writeln!(yaml, "  os_user: {user}");
        }
        yaml
    }
}

/// The database section of the demo's nodes.
enum Section {
    /// PostgreSQL, its programs in this directory.
    Postgresql(PathBuf),
    /// MariaDB, its programs found on PATH and in /usr/sbin.
    Mysql,
}

/// A throwaway CA in `dir/tls` and a certificate for each node (127.0.0.1), used by its agent's Raft port
/// and by its PostgreSQL server. A key belongs to `os_user` (which PostgreSQL runs as), if given: libpq and
/// PostgreSQL refuse a key another user owns; root, the agent, reads it anyway.
fn make_certificates(dir: &Path, nodes: &[Node], os_user: Option<&str>) -> Result<(), String> {
    let tls = dir.join("tls");
    std::fs::create_dir(&tls).map_err(|e| format!("{}: {e}", tls.display()))?;
    let owner =
        os_user.map(crate::os_user::OsUser::lookup).transpose().map_err(|e| format!("{os_user:?}: {e}"))?;
    let ca = vigil_api::pki::Authority::new("vigil demo CA").map_err(|e| format!("demo CA: {e}"))?;
    for node in nodes {
        let files = ca
            .write(&tls, &node.name, &["127.0.0.1", "localhost"])
            .map_err(|e| format!("{}: certificate of {}: {e}", tls.display(), node.name))?;
        if let Some(owner) = &owner {
            // A new file in a directory made for this demo, which only its creator can write to.
            std::os::unix::fs::chown(&files.keyfile, Some(owner.uid), Some(owner.gid))
                .map_err(|e| format!("{}: {e}", files.keyfile.display()))?;
        }
    }
    Ok(())
}

/// The agents' processes and the demo directory, stopped and removed when dropped.
struct Cluster {
    dir: PathBuf,
    children: Vec<Child>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in &self.children {
            // SAFETY: kill(2) on the PID of a child this process started and has not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        for child in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("vigil: could not remove {}: {e}", self.dir.display());
        }
    }
}

fn postgres_bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = find_bin_dir(Path::new(DEFAULT_PG_LIB_ROOT)) {
        return Ok(dir);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|dir| dir.join("pg_ctl").is_file() && dir.join("initdb").is_file()).ok_or_else(
        || {
            "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH): install them \
             with `apt-get install -y postgresql`"
                .to_owned()
        },
    )
}

fn check_ports_free(nodes: &[Node]) -> Result<(), String> {
    let ports = nodes.iter().flat_map(|n| [n.db_port, n.api_port, n.raft_port]);
    let busy: Vec<String> =
        ports.filter(|p| TcpListener::bind(("127.0.0.1", *p)).is_err()).map(|p| p.to_string()).collect();
    if busy.is_empty() {
        Ok(())
    } else {
        Err(format!("ports already in use on 127.0.0.1: {}; pick others with --base-port", busy.join(", ")))
    }
}

/// A new directory under `parent` with an unpredictable name (never one that already exists), mode 0755
/// so that the postgres OS user can reach the nodes' homes when the demo runs as root.
fn fresh_dir(parent: &Path) -> Result<PathBuf, String> {
    let dir = tempfile::Builder::new()
        .prefix("vigil-demo-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?
        .keep();
    set_mode(&dir, 0o755)?;
    Ok(dir)
}

/// Writes `text` to the new file `path`, mode 0600 (the configurations hold passwords); an existing
/// file or symlink there is an error.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Waits until one node is a primary and every other node a running replica.
async fn wait_for_cluster(http: &reqwest::Client, nodes: &[Node]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let mut roles = Vec::new();
        for node in nodes {
            let url = format!("http://127.0.0.1:{}/patroni", node.api_port);
            let status = vigil_api::client::status(http, &url, None, Duration::from_secs(1)).await;
            roles.push(status.ok().filter(|s| s.state == "running").map(|s| s.role));
        }
        let primaries = roles.iter().filter(|r| r.as_deref() == Some("primary")).count();
        let replicas = roles.iter().filter(|r| r.as_deref() == Some("replica")).count();
        if primaries == 1 && replicas == nodes.len() - 1 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err("the cluster did not come up within 90 s: see the logs in the demo directory".to_owned())
}

/// How to connect for writes, the REST addresses and the member table.
async fn summary(http: &reqwest::Client, nodes: &[Node], engine: Engine) -> String {
    let hosts: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.db_port)).collect();
    let mut out = match engine {
        Engine::Postgresql => format!(
            "\nWrites (any client, follows failovers):\n  postgresql://postgres:{PASSWORD}@{}/postgres?target_session_attrs=read-write\n\nREST API:\n",
            hosts.join(",")
        ),
        Engine::Mariadb => format!(
            "\nWrites: to the primary (the member whose /primary answers 200; HAProxy's \
             examples/haproxy-mariadb.cfg routes to it), e.g.\n  mariadb -h 127.0.0.1 -P <its port> -u vigil -p{PASSWORD}\n\
             Nodes: {}\n\nREST API:\n",
            hosts.join(", ")
        ),
    };
    for node in nodes {
        let _ = writeln!(out, "  {}: http://127.0.0.1:{}/patroni", node.name, node.api_port);
    }
    let _ =
        writeln!(out, "\n  {:<8} {:<16} {:<13} {:<9} {:>4}  LSN", "Member", "Host", "Role", "State", "TL");
    for node in nodes {
        let url = format!("http://127.0.0.1:{}/patroni", node.api_port);
        let status = vigil_api::client::status(http, &url, None, Duration::from_secs(2)).await;
        let (role, state, tl, lsn) = match status {
            Ok(s) => {
                let lsn = s.vigil.position.map(|p| p.to_string()).unwrap_or_default();
                (s.role, s.state, s.timeline.map(|t| t.to_string()).unwrap_or_default(), lsn)
            }
            Err(_) => ("?".into(), "unreachable".into(), String::new(), String::new()),
        };
        let host = format!("127.0.0.1:{}", node.db_port);
        let _ = writeln!(out, "  {:<8} {:<16} {:<13} {:<9} {:>4}  {}", node.name, host, role, state, tl, lsn);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn configs_go_to_a_fresh_directory_readable_by_their_owner_only() {
        let parent = tempfile::tempdir().expect("parent");
        // Issue 13: the demo used `vigil-demo-<pid>`, reusing whatever was planted there.
        let planted = parent.path().join(format!("vigil-demo-{}", std::process::id()));
        std::fs::create_dir(&planted).expect("planted");
        let (one, two) = (fresh_dir(parent.path()).expect("dir"), fresh_dir(parent.path()).expect("dir"));
        assert!(one != two && one != planted && two != planted, "{one:?} {two:?}");
        assert_eq!(std::fs::read_dir(&planted).expect("planted").count(), 0);
        assert_eq!((mode(&one), one.parent()), (0o755, Some(parent.path())));

        let file = one.join("node1.yml");
        write_private(&file, "password: x\n").expect("written");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "password: x\n");
        let err = write_private(&file, "again").expect_err("an existing file is not overwritten");
        assert!(err.starts_with(&file.display().to_string()), "{err}");
        let link = one.join("node2.yml");
        std::os::unix::fs::symlink(parent.path().join("target"), &link).expect("symlink");
        write_private(&link, "x").expect_err("a symlink is not followed");
        assert!(!parent.path().join("target").exists());
    }
}
