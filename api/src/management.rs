//! Management routes (Patroni's): cluster view, history, dynamic configuration, switchover and failover,
//! served from one table ([`MANAGEMENT_ROUTES`]), which the OpenAPI document lists too.
//!
//! | method and path | answers |
//! |---|---|
//! | `GET /cluster` | 200 the members, roles, positions and lag |
//! | `GET /history` | 200 the promotions, as Patroni's `[timeline, lsn, reason, timestamp, new_leader]` |
//! | `GET /events` | 200 the event log, newest last (`?limit=N`, `?since=<id or time>`); 400 a bad parameter |
//! | `GET /config` | 200 the dynamic configuration; 502 when the cluster has none |
//! | `PATCH /config` | 200 the merged configuration (JSON merge patch, `null` deletes); 400 invalid; 409 changed meanwhile |
//! | `PUT /config` | 200 the new configuration; 400 invalid; 409 changed meanwhile |
//! | `POST /switchover` | 200 done; 202 scheduled (`scheduled_at`); 400 bad request or no timezone; 412 not possible, with the reason; 422 unreadable or past `scheduled_at`; 503 did not complete |
//! | `DELETE /switchover` | 200 the pending (or scheduled) switchover was cancelled; 404 none was pending |
//! | `POST /failover` | as `POST /switchover`; `candidate` is required |
//! | `POST /restart` | 200 restarted; 202 scheduled (`schedule`); 400 bad request or no timezone; 409 a restart is already scheduled; 412 `role` does not match; 422 unreadable or past `schedule`; 503 failed |
//! | `DELETE /restart` | 200 the scheduled restart was cancelled; 404 none was scheduled |
//! | `POST /reload` | 202 the local configuration was re-read (tags apply at once); 400 it is invalid (nothing changes) |
//! | `POST /reinitialize` | 200 the replica's data is removed and cloned again from the primary; 503 not possible here |
//! | `POST /death` | 200 the lease of the member certified dead was released; 409 it is no longer that agent process's grant |
//! | `GET /members` | 200 the Raft group's nodes: id, name, address, voter or learner, witness, lag |
//! | `POST /members` | 200 a node was added by Raft address (it joins as a learner when it starts); 409 refused, with why |
//! | `POST /members/promote` | 200 the learner is a voter; 409 refused (not caught up, even number of voters) |
//! | `DELETE /members` | 200 the node was removed; 409 refused (quorum, even number, the primary's) |
//!
//! Mutating calls need HTTP basic auth when `restapi.authentication` is configured (401 otherwise), and
//! reads when `restapi.read_authentication` is ([`crate::auth`]); mutating calls also need an allowed
//! client address when `restapi.allowlist` is set ([`crate::allowlist`], 403). Every error is JSON `{"error": "..."}`. Every mutating route also answers 400
//! for a body that is not a JSON object (an array, a string), not UTF-8 or has an unknown field, and 413
//! for one over 64 KiB, and then changes nothing (see [`crate::body`]).

use crate::body::{self, RawBody, MAX_BODY};
use crate::{AddMemberRequest, Cluster, Event, EventQuery, HistoryEntry, MemberRequest, RaftMemberInfo};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

/// A failed management call: the HTTP status and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: u16,
    /// The message for the caller.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

/// `POST /switchover` and `POST /failover`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchoverRequest {
    /// The current primary (required for a switchover).
    #[serde(default)]
    pub leader: Option<String>,
    /// The member to promote (required for a failover).
    #[serde(default)]
    pub candidate: Option<String>,
    /// When to switch over: ISO 8601 with a timezone, in the future (a failover cannot be scheduled).
    #[serde(default)]
    pub scheduled_at: Option<String>,
    /// A failover only: promote the candidate even if it cannot be shown to hold every acknowledged
    /// commit (synchronous mode) or lags beyond `maximum_lag_on_failover`. Recorded in `history`.
    #[serde(default)]
    pub allow_data_loss: bool,
}

