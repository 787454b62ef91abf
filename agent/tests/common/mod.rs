//! What the adapter tests share.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};
use tempfile::TempDir;
use vigil_agent::db::{Database, DbState};

/// How long a server may take to reach a state a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

/// A temporary root for a test's servers, readable by the OS user they run as, with the test's tracing
/// output shown (`RUST_LOG`).
pub fn server_root() -> TempDir {
    let filter = tracing_subscriber::EnvFilter::from_default_env();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// Polls `node` until its state satisfies `ok`, failing after [`WAIT`] with the last state seen.
pub async fn wait_state(node: &impl Database, what: &str, ok: impl Fn(&DbState) -> bool) -> DbState {
    let deadline = Instant::now() + WAIT;
    loop {
        let state = node.observe().await;
        if ok(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; last state: {state:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
