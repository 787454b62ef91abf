//! The agent's latest status, shared with the REST API.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use vigil_api::{NodeStatus, StatusSource, Timings};
use vigil_fencing::HolderDeadline;

/// The status the REST API serves, updated by the HA loop every cycle; the lease deadline is checked
/// against the clock at every request, so `/primary` turns 503 the moment it passes, and so is the HA
/// loop's heartbeat (`/liveness`).
#[derive(Default)]
pub struct SharedStatus {
    status: RwLock<NodeStatus>,
    deadline: RwLock<Option<HolderDeadline>>,
    heartbeat: RwLock<Option<Heartbeat>>,
    timings: RwLock<Option<Arc<Timings>>>,
    /// Counts the changes of the status and of the deadline, for those who follow them
    /// ([`SharedStatus::changes`]).
    changed: tokio::sync::watch::Sender<u64>,
    /// When the server was last promoted ([`SharedStatus::promoted`]).
    promoted_at: RwLock<Option<Instant>>,
}

/// When the HA loop's next cycle is due, and the ttl that bounds how late it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heartbeat {
    next_run: Instant,
    ttl: Duration,
}

impl SharedStatus {
    /// Replaces the status.
    pub fn set(&self, status: NodeStatus) {
        // A poisoned lock only means a writer panicked between two plain assignments: the value is whole.
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = status;
        self.changed.send_modify(|n| *n += 1);
    }

    /// Records the lease deadline (`None`: no lease).
    pub fn set_deadline(&self, deadline: Option<HolderDeadline>) {
        *self.deadline.write().unwrap_or_else(|e| e.into_inner()) = deadline;
        self.changed.send_modify(|n| *n += 1);
    }

    /// The server was promoted just now: the status says so at once (the HA loop publishes the whole of
    /// it at its next cycle, woken for it), so that `/primary` answers 200, and the HAProxy push follows,
    /// without waiting for that cycle; only while the lease's deadline, as last published, holds.
    pub fn promoted(&self) {
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        (status.role, status.state) = ("primary".to_owned(), "running".to_owned());
        drop(status);
        *self.promoted_at.write().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.changed.send_modify(|n| *n += 1);
    }

    /// The primary is about to stop for a handover (a switchover, the agent's shutdown): the status says
    /// `stopping` at once, so that `/primary` answers 503 and the HAProxy push takes the server out of the
    /// write path before it stops taking writes, while the lease is still held.
    pub fn stepping_down(&self) {
        self.status.write().unwrap_or_else(|e| e.into_inner()).state = "stopping".to_owned();
        self.changed.send_modify(|n| *n += 1);
    }

    /// Whether the status says the server is stopping (see [`SharedStatus::stepping_down`]).
    pub fn is_stopping(&self) -> bool {
        self.status.read().unwrap_or_else(|e| e.into_inner()).state == "stopping"
    }

    /// Whether the server was promoted after `observed_at`: a look at the database begun then may have
    /// seen it still a replica, and must not be published over [`SharedStatus::promoted`].
    pub fn promoted_after(&self, observed_at: Instant) -> bool {
        let promoted_at = *self.promoted_at.read().unwrap_or_else(|e| e.into_inner());
        promoted_at.is_some_and(|at| at > observed_at)
    }

    /// Follows the changes of the status and of the lease deadline: the value counts them (0: the HA loop
    /// has published nothing yet).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// How long the lease this member holds is still valid by its own deadline; `None` without one.
    pub fn lease_remaining(&self) -> Option<Duration> {
        let now = Instant::now();
        let deadline = (*self.deadline.read().unwrap_or_else(|e| e.into_inner()))?;
        deadline.is_valid_at(now).then(|| deadline.remaining_at(now))
    }

    /// Serves `timings` on `/metrics` (the store node's, where the HA loop records its own too).
    pub fn set_timings(&self, timings: Arc<Timings>) {
        *self.timings.write().unwrap_or_else(|e| e.into_inner()) = Some(timings);
    }

