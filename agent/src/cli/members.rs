//! `vigil members list | add | remove | promote`: the Raft group's membership (`GET`, `POST`, `DELETE
//! /members`, `POST /members/promote`), as etcd's `member` commands do for etcd.

use super::args::{Format, MemberChangeArgs, MembersAddArgs, MembersCommand, MembersListArgs};
use super::client::CHANGE_TIMEOUT;
use super::table::Table;
use super::{connect, emit};
use reqwest::Method;
use serde_json::{json, Value};

/// Runs one `vigil members` command.
pub async fn run(command: MembersCommand) -> Result<(), String> {
    match command {
        MembersCommand::List(args) => list(args).await,
        MembersCommand::Add(args) => add(args).await,
        MembersCommand::Remove(args) => change(Method::DELETE, "/members", args).await,
        MembersCommand::Promote(args) => change(Method::POST, "/members/promote", args).await,
    }
}

async fn list(args: MembersListArgs) -> Result<(), String> {
    let mut client = connect(&args.connect, None).await?;
    let members = client.get("/members").await?;
    emit(&render(&members, args.format));
    Ok(())
}

async fn add(args: MembersAddArgs) -> Result<(), String> {
    let client = connect(&args.connect, None).await?;
    let body = json!({ "raft_addr": args.raft_addr });
    let (_, answer) =
        client.send(Method::POST, "/members", Some(&body), client.urls(), CHANGE_TIMEOUT).await?;
    let added: Value = serde_json::from_str(&answer).map_err(|e| format!("unreadable answer: {e}"))?;
    emit(&format!(
        "Added node {} at {}: start its agent with raft.self_addr {} and raft.join naming a member; it joins \
         as a learner and becomes a voter once it has caught up\n",
        added["id"], args.raft_addr, args.raft_addr
    ));
    Ok(())
}

async fn change(method: Method, path: &str, args: MemberChangeArgs) -> Result<(), String> {
    let client = connect(&args.connect, None).await?;
    let body = json!({ "member": args.member, "force": args.force });
    let (_, answer) = client.send(method, path, Some(&body), client.urls(), CHANGE_TIMEOUT).await?;
    emit(&format!("{answer}\n"));
    Ok(())
}

/// The printed list (`members` is the body of `GET /members`).
pub fn render(members: &Value, format: Format) -> String {
    let table = members_table(members);
    match format {
        Format::Pretty => table.pretty(None),
        Format::Tsv => table.tsv(),
        Format::Json => table.json(false),
        Format::Yaml => table.yaml(false),
    }
}

/// The members as a table: Id | Name | Raft address | Role | Leader | Lag.
fn members_table(members: &Value) -> Table {
    let mut table = Table::new(&["Id", "Name", "Raft address", "Role", "Leader", "Lag"], &["Id", "Lag"]);
    for m in members.as_array().map_or(&[][..], Vec::as_slice) {
        let role = match (m["raft_role"].as_str().unwrap_or(""), m["witness"].as_bool() == Some(true)) {
            (role, true) => format!("{role}, witness"),
            (role, false) => role.to_owned(),
        };
        let leader = if m["raft_leader"].as_bool() == Some(true) { "*" } else { "" };
        let lag = m.get("lag").filter(|l| !l.is_null()).cloned().unwrap_or(json!(""));
        table.rows.push(vec![
            m["id"].clone(),
            m["name"].clone(),
            m["raft_addr"].clone(),
            json!(role),
            json!(leader),
            lag,
        ]);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_ids_roles_and_the_raft_leader() {
        let members = json!([
            {"id": 1, "name": "pg1", "raft_addr": "h1:5010", "raft_role": "voter", "witness": false, "raft_leader": true},
            {"id": 3, "name": "w", "raft_addr": "h3:5010", "raft_role": "voter", "witness": true, "raft_leader": false, "lag": 0},
            {"id": 4, "name": "", "raft_addr": "h4:5010", "raft_role": "learner", "witness": false, "raft_leader": false, "lag": 812}
        ]);
        let expected = "\
+----+------+--------------+----------------+--------+-----+
| Id | Name | Raft address | Role           | Leader | Lag |
+----+------+--------------+----------------+--------+-----+
|  1 | pg1  | h1:5010      | voter          | *      |     |
|  3 | w    | h3:5010      | voter, witness |        |   0 |
|  4 |      | h4:5010      | learner        |        | 812 |
+----+------+--------------+----------------+--------+-----+
";
        assert_eq!(render(&members, Format::Pretty), expected);
    }
}
