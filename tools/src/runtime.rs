//! One runtime for live and replay: the core thread's loop, the strategies it starts with, and
//! the [`RunReport`] both kinds of run end with.
//!
//! **What it owns.** A [`CoreRunner`] owns the [`Core`] and its metrics hand-off
//! ([`MetricsRun`]) and moves them onto the core thread (`tickline-core`, pinned to its CPU when
//! one is given); [`CoreEnd`] hands them back to the caller's thread when the loop ends. Live
//! (`live::run_live`) and replay (`pipeline::replay_passes`) differ in two things only, both chosen by
//! a type parameter and so resolved at compile time (no dynamic dispatch, no extra branch per
//! iteration): where the core's time comes from ([`CoreTime`]: the monotonic clock live, the
//! capture's time in replay) and what the loop publishes besides metrics ([`Publish`]: the
//! live status line's counters, nothing in replay).
//!
//! **The loop.** Poll the core at the [`CoreTime`]'s now; tick the metrics hand-off (every poll
//! live, where now is already the monotonic clock; every 16th poll in replay, which must read
//! the clock for it); publish; end when the core polled nothing and every input ring is closed
//! (the feed ended, or a stop made the producers drop their rings); otherwise idle as
//! [`IdleMode`] says.
//!
//! **What allocates.** Building the runner and starting its thread, and [`CoreEnd::finish`]
//! (the report's latency and positions), all off the loop. The loop itself allocates nothing,
//! makes no syscall of its own beyond the clock reads named above, and takes no lock.

use crate::alloc::allocations;
use crate::clock::MonoClock;
use crate::config::Pace;
use crate::metrics::MetricsRun;
use crate::threads::{register_current, Place};
use anyhow::{Context, Result};
use engine::core::{Clock, Core};
use engine::idle::{IdleJitter, IdleMode, Idler};
use engine::latency::{LatencyHist, Stage, StageLatency};
use engine::metrics::CoreCounters;
use engine::portfolio::Position;
use engine::ring::TxStats;
use engine::strategy::Params;
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::DecodeStats;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{JoinHandle, Scope, ScopedJoinHandle};

/// Builds a strategy instance for one symbol (for strategies that are not in the `strategies`
/// crate, such as a benchmark's measuring tap).
pub struct StrategyFactory(pub Box<dyn Fn() -> Box<dyn engine::strategy::Strategy> + Send>);

impl std::fmt::Debug for StrategyFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StrategyFactory")
    }
}

/// Installs on `id` the caller's strategy (`custom` first, else `named` from the `strategies`
/// crate); with neither, leaves the symbol without one.
pub fn install_strategy<C: Clock>(
    core: &mut Core<C>,
    id: SymbolId,
    custom: Option<&StrategyFactory>,
    named: Option<&(String, Params)>,
) -> Result<()> {
    match build_strategy(custom, named)? {
        Some(strategy) => core
            .set_strategy(id, strategy)
            .map_err(|e| anyhow::anyhow!("strategy: {e}")),
        None => Ok(()),
    }
}

/// The caller's strategy (`custom` first, else `named` from the `strategies` crate), or `None`
/// with neither.
pub fn build_strategy(
    custom: Option<&StrategyFactory>,
    named: Option<&(String, Params)>,
) -> Result<Option<Box<dyn engine::strategy::Strategy>>> {
    Ok(match (custom, named) {
        (Some(factory), _) => Some((factory.0)()),
        (None, Some((name, params))) => Some(
            strategies::build(name, params.clone())
                .map_err(|e| anyhow::anyhow!("strategy: {e}"))?,
        ),
        (None, None) => None,
    })
}

