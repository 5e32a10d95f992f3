//! Short spans on one thread timed with the CPU's time-stamp counter.
//!
//! The core times every strategy callback (the `strategy` stage and slow-callback detection),
//! which took two `CLOCK_MONOTONIC` readings per callback: about 24 ns each through the vDSO on
//! this project's VM against about 10 ns for `rdtsc`, for a callback that itself takes 20 ns.
//! [`ticks`] reads the time-stamp counter and [`span_ns`] turns a difference of two readings
//! into ns with a multiplier calibrated once per process against `CLOCK_MONOTONIC`.
//!
//! Only a duration comes from here, never a time: stamps that other threads or processes
//! compare (receive, dequeue and order times) stay on [`super::MonoClock`]. The counter is used
//! only where the kernel itself uses it as its clocksource (`current_clocksource` is `tsc`,
//! which Linux allows only for an invariant counter synchronised across CPUs); anywhere else,
//! and on other architectures, [`ticks`] is `CLOCK_MONOTONIC` and [`span_ns`] a subtraction.
//! Calibration sleeps 5 ms once, on the first call (the core calls it while it is built, never
//! on the hot path); its error is about 1 ppm, a few femtoseconds on a 20 ns span.

use super::MonoClock;
use std::sync::OnceLock;

/// ns per tick in 32.32 fixed point; 0 when the counter is not used.
static SCALE: OnceLock<u64> = OnceLock::new();

/// The multiplier, calibrating it on the first call (0: ticks are `CLOCK_MONOTONIC` ns).
#[inline]
pub fn scale() -> u64 {
    *SCALE.get_or_init(calibrate)
}

/// A reading of the counter (or `CLOCK_MONOTONIC` ns where the counter is not used). Only
/// differences of two readings on one thread mean anything: pass them to [`span_ns`].
#[inline]
pub fn ticks() -> u64 {
    match scale() {
        0 => MonoClock::now(),
        _ => read_counter(),
    }
}

