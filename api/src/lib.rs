//! Vigil's REST contract, Patroni-compatible: the status JSON ([`NodeStatus`]), the health-check,
//! status and metrics routes ([`router`], listed in [`ROUTES`]), the OpenAPI document ([`openapi()`])
//! and the typed client ([`client`]). It knows nothing of the agent: the agent hands the router a
//! [`StatusSource`] that answers with its latest status.

pub mod allowlist;
pub mod auth;
pub mod body;
pub mod client;
mod health;
mod management;
pub mod metrics;
mod openapi;
pub mod pki;
mod query;
mod routes;
mod schedule;
mod secret;
pub mod server;
mod status;
pub mod tls;

pub use auth::BasicAuth;
pub use health::Rule;
pub use management::{
    management_router, merge_patch, ApiError, BoxFuture, Management, ReinitializeRequest, RestartRequest,
    SwitchoverRequest,
};
pub use openapi::{openapi, ManagementRoute, MANAGEMENT_ROUTES};
pub use query::{parse_lsn, parse_size, BadParameter, HealthQuery};
pub use routes::{router, Endpoint, StatusSource, ROUTES};
pub use schedule::{Schedule, ScheduleError};
pub use secret::Secret;
pub use status::{NodeStatus, PatroniInfo, PendingChange, RaftInfo, Replication, VigilInfo, Xlog};