/// What a run measured, live or replay; the `summary` module prints it (text or JSON).
#[derive(Debug)]
pub struct RunReport {
    /// Frames replayed.
    pub frames: u64,
    /// Decoder counters (summed over venues).
    pub decode: DecodeStats,
    /// Per-venue counts of a replay, one per venue with frames (empty for a live run).
    pub venues: Vec<crate::pipeline::VenueCounts>,
    /// Ring producer counters.
    pub ring: TxStats,
    /// Core counters.
    pub core: CoreCounters,
    /// Book counters (all symbols).
    pub book: engine::book::BookStats,
    /// Positions by symbol name (`VENUE:NAME` off Binance spot, whose symbols keep their bare
    /// names: [`crate::venues::qualified_name`]).
    pub positions: Vec<(String, Position)>,
    /// Every stage (decode from the feed thread, the rest from the core).
    pub latency: StageLatency,
    /// Feed start to core drained, ns.
    pub elapsed_ns: u64,
    /// Feed start to the feed thread's last push, ns (how long reading and decoding took).
    pub feed_elapsed_ns: u64,
    /// Allocations while the pipeline ran (both threads); `None` where not measured (live runs,
    /// whose REST and recorder side threads allocate by design).
    pub allocations: Option<u64>,
    /// Whether each thread got its CPU.
    pub pinned: (bool, bool),
    /// First decode errors (index, message), for the report.
    pub first_errors: Vec<(usize, String)>,
    /// Connection counters of a live run (None in replay).
    pub io: Option<feeds::io::IoCounters>,
    /// The pace factor of a paced replay: its stages are measured from each frame's intended
    /// send time (coordinated-omission corrected).
    pub paced: Option<f64>,
    /// The order session of a live run with `orders.enabled`.
    pub session: Option<feeds::orders::session::SessionCounters>,
    /// Every thread of the run with its CPUs, context switches and page faults, and the
    /// process's page faults ([`crate::threads`]).
    pub threads: crate::threads::ThreadsReport,
    /// The machine's hiccups on the core's CPU, measured in the core's idle polls
    /// ([`crate::hiccups`]).
    pub machine_hiccups: crate::hiccups::Hiccups,
    /// The machine's hiccups on the feed's CPU, measured while a paced replay's feed spins
    /// until a frame is due (None for an asap replay, whose feed never waits, and a live run).
    pub feed_hiccups: Option<crate::hiccups::Hiccups>,
}

/// Where the core loop's time comes from: the monotonic clock live, the capture's time in
/// replay.
pub trait CoreTime: Send {
    /// Called once on the core thread, after the start barrier (if any), before the first poll.
    fn start(&mut self);
    /// The time to poll the core at.
    fn now(&mut self) -> u64;
    /// After a poll at `now` (with metrics on): the monotonic time to tick the metrics hand-off
    /// with, or `None` to skip it this poll.
    fn handoff_now(&mut self, now: u64) -> Option<u64>;
}

/// Live time: the monotonic clock, which is also the hand-off's clock, so the hand-off ticks
/// every poll at no extra clock read.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveTime;

impl CoreTime for LiveTime {
    #[inline]
    fn start(&mut self) {}

    #[inline]
    fn now(&mut self) -> u64 {
        MonoClock::now()
    }

    #[inline]
    fn handoff_now(&mut self, now: u64) -> Option<u64> {
        Some(now)
    }
}

/// Replay time: in a paced replay the monotonic clock since the start scaled by the pace factor,
/// from the capture's first frame's time. An asap replay's core takes its clock from the frame
/// times the feed sends beside the events (`engine::core::Core::set_frame_times`), so `now` is
/// then only the capture's start, which the core does not read. The hand-off needs the
/// monotonic clock; reading it every 16th poll keeps the cost off the per-poll path (an interval
/// ends at most 16 polls late).
#[derive(Debug)]
pub struct ReplayTime {
    pace: Pace,
    first_capture_ns: u64,
    start: u64,
    polls: u32,
}

impl ReplayTime {
    /// Replay time for `pace`; `first_capture_ns` is the capture time of the first frame.
    pub fn new(pace: Pace, first_capture_ns: u64) -> ReplayTime {
        ReplayTime {
            pace,
            first_capture_ns,
            start: 0,
            polls: 0,
        }
    }
}

impl CoreTime for ReplayTime {
    #[inline]
    fn start(&mut self) {
        self.start = MonoClock::now();
    }

    #[inline]
    fn now(&mut self) -> u64 {
        match self.pace {
            Pace::Asap => self.first_capture_ns,
            Pace::Scaled(f) => {
                self.first_capture_ns + ((MonoClock::now() - self.start) as f64 * f) as u64
            }
        }
    }

    #[inline]
    fn handoff_now(&mut self, _now: u64) -> Option<u64> {
        self.polls = self.polls.wrapping_add(1);
        self.polls.is_multiple_of(16).then(MonoClock::now)
    }
}

/// What the core loop publishes for other threads after each poll, besides metrics.
pub trait Publish: Send {
    /// After a poll at `now`.
    fn publish<C: Clock>(&mut self, now: u64, core: &Core<C>);
}

/// Replay publishes nothing.
impl Publish for () {
    #[inline]
    fn publish<C: Clock>(&mut self, _now: u64, _core: &Core<C>) {}
}

