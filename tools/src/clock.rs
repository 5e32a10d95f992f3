//! The engine's one monotonic clock: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! Every in-process latency is a difference of two readings of this clock. Raw
//! `CLOCK_MONOTONIC` values are shared by every process on the machine, so a venue simulator in
//! another process can stamp its send time on the same clock. Short spans on one thread (a
//! strategy callback) may be timed with the CPU's counter instead ([`tsc`]).

use engine::core::Clock;

pub mod tsc;

/// Reads `CLOCK_MONOTONIC` (vDSO, no syscall on Linux).
#[derive(Clone, Copy, Debug, Default)]
pub struct MonoClock;

impl MonoClock {
    /// Now, ns.
    #[inline]
    pub fn now() -> u64 {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
}

impl Clock for MonoClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        MonoClock::now()
    }

    #[inline]
    fn ticks(&self) -> u64 {
        tsc::ticks()
    }

    #[inline]
    fn span_ns(&self, from: u64, to: u64) -> u64 {
        tsc::span_ns(from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_monotonic_and_in_ns() {
        let a = MonoClock::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MonoClock::now();
        assert!(b - a >= 2_000_000, "{a} {b}");
        assert!(b - a < 2_000_000_000);
    }
}
