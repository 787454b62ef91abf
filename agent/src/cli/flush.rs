//! `vigil flush`: cancel members' scheduled restarts (`DELETE /restart` on each) or the cluster's
//! scheduled switchover (`DELETE /switchover`, the leader asked first).

use super::args::{FlushArgs, FlushTarget};
use super::client::{self, CHANGE_TIMEOUT};
use super::member_ops::{self, MemberOp};
use super::{confirm, connect, emit, targets};
use reqwest::Method;

/// `vigil flush`.
pub async fn run(args: FlushArgs) -> Result<(), String> {
    let role = args.role;
    let (target, members) = args.split()?;
    match target {
        FlushTarget::Restart => member_ops::run(MemberOp::FlushRestart, &members, role).await,
        FlushTarget::Switchover => {
            let mut client = connect(&members.connect, None).await?;
            let cluster = client.cluster().await?;
            if !targets::member_names(&members.names, &cluster)?.is_empty() {
                return Err("flush switchover takes the cluster's name only, no member".into());
            }
            if cluster["scheduled_switchover"].is_null() {
                emit("No pending scheduled switchover\n");
                return Ok(());
            }
            if !members.force && !confirm("Are you sure you want to cancel the scheduled switchover?")? {
                return Err("aborted: the scheduled switchover stays".into());
            }
            let order = client::ordered(client::leader_first(&cluster), client.urls());
            let (_, answer) =
                client.send(Method::DELETE, "/switchover", None, &order, CHANGE_TIMEOUT).await?;
            emit(&format!("Success: {}\n", answer.trim()));
            Ok(())
        }
    }
}
