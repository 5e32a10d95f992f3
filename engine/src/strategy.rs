//! The strategy interface: callbacks in, orders and timers out through a [`Ctx`].
//!
//! One strategy instance runs per symbol. The core calls it on the core thread only; it must not
//! block, and it never allocates per event: orders and timers go into fixed-capacity buffers
//! owned by the core, and a full buffer is an error the strategy sees, never a reallocation.

use crate::book::OrderBook;
use crate::event::{
    AggTrade, BookTicker, ClientOrderId, OrderRequest, OrderType, RejectReason, Side, Trade,
};
use crate::fixed::{Price, Qty};
use crate::portfolio::Position;
use crate::symbol::SymbolId;
use crate::venue::Venue;
use core::fmt;

/// What a strategy is told about one of its orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderUpdate {
    /// The order.
    pub client_id: ClientOrderId,
    /// Its side.
    pub side: Side,
    /// Its limit price (zero for market orders).
    pub price: Price,
    /// What happened.
    pub kind: OrderUpdateKind,
    /// Quantity still open after this update.
    pub leaves_qty: Qty,
    /// Quantity filled so far, this update included.
    pub filled_qty: Qty,
}

impl OrderUpdate {
    /// True once the order can change no more (filled, canceled or rejected).
    pub fn is_final(&self) -> bool {
        matches!(
            self.kind,
            OrderUpdateKind::Rejected(_) | OrderUpdateKind::Canceled
        ) || (matches!(self.kind, OrderUpdateKind::Filled { .. }) && self.leaves_qty == Qty::ZERO)
    }
}

/// The kinds of order updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderUpdateKind {
    /// Accepted by the venue (or the paper exchange).
    Accepted,
    /// Refused; the order is gone.
    Rejected(RejectReason),
    /// (Partly) filled at `price` for `qty`, paying `fee` quote units (1e-8).
    Filled {
        /// Fill price.
        price: Price,
        /// Fill quantity.
        qty: Qty,
        /// Fee, quote units of 1e-8.
        fee: i64,
    },
    /// Canceled (or expired, for IOC); the rest is gone.
    Canceled,
    /// No answer within the acknowledgement timeout. Not a rejection: the order's outcome is
    /// unknown, it stays in flight (and counts against limits) until the venue answers or a
    /// query resolves it.
    TimedOut,
}

/// Why a [`Ctx`] call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtxError {
    /// The core's per-dispatch order buffer is full.
    OrderBufferFull,
    /// The core's timer queue is full.
    TimerQueueFull,
    /// Quantity not positive, or a limit price not positive.
    InvalidOrder,
    /// Every engine client order number is used (past [`ClientOrderId::NUMBER_MAX`]): a new id
    /// would wrap onto an old one, so nothing is sent.
    IdsExhausted,
}

impl fmt::Display for CtxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CtxError::OrderBufferFull => "order buffer full",
            CtxError::TimerQueueFull => "timer queue full",
            CtxError::InvalidOrder => "invalid order (quantity and limit price must be positive)",
            CtxError::IdsExhausted => "engine client order ids exhausted",
        })
    }
}

impl std::error::Error for CtxError {}

/// An order or cancel a strategy asked for, waiting for the core to route it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// New order.
    New(ClientOrderId, OrderRequest),
    /// Cancel.
    Cancel(ClientOrderId),
    /// Cancel every open order of the symbol (a supervisor halting it).
    CancelAll,
    /// Journal a trader's new state.
    TraderState(u16, crate::event::TraderBlob),
}

/// Fixed-capacity buffer of intents produced during one dispatch.
#[derive(Debug)]
pub struct Outbox {
    items: Vec<Intent>,
    cap: usize,
    /// Traders restarted after a panic (cumulative; the core copies it into its counters).
    pub(crate) trader_restarts: u64,
    /// Symbols halted by their supervisor (cumulative).
    pub(crate) symbol_halts: u64,
    /// Trader states are journaled (a live run with orders): supervisors hand them over.
    pub(crate) journal_states: bool,
}

