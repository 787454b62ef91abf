//! The database dies with its agent, and says so. A small watcher process (`vigil lifeline`) holds the
//! read end of a pipe whose write end only the agent has (close-on-exec, so neither the server nor its
//! tools inherit it). When the agent dies — kill -9, OOM, a crash — the kernel closes the pipe, and the
//! watcher ends the server at once, as its engine's adapter says (PostgreSQL: immediate shutdown, then
//! SIGKILL; MariaDB: SIGKILL). So a dead agent cannot leave a primary taking writes without a lease. In
//! pause mode the agent disarms the watcher: maintenance keeps the database running.
//!
//! **The death certificate.** The agent also tells the watcher the token of the lease grant it holds,
//! its own process's number (its store node's incarnation), the peers' REST URLs and how to call them. When the pipe
//! closes while armed and a grant is held, the watcher makes sure the agent process has exited and that
//! no process of the data directory is left ([`leftovers::clear`]), then sends `POST /death` to the peers,
//! which release that grant at once, if that agent process still holds it, instead of waiting for the
//! lease to expire (see ARCHITECTURE.md, "Confirmed death").
//!
//! The pipe carries single bytes ([`ARM`], [`DISARM`]) and JSON lines (a [`Notice`] each, starting with
//! `{`). The agent's end never blocks: a notice the pipe has no room for is dropped (logged), and told
//! again with the next change; a certificate of an older grant is refused by the store (the lease then
//! expires as usual).

use super::leftovers;
use crate::db::Engine;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The byte that arms the watcher (the default).
const ARM: u8 = b'A';
/// The byte that disarms it.
const DISARM: u8 = b'D';
/// How long the watcher waits for its agent to have exited once the pipe closed.
const EXIT_WITHIN: Duration = Duration::from_secs(1);
/// How long each peer gets to answer the certificate.
const PEER_TIMEOUT: Duration = Duration::from_millis(800);
/// How long the certificate is offered again while no peer can take it (longer than a lease's ttl).
const CERTIFY_WITHIN: Duration = Duration::from_secs(10);
/// How long between two offers.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// What the agent tells its watcher, one JSON line each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    /// Who this member is and how to call the peers' REST API.
    Access(PeerAccess),
    /// The token of the lease grant the agent holds (`None`: none).
    Lease(Option<u64>),
    /// The peers' REST API URLs (their `api_url`).
    Peers(Vec<String>),
}

/// This member's name and agent process, and what calling the peers' REST API takes:
/// `restapi.authentication` (peers of a cluster share it) and the client TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAccess {
    /// The member name.
    pub member: String,
    /// The agent process's number (its store node's incarnation).
    pub incarnation: u64,
    /// Basic-auth user name and password, if the REST API wants them.
    pub auth: Option<(String, String)>,
    /// CA file to verify the peers' certificates with.
    pub cacert: Option<PathBuf>,
    /// Client certificate.
    pub certfile: Option<PathBuf>,
    /// Its key.
    pub keyfile: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure: bool,
}

/// The agent's end of the lifeline; clones share it.
#[derive(Clone)]
pub struct Lifeline(Arc<Mutex<Pipe>>);

struct Pipe {
    child: Child,
    pipe: ChildStdin,
    armed: bool,
    /// The last lease token and peers told, not to repeat them.
    lease: Option<u64>,
    peers: Vec<String>,
}

