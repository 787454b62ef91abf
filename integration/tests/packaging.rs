//! `packaging/vigil@.service`, the systemd unit: `systemd-analyze verify` accepts it as written (with the
//! unit's `/usr/bin/vigil` pointed at the binary built here), and it keeps the settings the agent's
//! signal handling relies on. What the signals do is tested with real agents elsewhere: SIGHUP in
//! `pg_parameters.rs`, SIGTERM's handover in `pg_policy.rs`. The manual pages the image installs are
//! what `vigil man DIR` writes.

use std::path::Path;
use vigil_integration::agents::vigil_binary;

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/vigil@.service");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn systemd_accepts_the_unit_without_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let built = vigil_binary().display().to_string();
    std::fs::write(dir.path().join("vigil@.service"), unit().replace("/usr/bin/vigil", &built))
        .expect("unit");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("vigil@node1.service"))
        .output()
        .expect("systemd-analyze (scripts/test.sh installs it)");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {}: {said}", out.status);
}

#[test]
fn the_unit_reloads_with_sighup_and_lets_the_agent_stop_its_database() {
    let unit = unit();
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for expected in [
        "ExecStart=/usr/bin/vigil agent -c /etc/vigil/%i.yml",
        "ExecStartPre=/usr/bin/vigil agent --validate-config -c /etc/vigil/%i.yml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=process",
        "KillSignal=SIGTERM",
        "Restart=on-failure",
    ] {
        assert!(lines.contains(&expected), "the unit lacks {expected:?}");
    }
}

#[test]
fn vigil_man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out =
        std::process::Command::new(vigil_binary()).arg("man").arg(dir.path()).output().expect("vigil man");
    assert!(out.status.success(), "vigil man: {}", String::from_utf8_lossy(&out.stderr));
    for (page, says) in [
        ("vigil.1", "\\-\\-config\\-file"),
        ("vigil-agent.1", ".TH vigil-agent 1"),
        ("vigil-list.1", "\\-\\-timestamp"),
        ("vigil-query.1", "\\-\\-format"),
        ("vigil-members-add.1", ".TH vigil-members-add 1"),
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(says), "{page} lacks {says:?}:\n{text}");
    }
    assert!(!dir.path().join("vigil-lifeline.1").exists(), "hidden commands get no page");
}
