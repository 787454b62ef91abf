//! Pushing the write path to HAProxy (`haproxy:` in the configuration): the moment this member's
//! `/primary` answer changes, its agent tells every HAProxy in front of the cluster over the Runtime API,
//! instead of leaving HAProxy to find out at its next health checks (up to `inter × fall` later).
//!
//! What is pushed follows [`SharedStatus::is_leading_primary`], the very predicate `/primary` answers
//! with, so a push never says more than the health check would:
//!
//! - **Leading** (this member runs a writable primary under a valid lease; the HA loop publishes that
//!   only once the promotion returned): every other member's server `health down` with its sessions shut
//!   down, then this member's server `state ready` and `health up`.
//! - **Fenced** (it led and its lease is gone: handed over, fenced, lapsed or released; or it is stepping
//!   down, for a switchover or the agent's shutdown, just before its server stops): its server
//!   `state maint` and its sessions shut down, so that no client goes on writing into it, nor connects to
//!   a server about to refuse it (HAProxy waits a second before it retries a refused connection). Maintenance
//!   is an admin state no health check overrides: a check answered 200 just before the lease ended and
//!   read just after cannot bring the server back.
//! - **Resting** ([`HOLD`] after a fence, and at the agent's start): `state ready` then `health down`,
//!   back under the `/primary` health check (which keeps it down while it does not lead).
//!
//! A push that fails (HAProxy down, the socket unreachable) is logged and tried again every
//! [`RETRY`]; the health checks go on meanwhile, so a lost push costs only speed. The agent owns the
//! admin state of its own server in that backend: an operator's `maint` on it is undone at the next push.

use crate::config::{HaproxyConfig, RuntimeApi};
use crate::status::SharedStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use vigil_api::StatusSource;

/// How long one Runtime API call may take, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a fenced member's server stays in maintenance before it goes back under the health check:
/// longer than any check in flight at the fence may take to be read (`timeout check`, 2 s in the example).
pub const HOLD: Duration = Duration::from_secs(3);
/// How soon a failed push is tried again.
pub const RETRY: Duration = Duration::from_secs(1);
/// How long the pushers may take to tell HAProxy about the agent's shutdown.
const AT_SHUTDOWN: Duration = Duration::from_secs(2);

/// What was last pushed about this member's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pushed {
    /// Ready and up: it takes the writes.
    Leading,
    /// In maintenance since then.
    Fenced(Instant),
    /// Under the health check, marked down.
    Resting,
}

/// The next push, if one is due: `leading` is what `/primary` answers now, `lease` whether this member
/// still holds a valid lease, `last` what was pushed last (`None`: nothing yet, or the last push failed
/// before anything was pushed). A leader that still holds its lease is not fenced by a push: a passing
/// look at its server that found no answer is for the health checks (and their `fall`) to judge.
fn next_push(leading: bool, lease: bool, last: Option<Pushed>, now: Instant) -> Option<Pushed> {
    match (leading, last) {
        (true, Some(Pushed::Leading)) => None,
        (true, _) => Some(Pushed::Leading),
        (false, Some(Pushed::Leading)) if lease => None,
        (false, Some(Pushed::Leading)) => Some(Pushed::Fenced(now)),
        (false, Some(Pushed::Fenced(at))) if now.saturating_duration_since(at) >= HOLD => {
            Some(Pushed::Resting)
        }
        (false, Some(_)) => None,
        (false, None) => Some(Pushed::Resting),
    }
}

/// The Runtime API commands for `push`, one line: `me` is this member's server, `others` the other
/// members' servers, all in `backend`.
fn commands(push: Pushed, backend: &str, me: &str, others: &[String]) -> String {
    let mine = format!("{backend}/{me}");
    match push {
        Pushed::Leading => {
            let others = others.iter().filter(|o| o.as_str() != me);
            let down: String = others
                .map(|o| {
                    format!("set server {backend}/{o} health down; shutdown sessions server {backend}/{o}; ")
                })
                .collect();
            format!("{down}set server {mine} state ready; set server {mine} health up\n")
        }
        Pushed::Fenced(_) => format!("set server {mine} state maint; shutdown sessions server {mine}\n"),
        Pushed::Resting => format!("set server {mine} state ready; set server {mine} health down\n"),
    }
}

/// Sends one line of commands to the Runtime API at `api` and returns its answer (empty when every
/// command succeeded), within [`CALL_TIMEOUT`].
pub async fn call(api: &RuntimeApi, line: &str) -> Result<String, String> {
    let exchange = async {
        match api {
            RuntimeApi::Unix(path) => exchange(tokio::net::UnixStream::connect(path).await?, line).await,
            RuntimeApi::Tcp(addr) => exchange(tokio::net::TcpStream::connect(addr).await?, line).await,
        }
    };
    match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

/// Writes `line`, then reads the answer until HAProxy closes the connection (it does after one line).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, line: &str) -> std::io::Result<String> {
    stream.write_all(line.as_bytes()).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).trim().to_owned())
}

/// The tasks that push this member's state to each HAProxy, stopped by [`Pushers::stop`].
pub struct Pushers {
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// The names of the cluster's members as the store shows them, read at each push.
pub type Members = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

impl Pushers {
    /// Starts one pusher per Runtime API of `config`, for member `me`, following `status`; `members`
    /// names the cluster's members (this one may be among them).
    pub fn spawn(config: &HaproxyConfig, me: &str, status: Arc<SharedStatus>, members: Members) -> Pushers {
        let (stop, stopped) = watch::channel(false);
        let tasks = config
            .addresses()
            .into_iter()
            .map(|api| {
                let pusher = Pusher {
                    api,
                    config: config.clone(),
                    me: me.to_owned(),
                    status: status.clone(),
                    members: members.clone(),
                };
                tokio::spawn(pusher.run(stopped.clone()))
            })
            .collect();
        Pushers { tasks, stop }
    }

