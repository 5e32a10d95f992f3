//! L2 order book for one symbol, kept in sync with Binance spot's documented local-book procedure.
//!
//! # What it keeps
//!
//! Each side holds at most [`BookConfig::max_levels_per_side`] levels in storage order, worst
//! first and best last (bids ascending, asks descending), so the best level is at hand. A side is
//! not one sorted array: Binance's diff stream changes levels all through the book (replaying a
//! real capture, an insert or removal into one sorted `Vec` of the 5,000 best levels shifted a
//! median of 55 and a mean of 195 levels, 40 % of them over 100), so the levels sit in small
//! sorted blocks of 32 (a pool of blocks allocated with the book, an array listing the blocks
//! in use in order with each one's best price, and a free list). A level is found by a search
//! over the blocks' best prices that starts at the touch, then one inside its block; an insert
//! or removal moves at most one block's levels, plus one entry of the block list when a full
//! block splits or two small neighbours merge. Two neighbouring blocks always hold more than a block's worth, which
//! bounds the blocks in use, so the pool sized at construction never runs out (the proof is in
//! the `side` module's source). A side that is full keeps its best levels: a better level pushes
//! out the worst, a level worse than all is dropped (counted in [`BookStats::levels_truncated`]);
//! a level pushed out that way is gone until the next snapshot.
//!
//! # Sync rules
//!
//! * Diff messages arrive as [`DepthLevel`] events sharing `(u, u - U)`; the last one has
//!   [`LevelFlags::LAST`], a message without levels is one `LAST | EMPTY` event. Sequence checks
//!   happen at the first level of a message, the visible result ([`BookUpdate::Changed`]) at its
//!   last level. Quantity 0 removes a level (removing an absent level does nothing; a negative
//!   quantity, which Binance never sends, is treated as 0).
//! * While no snapshot is applied (awaiting, loading, stale) diff levels are buffered.
//! * A snapshot ([`SnapshotLevel`] events sharing `lastUpdateId`, the last with `LAST`) starts
//!   loading afresh when its id differs from the one loading or the book is not loading. When it
//!   completes, buffered messages with `u <= lastUpdateId` are dropped (counted in
//!   [`BookStats::stale_levels_dropped`]); the first remaining message must satisfy
//!   `U <= lastUpdateId + 1 <= u`, else [`BookUpdate::SnapshotRejected`] (the newer buffered
//!   messages are kept for the next snapshot). The bridging messages are applied and the book is
//!   [`BookUpdate::Synced`]. With nothing left in the buffer, the first live message must bridge
//!   instead. If the snapshot completes while a diff message is half received, completion waits
//!   for that message's last level so the buffer always holds whole messages.
//! * A book of a venue that sends its snapshots in the stream
//!   ([`OrderBook::with_snapshots_in_stream`]: OKX, Bybit, Coinbase) drops its buffer (counted in
//!   [`BookStats::stale_levels_dropped`]) when a snapshot starts: the venue sent those diffs
//!   before the snapshot that replaces the book, whatever their ids (Bybit restarts at `u = 1`).
//! * Synced: a message with `u <=` the last applied `u` is a stale duplicate (dropped, counted);
//!   otherwise `U` must be the last applied `u + 1`, else [`BookUpdate::Gap`]: the book goes stale,
//!   earlier buffered data is cleared and the offending message and later ones are buffered for
//!   the next snapshot. A message that stops without its `LAST` level is a gap too.
//! * After every completed message and after a snapshot completes, a book with best bid >= best
//!   ask is [`BookUpdate::Crossed`] and goes stale.
//! * Nothing is ever shown from a book that is not synced: the read API returns `None` or empty.
//! * [`OrderBook::mark_stale`] (the core learned of lost data) drops the buffer and, because the
//!   loss may have cut a message or a snapshot in two, also the rest of the diff message and of
//!   the snapshot in flight. [`OrderBook::mark_disconnected`] (the feed disconnected, or a
//!   replay starts a new session) does the same but keeps the next diff message: a disconnect
//!   cuts no message in two, and that message may be the one to bridge the next snapshot.
//! * [`OrderBook::checksum_mismatch`] (the venue's checksum of its book differs from ours, see
//!   [`crate::checksum`]) does the same as `mark_disconnected` and counts it in
//!   [`BookStats::checksum_failures`].
//!
//! # Allocation
//!
//! [`OrderBook::new`] allocates both sides (their block pools and block lists) and the diff
//! buffer at their configured sizes; nothing allocates after that (no `Vec` ever grows past its
//! configured size, and a snapshot is sorted in place in its side's pool before it is laid out in
//! blocks). A full buffer is cleared and the loss counted
//! ([`BookStats::buffer_overflows`]): the next snapshot then bridges correctly or is rejected,
//! never silently wrong.
use crate::event::{BookSide, DepthLevel, LevelFlags, SnapshotLevel};
use crate::fixed::{Price, Qty};
use core::fmt;
use side::Side;

mod side;

/// One price level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Price.
    pub price: Price,
    /// Quantity (always positive in a book).
    pub qty: Qty,
}

/// Sizes fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookConfig {
    /// Levels kept per side (the best ones).
    pub max_levels_per_side: usize,
    /// Depth level events buffered while waiting for a snapshot.
    pub max_buffered_levels: usize,
}

impl Default for BookConfig {
    fn default() -> Self {
        BookConfig {
            max_levels_per_side: 5000,
            max_buffered_levels: 65536,
        }
    }
}

/// Where the book is in the sync procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Buffering diffs, no snapshot yet.
    AwaitingSnapshot,
    /// Snapshot levels arriving (diffs are buffered meanwhile).
    LoadingSnapshot,
    /// Valid.
    Synced,
    /// A gap, a crossed book, a rejected snapshot or lost data; buffering diffs until a new snapshot.
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
    ///
    /// `expected == got` means the previous message ended without its `LAST` level (lost events).
    Gap {
        /// Expected first update id (last applied `u + 1`).
        expected: u64,
        /// Received first update id `U`.
        got: u64,
    },
    /// The book crossed; stale; resync needed.
    Crossed,
    /// Snapshot did not bridge the buffered diffs; stale; resync needed (the buffer is kept).
    SnapshotRejected,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Diff messages applied (live and bridging ones; empty messages included).
    pub messages_applied: u64,
    /// Diff level events dropped as already covered: `u <=` the snapshot's `lastUpdateId` or,
    /// while synced, `u <=` the last applied `u` (duplicates).
    pub stale_levels_dropped: u64,
    /// Sequence gaps the book detected itself (not [`OrderBook::mark_stale`]).
    pub gaps: u64,
    /// Crossed books.
    pub crossed: u64,
    /// Snapshots applied (completed and not rejected).
    pub snapshots: u64,
    /// Snapshots rejected.
    pub snapshots_rejected: u64,
    /// Levels dropped because a side was full.
    pub levels_truncated: u64,
    /// Diff level events lost to a full buffer: the buffered ones cleared, the one that did not
    /// fit and the rest of its message.
    pub buffer_overflows: u64,
    /// Venue checksums that did not match the book ([`OrderBook::checksum_mismatch`]).
    pub checksum_failures: u64,
}

impl BookStats {
    /// Adds `other`'s counts (totals over several books).
    pub fn add(&mut self, other: &BookStats) {
        self.messages_applied += other.messages_applied;
        self.stale_levels_dropped += other.stale_levels_dropped;
        self.gaps += other.gaps;
        self.crossed += other.crossed;
        self.snapshots += other.snapshots;
        self.snapshots_rejected += other.snapshots_rejected;
        self.levels_truncated += other.levels_truncated;
        self.buffer_overflows += other.buffer_overflows;
        self.checksum_failures += other.checksum_failures;
    }
}

/// Identity of a diff message, shared by all its level events: `(u, u - U)`.
type MsgId = (u64, u32);

#[inline]
fn msg_id(lvl: &DepthLevel) -> MsgId {
    (lvl.final_update_id, lvl.update_span)
}

/// What happens to the levels of the diff message being received (decided at its first level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Synced and in sequence: apply.
    Apply,
    /// Not synced: buffer for the next snapshot.
    Buffer,
    /// Already covered (`u <=` last applied): drop and count.
    DropStale,
    /// The buffer overflowed during this message: drop the rest and count it as lost.
    Overflow,
    /// Drop silently (the message's start went to a book that is gone).
    Skip,
}

