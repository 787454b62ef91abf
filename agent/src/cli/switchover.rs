//! `vigil switchover` and `vigil failover`: check the request against the cluster view, show the plan,
//! ask, then `POST /switchover` or `POST /failover` (to the leader first).

use super::args::{FailoverArgs, Format, SwitchoverArgs};
use super::client::{self, SWITCHOVER_TIMEOUT};
use super::{confirm, connect, emit, list};
use reqwest::Method;
use serde_json::{json, Map, Value};

/// What will be asked of the agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The cluster's name.
    pub scope: String,
    /// A failover (`POST /failover`) rather than a switchover.
    pub failover: bool,
    /// The current leader, if any.
    pub leader: Option<String>,
    /// The member to promote (`None`: the agents pick).
    pub candidate: Option<String>,
    /// When (`None`: now).
    pub scheduled_at: Option<String>,
    /// A failover that may lose acknowledged commits (`--allow-data-loss`).
    pub allow_data_loss: bool,
}

impl Plan {
    /// The request body (only the fields set: the agent refuses unknown ones).
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        if !self.failover {
            if let Some(leader) = &self.leader {
                body.insert("leader".into(), json!(leader));
            }
        }
        if let Some(candidate) = &self.candidate {
            body.insert("candidate".into(), json!(candidate));
        }
        if let Some(at) = &self.scheduled_at {
            body.insert("scheduled_at".into(), json!(at));
        }
        if self.allow_data_loss {
            body.insert("allow_data_loss".into(), json!(true));
        }
        Value::Object(body)
    }

    /// One line saying what will happen.
    pub fn describe(&self) -> String {
        let promote = match &self.candidate {
            Some(c) => format!("promote {c}"),
            None => "promote the replica the agents find best".to_string(),
        };
        let mut when = self.scheduled_at.as_ref().map_or("now".to_string(), |at| format!("at {at}"));
        if self.allow_data_loss {
            when += ", even if acknowledged commits are lost";
        }
        let kind = if self.failover { "Failover" } else { "Switchover" };
        match &self.leader {
            Some(leader) => format!("{kind} of cluster {}: demote {leader}, {promote}, {when}.", self.scope),
            None => format!("{kind} of cluster {} (it has no leader): {promote}, {when}.", self.scope),
        }
    }

    /// The confirmation question (patronictl's).
    pub fn question(&self) -> String {
        let kind = if self.failover { "failover" } else { "switchover" };
        match &self.leader {
            Some(leader) => {
                format!(
                    "Are you sure you want to {kind} cluster {}, demoting current leader {leader}?",
                    self.scope
                )
            }
            None => format!("Are you sure you want to {kind} cluster {}?", self.scope),
        }
    }
}

/// The leader's name and every member's, from a `GET /cluster` body.
fn names(cluster: &Value) -> (Option<String>, Vec<String>) {
    let members = cluster["members"].as_array().map(Vec::as_slice).unwrap_or_default();
    let leader =
        members.iter().find(|m| list::is_leader(m)).and_then(|m| m["name"].as_str()).map(str::to_owned);
    (leader, members.iter().filter_map(|m| m["name"].as_str()).map(str::to_owned).collect())
}

/// Checks a switchover: there is a leader, `--leader` (if given) is it, the candidate (if given) is
/// another member. `--scheduled now` means now.
pub fn switchover_plan(
    cluster: &Value,
    leader: Option<&str>,
    candidate: Option<&str>,
    scheduled: Option<&str>,
) -> Result<Plan, String> {
    let scope = cluster["scope"].as_str().unwrap_or("").to_string();
    let (current, members) = names(cluster);
    let Some(current) = current else {
        return Err(format!(
            "cluster {scope} has no leader to switch over from: use failover --candidate MEMBER"
        ));
    };
    if let Some(given) = leader.filter(|l| *l != current) {
        return Err(format!("{given} is not the leader of cluster {scope} (the leader is {current})"));
    }
    if let Some(candidate) = candidate {
        check_candidate(&scope, &members, &current, candidate)?;
    }
    let scheduled_at = scheduled.map(str::trim).filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("now"));
    Ok(Plan {
        scope,
        failover: false,
        leader: Some(current),
        candidate: candidate.map(str::to_owned),
        scheduled_at: scheduled_at.map(str::to_owned),
        allow_data_loss: false,
    })
}

/// Checks a failover: the candidate is a member and not the leader.
pub fn failover_plan(cluster: &Value, candidate: &str, allow_data_loss: bool) -> Result<Plan, String> {
    let scope = cluster["scope"].as_str().unwrap_or("").to_string();
    let (leader, members) = names(cluster);
    match &leader {
        Some(leader) => check_candidate(&scope, &members, leader, candidate)?,
        None if !members.iter().any(|m| m == candidate) => {
            return Err(format!("{candidate} is not a member of cluster {scope}"))
        }
        None => {}
    }
    let candidate = Some(candidate.to_owned());
    Ok(Plan { scope, failover: true, leader, candidate, scheduled_at: None, allow_data_loss })
}

fn check_candidate(scope: &str, members: &[String], leader: &str, candidate: &str) -> Result<(), String> {
    if !members.iter().any(|m| m == candidate) {
        return Err(format!("{candidate} is not a member of cluster {scope}"));
    }
    if candidate == leader {
        return Err(format!("{candidate} is already the leader of cluster {scope}"));
    }
    Ok(())
}