impl Lifeline {
    /// Starts the watcher for the `engine` server of `data_dir` (this executable, `vigil lifeline`), armed,
    /// in a process group of its own so that a terminal's Ctrl-C does not end it before the agent.
    pub fn spawn(engine: Engine, data_dir: &Path) -> io::Result<Lifeline> {
        let engine_name = engine.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
        let mut child = crate::config::env::withhold(&mut Command::new(std::env::current_exe()?))
            .arg("lifeline")
            .arg("--engine")
            .arg(engine_name)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pipe = child.stdin.take().ok_or_else(|| io::Error::other("no pipe to the lifeline"))?;
        // SAFETY: fcntl(2) on a pipe descriptor this process owns; it only changes the descriptor's flags.
        unsafe {
            let flags = libc::fcntl(pipe.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(pipe.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        tracing::info!(pid = child.id(), data_dir = %data_dir.display(), "lifeline armed: the database stops if the agent dies");
        let pipe = Pipe { child, pipe, armed: true, lease: None, peers: Vec::new() };
        Ok(Lifeline(Arc::new(Mutex::new(pipe))))
    }

    fn pipe(&self) -> std::sync::MutexGuard<'_, Pipe> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms (`true`) or disarms the watcher; logged when it changes.
    pub fn arm(&self, armed: bool) {
        let mut pipe = self.pipe();
        if armed == pipe.armed {
            return;
        }
        match pipe.send(&[if armed { ARM } else { DISARM }]) {
            Ok(()) => {
                pipe.armed = armed;
                let state =
                    if armed { "armed" } else { "disarmed (paused): the database outlives the agent" };
                tracing::info!(pid = pipe.child.id(), "lifeline {state}");
            }
            Err(e) => tracing::error!(pid = pipe.child.id(), error = %e, "lifeline unreachable"),
        }
    }

    /// Tells the watcher who this member is and how to call its peers (once, at start).
    pub fn tell_access(&self, access: PeerAccess) {
        self.pipe().notify(&Notice::Access(access));
    }

    /// Tells the watcher the token of the lease grant held now, when it changed.
    pub fn tell_lease(&self, lease: Option<u64>) {
        let mut pipe = self.pipe();
        if pipe.lease != lease && pipe.notify(&Notice::Lease(lease)) {
            pipe.lease = lease;
        }
    }

    /// Tells the watcher the peers' REST URLs, when they changed.
    pub fn tell_peers(&self, peers: Vec<String>) {
        let mut pipe = self.pipe();
        if pipe.peers != peers && pipe.notify(&Notice::Peers(peers.clone())) {
            pipe.peers = peers;
        }
    }
}

impl Pipe {
    /// Writes `bytes` whole, or nothing (a pipe write of at most `PIPE_BUF` bytes is atomic).
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.pipe.write(bytes)? {
            n if n == bytes.len() => Ok(()),
            n => Err(io::Error::other(format!("{n} of {} bytes written", bytes.len()))),
        }
    }

    /// Sends `notice` as a JSON line; whether it went (a full pipe drops it, logged).
    fn notify(&mut self, notice: &Notice) -> bool {
        let mut line = serde_json::to_vec(notice).unwrap_or_default();
        line.push(b'\n');
        match self.send(&line) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(pid = self.child.id(), error = %e, "lifeline not told: a death certificate would name an older grant");
                false
            }
        }
    }
}

/// What the watcher knows when the pipe closes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Known {
    armed: bool,
    access: Option<PeerAccess>,
    lease: Option<u64>,
    peers: Vec<String>,
}

/// The watcher (`vigil lifeline --engine E --data-dir DIR`): reads `input` until it closes, then, unless
/// disarmed, ends the server of `data_dir`, and certifies the death to the peers when a lease was held.
pub fn watch(engine: Engine, data_dir: &Path, input: impl Read) {
    // SAFETY: getppid(2) has no preconditions. The agent started this process: it is the parent.
    let agent = unsafe { libc::getppid() };
    let known = read_until_close(input);
    let died = Instant::now();
    if !known.armed {
        return;
    }
    match engine {
        Engine::Postgresql => crate::db::postgres::kill::stop_for_lifeline(data_dir),
        Engine::Mariadb => crate::db::mariadb::server::kill_for_lifeline(data_dir),
    }
    let (Some(access), Some(lease)) = (known.access, known.lease) else { return };
    if !agent_exited(agent) {
        eprintln!("vigil lifeline: the agent (pid {agent}) still runs: no death certificate");
        return;
    }
    if let Err(e) = leftovers::clear(data_dir, engine.server_programs()) {
        eprintln!("vigil lifeline: no death certificate: {e}");
        return;
    }
    certify(&access, lease, &known.peers, died);
}

/// Reads `input` until it closes; what it said.
fn read_until_close(input: impl Read) -> Known {
    let mut known = Known { armed: true, access: None, lease: None, peers: Vec::new() };
    let mut input = BufReader::new(input);
    let mut byte = [0u8; 1];
    while let Ok(1) = input.read(&mut byte) {
        match byte[0] {
            ARM => known.armed = true,
            DISARM => known.armed = false,
            b'{' => {
                let mut line = vec![b'{'];
                if input.read_until(b'\n', &mut line).is_err() {
                    break;
                }
                match serde_json::from_slice(&line) {
                    Ok(Notice::Access(access)) => known.access = Some(access),
                    Ok(Notice::Lease(lease)) => known.lease = lease,
                    Ok(Notice::Peers(peers)) => known.peers = peers,
                    // An unreadable notice may have been a lease change: certify nothing.
                    Err(_) => known.lease = None,
                }
            }
            _ => {}
        }
    }
    known
}

