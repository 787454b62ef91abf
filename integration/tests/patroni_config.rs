//! Patroni's configuration files carry over: its sample members (`fixtures/patroni/postgres{0,1,2}.yml`,
//! their `etcd:` section replaced by `raft:`) and a production-style file with every section Vigil
//! supports validate with the real `vigil` binary, and the samples run as a cluster; a broken file gets
//! every error in one run; Patroni's variables and `PATRONI_CONFIGURATION` are read; `--print` shows what
//! the agent reads.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use vigil_integration::agents::{free_port, vigil_binary};
use vigil_integration::managed::postgres_user;
use vigil_integration::wait_for;

/// The fixtures' directory.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/patroni")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).expect("fixture")
}

/// `vigil agent ARGS` in `cwd`, with `env` added to (and every VIGIL_/PATRONI_ variable taken out of)
/// this process's environment.
fn vigil(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(vigil_binary());
    cmd.arg("agent").args(args).current_dir(cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("VIGIL_") || name.starts_with("PATRONI_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied()).output().expect("run vigil")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The production fixture with its `@DIR@` paths in `dir`, which gets a CA, a certificate and its key.
fn production(dir: &Path) -> String {
    let ca = vigil_api::pki::Authority::new("patroni fixture CA").expect("CA");
    ca.write(dir, "rest", &["10.0.0.11", "127.0.0.1"]).expect("certificates");
    fixture("production.yml").replace("@DIR@", &dir.display().to_string())
}

#[test]
fn patronis_sample_members_validate_with_only_their_store_section_changed() {
    for member in ["postgres0.yml", "postgres1.yml", "postgres2.yml"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(member), fixture(member)).unwrap();
        let out = vigil(dir.path(), &["--validate-config", member], &[]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{member}: {stderr}");
        assert!(stdout.ends_with(": valid\n"), "{member}: {stdout}");
        // Patroni's 30/10/10 leaves no room for Vigil's safety margin: fitted, and said in one line.
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("vigil: warning:")).collect();
        assert_eq!(warnings.len(), 1, "{member}: {stderr}");
        assert!(warnings[0].contains("store operations give up after 9750 ms"), "{}", warnings[0]);
        assert!(!dir.path().join("data").exists(), "validating creates nothing");
    }
}

#[test]
fn a_production_file_with_every_section_validates() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.yml");
    std::fs::write(&file, production(dir.path())).unwrap();
    let out = vigil(dir.path(), &["--validate-config", "-c", file.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "pg-orders-1: valid\n");
}

#[test]
fn one_run_reports_every_error_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let broken = production(dir.path())
        .replace("  loop_wait: 10\n", "  loop_wait: often\n")
        .replace("  connect_address: 10.0.0.11:5432\n", "  connect_adress: 10.0.0.11:5432\n")
        .replace("  mode: automatic\n", "  mode: sometimes\n")
        .replace("scope: orders\n", "scope: orders\netcd3:\n  hosts: 10.0.0.21:2379\n");
    let file = dir.path().join("orders.yml");
    std::fs::write(&file, broken).unwrap();
    let out = vigil(dir.path(), &["--validate-config", "-c", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let keys: Vec<&str> = stderr
        .lines()
        .skip(1)
        .filter_map(|l| l.trim_start().strip_prefix(&format!("{}: ", file.display())))
        .filter_map(|l| l.split(": ").next())
        .collect();
    assert!(stderr.starts_with("vigil: 5 errors:\n"), "{stderr}");
    assert_eq!(
        keys,
        [
            "etcd3",
            "bootstrap.dcs.loop_wait",
            "postgresql.connect_adress",
            "postgresql.connect_address",
            "watchdog.mode"
        ],
        "{stderr}"
    );
    assert!(
        stderr.contains("etcd3: Vigil needs no etcd3: its agents keep the cluster's state in a Raft group")
    );
}

#[test]
fn patroni_variables_apply_and_print_shows_them_with_passwords_hidden() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("postgres0.yml"), fixture("postgres0.yml")).unwrap();
    let env =
        [("PATRONI_SCOPE", "gotham"), ("PATRONI_SUPERUSER_PASSWORD", "from-env"), ("VIGIL_NAME", "robin")];
    let out = vigil(dir.path(), &["--validate-config", "--print", "postgres0.yml"], &env);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("scope: gotham\n") && stdout.contains("name: robin\n"), "{stdout}");
    assert!(!stdout.contains("from-env") && !stdout.contains("rep-pass"), "passwords are hidden:\n{stdout}");
    assert!(stdout.contains("password: '********'"), "{stdout}");
    assert!(stdout.ends_with("robin: valid\n"), "{stdout}");
}

