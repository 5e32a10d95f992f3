//! The cost of running a strategy as WebAssembly, against the same logic in native Rust.
//!
//! `cargo bench --bench wasm -- --warm-up-time 1 --measurement-time 3`
//!
//! - `wasm/core_*`: the whole core (`Core::poll` over a ring holding 1,000 trades, the paper
//!   venue answering orders) with `probe` (one IOC buy per trade) native and as the hand-written
//!   WAT port in `strategies/wasm-host/testdata/probe.wat`, and with a strategy doing nothing,
//!   native and wasm (the host's floor: context block, record, one call, fuel). Per event = the
//!   reported time / 1,000; the difference of a pair is what wasm adds.
//! - `wasm/metering_*`: one `tl_on_event` of a guest looping 50 times, with fuel, with an epoch
//!   deadline (never reached) and with neither: what each way of bounding CPU costs.
//! - `wasm/deploy_probe`: validate + compile + instantiate + `tl_init` of the probe module;
//!   `wasm/restart_probe`: a fresh instance of an already compiled module (what a restart costs).
//! - `replay/*/pipeline_asap_probe_{native,wasm}`: replay throughput of the real capture (or the
//!   generator's) through the pinned pipeline with each probe.
//!
//! It also prints the resident memory one deployed instance adds (100 deployed, RSS before and
//! after, from `/proc/self/statm`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::core::{Clock, Core, CoreConfig};
use engine::event::{Event, EventKind, Trade};
use engine::fixed::{Price, Qty, SCALE};
use engine::idle::IdleMode;
use engine::ring::{event_ring, OnFull};
use engine::strategy::{Ctx, Params, Strategy};
use engine::symbol::{SymbolId, SymbolTable};
use std::hint::black_box;
use tools::config::Pace;
use tools::pipeline::{load_capture, replay, FrameArena, ReplayOptions};
use tools::runtime::StrategyFactory;
use venue_sim::gen::GenConfig;
use wasm_host::{DeployConfig, WasmModule, WasmStrategy};

const BATCH: u64 = 1_000;
const PROBE: &str = include_str!("../strategies/wasm-host/testdata/probe.wat");
const NOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "tl_abi_version") (result i32) (i32.const 1))
  (func (export "tl_buffer") (result i32) (i32.const 1024))
  (func (export "tl_init") (param i32) (result i32) (i32.const 0))
  (func (export "tl_on_event") (result i32) (i32.const 0)))"#;
const LOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "tl_on_event") (result i32) (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (local.get $s) (i64.load (i32.const 1152))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 50))))
    (i32.wrap_i64 (i64.and (local.get $s) (i64.const 0)))))"#;

struct Tsc;
impl Clock for Tsc {
    fn now_ns(&self) -> u64 {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_nanos() as u64
    }
}

struct Noop(u64);
impl Strategy for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }
    fn on_trade(&mut self, _ctx: &mut Ctx<'_>, _t: &Trade) {
        self.0 += 1;
    }
}

fn module(name: &str, text: &str) -> WasmModule {
    WasmModule::compile(name, &wat::parse_str(text).unwrap()).unwrap()
}

fn wasm(name: &str, text: &str) -> Box<dyn Strategy> {
    Box::new(WasmStrategy::deploy(module(name, text), DeployConfig::default()).unwrap())
}

