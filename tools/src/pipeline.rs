//! The replay pipeline: a feed thread decodes frames into a ring, the core thread consumes.
//!
//! ```text
//!  FrameArena (capture loaded in memory) ─┐
//!  or CaptureStream (capture-reader thread)┴▶ feed thread (pinned, io_cpu): stamp, decode, push
//!                                              │ rtrb SPSC ring of Event
//!                                              ▼
//!                                          core thread (pinned, core_cpu): Core::poll loop
//! ```
//!
//! Frames are decoded per venue: every frame carries its venue (its connection's, see
//! [`crate::replay_input`], which also reads several captures merged by receive time), and the
//! feed thread holds one decoder per venue of the replay ([`AnyDecoder`], built by each venue's
//! adapter; a venue this build has no adapter for is refused by name before the run). The
//! report counts per venue too ([`VenueCounts`]: frames, decoder counters, the venue's books).
//!
//! The capture is read and decompressed into a [`FrameArena`] before the clock starts, so the
//! figures measure decode, ring, book and strategy, not gzip or the disk. A capture too large
//! for that is streamed instead ([`open_stream`], [`replay_stream`]): a `capture-reader` thread
//! reads, decompresses and parses ahead into a bounded set of recycled chunks
//! ([`feeds::capture::CaptureStream`]) that the feed thread reads in place, so memory stays
//! bounded whatever the capture's size; the feed thread does the same work on the same frames
//! and the counters come out the same. The allocation counter
//! is read when both threads are ready and again when the core has drained the ring. The core
//! thread is the runtime's one core runner ([`CoreRunner`], the same loop as a live run's) on
//! replay time ([`ReplayTime`]).
//!
//! # Repeated passes (`--repeat N`)
//!
//! [`replay_passes`] replays the one arena N times; nothing is copied, so memory stays that of
//! one pass (a streamed replay reads the file again for each pass). Each pass after the first is a fresh session, as after a reconnect: the feed thread
//! pushes `ConnectionDown` then `ConnectionUp` (what the I/O thread pushes when a connection
//! drops and comes back), so the core marks every book stale and asks for a resync, and the
//! pass's own snapshot syncs the book again (without it, the venue's update ids would start over
//! and every diff of passes 2..N would be dropped as already applied). Time moves on between
//! passes as it would across a reconnect: pass `k` runs `k * (capture span + 1 s)` later, both on
//! the replay clock and in the exchange timestamps of its events (so the paper venue, which runs
//! on venue time, fills pass `k`'s orders as it filled pass 1's). A paced replay therefore waits
//! the 1 s gap, scaled by the pace, between passes.

use crate::alloc::allocations;
use crate::clock::MonoClock;
use crate::config::Pace;
use crate::runtime::{build_strategy, CoreRunner, CoreSummary, ReplayTime, RunReport};
use crate::threads::{register_current, Place};
use anyhow::{bail, Context, Result};
use engine::core::{Core, CoreConfig};
use engine::idle::IdleMode;
use engine::latency::{BatchedHist, LatencyHist};
use engine::ring::{event_ring, OnFull, TxStats};
use engine::strategy::{Params, Strategy};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use feeds::venue::{AnyDecoder, DecodeStats, MarketDecoder};
use std::path::Path;
use std::sync::{Arc, Barrier};

/// What a frame is, for the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A WebSocket text frame (combined-stream or bare payload; a line capture's unwrapped REST
    /// snapshot too, attributed to the default symbol).
    Stream,
    /// A REST depth snapshot for this symbol.
    Snapshot(SymbolId),
}

#[derive(Clone, Copy, Debug)]
struct FrameRef {
    capture_ns: u64,
    start: usize,
    len: usize,
    kind: FrameKind,
    venue: Venue,
}

/// Every frame of a capture, in one buffer, ready to be replayed without I/O.
#[derive(Debug, Default)]
pub struct FrameArena {
    bytes: Vec<u8>,
    frames: Vec<FrameRef>,
    /// The venues of the frames held (bit [`Venue::index`]).
    venues: u32,
    /// Input lines or records that could not be read (malformed capture lines).
    pub unreadable: u64,
}

impl FrameArena {
    /// Appends a Binance spot frame.
    pub fn push(&mut self, capture_ns: u64, kind: FrameKind, payload: &[u8]) {
        self.push_on(Venue::Binance, capture_ns, kind, payload);
    }

    /// Appends a frame of `venue` (decoded by that venue's decoder).
    pub fn push_on(&mut self, venue: Venue, capture_ns: u64, kind: FrameKind, payload: &[u8]) {
        self.frames.push(FrameRef {
            capture_ns,
            start: self.bytes.len(),
            len: payload.len(),
            kind,
            venue,
        });
        self.venues |= 1 << venue.index();
        self.bytes.extend_from_slice(payload);
    }

    /// The venues of the frames held, in [`Venue::ALL`] order.
    pub fn venues(&self) -> Vec<Venue> {
        venues_of_mask(self.venues)
    }

