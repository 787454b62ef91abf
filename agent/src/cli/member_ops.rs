//! `vigil restart`, `vigil reload`, `vigil reinit`: the members' REST API, one member after the other,
//! after a confirmation. Members as patronictl takes them ([`targets`](super::targets)): none named
//! means every member with the role asked for.

use super::args::{MemberRole, ReinitArgs, RestartArgs, Targets};
use super::client::Client;
use super::targets::{self, Member};
use super::{confirm, connect, emit};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How long one member's call may take (a restart waits for the database to be up again).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `reinit --wait` waits for the clones.
const REINIT_PATIENCE: Duration = Duration::from_secs(3600);

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    /// `POST /restart`.
    Restart,
    /// `POST /reload`.
    Reload,
    /// `POST /reinitialize`.
    Reinit,
    /// `DELETE /restart`: cancel a scheduled restart (`vigil flush restart`).
    FlushRestart,
}

impl MemberOp {
    fn verb(self) -> &'static str {
        match self {
            MemberOp::Restart => "restart",
            MemberOp::Reload => "reload",
            MemberOp::Reinit => "reinitialize",
            MemberOp::FlushRestart => "flush the scheduled restart of",
        }
    }

    fn call(self) -> (Method, &'static str) {
        match self {
            MemberOp::Restart => (Method::POST, "/restart"),
            MemberOp::Reload => (Method::POST, "/reload"),
            MemberOp::Reinit => (Method::POST, "/reinitialize"),
            MemberOp::FlushRestart => (Method::DELETE, "/restart"),
        }
    }
}

/// `vigil reload` and `vigil flush restart`: `op` on the chosen members.
pub async fn run(op: MemberOp, targets: &Targets, role: MemberRole) -> Result<(), String> {
    let chosen = choose(targets, role).await?;
    confirm_members(op, targets.force, &chosen)?;
    perform(&chosen.client, op, &chosen.members, &json!({})).await.map(|_| ())
}

/// `vigil restart`.
pub async fn restart(args: RestartArgs) -> Result<(), String> {
    let mut chosen = choose(&args.targets, args.role).await?;
    if args.scheduled.is_some() && chosen.cluster["pause"] == true {
        return Err("--scheduled: a restart cannot be scheduled while the cluster is paused".into());
    }
    let members = &mut chosen.members;
    if args.pending && args.scheduled.is_none() {
        // A scheduled restart is checked for pending changes when it is due, not now (as patronictl).
        members.retain(|m| pending_restart(&chosen.cluster, &m.name));
        if members.is_empty() {
            emit("No member waits for a restart\n");
            return Ok(());
        }
    }
    if args.any {
        *members = vec![members.swap_remove(random_below(members.len()))];
    }
    confirm_members(MemberOp::Restart, args.targets.force, &chosen)?;
    perform(&chosen.client, MemberOp::Restart, &chosen.members, &restart_body(&args)).await.map(|_| ())
}

/// `vigil reinit`: replicas only; with `--wait`, until each is running again.
pub async fn reinit(args: ReinitArgs) -> Result<(), String> {
    let chosen = choose(&args.targets, MemberRole::Replica).await?;
    confirm_members(MemberOp::Reinit, args.targets.force, &chosen)?;
    let body = json!({ "force": args.targets.force, "from_leader": args.from_leader });
    let started = perform(&chosen.client, MemberOp::Reinit, &chosen.members, &body).await?;
    if args.wait {
        wait_until_running(&chosen.client, &started).await?;
    }
    Ok(())
}

/// The `POST /restart` body for the arguments.
fn restart_body(args: &RestartArgs) -> Value {
    let mut body = json!({});
    if args.pending {
        body["restart_pending"] = json!(true);
    }
    if let Some(at) = &args.scheduled {
        body["schedule"] = json!(at);
    }
    if let Some(version) = &args.pg_version {
        body["postgres_version"] = json!(version);
    }
    if let Some(secs) = args.timeout {
        body["timeout"] = json!(secs);
    }
    body
}

/// What the arguments choose.
struct Chosen {
    client: Client,
    /// The `GET /cluster` body.
    cluster: Value,
    /// The members to act on.
    members: Vec<Member>,
    /// Whether members were named (else: every member with the role).
    named: bool,
}

/// The client, the cluster and the members the arguments choose.
async fn choose(targets: &Targets, role: MemberRole) -> Result<Chosen, String> {
    let mut client = connect(&targets.connect, None).await?;
    let cluster = client.cluster().await?;
    let names = targets::member_names(&targets.names, &cluster)?;
    let members = targets::select(&cluster, names, role)?;
    Ok(Chosen { named: !names.is_empty(), client, cluster, members })
}

