//! Tables as patronictl prints them (its `print_output`): a boxed table (prettytable's look, with the
//! title written into the top rule), tab-separated values, or records in JSON or YAML. Pure functions.

use serde_json::Value;

/// Columns and rows of JSON cells; `right` names the right-aligned columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The column names.
    pub columns: Vec<String>,
    /// The rows, one cell per column.
    pub rows: Vec<Vec<Value>>,
    /// The columns aligned to the right (the others are aligned to the left).
    pub right: Vec<String>,
}

impl Table {
    /// A table with `columns` and no rows.
    pub fn new(columns: &[&str], right: &[&str]) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
            right: right.iter().map(|c| c.to_string()).collect(),
        }
    }

    /// The table without its first column (patronictl drops `Cluster` from the boxed table).
    pub fn without_first_column(&self) -> Table {
        Table {
            columns: self.columns.iter().skip(1).cloned().collect(),
            rows: self.rows.iter().map(|r| r.iter().skip(1).cloned().collect()).collect(),
            right: self.right.clone(),
        }
    }

    /// The table without the column named `name` (the same table when it has none).
    pub fn without(&self, name: &str) -> Table {
        let mut table = self.clone();
        if let Some(i) = table.columns.iter().position(|c| c == name) {
            table.columns.remove(i);
            for row in table.rows.iter_mut().filter(|row| i < row.len()) {
                row.remove(i);
            }
        }
        table
    }

    /// The boxed table; `title` (e.g. ` Cluster: main (token 7) `) is written into the top rule, which
    /// is widened when needed so that the title fits.
    pub fn pretty(&self, title: Option<&str>) -> String {
        let cells: Vec<Vec<Vec<String>>> =
            self.rows.iter().map(|row| row.iter().map(|c| lines(&text(c, false))).collect()).collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| width(c)).collect();
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = cell.iter().map(|line| width(line)).fold(*w, usize::max);
            }
        }
        let rule = |widths: &[usize]| {
            let parts: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
            format!("+{}+", parts.join("+"))
        };
        if let (Some(title), Some(last)) = (title, widths.len().checked_sub(1)) {
            let short = (width(title) + 2).saturating_sub(width(&rule(&widths)));
            widths[last] += short;
        }
        let hline = rule(&widths);
        let top = match title {
            Some(title) => {
                let rest: String = hline.chars().skip(1 + width(title)).collect();
                format!("+{title}{rest}")
            }
            None => hline.clone(),
        };
        let right: Vec<bool> = self.columns.iter().map(|c| self.right.contains(c)).collect();
        let line = |values: &[&str]| {
            let parts: Vec<String> = values
                .iter()
                .zip(&widths)
                .zip(&right)
                .map(|((v, w), r)| if *r { format!("{v:>w$}") } else { format!("{v:<w$}") })
                .collect();
            format!("| {} |", parts.join(" | "))
        };
        let header: Vec<&str> = self.columns.iter().map(String::as_str).collect();
        let multiline = cells.iter().flatten().any(|cell| cell.len() > 1);
        let mut out = vec![top, line(&header), hline.clone()];
        for (i, row) in cells.iter().enumerate() {
            if multiline && i > 0 {
                out.push(hline.clone());
            }
            let height = row.iter().map(Vec::len).max().unwrap_or(1).max(1);
            for k in 0..height {
                let values: Vec<&str> =
                    row.iter().map(|cell| cell.get(k).map_or("", String::as_str)).collect();
                out.push(line(&values));
            }
        }
        out.push(hline);
        out.join("\n") + "\n"
    }

    /// The table in `format`, every cell kept.
    pub fn render(&self, format: super::args::Format) -> String {
        use super::args::Format;
        match format {
            Format::Pretty => self.pretty(None),
            Format::Tsv => self.tsv(),
            Format::Json => self.json(false),
            Format::Yaml => self.yaml(false),
        }
    }

    /// Tab-separated values: the header line, then one line per row.
    pub fn tsv(&self) -> String {
        let mut out = self.columns.join("\t") + "\n";
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| text(c, true).replace(['\t', '\n'], " ")).collect();
            out += &(cells.join("\t") + "\n");
        }
        out
    }

    /// The rows as a JSON array of objects keyed by column, in column order; with `skip_empty`, empty
    /// cells are left out (as patronictl does for member lists).
    pub fn json(&self, skip_empty: bool) -> String {
        let records: Vec<String> = self
            .records(skip_empty)
            .iter()
            .map(|fields| {
                let parts: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{}: {}", Value::from(k.as_str()), v)).collect();
                format!("{{{}}}", parts.join(", "))
            })
            .collect();
        format!("[{}]\n", records.join(", "))
    }

    /// The rows as a YAML list of mappings (keys sorted, as PyYAML's `safe_dump` writes them).
    pub fn yaml(&self, skip_empty: bool) -> String {
        let records: Vec<Value> = self
            .records(skip_empty)
            .into_iter()
            .map(|fields| Value::Object(fields.into_iter().collect()))
            .collect();
        if records.is_empty() {
            return "[]\n".to_string();
        }
        serde_norway::to_string(&records).unwrap_or_default()
    }

    fn records(&self, skip_empty: bool) -> Vec<Vec<(String, Value)>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !skip_empty || !is_empty(v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .collect()
    }
}

