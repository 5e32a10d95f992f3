//! The metrics thread: the core's interval snapshots turned into StatsD lines and sent over UDP
//! in MTU-sized datagrams, off the core.
//!
//! ```text
//!  core loop ── Handoff::tick ──try_send──▶ metrics thread ── statsd_lines ─ batch_datagrams ──UDP──▶ StatsD
//!      ▲                                          │ merges the interval's latency into MetricsTotals,
//!      └─────────────── try_recv ◀─ (cleared) ────┘ clear_interval()s it and sends it back
//! ```
//!
//! **The core side** ([`Handoff`]). Two [`MetricsSnapshot`]s circulate over two bounded
//! `crossbeam-channel`s. [`Handoff::tick`] costs one comparison per core iteration; at an interval
//! boundary it takes a returned snapshot (`try_recv`), trades the core's interval state into it
//! ([`Core::swap_metrics`]: pointer swaps, no copy, no allocation) and `try_send`s it. Nothing
//! there blocks: if no snapshot has come back yet (the metrics thread is behind), the core keeps
//! accumulating, the interval is extended by another interval, and the miss is counted
//! ([`Handoff::skipped`], shipped as `metrics_skipped`). Waking a metrics thread parked in `recv`
//! is one futex call per interval on the core, never one per event. [`Handoff::flush`] hands
//! over the last partial interval at the end of a run (waiting at most [`FLUSH_WAIT`] for a
//! snapshot) and closes the channel, which ends the metrics thread.
//!
//! **The metrics thread** ([`spawn_metrics_thread`]) builds the lines ([`statsd_lines`], a pure
//! function), merges the interval's histograms into [`MetricsTotals::latency`] (the run's whole
//! distribution, since the core only ever holds one interval), clears the snapshot and returns
//! it, then sends the datagrams ([`batch_datagrams`]). It logs what each snapshot tells
//! ([`IntervalEvents`](crate::logging::events::IntervalEvents): slow strategy callbacks, at most
//! [`SLOW_LOG_PER_INTERVAL`] per interval, then a count; risk denials; trader restarts).
//!
//! **StatsD down changes nothing for the engine.** The UDP socket is connected (so an ICMP "port
//! unreachable" comes back as `ECONNREFUSED` on a later send and is counted) and non-blocking (a
//! full socket buffer drops the datagram and counts it). An unresolvable host counts every
//! datagram it could not send and is resolved again at most every [`RESOLVE_RETRY`]. Errors are
//! counted in [`MetricsTotals::send_errors`] and logged at most once per [`ERROR_LOG_EVERY`].
//!
//! **Why not the `statsd` crate.** `statsd` 0.16's `Client::send` and `Pipeline::send` discard the
//! result of `send_to` (`let _ = ...`), so send errors cannot be counted; `Client::new` resolves
//! the host once and fails outright when it cannot; and every value goes through `f64`, which is
//! not exact for the `i128` PnL. Its wire format (`name:value|type`, newline-joined in a datagram
//! of at most `max_udp_size` bytes, a longer single line sent alone) is what this module writes,
//! with a std `UdpSocket`.
//!
//! # Metrics
//!
//! Every name is under the prefix ([`MetricsConfig::prefix`], default `tickline.`). Counters are
//! the change since the previous snapshot (the first one: since start-up), sent every interval,
//! zeros included. Gauges are the value at the end of the interval.
//!
//! | name | type | meaning |
//! |---|---|---|
//! | `events` | `c` | events the core took off its rings |
//! | `messages` | `c` | data frames received by the I/O threads (live runs) |
//! | `decode_errors` | `c` | frames that failed to decode (live runs) |
//! | `ignored` | `c` | frames decoded to nothing: subscription replies, unknown streams (live runs) |
//! | `reconnects` | `c` | reconnect attempts (live runs) |
//! | `disconnects` | `c` | open connections lost (live runs) |
//! | `user_stream_refused` | `c` | user data stream subscriptions the venue refused (live runs with orders) |
//! | `ring_drops` | `c` | events dropped because the core's ring was full (live runs) |
//! | `book_gaps` | `c` | sequence gaps found by the books |
//! | `feed_gaps` | `c` | data-loss events from the I/O side (ring overflow, disconnect) |
//! | `resync_requests` | `c` | book resyncs asked for |
//! | `orders_sent` | `c` | orders sent to the venue (or the paper venue) |
//! | `orders_denied` | `c` | orders refused by pre-trade risk, never sent |
//! | `fills` | `c` | fills |
//! | `rejects` | `c` | orders rejected (by the venue, the paper venue, the order table or pre-trade risk) |
//! | `canceled` | `c` | orders canceled or expired |
//! | `slow_callbacks` | `c` | strategy callbacks over the slow threshold |
//! | `order_timeouts` | `c` | orders without an answer within the ack timeout (still in flight) |
//! | `trader_restarts` | `c` | supervised traders restarted after a panic |
//! | `symbol_halts` | `c` | symbols halted by their supervisor (restart intensity) |
//! | `metrics_skipped` | `c` | interval boundaries at which no snapshot had come back (the interval was extended) |
//! | `log.dropped` | `c` | log lines dropped because the log writer fell behind ([`crate::logging`]) |
//! | `book.<SYMBOL>.bid_levels`, `.ask_levels` | `g` | levels in the book (0 while not synced) |
//! | `book.<SYMBOL>.synced` | `g` | 1 if the book is synced, else 0 |
//! | `position.<SYMBOL>` | `g` | signed position, base units as a decimal (`-0.5`) |
//! | `pnl.<SYMBOL>.realized`, `.unrealized`, `.fees`, `.net` | `g` | PnL in quote units as a decimal; net = realized + unrealized - fees |
//! | `latency.<stage>.p50`, `.p99`, `.p999`, `.max` | `g` | this interval's percentiles, ns (stages with samples only) |
//! | `latency.<stage>.count` | `g` | this interval's samples |
//! | `ring.<N>.occupancy` | `g` | events waiting in the core's inbound ring N (0: the feed, 1: REST snapshots in live runs) |
//! | `loop.polls`, `loop.busy_polls` | `g` | core polls this interval (all, and those that handled events) |
//! | `loop.max_gap_ns` | `g` | longest time between the starts of two polls this interval (a stalled core) |
//! | `loop.max_iteration_ns` | `g` | longest busy poll this interval |
//!
//! Stages (`<stage>`): `decode`, `queue_wait`, `strategy`, `tick_to_order`, `feed_latency`,
//! `order_ack`, `loop_iteration`, `timer_lag` (see `engine::latency::Stage`). The I/O counters
//! and `ring_drops` are sent only when the thread is given the I/O threads' `IoShared`.
//!
//! **Percentiles as gauges, not `|ms` timers.** The core records millions of samples a second;
//! sending each as a timer is impossible, and sending the interval's percentiles as timer samples
//! would make StatsD compute percentiles of percentiles (and a mean of them) that mean nothing.
//! The histograms are exact per interval, so their percentiles go out as gauges in ns, which
//! StatsD passes through unchanged (and a `|ms` value would lose the sub-microsecond figures that
//! matter here).
//!
//! **Negative gauges.** StatsD reads a gauge value with a leading `-` or `+` as a change to the
//! current value, so a negative value is sent as two lines, `name:0|g` then `name:-1.5|g`, kept
//! in one entry of the line list so that batching never separates them.

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use engine::core::{Clock, Core};
use engine::fixed::SCALE;
use engine::latency::{Stage, StageLatency};
use engine::metrics::CoreCounters;
use engine::metrics::MetricsSnapshot;
use engine::symbol::SymbolTable;
use feeds::io::{IoCounters, IoShared};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default prefix of every metric name.
pub const DEFAULT_PREFIX: &str = "tickline.";
/// Default interval between snapshots.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// Default largest datagram: a 1500-byte Ethernet MTU less IPv6 (40) and UDP (8) headers, with
/// room to spare for tunnels.
pub const DEFAULT_MAX_DATAGRAM: usize = 1432;
/// Slow callbacks logged per interval; the rest are counted in one line.
pub const SLOW_LOG_PER_INTERVAL: usize = 10;
/// StatsD errors are logged at most this often (the rest are counted).
pub const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);
/// An unresolvable StatsD host is looked up again at most this often.
pub const RESOLVE_RETRY: Duration = Duration::from_secs(10);
/// How long [`Handoff::flush`] waits for a snapshot to come back, and then for room to send it.
pub const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Where and how the metrics go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// StatsD's `host:port` (UDP); `None` ships nothing (the thread still merges the latency and
    /// logs slow callbacks).
    pub statsd: Option<String>,
    /// Prefix of every name; a missing trailing `.` is added.
    pub prefix: String,
    /// Snapshot interval.
    pub interval: Duration,
    /// Largest datagram, bytes.
    pub max_datagram: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            statsd: None,
            prefix: DEFAULT_PREFIX.to_string(),
            interval: DEFAULT_INTERVAL,
            max_datagram: DEFAULT_MAX_DATAGRAM,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The core side
