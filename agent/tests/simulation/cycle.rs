//! One HA cycle of a simulated agent, step by step, in the order of `run.rs` `Agent::cycle`.

use crate::agent::{peer_view, Cycle, Grant, Step, PEER_TIMEOUT};
use crate::store::{Answer, Op};
use crate::world::{member, Endpoint, Event, World};
use std::time::{Duration, SystemTime};
use vigil_agent::ha::{
    cycle_wait, decide, decide_fast_fence, sync_health, Action, LeaseHold, LeaseTimes, NextCycle,
    Observation, Policy,
};
use vigil_agent::member::MemberRecord;
use vigil_fencing::{watchdog_timeout, HolderDeadline};

impl World {
    /// Starts a cycle of `node`'s agent.
    pub fn start_cycle(&mut self, node: usize) {
        let agent = &mut self.nodes[node].agent;
        agent.cycle = Cycle::default();
        agent.renewed_this_cycle = false;
        agent.wake_pending = false;
        agent.plan.extend([Step::RenewIfHeld, Step::Observe, Step::Read, Step::ProbeAndDecide]);
        self.drive(node);
    }

    /// Runs the agent's steps until one waits for the store (or the cycle ends).
    fn drive(&mut self, node: usize) {
        while self.nodes[node].agent.waiting.is_none() {
            let Some(step) = self.nodes[node].agent.plan.pop_front() else { return };
            self.step(node, step);
        }
    }

    fn step(&mut self, node: usize, step: Step) {
        let now = self.local(node);
        let agent = &mut self.nodes[node].agent;
        match step {
            Step::RenewIfHeld => {
                if let Some(grant) = agent.lease.filter(|_| agent.holds_lease(now)) {
                    agent.renewed_this_cycle = true;
                    self.send(node, Op::Renew(grant.token, self.nodes[node].agent.incarnation));
                }
            }
            Step::Observe => {
                agent.cycle.busy = agent.job.is_some();
                agent.cycle.observed_at = Some(now);
                let mut db = self.observe(node);
                let agent = &self.nodes[node].agent;
                let lease = agent.lease_hold(now);
                if let Some(fence) = decide_fast_fence(lease, &db, agent.memory.fenced, false) {
                    self.note(format!(
                        "{}: fencing at once: {:?} because {}",
                        member(node),
                        fence.actions,
                        fence.reason
                    ));
                    self.fence(node);
                    db = self.observe(node);
                }
                self.nodes[node].agent.cycle.db = Some(db);
            }
            Step::Read => self.send(node, Op::Read),
            Step::ProbeAndDecide => self.probe_and_decide(node),
            Step::Store(op) => self.send(node, op),
            Step::RenewLease => {
                if let Some(grant) = agent.lease.filter(|_| !agent.renewed_this_cycle) {
                    self.send(node, Op::Renew(grant.token, self.nodes[node].agent.incarnation));
                }
            }
            Step::ReleaseLease => {
                if let Some(grant) = agent.lease.take() {
                    self.send(node, Op::Release(grant.token));
                }
            }
            Step::Fence(action) => {
                self.note(format!("{}: {action:?}", member(node)));
                self.fence(node);
            }
            Step::Job(actions) => self.start_job(node, actions),
            Step::Publish { reobserve } => self.publish(node, reobserve),
            Step::Sleep => self.sleep(node),
        }
    }

