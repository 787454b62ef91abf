//! Durations in the configuration: a number of seconds (`3`, `0.75`, as Patroni writes them) or a string
//! with a unit (`"750ms"`, `"3s"`, `"2m"`). Written back as a number of seconds, so Patroni tools read them.
//!
//! Use with `#[serde(with = "duration")]`, or `duration::option` for an `Option<Duration>`.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use std::fmt;
use std::time::Duration;

const EXPECTED: &str = "seconds (3, 0.75) or a number with a unit (750ms, 3s, 2m, 1h)";

/// Parses `"750ms"`, `"3s"`, `"1.5s"`, `"2m"`, `"1h"` or a bare number of seconds (`"3"`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: use {EXPECTED}");
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    from_secs(value * scale).ok_or_else(bad)
}

/// Seconds to a duration, rounded to the nanosecond; `None` when negative or not finite.
fn from_secs(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 || secs > u64::MAX as f64 / 1e9 {
        return None;
    }
    Some(Duration::from_nanos((secs * 1e9).round() as u64))
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("{v} is not a duration: it must not be negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        from_secs(v).ok_or_else(|| E::custom(format!("{v} is not a duration: use {EXPECTED}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

/// Deserializes a duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// Serializes a duration as seconds: an integer when whole, else a fraction.
pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    if value.subsec_nanos() == 0 {
        s.serialize_u64(value.as_secs())
    } else {
        s.serialize_f64(value.as_secs_f64())
    }
}

/// The same for `Option<Duration>` (absent or null is `None`).
pub mod option {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapped(#[serde(with = "super")] Duration);

    /// Deserializes an optional duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }

    /// Serializes an optional duration (`None` as null).
    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        assert_eq!(parse("750ms"), Ok(Duration::from_millis(750)));
        assert_eq!(parse("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse(" 0.1 s"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["", "s", "3 parsecs", "-1s", "1e3", "3.3.3s", "ms3"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn reads_yaml_numbers_and_writes_seconds() {
        #[derive(serde::Serialize, Deserialize, PartialEq, Debug)]
        struct T {
            #[serde(with = "super")]
            d: Duration,
        }
        let t: T = serde_norway::from_str("d: 0.75").unwrap();
        assert_eq!(t.d, Duration::from_millis(750));
        let t: T = serde_norway::from_str("d: 3").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"d":3}"#);
        let t = T { d: Duration::from_millis(750) };
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"d":0.75}"#);
        assert!(serde_norway::from_str::<T>("d: -2").is_err());
    }
}
