//! Moving a running Patroni cluster to Vigil with PostgreSQL kept running (README, "Moving from Patroni").
//!
//! Each member's Patroni file becomes its Vigil file by two edits ([`vigil_config`]): Patroni's DCS
//! section (`etcd3:`, `etcd:`, `consul:`, …) gives way to a `raft:` section, and `bootstrap.dcs` gets
//! `pause: true` (so that the new, empty store starts in maintenance mode and no agent starts, stops or
//! promotes anything before the operator resumes) in place of Patroni's timings. [`VigilMembers`] then runs one `vigil agent` per member
//! on those files, as the user Patroni ran as (`postgres` when this process is root), on the very same
//! data directories. Dropping it kills every agent it started, by PID.

use crate::managed::postgres_user;
use crate::strip_ansi;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Patroni's DCS sections (`patroni/dcs/*.py`): exactly one of them names the store a Patroni file uses.
/// Patroni's own `raft` (pysyncobj) has the shape of Vigil's section and is replaced as well.
pub const PATRONI_DCS_SECTIONS: &[&str] =
    &["etcd", "etcd3", "consul", "zookeeper", "exhibitor", "kubernetes", "raft"];

/// Patroni's timing keys: Vigil's defaults for them are ten times shorter, and Patroni's own (30/10/10 s)
/// break Vigil's rule `loop_wait + 2 * retry_timeout + safety_margin <= ttl`, which Vigil refuses where
/// Patroni quietly shortens `loop_wait`.
pub const PATRONI_TIMINGS: &[&str] = &["ttl", "loop_wait", "retry_timeout"];

/// The Vigil file for a member whose Patroni file is `patroni_yaml` (block-style YAML, as Patroni's
/// documentation writes it): its DCS section replaced by `raft_section` (a top-level `raft:` mapping),
/// `pause: true` added to `bootstrap.dcs` and [`PATRONI_TIMINGS`] taken out of it (Vigil's defaults
/// apply). Every other line is kept as it is. `Err` when the file names
/// no DCS section or has no `bootstrap.dcs` mapping to add the pause to.
pub fn vigil_config(patroni_yaml: &str, raft_section: &str) -> Result<String, String> {
    let lines: Vec<&str> = patroni_yaml.lines().collect();
    let is_dcs = |line: &str| PATRONI_DCS_SECTIONS.iter().any(|name| line.trim_end() == format!("{name}:"));
    let start =
        lines.iter().position(|l| is_dcs(l)).ok_or("no DCS section (etcd3:, etcd:, consul: …) to replace")?;
    // The section ends at the next line that starts at column 0 (a blank line or a comment does not end it).
    let end = (start + 1..lines.len())
        .find(|&i| lines[i].starts_with(|c: char| !c.is_whitespace() && c != '#'))
        .unwrap_or(lines.len());
    let mut out: Vec<String> = lines[..start].iter().map(|l| (*l).to_owned()).collect();
    out.extend(raft_section.lines().map(str::to_owned));
    out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
    let bootstrap = out.iter().position(|l| l.trim_end() == "bootstrap:").ok_or("no bootstrap section")?;
    let dcs = (bootstrap + 1..out.len())
        .take_while(|&i| out[i].is_empty() || out[i].starts_with(char::is_whitespace))
        .find(|&i| out[i].trim() == "dcs:")
        .ok_or("no bootstrap.dcs mapping to add `pause: true` to")?;
    let indent = out[dcs].len() - out[dcs].trim_start().len();
    // The keys under `dcs:` are indented as its first key, else two more spaces than `dcs:` itself.
    let key_indent = out
        .get(dcs + 1)
        .map(|l| l.len() - l.trim_start().len())
        .filter(|&n| n > indent)
        .unwrap_or(indent + 2);
    let block_end = (dcs + 1..out.len())
        .find(|&i| !out[i].trim().is_empty() && out[i].len() - out[i].trim_start().len() < key_indent)
        .unwrap_or(out.len());
    let is_timing = |line: &str| {
        let at_key_level = line.len() - line.trim_start().len() == key_indent;
        at_key_level && PATRONI_TIMINGS.iter().any(|key| line.trim_start().starts_with(&format!("{key}:")))
    };
    let mut kept: Vec<String> = out.drain(dcs + 1..block_end).filter(|l| !is_timing(l)).collect();
    kept.insert(0, format!("{}pause: true", " ".repeat(key_indent)));
    out.splice(dcs + 1..dcs + 1, kept);
    Ok(out.join("\n") + "\n")
}

/// One `vigil agent` per member, started on the members' own configuration files.
pub struct VigilMembers {
    names: Vec<String>,
    logs: Vec<PathBuf>,
    agents: Vec<Option<Child>>,
}

