//! Reading `pg_controldata`: the system identifier and the cluster state tell what the data directory is.

use super::render::HOT_STANDBY_MINIMUMS;
use crate::db::DataState;
use std::collections::BTreeMap;

/// The fields of `pg_controldata` the adapter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ControlData {
    /// "Database system identifier".
    pub system_id: String,
    /// "Database cluster state", e.g. "in production", "shut down", "shut down in recovery".
    pub cluster_state: String,
    /// The primary's settings that a hot standby needs at least as high ("max_connections setting", …), by
    /// parameter name.
    pub primary_settings: BTreeMap<String, u64>,
}

/// Cluster states of a server that was a primary: running or shut down as one, or crashed during crash
/// recovery or during the shutdown checkpoint of one. Replicas show "in archive recovery" or "shut down in
/// recovery".
const PRIMARY_STATES: &[&str] = &["in production", "shut down", "shutting down", "in crash recovery"];

/// Parses `pg_controldata` output (run with `LC_ALL=C`).
pub(crate) fn parse(output: &str) -> Option<ControlData> {
    let field = |name: &str| {
        output.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let primary_settings = HOT_STANDBY_MINIMUMS
        .iter()
        .filter_map(|m| Some((m.name.to_string(), field(m.control_field)?.parse().ok()?)))
        .collect();
    Some(ControlData {
        system_id: field("Database system identifier")?,
        cluster_state: field("Database cluster state")?,
        primary_settings,
    })
}

/// Whether `cluster_state` (from the control file) is a primary's.
pub(crate) fn is_primary_state(cluster_state: &str) -> bool {
    PRIMARY_STATES.contains(&cluster_state)
}

/// The data state: a former primary is one whose cluster state is a primary's (`primary_state`: from the
/// control file, or a running server out of recovery) and that is not configured as a replica
/// (`standby.signal`) nor a fresh base backup or rewind result (`backup_label`); or one the adapter marked
/// when it started or promoted it as a primary (`marked`), whatever it was started as since.
pub(crate) fn data_state(
    system_id: String,
    primary_state: bool,
    standby_signal: bool,
    backup_label: bool,
    marked: bool,
) -> DataState {
    DataState::Present {
        system_id,
        was_primary: marked || (primary_state && !standby_signal && !backup_label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "pg_control version number:            1300\n\
        Catalog version number:               202209061\n\
        Database system identifier:           7445012345678901234\n\
        Database cluster state:               in production\n\
        pg_control last modified:             Sat 22 Nov 2026 10:00:00 AM UTC\n\
        max_connections setting:              120\n\
        max_locks_per_xact setting:           64\n";

    #[test]
    fn parses_the_fields_used() {
        let control = parse(OUTPUT).expect("parsed");
        assert_eq!(control.system_id, "7445012345678901234");
        assert_eq!(control.cluster_state, "in production");
        let settings: Vec<(&str, u64)> =
            control.primary_settings.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(settings, [("max_connections", 120), ("max_locks_per_transaction", 64)]);
        assert_eq!(parse("garbage"), None);
    }

    fn from_control(state: &str, signal: bool, label: bool, marked: bool) -> DataState {
        data_state("1".into(), is_primary_state(state), signal, label, marked)
    }

    #[test]
    fn former_primary_needs_a_primary_state_and_no_replica_markers() {
        let was = |state, signal, label| match from_control(state, signal, label, false) {
            DataState::Present { was_primary, .. } => was_primary,
            DataState::Missing => unreachable!(),
        };
        assert!(was("in production", false, false));
        assert!(was("shut down", false, false));
        assert!(!was("in production", true, false));
        assert!(!was("in production", false, true));
        assert!(!was("shut down in recovery", false, false));
        assert!(!was("in archive recovery", false, false));
    }

    #[test]
    fn marked_data_is_a_former_primary_in_any_state() {
        // Promoted, fenced at once, then started as a standby of nobody: the control file says recovery.
        let state = from_control("in archive recovery", true, false, true);
        assert_eq!(state, DataState::Present { system_id: "1".into(), was_primary: true });
    }
}
