//! Failover benchmark: how long a client cannot write when the primary of a real 3-node Vigil cluster
//! (real `vigil agent` processes, real PostgreSQL 15, all on 127.0.0.1) crashes or is switched over.
//!
//! Per scenario and run it starts a fresh cluster ([`AgentCluster`]), waits for one primary and streaming
//! replicas, and runs a writer that inserts one row every `--write-every-ms` (reconnecting after any error,
//! every attempt bounded by `--attempt-ms`), recording the instant of every acknowledged insert. The writer
//! connects (`--via`) either directly, through a libpq multi-host connection string with
//! `target_session_attrs=read-write`, or through HAProxy's read-write port (started per run in front of the
//! cluster as `examples/haproxy.cfg`: `GET /primary` checks, `default-server inter 500ms fall 2 rise 1
//! on-marked-down shutdown-sessions`; its read-write backend is sampled from the stats socket every 20 ms).
//! After `--steady-secs` of writes it injects the fault:
//!
//! * `node-crash`: SIGKILL of the primary's agent and of its postmaster;
//! * `postgres-crash`: SIGKILL of the primary's postmaster only (the agent restarts it in place);
//! * `switchover`: a planned switchover, `POST /switchover {leader, candidate}` to the primary's agent
//!   (what `vigil switchover --candidate X --force` sends), the candidate being the first replica; the
//!   call answers 200 once the lease has moved.
//!
//! The write-unavailability window is the first insert acknowledged on a connection opened after the fault
//! minus the last insert acknowledged on the connection in use at the fault (inserts an orphaned backend
//! of a killed postmaster still acknowledges count as before the fault). A run fails when no such write
//! comes within `--run-timeout-secs`. Every acknowledged insert is then looked up on the new primary
//! (acknowledged writes lost by the failover are reported). The agents' logs are read back to split the
//! window into phases.
//!
//! After all runs it measures one agent's footprint on an idle fresh cluster: RSS (`VmRSS`) and CPU time
//! (utime + stime from `/proc/<pid>/stat`) over `--idle-secs`, for the primary's agent and a replica's.
//!
//! `--scenario wrk` instead starts one idle cluster and runs `wrk -t2 -c32 -d10s --latency` (see `--wrk-*`)
//! against `GET /primary` on the primary's agent, `--wrk-runs` times, with the agent's CPU time meanwhile.
//!
//! `--manager vigil,patroni,patroni-fast` measures the same way, one after the other on the same ports
//! behind the same HAProxy config, clusters managed by Vigil or by Patroni (`--patroni-bin`, a single-node
//! etcd as its DCS, default or fastest accepted timing; see `integration/src/patroni.rs`), and starts the
//! report with a side-by-side table. `--scenario compare` runs the three faults with both writers at once
//! (`--via together`), then the footprint (`--idle-secs`, default 60) and wrk on one idle cluster per
//! manager; `bench/compare.sh` installs Patroni and etcd and runs exactly that.
//!
//! Results go to stdout as Markdown, progress and per-run timelines to stderr. Every agent and PostgreSQL
//! server it starts is killed (by PID) when a run ends, when the bench fails, hits `--max-secs` or gets
//! Ctrl-C. Run it from a release build:
//!
//! ```text
//! cargo build --release -p vigil-agent -p vigil-integration --bins
//! target/release/vigil-failover-bench --runs 10 --scenario all
//! target/release/vigil-failover-bench --runs 10 --scenario switchover    # --via both (the default here)
//! target/release/vigil-failover-bench --scenario wrk
//! ./bench/compare.sh -n 10      # Vigil vs Patroni
//! ```

use clap::{Parser, ValueEnum};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use vigil_integration::agents::{free_port, AgentCluster, PASSWORD, PG_BIN};
use vigil_integration::haproxy::{
    find_haproxy_binary, push_section, sample_up, HaProxy, Tuning, PRIMARY_BACKEND,
};
use vigil_integration::managed::{self, ClusterPorts, ManagedCluster, Member};
use vigil_integration::patroni::{PatroniCluster, PatroniTiming};
use vigil_integration::strip_ansi;
use vigil_integration::writer::pg_error;

#[path = "failover/compare.rs"]
mod compare;
#[path = "failover/scale.rs"]
mod scale;
#[path = "failover/timeline_svg.rs"]
mod timeline_svg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    NodeCrash,
    PostgresCrash,
    /// A planned switchover to a replica.
    Switchover,
    /// `GET /primary` throughput with wrk on an idle cluster (no fault, no writer).
    Wrk,
    /// The two crash scenarios, node-crash and postgres-crash.
    All,
    /// The three faults with both writers at once (`--via together`), then the idle footprint and wrk
    /// on one idle cluster: what `bench/compare.sh` runs for every manager.
    Compare,
    /// Vigil only: node-crash windows, lease renewals and idle CPU per member for each cluster size of
    /// `--members`.
    Scale,
    /// Vigil only: many tiny 3-member clusters on this machine, the idle cost per cluster at each count
    /// of `--clusters`.
    ScaleIdle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    NodeCrash,
    PostgresCrash,
    Switchover,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::NodeCrash => "node-crash",
            Scenario::PostgresCrash => "postgres-crash",
            Scenario::Switchover => "switchover",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scenario::NodeCrash => "kill -9 of the primary's manager and postmaster",
            Scenario::PostgresCrash => "kill -9 of the primary's postmaster",
            Scenario::Switchover => "POST /switchover {leader, candidate} to the primary's manager",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ViaArg {
    /// libpq multi-host string with target_session_attrs=read-write.
    Direct,
    /// HAProxy's read-write port (GET /primary checks).
    Haproxy,
    /// Every run set twice: direct, then through HAProxy.
    Both,
    /// Both writers at once in the same runs, each with its own connections and rows.
    Together,
}

/// The writer's path to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Direct,
    Haproxy,
}

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Direct => "direct",
            Via::Haproxy => "haproxy",
        }
    }
}

/// The failover manager of the clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ManagerArg {
    /// Vigil agents with their default timing (ttl 3 s, loop_wait 1 s).
    Vigil,
    /// Patroni (`--patroni-bin`) with its default timing and a single-node etcd (`--etcd`).
    Patroni,
    /// Patroni at the fastest timing its validator accepts (ttl 20, loop_wait 1, retry_timeout 3).
    PatroniFast,
}

impl ManagerArg {
    fn name(self) -> &'static str {
        match self {
            ManagerArg::Vigil => "vigil",
            ManagerArg::Patroni => "patroni",
            ManagerArg::PatroniFast => "patroni-fast",
        }
    }

    /// What it is, with its timing, for the report.
    fn label(self) -> &'static str {
        match self {
            ManagerArg::Vigil => "Vigil, default timing (ttl 3 s, loop_wait 1 s, retry_timeout 0.75 s)",
            ManagerArg::Patroni => "Patroni, default timing (ttl 30, loop_wait 10, retry_timeout 10)",
            ManagerArg::PatroniFast => {
                "Patroni, fastest accepted timing (ttl 20, loop_wait 1, retry_timeout 3)"
            }
        }
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    about = "Write-unavailability window of a real PostgreSQL cluster under Vigil (or Patroni) after a crash \
             or switchover"
)]
struct Args {
    /// Runs per scenario (a fresh cluster each).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Which fault to inject (or `wrk`: REST throughput only).
    #[arg(long, value_enum, default_value_t = ScenarioArg::All)]
    scenario: ScenarioArg,
    /// The writer's path: default `together` for compare, `both` for switchover, `direct` for the crash
    /// scenarios.
    #[arg(long, value_enum)]
    via: Option<ViaArg>,
    /// The managers to measure, one after the other on the same ports (comma-separated); with more than
    /// one the report starts with a side-by-side table.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "vigil")]
    manager: Vec<ManagerArg>,
    /// The directory holding the `patroni` executable (a virtualenv's `bin`), for the Patroni managers.
    #[arg(long)]
    patroni_bin: Option<PathBuf>,
    /// The `etcd` executable, Patroni's DCS.
    #[arg(long, default_value = "etcd")]
    etcd: PathBuf,
    /// Nodes per cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Vigil's `synchronous_mode` (`off`, `on`, `quorum`); with `on` or `quorum` each run waits until the
    /// primary published a synchronous standby before the fault.
    #[arg(long, default_value = "off")]
    synchronous_mode: String,
    /// Seconds of steady writes before the fault.
    #[arg(long, default_value_t = 3)]
    steady_secs: u64,
    /// Pause between two inserts (and between two reconnection attempts), in milliseconds.
    #[arg(long, default_value_t = 20)]
    write_every_ms: u64,
    /// Bound of one connection attempt or one insert, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    attempt_ms: u64,
    /// Seconds of writes to wait for after the fault before the run counts as failed.
    #[arg(long, default_value_t = 60)]
    run_timeout_secs: u64,
    /// Seconds of writes kept up after the first one following the fault, to confirm it.
    #[arg(long, default_value_t = 1)]
    confirm_secs: u64,
    /// Seconds to wait for a fresh cluster's primary and streaming replicas.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// Length of the idle-footprint window, in seconds (0: skip the footprint part); default 30 with the
    /// crash scenarios, 60 with compare, 0 with switchover and wrk.
    #[arg(long)]
    idle_secs: Option<u64>,
    /// wrk runs (`--scenario wrk` or `compare`), one after the other against the same idle cluster.
    #[arg(long, default_value_t = 3)]
    wrk_runs: usize,
    /// wrk's threads (`-t`).
    #[arg(long, default_value_t = 2)]
    wrk_threads: u32,
    /// wrk's connections (`-c`).
    #[arg(long, default_value_t = 32)]
    wrk_connections: u32,
    /// wrk's duration in seconds (`-d`).
    #[arg(long, default_value_t = 10)]
    wrk_secs: u64,
    /// Where the manager logs of failed runs are copied (and of every run with --keep-logs).
    #[arg(long, default_value = "/tmp/vigil-failover-bench")]
    log_dir: PathBuf,
    /// Copy the manager logs of every run, not only of failed ones.
    #[arg(long)]
    keep_logs: bool,
    /// Print every manager log line of the failover window to stderr.
    #[arg(long)]
    timeline: bool,
    /// The `vigil` binary; default: the one next to this binary.
    #[arg(long)]
    vigil_binary: Option<PathBuf>,
    /// Give up, cleaning up, after this many seconds in all.
    #[arg(long, default_value_t = 3600)]
    max_secs: u64,
    /// Vigil's agents push the write path to HAProxy's Runtime API (`haproxy:` in their configuration,
    /// see examples/haproxy-push) besides HAProxy's `/primary` checks.
    #[arg(long)]
    haproxy_push: bool,
    /// Draw the write timeline of the first run of each scenario (every manager on one axis) as SVG to
    /// `<PREFIX>-<scenario>.svg`, linked from the report by file name.
    #[arg(long)]
    svg_prefix: Option<PathBuf>,
    /// Cluster sizes measured by `--scenario scale`.
    #[arg(long, value_delimiter = ',', default_value = "3,5,7,9")]
    members: Vec<usize>,
    /// Counts of 3-member clusters measured by `--scenario scale-idle` (grown from one count to the next).
    #[arg(long, value_delimiter = ',', default_value = "10,25,50")]
    clusters: Vec<usize>,
}

