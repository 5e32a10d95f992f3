//! The I/O thread: one `mio::Poll` over every feed connection, frames decoded straight into the
//! core's ring, reconnects with backoff, heartbeats and idle detection.
//!
//! **Real-time contract.** [`run_io_loop`] owns every socket of its feeds and runs on one
//! (pinned) thread. It takes no lock, runs no async runtime, and after start-up the frame path
//! allocates nothing: a frame is stamped once (`recv_ns = now()`), optionally copied into the
//! recorder's byte ring ([`crate::recorder`]), decoded by the [`BinanceDecoder`] into one reused
//! `Vec<MarketEvent>`, and pushed with [`EventTx::push_all`]. The ring's
//! [`OnFull::Drop`](engine::ring::OnFull::Drop) policy counts what a slow core costs and follows
//! it with a `Gap` event; the socket is always drained. Cold paths (connects, notices, error
//! text) may allocate.
//!
//! **Ownership.** Connections live in a slab (`Vec`) indexed by their `mio::Token`; a token also
//! carries a generation, so readiness left over from a dropped socket never reaches its successor.
//! Other threads see progress only through [`IoShared`] (relaxed atomics, published at most every
//! millisecond) and through the [`IoNotice`] callback (called on this thread, off the frame path).
//!
//! **Per connection**, as a state machine driven by readiness and by the loop's clock:
//!
//! ```text
//!  Waiting(at) ──at──▶ Connecting ──Opened──▶ Open ──close / error / idle timeout──▶ Waiting(backoff)
//!      ▲                   │ error / connect timeout                                      │
//!      └───────────────────┴────────────────── backoff (or Dead after max_attempts) ◀─────┘
//! ```
//!
//! - On open: a `ConnectionUp` event goes into the ring before any of the connection's data, a
//!   Binance `SUBSCRIBE` for the feed's streams is sent (again after every reconnect), and
//!   [`IoNotice::Connected`] is raised (the place to request REST snapshots).
//! - On loss (close by the peer, an error, no frame for `idle_timeout`): `ConnectionDown` (the
//!   core marks the books stale), [`IoNotice::Disconnected`], and a reconnect after an
//!   exponential, jittered backoff ([`Backoff`]: deterministic, seeded by the connection id).
//!   The backoff starts again from `initial` once a lost connection had delivered a frame and
//!   lasted [`IoConfig::stable_after`]. Failures to connect (refused, TLS such as an untrusted
//!   certificate, handshake, [`IoConfig::connect_timeout`]) are [`IoNotice::ConnectFailed`] and
//!   retried the same way; the loop never panics and never ends because of a venue.
//! - A WebSocket ping goes out every `heartbeat`; any frame, pong included, proves liveness.
//! - Garbage frames are counted ([`IoCounters::decode_errors`]), the first few reported as
//!   [`IoNotice::DecodeError`]; the connection stays up. A venue's error reply (a refused
//!   subscription) is [`IoNotice::VenueError`].
//! - A host name is resolved once and its addresses reused by every reconnect; only after a TCP
//!   connect failure is it resolved again (a blocking lookup on this thread: hosts given as IP
//!   literals never block).
//!
//! The loop waits in `poll` at most 1 ms (less when a deadline is nearer), so `stop` is seen
//! promptly; with [`IoConfig::spin`] it never waits (busy polling, the lowest latency). At stop,
//! every connection is closed politely (close handshake, bounded by [`IoConfig::close_timeout`]).
//!
//! ```no_run
//! use engine::ring::{event_ring, OnFull};
//! use engine::symbol::SymbolTable;
//! use feeds::binance::market::BinanceDecoder;
//! use feeds::io::{run_io_loop, FeedSpec, IoConfig, IoShared};
//! use std::sync::atomic::AtomicBool;
//!
//! # fn now() -> u64 { 0 } // the engine's clock: tools::clock::MonoClock::now
//! let mut symbols = SymbolTable::new();
//! symbols.intern("BTCUSDT").unwrap();
//! let (tx, _core_rx) = event_ring(65_536, OnFull::Drop); // the consumer goes to the core
//! let cfg = IoConfig {
//!     feeds: vec![FeedSpec {
//!         conn_id: 1,
//!         url: "wss://stream.binance.com:9443/stream".into(),
//!         subscribe: vec!["btcusdt@trade".into(), "btcusdt@depth@100ms".into()],
//!     }],
//!     ..IoConfig::default()
//! };
//! let shared = IoShared::new(cfg.feeds.len()); // read by a status thread
//! let stop = AtomicBool::new(false); // set by a signal handler
//! let decoder = BinanceDecoder::new(symbols);
//! let report = run_io_loop(cfg, decoder, tx, None, &mut |n| eprintln!("{n}"), &shared, &stop, now);
//! println!("{:?}", report.totals);
//! ```

use crate::binance::market::{BinanceDecoder, DecodeError, DecodeStats, Decoded, IgnoreReason};
use crate::capture::RecordKind;
use crate::net::{
    client_tls_config, CloseReason, ConnEvent, ConnOptions, ConnState, Connection, Endpoint,
    NetError, TlsOptions,
};
use crate::orders::session::{OrderSession, SessionCounters, UserStream};
use crate::recorder::{RecorderStats, RecorderTx};
use core::fmt;
use engine::event::{Connection as ConnRef, EventKind, MarketEvent};
use engine::latency::LatencyHist;
use engine::ring::{EventTx, TxStats};
use engine::symbol::SymbolId;
use mio::{Events, Poll, Token};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

/// Longest wait in `poll` (so `stop` is noticed within about this long).
pub const MAX_POLL_WAIT: Duration = Duration::from_millis(1);
/// Decode errors reported through [`IoNotice::DecodeError`] per connection; later ones are only
/// counted.
pub const DECODE_ERROR_NOTICES: u64 = 5;
/// Error replies of the venue reported through [`IoNotice::VenueError`] per connection.
pub const ERROR_RESPONSE_NOTICES: u64 = 20;
/// Events one frame may decode to before the reused buffer has to grow (a 1000-level snapshot
/// is 2000 events; depth diffs are far smaller).
const EVENTS_CAPACITY: usize = 4096;
/// How often counters are published to [`IoShared`].
const PUBLISH_EVERY_NS: u64 = 1_000_000;
/// Payload of our heartbeat pings.
const PING_PAYLOAD: &[u8] = b"tickline";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// One feed connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedSpec {
    /// Id of the connection in events, records and notices.
    pub conn_id: u32,
    /// `ws://` or `wss://` URL (a combined-stream URL such as
    /// `wss://stream.binance.com:9443/stream?streams=btcusdt@trade` needs no subscription).
    pub url: String,
    /// Streams sent as a Binance `SUBSCRIBE` after the connection opens, and again after every
    /// reconnect; may be empty.
    pub subscribe: Vec<String>,
}

/// Reconnect backoff: `initial * factor^(n-1)` for the n-th consecutive attempt, capped at
/// `max`, then spread by `+-jitter` (a fraction) and capped at `max` again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first reconnect attempt.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth per consecutive failed attempt (at least 1).
    pub factor: f64,
    /// Random spread, a fraction in `0..=1`: the delay is scaled by a factor in
    /// `1 - jitter ..= 1 + jitter`.
    pub jitter: f64,
    /// Reconnect attempts in a row (without the backoff being reset by a stable connection)
    /// after which the connection is given up ([`IoNotice::GaveUp`]); `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    /// 100 ms doubling up to 5 s, +-20 % jitter, retrying forever.
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.2,
            max_attempts: None,
        }
    }
}

