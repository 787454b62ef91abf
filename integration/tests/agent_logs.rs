//! What the agents write to their logs (a file here, not a terminal): with `log.type: json`, one JSON
//! object per line for log collectors; plain text without colour codes otherwise; with Patroni's
//! `log.dir`, `log.format` and `log.file_size`, lines laid out as Python's logging does in `vigil.log`,
//! set aside when full.

use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::wait_for;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_are_one_object_per_line_and_plain_logs_to_a_file_have_no_colour() {
    let dir = tempfile::tempdir().unwrap();
    let patroni_log = format!(
        "log:\n  dir: {}\n  format: '%(asctime)s %(levelname)s [%(name)s]: %(message)s'\n  \
         dateformat: '%Y-%m-%d %H:%M:%S'\n  file_size: 1000\n  file_num: 2\n  loggers: {{vigil_agent::ha: DEBUG}}\n",
        dir.path().display()
    );
    let cluster = AgentCluster::start(3, |i| match i {
        0 => "log:\n  type: json\n".into(),
        2 => patroni_log.clone(),
        _ => String::new(),
    });
    cluster.settled(&[0, 1, 2], PATIENCE).await;

    let json = cluster.log(0);
    let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "node1 logged:\n{json}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object["level"].is_string() && object["timestamp"].is_string(), "{line}");
        assert!(object["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"message\":\"agent started\"") && l.contains("\"member\":\"node1\"")),
        "the start is logged with its fields:\n{json}"
    );

    let plain = cluster.log(1);
    assert!(plain.contains("agent started"), "{plain}");
    assert!(!plain.contains('\u{1b}'), "no colour codes in a file:\n{plain}");

    // node3 writes to log.dir, in Patroni's layout, and sets vigil.log aside at 1000 bytes, keeping 2.
    let file = dir.path().join("vigil.log");
    let first = std::fs::read_to_string(&file).expect("vigil.log in log.dir");
    let line = first.lines().next().expect("a line");
    let (date, rest) = line.split_at(19);
    assert!(date.as_bytes()[4] == b'-' && date.as_bytes()[10] == b' ', "strftime date first: {line}");
    let level = rest.trim_start().split(' ').next().unwrap();
    assert!(["DEBUG", "INFO", "WARNING", "ERROR"].contains(&level), "Python's level name: {line}");
    let target = rest.split_once(" [").and_then(|(_, t)| t.split_once("]: ")).map(|(t, _)| t);
    assert!(target.is_some_and(|t| t.contains("::")), "the target as %(name)s: {line}");
    assert!(!cluster.log(2).contains("agent started"), "nothing on standard error");
    wait_for("vigil.log set aside twice", PATIENCE, || async {
        dir.path().join("vigil.log.2").exists().then_some(())
    })
    .await;
    assert!(std::fs::metadata(&file).unwrap().len() <= 1000 + 2000, "a full file is set aside");
    assert!(!dir.path().join("vigil.log.3").exists(), "file_num: 2 older files at most");
    let debug = wait_for("a debug line of vigil_agent::ha", PATIENCE, || async {
        let files = ["vigil.log", "vigil.log.1", "vigil.log.2"].map(|f| dir.path().join(f));
        let all: String = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
        all.lines().find(|l| l.contains(" DEBUG [vigil_agent::ha")).map(str::to_string)
    })
    .await;
    assert!(
        debug.contains("routine") || debug.contains("no change") || debug.contains("published"),
        "{debug}"
    );
}
