//! The simulated cluster: nodes (an agent, a database, a drifting clock), the store, the links between
//! them, the client writer and the faults; one run is one seed, driven event by event.

use crate::agent::Agent;
use crate::clock::Clock;
use crate::database::{Data, Database};
use crate::faults::Fault;
use crate::rng::Rng;
use crate::scheduler::{Millis, Scheduler};
use crate::store::{Answer, Expiry, Op, Store};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use vigil_agent::ha::SyncPolicy;
use vigil_dcs::{FencingToken, MemberName};

/// The settings of one run, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Settings {
    pub nodes: usize,
    pub sync: SyncPolicy,
    pub ttl: Duration,
    pub loop_wait: Duration,
    pub retry_timeout: Duration,
    pub safety_margin: Duration,
    pub primary_start_timeout: Duration,
    pub maximum_lag_on_failover: u64,
    /// Largest clock-rate drift of a node or the store, in parts per million either way.
    pub max_drift_ppm: i64,
    /// How many faults are injected.
    pub faults: usize,
    /// Faults start before this time; every one has healed by `heal_by`.
    pub faults_until: Millis,
    pub heal_by: Millis,
    /// The run ends here; the cluster must have converged by then.
    pub end: Millis,
    /// How long a lifeline takes to offer its certificate after its agent died, in ms (lowest, highest).
    pub certificate_delay: (Millis, Millis),
    /// One more fault, drawn from this seed: every promotion of one node fails from a random time until
    /// `heal_by`.
    pub failing_promotions: Option<u64>,
}

/// Something that happens at an instant of virtual time.
#[derive(Debug, Clone)]
pub enum Event {
    /// An agent's cycle timer.
    Wake { node: usize, generation: u64 },
    /// A request reaches the store.
    Arrive { node: usize, id: u64, op: Op },
    /// The store's answer reaches the agent.
    Answer { node: usize, id: u64, answer: Answer },
    /// A request the agent waits for timed out (`retry_timeout`), or a pause of the agent ended.
    Timeout { node: usize, id: u64 },
    /// A lessor timer of the store ran out.
    Expire(Expiry),
    /// The store's leader key changed: the watch wakes the agent.
    LeaderChanged { node: usize },
    /// The next action of a background job is done.
    JobStep { node: usize, generation: u64 },
    /// A node's watchdog runs out unless petted since.
    Watchdog { node: usize, generation: u64 },
    /// An agent (re)starts after a crash or a reboot.
    Restart { node: usize },
    /// Replication: every replica receives what its upstream has, then commits waiting for it are acknowledged.
    Tick,
    /// A client writes.
    Write,
    /// A fault begins.
    Fault(Fault),
    /// The store has a Raft leader again.
    StoreLeaderElected,
    /// A dead agent's lifeline offers its death certificate for the grant `token` of agent process
    /// `incarnation` (through the peers; again and again until `until` while no peer can take it).
    Certificate { node: usize, token: FencingToken, incarnation: u64, until: Millis },
}

/// One end of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Node(usize),
    Store,
}

/// One node.
pub struct Node {
    pub agent: Agent,
    pub db: Database,
    pub clock: Clock,
    /// The agent process runs (false after a crash, until it restarts).
    pub alive: bool,
    /// The agent process is stopped (SIGSTOP) until then.
    pub paused_until: Millis,
    /// Every promotion of its database fails until then (its data directory refuses new files, say).
    pub promotions_fail_until: Millis,
    /// Commits not acknowledged yet: (index in the log, write id).
    pub pending: Vec<(usize, u64)>,
}