/// Everything [`run_io_loop`] needs besides its ring, decoder and recorder.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// The connections; `IoShared` slot `i` is `feeds[i]`.
    pub feeds: Vec<FeedSpec>,
    /// Connection options (frame limits, TLS). Without a TLS config, a `wss://` feed gets one
    /// with the bundled web PKI roots.
    pub conn: ConnOptions,
    /// Reconnect backoff.
    pub reconnect: ReconnectPolicy,
    /// An open connection that delivers no frame (of any kind, pongs included) for this long is
    /// dead and is reconnected. Zero disables it. Default 10 s.
    pub idle_timeout: Duration,
    /// A WebSocket ping is sent this often on an open connection. Zero disables it. Default 5 s.
    pub heartbeat: Duration,
    /// A connection not open (TCP, TLS and WebSocket handshakes) after this long has failed.
    /// Zero disables it. Default 10 s.
    pub connect_timeout: Duration,
    /// At stop, how long to wait for close handshakes before dropping the sockets. Default 250 ms.
    pub close_timeout: Duration,
    /// Busy-poll (`poll` with a zero timeout): the lowest latency, one core at 100 %.
    pub spin: bool,
    /// The backoff starts again from `initial` when a lost connection had delivered a data
    /// frame and had been open at least this long. Zero: any frame is enough. Default 1 s, so
    /// a server that sends a frame and hangs up at once is not hammered every `initial`.
    pub stable_after: Duration,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            feeds: Vec::new(),
            conn: ConnOptions::default(),
            reconnect: ReconnectPolicy::default(),
            idle_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_millis(250),
            spin: false,
            stable_after: Duration::from_secs(1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Backoff
// ---------------------------------------------------------------------------------------------

/// A small, fast, deterministic generator (SplitMix64) for backoff jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The backoff of one connection: consecutive failed attempts and the jitter generator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    policy: ReconnectPolicy,
    rng: SplitMix64,
    attempts: u32,
}

impl Backoff {
    /// A backoff whose jitter is seeded by the connection id, so runs are repeatable.
    pub fn new(policy: ReconnectPolicy, conn_id: u32) -> Self {
        Backoff {
            policy,
            rng: SplitMix64::new(0x7469_636b_6c69_6e65 ^ conn_id as u64),
            attempts: 0,
        }
    }

    /// The delay before the next attempt, counting it; `None` once
    /// [`ReconnectPolicy::max_attempts`] consecutive attempts have failed.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.policy.max_attempts.is_some_and(|m| self.attempts >= m) {
            return None;
        }
        self.attempts = self.attempts.saturating_add(1);
        let p = &self.policy;
        let max = p.max.as_secs_f64();
        let exp = self.attempts.saturating_sub(1).min(1_000) as i32;
        let base = (p.initial.as_secs_f64() * p.factor.max(1.0).powi(exp)).min(max);
        let spread = p.jitter.clamp(0.0, 1.0) * (2.0 * self.rng.next_unit() - 1.0);
        let d = (base * (1.0 + spread)).clamp(0.0, max);
        Some(Duration::try_from_secs_f64(d).unwrap_or(p.max))
    }

    /// Consecutive attempts counted since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The connection proved healthy: the next delay is `initial` again.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// Counters, shared state, notices, report
// ---------------------------------------------------------------------------------------------

/// Counters of one connection (or, summed, of the loop).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Data frames received (text and binary).
    pub frames: u64,
    /// Payload bytes of those frames.
    pub bytes: u64,
    /// Events decoded from them.
    pub events: u64,
    /// Frames that failed to decode (the connection stays up).
    pub decode_errors: u64,
    /// Frames decoded to nothing (subscription responses, unknown streams or symbols).
    pub ignored: u64,
    /// Of `ignored`, replies of the venue that are not a `result` (a refused subscription).
    pub error_responses: u64,
    /// Connections opened (WebSocket handshake done).
    pub connects: u64,
    /// Open connections lost (closed by the peer, failed, timed out); not counting our stop.
    pub disconnects: u64,
    /// Connection attempts after the first.
    pub reconnect_attempts: u64,
    /// Attempts that failed before the connection opened.
    pub connect_failures: u64,
    /// Open connections dropped because no frame came for `idle_timeout`.
    pub idle_timeouts: u64,
    /// Open connections the peer closed with a close frame (a clean close).
    pub peer_closes: u64,
    /// Open connections the peer hung up on without a close frame (EOF). A frame torn by the
    /// hang-up is one of these: the WebSocket layer discards the part that came.
    pub peer_hangups: u64,
    /// Attempts abandoned after `connect_timeout`.
    pub connect_timeouts: u64,
    /// Heartbeat pings sent.
    pub heartbeats_sent: u64,
    /// Pongs received.
    pub pongs: u64,
    /// Sends (subscribe, ping) that failed.
    pub send_errors: u64,
    /// WebSocket handshake and protocol errors.
    pub protocol_errors: u64,
    /// TLS errors (handshake, certificate, record).
    pub tls_errors: u64,
    /// Resolve and TCP connect errors.
    pub connect_errors: u64,
    /// Other socket errors.
    pub io_errors: u64,
    /// Frames the recorder had no room for.
    pub recorder_dropped: u64,
}

impl IoCounters {
    /// Adds every counter of `o`.
    pub fn add(&mut self, o: &IoCounters) {
        let IoCounters {
            frames,
            bytes,
            events,
            decode_errors,
            ignored,
            error_responses,
            connects,
            disconnects,
            reconnect_attempts,
            connect_failures,
            idle_timeouts,
            peer_closes,
            peer_hangups,
            connect_timeouts,
            heartbeats_sent,
            pongs,
            send_errors,
            protocol_errors,
            tls_errors,
            connect_errors,
            io_errors,
            recorder_dropped,
        } = *o;
        self.frames += frames;
        self.bytes += bytes;
        self.events += events;
        self.decode_errors += decode_errors;
        self.ignored += ignored;
        self.error_responses += error_responses;
        self.connects += connects;
        self.disconnects += disconnects;
        self.reconnect_attempts += reconnect_attempts;
        self.connect_failures += connect_failures;
        self.idle_timeouts += idle_timeouts;
        self.peer_closes += peer_closes;
        self.peer_hangups += peer_hangups;
        self.connect_timeouts += connect_timeouts;
        self.heartbeats_sent += heartbeats_sent;
        self.pongs += pongs;
        self.send_errors += send_errors;
        self.protocol_errors += protocol_errors;
        self.tls_errors += tls_errors;
        self.connect_errors += connect_errors;
        self.io_errors += io_errors;
        self.recorder_dropped += recorder_dropped;
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Waiting to (re)connect.
    Waiting,
    /// TCP, TLS or WebSocket handshake in progress.
    Connecting,
    /// Open: frames flow.
    Open,
    /// Given up (bad URL, or `max_attempts` reached); or the loop has ended.
    Dead,
}

impl LinkState {
    fn code(self) -> u8 {
        match self {
            LinkState::Waiting => 0,
            LinkState::Connecting => 1,
            LinkState::Open => 2,
            LinkState::Dead => 3,
        }
    }

    fn from_code(c: u8) -> Self {
        match c {
            0 => LinkState::Waiting,
            1 => LinkState::Connecting,
            2 => LinkState::Open,
            _ => LinkState::Dead,
        }
    }
}

/// One connection's counters as atomics, on cache lines of their own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ConnCells {
    state: AtomicU8,
    frames: AtomicU64,
    bytes: AtomicU64,
    events: AtomicU64,
    decode_errors: AtomicU64,
    ignored: AtomicU64,
    error_responses: AtomicU64,
    connects: AtomicU64,
    disconnects: AtomicU64,
    reconnect_attempts: AtomicU64,
    connect_failures: AtomicU64,
    idle_timeouts: AtomicU64,
    peer_closes: AtomicU64,
    peer_hangups: AtomicU64,
    connect_timeouts: AtomicU64,
    heartbeats_sent: AtomicU64,
    pongs: AtomicU64,
    send_errors: AtomicU64,
    protocol_errors: AtomicU64,
    tls_errors: AtomicU64,
    connect_errors: AtomicU64,
    io_errors: AtomicU64,
    recorder_dropped: AtomicU64,
}

impl ConnCells {
    fn store(&self, c: &IoCounters, state: LinkState) {
        let r = Ordering::Relaxed;
        self.state.store(state.code(), r);
        self.frames.store(c.frames, r);
        self.bytes.store(c.bytes, r);
        self.events.store(c.events, r);
        self.decode_errors.store(c.decode_errors, r);
        self.ignored.store(c.ignored, r);
        self.error_responses.store(c.error_responses, r);
        self.connects.store(c.connects, r);
        self.disconnects.store(c.disconnects, r);
        self.reconnect_attempts.store(c.reconnect_attempts, r);
        self.connect_failures.store(c.connect_failures, r);
        self.idle_timeouts.store(c.idle_timeouts, r);
        self.peer_closes.store(c.peer_closes, r);
        self.peer_hangups.store(c.peer_hangups, r);
        self.connect_timeouts.store(c.connect_timeouts, r);
        self.heartbeats_sent.store(c.heartbeats_sent, r);
        self.pongs.store(c.pongs, r);
        self.send_errors.store(c.send_errors, r);
        self.protocol_errors.store(c.protocol_errors, r);
        self.tls_errors.store(c.tls_errors, r);
        self.connect_errors.store(c.connect_errors, r);
        self.io_errors.store(c.io_errors, r);
        self.recorder_dropped.store(c.recorder_dropped, r);
    }

