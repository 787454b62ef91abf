use std::time::Duration;

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
    /// Checks `loop_wait + 2 * retry_timeout + safety_margin <= ttl` and that every setting but the margin
    /// is positive.
    pub fn validate(&self) -> Result<(), TimingError> {
        for (key, value) in
            [("ttl", self.ttl), ("loop_wait", self.loop_wait), ("retry_timeout", self.retry_timeout)]
        {
            if value.is_zero() {
                return Err(TimingError::Zero { key });
            }
        }
        let sum = self.loop_wait + self.retry_timeout * 2 + self.safety_margin;
        if sum > self.ttl {
            return Err(TimingError::TooTight {
                ttl_ms: self.ttl.as_millis(),
                loop_wait_ms: self.loop_wait.as_millis(),
                retry_timeout_ms: self.retry_timeout.as_millis(),
                safety_margin_ms: self.safety_margin.as_millis(),
                sum_ms: sum.as_millis(),
            });
        }
        Ok(())
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
    fn refuses_zero_settings_by_name() {
        let t = LeaseTiming { ttl: ms(3000), loop_wait: ms(0), retry_timeout: ms(750), safety_margin: ms(0) };
        assert_eq!(t.validate(), Err(TimingError::Zero { key: "loop_wait" }));
    }
}
