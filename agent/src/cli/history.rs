//! `vigil history`: the lines of `GET /history` (Patroni's `[timeline, lsn, reason, timestamp,
//! new_leader]`) as a table, as `patronictl history` prints them. Pure functions.

use super::args::Format;
use super::table::Table;
use serde_json::{json, Value};

/// The columns, in the order of a history line's fields.
const COLUMNS: [&str; 5] = ["TL", "LSN", "Reason", "Timestamp", "New Leader"];

/// The printed history (`history` is the body of `GET /history`).
pub fn render(history: &Value, format: Format) -> String {
    history_table(history).render(format)
}

/// The history as a table, oldest first; a short line (an old Patroni one without timestamp or new
/// leader) has its missing fields empty.
pub fn history_table(history: &Value) -> Table {
    let lines: &[Value] = history.as_array().map_or(&[], Vec::as_slice);
    let mut table = Table::new(&COLUMNS, &["TL", "LSN"]);
    for line in lines {
        let fields: &[Value] = line.as_array().map_or(&[], Vec::as_slice);
        let field = |i: usize| fields.get(i).filter(|v| !v.is_null()).cloned().unwrap_or(json!(""));
        table.rows.push((0..COLUMNS.len()).map(field).collect());
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Value {
        json!([
            [1, 50331744, "switchover", "2026-01-01T10:00:00+00:00", "node2"],
            [2, 67108992, "failover", "2026-01-02T10:00:00+00:00", "node3"],
            [3, 83886208, "no recovery target specified"]
        ])
    }

    #[test]
    fn pretty_history() {
        let expected = "\
+----+----------+------------------------------+---------------------------+------------+
| TL |      LSN | Reason                       | Timestamp                 | New Leader |
+----+----------+------------------------------+---------------------------+------------+
|  1 | 50331744 | switchover                   | 2026-01-01T10:00:00+00:00 | node2      |
|  2 | 67108992 | failover                     | 2026-01-02T10:00:00+00:00 | node3      |
|  3 | 83886208 | no recovery target specified |                           |            |
+----+----------+------------------------------+---------------------------+------------+
";
        assert_eq!(render(&history(), Format::Pretty), expected);
    }

    #[test]
    fn machine_formats() {
        let json: Value = serde_json::from_str(&render(&history(), Format::Json)).expect("json");
        assert_eq!(
            json[0],
            json!({"TL": 1, "LSN": 50331744, "Reason": "switchover", "Timestamp": "2026-01-01T10:00:00+00:00",
                "New Leader": "node2"})
        );
        assert_eq!(
            render(&history(), Format::Tsv).lines().nth(2),
            Some("2\t67108992\tfailover\t2026-01-02T10:00:00+00:00\tnode3")
        );
        let yaml: Value = serde_norway::from_str(&render(&history(), Format::Yaml)).expect("yaml");
        assert_eq!(yaml, json);
        assert_eq!(render(&json!([]), Format::Json), "[]\n");
    }
}
