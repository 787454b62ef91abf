//! `vigil history`: the promotions of `GET /history` as a table (TL | LSN | Reason | New Leader | Token,
//! plus Timestamp when the agents record one). Pure functions.

use super::args::Format;
use super::table::Table;
use serde_json::{json, Value};

/// The printed history (`history` is the body of `GET /history`: an array of objects with `timeline`,
/// `lsn`, `reason`, `new_primary`, `fencing_token`, maybe `timestamp`).
pub fn render(history: &Value, format: Format) -> String {
    history_table(history).render(format)
}

/// The history as a table, in the order the agents keep it (oldest first).
pub fn history_table(history: &Value) -> Table {
    let entries: &[Value] = history.as_array().map_or(&[], Vec::as_slice);
    let timestamps = entries.iter().any(|e| e.get("timestamp").is_some_and(|t| !t.is_null()));
    let mut columns = vec!["TL", "LSN", "Reason"];
    if timestamps {
        columns.push("Timestamp");
    }
    columns.extend(["New Leader", "Token"]);
    let mut table = Table::new(&columns, &["TL", "LSN", "Token"]);
    for entry in entries {
        let field = |key: &str| entry.get(key).filter(|v| !v.is_null()).cloned().unwrap_or(json!(""));
        let mut row = vec![field("timeline"), field("lsn"), field("reason")];
        if timestamps {
            row.push(field("timestamp"));
        }
        row.extend([field("new_primary"), field("fencing_token")]);
        table.rows.push(row);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Value {
        json!([
            {"timeline": 1, "lsn": "0/3000060", "reason": "switchover", "new_primary": "node2", "fencing_token": 4},
            {"timeline": 2, "lsn": "0/40000A0", "reason": "node2 lost the lease", "new_primary": "node3",
             "fencing_token": 9}
        ])
    }

    #[test]
    fn pretty_history() {
        let expected = "\
+----+-----------+----------------------+------------+-------+
| TL |       LSN | Reason               | New Leader | Token |
+----+-----------+----------------------+------------+-------+
|  1 | 0/3000060 | switchover           | node2      |     4 |
|  2 | 0/40000A0 | node2 lost the lease | node3      |     9 |
+----+-----------+----------------------+------------+-------+
";
        assert_eq!(render(&history(), Format::Pretty), expected);
    }

    #[test]
    fn machine_formats() {
        let json: Value = serde_json::from_str(&render(&history(), Format::Json)).expect("json");
        assert_eq!(
            json[0],
            json!({"TL": 1, "LSN": "0/3000060", "Reason": "switchover", "New Leader": "node2", "Token": 4})
        );
        assert_eq!(
            render(&history(), Format::Tsv).lines().nth(2),
            Some("2\t0/40000A0\tnode2 lost the lease\tnode3\t9")
        );
        let yaml: Value = serde_norway::from_str(&render(&history(), Format::Yaml)).expect("yaml");
        assert_eq!(yaml, json);
    }

    #[test]
    fn an_empty_history_and_timestamps() {
        assert_eq!(render(&json!([]), Format::Json), "[]\n");
        let t = history_table(&json!([{"timeline": 1, "timestamp": "2026-01-01T00:00:00Z"}]));
        assert_eq!(t.columns, ["TL", "LSN", "Reason", "Timestamp", "New Leader", "Token"]);
    }
}
