//! The conditions of `POST /restart` beyond `role` and `restart_pending`, read as Patroni reads them:
//! `postgres_version` (restart only a server older than it) and `timeout` (how long the restart may
//! take before it is reported failed).

use std::time::Duration;

/// Patroni's `postgres_version_to_int`: `X.Y` (X ≥ 10) or `X.Y.Z` as `server_version_num` counts it
/// (`15.2` → 150002, `9.6.3` → 90603, `10.1` → 100001). The error names the field and the value.
pub fn postgres_version_number(text: &str) -> Result<u32, String> {
    let parts: Result<Vec<u32>, _> = text.split('.').map(str::parse::<u32>).collect();
    let Ok(mut parts) = parts else {
        return Err(format!("postgres_version {text:?} is not a PostgreSQL version"));
    };
    match parts.as_slice() {
        [major, _] if *major >= 10 => parts.insert(1, 0),
        [_, _, _] => {}
        _ => return Err(format!("postgres_version {text:?}: X.Y or X.Y.Z is accepted (e.g. 15.2, 9.6.24)")),
    }
    let [major, minor, patch] = [parts[0], parts[1], parts[2]];
    if minor > 99 || patch > 99 {
        return Err(format!("postgres_version {text:?} is not a PostgreSQL version"));
    }
    major
        .checked_mul(10_000)
        .and_then(|n| n.checked_add(minor * 100 + patch))
        .ok_or_else(|| format!("postgres_version {text:?} is too large"))
}

/// Patroni's `timeout` (`parse_int(value, 's')`): a positive whole number of seconds, or a string with
/// a unit (`30`, `30s`, `5min`, `1h`, `1d`; `ms` rounds to seconds). The error names the field.
pub(crate) fn restart_timeout(value: &serde_json::Value) -> Result<Duration, String> {
    const WHY: &str = "timeout should be a positive number of seconds (or a string such as 30s, 5min, 1h)";
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(text) => seconds_with_unit(text.trim()),
        _ => None,
    };
    match seconds {
        Some(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("{WHY}, not {value}")),
    }
}

/// `restart_pending` as Patroni takes it: a JSON boolean, or the strings `true`/`false` in any case
/// (Patroni's own acceptance tests send `"True"`); anything else is an error naming the field.
pub(crate) fn flag_or_text<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(flag)) => Ok(Some(flag)),
        Some(serde_json::Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(serde_json::Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => {
            Err(serde::de::Error::custom(format!("restart_pending should be true or false, not {other}")))
        }
    }
}

/// `30`, `30s`, `100ms`, `5min`, `1h`, `1d` in whole seconds (milliseconds rounded half up, as
/// Patroni's conversion to a larger unit does).
fn seconds_with_unit(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..split].parse().ok()?;
    match text[split..].trim_start() {
        "ms" => Some(number.saturating_add(500) / 1000),
        "" | "s" => Some(number),
        "min" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_count_as_server_version_num() {
        assert_eq!(postgres_version_number("15.2"), Ok(150002));
        assert_eq!(postgres_version_number("9.6.3"), Ok(90603));
        assert_eq!(postgres_version_number("10.1"), Ok(100001));
        assert_eq!(postgres_version_number("16.0.4"), Ok(160004));
        for bad in ["10", "9.6", "a.b.c", "15.2.1.0", "", "15.200"] {
            let err = postgres_version_number(bad).unwrap_err();
            assert!(err.starts_with("postgres_version"), "{bad}: {err}");
        }
    }

    #[test]
    fn restart_pending_takes_a_boolean_or_its_text() {
        let read = |body: serde_json::Value| {
            serde_json::from_value::<crate::RestartRequest>(body).map(|r| r.restart_pending)
        };
        assert_eq!(read(json!({"restart_pending": true})).ok(), Some(Some(true)));
        assert_eq!(read(json!({"restart_pending": "True"})).ok(), Some(Some(true)));
        assert_eq!(read(json!({"restart_pending": "false"})).ok(), Some(Some(false)));
        assert_eq!(read(json!({})).ok(), Some(None));
        for bad in [json!("yes"), json!(1)] {
            let err = read(json!({"restart_pending": bad})).unwrap_err().to_string();
            assert!(err.contains("restart_pending should be true or false"), "{bad}: {err}");
        }
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(restart_timeout(&json!(30)), Ok(Duration::from_secs(30)));
        assert_eq!(restart_timeout(&json!("30")), Ok(Duration::from_secs(30)));
        assert_eq!(restart_timeout(&json!("5min")), Ok(Duration::from_secs(300)));
        assert_eq!(restart_timeout(&json!("1500ms")), Ok(Duration::from_secs(2)));
        for bad in [json!(0), json!(-5), json!(1.5), json!("soon"), json!("0s"), json!(true), json!(null)] {
            assert!(restart_timeout(&bad).unwrap_err().starts_with("timeout should"), "{bad}");
        }
    }
}
