//! Benchmarks of the cluster store on a 3-node group over real HTTP on 127.0.0.1.
//!
//! What it measures, in this order, printing one Markdown table per part to stdout (logs go to stderr):
//!
//! 1. **Disk**: latency of a 4 KiB overwrite plus `fdatasync`, and of a 4 KiB append plus `fsync`, in the
//!    temp directory: the floor under every Raft write.
//! 2. **Lease renew latency**: one acquire, then `--renews` sequential `renew_lease` calls on a Raft
//!    follower (forwarded to the leader over HTTP) and as many on the Raft leader; p50/p90/p99/max.
//! 3. **Linearizable read latency**: `--reads` sequential `read()` calls on a follower.
//! 4. **Write throughput**: `put` of a small JSON value (`Condition::Always`) on the leader by each count
//!    of concurrent writers in `--writers`, for `--write-secs` seconds each.
//! 5. **Idle cost**: the three nodes as separate `vigil-dcs-node` processes; CPU time (utime + stime from
//!    `/proc/<pid>/stat`) over `--idle-secs` seconds of heartbeats only, then over as many seconds with one
//!    lease renewal per second sent to a follower; RSS (`VmRSS`) at the end.
//!
//! `--security` chooses how the in-process nodes authenticate each other: `tls` (mutual TLS with a
//! throwaway CA, the default, as `vigil demo` runs), `password` (`raft.password` signatures) or `plain`.
//!
//! Parts 2 to 4 run the three nodes inside this process (one tokio runtime), part 5 as child processes.
//! Data directories are temporary directories under `$TMPDIR` (default `/tmp`), removed at the end; every
//! child process is killed when the bench ends, fails, hits `--max-secs` or gets Ctrl-C.
//!
//! Run it from a release build:
//!
//! ```text
//! cargo build --release -p vigil-integration --bins
//! target/release/vigil-dcs-bench            # defaults: 2000 renews, writers 1,16 for 5 s, 30 s idle
//! target/release/vigil-dcs-bench --help
//! ```

use clap::Parser;
use serde_json::json;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::{Instant, MissedTickBehavior};
use vigil_dcs::{Condition, DcsConfig, DcsError, DcsNode, Key, MemberName, NodeId, RaftSecurity, RaftTls};
use vigil_integration::cluster::PATIENCE;
use vigil_integration::process::ProcessCluster;
use vigil_integration::{wait_for, Server};

#[derive(Debug, Parser)]
#[command(about = "Latency, throughput and idle cost of the Vigil cluster store on 127.0.0.1")]
struct Args {
    /// Sequential lease renewals measured on the follower, and again on the leader.
    #[arg(long, default_value_t = 2000)]
    renews: usize,
    /// Sequential linearizable reads measured on a follower.
    #[arg(long, default_value_t = 1000)]
    reads: usize,
    /// Counts of concurrent writers for the throughput runs, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    writers: Vec<usize>,
    /// Length of each throughput run, in seconds.
    #[arg(long, default_value_t = 5)]
    write_secs: u64,
    /// Length of each idle-cost window (heartbeats only, then one renewal per second), in seconds.
    #[arg(long, default_value_t = 30)]
    idle_secs: u64,
    /// Synced 4 KiB writes of each kind in the disk probe.
    #[arg(long, default_value_t = 200)]
    fsyncs: usize,
    /// Skip the idle-cost part (which needs the `vigil-dcs-node` binary).
    #[arg(long)]
    no_processes: bool,
    /// The `vigil-dcs-node` binary; default: the one next to this binary.
    #[arg(long)]
    node_binary: Option<PathBuf>,
    /// How the in-process nodes authenticate each other.
    #[arg(long, value_enum, default_value_t = Security::Tls)]
    security: Security,
    /// Give up, cleaning up, after this many seconds in all.
    #[arg(long, default_value_t = 900)]
    max_secs: u64,
}

/// `--security`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Security {
    /// Plain HTTP, no authentication.
    Plain,
    /// Mutual TLS.
    Tls,
    /// HMAC signatures with a shared password.
    Password,
}

