//! Checks parameter values as PostgreSQL would read them from postgresql.conf, against the server's own
//! definitions (`pg_settings`). A value PostgreSQL rejects is ignored by a reload but stops the next start,
//! so a bad one must never reach the file.

/// A parameter's definition, from `pg_settings`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Definition {
    /// `vartype`: `bool`, `integer`, `real`, `string` or `enum`.
    pub vartype: String,
    /// `unit`, e.g. `8kB`, `kB`, `MB`, `ms`, `s`, `min`.
    pub unit: Option<String>,
    /// `min_val`, `max_val` (numbers).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `enumvals` (the documented values; a few enums also take booleans).
    pub enumvals: Vec<String>,
}

/// Whether `value` is a valid setting of parameter `name` (`None`: the server knows no such parameter);
/// `Err` says why not, naming both.
pub(crate) fn check(name: &str, value: &str, definition: Option<&Definition>) -> Result<(), String> {
    let invalid = |why: String| Err(format!("{name} = {value:?}: {why}"));
    let Some(d) = definition else {
        // A name with a dot is a custom (extension) parameter, which PostgreSQL accepts as a string.
        return match name.contains('.') {
            true => Ok(()),
            false => invalid("PostgreSQL has no such parameter".into()),
        };
    };
    let checked = match d.vartype.as_str() {
        "bool" => parse_bool(value).map(|_| ()).ok_or_else(|| "expected on or off".to_owned()),
        "integer" | "real" => number(value, d),
        "enum" => enumerated(value, d),
        _ => Ok(()),
    };
    checked.or_else(invalid)
}

/// PostgreSQL's booleans: on/off, true/false, yes/no, 1/0, or an unambiguous prefix of those words.
fn parse_bool(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    let prefix_of = |word: &str| !v.is_empty() && word.starts_with(&v);
    match v.as_str() {
        "on" | "1" => Some(true),
        "off" | "of" | "0" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

fn enumerated(value: &str, d: &Definition) -> Result<(), String> {
    let v = value.trim();
    let listed = d.enumvals.iter().any(|e| e.eq_ignore_ascii_case(v));
    // Enums with on and off take every boolean spelling too (huge_pages, synchronous_commit, …).
    let boolean = d.enumvals.iter().any(|e| e == "on") && parse_bool(v).is_some();
    match listed || boolean {
        true => Ok(()),
        false => Err(format!("expected one of {}", d.enumvals.join(", "))),
    }
}

/// A number with an optional unit, converted to the parameter's unit and checked against its range.
fn number(value: &str, d: &Definition) -> Result<(), String> {
    let v = value.trim();
    let split = v.find(|c: char| !(c.is_ascii_hexdigit() || "+-.xX".contains(c))).unwrap_or(v.len());
    // A hex digit run may swallow a unit's first letters ("1e3" is a number, "1d" is a day): back off
    // to the longest prefix that parses.
    let (amount, unit) = (0..=split)
        .rev()
        .find_map(|i| parse_amount(&v[..i]).map(|n| (n, v[i..].trim())))
        .ok_or_else(|| "expected a number".to_owned())?;
    let base = d.unit.as_deref().map(unit_of).transpose()?;
    let amount = match (unit, base) {
        ("", _) => amount,
        (_, None) => return Err("this parameter takes no unit".into()),
        (given, Some((kind, per_unit))) => {
            let factor = factor(kind, given).ok_or_else(|| format!("valid units are {}", kind.units()))?;
            amount * factor / per_unit
        }
    };
    let amount = if d.vartype == "integer" { amount.round() } else { amount };
    match (d.min, d.max) {
        (Some(min), _) if amount < min => Err(format!("below the minimum {min}{}", shown(d))),
        (_, Some(max)) if amount > max => Err(format!("above the maximum {max}{}", shown(d))),
        _ => Ok(()),
    }
}

/// The unit a range is given in, for messages.
fn shown(d: &Definition) -> String {
    d.unit.as_deref().map(|u| format!(" {u}")).unwrap_or_default()
}

/// A decimal, hexadecimal (`0x…`) or floating-point number, as `strtol`/`strtod` read it.
fn parse_amount(text: &str) -> Option<f64> {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    let hex = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X"));
    let magnitude = match hex {
        Some(h) => i64::from_str_radix(h, 16).ok()? as f64,
        None if digits.chars().next().is_some_and(|c| c.is_ascii_digit() || c == '.') => {
            digits.parse().ok()?
        }
        None => return None,
    };
    Some(sign * magnitude)
}

/// Memory or time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Memory,
    Time,
}

impl Kind {
    fn units(self) -> &'static str {
        match self {
            Kind::Memory => "B, kB, MB, GB and TB",
            Kind::Time => "us, ms, s, min, h and d",
        }
    }
}

