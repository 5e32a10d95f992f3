//! The WebAssembly strategy host with real hostile modules (hand-written WAT, compiled by the
//! `wat` crate): each misbehaviour is stopped, counted and restarted from the last good state,
//! or refused at deploy with its reason, while a native strategy on another symbol trades on.
//!
//! The guest under test counts trades, saves the count after each one, and answers every trade
//! with a GTC buy of `count` lots, so the order stream shows whether a restarted instance came
//! back with its saved state. On trades listed in the test it misbehaves instead.

use engine::control::{Command, Reply, Request};
use engine::core::{Clock, Core, CoreBuilder, CoreConfig};
use engine::event::{BookTicker, Event, EventKind, OrderCommand, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::ring::{event_ring, EventTx, OnFull};
use engine::strategy::Params;
use engine::supervisor::RestartPolicy;
use engine::symbol::{SymbolId, SymbolTable};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use wasm_host::{abi, DeployConfig, StopKind, WasmModule, WasmStats, WasmStrategy};

struct TestClock(Cell<u64>);
impl Clock for &TestClock {
    fn now_ns(&self) -> u64 {
        self.0.get()
    }
}

/// The guest: `hostile` runs (instead of the order) on trades whose id is in `on`.
fn guest(on: &[u64], hostile: &str) -> String {
    let cond = if on.is_empty() {
        "(i32.const 0)".to_string()
    } else {
        let mut c = String::new();
        for (i, id) in on.iter().enumerate() {
            let test = format!("(i64.eq (i64.load (i32.const 1168)) (i64.const {id}))");
            c = if i == 0 {
                test
            } else {
                format!("(i32.or {c} {test})")
            };
        }
        c
    };
    format!(
        r#"(module
  (import "tickline" "tl_submit" (func $submit (param i32 i32 i64 i64) (result i64)))
  (import "tickline" "tl_cancel" (func $cancel (param i64) (result i32)))
  (import "tickline" "tl_save_state" (func $save (param i32 i32) (result i32)))
  (import "tickline" "tl_log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from the guest")
  ;; the buffer is at 1024; the count at 512; the last refusal at 520
  (func (export "tl_abi_version") (result i32) (i32.const 1))
  (func (export "tl_buffer") (result i32) (i32.const 1024))
  (func (export "tl_init") (param i32) (result i32) (i64.store (i32.const 512) (i64.const 0)) (i32.const 0))
  (func (export "tl_restore_area") (param i32) (result i32) (i32.const 512))
  (func (export "tl_restore") (param i32) (result i32) (i32.ne (local.get 0) (i32.const 8)))
  (func (export "tl_on_event") (result i32)
    (local $zero i32) (local $i i32) (local $r i64)
    (if (i32.ne (i32.load (i32.const 1024)) (i32.const 1)) (then (return (i32.const 0))))
    (if {cond} (then {hostile}))
    (i64.store (i32.const 512) (i64.add (i64.load (i32.const 512)) (i64.const 1)))
    (i64.store (i32.const 520)
      (call $submit (i32.const 0) (i32.const 0) (i64.load (i32.const 1152))
        (i64.mul (i64.load (i32.const 512)) (i64.const 1000))))
    (drop (call $save (i32.const 512) (i32.const 8)))
    (i32.const 0))
)"#
    )
}

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).unwrap()
}

fn deploy(text: &str, policy: RestartPolicy) -> WasmStrategy {
    let m = WasmModule::compile("guest.wasm", &wasm(text)).unwrap();
    let cfg = DeployConfig {
        policy,
        ..DeployConfig::default()
    };
    WasmStrategy::deploy(m, cfg).unwrap()
}

