//! The side-by-side report of `--manager a,b,…` (what `bench/compare.sh` prints first): per scenario and
//! writer, every manager's write-unavailability window and lost writes and Vigil's median over each
//! other manager's; then every manager's idle footprint and `GET /primary` throughput.

use super::timeline_svg::{self, Series};
use super::{median, Args, ManagerArg, ManagerReport, RunResult, Scenario, Summary, Via};
use std::path::Path;

pub(super) fn print_comparison(args: &Args, reports: &[ManagerReport]) {
    println!("# Vigil vs Patroni\n");
    println!(
        "{} PostgreSQL 15 nodes on 127.0.0.1, the same ports and the same HAProxy config for every manager \
         (`GET /primary` checks, `inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions`); {} runs per \
         scenario and manager, a fresh cluster for each. Two writers at once in every run, one INSERT every \
         {} ms each (attempts bounded by {} ms): `haproxy` through HAProxy's read-write port, `direct` \
         through a libpq multi-host string with `target_session_attrs=read-write`. Window = first write \
         acknowledged on a connection opened after the fault − last write acknowledged before it; lost = \
         acknowledged writes missing on the server the writer ended on.\n",
        args.nodes, args.runs, args.write_every_ms, args.attempt_ms
    );
    for r in reports {
        println!("- **{}**: {}", r.manager.name(), r.manager.label());
    }
    println!();
    print_windows(reports);
    print_idle(reports);
}

/// Seconds, with the failed runs when there are any: `2.41 (2.10–3.05)`, `– (10 failed)`.
fn cell(sum: &Summary) -> String {
    let failed = if sum.failed > 0 { format!(", {} failed", sum.failed) } else { String::new() };
    match sum.windows() {
        Some((m, lo, hi)) => format!("{m:.2} ({lo:.2}–{hi:.2}{failed})"),
        None => format!("– ({} failed)", sum.failed),
    }
}

fn print_windows(reports: &[ManagerReport]) {
    let vigil = reports.iter().position(|r| r.manager == ManagerArg::Vigil);
    let others: Vec<&ManagerReport> = reports.iter().filter(|r| r.manager != ManagerArg::Vigil).collect();
    // Ratios first: they hold even where a loaded machine moves the seconds.
    let mut header = "| scenario | writer via |".to_owned();
    if vigil.is_some() {
        for o in &others {
            header += &format!(" vigil / {} |", o.manager.name());
        }
    }
    for r in reports {
        header += &format!(" {}: median (min–max) s | {}: lost |", r.manager.name(), r.manager.name());
    }
    println!("## Write unavailability\n");
    println!("{header}");
    println!("{}", "|---".repeat(header.matches(" |").count()) + "|");
    let Some(first) = reports.first() else { return };
    for (scenario, via, _) in &first.results {
        let summaries: Vec<Option<Summary>> = reports
            .iter()
            .map(|r| {
                let found = r.results.iter().find(|(s, v, _)| s == scenario && v == via);
                found.map(|(_, _, runs)| Summary::of(runs))
            })
            .collect();
        let mut row = format!("| {} | {} |", scenario.name(), via.name());
        if let Some(v) = vigil {
            let vigil_median = summaries[v].as_ref().and_then(Summary::windows).map(|w| w.0);
            for (i, r) in reports.iter().enumerate().filter(|(_, r)| r.manager != ManagerArg::Vigil) {
                let other = summaries[i].as_ref().and_then(Summary::windows).map(|w| w.0);
                match (vigil_median, other) {
                    (Some(a), Some(b)) if b > 0.0 => row += &format!(" {:.2} |", a / b),
                    _ => row += &format!(" – ({}) |", r.manager.name()),
                }
            }
        }
        for sum in &summaries {
            match sum {
                Some(sum) => row += &format!(" {} | {} |", cell(sum), sum.lost()),
                None => row += " – | – |",
            }
        }
        println!("{row}");
    }
    println!();
}

