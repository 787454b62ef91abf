//! Lenient readers: strings that YAML may have typed as numbers or booleans (`password: 12345`,
//! `max_connections: 100`), string maps, and `bootstrap.initdb` items.

use super::InitdbOption;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// A scalar (string, number or boolean) rendered as a string.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor { booleans: ["off", "on"] }).map(ScalarString)
    }
}

/// Reads a scalar as text, booleans as `booleans` (`[false, true]`).
struct ScalarVisitor {
    booleans: [&'static str; 2],
}

impl Visitor<'_> for ScalarVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(self.booleans[usize::from(v)].to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// Reads a scalar as written in YAML (booleans `true`, `false`): a command-line argument's value.
pub fn as_written<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_any(ScalarVisitor { booleans: ["false", "true"] })
}

/// Reads a scalar as a string (`password: 12345` is the string `"12345"`; booleans become `on`/`off`,
/// as PostgreSQL writes them), or as anything made from a string (a [`vigil_api::Secret`]).
pub fn string<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<T, D::Error> {
    ScalarString::deserialize(d).map(|s| T::from(s.0))
}

/// Reads an optional scalar as [`string`] does.
pub fn optional_string<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<ScalarString>::deserialize(d).map(|s| s.map(|s| T::from(s.0)))
}

/// Reads a map of scalars as strings (PostgreSQL `parameters`).
pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let map = BTreeMap::<String, ScalarString>::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// Reads an optional map of scalars as strings (`recovery_conf`).
pub fn optional_string_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    string_map(d).map(Some)
}

/// One `bootstrap.initdb` item: `data-checksums` or `{encoding: UTF8}`.
struct InitdbItem(InitdbOption);

impl<'de> Deserialize<'de> for InitdbItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const WHAT: &str = "a flag (data-checksums) or a one-key map (encoding: UTF8)";
        impl<'de> Visitor<'de> for V {
            type Value = InitdbItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(WHAT)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<InitdbItem, E> {
                if v.trim().is_empty() {
                    return Err(E::custom(format!("an empty initdb flag: use {WHAT}")));
                }
                Ok(InitdbItem(InitdbOption::Flag(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InitdbItem, A::Error> {
                let bad = || de::Error::custom(format!("each initdb item is {WHAT}"));
                let (name, value): (String, ScalarString) = map.next_entry()?.ok_or_else(bad)?;
                if map.next_key::<String>()?.is_some() {
                    return Err(bad());
                }
                Ok(InitdbItem(InitdbOption::Value(name, value.0)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads the `bootstrap.initdb` list.
pub fn initdb_options<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<InitdbOption>, D::Error> {
    Ok(Vec::<InitdbItem>::deserialize(d)?.into_iter().map(|i| i.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "string_map")]
        params: BTreeMap<String, String>,
        #[serde(deserialize_with = "initdb_options")]
        initdb: Vec<InitdbOption>,
    }

    #[test]
    fn renders_scalars_and_reads_initdb_items() {
        let t: T = serde_norway::from_str(
            "params: {a: 100, b: 0.9, c: true, d: 'x y'}\ninitdb: [{encoding: UTF8}, data-checksums, {k: 8}]",
        )
        .unwrap();
        let p: Vec<_> = t.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(p, ["a=100", "b=0.9", "c=on", "d=x y"]);
        assert_eq!(
            t.initdb,
            [
                InitdbOption::Value("encoding".into(), "UTF8".into()),
                InitdbOption::Flag("data-checksums".into()),
                InitdbOption::Value("k".into(), "8".into()),
            ]
        );
    }

    #[test]
    fn refuses_nested_values_and_two_key_items() {
        assert!(serde_norway::from_str::<T>("params: {a: [1]}\ninitdb: []").is_err());
        let err = serde_norway::from_str::<T>("params: {}\ninitdb: [{a: 1, b: 2}]").err().unwrap();
        assert!(err.to_string().contains("one-key map"), "{err}");
    }
}
