//! The core loop: drain the rings, keep the books, run the strategies, route their orders.
//!
//! [`Core::poll`] is called in a loop by the core thread (see `tools`). Each call drains every
//! inbound ring in batches, dispatches each event (book, paper venue, portfolio, strategy), runs
//! the timers due at `now`, and returns how many events it handled, so the caller's
//! [`crate::idle::Idler`] can spin, yield or back off. It does no I/O and reads no clock of its
//! own: `now` is an argument, and stage latencies are stamped through the [`Clock`] it is given.
//!
//! Everything is sized in [`Core::new`]; dispatching an event allocates nothing.

use crate::book::{BookConfig, BookStats, BookUpdate, OrderBook};
use crate::control::Reply;
use crate::event::{
    BookTicker, ClientOrderId, EventKind, GapReason, MarketEvent, OrderCommand, OrderRequest,
    OrderType, RejectReason, Side, Trade,
};
use crate::fixed::{Price, Qty};
use crate::latency::{Stage, StageLatency};
use crate::metrics::{
    LoopStats, MetricsSnapshot, SlowCallback, SymbolGauges, SLOW_REPORTS_PER_INTERVAL,
};
use crate::paper::{PaperConfig, PaperExchange, Quotes};
use crate::portfolio::Position;
use crate::risk::{Risk, RiskInputs, RiskLimits, TradingState};
use crate::route::Kind;
use crate::strategy::{
    Ctx, Intent, OrderUpdate, OrderUpdateKind, Outbox, Strategy, SymbolRules, TimerQueue,
};
use crate::symbol::{SymbolId, SymbolTable};
use rtrb::Consumer;

/// The engine's monotonic clock, in ns; injected so tests can drive time by hand.
pub trait Clock {
    /// Now, ns.
    fn now_ns(&self) -> u64;
}

/// Sizes and settings fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreConfig {
    /// Per-symbol book sizes.
    pub book: BookConfig,
    /// Paper venue (replay and demo).
    pub paper: PaperConfig,
    /// Orders and cancels one callback may emit.
    pub max_intents_per_dispatch: usize,
    /// Pending timers.
    pub timer_capacity: usize,
    /// Orders tracked at once, every symbol together: the order table, allocated in
    /// [`Core::new`] and never grown (an order beyond it is refused `TooManyOrders`).
    pub max_open_orders: usize,
    /// Events taken from one ring per batch (bounds how long one ring can hold the core).
    pub batch: usize,
    /// A strategy callback longer than this is counted and reported as slow, ns.
    pub slow_callback_ns: u64,
    /// An order not acknowledged within this long (latency clock) is reported `TimedOut` and
    /// stays in flight, ns.
    pub ack_timeout_ns: u64,
    /// Pre-trade risk limits for every symbol (`None`: no pre-trade checks, the paper default).
    pub risk: Option<RiskLimits>,
    /// The feed carries depth diffs, so books are synced from REST snapshots: resyncs are
    /// asked for. False (a trade-only feed): no snapshot is ever asked for and the books stay
    /// unsynced. Per symbol: [`Core::set_depth_feed`].
    pub depth_snapshots: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            book: BookConfig::default(),
            paper: PaperConfig::default(),
            max_intents_per_dispatch: 64,
            timer_capacity: 4096,
            max_open_orders: 1024,
            batch: 1024,
            slow_callback_ns: 50_000,
            ack_timeout_ns: 5_000_000_000,
            risk: None,
            depth_snapshots: true,
        }
    }
}

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

#[derive(Clone, Copy, Debug)]
struct OrderEntry {
    id: ClientOrderId,
    symbol: SymbolId,
    side: Side,
    price: Price,
    qty: Qty,
    filled: Qty,
    sent_ns: u64,
    state: OrderState,
}

impl OrderEntry {
    fn new(
        id: ClientOrderId,
        symbol: SymbolId,
        req: &OrderRequest,
        filled: Qty,
        sent_ns: u64,
        state: OrderState,
    ) -> Self {
        OrderEntry {
            id,
            symbol,
            side: req.side,
            // A market order has no limit price.
            price: if req.order_type == OrderType::Market {
                Price::ZERO
            } else {
                req.price
            },
            qty: req.qty,
            filled,
            sent_ns,
            state,
        }
    }
}

/// Where an order is in its life, as the core knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OrderState {
    /// Sent, no answer yet.
    Sent,
    /// Acknowledged; working (possibly partly filled).
    Working,
    /// No answer within the ack timeout: outcome unknown, still in flight.
    Unknown,
}

/// Fills recently applied, by (client order id, venue trade id), to drop fills the venue (or a
/// reconnect's replay) sends twice. Keyed by both, since two of our own orders can be the two
/// sides of one venue trade. Two fixed-size open-addressing generations: when the current one
/// is half full it becomes the previous one, so the last few thousand fills are remembered
/// without growing.
#[derive(Debug)]
struct RecentFills {
    current: Vec<(u64, u64)>,
    previous: Vec<(u64, u64)>,
    len: usize,
}

impl RecentFills {
    const SLOTS: usize = 8192;
    const EMPTY: (u64, u64) = (0, 0);

    fn new() -> Self {
        RecentFills {
            current: vec![Self::EMPTY; Self::SLOTS],
            previous: vec![Self::EMPTY; Self::SLOTS],
            len: 0,
        }
    }

    fn find(table: &[(u64, u64)], key: (u64, u64)) -> Result<usize, usize> {
        let mask = table.len() - 1;
        let h =
            key.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key.1.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        let mut i = (h >> 32) as usize & mask;
        loop {
            match table[i] {
                Self::EMPTY => return Err(i),
                k if k == key => return Ok(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// True if this fill was seen already; otherwise remembers it.
    fn seen_or_insert(&mut self, client_id: ClientOrderId, trade_id: u64) -> bool {
        // The +1 keeps every real key away from the empty marker.
        let key = (client_id.0.wrapping_add(1), trade_id.wrapping_add(1));
        if key == Self::EMPTY || Self::find(&self.previous, key).is_ok() {
            return key != Self::EMPTY;
        }
        match Self::find(&self.current, key) {
            Ok(_) => true,
            Err(slot) => {
                self.current[slot] = key;
                self.len += 1;
                if self.len * 2 >= Self::SLOTS {
                    core::mem::swap(&mut self.current, &mut self.previous);
                    self.current.iter_mut().for_each(|k| *k = Self::EMPTY);
                    self.len = 0;
                }
                false
            }
        }
    }
}

struct SymbolSlot {
    book: OrderBook,
    bbo: Option<BookTicker>,
    last_trade: Option<Trade>,
    position: Position,
    rules: SymbolRules,
    strategy: Option<Box<dyn Strategy>>,
    /// The strategy's channel patterns (empty: everything of this symbol).
    channels: Vec<crate::route::Pattern>,
}

impl core::fmt::Debug for SymbolSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SymbolSlot")
            .field("synced", &self.book.is_synced())
            .field("position", &self.position)
            .field("strategy", &self.strategy.as_ref().map(|s| s.name()))
            .finish()
    }
}

/// The order ring's wake-up call.
struct OrderNotify(Box<dyn FnMut() + Send>);

impl core::fmt::Debug for OrderNotify {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("OrderNotify")
    }
}

/// Everything but the rings, so a ring's batch can be read while the state is mutated.
#[derive(Debug)]
struct State {
    symbols: Vec<SymbolSlot>,
    paper: PaperExchange,
    paper_out: Vec<MarketEvent>,
    orders: Vec<OrderEntry>,
    max_open_orders: usize,
    outbox: Outbox,
    timers: TimerQueue,
    next_order_no: u64,
    market_ns: u64,
    now_ns: u64,
    counters: CoreCounters,
    latency: StageLatency,
    resync_sink: Option<rtrb::Producer<SymbolId>>,
    resync_pending: Vec<bool>,
    /// The market feed went down and has not come back: REST snapshots asked for before are
    /// dropped (they would show a book the strategies cannot see move).
    feed_down: bool,
    /// Per symbol: depth diffs arrive for it, so its book wants REST snapshots.
    depth_fed: Vec<bool>,
    depth_snapshots: bool,
    wall_offset_ns: Option<i64>,
    slow_callback_ns: u64,
    slow_recent: Vec<SlowCallback>,
    slow_unreported: u64,
    loop_stats: LoopStats,
    last_poll_ns: u64,
    last_poll_busy: bool,
    interval_start_ns: u64,
    order_sink: Option<rtrb::Producer<OrderCommand>>,
    order_notify: Option<OrderNotify>,
    control: Option<crossbeam_channel::Receiver<crate::control::Request>>,
    next_control_ns: u64,
    names: Vec<String>,
    routes: crate::route::Routes,
    risk: Option<Risk>,
    ack_timeout_ns: u64,
    next_timeout_check_ns: u64,
    recent_fills: RecentFills,
}

/// The trading core. Generic over the clock used for latency stamps.
pub struct Core<C: Clock> {
    inputs: Vec<Consumer<MarketEvent>>,
    clock: C,
    batch: usize,
    st: State,
}

impl<C: Clock> core::fmt::Debug for Core<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Core")
            .field("inputs", &self.inputs.len())
            .field("st", &self.st)
            .finish()
    }
}

