//! The typed client of the REST API, used by peers and the CLI.

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
