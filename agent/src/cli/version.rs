//! `vigil version [CLUSTER [MEMBER...]]`: this program's version and, given the cluster's name, each
//! member's agent and database versions from its `GET /patroni` (as patronictl).

use super::args::{MemberRole, VersionArgs};
use super::{connect, emit, targets};
use serde_json::Value;

/// `vigil version`.
pub async fn run(args: VersionArgs) -> Result<(), String> {
    emit(&format!("vigil version {}\n", env!("CARGO_PKG_VERSION")));
    let Some((cluster_name, names)) = args.names.split_first() else { return Ok(()) };
    let mut client = connect(&args.connect, Some(cluster_name)).await?;
    let cluster = client.cluster().await?;
    let members = targets::select(&cluster, names, MemberRole::Any)?;
    emit("\n");
    for member in members {
        let line = match client.get_from(&member.url, "/patroni").await {
            Ok(status) => versions(&status),
            Err(why) => format!("failed to get version: {why}"),
        };
        emit(&format!("{}: {line}\n", member.name));
    }
    Ok(())
}

/// `Vigil 0.1.0 PostgreSQL 15.8` from a `GET /patroni` body (the database's part only while it runs).
fn versions(status: &Value) -> String {
    let agent = format!("Vigil {}", status["patroni"]["version"].as_str().unwrap_or("unknown"));
    match status["server_version"].as_u64() {
        Some(number) => format!("{agent} PostgreSQL {}", server_version(number)),
        None => agent,
    }
}

/// PostgreSQL's `server_version_num` as its version: 150008 → `15.8`, 90624 → `9.6.24`.
fn server_version(number: u64) -> String {
    match number {
        100_000.. => format!("{}.{}", number / 10_000, number % 10_000),
        _ => format!("{}.{}.{}", number / 10_000, number / 100 % 100, number % 100),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_read_as_patronictl_prints_them() {
        assert_eq!(server_version(150008), "15.8");
        assert_eq!(server_version(90624), "9.6.24");
        let status = json!({"server_version": 170002, "patroni": {"version": "0.1.0", "scope": "s"}});
        assert_eq!(versions(&status), "Vigil 0.1.0 PostgreSQL 17.2");
        assert_eq!(versions(&json!({"patroni": {"version": "0.1.0"}})), "Vigil 0.1.0");
    }
}