// ---------------------------------------------------------------------------------------------

/// The core's end of the snapshot hand-off; see the [module docs](self).
#[derive(Debug)]
pub struct Handoff {
    tx: Option<Sender<MetricsSnapshot>>,
    back: Receiver<MetricsSnapshot>,
    /// A snapshot that could not be sent (the metrics thread is gone); kept, not dropped, so
    /// the core never frees memory.
    spare: Option<MetricsSnapshot>,
    interval_ns: u64,
    next_due_ns: u64,
    started: bool,
    skipped: u64,
    shared_skipped: Arc<AtomicU64>,
}

/// The metrics thread's end of the hand-off: give it to [`spawn_metrics_thread`].
#[derive(Debug)]
pub struct MetricsLink {
    rx: Receiver<MetricsSnapshot>,
    back: Sender<MetricsSnapshot>,
    skipped: Arc<AtomicU64>,
}

impl Handoff {
    /// The two ends of a hand-off of `a` and `b` (made at start-up with
    /// [`Core::new_metrics_snapshot`]), with a snapshot every `interval` of the clock given to
    /// [`Handoff::tick`].
    pub fn new(
        a: MetricsSnapshot,
        b: MetricsSnapshot,
        interval: Duration,
    ) -> (Handoff, MetricsLink) {
        // Two snapshots and room for two in each direction: no send can ever find a full channel.
        let (tx, rx) = bounded(2);
        let (back_tx, back_rx) = bounded(2);
        let mut spare = None;
        for s in [a, b] {
            if let Err(e) = back_tx.try_send(s) {
                spare = Some(e.into_inner());
            }
        }
        let skipped = Arc::new(AtomicU64::new(0));
        let handoff = Handoff {
            tx: Some(tx),
            back: back_rx,
            spare,
            interval_ns: u64::try_from(interval.as_nanos())
                .unwrap_or(u64::MAX)
                .max(1),
            next_due_ns: 0,
            started: false,
            skipped: 0,
            shared_skipped: skipped.clone(),
        };
        let link = MetricsLink {
            rx,
            back: back_tx,
            skipped,
        };
        (handoff, link)
    }

