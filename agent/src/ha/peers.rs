//! Asking the other members for their status over their REST API, during the leader race.

use crate::db::Role;
use crate::member::MemberRecord;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::task::JoinSet;
use vigil_api::{BasicAuth, NodeStatus};
use vigil_dcs::{FencingToken, MemberName};
use vigil_policy::PeerView;

/// How long a peer may take to answer a status request during the leader race.
/// A peer's agent answers from memory in milliseconds; one cut off or stopped never does, and waiting for
/// it is write downtime.
const PEER_TIMEOUT: Duration = Duration::from_millis(500);

/// Asks every member of `records` but `me` for its status, in parallel, [`PEER_TIMEOUT`] each, with
/// `auth` if the peers' REST API wants it.
pub(super) async fn probe_peers(
    http: &reqwest::Client,
    auth: Option<&BasicAuth>,
    me: &MemberName,
    records: BTreeMap<MemberName, MemberRecord>,
) -> Vec<PeerView> {
    let mut probes = JoinSet::new();
    for (name, record) in records.into_iter().filter(|(n, _)| n != me) {
        let (http, auth) = (http.clone(), auth.cloned());
        probes.spawn(async move {
            let answer = vigil_api::client::status(&http, &record.api_url, auth.as_ref(), PEER_TIMEOUT).await;
            peer_view(name, answer.ok())
        });
    }
    probes.join_all().await
}

/// The client for peers' REST API; with unusable TLS files (checked when the configuration was read)
/// a plain one, whose HTTPS calls then fail and are logged.
pub(super) fn peer_client(tls: &vigil_api::tls::ClientTls) -> reqwest::Client {
    vigil_api::tls::client(tls, "ctl").unwrap_or_else(|e| {
        tracing::error!(error = %e, "no HTTPS client for the peers' REST API");
        reqwest::Client::new()
    })
}

/// What member `name` answered (`None`: nothing in time).
fn peer_view(name: MemberName, status: Option<NodeStatus>) -> PeerView {
    match status {
        Some(s) => PeerView {
            name,
            reachable: true,
            running: s.state == "running",
            role: match s.role.as_str() {
                "primary" => Some(Role::Primary),
                "replica" => Some(Role::Replica),
                _ => None,
            },
            position: s.vigil.position,
            streaming: s.replication_state.as_deref() == Some("streaming"),
            observed_leaderless: s.vigil.observed_leaderless,
            leaderless_after: s.vigil.leaderless_after.map(FencingToken),
            // One whose promotion was just refused keeps out of the race: no rival to wait for.
            can_fail_over: s.can_fail_over() && s.vigil.promotion_refused.is_none(),
            failover_priority: s.failover_priority(),
        },
        None => PeerView::unreachable(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_whose_promotion_was_refused_is_no_rival() {
        let name = MemberName::new("b").expect("name");
        let mut status =
            NodeStatus { state: "running".into(), role: "replica".into(), ..NodeStatus::default() };
        assert!(peer_view(name.clone(), Some(status.clone())).can_fail_over);
        status.vigil.promotion_refused = Some("its promotion failed repeatedly less than ttl ago".into());
        assert!(!peer_view(name, Some(status)).can_fail_over);
    }
}
