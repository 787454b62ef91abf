//! The files the adapter owns, as text: postgresql.conf, pg_hba.conf, pg_ident.conf and the password file. They are written
//! before every start, so what pg_basebackup and pg_rewind copy from another member never takes effect.

use super::{conf_files, conninfo, liveness, standby_names, InForce, PostgresSettings};
use crate::db::{SyncRule, Upstream, UpstreamSlot};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Parameters the adapter sets itself. The same names are ignored in `parameters` and dropped from
/// postgresql.auto.conf (which would override postgresql.conf). `wal_level` may be raised to `logical`.
/// The replication timeouts of [`liveness::OWNED`] are owned too.
const OWNED: &[&str] = &[
    "listen_addresses",
    "port",
    "wal_level",
    "hot_standby",
    "wal_log_hints",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target_timeline",
    "synchronous_standby_names",
    FENCING_TOKEN,
    "data_directory",
    "config_file",
    "hba_file",
    "ident_file",
];

/// Recovery settings a replica's `recovery_conf` may not set: the adapter's own.
const OWNED_RECOVERY: [&str; 3] = crate::config::OWNED_RECOVERY_SETTINGS;

/// Defaults for replication that `parameters` may override, Patroni's (it keeps 8 segments of WAL,
/// 128 MB): `wal_keep_size` keeps the recent WAL that pg_rewind reads back on a former primary to where
/// it diverged, and that a replica without a slot on a new primary may still need.
const DEFAULTS: &[(&str, &str)] =
    &[("max_wal_senders", "10"), ("max_replication_slots", "10"), ("wal_keep_size", "128MB")];

/// The first line of every file the adapter writes.
pub(crate) const HEADER: &str = "# Written by vigil before every start; changes here are overwritten.\n";

/// What a configuration is written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conf {
    /// A primary: no standby.signal, no primary_conninfo.
    Primary,
    /// A replica streaming from the upstream, or (`None`) a standby of nobody replaying what it has.
    Standby(Option<Upstream>),
    /// The first primary of a cluster restored from a backup (`bootstrap.<method>`), recovering until its
    /// promotion with these settings and `recovery.signal`, or (`None`) with the recovery settings and
    /// signal files the restore left (`keep_existing_recovery_conf`).
    Restore(Option<BTreeMap<String, String>>),
}

/// Where the agent connects to its own server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// The first of `unix_socket_directories`.
    Socket(PathBuf),
    /// A TCP host (when there is no socket directory).
    Tcp(String),
}

/// The agent's own connection target: the socket directory when one is configured (unless
/// `use_unix_socket` is `false`), else a listen address
/// (127.0.0.1 when the server listens there or on all addresses).
pub(crate) fn agent_target(s: &PostgresSettings) -> Target {
    if let Some(dir) = socket_dir(s).filter(|_| s.use_unix_socket != Some(false)) {
        return Target::Socket(dir);
    }
    let hosts: Vec<&str> = s.listen_host.split(',').map(str::trim).filter(|h| !h.is_empty()).collect();
    let any = |h: &&str| ["*", "0.0.0.0", "localhost", "127.0.0.1"].contains(h);
    if hosts.is_empty() || hosts.iter().any(any) {
        Target::Tcp("127.0.0.1".into())
    } else if hosts.iter().any(|h| ["::", "::1"].contains(h)) {
        Target::Tcp("::1".into())
    } else {
        Target::Tcp(hosts[0].to_string())
    }
}

/// The first entry of `unix_socket_directories`, when it is an absolute path.
pub(crate) fn socket_dir(s: &PostgresSettings) -> Option<PathBuf> {
    socket_dirs(s).next().flatten()
}

/// Each entry of `unix_socket_directories`, when it is an absolute path.
fn socket_dirs(s: &PostgresSettings) -> impl Iterator<Item = Option<PathBuf>> + '_ {
    let dirs = s.parameters.get("unix_socket_directories").map_or("", String::as_str);
    dirs.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.starts_with('/').then(|| PathBuf::from(d)))
}