fn core_per_event(c: &mut Criterion) {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    // Trades 1 ms apart on the venue clock, continuing from batch to batch, so the paper venue
    // answers each IOC (after its 1 ms latency) and open orders stay few.
    let mut next = 0u64;
    let mut batch = move || -> Vec<Event> {
        (0..BATCH)
            .map(|_| {
                next += 1;
                Event::new(
                    1,
                    btc,
                    EventKind::Trade(Trade {
                        exch_ns: next * 1_000_000,
                        trade_id: next,
                        price: Price((60_000 + (next % 7) as i64) * SCALE),
                        qty: Qty(100_000),
                        buyer_maker: next.is_multiple_of(2),
                    }),
                )
            })
            .collect()
    };
    let mut g = c.benchmark_group("wasm");
    g.throughput(Throughput::Elements(BATCH));
    let cases: [(&str, Box<dyn Strategy>); 4] = [
        ("core_noop_native", Box::new(Noop(0))),
        ("core_noop_wasm", wasm("noop.wasm", NOOP)),
        (
            "core_probe_native",
            strategies::build("probe", Params::default()).unwrap(),
        ),
        ("core_probe_wasm", wasm("probe.wasm", PROBE)),
    ];
    for (name, strategy) in cases {
        let mut core = Core::new(&symbols, CoreConfig::default(), Tsc);
        let (mut tx, rx) = event_ring(4096, OnFull::Block);
        core.add_input(rx);
        core.set_strategy(btc, strategy).unwrap();
        g.bench_function(name, |b| {
            b.iter_batched(
                || tx.push_all(&batch()).unwrap(),
                |()| {
                    let mut n = 0;
                    while n < BATCH as usize {
                        n += core.poll(Tsc.now_ns());
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn metering(c: &mut Criterion) {
    use wasmtime::{Config, Engine, Instance, Module, Store};
    let bytes = wat::parse_str(LOOP).unwrap();
    let mut g = c.benchmark_group("wasm");
    for (name, fuel, epoch) in [
        ("metering_none", false, false),
        ("metering_fuel", true, false),
        ("metering_epoch", false, true),
    ] {
        let mut cfg = Config::new();
        cfg.consume_fuel(fuel);
        cfg.epoch_interruption(epoch);
        let engine = Engine::new(&cfg).unwrap();
        let m = Module::from_binary(&engine, &bytes).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &m, &[]).unwrap();
        let f = inst
            .get_typed_func::<(), i32>(&mut store, "tl_on_event")
            .unwrap();
        g.bench_function(name, |b| {
            b.iter(|| {
                if fuel {
                    store.set_fuel(100_000).unwrap();
                }
                if epoch {
                    store.set_epoch_deadline(1_000_000);
                }
                black_box(f.call(&mut store, ()).unwrap())
            })
        });
    }
    let bytes = wat::parse_str(PROBE).unwrap();
    g.bench_function("deploy_probe", |b| {
        b.iter(|| {
            let m = WasmModule::compile("probe.wasm", black_box(&bytes)).unwrap();
            black_box(WasmStrategy::deploy(m, DeployConfig::default()).unwrap())
        })
    });
    let m = WasmModule::compile("probe.wasm", &bytes).unwrap();
    g.bench_function("restart_probe", |b| {
        b.iter(|| black_box(WasmStrategy::deploy(m.clone(), DeployConfig::default()).unwrap()))
    });
    g.finish();
    // Memory per deployed instance.
    let rss = || -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        s.split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(0)
            * 4096
    };
    let before = rss();
    let many: Vec<WasmStrategy> = (0..100)
        .map(|_| WasmStrategy::deploy(m.clone(), DeployConfig::default()).unwrap())
        .collect();
    let after = rss();
    eprintln!(
        "memory per deployed probe instance: {} KiB resident ({} KiB of it its 1-page linear memory; 100 deployed, RSS {} -> {} KiB)",
        after.saturating_sub(before) / 100 / 1024,
        many[0].memory_bytes() / 1024,
        before / 1024,
        after / 1024
    );
}

fn replay_throughput(c: &mut Criterion) {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let (arena, what) = match testkit::shared_data_or_notice(testkit::BINANCE_SPOT) {
        Some(path) => (load_capture(&path, &mut symbols, btc).unwrap(), "real"),
        None => {
            let gen = GenConfig {
                symbols: vec!["BTCUSDT".into()],
                events: 41_248,
                seed: 5,
                start_ns: 1,
            };
            (
                FrameArena::generated(gen, &mut symbols).unwrap(),
                "generated",
            )
        }
    };
    let probe = module("probe.wasm", PROBE);
    let once = |arena: &FrameArena, symbols: &SymbolTable, btc: SymbolId, wasm: bool| {
        let m = probe.clone();
        let r = replay(
            arena,
            ReplayOptions {
                symbols: symbols.clone(),
                default_symbol: btc,
                strategy: (!wasm).then(|| ("probe".to_string(), Params::default())),
                custom_strategy: wasm.then(|| {
                    StrategyFactory(Box::new(move || {
                        Box::new(WasmStrategy::deploy_or_halted(
                            m.clone(),
                            DeployConfig::default(),
                        ))
                    }))
                }),
                pace: Pace::Asap,
                io_cpu: Some(0),
                core_cpu: Some(1),
                idle: IdleMode::Spin,
                ring_capacity: 65_536,
                core: CoreConfig::default(),
                metrics: None,
            },
        )
        .unwrap();
        std::time::Duration::from_nanos(r.elapsed_ns)
    };
    let mut g = c.benchmark_group(format!("replay/{what}"));
    g.sample_size(10);
    g.throughput(Throughput::Elements(arena.len() as u64));
    for wasm in [false, true] {
        let name = if wasm { "wasm" } else { "native" };
        g.bench_function(format!("pipeline_asap_probe_{name}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| once(&arena, &symbols, btc, wasm)).sum())
        });
    }
    g.finish();
}

criterion_group!(benches, core_per_event, metering, replay_throughput);
criterion_main!(benches);
