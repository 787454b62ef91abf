//! Patroni's `postgresql` keys beyond the basics, and Patroni's own sample file with `raft:` as its store.

use super::tests::{example, fake_bin_dir, pg};
use super::*;
use std::time::Duration;

fn no_env(_: &str) -> Option<String> {
    None
}

/// Patroni's `postgres0.yml` (comments dropped) with `raft:` in place of `etcd:`; its relative
/// `data_dir` made absolute and its Patroni timings (30/10/10, which leave no safety margin) left out.
/// Patroni's `postgres1.yml` differs in its names, ports and its pg_basebackup options.
const PATRONI_POSTGRES1_BASEBACKUP: &str = "  basebackup:\n      - verbose\n      - max-rate: 100M\n";

const PATRONI_POSTGRES0: &str = "\
scope: batman
name: postgresql0
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
raft:
  data_dir: /tmp/raft0
  self_addr: 127.0.0.1:2222
  partner_addrs: [127.0.0.1:2223, 127.0.0.1:2224]
bootstrap:
  dcs:
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      pg_hba:
      - host replication replicator 127.0.0.1/32 md5
      - host all all 0.0.0.0/0 md5
      parameters:
  initdb:
  - encoding: UTF8
  - data-checksums
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /tmp/data/postgresql0
  bin_dir: BIN
  pgpass: /tmp/pgpass0
  authentication:
    replication:
      username: replicator
      password: rep-pass
    superuser:
      username: postgres
      password: patroni
    rewind:
      username: rewind_user
      password: rewind_password
  parameters:
    unix_socket_directories: '..'
tags:
    noloadbalance: false
    clonefrom: false
    nostream: false
";

#[test]
fn patronis_sample_loads_with_its_cluster_wide_pg_hba() {
    let bin = fake_bin_dir();
    let text = PATRONI_POSTGRES0.replace("BIN", &bin.path().display().to_string());
    let c = Config::from_yaml_str(&text, &no_env).unwrap();
    let hba = c.bootstrap.dcs.postgresql.pg_hba.as_deref().unwrap();
    assert_eq!(hba, ["host replication replicator 127.0.0.1/32 md5", "host all all 0.0.0.0/0 md5"]);
    let s = crate::db::postgres::PostgresSettings::from_config(&c, &c.bootstrap.dcs).unwrap();
    assert_eq!(s.files.pg_hba, hba, "the cluster's pg_hba is in force");

    let postgres1 = text.replace("tags:\n", &format!("{PATRONI_POSTGRES1_BASEBACKUP}tags:\n"));
    let c = Config::from_yaml_str(&postgres1, &no_env).unwrap();
    assert_eq!(pg(&c).basebackup.len(), 2);
}

#[test]
fn every_patroni_postgresql_key_is_read_with_patronis_types() {
    let bin = fake_bin_dir();
    for (from, to) in [("pg_ctl", "pg_ctl.15"), ("pg_rewind", "pg_rewind.15")] {
        std::fs::rename(bin.path().join(from), bin.path().join(to)).unwrap();
    }
    let keys = "  pg_ident: ['omicron ann bob']
  recovery_conf: {restore_command: 'cp /a/%f %p', recovery_min_apply_delay: 5min}
  config_dir: /etc/postgresql/15/main
  custom_conf: /etc/postgresql/custom.conf
  bin_name: {pg_ctl: pg_ctl.15, pg_rewind: pg_rewind.15}
  pg_ctl_timeout: 90
  before_stop: /usr/local/bin/drain
  use_unix_socket: true
  use_unix_socket_repl: true
  proxy_address: 10.0.0.9:6432
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  basebackup: [verbose, {max-rate: 100M}, {compress: server-gzip}]
  pgpass:";
    let text = example(bin.path()).replace("  pgpass:", keys);
    let c = Config::from_yaml_str(&text, &no_env).unwrap();
    let p = pg(&c);
    assert_eq!(p.pg_ident.as_deref(), Some(&["omicron ann bob".to_string()][..]));
    let recovery = p.recovery_conf.as_ref().unwrap();
    assert_eq!(recovery.get("recovery_min_apply_delay").map(String::as_str), Some("5min"));
    assert_eq!(p.config_dir.as_deref(), Some(Path::new("/etc/postgresql/15/main")));
    assert_eq!(p.custom_conf.as_deref(), Some(Path::new("/etc/postgresql/custom.conf")));
    assert_eq!((p.bin_name.of("pg_ctl"), p.bin_name.of("initdb")), ("pg_ctl.15", "initdb"));
    assert_eq!(p.pg_ctl_timeout, Duration::from_secs(90));
    assert_eq!(p.before_stop.as_deref(), Some("/usr/local/bin/drain"));
    assert_eq!((p.use_unix_socket, p.use_unix_socket_repl), (Some(true), true));
    assert_eq!(p.proxy_address.as_ref().map(ToString::to_string).as_deref(), Some("10.0.0.9:6432"));
    assert!(p.remove_data_directory_on_rewind_failure && p.remove_data_directory_on_diverged_timelines);
    assert_eq!(p.basebackup[1], InitdbOption::Value("max-rate".into(), "100M".into()));

    let plain = Config::from_yaml_str(&example(fake_bin_dir().path()), &no_env).unwrap();
    let p = pg(&plain);
    assert_eq!(
        (p.pg_ctl_timeout, p.use_unix_socket, p.config_dir.as_ref()),
        (DEFAULT_PG_CTL_TIMEOUT, None, None)
    );
    assert!(!p.remove_data_directory_on_rewind_failure && !p.remove_data_directory_on_diverged_timelines);
}

