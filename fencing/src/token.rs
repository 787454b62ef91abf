use serde::{Deserialize, Serialize};
use std::fmt;

/// A fencing token: strictly larger for every lease grant in a cluster's life, never reused.
///
/// The store uses the Raft log index of the entry that granted the lease, so tokens are identical on every
/// replica and survive restarts and Raft leader changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
