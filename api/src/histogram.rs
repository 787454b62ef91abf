//! Duration histograms for `GET /metrics` ([`Histogram`], Prometheus' histogram type), and the ones the
//! agent keeps ([`Timings`]): lease renewals (and how many failed), store reads and writes, HA cycles.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
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
}
