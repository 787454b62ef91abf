//! The HA loop: observe → decide → act, with all policy in the pure [`decide`].

mod decide;
mod execute;
mod observation;
mod run;
mod view;

pub use decide::{decide, Action, Decision};
pub use observation::{ClusterView, Initialize, LeaseHold, Observation, PeerView, Policy, Switchover};
pub use run::{Agent, Identity};
pub use view::{cluster_view, dynamic_config};
