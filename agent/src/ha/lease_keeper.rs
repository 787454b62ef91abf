//! The leader lease as this agent holds it: taken, renewed and given back through the store, judged
//! valid by the holder's own deadline (never by the store's clock), renewed at the latest halfway to it.

use super::events::EventSender;
use crate::config::DynamicConfig;
use crate::db::lifeline::Lifeline;
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::watch;
use vigil_api::{Event, EventKind};
use vigil_dcs::{DcsError, DcsNode, FencingToken, LeaseGrant, MemberName};
use vigil_policy::LeaseHold;
use vigil_policy::LeaseTimes;

/// This member's hold on the leader lease.
pub(super) struct LeaseKeeper {
    dcs: Arc<DcsNode>,
    name: MemberName,
    /// The grant held (its deadline may have passed).
    grant: Option<LeaseGrant>,
    /// The token of a grant lost to the store (another holder, or expired): the server may still run as
    /// the primary it made, and is fenced under it.
    lapsed: Option<FencingToken>,
    /// Whether the last renewal failed.
    renew_failed: bool,
    /// The deadline of the grant held, for the jobs that start a primary (see [`LeaseKeeper::deadline_watch`]).
    deadline: watch::Sender<Option<Instant>>,
    /// Where a lost lease is recorded.
    events: EventSender,
    /// The database's lifeline, told every grant (for a death certificate).
    lifeline: Option<Lifeline>,
}

impl LeaseKeeper {
    /// No lease held yet, for member `name`.
    pub(super) fn new(dcs: Arc<DcsNode>, name: MemberName, events: EventSender) -> Self {
        let deadline = watch::Sender::new(None);
        LeaseKeeper {
            dcs,
            name,
            grant: None,
            lapsed: None,
            renew_failed: false,
            deadline,
            events,
            lifeline: None,
        }
    }

    /// Tells `lifeline` every grant from now on.
    pub(super) fn tell(&mut self, lifeline: Lifeline) {
        lifeline.tell_lease(self.held());
        self.lifeline = Some(lifeline);
    }

    /// The token of the grant held, as a lifeline knows it.
    fn held(&self) -> Option<u64> {
        self.grant.as_ref().map(|g| g.token.0)
    }

    /// The deadline of the grant held, as it changes: a job that starts a primary checks it just before.
    pub(super) fn deadline_watch(&self) -> watch::Receiver<Option<Instant>> {
        self.deadline.subscribe()
    }

    fn set(&mut self, grant: Option<LeaseGrant>) {
        self.deadline.send_replace(grant.as_ref().map(|g| g.deadline.instant()));
        self.grant = grant;
        if let Some(lifeline) = &self.lifeline {
            lifeline.tell_lease(self.held());
        }
    }

    /// The hold at `now`, by the holder's own deadline.
    pub(super) fn hold(&self, now: Instant) -> LeaseHold {
        match (&self.grant, self.lapsed) {
            (Some(grant), _) if grant.deadline.is_valid_at(now) => LeaseHold::Valid(grant.token),
            (Some(grant), _) => LeaseHold::Lapsed(grant.token),
            (None, Some(token)) => LeaseHold::Lapsed(token),
            (None, None) => LeaseHold::Never,
        }
    }

    /// How long a store request may be waited for (see [`before`]): not past the deadline of the lease
    /// held while it is valid at `now` or this member's server runs as a primary (which must be free to
    /// fence itself in time; past the deadline it waits for nothing).
    pub(super) fn wait_limit(&self, now: Instant, primary_running: bool) -> Option<Instant> {
        let deadline = self.grant.as_ref().map(|g| g.deadline)?;
        (primary_running || deadline.is_valid_at(now)).then(|| deadline.instant())
    }

    /// Whether the lease is held and valid now.
    pub(super) fn is_valid(&self) -> bool {
        matches!(self.hold(Instant::now()), LeaseHold::Valid(_))
    }

    /// The grant held, valid or not.
    pub(super) fn grant(&self) -> Option<&LeaseGrant> {
        self.grant.as_ref()
    }

    /// The token of the grant held.
    pub(super) fn token(&self) -> Option<FencingToken> {
        self.grant.as_ref().map(|g| g.token)
    }

    /// The token of the grant held, or else of the one last lost: what a fencing action runs under.
    pub(super) fn last_token(&self) -> Option<FencingToken> {
        self.token().or(self.lapsed)
    }

    /// Whether the grant held is halfway to its deadline.
    pub(super) fn renewal_is_due(&self, now: Instant) -> bool {
        self.grant.as_ref().is_some_and(|g| now >= renewal_due(g))
    }

    /// When the grant held is due for renewal, its deadline, and whether its last renewal failed: what
    /// the time of the next cycle depends on.
    pub(super) fn times(&self) -> Option<LeaseTimes> {
        let grant = self.grant.as_ref()?;
        let (renewal_due, deadline) = (renewal_due(grant), grant.deadline.instant());
        Some(LeaseTimes { renewal_due, deadline, renew_failed: self.renew_failed })
    }

    /// Takes the lease if it is free (or renews it when this member already holds it).
    pub(super) async fn acquire(&mut self, dynamic: &DynamicConfig) {
        match self.dcs.acquire_lease(&self.name, dynamic.ttl, dynamic.lease_timing().safety_margin).await {
            Ok(grant) => {
                tracing::info!(token = %grant.token, "leader lease held");
                self.lapsed = None;
                self.set(Some(grant));
            }
            Err(e) => tracing::info!(error = %e, "leader lease not acquired"),
        }
    }

