//! The operator's methods, as Patroni runs them (`postgresql/bootstrap.py`):
//!
//! - `postgresql.create_replica_methods`: tried in order until one exits 0; a custom one runs
//!   `<command> [--<key>=<value>…] --scope=… --role=replica --datadir=… --connstring=<upstream>` (the
//!   agent's four left out with `no_params`), with the data directory emptied before it and after a
//!   failure unless `keep_data`; once all failed, it is emptied whatever they said. With no primary to
//!   copy from, only the methods with `no_leader` are tried, with an empty `--connstring`.
//! - `bootstrap.method`: `<command> [--<key>=<value>…] --scope=… --datadir=…` makes the database (a
//!   restore from a backup); the server then starts with `recovery_conf` and `recovery.signal` (or with
//!   what the restore wrote: `keep_existing_recovery_conf`, or with neither), the agent waits until it
//!   leaves recovery (a server paused at its recovery target is promoted), and it runs as the cluster's
//!   first primary.
//! - `bootstrap.post_bootstrap` (`post_init`): run with a connection string to the new primary once its
//!   roles exist; a failure fails the bootstrap.

use super::ops::CONNECT_TIMEOUT;
use super::render::{self, Conf, Target};
use super::{conninfo, files, sql, Postgres};
use crate::config::{long_arguments, CloneMethod, CustomBootstrap, CustomMethod};
use crate::db::{DbError, Upstream};
use std::time::Duration;
use tokio::time::Instant;

/// How often the wait for a restored server's end of recovery says it still waits.
const RECOVERY_NOTE_EVERY: Duration = Duration::from_secs(10);

