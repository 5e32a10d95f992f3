//! The chaos drill: the live engine against the loopback venue simulator, with the depth stream
//! on, through a hundred forced disconnects of every kind the simulator can inject, each at a
//! seeded random moment. After each one the engine must reconnect and resync its book before
//! the next; a drill strategy checks on every callback that the book it is handed is synced
//! and not crossed; every fault the venue injected must show in the engine's counters of its
//! kind; and the engine must still be running at the end.
//!
//! Reproducible: the kinds, their order and the pauses come from one seed
//! (`TICKLINE_CHAOS_SEED`, default [`DEFAULT_SEED`]); the venue performs each fault on demand
//! ([`VenueSim::inject`]), one at a time. Bounded: every wait has a deadline, and the run ends
//! by itself. Nothing is asserted on timing.
//!
//! `cargo test --release --test chaos -- --nocapture` prints the drill's counts.

use engine::book::OrderBook;
use engine::event::{BookTicker, Trade};
use engine::strategy::{Ctx, Strategy};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::config::Config;
use tools::live::{run_live, LiveOptions, StrategyFactory};
use venue_sim::gen::GenConfig;
use venue_sim::{FaultKind, Faults, SimConfig, SimPace, SimSource, VenueSim};

/// Forced disconnects in one drill.
const DISCONNECTS: usize = 100;
/// The drill's seed unless `TICKLINE_CHAOS_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5eed_c4a0_5d71_1100;

/// The kinds of forced disconnect, dealt evenly over the hundred, then shuffled.
const DISCONNECT_KINDS: [FaultKind; 7] = [
    FaultKind::Close,
    FaultKind::Reset,
    FaultKind::Hangup,
    FaultKind::Torn,
    FaultKind::Stall,
    FaultKind::Oversized,
    FaultKind::InvalidUtf8,
];

/// Longest pause between a resync and the next fault.
const MAX_PAUSE_MS: u64 = 150;
/// One garbage frame (not a disconnect) goes before about one fault in this many.
const GARBAGE_ONE_IN: u64 = 3;
/// Longest wait for anything the drill waits for (a reconnect and resync, a fault taken).
const DEADLINE: Duration = Duration::from_secs(20);

/// splitmix64: small, seeded, good enough to pick kinds and pauses.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the drill strategy saw, shared with the test.
#[derive(Debug, Default)]
struct Seen {
    ups: AtomicU64,
    downs: AtomicU64,
    /// First synced book handed after each connection came up.
    resyncs: AtomicU64,
    books: AtomicU64,
    trades: AtomicU64,
    /// `on_book` with a book that is not synced.
    stale_books: AtomicU64,
    /// A synced book with best bid at or above best ask (in `on_book`, or seen through `ctx`).
    crossed_books: AtomicU64,
    /// A book claiming to be synced while the feed is down, or after a reconnect before the
    /// fresh snapshot was handed over.
    stale_claims: AtomicU64,
    /// The feed went down again before the book resynced (the drill waits, so never).
    downs_before_resync: AtomicU64,
}

impl Seen {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Asserts nothing itself (a panic in a callback would be caught by the supervisor); counts
/// every violation for the test to check.
struct Drill {
    seen: Arc<Seen>,
    /// Between `on_connection(false)` and `on_connection(true)` (and before the first).
    down: bool,
    /// Up, but no synced book handed over since.
    awaiting_sync: bool,
}

fn crossed(book: &OrderBook) -> bool {
    matches!((book.best_bid(), book.best_ask()), (Some(b), Some(a)) if b.price >= a.price)
}

impl Drill {
    /// Checks the book a strategy can see through `ctx` outside `on_book`.
    fn check_ctx(&mut self, ctx: &Ctx<'_>) {
        let book = ctx.book();
        if book.is_synced() {
            if self.down || self.awaiting_sync {
                Seen::bump(&self.seen.stale_claims);
            }
            if crossed(book) {
                Seen::bump(&self.seen.crossed_books);
            }
        }
    }
}

impl Strategy for Drill {
    fn name(&self) -> &'static str {
        "chaos-drill"
    }

    fn on_trade(&mut self, ctx: &mut Ctx<'_>, _trade: &Trade) {
        Seen::bump(&self.seen.trades);
        self.check_ctx(ctx);
    }

    fn on_book_ticker(&mut self, ctx: &mut Ctx<'_>, _bbo: &BookTicker) {
        self.check_ctx(ctx);
    }

    fn on_book(&mut self, _ctx: &mut Ctx<'_>, book: &OrderBook) {
        Seen::bump(&self.seen.books);
        if !book.is_synced() || self.down {
            Seen::bump(&self.seen.stale_books);
            return;
        }
        if crossed(book) {
            Seen::bump(&self.seen.crossed_books);
        }
        if self.awaiting_sync {
            self.awaiting_sync = false;
            Seen::bump(&self.seen.resyncs);
        }
    }

