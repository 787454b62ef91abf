//! The store's pure state machine, [`ClusterState::apply`], through its public API: first one example per
//! behaviour, then properties over random command logs.

use proptest::prelude::*;
use proptest::sample::Index;
use std::time::Duration;
use vigil_dcs::{
    ClusterState, Command, Condition, ExpiryTarget, FencingToken, Key, Lease, MemberName, Outcome, Revision,
};

const TTL_MS: u64 = 10_000;

fn name(s: &str) -> MemberName {
    MemberName::new(s).unwrap()
}

fn acquire(holder: &str) -> Command {
    Command::AcquireLease { holder: name(holder), ttl_ms: TTL_MS, incarnation: 0 }
}

fn renew(holder: &str, token: u64) -> Command {
    Command::RenewLease { holder: name(holder), token: FencingToken(token), incarnation: 0 }
}

fn release(holder: &str, token: u64) -> Command {
    Command::ReleaseLease { holder: name(holder), token: FencingToken(token) }
}

fn expire_lease(token: u64, renewed_at: u64) -> Command {
    Command::Expire(ExpiryTarget::Leader { token: FencingToken(token), renewed_at: Revision(renewed_at) })
}

fn expire_key(key: Key, version: u64) -> Command {
    Command::Expire(ExpiryTarget::Key { key, version: Revision(version) })
}

fn put(key: Key, value: serde_json::Value, condition: Condition) -> Command {
    Command::Put { key, value, condition, ttl_ms: None }
}

fn put_with_ttl(key: Key, value: serde_json::Value, ttl_ms: u64) -> Command {
    Command::Put { key, value, condition: Condition::Always, ttl_ms: Some(ttl_ms) }
}

fn member_key(s: &str) -> Key {
    Key::Member(name(s))
}

fn granted(token: u64, renewed_at: u64) -> Outcome {
    Outcome::LeaseGranted { token: FencingToken(token), renewed_at: Revision(renewed_at) }
}

fn lease(holder: &str, token: u64, renewed_at: u64) -> Option<Lease> {
    Some(Lease {
        holder: name(holder),
        token: FencingToken(token),
        ttl_ms: TTL_MS,
        renewed_at: Revision(renewed_at),
        incarnation: 0,
    })
}

/// `before` as it must be after a refused command at `index`: only the revision moves.
fn only_revision_moved(before: &ClusterState, index: u64) -> ClusterState {
    ClusterState { revision: Revision(index), ..before.clone() }
}

// ---------------------------------------------------------------------------------------------------------
// The leader lease
// ---------------------------------------------------------------------------------------------------------

#[test]
fn acquire_on_a_free_lease_grants_the_entry_index_as_token() {
    let mut state = ClusterState::default();
    assert_eq!(state.apply(7, &acquire("alice")), granted(7, 7));
    assert_eq!(state.leader, lease("alice", 7, 7));
    assert_eq!(state.revision, Revision(7));
}

#[test]
fn acquire_by_a_second_member_is_refused_with_lease_held() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    assert_eq!(
        state.apply(2, &acquire("bob")),
        Outcome::LeaseHeld { holder: name("alice"), token: FencingToken(1) }
    );
    assert_eq!(state.leader, lease("alice", 1, 1));
}

#[test]
fn repeated_acquire_by_the_holder_returns_the_same_token_and_renews() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    assert_eq!(state.apply(5, &acquire("alice")), granted(1, 5));
    assert_eq!(state.leader, lease("alice", 1, 5));
}

#[test]
fn renew_by_the_holder_with_its_token_renews() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    assert_eq!(state.apply(2, &renew("alice", 1)), granted(1, 2));
    assert_eq!(state.apply(3, &renew("alice", 1)), granted(1, 3));
    assert_eq!(state.leader, lease("alice", 1, 3));
}

