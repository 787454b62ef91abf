//! A server its upstream refuses because it has transactions the upstream lacks (a former primary that
//! took writes after another member took over): which transactions those are, reported before the data
//! is cloned again and they are lost.

use super::{gtid, sql, MariaDb};
use crate::db::{Divergence, Upstream};
use mysql_async::prelude::Queryable;
use sql::Session;

impl MariaDb {
    /// Why `up` refuses this server's position (`said`: the replication IO thread's error). The
    /// transactions this server has that `up` lacks are logged, and shown by `observe` until the data is
    /// replaced or follows an upstream.
    pub(super) async fn refused_by(&self, session: &mut Session, up: &Upstream, said: &str) -> String {
        match self.errant_against(session, up).await {
            Ok(Some(errant)) => {
                tracing::warn!(
                    member = %self.settings.name,
                    upstream = %up.name,
                    errant = %errant,
                    "errant transactions: this server has transactions its upstream lacks, lost when it is cloned again"
                );
                let extra = errant.to_string();
                self.runtime().diverged = Some(Divergence { upstream: up.name.clone(), extra });
                format!("diverged: it has {errant} that {} lacks: {said}", up.name)
            }
            Ok(None) => format!("{} refuses this server's position, yet has all it logged: {said}", up.name),
            Err(e) => format!("diverged: {} refuses this server's position ({e}): {said}", up.name),
        }
    }

    /// The transactions of the cluster's domain this server logged and `up` lacks, from both servers'
    /// GTID states (MariaDB has no GTID set arithmetic of its own).
    async fn errant_against(
        &self,
        session: &mut Session,
        up: &Upstream,
    ) -> Result<Option<gtid::Errant>, String> {
        let mine: Option<String> = session
            .query_first("SELECT @@global.gtid_binlog_state")
            .await
            .map_err(|e| format!("read this server's GTID state: {e}"))?;
        let (binlog_state, slave_pos): (String, String) =
            self.ask_upstream(up, "SELECT @@global.gtid_binlog_state, @@global.gtid_slave_pos").await?;
        let mine = gtid::parse_list(&mine.unwrap_or_default())?;
        let theirs = gtid::parse_list(&format!("{binlog_state},{slave_pos}"))?;
        Ok(gtid::errant(&mine, &theirs, self.settings.domain))
    }
}
