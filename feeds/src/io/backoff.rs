//! Reconnect backoff: exponential, capped, with deterministic jitter.

use super::config::ReconnectPolicy;
use std::time::Duration;

/// A small, fast, deterministic generator (SplitMix64) for backoff jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The backoff of one connection: consecutive failed attempts and the jitter generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    policy: ReconnectPolicy,
    rng: SplitMix64,
    attempts: u32,
}

impl Backoff {
    /// A backoff whose jitter is seeded by the connection id, so runs are repeatable.
    pub fn new(policy: ReconnectPolicy, conn_id: u32) -> Self {
        Backoff {
            policy,
            rng: SplitMix64::new(0x7469_636b_6c69_6e65 ^ conn_id as u64),
            attempts: 0,
        }
    }

    /// The delay before the next attempt, counting it; `None` once
    /// [`ReconnectPolicy::max_attempts`] consecutive attempts have failed.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.policy.max_attempts.is_some_and(|m| self.attempts >= m) {
            return None;
        }
        self.attempts = self.attempts.saturating_add(1);
        let p = &self.policy;
        let max = p.max.as_secs_f64();
        let exp = self.attempts.saturating_sub(1).min(1_000) as i32;
        let base = (p.initial.as_secs_f64() * p.factor.max(1.0).powi(exp)).min(max);
        let spread = p.jitter.clamp(0.0, 1.0) * (2.0 * self.rng.next_unit() - 1.0);
        let d = (base * (1.0 + spread)).clamp(0.0, max);
        Some(Duration::try_from_secs_f64(d).unwrap_or(p.max))
    }

    /// Consecutive attempts counted since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The connection proved healthy: the next delay is `initial` again.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_jitters_deterministically_and_resets() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 2.0,
            jitter: 0.25,
            max_attempts: None,
        };
        let mut b = Backoff::new(policy, 7);
        let delays: Vec<_> = (0..10).map(|_| b.next_delay().unwrap()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (100.0 * 2f64.powi(i as i32)).min(2_000.0);
            let ms = d.as_secs_f64() * 1e3;
            assert!(
                ms >= base * 0.75 - 1e-6 && ms <= (base * 1.25).min(2_000.0) + 1e-6,
                "{i}: {ms}"
            );
        }
        assert!(delays
            .iter()
            .any(|d| d.as_millis() != 100 && d.as_millis() != 200));
        // Same seed, same sequence; another connection, another sequence.
        let mut again = Backoff::new(policy, 7);
        assert_eq!(
            (0..10)
                .map(|_| again.next_delay().unwrap())
                .collect::<Vec<_>>(),
            delays
        );
        let mut other = Backoff::new(policy, 8);
        assert_ne!(
            (0..10)
                .map(|_| other.next_delay().unwrap())
                .collect::<Vec<_>>(),
            delays
        );
        assert_eq!(b.attempts(), 10);
        b.reset();
        let d = b.next_delay().unwrap().as_millis();
        assert!((75..=125).contains(&d), "{d}");
    }

    #[test]
    fn backoff_gives_up_after_max_attempts_and_without_jitter_is_exact() {
        let mut b = Backoff::new(
            ReconnectPolicy {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(35),
                factor: 2.0,
                jitter: 0.0,
                max_attempts: Some(4),
            },
            1,
        );
        let got: Vec<_> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(
            got,
            [10, 20, 35, 35].map(Duration::from_millis),
            "capped at max"
        );
        assert_eq!(b.next_delay(), None);
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let u = SplitMix64::new(5).next_unit();
        assert!((0.0..1.0).contains(&u));
    }
}
