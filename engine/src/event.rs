//! The event model: every market and order event is one `Copy` struct of at most 64 bytes.
//!
//! An [`Event`] is what crosses the SPSC ring from an I/O thread to the core. It carries the
//! receive time stamped by the I/O thread on the engine's one monotonic clock (`recv_ns`), the
//! interned symbol, and an [`EventKind`]. Exchange timestamps stay inside the kinds that have them,
//! in the venue's clock (milliseconds from Binance, kept as nanoseconds); the two clocks are never
//! mixed in one figure without saying so.
//!
//! A depth-diff message becomes one [`DepthLevel`] event per price level; the last level of a
//! message has [`LevelFlags::LAST`], and a message with no levels becomes a single event with
//! [`LevelFlags::EMPTY`] so sequence numbers are never lost. A REST depth snapshot becomes one
//! [`SnapshotLevel`] per level in the same way. A venue that checksums its book (OKX) adds one
//! [`BookChecksum`] after the last level of a message that carries a checksum.

use crate::fixed::{Price, Qty};
use crate::symbol::SymbolId;
use core::fmt;

/// Buy or sell, for orders and for the aggressor of a trade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bid side / buy order.
    Buy,
    /// Ask side / sell order.
    Sell,
}

impl Side {
    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// +1 for buy, -1 for sell.
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }
}

/// Bid or ask side of a book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BookSide {
    /// Buyers' side.
    Bid,
    /// Sellers' side.
    Ask,
}

/// Flags on a depth or snapshot level event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LevelFlags(pub u8);

impl LevelFlags {
    /// The last level event of its message.
    pub const LAST: LevelFlags = LevelFlags(1);
    /// The message had no levels; price and quantity are zero and carry no meaning.
    pub const EMPTY: LevelFlags = LevelFlags(2);

    /// True if every bit of `other` is set.
    #[inline]
    pub const fn contains(self, other: LevelFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of bits.
    #[inline]
    pub const fn with(self, other: LevelFlags) -> LevelFlags {
        LevelFlags(self.0 | other.0)
    }
}

/// One trade (`<symbol>@trade`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    /// Event time `E`, venue clock, ns.
    pub exch_ns: u64,
    /// Trade id `t`.
    pub trade_id: u64,
    /// Price `p`.
    pub price: Price,
    /// Quantity `q`.
    pub qty: Qty,
    /// `m`: the buyer was the maker, so the aggressor sold.
    pub buyer_maker: bool,
}

impl Trade {
    /// The aggressor's side.
    pub fn aggressor(&self) -> Side {
        if self.buyer_maker {
            Side::Sell
        } else {
            Side::Buy
        }
    }
}

/// One aggregated trade (`<symbol>@aggTrade`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AggTrade {
    /// Event time `E`, venue clock, ns.
    pub exch_ns: u64,
    /// Aggregate trade id `a`.
    pub agg_id: u64,
    /// Price `p`.
    pub price: Price,
    /// Quantity `q`.
    pub qty: Qty,
    /// Trades aggregated, `l - f + 1`, saturated at `u32::MAX`.
    pub trade_count: u32,
    /// `m`: the buyer was the maker.
    pub buyer_maker: bool,
}

/// Best bid and ask (`<symbol>@bookTicker`). Binance spot sends no event time with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookTicker {
    /// Order book update id `u`.
    pub update_id: u64,
    /// Best bid price `b`.
    pub bid_px: Price,
    /// Best bid quantity `B`.
    pub bid_qty: Qty,
    /// Best ask price `a`.
    pub ask_px: Price,
    /// Best ask quantity `A`.
    pub ask_qty: Qty,
}

/// One price level of a depth-diff message (`<symbol>@depth`, `depthUpdate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthLevel {
    /// Event time `E`, venue clock, ns.
    pub exch_ns: u64,
    /// Final update id in the message, `u`.
    pub final_update_id: u64,
    /// Level price.
    pub price: Price,
    /// New absolute quantity at the price; zero removes the level.
    pub qty: Qty,
    /// `u - U`: the message covers update ids `final_update_id - update_span ..= final_update_id`.
    pub update_span: u32,
    /// Which side of the book.
    pub side: BookSide,
    /// [`LevelFlags::LAST`] on the message's last level; [`LevelFlags::EMPTY`] for a message without levels.
    pub flags: LevelFlags,
}

