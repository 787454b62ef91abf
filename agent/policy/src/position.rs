//! Replication positions: how far a server's copy of the cluster's history goes, in the unit its engine
//! counts. The adapter makes them ([`Position::new`]); the policy only compares them and measures lag.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// What a position counts. The engine's adapter picks it; the policy never names an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Bytes of write-ahead log, printed as an LSN `X/X` (PostgreSQL).
    WalBytes,
    /// Transactions: the sequence number of the cluster's one replication domain (MariaDB's GTID
    /// `domain-server-seq`, of which the position keeps the seq).
    Transactions,
}

impl Unit {
    /// The tag of the wire form, `wal` or `trx`.
    fn tag(self) -> &'static str {
        match self {
            Unit::WalBytes => "wal",
            Unit::Transactions => "trx",
        }
    }

    /// How a lag in this unit reads: `bytes` or `transactions`.
    pub fn lag_name(self) -> &'static str {
        match self {
            Unit::WalBytes => "bytes",
            Unit::Transactions => "transactions",
        }
    }
}

/// A replication position: how far a server's copy of the data goes, as an offset along the cluster's
/// history in the [`Unit`] of its engine. Two positions of one unit are ordered (a larger one holds
/// everything a smaller one holds, on the same branch of the history: see `ARCHITECTURE.md`, *Where each
/// engine plugs in*); positions of different units are incomparable, and nothing is ever taken for ahead of
/// or behind what it cannot be compared with.
///
/// Between agents it travels tagged with its unit, as text: `wal:0/3000060`, `trx:42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Position {
    /// What it counts.
    pub unit: Unit,
    /// How far, in `unit`.
    pub at: u64,
}

impl Position {
    /// The position `at` in `unit`.
    pub const fn new(unit: Unit, at: u64) -> Self {
        Position { unit, at }
    }

    /// A position in write-ahead log bytes (a PostgreSQL LSN).
    pub const fn wal(lsn: u64) -> Self {
        Position::new(Unit::WalBytes, lsn)
    }

    /// How far `self` is behind `other`, in their unit (zero when not behind); `None` when they cannot
    /// be compared.
    pub fn lag_behind(self, other: Position) -> Option<u64> {
        (self.unit == other.unit).then(|| other.at.saturating_sub(self.at))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (self.unit == other.unit).then(|| self.at.cmp(&other.at))
    }
}

impl fmt::Display for Position {
    /// PostgreSQL's LSN notation `X/X` for WAL bytes; the sequence number for transactions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            Unit::WalBytes => write!(f, "{:X}/{:X}", self.at >> 32, self.at & 0xFFFF_FFFF),
            Unit::Transactions => write!(f, "#{}", self.at),
        }
    }
}

impl FromStr for Position {
    type Err = String;

    /// Reads the wire form, `wal:X/X` or `trx:N`.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("position {text:?} is neither wal:X/X nor trx:N");
        let (tag, value) = text.split_once(':').ok_or_else(bad)?;
        match tag {
            "wal" => {
                let (high, low) = value.split_once('/').ok_or_else(bad)?;
                let half = |h: &str| u32::from_str_radix(h, 16).map_err(|_| bad());
                Ok(Position::wal(u64::from(half(high)?) << 32 | u64::from(half(low)?)))
            }
            "trx" => Ok(Position::new(Unit::Transactions, value.parse().map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Position {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.unit {
            Unit::WalBytes => serializer.collect_str(&format_args!("{}:{self}", self.unit.tag())),
            Unit::Transactions => serializer.collect_str(&format_args!("{}:{}", self.unit.tag(), self.at)),
        }
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_print_as_lsns_and_measure_lag() {
        assert_eq!(Position::wal(0x1_0000_0A28).to_string(), "1/A28");
        assert_eq!(Position::wal(100).lag_behind(Position::wal(350)), Some(250));
        assert_eq!(Position::wal(350).lag_behind(Position::wal(100)), Some(0));
        assert_eq!(Position::new(Unit::Transactions, 42).to_string(), "#42");
    }

    #[test]
    fn positions_of_different_units_are_incomparable() {
        let (wal, trx) = (Position::wal(7), Position::new(Unit::Transactions, 7));
        assert_eq!(wal.partial_cmp(&trx), None);
        assert!([wal < trx, wal > trx, wal <= trx, wal >= trx, wal == trx] == [false; 5]);
        assert_eq!(wal.lag_behind(trx), None);
        assert!(Position::wal(6) < wal);
    }

    #[test]
    fn the_wire_form_is_tagged_with_the_unit_and_reads_back() {
        for position in [Position::wal(0x1_0000_0A28), Position::new(Unit::Transactions, 42)] {
            let text = serde_json::to_string(&position).unwrap();
            assert_eq!(serde_json::from_str::<Position>(&text).unwrap(), position, "{text}");
        }
        assert_eq!(serde_json::to_string(&Position::wal(0x3000060)).unwrap(), "\"wal:0/3000060\"");
        assert_eq!(serde_json::to_string(&Position::new(Unit::Transactions, 42)).unwrap(), "\"trx:42\"");
        for bad in ["\"0/3000060\"", "\"wal:3000060\"", "\"trx:x\"", "\"gtid:0-1-2\"", "7"] {
            assert!(serde_json::from_str::<Position>(bad).is_err(), "{bad}");
        }
    }
}
