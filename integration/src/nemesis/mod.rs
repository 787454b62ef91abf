//! A Jepsen-style fault suite: a cluster of real agents and PostgreSQL or MariaDB servers ([`Engine`]),
//! each node in its own network namespace ([`crate::netns`]), clients writing from a client namespace,
//! and a sequence of seeded random faults ([`faults::Kind`], alone or two kinds at once), each healed
//! after its hold time. After every trial the cluster must converge within 30 s (one primary by `GET
//! /primary`, every other node streaming from it, by [`Engine::streams_from`]); at the end the [`checker`] looks for lost
//! acknowledged writes (a failure in synchronous mode, reported in asynchronous mode), writes
//! acknowledged under a stale fencing token, primaries that accepted writes in overlapping intervals and
//! writes acknowledged after another node took the lease (by the final primary's `GET /history`). Each
//! trial whose fault hit the primary is measured: the time from the fault to the first write
//! acknowledged by another node ([`report::Report::downtime_table`]).

pub mod checker;
pub mod engine;
pub mod faults;
pub mod history;
pub mod report;
pub mod rng;
pub mod schedule;
pub mod workload;

pub use engine::Engine;
pub use report::{Downtime, Report};

use crate::agents::{AgentCluster, Placement};
use crate::netns::Topology;
use checker::Ack;
use history::HistoryWatch;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use workload::Workload;

/// How long the cluster has to converge after a fault is healed.
pub const CONVERGENCE: Duration = Duration::from_secs(30);
/// How much longer a run waits for a cluster that did not converge in time before giving up.
const RECOVERY: Duration = Duration::from_secs(90);
/// How long a trial in synchronous mode waits for the primary's synchronous standby.
const SYNC_STANDBY: Duration = Duration::from_secs(15);
/// How long a trial waits for every database server to run (one may be starting again after the
/// previous trial, e.g. a fenced primary), so that a fault aimed at a server finds it.
const SERVERS_UP: Duration = Duration::from_secs(10);
/// How long the first cluster may take to come up.
const STARTUP: Duration = Duration::from_secs(120);
/// The timeout of one probe request (an agent may be stopped: its kernel still accepts connections).
const QUICK: Duration = Duration::from_secs(1);
/// Between two convergence probes.
const POLL: Duration = Duration::from_millis(250);
/// Faults held this long or shorter are blips: a failover after one is a false failover.
const BLIP: Duration = Duration::from_millis(500);
/// Ports inside every node's namespace (each node has its own address; the server's: [`Engine::port`]).
const API_PORT: u16 = 8008;
const RAFT_PORT: u16 = 8300;

/// Why the cluster has not converged.
struct Unconverged {
    /// What was seen last.
    state: String,
    /// The replicas that did not stream from the primary (when there was one).
    replicas: Vec<usize>,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// The database the agents manage.
    pub engine: Engine,
    /// Seeds the fault sequence: the same seed replays the same faults.
    pub seed: u64,
    /// How many faults at most.
    pub trials: usize,
    /// No fault starts after this much time.
    pub duration: Duration,
    /// Synchronous replication (`PATCH /config {"synchronous_mode": "on"}`): lost writes fail the run.
    pub sync: bool,
    /// Cluster size.
    pub nodes: usize,
    /// Concurrent writers.
    pub clients: u32,
    /// The `vigil` binary.
    pub binary: PathBuf,
    /// Where to copy the agents' logs at the end (always when set).
    pub keep_logs: Option<PathBuf>,
    /// The kinds and holds the faults are drawn from.
    pub menu: schedule::Menu,
}

/// Builds the namespaces, runs the suite in the client namespace and tears everything down.
pub fn run(config: &Config) -> Result<Report, String> {
    let net = Topology::create(config.nodes)?;
    println!(
        "nemesis: seed {} ({} trials at most, {:?}), {} nodes in namespaces {}..{}, clients in {}",
        config.seed,
        config.trials,
        config.duration,
        config.nodes,
        net.node_ns(0),
        net.node_ns(config.nodes - 1),
        net.client_ns()
    );
    net.block_on_in_client(|| Suite::run(config, &net))
}

/// A run in progress.
struct Suite<'a> {
    config: &'a Config,
    net: &'a Topology,
    cluster: AgentCluster,
    http: reqwest::Client,
    epoch: Instant,
    /// The wall-clock time of `epoch` (the agents' history is on the wall clock).
    epoch_wall: SystemTime,
    report: Report,
}

