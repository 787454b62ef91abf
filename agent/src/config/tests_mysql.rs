//! The `mysql` section: loading, the search for its programs, its invariants, and the choice of one
//! database section.

use super::tests::{env_of, example, fake_bin_dir};
use super::*;
use crate::db::postgres::PostgresSettings;
use std::path::PathBuf;
use tempfile::TempDir;

const MYSQL_EXAMPLE: &str = "\
scope: demo
name: node1
restapi:
  listen: 127.0.0.1:8008
  connect_address: 127.0.0.1:8008
raft:
  data_dir: /tmp/vigil/node1/raft
  self_addr: 127.0.0.1:2222
  partner_addrs: [127.0.0.1:2223, 127.0.0.1:2224]
mysql:
  listen: 127.0.0.1:3306
  connect_address: 127.0.0.1:3306
  data_dir: /tmp/vigil/node1/mysql
  bin_dir: BIN
  authentication:
    superuser: {username: vigil, password: su-pass}
    replication: {username: replicator, password: rep-pass}
  parameters: {innodb_buffer_pool_size: 64M}
";

/// A directory holding empty files named `names`.
fn dir_with(names: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    dir
}

/// A directory holding empty files named like MariaDB's programs.
pub(super) fn fake_mysql_bin_dir() -> TempDir {
    dir_with(Flavor::Mariadb.programs())
}

/// The MariaDB example with `bin_dir` pointing at `bin`.
pub(super) fn mysql_example(bin: &Path) -> String {
    MYSQL_EXAMPLE.replace("BIN", &bin.display().to_string())
}

/// The example with `from` replaced by `to`, loaded.
fn load_with(from: &str, to: &str) -> Result<Config, ConfigError> {
    let bin = fake_mysql_bin_dir();
    let text = mysql_example(bin.path());
    assert!(text.contains(from), "the example has no {from:?}");
    Config::from_yaml_str(&text.replacen(from, to, 1), &|_| None)
}

/// The example without `bin_dir`, loaded with `path` as `$PATH` and `sbin` instead of `/usr/sbin`.
fn load_searching(extra: &str, path: &[&Path], sbin: &Path) -> Result<Config, ConfigError> {
    let text = MYSQL_EXAMPLE.replace("  bin_dir: BIN\n", extra);
    let path: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    let roots = ProgramRoots { sbin: sbin.to_path_buf(), ..ProgramRoots::default() };
    Config::parse(&text, &env_of(&[("PATH", path.join(":").as_str())]), &roots)
}

#[test]
fn a_mysql_file_loads_and_its_flavor_is_detected() {
    let bin = fake_mysql_bin_dir();
    let c = Config::from_yaml_str(&mysql_example(bin.path()), &|_| None).unwrap();
    assert!(c.postgresql.is_none());
    let m = c.mysql.as_ref().unwrap();
    assert_eq!(m.flavor, Flavor::Mariadb);
    assert_eq!((m.listen.to_string(), m.connect_address.port), ("127.0.0.1:3306".to_owned(), 3306));
    assert_eq!(m.data_dir, PathBuf::from("/tmp/vigil/node1/mysql"));
    assert_eq!(m.bin_dir.as_deref(), Some(bin.path()));
    let p = &m.programs;
    assert_eq!(
        (p.server.clone(), p.install_db.clone()),
        (bin.path().join("mariadbd"), Some(bin.path().join("mariadb-install-db")))
    );
    assert_eq!(
        (p.dump.clone(), p.client.clone()),
        (bin.path().join("mariadb-dump"), bin.path().join("mariadb"))
    );
    let auth = &m.authentication;
    assert_eq!((auth.superuser.username.as_str(), auth.superuser.password.expose()), ("vigil", "su-pass"));
    assert_eq!(auth.replication.username, "replicator");
    assert_eq!(m.parameters, BTreeMap::from([("innodb_buffer_pool_size".to_owned(), "64M".to_owned())]));
    assert_eq!(m.os_user, None);
    let by_default = [ReplicaMethod::MariadbBackup, ReplicaMethod::MariadbDump];
    assert_eq!(m.create_replica_methods, by_default, "a physical copy, else the dump");
    assert!(!format!("{c:?}").contains("rep-pass"), "Debug must hide passwords");
    assert!(PostgresSettings::from_config(&c, &c.bootstrap.dcs).is_none());
}