    /// Frame `i`'s venue.
    pub fn venue(&self, i: usize) -> Option<Venue> {
        self.frames.get(i).map(|f| f.venue)
    }

    /// Frames held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i`: capture time, kind, payload.
    pub fn get(&self, i: usize) -> Option<(u64, FrameKind, &[u8])> {
        let f = self.frames.get(i)?;
        Some((
            f.capture_ns,
            f.kind,
            self.bytes.get(f.start..f.start + f.len)?,
        ))
    }

    /// The deterministic synthetic feed of `gen`, generated in memory; its symbols are interned
    /// into `symbols`.
    pub fn generated(
        gen: venue_sim::gen::GenConfig,
        symbols: &mut SymbolTable,
    ) -> Result<FrameArena> {
        let ids = gen
            .symbols
            .iter()
            .map(|n| symbols.intern(n).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<Result<Vec<_>>>()?;
        let mut g = venue_sim::gen::FeedGenerator::new(gen).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut arena = FrameArena::default();
        let mut buf = Vec::new();
        while let Some(f) = g.next_frame(&mut buf) {
            let kind = match (f.kind, ids.get(f.symbol)) {
                (venue_sim::gen::GenKind::Snapshot, Some(&id)) => FrameKind::Snapshot(id),
                _ => FrameKind::Stream,
            };
            arena.push(f.recv_ns, kind, &buf);
        }
        Ok(arena)
    }

    /// Capture time from the first frame to the last, plus one nanosecond (0 if empty).
    pub fn span_ns(&self) -> u64 {
        match (self.frames.first(), self.frames.last()) {
            (Some(f), Some(l)) => l.capture_ns.saturating_sub(f.capture_ns) + 1,
            _ => 0,
        }
    }

    /// Heap bytes held (payload bytes and frame index, by capacity): what one copy of the
    /// capture costs in memory.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.frames.capacity() * core::mem::size_of::<FrameRef>()
    }
}

/// Time between the end of one pass of a repeated replay and the start of the next, as if the
/// session had reconnected: 1 s, on the replay clock and in the exchange timestamps.
pub const PASS_GAP_NS: u64 = 1_000_000_000;

/// How much later than recorded pass `pass` (0-based) of a repeated replay runs: on the replay
/// clock and in every exchange timestamp.
pub fn pass_offset_ns(arena: &FrameArena, pass: u32) -> u64 {
    (arena.span_ns() + PASS_GAP_NS).saturating_mul(u64::from(pass))
}

/// Moves an event's exchange time `by` ns later (for the passes of a repeated replay).
#[inline]
fn shift_exchange_time(ev: &mut engine::event::Event, by: u64) {
    use engine::event::EventKind;
    let t = match &mut ev.kind {
        EventKind::Trade(t) => &mut t.exch_ns,
        EventKind::AggTrade(t) => &mut t.exch_ns,
        EventKind::Depth(d) => &mut d.exch_ns,
        _ => return,
    };
    if *t > 0 {
        *t = t.saturating_add(by);
    }
}

/// Loads a capture file (any format `tickline replay` reads: the line format, plain or gzip;
/// `.tlc`; cryptofeed v1 text or v3 JSONL, plain or zstd) into memory.
///
/// Snapshot records name their symbol in `.tlc`; a line capture's REST snapshot names none and
/// belongs to `default_symbol`, whose venue is also the venue of every connection the capture
/// does not name by URL. The instruments the capture names (subscriptions, stream URLs, REST
/// depth URLs, snapshot records) are interned into `symbols` on their venues. Unreadable lines
/// and a torn last record are counted in [`FrameArena::unreadable`] and reported (the first
/// five) on stderr; the rest is replayed. See [`crate::replay_input::load_captures`] for
/// several captures merged.
pub fn load_capture(
    path: &Path,
    symbols: &mut SymbolTable,
    default_symbol: SymbolId,
) -> Result<FrameArena> {
    let venue = symbols.venue(default_symbol);
    let name = symbols.name(default_symbol).map(str::to_string);
    crate::replay_input::load_captures(
        &[crate::replay_input::CaptureInput {
            path: path.to_path_buf(),
            venue,
        }],
        symbols,
        name.as_deref(),
    )
}

/// Captures up to this size on disk (64 MiB) are loaded into memory by `tickline replay`;
/// larger ones are streamed ([`open_stream`]). A gzip capture of 64 MiB decompresses to roughly
/// half a gigabyte (the spot capture's ratio is about 8:1), which is what loading it costs.
pub const IN_MEMORY_MAX_FILE_BYTES: u64 = 64 << 20;