#[test]
fn renew_with_a_stale_token_is_refused_with_not_holder() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    state.apply(2, &expire_lease(1, 1));
    state.apply(3, &acquire("alice"));
    let before = state.clone();
    assert_eq!(
        state.apply(4, &renew("alice", 1)),
        Outcome::NotHolder { current: Some((name("alice"), FencingToken(3))) }
    );
    assert_eq!(state, only_revision_moved(&before, 4));
}

#[test]
fn renew_by_another_member_is_refused_with_not_holder() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    let before = state.clone();
    assert_eq!(
        state.apply(2, &renew("bob", 1)),
        Outcome::NotHolder { current: Some((name("alice"), FencingToken(1))) }
    );
    assert_eq!(state, only_revision_moved(&before, 2));
}

#[test]
fn renew_of_a_free_lease_is_refused_with_not_holder() {
    let mut state = ClusterState::default();
    assert_eq!(state.apply(1, &renew("alice", 1)), Outcome::NotHolder { current: None });
    assert_eq!(state.leader, None);
}

#[test]
fn release_by_the_holder_frees_the_lease() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    assert_eq!(state.apply(2, &release("alice", 1)), Outcome::LeaseReleased);
    assert_eq!(state.leader, None);
}

#[test]
fn release_with_a_wrong_token_is_refused() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    let before = state.clone();
    assert_eq!(
        state.apply(2, &release("alice", 2)),
        Outcome::NotHolder { current: Some((name("alice"), FencingToken(1))) }
    );
    assert_eq!(state, only_revision_moved(&before, 2));
    // Nor may another member release it with the right token.
    assert_eq!(
        state.apply(3, &release("bob", 1)),
        Outcome::NotHolder { current: Some((name("alice"), FencingToken(1))) }
    );
    assert_eq!(state.leader, lease("alice", 1, 1));
}

#[test]
fn expire_of_the_current_renewal_frees_the_lease() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    state.apply(2, &renew("alice", 1));
    assert_eq!(state.apply(3, &expire_lease(1, 2)), Outcome::Expired);
    assert_eq!(state.leader, None);
}

#[test]
fn expire_naming_an_older_renewal_is_stale_and_changes_nothing() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    state.apply(2, &renew("alice", 1));
    let before = state.clone();
    // The lessor timed the grant at 1, but the holder renewed at 2 meanwhile.
    assert_eq!(state.apply(3, &expire_lease(1, 1)), Outcome::Stale);
    assert_eq!(state, only_revision_moved(&before, 3));
}

#[test]
fn expire_naming_an_earlier_grant_is_stale_even_at_a_matching_renewal() {
    // A lessor's timer from a previous grant must not free a later one.
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    state.apply(2, &release("alice", 1));
    state.apply(3, &acquire("bob"));
    let before = state.clone();
    assert_eq!(state.apply(4, &expire_lease(1, 3)), Outcome::Stale);
    assert_eq!(state, only_revision_moved(&before, 4));
}

#[test]
fn acquire_after_expiry_gets_a_strictly_larger_token() {
    let mut state = ClusterState::default();
    state.apply(1, &acquire("alice"));
    state.apply(2, &expire_lease(1, 1));
    let Outcome::LeaseGranted { token, .. } = state.apply(3, &acquire("bob")) else { panic!("not granted") };
    assert!(token > FencingToken(1), "{token}");
    assert_eq!(state.leader, lease("bob", 3, 3));
}

// ---------------------------------------------------------------------------------------------------------
// Versioned keys
// ---------------------------------------------------------------------------------------------------------

#[test]
fn put_if_absent_creates_then_fails_with_the_current_version() {
    let mut state = ClusterState::default();
    let create = put(Key::Initialize, serde_json::json!("sysid-1"), Condition::Absent);
    assert_eq!(state.apply(1, &create), Outcome::Written { version: Revision(1) });
    let before = state.clone();
    let again = put(Key::Initialize, serde_json::json!("sysid-2"), Condition::Absent);
    assert_eq!(state.apply(2, &again), Outcome::ConditionFailed { current: Some(Revision(1)) });
    assert_eq!(state, only_revision_moved(&before, 2));
    assert_eq!(state.keys[&Key::Initialize].value, serde_json::json!("sysid-1"));
}