impl Outbox {
    /// Maps every page of the buffer (see [`crate::prefault`]).
    #[cold]
    pub fn prefault(&mut self) {
        crate::prefault::vec_spare(&mut self.items);
    }

    /// A buffer for at most `cap` intents per dispatch (allocated now, never grown).
    pub fn with_capacity(cap: usize) -> Self {
        Outbox {
            items: Vec::with_capacity(cap),
            cap,
            trader_restarts: 0,
            symbol_halts: 0,
            journal_states: false,
        }
    }

    fn push(&mut self, i: Intent) -> Result<(), CtxError> {
        if self.items.len() >= self.cap {
            return Err(CtxError::OrderBufferFull);
        }
        self.items.push(i);
        Ok(())
    }

    /// The `i`-th buffered intent.
    pub fn get(&self, i: usize) -> Option<Intent> {
        self.items.get(i).copied()
    }

    /// The buffered intents, in order.
    pub fn as_slice(&self) -> &[Intent] {
        &self.items
    }

    /// Forgets every buffered intent (keeps the memory).
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Forgets the intents buffered after the first `len` (a callback that panicked).
    pub fn truncate(&mut self, len: usize) {
        self.items.truncate(len);
    }

    /// Number buffered.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True if nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A timer a strategy asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerEntry {
    /// Due time on the core's clock (the `now` given to `Core::poll`), ns.
    pub at_ns: u64,
    /// Which symbol's strategy set it.
    pub symbol: SymbolId,
    /// The strategy's own token, handed back in `on_timer`.
    pub token: u64,
}

/// Fixed-capacity min-queue of timers (a binary heap sized at start-up).
#[derive(Debug)]
pub struct TimerQueue {
    heap: std::collections::BinaryHeap<core::cmp::Reverse<TimerEntry>>,
    cap: usize,
}

impl TimerQueue {
    /// Maps every page of the queue (see [`crate::prefault`]).
    #[cold]
    pub fn prefault(&mut self) {
        crate::prefault::heap_spare(&mut self.heap);
    }

    /// A queue for at most `cap` pending timers.
    pub fn with_capacity(cap: usize) -> Self {
        TimerQueue {
            heap: std::collections::BinaryHeap::with_capacity(cap),
            cap,
        }
    }