impl<C: Clock> Core<C> {
    /// A core for every symbol in `symbols`, with all memory allocated now.
    pub fn new(symbols: &SymbolTable, cfg: CoreConfig, clock: C) -> Self {
        let slots = (0..symbols.len())
            .map(|_| SymbolSlot {
                book: OrderBook::new(cfg.book),
                bbo: None,
                last_trade: None,
                position: Position::default(),
                rules: SymbolRules::default(),
                strategy: None,
                channels: Vec::new(),
            })
            .collect();
        Core {
            inputs: Vec::new(),
            clock,
            batch: cfg.batch.max(1),
            st: State {
                symbols: slots,
                paper: PaperExchange::new(cfg.paper),
                paper_out: Vec::with_capacity(cfg.paper.max_orders.max(16) * 4),
                // Headroom for the orders of one dispatch that are refused (table full, ring
                // full): they are kept just long enough for the refusal to reach the strategy.
                orders: Vec::with_capacity(cfg.max_open_orders + cfg.max_intents_per_dispatch),
                max_open_orders: cfg.max_open_orders,
                outbox: Outbox::with_capacity(cfg.max_intents_per_dispatch),
                timers: TimerQueue::with_capacity(cfg.timer_capacity),
                next_order_no: 1,
                market_ns: 0,
                now_ns: 0,
                counters: CoreCounters::default(),
                latency: StageLatency::new(),
                resync_sink: None,
                resync_pending: vec![false; symbols.len()],
                feed_down: false,
                depth_fed: vec![cfg.depth_snapshots; symbols.len()],
                depth_snapshots: cfg.depth_snapshots,
                wall_offset_ns: None,
                slow_callback_ns: cfg.slow_callback_ns,
                slow_recent: Vec::with_capacity(SLOW_REPORTS_PER_INTERVAL),
                slow_unreported: 0,
                loop_stats: LoopStats::default(),
                last_poll_ns: 0,
                last_poll_busy: false,
                interval_start_ns: 0,
                order_sink: None,
                order_notify: None,
                control: None,
                next_control_ns: 0,
                names: symbols.iter().map(|(_, n)| n.to_string()).collect(),
                routes: crate::route::Routes::new(symbols.len()),
                risk: cfg.risk.map(|l| Risk::new(symbols.len(), l)),
                ack_timeout_ns: cfg.ack_timeout_ns,
                next_timeout_check_ns: 0,
                recent_fills: RecentFills::new(),
            },
        }
    }

    /// Adds an inbound ring (the consumer end of [`crate::ring::event_ring`]).
    pub fn add_input(&mut self, rx: Consumer<MarketEvent>) {
        self.inputs.push(rx);
    }

    /// Where the core sends resync requests: the symbol of every book that needs a fresh REST
    /// snapshot (after a gap, a crossed book, a rejected snapshot, lost data, or a reconnect).
    /// A full ring drops the request and counts it (`resync_requests_dropped`); the book stays
    /// stale and the next trigger asks again.
    pub fn set_resync_sink(&mut self, tx: rtrb::Producer<SymbolId>) {
        self.st.resync_sink = Some(tx);
    }

    /// Whether depth diffs arrive for `symbol` (default: [`CoreConfig::depth_snapshots`]). A
    /// symbol without them (no depth stream subscribed: a trade-only config, or a symbol idle
    /// until `start-trading`) never asks for a REST snapshot, and its book is not expected to
    /// sync. `start-trading` sets it back to [`CoreConfig::depth_snapshots`].
    pub fn set_depth_feed(&mut self, symbol: SymbolId, fed: bool) {
        if let Some(f) = self.st.depth_fed.get_mut(symbol.index()) {
            *f = fed;
        }
    }

    /// The order table's size (orders tracked at once, every symbol together).
    pub fn order_capacity(&self) -> usize {
        self.st.max_open_orders
    }

    /// Sends orders and cancels to a venue through this ring (the I/O thread that owns the order
    /// session consumes it) instead of the paper venue. Acks, rejects, fills and cancels then
    /// come back as events on an inbound ring.
    pub fn set_order_sink(&mut self, tx: rtrb::Producer<OrderCommand>) {
        self.st.order_sink = Some(tx);
        // Whoever owns the order session owns the journal: supervisors hand it their states.
        self.st.outbox.journal_states = true;
    }

    /// Puts back a trader's state recovered from the journal; false if `symbol` has no strategy
    /// or it has no such trader.
    pub fn restore_trader(&mut self, symbol: SymbolId, trader: u16, state: &[u8]) -> bool {
        self.st
            .symbols
            .get_mut(symbol.index())
            .and_then(|s| s.strategy.as_mut())
            .is_some_and(|s| s.restore_trader(trader, state))
    }

    /// Called right after every command pushed into the order ring, so an I/O thread parked in
    /// `epoll_wait` can be woken (it should cost next to nothing while that thread is spinning:
    /// see `feeds::orders::session::OrderWake`).
    pub fn set_order_notify(&mut self, notify: Box<dyn FnMut() + Send>) {
        self.st.order_notify = Some(OrderNotify(notify));
    }

    /// Takes runtime commands from `rx` (a control socket's thread): checked about once a
    /// millisecond in [`poll`](Self::poll), each answered on its request's reply channel.
    pub fn set_control(&mut self, rx: crossbeam_channel::Receiver<crate::control::Request>) {
        self.st.control = Some(rx);
    }

    /// Continues the engine-namespace order numbering at `next` (at start-up: the first number
    /// of this start's epoch, past everything the journal recorded; see
    /// [`ClientOrderId`]). Lower values are ignored. The order
    /// session raises it later with an [`EventKind::OrderIdFloor`] when the venue knows ids at
    /// or beyond it.
    pub fn set_next_order_number(&mut self, next: u64) {
        self.st.next_order_no = self.st.next_order_no.max(next);
    }

    /// The next engine-namespace order number.
    pub fn next_order_number(&self) -> u64 {
        self.st.next_order_no
    }

    /// Sets `symbol`'s position (recovered from the order journal at start-up).
    pub fn restore_position(&mut self, symbol: SymbolId, position: Position) {
        if let Some(s) = self.st.symbols.get_mut(symbol.index()) {
            s.position = position;
        }
    }

    /// Puts an order a previous run left open back in the order table (from the order journal),
    /// so the venue's answers for it are joined and applied like any other. An order that was
    /// never acknowledged comes back with an unknown outcome. False if the table is full.
    pub fn restore_order(
        &mut self,
        symbol: SymbolId,
        client_id: ClientOrderId,
        req: OrderRequest,
        filled: Qty,
        acked: bool,
    ) -> bool {
        let st = &mut self.st;
        if st.orders.len() >= st.max_open_orders || symbol.index() >= st.symbols.len() {
            return false;
        }
        let state = if acked {
            OrderState::Working
        } else {
            OrderState::Unknown
        };
        let entry = OrderEntry::new(client_id, symbol, &req, filled, self.clock.now_ns(), state);
        st.orders.push(entry);
        true
    }

    /// Pre-trade risk (its limits, state and denial counters), if enabled.
    pub fn risk(&self) -> Option<&Risk> {
        self.st.risk.as_ref()
    }

    /// Sets the trading state (ACTIVE, REDUCING, HALTED); no effect without risk or while killed.
    pub fn set_trading_state(&mut self, state: TradingState) {
        if let Some(r) = self.st.risk.as_mut() {
            r.set_state(state);
        }
    }

    /// The kill switch: halts trading (with permissive pre-trade risk created if the run had
    /// none, so it halts in every run) and cancels every open order. Returns the number of
    /// cancels sent. Only `resume_trading` lifts it.
    pub fn kill(&mut self) -> usize {
        self.st.kill()
    }

    /// Lifts the kill switch; trading is ACTIVE again.
    pub fn resume_trading(&mut self) {
        if let Some(r) = self.st.risk.as_mut() {
            r.resume();
        }
    }

    /// Runs `strategy` on `symbol`: its own orders, timers and connection changes, and the market
    /// events of the channels it declares ([`Strategy::channels`]; by default every event of
    /// `symbol`). Routing is resolved now (this allocates; do it at start-up or from a control
    /// command). A malformed channel installs nothing.
    pub fn set_strategy(
        &mut self,
        symbol: SymbolId,
        strategy: Box<dyn Strategy>,
    ) -> Result<(), crate::route::RouteError> {
        self.st.install(symbol, strategy)
    }

    /// Sets `symbol`'s tick, lot and minimum notional.
    pub fn set_rules(&mut self, symbol: SymbolId, rules: SymbolRules) {
        if let Some(s) = self.st.symbols.get_mut(symbol.index()) {
            s.rules = rules;
        }
    }

    /// Drains every ring, runs due timers, and returns the number of events handled.
    #[inline]
    pub fn poll(&mut self, now: u64) -> usize {
        self.st.now_ns = now;
        // One clock read per poll: it stamps the loop (gap since the previous poll, and the
        // previous poll's duration if it was busy) and is the dequeue time of the first ring.
        let start = self.clock.now_ns();
        let st = &mut self.st;
        st.loop_stats.polls += 1;
        if st.last_poll_ns != 0 {
            let since = start.saturating_sub(st.last_poll_ns);
            st.loop_stats.max_gap_ns = st.loop_stats.max_gap_ns.max(since);
            if st.last_poll_busy {
                // A busy poll lasts until the next one starts (the idler does nothing between).
                st.latency.record(Stage::LoopIteration, since);
                st.loop_stats.busy_polls += 1;
                st.loop_stats.max_iteration_ns = st.loop_stats.max_iteration_ns.max(since);
            }
        }
        st.last_poll_ns = start;
        let mut handled = 0;
        for (i, rx) in self.inputs.iter_mut().enumerate() {
            let avail = rx.slots().min(self.batch);
            if avail == 0 {
                continue;
            }
            let Ok(chunk) = rx.read_chunk(avail) else {
                continue;
            };
            let dequeued = if i == 0 { start } else { self.clock.now_ns() };
            let (a, b) = chunk.as_slices();
            for ev in a.iter().chain(b.iter()) {
                self.st.handle(ev, dequeued, &self.clock);
            }
            chunk.commit_all();
            handled += avail;
        }
        self.st.run_timers(now, &self.clock);
        if start >= self.st.next_control_ns {
            self.st.next_control_ns = start + 1_000_000;
            self.st.housekeeping(&self.clock);
        }
        if start >= self.st.next_timeout_check_ns {
            // Check a few times per timeout, at most every millisecond.
            self.st.next_timeout_check_ns =
                start + (self.st.ack_timeout_ns / 4).clamp(1, 1_000_000);
            self.st.check_ack_timeouts(start, &self.clock);
        }
        self.st.last_poll_busy = handled > 0;
        handled
    }