fn refused(text: &str) -> String {
    match WasmModule::compile("bad.wasm", &wasm(text)) {
        Err(e) => e,
        Ok(m) => WasmStrategy::deploy(m, DeployConfig::default()).unwrap_err(),
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
    orders: rtrb::Consumer<OrderCommand>,
    control: crossbeam_channel::Sender<Request>,
    btc: SymbolId,
    eth: SymbolId,
    stats: Arc<WasmStats>,
}

/// What came out of the core since the last call: (BTC order qtys in lots, BTC cancels, ETH orders).
#[derive(Debug, Default, PartialEq)]
struct Out {
    btc: Vec<i64>,
    btc_cancels: usize,
    eth: usize,
}

impl Rig<'_> {
    fn feed(&mut self, ev: Event) {
        self.tx.push(ev).unwrap();
        self.clock.0.set(self.clock.0.get() + 1_000_000);
        self.core.poll(self.clock.0.get());
    }

    /// Trades `ids` on both symbols.
    fn trades(&mut self, ids: std::ops::RangeInclusive<u64>) {
        for id in ids {
            self.feed(trade(self.btc, id));
            self.feed(trade(self.eth, id));
        }
    }

    fn out(&mut self) -> Out {
        let mut o = Out::default();
        while let Ok(c) = self.orders.pop() {
            match c {
                OrderCommand::New { symbol, req, .. } if symbol == self.btc => {
                    o.btc.push(req.qty.0 / 1000)
                }
                OrderCommand::New { .. } => o.eth += 1,
                OrderCommand::Cancel { symbol, .. } if symbol == self.btc => o.btc_cancels += 1,
                _ => {}
            }
        }
        o
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
}

/// BTCUSDT runs `wasm`; ETHUSDT runs the native `probe` (one IOC per trade).
fn rig(clock: &TestClock, wasm: WasmStrategy) -> Rig<'_> {
    let mut symbols = SymbolTable::new();
    let b = symbols.intern("BTCUSDT").unwrap();
    let e = symbols.intern("ETHUSDT").unwrap();
    let (otx, orx) = rtrb::RingBuffer::new(4096);
    let (ctx, crx) = crossbeam_channel::unbounded();
    let mut core = CoreBuilder::new(&symbols, CoreConfig::default(), clock)
        .order_sink(otx)
        .control(crx)
        .build();
    let (tx, rx) = event_ring(1024, OnFull::Block);
    core.add_input(rx);
    let stats = wasm.stats();
    core.set_strategy(b, Box::new(wasm)).unwrap();
    let probe = strategies::build("probe", Params::new::<&str, &str>([])).unwrap();
    core.set_strategy(e, probe).unwrap();
    Rig {
        core,
        tx,
        clock,
        orders: orx,
        control: ctx,
        btc: b,
        eth: e,
        stats,
    }
}