/// `vigil switchover`.
pub async fn run_switchover(args: SwitchoverArgs) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let cluster = client.cluster().await?;
    let plan = switchover_plan(
        &cluster,
        args.leader.as_deref(),
        args.candidate.as_deref(),
        args.scheduled.as_deref(),
    )?;
    execute(&mut client, &cluster, &plan, args.force).await
}

/// `vigil failover`.
pub async fn run_failover(args: FailoverArgs) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let cluster = client.cluster().await?;
    let plan = failover_plan(&cluster, &args.candidate, args.allow_data_loss)?;
    execute(&mut client, &cluster, &plan, args.force).await
}

/// Shows the plan and asks (unless `force`), sends it to the leader (then the candidate, then the
/// others), and prints the agent's answer and the new member list.
async fn execute(
    client: &mut client::Client,
    cluster: &Value,
    plan: &Plan,
    force: bool,
) -> Result<(), String> {
    let kind = if plan.failover { "failover" } else { "switchover" };
    if !force {
        emit(&list::render(cluster, Format::Pretty, false, false));
        emit(&format!("{}\n", plan.describe()));
        if !confirm(&plan.question())? {
            return Err(format!("aborted: no {kind} was requested"));
        }
    }
    let candidate_url = cluster["members"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"].as_str() == plan.candidate.as_deref()))
        .and_then(|m| m["api_url"].as_str())
        .map(client::base_url);
    let mut order = client::leader_first(cluster);
    if let Some(url) = candidate_url {
        let leader = order.first().cloned().filter(|_| plan.leader.is_some());
        order = client::ordered(leader.into_iter().chain([url]), &order);
    }
    let order = client::ordered(order, client.urls());
    let path = if plan.failover { "/failover" } else { "/switchover" };
    let (_, answer) = client.send(Method::POST, path, Some(&plan.body()), &order, SWITCHOVER_TIMEOUT).await?;
    emit(&format!("{}\n", answer.trim()));
    match client.cluster().await {
        Ok(after) => {
            emit(&list::render(&after, Format::Pretty, false, false));
        }
        Err(e) => eprintln!("vigil: the {kind} was done, but the new member list could not be read: {e}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(leader: Option<&str>) -> Value {
        let member = |name: &str| {
            let role = if Some(name) == leader { "leader" } else { "replica" };
            json!({"name": name, "role": role})
        };
        json!({"scope": "main", "members": [member("n1"), member("n2"), member("n3")]})
    }

    #[test]
    fn a_switchover_defaults_to_the_current_leader() {
        let plan = switchover_plan(&cluster(Some("n1")), None, Some("n2"), None).expect("plan");
        assert_eq!(plan.body(), json!({"leader": "n1", "candidate": "n2"}));
        assert_eq!(plan.describe(), "Switchover of cluster main: demote n1, promote n2, now.");
        assert_eq!(
            plan.question(),
            "Are you sure you want to switchover cluster main, demoting current leader n1?"
        );
        let any = switchover_plan(&cluster(Some("n1")), Some("n1"), None, Some("now")).expect("plan");
        assert_eq!(any.body(), json!({"leader": "n1"}));
        assert_eq!(
            any.describe(),
            "Switchover of cluster main: demote n1, promote the replica the agents find best, now."
        );
    }

    #[test]
    fn a_scheduled_switchover_is_passed_through() {
        let plan =
            switchover_plan(&cluster(Some("n1")), None, None, Some("2030-01-01T10:00+00:00")).expect("plan");
        assert_eq!(plan.body(), json!({"leader": "n1", "scheduled_at": "2030-01-01T10:00+00:00"}));
        assert!(plan.describe().ends_with("at 2030-01-01T10:00+00:00."));
    }

    #[test]
    fn switchovers_that_cannot_work_are_refused_before_asking() {
        let err = |r: Result<Plan, String>| r.expect_err("refused");
        assert_eq!(
            err(switchover_plan(&cluster(Some("n1")), Some("n2"), None, None)),
            "n2 is not the leader of cluster main (the leader is n1)"
        );
        assert_eq!(
            err(switchover_plan(&cluster(Some("n1")), None, Some("n9"), None)),
            "n9 is not a member of cluster main"
        );
        assert_eq!(
            err(switchover_plan(&cluster(Some("n1")), None, Some("n1"), None)),
            "n1 is already the leader of cluster main"
        );
        assert!(err(switchover_plan(&cluster(None), None, Some("n2"), None)).contains("has no leader"));
    }

    #[test]
    fn a_failover_names_its_candidate_and_works_without_a_leader() {
        let plan = failover_plan(&cluster(None), "n2", false).expect("plan");
        assert_eq!(plan.body(), json!({"candidate": "n2"}));
        assert_eq!(plan.question(), "Are you sure you want to failover cluster main?");
        assert_eq!(plan.describe(), "Failover of cluster main (it has no leader): promote n2, now.");
        let plan = failover_plan(&cluster(Some("n1")), "n3", false).expect("plan");
        assert_eq!(plan.body(), json!({"candidate": "n3"}));
        assert!(failover_plan(&cluster(Some("n1")), "n1", false).is_err());
        assert!(failover_plan(&cluster(None), "n7", false).is_err());
        let plan = failover_plan(&cluster(None), "n2", true).expect("plan");
        assert_eq!(plan.body(), json!({"candidate": "n2", "allow_data_loss": true}));
        assert!(
            plan.describe().ends_with("now, even if acknowledged commits are lost."),
            "{}",
            plan.describe()
        );
    }
}
