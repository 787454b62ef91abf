//! The processes a data directory may still have after its agent died, for a lifeline about to certify
//! that its database can acknowledge no more writes (see ARCHITECTURE.md, "Confirmed death").
//!
//! Two kinds, found through `/proc`:
//! - **servers**: a process of the engine's server program (`postgres`, `mariadbd`) whose working directory
//!   is the data directory. Every PostgreSQL process works there, the postmaster and each backend alike,
//!   so an orphaned backend of a postmaster killed with SIGKILL is found too (it could still commit). They
//!   are killed.
//! - **others**: any other process with the data directory in its arguments (`pg_ctl start -D …`, the
//!   `sh -c "exec postgres -D …"` it runs, a restore, an operator's `tail`). They are not killed (they
//!   may be an operator's), but while one runs no certificate is given: it may be about to start a server.
//!
//! A process of the data directory's owner that this process may not inspect counts as one of them.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the servers get to be gone after SIGKILL, and the others to end by themselves.
const GONE_WITHIN: Duration = Duration::from_secs(1);

/// What a look through `/proc` found of one data directory.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    servers: Vec<libc::pid_t>,
    others: Vec<libc::pid_t>,
}

/// Kills every server process of `data_dir` (one of `programs` working there) and waits until none is
/// left and no other process names `data_dir`, [`GONE_WITHIN`]. `Err` says what is left.
pub(crate) fn clear(data_dir: &Path, programs: &[&str]) -> Result<(), String> {
    let dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_owned());
    let owner = std::fs::metadata(&dir).map(|m| m.uid()).ok();
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let found = look(&dir, owner, programs);
        if found == Found::default() {
            return Ok(());
        }
        for &pid in &found.servers {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is a server of this data
            // directory, found a moment ago (a reused pid within that moment is not a concern here).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "processes of {} still run after {GONE_WITHIN:?}: servers {:?}, others {:?}",
                dir.display(),
                found.servers,
                found.others
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The live processes of `dir` but this one.
fn look(dir: &Path, owner: Option<u32>, programs: &[&str]) -> Found {
    let me = std::process::id() as libc::pid_t;
    let Ok(entries) = std::fs::read_dir("/proc") else { return Found::default() };
    let pids = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok());
    let mut found = Found::default();
    for pid in pids.filter(|&p| p != me) {
        match inspect(pid, dir, owner, programs) {
            Some(Kind::Server) => found.servers.push(pid),
            Some(Kind::Other) => found.others.push(pid),
            None => {}
        }
    }
    found
}

enum Kind {
    Server,
    Other,
}

/// Whether process `pid` exists and has not exited: a zombie has (it is gone once its parent reaps it,
/// which some init processes do only every second or so).
pub(crate) fn is_live(pid: libc::pid_t) -> bool {
    !matches!(stat_field(pid, 0).as_deref(), None | Some("Z" | "X"))
}

/// Whether process `pid` is live (see [`is_live`]) and not stopped (SIGSTOP, or traced).
pub(crate) fn runs_unstopped(pid: libc::pid_t) -> bool {
    !matches!(stat_field(pid, 0).as_deref(), None | Some("Z" | "X" | "T" | "t"))
}

/// Field `n` of `/proc/<pid>/stat` counted from the state (0), the first after the command name in
/// parentheses (which may hold spaces and parentheses itself).
pub(crate) fn stat_field(pid: libc::pid_t, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(n).map(str::to_owned)
}

/// Whether process `pid` belongs to `dir`, and how; `None` when it does not or has exited.
fn inspect(pid: libc::pid_t, dir: &Path, owner: Option<u32>, programs: &[&str]) -> Option<Kind> {
    if !is_live(pid) {
        return None;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let args = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    if args.is_empty() {
        return None; // a kernel thread
    }
    let (exe, cwd) = (std::fs::read_link(proc.join("exe")), std::fs::read_link(proc.join("cwd")));
    let hidden =
        |r: &io::Result<PathBuf>| r.as_ref().is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied);
    if hidden(&exe) || hidden(&cwd) {
        let uid = std::fs::metadata(&proc).map(|m| m.uid()).ok();
        return (uid.is_some() && uid == owner).then_some(Kind::Other);
    }
    let program =
        exe.ok().and_then(|e| Some(e.file_name()?.to_str()?.trim_end_matches(" (deleted)").to_owned()));
    if program.is_some_and(|p| programs.contains(&p.as_str())) && cwd.is_ok_and(|c| c == dir) {
        return Some(Kind::Server);
    }
    let dir = dir.to_string_lossy();
    let named = args.split(|&b| b == 0).any(|arg| mentions(&String::from_utf8_lossy(arg), &dir));
    named.then_some(Kind::Other)
}

/// Whether `arg` names the directory `dir` (or a path under it): `dir` followed by nothing, `/`, a quote
/// or a space (`-D /data/pg`, `sh -c 'exec postgres -D "/data/pg" …'`), not `/data/pg2`.
fn mentions(arg: &str, dir: &str) -> bool {
    arg.match_indices(dir)
        .any(|(at, _)| matches!(arg[at + dir.len()..].chars().next(), None | Some('/' | '"' | '\'' | ' ')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_named_only_as_a_whole() {
        assert!(mentions("/data/pg", "/data/pg"));
        assert!(mentions("-D/data/pg/", "/data/pg"));
        assert!(mentions(r#"exec "postgres" -D "/data/pg" -p 5432"#, "/data/pg"));
        assert!(!mentions("/data/pg2", "/data/pg"));
        assert!(!mentions("/data/pg_archive", "/data/pg"));
    }

    #[test]
    fn processes_of_a_directory_are_found_and_servers_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_path = dir.path().canonicalize().expect("canonical");
        std::fs::write(dir_path.join("x"), "").expect("file");
        // A data directory owned by nobody (when this test runs as root): this sandbox's init, which may
        // not be inspected, is root's and does not count.
        let c_path = std::ffi::CString::new(dir_path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: chown(2) on a NUL-terminated path this test created.
        unsafe { libc::chown(c_path.as_ptr(), 65534, 65534) };
        // A "server": `sleep` working in the directory, and a process naming it in its arguments.
        let mut server =
            std::process::Command::new("sleep").arg("30").current_dir(&dir_path).spawn().expect("sleep");
        let mut other =
            std::process::Command::new("tail").arg("-f").arg(dir_path.join("x")).spawn().expect("tail");
        let owner = std::fs::metadata(&dir_path).map(|m| m.uid()).ok();
        let expected =
            Found { servers: vec![server.id() as libc::pid_t], others: vec![other.id() as libc::pid_t] };
        // A child just spawned may not show its own command line at once: look until both do.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = look(&dir_path, owner, &["sleep"]);
        while found != expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            found = look(&dir_path, owner, &["sleep"]);
        }
        assert_eq!(found, expected);
        // The other is not killed: clear gives up and says what is left.
        let err = clear(&dir_path, &["sleep"]).expect_err("the other still runs");
        assert!(err.contains(&other.id().to_string()), "{err}");
        server.wait().expect("the server was killed");
        other.kill().expect("kill");
        other.wait().expect("reaped");
        assert_eq!(clear(&dir_path, &["sleep"]), Ok(()));
    }
}