    fn load(&self) -> IoCounters {
        let r = Ordering::Relaxed;
        IoCounters {
            frames: self.frames.load(r),
            bytes: self.bytes.load(r),
            events: self.events.load(r),
            decode_errors: self.decode_errors.load(r),
            ignored: self.ignored.load(r),
            error_responses: self.error_responses.load(r),
            connects: self.connects.load(r),
            disconnects: self.disconnects.load(r),
            reconnect_attempts: self.reconnect_attempts.load(r),
            connect_failures: self.connect_failures.load(r),
            idle_timeouts: self.idle_timeouts.load(r),
            peer_closes: self.peer_closes.load(r),
            peer_hangups: self.peer_hangups.load(r),
            connect_timeouts: self.connect_timeouts.load(r),
            heartbeats_sent: self.heartbeats_sent.load(r),
            pongs: self.pongs.load(r),
            send_errors: self.send_errors.load(r),
            protocol_errors: self.protocol_errors.load(r),
            tls_errors: self.tls_errors.load(r),
            connect_errors: self.connect_errors.load(r),
            io_errors: self.io_errors.load(r),
            recorder_dropped: self.recorder_dropped.load(r),
        }
    }
}

/// Loop-wide figures as atomics.
#[derive(Debug, Default)]
#[repr(align(64))]
struct LoopCells {
    running: AtomicBool,
    ring_pushed: AtomicU64,
    ring_dropped: AtomicU64,
    ring_gaps: AtomicU64,
    recorder_dropped: AtomicU64,
    /// The order session's [`UserStream`] code.
    user_stream: AtomicU8,
    /// The order session's [`SessionCounters::user_stream_refused`].
    user_stream_refused: AtomicU64,
}

/// Progress of an I/O loop, readable from any thread for a status line.
///
/// Written only by the I/O thread, with relaxed stores at most every millisecond (and at the
/// end), so reading it costs the I/O thread nothing. Slot `i` is `IoConfig::feeds[i]`;
/// connections beyond the slots made by [`IoShared::new`] appear only in the [`IoReport`].
#[derive(Debug)]
pub struct IoShared {
    conns: Box<[ConnCells]>,
    lp: LoopCells,
}

impl IoShared {
    /// Room for `connections` connections.
    pub fn new(connections: usize) -> Self {
        IoShared {
            conns: (0..connections).map(|_| ConnCells::default()).collect(),
            lp: LoopCells::default(),
        }
    }

    /// Number of connection slots.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True if there are no connection slots.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Counters of connection slot `i`.
    pub fn counters(&self, i: usize) -> Option<IoCounters> {
        self.conns.get(i).map(ConnCells::load)
    }

    /// State of connection slot `i`.
    pub fn state(&self, i: usize) -> Option<LinkState> {
        self.conns
            .get(i)
            .map(|c| LinkState::from_code(c.state.load(Ordering::Relaxed)))
    }

    /// Counters summed over every slot.
    pub fn totals(&self) -> IoCounters {
        let mut t = IoCounters::default();
        for c in self.conns.iter() {
            t.add(&c.load());
        }
        t
    }

    /// True while the loop runs.
    pub fn is_running(&self) -> bool {
        self.lp.running.load(Ordering::Relaxed)
    }

    /// Events pushed into the core's ring (gap markers included).
    pub fn ring_pushed(&self) -> u64 {
        self.lp.ring_pushed.load(Ordering::Relaxed)
    }

    /// Events dropped because the core's ring was full.
    pub fn ring_dropped(&self) -> u64 {
        self.lp.ring_dropped.load(Ordering::Relaxed)
    }

    /// Gap markers pushed after drops.
    pub fn ring_gaps(&self) -> u64 {
        self.lp.ring_gaps.load(Ordering::Relaxed)
    }

    /// Records the recorder had no room for (or refused).
    pub fn recorder_dropped(&self) -> u64 {
        self.lp.recorder_dropped.load(Ordering::Relaxed)
    }

    /// Where the order session's user data stream stands (`Off` without an order session).
    pub fn user_stream(&self) -> UserStream {
        UserStream::from_code(self.lp.user_stream.load(Ordering::Relaxed))
    }

    /// User data stream subscriptions the venue refused so far.
    pub fn user_stream_refused(&self) -> u64 {
        self.lp.user_stream_refused.load(Ordering::Relaxed)
    }
}

/// A change of subscriptions while the loop runs (from the control side, off the hot path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoCommand {
    /// Send Binance's `SUBSCRIBE` for `streams` on connection `conn_id` now (if it is open) and
    /// after every reconnect.
    Subscribe {
        /// The connection.
        conn_id: u32,
        /// Stream names (`btcusdt@trade`).
        streams: Vec<String>,
    },
    /// Send `UNSUBSCRIBE` for `streams` now (if open) and stop re-subscribing them.
    Unsubscribe {
        /// The connection.
        conn_id: u32,
        /// Stream names.
        streams: Vec<String>,
    },
}

/// Something worth logging, raised on the I/O thread (off the frame path).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoNotice {
    /// A connection opened (its `ConnectionUp` is in the ring, its subscription sent): request
    /// snapshots now.
    Connected {
        /// Which connection.
        conn_id: u32,
    },
    /// An open connection was lost, or closed at stop (`reason` "stopped").
    Disconnected {
        /// Which connection.
        conn_id: u32,
        /// What happened, in words.
        reason: String,
    },
    /// An attempt failed before the connection opened (refused, TLS, handshake, timeout).
    ConnectFailed {
        /// Which connection.
        conn_id: u32,
        /// The error's message.
        error: String,
    },
    /// The next attempt is scheduled.
    Reconnecting {
        /// Which connection.
        conn_id: u32,
        /// Consecutive attempt number (1 for the first retry since the connection was healthy).
        attempt: u32,
        /// Delay before it.
        delay: Duration,
    },
    /// The connection is given up: a bad URL, or `max_attempts` consecutive failures.
    GaveUp {
        /// Which connection.
        conn_id: u32,
        /// Why.
        reason: String,
    },
    /// The venue answered a request with an error, e.g. refused a subscription (only the first
    /// [`ERROR_RESPONSE_NOTICES`] per connection).
    VenueError {
        /// Which connection.
        conn_id: u32,
        /// The reply (its first 512 bytes).
        message: String,
    },
    /// A frame could not be decoded (only the first [`DECODE_ERROR_NOTICES`] per connection).
    DecodeError {
        /// Which connection.
        conn_id: u32,
        /// The error and the frame's first bytes.
        error: String,
        /// Decode errors on this connection so far.
        count: u64,
    },
    /// Something the order session reports (refusals, reconciliation, journal trouble).
    OrderSession {
        /// The API connection.
        conn_id: u32,
        /// What happened.
        message: String,
    },
    /// An [`IoCommand`] could not be applied.
    CommandRejected {
        /// The connection it named.
        conn_id: u32,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for IoNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoNotice::Connected { conn_id } => write!(f, "conn {conn_id}: connected"),
            IoNotice::Disconnected { conn_id, reason } => {
                write!(f, "conn {conn_id}: disconnected: {reason}")
            }
            IoNotice::ConnectFailed { conn_id, error } => {
                write!(f, "conn {conn_id}: connect failed: {error}")
            }
            IoNotice::Reconnecting {
                conn_id,
                attempt,
                delay,
            } => write!(
                f,
                "conn {conn_id}: reconnect attempt {attempt} in {} ms",
                delay.as_millis()
            ),
            IoNotice::GaveUp { conn_id, reason } => write!(f, "conn {conn_id}: gave up: {reason}"),
            IoNotice::DecodeError {
                conn_id,
                error,
                count,
            } => write!(f, "conn {conn_id}: decode error #{count}: {error}"),
            IoNotice::OrderSession { conn_id, message } => {
                write!(f, "conn {conn_id}: orders: {message}")
            }
            IoNotice::CommandRejected { conn_id, reason } => {
                write!(f, "conn {conn_id}: command rejected: {reason}")
            }
            IoNotice::VenueError { conn_id, message } => {
                write!(
                    f,
                    "conn {conn_id}: the venue answered with an error: {message}"
                )
            }
        }
    }
}

