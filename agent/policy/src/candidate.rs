//! The rules a member must meet to take over, shared by the leader race ([`crate::decide()`]) and the
//! checks of a requested switchover or failover (the management API): one rule, two callers.

use crate::Position;

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
