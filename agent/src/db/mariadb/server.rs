//! The server process: `mariadb-install-db`, `mariadbd` started in the background under the option file
//! the adapter wrote, and its end (SIGTERM, or SIGKILL when it must not finish anything).

use super::{render, sql, MariaDbSettings};
use crate::db::server_files::log_tail;
use crate::db::DbError;
use crate::os_user::OsUser;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::time::Instant;

/// How long a start may take until the server accepts connections (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a clean stop may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the processes may take to be gone after SIGKILL.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// `--user=…` for a server program, when the agent runs as root and `os_user` is set.
fn user_arg(s: &MariaDbSettings) -> Option<OsString> {
    s.os_user.as_ref().filter(|_| running_as_root()).map(|user| format!("--user={user}").into())
}

/// Runs `path` with `args`; a failure is an error of `action` with its output.
async fn run(action: &str, path: &Path, args: &[OsString]) -> Result<(), DbError> {
    let program = path.file_name().unwrap_or_default().to_string_lossy();
    let out = command(path)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| DbError::new(action, format!("cannot run {}: {e}", path.display())))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(DbError::new(action, format!("{program} {}: {}", out.status, said.trim())));
    }
    Ok(())
}

/// `path` ready to run in `/`, without the agent's secrets in its environment, killed if dropped.
pub(super) fn command(path: impl AsRef<std::ffi::OsStr>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(path);
    crate::config::env::withhold(cmd.as_std_mut());
    cmd.current_dir("/").kill_on_drop(true);
    cmd
}

/// [`command`] that runs as the server's OS user when the agent runs as root (the files it creates are
/// the server's).
pub(super) fn tool(s: &MariaDbSettings, path: &Path) -> Result<tokio::process::Command, DbError> {
    let mut cmd = command(path);
    if let Some(name) = s.os_user.as_deref().filter(|_| running_as_root()) {
        let user = OsUser::lookup(name).map_err(|e| DbError::new("mysql.os_user", e))?;
        user.become_in(&mut cmd);
    }
    Ok(cmd)
}

/// Creates the system tables in the empty data directory, owned by the OS user, with the server's
/// own options (the redo log's size, the data directory).
pub(super) async fn install(s: &MariaDbSettings, upstream_timeout: Duration) -> Result<(), DbError> {
    write_option_file(s, upstream_timeout)?;
    let mut args: Vec<OsString> = vec![
        format!("--defaults-file={}", s.option_file().display()).into(),
        "--auth-root-authentication-method=socket".into(),
        "--skip-test-db".into(),
    ];
    args.extend(user_arg(s));
    let Some(install_db) = &s.programs.install_db else {
        return Err(DbError::new("create the data directory", "MySQL servers are not supported yet"));
    };
    run("mariadb-install-db", install_db, &args).await
}