/// The whole simulated world of one run.
pub struct World {
    pub settings: Settings,
    pub rng: Rng,
    pub scheduler: Scheduler<Event>,
    pub nodes: Vec<Node>,
    pub store: Store,
    /// The store has no Raft leader (an election is under way) until then.
    pub store_down_until: Millis,
    /// Links cut, each until a time.
    pub cuts: Vec<(Endpoint, Endpoint, Millis)>,
    /// Messages are slow (up to `slow_ms`) until then.
    pub slow_until: Millis,
    pub slow_ms: Millis,
    /// Ids for requests, writes and timer generations, unique over the run.
    serial: u64,
    /// Acknowledged writes (synchronous modes only): (index, id).
    pub acknowledged: Vec<(usize, u64)>,
    /// The last events worth showing when an invariant breaks.
    pub trace: VecDeque<String>,
    /// Events processed.
    pub steps: u64,
    /// When the last fault healed.
    pub healed_at: Millis,
    /// Leases released by a death certificate.
    pub certified: u64,
    /// Promotions refused after failing every time (`Veto::Failed`).
    pub gave_up: u64,
}

/// How many trace lines a failure shows.
const TRACE_LINES: usize = 40;

impl World {
    /// The world of a seed's `settings` and generator, every node empty and its agent about to start.
    pub fn new(settings: Settings, rng: Rng) -> Self {
        let base = Instant::now();
        let mut rng = rng;
        let drift = |rng: &mut Rng| {
            let max = settings.max_drift_ppm;
            rng.between(0, 2 * max as u64) as i64 - max
        };
        let store = Store::new(Clock::new(base, drift(&mut rng)), settings.ttl);
        let nodes = (0..settings.nodes)
            .map(|i| Node {
                agent: Agent::new(member(i), 0),
                db: Database::empty(),
                clock: Clock::new(base, drift(&mut rng)),
                alive: true,
                paused_until: 0,
                promotions_fail_until: 0,
                pending: Vec::new(),
            })
            .collect();
        World {
            settings,
            rng,
            scheduler: Scheduler::new(),
            nodes,
            store,
            store_down_until: 0,
            cuts: Vec::new(),
            slow_until: 0,
            slow_ms: 0,
            serial: 0,
            acknowledged: Vec::new(),
            trace: VecDeque::new(),
            steps: 0,
            healed_at: 0,
            certified: 0,
            gave_up: 0,
        }
    }

    /// Runs the seed to its end, checking the invariants after every event; `Err` says which broke.
    pub fn run(&mut self) -> Result<(), String> {
        for node in 0..self.nodes.len() {
            let start = self.rng.between(0, self.settings.loop_wait.as_millis() as u64);
            self.scheduler.at(start, Event::Restart { node });
        }
        self.scheduler.at(0, Event::Tick);
        self.scheduler.at(0, Event::Write);
        self.schedule_faults();
        let end = self.settings.end;
        while let Some(event) = self.scheduler.next_before(end) {
            self.steps += 1;
            self.dispatch(event)?;
            self.check_safety()?;
        }
        self.check_converged()
    }

