//! Vigil's REST contract, Patroni-compatible: the status JSON ([`NodeStatus`]), the health-check,
//! status and metrics routes ([`router`], listed in [`ROUTES`]), the management routes
//! ([`management_router`], listed in [`MANAGEMENT_ROUTES`], answering [`Cluster`] and Patroni's history lines
//! among others), the backup stream a clone reads ([`backup`]), the OpenAPI document ([`openapi()`]) and
//! the typed client ([`client`]). It knows nothing of the agent: the agent hands the routers a
//! [`StatusSource`] that answers with its latest status, a [`Management`] that carries out the calls and
//! a [`backup::BackupSource`] that makes the copies.

pub mod allowlist;
pub mod auth;
pub mod backup;
pub mod body;
pub mod client;
mod cluster;
mod events;
mod headers;
mod health;
mod histogram;
mod history;
mod management;
mod members;
pub mod metrics;
mod openapi;
pub mod pki;
mod query;
mod restart;
mod routes;
mod schedule;
mod secret;
pub mod server;
mod status;
pub mod tls;

pub use auth::BasicAuth;
pub use cluster::{Cluster, ClusterMember, Lag, ScheduledSwitchover};
pub use events::{event_time, Event, EventKind, EventQuery, FailoverPhases, Since};
pub use headers::{with_response_headers, ResponseHeaders};
pub use health::{Now, Rule};
pub use histogram::{Failovers, Histogram, Timings};
pub use history::{patroni_history, HistoryEntry};
pub use management::{
    management_router, merge_patch, ApiError, BoxFuture, DeathCertificate, Management, ManagementCall,
    ManagementRoute, ReinitializeRequest, RestartRequest, SwitchoverRequest, MANAGEMENT_ROUTES,
};
pub use members::{AddMemberRequest, MemberRequest, RaftMemberInfo};
pub use openapi::openapi;
pub use query::{parse_lsn, parse_size, BadParameter, HealthQuery};
pub use restart::postgres_version_number;
pub use routes::{Endpoint, StatusSource, FENCING_TOKEN_HEADER, ROUTES};
pub use schedule::schedule_for_request;
pub use secret::Secret;
pub use status::{NodeStatus, PatroniInfo, PendingChange, RaftInfo, Replication, VigilInfo, Xlog};
pub use vigil_policy::{Schedule, ScheduleError};

/// The REST router over `source`: the health checks, status, metrics and OpenAPI routes of [`ROUTES`],
/// and a JSON 404 for any other path.
pub fn router(source: std::sync::Arc<dyn StatusSource>) -> axum::Router {
    routes::router(source, openapi())
}
