//! The `vigil` binary refuses broken configuration files: `vigil agent --validate-config -c FILE` and
//! `vigil agent -c FILE` both exit with code 1, name the key on stderr, and create nothing on disk.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use vigil_integration::agents::{vigil_binary, PASSWORD, PG_BIN};
use vigil_integration::wait_for;

/// How long the binary may take to refuse a file (it reads one file and exits).
const EXIT_WITHIN: Duration = Duration::from_secs(20);

/// A valid configuration whose directories all lie in `dir` (none of them exists yet). The ports are
/// never bound: the tests only validate, or run files that must be refused before anything starts.
fn valid_config(dir: &Path) -> String {
    let root = unsafe { libc::geteuid() } == 0;
    let os_user = if root { "  os_user: postgres\n" } else { "" };
    let dir = dir.display();
    format!(
        "scope: it
name: node1
restapi:
  listen: 127.0.0.1:48008
  connect_address: 127.0.0.1:48008
raft:
  data_dir: {dir}/raft
  self_addr: 127.0.0.1:42222
  partner_addrs: [127.0.0.1:42223, 127.0.0.1:42224]
bootstrap:
  dcs:
    ttl: 3
    loop_wait: 1
    retry_timeout: 0.75
    safety_margin: 0.5
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
  initdb: [{{encoding: UTF8}}, data-checksums]
  pg_hba:
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:45432
  connect_address: 127.0.0.1:45432
  data_dir: {dir}/pg
  bin_dir: {PG_BIN}
  pgpass: {dir}/pgpass
  authentication:
    replication: {{username: replicator, password: rep-pass}}
    superuser: {{username: postgres, password: {PASSWORD}}}
{os_user}tags: {{nofailover: false}}
"
    )
}

/// A broken file: the valid one with `from` replaced by `to`, and the key the error must name.
struct Case {
    what: &'static str,
    from: &'static str,
    to: &'static str,
    key: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "an unknown key",
        from: "  bin_dir:",
        to: "  data_directory: /somewhere\n  bin_dir:",
        key: "postgresql.data_directory",
    },
    Case {
        what: "a listen address whose port is out of range",
        from: "  listen: 127.0.0.1:48008",
        to: "  listen: 127.0.0.1:480080",
        key: "restapi.listen",
    },
    Case {
        what: "a listen address without a port",
        from: "  listen: 127.0.0.1:45432",
        to: "  listen: 127.0.0.1",
        key: "postgresql.listen",
    },
    Case {
        what: "loop_wait + 2 * retry_timeout + safety_margin > ttl",
        from: "    loop_wait: 1\n",
        to: "    loop_wait: 2\n",
        key: "bootstrap.dcs",
    },
    Case {
        what: "no superuser password",
        from: "superuser: {username: postgres, password: su-pass}",
        to: "superuser: {username: postgres}",
        key: "postgresql.authentication.superuser.password",
    },
    Case { what: "an invalid member name", from: "name: node1", to: "name: node/1", key: "name" },
    Case {
        what: "a duration with an unknown unit",
        from: "    ttl: 3\n",
        to: "    ttl: 3 fortnights\n",
        key: "bootstrap.dcs.ttl",
    },
    Case {
        what: "a negative maximum_lag_on_failover",
        from: "maximum_lag_on_failover: 1048576",
        to: "maximum_lag_on_failover: -1",
        key: "bootstrap.dcs.maximum_lag_on_failover",
    },
    Case {
        what: "an empty postgresql.data_dir",
        from: "  data_dir: DIR/pg",
        to: "  data_dir: ''",
        key: "postgresql.data_dir",
    },
    Case {
        what: "a raft.data_dir inside the database's data directory",
        from: "  data_dir: DIR/raft",
        to: "  data_dir: DIR/pg/raft",
        key: "raft.data_dir",
    },
    Case {
        what: "a bin_dir without PostgreSQL's programs",
        from: "  bin_dir: BIN",
        to: "  bin_dir: /nonexistent/postgresql/bin",
        key: "postgresql.bin_dir",
    },
];

/// A `vigil` process, killed by PID if the test gives up on it.
struct Vigil(Child);

impl Drop for Vigil {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What one run of the binary did.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `vigil agent [args] -c file`, without any `VIGIL_*` override from the test's environment, and
/// waits (bounded) for it to exit.
async fn vigil_agent(args: &[&str], file: &Path) -> Ran {
    let outside = file.parent().and_then(Path::parent).expect("the case's directory");
    let (out, err) = (outside.join("stdout"), outside.join("stderr"));
    let mut command = Command::new(vigil_binary());
    command.arg("agent").args(args).arg("-c").arg(file);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("VIGIL_")) {
        command.env_remove(name);
    }
    // The output goes to files outside the case's directory so that a full pipe cannot block the process.
    let (stdout, stderr) = (capture(&out), capture(&err));
    let child = command.stdin(Stdio::null()).stdout(stdout).stderr(stderr).spawn().expect("start vigil");
    let mut vigil = Vigil(child);
    let what = format!("vigil agent {args:?} -c {} to exit", file.display());
    let status = wait_for(&what, EXIT_WITHIN, || {
        let status = vigil.0.try_wait().expect("try_wait");
        async move { status }
    })
    .await;
    let read = |p: &Path| std::fs::read_to_string(p).expect("captured output");
    Ran { status, stdout: read(&out), stderr: read(&err) }
}

