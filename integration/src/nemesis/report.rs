//! What a run found: the counts and violations, and the time from each fault that hit the primary to
//! the first write acknowledged elsewhere, as a Markdown table per nemesis.

use super::checker;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// A trial whose fault hit the primary, and how long until another node acknowledged a write.
#[derive(Clone, Debug)]
pub struct Downtime {
    /// The trial's number.
    pub trial: usize,
    /// The plan's name (`cut-primary`, `kill-node+split`).
    pub name: String,
    /// What was done (`cut-primary node1`).
    pub what: String,
    /// How long it was held.
    pub hold: Duration,
    /// Whether the fault should move the primary if held long enough
    /// ([`super::faults::Fault::moves_primary`]); unmarked in the table.
    pub moves: bool,
    /// From the fault's application to the first write acknowledged by another node, during the hold or
    /// the convergence after it; `None`: none (the primary stayed in place).
    pub time: Option<Duration>,
}

impl std::fmt::Display for Downtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "trial {} ({}, held {:.1} s): ", self.trial, self.what, self.hold.as_secs_f64())?;
        match self.time {
            Some(t) => write!(f, "first write elsewhere after {:.1} s", t.as_secs_f64()),
            None => f.write_str("no write elsewhere during the hold nor the convergence"),
        }
    }
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Synchronous mode.
    pub sync: bool,
    /// Trials run, by fault kind (`kill-node`) or combination (`kill-node+split`).
    pub kinds: BTreeMap<String, usize>,
    /// Inserts tried and acknowledged.
    pub attempts: u64,
    /// Acknowledged.
    pub acked: usize,
    /// Acknowledged but missing on the final primary.
    pub lost: usize,
    /// Writes acknowledged under a stale token.
    pub stale_tokens: usize,
    /// Writes that carried no token (not token-checked).
    pub without_token: usize,
    /// Reigns that overlapped.
    pub overlaps: usize,
    /// Convergence times of the trials that converged within [`CONVERGENCE`].
    pub converged: Vec<Duration>,
    /// Trials that did not.
    pub not_converged: usize,
    /// Blips (faults of at most 0.5 s that kill nothing) and the failovers they caused.
    pub blips: usize,
    /// Failovers (primary or token changed) after a blip.
    pub false_failovers: usize,
    /// The blips that were a pause of an agent alone, and the failovers after them (also counted above).
    pub agent_pauses: (usize, usize),
    /// The trials whose fault hit the primary, with their time to the first write elsewhere.
    pub downtimes: Vec<Downtime>,
    /// Writes acknowledged after another node took the lease ([`checker::after_lease_lost`]).
    pub after_lease_lost: usize,
    /// The takeovers in the final history.
    pub takeovers: usize,
    /// Why the lease-history check did not run, if it did not.
    pub lease_history_unchecked: Option<String>,
    /// Everything that fails the run, one line each.
    pub violations: Vec<String>,
}

impl Report {
    /// Trials run.
    pub fn trials(&self) -> usize {
        self.kinds.values().sum()
    }

    /// No violation.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let mut times = self.converged.clone();
        times.sort();
        let pct = |p: f64| seconds(checker::percentile(&times, p));
        let lease = match &self.lease_history_unchecked {
            None => format!("{} ({} takeovers)", self.after_lease_lost, self.takeovers),
            Some(_) => "not checked".to_owned(),
        };
        let lost_note = if self.sync { "" } else { " (async: reported, not failed)" };
        format!(
            "nemesis seed={} mode={} trials={} acked={}/{} lost={}{lost_note} stale-token={} (unchecked without \
             token: {}) overlapping-primaries={} acked-after-lease-lost={lease} converged={}/{} p50={} p99={} max={} false-failovers={}/{} \
             blips ({}/{} agent pauses) => {}",
            self.seed,
            if self.sync { "sync" } else { "async" },
            self.trials(),
            self.acked,
            self.attempts,
            self.lost,
            self.stale_tokens,
            self.without_token,
            self.overlaps,
            self.converged.len(),
            self.trials(),
            pct(0.5),
            pct(0.99),
            pct(1.0),
            self.false_failovers,
            self.blips,
            self.agent_pauses.1,
            self.agent_pauses.0,
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }

    /// The trials (by plan name) whose fault hit the primary: the Markdown table of the times to the
    /// first write elsewhere, for BENCHMARKS.md.
    pub fn downtime_table(&self) -> String {
        let mut rows: BTreeMap<&str, (bool, Vec<Duration>, usize)> = BTreeMap::new();
        for d in &self.downtimes {
            let row = rows.entry(d.name.as_str()).or_default();
            row.0 |= d.moves;
            match d.time {
                Some(t) => row.1.push(t),
                None => row.2 += 1,
            }
        }
        let mut table = String::from(
            "Time from the fault to the first write acknowledged by another node (trials whose fault hit \
             the primary; * a nemesis that need not move the primary):\n\n\
             | nemesis | trials | failovers | p50 | p99 | max | trials without a failover |\n\
             |---|---|---|---|---|---|---|\n",
        );
        for (name, (moves, mut times, without)) in rows {
            times.sort();
            let mark = if moves { "" } else { " *" };
            let _ = writeln!(
                table,
                "| {name}{mark} | {} | {} | {} | {} | {} | {without} |",
                times.len() + without,
                times.len(),
                seconds(checker::percentile(&times, 0.5)),
                seconds(checker::percentile(&times, 0.99)),
                seconds(checker::percentile(&times, 1.0)),
            );
        }
        table
    }

    /// The trials whose fault hit the primary with no write elsewhere.
    pub fn without_failover(&self) -> impl Iterator<Item = &Downtime> {
        self.downtimes.iter().filter(|d| d.time.is_none())
    }
}

/// `1.2s`, or `-` for none.
fn seconds(t: Option<Duration>) -> String {
    t.map_or("-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn downtime(trial: usize, name: &str, moves: bool, time_ms: Option<u64>) -> Downtime {
        let what = format!("{name} node1");
        let (hold, time) = (Duration::from_secs(30), time_ms.map(Duration::from_millis));
        Downtime { trial, name: name.to_owned(), what, hold, moves, time }
    }

    #[test]
    fn the_table_has_a_row_per_nemesis_with_its_failover_times() {
        let report = Report {
            downtimes: vec![
                downtime(0, "cut-primary", true, Some(4_000)),
                downtime(1, "cut-primary", true, Some(6_500)),
                downtime(2, "cut-primary", true, None),
                downtime(3, "pause-agent", false, None),
            ],
            ..Report::default()
        };
        let table = report.downtime_table();
        let rows: Vec<&str> =
            table.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| nemesis")).collect();
        assert_eq!(
            rows,
            ["| cut-primary | 3 | 2 | 4.0s | 6.5s | 6.5s | 1 |", "| pause-agent * | 1 | 0 | - | - | - | 1 |"]
        );
        let without: Vec<usize> = report.without_failover().map(|d| d.trial).collect();
        assert_eq!(without, [2, 3]);
        assert_eq!(
            report.downtimes[2].to_string(),
            "trial 2 (cut-primary node1, held 30.0 s): no write elsewhere during the hold nor the convergence"
        );
    }
}