    /// The answer to the request `id` (`None`: it timed out, or a wait ended).
    pub fn answered(&mut self, node: usize, id: u64, answer: Option<Answer>) -> Result<(), String> {
        let agent = &mut self.nodes[node].agent;
        let Some(waiting) = agent.waiting.take_if(|w| w.id == id) else { return Ok(()) };
        let settings = &self.settings;
        let deadline = |sent| HolderDeadline::from_sent(sent, settings.ttl, settings.safety_margin);
        match (waiting.op, answer) {
            (Some(Op::Read), Some(Answer::View(view))) => agent.cycle.cluster = Some(*view),
            (Some(Op::Renew(token, _)), answer) => {
                agent.renew_failed = !matches!(answer, Some(Answer::Granted(_)));
                match answer {
                    Some(Answer::Granted(token)) if agent.lease.is_some() => {
                        agent.lease = Some(Grant { token, deadline: deadline(waiting.sent) });
                        self.pet_watchdog(node);
                    }
                    Some(Answer::Refused) => {
                        self.note(format!("{}: lease {token} lost", member(node)));
                        let agent = &mut self.nodes[node].agent;
                        agent.lapsed = Some(token);
                        agent.lease = None;
                    }
                    _ => {} // the renewal may have committed: the old deadline stays, safe either way
                }
            }
            (Some(Op::Acquire(_)), Some(Answer::Granted(token))) => {
                agent.lapsed = None;
                agent.lease = Some(Grant { token, deadline: deadline(waiting.sent) });
                self.note(format!("{}: holds lease {token}", member(node)));
            }
            (Some(Op::PutMember(record)), Some(Answer::Done)) => {
                agent.published = Some((*record, waiting.sent));
            }
            _ => {}
        }
        self.drive(node);
        Ok(())
    }

    /// Asks the peers while nobody holds the lease (answers come back at once from those reachable,
    /// after `PEER_TIMEOUT` from the others), then decides.
    fn probe_and_decide(&mut self, node: usize) {
        let now = self.local(node);
        let agent = &self.nodes[node].agent;
        let lease = agent.lease_hold(now);
        let db = agent.cycle.db.clone().expect("observed earlier in the cycle");
        let observed_at = agent.cycle.observed_at.unwrap_or(now);
        let agent = &mut self.nodes[node].agent;
        agent.memory.read_store(agent.cycle.cluster.as_ref(), observed_at, now);
        let agent = &self.nodes[node].agent;
        if agent.cycle.busy || agent.job.is_some() {
            let due =
                agent.renewal_due(self.settings.ttl, self.settings.safety_margin).is_some_and(|d| now >= d);
            let agent = &mut self.nodes[node].agent;
            if matches!(lease, LeaseHold::Valid(_)) && (!agent.renewed_this_cycle || due) {
                agent.renewed_this_cycle = false;
                agent.plan.push_back(Step::RenewLease);
            }
            agent.cycle.wait = self.settings.loop_wait;
            agent.plan.extend([Step::Publish { reobserve: false }, Step::Sleep]);
            return;
        }
        let leading = matches!(lease, LeaseHold::Valid(_)) && db.is_running_primary();
        if leading {
            self.pet_watchdog(node);
        } else if !db.is_running_primary() {
            self.nodes[node].agent.watchdog = None;
        }
        let agent = &mut self.nodes[node].agent;
        let observed_at = agent.cycle.observed_at.unwrap_or(now);
        agent.memory.observed(&db, lease, observed_at);
        let leaderless = agent.cycle.cluster.as_ref().is_some_and(|c| c.leader.is_none());
        let peers: Vec<_> = if leaderless && db.running {
            (0..self.nodes.len()).filter(|&p| p != node).map(|p| self.peer(node, p)).collect()
        } else {
            Vec::new()
        };
        let observation = Observation {
            now,
            wall_clock: SystemTime::UNIX_EPOCH + Duration::from_millis(self.now()),
            me: member(node),
            policy: self.policy(),
            db: db.clone(),
            cluster: self.nodes[node].agent.cycle.cluster.clone(),
            lease,
            primary_down_since: self.nodes[node].agent.memory.primary_down_since,
            not_streaming_since: self.nodes[node].agent.memory.not_streaming_since,
            repair_failed: self.nodes[node].agent.memory.repair_failed,
            repaired: self.nodes[node].agent.memory.repaired,
            follow_failures: self.nodes[node].agent.memory.follow_failures,
            peers: peers.clone(),
            sync_applied_at: self.nodes[node].agent.memory.sync_applied_at(),
            fenced: self.nodes[node].agent.memory.fenced,
            promotion_refused: self.nodes[node].agent.promotion_refused(now, self.settings.ttl),
            observed_leaderless: self.nodes[node].agent.memory.observed_leaderless,
        };
        let probed = !peers.is_empty();
        let all_answered = peers.iter().all(|p| p.reachable);
        self.execute(node, &observation);
        if probed {
            // The decision is carried out once the slowest peer answered (or timed out).
            let wait = if all_answered { Duration::from_millis(5) } else { PEER_TIMEOUT };
            self.pause_for(node, wait);
        }
    }