    /// Renews the grant held; `Some` is the grant a renewal that succeeded gave.
    pub(super) async fn renew(&mut self, dynamic: &DynamicConfig) -> Option<LeaseGrant> {
        let grant = self.grant.clone()?;
        // The store expires the lease by the ttl it was granted with (a renewal carries none): a ttl raised
        // since must not move this holder's own deadline past the store's expiry. A lowered one may.
        let ttl = grant.ttl.min(dynamic.ttl);
        let grant = LeaseGrant { ttl, safety_margin: dynamic.lease_timing().safety_margin, ..grant };
        let started = Instant::now();
        let deadline = self.wait_limit(started, false);
        let result = before(deadline, self.dcs.renew_lease(&grant)).await.unwrap_or({
            Err(DcsError::NoQuorum { op: "renew lease (given up at the lease's deadline)", waited: ttl })
        });
        let timings = self.dcs.timings();
        timings.lease_renewal.observe(started.elapsed());
        self.renew_failed = result.is_err();
        if self.renew_failed {
            timings.renewal_failed();
        }
        match result {
            Ok(renewed) => {
                self.set(Some(renewed.clone()));
                Some(renewed)
            }
            Err(e @ DcsError::NotHolder { .. }) => {
                tracing::warn!(token = %grant.token, error = %e, "leader lease lost");
                let event =
                    Event::new(EventKind::LeaseLost, self.name.as_str(), SystemTime::now(), e.to_string());
                self.events.record(event.token(Some(grant.token.0)));
                self.lapsed = Some(grant.token);
                self.set(None);
                None
            }
            // The renewal may or may not have committed: keep the old deadline, which is safe either way.
            Err(e) => {
                tracing::warn!(token = %grant.token, error = %e, "leader lease not renewed");
                None
            }
        }
    }

    /// Gives the lease back.
    pub(super) async fn release(&mut self) {
        if let Some(grant) = self.grant.clone() {
            self.set(None);
            if let Err(e) = self.dcs.release_lease(&grant).await {
                tracing::warn!(token = %grant.token, error = %e, "leader lease not released");
            }
        }
    }
}

/// Waits for `request` to the store, but not past `deadline` (the lease's, while it is held: a holder must
/// be free to fence itself in time); `None`: the deadline came first.
pub(super) async fn before<T>(deadline: Option<Instant>, request: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline.into(), request).await.ok(),
        None => Some(request.await),
    }
}

/// When the holder of `grant` renews at the latest: halfway between its last renewal and its deadline.
fn renewal_due(grant: &LeaseGrant) -> Instant {
    let deadline = grant.deadline.instant();
    deadline.checked_sub(grant.ttl.saturating_sub(grant.safety_margin) / 2).unwrap_or(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timing() -> DynamicConfig {
        DynamicConfig {
            ttl: Duration::from_secs(10),
            safety_margin: Duration::from_secs(2),
            ..DynamicConfig::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_lease_is_valid_by_its_deadline_and_renewed_halfway_to_it() {
        let dir = tempfile::tempdir().expect("dir");
        let dcs = super::super::restart_tests::store(dir.path()).await;
        let writer = super::super::events::EventWriter::spawn(dcs.clone());
        let mut keeper = LeaseKeeper::new(dcs.clone(), MemberName::new("a").expect("name"), writer.sender());
        assert_eq!(keeper.hold(Instant::now()), LeaseHold::Never);
        assert_eq!(keeper.times(), None);

        keeper.acquire(&timing()).await;
        let token = keeper.token().expect("granted");
        let now = Instant::now();
        let deadline = keeper.grant().expect("grant").deadline.instant();
        assert_eq!(keeper.hold(now), LeaseHold::Valid(token));
        assert_eq!(keeper.hold(deadline), LeaseHold::Lapsed(token), "the deadline is the holder's own");
        // ttl 10 s, margin 2 s: the deadline is 8 s after sending, the renewal due 4 s before it.
        assert!(!keeper.renewal_is_due(now));
        assert!(keeper.renewal_is_due(deadline - Duration::from_secs(4)));
        let times = keeper.times().expect("held");
        assert_eq!((times.renewal_due, times.deadline), (deadline - Duration::from_secs(4), deadline));

        assert_eq!(keeper.renew(&timing()).await.map(|g| g.token), Some(token), "a renewal keeps the token");
        assert!(keeper.grant().expect("grant").deadline.instant() >= deadline);
        keeper.release().await;
        assert_eq!(keeper.hold(Instant::now()), LeaseHold::Never);
        assert_eq!(keeper.last_token(), None);
        assert!(dcs.local().leader.is_none(), "released in the store");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_renewal_is_counted() {
        let dir = tempfile::tempdir().expect("dir");
        let dcs = super::super::restart_tests::store(dir.path()).await;
        let writer = super::super::events::EventWriter::spawn(dcs.clone());
        let mut keeper = LeaseKeeper::new(dcs.clone(), MemberName::new("a").expect("name"), writer.sender());
        let failures = || dcs.timings().lease_renewal_failures.load(std::sync::atomic::Ordering::Relaxed);
        keeper.acquire(&timing()).await;
        keeper.renew(&timing()).await.expect("renewed");
        assert_eq!(failures(), 0);
        dcs.release_lease(keeper.grant().expect("grant")).await.expect("released behind the keeper's back");
        assert_eq!(keeper.renew(&timing()).await, None, "no longer the holder");
        assert_eq!(failures(), 1);
    }
}