/// Why [`run_io_loop`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoEnd {
    /// `stop` was set.
    Stopped,
    /// The core dropped its end of the ring.
    CoreGone,
    /// `mio` failed (creating the poll, or polling); the message says how.
    PollError(String),
}

/// One connection in the [`IoReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnReport {
    /// Its id.
    pub conn_id: u32,
    /// Its URL.
    pub url: String,
    /// Its counters.
    pub counters: IoCounters,
    /// Its state when the loop ended (before the connections were closed).
    pub state: LinkState,
}

/// What [`run_io_loop`] did.
#[derive(Clone, Debug)]
pub struct IoReport {
    /// Why it returned.
    pub end: IoEnd,
    /// Per connection, in [`IoConfig::feeds`] order.
    pub connections: Vec<ConnReport>,
    /// Summed over the connections.
    pub totals: IoCounters,
    /// The core ring's producer counters (drops and gap markers).
    pub ring: TxStats,
    /// The decoder's counters.
    pub decode: DecodeStats,
    /// The recorder's producer counters, if there was one.
    pub recorder: Option<RecorderStats>,
    /// Frame receive stamp to decoded (the `decode` stage), ns.
    pub decode_latency: LatencyHist,
    /// Iterations of the loop.
    pub iterations: u64,
    /// The order session, if the loop had one.
    pub session: Option<SessionReport>,
}

/// What the order session did ([`run_io_loop_with_session`]).
#[derive(Clone, Debug)]
pub struct SessionReport {
    /// Its counters.
    pub counters: SessionCounters,
    /// Receive stamp of the causing event to the order frame written, ns.
    pub tick_to_wire: LatencyHist,
    /// Orders still in flight at the end (settled on the next start from the journal).
    pub in_flight: usize,
    /// Times the core woke the parked loop for an order.
    pub wakes: u64,
}

// ---------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Connect at this time.
    Waiting { at_ns: u64 },
    /// Handshaking since this time.
    Connecting { since_ns: u64 },
    /// Open; the next heartbeat is due then.
    Open { next_ping_ns: u64 },
    /// Nothing more to do.
    Dead,
}

/// What the frame path touches of a link (split from the `Connection`, which `handle_ready`
/// borrows while it calls back).
#[derive(Debug)]
struct LinkRx {
    conn_id: u32,
    c: IoCounters,
    last_rx_ns: u64,
    /// A data frame arrived since the connection opened.
    got_frame: bool,
    /// When the connection opened (the loop's clock).
    opened_ns: u64,
    backoff: Backoff,
    /// The order session's API connection (its frames go to the session, not the decoder; no
    /// `ConnectionUp`/`Down` in the market ring, nothing recorded).
    orders: bool,
}

#[derive(Debug)]
struct Link {
    spec: FeedSpec,
    endpoint: Option<Endpoint>,
    conn: Option<Connection>,
    phase: Phase,
    generation: usize,
    attempts_total: u64,
    /// Resolved addresses, reused by every reconnect; cleared after a TCP connect failure, so
    /// the next attempt resolves again.
    addrs: Vec<SocketAddr>,
    rx: LinkRx,
    /// The subscription request of the current session, for the capture.
    subscribe_text: String,
}

impl Link {
    fn state(&self) -> LinkState {
        match self.phase {
            Phase::Waiting { .. } => LinkState::Waiting,
            Phase::Connecting { .. } => LinkState::Connecting,
            Phase::Open { .. } => LinkState::Open,
            Phase::Dead => LinkState::Dead,
        }
    }
}

/// The loop-wide things the frame path needs.
struct Ctx<'a> {
    decoder: BinanceDecoder,
    tx: EventTx,
    recorder: Option<RecorderTx>,
    out: Vec<MarketEvent>,
    notices: &'a mut dyn FnMut(IoNotice),
    now: fn() -> u64,
    core_gone: bool,
    next_request_id: u64,
    stable_ns: u64,
    decode_latency: LatencyHist,
    session: Option<OrderSession>,
    /// A market frame's events were handed to the core in this iteration.
    frame_delivered: bool,
    /// Market links wait until the order API's first attempt has an outcome (open or failed),
    /// so strategies do not see a market they cannot yet trade on.
    orders_gate: bool,
    /// Once the order API is open, the gate also waits for the answer to the user data stream
    /// subscription, until this time at most (0: not waiting).
    gate_until_ns: u64,
}

impl Ctx<'_> {
    /// One data frame: stamp, record, decode, push.
    #[inline]
    fn on_frame(&mut self, rx: &mut LinkRx, payload: &[u8], binary: bool) {
        let recv_ns = (self.now)();
        rx.last_rx_ns = recv_ns;
        rx.c.frames += 1;
        rx.c.bytes += payload.len() as u64;
        rx.got_frame = true;
        if let Some(rec) = &mut self.recorder {
            let kind = if binary {
                RecordKind::BinaryFrame
            } else {
                RecordKind::TextFrame
            };
            if !rec.record(recv_ns, rx.conn_id, kind, payload) {
                rx.c.recorder_dropped += 1;
            }
        }
        self.out.clear();
        let decoded = self.decoder.decode(payload, recv_ns, &mut self.out);
        self.decode_latency
            .record((self.now)().saturating_sub(recv_ns));
        match decoded {
            Ok(Decoded::Events(n)) => {
                rx.c.events += n as u64;
                if self.tx.push_all(&self.out).is_err() {
                    self.core_gone = true;
                }
                self.frame_delivered = true;
            }
            Ok(Decoded::Ignored(why)) => {
                rx.c.ignored += 1;
                if why == IgnoreReason::Response {
                    self.response(rx, payload);
                }
            }
            Err(e) => self.decode_error(rx, e, payload),
        }
    }

    /// A reply to a request: `{"result":..,"id":..}` is fine; anything else (Binance's
    /// `{"error":{"code":..,"msg":..},"id":..}`, `{"code":..,"msg":..}`) is the venue refusing.
    #[cold]
    #[inline(never)]
    fn response(&mut self, rx: &mut LinkRx, payload: &[u8]) {
        if payload.windows(8).any(|w| w == b"\"result\"") {
            return;
        }
        rx.c.error_responses += 1;
        if rx.c.error_responses <= ERROR_RESPONSE_NOTICES {
            let head = &payload[..payload.len().min(512)];
            (self.notices)(IoNotice::VenueError {
                conn_id: rx.conn_id,
                message: String::from_utf8_lossy(head).into_owned(),
            });
        }
    }

    #[cold]
    #[inline(never)]
    fn decode_error(&mut self, rx: &mut LinkRx, e: DecodeError, payload: &[u8]) {
        rx.c.decode_errors += 1;
        if rx.c.decode_errors <= DECODE_ERROR_NOTICES {
            let head = &payload[..payload.len().min(64)];
            (self.notices)(IoNotice::DecodeError {
                conn_id: rx.conn_id,
                error: format!(
                    "{e} (frame of {} bytes: {:?})",
                    payload.len(),
                    String::from_utf8_lossy(head)
                ),
                count: rx.c.decode_errors,
            });
        }
    }

    /// One frame of the order API connection.
    fn on_order_frame(&mut self, rx: &mut LinkRx, payload: &[u8]) {
        rx.last_rx_ns = (self.now)();
        rx.c.frames += 1;
        rx.c.bytes += payload.len() as u64;
        rx.got_frame = true;
        if let Some(s) = self.session.as_mut() {
            s.on_frame(payload);
        }
    }

    /// Passes on what the order session wants logged.
    #[cold]
    fn session_notices(&mut self) {
        if let Some(s) = self.session.as_mut() {
            let conn_id = s.config().conn_id;
            for message in s.take_notices() {
                (self.notices)(IoNotice::OrderSession { conn_id, message });
            }
        }
    }

    /// A connection-level event into the ring.
    fn push_conn(&mut self, recv_ns: u64, conn_id: u32, up: bool) {
        let c = ConnRef { conn_id };
        let kind = if up {
            EventKind::ConnectionUp(c)
        } else {
            EventKind::ConnectionDown(c)
        };
        if self
            .tx
            .push(MarketEvent::new(recv_ns, SymbolId::ALL, kind))
            .is_err()
        {
            self.core_gone = true;
        }
    }

    fn record(&mut self, recv_ns: u64, rx: &mut LinkRx, kind: RecordKind, payload: &[u8]) {
        if let Some(rec) = &mut self.recorder {
            if !rec.record(recv_ns, rx.conn_id, kind, payload) {
                rx.c.recorder_dropped += 1;
            }
        }
    }
}