/// Whether the agent `pid` has exited (this process was handed to another parent, or the agent is a
/// zombie), waiting up to [`EXIT_WITHIN`]: the pipe closes as the process exits, a moment before that.
fn agent_exited(pid: libc::pid_t) -> bool {
    let deadline = Instant::now() + EXIT_WITHIN;
    loop {
        // SAFETY: getppid(2) has no preconditions.
        let reparented = unsafe { libc::getppid() } != pid;
        if reparented || !leftovers::is_live(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends the certificate of `token`, its agent dead since `died`, to every peer at once (the first to
/// reach the store releases the lease, the others hear that it is no longer that grant); logs what each
/// said.
fn certify(access: &PeerAccess, token: u64, peers: &[String], died: Instant) {
    let (member, incarnation) = (access.member.clone(), access.incarnation);
    let certificate = || {
        let dead_for_ms = u64::try_from(died.elapsed().as_millis()).unwrap_or(u64::MAX);
        vigil_api::DeathCertificate { member: member.clone(), token, incarnation, dead_for_ms }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return eprintln!("vigil lifeline: no death certificate: {e}"),
    };
    let tls = vigil_api::tls::ClientTls {
        cacert: access.cacert.clone(),
        certfile: access.certfile.clone(),
        keyfile: access.keyfile.clone(),
        insecure: access.insecure,
    };
    let auth = access.auth.as_ref().map(|(username, password)| vigil_api::BasicAuth {
        username: username.clone(),
        password: vigil_api::Secret::from(password.clone()),
    });
    runtime.block_on(async {
        let http = match vigil_api::tls::client(&tls, "ctl") {
            Ok(http) => http,
            Err(e) => return eprintln!("vigil lifeline: no death certificate: {e}"),
        };
        let deadline = tokio::time::Instant::now() + CERTIFY_WITHIN;
        loop {
            let mut sends = tokio::task::JoinSet::new();
            for peer in peers {
                let (http, auth, certificate, peer) = (http.clone(), auth.clone(), certificate(), peer.clone());
                sends.spawn(async move {
                    let answer = vigil_api::client::certify_death(
                        &http,
                        &peer,
                        auth.as_ref(),
                        &certificate,
                        PEER_TIMEOUT,
                    )
                    .await;
                    (peer, answer)
                });
            }
            let mut taken = false;
            while let Some(Ok((peer, answer))) = sends.join_next().await {
                match answer {
                    Ok(said) => {
                        taken = true;
                        eprintln!(
                            "vigil lifeline: death certificate of {member} (token {token}, agent {incarnation}) to {peer}: {said}"
                        );
                    }
                    Err(e) => eprintln!("vigil lifeline: death certificate not taken: {e}"),
                }
            }
            // No peer could reach the store (no Raft leader while the group elects one, say): again, until
            // the lease would have expired anyway.
            if taken || tokio::time::Instant::now() + RETRY_AFTER >= deadline {
                return;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(notice: &Notice) -> Vec<u8> {
        let mut line = serde_json::to_vec(notice).expect("json");
        line.push(b'\n');
        line
    }

    #[test]
    fn the_last_byte_before_the_close_decides() {
        assert!(read_until_close(&[][..]).armed);
        assert!(!read_until_close(&[ARM, DISARM][..]).armed);
        assert!(read_until_close(&[DISARM, ARM, b'x'][..]).armed);
    }

    #[test]
    fn the_last_notices_before_the_close_are_what_the_watcher_knows() {
        let access = PeerAccess { member: "node1".into(), incarnation: 3, ..PeerAccess::default() };
        let mut input = line(&Notice::Access(access.clone()));
        input.extend(line(&Notice::Lease(Some(5))));
        input.push(DISARM);
        input.extend(line(&Notice::Peers(vec!["http://127.0.0.1:8009/patroni".into()])));
        input.push(ARM);
        input.extend(line(&Notice::Lease(Some(6))));
        let known = read_until_close(&input[..]);
        assert!(known.armed);
        assert_eq!(known.access, Some(access));
        assert_eq!(known.lease, Some(6));
        assert_eq!(known.peers, vec!["http://127.0.0.1:8009/patroni".to_string()]);

        input.extend(line(&Notice::Lease(None)));
        assert_eq!(read_until_close(&input[..]).lease, None, "a lease given up");
        // A torn or unreadable notice may hide a new grant: none is certified.
        let mut torn = line(&Notice::Lease(Some(6)));
        torn.extend(b"{\"lease\":{\"tok");
        assert_eq!(read_until_close(&torn[..]).lease, None);
    }

    #[test]
    fn a_live_agent_has_not_exited() {
        // This test process is the parent of nothing here; its own pid is alive and not our parent.
        let me = std::process::id() as libc::pid_t;
        // SAFETY: getppid(2) has no preconditions.
        let parent = unsafe { libc::getppid() };
        assert!(!agent_exited(parent), "the parent of this test process runs");
        assert!(agent_exited(me), "not this process's parent: counted as exited (reparented)");
    }

    #[test]
    fn a_missing_server_is_no_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A pid file naming this test process, which is no database server: never signalled.
        std::fs::write(dir.path().join("postmaster.pid"), format!("{}\n", std::process::id()))
            .expect("write");
        std::fs::write(dir.path().join("mysqld.pid"), format!("{}\n", std::process::id())).expect("write");
        for engine in [Engine::Postgresql, Engine::Mariadb] {
            watch(engine, dir.path(), &[][..]);
            watch(engine, &dir.path().join("absent"), &[][..]);
        }
    }
}
