//! What a benchmark needs from a PostgreSQL cluster under a failover manager, whichever manager it is
//! (Vigil's [`AgentCluster`](crate::agents::AgentCluster), Patroni's
//! [`PatroniCluster`](crate::patroni::PatroniCluster)): the members' ports, the manager's and the
//! postmaster's PIDs, the faults (kill -9 of the manager, of the postmaster), and the logs. Both managers
//! answer the same REST API (`GET /primary`, `GET /patroni`, `POST /switchover`), so the REST calls and
//! SQL queries here take ports, not a cluster.

use crate::agents::free_port;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_postgres::NoTls;

/// The superuser's password in bench and test clusters, whichever manager runs them.
pub use crate::agents::PASSWORD;

/// One member's name and ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member name (`node1`, …).
    pub name: String,
    /// PostgreSQL's port.
    pub pg_port: u16,
    /// The manager's REST API port.
    pub api_port: u16,
    /// A port for the manager's own store traffic (Vigil's Raft); unused under Patroni.
    pub store_port: u16,
}

/// Ports picked once and reused by every cluster a comparison starts, so that each manager runs on the
/// same ports behind the same HAProxy config.
#[derive(Debug, Clone)]
pub struct ClusterPorts {
    /// The members, `node1` to `nodeN`.
    pub members: Vec<Member>,
    /// HAProxy's read-write port.
    pub haproxy_rw: u16,
    /// HAProxy's read-only port.
    pub haproxy_ro: u16,
    /// etcd's client port (Patroni's DCS).
    pub etcd_client: u16,
    /// etcd's peer port.
    pub etcd_peer: u16,
}

impl ClusterPorts {
    /// Free ports for `nodes` members and the rest.
    pub fn pick(nodes: usize) -> ClusterPorts {
        let members = (1..=nodes)
            .map(|i| Member {
                name: format!("node{i}"),
                pg_port: free_port(),
                api_port: free_port(),
                store_port: free_port(),
            })
            .collect();
        ClusterPorts {
            members,
            haproxy_rw: free_port(),
            haproxy_ro: free_port(),
            etcd_client: free_port(),
            etcd_peer: free_port(),
        }
    }
}

/// A running cluster of PostgreSQL servers under a failover manager; dropping it stops everything it
/// started, by PID.
pub trait ManagedCluster: Send {
    /// `vigil` or `patroni`.
    fn manager(&self) -> &'static str;
    /// The members, in order.
    fn members(&self) -> Vec<Member>;
    /// A scratch directory removed with the cluster (HAProxy's files go there).
    fn dir(&self) -> &Path;
    /// Member `i`'s PostgreSQL data directory.
    fn data_dir(&self, i: usize) -> PathBuf;
    /// The PID of member `i`'s manager process, while it runs.
    fn manager_pid(&self, i: usize) -> Option<u32>;
    /// kill -9 of member `i`'s manager process (reaped).
    fn kill_manager(&mut self, i: usize);
    /// Other processes the manager needs, by name (Patroni's etcd, Vigil's lifelines), for the footprint.
    fn helper_pids(&self) -> Vec<(String, u32)> {
        Vec::new()
    }
    /// The manager's log files, by member name (for copies of failed runs and milestones).
    fn logs(&self) -> Vec<(String, PathBuf)>;

