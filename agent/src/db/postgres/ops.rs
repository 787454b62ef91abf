//! The bodies of the [`Database`](crate::db::Database) operations for [`Postgres`].

use super::render::{self, Conf, Runtime};
use super::sql::{self, RoleKind, Session};
use super::{
    conninfo, controldata, files, parameter_check, set_aside, standby_names, InitdbOption, Postgres,
    PostgresSettings,
};
use crate::db::{DbError, StopMode, SyncRule, Upstream};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long operations wait for a connection.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `promote` waits for the server to leave recovery.
const PROMOTE_DEADLINE: Duration = Duration::from_secs(60);
/// How often a promotion's end is looked for.
const PROMOTE_POLL: Duration = Duration::from_millis(10);

/// Options as `bootstrap.initdb` and `postgresql.basebackup` write them, as long options (`--flag`,
/// `--name=value`).
fn long_options(options: &[InitdbOption]) -> impl Iterator<Item = OsString> + '_ {
    options.iter().map(|o| match o {
        InitdbOption::Flag(f) => format!("--{}", f.trim_start_matches('-')).into(),
        InitdbOption::Value(n, v) => format!("--{}={v}", n.trim_start_matches('-')).into(),
    })
}

impl Postgres {
    pub(super) async fn bootstrap_now(&self) -> Result<(), DbError> {
        self.require_stopped_and_empty("bootstrap").await?;
        match &self.settings.custom_bootstrap {
            None => self.initdb().await?,
            Some(custom) => self.restore(custom).await?,
        }
        let prepared = self.start_bootstrapped().await;
        if prepared.is_err() {
            // Removed, the next attempt makes the database again (initdb, or the restore), rather than
            // starting a primary its roles were never created on.
            let _ = self.stop_server(StopMode::Immediate).await;
            self.empty_data_dir().await?;
        }
        prepared
    }

    /// Makes a new database with initdb.
    async fn initdb(&self) -> Result<(), DbError> {
        let owner = self.tools.owner()?;
        let pwfile =
            self.data_dir().with_file_name(format!(".{}.initdb-pw", self.settings.name.replace('/', "_")));
        let password = format!("{}\n", self.settings.superuser.password.expose());
        let pw = pwfile.clone();
        self.blocking("prepare data directory", move |s| {
            files::prepare_dirs(s, owner)?;
            files::write_pgpass(s, owner)?;
            files::write_file(&pw, &password, owner)
        })
        .await?;
        let mut args: Vec<OsString> =
            vec!["--auth-local=scram-sha-256".into(), "--auth-host=scram-sha-256".into()];
        args.extend(long_options(&self.settings.initdb));
        args.push(format!("--username={}", self.settings.superuser.username).into());
        let mut pwfile_arg = OsString::from("--pwfile=");
        pwfile_arg.push(&pwfile);
        args.extend([pwfile_arg, "-D".into(), self.data_dir().into()]);
        let initdb = self.tools.run("initdb", "initdb", &args).await;
        let _ = std::fs::remove_file(&pwfile);
        initdb.map(drop)
    }

