//! The core's metrics hand-off: an interval's histograms, loop lag and slow callbacks, swapped
//! out of the core in O(1) and shipped by another thread.
//!
//! Two [`MetricsSnapshot`]s circulate between the core and a metrics thread. At each interval
//! the core calls [`crate::core::Core::swap_metrics`] with a returned (and reset) snapshot: the
//! core's live histograms and the snapshot's empty ones trade places (a pointer swap, no copy,
//! no allocation), the counters and gauges are written into it, and the caller hands it over
//! without blocking. Resetting histograms writes every bucket, so the metrics thread does that
//! before returning a snapshot ([`MetricsSnapshot::clear_interval`]), never the core.

use crate::latency::StageLatency;
use crate::portfolio::Position;
use crate::symbol::SymbolId;

/// The core's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreCounters {
    /// Events taken off the rings.
    pub events: u64,
    /// Trades.
    pub trades: u64,
    /// Aggregated trades.
    pub agg_trades: u64,
    /// Best bid/ask updates.
    pub book_tickers: u64,
    /// Depth-diff level events.
    pub depth_levels: u64,
    /// Snapshot level events.
    pub snapshot_levels: u64,
    /// Sequence gaps found by the books.
    pub book_gaps: u64,
    /// Books found crossed (then hidden and resynced).
    pub book_crossed: u64,
    /// Snapshots that did not bridge the buffered diffs.
    pub snapshots_rejected: u64,
    /// Venue book checksums compared with a synced book and found equal.
    pub checksums_verified: u64,
    /// Venue book checksums that did not match the book (book stale, resync asked).
    pub checksum_failures: u64,
    /// Books that became synced (first sync and every resync).
    pub book_syncs: u64,
    /// Resyncs asked for (gap, crossed, rejected snapshot, lost data, reconnect).
    pub resync_requests: u64,
    /// Resync requests lost because the resync ring was full.
    pub resync_requests_dropped: u64,
    /// Data-loss events from the I/O side (ring overflow, disconnect).
    pub feed_gaps: u64,
    /// Events lost on the I/O side, as reported by its gap events.
    pub feed_events_lost: u64,
    /// Connection up / down events.
    pub connection_changes: u64,
    /// Orders that left the core: pushed to the order ring (live) or submitted to the paper
    /// venue. Orders refused by the core itself (risk, a full order table or order ring) are
    /// not in it.
    pub orders_sent: u64,
    /// Cancels sent.
    pub cancels: u64,
    /// Orders acknowledged.
    pub acks: u64,
    /// Fills.
    pub fills: u64,
    /// Orders rejected (venue, paper venue, the order table, or pre-trade risk: every refusal
    /// reaches the strategy as a reject).
    pub rejects: u64,
    /// Orders canceled or expired.
    pub canceled: u64,
    /// Order events for ids the core does not know.
    pub unknown_order_events: u64,
    /// Timers fired.
    pub timers_fired: u64,
    /// Events for a symbol the core does not know.
    pub unknown_symbol: u64,
    /// Strategy callbacks over the slow threshold.
    pub slow_callbacks: u64,
    /// Orders not acknowledged within the ack timeout (left in flight, not rejected).
    pub order_timeouts: u64,
    /// Fills seen again with a venue trade id already applied (ignored).
    pub duplicate_fills: u64,
    /// Orders and cancels that found the order ring to the I/O thread full (never sent).
    pub order_ring_full: u64,
    /// Orders refused by pre-trade risk, never sent (by reason: `Core::risk`).
    pub orders_denied: u64,
    /// Traders restarted by their supervisor after a panic (updated about once a millisecond).
    pub trader_restarts: u64,
    /// Symbols halted by their supervisor (restart intensity exceeded).
    pub symbol_halts: u64,
    /// Control commands handled.
    pub control_commands: u64,
    /// Events whose venue time was after our receive time, or more than a minute before it
    /// (clocks that disagree, or a synthetic feed's invented times): not recorded in the
    /// cross-clock feed latency.
    pub feed_latency_unusable: u64,
}

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