fn print_idle(reports: &[ManagerReport]) {
    println!("## Idle footprint and `GET /primary` throughput\n");
    println!(
        "| manager | process | RSS MiB | CPU % of one core, idle | `GET /primary` requests/s | p99 ms | non-2xx \
         | manager CPU % under wrk |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in reports {
        let name = r.manager.name();
        let wrk = wrk_figures(r);
        match &r.footprint {
            Some(Ok(f)) => {
                for (k, (role, node, rss, _, cpu, _)) in f.agents.iter().enumerate() {
                    let wrk_cells = if k == 0 { wrk.clone() } else { " | | | |".to_owned() };
                    println!(
                        "| {name} | {} on the {role} ({node}) | {:.1} | {cpu:.2} | {wrk_cells}",
                        f.manager,
                        *rss as f64 / 1024.0
                    );
                }
                // Patroni's helper is its store, one for the cluster; Vigil's are the lifelines, one a node.
                let what =
                    if r.manager == ManagerArg::Vigil { "" } else { " (its DCS, one for the cluster)" };
                for (helper, rss, cpu) in &f.helpers {
                    println!("| {name} | {helper}{what} | {:.1} | {cpu:.2} | | | | |", *rss as f64 / 1024.0);
                }
            }
            Some(Err(e)) => println!("| {name} | not measured: {e} | | | {wrk}"),
            None => println!("| {name} | not measured | | | {wrk}"),
        }
    }
    println!(
        "\nRSS is `VmRSS` at the end of the idle window; CPU is utime + stime from `/proc/<pid>/stat` over it \
         (the manager's own process; PostgreSQL not included). wrk runs against the primary's REST API \
         on the same 2 cores as the cluster.\n"
    );
}

/// `requests/s | p99 | non-2xx | CPU |` cells of the manager's wrk runs (medians over the runs).
fn wrk_figures(r: &ManagerReport) -> String {
    let Some(Ok(report)) = &r.wrk else { return "– | – | – | – |".to_owned() };
    let runs: Vec<_> = report.runs.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut rates: Vec<f64> = runs.iter().filter_map(|r| r.requests_per_sec).collect();
    let mut p99s: Vec<f64> =
        runs.iter().filter_map(|r| r.percentiles.iter().find(|(p, _)| p == "99%").map(|(_, v)| *v)).collect();
    let mut cpus: Vec<f64> = runs.iter().filter_map(|r| r.agent_cpu).collect();
    let non_2xx: u64 = runs.iter().map(|r| r.non_2xx).sum();
    for v in [&mut rates, &mut p99s, &mut cpus] {
        v.sort_by(f64::total_cmp);
    }
    let show = |v: &[f64], digits: usize| {
        if v.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.*}", digits, median(v))
        }
    };
    format!("{} | {} | {non_2xx} | {} |", show(&rates, 0), show(&p99s, 2), show(&cpus, 0))
}

/// The milestones marked on a timeline, the first one a run has: the promotion, or (after a crash of
/// PostgreSQL alone) the restart in place, else the lease taken.
const MARKERS: [&str; 5] = [
    "promotion decided",
    "promote returned",
    "restart decided",
    "restart: pg_ctl start returned",
    "lease held",
];

/// The series of one run of one manager for its timeline.
fn series(manager: ManagerArg, run: &RunResult) -> Series {
    let marker = MARKERS.iter().find_map(|m| run.phases.get(m).map(|at| ((*m).to_owned(), *at)));
    Series { label: manager.name().to_owned(), acks: run.acks.clone(), marker }
}

/// For each scenario, the first run of every manager (its direct writer, or its only one) drawn on one
/// time axis to `<prefix>-<scenario>.svg`; then a Markdown section showing each file (by its name: the
/// report lies next to them).
pub(super) fn draw_timelines(
    args: &Args,
    prefix: &Path,
    sets: &[(Scenario, Vec<Via>)],
    reports: &[ManagerReport],
) {
    let mut shown = Vec::new();
    for (scenario, vias) in sets {
        let via = if vias.contains(&Via::Direct) { Via::Direct } else { vias[0] };
        let mut all = Vec::new();
        let mut last_event: f64 = 0.0;
        for r in reports {
            let found = r.results.iter().find(|(s, v, _)| s == scenario && *v == via);
            let Some(run) = found.and_then(|(_, _, runs)| runs.first()) else { continue };
            if let Some(first) = run.phases.get("first write after") {
                last_event = last_event.max(*first);
            }
            all.push(series(r.manager, run));
        }
        if all.is_empty() {
            continue;
        }
        let name =
            format!("{}-{}.svg", prefix.file_name().unwrap_or_default().to_string_lossy(), scenario.name());
        let path = prefix.with_file_name(&name);
        let title =
            format!("{}: writes acknowledged per 100 ms, writer via {} (run 1)", scenario.name(), via.name());
        match timeline_svg::write(&path, &title, &all, last_event) {
            Ok(()) => {
                eprintln!("timeline: {}", path.display());
                shown.push((*scenario, name));
            }
            Err(e) => eprintln!("timeline of {}: {e}", scenario.name()),
        }
    }
    if shown.is_empty() {
        return;
    }
    println!("## Write timelines (run 1 of each scenario)\n");
    println!(
        "Writes acknowledged per 100 ms by the `direct` writer (one INSERT every {} ms), every manager on one \
         time axis, seconds after the fault; the fault (black) and each manager's promotion (or restart in \
         place, dashed) marked.\n",
        args.write_every_ms
    );
    for (scenario, name) in shown {
        println!("![{} write timeline]({name})\n", scenario.name());
    }
}
