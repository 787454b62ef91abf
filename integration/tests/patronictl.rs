//! patronictl's habits against real agents managing real PostgreSQL 15 servers: a ctl-only
//! configuration file named by `-c` before the subcommand or by `PATRONICTL_CONFIG_FILE`, the cluster's
//! name as first argument, `list -t`, `version`, `query`, `edit-config -q`, `restart`/`reload`/`reinit`
//! on several members, `flush`, and agents serving HTTPS reached with `--cacert` or `-k`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use vigil_integration::agents::{vigil_binary, AgentCluster, PASSWORD};
use vigil_integration::vigil_cli::{self, Run};
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(60);

/// `vigil -c FILE args...`, which must succeed.
async fn vigil_ok(file: &Path, args: &[&str]) -> Run {
    let mut line = vec!["-c", file.to_str().expect("path")];
    line.extend_from_slice(args);
    let run = vigil_cli::run(&[("PGPASSWORD", PASSWORD)], &line).await;
    assert!(run.success, "vigil {line:?} failed:\n{run}");
    run
}

/// A ctl-only file for an admin host: the cluster's name, one agent's REST address, nothing about a
/// database or the Raft group.
fn ctl_only_file(cluster: &AgentCluster, node: usize) -> PathBuf {
    let file = cluster.dir().join("patronictl.yaml");
    let yaml = format!(
        "scope: it\nnamespace: /service/\nrestapi:\n  connect_address: 127.0.0.1:{}\nctl:\n  insecure: false\n",
        cluster.nodes[node].api_port
    );
    std::fs::write(&file, yaml).expect("write the ctl file");
    file
}

