//! [`DynamicConfig`]: the cluster-wide settings (`bootstrap.dcs` in the file, the `config` key in the
//! store afterwards), with Vigil's short default timings.

use super::choice::choice_enum;
use super::postgresql_checks::recovery_names;
use super::unsafe_parameters::{self, ONLY_FROM_OWN_FILE};
use super::validate::no_blank_items;
use super::{duration, scalar, ConfigError, PermanentSlot, SlotMatcher};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use vigil_fencing::{LeaseTiming, TimingError, MAX_TTL};

/// Default lease ttl: 3 s. The holder renews every `loop_wait` (1 s); a renewal may take up to
/// `retry_timeout` (0.75 s) and is retried once; it fences itself `safety_margin` (0.5 s) before its
/// deadline: 1 + 2 × 0.75 + 0.5 = 3 s ≤ ttl, so it always steps down before anyone else can acquire. A Raft
/// leader failover (≈1.1 s with the default Raft timing) fits well inside it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3);
/// Default `loop_wait`: 1 s between HA cycles, hence between renewals; leader changes wake the loop at
/// once, so this bounds only how late a renewal can start.
pub const DEFAULT_LOOP_WAIT: Duration = Duration::from_secs(1);
/// Default `retry_timeout`: 0.75 s per store operation, retried once, so the two attempts (1.5 s) span a
/// Raft leader change (≈1.1 s); two of them plus `loop_wait` and `safety_margin` still fit in the ttl.
pub const DEFAULT_RETRY_TIMEOUT: Duration = Duration::from_millis(750);
/// Default `safety_margin`: the holder fences its database 0.5 s before its own deadline, leaving time to
/// stop or demote PostgreSQL before the store could grant the lease to another member.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_millis(500);
/// Default `primary_start_timeout`: 10 s to restart a crashed primary in place before giving up the lease.
/// Safe because the holder keeps renewing meanwhile and fences itself if it cannot.
pub const DEFAULT_PRIMARY_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `maximum_lag_on_failover`: 1 MiB (Patroni's), the most a replica may lag and still promote.
pub const DEFAULT_MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576;

choice_enum! {
    /// `synchronous_mode`: `off`, `on` or `quorum` (booleans accepted, as Patroni does).
    pub enum SynchronousMode {
        /// Asynchronous replication.
        Off = "off",
        /// One or more named synchronous standbys.
        On = "on",
        /// Quorum commit (`ANY n (...)`).
        Quorum = "quorum",
    }
    bool: false => Off, true => On
}

impl From<SynchronousMode> for vigil_policy::SynchronousMode {
    fn from(mode: SynchronousMode) -> Self {
        match mode {
            SynchronousMode::Off => vigil_policy::SynchronousMode::Off,
            SynchronousMode::On => vigil_policy::SynchronousMode::On,
            SynchronousMode::Quorum => vigil_policy::SynchronousMode::Quorum,
        }
    }
}

/// The cluster-wide settings. Keys left out take Vigil's defaults (see the `DEFAULT_*` constants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicConfig {
    /// How long the leader lease lives without renewal.
    #[serde(default = "d::ttl", with = "duration")]
    pub ttl: Duration,
    /// Time between HA loop cycles.
    #[serde(default = "d::loop_wait", with = "duration")]
    pub loop_wait: Duration,
    /// How long one store operation may take before it counts as failed.
    #[serde(default = "d::retry_timeout", with = "duration")]
    pub retry_timeout: Duration,
    /// How long before its deadline the holder fences itself (Vigil's own key).
    #[serde(default = "d::safety_margin", with = "duration")]
    pub safety_margin: Duration,
    /// How long a crashed primary may take to restart in place before the lease is released.
    #[serde(default = "d::primary_start_timeout", with = "duration", alias = "master_start_timeout")]
    pub primary_start_timeout: Duration,
    /// How long a primary in synchronous mode may take to stop before it is killed (SIGKILL); zero:
    /// no limit but `postgresql.pg_ctl_timeout`.
    #[serde(default, with = "duration", alias = "master_stop_timeout")]
    pub primary_stop_timeout: Duration,
    /// The most (bytes) a replica may lag behind the primary and still take part in a failover.
    #[serde(default = "d::maximum_lag_on_failover")]
    pub maximum_lag_on_failover: u64,
    /// The most (bytes) a synchronous standby may lag behind the most advanced one before another
    /// replica replaces it; -1 (or 0): never.
    #[serde(default = "d::maximum_lag_on_syncnode")]
    pub maximum_lag_on_syncnode: i64,
    /// How many timeline switches `history` keeps (the latest); 0: all.
    #[serde(default)]
    pub max_timelines_history: u64,
    /// Synchronous replication mode.
    #[serde(default = "d::synchronous_mode")]
    pub synchronous_mode: SynchronousMode,
    /// Refuse writes rather than fall back to asynchronous when no synchronous standby is left.
    #[serde(default)]
    pub synchronous_mode_strict: bool,
    /// How many synchronous standbys (at least 1).
    #[serde(default = "d::synchronous_node_count")]
    pub synchronous_node_count: u32,
    /// Maintenance mode: no automatic actions.
    #[serde(default)]
    pub pause: bool,
    /// A replica on an earlier timeline than the cluster's (the last promotion's, from `history`), or on
    /// an unknown one, stays out of the leader race.
    #[serde(default)]
    pub check_timeline: bool,
    /// PostgreSQL settings shared by the cluster.
    #[serde(default)]
    pub postgresql: DynamicPostgresql,
    /// Permanent replication slots by name: kept on the primary, and on the replicas for a failover.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slots: BTreeMap<String, PermanentSlot>,
    /// Slots nobody manages: never dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_slots: Vec<SlotMatcher>,
    /// How long the primary keeps the slot of a member that is gone (its key expired).
    #[serde(default = "d::member_slots_ttl", with = "duration")]
    pub member_slots_ttl: Duration,
    /// A standby cluster: it replicates from another cluster's primary, and promotes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_cluster: Option<StandbyCluster>,
}

