//! The machine's own latency floor: how long a thread that never blocks is kept from running.
//!
//! **`tickline hiccups --cpu N --duration S`** ([`measure`]) is a sysjitter/jHiccup-style probe:
//! one thread pinned to CPU N reads the engine's clock ([`MonoClock`], `CLOCK_MONOTONIC`
//! through the vDSO) in a tight loop and records every gap between two consecutive readings in a
//! histogram. A gap is normally the cost of one clock read (tens of ns); anything longer is time
//! the thread did not run or ran slowly: an interrupt, a preemption by another thread or the
//! hypervisor, an SMI, a page fault. Nothing the engine does can beat this floor on that CPU.
//!
//! **In a run** (`machine_hiccups` in the `replay`/`run` summaries) the same gaps are measured
//! by the core itself, on the core's CPU, during its idle polls
//! ([`engine::idle::IdleJitter`]): after each poll that found nothing and spun, the core reads
//! the clock, and the gap since the previous such reading is recorded when the poll before
//! found nothing too. The gap is therefore one empty iteration of the core loop (the empty
//! poll, the metrics tick, the spin hint, one clock read), so its p50 is that iteration's cost
//! rather than one clock read, and its tail is what the machine took from the core while it
//! was idle, in the same run as the engine's stages. Polls that did work are never timed, and
//! yields and sleeps (the `spin-yield` and `backoff` idle modes) end a chain rather than count
//! as a gap, so the figure is the machine's, not the engine's. A gap that ends in a poll that
//! found work is counted up to that poll's first clock reading: the hiccups during which
//! events arrived are the ones that delayed them. The measurement costs one clock read per
//! idle poll and nothing per event. A paced replay's feed measures its own CPU the same way
//! (`feed_hiccups`), from the clock readings of its spin-waits for each frame's due time: a
//! frame crosses both CPUs, and either can stall it.
//!
//! **Two views.** The gap percentiles (`p50`, `p99`, ...) weigh every gap once, as sysjitter
//! does: millions of ~100 ns gaps surround each long one, so their p99 stays at the cost of an
//! empty iteration even on a machine that takes the CPU away for 4 ms a few times a second.
//! `delay` weighs them by time instead ([`engine::idle::IdleJitter::delays`]): the wait for the
//! CPU that an event due at a random instant would see if the engine cost nothing. That is the
//! machine's share of a paced replay's `queue_wait` (which is measured from each frame's
//! intended time), so it is the figure to compare the engine's stages with.

use crate::clock::MonoClock;
use crate::threads::{spawn, Place};
use anyhow::{Context, Result};
use engine::idle::{IdleJitter, DELAY_QUANTUM_NS};
use engine::latency::LatencyHist;
use serde_json::{json, Value};
use std::time::Duration;

/// A gap histogram's summary, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hiccups {
    /// Gaps measured.
    pub count: u64,
    /// Median gap.
    pub p50: u64,
    /// 99th percentile gap.
    pub p99: u64,
    /// 99.9th percentile gap.
    pub p999: u64,
    /// Longest gap.
    pub max: u64,
    /// Gaps over 10 µs.
    pub over_10us: u64,
    /// Gaps over 100 µs.
    pub over_100us: u64,
    /// Time measured, ns (the sum of the gaps).
    pub measured_ns: u64,
    /// The time-weighted view: the machine's delay at a random instant, ns.
    pub delay: Delay,
}

/// Percentiles of the time-weighted remaining delay ([`engine::idle::IdleJitter::delays`]), ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delay {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

impl Delay {
    fn from_hist(h: &LatencyHist) -> Delay {
        let p = h.percentiles();
        Delay {
            p50: p.p50,
            p99: p.p99,
            p999: p.p999,
            max: p.max,
        }
    }
}

impl Hiccups {
    /// The summary of a histogram of gaps.
    pub fn from_hist(h: &LatencyHist) -> Hiccups {
        let p = h.percentiles();
        let hist = h.histogram();
        let under = |ns: u64| hist.count_between(0, ns);
        let total = hist.len();
        let measured = hist
            .iter_recorded()
            .map(|v| v.value_iterated_to().saturating_mul(v.count_at_value()))
            .fold(0u64, u64::saturating_add);
        Hiccups {
            count: p.count,
            p50: p.p50,
            p99: p.p99,
            p999: p.p999,
            max: p.max,
            over_10us: total.saturating_sub(under(10_000)),
            over_100us: total.saturating_sub(under(100_000)),
            measured_ns: measured,
            delay: Delay::default(),
        }
    }

    /// Both views of a measurement.
    pub fn from_jitter(j: &IdleJitter) -> Hiccups {
        Hiccups {
            delay: Delay::from_hist(j.delays()),
            ..Hiccups::from_hist(j.hist())
        }
    }