/// One or more captures opened for a streamed replay, merged by receive time
/// ([`feeds::capture::MergedStream`]): their reader threads are already reading ahead.
#[derive(Debug)]
pub struct StreamedCapture {
    pub(crate) merged: feeds::capture::MergedStream,
    pub(crate) paths: Vec<std::path::PathBuf>,
    pub(crate) passes: u32,
    /// Receive time of the first market-data frame.
    pub(crate) first_capture_ns: u64,
    /// Unreadable records before the first chunk (already reported).
    pub(crate) head_errors: u64,
    /// The venues found in the captures' first chunks (bit [`Venue::index`]).
    pub(crate) venues: u32,
    /// Each input's `--venue`, if given.
    pub(crate) input_venues: Vec<Option<Venue>>,
    /// Each input's symbol of symbol-less snapshots (line captures), if interned.
    pub(crate) defaults: Vec<Option<SymbolId>>,
}

/// Reports the first five unreadable records of a capture on stderr (the rest are counted).
#[cold]
pub(crate) fn report_unreadable(path: &Path, count: u64, e: &dyn std::fmt::Display) {
    if count <= 5 {
        eprintln!("warning: {}: {e}", path.display());
    }
}

/// Opens a capture (any format) for a streamed replay of `passes` passes: a reader thread
/// (`capture-reader`) reads, decompresses and parses ahead into a bounded set of recycled
/// chunks (16 of 1 MiB; see [`feeds::capture::CaptureStream`]), so memory does not grow with
/// the capture. With `progress`, a progress line is kept up to date on stderr.
///
/// Symbols: the core is built before the replay starts, so the instruments the capture names
/// are taken from its first chunk (where recorders write connects, subscriptions and `.tlc`
/// snapshot records); a snapshot for a symbol first named later is reported as an error of
/// that frame and skipped (load such a capture with `--in-memory`). A line capture's snapshots
/// belong to the replay's default symbol, as in [`load_capture`]. See
/// [`crate::replay_input::open_streams`] for several captures merged.
pub fn open_stream(
    path: &Path,
    passes: u32,
    symbols: &mut SymbolTable,
    progress: bool,
) -> Result<StreamedCapture> {
    let cfg = feeds::capture::StreamConfig {
        passes,
        progress: progress.then(progress_line),
        ..Default::default()
    };
    open_stream_with(path, cfg, symbols)
}

/// [`open_stream`] with the stream's chunk sizes, passes and progress callback spelled out.
pub fn open_stream_with(
    path: &Path,
    cfg: feeds::capture::StreamConfig,
    symbols: &mut SymbolTable,
) -> Result<StreamedCapture> {
    let passes = cfg.passes;
    let mut cfg = Some(cfg);
    crate::replay_input::open_streams_with(
        &[crate::replay_input::CaptureInput {
            path: path.to_path_buf(),
            venue: None,
        }],
        passes,
        &mut |_| cfg.take().unwrap_or_default(),
        symbols,
        None,
    )
}

/// The progress line: bytes and records read, % of the file where its size is known; redrawn
/// in place (`\r`), ended with a newline when reading is done.
pub(crate) fn progress_line() -> feeds::capture::ProgressFn {
    Box::new(|p: &feeds::capture::StreamProgress| {
        use std::io::Write;
        let mib = p.bytes_read as f64 / f64::from(1 << 20);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\rcapture: {mib:.0} MiB read");
        if let Some(pct) = p.percent() {
            let _ = write!(err, " ({pct:.1} %)");
        }
        let _ = write!(
            err,
            ", {:.2} M records, pass {}",
            p.records as f64 / 1e6,
            p.pass + 1
        );
        let _ = if p.done {
            writeln!(err, ", done")
        } else {
            write!(err, "   ")
        };
    })
}

/// How to run a replay.
#[derive(Debug)]
pub struct ReplayOptions {
    /// Symbols to trade (all symbols found in the capture must be interned before the run).
    pub symbols: SymbolTable,
    /// Symbol of symbol-less frames (a line capture's REST snapshot).
    pub default_symbol: SymbolId,
    /// Strategy name and parameters (None: no strategy).
    pub strategy: Option<(String, Params)>,
    /// Instead of `strategy`: a strategy built by the caller, one instance per symbol.
    pub custom_strategy: Option<crate::runtime::StrategyFactory>,
    /// Pacing.
    pub pace: Pace,
    /// Feed thread CPU.
    pub io_cpu: Option<usize>,
    /// Core thread CPU.
    pub core_cpu: Option<usize>,
    /// Core idle policy.
    pub idle: IdleMode,
    /// Ring capacity.
    pub ring_capacity: usize,
    /// Core sizes and paper venue.
    pub core: CoreConfig,
    /// Ship the core's metrics (StatsD) at an interval; None: no metrics thread.
    pub metrics: Option<crate::metrics::MetricsConfig>,
}

struct FeedResult {
    frames: u64,
    decode: DecodeStats,
    /// Per venue with frames: frames fed to its decoder, its counters.
    venues: Vec<(Venue, u64, DecodeStats)>,
    ring: TxStats,
    decode_hist: LatencyHist,
    /// The gaps between the clock readings of the feed's spin-waits (a paced replay's).
    wait_jitter: Option<engine::idle::IdleJitter>,
    start_ns: u64,
    end_ns: u64,
    start_allocs: u64,
    pinned: bool,
    first_errors: Vec<(usize, String)>,
}