/// How many bytes (memory) or milliseconds (time) one `unit` is.
fn factor(kind: Kind, unit: &str) -> Option<f64> {
    let table: &[(&str, f64)] = match kind {
        Kind::Memory => {
            &[("B", 1.0), ("kB", 1024.0), ("MB", 1048576.0), ("GB", 1073741824.0), ("TB", 1099511627776.0)]
        }
        Kind::Time => &[
            ("us", 0.001),
            ("ms", 1.0),
            ("s", 1000.0),
            ("min", 60000.0),
            ("h", 3600000.0),
            ("d", 86400000.0),
        ],
    };
    table.iter().find(|(name, _)| *name == unit).map(|(_, f)| *f)
}

/// A `pg_settings.unit` (`8kB`, `ms`, …): its kind and its size in bytes or milliseconds.
fn unit_of(unit: &str) -> Result<(Kind, f64), String> {
    let digits = unit.find(|c: char| !c.is_ascii_digit()).unwrap_or(unit.len());
    let count: f64 = if digits == 0 { 1.0 } else { unit[..digits].parse().unwrap_or(1.0) };
    let name = &unit[digits..];
    [Kind::Memory, Kind::Time]
        .into_iter()
        .find_map(|kind| factor(kind, name).map(|f| (kind, count * f)))
        .ok_or_else(|| format!("unknown unit {unit:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(vartype: &str, unit: Option<&str>, min: f64, max: f64) -> Definition {
        Definition {
            vartype: vartype.into(),
            unit: unit.map(String::from),
            min: Some(min),
            max: Some(max),
            enumvals: Vec::new(),
        }
    }

    #[test]
    fn memory_sizes_convert_to_the_parameters_unit_and_respect_its_range() {
        let work_mem = def("integer", Some("kB"), 64.0, 2147483647.0);
        for ok in ["64MB", "4096", "1GB", " 8 MB ", "1.5MB", "0x100"] {
            assert_eq!(check("work_mem", ok, Some(&work_mem)), Ok(()), "{ok}");
        }
        let shared_buffers = def("integer", Some("8kB"), 16.0, 1073741823.0);
        assert_eq!(check("shared_buffers", "128kB", Some(&shared_buffers)), Ok(()));
        let small = check("shared_buffers", "64kB", Some(&shared_buffers)).unwrap_err();
        assert!(small.contains("shared_buffers = \"64kB\"") && small.contains("minimum 16 8kB"), "{small}");
        let unit = check("work_mem", "64mb", Some(&work_mem)).unwrap_err();
        assert!(unit.contains("B, kB, MB, GB and TB"), "{unit}");
        assert!(check("work_mem", "lots", Some(&work_mem)).unwrap_err().contains("expected a number"));
        assert!(check("work_mem", "5s", Some(&work_mem)).is_err());
    }

    #[test]
    fn times_and_plain_numbers() {
        let timeout = def("integer", Some("ms"), 0.0, 2147483647.0);
        for ok in ["1d", "30s", "1.5min", "250", "100us"] {
            assert_eq!(check("statement_timeout", ok, Some(&timeout)), Ok(()), "{ok}");
        }
        let max_connections = def("integer", None, 1.0, 262143.0);
        assert_eq!(check("max_connections", "200", Some(&max_connections)), Ok(()));
        assert!(check("max_connections", "many", Some(&max_connections)).is_err());
        assert!(check("max_connections", "0", Some(&max_connections)).unwrap_err().contains("minimum 1"));
        assert!(check("max_connections", "10MB", Some(&max_connections)).unwrap_err().contains("no unit"));
        let fraction = def("real", None, 0.0, 1.0);
        assert_eq!(check("checkpoint_completion_target", "0.9", Some(&fraction)), Ok(()));
        assert_eq!(check("checkpoint_completion_target", "1e-1", Some(&fraction)), Ok(()));
        assert!(check("checkpoint_completion_target", "1.5", Some(&fraction)).is_err());
    }

    #[test]
    fn booleans_enums_strings_and_unknown_names() {
        let flag = def("bool", None, 0.0, 0.0);
        for ok in ["on", "OFF", "true", "t", "yes", "n", "1", "0"] {
            assert_eq!(check("fsync", ok, Some(&flag)), Ok(()), "{ok}");
        }
        for bad in ["o", "maybe", "2", ""] {
            assert!(check("fsync", bad, Some(&flag)).is_err(), "{bad}");
        }
        let mut commit = def("enum", None, 0.0, 0.0);
        commit.enumvals = ["local", "remote_write", "remote_apply", "on", "off"].map(String::from).to_vec();
        for ok in ["local", "ON", "true", "0"] {
            assert_eq!(check("synchronous_commit", ok, Some(&commit)), Ok(()), "{ok}");
        }
        let bad = check("synchronous_commit", "always", Some(&commit)).unwrap_err();
        assert!(bad.contains("one of local, remote_write"), "{bad}");
        assert_eq!(check("search_path", "anything, at all", Some(&def("string", None, 0.0, 0.0))), Ok(()));
        assert_eq!(check("auto_explain.log_min_duration", "1s", None), Ok(()));
        assert!(check("bogus_param", "1", None).unwrap_err().contains("no such parameter"));
    }
}