/// The lock files a postmaster holds: `postmaster.pid` and one per socket (`.s.PGSQL.<port>.lock`).
pub(crate) fn lock_files(s: &PostgresSettings) -> Vec<PathBuf> {
    let socket_lock = format!(".s.PGSQL.{}.lock", s.port);
    let sockets = socket_dirs(s).flatten().map(|dir| dir.join(&socket_lock));
    std::iter::once(pid_file(&s.data_dir)).chain(sockets).collect()
}

/// A member's replication slot name: lowercase, anything outside `[a-z0-9_]` becomes `_`, at most 63 bytes.
pub fn slot_name(member: &str) -> String {
    member
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '_' })
        .take(63)
        .collect()
}

/// The custom setting that carries the fencing token of the lease the server was made primary under:
/// `SHOW vigil.fencing_token`, or `current_setting('vigil.fencing_token')` in the same statement as a write.
pub(crate) const FENCING_TOKEN: &str = "vigil.fencing_token";

/// Settings the agent changes while the server runs (applied by a reload), kept for every later start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Runtime {
    /// The server parameters (the settings' at first, then the dynamic configuration's as it changes).
    pub parameters: BTreeMap<String, String>,
    /// The primary's values of [`HOT_STANDBY_MINIMUMS`], as the data directory's control file recorded them
    /// when a replica configuration was last written.
    pub primary_settings: BTreeMap<String, u64>,
    /// `synchronous_standby_names`.
    pub sync: SyncRule,
    /// The fencing token of the last lease this member was primary under.
    pub fencing_token: Option<u64>,
    /// How long a replica may hear nothing from its upstream and still count as streaming (the lease
    /// ttl); the replication timeouts follow from it (see [`liveness`]).
    pub upstream_timeout: Duration,
    /// Replicas stream, and clones copy, without a replication slot (`postgresql.use_slots: false`).
    pub without_slots: bool,
    /// A replica keeps copies of the primary's permanent logical slots: it runs with
    /// `hot_standby_feedback`, so the primary keeps the catalog rows they need.
    pub standby_feedback: bool,
    /// pg_hba, pg_ident and the recovery settings in force.
    pub files: InForce,
}

/// Whether `name` is a recovery target setting (`recovery_target_time`, `recovery_target_action`…): a
/// restore's, which must not stop a later recovery (a replica's) where the restore stopped.
pub(crate) fn is_recovery_target(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("recovery_target")
}

/// Whether the adapter sets parameter `name` itself (case-insensitive).
pub(crate) fn is_owned(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    OWNED.contains(&name.as_str()) || liveness::OWNED.contains(&name.as_str())
}

/// A setting a hot standby must have at least as high as its primary (else it does not start).
pub(crate) struct HotStandbyMinimum {
    /// The parameter.
    pub name: &'static str,
    /// Its field in `pg_controldata`'s output, which holds the primary's value.
    pub control_field: &'static str,
    /// PostgreSQL's default (`max_wal_senders`: this adapter's).
    pub default: u64,
}

/// Every [`HotStandbyMinimum`].
pub(crate) const HOT_STANDBY_MINIMUMS: &[HotStandbyMinimum] = &[
    HotStandbyMinimum { name: "max_connections", control_field: "max_connections setting", default: 100 },
    HotStandbyMinimum {
        name: "max_worker_processes",
        control_field: "max_worker_processes setting",
        default: 8,
    },
    HotStandbyMinimum { name: "max_wal_senders", control_field: "max_wal_senders setting", default: 10 },
    HotStandbyMinimum {
        name: "max_prepared_transactions",
        control_field: "max_prepared_xacts setting",
        default: 0,
    },
    HotStandbyMinimum {
        name: "max_locks_per_transaction",
        control_field: "max_locks_per_xact setting",
        default: 64,
    },
];

