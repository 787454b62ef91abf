//! The typed client of the REST API, used by peers and the CLI.

use crate::NodeStatus;
use std::time::Duration;

/// `GET <api_url>` (a member's `api_url`, e.g. `http://host:8008/patroni`) within `timeout`.
pub async fn status(http: &reqwest::Client, api_url: &str, timeout: Duration) -> Result<NodeStatus, String> {
    let response = http.get(api_url).timeout(timeout).send().await.map_err(|e| format!("{api_url}: {e}"))?;
    response.json().await.map_err(|e| format!("{api_url}: unreadable status: {e}"))
}