/// `standby_cluster`: where a standby cluster's leader replicates from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyCluster {
    /// The remote primary's host (or a proxy in front of the other cluster's primary).
    pub host: String,
    /// Its port.
    #[serde(default = "d::pg_port")]
    pub port: u16,
    /// The replication slot to stream through there; none when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_slot_name: Option<String>,
    /// Accepted as Patroni writes it, and refused: it runs commands, so it comes from each member's own
    /// file (`postgresql.parameters.restore_command`), never from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_command: Option<String>,
}

impl StandbyCluster {
    /// The remote primary as an upstream, named `host:port`.
    pub fn upstream(&self) -> vigil_policy::Upstream {
        let slot = match &self.primary_slot_name {
            Some(name) => vigil_policy::UpstreamSlot::Named(name.clone()),
            None => vigil_policy::UpstreamSlot::Unslotted,
        };
        let name = HostPortName(&self.host, self.port).to_string();
        vigil_policy::Upstream {
            name,
            host: self.host.clone(),
            port: self.port,
            api_url: String::new(),
            slot,
        }
    }

    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return Err(ConfigError::invalid(format!("{key}.host"), "must not be empty"));
        }
        if self.port == 0 {
            return Err(ConfigError::invalid(format!("{key}.port"), "must be from 1 to 65535"));
        }
        if self.restore_command.is_some() {
            return Err(ConfigError::invalid(
                format!("{key}.restore_command"),
                "can run commands as the postgres OS user, so it is refused cluster-wide: set \
                 postgresql.parameters.restore_command in each member's own file",
            ));
        }
        let slot = self.primary_slot_name.iter().map(|name| (name.clone(), super::PermanentSlot::Physical));
        super::slots::validate(&format!("{key}.primary_slot_name"), &slot.collect())
    }
}

/// `host:port`, with an IPv6 host in brackets.
struct HostPortName<'a>(&'a str, u16);

impl std::fmt::Display for HostPortName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.contains(':') {
            true => write!(f, "[{}]:{}", self.0, self.1),
            false => write!(f, "{}:{}", self.0, self.1),
        }
    }
}

/// `postgresql` inside the dynamic configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicPostgresql {
    /// Use pg_rewind to rejoin a diverged former primary.
    #[serde(default)]
    pub use_pg_rewind: bool,
    /// Keep a replication slot per member on the primary, and stream and clone through it; `false`: the
    /// primary drops the slots it made, replicas stream and clone without one.
    #[serde(default = "d::yes")]
    pub use_slots: bool,
    /// Server parameters for every member (values rendered as strings); never those that run commands or
    /// load code (see [`unsafe_parameters`]), which only each member's own file may set.
    #[serde(default, deserialize_with = "scalar::string_map")]
    pub parameters: BTreeMap<String, String>,
    /// pg_hba.conf lines for every member whose own file sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_hba: Option<Vec<String>>,
    /// pg_ident.conf lines for every member whose own file sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_ident: Option<Vec<String>>,
    /// Recovery settings for every replica whose own file sets none (`recovery_min_apply_delay`…); never
    /// the commands (`restore_command`…), which only each member's own file may set.
    #[serde(
        default,
        deserialize_with = "scalar::optional_string_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub recovery_conf: Option<BTreeMap<String, String>>,
}