/// The Runtime API port HAProxy opens for the agents' pushes (`--haproxy-push`), the same in every run.
fn push_port() -> u16 {
    static PORT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    *PORT.get_or_init(free_port)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    let limit = Duration::from_secs(args.max_secs);
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vigil-failover-bench: SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Every process a run started belongs to a value dropped when `run` is cancelled here.
    let result = tokio::select! {
        r = tokio::time::timeout(limit, run(&args)) => r.unwrap_or_else(|_| Err(format!("gave up after {limit:?}"))),
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        _ = terminate.recv() => Err("terminated".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-failover-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which manager a cluster runs, the binaries, and the ports every cluster of a comparison shares.
struct Target {
    manager: ManagerArg,
    vigil: PathBuf,
    /// `Some` when comparing managers: every cluster and HAProxy on these ports.
    ports: Option<ClusterPorts>,
}

/// Everything measured for one manager.
struct ManagerReport {
    manager: ManagerArg,
    results: Vec<(Scenario, Via, Vec<RunResult>)>,
    wrk: Option<Result<WrkReport, String>>,
    footprint: Option<Result<Footprint, String>>,
}

async fn run(args: &Args) -> Result<(), String> {
    if args.nodes < 2 {
        return Err("--nodes must be at least 2".to_owned());
    }
    let vigil = match &args.vigil_binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| e.to_string())?.with_file_name("vigil"),
    };
    if args.manager.contains(&ManagerArg::Vigil) && !vigil.is_file() {
        return Err(format!(
            "{} is missing: cargo build --release -p vigil-agent -p vigil-integration --bins",
            vigil.display()
        ));
    }
    let patroni = args.manager.iter().any(|m| *m != ManagerArg::Vigil);
    if matches!(args.scenario, ScenarioArg::Scale | ScenarioArg::ScaleIdle) {
        if patroni {
            return Err("--scenario scale and scale-idle measure Vigil only: leave --manager out".to_owned());
        }
        let facts = MachineFacts::collect(args, false);
        if args.scenario == ScenarioArg::Scale {
            scale::members(args, &vigil).await?;
        } else {
            scale::clusters(args, &vigil).await?;
        }
        print_machine(&facts, &loadavg());
        return Ok(());
    }
    if patroni && !args.patroni_bin.as_ref().is_some_and(|b| b.join("patroni").is_file()) {
        return Err(
            "the Patroni managers need --patroni-bin DIR holding `patroni` (bench/compare.sh)".to_owned()
        );
    }
    let facts_start = MachineFacts::collect(args, patroni);
    let scenarios = match args.scenario {
        ScenarioArg::NodeCrash => vec![Scenario::NodeCrash],
        ScenarioArg::PostgresCrash => vec![Scenario::PostgresCrash],
        ScenarioArg::Switchover => vec![Scenario::Switchover],
        ScenarioArg::Wrk => Vec::new(),
        ScenarioArg::All => vec![Scenario::NodeCrash, Scenario::PostgresCrash],
        ScenarioArg::Compare => vec![Scenario::NodeCrash, Scenario::PostgresCrash, Scenario::Switchover],
        ScenarioArg::Scale | ScenarioArg::ScaleIdle => Vec::new(),
    };
    let vias = |scenario: Scenario| match (args.via, scenario, args.scenario) {
        (Some(ViaArg::Direct), _, _) => vec![vec![Via::Direct]],
        (Some(ViaArg::Haproxy), _, _) => vec![vec![Via::Haproxy]],
        (Some(ViaArg::Together), _, _) | (None, _, ScenarioArg::Compare) => {
            vec![vec![Via::Direct, Via::Haproxy]]
        }
        (Some(ViaArg::Both), _, _) | (None, Scenario::Switchover, _) => {
            vec![vec![Via::Direct], vec![Via::Haproxy]]
        }
        (None, _, _) => vec![vec![Via::Direct]],
    };
    // Each set: a scenario and the writers that run together in each of its runs.
    let sets: Vec<(Scenario, Vec<Via>)> =
        scenarios.iter().flat_map(|s| vias(*s).into_iter().map(move |v| (*s, v))).collect();
    if sets.iter().any(|(_, v)| v.contains(&Via::Haproxy)) && find_haproxy_binary().is_none() {
        return Err("haproxy is missing: apt-get install -y haproxy".to_owned());
    }
    let ports = (args.manager.len() > 1 || patroni).then(|| ClusterPorts::pick(args.nodes));
    let mut reports = Vec::new();
    for manager in &args.manager {
        let target = Target { manager: *manager, vigil: vigil.clone(), ports: ports.clone() };
        reports.push(run_manager(args, &target, &sets).await);
    }
    let load_end = loadavg();
    if reports.len() > 1 {
        compare::print_comparison(args, &reports);
    }
    if let Some(prefix) = &args.svg_prefix {
        compare::draw_timelines(args, prefix, &sets, &reports);
    }
    for report in &reports {
        if reports.len() > 1 {
            println!("\n# {}\n", report.manager.label());
        }
        print_report(args, report);
    }
    print_machine(&facts_start, &load_end);
    Ok(())
}

/// Every scenario's runs, then the idle measurements, for one manager.
async fn run_manager(args: &Args, target: &Target, sets: &[(Scenario, Vec<Via>)]) -> ManagerReport {
    let manager = target.manager;
    let mut results: Vec<(Scenario, Via, Vec<RunResult>)> = Vec::new();
    for (scenario, vias) in sets.iter().filter(|_| args.runs > 0) {
        let mut runs: Vec<Vec<RunResult>> = vias.iter().map(|_| Vec::new()).collect();
        for k in 1..=args.runs {
            let names: Vec<&str> = vias.iter().map(|v| v.name()).collect();
            eprintln!(
                "== {}: {} via {} run {k}/{}",
                manager.name(),
                scenario.name(),
                names.join("+"),
                args.runs
            );
            let outcome = one_run(args, target, *scenario, vias, k).await;
            for (i, result) in outcome.into_iter().enumerate() {
                match &result.outcome {
                    Ok(w) => eprintln!("   {}: window {:.3} s", vias[i].name(), w.as_secs_f64()),
                    Err(e) => eprintln!("   {}: FAILED: {e}", vias[i].name()),
                }
                runs[i].push(result);
            }
        }
        results.extend(vias.iter().zip(runs).map(|(via, runs)| (*scenario, *via, runs)));
    }
    let idle_secs = args.idle_secs.unwrap_or(match args.scenario {
        ScenarioArg::Switchover | ScenarioArg::Wrk => 0,
        ScenarioArg::Compare => 60,
        _ => 30,
    });
    let wants_wrk = matches!(args.scenario, ScenarioArg::Wrk | ScenarioArg::Compare);
    let (footprint, wrk) = idle_checks(args, target, idle_secs, wants_wrk).await;
    ManagerReport { manager, results, wrk, footprint }
}

// ---------------------------------------------------------------------------------------------------
// One run.

/// What one run measured.
struct RunResult {
    /// The window, or why the run failed.
    outcome: Result<Duration, String>,
    /// Milestones after the fault, in seconds (negative: before it), by name.
    phases: BTreeMap<&'static str, f64>,
    /// Acknowledged inserts not found on the new primary.
    lost: Option<usize>,
    /// Inserts acknowledged by the old server after the fault instant.
    late_acks: usize,
    /// Failed connection attempts and inserts after the fault, by message.
    errors: BTreeMap<String, usize>,
    /// Anything else worth a line in the report (HAProxy's view, the switchover call's answer…).
    notes: Vec<String>,
    /// When each write was acknowledged, in seconds after the fault (for the timeline).
    acks: Vec<f64>,
}

impl RunResult {
    fn failed(reason: String) -> RunResult {
        RunResult {
            outcome: Err(reason),
            phases: BTreeMap::new(),
            lost: None,
            late_acks: 0,
            errors: BTreeMap::new(),
            notes: Vec::new(),
            acks: Vec::new(),
        }
    }
}

/// A fresh cluster whose managers all started, in up to 3 attempts: a port may be taken by another
/// process before the manager binds it (`free_port` may even hand out one port twice), and such a
/// manager exits at once.
async fn start_cluster(args: &Args, target: &Target) -> Result<Box<dyn ManagedCluster>, String> {
    const ATTEMPTS: usize = 3;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let started = match target.manager {
            ManagerArg::Vigil => start_vigil(args, target).await,
            ManagerArg::Patroni => start_patroni(args, target, PatroniTiming::DEFAULT).await,
            ManagerArg::PatroniFast => start_patroni(args, target, PatroniTiming::FASTEST).await,
        };
        match started {
            Ok(cluster) => return Ok(cluster),
            Err(why) => {
                eprintln!("   attempt {attempt} to start the cluster: {why}");
                last = why;
            }
        }
    }
    Err(format!("setup: {ATTEMPTS} attempts to start the cluster failed, the last one: {last}"))
}

