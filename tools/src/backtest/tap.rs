//! The tap: a wrapper around a symbol's strategy that copies what the report needs into an SPSC
//! ring on the core thread, and the collector thread that drains it.
//!
//! The wrapper ([`TapStrategy`]) forwards every callback to the strategy it wraps and then pushes
//! small `Copy` [`TapRecord`]s into a ring sized at start-up: every order the strategy submitted
//! in the callback (read back from the core's intent buffer), every order update it was told
//! about (with the position after it), and a position mark at most once per `mark_every_ns` of
//! exchange time. A push is a copy into the ring, no allocation, no lock, no syscall; a full ring
//! drops the record and counts it (the report says how many, and the run is then flagged), it
//! never blocks the core. The [`Collector`] thread drains the rings every millisecond into one
//! buffer reserved before the run, and counts the few allocations it makes if that buffer must
//! grow, so the run's allocation figure can leave them out.

use crate::alloc::thread_allocations;
use engine::event::{ClientOrderId, OrderRequest};
use engine::fixed::Price;
use engine::portfolio::Position;
use engine::status::LeaderStatus;
use engine::strategy::{Ctx, Intent, OrderUpdate, ParamError, Params, Strategy};
use engine::symbol::SymbolId;
use rtrb::{Consumer, Producer, RingBuffer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The position fields the report needs, as the core held them when the record was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PosSnap {
    /// Signed quantity, 1e-8 base units.
    pub qty: i64,
    /// Average entry price.
    pub avg_price: Price,
    /// Last trade price (the mark).
    pub mark: Price,
    /// Realised PnL before fees, 1e-8 quote units.
    pub realized: i128,
    /// Fees paid, 1e-8 quote units.
    pub fees: i128,
}

impl PosSnap {
    /// The snapshot of `p`.
    pub fn of(p: &Position) -> PosSnap {
        PosSnap {
            qty: p.qty,
            avg_price: p.avg_price,
            mark: p.mark,
            realized: p.realized,
            fees: p.fees,
        }
    }

    /// Unrealised PnL at the mark, 1e-8 quote units (as [`Position::unrealized`]).
    pub fn unrealized(&self) -> i128 {
        Position {
            qty: self.qty,
            avg_price: self.avg_price,
            mark: self.mark,
            ..Position::default()
        }
        .unrealized()
    }
}

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapKind {
    /// The strategy submitted this order.
    Submit(ClientOrderId, OrderRequest),
    /// The strategy was told this about one of its orders.
    Update(OrderUpdate),
    /// The position, sampled.
    Mark,
}

/// One record of the tap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapRecord {
    /// The newest exchange time the core had seen (venue clock, ns): the exchange time of the
    /// event being handled.
    pub exch_ns: u64,
    /// The core's time when it happened (in a replay the replay clock: capture receive time).
    pub recv_ns: u64,
    /// The strategy's symbol.
    pub symbol: SymbolId,
    /// What happened.
    pub kind: TapKind,
    /// The position after it.
    pub pos: PosSnap,
}

/// The producer end of one symbol's tap and its drop counter.
#[derive(Debug)]
pub struct TapTx {
    tx: Producer<TapRecord>,
    dropped: Arc<AtomicU64>,
}

/// Records per symbol ring: 16 Ki (about 2 MiB), drained every millisecond.
pub const RING_CAPACITY: usize = 16 * 1024;

/// Wraps a symbol's strategy: see the [module docs](self).
pub struct TapStrategy {
    inner: Box<dyn Strategy>,
    tx: TapTx,
    mark_every_ns: u64,
    next_mark_ns: u64,
}

impl std::fmt::Debug for TapStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TapStrategy")
            .field("inner", &self.inner.name())
            .field("mark_every_ns", &self.mark_every_ns)
            .finish_non_exhaustive()
    }
}

