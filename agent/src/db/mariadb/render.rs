//! The option file the adapter writes before every start (`--defaults-file`, so no other file is read):
//! the replication invariants every member keeps, the paths and port from the settings, then the
//! configured parameters.

use super::MariaDbSettings;
use std::fmt::Write;
use std::time::Duration;

/// The settings every member runs with, whatever the parameters say (the configuration refuses
/// parameters that contradict them), besides those whose names differ by flavor (the dialect's: GTIDs
/// in order, replicas logging what they apply, replication started by the agent only): every change
/// logged in rows, durable commits, and a server that opens for writes only when the agent says so.
const INVARIANTS: &[(&str, &str)] = &[
    ("binlog_format", "ROW"),
    ("binlog_row_image", "FULL"),
    ("sync_binlog", "1"),
    ("innodb_flush_log_at_trx_commit", "1"),
    ("read_only", "ON"),
    ("skip_name_resolve", "ON"),
    ("event_scheduler", "OFF"),
];

/// The longest `rpl_semi_sync_master_timeout` (milliseconds): a primary never stops waiting for a replica's
/// acknowledgement on its own, it is the agent that decides to commit without one.
const NO_TIMEOUT_MS: &str = "18446744073709551615";

/// The option file for `s`, with replicas giving up on a silent upstream after `upstream_timeout`. Every
/// server starts waiting for no acknowledgement, and acknowledging nothing: the agent turns waiting on
/// once a primary is open, and only the primary a replica follows turns its acknowledgements on (see
/// `semi_sync`).
pub(super) fn option_file(s: &MariaDbSettings, upstream_timeout: Duration) -> String {
    let mut out =
        String::from("# Written by the Vigil agent before every start; edits are lost.\n[mysqld]\n");
    let mut set = |name: &str, value: &str| {
        let _ = writeln!(out, "{name} = {value}");
    };
    // First: log_basename also names the pid file and the error log, overriding what comes before it.
    set("log_basename", &s.log_basename());
    set("datadir", &s.data_dir.display().to_string());
    set("socket", &s.socket().display().to_string());
    set("pid_file", &s.pid_file().display().to_string());
    set("log_error", &s.error_log().display().to_string());
    set("tmpdir", &s.tmp_dir().display().to_string());
    set("bind_address", &s.listen_host);
    set("port", &s.port.to_string());
    set("server_id", &s.server_id.to_string());
    set("report_host", &s.name);
    set("log_bin", &format!("{}-bin", s.log_basename()));
    for (name, value) in s.dialect().option_lines(s.domain, upstream_timeout.as_secs().max(1)) {
        set(name, &value);
    }
    for (name, value) in s.dialect().semi_sync_lines(NO_TIMEOUT_MS) {
        set(&name, &value);
    }
    for (name, value) in INVARIANTS {
        set(name, value);
    }
    for (name, value) in &s.parameters {
        set(name, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::settings;
    use super::*;

    #[test]
    fn the_option_file_keeps_the_invariants_and_adds_the_parameters() {
        let mut s = settings();
        s.parameters.insert("innodb_buffer_pool_size".into(), "64M".into());
        let text = option_file(&s, Duration::from_secs(3));
        for line in [
            "[mysqld]",
            "datadir = /tmp/v/node1/mysql",
            "socket = /tmp/v/node1/mysql/mysqld.sock",
            "tmpdir = /tmp/v/node1/mysql.tmp",
            "port = 3306",
            "bind_address = 127.0.0.1",
            "server_id = 7",
            "gtid_domain_id = 0",
            "gtid_strict_mode = ON",
            "log_slave_updates = ON",
            "read_only = ON",
            "skip_slave_start = ON",
            "log_bin = node1-bin",
            "slave_net_timeout = 3",
            "rpl_semi_sync_master_enabled = OFF",
            "rpl_semi_sync_master_wait_point = AFTER_SYNC",
            "rpl_semi_sync_slave_enabled = OFF",
            "innodb_buffer_pool_size = 64M",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing from\n{text}");
        }
        let first = text.lines().find(|l| l.contains(" = ")).unwrap();
        assert_eq!(first, "log_basename = node1", "before the paths it would override");
    }
}
