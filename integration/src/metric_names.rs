//! Metric names on both sides of a dashboard or an alert rule: those a scrape of an agent's `GET /metrics`
//! offers, and those PromQL expressions select. The one extraction the checks of the Grafana dashboard and
//! the Prometheus alert rules share (`integration/tests/dashboards.rs`).

use std::collections::BTreeSet;

/// Every series name a scrape of `text` (the Prometheus text format) offers to queries: each sample's
/// name, and each family named by `# HELP` or `# TYPE`, a histogram's with its `_bucket`, `_sum` and
/// `_count` series and a summary's with its `_sum` and `_count`, so that a family with no observation
/// yet (no sample, or none with a given label) still counts.
pub fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["#", "HELP", name, ..] => {
                names.insert(name.to_string());
            }
            ["#", "TYPE", name, kind, ..] => {
                let suffixes: &[&str] = match *kind {
                    "histogram" => &["", "_bucket", "_sum", "_count"],
                    "summary" => &["", "_sum", "_count"],
                    _ => &[""],
                };
                names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
            }
            [first, ..] if !first.starts_with('#') => {
                let end = first.find(['{', ' ']).unwrap_or(first.len());
                names.insert(first[..end].to_string());
            }
            _ => {}
        }
    }
    names
}

/// The names of the agent's metrics (`patroni_*`, `vigil_*`) that the PromQL expression `expr` selects.
/// Other names (`up`, which Prometheus itself records, functions, labels) are left out.
pub fn referenced(expr: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| is_name_char(c)) {
        let word_end = rest[start..].find(|c: char| !is_name_char(c)).map_or(rest.len(), |n| start + n);
        let word = &rest[start..word_end];
        if word.starts_with("patroni_") || word.starts_with("vigil_") {
            names.insert(word.to_string());
        }
        rest = &rest[word_end..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_without_samples_still_offers_its_series() {
        let text = "# HELP vigil_x_seconds X.\n# TYPE vigil_x_seconds histogram\n\
                    # HELP patroni_primary P.\n# TYPE patroni_primary gauge\npatroni_primary{scope=\"a\"} 1\n\
                    vigil_y_total 3\n";
        let names: Vec<String> = exported(text).into_iter().collect();
        assert_eq!(
            names,
            [
                "patroni_primary",
                "vigil_x_seconds",
                "vigil_x_seconds_bucket",
                "vigil_x_seconds_count",
                "vigil_x_seconds_sum",
                "vigil_y_total"
            ]
        );
    }

    #[test]
    fn only_the_agents_metric_names_are_taken_from_an_expression() {
        let expr = "histogram_quantile(0.99, sum by (le, name) (rate(vigil_ha_cycle_duration_seconds_bucket\
                    {scope=~\"$scope\"}[5m]))) > 1 and on(name) patroni_replica == 1 or up == 0";
        let names: Vec<String> = referenced(expr).into_iter().collect();
        assert_eq!(names, ["patroni_replica", "vigil_ha_cycle_duration_seconds_bucket"]);
    }
}
