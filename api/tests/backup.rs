//! `GET /backup` over real HTTP: only the replication account gets the copy, whatever the other
//! credentials; the client receives the copy whole, a copy that fails midway as a broken transfer, and a
//! refusal with its reason.

mod common;

use axum::body::{Body, Bytes};
use common::{primary, serve_http, Fixed};
use std::sync::Arc;
use std::time::Duration;
use vigil_api::auth::{require_credentials, Credentials};
use vigil_api::backup::{backup_router, BackupSource};
use vigil_api::{router, ApiError, BasicAuth, BoxFuture};

/// What the fake database answers: chunks, then an error if `fails`; or a refusal.
struct Copies {
    refuse: Option<&'static str>,
    fails: bool,
}

impl BackupSource for Copies {
    fn open(&self) -> BoxFuture<'_, Result<Body, ApiError>> {
        Box::pin(async move {
            if let Some(why) = self.refuse {
                return Err(ApiError::new(503, why));
            }
            let mut items: Vec<Result<Bytes, std::io::Error>> =
                vec![Ok(Bytes::from_static(b"first ")), Ok(Bytes::from_static(b"second"))];
            if self.fails {
                items.push(Err(std::io::Error::other("mariadb-backup exit status: 1")));
            }
            Ok(Body::from_stream(futures_util::stream::iter(items)))
        })
    }
}

fn account(username: &str, password: &str) -> BasicAuth {
    BasicAuth { username: username.into(), password: password.into() }
}

/// The status routes behind admin and read credentials, with `/backup` for the replication account.
async fn api(copies: Copies) -> String {
    let credentials =
        Credentials { admin: Some(account("admin", "s3cret")), read: Some(account("monitor", "r3ad")) };
    let app = require_credentials(router(Arc::new(Fixed { status: primary(), leading: true })), credentials);
    let app = app.merge(backup_router(Arc::new(copies), account("replicator", "rep-pass")));
    format!("{}/patroni", serve_http(app).await)
}

/// Every chunk of `response`'s body, or the error that broke it.
async fn read_all(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut all = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn only_the_replication_account_gets_a_copy() {
    let url = api(Copies { refuse: None, fails: false }).await;
    let http = reqwest::Client::new();
    for (who, auth) in [
        ("the admin", account("admin", "s3cret")),
        ("the reader", account("monitor", "r3ad")),
        ("a wrong password", account("replicator", "nope")),
    ] {
        let refused = vigil_api::client::backup(&http, &url, &auth, WAIT).await.expect_err(who);
        assert!(refused.contains("HTTP 401") && refused.contains("replication account"), "{who}: {refused}");
    }
    let anonymous = http.get(url.replace("/patroni", "/backup")).send().await.expect("answer");
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));

    let response = vigil_api::client::backup(&http, &url, &account("replicator", "rep-pass"), WAIT).await;
    let copy = read_all(response.expect("a copy")).await.expect("whole");
    assert_eq!(copy, b"first second");
}

#[tokio::test]
async fn a_copy_that_fails_midway_is_a_broken_transfer() {
    let url = api(Copies { refuse: None, fails: true }).await;
    let http = reqwest::Client::new();
    let response = vigil_api::client::backup(&http, &url, &account("replicator", "rep-pass"), WAIT).await;
    // The error may come before the response head is sent (then the request fails) or after.
    if let Ok(response) = response {
        let read = read_all(response).await;
        assert!(read.is_err(), "a failed copy read as whole: {read:?}");
    }
}

#[tokio::test]
async fn a_refusal_reaches_the_client_with_its_reason() {
    let url = api(Copies { refuse: Some("mariadbd does not run"), fails: false }).await;
    let http = reqwest::Client::new();
    let refused = vigil_api::client::backup(&http, &url, &account("replicator", "rep-pass"), WAIT).await;
    let refused = refused.expect_err("refused");
    assert!(refused.contains("HTTP 503: mariadbd does not run"), "{refused}");
}
