//! Test support for Vigil's integration tests: serving store nodes over real HTTP on 127.0.0.1, and
//! waiting for conditions with a deadline instead of sleeping.

pub mod agents;
pub mod cluster;
pub mod haproxy;
pub mod keepalived;
pub mod kube_api;
pub mod managed;
pub mod mariadb;
pub mod metric_names;
pub mod migration;
pub mod nemesis;
pub mod netns;
pub mod patroni;
pub mod pgbouncer;
pub mod process;
pub mod vigil_cli;
pub mod writer;

use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vigil_api::tls::ServerConfig;

/// An HTTP server serving a router until stopped.
pub struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `router` on `listener`, over TLS with `tls`, as the agent serves it.
    pub fn spawn(
        listener: TcpListener,
        router: Router,
        tls: Option<Arc<ServerConfig>>,
    ) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                () = vigil_api::tls::serve(listener, router, tls) => {}
                _ = stopped => {}
            }
        });
        Ok(Server { addr, stop, task })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and ends every connection.
    pub async fn stop(mut self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task).await.is_err() {
            self.task.abort();
        }
    }
}

/// An example file of the repository (`examples/<path>`), which a test runs as shipped.
pub fn example(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(path)
}

/// Kills (SIGKILL, this PID only) and reaps the child process in `child`, if any.
pub fn kill_child(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Prints the last `lines` lines of `log` on stderr under a `---- title ----` line (for failing tests).
pub fn print_tail(title: &str, log: &str, lines: usize) {
    eprintln!("---- {title} ----");
    let tail: Vec<&str> = log.lines().rev().take(lines).collect();
    for line in tail.into_iter().rev() {
        eprintln!("{line}");
    }
}

/// The first column of every row of a simple query's answer, as text.
pub fn first_column(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs of the code under test, shown for failing tests (`RUST_LOG` selects, default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// `line` without ANSI escape sequences (`ESC [ ... letter`), as the agents' logs may carry them.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