/// Renewals (or reads) made before measuring, to open connections and warm caches.
const WARMUP: usize = 20;
/// The lease's time to live in every part.
const TTL: Duration = Duration::from_secs(10);
/// The lease holder's name.
const HOLDER: &str = "pg-bench";

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let limit = Duration::from_secs(args.max_secs);
    // Dropping `run` on timeout or Ctrl-C drops its clusters: child processes are killed, data removed.
    let outcome = tokio::select! {
        result = tokio::time::timeout(limit, run(&args)) => {
            result.unwrap_or_else(|_| Err(format!("gave up after {limit:?} (--max-secs)")))
        }
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-dcs-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    println!("# vigil-dcs-bench\n");
    println!("{}\n", machine());
    println!("Raft transport: {:?}.\n", args.security);
    section("Disk: 4 KiB write + sync in the temp directory", disk_probe(args.fsyncs)).await?;
    let group = Group::start(3, args.security).await?;
    let outcome = store_parts(&group, args).await;
    group.shutdown().await;
    outcome?;
    if !args.no_processes {
        let binary = match &args.node_binary {
            Some(path) => path.clone(),
            None => node_binary_next_to_me()?,
        };
        section(
            "Idle cost: three node processes, one renewal per second",
            idle_cost(&binary, args.idle_secs),
        )
        .await?;
    }
    Ok(())
}

/// Parts 2 to 4, on the in-process group.
async fn store_parts(group: &Group, args: &Args) -> Result<(), String> {
    section("Lease renew and linearizable read latency", latencies(group, args.renews, args.reads)).await?;
    let throughput = throughput(group, &args.writers, Duration::from_secs(args.write_secs));
    section("Write throughput on the Raft leader", throughput).await
}