async fn start_vigil(args: &Args, target: &Target) -> Result<Box<dyn ManagedCluster>, String> {
    let binary = target.vigil.clone();
    let push = if args.haproxy_push { push_section(push_port()) } else { String::new() };
    let extra = |_| push.clone();
    let mut cluster = match &target.ports {
        Some(p) => {
            let ports: Vec<(u16, u16, u16)> =
                p.members.iter().map(|m| (m.pg_port, m.api_port, m.store_port)).collect();
            AgentCluster::start_on_ports(binary, &ports, extra, &sync_dcs(args))
        }
        None => AgentCluster::start_with_binary(binary, args.nodes, extra, &sync_dcs(args)),
    };
    cluster.agents_started(Duration::from_secs(30)).await?;
    Ok(Box::new(cluster))
}

async fn start_patroni(
    args: &Args,
    target: &Target,
    timing: PatroniTiming,
) -> Result<Box<dyn ManagedCluster>, String> {
    let ports = target.ports.clone().unwrap_or_else(|| ClusterPorts::pick(args.nodes));
    let bin = args.patroni_bin.as_deref().ok_or("--patroni-bin is missing")?;
    let mut cluster =
        PatroniCluster::start(bin, &args.etcd, &ports, timing).map_err(|e| format!("start Patroni: {e}"))?;
    cluster.started(Duration::from_secs(30)).await?;
    Ok(Box::new(cluster))
}

/// One run: a fresh cluster, the writers `vias` (at once), the fault; a result per writer.
async fn one_run(args: &Args, target: &Target, scenario: Scenario, vias: &[Via], k: usize) -> Vec<RunResult> {
    let mut cluster = match start_cluster(args, target).await {
        Ok(c) => c,
        Err(e) => return vias.iter().map(|_| RunResult::failed(e.clone())).collect(),
    };
    let tag = format!("{}-{}-run{k}", target.manager.name(), scenario.name());
    let results = measure(args, target, cluster.as_mut(), scenario, vias).await;
    let bad = results.iter().any(|r| r.outcome.is_err() || r.lost.is_some_and(|l| l > 0));
    if bad || args.keep_logs {
        match keep_logs(cluster.as_ref(), &args.log_dir.join(&tag)) {
            Ok(dir) => eprintln!("   logs of {tag} copied to {}", dir.display()),
            Err(e) => eprintln!("   could not copy the logs of {tag}: {e}"),
        }
    }
    drop(cluster);
    results
}

/// Starts HAProxy in front of `cluster` (on the shared ports when comparing) and waits (up to `timeout`)
/// until its read-write backend has exactly `primary` UP.
async fn start_haproxy(
    cluster: &dyn ManagedCluster,
    target: &Target,
    primary: usize,
    timeout: Duration,
    push: bool,
) -> Result<HaProxy, String> {
    let members = cluster.members();
    let (rw, ro) =
        target.ports.as_ref().map_or_else(|| (free_port(), free_port()), |p| (p.haproxy_rw, p.haproxy_ro));
    let tuning = Tuning { runtime_api_port: push.then(push_port), ..Tuning::default() };
    let haproxy = HaProxy::start_tuned(cluster.dir(), &members, rw, ro, &tuning).await;
    let want = vec![members[primary].name.clone()];
    let started = Instant::now();
    for _ in 0..timeout.as_millis() / 20 + 1 {
        if let Ok(mut up) = haproxy.up_servers(PRIMARY_BACKEND).await {
            up.sort();
            if up == want {
                return Ok(haproxy);
            }
        }
        if started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("setup: HAProxy did not mark {want:?} alone UP within {timeout:?}"))
}

/// The answer to the switchover call: status (`None`: no answer), text, and when it came.
type SwitchoverAnswer = (Option<u16>, String, Instant);

/// `POST /switchover {leader, candidate}` to node `to`'s agent (bounded by 45 s; the agent gives up after
/// 30 s).
async fn post_switchover(api_port: u16, leader: String, candidate: String) -> SwitchoverAnswer {
    let url = format!("http://127.0.0.1:{api_port}/switchover");
    let body = serde_json::json!({ "leader": leader, "candidate": candidate }).to_string();
    let http = match reqwest::Client::builder().no_proxy().build() {
        Ok(h) => h,
        Err(e) => return (None, e.to_string(), Instant::now()),
    };
    let sent = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(45))
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let at = Instant::now();
            (Some(status), response.text().await.unwrap_or_default(), at)
        }
        Err(e) => (None, e.to_string(), Instant::now()),
    }
}