    /// Adds a timer; fails rather than grow.
    pub fn push(&mut self, t: TimerEntry) -> Result<(), CtxError> {
        if self.heap.len() >= self.cap {
            return Err(CtxError::TimerQueueFull);
        }
        self.heap.push(core::cmp::Reverse(t));
        Ok(())
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<TimerEntry> {
        if self.heap.peek()?.0.at_ns <= now {
            self.heap.pop().map(|r| r.0)
        } else {
            None
        }
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True if none are pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Static facts about a symbol a strategy trades (the venue's filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolRules {
    /// Price increment.
    pub tick_size: Price,
    /// Quantity increment.
    pub lot_size: Qty,
    /// Smallest order notional, quote units of 1e-8.
    pub min_notional: i64,
}

impl Default for SymbolRules {
    /// Binance BTCUSDT's filters: tick 0.01, lot 0.00001, min notional 5.
    fn default() -> Self {
        SymbolRules {
            tick_size: Price(1_000_000),
            lot_size: Qty(1_000),
            min_notional: 5 * crate::fixed::SCALE,
        }
    }
}

/// One instrument's market as the core keeps it: what [`Ctx::market`] shows.
#[derive(Clone, Copy, Debug)]
pub struct Market<'a> {
    /// The instrument.
    pub symbol: SymbolId,
    /// Its venue.
    pub venue: Venue,
    /// Its name on the venue (upper case).
    pub name: &'a str,
    /// Its L2 book (check [`OrderBook::is_synced`]).
    pub book: &'a OrderBook,
    /// Its latest best bid/ask from the bookTicker stream, if any arrived.
    pub bbo: Option<&'a BookTicker>,
    /// Its latest trade, if any arrived.
    pub last_trade: Option<&'a Trade>,
}

/// Every instrument's market during a callback (the core implements it; a strategy calls
/// [`Ctx::market`] and [`Ctx::find_symbol`]).
pub trait Markets: fmt::Debug {
    /// The market of `id`, if it is one of the engine's symbols.
    fn market(&self, id: SymbolId) -> Option<Market<'_>>;
    /// The id of `name` on `venue` (ASCII case ignored). No allocation.
    fn find(&self, venue: Venue, name: &str) -> Option<SymbolId>;
}

/// What a strategy sees and can do during one callback.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub(crate) now_ns: u64,
    pub(crate) market_ns: u64,
    pub(crate) symbol: SymbolId,
    pub(crate) rules: &'a SymbolRules,
    pub(crate) book: &'a OrderBook,
    pub(crate) bbo: Option<&'a BookTicker>,
    pub(crate) last_trade: Option<&'a Trade>,
    pub(crate) position: &'a Position,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) timers: &'a mut TimerQueue,
    pub(crate) next_order_no: &'a mut u64,
    pub(crate) event_symbol: SymbolId,
    pub(crate) markets: Option<&'a dyn Markets>,
}

impl<'a> Ctx<'a> {
    /// Builds a context (the core does this; public for strategy unit tests).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        now_ns: u64,
        market_ns: u64,
        symbol: SymbolId,
        rules: &'a SymbolRules,
        book: &'a OrderBook,
        bbo: Option<&'a BookTicker>,
        last_trade: Option<&'a Trade>,
        position: &'a Position,
        outbox: &'a mut Outbox,
        timers: &'a mut TimerQueue,
        next_order_no: &'a mut u64,
    ) -> Self {
        Ctx {
            now_ns,
            market_ns,
            symbol,
            rules,
            book,
            bbo,
            last_trade,
            position,
            outbox,
            timers,
            next_order_no,
            event_symbol: symbol,
            markets: None,
        }
    }

    /// Gives the context every instrument's market (the core does this; strategy unit tests
    /// that exercise [`market`](Self::market) call it with their own [`Markets`]).
    pub fn with_markets(mut self, markets: &'a dyn Markets) -> Self {
        self.markets = Some(markets);
        self
    }

