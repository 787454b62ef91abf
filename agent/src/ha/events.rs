//! The agent's side of the event log (`GET /events`, kept in the store, see [`vigil_dcs::EventLog`]): a
//! queue that a writer task empties into the store in order ([`EventWriter`]), so that recording an event
//! never makes the HA loop wait; and the failover phases of a promotion ([`promotion_phases`]).
//!
//! An event a member cannot write (a primary cut off from the store, which fenced itself when its lease
//! ran out) stays queued, with its original time, and is written once the store answers again; up to
//! [`QUEUED`] events wait, newer ones beyond are dropped with a warning.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use vigil_api::{Event, EventKind, FailoverPhases};
use vigil_dcs::{ClusterState, DcsNode, FencingToken, SINCE_DEATH, SINCE_LAST_RENEWAL};

/// How many events may wait for the store (a member cut off for long writes what it saw first).
pub const QUEUED: usize = 256;
/// The pause between two attempts to write an event while the store does not answer.
const RETRY: Duration = Duration::from_millis(500);

/// Where a member's events go: the writer's queue. Clones share it.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::Sender<Event>,
}

impl EventSender {
    /// Queues `event` for the store, without waiting.
    pub fn record(&self, event: Event) {
        if let Err(e) = self.tx.try_send(event) {
            tracing::warn!(error = %e, queued = QUEUED, "event not recorded: too many wait for the store");
        }
    }
}

/// The task that writes a member's events to the store, in order; owned by the agent, which stops it.
pub struct EventWriter {
    sender: EventSender,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl EventWriter {
    /// Starts the writer over the store node `dcs`.
    pub fn spawn(dcs: Arc<DcsNode>) -> EventWriter {
        let (tx, rx) = mpsc::channel(QUEUED);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(write_all(dcs, rx, stopped));
        EventWriter { sender: EventSender { tx }, stop, task }
    }

    /// A sender to the writer's queue.
    pub fn sender(&self) -> EventSender {
        self.sender.clone()
    }

    /// Writes what is queued, one attempt each, then stops, waiting at most `limit`.
    pub async fn stop(self, limit: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            tracing::warn!(?limit, "events still queued at shutdown were not written");
            task.abort();
        }
    }
}

/// Appends `event` to the store's event log.
pub async fn append(dcs: &DcsNode, event: &Event) -> Result<(), String> {
    let json = serde_json::to_value(event).map_err(|e| e.to_string())?;
    dcs.append_event(json).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn write_all(dcs: Arc<DcsNode>, mut rx: mpsc::Receiver<Event>, mut stop: watch::Receiver<bool>) {
    loop {
        let event = tokio::select! {
            event = rx.recv() => event,
            _ = stop.changed() => None,
        };
        let Some(event) = event else { break };
        // Retried until written: an event is late, never lost while the agent runs.
        while let Err(e) = append(&dcs, &event).await {
            tracing::debug!(kind = event.kind.as_str(), error = %e, "event not written yet: retrying");
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.changed() => break,
            }
        }
        if *stop.borrow() {
            break;
        }
    }
    while let Ok(event) = rx.try_recv() {
        if let Err(e) = append(&dcs, &event).await {
            tracing::warn!(kind = event.kind.as_str(), error = %e, "event not written at shutdown");
        }
    }
}

/// `instant` (on this process' monotonic clock) on the wall clock.
pub fn wall_clock(instant: Instant) -> SystemTime {
    let now = Instant::now();
    match now.checked_duration_since(instant) {
        Some(ago) => SystemTime::now() - ago,
        None => SystemTime::now() + instant.duration_since(now),
    }
}

/// What this member saw of a lease it took, for the phases of the promotion that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Takeover {
    /// The token of the grant.
    pub token: FencingToken,
    /// When the cycle that decided to take it saw the lease free.
    pub seen_free: SystemTime,
    /// When the grant came back.
    pub granted: SystemTime,
}

/// The lease before `token` as the event log shows its end (expiry or release): its holder, when it
/// ended, and the holder's last renewal (or, in a switchover, the moment it stopped taking writes; after
/// a death certificate, the moment its agent died).
fn previous_lease_end(state: &ClusterState, token: FencingToken) -> Option<(String, SystemTime, SystemTime)> {
    let events =
        state.events.iter().rev().filter_map(|e| serde_json::from_value::<Event>(e.event.clone()).ok());
    let ended = events
        .filter(|e| {
            matches!(e.kind, EventKind::LeaseExpired | EventKind::LeaseReleased | EventKind::LeaseLost)
        })
        .find(|e| e.fencing_token.is_some_and(|t| t < token.0))?;
    let at = ended.at()?;
    let since = ended.timings.get(SINCE_LAST_RENEWAL).or(ended.timings.get(SINCE_DEATH));
    let before = Duration::from_millis(since.copied().unwrap_or(0));
    Some((ended.member, at, at - before))
}

