//! The core loop: drain the rings, keep the books, run the strategies, route their orders.
//!
//! [`Core::poll`] is called in a loop by the core thread (see `tools`). Each call drains every
//! inbound ring in batches, dispatches each event (book, paper venue, portfolio, strategy), runs
//! the timers due at `now`, and returns how many events it handled, so the caller's
//! [`crate::idle::Idler`] can spin, yield or back off. It does no I/O and reads no clock of its
//! own: `now` is an argument, and stage latencies are stamped through the [`Clock`] it is given.
//!
//! Everything is sized in [`CoreBuilder::build`]; dispatching an event allocates nothing.
//!
//! **How the files fit.** The core is one [`Core`] (the inbound rings, the clock) around one
//! private `State` (everything else), so a ring's batch can be read while the state changes;
//! each sibling module adds one job's methods to `State`:
//! - `mod.rs` (this file): [`Core`], [`CoreBuilder`] (sizes, clock, and the optional sinks: the
//!   order ring, the resync ring, the control channel), [`Core::poll`], and the core's public
//!   API (metrics hand-off, restore at start-up, accessors).
//! - `dispatch.rs`: one event to the book, paper venue, portfolio and the strategies routed to
//!   it; the one place a strategy's context is built; timers; resync requests.
//! - `orders.rs`: the order manager: the in-flight table, risk on new orders, routing to the
//!   order ring or the paper venue, answers joined back to their orders, the ack timeout.
//! - `command.rs`: control commands (start/stop trading, parameters, halt, resume, kill,
//!   status), about once a millisecond.
//! - `frames.rs`: an asap replay's clock, set from each frame's capture time as the core
//!   reaches the frame's events ([`Core::set_frame_times`]).

mod command;
mod dispatch;
mod frames;
mod orders;

pub use frames::FrameTime;

use crate::book::{BookConfig, BookStats, OrderBook};
use crate::control::Request;
use crate::event::{BookTicker, ClientOrderId, Event, OrderCommand, OrderRequest, Trade};
use crate::fixed::Qty;
use crate::latency::{Stage, StageLatency};
use crate::metrics::{
    CoreCounters, LoopStats, MetricsSnapshot, SlowCallback, SymbolGauges, SLOW_REPORTS_PER_INTERVAL,
};
use crate::paper::{PaperConfig, PaperExchange};
use crate::portfolio::Position;
use crate::risk::{Risk, RiskLimits, TradingState};
use crate::strategy::{Outbox, Strategy, SymbolRules, TimerQueue};
use crate::symbol::{SymbolId, SymbolTable};
use orders::{OrderEntry, OrderState, RecentFills};
use rtrb::{Consumer, Producer};

/// The engine's monotonic clock, in ns; injected so tests can drive time by hand.
pub trait Clock {
    /// Now, ns.
    fn now_ns(&self) -> u64;

    /// A reading for timing a short span on this thread (a strategy callback): by default the
    /// clock itself. A clock with a cheaper counter (the CPU's time-stamp counter) overrides
    /// this and [`Clock::span_ns`] together; only differences of two readings mean anything.
    #[inline]
    fn ticks(&self) -> u64 {
        self.now_ns()
    }

    /// The ns between two [`Clock::ticks`] readings.
    #[inline]
    fn span_ns(&self, from: u64, to: u64) -> u64 {
        to.saturating_sub(from)
    }
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
    /// [`CoreBuilder::build`] and never grown (an order beyond it is refused `TooManyOrders`).
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

/// A callback the core makes after pushing into a ring whose consumer may be asleep (the order
/// ring's I/O thread, the resync ring's snapshot thread).
struct Notify(Box<dyn FnMut() + Send>);

impl core::fmt::Debug for Notify {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Notify")
    }
}

/// Everything but the rings, so a ring's batch can be read while the state is mutated.
#[derive(Debug)]
struct State {
    symbols: Vec<SymbolSlot>,
    paper: PaperExchange,
    /// Order events made inside the core, waiting to be handled: the paper venue's acks,
    /// fills and cancels, and the core's own refusals (pre-trade risk, a full order table or
    /// order ring) in live runs too.
    order_updates_out: Vec<Event>,
    orders: Vec<OrderEntry>,
    max_open_orders: usize,
    outbox: Outbox,
    timers: TimerQueue,
    next_order_no: u64,
    market_ns: u64,
    now_ns: u64,
    counters: CoreCounters,
    latency: StageLatency,
    resync_sink: Option<Producer<SymbolId>>,
    resync_notify: Option<Notify>,
    resync_pending: Vec<bool>,
    /// The market feed went down and has not come back: REST snapshots asked for before are
    /// dropped (they would show a book the strategies cannot see move).
    feed_down: [bool; crate::venue::Venue::COUNT],
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
    order_sink: Option<Producer<OrderCommand>>,
    order_notify: Option<Notify>,
    control: Option<crossbeam_channel::Receiver<Request>>,
    next_control_ns: u64,
    names: Vec<(crate::venue::Venue, String)>,
    routes: crate::route::Routes,
    risk: Option<Risk>,
    ack_timeout_ns: u64,
    next_timeout_check_ns: u64,
    recent_fills: RecentFills,
}

