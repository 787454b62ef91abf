//! A cluster of real `vigil agent` processes managing real PostgreSQL servers on 127.0.0.1.
//!
//! Each node gets its own ports and directory under one temp dir. The agents' Raft group runs over mutual
//! TLS, with certificates from a CA made for the cluster (in `tls/`). When the test process runs as root
//! (as here and in CI), PostgreSQL runs as the `postgres` OS user. Dropping the cluster kills every agent it
//! started (by PID) and stops every PostgreSQL server in its directories, also when a test fails.

use crate::{strip_ansi, wait_for};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use tokio_postgres::NoTls;

/// PostgreSQL 15's binaries.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The superuser's password in test clusters.
pub const PASSWORD: &str = "su-pass";

/// One node: its name, ports and agent process.
pub struct AgentNode {
    /// The member name (`node1`, …).
    pub name: String,
    /// PostgreSQL's port.
    pub pg_port: u16,
    /// The REST API's port.
    pub api_port: u16,
    /// The Raft port.
    pub raft_port: u16,
    /// Extra YAML appended to the node's config (e.g. tags).
    pub extra_yaml: String,
    /// The address its agent and PostgreSQL listen on (`127.0.0.1` unless [placed](Placement)).
    pub host: String,
    /// A witness: its configuration has no `postgresql` section.
    pub witness: bool,
    /// The command prefix its agent runs under (e.g. `ip netns exec NS`); empty: none.
    wrapper: Vec<String>,
    child: Option<Child>,
}

/// Where a node of [`AgentCluster::start_placed`] runs: its address, ports and a command prefix that puts
/// its agent (and so its PostgreSQL) there, e.g. in a network namespace.
#[derive(Clone, Debug)]
pub struct Placement {
    /// The address the agent and PostgreSQL listen on and announce.
    pub host: String,
    /// PostgreSQL's port.
    pub pg_port: u16,
    /// The REST API's port.
    pub api_port: u16,
    /// The Raft port.
    pub raft_port: u16,
    /// The command prefix of the agent (`ip netns exec NS`); empty: none.
    pub wrapper: Vec<String>,
}

impl Placement {
    /// One node in each node namespace of `net`, at its address, every node on the same ports.
    pub fn in_namespaces(
        net: &crate::netns::Topology,
        pg_port: u16,
        api_port: u16,
        raft_port: u16,
    ) -> Vec<Placement> {
        (0..net.nodes())
            .map(|i| Placement {
                host: net.node_addr(i),
                pg_port,
                api_port,
                raft_port,
                wrapper: crate::netns::Topology::exec_prefix(&net.node_ns(i)),
            })
            .collect()
    }
}

/// A running cluster of agents.
pub struct AgentCluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    /// The nodes, in order.
    pub nodes: Vec<AgentNode>,
    http: reqwest::Client,
    /// Extra YAML inside `bootstrap.dcs` (lines indented by 4 spaces), for every node.
    extra_dcs_yaml: String,
    /// The network `pg_hba.conf` admits clients and replicas from.
    hba_network: String,
    /// Applied to every node's configuration text before it is written.
    edit: ConfigEdit,
    /// The CA of the nodes' Raft certificates, for nodes added later.
    ca: vigil_api::pki::Authority,
}

/// A change to every node's configuration text (YAML in, YAML out), for keys nested in sections the
/// harness writes itself.
pub type ConfigEdit = Box<dyn Fn(&str) -> String + Send + Sync>;

/// `(PostgreSQL, REST API, Raft)` ports for `size` nodes, free when picked.
fn fresh_ports(size: usize) -> Vec<(u16, u16, u16)> {
    (0..size).map(|_| (free_port(), free_port(), free_port())).collect()
}

/// Nodes on [`LOCALHOST`] at `ports` (`(PostgreSQL, REST API, Raft)` each).
fn local(ports: &[(u16, u16, u16)]) -> Vec<Placement> {
    ports
        .iter()
        .map(|&(pg_port, api_port, raft_port)| Placement {
            host: LOCALHOST.to_owned(),
            pg_port,
            api_port,
            raft_port,
            wrapper: Vec::new(),
        })
        .collect()
}