/// An L2 book for one symbol; see the [module docs](self) for the sync rules.
pub struct OrderBook {
    cfg: BookConfig,
    /// Bids, ascending by price: best (highest) last.
    bids: Side<false>,
    /// Asks, descending by price: best (lowest) last.
    asks: Side<true>,
    /// Diff level events received while no snapshot is applied; always whole messages, except
    /// for the message being received.
    buffer: Vec<DepthLevel>,
    state: SyncState,
    /// `u` of the last applied message, or the snapshot's `lastUpdateId`.
    last_u: u64,
    /// The next message must bridge the snapshot (`U <= last_u + 1`) instead of following on.
    bridging: bool,
    /// `lastUpdateId` of the snapshot loading (or last loaded).
    snap_id: u64,
    /// The snapshot's `LAST` arrived while a diff message was half received: complete at the
    /// message's `LAST`.
    snap_pending: bool,
    /// Ignore the rest of this snapshot (cut by a loss, see [`OrderBook::mark_stale`]).
    snap_discard: Option<u64>,
    /// The diff message whose `LAST` has not arrived yet.
    open: Option<MsgId>,
    /// What to do with the open message's levels.
    mode: Mode,
    /// Drop diff levels up to and including the next `LAST` (after a loss).
    resync_skip: bool,
    /// Snapshots come in the stream with the diffs ([`OrderBook::with_snapshots_in_stream`]).
    in_stream: bool,
    stats: BookStats,
}

