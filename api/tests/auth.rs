//! `restapi.authentication` (admin) and `restapi.read_authentication` (read-only) over real HTTP: who
//! may read the status endpoints, who may change anything, and that the health checks stay open.

mod common;

use common::{primary, serve_http, Fixed, Idle};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vigil_api::auth::{require_credentials, Credentials};
use vigil_api::{management_router, router, BasicAuth};

const ADMIN: (&str, &str) = ("admin", "s3cret");
const READER: (&str, &str) = ("monitor", "r3ad");

fn basic((username, password): (&str, &str)) -> Option<BasicAuth> {
    Some(BasicAuth { username: username.into(), password: password.into() })
}

/// The agent's full API (health, status, management) behind `credentials`, served on a loopback port.
struct Api {
    base: String,
    agent: Arc<Idle>,
    /// One client for every call (building one reads the system's certificates).
    client: reqwest::Client,
}

async fn api(credentials: Credentials) -> Api {
    let agent = Arc::new(Idle::default());
    let app =
        router(Arc::new(Fixed { status: primary(), leading: true })).merge(management_router(agent.clone()));
    let base = serve_http(require_credentials(app, credentials)).await;
    Api { base, agent, client: reqwest::Client::new() }
}

/// `method path` with `user`'s credentials (none: `None`): the status code and the JSON error, if any.
async fn call(api: &Api, method: &str, path: &str, user: Option<(&str, &str)>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let body = if method == reqwest::Method::GET { "" } else { "{}" };
    let mut request = api.client.request(method, format!("{}{path}", api.base)).body(body);
    if let Some((username, password)) = user {
        request = request.basic_auth(username, Some(password));
    }
    let response = request.send().await.expect("an answer");
    let code = response.status().as_u16();
    let text = response.text().await.expect("body");
    let error = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned));
    (code, error.unwrap_or_default())
}

const READS: [&str; 6] = ["/patroni", "/status", "/cluster", "/history", "/config", "/metrics"];
const HEALTH_CHECKS: [&str; 7] =
    ["/", "/primary", "/replica", "/health", "/readiness", "/liveness", "/leader"];

#[tokio::test]
async fn with_read_credentials_the_status_endpoints_need_credentials_and_health_checks_stay_open() {
    let api = api(Credentials { admin: basic(ADMIN), read: basic(READER) }).await;
    for path in READS {
        let (code, error) = call(&api, "GET", path, None).await;
        assert_eq!(code, 401, "GET {path} without credentials");
        assert!(error.starts_with("authentication required"), "{error}");
        assert_eq!(
            call(&api, "GET", path, Some(("monitor", "wrong"))).await.0,
            401,
            "GET {path}, wrong password"
        );
        assert_eq!(call(&api, "GET", path, Some(READER)).await.0, 200, "GET {path} as the reader");
        assert_eq!(call(&api, "GET", path, Some(ADMIN)).await.0, 200, "GET {path} as the admin");
    }
    for path in HEALTH_CHECKS {
        let (code, _) = call(&api, "GET", path, None).await;
        assert!(code == 200 || code == 503, "GET {path} without credentials answered {code}");
        assert_eq!(call(&api, "OPTIONS", path, None).await.0, code, "OPTIONS {path}");
    }
    assert_eq!(call(&api, "GET", "/nothing", None).await.0, 404, "an unknown path is a 404 for anyone");
}

#[tokio::test]
async fn read_credentials_cannot_change_anything_the_admin_can() {
    let api = api(Credentials { admin: basic(ADMIN), read: basic(READER) }).await;
    for (method, path) in [("PATCH", "/config"), ("POST", "/reload"), ("DELETE", "/switchover")] {
        assert_eq!(call(&api, method, path, None).await.0, 401, "{method} {path} without credentials");
        let (code, error) = call(&api, method, path, Some(READER)).await;
        assert_eq!(code, 403, "{method} {path} as the reader");
        assert!(
            error.starts_with("read-only credentials") && error.contains("restapi.authentication"),
            "{error}"
        );
    }
    assert_eq!(api.agent.calls.load(Ordering::SeqCst), 0, "refused calls never reach the agent");
    for (method, path) in [("PATCH", "/config"), ("POST", "/reload"), ("DELETE", "/switchover")] {
        let (code, _) = call(&api, method, path, Some(ADMIN)).await;
        assert!((200..300).contains(&code), "{method} {path} as the admin answered {code}");
    }
}

#[tokio::test]
async fn without_read_credentials_reads_stay_open_and_changes_need_the_admin() {
    let api = api(Credentials { admin: basic(ADMIN), read: None }).await;
    for path in READS {
        assert_eq!(call(&api, "GET", path, None).await.0, 200, "GET {path}");
    }
    assert_eq!(call(&api, "POST", "/reload", None).await.0, 401);
    assert_eq!(call(&api, "POST", "/reload", Some(ADMIN)).await.0, 202);
}
