//! Directories and files on disk, owned by the OS user PostgreSQL runs as. Synchronous: call these from
//! `spawn_blocking`.
//!
//! The agent may run as root while that user owns the data directory (and may own its parent), so it can
//! plant symbolic links wherever the agent writes. Hence: files are written to a fresh temporary file
//! (`O_EXCL`) that is given away with `fchown` before it is renamed over the target (a rename replaces a
//! link, never follows it); existing files are opened with `O_NOFOLLOW`; a data directory that is itself a
//! link is refused; only directories the agent creates are given away.

use super::render::{self, Conf, Runtime};
use super::{conf_files, PostgresSettings};
use crate::db::leftovers;
use crate::db::server_files::refuse_symlinked_data_dir;
pub(crate) use crate::db::server_files::{open_nofollow, remove_contents, with_path};
use crate::os_user::Owner;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{fchown, MetadataExt as _, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The standby signal file's name in the data directory.
const STANDBY_SIGNAL: &str = "standby.signal";
/// The signal file of a recovery that ends in a promotion (an archive recovery, a point-in-time restore).
const RECOVERY_SIGNAL: &str = "recovery.signal";
/// The setting that names the data directory, for errors about it.
pub(crate) const DATA_DIR_KEY: &str = "postgresql.data_dir";

/// The server log: next to the data directory, outside it, so clones do not copy it.
pub(crate) fn log_path(s: &PostgresSettings) -> PathBuf {
    let parent = s.data_dir.parent().unwrap_or(Path::new("/"));
    parent.join(format!("{}.log", s.name.replace('/', "_")))
}

/// Whether `dir` is missing or empty.
pub(crate) fn is_empty(dir: &Path) -> io::Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

/// Whether the data directory holds a database (`PG_VERSION` and the control file).
pub(crate) fn has_database(data: &Path) -> bool {
    data.join("PG_VERSION").is_file() && data.join("global/pg_control").is_file()
}

/// Whether the data directory is what an interrupted base backup leaves: `PG_VERSION` without the control
/// file, which pg_basebackup receives last.
pub(crate) fn is_interrupted_clone(data: &Path) -> bool {
    data.join("PG_VERSION").is_file() && !data.join("global/pg_control").exists()
}

/// Whether `standby.signal` is present.
pub(crate) fn has_standby_signal(data: &Path) -> bool {
    data.join(STANDBY_SIGNAL).exists()
}

/// The marker of data that was a primary (or was being promoted) since it was last repaired or cloned:
/// next to the data directory, outside it, so that clones and rewinds do not copy it. It keeps the data
/// a former primary when it is started as a standby before another member leads (the control file then
/// says "in archive recovery").
pub(crate) fn former_primary_marker(s: &PostgresSettings) -> PathBuf {
    let parent = s.data_dir.parent().unwrap_or(Path::new("/"));
    parent.join(format!(".{}.former-primary", s.name.replace('/', "_")))
}

/// Marks the data as a former primary's (`true`) or not.
pub(crate) fn mark_former_primary(s: &PostgresSettings, primary: bool) -> io::Result<()> {
    let marker = former_primary_marker(s);
    match primary {
        true => write_file(&marker, "", None),
        false => match fs::remove_file(&marker) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
    }
}

/// Whether the data directory came from a base backup or pg_rewind and has not finished recovery.
pub(crate) fn has_backup_label(data: &Path) -> bool {
    data.join("backup_label").exists()
}

/// Creates the data directory (mode 0700, owned by `owner`) and its parent when missing, plus the server log
/// and the socket directory, so that `owner` can use them all. Refuses a data directory that is a symbolic
/// link; a parent or socket directory that already exists is left to whoever owns it.
pub(crate) fn prepare_dirs(s: &PostgresSettings, owner: Option<Owner>) -> io::Result<()> {
    let data = &s.data_dir;
    refuse_symlinked_data_dir(data, DATA_DIR_KEY)?;
    if let Some(parent) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_owned_dir(parent, None, owner)?;
    }
    match fs::create_dir(data) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(with_path(data, e)),
        _ => {}
    }
    // PostgreSQL wants its data directory to be its own; the descriptor is this very directory, not a link.
    let dir = open_nofollow(data, fs::OpenOptions::new().read(true), libc::O_DIRECTORY)?;
    set_owner(&dir, owner).map_err(|e| with_path(data, e))?;
    dir.set_permissions(fs::Permissions::from_mode(0o700)).map_err(|e| with_path(data, e))?;
    let log = log_path(s);
    // O_NONBLOCK: a FIFO planted in its place fails instead of blocking the agent.
    let file =
        open_nofollow(&log, fs::OpenOptions::new().create(true).append(true).mode(0o600), libc::O_NONBLOCK)?;
    let meta = file.metadata().map_err(|e| with_path(&log, e))?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server log {} is not a plain file with a single link; remove it", log.display()),
        ));
    }
    set_owner(&file, owner).map_err(|e| with_path(&log, e))?;
    if let Some(dir) = render::socket_dir(s) {
        create_owned_dir(&dir, Some(0o755), owner)?;
    }
    Ok(())
}

