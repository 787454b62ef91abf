//! Loading the example of node 1, defaults, environment overrides and the conversions.

use super::InitdbOption;
use super::*;
use crate::db::postgres::PostgresSettings;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

pub(super) const EXAMPLE: &str = "\
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
raft:
  data_dir: /tmp/vigil/node1/raft
  self_addr: 127.0.0.1:2222
  partner_addrs: [127.0.0.1:2223, 127.0.0.1:2224]
bootstrap:
  dcs:
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
  initdb: [{encoding: UTF8}, data-checksums]
  pg_hba:
    - host replication replicator 127.0.0.1/32 md5
    - host all all 127.0.0.1/32 md5
postgresql:
  listen: 127.0.0.1:5432
  connect_address: 127.0.0.1:5432
  data_dir: /tmp/vigil/node1/pg
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: /tmp/vigil/node1/pgpass
  authentication:
    replication: {username: replicator, password: rep-pass}
    superuser: {username: postgres, password: su-pass}
  parameters:
    unix_socket_directories: /tmp/vigil/node1
tags: {nofailover: false, noloadbalance: false}
";

/// A directory holding empty files named like PostgreSQL's programs.
pub(super) fn fake_bin_dir() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in REQUIRED_BINARIES {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    dir
}

/// The example with `bin_dir` pointing at `bin`.
pub(super) fn example(bin: &Path) -> String {
    EXAMPLE.replace("/usr/lib/postgresql/15/bin", &bin.display().to_string())
}

/// An environment made of `pairs`.
pub(super) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| map.get(k).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// The `postgresql` section of a configuration that has one.
pub(super) fn pg(c: &Config) -> &PostgresqlConfig {
    c.postgresql.as_ref().expect("a postgresql section")
}

/// PostgreSQL's versions under `pg_lib_root`; MariaDB's programs in the default places.
fn roots(pg_lib_root: &Path) -> ProgramRoots {
    ProgramRoots { pg_lib_root: pg_lib_root.to_path_buf(), ..ProgramRoots::default() }
}

#[test]
fn the_example_loads_and_every_field_lands() {
    let bin = fake_bin_dir();
    let c = Config::from_yaml_str(&example(bin.path()), &no_env).unwrap();
    assert_eq!((c.scope.as_str(), c.namespace.as_str(), c.name.as_str()), ("demo", "/service/", "node1"));
    assert_eq!(c.restapi.listen, HostPort { host: "127.0.0.1".into(), port: 8008 });
    assert_eq!(c.restapi.connect_address.to_string(), "127.0.0.1:8008");
    assert_eq!((c.restapi.authentication.as_ref(), c.restapi.verify_client), (None, None));
    assert_eq!(c.raft.data_dir, PathBuf::from("/tmp/vigil/node1/raft"));
    assert_eq!(c.raft.self_addr.to_string(), "127.0.0.1:2222");
    let partners: Vec<String> = c.raft.partner_addrs.iter().map(HostPort::to_string).collect();
    assert_eq!(partners, ["127.0.0.1:2223", "127.0.0.1:2224"]);
    let dcs = &c.bootstrap.dcs;
    assert_eq!(dcs.maximum_lag_on_failover, 1_048_576);
    assert!(dcs.postgresql.use_pg_rewind && dcs.postgresql.use_slots);
    assert_eq!(dcs.ttl, DEFAULT_TTL);
    assert_eq!(
        c.bootstrap.initdb,
        [InitdbOption::Value("encoding".into(), "UTF8".into()), InitdbOption::Flag("data-checksums".into())]
    );
    assert_eq!(c.bootstrap.pg_hba[1], "host all all 127.0.0.1/32 md5");
    let pg = pg(&c);
    assert_eq!((pg.listen.port, pg.connect_address.host.as_str()), (5432, "127.0.0.1"));
    assert_eq!(pg.data_dir, PathBuf::from("/tmp/vigil/node1/pg"));
    assert_eq!(pg.bin_dir, bin.path());
    assert_eq!(pg.pgpass, PathBuf::from("/tmp/vigil/node1/pgpass"));
    assert_eq!(pg.authentication.superuser.username, "postgres");
    assert_eq!(pg.authentication.superuser.password.expose(), "su-pass");
    assert_eq!(pg.authentication.replication.username, "replicator");
    assert_eq!(pg.authentication.replication.password.expose(), "rep-pass");
    assert_eq!(pg.parameters.get("unix_socket_directories").map(String::as_str), Some("/tmp/vigil/node1"));
    assert_eq!((pg.pg_hba.as_ref(), pg.use_pg_rewind, pg.os_user.as_ref()), (None, None, None));
    assert_eq!(pg.create_replica_methods, ["basebackup"]);
    assert!(!c.tags.nofailover && !c.tags.noloadbalance && c.tags.can_fail_over());
    assert_eq!((c.watchdog.mode, c.log.level), (WatchdogMode::Off, LogLevel::Info));
    assert!(!format!("{c:?}").contains("su-pass"), "Debug must hide passwords");
}

