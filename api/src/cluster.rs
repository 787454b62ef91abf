//! The answer of `GET /cluster`, typed, in the shape Patroni's clients read
//! (patronictl, dashboards, scripts).
//!
//! serde_json's maps are sorted (its `preserve_order` feature is off), and the management router
//! answers with the JSON value of these types, so their keys come out in alphabetical order, as they
//! always have; fields declared `Option` without `skip_serializing_if` are `null` when unknown, as
//! Patroni writes them.

use crate::{PendingChange, Schedule};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// `GET /cluster`: the members, the lease's token and the cluster-wide modes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    /// The cluster's name.
    pub scope: String,
    /// Every member with a current record in the store, by name.
    pub members: Vec<ClusterMember>,
    /// The fencing token of the current lease, while one is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<u64>,
    /// `on` or `quorum`; absent while asynchronous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_mode: Option<String>,
    /// True while the cluster is paused; absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pause: bool,
    /// The switchover or failover requested and not yet carried out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_switchover: Option<ScheduledSwitchover>,
}

/// One member in `GET /cluster`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// Its name.
    pub name: String,
    /// `leader`, `sync_standby`, `quorum_standby` or `replica`.
    pub role: String,
    /// Its replication state (`streaming`) when it has one, else its state (`running`, `stopped`, …).
    pub state: String,
    /// Its REST API (`http://host:port/patroni`).
    pub api_url: String,
    /// A pooler or proxy in front of its database (`postgres://host:port/postgres`), for information;
    /// absent when none is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// Its database host.
    pub host: String,
    /// Its database port.
    pub port: u16,
    /// Its timeline.
    pub timeline: Option<u64>,
    /// Its position (`X/X`).
    pub lsn: Option<String>,
    /// How far it is behind the primary's last published position.
    pub lag: Lag,
    /// A replica's received position.
    pub receive_lsn: Option<String>,
    /// A replica's replayed position.
    pub replay_lsn: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, serde_json::Value>,
    /// Why its agent does not do what one might expect, if anything.
    pub reason: Option<String>,
    /// While the cluster has no primary: why this member does not take over, in one line ("why no
    /// failover?": `nofailover tag`, `lagging by 17 MB (maximum_lag_on_failover 1 MB)`, `paused`, …);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// A primary's replication of its commits (`async`, `sync`, `relaxed`, `blocked`).
    pub sync_state: Option<String>,
    /// True while it needs a restart to apply a changed parameter; absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending_restart: bool,
    /// The parameters that wait for a restart, present exactly when `pending_restart` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_restart_reason: Option<BTreeMap<String, PendingChange>>,
    /// What its data has that its upstream refused it for; absent otherwise (see the status JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diverged: Option<vigil_policy::Divergence>,
    /// Where diverged data of this member was set aside before a re-clone (a path), while it is there;
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_set_aside: Option<String>,
    /// A replica: the member it replicates from (the leader, or another replica with `replicatefrom`);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// A member's lag in `GET /cluster`: bytes, or `"unknown"` (Patroni's word) when a position is missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Lag {
    /// How far behind the primary's last published position, in the engine's unit (PostgreSQL: bytes; 0
    /// for the leader).
    Behind(u64),
    /// No position to compare.
    #[default]
    Unknown,
}

impl Serialize for Lag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Lag::Behind(bytes) => serializer.serialize_u64(*bytes),
            Lag::Unknown => serializer.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Lag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Number(u64),
            Text(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Number(behind) => Ok(Lag::Behind(behind)),
            Written::Text(text) if text == "unknown" => Ok(Lag::Unknown),
            Written::Text(text) => {
                Err(serde::de::Error::custom(format!("lag {text:?} is neither a number nor \"unknown\"")))
            }
        }
    }
}

/// The requested switchover in `GET /cluster`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduledSwitchover {
    /// When it is due; `null`: now.
    pub at: Option<Schedule>,
    /// The primary to switch away from; `null` for a failover.
    pub from: Option<String>,
    /// The member to promote; `null`: the best candidate.
    pub to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lag_is_bytes_or_unknown() {
        assert_eq!(serde_json::to_value(Lag::Behind(16)).unwrap(), json!(16));
        assert_eq!(serde_json::to_value(Lag::Unknown).unwrap(), json!("unknown"));
        assert_eq!(serde_json::from_value::<Lag>(json!("unknown")).unwrap(), Lag::Unknown);
        assert_eq!(serde_json::from_value::<Lag>(json!(0)).unwrap(), Lag::Behind(0));
        assert!(serde_json::from_value::<Lag>(json!("far")).is_err());
    }
}