/// Asks before acting, unless `force`; a reload of members named explicitly is not asked about.
fn confirm_members(op: MemberOp, force: bool, chosen: &Chosen) -> Result<(), String> {
    if force || (op == MemberOp::Reload && chosen.named) {
        return Ok(());
    }
    let list = chosen.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
    let what = format!("{} {list}", op.verb());
    match confirm(&format!("Are you sure you want to {what}?"))? {
        true => Ok(()),
        false => Err(format!("aborted: did not {what}")),
    }
}

/// Calls `op` with `body` on each member in turn, printing each answer; the members that succeeded,
/// or an error naming those that did not.
async fn perform(
    client: &Client,
    op: MemberOp,
    members: &[Member],
    body: &Value,
) -> Result<Vec<Member>, String> {
    let (method, path) = op.call();
    let body = (method == Method::POST).then_some(body);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for member in members {
        match client.send_to(method.clone(), &member.url, path, body, CALL_TIMEOUT).await {
            Ok(answer) => {
                emit(&format!("Success: {}: {}\n", member.name, answer.trim()));
                done.push(member.clone());
            }
            // Nothing to flush there: `GET /cluster` does not say which members have a restart scheduled.
            Err((_, Some(404))) if op == MemberOp::FlushRestart => {
                emit(&format!("No scheduled restart for member {}\n", member.name));
            }
            Err((why, _)) => {
                emit(&format!("Failed: {}: {why}\n", member.name));
                failed.push(member.name.as_str());
            }
        }
    }
    match failed.is_empty() {
        true => Ok(done),
        false => Err(format!("could not {} {}", op.verb(), failed.join(", "))),
    }
}

/// Waits until each member's `GET /patroni` says `running` (its clone finished and the database
/// started), printing who is still awaited.
async fn wait_until_running(client: &Client, members: &[Member]) -> Result<(), String> {
    let deadline = Instant::now() + REINIT_PATIENCE;
    let mut waiting: Vec<&Member> = members.iter().collect();
    let mut shown = String::new();
    while !waiting.is_empty() {
        let names = waiting.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ");
        if names != shown {
            emit(&format!("Waiting for reinitialize to complete on: {names}\n"));
            shown = names;
        }
        if Instant::now() >= deadline {
            return Err(format!("reinitialize did not complete within {REINIT_PATIENCE:?} on: {shown}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut still = Vec::new();
        for member in waiting {
            let status = client.get_from(&member.url, "/patroni").await;
            match status.as_ref().ok().and_then(|s| s["state"].as_str()) {
                Some("running") => {
                    emit(&format!("Reinitialize is completed on: {}\n", member.name));
                }
                _ => still.push(member),
            }
        }
        waiting = still;
    }
    Ok(())
}

/// Whether member `name` reports a parameter change that waits for a restart.
fn pending_restart(cluster: &Value, name: &str) -> bool {
    let members = cluster["members"].as_array().map(Vec::as_slice).unwrap_or_default();
    members.iter().any(|m| m["name"] == name && m["pending_restart"] == true)
}

/// A number below `n` (> 0), random enough to pick a member (`restart --any`).
fn random_below(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let hash = std::collections::hash_map::RandomState::new().build_hasher().finish();
    usize::try_from(hash % n as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_body_carries_only_what_was_given() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: RestartArgs,
        }
        let parse = |line: &[&str]| Cli::try_parse_from(line).map(|c| c.args);
        let bare = parse(&["restart", "n1"]).expect("bare");
        assert_eq!(restart_body(&bare), json!({}));
        let full = parse(&[
            "restart",
            "it",
            "--pending",
            "--scheduled",
            "2030-01-01T10:00Z",
            "--pg-version",
            "15.8",
            "--timeout",
            "30",
        ])
        .expect("full");
        assert_eq!(
            restart_body(&full),
            json!({"restart_pending": true, "schedule": "2030-01-01T10:00Z", "postgres_version": "15.8",
                   "timeout": 30})
        );
        let err = parse(&["restart", "--pg-version", "fifteen"]).expect_err("bad version").to_string();
        assert!(err.contains("--pg-version") && err.contains("is not a PostgreSQL version"), "{err}");
    }

    #[test]
    fn random_picks_stay_in_range() {
        assert!((0..50).all(|_| random_below(3) < 3));
        assert_eq!(random_below(1), 0);
    }

    #[test]
    fn pending_restarts_are_read_per_member() {
        let cluster = json!({"members": [{"name": "a", "pending_restart": true}, {"name": "b"}]});
        assert!(pending_restart(&cluster, "a"));
        assert!(!pending_restart(&cluster, "b"));
    }
}
