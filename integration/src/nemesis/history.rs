//! The lease history as it grows: `GET /history` polled through the run, so that every takeover has a
//! time on the run's clock even when the agents record none: the first time it was seen, an upper bound
//! on when it was recorded (see [`super::checker::Takeover::from_history`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Between two polls.
const PACE: Duration = Duration::from_millis(500);
/// How long one node may take to answer (an agent may be stopped or cut off: the next one is asked).
const ANSWER: Duration = Duration::from_secs(1);

/// A takeover's key in the history: the new primary's name and its fencing token.
pub type Key = (String, u64);

/// The takeovers of `body` (a `GET /history` answer): entries with a `new_primary` and a
/// `fencing_token`, in the history's order.
pub fn takeover_keys(body: &serde_json::Value) -> impl Iterator<Item = (Key, &serde_json::Value)> {
    body.as_array().into_iter().flatten().filter_map(|entry| {
        let name = entry["new_primary"].as_str()?;
        Some(((name.to_owned(), entry["fencing_token"].as_u64()?), entry))
    })
}

/// A running poller; stopped when dropped.
pub struct HistoryWatch {
    seen: Arc<Mutex<HashMap<Key, Duration>>>,
    task: JoinHandle<()>,
}

impl HistoryWatch {
    /// Polls `urls` (each node's `…/history`, the first that answers each round) every [`PACE`]
    /// until `until`; times since `epoch`.
    pub fn start(urls: Vec<String>, http: reqwest::Client, epoch: Instant, until: Instant) -> HistoryWatch {
        let seen = Arc::new(Mutex::new(HashMap::new()));
        let task = tokio::spawn(poll(urls, http, epoch, until, seen.clone()));
        HistoryWatch { seen, task }
    }

    /// Every takeover seen so far, with the time it was first seen.
    pub fn first_seen(&self) -> HashMap<Key, Duration> {
        self.seen.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

impl Drop for HistoryWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn poll(
    urls: Vec<String>,
    http: reqwest::Client,
    epoch: Instant,
    until: Instant,
    seen: Arc<Mutex<HashMap<Key, Duration>>>,
) {
    let rounds = until.saturating_duration_since(Instant::now()).as_millis() / PACE.as_millis() + 1;
    for _ in 0..rounds {
        for url in &urls {
            let Ok(answer) = http.get(url).timeout(ANSWER).send().await else { continue };
            if !answer.status().is_success() {
                continue;
            }
            let Ok(body) = answer.json::<serde_json::Value>().await else { continue };
            let now = epoch.elapsed();
            if let Ok(mut seen) = seen.lock() {
                for (key, _) in takeover_keys(&body) {
                    seen.entry(key).or_insert(now);
                }
            }
            break;
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(PACE).await;
    }
}
