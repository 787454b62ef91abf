//! `GET /metrics`: the Prometheus text format (0.0.4) with Patroni's metric names and help texts
//! (api.py `do_GET_metrics`), labelled `{scope="…",name="…"}`, plus Vigil's own `vigil_*` metrics: the
//! gauges come from the member's status, the duration histograms from the agent's [`Timings`].

use crate::histogram::Timings;
use crate::NodeStatus;
use std::fmt::{Display, Write};

/// The Patroni release whose REST API Vigil follows, reported as `patroni_version` (Vigil's own
/// version is `vigil_version`'s `version` label).
pub const PATRONI_VERSION: &str = "4.1.4";

/// Patroni's PostgreSQL states, numbered as `patroni_postgres_state` reports them (misc.py
/// `PostgresqlState`; the numbers never change): the state as the status shows it, and its name.
const POSTGRES_STATES: [(&str, &str); 15] = [
    ("initializing new cluster", "initdb"),
    ("initdb failed", "initdb_failed"),
    ("running custom bootstrap script", "custom_bootstrap"),
    ("custom bootstrap failed", "custom_bootstrap_failed"),
    ("creating replica", "creating_replica"),
    ("running", "running"),
    ("starting", "starting"),
    ("starting after custom bootstrap", "bootstrap_starting"),
    ("start failed", "start_failed"),
    ("restarting", "restarting"),
    ("restart failed", "restart_failed"),
    ("stopping", "stopping"),
    ("stopped", "stopped"),
    ("stop failed", "stop_failed"),
    ("crashed", "crashed"),
];

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The names of the metrics [`render`] writes, in order.
pub const NAMES: &[&str] = &[
    "patroni_version",
    "patroni_postgres_running",
    "patroni_postmaster_start_time",
    "patroni_primary",
    "patroni_xlog_location",
    "patroni_standby_leader",
    "patroni_replica",
    "patroni_sync_standby",
    "patroni_quorum_standby",
    "patroni_xlog_received_location",
    "patroni_xlog_replayed_location",
    "patroni_xlog_replayed_timestamp",
    "patroni_xlog_paused",
    "patroni_postgres_streaming",
    "patroni_postgres_in_archive_recovery",
    "patroni_postgres_server_version",
    "patroni_cluster_unlocked",
    "patroni_postgres_timeline",
    "patroni_dcs_last_seen",
    "patroni_pending_restart",
    "patroni_is_paused",
    "patroni_postgres_state",
    "patroni_failover_priority",
    "vigil_version",
    "vigil_fencing_token",
    "vigil_lease_remaining_seconds",
    "vigil_failovers_total",
    "vigil_sync_relaxed",
    "vigil_sync_writes_blocked",
    "vigil_raft_term",
    "vigil_raft_leader",
    "vigil_raft_voters",
    "vigil_raft_commit_index",
    "vigil_raft_applied_index",
];

