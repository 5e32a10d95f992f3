//! Engine benchmarks: ring hop, book update, latency recording, and full replay throughput.
//!
//! Inputs come from the real Binance spot capture in `../shared/data` when present, otherwise
//! from the deterministic generator (the bench says which).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::book::{BookConfig, OrderBook};
use engine::core::CoreConfig;
use engine::event::{Connection, Event, EventKind};
use engine::idle::IdleMode;
use engine::latency::LatencyHist;
use engine::ring::{event_ring, OnFull};
use engine::strategy::Params;
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::BinanceDecoder;
use std::hint::black_box;
use tools::config::Pace;
use tools::pipeline::{load_capture, replay, FrameArena, FrameKind, ReplayOptions};
use venue_sim::gen::GenConfig;

/// The real capture if present, else a generated one (one symbol, BTCUSDT).
fn input() -> (FrameArena, SymbolTable, SymbolId, &'static str) {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    if let Some(path) = testkit::shared_data_or_notice(testkit::BINANCE_SPOT) {
        let arena = load_capture(&path, &mut symbols, btc).unwrap();
        return (arena, symbols, btc, "real");
    }
    let gen = GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events: 41_248,
        seed: 5,
        start_ns: 1,
    };
    let arena = FrameArena::generated(gen, &mut symbols).unwrap();
    (arena, symbols, btc, "generated")
}

fn decode_all(arena: &FrameArena, symbols: &SymbolTable, btc: SymbolId) -> Vec<Event> {
    let mut dec = BinanceDecoder::new(symbols.clone());
    dec.set_default_symbol(Some(btc));
    let mut out = Vec::new();
    for i in 0..arena.len() {
        let (_, kind, p) = arena.get(i).unwrap();
        let _ = match kind {
            FrameKind::Stream => dec.decode(p, 0, &mut out),
            FrameKind::Snapshot(s) => dec.decode_snapshot(p, s, 0, &mut out),
        };
    }
    out
}

fn ring_hop(c: &mut Criterion) {
    let ev = Event::new(
        1,
        SymbolId(0),
        EventKind::ConnectionUp(Connection {
            conn_id: 1,
            venue: None,
        }),
    );
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(1));
    let (mut tx, mut rx) = event_ring(4096, OnFull::Drop);
    g.bench_function("push_pop_same_thread", |b| {
        b.iter(|| {
            tx.push(black_box(ev)).unwrap();
            black_box(rx.pop().unwrap());
        })
    });
    // One round trip across two threads (two hops), like the design's reference figure.
    g.bench_function("ping_pong_two_hops", |b| {
        let (mut to_tx, mut to_rx) = event_ring(64, OnFull::Block);
        let (mut back_tx, mut back_rx) = event_ring(64, OnFull::Block);
        let echo = std::thread::spawn(move || loop {
            match to_rx.pop() {
                Ok(e) => {
                    if e.recv_ns == u64::MAX {
                        return;
                    }
                    back_tx.push(e).unwrap();
                }
                Err(_) => std::hint::spin_loop(),
            }
        });
        b.iter(|| {
            to_tx.push(ev).unwrap();
            loop {
                if let Ok(e) = back_rx.pop() {
                    break black_box(e);
                }
                std::hint::spin_loop();
            }
        });
        let mut stop = ev;
        stop.recv_ns = u64::MAX;
        to_tx.push(stop).unwrap();
        echo.join().unwrap();
    });
    g.finish();
}

fn book_update(c: &mut Criterion) {
    let (arena, symbols, btc, what) = input();
    let events = decode_all(&arena, &symbols, btc);
    let levels: Vec<_> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Snapshot(s) => Some(Err(s)),
            EventKind::Depth(d) => Some(Ok(d)),
            _ => None,
        })
        .collect();
    let diff_levels = levels.iter().filter(|l| l.is_ok()).count();
    let mut g = c.benchmark_group(format!("book/{what}"));
    g.throughput(Throughput::Elements(diff_levels as u64));
    g.bench_function("apply_capture_depth_and_snapshot", |b| {
        b.iter_batched_ref(
            || OrderBook::new(BookConfig::default()),
            |book| {
                for l in &levels {
                    black_box(match l {
                        Ok(d) => book.apply_depth(d),
                        Err(s) => book.apply_snapshot(s),
                    });
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn latency_record(c: &mut Criterion) {
    let mut h = LatencyHist::new();
    let mut v = 1u64;
    c.bench_function("latency/record_one_sample", |b| {
        b.iter(|| {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.record(black_box(v >> 44));
        })
    });
}

fn replay_once(
    arena: &FrameArena,
    symbols: &SymbolTable,
    btc: SymbolId,
    strategy: Option<&str>,
    metrics: Option<tools::metrics::MetricsConfig>,
) -> std::time::Duration {
    let r = replay(
        arena,
        ReplayOptions {
            symbols: symbols.clone(),
            default_symbol: btc,
            strategy: strategy.map(|s| (s.to_string(), Params::default())),
            custom_strategy: None,
            pace: Pace::Asap,
            io_cpu: Some(0),
            core_cpu: Some(1),
            idle: IdleMode::Spin,
            ring_capacity: 65_536,
            core: CoreConfig::default(),
            metrics,
        },
    )
    .unwrap();
    std::time::Duration::from_nanos(r.elapsed_ns)
}

fn replay_throughput(c: &mut Criterion) {
    let (arena, symbols, btc, what) = input();
    let mut g = c.benchmark_group(format!("replay/{what}"));
    g.sample_size(10);
    g.throughput(Throughput::Elements(arena.len() as u64));
    for strategy in [None, Some("naive")] {
        let name = strategy.unwrap_or("none");
        g.bench_function(format!("pipeline_asap_strategy_{name}"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| replay_once(&arena, &symbols, btc, strategy, None))
                    .sum()
            })
        });
    }
    // Metrics on, side by side: a real UDP receiver stands in for StatsD, and the interval is
    // 1 ms (so a 10 ms replay hands over about ten snapshots, where 1 s would hand over none).
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sink.local_addr().unwrap().to_string();
    sink.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let drain = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut got = 0u64;
        let mut idle = 0;
        while idle < 50 {
            match sink.recv(&mut buf) {
                Ok(_) => {
                    got += 1;
                    idle = 0;
                }
                Err(_) => idle += 1,
            }
        }
        got
    });
    let metrics = tools::metrics::MetricsConfig {
        statsd: Some(addr),
        interval: std::time::Duration::from_millis(1),
        ..tools::metrics::MetricsConfig::default()
    };
    g.bench_function("pipeline_asap_strategy_naive_metrics_1ms_statsd", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| replay_once(&arena, &symbols, btc, Some("naive"), Some(metrics.clone())))
                .sum()
        })
    });
    g.finish();
    let datagrams = drain.join().unwrap();
    eprintln!("metrics sink received {datagrams} StatsD datagrams");
}

criterion_group!(
    benches,
    ring_hop,
    book_update,
    latency_record,
    replay_throughput
);
criterion_main!(benches);
