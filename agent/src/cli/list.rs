//! `vigil list` and `vigil topology`: the members table of `GET /cluster`, as `patronictl list` prints it.
//! Pure functions from the JSON to the text.

use super::args::Format;
use super::table::Table;
use serde_json::{json, Value};
use vigil_policy::{Position, Unit};

/// The columns of the member list (the boxed table drops `Cluster` and calls both lag columns `Lag`).
const COLUMNS: [&str; 10] = [
    "Cluster",
    "Member",
    "Host",
    "Role",
    "State",
    "TL",
    "Receive LSN",
    "Receive Lag",
    "Replay LSN",
    "Replay Lag",
];
/// The column saying why a member does not take over (`why` in `GET /cluster`).
const WHY: &str = "Why";
const RIGHT: [&str; 6] = ["TL", "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag", "Lag"];

/// The printed member list of `cluster` (the body of `GET /cluster`) in `format`; `topology` indents
/// replicas under the member they stream from; `extended` shows the Tags column even when empty. Why a
/// member does not take over (while there is no primary) is a `Why` column, or in the boxed table a line
/// under it.
pub fn render(cluster: &Value, format: Format, topology: bool, extended: bool) -> String {
    let table = members_table(cluster, topology, extended);
    match format {
        Format::Pretty => {
            let mut pretty = table.without_first_column().without(WHY);
            for column in &mut pretty.columns {
                if column == "Receive Lag" || column == "Replay Lag" {
                    *column = "Lag".to_string();
                }
            }
            let mut out = pretty.pretty(Some(&title(cluster)));
            let info = service_info(cluster);
            if !info.is_empty() {
                out += &format!(" {}\n", info.join("\n "));
            }
            out
        }
        Format::Tsv => table.tsv(),
        Format::Json => table.json(true),
        Format::Yaml => table.yaml(true),
    }
}

/// ` Cluster: <scope> (token <fencing token>) `, written into the table's top rule.
pub fn title(cluster: &Value) -> String {
    let scope = cluster["scope"].as_str().unwrap_or("");
    match cluster.get("fencing_token").filter(|t| !t.is_null()) {
        Some(token) => format!(" Cluster: {scope} (token {}) ", super::table::text(token, true)),
        None => format!(" Cluster: {scope} "),
    }
}

/// The lines under the boxed table: maintenance mode, synchronous replication trouble, why no member
/// takes over when there is no primary, what a diverged member has that its upstream lacks, where a member set its diverged data
/// aside, and a pending switchover.
pub fn service_info(cluster: &Value) -> Vec<String> {
    let mut info = Vec::new();
    if cluster["pause"].as_bool() == Some(true) {
        info.push("Maintenance mode: on".to_string());
    }
    let members = cluster["members"].as_array().map(Vec::as_slice).unwrap_or_default();
    match members.iter().find(|m| is_leader(m)) {
        Some(leader) => match leader["sync_state"].as_str() {
            Some("blocked") => info.push(
                "Writes are BLOCKED: synchronous_mode_strict, and no synchronous standby confirms commits"
                    .to_string(),
            ),
            Some("relaxed") => info.push(
                "Replication is asynchronous: synchronous_mode is on, but no standby qualifies".to_string(),
            ),
            _ => {}
        },
        None => {
            // Why each member does not take over; from agents that do not say (Patroni), their last
            // decision. Not both: the record of a primary just killed still shows its last decision.
            let field = if members.iter().any(|m| m["why"].is_string()) { "why" } else { "reason" };
            let why = |m: &Value| Some(format!("{}: {}", name(m), m[field].as_str()?));
            info.push("No primary. Why no failover:".to_string());
            info.extend(members.iter().filter_map(why));
        }
    }
    for member in members {
        let diverged = &member["diverged"];
        if let (Some(extra), Some(upstream)) = (diverged["extra"].as_str(), diverged["upstream"].as_str()) {
            info.push(format!(
                "Diverged: {} has {extra} that {upstream} lacks (lost when cloned again)",
                name(member)
            ));
        }
        if let Some(path) = member["data_set_aside"].as_str() {
            info.push(format!("Data set aside: {} kept its diverged data in {path}", name(member)));
        }
    }
    if let Some(switchover) = cluster.get("scheduled_switchover").filter(|s| s.is_object()) {
        let mut line = match switchover["at"].as_str() {
            Some(at) => format!("Switchover scheduled at: {at}"),
            None => "Switchover requested".to_string(),
        };
        for name in ["from", "to"] {
            if let Some(member) = switchover[name].as_str() {
                line += &format!("\n{name:>24}: {member}");
            }
        }
        info.push(line);
    }
    info
}

