//! `restapi.allowlist` and `allowlist_include_members` over real HTTP: the loopback client is 127.0.0.1,
//! so `10.0.0.0/8` leaves it out and `127.0.0.0/8` lets it in.

mod common;

use common::{primary, serve_http, Fixed, Idle};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vigil_api::allowlist::{self, Allowlist, Network};
use vigil_api::{management_router, router, Management};

/// The agent's full API (health, status, management) behind `allowlist`; the base URL and the agent.
async fn api(networks: &[&str], include_members: bool, members: &[&str]) -> (String, Arc<Idle>) {
    let members = members.iter().map(|m| m.parse::<IpAddr>().expect("ip")).collect();
    let agent = Arc::new(Idle { members, ..Default::default() });
    let networks = networks.iter().map(|n| n.parse::<Network>().expect("network")).collect();
    let app =
        router(Arc::new(Fixed { status: primary(), leading: true })).merge(management_router(agent.clone()));
    let app = allowlist::restrict(
        app,
        Allowlist { networks, include_members },
        agent.clone() as Arc<dyn Management>,
    );
    (serve_http(app).await, agent)
}

/// `PATCH /config` and `POST /switchover`: their status codes and JSON bodies.
async fn changes(base: &str) -> Vec<(u16, Value)> {
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for (method, path, body) in [
        (reqwest::Method::PATCH, "/config", r#"{"ttl": 30}"#),
        (reqwest::Method::POST, "/switchover", r#"{"leader": "node1"}"#),
    ] {
        let response = client.request(method, format!("{base}{path}")).body(body).send().await.expect("send");
        let code = response.status().as_u16();
        let text = response.text().await.expect("body");
        answers.push((code, serde_json::from_str(&text).unwrap_or(Value::String(text))));
    }
    answers
}

#[tokio::test]
async fn a_client_outside_the_allowlist_gets_403_and_the_agent_is_not_called() {
    let (base, agent) = api(&["10.0.0.0/8", "192.0.2.7"], false, &[]).await;
    for (code, body) in changes(&base).await {
        assert_eq!(code, 403, "{body}");
        let error = body["error"].as_str().expect("a JSON error");
        assert!(error.contains("127.0.0.1") && error.contains("restapi.allowlist"), "{error}");
    }
    assert_eq!(agent.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_allowed_address_or_network_passes() {
    for list in [["127.0.0.1", "10.0.0.0/8"], ["10.0.0.0/8", "127.0.0.0/8"]] {
        let (base, agent) = api(&list, false, &[]).await;
        let codes: Vec<u16> = changes(&base).await.into_iter().map(|(code, _)| code).collect();
        assert_eq!(codes, [200, 200], "{list:?}");
        assert_eq!(agent.calls.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test]
async fn include_members_lets_a_member_in_and_no_one_else() {
    let (base, _) = api(&["10.0.0.0/8"], true, &["127.0.0.1"]).await;
    let codes: Vec<u16> = changes(&base).await.into_iter().map(|(code, _)| code).collect();
    assert_eq!(codes, [200, 200]);

    let (base, _) = api(&[], true, &["10.1.2.3"]).await;
    for (code, body) in changes(&base).await {
        assert_eq!(code, 403);
        assert!(body["error"].as_str().is_some_and(|e| e.contains("nor a member's address")), "{body}");
    }
}

#[tokio::test]
async fn reads_and_health_checks_stay_open() {
    let (base, _) = api(&["10.0.0.0/8"], true, &[]).await;
    let client = reqwest::Client::new();
    for path in ["/primary", "/health", "/patroni", "/cluster", "/config", "/metrics"] {
        let code = client.get(format!("{base}{path}")).send().await.expect("send").status().as_u16();
        assert_eq!(code, 200, "{path}");
    }
    let head = client.head(format!("{base}/primary")).send().await.expect("send").status().as_u16();
    let options =
        client.request(reqwest::Method::OPTIONS, format!("{base}/replica")).send().await.expect("send");
    assert_eq!((head, options.status().as_u16()), (200, 503));
}
