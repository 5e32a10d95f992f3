//! A WebAssembly strategy allocates nothing per event on the host side: after warm-up, trades,
//! bookTickers, orders, saved state and log lines through the core and the guest, counted by a
//! global allocator.
//!
//! One test function on purpose: the counter is process-wide, so nothing may run beside it.

use engine::core::{Clock, CoreBuilder, CoreConfig};
use engine::event::{BookTicker, Event, EventKind, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::ring::{event_ring, OnFull};
use engine::symbol::SymbolTable;
use std::cell::Cell;
use tools::alloc::{allocations, CountingAlloc};
use wasm_host::{DeployConfig, WasmModule, WasmStrategy};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

struct TestClock(Cell<u64>);
impl Clock for &TestClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

/// On every trade: count, save the count, log a line; every 4th trade an IOC buy at the ask.
const GUEST: &str = r#"(module
  (import "tickline" "tl_submit" (func $submit (param i32 i32 i64 i64) (result i64)))
  (import "tickline" "tl_save_state" (func $save (param i32 i32) (result i32)))
  (import "tickline" "tl_log" (func $log (param i32 i32)))
  (import "tickline" "tl_set_timer" (func $timer (param i64 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "tick")
  (func (export "tl_abi_version") (result i32) (i32.const 1))
  (func (export "tl_buffer") (result i32) (i32.const 1024))
  (func (export "tl_init") (param i32) (result i32) (i32.const 0))
  (func (export "tl_on_event") (result i32)
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 1)) (then (return (i32.const 0))))
    (i64.store (i32.const 512) (i64.add (i64.load (i32.const 512)) (i64.const 1)))
    (drop (call $save (i32.const 512) (i32.const 8)))
    (call $log (i32.const 16) (i32.const 4))
    (if (i64.eqz (i64.and (i64.load (i32.const 512)) (i64.const 3)))
      (then
        (drop (call $timer (i64.add (i64.load (i32.const 1032)) (i64.const 1000)) (i64.const 7)))
        (drop (call $submit (i32.const 0) (i32.const 1) (i64.load (i32.const 1072)) (i64.const 1000)))))
    (i32.const 0))
)"#;

#[test]
fn no_allocation_per_event_after_warm_up() {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let eth = symbols.intern("ETHUSDT").unwrap();
    let clock = TestClock(Cell::new(1));
    // The paper venue answers every IOC (filled or canceled), so orders come back as updates.
    let mut core = CoreBuilder::new(&symbols, CoreConfig::default(), &clock).build();
    let (mut tx, rx) = event_ring(4096, OnFull::Block);
    core.add_input(rx);
    let bytes = wat::parse_str(GUEST).unwrap();
    let module = WasmModule::compile("alloc.wasm", &bytes).unwrap();
    let mut stats = Vec::new();
    for sym in [btc, eth] {
        let s = WasmStrategy::deploy(module.clone(), DeployConfig::default()).unwrap();
        stats.push(s.stats());
        core.set_strategy(sym, Box::new(s)).unwrap();
    }
    let mut id = 0u64;
    let mut pass = |n: u64, core: &mut engine::core::Core<&TestClock>| {
        for _ in 0..n {
            id += 1;
            for sym in [btc, eth] {
                let px = Price((100 + (id % 7) as i64) * SCALE);
                let bbo = BookTicker {
                    update_id: id,
                    bid_px: Price(px.0 - SCALE / 100),
                    bid_qty: Qty(SCALE),
                    ask_px: px,
                    ask_qty: Qty(SCALE),
                };
                tx.push(Event::new(id, sym, EventKind::BookTicker(bbo)))
                    .unwrap();
                let t = Trade {
                    exch_ns: id * 1_000,
                    trade_id: id,
                    price: px,
                    qty: Qty(SCALE / 10),
                    buyer_maker: id.is_multiple_of(2),
                };
                tx.push(Event::new(id, sym, EventKind::Trade(t))).unwrap();
            }
            clock.0.set(clock.0.get() + 10_000);
            core.poll(clock.0.get());
        }
    };
    pass(2_000, &mut core);
    let before = allocations();
    pass(20_000, &mut core);
    let during = allocations() - before;
    let callbacks: u64 = stats
        .iter()
        .map(|s| s.callbacks.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let orders: u64 = stats
        .iter()
        .map(|s| s.orders.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    // Every event reached a guest (plus order updates and timers), every fourth trade placed an
    // order, nothing was stopped or refused.
    assert!(callbacks > 2 * 2 * 22_000, "{}", stats[0].summary());
    assert_eq!(orders, 2 * 22_000 / 4, "{}", stats[0].summary());
    assert!(
        stats
            .iter()
            .all(|s| s.stops_total() + s.refusals_total() == 0),
        "{}",
        stats[0].summary()
    );
    assert_eq!(
        during, 0,
        "allocations while 80 000 events ran through two wasm guests"
    );
}
