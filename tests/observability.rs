//! Loop lag, slow callbacks and time dilation through the real replay pipeline.

use engine::core::CoreConfig;
use engine::event::Trade;
use engine::idle::IdleMode;
use engine::latency::Stage;
use engine::strategy::{Ctx, Strategy};
use engine::symbol::SymbolTable;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tools::config::Pace;
use tools::live::StrategyFactory;
use tools::pipeline::{replay, FrameArena, FrameKind, ReplayOptions};
use tools::runtime::RunReport;
use venue_sim::gen::{FeedGenerator, GenConfig, GenKind};

/// A generated feed whose capture times span about `span_ms` milliseconds.
fn feed(events: u64, span_ms: u64) -> (FrameArena, SymbolTable) {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let mut gen = FeedGenerator::new(GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed: 4,
        start_ns: 1_000_000_000,
    })
    .unwrap();
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while let Some(f) = gen.next_frame(&mut buf) {
        frames.push((f.kind, buf.clone()));
    }
    // Spread the frames evenly over the span so the pacing is known exactly.
    let step = span_ms * 1_000_000 / frames.len() as u64;
    let mut arena = FrameArena::default();
    for (i, (kind, payload)) in frames.iter().enumerate() {
        let kind = match kind {
            GenKind::Snapshot => FrameKind::Snapshot(btc),
            _ => FrameKind::Stream,
        };
        arena.push(1_000_000_000 + i as u64 * step, kind, payload);
    }
    (arena, symbols)
}

fn run(
    arena: &FrameArena,
    symbols: &SymbolTable,
    pace: Pace,
    factory: StrategyFactory,
    slow_ns: u64,
) -> RunReport {
    replay(
        arena,
        ReplayOptions {
            symbols: symbols.clone(),
            default_symbol: engine::symbol::SymbolId(0),
            strategy: None,
            custom_strategy: Some(factory),
            pace,
            io_cpu: None,
            core_cpu: None,
            idle: IdleMode::SpinYield { spins: 100 },
            ring_capacity: 65_536,
            core: CoreConfig {
                slow_callback_ns: slow_ns,
                ..CoreConfig::default()
            },
            metrics: None,
        },
    )
    .unwrap()
}

/// Sleeps in its first few trade callbacks; sets one timer at the first trade.
struct Sleepy {
    sleeps_left: u32,
    timer_after_ns: u64,
    set_at: Arc<AtomicU64>,
    fired_at: Arc<AtomicU64>,
}

impl Strategy for Sleepy {
    fn name(&self) -> &'static str {
        "sleepy"
    }
    fn on_trade(&mut self, ctx: &mut Ctx<'_>, _t: &Trade) {
        if self.set_at.load(Ordering::Relaxed) == 0 {
            self.set_at.store(ctx.now_ns(), Ordering::Relaxed);
            ctx.set_timer(ctx.now_ns() + self.timer_after_ns, 1)
                .unwrap();
        }
        if self.sleeps_left > 0 {
            self.sleeps_left -= 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_>, _token: u64) {
        self.fired_at.store(ctx.now_ns(), Ordering::Relaxed);
    }
}

fn sleepy(sleeps: u32, timer_after_ns: u64) -> (StrategyFactory, Arc<AtomicU64>, Arc<AtomicU64>) {
    let set_at = Arc::new(AtomicU64::new(0));
    let fired_at = Arc::new(AtomicU64::new(0));
    let (s, f) = (set_at.clone(), fired_at.clone());
    let factory = StrategyFactory(Box::new(move || {
        Box::new(Sleepy {
            sleeps_left: sleeps,
            timer_after_ns,
            set_at: s.clone(),
            fired_at: f.clone(),
        })
    }));
    (factory, set_at, fired_at)
}