    /// What `node` learns from `peer`'s REST API.
    fn peer(&self, node: usize, peer: usize) -> vigil_agent::ha::PeerView {
        let p = &self.nodes[peer];
        let answers =
            p.alive && p.paused_until <= self.now() && !self.cut(Endpoint::Node(node), Endpoint::Node(peer));
        let agent = &p.agent;
        peer_view(
            member(peer),
            agent.shown.as_ref().filter(|_| answers),
            agent.shown_refused,
            agent.shown_leaderless,
        )
    }

    /// Decides and plans the decision's actions (`act.rs` `execute`).
    fn execute(&mut self, node: usize, o: &Observation) {
        let decision = decide(o);
        let routine = decision
            .actions
            .iter()
            .all(|a| matches!(a, Action::RenewLease | Action::PublishOptime(_) | Action::RetainFor(_)));
        if !routine {
            self.note(format!("{}: {:?} because {}", member(node), decision.actions, decision.reason));
        }
        let wait = cycle_wait(&decision, o);
        let stops_db = decision.stops_database();
        let mut plan = Vec::new();
        let mut db_actions = Vec::new();
        for action in decision.actions {
            match action {
                Action::ClaimInitialize => plan.push(Step::Store(Op::ClaimInitialize)),
                Action::SetSystemId(id) => plan.push(Step::Store(Op::SetSystemId(id))),
                Action::AcquireLease => {
                    plan.push(Step::Store(Op::Acquire(self.nodes[node].agent.incarnation)))
                }
                Action::RenewLease => plan.push(Step::RenewLease),
                Action::ReleaseLease => plan.push(Step::ReleaseLease),
                Action::PublishOptime(p) => plan.push(Step::Store(Op::PutOptime(p))),
                Action::PublishSync(state) => plan.push(Step::Store(Op::PutSync(state))),
                Action::RetainFor(_) => {} // replication slots are not modelled
                Action::Demote | Action::Kill => plan.push(Step::Fence(action)),
                Action::HandOver | Action::ClearSwitchover => {
                    unreachable!("the simulation requests no switchover, yet decide chose {action:?}")
                }
                other => db_actions.push(other),
            }
        }
        if !db_actions.is_empty() {
            plan.push(Step::Job(db_actions));
        }
        plan.extend([Step::Publish { reobserve: stops_db }, Step::Sleep]);
        let agent = &mut self.nodes[node].agent;
        agent.cycle.wait = wait;
        agent.cycle.reason = decision.reason;
        agent.cycle.refusal = decision.refusal;
        agent.plan.extend(plan);
    }

    /// Publishes the member record when it changed or half its ttl passed, and the REST status.
    fn publish(&mut self, node: usize, reobserve: bool) {
        let db = if reobserve {
            self.observe(node)
        } else {
            self.nodes[node].agent.cycle.db.clone().unwrap_or_else(|| self.observe(node))
        };
        let now = self.local(node);
        let (state, role) = MemberRecord::state_and_role(&db);
        let name = member(node);
        let record = MemberRecord {
            conn_url: format!("postgres://{name}:5432/postgres"),
            api_url: format!("http://{name}:8008/patroni"),
            state: state.into(),
            role: role.into(),
            host: name.to_string(),
            port: 5432,
            position: db.position,
            xlog_location: db.position.map(|p| p.at),
            replay_lsn: db.replay_position,
            timeline: db.timeline,
            replication_state: db.streaming.then(|| "streaming".to_owned()),
            reason: Some(self.nodes[node].agent.cycle.reason.clone()),
            why: self.nodes[node].agent.cycle.refusal.as_ref().map(ToString::to_string),
            tags: Default::default(),
            sync_state: db
                .is_running_primary()
                .then(|| sync_health(&db, self.settings.sync.mode).as_str().to_owned()),
            pending_restart: false,
            pending_restart_reason: Default::default(),
            diverged: None,
            data_set_aside: None,
            proxy_url: None,
            upstream: db.upstream.clone(),
        };
        let agent = &mut self.nodes[node].agent;
        agent.shown = Some(db);
        agent.shown_refused = agent.promotion_refused(now, self.settings.ttl).is_some();
        agent.shown_leaderless = (agent.memory.observed_leaderless, agent.memory.leaderless_after());
        let fresh = agent
            .published
            .as_ref()
            .is_some_and(|(last, at)| *last == record && now.duration_since(*at) < self.settings.ttl / 2);
        if agent.cycle.cluster.is_some() && !fresh {
            self.send(node, Op::PutMember(Box::new(record)));
        }
    }

