//! Another member's server as this one's upstream: what it answers the replication user, and the
//! identity every member must have apart from it before this one copies or follows it: its own
//! `server_id` (a replica skips what its own `server_id` wrote, so with its upstream's it would miss
//! every transaction, and with another replica's its upstream would drop one of the two for the other),
//! and the cluster's one GTID domain (positions count in that domain only).

use super::{sql, Account, MariaDb, ADMIN_TIMEOUT};
use crate::db::{DbError, Upstream};
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::Row;

impl MariaDb {
    /// Runs `work` in a session with `up`'s server over TCP as `account`, all within [`ADMIN_TIMEOUT`].
    async fn with_upstream<T>(
        &self,
        up: &Upstream,
        account: &Account,
        work: impl AsyncFnOnce(&mut sql::Session) -> Result<T, String>,
    ) -> Result<T, String> {
        let ask = async {
            let (user, password) = (&account.username, account.password.expose());
            let mut session = sql::connect_tcp(&up.host, up.port, user, password, ADMIN_TIMEOUT)
                .await
                .map_err(|e| format!("connect to {}: {e}", up.name))?;
            let answer = work(&mut session).await;
            drop(session.disconnect().await);
            answer
        };
        tokio::time::timeout(ADMIN_TIMEOUT, ask)
            .await
            .unwrap_or_else(|_| Err(format!("{}: no answer within {ADMIN_TIMEOUT:?}", up.name)))
    }

    /// The row `query` answers on `up`'s server (its variables), asked over TCP as the replication user.
    pub(super) async fn ask_upstream<T: FromRow + Send + 'static>(
        &self,
        up: &Upstream,
        query: &str,
    ) -> Result<T, String> {
        self.with_upstream(up, &self.settings.replication, async |session| {
            let row: Option<T> =
                session.query_first(query).await.map_err(|e| format!("{query} on {}: {e}", up.name))?;
            row.ok_or_else(|| format!("{query} on {}: no row", up.name))
        })
        .await
    }

    /// The other members replicating from `up` with this server's `server_id`, by name, asked as the
    /// superuser (listing the replicas takes more than the replication user may do).
    async fn namesakes(&self, up: &Upstream) -> Result<Vec<String>, String> {
        let statement = self.settings.dialect().replica_hosts();
        let rows: Vec<Row> = self
            .with_upstream(up, &self.settings.superuser, async |session| {
                session.query(statement).await.map_err(|e| format!("{statement} on {}: {e}", up.name))
            })
            .await?;
        let s = &self.settings;
        let replica = |row: &Row| {
            Some((row.get_opt::<u32, _>("Server_id")?.ok()?, row.get_opt::<String, _>("Host")?.ok()?))
        };
        Ok(rows
            .iter()
            .filter_map(replica)
            .filter(|(id, name)| *id == s.server_id && *name != s.name)
            .map(|(_, name)| name)
            .collect())
    }

    /// Refuses, for `action`, an upstream with this server's `server_id` or another GTID domain, or with
    /// another replica that has this server's `server_id` (the upstream would drop one of the two for the
    /// other, back and forth). An upstream that does not answer is not checked here: copying or following
    /// it fails on its own.
    pub(super) async fn check_upstream(&self, action: &str, up: &Upstream) -> Result<(), DbError> {
        let unchecked = |e: String| {
            tracing::debug!(member = %self.settings.name, upstream = %up.name, error = %e, "upstream's identity not checked");
            Ok(())
        };
        let mine = (self.settings.server_id, self.settings.domain);
        match self.ask_upstream(up, "SELECT @@global.server_id, @@global.gtid_domain_id").await {
            Ok(theirs) => {
                identity_conflict(mine, theirs, &up.name).map_err(|why| DbError::new(action, why))?
            }
            Err(e) => return unchecked(e),
        }
        match self.namesakes(up).await {
            Ok(names) if names.is_empty() => Ok(()),
            Ok(names) => {
                let whose = format!("{}'s, a replica of {}", names.join(" and "), up.name);
                Err(DbError::new(action, same_server_id(self.settings.server_id, &whose)))
            }
            Err(e) => unchecked(e),
        }
    }
}

/// Why a member cannot have `server_id`, also `whose`; the message names the parameter to change.
fn same_server_id(server_id: u32, whose: &str) -> String {
    format!(
        "server_id {server_id} is also {whose}: every member needs its own (a replica skips the \
         transactions its own server_id wrote); set mysql.parameters.server_id to another value, or leave \
         it out to derive one from the member name"
    )
}

/// Why a server with `server_id` and GTID domain `mine` cannot replicate from `upstream`'s `theirs`, if it
/// cannot; the error names the parameter to change.
fn identity_conflict(mine: (u32, u32), theirs: (u32, u32), upstream: &str) -> Result<(), String> {
    let ((server_id, domain), (their_server_id, their_domain)) = (mine, theirs);
    if server_id == their_server_id {
        return Err(same_server_id(server_id, &format!("{upstream}'s")));
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