impl<'a> Suite<'a> {
    async fn run(config: &'a Config, net: &'a Topology) -> Result<Report, String> {
        let placements = Placement::in_namespaces(net, config.engine.port(), API_PORT, RAFT_PORT);
        let cluster = config.engine.start(config.binary.clone(), &placements, &net.network());
        let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        let report = Report { seed: config.seed, sync: config.sync, ..Report::default() };
        let (epoch, epoch_wall) = (Instant::now(), SystemTime::now());
        let mut suite = Suite { config, net, cluster, http, epoch, epoch_wall, report };
        let result = suite.trials().await;
        suite.keep_logs();
        result.map(|()| suite.report)
    }

    async fn trials(&mut self) -> Result<(), String> {
        let primary = self.converge(STARTUP).await.map_err(|s| format!("no cluster: {}", s.state))?;
        if self.config.sync {
            self.enable_sync(primary).await?;
        }
        let engine = self.config.engine;
        let created = tokio::time::timeout(QUICK * 10, engine.create_table(&self.cluster, primary)).await;
        created
            .map_err(|_| "create table: timed out".to_owned())?
            .map_err(|e| format!("create table: {e}"))?;
        let hosts = (0..self.config.nodes).map(|i| self.net.node_addr(i)).collect();
        (self.epoch, self.epoch_wall) = (Instant::now(), SystemTime::now());
        let until = self.epoch + self.config.duration + RECOVERY * 4;
        let workload = Workload::start(engine, hosts, self.config.clients, self.epoch, until);
        let urls =
            self.cluster.nodes.iter().map(|n| format!("http://{}:{}/history", n.host, n.api_port)).collect();
        let history = HistoryWatch::start(urls, self.http.clone(), self.epoch, until);
        let mut primary = Ok(primary);
        for (t, plan) in
            schedule::plans(self.config.seed, self.config.trials, &self.config.menu).into_iter().enumerate()
        {
            if self.epoch.elapsed() >= self.config.duration {
                println!("nemesis: --duration reached after {t} trials");
                break;
            }
            primary = self.trial(t, plan, *primary.as_ref().expect("converged"), &workload).await;
            if primary.is_err() {
                break;
            }
        }
        let (acks, attempts) = workload.stop().await;
        self.report.attempts = attempts;
        self.order_checks(&acks);
        // A cluster stuck unconverged is a violation; the writes are checked all the same.
        let primary = match primary {
            Ok(_) => self.converge(CONVERGENCE).await.map_err(|s| format!("at the end: {}", s.state)),
            Err(e) => Err(e),
        };
        match primary {
            Ok(primary) => {
                self.lost_check(primary, &acks).await?;
                self.lease_history_check(primary, &acks, &history).await;
                Ok(())
            }
            Err(stuck) => {
                self.report.violations.push(format!("{stuck} (lost writes not checked)"));
                Ok(())
            }
        }
    }