impl TapStrategy {
    #[inline]
    fn push(&mut self, ctx: &Ctx<'_>, kind: TapKind) {
        let rec = TapRecord {
            exch_ns: ctx.market_ns(),
            recv_ns: ctx.now_ns(),
            symbol: ctx.symbol(),
            kind,
            pos: PosSnap::of(ctx.position()),
        };
        if self.tx.tx.push(rec).is_err() {
            self.tx.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// After a callback: the orders it submitted, and a mark if one is due.
    #[inline]
    fn after(&mut self, ctx: &Ctx<'_>, from: usize) {
        for intent in ctx.intents_since(from) {
            if let Intent::New(id, req) = *intent {
                self.push(ctx, TapKind::Submit(id, req));
            }
        }
        let t = ctx.market_ns();
        if t >= self.next_mark_ns && t > 0 {
            self.next_mark_ns = t.saturating_add(self.mark_every_ns);
            self.push(ctx, TapKind::Mark);
        }
    }
}

macro_rules! tapped {
    ($self:ident, $ctx:ident, $call:expr) => {{
        let from = $ctx.intents_len();
        $call;
        $self.after($ctx, from);
    }};
}

impl Strategy for TapStrategy {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, trade: &engine::event::Trade) {
        tapped!(self, ctx, self.inner.on_trade(ctx, trade))
    }
    fn on_agg_trade(&mut self, ctx: &mut Ctx<'_>, trade: &engine::event::AggTrade) {
        tapped!(self, ctx, self.inner.on_agg_trade(ctx, trade))
    }
    fn on_book_ticker(&mut self, ctx: &mut Ctx<'_>, bbo: &engine::event::BookTicker) {
        tapped!(self, ctx, self.inner.on_book_ticker(ctx, bbo))
    }
    fn on_book(&mut self, ctx: &mut Ctx<'_>, book: &engine::book::OrderBook) {
        tapped!(self, ctx, self.inner.on_book(ctx, book))
    }
    fn on_order(&mut self, ctx: &mut Ctx<'_>, update: &OrderUpdate) {
        self.push(ctx, TapKind::Update(*update));
        tapped!(self, ctx, self.inner.on_order(ctx, update))
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, token: u64) {
        tapped!(self, ctx, self.inner.on_timer(ctx, token))
    }
    fn on_connection(&mut self, ctx: &mut Ctx<'_>, up: bool) {
        tapped!(self, ctx, self.inner.on_connection(ctx, up))
    }
    fn channels(&self) -> Vec<String> {
        self.inner.channels()
    }
    fn set_params(&mut self, params: &Params) -> Result<String, ParamError> {
        self.inner.set_params(params)
    }
    fn leader_status(&self) -> Option<LeaderStatus> {
        self.inner.leader_status()
    }
    fn restore_trader(&mut self, trader: u16, state: &[u8]) -> bool {
        self.inner.restore_trader(trader, state)
    }
}

/// The producer ends, one per symbol, waiting for their strategies.
#[derive(Debug)]
pub struct Taps {
    txs: Vec<Option<TapTx>>,
    mark_every_ns: u64,
}

impl Taps {
    /// A tap for each of `symbols` symbols, marking positions every `mark_every_ns` of exchange
    /// time, and the collector that drains them (not started yet).
    pub fn new(symbols: usize, mark_every_ns: u64) -> (Taps, Collector) {
        Taps::with_ring_capacity(symbols, mark_every_ns, RING_CAPACITY)
    }

    /// [`new`](Self::new) with rings of `capacity` records.
    pub fn with_ring_capacity(
        symbols: usize,
        mark_every_ns: u64,
        capacity: usize,
    ) -> (Taps, Collector) {
        let mut txs = Vec::with_capacity(symbols);
        let mut rxs = Vec::with_capacity(symbols);
        let dropped = Arc::new(AtomicU64::new(0));
        for _ in 0..symbols {
            let (tx, rx) = RingBuffer::new(capacity);
            txs.push(Some(TapTx {
                tx,
                dropped: dropped.clone(),
            }));
            rxs.push(rx);
        }
        (
            Taps {
                txs,
                mark_every_ns: mark_every_ns.max(1),
            },
            Collector {
                rxs,
                dropped,
                records: Vec::with_capacity(RING_CAPACITY),
            },
        )
    }