    /// Called by the core loop every iteration with its latency clock (`now_ns`). The first call
    /// starts the first interval; at each boundary the core's interval goes to the metrics
    /// thread without blocking, or, if no snapshot has come back, the interval is extended and
    /// counted in [`Handoff::skipped`]. Never allocates.
    #[inline]
    pub fn tick<C: Clock>(&mut self, now_ns: u64, core: &mut Core<C>) {
        if now_ns < self.next_due_ns {
            return;
        }
        self.boundary(now_ns, core);
    }

    #[inline(never)]
    fn boundary<C: Clock>(&mut self, now_ns: u64, core: &mut Core<C>) {
        self.next_due_ns = now_ns.saturating_add(self.interval_ns);
        if !self.started {
            self.started = true;
            return;
        }
        let Some(tx) = &self.tx else {
            self.next_due_ns = u64::MAX;
            return;
        };
        let snap = match self.spare.take() {
            Some(s) => Some(s),
            None => match self.back.try_recv() {
                Ok(s) => Some(s),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    // The metrics thread is gone: stop handing over.
                    self.close();
                    return;
                }
            },
        };
        let Some(mut snap) = snap else {
            self.skipped += 1;
            self.shared_skipped.store(self.skipped, Ordering::Relaxed);
            return;
        };
        core.swap_metrics(&mut snap);
        match tx.try_send(snap) {
            Ok(()) => {}
            Err(TrySendError::Full(s)) => {
                // Cannot happen (two snapshots, room for two); keep it, and its interval is
                // merged into the next one when it is swapped back in.
                self.spare = Some(s);
            }
            Err(TrySendError::Disconnected(s)) => {
                self.spare = Some(s);
                self.close();
            }
        }
    }

    fn close(&mut self) {
        self.tx = None;
        self.next_due_ns = u64::MAX;
    }

    /// Interval boundaries at which no snapshot had come back (each extended its interval).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// At the end of a run: hands over the last partial interval, waiting at most
    /// [`FLUSH_WAIT`] for a snapshot to come back, and closes the hand-off, so the metrics thread
    /// finishes and its [`JoinHandle`] returns the totals. Later calls (and [`Handoff::tick`])
    /// do nothing.
    pub fn flush<C: Clock>(&mut self, core: &mut Core<C>) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        self.next_due_ns = u64::MAX;
        let snap = self
            .spare
            .take()
            .or_else(|| self.back.recv_timeout(FLUSH_WAIT).ok());
        match snap {
            Some(mut s) => {
                core.swap_metrics(&mut s);
                if let Err(e) = tx.send_timeout(s, FLUSH_WAIT) {
                    self.spare = Some(e.into_inner());
                    tracing::warn!(target: "tickline::metrics", "the last interval could not be handed over");
                }
            }
            None => {
                self.skipped += 1;
                self.shared_skipped.store(self.skipped, Ordering::Relaxed);
                tracing::warn!(
                    target: "tickline::metrics",
                    wait_ms = FLUSH_WAIT.as_millis() as u64,
                    "no snapshot came back in time; the last interval is not reported"
                );
            }
        }
        // Dropping the sender ends the metrics thread once it has taken the last snapshot.
        drop(tx);
    }
}

// ---------------------------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------------------------

/// The I/O threads' cumulative figures at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoSample {
    /// Counters summed over every connection.
    pub counters: IoCounters,
    /// Events dropped because the core's ring was full.
    pub ring_dropped: u64,
    /// User data stream subscriptions the venue refused (the order session's counter).
    pub user_stream_refused: u64,
}

impl IoSample {
    /// Reads `io` now (relaxed loads; the I/O thread publishes at most every millisecond).
    pub fn read(io: &IoShared) -> Self {
        IoSample {
            counters: io.totals(),
            ring_dropped: io.ring_dropped(),
            user_stream_refused: io.user_stream_refused(),
        }
    }
}

/// Cumulative counters from outside the core, sampled when a snapshot arrives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideCounters {
    /// The I/O threads' figures (`None` without them, as in a replay: their lines are left out).
    pub io: Option<IoSample>,
    /// [`Handoff::skipped`] so far.
    pub metrics_skipped: u64,
    /// Log lines dropped so far ([`crate::logging::dropped`]).
    pub log_dropped: u64,
}

/// Every cumulative counter as of one snapshot: what the next snapshot's deltas are taken from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cumulative {
    /// The core's counters.
    pub core: CoreCounters,
    /// The rest.
    pub side: SideCounters,
}

impl Cumulative {
    /// The figures of `snap` and `side`, to pass as `prev` for the next snapshot.
    pub fn of(snap: &MetricsSnapshot, side: &SideCounters) -> Self {
        Cumulative {
            core: snap.counters,
            side: *side,
        }
    }
}