/// The `vigil` binary next to the running test's own directory (`target/<profile>/vigil`), which
/// `cargo test --workspace` / `cargo nextest run --workspace` build.
pub fn vigil_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let binary = profile_dir.join("vigil");
    assert!(binary.is_file(), "{} is missing: run the tests with --workspace", binary.display());
    binary
}

impl AgentCluster {
    /// Prepares `size` nodes (`extra(i)` is YAML appended to node i's config) and starts their agents.
    pub fn start(size: usize, extra: impl Fn(usize) -> String) -> AgentCluster {
        AgentCluster::start_with(size, extra, "")
    }

    /// [`start`](Self::start) with `extra_dcs` added to every node's `bootstrap.dcs` section: YAML
    /// mapping lines at the section's level, e.g. `"maximum_lag_on_failover: 1024\nttl: 3"` (each line is
    /// indented to fit).
    pub fn start_with(size: usize, extra: impl Fn(usize) -> String, extra_dcs: &str) -> AgentCluster {
        AgentCluster::start_with_binary(vigil_binary(), size, extra, extra_dcs)
    }

    /// [`start_with`](Self::start_with) running `binary` as the agent (e.g. the release `vigil` next to a
    /// bench binary, which [`vigil_binary`] does not find).
    pub fn start_with_binary(
        binary: PathBuf,
        size: usize,
        extra: impl Fn(usize) -> String,
        extra_dcs: &str,
    ) -> AgentCluster {
        AgentCluster::start_on_ports(binary, &fresh_ports(size), extra, extra_dcs)
    }

    /// [`start_with_binary`](Self::start_with_binary) on given ports: `(PostgreSQL, REST API, Raft)` per
    /// node (e.g. the same ports for every cluster of a benchmark).
    pub fn start_on_ports(
        binary: PathBuf,
        ports: &[(u16, u16, u16)],
        extra: impl Fn(usize) -> String,
        extra_dcs: &str,
    ) -> AgentCluster {
        let (placements, hba) = (local(ports), format!("{LOCALHOST}/32"));
        AgentCluster::prepare(binary, &placements, &hba, &extra, extra_dcs, Box::new(str::to_owned)).started()
    }

    /// [`start_with`](Self::start_with) with every node's configuration changed by `edit` (e.g. a replacement of the
    /// `pg_hba` lines or of `postgresql.authentication`'s roles).
    pub fn start_edited(size: usize, extra_dcs: &str, edit: ConfigEdit) -> AgentCluster {
        let (placements, hba) = (local(&fresh_ports(size)), format!("{LOCALHOST}/32"));
        AgentCluster::prepare(vigil_binary(), &placements, &hba, &|_| String::new(), extra_dcs, edit)
            .started()
    }

    /// Agents running `binary` with every node at its [`Placement`], `pg_hba.conf` admitting
    /// `hba_network` (e.g. `10.77.0.0/24`) and every node's configuration changed by `edit` (e.g.
    /// [`crate::mariadb::with_mysql_section`]).
    pub fn start_placed(
        binary: PathBuf,
        placements: &[Placement],
        hba_network: &str,
        edit: ConfigEdit,
    ) -> AgentCluster {
        AgentCluster::prepare(binary, placements, hba_network, &|_| String::new(), "", edit).started()
    }

    /// Starts every agent.
    fn started(mut self) -> AgentCluster {
        for i in 0..self.nodes.len() {
            self.start_agent(i);
        }
        self
    }

    /// A cluster of nodes at `placements`, none started yet (see [`started`](Self::started)).
    fn prepare(
        binary: PathBuf,
        placements: &[Placement],
        hba_network: &str,
        extra: &dyn Fn(usize) -> String,
        extra_dcs: &str,
        edit: ConfigEdit,
    ) -> AgentCluster {
        let dir = tempfile::Builder::new().prefix("vigil-it-").tempdir().expect("temp dir");
        chmod(dir.path(), 0o755);
        let tls = dir.path().join("tls");
        std::fs::create_dir(&tls).expect("tls dir");
        let ca = vigil_api::pki::Authority::new("vigil test cluster CA").expect("CA");
        for (i, place) in placements.iter().enumerate() {
            ca.write(&tls, &format!("node{}", i + 1), &[&place.host]).expect("node certificate");
        }
        let nodes = placements
            .iter()
            .enumerate()
            .map(|(i, place)| AgentNode {
                name: format!("node{}", i + 1),
                pg_port: place.pg_port,
                api_port: place.api_port,
                raft_port: place.raft_port,
                extra_yaml: extra(i),
                host: place.host.clone(),
                witness: false,
                wrapper: place.wrapper.clone(),
                child: None,
            })
            .collect();
        let http = reqwest::Client::builder().no_proxy().build().expect("http client");
        let extra_dcs_yaml: String = extra_dcs.lines().map(|line| format!("    {line}\n")).collect();
        let hba_network = hba_network.to_owned();
        AgentCluster { dir, binary, nodes, http, extra_dcs_yaml, hba_network, edit, ca }
    }

