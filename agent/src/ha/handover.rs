//! Carrying out a handover's steps ([`vigil_policy::handover`]): a switchover away from this primary, and
//! the agent's clean shutdown.

use super::run::Agent;
use super::view::cluster_view;
use crate::config::DynamicConfig;
use crate::db::{Database, DbState, StopMode};
use std::time::{Duration, Instant, SystemTime};
use vigil_api::{Event, EventKind};
use vigil_fencing::instant_after;
use vigil_policy::sync::{handed_over, is_named_standby};
use vigil_policy::Observation;
use vigil_policy::{shutdown_steps, HandOverStep};

/// How long the events still queued at shutdown may take to be written.
const EVENTS_AT_SHUTDOWN: Duration = Duration::from_secs(2);

impl<D: Database> Agent<D> {
    /// Carries out `steps` in order under `dynamic`; `seen` is the observation of the cycle that decided a
    /// switchover (`None` at shutdown).
    pub(super) async fn hand_over(
        &mut self,
        steps: &[HandOverStep],
        dynamic: &DynamicConfig,
        seen: Option<&Observation>,
    ) {
        let mut released = self.lease.last_token();
        // When the server stopped taking writes: where a switchover's downtime begins.
        let mut writes_stopped = None;
        for step in steps {
            match *step {
                HandOverStep::MoveSyncRole(wait) => self.move_sync_role(wait).await,
                HandOverStep::Stop { or_keep_lease } => {
                    self.publisher.status().stepping_down();
                    let stopping = Instant::now();
                    let stopped = self.db.stop(StopMode::Fast).await;
                    writes_stopped = Some(stopping);
                    let Err(e) = stopped else { continue };
                    if or_keep_lease {
                        tracing::error!(error = %e, "switchover: the primary did not stop; keeping the lease");
                        return;
                    }
                    tracing::warn!(error = %e, "database did not stop cleanly");
                }
                HandOverStep::PublishStopped => {
                    if let Some(o) = seen {
                        let stopped = DbState::stopped(o.db.data.clone());
                        let why = "switchover: stopped";
                        self.publish(&stopped, o.cluster.as_ref(), dynamic, why, None).await;
                    }
                }
                HandOverStep::Demoted => {
                    self.guard.demoted(self.lease.token());
                    self.record_demotion(seen);
                }
                HandOverStep::ReleaseLease => {
                    released = self.lease.last_token();
                    let reason = if seen.is_some() { "switchover: handed over" } else { "shutdown" };
                    self.release(writes_stopped, reason).await;
                }
                HandOverStep::Disarm => {
                    self.guard.disarm(released, "clean shutdown");
                    self.publisher.no_deadline();
                }
            }
        }
    }

    /// Records that this primary stepped down for the switchover `seen` asked for (to its candidate, if
    /// it names one).
    fn record_demotion(&self, seen: Option<&Observation>) {
        let candidate = seen.and_then(|o| o.cluster.as_ref()?.switchover.as_ref()?.candidate.clone());
        let event = Event::new(EventKind::Demoted, self.me.name.as_str(), SystemTime::now(), "switchover");
        let event = event.token(self.lease.last_token().map(|t| t.0));
        self.events.sender().record(event.other(candidate.map(|c| c.to_string())));
    }

    /// On SIGTERM, once the running job ended: the [`shutdown_steps`].
    pub(super) async fn shut_down(mut self) {
        tracing::info!("shutting down");
        if let Some(job) = self.job.take() {
            let _ = job.await;
        }
        let sync_standby = is_named_standby(&cluster_view(&self.dcs.local()), &self.me.name);
        let dynamic = self.dynamic.clone();
        self.hand_over(&shutdown_steps(sync_standby, dynamic.loop_wait), &dynamic, None).await;
        self.events.stop(EVENTS_AT_SHUTDOWN).await;
    }

    /// [`HandOverStep::MoveSyncRole`]: announces the stop and waits, at most `wait`, until the primary
    /// handed the role over (see [`handed_over`]), keeping this member's record alive meanwhile.
    async fn move_sync_role(&mut self, wait: Duration) {
        tracing::info!("synchronous standby shutting down: asking the primary to move the role first");
        self.leaving = true;
        self.publisher.forget();
        let db = self.db.observe().await;
        let dynamic = self.dynamic.clone();
        let deadline = instant_after(Instant::now(), wait);
        loop {
            let view = cluster_view(&self.dcs.local());
            if handed_over(&view, &self.me.name) {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    ?wait,
                    "the primary did not move the synchronous standby role: stopping anyway"
                );
                return;
            }
            // Written again only once half its ttl is gone: the primary must not see this member vanish.
            self.publish(
                &db,
                Some(&view),
                &dynamic,
                "shutting down: handing the synchronous standby role over",
                None,
            )
            .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::info!("synchronous standby role handed over");
    }
}