#[test]
fn compare_and_set_with_the_current_version_succeeds() {
    let mut state = ClusterState::default();
    state.apply(1, &put(Key::Config, serde_json::json!({"ttl": 30}), Condition::Absent));
    let cas = put(Key::Config, serde_json::json!({"ttl": 20}), Condition::Version(Revision(1)));
    assert_eq!(state.apply(2, &cas), Outcome::Written { version: Revision(2) });
    assert_eq!(state.keys[&Key::Config].value, serde_json::json!({"ttl": 20}));
    assert_eq!(state.keys[&Key::Config].version, Revision(2));
}

#[test]
fn compare_and_set_with_a_stale_version_fails_and_changes_nothing() {
    let mut state = ClusterState::default();
    state.apply(1, &put(Key::Config, serde_json::json!({"ttl": 30}), Condition::Absent));
    state.apply(2, &put(Key::Config, serde_json::json!({"ttl": 20}), Condition::Version(Revision(1))));
    let before = state.clone();
    let stale = put(Key::Config, serde_json::json!({"ttl": 10}), Condition::Version(Revision(1)));
    assert_eq!(state.apply(3, &stale), Outcome::ConditionFailed { current: Some(Revision(2)) });
    assert_eq!(state, only_revision_moved(&before, 3));
}

#[test]
fn compare_and_set_of_an_absent_key_fails() {
    let mut state = ClusterState::default();
    let cas = put(Key::Failover, serde_json::json!({}), Condition::Version(Revision(1)));
    assert_eq!(state.apply(1, &cas), Outcome::ConditionFailed { current: None });
    assert!(state.keys.is_empty());
}

#[test]
fn delete_with_the_current_version_deletes_and_with_a_stale_one_is_refused() {
    let mut state = ClusterState::default();
    state.apply(1, &put(Key::Failover, serde_json::json!({"leader": "alice"}), Condition::Absent));
    state.apply(2, &put(Key::Failover, serde_json::json!({"leader": "bob"}), Condition::Always));
    let before = state.clone();
    let stale = Command::Delete { key: Key::Failover, condition: Condition::Version(Revision(1)) };
    assert_eq!(state.apply(3, &stale), Outcome::ConditionFailed { current: Some(Revision(2)) });
    assert_eq!(state, only_revision_moved(&before, 3));
    let current = Command::Delete { key: Key::Failover, condition: Condition::Version(Revision(2)) };
    assert_eq!(state.apply(4, &current), Outcome::Deleted);
    assert!(!state.keys.contains_key(&Key::Failover));
}

#[test]
fn member_key_with_ttl_expires_only_at_its_current_version() {
    let mut state = ClusterState::default();
    let alice = member_key("alice");
    state.apply(1, &put_with_ttl(alice.clone(), serde_json::json!({"state": "running"}), TTL_MS));
    state.apply(2, &put_with_ttl(alice.clone(), serde_json::json!({"state": "running"}), TTL_MS));
    let before = state.clone();
    // The timer of the write at 1 ran out, but the member wrote again at 2.
    assert_eq!(state.apply(3, &expire_key(alice.clone(), 1)), Outcome::Stale);
    assert_eq!(state, only_revision_moved(&before, 3));
    assert_eq!(state.apply(4, &expire_key(alice.clone(), 2)), Outcome::Expired);
    assert!(!state.keys.contains_key(&alice));
    // Expiring it again (a duplicate proposal) is stale.
    assert_eq!(state.apply(5, &expire_key(alice, 2)), Outcome::Stale);
}