/// The metrics of a member with `status` and, when it has an HA loop, `timings`, in the Prometheus text
/// format.
pub fn render(status: &NodeStatus, timings: Option<&Timings>) -> String {
    let mut out = Metrics { text: String::new(), labels: labels(status) };
    let x = &status.xlog;
    let role = status.role.as_str();
    let replication_state = status.replication_state.as_deref();
    let flag = |b: bool| u8::from(b);

    out.gauge("patroni_version", "Patroni semver without periods.", padded_semver(PATRONI_VERSION));
    let running = status.state == "running";
    out.gauge("patroni_postgres_running", "Value is 1 if Postgres is running, 0 otherwise.", flag(running));
    let help = "Epoch seconds since Postgres started.";
    out.gauge("patroni_postmaster_start_time", help, epoch_seconds(status.postmaster_start_time.as_deref()));
    let help = "Value is 1 if this node is the leader, 0 otherwise.";
    out.gauge("patroni_primary", help, flag(role == "primary"));
    let help = "Current location of the Postgres transaction log, 0 if this node is not the leader.";
    out.counter("patroni_xlog_location", help, x.location.unwrap_or(0));
    let help = "Value is 1 if this node is the standby_leader, 0 otherwise.";
    out.gauge("patroni_standby_leader", help, flag(role == "standby_leader"));
    let help = "Value is 1 if this node is a replica, 0 otherwise.";
    out.gauge("patroni_replica", help, flag(role == "replica"));
    let help = "Value is 1 if this node is a sync standby, 0 otherwise.";
    out.gauge("patroni_sync_standby", help, flag(status.is_sync_standby()));
    let help = "Value is 1 if this node is a quorum standby, 0 otherwise.";
    out.gauge("patroni_quorum_standby", help, flag(status.is_quorum_standby()));
    let help = "Current location of the received Postgres transaction log, 0 if this node is not a replica.";
    out.counter("patroni_xlog_received_location", help, x.received_location.unwrap_or(0));
    let help = "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.";
    out.counter("patroni_xlog_replayed_location", help, x.replayed_location.unwrap_or(0));
    let help = "Current timestamp of the replayed Postgres transaction log, 0 if null.";
    out.gauge("patroni_xlog_replayed_timestamp", help, epoch_seconds(x.replayed_timestamp.as_deref()));
    let help = "Value is 1 if the Postgres xlog is paused, 0 otherwise.";
    out.gauge("patroni_xlog_paused", help, flag(x.paused == Some(true)));
    let help = "Value is 1 if Postgres is streaming, 0 otherwise.";
    out.gauge("patroni_postgres_streaming", help, flag(replication_state == Some("streaming")));
    let help = "Value is 1 if Postgres is replicating from archive, 0 otherwise.";
    let archive = replication_state == Some("in archive recovery");
    out.gauge("patroni_postgres_in_archive_recovery", help, flag(archive));
    let help = "Version of Postgres (if running), 0 otherwise.";
    out.gauge("patroni_postgres_server_version", help, status.server_version.unwrap_or(0));
    let help = "Value is 1 if the cluster is unlocked, 0 if locked.";
    out.gauge("patroni_cluster_unlocked", help, flag(status.cluster_unlocked));
    let help = "Postgres timeline of this node (if running), 0 otherwise.";
    out.gauge("patroni_postgres_timeline", help, status.timeline.unwrap_or(0));
    let help = "Epoch timestamp when DCS was last contacted successfully by Patroni.";
    out.gauge("patroni_dcs_last_seen", help, status.dcs_last_seen);
    let help = "Value is 1 if the node needs a restart, 0 otherwise.";
    out.gauge("patroni_pending_restart", help, flag(status.pending_restart));
    let help = "Value is 1 if auto failover is disabled, 0 otherwise.";
    out.gauge("patroni_is_paused", help, flag(status.pause));
    let values: Vec<String> =
        POSTGRES_STATES.iter().enumerate().map(|(i, (_, name))| format!("{i}={name}")).collect();
    let help = format!("Numeric representation of Postgres state.\n# Values: {}", values.join(", "));
    let state = POSTGRES_STATES.iter().position(|(shown, _)| *shown == status.state);
    out.gauge("patroni_postgres_state", &help, state.map_or(-1, |i| i as i64));
    let priority = if status.tag_is_set("nofailover") { 0 } else { status.failover_priority() };
    out.gauge("patroni_failover_priority", "Failover priority of this node.", priority);

    let help = "Vigil's version, as the version label; the value is 1.";
    let version = format!("{},version=\"{}\"", out.labels, escape(&status.patroni.version));
    let _ = writeln!(out.text, "# HELP vigil_version {help}\n# TYPE vigil_version gauge");
    let _ = writeln!(out.text, "vigil_version{{{version}}} 1");

    let vigil = &status.vigil;
    let help = "Fencing token of the lease this node holds, 0 without a lease.";
    out.gauge("vigil_fencing_token", help, vigil.fencing_token.unwrap_or(0));
    let help = "Seconds left before this node's lease deadline, 0 without a lease.";
    let remaining = vigil.lease_remaining_ms.unwrap_or(0) as f64 / 1000.0;
    out.gauge("vigil_lease_remaining_seconds", help, remaining);
    if timings.is_none() {
        // With an HA loop, the counter comes by reason with the phase histograms (Timings).
        let help = "Number of times this agent has promoted its database.";
        out.counter("vigil_failovers_total", help, vigil.failovers_total);
    }
    let sync_state = vigil.sync_state.as_deref();
    let help = "Value is 1 if this primary runs asynchronously although synchronous_mode is on (no standby qualifies).";
    out.gauge("vigil_sync_relaxed", help, flag(sync_state == Some("relaxed")));
    let help = "Value is 1 if this primary's commits wait for a synchronous standby that is not there (strict mode).";
    out.gauge("vigil_sync_writes_blocked", help, flag(sync_state == Some("blocked")));
    let raft = vigil.raft.as_ref();
    let help = "Current Raft term of the cluster store (absent when not a Raft member).";
    out.family("vigil_raft_term", "gauge", help, raft.map(|r| r.term));
    let help = "Node id of the cluster store's Raft leader (absent while none is known).";
    out.family("vigil_raft_leader", "gauge", help, raft.and_then(|r| r.leader));
    let help = "Number of voters in the cluster store's Raft group (absent when not a Raft member).";
    out.family("vigil_raft_voters", "gauge", help, raft.map(|r| r.voters.len()));
    let help = "Index of the last Raft log entry a quorum of voters holds (on the Raft leader only).";
    out.family("vigil_raft_commit_index", "gauge", help, raft.and_then(|r| r.commit_index));
    let help = "Index of the last Raft log entry applied to this node's cluster store.";
    out.family("vigil_raft_applied_index", "gauge", help, raft.and_then(|r| r.applied_index));
    if let Some(timings) = timings {
        timings.render(&mut out.text, &out.labels);
    }
    out.text
}