/// One writer of a run: its path and what it recorded.
struct Probe {
    via: Via,
    log: Arc<Mutex<WriterLog>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// The fault of a run, for the accounting of every writer.
struct Fault {
    scenario: Scenario,
    primary: usize,
    candidate: usize,
    at: Instant,
    /// The switchover call's answer, if any.
    answer: Option<SwitchoverAnswer>,
}

/// The libpq connection string of a writer `via`.
fn connection_string(nodes: &[Member], via: Via, haproxy: Option<&HaProxy>) -> String {
    match (via, haproxy) {
        (Via::Haproxy, Some(h)) => format!(
            "host=127.0.0.1 port={} user=postgres password={PASSWORD} dbname=postgres connect_timeout=1",
            h.rw_port
        ),
        _ => {
            let ports: Vec<String> = nodes.iter().map(|n| n.pg_port.to_string()).collect();
            let hosts = vec!["127.0.0.1"; ports.len()].join(",");
            format!(
                "host={hosts} port={} user=postgres password={PASSWORD} dbname=postgres \
                 target_session_attrs=read-write connect_timeout=1",
                ports.join(",")
            )
        }
    }
}

/// Runs the writers `vias` at once against a settled `cluster`, injects the fault and accounts for each
/// writer: one result per writer, in the order of `vias`.
async fn measure(
    args: &Args,
    target: &Target,
    cluster: &mut dyn ManagedCluster,
    scenario: Scenario,
    vias: &[Via],
) -> Vec<RunResult> {
    let all_failed = |e: String| vias.iter().map(|_| RunResult::failed(e.clone())).collect::<Vec<_>>();
    let nodes = cluster.members();
    let settle = Duration::from_secs(args.settle_secs);
    let Some(primary) = settled(&nodes, settle).await else {
        return all_failed(format!("setup: no primary with streaming replicas within {settle:?}"));
    };
    if args.synchronous_mode != "off" && !sync_published(&nodes[primary], settle).await {
        return all_failed(format!("setup: no synchronous standby published within {settle:?}"));
    }
    let create = "CREATE TABLE IF NOT EXISTS bench_writes (id bigint PRIMARY KEY, \
                  at timestamptz NOT NULL DEFAULT clock_timestamp())";
    if let Err(e) = managed::query(nodes[primary].pg_port, create).await {
        return all_failed(format!("setup: create table: {}", pg_error(&e)));
    }
    let haproxy = if vias.contains(&Via::Haproxy) {
        match start_haproxy(cluster, target, primary, Duration::from_secs(30), args.haproxy_push).await {
            Ok(h) => Some(Arc::new(h)),
            Err(e) => return all_failed(e),
        }
    } else {
        None
    };

    let budget = Duration::from_secs(args.steady_secs + args.run_timeout_secs + args.confirm_secs + 10);
    let probes: Vec<Probe> = vias
        .iter()
        .enumerate()
        .map(|(k, via)| {
            let log = Arc::new(Mutex::new(WriterLog::default()));
            let stop = Arc::new(AtomicBool::new(false));
            let writer = Writer {
                conn: connection_string(&nodes, *via, haproxy.as_deref()),
                every: Duration::from_millis(args.write_every_ms.max(1)),
                attempt: Duration::from_millis(args.attempt_ms.max(1)),
                deadline: Instant::now() + budget,
                // Each writer its own ids in the one table.
                first_id: k as i64 * 1_000_000_000,
            };
            let task = tokio::spawn(writer.run(log.clone(), stop.clone()));
            Probe { via: *via, log, stop, task }
        })
        .collect();

    // Steady writes.
    tokio::time::sleep(Duration::from_secs(args.steady_secs)).await;
    let expected = 1000 / args.write_every_ms.max(1) as usize;
    let since = Instant::now() - Duration::from_secs(1);
    let slow = probes.iter().find_map(|p| {
        let acks = p.log.lock().expect("writer log").acks.iter().filter(|a| a.at >= since).count();
        (acks < expected / 2).then(|| {
            format!(
                "setup: only {acks} writes via {} acknowledged in the last second before the fault",
                p.via.name()
            )
        })
    });
    if let Some(why) = slow {
        for p in probes {
            stop_writer(&p.stop, p.task).await;
        }
        return all_failed(why);
    }

    // HAProxy's view, sampled from just before the fault.
    let sample_stop = Arc::new(AtomicBool::new(false));
    let sampler = haproxy.as_ref().map(|h| {
        let limit = Duration::from_secs(args.run_timeout_secs + args.confirm_secs + 10);
        tokio::spawn(sample_up(h.clone(), sample_stop.clone(), limit))
    });

    // The fault.
    let fault_gens: Vec<u32> = probes.iter().map(|p| p.log.lock().expect("writer log").generation).collect();
    let old_postmaster = cluster.postmaster_pid(primary);
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watcher = old_postmaster.map(|pid| {
        let pidfile = cluster.data_dir(primary).join("postmaster.pid");
        let limit = Duration::from_secs(args.run_timeout_secs + args.confirm_secs);
        tokio::spawn(watch_postmaster(pid, pidfile, limit, watch_stop.clone()))
    });
    let candidate = (0..nodes.len()).find(|i| *i != primary).unwrap_or(primary);
    let fault_wall = SystemTime::now();
    let fault_at = Instant::now();
    let mut switchover_call = None;
    match scenario {
        Scenario::NodeCrash => {
            cluster.kill_manager(primary);
            cluster.kill_postgres(primary);
        }
        Scenario::PostgresCrash => cluster.kill_postgres(primary),
        Scenario::Switchover => {
            let (leader, to) = (nodes[primary].name.clone(), nodes[candidate].name.clone());
            switchover_call = Some(tokio::spawn(post_switchover(nodes[primary].api_port, leader, to)));
        }
    }
    let what = match scenario {
        Scenario::Switchover => format!("{} → {}", nodes[primary].name, nodes[candidate].name),
        _ => nodes[primary].name.clone(),
    };
    eprintln!("   fault: {} ({what}) at {}", scenario.what(), utc_time(fault_wall));

    // Wait for every writer's first write on a connection opened after the fault.
    let timeout = Duration::from_secs(args.run_timeout_secs);
    let first_new = |p: &Probe, gen: u32| {
        p.log.lock().expect("writer log").acks.iter().find(|a| a.generation > gen).map(|a| a.at)
    };
    for _ in 0..args.run_timeout_secs * 50 + 50 {
        let all = probes.iter().zip(&fault_gens).all(|(p, g)| first_new(p, *g).is_some());
        if all || fault_at.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let firsts: Vec<Option<Instant>> =
        probes.iter().zip(&fault_gens).map(|(p, g)| first_new(p, *g)).collect();
    if firsts.iter().any(Option::is_some) {
        tokio::time::sleep(Duration::from_secs(args.confirm_secs)).await;
    }
    let mut logs = Vec::new();
    for p in probes {
        stop_writer(&p.stop, p.task).await;
        logs.push((p.via, std::mem::take(&mut *p.log.lock().expect("writer log"))));
    }
    watch_stop.store(true, Ordering::SeqCst);
    sample_stop.store(true, Ordering::SeqCst);
    let postmaster = match watcher {
        Some(w) => w.await.unwrap_or_default(),
        None => PostmasterWatch::default(),
    };
    let up_changes = match sampler {
        Some(s) => s.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let answer = match switchover_call {
        Some(call) => match tokio::time::timeout(Duration::from_secs(50), call).await {
            Ok(Ok(answer)) => Some(answer),
            Ok(Err(e)) => Some((None, format!("task: {e}"), Instant::now())),
            Err(_) => Some((None, "no answer within 50 s".to_owned(), Instant::now())),
        },
        None => None,
    };

    // What every writer shares: the managers' milestones, the postmaster's fate, the switchover call.
    let secs = |t: Instant| signed_secs(fault_at, t);
    let until = firsts.iter().flatten().map(|t| secs(*t) + 0.5).fold(0.0, f64::max);
    let until = if firsts.iter().all(Option::is_some) { until } else { timeout.as_secs_f64() };
    let mut shared = phases(cluster, fault_wall, until, args.timeline);
    for (name, at) in [
        ("old postmaster zombie", postmaster.zombie),
        ("old postmaster reaped", postmaster.gone),
        ("new postmaster.pid", postmaster.new_pid),
    ] {
        if let Some(at) = at {
            shared.insert(name, secs(at));
        }
    }
    let mut shared_notes = Vec::new();
    if let Some((status, text, at)) = &answer {
        let code = status.map_or("no answer".to_owned(), |c| c.to_string());
        shared_notes.push(format!("switchover call: {code} at {:+.3} s: {}", secs(*at), text.trim()));
        if *status == Some(200) {
            shared.insert("switchover call answered 200", secs(*at));
        }
    }
    let (haproxy_phases, haproxy_notes) = match &haproxy {
        Some(h) => haproxy_view(h, &up_changes, &nodes[primary].name, fault_at).await,
        None => (BTreeMap::new(), Vec::new()),
    };
    let fault = Fault { scenario, primary, candidate, at: fault_at, answer };
    let mut results = Vec::new();
    for (((via, log), gen), first) in logs.into_iter().zip(fault_gens).zip(firsts) {
        let mut phases = shared.clone();
        let mut notes = shared_notes.clone();
        if via == Via::Haproxy {
            phases.extend(haproxy_phases.clone());
            notes.extend(haproxy_notes.clone());
        }
        results.push(account(args, &nodes, &fault, via, log, gen, first, phases, notes).await);
    }
    drop(haproxy);
    results
}

/// HAProxy's read-write backend around the fault: milestones and a note listing every change.
async fn haproxy_view(
    h: &HaProxy,
    up_changes: &[(Instant, Vec<String>)],
    old_name: &str,
    fault_at: Instant,
) -> (BTreeMap<&'static str, f64>, Vec<String>) {
    let secs = |t: Instant| signed_secs(fault_at, t);
    let mut phases = BTreeMap::new();
    let mut notes = Vec::new();
    let seen: Vec<String> = up_changes
        .iter()
        .map(|(t, up)| {
            format!("{:+.3} s {}", secs(*t), if up.is_empty() { "none".into() } else { up.join("+") })
        })
        .collect();
    notes.push(format!("HAProxy {PRIMARY_BACKEND} backend UP: {}", seen.join(", ")));
    let after = |(t, _): &&(Instant, Vec<String>)| *t >= fault_at;
    let mut first = |name: &'static str, found: Option<&(Instant, Vec<String>)>| {
        if let Some((t, _)) = found {
            phases.insert(name, secs(*t));
        }
    };
    first(
        "haproxy: old primary DOWN",
        up_changes.iter().filter(after).find(|(_, up)| !up.iter().any(|n| n == old_name)),
    );
    first(
        "haproxy: new primary UP",
        up_changes.iter().filter(after).find(|(_, up)| up.iter().any(|n| n != old_name)),
    );
    first("haproxy: no server UP", up_changes.iter().filter(after).find(|(_, up)| up.is_empty()));
    first("haproxy: 2 servers UP", up_changes.iter().filter(after).find(|(_, up)| up.len() > 1));
    // The end state.
    match h.up_servers(PRIMARY_BACKEND).await {
        Ok(up) if up.len() == 1 => {}
        Ok(up) => notes.push(format!("HAProxy at the end: {} servers UP: {up:?}", up.len())),
        Err(e) => notes.push(format!("HAProxy at the end: stats socket: {e}")),
    }
    (phases, notes)
}

/// One writer's result: its window, the acknowledged writes missing on the server it ended on, and
/// whether it ended where the fault should have sent it.
#[allow(clippy::too_many_arguments)]
async fn account(
    args: &Args,
    nodes: &[Member],
    fault: &Fault,
    via: Via,
    log: WriterLog,
    fault_gen: u32,
    first_new: Option<Instant>,
    mut phases: BTreeMap<&'static str, f64>,
    mut notes: Vec<String>,
) -> RunResult {
    let secs = |t: Instant| signed_secs(fault.at, t);
    let errors = log.errors_since(fault.at);
    let late_acks = log.acks.iter().filter(|a| a.generation <= fault_gen && a.at > fault.at).count();
    let acks = log.acks.iter().map(|a| secs(a.at)).collect();
    let Some(first_new) = first_new else {
        let timeout = Duration::from_secs(args.run_timeout_secs);
        let mut result = RunResult::failed(format!("no write acknowledged within {timeout:?} of the fault"));
        result.errors = errors;
        result.phases = phases;
        result.notes = notes;
        result.acks = acks;
        return result;
    };
    let last_old = log.acks.iter().filter(|a| a.generation <= fault_gen).map(|a| a.at).max();
    let Some(last_old) = last_old else {
        return RunResult::failed("no write acknowledged before the fault".to_owned());
    };
    let window = first_new.duration_since(last_old);
    let confirm_acks = log.acks.iter().filter(|a| a.at > first_new).count();
    phases.insert("last write before", secs(last_old));
    if let Some(c) = log.connects.iter().find(|c| c.generation > fault_gen) {
        phases.insert("writer connected", secs(c.at));
    }
    phases.insert("first write after", secs(first_new));

    // Every acknowledged insert on the server the writer ended on (through HAProxy: the server whose
    // port `inet_server_port()` named).
    let new_port = log.connects.iter().rev().find_map(|c| c.port);
    let new_node = new_port.and_then(|p| nodes.iter().position(|n| n.pg_port == p));
    let lost = match new_node {
        Some(i) => match managed::query(nodes[i].pg_port, "SELECT id FROM bench_writes").await {
            Ok(rows) => {
                let present: BTreeSet<i64> = rows.iter().filter_map(|r| r.parse().ok()).collect();
                let missing: Vec<&Ack> = log.acks.iter().filter(|a| !present.contains(&a.id)).collect();
                if !missing.is_empty() {
                    let list: Vec<String> = missing
                        .iter()
                        .take(20)
                        .map(|a| format!("id {} (connection {}, {:+.3} s)", a.id, a.generation, secs(a.at)))
                        .collect();
                    notes.push(format!("lost acknowledged writes: {}", list.join(", ")));
                }
                Some(missing.len())
            }
            Err(e) => {
                eprintln!("   could not read the rows back: {}", pg_error(&e));
                None
            }
        },
        None => None,
    };
    eprintln!(
        "   {}: new primary {}, {} writes in the {} s after, {} acknowledged by the old server after the \
         fault, {} acknowledged writes lost",
        via.name(),
        new_node.map_or("?", |i| nodes[i].name.as_str()),
        confirm_acks,
        args.confirm_secs,
        late_acks,
        lost.map_or("?".to_owned(), |l| l.to_string()),
    );
    for note in &notes {
        eprintln!("   {note}");
    }
    let mut result = RunResult { outcome: Ok(window), phases, lost, late_acks, errors, notes, acks };
    if new_node == Some(fault.primary) && fault.scenario == Scenario::NodeCrash {
        result.outcome = Err("the writer ended on the killed node".to_owned());
    }
    if fault.scenario == Scenario::Switchover {
        if new_node != Some(fault.candidate) {
            let ended = new_node.map_or("?", |i| nodes[i].name.as_str());
            result.outcome = Err(format!(
                "the writer ended on {ended}, not on the candidate {}",
                nodes[fault.candidate].name
            ));
        } else if fault.answer.as_ref().is_none_or(|(status, _, _)| *status != Some(200)) {
            result.outcome = Err("the switchover call did not answer 200".to_owned());
        }
    }
    result
}

/// When the killed postmaster became a zombie, when it was reaped, and when `postmaster.pid` named
/// another process.
#[derive(Debug, Default, Clone, Copy)]
struct PostmasterWatch {
    zombie: Option<Instant>,
    gone: Option<Instant>,
    new_pid: Option<Instant>,
}

/// Polls `/proc/<pid>/stat` and `pidfile` every 5 ms until all three are seen, `stop`, or `limit`.
async fn watch_postmaster(
    pid: libc::pid_t,
    pidfile: PathBuf,
    limit: Duration,
    stop: Arc<AtomicBool>,
) -> PostmasterWatch {
    let mut seen = PostmasterWatch::default();
    let started = Instant::now();
    let polls = limit.as_millis() / 5 + 1;
    for _ in 0..polls {
        let now = Instant::now();
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
                if state == Some("Z") && seen.zombie.is_none() {
                    seen.zombie = Some(now);
                }
            }
            Err(_) => {
                seen.gone.get_or_insert(now);
            }
        }
        if seen.new_pid.is_none() {
            let current = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<libc::pid_t>().ok()));
            if current.is_some_and(|p| p != pid) {
                seen.new_pid = Some(now);
            }
        }
        let done = seen.gone.is_some() && seen.new_pid.is_some();
        if done || stop.load(Ordering::SeqCst) || started.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