    /// One fault: apply, hold, heal, converge; returns the primary after it.
    async fn trial(
        &mut self,
        t: usize,
        plan: schedule::Plan,
        primary: usize,
        workload: &Workload,
    ) -> Result<usize, String> {
        // In synchronous mode a primary without a synchronous standby may not be replaced: a fault
        // then would measure that, not the failover.
        if self.config.sync && !self.sync_standby(primary, SYNC_STANDBY).await {
            println!(
                "trial {t}: no synchronous standby within {SYNC_STANDBY:?}; applying the fault all the same"
            );
        }
        self.servers_running(SERVERS_UP).await;
        let token_before = self.token(primary).await;
        let mut applied = Vec::new();
        for (kind, salt) in &plan.faults {
            match faults::apply(*kind, *salt, primary, &mut self.cluster, self.net) {
                Ok(fault) => applied.push(fault),
                Err(why) => {
                    println!("trial {t}: {} not applied: {why}", plan.name());
                    self.heal(applied)?;
                    // A fault of several rules may have been applied in part.
                    self.net.heal()?;
                    return Ok(primary);
                }
            }
        }
        let fault_at = self.epoch.elapsed();
        *self.report.kinds.entry(plan.name()).or_insert(0) += 1;
        let what = applied.iter().map(|f| f.what.as_str()).collect::<Vec<_>>().join(" + ");
        let hit_primary = applied.iter().any(|f| f.hit_primary);
        let moves = applied.iter().any(faults::Fault::moves_primary);
        tokio::time::sleep(plan.hold).await;
        self.heal(applied)?;
        let healed = Instant::now();
        let (after, converged) = match self.converge(CONVERGENCE).await {
            Ok(p) => {
                self.report.converged.push(healed.elapsed());
                (p, format!("converged in {:.1} s", healed.elapsed().as_secs_f64()))
            }
            Err(stuck) => {
                self.report.not_converged += 1;
                self.report
                    .violations
                    .push(format!("trial {t} ({what}): not converged within 30 s: {}", stuck.state));
                // Keep the run going: reinitialize the replicas that do not stream (counted above).
                for r in &stuck.replicas {
                    self.reinitialize(*r).await;
                }
                let p = self
                    .converge(RECOVERY)
                    .await
                    .map_err(|s| format!("trial {t} ({what}): stuck: {}", s.state))?;
                (
                    p,
                    format!(
                        "NOT converged in 30 s ({:.1} s, replicas reinitialized)",
                        healed.elapsed().as_secs_f64()
                    ),
                )
            }
        };
        let token_after = self.token(after).await;
        let failover = after != primary || token_after != token_before;
        let downtime = hit_primary.then(|| {
            let old = &self.cluster.nodes[primary].host;
            let time = checker::first_elsewhere(&workload.acks(), old, fault_at, self.epoch.elapsed());
            Downtime { trial: t, name: plan.name(), what: what.clone(), hold: plan.hold, moves, time }
        });
        let elsewhere = match &downtime {
            Some(Downtime { time: Some(time), .. }) => {
                format!(", first write elsewhere after {:.1} s", time.as_secs_f64())
            }
            Some(Downtime { time: None, .. }) => ", no write elsewhere".to_owned(),
            None => String::new(),
        };
        self.report.downtimes.extend(downtime);
        if plan.is_blip() && plan.hold <= BLIP {
            self.report.blips += 1;
            self.report.false_failovers += usize::from(failover);
            if matches!(plan.faults[..], [(faults::Kind::PauseAgent, _)]) {
                self.report.agent_pauses.0 += 1;
                self.report.agent_pauses.1 += usize::from(failover);
            }
        }
        let lost = match self.lost(after, &workload.acks()).await {
            Ok(lost) => format!("{} lost so far", lost.len()),
            // Only a progress figure (the final check counts): the primary may have moved since.
            Err(e) => format!("lost so far not read ({e})"),
        };
        println!(
            "trial {t} at {:.1} s: {what} for {:.1} s: {converged}, primary {} -> {} (token {} -> {}){elsewhere}, \
             {} acked, {lost}",
            fault_at.as_secs_f64(),
            plan.hold.as_secs_f64(),
            self.cluster.nodes[primary].name,
            self.cluster.nodes[after].name,
            token_before.map_or("-".to_owned(), |t| t.to_string()),
            token_after.map_or("-".to_owned(), |t| t.to_string()),
            workload.acks().len(),
        );
        Ok(after)
    }

    /// Heals the faults applied, the last first.
    fn heal(&mut self, applied: Vec<faults::Fault>) -> Result<(), String> {
        applied.into_iter().rev().try_for_each(|fault| faults::heal(fault, &mut self.cluster, self.net))
    }

    /// Check (1): the acknowledged writes missing on the final primary.
    /// A primary that cannot be read (it moved since it was found) is looked for again, twice at most.
    async fn lost_check(&mut self, mut primary: usize, acks: &[Ack]) -> Result<(), String> {
        let mut lost = self.lost(primary, acks).await;
        for _ in 0..2 {
            let Err(e) = &lost else { break };
            println!("nemesis: {e}; looking for the primary again");
            primary = self.converge(CONVERGENCE).await.map_err(|s| format!("at the end: {}", s.state))?;
            lost = self.lost(primary, acks).await;
        }
        let lost = lost?;
        self.report.lost = lost.len();
        for a in lost.iter().take(10) {
            println!("lost acknowledged write: {a}");
        }
        if self.config.sync && !lost.is_empty() {
            self.report.violations.push(format!("{} acknowledged writes lost, e.g. {}", lost.len(), lost[0]));
        }
        Ok(())
    }