/// `POST /restart`; also what `GET /patroni` shows of a scheduled restart (`scheduled_restart`), with
/// only the fields given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartRequest {
    /// Restart only if the member has this role (`primary` or `replica`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Restart only if a restart is pending (parameters changed that need one).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::restart::flag_or_text"
    )]
    pub restart_pending: Option<bool>,
    /// When to restart: ISO 8601 with a timezone, in the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Restart only if the running server's version is lower than this one (`X.Y` or `X.Y.Z`, e.g.
    /// `15.2`), as Patroni.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres_version: Option<String>,
    /// Report the restart failed (503) if it is not done within this many seconds (the body may also
    /// give a string with a unit, `5min`, which the router turns into seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `POST /reinitialize`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReinitializeRequest {
    /// Go ahead even if the database is running.
    #[serde(default)]
    pub force: bool,
    /// Clone from the primary (the only source so far).
    #[serde(default)]
    pub from_leader: bool,
}

/// `POST /death`: a member's lifeline certifies that the member's agent process has exited and that no
/// process of its database is left, and names the lease grant that agent held. The lease is released only
/// if that very agent process still holds that grant (see ARCHITECTURE.md, "Confirmed death").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeathCertificate {
    /// The dead member.
    pub member: String,
    /// The fencing token of the lease its agent held.
    pub token: u64,
    /// The dead agent process's number (its store node's incarnation).
    pub incarnation: u64,
    /// How long ago the lifeline saw its agent die, in milliseconds (for the failover's phases).
    #[serde(default)]
    pub dead_for_ms: u64,
}

/// A boxed future, for the object-safe [`Management`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the management routes ask the agent.
pub trait Management: Send + Sync + 'static {
    /// `GET /cluster`.
    fn cluster(&self) -> BoxFuture<'_, Result<Cluster, ApiError>>;
    /// `GET /history`: the store's entries (the router answers them as Patroni's lines).
    fn history(&self) -> BoxFuture<'_, Result<Vec<HistoryEntry>, ApiError>>;
    /// `GET /events`: the whole event log, oldest first (the router selects what the query asks).
    fn events(&self) -> BoxFuture<'_, Result<Vec<Event>, ApiError>> {
        Box::pin(async { Err(ApiError::new(503, "this agent keeps no event log")) })
    }
    /// `GET /config`: the dynamic configuration as stored (user-defined keys, so an open JSON object).
    fn config(&self) -> BoxFuture<'_, Result<serde_json::Value, ApiError>>;
    /// `PATCH /config` (`replace: false`, a JSON merge patch) or `PUT /config` (`replace: true`).
    fn set_config(
        &self,
        body: serde_json::Value,
        replace: bool,
    ) -> BoxFuture<'_, Result<serde_json::Value, ApiError>>;
    /// `POST /switchover` (`failover: false`) or `POST /failover` (`failover: true`): a message when done.
    fn switchover(
        &self,
        request: SwitchoverRequest,
        failover: bool,
    ) -> BoxFuture<'_, Result<String, ApiError>>;
    /// `DELETE /switchover`.
    fn cancel_switchover(&self) -> BoxFuture<'_, Result<String, ApiError>>;
    /// `POST /restart`.
    fn restart(&self, request: RestartRequest) -> BoxFuture<'_, Result<String, ApiError>>;
    /// `DELETE /restart`: cancels the scheduled restart (404 when none is).
    fn cancel_restart(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async { Err(ApiError::new(404, "no restart is scheduled")) })
    }
    /// `POST /reload`.
    fn reload(&self) -> BoxFuture<'_, Result<String, ApiError>>;
    /// `POST /reinitialize`.
    fn reinitialize(&self, request: ReinitializeRequest) -> BoxFuture<'_, Result<String, ApiError>>;
    /// `POST /death`: releases the lease of a member certified dead; a message when released.
    fn release_dead(&self, certificate: DeathCertificate) -> BoxFuture<'_, Result<String, ApiError>> {
        let _ = certificate;
        Box::pin(async { Err(ApiError::new(503, "this agent keeps no leader lease")) })
    }
    /// `GET /members`.
    fn members(&self) -> BoxFuture<'_, Result<Vec<RaftMemberInfo>, ApiError>> {
        Box::pin(async { Err(no_membership()) })
    }
    /// `POST /members`: the node as added, with its new id.
    fn add_member(&self, request: AddMemberRequest) -> BoxFuture<'_, Result<RaftMemberInfo, ApiError>> {
        let _ = request;
        Box::pin(async { Err(no_membership()) })
    }
    /// `POST /members/promote`.
    fn promote_member(&self, request: MemberRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        let _ = request;
        Box::pin(async { Err(no_membership()) })
    }
    /// `DELETE /members`.
    fn remove_member(&self, request: MemberRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        let _ = request;
        Box::pin(async { Err(no_membership()) })
    }
    /// Whether `ip` is a member's address (its `api_url` or `conn_url` host), for
    /// `restapi.allowlist_include_members`; answered from the agent's view, without a store read.
    fn is_member_address(&self, ip: std::net::IpAddr) -> BoxFuture<'_, bool> {
        let _ = ip;
        Box::pin(async { false })
    }
}