    /// Records that the HA loop completed a cycle just now (or started): the next is due `loop_wait`
    /// from now, and `/liveness` fails once it is more than `ttl` late (twice `ttl` unless this member
    /// runs a primary), as Patroni's does. A member without an HA loop (a witness) never records one and
    /// is always live.
    pub fn cycle_completed(&self, loop_wait: Duration, ttl: Duration) {
        let beat = Heartbeat { next_run: Instant::now() + loop_wait, ttl };
        *self.heartbeat.write().unwrap_or_else(|e| e.into_inner()) = Some(beat);
    }
}

/// Patroni's liveness rule: a paused cluster is always live; otherwise the loop's next cycle, due at
/// `beat.next_run`, may be late by `ttl` on a running primary and twice `ttl` elsewhere.
fn loop_alive(beat: Option<Heartbeat>, status: &NodeStatus, now: Instant) -> bool {
    let Some(beat) = beat else { return true };
    let primary = status.role == "primary" && status.state == "running";
    let tolerance = if primary { beat.ttl } else { beat.ttl.saturating_mul(2) };
    status.pause || now < beat.next_run + tolerance
}

impl StatusSource for SharedStatus {
    fn status(&self) -> NodeStatus {
        let mut status = self.status.read().unwrap_or_else(|e| e.into_inner()).clone();
        let deadline = *self.deadline.read().unwrap_or_else(|e| e.into_inner());
        status.vigil.lease_remaining_ms = deadline.map(|d| d.remaining_at(Instant::now()).as_millis() as u64);
        status
    }

    fn is_leading_primary(&self) -> bool {
        let status = self.status.read().unwrap_or_else(|e| e.into_inner());
        let deadline = *self.deadline.read().unwrap_or_else(|e| e.into_inner());
        let valid = deadline.is_some_and(|d| d.is_valid_at(Instant::now()));
        valid && status.role == "primary" && status.state == "running"
    }

    fn timings(&self) -> Option<Arc<Timings>> {
        self.timings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn loop_alive(&self) -> bool {
        let status = self.status.read().unwrap_or_else(|e| e.into_inner());
        let beat = *self.heartbeat.read().unwrap_or_else(|e| e.into_inner());
        loop_alive(beat, &status, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_is_live_until_its_next_cycle_is_a_ttl_late() {
        let start = Instant::now();
        let ttl = Duration::from_secs(10);
        let beat = Some(Heartbeat { next_run: start + Duration::from_secs(2), ttl });
        let primary = NodeStatus { role: "primary".into(), state: "running".into(), ..Default::default() };
        let replica = NodeStatus { role: "replica".into(), ..primary.clone() };
        let at = |secs| start + Duration::from_secs(secs);
        assert!(loop_alive(None, &primary, at(1_000)), "no loop (a witness): always live");
        assert!(loop_alive(beat, &primary, at(11)) && !loop_alive(beat, &primary, at(12)));
        assert!(loop_alive(beat, &replica, at(21)) && !loop_alive(beat, &replica, at(22)), "twice the ttl");
        let paused = NodeStatus { pause: true, ..primary };
        assert!(loop_alive(beat, &paused, at(1_000)), "paused: a stuck loop is fine");
    }

    #[test]
    fn a_primary_stepping_down_stops_leading_at_once_with_its_lease_still_valid() {
        let shared = SharedStatus::default();
        shared.set(NodeStatus { role: "primary".into(), state: "running".into(), ..Default::default() });
        let ten = Duration::from_secs(10);
        shared.set_deadline(Some(HolderDeadline::from_sent(Instant::now(), ten, Duration::from_secs(1))));
        assert!(shared.is_leading_primary() && !shared.is_stopping());
        let mut changes = shared.changes();
        changes.mark_unchanged();
        shared.stepping_down();
        assert!(changes.has_changed().unwrap(), "the HAProxy pushers are woken");
        assert!(shared.is_stopping() && !shared.is_leading_primary(), "/primary answers 503");
        assert!(shared.lease_remaining().is_some(), "the lease itself is still held");
    }
}
