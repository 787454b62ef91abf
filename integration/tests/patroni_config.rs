//! Patroni's configuration files carry over: its sample members (`fixtures/patroni/postgres{0,1,2}.yml`,
//! their `etcd:` section replaced by `raft:`) and a production-style file with every section Vigil
//! supports validate with the real `vigil` binary; a broken file gets every error in one run; Patroni's
//! variables and `PATRONI_CONFIGURATION` are read; `--print` shows what the agent reads.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use vigil_integration::agents::vigil_binary;

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
