//! HAProxy in front of an [`AgentCluster`], configured as `examples/haproxy.cfg` (Patroni's layout): a
//! read-write port routed by `GET /primary`, a read-only port balanced over `GET /replica?lag=1MB`.
//!
//! HAProxy runs in the foreground (`haproxy -f cfg -db`) as a child of the test, with its config, log and
//! admin socket in the cluster's temp dir; dropping the handle kills it by PID. Server states come from
//! the stats socket (`show servers state`), read over a [`UnixStream`] (no socat) on a blocking thread.

use crate::agents::{free_port, AgentCluster};
use crate::managed::{ManagedCluster, Member};
use crate::wait_for;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The read-write backend's name in generated configs.
pub const PRIMARY_BACKEND: &str = "primary";
/// The read-only backend's name in generated configs.
pub const REPLICAS_BACKEND: &str = "replicas";

/// The `haproxy` binary: on `PATH`, else `/usr/sbin/haproxy` (Debian's, not on a non-root `PATH`).
pub fn haproxy_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file());
    let binary = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"));
    assert!(
        binary.is_file(),
        "haproxy is missing: run scripts/test.sh (which installs it) or `apt-get install -y haproxy`"
    );
    binary
}

/// The binary [`haproxy_binary`] would pick, or `None` when there is none: for callers that report it
/// rather than panic (e.g. a benchmark deciding whether it can put HAProxy in front of a cluster).
pub fn find_haproxy_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("haproxy"))
        .find(|candidate| candidate.is_file());
    Some(on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/haproxy"))).filter(|b| b.is_file())
}

/// One server's line of `show servers state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerState {
    /// The backend (`primary`, `replicas`).
    pub backend: String,
    /// The server's name (the node's name, `node1`, …).
    pub name: String,
    /// `srv_op_state`: 0 stopped (DOWN), 1 starting, 2 running (UP), 3 stopping.
    pub op_state: u8,
    /// `srv_admin_state`: 0 unless put in maintenance or drain through the admin socket.
    pub admin_state: u8,
}

impl ServerState {
    /// Whether HAProxy routes new connections to it: running and not in maintenance or drain.
    pub fn is_up(&self) -> bool {
        self.op_state == 2 && self.admin_state == 0
    }
}

/// A running HAProxy, killed when dropped.
pub struct HaProxy {
    child: Option<Child>,
    dir: PathBuf,
    /// The read-write port (`listen primary`).
    pub rw_port: u16,
    /// The read-only port (`listen replicas`).
    pub ro_port: u16,
    /// The admin socket.
    pub socket: PathBuf,
}

/// HAProxy's configuration for `cluster`, in the shape of `examples/haproxy.cfg`: `rw_port` and `ro_port`
/// on 127.0.0.1, the admin socket at `socket`, one server per node (PostgreSQL's port, checked on the REST
/// API's port).
pub fn config(cluster: &AgentCluster, rw_port: u16, ro_port: u16, socket: &Path) -> String {
    let members: Vec<Member> = cluster.members();
    config_for(&members, rw_port, ro_port, socket)
}

/// How a generated config departs from `examples/haproxy.cfg`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// The `default-server` line's settings (the example's: `inter 500ms fall 2 rise 1
    /// on-marked-down shutdown-sessions`).
    pub default_server: String,
    /// A second Runtime API on `ipv4@127.0.0.1:<port>` (`level admin`), for agents that push to it
    /// (see [`push_section`]).
    pub runtime_api_port: Option<u16>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            default_server: "inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions".into(),
            runtime_api_port: None,
        }
    }
}

/// The agents' `haproxy:` section that pushes to a Runtime API on `127.0.0.1:<port>` (see
/// [`Tuning::runtime_api_port`]), for the read-write backend.
pub fn push_section(port: u16) -> String {
    format!("haproxy:\n  runtime_api: [ipv4@127.0.0.1:{port}]\n  backend: {PRIMARY_BACKEND}\n")
}

/// [`config`] for any cluster's `members` (PostgreSQL's port, checked on the manager's REST port).
pub fn config_for(members: &[Member], rw_port: u16, ro_port: u16, socket: &Path) -> String {
    config_tuned(members, rw_port, ro_port, socket, &Tuning::default())
}