#[test]
fn a_whole_file_in_patroni_configuration_is_read_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = fixture("postgres1.yml");
    let out = vigil(dir.path(), &["--validate-config"], &[("PATRONI_CONFIGURATION", &yaml)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "postgresql1: valid\n");
    let out = vigil(dir.path(), &["--validate-config"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("VIGIL_CONFIGURATION or PATRONI_CONFIGURATION"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_generated_sample_is_a_valid_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = vigil(dir.path(), &["--generate-sample-config"], &[]);
    assert!(out.status.success());
    std::fs::write(dir.path().join("sample.yml"), &out.stdout).unwrap();
    let out = vigil(dir.path(), &["--validate-config", "sample.yml"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Agents started by a test, killed (by PID) and reaped when it ends, however it ends; their servers
/// stop with them.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// GET `url`'s status code, `None` when nothing answers.
async fn status(client: &reqwest::Client, url: &str) -> Option<u16> {
    client.get(url).send().await.ok().map(|r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patronis_sample_members_run_as_a_cluster() {
    let root = tempfile::tempdir().unwrap();
    let user = postgres_user();
    let own = |path: &Path| {
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    };
    own(root.path());
    // Only what must differ on a shared machine changes: free ports instead of 8008/5432/2222…, each
    // member's own working directory (Patroni's samples share one, each pysyncobj journal named by its
    // address; Vigil's store is one file per raft.data_dir) and its .pgpass beside it.
    let ports: Vec<[u16; 3]> = (0..3).map(|_| [free_port(), free_port(), free_port()]).collect();
    let mut agents = Agents(Vec::new());
    for i in 0..3u16 {
        let dir = root.path().join(format!("member{i}"));
        std::fs::create_dir(&dir).unwrap();
        own(&dir);
        let mut yaml = fixture(&format!("postgres{i}.yml"));
        for (j, member) in ports.iter().enumerate() {
            let j = j as u16;
            for (default, port) in [8008 + j, 5432 + j, 2222 + j].iter().zip(member) {
                yaml = yaml.replace(&format!("127.0.0.1:{default}"), &format!("127.0.0.1:{port}"));
            }
        }
        yaml = yaml.replace(&format!("/tmp/pgpass{i}"), &dir.join("pgpass").display().to_string());
        let file = dir.join(format!("postgres{i}.yml"));
        std::fs::write(&file, yaml).unwrap();
        own(&file);
        let log = std::fs::File::create(dir.join("agent.log")).unwrap();
        let mut cmd = Command::new(vigil_binary());
        cmd.arg("agent").arg(file.file_name().unwrap()).current_dir(&dir);
        cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null());
        if let Some((uid, gid)) = user {
            cmd.uid(uid).gid(gid);
        }
        agents.0.push(cmd.spawn().expect("start an agent"));
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let roles = wait_for("a primary and two replicas", Duration::from_secs(180), || {
        let (client, ports) = (&client, &ports);
        async move {
            let mut roles = Vec::new();
            for [api, _, _] in ports {
                let primary = status(client, &format!("http://127.0.0.1:{api}/primary")).await;
                let replica = status(client, &format!("http://127.0.0.1:{api}/replica")).await;
                roles.push(match (primary, replica) {
                    (Some(200), _) => "primary",
                    (_, Some(200)) => "replica",
                    _ => return None,
                });
            }
            let primaries = roles.iter().filter(|r| **r == "primary").count();
            (primaries == 1).then_some(roles)
        }
    })
    .await;
    // The bootstrap's pg_hba (bootstrap.dcs.postgresql.pg_hba, md5 from anywhere) and superuser work.
    let primary = roles.iter().position(|r| *r == "primary").unwrap();
    let dsn =
        format!("host=127.0.0.1 port={} user=postgres password=patroni dbname=postgres", ports[primary][1]);
    let (db, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    db.batch_execute("CREATE TABLE batman (id int); INSERT INTO batman VALUES (1)").await.unwrap();
    let replica = (primary + 1) % 3;
    let dsn =
        format!("host=127.0.0.1 port={} user=postgres password=patroni dbname=postgres", ports[replica][1]);
    let rows = wait_for("the row on a replica", Duration::from_secs(60), || {
        let dsn = dsn.clone();
        async move {
            let (db, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls).await.ok()?;
            tokio::spawn(connection);
            db.query("SELECT id FROM batman", &[]).await.ok().map(|rows| rows.len())
        }
    })
    .await;
    assert_eq!(rows, 1);
    drop(agents);
}