    /// `data` PostgreSQL nodes and a witness (the last node, an agent without a database), started.
    pub fn start_witnessed(data: usize) -> AgentCluster {
        let placements = local(&fresh_ports(data + 1));
        let hba = format!("{LOCALHOST}/32");
        let no_edit: ConfigEdit = Box::new(str::to_owned);
        let mut cluster =
            AgentCluster::prepare(vigil_binary(), &placements, &hba, &|_| String::new(), "", no_edit);
        cluster.nodes[data].witness = true;
        cluster.started()
    }

    /// Adds node `node<N+1>` on 127.0.0.1 with fresh ports, its Raft certificate and `extra_yaml`; its
    /// agent is not started. Its partners are every other node, and it is theirs when they next start:
    /// a new server whose partners already formed a group joins it.
    pub fn add_node(&mut self, extra_yaml: &str) -> usize {
        let (pg_port, api_port, raft_port) = fresh_ports(1)[0];
        let name = format!("node{}", self.nodes.len() + 1);
        let tls = self.dir.path().join("tls");
        self.ca.write(&tls, &name, &[LOCALHOST]).expect("node certificate");
        self.nodes.push(AgentNode {
            name,
            pg_port,
            api_port,
            raft_port,
            extra_yaml: extra_yaml.to_owned(),
            host: LOCALHOST.to_owned(),
            witness: false,
            wrapper: Vec::new(),
            child: None,
        });
        self.nodes.len() - 1
    }