    /// Check (3): no write acknowledged after another node took the lease, by the history (`GET
    /// /history`) of the final primary, else of any node, with the times `watch` first saw its entries
    /// when they carry none; not run, saying why, when no node answers.
    async fn lease_history_check(&mut self, primary: usize, acks: &[Ack], watch: &HistoryWatch) {
        let n = self.cluster.nodes.len();
        let mut history = None;
        for i in std::iter::once(primary).chain((0..n).filter(|i| *i != primary)) {
            if let Some((200, body)) = self.cluster.rest_within(i, "/history", QUICK * 5).await {
                history = Some(body);
                break;
            }
        }
        let nodes = &self.cluster.nodes;
        let address = |name: &str| nodes.iter().find(|node| node.name == name).map(|node| node.host.clone());
        let takeovers = history.ok_or_else(|| "no node answered GET /history".to_owned()).and_then(|h| {
            let (seen, fetched) = (watch.first_seen(), self.epoch.elapsed());
            checker::Takeover::from_history(&h, address, self.epoch_wall, &seen, fetched)
        });
        let takeovers = match takeovers {
            Ok(takeovers) => takeovers,
            Err(why) => {
                println!("nemesis: lease-history check NOT run: {why}");
                self.report.lease_history_unchecked = Some(why);
                return;
            }
        };
        self.report.takeovers = takeovers.len();
        let late = checker::after_lease_lost(acks, &takeovers, checker::CLOCK_TOLERANCE);
        self.report.after_lease_lost = late.len();
        for (ack, takeover) in late.iter().take(10) {
            self.report.violations.push(format!(
                "acknowledged after the lease was lost: {ack}, after {} took the lease (token {}) at {:.3} s",
                takeover.node,
                takeover.token,
                takeover.at.as_secs_f64()
            ));
        }
    }

    /// Check (2): stale tokens and overlapping primaries.
    fn order_checks(&mut self, acks: &[Ack]) {
        self.report.acked = acks.len();
        let (stale, without) = checker::stale_tokens(acks);
        self.report.stale_tokens = stale.len();
        self.report.without_token = without;
        for (late, earlier) in stale.iter().take(10) {
            self.report.violations.push(format!("stale token: {late} acknowledged after {earlier}"));
        }
        let overlaps = checker::overlapping_reigns(acks);
        self.report.overlaps = overlaps.len();
        for o in &overlaps {
            let (from, to) = (o.window.0.as_secs_f64(), o.window.1.as_secs_f64());
            self.report.violations.push(format!(
                "overlapping primaries: {} timeline {} accepted writes from {from:.3} s to {to:.3} s, and {} in between",
                o.reign.0, o.reign.1, o.witness
            ));
        }
    }

    /// The acknowledged writes (sent before now) missing on node `primary`.
    async fn lost(&self, primary: usize, acks: &[Ack]) -> Result<Vec<Ack>, String> {
        let before = self.epoch.elapsed();
        let keys = tokio::time::timeout(QUICK * 10, self.config.engine.keys(&self.cluster, primary))
            .await
            .map_err(|_| "reading the rows: timed out".to_owned())?
            .map_err(|e| format!("reading the rows: {e}"))?;
        let present: HashSet<(u32, u64)> = keys.into_iter().collect();
        Ok(checker::lost(acks, &present, before).into_iter().cloned().collect())
    }

