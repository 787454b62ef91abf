//! A PostgreSQL 15 cluster managed by Patroni, for comparing failover with Vigil on the same machine:
//! one real `patroni` process per member (from a virtualenv, see `bench/compare.sh`, or Debian's `patroni`
//! package) and a single-node etcd as the DCS (Patroni's `etcd3` module, etcd's v3 API), all on 127.0.0.1.
//!
//! The members' PostgreSQL settings match [`AgentCluster`](crate::agents::AgentCluster)'s (the same
//! users, passwords, `initdb` options, `pg_hba` rules and `fsync: off`). When this process is root,
//! Patroni runs as the `postgres` user (PostgreSQL refuses root), with its files under a temp dir that
//! user owns. A single etcd is not how Patroni is deployed (three or five); on one machine it only saves
//! the DCS's own replication round trip. Dropping the cluster kills (by PID) every `patroni`, every
//! postmaster left behind (Patroni does not take PostgreSQL down with it) and etcd.

use crate::managed::{postgres_user, ClusterPorts, ManagedCluster, Member, PASSWORD};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::agents::PG_BIN;

/// Patroni's three timing settings (`bootstrap.dcs`), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatroniTiming {
    /// Leader-key lifetime.
    pub ttl: u32,
    /// Pause between two HA cycles.
    pub loop_wait: u32,
    /// How long a DCS or PostgreSQL call is retried.
    pub retry_timeout: u32,
}

impl PatroniTiming {
    /// Patroni's defaults.
    pub const DEFAULT: PatroniTiming = PatroniTiming { ttl: 30, loop_wait: 10, retry_timeout: 10 };
    /// The smallest values Patroni's validator accepts (`ttl` ≥ 20, `loop_wait` ≥ 1, `retry_timeout` ≥ 3;
    /// `patroni/validator.py`), which also satisfy `loop_wait + 2 * retry_timeout <= ttl`.
    pub const FASTEST: PatroniTiming = PatroniTiming { ttl: 20, loop_wait: 1, retry_timeout: 3 };
}

/// A running Patroni cluster.
pub struct PatroniCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    patroni: Vec<Option<Child>>,
    etcd: Option<Child>,
    etcd_client: u16,
    /// Extra lines of every member's `bootstrap.dcs`, indented.
    extra_dcs: String,
}

impl PatroniCluster {
    /// Starts etcd (`etcd` binary) on `ports`' etcd ports and one `patroni` (from `bin_dir`) per member,
    /// with `timing`.
    pub fn start(
        bin_dir: &Path,
        etcd: &Path,
        ports: &ClusterPorts,
        timing: PatroniTiming,
    ) -> std::io::Result<PatroniCluster> {
        PatroniCluster::start_with(bin_dir, etcd, ports, timing, "")
    }

    /// [`start`](Self::start) with `extra_dcs` added to every member's `bootstrap.dcs`: YAML mapping lines
    /// at the section's level, e.g. `"synchronous_mode: true"` (each line is indented to fit).
    pub fn start_with(
        bin_dir: &Path,
        etcd: &Path,
        ports: &ClusterPorts,
        timing: PatroniTiming,
        extra_dcs: &str,
    ) -> std::io::Result<PatroniCluster> {
        let dir = tempfile::Builder::new().prefix("vigil-patroni-").tempdir()?;
        set_mode(dir.path(), 0o755)?;
        let mut cluster = PatroniCluster {
            dir,
            members: ports.members.clone(),
            patroni: Vec::new(),
            etcd: None,
            etcd_client: ports.etcd_client,
            extra_dcs: extra_dcs.lines().map(|line| format!("    {line}\n")).collect(),
        };
        cluster.etcd = Some(cluster.spawn_etcd(etcd, ports)?);
        for i in 0..cluster.members.len() {
            let child = cluster.spawn_patroni(bin_dir, i, timing)?;
            cluster.patroni.push(Some(child));
        }
        Ok(cluster)
    }

