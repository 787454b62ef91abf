//! Physical copies with `mariadb-backup`, between agents (no SSH): this member's server copied for
//! another member (`mariadb-backup --backup --stream=xbstream`, served as `GET /backup`), and a copy of
//! another member's received here to clone a replica: extracted with `mbstream`, prepared, and started
//! at the copy's GTID position.

use super::{server, sql, MariaDb, ADMIN_TIMEOUT};
use crate::db::server_files::log_tail;
use crate::db::{DbError, Upstream};
use axum::body::{Body, Bytes};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout};
use vigil_api::backup::BackupSource;
use vigil_api::{ApiError, BasicAuth, BoxFuture};

/// How long a copy being received may send nothing before the clone gives up on it.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The files in which `mariadb-backup` records the GTID position of its copy (MariaDB 11.4 renamed it).
const BINLOG_INFO_FILES: [&str; 2] = ["mariadb_backup_binlog_info", "xtrabackup_binlog_info"];
/// How much of the copy is read at a time.
const CHUNK: usize = 256 * 1024;

impl BackupSource for MariaDb {
    fn open(&self) -> BoxFuture<'_, Result<Body, ApiError>> {
        Box::pin(self.stream_backup())
    }
}

/// A copy being streamed: the running `mariadb-backup` (killed when the receiver goes away and the
/// stream is dropped), and its output.
struct Streaming {
    child: Child,
    stdout: ChildStdout,
    log: std::path::PathBuf,
    sent: u64,
    started: Instant,
}

