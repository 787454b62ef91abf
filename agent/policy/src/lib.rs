//! Vigil's HA policy, apart from everything that does I/O: what an agent observed, what it remembers
//! between cycles, and what it decides. Every function here is pure: no clock is read, no store or
//! database is touched, so the loop's unit tests, the property tests and the deterministic simulation
//! drive it directly. ARCHITECTURE.md ("The policy") says where it sits in the data path.
//!
//! | module | what it is |
//! |---|---|
//! | [`observation`] | [`Observation`]: the input of one decision (database, cluster record, lease hold, peers, memory) |
//! | [`decide`](mod@decide) | [`decide()`]: Patroni's HA cycle as one function from an observation to a [`Decision`] |
//! | [`fast_fence`] | [`decide_fast_fence()`]: the fence taken before the store is read, the choice `decide` makes first |
//! | [`next_cycle`] | [`cycle_wait()`] and [`NextCycle`]: when the next cycle comes |
//! | [`handover`] | the steps of a switchover away from this primary and of a shutdown |
//! | [`memory`] | [`Memory`]: what the policy remembers between cycles, changed only by observations and job reports |
//! | [`sync`] | synchronous replication: the rule, the `sync` key, who may take over without losing a commit |
//! | [`topology`] | cascading (`replicatefrom`) and clone sources (`clonefrom`): whom a replica streams and clones from |
//! | [`candidate`] | the rules a member must meet to take over, shared by the leader race and the management checks |
//! | [`refusal`] | [`Refusal`]: why a member does not take over while there is no primary ("why no failover?") |
//! | [`member`] | [`MemberView`]: another member's published record, as the policy reads it |
//! | [`server`] | [`DbState`]: what the agent sees of its own database server, in no engine's words |
//! | [`position`] | [`Position`]: how far a server's copy of the data goes |
//! | [`schedule`] | [`Schedule`]: the time of day a switchover or restart is scheduled for |
//!
//! The crate depends on no async runtime, store or database client; the compiler keeps it that way.

pub mod candidate;
pub mod decide;
pub mod fast_fence;
pub mod handover;
pub mod member;
pub mod memory;
pub mod next_cycle;
pub mod observation;
pub mod position;
pub mod refusal;
pub mod schedule;
pub mod server;
pub mod sync;
pub mod topology;

pub use candidate::within_maximum_lag;
pub use decide::{decide, fence_action, Action, Decision, FOLLOW_ATTEMPTS, STUCK_BEHIND_TIMELINE};
pub use fast_fence::decide_fast_fence;
pub use handover::{shutdown_steps, switchover_steps, HandOverStep};
pub use member::MemberView;
pub use memory::{JobEvent, Memory};
pub use next_cycle::{cycle_wait, LeaseTimes, NextCycle, NEXT_STEP, RACE_RETRY, RENEW_RETRY};
pub use observation::{
    ClusterView, Discard, Initialize, LeaseHold, Observation, PeerView, Policy, Switchover, SyncPolicy,
    SyncState, SynchronousMode,
};
pub use position::{Position, Unit};
pub use refusal::{Refusal, Veto};
pub use schedule::{Schedule, ScheduleError};
pub use server::{
    DataState, DbState, Divergence, LinkReport, PendingSetting, ReplicaLink, Role, ServerReport, SyncRule,
    Upstream, UpstreamSlot,
};
pub use sync::{may_take_over, sync_health, sync_step, wanted_rule, SyncChange, SyncHealth};
pub use vigil_fencing::{FencingToken, MemberName};
