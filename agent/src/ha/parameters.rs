//! This member's configuration file and server parameters: taken again from a reloaded file, handed to
//! the database each cycle.

use super::run::Agent;
use crate::config::DynamicConfig;
use crate::db::Database;
use std::collections::BTreeMap;

impl<D: Database> Agent<D> {
    /// The configuration file this agent was started from.
    pub(super) fn config_path(&self) -> Option<&std::path::Path> {
        self.me.config_path.as_deref()
    }

    /// Takes the tags, the server parameters and `use_pg_rewind` of a configuration file read again.
    pub(super) fn apply_reloaded(
        &mut self,
        config: &crate::config::Config,
        engine: crate::config::EngineConfig<'_>,
    ) {
        self.me.tags = super::identity_tags(config);
        self.me.can_fail_over = config.tags.can_fail_over();
        self.me.failover_priority = config.tags.configured_priority();
        self.me.parameters = engine.parameters().clone();
        self.me.use_pg_rewind = config.postgresql.as_ref().and_then(|pg| pg.use_pg_rewind);
        self.me.discard = super::discard(config);
        self.publisher.forget();
    }

    /// This member's own server parameters (its file's `<section>.parameters`).
    pub(super) fn own_parameters(&self) -> &BTreeMap<String, String> {
        &self.me.parameters
    }

    /// Hands the database the server parameters of `dynamic` and this member's file, and the ttl as the
    /// upstream timeout, once they change (the adapter reloads the server; what needs a restart shows as
    /// pending).
    pub(super) async fn apply_parameters(&mut self, dynamic: &DynamicConfig) {
        // The adapter does nothing while the ttl stays the same.
        if let Err(e) = self.db.set_upstream_timeout(dynamic.ttl).await {
            tracing::warn!(error = %e, "replication timeouts not reloaded; kept for the next configuration written");
        }
        if let Err(e) = self.db.set_use_slots(dynamic.postgresql.use_slots).await {
            tracing::warn!(error = %e, "replication slot use not changed; trying again next cycle");
        }
        if let Err(e) = self.db.set_cluster_config(dynamic).await {
            tracing::warn!(error = %e, "cluster-wide configuration files not applied; trying again next cycle");
        }
        let wanted = crate::config::server_parameters(dynamic, &self.me.parameters);
        if self.parameters.as_ref() == Some(&wanted) {
            return;
        }
        match self.db.set_parameters(&wanted).await {
            Ok(()) => self.parameters = Some(wanted),
            Err(e) => tracing::warn!(error = %e, "server parameters not applied; trying again next cycle"),
        }
    }
}
