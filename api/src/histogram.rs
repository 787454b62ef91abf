//! Duration histograms for `GET /metrics` ([`Histogram`], Prometheus' histogram type), and the ones the
//! agent keeps ([`Timings`]): lease renewals (and how many failed), store reads and writes, HA cycles,
//! and the phases of the failovers this member carried out ([`Failovers`]).

use crate::FailoverPhases;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The buckets' upper bounds, in seconds (a last, unbounded bucket counts the rest).
pub const BOUNDS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A histogram of durations, updated without locks.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), the last past every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    /// The sum of the observations, in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one observation of `took`.
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = BOUNDS.iter().position(|bound| seconds <= *bound).unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The family `name` in the Prometheus text format: `_bucket` (cumulative, `le` in seconds, the
    /// last `+Inf`), `_sum` (seconds) and `_count`, each with `labels` (`scope="…",name="…"`).
    pub fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.render_samples(out, name, labels);
    }

    /// The samples alone (no `# HELP`/`# TYPE`), for a family of several histograms told apart by label.
    fn render_samples(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BOUNDS.get(i).map_or_else(|| "+Inf".to_owned(), f64::to_string);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {cumulative}");
    }
}

/// The durations the agent measures, shown by `GET /metrics` as `vigil_*_duration_seconds`.
#[derive(Debug, Default)]
pub struct Timings {
    /// Lease renewals by the holder, as the HA loop waits for them.
    pub lease_renewal: Histogram,
    /// Linearizable reads of the cluster store.
    pub store_read: Histogram,
    /// Writes to the cluster store (lease operations included).
    pub store_write: Histogram,
    /// HA loop cycles (observe, decide, act, publish).
    pub ha_cycle: Histogram,
    /// Lease renewals that failed (the lease lost, or the store not answering in time).
    pub lease_renewal_failures: AtomicU64,
    /// The failovers this member carried out, by phase and reason.
    pub failovers: Failovers,
}

impl Timings {
    /// The histograms' names and help texts, in the order [`Timings::render`] writes them.
    pub const NAMES: [&str; 4] = [
        "vigil_lease_renewal_duration_seconds",
        "vigil_store_read_duration_seconds",
        "vigil_store_write_duration_seconds",
        "vigil_ha_cycle_duration_seconds",
    ];

    /// The counter of failed lease renewals.
    pub const RENEWAL_FAILURES: &str = "vigil_lease_renewal_failures_total";

    /// Counts a lease renewal that failed.
    pub fn renewal_failed(&self) {
        self.lease_renewal_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Every histogram, then the failed renewals, in the Prometheus text format, with `labels`.
    pub fn render(&self, out: &mut String, labels: &str) {
        let helps = [
            (&self.lease_renewal, "Time a lease renewal took, as the holder waited for it."),
            (&self.store_read, "Time a linearizable read of the cluster store took."),
            (&self.store_write, "Time a write to the cluster store took (lease operations included)."),
            (&self.ha_cycle, "Time an HA loop cycle took (observe, decide, act, publish)."),
        ];
        for (name, (histogram, help)) in Self::NAMES.iter().zip(helps) {
            histogram.render(out, name, help, labels);
        }
        let name = Self::RENEWAL_FAILURES;
        let failed = self.lease_renewal_failures.load(Ordering::Relaxed);
        let help = "Number of lease renewals by this agent that failed (lease lost, or the store did not answer in time).";
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{labels}}} {failed}");
        self.failovers.render(out, labels);
    }
}

/// The failovers (promotions) this member carried out since its agent started:
/// `vigil_failover_phase_seconds{phase="detection|lease|promotion|first_write"}` (a histogram per phase)
/// and `vigil_failovers_total{reason="…"}` (`failover`, `switchover`, `manual failover`, …).
#[derive(Debug, Default)]
pub struct Failovers {
    /// One histogram per phase, in the order of [`FailoverPhases::NAMES`].
    phases: [Histogram; 4],
    /// Promotions by reason.
    by_reason: Mutex<BTreeMap<String, u64>>,
}

