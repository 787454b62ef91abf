//! Why a member does not take over while the cluster has no primary ("why no failover?"): one
//! [`Refusal`] per member, shown in one line by `vigil list` and `GET /cluster`.

use crate::{MemberName, Position, Unit};
use std::fmt;

/// Why this member does not take the free lease, or gave it back without promoting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The cluster store cannot be read from here.
    StoreUnreachable,
    /// Maintenance mode: nothing is promoted.
    Paused,
    /// Its tag `nofailover` is set.
    NoFailover,
    /// Its `failover_priority` is 0 or less.
    NoFailoverPriority(i64),
    /// Its last promotion was refused less than `ttl` ago.
    PromotionRefused(Veto),
    /// Its database is not running (it is being started as a standby to race).
    DatabaseNotRunning,
    /// Its database is still starting.
    DatabaseStarting,
    /// It has no data directory, and there is no primary to clone from.
    NoData,
    /// It handed over in a switchover: another member takes over.
    HandedOver,
    /// A switchover or failover names another member, which runs.
    SwitchoverTo(MemberName),
    /// Its position is unknown.
    PositionUnknown,
    /// With `check_timeline`: its timeline is unknown.
    TimelineUnknown,
    /// With `check_timeline`: its timeline is behind the cluster's.
    BehindTimeline {
        /// Its timeline.
        mine: u64,
        /// The cluster's (the last promotion's).
        cluster: u64,
    },
    /// Further behind the primary's last published position than `maximum_lag_on_failover`.
    Lagging {
        /// How far behind.
        lag: u64,
        /// `maximum_lag_on_failover`.
        maximum: u64,
        /// The unit of both.
        unit: Unit,
    },
    /// Its position cannot be compared with the primary's last published one (another engine's unit).
    Incomparable {
        /// Its position.
        position: Position,
        /// The primary's.
        primary: Position,
    },
    /// The promotion gate of synchronous replication is closed: it cannot show that it holds every
    /// acknowledged commit.
    GateClosed(String),
    /// Its WAL receiver still streams from the old primary, which may be alive with a frozen agent.
    StillStreaming,
    /// That member still runs as a primary.
    PrimaryRunning(MemberName),
    /// That member is further ahead, or as far with a higher `failover_priority`.
    HealthierMember(MemberName),
}

/// What refused a promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Veto {
    /// The watchdog is required (`watchdog.mode: required`) and could not be armed.
    Watchdog,
    /// The `pre_promote` hook failed or timed out.
    PrePromote,
    /// The promotion itself failed, attempt after attempt under one lease: the server may have been asked
    /// to promote, so it is killed before the lease is given back.
    Failed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::StoreUnreachable => f.write_str("store unreachable"),
            Refusal::Paused => f.write_str("paused"),
            Refusal::NoFailover => f.write_str("nofailover tag"),
            Refusal::NoFailoverPriority(p) => write!(f, "failover_priority {p}"),
            Refusal::PromotionRefused(Veto::Watchdog) => f.write_str("watchdog required but unavailable"),
            Refusal::PromotionRefused(Veto::PrePromote) => {
                f.write_str("pre_promote refused its promotion less than ttl ago")
            }
            Refusal::PromotionRefused(Veto::Failed) => {
                f.write_str("its promotion failed repeatedly less than ttl ago")
            }
            Refusal::DatabaseNotRunning => f.write_str("database not running"),
            Refusal::DatabaseStarting => f.write_str("database still starting"),
            Refusal::NoData => f.write_str("no data, and no primary to clone from"),
            Refusal::HandedOver => f.write_str("it handed over in a switchover"),
            Refusal::SwitchoverTo(to) => write!(f, "switchover or failover to {to} in progress"),
            Refusal::PositionUnknown => f.write_str("position unknown"),
            Refusal::TimelineUnknown => f.write_str("timeline unknown (check_timeline)"),
            Refusal::BehindTimeline { mine, cluster } => {
                write!(f, "timeline {mine} is behind the cluster's timeline {cluster} (check_timeline)")
            }
            Refusal::Lagging { lag, maximum, unit } => {
                let rounded = |n| Amount { n, unit: *unit, exact: false }.to_string();
                // Rounded alike, the exact counts say which is larger.
                let exact = rounded(*lag) == rounded(*maximum);
                let shown = |n| Amount { n, unit: *unit, exact };
                write!(f, "lagging by {} (maximum_lag_on_failover {})", shown(*lag), shown(*maximum))
            }
            Refusal::Incomparable { position, primary } => {
                write!(f, "position {position} cannot be compared with the primary's position {primary}")
            }
            Refusal::GateClosed(why) => write!(f, "gate closed: {why}"),
            Refusal::StillStreaming => {
                f.write_str("still streaming from the old primary, which may be alive with a frozen agent")
            }
            Refusal::PrimaryRunning(name) => write!(f, "{name} still runs as a primary"),
            Refusal::HealthierMember(name) => {
                write!(f, "a healthier member is expected to take over: {name}")
            }
        }
    }
}

/// A lag in its unit, as people read it: bytes in kB, MB, GB (powers of 1024; one decimal below 10)
/// unless `exact`, transactions as they are.
#[derive(Clone, Copy)]
struct Amount {
    n: u64,
    unit: Unit,
    exact: bool,
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Amount { n, unit, exact } = *self;
        if unit == Unit::Transactions {
            return write!(f, "{n} transactions");
        }
        const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
        if n < 1024 || exact {
            return write!(f, "{n} bytes");
        }
        let mut value = n as f64 / 1024.0;
        let mut i = 0;
        while value >= 1024.0 && i + 1 < UNITS.len() {
            value /= 1024.0;
            i += 1;
        }
        match value < 10.0 && value.fract() != 0.0 {
            true => write!(f, "{value:.1} {}", UNITS[i]),
            false => write!(f, "{value:.0} {}", UNITS[i]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_said_in_the_units_people_read() {
        let lagging = |lag, maximum| Refusal::Lagging { lag, maximum, unit: Unit::WalBytes }.to_string();
        assert_eq!(lagging(17 << 20, 1 << 20), "lagging by 17 MB (maximum_lag_on_failover 1 MB)");
        assert_eq!(lagging(4001, 4000), "lagging by 4001 bytes (maximum_lag_on_failover 4000 bytes)");
        assert_eq!(lagging(5 << 20, 1 << 10), "lagging by 5 MB (maximum_lag_on_failover 1 kB)");
        assert_eq!(lagging(1000, 10), "lagging by 1000 bytes (maximum_lag_on_failover 10 bytes)");
        assert_eq!(lagging(3 << 30, 1 << 30), "lagging by 3 GB (maximum_lag_on_failover 1 GB)");
        let trx = Refusal::Lagging { lag: 3, maximum: 2, unit: Unit::Transactions };
        assert_eq!(trx.to_string(), "lagging by 3 transactions (maximum_lag_on_failover 2 transactions)");
    }
}