/// Builds a [`Core`]: its symbols, sizes ([`CoreConfig`]) and clock, and where its outputs go.
/// Every sink is optional; without one the core does what a replay or paper run needs:
///
/// | sink | given | not given |
/// |---|---|---|
/// | [`order_sink`](Self::order_sink) | orders and cancels go to a venue's order session | they go to the paper venue |
/// | [`order_notify`](Self::order_notify) | called after every command pushed to the order ring | nothing is called |
/// | [`resync_sink`](Self::resync_sink) | books ask it for REST snapshots | resync requests are only counted |
/// | [`resync_notify`](Self::resync_notify) | called after every request pushed to the resync ring | nothing is called |
/// | [`control`](Self::control) | runtime commands are taken from it | no runtime command arrives |
///
/// ```
/// use engine::core::{Clock, CoreBuilder, CoreConfig};
/// use engine::symbol::SymbolTable;
///
/// struct Zero;
/// impl Clock for Zero {
///     fn now_ns(&self) -> u64 {
///         0
///     }
/// }
///
/// let mut symbols = SymbolTable::new();
/// symbols.intern("BTCUSDT").unwrap();
/// let (order_tx, _order_rx) = rtrb::RingBuffer::new(64);
/// let (resync_tx, _resync_rx) = rtrb::RingBuffer::new(16);
/// let core = CoreBuilder::new(&symbols, CoreConfig::default(), Zero)
///     .order_sink(order_tx)
///     .resync_sink(resync_tx)
///     .build();
/// assert_eq!(core.open_orders(), 0);
/// ```
pub struct CoreBuilder<'a, C: Clock> {
    symbols: &'a SymbolTable,
    cfg: CoreConfig,
    clock: C,
    resync_sink: Option<Producer<SymbolId>>,
    resync_notify: Option<Box<dyn FnMut() + Send>>,
    order_sink: Option<Producer<OrderCommand>>,
    order_notify: Option<Box<dyn FnMut() + Send>>,
    control: Option<crossbeam_channel::Receiver<Request>>,
}