/// The ns between two [`ticks`] readings (0 if `to` is before `from`).
#[inline]
pub fn span_ns(from: u64, to: u64) -> u64 {
    let d = to.saturating_sub(from);
    match scale() {
        0 => d,
        s => ((u128::from(d) * u128::from(s)) >> 32) as u64,
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_counter() -> u64 {
    // SAFETY: `rdtsc` only reads the time-stamp counter into registers: no memory access, no
    // precondition, and every x86_64 CPU has it. Its value is used only after `calibrate`
    // found the kernel itself clocking from it (so it is invariant and synchronised).
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn read_counter() -> u64 {
    MonoClock::now()
}

/// The multiplier, or 0 where the counter is not trusted.
fn calibrate() -> u64 {
    if !cfg!(target_arch = "x86_64") {
        return 0;
    }
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    if source.trim() != "tsc" {
        return 0;
    }
    let (t0, n0) = paired_reading();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let (t1, n1) = paired_reading();
    scale_from(t1.saturating_sub(t0), n1.saturating_sub(n0))
}

/// 32.32 ns per tick from `ticks` counted over `ns`, or 0 if the rate is implausible (outside
/// 0.1 to 10 GHz).
fn scale_from(ticks: u64, ns: u64) -> u64 {
    if ticks == 0 || ns == 0 || ticks < ns / 10 || ticks > ns.saturating_mul(10) {
        return 0;
    }
    ((u128::from(ns) << 32) / u128::from(ticks)) as u64
}

/// A counter reading and the clock reading taken at the same moment: the clock read between
/// two counter reads, the pair with the closest counter reads of a few tries, the counter
/// taken as their midpoint.
fn paired_reading() -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..5 {
        let (width, t, n) = paired_once();
        if width < best.0 {
            best = (width, t, n);
        }
    }
    (best.1, best.2)
}

/// One clock reading between two counter reads: (their distance, their midpoint, the clock).
#[inline]
fn paired_once() -> (u64, u64, u64) {
    let a = read_counter();
    let n = MonoClock::now();
    let b = read_counter();
    let width = b.saturating_sub(a);
    (width, a + width / 2, n)
}

/// `CLOCK_MONOTONIC` for a thread that reads it back to back, many times a microsecond (an asap
/// replay's feed stamps every frame): a real clock reading, paired with a counter reading,
/// every [`Extrapolated::EVERY`] calls or [`Extrapolated::MAX_SPAN_NS`], whichever comes first,
/// and in between that reading plus the counter's advance since, in ns. A counter read costs
/// about 10 ns on this project's VM against about 27 ns for the clock. The calibration's error,
/// a few parts per million, stays within a few ns over at most 1 ms. Never goes backwards.
/// Where the counter is not used, every call reads the clock.
#[derive(Debug, Default)]
pub struct Extrapolated {
    base_ns: u64,
    base_ticks: u64,
    left: u32,
    last: u64,
}

impl Extrapolated {
    /// Calls per real clock reading.
    pub const EVERY: u32 = 64;

    /// The longest extrapolation: a reading further from the last real one reads the clock.
    pub const MAX_SPAN_NS: u64 = 1_000_000;

    /// A real clock reading, which the next calls to [`Extrapolated::now`] extrapolate from.
    pub fn fresh(&mut self) -> u64 {
        let n = if scale() == 0 {
            MonoClock::now()
        } else {
            let (_, t, n) = paired_once();
            self.base_ticks = t;
            self.base_ns = n;
            self.left = Self::EVERY - 1;
            n
        };
        self.last = self.last.max(n);
        self.last
    }

    /// Now, ns on `CLOCK_MONOTONIC`: extrapolated, or read every [`Extrapolated::EVERY`] calls.
    #[inline]
    pub fn now(&mut self) -> u64 {
        if self.left == 0 {
            return self.fresh();
        }
        self.left -= 1;
        let span = span_ns(self.base_ticks, read_counter());
        if span > Self::MAX_SPAN_NS {
            return self.fresh();
        }
        self.last = self.last.max(self.base_ns + span);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolated_readings_track_the_clock_and_never_go_back() {
        let mut x = Extrapolated::default();
        let mut prev = 0;
        let mut worst = 0u64;
        for i in 0..20_000u32 {
            let before = MonoClock::now();
            let got = if i % 5_000 == 0 { x.fresh() } else { x.now() };
            let after = MonoClock::now();
            assert!(got >= prev, "went back: {prev} then {got}");
            prev = got;
            // Between the two clock reads around it, give or take the calibration's error
            // (generous: a few ppm of the span since the last real reading is well under 1 µs).
            let off = if got < before {
                before - got
            } else {
                got.saturating_sub(after)
            };
            worst = worst.max(off);
        }
        assert!(worst < 1_000, "off the clock by {worst} ns");
    }

    #[test]
    fn scale_is_ns_per_tick_in_fixed_point() {
        // 3 GHz: a third of a ns per tick.
        let s = scale_from(3_000_000_000, 1_000_000_000);
        assert_eq!(((3_000u128 * u128::from(s)) >> 32) as u64, 999);
        assert_eq!(scale_from(1_000, 1_000), 1 << 32);
        // Implausible rates are refused.
        assert_eq!(scale_from(1, 1_000_000), 0);
        assert_eq!(scale_from(100_000_000, 1_000), 0);
        assert_eq!(scale_from(0, 5), 0);
    }

    #[test]
    fn spans_agree_with_the_monotonic_clock() {
        let (t0, n0) = (ticks(), MonoClock::now());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let (t1, n1) = (ticks(), MonoClock::now());
        let span = span_ns(t0, t1);
        let mono = n1 - n0;
        // Within 1 % (calibration is far better; this leaves room for the reads' own skew).
        assert!(
            span.abs_diff(mono) < mono / 100,
            "span {span} vs monotonic {mono}"
        );
        assert_eq!(span_ns(t1, t0), 0);
    }
}
