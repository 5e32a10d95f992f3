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

/// One sample of [`IdleJitter::delays`] per this much measured time.
pub const DELAY_QUANTUM_NS: u64 = 1_000;
/// A gap's samples in [`IdleJitter::delays`] are spread over at most this many values.
const DELAY_PIECES: u64 = 256;

/// The machine's hiccups on the core's CPU, measured in the core's idle time.
///
/// The core loop calls [`IdleJitter::idle`] after each poll that found nothing (with a clock
/// reading taken after its idle step, and whether that step spun) and [`IdleJitter::busy`]
/// after each poll that did work, with the clock reading that poll took before touching its
/// rings. A gap is recorded from an idle reading to the next reading when the iteration
/// between them spun: one empty iteration of the loop (or the part of one before a poll that
/// found work), normally tens of ns, longer only when the CPU was taken away (an interrupt,
/// another thread, the hypervisor). The engine's work is never inside a gap: a gap that ends
/// in a busy poll ends at that poll's first clock reading, and the next one starts at the
/// next idle reading. Yields and sleeps end a chain, so a voluntary give-away never counts.
/// Counting the gaps that end in work matters: a hiccup during which frames arrived is the
/// one that delays them.
///
/// Two views of the same gaps:
/// - [`IdleJitter::hist`], one sample per gap (count-weighted, like sysjitter): its p50 is
///   the cost of an empty iteration and its tail is rare, since millions of short gaps
///   surround each long one;
/// - [`IdleJitter::delays`], time-weighted: one sample per [`DELAY_QUANTUM_NS`] of measured
///   time, valued at how long from that instant until the gap ended (a gap of length `g`
///   contributes remaining delays spread evenly over `(0, g]`). This is the wait for the
///   CPU that an event due at a random instant would see if the engine cost nothing, the
///   machine's share of a paced feed's queue wait (coordinated-omission corrected in the same
///   way as the engine's stages), and the figure to set beside the engine's percentiles.
///
/// Recording never allocates (the histograms' memory is written once at construction, so
/// the loop takes no page fault on them either); a long gap costs at most 256 histogram
/// updates.
#[derive(Clone, Debug)]
pub struct IdleJitter {
    hist: crate::latency::LatencyHist,
    delays: crate::latency::LatencyHist,
    /// Measured time not yet turned into a [`Self::delays`] sample, ns.
    carry: u64,
    last: u64,
}

impl Default for IdleJitter {
    fn default() -> Self {
        Self::new()
    }
}

impl IdleJitter {
    /// An empty measurement, its histograms' pages already written.
    pub fn new() -> Self {
        let mut hist = crate::latency::LatencyHist::new();
        hist.reset();
        let mut delays = crate::latency::LatencyHist::new();
        delays.reset();
        IdleJitter {
            hist,
            delays,
            carry: 0,
            last: 0,
        }
    }

    /// After an empty poll and its idle step: `now` read after the step, `spun` whether the
    /// step spun.
    #[inline]
    pub fn idle(&mut self, now: u64, spun: bool) {
        if spun && self.last != 0 {
            self.gap(now.saturating_sub(self.last));
        }
        self.last = now;
    }

    /// After a poll that did work: `poll_start` is the clock reading the poll took before it
    /// touched a ring (the gap from the last idle reading to it held no work). The next gap
    /// starts at the next idle reading.
    #[inline]
    pub fn busy(&mut self, poll_start: u64) {
        if self.last != 0 && poll_start > self.last {
            self.gap(poll_start - self.last);
        }
        self.last = 0;
    }

    /// Records one gap of `g` ns in both views (also the standalone probe's entry point).
    #[inline]
    pub fn gap(&mut self, g: u64) {
        self.hist.record(g);
        let time = self.carry.saturating_add(g);
        let samples = time / DELAY_QUANTUM_NS;
        self.carry = time % DELAY_QUANTUM_NS;
        if samples > 0 {
            self.spread(g, samples);
        }
    }

    /// `samples` time-weighted samples of remaining delay over a gap of `g` ns: the gap is cut
    /// into `pieces` equal parts, each recorded at its midpoint's remaining delay with its
    /// share of the samples.
    #[inline]
    fn spread(&mut self, g: u64, samples: u64) {
        let pieces = samples.min(DELAY_PIECES);
        let mut given = 0;
        for j in 0..pieces {
            let upto = samples * (j + 1) / pieces;
            let n = upto - given;
            given = upto;
            // Piece j covers remaining delays (g * j / pieces, g * (j + 1) / pieces].
            let mid = (g as u128 * (2 * j + 1) as u128 / (2 * pieces) as u128) as u64;
            self.delays.record_n(mid.max(1), n);
        }
    }

    /// The gaps recorded, one sample each, ns.
    pub fn hist(&self) -> &crate::latency::LatencyHist {
        &self.hist
    }

    /// The time-weighted remaining delays, ns (see the type's docs).
    pub fn delays(&self) -> &crate::latency::LatencyHist {
        &self.delays
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
        j.busy(1_190); // up to the busy poll's start: 20
        j.idle(5_000, true); // after work: no gap
        j.idle(5_030, true); // 30
        j.busy(5_030); // no time since the last reading: no gap
        let h = j.hist();
        assert_eq!(h.len(), 4);
        assert_eq!(h.percentiles().max, 50);
        let mut idler = Idler::new(IdleMode::SpinYield { spins: 1 });
        idler.after_poll(false);
        assert!(idler.spun());
        idler.after_poll(false);
        assert!(!idler.spun());
    }

    #[test]
    fn delays_weigh_each_gap_by_its_length() {
        let mut j = IdleJitter::new();
        // 99 ms of 100 ns gaps, then one 1 ms gap ending in a busy poll.
        let mut t = 1;
        j.idle(t, true);
        for _ in 0..990_000 {
            t += 100;
            j.idle(t, true);
        }
        j.busy(t + 1_000_000);
        // One sample per gap: the 1 ms gap is one in 990,001.
        assert_eq!(j.hist().len(), 990_001);
        assert_eq!(j.hist().quantile(0.999), 100);
        // One sample per µs: 99,000 from the short gaps (each valued at 50 ns, half a gap) and
        // 1,000 from the long one, spread over (0, 1 ms]: 1 % of the time is inside it.
        let d = j.delays();
        assert_eq!(d.len(), 100_000);
        assert_eq!(d.quantile(0.98), 50);
        let p995 = d.quantile(0.995);
        assert!((400_000..=600_000).contains(&p995), "{p995}");
        let max = d.percentiles().max;
        assert!((990_000..=1_000_000).contains(&max), "{max}");
    }

    #[test]
    fn short_gaps_carry_their_time_to_the_next_sample() {
        let mut j = IdleJitter::new();
        for _ in 0..9 {
            j.gap(100);
        }
        assert_eq!(j.delays().len(), 0);
        j.gap(100);
        assert_eq!(j.delays().len(), 1);
        j.gap(2_950);
        assert_eq!(j.delays().len(), 3);
        j.gap(50);
        assert_eq!(j.delays().len(), 4);
    }
}