/// Creates `dir` (its missing ancestors stay the agent's) and gives it `mode` and `owner`; nothing when it
/// exists already, so the agent never gives away a directory it did not create.
fn create_owned_dir(dir: &Path, mode: Option<u32>, owner: Option<Owner>) -> io::Result<()> {
    if let Some(up) = dir.parent() {
        fs::create_dir_all(up).map_err(|e| with_path(up, e))?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(with_path(dir, e)),
    }
    let handle = open_nofollow(dir, fs::OpenOptions::new().read(true), libc::O_DIRECTORY)?;
    if let Some(mode) = mode {
        handle.set_permissions(fs::Permissions::from_mode(mode)).map_err(|e| with_path(dir, e))?;
    }
    set_owner(&handle, owner).map_err(|e| with_path(dir, e))
}

/// Writes the password file (mode 0600) for the tools and the WAL receiver.
pub(crate) fn write_pgpass(s: &PostgresSettings, owner: Option<Owner>) -> io::Result<()> {
    if let Some(parent) = s.pgpass.parent() {
        fs::create_dir_all(parent)?;
    }
    write_file(&s.pgpass, render::pgpass(s), owner)
}

/// Writes postgresql.conf, including the base configuration (see [`conf_files::base_conf`]), and
/// pg_hba.conf and pg_ident.conf (for a start, or for a reload that applies a changed [`Runtime`]).
pub(crate) fn write_server_conf(
    s: &PostgresSettings,
    conf: &Conf,
    runtime: &Runtime,
    owner: Option<Owner>,
) -> io::Result<()> {
    refuse_symlinked_data_dir(&s.data_dir, DATA_DIR_KEY)?;
    if let Some(dir) = &s.config_dir {
        create_owned_dir(dir, Some(0o700), owner)?;
    }
    let base = conf_files::base_conf(s, render::HEADER)?;
    let text = render::postgresql_conf(s, conf, runtime, base.as_deref());
    write_file(&conf_files::postgresql_conf(s), text, owner)?;
    write_file(&conf_files::pg_hba_conf(s), render::pg_hba(s, &runtime.files.pg_hba), owner)?;
    match &runtime.files.pg_ident {
        Some(lines) => {
            let text = format!("{}{}", render::HEADER, render::lines(lines));
            write_file(&conf_files::pg_ident_conf(s), text, owner)
        }
        None => Ok(()),
    }
}

/// Drops the settings the adapter owns from postgresql.auto.conf (`ALTER SYSTEM` would override them).
pub(crate) fn clean_auto_conf(s: &PostgresSettings, owner: Option<Owner>) -> io::Result<()> {
    drop_auto_conf_settings(s, owner, render::is_owned)
}

