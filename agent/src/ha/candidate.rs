//! The rules a member must meet to take over, shared by the leader race ([`super::decide`]) and the
//! checks of a requested switchover or failover (the management API): one rule, two callers.

use crate::config::Tags;
use crate::db::Position;
use std::collections::BTreeMap;

/// Whether a member publishing `tags` may become primary (not `nofailover`, `failover_priority` above
/// 0), as [`Tags::can_fail_over`] says of a member's own configuration.
pub fn tags_allow_failover(tags: &BTreeMap<String, serde_json::Value>) -> bool {
    let map = serde_json::Map::from_iter(tags.clone());
    serde_json::from_value::<Tags>(serde_json::Value::Object(map)).is_ok_and(|tags| tags.can_fail_over())
}

/// Refuses a member at `position` that is further than `maximum` (`maximum_lag_on_failover`) behind
/// `primary`, the primary's position (its own, or the last one it published); the refusal says how far.
pub fn within_maximum_lag(position: Position, primary: Position, maximum: u64) -> Result<(), String> {
    let lag = position.lag_behind(primary);
    if lag > maximum {
        return Err(format!(
            "{lag} bytes behind the primary's position {primary}, more than maximum_lag_on_failover ({maximum})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn published_tags_allow_failover_as_the_configuration_does() {
        let tags = |v: serde_json::Value| serde_json::from_value::<BTreeMap<_, _>>(v).unwrap();
        assert!(tags_allow_failover(&tags(json!({}))));
        assert!(tags_allow_failover(&tags(json!({"failover_priority": 3, "rack": "r1"}))));
        assert!(!tags_allow_failover(&tags(json!({"nofailover": true}))));
        assert!(!tags_allow_failover(&tags(json!({"failover_priority": 0}))));
        assert!(!tags_allow_failover(&tags(json!({"nofailover": "yes"}))), "unreadable tags: no");
    }

    #[test]
    fn a_member_further_behind_than_the_maximum_is_refused() {
        assert_eq!(within_maximum_lag(Position(90), Position(100), 10), Ok(()));
        assert_eq!(within_maximum_lag(Position(120), Position(100), 0), Ok(()));
        let why = within_maximum_lag(Position(89), Position(100), 10).unwrap_err();
        assert_eq!(
            why,
            "11 bytes behind the primary's position 0/64, more than maximum_lag_on_failover (10)"
        );
    }
}
