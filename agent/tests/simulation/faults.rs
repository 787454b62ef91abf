//! The faults of a run, drawn from its seed: each starts within the fault window and has healed by
//! `heal_by`, after which the cluster must converge.

use crate::scheduler::Millis;
use crate::world::{Endpoint, Event, World};

/// A fault.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The database server is killed (the agent stays and decides what to do).
    CrashDatabase(usize),
    /// The agent process is killed, and its database with it (its lifeline then certifies the death of
    /// the grant it held); it restarts after a while.
    CrashAgent(usize, Millis),
    /// The agent process is stopped (SIGSTOP) for a while; its database keeps running.
    PauseAgent(usize, Millis),
    /// The node is cut off from the store and every other node.
    Isolate(usize, Millis),
    /// The node is cut off from the store only.
    CutFromStore(usize, Millis),
    /// The link between two nodes is cut.
    CutLink(usize, usize, Millis),
    /// The store loses its Raft leader; a new one takes over after a while.
    StoreElection(Millis),
    /// Every message takes up to this long, for a while.
    SlowNetwork(Millis, Millis),
    /// Every promotion of the node's database fails, for a while.
    FailPromotions(usize, Millis),
}

impl World {
    /// Draws the run's faults and schedules them.
    pub fn schedule_faults(&mut self) {
        let s = &self.settings;
        let (count, until, heal_by, nodes) = (s.faults, s.faults_until, s.heal_by, s.nodes);
        for _ in 0..count {
            let start = self.rng.between(1000, until);
            let room = heal_by - start;
            let lasting =
                |rng: &mut crate::rng::Rng, low: Millis, high: Millis| rng.between(low, high).min(room);
            let node = self.rng.index(nodes);
            let fault = match self.rng.between(0, 7) {
                0 => Fault::CrashDatabase(node),
                1 => Fault::CrashAgent(node, lasting(&mut self.rng, 200, 5000)),
                2 => Fault::PauseAgent(node, lasting(&mut self.rng, 200, 6000)),
                3 => Fault::Isolate(node, lasting(&mut self.rng, 200, 8000)),
                4 => Fault::CutFromStore(node, lasting(&mut self.rng, 200, 8000)),
                5 => {
                    let other = (node + 1 + self.rng.index(nodes - 1)) % nodes;
                    Fault::CutLink(node, other, lasting(&mut self.rng, 200, 8000))
                }
                6 => Fault::StoreElection(lasting(&mut self.rng, 100, 3000)),
                _ => {
                    let max_delay = self.rng.between(20, 1200);
                    Fault::SlowNetwork(lasting(&mut self.rng, 500, 5000), max_delay)
                }
            };
            self.scheduler.at(start, Event::Fault(fault));
        }
        if let Some(seed) = s.failing_promotions {
            // Drawn apart: until it begins, the run is the one of the same seed without it.
            let mut rng = crate::rng::Rng::new(seed);
            let (node, start) = (rng.index(nodes), rng.between(1000, until));
            self.scheduler.at(start, Event::Fault(Fault::FailPromotions(node, heal_by - start)));
        }
        self.healed_at = heal_by;
    }

    /// A fault begins (and, where it ends by itself, its end is set).
    pub fn begin(&mut self, fault: Fault) {
        self.note(format!("FAULT {fault:?}"));
        let now = self.now();
        match fault {
            Fault::CrashDatabase(node) => {
                let n = &mut self.nodes[node];
                n.db.stop();
                n.pending.clear();
            }
            Fault::CrashAgent(node, down) => {
                if self.nodes[node].alive {
                    let (grant, incarnation) =
                        (self.nodes[node].agent.lease, self.nodes[node].agent.incarnation);
                    self.crash_agent(node);
                    self.certify_death(node, grant, incarnation);
                    self.scheduler.after(down, Event::Restart { node });
                }
            }
            Fault::PauseAgent(node, lasting) => {
                let n = &mut self.nodes[node];
                n.paused_until = n.paused_until.max(now + lasting);
            }
            Fault::Isolate(node, lasting) => {
                self.cuts.push((Endpoint::Node(node), Endpoint::Store, now + lasting));
                for other in (0..self.nodes.len()).filter(|&o| o != node) {
                    self.cuts.push((Endpoint::Node(node), Endpoint::Node(other), now + lasting));
                }
            }
            Fault::CutFromStore(node, lasting) => {
                self.cuts.push((Endpoint::Node(node), Endpoint::Store, now + lasting));
            }
            Fault::CutLink(a, b, lasting) => {
                self.cuts.push((Endpoint::Node(a), Endpoint::Node(b), now + lasting))
            }
            Fault::StoreElection(lasting) => {
                self.store_down_until = self.store_down_until.max(now + lasting);
                self.scheduler.at(self.store_down_until, Event::StoreLeaderElected);
            }
            Fault::SlowNetwork(lasting, max_delay) => {
                self.slow_until = self.slow_until.max(now + lasting);
                self.slow_ms = self.slow_ms.max(max_delay);
            }
            Fault::FailPromotions(node, lasting) => {
                let n = &mut self.nodes[node];
                n.promotions_fail_until = n.promotions_fail_until.max(now + lasting);
            }
        }
        self.cuts.retain(|&(_, _, until)| until > now);
    }

    /// A new Raft leader of the store takes over: every lease counts as renewed now.
    pub fn store_leader_elected(&mut self) {
        if self.store_down_until > self.now() {
            return; // a later election is still under way
        }
        self.note("store: new Raft leader".to_owned());
        for (delay, expiry) in self.store.take_over() {
            self.scheduler.after(delay, Event::Expire(expiry));
        }
    }
}
