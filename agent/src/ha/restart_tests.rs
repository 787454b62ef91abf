//! `POST /restart` on the primary runs off the HA loop: while the database takes longer than a ttl to
//! stop, the loop's cycles keep renewing the lease (and so petting the watchdog), and the caller gets its
//! answer when the restart is done. Issue 12: the restart used to run inline, between two cycles. Also
//! `postgres_version` and `timeout`, and `/liveness` following the loop's cycles, on the same primary.

use super::commands::LocalCommand;
use super::identity::Identity;
use super::run::Agent;
use crate::config::DynamicConfig;
use crate::db::{DataState, Database, DbError, DbState, Role, StopMode, SyncRule, Upstream};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use vigil_api::RestartRequest;
use vigil_dcs::{Condition, DcsConfig, DcsNode, Key, MemberName};

/// A primary whose fast stop takes [`SLOW_STOP`].
#[derive(Default)]
struct SlowPrimary {
    stopped: AtomicBool,
}

const SLOW_STOP: Duration = Duration::from_millis(2500);

impl Database for SlowPrimary {
    fn connection_url(host: &str, port: u16) -> String {
        format!("slow://{host}:{port}")
    }

    async fn observe(&self) -> DbState {
        let data = DataState::Present { system_id: "1".into(), was_primary: true };
        if self.stopped.load(Ordering::SeqCst) {
            return DbState::stopped(data);
        }
        let server_version = Some(150004);
        DbState {
            running: true,
            role: Some(Role::Primary),
            timeline: Some(1),
            server_version,
            ..DbState::stopped(data)
        }
    }
    async fn bootstrap(&self, _: Option<u64>) -> Result<(), DbError> {
        Ok(())
    }
    async fn clone_from(&self, _: &Upstream) -> Result<(), DbError> {
        Ok(())
    }
    async fn repair_from(&self, _: &Upstream) -> Result<(), DbError> {
        Ok(())
    }
    async fn remove_data(&self) -> Result<(), DbError> {
        Ok(())
    }
    async fn start_primary(&self, _: Option<u64>) -> Result<(), DbError> {
        self.stopped.store(false, Ordering::SeqCst);
        Ok(())
    }
    async fn follow(&self, _: Option<&Upstream>) -> Result<(), DbError> {
        Ok(())
    }
    async fn stop(&self, _: StopMode) -> Result<(), DbError> {
        tokio::time::sleep(SLOW_STOP).await;
        self.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn kill(&self) -> Result<(), DbError> {
        self.stopped.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn promote(&self, _: u64) -> Result<(), DbError> {
        Ok(())
    }
    async fn retain_for(
        &self,
        _: &crate::db::Retained,
    ) -> Result<std::collections::BTreeMap<String, u64>, DbError> {
        Ok(Default::default())
    }
    async fn set_sync_rule(&self, _: &SyncRule) -> Result<(), DbError> {
        Ok(())
    }
    async fn set_parameters(&self, _: &BTreeMap<String, String>) -> Result<(), DbError> {
        Ok(())
    }
    async fn set_upstream_timeout(&self, _: Duration) -> Result<(), DbError> {
        Ok(())
    }

    async fn set_use_slots(&self, _: bool) -> Result<(), DbError> {
        Ok(())
    }
    fn die_with_agent(&self, _: bool) {}

    async fn check_parameters(&self, _: &BTreeMap<String, String>) -> Result<(), String> {
        Ok(())
    }
}

/// A one-node store, ready for writes (the management tests use it too).
pub(crate) async fn store(dir: &std::path::Path) -> Arc<DcsNode> {
    let dcs = DcsNode::start(DcsConfig::new(1, "test", dir)).await.expect("store");
    dcs.initialize(BTreeMap::from([(1, "127.0.0.1:1".to_owned())])).await.expect("initialize");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dcs.put(&Key::Status, 0.into(), Condition::Always, None).await.is_err() {
        assert!(Instant::now() < deadline, "the one-node store never took a write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Arc::new(dcs)
}

/// A 1 s ttl with cycles of 100 ms: the holder's deadline is 0.8 s after each renewal.
fn fast_timing() -> DynamicConfig {
    DynamicConfig {
        ttl: Duration::from_secs(1),
        loop_wait: Duration::from_millis(100),
        retry_timeout: Duration::from_millis(200),
        safety_margin: Duration::from_millis(200),
        ..DynamicConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_renewed_while_a_restart_takes_longer_than_the_ttl() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    // The holder's deadline is 0.8 s after each renewal, well inside the 2.5 s stop.
    let dynamic = fast_timing();
    let me = identity(&dynamic);
    let db = Arc::new(SlowPrimary::default());
    let mut agent = Agent::new(me, dcs.clone(), db.clone(), Arc::default());
    agent.acquire(&dynamic, std::time::SystemTime::now()).await;
    assert!(agent.holds_lease());

    let (reply, mut answer) = oneshot::channel();
    let asked = Instant::now();
    agent.dispatch(LocalCommand::Restart(RestartRequest::default()), reply).await;
    assert!(asked.elapsed() < SLOW_STOP / 2, "the restart held the loop for {:?}", asked.elapsed());
    let renewed_at = |dcs: &DcsNode| dcs.local().leader.as_ref().map(|l| l.renewed_at);
    let before = renewed_at(&dcs);
    // What `Agent::run` does meanwhile: a cycle every loop_wait.
    while agent.busy() {
        assert!(asked.elapsed() < SLOW_STOP * 4, "the restart never ended");
        let _ = agent.cycle().await;
        assert!(agent.holds_lease(), "the lease lapsed {:?} into the restart", asked.elapsed());
        tokio::time::sleep(dynamic.loop_wait).await;
    }
    assert!(renewed_at(&dcs) > before, "no renewal during the restart");
    assert!(asked.elapsed() >= SLOW_STOP);
    let answer = answer.try_recv().expect("answered once the job ended");
    assert_eq!(answer, Ok("restarted the primary".to_owned()));
    assert!(db.observe().await.is_running_primary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_version_and_timeout_bound_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let dynamic = DynamicConfig::default();
    let db = Arc::new(SlowPrimary::default());
    let mut agent = Agent::new(identity(&dynamic), dcs, db.clone(), Arc::default());
    agent.acquire(&dynamic, std::time::SystemTime::now()).await;
    let mut restart = async |request: RestartRequest| {
        let (reply, answer) = oneshot::channel();
        agent.dispatch(LocalCommand::Restart(request), reply).await;
        tokio::time::timeout(SLOW_STOP * 2, answer).await.expect("answered in time").expect("answer")
    };

    let same = RestartRequest { postgres_version: Some("15.4".into()), ..Default::default() };
    let refused = restart(same).await.expect_err("not older than 15.4");
    assert_eq!(refused.status, 412, "{refused:?}");
    assert!(refused.message.contains("150004") && refused.message.contains("15.4"), "{refused:?}");
    assert!(db.observe().await.is_running_primary(), "nothing was restarted");

    let newer =
        RestartRequest { postgres_version: Some("16.1".into()), timeout: Some(1), ..Default::default() };
    let asked = Instant::now();
    let late = restart(newer).await.expect_err("the stop takes longer than the timeout");
    assert_eq!(late.status, 503, "{late:?}");
    assert!(late.message.contains("timeout of 1 s"), "{late:?}");
    assert!(asked.elapsed() < SLOW_STOP, "given up at the timeout, not when the stop ended");
}

/// As Patroni's: `POST /restart` on a member whose server is stopped (left so in pause) starts it, in the
/// member's role (the lease holder: as the primary); Patroni's `patroni_api.feature` restarts a paused
/// replica whose postmaster was killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_starts_a_stopped_server_in_its_role() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let dynamic = DynamicConfig::default();
    let db = Arc::new(SlowPrimary::default());
    let mut agent = Agent::new(identity(&dynamic), dcs, db.clone(), Arc::default());
    agent.acquire(&dynamic, std::time::SystemTime::now()).await;
    db.kill().await.expect("stopped");
    assert!(!db.observe().await.running);

    let (reply, answer) = oneshot::channel();
    agent.dispatch(LocalCommand::Restart(RestartRequest::default()), reply).await;
    let answer =
        tokio::time::timeout(SLOW_STOP * 2, answer).await.expect("answered in time").expect("answer");
    assert_eq!(answer, Ok("restarted the primary".to_owned()));
    assert!(db.observe().await.is_running_primary());
}

/// Member `a` of scope `test`, with `dynamic` as its bootstrap configuration.
fn identity(dynamic: &DynamicConfig) -> Identity {
    Identity {
        name: MemberName::new("a").expect("name"),
        scope: "test".into(),
        api_url: "http://127.0.0.1:1/patroni".into(),
        db_host: "127.0.0.1".into(),
        db_port: 5432,
        tags: BTreeMap::new(),
        can_fail_over: true,
        failover_priority: 1,
        bootstrap_dcs: dynamic.clone(),
        parameters: BTreeMap::new(),
        use_pg_rewind: None,
        discard: Default::default(),
        proxy_url: None,
        config_path: None,
        api_client_tls: Default::default(),
        api_read_auth: None,
    }
}

/// `retry_timeout` comes from the store like `ttl` and `loop_wait`: each cycle sets the store's operation
/// timeout to the stored value (the bootstrap one while the store has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_timeout_follows_the_stored_retry_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let bootstrap = DynamicConfig::default();
    let db = Arc::new(SlowPrimary { stopped: AtomicBool::new(true) });
    let mut agent = Agent::new(identity(&bootstrap), dcs.clone(), db, Arc::default());
    let _ = agent.cycle().await;
    assert_eq!(dcs.op_timeout(), bootstrap.retry_timeout);

    let stored = DynamicConfig { retry_timeout: Duration::from_millis(300), ..DynamicConfig::default() };
    let value = serde_json::to_value(&stored).expect("json");
    dcs.put(&Key::Config, value, Condition::Always, None).await.expect("config stored");
    let _ = agent.cycle().await;
    assert_eq!(dcs.op_timeout(), Duration::from_millis(300));
}

/// `/liveness` follows the loop: live after a cycle, failing once the next cycle is a ttl late (a
/// running primary), live again after the next cycle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_fails_once_the_loop_misses_its_cycles_by_a_ttl() {
    use vigil_api::StatusSource;
    let dir = tempfile::tempdir().expect("dir");
    let dcs = store(dir.path()).await;
    let dynamic = fast_timing();
    let status = Arc::new(crate::status::SharedStatus::default());
    let mut agent = Agent::new(identity(&dynamic), dcs, Arc::new(SlowPrimary::default()), status.clone());
    agent.acquire(&dynamic, std::time::SystemTime::now()).await;
    let _ = agent.cycle().await;
    let last_cycle = Instant::now();
    assert!(status.loop_alive());
    assert_eq!(status.status().role, "primary");
    let deadline = last_cycle + Duration::from_secs(10);
    while status.loop_alive() {
        assert!(Instant::now() < deadline, "still live 10 s after the last cycle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let late = last_cycle.elapsed();
    assert!(late >= dynamic.ttl + dynamic.loop_wait, "failed after {late:?}, before loop_wait + ttl");
    let _ = agent.cycle().await;
    assert!(status.loop_alive(), "live again after a cycle");
}
