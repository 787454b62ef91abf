//! The health checks' query parameters, parsed as Patroni reads them, except that a malformed value is
//! an error (400) instead of being silently ignored.
//!
//! - `lag`: bytes, or a size with one of PostgreSQL's memory units `B`, `kB`, `MB`, `GB`, `TB` (case
//!   sensitive, powers of 1024; a fraction such as `1.5GB` is allowed, as in Patroni). Patroni also reads
//!   hexadecimal and octal (`0x400`, `010`); Vigil reads decimal only.
//! - `min_lsn` (Vigil's own): a WAL position as PostgreSQL prints it (`16/B374D848`) or as bytes.
//! - `replication_state`: the state `/replica` must be in (e.g. `streaming`).
//! - `mode` (`/readiness`): `apply` (the default: measure the replayed position) or `write` (received).
//! - `tag_<key>=<value>`: the member's tag `key` must equal `value`.
//!
//! As with Python's `parse_qs`, a parameter given twice counts once (the first), and an empty value
//! counts as absent. Parsing takes time linear in the query's length (the names seen are kept in a hash
//! set), and the query is under 64 KiB (the URI limit, see [`crate::server`]).

use axum::extract::Query;
use axum::http::Uri;
use std::collections::HashSet;

/// The parsed query of a health check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthQuery {
    /// `?lag=`: the most a replica may trail the primary, in bytes (`None`: no limit).
    pub lag: Option<u64>,
    /// `?min_lsn=`: the position a replica must have replayed.
    pub min_lsn: Option<u64>,
    /// `?replication_state=`: the replication state a replica must be in.
    pub replication_state: Option<String>,
    /// `?mode=write` (`/readiness`): measure lag by the received position instead of the replayed one.
    pub by_received: bool,
    /// `?tag_<key>=<value>` filters, in the order given.
    pub tags: Vec<(String, String)>,
}

/// A malformed query parameter: the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParameter(pub String);

impl HealthQuery {
    /// Parses the query of `uri`.
    pub fn from_uri(uri: &Uri) -> Result<Self, BadParameter> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| BadParameter(format!("unreadable query string: {e}")))?;
        let mut query = HealthQuery::default();
        let mut seen = HashSet::new();
        for (key, value) in &pairs {
            if value.is_empty() || !seen.insert(key.as_str()) {
                continue;
            }
            match key.as_str() {
                "lag" => query.lag = Some(parse_size(value).map_err(|e| bad("lag", value, e))?),
                "min_lsn" => query.min_lsn = Some(parse_lsn(value).map_err(|e| bad("min_lsn", value, e))?),
                "replication_state" => query.replication_state = Some(value.clone()),
                "mode" => {
                    query.by_received = match value.as_str() {
                        "apply" => false,
                        "write" => true,
                        _ => return Err(bad("mode", value, "expected apply or write")),
                    }
                }
                _ => {
                    if let Some(tag) = key.strip_prefix("tag_") {
                        query.tags.push((tag.to_owned(), value.clone()));
                    }
                }
            }
        }
        Ok(query)
    }

    /// Whether every `tag_` filter matches `tags`: a missing tag never matches, a non-string tag is
    /// compared as its lower-cased text (`true`, `1`).
    pub fn tags_match(&self, tags: &std::collections::BTreeMap<String, serde_json::Value>) -> bool {
        self.tags.iter().all(|(key, wanted)| match tags.get(key) {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::String(s)) => s == wanted,
            Some(other) => other.to_string().to_lowercase() == *wanted,
        })
    }
}

fn bad(name: &str, value: &str, why: &str) -> BadParameter {
    BadParameter(format!("invalid {name} {value:?}: {why}"))
}

/// Parses a size: bytes, or a number with a unit `B`, `kB`, `MB`, `GB`, `TB` (powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, &'static str> {
    const WHY: &str = "expected bytes or a size such as 16kB, 10MB, 1GB (units B, kB, MB, GB, TB)";
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+')).unwrap_or(text.len());
    let (number, unit) = (&text[..split], text[split..].trim_start());
    let number = number.strip_prefix('+').unwrap_or(number);
    let units = ["B", "kB", "MB", "GB", "TB"];
    let power = match unit {
        "" => 0,
        _ => units.iter().position(|u| *u == unit).ok_or(WHY)? as u32,
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole.checked_mul(1024u64.pow(power)).ok_or("too large");
    }
    let value: f64 = number.parse().map_err(|_| WHY)?;
    let power = power as i32;
    // Patroni rounds to a whole number of the next smaller unit (half to even, as Python's round).
    let step = 1024f64.powi((power - 1).max(0));
    let bytes = (value * 1024f64.powi(power) / step).round_ties_even() * step;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("too large");
    }
    Ok(bytes as u64)
}