#[test]
fn keys_without_ttl_are_never_expired() {
    let mut state = ClusterState::default();
    state.apply(1, &put(Key::Config, serde_json::json!({}), Condition::Always));
    // Even a member key written without a ttl stays.
    state.apply(2, &put(member_key("bob"), serde_json::json!({}), Condition::Always));
    let before = state.clone();
    assert_eq!(state.apply(3, &expire_key(Key::Config, 1)), Outcome::Stale);
    assert_eq!(state.apply(4, &expire_key(member_key("bob"), 2)), Outcome::Stale);
    assert_eq!(state, only_revision_moved(&before, 4));
}

#[test]
fn expiry_targets_lists_exactly_the_lease_and_the_ttld_keys() {
    let mut state = ClusterState::default();
    assert_eq!(state.expiry_targets(), vec![]);
    state.apply(1, &acquire("alice"));
    state.apply(2, &put(Key::Config, serde_json::json!({}), Condition::Always));
    state.apply(3, &put_with_ttl(member_key("alice"), serde_json::json!({}), 5_000));
    state.apply(4, &put_with_ttl(member_key("bob"), serde_json::json!({}), 7_000));
    state.apply(5, &put(member_key("carol"), serde_json::json!({}), Condition::Always));
    state.apply(6, &renew("alice", 1));
    let mut targets = state.expiry_targets();
    targets.sort_by_key(|(target, _)| format!("{target:?}"));
    let mut expected = vec![
        (
            ExpiryTarget::Leader { token: FencingToken(1), renewed_at: Revision(6) },
            Duration::from_millis(TTL_MS),
        ),
        (ExpiryTarget::Key { key: member_key("alice"), version: Revision(3) }, Duration::from_millis(5_000)),
        (ExpiryTarget::Key { key: member_key("bob"), version: Revision(4) }, Duration::from_millis(7_000)),
    ];
    expected.sort_by_key(|(target, _)| format!("{target:?}"));
    assert_eq!(targets, expected);
}

// ---------------------------------------------------------------------------------------------------------
// Properties over random command logs
//
// A log is generated as abstract `Op`s that are resolved against the state while it is applied, so that
// renewals with the current token, compare-and-sets at the current version and expiries of the current
// version all happen often, next to stale ones drawn from the indices seen so far.
// ---------------------------------------------------------------------------------------------------------

const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];

fn all_keys() -> [Key; 5] {
    [Key::Initialize, Key::Config, Key::Failover, member_key("alice"), member_key("bob")]
}

/// How a token, version or revision in a command is chosen.
#[derive(Debug, Clone)]
enum Pick {
    /// The current one (of the lease, or the key), when there is one.
    Current,
    /// Some index seen so far, or 0 (never a valid one).
    Seen(Index),
}

/// Who asks to renew or release.
#[derive(Debug, Clone)]
enum Who {
    /// The current holder, when there is one.
    Holder,
    Member(usize),
}

/// The condition of a put or delete.
#[derive(Debug, Clone)]
enum CondPick {
    Always,
    Absent,
    Version(Pick),
}

/// One command, with its tokens, versions and askers still to be chosen against the state.
#[derive(Debug, Clone)]
enum Op {
    Acquire { member: usize, ttl_ms: u64 },
    Renew { who: Who, token: Pick },
    Release { who: Who, token: Pick },
    Put { key: usize, value: u8, condition: CondPick, ttl_ms: Option<u64> },
    Delete { key: usize, condition: CondPick },
    ExpireLease { token: Pick, renewed_at: Pick },
    ExpireKey { key: usize, version: Pick },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![3 => Just(Pick::Current), 2 => any::<Index>().prop_map(Pick::Seen)]
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![2 => Just(Who::Holder), 1 => (0..MEMBERS.len()).prop_map(Who::Member)]
}

fn cond_pick() -> impl Strategy<Value = CondPick> {
    prop_oneof![1 => Just(CondPick::Always), 1 => Just(CondPick::Absent), 3 => pick().prop_map(CondPick::Version)]
}

