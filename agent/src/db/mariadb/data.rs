//! The data directory: a new cluster's bootstrap, a copy of another member's data, the cluster's identity.

use super::{server, sql, MariaDb, ADMIN_TIMEOUT};
use crate::config::ReplicaMethod;
use crate::db::server_files::remove_contents;
use crate::db::{DbError, Upstream};
use sql::quote;
use std::ffi::OsString;
use std::hash::{BuildHasher, Hasher};

/// The file in the data directory that names the cluster the data belongs to.
const SYSTEM_ID_FILE: &str = "vigil_system_id";

impl MariaDb {
    /// The cluster identity recorded in the data directory; `None` while none is (no data, or data the
    /// bootstrap or a clone did not finish: it is made again).
    pub(super) fn system_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.settings.data_dir.join(SYSTEM_ID_FILE)).ok()?;
        Some(text.trim().to_owned()).filter(|id| !id.is_empty())
    }

    fn write_system_id(&self, id: &str) -> Result<(), DbError> {
        std::fs::write(self.settings.data_dir.join(SYSTEM_ID_FILE), format!("{id}\n"))
            .map_err(|e| DbError::new("record the cluster's identity", e))
    }

    /// Kills the server if it runs and empties the data directory.
    pub(super) async fn discard_data(&self) -> Result<(), DbError> {
        server::kill(&self.settings).await?;
        remove_contents(&self.settings.data_dir, "mysql.data_dir").map_err(|e| DbError::new("remove data", e))
    }

    /// A fresh data directory with MariaDB's system tables, its server running read-only.
    async fn install_and_start(&self) -> Result<(), DbError> {
        self.discard_data().await?;
        let timeout = self.runtime().upstream_timeout;
        server::install(&self.settings, timeout).await?;
        self.ensure_running().await
    }

    /// The statement that records `token` as the current term in `vigil.fence`.
    pub(super) fn fence_row(&self, token: u64) -> String {
        format!(
            "INSERT INTO vigil.fence (id, token, holder, server_id, promoted_at) VALUES (1, {token}, {}, \
             @@server_id, NOW(6)) ON DUPLICATE KEY UPDATE token = VALUES(token), holder = VALUES(holder), \
             server_id = VALUES(server_id), promoted_at = VALUES(promoted_at)",
            quote(&self.settings.name)
        )
    }

    pub(super) async fn bootstrap_now(&self, token: Option<u64>) -> Result<(), DbError> {
        self.install_and_start().await?;
        let mut session = sql::connect(&self.settings.socket(), &installer_account(), None, ADMIN_TIMEOUT)
            .await
            .map_err(|e| DbError::new("bootstrap", e))?;
        let system_id = RandomId::new().to_string();
        let (su, rep) = (&self.settings.superuser, &self.settings.replication);
        let mut statements = Vec::new();
        for host in ["localhost", "%"] {
            let user = format!("{}@{}", quote(&su.username), quote(host));
            statements.push(format!("CREATE USER {user} IDENTIFIED BY {}", quote(su.password.expose())));
            statements.push(format!("GRANT ALL PRIVILEGES ON *.* TO {user} WITH GRANT OPTION"));
        }
        let replicator = format!("{}@'%'", quote(&rep.username));
        statements.push(format!("CREATE USER {replicator} IDENTIFIED BY {}", quote(rep.password.expose())));
        statements.push(format!("GRANT REPLICATION SLAVE ON *.* TO {replicator}"));
        statements.push("CREATE DATABASE vigil".to_owned());
        statements.push(
            "CREATE TABLE vigil.fence (id TINYINT UNSIGNED PRIMARY KEY, token BIGINT UNSIGNED NOT NULL, \
             holder VARCHAR(255) NOT NULL, server_id INT UNSIGNED NOT NULL, promoted_at TIMESTAMP(6) NOT NULL) \
             ENGINE=InnoDB"
                .to_owned(),
        );
        statements.push(
            "CREATE TABLE vigil.cluster (id TINYINT UNSIGNED PRIMARY KEY, system_id VARCHAR(64) NOT NULL) \
             ENGINE=InnoDB"
                .to_owned(),
        );
        statements.push(format!("INSERT INTO vigil.cluster VALUES (1, {})", quote(&system_id)));
        statements.extend(self.opening(Some(token.unwrap_or(0))));
        for statement in &statements {
            sql::run(&mut session, statement).await.map_err(|e| DbError::new("bootstrap", e))?;
        }
        self.write_system_id(&system_id)
    }

    /// Copies the data from `upstream` by the first of `mysql.create_replica_methods` that succeeds, each
    /// failure logged; the server is stopped at the end (`follow` starts it as a replica). An upstream
    /// with this server's `server_id` or another GTID domain is refused first.
    pub(super) async fn clone_now(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.check_upstream("clone", upstream).await?;
        let mut failed = None;
        for method in &self.settings.create_replica_methods {
            let started = std::time::Instant::now();
            let copied = match method {
                ReplicaMethod::MariadbBackup => self.clone_with_backup(upstream).await,
                ReplicaMethod::MariadbDump => self.clone_with_dump(upstream).await,
            };
            let ms = started.elapsed().as_millis() as u64;
            match copied {
                Ok(()) => {
                    tracing::info!(member = %self.settings.name, upstream = %upstream.name, %method, ms, "cloned");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(member = %self.settings.name, upstream = %upstream.name, %method, ms, error = %e, "clone method failed");
                    failed = Some(e);
                }
            }
        }
        Err(failed.unwrap_or_else(|| DbError::new("clone", "mysql.create_replica_methods lists no method")))
    }

    /// Copies the data from `upstream` with `mariadb-dump` (its GTID position included) into a fresh
    /// server, without logging the load.
    async fn clone_with_dump(&self, upstream: &Upstream) -> Result<(), DbError> {
        self.install_and_start().await?;
        let su = &self.settings.superuser;
        let dump = format!(
            "set -o pipefail; {dump} --host={host} --port={port} --user={user} --all-databases \
             --single-transaction --gtid --master-data=1 --routines --events --triggers --flush-privileges \
             | {client} --socket={socket} --user={installer} --init-command='SET sql_log_bin = 0'",
            dump = shell_word(&self.settings.programs.dump.display().to_string()),
            client = shell_word(&self.settings.programs.client.display().to_string()),
            host = shell_word(&upstream.host),
            port = upstream.port,
            user = shell_word(&su.username),
            socket = shell_word(&self.settings.socket().display().to_string()),
            installer = shell_word(&installer_account()),
        );
        let args: Vec<OsString> = vec!["-c".into(), dump.into()];
        // The password reaches both programs through the environment, never their command lines.
        let out = server::command("/bin/bash")
            .args(&args)
            .env("MYSQL_PWD", su.password.expose())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| DbError::new(format!("mariadb-dump from {}", upstream.name), e))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(DbError::new(format!("mariadb-dump from {}", upstream.name), said.trim()));
        }
        self.finish_clone().await
    }

    /// Ends a clone whose copy runs as this server: records the cluster's identity the copy carries,
    /// and stops the server.
    pub(super) async fn finish_clone(&self) -> Result<(), DbError> {
        let mut session = self.admin("clone").await?;
        let id: Option<String> = mysql_async::prelude::Queryable::query_first(
            &mut session,
            "SELECT system_id FROM vigil.cluster WHERE id = 1",
        )
        .await
        .map_err(|e| DbError::new("clone", format!("read the cluster's identity: {e}")))?;
        let id = id.ok_or_else(|| DbError::new("clone", "the copy has no vigil.cluster row"))?;
        drop(tokio::time::timeout(ADMIN_TIMEOUT, session.disconnect()).await);
        server::stop(&self.settings).await?;
        self.write_system_id(&id)
    }
}

/// A random 64-bit number, printed in decimal: a new cluster's identity.
struct RandomId(u64);

impl RandomId {
    fn new() -> RandomId {
        RandomId(std::collections::hash_map::RandomState::new().build_hasher().finish())
    }
}

impl std::fmt::Display for RandomId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The account `mariadb-install-db` creates for the OS user the agent runs as, authenticated by the
/// socket's peer: `root` when the agent runs as root, else its own user's (`USER`). The agent uses it
/// only on a new server, before the superuser exists.
fn installer_account() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return "root".to_owned();
    }
    std::env::var("USER").unwrap_or_else(|_| "mysql".to_owned())
}

/// `text` as one word for bash: single-quoted.
fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
