//! Broken files: each gives its own message naming the key.

use super::tests::{env_of, example, fake_bin_dir, pg};
use super::*;

/// Loads the example with `from` replaced by `to` and returns the error's text.
fn broken(from: &str, to: &str) -> (Option<String>, String) {
    let bin = fake_bin_dir();
    let text = example(bin.path());
    assert!(text.contains(from), "the example has no {from:?}");
    let err = Config::from_yaml_str(&text.replacen(from, to, 1), &|_| None).unwrap_err();
    let first = err.errors()[0];
    (first.key().map(str::to_string), first.to_string())
}

/// `(from, to, key, start of the message)`.
const CASES: &[(&str, &str, &str, &str)] = &[
    ("scope: demo", "scope: demo\ncolour: blue", "colour", "colour: unknown field `colour`, expected one of"),
    (
        "password: su-pass}",
        "pasword: su-pass}",
        "postgresql.authentication.superuser.pasword",
        "postgresql.authentication.superuser.pasword: unknown field `pasword`, expected",
    ),
    (
        "superuser: {username: postgres, password: su-pass}",
        "superuser: {username: postgres}",
        "postgresql.authentication.superuser.password",
        "postgresql.authentication.superuser.password: is required but missing",
    ),
    (
        "listen: 127.0.0.1:5432",
        "listen: 127.0.0.1",
        "postgresql.listen",
        "postgresql.listen: \"127.0.0.1\" is not host:port (the port is missing)",
    ),
    (
        "listen: 127.0.0.1:8008",
        "listen: 127.0.0.1:80080",
        "restapi.listen",
        "restapi.listen: \"127.0.0.1:80080\" is not host:port (the port must be 1 to 65535)",
    ),
    (
        "replication: {username: replicator, password: rep-pass}",
        "replication: {username: replicator, password: rep-pass, sslmode: verify}",
        "postgresql.authentication.replication.sslmode",
        "postgresql.authentication.replication.sslmode: \"verify\" is not one of disable, allow, prefer, \
         require, verify-ca, verify-full",
    ),
    (
        "superuser: {username: postgres, password: su-pass}",
        "superuser: {username: postgres, password: su-pass, sslrootcert: /nonexistent/ca.pem}",
        "postgresql.authentication.superuser.sslrootcert",
        "postgresql.authentication.superuser.sslrootcert: /nonexistent/ca.pem does not exist or is not a file",
    ),
    (
        "    maximum_lag_on_failover: 1048576",
        "    ttl: 2",
        "bootstrap.dcs",
        "bootstrap.dcs: loop_wait (1000 ms) + 2 * retry_timeout (750 ms) + safety_margin (500 ms) = 3000 ms \
         exceeds ttl (2000 ms)",
    ),
    (
        "    maximum_lag_on_failover: 1048576",
        "    loop_wait: 0",
        "bootstrap.dcs.loop_wait",
        "bootstrap.dcs.loop_wait: must be greater than 0",
    ),
    (
        "    maximum_lag_on_failover: 1048576",
        "    ttl: 3 parsecs",
        "bootstrap.dcs.ttl",
        "bootstrap.dcs.ttl: \"3 parsecs\" is not a duration: use seconds (3, 0.75) or a number with a unit",
    ),
    (
        "    maximum_lag_on_failover: 1048576",
        "    synchronous_mode: sometimes",
        "bootstrap.dcs.synchronous_mode",
        "bootstrap.dcs.synchronous_mode: \"sometimes\" is not one of off, on, quorum",
    ),
    (
        "use_pg_rewind: true",
        "use_pg_rewind: true\n      use_slot: true",
        "bootstrap.dcs.postgresql.use_slot",
        "bootstrap.dcs.postgresql.use_slot: unknown field `use_slot`",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  verify_client: sometimes",
        "restapi.verify_client",
        "restapi.verify_client: \"sometimes\" is not one of none, optional, required",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  allowlist: [127.0.0.1, 10.0.0.0/33]",
        "restapi.allowlist[1]",
        "restapi.allowlist[1]: the prefix length \"33\" must be 0 to 32",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  allowlist: ['db 1']",
        "restapi.allowlist[0]",
        "restapi.allowlist[0]: \"db 1\" is not an IP address, a CIDR network or a host name",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  allowlist_include_members: sometimes",
        "restapi.allowlist_include_members",
        "restapi.allowlist_include_members: invalid type",
    ),
    (
        "  listen: 127.0.0.1:8008",
        "  listen: 0.0.0.0:8008",
        "restapi.insecure",
        "restapi.insecure: restapi.listen 0.0.0.0:8008 is not a loopback address and nothing protects the \
         management calls (switchover, restart, config changes) on it: set restapi.authentication, \
         restapi.verify_client (optional or required, with restapi.cafile) or restapi.allowlist, or set \
         restapi.insecure: true",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  insecure: maybe",
        "restapi.insecure",
        "restapi.insecure: invalid type",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  read_authentication: {username: monitor, password: r}",
        "restapi.read_authentication",
        "restapi.read_authentication: is set without restapi.authentication",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  authentication: {username: admin, password: a}\n  \
         read_authentication: {username: admin, password: r}",
        "restapi.read_authentication.username",
        "restapi.read_authentication.username: \"admin\" is restapi.authentication's user name too",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  authentication: {username: admin, password: a}\n  \
         read_authentication: {username: '', password: r}",
        "restapi.read_authentication.username",
        "restapi.read_authentication.username: must not be empty",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 0.0.0.0:8008",
        "restapi.connect_address",
        "restapi.connect_address: 0.0.0.0:8008 is not an address others can connect to",
    ),
    (
        "  connect_address: 127.0.0.1:8008",
        "  connect_address: 127.0.0.1:8008\n  certfile: /nonexistent/vigil.pem",
        "restapi.certfile",
        "restapi.certfile: /nonexistent/vigil.pem does not exist or is not a file",
    ),
    (
        "[127.0.0.1:2223, 127.0.0.1:2224]",
        "[127.0.0.1:2223, 127.0.0.1:2223]",
        "raft.partner_addrs[1]",
        "raft.partner_addrs[1]: 127.0.0.1:2223 is listed twice",
    ),
    (
        "[127.0.0.1:2223, 127.0.0.1:2224]",
        "[127.0.0.1:2223, nope]",
        "raft.partner_addrs[1]",
        "raft.partner_addrs[1]: \"nope\" is not host:port",
    ),
    ("name: node1", "name: a/b", "name", "name: invalid member name \"a/b\""),
    ("name: node1", "name:", "name", "name: is required but missing"),
    ("scope: demo", "scope: ''", "scope", "scope: \"\" is not a cluster name"),
    (
        "data_dir: /tmp/vigil/node1/raft",
        "data_dir: /tmp/vigil/node1/pg/raft",
        "raft.data_dir",
        "raft.data_dir: /tmp/vigil/node1/pg/raft is inside postgresql.data_dir /tmp/vigil/node1/pg",
    ),
    (
        "initdb: [{encoding: UTF8}, data-checksums]",
        "initdb: [{encoding: UTF8, locale: C}]",
        "bootstrap.initdb[0]",
        "bootstrap.initdb[0]: each initdb item is a flag (data-checksums) or a one-key map (encoding: UTF8)",
    ),
    (
        "    unix_socket_directories: /tmp/vigil/node1",
        "    shared_preload_libraries: [a, b]",
        "postgresql.parameters.shared_preload_libraries",
        "postgresql.parameters.shared_preload_libraries: invalid type: sequence, expected a string, number or \
         boolean",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "tags: {nofailover: false}\nwatchdog: {mode: sometimes}",
        "watchdog.mode",
        "watchdog.mode: \"sometimes\" is not one of off, automatic, required",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "watchdog: {mode: automatic, device: dev/watchdog}",
        "watchdog.device",
        "watchdog.device: \"dev/watchdog\" is not an absolute path",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "watchdog: {mode: required, safety_margin: 2.5}",
        "watchdog.safety_margin",
        "watchdog.safety_margin: 2.5s leaves the watchdog less than 1 s: its timeout is bootstrap.dcs.ttl (3s)",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "watchdog: {mode: automatic, safety_margin: -1}",
        "watchdog.safety_margin",
        "watchdog.safety_margin: -1 is not a duration: it must not be negative",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "watchdog: {mode: automatic, timeout: 10}",
        "watchdog.timeout",
        "watchdog.timeout: unknown field `timeout`, expected one of `mode`, `device`, `safety_margin`",
    ),
    (
        "  pgpass: /tmp/vigil/node1/pgpass",
        "  pgpass: /tmp/vigil/node1/pgpass\n  pre_promote: '  '",
        "postgresql.pre_promote",
        "postgresql.pre_promote: is an empty command",
    ),
    (
        "  pgpass: /tmp/vigil/node1/pgpass",
        "  pgpass: /tmp/vigil/node1/pgpass\n  callbacks: {on_role_change: ''}",
        "postgresql.callbacks.on_role_change",
        "postgresql.callbacks.on_role_change: is an empty command",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "log: {type: xml}",
        "log.type",
        "log.type: \"xml\" is not one of plain, json",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "kubernetes: {role_label: Role/primary}",
        "kubernetes.role_label",
        "kubernetes.role_label: \"Role/primary\" has a bad prefix: it must be a DNS subdomain",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "kubernetes: {api_url: kubernetes.default.svc}",
        "kubernetes.api_url",
        "kubernetes.api_url: \"kubernetes.default.svc\" is not an http(s) URL",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "kubernetes: {pod_name: ''}",
        "kubernetes.pod_name",
        "kubernetes.pod_name: \"\" is not a Kubernetes name",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "haproxy: {runtime_api: [haproxy.local:9999], backend: primary}",
        "haproxy.runtime_api[0]",
        "haproxy.runtime_api[0]: \"haproxy.local:9999\" is neither an absolute socket path nor an IP address with a port (ipv4@127.0.0.1:9999)",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "haproxy: {runtime_api: [], backend: primary}",
        "haproxy.runtime_api",
        "haproxy.runtime_api: is empty: name at least one HAProxy stats socket (`level admin`)",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "haproxy: {runtime_api: [/run/haproxy/admin.sock], backend: 'primary; disable server x'}",
        "haproxy.backend",
        "haproxy.backend: \"primary; disable server x\" is not a HAProxy name (not empty, no spaces, `;` or `/`)",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "haproxy: {runtime_api: [ipv4@127.0.0.1:9999], backend: primary, servers: {node1: ''}}",
        "haproxy.servers.node1",
        "haproxy.servers.node1: \"\" is not a HAProxy name (not empty, no spaces, `;` or `/`)",
    ),
    (
        "tags: {nofailover: false, noloadbalance: false}",
        "log: {level: loud}",
        "log.level",
        "log.level: \"loud\" is not one of error, warn, info, debug, trace",
    ),
    (
        "  pgpass: /tmp/vigil/node1/pgpass",
        "  pgpass: /tmp/vigil/node1/pgpass\n  callbacks: {on_start: /bin/true, on_boom: /bin/false}",
        "postgresql.callbacks.on_boom",
        "postgresql.callbacks.on_boom: unknown field `on_boom`, expected one of `on_start`",
    ),
    (
        "  pgpass: /tmp/vigil/node1/pgpass",
        "  pgpass: /tmp/vigil/node1/pgpass\n  create_replica_methods: [wal_e]",
        "postgresql.create_replica_methods[0]",
        "postgresql.create_replica_methods[0]: \"wal_e\" is not built in (basebackup) and there is no \
         postgresql.wal_e section: add one with its command",
    ),
];