/// [`config_for`] with `tuning`.
pub fn config_tuned(
    members: &[Member],
    rw_port: u16,
    ro_port: u16,
    socket: &Path,
    tuning: &Tuning,
) -> String {
    let pushed = tuning
        .runtime_api_port
        .map(|port| format!("    stats socket ipv4@127.0.0.1:{port} level admin\n"))
        .unwrap_or_default();
    let servers: String = members
        .iter()
        .map(|n| format!("    server {} 127.0.0.1:{} check port {}\n", n.name, n.pg_port, n.api_port))
        .collect();
    format!(
        "global\n\
         \x20   stats socket {socket} mode 600 level admin\n\
         {pushed}\
         \x20   stats timeout 10s\n\
         \x20   log stdout format raw local0 info\n\
         \n\
         defaults\n\
         \x20   mode tcp\n\
         \x20   log global\n\
         \x20   option tcplog\n\
         \x20   retries 0\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 30m\n\
         \x20   timeout server 30m\n\
         \x20   timeout check 2s\n\
         \x20   default-server {default_server}\n\
         \n\
         listen {PRIMARY_BACKEND}\n\
         \x20   bind 127.0.0.1:{rw_port}\n\
         \x20   option httpchk\n\
         \x20   http-check send meth GET uri /primary\n\
         \x20   http-check expect status 200\n\
         {servers}\
         \n\
         listen {REPLICAS_BACKEND}\n\
         \x20   bind 127.0.0.1:{ro_port}\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk\n\
         \x20   http-check send meth GET uri /replica?lag=1MB\n\
         \x20   http-check expect status 200\n\
         {servers}",
        socket = socket.display(),
        default_server = tuning.default_server,
    )
}

impl HaProxy {
    /// Writes a config for `cluster` (free ports, files under `<cluster dir>/haproxy`), validates it with
    /// `haproxy -c`, starts `haproxy -f cfg -db` and waits until its admin socket answers.
    pub async fn start(cluster: &AgentCluster) -> HaProxy {
        let members: Vec<Member> = cluster.members();
        HaProxy::start_for(cluster.dir(), &members, free_port(), free_port()).await
    }

    /// [`start`](Self::start) in front of any cluster's `members`, on the given ports, with its files
    /// under `<dir>/haproxy` (e.g. the same config for every manager a benchmark compares).
    pub async fn start_for(dir: &Path, members: &[Member], rw_port: u16, ro_port: u16) -> HaProxy {
        HaProxy::start_tuned(dir, members, rw_port, ro_port, &Tuning::default()).await
    }

    /// [`start_for`](Self::start_for) with `tuning`.
    pub async fn start_tuned(
        dir: &Path,
        members: &[Member],
        rw_port: u16,
        ro_port: u16,
        tuning: &Tuning,
    ) -> HaProxy {
        let dir = dir.join("haproxy");
        std::fs::create_dir_all(&dir).expect("haproxy dir");
        let socket = dir.join("admin.sock");
        let file = dir.join("haproxy.cfg");
        let config = config_tuned(members, rw_port, ro_port, &socket, tuning);
        std::fs::write(&file, config).expect("write haproxy.cfg");

        let binary = haproxy_binary();
        let check = Command::new(&binary).arg("-c").arg("-f").arg(&file).output().expect("run haproxy -c");
        assert!(
            check.status.success(),
            "haproxy -c rejected the generated config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );

        let log = std::fs::File::create(dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new(&binary)
            .arg("-f")
            .arg(&file)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let mut haproxy = HaProxy { child: Some(child), dir, rw_port, ro_port, socket };
        let started = tokio::time::Instant::now();
        loop {
            if haproxy.command("show info").await.is_ok_and(|info| info.contains("Pid:")) {
                break;
            }
            let exited = haproxy.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "haproxy exited ({exited:?}): {}", haproxy.log());
            assert!(started.elapsed() < Duration::from_secs(10), "haproxy did not start: {}", haproxy.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        haproxy
    }

    /// HAProxy's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// HAProxy's log (its stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("haproxy.log")).unwrap_or_default()
    }

    /// Sends one runtime-API command (e.g. `show stat`) to the admin socket and returns the whole answer.
    pub async fn command(&self, command: &str) -> std::io::Result<String> {
        let (socket, command) = (self.socket.clone(), format!("{command}\n"));
        let exchange = move || -> std::io::Result<String> {
            let mut stream = UnixStream::connect(socket)?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.set_write_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(command.as_bytes())?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        };
        tokio::task::spawn_blocking(exchange).await.map_err(std::io::Error::other)?
    }

    /// The servers of `backend` (all backends when `None`), from `show servers state`.
    pub async fn servers(&self, backend: Option<&str>) -> std::io::Result<Vec<ServerState>> {
        let command = match backend {
            Some(backend) => format!("show servers state {backend}"),
            None => "show servers state".to_owned(),
        };
        parse_servers_state(&self.command(&command).await?)
    }

    /// `show stat`: one map per proxy or server line, keyed by the CSV header's column names (`pxname`,
    /// `svname`, `status`, `check_status`, `check_code`, `chkfail`, …).
    pub async fn stat(&self) -> std::io::Result<Vec<std::collections::BTreeMap<String, String>>> {
        let text = self.command("show stat").await?;
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header = lines.next().and_then(|l| l.strip_prefix("# ")).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unexpected `show stat`: {text:?}"))
        })?;
        let columns: Vec<&str> = header.split(',').collect();
        Ok(lines
            .map(|line| {
                columns.iter().zip(line.split(',')).map(|(c, v)| (c.to_string(), v.to_string())).collect()
            })
            .collect())
    }

