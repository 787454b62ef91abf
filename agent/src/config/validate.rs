//! Checks that need more than one value's type: one database section, absolute paths, address rules,
//! files that must exist, the lease timing inequality, and filling in `namespace` and the server's
//! programs (`postgresql.bin_dir`, `mysql.flavor` and `mysql.programs`).

use super::mysql::resolve_programs;
use super::postgresql::resolve_bin_dir;
use super::{
    mysql_parameters, Config, ConfigError, HostPort, LogConfig, LogType, MysqlConfig, PostgresqlConfig,
    ProgramRoots, RestApiConfig, WatchdogMode,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Validates and normalizes a freshly read configuration; returns every error found. Programs left out
/// are looked for under `roots` and on `path` (the value of `$PATH`).
pub(crate) fn validate(
    config: &mut Config,
    roots: &ProgramRoots,
    path: Option<&str>,
    home: Option<&str>,
) -> Vec<ConfigError> {
    if let Some(pg) = &mut config.postgresql {
        default_pgpass(pg, home);
    }
    if let Ok(cwd) = std::env::current_dir() {
        from_working_dir(config, &cwd);
    }
    let mut errors = Vec::new();
    let mut check = |result: Result<(), ConfigError>| errors.extend(result.err());
    check(one_engine(config));
    check(top_level(config));
    check(restapi(config));
    check(ctl(config));
    check(raft(config));
    check(config.bootstrap.dcs.validate_at("bootstrap.dcs"));
    if let Some(pg) = &config.postgresql {
        check(postgresql(pg));
    }
    if let Some(section) = &config.mysql {
        check(mysql(section));
    }
    check(data_dirs_apart(config));
    check(nostream(config));
    check(no_blank_items("bootstrap.pg_hba", &config.bootstrap.pg_hba));
    check(bootstrap_method(config));
    check(watchdog(config));
    check(log(&config.log));
    if let Some(kubernetes) = &config.kubernetes {
        check(kubernetes.validate());
    }
    if let Some(haproxy) = &config.haproxy {
        check(haproxy.validate());
    }
    if let Some(pg) = &mut config.postgresql {
        check(resolve_bin_dir(pg, &roots.pg_lib_root));
    }
    if let Some(mysql) = &mut config.mysql {
        check(resolve_programs(mysql, path, &roots.sbin));
    }
    errors
}

/// Patroni's default `postgresql.pgpass` when left out: `pgpass` in the home directory of the user the
/// server runs as (`os_user`), else in `home` (this process's `$HOME`).
fn default_pgpass(pg: &mut PostgresqlConfig, home: Option<&str>) {
    if !pg.pgpass.as_os_str().is_empty() {
        return;
    }
    let home = match &pg.os_user {
        Some(user) => crate::os_user::OsUser::lookup(user).ok().map(|u| u.home),
        None => home.map(PathBuf::from),
    };
    if let Some(home) = home.filter(|h| h.is_absolute()) {
        pg.pgpass = home.join("pgpass");
    }
}

/// Makes the relative directories and files Patroni's samples use (`data_dir: data/postgresql0`, `raft:
/// data_dir: .`) absolute, from the directory the agent was started in, as Patroni reads them.
fn from_working_dir(config: &mut Config, cwd: &Path) {
    let mut paths: Vec<&mut PathBuf> = vec![&mut config.raft.data_dir];
    paths.extend(config.log.dir.as_mut());
    if let Some(pg) = &mut config.postgresql {
        paths.extend([&mut pg.data_dir, &mut pg.pgpass]);
        if !pg.bin_dir.as_os_str().is_empty() {
            paths.push(&mut pg.bin_dir);
        }
    }
    if let Some(mysql) = &mut config.mysql {
        paths.push(&mut mysql.data_dir);
        paths.extend(mysql.bin_dir.as_mut());
    }
    for path in paths.into_iter().filter(|p| p.is_relative() && !p.as_os_str().is_empty()) {
        *path = cwd.join(&*path).components().filter(|c| *c != std::path::Component::CurDir).collect();
    }
}

/// `log`: an absolute `dir`, a positive `file_size`, `format` only for plain lines and with names
/// Vigil fills in.
fn log(log: &LogConfig) -> Result<(), ConfigError> {
    if let Some(dir) = &log.dir {
        absolute("log.dir", dir)?;
    }
    if log.file_size == 0 {
        return Err(ConfigError::invalid("log.file_size", "must be greater than 0 bytes"));
    }
    if let Some(format) = &log.format {
        if log.kind == LogType::Json {
            return Err(ConfigError::invalid(
                "log.format",
                "is for type: plain; JSON lines always hold timestamp, level, target and fields",
            ));
        }
        let unknown = crate::logging::unknown_format_names(format);
        if !unknown.is_empty() {
            let known = crate::logging::FORMAT_NAMES.join(", ");
            let why = format!("%({}) is not one of {known}", unknown.join("), %("));
            return Err(ConfigError::invalid("log.format", why));
        }
    }
    if let Some(target) = log.loggers.keys().find(|t| t.is_empty() || t.contains([',', '=', ' '])) {
        return Err(ConfigError::invalid(format!("log.loggers.{target}"), "is not a target name"));
    }
    Ok(())
}

/// A file configures at most one database server: `postgresql` or `mysql`, or neither for a witness.
fn one_engine(config: &Config) -> Result<(), ConfigError> {
    if config.postgresql.is_some() && config.mysql.is_some() {
        return Err(ConfigError::invalid(
            "mysql",
            "is set together with postgresql: a member runs one database server, so keep only its section",
        ));
    }
    Ok(())
}

/// `tags.nostream` needs the archive: a PostgreSQL member with `postgresql.parameters.restore_command`.
fn nostream(config: &Config) -> Result<(), ConfigError> {
    if !config.tags.nostream {
        return Ok(());
    }
    match &config.postgresql {
        Some(pg) if pg.parameters.get("restore_command").is_some_and(|c| !c.trim().is_empty()) => Ok(()),
        Some(_) => Err(ConfigError::invalid(
            "tags.nostream",
            "needs postgresql.parameters.restore_command: a replica that does not stream takes WAL from the \
             archive only",
        )),
        None => {
            Err(ConfigError::invalid("tags.nostream", "is for PostgreSQL members (WAL from the archive)"))
        }
    }
}

fn top_level(config: &mut Config) -> Result<(), ConfigError> {
    let scope = &config.scope;
    if scope.is_empty() || scope.chars().any(|c| c == '/' || c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::invalid(
            "scope",
            format!("{scope:?} is not a cluster name: use 1 or more characters without '/' or white space"),
        ));
    }
    let ns = config.namespace.trim_matches('/');
    if ns.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::invalid("namespace", format!("{:?} has white space", config.namespace)));
    }
    config.namespace = if ns.is_empty() { "/".to_string() } else { format!("/{ns}/") };
    Ok(())
}