/// The member list as a table (with the `Cluster` column), sorted by name or, with `topology`, as a tree.
pub fn members_table(cluster: &Value, topology: bool, extended: bool) -> Table {
    let scope = cluster["scope"].as_str().unwrap_or("");
    let mut members: Vec<&Value> =
        cluster["members"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    members.sort_by(|a, b| name(a).cmp(name(b)));
    let leader_lsn = members.iter().find(|m| is_leader(m)).and_then(|m| parse_position(&m["lsn"]));
    let order: Vec<(usize, usize)> =
        if topology { topology_order(&members) } else { (0..members.len()).map(|i| (i, 0)).collect() };
    let hosts: std::collections::BTreeSet<&str> = members.iter().filter_map(|m| m["host"].as_str()).collect();
    let append_port =
        members.iter().any(|m| m["port"].as_u64().is_some_and(|p| p != 5432)) || hosts.len() < members.len();
    let with_tags = extended || members.iter().any(|m| m["tags"].as_object().is_some_and(|t| !t.is_empty()));

    let with_pending = members.iter().any(|m| m["pending_restart"] == true);
    let with_why = members.iter().any(|m| m["why"].is_string());
    let mut columns: Vec<&str> = COLUMNS.to_vec();
    if with_pending {
        columns.push("Pending restart");
    }
    if with_tags {
        columns.push("Tags");
    }
    if with_why {
        columns.push(WHY);
    }
    let mut table = Table::new(&columns, &RIGHT);
    for (i, level) in order {
        let m = members[i];
        let mut row = vec![
            json!(scope),
            json!(indent(name(m), level)),
            json!(host(m, append_port)),
            json!(role_title(m["role"].as_str().unwrap_or(""))),
            json!(m["state"].as_str().unwrap_or("")),
            m.get("timeline").filter(|t| !t.is_null()).cloned().unwrap_or(json!("")),
        ];
        row.extend(positions(m, leader_lsn));
        if with_pending {
            row.push(json!(if m["pending_restart"] == true { "*" } else { "" }));
        }
        if with_tags {
            row.push(m.get("tags").filter(|t| t.is_object()).cloned().unwrap_or(json!("")));
        }
        if with_why {
            row.push(m.get("why").filter(|w| w.is_string()).cloned().unwrap_or(json!("")));
        }
        table.rows.push(row);
    }
    table
}

/// Receive LSN, Receive Lag, Replay LSN, Replay Lag of a replica (lag in MB, or in transactions for an
/// engine that counts them); empty for the leader.
fn positions(member: &Value, leader_lsn: Option<Position>) -> [Value; 4] {
    if is_leader(member) {
        return [json!(""), json!(""), json!(""), json!("")];
    }
    let mut receive = parse_position(&member["receive_lsn"]);
    let mut replay = parse_position(&member["replay_lsn"]);
    let lag = member["lag"].as_u64();
    let (mut receive_lag, mut replay_lag) = (member["receive_lag"].as_u64(), member["replay_lag"].as_u64());
    if receive.is_none() && replay.is_none() {
        // Only one position reported (Patroni's older shape): it goes where the state says.
        if member["state"] == "streaming" {
            (receive, receive_lag) = (parse_position(&member["lsn"]), lag);
        } else {
            (replay, replay_lag) = (parse_position(&member["lsn"]), lag);
        }
    }
    let behind =
        |mine: Option<Position>| leader_lsn.zip(mine).and_then(|(leader, mine)| mine.lag_behind(leader));
    let receive_lag = receive_lag.or(behind(receive)).or(receive.and(lag));
    let replay_lag = replay_lag.or(behind(replay));
    let cell = |position: Option<Position>, lag: Option<u64>| match position {
        Some(p) => (json!(p.to_string()), lag.map_or(json!(""), |lag| json!(lag_cell(p.unit, lag)))),
        None => (json!(""), json!("")),
    };
    let (receive_lsn, receive_lag) = cell(receive, receive_lag);
    let (replay_lsn, replay_lag) = cell(replay, replay_lag);
    [receive_lsn, receive_lag, replay_lsn, replay_lag]
}

/// The members' order and depth in the replication tree: the leader first, then replicas under the
/// member they replicate from (their published `upstream`, when that is another replica), else under the
/// leader; siblings by name. Members left over (a cycle) come last, at depth 0.
pub fn topology_order(members: &[&Value]) -> Vec<(usize, usize)> {
    let leader = members.iter().position(|m| is_leader(m));
    let parent = |i: usize| -> Option<usize> {
        if Some(i) == leader {
            return None;
        }
        let upstream = members[i]["upstream"].as_str();
        let upstream = upstream
            .and_then(|u| members.iter().position(|m| name(m) == u && !is_leader(m)).filter(|&p| p != i));
        upstream.or(leader)
    };
    let mut order = Vec::new();
    let mut seen = vec![false; members.len()];
    fn visit(
        i: usize,
        level: usize,
        parent: &dyn Fn(usize) -> Option<usize>,
        n: usize,
        seen: &mut Vec<bool>,
        order: &mut Vec<(usize, usize)>,
    ) {
        if seen[i] {
            return;
        }
        seen[i] = true;
        order.push((i, level));
        for child in (0..n).filter(|&c| c != i && parent(c) == Some(i)) {
            visit(child, level + 1, parent, n, seen, order);
        }
    }
    let roots: Vec<usize> = (0..members.len()).filter(|&i| parent(i).is_none()).collect();
    for root in roots {
        visit(root, 0, &parent, members.len(), &mut seen, &mut order);
    }
    for i in 0..members.len() {
        visit(i, 0, &parent, members.len(), &mut seen, &mut order);
    }
    order
}

/// A member's name at `level` in the tree: `+ name` under the leader, two more spaces per level.
fn indent(name: &str, level: usize) -> String {
    match level {
        0 => name.to_string(),
        _ => format!("{}+ {name}", "  ".repeat(level - 1)),
    }
}

fn name(member: &Value) -> &str {
    member["name"].as_str().unwrap_or("")
}

/// The line `list -t` prints before the table: the local time to the second, as patronictl
/// (`2026-12-07 05:34:31`).
pub fn timestamp_line<Tz: chrono::TimeZone>(now: chrono::DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    now.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Whether the member holds the leader role (`leader`, or `standby_leader`).
pub fn is_leader(member: &Value) -> bool {
    member["role"].as_str().is_some_and(|r| r.ends_with("leader"))
}

/// `host`, or `host:port` when some member is not on 5432 or two share a host (as patronictl shows it).
fn host(member: &Value, append_port: bool) -> String {
    let host = member["host"].as_str().unwrap_or("");
    match member["port"].as_u64() {
        Some(port) if append_port && !host.is_empty() => format!("{host}:{port}"),
        _ => host.to_string(),
    }
}

/// `sync_standby` → `Sync Standby` (Python's `str.replace('_', ' ').title()`).
pub fn role_title(role: &str) -> String {
    role.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or(String::new(), |first| {
                first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A position from JSON: a byte count or PostgreSQL's `X/X` (WAL bytes), or `#N` (transactions); `None`
/// for `unknown` or null.
pub fn parse_position(value: &Value) -> Option<Position> {
    if let Some(n) = value.as_u64() {
        return Some(Position::wal(n));
    }
    let text = value.as_str()?;
    if let Some(seq) = text.strip_prefix('#') {
        return seq.parse().ok().map(|n| Position::new(Unit::Transactions, n));
    }
    let (high, low) = text.split_once('/')?;
    let high = u32::from_str_radix(high, 16).ok()?;
    let low = u32::from_str_radix(low, 16).ok()?;
    Some(Position::wal((u64::from(high) << 32) | u64::from(low)))
}

/// A lag as the table shows it: bytes in whole MB, transactions as they are.
fn lag_cell(unit: Unit, lag: u64) -> u64 {
    match unit {
        Unit::WalBytes => lag_in_mb(lag),
        Unit::Transactions => lag,
    }
}

/// Bytes to whole MB, rounded half to even (Python's `round(lag / 1024 / 1024)`, as patronictl).
pub fn lag_in_mb(bytes: u64) -> u64 {
    (bytes as f64 / 1024.0 / 1024.0).round_ties_even() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timestamp_line_is_patronictls() {
        use chrono::TimeZone;
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 5, 4, 3).single().expect("time");
        assert_eq!(timestamp_line(at), "2026-12-07 05:04:03");
    }

    fn cluster() -> Value {
        json!({
            "scope": "main",
            "fencing_token": 7,
            "members": [
                {"name": "node2", "role": "replica", "state": "streaming", "api_url": "http://127.0.0.1:8009/patroni",
                 "host": "127.0.0.1", "port": 5433, "timeline": 2, "lsn": "0/3000000", "lag": 0,
                 "receive_lsn": "0/3000000", "replay_lsn": "0/2F00000", "tags": {}},
                {"name": "node1", "role": "leader", "state": "running", "api_url": "http://127.0.0.1:8008/patroni",
                 "host": "127.0.0.1", "port": 5432, "timeline": 2, "lsn": "0/3000000", "lag": 0,
                 "receive_lsn": null, "replay_lsn": null, "tags": {}},
                {"name": "node3", "role": "replica", "state": "stopped", "api_url": "http://127.0.0.1:8010/patroni",
                 "host": "127.0.0.1", "port": 5434, "timeline": null, "lsn": null, "lag": "unknown",
                 "receive_lsn": null, "replay_lsn": null, "tags": {}}
            ]
        })
    }

    #[test]
    fn the_pretty_list_is_patronictls_table() {
        let expected = "\
+ Cluster: main (token 7) +---------+-----------+----+-------------+-----+------------+-----+
| Member | Host           | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+
| node1  | 127.0.0.1:5432 | Leader  | running   |  2 |             |     |            |     |
| node2  | 127.0.0.1:5433 | Replica | streaming |  2 |   0/3000000 |   0 |  0/2F00000 |   1 |
| node3  | 127.0.0.1:5434 | Replica | stopped   |    |             |     |            |     |
+--------+----------------+---------+-----------+----+-------------+-----+------------+-----+
";
        assert_eq!(render(&cluster(), Format::Pretty, false, false), expected);
    }

    #[test]
    fn pause_and_a_pending_switchover_are_shown_under_the_table() {
        let mut c = cluster();
        c["pause"] = json!(true);
        c["scheduled_switchover"] = json!({"from": "node1", "to": "node2"});
        let out = render(&c, Format::Pretty, false, false);
        assert!(
            out.ends_with(
                "-----+\n Maintenance mode: on\n Switchover requested\n                    from: node1\n                      to: node2\n"
            ),
            "{out}"
        );
        assert!(!render(&c, Format::Json, false, false).contains("Maintenance"));
    }

    #[test]
    fn blocked_or_relaxed_synchronous_replication_and_a_missing_primary_are_said_under_the_table() {
        let mut c = cluster();
        let leader = c["members"].as_array_mut().unwrap().iter_mut().find(|m| is_leader(m)).unwrap();
        leader["sync_state"] = json!("blocked");
        assert_eq!(
            service_info(&c)[0],
            "Writes are BLOCKED: synchronous_mode_strict, and no synchronous standby confirms commits"
        );
        c["members"].as_array_mut().unwrap().iter_mut().find(|m| is_leader(m)).unwrap()["sync_state"] =
            json!("relaxed");
        assert!(service_info(&c)[0].starts_with("Replication is asynchronous"));
        let c = json!({"scope": "main", "members": [
            {"name": "node2", "role": "replica", "reason": "not taking over: not a synchronous standby"}]});
        assert_eq!(
            service_info(&c),
            ["No primary. Why no failover:", "node2: not taking over: not a synchronous standby"]
        );
    }

    #[test]
    fn without_a_primary_each_member_says_why_it_does_not_take_over() {
        let c = json!({"scope": "main", "members": [
            {"name": "node1", "role": "replica", "state": "running", "reason": "primary: lease renewed"},
            {"name": "node2", "role": "replica", "state": "running", "reason": "not taking over: nofailover tag",
             "why": "nofailover tag"},
            {"name": "node3", "role": "replica", "state": "running",
             "why": "lagging by 38 MB (maximum_lag_on_failover 1 MB)"}]});
        let out = render(&c, Format::Pretty, false, false);
        let lines = " No primary. Why no failover:\n node2: nofailover tag\n node3: lagging by 38 MB (maximum_lag_on_failover 1 MB)\n";
        assert!(out.ends_with(lines), "{out}");
        assert!(!out.contains("| Why"), "the boxed table says it under the table: {out}");
        let json: Value = serde_json::from_str(&render(&c, Format::Json, false, false)).expect("json");
        assert_eq!(json[1]["Why"], "nofailover tag");
        assert_eq!(json[2]["Why"], "lagging by 38 MB (maximum_lag_on_failover 1 MB)");
        assert!(!render(&cluster(), Format::Tsv, false, false).contains("Why"), "only when some member says");
    }

    #[test]
    fn what_a_diverged_member_has_that_its_upstream_lacks_is_said_under_the_table() {
        let mut c = cluster();
        c["members"][2]["diverged"] =
            json!({"upstream": "node1", "extra": "0-7-21..0-7-23 (3 transactions)"});
        let out = render(&c, Format::Pretty, false, false);
        assert!(
            out.ends_with(
                "-----+\n Diverged: node3 has 0-7-21..0-7-23 (3 transactions) that node1 lacks (lost when cloned again)\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn where_a_member_set_its_diverged_data_aside_is_said_under_the_table() {
        let mut c = cluster();
        c["members"][2]["data_set_aside"] = json!("/var/lib/pg/data.diverged-20261207T054040Z");
        let out = render(&c, Format::Pretty, false, false);
        let line =
            " Data set aside: node3 kept its diverged data in /var/lib/pg/data.diverged-20261207T054040Z\n";
        assert!(out.ends_with(line), "{out}");
    }

    #[test]
    fn json_tsv_and_yaml_use_the_full_column_names_and_skip_empty_cells() {
        let json: Value =
            serde_json::from_str(&render(&cluster(), Format::Json, false, false)).expect("json");
        assert_eq!(
            json[1],
            json!({"Cluster": "main", "Member": "node2", "Host": "127.0.0.1:5433", "Role": "Replica",
                   "State": "streaming", "TL": 2, "Receive LSN": "0/3000000", "Receive Lag": 0,
                   "Replay LSN": "0/2F00000", "Replay Lag": 1})
        );
        assert_eq!(
            json[0],
            json!({"Cluster": "main", "Member": "node1", "Host": "127.0.0.1:5432",
                                   "Role": "Leader", "State": "running", "TL": 2})
        );
        let tsv = render(&cluster(), Format::Tsv, false, false);
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(
            lines[0],
            "Cluster\tMember\tHost\tRole\tState\tTL\tReceive LSN\tReceive Lag\tReplay LSN\tReplay Lag"
        );
        assert_eq!(
            lines[2],
            "main\tnode2\t127.0.0.1:5433\tReplica\tstreaming\t2\t0/3000000\t0\t0/2F00000\t1"
        );
        let yaml: Value =
            serde_norway::from_str(&render(&cluster(), Format::Yaml, false, false)).expect("yaml");
        assert_eq!(yaml, json);
    }

    #[test]
    fn the_port_is_shown_only_when_needed() {
        let c = json!({"scope": "s", "members": [
            {"name": "a", "role": "leader", "state": "running", "host": "10.0.0.1", "port": 5432},
            {"name": "b", "role": "replica", "state": "streaming", "host": "10.0.0.2", "port": 5432}]});
        let table = members_table(&c, false, false);
        assert_eq!(table.rows[0][2], json!("10.0.0.1"));
        assert_eq!(table.rows[1][2], json!("10.0.0.2"));
    }

    #[test]
    fn tags_get_a_column_when_any_member_has_some() {
        let mut c = cluster();
        c["members"][2]["tags"] = json!({"nofailover": true});
        let out = render(&c, Format::Pretty, false, false);
        assert!(out.contains("| Tags             |"), "{out}");
        assert!(out.contains("| nofailover: true |"), "{out}");
        assert!(render(&c, Format::Tsv, false, false).contains("\t{nofailover: true}\n"));
        assert!(render(&cluster(), Format::Pretty, false, true).contains("| Tags |"));
    }

    #[test]
    fn a_pending_restart_gets_a_column_with_a_star() {
        assert!(!render(&cluster(), Format::Pretty, false, false).contains("Pending restart"));
        let mut c = cluster();
        c["members"][0]["pending_restart"] = json!(true); // node2, listed second
        let table = members_table(&c, false, false);
        let column = table.columns.iter().position(|c| c == "Pending restart").expect("the column");
        let marks: Vec<&Value> = table.rows.iter().map(|r| &r[column]).collect();
        assert_eq!(marks, [&json!(""), &json!("*"), &json!("")]);
    }

    #[test]
    fn topology_indents_replicas_under_their_upstream() {
        let mut c = cluster();
        c["members"][2]["upstream"] = json!("node2");
        c["members"][2]["tags"] = json!({"replicatefrom": "node1"});
        let out = render(&c, Format::Pretty, true, false);
        let names: Vec<&str> =
            out.lines().skip(3).take(3).map(|l| l.split('|').nth(1).unwrap_or("")).collect();
        assert_eq!(names, [" node1     ", " + node2   ", "   + node3 "], "{out}");
    }

    #[test]
    fn topology_survives_cycles_and_a_missing_leader() {
        let c = json!({"scope": "s", "members": [
            {"name": "a", "role": "replica", "upstream": "b"},
            {"name": "b", "role": "replica", "upstream": "a"},
            {"name": "c", "role": "replica"}]});
        let members: Vec<&Value> = c["members"].as_array().expect("members").iter().collect();
        let order = topology_order(&members);
        let mut visited: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
        visited.sort();
        assert_eq!(visited, [0, 1, 2]);
    }

    #[test]
    fn lsns_roles_and_lag() {
        assert_eq!(parse_position(&json!("16/B374D848")), Some(Position::wal(0x16_B374_D848)));
        assert_eq!(parse_position(&json!(42)), Some(Position::wal(42)));
        assert_eq!(parse_position(&json!("#42")), Some(Position::new(Unit::Transactions, 42)));
        assert_eq!(parse_position(&json!("unknown")), None);
        assert_eq!(Position::wal(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!((lag_cell(Unit::WalBytes, 2_097_152), lag_cell(Unit::Transactions, 7)), (2, 7));
        assert_eq!(role_title("sync_standby"), "Sync Standby");
        assert_eq!(role_title("leader"), "Leader");
        assert_eq!(lag_in_mb(0), 0);
        assert_eq!(lag_in_mb(524_288), 0); // 0.5 rounds to even
        assert_eq!(lag_in_mb(1_572_864), 2); // 1.5 rounds to even
        assert_eq!(lag_in_mb(2_097_152 + 600_000), 3);
    }

    #[test]
    fn a_single_reported_position_goes_where_the_state_says() {
        let c = json!({"scope": "s", "members": [
            {"name": "a", "role": "leader", "lsn": "0/5000000"},
            {"name": "b", "role": "replica", "state": "streaming", "lsn": "0/4F00000", "lag": 1048576},
            {"name": "c", "role": "replica", "state": "running", "lsn": "0/4000000", "lag": 16777216}]});
        let t = members_table(&c, false, false);
        assert_eq!(t.rows[1][6..], [json!("0/4F00000"), json!(1), json!(""), json!("")]);
        assert_eq!(t.rows[2][6..], [json!(""), json!(""), json!("0/4000000"), json!(16)]);
    }

    #[test]
    fn mariadb_positions_show_as_sequence_numbers_with_lag_in_transactions() {
        let c = json!({"scope": "s", "members": [
            {"name": "a", "role": "leader", "lsn": "#42"},
            {"name": "b", "role": "replica", "state": "streaming", "receive_lsn": "#40", "replay_lsn": "#39"}]});
        let t = members_table(&c, false, false);
        assert_eq!(t.rows[1][6..], [json!("#40"), json!(2), json!("#39"), json!(3)]);
    }
}
