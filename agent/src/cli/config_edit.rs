//! `vigil show-config` and `vigil edit-config`: the dynamic configuration as YAML, `-s key=value` and
//! `-p name=value` as a JSON merge patch (RFC 7386, what `PATCH /config` takes). Pure functions; the
//! editor and the calls are in [`super::run`].

use serde_json::{Map, Value};

/// The configuration as YAML for people (keys sorted, block style).
pub fn to_yaml(config: &Value) -> String {
    match config {
        Value::Object(map) if map.is_empty() => "{}\n".to_string(),
        _ => serde_norway::to_string(config).unwrap_or_default(),
    }
}

/// YAML text (an edited configuration, a file given to `--apply`) as JSON; empty text is `{}`.
pub fn from_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_norway::from_str(text).map_err(|e| format!("the YAML is not valid: {e}"))?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err("the configuration must be a YAML mapping (key: value lines)".to_string()),
    }
}

/// The merge patch for `-s key=value` (`set`) and `-p name=value` (`pg`, meaning
/// `postgresql.parameters.name`) pairs, in order. Keys are dotted paths; below `postgresql.parameters`
/// the rest of the key is one parameter name (PostgreSQL's may contain dots). Values are YAML: `5` is a
/// number, `false` a boolean, `null` or nothing removes the key, anything else is a string.
pub fn patch_from_pairs(set: &[String], pg: &[String]) -> Result<Value, String> {
    let mut patch = Value::Object(Map::new());
    let pairs = set.iter().map(|p| ("-s", p, false)).chain(pg.iter().map(|p| ("-p", p, true)));
    for (flag, pair, parameter) in pairs {
        let bad = || format!("{flag} {pair:?}: expected KEY=VALUE");
        let (key, value) = pair.split_once('=').ok_or_else(bad)?;
        let key = key.trim();
        let mut path: Vec<String> = if parameter {
            vec!["postgresql".into(), "parameters".into(), key.to_string()]
        } else {
            key.split('.').map(str::to_string).collect()
        };
        if path.len() > 3 && path[0] == "postgresql" && path[1] == "parameters" {
            let name = path.split_off(2).join(".");
            path.push(name);
        }
        if path.iter().any(String::is_empty) {
            return Err(bad());
        }
        let value = parse_value(value).map_err(|e| format!("{flag} {pair:?}: {e}"))?;
        set_path(&mut patch, &path, value);
    }
    Ok(patch)
}

/// A value written on the command line, read as YAML (empty text is null).
pub fn parse_value(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_norway::from_str(text).map_err(|e| format!("the value is not valid YAML: {e}"))
}

/// Sets `path` in `target` to `value`, making the objects on the way (replacing what is not one).
fn set_path(target: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = target;
    for key in parents {
        let Value::Object(map) = node else { return };
        let child = map.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child;
    }
    if let Value::Object(map) = node {
        map.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pairs(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pairs_become_a_merge_patch_with_yaml_values() {
        let set = pairs(&[
            "ttl=5",
            "postgresql.use_pg_rewind=false",
            "loop_wait=",
            "synchronous_mode=on",
            "x=null",
        ]);
        let pg = pairs(&["max_connections=200", "work_mem=4MB"]);
        assert_eq!(
            patch_from_pairs(&set, &pg).expect("patch"),
            json!({
                "ttl": 5, "loop_wait": null, "synchronous_mode": "on", "x": null,
                "postgresql": {"use_pg_rewind": false, "parameters": {"max_connections": 200, "work_mem": "4MB"}}
            })
        );
    }

    #[test]
    fn parameter_names_keep_their_dots() {
        let patch = patch_from_pairs(
            &pairs(&["postgresql.parameters.auto_explain.log_min_duration=1s"]),
            &pairs(&["pg_stat_statements.max=1000"]),
        )
        .expect("patch");
        assert_eq!(
            patch,
            json!({"postgresql": {"parameters": {"auto_explain.log_min_duration": "1s", "pg_stat_statements.max": 1000}}})
        );
    }

    #[test]
    fn later_pairs_win() {
        let patch = patch_from_pairs(&pairs(&["a=1", "a.b=2"]), &[]).expect("patch");
        assert_eq!(patch, json!({"a": {"b": 2}}));
    }

    #[test]
    fn malformed_pairs_are_refused_with_the_pair() {
        let err = patch_from_pairs(&pairs(&["ttl"]), &[]).expect_err("no =");
        assert_eq!(err, "-s \"ttl\": expected KEY=VALUE");
        assert!(patch_from_pairs(&pairs(&["a..b=1"]), &[]).is_err());
        assert!(patch_from_pairs(&pairs(&["x=[1"]), &[]).expect_err("yaml").contains("not valid YAML"));
    }

    #[test]
    fn merge_patch_applies_like_the_agent() {
        use vigil_api::merge_patch;
        let mut config = json!({"ttl": 3, "postgresql": {"use_pg_rewind": true, "parameters": {"a": 1}}});
        merge_patch(&mut config, &json!({"ttl": 5, "postgresql": {"parameters": {"a": null, "b": "x"}}}));
        assert_eq!(
            config,
            json!({"ttl": 5, "postgresql": {"use_pg_rewind": true, "parameters": {"b": "x"}}})
        );
    }

    #[test]
    fn yaml_round_trip() {
        let config = json!({"ttl": 3, "postgresql": {"parameters": {"fsync": "off"}, "use_pg_rewind": true}});
        let text = to_yaml(&config);
        assert_eq!(text, "postgresql:\n  parameters:\n    fsync: off\n  use_pg_rewind: true\nttl: 3\n");
        assert_eq!(from_yaml(&text).expect("yaml"), config);
        assert_eq!(from_yaml("").expect("empty"), json!({}));
        assert!(from_yaml("- a\n").is_err());
        assert_eq!(to_yaml(&json!({})), "{}\n");
    }
}
