//! The workload: clients that insert `(client, seq, token)` rows, reading the fencing token (and the
//! server's address and timeline) in the same statement ([`Session::insert`], one per engine), and
//! record every acknowledged insert.
//!
//! A client keeps writing to the server it is connected to as long as that server accepts; on any error
//! (refused, read-only, timed out) it drops the connection and tries the next node. So a deposed primary
//! that still accepts writes gets them: the checker's job is to catch that.

use super::checker::Ack;
use super::engine::{Engine, Session};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// At most one insert (or connection attempt) per client this often.
const PACE: Duration = Duration::from_millis(20);
/// How long one connection attempt or insert may take.
const ATTEMPT: Duration = Duration::from_secs(2);

/// Running clients.
pub struct Workload {
    acks: Arc<Mutex<Vec<Ack>>>,
    attempts: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts `clients` clients writing to the `engine` servers at `hosts` (addresses), until stopped or
    /// `until`; times are measured from `epoch`.
    pub fn start(
        engine: Engine,
        hosts: Vec<String>,
        clients: u32,
        epoch: Instant,
        until: Instant,
    ) -> Workload {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|id| {
                let client = Client { id, engine, hosts: hosts.clone(), epoch, until };
                tokio::spawn(client.run(acks.clone(), attempts.clone(), stop.clone()))
            })
            .collect();
        Workload { acks, attempts, stop, tasks }
    }

    /// The acknowledged writes so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().expect("acks").clone()
    }

    /// Stops the clients; returns every acknowledged write and how many inserts were tried.
    pub async fn stop(mut self) -> (Vec<Ack>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for task in &mut self.tasks {
            let _ = task.await;
        }
        let attempts = *self.attempts.lock().expect("attempts");
        (self.acks(), attempts)
    }
}

struct Client {
    id: u32,
    engine: Engine,
    hosts: Vec<String>,
    epoch: Instant,
    until: Instant,
}

impl Client {
    async fn run(self, acks: Arc<Mutex<Vec<Ack>>>, attempts: Arc<Mutex<u64>>, stop: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(PACE);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let max_ticks =
            self.until.saturating_duration_since(Instant::now()).as_millis() / PACE.as_millis() + 1;
        let mut target = self.id as usize % self.hosts.len();
        let mut session: Option<Session> = None;
        let mut seq: u64 = 0;
        for _ in 0..max_ticks {
            if stop.load(Ordering::SeqCst) || Instant::now() >= self.until {
                break;
            }
            tick.tick().await;
            if session.is_none() {
                match tokio::time::timeout(ATTEMPT, self.engine.open(&self.hosts[target])).await {
                    Ok(Ok(s)) => session = Some(s),
                    _ => {
                        target = (target + 1) % self.hosts.len();
                        continue;
                    }
                }
            }
            let Some(s) = &mut session else { continue };
            seq += 1;
            *attempts.lock().expect("attempts") += 1;
            let start = self.epoch.elapsed();
            match tokio::time::timeout(ATTEMPT, s.insert(self.id, seq)).await {
                Ok(Ok(written)) => {
                    let end = self.epoch.elapsed();
                    if let Some(w) = written {
                        let (token, node, timeline) = (w.token, w.node, w.timeline);
                        let ack = Ack { client: self.id, seq, start, end, token, node, timeline };
                        acks.lock().expect("acks").push(ack);
                    }
                }
                _ => {
                    session = None;
                    target = (target + 1) % self.hosts.len();
                }
            }
        }
    }
}
