//! Replication slots in the dynamic configuration: permanent slots (`slots`), kept on the primary and
//! carried over to the replicas so that they survive a failover, and slots nobody manages
//! (`ignore_slots`), never dropped. Patroni's keys and shapes.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A permanent slot (a value of `slots`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum PermanentSlot {
    /// A physical slot: WAL is kept for a consumer outside the cluster (e.g. a backup tool or a standby
    /// cluster).
    Physical,
    /// A logical slot for a decoding consumer.
    Logical {
        /// The database it decodes.
        database: String,
        /// The output plugin (`pgoutput`, `test_decoding`, …).
        plugin: String,
    },
}

/// An `ignore_slots` entry: a slot matching every field given is left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotMatcher {
    /// The slot's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `physical` or `logical`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A logical slot's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// A logical slot's plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

impl SlotMatcher {
    /// Whether a slot with these attributes matches (fields left out match anything).
    pub fn matches(&self, name: &str, kind: &str, database: Option<&str>, plugin: Option<&str>) -> bool {
        let field = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| Some(w) == actual)
        };
        field(&self.name, Some(name))
            && field(&self.kind, Some(kind))
            && field(&self.database, database)
            && field(&self.plugin, plugin)
    }
}

/// Checks `slots` (under `key`): PostgreSQL's slot names (1 to 63 lower-case letters, digits and
/// underscores), and a database and plugin for each logical slot.
pub fn validate(key: &str, slots: &BTreeMap<String, PermanentSlot>) -> Result<(), ConfigError> {
    for (name, slot) in slots {
        let valid = (1..=63).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(ConfigError::invalid(
                format!("{key}.{name}"),
                "is not a replication slot name: use 1 to 63 lower-case letters, digits and underscores",
            ));
        }
        if let PermanentSlot::Logical { database, plugin } = slot {
            for (field, value) in [("database", database), ("plugin", plugin)] {
                if value.trim().is_empty() {
                    return Err(ConfigError::invalid(format!("{key}.{name}.{field}"), "must not be empty"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_parse_as_patroni_writes_them() {
        let slots: BTreeMap<String, PermanentSlot> = serde_json::from_value(serde_json::json!({
            "backup": {"type": "physical"},
            "cdc": {"type": "logical", "database": "app", "plugin": "pgoutput"}
        }))
        .unwrap();
        assert_eq!(slots["backup"], PermanentSlot::Physical);
        assert_eq!(
            slots["cdc"],
            PermanentSlot::Logical { database: "app".into(), plugin: "pgoutput".into() }
        );
        assert!(validate("slots", &slots).is_ok());
        let unknown = serde_json::from_value::<PermanentSlot>(
            serde_json::json!({"type": "logical", "database": "a", "plugin": "p", "x": 1}),
        );
        assert!(unknown.is_err());
        let bad = BTreeMap::from([("Bad-Name".to_owned(), PermanentSlot::Physical)]);
        assert_eq!(validate("slots", &bad).unwrap_err().key(), Some("slots.Bad-Name"));
        let empty = BTreeMap::from([(
            "cdc".to_owned(),
            PermanentSlot::Logical { database: "".into(), plugin: "p".into() },
        )]);
        assert_eq!(validate("slots", &empty).unwrap_err().key(), Some("slots.cdc.database"));
    }

    #[test]
    fn a_matcher_matches_on_the_fields_it_gives() {
        let m: SlotMatcher =
            serde_json::from_value(serde_json::json!({"type": "logical", "database": "app"})).unwrap();
        assert!(m.matches("any", "logical", Some("app"), Some("pgoutput")));
        assert!(!m.matches("any", "logical", Some("other"), Some("pgoutput")));
        assert!(!m.matches("any", "physical", None, None));
        assert!(
            SlotMatcher { name: Some("x".into()), ..Default::default() }.matches("x", "physical", None, None)
        );
    }
}
