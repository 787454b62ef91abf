//! The database dies with its agent. A small watcher process (`vigil lifeline`) holds the read end of a
//! pipe whose write end only the agent has (close-on-exec, so neither the server nor its tools inherit
//! it). When the agent dies — kill -9, OOM, a crash — the kernel closes the pipe, and the watcher ends the
//! server at once, as its engine's adapter says (PostgreSQL: immediate shutdown, then SIGKILL; MariaDB:
//! SIGKILL). So a dead agent cannot leave a primary taking writes without a lease. In pause mode the
//! agent disarms the watcher: maintenance keeps the database running.

use crate::db::Engine;
use clap::ValueEnum;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

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
    /// Starts the watcher for the `engine` server of `data_dir` (this executable, `vigil lifeline`), armed,
    /// in a process group of its own so that a terminal's Ctrl-C does not end it before the agent.
    pub fn spawn(engine: Engine, data_dir: &Path) -> io::Result<Lifeline> {
        let engine_name = engine.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        let mut child = crate::config::env::withhold(&mut Command::new(std::env::current_exe()?))
            .arg("lifeline")
            .arg("--engine")
            .arg(engine_name)
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

/// The watcher (`vigil lifeline --engine E --data-dir DIR`): reads `input` until it closes, then, unless
/// disarmed, ends the server of `data_dir`.
pub fn watch(engine: Engine, data_dir: &Path, input: impl Read) {
    if !armed_at_close(input) {
        return;
    }
    match engine {
        Engine::Postgresql => crate::db::postgres::kill::stop_for_lifeline(data_dir),
        Engine::Mariadb => crate::db::mariadb::server::kill_for_lifeline(data_dir),
    }
}

/// Reads `input` until it closes; whether the watcher is armed then.
fn armed_at_close(mut input: impl Read) -> bool {
    let mut armed = true;
    let mut byte = [0u8; 1];
    while let Ok(1) = input.read(&mut byte) {
        armed = match byte[0] {
            ARM => true,
            DISARM => false,
            _ => armed,
        };
    }
    armed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_byte_before_the_close_decides() {
        assert!(armed_at_close(&[][..]));
        assert!(!armed_at_close(&[ARM, DISARM][..]));
        assert!(armed_at_close(&[DISARM, ARM, b'x'][..]));
    }

    #[test]
    fn a_missing_server_is_no_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A pid file naming this test process, which is no database server: never signalled.
        std::fs::write(dir.path().join("postmaster.pid"), format!("{}\n", std::process::id()))
            .expect("write");
        std::fs::write(dir.path().join("mysqld.pid"), format!("{}\n", std::process::id())).expect("write");
        for engine in [Engine::Postgresql, Engine::Mariadb] {
            watch(engine, dir.path(), &[][..]);
            watch(engine, &dir.path().join("absent"), &[][..]);
        }
    }
}
