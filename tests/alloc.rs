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
use tools::pipeline::{
    load_capture, open_stream_with, replay_passes, replay_stream, FrameArena, FrameKind,
    ReplayOptions,
};
use venue_sim::gen::GenConfig;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn generated(symbols: &mut SymbolTable) -> FrameArena {
    FrameArena::generated(gen_config(), symbols).unwrap()
}

fn gen_config() -> GenConfig {
    GenConfig {
        symbols: vec!["BTCUSDT".to_string(), "ETHUSDT".to_string()],
        events: 30_000,
        seed: 11,
        start_ns: 1_000_000_000,
    }
}

fn naive() -> Params {
    Params::new([("chunks", "8"), ("profit_interval", "0.0002")])
}

/// The strategies the test runs, with their parameters.
fn strategy(name: &str) -> Params {
    match name {
        "naive" => naive(),
        _ => Params::default(),
    }
}

/// Decoder, ring and core on this thread: pass 1 warms up, pass 2 must not allocate.
fn single_thread_second_pass_allocations(
    arena: &FrameArena,
    symbols: &SymbolTable,
    default: SymbolId,
    name: &str,
) -> (u64, u64) {
    let mut core = Core::new(symbols, CoreConfig::default(), MonoClock);
    let (mut tx, rx) = event_ring(65_536, OnFull::Drop);
    core.add_input(rx);
    for (id, _) in symbols.iter() {
        core.set_strategy(id, strategies::build(name, strategy(name)).unwrap())
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
    let r = replay_passes(arena, passes, options(symbols, default, "naive")).unwrap();
    let whole = allocations() - before;
    assert_eq!(r.decode.decode_errors, 0);
    (
        r.allocations.expect("replay measures allocations"),
        whole,
        r.core.events,
    )
}

fn options(symbols: &SymbolTable, default: SymbolId, name: &str) -> ReplayOptions {
    ReplayOptions {
        symbols: symbols.clone(),
        default_symbol: default,
        strategy: Some((name.into(), strategy(name))),
        custom_strategy: None,
        pace: Pace::Asap,
        io_cpu: None,
        core_cpu: None,
        idle: IdleMode::SpinYield { spins: 100 },
        ring_capacity: 8192,
        core: CoreConfig::default(),
        metrics: None,
    }
}

/// A file in the temp dir, removed on drop.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The generated feed of [`generated`] written as a `.tlc` capture.
fn generated_file() -> TempFile {
    let path = std::env::temp_dir().join(format!("tickline-alloc-{}.tlc", std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    venue_sim::gen::write_tickline_capture(&gen_config(), &mut out).unwrap();
    std::io::Write::flush(&mut out).unwrap();
    TempFile(path)
}

/// Streams `path` `passes` times through the threaded pipeline (reader thread with 8 chunks of
/// 64 KiB, so they are recycled many times a pass): (allocations while it ran, events, orders).
fn stream_allocations(path: &std::path::Path, passes: u32, name: &str) -> (u64, u64, u64) {
    let mut symbols = SymbolTable::new();
    let default = symbols.intern("BTCUSDT").unwrap();
    let cfg = feeds::capture::StreamConfig {
        chunk_bytes: 64 << 10,
        chunks: 8,
        passes,
        progress: None,
    };
    let stream = open_stream_with(path, cfg, &mut symbols).unwrap();
    let r = replay_stream(stream, options(&symbols, default, name)).unwrap();
    assert_eq!(r.decode.decode_errors, 0);
    (
        r.allocations.expect("replay measures allocations"),
        r.core.events,
        r.core.orders_sent,
    )
}

#[test]
fn no_allocation_per_event_after_warm_up() {
    let mut symbols = SymbolTable::new();
    let arena = generated(&mut symbols);
    let default = SymbolId(0);

    for name in ["naive", "ema_cross"] {
        let (allocs, events) =
            single_thread_second_pass_allocations(&arena, &symbols, default, name);
        assert!(events > 60_000, "{events}");
        assert_eq!(
            allocs, 0,
            "{name}: allocations while replaying {events} events after warm-up"
        );
    }

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

    // The streaming reader: a pass allocates nothing while it runs, whatever the number of
    // chunks it recycles; a pass after the first reopens the file (a few buffers, the same
    // number every pass), so allocations grow with passes, never with events.
    let file = generated_file();
    let (_warm, _, _) = stream_allocations(&file.0, 1, "naive");
    let (s1, ev1, _) = stream_allocations(&file.0, 1, "naive");
    let (s2, ev2, _) = stream_allocations(&file.0, 2, "naive");
    let (s3, ev3, _) = stream_allocations(&file.0, 3, "naive");
    assert_eq!(s1, 0, "streamed pass over {ev1} events");
    assert!(ev2 > ev1 && ev3 > ev2);
    assert_eq!(s3 - s2, s2 - s1, "per pass, not per event: {s1} {s2} {s3}");
    assert!(s2 <= 8, "reopening the file for a pass: {s2} allocations");
    // ema_cross trades on every cross, with the orders and fills that brings.
    let (e1, _, orders) = stream_allocations(&file.0, 1, "ema_cross");
    assert!(orders > 100, "{orders}");
    assert_eq!(e1, 0, "ema_cross, streamed, {orders} orders");

    match testkit::shared_data_or_notice(testkit::BINANCE_SPOT) {
        None => {}
        Some(path) => {
            let mut symbols = SymbolTable::new();
            let btc = symbols.intern("BTCUSDT").unwrap();
            let real = load_capture(&path, &mut symbols, btc).unwrap();
            for name in ["naive", "ema_cross"] {
                let (allocs, events) =
                    single_thread_second_pass_allocations(&real, &symbols, btc, name);
                assert_eq!(
                    allocs, 0,
                    "real capture, {name}: allocations over {events} events after warm-up"
                );
            }
            let (once, _, _) = pipeline_allocations(&real, 1, &symbols, btc);
            let (twice, _, _) = pipeline_allocations(&real, 2, &symbols, btc);
            assert_eq!((once, twice), (0, 0));
        }
    }
}