#[test]
fn bad_patroni_postgresql_keys_are_refused_by_name() {
    let bin = fake_bin_dir();
    let cases: &[(&str, &str, &str)] = &[
        ("config_dir: etc/main", "postgresql.config_dir", "\"etc/main\" is not an absolute path"),
        ("config_dir: /tmp/vigil/node1/pg", "postgresql.config_dir", "is postgresql.data_dir"),
        ("custom_conf: custom.conf", "postgresql.custom_conf", "is not an absolute path"),
        ("bin_name: {pg_ctl: ../x}", "postgresql.bin_name.pg_ctl", "is not a file name inside"),
        ("bin_name: {pg_ctl: pg_ctl.99}", "postgresql.bin_dir", "lacks pg_ctl.99"),
        ("bin_name: {psql: x}", "postgresql.bin_name.psql", "unknown field"),
        ("pg_ctl_timeout: 0", "postgresql.pg_ctl_timeout", "is not from 1 s to 1 day"),
        ("pg_ctl_timeout: soon", "postgresql.pg_ctl_timeout", "soon"),
        ("before_stop: ' '", "postgresql.before_stop", "is an empty command"),
        ("proxy_address: '*:6432'", "postgresql.proxy_address", "not an address clients can connect to"),
        ("proxy_address: pooler", "postgresql.proxy_address", "the port is missing"),
        ("pg_ident: ['']", "postgresql.pg_ident[0]", "is empty"),
        (
            "basebackup: [verbose, {wal-method: fetch}]",
            "postgresql.basebackup[1]",
            "--wal-method is set by the agent",
        ),
        ("basebackup: [write-recovery-conf]", "postgresql.basebackup[0]", "is set by the agent"),
        ("basebackup: [{compress: gzip}]", "postgresql.basebackup[0]", "--compress=gzip is client-side"),
        (
            "recovery_conf: {primary_conninfo: x}",
            "postgresql.recovery_conf.primary_conninfo",
            "set by the agent",
        ),
        ("recovery_conf: {'a b': x}", "postgresql.recovery_conf.a b", "is not a parameter name"),
        (
            "remove_data_directory_on_rewind_failure: maybe",
            "postgresql.remove_data_directory_on_rewind_failure",
            "maybe",
        ),
    ];
    for (line, key, says) in cases {
        let text = example(bin.path()).replace("  pgpass:", &format!("  {line}\n  pgpass:"));
        let err = Config::from_yaml_str(&text, &no_env).expect_err(line);
        let text = err.errors()[0].to_string();
        assert!(text.starts_with(key), "{line}: {text}");
        assert!(text.contains(says), "{line}: {text}");
    }
    let tcp_only = example(bin.path())
        .replace("    unix_socket_directories: /tmp/vigil/node1", "    max_connections: 10")
        .replace("  pgpass:", "  use_unix_socket: true\n  pgpass:");
    let err = Config::from_yaml_str(&tcp_only, &no_env).unwrap_err().to_string();
    assert!(err.starts_with("postgresql.use_unix_socket: is true, but"), "{err}");
}

#[test]
fn dynamic_patroni_keys_are_read_and_checked() {
    let d = DynamicConfig::from_json_str(
        r#"{"primary_stop_timeout": 30, "maximum_lag_on_syncnode": 1048576, "max_timelines_history": 50,
            "postgresql": {"pg_hba": ["host all all 0.0.0.0/0 md5"], "pg_ident": ["m a b"],
                           "recovery_conf": {"recovery_min_apply_delay": "1min"}}}"#,
    )
    .unwrap();
    assert_eq!(d.primary_stop_timeout, Duration::from_secs(30));
    assert_eq!((d.maximum_lag_on_syncnode, d.max_timelines_history), (1_048_576, 50));
    assert_eq!(d.postgresql.pg_ident.as_deref(), Some(&["m a b".to_string()][..]));
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(DynamicConfig::from_json_str(&json).unwrap(), d, "{json}");
    let old_name = DynamicConfig::from_json_str(r#"{"master_stop_timeout": 5}"#).unwrap();
    assert_eq!(old_name.primary_stop_timeout, Duration::from_secs(5));
    let defaults = DynamicConfig::default();
    assert_eq!((defaults.maximum_lag_on_syncnode, defaults.primary_stop_timeout), (-1, Duration::ZERO));

    let refused = [
        (r#"{"maximum_lag_on_syncnode": -2}"#, "maximum_lag_on_syncnode: -2 is neither -1"),
        (r#"{"primary_stop_timeout": "48h"}"#, "primary_stop_timeout: 172800000 ms is more than"),
        (r#"{"max_timelines_history": -1}"#, "max_timelines_history: invalid value"),
        (r#"{"postgresql": {"pg_hba": ["ok", " "]}}"#, "postgresql.pg_hba[1]: is empty"),
        (
            r#"{"postgresql": {"recovery_conf": {"restore_command": "cp x y"}}}"#,
            "postgresql.recovery_conf: restore_command: can run commands",
        ),
        (
            r#"{"postgresql": {"recovery_conf": {"primary_slot_name": "s"}}}"#,
            "postgresql.recovery_conf.primary_slot_name",
        ),
    ];
    for (json, says) in refused {
        let err = DynamicConfig::from_json_str(json).unwrap_err().to_string();
        assert!(err.starts_with(says), "{json}: {err}");
    }
    let bin = fake_bin_dir();
    let text = example(bin.path()).replace(
        "    postgresql:\n      use_pg_rewind: true",
        "    postgresql:\n      use_pg_rewind: true\n      pg_ident: ['']",
    );
    let err = Config::from_yaml_str(&text, &no_env).unwrap_err().to_string();
    assert!(err.starts_with("bootstrap.dcs.postgresql.pg_ident[0]: is empty"), "{err}");
}
