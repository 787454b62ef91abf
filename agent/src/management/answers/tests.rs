//! The typed answers keep the JSON Patroni's clients read, key for key.

use super::*;
use crate::db::Position;
use crate::ha::{Switchover, SyncState};
use crate::member::MemberRecord;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use vigil_api::PendingChange;
use vigil_dcs::{FencingToken, MemberName};

fn name(n: &str) -> MemberName {
    MemberName::new(n).expect("name")
}

fn record(state: &str, role: &str, at: Option<u64>) -> MemberRecord {
    MemberRecord {
        conn_url: "postgres://10.0.0.1:5432/postgres".into(),
        api_url: "http://10.0.0.1:8008/patroni".into(),
        state: state.into(),
        role: role.into(),
        host: "10.0.0.1".into(),
        port: 5432,
        position: at.map(Position::wal),
        xlog_location: at,
        replay_lsn: None,
        timeline: Some(2),
        replication_state: None,
        reason: None,
        why: None,
        tags: BTreeMap::new(),
        sync_state: None,
        pending_restart: false,
        pending_restart_reason: BTreeMap::new(),
        diverged: None,
        data_set_aside: None,
        proxy_url: None,
        upstream: None,
    }
}

/// Three members: `a` leads, `b` streams and is a sync standby with a restart pending, `c` is stopped
/// with no position; a scheduled switchover; paused, synchronous mode on.
fn busy_view() -> (ClusterView, BTreeMap<MemberName, MemberRecord>, DynamicConfig) {
    let mut b = record("running", "replica", Some(0x3000000));
    b.replication_state = Some("streaming".into());
    b.replay_lsn = Some(Position::wal(0x2FFFF00));
    b.tags.insert("zone".into(), json!("eu-1"));
    b.pending_restart = true;
    b.pending_restart_reason.insert(
        "shared_buffers".into(),
        PendingChange { old_value: "128MB".into(), new_value: "256MB".into() },
    );
    let mut c = record("stopped", "replica", None);
    c.timeline = None;
    c.reason = Some("not taking over: 2 bytes behind".into());
    let mut a = record("running", "primary", Some(0x3000060));
    a.sync_state = Some("sync".into());
    let records = BTreeMap::from([(name("a"), a), (name("b"), b), (name("c"), c)]);
    let view = ClusterView {
        leader: Some((name("a"), FencingToken(42))),
        members: records.iter().map(|(n, r)| (n.clone(), r.view())).collect(),
        optime: Some(Position::wal(0x3000060)),
        switchover: Some(Switchover {
            leader: Some(name("a")),
            candidate: None,
            scheduled_at: Some(vigil_api::Schedule::parse("2026-11-22T15:30:00+01:00").expect("time")),
            allow_data_loss: false,
        }),
        sync: Some(SyncState { leader: Some(name("a")), sync_standby: vec!["b".into()], quorum: None }),
        ..ClusterView::default()
    };
    let dynamic =
        DynamicConfig { synchronous_mode: SynchronousMode::On, pause: true, ..DynamicConfig::default() };
    (view, records, dynamic)
}

/// The JSON the management route answers: the typed value through `serde_json::Value`.
fn answered(cluster: &Cluster) -> String {
    serde_json::to_value(cluster).expect("json").to_string()
}

#[test]
fn a_busy_cluster_answers_as_before() {
    let (view, records, dynamic) = busy_view();
    let expected = concat!(
        r#"{"fencing_token":42,"members":["#,
        r#"{"api_url":"http://10.0.0.1:8008/patroni","host":"10.0.0.1","lag":0,"lsn":"0/3000060","name":"a","port":5432,"reason":null,"receive_lsn":null,"replay_lsn":null,"role":"leader","state":"running","sync_state":"sync","tags":{},"timeline":2},"#,
        r#"{"api_url":"http://10.0.0.1:8008/patroni","host":"10.0.0.1","lag":96,"lsn":"0/3000000","name":"b","pending_restart":true,"pending_restart_reason":{"shared_buffers":{"new_value":"256MB","old_value":"128MB"}},"port":5432,"reason":null,"receive_lsn":"0/3000000","replay_lsn":"0/2FFFF00","role":"sync_standby","state":"streaming","sync_state":null,"tags":{"zone":"eu-1"},"timeline":2},"#,
        r#"{"api_url":"http://10.0.0.1:8008/patroni","host":"10.0.0.1","lag":"unknown","lsn":null,"name":"c","port":5432,"reason":"not taking over: 2 bytes behind","receive_lsn":null,"replay_lsn":null,"role":"replica","state":"stopped","sync_state":null,"tags":{},"timeline":null}"#,
        r#"],"pause":true,"scheduled_switchover":{"at":"2026-11-22T15:30:00+01:00","from":"a","to":null},"scope":"demo","synchronous_mode":"on"}"#,
    );
    let typed = cluster("demo", &view, &records, &dynamic);
    assert_eq!(answered(&typed), old_cluster_json("demo", &view, &records, &dynamic).to_string());
    assert_eq!(answered(&typed), expected);
}

