//! What guards this member's role changes beyond the lease (ARCHITECTURE.md, "The lease"): the watchdog
//! (armed while this agent leads a primary), the `pre_promote` hook (which may veto a promotion) and the
//! callbacks told of every change. Shared by the HA loop and its background database job.
//!
//! - Before a promotion ([`RoleGuard::before_promote`]): the watchdog is armed (`required` and unusable:
//!   refused), then `pre_promote` runs (non-zero exit or timeout: refused, the watchdog disarmed). A
//!   refusal is remembered for a `ttl` ([`RoleGuard::refused_recently`]): the policy then releases the
//!   lease and stays out of the leader race, as Patroni does after a failed `pre_promote`. Accepted, the
//!   promotion first removes the primary label from other pods in Kubernetes, within a bound, never
//!   waiting for an API that does not answer.
//! - A promotion that fails [`PROMOTION_ATTEMPTS`] times in a row under one lease is refused the same way
//!   ([`RoleGuard::promotion_failed`]); the policy then kills the server before it gives the lease back.
//! - Before the server starts as a primary (bootstrap, a start in place), the watchdog is armed too
//!   ([`RoleGuard::before_start_primary`]), so that no primary runs unguarded until the next cycle.
//! - After each successful renewal the watchdog is kept alive; each cycle [`RoleGuard::follow_role`] arms
//!   it while this member leads a running primary and disarms it (magic close) once it no longer does,
//!   or in pause; shutdown disarms it too.

use super::hooks::{Callback, Hooks};
use crate::config::{Callbacks, Config, DynamicConfig, WatchdogMode};
use crate::kubernetes::{PodLabels, CALL_TIMEOUT};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vigil_dcs::{FencingToken, LeaseGrant, MemberName};
use vigil_fencing::{watchdog_timeout, Watchdog};
use vigil_policy::Veto;

/// How many promotions in a row may fail under one lease before its holder gives it back.
pub const PROMOTION_ATTEMPTS: u32 = 3;

/// The watchdog, the hooks and what the loop last saw that they need.
pub struct RoleGuard {
    /// The `pre_promote` hook and the callbacks.
    pub hooks: Hooks,
    watchdog: Mutex<Watchdog>,
    /// `watchdog.safety_margin`; `None`: the lease's `safety_margin`.
    watchdog_margin: Option<Duration>,
    /// The watchdog timeout for the dynamic `ttl` in force, in seconds.
    timeout: AtomicU32,
    /// The last lease holder other than this member that the loop saw: the old primary for `pre_promote`.
    old_primary: Mutex<Option<MemberName>>,
    /// When the last promotion was refused, and by what.
    refused_at: Mutex<Option<(Instant, Veto)>>,
    /// The promotions that failed in a row, and under which lease.
    failed: Mutex<(Option<FencingToken>, u32)>,
    /// In Kubernetes: the pod labels, cleared of stale primaries before a promotion.
    pods: Option<Arc<PodLabels>>,
    /// The watchdog is required and its last arming failed (Patroni's `watchdog_failed`).
    watchdog_failed: AtomicBool,
}

impl Default for RoleGuard {
    fn default() -> Self {
        RoleGuard::new(Hooks::default(), Watchdog::off(), None)
    }
}

impl RoleGuard {
    /// A guard over these hooks and this watchdog.
    pub fn new(hooks: Hooks, watchdog: Watchdog, watchdog_margin: Option<Duration>) -> RoleGuard {
        RoleGuard {
            hooks,
            watchdog: Mutex::new(watchdog),
            watchdog_margin,
            timeout: AtomicU32::new(1),
            old_primary: Mutex::default(),
            refused_at: Mutex::default(),
            failed: Mutex::default(),
            pods: None,
            watchdog_failed: AtomicBool::new(false),
        }
    }

    /// The guard also removes other pods' primary labels before a promotion.
    pub fn with_pods(mut self, pods: Option<Arc<PodLabels>>) -> RoleGuard {
        self.pods = pods;
        self
    }