fn restapi(config: &Config) -> Result<(), ConfigError> {
    let api = &config.restapi;
    connectable("restapi.connect_address", &api.connect_address)?;
    for (key, auth) in
        [("authentication", &api.authentication), ("read_authentication", &api.read_authentication)]
    {
        if auth.as_ref().is_some_and(|a| a.username.is_empty()) {
            return Err(ConfigError::invalid(format!("restapi.{key}.username"), "must not be empty"));
        }
    }
    read_authentication(api)?;
    for (key, file) in [("certfile", &api.certfile), ("keyfile", &api.keyfile), ("cafile", &api.cafile)] {
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::invalid(
                    format!("restapi.{key}"),
                    format!("{} does not exist or is not a file", path.display()),
                ));
            }
        }
    }
    if api.keyfile.is_some() && api.certfile.is_none() {
        return Err(ConfigError::invalid("restapi.keyfile", "is set without restapi.certfile"));
    }
    api.allow_entries()?;
    if api.verifies_clients() && (api.certfile.is_none() || api.cafile.is_none()) {
        return Err(ConfigError::invalid(
            "restapi.verify_client",
            "checking client certificates needs TLS: set restapi.certfile and restapi.cafile",
        ));
    }
    // Read the files now, so a certificate or key that cannot be used stops the agent before it starts.
    if let Some(tls) = config.api_server_tls() {
        vigil_api::tls::server_config(&tls, "restapi").map_err(tls_error)?;
    }
    if api.unprotected() && !api.insecure {
        return Err(ConfigError::invalid(
            "restapi.insecure",
            format!(
                "restapi.listen {} is not a loopback address and nothing protects the management calls \
                 (switchover, restart, config changes) on it: set restapi.authentication, \
                 restapi.verify_client (optional or required, with restapi.cafile) or restapi.allowlist, \
                 or set restapi.insecure: true to serve them to anyone who can reach it (health checks \
                 stay open either way)",
                api.listen
            ),
        ));
    }
    Ok(())
}

