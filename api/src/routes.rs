//! The routes: Patroni's health checks (200 or 503, the status JSON as body) and the status page.
//!
//! | path | 200 when |
//! |---|---|
//! | `/`, `/primary`, `/leader`, `/read-write` | this member is a writable primary holding the lease by its own deadline |
//! | `/replica` | this member runs as a replica and is not tagged `noloadbalance` |
//! | `/read-only` | this member runs (primary or replica) |
//! | `/health` | the database runs |
//! | `/liveness` | the agent answers |
//! | `/readiness` | a leading primary, or a running replica |
//! | `/patroni`, `/status` | always: the status JSON |
//!
//! `GET` answers with the status JSON, `HEAD` and `OPTIONS` with the status line alone. `/primary` carries
//! the `X-Vigil-Fencing-Token` header while it answers 200.

use crate::NodeStatus;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use std::sync::Arc;

/// What the router asks the agent.
pub trait StatusSource: Send + Sync + 'static {
    /// The member's latest status.
    fn status(&self) -> NodeStatus;
    /// Whether the member is, right now, a writable primary holding the lease by its own deadline.
    fn is_leading_primary(&self) -> bool;
}

type Source = Arc<dyn StatusSource>;

/// The REST router over `source`.
pub fn router(source: Source) -> Router {
    let check = |rule: fn(&dyn StatusSource, &NodeStatus) -> bool| -> MethodRouter<Source> {
        let handler = move |method: Method, State(source): State<Source>| async move {
            health(method, source.as_ref(), rule)
        };
        get(handler).options(handler)
    };
    Router::new()
        .route("/", check(leading))
        .route("/primary", check(leading))
        .route("/leader", check(leading))
        .route("/read-write", check(leading))
        .route(
            "/replica",
            check(|_, s| s.state == "running" && s.role == "replica" && !tagged(s, "noloadbalance")),
        )
        .route("/read-only", check(|_, s| s.state == "running"))
        .route("/health", check(|_, s| s.state == "running"))
        .route("/liveness", check(|_, _| true))
        .route(
            "/readiness",
            check(|src, s| src.is_leading_primary() || (s.state == "running" && s.role == "replica")),
        )
        .route("/patroni", check(|_, _| true))
        .route("/status", check(|_, _| true))
        .with_state(source)
}

fn leading(source: &dyn StatusSource, _: &NodeStatus) -> bool {
    source.is_leading_primary()
}

fn tagged(status: &NodeStatus, tag: &str) -> bool {
    status.tags.get(tag).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn health(
    method: Method,
    source: &dyn StatusSource,
    rule: fn(&dyn StatusSource, &NodeStatus) -> bool,
) -> Response {
    let status = source.status();
    let ok = rule(source, &status);
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut headers = HeaderMap::new();
    if let (true, Some(token)) = (ok && source.is_leading_primary(), status.vigil.fencing_token) {
        headers.insert("x-vigil-fencing-token", HeaderValue::from(token));
    }
    if method == Method::OPTIONS {
        return (code, headers).into_response();
    }
    (code, headers, Json(status)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed(NodeStatus, bool);

    impl StatusSource for Fixed {
        fn status(&self) -> NodeStatus {
            self.0.clone()
        }
        fn is_leading_primary(&self) -> bool {
            self.1
        }
    }

    async fn call(source: Fixed, method: &str, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
        let response = router(Arc::new(source)).oneshot(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (parts.status, parts.headers, bytes.to_vec())
    }

    fn status(state: &str, role: &str, token: Option<u64>) -> NodeStatus {
        let mut s = NodeStatus { state: state.into(), role: role.into(), ..Default::default() };
        s.vigil.fencing_token = token;
        s
    }

    #[tokio::test]
    async fn primary_is_200_with_the_token_only_while_leading() {
        let (code, headers, body) =
            call(Fixed(status("running", "primary", Some(7)), true), "GET", "/primary").await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(headers["x-vigil-fencing-token"], "7");
        assert_eq!(serde_json::from_slice::<NodeStatus>(&body).expect("json").role, "primary");

        let (code, headers, _) =
            call(Fixed(status("running", "primary", Some(7)), false), "GET", "/primary").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.get("x-vigil-fencing-token").is_none());
    }

    #[tokio::test]
    async fn head_and_options_answer_the_status_line_alone() {
        for method in ["HEAD", "OPTIONS"] {
            let (code, _, body) =
                call(Fixed(status("running", "replica", None), false), method, "/replica").await;
            assert_eq!(code, StatusCode::OK, "{method}");
            assert!(body.is_empty(), "{method}");
        }
    }

    #[tokio::test]
    async fn replica_checks_follow_role_state_and_noloadbalance() {
        let replica = || status("running", "replica", None);
        assert_eq!(call(Fixed(replica(), false), "GET", "/replica").await.0, StatusCode::OK);
        assert_eq!(call(Fixed(replica(), false), "GET", "/primary").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let mut tagged = replica();
        tagged.tags.insert("noloadbalance".into(), true.into());
        assert_eq!(call(Fixed(tagged, false), "GET", "/replica").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let stopped = status("stopped", "replica", None);
        assert_eq!(
            call(Fixed(stopped.clone(), false), "GET", "/health").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(call(Fixed(stopped, false), "GET", "/liveness").await.0, StatusCode::OK);
    }
}
