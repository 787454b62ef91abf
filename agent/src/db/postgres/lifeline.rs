//! The database dies with its agent. A small watcher process (`vigil lifeline`) holds the read end of a
//! pipe whose write end only the agent has (close-on-exec, so neither pg_ctl nor postgres inherits it).
//! When the agent dies — kill -9, OOM, a crash — the kernel closes the pipe, and the watcher stops the
//! postmaster at once: SIGQUIT (immediate shutdown, every session ends without committing more), SIGKILL
//! after [`GRACE`]. So a dead agent cannot leave a primary taking writes without a lease. In pause mode the
//! agent disarms the watcher: maintenance keeps the database running.

use crate::db::postgres::kill::{kill_group, postmaster};
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the postmaster gets to end after SIGQUIT before SIGKILL.
const GRACE: Duration = Duration::from_secs(1);

/// The byte that arms the watcher (the default).
const ARM: u8 = b'A';
/// The byte that disarms it.
const DISARM: u8 = b'D';

/// The agent's end of the lifeline.
pub struct Lifeline {
    child: Child,
    pipe: ChildStdin,
    armed: bool,
}

impl Lifeline {
    /// Starts the watcher for the postmaster of `data_dir` (this executable, `vigil lifeline`), armed, in a
    /// process group of its own so that a terminal's Ctrl-C does not end it before the agent.
    pub fn spawn(data_dir: &Path) -> io::Result<Lifeline> {
        let mut child = crate::config::env::withhold(&mut Command::new(std::env::current_exe()?))
            .arg("lifeline")
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take().ok_or_else(|| io::Error::other("no pipe to the lifeline"))?;
        tracing::info!(pid = child.id(), data_dir = %data_dir.display(), "lifeline armed: the database stops if the agent dies");
        Ok(Lifeline { child, pipe, armed: true })
    }

    /// Arms (`true`) or disarms the watcher; logged when it changes.
    pub fn arm(&mut self, armed: bool) {
        if armed == self.armed {
            return;
        }
        match self.pipe.write_all(&[if armed { ARM } else { DISARM }]) {
            Ok(()) => {
                self.armed = armed;
                let state =
                    if armed { "armed" } else { "disarmed (paused): the database outlives the agent" };
                tracing::info!(pid = self.child.id(), "lifeline {state}");
            }
            Err(e) => tracing::error!(pid = self.child.id(), error = %e, "lifeline unreachable"),
        }
    }
}

/// The watcher (`vigil lifeline --data-dir DIR`): reads `input` until it closes, then, unless disarmed,
/// stops the postmaster of `data_dir`.
pub fn watch(data_dir: &Path, mut input: impl Read) {
    let mut armed = true;
    let mut byte = [0u8; 1];
    while let Ok(1) = input.read(&mut byte) {
        armed = match byte[0] {
            ARM => true,
            DISARM => false,
            _ => armed,
        };
    }
    if !armed {
        return;
    }
    if let Some(pid) = postmaster(data_dir) {
        eprintln!("vigil lifeline: the agent is gone; stopping postmaster {pid} of {}", data_dir.display());
        stop(pid);
    }
}

/// SIGQUIT, then SIGKILL to its process group if it still runs after [`GRACE`] (a stopped postmaster
/// does not act on SIGQUIT, and its backends could go on committing without it).
fn stop(pid: libc::pid_t) {
    // SAFETY: kill(2) with a pid just checked to be this data directory's postmaster.
    unsafe { libc::kill(pid, libc::SIGQUIT) };
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
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
    fn a_disarmed_watcher_leaves_everything_alone_and_a_missing_postmaster_is_no_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A pid file naming this test process, which is not a postgres: never signalled.
        std::fs::write(dir.path().join("postmaster.pid"), format!("{}\n", std::process::id()))
            .expect("write");
        assert_eq!(postmaster(dir.path()), None);
        watch(dir.path(), &[ARM, DISARM][..]);
        watch(dir.path(), &[][..]);
        assert_eq!(postmaster(&dir.path().join("absent")), None);
    }
}
