//! `synchronous_standby_names`: written from a [`SyncRule`], and read back into one.

use crate::db::SyncRule;

/// The setting's value for `rule`: `''`, `*`, `FIRST n ("a", "b")` or `ANY n ("a", "b")`.
pub(crate) fn render(rule: &SyncRule) -> String {
    let list = |names: &[String]| {
        names.iter().map(|n| format!("\"{}\"", n.replace('"', "\"\""))).collect::<Vec<_>>().join(", ")
    };
    match rule {
        SyncRule::Off => String::new(),
        SyncRule::AnyReplica => "*".to_owned(),
        SyncRule::First { count, names } => format!("FIRST {count} ({})", list(names)),
        SyncRule::Any { count, names } => format!("ANY {count} ({})", list(names)),
    }
}

/// The rule a value written by [`render`] stands for; `None` for anything else (set by hand, say).
pub(crate) fn parse(value: &str) -> Option<SyncRule> {
    let value = value.trim();
    match value {
        "" => return Some(SyncRule::Off),
        "*" => return Some(SyncRule::AnyReplica),
        _ => {}
    }
    let (method, rest) = value.split_once(' ')?;
    let (count, rest) = rest.trim_start().split_once(' ')?;
    let count: u32 = count.parse().ok()?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let names = parse_names(inner)?;
    match method {
        "FIRST" => Some(SyncRule::First { count, names }),
        "ANY" => Some(SyncRule::Any { count, names }),
        _ => None,
    }
}

/// `"a", "b"` (double quotes doubled inside) into the names.
fn parse_names(list: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut chars = list.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next()? != '"' {
            return None;
        }
        let mut name = String::new();
        loop {
            match chars.next()? {
                '"' if chars.next_if_eq(&'"').is_some() => name.push('"'),
                '"' => break,
                c => name.push(c),
            }
        }
        names.push(name);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.next() {
            None => return Some(names),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_rule_reads_back_as_written() {
        let rules = [
            SyncRule::Off,
            SyncRule::AnyReplica,
            SyncRule::First { count: 1, names: names(&["node2"]) },
            SyncRule::First { count: 2, names: names(&["node-2", "node.3"]) },
            SyncRule::Any { count: 1, names: names(&["a", "we\"ird"]) },
        ];
        for rule in rules {
            assert_eq!(parse(&render(&rule)), Some(rule.clone()), "{}", render(&rule));
        }
        assert_eq!(render(&SyncRule::First { count: 1, names: names(&["a", "b"]) }), r#"FIRST 1 ("a", "b")"#);
    }

    #[test]
    fn values_not_written_by_vigil_are_not_understood() {
        for value in ["node2", "2 (a, b)", "FIRST x (\"a\")", "FIRST 1 (\"a\"", "SOME 1 (\"a\")", "ANY 1 (a)"]
        {
            assert_eq!(parse(value), None, "{value}");
        }
    }
}