#[test]
fn a_written_flavor_is_kept_and_needs_its_programs() {
    let c = load_with("  listen: 127.0.0.1:3306", "  flavor: MariaDB\n  listen: 127.0.0.1:3306").unwrap();
    assert_eq!(c.mysql.unwrap().flavor, Flavor::Mariadb);
    let err = load_with("  listen: 127.0.0.1:3306", "  flavor: mysql\n  listen: 127.0.0.1:3306").unwrap_err();
    assert_eq!(err.key(), Some("mysql.bin_dir"));
    let text = err.to_string();
    assert!(
        text.contains("lacks mysqld, mysqldump, mysql (mysql.flavor mysql needs mysqld, mysqldump, mysql)"),
        "{text}"
    );
    let err =
        load_with("  listen: 127.0.0.1:3306", "  flavor: percona\n  listen: 127.0.0.1:3306").unwrap_err();
    assert_eq!(err.to_string(), "mysql.flavor: \"percona\" is not one of mariadb, mysql");
}

#[test]
fn left_out_the_programs_are_found_on_path_and_in_sbin() {
    // Debian's layout: the server in /usr/sbin, the tools in /usr/bin.
    let (sbin, usr_bin) = (dir_with(&["mariadbd", "mysqld"]), dir_with(&Flavor::Mariadb.programs()[1..]));
    let c = load_searching("", &[usr_bin.path()], sbin.path()).unwrap();
    let m = c.mysql.unwrap();
    assert_eq!((m.flavor, m.bin_dir), (Flavor::Mariadb, None));
    assert_eq!(
        (m.programs.server, m.programs.client),
        (sbin.path().join("mariadbd"), usr_bin.path().join("mariadb"))
    );

    let mysql = dir_with(Flavor::Mysql.programs());
    let empty = tempfile::tempdir().unwrap();
    let m = load_searching("", &[mysql.path()], empty.path()).unwrap().mysql.unwrap();
    assert_eq!((m.flavor, m.programs.install_db), (Flavor::Mysql, None));
    assert_eq!(m.programs.dump, mysql.path().join("mysqldump"));

    let err = load_searching("", &[empty.path()], empty.path()).unwrap_err();
    let expected = format!(
        "mysql.bin_dir: is not set and $PATH and {} lack both mariadbd and mysqld: install them, or set mysql.bin_dir",
        empty.path().display()
    );
    assert_eq!(err.to_string(), expected);
    let err = load_searching("", &[], sbin.path()).unwrap_err();
    assert!(
        err.to_string().contains("lack mariadb-install-db, mariadb-dump, mariadb (mysql.flavor"),
        "{err}"
    );
}

#[test]
fn a_bin_dir_must_hold_every_program() {
    let bin = dir_with(&["mariadbd", "mariadb-install-db"]);
    let text = mysql_example(bin.path());
    let err = Config::from_yaml_str(&text, &|_| None).unwrap_err();
    let expected = format!(
        "mysql.bin_dir: {} lacks mariadb-dump, mariadb (mysql.flavor mariadb needs mariadbd, mariadb-install-db, \
         mariadb-dump, mariadb): set it to the directory that holds them",
        bin.path().display()
    );
    assert_eq!(err.to_string(), expected);
    let err = load_with("  bin_dir: /", "  bin_dir: ").unwrap_err();
    assert_eq!(err.key(), Some("mysql.bin_dir"), "{err}");
    assert!(err.to_string().contains("lacks both mariadbd and mysqld"), "{err}");
}