/// An hour from now, as ISO 8601 in UTC.
fn in_an_hour() -> String {
    let output =
        Command::new("date").args(["-u", "-d", "+1 hour", "+%Y-%m-%dT%H:%M:%SZ"]).output().expect("date");
    String::from_utf8(output.stdout).expect("utf-8").trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ctl_only_file_lists_queries_and_checks_the_cluster_name() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let replica = (primary + 1) % 3;
    let file = ctl_only_file(&cluster, replica);
    let path = file.to_str().expect("path");

    // PATRONICTL_CONFIG_FILE, the cluster's name, and a timestamp line before the table.
    let run = vigil_cli::run(&[("PATRONICTL_CONFIG_FILE", path)], &["list", "it", "-t"]).await;
    assert!(run.success, "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let stamp = lines[0].as_bytes();
    let shape = stamp.len() == 19
        && stamp.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b' ',
            13 | 16 => *b == b':',
            _ => b.is_ascii_digit(),
        });
    assert!(shape, "not a timestamp line: {run}");
    assert!(lines[1].starts_with("+ Cluster: it "), "{run}");
    assert_eq!(run.stdout.matches(" node").count(), 3, "{run}");

    // Another cluster's name is refused, naming both.
    let wrong = vigil_cli::run(&[("VIGIL_CTL_CONFIG_FILE", path)], &["list", "batman"]).await;
    assert!(!wrong.success, "{wrong}");
    assert!(wrong.stderr.contains("belongs to cluster \"it\", not \"batman\""), "{wrong}");
    let no_file = vigil_cli::run(&[], &["-c", "/nonexistent/patronictl.yaml", "list"]).await;
    assert!(!no_file.success && no_file.stderr.contains("/nonexistent/patronictl.yaml"), "{no_file}");

    // Every member's versions, from its own REST API.
    let run = vigil_ok(&file, &["version", "it"]).await;
    assert!(run.stdout.starts_with("vigil version "), "{run}");
    for node in &cluster.nodes {
        let line = format!("{}: Vigil {} PostgreSQL 15.", node.name, env!("CARGO_PKG_VERSION"));
        assert!(run.stdout.contains(&line), "{line:?} missing:\n{run}");
    }

    // SQL on the leader (the default), a replica, and a member by name, in several formats.
    let sql = "select pg_is_in_recovery() as recovery, current_setting('port') as port";
    let leader = vigil_ok(&file, &["query", "it", "-c", sql, "-U", "postgres"]).await;
    let port = cluster.nodes[primary].pg_port;
    assert_eq!(leader.stdout, format!("recovery\tport\nf\t{port}\n"), "{leader}");
    let on_replica = vigil_ok(&file, &["query", "-r", "replica", "-c", sql, "--format", "json"]).await;
    let rows: Vec<Value> = serde_json::from_str(&on_replica.stdout).expect("json rows");
    assert_eq!(rows.len(), 1, "{on_replica}");
    assert_eq!(rows[0]["recovery"], "t", "{on_replica}");
    let named = &cluster.nodes[replica].name;
    let run = vigil_ok(&file, &["query", "-m", named, "-c", "select current_setting('port') as p"]).await;
    assert_eq!(run.stdout, format!("p\n{}\n", cluster.nodes[replica].pg_port), "{run}");
    let bad = vigil_cli::run(&[("PGPASSWORD", PASSWORD)], &["-c", path, "query", "-c", "selec 1"]).await;
    assert!(!bad.success && bad.stderr.contains("SQLSTATE: 42601"), "{bad}");
    let no_password = vigil_cli::run(&[], &["-c", path, "query", "-c", "select 1"]).await;
    assert!(
        !no_password.success && no_password.stderr.starts_with("vigil: cannot connect to 127.0.0.1:"),
        "{no_password}"
    );

    // Watching: the query runs again every 0.2 s until stopped.
    let (vigil, file_arg) = (vigil_binary(), path.to_string());
    let rounds = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut child = Command::new(vigil)
            .args(["-c", &file_arg, "query", "-c", "select 1 as one", "-w", "0.2"])
            .env("PGPASSWORD", PASSWORD)
            .env_remove("VIGIL_API")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("vigil query -w");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Vec<String> =
            std::io::BufReader::new(stdout).lines().map_while(Result::ok).take(6).collect();
        child.kill().expect("stop the watching query");
        child.wait().expect("reap it");
        lines
    })
    .await
    .expect("watching query");
    assert_eq!(rounds, ["one", "1", "one", "1", "one", "1"]);

    // edit-config -q: no diff, only the outcome.
    let quiet =
        vigil_ok(&file, &["edit-config", "it", "-q", "-s", "maximum_lag_on_failover=2097152", "--force"])
            .await;
    assert_eq!(quiet.stdout, "Configuration changed\n", "{quiet}");
    let none = vigil_ok(&file, &["flush", "it", "switchover"]).await;
    assert_eq!(none.stdout, "No pending scheduled switchover\n", "{none}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reload_reinit_and_flush_act_on_several_members() {
    init_tracing();
    let cluster = AgentCluster::start(3, |_| String::new());
    let primary = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let file = ctl_only_file(&cluster, primary);
    let path = file.to_str().expect("path");
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();

    // The whole cluster, without --force and nothing on stdin: asked, and refused.
    let refused = vigil_cli::run(&[], &["-c", path, "restart", "it"]).await;
    assert!(!refused.success, "{refused}");
    assert!(refused.stdout.contains("Are you sure you want to restart node1, node2, node3?"), "{refused}");

    // Scheduled restarts on every member, then flushed on every member.
    let at = in_an_hour();
    let run = vigil_ok(&file, &["restart", "it", "--scheduled", &at, "--force"]).await;
    assert_eq!(run.stdout.matches("Success: ").count(), 3, "{run}");
    let run = vigil_ok(&file, &["flush", "it", "restart", "--force"]).await;
    assert_eq!(run.stdout.matches("was cancelled").count(), 3, "{run}");
    // One replica picked at random, then nothing left to flush on two of them.
    let run =
        vigil_ok(&file, &["restart", "it", "-r", "replica", "--any", "--scheduled", &at, "--force"]).await;
    assert_eq!(run.stdout.matches("Success: ").count(), 1, "{run}");
    let run = vigil_ok(&file, &["flush", "it", "restart", "--force"]).await;
    assert_eq!(run.stdout.matches("was cancelled").count(), 1, "{run}");
    assert_eq!(run.stdout.matches("No scheduled restart for member").count(), 2, "{run}");

    // Both replicas restarted now, named after the cluster's name.
    let pids =
        |cluster: &AgentCluster| replicas.iter().map(|i| cluster.postmaster_pid(*i)).collect::<Vec<_>>();
    let before = pids(&cluster);
    assert!(before.iter().all(Option::is_some), "{before:?}");
    let names: Vec<&str> = replicas.iter().map(|i| cluster.nodes[*i].name.as_str()).collect();
    let mut line = vec!["restart", "it"];
    line.extend_from_slice(&names);
    line.push("--force");
    let run = vigil_ok(&file, &line).await;
    assert_eq!(run.stdout.matches("Success: ").count(), 2, "{run}");
    wait_for("both replicas to run a new postmaster", PATIENCE, || async {
        let after = pids(&cluster);
        before.iter().zip(&after).all(|(old, new)| new.is_some() && old != new).then_some(())
    })
    .await;

    // Reload of the whole cluster.
    let run = vigil_ok(&file, &["reload", "it", "--force"]).await;
    assert_eq!(run.stdout.matches("Success: ").count(), 3, "{run}");

    // Reinitialize one replica and wait for it.
    let target = replicas[0];
    let name = cluster.nodes[target].name.clone();
    let run = vigil_ok(&file, &["reinit", "it", &name, "--force", "--wait"]).await;
    assert!(run.stdout.contains(&format!("Reinitialize is completed on: {name}")), "{run}");
    cluster.streaming_replica(target, PATIENCE).await;
    let leader = &cluster.nodes[primary].name;
    let refused = vigil_cli::run(&[], &["-c", path, "reinit", "it", leader, "--force"]).await;
    assert!(
        !refused.success && refused.stderr.contains(&format!("none of {leader} has role replica")),
        "{refused}"
    );
}

