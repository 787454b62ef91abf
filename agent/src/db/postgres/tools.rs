//! Running PostgreSQL's programs (initdb, pg_ctl, pg_basebackup, pg_rewind, pg_controldata, psql) as the configured
//! OS user: PostgreSQL refuses to run as root.

use super::{conf_files, files, PostgresSettings};
use crate::config::{env, BinNames};
use crate::db::{DbError, StopMode};
use crate::os_user::{current_uid, OsUser, Owner};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// How long `pg_ctl start -w` waits for the server to accept connections, at most (`pg_ctl_timeout` when
/// shorter). A server still recovering by then is left starting: the HA loop watches it (state
/// `starting`) instead of blocking.
const START_WAIT_SECS: u64 = 5;
/// How long an immediate stop (`pg_ctl stop -m immediate`) is waited for: it takes well under a second
/// unless the server's processes are stopped or hung, and then the adapter kills them instead.
const IMMEDIATE_STOP_TIMEOUT_SECS: u64 = 5;

/// A finished program.
pub(crate) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// What went wrong, in the program's own words.
    pub fn detail(&self) -> String {
        let stderr = self.stderr.trim();
        let stdout = self.stdout.trim();
        if !stderr.is_empty() {
            stderr.to_string()
        } else if !stdout.is_empty() {
            stdout.to_string()
        } else {
            match self.code {
                Some(code) => format!("exited with status {code}"),
                None => "killed by a signal".to_string(),
            }
        }
    }
}

/// Runs the binaries of one PostgreSQL installation.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    bin_dir: PathBuf,
    bin_name: BinNames,
    os_user: Option<String>,
    pgpass: PathBuf,
    /// `pg_ctl -t` for starts (up to [`START_WAIT_SECS`]) and fast stops, in seconds.
    pg_ctl_timeout: u64,
    /// postgresql.conf when it is outside the data directory (`config_dir`): the server is started with it.
    config_file: Option<PathBuf>,
}

impl Tools {
    /// The binaries of `s.bin_dir` (named by `s.bin_name`), run as `s.os_user` (when set) with
    /// `PGPASSFILE` and without the agent's `VIGIL_*` variables.
    pub fn new(s: &PostgresSettings) -> Tools {
        Tools {
            bin_dir: s.bin_dir.clone(),
            bin_name: s.bin_name.clone(),
            os_user: s.os_user.clone(),
            pgpass: s.pgpass.clone(),
            pg_ctl_timeout: s.pg_ctl_timeout.as_secs().max(1),
            config_file: s.config_dir.is_some().then(|| conf_files::postgresql_conf(s)),
        }
    }

