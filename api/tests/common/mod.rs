//! Shared fixtures: a fixed status source and members in typical states.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::ServiceExt;
use vigil_api::{router, NodeStatus, PatroniInfo, StatusSource};
use vigil_api::{ApiError, BoxFuture, ReinitializeRequest, RestartRequest, SwitchoverRequest};

/// A status source that always answers the same.
pub struct Fixed {
    pub status: NodeStatus,
    pub leading: bool,
}

impl StatusSource for Fixed {
    fn status(&self) -> NodeStatus {
        self.status.clone()
    }
    fn is_leading_primary(&self) -> bool {
        self.leading
    }
}

/// A management agent that answers every call with an empty success and counts the calls; `members`
/// are the addresses it calls members'.
#[derive(Default)]
pub struct Idle {
    pub calls: AtomicUsize,
    pub members: Vec<std::net::IpAddr>,
}

impl Idle {
    fn ok<T: Default + Send + 'static>(&self) -> BoxFuture<'_, Result<T, ApiError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(T::default()) })
    }
}

impl vigil_api::Management for Idle {
    fn cluster(&self) -> BoxFuture<'_, Result<vigil_api::Cluster, ApiError>> {
        self.ok()
    }
    fn history(&self) -> BoxFuture<'_, Result<Vec<vigil_api::HistoryEntry>, ApiError>> {
        self.ok()
    }
    fn config(&self) -> BoxFuture<'_, Result<Value, ApiError>> {
        self.ok()
    }
    fn set_config(&self, _: Value, _: bool) -> BoxFuture<'_, Result<Value, ApiError>> {
        self.ok()
    }
    fn switchover(&self, _: SwitchoverRequest, _: bool) -> BoxFuture<'_, Result<String, ApiError>> {
        self.ok()
    }
    fn cancel_switchover(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        self.ok()
    }
    fn restart(&self, _: RestartRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        self.ok()
    }
    fn cancel_restart(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        self.ok()
    }
    fn reload(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        self.ok()
    }
    fn reinitialize(&self, _: ReinitializeRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        self.ok()
    }
    fn is_member_address(&self, ip: std::net::IpAddr) -> BoxFuture<'_, bool> {
        let member = self.members.contains(&ip);
        Box::pin(async move { member })
    }
}

/// Serves `router` over plain HTTP on a loopback port, as the agent does; returns its base URL. The
/// server stops when the test's runtime does.
pub async fn serve_http(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    tokio::spawn(vigil_api::tls::serve(listener, router, None));
    url
}

/// One answer of the router.
pub struct Answer {
    pub code: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Sends `method path` to a router over `status`.
pub async fn call(status: &NodeStatus, leading: bool, method: &str, path: &str) -> Answer {
    let source = Fixed { status: status.clone(), leading };
    let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
    let response = router(Arc::new(source)).oneshot(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.expect("body").to_vec();
    Answer { code: parts.status, headers: parts.headers, body }
}

/// `GET path`'s status code.
pub async fn code(status: &NodeStatus, leading: bool, path: &str) -> StatusCode {
    call(status, leading, "GET", path).await.code
}

/// The primary's last known position in the fixtures.
pub const PRIMARY_AT: u64 = 0x3000060;

fn member(state: &str, role: &str) -> NodeStatus {
    let mut status = NodeStatus {
        state: state.into(),
        role: role.into(),
        patroni: PatroniInfo { version: "0.1.0".into(), scope: "demo".into(), name: "node1".into() },
        ..Default::default()
    };
    status.vigil.primary_optime = Some(PRIMARY_AT);
    status.tags.insert("zone".into(), "a".into());
    status.tags.insert("nofailover".into(), false.into());
    status.tags.insert("failover_priority".into(), 2.into());
    status
}

/// A running primary (lead it with `leading = true`).
pub fn primary() -> NodeStatus {
    let mut status = member("running", "primary");
    status.xlog.location = Some(PRIMARY_AT);
    status.timeline = Some(3);
    status.vigil.fencing_token = Some(7);
    status
}

/// A running, streaming replica that has replayed everything.
pub fn replica() -> NodeStatus {
    let mut status = member("running", "replica");
    status.xlog.received_location = Some(PRIMARY_AT);
    status.xlog.replayed_location = Some(PRIMARY_AT);
    status.replication_state = Some("streaming".into());
    status
}

/// A member whose database is stopped.
pub fn stopped() -> NodeStatus {
    let mut status = member("stopped", "replica");
    status.xlog.replayed_location = Some(PRIMARY_AT);
    status
}

/// A replica tagged `noloadbalance`.
pub fn noloadbalance() -> NodeStatus {
    let mut status = replica();
    status.tags.insert("noloadbalance".into(), true.into());
    status
}

/// A replica 20 MiB behind the primary.
pub fn lagging() -> NodeStatus {
    let mut status = replica();
    status.vigil.primary_optime = Some(PRIMARY_AT + (20 << 20));
    status
}

/// A replica listed as synchronous standby in `synchronous_mode: on`.
pub fn sync_standby() -> NodeStatus {
    let mut status = replica();
    status.sync_standby = true;
    status.vigil.synchronous_mode = Some("on".into());
    status
}

/// A replica listed as quorum standby in `synchronous_mode: quorum`.
pub fn quorum_standby() -> NodeStatus {
    let mut status = replica();
    status.quorum_standby = true;
    status.vigil.synchronous_mode = Some("quorum".into());
    status
}
