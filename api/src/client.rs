//! The typed client of the REST API, used by peers and the CLI.

use crate::backup::BACKUP_PATH;
use crate::{BasicAuth, NodeStatus};
use std::time::Duration;

/// `GET <api_url>` (a member's `api_url`, e.g. `http://host:8008/patroni`) within `timeout`, with `auth`'s
/// basic-auth credentials when given (needed where `restapi.read_authentication` is set).
pub async fn status(
    http: &reqwest::Client,
    api_url: &str,
    auth: Option<&BasicAuth>,
    timeout: Duration,
) -> Result<NodeStatus, String> {
    let mut request = http.get(api_url).timeout(timeout);
    if let Some(auth) = auth {
        request = request.basic_auth(&auth.username, Some(auth.password.expose()));
    }
    let response = request.send().await.map_err(|e| format!("{api_url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{api_url}: HTTP {}", response.status()));
    }
    response.json().await.map_err(|e| format!("{api_url}: unreadable status: {e}"))
}

/// A base URL: `http://` added when there is no scheme, the trailing `/` and `/patroni` (a member's
/// `api_url`) removed.
pub fn base_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/patroni").unwrap_or(url);
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

/// `GET /backup` of the member at `api_url`, as `account`, connecting within `connect_timeout`: the
/// response once the member answered 200 (its body is the copy, read with [`reqwest::Response::chunk`]),
/// else what it said.
pub async fn backup(
    http: &reqwest::Client,
    api_url: &str,
    account: &BasicAuth,
    connect_timeout: Duration,
) -> Result<reqwest::Response, String> {
    let url = format!("{}{BACKUP_PATH}", base_url(api_url));
    let request = http.get(&url).basic_auth(&account.username, Some(account.password.expose()));
    let response = tokio::time::timeout(connect_timeout, request.send())
        .await
        .map_err(|_| format!("{url}: no answer within {connect_timeout:?}"))?
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let said: serde_json::Value = response.json().await.unwrap_or_default();
    let reason = said["error"].as_str().map(str::to_owned).unwrap_or_else(|| status.to_string());
    Err(format!("{url}: HTTP {}: {reason}", status.as_u16()))
}

/// `POST /death` to the member at `api_url` with `certificate`, within `timeout`, as `auth`: the
/// member's answer when it is 200 (the lease was released) or 409 (the lease is no longer that grant,
/// which nobody can change), else the error.
pub async fn certify_death(
    http: &reqwest::Client,
    api_url: &str,
    auth: Option<&BasicAuth>,
    certificate: &crate::DeathCertificate,
    timeout: Duration,
) -> Result<String, String> {
    let url = format!("{}/death", base_url(api_url));
    let mut request = http.post(&url).json(certificate).timeout(timeout);
    if let Some(auth) = auth {
        request = request.basic_auth(&auth.username, Some(auth.password.expose()));
    }
    let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    // 200 answers a plain-text message, an error JSON `{"error": …}`.
    let body = response.text().await.unwrap_or_default();
    let said: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let text = said["error"].as_str().unwrap_or(&body).to_owned();
    match status.as_u16() {
        200 | 409 => Ok(format!("HTTP {}: {text}", status.as_u16())),
        code => Err(format!("{url}: HTTP {code}: {text}")),
    }
}
