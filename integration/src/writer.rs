//! A client that inserts rows `0, 1, 2, …` into `t (id bigint)` continuously, reconnecting after any error,
//! and records every acknowledged commit: the evidence for "no acknowledged write was lost".

use crate::agents::PASSWORD;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::NoTls;

/// The bound on one write attempt (connect, authenticate, insert).
const ATTEMPT: Duration = Duration::from_secs(3);

/// One acknowledged insert: the row's id, the PostgreSQL port that committed it, the fencing token it
/// committed under, and when.
#[derive(Clone, Copy, Debug)]
pub struct Ack {
    /// The row's id.
    pub id: i64,
    /// `inet_server_port()` of the server that committed it.
    pub server_port: u16,
    /// The server's `vigil.fencing_token`, read in the insert (`None` before any was set).
    pub token: Option<u64>,
    /// When the commit was acknowledged.
    pub at: Instant,
}

/// One failed write attempt: when it ended and why (its outcome is unknown; its id is never reused).
#[derive(Clone, Debug)]
pub struct Failure {
    /// When the attempt ended.
    pub at: Instant,
    /// The error, or that the attempt timed out.
    pub error: String,
}

/// A running writer.
pub struct Writer {
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Failure>>,
}

impl Writer {
    /// Starts writing through `hosts` (`host=… port=…` and any other libpq keywords, e.g. a multi-host
    /// list with `target_session_attrs=read-write`), as the test superuser.
    pub fn start(hosts: &str) -> Writer {
        Writer::paced(Duration::ZERO, hosts)
    }

    /// [`start`](Self::start), pausing `pace` after each acknowledged insert.
    pub fn paced(pace: Duration, hosts: &str) -> Writer {
        let hosts = hosts.to_owned();
        let acks = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(write(hosts, pace, acks.clone(), stop.clone()));
        Writer { acks, stop, task }
    }

    /// Starts writing through `127.0.0.1:port` (e.g. HAProxy's read-write port).
    pub fn on_port(port: u16) -> Writer {
        Writer::start(&format!("host=127.0.0.1 port={port}"))
    }

    /// The commits acknowledged so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.acks.lock().expect("acks").clone()
    }

    /// How many commits were acknowledged so far.
    pub fn count(&self) -> usize {
        self.acks.lock().expect("acks").len()
    }

    /// Waits up to `timeout` until `more` commits beyond those acknowledged so far are acknowledged.
    pub async fn more(&self, more: usize, timeout: Duration) {
        let target = self.count() + more;
        let what = format!("{more} more acknowledged writes");
        crate::wait_for(&what, timeout, || async { (self.count() >= target).then_some(()) }).await
    }

    /// Waits up to `timeout` for the first acknowledged commit `pick` accepts (`what` names it); returns
    /// when it was acknowledged.
    pub async fn first(&self, what: &str, timeout: Duration, pick: impl Fn(&Ack) -> bool) -> Instant {
        crate::wait_for(what, timeout, || async { self.acks().iter().find(|a| pick(a)).map(|a| a.at) }).await
    }

    /// Stops writing; returns every acknowledged commit and every failed attempt.
    pub async fn stop(self) -> (Vec<Ack>, Vec<Failure>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.expect("writer task");
        let acks = self.acks.lock().expect("acks").clone();
        (acks, failures)
    }
}

/// The ids of the rows in `t` on node `i` of `cluster` (to look every acknowledged insert up).
pub async fn rows_on(cluster: &crate::agents::AgentCluster, i: usize) -> std::collections::BTreeSet<i64> {
    let rows = cluster.query(i, "SELECT id FROM t").await.expect("read the rows");
    rows.iter().map(|id| id.parse().expect("an id")).collect()
}

/// A superuser connection through `hosts` (libpq keywords, as for [`Writer::start`]).
pub async fn connect(hosts: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conninfo = format!("{hosts} user=postgres password={PASSWORD} dbname=postgres connect_timeout=2");
    let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The server's message, or the error with its causes.
pub fn pg_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_owned();
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    for _ in 0..4 {
        let Some(s) = source else { break };
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// One write: the row, and where and under which fencing token it was committed.
const INSERT: &str = "INSERT INTO t (id) VALUES ($1) \
    RETURNING inet_server_port(), NULLIF(current_setting('vigil.fencing_token', true), '')";

/// The writer's loop; every attempt is bounded by [`ATTEMPT`]. Returns the failed attempts.
async fn write(
    hosts: String,
    pace: Duration,
    acks: Arc<Mutex<Vec<Ack>>>,
    stop: Arc<AtomicBool>,
) -> Vec<Failure> {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut failures = Vec::new();
    let mut id: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let attempt = async {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                client = Some(connect(&hosts).await.map_err(|e| format!("connect: {}", pg_error(&e)))?);
            }
            let c = client.as_ref().expect("connected");
            let row =
                c.query_one(INSERT, &[&id]).await.map_err(|e| format!("insert {id}: {}", pg_error(&e)))?;
            let (server_port, token): (i32, Option<String>) = (row.get(0), row.get(1));
            Ok::<_, String>((server_port as u16, token.and_then(|t| t.parse().ok())))
        };
        let error = match tokio::time::timeout(ATTEMPT, attempt).await {
            Ok(Ok((server_port, token))) => {
                acks.lock().expect("acks").push(Ack { id, server_port, token, at: Instant::now() });
                if !pace.is_zero() {
                    tokio::time::sleep(pace).await;
                }
                None
            }
            Ok(Err(error)) => Some(error),
            Err(_) => Some(format!("insert {id}: no answer in {ATTEMPT:?}")),
        };
        if let Some(error) = error {
            failures.push(Failure { at: Instant::now(), error });
            client = None;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A failed insert may have committed or not: never reuse its id.
        id += 1;
    }
    failures
}