/// The [`HOT_STANDBY_MINIMUMS`] a replica must raise above its own value to the primary's (as its control
/// file last recorded them), with the value to use.
pub(crate) fn raised_for_hot_standby(runtime: &Runtime) -> Vec<(&'static str, u64)> {
    HOT_STANDBY_MINIMUMS
        .iter()
        .filter_map(|m| {
            let primary = *runtime.primary_settings.get(m.name)?;
            let own = runtime.parameters.get(m.name).map_or(Some(m.default), |v| v.trim().parse().ok())?;
            (primary > own).then_some((m.name, primary))
        })
        .collect()
}

impl Runtime {
    /// At the agent's start: the settings' parameters.
    pub(crate) fn starting(s: &PostgresSettings) -> Runtime {
        Runtime {
            parameters: s.parameters.clone(),
            files: s.files.clone(),
            upstream_timeout: liveness::DEFAULT,
            ..Runtime::default()
        }
    }
}

/// postgresql.conf: the `base` configuration included, defaults, then `parameters`, then what the
/// adapter owns; a replica's also has the recovery settings, and `primary_conninfo` and
/// `primary_slot_name` for its upstream, unless it takes WAL from the archive only (`nostream`).
pub(crate) fn postgresql_conf(
    s: &PostgresSettings,
    conf: &Conf,
    runtime: &Runtime,
    base: Option<&Path>,
) -> String {
    let mut out = String::from(HEADER);
    if let Some(base) = base {
        let _ = writeln!(out, "include {}", conf_quote(&base.display().to_string()));
    }
    let mut set = |name: &str, value: &str| {
        let _ = writeln!(out, "{name} = {}", conf_quote(value));
    };
    for (name, value) in DEFAULTS {
        if !runtime.parameters.contains_key(*name) {
            set(name, value);
        }
    }
    for (name, value) in &runtime.parameters {
        if valid_name(name) && !is_owned(name) {
            set(name, value);
        }
    }
    if matches!(conf, Conf::Standby(_)) {
        // Later lines win: a replica starts only with these at least as high as on its primary.
        for (name, value) in raised_for_hot_standby(runtime) {
            set(name, &value.to_string());
        }
    }
    set("listen_addresses", &s.listen_host);
    set("port", &s.port.to_string());
    set("hba_file", &conf_files::pg_hba_conf(s).display().to_string());
    set("ident_file", &conf_files::pg_ident_conf(s).display().to_string());
    if s.config_dir.is_some() {
        set("data_directory", &s.data_dir.display().to_string());
    }
    let logical = runtime.parameters.get("wal_level").is_some_and(|v| v.eq_ignore_ascii_case("logical"));
    set("wal_level", if logical { "logical" } else { "replica" });
    set("hot_standby", "on");
    set("wal_log_hints", "on"); // pg_rewind needs it (or data checksums)
    set("synchronous_standby_names", &standby_names::render(&runtime.sync));
    for (name, value) in liveness::server_settings(runtime.upstream_timeout) {
        set(name, &value);
    }
    if let Some(token) = runtime.fencing_token {
        set(FENCING_TOKEN, &token.to_string());
    }
    if let Conf::Restore(Some(recovery)) = conf {
        for (name, value) in recovery.iter().filter(|(n, _)| valid_name(n)) {
            set(name, value);
        }
    }
    if let Conf::Standby(upstream) = conf {
        let recovery = runtime.files.recovery_conf.iter();
        for (name, value) in recovery.filter(|(n, _)| valid_name(n) && !OWNED_RECOVERY.contains(&n.as_str()))
        {
            set(name, value);
        }
        set("recovery_target_timeline", "latest");
        if runtime.standby_feedback {
            set("hot_standby_feedback", "on");
        }
        if let Some(up) = upstream.as_ref().filter(|_| !s.nostream) {
            set("primary_conninfo", &primary_conninfo(s, up, runtime.upstream_timeout));
            if let Some(slot) = upstream_slot(s, up, runtime) {
                set("primary_slot_name", &slot);
            }
        }
    }
    out
}

/// The slot a replica streams through on `up`: its own (unless slots are off), the one `up` names, or
/// none.
pub(crate) fn upstream_slot(s: &PostgresSettings, up: &Upstream, runtime: &Runtime) -> Option<String> {
    match &up.slot {
        UpstreamSlot::Own if !runtime.without_slots => Some(slot_name(&s.name)),
        UpstreamSlot::Named(name) => Some(name.clone()),
        UpstreamSlot::Own | UpstreamSlot::Unslotted => None,
    }
}