/// Runs the pipeline over `arena` once and waits for it to finish.
pub fn replay(arena: &FrameArena, opts: ReplayOptions) -> Result<RunReport> {
    replay_passes(arena, 1, opts)
}

/// Runs the pipeline over `arena` `passes` times back to back (at least once), each pass after
/// the first a fresh session (see the [module docs](self)), and waits for it to finish. The
/// arena is read in place by every pass, never copied.
pub fn replay_passes(arena: &FrameArena, passes: u32, opts: ReplayOptions) -> Result<RunReport> {
    replay_passes_with(arena, passes, opts, &mut |_, s| s)
}

/// [`replay_passes`], with each symbol's strategy handed to `wrap` before it is installed (the
/// backtest report's tap, [`crate::backtest::tap::Taps::wrap`], wraps it so).
pub fn replay_passes_with(
    arena: &FrameArena,
    passes: u32,
    opts: ReplayOptions,
    wrap: &mut dyn FnMut(SymbolId, Box<dyn Strategy>) -> Box<dyn Strategy>,
) -> Result<RunReport> {
    run_pipeline(Source::Memory(arena), passes, opts, wrap)
}

/// Runs the pipeline over a streamed capture (every pass it was opened with; see
/// [`open_stream`]) and waits for it to finish. The same work as [`replay_passes`] on the same
/// capture loaded into memory, with the same counters; memory stays bounded by the stream's
/// chunks whatever the capture's size.
pub fn replay_stream(stream: StreamedCapture, opts: ReplayOptions) -> Result<RunReport> {
    replay_stream_with(stream, opts, &mut |_, s| s)
}

/// [`replay_stream`], with each symbol's strategy handed to `wrap` (as [`replay_passes_with`]).
pub fn replay_stream_with(
    stream: StreamedCapture,
    opts: ReplayOptions,
    wrap: &mut dyn FnMut(SymbolId, Box<dyn Strategy>) -> Box<dyn Strategy>,
) -> Result<RunReport> {
    let passes = stream.passes;
    let report = run_pipeline(Source::Stream(Box::new(stream)), passes, opts, wrap)?;
    if report.decode.unknown_symbol > 0 {
        tracing::warn!(
            target: "tickline::replay",
            "{} frames named instruments this streamed replay did not learn from the first chunk \
             of each capture (a connection that opens later, or a capture not in time order); \
             they are counted as unknown_symbol. --in-memory reads the whole capture first",
            report.decode.unknown_symbol
        );
    }
    Ok(report)
}

/// Where a replay's frames come from.
enum Source<'a> {
    Memory(&'a FrameArena),
    Stream(Box<StreamedCapture>),
}