fn ttl() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![1_000, 10_000, 30_000])
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..all_keys().len();
    prop_oneof![
        3 => (0..MEMBERS.len(), ttl()).prop_map(|(member, ttl_ms)| Op::Acquire { member, ttl_ms }),
        4 => (who(), pick()).prop_map(|(who, token)| Op::Renew { who, token }),
        1 => (who(), pick()).prop_map(|(who, token)| Op::Release { who, token }),
        4 => (key.clone(), any::<u8>(), cond_pick(), prop::option::of(ttl()))
            .prop_map(|(key, value, condition, ttl_ms)| Op::Put { key, value, condition, ttl_ms }),
        2 => (key.clone(), cond_pick()).prop_map(|(key, condition)| Op::Delete { key, condition }),
        2 => (pick(), pick()).prop_map(|(token, renewed_at)| Op::ExpireLease { token, renewed_at }),
        2 => (key, pick()).prop_map(|(key, version)| Op::ExpireKey { key, version }),
    ]
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 0..=60)
}

/// Turns `op` into the command of the entry at `index`, given the state before it.
fn resolve(op: &Op, state: &ClusterState, index: u64) -> Command {
    // Every index before this one (tokens, versions and renewals are all among them), and 0.
    let seen = |i: &Index| i.index(index as usize) as u64;
    let lease = state.leader.as_ref();
    let token = |p: &Pick| match (p, lease) {
        (Pick::Current, Some(l)) => l.token,
        (Pick::Current, None) => FencingToken(0),
        (Pick::Seen(i), _) => FencingToken(seen(i)),
    };
    let who = |w: &Who| match (w, lease) {
        (Who::Holder, Some(l)) => l.holder.clone(),
        (Who::Holder, None) => name(MEMBERS[0]),
        (Who::Member(m), _) => name(MEMBERS[*m]),
    };
    let key = |k: usize| all_keys()[k].clone();
    let version = |k: &Key, p: &Pick| match p {
        Pick::Current => state.keys.get(k).map_or(Revision(0), |v| v.version),
        Pick::Seen(i) => Revision(seen(i)),
    };
    let condition = |k: &Key, c: &CondPick| match c {
        CondPick::Always => Condition::Always,
        CondPick::Absent => Condition::Absent,
        CondPick::Version(p) => Condition::Version(version(k, p)),
    };
    match op {
        Op::Acquire { member, ttl_ms } => {
            Command::AcquireLease { holder: name(MEMBERS[*member]), ttl_ms: *ttl_ms, incarnation: 0 }
        }
        Op::Renew { who: w, token: t } => {
            Command::RenewLease { holder: who(w), token: token(t), incarnation: 0 }
        }
        Op::Release { who: w, token: t } => Command::ReleaseLease { holder: who(w), token: token(t) },
        Op::Put { key: k, value, condition: c, ttl_ms } => {
            let key = key(*k);
            let condition = condition(&key, c);
            // Integer values only: floats do not survive JSON exactly (see the known issues at the end).
            Command::Put { key, value: serde_json::json!({ "v": value }), condition, ttl_ms: *ttl_ms }
        }
        Op::Delete { key: k, condition: c } => {
            let key = key(*k);
            let condition = condition(&key, c);
            Command::Delete { key, condition }
        }
        Op::ExpireLease { token: t, renewed_at } => {
            let renewed_at = match (renewed_at, lease) {
                (Pick::Current, Some(l)) => l.renewed_at,
                (Pick::Current, None) => Revision(0),
                (Pick::Seen(i), _) => Revision(seen(i)),
            };
            Command::Expire(ExpiryTarget::Leader { token: token(t), renewed_at })
        }
        Op::ExpireKey { key: k, version: p } => {
            let key = key(*k);
            let version = version(&key, p);
            Command::Expire(ExpiryTarget::Key { key, version })
        }
    }
}

/// One applied entry.
#[derive(Debug)]
struct Step {
    index: u64,
    command: Command,
    before: ClusterState,
    outcome: Outcome,
    after: ClusterState,
}

