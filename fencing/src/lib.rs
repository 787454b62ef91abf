//! Fencing: the rules that keep two primaries from taking writes.
//!
//! - [`MemberName`]: who a lease is granted to, and who a token fences.
//! - [`FencingToken`]: the number every lease grant carries. Tokens strictly increase over the life of a
//!   cluster, so a resource that remembers the largest token it has seen can refuse an older primary.
//! - [`HolderDeadline`]: how long the lease holder may act as primary, on its own monotonic clock, counted
//!   from the moment it *sent* the request that the store granted.
//! - [`LeaseTiming`]: the timing settings and the inequality they must satisfy for the holder to step down
//!   before anybody else can be granted the lease.
//! - [`Watchdog`]: the kernel timer that resets a host whose primary's agent froze (Linux watchdog API).
//!
//! This crate knows nothing of Raft or of databases; the store and the agent build on it.

mod deadline;
mod member;
mod timing;
mod token;
mod watchdog;

pub use deadline::HolderDeadline;
pub use member::{InvalidMemberName, MemberName};
pub use timing::{instant_after, Fitted, LeaseTiming, TimingError, MAX_TTL, MIN_LOOP_WAIT};
pub use token::FencingToken;
pub use watchdog::{watchdog_timeout, LinuxWatchdog, Opener, Watchdog, WatchdogDevice, WatchdogError};
