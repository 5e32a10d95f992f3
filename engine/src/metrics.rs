//! The core's metrics hand-off: an interval's histograms, loop lag and slow callbacks, swapped
//! out of the core in O(1) and shipped by another thread.
//!
//! Two [`MetricsSnapshot`]s circulate between the core and a metrics thread. At each interval
//! the core calls [`crate::core::Core::swap_metrics`] with a returned (and reset) snapshot: the
//! core's live histograms and the snapshot's empty ones trade places (a pointer swap, no copy,
//! no allocation), the counters and gauges are written into it, and the caller hands it over
//! without blocking. Resetting histograms writes every bucket, so the metrics thread does that
//! before returning a snapshot ([`MetricsSnapshot::clear_interval`]), never the core.

use crate::core::CoreCounters;
use crate::latency::StageLatency;
use crate::portfolio::Position;
use crate::symbol::SymbolId;

/// How the core loop behaved over an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Polls.
    pub polls: u64,
    /// Polls that handled at least one event.
    pub busy_polls: u64,
    /// Longest time between the starts of two consecutive polls, ns (a stalled core shows here).
    pub max_gap_ns: u64,
    /// Longest busy poll, ns.
    pub max_iteration_ns: u64,
}

/// A strategy callback that took longer than the configured threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowCallback {
    /// The strategy's name.
    pub strategy: &'static str,
    /// The symbol it ran for.
    pub symbol: SymbolId,
    /// How long it took, ns.
    pub duration_ns: u64,
    /// When it returned (the core's latency clock), ns.
    pub at_ns: u64,
}

/// Slow callbacks remembered per interval (more are counted, not kept).
pub const SLOW_REPORTS_PER_INTERVAL: usize = 16;

/// One symbol's gauges at the end of an interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SymbolGauges {
    /// The symbol.
    pub symbol: SymbolId,
    /// Its position and PnL.
    pub position: Position,
    /// Bid levels in the book (0 while it is not synced).
    pub bid_levels: u32,
    /// Ask levels in the book.
    pub ask_levels: u32,
    /// Whether the book is synced.
    pub synced: bool,
}

/// One interval of core metrics.
#[derive(Clone, Debug)]
pub struct MetricsSnapshot {
    /// Interval start (latency clock), ns.
    pub start_ns: u64,
    /// Interval end, ns.
    pub end_ns: u64,
    /// Counters since start-up (cumulative).
    pub counters: CoreCounters,
    /// This interval's latency samples, per stage.
    pub latency: StageLatency,
    /// This interval's loop behaviour.
    pub loop_stats: LoopStats,
    /// This interval's slow callbacks (at most [`SLOW_REPORTS_PER_INTERVAL`]).
    pub slow: Vec<SlowCallback>,
    /// Slow callbacks this interval beyond those kept in `slow`.
    pub slow_unreported: u64,
    /// Per-symbol gauges at `end_ns`.
    pub symbols: Vec<SymbolGauges>,
    /// Events waiting in each inbound ring at `end_ns`, in the order the rings were added.
    pub ring_occupancy: Vec<u64>,
}

impl MetricsSnapshot {
    /// An empty snapshot for `symbols` symbols and `rings` inbound rings (allocates; call at
    /// start-up).
    pub fn new(symbols: usize, rings: usize) -> Self {
        MetricsSnapshot {
            start_ns: 0,
            end_ns: 0,
            counters: CoreCounters::default(),
            latency: StageLatency::new(),
            loop_stats: LoopStats::default(),
            slow: Vec::with_capacity(SLOW_REPORTS_PER_INTERVAL),
            slow_unreported: 0,
            symbols: vec![SymbolGauges::default(); symbols],
            ring_occupancy: vec![0; rings],
        }
    }

    /// Empties the interval parts (histograms, loop stats, slow callbacks) so the snapshot can go
    /// back to the core. Writes every histogram bucket: call it on the metrics thread.
    pub fn clear_interval(&mut self) {
        self.latency.reset();
        self.loop_stats = LoopStats::default();
        self.slow.clear();
        self.slow_unreported = 0;
    }
}
