//! The Grafana dashboard (`examples/grafana/vigil.json`) and the Prometheus alert rules
//! (`examples/prometheus/vigil-alerts.yml`): every metric their queries select is one a real agent
//! exports at `GET /metrics`, and `promtool` accepts the rules and the dashboard's queries.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::init_tracing;
use vigil_integration::metric_names::{exported, referenced};

const PATIENCE: Duration = Duration::from_secs(60);

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The dashboard's PromQL: every panel target's and annotation's `expr`, and the template variables'
/// queries.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value =
        serde_json::from_str(&read(&example("grafana/vigil.json"))).expect("dashboard JSON");
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    queries
}

fn collect_queries(value: &Value, queries: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(expr)) => queries.push(expr.clone()),
                    _ => collect_queries(value, queries),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| collect_queries(v, queries)),
        _ => {}
    }
}

/// The alert rules' expressions, by alert name.
fn alert_expressions() -> Vec<(String, String)> {
    let rules: Value =
        serde_norway::from_str(&read(&example("prometheus/vigil-alerts.yml"))).expect("rules YAML");
    let groups = rules["groups"].as_array().expect("groups");
    let rules = groups.iter().flat_map(|g| g["rules"].as_array().expect("rules").iter());
    rules
        .map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str()).expect("a named rule");
            (name.to_owned(), r["expr"].as_str().expect("expr").to_owned())
        })
        .collect()
}

/// A Grafana query as plain PromQL: its variables replaced by values of their kind.
fn as_promql(query: &str) -> String {
    query
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$scope", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_select_only_metrics_an_agent_exports() {
    init_tracing();
    let cluster = AgentCluster::start(1, |_| String::new());
    cluster.primary(PATIENCE).await;
    let url = format!("http://127.0.0.1:{}/metrics", cluster.nodes[0].api_port);
    let text = reqwest::get(&url).await.expect("GET /metrics").text().await.expect("metrics text");
    let offered: BTreeSet<String> = exported(&text).into_iter().collect();

    let mut queries: Vec<(String, String)> =
        dashboard_queries().into_iter().map(|q| ("grafana/vigil.json".to_owned(), q)).collect();
    let alerts = alert_expressions();
    queries.extend(alerts.iter().map(|(name, expr)| (format!("alert {name}"), expr.clone())));
    let mut selected = BTreeSet::new();
    let mut missing = Vec::new();
    for (origin, query) in &queries {
        for name in referenced(query) {
            if !offered.contains(&name) {
                missing.push(format!("{origin}: {name} in {query}"));
            }
            selected.insert(name);
        }
    }
    assert!(missing.is_empty(), "metrics no agent exports:\n{}", missing.join("\n"));
    for expected in ["patroni_primary", "vigil_lease_renewal_failures_total", "vigil_raft_applied_index"] {
        assert!(selected.contains(expected), "{expected} is not selected: the extraction missed it");
    }
    assert!(queries.len() > 30 && alerts.len() >= 6, "{} queries, {} alerts", queries.len(), alerts.len());
    eprintln!("{} queries select {} metrics, all exported", queries.len(), selected.len());
}

/// The dashboard is one Grafana imports: a uid and a title, unique panel ids, panels inside the 24-column
/// grid without overlapping, each query with its own `refId`; and it has the panels the README lists.
#[test]
fn the_dashboard_is_well_formed_and_has_the_promised_panels() {
    let dashboard: Value =
        serde_json::from_str(&read(&example("grafana/vigil.json"))).expect("dashboard JSON");
    assert!(dashboard["uid"].is_string() && dashboard["title"] == "Vigil", "uid and title");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(panel["id"].as_u64().expect("id")), "{title}: duplicate id");
        let at = |k: &str| panel["gridPos"][k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}"));
        assert!(at("x") + at("w") <= 24, "{title}: beyond the grid's 24 columns");
        for (x, y) in
            (at("x")..at("x") + at("w")).flat_map(|x| (at("y")..at("y") + at("h")).map(move |y| (x, y)))
        {
            assert!(cells.insert((x, y)), "{title} overlaps another panel at ({x}, {y})");
        }
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap_or_else(|| panic!("{title}: targets"));
        let refs: BTreeSet<&str> = targets.iter().map(|t| t["refId"].as_str().expect("refId")).collect();
        assert!(!targets.is_empty() && refs.len() == targets.len(), "{title}: one refId per query");
        assert!(targets.iter().all(|t| t["expr"].is_string()), "{title}: every target has an expr");
    }
    let titles: BTreeSet<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for promised in [
        "Primary present",
        "Role per member",
        "Lease renewal latency histogram",
        "HA cycle duration",
        "Replication lag",
        "Timeline",
        "Failovers by reason",
        "Failover phases (mean)",
        "Synchronous replication",
        "Raft commit and applied index",
    ] {
        assert!(titles.contains(promised), "no panel {promised:?}: {titles:?}");
    }
}

/// `promtool check rules` accepts the alert rules, and the dashboard's queries (as recording rules, their
/// Grafana variables replaced); `promtool test rules` runs the rules' unit tests
/// (`examples/prometheus/vigil-alerts.test.yml`: the alerts fire on series that should fire them, and only
/// then).
#[test]
fn promtool_accepts_the_alert_rules_and_the_dashboard_queries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let queries: Vec<Value> = dashboard_queries()
        .iter()
        .enumerate()
        .filter(|(_, q)| !q.starts_with("label_values("))
        .map(|(i, q)| serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": as_promql(q)}))
        .collect();
    let rules = serde_json::json!({"groups": [{"name": "dashboard", "rules": queries}]});
    let dashboard_rules = dir.path().join("dashboard-rules.yml");
    std::fs::write(&dashboard_rules, serde_norway::to_string(&rules).expect("YAML")).expect("write");
    promtool(&["check", "rules"], &example("prometheus/vigil-alerts.yml"));
    promtool(&["check", "rules"], &dashboard_rules);
    promtool(&["test", "rules"], &example("prometheus/vigil-alerts.test.yml"));
}

/// Runs `promtool ARGS FILE`, which must succeed.
fn promtool(args: &[&str], file: &Path) {
    let out = std::process::Command::new("promtool")
        .args(args)
        .arg(file)
        .output()
        .expect("promtool (scripts/test.sh installs it: ensure_promtool)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.contains("SUCCESS"), "promtool {args:?} {}: {said}", file.display());
}
