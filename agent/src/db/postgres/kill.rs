//! Ending a server that does not obey a stop: SIGKILL of the postmaster's process group. It works on
//! stopped processes (SIGSTOP, a frozen volume) and leaves no backend behind that could still commit; the
//! next start runs crash recovery.

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

/// SIGKILL to the process group `pid` leads (pg_ctl makes the postmaster a session and group leader, and
/// its backends are in its group), or to `pid` alone when it leads none.
pub(crate) fn kill_group(pid: libc::pid_t) {
    // SAFETY: getpgid(2) and kill(2) have no memory-safety preconditions; `pid` is a postmaster's.
    unsafe {
        let target = if libc::getpgid(pid) == pid { -pid } else { pid };
        libc::kill(target, libc::SIGKILL);
    }
}

/// Kills the postmaster of `data_dir` and every process of its group, and waits until it is gone (dead
/// or a zombie). `Ok(false)`: no postmaster ran.
pub(crate) async fn kill_server(data_dir: &Path) -> Result<bool, String> {
    let Some(pid) = postmaster(data_dir) else { return Ok(false) };
    kill_group(pid);
    let deadline = Instant::now() + GONE_WITHIN;
    while files::lock_holder_runs(&super::render::pid_file(data_dir)).ok().flatten() == Some(true) {
        if Instant::now() >= deadline {
            return Err(format!("postmaster {pid} still runs {GONE_WITHIN:?} after SIGKILL"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(true)
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
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(pid);
}