/// Binance's `{"method":"SUBSCRIBE","params":[...],"id":N}`.
fn subscribe_request(streams: &[String], id: u64) -> String {
    stream_request("SUBSCRIBE", streams, id)
}

/// Binance's `{"method":"<METHOD>","params":[...],"id":N}` for `SUBSCRIBE` and `UNSUBSCRIBE`.
fn stream_request(method: &str, streams: &[String], id: u64) -> String {
    let mut s = format!(r#"{{"method":"{method}","params":["#);
    for (i, stream) in streams.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for ch in stream.chars() {
            match ch {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push_str(&format!(r#"],"id":{id}}}"#));
    s
}

fn close_reason_text(r: CloseReason) -> String {
    match r {
        CloseReason::ByPeer { code } => format!("closed by the peer (close code {code})"),
        CloseReason::ByUs => "closed by us".to_string(),
        CloseReason::Eof => "connection closed by the peer without a close frame".to_string(),
    }
}

fn count_error(c: &mut IoCounters, e: &NetError) {
    match e {
        NetError::Tls(_) => c.tls_errors += 1,
        NetError::WsHandshake(_) | NetError::Protocol(_) | NetError::LineTooLong { .. } => {
            c.protocol_errors += 1
        }
        NetError::Url(_) | NetError::Resolve { .. } | NetError::Connect(_) => c.connect_errors += 1,
        NetError::Io(_) => c.io_errors += 1,
        NetError::Closed => {}
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Runs the I/O loop until `stop` is set (or the core drops its ring), then closes every
/// connection politely and reports. See the [module docs](self).
///
/// `now` is the engine's monotonic clock in ns (`tools::clock::MonoClock::now`); every receive
/// stamp and every deadline comes from it. `shared` should have a slot per feed
/// ([`IoShared::new`]`(cfg.feeds.len())`).
#[allow(clippy::too_many_arguments)]
pub fn run_io_loop(
    cfg: IoConfig,
    decoder: BinanceDecoder,
    tx: EventTx,
    recorder: Option<RecorderTx>,
    notices: &mut dyn FnMut(IoNotice),
    shared: &IoShared,
    stop: &AtomicBool,
    now: fn() -> u64,
) -> IoReport {
    let (_no_commands, commands) = std::sync::mpsc::channel();
    run_io_loop_with_commands(
        cfg, decoder, tx, recorder, &commands, notices, shared, stop, now,
    )
}

/// [`run_io_loop`] that also applies [`IoCommand`]s (subscribe and unsubscribe at run time),
/// checked once per loop iteration with a non-blocking `try_recv`.
#[allow(clippy::too_many_arguments)]
pub fn run_io_loop_with_commands(
    cfg: IoConfig,
    decoder: BinanceDecoder,
    tx: EventTx,
    recorder: Option<RecorderTx>,
    commands: &std::sync::mpsc::Receiver<IoCommand>,
    notices: &mut dyn FnMut(IoNotice),
    shared: &IoShared,
    stop: &AtomicBool,
    now: fn() -> u64,
) -> IoReport {
    run_io_loop_with_session(
        cfg, decoder, tx, recorder, commands, None, notices, shared, stop, now,
    )
}

/// [`run_io_loop_with_commands`] that also owns the venue's order session
/// ([`crate::orders::session`]): one more connection, to the order API at `session`'s URL, whose
/// frames go to the session; the session's commands are sent every iteration, and the loop is
/// woken for them ([`crate::orders::session::OrderWake`]). The session's counters and `tick_to_wire`
/// histogram are in [`IoReport::session`].
#[allow(clippy::too_many_arguments)]
pub fn run_io_loop_with_session(
    cfg: IoConfig,
    decoder: BinanceDecoder,
    tx: EventTx,
    recorder: Option<RecorderTx>,
    commands: &std::sync::mpsc::Receiver<IoCommand>,
    session: Option<OrderSession>,
    notices: &mut dyn FnMut(IoNotice),
    shared: &IoShared,
    stop: &AtomicBool,
    now: fn() -> u64,
) -> IoReport {
    let spin_after_ns = session
        .as_ref()
        .map_or(0, |s| ns(s.config().spin_after_frame));
    let order_spec = session.as_ref().map(|s| FeedSpec {
        conn_id: s.config().conn_id,
        url: s.config().url.clone(),
        subscribe: Vec::new(),
    });
    let mut ctx = Ctx {
        decoder,
        tx,
        recorder,
        out: Vec::with_capacity(EVENTS_CAPACITY),
        notices,
        now,
        core_gone: false,
        next_request_id: 1,
        stable_ns: ns(cfg.stable_after),
        decode_latency: LatencyHist::new(),
        orders_gate: session.is_some(),
        gate_until_ns: 0,
        session,
        frame_delivered: false,
    };
    let mut conn_opts = cfg.conn.clone();
    let t0 = now();
    let order_link = order_spec.as_ref().map(|_| cfg.feeds.len());
    let mut links: Vec<Link> = cfg
        .feeds
        .iter()
        .chain(order_spec.iter())
        .map(|spec| Link {
            spec: spec.clone(),
            endpoint: None,
            addrs: Vec::new(),
            conn: None,
            phase: Phase::Waiting { at_ns: t0 },
            generation: 0,
            attempts_total: 0,
            rx: LinkRx {
                conn_id: spec.conn_id,
                c: IoCounters::default(),
                last_rx_ns: t0,
                got_frame: false,
                opened_ns: t0,
                backoff: Backoff::new(cfg.reconnect, spec.conn_id),
                orders: false,
            },
            subscribe_text: String::new(),
        })
        .collect();
    if let Some(i) = order_link {
        links[i].rx.orders = true;
    }
    for link in &mut links {
        match Endpoint::parse(&link.spec.url) {
            Ok(ep) => link.endpoint = Some(ep),
            Err(e) => {
                link.phase = Phase::Dead;
                count_error(&mut link.rx.c, &e);
                (ctx.notices)(IoNotice::GaveUp {
                    conn_id: link.spec.conn_id,
                    reason: format!("bad URL {:?}: {e}", link.spec.url),
                });
            }
        }
    }
    if order_link.is_some_and(|i| links[i].phase == Phase::Dead) {
        ctx.orders_gate = false;
    }
    if conn_opts.tls.is_none() && links.iter().flat_map(|l| &l.endpoint).any(|e| e.is_tls()) {
        // Failing here is not fatal: each TLS connection then reports its own error.
        if let Ok(tls) = client_tls_config(&TlsOptions::default()) {
            conn_opts.tls = Some(tls);
        }
    }

    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            return report(
                IoEnd::PollError(format!("creating the poll: {e}")),
                links,
                ctx,
                shared,
                0,
            )
        }
    };
    let mut events = Events::with_capacity(256);
    let n_links = links.len().max(1);
    if let Some(s) = ctx.session.as_ref() {
        match mio::Waker::new(poll.registry(), WAKE_TOKEN) {
            Ok(w) => s.wake().set_waker(w),
            Err(e) => (ctx.notices)(IoNotice::OrderSession {
                conn_id: s.config().conn_id,
                message: format!(
                    "no waker ({e}): an order waits up to {} ms while the loop sleeps",
                    MAX_POLL_WAIT.as_millis()
                ),
            }),
        }
    }
    let mut spin_until = 0u64;
    let t = Timing {
        idle_ns: ns(cfg.idle_timeout),
        heartbeat_ns: ns(cfg.heartbeat),
        connect_ns: ns(cfg.connect_timeout),
    };
    shared.lp.running.store(true, Ordering::Relaxed);
    let mut iterations = 0u64;
    let mut next_publish = 0u64;
    let mut end = IoEnd::Stopped;

    while !stop.load(Ordering::Relaxed) {
        iterations += 1;
        while let Ok(cmd) = commands.try_recv() {
            apply_command(&mut links, cmd, &mut ctx);
        }
        let now_ns = now();
        let mut next_deadline = u64::MAX;
        if ctx.gate_until_ns > 0 {
            release_gate(&mut ctx, now_ns);
            if ctx.gate_until_ns > 0 {
                next_deadline = ctx.gate_until_ns;
            }
        }
        // Market links also wait for the first venue check of client ids (crate::orders::idcheck).
        let gated = ctx.orders_gate
            || ctx
                .session
                .as_ref()
                .is_some_and(OrderSession::holds_market_data);
        for (i, link) in links.iter_mut().enumerate() {
            if gated && !link.rx.orders {
                continue;
            }
            let d = on_timers(link, i, n_links, now_ns, &t, &mut ctx, &poll, &conn_opts);
            next_deadline = next_deadline.min(d);
        }
        if now_ns >= next_publish {
            publish(&links, &ctx, shared);
            next_publish = now_ns + PUBLISH_EVERY_NS;
            // A push into an abandoned ring with room succeeds, so look as well.
            ctx.core_gone |= ctx.tx.is_closed();
        }
        if ctx.core_gone {
            end = IoEnd::CoreGone;
            break;
        }
        if pump_session(&mut ctx, &mut links, order_link) > 0 {
            // The answer to the frame is out: stop spinning, so a venue (or anything else)
            // sharing this CPU gets it at once.
            spin_until = 0;
        }
        let mut wait = if cfg.spin || now_ns < spin_until {
            Duration::ZERO
        } else {
            Duration::from_nanos(next_deadline.saturating_sub(now_ns)).min(MAX_POLL_WAIT)
        };
        let parked = match ctx.session.as_ref() {
            Some(s) if !wait.is_zero() => {
                let sleeping = s.wake().park(|| s.commands_waiting());
                if !sleeping {
                    wait = Duration::ZERO;
                }
                sleeping
            }
            _ => false,
        };
        let polled = poll.poll(&mut events, Some(wait));
        if parked {
            if let Some(s) = ctx.session.as_ref() {
                s.wake().unpark();
            }
        }
        if let Err(e) = polled {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            end = IoEnd::PollError(format!("polling: {e}"));
            break;
        }
        ctx.frame_delivered = false;
        for ev in events.iter() {
            let Token(tok) = ev.token();
            if ev.token() == WAKE_TOKEN {
                continue;
            }
            let (i, generation) = (tok % n_links, tok / n_links);
            if let Some(link) = links.get_mut(i) {
                if link.generation == generation && link.conn.is_some() {
                    on_ready(link, now_ns, &t, &mut ctx, &poll, false);
                }
            }
        }
        if ctx.frame_delivered && spin_after_ns > 0 {
            spin_until = now().saturating_add(spin_after_ns);
        }
        if pump_session(&mut ctx, &mut links, order_link) > 0 {
            spin_until = 0;
        }
        if ctx.core_gone || ctx.session.as_ref().is_some_and(OrderSession::core_gone) {
            end = IoEnd::CoreGone;
            break;
        }
    }
    let states: Vec<LinkState> = links.iter().map(Link::state).collect();
    shutdown(&mut links, &mut ctx, &mut poll, &mut events, &cfg, n_links);
    if let Some(s) = ctx.session.as_mut() {
        s.finish();
    }
    ctx.session_notices();
    let mut r = report(end, links, ctx, shared, iterations);
    for (c, s) in r.connections.iter_mut().zip(states) {
        c.state = s;
    }
    shared.lp.running.store(false, Ordering::Relaxed);
    r
}

/// The token of the order session's waker (never a connection's: those are small).
const WAKE_TOKEN: Token = Token(usize::MAX);

/// Sends the order session's commands on its connection (if open), then its notices. Returns
/// the number of commands taken.
#[inline]
fn pump_session(ctx: &mut Ctx<'_>, links: &mut [Link], order_link: Option<usize>) -> usize {
    let (Some(s), Some(i)) = (ctx.session.as_mut(), order_link) else {
        return 0;
    };
    let conn = links.get_mut(i).and_then(|l| match l.phase {
        Phase::Open { .. } => l.conn.as_mut(),
        _ => None,
    });
    let n = s.pump(conn);
    if s.has_notices() {
        ctx.session_notices();
    }
    n
}

/// Deadlines in ns.
struct Timing {
    idle_ns: u64,
    heartbeat_ns: u64,
    connect_ns: u64,
}

/// Runs `link`'s timers; returns its next deadline.
#[allow(clippy::too_many_arguments)]
fn on_timers(
    link: &mut Link,
    index: usize,
    n_links: usize,
    now_ns: u64,
    t: &Timing,
    ctx: &mut Ctx<'_>,
    poll: &Poll,
    opts: &ConnOptions,
) -> u64 {
    match link.phase {
        Phase::Waiting { at_ns } => {
            if now_ns < at_ns {
                return at_ns;
            }
            start_connect(link, index, n_links, now_ns, ctx, poll, opts);
            match link.phase {
                Phase::Connecting { since_ns } if t.connect_ns > 0 => {
                    since_ns.saturating_add(t.connect_ns)
                }
                Phase::Waiting { at_ns } => at_ns,
                _ => u64::MAX,
            }
        }
        Phase::Connecting { since_ns } => {
            if t.connect_ns == 0 {
                return u64::MAX;
            }
            let due = since_ns.saturating_add(t.connect_ns);
            if now_ns >= due {
                link.rx.c.connect_timeouts += 1;
                let msg = format!(
                    "connect timeout: not open after {} ms",
                    t.connect_ns / 1_000_000
                );
                lose(link, now_ns, ctx, poll, msg);
                return now_ns;
            }
            due
        }
        Phase::Open { next_ping_ns } => {
            let mut next = u64::MAX;
            if t.idle_ns > 0 {
                let due = link.rx.last_rx_ns.saturating_add(t.idle_ns);
                if now_ns >= due {
                    link.rx.c.idle_timeouts += 1;
                    let msg = format!("idle timeout: no frame for {} ms", t.idle_ns / 1_000_000);
                    lose(link, now_ns, ctx, poll, msg);
                    return now_ns;
                }
                next = due;
            }
            if t.heartbeat_ns > 0 {
                if now_ns >= next_ping_ns {
                    let sent = link.conn.as_mut().map(|c| c.send_ping(PING_PAYLOAD));
                    match sent {
                        Some(Ok(())) => link.rx.c.heartbeats_sent += 1,
                        Some(Err(e)) => {
                            link.rx.c.send_errors += 1;
                            count_error(&mut link.rx.c, &e);
                            lose(link, now_ns, ctx, poll, format!("sending a ping: {e}"));
                            return now_ns;
                        }
                        None => {}
                    }
                    let np = now_ns.saturating_add(t.heartbeat_ns);
                    link.phase = Phase::Open { next_ping_ns: np };
                    next = next.min(np);
                } else {
                    next = next.min(next_ping_ns);
                }
            }
            next
        }
        Phase::Dead => u64::MAX,
    }
}

#[cold]
fn start_connect(
    link: &mut Link,
    index: usize,
    n_links: usize,
    now_ns: u64,
    ctx: &mut Ctx<'_>,
    poll: &Poll,
    opts: &ConnOptions,
) {
    let Some(ep) = &link.endpoint else {
        link.phase = Phase::Dead;
        return;
    };
    if link.attempts_total > 0 {
        link.rx.c.reconnect_attempts += 1;
    }
    link.attempts_total += 1;
    link.generation += 1;
    link.rx.got_frame = false;
    link.phase = Phase::Connecting { since_ns: now_ns };
    if link.addrs.is_empty() {
        // Blocks for a DNS lookup unless the host is an IP literal: at start-up, and after
        // a connect failure only.
        match ep.resolve() {
            Ok(a) => link.addrs = a,
            Err(e) => return fail(link, now_ns, ctx, poll, e),
        }
    }
    let token = Token(link.generation * n_links + index);
    match Connection::connect_to(ep, &link.addrs, opts, poll.registry(), token) {
        Ok(c) => link.conn = Some(c),
        Err(e) => fail(link, now_ns, ctx, poll, e),
    }
}

/// The connection (or the attempt) failed with `e`.
#[cold]
fn fail(link: &mut Link, now_ns: u64, ctx: &mut Ctx<'_>, poll: &Poll, e: NetError) {
    count_error(&mut link.rx.c, &e);
    if matches!(e, NetError::Connect(_)) {
        link.addrs.clear();
    }
    lose(link, now_ns, ctx, poll, e.to_string());
}

/// Readiness on `link`'s connection. `closing`: the loop is stopping (no reconnects, no
/// subscriptions; a connection that ends is just dropped).
fn on_ready(
    link: &mut Link,
    now_ns: u64,
    t: &Timing,
    ctx: &mut Ctx<'_>,
    poll: &Poll,
    closing: bool,
) {
    let Link { conn, rx, spec, .. } = link;
    let Some(c) = conn.as_mut() else {
        return;
    };
    let mut opened = false;
    let mut closed: Option<CloseReason> = None;
    let res = c.handle_ready(poll.registry(), &mut |ev| match ev {
        ConnEvent::Message { payload, .. } if rx.orders => ctx.on_order_frame(rx, payload),
        ConnEvent::Message { payload, binary } => ctx.on_frame(rx, payload, binary),
        ConnEvent::Pong => {
            rx.last_rx_ns = (ctx.now)();
            rx.c.pongs += 1;
        }
        ConnEvent::Opened => {
            // Up before any of the session's data, in the ring and in the capture.
            opened = true;
            let at = (ctx.now)();
            rx.last_rx_ns = at;
            rx.opened_ns = at;
            rx.c.connects += 1;
            if !rx.orders {
                ctx.push_conn(at, rx.conn_id, true);
                ctx.record(at, rx, RecordKind::Connect, spec.url.as_bytes());
            }
        }
        ConnEvent::Closed(r) => closed = Some(r),
    });
    if opened {
        on_opened(link, now_ns, t, ctx, closing);
    }
    let ended = res.is_err() || closed.is_some();
    if closing {
        if ended {
            if let Some(mut c) = link.conn.take() {
                c.deregister(poll.registry());
            }
        }
        return;
    }
    if let Err(e) = res {
        fail(link, now_ns, ctx, poll, e);
    } else if let Some(r) = closed {
        match r {
            CloseReason::ByPeer { .. } => link.rx.c.peer_closes += 1,
            CloseReason::Eof => link.rx.c.peer_hangups += 1,
            CloseReason::ByUs => {}
        }
        lose(link, now_ns, ctx, poll, close_reason_text(r));
    } else if link.conn.as_ref().map(Connection::state) == Some(ConnState::Closed) {
        lose(link, now_ns, ctx, poll, "connection closed".to_string());
    }
}

/// Longest wait for the user data stream's answer before market data starts (without a connect
/// timeout).
const GATE_WAIT_NS: u64 = 5_000_000_000;

/// Opens the gate once the user data stream subscription has an answer, or its wait is over.
#[cold]
fn release_gate(ctx: &mut Ctx<'_>, now_ns: u64) {
    let pending = ctx
        .session
        .as_ref()
        .is_some_and(|s| s.user_stream() == UserStream::Pending);
    if pending && now_ns < ctx.gate_until_ns {
        return;
    }
    ctx.orders_gate = false;
    ctx.gate_until_ns = 0;
    if pending {
        let conn_id = ctx.session.as_ref().map_or(0, |s| s.config().conn_id);
        (ctx.notices)(IoNotice::OrderSession {
            conn_id,
            message: "no answer to the user data stream subscription yet; market data starts anyway (GTC orders are refused until it is confirmed)".to_string(),
        });
    }
}

#[cold]
fn on_opened(link: &mut Link, now_ns: u64, t: &Timing, ctx: &mut Ctx<'_>, closing: bool) {
    link.phase = Phase::Open {
        next_ping_ns: now_ns.saturating_add(t.heartbeat_ns),
    };
    if link.rx.orders && !closing {
        let first = ctx.orders_gate;
        ctx.orders_gate = false;
        if let Some(s) = ctx.session.as_mut() {
            s.on_open();
            if first && s.user_stream() == UserStream::Pending {
                // Market data waits for the subscription's answer too (at most a connect
                // timeout), so the first orders do not meet a stream still pending.
                ctx.orders_gate = true;
                let wait = if t.connect_ns > 0 {
                    t.connect_ns
                } else {
                    GATE_WAIT_NS
                };
                ctx.gate_until_ns = now_ns.saturating_add(wait);
            }
        }
    }
    if !link.spec.subscribe.is_empty() && !closing {
        let id = ctx.next_request_id;
        ctx.next_request_id += 1;
        link.subscribe_text = subscribe_request(&link.spec.subscribe, id);
        let sent = link
            .conn
            .as_mut()
            .map(|c| c.send_text(&link.subscribe_text));
        match sent {
            Some(Ok(())) => {
                let at = (ctx.now)();
                let text = link.subscribe_text.as_bytes();
                ctx.record(at, &mut link.rx, RecordKind::Subscribe, text);
            }
            Some(Err(e)) => {
                // The error surfaces again on the next readiness; count it here.
                link.rx.c.send_errors += 1;
                count_error(&mut link.rx.c, &e);
            }
            None => {}
        }
    }
    (ctx.notices)(IoNotice::Connected {
        conn_id: link.rx.conn_id,
    });
}

/// Applies a subscription change: the stream list a reconnect re-sends, and, if the connection is
/// open, the `SUBSCRIBE`/`UNSUBSCRIBE` request now (recorded like the opening subscription).
#[cold]
fn apply_command(links: &mut [Link], cmd: IoCommand, ctx: &mut Ctx<'_>) {
    let (conn_id, streams, method) = match cmd {
        IoCommand::Subscribe { conn_id, streams } => (conn_id, streams, "SUBSCRIBE"),
        IoCommand::Unsubscribe { conn_id, streams } => (conn_id, streams, "UNSUBSCRIBE"),
    };
    let Some(link) = links.iter_mut().find(|l| l.spec.conn_id == conn_id) else {
        (ctx.notices)(IoNotice::CommandRejected {
            conn_id,
            reason: format!("no connection {conn_id}"),
        });
        return;
    };
    if streams.is_empty() {
        (ctx.notices)(IoNotice::CommandRejected {
            conn_id,
            reason: format!("{method} without streams"),
        });
        return;
    }
    if method == "SUBSCRIBE" {
        for s in &streams {
            if !link.spec.subscribe.contains(s) {
                link.spec.subscribe.push(s.clone());
            }
        }
    } else {
        link.spec.subscribe.retain(|s| !streams.contains(s));
    }
    if !matches!(link.phase, Phase::Open { .. }) {
        return; // applied at the next (re)connect
    }
    let id = ctx.next_request_id;
    ctx.next_request_id += 1;
    let text = stream_request(method, &streams, id);
    match link.conn.as_mut().map(|c| c.send_text(&text)) {
        Some(Ok(())) => {
            let at = (ctx.now)();
            ctx.record(at, &mut link.rx, RecordKind::Subscribe, text.as_bytes());
        }
        Some(Err(e)) => {
            link.rx.c.send_errors += 1;
            count_error(&mut link.rx.c, &e);
        }
        None => {}
    }
}

/// The connection (or the attempt) is lost: report it and schedule the next attempt.
#[cold]
#[inline(never)]
fn lose(link: &mut Link, now_ns: u64, ctx: &mut Ctx<'_>, poll: &Poll, reason: String) {
    if let Some(mut c) = link.conn.take() {
        let _ = c.close();
        c.deregister(poll.registry());
    }
    let conn_id = link.rx.conn_id;
    match link.phase {
        Phase::Open { .. } => {
            if link.rx.got_frame && now_ns.saturating_sub(link.rx.opened_ns) >= ctx.stable_ns {
                link.rx.backoff.reset();
            }
            link.rx.c.disconnects += 1;
            let at = (ctx.now)();
            if link.rx.orders {
                if let Some(s) = ctx.session.as_mut() {
                    s.on_down();
                }
            } else {
                ctx.push_conn(at, conn_id, false);
                ctx.record(at, &mut link.rx, RecordKind::Disconnect, reason.as_bytes());
            }
            (ctx.notices)(IoNotice::Disconnected { conn_id, reason });
        }
        Phase::Connecting { .. } | Phase::Waiting { .. } => {
            if link.rx.orders && ctx.orders_gate {
                ctx.orders_gate = false;
                (ctx.notices)(IoNotice::OrderSession {
                    conn_id,
                    message: "the order API is not reachable; market data starts anyway, and orders are refused until it is".to_string(),
                });
            }
            link.rx.c.connect_failures += 1;
            (ctx.notices)(IoNotice::ConnectFailed {
                conn_id,
                error: reason,
            });
        }
        Phase::Dead => return,
    }
    match link.rx.backoff.next_delay() {
        Some(delay) => {
            link.phase = Phase::Waiting {
                at_ns: now_ns.saturating_add(ns(delay)),
            };
            (ctx.notices)(IoNotice::Reconnecting {
                conn_id,
                attempt: link.rx.backoff.attempts(),
                delay,
            });
        }
        None => {
            link.phase = Phase::Dead;
            (ctx.notices)(IoNotice::GaveUp {
                conn_id,
                reason: format!("{} consecutive attempts failed", link.rx.backoff.attempts()),
            });
        }
    }
}

/// Closes every connection: close handshakes, bounded by `close_timeout`; then `ConnectionDown`
/// for each that was open.
fn shutdown(
    links: &mut [Link],
    ctx: &mut Ctx<'_>,
    poll: &mut Poll,
    events: &mut Events,
    cfg: &IoConfig,
    n_links: usize,
) {
    let t = Timing {
        idle_ns: 0,
        heartbeat_ns: 0,
        connect_ns: 0,
    };
    // Open connections get a close handshake; attempts still handshaking are just dropped.
    let mut any = false;
    for link in links.iter_mut() {
        let Some(c) = link.conn.as_mut() else {
            continue;
        };
        if matches!(link.phase, Phase::Open { .. }) && c.close().is_ok() {
            any = true;
        } else {
            c.deregister(poll.registry());
            link.conn = None;
        }
    }
    let deadline = (ctx.now)().saturating_add(ns(cfg.close_timeout));
    while any && (ctx.now)() < deadline {
        if poll.poll(events, Some(MAX_POLL_WAIT)).is_err() {
            break;
        }
        for ev in events.iter() {
            let Token(tok) = ev.token();
            if ev.token() == WAKE_TOKEN {
                continue;
            }
            let (i, generation) = (tok % n_links, tok / n_links);
            if let Some(link) = links.get_mut(i) {
                if link.generation == generation && link.conn.is_some() {
                    on_ready(link, (ctx.now)(), &t, ctx, poll, true);
                }
            }
        }
        any = links.iter().any(|l| l.conn.is_some());
    }
    let reason = "stopped";
    for link in links.iter_mut() {
        if let Some(mut c) = link.conn.take() {
            c.deregister(poll.registry());
        }
        if matches!(link.phase, Phase::Open { .. }) {
            let at = (ctx.now)();
            if link.rx.orders {
                if let Some(s) = ctx.session.as_mut() {
                    s.on_down();
                }
            } else {
                if !ctx.core_gone {
                    ctx.push_conn(at, link.rx.conn_id, false);
                }
                ctx.record(at, &mut link.rx, RecordKind::Disconnect, reason.as_bytes());
            }
            (ctx.notices)(IoNotice::Disconnected {
                conn_id: link.rx.conn_id,
                reason: reason.to_string(),
            });
        }
        link.phase = Phase::Dead;
    }
}

fn publish(links: &[Link], ctx: &Ctx<'_>, shared: &IoShared) {
    for (link, cells) in links.iter().zip(shared.conns.iter()) {
        cells.store(&link.rx.c, link.state());
    }
    let r = Ordering::Relaxed;
    let s = ctx.tx.stats();
    shared.lp.ring_pushed.store(s.pushed, r);
    shared.lp.ring_dropped.store(s.dropped, r);
    shared.lp.ring_gaps.store(s.gaps_reported, r);
    if let Some(sess) = &ctx.session {
        shared.lp.user_stream.store(sess.user_stream().code(), r);
        shared
            .lp
            .user_stream_refused
            .store(sess.counters().user_stream_refused, r);
    }
    if let Some(rec) = &ctx.recorder {
        let st = rec.stats();
        shared
            .lp
            .recorder_dropped
            .store(st.dropped + st.rejected, r);
    }
}

fn report(
    end: IoEnd,
    links: Vec<Link>,
    ctx: Ctx<'_>,
    shared: &IoShared,
    iterations: u64,
) -> IoReport {
    publish(&links, &ctx, shared);
    let mut totals = IoCounters::default();
    let connections = links
        .into_iter()
        .map(|l| {
            if !l.rx.orders {
                totals.add(&l.rx.c);
            }
            ConnReport {
                conn_id: l.spec.conn_id,
                url: l.spec.url,
                counters: l.rx.c,
                state: LinkState::Dead,
            }
        })
        .collect();
    IoReport {
        end,
        connections,
        totals,
        ring: ctx.tx.stats(),
        decode: *ctx.decoder.stats(),
        recorder: ctx.recorder.as_ref().map(RecorderTx::stats),
        iterations,
        decode_latency: ctx.decode_latency,
        session: ctx.session.map(|s| SessionReport {
            counters: *s.counters(),
            tick_to_wire: s.tick_to_wire().clone(),
            in_flight: s.in_flight(),
            wakes: s.wake().wakes(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_jitters_deterministically_and_resets() {
        let policy = ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            factor: 2.0,
            jitter: 0.25,
            max_attempts: None,
        };
        let mut b = Backoff::new(policy, 7);
        let delays: Vec<_> = (0..10).map(|_| b.next_delay().unwrap()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (100.0 * 2f64.powi(i as i32)).min(2_000.0);
            let ms = d.as_secs_f64() * 1e3;
            assert!(
                ms >= base * 0.75 - 1e-6 && ms <= (base * 1.25).min(2_000.0) + 1e-6,
                "{i}: {ms}"
            );
        }
        assert!(delays
            .iter()
            .any(|d| d.as_millis() != 100 && d.as_millis() != 200));
        // Same seed, same sequence; another connection, another sequence.
        let mut again = Backoff::new(policy, 7);
        assert_eq!(
            (0..10)
                .map(|_| again.next_delay().unwrap())
                .collect::<Vec<_>>(),
            delays
        );
        let mut other = Backoff::new(policy, 8);
        assert_ne!(
            (0..10)
                .map(|_| other.next_delay().unwrap())
                .collect::<Vec<_>>(),
            delays
        );
        assert_eq!(b.attempts(), 10);
        b.reset();
        let d = b.next_delay().unwrap().as_millis();
        assert!((75..=125).contains(&d), "{d}");
    }

    #[test]
    fn backoff_gives_up_after_max_attempts_and_without_jitter_is_exact() {
        let mut b = Backoff::new(
            ReconnectPolicy {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(35),
                factor: 2.0,
                jitter: 0.0,
                max_attempts: Some(4),
            },
            1,
        );
        let got: Vec<_> = std::iter::from_fn(|| b.next_delay()).collect();
        assert_eq!(
            got,
            [10, 20, 35, 35].map(Duration::from_millis),
            "capped at max"
        );
        assert_eq!(b.next_delay(), None);
    }

    #[test]
    fn subscribe_request_is_binance_json() {
        let s = subscribe_request(&["btcusdt@trade".into(), "btcusdt@depth@100ms".into()], 3);
        assert_eq!(
            s,
            r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth@100ms"],"id":3}"#
        );
        assert_eq!(
            subscribe_request(&["a\"b\\c\n".into()], 1),
            r#"{"method":"SUBSCRIBE","params":["a\"b\\c\u000a"],"id":1}"#
        );
    }

    #[test]
    fn splitmix_is_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let u = SplitMix64::new(5).next_unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn shared_counters_sum_and_default_to_waiting() {
        let s = IoShared::new(2);
        assert_eq!(s.len(), 2);
        let c = IoCounters {
            frames: 3,
            bytes: 10,
            ..Default::default()
        };
        s.conns[0].store(&c, LinkState::Open);
        s.conns[1].store(&c, LinkState::Dead);
        assert_eq!(s.counters(0), Some(c));
        assert_eq!(s.state(0), Some(LinkState::Open));
        assert_eq!(s.state(1), Some(LinkState::Dead));
        assert_eq!(s.totals().frames, 6);
        assert_eq!(s.counters(2), None);
        assert_eq!(IoShared::new(1).state(0), Some(LinkState::Waiting));
    }
}
