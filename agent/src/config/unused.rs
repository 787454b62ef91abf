//! Keys Vigil accepts, so that Patroni's files run unchanged, but does not act on yet: the tags
//! `clonefrom`, `nostream` and `replicatefrom`. They are never refused (Patroni's sample files carry them)
//! and never silently ignored: [`unused_keys`] lists those a configuration sets, and [`warn_unused_keys`]
//! logs one warning for each when the agent starts.

use super::Config;

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
    let tags = &config.tags;
    add(tags.clonefrom, "tags.clonefrom", "replicas are cloned from the primary");
    add(tags.nostream, "tags.nostream", "this member streams WAL from the primary like any replica");
    add(
        tags.replicatefrom.is_some(),
        "tags.replicatefrom",
        "this member streams from the primary (no cascading replication); `vigil topology` still shows it under that member",
    );
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
        let text = example(bin.path()).replace(
            "tags: {nofailover: false, noloadbalance: false}",
            "tags: {clonefrom: true, nostream: true, replicatefrom: node2}",
        );
        let config = Config::from_yaml_str(&text, &|_| None).expect("accepted");
        assert_eq!(keys(&config), ["tags.clonefrom", "tags.nostream", "tags.replicatefrom"]);
        let first = unused_keys(&config).remove(0).to_string();
        assert!(
            first.starts_with("tags.clonefrom is accepted for Patroni compatibility but has no effect yet: ")
        );
    }

    #[test]
    fn keys_vigil_acts_on_are_not_listed() {
        let bin = fake_bin_dir();
        let text = example(bin.path())
            .replace("scope: demo", "scope: demo\nnamespace: /vigil/")
            .replace("      use_pg_rewind: true", "      use_pg_rewind: true\n      use_slots: false\n    check_timeline: true")
            .replace("  pgpass: ", "  use_pg_rewind: false\n  pgpass: ")
            .replace(
                "    superuser: {username: postgres, password: su-pass}",
                "    superuser: {username: postgres, password: su-pass}\n    rewind: {username: rewind_user, password: rw}",
            );
        let config = Config::from_yaml_str(&text, &|_| None).expect("accepted");
        assert_eq!(keys(&config), Vec::<String>::new());
    }
}