    /// Waits up to `timeout` for one primary with every other node streaming from it; `Err` describes
    /// the last state seen.
    async fn converge(&self, timeout: Duration) -> Result<usize, Unconverged> {
        let deadline = Instant::now() + timeout;
        let rounds = timeout.as_millis() / POLL.as_millis() + 1;
        let mut state = Unconverged { state: "not probed".to_owned(), replicas: Vec::new() };
        for _ in 0..rounds {
            match self.probe().await {
                Ok(primary) => return Ok(primary),
                Err(s) => state = s,
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        Err(state)
    }

    /// One look: the primary's index when converged, else what is wrong.
    async fn probe(&self) -> Result<usize, Unconverged> {
        let mut primaries = Vec::new();
        for i in 0..self.cluster.nodes.len() {
            if matches!(self.cluster.rest_within(i, "/primary", QUICK).await, Some((200, _))) {
                primaries.push(i);
            }
        }
        let [primary] = primaries[..] else {
            let names: Vec<&str> = primaries.iter().map(|i| self.cluster.nodes[*i].name.as_str()).collect();
            return Err(Unconverged {
                state: format!("primaries by /primary: {names:?}"),
                replicas: Vec::new(),
            });
        };
        let mut states = Vec::new();
        let mut replicas = Vec::new();
        for r in (0..self.cluster.nodes.len()).filter(|r| *r != primary) {
            let streams = self.config.engine.streams_from(&self.cluster, r, primary);
            let seen = match tokio::time::timeout(QUICK * 2, streams).await {
                Ok(Ok(())) => continue,
                Ok(Err(seen)) => seen,
                Err(_) => "no answer".to_owned(),
            };
            states.push(format!("{}: {seen}", self.cluster.nodes[r].name));
            replicas.push(r);
        }
        if replicas.is_empty() {
            return Ok(primary);
        }
        let state = format!("primary {}, {}", self.cluster.nodes[primary].name, states.join(", "));
        Err(Unconverged { state, replicas })
    }

    /// `POST /reinitialize {"force": true}` to node `i` (a fresh copy of the primary).
    async fn reinitialize(&self, i: usize) {
        let node = &self.cluster.nodes[i];
        let url = format!("http://{}:{}/reinitialize", node.host, node.api_port);
        let body = serde_json::json!({ "force": true });
        let answer = self.http.post(url).json(&body).timeout(QUICK * 5).send().await;
        let answer = answer.map_or_else(|e| e.to_string(), |r| r.status().to_string());
        println!("nemesis: reinitializing {}: {answer}", node.name);
    }

    /// Node `i`'s fencing token from `GET /patroni`.
    async fn token(&self, i: usize) -> Option<u64> {
        let (_, status) = self.cluster.rest_within(i, "/patroni", QUICK).await?;
        status["vigil"]["fencing_token"].as_u64()
    }

    /// `PATCH /config {"synchronous_mode": "on"}` on the primary.
    async fn enable_sync(&self, primary: usize) -> Result<(), String> {
        let node = &self.cluster.nodes[primary];
        let url = format!("http://{}:{}/config", node.host, node.api_port);
        let body = serde_json::json!({ "synchronous_mode": "on" });
        let response = self
            .http
            .patch(url)
            .json(&body)
            .timeout(QUICK * 5)
            .send()
            .await
            .map_err(|e| format!("PATCH /config: {e}"))?;
        let code = response.status();
        let text = response.text().await.unwrap_or_default();
        if !code.is_success() {
            return Err(format!("synchronous mode refused by the agents: {code} {text}"));
        }
        // Faults start once a synchronous standby is in force.
        if self.sync_standby(primary, STARTUP).await {
            return Ok(());
        }
        Err(format!("no synchronous standby within {STARTUP:?} of enabling synchronous mode"))
    }

    /// Waits up to `timeout` for every node's database server to run (past it, the trial goes on: a
    /// fault that needs a server then says it was not applied).
    async fn servers_running(&self, timeout: Duration) {
        let rounds = timeout.as_millis() / POLL.as_millis();
        for _ in 0..rounds {
            if (0..self.cluster.nodes.len()).all(|i| self.cluster.server_pid(i).is_some()) {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to `timeout` for a synchronous standby of `primary` (`GET /sync` 200 on a replica);
    /// whether there is one.
    async fn sync_standby(&self, primary: usize, timeout: Duration) -> bool {
        let rounds = timeout.as_millis() / POLL.as_millis();
        for _ in 0..rounds {
            for i in (0..self.cluster.nodes.len()).filter(|i| *i != primary) {
                if matches!(self.cluster.rest_within(i, "/sync", QUICK).await, Some((200, _))) {
                    return true;
                }
            }
            tokio::time::sleep(POLL).await;
        }
        false
    }

    /// Copies the agents' logs to `keep_logs`, when set.
    fn keep_logs(&self) {
        let Some(dir) = &self.config.keep_logs else { return };
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("nemesis: {}: {e}", dir.display());
            return;
        }
        for i in 0..self.cluster.nodes.len() {
            let name = &self.cluster.nodes[i].name;
            let agent = std::fs::write(dir.join(format!("{name}-agent.log")), self.cluster.plain_log(i));
            let engine = self.config.engine;
            let server_log = engine.server_log(&self.cluster, i);
            let server = std::fs::copy(&server_log, dir.join(format!("{name}-{}.log", engine.name())));
            if let Err(e) = agent.and(server.map(drop)) {
                eprintln!("nemesis: logs of {name}: {e}");
            }
        }
        println!("nemesis: agent logs in {}", dir.display());
    }
}
