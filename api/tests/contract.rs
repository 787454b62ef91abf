//! The contract around the health checks: metrics, the OpenAPI document against the router, and the
//! JSON errors of unknown paths and methods.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use tower::ServiceExt;
use vigil_api::auth::{require_credentials, Credentials};
use vigil_api::backup::BACKUP_PATH;
use vigil_api::BasicAuth;
use vigil_api::{management_router, metrics, openapi, router, RaftInfo, MANAGEMENT_ROUTES, ROUTES};

const LABELS: &str = r#"{scope="demo",name="node1"}"#;

#[tokio::test]
async fn metrics_carry_patroni_and_vigil_names_with_labels() {
    let mut status = replica();
    status.server_version = Some(150018);
    status.timeline = Some(4);
    status.dcs_last_seen = 1_700_000_000;
    status.pending_restart = true;
    status.pause = true;
    status.vigil.fencing_token = Some(9);
    status.vigil.lease_remaining_ms = Some(2500);
    status.vigil.failovers_total = 3;
    let (commit_index, applied_index) = (Some(41), Some(40));
    status.vigil.raft =
        Some(RaftInfo { term: 5, leader: Some(2), voters: vec![1, 2, 3], commit_index, applied_index });
    let answer = call(&status, false, "GET", "/metrics").await;
    assert_eq!(answer.code, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/plain; version=0.0.4");
    let text = String::from_utf8(answer.body).expect("text");
    let open_labels = LABELS.trim_end_matches('}');
    for name in metrics::NAMES {
        assert!(text.contains(&format!("\n{name}{open_labels}")), "{name} in\n{text}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    for sample in [
        "patroni_version 040104",
        "patroni_postgres_running 1",
        "patroni_primary 0",
        "patroni_replica 1",
        "patroni_standby_leader 0",
        "patroni_sync_standby 0",
        "patroni_quorum_standby 0",
        "patroni_xlog_location 0",
        "patroni_xlog_received_location 50331744",
        "patroni_xlog_replayed_location 50331744",
        "patroni_postgres_streaming 1",
        "patroni_postgres_server_version 150018",
        "patroni_postgres_timeline 4",
        "patroni_dcs_last_seen 1700000000",
        "patroni_pending_restart 1",
        "patroni_is_paused 1",
        "patroni_failover_priority 2",
        "vigil_fencing_token 9",
        "vigil_lease_remaining_seconds 2.5",
        "vigil_failovers_total 3",
        "vigil_raft_term 5",
        "vigil_raft_leader 2",
        "vigil_raft_voters 3",
        "vigil_raft_commit_index 41",
        "vigil_raft_applied_index 40",
    ] {
        let (name, value) = sample.split_once(' ').expect("name value");
        assert!(text.contains(&format!("\n{name}{LABELS} {value}\n")), "{sample} in\n{text}");
    }
    assert!(text.contains("# TYPE patroni_xlog_location counter\n"));
    assert!(text.contains("# TYPE vigil_failovers_total counter\n"));
    assert!(text.contains(&format!("\nvigil_version{open_labels},version=\"0.1.0\"}} 1\n")), "{text}");
    let primary = call(&primary(), true, "GET", "/metrics").await.body;
    let primary = String::from_utf8(primary).expect("text");
    assert!(primary.contains(&format!("\npatroni_primary{LABELS} 1\n")));
    assert!(primary.contains(&format!("\npatroni_xlog_location{LABELS} 50331744\n")));
}

/// Every (path, method) of the document, upper-case methods.
fn documented() -> BTreeSet<(String, String)> {
    let doc = openapi();
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.0."));
    let paths = doc["paths"].as_object().expect("paths");
    let mut all = BTreeSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            all.insert((path.clone(), method.to_uppercase()));
        }
    }
    all
}

