//! The rules a member must meet to take over, shared by the leader race ([`crate::decide()`]) and the
//! checks of a requested switchover or failover (the management API): one rule, two callers.

use crate::{Position, Refusal};

/// Refuses a member at `position` that is further than `maximum` (`maximum_lag_on_failover`) behind
/// `primary`, the primary's position (its own, or the last one it published), in their unit, or that cannot
/// be compared with it; the refusal says how far.
pub fn within_maximum_lag(position: Position, primary: Position, maximum: u64) -> Result<(), Refusal> {
    match position.lag_behind(primary) {
        None => Err(Refusal::Incomparable { position, primary }),
        Some(lag) if lag > maximum => Err(Refusal::Lagging { lag, maximum, unit: primary.unit }),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_further_behind_than_the_maximum_is_refused() {
        assert_eq!(within_maximum_lag(Position::wal(90), Position::wal(100), 10), Ok(()));
        assert_eq!(within_maximum_lag(Position::wal(120), Position::wal(100), 0), Ok(()));
        let why = within_maximum_lag(Position::wal(89), Position::wal(100), 10).unwrap_err();
        assert_eq!(why.to_string(), "lagging by 11 bytes (maximum_lag_on_failover 10 bytes)");
        let trx = |at| Position::new(crate::Unit::Transactions, at);
        let why = within_maximum_lag(trx(7), trx(10), 2).unwrap_err();
        assert_eq!(why.to_string(), "lagging by 3 transactions (maximum_lag_on_failover 2 transactions)");
        let why = within_maximum_lag(trx(100), Position::wal(100), 1000).unwrap_err();
        assert_eq!(why.to_string(), "position #100 cannot be compared with the primary's position 0/64");
    }
}