    /// Tells the core how to turn a receive stamp into wall-clock time (`wall = recv_ns +
    /// offset`), so it can record the cross-clock feed latency (receive minus venue time). Live
    /// runs set it; replays do not (their receive stamps are not when the venue's events happened).
    pub fn set_wall_clock_offset(&mut self, offset_ns: i64) {
        self.st.wall_offset_ns = Some(offset_ns);
    }

    /// A snapshot shaped for this core (allocates: call at start-up, after adding the rings,
    /// twice for double buffering).
    pub fn new_metrics_snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot::new(self.st.symbols.len(), self.inputs.len())
    }

    /// Ends the current metrics interval: the core's interval histograms, loop stats and slow
    /// callbacks trade places with `snap`'s (which must have been cleared with
    /// [`MetricsSnapshot::clear_interval`]), and the counters and gauges are written into it. No
    /// allocation, no copy of a histogram.
    pub fn swap_metrics(&mut self, snap: &mut MetricsSnapshot) {
        let end = self.clock.now_ns();
        for (o, rx) in snap.ring_occupancy.iter_mut().zip(self.inputs.iter()) {
            *o = rx.slots() as u64;
        }
        let st = &mut self.st;
        core::mem::swap(&mut st.latency, &mut snap.latency);
        core::mem::swap(&mut st.slow_recent, &mut snap.slow);
        st.slow_recent.clear();
        snap.slow_unreported = core::mem::take(&mut st.slow_unreported);
        snap.loop_stats = core::mem::take(&mut st.loop_stats);
        st.sync_supervision_counters();
        snap.counters = st.counters;
        snap.start_ns = st.interval_start_ns;
        snap.end_ns = end;
        st.interval_start_ns = end;
        for (i, (g, slot)) in snap.symbols.iter_mut().zip(st.symbols.iter()).enumerate() {
            let (bids, asks) = slot.book.depth();
            *g = SymbolGauges {
                symbol: SymbolId(i as u32),
                position: slot.position,
                bid_levels: bids as u32,
                ask_levels: asks as u32,
                synced: slot.book.is_synced(),
            };
        }
    }

    /// True when every producer is gone and every ring is empty: nothing more can arrive.
    pub fn inputs_finished(&self) -> bool {
        self.inputs
            .iter()
            .all(|rx| rx.is_abandoned() && rx.is_empty())
    }

    /// Counters so far.
    pub fn counters(&self) -> &CoreCounters {
        &self.st.counters
    }

    /// Stage latencies recorded on the core (queue wait, strategy, tick-to-order).
    pub fn latency(&self) -> &StageLatency {
        &self.st.latency
    }

    /// `symbol`'s book.
    pub fn book(&self, symbol: SymbolId) -> Option<&OrderBook> {
        self.st.symbols.get(symbol.index()).map(|s| &s.book)
    }

    /// `symbol`'s position.
    pub fn position(&self, symbol: SymbolId) -> Option<&Position> {
        self.st.symbols.get(symbol.index()).map(|s| &s.position)
    }

    /// Book counters summed over all symbols.
    pub fn book_stats(&self) -> BookStats {
        let mut t = BookStats::default();
        for s in &self.st.symbols {
            let b = s.book.stats();
            t.messages_applied += b.messages_applied;
            t.stale_levels_dropped += b.stale_levels_dropped;
            t.gaps += b.gaps;
            t.crossed += b.crossed;
            t.snapshots += b.snapshots;
            t.snapshots_rejected += b.snapshots_rejected;
            t.levels_truncated += b.levels_truncated;
            t.buffer_overflows += b.buffer_overflows;
        }
        t
    }

    /// Orders the core is tracking as open.
    pub fn open_orders(&self) -> usize {
        self.st.orders.len()
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl State {
    /// Installs `strategy` on `symbol` and rebuilds the routes.
    #[cold]
    fn install(
        &mut self,
        symbol: SymbolId,
        strategy: Box<dyn Strategy>,
    ) -> Result<(), crate::route::RouteError> {
        let channels = crate::route::parse_all(&strategy.channels())?;
        if let Some(s) = self.symbols.get_mut(symbol.index()) {
            s.strategy = Some(strategy);
            s.channels = channels;
        }
        self.rebuild_routes();
        Ok(())
    }

    #[cold]
    fn rebuild_routes(&mut self) {
        let subs: Vec<Option<&[crate::route::Pattern]>> = self
            .symbols
            .iter()
            .map(|s| s.strategy.as_ref().map(|_| s.channels.as_slice()))
            .collect();
        self.routes.rebuild(&subs, &self.names);
    }

    #[inline]
    fn handle<C: Clock>(&mut self, ev: &MarketEvent, dequeued: u64, clock: &C) {
        self.counters.events += 1;
        self.latency
            .record(Stage::QueueWait, dequeued.saturating_sub(ev.recv_ns));
        let exch = ev.exch_ns();
        if exch > self.market_ns {
            self.market_ns = exch;
        }
        if let (Some(off), true) = (self.wall_offset_ns, exch > 0) {
            const PLAUSIBLE_NS: i64 = 60_000_000_000;
            let lag = (ev.recv_ns as i64 + off).saturating_sub(exch as i64);
            if (0..=PLAUSIBLE_NS).contains(&lag) {
                self.latency.record(Stage::FeedLatency, lag as u64);
            } else {
                self.counters.feed_latency_unusable += 1;
            }
        }
        let sym = ev.symbol;
        match &ev.kind {
            EventKind::Gap(g) => return self.on_gap(sym, g.reason, g.lost),
            EventKind::ConnectionUp(_) => return self.on_connection(true, ev.recv_ns, clock),
            EventKind::ConnectionDown(_) => return self.on_connection(false, ev.recv_ns, clock),
            EventKind::OrderIdFloor(f) => {
                self.next_order_no = self.next_order_no.max(f.next);
                return;
            }
            _ => {}
        }
        let Some(slot) = self.symbols.get_mut(sym.index()) else {
            self.counters.unknown_symbol += 1;
            return;
        };
        match &ev.kind {
            EventKind::Trade(t) => {
                self.counters.trades += 1;
                slot.last_trade = Some(*t);
                slot.position.mark_to(t.price);
                self.match_paper(sym, ev.recv_ns, Some((t.price, t.qty)), clock);
                self.dispatch_routed(Kind::Trade, sym, ev.recv_ns, clock, |s, ctx| {
                    s.on_trade(ctx, t)
                });
            }
            EventKind::AggTrade(t) => {
                self.counters.agg_trades += 1;
                slot.position.mark_to(t.price);
                self.match_paper(sym, ev.recv_ns, Some((t.price, t.qty)), clock);
                self.dispatch_routed(Kind::AggTrade, sym, ev.recv_ns, clock, |s, ctx| {
                    s.on_agg_trade(ctx, t)
                });
            }
            EventKind::BookTicker(b) => {
                self.counters.book_tickers += 1;
                slot.bbo = Some(*b);
                self.match_paper(sym, ev.recv_ns, None, clock);
                self.dispatch_routed(Kind::BookTicker, sym, ev.recv_ns, clock, |s, ctx| {
                    s.on_book_ticker(ctx, b)
                });
            }
            EventKind::Depth(d) => {
                self.counters.depth_levels += 1;
                let r = slot.book.apply_depth(d);
                let synced = slot.book.is_synced();
                self.on_book_update(sym, r, ev.recv_ns, clock);
                if !synced {
                    // Diffs are being buffered: a snapshot fetched now bridges them (asked once
                    // until the book syncs).
                    self.request_resync(sym, false);
                }
            }
            EventKind::Snapshot(s) => {
                self.counters.snapshot_levels += 1;
                if self.feed_down {
                    slot.book.discard_snapshot(s);
                } else {
                    let r = slot.book.apply_snapshot(s);
                    self.on_book_update(sym, r, ev.recv_ns, clock);
                }
            }
            EventKind::OrderAck(_)
            | EventKind::OrderReject(_)
            | EventKind::Fill(_)
            | EventKind::OrderCanceled(_) => self.on_order_event(ev, clock),
            EventKind::Gap(_)
            | EventKind::ConnectionUp(_)
            | EventKind::ConnectionDown(_)
            | EventKind::OrderIdFloor(_) => {}
        }
        if !self.paper_out.is_empty() {
            self.drain_paper(clock);
        }
    }

    #[inline]
    fn on_book_update<C: Clock>(&mut self, sym: SymbolId, r: BookUpdate, recv_ns: u64, clock: &C) {
        match r {
            BookUpdate::None => {}
            BookUpdate::Changed => {
                self.dispatch_routed(Kind::Book, sym, recv_ns, clock, |s, ctx| {
                    let book = ctx.book();
                    s.on_book(ctx, book)
                });
            }
            BookUpdate::Synced => {
                self.counters.book_syncs += 1;
                if let Some(p) = self.resync_pending.get_mut(sym.index()) {
                    *p = false;
                }
                self.dispatch_routed(Kind::Book, sym, recv_ns, clock, |s, ctx| {
                    let book = ctx.book();
                    s.on_book(ctx, book)
                });
            }
            BookUpdate::Gap { .. } => {
                self.counters.book_gaps += 1;
                self.request_resync(sym, true);
            }
            BookUpdate::Crossed => {
                self.counters.book_crossed += 1;
                self.request_resync(sym, true);
            }
            BookUpdate::SnapshotRejected => {
                self.counters.snapshots_rejected += 1;
                // The snapshot was too old for the buffered diffs: ask again even if a request
                // is still marked pending (it was this one).
                self.request_resync(sym, true);
            }
        }
    }

    /// Asks the snapshot side for a fresh REST snapshot of `sym` (once until it syncs, unless
    /// `again`). Without a sink (replay) the request is only counted.
    #[cold]
    fn request_resync(&mut self, sym: SymbolId, again: bool) {
        if !self.depth_fed.get(sym.index()).copied().unwrap_or(false) {
            return; // no depth stream: nothing a snapshot could be bridged with
        }
        if self.feed_down {
            return; // asked for when the feed is back (a snapshot now would be dropped)
        }
        let Some(pending) = self.resync_pending.get_mut(sym.index()) else {
            return;
        };
        if *pending && !again {
            return;
        }
        self.counters.resync_requests += 1;
        match self.resync_sink.as_mut() {
            Some(tx) => {
                if tx.push(sym).is_ok() {
                    *pending = true;
                } else {
                    self.counters.resync_requests_dropped += 1;
                }
            }
            None => *pending = true,
        }
    }

    #[cold]
    fn on_gap(&mut self, sym: SymbolId, _reason: GapReason, lost: u64) {
        self.counters.feed_gaps += 1;
        self.counters.feed_events_lost += lost;
        for i in 0..self.symbols.len() {
            if sym == SymbolId::ALL || sym.index() == i {
                self.symbols[i].book.mark_stale();
                self.request_resync(SymbolId(i as u32), false);
            }
        }
    }

    #[cold]
    fn on_connection<C: Clock>(&mut self, up: bool, recv_ns: u64, clock: &C) {
        self.counters.connection_changes += 1;
        self.feed_down = !up;
        for i in 0..self.symbols.len() {
            if !up {
                // Whatever happens until the feed is back is unknown: hide the book now and
                // ask for a snapshot once the feed is up again (one taken now would predate the
                // diffs the new connection will send). A snapshot still on its way is dropped
                // while the feed is down, so the one asked for after the reconnect is new.
                self.symbols[i].book.mark_disconnected();
                if let Some(p) = self.resync_pending.get_mut(i) {
                    *p = false;
                }
            }
            // Up: the snapshot is asked for at the new connection's first diff (Binance's
            // procedure: buffer, then fetch), so it cannot predate the diffs it must bridge.
            self.dispatch(SymbolId(i as u32), recv_ns, clock, |s, ctx| {
                s.on_connection(ctx, up)
            });
        }
    }

    /// Lets the paper venue see the market move, then handles the order events it produced.
    #[inline]
    fn match_paper<C: Clock>(
        &mut self,
        sym: SymbolId,
        recv_ns: u64,
        trade: Option<(Price, Qty)>,
        clock: &C,
    ) {
        if self.paper.open_orders() == 0 {
            return;
        }
        let Some(slot) = self.symbols.get(sym.index()) else {
            return;
        };
        let quotes = match slot.bbo {
            Some(b) => Quotes {
                bid: Some((b.bid_px, b.bid_qty)),
                ask: Some((b.ask_px, b.ask_qty)),
            },
            None => Quotes {
                bid: slot.book.best_bid().map(|l| (l.price, l.qty)),
                ask: slot.book.best_ask().map(|l| (l.price, l.qty)),
            },
        };
        self.paper.on_market(
            sym,
            self.market_ns,
            recv_ns,
            quotes,
            trade,
            &mut self.paper_out,
        );
        self.drain_paper(clock);
    }

    /// Handles the order events the paper venue (or the order table) produced. Handling one can
    /// make a strategy send more orders, whose immediate answers (rejects) append to the same
    /// buffer; a bound keeps a strategy that answers every reject with a new order from holding
    /// the core, and what is left waits for the next event.
    #[inline]
    fn drain_paper<C: Clock>(&mut self, clock: &C) {
        const MAX_PER_EVENT: usize = 4096;
        let mut i = 0;
        while i < self.paper_out.len() && i < MAX_PER_EVENT {
            let ev = self.paper_out[i];
            self.on_order_event(&ev, clock);
            i += 1;
        }
        self.paper_out.drain(..i);
    }

    fn on_order_event<C: Clock>(&mut self, ev: &MarketEvent, clock: &C) {
        let (id, kind) = match ev.kind {
            EventKind::OrderAck(a) => {
                self.counters.acks += 1;
                (a.client_id, OrderUpdateKind::Accepted)
            }
            EventKind::OrderReject(r) => {
                self.counters.rejects += 1;
                (r.client_id, OrderUpdateKind::Rejected(r.reason))
            }
            EventKind::Fill(f) => {
                if self.recent_fills.seen_or_insert(f.client_id, f.trade_id) {
                    self.counters.duplicate_fills += 1;
                    return;
                }
                self.counters.fills += 1;
                (
                    f.client_id,
                    OrderUpdateKind::Filled {
                        price: f.price,
                        qty: f.qty,
                        fee: f.fee,
                    },
                )
            }
            EventKind::OrderCanceled(c) => {
                self.counters.canceled += 1;
                (c.client_id, OrderUpdateKind::Canceled)
            }
            _ => return,
        };
        let Some(idx) = self.orders.iter().position(|o| o.id == id) else {
            self.counters.unknown_order_events += 1;
            return;
        };
        let o = &mut self.orders[idx];
        if matches!(kind, OrderUpdateKind::Accepted) {
            self.latency
                .record(Stage::OrderAck, clock.now_ns().saturating_sub(o.sent_ns));
        }
        if !matches!(kind, OrderUpdateKind::Rejected(_)) {
            o.state = OrderState::Working;
        }
        if let OrderUpdateKind::Filled { price, qty, fee } = kind {
            o.filled = Qty(o.filled.0 + qty.0);
            if let Some(slot) = self.symbols.get_mut(o.symbol.index()) {
                slot.position.apply_fill(o.side, price, qty, fee);
            }
        }
        let leaves = match kind {
            OrderUpdateKind::Rejected(_) | OrderUpdateKind::Canceled => Qty::ZERO,
            _ => Qty((o.qty.0 - o.filled.0).max(0)),
        };
        let update = OrderUpdate {
            client_id: id,
            side: o.side,
            price: o.price,
            kind,
            leaves_qty: leaves,
            filled_qty: o.filled,
        };
        let sym = o.symbol;
        if update.is_final() {
            self.orders.swap_remove(idx);
        }
        self.dispatch(sym, ev.recv_ns, clock, |s, ctx| s.on_order(ctx, &update));
    }

    /// Runs the callback on every strategy routed to `kind` events of `sym`.
    #[inline]
    fn dispatch_routed<C: Clock>(
        &mut self,
        kind: Kind,
        sym: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl Fn(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        let n = self.routes.targets(kind, sym.index()).len();
        for j in 0..n {
            let Some(&home) = self.routes.targets(kind, sym.index()).get(j) else {
                return;
            };
            if home as usize == sym.index() {
                self.dispatch(sym, recv_ns, clock, &f);
            } else {
                self.dispatch_cross(SymbolId(home), sym, recv_ns, clock, &f);
            }
        }
    }

    /// Runs `home`'s strategy on an event of `view` (another symbol it subscribed to): the
    /// context shows `view`'s market, `home`'s rules, position and orders.
    #[inline(never)]
    fn dispatch_cross<C: Clock>(
        &mut self,
        home: SymbolId,
        view: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        let Some(mut strategy) = self
            .symbols
            .get_mut(home.index())
            .and_then(|s| s.strategy.take())
        else {
            return;
        };
        let t0 = clock.now_ns();
        if let (Some(h), Some(v)) = (
            self.symbols.get(home.index()),
            self.symbols.get(view.index()),
        ) {
            let mut ctx = Ctx::new(
                self.now_ns,
                self.market_ns,
                home,
                &h.rules,
                &v.book,
                v.bbo.as_ref(),
                v.last_trade.as_ref(),
                &h.position,
                &mut self.outbox,
                &mut self.timers,
                &mut self.next_order_no,
            );
            ctx.event_symbol = view;
            f(strategy.as_mut(), &mut ctx);
        }
        if let Some(h) = self.symbols.get_mut(home.index()) {
            h.strategy = Some(strategy);
        }
        self.after_callback(home, recv_ns, t0, clock);
    }

    /// Times the callback that started at `t0` and routes what it asked for.
    #[inline]
    fn after_callback<C: Clock>(&mut self, sym: SymbolId, recv_ns: u64, t0: u64, clock: &C) {
        let t1 = clock.now_ns();
        let took = t1.saturating_sub(t0);
        self.latency.record(Stage::Strategy, took);
        if took > self.slow_callback_ns {
            self.slow_callback(sym, took, t1);
        }
        if !self.outbox.is_empty() {
            self.route(sym, recv_ns, t1);
        }
    }

    /// Runs one strategy callback with a context, timing it, then routes what it asked for.
    #[inline]
    fn dispatch<C: Clock>(
        &mut self,
        sym: SymbolId,
        recv_ns: u64,
        clock: &C,
        f: impl FnOnce(&mut dyn Strategy, &mut Ctx<'_>),
    ) {
        let Some(slot) = self.symbols.get_mut(sym.index()) else {
            return;
        };
        let Some(strategy) = slot.strategy.as_mut() else {
            return;
        };
        let t0 = clock.now_ns();
        {
            let mut ctx = Ctx::new(
                self.now_ns,
                self.market_ns,
                sym,
                &slot.rules,
                &slot.book,
                slot.bbo.as_ref(),
                slot.last_trade.as_ref(),
                &slot.position,
                &mut self.outbox,
                &mut self.timers,
                &mut self.next_order_no,
            );
            f(strategy.as_mut(), &mut ctx);
        }
        self.after_callback(sym, recv_ns, t0, clock);
    }

    #[cold]
    #[inline(never)]
    fn slow_callback(&mut self, sym: SymbolId, took: u64, at_ns: u64) {
        self.counters.slow_callbacks += 1;
        let strategy = self
            .symbols
            .get(sym.index())
            .and_then(|s| s.strategy.as_ref())
            .map(|s| s.name())
            .unwrap_or("?");
        if self.slow_recent.len() < SLOW_REPORTS_PER_INTERVAL {
            self.slow_recent.push(SlowCallback {
                strategy,
                symbol: sym,
                duration_ns: took,
                at_ns,
            });
        } else {
            self.slow_unreported += 1;
        }
    }

    fn route(&mut self, sym: SymbolId, recv_ns: u64, emitted_ns: u64) {
        for i in 0..self.outbox.len() {
            let Some(intent) = self.outbox.get(i) else {
                break;
            };
            match intent {
                Intent::New(id, req) => self.send_new(sym, id, req, recv_ns, emitted_ns),
                Intent::Cancel(id) => self.send_cancel(sym, id),
                Intent::CancelAll => {
                    self.cancel_symbol(sym);
                }
                Intent::TraderState(trader, state) => {
                    let cmd = OrderCommand::TraderState {
                        symbol: sym,
                        trader,
                        state,
                    };
                    if let Some(tx) = self.order_sink.as_mut() {
                        if tx.push(cmd).is_err() {
                            self.counters.order_ring_full += 1;
                        }
                    }
                }
            }
        }
        self.outbox.clear();
    }

    fn send_new(
        &mut self,
        sym: SymbolId,
        id: ClientOrderId,
        req: OrderRequest,
        recv_ns: u64,
        emitted_ns: u64,
    ) {
        self.latency
            .record(Stage::TickToOrder, emitted_ns.saturating_sub(recv_ns));
        let denied = match self.risk.as_mut() {
            Some(risk) => {
                let mut inputs = RiskInputs {
                    last_trade: self
                        .symbols
                        .get(sym.index())
                        .and_then(|s| s.last_trade.map(|t| t.price)),
                    position: self.symbols.get(sym.index()).map_or(0, |s| s.position.qty),
                    ..RiskInputs::default()
                };
                for o in self.orders.iter().filter(|o| o.symbol == sym) {
                    let open = (o.qty.0 - o.filled.0).max(0);
                    match o.side {
                        Side::Buy => inputs.open_buy_qty += open,
                        Side::Sell => inputs.open_sell_qty += open,
                    }
                    inputs.open_orders += 1;
                }
                risk.check(sym, &req, &inputs, emitted_ns).err()
            }
            None => None,
        };
        let table_full = self.orders.len() >= self.max_open_orders;
        // The entry is kept even for a refused order (within the table's headroom) so that the
        // refusal is joined with it and reaches the strategy like any other order event.
        if self.orders.len() < self.orders.capacity() {
            let entry = OrderEntry::new(id, sym, &req, Qty::ZERO, emitted_ns, OrderState::Sent);
            self.orders.push(entry);
        }
        let refuse = |reason| {
            MarketEvent::new(
                recv_ns,
                sym,
                EventKind::OrderReject(crate::event::OrderReject {
                    client_id: id,
                    reason,
                }),
            )
        };
        if let Some(reason) = denied {
            self.counters.orders_denied += 1;
            self.paper_out.push(refuse(RejectReason::Risk(reason)));
            return;
        }
        if table_full {
            self.paper_out.push(refuse(RejectReason::TooManyOrders));
            return;
        }
        if let Some(tx) = self.order_sink.as_mut() {
            let cmd = OrderCommand::New {
                client_id: id,
                symbol: sym,
                req,
                cause_ns: recv_ns,
            };
            if tx.push(cmd).is_err() {
                self.counters.order_ring_full += 1;
                self.paper_out.push(refuse(RejectReason::QueueFull));
            } else {
                self.counters.orders_sent += 1;
                if let Some(notify) = self.order_notify.as_mut() {
                    (notify.0)();
                }
            }
            return;
        }
        self.counters.orders_sent += 1;
        let first_new = self.paper_out.len();
        self.paper
            .submit(id, sym, req, self.market_ns, &mut self.paper_out);
        // An immediate answer (a full paper table) carries the receive time of the event that
        // caused the order, like every other order event.
        for ev in &mut self.paper_out[first_new..] {
            ev.recv_ns = recv_ns;
        }
    }

    /// Sends a cancel for every open order of `sym`; returns how many.
    #[cold]
    fn cancel_symbol(&mut self, sym: SymbolId) -> usize {
        let mut n = 0;
        for i in 0..self.orders.len() {
            if self.orders[i].symbol == sym {
                let id = self.orders[i].id;
                self.send_cancel(sym, id);
                n += 1;
            }
        }
        n
    }

    pub(crate) fn send_cancel(&mut self, sym: SymbolId, id: ClientOrderId) {
        self.counters.cancels += 1;
        match self.order_sink.as_mut() {
            Some(tx) => {
                let cmd = OrderCommand::Cancel {
                    client_id: id,
                    symbol: sym,
                };
                if tx.push(cmd).is_err() {
                    // The order stays open; the strategy may ask again.
                    self.counters.order_ring_full += 1;
                } else if let Some(notify) = self.order_notify.as_mut() {
                    (notify.0)();
                }
            }
            None => self.paper.cancel(id, self.market_ns),
        }
    }

    /// About once a millisecond: supervision counters from the strategies' outbox, and control
    /// commands.
    #[cold]
    #[inline(never)]
    fn housekeeping<C: Clock>(&mut self, clock: &C) {
        self.sync_supervision_counters();
        // At most a few per millisecond: a flood of commands cannot starve the market.
        let mut handled = 0;
        while handled < 16 {
            let Some(Ok(req)) = self.control.as_ref().map(|rx| rx.try_recv()) else {
                break;
            };
            handled += 1;
            self.counters.control_commands += 1;
            let reply = self.apply_command(req.command, clock);
            // The requester may have given up waiting; nothing to do then.
            let _ = req.reply.try_send(reply);
        }
    }

    fn symbol_name(&self, sym: SymbolId) -> &str {
        self.names.get(sym.index()).map_or("?", |n| n.as_str())
    }

    /// The kill switch: halts (creating permissive risk if the run had none) and cancels every
    /// open order; returns the cancels sent.
    #[cold]
    fn kill(&mut self) -> usize {
        self.risk_or_permissive().kill();
        let mut sent = 0;
        for i in 0..self.orders.len() {
            let (sym, id) = (self.orders[i].symbol, self.orders[i].id);
            self.send_cancel(sym, id);
            sent += 1;
        }
        sent
    }

    /// Copies the supervisors' counts (kept in the outbox strategies write to) into the counters.
    fn sync_supervision_counters(&mut self) {
        self.counters.trader_restarts = self.outbox.trader_restarts;
        self.counters.symbol_halts = self.outbox.symbol_halts;
    }

    /// Pre-trade risk, created permissive (every limit at its maximum) if the run had none, so
    /// halt and kill always work.
    fn risk_or_permissive(&mut self) -> &mut Risk {
        let n = self.symbols.len();
        self.risk.get_or_insert_with(|| {
            Risk::new(
                n,
                RiskLimits {
                    max_order_qty: Qty(i64::MAX),
                    max_order_notional: crate::fixed::Notional(i128::MAX),
                    max_position: Qty(i64::MAX),
                    max_open_orders: u32::MAX,
                    rate_per_sec: u32::MAX,
                    burst: u32::MAX,
                    price_band_bps: u32::MAX,
                },
            )
        })
    }

    #[cold]
    fn apply_command<C: Clock>(&mut self, cmd: crate::control::Command, clock: &C) -> Reply {
        use crate::control::Command;
        let now = clock.now_ns();
        match cmd {
            Command::StartTrading {
                symbol,
                strategy,
                rules,
            } => {
                let name = self.symbol_name(symbol).to_string();
                let Some(slot) = self.symbols.get_mut(symbol.index()) else {
                    return Reply::Refused(format!("no symbol #{}", symbol.index()));
                };
                if let Some(s) = &slot.strategy {
                    return Reply::Refused(format!(
                        "{name} already trades `{}`: stop-trading it first",
                        s.name()
                    ));
                }
                let what = strategy.name();
                if let Err(e) = self.install(symbol, strategy) {
                    return Reply::Refused(format!("{name}: {e}; nothing changed"));
                }
                if let Some(slot) = self.symbols.get_mut(symbol.index()) {
                    if let Some(r) = rules {
                        slot.rules = r;
                    }
                    // An idle symbol's book may be old: start from a fresh snapshot.
                    slot.book.mark_stale();
                }
                // Its streams are subscribed now: depth diffs come if the feed carries them.
                if let Some(f) = self.depth_fed.get_mut(symbol.index()) {
                    *f = self.depth_snapshots;
                }
                self.request_resync(symbol, true);
                Reply::Done(format!("{name}: trading `{what}`"))
            }
            Command::StopTrading { symbol } => {
                let name = self.symbol_name(symbol).to_string();
                if self
                    .symbols
                    .get(symbol.index())
                    .is_none_or(|s| s.strategy.is_none())
                {
                    return Reply::Refused(format!("{name} is not trading"));
                }
                let cancels = self.cancel_symbol(symbol);
                if let Some(slot) = self.symbols.get_mut(symbol.index()) {
                    slot.strategy = None;
                    slot.channels.clear();
                }
                self.rebuild_routes();
                Reply::Done(format!(
                    "{name}: stopped; {cancels} cancel(s) sent for its open orders"
                ))
            }
            Command::Set { symbol, params } => {
                let name = self.symbol_name(symbol).to_string();
                let Some(strategy) = self
                    .symbols
                    .get_mut(symbol.index())
                    .and_then(|s| s.strategy.as_mut())
                else {
                    return Reply::Refused(format!("{name} is not trading"));
                };
                match strategy.set_params(&params) {
                    Ok(what) => Reply::Done(format!("{name}: {what}")),
                    Err(e) => Reply::Refused(format!("{name}: {e}; nothing changed")),
                }
            }
            Command::Halt => {
                self.risk_or_permissive().set_state(TradingState::Halted);
                Reply::Done("trading HALTED: no new orders (cancels still go out)".into())
            }
            Command::Resume => {
                let r = self.risk_or_permissive();
                r.resume();
                r.set_state(TradingState::Active);
                Reply::Done("trading ACTIVE".into())
            }
            Command::Kill => {
                let cancels = self.kill();
                Reply::Done(format!(
                    "KILLED: trading halted, {cancels} cancel(s) sent; `resume` lifts it"
                ))
            }
            Command::Status => Reply::Status(self.status(now)),
        }
    }

    #[cold]
    fn status(&self, _now: u64) -> crate::control::CoreStatus {
        use crate::control::{CoreStatus, SymbolStatus};
        let money = |units: i128| units as f64 / crate::fixed::SCALE as f64;
        let trading_state = match &self.risk {
            None => "ACTIVE (no pre-trade risk)".to_string(),
            Some(r) if r.is_killed() => "KILLED".to_string(),
            Some(r) => match r.state() {
                TradingState::Active => "ACTIVE",
                TradingState::Reducing => "REDUCING",
                TradingState::Halted => "HALTED",
            }
            .to_string(),
        };
        let symbols = self
            .symbols
            .iter()
            .enumerate()
            .map(|(i, slot)| SymbolStatus {
                symbol: self.names.get(i).cloned().unwrap_or_default(),
                trading: slot.strategy.is_some(),
                strategy: slot.strategy.as_ref().map(|s| s.name().to_string()),
                book_synced: slot.book.is_synced(),
                position: Qty(slot.position.qty).to_string(),
                avg_price: slot.position.avg_price.to_string(),
                realized: money(slot.position.realized),
                unrealized: money(slot.position.unrealized()),
                fees: money(slot.position.fees),
                open_orders: self.orders.iter().filter(|o| o.symbol.index() == i).count(),
                leader: slot.strategy.as_ref().and_then(|s| s.leader_status()),
            })
            .collect();
        CoreStatus {
            trading_state,
            events: self.counters.events,
            orders: self.counters.orders_sent,
            fills: self.counters.fills,
            trader_restarts: self.outbox.trader_restarts,
            symbol_halts: self.outbox.symbol_halts,
            symbols,
        }
    }

    /// Orders with no answer within the ack timeout: reported once as `TimedOut`, kept in flight.
    #[cold]
    fn check_ack_timeouts<C: Clock>(&mut self, now: u64, clock: &C) {
        if self.orders.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.orders.len() {
            let o = &mut self.orders[i];
            i += 1;
            if o.state != OrderState::Sent || now.saturating_sub(o.sent_ns) < self.ack_timeout_ns {
                continue;
            }
            o.state = OrderState::Unknown;
            self.counters.order_timeouts += 1;
            let update = OrderUpdate {
                client_id: o.id,
                side: o.side,
                price: o.price,
                kind: OrderUpdateKind::TimedOut,
                leaves_qty: Qty((o.qty.0 - o.filled.0).max(0)),
                filled_qty: o.filled,
            };
            let sym = o.symbol;
            self.dispatch(sym, now, clock, |s, ctx| s.on_order(ctx, &update));
        }
        if !self.paper_out.is_empty() {
            self.drain_paper(clock);
        }
    }

    fn run_timers<C: Clock>(&mut self, now: u64, clock: &C) {
        while let Some(t) = self.timers.pop_due(now) {
            self.counters.timers_fired += 1;
            self.latency
                .record(Stage::TimerLag, now.saturating_sub(t.at_ns));
            self.dispatch(t.symbol, now, clock, |s, ctx| s.on_timer(ctx, t.token));
            if !self.paper_out.is_empty() {
                self.drain_paper(clock);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Connection, Gap, OrderType, Side};
    use crate::ring::{event_ring, OnFull};
    use std::cell::Cell;

    /// A hand-driven clock: each read advances it by `step`, so every stage gets a known duration.
    struct StepClock {
        t: Cell<u64>,
        step: u64,
    }

    impl Clock for StepClock {
        fn now_ns(&self) -> u64 {
            let t = self.t.get();
            self.t.set(t + self.step);
            t
        }
    }

    #[derive(Default)]
    struct Recorder {
        updates: Vec<OrderUpdate>,
        timers: Vec<u64>,
        connection: Vec<bool>,
        answer_trades: bool,
    }

    struct Shared(std::sync::Arc<std::sync::Mutex<Recorder>>);

    impl Strategy for Shared {
        fn name(&self) -> &'static str {
            "recorder"
        }
        fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
            let answer = self.0.lock().unwrap().answer_trades;
            if answer {
                ctx.submit(OrderRequest {
                    side: Side::Buy,
                    price: t.price,
                    qty: Qty(100),
                    order_type: OrderType::LimitIoc,
                })
                .unwrap();
                ctx.set_timer(ctx.now_ns() + 10, 42).unwrap();
            }
        }
        fn on_order(&mut self, _ctx: &mut Ctx<'_>, u: &OrderUpdate) {
            self.0.lock().unwrap().updates.push(*u);
        }
        fn on_timer(&mut self, _ctx: &mut Ctx<'_>, token: u64) {
            self.0.lock().unwrap().timers.push(token);
        }
        fn on_connection(&mut self, _ctx: &mut Ctx<'_>, up: bool) {
            self.0.lock().unwrap().connection.push(up);
        }
    }

    fn trade(recv: u64, exch_ms: u64, id: u64, px: i64, qty: i64) -> MarketEvent {
        MarketEvent::new(
            recv,
            SymbolId(0),
            EventKind::Trade(Trade {
                exch_ns: exch_ms * 1_000_000,
                trade_id: id,
                price: Price(px),
                qty: Qty(qty),
                buyer_maker: false,
            }),
        )
    }

    fn ticker(recv: u64, bid: i64, ask: i64) -> MarketEvent {
        MarketEvent::new(
            recv,
            SymbolId(0),
            EventKind::BookTicker(BookTicker {
                update_id: 1,
                bid_px: Price(bid),
                bid_qty: Qty(1_000),
                ask_px: Price(ask),
                ask_qty: Qty(1_000),
            }),
        )
    }

    /// One diff message of one level (`U` = `u` = `id`), a bid at 100.
    fn depth_level(symbol: SymbolId, id: u64) -> MarketEvent {
        MarketEvent::new(
            1,
            symbol,
            EventKind::Depth(crate::event::DepthLevel {
                exch_ns: 0,
                final_update_id: id,
                price: Price(100),
                qty: Qty(1),
                update_span: 0,
                side: crate::event::BookSide::Bid,
                flags: crate::event::LevelFlags::LAST,
            }),
        )
    }

    fn setup(
        latency_ns: u64,
    ) -> (
        Core<StepClock>,
        crate::ring::EventTx,
        std::sync::Arc<std::sync::Mutex<Recorder>>,
    ) {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let cfg = CoreConfig {
            paper: PaperConfig {
                latency_ns,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut core = Core::new(
            &symbols,
            cfg,
            StepClock {
                t: Cell::new(1_000),
                step: 10,
            },
        );
        let (tx, rx) = event_ring(1024, OnFull::Drop);
        core.add_input(rx);
        let rec = std::sync::Arc::new(std::sync::Mutex::new(Recorder {
            answer_trades: true,
            ..Default::default()
        }));
        core.set_strategy(SymbolId(0), Box::new(Shared(rec.clone())))
            .unwrap();
        (core, tx, rec)
    }

    #[test]
    fn orders_fill_on_the_paper_venue_after_the_latency_and_reach_the_portfolio() {
        let (mut core, mut tx, rec) = setup(5_000_000); // 5 ms of venue time
        tx.push(ticker(900, 100, 101)).unwrap();
        tx.push(trade(900, 1, 1, 101, 50)).unwrap(); // strategy answers: IOC buy @101 for 100
        assert_eq!(core.poll(5_000), 2);
        assert_eq!(core.counters().orders_sent, 1);
        assert_eq!(core.open_orders(), 1);
        // 4 ms later: not there yet.
        tx.push(trade(900, 5, 2, 102, 50)).unwrap();
        core.poll(6_000);
        assert_eq!(core.counters().fills, 0);
        // 6 ms after the order: it arrives, takes the 1_000 offered at 101.
        rec.lock().unwrap().answer_trades = false;
        tx.push(trade(900, 7, 3, 102, 50)).unwrap();
        core.poll(7_000);
        let c = *core.counters();
        // The second order (sent at 5 ms) arrives at 10 ms: still in flight.
        assert_eq!((c.acks, c.fills, c.orders_sent), (1, 1, 2), "{c:?}");
        assert_eq!(core.open_orders(), 1);
        let pos = core.position(SymbolId(0)).unwrap();
        assert_eq!(pos.qty, 100);
        assert_eq!(pos.avg_price, Price(101));
        let updates = rec.lock().unwrap().updates.clone();
        assert!(matches!(updates[0].kind, OrderUpdateKind::Accepted));
        assert!(matches!(
            updates[1].kind,
            OrderUpdateKind::Filled { qty: Qty(100), .. }
        ));
        assert!(updates[1].is_final());
    }

    #[test]
    fn timers_fire_on_the_poll_clock() {
        let (mut core, mut tx, rec) = setup(0);
        tx.push(trade(900, 1, 1, 101, 50)).unwrap();
        core.poll(100); // timer set for 110
        assert!(rec.lock().unwrap().timers.is_empty());
        core.poll(109);
        assert!(rec.lock().unwrap().timers.is_empty());
        core.poll(110);
        assert_eq!(rec.lock().unwrap().timers, vec![42]);
        assert_eq!(core.counters().timers_fired, 1);
    }

    #[test]
    fn stage_latencies_use_the_injected_clock() {
        let (mut core, mut tx, _rec) = setup(0);
        tx.push(trade(900, 1, 1, 101, 50)).unwrap();
        core.poll(0);
        // Clock reads, 10 ns apart from 1000: poll start (= dequeue of the first ring) 1000,
        // strategy 1010 and 1020; the next poll starts at 1030.
        let q = core.latency().get(Stage::QueueWait).percentiles();
        assert_eq!((q.count, q.max), (1, 100));
        let s = core.latency().get(Stage::Strategy).percentiles();
        assert_eq!((s.count, s.max), (1, 10));
        let t = core.latency().get(Stage::TickToOrder).percentiles();
        assert_eq!((t.count, t.max), (1, 120));
        assert!(
            core.latency().get(Stage::LoopIteration).is_empty(),
            "known at the next poll"
        );
        core.poll(0);
        let l = core.latency().get(Stage::LoopIteration).percentiles();
        assert_eq!((l.count, l.max), (1, 30));
        // No wall-clock offset set (a replay): no cross-clock feed latency.
        assert!(core.latency().get(Stage::FeedLatency).is_empty());
    }

    #[test]
    fn slow_callbacks_loop_lag_and_late_timers_reach_the_metrics_snapshot() {
        let (mut core, mut tx, _rec) = setup(0);
        core.set_wall_clock_offset(1_000_000);
        let mut snap = core.new_metrics_snapshot();
        // A clock that moves 100 us per read makes every callback "slow" (threshold 50 us).
        core.clock = StepClock {
            t: Cell::new(1_000),
            step: 100_000,
        };
        tx.push(trade(900, 1, 1, 101, 50)).unwrap(); // sets a timer for now + 10
        core.poll(100);
        core.poll(500); // the timer, due at 110, fires 390 late
        core.swap_metrics(&mut snap);
        assert_eq!(
            snap.counters.slow_callbacks, 2,
            "the trade and the timer callbacks"
        );
        assert_eq!(snap.slow.len(), 2);
        assert_eq!(snap.slow[0].strategy, "recorder");
        assert_eq!(snap.slow[0].duration_ns, 100_000);
        assert_eq!(snap.latency.get(Stage::TimerLag).percentiles().max, 390);
        assert_eq!(snap.loop_stats.polls, 2);
        assert!(snap.loop_stats.max_gap_ns >= 100_000);
        // Cross-clock feed latency: wall = 900 + 1_000_000, exchange 1 ms.
        assert_eq!(snap.latency.get(Stage::FeedLatency).percentiles().max, 900);
        assert_eq!(snap.symbols.len(), 1);
        assert_eq!(snap.ring_occupancy, vec![0], "one ring, drained");
        // The core's interval restarted empty; the snapshot holds what was recorded.
        assert!(core.latency().get(Stage::Strategy).is_empty());
        assert_eq!(snap.latency.get(Stage::Strategy).len(), 2);
        snap.clear_interval();
        assert!(snap.latency.get(Stage::Strategy).is_empty() && snap.slow.is_empty());
    }

    #[test]
    fn lost_data_and_disconnects_reach_the_core_and_strategies() {
        let (mut core, mut tx, rec) = setup(0);
        let gap = MarketEvent::new(
            1,
            SymbolId::ALL,
            EventKind::Gap(Gap {
                lost: 7,
                reason: GapReason::RingFull,
            }),
        );
        tx.push(gap).unwrap();
        tx.push(MarketEvent::new(
            2,
            SymbolId::ALL,
            EventKind::ConnectionDown(Connection { conn_id: 1 }),
        ))
        .unwrap();
        tx.push(MarketEvent::new(
            3,
            SymbolId::ALL,
            EventKind::ConnectionUp(Connection { conn_id: 1 }),
        ))
        .unwrap();
        core.poll(0);
        let c = core.counters();
        assert_eq!(
            (c.feed_gaps, c.feed_events_lost, c.connection_changes),
            (1, 7, 2)
        );
        assert!(c.resync_requests >= 1);
        assert_eq!(rec.lock().unwrap().connection, vec![false, true]);
    }

    #[test]
    fn an_order_id_floor_raises_the_numbering_and_never_lowers_it() {
        let (mut core, mut tx, _rec) = setup(0);
        core.set_next_order_number(1_000);
        for next in [5_000, 10, 7_000] {
            tx.push(MarketEvent::new(
                1,
                SymbolId::ALL,
                EventKind::OrderIdFloor(crate::event::OrderIdFloor { next }),
            ))
            .unwrap();
        }
        core.poll(0);
        assert_eq!(core.next_order_number(), 7_000);
        assert_eq!(core.counters().unknown_symbol, 0);
    }

    #[test]
    fn stale_books_ask_for_a_snapshot_once_until_they_sync() {
        let (mut core, mut tx, _rec) = setup(0);
        let (rtx, mut rrx) = rtrb::RingBuffer::new(8);
        core.set_resync_sink(rtx);
        let up = MarketEvent::new(
            1,
            SymbolId::ALL,
            EventKind::ConnectionUp(Connection { conn_id: 1 }),
        );
        let down = MarketEvent::new(
            1,
            SymbolId::ALL,
            EventKind::ConnectionDown(Connection { conn_id: 1 }),
        );
        let gap = MarketEvent::new(
            1,
            SymbolId::ALL,
            EventKind::Gap(Gap {
                lost: 1,
                reason: GapReason::RingFull,
            }),
        );
        // First connect: nothing asked until the first diff is buffered; then one request.
        tx.push(up).unwrap();
        core.poll(0);
        assert!(rrx.pop().is_err());
        tx.push(depth_level(SymbolId(0), 5)).unwrap();
        tx.push(depth_level(SymbolId(0), 6)).unwrap();
        core.poll(0);
        assert_eq!(rrx.pop(), Ok(SymbolId(0)));
        // Lost data while that request is out: none added.
        tx.push(gap).unwrap();
        core.poll(0);
        assert!(rrx.pop().is_err());
        // Down, then lost data, then up again: a snapshot asked for before the down is dropped
        // if it comes while the feed is down, so the reconnect asks again, once.
        tx.push(down).unwrap();
        tx.push(gap).unwrap();
        tx.push(up).unwrap();
        tx.push(depth_level(SymbolId(0), 9)).unwrap();
        tx.push(depth_level(SymbolId(0), 10)).unwrap();
        core.poll(0);
        assert_eq!(rrx.pop(), Ok(SymbolId(0)));
        assert!(rrx.pop().is_err());
        assert_eq!(core.counters().resync_requests, 2);
    }

    /// Regression (chaos drill): a snapshot asked for before a disconnect that arrives while
    /// the feed is down is dropped, not synced (a strategy would be handed a book from before
    /// the disconnect); the reconnect asks for a fresh one, which syncs.
    #[test]
    fn a_snapshot_arriving_while_the_feed_is_down_is_dropped() {
        let (mut core, mut tx, _rec) = setup(0);
        let (rtx, mut rrx) = rtrb::RingBuffer::new(8);
        core.set_resync_sink(rtx);
        let conn = |up: bool| {
            let c = Connection { conn_id: 1 };
            let kind = if up {
                EventKind::ConnectionUp(c)
            } else {
                EventKind::ConnectionDown(c)
            };
            MarketEvent::new(1, SymbolId::ALL, kind)
        };
        let snapshot = |id: u64| {
            let level = |side, price: i64, flags| {
                MarketEvent::new(
                    1,
                    SymbolId(0),
                    EventKind::Snapshot(crate::event::SnapshotLevel {
                        last_update_id: id,
                        price: Price(price),
                        qty: Qty(1),
                        side,
                        flags,
                    }),
                )
            };
            [
                level(
                    crate::event::BookSide::Bid,
                    100,
                    crate::event::LevelFlags::default(),
                ),
                level(
                    crate::event::BookSide::Ask,
                    101,
                    crate::event::LevelFlags::LAST,
                ),
            ]
        };
        tx.push(conn(true)).unwrap();
        tx.push(depth_level(SymbolId(0), 5)).unwrap();
        core.poll(0);
        assert_eq!(rrx.pop(), Ok(SymbolId(0)));
        tx.push(conn(false)).unwrap();
        for e in snapshot(10) {
            tx.push(e).unwrap();
        }
        core.poll(0);
        assert_eq!(core.counters().book_syncs, 0, "dropped while down");
        assert!(!core.book(SymbolId(0)).is_some_and(|b| b.is_synced()));
        assert!(rrx.pop().is_err(), "nothing asked for while down");
        tx.push(conn(true)).unwrap();
        tx.push(depth_level(SymbolId(0), 20)).unwrap();
        core.poll(0);
        assert_eq!(
            rrx.pop(),
            Ok(SymbolId(0)),
            "asked again after the reconnect"
        );
        for e in snapshot(20) {
            tx.push(e).unwrap();
        }
        core.poll(0);
        assert_eq!(core.counters().book_syncs, 1);
    }

    fn live_setup(
        ring: usize,
        ack_timeout_ns: u64,
    ) -> (
        Core<StepClock>,
        crate::ring::EventTx,
        rtrb::Consumer<OrderCommand>,
        std::sync::Arc<std::sync::Mutex<Recorder>>,
    ) {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let cfg = CoreConfig {
            ack_timeout_ns,
            max_open_orders: 2,
            ..Default::default()
        };
        let mut core = Core::new(
            &symbols,
            cfg,
            StepClock {
                t: Cell::new(1_000),
                step: 10,
            },
        );
        let (tx, rx) = event_ring(1024, OnFull::Drop);
        core.add_input(rx);
        let (otx, orx) = rtrb::RingBuffer::new(ring);
        core.set_order_sink(otx);
        let rec = std::sync::Arc::new(std::sync::Mutex::new(Recorder {
            answer_trades: true,
            ..Default::default()
        }));
        core.set_strategy(SymbolId(0), Box::new(Shared(rec.clone())))
            .unwrap();
        (core, tx, orx, rec)
    }

    fn kinds(rec: &std::sync::Arc<std::sync::Mutex<Recorder>>) -> Vec<OrderUpdateKind> {
        rec.lock().unwrap().updates.iter().map(|u| u.kind).collect()
    }

    #[test]
    fn live_orders_go_to_the_order_ring_and_a_full_ring_or_table_is_a_visible_refusal() {
        let (mut core, mut tx, mut orx, rec) = live_setup(1, u64::MAX);
        tx.push(trade(900, 1, 1, 101, 50)).unwrap(); // order 1: into the ring
        tx.push(trade(900, 1, 2, 101, 50)).unwrap(); // order 2: the ring (capacity 1) is full
        core.poll(0);
        assert!(matches!(orx.pop(), Ok(OrderCommand::New { .. })));
        assert_eq!(core.counters().order_ring_full, 1);
        assert_eq!(
            kinds(&rec),
            vec![OrderUpdateKind::Rejected(RejectReason::QueueFull)]
        );
        // Order 3 fills the table (max 2 open: order 1 and 3); order 4 is refused.
        tx.push(trade(900, 1, 3, 101, 50)).unwrap();
        core.poll(0);
        assert!(orx.pop().is_ok());
        tx.push(trade(900, 1, 4, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(
            kinds(&rec).last(),
            Some(&OrderUpdateKind::Rejected(RejectReason::TooManyOrders))
        );
        assert_eq!(core.open_orders(), 2);
    }

    #[test]
    fn a_silent_venue_is_a_timeout_not_a_rejection_and_fills_are_applied_once() {
        let (mut core, mut tx, mut orx, rec) = live_setup(16, 1_000);
        tx.push(trade(900, 1, 1, 101, 50)).unwrap();
        core.poll(0);
        let Ok(OrderCommand::New { client_id, .. }) = orx.pop() else {
            panic!("no order sent");
        };
        rec.lock().unwrap().answer_trades = false;
        // The clock moves 10 ns a read: after ~100 reads the order is past its 1 us timeout.
        for _ in 0..200 {
            core.poll(0);
        }
        assert_eq!(core.counters().order_timeouts, 1, "reported once");
        assert_eq!(kinds(&rec), vec![OrderUpdateKind::TimedOut]);
        assert_eq!(core.open_orders(), 1, "still in flight");
        // The venue answers after all: ack, then the same fill twice (a replay after reconnect).
        let fill = |n| {
            MarketEvent::new(
                n,
                SymbolId(0),
                EventKind::Fill(crate::event::Fill {
                    client_id,
                    trade_id: 77,
                    price: Price(101),
                    qty: Qty(100),
                    fee: 0,
                }),
            )
        };
        tx.push(MarketEvent::new(
            1,
            SymbolId(0),
            EventKind::OrderAck(crate::event::OrderAck {
                client_id,
                venue_order_id: 5,
            }),
        ))
        .unwrap();
        tx.push(fill(2)).unwrap();
        tx.push(fill(3)).unwrap();
        core.poll(0);
        let c = core.counters();
        assert_eq!((c.acks, c.fills, c.duplicate_fills), (1, 1, 1));
        assert_eq!(core.position(SymbolId(0)).unwrap().qty, 100, "applied once");
        assert_eq!(core.open_orders(), 0);
    }

    #[test]
    fn risk_denials_reach_the_strategy_and_the_kill_switch_cancels_and_halts() {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let limits = RiskLimits {
            max_order_qty: Qty(150),
            rate_per_sec: 1_000_000,
            burst: 1_000,
            ..RiskLimits::default()
        };
        let cfg = CoreConfig {
            risk: Some(limits),
            paper: PaperConfig {
                latency_ns: 1_000_000_000,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut core = Core::new(
            &symbols,
            cfg,
            StepClock {
                t: Cell::new(1_000),
                step: 10,
            },
        );
        let (mut tx, rx) = event_ring(1024, OnFull::Drop);
        core.add_input(rx);
        let rec = std::sync::Arc::new(std::sync::Mutex::new(Recorder {
            answer_trades: true,
            ..Default::default()
        }));
        core.set_strategy(SymbolId(0), Box::new(Shared(rec.clone())))
            .unwrap();
        // The recorder strategy buys 100 per trade: passes (max 150).
        tx.push(trade(900, 1, 1, 101, 50)).unwrap();
        tx.push(trade(900, 1, 2, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(core.open_orders(), 2, "both pass the per-order limit");
        assert_eq!(core.counters().orders_denied, 0);
        // HALTED: the next order is refused with the reason, and counted.
        core.set_trading_state(TradingState::Halted);
        tx.push(trade(900, 1, 3, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(core.counters().orders_denied, 1);
        assert_eq!(core.counters().orders_sent, 2, "a denied order is not sent");
        assert_eq!(
            kinds(&rec).last(),
            Some(&OrderUpdateKind::Rejected(RejectReason::Risk(
                crate::risk::DenyReason::Halted
            )))
        );
        // Kill switch: cancels both open orders (the paper venue answers after its latency).
        core.set_trading_state(TradingState::Active);
        assert_eq!(core.kill(), 2);
        assert!(core.risk().unwrap().is_killed());
        tx.push(trade(900, 3_000, 4, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(core.counters().canceled, 2, "{:?}", core.counters());
        assert_eq!(core.open_orders(), 0);
        assert_eq!(
            core.counters().orders_denied,
            2,
            "the trade's order was refused: killed"
        );
        core.resume_trading();
        tx.push(trade(900, 3_001, 5, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(core.open_orders(), 1, "trading again after resume");
    }

    /// The order table is what the config sizes, no more and no less: the order past it is
    /// refused `TooManyOrders` (counted a reject, not sent, not a risk denial).
    #[test]
    fn order_table_follows_max_open_orders() {
        for table in [3usize, 1500] {
            let mut symbols = SymbolTable::new();
            symbols.intern("BTCUSDT").unwrap();
            let cfg = CoreConfig {
                max_open_orders: table,
                paper: PaperConfig {
                    latency_ns: 1_000_000_000, // nothing answers during the test
                    max_orders: 4096,
                    ..Default::default()
                },
                ..Default::default()
            };
            let mut core = Core::new(
                &symbols,
                cfg,
                StepClock {
                    t: Cell::new(0),
                    step: 1,
                },
            );
            assert_eq!(core.order_capacity(), table);
            let (mut tx, rx) = event_ring(4096, OnFull::Drop);
            core.add_input(rx);
            let rec = std::sync::Arc::new(std::sync::Mutex::new(Recorder {
                answer_trades: true,
                ..Default::default()
            }));
            core.set_strategy(SymbolId(0), Box::new(Shared(rec.clone())))
                .unwrap();
            for id in 0..table as u64 + 1 {
                tx.push(trade(900, 1, id + 1, 101, 50)).unwrap();
                core.poll(0);
            }
            let c = *core.counters();
            assert_eq!(core.open_orders(), table, "{c:?}");
            assert_eq!(
                (c.orders_sent, c.orders_denied, c.rejects),
                (table as u64, 0, 1)
            );
            assert_eq!(
                kinds(&rec).last(),
                Some(&OrderUpdateKind::Rejected(RejectReason::TooManyOrders))
            );
        }
    }

    /// Without a depth feed (a trade-only config), no book asks for a snapshot: not at connect,
    /// not after lost data; `start-trading`-style re-enabling brings it back.
    #[test]
    fn no_depth_feed_asks_for_no_snapshot() {
        let (mut core, mut tx, _rec) = setup(0);
        let (rtx, mut rrx) = rtrb::RingBuffer::new(8);
        core.set_resync_sink(rtx);
        core.set_depth_feed(SymbolId(0), false);
        let conn = |up: bool| {
            let c = Connection { conn_id: 1 };
            let kind = if up {
                EventKind::ConnectionUp(c)
            } else {
                EventKind::ConnectionDown(c)
            };
            MarketEvent::new(1, SymbolId::ALL, kind)
        };
        tx.push(conn(true)).unwrap();
        tx.push(conn(false)).unwrap();
        tx.push(MarketEvent::new(
            1,
            SymbolId::ALL,
            EventKind::Gap(Gap {
                lost: 1,
                reason: GapReason::RingFull,
            }),
        ))
        .unwrap();
        tx.push(conn(true)).unwrap();
        core.poll(0);
        assert!(rrx.pop().is_err());
        assert_eq!(core.counters().resync_requests, 0);
        core.set_depth_feed(SymbolId(0), true);
        tx.push(conn(true)).unwrap();
        tx.push(depth_level(SymbolId(0), 5)).unwrap();
        core.poll(0);
        assert_eq!(rrx.pop(), Ok(SymbolId(0)));
    }

    #[test]
    fn recent_fills_remember_across_generations() {
        let mut r = RecentFills::new();
        let (a, b) = (ClientOrderId(1), ClientOrderId(2));
        assert!(!r.seen_or_insert(a, 1));
        assert!(r.seen_or_insert(a, 1));
        assert!(
            !r.seen_or_insert(b, 1),
            "the other side of the same venue trade is a fill too"
        );
        for id in 2..(RecentFills::SLOTS as u64 / 2 + 10) {
            r.seen_or_insert(a, id);
        }
        // (a, 1) moved to the previous generation and is still known...
        assert!(r.seen_or_insert(a, 1));
        // ...until a whole further generation has gone by: memory is bounded.
        for id in 10_000..(10_000 + RecentFills::SLOTS as u64) {
            r.seen_or_insert(a, id);
        }
        assert!(!r.seen_or_insert(a, 1));
    }

    #[test]
    fn unknown_symbols_and_order_ids_are_counted() {
        let (mut core, mut tx, _rec) = setup(0);
        let mut t = trade(1, 1, 1, 1, 1);
        t.symbol = SymbolId(9);
        tx.push(t).unwrap();
        tx.push(MarketEvent::new(
            1,
            SymbolId(0),
            EventKind::OrderCanceled(crate::event::OrderCanceled {
                client_id: ClientOrderId(999),
                leaves_qty: Qty(1),
            }),
        ))
        .unwrap();
        core.poll(0);
        assert_eq!(core.counters().unknown_symbol, 1);
        assert_eq!(core.counters().unknown_order_events, 1);
    }

    #[test]
    fn finished_inputs_are_detected() {
        let (mut core, tx, _rec) = setup(0);
        assert!(!core.inputs_finished());
        drop(tx);
        core.poll(0);
        assert!(core.inputs_finished());
    }

    #[test]
    fn a_flood_of_control_commands_is_taken_at_most_16_a_millisecond() {
        use crate::control::{Command, Request};
        let (mut core, _tx, _rec) = setup(0);
        let (ctl, rx) = crossbeam_channel::unbounded();
        core.set_control(rx);
        let mut replies = Vec::new();
        for _ in 0..100 {
            let (reply, answer) = crossbeam_channel::bounded(1);
            ctl.send(Request {
                command: Command::Status,
                reply,
            })
            .unwrap();
            replies.push(answer);
        }
        core.poll(1_000);
        assert_eq!(core.counters().control_commands, 16);
        // Polls within the same millisecond take none: the market is never held up by them.
        for _ in 0..1_000 {
            core.poll(2_000);
        }
        assert_eq!(core.counters().control_commands, 16);
        core.clock.t.set(core.clock.t.get() + 1_000_000);
        core.poll(3_000);
        assert_eq!(core.counters().control_commands, 32);
        assert_eq!(replies.iter().filter(|r| r.try_recv().is_ok()).count(), 32);
    }
}
