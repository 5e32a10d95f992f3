//! Supervision in the core: leaders of traders per symbol, panics injected into traders.
//!
//! A test trader counts the trades it sees and, when a trade's id is on its "crash list", places
//! an order and then panics in the same callback. The core runs on a ring like a live run.

use engine::control::{Command, Reply, Request};
use engine::core::{Clock, Core, CoreBuilder, CoreConfig};
use engine::event::{ClientOrderId, Event, EventKind, OrderRequest, OrderType, Side, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::ring::{event_ring, EventTx, OnFull};
use engine::strategy::{Ctx, ParamError, Params};
use engine::supervisor::{Leader, RestartPolicy, TraderLogic};
use engine::symbol::{SymbolId, SymbolTable};
use std::cell::Cell;

/// The core's clock, set by the test.
struct TestClock(Cell<u64>);
impl Clock for &TestClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Count {
    trades: u64,
    orders: u64,
}

/// Trader `crash_trader` panics (after submitting an order) on every trade whose id is in
/// `crash_on`; trader 0 places a resting order on the trades in `place_on`; every trader counts
/// trades, and finishes after `finish_after` trades.
struct Flaky {
    traders: usize,
    crash_trader: usize,
    crash_on: Vec<u64>,
    place_on: Vec<u64>,
    finish_after: u64,
}

fn buy() -> OrderRequest {
    OrderRequest {
        side: Side::Buy,
        price: Price(100 * SCALE),
        qty: Qty(SCALE),
        order_type: OrderType::LimitGtc,
    }
}

impl TraderLogic for Flaky {
    type State = (usize, Count);

    fn name(&self) -> &'static str {
        "flaky"
    }
    fn traders(&self) -> usize {
        self.traders
    }
    fn fresh(&self, index: usize) -> Self::State {
        (
            index,
            Count {
                trades: 0,
                orders: 0,
            },
        )
    }
    fn is_finished(&self, st: &Self::State) -> bool {
        st.1.trades >= self.finish_after
    }
    fn owns(&self, _st: &Self::State, _id: ClientOrderId) -> bool {
        false
    }
    fn describe(&self, st: &Self::State) -> String {
        format!("{} trades", st.1.trades)
    }
    fn params(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn set_params(&mut self, p: &Params) -> Result<String, ParamError> {
        Err(ParamError::Unknown(
            p.keys().next().unwrap_or("").to_string(),
        ))
    }
    fn on_trade(&mut self, st: &mut Self::State, ctx: &mut Ctx<'_>, t: &Trade) {
        st.1.trades += 1;
        if st.0 == 0 && self.place_on.contains(&t.trade_id) {
            st.1.orders += 1;
            ctx.submit(buy()).unwrap();
        }
        if st.0 == self.crash_trader && self.crash_on.contains(&t.trade_id) {
            st.1.orders += 1;
            ctx.submit(buy()).unwrap();
            panic!("injected panic on trade {}", t.trade_id);
        }
    }
}

fn trade(sym: SymbolId, id: u64) -> Event {
    Event::new(
        id * 1000,
        sym,
        EventKind::Trade(Trade {
            exch_ns: id * 1_000_000,
            trade_id: id,
            price: Price(100 * SCALE),
            qty: Qty(SCALE),
            buyer_maker: false,
        }),
    )
}

struct Rig<'c> {
    core: Core<&'c TestClock>,
    tx: EventTx,
    clock: &'c TestClock,
    orders: rtrb::Consumer<engine::event::OrderCommand>,
    control: crossbeam_channel::Sender<Request>,
    btc: SymbolId,
    eth: SymbolId,
}

impl Rig<'_> {
    fn feed(&mut self, ev: Event) {
        self.tx.push(ev).unwrap();
        self.clock.0.set(self.clock.0.get() + 1_000_000);
        self.core.poll(self.clock.0.get());
    }

    fn status(&mut self) -> engine::status::CoreStatus {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.control
            .send(Request {
                command: Command::Status,
                reply: tx,
            })
            .unwrap();
        self.clock.0.set(self.clock.0.get() + 2_000_000);
        self.core.poll(self.clock.0.get());
        match rx.try_recv().unwrap() {
            Reply::Status(s) => s,
            other => panic!("{other:?}"),
        }
    }

    fn leader<'a>(
        &self,
        s: &'a engine::status::CoreStatus,
        sym: &str,
    ) -> &'a engine::status::LeaderStatus {
        s.symbols
            .iter()
            .find(|x| x.symbol == sym)
            .and_then(|x| x.leader.as_ref())
            .unwrap()
    }
}

fn rig(clock: &TestClock, btc: Flaky, eth: Flaky, policy: RestartPolicy) -> Rig<'_> {
    let mut symbols = SymbolTable::new();
    let b = symbols.intern("BTCUSDT").unwrap();
    let e = symbols.intern("ETHUSDT").unwrap();
    let (otx, orx) = rtrb::RingBuffer::new(64);
    let (ctx, crx) = crossbeam_channel::unbounded();
    let mut core = CoreBuilder::new(&symbols, CoreConfig::default(), clock)
        .order_sink(otx)
        .control(crx)
        .build();
    let (tx, rx) = event_ring(1024, OnFull::Block);
    core.add_input(rx);
    core.set_strategy(b, Box::new(Leader::new(btc, policy)))
        .unwrap();
    core.set_strategy(e, Box::new(Leader::new(eth, policy)))
        .unwrap();
    Rig {
        core,
        tx,
        clock,
        orders: orx,
        control: ctx,
        btc: b,
        eth: e,
    }
}