impl MariaDb {
    /// Starts `mariadb-backup --backup --stream=xbstream` of the running server, as the superuser over the
    /// socket: its output as a body that ends in an error when the backup fails. Copies for several
    /// members may run at once (two replicas cloned after a bootstrap).
    async fn stream_backup(&self) -> Result<Body, ApiError> {
        let s = &self.settings;
        let unavailable = |why: String| ApiError::new(503, why);
        let Some(program) = &s.programs.backup else {
            return Err(unavailable(format!(
                "mariadb-backup is not installed on {} (mysql.bin_dir)",
                s.name
            )));
        };
        if !server::runs(s) {
            return Err(unavailable(format!("the server of {} does not run", s.name)));
        }
        // The log is beside the option file, in a directory the server's OS user cannot write to (the
        // last copy's log is kept there).
        let log = s.data_dir.with_extension("backup.log");
        let log_file = std::fs::File::create(&log)
            .map_err(|e| unavailable(format!("cannot write {}: {e}", log.display())))?;
        let mut child = server::command(program)
            .arg(format!("--defaults-file={}", s.option_file().display()))
            .args(["--backup", "--stream=xbstream"])
            .arg(format!("--target-dir={}", s.tmp_dir().display()))
            .arg(format!("--socket={}", s.socket().display()))
            .arg(format!("--user={}", s.superuser.username))
            .env("MYSQL_PWD", s.superuser.password.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| unavailable(format!("cannot run {}: {e}", program.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| unavailable("mariadb-backup has no output".into()))?;
        tracing::info!(member = %s.name, "streaming a copy of the server (mariadb-backup)");
        let streaming = Streaming { child, stdout, log, sent: 0, started: Instant::now() };
        let member = s.name.clone();
        let chunks = futures_util::stream::unfold(Some(streaming), move |state| {
            let member = member.clone();
            async move { next_chunk(state?, &member).await }
        });
        Ok(Body::from_stream(chunks))
    }

    /// Clones from `upstream` through its agent's `GET /backup`: receives the copy into the emptied data
    /// directory, prepares it, and records its GTID position as this server's replica position; the
    /// server is stopped at the end (`follow` starts it as a replica). The old data stays until the
    /// upstream answers with a copy.
    pub(super) async fn clone_with_backup(&self, upstream: &Upstream) -> Result<(), DbError> {
        let s = &self.settings;
        let action = format!("mariadb-backup from {}", upstream.name);
        let fail = |detail: String| DbError::new(&action, detail);
        let (Some(backup), Some(mbstream)) = (&s.programs.backup, &s.programs.mbstream) else {
            return Err(fail("mariadb-backup and mbstream are not both installed (mysql.bin_dir)".into()));
        };
        if upstream.api_url.is_empty() {
            return Err(fail(format!("the REST API address of {} is not known", upstream.name)));
        }
        let http = vigil_api::tls::client(&s.api_client_tls, "ctl").map_err(&fail)?;
        let account =
            BasicAuth { username: s.replication.username.clone(), password: s.replication.password.clone() };
        let mut copy = vigil_api::client::backup(&http, &upstream.api_url, &account, ADMIN_TIMEOUT)
            .await
            .map_err(&fail)?;

        self.discard_data().await?;
        server::server_dir(s, &s.data_dir)?;
        let mut extract = server::tool(s, mbstream)?
            .arg("-x")
            .arg("-C")
            .arg(&s.data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", mbstream.display())))?;
        let mut input = extract.stdin.take().ok_or_else(|| fail("mbstream has no input".into()))?;
        let started = Instant::now();
        let mut received: u64 = 0;
        loop {
            let chunk = match tokio::time::timeout(STREAM_IDLE_TIMEOUT, copy.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => return Err(fail(format!("the copy broke off after {received} bytes: {e}"))),
                Err(_) => {
                    return Err(fail(format!(
                        "nothing received for {STREAM_IDLE_TIMEOUT:?} after {received} bytes"
                    )))
                }
            };
            if let Err(e) = input.write_all(&chunk).await {
                let said = extract.wait_with_output().await.map(|o| o.stderr).unwrap_or_default();
                let said = String::from_utf8_lossy(&said);
                return Err(fail(format!("mbstream stopped taking the copy ({e}): {}", said.trim())));
            }
            received += chunk.len() as u64;
        }
        drop(input);
        let extracted = extract.wait_with_output().await.map_err(|e| fail(format!("mbstream: {e}")))?;
        if !extracted.status.success() {
            let said = String::from_utf8_lossy(&extracted.stderr);
            return Err(fail(format!("mbstream {}: {}", extracted.status, said.trim())));
        }
        tracing::info!(
            member = %s.name, upstream = %upstream.name, bytes = received,
            ms = started.elapsed().as_millis() as u64, "copy received; preparing it"
        );
        let prepared = server::tool(s, backup)?
            .arg("--no-defaults")
            .arg("--prepare")
            .arg(format!("--target-dir={}", s.data_dir.display()))
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| fail(format!("cannot run {}: {e}", backup.display())))?;
        if !prepared.status.success() {
            let said = String::from_utf8_lossy(&prepared.stderr);
            let lines: Vec<&str> = said.lines().collect();
            let last = lines[lines.len().saturating_sub(3)..].join(" | ");
            return Err(fail(format!("mariadb-backup --prepare {}: {last}", prepared.status)));
        }
        let gtid = copied_position(&s.data_dir).map_err(&fail)?;
        self.ensure_running().await?;
        // The copy's position, as this server's replica position: `follow` resumes from it.
        self.run("clone", &[format!("SET GLOBAL gtid_slave_pos = {}", sql::quote(&gtid))]).await?;
        self.finish_clone().await
    }
}

/// The next chunk of `streaming`'s output; at its end, an error if `mariadb-backup` failed.
async fn next_chunk(
    mut streaming: Streaming,
    member: &str,
) -> Option<(Result<Bytes, std::io::Error>, Option<Streaming>)> {
    let mut buffer = vec![0; CHUNK];
    match streaming.stdout.read(&mut buffer).await {
        Ok(0) => {
            let status = streaming.child.wait().await;
            let (sent, ms) = (streaming.sent, streaming.started.elapsed().as_millis() as u64);
            match status {
                Ok(status) if status.success() => {
                    tracing::info!(member, bytes = sent, ms, "copy streamed");
                    None
                }
                status => {
                    let why = format!("mariadb-backup {status:?}: {}", log_tail(&streaming.log));
                    tracing::warn!(member, bytes = sent, error = %why, "copy failed");
                    Some((Err(std::io::Error::other(why)), None))
                }
            }
        }
        Ok(n) => {
            buffer.truncate(n);
            streaming.sent += n as u64;
            Some((Ok(Bytes::from(buffer)), Some(streaming)))
        }
        Err(e) => Some((Err(e), None)),
    }
}

/// The GTID position of the prepared copy in `data_dir` (the third field of the binlog info file), after
/// which the copy's bookkeeping files are removed.
fn copied_position(data_dir: &Path) -> Result<String, String> {
    let read = BINLOG_INFO_FILES.iter().find_map(|name| std::fs::read_to_string(data_dir.join(name)).ok());
    let text = read.ok_or_else(|| format!("the copy has none of {}", BINLOG_INFO_FILES.join(", ")))?;
    let gtid = binlog_info_gtid(&text)?;
    for entry in std::fs::read_dir(data_dir).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("xtrabackup_") || name.starts_with("mariadb_backup_") || name == "backup-my.cnf" {
            std::fs::remove_file(entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(gtid)
}

/// The GTID position in a binlog info file: `<binlog file>\t<offset>\t<gtid list>`.
fn binlog_info_gtid(text: &str) -> Result<String, String> {
    let line = text.lines().next().unwrap_or_default();
    match line.split('\t').nth(2).map(str::trim) {
        Some(gtid) if !gtid.is_empty() => Ok(gtid.to_owned()),
        _ => Err(format!("the copy's binlog info {line:?} has no GTID position")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gtid_position_is_the_third_field_of_the_binlog_info() {
        assert_eq!(binlog_info_gtid("node1-bin.000003\t1364\t0-5-7\n"), Ok("0-5-7".to_owned()));
        assert_eq!(binlog_info_gtid("b.000001\t385\t0-1-10,1-2-3"), Ok("0-1-10,1-2-3".to_owned()));
        let none = binlog_info_gtid("b.000001\t385\t\n").unwrap_err();
        assert!(none.contains("no GTID position"), "{none}");
        assert!(binlog_info_gtid("").is_err());
    }
}