#[test]
fn each_broken_file_names_its_key() {
    let mut messages = std::collections::BTreeSet::new();
    for &(from, to, key, start) in CASES {
        let (got_key, message) = broken(from, to);
        assert_eq!(got_key.as_deref(), Some(key), "{to:?}: {message}");
        assert!(message.starts_with(start), "{to:?}:\n got: {message}\nwant: {start}…");
        assert!(messages.insert(message.clone()), "two cases give the same message: {message}");
    }
}

#[test]
fn missing_programs_in_bin_dir_are_named() {
    let bin = fake_bin_dir();
    std::fs::remove_file(bin.path().join("pg_rewind")).unwrap();
    let err = Config::from_yaml_str(&example(bin.path()), &|_| None).unwrap_err();
    assert_eq!(err.key(), Some("postgresql.bin_dir"));
    assert!(err.to_string().contains("lacks pg_rewind (it must hold postgres, pg_ctl"), "{err}");
}

#[test]
fn verify_client_needs_tls_files() {
    let bin = fake_bin_dir();
    let cert = bin.path().join("postgres"); // any existing file
    let text = example(bin.path()).replace(
        "  connect_address: 127.0.0.1:8008",
        &format!(
            "  connect_address: 127.0.0.1:8008\n  certfile: {}\n  verify_client: required",
            cert.display()
        ),
    );
    let err = Config::from_yaml_str(&text, &|_| None).unwrap_err();
    assert_eq!(err.errors()[0].to_string(), "restapi.verify_client: checking client certificates needs TLS: set restapi.certfile and restapi.cafile");
    // With both files named, they are read: one that is no certificate stops the agent, naming the key.
    let complete =
        text.replace("  verify_client:", &format!("  cafile: {}\n  verify_client:", cert.display()));
    let all = Config::from_yaml_str(&complete, &|_| None).unwrap_err();
    let err = all.errors()[0];
    assert_eq!(err.to_string(), format!("restapi.certfile: {}: no PEM certificate in it", cert.display()));
    assert_eq!(err.key(), Some("restapi.certfile"));
}