/// `(from, to, key, message)`.
const BROKEN: &[(&str, &str, &str, &str)] = &[
    (
        "connect_address: 127.0.0.1:3306",
        "connect_address: 0.0.0.0:3306",
        "mysql.connect_address",
        "0.0.0.0:3306 is not an address others can connect to: name this host",
    ),
    (
        "data_dir: /tmp/vigil/node1/mysql",
        "data_dir: /tmp/vigil/node1",
        "raft.data_dir",
        "/tmp/vigil/node1/raft is inside mysql.data_dir /tmp/vigil/node1 (a re-clone empties the data directory)",
    ),
    ("  parameters:", "  os_user: 'my sql'\n  parameters:", "mysql.os_user", "\"my sql\" is not a user name"),
    ("{username: vigil,", "{username: '',", "mysql.authentication.superuser.username", "must not be empty"),
    (
        "password: rep-pass}",
        "pasword: rep-pass}",
        "mysql.authentication.replication.pasword",
        "unknown field",
    ),
    ("  parameters:", "  pgpass: /tmp/pgpass\n  parameters:", "mysql.pgpass", "unknown field `pgpass`"),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{log_slave_updates: off}",
        "mysql.parameters.log_slave_updates",
        "\"off\": log_slave_updates must be on",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{gtid-strict-mode: 0}",
        "mysql.parameters.gtid-strict-mode",
        "\"0\": gtid_strict_mode must be on",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{binlog_format: mixed}",
        "mysql.parameters.binlog_format",
        "\"mixed\": binlog_format must be ROW",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{log_bin: false}",
        "mysql.parameters.log_bin",
        "\"off\": log_bin must not be off",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{read_only: on}",
        "mysql.parameters.read_only",
        "is set by the agent (",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{skip-slave-start: 1}",
        "mysql.parameters.skip-slave-start",
        "is set by the agent (",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{server_id: 0}",
        "mysql.parameters.server_id",
        "\"0\": server_id must be an integer from 1 to 4294967295",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{gtid_domain_id: -1}",
        "mysql.parameters.gtid_domain_id",
        "\"-1\": gtid_domain_id must be an integer from 0 to 4294967295",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{port: 3307}",
        "mysql.parameters.port",
        "is set by the agent from mysql.listen: leave it out",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{bind-address: 0.0.0.0}",
        "mysql.parameters.bind-address",
        "is set by the agent from mysql.listen: leave it out",
    ),
    (
        "  parameters:",
        "  create_replica_methods: [mariadb_backup, rsync]\n  parameters:",
        "mysql.create_replica_methods[1]",
        "\"rsync\" is not one of mariadb_backup, mariadb_dump",
    ),
    (
        "  parameters:",
        "  create_replica_methods: []\n  parameters:",
        "mysql.create_replica_methods",
        "must list at least one of mariadb_backup, mariadb_dump",
    ),
    (
        "{innodb_buffer_pool_size: 64M}",
        "{datadir: /var/lib/mysql}",
        "mysql.parameters.datadir",
        "is set by the agent from mysql.data_dir: leave it out",
    ),
];

#[test]
fn each_broken_mysql_file_names_its_key() {
    for (from, to, key, message) in BROKEN {
        let all = load_with(from, to).expect_err(to);
        let err = all.errors()[0];
        assert_eq!(err.key(), Some(*key), "{to}: {err}");
        assert!(err.to_string().starts_with(&format!("{key}: {message}")), "{to}: {err}");
    }
    let ids = "{server_id: 4294967295, gtid_domain_id: 0, log_bin: mariadb-bin, binlog_format: row, \
               log_slave_updates: on, gtid_strict_mode: true}";
    let c = load_with("{innodb_buffer_pool_size: 64M}", ids).unwrap();
    assert_eq!(c.engine().unwrap().parameters().len(), 6);
}

#[test]
fn a_file_has_at_most_one_database_section_and_none_makes_a_witness() {
    let (pg_bin, mysql_bin) = (fake_bin_dir(), fake_mysql_bin_dir());
    let mysql = mysql_example(mysql_bin.path());
    let without = &mysql[..mysql.find("mysql:").unwrap()];
    let witness = Config::from_yaml_str(without, &|_| None).expect("a witness");
    assert!(witness.is_witness() && witness.engine().is_none());
    let empty = Config::from_yaml_str(&format!("{without}mysql:\n"), &|_| None)
        .expect("an empty section is left out");
    assert!(empty.is_witness());

    let pg = example(pg_bin.path());
    assert!(!Config::from_yaml_str(&pg, &|_| None).unwrap().is_witness());
    let both = format!("{pg}{}", &mysql[mysql.find("mysql:").unwrap()..]);
    let err = Config::from_yaml_str(&both, &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mysql: is set together with postgresql: a member runs one database server, so keep only its section"
    );
}