    /// As JSON (ns).
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count, "p50": self.p50, "p99": self.p99, "p999": self.p999,
            "max": self.max, "over_10us": self.over_10us, "over_100us": self.over_100us,
            "measured_ns": self.measured_ns,
            "delay": {
                "p50": self.delay.p50, "p99": self.delay.p99, "p999": self.delay.p999,
                "max": self.delay.max, "quantum_ns": DELAY_QUANTUM_NS,
            },
        })
    }

    /// One line: `p50 .. p99 .. p99.9 .. max ..`, with the counts over 10 and 100 µs.
    pub fn to_line(&self) -> String {
        format!(
            "p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns over {} gaps ({} over 10 µs, {} over 100 µs)",
            self.p50, self.p99, self.p999, self.max, self.count, self.over_10us, self.over_100us
        )
    }

    /// One line of the time-weighted view.
    pub fn delay_line(&self) -> String {
        let d = &self.delay;
        format!(
            "p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
            d.p50, d.p99, d.p999, d.max
        )
    }
}

/// What [`measure`] found.
#[derive(Clone, Debug)]
pub struct HiccupRun {
    /// The CPU asked for.
    pub cpu: Option<usize>,
    /// Whether the probe thread got it.
    pub pinned: bool,
    /// The gaps.
    pub hiccups: Hiccups,
    /// The measurement itself (for a report).
    pub jitter: IdleJitter,
}

/// Busy-reads the clock for `duration` on a thread pinned to `cpu` (`None`: unpinned) and
/// returns the histogram of the gaps between consecutive readings.
pub fn measure(cpu: Option<usize>, duration: Duration) -> Result<HiccupRun> {
    let handle = spawn("tickline-hiccups", Some(Place::Core(cpu)), move || {
        let pinned = crate::pin::thread_cpus(None) == cpu.into_iter().collect::<Vec<_>>();
        // Its histograms' pages are written at construction, so the loop takes no page fault.
        let mut jitter = IdleJitter::new();
        let end = MonoClock::now().saturating_add(duration.as_nanos() as u64);
        let mut last = MonoClock::now();
        loop {
            let now = MonoClock::now();
            jitter.gap(now - last);
            last = now;
            if now >= end {
                break;
            }
        }
        (pinned, jitter)
    })
    .context("spawning the hiccup probe thread")?;
    let (pinned, jitter) = handle
        .join()
        .map_err(|_| anyhow::anyhow!("the hiccup probe thread panicked"))?;
    Ok(HiccupRun {
        cpu,
        pinned,
        hiccups: Hiccups::from_jitter(&jitter),
        jitter,
    })
}

impl HiccupRun {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        let mut v = self.hiccups.to_json();
        v["cpu"] = json!(self.cpu);
        v["pinned"] = json!(self.pinned);
        v
    }

    /// As text.
    pub fn to_text(&self) -> String {
        let cpu = match self.cpu {
            Some(c) if self.pinned => format!("CPU {c}"),
            Some(c) => format!("CPU {c} (not pinned)"),
            None => "unpinned".into(),
        };
        let h = &self.hiccups;
        format!(
            "clock-read gaps on {cpu} over {:.3} s: {} gaps\n  p50 {:>9} ns\n  p99 {:>9} ns\n  p99.9 {:>7} ns\n  max {:>9} ns\n  over 10 µs  {:>6}\n  over 100 µs {:>6}\ntime-weighted (the wait an event due at a random instant would see):\n  p50 {:>9} ns\n  p99 {:>9} ns\n  p99.9 {:>7} ns\n",
            h.measured_ns as f64 / 1e9,
            h.count,
            h.p50,
            h.p99,
            h.p999,
            h.max,
            h.over_10us,
            h.over_100us,
            h.delay.p50,
            h.delay.p99,
            h.delay.p999,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_gaps() {
        let mut h = LatencyHist::new();
        for _ in 0..98 {
            h.record(20);
        }
        h.record(50_000);
        h.record(200_000);
        let s = Hiccups::from_hist(&h);
        assert_eq!(s.count, 100);
        assert_eq!(s.p50, 20);
        assert_eq!((s.over_10us, s.over_100us), (2, 1));
        assert!(s.max >= 200_000 && s.max < 200_300, "{s:?}");
        assert!(s.measured_ns >= 250_000, "{s:?}");
    }

    #[test]
    fn a_short_probe_is_ordered() {
        let r = measure(None, Duration::from_millis(20)).unwrap();
        let h = r.hiccups;
        assert!(h.count > 0);
        assert!(
            h.p50 <= h.p99 && h.p99 <= h.p999 && h.p999 <= h.max,
            "{h:?}"
        );
        assert!(!r.pinned);
    }
}