impl DepthLevel {
    /// First update id in the message, `U`.
    #[inline]
    pub fn first_update_id(&self) -> u64 {
        self.final_update_id.saturating_sub(self.update_span as u64)
    }
}

/// One price level of a REST depth snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotLevel {
    /// `lastUpdateId` of the snapshot.
    pub last_update_id: u64,
    /// Level price.
    pub price: Price,
    /// Quantity at the price.
    pub qty: Qty,
    /// Which side of the book.
    pub side: BookSide,
    /// [`LevelFlags::LAST`] on the snapshot's last level; [`LevelFlags::EMPTY`] for an empty snapshot.
    pub flags: LevelFlags,
}

/// The venue's checksum of its book after a depth message (OKX `books`: CRC32 over the top 25
/// levels, see [`crate::checksum`]). Follows the message's last [`DepthLevel`] or
/// [`SnapshotLevel`]; sent only when the message carries a non-zero checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookChecksum {
    /// The update id of the message it belongs to (its `final_update_id` or `last_update_id`):
    /// the core checks only a synced book whose last update id is this one.
    pub update_id: u64,
    /// The checksum as the venue sent it (OKX's signed 32-bit value, bit for bit).
    pub checksum: u32,
}

/// Why data was lost; the core marks the affected books stale and asks for a resync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// The ring to the core was full; `lost` events were dropped.
    RingFull,
    /// A venue sequence number jumped.
    Sequence,
    /// The connection dropped; anything in between is unknown.
    Disconnect,
}

/// Data was lost between the venue and the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// Events (or, for sequence gaps, update ids) known to be lost; 0 if unknown.
    pub lost: u64,
    /// What happened.
    pub reason: GapReason,
}

/// A connection of an I/O thread changed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The I/O thread's connection id.
    pub conn_id: u32,
    /// The venue whose market the connection carries: only that venue's books are hidden and
    /// resynced. `None`: every venue (a replay's session boundary).
    pub venue: Option<crate::venue::Venue>,
}

/// A client order id: a namespace and a number, rendered on the wire as Binance's
/// `newClientOrderId` (at most 36 characters of `A-Z a-z 0-9 . : / _ -`).
///
/// Kept as one `Copy` `u64` (8 bits of namespace, 56 bits of number) so it fits order events in
/// one cache line. The `probe` namespace carries the trade id the order answers, so a venue can
/// pair the order with the trade frame (`probe-<trade id>`).
///
/// # Engine ids: an epoch and a sequence
///
/// In the engine namespace the 56-bit number is split into a **start epoch** (the top
/// [`EPOCH_BITS`](Self::EPOCH_BITS) = 30 bits: seconds since 2024-01-01T00:00:00Z,
/// [`EPOCH_BASE_UNIX_S`](Self::EPOCH_BASE_UNIX_S), enough until 2058) and a **sequence** (the
/// low [`SEQ_BITS`](Self::SEQ_BITS) = 26 bits, 67,108,863 orders). Each start of the engine
/// picks an epoch strictly greater than any the journal recorded and at least its own
/// wall-clock second, and numbers its orders `(epoch, 1)`, `(epoch, 2)`, ... A sequence that
/// runs out rolls into the next epoch by plain `+1` (the number is one integer), which is
/// always an epoch of the past (2^26 orders take far longer than a second), so a later start
/// cannot meet it. Two starts therefore share no id even when the journal's tail was lost or
/// the journal was moved aside, unless the wall clock went back; the venue check at every
/// connect (`feeds::orders::idcheck`) covers that case.
///
/// Rendered `tl-<epoch>-<seq>` (`tl-91234567-17`, at most 22 characters). Ids with epoch 0
/// (numbered by builds before epochs, and tests) keep the old form `tl-<n>`;
/// [`parse`](Self::parse) reads both, so old journals and old orders at the venue still map
/// back. Ordering of the `u64` is (namespace, epoch, sequence): later starts number higher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientOrderId(pub u64);