    /// The guard a configuration asks for (`watchdog`, `postgresql.pre_promote`, `postgresql.callbacks`;
    /// the `mysql` section has no hooks).
    pub fn from_config(config: &Config) -> RoleGuard {
        let hooks = match &config.postgresql {
            Some(pg) => Hooks::new(&config.scope, pg.pre_promote.clone(), pg.callbacks.clone()),
            None => Hooks::new(&config.scope, None, Callbacks::default()),
        };
        let w = &config.watchdog;
        let watchdog = match w.mode {
            WatchdogMode::Off => Watchdog::off(),
            mode => Watchdog::new(w.device.clone(), mode == WatchdogMode::Required),
        };
        let guard = RoleGuard::new(hooks, watchdog, w.safety_margin);
        guard.observe(&config.bootstrap.dcs, None);
        guard
    }

    /// Takes in one cycle's view: the dynamic timing (the watchdog timeout follows `ttl`) and the lease
    /// holder when it is another member.
    pub fn observe(&self, dynamic: &DynamicConfig, other_holder: Option<&MemberName>) {
        let margin = self.watchdog_margin.unwrap_or(dynamic.lease_timing().safety_margin);
        self.timeout.store(watchdog_timeout(dynamic.ttl, margin), Ordering::SeqCst);
        if let (Some(holder), Ok(mut old)) = (other_holder, self.old_primary.lock()) {
            *old = Some(holder.clone());
        }
    }

    /// What refused a promotion less than `ttl` before `now`, if anything did.
    pub fn refused_recently(&self, now: Instant, ttl: Duration) -> Option<Veto> {
        let refused = self.refused_at.lock().ok().and_then(|at| *at);
        refused.filter(|(at, _)| now.duration_since(*at) < ttl).map(|(_, veto)| veto)
    }

    /// Arms the watchdog (as [`RoleGuard::before_start_primary`]) and runs `pre_promote`; `Err` (logged,
    /// with the token) says why `me` must not be promoted now.
    pub async fn before_promote(&self, me: &MemberName, token: FencingToken) -> Result<(), String> {
        let armed = self.before_start_primary(token);
        let old = self.old_primary.lock().ok().and_then(|o| o.clone());
        let veto = if armed.is_err() { Veto::Watchdog } else { Veto::PrePromote };
        let result = match armed {
            Ok(()) => self.hooks.pre_promote(me, old.as_ref(), token).await,
            Err(why) => Err(why),
        };
        if let (Ok(()), Some(pods)) = (&result, &self.pods) {
            clear_pod_labels(pods, token).await;
        }
        if let Err(why) = &result {
            self.with_watchdog(|w| w.disarm(Some(token), "promotion refused"));
            self.refuse(veto);
            let old = old.map(|o| o.to_string()).unwrap_or_default();
            tracing::error!(%token, old_primary = %old, reason = %why, "promotion refused: releasing the lease");
        }
        result
    }

    /// Arms the watchdog before the server starts as a primary under `token` (bootstrap, or a start in
    /// place): an agent frozen right after the start, before its next cycle, is still reset by it. `Err`
    /// only for a `required` watchdog that cannot be armed: the server must not start as a primary.
    pub fn before_start_primary(&self, token: FencingToken) -> Result<(), String> {
        let armed = self
            .with_watchdog(|w| w.arm(self.timeout.load(Ordering::SeqCst), token).map_err(|e| e.to_string()));
        self.watchdog_failed.store(armed.is_err(), Ordering::SeqCst);
        armed
    }

    /// Takes in that the promotion under `token` failed for `why`: at the [`PROMOTION_ATTEMPTS`]th
    /// failure in a row under that lease, the promotion is refused ([`Veto::Failed`]): the lease is given
    /// back, and another member may take over, rather than this one trying on forever.
    pub fn promotion_failed(&self, token: FencingToken, why: &str) {
        let attempts = match self.failed.lock() {
            Ok(mut failed) => {
                let count = if failed.0 == Some(token) { failed.1 + 1 } else { 1 };
                *failed = (Some(token), count);
                count
            }
            Err(_) => PROMOTION_ATTEMPTS,
        };
        if attempts < PROMOTION_ATTEMPTS {
            tracing::warn!(%token, attempts, reason = %why, "promotion failed: trying again");
            return;
        }
        self.refuse(Veto::Failed);
        tracing::error!(%token, attempts, reason = %why,
            "promotion failed every time: killing the server and releasing the lease");
    }

