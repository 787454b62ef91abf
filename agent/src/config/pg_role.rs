//! `postgresql.authentication.{superuser,replication,rewind}`: a role, its password, and libpq's TLS and
//! GSSAPI options (Patroni's `ssl*`, `gssencmode`, `channel_binding`) for the connections the agent's
//! tools make as that role to other members.

use super::choice::choice_enum;
use super::{scalar, ConfigError};
use serde::Deserialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use vigil_api::Secret;

choice_enum! {
    /// libpq's `sslmode`.
    pub enum SslMode {
        /// No TLS.
        Disable = "disable",
        /// Plain first, TLS if the server insists.
        Allow = "allow",
        /// TLS if the server offers it (libpq's default).
        Prefer = "prefer",
        /// TLS, the server's certificate not checked (checked as `verify-ca` when `sslrootcert` exists).
        Require = "require",
        /// TLS, the server's certificate signed by `sslrootcert`.
        VerifyCa = "verify-ca",
        /// As `verify-ca`, and the certificate names the host connected to.
        VerifyFull = "verify-full",
    }
}

choice_enum! {
    /// libpq's `gssencmode`.
    pub enum GssEncMode {
        /// No GSSAPI encryption.
        Disable = "disable",
        /// GSSAPI encryption when credentials are at hand (libpq's default).
        Prefer = "prefer",
        /// GSSAPI encryption or no connection.
        Require = "require",
    }
}

choice_enum! {
    /// libpq's `channel_binding`.
    pub enum ChannelBinding {
        /// Never.
        Disable = "disable",
        /// When the server offers SCRAM over TLS (libpq's default).
        Prefer = "prefer",
        /// SCRAM bound to the TLS channel, or no connection: a server without the certificate's key cannot
        /// authenticate.
        Require = "require",
    }
}

/// `postgresql.authentication.<role>`: the role's name and password, and how pg_basebackup, pg_rewind,
/// psql and the replica's WAL receiver connect as it to another member. Options left out take libpq's
/// defaults. libpq reads the files as the OS user PostgreSQL runs as (`postgresql.os_user` when the
/// agent runs as root), so they must be readable by that user; libpq refuses an `sslkey` that others may
/// read: mode 0600 (or less) owned by that user, or 0640 owned by root.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgRole {
    /// The role name.
    #[serde(deserialize_with = "scalar::string")]
    pub username: String,
    /// Its password (written to the password file, never into a connection string).
    #[serde(deserialize_with = "scalar::string")]
    pub password: Secret,
    /// Whether and how TLS is used (`verify-full` or `verify-ca` with `sslrootcert`: a host that is not
    /// a member cannot pose as one and be sent a password).
    #[serde(default)]
    pub sslmode: Option<SslMode>,
    /// The client certificate (PEM), for `cert` authentication or `clientcert` in pg_hba.conf.
    #[serde(default)]
    pub sslcert: Option<PathBuf>,
    /// The client certificate's private key (PEM; see the mode rule above).
    #[serde(default)]
    pub sslkey: Option<PathBuf>,
    /// The passphrase of an encrypted `sslkey`. It is part of the connection strings, so it shows in
    /// the command lines of pg_basebackup, pg_rewind and psql: prefer an unencrypted key only the OS
    /// user can read.
    #[serde(default, deserialize_with = "optional_secret")]
    pub sslpassword: Option<Secret>,
    /// The CA certificates (PEM) the server's certificate must be signed by.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// A certificate revocation list (PEM).
    #[serde(default)]
    pub sslcrl: Option<PathBuf>,
    /// A directory of certificate revocation lists (`openssl rehash` names).
    #[serde(default)]
    pub sslcrldir: Option<PathBuf>,
    /// Whether GSSAPI encryption is used.
    #[serde(default)]
    pub gssencmode: Option<GssEncMode>,
    /// Whether SCRAM authentication is bound to the TLS channel.
    #[serde(default)]
    pub channel_binding: Option<ChannelBinding>,
}

fn optional_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    scalar::string(d).map(Some)
}