    /// The names of the servers of `backend` that are up.
    pub async fn up_servers(&self, backend: &str) -> std::io::Result<Vec<String>> {
        let servers = self.servers(Some(backend)).await?;
        Ok(servers.into_iter().filter(ServerState::is_up).map(|s| s.name).collect())
    }

    /// Waits up to `timeout` until the servers up in `backend` are exactly `expected` (in any order).
    pub async fn wait_for_up(&self, backend: &str, expected: &[&str], timeout: Duration) {
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        let what = format!("{expected:?} to be the servers up in HAProxy's {backend}");
        wait_for(&what, timeout, || async {
            let mut up = self.up_servers(backend).await.ok()?;
            up.sort();
            (up == expected).then_some(())
        })
        .await
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        crate::kill_child(&mut self.child);
        if std::thread::panicking() {
            crate::print_tail("haproxy log (tail)", &self.log(), 40);
        }
    }
}

/// Parses `show servers state`: a version line (`1`), a `#` header naming the columns, then one
/// space-separated line per server.
pub fn parse_servers_state(text: &str) -> std::io::Result<Vec<ServerState>> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("1") {
        return Err(invalid(format!("unexpected `show servers state` answer: {text:?}")));
    }
    let header = lines.next().and_then(|l| l.strip_prefix('#')).ok_or_else(|| invalid(text.to_owned()))?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    let column = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| invalid(format!("no column {name}")))
    };
    let (be, srv, op, admin) =
        (column("be_name")?, column("srv_name")?, column("srv_op_state")?, column("srv_admin_state")?);
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let field = |i: usize| fields.get(i).copied().ok_or_else(|| invalid(line.to_owned()));
            let number = |i: usize| field(i)?.parse::<u8>().map_err(|_| invalid(line.to_owned()));
            Ok(ServerState {
                backend: field(be)?.to_owned(),
                name: field(srv)?.to_owned(),
                op_state: number(op)?,
                admin_state: number(admin)?,
            })
        })
        .collect()
}

/// When the set of servers UP in a backend changed, and to what.
pub type UpChanges = Vec<(Instant, Vec<String>)>;

/// Reads the servers UP in HAProxy's read-write backend every 20 ms until `stop` (at most `limit`), and
/// returns every change: when, and which servers were UP from then on.
pub async fn sample_up(haproxy: Arc<HaProxy>, stop: Arc<AtomicBool>, limit: Duration) -> UpChanges {
    let mut changes: UpChanges = Vec::new();
    let started = Instant::now();
    for _ in 0..limit.as_millis() / 20 + 1 {
        if stop.load(Ordering::Relaxed) || started.elapsed() >= limit {
            break;
        }
        if let Ok(mut up) = haproxy.up_servers(PRIMARY_BACKEND).await {
            up.sort();
            if changes.last().is_none_or(|(_, last)| *last != up) {
                changes.push((Instant::now(), up));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_servers_state() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight\n\
                    2 primary 1 node1 127.0.0.1 2 0 1\n2 primary 2 node2 127.0.0.1 0 0 1\n\
                    2 primary 3 node3 127.0.0.1 2 1 1\n\n";
        let servers = parse_servers_state(text).expect("parse");
        assert_eq!(servers.len(), 3);
        assert_eq!(
            servers[0],
            ServerState { backend: "primary".into(), name: "node1".into(), op_state: 2, admin_state: 0 }
        );
        let up: Vec<&str> = servers.iter().filter(|s| s.is_up()).map(|s| s.name.as_str()).collect();
        assert_eq!(up, ["node1"]);
        assert!(parse_servers_state("Unknown command\n").is_err());
    }
}