    /// Any instrument's market, on any venue: a cross-venue strategy reads each leg's book here
    /// whichever event it is handling. `None` for an id that is not the engine's (or a context
    /// built without markets, in a unit test).
    pub fn market(&self, id: SymbolId) -> Option<Market<'a>> {
        self.markets.and_then(|m| m.market(id))
    }

    /// The id of `name` on `venue`, to find a strategy's other legs once (no allocation; a
    /// linear scan over the engine's symbols, so call it once and keep the id).
    pub fn find_symbol(&self, venue: Venue, name: &str) -> Option<SymbolId> {
        self.markets.and_then(|m| m.find(venue, name))
    }

    /// The venue of the symbol whose event this callback is about.
    pub fn event_venue(&self) -> Option<Venue> {
        self.market(self.event_symbol).map(|m| m.venue)
    }

    /// The symbol whose event this callback is about: this strategy's own symbol, or another one
    /// it subscribed to ([`Strategy::channels`]); then the market view (book, best bid/ask, last
    /// trade) is that symbol's, while orders, rules and position stay its own.
    pub fn event_symbol(&self) -> SymbolId {
        self.event_symbol
    }

    /// The core's clock (the `now` of the current `Core::poll`), ns.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// Latest exchange time seen (venue clock), ns.
    pub fn market_ns(&self) -> u64 {
        self.market_ns
    }

    /// The symbol this strategy instance trades.
    pub fn symbol(&self) -> SymbolId {
        self.symbol
    }

    /// The symbol's price and quantity increments.
    pub fn rules(&self) -> &'a SymbolRules {
        self.rules
    }

    /// The L2 book (check [`OrderBook::is_synced`]; its best levels are `None` while it is not).
    pub fn book(&self) -> &'a OrderBook {
        self.book
    }

    /// The latest best bid/ask from the bookTicker stream, if any arrived.
    pub fn bbo(&self) -> Option<&'a BookTicker> {
        self.bbo
    }

    /// The latest trade, if any arrived.
    pub fn last_trade(&self) -> Option<&'a Trade> {
        self.last_trade
    }

    /// This symbol's position and PnL.
    pub fn position(&self) -> &'a Position {
        self.position
    }

    /// Sends a new order with an engine-numbered client id (`tl-<epoch>-<seq>`, see
    /// [`ClientOrderId`]).
    pub fn submit(&mut self, req: OrderRequest) -> Result<ClientOrderId, CtxError> {
        if *self.next_order_no > ClientOrderId::NUMBER_MAX {
            return Err(CtxError::IdsExhausted);
        }
        let id = ClientOrderId::new(ClientOrderId::NS_ENGINE, *self.next_order_no);
        self.submit_with_id(id, req)?;
        *self.next_order_no += 1;
        Ok(id)
    }

    /// Sends a new order with a client id the strategy chose (for example [`ClientOrderId::probe`]).
    pub fn submit_with_id(
        &mut self,
        id: ClientOrderId,
        req: OrderRequest,
    ) -> Result<ClientOrderId, CtxError> {
        let bad_price = req.order_type != OrderType::Market && req.price.0 <= 0;
        if req.qty.0 <= 0 || bad_price {
            return Err(CtxError::InvalidOrder);
        }
        self.outbox.push(Intent::New(id, req))?;
        Ok(id)
    }

    /// Asks to cancel an open order.
    pub fn cancel(&mut self, id: ClientOrderId) -> Result<(), CtxError> {
        self.outbox.push(Intent::Cancel(id))
    }

    /// Asks to cancel every open order of this symbol (whoever placed it).
    pub fn cancel_all(&mut self) -> Result<(), CtxError> {
        self.outbox.push(Intent::CancelAll)
    }

    /// Intents buffered so far in this callback (a supervisor marks where a trader's begin).
    pub fn intents_len(&self) -> usize {
        self.outbox.len()
    }

    /// The intents buffered since `from` (see [`intents_len`](Self::intents_len)).
    pub fn intents_since(&self, from: usize) -> &[Intent] {
        self.outbox.as_slice().get(from..).unwrap_or_default()
    }

    /// Drops the intents buffered since `from`: what a trader that panicked asked for is never
    /// sent.
    pub fn discard_intents_since(&mut self, from: usize) {
        self.outbox.truncate(from);
    }

    /// True when trader states are journaled (see [`journal_trader_state`](Self::journal_trader_state)).
    pub fn journals_trader_states(&self) -> bool {
        self.outbox.journal_states
    }

    /// Hands a trader's new state to the journal (a live run with orders; otherwise nothing).
    pub fn journal_trader_state(
        &mut self,
        trader: u16,
        state: crate::event::TraderBlob,
    ) -> Result<(), CtxError> {
        if !self.outbox.journal_states {
            return Ok(());
        }
        self.outbox.push(Intent::TraderState(trader, state))
    }

    /// Counts a trader restarted after a panic (in the core's `trader_restarts`).
    pub fn report_trader_restart(&mut self) {
        self.outbox.trader_restarts += 1;
    }

    /// Counts a symbol halted by its supervisor (in the core's `symbol_halts`).
    pub fn report_symbol_halt(&mut self) {
        self.outbox.symbol_halts += 1;
    }

    /// Asks for `on_timer(token)` at or after `at_ns` on the core's clock.
    pub fn set_timer(&mut self, at_ns: u64, token: u64) -> Result<(), CtxError> {
        self.timers.push(TimerEntry {
            at_ns,
            symbol: self.symbol,
            token,
        })
    }
}

