//! `<section>.os_user`: the OS account the database server runs as when the agent runs as root.

use super::{ConfigError, EngineConfig, Flavor};
use crate::os_user::OsUser;
use std::io;

/// The check behind `Config::check_os_user`, on `engine`'s `os_user`: as root one is required; when
/// given it must exist (looked up with `lookup`) and must not be root (uid 0).
pub(crate) fn check(
    engine: EngineConfig<'_>,
    running_as_root: bool,
    lookup: impl FnOnce(&str) -> io::Result<OsUser>,
) -> Result<Option<OsUser>, ConfigError> {
    let key = format!("{}.os_user", engine.section());
    let (server, example) = match engine {
        EngineConfig::Postgresql(_) => ("PostgreSQL", "postgres"),
        EngineConfig::Mysql(mysql) if mysql.flavor == Flavor::Mysql => ("MySQL", "mysql"),
        EngineConfig::Mysql(_) => ("MariaDB", "mysql"),
    };
    let name = match engine.os_user() {
        None if running_as_root => {
            return Err(ConfigError::invalid(
                &key,
                format!(
                    "the agent runs as root and {server} never does: set {key} (e.g. {example}) or run the \
                     agent as that user"
                ),
            ))
        }
        None => return Ok(None),
        Some(name) => name,
    };
    let user =
        lookup(name).map_err(|e| ConfigError::invalid(&key, format!("no usable OS user {name:?}: {e}")))?;
    if user.uid == 0 {
        return Err(ConfigError::invalid(
            key,
            format!("{name:?} is root (uid 0): {server} never runs as root; use e.g. {example}"),
        ));
    }
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{example, fake_bin_dir};
    use crate::config::tests_mysql::{fake_mysql_bin_dir, mysql_example};
    use crate::config::Config;
    use std::path::PathBuf;

    fn fake(name: &str) -> io::Result<OsUser> {
        let uid = match name {
            "postgres" => 109,
            "mysql" => 110,
            "root" | "toor" => 0,
            _ => return Err(io::Error::new(io::ErrorKind::NotFound, format!("no OS user named {name:?}"))),
        };
        Ok(OsUser { name: name.into(), uid, gid: uid, groups: Vec::new(), home: PathBuf::from("/") })
    }

    /// The PostgreSQL example, or the MariaDB one, with `os_user` when given.
    fn config(mysql: bool, os_user: Option<&str>) -> Config {
        let (pg_bin, mysql_bin) = (fake_bin_dir(), fake_mysql_bin_dir());
        let (text, section_end) = match mysql {
            false => (example(pg_bin.path()), "  pgpass: "),
            true => (mysql_example(mysql_bin.path()), "  authentication:"),
        };
        let line = os_user.map(|u| format!("  os_user: {u}\n")).unwrap_or_default();
        let text = text.replacen(section_end, &format!("{line}{section_end}"), 1);
        Config::from_yaml_str(&text, &|_| None).expect("valid")
    }

    #[test]
    fn root_needs_a_non_root_os_user_that_exists() {
        let err = check(config(false, None).engine().unwrap(), true, fake).unwrap_err();
        assert_eq!(err.key(), Some("postgresql.os_user"));
        assert!(err.to_string().contains("set postgresql.os_user (e.g. postgres)"), "{err}");
        assert_eq!(check(config(false, None).engine().unwrap(), false, fake).unwrap(), None);
        let postgres = config(false, Some("postgres"));
        assert_eq!(check(postgres.engine().unwrap(), true, fake).unwrap().map(|u| u.uid), Some(109));
        for (name, why) in [("root", "is root"), ("toor", "is root"), ("nobody", "no usable OS user")] {
            let err = check(config(false, Some(name)).engine().unwrap(), true, fake).unwrap_err();
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }

    #[test]
    fn the_mysql_section_has_its_own_os_user() {
        let err = check(config(true, None).engine().unwrap(), true, fake).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mysql.os_user: the agent runs as root and MariaDB never does: set mysql.os_user (e.g. mysql) or \
             run the agent as that user"
        );
        let err = check(config(true, Some("root")).engine().unwrap(), true, fake).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mysql.os_user: \"root\" is root (uid 0): MariaDB never runs as root; use e.g. mysql"
        );
        assert_eq!(
            check(config(true, Some("mysql")).engine().unwrap(), true, fake).unwrap().map(|u| u.uid),
            Some(110)
        );
    }

    #[test]
    fn the_real_lookup_finds_root_and_refuses_it() {
        let err = check(config(false, Some("root")).engine().unwrap(), true, OsUser::lookup).unwrap_err();
        assert!(err.to_string().contains("is root"), "{err}");
    }
}