    /// `inner` with a tap around it, for symbol `id`; `inner` itself if `id` has no tap left
    /// (one strategy per symbol: a second never comes).
    pub fn wrap(&mut self, id: SymbolId, inner: Box<dyn Strategy>) -> Box<dyn Strategy> {
        match self.txs.get_mut(id.index()).and_then(Option::take) {
            Some(tx) => Box::new(TapStrategy {
                inner,
                tx,
                mark_every_ns: self.mark_every_ns,
                next_mark_ns: 0,
            }),
            None => inner,
        }
    }
}

/// The consumer ends and the buffer they are drained into.
#[derive(Debug)]
pub struct Collector {
    rxs: Vec<Consumer<TapRecord>>,
    dropped: Arc<AtomicU64>,
    records: Vec<TapRecord>,
}

/// What the collector gathered.
#[derive(Debug, Default)]
pub struct Collected {
    /// Every record, each symbol's in order.
    pub records: Vec<TapRecord>,
    /// Records a full ring dropped.
    pub dropped: u64,
    /// Allocations the collector thread made while the run went on (its buffer growing).
    pub allocations: u64,
}

impl Collector {
    /// Drains every ring into the buffer; how many records it took.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        for rx in &mut self.rxs {
            while let Ok(r) = rx.pop() {
                self.records.push(r);
                n += 1;
            }
        }
        n
    }

    /// Runs on the calling thread until every tap is gone (its strategy dropped with the core)
    /// and drained.
    pub fn run(mut self) -> Collected {
        let start = thread_allocations();
        loop {
            let done = self.rxs.iter().all(|rx| rx.is_abandoned());
            if self.drain() == 0 {
                if done {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        Collected {
            allocations: thread_allocations().saturating_sub(start),
            dropped: self.dropped.load(Ordering::Relaxed),
            records: self.records,
        }
    }

    /// Runs [`run`](Self::run) on a new thread (`tickline-backtest`), returning once that thread
    /// is up: what starting a thread allocates on it happens before the run, not during it.
    pub fn spawn(self) -> anyhow::Result<std::thread::JoinHandle<Collected>> {
        use anyhow::Context;
        let ready = Arc::new(std::sync::Barrier::new(2));
        let started = ready.clone();
        let handle = std::thread::Builder::new()
            .name("tickline-backtest".into())
            .spawn(move || {
                started.wait();
                self.run()
            })
            .context("spawning the backtest collector thread")?;
        ready.wait();
        Ok(handle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::book::{BookConfig, OrderBook};
    use engine::event::{OrderType, Side, Trade};
    use engine::fixed::Qty;
    use engine::strategy::{Outbox, SymbolRules, TimerQueue};

    /// Buys one lot on every trade.
    struct Buyer;

    impl Strategy for Buyer {
        fn name(&self) -> &'static str {
            "buyer"
        }
        fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
            let req = OrderRequest {
                side: Side::Buy,
                price: t.price,
                qty: Qty(1_000),
                order_type: OrderType::LimitIoc,
            };
            ctx.submit(req).unwrap();
        }
    }

    #[test]
    fn the_tap_records_submissions_and_marks_and_counts_what_a_full_ring_drops() {
        let (mut taps, collector) = Taps::with_ring_capacity(1, 1_000, 4);
        let mut s = taps.wrap(SymbolId(0), Box::new(Buyer));
        assert_eq!(s.name(), "buyer", "the wrapped strategy's name");
        let (rules, book) = (
            SymbolRules::default(),
            OrderBook::new(BookConfig::default()),
        );
        let position = Position::default();
        let mut outbox = Outbox::with_capacity(8);
        let mut timers = TimerQueue::with_capacity(8);
        let mut next = 1u64;
        for i in 0..4u64 {
            let trade = Trade {
                exch_ns: 10 + i,
                trade_id: i,
                price: Price(100 * engine::fixed::SCALE),
                qty: Qty(1_000),
                buyer_maker: false,
            };
            let mut ctx = Ctx::new(
                7,
                10 + i,
                SymbolId(0),
                &rules,
                &book,
                None,
                Some(&trade),
                &position,
                &mut outbox,
                &mut timers,
                &mut next,
            );
            s.on_trade(&mut ctx, &trade);
            outbox.clear();
        }
        // The ring's end goes with the strategy; the collector then finishes.
        drop(s);
        drop(taps);
        let got = collector.run();
        // Trade 1: its order and the first mark; trades 2 and 3: their orders; trade 4's order
        // finds the ring full.
        let kinds: Vec<_> = got.records.iter().map(|r| r.kind).collect();
        assert!(
            matches!(kinds[0], TapKind::Submit(id, _) if id.seq() == 1),
            "{kinds:?}"
        );
        assert_eq!(kinds[1], TapKind::Mark);
        assert!(
            matches!(kinds[3], TapKind::Submit(id, _) if id.seq() == 3),
            "{kinds:?}"
        );
        assert_eq!(kinds.len(), 4);
        assert_eq!(got.dropped, 1);
        assert_eq!(got.records[2].exch_ns, 11);
        assert_eq!(got.records[2].recv_ns, 7);
    }
}