    /// Waits up to `timeout` until etcd is healthy and every member's REST API answers; `Err` says which
    /// process exited or did not answer.
    pub async fn started(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = None;
            if let Some(status) = self.etcd.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.etcd = None;
                return Err(format!("etcd exited with {status}: {}", self.log_tail("etcd.log")));
            }
            let etcd_healthy = crate::managed::rest(self.etcd_client, "/health", Duration::from_secs(1))
                .await
                .is_some_and(|(code, body)| code == 200 && body["health"] == "true");
            if !etcd_healthy {
                waiting = Some("etcd".to_owned());
            }
            for i in 0..self.members.len() {
                let name = self.members[i].name.clone();
                if let Some(status) = self.patroni[i].as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    self.patroni[i] = None;
                    let tail = self.log_tail(&format!("{name}/patroni.log"));
                    return Err(format!("{name}'s patroni exited with {status}: {tail}"));
                }
                let api = self.members[i].api_port;
                let answers = crate::managed::rest(api, "/liveness", Duration::from_secs(1)).await.is_some();
                if waiting.is_none() && !answers {
                    waiting = Some(format!("{name}'s patroni"));
                }
            }
            let Some(what) = waiting else { return Ok(()) };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{what} did not answer within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Member `i`'s directory (its `patroni.yml`, log, socket and data directory `pg/`), owned by the
    /// user Patroni runs as.
    pub fn home(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    /// Member `i`'s `patroni.yml`, as Patroni read it.
    pub fn config_file(&self, i: usize) -> PathBuf {
        self.home(i).join("patroni.yml")
    }

    /// Stops member `i`'s Patroni as its service manager would (SIGTERM) and waits up to `timeout` for
    /// it to exit; `Err` when it did not (it is then killed) or was not running. In pause mode Patroni
    /// leaves PostgreSQL running.
    pub async fn stop_manager(&mut self, i: usize, timeout: Duration) -> Result<(), String> {
        let name = self.members[i].name.clone();
        let child = self.patroni[i].as_mut().ok_or_else(|| format!("{name}'s patroni is not running"))?;
        // SAFETY: kill(2) on the PID of a child this process started and has not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                self.patroni[i] = None;
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                self.kill_manager(i);
                return Err(format!("{name}'s patroni did not exit within {timeout:?} of SIGTERM"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn spawn_etcd(&self, etcd: &Path, ports: &ClusterPorts) -> std::io::Result<Child> {
        let log = std::fs::File::create(self.dir.path().join("etcd.log"))?;
        let client = format!("http://127.0.0.1:{}", ports.etcd_client);
        let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
        Command::new(etcd)
            .arg("--name=bench")
            .arg(format!("--data-dir={}", self.dir.path().join("etcd").display()))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=bench={peer}"))
            .arg("--initial-cluster-state=new")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
    }

    fn spawn_patroni(&self, bin_dir: &Path, i: usize, timing: PatroniTiming) -> std::io::Result<Child> {
        let home = self.home(i);
        std::fs::create_dir_all(home.join("sock"))?;
        let file = self.config_file(i);
        std::fs::write(&file, self.config(i, timing))?;
        let log = std::fs::File::create(home.join("patroni.log"))?;
        let user = postgres_user();
        if let Some((uid, gid)) = user {
            for path in [home.clone(), home.join("sock"), file.clone(), home.join("patroni.log")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        }
        let mut command = Command::new(bin_dir.join("patroni"));
        command
            .arg(&file)
            .current_dir(&home)
            .env("HOME", &home)
            // Log times in UTC, as the bench's clock.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        command.spawn()
    }

    /// Member `i`'s `patroni.yml`.
    fn config(&self, i: usize, timing: PatroniTiming) -> String {
        let m = &self.members[i];
        let home = self.home(i);
        format!(
            "scope: bench\nname: {name}\n\
             restapi:\n  listen: 127.0.0.1:{api}\n  connect_address: 127.0.0.1:{api}\n\
             etcd3:\n  hosts: 127.0.0.1:{etcd}\n\
             bootstrap:\n  dcs:\n{extra_dcs}    ttl: {ttl}\n    loop_wait: {loop_wait}\n    retry_timeout: {retry}\n\
             \x20   postgresql:\n      use_pg_rewind: true\n      parameters: {{fsync: 'off'}}\n\
             \x20 initdb: [{{encoding: UTF8}}, data-checksums]\n  pg_hba:\n\
             \x20   - local all all trust\n\
             \x20   - host replication replicator 127.0.0.1/32 scram-sha-256\n\
             \x20   - host all all 127.0.0.1/32 scram-sha-256\n\
             postgresql:\n  listen: 127.0.0.1:{pg}\n  connect_address: 127.0.0.1:{pg}\n  data_dir: {home}/pg\n\
             \x20 bin_dir: {PG_BIN}\n  pgpass: {home}/pgpass\n  authentication:\n\
             \x20   replication: {{username: replicator, password: rep-pass}}\n\
             \x20   superuser: {{username: postgres, password: {PASSWORD}}}\n\
             \x20 parameters:\n    unix_socket_directories: {home}/sock\n",
            name = m.name,
            api = m.api_port,
            pg = m.pg_port,
            etcd = self.etcd_client,
            ttl = timing.ttl,
            loop_wait = timing.loop_wait,
            retry = timing.retry_timeout,
            home = home.display(),
            extra_dcs = self.extra_dcs,
        )
    }

    fn log_tail(&self, relative: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(relative)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }
}

impl ManagedCluster for PatroniCluster {
    fn manager(&self) -> &'static str {
        "patroni"
    }

    fn members(&self) -> Vec<Member> {
        self.members.clone()
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.home(i).join("pg")
    }

    fn manager_pid(&self, i: usize) -> Option<u32> {
        self.patroni[i].as_ref().map(Child::id)
    }

    fn kill_manager(&mut self, i: usize) {
        if let Some(mut child) = self.patroni[i].take() {
            // Child::kill sends SIGKILL to this PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn helper_pids(&self) -> Vec<(String, u32)> {
        self.etcd.iter().map(|c| ("etcd (Patroni's store)".to_owned(), c.id())).collect()
    }

    fn logs(&self) -> Vec<(String, PathBuf)> {
        let mut logs: Vec<(String, PathBuf)> = (0..self.members.len())
            .map(|i| (self.members[i].name.clone(), self.home(i).join("patroni.log")))
            .collect();
        logs.push(("etcd".to_owned(), self.dir.path().join("etcd.log")));
        logs
    }
}

impl Drop for PatroniCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (name, path) in self.logs() {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                eprintln!("---- {name}: {} (tail) ----", path.display());
                tail.into_iter().rev().for_each(|line| eprintln!("{line}"));
            }
        }
        for i in 0..self.members.len() {
            self.kill_manager(i);
            self.kill_postgres(i);
            crate::managed::release_shared_memory(&self.data_dir(i));
        }
        if let Some(mut etcd) = self.etcd.take() {
            let _ = etcd.kill();
            let _ = etcd.wait();
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_timings_keep_patronis_rule_and_minimums() {
        for t in [PatroniTiming::DEFAULT, PatroniTiming::FASTEST] {
            assert!(t.loop_wait + 2 * t.retry_timeout <= t.ttl, "{t:?}");
            assert!(t.ttl >= 20 && t.loop_wait >= 1 && t.retry_timeout >= 3, "{t:?}");
        }
    }
}
