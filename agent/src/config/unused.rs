//! Keys Vigil accepts, so that Patroni's files run unchanged, but does not act on yet. They are never
//! refused (Patroni's sample files carry `authentication.rewind`, `clonefrom`, `nostream`) and never
//! silently ignored: [`unused_keys`] lists those a configuration sets, and [`warn_unused_keys`] logs one
//! warning for each when the agent starts.

use super::{Config, DynamicConfig};

/// A key that is set but has no effect yet, with what happens instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedKey {
    /// The full key path, e.g. `tags.nostream`.
    pub key: String,
    /// What Vigil does instead.
    pub instead: &'static str,
}

impl std::fmt::Display for UnusedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is accepted for Patroni compatibility but has no effect yet: {}",
            self.key, self.instead
        )
    }
}

/// The keys of `config` that are set (to anything but what Vigil does anyway) and have no effect.
pub fn unused_keys(config: &Config) -> Vec<UnusedKey> {
    let mut unused = Vec::new();
    let mut add = |set: bool, key: &str, instead: &'static str| {
        if set {
            unused.push(UnusedKey { key: key.to_owned(), instead });
        }
    };
    add(
        config.namespace != "/service/",
        "namespace",
        "each cluster (scope) has its own Raft group, whose keys carry no prefix",
    );
    let pg = &config.postgresql;
    add(
        pg.use_pg_rewind.is_some(),
        "postgresql.use_pg_rewind",
        "the cluster-wide postgresql.use_pg_rewind (bootstrap.dcs, then the stored configuration) decides",
    );
    add(
        pg.authentication.rewind.is_some(),
        "postgresql.authentication.rewind",
        "pg_rewind connects as postgresql.authentication.superuser",
    );
    let tags = &config.tags;
    add(tags.clonefrom, "tags.clonefrom", "replicas are cloned from the primary");
    add(tags.nostream, "tags.nostream", "this member streams WAL from the primary like any replica");
    add(
        tags.replicatefrom.is_some(),
        "tags.replicatefrom",
        "this member streams from the primary (no cascading replication); `vigil topology` still shows it under that member",
    );
    unused.extend(unused_dynamic_keys(&config.bootstrap.dcs, "bootstrap.dcs"));
    unused
}

/// The keys of a dynamic configuration (`bootstrap.dcs`, or the stored one with `prefix` empty) that are
/// set and have no effect.
pub fn unused_dynamic_keys(dynamic: &DynamicConfig, prefix: &str) -> Vec<UnusedKey> {
    let key = |k: &str| if prefix.is_empty() { k.to_owned() } else { format!("{prefix}.{k}") };
    let mut unused = Vec::new();
    if dynamic.check_timeline {
        let instead = "the leader race compares positions and maximum_lag_on_failover, not timelines";
        unused.push(UnusedKey { key: key("check_timeline"), instead });
    }
    if !dynamic.postgresql.use_slots {
        let instead = "the primary keeps a physical replication slot for every other member";
        unused.push(UnusedKey { key: key("postgresql.use_slots"), instead });
    }
    unused
}

/// Logs a warning for each of [`unused_keys`].
pub fn warn_unused_keys(config: &Config) {
    for unused in unused_keys(config) {
        tracing::warn!(key = %unused.key, "{unused}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{example, fake_bin_dir};

    fn keys(config: &Config) -> Vec<String> {
        unused_keys(config).into_iter().map(|u| u.key).collect()
    }

    #[test]
    fn a_plain_file_sets_no_unused_key() {
        let bin = fake_bin_dir();
        let config = Config::from_yaml_str(&example(bin.path()), &|_| None).expect("valid");
        assert_eq!(keys(&config), Vec::<String>::new());
    }

    #[test]
    fn each_unused_key_a_patroni_file_sets_is_accepted_and_named() {
        let bin = fake_bin_dir();
        let text = example(bin.path())
            .replace("scope: demo", "scope: demo\nnamespace: /vigil/")
            .replace("      use_pg_rewind: true", "      use_pg_rewind: true\n      use_slots: false\n    check_timeline: true")
            .replace("  pgpass: ", "  use_pg_rewind: false\n  pgpass: ")
            .replace(
                "    superuser: {username: postgres, password: su-pass}",
                "    superuser: {username: postgres, password: su-pass}\n    rewind: {username: rewind_user, password: rw}",
            )
            .replace(
                "tags: {nofailover: false, noloadbalance: false}",
                "tags: {clonefrom: true, nostream: true, replicatefrom: node2}",
            );
        let config = Config::from_yaml_str(&text, &|_| None).expect("accepted");
        assert_eq!(
            keys(&config),
            [
                "namespace",
                "postgresql.use_pg_rewind",
                "postgresql.authentication.rewind",
                "tags.clonefrom",
                "tags.nostream",
                "tags.replicatefrom",
                "bootstrap.dcs.check_timeline",
                "bootstrap.dcs.postgresql.use_slots",
            ]
        );
        let first = unused_keys(&config).remove(0).to_string();
        assert!(first.starts_with("namespace is accepted for Patroni compatibility but has no effect yet: "));
        let stored = unused_dynamic_keys(&config.bootstrap.dcs, "");
        assert_eq!(stored[0].key, "check_timeline");
    }
}