impl fmt::Debug for OrderBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderBook")
            .field("state", &self.state)
            .field("last_update_id", &self.last_u)
            .field("bids", &self.bids.len())
            .field("asks", &self.asks.len())
            .field("buffered", &self.buffer.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl OrderBook {
    /// New empty book, awaiting a snapshot. Allocates everything it will ever use.
    pub fn new(cfg: BookConfig) -> Self {
        OrderBook {
            cfg,
            bids: Side::new(cfg.max_levels_per_side),
            asks: Side::new(cfg.max_levels_per_side),
            buffer: Vec::with_capacity(cfg.max_buffered_levels),
            state: SyncState::AwaitingSnapshot,
            last_u: 0,
            bridging: false,
            snap_id: 0,
            snap_pending: false,
            snap_discard: None,
            open: None,
            mode: Mode::Buffer,
            resync_skip: false,
            in_stream: false,
            stats: BookStats::default(),
        }
    }

    /// A book whose snapshots arrive in the stream with its diffs (a WebSocket-snapshot venue,
    /// [`Venue::snapshots_in_stream`](crate::venue::Venue::snapshots_in_stream)): a snapshot
    /// then drops every buffered diff when it starts, since the venue sent them before it and
    /// it replaces the book ("If you receive a new snapshot message, you will have to reset
    /// your local orderbook", Bybit). Without this, a snapshot whose id restarts lower (Bybit's
    /// `u = 1` after a service restart) would meet the older, higher-numbered buffered diffs
    /// and be rejected, and so would every later one until the buffer overflowed.
    pub fn with_snapshots_in_stream(mut self, in_stream: bool) -> Self {
        self.in_stream = in_stream;
        self
    }

    /// Applies one diff level event.
    ///
    /// Returns [`BookUpdate::Changed`] at the last level of an applied message,
    /// [`BookUpdate::Gap`] at the first level of a message out of sequence,
    /// [`BookUpdate::Crossed`] when a completed message crosses the book, and the snapshot's
    /// result when it was waiting for this message to complete; otherwise `None`.
    #[inline]
    pub fn apply_depth(&mut self, lvl: &DepthLevel) -> BookUpdate {
        let last = lvl.flags.contains(LevelFlags::LAST);
        if self.resync_skip {
            return self.skip_after_loss(last);
        }
        let id = msg_id(lvl);
        let mut out = BookUpdate::None;
        if self.open != Some(id) {
            out = self.begin_message(lvl);
        }
        self.open = if last { None } else { Some(id) };
        match self.mode {
            Mode::Apply => {
                self.apply_level(lvl);
                if last {
                    out = self.finish_message();
                }
            }
            Mode::Buffer => self.buffer_level(lvl),
            Mode::DropStale => self.stats.stale_levels_dropped += 1,
            Mode::Overflow => self.stats.buffer_overflows += 1,
            Mode::Skip => {}
        }
        if last && self.snap_pending {
            return self.complete_snapshot();
        }
        out
    }

    /// Applies one snapshot level event.
    ///
    /// Returns the snapshot's result at its `LAST` level ([`BookUpdate::Synced`],
    /// [`BookUpdate::SnapshotRejected`], or [`BookUpdate::Gap`]/[`BookUpdate::Crossed`] met while
    /// applying the bridging diffs); `None` before, and also at `LAST` if a diff message is half
    /// received (the result then comes with that message's last level).
    pub fn apply_snapshot(&mut self, lvl: &SnapshotLevel) -> BookUpdate {
        let last = lvl.flags.contains(LevelFlags::LAST);
        if let Some(id) = self.snap_discard {
            if id == lvl.last_update_id {
                if last {
                    self.snap_discard = None;
                }
                return BookUpdate::None;
            }
            self.snap_discard = None;
        }
        if self.state != SyncState::LoadingSnapshot
            || self.snap_id != lvl.last_update_id
            || self.snap_pending
        {
            self.begin_snapshot(lvl.last_update_id);
        }
        if !lvl.flags.contains(LevelFlags::EMPTY) && lvl.qty.0 > 0 {
            let level = Level {
                price: lvl.price,
                qty: lvl.qty,
            };
            let truncated = &mut self.stats.levels_truncated;
            match lvl.side {
                BookSide::Bid => self.bids.load(level, truncated),
                BookSide::Ask => self.asks.load(level, truncated),
            }
        }
        if !last {
            return BookUpdate::None;
        }
        if self.open.is_some() {
            self.snap_pending = true;
            return BookUpdate::None;
        }
        self.complete_snapshot()
    }

    /// Maps every page of the book's sides and diff buffer (see [`crate::prefault`]); contents
    /// unchanged.
    #[cold]
    pub fn prefault(&mut self) {
        self.bids.prefault();
        self.asks.prefault();
        crate::prefault::vec_spare(&mut self.buffer);
    }

    /// Marks the book stale because the core learned of lost data (ring overflow, disconnect).
    ///
    /// Clears the buffer. Because the loss may have cut a message or a snapshot in two, the diff
    /// levels up to and including the next `LAST` are dropped too, and so is the rest of a
    /// snapshot that was loading. Not counted in [`BookStats::gaps`] (the book did not detect it).
    #[cold]
    pub fn mark_stale(&mut self) {
        if self.state == SyncState::LoadingSnapshot && !self.snap_pending {
            self.snap_discard = Some(self.snap_id);
        }
        self.state = SyncState::Stale;
        self.buffer.clear();
        self.snap_pending = false;
        self.open = None;
        self.mode = Mode::Skip;
        self.resync_skip = true;
    }

    /// Marks the book stale because its feed went down (or a replay starts a new pass). Unlike [`OrderBook::mark_stale`], the
    /// next diff message is kept: the feed hands over whole messages before it says it is
    /// down, so none was cut in two, and the new connection's first message may be the one a
    /// fresh snapshot must bridge with (dropping it made about two reconnects in five end in a
    /// sequence gap and a second snapshot). A snapshot that was loading is dropped.
    #[cold]
    pub fn mark_disconnected(&mut self) {
        self.mark_stale();
        self.resync_skip = false;
    }

    /// Marks the book stale because the venue's checksum of it did not match ours (see
    /// [`crate::checksum`]) and counts it in [`BookStats::checksum_failures`]. The checksum
    /// follows a whole message, so no message was cut in two: the buffer is cleared and the
    /// next message is kept (as for [`OrderBook::mark_disconnected`]).
    #[cold]
    pub fn checksum_mismatch(&mut self) {
        self.stats.checksum_failures += 1;
        self.mark_stale();
        self.resync_skip = false;
    }

    /// Drops a snapshot level without looking at it, and the rest of its snapshot too (up to
    /// its `LAST` level, even if that comes through [`OrderBook::apply_snapshot`]): for a
    /// snapshot taken before the feed went down, which no diff of the next connection is known
    /// to bridge.
    #[cold]
    pub fn discard_snapshot(&mut self, lvl: &SnapshotLevel) {
        self.snap_discard = if lvl.flags.contains(LevelFlags::LAST) {
            None
        } else {
            Some(lvl.last_update_id)
        };
    }

    /// State.
    #[inline]
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// True if synced (the read API shows the book only then).
    #[inline]
    pub fn is_synced(&self) -> bool {
        self.state == SyncState::Synced
    }

    /// Best bid; `None` unless synced.
    #[inline]
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best().filter(|_| self.is_synced())
    }

    /// Best ask; `None` unless synced.
    #[inline]
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best().filter(|_| self.is_synced())
    }

    /// Bids, best (highest) first; empty unless synced.
    pub fn bids(&self) -> impl Iterator<Item = Level> + '_ {
        self.bids.best_first(self.is_synced())
    }

    /// Asks, best (lowest) first; empty unless synced.
    pub fn asks(&self) -> impl Iterator<Item = Level> + '_ {
        self.asks.best_first(self.is_synced())
    }

    /// Level counts `(bids, asks)`; `(0, 0)` unless synced.
    #[inline]
    pub fn depth(&self) -> (usize, usize) {
        if self.is_synced() {
            (self.bids.len(), self.asks.len())
        } else {
            (0, 0)
        }
    }

    /// `u` of the last applied diff message, or the snapshot's `lastUpdateId` if none followed it.
    /// Meaningful while synced; otherwise the last id the book had reached.
    #[inline]
    pub fn last_update_id(&self) -> u64 {
        self.last_u
    }

    /// `(best bid + best ask) / 2`, rounded down to 1e-8; `None` unless synced with both sides.
    #[inline]
    pub fn mid_price(&self) -> Option<Price> {
        let bid = self.best_bid()?;
        let ask = self.best_ask()?;
        let sum = bid.price.0 as i128 + ask.price.0 as i128;
        Some(Price(sum.div_euclid(2) as i64))
    }

    /// Stats.
    #[inline]
    pub fn stats(&self) -> BookStats {
        self.stats
    }

    #[inline]
    fn is_crossed(&self) -> bool {
        match (self.bids.best(), self.asks.best()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// Applies one diff level to the sides (an `EMPTY` event changes nothing).
    #[inline]
    fn apply_level(&mut self, lvl: &DepthLevel) {
        if lvl.flags.contains(LevelFlags::EMPTY) {
            return;
        }
        let truncated = &mut self.stats.levels_truncated;
        match lvl.side {
            BookSide::Bid => self.bids.upsert(lvl.price, lvl.qty, truncated),
            BookSide::Ask => self.asks.upsert(lvl.price, lvl.qty, truncated),
        }
    }

    /// First level of a message: decides [`Self::mode`] and runs the sequence check.
    #[inline]
    fn begin_message(&mut self, lvl: &DepthLevel) -> BookUpdate {
        let mut out = BookUpdate::None;
        if self.open.is_some() {
            out = self.message_truncated(lvl);
        }
        if self.state != SyncState::Synced {
            self.mode = Mode::Buffer;
            return out;
        }
        let u = lvl.final_update_id;
        let first = lvl.first_update_id();
        let next = self.last_u.saturating_add(1);
        if u <= self.last_u {
            self.mode = Mode::DropStale;
        } else if first == next || (self.bridging && first <= next) {
            self.last_u = u;
            self.bridging = false;
            self.mode = Mode::Apply;
        } else {
            out = self.sequence_gap(next, first);
        }
        out
    }

    /// Last level of an applied message.
    #[inline]
    fn finish_message(&mut self) -> BookUpdate {
        self.stats.messages_applied += 1;
        if self.is_crossed() {
            return self.crossed();
        }
        BookUpdate::Changed
    }

    #[inline]
    fn buffer_level(&mut self, lvl: &DepthLevel) {
        if self.buffer.len() < self.cfg.max_buffered_levels {
            self.buffer.push(*lvl);
        } else {
            self.buffer_overflow();
        }
    }

    #[cold]
    #[inline(never)]
    fn buffer_overflow(&mut self) {
        self.stats.buffer_overflows += self.buffer.len() as u64 + 1;
        self.buffer.clear();
        self.mode = Mode::Overflow;
    }

    #[cold]
    #[inline(never)]
    fn skip_after_loss(&mut self, last: bool) -> BookUpdate {
        if last {
            self.resync_skip = false;
        }
        BookUpdate::None
    }

    /// A message started before the open one sent its `LAST`: events were lost.
    #[cold]
    #[inline(never)]
    fn message_truncated(&mut self, lvl: &DepthLevel) -> BookUpdate {
        let prev = self.open.take();
        match self.mode {
            Mode::Apply => {
                let next = self.last_u.saturating_add(1);
                self.sequence_gap(next, lvl.first_update_id())
            }
            Mode::Buffer => {
                // Keep the buffer to whole messages; the hole is then caught as a sequence gap.
                if let Some(p) = prev {
                    while self.buffer.last().is_some_and(|b| msg_id(b) == p) {
                        self.buffer.pop();
                    }
                }
                self.stats.gaps += 1;
                BookUpdate::None
            }
            Mode::DropStale | Mode::Overflow | Mode::Skip => BookUpdate::None,
        }
    }

    /// Synced book out of sequence: stale, buffer from the offending message on.
    #[cold]
    #[inline(never)]
    fn sequence_gap(&mut self, expected: u64, got: u64) -> BookUpdate {
        self.state = SyncState::Stale;
        self.buffer.clear();
        self.stats.gaps += 1;
        self.mode = Mode::Buffer;
        BookUpdate::Gap { expected, got }
    }

    #[cold]
    #[inline(never)]
    fn crossed(&mut self) -> BookUpdate {
        self.stats.crossed += 1;
        self.state = SyncState::Stale;
        BookUpdate::Crossed
    }

    #[cold]
    #[inline(never)]
    fn begin_snapshot(&mut self, id: u64) {
        if self.in_stream {
            self.stats.stale_levels_dropped += self.buffer.len() as u64;
            self.buffer.clear();
            if self.mode == Mode::Buffer {
                // A diff message half received: its start was just dropped, so drop the rest.
                self.mode = Mode::Skip;
            }
        }
        self.state = SyncState::LoadingSnapshot;
        self.snap_id = id;
        self.snap_pending = false;
        self.bids.begin_load();
        self.asks.begin_load();
        if self.mode == Mode::Apply {
            // The open message's first levels went to the book just cleared.
            self.mode = Mode::Skip;
        }
    }

    /// Drops the buffered levels before index `i` (no allocation).
    fn keep_buffered_from(&mut self, i: usize) {
        let i = i.min(self.buffer.len());
        self.buffer.drain(..i);
    }

    /// The snapshot is loaded and no diff message is half received: bridge the buffer.
    #[cold]
    #[inline(never)]
    fn complete_snapshot(&mut self) -> BookUpdate {
        self.snap_pending = false;
        self.bids.normalize();
        self.asks.normalize();
        self.state = SyncState::Synced;
        self.last_u = self.snap_id;
        self.bridging = true;

        let mut open: Option<MsgId> = None;
        let mut mode = Mode::Skip;
        let mut i = 0;
        while let Some(&lvl) = self.buffer.get(i) {
            let id = msg_id(&lvl);
            let last = lvl.flags.contains(LevelFlags::LAST);
            if open != Some(id) {
                let u = lvl.final_update_id;
                let first = lvl.first_update_id();
                let next = self.last_u.saturating_add(1);
                if u <= self.last_u {
                    mode = Mode::DropStale;
                } else if self.bridging {
                    if first > next {
                        self.keep_buffered_from(i);
                        self.state = SyncState::Stale;
                        self.stats.snapshots_rejected += 1;
                        return BookUpdate::SnapshotRejected;
                    }
                    self.stats.snapshots += 1;
                    self.bridging = false;
                    self.last_u = u;
                    mode = Mode::Apply;
                } else if first == next {
                    self.last_u = u;
                    mode = Mode::Apply;
                } else {
                    self.keep_buffered_from(i);
                    self.state = SyncState::Stale;
                    self.stats.gaps += 1;
                    return BookUpdate::Gap {
                        expected: next,
                        got: first,
                    };
                }
            }
            open = if last { None } else { Some(id) };
            match mode {
                Mode::Apply => {
                    self.apply_level(&lvl);
                    if last {
                        self.stats.messages_applied += 1;
                        if self.is_crossed() {
                            self.keep_buffered_from(i + 1);
                            return self.crossed();
                        }
                    }
                }
                Mode::DropStale => self.stats.stale_levels_dropped += 1,
                Mode::Buffer | Mode::Overflow | Mode::Skip => {}
            }
            i += 1;
        }
        self.buffer.clear();
        if self.bridging {
            // Nothing newer than the snapshot buffered yet: the first live message must bridge.
            self.stats.snapshots += 1;
        }
        if self.is_crossed() {
            return self.crossed();
        }
        BookUpdate::Synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;
    use std::collections::BTreeMap;
    use BookSide::{Ask, Bid};

    /// Event time of Binance's documented `depthUpdate` example, ms.
    const EXAMPLE_E_MS: u64 = 1_672_515_782_136;
    /// `lastUpdateId` of Binance's documented depth snapshot example.
    const LID: u64 = 1_027_024;

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }

    fn qt(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }

    fn lv(p: &str, q: &str) -> Level {
        Level {
            price: px(p),
            qty: qt(q),
        }
    }

    /// One diff message covering `first..=last` as level events.
    fn diff(first: u64, last: u64, levels: &[(BookSide, &str, &str)]) -> Vec<DepthLevel> {
        let raw: Vec<(BookSide, Price, Qty)> =
            levels.iter().map(|&(s, p, q)| (s, px(p), qt(q))).collect();
        diff_raw(first, last, &raw)
    }

    fn diff_raw(first: u64, last: u64, levels: &[(BookSide, Price, Qty)]) -> Vec<DepthLevel> {
        let base = DepthLevel {
            exch_ns: EXAMPLE_E_MS * 1_000_000,
            final_update_id: last,
            price: Price::ZERO,
            qty: Qty::ZERO,
            update_span: u32::try_from(last - first).unwrap(),
            side: Bid,
            flags: LevelFlags::default(),
        };
        if levels.is_empty() {
            return vec![DepthLevel {
                flags: LevelFlags::LAST.with(LevelFlags::EMPTY),
                ..base
            }];
        }
        levels
            .iter()
            .enumerate()
            .map(|(i, &(side, price, qty))| DepthLevel {
                price,
                qty,
                side,
                flags: if i + 1 == levels.len() {
                    LevelFlags::LAST
                } else {
                    LevelFlags::default()
                },
                ..base
            })
            .collect()
    }

    /// A REST snapshot as events, bids then asks, in the order given.
    fn snapshot(id: u64, bids: &[(&str, &str)], asks: &[(&str, &str)]) -> Vec<SnapshotLevel> {
        let b: Vec<(Price, Qty)> = bids.iter().map(|&(p, q)| (px(p), qt(q))).collect();
        let a: Vec<(Price, Qty)> = asks.iter().map(|&(p, q)| (px(p), qt(q))).collect();
        snapshot_raw(id, &b, &a)
    }

    fn snapshot_raw(id: u64, bids: &[(Price, Qty)], asks: &[(Price, Qty)]) -> Vec<SnapshotLevel> {
        let mut out: Vec<SnapshotLevel> = bids
            .iter()
            .map(|&(price, qty)| (Bid, price, qty))
            .chain(asks.iter().map(|&(price, qty)| (Ask, price, qty)))
            .map(|(side, price, qty)| SnapshotLevel {
                last_update_id: id,
                price,
                qty,
                side,
                flags: LevelFlags::default(),
            })
            .collect();
        match out.last_mut() {
            Some(l) => l.flags = LevelFlags::LAST,
            None => out.push(SnapshotLevel {
                last_update_id: id,
                price: Price::ZERO,
                qty: Qty::ZERO,
                side: Bid,
                flags: LevelFlags::LAST.with(LevelFlags::EMPTY),
            }),
        }
        out
    }

    /// Feeds a message; every level but the last must return `None`; returns the last's result.
    fn send(book: &mut OrderBook, msg: &[DepthLevel]) -> BookUpdate {
        let (last, init) = msg.split_last().unwrap();
        for l in init {
            assert_eq!(
                book.apply_depth(l),
                BookUpdate::None,
                "mid-message level {l:?}"
            );
        }
        book.apply_depth(last)
    }

    /// Feeds a snapshot; every level but the last must return `None`; returns the last's result.
    fn load(book: &mut OrderBook, snap: &[SnapshotLevel]) -> BookUpdate {
        let (last, init) = snap.split_last().unwrap();
        for l in init {
            assert_eq!(book.apply_snapshot(l), BookUpdate::None);
        }
        book.apply_snapshot(last)
    }

    fn bids(book: &OrderBook) -> Vec<Level> {
        book.bids().collect()
    }

    fn asks(book: &OrderBook) -> Vec<Level> {
        book.asks().collect()
    }

    /// Binance's snapshot example: bid 4.00000000 x 431, ask 4.00000200 x 12.
    fn synced_example() -> OrderBook {
        let mut b = OrderBook::new(BookConfig::default());
        let r = load(
            &mut b,
            &snapshot(
                LID,
                &[("4.00000000", "431.00000000")],
                &[("4.00000200", "12.00000000")],
            ),
        );
        assert_eq!(r, BookUpdate::Synced);
        b
    }

    fn assert_hidden(b: &OrderBook) {
        assert!(!b.is_synced());
        assert_eq!(b.best_bid(), None);
        assert_eq!(b.best_ask(), None);
        assert_eq!(b.bids().count(), 0);
        assert_eq!(b.asks().count(), 0);
        assert_eq!(b.depth(), (0, 0));
        assert_eq!(b.mid_price(), None);
    }

    /// Regression (chaos drill): the first diff message of a new connection bridges the
    /// snapshot asked for at the reconnect. `mark_stale` would skip it, and the snapshot would
    /// end in a sequence gap.
    #[test]
    fn first_message_after_a_disconnect_bridges_the_fresh_snapshot() {
        let mut b = OrderBook::new(BookConfig::default());
        send(&mut b, &diff(100, 100, &[(Bid, "1.0", "1")]));
        for l in snapshot(100, &[("1.0", "1")], &[("2.0", "1")]) {
            b.apply_snapshot(&l);
        }
        assert!(b.is_synced());
        b.mark_disconnected();
        assert!(!b.is_synced());
        // The new connection: the snapshot (lastUpdateId 200) comes after its first message.
        assert_eq!(
            send(&mut b, &diff(201, 205, &[(Bid, "1.1", "2")])),
            BookUpdate::None
        );
        let snap = snapshot(200, &[("1.0", "1")], &[("2.0", "1")]);
        let (last, init) = snap.split_last().unwrap();
        for l in init {
            b.apply_snapshot(l);
        }
        assert_eq!(b.apply_snapshot(last), BookUpdate::Synced);
        assert_eq!(b.last_update_id(), 205);
        assert_eq!(b.best_bid(), Some(lv("1.1", "2")));
        assert_eq!(b.stats().gaps, 0);
    }

    /// A snapshot dropped while the feed is down is dropped whole, also the levels that come
    /// after: the book stays stale, and the next snapshot loads normally.
    #[test]
    fn a_discarded_snapshot_is_dropped_whole() {
        let mut b = OrderBook::new(BookConfig::default());
        let old = snapshot(300, &[("1.0", "1"), ("0.9", "1")], &[("2.0", "1")]);
        b.discard_snapshot(&old[0]);
        for l in &old[1..] {
            assert_eq!(b.apply_snapshot(l), BookUpdate::None);
        }
        assert!(!b.is_synced());
        let fresh = snapshot(400, &[("1.0", "1")], &[("2.0", "1")]);
        let (last, init) = fresh.split_last().unwrap();
        for l in init {
            b.apply_snapshot(l);
        }
        assert_eq!(b.apply_snapshot(last), BookUpdate::Synced);
        assert_eq!(b.last_update_id(), 400);
    }

    #[test]
    fn snapshot_then_bridging_diff_applied() {
        let mut b = OrderBook::new(BookConfig::default());
        // Binance's depthUpdate example: U=157, u=160, b 0.0024 x 10, a 0.0026 x 100; an older
        // message before it.
        assert_eq!(
            send(&mut b, &diff(150, 156, &[(Bid, "0.0023", "7")])),
            BookUpdate::None
        );
        let example = diff(157, 160, &[(Bid, "0.0024", "10"), (Ask, "0.0026", "100")]);
        assert_eq!(send(&mut b, &example), BookUpdate::None);
        assert_eq!(b.state(), SyncState::AwaitingSnapshot);
        assert_hidden(&b);

        let snap = snapshot(
            158,
            &[("0.0024", "5"), ("0.0022", "3")],
            &[("0.0026", "1"), ("0.0027", "2")],
        );
        let (last, init) = snap.split_last().unwrap();
        for l in init {
            assert_eq!(b.apply_snapshot(l), BookUpdate::None);
            assert_eq!(b.state(), SyncState::LoadingSnapshot);
            assert_hidden(&b);
        }
        assert_eq!(b.apply_snapshot(last), BookUpdate::Synced);
        assert!(b.is_synced());
        assert_eq!(b.best_bid(), Some(lv("0.0024", "10")));
        assert_eq!(b.best_ask(), Some(lv("0.0026", "100")));
        assert_eq!(bids(&b), vec![lv("0.0024", "10"), lv("0.0022", "3")]);
        assert_eq!(asks(&b), vec![lv("0.0026", "100"), lv("0.0027", "2")]);
        assert_eq!(b.last_update_id(), 160);
        let s = b.stats();
        assert_eq!(s.stale_levels_dropped, 1);
        assert_eq!(s.messages_applied, 1);
        assert_eq!(s.snapshots, 1);
        assert_eq!(s.gaps, 0);

        let next = diff(161, 161, &[(Bid, "0.0025", "1")]);
        assert_eq!(send(&mut b, &next), BookUpdate::Changed);
        assert_eq!(b.best_bid(), Some(lv("0.0025", "1")));
        assert_eq!(b.last_update_id(), 161);
    }

    #[test]
    fn sequence_check_at_first_level_result_at_last() {
        let mut b = synced_example();
        let msg = diff(
            LID + 1,
            LID + 3,
            &[
                (Bid, "3.99999900", "1"),
                (Bid, "3.99999800", "2"),
                (Ask, "4.00000300", "3"),
            ],
        );
        let got: Vec<BookUpdate> = msg.iter().map(|l| b.apply_depth(l)).collect();
        assert_eq!(
            got,
            vec![BookUpdate::None, BookUpdate::None, BookUpdate::Changed]
        );
        assert_eq!(b.depth(), (3, 2));
        assert_eq!(b.stats().messages_applied, 1);
    }

    #[test]
    fn buffered_diffs_older_than_the_snapshot_are_dropped_and_counted() {
        let mut b = OrderBook::new(BookConfig::default());
        send(
            &mut b,
            &diff(LID - 20, LID - 10, &[(Bid, "3.9", "1"), (Ask, "4.1", "1")]),
        );
        send(&mut b, &diff(LID - 9, LID, &[(Bid, "3.8", "1")]));
        send(&mut b, &diff(LID + 1, LID + 2, &[(Ask, "4.00000300", "5")]));
        let snap = snapshot(
            LID,
            &[("4.00000000", "431.00000000")],
            &[("4.00000200", "12.00000000")],
        );
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(b.stats().stale_levels_dropped, 3);
        assert_eq!(
            bids(&b),
            vec![lv("4.00000000", "431")],
            "stale levels never applied"
        );
        assert_eq!(
            asks(&b),
            vec![lv("4.00000200", "12"), lv("4.00000300", "5")]
        );
        assert_eq!(b.last_update_id(), LID + 2);
    }

    #[test]
    fn snapshot_not_bridging_is_rejected_and_the_buffer_kept() {
        let mut b = OrderBook::new(BookConfig::default());
        send(
            &mut b,
            &diff(LID + 6, LID + 16, &[(Bid, "4.00000100", "1")]),
        );
        send(
            &mut b,
            &diff(LID + 17, LID + 20, &[(Ask, "4.00000300", "2")]),
        );
        let old = snapshot(
            LID,
            &[("4.00000000", "431.00000000")],
            &[("4.00000200", "12.00000000")],
        );
        assert_eq!(load(&mut b, &old), BookUpdate::SnapshotRejected);
        assert_eq!(b.state(), SyncState::Stale);
        assert_hidden(&b);
        assert_eq!(b.stats().snapshots_rejected, 1);
        assert_eq!(b.stats().snapshots, 0);

        // A newer snapshot bridges with what was buffered.
        let newer = snapshot(LID + 10, &[("4.00000000", "400")], &[("4.00000200", "10")]);
        assert_eq!(load(&mut b, &newer), BookUpdate::Synced);
        assert_eq!(
            bids(&b),
            vec![lv("4.00000100", "1"), lv("4.00000000", "400")]
        );
        assert_eq!(
            asks(&b),
            vec![lv("4.00000200", "10"), lv("4.00000300", "2")]
        );
        assert_eq!(b.last_update_id(), LID + 20);
        assert_eq!(b.stats().snapshots, 1);
    }

    /// Bybit's service restart: a stale book holds buffered diffs numbered above the `u = 1`
    /// snapshot that follows them. A REST-snapshot book rejects that snapshot (it is older than
    /// the diffs by id); a book whose snapshots come in the stream drops the diffs the venue
    /// sent before it and syncs, and then follows the restarted numbering.
    #[test]
    fn an_in_stream_snapshot_supersedes_buffered_diffs_even_with_a_lower_id() {
        let restart = |in_stream: bool| {
            let mut b = OrderBook::new(BookConfig::default()).with_snapshots_in_stream(in_stream);
            let first = snapshot(LID, &[("4.00000000", "431")], &[("4.00000200", "12")]);
            assert_eq!(load(&mut b, &first), BookUpdate::Synced);
            // A lost diff: the book goes stale and buffers what follows.
            let gap = diff(LID + 5, LID + 5, &[(Bid, "4.00000100", "1")]);
            assert!(matches!(send(&mut b, &gap), BookUpdate::Gap { .. }));
            send(&mut b, &diff(LID + 6, LID + 6, &[(Ask, "4.00000300", "2")]));
            assert_eq!(b.state(), SyncState::Stale);
            let fresh = snapshot(1, &[("3.00000000", "5")], &[("3.00000100", "6")]);
            (load(&mut b, &fresh), b)
        };
        let (r, b) = restart(false);
        assert_eq!(
            r,
            BookUpdate::SnapshotRejected,
            "by id, the diffs are newer"
        );
        assert_eq!(b.state(), SyncState::Stale);

        let (r, mut b) = restart(true);
        assert_eq!(r, BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("3.00000000", "5")]);
        assert_eq!(asks(&b), vec![lv("3.00000100", "6")]);
        assert_eq!(b.last_update_id(), 1);
        assert_eq!(
            b.stats().stale_levels_dropped,
            2,
            "the two superseded diff levels"
        );
        assert_eq!(b.stats().snapshots_rejected, 0);
        // The restarted numbering goes on from the snapshot.
        assert_eq!(
            send(&mut b, &diff(2, 2, &[(Bid, "2.90000000", "7")])),
            BookUpdate::Changed
        );
        assert_eq!(bids(&b), vec![lv("3.00000000", "5"), lv("2.90000000", "7")]);
        assert_eq!(b.last_update_id(), 2);
    }

    #[test]
    fn gap_makes_the_book_stale_and_hidden() {
        let mut b = synced_example();
        assert_eq!(
            send(&mut b, &diff(LID + 1, LID + 6, &[(Bid, "3.99", "1")])),
            BookUpdate::Changed
        );
        let skipping = diff(LID + 8, LID + 9, &[(Bid, "3.98", "1"), (Ask, "4.1", "1")]);
        assert_eq!(
            b.apply_depth(&skipping[0]),
            BookUpdate::Gap {
                expected: LID + 7,
                got: LID + 8
            }
        );
        assert_eq!(b.apply_depth(&skipping[1]), BookUpdate::None);
        assert_eq!(b.state(), SyncState::Stale);
        assert_hidden(&b);
        assert_eq!(b.stats().gaps, 1);
        // Later messages are buffered, not applied.
        assert_eq!(
            send(&mut b, &diff(LID + 10, LID + 10, &[(Bid, "3.97", "1")])),
            BookUpdate::None
        );
        assert_eq!(b.buffer.len(), 3);
    }

    #[test]
    fn resync_after_a_gap_with_a_new_snapshot() {
        let mut b = synced_example();
        assert!(matches!(
            send(&mut b, &diff(LID + 5, LID + 6, &[(Bid, "3.99", "1")])),
            BookUpdate::Gap { .. }
        ));
        send(&mut b, &diff(LID + 7, LID + 8, &[(Ask, "4.00000400", "4")]));
        send(&mut b, &diff(LID + 9, LID + 12, &[(Bid, "3.99", "0")]));
        let snap = snapshot(
            LID + 10,
            &[("4.00000000", "100"), ("3.99", "9")],
            &[("4.00000200", "10"), ("4.00000400", "4")],
        );
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("4.00000000", "100")]);
        assert_eq!(
            asks(&b),
            vec![lv("4.00000200", "10"), lv("4.00000400", "4")]
        );
        assert_eq!(b.last_update_id(), LID + 12);
        // Two buffered messages were older than the snapshot.
        assert_eq!(b.stats().stale_levels_dropped, 2);
        assert_eq!(
            send(
                &mut b,
                &diff(LID + 13, LID + 13, &[(Ask, "4.00000200", "0")])
            ),
            BookUpdate::Changed
        );
        assert_eq!(b.best_ask(), Some(lv("4.00000400", "4")));
        assert_eq!(b.stats().snapshots, 2);
    }

    #[test]
    fn duplicate_or_old_diffs_while_synced_are_dropped_without_a_gap() {
        let mut b = synced_example();
        let m = diff(LID + 1, LID + 3, &[(Bid, "3.99", "1"), (Ask, "4.1", "2")]);
        assert_eq!(send(&mut b, &m), BookUpdate::Changed);
        let before = (bids(&b), asks(&b));
        assert_eq!(send(&mut b, &m), BookUpdate::None);
        assert_eq!(
            send(&mut b, &diff(LID - 5, LID + 2, &[(Bid, "3.5", "1")])),
            BookUpdate::None
        );
        assert!(b.is_synced());
        assert_eq!((bids(&b), asks(&b)), before);
        let s = b.stats();
        assert_eq!(s.gaps, 0);
        assert_eq!(s.stale_levels_dropped, 3);
        assert_eq!(s.messages_applied, 1);
        assert_eq!(
            send(&mut b, &diff(LID + 4, LID + 4, &[(Bid, "3.5", "1")])),
            BookUpdate::Changed
        );
    }

    #[test]
    fn zero_quantity_removes_and_absent_removal_is_ignored() {
        let mut b = synced_example();
        let m = diff(
            LID + 1,
            LID + 1,
            &[
                (Bid, "4.00000000", "0.00000000"),
                (Bid, "3.00000000", "0"),
                (Ask, "4.00000300", "1"),
            ],
        );
        assert_eq!(send(&mut b, &m), BookUpdate::Changed);
        assert_eq!(b.best_bid(), None);
        assert_eq!(b.depth(), (0, 2));
        assert_eq!(
            send(&mut b, &diff(LID + 2, LID + 2, &[(Ask, "4.00000200", "0")])),
            BookUpdate::Changed
        );
        assert_eq!(asks(&b), vec![lv("4.00000300", "1")]);
    }

    #[test]
    fn empty_message_keeps_the_sequence() {
        let mut b = synced_example();
        let empty = diff(LID + 1, LID + 4, &[]);
        assert_eq!(empty.len(), 1);
        assert_eq!(send(&mut b, &empty), BookUpdate::Changed);
        assert_eq!(b.last_update_id(), LID + 4);
        assert_eq!(b.depth(), (1, 1));
        assert_eq!(
            send(&mut b, &diff(LID + 5, LID + 5, &[(Bid, "3.9", "1")])),
            BookUpdate::Changed
        );
        assert_eq!(
            send(&mut b, &diff(LID + 7, LID + 7, &[])),
            BookUpdate::Gap {
                expected: LID + 6,
                got: LID + 7
            }
        );

        // An empty message can bridge a snapshot too.
        let mut b = OrderBook::new(BookConfig::default());
        send(&mut b, &diff(LID - 3, LID + 6, &[]));
        send(&mut b, &diff(LID + 7, LID + 7, &[(Ask, "4.5", "1")]));
        let snap = snapshot(LID, &[("4", "1")], &[("4.1", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(b.last_update_id(), LID + 7);
        assert_eq!(b.stats().messages_applied, 2);
        assert_eq!(b.depth(), (1, 2));
    }

    #[test]
    fn crossed_book_is_detected_and_hidden() {
        // A transient cross inside one message is fine.
        let mut b = synced_example();
        let m = diff(
            LID + 1,
            LID + 1,
            &[
                (Bid, "4.00000300", "1"),
                (Ask, "4.00000200", "0"),
                (Ask, "4.00000400", "5"),
            ],
        );
        assert_eq!(send(&mut b, &m), BookUpdate::Changed);
        assert_eq!(b.mid_price(), Some(px("4.00000350")));

        // Locked (bid == ask) counts as crossed.
        let m = diff(LID + 2, LID + 2, &[(Ask, "4.00000300", "1")]);
        assert_eq!(send(&mut b, &m), BookUpdate::Crossed);
        assert_eq!(b.state(), SyncState::Stale);
        assert_hidden(&b);
        assert_eq!(b.stats().crossed, 1);
        // Stale: the next messages are buffered.
        assert_eq!(
            send(&mut b, &diff(LID + 3, LID + 3, &[(Ask, "4.00000300", "0")])),
            BookUpdate::None
        );

        // A crossed snapshot is caught when it completes.
        let mut b = OrderBook::new(BookConfig::default());
        let snap = snapshot(LID, &[("4.1", "1")], &[("4.0", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::Crossed);
        assert_hidden(&b);
        assert_eq!(b.stats().crossed, 1);
    }

    #[test]
    fn full_side_keeps_the_best_levels() {
        let cfg = BookConfig {
            max_levels_per_side: 3,
            max_buffered_levels: 16,
        };
        let mut b = OrderBook::new(cfg);
        let (bid_ptr, ask_ptr) = (b.bids.ptrs(), b.asks.ptrs());
        let snap = snapshot(
            LID,
            &[("10", "1"), ("9", "1"), ("8", "1"), ("7", "1"), ("6", "1")],
            &[("11", "1"), ("12", "1"), ("13", "1"), ("14", "1")],
        );
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("10", "1"), lv("9", "1"), lv("8", "1")]);
        assert_eq!(asks(&b), vec![lv("11", "1"), lv("12", "1"), lv("13", "1")]);
        assert_eq!(b.stats().levels_truncated, 3);

        // Worse than all: dropped. Better than the worst: the worst goes.
        let m = diff(
            LID + 1,
            LID + 1,
            &[
                (Bid, "5", "2"),
                (Bid, "9.5", "2"),
                (Ask, "10.5", "2"),
                (Ask, "20", "2"),
            ],
        );
        assert_eq!(send(&mut b, &m), BookUpdate::Changed);
        assert_eq!(bids(&b), vec![lv("10", "1"), lv("9.5", "2"), lv("9", "1")]);
        assert_eq!(
            asks(&b),
            vec![lv("10.5", "2"), lv("11", "1"), lv("12", "1")]
        );
        assert_eq!(b.stats().levels_truncated, 7);
        // Updating an existing level of a full side truncates nothing.
        let m = diff(LID + 2, LID + 2, &[(Bid, "9", "7"), (Bid, "10", "0")]);
        assert_eq!(send(&mut b, &m), BookUpdate::Changed);
        assert_eq!(bids(&b), vec![lv("9.5", "2"), lv("9", "7")]);
        assert_eq!(b.stats().levels_truncated, 7);
        // Never reallocated.
        assert_eq!((b.bids.ptrs(), b.asks.ptrs()), (bid_ptr, ask_ptr));
        assert_eq!(b.bids.blocks(), (1, 1));

        // A worst-first snapshot larger than the side keeps the best too.
        let snap = snapshot(
            LID + 100,
            &[("1", "1"), ("2", "1"), ("3", "1"), ("4", "1")],
            &[("9", "1"), ("8", "1"), ("7", "1"), ("6", "1")],
        );
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("4", "1"), lv("3", "1"), lv("2", "1")]);
        assert_eq!(asks(&b), vec![lv("6", "1"), lv("7", "1"), lv("8", "1")]);
    }

    #[test]
    fn buffer_overflow_is_counted_and_never_silently_wrong() {
        let cfg = BookConfig {
            max_levels_per_side: 100,
            max_buffered_levels: 4,
        };
        let mut b = OrderBook::new(cfg);
        let buf_ptr = b.buffer.as_ptr();
        let three = |first, last| {
            diff(
                first,
                last,
                &[(Bid, "3.1", "1"), (Bid, "3.2", "1"), (Bid, "3.3", "1")],
            )
        };
        send(&mut b, &three(101, 102));
        // The fifth level does not fit: 4 buffered + 1 lost, then the rest of its message.
        send(&mut b, &three(103, 104));
        assert_eq!(b.stats().buffer_overflows, 6);
        assert!(b.buffer.is_empty());
        send(&mut b, &diff(105, 106, &[(Ask, "4", "1")]));
        // 103..=104 was lost: a snapshot at 102 cannot bridge.
        let snap = snapshot(102, &[("3", "1")], &[("4.5", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::SnapshotRejected);
        // One past the lost message bridges.
        let snap = snapshot(104, &[("3", "1")], &[("4.5", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(asks(&b), vec![lv("4", "1"), lv("4.5", "1")]);
        assert_eq!(b.buffer.as_ptr(), buf_ptr);
        assert_eq!(b.buffer.capacity(), 4);
    }

    #[test]
    fn levels_iterate_best_first() {
        let mut b = OrderBook::new(BookConfig::default());
        // Any arrival order is sorted out at completion.
        let snap = snapshot(
            LID,
            &[
                ("3.9", "1"),
                ("4.00000000", "431"),
                ("3.7", "3"),
                ("3.8", "2"),
            ],
            &[
                ("4.3", "3"),
                ("4.00000200", "12"),
                ("4.1", "1"),
                ("4.2", "2"),
            ],
        );
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        let bid_px: Vec<Price> = b.bids().map(|l| l.price).collect();
        let ask_px: Vec<Price> = b.asks().map(|l| l.price).collect();
        assert_eq!(bid_px, vec![px("4"), px("3.9"), px("3.8"), px("3.7")]);
        assert_eq!(
            ask_px,
            vec![px("4.00000200"), px("4.1"), px("4.2"), px("4.3")]
        );
        assert_eq!(b.depth(), (4, 4));
        assert_eq!(b.best_bid(), Some(lv("4.00000000", "431")));
        assert_eq!(b.best_ask(), Some(lv("4.00000200", "12")));
        assert_eq!(b.mid_price(), Some(px("4.00000100")));
        assert_eq!(b.last_update_id(), LID);
    }

    #[test]
    fn empty_snapshot_syncs_an_empty_book() {
        let mut b = OrderBook::new(BookConfig::default());
        let snap = snapshot(LID, &[], &[]);
        assert_eq!(snap.len(), 1);
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert!(b.is_synced());
        assert_eq!(
            (b.best_bid(), b.mid_price(), b.depth()),
            (None, None, (0, 0))
        );
        // No buffered diff: the first live message must bridge.
        assert_eq!(
            send(&mut b, &diff(LID - 5, LID, &[(Bid, "1", "1")])),
            BookUpdate::None
        );
        assert_eq!(
            send(&mut b, &diff(LID - 2, LID + 3, &[(Bid, "4", "1")])),
            BookUpdate::Changed
        );
        assert_eq!(
            send(&mut b, &diff(LID + 4, LID + 4, &[(Ask, "5", "1")])),
            BookUpdate::Changed
        );
        assert_eq!(b.mid_price(), Some(px("4.5")));

        // A first live message that does not bridge is a gap.
        let mut b = OrderBook::new(BookConfig::default());
        assert_eq!(load(&mut b, &snapshot(LID, &[], &[])), BookUpdate::Synced);
        assert_eq!(
            send(&mut b, &diff(LID + 2, LID + 3, &[])),
            BookUpdate::Gap {
                expected: LID + 1,
                got: LID + 2
            }
        );
    }

    #[test]
    fn snapshot_completion_waits_for_a_half_received_message() {
        let mut b = OrderBook::new(BookConfig::default());
        let m = diff(LID - 1, LID + 2, &[(Bid, "4.1", "1"), (Ask, "4.2", "1")]);
        assert_eq!(b.apply_depth(&m[0]), BookUpdate::None);
        let snap = snapshot(LID, &[("4", "1")], &[("4.3", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::None);
        assert_eq!(b.state(), SyncState::LoadingSnapshot);
        assert_eq!(b.apply_depth(&m[1]), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("4.1", "1"), lv("4", "1")]);
        assert_eq!(asks(&b), vec![lv("4.2", "1"), lv("4.3", "1")]);
    }

    #[test]
    fn new_snapshot_while_synced_reloads_from_scratch() {
        let mut b = synced_example();
        let snap = snapshot(LID + 50, &[("5", "1")], &[("6", "1")]);
        assert_eq!(b.apply_snapshot(&snap[0]), BookUpdate::None);
        assert_eq!(b.state(), SyncState::LoadingSnapshot);
        assert_hidden(&b);
        assert_eq!(b.apply_snapshot(&snap[1]), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("5", "1")]);
        assert_eq!(asks(&b), vec![lv("6", "1")]);
        assert_eq!(b.last_update_id(), LID + 50);

        // A different id while loading restarts too.
        let a = snapshot(7, &[("1", "1")], &[("2", "1")]);
        let c = snapshot(9, &[("1.5", "1")], &[("2.5", "1")]);
        assert_eq!(b.apply_snapshot(&a[0]), BookUpdate::None);
        assert_eq!(load(&mut b, &c), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("1.5", "1")]);
    }

    #[test]
    fn mark_stale_drops_the_buffer_and_what_the_loss_may_have_cut() {
        let mut b = synced_example();
        b.mark_stale();
        assert_eq!(b.state(), SyncState::Stale);
        assert_hidden(&b);
        assert_eq!(b.stats().gaps, 0);
        // The first message after the loss may be a tail: dropped.
        send(
            &mut b,
            &diff(LID + 5, LID + 6, &[(Bid, "3.9", "1"), (Bid, "3.8", "1")]),
        );
        send(&mut b, &diff(LID + 7, LID + 8, &[(Bid, "3.7", "1")]));
        assert_eq!(b.buffer.len(), 1);
        let snap = snapshot(LID + 5, &[("4", "1")], &[("4.1", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::SnapshotRejected);
        let snap = snapshot(LID + 6, &[("4", "1")], &[("4.1", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(bids(&b), vec![lv("4", "1"), lv("3.7", "1")]);

        // A loss during a snapshot discards the rest of that snapshot.
        let snap = snapshot(LID + 20, &[("4", "1"), ("3", "1")], &[("5", "1")]);
        b.apply_snapshot(&snap[0]);
        b.mark_stale();
        assert_eq!(b.apply_snapshot(&snap[1]), BookUpdate::None);
        assert_eq!(b.apply_snapshot(&snap[2]), BookUpdate::None);
        assert_eq!(b.state(), SyncState::Stale);
        let snap = snapshot(LID + 21, &[("4", "1")], &[("5", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
    }

    #[test]
    fn disconnect_keeps_the_next_message_so_a_snapshot_that_comes_first_syncs() {
        let mut b = synced_example();
        b.mark_disconnected();
        assert_eq!(b.state(), SyncState::Stale);
        assert_hidden(&b);
        // The new session's snapshot arrives before any diff; the first diff must bridge it.
        let snap = snapshot(LID + 10, &[("4", "1")], &[("4.1", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(
            send(&mut b, &diff(LID + 11, LID + 12, &[(Bid, "3.9", "1")])),
            BookUpdate::Changed
        );
        assert_eq!(
            send(&mut b, &diff(LID + 13, LID + 13, &[(Bid, "3.8", "1")])),
            BookUpdate::Changed
        );
        assert_eq!(bids(&b), vec![lv("4", "1"), lv("3.9", "1"), lv("3.8", "1")]);
        assert_eq!(b.stats().gaps, 0);
        // After mark_stale (a loss) the same order skips the bridging message and gaps.
        let mut b = synced_example();
        b.mark_stale();
        assert_eq!(load(&mut b, &snap), BookUpdate::Synced);
        assert_eq!(
            send(&mut b, &diff(LID + 11, LID + 12, &[(Bid, "3.9", "1")])),
            BookUpdate::None
        );
        assert!(matches!(
            send(&mut b, &diff(LID + 13, LID + 13, &[(Bid, "3.8", "1")])),
            BookUpdate::Gap { .. }
        ));
        // A skip pending from a loss before the disconnect is dropped with the old connection:
        // the tail it guarded against can only have come on that connection, and the new
        // connection's first message is whole.
        let mut b = synced_example();
        b.mark_stale();
        b.mark_disconnected();
        send(&mut b, &diff(LID + 11, LID + 12, &[(Bid, "3.9", "1")]));
        assert_eq!(
            b.buffer.len(),
            1,
            "the new connection's first message is kept"
        );
    }

    #[test]
    fn message_without_its_last_level_is_a_gap() {
        let mut b = synced_example();
        let cut = diff(LID + 1, LID + 2, &[(Bid, "3.9", "1"), (Bid, "3.8", "1")]);
        assert_eq!(b.apply_depth(&cut[0]), BookUpdate::None);
        let next = diff(LID + 3, LID + 3, &[(Ask, "4.1", "1")]);
        assert_eq!(
            send(&mut b, &next),
            BookUpdate::Gap {
                expected: LID + 3,
                got: LID + 3
            }
        );
        assert_hidden(&b);
        assert_eq!(b.stats().gaps, 1);

        // While buffering, the cut message is removed so it can never bridge.
        let mut b = OrderBook::new(BookConfig::default());
        send(&mut b, &diff(LID - 1, LID, &[(Bid, "3", "1")]));
        b.apply_depth(&diff(LID + 1, LID + 2, &[(Bid, "3.9", "1"), (Bid, "3.8", "1")])[0]);
        send(&mut b, &diff(LID + 3, LID + 3, &[(Ask, "4.1", "1")]));
        assert_eq!(b.buffer.len(), 2);
        let snap = snapshot(LID, &[("3.5", "1")], &[("4.2", "1")]);
        assert_eq!(load(&mut b, &snap), BookUpdate::SnapshotRejected);
    }

    /// The obvious book: two `BTreeMap`s, with the same keep-the-best-`cap` rule.
    #[derive(Clone, Debug)]
    struct Model {
        bids: BTreeMap<Price, Qty>,
        asks: BTreeMap<Price, Qty>,
        cap: usize,
        truncated: u64,
    }

    impl Model {
        fn new(cap: usize) -> Self {
            Model {
                bids: BTreeMap::new(),
                asks: BTreeMap::new(),
                cap,
                truncated: 0,
            }
        }

        fn set(&mut self, side: BookSide, price: Price, qty: Qty) {
            let m = match side {
                Bid => &mut self.bids,
                Ask => &mut self.asks,
            };
            if qty.0 <= 0 {
                m.remove(&price);
                return;
            }
            m.insert(price, qty);
            if m.len() > self.cap {
                self.truncated += 1;
                match side {
                    Bid => m.pop_first(),
                    Ask => m.pop_last(),
                };
            }
        }

        fn bids(&self) -> Vec<Level> {
            self.bids
                .iter()
                .rev()
                .map(|(&price, &qty)| Level { price, qty })
                .collect()
        }

        fn asks(&self) -> Vec<Level> {
            self.asks
                .iter()
                .map(|(&price, &qty)| Level { price, qty })
                .collect()
        }

        /// As a snapshot, best first on both sides like Binance's REST answer.
        fn snapshot(&self, id: u64) -> Vec<SnapshotLevel> {
            let b: Vec<(Price, Qty)> = self.bids().iter().map(|l| (l.price, l.qty)).collect();
            let a: Vec<(Price, Qty)> = self.asks().iter().map(|l| (l.price, l.qty)).collect();
            snapshot_raw(id, &b, &a)
        }
    }

    const TICK: i64 = 1_000_000; // 0.01

    /// A random message: bids at 90.00..=99.99, asks at 100.00..=109.99, so never crossed.
    fn random_levels(rng: &mut Rng, max_levels: u64) -> Vec<(BookSide, Price, Qty)> {
        let n = rng.below(max_levels + 1);
        (0..n)
            .map(|_| {
                let side = if rng.chance(50) { Bid } else { Ask };
                let off = rng.below(1000) as i64;
                let price = match side {
                    Bid => Price(9_999 * TICK - off * TICK),
                    Ask => Price(10_000 * TICK + off * TICK),
                };
                let qty = if rng.chance(35) {
                    Qty::ZERO
                } else {
                    Qty(1 + rng.below(1_000_000_000) as i64)
                };
                (side, price, qty)
            })
            .collect()
    }

    fn assert_matches(b: &OrderBook, m: &Model, step: usize) {
        assert!(b.is_synced(), "step {step}: {b:?}");
        assert_eq!(bids(b), m.bids(), "bids at step {step}");
        assert_eq!(asks(b), m.asks(), "asks at step {step}");
        assert_eq!(b.depth(), (m.bids.len(), m.asks.len()));
    }

    #[test]
    fn matches_a_btreemap_model_over_random_messages() {
        let cap = 48;
        let mut rng = Rng(0x5EED_0001);
        let mut b = OrderBook::new(BookConfig {
            max_levels_per_side: cap,
            max_buffered_levels: 256,
        });
        let ptrs = (b.bids.ptrs(), b.asks.ptrs(), b.buffer.as_ptr());
        let mut model = Model::new(cap);

        // A snapshot larger than a side, best first, distinct prices.
        let mut truth = Model::new(usize::MAX);
        for k in 0..60 {
            truth.set(Bid, Price(9_999 * TICK - 3 * k * TICK), Qty(1 + k));
            truth.set(Ask, Price(10_000 * TICK + 3 * k * TICK), Qty(1 + k));
        }
        for l in truth.bids() {
            model.set(Bid, l.price, l.qty);
        }
        for l in truth.asks() {
            model.set(Ask, l.price, l.qty);
        }
        let mut u = 5_000u64;
        assert_eq!(load(&mut b, &truth.snapshot(u)), BookUpdate::Synced);
        assert_matches(&b, &model, 0);
        assert_eq!(b.stats().levels_truncated, model.truncated);

        let mut prev: Vec<DepthLevel> = Vec::new();
        let mut applied = 0u64;
        let mut dropped = 0u64;
        for step in 1..=4000 {
            if !prev.is_empty() && rng.chance(4) {
                // A resent (stale) message changes nothing.
                assert_eq!(send(&mut b, &prev), BookUpdate::None);
                dropped += prev.len() as u64;
            } else {
                let first = u + 1;
                u = first + rng.below(4);
                let levels = random_levels(&mut rng, 10);
                let msg = diff_raw(first, u, &levels);
                assert_eq!(send(&mut b, &msg), BookUpdate::Changed, "step {step}");
                for &(side, price, qty) in &levels {
                    model.set(side, price, qty);
                }
                applied += 1;
                prev = msg;
            }
            assert_matches(&b, &model, step);
            assert_eq!(b.last_update_id(), u);
            assert_eq!(b.best_bid(), model.bids().first().copied());
            assert_eq!(b.best_ask(), model.asks().first().copied());
        }
        let s = b.stats();
        assert_eq!(s.messages_applied, applied);
        assert_eq!(s.stale_levels_dropped, dropped);
        assert_eq!(s.levels_truncated, model.truncated);
        assert!(
            model.truncated > 100,
            "truncation exercised: {}",
            model.truncated
        );
        assert_eq!((s.gaps, s.crossed, s.buffer_overflows), (0, 0, 0));
        assert_eq!(
            (b.bids.ptrs(), b.asks.ptrs(), b.buffer.as_ptr()),
            ptrs,
            "no reallocation"
        );
    }

    /// The whole book against the model at small caps, where most diffs land deep in a side
    /// that is full (truncation on nearly every insert) and blocks split and merge all the
    /// time; a fresh snapshot now and then reloads it.
    #[test]
    fn small_sides_match_the_model_through_deep_updates_and_reloads() {
        for (k, cap) in [7usize, 64, 200].into_iter().enumerate() {
            let mut rng = Rng(0x5EED_0100 + k as u64);
            let mut b = OrderBook::new(BookConfig {
                max_levels_per_side: cap,
                max_buffered_levels: 256,
            });
            let ptrs = (b.bids.ptrs(), b.asks.ptrs());
            let mut venue = Model::new(usize::MAX);
            let mut model = Model::new(cap);
            let mut u = 10u64;
            for step in 0..5000 {
                if step % 1000 == 0 {
                    // Reload: the book takes the best `cap` of the venue's levels.
                    u += 1;
                    let truncated_before = model.truncated;
                    model = Model::new(cap);
                    for l in venue.bids() {
                        model.set(Bid, l.price, l.qty);
                    }
                    for l in venue.asks() {
                        model.set(Ask, l.price, l.qty);
                    }
                    model.truncated += truncated_before;
                    let got = load(&mut b, &venue.snapshot(u));
                    assert_eq!(got, BookUpdate::Synced, "cap {cap} step {step}");
                } else {
                    let first = u + 1;
                    u = first + rng.below(3);
                    let levels = random_levels(&mut rng, 12);
                    let msg = diff_raw(first, u, &levels);
                    assert_eq!(send(&mut b, &msg), BookUpdate::Changed, "step {step}");
                    for &(side, price, qty) in &levels {
                        venue.set(side, price, qty);
                        model.set(side, price, qty);
                    }
                }
                b.bids.check();
                b.asks.check();
                assert_matches(&b, &model, step);
                assert_eq!(b.stats().levels_truncated, model.truncated, "cap {cap}");
            }
            assert!(model.truncated > 1000, "cap {cap}: {}", model.truncated);
            assert_eq!((b.bids.ptrs(), b.asks.ptrs()), ptrs, "no reallocation");
        }
    }

    #[test]
    fn random_losses_gaps_and_resyncs_track_the_venue_book() {
        let mut rng = Rng(0x5EED_0002);
        let mut b = OrderBook::new(BookConfig {
            max_levels_per_side: 4096,
            max_buffered_levels: 4096,
        });
        let ptrs = (b.bids.ptrs(), b.asks.ptrs(), b.buffer.as_ptr());
        // The venue's book; nothing is ever truncated here.
        let mut venue = Model::new(usize::MAX);
        let mut u = 700u64;
        assert_eq!(load(&mut b, &venue.snapshot(u)), BookUpdate::Synced);

        #[derive(PartialEq)]
        enum Phase {
            Synced,
            /// Stale, with `buffered` messages buffered, the first starting at `first_u`.
            Stale {
                buffered: u64,
                first_u: u64,
            },
        }
        let mut phase = Phase::Synced;
        let (mut losses, mut marks, mut good_snaps, mut rejected) = (0u64, 0u64, 1u64, 0u64);
        for step in 1..=6000 {
            let first = u + 1;
            u = first + rng.below(3);
            let levels = random_levels(&mut rng, 6);
            let msg = diff_raw(first, u, &levels);
            let before = venue.clone();
            for &(side, price, qty) in &levels {
                venue.set(side, price, qty);
            }
            match phase {
                Phase::Synced => {
                    if rng.chance(2) {
                        // Lost on the way: the next message is a gap.
                        losses += 1;
                        let next_first = u + 1;
                        let expected = first;
                        let first = next_first;
                        u = first + rng.below(3);
                        let levels = random_levels(&mut rng, 6);
                        for &(side, price, qty) in &levels {
                            venue.set(side, price, qty);
                        }
                        let got: Vec<BookUpdate> = diff_raw(first, u, &levels)
                            .iter()
                            .map(|l| b.apply_depth(l))
                            .collect();
                        // The gap shows at the first level; the message is then buffered.
                        assert_eq!(
                            got[0],
                            BookUpdate::Gap {
                                expected,
                                got: first
                            },
                            "step {step}"
                        );
                        assert!(got[1..].iter().all(|r| *r == BookUpdate::None));
                        assert_hidden(&b);
                        phase = Phase::Stale {
                            buffered: 1,
                            first_u: first,
                        };
                    } else if rng.chance(1) {
                        // The core learned of a loss; this message is dropped as a possible tail.
                        marks += 1;
                        b.mark_stale();
                        assert_eq!(send(&mut b, &msg), BookUpdate::None);
                        phase = Phase::Stale {
                            buffered: 0,
                            first_u: 0,
                        };
                    } else {
                        assert_eq!(send(&mut b, &msg), BookUpdate::Changed, "step {step}");
                        assert_matches(&b, &venue, step);
                    }
                }
                Phase::Stale {
                    ref mut buffered,
                    ref mut first_u,
                } => {
                    assert_eq!(send(&mut b, &msg), BookUpdate::None);
                    if *buffered == 0 {
                        *first_u = first;
                    }
                    *buffered += 1;
                    if *buffered > rng.below(6) {
                        if rng.chance(25) {
                            // Too old: rejected, the buffer is kept.
                            let id = first_u.saturating_sub(2 + rng.below(3));
                            assert_eq!(
                                load(&mut b, &before.snapshot(id)),
                                BookUpdate::SnapshotRejected
                            );
                            rejected += 1;
                        }
                        let got = if rng.chance(50) {
                            // Fresh: every buffered message is older.
                            load(&mut b, &venue.snapshot(u))
                        } else {
                            // Taken inside this message's span: it bridges.
                            let id = first - 1 + rng.below(u - first + 1);
                            load(&mut b, &before.snapshot(id))
                        };
                        assert_eq!(got, BookUpdate::Synced, "step {step}");
                        good_snaps += 1;
                        assert_matches(&b, &venue, step);
                        assert_eq!(b.last_update_id(), u);
                        phase = Phase::Synced;
                    }
                }
            }
        }
        let s = b.stats();
        assert!(losses > 50 && marks > 20, "losses {losses}, marks {marks}");
        assert_eq!(s.gaps, losses);
        assert_eq!(s.snapshots, good_snaps);
        assert_eq!(s.snapshots_rejected, rejected);
        assert_eq!(
            (s.crossed, s.buffer_overflows, s.levels_truncated),
            (0, 0, 0)
        );
        assert_eq!((b.bids.ptrs(), b.asks.ptrs(), b.buffer.as_ptr()), ptrs);
    }
}