/// Parses a WAL position: `X/Y` in hexadecimal, as PostgreSQL prints it, or bytes in decimal.
pub fn parse_lsn(text: &str) -> Result<u64, &'static str> {
    const WHY: &str = "expected a WAL position such as 16/B374D848, or bytes";
    let text = text.trim();
    let Some((high, low)) = text.split_once('/') else {
        return text.parse().map_err(|_| WHY);
    };
    let half = |s: &str| match s.len() {
        1..=8 if s.bytes().all(|b| b.is_ascii_hexdigit()) => u32::from_str_radix(s, 16).map_err(|_| WHY),
        _ => Err(WHY),
    };
    Ok((u64::from(half(high)?) << 32) | u64::from(half(low)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_patroni_reads_them() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("16kB"), Ok(16 << 10));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size(" 1 GB "), Ok(1 << 30));
        assert_eq!(parse_size("2TB"), Ok(2 << 40));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("1.5GB"), Ok(3 << 29));
        assert_eq!(parse_size("4097.5kB"), Ok(4097 * 1024 + 512));
        assert_eq!(parse_size("2.5"), Ok(2));
        for bad in ["", "abc", "10mb", "10 XB", "-1", "1e3", ".", "1.2.3MB", "MB", "99999999999TB"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lsns_read_as_postgres_prints_them() {
        assert_eq!(parse_lsn("0/0"), Ok(0));
        assert_eq!(parse_lsn("16/B374D848"), Ok(0x16_B374_D848));
        assert_eq!(parse_lsn("ffffffff/FFFFFFFF"), Ok(u64::MAX));
        assert_eq!(parse_lsn("4096"), Ok(4096));
        for bad in ["", "1/", "/1", "G/0", "1/2/3", "100000000/0", "0x10", "-1"] {
            assert!(parse_lsn(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_query_keeps_the_first_value_and_ignores_empty_ones() {
        let uri: Uri = "/replica?lag=1kB&lag=oops&tag_zone=a&tag_rack=&min_lsn=0/10&mode=write&x=1"
            .parse()
            .expect("uri");
        let query = HealthQuery::from_uri(&uri).expect("valid");
        assert_eq!(query.lag, Some(1024));
        assert_eq!(query.min_lsn, Some(16));
        assert!(query.by_received);
        assert_eq!(query.tags, vec![("zone".to_owned(), "a".to_owned())]);
        let error = HealthQuery::from_uri(&"/replica?lag=lots".parse().expect("uri")).expect_err("bad lag");
        assert!(error.0.contains("lag"), "{}", error.0);
    }

    #[test]
    fn the_longest_query_a_uri_can_hold_keeps_the_first_of_each_parameter() {
        // About 6,000 parameters (a URI is under 64 KiB), each name given twice, then `lag`. The names
        // seen are a hash set, so the work is linear in the query's length.
        let names = 2_900;
        let first = (0..names).map(|i| format!("tag_{i}=a"));
        let second = (0..names).map(|i| format!("tag_{i}=b"));
        let query: Vec<String> = first.chain(second).chain(["lag=1kB".to_owned()]).collect();
        let uri: Uri = format!("/replica?{}", query.join("&")).parse().expect("a URI under 64 KiB");
        let parsed = HealthQuery::from_uri(&uri).expect("valid");
        assert_eq!(parsed.tags.len(), names);
        assert!(parsed.tags.iter().enumerate().all(|(i, (k, v))| *k == i.to_string() && v == "a"));
        assert_eq!(parsed.lag, Some(1024));
    }

    #[test]
    fn tags_match_as_text() {
        let tags = [("zone", "\"a\""), ("nosync", "true"), ("prio", "2")]
            .map(|(k, v)| (k.to_owned(), serde_json::from_str(v).expect("json")))
            .into_iter()
            .collect();
        let with = |pairs: &[(&str, &str)]| HealthQuery {
            tags: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        assert!(with(&[("zone", "a"), ("nosync", "true"), ("prio", "2")]).tags_match(&tags));
        assert!(!with(&[("zone", "b")]).tags_match(&tags));
        assert!(!with(&[("nosync", "True")]).tags_match(&tags));
        assert!(!with(&[("missing", "x")]).tags_match(&tags));
    }
}