impl Default for DynamicPostgresql {
    fn default() -> Self {
        DynamicPostgresql {
            use_pg_rewind: false,
            use_slots: true,
            parameters: BTreeMap::new(),
            pg_hba: None,
            pg_ident: None,
            recovery_conf: None,
        }
    }
}

impl DynamicPostgresql {
    /// Checks the lists and the recovery settings; keys are named under `key` (`…postgresql`).
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (name, lines) in [("pg_hba", &self.pg_hba), ("pg_ident", &self.pg_ident)] {
            if let Some(lines) = lines {
                no_blank_items(&format!("{key}.{name}"), lines)?;
            }
        }
        let Some(recovery) = &self.recovery_conf else { return Ok(()) };
        let key = format!("{key}.recovery_conf");
        recovery_names(&key, recovery)?;
        let refused: Vec<&str> = unsafe_parameters::unsafe_in(recovery).map(|(n, _)| n.as_str()).collect();
        if !refused.is_empty() {
            let why = format!(
                "{}: can run commands as the postgres OS user, so it is refused cluster-wide: set it in \
                 postgresql.recovery_conf of each member's own file",
                refused.join(", ")
            );
            return Err(ConfigError::invalid(key, why));
        }
        Ok(())
    }
}

/// Default value functions for serde.
mod d {
    use super::*;
    pub fn pg_port() -> u16 {
        5432
    }
    pub fn member_slots_ttl() -> Duration {
        Duration::from_secs(30 * 60)
    }
    pub fn ttl() -> Duration {
        DEFAULT_TTL
    }
    pub fn loop_wait() -> Duration {
        DEFAULT_LOOP_WAIT
    }
    pub fn retry_timeout() -> Duration {
        DEFAULT_RETRY_TIMEOUT
    }
    pub fn safety_margin() -> Duration {
        DEFAULT_SAFETY_MARGIN
    }
    pub fn primary_start_timeout() -> Duration {
        DEFAULT_PRIMARY_START_TIMEOUT
    }
    pub fn maximum_lag_on_syncnode() -> i64 {
        -1
    }
    pub fn maximum_lag_on_failover() -> u64 {
        DEFAULT_MAXIMUM_LAG_ON_FAILOVER
    }
    pub fn synchronous_mode() -> SynchronousMode {
        SynchronousMode::Off
    }
    pub fn synchronous_node_count() -> u32 {
        1
    }
    pub fn yes() -> bool {
        true
    }
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            ttl: DEFAULT_TTL,
            loop_wait: DEFAULT_LOOP_WAIT,
            retry_timeout: DEFAULT_RETRY_TIMEOUT,
            safety_margin: DEFAULT_SAFETY_MARGIN,
            primary_start_timeout: DEFAULT_PRIMARY_START_TIMEOUT,
            primary_stop_timeout: Duration::ZERO,
            maximum_lag_on_failover: DEFAULT_MAXIMUM_LAG_ON_FAILOVER,
            maximum_lag_on_syncnode: -1,
            max_timelines_history: 0,
            synchronous_mode: SynchronousMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            pause: false,
            check_timeline: false,
            postgresql: DynamicPostgresql::default(),
            slots: BTreeMap::new(),
            ignore_slots: Vec::new(),
            member_slots_ttl: d::member_slots_ttl(),
            standby_cluster: None,
        }
    }
}

impl DynamicConfig {
    /// Whether a member rewinds diverged data: its own file's `postgresql.use_pg_rewind` (`local`) when
    /// set, as in Patroni, else this configuration's.
    pub fn use_pg_rewind(&self, local: Option<bool>) -> bool {
        local.unwrap_or(self.postgresql.use_pg_rewind)
    }

    /// The lease timing the agents run with: the settings, fitted to Vigil's safety margin when they only
    /// satisfy Patroni's inequality ([`LeaseTiming::fitted`]).
    pub fn lease_timing(&self) -> LeaseTiming {
        let settings = self.timing_settings();
        settings.fitted().map_or(settings, |fitted| fitted.timing)
    }

    /// What [`lease_timing`](Self::lease_timing) shortened to fit Vigil's safety margin, in one line;
    /// `None` when the settings are used as they are.
    pub fn timing_note(&self) -> Option<String> {
        let settings = self.timing_settings();
        settings.fitted().ok()?.note(&settings)
    }

    /// `ttl`, `loop_wait`, `retry_timeout` and `safety_margin` as set.
    fn timing_settings(&self) -> LeaseTiming {
        LeaseTiming {
            ttl: self.ttl,
            loop_wait: self.loop_wait,
            retry_timeout: self.retry_timeout,
            safety_margin: self.safety_margin,
        }
    }