impl ClientOrderId {
    const NS_SHIFT: u32 = 56;
    const N_MASK: u64 = (1 << Self::NS_SHIFT) - 1;
    /// Largest number within a namespace (56 bits).
    pub const NUMBER_MAX: u64 = Self::N_MASK;
    /// Bits of the engine number that hold the start epoch.
    pub const EPOCH_BITS: u32 = 30;
    /// Bits of the engine number that hold the sequence within the epoch.
    pub const SEQ_BITS: u32 = 26;
    /// Largest sequence number of an epoch.
    pub const SEQ_MAX: u64 = (1 << Self::SEQ_BITS) - 1;
    /// Largest epoch.
    pub const EPOCH_MAX: u64 = (1 << Self::EPOCH_BITS) - 1;
    /// Epoch 0: 2024-01-01T00:00:00Z, in seconds since the Unix epoch.
    pub const EPOCH_BASE_UNIX_S: u64 = 1_704_067_200;
    /// Namespace of engine-numbered orders, rendered `tl-<epoch>-<seq>` (or `tl-<n>`).
    pub const NS_ENGINE: u8 = 0;
    /// Namespace of probe orders, rendered `probe-<trade id>`.
    pub const NS_PROBE: u8 = 1;

    /// An id in `ns` with number `n` (truncated to 56 bits).
    pub const fn new(ns: u8, n: u64) -> Self {
        ClientOrderId(((ns as u64) << Self::NS_SHIFT) | (n & Self::N_MASK))
    }

    /// A probe id answering trade `trade_id`.
    pub const fn probe(trade_id: u64) -> Self {
        Self::new(Self::NS_PROBE, trade_id)
    }

    /// The engine number of sequence `seq` in start epoch `epoch` (both truncated to their
    /// bits).
    pub const fn engine_number(epoch: u64, seq: u64) -> u64 {
        ((epoch & Self::EPOCH_MAX) << Self::SEQ_BITS) | (seq & Self::SEQ_MAX)
    }

    /// The start epoch of wall-clock time `unix_s` (seconds since the Unix epoch): seconds since
    /// [`EPOCH_BASE_UNIX_S`](Self::EPOCH_BASE_UNIX_S), 0 before it, at most
    /// [`EPOCH_MAX`](Self::EPOCH_MAX).
    pub const fn epoch_of_unix(unix_s: u64) -> u64 {
        let e = unix_s.saturating_sub(Self::EPOCH_BASE_UNIX_S);
        if e > Self::EPOCH_MAX {
            Self::EPOCH_MAX
        } else {
            e
        }
    }

    /// The namespace.
    pub const fn namespace(self) -> u8 {
        (self.0 >> Self::NS_SHIFT) as u8
    }

    /// The number within the namespace.
    pub const fn number(self) -> u64 {
        self.0 & Self::N_MASK
    }

    /// The start epoch of an engine id (0 for ids of builds before epochs).
    pub const fn epoch(self) -> u64 {
        self.number() >> Self::SEQ_BITS
    }

    /// The sequence of an engine id within its epoch.
    pub const fn seq(self) -> u64 {
        self.number() & Self::SEQ_MAX
    }

    /// Parses the wire form (`tl-91234567-17`, `tl-17`, `probe-3735683259`).
    pub fn parse(s: &str) -> Option<Self> {
        let (prefix, n) = s.split_once('-')?;
        let digits = |t: &str| -> Option<u64> {
            if t.is_empty() || t.len() > 20 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        match prefix {
            "tl" => {
                let n = match n.split_once('-') {
                    Some((epoch, seq)) => {
                        let (epoch, seq) = (digits(epoch)?, digits(seq)?);
                        // Canonical only: epoch 0 is written `tl-<n>`.
                        if epoch == 0 || epoch > Self::EPOCH_MAX || seq > Self::SEQ_MAX {
                            return None;
                        }
                        Self::engine_number(epoch, seq)
                    }
                    None => digits(n)?,
                };
                (n <= Self::N_MASK).then(|| Self::new(Self::NS_ENGINE, n))
            }
            "probe" => {
                let n = digits(n)?;
                (n <= Self::N_MASK).then(|| Self::new(Self::NS_PROBE, n))
            }
            _ => None,
        }
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.namespace() {
            Self::NS_PROBE => write!(f, "probe-{}", self.number()),
            _ if self.epoch() == 0 => write!(f, "tl-{}", self.number()),
            _ => write!(f, "tl-{}-{}", self.epoch(), self.seq()),
        }
    }
}

/// Why pre-trade risk refused an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// Trading is halted.
    Halted,
    /// Trading is reduce-only and the order would not reduce the position (or could flip it).
    ReducingOnly,
    /// Quantity above `max_order_qty` (or not positive).
    MaxOrderQty,
    /// Notional above `max_order_notional`.
    MaxNotional,
    /// Worst-case position beyond `max_position`.
    MaxPosition,
    /// `max_open_orders` already open on the symbol.
    MaxOpenOrders,
    /// The symbol's token bucket is empty.
    RateLimited,
    /// Limit price outside the band around the last trade (or not positive).
    PriceBand,
    /// No last trade price to value or band the order with.
    NoReferencePrice,
    /// The kill switch is on.
    KillSwitch,
}