/// Counters the core thread publishes for the live status line (a store every 100 ms, not per
/// event).
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct CoreStatus {
    /// Events the core handled.
    pub events: AtomicU64,
    /// Book syncs.
    pub syncs: AtomicU64,
    /// Book gaps and feed gaps.
    pub gaps: AtomicU64,
    /// Orders sent.
    pub orders: AtomicU64,
    /// Fills.
    pub fills: AtomicU64,
    /// Monotonic time of the loop's last publish, ns (0: not polling yet): the liveness
    /// heartbeat ([`crate::health`]); stored with the counters, not per poll.
    pub last_poll_ns: AtomicU64,
    /// Each symbol's book, by table index, for readiness: [`BOOK_NOT_EXPECTED`],
    /// [`BOOK_SYNCED`] or [`BOOK_NOT_SYNCED`] (see `Core::book_ready`). Empty unless made by
    /// [`CoreStatus::with_symbols`].
    pub books: Box<[AtomicU8]>,
}

/// [`CoreStatus::books`]: no book is expected to sync (the symbol does not trade, or no depth
/// diffs feed it).
pub const BOOK_NOT_EXPECTED: u8 = 0;
/// [`CoreStatus::books`]: the book is synced.
pub const BOOK_SYNCED: u8 = 1;
/// [`CoreStatus::books`]: the symbol trades on a depth feed and its book is not synced.
pub const BOOK_NOT_SYNCED: u8 = 2;

impl CoreStatus {
    /// Counters and a book cell for each of `symbols` symbols.
    pub fn with_symbols(symbols: usize) -> CoreStatus {
        CoreStatus {
            books: (0..symbols)
                .map(|_| AtomicU8::new(BOOK_NOT_EXPECTED))
                .collect(),
            ..CoreStatus::default()
        }
    }
}

/// Publishes the core's counters into a [`CoreStatus`] every 100 ms of the loop's (monotonic)
/// time.
#[derive(Debug)]
pub struct StatusPublisher {
    status: Arc<CoreStatus>,
    next_pub: u64,
}

impl StatusPublisher {
    /// Publishes into `status`, first at the first poll.
    pub fn new(status: Arc<CoreStatus>) -> StatusPublisher {
        StatusPublisher {
            status,
            next_pub: 0,
        }
    }
}

impl Publish for StatusPublisher {
    #[inline]
    fn publish<C: Clock>(&mut self, now: u64, core: &Core<C>) {
        if now >= self.next_pub {
            let c = core.counters();
            let status = &self.status;
            status.events.store(c.events, Ordering::Relaxed);
            status.syncs.store(c.book_syncs, Ordering::Relaxed);
            status
                .gaps
                .store(c.book_gaps + c.feed_gaps, Ordering::Relaxed);
            status.orders.store(c.orders_sent, Ordering::Relaxed);
            status.fills.store(c.fills, Ordering::Relaxed);
            for (i, cell) in status.books.iter().enumerate() {
                let b = match core.book_ready(i) {
                    None => BOOK_NOT_EXPECTED,
                    Some(true) => BOOK_SYNCED,
                    Some(false) => BOOK_NOT_SYNCED,
                };
                cell.store(b, Ordering::Relaxed);
            }
            status.last_poll_ns.store(now, Ordering::Relaxed);
            self.next_pub = now + 100_000_000;
        }
    }
}

/// The core thread of a run, live or replay: see the [module docs](self).
#[derive(Debug)]
pub struct CoreRunner<T, P> {
    /// The core, inputs and strategies installed.
    pub core: Core<MonoClock>,
    /// The metrics hand-off (None: no metrics thread).
    pub metrics: Option<MetricsRun>,
    /// The CPU to pin the core thread to.
    pub cpu: Option<usize>,
    /// What the loop does when a poll found nothing.
    pub idle: IdleMode,
    /// Where the loop's time comes from.
    pub time: T,
    /// What the loop publishes after each poll.
    pub publish: P,
    /// Wait here before the first poll (replay starts the feed and the core together).
    pub start: Option<Arc<Barrier>>,
}

/// The core thread's result: the core and its metrics hand-off, back on the caller's thread.
#[derive(Debug)]
pub struct CoreEnd {
    /// The core, as the loop left it.
    pub core: Core<MonoClock>,
    /// Monotonic time the loop ended.
    pub end_ns: u64,
    /// The process's allocation count when the loop ended.
    pub end_allocs: u64,
    /// Whether the core thread got its CPU.
    pub pinned: bool,
    /// The metrics hand-off, to finish.
    pub metrics: Option<MetricsRun>,
    /// The gaps between the core's empty, spinning polls: the machine's hiccups on its CPU.
    pub idle_jitter: IdleJitter,
}