impl Failovers {
    /// The name of the phase histograms.
    pub const PHASE_SECONDS: &str = "vigil_failover_phase_seconds";
    /// The name of the counter.
    pub const TOTAL: &str = "vigil_failovers_total";
    /// The reason shown (at 0) before any promotion, so that the series exists.
    const FIRST_REASON: &str = "failover";

    /// Counts one promotion for `reason`, with its `phases` when they are known.
    pub fn observe(&self, reason: &str, phases: Option<&FailoverPhases>) {
        let mut by_reason = self.by_reason.lock().unwrap_or_else(|e| e.into_inner());
        *by_reason.entry(reason.to_owned()).or_default() += 1;
        for (histogram, (_, took)) in self.phases.iter().zip(phases.iter().flat_map(|p| p.named())) {
            histogram.observe(took);
        }
    }

    /// Promotions counted, all reasons together.
    pub fn total(&self) -> u64 {
        self.by_reason.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }

    /// Both families in the Prometheus text format, with `labels`.
    fn render(&self, out: &mut String, labels: &str) {
        let name = Self::PHASE_SECONDS;
        let help = "Time each phase of the failovers this member carried out took: detection (old primary's last renewal to lease free), lease (to granted), promotion (to accepting writes), first_write (to the first write committed).";
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (histogram, phase) in self.phases.iter().zip(FailoverPhases::NAMES) {
            histogram.render_samples(out, name, &format!("{labels},phase=\"{phase}\""));
        }
        let name = Self::TOTAL;
        let help = "Number of times this agent has promoted its database, by reason.";
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut by_reason = self.by_reason.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if by_reason.is_empty() {
            by_reason.insert(Self::FIRST_REASON.to_owned(), 0);
        }
        for (reason, count) in by_reason {
            let reason = crate::metrics::escape(&reason);
            let _ = writeln!(out, "{name}{{{labels},reason=\"{reason}\"}} {count}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_the_count() {
        let h = Histogram::default();
        for ms in [0, 3, 3, 700, 60_000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut text = String::new();
        h.render(&mut text, "x_seconds", "X.", "a=\"b\"");
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"0.005\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"1\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"10\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 5\n"), "{text}");
        assert!(text.contains("x_seconds_sum{a=\"b\"} 60.706\nx_seconds_count{a=\"b\"} 5\n"), "{text}");
    }

    #[test]
    fn failovers_are_counted_by_reason_and_timed_by_phase() {
        let failovers = Failovers::default();
        let render = |f: &Failovers| {
            let mut text = String::new();
            f.render(&mut text, "n=\"a\"");
            text
        };
        let text = render(&failovers);
        assert!(text.contains("vigil_failovers_total{n=\"a\",reason=\"failover\"} 0\n"), "{text}");
        assert_eq!(text.matches("# TYPE vigil_failover_phase_seconds histogram").count(), 1, "{text}");
        let phases =
            FailoverPhases { detection_ms: 3000, lease_ms: 20, promotion_ms: 400, first_write_ms: 5 };
        failovers.observe("failover", Some(&phases));
        failovers.observe("switchover", None);
        let text = render(&failovers);
        assert!(text.contains("vigil_failovers_total{n=\"a\",reason=\"failover\"} 1\n"), "{text}");
        assert!(text.contains("vigil_failovers_total{n=\"a\",reason=\"switchover\"} 1\n"), "{text}");
        let detection = "vigil_failover_phase_seconds_sum{n=\"a\",phase=\"detection\"} 3\n";
        assert!(text.contains(detection), "{text}");
        assert!(
            text.contains("vigil_failover_phase_seconds_bucket{n=\"a\",phase=\"lease\",le=\"0.025\"} 1\n")
        );
        assert!(text.contains("vigil_failover_phase_seconds_count{n=\"a\",phase=\"first_write\"} 1\n"));
        assert_eq!(failovers.total(), 2);
    }
}
