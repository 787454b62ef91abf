//! `vigil restart`, `vigil reload`, `vigil reinit`: one member's REST API, after a confirmation.

use super::args::MemberOpArgs;
use super::{confirm, connect, emit};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Which operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberOp {
    /// `POST /restart`.
    Restart,
    /// `POST /reload`.
    Reload,
    /// `POST /reinitialize`.
    Reinit,
}

impl MemberOp {
    fn path(self) -> &'static str {
        match self {
            MemberOp::Restart => "/restart",
            MemberOp::Reload => "/reload",
            MemberOp::Reinit => "/reinitialize",
        }
    }

    fn body(self, args: &MemberOpArgs) -> Value {
        match self {
            MemberOp::Restart => {
                let mut body = json!({});
                if let Some(role) = &args.role {
                    body["role"] = json!(role);
                }
                if args.pending {
                    body["restart_pending"] = json!(true);
                }
                body
            }
            MemberOp::Reload => json!({}),
            MemberOp::Reinit => json!({ "force": args.force }),
        }
    }
}

/// The `api_url` base of member `name` in a `GET /cluster` answer.
pub fn member_url(cluster: &Value, name: &str) -> Result<String, String> {
    let members = cluster["members"].as_array().map(Vec::as_slice).unwrap_or_default();
    let member =
        members.iter().find(|m| m["name"] == name).ok_or_else(|| format!("{name} is not a member"))?;
    let url = member["api_url"].as_str().ok_or_else(|| format!("{name} has published no REST address"))?;
    Ok(super::client::base_url(url))
}

/// Runs `op` on the member the arguments name.
pub async fn run(op: MemberOp, args: MemberOpArgs) -> Result<(), String> {
    let mut client = connect(&args.connect)?;
    let cluster = client.cluster().await?;
    let url = member_url(&cluster, &args.member)?;
    let what = format!("{} {}", op.path().trim_start_matches('/'), args.member);
    if op != MemberOp::Reload && !args.force && !confirm(&format!("Are you sure you want to {what}?"))? {
        return Err(format!("aborted: no {what}"));
    }
    let body = op.body(&args);
    let (_, answer) =
        client.send(Method::POST, op.path(), Some(&body), &[url], Duration::from_secs(120)).await?;
    emit(&format!("{}: {}\n", args.member, answer.trim()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_members_rest_base() {
        let cluster = json!({"members": [{"name": "n1", "api_url": "http://10.0.0.1:8008/patroni"}]});
        assert_eq!(member_url(&cluster, "n1"), Ok("http://10.0.0.1:8008".to_string()));
        assert_eq!(member_url(&cluster, "n9"), Err("n9 is not a member".to_string()));
    }
}
