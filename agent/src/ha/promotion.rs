//! The events of a database job: a promotion with its failover phases (recorded in the event log and
//! as metrics) and a rejoin.

use super::events::promotion_phases;
use super::execute::DbJob;
use super::history::FAILOVER;
use crate::db::Database;
use std::time::{Duration, SystemTime};
use vigil_api::{Event, EventKind};

/// How long the first write after a promotion is waited for (in synchronous mode it waits for a
/// standby): past it, the promotion is recorded without phases.
const FIRST_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Commits the first write on the server `job` promoted at `promoted`, then records the promotion
/// (with its phases when the first write committed), a done switchover, and the failover's metrics.
pub async fn first_write_and_record<D: Database>(db: &D, job: &DbJob, promoted: SystemTime) {
    let written = tokio::time::timeout(FIRST_WRITE_WAIT, db.first_write()).await;
    let first_write = SystemTime::now();
    let note = &job.promotion;
    let token = job.token.map(|t| t.0);
    let mut event = Event::new(EventKind::Promoted, job.me.as_str(), promoted, note.reason).token(token);
    match (written, &job.dcs, note.takeover) {
        (Ok(Ok(())), Some(dcs), Some(takeover)) => {
            let (phases, previous) = promotion_phases(&dcs.local(), &takeover, promoted, first_write);
            tracing::info!(member = %job.me, ?token, previous = ?previous, detection_ms = phases.detection_ms,
                lease_ms = phases.lease_ms, promotion_ms = phases.promotion_ms,
                first_write_ms = phases.first_write_ms, downtime_ms = phases.downtime_ms(), "failover phases");
            event.phases = Some(phases);
            event.other_member = previous;
        }
        (Ok(Err(e)), ..) => {
            tracing::warn!(error = %e, "first write after the promotion failed: no phases recorded")
        }
        (Err(_), ..) => {
            tracing::warn!(wait = ?FIRST_WRITE_WAIT, "first write after the promotion did not commit in time: no phases recorded")
        }
        _ => {}
    }
    if let Some(dcs) = &job.dcs {
        dcs.timings().failovers.observe(note.reason, event.phases.as_ref());
    }
    let previous = event.other_member.clone();
    job.events.record(event);
    if note.reason != FAILOVER {
        let done = Event::new(EventKind::SwitchoverDone, job.me.as_str(), first_write, note.reason);
        job.events.record(done.token(token).other(previous));
    }
}

/// Records that this member's server now follows `upstream`.
pub fn record_rejoin(job: &DbJob, upstream: &str) {
    let reason = format!("follows {upstream}");
    let event = Event::new(EventKind::Rejoined, job.me.as_str(), SystemTime::now(), reason);
    job.events.record(event.other(Some(upstream)));
}
