//! Real agents and PostgreSQL 15 with the fencing hooks of issue 6: `pre_promote` vetoing a promotion,
//! callbacks after a failover, and the watchdog (a fake device: a plain file, never a real watchdog).

use std::path::Path;
use std::time::Duration;
use vigil_integration::agents::AgentCluster;
use vigil_integration::{init_tracing, wait_for};

const PATIENCE: Duration = Duration::from_secs(40);

/// A directory for the hook scripts and what they record, readable by the agents (root or not).
fn hook_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("vigil-hooks-").tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Kills node `i`'s agent and PostgreSQL (kill -9 of both).
fn kill_node(cluster: &mut AgentCluster, i: usize) {
    cluster.signal_agent(i, libc::SIGKILL);
    cluster.kill_postgres(i);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_promote_keeps_the_only_candidate_from_promoting_and_releases_the_lease() {
    init_tracing();
    let hooks = hook_dir();
    let calls = hooks.path().join("pre_promote.log");
    let script = hooks.path().join("pre_promote.sh");
    let veto = hooks.path().join("veto-");
    std::fs::write(
        &script,
        format!(
            "echo \"$1 $2 $3 env=$VIGIL_CANDIDATE,$VIGIL_OLD_PRIMARY,$VIGIL_FENCING_TOKEN\" >> {calls}\n\
             if [ -e {veto}$1 ]; then echo 'fenced nothing: vetoed' >&2; exit 1; fi\n",
            calls = calls.display(),
            veto = veto.display()
        ),
    )
    .unwrap();
    // node3 never fails over, so after the primary dies only one candidate is left.
    let pre_promote = format!("  pre_promote: sh {}\n", script.display());
    let mut cluster = AgentCluster::start(3, |i| {
        let tags = if i == 2 { "tags: {nofailover: true}\n" } else { "" };
        format!("{pre_promote}{tags}")
    });
    let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
    assert_ne!(old, 2, "a nofailover member does not bootstrap");
    let candidate = 1 - old;
    let (old_name, name) = (cluster.nodes[old].name.clone(), cluster.nodes[candidate].name.clone());
    std::fs::write(format!("{}{name}", veto.display()), "").unwrap();

    kill_node(&mut cluster, old);
    let call = wait_for("the candidate's pre_promote to run", PATIENCE, || async {
        read(&calls).lines().find(|l| l.starts_with(&format!("{name} {old_name} "))).map(str::to_owned)
    })
    .await;
    let token = call.split(' ').nth(2).expect("a token argument").to_owned();
    assert!(token.parse::<u64>().is_ok(), "{call}");
    assert!(call.ends_with(&format!("env={name},{old_name},{token}")), "{call}");
    wait_for("the refusal and the release in the candidate's log", PATIENCE, || async {
        let log = cluster.plain_log(candidate);
        (log.contains("promotion refused")
            && log.contains(&format!("token={token}"))
            && log.contains("releasing the lease"))
        .then_some(())
    })
    .await;
    for i in [candidate, 2] {
        let (_, status) = cluster.rest(i, "/patroni").await.expect("status");
        assert_eq!(status["role"], "replica", "{status}");
        let (code, _) = cluster.rest(i, "/primary").await.expect("/primary");
        assert_eq!(code, 503);
    }

    // Once the veto is lifted, the candidate takes over (after the ttl it keeps out of the race).
    std::fs::remove_file(format!("{}{name}", veto.display())).unwrap();
    assert_eq!(cluster.primary(PATIENCE).await, candidate);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vetoed_candidate_does_not_hold_back_the_next_replica() {
    init_tracing();
    let hooks = hook_dir();
    let script = hooks.path().join("pre_promote.sh");
    let veto = hooks.path().join("veto-");
    std::fs::write(&script, format!("if [ -e {}$1 ]; then exit 1; fi\n", veto.display())).unwrap();
    // The lower the index, the higher the priority: of two replicas, the first one races alone.
    let mut cluster = AgentCluster::start(3, |i| {
        format!("  pre_promote: sh {}\ntags: {{failover_priority: {}}}\n", script.display(), 3 - i)
    });
    let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let (vetoed, next) = (replicas[0], replicas[1]);
    std::fs::write(format!("{}{}", veto.display(), cluster.nodes[vetoed].name), "").unwrap();

    // The vetoed member, ahead by priority, says so in its status: the next one does not wait for it.
    kill_node(&mut cluster, old);
    assert_eq!(cluster.primary(PATIENCE).await, next);
    assert!(cluster.plain_log(vetoed).contains("promotion refused"), "the veto was what held it back");
    let (_, status) = cluster.rest(vetoed, "/patroni").await.expect("the vetoed member's status");
    assert_eq!(status["role"], "replica", "{status}");
}

/// Makes a directory immutable (`chattr +i`: no entry may be created in it, not even by root) until
/// dropped, as a file system gone read-only would, for new files.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn new(dir: &Path) -> Immutable {
        chattr("+i", dir);
        Immutable(dir.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

fn chattr(change: &str, dir: &Path) {
    let status = std::process::Command::new("chattr").arg(change).arg(dir).status().expect("chattr runs");
    assert!(status.success(), "chattr {change} {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_that_cannot_promote_gives_the_lease_to_the_next_replica() {
    init_tracing();
    // The lower the index, the higher the priority: of two replicas, the first one races alone.
    let mut cluster = AgentCluster::start(3, |i| format!("tags: {{failover_priority: {}}}\n", 3 - i));
    let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let (stuck, next) = (replicas[0], replicas[1]);
    // The promotion writes files into the data directory: it fails, every time.
    let immutable = Immutable::new(&cluster.home(stuck).join("pg"));

    kill_node(&mut cluster, old);
    wait_for("the stuck candidate to give up after its failed promotions", PATIENCE, || async {
        let log = cluster.plain_log(stuck);
        log.contains("promotion failed every time: killing the server and releasing the lease").then_some(())
    })
    .await;
    assert_eq!(cluster.primary(PATIENCE).await, next, "the next replica takes over");
    cluster.write_published(next, "CREATE TABLE after_the_stuck_candidate (x int)").await;
    let (_, status) = cluster.rest(stuck, "/patroni").await.expect("the stuck member's status");
    assert_ne!(status["role"], "primary", "{status}");
    assert!(cluster.plain_log(stuck).contains("promotion failed: trying again"), "attempts before giving up");

    // Writable again, it rejoins as the new primary's replica.
    drop(immutable);
    cluster.streaming_replica(stuck, PATIENCE).await;
    cluster.eventually(stuck, "SELECT count(*) FROM after_the_stuck_candidate", &["0"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_the_new_primary_runs_on_role_change_and_keeps_its_watchdog_alive() {
    init_tracing();
    let hooks = hook_dir();
    let script = hooks.path().join("callback.sh");
    let record = |i: usize| hooks.path().join(format!("callbacks-node{}", i + 1));
    let watchdog = |i: usize| hooks.path().join(format!("watchdog-node{}", i + 1));
    std::fs::write(&script, "node=$1; shift; echo \"$* token=$VIGIL_FENCING_TOKEN\" >> \"$node\"\n").unwrap();
    for i in 0..3 {
        std::fs::write(watchdog(i), "").unwrap();
    }
    let mut cluster = AgentCluster::start(3, |i| {
        let cb = format!("sh {} {}", script.display(), record(i).display());
        format!(
            "  callbacks: {{on_start: '{cb}', on_role_change: '{cb}'}}\n\
             watchdog: {{mode: automatic, device: {}}}\n",
            watchdog(i).display()
        )
    });
    let old = cluster.settled(&[0, 1, 2], PATIENCE).await;
    // The bootstrap primary started as one and arms its watchdog; replicas leave theirs alone.
    wait_for("the first primary's watchdog to be kept alive", PATIENCE, || async {
        (read(&watchdog(old)).len() >= 2).then_some(())
    })
    .await;
    wait_for("on_start callbacks on every node", PATIENCE, || async {
        let primary_started = read(&record(old)).contains("on_start primary it token=");
        let replicas_started =
            (0..3).filter(|i| *i != old).all(|i| read(&record(i)).contains("on_start replica it"));
        (primary_started && replicas_started).then_some(())
    })
    .await;

    kill_node(&mut cluster, old);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = cluster.settled(&survivors, PATIENCE).await;
    let (_, status) = cluster.rest(new, "/patroni").await.expect("status");
    let token = status["vigil"]["fencing_token"].as_u64().expect("the new primary's token");
    let line = format!("on_role_change primary it token={token}");
    wait_for("on_role_change on the new primary", PATIENCE, || async {
        read(&record(new)).lines().any(|l| l == line).then_some(())
    })
    .await;
    let replica = survivors.into_iter().find(|i| *i != new).expect("a replica");
    assert!(!read(&record(replica)).contains("on_role_change"), "{}", read(&record(replica)));

    // Armed before the promotion, then kept alive after each renewal: the fake device keeps receiving
    // keepalives; the replica's was never opened.
    let before = read(&watchdog(new)).len();
    wait_for("keepalives on the new primary's watchdog", PATIENCE, || async {
        (read(&watchdog(new)).len() >= before + 2).then_some(())
    })
    .await;
    assert!(read(&watchdog(new)).bytes().all(|b| b == b'1'), "no magic close while primary");
    assert_eq!(read(&watchdog(replica)), "");
    assert!(cluster.plain_log(new).contains("watchdog armed"), "{}", cluster.plain_log(new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_of_the_primary_disarms_its_watchdog_with_the_magic_close() {
    init_tracing();
    let hooks = hook_dir();
    let device = hooks.path().join("watchdog");
    std::fs::write(&device, "").unwrap();
    let mut cluster =
        AgentCluster::start(1, |_| format!("watchdog: {{mode: automatic, device: {}}}\n", device.display()));
    cluster.primary(PATIENCE).await;
    wait_for("keepalives", PATIENCE, || async { (read(&device).len() >= 2).then_some(()) }).await;
    cluster.signal_agent(0, libc::SIGTERM);
    assert!(cluster.agent_exited(0, PATIENCE).await, "the agent did not stop");
    let written = read(&device);
    assert!(written.ends_with('V') && written[..written.len() - 1].bytes().all(|b| b == b'1'), "{written}");
    assert!(cluster.plain_log(0).contains("watchdog disarmed"));
}