    fn dispatch(&mut self, event: Event) -> Result<(), String> {
        let now = self.now();
        // A stopped agent process handles nothing until it resumes; a dead one nothing at all.
        if let Some(node) = agent_event(&event) {
            if !self.nodes[node].alive {
                return Ok(());
            }
            if self.nodes[node].paused_until > now {
                let until = self.nodes[node].paused_until;
                self.scheduler.at(until, event);
                return Ok(());
            }
        }
        match event {
            Event::Wake { node, generation } => {
                if self.nodes[node].agent.wake_generation == generation && !self.nodes[node].agent.in_cycle()
                {
                    self.start_cycle(node);
                }
            }
            Event::Arrive { node, id, op } => self.arrive(node, id, op)?,
            Event::Answer { node, id, answer } => {
                if !self.cut(Endpoint::Node(node), Endpoint::Store) {
                    self.answered(node, id, Some(answer))?;
                }
            }
            Event::Timeout { node, id } => self.answered(node, id, None)?,
            Event::Expire(expiry) => {
                if self.store.expire(expiry) {
                    self.note("store: lease expired".to_owned());
                    self.leader_changed();
                }
            }
            Event::LeaderChanged { node } => self.wake(node),
            Event::JobStep { node, generation } => self.job_step(node, generation)?,
            Event::Watchdog { node, generation } => {
                if self.nodes[node].agent.watchdog.is_some_and(|(_, g)| g == generation) {
                    self.note(format!("{}: watchdog fired: node reset", member(node)));
                    self.crash_agent(node);
                    let reboot = self.rng.between(1000, 3000);
                    self.scheduler.after(reboot, Event::Restart { node });
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Tick => {
                self.replicate();
                self.acknowledge();
                self.scheduler.after(TICK, Event::Tick);
            }
            Event::Write => {
                self.write();
                let next = self.rng.between(40, 160);
                self.scheduler.after(next, Event::Write);
            }
            Event::Fault(fault) => self.begin(fault),
            Event::Certificate { node, token, incarnation, until } => {
                self.certificate(node, token, incarnation, until)
            }
            Event::StoreLeaderElected => self.store_leader_elected(),
        }
        Ok(())
    }

    /// The current virtual time.
    pub fn now(&self) -> Millis {
        self.scheduler.now()
    }

    /// What `node`'s clock reads now.
    pub fn local(&self, node: usize) -> Instant {
        self.nodes[node].clock.at(self.now())
    }

    /// A fresh id.
    pub fn serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Adds a line to the trace.
    pub fn note(&mut self, line: String) {
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        let now = self.now();
        self.trace.push_back(format!("{now:>7} ms  {line}"));
    }

    /// Whether the link between `a` and `b` is cut now.
    pub fn cut(&self, a: Endpoint, b: Endpoint) -> bool {
        let now = self.now();
        self.cuts.iter().any(|&(x, y, until)| until > now && ((x == a && y == b) || (x == b && y == a)))
    }

    /// How long the next message takes.
    fn delay(&mut self) -> Millis {
        if self.slow_until > self.now() {
            self.rng.between(1, self.slow_ms)
        } else {
            self.rng.between(1, 10)
        }
    }

    /// `node`'s agent sends `op` to the store and waits for the answer, at most `retry_timeout`, and not past
    /// its lease's deadline while the lease is valid or its server runs as a primary (as the loop bounds
    /// every store request, `LeaseKeeper::wait_limit`).
    pub fn send(&mut self, node: usize, op: Op) {
        let id = self.serial();
        let sent = self.local(node);
        self.nodes[node].agent.waiting = Some(crate::agent::Waiting { id, op: Some(op.clone()), sent });
        if !self.cut(Endpoint::Node(node), Endpoint::Store) {
            let delay = self.delay();
            self.scheduler.after(delay, Event::Arrive { node, id, op });
        }
        let mut timeout = self.nodes[node].clock.true_duration(self.settings.retry_timeout);
        let primary = self.nodes[node].db.is_primary();
        if let Some(grant) = self.nodes[node].agent.lease.filter(|g| primary || g.deadline.is_valid_at(sent))
        {
            let left = grant.deadline.instant().saturating_duration_since(sent);
            timeout = timeout.min(self.nodes[node].clock.true_duration(left).max(1));
        }
        self.scheduler.after(timeout, Event::Timeout { node, id });
    }

    /// `node`'s agent waits `local` on its clock (a probe of its peers), then goes on.
    pub fn pause_for(&mut self, node: usize, local: Duration) {
        let id = self.serial();
        let sent = self.local(node);
        self.nodes[node].agent.waiting = Some(crate::agent::Waiting { id, op: None, sent });
        let wait = self.nodes[node].clock.true_duration(local).max(1);
        self.scheduler.after(wait, Event::Timeout { node, id });
    }

    fn arrive(&mut self, node: usize, id: u64, op: Op) -> Result<(), String> {
        if self.store_down_until > self.now() || self.cut(Endpoint::Node(node), Endpoint::Store) {
            return Ok(()); // no Raft leader to take it, or lost on the way
        }
        let before = self.store.leader();
        let name = member(node);
        let (answer, timers, broken) = self.store.apply(&name, op.clone());
        if let Some(broken) = broken {
            return Err(format!("fencing tokens must strictly increase: {broken}"));
        }
        for (delay, expiry) in timers {
            self.scheduler.after(delay, Event::Expire(expiry));
        }
        if self.store.leader() != before {
            self.note(format!("store: {name} {op:?} -> leader {:?}", self.store.leader()));
            self.leader_changed();
        }
        let delay = self.delay();
        self.scheduler.after(delay, Event::Answer { node, id, answer });
        Ok(())
    }

    /// The lease changed hands: the store's watch wakes every agent it reaches.
    fn leader_changed(&mut self) {
        for node in 0..self.nodes.len() {
            if !self.cut(Endpoint::Node(node), Endpoint::Store) {
                let delay = self.delay();
                self.scheduler.after(delay, Event::LeaderChanged { node });
            }
        }
    }

    /// Wakes `node`'s agent: a new cycle at once, or right after the one under way.
    pub fn wake(&mut self, node: usize) {
        if self.nodes[node].agent.in_cycle() {
            self.nodes[node].agent.wake_pending = true;
        } else {
            self.start_cycle(node);
        }
    }

    /// The agent process of `node` dies; the database dies with it (its lifeline).
    pub fn crash_agent(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.alive = false;
        n.db.stop();
        n.pending.clear();
        n.agent = Agent::new(member(node), 0);
    }

    /// The lifeline of `node`'s agent, just ended with its database, certifies the death of the grant
    /// the agent last saw, if it held one: after the watcher stopped the server and looked through the
    /// processes ([`Settings::certificate_delay`]).
    pub fn certify_death(&mut self, node: usize, grant: Option<crate::agent::Grant>, incarnation: u64) {
        let Some(grant) = grant else { return };
        let token = grant.token;
        let (low, high) = self.settings.certificate_delay;
        let after = self.rng.between(low, high);
        let until = self.now() + after + 10_000;
        self.scheduler.after(after, Event::Certificate { node, token, incarnation, until });
    }

    /// A certificate reaches the store through a peer reachable from `node` that reaches the store, if
    /// the store has a Raft leader; otherwise it is offered again 100 ms later, until `until`.
    fn certificate(&mut self, node: usize, token: FencingToken, incarnation: u64, until: Millis) {
        let relayed = (0..self.nodes.len()).any(|peer| {
            peer != node
                && self.nodes[peer].alive
                && !self.cut(Endpoint::Node(node), Endpoint::Node(peer))
                && !self.cut(Endpoint::Node(peer), Endpoint::Store)
        });
        if self.store_down_until > self.now() || !relayed {
            if self.now() + 100 < until {
                self.scheduler.after(100, Event::Certificate { node, token, incarnation, until });
            }
            return;
        }
        let before = self.store.leader();
        let (answer, timers, _) = self.store.apply(&member(node), Op::ReleaseDead(token, incarnation));
        debug_assert!(timers.is_empty(), "a release starts no timer");
        let name = member(node);
        self.note(format!(
            "store: {name}'s death certificate for lease {token}, agent {incarnation}: {answer:?}"
        ));
        if self.store.leader() != before {
            self.certified += 1;
            self.leader_changed();
        }
    }

    fn restart(&mut self, node: usize) {
        let incarnation = self.serial();
        let n = &mut self.nodes[node];
        n.alive = true;
        n.agent = Agent::new(member(node), incarnation);
        self.note(format!("{}: agent started", member(node)));
        self.start_cycle(node);
    }
}

/// Replication and acknowledgement happen this often.
const TICK: Millis = 50;

/// The name of node `i`.
pub fn member(i: usize) -> MemberName {
    // A valid name by construction: "node" and a number.
    MemberName::new(format!("node{}", i + 1)).expect("valid member name")
}

/// The node whose agent process handles `event`, if it is one of its own.
fn agent_event(event: &Event) -> Option<usize> {
    match event {
        Event::Wake { node, .. }
        | Event::Answer { node, .. }
        | Event::Timeout { node, .. }
        | Event::LeaderChanged { node }
        | Event::JobStep { node, .. } => Some(*node),
        _ => None,
    }
}

impl Node {
    /// Its data, while its server runs.
    pub fn data_if_running(&self) -> Option<&Data> {
        self.db.data.as_ref().filter(|_| self.db.process != crate::database::Process::Stopped)
    }
}
