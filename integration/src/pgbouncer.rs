//! PgBouncer in front of an [`crate::agents::AgentCluster`], configured from `examples/pgbouncer/pgbouncer.ini` and
//! re-pointed by the agents' callback `examples/pgbouncer/vigil-pgbouncer.sh`.
//!
//! PgBouncer runs in the foreground as a child of the test, as the `postgres` user when the test is root
//! (it refuses to run as root), on 127.0.0.1 at a free port, with its files in a directory of its own;
//! dropping the handle kills it by PID.

use crate::agents::{free_port, PASSWORD};
use crate::managed::postgres_user;
use crate::writer::pg_error;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Debian's `pgbouncer`.
const BINARY: &str = "/usr/sbin/pgbouncer";

/// Where a PgBouncer is to run: its directory (files, and the `[databases]` file the agents' callback
/// writes) and its port, chosen before the agents start, as their callback names them.
pub struct Site {
    dir: tempfile::TempDir,
    /// The port clients and the admin console will reach it on.
    pub port: u16,
}

impl Site {
    /// A new directory (readable by the `postgres` user) and a free port.
    pub fn new() -> Site {
        let dir = tempfile::Builder::new().prefix("vigil-pgbouncer-").tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        if let Some((uid, gid)) = postgres_user() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown to postgres");
        }
        Site { dir, port: free_port() }
    }

    /// The `[databases]` file the example's `%include` names: what the callback rewrites.
    pub fn databases_file(&self) -> PathBuf {
        self.dir.path().join("vigil-databases.ini")
    }

    /// The agents' callback command line for a member whose PostgreSQL listens on `host:pg_port`: the
    /// example script with its settings, the admin console as the test superuser.
    pub fn callback(&self, host: &str, pg_port: u16) -> String {
        format!(
            "PRIMARY_HOST={host} PRIMARY_PORT={pg_port} PGBOUNCER_DATABASES={file} \
             PGBOUNCER_ADMIN='host=127.0.0.1 port={port} dbname=pgbouncer user=postgres password={PASSWORD} \
             connect_timeout=5' sh {script}",
            file = self.databases_file().display(),
            port = self.port,
            script = crate::example("pgbouncer/vigil-pgbouncer.sh").display(),
        )
    }

    /// Starts PgBouncer with the example's settings (the `[databases]` file must exist: the primary's
    /// `on_start` callback writes it), the test superuser in its `auth_file` and admin users; waits until
    /// its admin console answers.
    pub async fn start(self) -> PgBouncer {
        let binary = Path::new(BINARY);
        assert!(
            binary.is_file(),
            "pgbouncer is missing: run scripts/test.sh (which installs it) or `apt-get install -y pgbouncer`"
        );
        let dir = self.dir.path();
        let users = dir.join("userlist.txt");
        std::fs::write(&users, format!("\"postgres\" \"{PASSWORD}\"\n")).expect("userlist.txt");
        let example =
            std::fs::read_to_string(crate::example("pgbouncer/pgbouncer.ini")).expect("the example ini");
        let ini = configured(
            &example,
            &[
                ("listen_port", self.port.to_string()),
                ("unix_socket_dir", String::new()),
                ("auth_file", users.display().to_string()),
                ("admin_users", "postgres".into()),
                ("logfile", dir.join("pgbouncer.log").display().to_string()),
                ("pidfile", dir.join("pgbouncer.pid").display().to_string()),
                ("%include", self.databases_file().display().to_string()),
            ],
        );
        let file = dir.join("pgbouncer.ini");
        std::fs::write(&file, ini).expect("write pgbouncer.ini");
        let mut command = Command::new(binary);
        command.arg(&file).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        if let Some((uid, gid)) = postgres_user() {
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().expect("start pgbouncer");
        let mut bouncer = PgBouncer { child: Some(child), port: self.port, site: self };
        let started = tokio::time::Instant::now();
        while bouncer.admin("SHOW VERSION").await.is_err() {
            let exited = bouncer.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "pgbouncer exited ({exited:?}): {}", bouncer.log());
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "pgbouncer did not start: {}",
                bouncer.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bouncer
    }
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

/// A running PgBouncer, killed when dropped (its directory removed).
pub struct PgBouncer {
    child: Option<Child>,
    site: Site,
    /// The port clients and the admin console reach it on.
    pub port: u16,
}

impl PgBouncer {
    /// Runs `command` on the admin console; the first column of each row.
    pub async fn admin(&self, command: &str) -> Result<Vec<String>, String> {
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=pgbouncer connect_timeout=2",
            self.port
        );
        let (client, connection) =
            tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await.map_err(|e| pg_error(&e))?;
        tokio::spawn(connection);
        Ok(crate::first_column(&client.simple_query(command).await.map_err(|e| pg_error(&e))?))
    }

    /// PgBouncer's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.site.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        crate::kill_child(&mut self.child);
        if std::thread::panicking() {
            crate::print_tail("pgbouncer log (tail)", &self.log(), 40);
        }
    }
}

/// `ini` with each `(key, value)` of `settings` replacing the value of the line that sets `key`
/// (`key = value`, or `%include path`); a key no line sets is a bug of the caller.
fn configured(ini: &str, settings: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = ini.lines().map(str::to_owned).collect();
    for (key, value) in settings {
        let line = lines
            .iter_mut()
            .find(|l| l.split([' ', '=']).next() == Some(key))
            .unwrap_or_else(|| panic!("the example pgbouncer.ini sets no {key}"));
        *line = if key.starts_with('%') { format!("{key} {value}") } else { format!("{key} = {value}") };
    }
    lines.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_replace_the_lines_that_set_them() {
        let ini = "[pgbouncer]\nlisten_port = 6432\n;; comment\n%include /etc/x.ini\n";
        let out = configured(ini, &[("listen_port", "7000".into()), ("%include", "/tmp/y.ini".into())]);
        assert_eq!(out, "[pgbouncer]\nlisten_port = 7000\n;; comment\n%include /tmp/y.ini\n");
    }
}
