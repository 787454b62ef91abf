//! How Vigil's cost grows (issue 20, "Scale"): `--scenario scale` measures, for each cluster size of
//! `--members` (default 3,5,7,9), the node-crash window (direct writer, `--runs` fresh clusters), and on one
//! more idle cluster the primary's lease renewals (`vigil_lease_renewal_duration_seconds` from
//! `GET /metrics`, before and after the idle window) and every member's CPU and RSS over `--idle-secs`.
//! `--scenario scale-idle` starts 3-member clusters with a tiny PostgreSQL (shared_buffers 16MB,
//! max_connections 20) one batch after the other, as a hosting provider would run them on one machine, and
//! at each count of `--clusters` (default 10,25,50) measures the agents' and PostgreSQL's CPU and memory
//! (PSS, which splits shared pages fairly) per cluster over `--idle-secs`.

use super::{
    cpu_ticks, footprint, loadavg, median, one_run, settled, start_cluster, status_kib, Args, Footprint,
    ManagerArg, RunResult, Scenario, Summary, Target, Via,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;
use vigil_integration::agents::{free_port, AgentCluster, ConfigEdit, Placement};
use vigil_integration::managed::ManagedCluster;

/// The renewal-latency histogram the agents export.
const RENEWAL: &str = "vigil_lease_renewal_duration_seconds";

/// A histogram of one scrape: cumulative counts by upper bound (`le`), sum and count.
#[derive(Debug, Clone, PartialEq)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Histogram {
    /// The series `name` of a Prometheus text scrape holding one label set.
    fn parse(text: &str, name: &str) -> Option<Histogram> {
        let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.trim().parse::<f64>().ok());
        let mut h = Histogram { buckets: Vec::new(), sum: 0.0, count: 0.0 };
        let mut seen = false;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&format!("{name}_bucket")) {
                let le = rest.split("le=\"").nth(1).and_then(|l| l.split('"').next())?;
                let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
                h.buckets.push((le, value(line)?));
            } else if line.starts_with(&format!("{name}_sum")) {
                h.sum = value(line)?;
                seen = true;
            } else if line.starts_with(&format!("{name}_count")) {
                h.count = value(line)?;
            }
        }
        seen.then_some(h)
    }

    /// The observations between `before` and `self`.
    fn since(&self, before: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|(le, n)| {
                let old = before.buckets.iter().find(|(l, _)| l == le).map_or(0.0, |(_, o)| *o);
                (*le, n - old)
            })
            .collect();
        Histogram { buckets, sum: self.sum - before.sum, count: self.count - before.count }
    }

    /// The upper bound of the bucket holding quantile `q` (a bound, not an estimate).
    fn quantile_bound(&self, q: f64) -> Option<f64> {
        let want = q * self.count;
        self.buckets.iter().find(|(_, n)| *n >= want && *n > 0.0).map(|(le, _)| *le)
    }
}