#[test]
fn a_rest_api_beyond_loopback_needs_protection_or_insecure() {
    let bin = fake_bin_dir();
    let text = example(bin.path());
    let listen = |host: &str, extra: &str| {
        let restapi = format!("  listen: '{host}:8008'\n{extra}");
        text.replace("  listen: 127.0.0.1:8008\n", &restapi)
    };
    for host in ["127.0.0.2", "localhost", "[::1]"] {
        let c = Config::from_yaml_str(&listen(host, ""), &|_| None).unwrap();
        assert!(!c.restapi.unprotected(), "{host} is loopback");
    }
    for extra in [
        "  insecure: true\n",
        "  authentication: {username: admin, password: a}\n",
        "  allowlist: [10.0.0.0/8]\n",
        "  allowlist_include_members: true\n",
    ] {
        let c = Config::from_yaml_str(&listen("0.0.0.0", extra), &|_| None).unwrap();
        assert_eq!(c.restapi.unprotected(), extra.contains("insecure"), "{extra}");
    }
    let insecure = env_of(&[("VIGIL_RESTAPI_INSECURE", "true")]);
    assert!(Config::from_yaml_str(&listen("10.0.0.1", ""), &insecure).unwrap().restapi.insecure);
    let err = Config::from_yaml_str(&listen("db1.example.com", ""), &|_| None).unwrap_err();
    assert_eq!(err.key(), Some("restapi.insecure"), "{err}");
}