    fn on_connection(&mut self, ctx: &mut Ctx<'_>, up: bool) {
        if up {
            Seen::bump(&self.seen.ups);
            self.down = false;
            self.awaiting_sync = true;
        } else {
            Seen::bump(&self.seen.downs);
            if self.awaiting_sync {
                Seen::bump(&self.seen.downs_before_resync);
            }
            self.down = true;
            self.awaiting_sync = false;
        }
        self.check_ctx(ctx);
    }
}

/// Waits (bounded) until `cond`; panics naming `what` and the state on the deadline.
fn wait_for(what: &str, seen: &Seen, venue: &VenueSim, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {DEADLINE:?}; strategy saw {seen:?}; venue {:?}",
            venue.stats().faults
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn seed() -> u64 {
    std::env::var("TICKLINE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

#[test]
fn hundred_disconnects_every_one_reconnects_and_resyncs() {
    let seed = seed();
    let mut rng = Rng(seed);
    // The hundred kinds: each kind 14 or 15 times, in a seeded order.
    let mut plan: Vec<FaultKind> = (0..DISCONNECTS)
        .map(|i| DISCONNECT_KINDS[i % DISCONNECT_KINDS.len()])
        .collect();
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i as u64 + 1) as usize);
    }

    let venue = VenueSim::start(SimConfig {
        source: SimSource::Generated(GenConfig {
            symbols: vec!["BTCUSDT".into()],
            events: 2_000_000,
            seed: 7,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        faults: Faults {
            oversized_bytes: 2 << 20, // over the engine's 1 MiB max_frame_size
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .expect("start the simulator");

    let mut cfg = Config::default(); // trade, bookTicker and depth@100ms on one combined URL
    cfg.venue.ws_url = venue.ws_url();
    cfg.venue.rest_url = venue.http_url();
    cfg.engine.io_cpu = Some(-1);
    cfg.engine.core_cpu = Some(-1);
    cfg.engine.idle = "backoff".into();
    cfg.net.idle_timeout_ms = 400;
    cfg.net.heartbeat_ms = 250;
    cfg.net.reconnect_initial_ms = 20;
    cfg.net.reconnect_max_ms = 100;
    cfg.control.enabled = false;
    assert!(
        cfg.venue.carries_depth(),
        "the drill needs the depth stream"
    );

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let engine = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            run_live(LiveOptions {
                cfg,
                strategy: None,
                custom_strategy: Some(StrategyFactory(Box::new(move || {
                    Box::new(Drill {
                        seen: seen.clone(),
                        down: true,
                        awaiting_sync: false,
                    })
                }))),
                record: None,
                duration: Some(Duration::from_secs(600)), // a backstop; the drill stops it
                status_every: None,
                stop,
                done: None,
            })
        })
    };

    wait_for("the first connect and sync", &seen, &venue, || {
        Seen::get(&seen.resyncs) >= 1
    });
    let mut garbage = 0u64;
    for (i, &kind) in plan.iter().enumerate() {
        std::thread::sleep(Duration::from_millis(rng.below(MAX_PAUSE_MS)));
        if rng.below(GARBAGE_ONE_IN) == 0 {
            venue.inject(FaultKind::Garbage);
            garbage += 1;
            wait_for("the venue to send garbage", &seen, &venue, || {
                venue.stats().faults.garbage_frames >= garbage
            });
        }
        venue.inject(kind);
        let n = i as u64 + 2;
        wait_for(
            &format!("reconnect and resync {n} after fault {} ({kind:?})", i + 1),
            &seen,
            &venue,
            || Seen::get(&seen.ups) >= n && Seen::get(&seen.resyncs) >= n,
        );
    }
    // Still running: frames keep coming after the last resync, and the run has not ended.
    let trades = Seen::get(&seen.trades);
    wait_for("trades after the last resync", &seen, &venue, || {
        Seen::get(&seen.trades) >= trades + 50
    });
    assert!(!engine.is_finished(), "the engine is still running");
    let downs_before_stop = Seen::get(&seen.downs);
    stop.store(true, Ordering::Relaxed);
    let report = engine
        .join()
        .expect("the engine thread")
        .expect("the live run ends cleanly");
    let io = report.io.expect("live runs report I/O counters");
    let sim = venue.stats();
    let f = sim.faults;
    let c = &report.core;

    println!(
        "chaos drill (seed {seed}): {DISCONNECTS} forced disconnects: {} clean closes, {} resets, \
         {} hang-ups, {} torn frames, {} stalls, {} oversized, {} invalid UTF-8; plus {} garbage \
         frames. Engine: {} connects, {} disconnects ({} peer closes, {} hang-ups, {} I/O errors, \
         {} idle timeouts, {} protocol errors), {} decode errors, {} reconnect attempts, \
         {} connect failures; core: {} book syncs, {} resync requests, {} snapshots rejected, \
         {} book gaps, {} crossed diffs; strategy: {} ups, {} resyncs, {} books, {} trades, \
         violations: {} stale, {} crossed, {} stale claims; ring drops {}",
        f.closes,
        f.resets,
        f.drops,
        f.torn_frames,
        f.stalls,
        f.oversized_frames,
        f.invalid_utf8_frames,
        f.garbage_frames,
        io.connects,
        io.disconnects,
        io.peer_closes,
        io.peer_hangups,
        io.io_errors,
        io.idle_timeouts,
        io.protocol_errors,
        io.decode_errors,
        io.reconnect_attempts,
        io.connect_failures,
        c.book_syncs,
        c.resync_requests,
        c.snapshots_rejected,
        c.book_gaps,
        c.book_crossed,
        Seen::get(&seen.ups),
        Seen::get(&seen.resyncs),
        Seen::get(&seen.books),
        Seen::get(&seen.trades),
        Seen::get(&seen.stale_books),
        Seen::get(&seen.crossed_books),
        Seen::get(&seen.stale_claims),
        report.ring.dropped,
    );

    // The venue injected exactly the plan.
    let planned = |k: FaultKind| plan.iter().filter(|&&p| p == k).count() as u64;
    assert_eq!(f.closes, planned(FaultKind::Close), "{f:?}");
    assert_eq!(f.resets, planned(FaultKind::Reset), "{f:?}");
    assert_eq!(f.drops, planned(FaultKind::Hangup), "{f:?}");
    assert_eq!(f.torn_frames, planned(FaultKind::Torn), "{f:?}");
    assert_eq!(f.stalls, planned(FaultKind::Stall), "{f:?}");
    assert_eq!(f.oversized_frames, planned(FaultKind::Oversized), "{f:?}");
    assert_eq!(
        f.invalid_utf8_frames,
        planned(FaultKind::InvalidUtf8),
        "{f:?}"
    );
    assert_eq!(f.garbage_frames, garbage, "{f:?}");

    // 100/100 reconnects, and nothing else went down.
    assert_eq!(io.disconnects, DISCONNECTS as u64, "{io:?}");
    assert_eq!(io.connects, DISCONNECTS as u64 + 1, "{io:?}");
    assert_eq!(Seen::get(&seen.ups), DISCONNECTS as u64 + 1);
    assert_eq!(downs_before_stop, DISCONNECTS as u64);

    // Every injected fault counted by the engine under its kind.
    assert_eq!(io.peer_closes, f.closes, "clean closes: {io:?}");
    assert_eq!(io.io_errors, f.resets, "resets are socket errors: {io:?}");
    assert_eq!(
        io.peer_hangups,
        f.drops + f.torn_frames,
        "hang-ups, torn frames included (the part of a torn frame that came is discarded by \
         the WebSocket layer, so the engine cannot tell them apart): {io:?}"
    );
    assert_eq!(
        io.idle_timeouts, f.stalls,
        "stalls end in idle timeouts: {io:?}"
    );
    assert_eq!(
        io.protocol_errors,
        f.oversized_frames + f.invalid_utf8_frames,
        "oversized and invalid UTF-8 frames are protocol errors: {io:?}"
    );
    assert_eq!(io.decode_errors, f.garbage_frames, "garbage: decode errors");

    // The book resynced after each: one fresh synced book handed over per connection.
    assert_eq!(Seen::get(&seen.resyncs), DISCONNECTS as u64 + 1);
    assert_eq!(Seen::get(&seen.downs_before_resync), 0);
    // Exactly one sync per connection: no sequence gap, no snapshot asked for twice (the
    // snapshot is fetched once the new connection's first diff is buffered, so it never
    // predates the diffs it must bridge), nothing lost on the way in.
    assert_eq!(c.book_syncs, DISCONNECTS as u64 + 1, "{c:?}");
    assert_eq!(c.resync_requests, DISCONNECTS as u64 + 1, "{c:?}");
    assert_eq!(
        (
            c.book_gaps,
            c.feed_gaps,
            c.book_crossed,
            c.snapshots_rejected
        ),
        (0, 0, 0, 0),
        "{c:?}"
    );
    // Zero crossed or stale books handed to the strategy.
    assert_eq!(Seen::get(&seen.stale_books), 0, "stale books handed over");
    assert_eq!(
        Seen::get(&seen.crossed_books),
        0,
        "crossed books handed over"
    );
    assert_eq!(
        Seen::get(&seen.stale_claims),
        0,
        "a book claimed synced while the feed was down or before its fresh snapshot"
    );
    assert!(Seen::get(&seen.books) > DISCONNECTS as u64);
    assert_eq!(report.ring.dropped, 0);
}