/// The core's side of a [`RunReport`], from [`CoreEnd::finish`].
#[derive(Debug)]
pub struct CoreSummary {
    /// The core.
    pub core: Core<MonoClock>,
    /// Every stage the core and the metrics thread measured, and the feed side's decode.
    pub latency: StageLatency,
    /// Positions by symbol name (`VENUE:NAME` off Binance spot, whose symbols keep their bare
    /// names: [`crate::venues::qualified_name`]).
    pub positions: Vec<(String, Position)>,
    /// The machine's hiccups on the core's CPU during the run ([`CoreEnd::idle_jitter`]).
    pub machine_hiccups: crate::hiccups::Hiccups,
}

impl<T: CoreTime, P: Publish> CoreRunner<T, P> {
    /// The core loop, on the calling thread, until the core's inputs are finished.
    pub fn run(self) -> CoreEnd {
        let CoreRunner {
            mut core,
            mut metrics,
            cpu,
            idle,
            mut time,
            mut publish,
            start,
        } = self;
        // Placed and registered here, not by the spawner, so a caller running the loop on its
        // own thread is counted too; the counters are read now and when `registration` drops,
        // never in the loop.
        let registration = register_current("tickline-core", Place::Core(cpu));
        let pinned = registration.placed;
        crate::threads::prefault_stack();
        // Every buffer the core writes, and the clock's first call (vDSO set-up), fault in
        // here rather than in the run.
        core.prefault();
        std::hint::black_box(crate::clock::MonoClock::now());
        let mut jitter = IdleJitter::new();
        // The core's switches and faults count from its first poll (well, from here), not
        // from its start-up.
        registration.restart_count();
        if let Some(b) = start {
            b.wait();
        }
        time.start();
        let mut idler = Idler::new(idle);
        loop {
            let now = time.now();
            let n = core.poll(now);
            if let Some(m) = metrics.as_mut() {
                if let Some(t) = time.handoff_now(now) {
                    m.handoff.tick(t, &mut core);
                }
            }
            publish.publish(now, &core);
            if n == 0 && core.inputs_finished() {
                break;
            }
            idler.after_poll(n > 0);
            // The machine's hiccups, timed only between empty polls (see `crate::hiccups`).
            if n == 0 {
                jitter.idle(MonoClock::now(), idler.spun());
            } else {
                jitter.busy(core.last_poll_start_ns());
            }
        }
        let end_ns = MonoClock::now();
        let end_allocs = allocations();
        drop(registration);
        CoreEnd {
            core,
            end_ns,
            end_allocs,
            pinned,
            metrics,
            idle_jitter: jitter,
        }
    }
}

impl<T: CoreTime + 'static, P: Publish + 'static> CoreRunner<T, P> {
    /// Runs the loop on a new core thread.
    pub fn spawn(self) -> Result<JoinHandle<CoreEnd>> {
        // Placed by `run` itself (`Place::Core`), registered with the caller's run.
        crate::threads::spawn("tickline-core", None, move || self.run())
            .context("spawning the core thread")
    }
}

impl<'scope, T: CoreTime + 'scope, P: Publish + 'scope> CoreRunner<T, P> {
    /// Runs the loop on a new core thread of `scope`.
    pub fn spawn_scoped<'env>(
        self,
        scope: &'scope Scope<'scope, 'env>,
    ) -> Result<ScopedJoinHandle<'scope, CoreEnd>> {
        crate::threads::spawn_scoped(scope, "tickline-core", None, move || self.run())
            .context("spawning the core thread")
    }
}

impl CoreEnd {
    /// Ends the metrics thread and gathers the run's latency (the metrics thread's totals, the
    /// core's last interval, and the feed side's `decode` histogram) and positions.
    pub fn finish(self, symbols: &SymbolTable, decode: &LatencyHist) -> Result<CoreSummary> {
        let CoreEnd {
            mut core,
            metrics,
            idle_jitter,
            ..
        } = self;
        let mut latency = StageLatency::new();
        if let Some(m) = metrics {
            latency.merge(
                &m.finish(&mut core)
                    .context("ending the metrics thread")?
                    .latency,
            );
        }
        latency.merge(core.latency());
        latency.record_hist(Stage::Decode, decode);
        let positions = symbols
            .iter_venues()
            .filter_map(|(id, venue, name)| {
                core.position(id)
                    .map(|p| (crate::venues::qualified_name(venue, name), *p))
            })
            .collect();
        Ok(CoreSummary {
            core,
            latency,
            positions,
            machine_hiccups: crate::hiccups::Hiccups::from_jitter(&idle_jitter),
        })
    }
}

/// Joins a thread of the run, naming it in the error if it panicked.
pub fn join<R>(handle: JoinHandle<R>, what: &str) -> Result<R> {
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the {what} thread panicked"))
}