#[test]
fn loads_from_a_file_and_names_it_in_errors() {
    let bin = fake_bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, example(bin.path())).unwrap();
    assert_eq!(Config::load_with_env(&path, &no_env).unwrap().name.as_str(), "node1");

    std::fs::write(&path, example(bin.path()).replace("listen: 127.0.0.1:5432", "listen: 127.0.0.1"))
        .unwrap();
    let err = Config::load_with_env(&path, &no_env).unwrap_err().to_string();
    let expected = format!("{}: postgresql.listen: \"127.0.0.1\" is not host:port", path.display());
    assert!(err.starts_with(&expected), "{err}");

    std::fs::write(&path, "scope: [unclosed\n").unwrap();
    let err = Config::load_with_env(&path, &no_env).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: not valid YAML: ", path.display())), "{err}");
    assert!(err.contains("line"), "{err}");

    let missing = dir.path().join("absent.yml");
    let err = Config::load_with_env(&missing, &no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read the configuration file: ", missing.display())));
}

const MINIMAL: &str = "\
scope: demo
name: solo
restapi: {listen: 0.0.0.0:8008, connect_address: 10.0.0.1:8008, authentication: {username: a, password: b}}
raft: {data_dir: /var/lib/vigil/raft, self_addr: 10.0.0.1:2222}
postgresql:
  listen: '*:5432'
  connect_address: 10.0.0.1:5432
  data_dir: /var/lib/vigil/pg
  pgpass: /var/lib/vigil/pgpass
  authentication:
    superuser: {username: postgres, password: 12345}
    replication: {username: replicator, password: r}
  parameters:
tags:
";

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let root = tempfile::tempdir().unwrap();
    for v in ["14", "16"] {
        let bin = root.path().join(v).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        REQUIRED_BINARIES.iter().for_each(|b| std::fs::write(bin.join(b), b"").unwrap());
    }
    let c = Config::parse(MINIMAL, &no_env, &roots(root.path())).unwrap();
    assert_eq!(c.namespace, "/service/");
    assert_eq!(pg(&c).bin_dir, root.path().join("16/bin"));
    assert_eq!(pg(&c).authentication.superuser.password.expose(), "12345");
    assert_eq!(c.bootstrap, BootstrapConfig::default());
    let d = &c.bootstrap.dcs;
    assert_eq!(
        (d.ttl, d.loop_wait, d.retry_timeout),
        (Duration::from_secs(3), Duration::from_secs(1), Duration::from_millis(750))
    );
    assert_eq!(
        (d.safety_margin, d.primary_start_timeout),
        (Duration::from_millis(500), Duration::from_secs(10))
    );
    assert_eq!(d.maximum_lag_on_failover, 1_048_576);
    assert_eq!((d.synchronous_mode, d.synchronous_node_count, d.pause), (SynchronousMode::Off, 1, false));
    assert!(d.postgresql.use_slots && !d.postgresql.use_pg_rewind);
    assert!(c.raft.partner_addrs.is_empty() && c.raft.bind_addr.is_none());
    assert_eq!(c.tags, Tags::default());
    assert_eq!(c.watchdog, WatchdogConfig::default());
    assert_eq!((c.log.level, c.log.kind), (LogLevel::Info, LogType::Plain));
    assert_eq!(c.raft_members(), BTreeMap::from([(1, "10.0.0.1:2222".to_string())]));

    let empty = tempfile::tempdir().unwrap();
    let err = Config::parse(MINIMAL, &no_env, &roots(empty.path())).unwrap_err();
    assert_eq!(err.key(), Some("postgresql.bin_dir"));
    assert!(err.to_string().contains("is not set and no"), "{err}");
}