/// Writes the option file and starts `mariadbd` in a process group of its own, then waits until it
/// answers on its socket, or fails with the end of its error log.
pub(super) async fn start(s: &MariaDbSettings, upstream_timeout: Duration) -> Result<(), DbError> {
    let fail = |detail: String| DbError::new("start mariadbd", detail);
    write_option_file(s, upstream_timeout)?;
    let mut args: Vec<OsString> = vec![format!("--defaults-file={}", s.option_file().display()).into()];
    args.extend(user_arg(s));
    let mut cmd = tokio::process::Command::new(&s.programs.server);
    crate::config::env::withhold(cmd.as_std_mut());
    let mut child = cmd
        .args(&args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| fail(format!("cannot run mariadbd: {e}")))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let su = &s.superuser;
        if sql::answers(&s.socket(), &su.username, Some(su.password.expose())).await {
            // Reaped in the background when it ends.
            tokio::spawn(async move { child.wait().await });
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(format!("mariadbd {status}: {}", log_tail(&s.error_log()))));
        }
        if Instant::now() >= deadline {
            tokio::spawn(async move { child.wait().await });
            return Err(fail(format!(
                "not accepting connections after {START_TIMEOUT:?}: {}",
                log_tail(&s.error_log())
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes the option file for the next start, and makes the server's own temporary directory (servers
/// sharing one remove each other's temporary files when they start).
fn write_option_file(s: &MariaDbSettings, upstream_timeout: Duration) -> Result<(), DbError> {
    let fail = |path: &Path, e: std::io::Error| {
        DbError::new("prepare the server's files", format!("{}: {e}", path.display()))
    };
    if let Some(parent) = s.data_dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
    }
    std::fs::write(s.option_file(), render::option_file(s, upstream_timeout))
        .map_err(|e| fail(&s.option_file(), e))?;
    server_dir(s, &s.tmp_dir())
}

/// Makes the directory `dir` if it is missing, and gives it to the server's OS user when the agent runs
/// as root.
pub(super) fn server_dir(s: &MariaDbSettings, dir: &Path) -> Result<(), DbError> {
    let fail =
        |e: std::io::Error| DbError::new("prepare the server's files", format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    if let Some(name) = s.os_user.as_deref().filter(|_| running_as_root()) {
        let owner = OsUser::lookup(name).map_err(fail)?.owner();
        std::os::unix::fs::chown(dir, Some(owner.uid), Some(owner.gid)).map_err(fail)?;
    }
    Ok(())
}

/// Whether the agent runs as root.
fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The pid of the running `mariadbd` of this data directory, from its pid file (checked to be a
/// `mariadbd`: a stale file may name a pid reused by anything else).
pub(crate) fn server_pid(pid_file: &Path) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let pid: libc::pid_t = text.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')));
    (exe.file_name()? == "mariadbd" && alive).then_some(pid)
}

/// Ends the `mariadbd` of `data_dir`, if one runs, for a lifeline whose agent died: SIGKILL, so that it
/// acknowledges nothing more (crash recovery on the next start).
pub(crate) fn kill_for_lifeline(data_dir: &std::path::Path) {
    let Some(pid) = server_pid(&data_dir.join(super::PID_FILE)) else { return };
    eprintln!("vigil lifeline: the agent is gone; killing mariadbd {pid} of {}", data_dir.display());
    // SAFETY: kill(2) with a pid just checked to be this data directory's mariadbd.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Whether the server process runs.
pub(super) fn runs(s: &MariaDbSettings) -> bool {
    server_pid(&s.pid_file()).is_some()
}

/// Sends `signal` to the server (0: none, only waiting) and waits up to `within` until it is gone. `Ok(false)`:
/// it did not run.
async fn signal_and_wait(s: &MariaDbSettings, signal: libc::c_int, within: Duration) -> Result<bool, String> {
    let Some(pid) = server_pid(&s.pid_file()) else { return Ok(false) };
    // SAFETY: kill(2) with a pid just checked to be this data directory's mariadbd.
    unsafe { libc::kill(pid, signal) };
    let deadline = Instant::now() + within;
    while server_pid(&s.pid_file()) == Some(pid) {
        if Instant::now() >= deadline {
            return Err(format!("mariadbd {pid} still runs {within:?} after signal {signal}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(true)
}

/// Stops the server cleanly, killing it when that takes too long: `SHUTDOWN WAIT FOR ALL SLAVES`, so that
/// the connected replicas receive everything it logged before it exits (a switchover hands over nothing
/// less), or SIGTERM when it does not take the statement.
pub(super) async fn stop(s: &MariaDbSettings) -> Result<(), DbError> {
    let Some(pid) = server_pid(&s.pid_file()) else { return Ok(()) };
    let su = &s.superuser;
    let shutdown = async {
        let mut session =
            sql::connect(&s.socket(), &su.username, Some(su.password.expose()), STOP_TIMEOUT).await?;
        sql::run(&mut session, s.dialect().shutdown()).await
    };
    if let Err(e) = shutdown.await {
        tracing::info!(member = %s.name, error = %e, "shutdown statement not taken: SIGTERM");
        // SAFETY: kill(2) with a pid just checked to be this data directory's mariadbd.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    if signal_and_wait(s, 0, STOP_TIMEOUT).await.is_err() {
        tracing::warn!(member = %s.name, "mariadbd did not stop within {STOP_TIMEOUT:?}: killing it");
        return kill(s).await;
    }
    Ok(())
}

/// Kills the server at once (SIGKILL): nothing it acknowledges afterwards can exist; crash recovery on
/// the next start.
pub(super) async fn kill(s: &MariaDbSettings) -> Result<(), DbError> {
    signal_and_wait(s, libc::SIGKILL, GONE_WITHIN)
        .await
        .map(drop)
        .map_err(|e| DbError::new("kill mariadbd", e))
}
