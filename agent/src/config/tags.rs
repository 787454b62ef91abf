//! [`Tags`]: what a member says about itself (Patroni's tags), published in its member key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `tags` section. Known tags are typed; any other `key: value` is kept in [`Tags::extra`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tags {
    /// Never become primary (wins over `failover_priority`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub nofailover: bool,
    /// Report 503 on `/replica` so load balancers leave this member out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub noloadbalance: bool,
    /// New replicas prefer to clone their data from this one while it runs as a replica.
    #[serde(default, skip_serializing_if = "is_false")]
    pub clonefrom: bool,
    /// Never become a synchronous standby.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nosync: bool,
    /// PostgreSQL: do not stream WAL; take it from the archive only (`postgresql.parameters.restore_command`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub nostream: bool,
    /// Preference in the leader race among equally advanced candidates; `<= 0` means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_priority: Option<i64>,
    /// Preference when choosing synchronous standbys; `<= 0` means never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_priority: Option<i64>,
    /// Stream from this member instead of from the primary (cascading replication) while it runs as a
    /// replica; from the primary otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicatefrom: Option<String>,
    /// Custom tags, kept as written (usable with `/replica?tag_<k>=<v>`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Tags {
    /// Whether this member may become primary: not `nofailover` and a positive `failover_priority`.
    pub fn can_fail_over(&self) -> bool {
        self.failover_priority() > 0
    }

    /// The failover priority: 0 with `nofailover`, else the configured value, default 1.
    pub fn failover_priority(&self) -> i64 {
        if self.nofailover {
            0
        } else {
            self.failover_priority.unwrap_or(1)
        }
    }

    /// The `failover_priority` as configured (default 1), whatever `nofailover` says: with
    /// [`Tags::can_fail_over`], it tells which of the two keeps the member from becoming primary.
    pub fn configured_priority(&self) -> i64 {
        self.failover_priority.unwrap_or(1)
    }

    /// The custom tags as strings (a string as is, anything else as JSON).
    pub fn extra_as_strings(&self) -> BTreeMap<String, String> {
        let render = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.extra.iter().map(|(k, v)| (k.clone(), render(v))).collect()
    }

    /// A warning when `nofailover` and a positive `failover_priority` are both set.
    pub(crate) fn conflict(&self) -> Option<String> {
        match (self.nofailover, self.failover_priority) {
            (true, Some(p)) if p > 0 => Some(format!(
                "tags: nofailover is true and failover_priority is {p}: nofailover wins, this member never \
                 becomes primary"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(yaml: &str) -> Tags {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn can_fail_over_follows_nofailover_and_priority() {
        assert!(tags("{}").can_fail_over());
        assert_eq!(tags("{}").failover_priority(), 1);
        assert!(!tags("nofailover: true").can_fail_over());
        assert!(!tags("{nofailover: true, failover_priority: 5}").can_fail_over());
        assert_eq!(tags("{nofailover: true, failover_priority: 5}").failover_priority(), 0);
        assert!(!tags("failover_priority: 0").can_fail_over());
        assert!(!tags("failover_priority: -3").can_fail_over());
        assert!(tags("{nofailover: false, failover_priority: 7}").can_fail_over());
        assert_eq!(tags("failover_priority: 7").failover_priority(), 7);
    }

    #[test]
    fn keeps_custom_tags() {
        let t = tags("{noloadbalance: true, zone: eu-1, rack: 12, replicatefrom: node2}");
        assert!(t.noloadbalance);
        assert_eq!(t.replicatefrom.as_deref(), Some("node2"));
        let extra = t.extra_as_strings();
        assert_eq!(extra.get("zone").map(String::as_str), Some("eu-1"));
        assert_eq!(extra.get("rack").map(String::as_str), Some("12"));
        assert_eq!(extra.len(), 2);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"noloadbalance": true, "replicatefrom": "node2", "zone": "eu-1", "rack": 12})
        );
    }

    #[test]
    fn typed_tags_are_checked() {
        assert!(serde_norway::from_str::<Tags>("nofailover: maybe").is_err());
    }
}