impl<C: Clock> core::fmt::Debug for CoreBuilder<'_, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CoreBuilder")
            .field("symbols", &self.symbols.len())
            .field("cfg", &self.cfg)
            .field("resync_sink", &self.resync_sink.is_some())
            .field("resync_notify", &self.resync_notify.is_some())
            .field("order_sink", &self.order_sink.is_some())
            .field("order_notify", &self.order_notify.is_some())
            .field("control", &self.control.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, C: Clock> CoreBuilder<'a, C> {
    /// A core for every symbol in `symbols`, sized by `cfg`, stamping latencies with `clock`;
    /// no sink yet.
    pub fn new(symbols: &'a SymbolTable, cfg: CoreConfig, clock: C) -> Self {
        CoreBuilder {
            symbols,
            cfg,
            clock,
            resync_sink: None,
            resync_notify: None,
            order_sink: None,
            order_notify: None,
            control: None,
        }
    }

    /// Where the core sends resync requests: the symbol of every book that needs a fresh REST
    /// snapshot (after a gap, a crossed book, a rejected snapshot, lost data, or a reconnect).
    /// A full ring drops the request and counts it (`resync_requests_dropped`); the book stays
    /// stale and the next trigger asks again.
    pub fn resync_sink(mut self, tx: Producer<SymbolId>) -> Self {
        self.resync_sink = Some(tx);
        self
    }

    /// Called right after every request pushed into the resync ring, so the snapshot thread
    /// can sleep until there is one (a resync is rare: a gap, a reconnect, a rejected
    /// snapshot, never per event).
    pub fn resync_notify(mut self, notify: impl FnMut() + Send + 'static) -> Self {
        self.resync_notify = Some(Box::new(notify));
        self
    }

    /// Sends orders and cancels to a venue through this ring (the I/O thread that owns the order
    /// session consumes it) instead of the paper venue. Acks, rejects, fills and cancels then
    /// come back as events on an inbound ring. Supervisors then hand their traders' states to
    /// the order ring too (whoever owns the order session owns the journal).
    pub fn order_sink(mut self, tx: Producer<OrderCommand>) -> Self {
        self.order_sink = Some(tx);
        self
    }

    /// Called right after every command pushed into the order ring, so an I/O thread parked in
    /// `epoll_wait` can be woken (it should cost next to nothing while that thread is spinning:
    /// see `feeds::orders::session::OrderWake`).
    pub fn order_notify(mut self, notify: impl FnMut() + Send + 'static) -> Self {
        self.order_notify = Some(Box::new(notify));
        self
    }

    /// Takes runtime commands from `rx` (a control socket's thread): checked about once a
    /// millisecond in [`Core::poll`], each answered on its request's reply channel.
    pub fn control(mut self, rx: crossbeam_channel::Receiver<Request>) -> Self {
        self.control = Some(rx);
        self
    }

    /// Builds the core, with all memory allocated now.
    pub fn build(self) -> Core<C> {
        let CoreBuilder {
            symbols,
            cfg,
            clock,
            resync_sink,
            resync_notify,
            order_sink,
            order_notify,
            control,
        } = self;
        // Sets the span counter up now (a time-stamp counter calibrates once per process),
        // not in the first timed callback.
        core::hint::black_box(clock.ticks());
        let slots = (0..symbols.len())
            .map(|i| SymbolSlot {
                book: OrderBook::new(cfg.book).with_snapshots_in_stream(
                    symbols
                        .venue(SymbolId(i as u32))
                        .is_some_and(|v| v.snapshots_in_stream()),
                ),
                bbo: None,
                last_trade: None,
                position: Position::default(),
                rules: SymbolRules::default(),
                strategy: None,
                channels: Vec::new(),
            })
            .collect();
        let mut core = Core {
            inputs: Vec::new(),
            frames: None,
            clock,
            batch: cfg.batch.max(1),
            st: State {
                symbols: slots,
                paper: PaperExchange::new(cfg.paper),
                order_updates_out: Vec::with_capacity(cfg.paper.max_orders.max(16) * 4),
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
                resync_sink,
                resync_notify: resync_notify.map(Notify),
                resync_pending: vec![false; symbols.len()],
                feed_down: [false; crate::venue::Venue::COUNT],
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
                order_sink,
                order_notify: order_notify.map(Notify),
                control,
                next_control_ns: 0,
                names: symbols
                    .iter_venues()
                    .map(|(_, v, n)| (v, n.to_string()))
                    .collect(),
                routes: crate::route::Routes::new(symbols.len()),
                risk: cfg.risk.map(|l| Risk::new(symbols.len(), l)),
                ack_timeout_ns: cfg.ack_timeout_ns,
                next_timeout_check_ns: 0,
                recent_fills: RecentFills::new(),
            },
        };
        // Whoever owns the order session owns the journal: supervisors hand it their states.
        core.st.outbox.journal_states = core.st.order_sink.is_some();
        core
    }
}

/// The trading core. Generic over the clock used for latency stamps.
pub struct Core<C: Clock> {
    inputs: Vec<Consumer<Event>>,
    clock: C,
    batch: usize,
    st: State,
    /// An asap replay's frame times for input 0 ([`Core::set_frame_times`]).
    frames: Option<frames::FrameClock>,
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
    /// A core for every symbol in `symbols`, with all memory allocated now, and no sink (paper
    /// orders, resyncs only counted, no control channel): [`CoreBuilder`] adds them.
    pub fn new(symbols: &SymbolTable, cfg: CoreConfig, clock: C) -> Self {
        CoreBuilder::new(symbols, cfg, clock).build()
    }

    /// Adds an inbound ring (the consumer end of [`crate::ring::event_ring`]).
    pub fn add_input(&mut self, rx: Consumer<Event>) {
        self.inputs.push(rx);
    }