/// `yaml` with the REST API on HTTPS: `restapi` gets the node's certificate, key and CA (its Raft
/// ones), so that the agents' calls to their peers check them too.
fn with_https_api(yaml: &str) -> String {
    let raft = &yaml[yaml.find("\nraft:\n").expect("raft section")..];
    let tls: String = raft
        .lines()
        .filter(|l| ["  certfile: ", "  keyfile: ", "  cafile: "].iter().any(|k| l.starts_with(k)))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(tls.lines().count(), 3, "{yaml}");
    yaml.replacen("\n  insecure: true\n", &format!("\n  insecure: true\n{tls}"), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_agents_are_reached_with_cacert_or_insecure() {
    init_tracing();
    let cluster = AgentCluster::start_edited(3, "", Box::new(|yaml: &str| with_https_api(yaml)));
    let file = ctl_only_file(&cluster, 0);
    let path = file.to_str().expect("path");
    let ca = cluster.dir().join("tls/ca.pem");
    let ca = ca.to_str().expect("path");

    // --cacert before the subcommand: the file's plain address is then asked over HTTPS.
    let listed = wait_for("a leader and two streaming replicas over HTTPS", PATIENCE, || async {
        let run = vigil_cli::run(&[], &["-c", path, "--cacert", ca, "list", "it"]).await;
        let streaming = run.stdout.matches("| Replica | streaming |").count() == 2;
        (run.success && streaming && run.stdout.contains("| Leader ")).then_some(run)
    })
    .await;
    assert!(listed.stdout.starts_with("+ Cluster: it "), "{listed}");
    let insecure = vigil_cli::run(&[], &["-k", "-c", path, "list", "-f", "json"]).await;
    assert!(insecure.success, "{insecure}");
    assert_eq!(serde_json::from_str::<Vec<Value>>(&insecure.stdout).expect("json").len(), 3, "{insecure}");

    // Without the CA the certificate is not trusted; plain HTTP gets no answer from an HTTPS agent.
    let api = format!("https://127.0.0.1:{}", cluster.nodes[0].api_port);
    let untrusted = vigil_cli::run(&[], &["list", "--api", &api]).await;
    assert!(!untrusted.success && untrusted.stderr.contains("no agent answered"), "{untrusted}");
    let plain = vigil_cli::run(&[], &["-c", path, "list"]).await;
    assert!(!plain.success, "{plain}");
}
