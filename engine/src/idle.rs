//! What the core does when a poll found nothing: spin, spin then yield, or back off.
//!
//! Spinning gives the lowest wake-up latency and burns a whole core; use it on a pinned,
//! otherwise idle CPU. Spin-then-yield gives the CPU away between bursts. Backoff sleeps for
//! growing intervals and suits machines without a spare core (laptops, CI).

use core::time::Duration;

/// The idle policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleMode {
    /// Busy-spin (`spin_loop` hint) forever.
    Spin,
    /// Spin this many empty polls, then `yield_now` on each further empty poll.
    SpinYield {
        /// Empty polls spent spinning before yielding.
        spins: u32,
    },
    /// Spin, then yield, then sleep with doubling intervals up to `max_sleep`.
    Backoff {
        /// Longest sleep.
        max_sleep: Duration,
    },
}

impl Default for IdleMode {
    fn default() -> Self {
        IdleMode::SpinYield { spins: 10_000 }
    }
}

impl core::str::FromStr for IdleMode {
    type Err = String;

    /// `spin`, `spin-yield` or `backoff`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "spin" => Ok(IdleMode::Spin),
            "spin-yield" => Ok(IdleMode::default()),
            "backoff" => Ok(IdleMode::Backoff {
                max_sleep: Duration::from_micros(500),
            }),
            other => Err(format!(
                "unknown idle mode {other:?} (expected spin, spin-yield or backoff)"
            )),
        }
    }
}

/// Applies an [`IdleMode`] across consecutive empty polls.
#[derive(Clone, Debug)]
pub struct Idler {
    mode: IdleMode,
    empty_polls: u32,
}

impl Idler {
    /// A fresh idler.
    pub fn new(mode: IdleMode) -> Self {
        Idler {
            mode,
            empty_polls: 0,
        }
    }

    /// Call after every poll with whether it did any work.
    #[inline]
    pub fn after_poll(&mut self, did_work: bool) {
        if did_work {
            self.empty_polls = 0;
            return;
        }
        self.empty_polls = self.empty_polls.saturating_add(1);
        match self.mode {
            IdleMode::Spin => core::hint::spin_loop(),
            IdleMode::SpinYield { spins } => {
                if self.empty_polls <= spins {
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            IdleMode::Backoff { max_sleep } => self.backoff(max_sleep),
        }
    }

    #[cold]
    fn backoff(&mut self, max_sleep: Duration) {
        const SPINS: u32 = 100;
        const YIELDS: u32 = 10;
        let n = self.empty_polls;
        if n <= SPINS {
            core::hint::spin_loop();
        } else if n <= SPINS + YIELDS {
            std::thread::yield_now();
        } else {
            let shift = (n - SPINS - YIELDS).min(20);
            let sleep = Duration::from_micros(1u64 << shift).min(max_sleep);
            std::thread::sleep(sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!("spin".parse::<IdleMode>(), Ok(IdleMode::Spin));
        assert!(matches!(
            "spin-yield".parse::<IdleMode>(),
            Ok(IdleMode::SpinYield { .. })
        ));
        assert!(matches!(
            "backoff".parse::<IdleMode>(),
            Ok(IdleMode::Backoff { .. })
        ));
        assert!("sleep".parse::<IdleMode>().unwrap_err().contains("sleep"));
    }

    #[test]
    fn backoff_is_bounded() {
        let mut idler = Idler::new(IdleMode::Backoff {
            max_sleep: Duration::from_micros(50),
        });
        for _ in 0..200 {
            idler.after_poll(false);
        }
        idler.after_poll(true);
        assert_eq!(idler.empty_polls, 0);
    }
}
