//! The fence that does not wait for the store: once this member's lease passed its deadline without a
//! renewal, a server still running as primary (or answering nothing) is fenced as soon as it is observed,
//! before the store is read (a read that may itself take `retry_timeout`). It is the rule
//! [`crate::decide()`] applies first, decided from what the loop knows before the read.

use crate::{fence_action, Action, DbState, Decision, LeaseHold};

/// The fence to carry out before reading the store, if any: with the lease `lease` lapsed and the
/// server in state `db` (`fenced` already, see [`fence_action`]), unless the cluster is paused (`pause`
/// as last read). The reason names the lapsed token, which the fence runs under.
pub fn decide_fast_fence(lease: LeaseHold, db: &DbState, fenced: bool, pause: bool) -> Option<Decision> {
    let LeaseHold::Lapsed(token) = lease else { return None };
    let fence = fence_action(db, fenced).filter(|_| !pause)?;
    let how = if fence == Action::Kill { "while my server does not answer" } else { "without renewal" };
    let reason = format!("fencing: my lease (token {token}) passed its deadline {how}");
    Some(Decision { actions: vec![fence], reason, refusal: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataState, FencingToken, Role};

    const LAPSED: LeaseHold = LeaseHold::Lapsed(FencingToken(7));

    fn primary() -> DbState {
        let data = DataState::Present { system_id: "1".into(), was_primary: true };
        DbState { running: true, role: Some(Role::Primary), ..DbState::stopped(data) }
    }

    #[test]
    fn a_primary_whose_lease_lapsed_is_demoted_at_once_and_a_hung_server_killed() {
        let demote = decide_fast_fence(LAPSED, &primary(), false, false).expect("fenced");
        assert_eq!(demote.actions, vec![Action::Demote]);
        assert!(demote.reason.contains("token 7"), "{}", demote.reason);
        let hung = DbState { running: false, hung: true, ..primary() };
        assert_eq!(
            decide_fast_fence(LAPSED, &hung, false, false).expect("fenced").actions,
            vec![Action::Kill]
        );
    }

    #[test]
    fn nothing_is_fenced_early_with_a_valid_lease_none_held_in_pause_or_without_a_primary() {
        let stopped = DbState { running: false, role: None, ..primary() };
        assert_eq!(decide_fast_fence(LeaseHold::Valid(FencingToken(7)), &primary(), false, false), None);
        assert_eq!(decide_fast_fence(LeaseHold::Never, &primary(), false, false), None);
        assert_eq!(decide_fast_fence(LAPSED, &primary(), false, true), None);
        assert_eq!(decide_fast_fence(LAPSED, &stopped, false, false), None);
    }
}
