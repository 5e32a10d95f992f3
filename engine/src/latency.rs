//! Per-stage latency histograms with fixed bounds: recording never allocates or resizes.
//!
//! Every in-process figure is on the engine's one monotonic clock, in nanoseconds. Values above
//! [`HIGHEST_NS`] are clamped (`saturating_record`), so a histogram's memory is fixed at start-up.

use hdrhistogram::Histogram;

/// Largest value a histogram tracks exactly (60 s); larger values are clamped to it.
pub const HIGHEST_NS: u64 = 60_000_000_000;
/// Significant decimal digits kept (0.1 % relative precision).
pub const SIGFIG: u8 = 3;

/// One stage's latency distribution, in ns.
#[derive(Clone, Debug)]
pub struct LatencyHist {
    h: Histogram<u64>,
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHist {
    /// An empty histogram covering 1 ns ..= [`HIGHEST_NS`] (all memory allocated now).
    pub fn new() -> Self {
        // The bounds are constants that satisfy hdrhistogram's preconditions (low >= 1,
        // high >= 2 * low, sigfig <= 5), so this cannot fail; fall back to an auto-sized
        // histogram rather than panic if a future version disagrees.
        let h = Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG)
            .or_else(|_| Histogram::new(SIGFIG))
            .unwrap_or_else(|_| unreachable_hist());
        LatencyHist { h }
    }

    /// Records one sample (clamped to the bounds).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.h.saturating_record(ns);
    }

    /// Records `count` samples of one value (clamped to the bounds).
    #[inline]
    pub fn record_n(&mut self, ns: u64, count: u64) {
        self.h.saturating_record_n(ns, count);
    }

    /// Adds another histogram's samples (both have the same bounds, so this cannot fail).
    pub fn merge(&mut self, other: &LatencyHist) {
        let _ = self.h.add(&other.h);
    }

    /// Number of samples.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    /// Value at `q` (0.0..=1.0), ns.
    pub fn quantile(&self, q: f64) -> u64 {
        self.h.value_at_quantile(q)
    }

    /// The usual summary.
    pub fn percentiles(&self) -> Percentiles {
        Percentiles {
            count: self.h.len(),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.h.max(),
        }
    }

    /// Forgets every sample (keeps the memory).
    pub fn reset(&mut self) {
        self.h.reset();
    }

    /// The underlying histogram, for export.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.h
    }
}

/// Samples a [`BatchedHist`] holds before it adds them to its histogram.
pub const BATCH: usize = 256;

/// A [`LatencyHist`] fed through a small buffer: samples are stored in order and added to the
/// histogram [`BATCH`] at a time.
///
/// For a thread that records one sample per item while it streams through more memory than its
/// caches hold (the replay feed: a decode time per frame, between megabytes of capture and
/// ring). Recording straight into the histogram then misses the cache on most samples: `perf`
/// put 9 % of the feed thread's time on that one load. A batch takes the misses once per
/// counter line it touches, and the buffer's writes are sequential. Nothing is lost: read the
/// histogram with [`BatchedHist::finish`], which adds what is still buffered.
#[derive(Clone, Debug)]
pub struct BatchedHist {
    hist: LatencyHist,
    buf: Box<[u64; BATCH]>,
    len: usize,
}

impl Default for BatchedHist {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchedHist {
    /// An empty histogram and buffer (all memory allocated now).
    pub fn new() -> Self {
        BatchedHist {
            hist: LatencyHist::new(),
            buf: Box::new([0; BATCH]),
            len: 0,
        }
    }

    /// Records one sample (clamped to the bounds, as [`LatencyHist::record`]).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = ns;
            self.len += 1;
        }
        if self.len == BATCH {
            self.flush();
        }
    }

    #[inline(never)]
    fn flush(&mut self) {
        for &ns in self.buf.get(..self.len).unwrap_or(&[]) {
            self.hist.record(ns);
        }
        self.len = 0;
    }

    /// Every sample recorded, as a histogram.
    pub fn finish(mut self) -> LatencyHist {
        self.flush();
        self.hist
    }
}

#[cold]
fn unreachable_hist() -> Histogram<u64> {
    // Only reachable if hdrhistogram rejects its own documented defaults.
    std::process::abort()
}

/// A stage's percentiles, ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