/// The answer of a [`Management`] without a Raft group to show or change.
fn no_membership() -> ApiError {
    ApiError::new(503, "this agent has no Raft group")
}

/// RFC 7386 JSON merge patch, what `PATCH /config` applies: objects merge key by key, `null` deletes,
/// anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

type Agent = Arc<dyn Management>;

/// Which [`Management`] call answers a route of [`MANAGEMENT_ROUTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagementCall {
    /// [`Management::cluster`].
    Cluster,
    /// [`Management::history`].
    History,
    /// [`Management::events`].
    Events,
    /// [`Management::config`].
    Config,
    /// [`Management::set_config`] with a merge patch.
    PatchConfig,
    /// [`Management::set_config`] replacing the configuration.
    PutConfig,
    /// [`Management::switchover`].
    Switchover,
    /// [`Management::cancel_switchover`].
    CancelSwitchover,
    /// [`Management::switchover`] as a failover.
    Failover,
    /// [`Management::restart`].
    Restart,
    /// [`Management::cancel_restart`].
    CancelRestart,
    /// [`Management::reload`].
    Reload,
    /// [`Management::reinitialize`].
    Reinitialize,
    /// [`Management::release_dead`].
    Death,
    /// [`Management::members`].
    Members,
    /// [`Management::add_member`].
    AddMember,
    /// [`Management::promote_member`].
    PromoteMember,
    /// [`Management::remove_member`].
    RemoveMember,
}

/// A management route: path, method, the call that answers it, the status codes it answers, and what
/// it does.
pub type ManagementRoute = (&'static str, &'static str, ManagementCall, &'static [u16], &'static str);

/// The management routes (Patroni's, api.py): the contract, read by [`management_router`] and by
/// [`crate::openapi()`]. Mutating calls need basic auth when `restapi.authentication` is configured
/// (401 otherwise; 403 for the read-only credentials, a client outside the allowlist or without a
/// required certificate), reads when `restapi.read_authentication` is ([`crate::auth`]); errors are
/// `{"error": …}`; a store failure is a 503; a body that is not a JSON object is a 400, one over
/// [`MAX_BODY`] a 413.
pub const MANAGEMENT_ROUTES: &[ManagementRoute] = &[
    ("/cluster", "GET", Call::Cluster, &[200, 401, 503], "The cluster: members, roles, positions and lag"),
    (
        "/history",
        "GET",
        Call::History,
        &[200, 401, 503],
        "The promotions, as Patroni's lines: [timeline, lsn, reason, timestamp, new_leader]",
    ),
    (
        "/events",
        "GET",
        Call::Events,
        &[200, 400, 401, 503],
        "The event log, newest last: lease grants and losses, fences, promotions with their failover phases, switchovers, rejoins (?limit=N, ?since=<id or time>)",
    ),
    (
        "/config",
        "GET",
        Call::Config,
        &[200, 401, 502, 503],
        "The dynamic configuration (502: the cluster has none yet)",
    ),
    (
        "/config",
        "PATCH",
        Call::PatchConfig,
        &[200, 400, 401, 403, 409, 413, 503],
        "Merge-patch the dynamic configuration (null deletes)",
    ),
    (
        "/config",
        "PUT",
        Call::PutConfig,
        &[200, 400, 401, 403, 409, 413, 503],
        "Replace the dynamic configuration",
    ),
    (
        "/switchover",
        "POST",
        Call::Switchover,
        &[200, 202, 400, 401, 403, 409, 412, 413, 422, 503],
        "Switch over from leader to a candidate, now or at scheduled_at",
    ),
    (
        "/switchover",
        "DELETE",
        Call::CancelSwitchover,
        &[200, 400, 401, 403, 404, 409, 413, 503],
        "Cancel the pending or scheduled switchover",
    ),
    (
        "/failover",
        "POST",
        Call::Failover,
        &[200, 400, 401, 403, 409, 412, 413, 503],
        "Fail over to candidate",
    ),
    (
        "/restart",
        "POST",
        Call::Restart,
        &[200, 202, 400, 401, 403, 409, 412, 413, 422, 503],
        "Restart the database now or at schedule",
    ),
    (
        "/restart",
        "DELETE",
        Call::CancelRestart,
        &[200, 400, 401, 403, 404, 413],
        "Cancel the scheduled restart",
    ),
    ("/reload", "POST", Call::Reload, &[202, 400, 401, 403, 413], "Reload the agent's configuration"),
    (
        "/reinitialize",
        "POST",
        Call::Reinitialize,
        &[200, 400, 401, 403, 413, 503],
        "Rebuild this replica from the primary",
    ),
    (
        "/death",
        "POST",
        Call::Death,
        &[200, 400, 401, 403, 409, 413, 503],
        "A member's lifeline certifies its agent exited and its database stopped: release the lease that agent held (409: no longer that grant, or taken again by a restarted agent)",
    ),
    (
        "/members",
        "GET",
        Call::Members,
        &[200, 401, 503],
        "The Raft group: id, name, address, voter or learner, witness, lag",
    ),
    (
        "/members",
        "POST",
        Call::AddMember,
        &[200, 400, 401, 403, 409, 413, 503],
        "Add a node by Raft address; it joins as a learner when it starts",
    ),
    (
        "/members/promote",
        "POST",
        Call::PromoteMember,
        &[200, 400, 401, 403, 409, 413, 503],
        "Make a caught-up learner a voter",
    ),
    (
        "/members",
        "DELETE",
        Call::RemoveMember,
        &[200, 400, 401, 403, 409, 413, 503],
        "Remove a node from the Raft group",
    ),
];