    /// Runs the core's clock on the frame times its first input's producer sends beside the
    /// events (an asap replay; see `frames.rs`): from now on `now` passed to [`Core::poll`] is
    /// not used as the clock. The clock reads `start_ns` until the first frame time is reached,
    /// then each frame's time from its first event on, and the timers due by a frame's time
    /// run before its events.
    pub fn set_frame_times(&mut self, times: Consumer<FrameTime>, start_ns: u64) {
        self.frames = Some(frames::FrameClock::new(times));
        self.st.now_ns = start_ns;
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

    /// Puts back a trader's state recovered from the journal; false if `symbol` has no strategy
    /// or it has no such trader.
    pub fn restore_trader(&mut self, symbol: SymbolId, trader: u16, state: &[u8]) -> bool {
        self.st
            .symbols
            .get_mut(symbol.index())
            .and_then(|s| s.strategy.as_mut())
            .is_some_and(|s| s.restore_trader(trader, state))
    }

    /// Continues the engine-namespace order numbering at `next` (at start-up: the first number
    /// of this start's epoch, past everything the journal recorded; see
    /// [`ClientOrderId`]). Lower values are ignored. The order session raises it later with an
    /// [`crate::event::EventKind::OrderIdFloor`] when the venue knows ids at or beyond it.
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

    /// Maps every page of every buffer the core will write (books, order tables, the outbox,
    /// timers, the paper venue, the latency histograms; see [`crate::prefault`]), so the run's
    /// first laps take no page faults. Call it on the core's thread before the clock starts:
    /// it takes milliseconds (it writes each histogram bucket). Nothing visible changes, except
    /// that recorded latencies are forgotten.
    #[cold]
    pub fn prefault(&mut self) {
        let st = &mut self.st;
        for s in &mut st.symbols {
            s.book.prefault();
        }
        st.paper.prefault();
        crate::prefault::vec_spare(&mut st.order_updates_out);
        crate::prefault::vec_spare(&mut st.orders);
        crate::prefault::vec_spare(&mut st.slow_recent);
        st.outbox.prefault();
        st.timers.prefault();
        st.recent_fills.prefault();
        st.latency.reset();
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
        if self.frames.is_none() {
            self.st.now_ns = now;
        }
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
            // The events of one frame share a receive stamp, so their queue waits are equal:
            // each run of equal stamps is one histogram record of `n` samples.
            let mut run = (0u64, 0u64);
            let mut frames = self.frames.as_mut().filter(|_| i == 0);
            for ev in a.iter().chain(b.iter()) {
                if let Some(f) = frames.as_deref_mut() {
                    if let Some(at) = f.reach(f.seq) {
                        self.st.frame_reached(at, &self.clock);
                    }
                    f.seq += 1;
                }
                if ev.recv_ns != run.0 {
                    self.st.record_queue_wait(dequeued, run);
                    run = (ev.recv_ns, 0);
                }
                run.1 += 1;
                self.st.handle(ev, &self.clock);
            }
            self.st.record_queue_wait(dequeued, run);
            chunk.commit_all();
            handled += avail;
        }
        let timers_at = match self.frames {
            Some(_) => self.st.now_ns,
            None => now,
        };
        self.st.run_timers(timers_at, &self.clock);
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

    /// The clock reading the last [`Core::poll`] took before it touched a ring.
    #[inline]
    pub fn last_poll_start_ns(&self) -> u64 {
        self.st.last_poll_ns
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

    /// For a readiness check, the book of the symbol with table index `index`: `None` when it
    /// is not expected to sync (no strategy trades it, or no depth diffs feed it: a trade-only or
    /// `bookTicker` config, a symbol idle until `start-trading`), else whether it is synced.
    pub fn book_ready(&self, index: usize) -> Option<bool> {
        let s = self.st.symbols.get(index)?;
        let fed = self.st.depth_fed.get(index).copied().unwrap_or(false);
        (s.strategy.is_some() && fed).then(|| s.book.is_synced())
    }

    /// `symbol`'s position.
    pub fn position(&self, symbol: SymbolId) -> Option<&Position> {
        self.st.symbols.get(symbol.index()).map(|s| &s.position)
    }

    /// Book counters summed over all symbols.
    pub fn book_stats(&self) -> BookStats {
        let mut t = BookStats::default();
        for s in &self.st.symbols {
            t.add(&s.book.stats());
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
    /// Copies the supervisors' counts (kept in the outbox strategies write to) into the counters.
    fn sync_supervision_counters(&mut self) {
        self.counters.trader_restarts = self.outbox.trader_restarts;
        self.counters.symbol_halts = self.outbox.symbol_halts;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Connection, EventKind, Gap, GapReason, OrderType, RejectReason, Side};
    use crate::fixed::Price;
    use crate::ring::{event_ring, OnFull};
    use crate::strategy::{Ctx, OrderUpdate, OrderUpdateKind};
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

    fn trade(recv: u64, exch_ms: u64, id: u64, px: i64, qty: i64) -> Event {
        Event::new(
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

    fn ticker(recv: u64, bid: i64, ask: i64) -> Event {
        Event::new(
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
    fn depth_level(symbol: SymbolId, id: u64) -> Event {
        Event::new(
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
        setup_with(latency_ns, |b| b)
    }

    /// [`setup`], with sinks added to the builder by `sinks`.
    fn setup_with(
        latency_ns: u64,
        sinks: impl FnOnce(CoreBuilder<'_, StepClock>) -> CoreBuilder<'_, StepClock>,
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
        let mut core = sinks(CoreBuilder::new(
            &symbols,
            cfg,
            StepClock {
                t: Cell::new(1_000),
                step: 10,
            },
        ))
        .build();
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
        // Clock reads, 10 ns apart from 1000: the builder's (it sets the span counter up)
        // 1000, poll start (= dequeue of the first ring) 1010, strategy 1020 and 1030, the
        // order's stamp 1040; the next poll starts at 1050.
        let q = core.latency().get(Stage::QueueWait).percentiles();
        assert_eq!((q.count, q.max), (1, 110));
        let s = core.latency().get(Stage::Strategy).percentiles();
        assert_eq!((s.count, s.max), (1, 10));
        let t = core.latency().get(Stage::TickToOrder).percentiles();
        assert_eq!((t.count, t.max), (1, 140));
        assert!(
            core.latency().get(Stage::LoopIteration).is_empty(),
            "known at the next poll"
        );
        core.poll(0);
        let l = core.latency().get(Stage::LoopIteration).percentiles();
        assert_eq!((l.count, l.max), (1, 40));
        // No wall-clock offset set (a replay): no cross-clock feed latency.
        assert!(core.latency().get(Stage::FeedLatency).is_empty());
    }

    #[test]
    fn a_strategy_that_names_its_kinds_is_called_and_timed_for_those_only() {
        #[derive(Default)]
        struct TradesOnly {
            calls: std::sync::Arc<std::sync::atomic::AtomicU64>,
        }
        impl Strategy for TradesOnly {
            fn name(&self) -> &'static str {
                "trades-only"
            }
            fn channels(&self) -> Vec<String> {
                vec!["trade".into()]
            }
            fn on_trade(&mut self, _ctx: &mut Ctx<'_>, _t: &Trade) {
                self.calls
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            fn on_book_ticker(&mut self, _ctx: &mut Ctx<'_>, _b: &BookTicker) {
                self.calls
                    .fetch_add(1_000, std::sync::atomic::Ordering::Relaxed);
            }
        }
        // The default (no channels declared): a ticker and a trade are two timed callbacks.
        let (mut core, mut tx, _rec) = setup(0);
        tx.push(ticker(900, 100, 101)).unwrap();
        tx.push(trade(900, 1, 1, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(core.latency().get(Stage::Strategy).len(), 2);
        // `["trade"]`: the ticker still reaches the market view, but not the strategy.
        let (mut core, mut tx, _rec) = setup(0);
        let s = TradesOnly::default();
        let calls = s.calls.clone();
        core.set_strategy(SymbolId(0), Box::new(s)).unwrap();
        tx.push(ticker(900, 100, 101)).unwrap();
        tx.push(trade(900, 1, 1, 101, 50)).unwrap();
        core.poll(0);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(core.latency().get(Stage::Strategy).len(), 1);
        assert_eq!(core.counters().book_tickers, 1);
    }

    #[test]
    fn queue_wait_counts_every_event_of_a_run_of_equal_stamps() {
        let (mut core, mut tx, _rec) = setup(0);
        // Two frames' events (stamps 900 and 990), the first frame's stamp again after them,
        // and one event stamped 0: all dequeued by one poll whose clock reads 1010.
        for (i, recv) in [900, 900, 990, 990, 990, 900, 0].into_iter().enumerate() {
            tx.push(trade(recv, 1, i as u64 + 1, 101, 50)).unwrap();
        }
        core.poll(0);
        let h = core.latency().get(Stage::QueueWait);
        let q = h.percentiles();
        assert_eq!(q.count, 7, "one sample per event");
        assert_eq!(core.counters().events, 7);
        assert_eq!(q.max, 1010);
        // Three waits of 20 ns, three of 110 ns, one of 1010 ns.
        assert_eq!(q.p50, 110);
        assert_eq!(h.histogram().count_between(0, 20), 3);
        assert_eq!(h.histogram().count_between(21, 110), 3);
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
        let gap = Event::new(
            1,
            SymbolId::ALL,
            EventKind::Gap(Gap {
                lost: 7,
                reason: GapReason::RingFull,
            }),
        );
        tx.push(gap).unwrap();
        tx.push(Event::new(
            2,
            SymbolId::ALL,
            EventKind::ConnectionDown(Connection {
                conn_id: 1,
                venue: None,
            }),
        ))
        .unwrap();
        tx.push(Event::new(
            3,
            SymbolId::ALL,
            EventKind::ConnectionUp(Connection {
                conn_id: 1,
                venue: None,
            }),
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
            tx.push(Event::new(
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
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Arc;
        let (rtx, mut rrx) = rtrb::RingBuffer::new(8);
        let notified = Arc::new(AtomicU32::new(0));
        let n = notified.clone();
        let (mut core, mut tx, _rec) = setup_with(0, |b| {
            b.resync_sink(rtx).resync_notify(move || {
                n.fetch_add(1, Ordering::Relaxed);
            })
        });
        let notified = move || notified.load(Ordering::Relaxed);
        let up = Event::new(
            1,
            SymbolId::ALL,
            EventKind::ConnectionUp(Connection {
                conn_id: 1,
                venue: None,
            }),
        );
        let down = Event::new(
            1,
            SymbolId::ALL,
            EventKind::ConnectionDown(Connection {
                conn_id: 1,
                venue: None,
            }),
        );
        let gap = Event::new(
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
        assert_eq!(notified(), 0);
        tx.push(depth_level(SymbolId(0), 5)).unwrap();
        tx.push(depth_level(SymbolId(0), 6)).unwrap();
        core.poll(0);
        assert_eq!(rrx.pop(), Ok(SymbolId(0)));
        // The snapshot thread is woken once per request pushed.
        assert_eq!(notified(), 1);
        // Lost data while that request is out: none added, nobody woken.
        tx.push(gap).unwrap();
        core.poll(0);
        assert!(rrx.pop().is_err());
        assert_eq!(notified(), 1);
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
        assert_eq!(notified(), 2);
    }

    /// Regression (chaos drill): a snapshot asked for before a disconnect that arrives while
    /// the feed is down is dropped, not synced (a strategy would be handed a book from before
    /// the disconnect); the reconnect asks for a fresh one, which syncs.
    #[test]
    fn a_snapshot_arriving_while_the_feed_is_down_is_dropped() {
        let (rtx, mut rrx) = rtrb::RingBuffer::new(8);
        let (mut core, mut tx, _rec) = setup_with(0, |b| b.resync_sink(rtx));
        let conn = |up: bool| {
            let c = Connection {
                conn_id: 1,
                venue: None,
            };
            let kind = if up {
                EventKind::ConnectionUp(c)
            } else {
                EventKind::ConnectionDown(c)
            };
            Event::new(1, SymbolId::ALL, kind)
        };
        let snapshot = |id: u64| {
            let level = |side, price: i64, flags| {
                Event::new(
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
        let (otx, orx) = rtrb::RingBuffer::new(ring);
        let mut core = CoreBuilder::new(
            &symbols,
            cfg,
            StepClock {
                t: Cell::new(1_000),
                step: 10,
            },
        )
        .order_sink(otx)
        .build();
        let (tx, rx) = event_ring(1024, OnFull::Drop);
        core.add_input(rx);
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
            Event::new(
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
        tx.push(Event::new(
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
                crate::event::DenyReason::Halted
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
        let (rtx, mut rrx) = rtrb::RingBuffer::new(8);
        let (mut core, mut tx, _rec) = setup_with(0, |b| b.resync_sink(rtx));
        core.set_depth_feed(SymbolId(0), false);
        let conn = |up: bool| {
            let c = Connection {
                conn_id: 1,
                venue: None,
            };
            let kind = if up {
                EventKind::ConnectionUp(c)
            } else {
                EventKind::ConnectionDown(c)
            };
            Event::new(1, SymbolId::ALL, kind)
        };
        tx.push(conn(true)).unwrap();
        tx.push(conn(false)).unwrap();
        tx.push(Event::new(
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
    fn unknown_symbols_and_order_ids_are_counted() {
        let (mut core, mut tx, _rec) = setup(0);
        let mut t = trade(1, 1, 1, 1, 1);
        t.symbol = SymbolId(9);
        tx.push(t).unwrap();
        tx.push(Event::new(
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
        let (ctl, rx) = crossbeam_channel::unbounded();
        let (mut core, _tx, _rec) = setup_with(0, |b| b.control(rx));
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

    /// A strategy in the middle of the symbol list reads every market (before it, its own, after
    /// it) by id, finds symbols by venue and name, and knows the event's venue.
    #[test]
    fn a_strategy_reads_every_venue_s_market() {
        use crate::venue::Venue;
        #[derive(Default)]
        struct Seen(Vec<String>);
        struct Reader(std::sync::Arc<std::sync::Mutex<Seen>>);
        impl Strategy for Reader {
            fn name(&self) -> &'static str {
                "reader"
            }
            fn channels(&self) -> Vec<String> {
                vec!["trade.*.*".into()]
            }
            fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
                let mut seen = self.0.lock().unwrap();
                for id in 0..4 {
                    let m = ctx.market(SymbolId(id));
                    seen.0.push(match m {
                        Some(m) => format!(
                            "{}:{}:{}",
                            m.venue,
                            m.name,
                            m.last_trade.map_or(0, |t| t.trade_id)
                        ),
                        None => "none".into(),
                    });
                }
                let okx = ctx.find_symbol(Venue::Okx, "btc-usdt");
                seen.0.push(format!(
                    "event {:?} {:?} okx {:?} trade {}",
                    ctx.event_venue(),
                    ctx.event_symbol(),
                    okx,
                    t.trade_id
                ));
            }
        }
        let mut symbols = SymbolTable::new();
        let a = symbols.intern("BTCUSDT").unwrap();
        let b = symbols.intern_on(Venue::BinanceUsdm, "BTCUSDT").unwrap();
        let c = symbols.intern_on(Venue::Okx, "BTC-USDT").unwrap();
        let (mut core, mut tx) = stepped_core(&symbols);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::default()));
        core.set_strategy(b, Box::new(Reader(seen.clone())))
            .unwrap();
        for (sym, id) in [(a, 7), (c, 9), (b, 8)] {
            let t = Trade {
                exch_ns: 1,
                trade_id: id,
                price: Price(100),
                qty: crate::fixed::Qty(1),
                buyer_maker: false,
            };
            tx.push(Event::new(1, sym, EventKind::Trade(t))).unwrap();
        }
        core.poll(10);
        let seen = seen.lock().unwrap();
        // Three trades, each showing all three markets (as far as they traded yet) and no
        // fourth symbol.
        assert_eq!(
            seen.0,
            [
                "binance:BTCUSDT:7",
                "binance-usdm:BTCUSDT:0",
                "okx:BTC-USDT:0",
                "none",
                "event Some(Binance) SymbolId(0) okx Some(SymbolId(2)) trade 7",
                "binance:BTCUSDT:7",
                "binance-usdm:BTCUSDT:0",
                "okx:BTC-USDT:9",
                "none",
                "event Some(Okx) SymbolId(2) okx Some(SymbolId(2)) trade 9",
                "binance:BTCUSDT:7",
                "binance-usdm:BTCUSDT:8",
                "okx:BTC-USDT:9",
                "none",
                "event Some(BinanceUsdm) SymbolId(1) okx Some(SymbolId(2)) trade 8",
            ]
        );
    }

    /// A connection of one venue going down hides and resyncs only that venue's books; a
    /// connection event without a venue (a replay's session boundary) touches every book.
    /// A core over Binance spot's BTCUSDT and `other`'s `name`, its one input ring, and the two
    /// symbols.
    fn two_venues(
        other: crate::venue::Venue,
        name: &str,
    ) -> (Core<StepClock>, crate::ring::EventTx, SymbolId, SymbolId) {
        let mut symbols = SymbolTable::new();
        let spot = symbols.intern("BTCUSDT").unwrap();
        let second = symbols.intern_on(other, name).unwrap();
        let (core, tx) = stepped_core(&symbols);
        (core, tx, spot, second)
    }

    /// A core over `symbols` with default settings, a clock stepping 1 ns from 1, and one input
    /// ring of 64 events.
    fn stepped_core(symbols: &SymbolTable) -> (Core<StepClock>, crate::ring::EventTx) {
        let clock = StepClock {
            t: Cell::new(1),
            step: 1,
        };
        let mut core = Core::new(symbols, CoreConfig::default(), clock);
        let (tx, rx) = event_ring(64, OnFull::Drop);
        core.add_input(rx);
        (core, tx)
    }

    /// A two-level snapshot (bid 100, ask 101) of `sym` with id `id`.
    fn snapshot_of(sym: SymbolId, id: u64) -> [Event; 2] {
        use crate::event::{BookSide, LevelFlags, SnapshotLevel};
        [
            (BookSide::Bid, 100, LevelFlags::default()),
            (BookSide::Ask, 101, LevelFlags::LAST),
        ]
        .map(|(side, px, flags)| {
            Event::new(
                1,
                sym,
                EventKind::Snapshot(SnapshotLevel {
                    last_update_id: id,
                    price: Price(px),
                    qty: Qty(1),
                    side,
                    flags,
                }),
            )
        })
    }

    #[test]
    fn a_venue_s_disconnect_leaves_other_venues_books_alone() {
        use crate::venue::Venue;
        let (mut core, mut tx, spot, okx) = two_venues(Venue::Okx, "BTC-USDT");
        let conn = |venue, up| {
            let c = Connection { conn_id: 7, venue };
            let kind = if up {
                EventKind::ConnectionUp(c)
            } else {
                EventKind::ConnectionDown(c)
            };
            Event::new(1, SymbolId::ALL, kind)
        };
        for ev in snapshot_of(spot, 5).into_iter().chain(snapshot_of(okx, 9)) {
            tx.push(ev).unwrap();
        }
        core.poll(10);
        assert!(core.book(spot).unwrap().is_synced() && core.book(okx).unwrap().is_synced());
        // OKX's connection drops: its book is hidden, Binance's stays, and a snapshot that
        // arrives for OKX while it is down is dropped; Binance's are still applied.
        tx.push(conn(Some(Venue::Okx), false)).unwrap();
        core.poll(20);
        assert!(core.book(spot).unwrap().is_synced());
        assert!(!core.book(okx).unwrap().is_synced());
        for ev in snapshot_of(okx, 11).into_iter().chain(snapshot_of(spot, 6)) {
            tx.push(ev).unwrap();
        }
        core.poll(30);
        assert!(
            !core.book(okx).unwrap().is_synced(),
            "a snapshot while down is dropped"
        );
        assert_eq!(core.book(spot).unwrap().last_update_id(), 6);
        // Back up: OKX's next snapshot syncs it.
        tx.push(conn(Some(Venue::Okx), true)).unwrap();
        for ev in snapshot_of(okx, 12) {
            tx.push(ev).unwrap();
        }
        core.poll(40);
        assert!(core.book(okx).unwrap().is_synced());
        // A session boundary (no venue) hides every book.
        tx.push(conn(None, false)).unwrap();
        core.poll(50);
        assert!(!core.book(spot).unwrap().is_synced() && !core.book(okx).unwrap().is_synced());
    }

    /// The core builds each book for its symbol's venue: a Bybit book takes the `u = 1`
    /// snapshot of a service restart over its buffered, higher-numbered diffs; a Binance book
    /// in the same position rejects it (its REST snapshot must bridge the diffs by id).
    #[test]
    fn books_of_in_stream_snapshot_venues_take_a_restart_snapshot() {
        use crate::venue::Venue;
        let (mut core, mut tx, spot, bybit) = two_venues(Venue::BybitSpot, "BTCUSDT");
        for ev in snapshot_of(spot, 100)
            .into_iter()
            .chain(snapshot_of(bybit, 100))
        {
            tx.push(ev).unwrap();
        }
        // A diff after a lost one: both books go stale and buffer it.
        tx.push(depth_level(spot, 105)).unwrap();
        tx.push(depth_level(bybit, 105)).unwrap();
        core.poll(10);
        assert_eq!(core.counters().book_syncs, 2);
        assert!(!core.book(spot).unwrap().is_synced() && !core.book(bybit).unwrap().is_synced());
        for ev in snapshot_of(spot, 1)
            .into_iter()
            .chain(snapshot_of(bybit, 1))
        {
            tx.push(ev).unwrap();
        }
        core.poll(20);
        assert!(core.book(bybit).unwrap().is_synced());
        assert_eq!(core.book(bybit).unwrap().last_update_id(), 1);
        assert!(!core.book(spot).unwrap().is_synced());
        assert_eq!(core.counters().book_syncs, 3);
        assert_eq!(core.counters().snapshots_rejected, 1);
    }

    /// An asap replay's clock: each frame's events see that frame's time, not the `now` the
    /// poll was given (the feed's, far ahead), and a timer due between two frames fires after
    /// the first frame's events and before the second's.
    #[test]
    fn frame_times_clock_the_events_and_the_timers() {
        type Log = std::sync::Arc<std::sync::Mutex<Vec<(&'static str, u64, u64)>>>;
        struct Clocked(Log);
        impl Strategy for Clocked {
            fn name(&self) -> &'static str {
                "clocked"
            }
            fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
                self.0
                    .lock()
                    .unwrap()
                    .push(("trade", t.trade_id, ctx.now_ns()));
                if t.trade_id == 1 {
                    ctx.set_timer(ctx.now_ns() + 150, 7).unwrap();
                }
            }
            fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
                self.0.lock().unwrap().push(("timer", token, ctx.now_ns()));
            }
        }
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let (mut core, mut tx) = stepped_core(&symbols);
        let log = Log::default();
        core.set_strategy(SymbolId(0), Box::new(Clocked(log.clone())))
            .unwrap();
        let (mut ftx, frx) = rtrb::RingBuffer::new(8);
        core.set_frame_times(frx, 900);
        // Frames at 1000 (trades 1 and 2), 1100 (trade 3) and 1300 (trade 4).
        for (seq, at_ns) in [(0, 1000), (2, 1100), (3, 1300)] {
            ftx.push(FrameTime { seq, at_ns }).unwrap();
        }
        for id in 1..=4 {
            tx.push(trade(5, 1, id, 101, 50)).unwrap();
        }
        core.poll(99_999);
        assert_eq!(
            *log.lock().unwrap(),
            vec![
                ("trade", 1, 1000),
                ("trade", 2, 1000),
                ("trade", 3, 1100),
                ("timer", 7, 1300),
                ("trade", 4, 1300),
            ]
        );
        // No frame time arrives: the clock stays at the last frame's.
        core.poll(200_000);
        assert_eq!(core.counters().timers_fired, 1);
        assert_eq!(core.latency().get(Stage::TimerLag).percentiles().max, 150);
    }
}