#[test]
fn a_members_own_use_pg_rewind_overrides_the_clusters() {
    let bin = fake_bin_dir();
    let text = example(bin.path()).replace("  pgpass: ", "  use_pg_rewind: false\n  pgpass: ");
    let c = Config::from_yaml_str(&text, &|_| None).unwrap();
    assert!(c.bootstrap.dcs.postgresql.use_pg_rewind);
    assert!(!c.bootstrap.dcs.use_pg_rewind(pg(&c).use_pg_rewind));
    let off = DynamicConfig::default();
    assert!(off.use_pg_rewind(Some(true)) && !off.use_pg_rewind(None));
}

#[test]
fn namespace_is_normalized_and_timings_read_in_any_unit() {
    let bin = fake_bin_dir();
    let text = example(bin.path()).replace("scope: demo", "scope: demo\nnamespace: vigil").replace(
        "    maximum_lag_on_failover: 1048576",
        "    ttl: 6\n    loop_wait: 1500ms\n    retry_timeout: 1.25\n    safety_margin: 1s\n    synchronous_mode: off",
    );
    let c = Config::from_yaml_str(&text, &no_env).unwrap();
    assert_eq!(c.namespace, "/vigil/");
    let t = c.bootstrap.dcs.lease_timing();
    assert_eq!((t.ttl, t.loop_wait), (Duration::from_secs(6), Duration::from_millis(1500)));
    assert_eq!((t.retry_timeout, t.safety_margin), (Duration::from_millis(1250), Duration::from_secs(1)));
    assert_eq!(c.bootstrap.dcs.synchronous_mode, SynchronousMode::Off);
}

