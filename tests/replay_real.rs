//! The real Binance spot capture through the real pipeline: every line read, nothing lost, the
//! book rebuilt from the snapshot with no gap and never crossed.

use engine::book::OrderBook;
use engine::core::{Core, CoreConfig};
use engine::event::BookTicker;
use engine::idle::IdleMode;
use engine::ring::{event_ring, OnFull};
use engine::strategy::{Ctx, Params, Strategy};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::BinanceDecoder;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tools::clock::MonoClock;
use tools::config::Pace;
use tools::pipeline::{
    load_capture, open_stream, replay, replay_passes, replay_stream, FrameArena, FrameKind,
    ReplayOptions,
};
use tools::runtime::RunReport;

const LINES: u64 = 41_249;

fn load() -> Option<(FrameArena, SymbolTable, SymbolId)> {
    let path = testkit::shared_data_or_notice(testkit::BINANCE_SPOT)?;
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let arena = load_capture(&path, &mut symbols, btc).unwrap();
    Some((arena, symbols, btc))
}

fn run(
    arena: &FrameArena,
    symbols: &SymbolTable,
    btc: SymbolId,
    strategy: Option<&str>,
) -> RunReport {
    replay(arena, options(symbols, btc, strategy)).unwrap()
}

fn options(symbols: &SymbolTable, btc: SymbolId, strategy: Option<&str>) -> ReplayOptions {
    ReplayOptions {
        symbols: symbols.clone(),
        default_symbol: btc,
        strategy: strategy.map(|s| (s.to_string(), Params::default())),
        custom_strategy: None,
        pace: Pace::Asap,
        io_cpu: None,
        core_cpu: None,
        idle: IdleMode::SpinYield { spins: 100 },
        ring_capacity: 4096,
        core: CoreConfig::default(),
        metrics: None,
    }
}

#[test]
fn real_capture_replays_through_the_pipeline_without_loss() {
    let Some((arena, symbols, btc)) = load() else {
        return;
    };
    assert_eq!(arena.len() as u64, LINES);
    assert_eq!(arena.unreadable, 0);
    let r = run(&arena, &symbols, btc, None);
    assert_eq!(r.frames, LINES);
    assert_eq!(r.decode.messages, LINES);
    assert_eq!(r.decode.decode_errors, 0, "{:?}", r.first_errors);
    assert_eq!(r.decode.ignored, 0);
    // Counts from SOURCES.md: 28,040 bookTicker, 9,757 trade, 3,451 depthUpdate, 1 snapshot.
    assert_eq!(r.core.book_tickers, 28_040);
    assert_eq!(r.core.trades, 9_757);
    assert_eq!(
        r.core.book_syncs, 1,
        "the book syncs once, from the one snapshot"
    );
    assert_eq!(r.core.book_gaps, 0);
    assert_eq!(r.core.book_crossed, 0);
    assert_eq!(r.core.snapshots_rejected, 0);
    assert_eq!(r.core.feed_gaps, 0);
    assert_eq!(r.ring.dropped, 0);
    assert!(r.book.messages_applied > 3_000, "{:?}", r.book);
    assert_eq!(r.latency.get(engine::latency::Stage::Decode).len(), LINES);
    assert_eq!(
        r.latency.get(engine::latency::Stage::QueueWait).len(),
        r.core.events
    );
}

#[test]
fn paper_trading_on_the_real_capture_is_deterministic() {
    let Some((arena, symbols, btc)) = load() else {
        return;
    };
    let a = run(&arena, &symbols, btc, Some("naive"));
    let b = run(&arena, &symbols, btc, Some("naive"));
    assert!(a.core.orders_sent > 0 && a.core.fills > 0, "{:?}", a.core);
    assert_eq!(a.core.orders_sent, b.core.orders_sent);
    assert_eq!(a.core.fills, b.core.fills);
    assert_eq!(
        a.positions, b.positions,
        "fills run on venue time, so any pace gives the same PnL"
    );
    let probe = run(&arena, &symbols, btc, Some("probe"));
    assert_eq!(
        probe.core.orders_sent, 9_757,
        "probe answers every trade once"
    );
    assert_eq!(probe.core.fills, 0, "probe orders rest 10% away and expire");
}