fn run_pipeline(
    source: Source<'_>,
    passes: u32,
    opts: ReplayOptions,
    wrap: &mut dyn FnMut(SymbolId, Box<dyn Strategy>) -> Box<dyn Strategy>,
) -> Result<RunReport> {
    let passes = passes.max(1);
    // The run's threads: the caller's (tickline's own), or a new run placed by the options.
    let (run_threads, _entered) = crate::threads::current_or_new(opts.io_cpu, opts.core_cpu);
    let (first_capture_ns, reported) = match &source {
        Source::Memory(arena) => (arena.get(0).map(|f| f.0).unwrap_or(0), arena.venues),
        Source::Stream(s) => (s.first_capture_ns, s.venues),
    };
    // A stream knows only the venues of its first chunk; a connection of another venue may
    // open later (the Bybit capture's spot connection does), so every venue this build decodes
    // gets a decoder. Only venues that delivered frames, or that the capture named, are
    // reported.
    let venue_mask = match &source {
        Source::Memory(_) => reported,
        Source::Stream(_) => Venue::ALL
            .into_iter()
            .filter(|v| feeds::venue::adapter(*v).is_some())
            .fold(reported, |m, v| m | 1 << v.index()),
    };
    let decoders = decoders_for(venue_mask, &opts.symbols, opts.default_symbol)?;
    let (tx, rx) = event_ring(opts.ring_capacity, OnFull::Block);
    let mut core = Core::new(&opts.symbols, opts.core, MonoClock);
    core.add_input(rx);
    // An asap replay's core clocks each frame's events at the frame's capture time, sent beside
    // them (engine `core/frames.rs`): the feed runs up to a ring ahead. Every frame time in
    // flight has at least one event in the ring, or is the one frame the feed is pushing.
    let frame_times = match opts.pace {
        Pace::Asap => {
            let (ftx, frx) = rtrb::RingBuffer::new(opts.ring_capacity + 1);
            core.set_frame_times(frx, first_capture_ns);
            Some(ftx)
        }
        Pace::Scaled(_) => None,
    };
    for (id, _) in opts.symbols.iter() {
        if let Some(s) = build_strategy(opts.custom_strategy.as_ref(), opts.strategy.as_ref())? {
            core.set_strategy(id, wrap(id, s))
                .map_err(|e| anyhow::anyhow!("strategy: {e}"))?;
        }
    }
    let metrics = crate::metrics::start(opts.metrics.clone(), &core, &opts.symbols, None)?;
    let barrier = Arc::new(Barrier::new(2));
    let pace = opts.pace;
    let lookup = opts.symbols.clone();
    let default_symbol = opts.default_symbol;

    std::thread::scope(|scope| -> Result<RunReport> {
        let feed_barrier = barrier.clone();
        let io_cpu = opts.io_cpu;
        let feed = crate::threads::spawn_scoped(scope, "tickline-feed", None, move || {
            // Registered here, so that `pinned` is known; its end counters are read
            // without allocating, after the feed's last push.
            let registration = register_current("tickline-feed", Place::Io(io_cpu));
            let pinned = registration.placed;
            let mut feed = Feed::new(decoders, reported, tx, pace, first_capture_ns);
            feed.frame_times = frame_times;
            match source {
                Source::Memory(arena) => feed.run_memory(arena, passes, &feed_barrier, pinned),
                Source::Stream(stream) => {
                    feed.run_stream(*stream, &lookup, default_symbol, &feed_barrier, pinned)
                }
            }
        })
        .context("spawning the feed thread")?;
        let core_handle = CoreRunner {
            core,
            metrics,
            cpu: opts.core_cpu,
            idle: opts.idle,
            time: ReplayTime::new(pace, first_capture_ns),
            publish: (),
            start: Some(barrier.clone()),
        }
        .spawn_scoped(scope)?;
        let feed = feed
            .join()
            .map_err(|_| anyhow::anyhow!("the feed thread panicked"))?;
        let end = core_handle
            .join()
            .map_err(|_| anyhow::anyhow!("the core thread panicked"))?;
        let (end_ns, end_allocs, core_pinned) = (end.end_ns, end.end_allocs, end.pinned);
        let CoreSummary {
            core,
            latency,
            positions,
            machine_hiccups,
        } = end.finish(&opts.symbols, &feed.decode_hist)?;
        let venues = venue_counts(&feed.venues, &core, &opts.symbols);
        Ok(RunReport {
            venues,
            session: None,
            frames: feed.frames,
            decode: feed.decode,
            ring: feed.ring,
            core: *core.counters(),
            book: core.book_stats(),
            positions,
            latency,
            elapsed_ns: end_ns.saturating_sub(feed.start_ns),
            feed_elapsed_ns: feed.end_ns.saturating_sub(feed.start_ns),
            allocations: Some(end_allocs.saturating_sub(feed.start_allocs)),
            pinned: (feed.pinned, core_pinned),
            first_errors: feed.first_errors,
            io: None,
            paced: match pace {
                Pace::Scaled(f) => Some(f),
                Pace::Asap => None,
            },
            threads: run_threads.report(),
            machine_hiccups,
            feed_hiccups: feed
                .wait_jitter
                .as_ref()
                .map(crate::hiccups::Hiccups::from_jitter),
        })
    })
}

/// One decoder per venue of the replay (index [`Venue::index`]).
type Decoders = [Option<AnyDecoder>; Venue::COUNT];

/// The venues of a mask (bit [`Venue::index`]), in [`Venue::ALL`] order.
pub(crate) fn venues_of_mask(mask: u32) -> Vec<Venue> {
    Venue::ALL
        .into_iter()
        .filter(|v| mask & (1 << v.index()) != 0)
        .collect()
}

