//! [`LeaseTiming`] and its bounds. Every check works on `u128` nanoseconds, so no setting, however
//! large, can overflow it: a value that cannot be used is refused by name.

use std::time::{Duration, Instant};

/// The longest `ttl` accepted: one day, Patroni's own bound. It also bounds `loop_wait`, `retry_timeout`
/// and `safety_margin` through the inequality, and every instant computed from them.
pub const MAX_TTL: Duration = Duration::from_secs(86_400);

/// The shortest `loop_wait` accepted: 100 ms. Patroni's floor is 1 s; Vigil's ttl of a few seconds wants
/// shorter cycles, but not a loop that spins.
pub const MIN_LOOP_WAIT: Duration = Duration::from_millis(100);

/// `base + wait`, with `wait` capped at [`MAX_TTL`]: no lease, loop or store timer needs more, and it never
/// panics, whatever `wait` is (`base` itself when even the cap cannot be added).
pub fn instant_after(base: Instant, wait: Duration) -> Instant {
    base.checked_add(wait.min(MAX_TTL)).unwrap_or(base)
}

/// The lease timing settings of a cluster (Patroni's `ttl`, `loop_wait`, `retry_timeout`, plus Vigil's
/// `safety_margin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease lives without renewal.
    pub ttl: Duration,
    /// Time between two HA loop cycles (and so between two renewals).
    pub loop_wait: Duration,
    /// How long one store operation may take before it counts as failed.
    pub retry_timeout: Duration,
    /// Time the holder keeps in reserve to fence itself before its deadline.
    pub safety_margin: Duration,
}

/// Why a [`LeaseTiming`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// A setting that must be positive is zero.
    #[error("{key} must be greater than 0")]
    Zero {
        /// The configuration key at fault.
        key: &'static str,
    },
    /// A setting outside the range Vigil accepts (see [`MAX_TTL`], [`MIN_LOOP_WAIT`]).
    #[error("{key}: {value_ms} ms is {bound}")]
    OutOfRange {
        /// The configuration key at fault.
        key: &'static str,
        /// Its value in milliseconds.
        value_ms: u128,
        /// What it must be, e.g. `more than the maximum of 86400 s (1 day)`.
        bound: &'static str,
    },
    /// The holder could not step down before its lease expires.
    #[error(
        "loop_wait ({loop_wait_ms} ms) + 2 * retry_timeout ({retry_timeout_ms} ms) + safety_margin \
         ({safety_margin_ms} ms) = {sum_ms} ms exceeds ttl ({ttl_ms} ms): the primary could lose its lease \
         before it notices; raise ttl or lower the others"
    )]
    TooTight {
        /// `ttl` in milliseconds.
        ttl_ms: u128,
        /// `loop_wait` in milliseconds.
        loop_wait_ms: u128,
        /// `retry_timeout` in milliseconds.
        retry_timeout_ms: u128,
        /// `safety_margin` in milliseconds.
        safety_margin_ms: u128,
        /// The left-hand side of the inequality.
        sum_ms: u128,
    },
}

impl LeaseTiming {
    /// Checks `loop_wait + 2 * retry_timeout + safety_margin <= ttl`, that every setting but the margin
    /// is positive, `ttl <= MAX_TTL` and `loop_wait >= MIN_LOOP_WAIT`.
    pub fn validate(&self) -> Result<(), TimingError> {
        for (key, value) in
            [("ttl", self.ttl), ("loop_wait", self.loop_wait), ("retry_timeout", self.retry_timeout)]
        {
            if value.is_zero() {
                return Err(TimingError::Zero { key });
            }
        }
        if self.ttl > MAX_TTL {
            let bound = "more than the maximum of 86400 s (1 day)";
            return Err(TimingError::OutOfRange { key: "ttl", value_ms: self.ttl.as_millis(), bound });
        }
        if self.loop_wait < MIN_LOOP_WAIT {
            let (key, value_ms) = ("loop_wait", self.loop_wait.as_millis());
            return Err(TimingError::OutOfRange { key, value_ms, bound: "less than the minimum of 100 ms" });
        }
        // In u128 nanoseconds: four of Duration::MAX still fit, so the sum cannot overflow.
        let sum =
            self.loop_wait.as_nanos() + 2 * self.retry_timeout.as_nanos() + self.safety_margin.as_nanos();
        if sum > self.ttl.as_nanos() {
            return Err(TimingError::TooTight {
                ttl_ms: self.ttl.as_millis(),
                loop_wait_ms: self.loop_wait.as_millis(),
                retry_timeout_ms: self.retry_timeout.as_millis(),
                safety_margin_ms: self.safety_margin.as_millis(),
                sum_ms: sum / 1_000_000,
            });
        }
        Ok(())
    }
}