fn capture(path: &Path) -> std::fs::File {
    std::fs::File::create(path).expect("output file")
}

/// A fresh directory `root/name/node` holding only `vigil.yml` with `text` (where `DIR` stands for that
/// directory); the captured output goes to `root/name`.
fn case_dir(root: &Path, name: &str, text: &str) -> (PathBuf, PathBuf) {
    let dir = root.join(name).join("node");
    std::fs::create_dir_all(&dir).expect("case dir");
    let file = dir.join("vigil.yml");
    std::fs::write(&file, text.replace("DIR", &dir.display().to_string())).expect("write config");
    (dir, file)
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The valid template with `DIR` and `BIN` placeholders, so that cases can refer to them.
fn template() -> String {
    valid_config(Path::new("DIR")).replace(PG_BIN, "BIN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_broken_file_is_refused_by_key_without_touching_the_disk() {
    let root = tempfile::Builder::new().prefix("vigil-config-").tempdir().expect("temp dir");
    let template = template();
    for (n, case) in CASES.iter().enumerate() {
        assert!(template.contains(case.from), "{}: the valid file has no {:?}", case.what, case.from);
        let broken = template.replacen(case.from, case.to, 1).replace("BIN", PG_BIN);
        for (mode, args) in [("validate", &["--validate-config"][..]), ("run", &[][..])] {
            let (dir, file) = case_dir(root.path(), &format!("{n}-{mode}"), &broken);
            let ran = vigil_agent(args, &file).await;
            let context = format!(
                "{} ({mode}): exit {}, stdout {:?}, stderr {:?}",
                case.what, ran.status, ran.stdout, ran.stderr
            );
            assert_eq!(ran.status.code(), Some(1), "{context}");
            assert!(ran.stderr.contains(&format!("{}: ", case.key)), "names {}: {context}", case.key);
            assert!(ran.stderr.contains(&file.display().to_string()), "names the file: {context}");
            assert!(ran.stdout.is_empty(), "{context}");
            assert_eq!(listing(&dir), ["vigil.yml"], "nothing created on disk: {context}");
            assert!(!dir.join("pg").exists() && !dir.join("raft").exists(), "{context}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_file_passes_validate_config_without_touching_the_disk() {
    let root = tempfile::Builder::new().prefix("vigil-config-").tempdir().expect("temp dir");
    let (dir, file) = case_dir(root.path(), "valid", &template().replace("BIN", PG_BIN));
    let ran = vigil_agent(&["--validate-config"], &file).await;
    assert!(ran.status.success(), "exit {}: {}", ran.status, ran.stderr);
    assert_eq!(ran.stdout.trim(), "node1: valid");
    assert_eq!(listing(&dir), ["vigil.yml"], "nothing created on disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mariadb_example_passes_validate_config_and_its_broken_invariants_do_not() {
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mariadb-node1.yml"))
            .expect("examples/mariadb-node1.yml");
    let root = unsafe { libc::geteuid() } == 0;
    let example = if root { example.replace("  # os_user: mysql", "  os_user: mysql") } else { example };
    let tmp = tempfile::Builder::new().prefix("vigil-config-").tempdir().expect("temp dir");
    let (_, file) = case_dir(tmp.path(), "mariadb", &example);
    let ran = vigil_agent(&["--validate-config"], &file).await;
    assert!(ran.status.success(), "exit {}: {}", ran.status, ran.stderr);
    assert_eq!(ran.stdout.trim(), "node1: valid");
    for (i, (parameters, key)) in [
        ("{log_slave_updates: 'OFF'}", "mysql.parameters.log_slave_updates"),
        ("{gtid_domain_id: '-1'}", "mysql.parameters.gtid_domain_id"),
        ("{server_id: '0'}", "mysql.parameters.server_id"),
    ]
    .into_iter()
    .enumerate()
    {
        let broken = example.replace("{innodb_buffer_pool_size: 64M}", parameters);
        let (_, file) = case_dir(tmp.path(), &format!("mariadb-broken-{i}"), &broken);
        let ran = vigil_agent(&["--validate-config"], &file).await;
        assert_eq!(ran.status.code(), Some(1), "{parameters}: {}", ran.stderr);
        assert!(ran.stderr.contains(key), "{parameters}: {}", ran.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_and_cascading_examples_pass_validate_config() {
    let tmp = tempfile::Builder::new().prefix("vigil-config-").tempdir().expect("temp dir");
    for (example, name) in [("witness.yml", "witness"), ("node3-cascading.yml", "node3")] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(example);
        let text = std::fs::read_to_string(&path).expect("example");
        let (_, file) = case_dir(tmp.path(), name, &text);
        let ran = vigil_agent(&["--validate-config"], &file).await;
        assert!(ran.status.success(), "{example}: exit {}: {}", ran.status, ran.stderr);
        assert_eq!(ran.stdout.trim(), format!("{name}: valid"));
    }
}