/// `GET /metrics` of the agent on `api_port`.
async fn scrape(api_port: u16) -> Result<String, String> {
    let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{api_port}/metrics");
    let response = http.get(url).timeout(Duration::from_secs(5)).send().await.map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

/// What one cluster size measured.
struct SizeReport {
    members: usize,
    runs: Vec<RunResult>,
    idle: Result<(Footprint, Option<Histogram>), String>,
}

/// `--scenario scale`: every size of `--members`.
pub(super) async fn members(args: &Args, vigil: &Path) -> Result<(), String> {
    if args.members.iter().any(|n| *n < 2) {
        return Err(format!("--members {:?}: every size must be at least 2", args.members));
    }
    let load_start = loadavg();
    let mut sizes = Vec::new();
    for n in &args.members {
        let sized = Args { nodes: *n, ..args.clone() };
        let target = Target { manager: ManagerArg::Vigil, vigil: vigil.to_path_buf(), ports: None };
        let mut runs = Vec::new();
        for k in 1..=args.runs {
            eprintln!("== scale: {n} members, node-crash run {k}/{}", args.runs);
            let result = one_run(&sized, &target, Scenario::NodeCrash, &[Via::Direct], k).await;
            for r in result {
                match &r.outcome {
                    Ok(w) => eprintln!("   window {:.3} s", w.as_secs_f64()),
                    Err(e) => eprintln!("   FAILED: {e}"),
                }
                runs.push(r);
            }
        }
        let idle_secs = args.idle_secs.unwrap_or(30).max(1);
        eprintln!("== scale: {n} members, idle cluster ({idle_secs} s)");
        let idle = idle_size(&sized, &target, idle_secs).await;
        sizes.push(SizeReport { members: *n, runs, idle });
    }
    print_members(args, &sizes, &load_start);
    Ok(())
}

/// One idle cluster of `args.nodes`: every member's footprint and the primary's renewals over the window.
async fn idle_size(
    args: &Args,
    target: &Target,
    idle_secs: u64,
) -> Result<(Footprint, Option<Histogram>), String> {
    let cluster = start_cluster(args, target).await?;
    let nodes = cluster.members();
    let primary = settled(&nodes, Duration::from_secs(args.settle_secs))
        .await
        .ok_or("no primary with streaming replicas")?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let api = nodes[primary].api_port;
    let before = scrape(api).await.ok().and_then(|t| Histogram::parse(&t, RENEWAL));
    let f = footprint(cluster.as_ref(), primary, idle_secs).await?;
    let after = scrape(api).await.ok().and_then(|t| Histogram::parse(&t, RENEWAL));
    let renewals = match (before, after) {
        (Some(b), Some(a)) => Some(a.since(&b)),
        _ => None,
    };
    Ok((f, renewals))
}

fn print_members(args: &Args, sizes: &[SizeReport], load_start: &str) {
    println!("# Scale: cluster size (Vigil)\n");
    println!(
        "Vigil's default timing, release build, every member on 127.0.0.1 of one machine. Failover: \
         {} fresh cluster(s) per size, node-crash (kill -9 of the primary's agent and postmaster), direct \
         writer (one INSERT every {} ms, libpq multi-host string). Idle: one more fresh cluster per size, \
         {} s window after it settled: the primary's lease renewals from its \
         `{RENEWAL}` histogram (scraped before and after; p50/p99 are bucket bounds), and every agent's \
         utime+stime and RSS.\n",
        args.runs,
        args.write_every_ms,
        args.idle_secs.unwrap_or(30).max(1)
    );
    let base = sizes.first().and_then(|s| Summary::of(&s.runs).windows()).map(|w| w.0);
    println!(
        "| members | window / first size's | node-crash window median (min–max) s | failed runs | lost | \
         renewals | renew mean ms | renew p50 ≤ ms | renew p99 ≤ ms | primary agent CPU % | replica agents \
         CPU % median (max) | lifelines CPU % (sum) | agent RSS MiB primary / replicas median |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in sizes {
        let sum = Summary::of(&s.runs);
        let (ratio, window) = match (sum.windows(), base) {
            (Some((m, lo, hi)), Some(b)) if b > 0.0 => {
                (format!("{:.2}", m / b), format!("{m:.2} ({lo:.2}–{hi:.2})"))
            }
            (Some((m, lo, hi)), _) => ("–".to_owned(), format!("{m:.2} ({lo:.2}–{hi:.2})")),
            (None, _) => ("–".to_owned(), "–".to_owned()),
        };
        let idle = match &s.idle {
            Ok((f, renewals)) => idle_cells(f, renewals.as_ref()),
            Err(e) => format!("not measured: {e} | | | | | | | |"),
        };
        println!("| {} | {ratio} | {window} | {} | {} | {idle}", s.members, sum.failed, sum.lost());
    }
    println!();
    for s in sizes {
        for (k, r) in s.runs.iter().enumerate() {
            let phase = |name: &str| r.phases.get(name).map_or("–".to_owned(), |t| format!("{t:+.2}"));
            let window = match &r.outcome {
                Ok(w) => format!("{:.3} s", w.as_secs_f64()),
                Err(e) => format!("FAILED ({e})"),
            };
            println!(
                "- {} members, run {}: {window}; raft leader {} s, lease held {} s, promote returned {} s",
                s.members,
                k + 1,
                phase("raft: new leader"),
                phase("lease held"),
                phase("promote returned")
            );
        }
    }
    println!("\nLoad average (1/5/15 min): {load_start} at start, {} at end.\n", loadavg());
}

/// The idle columns of a size's row.
fn idle_cells(f: &Footprint, renewals: Option<&Histogram>) -> String {
    let ms = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}", v * 1000.0));
    let renew = match renewals {
        Some(h) if h.count > 0.0 => format!(
            "{:.0} | {} | {} | {} |",
            h.count,
            ms(Some(h.sum / h.count)),
            ms(h.quantile_bound(0.5)),
            ms(h.quantile_bound(0.99))
        ),
        _ => "– | – | – | – |".to_owned(),
    };
    let cpu = |role: &str| -> Vec<f64> {
        let mut v: Vec<f64> = f.agents.iter().filter(|a| a.0 == role).map(|a| a.4).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let rss = |role: &str| -> Vec<f64> {
        let mut v: Vec<f64> = f.agents.iter().filter(|a| a.0 == role).map(|a| a.2 as f64 / 1024.0).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (primary, replicas) = (cpu("primary"), cpu("replica"));
    let show = |v: &[f64]| if v.is_empty() { "–".to_owned() } else { format!("{:.2}", median(v)) };
    let max = replicas.last().map_or("–".to_owned(), |m| format!("{m:.2}"));
    let lifelines: f64 = f.helpers.iter().map(|h| h.2).sum();
    format!(
        "{renew} {} | {} ({max}) | {lifelines:.2} | {} / {} |",
        show(&primary),
        show(&replicas),
        show(&rss("primary")),
        show(&rss("replica"))
    )
}

// ---------------------------------------------------------------------------------------------------
// Many small clusters on one machine.

/// Clusters started at once, then waited for.
const BATCH: usize = 5;

/// A 3-member cluster whose PostgreSQL takes little memory: what a hosting provider would run by the
/// dozen.
fn tiny(yaml: &str) -> String {
    yaml.replace(
        "  parameters:\n    unix_socket_directories:",
        "  parameters:\n    shared_buffers: 16MB\n    max_connections: 20\n    max_worker_processes: 2\n\
         \x20   unix_socket_directories:",
    )
}

/// Starts a tiny 3-member cluster on fresh ports (up to 3 attempts, as [`start_cluster`]).
async fn start_tiny(vigil: &Path) -> Result<AgentCluster, String> {
    let mut last = String::new();
    for _ in 0..3 {
        let placements: Vec<Placement> = (0..3)
            .map(|_| Placement {
                host: "127.0.0.1".to_owned(),
                pg_port: free_port(),
                api_port: free_port(),
                raft_port: free_port(),
                wrapper: Vec::new(),
            })
            .collect();
        let edit: ConfigEdit = Box::new(tiny);
        let mut cluster = AgentCluster::start_placed(vigil.to_path_buf(), &placements, "127.0.0.1/32", edit);
        match cluster.agents_started(Duration::from_secs(60)).await {
            Ok(()) => return Ok(cluster),
            Err(e) => last = e,
        }
    }
    Err(format!("3 attempts to start a cluster failed, the last one: {last}"))
}

/// A running cluster and its primary when it settled.
struct Hosted {
    cluster: AgentCluster,
    primary: usize,
}

/// What one count of clusters measured.
struct CountReport {
    clusters: usize,
    secs: f64,
    /// utime+stime in % of one core: agents (with their lifelines), PostgreSQL (every process).
    agents_cpu: f64,
    pg_cpu: f64,
    /// PSS in MiB at the end of the window.
    agents_pss: f64,
    pg_pss: f64,
    /// Clusters whose primary at the end is not the one they settled with (or none).
    moved: usize,
    load: String,
}

/// `--scenario scale-idle`: grows to each count of `--clusters` and measures the idle cost.
pub(super) async fn clusters(args: &Args, vigil: &Path) -> Result<(), String> {
    let mut counts = args.clusters.clone();
    counts.sort_unstable();
    counts.dedup();
    if counts.first().is_none_or(|c| *c == 0) {
        return Err(format!("--clusters {:?}: give counts of at least 1", args.clusters));
    }
    let idle_secs = args.idle_secs.unwrap_or(30).max(1);
    let load_start = loadavg();
    print_clusters_head(args, idle_secs);
    let mut hosted: Vec<Hosted> = Vec::new();
    let mut reports: Vec<CountReport> = Vec::new();
    let mut stopped = None;
    'counts: for count in counts {
        while hosted.len() < count {
            let batch = BATCH.min(count - hosted.len());
            eprintln!("== scale-idle: starting clusters {}–{}", hosted.len() + 1, hosted.len() + batch);
            let mut started = Vec::new();
            for _ in 0..batch {
                match start_tiny(vigil).await {
                    Ok(c) => started.push(c),
                    Err(e) => {
                        stopped = Some(format!("cluster {}: {e}", hosted.len() + started.len() + 1));
                        break 'counts;
                    }
                }
            }
            for cluster in started {
                let nodes = cluster.members();
                match settled(&nodes, Duration::from_secs(args.settle_secs)).await {
                    Some(primary) => hosted.push(Hosted { cluster, primary }),
                    None => {
                        let n = hosted.len() + 1;
                        stopped = Some(format!("cluster {n}: no primary with streaming replicas"));
                        break 'counts;
                    }
                }
            }
        }
        // Let the bootstraps' aftermath (checkpoints, slots) pass.
        tokio::time::sleep(Duration::from_secs(10)).await;
        eprintln!("== scale-idle: {count} clusters, {idle_secs} s idle window");
        let report = measure_hosted(&hosted, idle_secs).await;
        // Each row as soon as it is measured: a run stopped later keeps it.
        let base = reports.first().map_or(report.agents_cpu / report.clusters as f64, |r: &CountReport| {
            r.agents_cpu / r.clusters as f64
        });
        let row = count_row(&report, base);
        eprintln!("   {row}");
        println!("{row}");
        reports.push(report);
    }
    print_clusters_end(&reports, stopped.as_deref(), &load_start);
    drop(hosted);
    Ok(())
}

/// The idle cost of every hosted cluster over `idle_secs`.
async fn measure_hosted(hosted: &[Hosted], idle_secs: u64) -> CountReport {
    // SAFETY: sysconf(3) has no preconditions.
    let ticks_per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let agents: Vec<u32> = hosted
        .iter()
        .flat_map(|h| {
            let c = &h.cluster;
            let own = (0..c.nodes.len()).filter_map(|i| c.manager_pid(i));
            own.chain(c.helper_pids().into_iter().map(|(_, p)| p)).collect::<Vec<_>>()
        })
        .collect();
    let postmasters: Vec<u32> = hosted
        .iter()
        .flat_map(|h| {
            (0..h.cluster.nodes.len()).filter_map(|i| h.cluster.postmaster_pid(i).map(|p| p as u32))
        })
        .collect();
    // Only the processes alive at both ends count; a postmaster's cutime/cstime holds its children that
    // exited (short-lived backends), the others are counted themselves.
    let ticks = |pids: &[u32], with_children: bool| -> BTreeMap<u32, u64> {
        pids.iter()
            .filter_map(|p| cpu_ticks(*p).map(|(own, ch)| (*p, own + if with_children { ch } else { 0 })))
            .collect()
    };
    let pg_children = children_of(&postmasters);
    let before = (ticks(&agents, false), ticks(&postmasters, true), ticks(&pg_children, false));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs)).await;
    let secs = started.elapsed().as_secs_f64();
    let after = (ticks(&agents, false), ticks(&postmasters, true), ticks(&pg_children, false));
    let used = |b: &BTreeMap<u32, u64>, a: &BTreeMap<u32, u64>| -> f64 {
        let t: u64 = a.iter().filter_map(|(p, n)| b.get(p).map(|o| n.saturating_sub(*o))).sum();
        t as f64 / ticks_per_sec / secs * 100.0
    };
    let agents_cpu = used(&before.0, &after.0);
    let pg_cpu = used(&before.1, &after.1) + used(&before.2, &after.2);
    let pss = |pids: &[u32]| pids.iter().filter_map(|p| pss_kib(*p)).sum::<u64>() as f64 / 1024.0;
    let pg_all: Vec<u32> = postmasters.iter().copied().chain(children_of(&postmasters)).collect();
    let mut moved = 0;
    for h in hosted {
        let nodes = h.cluster.members();
        let mut primaries = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let answer =
                vigil_integration::managed::rest(n.api_port, "/primary", Duration::from_secs(2)).await;
            if answer.is_some_and(|(code, _)| code == 200) {
                primaries.push(i);
            }
        }
        if primaries != [h.primary] {
            moved += 1;
        }
    }
    CountReport {
        clusters: hosted.len(),
        secs,
        agents_cpu,
        pg_cpu,
        agents_pss: pss(&agents),
        pg_pss: pss(&pg_all),
        moved,
        load: loadavg(),
    }
}

