//! [`OsUser`]: the OS account PostgreSQL runs as when the agent runs as root, looked up in `/etc/passwd`.

use super::ConfigError;

/// The passwd database read for `postgresql.os_user`.
pub const PASSWD_FILE: &str = "/etc/passwd";

const KEY: &str = "postgresql.os_user";

/// An OS account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    /// The login name.
    pub name: String,
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
}

/// Finds `name` in the text of a passwd file (`name:x:uid:gid:gecos:home:shell` lines).
pub fn lookup(passwd: &str, name: &str) -> Option<OsUser> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.trim().parse().ok()?;
        let gid = fields.next()?.trim().parse().ok()?;
        Some(OsUser { name: name.to_string(), uid, gid })
    })
}

/// Resolves `os_user` against a passwd text: it must exist and must not be root (uid 0).
pub(crate) fn resolve(passwd: &str, name: &str) -> Result<OsUser, ConfigError> {
    let user = lookup(passwd, name).ok_or_else(|| {
        ConfigError::invalid(KEY, format!("there is no OS user {name:?} (not found in {PASSWD_FILE})"))
    })?;
    if user.uid == 0 {
        return Err(ConfigError::invalid(
            KEY,
            format!("{name:?} is root (uid 0): PostgreSQL never runs as root; use e.g. postgres"),
        ));
    }
    Ok(user)
}

/// The check behind `Config::check_os_user`: root needs an `os_user`, which must resolve.
pub(crate) fn check(
    os_user: Option<&str>,
    running_as_root: bool,
    passwd: impl FnOnce() -> Result<String, ConfigError>,
) -> Result<Option<OsUser>, ConfigError> {
    match os_user {
        None if running_as_root => Err(ConfigError::invalid(
            KEY,
            "the agent runs as root and PostgreSQL never does: set postgresql.os_user (e.g. postgres) or \
             run the agent as that user",
        )),
        None => Ok(None),
        Some(name) => resolve(&passwd()?, name).map(Some),
    }
}

/// Reads [`PASSWD_FILE`].
pub(crate) fn read_passwd() -> Result<String, ConfigError> {
    std::fs::read_to_string(PASSWD_FILE)
        .map_err(|e| ConfigError::invalid(KEY, format!("cannot read {PASSWD_FILE} to look the user up: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          toor:x:0:0::/root:/bin/sh\n\
                          postgres:x:109:117:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n\
                          broken:x:notanumber:1::/:/bin/false\n";

    fn passwd() -> Result<String, ConfigError> {
        Ok(PASSWD.to_string())
    }

    #[test]
    fn looks_users_up() {
        assert_eq!(lookup(PASSWD, "postgres"), Some(OsUser { name: "postgres".into(), uid: 109, gid: 117 }));
        assert_eq!(lookup(PASSWD, "post"), None);
        assert_eq!(lookup(PASSWD, "broken"), None);
    }

    #[test]
    fn root_needs_a_non_root_os_user_that_exists() {
        let err = check(None, true, passwd).unwrap_err();
        assert_eq!(err.key(), Some(KEY));
        assert!(err.to_string().contains("set postgresql.os_user (e.g. postgres)"), "{err}");
        assert_eq!(check(None, false, passwd).unwrap(), None);
        assert_eq!(check(Some("postgres"), true, passwd).unwrap().map(|u| u.uid), Some(109));
        for (name, why) in [("root", "is root"), ("toor", "is root"), ("nobody", "there is no OS user")] {
            let err = check(Some(name), true, passwd).unwrap_err();
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
    }
}