/// Whether a cell prints as nothing.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// A cell's text: strings as they are, numbers and booleans as JSON writes them, mappings as YAML
/// (one line, `{k: v}`, when `flow`).
pub fn text(value: &Value, flow: bool) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        Value::Object(m) if m.is_empty() => String::new(),
        _ if flow => flow_yaml(value),
        _ => serde_norway::to_string(value).unwrap_or_default().trim_end().to_string(),
    }
}

/// One-line YAML (`{a: 1, b: [x, y]}`).
fn flow_yaml(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {}", flow_yaml(v))).collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow_yaml).collect::<Vec<_>>().join(", ")),
        Value::Null => "null".to_string(),
        other => text(other, true),
    }
}

/// The number of characters (what a terminal shows for the text these tables hold).
fn width(s: &str) -> usize {
    s.chars().count()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Table {
        let mut t = Table::new(&["Name", "N"], &["N"]);
        t.rows.push(vec![json!("alpha"), json!(7)]);
        t.rows.push(vec![json!("b"), json!("")]);
        t
    }

    #[test]
    fn pretty_tables_look_like_prettytable() {
        let expected = "\
+-------+---+
| Name  | N |
+-------+---+
| alpha | 7 |
| b     |   |
+-------+---+
";
        assert_eq!(sample().pretty(None), expected);
    }

    #[test]
    fn the_title_is_written_into_the_top_rule_and_widens_the_table_when_needed() {
        let short = sample().pretty(Some(" T "));
        assert!(short.starts_with("+ T ----+---+\n"), "{short}");
        let long = sample().pretty(Some(" Cluster: main (token 12) "));
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines[0], "+ Cluster: main (token 12) +");
        assert_eq!(lines[1], "| Name  |                N |");
        assert!(lines.iter().all(|l| l.chars().count() == lines[0].chars().count()), "{long}");
    }

    #[test]
    fn multi_line_cells_get_a_rule_between_rows() {
        let mut t = Table::new(&["A", "Tags"], &[]);
        t.rows.push(vec![json!("x"), json!({"a": 1, "b": true})]);
        t.rows.push(vec![json!("y"), json!({})]);
        let expected = "\
+---+---------+
| A | Tags    |
+---+---------+
| x | a: 1    |
|   | b: true |
+---+---------+
| y |         |
+---+---------+
";
        assert_eq!(t.pretty(None), expected);
    }

    #[test]
    fn tsv_json_and_yaml() {
        assert_eq!(sample().tsv(), "Name\tN\nalpha\t7\nb\t\n");
        assert_eq!(sample().json(true), "[{\"Name\": \"alpha\", \"N\": 7}, {\"Name\": \"b\"}]\n");
        assert_eq!(
            sample().json(false),
            "[{\"Name\": \"alpha\", \"N\": 7}, {\"Name\": \"b\", \"N\": \"\"}]\n"
        );
        assert_eq!(sample().yaml(true), "- N: 7\n  Name: alpha\n- Name: b\n");
        assert_eq!(Table::new(&["A"], &[]).yaml(true), "[]\n");
        assert_eq!(Table::new(&["A"], &[]).json(true), "[]\n");
    }

    #[test]
    fn mappings_print_as_yaml() {
        assert_eq!(text(&json!({"nofailover": true, "x": [1, 2]}), true), "{nofailover: true, x: [1, 2]}");
        assert_eq!(text(&json!({"nofailover": true}), false), "nofailover: true");
        assert_eq!(text(&json!(null), false), "");
    }
}