#[test]
fn a_sleeping_strategy_is_flagged_slow_and_the_loop_lag_shows_it() {
    let (arena, symbols) = feed(5_000, 100);
    let (factory, _, _) = sleepy(3, 1);
    // A 1 ms threshold: an ordinary callback descheduled on a busy two-CPU machine can exceed
    // 50 us, never (in practice) a millisecond; the sleeping ones take 2 ms.
    let r = run(&arena, &symbols, Pace::Asap, factory, 1_000_000);
    assert_eq!(
        r.core.slow_callbacks, 3,
        "exactly the three 2 ms callbacks are over 1 ms"
    );
    let strategy = r.latency.get(Stage::Strategy).percentiles();
    assert!(strategy.max >= 2_000_000, "{strategy:?}");
    let iteration = r.latency.get(Stage::LoopIteration).percentiles();
    assert!(
        iteration.max >= 2_000_000,
        "a loop iteration took the sleep: {iteration:?}"
    );
}

#[test]
fn timers_run_on_the_replay_clock_scaled_by_the_pace() {
    // 2 s of capture at x20 takes ~100 ms; a timer 1 s of replay time after the first trade
    // must fire about 50 ms of wall time later, on the replay clock.
    let (arena, symbols) = feed(4_000, 2_000);
    let (factory, set_at, fired_at) = sleepy(0, 1_000_000_000);
    let t0 = Instant::now();
    let r = run(&arena, &symbols, Pace::Scaled(20.0), factory, 50_000);
    let wall = t0.elapsed();
    assert_eq!(r.core.timers_fired, 1);
    let (set, fired) = (
        set_at.load(Ordering::Relaxed),
        fired_at.load(Ordering::Relaxed),
    );
    assert!(
        (1_000_000_000..3_000_000_000).contains(&set),
        "replay clock runs inside the capture's span (1 s to 3 s), not on the host's: {set}"
    );
    let waited = fired - set;
    assert!(
        waited >= 1_000_000_000,
        "fired no earlier than asked: {waited}"
    );
    // How late it fired depends on the machine (a descheduled core is late on the replay clock
    // too), so the lag is checked for being recorded, not bounded: bounds on timing belong in
    // benchmarks. What pacing guarantees is a floor: 2 s of capture at x20 cannot take less
    // than ~100 ms of wall time (an asap replay of these frames takes a few ms).
    let lag = r.latency.get(Stage::TimerLag).percentiles();
    assert_eq!(lag.count, 1, "{lag:?}");
    assert!(
        wall >= Duration::from_millis(90),
        "x20 replay of 2 s took only {wall:?}: not paced"
    );
    assert_eq!(r.paced, Some(20.0));
}

#[test]
fn asap_timers_fire_on_the_frames_clock_however_long_the_core_is_held() {
    // Asap: the core's clock is the capture time of the frame whose events it is handling
    // (engine `core/frames.rs`), not that of the latest frame the feed decoded. The 2 ms sleep
    // holds the core while the feed runs thousands of frames (0.5 ms of capture time each)
    // ahead; the timer set at the first trade for 1 ms of replay time still fires at the first
    // frame at or after its time, before that frame's events: late by less than a frame. (The
    // clock used to be the feed's, and this timer fired tens of ms of replay time late.)
    let (arena, symbols) = feed(20_000, 10_000);
    let step = 10_000 * 1_000_000 / arena.len() as u64;
    let (factory, set_at, fired_at) = sleepy(1, 1_000_000);
    let r = run(&arena, &symbols, Pace::Asap, factory, 50_000);
    assert_eq!(r.core.timers_fired, 1);
    let (set, fired) = (
        set_at.load(Ordering::Relaxed),
        fired_at.load(Ordering::Relaxed),
    );
    assert!(
        set > 0 && fired >= set + 1_000_000,
        "set {set}, fired {fired}"
    );
    assert!(
        fired - set - 1_000_000 < step,
        "fired {} ns after its time; frames are {step} ns apart",
        fired - set - 1_000_000
    );
    let lag = r.latency.get(Stage::TimerLag).percentiles();
    assert_eq!(lag.count, 1);
    // The histogram keeps 3 significant digits: its max may round up a little.
    assert!(lag.max <= step + step / 100, "{lag:?}");
}
