//! How a replica and its primary tell that the other is alive, from one figure: the upstream timeout (the
//! lease ttl). A replica counts as streaming only while its WAL receiver has *heard* from the primary (WAL
//! or a keepalive) within that time; a socket alone proves nothing, since a cut link keeps it open until a
//! timeout ends it.
//!
//! - `wal_receiver_timeout` = T: the receiver asks its sender for a keepalive after T/2 of silence, so a
//!   live primary is heard from at least every T/2 (plus a round trip); after T of silence the receiver
//!   ends the connection itself.
//! - `wal_sender_timeout` = 2T: the primary drops a replica silent that long, so the replication slot of a
//!   replica cut off is free for it again soon after the link comes back.
//! - `primary_conninfo`: `connect_timeout`, TCP keepalives and `tcp_user_timeout` of about T, so that
//!   neither connecting to a silent host nor a half-open connection outlasts a lease.

use std::time::Duration;

/// The upstream timeout until the agent sets one: the default lease ttl.
pub(crate) const DEFAULT: Duration = crate::config::DEFAULT_TTL;

/// Server parameters the adapter owns for this; their values for the upstream timeout `t`.
pub(crate) fn server_settings(t: Duration) -> [(&'static str, String); 2] {
    [("wal_receiver_timeout", millis(t)), ("wal_sender_timeout", millis(t.saturating_mul(2)))]
}

/// The names of [`server_settings`].
pub(crate) const OWNED: [&str; 2] = ["wal_receiver_timeout", "wal_sender_timeout"];

/// `primary_conninfo` options for the upstream timeout `t`: libpq's `connect_timeout` (whole seconds, at
/// least 2, as libpq enforces), keepalives probing after half of `t` and `tcp_user_timeout` of `t`.
pub(crate) fn conninfo_options(t: Duration) -> [(&'static str, String); 6] {
    let secs = |d: Duration, min: u64| d.as_secs().max(min).to_string();
    [
        ("connect_timeout", secs(t, 2)),
        ("keepalives", "1".to_owned()),
        ("keepalives_idle", secs(t / 2, 1)),
        ("keepalives_interval", "1".to_owned()),
        ("keepalives_count", "2".to_owned()),
        ("tcp_user_timeout", t.as_millis().max(1).to_string()),
    ]
}

/// Whether a WAL receiver in `status`, which last heard from its sender `silence` ago, streams: it says so
/// and heard from it less than `t` ago.
pub(crate) fn streams(status: Option<&str>, silence: Option<Duration>, t: Duration) -> bool {
    status == Some("streaming") && silence.is_some_and(|s| s < t)
}

/// A duration as a PostgreSQL time value in milliseconds (`3000ms`), at least 1 ms (0 would disable).
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().clamp(1, i32::MAX as u128))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_the_ttl() {
        let t = Duration::from_secs(3);
        assert_eq!(
            server_settings(t),
            [("wal_receiver_timeout", "3000ms".to_owned()), ("wal_sender_timeout", "6000ms".to_owned())]
        );
        let options = conninfo_options(t);
        assert!(options.contains(&("connect_timeout", "3".to_owned())));
        assert!(options.contains(&("keepalives_idle", "1".to_owned())));
        assert!(options.contains(&("tcp_user_timeout", "3000".to_owned())));
        // libpq treats a connect_timeout below 2 s as 2 s; a huge ttl stays a valid value.
        assert!(conninfo_options(Duration::from_millis(500)).contains(&("connect_timeout", "2".to_owned())));
        assert_eq!(server_settings(Duration::MAX)[1].1, format!("{}ms", i32::MAX));
    }

    #[test]
    fn a_receiver_streams_only_while_it_hears_from_its_sender() {
        let t = Duration::from_secs(3);
        let heard = |ms| Some(Duration::from_millis(ms));
        assert!(streams(Some("streaming"), heard(1_400), t));
        assert!(!streams(Some("streaming"), heard(3_000), t), "an open socket that is silent");
        assert!(!streams(Some("streaming"), None, t));
        assert!(!streams(Some("starting"), heard(10), t));
        assert!(!streams(None, heard(10), t));
    }
}