    /// Reads the JSON kept in the store's `config` key (or a `PATCH /config` result) and validates it.
    pub fn from_json_str(text: &str) -> Result<DynamicConfig, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: DynamicConfig = serde_path_to_error::deserialize(de).map_err(ConfigError::from_serde)?;
        config.validate()?;
        Ok(config)
    }

    /// Takes out of `postgresql.parameters`, and returns, those only a member's own file may set (a
    /// stored configuration may have been written past [`validate`](Self::validate)).
    pub fn drop_unsafe_parameters(&mut self) -> BTreeMap<String, String> {
        let all = std::mem::take(&mut self.postgresql.parameters);
        let (refused, kept) = all.into_iter().partition(|(name, _)| unsafe_parameters::is_unsafe(name));
        self.postgresql.parameters = kept;
        refused
    }

    /// Checks the timing inequality and bounds (`ttl` and `primary_start_timeout` at most a day,
    /// `loop_wait` at least 100 ms), that no parameter runs commands or loads code, and the other rules;
    /// keys are named relative to this section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_at("")
    }

    /// [`validate`](Self::validate), naming keys under `prefix` (e.g. `bootstrap.dcs`).
    pub(crate) fn validate_at(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
        if let Err(err) = self.timing_settings().fitted() {
            return Err(match err {
                TimingError::Zero { key: k } => ConfigError::invalid(key(k), "must be greater than 0"),
                TimingError::OutOfRange { key: k, value_ms, bound } => {
                    ConfigError::invalid(key(k), format!("{value_ms} ms is {bound}"))
                }
                tight @ TimingError::TooTight { .. } => ConfigError::invalid(prefix, tight.to_string()),
            });
        }
        for (name, value) in [
            ("primary_start_timeout", self.primary_start_timeout),
            ("primary_stop_timeout", self.primary_stop_timeout),
        ] {
            if value > MAX_TTL {
                let why = format!("{} ms is more than the maximum of 86400 s (1 day)", value.as_millis());
                return Err(ConfigError::invalid(key(name), why));
            }
        }
        if self.maximum_lag_on_syncnode < -1 {
            let why = format!("{} is neither -1 (never) nor a number of bytes", self.maximum_lag_on_syncnode);
            return Err(ConfigError::invalid(key("maximum_lag_on_syncnode"), why));
        }
        self.postgresql.validate(&key("postgresql"))?;
        super::slots::validate(&key("slots"), &self.slots)?;
        if let Some(standby) = &self.standby_cluster {
            standby.validate(&key("standby_cluster"))?;
        }
        if self.synchronous_node_count == 0 {
            return Err(ConfigError::invalid(key("synchronous_node_count"), "must be at least 1"));
        }
        // Refused here, so also in bootstrap.dcs: it seeds the store, from which no member takes them.
        let refused: Vec<String> = unsafe_parameters::unsafe_in(&self.postgresql.parameters)
            .map(|(name, value)| format!("{name} = {value:?}"))
            .collect();
        if !refused.is_empty() {
            let why = format!("{}: {ONLY_FROM_OWN_FILE}", refused.join(", "));
            return Err(ConfigError::invalid(key("postgresql.parameters"), why));
        }
        // Refused rather than ignored: strict without a synchronous mode would promise what nothing does.
        if self.synchronous_mode == SynchronousMode::Off && self.synchronous_mode_strict {
            return Err(ConfigError::invalid(
                key("synchronous_mode_strict"),
                "needs synchronous_mode on or quorum (it is off)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_cluster_names_its_remote_and_takes_no_command() {
        let parse = |json: serde_json::Value| serde_json::from_value::<DynamicConfig>(json).unwrap();
        let config = parse(
            serde_json::json!({"standby_cluster": {"host": "10.1.0.9", "primary_slot_name": "site_b"}}),
        );
        config.validate().expect("valid");
        let up = config.standby_cluster.as_ref().unwrap().upstream();
        assert_eq!((up.name.as_str(), up.port), ("10.1.0.9:5432", 5432));
        assert_eq!(up.slot, vigil_policy::UpstreamSlot::Named("site_b".into()));
        let v6 = parse(serde_json::json!({"standby_cluster": {"host": "::1", "port": 6432}}));
        let up = v6.standby_cluster.as_ref().unwrap().upstream();
        assert_eq!((up.name.as_str(), up.slot), ("[::1]:6432", vigil_policy::UpstreamSlot::Unslotted));

        let command =
            parse(serde_json::json!({"standby_cluster": {"host": "h", "restore_command": "cp x y"}}));
        let err = command.validate().unwrap_err();
        assert_eq!(err.key(), Some("standby_cluster.restore_command"));
        assert!(err.to_string().contains("in each member's own file"), "{err}");
        let slot =
            parse(serde_json::json!({"standby_cluster": {"host": "h", "primary_slot_name": "Bad-Slot"}}));
        assert_eq!(slot.validate().unwrap_err().key(), Some("standby_cluster.primary_slot_name.Bad-Slot"));
        let empty = parse(serde_json::json!({"standby_cluster": {"host": " "}}));
        assert_eq!(empty.validate().unwrap_err().key(), Some("standby_cluster.host"));
    }

    #[test]
    fn strict_needs_a_synchronous_mode() {
        for mode in [SynchronousMode::On, SynchronousMode::Quorum] {
            let config = DynamicConfig {
                synchronous_mode: mode,
                synchronous_mode_strict: true,
                ..DynamicConfig::default()
            };
            assert!(config.validate().is_ok(), "{mode:?}");
        }
        let strict = DynamicConfig { synchronous_mode_strict: true, ..DynamicConfig::default() };
        let err = strict.validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "synchronous_mode_strict: needs synchronous_mode on or quorum (it is off)"
        );
    }

    #[test]
    fn defaults_satisfy_the_timing_rule_exactly() {
        let d = DynamicConfig::default();
        let t = d.lease_timing();
        assert_eq!(t.loop_wait + 2 * t.retry_timeout + t.safety_margin, t.ttl);
        assert!(d.validate().is_ok());
        let empty: DynamicConfig = serde_norway::from_str("{}").unwrap();
        assert_eq!(empty, d);
    }

    #[test]
    fn round_trips_through_json_with_patroni_types() {
        let d: DynamicConfig = serde_norway::from_str(
            "ttl: 6\nloop_wait: 500ms\nretry_timeout: 1.25\nsynchronous_mode: false\npostgresql: {parameters: {max_connections: 100}}",
        )
        .unwrap();
        assert_eq!((d.ttl, d.loop_wait), (Duration::from_secs(6), Duration::from_millis(500)));
        assert_eq!(d.synchronous_mode, SynchronousMode::Off);
        let json = serde_json::to_string(&d).unwrap();
        assert!(json.contains(r#""ttl":6,"loop_wait":0.5,"retry_timeout":1.25"#), "{json}");
        assert!(json.contains(r#""synchronous_mode":"off""#), "{json}");
        assert_eq!(DynamicConfig::from_json_str(&json).unwrap(), d);
    }

    #[test]
    fn huge_durations_are_refused_by_name() {
        // Issue 12: this PATCH passed validation and then panicked every agent on Instant + Duration.
        let patch = r#"{"ttl": 18446744073709551615, "loop_wait": 9223372036854775807}"#;
        let err = DynamicConfig::from_json_str(patch).unwrap_err().to_string();
        assert_eq!(err, "ttl: 18446744073709551615000 ms is more than the maximum of 86400 s (1 day)");
        let err = DynamicConfig::from_json_str(r#"{"ttl": 86400, "loop_wait": 9223372036854775807}"#);
        assert!(err.unwrap_err().to_string().contains("exceeds ttl (86400000 ms)"));
        let err = DynamicConfig::from_json_str(r#"{"retry_timeout": 18446744073709551615}"#).unwrap_err();
        assert!(err.to_string().contains("exceeds ttl (3000 ms)"), "{err}");
        let err = DynamicConfig::from_json_str(r#"{"primary_start_timeout": "100000h"}"#).unwrap_err();
        assert!(err.to_string().starts_with("primary_start_timeout: 360000000000 ms is more"), "{err}");
        let err = DynamicConfig::from_json_str(r#"{"loop_wait": 0.05}"#).unwrap_err();
        assert_eq!(err.to_string(), "loop_wait: 50 ms is less than the minimum of 100 ms");
    }

    #[test]
    fn json_errors_name_the_key() {
        let err = DynamicConfig::from_json_str(r#"{"ttl": 1}"#).unwrap_err();
        assert!(err.to_string().starts_with("loop_wait (1000 ms)"), "{err}");
        let err = DynamicConfig::from_json_str(r#"{"synchronous_mode": "maybe"}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(r#"synchronous_mode: "maybe" is not one of off, on, quorum"#), "{text}");
        let err = DynamicConfig::from_json_str(r#"{"synchronous_node_count": 0}"#).unwrap_err();
        assert_eq!(err.to_string(), "synchronous_node_count: must be at least 1");
    }
}