/// Writes `units` (1e-8) as a plain decimal with no trailing zeros: `12.5`, `-0.00000001`, `3`.
pub fn decimal(units: i128) -> String {
    let scale = SCALE as u128;
    let abs = units.unsigned_abs();
    let mut s = String::with_capacity(24);
    if units < 0 {
        s.push('-');
    }
    let _ = write!(s, "{}", abs / scale);
    let frac = abs % scale;
    if frac != 0 {
        let digits = format!("{frac:08}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s
}

fn counter(out: &mut Vec<String>, prefix: &str, name: &str, now: u64, prev: u64) {
    out.push(format!("{prefix}{name}:{}|c", now.saturating_sub(prev)));
}

fn gauge(out: &mut Vec<String>, prefix: &str, name: &str, value: u64) {
    out.push(format!("{prefix}{name}:{value}|g"));
}

fn gauge_decimal(out: &mut Vec<String>, prefix: &str, name: &str, units: i128) {
    let v = decimal(units);
    if units < 0 {
        // A leading '-' alone would be a decrement: zero the gauge first, in the same entry.
        out.push(format!("{prefix}{name}:0|g\n{prefix}{name}:{v}|g"));
    } else {
        out.push(format!("{prefix}{name}:{v}|g"));
    }
}

/// Appends the StatsD lines of `snap` to `out` (names under `prefix`, used as given): counters as
/// the change since `prev`, then the per-symbol, latency and loop gauges; see the
/// [module docs](self) for the names. An entry holds one line, except a negative gauge's two.
pub fn statsd_lines(
    snap: &MetricsSnapshot,
    side: &SideCounters,
    prev: &Cumulative,
    symbols: &SymbolTable,
    prefix: &str,
    out: &mut Vec<String>,
) {
    let c = &snap.counters;
    let p = &prev.core;
    let core_counters = [
        ("events", c.events, p.events),
        ("book_gaps", c.book_gaps, p.book_gaps),
        ("feed_gaps", c.feed_gaps, p.feed_gaps),
        ("resync_requests", c.resync_requests, p.resync_requests),
        ("orders_sent", c.orders_sent, p.orders_sent),
        ("orders_denied", c.orders_denied, p.orders_denied),
        ("fills", c.fills, p.fills),
        ("rejects", c.rejects, p.rejects),
        ("canceled", c.canceled, p.canceled),
        ("slow_callbacks", c.slow_callbacks, p.slow_callbacks),
        ("order_timeouts", c.order_timeouts, p.order_timeouts),
        ("trader_restarts", c.trader_restarts, p.trader_restarts),
        ("symbol_halts", c.symbol_halts, p.symbol_halts),
    ];
    for (name, now, before) in core_counters {
        counter(out, prefix, name, now, before);
    }
    if let Some(io) = &side.io {
        let before = prev.side.io.unwrap_or_default();
        let (n, b) = (&io.counters, &before.counters);
        let io_counters = [
            ("messages", n.frames, b.frames),
            ("decode_errors", n.decode_errors, b.decode_errors),
            ("ignored", n.ignored, b.ignored),
            ("reconnects", n.reconnect_attempts, b.reconnect_attempts),
            ("disconnects", n.disconnects, b.disconnects),
            ("ring_drops", io.ring_dropped, before.ring_dropped),
            (
                "user_stream_refused",
                io.user_stream_refused,
                before.user_stream_refused,
            ),
        ];
        for (name, now, before) in io_counters {
            counter(out, prefix, name, now, before);
        }
    }
    counter(
        out,
        prefix,
        "metrics_skipped",
        side.metrics_skipped,
        prev.side.metrics_skipped,
    );
    counter(
        out,
        prefix,
        "log.dropped",
        side.log_dropped,
        prev.side.log_dropped,
    );

    for g in &snap.symbols {
        let Some(sym) = symbols.name(g.symbol) else {
            continue;
        };
        gauge(
            out,
            prefix,
            &format!("book.{sym}.bid_levels"),
            g.bid_levels.into(),
        );
        gauge(
            out,
            prefix,
            &format!("book.{sym}.ask_levels"),
            g.ask_levels.into(),
        );
        gauge(
            out,
            prefix,
            &format!("book.{sym}.synced"),
            u64::from(g.synced),
        );
        let pos = &g.position;
        gauge_decimal(out, prefix, &format!("position.{sym}"), pos.qty.into());
        gauge_decimal(out, prefix, &format!("pnl.{sym}.realized"), pos.realized);
        gauge_decimal(
            out,
            prefix,
            &format!("pnl.{sym}.unrealized"),
            pos.unrealized(),
        );
        gauge_decimal(out, prefix, &format!("pnl.{sym}.fees"), pos.fees);
        gauge_decimal(out, prefix, &format!("pnl.{sym}.net"), pos.net_pnl());
    }

    for stage in Stage::ALL {
        let h = snap.latency.get(stage);
        if h.is_empty() {
            continue;
        }
        let p = h.percentiles();
        let name = stage.name();
        for (what, v) in [
            ("p50", p.p50),
            ("p99", p.p99),
            ("p999", p.p999),
            ("max", p.max),
            ("count", p.count),
        ] {
            gauge(out, prefix, &format!("latency.{name}.{what}"), v);
        }
    }

    let ls = &snap.loop_stats;
    for (i, occupancy) in snap.ring_occupancy.iter().enumerate() {
        gauge(out, prefix, &format!("ring.{i}.occupancy"), *occupancy);
    }
    gauge(out, prefix, "loop.polls", ls.polls);
    gauge(out, prefix, "loop.busy_polls", ls.busy_polls);
    gauge(out, prefix, "loop.max_gap_ns", ls.max_gap_ns);
    gauge(out, prefix, "loop.max_iteration_ns", ls.max_iteration_ns);
}

/// Joins `lines` with `\n` into datagrams of at most `max` bytes each, in order, never splitting
/// an entry. An entry longer than `max` goes alone in a datagram of its own (longer than `max`;
/// the caller counts those).
pub fn batch_datagrams(lines: &[String], max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for line in lines {
        let l = line.as_bytes();
        if !cur.is_empty() && cur.len() + 1 + l.len() > max {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            if l.len() > max {
                out.push(l.to_vec());
                continue;
            }
            cur.reserve(max);
        } else {
            cur.push(b'\n');
        }
        cur.extend_from_slice(l);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The metrics thread
// ---------------------------------------------------------------------------------------------

/// What the metrics thread did over the run (returned by its [`JoinHandle`]).
#[derive(Clone, Debug, Default)]
pub struct MetricsTotals {
    /// Every interval's latency merged: the run's whole distribution (the core keeps only the
    /// current interval).
    pub latency: StageLatency,
    /// Snapshots received.
    pub intervals: u64,
    /// [`Handoff::skipped`] at the end (reported by the core side).
    pub skipped: u64,
    /// Datagrams sent to StatsD.
    pub datagrams_sent: u64,
    /// Datagrams that could not be sent (refused, unresolvable host, full socket buffer).
    pub send_errors: u64,
    /// StatsD lines built (a negative gauge counts two).
    pub lines: u64,
    /// Datagrams longer than [`MetricsConfig::max_datagram`] (a single line that long).
    pub oversized: u64,
}

/// Logs at most once per [`ERROR_LOG_EVERY`], counting what it held back.
#[derive(Debug, Default)]
struct RateLimit {
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimit {
    /// `Some(held back since the last line)` if a line may be logged at `now`.
    fn allow(&mut self, now: Instant, every: Duration) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// A connected, non-blocking UDP socket to StatsD that counts what it could not send.
#[derive(Debug)]
struct UdpSink {
    target: String,
    socket: Option<UdpSocket>,
    last_resolve: Option<Instant>,
    sent: u64,
    errors: u64,
    log: RateLimit,
}

impl UdpSink {
    fn new(target: String) -> Self {
        UdpSink {
            target,
            socket: None,
            last_resolve: None,
            sent: 0,
            errors: 0,
            log: RateLimit::default(),
        }
    }

    fn warn(&mut self, what: &str) {
        if let Some(held) = self.log.allow(Instant::now(), ERROR_LOG_EVERY) {
            tracing::warn!(
                target: "tickline::metrics",
                statsd = %self.target,
                error = %what,
                errors_since_last_report = held,
                "StatsD failing; metrics are dropped, the engine runs on"
            );
        }
    }

    fn open(target: &str) -> Result<UdpSocket, String> {
        let addr: SocketAddr = target
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve: {e}"))?
            .next()
            .ok_or_else(|| "the name has no address".to_string())?;
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let s = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
        s.connect(addr)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_nonblocking(true)
            .map_err(|e| format!("set_nonblocking: {e}"))?;
        Ok(s)
    }

    /// Resolves and connects if not connected and not tried within [`RESOLVE_RETRY`].
    fn ensure_open(&mut self) {
        if self.socket.is_some()
            || self
                .last_resolve
                .is_some_and(|t| t.elapsed() < RESOLVE_RETRY)
        {
            return;
        }
        self.last_resolve = Some(Instant::now());
        match Self::open(&self.target) {
            Ok(s) => self.socket = Some(s),
            Err(e) => self.warn(&e),
        }
    }

    fn send_all(&mut self, datagrams: &[Vec<u8>]) {
        self.ensure_open();
        let Some(socket) = &self.socket else {
            self.errors += datagrams.len() as u64;
            return;
        };
        let mut first_error = None;
        for d in datagrams {
            match socket.send(d) {
                Ok(n) if n == d.len() => self.sent += 1,
                Ok(n) => {
                    self.errors += 1;
                    first_error.get_or_insert_with(|| format!("short send ({n} of {})", d.len()));
                }
                Err(e) => {
                    self.errors += 1;
                    first_error.get_or_insert_with(|| format!("send: {e}"));
                }
            }
        }
        if let Some(e) = first_error {
            self.warn(&e);
        }
    }
}

/// Starts the metrics thread (named `tickline-metrics`, not pinned): it takes snapshots from
/// `link` until the [`Handoff`] is flushed or dropped, ships them to `cfg.statsd` (if any), and
/// returns the [`MetricsTotals`]. `io`, the I/O threads' shared counters, adds their lines
/// (live runs). The host is resolved on the thread, not here.
pub fn spawn_metrics_thread(
    cfg: MetricsConfig,
    link: MetricsLink,
    symbols: SymbolTable,
    io: Option<Arc<IoShared>>,
) -> std::io::Result<JoinHandle<MetricsTotals>> {
    crate::threads::spawn_housekeeping("tickline-metrics", move || {
        run_metrics(cfg, link, symbols, io)
    })
}

fn run_metrics(
    cfg: MetricsConfig,
    link: MetricsLink,
    symbols: SymbolTable,
    io: Option<Arc<IoShared>>,
) -> MetricsTotals {
    let mut prefix = cfg.prefix;
    if !prefix.is_empty() && !prefix.ends_with('.') {
        prefix.push('.');
    }
    let max = cfg.max_datagram.max(1);
    let mut sink = cfg.statsd.map(UdpSink::new);
    if let Some(s) = &mut sink {
        s.ensure_open();
    }
    let mut totals = MetricsTotals::default();
    let mut prev = Cumulative::default();
    let mut lines = Vec::with_capacity(256);
    let mut events = crate::logging::events::IntervalEvents::default();
    let mut wasm_prev = Vec::new();
    while let Ok(mut snap) = link.rx.recv() {
        let side = SideCounters {
            io: io.as_deref().map(IoSample::read),
            metrics_skipped: link.skipped.load(Ordering::Relaxed),
            log_dropped: crate::logging::dropped(),
        };
        lines.clear();
        statsd_lines(&snap, &side, &prev, &symbols, &prefix, &mut lines);
        crate::wasm::statsd_lines(&prefix, &mut wasm_prev, &mut lines);
        prev = Cumulative::of(&snap, &side);
        events.log(&snap, &symbols);
        totals.latency.merge(&snap.latency);
        totals.intervals += 1;
        snap.clear_interval();
        // Back to the core first; the sends and the logging can take their time. Never full.
        let _ = link.back.try_send(snap);
        totals.lines += lines
            .iter()
            .map(|l| 1 + l.bytes().filter(|&b| b == b'\n').count() as u64)
            .sum::<u64>();
        if let Some(sink) = &mut sink {
            let datagrams = batch_datagrams(&lines, max);
            totals.oversized += datagrams.iter().filter(|d| d.len() > max).count() as u64;
            sink.send_all(&datagrams);
        }
    }
    totals.skipped = link.skipped.load(Ordering::Relaxed);
    if let Some(s) = &sink {
        totals.datagrams_sent = s.sent;
        totals.send_errors = s.errors;
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::core::CoreConfig;
    use engine::fixed::{Price, Qty};
    use engine::metrics::SymbolGauges;
    use engine::portfolio::Position;
    use engine::symbol::SymbolId;

    #[derive(Clone, Copy, Debug, Default)]
    struct ZeroClock;
    impl Clock for ZeroClock {
        fn now_ns(&self) -> u64 {
            0
        }
    }

    fn table() -> SymbolTable {
        let mut t = SymbolTable::new();
        t.intern("BTCUSDT").unwrap();
        t.intern("ETHUSDT").unwrap();
        t
    }

    fn lines_of(snap: &MetricsSnapshot, side: &SideCounters, prev: &Cumulative) -> Vec<String> {
        let mut out = Vec::new();
        statsd_lines(snap, side, prev, &table(), "tickline.", &mut out);
        out
    }

    fn has(lines: &[String], want: &str) -> bool {
        lines.iter().any(|l| l == want)
    }

    #[test]
    fn line_format_of_each_kind() {
        let mut snap = MetricsSnapshot::new(2, 1);
        snap.counters.fills = 3;
        snap.counters.orders_sent = 7;
        snap.counters.orders_denied = 2;
        snap.latency.record(Stage::Decode, 1234);
        snap.loop_stats.polls = 99;
        snap.loop_stats.max_gap_ns = 5_000;
        snap.loop_stats.max_iteration_ns = 800;
        let mut pos = Position::default();
        pos.apply_fill(
            engine::event::Side::Buy,
            Price::parse(b"100").unwrap(),
            Qty::parse(b"0.5").unwrap(),
            0,
        );
        pos.mark_to(Price::parse(b"99.5").unwrap());
        snap.symbols[0] = SymbolGauges {
            symbol: SymbolId(0),
            position: pos,
            bid_levels: 20,
            ask_levels: 19,
            synced: true,
        };
        snap.symbols[1].symbol = SymbolId(1);
        let l = lines_of(&snap, &SideCounters::default(), &Cumulative::default());
        for want in [
            "tickline.fills:3|c",
            "tickline.orders_sent:7|c",
            "tickline.orders_denied:2|c",
            "tickline.events:0|c",
            "tickline.metrics_skipped:0|c",
            "tickline.latency.decode.p50:1234|g",
            "tickline.latency.decode.p99:1234|g",
            "tickline.latency.decode.p999:1234|g",
            "tickline.latency.decode.max:1234|g",
            "tickline.latency.decode.count:1|g",
            "tickline.loop.polls:99|g",
            "tickline.loop.max_gap_ns:5000|g",
            "tickline.loop.max_iteration_ns:800|g",
            "tickline.book.BTCUSDT.bid_levels:20|g",
            "tickline.book.BTCUSDT.ask_levels:19|g",
            "tickline.book.BTCUSDT.synced:1|g",
            "tickline.book.ETHUSDT.synced:0|g",
            "tickline.position.BTCUSDT:0.5|g",
            "tickline.position.ETHUSDT:0|g",
            "tickline.pnl.BTCUSDT.realized:0|g",
            // 0.5 x (99.5 - 100) = -0.25: zeroed first, in one entry.
            "tickline.pnl.BTCUSDT.unrealized:0|g\ntickline.pnl.BTCUSDT.unrealized:-0.25|g",
            "tickline.pnl.BTCUSDT.net:0|g\ntickline.pnl.BTCUSDT.net:-0.25|g",
        ] {
            assert!(has(&l, want), "{want:?} missing from {l:#?}");
        }
        // The summary's names: sent and denied apart, no `orders` counting both.
        assert!(
            !l.iter()
                .any(|x| x.starts_with("tickline.orders:") || x.contains("risk_denials")),
            "{l:#?}"
        );
        // Empty stages are left out; without I/O, so are the I/O counters.
        assert!(!l.iter().any(|x| x.contains("latency.strategy")), "{l:#?}");
        assert!(!l.iter().any(|x| x.contains("decode_errors")), "{l:#?}");
        // Every line is name:value|type.
        for entry in &l {
            for line in entry.split('\n') {
                let (name, rest) = line.split_once(':').unwrap();
                assert!(name.starts_with("tickline."), "{line}");
                assert!(
                    rest.ends_with("|c") || rest.ends_with("|g"),
                    "{line}: neither counter nor gauge"
                );
            }
        }
    }

    #[test]
    fn counters_are_deltas_since_the_previous_snapshot() {
        let mut snap = MetricsSnapshot::new(0, 1);
        snap.counters.fills = 3;
        snap.counters.events = 1_000;
        let io = |frames, errors, dropped| IoSample {
            counters: IoCounters {
                frames,
                decode_errors: errors,
                ..IoCounters::default()
            },
            ring_dropped: dropped,
            user_stream_refused: dropped / 40,
        };
        let side = SideCounters {
            io: Some(io(500, 2, 0)),
            metrics_skipped: 1,
            log_dropped: 3,
        };
        let first = lines_of(&snap, &side, &Cumulative::default());
        assert!(has(&first, "tickline.fills:3|c"));
        assert!(has(&first, "tickline.messages:500|c"));
        assert!(has(&first, "tickline.decode_errors:2|c"));
        assert!(has(&first, "tickline.ring_drops:0|c"));
        assert!(has(&first, "tickline.user_stream_refused:0|c"));
        assert!(has(&first, "tickline.metrics_skipped:1|c"));
        assert!(has(&first, "tickline.log.dropped:3|c"));
        let prev = Cumulative::of(&snap, &side);

        snap.counters.fills = 10;
        snap.counters.events = 1_500;
        let side = SideCounters {
            io: Some(io(800, 2, 40)),
            metrics_skipped: 1,
            log_dropped: 5,
        };
        let second = lines_of(&snap, &side, &prev);
        for want in [
            "tickline.fills:7|c",
            "tickline.events:500|c",
            "tickline.messages:300|c",
            "tickline.decode_errors:0|c",
            "tickline.ring_drops:40|c",
            "tickline.user_stream_refused:1|c",
            "tickline.metrics_skipped:0|c",
            "tickline.log.dropped:2|c",
        ] {
            assert!(has(&second, want), "{want} missing from {second:#?}");
        }
        // A counter that went backwards (it cannot) reports zero, not a huge wrap-around.
        let back = lines_of(&MetricsSnapshot::new(0, 1), &side, &prev);
        assert!(has(&back, "tickline.fills:0|c"));
    }

    #[test]
    fn decimals_are_exact_and_trimmed() {
        assert_eq!(decimal(0), "0");
        assert_eq!(decimal(300_000_000), "3");
        assert_eq!(decimal(1_250_000_000), "12.5");
        assert_eq!(decimal(-1), "-0.00000001");
        assert_eq!(decimal(-150_000_000), "-1.5");
        assert_eq!(
            decimal(123_456_789_012_345_678_901),
            "1234567890123.45678901"
        );
    }

    #[test]
    fn batching_respects_the_limit_and_never_splits_a_line() {
        let mut rng = feeds::io::SplitMix64::new(7);
        for max in [64usize, 200, 512, 1432] {
            let lines: Vec<String> = (0..500)
                .map(|i| {
                    let len = 5 + (rng.next_u64() % 90) as usize;
                    let body: String = std::iter::repeat_n('x', len).collect();
                    if i % 17 == 0 {
                        format!("n{i}.{body}:0|g\nn{i}.{body}:-1|g")
                    } else {
                        format!("n{i}.{body}:{i}|c")
                    }
                })
                .collect();
            let d = batch_datagrams(&lines, max);
            let mut rejoined = Vec::new();
            for dg in &d {
                let text = std::str::from_utf8(dg).unwrap();
                if dg.len() > max {
                    // Alone, and only because that one entry is longer than the limit.
                    assert!(lines.iter().any(|l| l == text && l.len() > max));
                }
                assert!(!text.is_empty() && !text.starts_with('\n') && !text.ends_with('\n'));
                rejoined.push(text.to_string());
            }
            // Joined back, the datagrams are exactly the lines in order: nothing split or lost.
            assert_eq!(rejoined.join("\n"), lines.join("\n"), "max {max}");
            // Greedy: no two neighbours would have fitted in one datagram.
            for w in d.windows(2) {
                assert!(w[0].len() + 1 + w[1].len() > max || w[1].len() > max);
            }
        }
        // An oversized line goes alone, between the others.
        let long = "a".repeat(100);
        let lines = vec!["x:1|c".to_string(), long.clone(), "y:2|c".to_string()];
        let d = batch_datagrams(&lines, 50);
        assert_eq!(
            d,
            vec![b"x:1|c".to_vec(), long.into_bytes(), b"y:2|c".to_vec()]
        );
        assert!(batch_datagrams(&[], 1432).is_empty());
    }

    #[test]
    fn errors_are_logged_at_most_once_a_minute() {
        let mut r = RateLimit::default();
        let t0 = Instant::now();
        assert_eq!(r.allow(t0, ERROR_LOG_EVERY), Some(0));
        for s in 1..60 {
            assert_eq!(r.allow(t0 + Duration::from_secs(s), ERROR_LOG_EVERY), None);
        }
        assert_eq!(
            r.allow(t0 + Duration::from_secs(60), ERROR_LOG_EVERY),
            Some(59)
        );
    }

    fn core() -> Core<ZeroClock> {
        Core::new(&table(), CoreConfig::default(), ZeroClock)
    }

    #[test]
    fn handoff_never_blocks_when_the_metrics_thread_never_returns_snapshots() {
        let mut core = core();
        let (mut h, link) = Handoff::new(
            core.new_metrics_snapshot(),
            core.new_metrics_snapshot(),
            Duration::from_millis(1),
        );
        let ms = 1_000_000u64;
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        // The first call starts the clock, then 1000 boundaries: two snapshots go out, and
        // nothing ever comes back.
        for k in 0..=1_000u64 {
            let t = Instant::now();
            h.tick(k * ms, &mut core);
            h.tick(k * ms + 1, &mut core); // not a boundary
            slowest = slowest.max(t.elapsed());
        }
        assert_eq!(h.skipped(), 998);
        assert_eq!(link.rx.len(), 2);
        assert_eq!(link.skipped.load(Ordering::Relaxed), 998);
        // Bounded: a boundary is a try_recv; nothing waited (generous for a noisy 2-vCPU box).
        assert!(
            slowest < Duration::from_millis(50),
            "slowest tick {slowest:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The flush waits at most FLUSH_WAIT for a snapshot, then gives up and counts it.
        let t = Instant::now();
        h.flush(&mut core);
        assert!(t.elapsed() < FLUSH_WAIT + Duration::from_secs(1));
        assert_eq!(h.skipped(), 999);
        // Closed: ticking now does nothing.
        h.tick(u64::MAX - 1, &mut core);
        assert_eq!(h.skipped(), 999);
    }

    #[test]
    fn intervals_are_extended_not_lost_when_the_thread_is_behind() {
        let mut core = core();
        let (mut h, link) = Handoff::new(
            core.new_metrics_snapshot(),
            core.new_metrics_snapshot(),
            Duration::from_nanos(100),
        );
        h.tick(0, &mut core); // starts
        h.tick(50, &mut core); // inside the interval
        assert!(link.rx.is_empty());
        h.tick(100, &mut core); // boundary: a snapshot goes
        assert_eq!(link.rx.len(), 1);
        h.tick(150, &mut core); // next boundary is 200
        assert_eq!(link.rx.len(), 1);
        h.tick(200, &mut core);
        h.tick(300, &mut core); // none left: skipped, the next boundary is 400
        assert_eq!((link.rx.len(), h.skipped()), (2, 1));
        // The thread returns one (cleared); the next boundary uses it.
        let mut s = link.rx.recv().unwrap();
        s.clear_interval();
        link.back.send(s).unwrap();
        h.tick(399, &mut core);
        assert_eq!(link.rx.len(), 1);
        h.tick(400, &mut core);
        assert_eq!((link.rx.len(), h.skipped()), (2, 1));
    }

    #[test]
    fn the_thread_merges_every_interval_and_returns_the_snapshots() {
        let mut core = core();
        let (mut h, link) = Handoff::new(
            core.new_metrics_snapshot(),
            core.new_metrics_snapshot(),
            Duration::from_nanos(10),
        );
        let thread = spawn_metrics_thread(MetricsConfig::default(), link, table(), None).unwrap();
        h.tick(0, &mut core);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut t = 0;
        // Ten intervals go out and come back; with a live thread none needs skipping, but if
        // the box is slow, extended intervals are fine: count what was sent.
        let mut boundaries = 0;
        while boundaries < 10 && Instant::now() < deadline {
            t += 10;
            h.tick(t, &mut core);
            boundaries += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        h.flush(&mut core);
        let totals = thread.join().unwrap();
        assert_eq!(totals.intervals + totals.skipped, 11, "{totals:?}");
        assert_eq!(totals.skipped, h.skipped());
        assert_eq!((totals.datagrams_sent, totals.send_errors), (0, 0));
        assert!(totals.lines > 0);
    }

    #[test]
    fn unreachable_statsd_counts_errors_and_never_panics() {
        // A port nothing listens on: bind one, learn it, close it.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink = UdpSink::new(format!("127.0.0.1:{port}"));
        let d = vec![b"tickline.x:1|c".to_vec()];
        // Linux reports the ICMP port-unreachable on the connected socket's next send.
        for _ in 0..20 {
            sink.send_all(&d);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(sink.errors > 0, "{sink:?}");
        assert_eq!(sink.sent + sink.errors, 20);

        // A host that cannot resolve (`.invalid` never does): every datagram is an error.
        let mut sink = UdpSink::new("statsd.invalid:8125".into());
        sink.send_all(&[b"a:1|c".to_vec(), b"b:1|c".to_vec()]);
        sink.send_all(&[b"c:1|c".to_vec()]); // not looked up again within RESOLVE_RETRY
        assert_eq!((sink.sent, sink.errors), (0, 3));
        assert!(sink.socket.is_none());

        // The same through the thread: the totals say so, and the engine side is unaffected.
        for target in [format!("127.0.0.1:{port}"), "statsd.invalid:8125".into()] {
            let mut core = core();
            let (mut h, link) = Handoff::new(
                core.new_metrics_snapshot(),
                core.new_metrics_snapshot(),
                Duration::from_nanos(10),
            );
            let cfg = MetricsConfig {
                statsd: Some(target.clone()),
                max_datagram: 200,
                ..MetricsConfig::default()
            };
            let thread = spawn_metrics_thread(cfg, link, table(), None).unwrap();
            h.tick(0, &mut core);
            for k in 1..=5 {
                h.tick(k * 10, &mut core);
                std::thread::sleep(Duration::from_millis(10));
            }
            h.flush(&mut core);
            let totals = thread.join().unwrap();
            assert!(totals.send_errors > 0, "{target}: {totals:?}");
            assert!(totals.intervals > 0, "{target}: {totals:?}");
        }
    }
}

/// A running metrics hand-off: the core's end and the metrics thread.
#[derive(Debug)]
pub struct MetricsRun {
    /// Tick it from the core loop with the monotonic clock.
    pub handoff: Handoff,
    thread: JoinHandle<MetricsTotals>,
}

/// Starts the hand-off and the metrics thread for `core` (None: no metrics).
pub fn start<C: Clock>(
    cfg: Option<MetricsConfig>,
    core: &Core<C>,
    symbols: &SymbolTable,
    io: Option<Arc<IoShared>>,
) -> std::io::Result<Option<MetricsRun>> {
    let Some(cfg) = cfg else {
        return Ok(None);
    };
    let (handoff, link) = Handoff::new(
        core.new_metrics_snapshot(),
        core.new_metrics_snapshot(),
        cfg.interval,
    );
    let thread = spawn_metrics_thread(cfg, link, symbols.clone(), io)?;
    Ok(Some(MetricsRun { handoff, thread }))
}

impl MetricsRun {
    /// Hands over the last partial interval, ends the metrics thread and returns its totals
    /// (the run's whole latency distribution).
    pub fn finish<C: Clock>(mut self, core: &mut Core<C>) -> std::io::Result<MetricsTotals> {
        self.handoff.flush(core);
        self.thread
            .join()
            .map_err(|_| std::io::Error::other("the metrics thread panicked"))
    }
}