/// An ISO 8601 time as Unix seconds (0 when absent or unreadable), as Patroni reports times.
fn epoch_seconds(time: Option<&str>) -> f64 {
    let at = time.and_then(|t| crate::Schedule::parse(t).ok()).map(|t| t.at());
    let since = at.and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok());
    since.map_or(0.0, |d| d.as_secs_f64())
}

struct Metrics {
    text: String,
    labels: String,
}

impl Metrics {
    fn gauge(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "gauge", help, Some(value));
    }

    fn counter(&mut self, name: &str, help: &str, value: impl Display) {
        self.family(name, "counter", help, Some(value));
    }

    /// `# HELP`, `# TYPE` and, when there is a value, the sample.
    fn family(&mut self, name: &str, kind: &str, help: &str, value: Option<impl Display>) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if let Some(value) = value {
            let _ = writeln!(self.text, "{name}{{{}}} {value}", self.labels);
        }
    }
}

/// `scope="…",name="…"`, escaped.
fn labels(status: &NodeStatus) -> String {
    format!("scope=\"{}\",name=\"{}\"", escape(&status.patroni.scope), escape(&status.patroni.name))
}

/// A label value escaped as the text format wants it.
pub(crate) fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `4.1.4` → `040104`, `0.1.0` → `000100` (as Patroni: each part zero-padded to two digits); `0` when
/// a part is not made of digits (a pre-release or build suffix is dropped first).
pub fn padded_semver(version: &str) -> String {
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    if parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
        return "0".to_owned();
    }
    parts.iter().map(|p| format!("{p:0>2}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_padded_as_patroni_pads_them() {
        assert_eq!(padded_semver("4.1.4"), "040104");
        assert_eq!(padded_semver("0.1.0"), "000100");
        assert_eq!(padded_semver("1.12.0-rc.1"), "011200");
        assert_eq!(padded_semver("dev"), "0");
    }

    #[test]
    fn every_family_has_help_and_type_and_labels_are_escaped() {
        let mut status = NodeStatus::default();
        status.patroni.scope = "a\"b".into();
        status.patroni.name = "c\\d".into();
        let text = render(&status, Some(&Timings::default()));
        let counted = [Timings::RENEWAL_FAILURES, crate::histogram::Failovers::PHASE_SECONDS];
        for name in NAMES.iter().chain(&Timings::NAMES).chain(&counted) {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        assert!(text.contains("patroni_primary{scope=\"a\\\"b\",name=\"c\\\\d\"} 0\n"), "{text}");
        assert!(!text.contains("vigil_raft_leader{"), "no leader known: no sample");
        assert!(text.contains("vigil_store_read_duration_seconds_count{scope="), "{text}");
        assert!(
            text.contains("vigil_lease_renewal_failures_total{scope=\"a\\\"b\",name=\"c\\\\d\"} 0\n"),
            "{text}"
        );
    }

    #[test]
    fn patroni_4_1_metrics() {
        let mut status = NodeStatus { state: "running".into(), cluster_unlocked: true, ..Default::default() };
        status.patroni.version = "0.3.0".into();
        status.postmaster_start_time = Some("2026-01-01T00:00:10.5+00:00".into());
        status.xlog.replayed_timestamp = Some("2026-01-01 00:00:20+00:00".into());
        status.xlog.paused = Some(true);
        let text = render(&status, None);
        let sample = |name: &str| {
            let line = text.lines().find(|l| l.starts_with(&format!("{name}{{"))).expect(name);
            line.rsplit(' ').next().expect("value").to_owned()
        };
        assert_eq!(sample("patroni_version"), "040104", "the Patroni API Vigil follows");
        assert!(text.contains("vigil_version{scope=\"\",name=\"\",version=\"0.3.0\"} 1\n"), "{text}");
        assert_eq!(sample("patroni_postmaster_start_time"), "1767225610.5");
        assert_eq!(sample("patroni_xlog_replayed_timestamp"), "1767225620");
        assert_eq!(
            (sample("patroni_xlog_paused"), sample("patroni_cluster_unlocked")),
            ("1".into(), "1".into())
        );
        assert_eq!(sample("patroni_postgres_state"), "5");
        assert!(text.contains("# Values: 0=initdb, 1=initdb_failed, "), "{text}");
        assert!(text.contains(", 14=crashed\n# TYPE patroni_postgres_state gauge\n"), "{text}");
        status.state = "not responding".into();
        status.postmaster_start_time = None;
        let text = render(&status, None);
        assert!(text.contains("patroni_postgres_state{scope=\"\",name=\"\"} -1\n"), "{text}");
        assert!(text.contains("patroni_postmaster_start_time{scope=\"\",name=\"\"} 0\n"), "{text}");
        assert!(!text.contains("_bucket"), "no timings: no histograms");
    }
}