/// Prints a section's heading, then its table followed by the load average before and after.
async fn section(title: &str, part: impl Future<Output = Result<String, String>>) -> Result<(), String> {
    println!("## {title}\n");
    let before = load_average();
    let table = part.await?;
    println!("{table}\n_Load average (1, 5, 15 min): before {before}, after {}._\n", load_average());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// The in-process group.

/// Three store nodes in this process, each behind its own HTTP server on 127.0.0.1.
struct Group {
    _dir: tempfile::TempDir,
    nodes: BTreeMap<NodeId, (Arc<DcsNode>, Server)>,
}

impl Group {
    async fn start(size: NodeId, security: Security) -> Result<Group, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let security = match security {
            Security::Plain => RaftSecurity::default(),
            Security::Password => RaftSecurity { tls: None, password: Some("bench-secret".into()) },
            Security::Tls => {
                let ca = vigil_api::pki::Authority::new("bench CA").map_err(|e| format!("CA: {e}"))?;
                let files =
                    ca.write(dir.path(), "node", &["127.0.0.1"]).map_err(|e| format!("certificates: {e}"))?;
                let tls =
                    RaftTls { certfile: files.certfile, keyfile: Some(files.keyfile), cafile: files.cafile };
                RaftSecurity { tls: Some(tls), password: None }
            }
        };
        let mut listeners = BTreeMap::new();
        for id in 1..=size {
            let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind: {e}"))?;
            listeners.insert(id, listener);
        }
        let mut members = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for (id, listener) in listeners {
            let addr = listener.local_addr().map_err(|e| format!("local addr: {e}"))?;
            let mut config = DcsConfig::new(id, "bench", dir.path().join(format!("node{id}")));
            config.op_timeout = Duration::from_secs(2);
            config.security = security.clone();
            let node = Arc::new(DcsNode::start(config).await.map_err(|e| format!("start node {id}: {e}"))?);
            let server =
                Server::spawn(listener, node.router(), node.tls()).map_err(|e| format!("serve: {e}"))?;
            members.insert(id, addr.to_string());
            nodes.insert(id, (node, server));
        }
        let group = Group { _dir: dir, nodes };
        group.node(1).initialize(members).await.map_err(|e| format!("initialize: {e}"))?;
        group.leader().await;
        Ok(group)
    }

    fn node(&self, id: NodeId) -> &Arc<DcsNode> {
        &self.nodes[&id].0
    }

    /// Waits until every node names the same Raft leader.
    async fn leader(&self) -> NodeId {
        wait_for("a raft leader all nodes agree on", PATIENCE, || async {
            let leaders: Vec<_> = self.nodes.values().map(|(n, _)| n.raft_status().leader).collect();
            let first = leaders.first().copied().flatten()?;
            leaders.iter().all(|l| *l == Some(first)).then_some(first)
        })
        .await
    }

    fn follower(&self, leader: NodeId) -> NodeId {
        *self.nodes.keys().find(|id| **id != leader).expect("a group of 3 has a follower")
    }

    async fn shutdown(self) {
        for (_, (node, server)) in self.nodes {
            server.stop().await;
            if let Ok(node) = Arc::try_unwrap(node) {
                node.shutdown().await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Latency and throughput.

/// Durations of successful calls, and the count of failed ones.
#[derive(Default)]
struct Latencies {
    samples: Vec<Duration>,
    errors: usize,
}

impl Latencies {
    fn merge(&mut self, other: Latencies) {
        self.samples.extend(other.samples);
        self.errors += other.errors;
    }

    /// The `p`-th percentile (nearest rank) in milliseconds.
    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let Some(last) = sorted.len().checked_sub(1) else { return f64::NAN };
        let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).saturating_sub(1).min(last);
        sorted[rank].as_secs_f64() * 1000.0
    }

    fn row(&self, what: &str, on: &str) -> String {
        let [p50, p90, p99, max] = [50.0, 90.0, 99.0, 100.0].map(|p| self.percentile(p));
        let n = self.samples.len();
        format!("| {what} | {on} | {n} | {} | {p50:.2} | {p90:.2} | {p99:.2} | {max:.2} |", self.errors)
    }
}

const LATENCY_HEADER: &str = concat!(
    "| Operation | Issued on | Samples | Errors | p50 ms | p90 ms | p99 ms | max ms |\n",
    "|---|---|---:|---:|---:|---:|---:|---:|"
);

/// Calls `op` `count` times in sequence and times each call.
async fn sample<T, F, Fut>(count: usize, mut op: F) -> Latencies
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DcsError>>,
{
    let mut latencies = Latencies { samples: Vec::with_capacity(count), errors: 0 };
    for _ in 0..count {
        let started = Instant::now();
        match op().await {
            Ok(_) => latencies.samples.push(started.elapsed()),
            Err(e) => {
                tracing::warn!(error = %e, "call failed");
                latencies.errors += 1;
            }
        }
    }
    latencies
}

/// Part 2 and 3: renewals on a follower and on the leader, reads on a follower.
async fn latencies(group: &Group, renews: usize, reads: usize) -> Result<String, String> {
    let leader = group.leader().await;
    let follower = group.follower(leader);
    let holder = MemberName::new(HOLDER).map_err(|e| e.to_string())?;
    let grant = group
        .node(follower)
        .acquire_lease(&holder, TTL, Duration::ZERO)
        .await
        .map_err(|e| format!("acquire: {e}"))?;
    let mut rows = vec![LATENCY_HEADER.to_owned()];
    for (node, role) in [(follower, "follower"), (leader, "leader")] {
        let dcs = group.node(node);
        sample(WARMUP, || dcs.renew_lease(&grant)).await;
        let measured = sample(renews, || dcs.renew_lease(&grant)).await;
        rows.push(measured.row("renew_lease", &format!("{role} (node {node})")));
    }
    let dcs = group.node(follower);
    sample(WARMUP, || dcs.read()).await;
    rows.push(
        sample(reads, || dcs.read()).await.row("read (linearizable)", &format!("follower (node {follower})")),
    );
    dcs.release_lease(&grant).await.map_err(|e| format!("release: {e}"))?;
    Ok(rows.join("\n") + &leader_note(group, leader).await)
}

/// Part 4: `put` by each count of concurrent writers on the leader.
async fn throughput(group: &Group, writers: &[usize], length: Duration) -> Result<String, String> {
    let leader = group.leader().await;
    let mut rows = vec![
        "| Writers | Seconds | Writes | Errors | Writes/s | p50 ms | p99 ms |\n|---:|---:|---:|---:|---:|---:|---:|"
            .to_owned(),
    ];
    for &count in writers {
        let started = Instant::now();
        let deadline = started + length;
        let tasks: Vec<_> = (0..count)
            .map(|writer| tokio::spawn(write_until(group.node(leader).clone(), writer, deadline)))
            .collect();
        let mut all = Latencies::default();
        for task in tasks {
            all.merge(task.await.map_err(|e| format!("writer task: {e}"))??);
        }
        let secs = started.elapsed().as_secs_f64();
        let (n, errors) = (all.samples.len(), all.errors);
        let (p50, p99) = (all.percentile(50.0), all.percentile(99.0));
        let rate = n as f64 / secs;
        rows.push(format!("| {count} | {secs:.1} | {n} | {errors} | {rate:.0} | {p50:.2} | {p99:.2} |"));
    }
    Ok(rows.join("\n") + &leader_note(group, leader).await)
}

/// One writer: puts a small value under its own member key until `deadline`.
async fn write_until(node: Arc<DcsNode>, writer: usize, deadline: Instant) -> Result<Latencies, String> {
    let key = Key::Member(MemberName::new(format!("bench-{writer}")).map_err(|e| e.to_string())?);
    let mut latencies = Latencies::default();
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let value = json!({"writer": writer, "seq": seq, "state": "running"});
        latencies.merge(sample(1, || node.put(&key, value.clone(), Condition::Always, None)).await);
    }
    Ok(latencies)
}

/// A line saying whether the Raft leader stayed the same during a part.
async fn leader_note(group: &Group, leader_before: NodeId) -> String {
    match group.leader().await {
        now if now == leader_before => format!("\n\nThe Raft leader was node {leader_before} throughout."),
        now => format!(
            "\n\n**The Raft leader changed** from node {leader_before} to node {now} during this part."
        ),
    }
}

// ---------------------------------------------------------------------------------------------------
// The disk probe.

/// Part 1: `count` overwrites of 4 KiB each followed by `fdatasync` (data only), then `count` appends of
/// 4 KiB each followed by `fsync` (the file grows, so the file system's journal commits too).
async fn disk_probe(count: usize) -> Result<String, String> {
    let on = std::env::temp_dir().display().to_string();
    let mut rows = vec![LATENCY_HEADER.to_owned()];
    for (what, append) in [("4 KiB overwrite + fdatasync", false), ("4 KiB append + fsync", true)] {
        let samples = tokio::task::spawn_blocking(move || fsync_samples(count, append))
            .await
            .map_err(|e| format!("disk probe: {e}"))?
            .map_err(|e| format!("disk probe: {e}"))?;
        rows.push(Latencies { samples, errors: 0 }.row(what, &on));
    }
    Ok(rows.join("\n"))
}

fn fsync_samples(count: usize, append: bool) -> std::io::Result<Vec<Duration>> {
    let mut file = tempfile::tempfile()?;
    let block = vec![0x5a_u8; 4096];
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = std::time::Instant::now();
        if append {
            file.write_all(&block)?;
            file.sync_all()?;
        } else {
            file.rewind()?;
            file.write_all(&block)?;
            file.sync_data()?;
        }
        samples.push(started.elapsed());
    }
    Ok(samples)
}