    /// The PID of member `i`'s postmaster, from `postmaster.pid`.
    fn postmaster_pid(&self, i: usize) -> Option<libc::pid_t> {
        let text = std::fs::read_to_string(self.data_dir(i).join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
    /// kill -9 of member `i`'s postmaster.
    fn kill_postgres(&self, i: usize) {
        if let Some(pid) = self.postmaster_pid(i) {
            // SAFETY: kill(2) on the postmaster of this cluster's member.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// `GET http://127.0.0.1:<api_port><path>`: the status code and JSON body, or `None` without an answer
/// within `timeout`.
pub async fn rest(api_port: u16, path: &str, timeout: Duration) -> Option<(u16, serde_json::Value)> {
    let http = reqwest::Client::builder().no_proxy().build().ok()?;
    let url = format!("http://127.0.0.1:{api_port}{path}");
    let response = http.get(url).timeout(timeout).send().await.ok()?;
    let code = response.status().as_u16();
    Some((code, response.json().await.unwrap_or_default()))
}

/// `method http://127.0.0.1:<api_port><path>` with a JSON `body`: the status code and the body as text, or
/// `None` without an answer within `timeout`.
pub async fn send(
    api_port: u16,
    method: reqwest::Method,
    path: &str,
    body: &str,
    timeout: Duration,
) -> Option<(u16, String)> {
    let http = reqwest::Client::builder().no_proxy().build().ok()?;
    let url = format!("http://127.0.0.1:{api_port}{path}");
    let request = http.request(method, url).header("content-type", "application/json").body(body.to_owned());
    let response = request.timeout(timeout).send().await.ok()?;
    let code = response.status().as_u16();
    Some((code, response.text().await.unwrap_or_default()))
}

/// Runs `sql` as the superuser on the server at `pg_port` and returns the first column of every row.
pub async fn query(pg_port: u16, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let conn = format!(
        "host=127.0.0.1 port={pg_port} user=postgres password={PASSWORD} dbname=postgres connect_timeout=2"
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    let task = tokio::spawn(connection);
    let rows = client.simple_query(sql).await;
    drop(client);
    let _ = task.await;
    Ok(rows?
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect())
}

/// Marks for removal the System V shared memory segment of the postmaster of `data_dir` (the key and id
/// on the 7th line of its `postmaster.pid`). A postmaster killed with SIGKILL leaves its segment
/// behind, and a start in the same data directory would reclaim it; a test's data directory is deleted
/// instead, so its segments would pile up until `kernel.shmmni` (4096) is reached and no server can
/// start on the machine. The kernel removes a marked segment once the last process detaches.
pub fn release_shared_memory(data_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(data_dir.join("postmaster.pid")) else { return };
    let id = text.lines().nth(6).and_then(|line| line.split_whitespace().nth(1)?.parse::<libc::c_int>().ok());
    if let Some(id) = id {
        // SAFETY: shmctl(2) IPC_RMID on a segment id; no buffer is passed.
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// The OS user PostgreSQL must run as when this process is root (it refuses root): `postgres`'s uid and
/// gid; `None` when not root (everything then runs as this user).
pub fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: getpwnam(3) with a NUL-terminated name; the record is read at once, before any other call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: pw is a valid passwd record (checked non-null above).
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

impl ManagedCluster for crate::agents::AgentCluster {
    fn manager(&self) -> &'static str {
        "vigil"
    }

    fn members(&self) -> Vec<Member> {
        self.nodes
            .iter()
            .map(|n| Member {
                name: n.name.clone(),
                pg_port: n.pg_port,
                api_port: n.api_port,
                store_port: n.raft_port,
            })
            .collect()
    }

    fn dir(&self) -> &Path {
        crate::agents::AgentCluster::dir(self)
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.home(i).join("pg")
    }

    fn manager_pid(&self, i: usize) -> Option<u32> {
        self.agent_pid(i)
    }

    fn kill_manager(&mut self, i: usize) {
        self.signal_agent(i, libc::SIGKILL);
    }

    /// Each agent's lifeline watcher (`vigil lifeline`, a child of the agent).
    fn helper_pids(&self) -> Vec<(String, u32)> {
        let agents: Vec<(usize, u32)> =
            (0..self.nodes.len()).filter_map(|i| Some((i, self.agent_pid(i)?))).collect();
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        let mut lifelines = Vec::new();
        for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !cmdline.split(|b| *b == 0).any(|arg| arg == b"lifeline") {
                continue;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let parent = status.lines().find_map(|l| l.strip_prefix("PPid:")?.trim().parse::<u32>().ok());
            if let Some((i, _)) = agents.iter().find(|(_, agent)| Some(*agent) == parent) {
                lifelines.push((format!("{}'s lifeline (`vigil lifeline`)", self.nodes[*i].name), pid));
            }
        }
        lifelines
    }

    fn logs(&self) -> Vec<(String, PathBuf)> {
        (0..self.nodes.len()).map(|i| (self.nodes[i].name.clone(), self.home(i).join("agent.log"))).collect()
    }

    fn postmaster_pid(&self, i: usize) -> Option<libc::pid_t> {
        crate::agents::AgentCluster::postmaster_pid(self, i)
    }

    fn kill_postgres(&self, i: usize) {
        crate::agents::AgentCluster::kill_postgres(self, i);
    }
}