    /// Starts a server initdb (or a bootstrap method) just made, recovered and promoted when it was
    /// restored, creates its replication and rewind roles and runs `post_bootstrap`.
    async fn start_bootstrapped(&self) -> Result<(), DbError> {
        match &self.settings.custom_bootstrap {
            None => {
                self.configure(Conf::Primary).await?;
                self.start().await?;
            }
            Some(custom) => self.recover_restored(custom).await?,
        }
        let s = &self.settings;
        let roles = [(Some(&s.replication), RoleKind::Replication), (s.rewind.as_ref(), RoleKind::Rewind)];
        let roles = roles.into_iter().filter_map(|(role, kind)| Some((role?, kind)));
        for (role, kind) in roles.filter(|(role, _)| role.username != s.superuser.username) {
            let session =
                self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| DbError::new("connect", e))?;
            sql::ensure_role(&session.client, role, kind)
                .await
                .map_err(|e| DbError::new(format!("create {kind:?} role"), e))?;
        }
        self.post_bootstrap().await
    }

    /// Makes the data a copy of `up`'s, configured to follow it; `None`: with the methods that need no
    /// primary, configured as a standby of nobody.
    pub(super) async fn clone_now(&self, up: Option<&Upstream>) -> Result<(), DbError> {
        self.require_stopped_and_empty("clone").await?;
        let owner = self.tools.owner()?;
        self.blocking("prepare data directory", move |s| {
            files::prepare_dirs(s, owner)?;
            files::write_pgpass(s, owner)
        })
        .await?;
        self.create_replica(up).await?;
        self.blocking("unmark former primary", |s| files::mark_former_primary(s, false)).await?;
        self.configure(Conf::Standby(up.cloned())).await
    }

    /// Copies the database from `up` with pg_basebackup (the `basebackup` replica method).
    pub(super) async fn clone_by_basebackup(&self, up: &Upstream) -> Result<(), DbError> {
        let action = format!("pg_basebackup from {}", up.name);
        let source = conninfo::to_member(up, &self.settings.replication, &self.settings.pgpass, &[]);
        let mut args: Vec<OsString> = vec!["-D".into(), self.data_dir().into(), "-d".into(), source.into()];
        args.extend(["-X", "stream", "-w"].map(OsString::from));
        let options = &self.settings.basebackup;
        if !options.iter().any(|o| o.name().trim_start_matches('-') == "checkpoint") {
            // the copy starts at once rather than at the upstream's next checkpoint
            args.extend(["-c", "fast"].map(OsString::from));
        }
        args.extend(long_options(options));
        self.basebackup(&action, up, &args).await
    }

    /// Removes everything in the data directory.
    pub(super) async fn empty_data_dir(&self) -> Result<(), DbError> {
        self.blocking("empty data directory", |s| files::remove_contents(&s.data_dir, files::DATA_DIR_KEY))
            .await
    }

    /// Runs pg_basebackup with `args`, through the slot it streams through on `up` (see
    /// [`render::upstream_slot`]) unless it has none, or `up` does not have it yet.
    async fn basebackup(&self, action: &str, up: &Upstream, args: &[OsString]) -> Result<(), DbError> {
        let slot = render::upstream_slot(&self.settings, up, &self.runtime());
        let Some(slot) = slot else {
            self.tools.run(action, "pg_basebackup", args).await?;
            return Ok(());
        };
        let with_slot: Vec<OsString> =
            args.iter().cloned().chain(["-S".into(), slot.clone().into()]).collect();
        match self.tools.run(action, "pg_basebackup", &with_slot).await {
            Err(e) if e.detail.contains("replication slot") && e.detail.contains("does not exist") => {
                tracing::info!(member = %self.settings.name, upstream = %up.name, slot, "no slot upstream yet, cloning without");
                self.empty_data_dir().await?;
                self.tools.run(action, "pg_basebackup", args).await?;
            }
            other => {
                other?;
            }
        }
        Ok(())
    }

    pub(super) async fn rewind_now(&self, up: &Upstream) -> Result<(), DbError> {
        let data = self.data_dir();
        if !files::has_database(data) {
            return Err(DbError::new("rewind", format!("no database in {}", data.display())));
        }
        // a standby found diverged while running; a clean shutdown spares pg_rewind a crash recovery
        self.stop_standby("rewind", StopMode::Fast).await?;
        let s = &self.settings;
        let options =
            [("dbname", "postgres".to_owned()), ("connect_timeout", CONNECT_TIMEOUT.as_secs().to_string())];
        let source = conninfo::to_member(up, &s.superuser, &s.pgpass, &options);
        let owner = self.tools.owner()?;
        self.blocking("write the password file", move |s| files::write_pgpass(s, owner)).await?;
        let action = format!("checkpoint on {}", up.name);
        let row = self.tools.psql(&action, &source, sql::REWIND_SOURCE_TIMELINES).await?;
        if sql::timeline_pending(&row) {
            self.tools.psql(&action, &source, "CHECKPOINT").await?;
            tracing::info!(member = %s.name, upstream = %up.name, "checkpoint run on the rewind source");
        }
        // single-user crash recovery, which pg_rewind runs on an unclean target, refuses standby mode
        self.blocking("prepare rewind", |s| files::remove_standby_signal(&s.data_dir)).await?;
        self.remove_stale_locks()?;
        let mut target = OsString::from("--target-pgdata=");
        target.push(data);
        // pg_rewind itself connects as the rewind role when there is one (the checkpoint needs the superuser)
        let rewinder = s.rewind.as_ref().unwrap_or(&s.superuser);
        let rewind_source = conninfo::to_member(up, rewinder, &s.pgpass, &options);
        let mut args = vec![target, format!("--source-server={rewind_source}").into()];
        if let Some(conf) = self.tools.config_file() {
            // its crash recovery of an unclean target runs the server, which reads postgresql.conf
            let mut option = OsString::from("--config-file=");
            option.push(conf);
            args.push(option);
        }
        self.tools.run(&format!("pg_rewind from {}", up.name), "pg_rewind", &args).await?;
        self.blocking("unmark former primary", |s| files::mark_former_primary(s, false)).await?;
        self.configure(Conf::Standby(Some(up.clone()))).await
    }

    pub(super) async fn remove_data_now(&self) -> Result<(), DbError> {
        self.stop_standby("remove data", StopMode::Immediate).await?;
        let owner = self.tools.owner()?;
        self.blocking("remove data", move |s| {
            files::mark_former_primary(s, false)?;
            files::remove_contents(&s.data_dir, files::DATA_DIR_KEY)?;
            files::prepare_dirs(s, owner)
        })
        .await?;
        self.set_configured(None);
        Ok(())
    }

    /// Moves the data directory aside (see [`set_aside`]) and makes a fresh one, for a re-clone.
    pub(super) async fn set_data_aside_now(&self) -> Result<(), DbError> {
        self.stop_standby("set data aside", StopMode::Immediate).await?;
        let owner = self.tools.owner()?;
        let kept = self
            .blocking("set data aside", move |s| {
                files::mark_former_primary(s, false)?;
                let kept = set_aside::move_aside(s, std::time::SystemTime::now())?;
                files::prepare_dirs(s, owner)?;
                Ok(kept)
            })
            .await?;
        tracing::warn!(member = %self.settings.name, kept = %kept.display(), "diverged data set aside, not removed (postgresql.remove_data_directory_on_* is false): remove it once nothing in it is needed");
        self.set_configured(None);
        Ok(())
    }

    pub(super) async fn start_primary_now(&self) -> Result<(), DbError> {
        self.require_database("start")?;
        if self.tools.pg_ctl_running(self.data_dir()).await? {
            return Ok(());
        }
        // A standby's data started as a primary would only run crash recovery, on a timeline that is not
        // its own (its upstream's, or an older one): it starts as a standby and is promoted instead.
        if files::has_standby_signal(self.data_dir()) {
            self.follow_now(None).await?;
            return self.promote_now().await;
        }
        self.configure(Conf::Primary).await?;
        self.start().await
    }

    pub(super) async fn follow_now(&self, up: Option<&Upstream>) -> Result<(), DbError> {
        self.require_database("follow")?;
        let data = self.data_dir();
        let conf = Conf::Standby(up.cloned());
        if self.tools.pg_ctl_running(data).await? {
            if files::has_standby_signal(data) {
                // a running replica: primary_conninfo takes effect on reload (PostgreSQL 13+)
                if self.configured().as_ref() == Some(&conf) {
                    return Ok(());
                }
                self.configure(conf).await?;
                return self.tools.pg_ctl_reload(data).await;
            }
            self.stop_server(StopMode::Fast).await?;
        }
        self.configure(conf).await?;
        self.start().await
    }

    pub(super) async fn stop_now(&self, mode: StopMode) -> Result<(), DbError> {
        let data = self.data_dir();
        if !files::has_database(data) {
            return Ok(());
        }
        match self.stop_server(mode).await {
            // A server that does not obey an immediate stop (its processes stopped or hung) is killed.
            Err(e) if mode == StopMode::Immediate && self.tools.pg_ctl_running(data).await? => {
                tracing::warn!(member = %self.settings.name, error = %e, "immediate stop failed: killing the server");
                self.kill_now().await
            }
            Err(e) if self.tools.pg_ctl_running(data).await? => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) async fn kill_now(&self) -> Result<(), DbError> {
        match super::kill::kill_server(self.data_dir()).await {
            Ok(killed) => {
                tracing::warn!(member = %self.settings.name, killed, "server killed (SIGKILL to the postmaster's process group)");
                Ok(())
            }
            Err(e) => Err(DbError::new("kill", e)),
        }
    }

    pub(super) async fn promote_now(&self) -> Result<(), DbError> {
        let session = self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| DbError::new("promote", e))?;
        let recovering = sql::in_recovery(&session.client).await.map_err(|e| DbError::new("promote", e))?;
        if recovering {
            // before the new timeline exists: a fence right after it must still find a former primary
            self.blocking("mark former primary", |s| files::mark_former_primary(s, true)).await?;
            self.tools.pg_ctl_promote(self.data_dir()).await?;
        }
        // The session already open sees the end of recovery (shared state): asked every 10 ms, a new
        // session only when it broke.
        let deadline = Instant::now() + PROMOTE_DEADLINE;
        let mut session = Some(session);
        loop {
            if session.is_none() {
                session = self.connect_local(CONNECT_TIMEOUT).await.ok();
            }
            if let Some(open) = &session {
                match sql::in_recovery(&open.client).await {
                    Ok(false) => {
                        self.set_configured(Some(Conf::Primary));
                        return Ok(());
                    }
                    Ok(true) => {}
                    Err(_) => session = None,
                }
            }
            if Instant::now() >= deadline {
                return Err(DbError::new("promote", "the server is still in recovery"));
            }
            tokio::time::sleep(PROMOTE_POLL).await;
        }
    }

    /// Commits a write on the primary (see [`sql::first_write`]).
    pub(super) async fn first_write_now(&self) -> Result<(), DbError> {
        let session =
            self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| DbError::new("first write", e))?;
        sql::first_write(&session.client).await.map_err(|e| DbError::new("first write", e))
    }

    /// Remembers `rule` for every later start and applies it to the running server, then has every standby
    /// report its position at once. PostgreSQL releases a waiting commit only when a standby it now waits
    /// for reports, and a standby that already holds the commit (an asynchronous one, until this rule)
    /// reports again only when new WAL comes or after `wal_receiver_status_interval` (10 s): without this,
    /// a commit that waited for a standby this rule drops could wait that long on a quiet primary.
    pub(super) async fn set_sync_rule_now(&self, rule: &SyncRule) -> Result<(), DbError> {
        let value = standby_names::render(rule);
        let applied =
            self.apply_runtime("synchronous_standby_names", value, |r| r.sync = rule.clone()).await?;
        let Some(session) = applied else { return Ok(()) };
        if let Err(e) = sql::nudge_standbys(&session.client).await {
            tracing::warn!(member = %self.settings.name, error = %e, "standbys not asked to report after the rule change");
        }
        Ok(())
    }

    /// Remembers `token` for every later start and applies it to the running server.
    pub(super) async fn set_fencing_token_now(&self, token: u64) -> Result<(), DbError> {
        self.apply_runtime(render::FENCING_TOKEN, token.to_string(), |r| r.fencing_token = Some(token))
            .await?;
        Ok(())
    }

    /// Runs the server with `parameters` from now on (see [`crate::db::Database::set_parameters`]), except
    /// `unix_socket_directories`: the agent connects through the directory the server was started with.
    pub(super) async fn set_parameters_now(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        let mut wanted = parameters.clone();
        const SOCKETS: &str = "unix_socket_directories";
        match self.settings.parameters.get(SOCKETS) {
            Some(started) => wanted.insert(SOCKETS.into(), started.clone()),
            None => wanted.remove(SOCKETS),
        };
        if wanted.get(SOCKETS) != parameters.get(SOCKETS) {
            tracing::warn!(member = %self.settings.name, parameter = SOCKETS, "not changed while the agent runs: it connects through it; restart the agent to change it");
        }
        let old = self.runtime().parameters.clone();
        // A value the server rejects would stop its next start: the old one stays.
        let new_values = crate::config::changed_parameters(&wanted, &old);
        for (name, error) in self.invalid_parameters(&new_values).await {
            tracing::error!(member = %self.settings.name, parameter = %name, %error, "server parameter not changed");
            match old.get(&name) {
                Some(kept) => wanted.insert(name, kept.clone()),
                None => wanted.remove(&name),
            };
        }
        let changed: BTreeSet<&String> =
            wanted.keys().chain(old.keys()).filter(|k| wanted.get(*k) != old.get(*k)).collect();
        if changed.is_empty() {
            return Ok(());
        }
        let applied = self.rewrite_and_reload("set parameters", |r| r.parameters = wanted.clone()).await?;
        let when = if applied.is_some() { "reloaded" } else { "kept for the next start" };
        tracing::info!(member = %self.settings.name, ?changed, when, "server parameters changed");
        Ok(())
    }

    /// Streams and clones with or without a slot (see [`crate::db::Database::set_use_slots`]).
    pub(super) async fn set_use_slots_now(&self, use_slots: bool) -> Result<(), DbError> {
        if self.runtime().without_slots != use_slots {
            return Ok(());
        }
        let applied = self.rewrite_and_reload("set use_slots", |r| r.without_slots = !use_slots).await?;
        let when = if applied.is_some() { "reloaded" } else { "kept for the next start" };
        tracing::info!(member = %self.settings.name, use_slots, when, "replication slot use changed");
        Ok(())
    }

    /// Takes `timeout` as the upstream timeout (see [`crate::db::Database::set_upstream_timeout`]).
    pub(super) async fn set_upstream_timeout_now(&self, timeout: Duration) -> Result<(), DbError> {
        if self.runtime().upstream_timeout == timeout {
            return Ok(());
        }
        let applied =
            self.rewrite_and_reload("set upstream timeout", |r| r.upstream_timeout = timeout).await?;
        let when = if applied.is_some() { "reloaded" } else { "kept for the next start" };
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(member = %self.settings.name, timeout_ms, when, "replication timeouts set from the lease ttl");
        Ok(())
    }

    /// Which of `parameters` the running server would reject, each with why; none when it does not run.
    pub(super) async fn invalid_parameters(
        &self,
        parameters: &BTreeMap<String, String>,
    ) -> Vec<(String, String)> {
        if parameters.is_empty() {
            return Vec::new();
        }
        let names: Vec<String> = parameters.keys().map(|k| k.to_ascii_lowercase()).collect();
        let definitions = match self.connect_local(CONNECT_TIMEOUT).await {
            Ok(session) => sql::definitions(&session.client, &names).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let definitions = match definitions {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(member = %self.settings.name, error = %e, "parameters not checked: the server does not answer");
                return Vec::new();
            }
        };
        parameters
            .iter()
            .filter_map(|(name, value)| {
                let definition = definitions.get(&name.to_ascii_lowercase());
                parameter_check::check(name, value, definition).err().map(|e| (name.clone(), e))
            })
            .collect()
    }

    /// Changes the runtime settings with `change` (kept for every later start) and waits until new
    /// sessions see `value` for `name`. Returns the session that saw it, if the server runs.
    pub(super) async fn apply_runtime(
        &self,
        name: &'static str,
        value: String,
        change: impl FnOnce(&mut Runtime),
    ) -> Result<Option<Session>, DbError> {
        let action = format!("set {name}");
        let failed = |e: String| DbError::new(action.clone(), e);
        let unchanged = {
            let mut runtime = self.runtime();
            let before = runtime.clone();
            change(&mut runtime);
            *runtime == before
        };
        // Already in force (a new primary's rule, say, that it had as a replica): no reload to wait for.
        if unchanged {
            if let Ok(session) = self.connect_local(CONNECT_TIMEOUT).await {
                if sql::setting(&session.client, name).await.is_ok_and(|applied| applied == value) {
                    return Ok(Some(session));
                }
            }
        }
        if self.rewrite_and_reload(&action, |_| {}).await?.is_none() {
            return Ok(None);
        }
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            // A session started after the postmaster re-read the files sees the new value.
            let session = self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| failed(e.to_string()))?;
            let applied = sql::setting(&session.client, name).await.map_err(|e| failed(e.to_string()))?;
            if applied == value {
                tracing::info!(member = %self.settings.name, setting = name, %value, "applied");
                return Ok(Some(session));
            }
            if Instant::now() >= deadline {
                return Err(failed(format!("still {applied:?} after a reload, wanted {value:?}")));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Changes the runtime settings with `change`, kept for every later start. On a running server,
    /// rewrites postgresql.conf, pg_hba.conf and pg_ident.conf (dropping any `ALTER SYSTEM` value of what
    /// the adapter owns) and reloads it; returns the session that asked for the reload (`None`: the
    /// server does not run).
    pub(super) async fn rewrite_and_reload(
        &self,
        action: &str,
        change: impl FnOnce(&mut Runtime),
    ) -> Result<Option<Session>, DbError> {
        change(&mut self.runtime());
        // A server that answers runs: `pg_ctl status` (a process to start) only when it does not, as on a
        // promotion's path every millisecond counts.
        let answered = match self.connect_local(CONNECT_TIMEOUT).await {
            Ok(session) => Some(session),
            Err(_) if !self.tools.pg_ctl_running(self.data_dir()).await? => return Ok(None),
            Err(_) => None,
        };
        let Some(conf) = self.configured_or_adopted().await? else { return Ok(None) };
        let runtime = self.runtime().clone();
        let owner = self.tools.owner()?;
        self.blocking(action, move |s| {
            files::write_server_conf(s, &conf, &runtime, owner)?;
            files::clean_auto_conf(s, owner)
        })
        .await?;
        let failed = |e: String| DbError::new(action, e);
        // The postmaster reads the files when it gets the reload signal: a session opened before they were
        // written may ask for it.
        let session = match answered {
            Some(session) => session,
            None => self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| failed(e.to_string()))?,
        };
        sql::reload(&session.client).await.map_err(|e| failed(e.to_string()))?;
        Ok(Some(session))
    }

    /// The configuration written last. A running primary this agent did not start (found running: a
    /// cluster moved from Patroni, or one kept through an agent restart in pause) is adopted: its
    /// configuration is written now, as for a start as primary, with the fencing token and synchronous
    /// standbys it shows (unless set since), so that runtime changes (parameters, the sync rule, the fencing token) reach
    /// it as they reach a server the agent started. A running replica gets its configuration when it
    /// follows; `None` until then, and while the server does not say which it is.
    async fn configured_or_adopted(&self) -> Result<Option<Conf>, DbError> {
        if let Some(conf) = self.configured() {
            return Ok(Some(conf));
        }
        let Ok(session) = self.connect_local(CONNECT_TIMEOUT).await else { return Ok(None) };
        if !matches!(sql::in_recovery(&session.client).await, Ok(false)) {
            return Ok(None);
        }
        // What it runs with that the rewrite must not drop: the fencing token an agent recorded (unset,
        // `SHOW` fails, on a server none did) and the synchronous standbys; another manager's rule, in a form
        // the agent does not write (Patroni's `node2`), is kept as "any replica": commits keep waiting for a
        // standby until the policy sets its own rule.
        let token = sql::setting(&session.client, render::FENCING_TOKEN).await.ok();
        let names = sql::setting(&session.client, "synchronous_standby_names").await.unwrap_or_default();
        drop(session);
        {
            let mut runtime = self.runtime();
            if let Some(token) = token.and_then(|t| t.parse::<u64>().ok()) {
                runtime.fencing_token.get_or_insert(token);
            }
            if runtime.sync == SyncRule::Off && !names.trim().is_empty() {
                runtime.sync = standby_names::parse(&names).unwrap_or(SyncRule::AnyReplica);
            }
        }
        tracing::info!(member = %self.settings.name, "running primary adopted: its configuration is the agent's from now on");
        self.configure(Conf::Primary).await?;
        Ok(Some(Conf::Primary))
    }

    /// Writes the whole configuration as `conf` says, with the directories and the password file, and
    /// remembers it.
    pub(super) async fn configure(&self, conf: Conf) -> Result<(), DbError> {
        if matches!(conf, Conf::Standby(_)) {
            self.read_primary_settings().await;
        }
        let owner = self.tools.owner()?;
        let written = conf.clone();
        let runtime = self.runtime().clone();
        self.blocking("write configuration", move |s| {
            if matches!(written, Conf::Primary | Conf::Restore(_)) {
                files::mark_former_primary(s, true)?;
            }
            files::prepare_dirs(s, owner)?;
            files::write_pgpass(s, owner)?;
            files::write_config(s, &written, &runtime, owner)
        })
        .await?;
        self.set_configured(Some(conf));
        Ok(())
    }

    /// Remembers the primary's settings that a hot standby needs at least as high, from the control file
    /// (kept as they were when it cannot be read), and says which the replica raises.
    async fn read_primary_settings(&self) {
        let read = self.tools.run("pg_controldata", "pg_controldata", &[self.data_dir().into()]).await;
        let Some(control) = read.ok().and_then(|ran| controldata::parse(&ran.stdout)) else { return };
        let mut runtime = self.runtime();
        runtime.primary_settings = control.primary_settings;
        for (name, value) in render::raised_for_hot_standby(&runtime) {
            tracing::info!(member = %self.settings.name, parameter = name, value, "replica raises it to its primary's value: hot standby needs it at least as high");
        }
    }

    pub(super) async fn start(&self) -> Result<(), DbError> {
        self.remove_stale_locks()?;
        self.tools.pg_ctl_start(self.data_dir(), &files::log_path(&self.settings)).await
    }

    /// Removes the lock files of a dead postmaster (a killed one may stay an unreaped zombie for a
    /// while), which would keep a server from starting, pg_rewind's crash recovery included.
    fn remove_stale_locks(&self) -> Result<(), DbError> {
        for lock in render::lock_files(&self.settings) {
            let failed = |e| DbError::new(format!("remove the stale lock file {}", lock.display()), e);
            if files::remove_stale_lock(&lock).map_err(failed)? {
                tracing::info!(member = %self.settings.name, file = %lock.display(), "removed the lock file of a dead postmaster");
            }
        }
        Ok(())
    }

    pub(super) async fn connect_local(&self, timeout: Duration) -> Result<Session, sql::ConnectError> {
        let target = render::agent_target(&self.settings);
        sql::connect(&target, self.settings.port, &self.settings.superuser, timeout).await
    }

    /// A superuser session with the local server in `database`.
    pub(super) async fn connect_local_to(&self, database: &str) -> Result<Session, String> {
        let target = render::agent_target(&self.settings);
        let (port, user) = (self.settings.port, &self.settings.superuser);
        sql::connect_to(&target, port, user, database, CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("{database}: {e}"))
    }

    /// Stops the server if it runs as a standby, before its data is replaced; refuses to touch a running
    /// primary.
    async fn stop_standby(&self, action: &str, mode: StopMode) -> Result<(), DbError> {
        let data = self.data_dir();
        if !self.tools.pg_ctl_running(data).await? {
            return Ok(());
        }
        if !files::has_standby_signal(data) {
            return Err(DbError::new(action, "the server is running as a primary; stop it first"));
        }
        self.stop_server(mode).await
    }

    pub(super) fn require_database(&self, action: &str) -> Result<(), DbError> {
        if files::has_database(self.data_dir()) {
            Ok(())
        } else {
            Err(DbError::new(action, format!("no database in {}", self.data_dir().display())))
        }
    }

    async fn require_stopped_and_empty(&self, action: &str) -> Result<(), DbError> {
        let data = self.data_dir();
        if files::is_empty(data).map_err(|e| DbError::new(action, e))? {
            return Ok(());
        }
        if self.tools.pg_ctl_running(data).await? {
            return Err(DbError::new(action, "the server is running"));
        }
        if files::is_interrupted_clone(data) {
            tracing::warn!(member = %self.settings.name, "removing the remains of an interrupted clone");
            return self.empty_data_dir().await;
        }
        Err(DbError::new(action, format!("data directory {} is not empty", data.display())))
    }

    /// Runs file work off the async threads.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        action: &str,
        work: impl FnOnce(&PostgresSettings) -> io::Result<T> + Send + 'static,
    ) -> Result<T, DbError> {
        let settings = Arc::clone(&self.settings);
        match tokio::task::spawn_blocking(move || work(&settings)).await {
            Ok(result) => result.map_err(|e| DbError::new(action, e)),
            Err(e) => Err(DbError::new(action, e)),
        }
    }
}