/// Applies `ops` at indices 1, 2, 3 … to a fresh state.
fn run(ops: &[Op]) -> Vec<Step> {
    let mut state = ClusterState::default();
    ops.iter()
        .zip(1..)
        .map(|(op, index)| {
            let command = resolve(op, &state, index);
            let before = state.clone();
            let outcome = state.apply(index, &command);
            Step { index, command, before, outcome, after: state.clone() }
        })
        .collect()
}

fn apply_all(state: &mut ClusterState, log: &[(u64, Command)]) -> Vec<Outcome> {
    log.iter().map(|(index, command)| state.apply(*index, command)).collect()
}

/// Whether `target` names the current version of something that expires.
fn is_current(state: &ClusterState, target: &ExpiryTarget) -> bool {
    match target {
        ExpiryTarget::Leader { token, renewed_at } => {
            state.leader.as_ref().is_some_and(|l| l.token == *token && l.renewed_at == *renewed_at)
        }
        ExpiryTarget::Key { key, version } => {
            state.keys.get(key).is_some_and(|v| v.version == *version && v.ttl_ms.is_some())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Fencing: every grant to a new holder carries a token larger than every token granted before (so
    /// none is ever reused), and a lease never changes hands except through such a grant.
    #[test]
    fn tokens_of_new_grants_strictly_increase(ops in ops()) {
        let mut last_granted: Option<FencingToken> = None;
        for step in run(&ops) {
            let previous = step.before.leader.as_ref().map(|l| l.token);
            if let Outcome::LeaseGranted { token, .. } = step.outcome {
                if previous != Some(token) {
                    prop_assert_eq!(token, FencingToken(step.index));
                    prop_assert!(last_granted.is_none_or(|last| token > last), "{token} after {last_granted:?}");
                    last_granted = Some(token);
                }
            }
            let now = step.after.leader.as_ref().map(|l| l.token);
            if now.is_some() && now != previous {
                prop_assert_eq!(now, last_granted, "the lease changed hands without a grant: {:?}", step);
            }
        }
    }

    /// Only the holder presenting its current token renews: any other renew is refused with the lease as
    /// it is and changes nothing but the revision; the holder's own always succeeds.
    #[test]
    fn renew_succeeds_only_for_the_holder_with_its_token(ops in ops()) {
        for step in run(&ops) {
            let Command::RenewLease { holder, token, .. } = &step.command else { continue };
            match &step.before.leader {
                Some(l) if &l.holder == holder && l.token == *token => {
                    prop_assert_eq!(&step.outcome, &Outcome::LeaseGranted { token: *token, renewed_at: Revision(step.index) });
                    let renewed = Lease { renewed_at: Revision(step.index), ..l.clone() };
                    prop_assert_eq!(&step.after.leader, &Some(renewed));
                }
                current => {
                    let current = current.as_ref().map(|l| (l.holder.clone(), l.token));
                    prop_assert_eq!(&step.outcome, &Outcome::NotHolder { current });
                    prop_assert_eq!(&step.after, &only_revision_moved(&step.before, step.index));
                }
            }
        }
    }

    /// Compare-and-set: a put or delete conditioned on a version other than the key's current one (or on a
    /// key that is absent) is refused with the current version and changes nothing but the revision.
    #[test]
    fn writes_at_a_stale_version_are_refused(ops in ops()) {
        for step in run(&ops) {
            let (key, expected) = match &step.command {
                Command::Put { key, condition: Condition::Version(v), .. }
                | Command::Delete { key, condition: Condition::Version(v) } => (key, *v),
                _ => continue,
            };
            let current = step.before.keys.get(key).map(|v| v.version);
            if current != Some(expected) {
                prop_assert_eq!(&step.outcome, &Outcome::ConditionFailed { current });
                prop_assert_eq!(&step.after, &only_revision_moved(&step.before, step.index));
            } else {
                prop_assert!(matches!(step.outcome, Outcome::Written { .. } | Outcome::Deleted), "{:?}", step);
            }
        }
    }

    /// Expiry without clocks: an `Expire` naming anything but the current version of the lease or of a ttl'd
    /// key is `Stale` and changes nothing but the revision; one naming the current version removes it.
    #[test]
    fn expiry_of_a_version_that_is_not_current_is_stale(ops in ops()) {
        for step in run(&ops) {
            let Command::Expire(target) = &step.command else { continue };
            if is_current(&step.before, target) {
                prop_assert_eq!(&step.outcome, &Outcome::Expired);
                prop_assert!(!is_current(&step.after, target));
                prop_assert!(!step.after.expiry_targets().iter().any(|(t, _)| t == target));
            } else {
                prop_assert_eq!(&step.outcome, &Outcome::Stale);
                prop_assert_eq!(&step.after, &only_revision_moved(&step.before, step.index));
            }
        }
    }

    /// Replicas and restarts agree: the same log gives the same outcomes and state on two fresh replicas;
    /// a state restored from a JSON snapshot taken anywhere, then fed the rest, ends where the full replay
    /// ends; and the log's commands survive JSON (as Raft entries) unchanged.
    #[test]
    fn replay_and_snapshot_restore_are_deterministic(ops in ops(), split in any::<Index>()) {
        let log: Vec<(u64, Command)> = run(&ops).into_iter().map(|s| (s.index, s.command)).collect();
        let (mut one, mut two) = (ClusterState::default(), ClusterState::default());
        let outcomes = apply_all(&mut one, &log);
        prop_assert_eq!(&outcomes, &apply_all(&mut two, &log));
        prop_assert_eq!(&one, &two);

        let (head, tail) = log.split_at(split.index(log.len() + 1));
        let mut snapshotted = ClusterState::default();
        apply_all(&mut snapshotted, head);
        let json = serde_json::to_string(&snapshotted).expect("serialize the state");
        let mut restored: ClusterState = serde_json::from_str(&json).expect("deserialize the state");
        prop_assert_eq!(&restored, &snapshotted);
        prop_assert_eq!(&apply_all(&mut restored, tail), &outcomes[head.len()..]);
        prop_assert_eq!(&restored, &one);

        for (_, command) in &log {
            let json = serde_json::to_string(command).expect("serialize a command");
            prop_assert_eq!(&serde_json::from_str::<Command>(&json).expect("deserialize a command"), command);
        }
    }

    /// The lease is one record, held by the member last granted it, and `token <= renewed_at <= revision`
    /// at every step; a grant always leaves the asker holding it, a refusal (`LeaseHeld`) names the holder.
    #[test]
    fn the_lease_is_held_by_one_member_with_ordered_revisions(ops in ops()) {
        for step in run(&ops) {
            prop_assert_eq!(step.after.revision, Revision(step.index));
            if let Some(l) = &step.after.leader {
                prop_assert!(l.token.0 <= l.renewed_at.0 && l.renewed_at <= step.after.revision, "{:?}", l);
            }
            let asker = match &step.command {
                Command::AcquireLease { holder, .. } | Command::RenewLease { holder, .. } => Some(holder),
                _ => None,
            };
            match (&step.outcome, asker) {
                (Outcome::LeaseGranted { token, renewed_at }, Some(asker)) => {
                    let l = step.after.leader.as_ref().expect("a grant leaves a lease");
                    prop_assert_eq!((&l.holder, l.token, l.renewed_at), (asker, *token, *renewed_at));
                    prop_assert_eq!(*renewed_at, Revision(step.index));
                }
                (Outcome::LeaseHeld { holder, token }, Some(asker)) => {
                    let l = step.before.leader.as_ref().expect("held means a lease exists");
                    prop_assert!(holder != asker);
                    prop_assert_eq!((&l.holder, l.token), (holder, *token));
                    prop_assert_eq!(&step.after, &only_revision_moved(&step.before, step.index));
                }
                (Outcome::LeaseGranted { .. } | Outcome::LeaseHeld { .. }, None) => {
                    prop_assert!(false, "a lease outcome for {:?}", step.command);
                }
                _ => {}
            }
        }
    }
}

/// The generator is not vacuous: over a fixed sample of logs, every interesting case of the properties
/// above happens many times.
#[test]
fn generated_logs_exercise_every_case() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;

    let mut runner = TestRunner::deterministic();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for _ in 0..200 {
        let ops = ops().new_tree(&mut runner).expect("generate").current();
        for step in run(&ops) {
            let case = match (&step.command, &step.outcome) {
                (Command::AcquireLease { .. }, Outcome::LeaseGranted { token, .. })
                    if step.before.leader.is_none() && token.0 == step.index =>
                {
                    "fresh grant"
                }
                (Command::AcquireLease { .. }, Outcome::LeaseGranted { .. }) => "acquire by holder",
                (Command::AcquireLease { .. }, Outcome::LeaseHeld { .. }) => "lease held",
                (Command::RenewLease { .. }, Outcome::LeaseGranted { .. }) => "renewed",
                (Command::RenewLease { .. }, Outcome::NotHolder { current: Some(_) }) => "renew refused",
                (Command::ReleaseLease { .. }, Outcome::LeaseReleased) => "released",
                (Command::Put { condition: Condition::Version(_), .. }, Outcome::Written { .. }) => {
                    "cas written"
                }
                (Command::Put { condition: Condition::Version(_), .. }, Outcome::ConditionFailed { .. }) => {
                    "cas refused"
                }
                (Command::Delete { condition: Condition::Version(_), .. }, Outcome::Deleted) => "cas deleted",
                (Command::Expire(ExpiryTarget::Leader { .. }), Outcome::Expired) => "lease expired",
                (Command::Expire(ExpiryTarget::Leader { .. }), Outcome::Stale) => "lease expiry stale",
                (Command::Expire(ExpiryTarget::Key { .. }), Outcome::Expired) => "key expired",
                (Command::Expire(ExpiryTarget::Key { .. }), Outcome::Stale) => "key expiry stale",
                _ => continue,
            };
            *seen.entry(case).or_default() += 1;
        }
    }
    for case in [
        "fresh grant",
        "acquire by holder",
        "lease held",
        "renewed",
        "renew refused",
        "released",
        "cas written",
        "cas refused",
        "cas deleted",
        "lease expired",
        "lease expiry stale",
        "key expired",
        "key expiry stale",
    ] {
        assert!(seen.get(case).copied().unwrap_or(0) >= 20, "{case} happened too rarely: {seen:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Snapshot round trips of values that once did not survive one.
// ---------------------------------------------------------------------------------------------------------

/// A member key can only be built from a valid name, so every member key a snapshot holds reads back.
#[test]
fn member_keys_with_names_that_would_not_read_back_cannot_be_built() {
    for bad in ["", "a/b"] {
        assert!(MemberName::new(bad).is_err(), "{bad:?}");
        assert!(format!("members/{bad}").parse::<Key>().is_err(), "{bad:?}");
    }
}

/// serde_json with `float_roundtrip` parses back exactly the float it printed, so a value holding a float
/// is the same after a snapshot round trip (or after travelling in a log entry) as on a replica that
/// applied the entry directly.
#[test]
fn snapshot_with_a_float_value_restores_it_exactly() {
    let mut state = ClusterState::default();
    state.apply(
        1,
        &put(Key::Status, serde_json::json!({ "ratio": 985.6906946328695_f64 }), Condition::Always),
    );
    let json = serde_json::to_string(&state).expect("serialize the state");
    let restored: ClusterState = serde_json::from_str(&json).expect("deserialize the state");
    assert_eq!(restored, state, "{json}");
}