/// A trading strategy for one symbol. Every callback has an empty default.
pub trait Strategy: Send {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// A trade printed.
    fn on_trade(&mut self, _ctx: &mut Ctx<'_>, _trade: &Trade) {}
    /// An aggregated trade printed.
    fn on_agg_trade(&mut self, _ctx: &mut Ctx<'_>, _trade: &AggTrade) {}
    /// The best bid/ask changed (bookTicker stream).
    fn on_book_ticker(&mut self, _ctx: &mut Ctx<'_>, _bbo: &BookTicker) {}
    /// The L2 book finished applying a message and is synced and uncrossed.
    fn on_book(&mut self, _ctx: &mut Ctx<'_>, _book: &OrderBook) {}
    /// One of this strategy's orders changed.
    fn on_order(&mut self, _ctx: &mut Ctx<'_>, _update: &OrderUpdate) {}
    /// A timer set with [`Ctx::set_timer`] fired.
    fn on_timer(&mut self, _ctx: &mut Ctx<'_>, _token: u64) {}
    /// The feed went down (`up == false`) or came back (`up == true`).
    fn on_connection(&mut self, _ctx: &mut Ctx<'_>, _up: bool) {}
    /// The channels this strategy wants, as patterns `<kind>.<venue>.<symbol>` where any part may
    /// be `*` (`trade.binance.BTCUSDT`, `book.binance.*`), or a kind alone (`trade`) for that kind
    /// of its own symbol; kinds are listed in [`crate::route`]. Asked once, when the strategy is
    /// installed; routing is then resolved to indexes. Empty (the default): everything of its own
    /// symbol. A strategy that reads only some kinds should name them: every event routed to it
    /// is a timed call, even to a callback that does nothing.
    fn channels(&self) -> Vec<String> {
        Vec::new()
    }
    /// Changes parameters while running, all or none: on any unknown key or bad value nothing
    /// changes and the error names it. Returns what changed, in words. The default takes none.
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        Err(match params.keys().next() {
            Some(k) => ParamError::Unknown(k.to_string()),
            None => ParamError::BadValue {
                key: String::new(),
                why: "no parameters given".into(),
            },
        })
    }
    /// The supervision tree under this strategy, if it is a leader of traders.
    fn leader_status(&self) -> Option<crate::status::LeaderStatus> {
        None
    }
    /// Puts back trader `trader`'s state from the journal (after a process restart); false if
    /// this strategy has no such trader or cannot read the state.
    fn restore_trader(&mut self, _trader: u16, _state: &[u8]) -> bool {
        false
    }
}

/// Why strategy parameters were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// A parameter nobody asked for.
    Unknown(String),
    /// A value that does not parse or is out of range.
    BadValue {
        /// Parameter name.
        key: String,
        /// What was wrong.
        why: String,
    },
    /// No strategy of that name.
    UnknownStrategy(String),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Unknown(k) => write!(f, "unknown strategy parameter `{k}`"),
            ParamError::BadValue { key, why } => {
                write!(f, "bad value for parameter `{key}`: {why}")
            }
            ParamError::UnknownStrategy(n) => write!(f, "unknown strategy `{n}`"),
        }
    }
}

impl std::error::Error for ParamError {}

/// Strategy parameters as `key = value` strings, read with typed getters.
///
/// Every getter marks its key as used; [`Params::finish`] fails on the first key nobody read, so
/// a misspelt parameter is an error, not a silent default.
#[derive(Clone, Debug, Default)]
pub struct Params {
    entries: Vec<(String, String, bool)>,
}

impl Params {
    /// Parameters from `(key, value)` pairs.
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Params {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into(), false))
                .collect(),
        }
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.0.as_str())
    }

    /// The `(key, value)` pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (e.0.as_str(), e.1.as_str()))
    }

    /// These parameters with `other`'s on top (same key: `other` wins), none of them read yet.
    pub fn merged(&self, other: &Params) -> Params {
        let mut out: Vec<(String, String, bool)> = self
            .entries
            .iter()
            .map(|e| (e.0.clone(), e.1.clone(), false))
            .collect();
        for (k, v) in other.pairs() {
            match out.iter_mut().find(|e| e.0 == k) {
                Some(e) => e.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string(), false)),
            }
        }
        Params { entries: out }
    }

    fn take(&mut self, key: &str) -> Option<String> {
        self.entries.iter_mut().find(|e| e.0 == key).map(|e| {
            e.2 = true;
            e.1.clone()
        })
    }

    fn parsed<T>(
        &mut self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ParamError> {
        match self.take(key) {
            None => Ok(default),
            Some(v) => parse(v.trim()).map_err(|why| ParamError::BadValue {
                key: key.to_string(),
                why: format!("{why} (got {v:?})"),
            }),
        }
    }

    /// A string, checked by `check` (which says what is wrong, or returns the value to keep).
    pub fn text<T>(
        &mut self,
        key: &str,
        default: T,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ParamError> {
        self.parsed(key, default, check)
    }

    /// An unsigned integer in `min..=max`.
    pub fn u64_in(
        &mut self,
        key: &str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ParamError> {
        self.parsed(key, default, |s| {
            let n: u64 = s
                .parse()
                .map_err(|_| "not an unsigned integer".to_string())?;
            if n < min || n > max {
                return Err(format!("must be in {min}..={max}"));
            }
            Ok(n)
        })
    }

    /// A decimal as 1e-8 fixed point (for prices, quantities and ratios such as `-0.0012`).
    pub fn fixed(&mut self, key: &str, default: i64) -> Result<i64, ParamError> {
        self.parsed(key, default, |s| {
            crate::fixed::parse_fixed(s.as_bytes()).map_err(|e| e.to_string())
        })
    }

    /// Fails on the first parameter no getter read.
    pub fn finish(self) -> Result<(), ParamError> {
        match self.entries.into_iter().find(|e| !e.2) {
            Some((k, _, _)) => Err(ParamError::Unknown(k)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_typed_and_unknown_keys_fail() {
        let mut p = Params::new([("chunks", "4"), ("profit_interval", "-0.0012")]);
        assert_eq!(p.u64_in("chunks", 1, 1, 64), Ok(4));
        assert_eq!(p.fixed("profit_interval", 0), Ok(-120_000));
        assert_eq!(p.u64_in("absent", 7, 0, 10), Ok(7));
        assert!(p.finish().is_ok());

        let mut p = Params::new([("chunkz", "4")]);
        assert_eq!(p.u64_in("chunks", 1, 1, 64), Ok(1));
        assert_eq!(p.finish(), Err(ParamError::Unknown("chunkz".into())));

        let mut p = Params::new([("chunks", "0")]);
        assert!(matches!(
            p.u64_in("chunks", 1, 1, 64),
            Err(ParamError::BadValue { .. })
        ));
        let mut p = Params::new([("q", "1e3")]);
        assert!(matches!(p.fixed("q", 0), Err(ParamError::BadValue { .. })));
    }

    #[test]
    fn timer_queue_is_bounded_and_ordered() {
        let mut q = TimerQueue::with_capacity(2);
        let t = |at| TimerEntry {
            at_ns: at,
            symbol: SymbolId(0),
            token: at,
        };
        q.push(t(20)).unwrap();
        q.push(t(10)).unwrap();
        assert_eq!(q.push(t(5)), Err(CtxError::TimerQueueFull));
        assert_eq!(q.pop_due(9), None);
        assert_eq!(q.pop_due(25).map(|e| e.at_ns), Some(10));
        assert_eq!(q.pop_due(25).map(|e| e.at_ns), Some(20));
        assert!(q.is_empty());
    }
}