/// The stages Tickline measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Frame bytes -> events, on the I/O (feed) thread.
    Decode,
    /// Receive stamp -> core dequeue (ring hop plus waiting behind earlier events).
    QueueWait,
    /// One strategy callback.
    Strategy,
    /// Receive stamp -> order emitted by the core.
    TickToOrder,
    /// Receive time minus the venue's event time. **Cross-clock**: our wall clock against the
    /// venue's, so it includes the clocks' offset (live runs only).
    FeedLatency,
    /// Order emitted -> its acknowledgement handled by the core (round trip).
    OrderAck,
    /// One busy core loop iteration (a poll that handled events).
    LoopIteration,
    /// How late a timer fired, on the core's clock (the replay clock in replays).
    TimerLag,
    /// Receive stamp -> the order's frame written to the venue's socket, on the I/O thread
    /// that owns the order session (live runs with an order session only).
    TickToWire,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 9] = [
        Stage::Decode,
        Stage::QueueWait,
        Stage::Strategy,
        Stage::TickToOrder,
        Stage::FeedLatency,
        Stage::OrderAck,
        Stage::LoopIteration,
        Stage::TimerLag,
        Stage::TickToWire,
    ];

    /// Name used in reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::QueueWait => "queue_wait",
            Stage::Strategy => "strategy",
            Stage::TickToOrder => "tick_to_order",
            Stage::FeedLatency => "feed_latency",
            Stage::OrderAck => "order_ack",
            Stage::LoopIteration => "loop_iteration",
            Stage::TimerLag => "timer_lag",
            Stage::TickToWire => "tick_to_wire",
        }
    }
}

/// One histogram per [`Stage`].
#[derive(Clone, Debug, Default)]
pub struct StageLatency {
    hists: [LatencyHist; Stage::ALL.len()],
}

impl StageLatency {
    /// All stages empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a sample for `stage`.
    #[inline]
    pub fn record(&mut self, stage: Stage, ns: u64) {
        self.hists[stage as usize].record(ns);
    }

    /// Records `count` samples of `ns` in `stage`.
    #[inline]
    pub fn record_n(&mut self, stage: Stage, ns: u64, count: u64) {
        self.hists[stage as usize].record_n(ns, count);
    }

    /// The histogram of `stage`.
    pub fn get(&self, stage: Stage) -> &LatencyHist {
        &self.hists[stage as usize]
    }

    /// Adds `hist`'s samples to `stage` (for stages measured on another thread).
    pub fn record_hist(&mut self, stage: Stage, hist: &LatencyHist) {
        self.hists[stage as usize].merge(hist);
    }

    /// Forgets every sample of every stage (keeps the memory; off the core: it writes every
    /// bucket).
    pub fn reset(&mut self) {
        for h in &mut self.hists {
            h.reset();
        }
    }

    /// Adds every stage of `other`.
    pub fn merge(&mut self, other: &StageLatency) {
        for (a, b) in self.hists.iter_mut().zip(other.hists.iter()) {
            a.merge(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_clamps_without_resizing() {
        let mut h = LatencyHist::new();
        for v in 1..=1000 {
            h.record(v);
        }
        h.record(u64::MAX);
        let p = h.percentiles();
        assert_eq!(p.count, 1001);
        assert!((499..=501).contains(&p.p50), "{p:?}");
        assert!(
            p.max >= HIGHEST_NS && p.max <= HIGHEST_NS + HIGHEST_NS / 1000,
            "{p:?}"
        );
    }

    #[test]
    fn a_batched_histogram_ends_with_every_sample_recorded() {
        // Full batches and a partial one: the finished histogram equals direct recording.
        let samples = (0..BATCH as u64 * 3 + 17).map(|i| (i * 7919) % 100_000 + 1);
        let mut batched = BatchedHist::new();
        let mut direct = LatencyHist::new();
        for v in samples {
            batched.record(v);
            direct.record(v);
        }
        let batched = batched.finish();
        assert_eq!(batched.len(), BATCH as u64 * 3 + 17);
        assert_eq!(batched.histogram(), direct.histogram());
        assert!(BatchedHist::new().finish().is_empty());
    }

    #[test]
    fn stages_merge() {
        let mut a = StageLatency::new();
        let mut b = StageLatency::new();
        a.record(Stage::Decode, 100);
        b.record(Stage::Decode, 300);
        b.record(Stage::Strategy, 7);
        a.merge(&b);
        assert_eq!(a.get(Stage::Decode).len(), 2);
        assert_eq!(a.get(Stage::Strategy).len(), 1);
        assert!(a.get(Stage::TickToOrder).is_empty());
    }
}
