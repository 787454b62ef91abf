//! Replica and bootstrap methods of the operator's (`examples/pgbackrest/node1.yml`), and the mapping form
//! of `basebackup` and `initdb`.

use super::tests::{example, fake_bin_dir, pg};
use super::*;

const PGBACKREST_EXAMPLE: &str = include_str!("../../../examples/pgbackrest/node1.yml");

/// The pgBackRest example with each `(from, to)` of `edits` made, read.
fn pgbackrest_example(edits: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let bin = fake_bin_dir();
    let mut text =
        PGBACKREST_EXAMPLE.replace("/usr/lib/postgresql/15/bin", &bin.path().display().to_string());
    for (from, to) in edits {
        assert!(text.contains(from), "the example has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    Config::from_yaml_str(&text, &|_| None)
}

/// The first error of the pgBackRest example with `edits` made: its key and text.
fn refused(edits: &[(&str, &str)]) -> (String, String) {
    let err = pgbackrest_example(edits).unwrap_err();
    let first = err.errors()[0];
    (first.key().unwrap_or_default().to_owned(), first.to_string())
}

#[test]
fn the_pgbackrest_example_reads_its_methods_in_order_and_the_mapping_forms() {
    let config = pgbackrest_example(&[]).unwrap();
    let p = pg(&config);
    let CloneMethod::Custom { name, method } = &p.clone_methods[0] else { panic!("{:?}", p.clone_methods) };
    assert_eq!(name, "pgbackrest");
    assert_eq!(method.command, "pgbackrest --stanza=main --delta restore --type=standby");
    assert!(method.keep_data && method.no_params && !method.no_leader && method.arguments.is_empty());
    assert_eq!(p.clone_methods[1], CloneMethod::Basebackup);
    assert_eq!(
        p.basebackup,
        [
            InitdbOption::Value("max-rate".into(), "100M".into()),
            InitdbOption::Value("checkpoint".into(), "fast".into())
        ]
    );
    assert_eq!(config.bootstrap.custom, None, "method: initdb leaves the section unused");

    let restoring = pgbackrest_example(&[("method: initdb", "method: pgbackrest")]).unwrap();
    let custom = restoring.bootstrap.custom.expect("the bootstrap method");
    assert_eq!((custom.name.as_str(), custom.no_params), ("pgbackrest", true));
    let recovery = custom.recovery_conf.expect("recovery_conf");
    assert_eq!(recovery["recovery_target_action"], "promote");
    assert_eq!(recovery["restore_command"], "pgbackrest --stanza=main archive-get %f \"%p\"");
}

#[test]
fn other_keys_of_a_method_are_its_arguments_and_initdb_takes_a_mapping() {
    let bin = fake_bin_dir();
    let text = example(bin.path())
        .replace("initdb: [{encoding: UTF8}, data-checksums]", "initdb: {encoding: UTF8, locale: C}")
        .replace(
            "  pgpass: /tmp/vigil/node1/pgpass",
            "  pgpass: /tmp/vigil/node1/pgpass\n  create_replica_methods: [wal_g, basebackup]\n\
             \x20 wal_g: {command: wal-g backup-fetch, no_leader: true, threads: 4, verbose: true, name: LATEST}",
        );
    let config = Config::from_yaml_str(&text, &|_| None).unwrap();
    let CloneMethod::Custom { method, .. } = &pg(&config).clone_methods[0] else { panic!() };
    assert!(method.no_leader && !method.keep_data);
    let arguments: Vec<String> = long_arguments(&method.arguments).collect();
    assert_eq!(arguments, ["--name=LATEST", "--threads=4", "--verbose=true"]);
    assert_eq!(
        config.bootstrap.initdb,
        [
            InitdbOption::Value("encoding".into(), "UTF8".into()),
            InitdbOption::Value("locale".into(), "C".into())
        ]
    );
}

#[test]
fn bad_methods_are_refused_naming_the_key() {
    let cases = [
        (
            "[pgbackrest, basebackup]",
            "[pgbackrest, barman, basebackup]",
            "postgresql.create_replica_methods[1]",
            "\"barman\" is not built in (basebackup) and there is no postgresql.barman section",
        ),
        (
            "method: initdb",
            "method: barman",
            "bootstrap.method",
            "names \"barman\", but there is no bootstrap.barman section",
        ),
        (
            "    command: pgbackrest --stanza=main --delta restore --type=standby",
            "    command: ' '",
            "postgresql.pgbackrest.command",
            "is an empty command",
        ),
        (
            "    keep_data: true",
            "    datadir: /elsewhere",
            "postgresql.pgbackrest.datadir",
            "is passed to the command by the agent",
        ),
        (
            "    keep_data: true",
            "    threads: [1, 2]",
            "postgresql.pgbackrest.threads",
            "give a string, number or boolean",
        ),
        (
            "  # post_bootstrap: /usr/local/bin/after-bootstrap.sh",
            "  post_bootstrap: ''",
            "bootstrap.post_bootstrap",
            "is an empty command",
        ),
        (
            "  # post_bootstrap: /usr/local/bin/after-bootstrap.sh",
            "  post_bootstrap: a.sh\n  post_init: b.sh",
            "bootstrap.post_init",
            "is post_bootstrap's other name",
        ),
        (
            "create_replica_methods: [pgbackrest, basebackup]",
            "create_replica_methods: []",
            "postgresql.create_replica_methods",
            "must list at least one method",
        ),
    ];
    for (from, to, key, message) in cases {
        let (got_key, text) = refused(&[(from, to)]);
        assert_eq!(got_key, key, "{to}: {text}");
        assert!(text.contains(message), "{to}: {text}");
    }
    // A listed method's section without its command.
    let (key, text) =
        refused(&[("    command: pgbackrest --stanza=main --delta restore --type=standby\n", "")]);
    assert_eq!(key, "postgresql.pgbackrest.command", "{text}");
    assert!(text.contains("is required but missing"), "{text}");
    // The bootstrap method's recovery settings are parameter names.
    let (key, text) = refused(&[
        ("method: initdb", "method: pgbackrest"),
        ("recovery_target_action: promote", "'target action': promote"),
    ]);
    assert_eq!(key, "bootstrap.pgbackrest.recovery_conf.target action", "{text}");
}