impl VigilMembers {
    /// Starts `binary agent -c FILE` for each `(name, FILE)`, logging to `vigil.log` next to FILE, as the
    /// `postgres` user when this process is root (the files' directories must be that user's).
    pub fn start(binary: &Path, members: &[(String, PathBuf)]) -> std::io::Result<VigilMembers> {
        let mut started = VigilMembers { names: Vec::new(), logs: Vec::new(), agents: Vec::new() };
        for (name, file) in members {
            let dir = file.parent().unwrap_or(Path::new("/"));
            let log_path = dir.join("vigil.log");
            let log = std::fs::File::create(&log_path)?;
            let mut command = Command::new(binary);
            command
                .args(["agent", "-c"])
                .arg(file)
                .current_dir(dir)
                .env("HOME", dir)
                .env("VIGIL_LOG", "info,vigil_dcs=info,openraft=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            if let Some((uid, gid)) = postgres_user() {
                std::os::unix::fs::chown(file, Some(uid), Some(gid))?;
                command.uid(uid).gid(gid);
            }
            // Pushed one by one, so that a failed spawn still leaves the earlier agents to Drop.
            started.names.push(name.clone());
            started.logs.push(log_path);
            started.agents.push(Some(command.spawn()?));
        }
        Ok(started)
    }

    /// Waits up to `timeout` until every agent has started its HA loop (its log says "agent started");
    /// `Err` names the first agent that exited, with its last log line, or did not start in time.
    pub async fn started(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = None;
            for i in 0..self.agents.len() {
                let name = &self.names[i];
                let child =
                    self.agents[i].as_mut().ok_or_else(|| format!("{name}'s agent is not running"))?;
                if let Ok(Some(status)) = child.try_wait() {
                    self.agents[i] = None;
                    let log = self.log(i);
                    let last = log.lines().last().unwrap_or_default();
                    return Err(format!("{name}'s agent exited with {status}: {last}"));
                }
                if waiting.is_none() && !self.log(i).contains("agent started") {
                    waiting = Some(name.clone());
                }
            }
            let Some(name) = waiting else { return Ok(()) };
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("{name}'s agent did not start within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9 of member `i`'s agent (reaped).
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut child) = self.agents[i].take() {
            // Child::kill sends SIGKILL to this PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Member `i`'s agent log, without colour codes.
    pub fn log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.logs[i]).unwrap_or_default();
        text.lines().map(|line| strip_ansi(line) + "\n").collect()
    }
}

impl Drop for VigilMembers {
    fn drop(&mut self) {
        for i in 0..self.agents.len() {
            self.kill_agent(i);
        }
        if std::thread::panicking() {
            for i in 0..self.agents.len() {
                eprintln!("---- {} vigil log (tail) ----", self.names[i]);
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATRONI: &str = "scope: bench\nname: node1\nrestapi:\n  listen: 127.0.0.1:8008\n\
                           etcd3:\n  hosts: 127.0.0.1:2379\n\n  # a comment in the section\n\
                           bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 1\n    retry_timeout: 3\n\
                           \x20   maximum_lag_on_failover: 1024\n  initdb: [data-checksums]\n\
                           postgresql:\n  data_dir: /d\n";
    const RAFT: &str = "raft:\n  data_dir: /r\n  self_addr: 127.0.0.1:2222\n  partner_addrs: []\n";

    #[test]
    fn the_dcs_section_becomes_raft_and_the_new_store_starts_paused_with_vigils_timings() {
        let vigil = vigil_config(PATRONI, RAFT).expect("converted");
        assert_eq!(
            vigil,
            "scope: bench\nname: node1\nrestapi:\n  listen: 127.0.0.1:8008\n\
             raft:\n  data_dir: /r\n  self_addr: 127.0.0.1:2222\n  partner_addrs: []\n\
             bootstrap:\n  dcs:\n    pause: true\n    maximum_lag_on_failover: 1024\n  initdb: [data-checksums]\n\
             postgresql:\n  data_dir: /d\n"
        );
    }

    #[test]
    fn a_file_without_a_dcs_section_or_bootstrap_dcs_is_refused() {
        assert!(vigil_config("scope: x\nbootstrap:\n  dcs:\n    ttl: 20\n", RAFT).is_err());
        assert!(vigil_config("scope: x\netcd:\n  host: h:2379\nbootstrap:\n  initdb: []\n", RAFT).is_err());
    }

    #[test]
    fn an_empty_bootstrap_dcs_gets_its_first_key() {
        let vigil =
            vigil_config("etcd:\n  host: h\nbootstrap:\n  dcs:\n  initdb: []\n", RAFT).expect("converted");
        assert!(vigil.contains("bootstrap:\n  dcs:\n    pause: true\n  initdb: []\n"), "{vigil}");
    }
}