    fn refuse(&self, veto: Veto) {
        if let Ok(mut at) = self.refused_at.lock() {
            *at = Some((Instant::now(), veto));
        }
    }

    /// Pets the watchdog after a successful renewal of the lease `grant`, if [`RoleGuard::may_pet`].
    pub fn keepalive(&self, grant: &LeaseGrant) {
        if self.may_pet(grant) {
            self.with_watchdog(|w| w.keepalive(grant.token));
        }
    }

    /// Whether the watchdog, petted now, fires no later than the store may expire `grant` (its holder's
    /// deadline plus the safety margin): a pet long after the renewal was sent would let a frozen primary
    /// outlive its lease. Skipped, the watchdog goes on counting from the last pet, which was in time.
    fn may_pet(&self, grant: &LeaseGrant) -> bool {
        self.arming_timeout(grant, true).is_some()
    }

    /// The timeout to arm or pet the watchdog with now under `grant`, if it may be: the configured one
    /// when it fires no later than the store may expire the lease (see [`RoleGuard::may_pet`]). A
    /// watchdog not `armed` yet (a primary just started, its renewals slow) has no countdown to go on
    /// with: it is armed with the whole seconds left before the expiry instead, if there is one.
    fn arming_timeout(&self, grant: &LeaseGrant, armed: bool) -> Option<u32> {
        let timeout = self.timeout.load(Ordering::SeqCst);
        let expiry = grant.deadline.instant().checked_add(grant.safety_margin)?;
        let left = expiry.saturating_duration_since(Instant::now());
        match u32::try_from(left.as_secs()).unwrap_or(u32::MAX) {
            whole if whole >= timeout => Some(timeout),
            whole if !armed && whole >= 1 => Some(whole),
            _ => None,
        }
    }

    /// Keeps the watchdog in step with the role: armed (and petted, see [`RoleGuard::may_pet`]) while
    /// `leading` under `grant` (a valid lease and a running primary) and not `paused`; disarmed in pause,
    /// or once neither the lease nor a running primary is left (a primary still running without its
    /// lease keeps it armed: it is the last guard). `token` is the last one held, for the log.
    pub fn follow_role(
        &self,
        leading: bool,
        still_primary: bool,
        paused: bool,
        token: Option<FencingToken>,
        grant: Option<&LeaseGrant>,
    ) {
        self.with_watchdog(|w| match grant {
            _ if paused => w.disarm(token, "pause"),
            // A pet that would come too late is skipped: the watchdog goes on counting from the last one.
            Some(grant) if leading => {
                if let Some(timeout) = self.arming_timeout(grant, w.is_armed()) {
                    // A required watchdog that fails is logged by arm.
                    let failed = w.arm(timeout, grant.token).is_err();
                    self.watchdog_failed.store(failed, Ordering::SeqCst);
                }
            }
            _ if !leading && !still_primary => w.disarm(token, "no longer primary"),
            _ => {}
        });
    }

    /// Whether the watchdog is required and could not be armed the last time it was tried.
    pub fn watchdog_failed(&self) -> bool {
        self.watchdog_failed.load(Ordering::SeqCst)
    }

    /// Disarms the watchdog (clean shutdown).
    pub fn disarm(&self, token: Option<FencingToken>, reason: &str) {
        self.with_watchdog(|w| w.disarm(token, reason));
    }

    /// The callbacks after this member stopped being primary: `on_stop` and `on_role_change`, role
    /// `demoted` (Patroni's).
    pub fn demoted(&self, token: Option<FencingToken>) {
        self.hooks.callback(Callback::OnStop, "demoted", token);
        self.hooks.callback(Callback::OnRoleChange, "demoted", token);
    }

