//! `vigil pause` and `vigil resume`: `PATCH /config` `{"pause": true}` or `{"pause": null}` (to the
//! leader first), and with `--wait`, poll every member's `GET /cluster` until all report it.

use super::args::PauseArgs;
use super::client::{self, CHANGE_TIMEOUT};
use super::{connect, emit};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// How long `--wait` waits for every member to report the new state.
const WAIT: Duration = Duration::from_secs(30);
/// How often `--wait` asks.
const POLL: Duration = Duration::from_millis(500);

/// Whether a `GET /cluster` body says the cluster is paused.
pub fn is_paused(cluster: &Value) -> bool {
    cluster["pause"].as_bool() == Some(true)
}

/// The members (by name) whose answer does not show `paused` yet; members that did not answer
/// (`None`) are left out, as they cannot be waited for. `None` when nobody answered.
pub fn not_yet(answers: &[(String, Option<Value>)], paused: bool) -> Option<Vec<String>> {
    if answers.iter().all(|(_, a)| a.is_none()) {
        return None;
    }
    Some(
        answers
            .iter()
            .filter(|(_, answer)| answer.as_ref().is_some_and(|c| is_paused(c) != paused))
            .map(|(name, _)| name.clone())
            .collect(),
    )
}

/// `vigil pause` (`paused: true`) and `vigil resume` (`paused: false`).
pub async fn run(args: PauseArgs, paused: bool) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let cluster = client.cluster().await?;
    let scope = cluster["scope"].as_str().unwrap_or("").to_string();
    if is_paused(&cluster) == paused {
        return Err(format!("cluster {scope} is {} paused", if paused { "already" } else { "not" }));
    }
    let body = json!({ "pause": if paused { json!(true) } else { Value::Null } });
    let order = client::ordered(client::leader_first(&cluster), client.urls());
    client.send(Method::PATCH, "/config", Some(&body), &order, CHANGE_TIMEOUT).await?;
    let word = if paused { "paused" } else { "resumed" };
    if args.wait {
        let verb = if paused { "pause" } else { "resume" };
        emit(&format!("'{verb}' request sent, waiting until it is recognized by all nodes\n"));
        wait(&client, &cluster, paused).await?;
    }
    emit(&format!("Success: cluster management is {word}\n"));
    Ok(())
}

/// Polls every member's `GET /cluster` until all that answer report `paused`, up to [`WAIT`].
async fn wait(client: &client::Client, cluster: &Value, paused: bool) -> Result<(), String> {
    let members: Vec<(String, String)> = cluster["members"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| Some((m["name"].as_str()?.to_owned(), client::base_url(m["api_url"].as_str()?))))
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut answers = Vec::new();
        for (name, url) in &members {
            answers.push((name.clone(), client.get_from(url, "/cluster").await.ok()));
        }
        let pending = not_yet(&answers, paused);
        if pending.as_ref().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let state = if paused { "paused" } else { "resumed" };
            return Err(match pending {
                Some(names) => {
                    format!("after {WAIT:?}, {} still did not report the cluster {state}", names.join(", "))
                }
                None => format!("after {WAIT:?}, no member answered to confirm the cluster is {state}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_ends_when_every_member_that_answers_agrees() {
        let paused = || Some(json!({"pause": true}));
        let running = || Some(json!({"scope": "s"}));
        let answers =
            vec![("a".to_string(), paused()), ("b".to_string(), running()), ("c".to_string(), None)];
        assert_eq!(not_yet(&answers, true), Some(vec!["b".to_string()]));
        assert_eq!(not_yet(&answers, false), Some(vec!["a".to_string()]));
        let done = vec![("a".to_string(), paused()), ("c".to_string(), None)];
        assert_eq!(not_yet(&done, true), Some(vec![]));
        assert_eq!(not_yet(&[("c".to_string(), None)], true), None);
    }
}