#[test]
fn read_credentials_come_with_admin_credentials() {
    let bin = fake_bin_dir();
    let env = env_of(&[
        ("VIGIL_RESTAPI_USERNAME", "admin"),
        ("VIGIL_RESTAPI_PASSWORD", "a"),
        ("VIGIL_RESTAPI_READ_USERNAME", "monitor"),
        ("VIGIL_RESTAPI_READ_PASSWORD", "r"),
    ]);
    let c = Config::from_yaml_str(&example(bin.path()), &env).unwrap();
    let read = c.restapi.read_authentication.as_ref().unwrap();
    assert_eq!((read.username.as_str(), read.password.expose()), ("monitor", "r"));
    assert!(!format!("{c:?}").contains("\"r\""), "the password is hidden");
}

#[test]
fn an_empty_or_scalar_document_is_refused_by_key() {
    let err = Config::from_yaml_str("", &|_| None).unwrap_err();
    assert_eq!(err.to_string(), "scope: is required but missing");
    let err = Config::from_yaml_str("just text", &|_| None).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid type: string \"just text\", expected struct Config"),
        "{err}"
    );
}

#[test]
fn a_watchdog_and_hooks_that_fit_are_accepted() {
    let bin = fake_bin_dir();
    let text = example(bin.path())
        .replace(
            "tags: {nofailover: false, noloadbalance: false}",
            "tags: {nofailover: false, noloadbalance: false}\nwatchdog: {mode: required, device: /tmp/wd, safety_margin: 2}",
        )
        .replace(
            "  pgpass: /tmp/vigil/node1/pgpass",
            "  pgpass: /tmp/vigil/node1/pgpass\n  pre_promote: /bin/true\n  callbacks: {on_role_change: /bin/true}",
        );
    let c = Config::from_yaml_str(&text, &|_| None).unwrap();
    assert_eq!(c.watchdog.mode, WatchdogMode::Required);
    assert_eq!(c.watchdog.safety_margin, Some(std::time::Duration::from_secs(2)));
    assert_eq!(pg(&c).pre_promote.as_deref(), Some("/bin/true"));
    assert_eq!(pg(&c).callbacks.on_role_change.as_deref(), Some("/bin/true"));
}

/// The example with its Raft addresses on `host` (all three members) and `extra` keys in `raft`.
fn raft_on(host: &str, extra: &str) -> Result<Config, ConfigError> {
    let bin = fake_bin_dir();
    let text = example(bin.path())
        .replace("self_addr: 127.0.0.1:2222", &format!("self_addr: {host}:2222{extra}"))
        .replace("[127.0.0.1:2223, 127.0.0.1:2224]", &format!("[{host}:2223, {host}:2224]"));
    Config::from_yaml_str(&text, &|_| None)
}

