//! Zero allocations per event after warm-up, counted by a global allocator.
//!
//! One test function on purpose: the counter is process-wide, so nothing may run beside it.

use engine::core::{Core, CoreConfig};
use engine::idle::IdleMode;
use engine::ring::{event_ring, OnFull};
use engine::strategy::Params;
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::BinanceDecoder;
use tools::alloc::{allocations, CountingAlloc};
use tools::clock::MonoClock;
use tools::config::Pace;
use tools::pipeline::{load_capture, replay_passes, FrameArena, FrameKind, ReplayOptions};
use venue_sim::gen::GenConfig;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn generated(symbols: &mut SymbolTable) -> FrameArena {
    let gen = GenConfig {
        symbols: vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()],
        events: 30_000,
        seed: 11,
        start_ns: 1_000_000_000,
    };
    FrameArena::generated(gen, symbols).unwrap()
}

fn naive() -> Params {
    Params::new([("chunks", "8"), ("profit_interval", "0.0002")])
}

/// Decoder, ring and core on this thread: pass 1 warms up, pass 2 must not allocate.
fn single_thread_second_pass_allocations(
    arena: &FrameArena,
    symbols: &SymbolTable,
    default: SymbolId,
) -> (u64, u64) {
    let mut core = Core::new(symbols, CoreConfig::default(), MonoClock);
    let (mut tx, rx) = event_ring(65_536, OnFull::Drop);
    core.add_input(rx);
    for (id, _) in symbols.iter() {
        core.set_strategy(id, strategies::build("naive", naive()).unwrap())
            .unwrap();
    }
    let mut dec = BinanceDecoder::new(symbols.clone());
    dec.set_default_symbol(Some(default));
    let mut out = Vec::with_capacity(16_384);
    let mut pass = |core: &mut Core<MonoClock>| {
        for i in 0..arena.len() {
            let (_, kind, payload) = arena.get(i).unwrap();
            out.clear();
            let r = match kind {
                FrameKind::Stream => dec.decode(payload, MonoClock::now(), &mut out),
                FrameKind::Snapshot(s) => {
                    dec.decode_snapshot(payload, s, MonoClock::now(), &mut out)
                }
            };
            assert!(r.is_ok(), "frame {i}: {r:?}");
            tx.push_all(&out).unwrap();
            core.poll(MonoClock::now());
        }
    };
    pass(&mut core);
    let before = allocations();
    pass(&mut core);
    let during = allocations() - before;
    assert_eq!(tx.stats().dropped, 0);
    (during, core.counters().events)
}

/// Replays `arena` `passes` times through the threaded pipeline: (allocations while it ran,
/// allocations of the whole call, set-up included, events).
fn pipeline_allocations(
    arena: &FrameArena,
    passes: u32,
    symbols: &SymbolTable,
    default: SymbolId,
) -> (u64, u64, u64) {
    let before = allocations();
    let r = replay_passes(
        arena,
        passes,
        ReplayOptions {
            symbols: symbols.clone(),
            default_symbol: default,
            strategy: Some(("naive".into(), naive())),
            custom_strategy: None,
            pace: Pace::Asap,
            io_cpu: None,
            core_cpu: None,
            idle: IdleMode::SpinYield { spins: 100 },
            ring_capacity: 8192,
            core: CoreConfig::default(),
            metrics: None,
        },
    )
    .unwrap();
    let whole = allocations() - before;
    assert_eq!(r.decode.decode_errors, 0);
    (
        r.allocations.expect("replay measures allocations"),
        whole,
        r.core.events,
    )
}

#[test]
fn no_allocation_per_event_after_warm_up() {
    let mut symbols = SymbolTable::new();
    let arena = generated(&mut symbols);
    let default = SymbolId(0);

    let (allocs, events) = single_thread_second_pass_allocations(&arena, &symbols, default);
    assert!(events > 60_000, "{events}");
    assert_eq!(
        allocs, 0,
        "allocations while replaying {events} events after warm-up"
    );

    // The threaded pipeline: a feed and the same feed replayed twice allocate the same
    // (nothing) while they run; and set-up included, three passes allocate exactly what one
    // does, so the passes share the one arena (a copy per pass would allocate).
    let _warm = pipeline_allocations(&arena, 1, &symbols, default);
    let (once, whole_once, ev1) = pipeline_allocations(&arena, 1, &symbols, default);
    let (twice, _, ev2) = pipeline_allocations(&arena, 2, &symbols, default);
    let (_, whole_thrice, ev3) = pipeline_allocations(&arena, 3, &symbols, default);
    assert!(ev2 > ev1 && ev3 > ev2);
    assert_eq!(
        once, twice,
        "allocations must not grow with the number of events"
    );
    assert_eq!(once, 0);
    assert_eq!(
        whole_once, whole_thrice,
        "replaying three passes must not copy the arena"
    );

    match testkit::shared_data_or_notice(testkit::BINANCE_SPOT) {
        None => {}
        Some(path) => {
            let mut symbols = SymbolTable::new();
            let btc = symbols.intern("BTCUSDT").unwrap();
            let real = load_capture(&path, &mut symbols, btc).unwrap();
            let (allocs, events) = single_thread_second_pass_allocations(&real, &symbols, btc);
            assert_eq!(
                allocs, 0,
                "real capture: allocations over {events} events after warm-up"
            );
            let (once, _, _) = pipeline_allocations(&real, 1, &symbols, btc);
            let (twice, _, _) = pipeline_allocations(&real, 2, &symbols, btc);
            assert_eq!((once, twice), (0, 0));
        }
    }
}