    /// postgresql.conf when it is outside the data directory.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The `pg_ctl_timeout`.
    pub fn pg_ctl_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.pg_ctl_timeout)
    }

    /// The configured OS user, looked up.
    pub fn user(&self) -> Result<Option<OsUser>, DbError> {
        match &self.os_user {
            None => Ok(None),
            Some(name) => {
                OsUser::lookup(name).map(Some).map_err(|e| DbError::new(format!("look up OS user {name}"), e))
            }
        }
    }

    /// Who should own the files made for PostgreSQL (`None`: whoever the agent runs as).
    pub fn owner(&self) -> Result<Option<Owner>, DbError> {
        Ok(self.user()?.map(|u| u.owner()))
    }

    /// Runs `program` with `args` and returns how it ended; fails only when it cannot be started.
    pub async fn exec(&self, program: &str, args: &[OsString]) -> Result<Ran, DbError> {
        let path = self.bin_dir.join(self.bin_name.of(program));
        let mut cmd = tokio::process::Command::new(&path);
        env::withhold(cmd.as_std_mut());
        cmd.args(args)
            .current_dir("/")
            .env("PGPASSFILE", &self.pgpass)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if program == "pg_controldata" {
            cmd.env("LC_ALL", "C"); // its output is parsed: no translations
        }
        if let Some(user) = self.user()? {
            run_as(&mut cmd, &user);
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| DbError::new(program, format!("cannot run {}: {e}", path.display())))?;
        Ok(Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs the operator's `command` line (a replica or bootstrap method, `post_bootstrap`) through `sh -c`
    /// with `args` appended, as the OS user with `PGPASSFILE` and `vars`, and waits for it however long it
    /// takes; `Err` says how it failed.
    pub async fn shell(
        &self,
        what: &str,
        command: &str,
        args: &[String],
        vars: &[(&str, &str)],
    ) -> Result<(), DbError> {
        let user = self.user()?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let pgpass = self.pgpass.clone();
        crate::ha::hooks::run_with(what, command, &args, vars, None, |cmd| {
            cmd.current_dir("/").env("PGPASSFILE", pgpass);
            if let Some(user) = &user {
                run_as(cmd, user);
            }
        })
        .await
        .map_err(|why| DbError::new(what, why))
    }

    /// Runs `program`; an exit status other than 0 is an error of `action` with the program's stderr.
    pub async fn run(&self, action: &str, program: &str, args: &[OsString]) -> Result<Ran, DbError> {
        let ran = self.exec(program, args).await?;
        if ran.code == Some(0) {
            if program != "pg_controldata" {
                let output = ran.stderr.trim().replace('\n', " | ");
                tracing::debug!(program, output, "ran");
            }
            Ok(ran)
        } else {
            Err(DbError::new(action, ran.detail()))
        }
    }

    /// Runs `sql` with psql on the server `conninfo` names (no psqlrc, unaligned rows without headers,
    /// stopping at the first error) and returns what it printed.
    pub async fn psql(&self, action: &str, conninfo: &str, sql: &str) -> Result<String, DbError> {
        let args =
            ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql].map(OsString::from);
        self.run(action, "psql", &args).await.map(|ran| ran.stdout)
    }

    /// `pg_ctl start -w`, logging to `log`, with postgresql.conf from `config_dir` when set; a failure
    /// quotes the end of the server log.
    pub async fn pg_ctl_start(&self, data: &Path, log: &Path) -> Result<(), DbError> {
        let wait_s = START_WAIT_SECS.min(self.pg_ctl_timeout);
        let mut start = args(["start", "-w", "-t", &wait_s.to_string(), "-D"], data, Some(log));
        if let Some(conf) = &self.config_file {
            // pg_ctl hands -o to a shell: the path is single-quoted
            let quoted = conf.display().to_string().replace('\'', "'\\''");
            start.extend(["-o".into(), format!("--config-file='{quoted}'").into()]);
        }
        let ran = self.exec("pg_ctl", &start).await?;
        if ran.code == Some(0) {
            return Ok(());
        }
        if self.pg_ctl_running(data).await? {
            tracing::info!(data = %data.display(), wait_s, "server still starting (recovery)");
            return Ok(());
        }
        let tail = crate::db::server_files::log_tail(log);
        Err(DbError::new("pg_ctl start", format!("{}; server log: {}", ran.detail(), tail.trim())))
    }

    /// `pg_ctl stop -W` in `mode`, then waits for the postmaster to exit: a fast stop up to `timeout`
    /// (`None`: `pg_ctl_timeout`).
    pub async fn pg_ctl_stop(
        &self,
        data: &Path,
        mode: StopMode,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), DbError> {
        let (mode, timeout) = match mode {
            StopMode::Fast => ("fast", timeout.map_or(self.pg_ctl_timeout, |t| t.as_secs().max(1))),
            StopMode::Immediate => ("immediate", IMMEDIATE_STOP_TIMEOUT_SECS),
        };
        self.run("pg_ctl stop", "pg_ctl", &args(["stop", "-m", mode, "-W", "-D"], data, None)).await?;
        // `-w` would look every 100 ms: on a switchover, that is write downtime.
        match super::kill::gone_within(data, std::time::Duration::from_secs(timeout)).await {
            true => Ok(()),
            false => Err(DbError::new("pg_ctl stop", format!("the server still runs after {timeout} s"))),
        }
    }

    /// Whether a postmaster runs on `data` (`pg_ctl status`). A killed one that is not reaped yet (a
    /// zombie, which `pg_ctl` takes for running) does not: its server is restarted at once.
    pub async fn pg_ctl_running(&self, data: &Path) -> Result<bool, DbError> {
        if files::lock_holder_runs(&super::render::pid_file(data)).ok().flatten() == Some(false) {
            return Ok(false);
        }
        let ran = self.exec("pg_ctl", &args(["status", "-D"], data, None)).await?;
        match ran.code {
            Some(0) => Ok(true),
            Some(3) | Some(4) => Ok(false), // not running / no accessible data directory
            _ => Err(DbError::new("pg_ctl status", ran.detail())),
        }
    }

    /// `pg_ctl promote -W`: asks the server to leave recovery and returns at once (`-w` would poll the
    /// control file every 100 ms); the caller waits for the end of recovery itself.
    pub async fn pg_ctl_promote(&self, data: &Path) -> Result<(), DbError> {
        self.run("pg_ctl promote", "pg_ctl", &args(["promote", "-W", "-D"], data, None)).await.map(drop)
    }

    /// `pg_ctl reload`: the server rereads its configuration files.
    pub async fn pg_ctl_reload(&self, data: &Path) -> Result<(), DbError> {
        self.run("pg_ctl reload", "pg_ctl", &args(["reload", "-D"], data, None)).await.map(drop)
    }
}

/// Makes `cmd` run as `user`, with its `HOME`, `USER` and `LOGNAME`.
fn run_as(cmd: &mut tokio::process::Command, user: &OsUser) {
    cmd.env("HOME", &user.home).env("USER", &user.name).env("LOGNAME", &user.name);
    if user.uid != current_uid() {
        user.become_in(cmd);
    }
}

/// `fixed` followed by the data directory and, when given, `-l <log>`.
fn args<const N: usize>(fixed: [&str; N], data: &Path, log: Option<&Path>) -> Vec<OsString> {
    let mut out: Vec<OsString> = fixed.iter().map(OsString::from).collect();
    out.push(data.into());
    if let Some(log) = log {
        out.push("-l".into());
        out.push(log.into());
    }
    out
}
