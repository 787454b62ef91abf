//! Another member's server as this one's upstream: what it answers the replication user, and the
//! identity every member must have apart from it before this one copies or follows it: its own
//! `server_id` (a replica skips what its own `server_id` wrote, so with its upstream's it would miss
//! every transaction), and the cluster's one GTID domain (positions count in that domain only).

use super::{sql, MariaDb, ADMIN_TIMEOUT};
use crate::db::{DbError, Upstream};
use mysql_async::prelude::{FromRow, Queryable};

impl MariaDb {
    /// The row `query` answers on `up`'s server (its variables), asked over TCP as the replication user.
    pub(super) async fn ask_upstream<T: FromRow + Send + 'static>(
        &self,
        up: &Upstream,
        query: &str,
    ) -> Result<T, String> {
        let rep = &self.settings.replication;
        let ask = async {
            let mut session =
                sql::connect_tcp(&up.host, up.port, &rep.username, rep.password.expose(), ADMIN_TIMEOUT)
                    .await
                    .map_err(|e| format!("connect to {}: {e}", up.name))?;
            let row: Option<T> =
                session.query_first(query).await.map_err(|e| format!("{query} on {}: {e}", up.name))?;
            drop(session.disconnect().await);
            row.ok_or_else(|| format!("{query} on {}: no row", up.name))
        };
        tokio::time::timeout(ADMIN_TIMEOUT, ask)
            .await
            .unwrap_or_else(|_| Err(format!("{query} on {}: no answer within {ADMIN_TIMEOUT:?}", up.name)))
    }

    /// Refuses an upstream with this server's `server_id` or another GTID domain, for `action`. An
    /// upstream that does not answer is not checked here: copying or following it fails on its own.
    pub(super) async fn check_upstream(&self, action: &str, up: &Upstream) -> Result<(), DbError> {
        match self.ask_upstream(up, "SELECT @@global.server_id, @@global.gtid_domain_id").await {
            Ok(theirs) => {
                let mine = (self.settings.server_id, self.settings.domain);
                identity_conflict(mine, theirs, &up.name).map_err(|why| DbError::new(action, why))
            }
            Err(e) => {
                tracing::debug!(member = %self.settings.name, upstream = %up.name, error = %e, "upstream's identity not checked");
                Ok(())
            }
        }
    }
}

/// Why a server with `server_id` and GTID domain `mine` cannot replicate from `upstream`'s `theirs`, if it
/// cannot; the error names the parameter to change.
fn identity_conflict(mine: (u32, u32), theirs: (u32, u32), upstream: &str) -> Result<(), String> {
    let ((server_id, domain), (their_server_id, their_domain)) = (mine, theirs);
    if server_id == their_server_id {
        return Err(format!(
            "server_id {server_id} is also {upstream}'s: every member needs its own (a replica skips the \
             transactions its own server_id wrote); set mysql.parameters.server_id to another value, or \
             leave it out to derive one from the member name"
        ));
    }
    if domain != their_domain {
        return Err(format!(
            "gtid_domain_id {domain} differs from {upstream}'s {their_domain}: the cluster replicates in one \
             domain; set mysql.parameters.gtid_domain_id to {their_domain} (or leave it out on every member)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_with_the_same_server_id_or_another_domain_is_refused_naming_the_parameter() {
        assert_eq!(identity_conflict((7, 0), (8, 0), "node2"), Ok(()));
        let same = identity_conflict((7, 0), (7, 0), "node2").unwrap_err();
        assert!(
            same.starts_with("server_id 7 is also node2's") && same.contains("mysql.parameters.server_id")
        );
        let domain = identity_conflict((7, 1), (8, 0), "node2").unwrap_err();
        assert!(domain.starts_with("gtid_domain_id 1 differs from node2's 0"), "{domain}");
        assert!(domain.contains("set mysql.parameters.gtid_domain_id to 0"), "{domain}");
    }
}
