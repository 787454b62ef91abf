//! `vigil demote-cluster` and `vigil promote-cluster` (Patroni 4.1's names): make this cluster a standby
//! cluster replicating from another cluster's primary, or a cluster of its own again, through
//! `PATCH /config` `{"standby_cluster": …}` (to the leader first).

use super::args::{DemoteClusterArgs, PromoteClusterArgs};
use super::client::{self, CHANGE_TIMEOUT};
use super::{connect, emit};
use reqwest::Method;
use serde_json::{json, Value};

/// `vigil demote-cluster`: the leader becomes a standby leader replicating from `--host`.
pub async fn demote(args: DemoteClusterArgs) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let config = client.get("/config").await?;
    if let Some(current) = config.get("standby_cluster").filter(|s| !s.is_null()) {
        return Err(format!("the cluster is a standby cluster already, of {}", describe(current)));
    }
    let mut standby = json!({ "host": args.host, "port": args.port });
    if let Some(slot) = &args.primary_slot_name {
        standby["primary_slot_name"] = json!(slot);
    }
    patch(&mut client, json!({ "standby_cluster": standby })).await?;
    emit(&format!(
        "Success: the cluster is a standby cluster of {}:{}: its leader stops taking writes and replicates from there\n",
        args.host, args.port
    ));
    Ok(())
}

/// `vigil promote-cluster`: the standby leader is promoted, and the cluster takes writes.
pub async fn promote(args: PromoteClusterArgs) -> Result<(), String> {
    let mut client = connect(&args.connect, args.cluster.as_deref()).await?;
    let config = client.get("/config").await?;
    if config.get("standby_cluster").is_none_or(Value::is_null) {
        return Err("the cluster is not a standby cluster: nothing to promote".to_owned());
    }
    patch(&mut client, json!({ "standby_cluster": null })).await?;
    emit("Success: the standby cluster is promoted: its leader becomes the primary\n");
    Ok(())
}

async fn patch(client: &mut client::Client, body: Value) -> Result<(), String> {
    let cluster = client.cluster().await?;
    let order = client::ordered(client::leader_first(&cluster), client.urls());
    client.send(Method::PATCH, "/config", Some(&body), &order, CHANGE_TIMEOUT).await.map(|_| ())
}

fn describe(standby: &Value) -> String {
    format!("{}:{}", standby["host"].as_str().unwrap_or("?"), standby["port"])
}
