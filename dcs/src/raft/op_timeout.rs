//! [`OpTimeout`]: the store's operation timeout, changeable while the node runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a write or linearizable read may take (the cluster's `retry_timeout`), shared by the node,
/// the routes serving forwarded requests and the lessor. The agent reads `retry_timeout` from the
/// dynamic configuration in the store every cycle and sets it here, as it does with `ttl` and
/// `loop_wait`; an operation already under way keeps the timeout it started with.
#[derive(Debug, Clone)]
pub(crate) struct OpTimeout(Arc<AtomicU64>);

impl OpTimeout {
    /// A timeout of `timeout` (capped at [`vigil_fencing::MAX_TTL`], as every store timer is).
    pub(crate) fn new(timeout: Duration) -> Self {
        OpTimeout(Arc::new(AtomicU64::new(nanos(timeout))))
    }

    /// The timeout in force.
    pub(crate) fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    /// Sets the timeout; returns the previous one.
    pub(crate) fn set(&self, timeout: Duration) -> Duration {
        Duration::from_nanos(self.0.swap(nanos(timeout), Ordering::Relaxed))
    }
}

/// `timeout` in nanoseconds, at most a day's (which fits a `u64`).
fn nanos(timeout: Duration) -> u64 {
    // The cap is 8.64e13 ns, far below u64::MAX: the conversion cannot fail.
    u64::try_from(timeout.min(vigil_fencing::MAX_TTL).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_a_change_and_huge_values_are_capped() {
        let timeout = OpTimeout::new(Duration::from_millis(750));
        let shared = timeout.clone();
        assert_eq!(timeout.set(Duration::from_millis(300)), Duration::from_millis(750));
        assert_eq!(shared.get(), Duration::from_millis(300));
        shared.set(Duration::MAX);
        assert_eq!(timeout.get(), vigil_fencing::MAX_TTL);
    }

    /// A node that belongs to no group cannot commit anything: its writes fail after the timeout set
    /// last, not the one it started with.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changed_timeout_bounds_the_next_operation() {
        let dir = tempfile::tempdir().expect("dir");
        let mut config = crate::DcsConfig::new(1, "test", dir.path());
        config.op_timeout = Duration::from_secs(30);
        let node = crate::DcsNode::start(config).await.expect("node");
        node.set_op_timeout(Duration::from_millis(200));
        assert_eq!(node.op_timeout(), Duration::from_millis(200));
        let started = std::time::Instant::now();
        let put = node.put(&crate::Key::Config, 1.into(), crate::Condition::Always, None).await;
        let waited = Duration::from_millis(200);
        assert!(
            matches!(put, Err(crate::DcsError::NoQuorum { op: "put", waited: w }) if w == waited),
            "{put:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        node.shutdown().await;
    }
}
