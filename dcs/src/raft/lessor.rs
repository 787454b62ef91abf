//! The lessor: it expires the leader lease and member keys, by monotonic clocks only.
//!
//! Every node times every expiry target (one version of the lease or of a key with a ttl) from the
//! instant it first saw that version applied locally. Only the Raft leader acts on the timers, and only
//! after a read-index round has confirmed its leadership in the current term (so it has applied every
//! committed renewal): when a timer runs out it proposes `Expire(target)`, which the state machine applies
//! only if that exact version is still current.
//!
//! Why expiry can never come before the holder's own deadline: a version is applied on a node only after
//! it was committed, which is after the holder sent the request, so `first_seen + ttl` is later than the
//! holder's `sent_at + ttl - safety_margin` on any node. A new Raft leader keeps the instants it recorded as
//! a follower instead of restarting every timer at its election: still never early, and a failover of a
//! node that was both primary and Raft leader does not wait a whole extra ttl.

use super::op_timeout::OpTimeout;
use super::Raft;
use crate::command::{Command, Outcome};
use crate::record::ExpiryTarget;
use crate::state::ClusterState;
use openraft::ServerState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The running lessor task of one node.
pub(crate) struct Lessor {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Lessor {
    /// Starts the lessor of the node `raft`, following the applied state `state`.
    pub(crate) fn spawn(
        raft: Raft,
        state: watch::Receiver<Arc<ClusterState>>,
        op_timeout: OpTimeout,
    ) -> Lessor {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(raft, state, op_timeout, stopped));
        Lessor { stop, task }
    }

    /// Stops the task and waits for it.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "lessor task ended abnormally");
        }
    }
}

/// When each current expiry target runs out, timed from the instant this node first saw it.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    deadlines: HashMap<ExpiryTarget, Instant>,
}

impl Timers {
    /// Forgets targets that are no longer current in `state` and starts a timer for each new one at `now`.
    pub(crate) fn sync(&mut self, state: &ClusterState, now: Instant) {
        let current = state.expiry_targets();
        self.deadlines.retain(|target, _| current.iter().any(|(t, _)| t == target));
        for (target, ttl) in current {
            // Capped: a ttl in the log beyond a day (no agent asks for one) must not overflow the clock.
            self.deadlines.entry(target).or_insert(super::instant_after(now, ttl));
        }
    }

    /// The targets whose timer has run out at `now`.
    pub(crate) fn due(&self, now: Instant) -> Vec<ExpiryTarget> {
        self.deadlines.iter().filter(|(_, at)| **at <= now).map(|(t, _)| t.clone()).collect()
    }

    /// When this node first saw `target` (its deadline less `ttl`), if it times it.
    fn first_seen(&self, target: &ExpiryTarget, ttl: Duration) -> Option<Instant> {
        self.deadlines.get(target).and_then(|deadline| deadline.checked_sub(ttl))
    }

    /// The earliest deadline, if any.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }
}

/// Pause after a failed expiry proposal or leadership check.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long to sleep when nothing is timed.
const IDLE: Duration = Duration::from_secs(3600);