    /// Ends the cycle: the next one starts after the wait, or sooner for the lease (`run.rs` `run`, with
    /// the real `NextCycle::at`).
    fn sleep(&mut self, node: usize) {
        let now = self.local(node);
        let s = &self.settings;
        let agent = &self.nodes[node].agent;
        let lease = agent.lease.map(|grant| LeaseTimes {
            renewal_due: agent.renewal_due(s.ttl, s.safety_margin).unwrap_or(now),
            deadline: grant.deadline.instant(),
            renew_failed: agent.renew_failed,
        });
        let mut next = NextCycle {
            now,
            wall_clock: SystemTime::UNIX_EPOCH + Duration::from_millis(self.now()),
            wait: agent.cycle.wait,
            lease,
            primary_down_since: agent.memory.primary_down_since,
            primary_start_timeout: s.primary_start_timeout,
            scheduled: None,
        }
        .at();
        if agent.wake_pending {
            next = now;
        }
        let generation = self.serial();
        self.nodes[node].agent.wake_generation = generation;
        let at = self.nodes[node].clock.when(next, self.now());
        self.scheduler.at(at.max(self.now()), Event::Wake { node, generation });
    }

    /// Pets (or arms) `node`'s watchdog: it resets the node unless petted again within its timeout. As
    /// `RoleGuard` does, a pet that would fire after the store may expire the lease (the deadline plus the
    /// safety margin) is skipped: the watchdog goes on counting from the last one; one not armed yet is
    /// armed with the whole seconds left before the expiry instead, if there is one.
    pub fn pet_watchdog(&mut self, node: usize) {
        let now = self.local(node);
        let mut timeout =
            Duration::from_secs(watchdog_timeout(self.settings.ttl, self.settings.safety_margin).into());
        let expiry = self.nodes[node].agent.lease.map(|g| g.deadline.instant() + self.settings.safety_margin);
        if let Some(left) = expiry.map(|expiry| expiry.saturating_duration_since(now)) {
            match Duration::from_secs(left.as_secs()) {
                _ if left >= timeout => {}
                whole if self.nodes[node].agent.watchdog.is_none() && whole >= Duration::from_secs(1) => {
                    timeout = whole
                }
                _ => return,
            }
        }
        let fires = now + timeout;
        let generation = self.serial();
        self.nodes[node].agent.watchdog = Some((fires, generation));
        let at = self.nodes[node].clock.when(fires, self.now());
        self.scheduler.at(at, Event::Watchdog { node, generation });
    }

    /// The policy settings every agent runs with.
    fn policy(&self) -> Policy {
        let s = &self.settings;
        Policy {
            can_fail_over: true,
            failover_priority: 1,
            maximum_lag_on_failover: s.maximum_lag_on_failover,
            primary_start_timeout: s.primary_start_timeout,
            repair_in_place: true,
            discard: Default::default(),
            retain_for_replicas: true,
            check_timeline: false,
            pause: false,
            loop_wait: s.loop_wait,
            sync: s.sync,
            replicate_from: None,
            standby_cluster: None,
            restore_without_primary: false,
        }
    }
}
