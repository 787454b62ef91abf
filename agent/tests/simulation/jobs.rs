//! The database actions of a decision, run as the agent's background job (`execute.rs`): one after the
//! other, each taking a random while, the first failure ending the job; and fencing, which is immediate.

use crate::agent::Job;
use crate::database::{Data, Process};
use crate::world::{member, Endpoint, Event, World};
use vigil_agent::db::Upstream;
use vigil_agent::ha::{Action, JobEvent};

impl World {
    /// Starts the job of `actions` on `node`.
    pub fn start_job(&mut self, node: usize, actions: Vec<Action>) {
        let generation = self.serial();
        if actions.iter().any(Action::starts_primary) {
            self.nodes[node].agent.memory.starting_primary(); // as the loop, when it starts the job
        }
        self.nodes[node].agent.job = Some(Job { actions: actions.into(), generation });
        self.schedule_job_step(node, generation);
    }

    fn schedule_job_step(&mut self, node: usize, generation: u64) {
        let Some(action) = self.nodes[node].agent.job.as_ref().and_then(|j| j.actions.front()) else {
            return;
        };
        let (low, high) = match action {
            Action::Bootstrap => (500, 1500),
            Action::Clone(_) => (500, 2000),
            Action::Repair(_) => (200, 1000),
            Action::Promote | Action::StartPrimary | Action::Follow(_) => (100, 600),
            _ => (5, 50),
        };
        let took = self.rng.between(low, high);
        self.scheduler.after(took, Event::JobStep { node, generation });
    }

    /// The job's next action is done; the job goes on, or ends and wakes the agent.
    pub fn job_step(&mut self, node: usize, generation: u64) -> Result<(), String> {
        let agent = &mut self.nodes[node].agent;
        let Some(job) = agent.job.as_mut().filter(|j| j.generation == generation) else { return Ok(()) };
        let Some(action) = job.actions.pop_front() else { return Ok(()) };
        let done = job.actions.is_empty();
        let ok = self.carry_out(node, &action)?;
        self.note(format!("{}: {action:?} {}", member(node), if ok { "done" } else { "failed" }));
        if !ok {
            self.nodes[node].agent.job = None; // retried on the next regular cycle
        } else if done {
            self.nodes[node].agent.job = None;
            self.wake(node);
        } else {
            self.schedule_job_step(node, generation);
        }
        Ok(())
    }

    /// Stops `node`'s database at once (`Demote` and `Kill` alike: nothing is acknowledged afterwards).
    pub fn fence(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.db.stop();
        n.pending.clear();
        n.agent.watchdog = None;
        n.agent.memory.job_reported(JobEvent::Fenced);
    }

    /// The upstream's data, if `node` can reach it and it runs.
    fn source(&self, node: usize, upstream: &Upstream) -> Option<Data> {
        let up = self.nodes.iter().position(|n| n.agent.name.as_str() == upstream.name)?;
        let u = &self.nodes[up];
        let reachable = !self.cut(Endpoint::Node(node), Endpoint::Node(up));
        u.data_if_running().filter(|_| reachable).cloned()
    }

    /// Carries out one database action; `Ok(false)` when it failed.
    fn carry_out(&mut self, node: usize, action: &Action) -> Result<bool, String> {
        let was_writable = self.nodes[node].db.is_primary();
        // As `execute.rs`: no server starts as a primary once the lease's deadline has passed.
        let starts_primary = action.starts_primary();
        let local = self.local(node);
        if starts_primary && !self.nodes[node].agent.lease.is_some_and(|g| g.deadline.is_valid_at(local)) {
            return Ok(false);
        }
        let ok = match action {
            Action::Bootstrap | Action::StartPrimary => {
                self.pet_watchdog(node); // armed before the server starts as a primary (`execute.rs`)
                let genesis = self.serial();
                let db = &mut self.nodes[node].db;
                match (&mut db.data, action) {
                    (None, Action::Bootstrap) => {
                        db.data = Some(Data { log: vec![genesis], timeline: 1, was_primary: true });
                        db.process = Process::Primary;
                        true
                    }
                    (Some(data), Action::StartPrimary) if db.process == Process::Stopped => {
                        // A standby's data is started as a standby and promoted (`ops.rs`): a new timeline.
                        if !data.was_primary {
                            data.timeline += 1;
                        }
                        data.was_primary = true;
                        db.process = Process::Primary;
                        true
                    }
                    _ => false,
                }
            }
            Action::Promote if self.now() < self.nodes[node].promotions_fail_until => {
                let token = self.nodes[node].agent.lease.map(|g| g.token);
                if self.nodes[node].agent.promotion_failed(token, local) {
                    self.gave_up += 1;
                    self.note(format!("{}: promotion failed every time: giving up", member(node)));
                }
                false
            }
            Action::Promote => {
                let db = &mut self.nodes[node].db;
                match &mut db.data {
                    Some(data) if matches!(db.process, Process::Replica { .. }) => {
                        data.timeline += 1;
                        data.was_primary = true;
                        db.process = Process::Primary;
                        db.connected = false;
                        self.pet_watchdog(node); // armed before promoting
                        true
                    }
                    _ => false,
                }
            }
            Action::Clone(upstream) => match self.source(node, upstream) {
                Some(data) if self.nodes[node].db.data.is_none() => {
                    self.nodes[node].db.data = Some(Data { was_primary: false, ..data });
                    true
                }
                _ => false,
            },
            Action::Repair(upstream) => {
                self.nodes[node].db.stop();
                let source = self.source(node, upstream);
                let db = &mut self.nodes[node].db;
                let ok = match (&mut db.data, source) {
                    (Some(mine), Some(theirs)) => {
                        let keep = mine.common_prefix(&theirs);
                        mine.log.truncate(keep);
                        mine.timeline = theirs.timeline;
                        mine.was_primary = false;
                        true
                    }
                    _ => false,
                };
                self.nodes[node].agent.memory.job_reported(JobEvent::Repaired { ok });
                ok
            }
            Action::RemoveData | Action::SetDataAside => {
                let db = &mut self.nodes[node].db;
                db.stop();
                db.data = None;
                self.nodes[node].agent.memory.job_reported(JobEvent::DataRemoved);
                true
            }
            Action::Follow(upstream) => self.follow(node, upstream.as_ref()),
            Action::SetSyncRule(rule) => {
                self.nodes[node].db.sync_rule = Some(rule.clone());
                true
            }
            other => unreachable!("not a database action: {other:?}"),
        };
        if ok && !was_writable && self.nodes[node].db.is_primary() {
            self.note(format!("{}: now accepts writes", member(node)));
            self.check_no_acknowledged_write_lost(node)?;
        }
        Ok(ok)
    }

    /// Runs `node`'s server as a replica of `upstream` (a running replica of it is left alone). A history
    /// that diverged from a reachable upstream's does not start (PostgreSQL: "requested timeline … does
    /// not contain minimum recovery point").
    fn follow(&mut self, node: usize, upstream: Option<&Upstream>) -> bool {
        let name = upstream.map(|u| u.name.clone());
        let source = upstream.and_then(|u| self.source(node, u));
        let db = &mut self.nodes[node].db;
        let Some(mine) = &db.data else { return false };
        if db.process == (Process::Replica { upstream: name.clone() }) {
            return true;
        }
        if source.is_some_and(|theirs| !mine.is_prefix_of(&theirs)) {
            db.stop();
            if upstream.is_some() {
                self.nodes[node].agent.memory.job_reported(JobEvent::FollowFailed);
            }
            return false;
        }
        db.stop();
        db.process = Process::Replica { upstream: name };
        true
    }
}