// ---------------------------------------------------------------------------------------------------
// The idle cost of node processes.

/// Part 5: CPU time of each node process over `secs` of heartbeats only, then over `secs` with a
/// renewal per second sent to a follower; RSS at the end.
async fn idle_cost(binary: &Path, secs: u64) -> Result<String, String> {
    let window = Duration::from_secs(secs);
    let cluster = ProcessCluster::start(binary, 3).map_err(|e| format!("start {}: {e}", binary.display()))?;
    let leader = agreed_leader(&cluster).await;
    let follower = if leader == 1 { 2 } else { 1 };
    tokio::time::sleep(Duration::from_secs(2)).await; // start-up work settles
    let start = cpu_samples(&cluster)?;
    tokio::time::sleep(window).await;
    let quiet = cpu_samples(&cluster)?;
    let (sent, failed) = renew_every_second(&cluster, follower, window).await;
    let busy = cpu_samples(&cluster)?;
    let leader_after = agreed_leader(&cluster).await;
    let ticks = clock_ticks_per_second();
    let mut rows = vec![
        "| Node | Raft role | CPU % of a core, heartbeats only | CPU % of a core, 1 renew/s | RSS MiB |\n\
         |---:|---|---:|---:|---:|"
            .to_owned(),
    ];
    for id in 1..=3 {
        let role = match id {
            _ if id == leader => "leader",
            _ if id == follower => "follower (renews sent here)",
            _ => "follower",
        };
        let idle = cpu_percent(&start[&id], &quiet[&id], ticks);
        let renewing = cpu_percent(&quiet[&id], &busy[&id], ticks);
        let rss = rss_kib(pid_of(&cluster, id)?)? as f64 / 1024.0;
        rows.push(format!("| {id} | {role} | {idle:.2} | {renewing:.2} | {rss:.1} |"));
    }
    let leader_line = match leader_after {
        same if same == leader => format!("The Raft leader was node {leader} throughout."),
        other => format!("**The Raft leader changed** from node {leader} to node {other}."),
    };
    Ok(format!(
        "{}\n\nWindows of {secs} s each; {sent} renewals sent to node {follower}, {failed} failed. CPU time from \
         /proc/<pid>/stat at {ticks} ticks/s (resolution {:.3} % over one window). {leader_line}",
        rows.join("\n"),
        100.0 / (ticks as f64 * secs as f64),
    ))
}