/// Runs trades 1..=5 with `hostile` on trade 3: the stop is counted as `kind`, the order of
/// trade 3 never goes out, the instance comes back with its count as of trade 2, and ETHUSDT
/// trades throughout.
fn stopped_and_restarted(hostile: &str, kind: StopKind) {
    let clock = TestClock(Cell::new(1));
    let mut r = rig(
        &clock,
        deploy(&guest(&[3], hostile), RestartPolicy::default()),
    );
    r.trades(1..=5);
    let o = r.out();
    assert_eq!(
        o.btc,
        vec![1, 2, 3, 4],
        "{kind:?}: trade 3's callback left nothing"
    );
    assert_eq!(o.eth, 5, "{kind:?}: the other symbol traded on");
    assert_eq!(r.stats.stops_of(kind), 1, "{kind:?}: {}", r.stats.summary());
    assert_eq!(r.stats.stops_total(), 1, "{}", r.stats.summary());
    assert_eq!(
        r.stats.restarts.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let s = r.status();
    assert_eq!(s.trader_restarts, 1);
    assert_eq!(s.symbol_halts, 0);
    let sym = s.symbols.iter().find(|x| x.symbol == "BTCUSDT").unwrap();
    let l = sym.leader.as_ref().unwrap();
    assert!(l.halted.is_none());
    let last = l.traders[0].last_panic.as_deref().unwrap();
    assert!(last.starts_with(kind.name()), "{last}");
    assert!(l.traders[0].state.contains(&format!("{}=1", kind.name())));
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    stopped_and_restarted("(loop $l (br $l))", StopKind::Fuel);
}

#[test]
fn memory_grown_past_the_cap_is_stopped() {
    // 16 MiB cap = 256 pages; the module has 1.
    stopped_and_restarted("(drop (memory.grow (i32.const 1000)))", StopKind::Memory);
}

#[test]
fn unreachable_is_stopped() {
    stopped_and_restarted("(unreachable)", StopKind::Unreachable);
}

#[test]
fn integer_division_by_zero_is_stopped() {
    stopped_and_restarted(
        "(drop (i32.div_s (i32.const 1) (local.get $zero)))",
        StopKind::DivByZero,
    );
}

#[test]
fn an_out_of_bounds_load_is_stopped() {
    stopped_and_restarted("(drop (i64.load (i32.const -16)))", StopKind::OutOfBounds);
}

#[test]
fn a_garbage_return_is_stopped() {
    stopped_and_restarted("(return (i32.const 7))", StopKind::BadReturn);
}

#[test]
fn infinite_recursion_overflows_its_stack_and_is_stopped() {
    // A function calling itself forever: fuel or the stack, whichever runs out first.
    let text = guest(&[3], "(call $deep)").replace(
        "(func (export \"tl_on_event\")",
        "(func $deep (call $deep))\n  (func (export \"tl_on_event\")",
    );
    let clock = TestClock(Cell::new(1));
    let mut r = rig(&clock, deploy(&text, RestartPolicy::default()));
    r.trades(1..=5);
    let o = r.out();
    assert_eq!(o.btc, vec![1, 2, 3, 4]);
    assert_eq!(o.eth, 5);
    let s = &r.stats;
    assert_eq!(s.stops_of(StopKind::Stack) + s.stops_of(StopKind::Fuel), 1);
}

#[test]
fn absurd_orders_are_refused_and_counted_not_fatal() {
    // Each refusal is returned to the guest, which carries on: no stop, no restart.
    let hostile = r#"
      (drop (call $submit (i32.const 0) (i32.const 0) (i64.const 100) (i64.const 9223372036854775807)))
      (drop (call $submit (i32.const 0) (i32.const 0) (i64.const 100) (i64.const 0)))
      (drop (call $submit (i32.const 0) (i32.const 0) (i64.const 100) (i64.const -5)))
      (drop (call $submit (i32.const 0) (i32.const 0) (i64.const 0) (i64.const 1000)))
      (drop (call $submit (i32.const 0) (i32.const 0) (i64.const 9223372036854775807) (i64.const 1000)))
      (drop (call $submit (i32.const 7) (i32.const 0) (i64.const 100) (i64.const 1000)))
      (drop (call $submit (i32.const 0) (i32.const 9) (i64.const 100) (i64.const 1000)))
      (drop (call $cancel (i64.const 123456)))
      (drop (call $save (i32.const 65530) (i32.const 100)))
      (drop (call $save (i32.const 0) (i32.const 5000)))
      (call $log (i32.const -1) (i32.const 10))
      (call $log (i32.const 16) (i32.const 20))
    "#;
    let clock = TestClock(Cell::new(1));
    let mut r = rig(
        &clock,
        deploy(&guest(&[3], hostile), RestartPolicy::default()),
    );
    r.trades(1..=4);
    let o = r.out();
    // Trade 3 sent its normal order too (the refusals did not stop it).
    assert_eq!(o.btc, vec![1, 2, 3, 4]);
    assert_eq!(o.eth, 4);
    let s = &r.stats;
    assert_eq!(s.stops_total(), 0, "{}", s.summary());
    assert_eq!(s.refusals_of(abi::err::QTY), 3);
    assert_eq!(s.refusals_of(abi::err::PRICE), 2);
    assert_eq!(s.refusals_of(abi::err::SIDE), 1);
    assert_eq!(s.refusals_of(abi::err::TYPE), 1);
    assert_eq!(s.refusals_of(abi::err::UNKNOWN_ORDER), 1);
    assert_eq!(s.refusals_of(abi::err::BOUNDS), 3);
    assert_eq!(s.logs.load(std::sync::atomic::Ordering::Relaxed), 1);
    let st = r.status();
    let l = st.symbols[0].leader.as_ref().unwrap();
    assert!(
        l.traders[0]
            .state
            .contains("last log: hello from the guest"),
        "{}",
        l.traders[0].state
    );
    assert!(
        l.traders[0].state.contains("refused"),
        "{}",
        l.traders[0].state
    );
}

#[test]
fn an_order_flood_is_capped_per_callback() {
    let hostile = r#"
      (loop $l
        (drop (call $submit (i32.const 0) (i32.const 0) (i64.const 100) (i64.const 1000)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))
      (return (i32.const 0))
    "#;
    let clock = TestClock(Cell::new(1));
    let mut r = rig(
        &clock,
        deploy(&guest(&[3], hostile), RestartPolicy::default()),
    );
    r.trades(1..=4);
    let o = r.out();
    // Trade 3: the first 8 of 100 went out (1 lot each), the other 92 were refused.
    assert_eq!(o.btc, [vec![1, 2], vec![1; 8], vec![3]].concat());
    assert_eq!(o.eth, 4);
    assert_eq!(r.stats.refusals_of(abi::err::ORDER_CAP), 92);
    assert_eq!(r.stats.stops_total(), 0);
}

#[test]
fn too_many_restarts_halt_only_that_symbol_and_cancel_its_orders() {
    let policy = RestartPolicy {
        max_restarts: 2,
        window_ns: 1_000_000_000,
    };
    let clock = TestClock(Cell::new(1));
    let mut r = rig(
        &clock,
        deploy(&guest(&[3, 4, 5, 6], "(unreachable)"), policy),
    );
    r.trades(1..=8);
    let o = r.out();
    // Trades 1 and 2 placed resting orders; 3 and 4 restarted; 5 halted: its two orders are
    // canceled, and nothing more is sent for BTCUSDT.
    assert_eq!(o.btc, vec![1, 2]);
    assert_eq!(o.btc_cancels, 2);
    assert_eq!(o.eth, 8, "ETHUSDT trades on");
    let s = r.status();
    assert_eq!(s.symbol_halts, 1);
    let l = s.symbols[0].leader.as_ref().unwrap();
    let why = l.halted.as_deref().unwrap();
    assert!(
        why.contains("3 restarts within 1000 ms") && why.contains("unreachable"),
        "{why}"
    );
    assert_eq!(r.stats.stops_of(StopKind::Unreachable), 3);
}

#[test]
fn bad_modules_are_refused_at_deploy_naming_the_reason() {
    let ok = guest(&[], "");
    // A wrong ABI version: both named.
    let e = refused(&ok.replace(
        "(func (export \"tl_abi_version\") (result i32) (i32.const 1))",
        "(func (export \"tl_abi_version\") (result i32) (i32.const 2))",
    ));
    assert!(e.contains("version 2") && e.contains("version 1"), "{e}");
    // A WASI import: named.
    let e = refused(&ok.replace(
        "(memory (export",
        "(import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))\n  (memory (export",
    ));
    assert!(
        e.contains("wasi_snapshot_preview1::fd_write") && e.contains("no WASI"),
        "{e}"
    );
    // A tickline import of the wrong type.
    let e = refused(&ok.replace(
        "(func $cancel (param i64) (result i32))",
        "(func $cancel (param i32) (result i32))",
    ));
    assert!(e.contains("tickline::tl_cancel"), "{e}");
    // Missing exports, one by one.
    for name in [
        "tl_on_event",
        "tl_init",
        "tl_buffer",
        "tl_abi_version",
        "memory",
    ] {
        let text = ok.replace(&format!("(export \"{name}\")"), "");
        let e = refused(&text);
        assert!(
            e.contains(&format!("missing export `{name}`")),
            "{name}: {e}"
        );
    }
    // A buffer outside memory, or misaligned.
    let e = refused(&ok.replace("(i32.const 1024))", "(i32.const 65000))"));
    assert!(e.contains("do not fit"), "{e}");
    let e = refused(&ok.replace("(i32.const 1024))", "(i32.const 1028))"));
    assert!(e.contains("8-aligned"), "{e}");
    // tl_init refusing, or looping.
    let e = refused(&ok.replace(
        "(i64.store (i32.const 512) (i64.const 0)) (i32.const 0))",
        "(i32.const 3))",
    ));
    assert!(e.contains("tl_init returned 3"), "{e}");
    let e = refused(&ok.replace(
        "(i64.store (i32.const 512) (i64.const 0)) (i32.const 0))",
        "(loop $l (br $l)) (i32.const 0))",
    ));
    assert!(e.contains("fuel"), "{e}");
    // An initial memory over the cap.
    let e = refused(&ok.replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 300)",
    ));
    assert!(e.contains("memory") || e.contains("grow"), "{e}");
    // Not wasm at all, and a text module.
    let e = WasmModule::compile("x.wasm", b"hello").unwrap_err();
    assert!(e.contains("not a WebAssembly binary"), "{e}");
    let e = WasmModule::compile("x.wasm", b"\0asm\x01\0\0\0\xff").unwrap_err();
    assert!(e.contains("invalid module"), "{e}");
}

