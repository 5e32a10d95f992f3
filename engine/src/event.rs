//! The event model: every market and order event is one `Copy` struct of at most 64 bytes.
//!
//! A [`MarketEvent`] is what crosses the SPSC ring from an I/O thread to the core. It carries the
//! receive time stamped by the I/O thread on the engine's one monotonic clock (`recv_ns`), the
//! interned symbol, and an [`EventKind`]. Exchange timestamps stay inside the kinds that have them,
//! in the venue's clock (milliseconds from Binance, kept as nanoseconds); the two clocks are never
//! mixed in one figure without saying so.
//!
//! A depth-diff message becomes one [`DepthLevel`] event per price level; the last level of a
//! message has [`LevelFlags::LAST`], and a message with no levels becomes a single event with
//! [`LevelFlags::EMPTY`] so sequence numbers are never lost. A REST depth snapshot becomes one
//! [`SnapshotLevel`] per level in the same way.

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
}

/// A client order id: a namespace and a number, rendered as `<prefix>-<n>` on the wire.
///
/// Kept as one `u64` (8 bits of namespace, 56 bits of number) so it fits order events in one
/// cache line. The `probe` namespace carries the trade id the order answers, so a venue can pair
/// the order with the trade frame (`probe-<trade id>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientOrderId(pub u64);

impl ClientOrderId {
    const NS_SHIFT: u32 = 56;
    const N_MASK: u64 = (1 << Self::NS_SHIFT) - 1;
    /// Namespace of engine-numbered orders, rendered `tl-<n>`.
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

    /// The namespace.
    pub const fn namespace(self) -> u8 {
        (self.0 >> Self::NS_SHIFT) as u8
    }

    /// The number within the namespace.
    pub const fn number(self) -> u64 {
        self.0 & Self::N_MASK
    }

    /// Parses the wire form (`tl-17`, `probe-3735683259`).
    pub fn parse(s: &str) -> Option<Self> {
        let (prefix, n) = s.split_once('-')?;
        let ns = match prefix {
            "tl" => Self::NS_ENGINE,
            "probe" => Self::NS_PROBE,
            _ => return None,
        };
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = n.parse().ok()?;
        (n <= Self::N_MASK).then(|| Self::new(ns, n))
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.namespace() {
            Self::NS_PROBE => "probe",
            _ => "tl",
        };
        write!(f, "{prefix}-{}", self.number())
    }
}

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
    Risk(crate::risk::DenyReason),
    /// The order session was not connected (never sent).
    Disconnected,
    /// Its intent could not be written to the journal (never sent).
    Journal,
    /// The venue did not confirm (or refused) the user data stream, so the order's outcome could
    /// not be learned after its reply: an order that may rest (GTC) is not sent (see
    /// `feeds::session`, "User data stream").
    NoUserStream,
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
}

/// The unit that crosses a ring: when it was received, for which symbol, and what it is.
///
/// Aligned to a cache line, so each event in a ring occupies exactly one line and the hand-over
/// to the core moves one line per event, never two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(align(64))]
pub struct MarketEvent {
    /// Receive time on the engine's monotonic clock, ns (stamped by the I/O thread per frame).
    pub recv_ns: u64,
    /// Interned symbol (meaningless for events that concern a whole connection).
    pub symbol: SymbolId,
    /// The payload.
    pub kind: EventKind,
}

const _: () = assert!(core::mem::size_of::<MarketEvent>() == 64);

impl MarketEvent {
    /// Builds an event.
    #[inline]
    pub const fn new(recv_ns: u64, symbol: SymbolId, kind: EventKind) -> Self {
        MarketEvent {
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
        assert!(core::mem::size_of::<MarketEvent>() <= 64);
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
}