    fn with_watchdog<T>(&self, f: impl FnOnce(&mut Watchdog) -> T) -> T {
        match self.watchdog.lock() {
            Ok(mut w) => f(&mut w),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// Removes other pods' primary labels before `token`'s promotion, within two API calls' time; a failure
/// is logged and does not stop the promotion (the old primary is fenced by its lease, not its label).
async fn clear_pod_labels(pods: &PodLabels, token: FencingToken) {
    match tokio::time::timeout(2 * CALL_TIMEOUT, pods.clear_stale_primaries()).await {
        Ok(Ok(cleared)) if cleared.is_empty() => {}
        Ok(Ok(cleared)) => {
            tracing::info!(%token, pods = ?cleared, "stale primary labels removed before the promotion")
        }
        Ok(Err(e)) => {
            tracing::warn!(%token, error = %e, "stale primary labels not checked before the promotion")
        }
        Err(_) => {
            tracing::warn!(%token, "stale primary labels not checked before the promotion: no answer in time")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_dcs::Revision;
    use vigil_fencing::HolderDeadline;

    /// A grant of a 3 s lease with a 0.5 s margin, whose renewal was sent `ago`.
    fn grant(ago: Duration) -> LeaseGrant {
        let (ttl, safety_margin) = (Duration::from_secs(3), Duration::from_millis(500));
        let sent = Instant::now() - ago;
        LeaseGrant {
            holder: MemberName::new("a").expect("name"),
            token: FencingToken(4),
            renewed_at: Revision(9),
            ttl,
            safety_margin,
            deadline: HolderDeadline::from_sent(sent, ttl, safety_margin),
        }
    }

    #[test]
    fn promotions_failing_in_a_row_under_one_lease_refuse_the_next() {
        let guard = RoleGuard::default();
        let (now, ttl) = (Instant::now(), Duration::from_secs(3));
        for _ in 1..PROMOTION_ATTEMPTS {
            guard.promotion_failed(FencingToken(4), "pg_ctl failed");
        }
        assert_eq!(guard.refused_recently(now, ttl), None, "one attempt short");
        // A new lease counts afresh.
        guard.promotion_failed(FencingToken(5), "pg_ctl failed");
        assert_eq!(guard.refused_recently(now, ttl), None);
        for _ in 1..PROMOTION_ATTEMPTS {
            guard.promotion_failed(FencingToken(5), "pg_ctl failed");
        }
        assert_eq!(guard.refused_recently(Instant::now(), ttl), Some(Veto::Failed));
        assert_eq!(guard.refused_recently(Instant::now() + ttl, ttl), None, "for a ttl only");
    }

    #[tokio::test]
    async fn a_required_watchdog_that_cannot_be_armed_is_reported_failed() {
        let me = MemberName::new("a").expect("name");
        let missing = Watchdog::new("/nonexistent/vigil-watchdog".into(), true);
        let guard = RoleGuard::new(Hooks::default(), missing, None);
        assert!(!guard.watchdog_failed());
        assert!(guard.before_promote(&me, FencingToken(4)).await.is_err(), "required: no promotion");
        assert!(guard.watchdog_failed());
        let automatic = RoleGuard::new(Hooks::default(), Watchdog::new("/nonexistent/w".into(), false), None);
        assert!(automatic.before_promote(&me, FencingToken(4)).await.is_ok());
        assert!(!automatic.watchdog_failed(), "automatic: going on without it is no failure");
    }

    #[test]
    fn the_watchdog_is_petted_only_while_it_would_fire_before_the_store_may_expire_the_lease() {
        let guard = RoleGuard::default();
        guard.timeout.store(2, Ordering::SeqCst); // watchdog_timeout(3 s, 0.5 s)
                                                  // The store may expire the lease 3 s after the renewal was sent: a pet then fires 2 s later.
        assert!(guard.may_pet(&grant(Duration::ZERO)));
        assert!(guard.may_pet(&grant(Duration::from_millis(900))));
        assert!(!guard.may_pet(&grant(Duration::from_millis(1100))), "a pet 1.1 s after sending is too late");
        assert!(!guard.may_pet(&grant(Duration::from_secs(5))));
        // Not armed yet, there is no countdown to go on with: armed to fire by the expiry, if it still can.
        assert_eq!(guard.arming_timeout(&grant(Duration::from_millis(1100)), false), Some(1));
        assert_eq!(guard.arming_timeout(&grant(Duration::from_millis(1100)), true), None);
        assert_eq!(guard.arming_timeout(&grant(Duration::from_millis(900)), false), Some(2));
        assert_eq!(guard.arming_timeout(&grant(Duration::from_millis(2100)), false), None, "under 1 s left");
    }
}
