//! Where the configuration files live (`postgresql.config_dir`, else the data directory) and the base
//! configuration the generated postgresql.conf includes first: `postgresql.custom_conf`, else
//! `postgresql.base.conf`, which an existing postgresql.conf not written by the agent becomes (initdb's,
//! Debian's, or one written by Patroni, whose data directories already hold postgresql.base.conf).

use super::{files, PostgresSettings};
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

/// The base configuration's name, next to postgresql.conf (Patroni's).
const BASE_CONF: &str = "postgresql.base.conf";

/// The directory of postgresql.conf, pg_hba.conf and pg_ident.conf.
pub(crate) fn config_dir(s: &PostgresSettings) -> &Path {
    s.config_dir.as_deref().unwrap_or(&s.data_dir)
}

/// postgresql.conf.
pub(crate) fn postgresql_conf(s: &PostgresSettings) -> PathBuf {
    config_dir(s).join("postgresql.conf")
}

/// pg_hba.conf.
pub(crate) fn pg_hba_conf(s: &PostgresSettings) -> PathBuf {
    config_dir(s).join("pg_hba.conf")
}

/// pg_ident.conf.
pub(crate) fn pg_ident_conf(s: &PostgresSettings) -> PathBuf {
    config_dir(s).join("pg_ident.conf")
}

/// The file the generated postgresql.conf includes, if any: `custom_conf`, else postgresql.base.conf. An
/// existing postgresql.conf that the agent did not write (its first line is not `header`) is first kept
/// as postgresql.base.conf, unless one exists already or `custom_conf` is set.
pub(crate) fn base_conf(s: &PostgresSettings, header: &str) -> io::Result<Option<PathBuf>> {
    if let Some(custom) = &s.custom_conf {
        return Ok(Some(custom.clone()));
    }
    let base = config_dir(s).join(BASE_CONF);
    if base.exists() {
        return Ok(Some(base));
    }
    let conf = postgresql_conf(s);
    if !is_foreign(&conf, header)? {
        return Ok(None);
    }
    fs::rename(&conf, &base).map_err(|e| files::with_path(&conf, e))?;
    tracing::info!(member = %s.name, from = %conf.display(), to = %base.display(), "existing configuration kept as the base the generated postgresql.conf includes");
    Ok(Some(base))
}

/// Whether `conf` exists as a plain file whose beginning is not `header` (a link planted there is
/// nobody's configuration: it is replaced).
fn is_foreign(conf: &Path, header: &str) -> io::Result<bool> {
    match fs::symlink_metadata(conf) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(files::with_path(conf, e)),
    }
    // O_NONBLOCK: a FIFO swapped in meanwhile reads as nothing instead of blocking the agent.
    let file = files::open_nofollow(conf, fs::OpenOptions::new().read(true), libc::O_NONBLOCK)?;
    let mut start = Vec::with_capacity(header.len());
    file.take(header.len() as u64).read_to_end(&mut start).map_err(|e| files::with_path(conf, e))?;
    Ok(start != header.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_postgresql_conf_becomes_the_base_once_and_the_agents_own_never() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = super::super::render::tests::settings();
        s.data_dir = dir.path().to_path_buf();
        let header = "# ours\n";
        assert_eq!(base_conf(&s, header).unwrap(), None, "nothing there");
        fs::write(postgresql_conf(&s), "# ours\nport = 1\n").unwrap();
        assert_eq!(base_conf(&s, header).unwrap(), None, "the agent's own file is no base");
        fs::write(postgresql_conf(&s), "max_connections = 50\n").unwrap();
        let base = dir.path().join(BASE_CONF);
        assert_eq!(base_conf(&s, header).unwrap(), Some(base.clone()));
        assert_eq!(fs::read_to_string(&base).unwrap(), "max_connections = 50\n");
        assert!(!postgresql_conf(&s).exists());
        // Patroni's layout: its own postgresql.conf over an existing base, which stays as it is.
        fs::write(postgresql_conf(&s), "# Patroni's\ninclude 'postgresql.base.conf'\n").unwrap();
        assert_eq!(base_conf(&s, header).unwrap(), Some(base.clone()));
        assert_eq!(fs::read_to_string(&base).unwrap(), "max_connections = 50\n");

        s.config_dir = Some(dir.path().join("etc"));
        assert_eq!(pg_hba_conf(&s), dir.path().join("etc/pg_hba.conf"));
        s.custom_conf = Some("/etc/custom.conf".into());
        assert_eq!(base_conf(&s, header).unwrap(), Some(PathBuf::from("/etc/custom.conf")));
    }
}