/// The connection string a replica streams with (the password comes from the password file), with the
/// connection timeouts for the upstream timeout `t` and the replication role's TLS options.
fn primary_conninfo(s: &PostgresSettings, up: &Upstream, t: Duration) -> String {
    let extra: Vec<(&str, String)> =
        std::iter::once(("application_name", s.name.clone())).chain(liveness::conninfo_options(t)).collect();
    conninfo::to_member(up, &s.replication, &s.pgpass, &extra)
}

/// postgresql.auto.conf without the settings `dropped` names (`None`: nothing to drop).
pub(crate) fn clean_auto_conf(text: &str, dropped: impl Fn(&str) -> bool) -> Option<String> {
    let owned = |line: &str| {
        let name = line.trim_start().split(|c: char| c == '=' || c.is_whitespace()).next().unwrap_or("");
        dropped(name)
    };
    if !text.lines().any(owned) {
        return None;
    }
    Some(text.lines().filter(|l| !owned(l)).map(|l| format!("{l}\n")).collect())
}

/// pg_hba.conf: first a line that lets the agent in as the superuser with its password (over the socket
/// directory, or TCP to its own connection target), then the configured `lines` in order.
pub(crate) fn pg_hba(s: &PostgresSettings, lines: &[String]) -> String {
    let user = hba_quote(&s.superuser.username);
    let own = match agent_target(s) {
        Target::Socket(_) => format!("local all {user} scram-sha-256"),
        Target::Tcp(host) => match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => format!("host all {user} {ip}/32 scram-sha-256"),
            Ok(IpAddr::V6(ip)) => format!("host all {user} {ip}/128 scram-sha-256"),
            Err(_) => format!("host all {user} {host} scram-sha-256"),
        },
    };
    format!("{HEADER}# the agent's own connection\n{own}\n# postgresql.pg_hba\n{}", self::lines(lines))
}

