//! The `history` entry of a promotion: how it came about (Patroni's reasons) and where the former
//! timeline ended, recorded by the new primary once its server is promoted.

use super::execute::DbJob;
use crate::db::Database;
use std::time::SystemTime;
use vigil_dcs::{Condition, Key, MemberName};
use vigil_policy::{Position, Switchover};

/// The reason of a promotion the agents carried out on their own (no operator's request).
pub const FAILOVER: &str = "failover";

/// What a promotion's history entry says beyond what the server reports after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromotionNote {
    /// How the lease was taken ([`promotion_reason`]).
    pub reason: &'static str,
    /// Where the former timeline ends: the server's position when the promotion was decided (all it
    /// received is replayed before it is promoted).
    pub switch_position: Option<Position>,
    /// How this member took the lease, for the failover's phases.
    pub takeover: Option<super::events::Takeover>,
}

impl Default for PromotionNote {
    fn default() -> Self {
        PromotionNote { reason: FAILOVER, switch_position: None, takeover: None }
    }
}

/// Why `me` would be promoted if it took the lease now, with `request` pending in the store: the
/// operator's request when it is due and does not name another candidate (`switchover` when it names
/// the primary to leave, `manual failover` otherwise, noting `allow-data-loss`), else the agents' own
/// `failover`.
pub fn promotion_reason(request: Option<&Switchover>, me: &MemberName, now: SystemTime) -> &'static str {
    let due = |r: &&Switchover| r.scheduled_at.is_none_or(|at| at.at() <= now);
    let for_me = |r: &&Switchover| r.candidate.as_ref().is_none_or(|c| c == me);
    match request.filter(due).filter(for_me) {
        None => FAILOVER,
        Some(r) if r.allow_data_loss => "manual failover (allow-data-loss)",
        Some(r) if r.leader.is_some() => "switchover",
        Some(_) => "manual failover",
    }
}

/// Appends the promotion `job` just carried out to `history`: the new timeline, the switch position,
/// the reason, the new primary, its token and the time.
pub async fn record_promotion<D: Database>(db: &D, job: &DbJob) {
    let Some(dcs) = &job.dcs else { return };
    let state = db.observe().await;
    let entry = vigil_api::HistoryEntry::Promotion {
        timeline: state.timeline,
        lsn: job.promotion.switch_position.or(state.position).map(|p| p.to_string()),
        reason: job.promotion.reason.to_owned(),
        new_primary: job.me.to_string(),
        fencing_token: job.token.map(|t| t.0),
        timestamp: vigil_api::Schedule::from(SystemTime::now()).to_string(),
    };
    append_history(dcs, entry).await;
}

/// Appends `entry` to the `history` key (compare-and-set on the version read; a lost race is logged),
/// keeping the latest `max_timelines_history` entries of the stored dynamic configuration (0: all).
async fn append_history(dcs: &vigil_dcs::DcsNode, entry: vigil_api::HistoryEntry) {
    let current = dcs.local();
    let (mut history, condition) = match current.keys.get(&Key::History) {
        Some(v) => (v.value.as_array().cloned().unwrap_or_default(), Condition::Version(v.version)),
        None => (Vec::new(), Condition::Absent),
    };
    let entry = match serde_json::to_value(&entry) {
        Ok(entry) => entry,
        Err(e) => return tracing::warn!(error = %e, "not recorded in history"),
    };
    history.push(entry);
    let max = super::view::dynamic_config(&current).map_or(0, |d| d.max_timelines_history);
    trim_history(&mut history, max);
    if let Err(e) = dcs.put(&Key::History, history.into(), condition, None).await {
        tracing::warn!(error = %e, "not recorded in history");
    }
}

/// Drops the oldest entries of `history` beyond the latest `max` (0: keeps all).
fn trim_history(history: &mut Vec<serde_json::Value>, max: u64) {
    let keep = usize::try_from(max).unwrap_or(usize::MAX);
    if max > 0 && history.len() > keep {
        let dropped = history.len() - keep;
        history.drain(..dropped);
        tracing::info!(dropped, max_timelines_history = max, "oldest history entries dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn history_keeps_the_latest_max_timelines_history_entries() {
        let mut history: Vec<serde_json::Value> =
            (1..=5).map(|t| serde_json::json!({"timeline": t})).collect();
        trim_history(&mut history, 0);
        assert_eq!(history.len(), 5, "0 keeps all");
        trim_history(&mut history, 2);
        assert_eq!(history, [serde_json::json!({"timeline": 4}), serde_json::json!({"timeline": 5})]);
    }

    #[test]
    fn the_reason_says_how_the_lease_was_taken() {
        let me = MemberName::new("b").expect("name");
        let other = MemberName::new("c").expect("name");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let reason = |r: &Switchover| promotion_reason(Some(r), &me, now);
        let switchover = Switchover { leader: MemberName::new("a").ok(), ..Default::default() };
        assert_eq!(promotion_reason(None, &me, now), "failover");
        assert_eq!(reason(&switchover), "switchover");
        assert_eq!(
            reason(&Switchover { candidate: Some(me.clone()), ..Default::default() }),
            "manual failover"
        );
        let lossy = Switchover { candidate: Some(me.clone()), allow_data_loss: true, ..Default::default() };
        assert_eq!(reason(&lossy), "manual failover (allow-data-loss)");
        let elsewhere = Switchover { candidate: Some(other), ..switchover.clone() };
        assert_eq!(reason(&elsewhere), "failover", "the request named another member");
        let later = Some((now + Duration::from_secs(60)).into());
        assert_eq!(reason(&Switchover { scheduled_at: later, ..switchover }), "failover", "not due yet");
    }
}
