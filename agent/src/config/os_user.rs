//! `postgresql.os_user`: the OS account PostgreSQL runs as when the agent runs as root.

use super::ConfigError;
use crate::os_user::OsUser;
use std::io;

const KEY: &str = "postgresql.os_user";

/// The check behind `Config::check_os_user`: as root an `os_user` is required; when given it must exist
/// (looked up with `lookup`) and must not be root (uid 0).
pub(crate) fn check(
    os_user: Option<&str>,
    running_as_root: bool,
    lookup: impl FnOnce(&str) -> io::Result<OsUser>,
) -> Result<Option<OsUser>, ConfigError> {
    let name = match os_user {
        None if running_as_root => return Err(ConfigError::invalid(
            KEY,
            "the agent runs as root and PostgreSQL never does: set postgresql.os_user (e.g. postgres) or \
                 run the agent as that user",
        )),
        None => return Ok(None),
        Some(name) => name,
    };
    let user =
        lookup(name).map_err(|e| ConfigError::invalid(KEY, format!("no usable OS user {name:?}: {e}")))?;
    if user.uid == 0 {
        return Err(ConfigError::invalid(
            KEY,
            format!("{name:?} is root (uid 0): PostgreSQL never runs as root; use e.g. postgres"),
        ));
    }
    Ok(Some(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fake(name: &str) -> io::Result<OsUser> {
        let uid = match name {
            "postgres" => 109,
            "root" | "toor" => 0,
            _ => return Err(io::Error::new(io::ErrorKind::NotFound, format!("no OS user named {name:?}"))),
        };
        Ok(OsUser { name: name.into(), uid, gid: uid, groups: Vec::new(), home: PathBuf::from("/") })
    }

    #[test]
    fn root_needs_a_non_root_os_user_that_exists() {
        let err = check(None, true, fake).unwrap_err();
        assert_eq!(err.key(), Some(KEY));
        assert!(err.to_string().contains("set postgresql.os_user (e.g. postgres)"), "{err}");
        assert_eq!(check(None, false, fake).unwrap(), None);
        assert_eq!(check(Some("postgres"), true, fake).unwrap().map(|u| u.uid), Some(109));
        for (name, why) in [("root", "is root"), ("toor", "is root"), ("nobody", "no usable OS user")] {
            let err = check(Some(name), true, fake).unwrap_err();
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }

    #[test]
    fn the_real_lookup_finds_root_and_refuses_it() {
        let err = check(Some("root"), true, OsUser::lookup).unwrap_err();
        assert!(err.to_string().contains("is root"), "{err}");
    }
}