    /// [`start`](Self::start), started afresh with new ports (up to 3 attempts) when an agent exits while
    /// starting: a port that `free_port` picked can be taken by another process (e.g. a concurrently
    /// running test's cluster) before the agent binds it, and the agent then exits with "Address already
    /// in use". Only the agents' own listeners are covered: a clash on a PostgreSQL port shows later.
    pub async fn start_checked(size: usize, extra: impl Fn(usize) -> String) -> AgentCluster {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            let mut cluster = AgentCluster::start(size, &extra);
            match cluster.agents_started(Duration::from_secs(30)).await {
                Ok(()) => return cluster,
                Err(why) if attempt < ATTEMPTS => eprintln!("attempt {attempt} to start the cluster: {why}"),
                Err(why) => panic!("{ATTEMPTS} attempts to start the cluster failed, the last one: {why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Waits up to `timeout` until every agent has bound its listeners and started its HA loop (its log
    /// says "agent started") and is still running; `Err` names the first agent that exited, or did not
    /// start in time.
    pub async fn agents_started(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = None;
            for i in 0..self.nodes.len() {
                let name = self.nodes[i].name.clone();
                let Some(child) = self.nodes[i].child.as_mut() else {
                    return Err(format!("{name}'s agent is not running"));
                };
                if let Ok(Some(status)) = child.try_wait() {
                    // Reaped: its PID must not be signalled any more.
                    self.nodes[i].child = None;
                    let log = self.log(i);
                    let last = log.lines().last().unwrap_or_default();
                    return Err(format!("{name}'s agent exited with {status}: {last}"));
                }
                if waiting.is_none() && !self.log(i).contains("agent started") {
                    waiting = Some(i);
                }
            }
            let Some(i) = waiting else { return Ok(()) };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{}'s agent did not start within {timeout:?}", self.nodes[i].name));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node called `name`'s index.
    pub fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// The cluster's temp directory (removed when the cluster is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The directory of node `i`.
    pub fn home(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.nodes[i].name)
    }

    /// The configuration file of node `i`, written if needed.
    pub fn config_file(&self, i: usize) -> PathBuf {
        let node = &self.nodes[i];
        let home = self.home(i);
        std::fs::create_dir_all(&home).expect("node dir");
        chmod(&home, 0o755);
        let partners: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.name != node.name)
            .map(|n| format!("{}:{}", n.host, n.raft_port))
            .collect();
        let root = unsafe { libc::geteuid() } == 0;
        let os_user = if root { "\n  os_user: postgres" } else { "" };
        let postgresql = if node.witness {
            String::new()
        } else {
            format!(
                "postgresql:\n  listen: {host}:{pg}\n  connect_address: {host}:{pg}\n  data_dir: {home}/pg\n\
                 \x20 bin_dir: {PG_BIN}\n  pgpass: {home}/pgpass\n  authentication:\n\
                 \x20   replication: {{username: replicator, password: rep-pass}}\n\
                 \x20   superuser: {{username: postgres, password: {PASSWORD}}}\n\
                 \x20 parameters:\n    unix_socket_directories: {home}/sock{os_user}\n",
                host = node.host,
                pg = node.pg_port,
                home = home.display(),
            )
        };
        // `restapi.insecure`: placed nodes listen on 10.77.x addresses, inside this test's own network
        // namespaces, where only the test reaches them; the API stays open as the tests call it.
        let yaml = format!(
            "scope: it\nname: {name}\nrestapi:\n  listen: {host}:{api}\n  connect_address: {host}:{api}\n\
             \x20 insecure: true\n\
             raft:\n  data_dir: {home}/raft\n  self_addr: {host}:{raft}\n  partner_addrs: [{partners}]\n\
             \x20 certfile: {tls}/{name}.pem\n  keyfile: {tls}/{name}.key\n  cafile: {tls}/ca.pem\n\
             bootstrap:\n  dcs:\n{dcs}    postgresql:\n      use_pg_rewind: true\n      parameters: {{fsync: 'off'}}\n\
             \x20 initdb: [{{encoding: UTF8}}, data-checksums]\n  pg_hba:\n\
             \x20   - host replication replicator {hba} scram-sha-256\n\
             \x20   - host all all {hba} scram-sha-256\n{postgresql}{extra}",
            name = node.name,
            host = node.host,
            hba = self.hba_network,
            api = node.api_port,
            raft = node.raft_port,
            partners = partners.join(", "),
            home = home.display(),
            tls = self.dir.path().join("tls").display(),
            extra = node.extra_yaml,
            dcs = self.extra_dcs_yaml,
        );
        let file = home.join("vigil.yml");
        std::fs::write(&file, (self.edit)(&yaml)).expect("write config");
        file
    }

    /// Starts (or restarts) node `i`'s agent.
    pub fn start_agent(&mut self, i: usize) {
        // One agent per node: one still running (two faults of a node, each healed by a start) is replaced,
        // not left behind untracked.
        self.signal_agent(i, libc::SIGKILL);
        let file = self.config_file(i);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.home(i).join("agent.log"))
            .expect("agent log");
        let mut command = match self.nodes[i].wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let child = command
            .args(["agent", "-c"])
            .arg(&file)
            .env("VIGIL_LOG", "info,vigil_dcs=info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start agent");
        self.nodes[i].child = Some(child);
    }

    /// Sends `signal` to node `i`'s agent; with SIGKILL, also reaps it.
    pub fn signal_agent(&mut self, i: usize, signal: libc::c_int) {
        let Some(child) = self.nodes[i].child.as_mut() else { return };
        // SAFETY: kill(2) on the PID of a child this process started and has not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        if signal == libc::SIGKILL {
            let _ = child.wait();
            self.nodes[i].child = None;
        }
    }

    /// Waits up to `timeout` for node `i`'s agent to exit; true when it did.
    pub async fn agent_exited(&mut self, i: usize, timeout: Duration) -> bool {
        self.agent_exit_status(i, timeout).await.is_some()
    }

