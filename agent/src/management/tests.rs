//! `PATCH`/`PUT /config` against a one-node store, with no database: what is refused leaves the store as
//! it was.

use super::*;
use crate::ha::restart_tests::store;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_parameters_are_refused_naming_each_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let before = json!({"postgresql": {"parameters": {"work_mem": "8MB"}}});
    dcs.put(&Key::Config, before.clone(), Condition::Absent, None).await.expect("config");
    let version = dcs.local().keys[&Key::Config].version;
    // The loop's side accepts every value, as a database that knows these parameters would.
    let (commands, mut requests) = Commands::channel();
    let answering = tokio::spawn(async move {
        while let Some((_, reply)) = requests.recv().await {
            let _ = reply.send(Ok("valid".to_owned()));
        }
    });
    let management = AgentManagement::new(dcs.clone(), "test".into(), DynamicConfig::default(), commands);
    // Issue 13: this PATCH made every member run the command as the postgres OS user.
    let patch = json!({"postgresql": {"parameters": {
        "archive_cleanup_command": "touch /tmp/x", "shared_preload_libraries": "x"}}});
    for replace in [false, true] {
        let err = management.set_config(patch.clone(), replace).await.unwrap_err();
        assert_eq!(err.status, 400, "{err:?}");
        for named in [r#"archive_cleanup_command = "touch /tmp/x""#, r#"shared_preload_libraries = "x""#] {
            assert!(err.message.contains(named), "{named} not in {:?}", err.message);
        }
    }
    let stored = &dcs.local().keys[&Key::Config];
    assert_eq!((stored.version, &stored.value), (version, &before));
    drop(management);
    answering.await.expect("answering task");
}

#[test]
fn a_standby_cluster_refuses_a_switchover_and_says_why() {
    let standby = crate::config::StandbyCluster {
        host: "10.1.0.9".into(),
        port: 5432,
        primary_slot_name: None,
        restore_command: None,
    };
    let dynamic = DynamicConfig { standby_cluster: Some(standby), ..DynamicConfig::default() };
    let request = SwitchoverRequest { leader: Some("a".into()), ..Default::default() };
    let err = plan(&ClusterView::default(), &request, false, &dynamic, true).unwrap_err();
    assert_eq!(err.status, 412);
    assert_eq!(
        err.message,
        "this is a standby cluster of 10.1.0.9:5432: its leader replicates from there and is never switched over \
         here; promote the cluster first (vigil promote-cluster)"
    );
}

/// Patroni's `basic_replication.feature` patches `master_start_timeout` (the former name of
/// `primary_start_timeout`) over a stored configuration that has the current name.
#[test]
fn a_patch_in_the_former_name_replaces_the_stored_value() {
    let bootstrap = DynamicConfig::default();
    let stored = serde_json::to_value(&bootstrap).expect("stored");
    assert!(stored.get("primary_start_timeout").is_some(), "{stored}");
    let (parsed, config) =
        patched_config(Some(&stored), &bootstrap, &json!({"master_start_timeout": 0}), false).expect("valid");
    assert_eq!(parsed.primary_start_timeout, std::time::Duration::ZERO);
    assert!(config.get("master_start_timeout").is_none(), "{config}");
}