async fn run(
    raft: Raft,
    mut state: watch::Receiver<Arc<ClusterState>>,
    op_timeout: OpTimeout,
    mut stop: watch::Receiver<bool>,
) {
    let mut timers = Timers::default();
    let mut server = raft.server_metrics();
    // The term in which a read-index round confirmed this node as leader: only then does it expire.
    let mut confirmed_term: Option<u64> = None;
    loop {
        let now = Instant::now();
        let applied = state.borrow_and_update().clone();
        timers.sync(&applied, now);
        let (leading, term) = {
            let m = server.borrow_and_update();
            (m.state == ServerState::Leader && m.current_leader == Some(m.id), m.vote.leader_id().term)
        };
        let mut wake = now + IDLE;
        if !leading {
            confirmed_term = None;
        } else if confirmed_term != Some(term) {
            if matches!(tokio::time::timeout(op_timeout.get(), raft.ensure_linearizable()).await, Ok(Ok(_))) {
                tracing::info!(term, "lessor active: this node is the raft leader and times every lease");
                confirmed_term = Some(term);
                continue;
            }
            wake = now + RETRY_PAUSE;
        } else {
            let due = timers.due(now);
            if !due.is_empty() && !expire(&raft, &applied, due, &timers, op_timeout.get()).await {
                wake = now + RETRY_PAUSE;
            } else if let Some(next) = timers.next() {
                wake = wake.min(next);
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            changed = state.changed() => if changed.is_err() { return },
            changed = server.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Proposes an expiry for each due target; false when a proposal failed (to be retried). A lease's
/// expiry is also appended to the event log.
async fn expire(
    raft: &Raft,
    state: &ClusterState,
    due: Vec<ExpiryTarget>,
    timers: &Timers,
    op_timeout: Duration,
) -> bool {
    let mut all_ok = true;
    for target in due {
        let proposal = raft.client_write(Command::Expire(target.clone()));
        match tokio::time::timeout(op_timeout, proposal).await {
            Ok(Ok(response)) => {
                log_expiry(state, &target, &response.data);
                if let Some(event) = expiry_event(state, &target, &response.data, timers) {
                    record(raft, event, op_timeout).await;
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(?target, error = %e, "expiry not proposed");
                all_ok = false;
            }
            Err(_) => {
                tracing::warn!(?target, timeout = ?op_timeout, "expiry did not commit in time (no quorum?)");
                all_ok = false;
            }
        }
    }
    all_ok
}

fn log_expiry(state: &ClusterState, target: &ExpiryTarget, outcome: &Outcome) {
    match (target, outcome) {
        (ExpiryTarget::Leader { token, renewed_at }, Outcome::Expired) => {
            let holder = state.leader.as_ref().map(|l| l.holder.to_string()).unwrap_or_default();
            tracing::info!(%holder, %token, %renewed_at, "leader lease expired: not renewed within its ttl");
        }
        (ExpiryTarget::Key { key, version }, Outcome::Expired) => {
            tracing::info!(%key, %version, "key expired: not written again within its ttl");
        }
        _ => tracing::debug!(?target, ?outcome, "expiry was stale: renewed meanwhile"),
    }
}

/// The event of a lease's expiry: its holder and token, the holder's last renewal (as this node saw it
/// applied) and how long ago it was. `None` for a key's expiry or a stale one.
fn expiry_event(
    state: &ClusterState,
    target: &ExpiryTarget,
    outcome: &Outcome,
    timers: &Timers,
) -> Option<vigil_api::Event> {
    let (ExpiryTarget::Leader { token, .. }, Outcome::Expired) = (target, outcome) else { return None };
    let lease = state.leader.as_ref()?;
    let ttl = Duration::from_millis(lease.ttl_ms);
    let since_renewal = timers.first_seen(target, ttl).map_or(ttl, |seen| seen.elapsed());
    let reason = format!("not renewed within its ttl ({} ms)", lease.ttl_ms);
    let event = vigil_api::Event::new(
        vigil_api::EventKind::LeaseExpired,
        lease.holder.as_str(),
        SystemTime::now(),
        reason,
    );
    Some(event.token(Some(token.0)).timing(crate::events::SINCE_LAST_RENEWAL, since_renewal))
}

/// Appends `event` to the event log; a failure is logged (the expiry itself is done).
async fn record(raft: &Raft, event: vigil_api::Event, op_timeout: Duration) {
    let event = match serde_json::to_value(&event) {
        Ok(event) => event,
        Err(e) => return tracing::warn!(error = %e, "expiry event not recorded"),
    };
    let proposal = raft.client_write(Command::AppendEvent { event });
    match tokio::time::timeout(op_timeout, proposal).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "expiry event not recorded"),
        Err(_) => tracing::warn!(timeout = ?op_timeout, "expiry event not recorded: no commit in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Condition;
    use crate::record::Key;
    use vigil_fencing::MemberName;

    fn acquire(state: &mut ClusterState, index: u64, who: &str, ttl_ms: u64) {
        state.apply(
            index,
            &Command::AcquireLease { holder: MemberName::new(who).unwrap(), ttl_ms, incarnation: 0 },
        );
    }

    #[test]
    fn a_timer_starts_when_its_version_is_first_seen_and_never_restarts() {
        let t0 = Instant::now();
        let mut state = ClusterState::default();
        acquire(&mut state, 1, "a", 3000);
        let mut timers = Timers::default();
        timers.sync(&state, t0);
        timers.sync(&state, t0 + Duration::from_secs(2));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(3)));
        assert!(timers.due(t0 + Duration::from_millis(2999)).is_empty());
        let due = timers.due(t0 + Duration::from_secs(3));
        assert_eq!(
            due,
            vec![ExpiryTarget::Leader {
                token: vigil_fencing::FencingToken(1),
                renewed_at: crate::record::Revision(1)
            }]
        );
    }

    #[test]
    fn a_huge_ttl_in_the_log_is_timed_for_a_day_not_a_panic() {
        let t0 = Instant::now();
        let mut state = ClusterState::default();
        acquire(&mut state, 1, "a", u64::MAX);
        let mut timers = Timers::default();
        timers.sync(&state, t0);
        assert_eq!(timers.next(), Some(t0 + vigil_fencing::MAX_TTL));
    }

    #[test]
    fn a_renewal_replaces_the_timer_with_a_fresh_one() {
        let t0 = Instant::now();
        let mut state = ClusterState::default();
        acquire(&mut state, 1, "a", 3000);
        let mut timers = Timers::default();
        timers.sync(&state, t0);
        acquire(&mut state, 2, "a", 3000); // a repeat acquire renews
        timers.sync(&state, t0 + Duration::from_secs(2));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        assert!(timers.due(t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn keys_without_ttl_are_not_timed_and_deleted_ones_are_forgotten() {
        let t0 = Instant::now();
        let mut state = ClusterState::default();
        let put =
            |key: Key, ttl_ms| Command::Put { key, value: 1.into(), condition: Condition::Always, ttl_ms };
        state.apply(1, &put(Key::Config, None));
        state.apply(2, &put(Key::Member("a".parse().unwrap()), Some(1000)));
        let mut timers = Timers::default();
        timers.sync(&state, t0);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(1)));
        state.apply(
            3,
            &Command::Delete { key: Key::Member("a".parse().unwrap()), condition: Condition::Always },
        );
        timers.sync(&state, t0);
        assert_eq!(timers.next(), None);
    }
}
