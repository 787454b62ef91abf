//! The bodies of the mutating management routes (issue 12): a body of the wrong JSON type, invalid
//! UTF-8 or over the size limit answers 4xx with a JSON error, and the agent is not called.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::Idle;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tower::ServiceExt;
use vigil_api::body::MAX_BODY;
use vigil_api::management_router;

const MUTATING: &[(&str, &str)] = &[
    ("PATCH", "/config"),
    ("PUT", "/config"),
    ("POST", "/switchover"),
    ("DELETE", "/switchover"),
    ("POST", "/failover"),
    ("POST", "/restart"),
    ("DELETE", "/restart"),
    ("POST", "/reload"),
    ("POST", "/reinitialize"),
];

/// Sends `body` to `method path`: the status, the JSON body, and how many calls reached the agent.
async fn send(method: &str, path: &str, body: Vec<u8>) -> (u16, Value, usize) {
    let agent = Arc::new(Idle::default());
    let request = Request::builder().method(method).uri(path).body(Body::from(body)).expect("request");
    let response = management_router(agent.clone()).oneshot(request).await.expect("response");
    let code = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("{method} {path} {code}: not JSON: {}", String::from_utf8_lossy(&bytes)));
    (code, json, agent.calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn bodies_of_the_wrong_json_type_are_refused_and_change_nothing() {
    for &(method, path) in MUTATING {
        for (body, why) in [
            (&b"[]"[..], "must be a JSON object, not an array"),
            (b"\"ttl\"", "must be a JSON object, not a string"),
            (b"3", "must be a JSON object, not a number"),
            (b"{\"x\": \"\xff\"}", "is not UTF-8"),
            (b"{", "malformed JSON body"),
        ] {
            let (code, json, calls) = send(method, path, body.to_vec()).await;
            assert_eq!((code, calls), (400, 0), "{method} {path} {body:?}: {json}");
            let error = json["error"].as_str().expect("error");
            assert!(error.contains(why), "{method} {path} {body:?}: {error}");
        }
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_a_json_413() {
    let mut big = b"{\"x\": \"".to_vec();
    big.resize(MAX_BODY + 1, b'a');
    for &(method, path) in MUTATING {
        let (code, json, calls) = send(method, path, big.clone()).await;
        assert_eq!((code, calls), (413, 0), "{method} {path}: {json}");
        assert_eq!(json["error"], format!("the request body is larger than {MAX_BODY} bytes"));
    }
}

#[tokio::test]
async fn a_bad_schedule_is_refused_before_the_agent_sees_it() {
    let body = r#"{"schedule": "2030-01-01T12:3é"}"#.as_bytes().to_vec();
    let (code, json, calls) = send("POST", "/restart", body).await;
    assert_eq!((code, calls), (422, 0), "{json}");
    assert!(json["error"].as_str().expect("error").contains("\"2030-01-01T12:3é\""), "{json}");
}

#[tokio::test]
async fn empty_bodies_still_work_where_they_did() {
    for (method, path) in
        [("DELETE", "/switchover"), ("POST", "/restart"), ("POST", "/reload"), ("POST", "/reinitialize")]
    {
        let agent = Arc::new(Idle::default());
        let request = Request::builder().method(method).uri(path).body(Body::empty()).expect("request");
        let response = management_router(agent.clone()).oneshot(request).await.expect("response");
        assert!(response.status().is_success(), "{method} {path}: {}", response.status());
        assert_eq!(agent.calls.load(Ordering::SeqCst), 1);
    }
}