/// A [`LeaseTiming`] Vigil runs with, fitted from settings that satisfy Patroni's inequality
/// (`loop_wait + 2 * retry_timeout <= ttl`) but not Vigil's, which also keeps `safety_margin` in reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// What runs.
    pub timing: LeaseTiming,
    /// Whether it differs from the settings: `retry_timeout` or, when that would fall below
    /// [`MIN_LOOP_WAIT`], `safety_margin` was shortened.
    pub shortened: bool,
}

impl Fitted {
    /// One line saying what was shortened and why; `None` when nothing was.
    pub fn note(&self, settings: &LeaseTiming) -> Option<String> {
        let (t, s) = (&self.timing, settings);
        let ms = |d: Duration| d.as_millis();
        let what = if t.retry_timeout != s.retry_timeout {
            format!(
                "store operations give up after {} ms instead of retry_timeout {} ms",
                ms(t.retry_timeout),
                ms(s.retry_timeout)
            )
        } else {
            format!("the safety_margin is {} ms instead of {} ms", ms(t.safety_margin), ms(s.safety_margin))
        };
        self.shortened.then(|| {
            format!(
                "ttl {} ms, loop_wait {} ms and retry_timeout {} ms satisfy Patroni's loop_wait + 2 * \
                 retry_timeout <= ttl but leave no room for Vigil's safety_margin ({} ms): {what}",
                ms(s.ttl),
                ms(s.loop_wait),
                ms(s.retry_timeout),
                ms(s.safety_margin),
            )
        })
    }
}