/// `restapi.read_authentication` only with `authentication` (else reads would be closed and changes
/// open), under a user name of its own.
fn read_authentication(api: &RestApiConfig) -> Result<(), ConfigError> {
    let Some(read) = &api.read_authentication else { return Ok(()) };
    match &api.authentication {
        None => Err(ConfigError::invalid(
            "restapi.read_authentication",
            "is set without restapi.authentication: reads would need credentials and changes none; set \
             restapi.authentication (the credentials for changes) too",
        )),
        Some(admin) if admin.username == read.username => Err(ConfigError::invalid(
            "restapi.read_authentication.username",
            format!(
                "{:?} is restapi.authentication's user name too: give the read-only user its own",
                read.username
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// `ctl`: its files must exist and be usable (with their `restapi` fallbacks).
fn ctl(config: &Config) -> Result<(), ConfigError> {
    let ctl = &config.ctl;
    for (key, file) in [("cacert", &ctl.cacert), ("certfile", &ctl.certfile), ("keyfile", &ctl.keyfile)] {
        if let Some(path) = file.as_ref().filter(|p| !p.is_file()) {
            let why = format!("{} does not exist or is not a file", path.display());
            return Err(ConfigError::invalid(format!("ctl.{key}"), why));
        }
    }
    if ctl.keyfile.is_some() && ctl.certfile.is_none() {
        return Err(ConfigError::invalid("ctl.keyfile", "is set without ctl.certfile"));
    }
    vigil_api::tls::client_builder(&config.api_client_tls(), "ctl").map(|_| ()).map_err(tls_error)
}

fn tls_error(e: vigil_api::tls::TlsError) -> ConfigError {
    ConfigError::invalid(e.key, format!("{}: {}", e.path.display(), e.why))
}

/// Checks the Raft addresses, and drops `self_addr` from `partner_addrs`: one list of every member can
/// then serve them all (a StatefulSet's pods share one configuration).
fn raft(config: &mut Config) -> Result<(), ConfigError> {
    let raft = &mut config.raft;
    absolute("raft.data_dir", &raft.data_dir)?;
    connectable("raft.self_addr", &raft.self_addr)?;
    let mut seen = BTreeSet::new();
    for (i, addr) in raft.partner_addrs.iter().enumerate() {
        let key = format!("raft.partner_addrs[{i}]");
        connectable(&key, addr)?;
        if !seen.insert(addr.to_string()) {
            return Err(ConfigError::invalid(key, format!("{addr} is listed twice")));
        }
    }
    let me = raft.self_addr.to_string();
    raft.partner_addrs.retain(|addr| addr.to_string() != me);
    if let Some(join) = &raft.join {
        connectable("raft.join", join)?;
        if join.to_string() == me {
            return Err(ConfigError::invalid(
                "raft.join",
                format!("{join} is this member's own raft.self_addr"),
            ));
        }
    }
    raft_auth(config)
}

/// Mutual TLS needs `certfile` and `cafile` (usable, naming `self_addr`), a password must not be empty, and a
/// group reachable from other machines needs one of them unless `insecure` says otherwise.
fn raft_auth(config: &Config) -> Result<(), ConfigError> {
    let raft = &config.raft;
    if raft.password.as_ref().is_some_and(|p| p.expose().is_empty()) {
        return Err(ConfigError::invalid("raft.password", "is empty"));
    }
    match (&raft.certfile, &raft.cafile) {
        (None, None) if raft.keyfile.is_some() => {
            return Err(ConfigError::invalid("raft.keyfile", "is set without raft.certfile"))
        }
        (Some(_), None) => return Err(ConfigError::invalid("raft.cafile", "is needed with raft.certfile")),
        (None, Some(_)) => return Err(ConfigError::invalid("raft.certfile", "is needed with raft.cafile")),
        _ => {}
    }
    let security = config.raft_security();
    if let Some(tls) = &security.tls {
        vigil_api::tls::server_config(&tls.server_tls(), "raft").map_err(tls_error)?;
        tls.names(&raft.self_addr.host).map_err(|why| ConfigError::invalid("raft.certfile", why))?;
    }
    if !config.raft_unauthenticated() || raft.insecure || config.raft_is_loopback() {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "raft.insecure",
        format!(
            "the Raft group is reachable from other machines (raft.self_addr {}) and unauthenticated: anyone \
             who reaches its port could run the cluster. Set raft.certfile, raft.keyfile and raft.cafile \
             (mutual TLS) or raft.password (Patroni's key: the same password on every member); or set \
             raft.insecure: true to run without",
            raft.bind_addr.as_ref().unwrap_or(&raft.self_addr)
        ),
    ))
}

fn postgresql(pg: &PostgresqlConfig) -> Result<(), ConfigError> {
    connectable("postgresql.connect_address", &pg.connect_address)?;
    absolute("postgresql.data_dir", &pg.data_dir)?;
    if pg.pgpass.as_os_str().is_empty() {
        let why = "is needed: left out, it is pgpass in the home directory of postgresql.os_user (or of the \
                   agent's user), and there is none";
        return Err(ConfigError::invalid("postgresql.pgpass", why));
    }
    absolute("postgresql.pgpass", &pg.pgpass)?;
    if !pg.bin_dir.as_os_str().is_empty() {
        absolute("postgresql.bin_dir", &pg.bin_dir)?;
    }
    let auth = &pg.authentication;
    let roles = [("superuser", Some(&auth.superuser)), ("replication", Some(&auth.replication))];
    for (name, role) in roles.into_iter().chain([("rewind", auth.rewind.as_ref())]) {
        role.map_or(Ok(()), |r| r.validate(name))?;
    }
    if let Some(lines) = &pg.pg_hba {
        no_blank_items("postgresql.pg_hba", lines)?;
    }
    pg.validate_patroni_keys()?;
    for (event, command) in pg.callbacks.iter() {
        if command.trim().is_empty() {
            return Err(ConfigError::invalid(format!("postgresql.callbacks.{event}"), "is an empty command"));
        }
    }
    if pg.pre_promote.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(ConfigError::invalid("postgresql.pre_promote", "is an empty command"));
    }
    if pg.create_replica_methods.is_empty() {
        return Err(ConfigError::invalid(
            "postgresql.create_replica_methods",
            "must list at least one method (basebackup, or one with a postgresql.<method> section)",
        ));
    }
    no_blank_items("postgresql.create_replica_methods", &pg.create_replica_methods)?;
    user_name("postgresql.os_user", pg.os_user.as_deref())
}

/// `bootstrap.method` (for PostgreSQL only) with its recovery settings, and `post_bootstrap` or its
/// alias `post_init`, not both, neither empty.
fn bootstrap_method(config: &Config) -> Result<(), ConfigError> {
    let b = &config.bootstrap;
    let custom = b.method.as_deref().filter(|m| *m != super::INITDB);
    if let (Some(method), Some(_)) = (custom, &config.mysql) {
        let why = format!("{method:?} is for postgresql: a MariaDB cluster is made by its first server");
        return Err(ConfigError::invalid("bootstrap.method", why));
    }
    if let Some(settings) = b.custom.as_ref().and_then(|c| c.recovery_conf.as_ref()) {
        let key = format!("bootstrap.{}.recovery_conf", b.custom.as_ref().map_or("", |c| c.name.as_str()));
        if let Some(name) = settings
            .keys()
            .find(|n| n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(ConfigError::invalid(format!("{key}.{name}"), "is not a parameter name"));
        }
    }
    if b.post_bootstrap.is_some() && b.post_init.is_some() {
        return Err(ConfigError::invalid(
            "bootstrap.post_init",
            "is post_bootstrap's other name, and post_bootstrap is set: keep one",
        ));
    }
    for (key, command) in [("post_bootstrap", &b.post_bootstrap), ("post_init", &b.post_init)] {
        if command.as_deref().is_some_and(|c| c.trim().is_empty()) {
            return Err(ConfigError::invalid(format!("bootstrap.{key}"), "is an empty command"));
        }
    }
    Ok(())
}

fn mysql(mysql: &MysqlConfig) -> Result<(), ConfigError> {
    connectable("mysql.connect_address", &mysql.connect_address)?;
    absolute("mysql.data_dir", &mysql.data_dir)?;
    if let Some(dir) = &mysql.bin_dir {
        absolute("mysql.bin_dir", dir)?;
    }
    let auth = &mysql.authentication;
    for (role, account) in [("superuser", &auth.superuser), ("replication", &auth.replication)] {
        if account.username.is_empty() {
            return Err(ConfigError::invalid(
                format!("mysql.authentication.{role}.username"),
                "must not be empty",
            ));
        }
    }
    if mysql.create_replica_methods.is_empty() {
        return Err(ConfigError::invalid(
            "mysql.create_replica_methods",
            "must list at least one of mariadb_backup, mariadb_dump",
        ));
    }
    mysql_parameters::check(&mysql.parameters)?;
    user_name("mysql.os_user", mysql.os_user.as_deref())
}

/// The database's and the store's data directories apart: a re-clone empties the database's.
fn data_dirs_apart(config: &Config) -> Result<(), ConfigError> {
    let Some(engine) = config.engine() else { return Ok(()) };
    let (db_dir, raft_dir) = (engine.data_dir(), &config.raft.data_dir);
    if raft_dir.starts_with(db_dir) {
        return Err(ConfigError::invalid(
            "raft.data_dir",
            format!(
                "{} is inside {}.data_dir {} (a re-clone empties the data directory)",
                raft_dir.display(),
                engine.section(),
                db_dir.display()
            ),
        ));
    }
    Ok(())
}

/// An OS user name, when set: not empty, no `:` nor white space.
fn user_name(key: &str, user: Option<&str>) -> Result<(), ConfigError> {
    match user {
        Some(user) if user.is_empty() || user.contains(|c: char| c == ':' || c.is_whitespace()) => {
            Err(ConfigError::invalid(key, format!("{user:?} is not a user name")))
        }
        _ => Ok(()),
    }
}

/// `watchdog`: an absolute device path and, when in use, a timeout (`ttl - safety_margin`, the margin
/// defaulting to the lease's) of at least 1 s under `bootstrap.dcs.ttl`.
fn watchdog(config: &Config) -> Result<(), ConfigError> {
    let watchdog = &config.watchdog;
    absolute("watchdog.device", &watchdog.device)?;
    if watchdog.mode == WatchdogMode::Off {
        return Ok(());
    }
    let ttl = config.bootstrap.dcs.ttl;
    let (key, margin) = match watchdog.safety_margin {
        Some(margin) => ("watchdog.safety_margin", margin),
        None => ("bootstrap.dcs.safety_margin", config.bootstrap.dcs.lease_timing().safety_margin),
    };
    if ttl.saturating_sub(margin) < Duration::from_secs(1) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{margin:?} leaves the watchdog less than 1 s: its timeout is bootstrap.dcs.ttl ({ttl:?}) - \
                 safety_margin; lower the margin or raise ttl"
            ),
        ));
    }
    Ok(())
}

/// An address others connect to must name one host.
fn connectable(key: &str, addr: &HostPort) -> Result<(), ConfigError> {
    if addr.is_wildcard() {
        return Err(ConfigError::invalid(
            key,
            format!("{addr} is not an address others can connect to: name this host"),
        ));
    }
    Ok(())
}

fn absolute(key: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(not_absolute(key, path))
    }
}

fn not_absolute(key: &str, path: &Path) -> ConfigError {
    ConfigError::invalid(key, format!("{:?} is not an absolute path", path.display().to_string()))
}

pub(super) fn no_blank_items(key: &str, lines: &[String]) -> Result<(), ConfigError> {
    match lines.iter().position(|l| l.trim().is_empty()) {
        Some(i) => Err(ConfigError::invalid(format!("{key}[{i}]"), "is empty")),
        None => Ok(()),
    }
}