#[test]
fn environment_overrides_replace_values_and_are_validated() {
    let (bin, bin2) = (fake_bin_dir(), fake_bin_dir());
    let text = example(bin.path());
    let env = env_of(&[
        ("VIGIL_NAME", "node9"),
        ("VIGIL_NAMESPACE", "/other/"),
        ("VIGIL_RESTAPI_USERNAME", "admin"),
        ("VIGIL_RESTAPI_PASSWORD", "api-pass"),
        ("VIGIL_RAFT_PARTNER_ADDRS", "127.0.0.1:2225,127.0.0.1:2226"),
        ("VIGIL_POSTGRESQL_BIN_DIR", bin2.path().to_str().unwrap()),
        ("VIGIL_POSTGRESQL_OS_USER", "postgres"),
        ("VIGIL_SUPERUSER_PASSWORD", "from-env"),
        ("VIGIL_REPLICATION_USERNAME", "repl2"),
    ]);
    let c = Config::from_yaml_str(&text, &env).unwrap();
    assert_eq!((c.name.as_str(), c.namespace.as_str()), ("node9", "/other/"));
    let auth = c.restapi.authentication.as_ref().unwrap();
    assert_eq!((auth.username.as_str(), auth.password.expose()), ("admin", "api-pass"));
    assert_eq!(c.raft.partner_addrs[1].port, 2226);
    assert_eq!(pg(&c).bin_dir, bin2.path());
    assert_eq!(pg(&c).os_user.as_deref(), Some("postgres"));
    assert_eq!(pg(&c).authentication.superuser.password.expose(), "from-env");
    assert_eq!(pg(&c).authentication.superuser.username, "postgres");
    assert_eq!(pg(&c).authentication.replication.username, "repl2");

    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_POSTGRESQL_LISTEN", "localhost")])).unwrap_err();
    assert_eq!(err.key(), Some("postgresql.listen"));
    assert!(err.to_string().ends_with("(set by VIGIL_POSTGRESQL_LISTEN)"), "{err}");
    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_NAME", "a b")])).unwrap_err();
    assert!(err.to_string().starts_with("name: invalid member name \"a b\""), "{err}");
    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_RAFT_DATA_DIR", "/tmp/vigil/node1/pg/raft")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "raft.data_dir: /tmp/vigil/node1/pg/raft is inside postgresql.data_dir /tmp/vigil/node1/pg (a re-clone \
         empties the data directory) (set by VIGIL_RAFT_DATA_DIR)"
    );
    let twice = [("VIGIL_RAFT_PARTNER_ADDRS", "127.0.0.1:2223,127.0.0.1:2223")];
    let err = Config::from_yaml_str(&text, &env_of(&twice)).unwrap_err();
    assert_eq!(err.key(), Some("raft.partner_addrs[1]"));
    let every_member = [("VIGIL_RAFT_PARTNER_ADDRS", "127.0.0.1:2222,127.0.0.1:2223,127.0.0.1:2224")];
    let c = Config::from_yaml_str(&text, &env_of(&every_member)).unwrap();
    let partners: Vec<String> = c.raft.partner_addrs.iter().map(ToString::to_string).collect();
    assert_eq!(partners, ["127.0.0.1:2223", "127.0.0.1:2224"], "self_addr is dropped from one shared list");
    let c = Config::from_yaml_str(&text, &env_of(&[("VIGIL_CTL_INSECURE", "true")])).unwrap();
    assert!(c.ctl.insecure);
    let logs = [("VIGIL_LOG_TYPE", "json"), ("VIGIL_LOG_LEVEL", "debug"), ("VIGIL_LOG_FILE_NUM", "9")];
    let c = Config::from_yaml_str(&text, &env_of(&logs)).unwrap();
    assert_eq!((c.log.kind, c.log.level, c.log.file_num), (LogType::Json, LogLevel::Debug, 9));
    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_LOG_TYPE", "xml")])).unwrap_err();
    assert_eq!(err.to_string(), "log.type: \"xml\" is not one of plain, json (set by VIGIL_LOG_TYPE)");
    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_LOG_FILE_SIZE", "big")])).unwrap_err();
    assert!(err.to_string().starts_with("log.file_size: invalid type: string \"big\""), "{err}");
    let allow = [
        ("VIGIL_RESTAPI_ALLOWLIST", "127.0.0.1, 10.0.0.0/8,db1.example"),
        ("VIGIL_RESTAPI_ALLOWLIST_INCLUDE_MEMBERS", "true"),
    ];
    let c = Config::from_yaml_str(&text, &env_of(&allow)).unwrap();
    assert_eq!(c.restapi.allowlist, ["127.0.0.1", "10.0.0.0/8", "db1.example"]);
    assert!(c.restapi.allowlist_include_members);
    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_RESTAPI_ALLOWLIST", "10.0.0.0/8,300.1.1.1")]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "restapi.allowlist[1]: \"300.1.1.1\" is not an IP address (set by VIGIL_RESTAPI_ALLOWLIST)"
    );
    let err = Config::from_yaml_str(&text, &env_of(&[("VIGIL_CTL_INSECURE", "maybe")])).unwrap_err();
    assert_eq!(err.key(), Some("ctl.insecure"), "{err}");
    assert!(err.to_string().ends_with("(set by VIGIL_CTL_INSECURE)"), "{err}");
}