impl LeaseTiming {
    /// The timing to run with: these settings when they [`validate`](Self::validate); when only the
    /// safety margin does not fit, the same with `retry_timeout` shortened to make room for it (or, when
    /// that would leave less than [`MIN_LOOP_WAIT`], with the margin shortened to what is left).
    pub fn fitted(&self) -> Result<Fitted, TimingError> {
        let err = match self.validate() {
            Ok(()) => return Ok(Fitted { timing: *self, shortened: false }),
            Err(err @ TimingError::TooTight { .. }) => err,
            Err(other) => return Err(other),
        };
        let patroni = self.loop_wait.as_nanos() + 2 * self.retry_timeout.as_nanos();
        if patroni > self.ttl.as_nanos() {
            return Err(err);
        }
        // ttl is at most a day here, so every value below fits a Duration.
        let room = self.ttl.saturating_sub(self.loop_wait).saturating_sub(self.safety_margin) / 2;
        let timing = if room >= MIN_LOOP_WAIT {
            LeaseTiming { retry_timeout: room, ..*self }
        } else {
            let margin = self.ttl - self.loop_wait - self.retry_timeout * 2;
            LeaseTiming { safety_margin: margin, ..*self }
        };
        Ok(Fitted { timing, shortened: true })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn accepts_the_exact_bound_and_refuses_one_millisecond_more() {
        let ok = LeaseTiming {
            ttl: ms(3000),
            loop_wait: ms(1000),
            retry_timeout: ms(750),
            safety_margin: ms(500),
        };
        assert_eq!(ok.validate(), Ok(()));
        let tight = LeaseTiming { safety_margin: ms(501), ..ok };
        let err = tight.validate().unwrap_err();
        assert!(matches!(err, TimingError::TooTight { sum_ms: 3001, ttl_ms: 3000, .. }));
        assert!(err.to_string().contains("exceeds ttl (3000 ms)"));
    }

    #[test]
    fn huge_values_are_refused_by_name_not_a_panic() {
        // Issue 12: retry_timeout near u64::MAX overflowed `retry_timeout * 2`.
        let ok = LeaseTiming {
            ttl: ms(3000),
            loop_wait: ms(1000),
            retry_timeout: ms(750),
            safety_margin: ms(500),
        };
        let huge = Duration::from_secs(u64::MAX - 1);
        let retry = LeaseTiming { retry_timeout: huge, ..ok };
        assert!(matches!(retry.validate(), Err(TimingError::TooTight { .. })));
        let all = LeaseTiming {
            ttl: Duration::MAX,
            loop_wait: Duration::MAX,
            retry_timeout: Duration::MAX,
            safety_margin: Duration::MAX,
        };
        let err = all.validate().unwrap_err();
        assert!(
            err.to_string().starts_with("ttl: 18446744073709551615999 ms is more than the maximum"),
            "{err}"
        );
        let patch = LeaseTiming {
            ttl: Duration::from_secs(u64::MAX),
            loop_wait: Duration::from_secs(i64::MAX as u64),
            ..ok
        };
        assert!(matches!(patch.validate(), Err(TimingError::OutOfRange { key: "ttl", .. })));
        let day = LeaseTiming { ttl: MAX_TTL, loop_wait: Duration::from_secs(i64::MAX as u64), ..ok };
        assert!(matches!(day.validate(), Err(TimingError::TooTight { .. })));
        assert_eq!(LeaseTiming { ttl: MAX_TTL, ..ok }.validate(), Ok(()));
        assert!(matches!(
            LeaseTiming { ttl: MAX_TTL + ms(1), ..ok }.validate(),
            Err(TimingError::OutOfRange { .. })
        ));
        let spin = LeaseTiming { loop_wait: ms(99), ..ok }.validate().unwrap_err();
        assert_eq!(spin.to_string(), "loop_wait: 99 ms is less than the minimum of 100 ms");
    }

    #[test]
    fn patroni_timing_is_fitted_by_shortening_the_retry_deadline_or_the_margin() {
        let patroni = LeaseTiming {
            ttl: ms(30_000),
            loop_wait: ms(10_000),
            retry_timeout: ms(10_000),
            safety_margin: ms(500),
        };
        assert!(matches!(patroni.validate(), Err(TimingError::TooTight { .. })));
        let fitted = patroni.fitted().unwrap();
        assert_eq!(fitted.timing, LeaseTiming { retry_timeout: ms(9_750), ..patroni });
        assert_eq!(fitted.timing.validate(), Ok(()));
        let note = fitted.note(&patroni).unwrap();
        assert!(
            note.ends_with("store operations give up after 9750 ms instead of retry_timeout 10000 ms"),
            "{note}"
        );

        let small =
            LeaseTiming { ttl: ms(1000), loop_wait: ms(600), retry_timeout: ms(200), safety_margin: ms(500) };
        let fitted = small.fitted().unwrap();
        assert_eq!(fitted.timing, LeaseTiming { safety_margin: ms(0), ..small });
        assert!(fitted.note(&small).unwrap().ends_with("the safety_margin is 0 ms instead of 500 ms"));

        let fine = LeaseTiming { safety_margin: ms(0), ..patroni };
        assert_eq!(fine.fitted(), Ok(Fitted { timing: fine, shortened: false }));
        assert_eq!(fine.fitted().unwrap().note(&fine), None);
        let beyond = LeaseTiming { retry_timeout: ms(10_001), ..patroni };
        assert!(matches!(beyond.fitted(), Err(TimingError::TooTight { .. })));
    }

    #[test]
    fn instant_after_caps_the_wait_and_never_panics() {
        let now = Instant::now();
        assert_eq!(instant_after(now, ms(5)), now + ms(5));
        assert_eq!(instant_after(now, Duration::MAX), now + MAX_TTL);
    }

    #[test]
    fn refuses_zero_settings_by_name() {
        let t = LeaseTiming { ttl: ms(3000), loop_wait: ms(0), retry_timeout: ms(750), safety_margin: ms(0) };
        assert_eq!(t.validate(), Err(TimingError::Zero { key: "loop_wait" }));
    }
}
