//! Ending a server that does not obey a stop: SIGKILL of the postmaster, of its process group and of each
//! of its children (every backend and auxiliary process leads a session of its own: PostgreSQL calls
//! setsid in each). It works on stopped processes (SIGSTOP, a frozen volume) and leaves no backend behind
//! that could still commit; the next start runs crash recovery.

use super::files;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// How long [`kill_server`] waits for the processes to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(5);
/// How long the postmaster gets to end after SIGQUIT before SIGKILL, when its agent died.
const GRACE: Duration = Duration::from_secs(1);

/// The pid of the running postmaster of `data_dir`: the first line of `postmaster.pid`, if that process
/// is a `postgres` (a stale file may name a pid reused by anything else).
pub(crate) fn postmaster(data_dir: &Path) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(super::render::pid_file(data_dir)).ok()?;
    let pid: libc::pid_t = text.lines().next()?.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    (exe.file_name()? == "postgres").then_some(pid)
}

/// SIGKILL to the postmaster `pid` and everything it started: stopped first so that it starts nothing
/// more, then each child with the group it leads (a backend's own subprocesses, such as an
/// `archive_command`), then the postmaster's group (pg_ctl makes it a session and group leader).
pub(crate) fn kill_group(pid: libc::pid_t) {
    // SAFETY: kill(2) on a postmaster's pid has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    for child in children(pid) {
        kill_leader(child);
    }
    kill_leader(pid);
}

/// SIGKILL to the process group `pid` leads, or to `pid` alone when it leads none.
fn kill_leader(pid: libc::pid_t) {
    // SAFETY: getpgid(2) and kill(2) have no memory-safety preconditions.
    unsafe {
        let target = if libc::getpgid(pid) == pid { -pid } else { pid };
        libc::kill(target, libc::SIGKILL);
    }
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`).
fn children(pid: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let pids = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok());
    pids.filter(|p| parent(*p) == Some(pid)).collect()
}

/// The parent of `pid`: the field after the state, after the command name in parentheses.
fn parent(pid: libc::pid_t) -> Option<libc::pid_t> {
    crate::db::leftovers::stat_field(pid, 1)?.parse().ok()
}

/// Kills the postmaster of `data_dir` and every process of its group, and waits until it is gone (dead
/// or a zombie). `Ok(false)`: no postmaster ran.
pub(crate) async fn kill_server(data_dir: &Path) -> Result<bool, String> {
    let Some(pid) = postmaster(data_dir) else { return Ok(false) };
    kill_group(pid);
    if !gone_within(data_dir, GONE_WITHIN).await {
        return Err(format!("postmaster {pid} still runs {GONE_WITHIN:?} after SIGKILL"));
    }
    Ok(true)
}

/// Whether the postmaster of `data_dir` is gone (dead, or a zombie) within `within`, looked at every
/// 10 ms.
pub(crate) async fn gone_within(data_dir: &Path, within: Duration) -> bool {
    let pid_file = super::render::pid_file(data_dir);
    let deadline = Instant::now() + within;
    loop {
        if files::lock_holder_runs(&pid_file).ok().flatten() != Some(true) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ends the postmaster of `data_dir`, if one runs, for a lifeline whose agent died: SIGQUIT, then SIGKILL
/// to its process group if it still runs after [`GRACE`] (a stopped postmaster does not act on SIGQUIT,
/// and its backends could go on committing without it).
pub(crate) fn stop_for_lifeline(data_dir: &Path) {
    let Some(pid) = postmaster(data_dir) else { return };
    eprintln!("vigil lifeline: the agent is gone; stopping postmaster {pid} of {}", data_dir.display());
    // SAFETY: kill(2) with a pid just checked to be this data directory's postmaster.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = std::time::Instant::now() + GRACE;
    while std::time::Instant::now() < deadline {
        if !crate::db::leftovers::is_live(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(pid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_children_of_a_process_are_found_by_their_parent() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let me = std::process::id() as libc::pid_t;
        let pid = child.id() as libc::pid_t;
        assert_eq!(parent(pid), Some(me));
        assert!(children(me).contains(&pid), "{:?}", children(me));
        kill_leader(pid);
        child.wait().expect("reaped");
    }
}