impl PgRole {
    /// The libpq keywords and values of the options that are set, in a fixed order (`sslpassword`
    /// included: keep the result out of logs).
    pub fn libpq_options(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        [
            ("sslmode", self.sslmode.map(|m| m.to_string())),
            ("sslcert", path(&self.sslcert)),
            ("sslkey", path(&self.sslkey)),
            ("sslpassword", self.sslpassword.as_ref().map(|s| s.expose().to_owned())),
            ("sslrootcert", path(&self.sslrootcert)),
            ("sslcrl", path(&self.sslcrl)),
            ("sslcrldir", path(&self.sslcrldir)),
            ("gssencmode", self.gssencmode.map(|m| m.to_string())),
            ("channel_binding", self.channel_binding.map(|m| m.to_string())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// Checks the role as `postgresql.authentication.<role>`: a user name; absolute paths to files
    /// (a directory for `sslcrldir`) the agent can open; an `sslkey` with a mode libpq accepts.
    pub(crate) fn validate(&self, role: &str) -> Result<(), ConfigError> {
        let key = |name: &str| format!("postgresql.authentication.{role}.{name}");
        if self.username.is_empty() {
            return Err(ConfigError::invalid(key("username"), "must not be empty"));
        }
        let files = [
            ("sslcert", &self.sslcert),
            ("sslkey", &self.sslkey),
            ("sslrootcert", &self.sslrootcert),
            ("sslcrl", &self.sslcrl),
        ];
        for (name, path) in files {
            if let Some(path) = path {
                readable_file(path).map_err(|why| ConfigError::invalid(key(name), why))?;
            }
        }
        if let Some(dir) = &self.sslcrldir {
            readable_dir(dir).map_err(|why| ConfigError::invalid(key("sslcrldir"), why))?;
        }
        if let Some(path) = &self.sslkey {
            let meta =
                std::fs::metadata(path).map_err(|e| ConfigError::invalid(key("sslkey"), e.to_string()))?;
            key_mode(meta.uid(), meta.mode())
                .map_err(|why| ConfigError::invalid(key("sslkey"), format!("{}: {why}", path.display())))?;
        }
        Ok(())
    }
}

/// An absolute path to a regular file the agent can open.
fn readable_file(path: &Path) -> Result<(), String> {
    absolute(path)?;
    if !path.is_file() {
        return Err(format!("{} does not exist or is not a file", path.display()));
    }
    std::fs::File::open(path).map(drop).map_err(|e| format!("{}: {e}", path.display()))
}

/// An absolute path to a directory the agent can list.
fn readable_dir(path: &Path) -> Result<(), String> {
    absolute(path)?;
    if !path.is_dir() {
        return Err(format!("{} does not exist or is not a directory", path.display()));
    }
    std::fs::read_dir(path).map(drop).map_err(|e| format!("{}: {e}", path.display()))
}

fn absolute(path: &Path) -> Result<(), String> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(format!("{:?} is not an absolute path", path.display().to_string()))
    }
}

/// libpq's rule for a private key file: mode 0600 or less, or 0640 or less when root owns it.
fn key_mode(uid: u32, mode: u32) -> Result<(), String> {
    let (group_other, root_allows) = (mode & 0o077, 0o040);
    if group_other == 0 || (uid == 0 && group_other & !root_allows == 0) {
        return Ok(());
    }
    Err(format!(
        "has mode {:04o}: libpq refuses it; make it 0600 owned by the OS user PostgreSQL runs as (or 0640 \
         owned by root, group that user)",
        mode & 0o7777
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(yaml: &str) -> PgRole {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn options_render_in_libpq_keywords_and_order() {
        let r = role(
            "{username: rep, password: p, channel_binding: require, sslrootcert: /ca.pem, sslmode: VERIFY-FULL, \
             sslpassword: 1234, gssencmode: disable}",
        );
        assert_eq!(
            r.libpq_options(),
            [
                ("sslmode", "verify-full".to_owned()),
                ("sslpassword", "1234".to_owned()),
                ("sslrootcert", "/ca.pem".to_owned()),
                ("gssencmode", "disable".to_owned()),
                ("channel_binding", "require".to_owned()),
            ]
        );
        assert!(role("{username: rep, password: p}").libpq_options().is_empty());
        assert!(!format!("{r:?}").contains("1234"));
    }

    #[test]
    fn refuses_unknown_modes() {
        for (yaml, allowed) in [
            ("sslmode: verify", "disable, allow, prefer, require, verify-ca, verify-full"),
            ("channel_binding: allow", "disable, prefer, require"),
            ("gssencmode: true", "disable, prefer, require"),
        ] {
            let err = serde_norway::from_str::<PgRole>(&format!("{{username: u, password: p, {yaml}}}"));
            let err = err.unwrap_err().to_string();
            assert!(err.contains(&format!("is not one of {allowed}")), "{err}");
        }
    }

    #[test]
    fn files_must_be_absolute_and_exist() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let ok = role(&format!("{{username: u, password: p, sslrootcert: {}}}", ca.display()));
        ok.validate("replication").unwrap();
        let cases = [
            ("sslrootcert: ca.pem", "sslrootcert", "\"ca.pem\" is not an absolute path"),
            (
                "sslcrl: /nonexistent/crl.pem",
                "sslcrl",
                "/nonexistent/crl.pem does not exist or is not a file",
            ),
            ("sslcert: /", "sslcert", "/ does not exist or is not a file"),
            ("sslcrldir: /nonexistent", "sslcrldir", "/nonexistent does not exist or is not a directory"),
        ];
        for (yaml, name, why) in cases {
            let err =
                role(&format!("{{username: u, password: p, {yaml}}}")).validate("replication").unwrap_err();
            assert_eq!(err.to_string(), format!("postgresql.authentication.replication.{name}: {why}"));
        }
        let err = role("{username: '', password: p}").validate("rewind").unwrap_err();
        assert_eq!(err.to_string(), "postgresql.authentication.rewind.username: must not be empty");
    }

    #[test]
    fn a_key_others_can_read_is_refused_as_libpq_would() {
        use std::os::unix::fs::PermissionsExt;
        assert!(key_mode(1000, 0o100600).is_ok() && key_mode(1000, 0o100400).is_ok());
        assert!(key_mode(0, 0o100640).is_ok());
        assert!(key_mode(1000, 0o100640).is_err() && key_mode(0, 0o100660).is_err());
        assert!(key_mode(0, 0o100604).is_err());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client.key");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let r = role(&format!("{{username: u, password: p, sslkey: {}}}", key.display()));
        let err = r.validate("superuser").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "postgresql.authentication.superuser.sslkey: {}: has mode 0644",
                key.display()
            )),
            "{err}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        r.validate("superuser").unwrap();
    }
}