impl DenyReason {
    /// Number of reasons.
    pub const COUNT: usize = 10;

    /// Every reason, in [`DenyReason::index`] order.
    pub const ALL: [DenyReason; DenyReason::COUNT] = [
        DenyReason::Halted,
        DenyReason::ReducingOnly,
        DenyReason::MaxOrderQty,
        DenyReason::MaxNotional,
        DenyReason::MaxPosition,
        DenyReason::MaxOpenOrders,
        DenyReason::RateLimited,
        DenyReason::PriceBand,
        DenyReason::NoReferencePrice,
        DenyReason::KillSwitch,
    ];

    /// Dense index, `0..COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Stable machine-readable code (snake case), for logs and metric names. Never changes.
    pub const fn code(self) -> &'static str {
        match self {
            DenyReason::Halted => "halted",
            DenyReason::ReducingOnly => "reducing_only",
            DenyReason::MaxOrderQty => "max_order_qty",
            DenyReason::MaxNotional => "max_notional",
            DenyReason::MaxPosition => "max_position",
            DenyReason::MaxOpenOrders => "max_open_orders",
            DenyReason::RateLimited => "rate_limited",
            DenyReason::PriceBand => "price_band",
            DenyReason::NoReferencePrice => "no_reference_price",
            DenyReason::KillSwitch => "kill_switch",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            DenyReason::Halted => "trading halted",
            DenyReason::ReducingOnly => "reduce-only: order does not reduce the position",
            DenyReason::MaxOrderQty => "order quantity over the limit or not positive",
            DenyReason::MaxNotional => "order notional over the limit",
            DenyReason::MaxPosition => "worst-case position over the limit",
            DenyReason::MaxOpenOrders => "too many open orders",
            DenyReason::RateLimited => "order rate limit",
            DenyReason::PriceBand => "limit price outside the band around the last trade",
            DenyReason::NoReferencePrice => "no last trade price",
            DenyReason::KillSwitch => "kill switch on",
        };
        write!(f, "{text} ({})", self.code())
    }
}

impl std::error::Error for DenyReason {}

/// Why an order was rejected (by the venue, the paper exchange or pre-trade risk).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// Nothing on the other side to trade against (market order into an empty book).
    NoLiquidity,
    /// Quantity or price not positive.
    InvalidOrder,
    /// The engine's fixed-capacity order table is full.
    TooManyOrders,
    /// The venue refused it.
    Venue,
    /// The ring to the I/O thread that owns the order session was full: never sent.
    QueueFull,
    /// Pre-trade risk refused it (never sent).
    Risk(DenyReason),
    /// The order session was not connected (never sent).
    Disconnected,
    /// Its intent could not be written to the journal (never sent).
    Journal,
    /// The venue did not confirm (or refused) the user data stream, so the order's outcome could
    /// not be learned after its reply: an order that may rest (GTC) is not sent (see
    /// `feeds::orders::session`, "User data stream").
    NoUserStream,
    /// The order session was still checking the venue's client ids on a new connection, or the
    /// order's id was numbered before the check moved numbering past ids the venue knows
    /// (never sent).
    IdCheck,
}

/// The venue accepted an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderAck {
    /// Our id.
    pub client_id: ClientOrderId,
    /// The venue's id.
    pub venue_order_id: u64,
}

/// The venue refused an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderReject {
    /// Our id.
    pub client_id: ClientOrderId,
    /// Why.
    pub reason: RejectReason,
}

/// (Part of) an order was filled, as the venue reports it. The core joins it with its order table
/// (side, remaining quantity) before a strategy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    /// Our id.
    pub client_id: ClientOrderId,
    /// The venue's trade id (fills are de-duplicated by it).
    pub trade_id: u64,
    /// Fill price.
    pub price: Price,
    /// Filled quantity.
    pub qty: Qty,
    /// Fee in quote units (1e-8); maker rebates are negative.
    pub fee: i64,
}