/// Stops the writer and waits (up to 5 s) for it to end.
async fn stop_writer(stop: &AtomicBool, task: JoinHandle<()>) {
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

/// The `bootstrap.dcs` lines for `--synchronous-mode`.
fn sync_dcs(args: &Args) -> String {
    format!("synchronous_mode: {}", args.synchronous_mode)
}

/// Waits up to `timeout` until the primary's `GET /cluster` names a synchronous or quorum standby.
async fn sync_published(primary: &Member, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some((_, cluster)) = managed::rest(primary.api_port, "/cluster", Duration::from_secs(2)).await
        {
            let members = cluster["members"].as_array().cloned().unwrap_or_default();
            if members.iter().any(|m| m["role"] == "sync_standby" || m["role"] == "quorum_standby") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Waits up to `timeout` for exactly one node answering 200 on `/primary` and every other one streaming.
async fn settled(nodes: &[Member], timeout: Duration) -> Option<usize> {
    let deadline = Instant::now() + timeout;
    let polls = timeout.as_millis() / 100 + 1;
    let ask = Duration::from_secs(2);
    for _ in 0..polls {
        let mut primaries = Vec::new();
        let mut streaming = 0;
        for (i, node) in nodes.iter().enumerate() {
            if managed::rest(node.api_port, "/primary", ask).await.is_some_and(|(code, _)| code == 200) {
                primaries.push(i);
            } else if let Some((_, s)) = managed::rest(node.api_port, "/patroni", ask).await {
                if s["role"] == "replica" && s["replication_state"] == "streaming" {
                    streaming += 1;
                }
            }
        }
        if primaries.len() == 1 && streaming + 1 == nodes.len() {
            return Some(primaries[0]);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Copies the managers' logs, HAProxy's and PostgreSQL's (`<data dir>/log`) to `to`.
fn keep_logs(cluster: &dyn ManagedCluster, to: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(to)?;
    let haproxy_log = cluster.dir().join("haproxy/haproxy.log");
    if haproxy_log.is_file() {
        std::fs::copy(haproxy_log, to.join("haproxy.log"))?;
    }
    for (name, log) in cluster.logs() {
        let file = log.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::copy(&log, to.join(format!("{name}-{file}")))?;
    }
    for (i, node) in cluster.members().iter().enumerate() {
        if let Ok(entries) = std::fs::read_dir(cluster.data_dir(i).join("log")) {
            for entry in entries.flatten().take(20) {
                let name = format!("{}-pg-{}", node.name, entry.file_name().to_string_lossy());
                let _ = std::fs::copy(entry.path(), to.join(name));
            }
        }
    }
    Ok(to.to_path_buf())
}

// ---------------------------------------------------------------------------------------------------
// The writer.

#[derive(Debug, Clone, Copy)]
struct Ack {
    at: Instant,
    generation: u32,
    id: i64,
}

#[derive(Debug, Clone, Copy)]
struct Connected {
    at: Instant,
    generation: u32,
    port: Option<u16>,
}

#[derive(Debug, Default)]
struct WriterLog {
    acks: Vec<Ack>,
    connects: Vec<Connected>,
    /// The first failures (bounded), with when they happened.
    errors: Vec<(Instant, String)>,
    /// The current connection's number (0: none yet).
    generation: u32,
}

impl WriterLog {
    fn errors_since(&self, at: Instant) -> BTreeMap<String, usize> {
        let mut by_message = BTreeMap::new();
        for (_, e) in self.errors.iter().filter(|(t, _)| *t >= at) {
            *by_message.entry(e.clone()).or_insert(0) += 1;
        }
        by_message
    }
}

/// Kept failures per run, at most.
const MAX_ERRORS: usize = 20_000;

struct Writer {
    conn: String,
    every: Duration,
    attempt: Duration,
    deadline: Instant,
    /// The id after which this writer numbers its rows.
    first_id: i64,
}

/// An open connection; its connection task ends with it.
struct Session {
    client: Client,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Writer {
    /// One insert (or, without a connection, one connection attempt) per tick, until `stop` or the
    /// deadline.
    async fn run(self, log: Arc<Mutex<WriterLog>>, stop: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let max_ticks = self.deadline.saturating_duration_since(Instant::now()).as_millis()
            / self.every.as_millis().max(1)
            + 1;
        let mut session: Option<Session> = None;
        let mut generation = 0;
        let mut next_id: i64 = self.first_id;
        let fail = |what: String| {
            let mut log = log.lock().expect("writer log");
            if log.errors.len() < MAX_ERRORS {
                log.errors.push((Instant::now(), what));
            }
        };
        for _ in 0..max_ticks {
            if stop.load(Ordering::SeqCst) || Instant::now() >= self.deadline {
                break;
            }
            tick.tick().await;
            if session.is_none() {
                match tokio::time::timeout(self.attempt, self.open()).await {
                    Ok(Ok((s, port))) => {
                        generation += 1;
                        let mut log = log.lock().expect("writer log");
                        log.generation = generation;
                        log.connects.push(Connected { at: Instant::now(), generation, port });
                        session = Some(s);
                    }
                    Ok(Err(e)) => fail(format!("connect: {e}")),
                    Err(_) => fail("connect: timed out".to_owned()),
                }
            }
            let Some(s) = &session else { continue };
            next_id += 1;
            let sql = format!("INSERT INTO bench_writes (id) VALUES ({next_id})");
            match tokio::time::timeout(self.attempt, s.client.simple_query(&sql)).await {
                Ok(Ok(_)) => {
                    let ack = Ack { at: Instant::now(), generation, id: next_id };
                    log.lock().expect("writer log").acks.push(ack);
                }
                Ok(Err(e)) => {
                    fail(format!("insert: {}", pg_error(&e)));
                    session = None;
                }
                Err(_) => {
                    fail("insert: timed out".to_owned());
                    session = None;
                }
            }
        }
    }

    /// Connects to the read-write server of the multi-host string; returns its port too.
    async fn open(&self) -> Result<(Session, Option<u16>), String> {
        let (client, connection) =
            tokio_postgres::connect(&self.conn, NoTls).await.map_err(|e| pg_error(&e))?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let session = Session { client, task };
        let rows =
            session.client.simple_query("SELECT inet_server_port()").await.map_err(|e| pg_error(&e))?;
        let port = rows.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).and_then(|p| p.parse().ok()),
            _ => None,
        });
        Ok((session, port))
    }
}

// ---------------------------------------------------------------------------------------------------
// Phases, from the agent logs.

/// Milestones after the fault (seconds, relative to it) found in the agents' logs; with `print`, every
/// log line from 0.2 s before the fault to `until` goes to stderr.
fn phases(
    cluster: &dyn ManagedCluster,
    fault: SystemTime,
    until: f64,
    print: bool,
) -> BTreeMap<&'static str, f64> {
    let fault_sod = seconds_of_day(fault);
    let mut lines: Vec<(f64, String, String)> = Vec::new();
    for (name, file) in cluster.logs() {
        for raw in std::fs::read_to_string(file).unwrap_or_default().lines() {
            let line = strip_ansi(raw);
            let Some((sod, rest)) = split_stamp(&line) else { continue };
            let mut offset = sod - fault_sod;
            if offset > 43_200.0 {
                offset -= 86_400.0;
            } else if offset < -43_200.0 {
                offset += 86_400.0;
            }
            if (-0.2..=until).contains(&offset) {
                lines.push((offset, name.clone(), rest.trim().to_owned()));
            }
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut found: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut start_attempts = 0;
    for (at, node, text) in &lines {
        let at = *at;
        if print {
            eprintln!("   {at:+8.3} s {node}: {text}");
        }
        let mut first = |name: &'static str, t: f64| {
            found.entry(name).or_insert(t);
        };
        if text.contains("lessor active") {
            first("raft: new leader", at);
        }
        if text.contains("leader lease expired") {
            first("lease expired (store)", at);
        }
        if text.contains("reason=no primary") || text.contains("reason=not taking over") {
            first("survivor sees no holder", at);
        }
        if text.contains("reason=no primary: racing") {
            first("race: acquire", at);
        }
        if text.contains("leader lease held") || text.contains("leader lease acquired") {
            first("lease held", at);
        }
        if text.contains("action=Promote") && text.contains(" done") {
            first("promote returned", at);
            if let Some(ms) = field_ms(text, "duration_ms=") {
                first("promote began", at - ms / 1000.0);
            }
        }
        if text.contains("fencing") {
            first("fencing", at);
        }
        // A planned switchover.
        if text.contains("switchover requested") {
            first("switchover: request stored", at);
        }
        if text.contains("reason=switchover: handing over") {
            first("switchover: primary hands over", at);
        }
        if text.contains("action=\"stop_fast\"") && text.contains(" done") {
            first("switchover: old primary stopped", at);
        }
        if text.contains("leader lease released") {
            first("switchover: lease released", at);
        }
        if text.contains("reason=switchover done") {
            first("switchover: new holder clears the request", at);
        }
        if text.contains("reason=lease taken: promoting") {
            first("promotion decided", at);
        }
        if text.contains("reason=following the primary") {
            first("a replica follows the new primary", at);
        }
        // Patroni's messages (patroni/ha.py).
        if text.contains("promoted self to leader by acquiring session lock") {
            first("lease held", at);
            first("promotion decided", at);
        }
        if text.contains("promoted self to leader because I had the session lock") {
            first("promotion decided", at);
        }
        if text.contains("starting primary after failure") {
            first("restart decided", at);
        }
        if text.contains("switchover: demoting myself") {
            first("switchover: primary hands over", at);
        }
        if text.contains("Cleaning up failover key") {
            first("switchover: new holder clears the request", at);
        }
        if text.contains("starting it in place") {
            first("restart decided", at);
        }
        if text.contains("action=StartPrimary") && text.contains(" done") {
            start_attempts += 1;
            // The last one is the start that happened; earlier ones found the old postmaster "running".
            found.insert("restart: pg_ctl start returned", at);
            if let Some(ms) = field_ms(text, "duration_ms=") {
                found.insert("restart: pg_ctl start began", at - ms / 1000.0);
            }
        }
        if text.contains("reason=primary: lease renewed") {
            found.entry("agent sees primary again").or_insert(at);
        }
    }
    if start_attempts > 0 {
        found.insert("StartPrimary jobs (count)", f64::from(start_attempts));
    }
    found
}

fn field_ms(text: &str, key: &str) -> Option<f64> {
    let start = text.find(key)? + key.len();
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A log line's time (seconds since midnight UTC) and the rest: Vigil's `2026-01-02T03:04:05.123456Z text`,
/// Patroni's `2026-01-02 03:04:05,123 INFO: text` (run with TZ=UTC) and etcd's `2026-01-02 03:04:05.123456 I | text`.
fn split_stamp(line: &str) -> Option<(f64, &str)> {
    let (first, rest) = line.split_once(' ')?;
    if let Some(time) = first.split_once('T').and_then(|(_, t)| t.strip_suffix('Z')) {
        return Some((parse_hms(time)?, rest));
    }
    let is_date = first.len() == 10 && first.as_bytes().get(4) == Some(&b'-');
    let (time, rest) = rest.split_once(' ').filter(|_| is_date)?;
    Some((parse_hms(&time.replace(',', "."))?, rest))
}

/// `03:04:05.123` → seconds since midnight.
fn parse_hms(time: &str) -> Option<f64> {
    let mut parts = time.splitn(3, ':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn seconds_of_day(t: SystemTime) -> f64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (since.as_secs() % 86_400) as f64 + f64::from(since.subsec_micros()) / 1e6
}

fn utc_time(t: SystemTime) -> String {
    let sod = seconds_of_day(t);
    let whole = sod as u64;
    format!("{:02}:{:02}:{:06.3}Z", whole / 3600, whole / 60 % 60, sod - (whole - whole % 60) as f64)
}

fn signed_secs(from: Instant, to: Instant) -> f64 {
    if to >= from {
        to.duration_since(from).as_secs_f64()
    } else {
        -from.duration_since(to).as_secs_f64()
    }
}

// ---------------------------------------------------------------------------------------------------
// REST throughput (wrk).

/// One wrk run: its figures as parsed from its output, and the CPU used meanwhile.
struct WrkRun {
    requests_per_sec: Option<f64>,
    requests: Option<u64>,
    /// `--latency` percentiles (50, 75, 90, 99 %), in milliseconds.
    percentiles: Vec<(String, f64)>,
    max_ms: Option<f64>,
    non_2xx: u64,
    socket_errors: Option<String>,
    /// The agent's utime + stime over the run, in % of one core.
    agent_cpu: Option<f64>,
    /// wrk's own (from `getrusage(RUSAGE_CHILDREN)`), in % of one core.
    wrk_cpu: f64,
    output: String,
}

struct WrkReport {
    command: String,
    node: String,
    status_after: String,
    runs: Vec<Result<WrkRun, String>>,
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// The idle footprint (over `idle_secs`; 0: skipped), then wrk (when `wants_wrk`), on one fresh idle
/// cluster.
async fn idle_checks(
    args: &Args,
    target: &Target,
    idle_secs: u64,
    wants_wrk: bool,
) -> (Option<Result<Footprint, String>>, Option<Result<WrkReport, String>>) {
    if idle_secs == 0 && !wants_wrk {
        return (None, None);
    }
    eprintln!("== {}: fresh idle cluster for the footprint ({idle_secs} s) and wrk", target.manager.name());
    let both =
        |e: String| (Some(Err(e.clone())).filter(|_| idle_secs > 0), Some(Err(e)).filter(|_| wants_wrk));
    let cluster = match start_cluster(args, target).await {
        Ok(c) => c,
        Err(e) => return both(e),
    };
    let nodes = cluster.members();
    let Some(primary) = settled(&nodes, Duration::from_secs(args.settle_secs)).await else {
        return both("no primary with streaming replicas".to_owned());
    };
    // Let the bootstrap's aftermath (checkpoints, slot creation) pass.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let footprint = (idle_secs > 0).then(|| footprint(cluster.as_ref(), primary, idle_secs));
    let footprint = match footprint {
        Some(f) => Some(f.await),
        None => None,
    };
    let wrk = if wants_wrk { Some(wrk_bench(args, cluster.as_ref(), primary).await) } else { None };
    (footprint, wrk)
}

async fn wrk_bench(args: &Args, cluster: &dyn ManagedCluster, primary: usize) -> Result<WrkReport, String> {
    let wrk = find_in_path("wrk").ok_or("wrk is missing: apt-get install -y wrk")?;
    let nodes = cluster.members();
    let url = format!("http://127.0.0.1:{}/primary", nodes[primary].api_port);
    let wrk_args = vec![
        format!("-t{}", args.wrk_threads),
        format!("-c{}", args.wrk_connections),
        format!("-d{}s", args.wrk_secs),
        "--latency".to_owned(),
        url,
    ];
    let command = format!("wrk {}", wrk_args.join(" "));
    // SAFETY: sysconf(3) has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let agent_pid = cluster.manager_pid(primary);
    let mut runs = Vec::new();
    for k in 1..=args.wrk_runs {
        eprintln!("   wrk run {k}/{}: {command}", args.wrk_runs);
        let before = agent_pid.and_then(cpu_ticks);
        let children_before = children_cpu_secs();
        let started = Instant::now();
        let output = run_wrk(&wrk, &wrk_args, Duration::from_secs(args.wrk_secs + 30)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let agent_cpu = match (before, agent_pid.and_then(cpu_ticks)) {
            (Some(b), Some(a)) => Some((a.0 - b.0) as f64 / ticks_per_sec / elapsed * 100.0),
            _ => None,
        };
        let wrk_cpu = (children_cpu_secs() - children_before) / elapsed * 100.0;
        let run = output.map(|output| parse_wrk(output, agent_cpu, wrk_cpu));
        match &run {
            Ok(r) => eprintln!(
                "   {} requests/s, p99 {} ms",
                r.requests_per_sec.map_or("?".to_owned(), |v| format!("{v:.0}")),
                r.percentiles
                    .iter()
                    .find(|(p, _)| p == "99%")
                    .map_or("?".to_owned(), |(_, v)| format!("{v:.2}"))
            ),
            Err(e) => eprintln!("   wrk failed: {e}"),
        }
        runs.push(run);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The cluster after the load: the same primary, the same answer.
    let name = &nodes[primary].name;
    let status_after = match managed::rest(nodes[primary].api_port, "/primary", Duration::from_secs(2)).await
    {
        Some((code, _)) => format!("GET /primary on {name} after the runs: {code}"),
        None => format!("GET /primary on {name} after the runs: no answer"),
    };
    Ok(WrkReport { command, node: name.clone(), status_after, runs })
}

/// CPU seconds (user + system) of the waited-for children of this process.
fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage(2) writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Runs wrk, killing it (by PID) after `limit`; its stdout.
async fn run_wrk(wrk: &Path, args: &[String], limit: Duration) -> Result<String, String> {
    use std::io::Read;
    let mut child = std::process::Command::new(wrk)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("start wrk: {e}"))?;
    let started = Instant::now();
    for _ in 0..limit.as_millis() / 50 + 1 {
        match child.try_wait() {
            Ok(Some(status)) => {
                let (mut out, mut err) = (String::new(), String::new());
                if let Some(mut s) = child.stdout.take() {
                    let _ = s.read_to_string(&mut out);
                }
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                return if status.success() { Ok(out) } else { Err(format!("wrk: {status}: {out}{err}")) };
            }
            Ok(None) => {}
            Err(e) => return Err(format!("wrk: {e}")),
        }
        if started.elapsed() >= limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!("wrk did not finish within {limit:?}"))
}

/// `430.00us`, `1.20ms`, `1.02s` → milliseconds.
fn wrk_duration_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    for (unit, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)] {
        if let Some(number) = text.strip_suffix(unit) {
            if let Ok(v) = number.parse::<f64>() {
                return Some(v * factor);
            }
        }
    }
    None
}

fn parse_wrk(output: String, agent_cpu: Option<f64>, wrk_cpu: f64) -> WrkRun {
    let mut run = WrkRun {
        requests_per_sec: None,
        requests: None,
        percentiles: Vec::new(),
        max_ms: None,
        non_2xx: 0,
        socket_errors: None,
        agent_cpu,
        wrk_cpu,
        output: String::new(),
    };
    for line in output.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.requests_per_sec = v.trim().parse().ok();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            run.socket_errors = Some(v.trim().to_owned());
        } else if words.first() == Some(&"Latency") && words.len() >= 4 {
            run.max_ms = wrk_duration_ms(words[3]);
        } else if words.len() == 2 && words[0].ends_with('%') {
            if let Some(ms) = wrk_duration_ms(words[1]) {
                run.percentiles.push((words[0].to_owned(), ms));
            }
        } else if words.len() >= 3 && words[1] == "requests" && words[2] == "in" {
            run.requests = words[0].parse().ok();
        }
    }
    run.output = output;
    run
}

fn print_wrk(args: &Args, wrk: &Result<WrkReport, String>) {
    println!("## REST health checks: `GET /primary` under wrk\n");
    let report = match wrk {
        Ok(r) => r,
        Err(e) => {
            println!("not measured: {e}");
            return;
        }
    };
    println!(
        "`{}` against the primary's agent ({}) of an idle {}-node cluster, {} runs one after the other \
         (wrk on the same machine, competing for its cores). {}.\n",
        report.command,
        report.node,
        args.nodes,
        report.runs.len(),
        report.status_after
    );
    println!(
        "| run | requests | requests/s | p50 ms | p75 ms | p90 ms | p99 ms | max ms | non-2xx | socket errors \
         | agent CPU % of a core | wrk CPU % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let ms = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.2}"));
    let mut rates = Vec::new();
    let mut p99s = Vec::new();
    for (k, run) in report.runs.iter().enumerate() {
        match run {
            Ok(r) => {
                let p = |name: &str| r.percentiles.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                rates.extend(r.requests_per_sec);
                p99s.extend(p("99%"));
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                    k + 1,
                    r.requests.map_or("?".to_owned(), |n| n.to_string()),
                    r.requests_per_sec.map_or("?".to_owned(), |v| format!("{v:.0}")),
                    ms(p("50%")),
                    ms(p("75%")),
                    ms(p("90%")),
                    ms(p("99%")),
                    ms(r.max_ms),
                    r.non_2xx,
                    r.socket_errors.as_deref().unwrap_or("none"),
                    r.agent_cpu.map_or("?".to_owned(), |v| format!("{v:.0}")),
                    r.wrk_cpu
                );
            }
            Err(e) => println!("| {} | failed: {e} | | | | | | | | | | |", k + 1),
        }
    }
    rates.sort_by(f64::total_cmp);
    p99s.sort_by(f64::total_cmp);
    if !rates.is_empty() && !p99s.is_empty() {
        println!("\nmedian over the runs: {:.0} requests/s, p99 {:.2} ms", median(&rates), median(&p99s));
    }
    if let Some(Ok(first)) = report.runs.first() {
        println!("\nwrk's output (run 1):\n\n```text\n{}```\n", first.output);
    }
}

// ---------------------------------------------------------------------------------------------------
// Footprint.

struct Footprint {
    /// `vigil` or `patroni`.
    manager: &'static str,
    /// The managers: (role, node, RSS KiB, peak RSS KiB, CPU % of one core, CPU % of its waited-for
    /// children)
    agents: Vec<(String, String, u64, u64, f64, f64)>,
    /// Processes the manager needs besides its own (Patroni's etcd, Vigil's lifelines): (name, RSS KiB,
    /// CPU % of one core).
    helpers: Vec<(String, u64, f64)>,
    secs: u64,
    ticks_per_sec: i64,
    /// (node, CPU % of one core of its postmaster plus its exited children, i.e. short-lived backends)
    postmasters: Vec<(String, f64)>,
}

async fn footprint(
    cluster: &dyn ManagedCluster,
    primary: usize,
    idle_secs: u64,
) -> Result<Footprint, String> {
    let nodes = cluster.members();
    // SAFETY: sysconf(3) has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i64;
    let pids: Vec<Option<u32>> = (0..nodes.len()).map(|i| cluster.manager_pid(i)).collect();
    let before: Vec<Option<(u64, u64)>> = pids.iter().map(|p| p.and_then(cpu_ticks)).collect();
    let pg_pids: Vec<Option<u32>> =
        (0..nodes.len()).map(|i| cluster.postmaster_pid(i).map(|p| p as u32)).collect();
    let pg_before: Vec<Option<(u64, u64)>> = pg_pids.iter().map(|p| p.and_then(cpu_ticks)).collect();
    let helpers = cluster.helper_pids();
    let helpers_before: Vec<Option<(u64, u64)>> = helpers.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let percent = |ticks: u64| ticks as f64 / ticks_per_sec as f64 / elapsed * 100.0;
    let mut agents = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        let Some(pid) = *pid else { continue };
        let (Some(b), Some(a)) = (before[i], cpu_ticks(pid)) else { continue };
        let (cpu, children) = (percent(a.0 - b.0), percent(a.1 - b.1));
        let rss = status_kib(pid, "VmRSS:").unwrap_or(0);
        let hwm = status_kib(pid, "VmHWM:").unwrap_or(0);
        let role = if i == primary { "primary" } else { "replica" };
        agents.push((role.to_owned(), nodes[i].name.clone(), rss, hwm, cpu, children));
    }
    agents.sort_by_key(|a| a.0 != "primary");
    let mut postmasters = Vec::new();
    for (i, pid) in pg_pids.iter().enumerate() {
        let (Some(pid), Some(b)) = (*pid, pg_before[i]) else { continue };
        let Some(a) = cpu_ticks(pid) else { continue };
        let role = if i == primary { "primary" } else { "replica" };
        postmasters.push((format!("{} ({role})", nodes[i].name), percent((a.0 + a.1) - (b.0 + b.1))));
    }
    let mut others = Vec::new();
    for ((name, pid), before) in helpers.iter().zip(helpers_before) {
        let (Some(b), Some(a)) = (before, cpu_ticks(*pid)) else { continue };
        others.push((name.clone(), status_kib(*pid, "VmRSS:").unwrap_or(0), percent(a.0 - b.0)));
    }
    Ok(Footprint {
        manager: cluster.manager(),
        agents,
        secs: idle_secs,
        ticks_per_sec,
        postmasters,
        helpers: others,
    })
}

/// utime + stime of `pid`, and cutime + cstime (its children it waited for: `pg_ctl`, `pg_controldata`…),
/// in clock ticks.
fn cpu_ticks(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14 to 17 of proc(5); the split starts at field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some((field(14)? + field(15)?, field(16)? + field(17)?))
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------------
// Machine facts and the report.

struct MachineFacts {
    nproc: String,
    kernel: String,
    git: String,
    postgres: String,
    load: String,
    /// CPU model and the versions of the other programs measured or used: (what, first line).
    more: Vec<(&'static str, String)>,
}

impl MachineFacts {
    fn collect(args: &Args, patroni: bool) -> MachineFacts {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
        let head = command("git", &["-C", &repo.to_string_lossy(), "rev-parse", "--short", "HEAD"]);
        // Not trimmed: each porcelain line starts with a two-letter status that may begin with a space.
        let dirty = std::process::Command::new("git")
            .args(["-C", &repo.to_string_lossy(), "status", "--porcelain", "--untracked-files=no"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let changed: Vec<&str> = dirty.lines().filter_map(|l| l.get(3..)).collect();
        let git = if head.is_empty() {
            format!("unknown ({} is not a git checkout)", repo.display())
        } else if changed.is_empty() {
            head
        } else {
            format!("{head} + uncommitted changes in {}", changed.join(", "))
        };
        MachineFacts {
            nproc: command("nproc", &[]),
            kernel: command("uname", &["-r"]),
            git,
            postgres: command(&format!("{PG_BIN}/postgres"), &["--version"]),
            load: loadavg(),
            more: more_facts(args, patroni),
        }
    }
}

fn more_facts(args: &Args, patroni: bool) -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']));
    let mut facts = vec![("CPU", cpu.unwrap_or("?").to_owned())];
    if let Some(haproxy) = find_haproxy_binary() {
        facts.push(("HAProxy", first_line(&haproxy.to_string_lossy(), &["-v"])));
    }
    if let Some(wrk) = find_in_path("wrk") {
        facts.push(("wrk", first_line(&wrk.to_string_lossy(), &["-v"])));
    }
    if patroni {
        if let Some(bin) = &args.patroni_bin {
            facts.push(("Patroni", first_line(&bin.join("patroni").to_string_lossy(), &["--version"])));
        }
        facts.push(("etcd", first_line(&args.etcd.to_string_lossy(), &["--version"])));
    }
    facts
}

/// The first line a program prints (on stdout, else on stderr), e.g. its version.
fn first_line(program: &str, args: &[&str]) -> String {
    match std::process::Command::new(program).args(args).output() {
        Ok(out) => {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
        }
        Err(e) => format!("({program}: {e})"),
    }
}

fn command(program: &str, args: &[&str]) -> String {
    match std::process::Command::new(program).args(args).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Err(e) => format!("({program}: {e})"),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("({e})"))
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn print_report(args: &Args, report: &ManagerReport) {
    if !report.results.is_empty() {
        print_failover(args, report.manager, &report.results);
    }
    if let Some(wrk) = &report.wrk {
        print_wrk(args, wrk);
    }
    print_footprint(report.footprint.as_ref());
}

fn print_machine(facts: &MachineFacts, load_end: &str) {
    println!("\n### Machine\n");
    println!("- nproc: {}", facts.nproc);
    println!("- kernel: {}", facts.kernel);
    println!("- git: {}", facts.git);
    println!("- {}", facts.postgres);
    for (what, fact) in &facts.more {
        println!("- {what}: {fact}");
    }
    println!("- load average (1/5/15 min): {} at start, {load_end} at end", facts.load);
}

/// The figures of a set of runs: their windows, failures and lost writes.
struct Summary {
    /// The windows of the runs that succeeded, in seconds, sorted.
    ok: Vec<f64>,
    failed: usize,
    /// Acknowledged writes lost, over the runs that were checked.
    lost: usize,
    /// Runs whose rows could not be checked.
    unchecked: usize,
}

impl Summary {
    fn of(runs: &[RunResult]) -> Summary {
        let mut ok: Vec<f64> =
            runs.iter().filter_map(|r| r.outcome.as_ref().ok()).map(Duration::as_secs_f64).collect();
        ok.sort_by(f64::total_cmp);
        Summary {
            failed: runs.len() - ok.len(),
            ok,
            lost: runs.iter().filter_map(|r| r.lost).sum(),
            unchecked: runs.iter().filter(|r| r.lost.is_none()).count(),
        }
    }

    /// (median, min, max) of the windows, if any run succeeded.
    fn windows(&self) -> Option<(f64, f64, f64)> {
        let (first, last) = (self.ok.first()?, self.ok.last()?);
        Some((median(&self.ok), *first, *last))
    }

    /// The lost writes, with the unchecked runs.
    fn lost(&self) -> String {
        match self.unchecked {
            0 => self.lost.to_string(),
            n => format!("{} (+{n} runs unchecked)", self.lost),
        }
    }
}

fn print_failover(args: &Args, manager: ManagerArg, results: &[(Scenario, Via, Vec<RunResult>)]) {
    println!("## Failover: write-unavailability window\n");
    println!(
        "{} nodes, fresh cluster per run, {}; writer: one INSERT every \
         {} ms, each attempt bounded by {} ms, `direct`: through a multi-host string with \
         target_session_attrs=read-write, `haproxy`: through HAProxy's read-write port (GET /primary checks, \
         inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions); window = first write acknowledged on a \
         connection opened after the fault − last write acknowledged before it.\n",
        args.nodes,
        manager.label(),
        args.write_every_ms,
        args.attempt_ms
    );
    println!(
        "| scenario | writer via | runs | median (s) | min (s) | max (s) | acked writes lost | failed runs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (scenario, via, runs) in results {
        let sum = Summary::of(runs);
        let (name, via, n, lost, failed) = (scenario.name(), via.name(), runs.len(), sum.lost(), sum.failed);
        match sum.windows() {
            None => println!("| {name} | {via} | {n} | – | – | – | {lost} | {failed} |"),
            Some((m, lo, hi)) => {
                println!("| {name} | {via} | {n} | {m:.2} | {lo:.2} | {hi:.2} | {lost} | {failed} |")
            }
        }
    }

    println!(
        "\n### Where the time goes (seconds after the fault; median, min–max over the runs that have it)\n"
    );
    for (scenario, via, runs) in results {
        let mut names: Vec<&'static str> = runs.iter().flat_map(|r| r.phases.keys().copied()).collect();
        names.sort();
        names.dedup();
        let mut rows: Vec<(f64, String)> = Vec::new();
        for name in names {
            let mut values: Vec<f64> = runs.iter().filter_map(|r| r.phases.get(name).copied()).collect();
            values.sort_by(f64::total_cmp);
            let m = median(&values);
            let (lo, hi, n) = (values[0], values[values.len() - 1], values.len());
            if name.ends_with("(count)") {
                let row = format!("| {name} | {m:.0} | {lo:.0} – {hi:.0} | {n}/{} |", runs.len());
                rows.push((f64::INFINITY, row));
            } else {
                rows.push((m, format!("| {name} | {m:+.2} | {lo:+.2} – {hi:+.2} | {n}/{} |", runs.len())));
            }
        }
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        println!("{} via {} ({}):\n", scenario.name(), via.name(), scenario.what());
        println!("| milestone | median | min – max | runs |");
        println!("|---|---|---|---|");
        for (_, row) in rows {
            println!("{row}");
        }
        println!();
        for (k, r) in runs.iter().enumerate() {
            let window = match &r.outcome {
                Ok(w) => format!("{:.3} s", w.as_secs_f64()),
                Err(e) => format!("FAILED ({e})"),
            };
            let lost = r.lost.map_or("?".to_owned(), |l| l.to_string());
            let errors: Vec<String> = r.errors.iter().map(|(e, n)| format!("{n}× {e}")).collect();
            println!(
                "- run {}: {window}; acked by the old server after the fault: {}; acked writes lost: {lost}; \
                 client errors: {}",
                k + 1,
                r.late_acks,
                if errors.is_empty() { "none".to_owned() } else { errors.join("; ") }
            );
            for note in &r.notes {
                println!("  - {note}");
            }
        }
        println!();
    }
}

fn print_footprint(footprint: Option<&Result<Footprint, String>>) {
    println!("### Manager footprint\n");
    match footprint {
        None => println!("skipped (--idle-secs 0)"),
        Some(Err(e)) => println!("not measured: {e}"),
        Some(Ok(f)) => {
            for (role, node, rss, hwm, cpu, children) in &f.agents {
                println!(
                    "- {role}'s {} ({node}): RSS {:.1} MiB (peak {:.1} MiB), CPU {cpu:.2} % of one core over \
                     {} s idle (utime+stime; its child processes such as pg_ctl/pg_controldata another \
                     {children:.2} %)",
                    f.manager,
                    *rss as f64 / 1024.0,
                    *hwm as f64 / 1024.0,
                    f.secs
                );
            }
            for (name, rss, cpu) in &f.helpers {
                println!(
                    "- {name}: RSS {:.1} MiB, CPU {cpu:.2} % of one core over {} s idle",
                    *rss as f64 / 1024.0,
                    f.secs
                );
            }
            let pg: Vec<String> = f.postmasters.iter().map(|(n, c)| format!("{n} {c:.2} %")).collect();
            println!(
                "- for comparison, PostgreSQL postmaster + its exited children (short-lived backends) over the \
                 same window: {}",
                pg.join(", ")
            );
            println!("- clock ticks per second (sysconf _SC_CLK_TCK): {}", f.ticks_per_sec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_of_both_managers_and_etcd_have_their_time_read() {
        let vigil = "2026-11-22T04:15:25.440123Z  INFO vigil_agent::ha: leader lease held";
        let (sod, rest) = split_stamp(vigil).expect("vigil line");
        assert!((sod - (4.0 * 3600.0 + 15.0 * 60.0 + 25.440123)).abs() < 1e-6);
        assert_eq!(rest.trim(), "INFO vigil_agent::ha: leader lease held");
        let patroni = "2026-11-22 04:15:25,440 INFO: promoted self to leader by acquiring session lock";
        let (sod, rest) = split_stamp(patroni).expect("patroni line");
        assert!((sod - 15325.44).abs() < 1e-6);
        assert_eq!(rest, "INFO: promoted self to leader by acquiring session lock");
        let etcd = "2026-11-22 04:15:25.440000 I | etcdserver: published";
        assert!(split_stamp(etcd).is_some_and(|(sod, _)| (sod - 15325.44).abs() < 1e-6));
        assert!(split_stamp("no time here").is_none());
    }

    #[test]
    fn a_summary_takes_the_median_of_the_runs_that_succeeded() {
        let run = |secs: Option<f64>, lost: Option<usize>| RunResult {
            outcome: secs.map(Duration::from_secs_f64).ok_or_else(|| "failed".to_owned()),
            lost,
            ..RunResult::failed(String::new())
        };
        let runs =
            [run(Some(3.0), Some(0)), run(None, None), run(Some(1.0), Some(2)), run(Some(2.0), Some(0))];
        let sum = Summary::of(&runs);
        assert_eq!(sum.windows(), Some((2.0, 1.0, 3.0)));
        assert_eq!(sum.failed, 1);
        assert_eq!(sum.lost(), "2 (+1 runs unchecked)");
    }
}