#[tokio::test]
async fn the_document_and_the_router_list_the_same_routes() {
    let documented = documented();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .flat_map(|(path, endpoint)| endpoint.methods().iter().map(|m| (path.to_string(), m.to_string())))
        .collect();
    let management: BTreeSet<(String, String)> =
        MANAGEMENT_ROUTES.iter().map(|(path, method, ..)| (path.to_string(), method.to_string())).collect();
    let backup = BTreeSet::from([(BACKUP_PATH.to_owned(), "GET".to_owned())]);
    assert_eq!(served.len() + management.len() + backup.len(), documented.len(), "no route listed twice");
    assert!(served.is_subset(&documented), "served but undocumented: {:?}", served.difference(&documented));
    assert!(management.is_subset(&documented));
    assert!(backup.is_subset(&documented));

    // Every documented route this router owns is answered (neither 404 nor 405).
    let others: BTreeSet<_> = management.union(&backup).cloned().collect();
    for (path, method) in documented.difference(&others) {
        assert!(
            served.contains(&(path.clone(), method.clone())),
            "documented, not in ROUTES: {method} {path}"
        );
        let code = call(&replica(), false, method, path).await.code;
        assert!(
            code != StatusCode::NOT_FOUND && code != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {code}"
        );
    }
    // And nothing more: any other method on a served path is a 405.
    for (path, endpoint) in ROUTES {
        for method in ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"] {
            if !endpoint.methods().contains(&method) {
                let answer = call(&replica(), false, method, path).await;
                assert_eq!(answer.code, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_eq!(answer.json()["error"], format!("method not allowed: {method} {path}"));
                assert_eq!(answer.headers["allow"], endpoint.methods().join(","), "{method} {path}");
            }
        }
    }
}

#[test]
fn management_routes_are_documented_with_their_codes() {
    let doc = openapi();
    for (path, method, _, codes, _) in MANAGEMENT_ROUTES {
        let operation = &doc["paths"][path][method.to_lowercase()];
        for code in *codes {
            assert!(operation["responses"].get(code.to_string()).is_some(), "{method} {path} {code}");
        }
        assert!(operation["security"].is_array(), "{method} {path}");
    }
    for (path, method) in [
        ("/cluster", "GET"),
        ("/history", "GET"),
        ("/config", "GET"),
        ("/config", "PATCH"),
        ("/config", "PUT"),
        ("/switchover", "POST"),
        ("/switchover", "DELETE"),
        ("/failover", "POST"),
        ("/restart", "POST"),
        ("/restart", "DELETE"),
        ("/reload", "POST"),
        ("/reinitialize", "POST"),
    ] {
        assert!(doc["paths"][path][method.to_lowercase()].is_object(), "{method} {path}");
    }
}

#[tokio::test]
async fn the_document_is_served() {
    let answer = call(&replica(), false, "GET", "/openapi.json").await;
    assert_eq!(answer.code, StatusCode::OK);
    assert_eq!(answer.json(), openapi());
}

#[tokio::test]
async fn an_unknown_path_is_a_json_404() {
    for (method, path) in [("GET", "/foo"), ("POST", "/foo/bar"), ("GET", "/primary/x")] {
        let answer = call(&replica(), false, method, &format!("{path}?lag=1")).await;
        assert_eq!(answer.code, StatusCode::NOT_FOUND);
        assert_eq!(
            answer.json(),
            serde_json::json!({ "error": format!("no such endpoint: {method} {path}") })
        );
    }
}

#[tokio::test]
async fn every_documented_management_route_is_served() {
    for &(path, method, _, codes, _) in vigil_api::MANAGEMENT_ROUTES {
        let body = if method == "GET" || method == "DELETE" { Body::empty() } else { Body::from("{}") };
        let request = Request::builder().method(method).uri(path).body(body).expect("request");
        let response = management_router(Arc::new(Idle::default())).oneshot(request).await.expect("response");
        let code = response.status().as_u16();
        assert!(codes.contains(&code), "{method} {path} answered {code}, documented {codes:?}");
    }
}

#[tokio::test]
async fn the_json_errors_survive_merging_with_the_management_router() {
    let auth = BasicAuth { username: "u".into(), password: "p".into() };
    let api = || {
        let source = Fixed { status: replica(), leading: false };
        let app = router(Arc::new(source)).merge(management_router(Arc::new(Idle::default())));
        require_credentials(app, Credentials { admin: Some(auth.clone()), read: None })
    };
    for (method, path, code, error) in [
        ("GET", "/foo", 404, Some("no such endpoint: GET /foo")),
        ("POST", "/foo", 404, Some("no such endpoint: POST /foo")),
        ("POST", "/primary", 405, Some("method not allowed: POST /primary")),
        ("GET", "/replica", 200, None),
        ("GET", "/cluster", 200, None),
        ("POST", "/reload", 401, Some("authentication required: wrong or missing credentials")),
    ] {
        let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
        let response = api().oneshot(request).await.expect("response");
        assert_eq!(response.status().as_u16(), code, "{method} {path}");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        if let Some(error) = error {
            let body: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(body["error"], error, "{method} {path}");
        }
    }
}
