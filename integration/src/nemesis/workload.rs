//! The workload: clients that insert `(client, seq, token)` rows, reading the fencing token (and the
//! server's address and timeline) in the same statement, and record every acknowledged insert.
//!
//! A client keeps writing to the server it is connected to as long as that server accepts; on any error
//! (refused, read-only, timed out) it drops the connection and tries the next node. So a deposed primary
//! that still accepts writes gets them: the checker's job is to catch that.

use super::checker::Ack;
use crate::agents::PASSWORD;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// The table, created on the first primary before the clients start.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS nemesis_writes \
    (client int, seq bigint, token text, node text, timeline int, PRIMARY KEY (client, seq))";

/// Every row's key, read from the final primary.
pub const SELECT_KEYS: &str = "SELECT client || ' ' || seq FROM nemesis_writes";

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
    /// Starts `clients` clients writing to `hosts` (PostgreSQL `host:port`), until stopped or `until`;
    /// times are measured from `epoch`.
    pub fn start(hosts: Vec<String>, clients: u32, epoch: Instant, until: Instant) -> Workload {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|id| {
                let client = Client { id, hosts: hosts.clone(), epoch, until };
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
    hosts: Vec<String>,
    epoch: Instant,
    until: Instant,
}

/// An open connection; its connection task ends with it.
struct Session {
    client: tokio_postgres::Client,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
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
                match tokio::time::timeout(ATTEMPT, self.open(&self.hosts[target])).await {
                    Ok(Ok(s)) => session = Some(s),
                    _ => {
                        target = (target + 1) % self.hosts.len();
                        continue;
                    }
                }
            }
            let Some(s) = &session else { continue };
            seq += 1;
            *attempts.lock().expect("attempts") += 1;
            let start = self.epoch.elapsed();
            match tokio::time::timeout(ATTEMPT, s.client.simple_query(&insert(self.id, seq))).await {
                Ok(Ok(messages)) => {
                    let end = self.epoch.elapsed();
                    if let Some(ack) = parse_ack(self.id, seq, start, end, &messages) {
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

    async fn open(&self, host: &str) -> Result<Session, tokio_postgres::Error> {
        let (host, port) = host.rsplit_once(':').unwrap_or((host, "5432"));
        let conn = format!(
            "host={host} port={port} user=postgres password={PASSWORD} dbname=postgres connect_timeout=2"
        );
        let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Session { client, task })
    }
}

/// One insert that reads, in the same statement, the fencing token (NULL until the agent sets one), the
/// server's address and its timeline (from the current WAL file's name; fails on a replica).
fn insert(client: u32, seq: u64) -> String {
    format!(
        "INSERT INTO nemesis_writes (client, seq, token, node, timeline) \
         SELECT {client}, {seq}, NULLIF(current_setting('vigil.fencing_token', true), ''), \
         host(inet_server_addr()), ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int \
         RETURNING coalesce(token, ''), node, timeline"
    )
}

fn parse_ack(
    client: u32,
    seq: u64,
    start: Duration,
    end: Duration,
    messages: &[SimpleQueryMessage],
) -> Option<Ack> {
    let row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })?;
    Some(Ack {
        client,
        seq,
        start,
        end,
        token: row.get(0).and_then(|t| t.trim().parse().ok()),
        node: row.get(1)?.to_owned(),
        timeline: row.get(2)?.parse().ok()?,
    })
}