#[test]
fn a_module_deployed_with_channels_is_called_for_those_kinds_only() {
    let ticker = |sym| {
        Event::new(
            1,
            sym,
            EventKind::BookTicker(BookTicker {
                update_id: 1,
                bid_px: Price(99 * SCALE),
                bid_qty: Qty(SCALE),
                ask_px: Price(101 * SCALE),
                ask_qty: Qty(SCALE),
            }),
        )
    };
    let m = WasmModule::compile("g.wasm", &wasm(&guest(&[], ""))).unwrap();
    let mut calls = Vec::new();
    for channels in [None, Some("trade")] {
        let pairs: Vec<(String, String)> = channels
            .map(|c| ("channels".to_string(), c.to_string()))
            .into_iter()
            .collect();
        let cfg = DeployConfig::from_pairs(&pairs).unwrap();
        let clock = TestClock(Cell::new(1_000));
        let mut r = rig(&clock, WasmStrategy::deploy(m.clone(), cfg).unwrap());
        let btc = r.btc;
        r.feed(ticker(btc));
        r.feed(trade(btc, 1));
        r.feed(ticker(btc));
        calls.push(r.stats.callbacks.load(Ordering::Relaxed));
    }
    // Every kind by default (two tickers and a trade); with `channels=trade`, the trade only.
    assert_eq!(calls, [3, 1]);
}