/// Configuration lines (pg_hba.conf, pg_ident.conf after the header), one per item.
pub(crate) fn lines(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// The password file: the superuser's and the replication user's passwords, for any host.
pub(crate) fn pgpass(s: &PostgresSettings) -> String {
    [Some(&s.superuser), Some(&s.replication), s.rewind.as_ref()]
        .into_iter()
        .flatten()
        .map(|c| format!("*:*:*:{}:{}\n", pgpass_escape(&c.username), pgpass_escape(c.password.expose())))
        .collect()
}

/// Whether `name` can be a parameter name (no line or quote tricks).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

/// A postgresql.conf string value.
fn conf_quote(v: &str) -> String {
    let escaped = v.replace('\\', "\\\\").replace('\'', "''").replace('\n', "\\n").replace('\r', "\\r");
    format!("'{escaped}'")
}

/// A pg_hba.conf user name (quoted, so that names like `all` stay literal).
fn hba_quote(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// A password file field.
fn pgpass_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace(':', "\\:")
}

/// The postmaster's lock file in `data`, whose first line is its PID.
pub(crate) fn pid_file(data: &Path) -> PathBuf {
    data.join("postmaster.pid")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::db::postgres::{Credentials, PeerOptions};

    /// Member `n2` at 10.0.0.2:5432, streamed from through this member's own slot.
    fn n2() -> Upstream {
        Upstream {
            name: "n2".into(),
            host: "10.0.0.2".into(),
            port: 5432,
            api_url: String::new(),
            slot: Default::default(),
        }
    }

    /// Member `Node-1` on port 5433 with a replication pg_hba line and a few parameters.
    pub(crate) fn settings() -> PostgresSettings {
        PostgresSettings {
            scope: "demo".into(),
            name: "Node-1".into(),
            data_dir: "/d/data".into(),
            bin_dir: "/bin".into(),
            listen_host: "*".into(),
            port: 5433,
            connect_host: "10.0.0.1".into(),
            superuser: Credentials {
                username: "postgres".into(),
                password: "s:e\\c".into(),
                peer_options: Default::default(),
            },
            replication: Credentials {
                username: "rep".into(),
                password: "it's".into(),
                peer_options: PeerOptions(vec![("sslmode", "verify-full".into())]),
            },
            rewind: None,
            parameters: [("port", "1"), ("work_mem", "8MB"), ("max_wal_senders", "5"), ("bad name", "x")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            own_files: Default::default(),
            files: InForce {
                pg_hba: vec!["host replication rep 10.0.0.0/8 scram-sha-256".into()],
                ..Default::default()
            },
            config_dir: None,
            custom_conf: None,
            bin_name: Default::default(),
            pg_ctl_timeout: Duration::from_secs(60),
            before_stop: None,
            use_unix_socket: None,
            basebackup: vec![],
            clone_methods: vec![crate::config::CloneMethod::Basebackup],
            custom_bootstrap: None,
            post_bootstrap: None,
            initdb: vec![],
            pgpass: "/d/pgpass".into(),
            os_user: None,
            nostream: false,
        }
    }

    #[test]
    fn slot_names_are_sanitized() {
        assert_eq!(slot_name("Node-1.b"), "node_1_b");
        assert_eq!(slot_name(&"x".repeat(70)).len(), 63);
    }

    #[test]
    fn replica_conf_owns_port_and_conninfo() {
        let s = settings();
        let up = n2();
        let conf = postgresql_conf(&s, &Conf::Standby(Some(up)), &Runtime::starting(&s), None);
        assert!(conf.contains("port = '5433'\n") && !conf.contains("port = '1'"));
        assert!(conf.contains("work_mem = '8MB'\n") && !conf.contains("bad name"));
        assert!(conf.contains("max_wal_senders = '5'\n") && conf.contains("max_replication_slots = '10'\n"));
        assert!(conf.contains("wal_keep_size = '128MB'\n"), "{conf}");
        assert!(conf.contains("primary_slot_name = 'node_1'\n"));
        assert!(conf.contains(
            "primary_conninfo = 'host=''10.0.0.2'' port=''5432'' user=''rep'' passfile=''/d/pgpass'' \
             application_name=''Node-1'' connect_timeout=''3'' keepalives=''1'' keepalives_idle=''1'' \
             keepalives_interval=''1'' keepalives_count=''2'' tcp_user_timeout=''3000'' \
             sslmode=''verify-full'''\n"
        ));
        assert!(conf.contains("wal_receiver_timeout = '3000ms'\nwal_sender_timeout = '6000ms'\n"), "{conf}");
        let mut runtime = Runtime::starting(&s);
        runtime.parameters.insert("WAL_SENDER_TIMEOUT".into(), "60s".into());
        runtime.upstream_timeout = Duration::from_secs(10);
        let primary = postgresql_conf(&s, &Conf::Primary, &runtime, None);
        assert!(
            primary.contains("wal_sender_timeout = '20000ms'\n") && !primary.contains("60s"),
            "{primary}"
        );
        let up = n2();
        let without_slots = Runtime { without_slots: true, ..Runtime::starting(&s) };
        let slotless = postgresql_conf(&s, &Conf::Standby(Some(up)), &without_slots, None);
        assert!(
            slotless.contains("primary_conninfo") && !slotless.contains("primary_slot_name"),
            "{slotless}"
        );
        let runtime = Runtime::starting(&s);
        assert!(!postgresql_conf(&s, &Conf::Primary, &runtime, None).contains("primary_conninfo"));
        assert!(!postgresql_conf(&s, &Conf::Standby(None), &runtime, None).contains("primary_conninfo"));
        let archive_only = PostgresSettings { nostream: true, ..s.clone() };
        let up = n2();
        let conf = postgresql_conf(&archive_only, &Conf::Standby(Some(up)), &runtime, None);
        assert!(!conf.contains("primary_conninfo") && !conf.contains("primary_slot_name"), "{conf}");
        assert!(conf.contains("recovery_target_timeline = 'latest'"), "{conf}");
    }

    #[test]
    fn a_replica_raises_what_hot_standby_needs_to_its_primarys_values() {
        let s = settings(); // max_wal_senders 5, max_connections unset (100)
        let mut runtime = Runtime::starting(&s);
        runtime.primary_settings =
            [("max_wal_senders", 8), ("max_connections", 100), ("max_locks_per_transaction", 128)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        assert_eq!(
            raised_for_hot_standby(&runtime),
            [("max_wal_senders", 8), ("max_locks_per_transaction", 128)]
        );
        let replica = postgresql_conf(&s, &Conf::Standby(None), &runtime, None);
        let last = |name: &str| {
            replica.lines().rev().find(|l| l.starts_with(&format!("{name} = "))).map(String::from)
        };
        assert_eq!(last("max_wal_senders").as_deref(), Some("max_wal_senders = '8'"));
        assert_eq!(last("max_locks_per_transaction").as_deref(), Some("max_locks_per_transaction = '128'"));
        assert_eq!(last("max_connections"), None);
        let primary = postgresql_conf(&s, &Conf::Primary, &runtime, None);
        assert!(
            primary.contains("max_wal_senders = '5'\n") && !primary.contains("max_locks_per_transaction")
        );
    }

    #[test]
    fn a_command_parameter_written_into_the_store_never_reaches_postgresql_conf() {
        use crate::config::DynamicConfig;
        use vigil_dcs::{ClusterState, Command, Condition, Key};
        // Issue 13: written straight into the store, past PATCH /config's checks.
        let value = serde_json::json!({"ttl": 4, "postgresql": {"parameters": {
            "archive_cleanup_command": "touch /tmp/x", "Shared_Preload_Libraries": "evil",
            "include_dir": "/tmp/conf.d", "unix_socket_group": "nobody", "work_mem": "16MB"}}});
        let mut state = ClusterState::default();
        state.apply(1, &Command::Put { key: Key::Config, value, condition: Condition::Always, ttl_ms: None });
        let fallback = DynamicConfig::default();
        let dynamic = crate::ha::dynamic_or_last_good(&state, &fallback, &fallback);
        // Only those parameters are dropped: the rest of the stored configuration is in force.
        assert_eq!(dynamic.ttl, Duration::from_secs(4));
        let own = BTreeMap::from([("archive_command".to_owned(), "cp %p /a/%f".to_owned())]);
        let mut s = settings();
        s.parameters = crate::config::server_parameters(&dynamic, &own);
        let conf = postgresql_conf(&s, &Conf::Primary, &Runtime::starting(&s), None);
        assert!(conf.contains("work_mem = '16MB'\n") && conf.contains("archive_command = 'cp %p /a/%f'\n"));
        for refused in ["archive_cleanup_command", "preload", "include", "unix_socket", "touch", "evil"] {
            assert!(!conf.to_ascii_lowercase().contains(refused), "{refused} in {conf}");
        }
    }

    #[test]
    fn the_base_is_included_first_and_a_replica_gets_the_recovery_settings() {
        let mut s = settings();
        s.config_dir = Some("/etc/pg/main".into());
        let mut runtime = Runtime::starting(&s);
        runtime.files.recovery_conf = [("recovery_min_apply_delay", "5min"), ("primary_conninfo", "forged")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let base = Path::new("/etc/pg/main/postgresql.base.conf");
        let replica = postgresql_conf(&s, &Conf::Standby(Some(n2())), &runtime, Some(base));
        assert!(replica.starts_with(&format!("{HEADER}include '/etc/pg/main/postgresql.base.conf'\n")));
        for line in [
            "hba_file = '/etc/pg/main/pg_hba.conf'\n",
            "ident_file = '/etc/pg/main/pg_ident.conf'\n",
            "data_directory = '/d/data'\n",
            "recovery_min_apply_delay = '5min'\n",
        ] {
            assert!(replica.contains(line), "{line} in {replica}");
        }
        assert!(!replica.contains("forged"), "{replica}");
        let primary = postgresql_conf(&s, &Conf::Primary, &runtime, None);
        assert!(!primary.contains("include") && !primary.contains("recovery_min_apply_delay"), "{primary}");
    }

    #[test]
    fn a_restored_primary_to_be_recovers_with_the_bootstrap_methods_settings_only() {
        let s = settings();
        let mut runtime = Runtime::starting(&s);
        runtime.files.recovery_conf = BTreeMap::from([("recovery_min_apply_delay".into(), "5min".into())]);
        let target = BTreeMap::from([
            ("recovery_target_time".to_owned(), "2026-12-07 09:00:00+00".to_owned()),
            ("recovery_target_action".to_owned(), "promote".to_owned()),
        ]);
        let restoring = postgresql_conf(&s, &Conf::Restore(Some(target)), &runtime, None);
        assert!(restoring.contains("recovery_target_time = '2026-12-07 09:00:00+00'\n"), "{restoring}");
        assert!(restoring.contains("recovery_target_action = 'promote'\n"), "{restoring}");
        for replicas_only in ["recovery_min_apply_delay", "primary_conninfo", "recovery_target_timeline"] {
            assert!(!restoring.contains(replicas_only), "{replicas_only} in {restoring}");
        }
        let kept = postgresql_conf(&s, &Conf::Restore(None), &runtime, None);
        assert_eq!(kept, postgresql_conf(&s, &Conf::Primary, &runtime, None), "nothing of its own");
    }

    #[test]
    fn auto_conf_loses_owned_settings_only() {
        let text =
            "# Do not edit\nprimary_conninfo = 'x'\nwork_mem = '4MB'\nPort=1\nwal_receiver_timeout = 0\n";
        assert_eq!(clean_auto_conf(text, is_owned).as_deref(), Some("# Do not edit\nwork_mem = '4MB'\n"));
        assert_eq!(clean_auto_conf("work_mem = '4MB'\n", is_owned), None);
        let restored =
            "restore_command = 'x'\nrecovery_target_time = 'y'\nrecovery_target_action = 'promote'\n";
        let target = clean_auto_conf(restored, is_recovery_target);
        assert_eq!(target.as_deref(), Some("restore_command = 'x'\n"));
    }

    #[test]
    fn hba_and_pgpass() {
        let mut s = settings();
        assert!(pg_hba(&s, &s.files.pg_hba).contains("\nhost all \"postgres\" 127.0.0.1/32 scram-sha-256\n"));
        s.parameters.insert("unix_socket_directories".into(), "/run/pg, /tmp".into());
        assert_eq!(agent_target(&s), Target::Socket("/run/pg".into()));
        let hba = pg_hba(&s, &s.files.pg_hba);
        assert!(hba.contains("\nlocal all \"postgres\" scram-sha-256\n"));
        assert!(hba.ends_with("\nhost replication rep 10.0.0.0/8 scram-sha-256\n"));
        s.use_unix_socket = Some(false);
        assert_eq!(agent_target(&s), Target::Tcp("127.0.0.1".into()), "use_unix_socket: false");
        s.use_unix_socket = None;
        assert_eq!(pgpass(&s), "*:*:*:postgres:s\\:e\\\\c\n*:*:*:rep:it's\n");
        let rewind =
            Credentials { username: "rw".into(), password: "p".into(), peer_options: PeerOptions::default() };
        let s = PostgresSettings { rewind: Some(rewind), ..s };
        assert!(pgpass(&s).ends_with("*:*:*:rep:it's\n*:*:*:rw:p\n"));
    }

    #[test]
    fn lock_files_are_the_pid_file_and_one_per_absolute_socket_directory() {
        let mut s = settings();
        assert_eq!(lock_files(&s), [PathBuf::from("/d/data/postmaster.pid")]);
        s.parameters.insert("unix_socket_directories".into(), "/run/pg, relative, /tmp".into());
        let expected = ["/d/data/postmaster.pid", "/run/pg/.s.PGSQL.5433.lock", "/tmp/.s.PGSQL.5433.lock"];
        assert_eq!(lock_files(&s), expected.map(PathBuf::from));
    }
}
