//! The cluster record: the typed keys and values the store keeps (ARCHITECTURE.md, "The crates").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use vigil_fencing::{FencingToken, MemberName};

/// A store revision: the Raft log index of the entry that last wrote a value. Identical on every replica,
/// strictly increasing, never reused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A key of the cluster record other than the leader lease, which has its own operations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The database system identifier, set once by the bootstrap winner.
    Initialize,
    /// The dynamic configuration.
    Config,
    /// The primary's last WAL position.
    Status,
    /// The published synchronous standby set.
    Sync,
    /// A requested switchover or failover.
    Failover,
    /// Timeline switches.
    History,
    /// One member's status, written every loop with a ttl.
    Member(MemberName),
}

const MEMBER_PREFIX: &str = "members/";

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Initialize => f.write_str("initialize"),
            Key::Config => f.write_str("config"),
            Key::Status => f.write_str("status"),
            Key::Sync => f.write_str("sync"),
            Key::Failover => f.write_str("failover"),
            Key::History => f.write_str("history"),
            Key::Member(name) => write!(f, "{MEMBER_PREFIX}{name}"),
        }
    }
}

/// A key name that is not part of the cluster record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key {0:?}: expected initialize, config, status, sync, failover, history or members/<name>")]
pub struct UnknownKey(pub String);

impl FromStr for Key {
    type Err = UnknownKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "initialize" => Key::Initialize,
            "config" => Key::Config,
            "status" => Key::Status,
            "sync" => Key::Sync,
            "failover" => Key::Failover,
            "history" => Key::History,
            _ => match s.strip_prefix(MEMBER_PREFIX) {
                Some(name) => Key::Member(name.parse().map_err(|_| UnknownKey(s.to_owned()))?),
                None => return Err(UnknownKey(s.to_owned())),
            },
        })
    }
}

impl Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A stored value with the revision that wrote it and, for keys that expire (members), its ttl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versioned {
    /// The value, as JSON: the store does not interpret it.
    pub value: serde_json::Value,
    /// The revision of the write that stored it.
    pub version: Revision,
    /// Time to live after that write, in milliseconds; `None` keeps the key until it is deleted.
    pub ttl_ms: Option<u64>,
}

/// The leader lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The member that holds it.
    pub holder: MemberName,
    /// The fencing token of the grant: the revision of the acquiring entry.
    pub token: FencingToken,
    /// Time to live after each renewal, in milliseconds.
    pub ttl_ms: u64,
    /// The revision of the last grant or renewal; expiry timers restart whenever it changes.
    pub renewed_at: Revision,
    /// The agent process that last took or renewed it: a number each agent process draws at start
    /// ([`crate::DcsNode::incarnation`]; 0 from agents older than it), so that a death certificate of
    /// one process never releases a lease its restarted successor holds.
    #[serde(default)]
    pub incarnation: u64,
}

/// One version of something that expires unless renewed: what the Raft leader's lessor times and what an
/// `Expire` command names. Applying the `Expire` is a no-op unless this exact version is still current.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpiryTarget {
    /// The leader lease as of one renewal.
    Leader {
        /// The lease's token.
        token: FencingToken,
        /// The renewal it was last renewed at.
        renewed_at: Revision,
    },
    /// A key with a ttl as of one write.
    Key {
        /// The key.
        key: Key,
        /// The version written.
        version: Revision,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_names() {
        for key in [
            Key::Initialize,
            Key::Config,
            Key::Status,
            Key::Sync,
            Key::Failover,
            Key::History,
            Key::Member("node1".parse().unwrap()),
        ] {
            assert_eq!(key.to_string().parse::<Key>(), Ok(key.clone()));
            let json = serde_json::to_string(&key).unwrap();
            assert_eq!(serde_json::from_str::<Key>(&json).unwrap(), key);
        }
    }

    #[test]
    fn unknown_keys_are_named_in_the_error() {
        for bad in ["leader", "members/", "members/a/b", "members/a b", "conf"] {
            let err = bad.parse::<Key>().unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
