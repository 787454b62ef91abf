//! Replication positions: how far a server's copy of the data goes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A replication position: how far a server's copy of the data goes (PostgreSQL: a WAL LSN). Ordered:
/// a larger position holds everything a smaller one holds, on the same timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Position {
    /// How far `self` is behind `other`, in bytes (zero when not behind).
    pub fn lag_behind(self, other: Position) -> u64 {
        other.0.saturating_sub(self.0)
    }
}

impl fmt::Display for Position {
    /// PostgreSQL's LSN notation, `X/X`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_print_as_lsns_and_measure_lag() {
        assert_eq!(Position(0x1_0000_0A28).to_string(), "1/A28");
        assert_eq!(Position(100).lag_behind(Position(350)), 250);
        assert_eq!(Position(350).lag_behind(Position(100)), 0);
    }
}