    /// Pushes the last state (the agent's shutdown fenced it, or it rests) and ends the pushers, within
    /// [`AT_SHUTDOWN`].
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(AT_SHUTDOWN, task).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// One HAProxy's pusher.
struct Pusher {
    api: RuntimeApi,
    config: HaproxyConfig,
    me: String,
    status: Arc<SharedStatus>,
    members: Members,
}

impl Pusher {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut changes = self.status.changes();
        // Nothing is pushed before the HA loop has published its first status: until then it is unknown.
        if changes.wait_for(|n| *n > 0).await.is_err() {
            return;
        }
        let (mut last, mut failing) = (None, false);
        loop {
            let stopping = *stop.borrow();
            let (leading, lease) = (self.status.is_leading_primary(), self.status.lease_remaining());
            let mut retry = None;
            // A primary stepping down leaves at once, lease or not: its server is about to stop.
            let held = lease.is_some() && !self.status.is_stopping();
            if let Some(push) = next_push(leading, held, last, Instant::now()) {
                match self.push(push).await {
                    Ok(()) => (last, failing) = (Some(push), false),
                    Err(e) => {
                        match failing {
                            false => {
                                tracing::warn!(api = %self.api, error = %e, "HAProxy not told: trying again every second (its health checks go on)")
                            }
                            true => tracing::debug!(api = %self.api, error = %e, "HAProxy still not told"),
                        }
                        (failing, retry) = (true, Some(RETRY));
                    }
                }
            }
            if stopping {
                return;
            }
            // Woken by a change, when the lease would lapse, when the hold ends, or to try again.
            let hold = match last {
                Some(Pushed::Fenced(at)) => Some(HOLD.saturating_sub(at.elapsed())),
                _ => None,
            };
            let wake = [lease, hold, retry].into_iter().flatten().min().unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = stop.changed() => {}
                _ = tokio::time::sleep(wake) => {}
            }
        }
    }

    /// Pushes `push`; an answer other than silence is logged, not retried (it would answer the same).
    async fn push(&self, push: Pushed) -> Result<(), String> {
        let others: Vec<String> = match push {
            Pushed::Leading => {
                let members = (self.members)();
                let named = self.config.servers.keys().cloned();
                let mut names: Vec<String> =
                    members.into_iter().chain(named).filter(|m| *m != self.me).collect();
                names.sort();
                names.dedup();
                names.iter().map(|m| self.config.server_of(m).to_owned()).collect()
            }
            _ => Vec::new(),
        };
        let me = self.config.server_of(&self.me);
        let line = commands(push, &self.config.backend, me, &others);
        let started = Instant::now();
        let answer = call(&self.api, &line).await?;
        let state = match push {
            Pushed::Leading => "ready",
            Pushed::Fenced(_) => "maint",
            Pushed::Resting => "under its health check",
        };
        let ms = started.elapsed().as_millis() as u64;
        match answer.is_empty() {
            true => {
                tracing::info!(api = %self.api, backend = %self.config.backend, server = me, state, duration_ms = ms, "HAProxy told")
            }
            false => {
                tracing::warn!(api = %self.api, backend = %self.config.backend, server = me, state, %answer, "HAProxy answered with an error")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_ready_only_while_leading_and_held_in_maintenance_after() {
        let t0 = Instant::now();
        assert_eq!(next_push(false, false, None, t0), Some(Pushed::Resting), "at start: under the check");
        assert_eq!(next_push(true, true, Some(Pushed::Resting), t0), Some(Pushed::Leading));
        assert_eq!(next_push(true, true, Some(Pushed::Leading), t0), None);
        let leading = Some(Pushed::Leading);
        assert_eq!(next_push(false, true, leading, t0), None, "lease held: the checks judge a passing look");
        assert_eq!(next_push(false, false, leading, t0), Some(Pushed::Fenced(t0)), "lease gone: at once");
        let fenced = Some(Pushed::Fenced(t0));
        assert_eq!(next_push(false, false, fenced, t0 + HOLD / 2), None, "held in maintenance");
        assert_eq!(next_push(false, false, fenced, t0 + HOLD), Some(Pushed::Resting));
        assert_eq!(
            next_push(true, true, fenced, t0 + HOLD / 2),
            Some(Pushed::Leading),
            "leading again: at once"
        );
    }

    #[test]
    fn the_new_primary_marks_the_others_down_before_itself_up() {
        let others = ["node2".to_owned(), "node1".to_owned()];
        let line = commands(Pushed::Leading, "primary", "node1", &others);
        assert_eq!(
            line,
            "set server primary/node2 health down; shutdown sessions server primary/node2; \
             set server primary/node1 state ready; set server primary/node1 health up\n"
        );
        let fenced = commands(Pushed::Fenced(Instant::now()), "primary", "node1", &[]);
        assert_eq!(fenced, "set server primary/node1 state maint; shutdown sessions server primary/node1\n");
        let resting = commands(Pushed::Resting, "primary", "node1", &[]);
        assert_eq!(resting, "set server primary/node1 state ready; set server primary/node1 health down\n");
    }
}