impl Postgres {
    /// Makes the data directory a copy of the database with the first of `create_replica_methods` that
    /// succeeds; with no upstream, only those that need none (`no_leader`) are tried. `Err` lists why each
    /// failed.
    pub(super) async fn create_replica(&self, up: Option<&Upstream>) -> Result<(), DbError> {
        let methods: Vec<&CloneMethod> =
            self.settings.clone_methods.iter().filter(|m| up.is_some() || m.no_leader()).collect();
        let from = up.map_or("-", |u| u.name.as_str());
        let mut failures = Vec::new();
        for (i, method) in methods.iter().enumerate() {
            let name = method.name();
            let left = methods.len() - i - 1;
            let reason = match (i.checked_sub(1).map(|p| methods[p].name()), up) {
                (Some(previous), _) => format!("{previous} failed"),
                (None, Some(_)) => "first of create_replica_methods".to_owned(),
                (None, None) => "no primary to copy from: a no_leader method".to_owned(),
            };
            tracing::info!(member = %self.settings.name, method = %name, upstream = %from, attempt = i + 1, of = methods.len(), %reason, "creating the replica");
            let started = Instant::now();
            let created = match (method, up) {
                (CloneMethod::Basebackup, Some(up)) => self.emptied_then(self.clone_by_basebackup(up)).await,
                (CloneMethod::Custom { name, method }, up) => self.clone_by_command(name, method, up).await,
                (CloneMethod::Basebackup, None) => {
                    Err(DbError::new("pg_basebackup", "no primary to copy from"))
                }
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            match created {
                Ok(()) => {
                    tracing::info!(member = %self.settings.name, method = %name, upstream = %from, duration_ms, "replica created");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(member = %self.settings.name, method = %name, duration_ms, error = %e, methods_left = left, "replica method failed");
                    failures.push(format!("{name}: {}", e.detail));
                }
            }
        }
        self.empty_data_dir().await?;
        Err(DbError::new("create replica", format!("every method failed: {}", failures.join("; "))))
    }

    /// Runs `work` on an emptied data directory.
    async fn emptied_then(
        &self,
        work: impl std::future::Future<Output = Result<(), DbError>>,
    ) -> Result<(), DbError> {
        if !files::is_empty(self.data_dir()).map_err(|e| DbError::new("create replica", e))? {
            self.empty_data_dir().await?;
        }
        work.await
    }

    /// Runs the replica method `name` (see the module's documentation); `--connstring` is empty with no
    /// upstream.
    async fn clone_by_command(
        &self,
        name: &str,
        method: &CustomMethod,
        up: Option<&Upstream>,
    ) -> Result<(), DbError> {
        let data = self.data_dir();
        if method.keep_data {
            tracing::info!(member = %self.settings.name, method = %name, "keeping what the data directory holds (keep_data)");
        }
        let mut args: Vec<String> = long_arguments(&method.arguments).collect();
        if !method.no_params {
            let s = &self.settings;
            let connstring =
                up.map(|up| conninfo::to_member(up, &s.replication, &s.pgpass, &[])).unwrap_or_default();
            args.extend([
                format!("--scope={}", s.scope),
                "--role=replica".to_owned(),
                format!("--datadir={}", data.display()),
                format!("--connstring={connstring}"),
            ]);
        }
        let what = format!("replica method {name}");
        let run = async {
            self.tools.shell(&what, &method.command, &args, &[]).await?;
            self.require_database(&what)
        };
        let ran = if method.keep_data { run.await } else { self.emptied_then(run).await };
        if ran.is_err() && !method.keep_data {
            self.empty_data_dir().await?;
        }
        ran
    }

    /// Runs the bootstrap method `custom`; on failure the data directory is emptied again.
    pub(super) async fn restore(&self, custom: &CustomBootstrap) -> Result<(), DbError> {
        let owner = self.tools.owner()?;
        self.blocking("prepare data directory", move |s| {
            files::prepare_dirs(s, owner)?;
            files::write_pgpass(s, owner)
        })
        .await?;
        let mut args: Vec<String> = long_arguments(&custom.arguments).collect();
        if !custom.no_params {
            let s = &self.settings;
            args.extend([format!("--scope={}", s.scope), format!("--datadir={}", s.data_dir.display())]);
        }
        let what = format!("bootstrap method {}", custom.name);
        tracing::info!(member = %self.settings.name, method = %custom.name, command = %custom.command, "bootstrapping with a method of the operator's");
        let started = Instant::now();
        let ran = async {
            self.tools.shell(&what, &custom.command, &args, &[]).await?;
            self.require_database(&what)
        }
        .await;
        if ran.is_err() {
            self.empty_data_dir().await?;
        }
        ran?;
        let duration_ms = started.elapsed().as_millis() as u64;
        tracing::info!(member = %self.settings.name, method = %custom.name, duration_ms, "database made by the bootstrap method");
        Ok(())
    }

    /// Starts the database `custom` made, waits for the end of its recovery and configures it as the
    /// primary it then is.
    pub(super) async fn recover_restored(&self, custom: &CustomBootstrap) -> Result<(), DbError> {
        let conf = match (&custom.recovery_conf, custom.keep_existing_recovery_conf) {
            (Some(settings), _) => Conf::Restore(Some(settings.clone())),
            (None, true) => Conf::Restore(None),
            (None, false) => {
                self.blocking("remove recovery signals", |s| files::remove_recovery_signals(&s.data_dir))
                    .await?;
                Conf::Primary
            }
        };
        let recovering = conf != Conf::Primary;
        self.configure(conf).await?;
        self.start().await?;
        if !recovering {
            return Ok(());
        }
        self.await_end_of_recovery().await?;
        // The recovery settings go, the restore's own too (postgresql.auto.conf: pgBackRest's): a later
        // start must not recover again, nor a later replica stop at this target.
        let owner = self.tools.owner()?;
        self.blocking("drop the recovery target", move |s| {
            files::drop_auto_conf_settings(s, owner, render::is_recovery_target)
        })
        .await?;
        self.configure(Conf::Primary).await?;
        self.tools.pg_ctl_reload(self.data_dir()).await
    }

    /// Waits, as long as the server runs, until it leaves recovery; a server paused at its recovery
    /// target (`recovery_target_action: pause`, PostgreSQL's default) is promoted.
    async fn await_end_of_recovery(&self) -> Result<(), DbError> {
        let name = &self.settings.name;
        let started = Instant::now();
        let mut noted = Instant::now();
        let mut promoted = false;
        loop {
            if !self.tools.pg_ctl_running(self.data_dir()).await? {
                let tail = crate::db::server_files::log_tail(&files::log_path(&self.settings));
                let why = format!("the server stopped while recovering; server log: {}", tail.trim());
                return Err(DbError::new("recover the restored database", why));
            }
            let session = match self.connect_local(CONNECT_TIMEOUT).await {
                Ok(session) => Some(session),
                Err(e) if e.to_string().contains("authentication failed") => {
                    let why = format!("{e}: the restored database must have the superuser and password of postgresql.authentication.superuser");
                    return Err(DbError::new("recover the restored database", why));
                }
                Err(_) => None, // not consistent yet
            };
            if let Some(session) = session {
                match sql::in_recovery(&session.client).await {
                    Ok(false) => {
                        let duration_ms = started.elapsed().as_millis() as u64;
                        tracing::info!(member = %name, duration_ms, "restored database out of recovery: it is the primary");
                        return Ok(());
                    }
                    Ok(true) if !promoted && sql::replay_paused(&session.client).await.unwrap_or(false) => {
                        tracing::info!(member = %name, "recovery paused at its target: promoting");
                        self.tools.pg_ctl_promote(self.data_dir()).await?;
                        promoted = true;
                    }
                    _ => {}
                }
            }
            if noted.elapsed() >= RECOVERY_NOTE_EVERY {
                let waited_s = started.elapsed().as_secs();
                tracing::info!(member = %name, waited_s, "restored database still recovering");
                noted = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `bootstrap.post_bootstrap`, when set, with a connection string to the new primary (as its
    /// superuser; the password comes from the password file) and Patroni's `PGOPTIONS`.
    pub(super) async fn post_bootstrap(&self) -> Result<(), DbError> {
        let Some(command) = &self.settings.post_bootstrap else { return Ok(()) };
        let s = &self.settings;
        let host = match render::agent_target(s) {
            Target::Socket(dir) => dir.display().to_string(),
            Target::Tcp(host) => host,
        };
        let connstring = conninfo::local(&host, s.port, &s.superuser.username, &s.pgpass);
        let options = [("PGOPTIONS", "-c synchronous_commit=local -c statement_timeout=0")];
        self.tools.shell("post_bootstrap", command, &[connstring], &options).await?;
        tracing::info!(member = %s.name, %command, "post_bootstrap done");
        Ok(())
    }
}