/// Drops the settings `dropped` names from postgresql.auto.conf.
pub(crate) fn drop_auto_conf_settings(
    s: &PostgresSettings,
    owner: Option<Owner>,
    dropped: impl Fn(&str) -> bool,
) -> io::Result<()> {
    let auto = s.data_dir.join("postgresql.auto.conf");
    // O_NONBLOCK: a FIFO planted in its place reads as empty instead of blocking the agent.
    let read = open_nofollow(&auto, fs::OpenOptions::new().read(true), libc::O_NONBLOCK)
        .and_then(|file| io::read_to_string(file).map_err(|e| with_path(&auto, e)));
    match read {
        Ok(text) => match render::clean_auto_conf(&text, dropped) {
            Some(clean) => write_file(&auto, &clean, owner),
            None => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the whole configuration for a start as `conf` says: postgresql.conf, pg_hba.conf,
/// pg_ident.conf, postgresql.auto.conf without owned settings, standby.signal.
pub(crate) fn write_config(
    s: &PostgresSettings,
    conf: &Conf,
    runtime: &Runtime,
    owner: Option<Owner>,
) -> io::Result<()> {
    let data = &s.data_dir;
    write_server_conf(s, conf, runtime, owner)?;
    clean_auto_conf(s, owner)?;
    match conf {
        Conf::Standby(_) => write_file(&data.join(STANDBY_SIGNAL), "", owner),
        Conf::Primary => remove_standby_signal(data),
        Conf::Restore(Some(_)) => {
            remove_standby_signal(data)?;
            write_file(&data.join(RECOVERY_SIGNAL), "", owner)
        }
        Conf::Restore(None) => Ok(()),
    }
}

/// Removes `recovery.signal` and `standby.signal` (absent is fine): a restored database then starts as a
/// primary, with no recovery beyond the end of its backup.
pub(crate) fn remove_recovery_signals(data: &Path) -> io::Result<()> {
    remove_standby_signal(data)?;
    match fs::remove_file(data.join(RECOVERY_SIGNAL)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes `standby.signal` (absent is fine).
pub(crate) fn remove_standby_signal(data: &Path) -> io::Result<()> {
    match fs::remove_file(data.join(STANDBY_SIGNAL)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes a file (mode 0600, owned by `owner`) through a fresh temporary file renamed over `path`, so that a
/// symbolic link at `path` is replaced, not followed.
pub(crate) fn write_file(path: &Path, content: impl AsRef<[u8]>, owner: Option<Owner>) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".vigil-tmp");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    // create_new (O_EXCL) fails on anything already there, a link included.
    let mut file = open_nofollow(&tmp, fs::OpenOptions::new().write(true).create_new(true).mode(0o600), 0)?;
    file.write_all(content.as_ref()).map_err(|e| with_path(&tmp, e))?;
    set_owner(&file, owner).map_err(|e| with_path(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| with_path(path, e))
}

/// Gives the open `file` to `owner` (nothing when the agent's own user is meant): `fchown`, so no link
/// planted at its path can redirect it.
fn set_owner(file: &fs::File, owner: Option<Owner>) -> io::Result<()> {
    match owner {
        Some(o) => fchown(file, Some(o.uid), Some(o.gid)),
        None => Ok(()),
    }
}

/// Whether the process a postmaster's lock file (`postmaster.pid`, or a socket's `.s.PGSQL.<port>.lock`)
/// names runs: `None` without the file (or a PID in it), `Some(false)` when that process is gone or a
/// zombie.
///
/// A killed postmaster stays a zombie until its parent reaps it; it was re-parented to init, which on some
/// machines reaps only every second or two. Meanwhile PostgreSQL (and `pg_ctl status`) take the zombie for
/// a running server.
pub(crate) fn lock_holder_runs(lock: &Path) -> io::Result<Option<bool>> {
    Ok(lock_holder(lock)?.map(leftovers::is_live))
}

/// Whether the process a postmaster's lock file names can serve: it runs, and is neither stopped
/// (SIGSTOP) nor a zombie. Its backends may still answer over a session already open when it cannot
/// (start a session, take a signal to promote or reload).
pub(crate) fn lock_holder_serves(lock: &Path) -> bool {
    matches!(lock_holder(lock), Ok(Some(pid)) if leftovers::runs_unstopped(pid))
}

/// The PID in `lock`'s first line: `None` without the file (or a PID in it).
fn lock_holder(lock: &Path) -> io::Result<Option<libc::pid_t>> {
    let pid = match fs::read_to_string(lock) {
        Ok(text) => text.lines().next().and_then(|l| l.trim().parse::<u32>().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(pid.and_then(|p| libc::pid_t::try_from(p).ok()))
}

/// Removes `lock` when the process it names is dead or a zombie (see [`lock_holder_runs`]), and says
/// whether it did. PostgreSQL would refuse to start while a lock file names a zombie; removing it is
/// safe: PostgreSQL still refuses to start while any process of the old server is attached to its
/// shared memory.
pub(crate) fn remove_stale_lock(lock: &Path) -> io::Result<bool> {
    if lock_holder_runs(lock)? != Some(false) {
        return Ok(false);
    }
    fs::remove_file(lock)?;
    Ok(true)
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod symlink_tests;

#[cfg(test)]
mod stale_pid_tests {
    use super::super::render::pid_file;
    use super::*;

    fn write_pid_file(dir: &Path, pid: u32) {
        fs::write(pid_file(dir), format!("{pid}\n/data\n")).expect("write pid file");
    }

    #[test]
    fn a_live_postmaster_keeps_its_pid_file_and_dead_or_zombie_ones_lose_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!remove_stale_lock(&pid_file(dir.path())).expect("no file"));
        assert_eq!(lock_holder_runs(&pid_file(dir.path())).expect("no file"), None);
        write_pid_file(dir.path(), std::process::id());
        assert_eq!(lock_holder_runs(&pid_file(dir.path())).expect("alive"), Some(true));
        assert!(!remove_stale_lock(&pid_file(dir.path())).expect("alive"));
        assert!(pid_file(dir.path()).exists());

        // A child that exited and is not reaped yet: a zombie.
        let mut zombie = std::process::Command::new("true").spawn().expect("spawn");
        let pid = zombie.id();
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z")) {
            assert!(std::time::Instant::now() < deadline, "the child never became a zombie");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        write_pid_file(dir.path(), pid);
        assert_eq!(
            lock_holder_runs(&pid_file(dir.path())).expect("zombie"),
            Some(false),
            "a zombie does not run"
        );
        assert!(remove_stale_lock(&pid_file(dir.path())).expect("zombie"));
        zombie.wait().expect("reap");

        // A reaped one: dead.
        write_pid_file(dir.path(), pid);
        assert!(remove_stale_lock(&pid_file(dir.path())).expect("dead"));
        assert!(!pid_file(dir.path()).exists());
    }

    #[test]
    fn a_stopped_postmaster_runs_but_does_not_serve() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!lock_holder_serves(&pid_file(dir.path())), "no file");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn");
        write_pid_file(dir.path(), child.id());
        assert!(lock_holder_serves(&pid_file(dir.path())));
        let pid = child.id() as libc::pid_t;
        let state_is = |letter: &str| crate::db::leftovers::stat_field(pid, 0).as_deref() == Some(letter);
        let wait_for_state = |letter: &str| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !state_is(letter) {
                assert!(std::time::Instant::now() < deadline, "never in state {letter}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        // SAFETY: kill(2) on a child this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        wait_for_state("T");
        assert!(!lock_holder_serves(&pid_file(dir.path())), "stopped");
        assert_eq!(lock_holder_runs(&pid_file(dir.path())).expect("stopped"), Some(true), "it still runs");
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        wait_for_state("S");
        assert!(lock_holder_serves(&pid_file(dir.path())), "resumed");
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(!lock_holder_serves(&pid_file(dir.path())), "dead");
    }
}
