//! The cost of supervision and topic routing per event, against a direct call, in one run.
//!
//! `cargo bench --bench dispatch -- --warm-up-time 1 --measurement-time 3`
//!
//! Every case handles the same batch of 1,000 trades with the same trader logic (it counts trades
//! and keeps the high; its state is a small `Copy` value):
//!
//! - `dispatch/direct_call`: `logic.on_trade(&mut state, &mut ctx, &trade)` on the concrete
//!   type, one trader: the floor.
//! - `dispatch/leader`: the same trader under a `Leader` through `dyn Strategy`: `catch_unwind`,
//!   the snapshot comparison and copy, the finished check, order bookkeeping.
//! - `dispatch/core_plain_strategy` and `dispatch/core_leader`: the whole core (`Core::poll` over
//!   a ring holding the batch: routing table lookup, counters, last trade and mark, latency
//!   stamps) with the logic as a plain strategy, and under a leader; `*_zero_clock`: the same
//!   with a clock that returns 0 (the core reads the clock three times per event, about 20 ns
//!   each on this VM), so the rest of the core's work shows.
//!
//! Per event = the reported time / 1,000.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::book::{BookConfig, OrderBook};
use engine::core::{Clock, Core, CoreConfig};
use engine::event::{ClientOrderId, Event, EventKind, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::portfolio::Position;
use engine::ring::{event_ring, OnFull};
use engine::strategy::{Ctx, Outbox, ParamError, Params, Strategy, SymbolRules, TimerQueue};
use engine::supervisor::{Leader, RestartPolicy, TraderLogic};
use engine::symbol::{SymbolId, SymbolTable};
use std::hint::black_box;

const BATCH: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Seen {
    trades: u64,
    high: i64,
}

struct Counter;

impl TraderLogic for Counter {
    type State = Seen;
    fn name(&self) -> &'static str {
        "counter"
    }
    fn traders(&self) -> usize {
        1
    }
    fn fresh(&self, _i: usize) -> Seen {
        Seen::default()
    }
    fn is_finished(&self, _s: &Seen) -> bool {
        false
    }
    fn owns(&self, _s: &Seen, _id: ClientOrderId) -> bool {
        false
    }
    fn describe(&self, s: &Seen) -> String {
        format!("{s:?}")
    }
    fn params(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn set_params(&mut self, _p: &Params) -> Result<String, ParamError> {
        Ok(String::new())
    }
    #[inline]
    fn on_trade(&mut self, s: &mut Seen, _ctx: &mut Ctx<'_>, t: &Trade) {
        s.trades += 1;
        s.high = s.high.max(t.price.0);
    }
}

/// The same logic as a plain strategy (no supervision).
struct Plain(Counter, Seen);

impl Strategy for Plain {
    fn name(&self) -> &'static str {
        "plain"
    }
    #[inline]
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, t: &Trade) {
        self.0.on_trade(&mut self.1, ctx, t);
    }
}

fn trades() -> Vec<Trade> {
    (0..BATCH)
        .map(|i| Trade {
            exch_ns: i,
            trade_id: i,
            price: Price((60_000 + (i % 7) as i64) * SCALE),
            qty: Qty(100_000),
            buyer_maker: i % 2 == 0,
        })
        .collect()
}

/// `Instant`-based (true), or always 0 (false: takes the clock reads out of the comparison).
struct Tsc(bool);
impl Clock for Tsc {
    fn now_ns(&self) -> u64 {
        if !self.0 {
            return 0;
        }
        // Any monotonic source would do; the core reads it a few times per event.
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

fn bench(c: &mut Criterion) {
    let ts = trades();
    let mut g = c.benchmark_group("dispatch");
    g.throughput(Throughput::Elements(BATCH));

    {
        let book = OrderBook::new(BookConfig::default());
        let rules = SymbolRules::default();
        let pos = Position::default();
        let mut outbox = Outbox::with_capacity(64);
        let mut timers = TimerQueue::with_capacity(16);
        let mut next = 1u64;
        let mut ctx = Ctx::new(
            0,
            0,
            SymbolId(0),
            &rules,
            &book,
            None,
            None,
            &pos,
            &mut outbox,
            &mut timers,
            &mut next,
        );
        let mut logic = Counter;
        let mut state = Seen::default();
        g.bench_function("direct_call", |b| {
            b.iter(|| {
                for t in &ts {
                    logic.on_trade(&mut state, &mut ctx, black_box(t));
                }
            })
        });
        let mut leader: Box<dyn Strategy> =
            Box::new(Leader::new(Counter, RestartPolicy::default()));
        g.bench_function("leader", |b| {
            b.iter(|| {
                for t in &ts {
                    leader.on_trade(&mut ctx, black_box(t));
                }
            })
        });
        black_box(state);
    }

    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let events: Vec<Event> = ts
        .iter()
        .map(|t| Event::new(1, btc, EventKind::Trade(*t)))
        .collect();
    for (name, supervised, real_clock) in [
        ("core_plain_strategy", false, true),
        ("core_leader", true, true),
        ("core_plain_strategy_zero_clock", false, false),
        ("core_leader_zero_clock", true, false),
    ] {
        let mut core = Core::new(&symbols, CoreConfig::default(), Tsc(real_clock));
        let (mut tx, rx) = event_ring(4096, OnFull::Block);
        core.add_input(rx);
        let s: Box<dyn Strategy> = if supervised {
            Box::new(Leader::new(Counter, RestartPolicy::default()))
        } else {
            Box::new(Plain(Counter, Seen::default()))
        };
        core.set_strategy(btc, s).unwrap();
        g.bench_function(name, |b| {
            b.iter_batched(
                || tx.push_all(&events).unwrap(),
                |()| {
                    let mut n = 0;
                    while n < BATCH as usize {
                        n += core.poll(1);
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