#[test]
fn an_unauthenticated_raft_group_reachable_from_other_machines_is_refused() {
    let err = raft_on("10.0.0.1", "").unwrap_err();
    assert_eq!(err.key(), Some("raft.insecure"));
    let text = err.to_string();
    assert!(text.contains("reachable from other machines (raft.self_addr 10.0.0.1:2222)"), "{text}");
    assert!(text.contains("raft.certfile, raft.keyfile and raft.cafile") && text.contains("raft.password"));

    assert!("[::1]:2222".parse::<HostPort>().unwrap().is_loopback());
    let bound_to_all = raft_on("127.0.0.1", "\n  bind_addr: 0.0.0.0:2222").unwrap_err();
    assert_eq!(bound_to_all.key(), Some("raft.insecure"), "{bound_to_all}");

    for (host, extra) in [
        ("127.0.0.1", ""),
        ("localhost", ""),
        ("10.0.0.1", "\n  insecure: true"),
        ("10.0.0.1", "\n  password: 12345"),
    ] {
        let config = raft_on(host, extra).unwrap_or_else(|e| panic!("{host}{extra}: {e}"));
        assert_eq!(config.raft_security().password.is_some(), extra.contains("password"));
    }
}

#[test]
fn raft_tls_needs_its_files_and_a_certificate_naming_self_addr() {
    let dir = tempfile::tempdir().unwrap();
    let ca = vigil_api::pki::Authority::new("test CA").unwrap();
    let good = ca.write(dir.path(), "good", &["10.0.0.1"]).unwrap();
    let other = ca.write(dir.path(), "other", &["10.0.0.2"]).unwrap();
    let tls = |files: &vigil_api::pki::CertFiles| {
        let (cert, key, ca) = (files.certfile.display(), files.keyfile.display(), files.cafile.display());
        format!("\n  certfile: {cert}\n  keyfile: {key}\n  cafile: {ca}")
    };
    let config = raft_on("10.0.0.1", &tls(&good)).unwrap();
    assert!(config.raft_security().tls.is_some());

    let err = raft_on("10.0.0.1", &tls(&other)).unwrap_err();
    assert_eq!(err.key(), Some("raft.certfile"));
    assert!(err.to_string().contains("not valid for 10.0.0.1, raft.self_addr's host"), "{err}");

    let cases = [
        (format!("\n  certfile: {}", good.certfile.display()), "raft.cafile: is needed with raft.certfile"),
        (format!("\n  cafile: {}", good.cafile.display()), "raft.certfile: is needed with raft.cafile"),
        (format!("\n  keyfile: {}", good.keyfile.display()), "raft.keyfile: is set without raft.certfile"),
        ("\n  password: ''".to_owned(), "raft.password: is empty"),
        (
            format!("\n  certfile: /nonexistent.pem\n  cafile: {}", good.cafile.display()),
            "raft.certfile: /nonexistent.pem: ",
        ),
        (
            format!(
                "\n  certfile: {}\n  keyfile: {}\n  cafile: {}",
                good.certfile.display(),
                other.keyfile.display(),
                good.cafile.display()
            ),
            "raft.keyfile: ",
        ),
    ];
    for (extra, expected) in cases {
        let err = raft_on("10.0.0.1", &extra).unwrap_err();
        assert!(err.to_string().starts_with(expected), "{extra}: {err}");
    }
}

#[test]
fn one_reading_reports_every_error() {
    let bin = fake_bin_dir();
    let text = example(bin.path())
        .replace("scope: demo", "scope: demo\ncolour: blue\netcd:\n  host: 127.0.0.1:2379")
        .replace("  listen: 127.0.0.1:5432", "  listen: 127.0.0.1:5432\n  speed: fast")
        .replace("tags: {", "watchdog: {mode: sometimes}\ntags: {");
    let err = Config::from_yaml_str(&text, &|_| None).unwrap_err();
    let keys: Vec<_> = err.errors().iter().map(|e| e.key().unwrap_or_default().to_string()).collect();
    assert_eq!(keys, ["colour", "etcd", "watchdog.mode", "postgresql.speed"], "{err}");
    assert!(err.to_string().starts_with("4 errors:\n  colour: unknown field"), "{err}");
    let etcd = err.errors()[1].to_string();
    assert!(
        etcd.starts_with("etcd: Vigil needs no etcd: its agents keep the cluster's state in a Raft group"),
        "{etcd}"
    );
    // Checks of the whole run too, once what is left reads.
    let text = example(bin.path())
        .replace("scope: demo", "scope: demo\ncolour: blue")
        .replace("self_addr: 127.0.0.1:2222", "self_addr: 0.0.0.0:2222");
    let err = Config::from_yaml_str(&text, &|_| None).unwrap_err();
    let keys: Vec<_> = err.errors().iter().map(|e| e.key().unwrap_or_default().to_string()).collect();
    assert_eq!(keys, ["colour", "raft.self_addr"], "{err}");
}