use ManagementCall as Call;

/// The management router over `agent`: every route of [`MANAGEMENT_ROUTES`]. Bodies are read by
/// [`crate::body`]: at most [`MAX_BODY`] bytes, JSON objects only, JSON errors. Credentials are checked
/// by [`crate::auth`], over the whole API.
pub fn management_router(agent: Agent) -> Router {
    let routes = MANAGEMENT_ROUTES.iter().fold(Router::new(), |router, &(path, method, call, ..)| {
        router.route(path, method_router(method, call))
    });
    routes.layer(DefaultBodyLimit::max(MAX_BODY)).with_state(agent)
}

/// The handler of `call`, on `method` (one of the table's).
fn method_router(method: &str, call: ManagementCall) -> MethodRouter<Agent> {
    let filter = match method {
        "GET" => MethodFilter::GET,
        "PATCH" => MethodFilter::PATCH,
        "PUT" => MethodFilter::PUT,
        "DELETE" => MethodFilter::DELETE,
        // Every other row of the table is a POST (a unit test checks the table).
        _ => MethodFilter::POST,
    };
    match call {
        Call::Cluster => on(filter, |State(a): State<Agent>| async move { json(a.cluster().await) }),
        Call::History => on(filter, |State(a): State<Agent>| async move {
            json(a.history().await.map(|entries| crate::patroni_history(&entries)))
        }),
        Call::Events => on(filter, |State(a): State<Agent>, uri: Uri| async move {
            match EventQuery::from_uri(&uri) {
                Ok(query) => json(a.events().await.map(|log| query.select(log))),
                Err(bad) => ApiError::new(400, bad.0).into_response(),
            }
        }),
        Call::Config => on(filter, |State(a): State<Agent>| async move { json(a.config().await) }),
        Call::PatchConfig => {
            on(
                filter,
                |State(a): State<Agent>, RawBody(b): RawBody| async move { set_config(a, &b, false).await },
            )
        }
        Call::PutConfig => {
            on(
                filter,
                |State(a): State<Agent>, RawBody(b): RawBody| async move { set_config(a, &b, true).await },
            )
        }
        Call::Switchover => {
            on(
                filter,
                |State(a): State<Agent>, RawBody(b): RawBody| async move { switchover(a, &b, false).await },
            )
        }
        Call::Failover => {
            on(
                filter,
                |State(a): State<Agent>, RawBody(b): RawBody| async move { switchover(a, &b, true).await },
            )
        }
        Call::CancelSwitchover => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            without_parameters(&b, || a.cancel_switchover()).await
        }),
        Call::Restart => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            match body::restart_request(&b, SystemTime::now()) {
                Ok(request) => {
                    let scheduled = request.schedule.is_some();
                    scheduled_or_done(scheduled, a.restart(request).await)
                }
                Err(e) => e.into_response(),
            }
        }),
        Call::CancelRestart => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            without_parameters(&b, || a.cancel_restart()).await
        }),
        Call::Reload => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            if let Err(e) = body::no_parameters(&b) {
                return e.into_response();
            }
            match a.reload().await {
                Ok(text) => (StatusCode::ACCEPTED, text).into_response(),
                Err(e) => e.into_response(),
            }
        }),
        Call::Reinitialize => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            match body::reinitialize_request(&b) {
                Ok(request) => message(a.reinitialize(request).await),
                Err(e) => e.into_response(),
            }
        }),
        Call::Death => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            match body::death_certificate(&b) {
                Ok(certificate) => message(a.release_dead(certificate).await),
                Err(e) => e.into_response(),
            }
        }),
        Call::Members => on(filter, |State(a): State<Agent>| async move { json(a.members().await) }),
        Call::AddMember => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            match body::add_member_request(&b) {
                Ok(request) => json(a.add_member(request).await),
                Err(e) => e.into_response(),
            }
        }),
        Call::PromoteMember => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            member_change(&b, |request| a.promote_member(request)).await
        }),
        Call::RemoveMember => on(filter, |State(a): State<Agent>, RawBody(b): RawBody| async move {
            member_change(&b, |request| a.remove_member(request)).await
        }),
    }
}