/// The phases of a failover this member carried out: from the previous holder's last renewal (as the
/// log records its lease's end; else from when this member saw the lease free) to `first_write`; and
/// the previous holder, if known.
pub fn promotion_phases(
    state: &ClusterState,
    takeover: &Takeover,
    promoted: SystemTime,
    first_write: SystemTime,
) -> (FailoverPhases, Option<String>) {
    let (previous, free, last_renewal) = match previous_lease_end(state, takeover.token) {
        Some((holder, free, last_renewal)) => (Some(holder), free, last_renewal),
        None => (None, takeover.seen_free, takeover.seen_free),
    };
    (FailoverPhases::between(last_renewal, free, takeover.granted, promoted, first_write), previous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_dcs::Command;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms)
    }

    fn log(events: &[Event]) -> ClusterState {
        let mut state = ClusterState::default();
        for (i, event) in events.iter().enumerate() {
            let event = serde_json::to_value(event).expect("json");
            state.apply(i as u64 + 1, &Command::AppendEvent { event });
        }
        state
    }

    fn ended(kind: EventKind, member: &str, token: u64, at_ms: u64, since_renewal_ms: u64) -> Event {
        Event::new(kind, member, at(at_ms), "test")
            .token(Some(token))
            .timing(SINCE_LAST_RENEWAL, Duration::from_millis(since_renewal_ms))
    }

    #[test]
    fn the_phases_count_from_the_previous_holders_last_renewal() {
        let state = log(&[
            ended(EventKind::LeaseExpired, "old", 3, 1000, 900),
            ended(EventKind::LeaseExpired, "a", 7, 5000, 3000),
            ended(EventKind::LeaseExpired, "newer", 12, 9000, 10),
        ]);
        let takeover = Takeover { token: FencingToken(9), seen_free: at(5100), granted: at(5020) };
        let (phases, previous) = promotion_phases(&state, &takeover, at(5400), at(5410));
        assert_eq!(previous.as_deref(), Some("a"), "the lease just before token 9");
        assert_eq!(
            (phases.detection_ms, phases.lease_ms, phases.promotion_ms, phases.first_write_ms),
            (3000, 20, 380, 10)
        );
        assert_eq!(phases.downtime_ms(), 3410);
    }

    #[test]
    fn without_the_previous_leases_end_the_phases_count_from_when_the_lease_was_seen_free() {
        let state = log(&[Event::new(EventKind::Promoted, "a", at(0), "failover").token(Some(2))]);
        let takeover = Takeover { token: FencingToken(9), seen_free: at(100), granted: at(130) };
        let (phases, previous) = promotion_phases(&state, &takeover, at(600), at(650));
        assert_eq!(previous, None);
        assert_eq!(
            (phases.detection_ms, phases.lease_ms, phases.promotion_ms, phases.first_write_ms),
            (0, 30, 470, 50)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_recorded_while_the_store_cannot_be_written_are_written_later_in_order_with_their_times() {
        let dir = tempfile::tempdir().expect("dir");
        let dcs =
            Arc::new(DcsNode::start(vigil_dcs::DcsConfig::new(1, "test", dir.path())).await.expect("store"));
        dcs.set_op_timeout(Duration::from_millis(200));
        let writer = EventWriter::spawn(dcs.clone());
        let recorded: Vec<Event> =
            (0..3).map(|i| Event::new(EventKind::Fenced, "a", at(i * 10), "cut off")).collect();
        for event in &recorded {
            writer.sender().record(event.clone());
        }
        // Not initialized yet: no quorum, nothing written.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(dcs.local().events.is_empty());
        dcs.initialize(std::collections::BTreeMap::from([(1, "127.0.0.1:1".to_owned())]))
            .await
            .expect("initialize");
        let deadline = Instant::now() + Duration::from_secs(20);
        while dcs.local().events.len() < recorded.len() {
            assert!(Instant::now() < deadline, "the queued events were never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let written: Vec<Event> = dcs
            .local()
            .events
            .iter()
            .map(|e| serde_json::from_value(e.event.clone()).expect("event"))
            .collect();
        assert_eq!(written, recorded, "in order, with the times they were recorded at");
        writer.stop(Duration::from_secs(1)).await;
    }

    #[test]
    fn a_past_instant_is_placed_on_the_wall_clock() {
        let ago = Instant::now() - Duration::from_secs(2);
        let wall = wall_clock(ago);
        let off = SystemTime::now().duration_since(wall).expect("in the past");
        assert!(off >= Duration::from_secs(2) && off < Duration::from_secs(3), "{off:?}");
    }
}