fn flaky(crash_on: &[u64]) -> Flaky {
    Flaky {
        traders: 3,
        crash_trader: 1,
        crash_on: crash_on.to_vec(),
        place_on: Vec::new(),
        finish_after: u64::MAX,
    }
}

#[test]
fn a_panicking_trader_restarts_from_its_last_state_and_nobody_else_notices() {
    let clock = TestClock(Cell::new(1));
    let mut r = rig(&clock, flaky(&[3]), flaky(&[]), RestartPolicy::default());
    let (btc, eth) = (r.btc, r.eth);
    for id in 1..=5 {
        r.feed(trade(btc, id));
        r.feed(trade(eth, id));
    }
    let s = r.status();
    let l = r.leader(&s, "BTCUSDT");
    // Trader 1 crashed on trade 3: it came back with its state as of trade 2, then saw 4 and 5.
    assert_eq!(l.traders[1].state, "4 trades");
    assert_eq!(l.traders[1].restarts, 1);
    assert!(l.traders[1]
        .last_panic
        .as_deref()
        .unwrap()
        .contains("injected panic on trade 3"));
    // Its siblings saw every trade, including the one their sibling crashed on.
    assert_eq!(l.traders[0].state, "5 trades");
    assert_eq!(l.traders[2].state, "5 trades");
    assert_eq!(l.traders[0].restarts + l.traders[2].restarts, 0);
    assert!(l.halted.is_none());
    // The other symbol never noticed.
    let e = r.leader(&s, "ETHUSDT");
    assert!(e
        .traders
        .iter()
        .all(|t| t.state == "5 trades" && t.restarts == 0));
    // The order the crashed callback submitted was never sent.
    assert!(r.orders.pop().is_err());
    assert_eq!(s.trader_restarts, 1);
    assert_eq!(r.core.counters().trader_restarts, 1);
    assert_eq!(s.symbol_halts, 0);
}

#[test]
fn too_many_restarts_halt_only_that_symbol_and_cancel_its_orders() {
    let clock = TestClock(Cell::new(1));
    let policy = RestartPolicy {
        max_restarts: 2,
        window_ns: 1_000_000_000,
    };
    // BTCUSDT: trader 0 places an order on trade 1 (it rests), trader 1 crashes on 2, 3 and 4.
    let mut btc = flaky(&[2, 3, 4]);
    btc.place_on = vec![1];
    let mut r = rig(&clock, btc, flaky(&[]), policy);
    let (btc, eth) = (r.btc, r.eth);
    r.feed(trade(btc, 1));
    let placed = match r.orders.pop() {
        Ok(engine::event::OrderCommand::New { client_id, .. }) => client_id,
        other => panic!("{other:?}"),
    };
    r.feed(trade(eth, 1));
    r.feed(trade(btc, 2));
    r.feed(trade(btc, 3));
    let s = r.status();
    assert!(
        r.leader(&s, "BTCUSDT").halted.is_none(),
        "2 restarts are allowed"
    );
    r.feed(trade(btc, 4));
    let s = r.status();
    let l = r.leader(&s, "BTCUSDT");
    let why = l.halted.as_deref().expect("halted after the third restart");
    assert!(why.contains("3 restarts within 1000 ms"), "{why}");
    assert!(why.contains("trader 1 panicked"), "{why}");
    assert_eq!(s.symbol_halts, 1);
    // Its open order was canceled; the crashed callbacks' orders were never sent.
    assert_eq!(
        r.orders.pop(),
        Ok(engine::event::OrderCommand::Cancel {
            client_id: placed,
            symbol: btc
        })
    );
    assert!(r.orders.pop().is_err());
    // Halted: no trader of BTCUSDT hears anything more.
    let before: Vec<String> = l.traders.iter().map(|t| t.state.clone()).collect();
    r.feed(trade(btc, 5));
    r.feed(trade(eth, 2));
    r.feed(trade(eth, 3));
    let s = r.status();
    let after: Vec<String> = r
        .leader(&s, "BTCUSDT")
        .traders
        .iter()
        .map(|t| t.state.clone())
        .collect();
    assert_eq!(before, after);
    // ETHUSDT trades on.
    assert!(r
        .leader(&s, "ETHUSDT")
        .traders
        .iter()
        .all(|t| t.state == "3 trades"));
}

#[test]
fn a_restart_outside_the_window_does_not_count() {
    let clock = TestClock(Cell::new(1));
    let policy = RestartPolicy {
        max_restarts: 1,
        window_ns: 1_500_000,
    };
    let mut r = rig(&clock, flaky(&[2, 6, 10]), flaky(&[]), policy);
    let btc = r.btc;
    // One trade a millisecond: restarts 4 ms apart never make two within 1.5 ms.
    for id in 1..=12 {
        r.feed(trade(btc, id));
    }
    let s = r.status();
    let l = r.leader(&s, "BTCUSDT");
    assert!(l.halted.is_none(), "{:?}", l.halted);
    assert_eq!(l.traders[1].restarts, 3);
}

#[test]
fn a_finished_trader_is_replaced_by_a_fresh_one() {
    let clock = TestClock(Cell::new(1));
    let mut btc = flaky(&[]);
    btc.finish_after = 2;
    let mut r = rig(&clock, btc, flaky(&[]), RestartPolicy::default());
    let btc = r.btc;
    for id in 1..=5 {
        r.feed(trade(btc, id));
    }
    let s = r.status();
    let l = r.leader(&s, "BTCUSDT");
    // 5 trades, a cycle every 2: two cycles per trader, one trade into the third.
    assert_eq!(l.cycles, 6);
    assert!(l.traders.iter().all(|t| t.state == "1 trades"));
}