#[test]
fn parameters_reach_tl_init_and_host_keys_are_checked() {
    let cfg = DeployConfig::from_pairs(&[
        ("fast".into(), "5".into()),
        ("fuel".into(), "20000".into()),
        ("memory_mb".into(), "2".into()),
    ])
    .unwrap();
    assert_eq!(cfg.fuel, 20_000);
    assert_eq!(cfg.memory_bytes, 2 << 20);
    assert_eq!(cfg.params_text(), b"fast=5\n");
    for bad in [
        ("fuel", "0"),
        ("memory_mb", "100000"),
        ("orders_per_callback", "0"),
    ] {
        let e = DeployConfig::from_pairs(&[(bad.0.into(), bad.1.into())]).unwrap_err();
        assert!(e.to_string().contains(bad.0), "{e}");
    }
    let cfg_ch =
        DeployConfig::from_pairs(&[("channels".into(), "trade, bookTicker".into())]).unwrap();
    assert_eq!(cfg_ch.channels, ["trade", "bookTicker"]);
    assert!(cfg_ch.params.is_empty(), "a host key, not the guest's");
    for bad in ["trades", "trade,", "trade.binance"] {
        let e = DeployConfig::from_pairs(&[("channels".into(), bad.into())]).unwrap_err();
        assert!(e.to_string().contains("channels"), "{bad}: {e}");
    }
    // tl_init refuses unless it got exactly "fast=5\n" (7 bytes) at the buffer.
    let text = guest(&[], "").replace(
        "(func (export \"tl_init\") (param i32) (result i32) (i64.store (i32.const 512) (i64.const 0)) (i32.const 0))",
        "(func (export \"tl_init\") (param i32) (result i32)
           (i64.store (i32.const 512) (i64.const 0))
           (i32.or (i32.ne (local.get 0) (i32.const 7))
                   (i32.ne (i32.load8_u (i32.const 1029)) (i32.const 53))))",
    );
    let m = WasmModule::compile("p.wasm", &wasm(&text)).unwrap();
    assert!(WasmStrategy::deploy(m.clone(), cfg).is_ok());
    let e = WasmStrategy::deploy(m, DeployConfig::default()).unwrap_err();
    assert!(e.contains("tl_init returned 1"), "{e}");
}