/// Checks every book the strategy sees: synced, best bid strictly below best ask, levels sorted.
struct BookInvariants {
    books_seen: Arc<AtomicU64>,
    violations: Arc<AtomicU64>,
}

impl Strategy for BookInvariants {
    fn name(&self) -> &'static str {
        "book-invariants"
    }
    fn on_book(&mut self, _ctx: &mut Ctx<'_>, book: &OrderBook) {
        self.books_seen.fetch_add(1, Ordering::Relaxed);
        let ok = book.is_synced()
            && match (book.best_bid(), book.best_ask()) {
                (Some(b), Some(a)) => b.price < a.price,
                _ => false,
            }
            && book
                .bids()
                .zip(book.bids().skip(1))
                .all(|(x, y)| x.price > y.price)
            && book
                .asks()
                .zip(book.asks().skip(1))
                .all(|(x, y)| x.price < y.price);
        if !ok {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn on_book_ticker(&mut self, _ctx: &mut Ctx<'_>, b: &BookTicker) {
        if b.bid_px >= b.ask_px {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn rebuilt_book_is_never_crossed() {
    let Some((arena, symbols, btc)) = load() else {
        return;
    };
    let books_seen = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(AtomicU64::new(0));
    let mut core = Core::new(&symbols, CoreConfig::default(), MonoClock);
    let (mut tx, rx) = event_ring(65_536, OnFull::Drop);
    core.add_input(rx);
    core.set_strategy(
        btc,
        Box::new(BookInvariants {
            books_seen: books_seen.clone(),
            violations: violations.clone(),
        }),
    )
    .unwrap();
    let mut dec = BinanceDecoder::new(symbols.clone());
    dec.set_default_symbol(Some(btc));
    let mut out = Vec::new();
    for i in 0..arena.len() {
        let (_, kind, payload) = arena.get(i).unwrap();
        out.clear();
        match kind {
            FrameKind::Stream => dec.decode(payload, 0, &mut out).unwrap(),
            FrameKind::Snapshot(s) => dec.decode_snapshot(payload, s, 0, &mut out).unwrap(),
        };
        tx.push_all(&out).unwrap();
        core.poll(0);
    }
    assert_eq!(tx.stats().dropped, 0);
    assert_eq!(violations.load(Ordering::Relaxed), 0);
    let applied = core.book_stats().messages_applied;
    // One on_book at the sync (which may apply several buffered messages at once), then one per
    // applied message.
    let seen = books_seen.load(Ordering::Relaxed);
    assert!(applied > 3_000);
    assert!(
        seen > 3_000 && seen <= applied + 1,
        "seen {seen}, applied {applied}"
    );
    let book = core.book(btc).unwrap();
    assert!(book.is_synced());
    assert!(book.best_bid().unwrap().price < book.best_ask().unwrap().price);
}

/// `--repeat N`: every pass is a fresh session that syncs from its own snapshot, so each pass
/// does the work of the first (before, passes 2..N dropped every diff as already applied: on
/// this capture `--repeat 5` gave 2 syncs, 4 resync requests and a gap).
#[test]
fn repeated_passes_each_sync_from_their_own_snapshot_and_trade_alike() {
    let Some((arena, symbols, btc)) = load() else {
        return;
    };
    let passes = |n: u32, strategy: &str| {
        replay_passes(&arena, n, options(&symbols, btc, Some(strategy))).unwrap()
    };
    let heap = arena.heap_bytes();
    let mut sma = Vec::new();
    for n in 1..=3u32 {
        let r = passes(n, "sma_cross");
        let k = u64::from(n);
        assert_eq!(r.frames, k * LINES);
        assert_eq!(r.decode.decode_errors, 0, "{:?}", r.first_errors);
        assert_eq!(r.core.book_syncs, k, "one sync per pass: {:?}", r.core);
        assert_eq!(r.core.book_gaps, 0, "{:?}", r.core);
        assert_eq!(r.core.snapshots_rejected, 0);
        assert_eq!(r.core.book_crossed, 0);
        assert_eq!(r.core.feed_gaps, 0);
        // The capture was recorded live: each session's first diff comes before its snapshot,
        // and asks for one (Binance's procedure: buffer, then fetch); the capture holds it.
        assert_eq!(
            r.core.resync_requests, k,
            "one per session, at its first diff"
        );
        assert_eq!(r.core.connection_changes, 2 * (k - 1));
        assert_eq!(r.ring.dropped, 0);
        assert_eq!(r.core.trades, k * 9_757);
        sma.push((r.core.orders_sent, r.core.fills, r.book.messages_applied));
    }
    // Every pass applies the same diffs to its book.
    assert_eq!(sma[1].2, 2 * sma[0].2, "{sma:?}");
    assert_eq!(sma[2].2, 3 * sma[0].2, "{sma:?}");
    // Passes 2 and 3 place and fill alike (fills run on venue time, moved on with each pass).
    // The strategy is not reset by a new session (nor by a reconnect), so pass 1, which starts
    // with empty averages, differs from later passes by its warm-up only.
    let pass = |i: usize| (sma[i].0 - sma[i - 1].0, sma[i].1 - sma[i - 1].1);
    assert_eq!(pass(1), pass(2), "{sma:?}");
    assert!(sma[0].0 > 50 && sma[0].1 > 50, "{sma:?}");
    assert!(pass(1).0.abs_diff(sma[0].0) <= 4, "{sma:?}");
    assert!(pass(1).1.abs_diff(sma[0].1) <= 4, "{sma:?}");
    // A stateless strategy: exactly the same orders in every pass.
    let probe = passes(3, "probe");
    assert_eq!(probe.core.orders_sent, 3 * 9_757);
    // One copy of the capture served every pass.
    assert_eq!(arena.heap_bytes(), heap);
}

/// The counters a replay's work is judged by, all deterministic (no timings).
fn work(r: &RunReport) -> [u64; 17] {
    let c = &r.core;
    [
        r.frames,
        r.decode.decode_errors,
        c.events,
        c.trades,
        c.book_tickers,
        c.depth_levels,
        c.book_syncs,
        c.book_gaps,
        c.resync_requests,
        c.connection_changes,
        c.feed_gaps,
        c.orders_sent,
        c.fills,
        c.rejects,
        c.canceled,
        c.orders_denied,
        r.book.messages_applied,
    ]
}

/// A streamed replay (reader thread, bounded chunks) does exactly the work of the in-memory
/// one on the real capture: one pass and `--repeat 3` (each pass a fresh session that syncs
/// from its own snapshot), with a strategy that trades on every cross.
#[test]
fn streamed_replay_matches_the_in_memory_replay() {
    let Some((arena, symbols, btc)) = load() else {
        return;
    };
    let path = testkit::shared_data_or_notice(testkit::BINANCE_SPOT).unwrap();
    for (passes, strategy) in [(1u32, "ema_cross"), (3, "ema_cross"), (3, "sma_cross")] {
        let memory = replay_passes(&arena, passes, options(&symbols, btc, Some(strategy))).unwrap();
        let mut stream_symbols = SymbolTable::new();
        stream_symbols.intern("BTCUSDT").unwrap();
        let stream = open_stream(&path, passes, &mut stream_symbols, false).unwrap();
        let streamed =
            replay_stream(stream, options(&stream_symbols, btc, Some(strategy))).unwrap();
        assert_eq!(work(&streamed), work(&memory), "{passes} x {strategy}");
        let k = u64::from(passes);
        assert_eq!(streamed.frames, k * LINES);
        assert_eq!(streamed.core.book_syncs, k, "{:?}", streamed.core);
        assert_eq!(streamed.core.book_gaps, 0);
        assert_eq!(streamed.ring.dropped, 0);
        assert!(streamed.core.orders_sent > 50 * k, "{:?}", streamed.core);
    }
}