async fn set_config(agent: Agent, body: &[u8], replace: bool) -> Response {
    match body::config_patch(body) {
        Ok(value) => json(agent.set_config(value, replace).await),
        Err(e) => e.into_response(),
    }
}

async fn switchover(agent: Agent, body: &[u8], failover: bool) -> Response {
    match body::switchover_request(body) {
        Ok(request) => {
            let scheduled = request.scheduled_at.is_some();
            scheduled_or_done(scheduled, agent.switchover(request, failover).await)
        }
        Err(e) => e.into_response(),
    }
}

/// Makes `call` with the member the body names.
async fn member_change<'a>(
    body: &[u8],
    call: impl FnOnce(MemberRequest) -> BoxFuture<'a, Result<String, ApiError>>,
) -> Response {
    match body::member_request(body) {
        Ok(request) => message(call(request).await),
        Err(e) => e.into_response(),
    }
}

/// Makes `call` once the body is found to carry no parameters.
async fn without_parameters<'a>(
    body: &[u8],
    call: impl FnOnce() -> BoxFuture<'a, Result<String, ApiError>>,
) -> Response {
    match body::no_parameters(body) {
        Ok(()) => message(call().await),
        Err(e) => e.into_response(),
    }
}

/// The answer as JSON. Through [`serde_json::Value`], whose maps are sorted: typed answers come out
/// with their keys in the order Patroni's clients have always seen from this API.
fn json<T: Serialize>(result: Result<T, ApiError>) -> Response {
    match result.and_then(|answer| {
        serde_json::to_value(answer).map_err(|e| ApiError::new(500, format!("answer not serializable: {e}")))
    }) {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

/// 202 for a call that scheduled something, else as [`message`].
fn scheduled_or_done(scheduled: bool, result: Result<String, ApiError>) -> Response {
    match result {
        Ok(text) if scheduled => (StatusCode::ACCEPTED, text).into_response(),
        other => message(other),
    }
}

fn message(result: Result<String, ApiError>) -> Response {
    match result {
        Ok(text) => (StatusCode::OK, text).into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_method_the_router_knows_and_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for &(path, method, call, ..) in MANAGEMENT_ROUTES {
            assert!(["GET", "PATCH", "PUT", "DELETE", "POST"].contains(&method), "{method} {path}");
            assert!(seen.insert((path, method)), "{method} {path} listed twice");
            let reads =
                matches!(call, Call::Cluster | Call::History | Call::Events | Call::Config | Call::Members);
            assert_eq!(reads, method == "GET", "{method} {path}: {call:?}");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        use serde_json::json;
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}, "x": [1]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "x": [1]}));
        let mut scalar = json!(1);
        merge_patch(&mut scalar, &json!({"k": null, "v": 2}));
        assert_eq!(scalar, json!({"v": 2}));
    }
}
