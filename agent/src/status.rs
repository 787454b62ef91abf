//! The agent's latest status, shared with the REST API.

use std::sync::RwLock;
use std::time::Instant;
use vigil_api::{NodeStatus, StatusSource};
use vigil_fencing::HolderDeadline;

/// The status the REST API serves, updated by the HA loop every cycle; the lease deadline is checked
/// against the clock at every request, so `/primary` turns 503 the moment it passes.
#[derive(Default)]
pub struct SharedStatus {
    status: RwLock<NodeStatus>,
    deadline: RwLock<Option<HolderDeadline>>,
}

impl SharedStatus {
    /// Replaces the status.
    pub fn set(&self, status: NodeStatus) {
        // A poisoned lock only means a writer panicked between two plain assignments: the value is whole.
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = status;
    }

    /// Records the lease deadline (`None`: no lease).
    pub fn set_deadline(&self, deadline: Option<HolderDeadline>) {
        *self.deadline.write().unwrap_or_else(|e| e.into_inner()) = deadline;
    }
}

impl StatusSource for SharedStatus {
    fn status(&self) -> NodeStatus {
        let mut status = self.status.read().unwrap_or_else(|e| e.into_inner()).clone();
        let deadline = *self.deadline.read().unwrap_or_else(|e| e.into_inner());
        status.vigil.lease_remaining_ms = deadline.map(|d| d.remaining_at(Instant::now()).as_millis() as u64);
        status
    }

    fn is_leading_primary(&self) -> bool {
        let status = self.status.read().unwrap_or_else(|e| e.into_inner());
        let deadline = *self.deadline.read().unwrap_or_else(|e| e.into_inner());
        let valid = deadline.is_some_and(|d| d.is_valid_at(Instant::now()));
        valid && status.role == "primary" && status.state == "running"
    }
}
