//! What the core does when a poll found nothing: spin, spin then yield, or back off.
//!
//! Spinning gives the lowest wake-up latency and burns a whole core; use it on a pinned,
//! otherwise idle CPU. Spin-then-yield gives the CPU away between bursts. Backoff sleeps for
//! growing intervals and suits machines without a spare core (laptops, CI).
//!
//! [`IdleJitter`] measures the machine's own hiccups on the core's CPU while the core is idle:
//! the gaps between consecutive empty, spinning polls (see its docs).

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
    spun: bool,
}

impl Idler {
    /// A fresh idler.
    pub fn new(mode: IdleMode) -> Self {
        Idler {
            mode,
            empty_polls: 0,
            spun: false,
        }
    }

    /// Whether the last [`Idler::after_poll`] idled by spinning (not yielding, not sleeping, and
    /// not skipped because the poll did work).
    #[inline]
    pub fn spun(&self) -> bool {
        self.spun
    }

    /// Call after every poll with whether it did any work.
    #[inline]
    pub fn after_poll(&mut self, did_work: bool) {
        if did_work {
            self.empty_polls = 0;
            self.spun = false;
            return;
        }
        self.empty_polls = self.empty_polls.saturating_add(1);
        self.spun = match self.mode {
            IdleMode::Spin => {
                core::hint::spin_loop();
                true
            }
            IdleMode::SpinYield { spins } => {
                if self.empty_polls <= spins {
                    core::hint::spin_loop();
                    true
                } else {
                    std::thread::yield_now();
                    false
                }
            }
            IdleMode::Backoff { max_sleep } => self.backoff(max_sleep),
        };
    }

    /// Returns whether it spun.
    #[cold]
    fn backoff(&mut self, max_sleep: Duration) -> bool {
        const SPINS: u32 = 100;
        const YIELDS: u32 = 10;
        let n = self.empty_polls;
        if n <= SPINS {
            core::hint::spin_loop();
            true
        } else if n <= SPINS + YIELDS {
            std::thread::yield_now();
            false
        } else {
            let shift = (n - SPINS - YIELDS).min(20);
            let sleep = Duration::from_micros(1u64 << shift).min(max_sleep);
            std::thread::sleep(sleep);
            false
        }
    }
}

/// The machine's hiccups on the core's CPU, measured in the core's idle time.
///
/// The core loop calls [`IdleJitter::idle`] after each poll that found nothing (with a clock
/// reading taken after its idle step, and whether that step spun) and [`IdleJitter::busy`]
/// after each poll that did work. A gap is recorded between two consecutive idle readings
/// when the iteration between them spun: one empty iteration of the loop, normally tens of ns,
/// longer only when the CPU was taken away (an interrupt, another thread, the hypervisor).
/// Work, yields and sleeps end a chain, so neither the engine's own work nor a voluntary
/// give-away counts. Recording never allocates (the histogram's memory is written once at
/// construction, so the loop takes no page fault on it either).
#[derive(Clone, Debug)]
pub struct IdleJitter {
    hist: crate::latency::LatencyHist,
    last: u64,
}

impl Default for IdleJitter {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleJitter {
    /// An empty measurement, its histogram's pages already written.
    pub fn new() -> Self {
        let mut hist = crate::latency::LatencyHist::new();
        hist.reset();
        IdleJitter { hist, last: 0 }
    }

    /// After an empty poll and its idle step: `now` read after the step, `spun` whether the
    /// step spun.
    #[inline]
    pub fn idle(&mut self, now: u64, spun: bool) {
        if spun && self.last != 0 {
            self.hist.record(now.saturating_sub(self.last));
        }
        self.last = now;
    }

    /// After a poll that did work: the next gap starts at the next idle reading.
    #[inline]
    pub fn busy(&mut self) {
        self.last = 0;
    }

    /// The gaps recorded, ns.
    pub fn hist(&self) -> &crate::latency::LatencyHist {
        &self.hist
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
        assert!(!idler.spun());
    }

    #[test]
    fn jitter_counts_only_spinning_empty_iterations() {
        let mut j = IdleJitter::new();
        j.idle(100, true); // first reading: no gap yet
        j.idle(150, true); // 50
        j.idle(1_150, false); // a yield: not a gap, but the next starts here
        j.idle(1_170, true); // 20
        j.busy();
        j.idle(5_000, true); // after work: no gap
        j.idle(5_030, true); // 30
        let h = j.hist();
        assert_eq!(h.len(), 3);
        assert_eq!(h.percentiles().max, 50);
        let mut idler = Idler::new(IdleMode::SpinYield { spins: 1 });
        idler.after_poll(false);
        assert!(idler.spun());
        idler.after_poll(false);
        assert!(!idler.spun());
    }
}
