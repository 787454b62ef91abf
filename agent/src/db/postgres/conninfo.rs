//! libpq connection strings to other members, for the WAL receiver (`primary_conninfo`), pg_basebackup,
//! pg_rewind and psql: host, port, user, the password file, what the caller adds, then the role's TLS
//! and GSSAPI options ([`PeerOptions`]). The password never appears in them: libpq reads it from the
//! password file, and only after the TLS handshake those options ask for.

use super::Credentials;
use crate::db::Upstream;
use std::fmt;
use std::path::Path;

/// libpq options for connecting as a role to another member, beyond host, port, user and the password
/// file: `sslmode`, `sslrootcert`, … (`postgresql.authentication.<role>`). `Debug` masks `sslpassword`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PeerOptions(pub Vec<(&'static str, String)>);

impl fmt::Debug for PeerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.iter().map(|(k, v)| (k, if *k == "sslpassword" { "***" } else { v.as_str() }));
        f.debug_map().entries(shown).finish()
    }
}

/// The connection string to `up` as `role`, with `extra` options (`dbname`, `application_name`, timeouts)
/// before the role's own.
pub(crate) fn to_member(
    up: &Upstream,
    role: &Credentials,
    pgpass: &Path,
    extra: &[(&str, String)],
) -> String {
    let fixed = [
        ("host", up.host.clone()),
        ("port", up.port.to_string()),
        ("user", role.username.clone()),
        ("passfile", pgpass.to_string_lossy().into_owned()),
    ];
    let extra = extra.iter().map(|(k, v)| (*k, v.clone()));
    let own = role.peer_options.0.iter().cloned();
    fixed
        .into_iter()
        .chain(extra)
        .chain(own)
        .map(|(k, v)| format!("{k}={}", quote(&v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The connection string to the member's own server at `host` (a socket directory or an address) as
/// `user`, in database `postgres`, with the password file.
pub(crate) fn local(host: &str, port: u16, user: &str, pgpass: &Path) -> String {
    let options = [("host", host), ("port", &port.to_string()), ("user", user), ("dbname", "postgres")];
    let passfile = pgpass.to_string_lossy();
    options
        .into_iter()
        .chain([("passfile", passfile.as_ref())])
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A libpq connection string value: single-quoted, with `\` and `'` escaped by a backslash.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carries_the_roles_options_after_the_callers() {
        let role = Credentials {
            username: "rep".into(),
            password: "never shown".into(),
            peer_options: PeerOptions(vec![
                ("sslmode", "verify-full".into()),
                ("sslrootcert", "/etc/ssl/it's ca.pem".into()),
                ("sslpassword", "k\\ey".into()),
            ]),
        };
        let up = Upstream {
            name: "n2".into(),
            host: "db-2.example".into(),
            port: 5433,
            api_url: String::new(),
            slot: Default::default(),
        };
        let conninfo = to_member(&up, &role, Path::new("/var/lib/pgpass"), &[("dbname", "postgres".into())]);
        assert_eq!(
            conninfo,
            "host='db-2.example' port='5433' user='rep' passfile='/var/lib/pgpass' dbname='postgres' \
             sslmode='verify-full' sslrootcert='/etc/ssl/it\\'s ca.pem' sslpassword='k\\\\ey'"
        );
        assert!(!conninfo.contains("never shown"));
        assert_eq!(
            format!("{:?}", role.peer_options),
            r#"{"sslmode": "verify-full", "sslrootcert": "/etc/ssl/it's ca.pem", "sslpassword": "***"}"#
        );
    }
}
