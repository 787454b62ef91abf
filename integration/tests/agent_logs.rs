//! What the agents write to their logs (a file here, not a terminal): with `log.type: json`, one JSON
//! object per line for log collectors; plain text without colour codes otherwise.

use std::time::Duration;
use vigil_integration::agents::AgentCluster;

const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn json_logs_are_one_object_per_line_and_plain_logs_to_a_file_have_no_colour() {
    let cluster =
        AgentCluster::start(3, |i| if i == 0 { "log:\n  type: json\n".into() } else { String::new() });
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
}