/// Waits until the three processes name the same Raft leader.
async fn agreed_leader(cluster: &ProcessCluster) -> NodeId {
    wait_for("an agreed raft leader", PATIENCE, || async {
        let mut leaders = Vec::new();
        for id in 1..=3 {
            leaders.push(cluster.get(id, "/test/status").await?["leader"].as_u64()?);
        }
        let first = leaders[0];
        leaders.iter().all(|l| *l == first).then_some(first)
    })
    .await
}

/// Sends `POST /test/acquire` to node `on` once a second for `window`; a repeat by the holder renews.
/// Returns the number of calls sent and of failed ones.
async fn renew_every_second(cluster: &ProcessCluster, on: NodeId, window: Duration) -> (usize, usize) {
    let body = json!({"holder": HOLDER, "ttl_ms": TTL.as_millis() as u64});
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let end = Instant::now() + window;
    let (mut sent, mut failed) = (0, 0);
    ticker.tick().await;
    while Instant::now() < end {
        sent += 1;
        if cluster.post(on, "/test/acquire", body.clone()).await.is_none() {
            failed += 1;
        }
        ticker.tick().await;
    }
    (sent, failed)
}

/// CPU time in clock ticks (utime + stime) of one process at one instant.
struct CpuSample {
    at: Instant,
    ticks: u64,
}

fn cpu_samples(cluster: &ProcessCluster) -> Result<BTreeMap<NodeId, CpuSample>, String> {
    (1..=3)
        .map(|id| Ok((id, CpuSample { at: Instant::now(), ticks: cpu_ticks(pid_of(cluster, id)?)? })))
        .collect()
}

fn cpu_percent(from: &CpuSample, to: &CpuSample, ticks_per_second: u64) -> f64 {
    let cpu = to.ticks.saturating_sub(from.ticks) as f64 / ticks_per_second as f64;
    100.0 * cpu / to.at.duration_since(from.at).as_secs_f64()
}

fn pid_of(cluster: &ProcessCluster, id: NodeId) -> Result<u32, String> {
    cluster.pid(id).ok_or_else(|| format!("node process {id} is not running"))
}

/// utime + stime of `pid` from `/proc/<pid>/stat` (fields 14 and 15, counted after the `)` that ends the
/// command name, which may itself hold spaces).
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("pid {pid}: {e}"))?;
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or(format!("pid {pid}: odd stat"))?;
    // After the name come field 3 (state) onwards: utime is field 14, the 12th from here.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| -> Result<u64, String> {
        fields.get(i).and_then(|f| f.parse().ok()).ok_or(format!("pid {pid}: no stat field {}", i + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> Result<u64, String> {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("pid {pid}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(format!("pid {pid}: no VmRSS"))
}

/// `getconf CLK_TCK`, or 100 (the value on every mainstream Linux platform) if that cannot be run.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn node_binary_next_to_me() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let binary = me.with_file_name("vigil-dcs-node");
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p vigil-integration --bins`, pass \
             --node-binary, or skip this part with --no-processes",
            binary.display()
        ))
    }
}

// ---------------------------------------------------------------------------------------------------
// The machine.

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let build = if cfg!(debug_assertions) { "debug (figures are not representative)" } else { "release" };
    format!(
        "{cores} CPUs, Linux {}, {build} build, temp dir {}.",
        kernel.trim(),
        std::env::temp_dir().display()
    )
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
