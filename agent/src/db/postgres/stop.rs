//! Stopping the server: `postgresql.before_stop` first (for a fast stop), then `pg_ctl stop`, bounded
//! by `pg_ctl_timeout`, or for a primary in synchronous mode by `primary_stop_timeout`, after which it
//! is killed (Patroni's behaviour: a primary that takes long to stop keeps its synchronous standbys
//! waiting).

use super::{files, Postgres};
use crate::config::{DynamicConfig, SynchronousMode};
use crate::db::{DbError, StopMode};
use std::time::Duration;

impl Postgres {
    /// Stops the server in `mode` (see the module's documentation).
    pub(super) async fn stop_server(&self, mode: StopMode) -> Result<(), DbError> {
        let data = self.data_dir();
        if mode == StopMode::Fast {
            self.run_before_stop().await;
        }
        let limit =
            self.primary_stop_limit().filter(|_| mode == StopMode::Fast && !files::has_standby_signal(data));
        match self.tools.pg_ctl_stop(data, mode, limit).await {
            Err(e) if limit.is_some() && self.tools.pg_ctl_running(data).await? => {
                let limit_ms = limit.map_or(0, |l| l.as_millis());
                tracing::warn!(member = %self.settings.name, limit_ms, error = %e, "primary did not stop within primary_stop_timeout: killing it");
                self.kill_now().await
            }
            other => other,
        }
    }

    /// Runs `before_stop`, when set, and waits for it at most `pg_ctl_timeout`; its outcome is logged,
    /// never acted on.
    async fn run_before_stop(&self) {
        let Some(command) = &self.settings.before_stop else { return };
        let timeout = self.tools.pg_ctl_timeout();
        match crate::ha::hooks::run("before_stop", command, &[], &[], timeout).await {
            Ok(()) => tracing::info!(member = %self.settings.name, %command, "before_stop done"),
            Err(why) => {
                tracing::warn!(member = %self.settings.name, reason = %why, "before_stop failed; stopping anyway")
            }
        }
    }

    /// `primary_stop_timeout` when it applies: set, and synchronous mode on.
    fn primary_stop_limit(&self) -> Option<Duration> {
        *self.primary_stop_timeout.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `primary_stop_timeout` of `dynamic`, which applies in synchronous mode only.
    pub(super) fn set_primary_stop_timeout(&self, dynamic: &DynamicConfig) {
        let sync = dynamic.synchronous_mode != SynchronousMode::Off;
        let limit = Some(dynamic.primary_stop_timeout).filter(|t| sync && !t.is_zero());
        *self.primary_stop_timeout.lock().unwrap_or_else(|e| e.into_inner()) = limit;
    }
}