    /// Waits up to `timeout` for node `i`'s agent to exit; its exit status when it did.
    pub async fn agent_exit_status(
        &mut self,
        i: usize,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let child = self.nodes[i].child.as_mut().expect("agent running");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.nodes[i].child = None;
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The PID of node `i`'s agent, while it runs.
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Sends `signal` to process `pid` (a PostgreSQL child process of one of this cluster's servers, e.g.
    /// the WAL receiver found in `pg_stat_wal_receiver`); false when kill(2) failed.
    pub fn signal_pid(&self, pid: libc::pid_t, signal: libc::c_int) -> bool {
        // SAFETY: kill(2) has no memory-safety preconditions; callers pass PIDs of this cluster's servers.
        unsafe { libc::kill(pid, signal) == 0 }
    }

    /// Stops process `pid` (or, with `-pid`, the process group it leads) with SIGSTOP until the guard is
    /// dropped, also when the test fails.
    pub fn freeze(&self, pid: libc::pid_t) -> Frozen<'_> {
        assert!(self.signal_pid(pid, libc::SIGSTOP), "SIGSTOP {pid}");
        Frozen { cluster: self, pid }
    }

    /// Waits (up to `timeout`) until node `i` has a WAL receiver, and returns its PID.
    pub async fn wal_receiver_pid(&self, i: usize, timeout: Duration) -> libc::pid_t {
        let what = format!("{}'s WAL receiver pid", self.nodes[i].name);
        wait_for(&what, timeout, || async {
            let rows = self.query(i, "SELECT pid FROM pg_stat_wal_receiver").await.ok()?;
            rows.first()?.parse::<libc::pid_t>().ok()
        })
        .await
    }

    /// The PID of node `i`'s postmaster, from `postmaster.pid`.
    pub fn postmaster_pid(&self, i: usize) -> Option<libc::pid_t> {
        let text = std::fs::read_to_string(self.home(i).join("pg/postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// The PID of node `i`'s lifeline watcher, from its agent's log (the last one it started).
    pub fn lifeline_pid(&self, i: usize) -> Option<libc::pid_t> {
        let log = self.plain_log(i);
        let line = log.lines().rev().find(|l| l.contains("lifeline armed: the database stops"))?;
        line.split_whitespace().find_map(|w| w.strip_prefix("pid="))?.parse().ok()
    }

    /// The PID of node `i`'s `mariadbd`, from its pid file (MariaDB clusters).
    pub fn mariadbd_pid(&self, i: usize) -> Option<libc::pid_t> {
        std::fs::read_to_string(self.home(i).join("mysql/mysqld.pid")).ok()?.trim().parse().ok()
    }

    /// kill -9 of node `i`'s postmaster.
    pub fn kill_postgres(&self, i: usize) {
        kill(self.postmaster_pid(i));
    }

    /// The PID of node `i`'s database server, whichever the engine: its postmaster, else its `mariadbd`.
    pub fn server_pid(&self, i: usize) -> Option<libc::pid_t> {
        self.postmaster_pid(i).or_else(|| self.mariadbd_pid(i))
    }

    /// kill -9 of node `i`'s database server ([`server_pid`](Self::server_pid)).
    pub fn kill_server(&self, i: usize) {
        kill(self.server_pid(i));
    }

    /// `GET` a REST path of node `i`: the status code, or `None` when it did not answer.
    pub async fn rest(&self, i: usize, path: &str) -> Option<(u16, serde_json::Value)> {
        let url = format!("http://{}:{}{path}", self.nodes[i].host, self.nodes[i].api_port);
        let response = self.http.get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
        let code = response.status().as_u16();
        Some((code, response.json().await.unwrap_or_default()))
    }

    /// [`rest`](Self::rest) with its own `timeout` (e.g. short, for an agent that may be stopped).
    pub async fn rest_within(
        &self,
        i: usize,
        path: &str,
        timeout: Duration,
    ) -> Option<(u16, serde_json::Value)> {
        let url = format!("http://{}:{}{path}", self.nodes[i].host, self.nodes[i].api_port);
        let response = self.http.get(url).timeout(timeout).send().await.ok()?;
        let code = response.status().as_u16();
        Some((code, response.json().await.unwrap_or_default()))
    }

    /// Waits until exactly one node answers 200 on `/primary`, and returns its index.
    pub async fn primary(&self, timeout: Duration) -> usize {
        wait_for("exactly one primary", timeout, || async {
            let mut primaries = Vec::new();
            for i in 0..self.nodes.len() {
                if self.rest(i, "/primary").await.is_some_and(|(code, _)| code == 200) {
                    primaries.push(i);
                }
            }
            (primaries.len() == 1).then(|| primaries[0])
        })
        .await
    }

    /// Waits for a primary among `nodes` and every other node of `nodes` streaming from it; returns the
    /// primary.
    pub async fn settled(&self, nodes: &[usize], timeout: Duration) -> usize {
        let primary = self.primary(timeout).await;
        for r in nodes.iter().filter(|r| **r != primary) {
            self.streaming_replica(*r, timeout).await;
        }
        primary
    }

    /// Waits until node `i`'s `/patroni` says its commits are replicated as `state` (`async`, `sync`,
    /// `relaxed`, `blocked`).
    pub async fn sync_state(&self, i: usize, state: &str, timeout: Duration) {
        wait_for(&format!("sync_state {state} on {}", self.nodes[i].name), timeout, || async {
            let (_, status) = self.rest(i, "/patroni").await?;
            (status["vigil"]["sync_state"] == state).then_some(())
        })
        .await;
    }

    /// Sends `method path` with a JSON `body` to node `i`'s REST API; returns the status and the body.
    pub async fn send(&self, i: usize, method: reqwest::Method, path: &str, body: &str) -> (u16, String) {
        let url = format!("http://{}:{}{path}", self.nodes[i].host, self.nodes[i].api_port);
        let response = self
            .http
            .request(method, url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {}: {e}", self.nodes[i].name));
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    }

    /// Waits until node `i` is a replica whose WAL receiver streams.
    pub async fn streaming_replica(&self, i: usize, timeout: Duration) {
        wait_for(&format!("{} to stream as a replica", self.nodes[i].name), timeout, || async {
            let (_, status) = self.rest(i, "/patroni").await?;
            (status["role"] == "replica" && status["replication_state"] == "streaming").then_some(())
        })
        .await
    }

    /// A superuser connection to node `i`'s PostgreSQL over TCP.
    pub async fn connect(&self, i: usize) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let conn = format!(
            "host={} port={} user=postgres password={PASSWORD} dbname=postgres connect_timeout=2",
            self.nodes[i].host, self.nodes[i].pg_port
        );
        let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs `sql` on node `i` and returns the first column of every row, as text.
    pub async fn query(&self, i: usize, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
        let client = self.connect(i).await?;
        Ok(crate::first_column(&client.simple_query(sql).await?))
    }

    /// Runs the write `sql` on node `primary`, then waits (up to a minute) until the primary publishes a
    /// position (`GET /patroni`, the one it writes to the store's `status` in the same cycle) at least as
    /// far as the write went; returns that position.
    pub async fn write_published(&self, primary: usize, sql: &str) -> u64 {
        self.query(primary, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        let lsn =
            self.query(primary, "SELECT pg_current_wal_lsn() - '0/0'").await.expect("the write position");
        let written: u64 = lsn[0].parse().expect("an integer position");
        wait_for("the primary to publish its new position", Duration::from_secs(60), || async {
            let (_, status) = self.rest(primary, "/patroni").await?;
            status["xlog"]["location"].as_u64().filter(|p| *p >= written)
        })
        .await;
        written
    }

    /// Waits (up to a minute) until `sql` returns `expected` on node `i`.
    pub async fn eventually(&self, i: usize, sql: &str, expected: &[&str]) {
        let what = format!("{sql:?} to return {expected:?} on {}", self.nodes[i].name);
        wait_for(&what, Duration::from_secs(60), || async {
            let rows = self.query(i, sql).await.ok()?;
            (rows == expected).then_some(())
        })
        .await;
    }

    /// Waits until every node of `nodes` but `primary` has replayed the creation of table `table`.
    /// Replication is asynchronous: a test that kills the primary right after creating a table waits
    /// for this first, or the new primary may not have it.
    pub async fn replicated_table(&self, primary: usize, nodes: &[usize], table: &str) {
        let sql = format!("SELECT to_regclass('{table}') IS NOT NULL");
        for r in nodes.iter().filter(|r| **r != primary) {
            self.eventually(*r, &sql, &["t"]).await;
        }
    }

    /// The agent log of node `i` (for assertions and failure messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.home(i).join("agent.log")).unwrap_or_default()
    }

    /// [`log`](Self::log) without the ANSI colour codes the agents write (for messages people read).
    pub fn plain_log(&self, i: usize) -> String {
        self.log(i).lines().map(|line| strip_ansi(line) + "\n").collect()
    }

    /// The node whose store last confirmed itself as Raft leader, by the lessor's line in the agents'
    /// logs (`lessor active: this node is the raft leader ...`, logged once per term it leads): the line
    /// with the highest term, across nodes (one leader per term). `None` before any such line. The node
    /// may have lost the leadership since without a newer line yet; callers wanting a settled answer ask
    /// twice, some elections apart.
    pub fn raft_leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for i in 0..self.nodes.len() {
            for line in self.log(i).lines().filter(|l| l.contains(LESSOR_ACTIVE)) {
                let line = strip_ansi(line);
                let term = line
                    .split_whitespace()
                    .find_map(|word| word.strip_prefix("term="))
                    .and_then(|t| t.parse::<u64>().ok());
                if let Some(term) = term.filter(|t| best.is_none_or(|(b, _)| *t > b)) {
                    best = Some((term, i));
                }
            }
        }
        best.map(|(_, i)| i)
    }
}

impl Drop for AgentCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.signal_agent(i, libc::SIGKILL);
            self.kill_server(i);
            crate::managed::release_shared_memory(&self.home(i).join("pg"));
        }
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                eprintln!("---- {} agent log (tail) ----", self.nodes[i].name);
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// SIGKILL to `pid`, a database server this cluster's agent started, if any.
fn kill(pid: Option<libc::pid_t>) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) on a server process this cluster's agent started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The address of nodes that are not [placed](Placement) elsewhere.
const LOCALHOST: &str = "127.0.0.1";

/// The lessor's line when its node, as Raft leader, starts timing leases (`vigil_dcs::raft::lessor`).
const LESSOR_ACTIVE: &str = "lessor active: this node is the raft leader";

/// A port that is free now and that no other test process hands out while this one runs: each port is
/// claimed with a lock on one byte (the port's number) of a lock file all test processes share
/// ([`PORT_LOCKS`]), held until this process exits. Ports are taken from 10000 to 32399, below the
/// kernel's ephemeral range (32768 and up) that `bind(0)` and outgoing connections draw from, starting in
/// a block chosen by this process's PID.
pub fn free_port() -> u16 {
    const SPAN: u16 = 350 * 64;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 350) as u16 * 64;
    for _ in 0..SPAN {
        let port = 10_000 + (start + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN) % SPAN;
        if claim(port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port from 10000 to 32399")
}

/// The file whose bytes the test processes lock to claim ports (see [`free_port`]).
const PORT_LOCKS: &str = "/tmp/vigil-test-ports.lock";

/// Claims `port` for this process: `false` when another process holds it. Without the lock file, every
/// port counts as claimed (the bind check alone remains).
fn claim(port: u16) -> bool {
    use std::os::fd::AsRawFd;
    static LOCKS: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let file = LOCKS.get_or_init(|| {
        std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(PORT_LOCKS).ok()
    });
    let Some(file) = file else { return true };
    // SAFETY: an all-zero flock is a valid value; the fields that matter are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = libc::off_t::from(port);
    lock.l_len = 1;
    // SAFETY: F_SETLK on a file this process keeps open for its whole life, with a valid flock.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) == 0 }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A process (or process group) of one of the cluster's servers, stopped with SIGSTOP until this is
/// dropped (see [`AgentCluster::freeze`]).
pub struct Frozen<'a> {
    cluster: &'a AgentCluster,
    pid: libc::pid_t,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.cluster.signal_pid(self.pid, libc::SIGCONT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    #[test]
    fn a_port_another_process_claimed_is_not_handed_out() {
        // Another process (python's fcntl locks are the same POSIX byte-range locks) claims port 31999.
        let script = format!(
            "import fcntl, os, sys\nf = open('{PORT_LOCKS}', 'a+')\n\
             fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 31999, os.SEEK_SET)\nprint('locked', flush=True)\n\
             sys.stdin.read()\n"
        );
        let mut other = Command::new("python3")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(other.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "locked");
        assert!(!claim(31999), "a port claimed by another process");
        assert!(claim(31998), "a free one");
        drop(other.stdin.take());
        other.wait().expect("wait");
        assert!(claim(31999), "released when that process ends");
    }
}