/// An order left the book without (further) fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderCanceled {
    /// Our id.
    pub client_id: ClientOrderId,
    /// Quantity that was still open.
    pub leaves_qty: Qty,
}

/// Engine-namespace order numbers below `next` are taken at the venue: the core raises its
/// numbering to at least `next` (it never lowers it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderIdFloor {
    /// The lowest engine number the core may use from now on.
    pub next: u64,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A trade.
    Trade(Trade),
    /// An aggregated trade.
    AggTrade(AggTrade),
    /// Best bid/ask.
    BookTicker(BookTicker),
    /// One level of a depth diff.
    Depth(DepthLevel),
    /// One level of a REST depth snapshot.
    Snapshot(SnapshotLevel),
    /// The venue's checksum of the book after the message just received.
    BookChecksum(BookChecksum),
    /// Data was lost; resync.
    Gap(Gap),
    /// A connection came up (or back).
    ConnectionUp(Connection),
    /// A connection went down.
    ConnectionDown(Connection),
    /// Order accepted.
    OrderAck(OrderAck),
    /// Order refused.
    OrderReject(OrderReject),
    /// Order (partly) filled.
    Fill(Fill),
    /// Order canceled or expired.
    OrderCanceled(OrderCanceled),
    /// The order session found engine ids at the venue at or beyond the core's numbering (a
    /// lost journal tail, a journal moved aside, a clock set back): number from `next` on.
    OrderIdFloor(OrderIdFloor),
}

/// The unit that crosses a ring: when it was received, for which symbol, and what it is:
/// market data (trades, tickers, depth, snapshots, gaps, connection changes) and order events
/// (acks, rejects, fills, cancels) alike.
///
/// Aligned to a cache line, so each event in a ring occupies exactly one line and the hand-over
/// to the core moves one line per event, never two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub struct Event {
    /// Receive time on the engine's monotonic clock, ns (stamped by the I/O thread per frame).
    pub recv_ns: u64,
    /// Interned symbol (meaningless for events that concern a whole connection).
    pub symbol: SymbolId,
    /// The payload.
    pub kind: EventKind,
}

const _: () = assert!(core::mem::size_of::<Event>() == 64);

impl Event {
    /// Builds an event.
    #[inline]
    pub const fn new(recv_ns: u64, symbol: SymbolId, kind: EventKind) -> Self {
        Event {
            recv_ns,
            symbol,
            kind,
        }
    }

    /// Adds `flags` to a depth or snapshot level event (no effect on other kinds).
    #[inline]
    pub fn add_level_flags(&mut self, flags: LevelFlags) {
        match &mut self.kind {
            EventKind::Depth(d) => d.flags = d.flags.with(flags),
            EventKind::Snapshot(s) => s.flags = s.flags.with(flags),
            _ => {}
        }
    }

    /// Exchange event time in ns (venue clock), or 0 where the venue sends none.
    #[inline]
    pub fn exch_ns(&self) -> u64 {
        match &self.kind {
            EventKind::Trade(t) => t.exch_ns,
            EventKind::AggTrade(t) => t.exch_ns,
            EventKind::Depth(d) => d.exch_ns,
            _ => 0,
        }
    }
}

/// Order type and time in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderType {
    /// Limit, good till canceled.
    LimitGtc,
    /// Limit, immediate or cancel.
    LimitIoc,
    /// Limit, fill or kill.
    LimitFok,
    /// Market.
    Market,
}

/// A new order as a strategy asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRequest {
    /// Buy or sell.
    pub side: Side,
    /// Limit price (ignored for market orders).
    pub price: Price,
    /// Quantity.
    pub qty: Qty,
    /// Type and time in force.
    pub order_type: OrderType,
}

/// What the core sends towards a venue (or the paper exchange).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// Place an order.
    New {
        /// Our id.
        client_id: ClientOrderId,
        /// Instrument.
        symbol: SymbolId,
        /// The order.
        req: OrderRequest,
        /// Receive stamp (engine clock, ns) of the event that caused the order: the I/O thread
        /// measures tick-to-wire from it when the order frame is written.
        cause_ns: u64,
    },
    /// Cancel an order.
    Cancel {
        /// Our id.
        client_id: ClientOrderId,
        /// Instrument.
        symbol: SymbolId,
    },
    /// A supervised trader's state changed: journal it (the thread that owns the journal does),
    /// so a restarted engine resumes with the same traders.
    TraderState {
        /// Instrument.
        symbol: SymbolId,
        /// The trader's slot under its leader.
        trader: u16,
        /// The state, encoded by the strategy.
        state: TraderBlob,
    },
}