/// A decoder for each venue in `mask` over `symbols`; a venue this build has no adapter for is
/// an error naming it. Binance spot's decoder gets `default_symbol` for symbol-less snapshots
/// if it is a Binance spot symbol.
fn decoders_for(mask: u32, symbols: &SymbolTable, default_symbol: SymbolId) -> Result<Decoders> {
    let mut out: Decoders = Default::default();
    for v in venues_of_mask(mask) {
        let Some(adapter) = feeds::venue::adapter(v) else {
            bail!(
                "venue {v} is not in this build: no decoder for it (this build decodes {})",
                Venue::ALL
                    .into_iter()
                    .filter(|v| feeds::venue::adapter(*v).is_some())
                    .map(Venue::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let mut d = adapter.decoder(symbols.clone());
        if let AnyDecoder::Binance(b) = &mut d {
            if symbols.venue(default_symbol) == Some(v) {
                b.set_default_symbol(Some(default_symbol));
            }
        }
        out[v.index()] = Some(d);
    }
    Ok(out)
}

/// Per-venue counts of a replay: frames and decoder counters from the feed, book counters
/// summed over the venue's symbols.
fn venue_counts(
    feed: &[(Venue, u64, DecodeStats)],
    core: &Core<MonoClock>,
    symbols: &SymbolTable,
) -> Vec<VenueCounts> {
    feed.iter()
        .map(|&(venue, messages, decode)| {
            let mut book = engine::book::BookStats::default();
            for (id, _) in symbols.iter() {
                if symbols.venue(id) != Some(venue) {
                    continue;
                }
                if let Some(b) = core.book(id) {
                    book.add(&b.stats());
                }
            }
            VenueCounts {
                venue,
                messages,
                decode,
                book,
            }
        })
        .collect()
}

fn add_decode_stats(t: &mut DecodeStats, d: &DecodeStats) {
    t.messages += d.messages;
    t.events += d.events;
    t.decode_errors += d.decode_errors;
    t.ignored += d.ignored;
    t.unknown_symbol += d.unknown_symbol;
}

/// One venue's counts in a replay (the `venues` object of `--json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VenueCounts {
    /// The venue.
    pub venue: Venue,
    /// Frames fed to its decoder (snapshots included).
    pub messages: u64,
    /// Its decoder's counters.
    pub decode: DecodeStats,
    /// Its books' counters, summed over its symbols (`gaps`, `checksum_failures`, ...).
    pub book: engine::book::BookStats,
}

/// The feed thread's work, whatever the source: stamp, decode, push.
struct Feed {
    decoders: Decoders,
    /// Frames fed to each venue's decoder.
    venue_frames: [u64; Venue::COUNT],
    /// Frames of a venue without a decoder in this replay (a venue first seen after the
    /// stream's first chunk).
    no_decoder: u64,
    /// Venues reported even without frames (the capture's own; a stream also decodes others).
    reported: u32,
    /// Room for the per-venue results, allocated before the clock starts.
    venue_results: Vec<(Venue, u64, DecodeStats)>,
    tx: engine::ring::EventTx,
    pace: Pace,
    out: Vec<engine::event::Event>,
    /// Decode time per frame; recorded after the frame is pushed, so a batch's flush
    /// ([`BatchedHist`]) never delays a frame already decoded.
    hist: BatchedHist,
    first_errors: Vec<(usize, String)>,
    first_capture_ns: u64,
    start_ns: u64,
    start_allocs: u64,
    frames: u64,
    /// In an asap replay from memory, the clock reading that ended the previous frame's
    /// decode, when the feed went straight on to this one (0: read the clock).
    prev_end: u64,
    /// Whether frames follow each other with nothing in between (a replay from memory; a
    /// stream may wait for its reader between two frames).
    back_to_back: bool,
    /// The asap replay's clock: `CLOCK_MONOTONIC`, read once every 64 frames and extrapolated
    /// with the CPU's counter in between (about 17 ns a frame less on this VM).
    stamps: crate::clock::tsc::Extrapolated,
    /// A paced replay's machine hiccups on the feed's CPU: the gaps between the clock
    /// readings of its spin-waits for a frame's due time (allocated before the run).
    wait_jitter: Option<engine::idle::IdleJitter>,
    /// An asap replay's frame times for the core's clock: one per frame with events.
    frame_times: Option<rtrb::Producer<engine::core::FrameTime>>,
}

const MAX_REPORTED_ERRORS: usize = 5;

impl Feed {
    fn new(
        decoders: Decoders,
        reported: u32,
        tx: engine::ring::EventTx,
        pace: Pace,
        first_capture_ns: u64,
    ) -> Self {
        Self {
            decoders,
            venue_frames: [0; Venue::COUNT],
            no_decoder: 0,
            reported,
            venue_results: Vec::with_capacity(Venue::COUNT),
            tx,
            pace,
            out: Vec::with_capacity(16_384),
            hist: BatchedHist::new(),
            first_errors: Vec::with_capacity(MAX_REPORTED_ERRORS),
            first_capture_ns,
            start_ns: 0,
            start_allocs: 0,
            frames: 0,
            prev_end: 0,
            back_to_back: false,
            stamps: crate::clock::tsc::Extrapolated::default(),
            wait_jitter: match pace {
                Pace::Scaled(_) => Some(engine::idle::IdleJitter::new()),
                Pace::Asap => None,
            },
            frame_times: None,
        }
    }

    /// Waits for the core, then starts the clock and the allocation count.
    fn start(&mut self, barrier: &Barrier) {
        barrier.wait();
        self.start_allocs = allocations();
        self.start_ns = MonoClock::now();
    }

    fn finish(mut self, pinned: bool) -> FeedResult {
        let end_ns = MonoClock::now();
        let mut decode = DecodeStats {
            decode_errors: self.no_decoder,
            ..Default::default()
        };
        let mut venues = core::mem::take(&mut self.venue_results);
        for v in Venue::ALL {
            if let Some(d) = &self.decoders[v.index()] {
                add_decode_stats(&mut decode, d.stats());
                if self.venue_frames[v.index()] > 0 || self.reported & (1 << v.index()) != 0 {
                    venues.push((v, self.venue_frames[v.index()], *d.stats()));
                }
            }
        }
        FeedResult {
            frames: self.frames,
            end_ns,
            decode,
            venues,
            ring: self.tx.stats(),
            decode_hist: self.hist.finish(),
            wait_jitter: self.wait_jitter,
            start_ns: self.start_ns,
            start_allocs: self.start_allocs,
            pinned,
            first_errors: self.first_errors,
        }
    }

    /// Every pass over the arena in memory.
    fn run_memory(
        mut self,
        arena: &FrameArena,
        passes: u32,
        barrier: &Barrier,
        pinned: bool,
    ) -> FeedResult {
        self.start(barrier);
        self.back_to_back = true;
        'passes: for pass in 0..passes {
            let offset = pass_offset_ns(arena, pass);
            self.prev_end = 0;
            if pass > 0 && !session_reset(&mut self.tx, MonoClock::now()) {
                break;
            }
            for i in 0..arena.len() {
                let (Some((recorded_ns, kind, payload)), Some(venue)) =
                    (arena.get(i), arena.venue(i))
                else {
                    break;
                };
                let frame = pass as usize * arena.len() + i;
                if !self.frame(frame, recorded_ns, offset, venue, kind, payload) {
                    break 'passes;
                }
            }
        }
        self.finish(pinned)
    }

    /// Every pass of a streamed capture, as [`Feed::run_memory`] does them: the same frames, the
    /// same session reset before each pass after the first, the same time offsets (pass `k`
    /// runs `k * (span of pass 0 + 1 s)` later; the span is known once pass 0 has been read).
    fn run_stream(
        mut self,
        mut capture: StreamedCapture,
        symbols: &SymbolTable,
        default_symbol: SymbolId,
        barrier: &Barrier,
        pinned: bool,
    ) -> FeedResult {
        use crate::replay_input::{Routed, Routes};
        let mut unreadable = capture.head_errors;
        let (mut pass, mut offset) = (0u32, 0u64);
        let (mut first_ns, mut last_ns) = (None::<u64>, 0u64);
        let mut routes = Routes::new(&capture.input_venues, capture.defaults.clone());
        self.start(barrier);
        loop {
            let r = match capture.merged.next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    unreadable += 1;
                    let path = capture.paths.get(e.file).map_or(Path::new(""), |p| p);
                    report_unreadable(path, unreadable, &e.error);
                    continue;
                }
            };
            let rec = r.record;
            let (venue, kind) = match routes.route(r.file, &rec, symbols, default_symbol) {
                Routed::Frame(venue, kind) => (venue, kind),
                Routed::Skip => continue,
                Routed::Late(name) => {
                    self.late_symbol(name);
                    continue;
                }
            };
            if r.pass != pass {
                pass = r.pass;
                let span = last_ns.saturating_sub(first_ns.unwrap_or(last_ns)) + 1;
                offset = (span + PASS_GAP_NS).saturating_mul(u64::from(pass));
                if !session_reset(&mut self.tx, MonoClock::now()) {
                    break;
                }
            }
            if pass == 0 {
                first_ns.get_or_insert(rec.recv_ns);
                last_ns = rec.recv_ns;
            }
            let frame = self.frames as usize;
            if !self.frame(frame, rec.recv_ns, offset, venue, kind, rec.payload) {
                break;
            }
        }
        self.finish(pinned)
    }

    /// A `.tlc` snapshot for a symbol the stream's head did not name (see [`open_stream`]).
    #[cold]
    fn late_symbol(&mut self, name: &[u8]) {
        self.frames += 1;
        if self.first_errors.len() < MAX_REPORTED_ERRORS {
            self.first_errors.push((
                self.frames as usize - 1,
                format!(
                    "snapshot for {}, a symbol not seen in the capture's first chunk: a streamed \
                     replay trades the symbols named there (use --in-memory)",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
    }

    /// A frame of a venue without a decoder in this replay: a decode error naming the venue.
    #[cold]
    fn missing_decoder(&mut self, frame: usize, venue: Venue) {
        self.no_decoder += 1;
        self.prev_end = 0;
        if self.first_errors.len() < MAX_REPORTED_ERRORS {
            self.first_errors.push((
                frame,
                format!(
                    "a frame of venue {venue}, first seen after the capture's first chunk or not \
                     in this build: no decoder for it in this replay"
                ),
            ));
        }
    }

    /// One frame: stamp, decode, shift, push. False if the core has gone.
    #[inline]
    fn frame(
        &mut self,
        frame: usize,
        recorded_ns: u64,
        offset: u64,
        venue: Venue,
        kind: FrameKind,
        payload: &[u8],
    ) -> bool {
        self.frames += 1;
        let capture_ns = recorded_ns.saturating_add(offset);
        // The receive stamp: now, or in a paced replay the frame's intended send time, so
        // every stage measured from it counts the time the feed fell behind its schedule too
        // (coordinated-omission correction).
        let taken = match self.pace {
            Pace::Scaled(factor) => {
                let due = self.start_ns
                    + (capture_ns.saturating_sub(self.first_capture_ns) as f64 / factor) as u64;
                wait_until(due, self.wait_jitter.as_mut());
                let now = MonoClock::now();
                (due, now)
            }
            Pace::Asap => {
                // An asap replay's feed is never idle: a frame is received when the feed is
                // done with the previous one, whose decode-end reading therefore stamps it (one
                // reading a frame instead of two, and that one mostly extrapolated by the CPU's
                // counter: `stamps`). After a wait on a full ring, read anew.
                let now = match self.prev_end {
                    0 => self.stamps.now(),
                    t => t,
                };
                (now, now)
            }
        };
        let (recv_ns, decode_start) = taken;
        self.out.clear();
        let Some(decoder) = self.decoders[venue.index()].as_mut() else {
            self.missing_decoder(frame, venue);
            return true;
        };
        self.venue_frames[venue.index()] += 1;
        let r = match kind {
            FrameKind::Stream => decoder.decode(payload, recv_ns, &mut self.out),
            FrameKind::Snapshot(sym) => {
                decoder.decode_snapshot(payload, sym, recv_ns, &mut self.out)
            }
        };
        if offset > 0 {
            for ev in self.out.iter_mut() {
                shift_exchange_time(ev, offset);
            }
        }
        let end = match self.pace {
            Pace::Asap => self.stamps.now(),
            Pace::Scaled(_) => MonoClock::now(),
        };
        let chain = self.back_to_back && matches!(self.pace, Pace::Asap);
        self.prev_end = if chain { end } else { 0 };
        let go_on = match r {
            Ok(_) if !self.out.is_empty() && !self.send_frame_time(capture_ns) => false,
            Ok(_) => {
                let waits = self.tx.stats().full;
                let pushed = self.tx.push_all(&self.out).is_ok();
                if self.tx.stats().full != waits {
                    self.prev_end = 0;
                }
                pushed
            }
            Err(e) => {
                if self.first_errors.len() < MAX_REPORTED_ERRORS {
                    self.first_errors.push((frame, e.to_string()));
                }
                true
            }
        };
        self.hist.record(end.saturating_sub(decode_start));
        go_on
    }
}

impl Feed {
    /// Tells the core, ahead of a frame's events, where they start in the ring and the frame's
    /// capture time (an asap replay; nothing otherwise). Waits if the core is a ring behind;
    /// false if the core is gone.
    #[inline]
    fn send_frame_time(&mut self, at_ns: u64) -> bool {
        let Some(times) = self.frame_times.as_mut() else {
            return true;
        };
        let mut t = engine::core::FrameTime {
            seq: self.tx.stats().pushed,
            at_ns,
        };
        let mut idle = engine::idle::Idler::new(engine::idle::IdleMode::SpinYield { spins: 1_000 });
        loop {
            match times.push(t) {
                Ok(()) => return true,
                Err(rtrb::PushError::Full(back)) => t = back,
            }
            if times.is_abandoned() {
                return false;
            }
            idle.after_poll(false);
        }
    }
}

/// Starts a new session between two passes the way a reconnect does: the I/O thread's
/// `ConnectionDown` then `ConnectionUp`, so the core marks every book stale and asks for a
/// resync, and the next pass's snapshot applies. False if the core is gone.
#[cold]
fn session_reset(tx: &mut engine::ring::EventTx, now: u64) -> bool {
    use engine::event::{Connection, Event, EventKind};
    let conn = Connection {
        conn_id: 0,
        venue: None,
    };
    [
        EventKind::ConnectionDown(conn),
        EventKind::ConnectionUp(conn),
    ]
    .into_iter()
    .all(|kind| tx.push(Event::new(now, SymbolId::ALL, kind)).is_ok())
}

/// Waits until the monotonic clock reaches `due`: sleeps while more than 2 ms away, then spins
/// reading the clock (a sleep can overshoot by tens of microseconds on a VM; the feed thread has
/// its own CPU). The gaps between two readings with only a spin between them go to `jitter`:
/// the machine's hiccups on the feed's CPU, measured the way the core measures its own in its
/// empty polls (a wait that ends at once records nothing, and time asleep never counts).
fn wait_until(due: u64, mut jitter: Option<&mut engine::idle::IdleJitter>) {
    let mut spun = false;
    loop {
        let now = MonoClock::now();
        if let Some(j) = jitter.as_deref_mut() {
            j.idle(now, spun);
        }
        if now >= due {
            if let Some(j) = jitter.as_deref_mut() {
                // Ends the chain: the frame's work until the next wait is not a hiccup.
                j.busy(now);
            }
            return;
        }
        let left = due - now;
        if left > 2_000_000 {
            std::thread::sleep(std::time::Duration::from_nanos(left - 1_000_000));
            spun = false;
        } else {
            core::hint::spin_loop();
            spun = true;
        }
    }
}
