//! The agent's side of the management routes: it answers from, and writes to, the cluster store.
//!
//! A switchover is only a request written to the store (the `failover` key); the primary's HA loop
//! carries it out (stop with a shutdown checkpoint, release the lease) and the candidate's takes over.
//! The call waits until the lease has moved, or says why it could not. A scheduled switchover
//! (`scheduled_at`) is only written (202): the primary carries it out when its time comes, checking the
//! candidate then.

use crate::config::DynamicConfig;
use crate::ha::{
    cluster_view, member_records, within_maximum_lag, ClusterView, Commands, LocalCommand, Switchover,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use vigil_api::{
    merge_patch, schedule_for_request, AddMemberRequest, ApiError, BoxFuture, Cluster, DeathCertificate,
    Event, EventKind, HistoryEntry, Management, MemberRequest, RaftMemberInfo, ReinitializeRequest,
    RestartRequest, SwitchoverRequest,
};
use vigil_dcs::RaftMember;
use vigil_dcs::{ClusterState, Condition, DcsError, DcsNode, FencingToken, Key, MemberName};

mod answers;
mod members;
mod raft_members;

/// How long a switchover call waits for the lease to move.
const SWITCHOVER_WAIT: Duration = Duration::from_secs(30);

/// The management API of one agent.
pub struct AgentManagement {
    dcs: Arc<DcsNode>,
    scope: String,
    bootstrap_dcs: DynamicConfig,
    commands: Commands,
}

impl AgentManagement {
    /// Management over the store node `dcs`; `bootstrap_dcs` stands in while the store has no config;
    /// local operations go to the HA loop through `commands`.
    pub fn new(dcs: Arc<DcsNode>, scope: String, bootstrap_dcs: DynamicConfig, commands: Commands) -> Self {
        AgentManagement { dcs, scope, bootstrap_dcs, commands }
    }

    async fn read(&self) -> Result<Arc<ClusterState>, ApiError> {
        self.dcs.read().await.map_err(store_error)
    }

    async fn cluster_answer(&self) -> Result<Cluster, ApiError> {
        let state = self.read().await?;
        let mut cluster = answers::cluster(
            &self.scope,
            &cluster_view(&state),
            &member_records(&state),
            &self.dynamic(&state),
        );
        cluster.members.extend(answers::witnesses(&self.dcs.raft_status()));
        Ok(cluster)
    }

    fn dynamic(&self, state: &ClusterState) -> DynamicConfig {
        crate::ha::dynamic_config(state).unwrap_or_else(|| self.bootstrap_dcs.clone())
    }

    async fn set_config_value(&self, body: Value, replace: bool) -> Result<Value, ApiError> {
        let state = self.read().await?;
        let current = state.keys.get(&Key::Config);
        let (parsed, config) =
            patched_config(current.map(|v| &v.value), &self.bootstrap_dcs, &body, replace)?;
        // New parameter values are checked by this member's database: one it rejects would stop every
        // member's next start.
        let stored = current.and_then(|v| serde_json::from_value::<DynamicConfig>(v.value.clone()).ok());
        let before = stored.map(|c| c.postgresql.parameters).unwrap_or_default();
        let changed = crate::config::changed_parameters(&parsed.postgresql.parameters, &before);
        if !changed.is_empty() {
            self.commands
                .call(LocalCommand::CheckParameters(changed))
                .await
                .map_err(|e| ApiError::new(e.status, format!("invalid configuration: {}", e.message)))?;
        }
        // Stored as the validated, normalized value: what every agent reads back.
        let normalized = serde_json::to_value(&parsed).unwrap_or(config);
        let condition = current.map_or(Condition::Absent, |v| Condition::Version(v.version));
        match self.dcs.put(&Key::Config, normalized.clone(), condition, None).await {
            Ok(version) => {
                tracing::info!(%version, replace, "dynamic configuration changed");
                Ok(normalized)
            }
            Err(DcsError::Conflict { .. }) => {
                Err(ApiError::new(409, "the configuration changed meanwhile: read it again and retry"))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn request_switchover(
        &self,
        request: SwitchoverRequest,
        failover: bool,
    ) -> Result<String, ApiError> {
        let state = self.read().await?;
        let view = cluster_view(&state);
        let dynamic = self.dynamic(&state);
        let scheduled_at = match request.scheduled_at.as_deref() {
            None => None,
            Some(_) if failover => {
                return Err(ApiError::new(
                    400,
                    "a failover cannot be scheduled: schedule a switchover instead",
                ))
            }
            Some(_) if dynamic.pause => {
                return Err(ApiError::new(400, "cannot schedule a switchover while the cluster is paused"))
            }
            Some(text) => Some(schedule_for_request(text, "switchover", SystemTime::now())?),
        };
        let mut plan = plan(&view, &request, failover, &dynamic, scheduled_at.is_none())?;
        plan.scheduled_at = scheduled_at;
        let value = serde_json::to_value(&plan).unwrap_or_default();
        match self.dcs.put(&Key::Failover, value, Condition::Absent, None).await {
            Ok(_) => {}
            Err(DcsError::Conflict { .. }) => {
                return Err(ApiError::new(409, "a switchover is already pending"))
            }
            Err(e) => return Err(store_error(e)),
        }
        let from = view.leader.as_ref().map(|(name, _)| name.clone());
        if let Some(at) = scheduled_at {
            tracing::info!(from = ?from, to = ?plan.candidate, %at, "switchover scheduled");
            let reason = format!("scheduled at {at}");
            self.record_switchover(EventKind::SwitchoverRequested, &request, failover, &reason).await;
            return Ok(format!("Switchover scheduled at {at}"));
        }
        let allow_data_loss = plan.allow_data_loss;
        tracing::info!(from = ?from, to = ?plan.candidate, failover, allow_data_loss, "switchover requested");
        self.record_switchover(EventKind::SwitchoverRequested, &request, failover, "requested").await;
        self.wait_for_new_leader(from, plan.candidate).await
    }

    /// Appends a switchover event of `kind` for `request` to the event log, for `reason`: named for the
    /// primary it asks to leave (the candidate for a failover without one).
    async fn record_switchover(
        &self,
        kind: EventKind,
        request: &SwitchoverRequest,
        failover: bool,
        reason: &str,
    ) {
        let what = if failover { "failover" } else { "switchover" };
        let member = request.leader.as_ref().or(request.candidate.as_ref()).cloned().unwrap_or_default();
        let event = Event::new(kind, member, SystemTime::now(), format!("{what} {reason}"));
        if let Err(e) = crate::ha::append_event(&self.dcs, &event.other(request.candidate.clone())).await {
            tracing::warn!(kind = kind.as_str(), error = %e, "switchover event not recorded");
        }
    }

    async fn wait_for_new_leader(
        &self,
        from: Option<MemberName>,
        to: Option<MemberName>,
    ) -> Result<String, ApiError> {
        let deadline = Instant::now() + SWITCHOVER_WAIT;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Ok(state) = self.dcs.read().await else { continue };
            if let Some(lease) = &state.leader {
                let moved =
                    Some(&lease.holder) != from.as_ref() && to.as_ref().is_none_or(|t| *t == lease.holder);
                if moved {
                    return Ok(format!(
                        "Successfully switched over to \"{}\" (token {})",
                        lease.holder, lease.token
                    ));
                }
            }
        }
        let _ = self.dcs.delete(&Key::Failover, Condition::Always).await;
        Err(ApiError::new(
            503,
            format!("the switchover did not complete within {SWITCHOVER_WAIT:?}; the request was withdrawn (see the agents' logs)"),
        ))
    }
}

/// What `PATCH /config` (`replace: false`, a merge patch over `current`, else over `bootstrap`) or
/// `PUT /config` (`replace: true`) makes of `body`: the validated configuration and the JSON it came
/// from, or a 400 naming what is wrong (an out-of-range ttl, say, or each parameter that runs commands or
/// loads code, which only a member's own file may set).
pub fn patched_config(
    current: Option<&Value>,
    bootstrap: &DynamicConfig,
    body: &Value,
    replace: bool,
) -> Result<(DynamicConfig, Value), ApiError> {
    let mut config = match (replace, current) {
        (false, Some(v)) => v.clone(),
        (false, None) => serde_json::to_value(bootstrap).unwrap_or_default(),
        (true, _) => Value::Object(Default::default()),
    };
    merge_patch(&mut config, &legacy_names_renamed(body));
    let invalid = |e: &dyn std::fmt::Display| ApiError::new(400, format!("invalid configuration: {e}"));
    let parsed: DynamicConfig = serde_json::from_value(config.clone()).map_err(|e| invalid(&e))?;
    parsed.validate().map_err(|e| invalid(&e))?;
    Ok((parsed, config))
}

/// `body` with Patroni's former key names under their current ones (`master_start_timeout`:
/// `primary_start_timeout`), so that a patch in the old name replaces the stored value instead of
/// standing beside it; a body giving both keeps the current name's value.
fn legacy_names_renamed(body: &Value) -> Value {
    const RENAMED: [(&str, &str); 1] = [("master_start_timeout", "primary_start_timeout")];
    let mut body = body.clone();
    if let Some(map) = body.as_object_mut() {
        for (old, new) in RENAMED {
            if let Some(value) = map.remove(old) {
                map.entry(new).or_insert(value);
            }
        }
    }
    body
}

/// Checks a switchover or failover request against the cluster, and the plan to write. `now`: it is
/// carried out at once, so the candidate must be ready now (a scheduled one is checked when due).
fn plan(
    view: &ClusterView,
    request: &SwitchoverRequest,
    failover: bool,
    dynamic: &DynamicConfig,
    now: bool,
) -> Result<Switchover, ApiError> {
    let name = |s: &str| MemberName::new(s).map_err(|e| ApiError::new(400, e.to_string()));
    let leader = view.leader.as_ref().map(|(l, _)| l.clone());
    let requested_leader = request.leader.as_deref().map(name).transpose()?;
    let candidate = request.candidate.as_deref().map(name).transpose()?;
    if failover && candidate.is_none() {
        return Err(ApiError::new(400, "a failover needs a candidate"));
    }
    if let Some(standby) = &dynamic.standby_cluster {
        return Err(ApiError::new(
            412,
            format!(
                "this is a standby cluster of {}:{}: its leader replicates from there and is never switched over \
                 here; promote the cluster first (vigil promote-cluster)",
                standby.host, standby.port
            ),
        ));
    }
    if !failover && request.allow_data_loss {
        return Err(ApiError::new(
            400,
            "allow_data_loss is for a failover only: a switchover never loses data",
        ));
    }
    if !failover {
        let Some(requested) = &requested_leader else {
            return Err(ApiError::new(400, "a switchover needs the current leader's name"));
        };
        if Some(requested) != leader.as_ref() {
            let actual = leader.as_ref().map_or("none".to_owned(), |l| l.to_string());
            return Err(ApiError::new(412, format!("{requested} is not the leader; the leader is {actual}")));
        }
    }
    match &candidate {
        Some(c) => check_candidate(view, c, leader.as_ref(), dynamic, now)?,
        None if !now => {}
        None => {
            let any =
                view.members.keys().any(|m| check_candidate(view, m, leader.as_ref(), dynamic, now).is_ok());
            if !any {
                return Err(ApiError::new(412, "no good candidates: no running replica may fail over"));
            }
        }
    }
    let allow_data_loss = request.allow_data_loss;
    Ok(Switchover {
        leader: if failover { None } else { leader },
        candidate,
        scheduled_at: None,
        allow_data_loss,
    })
}

/// A candidate must be a member allowed to fail over and, when it is to take over `now`, a running
/// replica within `maximum_lag_on_failover`.
fn check_candidate(
    view: &ClusterView,
    candidate: &MemberName,
    leader: Option<&MemberName>,
    dynamic: &DynamicConfig,
    now: bool,
) -> Result<(), ApiError> {
    let refuse = |why: String| Err(ApiError::new(412, why));
    let Some(member) = view.members.get(candidate) else {
        return refuse(format!("there is no member named {candidate}"));
    };
    if Some(candidate) == leader {
        return refuse(format!("{candidate} is already the leader"));
    }
    if !member.can_fail_over {
        return refuse(format!("{candidate} is tagged nofailover (or failover_priority <= 0)"));
    }
    if !now {
        return Ok(());
    }
    if !member.is_running_replica() {
        return refuse(format!(
            "{candidate} is not a running replica (it is {} {})",
            member.state, member.role
        ));
    }
    if let (Some(primary), Some(position)) = (view.optime, member.position) {
        within_maximum_lag(position, primary, dynamic.maximum_lag_on_failover)
            .or_else(|why| refuse(format!("candidate {candidate}: {why}")))?;
    }
    Ok(())
}

fn store_error(e: DcsError) -> ApiError {
    ApiError::new(503, format!("cluster store: {e}"))
}

impl Management for AgentManagement {
    fn cluster(&self) -> BoxFuture<'_, Result<Cluster, ApiError>> {
        Box::pin(self.cluster_answer())
    }

    fn history(&self) -> BoxFuture<'_, Result<Vec<HistoryEntry>, ApiError>> {
        Box::pin(async move { Ok(answers::history(&*self.read().await?)) })
    }

    fn events(&self) -> BoxFuture<'_, Result<Vec<Event>, ApiError>> {
        Box::pin(async move { Ok(answers::events(&*self.read().await?)) })
    }

    fn config(&self) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(async move {
            let state = self.read().await?;
            let config = state.keys.get(&Key::Config).map(|v| v.value.clone());
            config.ok_or_else(|| ApiError::new(502, "the cluster has no dynamic configuration yet"))
        })
    }

    fn set_config(&self, body: Value, replace: bool) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(self.set_config_value(body, replace))
    }

    fn switchover(
        &self,
        request: SwitchoverRequest,
        failover: bool,
    ) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async move {
            let result = self.request_switchover(request.clone(), failover).await;
            if let Err(e) = &result {
                let reason = format!("refused ({}): {}", e.status, e.message);
                self.record_switchover(EventKind::SwitchoverRefused, &request, failover, &reason).await;
            }
            result
        })
    }

    fn restart(&self, request: RestartRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(self.commands.call(LocalCommand::Restart(request)))
    }

    fn reload(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(self.commands.call(LocalCommand::Reload))
    }

    fn cancel_restart(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(self.commands.call(LocalCommand::CancelRestart))
    }

    fn reinitialize(&self, request: ReinitializeRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(self.commands.call(LocalCommand::Reinitialize(request)))
    }

    fn members(&self) -> BoxFuture<'_, Result<Vec<RaftMemberInfo>, ApiError>> {
        Box::pin(async move { Ok(raft_members::list(&self.dcs.raft_status())) })
    }

    fn release_dead(&self, certificate: DeathCertificate) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async move {
            let member =
                MemberName::new(&certificate.member).map_err(|e| ApiError::new(400, e.to_string()))?;
            let (token, incarnation) = (FencingToken(certificate.token), certificate.incarnation);
            self.dcs.hasten_election(&member);
            let reason = format!(
                "{member}'s lifeline certified its agent exited and its database stopped: lease released"
            );
            let dead_for = Duration::from_millis(certificate.dead_for_ms);
            let event = Event::new(EventKind::LeaseReleased, member.as_str(), SystemTime::now(), &reason)
                .token(Some(token.0))
                .timing(vigil_dcs::SINCE_DEATH, dead_for);
            let event = serde_json::to_value(&event).unwrap_or_default();
            match self.dcs.release_dead(&member, token, incarnation, event).await {
                Ok(()) => Ok(reason),
                Err(e @ DcsError::NotHolder { .. }) => {
                    tracing::info!(%member, %token, incarnation, error = %e, "death certificate of a grant no longer current");
                    let why = format!("not released: {e} (or taken again by a restarted agent)");
                    Err(ApiError::new(409, why))
                }
                Err(e) => Err(store_error(e)),
            }
        })
    }

    fn add_member(&self, request: AddMemberRequest) -> BoxFuture<'_, Result<RaftMemberInfo, ApiError>> {
        Box::pin(async move {
            let node = RaftMember::at(request.raft_addr);
            let id = self.dcs.add_member(node.clone()).await.map_err(raft_members::change_error)?;
            tracing::info!(node_id = id, %node, "member added through the API: it joins as a learner when it starts");
            Ok(raft_members::info(&self.dcs.raft_status(), id, &node))
        })
    }

    fn promote_member(&self, request: MemberRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async move {
            let id = raft_members::find(&self.dcs.raft_status(), &request.member)?;
            self.dcs.promote(id, request.force).await.map_err(raft_members::change_error)?;
            Ok(format!("node {id} ({}) is a voter", request.member))
        })
    }

    fn remove_member(&self, request: MemberRequest) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async move {
            let raft = self.dcs.raft_status();
            let id = raft_members::find(&raft, &request.member)?;
            raft_members::not_the_primary(&*self.read().await?, &raft.nodes[&id])?;
            self.dcs.remove(id, request.force).await.map_err(raft_members::change_error)?;
            tracing::info!(node_id = id, member = %request.member, force = request.force, "member removed through the API");
            Ok(format!("node {id} ({}) was removed from the Raft group", request.member))
        })
    }

    fn is_member_address(&self, ip: std::net::IpAddr) -> BoxFuture<'_, bool> {
        let hosts = members::member_hosts(&member_records(&self.dcs.local()));
        Box::pin(async move { members::is_member(&hosts, ip).await })
    }

    fn cancel_switchover(&self) -> BoxFuture<'_, Result<String, ApiError>> {
        Box::pin(async move {
            let state = self.read().await?;
            let Some(pending) = state.keys.get(&Key::Failover) else {
                return Err(ApiError::new(404, "no switchover is pending"));
            };
            match self.dcs.delete(&Key::Failover, Condition::Version(pending.version)).await {
                Ok(()) => Ok("The pending switchover was cancelled".to_owned()),
                Err(DcsError::Conflict { .. }) => Err(ApiError::new(409, "the switchover changed meanwhile")),
                Err(e) => Err(store_error(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests;