/// A trader's encoded state: at most [`TraderBlob::CAPACITY`] bytes, inline (no heap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraderBlob {
    len: u8,
    bytes: [u8; TraderBlob::CAPACITY],
}

impl TraderBlob {
    /// Most bytes a state may take.
    pub const CAPACITY: usize = 44;

    /// `bytes` as a blob; `None` if longer than [`CAPACITY`](Self::CAPACITY).
    pub fn new(bytes: &[u8]) -> Option<TraderBlob> {
        let mut b = [0u8; Self::CAPACITY];
        b.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(TraderBlob {
            len: bytes.len() as u8,
            bytes: b,
        })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

const _: () = assert!(core::mem::size_of::<OrderCommand>() <= 64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_fit_a_cache_line() {
        assert!(core::mem::size_of::<Event>() <= 64);
        assert!(core::mem::size_of::<OrderCommand>() <= 64);
    }

    #[test]
    fn client_order_ids_round_trip() {
        let p = ClientOrderId::probe(3_735_683_259);
        assert_eq!(p.to_string(), "probe-3735683259");
        assert_eq!(ClientOrderId::parse("probe-3735683259"), Some(p));
        let e = ClientOrderId::new(ClientOrderId::NS_ENGINE, 17);
        assert_eq!(e.to_string(), "tl-17");
        assert_eq!(ClientOrderId::parse("tl-17"), Some(e));
        assert_eq!(ClientOrderId::parse("x-1"), None);
        assert_eq!(ClientOrderId::parse("tl-"), None);
        assert_eq!(ClientOrderId::parse("tl-+1"), None);
        assert_eq!(ClientOrderId::parse("tl-99999999999999999999"), None);
    }

    #[test]
    fn engine_ids_carry_an_epoch_and_fit_binance_client_ids() {
        let now = 1_767_225_600; // 2026-01-01T00:00:00Z
        let epoch = ClientOrderId::epoch_of_unix(now);
        assert_eq!(epoch, now - ClientOrderId::EPOCH_BASE_UNIX_S);
        let id = ClientOrderId::new(
            ClientOrderId::NS_ENGINE,
            ClientOrderId::engine_number(epoch, 17),
        );
        assert_eq!((id.epoch(), id.seq()), (epoch, 17));
        assert_eq!(id.to_string(), format!("tl-{epoch}-17"));
        assert_eq!(ClientOrderId::parse(&id.to_string()), Some(id));
        // The longest engine id is within Binance's 36 characters and its character set.
        let max = ClientOrderId::new(
            ClientOrderId::NS_ENGINE,
            ClientOrderId::engine_number(ClientOrderId::EPOCH_MAX, ClientOrderId::SEQ_MAX),
        );
        let s = max.to_string();
        assert!(s.len() <= 36, "{s}");
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:/_-".contains(&b)));
        assert_eq!(ClientOrderId::parse(&s), Some(max));
        // A sequence that runs out rolls into the next epoch.
        let last = ClientOrderId::engine_number(epoch, ClientOrderId::SEQ_MAX);
        assert_eq!(
            ClientOrderId::new(ClientOrderId::NS_ENGINE, last + 1).epoch(),
            epoch + 1
        );
        // Later starts number higher; non-canonical forms are refused.
        assert!(ClientOrderId::parse("tl-2-1") > ClientOrderId::parse("tl-1-67108863"));
        assert_eq!(ClientOrderId::parse("tl-0-5"), None);
        assert_eq!(ClientOrderId::parse("tl-1-67108864"), None);
        assert_eq!(ClientOrderId::parse("tl-1073741824-1"), None);
        assert_eq!(ClientOrderId::parse("tl-1-"), None);
        assert_eq!(ClientOrderId::parse("tl-1-2-3"), None);
        assert_eq!(ClientOrderId::parse("probe-1-2"), None);
        assert_eq!(ClientOrderId::epoch_of_unix(0), 0);
        assert_eq!(
            ClientOrderId::epoch_of_unix(u64::MAX),
            ClientOrderId::EPOCH_MAX
        );
    }
}
