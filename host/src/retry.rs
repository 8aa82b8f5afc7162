//! Retrying: [`Backoff`], exponential delays with jitter, which every
//! source and the sink wait with between attempts.

use std::time::Duration;

/// Retry delays that double from `min` up to `max`, each drawn at random
/// from its upper half, so that many hosts retrying against one Redis do
/// not retry in step.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    /// Jitter only: it need not be unpredictable, just different from one
    /// host to the next, and `fastrand` seeds each generator apart.
    random: fastrand::Rng,
}

impl Backoff {
    /// Delays from `min`, doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
            random: fastrand::Rng::new(),
        }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1 << self.attempt.min(20))
            .min(self.max);
        self.attempt += 1;
        // A random fraction in [0.5, 1).
        ceiling.mul_f64(0.5 + self.random.f64() / 2.0)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_stay_in_its_upper_half() {
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(100));
        let mut b = Backoff::new(min, max);
        let ceilings = [10, 20, 40, 80, 100, 100];
        for ceiling in ceilings {
            let d = b.next_delay();
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                d >= ceiling / 2 && d < ceiling,
                "{d:?} not in [{:?}, {ceiling:?})",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay() < min);
    }
}
