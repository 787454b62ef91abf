//! pg_hba.conf, pg_ident.conf and the recovery settings: each comes from the member's own file when it
//! sets it, else from the dynamic configuration (as in Patroni, the own file's list replaces the
//! cluster's whole); pg_hba falls back to `bootstrap.pg_hba`. A change reaches a running server by a
//! reload.

use super::Postgres;
use crate::config::{Config, DynamicConfig, DynamicPostgresql};
use crate::db::DbError;
use std::collections::BTreeMap;

/// What the member's own file says (`postgresql.pg_hba`, `pg_ident`, `recovery_conf`, and
/// `bootstrap.pg_hba`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnFiles {
    /// `postgresql.pg_hba`.
    pub pg_hba: Option<Vec<String>>,
    /// `postgresql.pg_ident`.
    pub pg_ident: Option<Vec<String>>,
    /// `postgresql.recovery_conf`.
    pub recovery_conf: Option<BTreeMap<String, String>>,
    /// `bootstrap.pg_hba`: pg_hba when neither the file nor the dynamic configuration sets one.
    pub bootstrap_pg_hba: Vec<String>,
}

/// The lines and settings in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InForce {
    /// pg_hba.conf lines after the agent's own.
    pub pg_hba: Vec<String>,
    /// pg_ident.conf lines; `None`: the file is left as it is.
    pub pg_ident: Option<Vec<String>>,
    /// Recovery settings a replica's postgresql.conf gets.
    pub recovery_conf: BTreeMap<String, String>,
}

impl OwnFiles {
    /// What `config` sets.
    pub fn from_config(config: &Config) -> OwnFiles {
        let pg = config.postgresql.as_ref();
        OwnFiles {
            pg_hba: pg.and_then(|pg| pg.pg_hba.clone()),
            pg_ident: pg.and_then(|pg| pg.pg_ident.clone()),
            recovery_conf: pg.and_then(|pg| pg.recovery_conf.clone()),
            bootstrap_pg_hba: config.bootstrap.pg_hba.clone(),
        }
    }

    /// What is in force under the dynamic configuration's `postgresql` section. Recovery commands the
    /// store may carry (written past validation) are dropped: only the own file may set them.
    pub fn in_force(&self, dynamic: &DynamicPostgresql) -> InForce {
        let cluster_recovery = dynamic.recovery_conf.iter().flatten().filter(|(name, value)| {
            let refused = crate::config::unsafe_parameters::is_unsafe(name);
            if refused {
                tracing::warn!(setting = %name, %value, "recovery_conf from the dynamic configuration ignored: only a member's own file may set commands");
            }
            !refused
        });
        InForce {
            pg_hba: (self.pg_hba.as_ref().or(dynamic.pg_hba.as_ref()))
                .unwrap_or(&self.bootstrap_pg_hba)
                .clone(),
            pg_ident: self.pg_ident.clone().or_else(|| dynamic.pg_ident.clone()),
            recovery_conf: match &self.recovery_conf {
                Some(own) => own.clone(),
                None => cluster_recovery.map(|(k, v)| (k.clone(), v.clone())).collect(),
            },
        }
    }
}

impl Postgres {
    /// Takes the dynamic configuration's pg_hba, pg_ident and recovery settings (each unless the own file
    /// sets it) and `primary_stop_timeout`; a running server gets the changed files and a reload.
    pub(super) async fn set_cluster_config_now(&self, dynamic: &DynamicConfig) -> Result<(), DbError> {
        self.set_primary_stop_timeout(dynamic);
        let wanted = self.settings.own_files.in_force(&dynamic.postgresql);
        let changed: Vec<&str> = {
            let old = &self.runtime().files;
            [
                ("pg_hba", old.pg_hba != wanted.pg_hba),
                ("pg_ident", old.pg_ident != wanted.pg_ident),
                ("recovery_conf", old.recovery_conf != wanted.recovery_conf),
            ]
            .into_iter()
            .filter_map(|(name, differs)| differs.then_some(name))
            .collect()
        };
        if changed.is_empty() {
            return Ok(());
        }
        let applied =
            self.rewrite_and_reload("apply pg_hba, pg_ident and recovery_conf", |r| r.files = wanted).await?;
        let when = if applied.is_some() { "reloaded" } else { "kept for the next start" };
        tracing::info!(member = %self.settings.name, ?changed, when, "cluster-wide configuration files changed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(l: &[&str]) -> Option<Vec<String>> {
        Some(l.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_own_file_wins_then_the_cluster_then_bootstrap() {
        let own = OwnFiles { bootstrap_pg_hba: lines(&["boot"]).unwrap(), ..OwnFiles::default() };
        let mut dynamic = DynamicPostgresql::default();
        assert_eq!(own.in_force(&dynamic).pg_hba, ["boot"]);
        assert_eq!(own.in_force(&dynamic).pg_ident, None);
        dynamic.pg_hba = lines(&["cluster"]);
        dynamic.pg_ident = lines(&["map a b"]);
        dynamic.recovery_conf = Some(BTreeMap::from([
            ("recovery_min_apply_delay".into(), "5min".into()),
            ("restore_command".into(), "cp x y".into()),
        ]));
        let cluster = own.in_force(&dynamic);
        assert_eq!((cluster.pg_hba, cluster.pg_ident), (vec!["cluster".to_string()], lines(&["map a b"])));
        assert_eq!(
            cluster.recovery_conf,
            BTreeMap::from([("recovery_min_apply_delay".into(), "5min".into())]),
            "a command from the store is dropped"
        );
        let mine = OwnFiles {
            pg_hba: lines(&["mine"]),
            pg_ident: lines(&[]),
            recovery_conf: Some(BTreeMap::from([("restore_command".into(), "cp a b".into())])),
            ..own
        };
        let in_force = mine.in_force(&dynamic);
        assert_eq!((in_force.pg_hba, in_force.pg_ident), (vec!["mine".to_string()], lines(&[])));
        assert_eq!(in_force.recovery_conf, BTreeMap::from([("restore_command".into(), "cp a b".into())]));
    }
}
