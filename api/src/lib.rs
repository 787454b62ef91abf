//! Vigil's REST contract, Patroni-compatible: the status JSON ([`NodeStatus`]), the health-check routes
//! ([`router`]) and the typed client ([`client`]). It knows nothing of the agent: the agent hands the
//! router a [`StatusSource`] that answers with its latest status.

pub mod client;
mod management;
mod routes;
mod status;

pub use management::{management_router, ApiError, BasicAuth, BoxFuture, Management, SwitchoverRequest};
pub use routes::{router, StatusSource};
pub use status::{NodeStatus, PatroniInfo, VigilInfo, Xlog};
