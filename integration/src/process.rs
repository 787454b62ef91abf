//! Store nodes as separate OS processes (the `vigil-dcs-node` binary) that tests kill with SIGKILL and
//! restart from their data directories. Every process is killed when the cluster is dropped, also when a
//! test fails.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use vigil_dcs::NodeId;

/// A cluster of node processes on 127.0.0.1.
pub struct ProcessCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    members: BTreeMap<NodeId, String>,
    children: BTreeMap<NodeId, Child>,
    http: reqwest::Client,
}

impl ProcessCluster {
    /// Starts nodes `1..=size` of `binary`; node 1 initializes the group.
    pub fn start(binary: &Path, size: u64) -> std::io::Result<ProcessCluster> {
        let mut members = BTreeMap::new();
        for id in 1..=size {
            // The port is free when asked; the node binds it a moment later.
            let port = crate::agents::free_port();
            members.insert(id, format!("127.0.0.1:{port}"));
        }
        let http = reqwest::Client::builder().no_proxy().build().map_err(std::io::Error::other)?;
        let mut cluster = ProcessCluster {
            binary: binary.to_owned(),
            dir: tempfile::tempdir()?,
            members,
            children: BTreeMap::new(),
            http,
        };
        for id in 1..=size {
            cluster.spawn(id)?;
        }
        Ok(cluster)
    }

    /// Kills node `id` with SIGKILL and reaps it.
    pub fn kill(&mut self, id: NodeId) -> std::io::Result<()> {
        if let Some(mut child) = self.children.remove(&id) {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts node `id` again from its data directory.
    pub fn restart(&mut self, id: NodeId) -> std::io::Result<()> {
        self.spawn(id)
    }

    /// The PID of node `id`'s process, if it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.children.get(&id).map(Child::id)
    }

    /// `GET` a test-API path of node `id`: the JSON body of a 200 answer, else `None`.
    pub async fn get(&self, id: NodeId, path: &str) -> Option<serde_json::Value> {
        let request = self.http.get(self.url(id, path));
        Self::json(request).await
    }

    /// `POST` a JSON body to a test-API path of node `id`: the JSON body of a 200 answer, else `None`.
    pub async fn post(&self, id: NodeId, path: &str, body: serde_json::Value) -> Option<serde_json::Value> {
        let request = self.http.post(self.url(id, path)).json(&body);
        Self::json(request).await
    }

    async fn json(request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
        let response = request.timeout(std::time::Duration::from_secs(5)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    fn url(&self, id: NodeId, path: &str) -> String {
        format!("http://{}{path}", self.members[&id])
    }

    fn spawn(&mut self, id: NodeId) -> std::io::Result<()> {
        let log =
            File::options().create(true).append(true).open(self.dir.path().join(format!("node{id}.log")))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--id")
            .arg(id.to_string())
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("node{id}")))
            .stdout(Stdio::null())
            .stderr(log);
        for (member, addr) in &self.members {
            command.arg("--member").arg(format!("{member}={addr}"));
        }
        if id == 1 {
            command.arg("--initialize");
        }
        self.children.insert(id, command.spawn()?);
        Ok(())
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
