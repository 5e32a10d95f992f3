//! L2 order book with Binance spot's documented depth sync (being written; API fixed).
use crate::event::{DepthLevel, SnapshotLevel};
use crate::fixed::{Price, Qty};

/// One price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Price.
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
}

/// Sizes fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookConfig {
    /// Levels kept per side.
    pub max_levels_per_side: usize,
    /// Depth level events buffered while waiting for a snapshot.
    pub max_buffered_levels: usize,
}

impl Default for BookConfig {
    fn default() -> Self {
        BookConfig { max_levels_per_side: 5000, max_buffered_levels: 65536 }
    }
}

/// Where the book is in the sync procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Buffering diffs, no snapshot yet.
    AwaitingSnapshot,
    /// Snapshot levels arriving.
    LoadingSnapshot,
    /// Valid.
    Synced,
    /// A gap or a crossed book; buffering diffs until a new snapshot.
    Stale,
}

/// Result of applying one level event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookUpdate {
    /// Nothing visible.
    None,
    /// A message completed; book synced and uncrossed.
    Changed,
    /// A snapshot completed and the buffered diffs bridged it; book now synced.
    Synced,
    /// Sequence gap; book stale; resync needed.
    Gap {
        /// Expected first update id.
        expected: u64,
        /// Received first update id.
        got: u64,
    },
    /// The book crossed; stale; resync needed.
    Crossed,
    /// Snapshot did not bridge the buffered diffs; stale; resync needed.
    SnapshotRejected,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Diff messages applied.
    pub messages_applied: u64,
    /// Diff level events dropped as older than the snapshot.
    pub stale_levels_dropped: u64,
    /// Gaps.
    pub gaps: u64,
    /// Crossed books.
    pub crossed: u64,
    /// Snapshots applied.
    pub snapshots: u64,
    /// Snapshots rejected.
    pub snapshots_rejected: u64,
    /// Levels dropped because a side was full.
    pub levels_truncated: u64,
    /// Buffered events lost to overflow.
    pub buffer_overflows: u64,
}

/// Book.
#[derive(Debug)]
pub struct OrderBook {
    _cfg: BookConfig,
}

impl OrderBook {
    /// New empty book.
    pub fn new(cfg: BookConfig) -> Self {
        OrderBook { _cfg: cfg }
    }
    /// Applies a diff level.
    pub fn apply_depth(&mut self, _lvl: &DepthLevel) -> BookUpdate {
        BookUpdate::None
    }
    /// Applies a snapshot level.
    pub fn apply_snapshot(&mut self, _lvl: &SnapshotLevel) -> BookUpdate {
        BookUpdate::None
    }
    /// Marks stale.
    pub fn mark_stale(&mut self) {}
    /// State.
    pub fn state(&self) -> SyncState {
        SyncState::AwaitingSnapshot
    }
    /// True if synced.
    pub fn is_synced(&self) -> bool {
        false
    }
    /// Best bid.
    pub fn best_bid(&self) -> Option<Level> {
        None
    }
    /// Best ask.
    pub fn best_ask(&self) -> Option<Level> {
        None
    }
    /// Stats.
    pub fn stats(&self) -> BookStats {
        BookStats::default()
    }
}