#[test]
fn the_engine_accessors_read_either_section() {
    let (pg_bin, mysql_bin) = (fake_bin_dir(), fake_mysql_bin_dir());
    let pg = Config::from_yaml_str(&example(pg_bin.path()), &|_| None).unwrap();
    let mysql = Config::from_yaml_str(
        &mysql_example(mysql_bin.path()).replace("  parameters:", "  os_user: mysql\n  parameters:"),
        &|_| None,
    )
    .unwrap();
    let (p, m) = (pg.engine().unwrap(), mysql.engine().unwrap());
    assert!(matches!(p, EngineConfig::Postgresql(_)) && matches!(m, EngineConfig::Mysql(_)));
    assert_eq!((p.section(), m.section()), ("postgresql", "mysql"));
    assert_eq!((p.connect_address().port, m.connect_address().port), (5432, 3306));
    assert_eq!(
        (p.data_dir(), m.data_dir()),
        (Path::new("/tmp/vigil/node1/pg"), Path::new("/tmp/vigil/node1/mysql"))
    );
    assert!(p.parameters().contains_key("unix_socket_directories"));
    assert!(m.parameters().contains_key("innodb_buffer_pool_size"));
    assert_eq!((p.os_user(), m.os_user()), (None, Some("mysql")));
}

#[test]
fn the_mysql_environment_overrides_apply() {
    let (bin, bin2) = (fake_mysql_bin_dir(), fake_mysql_bin_dir());
    let env = env_of(&[
        ("VIGIL_MYSQL_LISTEN", "127.0.0.1:3307"),
        ("VIGIL_MYSQL_CONNECT_ADDRESS", "10.0.0.1:3307"),
        ("VIGIL_MYSQL_DATA_DIR", "/srv/mysql"),
        ("VIGIL_MYSQL_BIN_DIR", bin2.path().to_str().unwrap()),
        ("VIGIL_MYSQL_OS_USER", "mysql"),
        ("VIGIL_MYSQL_SUPERUSER_PASSWORD", "su-from-env"),
        ("VIGIL_MYSQL_REPLICATION_USERNAME", "repl2"),
        ("VIGIL_MYSQL_REPLICATION_PASSWORD", "rep-from-env"),
    ]);
    let c = Config::from_yaml_str(&mysql_example(bin.path()), &env).unwrap();
    let m = c.mysql.unwrap();
    let auth = &m.authentication;
    assert_eq!(
        (auth.superuser.username.as_str(), auth.superuser.password.expose()),
        ("vigil", "su-from-env")
    );
    assert_eq!(
        (auth.replication.username.as_str(), auth.replication.password.expose()),
        ("repl2", "rep-from-env")
    );
    assert_eq!((m.listen.port, m.connect_address.host.as_str()), (3307, "10.0.0.1"));
    assert_eq!((m.data_dir, m.os_user.as_deref()), (PathBuf::from("/srv/mysql"), Some("mysql")));
    assert_eq!(m.programs.server, bin2.path().join("mariadbd"));
    let relative =
        Config::from_yaml_str(&mysql_example(bin.path()), &env_of(&[("VIGIL_MYSQL_DATA_DIR", "rel")]))
            .unwrap();
    let from_here = std::env::current_dir().unwrap().join("rel");
    assert_eq!(
        relative.mysql.unwrap().data_dir,
        from_here,
        "a relative path is read from the working directory"
    );
}

#[test]
fn mariadb_backup_and_mbstream_are_used_when_installed() {
    let bare = fake_mysql_bin_dir();
    let c = Config::from_yaml_str(&mysql_example(bare.path()), &|_| None).unwrap();
    let p = c.mysql.unwrap().programs;
    assert_eq!((p.backup, p.mbstream), (None, None), "the dump is left to clone with");
    let mut names = Flavor::Mariadb.programs().to_vec();
    names.extend(["mariadb-backup", "mbstream"]);
    let full = dir_with(&names);
    let c = Config::from_yaml_str(&mysql_example(full.path()), &|_| None).unwrap();
    let p = c.mysql.unwrap().programs;
    assert_eq!(p.backup, Some(full.path().join("mariadb-backup")));
    assert_eq!(p.mbstream, Some(full.path().join("mbstream")));
}