#[test]
fn the_roles_tls_options_reach_the_adapter_from_the_file_and_the_environment() {
    let bin = fake_bin_dir();
    let ca = bin.path().join("ca.pem");
    std::fs::write(&ca, "CA").unwrap();
    let text = example(bin.path()).replace(
        "replication: {username: replicator, password: rep-pass}",
        &format!("replication: {{username: replicator, password: rep-pass, sslrootcert: {}}}", ca.display()),
    );
    let env = env_of(&[("VIGIL_REPLICATION_SSLMODE", "verify-full"), ("VIGIL_SUPERUSER_SSLMODE", "require")]);
    let c = Config::from_yaml_str(&text, &env).unwrap();
    let settings = PostgresSettings::from_config(&c, &c.bootstrap.dcs).unwrap();
    let ca = ca.display().to_string();
    assert_eq!(settings.replication.peer_options.0, [("sslmode", "verify-full".into()), ("sslrootcert", ca)]);
    assert_eq!(settings.superuser.peer_options.0, [("sslmode", "require".to_owned())]);
    let err =
        Config::from_yaml_str(&text, &env_of(&[("VIGIL_SUPERUSER_CHANNEL_BINDING", "always")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "postgresql.authentication.superuser.channel_binding: \"always\" is not one of disable, prefer, require \
         (set by VIGIL_SUPERUSER_CHANNEL_BINDING)"
    );
}

/// Node `n` of the three-node example, listing its partners in the given order.
fn node(n: u16, partners: &[u16], bin: &Path) -> Config {
    let list: Vec<String> = partners.iter().map(|p| format!("127.0.0.1:{}", 2221 + p)).collect();
    let text = example(bin)
        .replace("name: node1", &format!("name: node{n}"))
        .replace("self_addr: 127.0.0.1:2222", &format!("self_addr: 127.0.0.1:{}", 2221 + n))
        .replace("[127.0.0.1:2223, 127.0.0.1:2224]", &format!("[{}]", list.join(", ")));
    Config::from_yaml_str(&text, &no_env).unwrap()
}

#[test]
fn raft_members_are_the_same_on_every_node_whatever_the_order() {
    let bin = fake_bin_dir();
    let nodes = [
        node(1, &[3, 2], bin.path()),
        node(2, &[1, 3], bin.path()),
        node(3, &[2, 1], bin.path()),
        node(1, &[2, 3], bin.path()),
    ];
    let expected: BTreeMap<u64, String> = (1..=3).map(|i| (i, format!("127.0.0.1:{}", 2221 + i))).collect();
    for n in &nodes {
        assert_eq!(n.raft_members(), expected);
    }
    let ids: Vec<u64> = nodes.iter().map(Config::raft_node_id).collect();
    assert_eq!(ids, [1, 2, 3, 1]);
}

#[test]
fn postgres_settings_overlay_parameters_and_fall_back_to_bootstrap_pg_hba() {
    let bin = fake_bin_dir();
    let text = example(bin.path()).replace(
        "    unix_socket_directories: /tmp/vigil/node1",
        "    unix_socket_directories: /tmp/vigil/node1\n    max_connections: 200",
    );
    let c = Config::from_yaml_str(&text, &no_env).unwrap();
    let mut dynamic = c.bootstrap.dcs.clone();
    dynamic.postgresql.parameters.insert("max_connections".into(), "100".into());
    dynamic.postgresql.parameters.insert("wal_level".into(), "replica".into());
    let s = PostgresSettings::from_config(&c, &dynamic).unwrap();
    assert_eq!(s.name, "node1");
    assert_eq!((s.listen_host.as_str(), s.port, s.connect_host.as_str()), ("127.0.0.1", 5432, "127.0.0.1"));
    assert_eq!(s.parameters.get("max_connections").map(String::as_str), Some("200"));
    assert_eq!(s.parameters.get("wal_level").map(String::as_str), Some("replica"));
    assert_eq!(s.files.pg_hba, c.bootstrap.pg_hba);
    assert_eq!((s.superuser.password.expose(), s.replication.username.as_str()), ("su-pass", "replicator"));
    let debug = format!("{s:?}");
    assert!(!debug.contains("su-pass") && !debug.contains("rep-pass"), "Debug must hide passwords: {debug}");
    assert_eq!((s.bin_dir.as_path(), s.os_user.as_ref()), (bin.path(), None));
    assert_eq!(s.initdb.len(), 2);

    let own_hba = example(bin.path()).replace("  pgpass:", "  pg_hba: [local all all trust]\n  pgpass:");
    let c = Config::from_yaml_str(&own_hba, &no_env).unwrap();
    assert_eq!(
        PostgresSettings::from_config(&c, &c.bootstrap.dcs).unwrap().files.pg_hba,
        ["local all all trust"]
    );
}

#[test]
fn command_parameters_come_from_the_members_own_file_only() {
    // Issue 13: a member's file may set archive_command; the cluster-wide configuration may not.
    let bin = fake_bin_dir();
    let sockets = "    unix_socket_directories: /tmp/vigil/node1";
    let own = example(bin.path()).replace(sockets, &format!("{sockets}\n    archive_command: cp %p /a/%f"));
    let c = Config::from_yaml_str(&own, &no_env).unwrap();
    let mut dynamic = c.bootstrap.dcs.clone();
    // Past every validation: still only the file's value, and none of the dynamic configuration's own.
    for (name, value) in [("archive_command", "touch /tmp/x"), ("Restore_Command", "touch /tmp/y")] {
        dynamic.postgresql.parameters.insert(name.into(), value.into());
    }
    let parameters = PostgresSettings::from_config(&c, &dynamic).unwrap().parameters;
    assert_eq!(parameters.get("archive_command").map(String::as_str), Some("cp %p /a/%f"));
    assert_eq!(parameters.get("Restore_Command"), None, "{parameters:?}");

    let rewind = "      use_pg_rewind: true";
    let seeded = example(bin.path()).replace(
        rewind,
        &format!("{rewind}\n      parameters: {{archive_command: cp %p /a/%f, work_mem: 8MB}}"),
    );
    let err = Config::from_yaml_str(&seeded, &no_env).unwrap_err();
    assert_eq!(err.key(), Some("bootstrap.dcs.postgresql.parameters"));
    let text = err.to_string();
    assert!(text.contains(r#"archive_command = "cp %p /a/%f""#) && !text.contains("work_mem"), "{text}");
    assert!(text.contains("postgresql.parameters of each member's own file"), "{text}");
}

#[test]
fn root_without_os_user_is_refused() {
    let bin = fake_bin_dir();
    let c = Config::from_yaml_str(&example(bin.path()), &no_env).unwrap();
    let err = c.check_os_user(true).unwrap_err();
    assert_eq!(err.key(), Some("postgresql.os_user"));
    assert!(err.to_string().contains("set postgresql.os_user (e.g. postgres)"), "{err}");
    assert!(c.check_os_user(false).is_ok());
    assert_eq!(c.os_user().unwrap(), None);
}

#[test]
fn tags_decide_whether_a_member_can_fail_over() {
    let bin = fake_bin_dir();
    let with_tags = |tags: &str| {
        let text = example(bin.path()).replace("tags: {nofailover: false, noloadbalance: false}", tags);
        Config::from_yaml_str(&text, &no_env).unwrap().tags
    };
    assert!(with_tags("tags: {}").can_fail_over());
    assert!(!with_tags("tags: {nofailover: true}").can_fail_over());
    assert!(!with_tags("tags: {nofailover: true, failover_priority: 3}").can_fail_over());
    assert!(!with_tags("tags: {failover_priority: 0}").can_fail_over());
    let t = with_tags("tags: {failover_priority: 3, zone: b}");
    assert!(t.can_fail_over() && t.failover_priority() == 3);
    assert_eq!(t.extra.get("zone"), Some(&serde_json::json!("b")));
}

#[test]
fn nostream_needs_a_restore_command_and_join_another_member() {
    let bin = fake_bin_dir();
    let load =
        |from: &str, to: &str| Config::from_yaml_str(&example(bin.path()).replace(from, to), &|_| None);
    let tags = "tags: {nofailover: false, noloadbalance: false}";
    let err = load(tags, "tags: {nostream: true}").unwrap_err();
    assert_eq!(err.key(), Some("tags.nostream"));
    assert!(err.to_string().contains("needs postgresql.parameters.restore_command"), "{err}");
    let archive = "    unix_socket_directories: /tmp/vigil/node1\n    restore_command: cp /archive/%f %p\ntags: {nostream: true}";
    let config = load(
        "    unix_socket_directories: /tmp/vigil/node1\ntags: {nofailover: false, noloadbalance: false}",
        archive,
    )
    .expect("nostream with an archive");
    assert!(config.tags.nostream);

    let join = |addr: &str| load("  partner_addrs:", &format!("  join: {addr}\n  partner_addrs:"));
    assert_eq!(
        join("127.0.0.1:2223").unwrap().raft.join.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:2223")
    );
    let err = join("127.0.0.1:2222").unwrap_err();
    assert_eq!(err.to_string(), "raft.join: 127.0.0.1:2222 is this member's own raft.self_addr");
    assert_eq!(join("nowhere").unwrap_err().key(), Some("raft.join"));
}

#[test]
fn patroni_names_of_the_variables_apply_when_vigil_ones_are_not_set() {
    let bin = fake_bin_dir();
    let text = example(bin.path());
    let patroni = [
        ("PATRONI_SCOPE", "batman"),
        ("PATRONI_SUPERUSER_PASSWORD", "from-patroni"),
        ("PATRONI_REWIND_USERNAME", "rewinder"),
        ("PATRONI_REWIND_PASSWORD", "rw"),
        ("PATRONI_LOG_FORMAT", "%(asctime)s %(levelname)s: %(message)s"),
        ("PATRONI_LOG_LOGGERS", "{openraft: INFO}"),
        ("PATRONI_RAFT_PARTNER_ADDRS", "'127.0.0.1:2223','127.0.0.1:2225'"),
        ("VIGIL_NAME", "vigil-name"),
        ("PATRONI_NAME", "patroni-name"),
    ];
    let c = Config::from_yaml_str(&text, &env_of(&patroni)).unwrap();
    assert_eq!((c.scope.as_str(), c.name.as_str()), ("batman", "vigil-name"), "VIGIL_ wins over PATRONI_");
    let auth = &pg(&c).authentication;
    assert_eq!(auth.superuser.password.expose(), "from-patroni");
    assert_eq!(auth.rewind.as_ref().map(|r| r.username.as_str()), Some("rewinder"));
    assert_eq!(c.log.format.as_deref(), Some("%(asctime)s %(levelname)s: %(message)s"));
    assert_eq!(c.log.loggers.get("openraft"), Some(&LogLevel::Info));
    assert_eq!(c.raft.partner_addrs.len(), 2);
    let err = Config::from_yaml_str(&text, &env_of(&[("PATRONI_LOG_FORMAT", "%(funcName)s")])).unwrap_err();
    assert!(err.to_string().ends_with("(set by PATRONI_LOG_FORMAT)"), "{err}");
}

#[test]
fn pgpass_left_out_is_patronis_pgpass_in_the_home_directory() {
    let bin = fake_bin_dir();
    let text = example(bin.path()).replace("  pgpass: /tmp/vigil/node1/pgpass\n", "");
    let home = |var: &str| (var == "HOME").then(|| "/home/ops".to_string());
    let c = Config::from_yaml_str(&text, &home).unwrap();
    assert_eq!(pg(&c).pgpass, std::path::PathBuf::from("/home/ops/pgpass"));
    let err = Config::from_yaml_str(&text, &|_| None).unwrap_err();
    assert!(err.to_string().starts_with("postgresql.pgpass: is needed: left out, it is pgpass"), "{err}");
}

#[test]
fn the_sample_configuration_is_valid_and_fits_patroni_timing_with_a_warning() {
    let bin = fake_bin_dir();
    let sample = super::SAMPLE
        .replace("# bin_dir: /usr/lib/postgresql/15/bin", &format!("bin_dir: {}", bin.path().display()));
    let c = Config::from_yaml_str(&sample, &|_| None).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("bootstrap.dcs: ttl 30000 ms, loop_wait 10000 ms and retry_timeout 10000 ms")
    );
    assert_eq!(c.bootstrap.dcs.lease_timing().retry_timeout, std::time::Duration::from_millis(9750));
    let beyond = sample.replace("retry_timeout: 10", "retry_timeout: 11");
    let err = Config::from_yaml_str(&beyond, &|_| None).unwrap_err();
    assert!(
        err.to_string().starts_with("bootstrap.dcs: loop_wait (10000 ms) + 2 * retry_timeout (11000 ms)"),
        "{err}"
    );
}