#[test]
fn a_quiet_cluster_answers_as_before() {
    let (mut view, records, _) = busy_view();
    view.leader = None;
    view.switchover = None;
    view.optime = None;
    for sync in [None, Some(SyncState { leader: None, sync_standby: vec!["b".into()], quorum: Some(1) })] {
        view.sync = sync;
        for dynamic in [
            DynamicConfig::default(),
            DynamicConfig { synchronous_mode: SynchronousMode::Quorum, ..DynamicConfig::default() },
        ] {
            let typed = cluster("q", &view, &records, &dynamic);
            assert_eq!(answered(&typed), old_cluster_json("q", &view, &records, &dynamic).to_string());
        }
    }
    let quorum = SyncState { leader: Some(name("a")), sync_standby: vec!["b".into()], quorum: Some(1) };
    view.leader = Some((name("a"), FencingToken(7)));
    view.sync = Some(quorum);
    let dynamic = DynamicConfig { synchronous_mode: SynchronousMode::Quorum, ..DynamicConfig::default() };
    let typed = cluster("q", &view, &records, &dynamic);
    assert_eq!(answered(&typed), old_cluster_json("q", &view, &records, &dynamic).to_string());
    assert_eq!(typed.members[1].role, "quorum_standby");
    let empty = cluster("e", &ClusterView::default(), &BTreeMap::new(), &DynamicConfig::default());
    assert_eq!(answered(&empty), r#"{"members":[],"scope":"e"}"#);
}

/// The answer as the agent built it before it was typed, kept to compare.
fn old_cluster_json(
    scope: &str,
    view: &ClusterView,
    records: &BTreeMap<MemberName, MemberRecord>,
    dynamic: &DynamicConfig,
) -> Value {
    let optime = view.optime;
    let leader = view.leader.as_ref().map(|(name, _)| name.clone());
    let sync = view.sync.as_ref().filter(|s| {
        dynamic.synchronous_mode != SynchronousMode::Off && s.leader.is_some() && s.leader == leader
    });
    let members: Vec<Value> = records
        .iter()
        .map(|(name, m)| {
            let listed = sync.filter(|s| s.sync_standby.iter().any(|n| n == name.as_str()));
            let role = match listed {
                _ if Some(name) == leader.as_ref() => "leader",
                Some(s) if s.quorum.is_some() => "quorum_standby",
                Some(_) => "sync_standby",
                None => "replica",
            };
            let lag = match (optime, m.position) {
                (Some(primary), Some(mine)) if role != "leader" => json!(mine.lag_behind(primary).unwrap()),
                (_, Some(_)) if role == "leader" => json!(0),
                _ => json!("unknown"),
            };
            let mut member = json!({
                "name": name, "role": role, "state": m.replication_state.as_deref().unwrap_or(&m.state),
                "api_url": m.api_url, "host": m.host, "port": m.port, "timeline": m.timeline,
                "lsn": m.position.map(|p| p.to_string()), "lag": lag,
                "receive_lsn": m.position.filter(|_| role != "leader").map(|p| p.to_string()),
                "replay_lsn": m.replay_lsn.map(|p| p.to_string()),
                "tags": m.tags, "reason": m.reason, "sync_state": m.sync_state,
            });
            if m.pending_restart {
                member["pending_restart"] = json!(true);
                member["pending_restart_reason"] = json!(m.pending_restart_reason);
            }
            member
        })
        .collect();
    let mut cluster = json!({ "scope": scope, "members": members });
    if let Some((_, token)) = &view.leader {
        cluster["fencing_token"] = json!(token.0);
    }
    if dynamic.synchronous_mode != SynchronousMode::Off {
        cluster["synchronous_mode"] = json!(dynamic.synchronous_mode.as_str());
    }
    if dynamic.pause {
        cluster["pause"] = json!(true);
    }
    if let Some(request) = &view.switchover {
        cluster["scheduled_switchover"] =
            json!({ "at": request.scheduled_at, "from": request.leader, "to": request.candidate });
    }
    cluster
}

#[test]
fn witnesses_are_listed_with_their_raft_address_and_role() {
    use vigil_dcs::{RaftMember, RaftStatus};
    let node = |addr: &str, name: &str, witness| RaftMember { addr: addr.into(), name: name.into(), witness };
    let raft = RaftStatus {
        node_id: 1,
        term: 1,
        leader: Some(1),
        voters: [1, 2, 3].into(),
        nodes: BTreeMap::from([
            (1, node("10.0.0.1:5010", "pg1", false)),
            (3, node("10.0.0.3:5010", "w", true)),
            (4, node("[::1]:5010", "w2", true)),
            (5, node("10.0.0.5:5010", "", true)),
        ]),
        lag: BTreeMap::new(),
        last_applied: None,
        purged: None,
        committed: None,
    };
    let listed = witnesses(&raft);
    let shown: Vec<_> = listed
        .iter()
        .map(|m| (m.name.as_str(), m.role.as_str(), m.state.as_str(), m.host.as_str(), m.port))
        .collect();
    assert_eq!(
        shown,
        [("w", "witness", "voter", "10.0.0.3", 5010), ("w2", "witness", "learner", "::1", 5010)]
    );
}

#[test]
fn why_a_member_does_not_take_over_is_shown_only_while_nobody_holds_the_lease() {
    let (mut view, mut records, dynamic) = busy_view();
    records.get_mut(&name("c")).expect("c").why = Some("nofailover tag".into());
    let why = |cluster: &Cluster| -> Vec<Option<String>> {
        cluster.members.iter().map(|m| m.why.clone()).collect()
    };
    let led = cluster("demo", &view, &records, &dynamic);
    assert_eq!(why(&led), [None, None, None], "a record one cycle old under a new primary");
    view.leader = None;
    let leaderless = cluster("demo", &view, &records, &dynamic);
    assert_eq!(why(&leaderless), [None, None, Some("nofailover tag".to_owned())]);
    let json = serde_json::to_value(&leaderless).expect("json");
    assert_eq!(json["members"][2]["why"], "nofailover tag");
    assert!(json["members"][1].get("why").is_none(), "absent, not null: {json}");
}