/// The processes whose parent is one of `parents`.
fn children_of(parents: &[u32]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| status_kib(*pid, "PPid:").is_some_and(|pp| parents.contains(&(pp as u32))))
        .collect()
}

/// The proportional set size of `pid` (`Pss:` of `/proc/<pid>/smaps_rollup`), in KiB.
fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Pss:"))?;
    line["Pss:".len()..].split_whitespace().next()?.parse().ok()
}

/// The text and the table's head of `--scenario scale-idle`, printed before any cluster starts.
fn print_clusters_head(args: &Args, idle: u64) {
    println!("# Scale: many 3-member clusters on one machine (Vigil)\n");
    println!(
        "Each cluster: 3 agents (release build, default timing) and 3 PostgreSQL 15 servers with \
         shared_buffers 16MB, max_connections 20, max_worker_processes 2, fsync off; all on 127.0.0.1, started \
         {BATCH} at a time; every count measured over a {idle} s idle window once all its clusters \
         settled (+10 s). CPU: utime+stime in % of one core (agents with their lifelines; PostgreSQL: every \
         postmaster and its processes). Memory: PSS (shared pages split between their users) at the end of \
         the window. Settle timeout {} s.\n",
        args.settle_secs
    );
    println!(
        "| clusters | agent CPU per cluster / first count's | agents CPU % per cluster | PostgreSQL CPU % per \
         cluster | agents PSS MiB per cluster | PostgreSQL PSS MiB per cluster | agents CPU % in all | \
         clusters whose primary moved | load at end |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
}

/// One count's row; `base`: the agents' CPU per cluster at the first count.
fn count_row(r: &CountReport, base: f64) -> String {
    let n = r.clusters as f64;
    let ratio = if base > 0.0 { format!("{:.2}", r.agents_cpu / n / base) } else { "–".to_owned() };
    format!(
        "| {} | {ratio} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} | {} | {} |",
        r.clusters,
        r.agents_cpu / n,
        r.pg_cpu / n,
        r.agents_pss / n,
        r.pg_pss / n,
        r.agents_cpu,
        r.moved,
        r.load
    )
}

/// What follows the rows: why growing stopped, if it did, the windows and the load.
fn print_clusters_end(reports: &[CountReport], stopped: Option<&str>, load_start: &str) {
    if let Some(why) = stopped {
        println!("\nStopped growing: {why}.");
    }
    let windows: Vec<String> = reports.iter().map(|r| format!("{:.1}", r.secs)).collect();
    println!(
        "\nWindows measured (s): {}. Load average (1/5/15 min): {load_start} at start, {} at end.\n",
        windows.join(", "),
        loadavg()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# TYPE vigil_lease_renewal_duration_seconds histogram\n\
        vigil_lease_renewal_duration_seconds_bucket{scope=\"it\",name=\"node1\",le=\"0.001\"} 1\n\
        vigil_lease_renewal_duration_seconds_bucket{scope=\"it\",name=\"node1\",le=\"0.0025\"} 8\n\
        vigil_lease_renewal_duration_seconds_bucket{scope=\"it\",name=\"node1\",le=\"0.005\"} 10\n\
        vigil_lease_renewal_duration_seconds_bucket{scope=\"it\",name=\"node1\",le=\"+Inf\"} 10\n\
        vigil_lease_renewal_duration_seconds_sum{scope=\"it\",name=\"node1\"} 0.02\n\
        vigil_lease_renewal_duration_seconds_count{scope=\"it\",name=\"node1\"} 10\n\
        vigil_store_read_duration_seconds_sum{scope=\"it\",name=\"node1\"} 7\n";

    #[test]
    fn renewals_between_two_scrapes_give_their_count_mean_and_bounds() {
        let after = Histogram::parse(SCRAPE, RENEWAL).expect("histogram");
        assert_eq!(after.count, 10.0);
        assert_eq!(after.buckets.len(), 4);
        assert_eq!(after.buckets[3].0, f64::INFINITY);
        let before = Histogram {
            buckets: vec![(0.001, 1.0), (0.0025, 2.0), (0.005, 2.0), (f64::INFINITY, 2.0)],
            sum: 0.004,
            count: 2.0,
        };
        let window = after.since(&before);
        assert_eq!(window.count, 8.0);
        assert!((window.sum - 0.016).abs() < 1e-12);
        assert_eq!(window.quantile_bound(0.5), Some(0.0025));
        assert_eq!(window.quantile_bound(0.99), Some(0.005));
        assert!(Histogram::parse(SCRAPE, "vigil_ha_cycle_duration_seconds").is_none());
    }

    #[test]
    fn a_tiny_cluster_gets_small_postgresql_settings() {
        let yaml = "postgresql:\n  parameters:\n    unix_socket_directories: /x/sock\n";
        let edited = tiny(yaml);
        assert!(edited.contains("    shared_buffers: 16MB\n"), "{edited}");
        assert!(edited.contains(
            "    max_connections: 20\n    max_worker_processes: 2\n    unix_socket_directories: /x/sock"
        ));
    }
}
