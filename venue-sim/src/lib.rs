//! A loopback venue simulator that speaks Binance spot's market-data protocols, for tests, the
//! demo and latency benchmarks.
//!
//! [`VenueSim::start`] binds two ports on 127.0.0.1 and serves one shared feed:
//!
//! - **Market data** (WebSocket, plain or TLS with a self-signed certificate for `localhost` and
//!   `127.0.0.1`; or newline-delimited JSON over raw TCP):
//!   - `/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms`: combined frames
//!     `{"stream":..,"data":..}` for exactly the subscribed streams;
//!   - `/ws` and `/ws/<stream>[/<stream>..]`: bare payloads;
//!   - live `{"method":"SUBSCRIBE","params":[..],"id":1}`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`,
//!     `SET_PROPERTY`/`GET_PROPERTY` (`combined`), answered as Binance answers them
//!     (`{"result":null,"id":1}`, or `{"code":2,"msg":"Invalid request: ..","id":1}`);
//!   - a ping every 20 s ([`SimConfig::ping_interval`]); a client that does not answer within
//!     [`SimConfig::pong_timeout`] is disconnected; client pings are answered, close frames
//!     honoured.
//!
//!   Stream names are `<symbol>@trade|aggTrade|bookTicker|depth|depth@100ms` with the symbol in
//!   lower case; a subscription to `x@depth` also receives frames the feed carries as
//!   `x@depth@100ms` and the other way round (combined frames then carry the subscribed name).
//!   Raw TCP mode sends every stream, combined, one frame per line.
//! - **REST** (plain HTTP/1.1): `GET /api/v3/depth?symbol=BTCUSDT&limit=1000` from the
//!   simulator's own book of each symbol, whose `lastUpdateId` is the last published diff's
//!   `u`, so a client following Binance's sync procedure always gets a snapshot the next diff
//!   bridges; `GET /api/v3/exchangeInfo[?symbol=..|symbols=[..]]` with tick 0.01, step 0.00001
//!   and minimum notional 5; `GET /api/v3/ping` and `/api/v3/time`. Other requests get a 404 or
//!   400 with a Binance-style JSON error.
//! - **Orders** (Binance's WebSocket API, on any market-data connection or a dedicated
//!   `/ws-api/v3` one): `order.place` (`LIMIT` GTC/IOC/FOK, `LIMIT_MAKER`, `MARKET`),
//!   `order.cancel`, `openOrders.status`, and for a client reconciling after a restart
//!   `order.status` (open and finished orders), `allOrders` and `myTrades` (fills, with the trade ids the
//!   reports carried), answered `{"id":..,"status":200,"result":..}` or
//!   `{"id":..,"status":400,"error":{"code":..,"msg":..}}`, with `executionReport` events
//!   (`{"event":{"e":"executionReport",..}}`) pushed on the connection that placed the order
//!   once it subscribed the account's user data stream (`userDataStream.subscribe` after
//!   `session.logon`, or the signed `userDataStream.subscribe.signature`).
//!   Orders match in price-time priority against the feed's book and each other, and resting
//!   orders fill on published trades at or through their price (`matching.rs` and
//!   `orders.rs` describe the model). By default ([`SimConfig::auth`], [`SimAuth::Strict`])
//!   requests are authenticated as Binance does (`auth.rs`: known API keys, HMAC-SHA256 or
//!   Ed25519 signatures, `timestamp` within `recvWindow`); [`SimAuth::Lenient`] (`--lenient-auth`)
//!   only checks that `apiKey`, `signature` and `timestamp` are there. Optional latency before
//!   each request is handled
//!   ([`SimConfig::order_latency`]).
//!   Probe orders (`probe-<trade id>`) are stamped on arrival: [`VenueSim::probe_latencies`].
//!   The venue remembers the last 100 000 finished orders and the last 100 000 fills (over all
//!   accounts; `history.rs`), so memory stays bounded; older ones are forgotten.
//! - **Ledger** ([`SimConfig::ledger`], `--ledger FILE`): one JSON line per `order.place`
//!   accepted or refused and per fill reported ([`LedgerEntry`]), written as it happens, for
//!   tests that check an engine's records against the venue's ([`read_ledger`],
//!   [`VenueSim::ledger`]).
//!
//! # The feed
//!
//! Frames come from a capture (line format or `.tlc`) or from [`gen`], in order, on one
//! timeline shared by every connection: a connection gets the frames published after it
//! connected, never history. The feed starts once [`SimConfig::wait_for_subscribers`]
//! connections have subscribed to something, and is paced per [`SimPace`]. REST snapshots in
//! the source are not streamed; they seed the books.
//!
//! # Threads and costs
//!
//! One publisher thread; per market-data connection one thread that owns the socket's writes
//! (fed by a bounded queue of shared frames) and one small reader thread; one thread per REST
//! connection. Each frame is written with one write call on a `TCP_NODELAY` socket. A client
//! whose queue fills ([`SimConfig::queue_frames`]) is disconnected and counted
//! ([`SimStats::slow_disconnects`]); in [`SimPace::Asap`] the publisher first waits up to
//! [`SimConfig::slow_client_timeout`] for it. The first connection's trade frames are stamped
//! on `CLOCK_MONOTONIC` just before their write call ([`VenueSim::send_times`]), so a benchmark
//! can join them with the engine's receive stamps.
//!
//! With the order API on ([`SimConfig::order_api`], the default), the publisher also hands
//! every trade frame to a queue ahead of all connections (one `Arc` clone and channel send per
//! trade frame), and one matcher thread drains it: in 1 ms batches, without decoding, while no
//! client order rests; as each trade comes while one does. Order requests are handled on their
//! connection's thread. `exchangeInfo`'s filters (tick, step, minimum notional) are advertised
//! but not enforced on orders.
//!
//! # Faults
//!
//! [`Faults`] injects what real venues and networks do: dropped connections, stalls,
//! invalid frames, oversized frames, fragmented messages, invalid UTF-8, refused TLS
//! handshakes. Each is counted in [`FaultStats`].
//!
//! For drills that must be reproducible, [`VenueSim::inject`] asks for one [`FaultKind`] now
//! (a clean close, a TCP reset, a hang-up, a torn frame, a stall, garbage, an oversized or
//! invalid-UTF-8 frame): the next market-data connection that looks (at its next data frame, or
//! within 100 ms) performs it, once, and counts it.
//!
//! # What it allocates
//!
//! It is a test venue, kept bounded rather than allocation-free. Sized at start-up: each
//! connection's frame queue ([`SimConfig::queue_frames`]), the send-time record
//! ([`SimConfig::send_times_capacity`]), the feed's books, the order books (at most 100 000
//! resting orders a symbol) and the order history (100 000 finished orders and fills). Per
//! published frame: one copy into a shared `Bytes` (then an `Arc` clone per subscribed
//! connection); per order request: its serde_json parse and the reply and report `String`s.
//!
//! # How it fits
//!
//! - `hub.rs`: the `Hub`, the one value every thread shares (configuration, symbols, counters,
//!   the feed's books, the order venue, the connection registry, faults on demand, the sockets
//!   being served), and the accept loops;
//! - `publisher.rs`: the feed thread (source, pacing, fan-out), reading frames with
//!   `market.rs`, the simulator's own serde_json reader of Binance market data (never
//!   `feeds::binance`);
//! - `conn.rs` (market-data connections: handshake, subscriptions via `control.rs` and
//!   `streams.rs`, faults), `rest.rs` (REST), `tls.rs` (the certificate);
//! - `orders.rs` (the order venue and the matcher thread) over `matching.rs` (price-time
//!   matching), `wsapi.rs` (the order API's requests and replies), `auth.rs` (signatures),
//!   `history.rs` and `ledger.rs`;
//! - [`gen`]: the deterministic synthetic feed; `cli.rs`: `tickline venue-sim`;
//! - [`venues`]: the other venues' market data (Binance USD-M futures in this simulator's
//!   futures flavour, [`venues::binance_usdm::start`]; OKX, Coinbase and Bybit in
//!   [`venues::MdSim`], one protocol per venue over shared sockets, feed and faults);
//!   `tickline venue-sim --venue ..`.
//!
//! ```no_run
//! use venue_sim::{SimConfig, VenueSim};
//! let sim = VenueSim::start(SimConfig::default())?;
//! println!("{}/stream?streams=btcusdt@trade", sim.ws_url());
//! println!("{}/api/v3/depth?symbol=BTCUSDT", sim.http_url());
//! # anyhow::Ok(())
//! ```

#![deny(missing_docs)]

mod auth;
mod cli;
mod clock;
mod conn;
mod control;
pub mod gen;
mod history;
mod hub;
mod ledger;
mod market;
mod matching;
mod orders;
mod publisher;
mod rest;
mod streams;
mod tls;
pub mod venues;
mod wsapi;

pub use auth::{
    SimAuth, SimKey, SimSecret, TEST_ED25519_API_KEY, TEST_ED25519_SEED, TEST_HMAC_API_KEY,
    TEST_HMAC_SECRET,
};
pub use cli::{run_cli, SimArgs};
pub use ledger::{read_ledger, LedgerEntry};
pub use orders::LatencySummary;

use crate::gen::{FeedGenerator, GenConfig};
use anyhow::{bail, Context, Result};
use crossbeam_channel::unbounded;
use engine::book::{BookConfig, OrderBook};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::capture::{LoadedCapture, RecordKind};
use hub::Hub;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the simulator's frames come from.
#[derive(Clone, Debug, PartialEq)]
pub enum SimSource {
    /// A capture file: line format (`<recv_ns> <json>`, plain or gzip) or `.tlc`.
    Capture(PathBuf),
    /// The deterministic synthetic feed of [`gen`].
    Generated(GenConfig),
}

/// How fast the feed is published.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SimPace {
    /// As fast as the slowest connected client takes it.
    Asap,
    /// The source's recorded gaps divided by this factor (1.0 = real time, 10.0 = ten times
    /// faster).
    Recorded(f64),
    /// A fixed number of frames per second.
    Rate(u64),
}

/// Faults to inject. Every one is counted in [`FaultStats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Close every market-data connection abruptly (no close frame) this long after it
    /// connected.
    pub drop_every: Option<Duration>,
    /// This long after a connection connected, stop sending it anything (frames, pings,
    /// answers) while keeping it open.
    pub stall_after: Option<Duration>,
    /// After every N data frames, send an invalid text frame (UTF-8, but not JSON).
    pub garbage_every: Option<u64>,
    /// After every N data frames, send a text frame of [`Faults::oversized_bytes`].
    pub oversized_every: Option<u64>,
    /// Size of the oversized frames; 0 means 16 MiB + 1 (beyond tungstenite's default frame
    /// limit).
    pub oversized_bytes: usize,
    /// Send every data message as three frames: text (not final), continuation, final
    /// continuation. In raw TCP mode, write every line in three write calls.
    pub fragment: bool,
    /// After every N data frames, send a text frame that is not valid UTF-8.
    pub invalid_utf8_every: Option<u64>,
    /// TLS mode: read the client's hello, then close the connection mid-handshake.
    pub refuse_tls: bool,
    /// Hang up (no close frame) after every N data frames written to a connection: a
    /// reconnect drill whose timing does not depend on the machine ([`FaultStats::drops`]).
    pub drop_every_frames: Option<u64>,
}

/// One fault asked for on demand ([`VenueSim::inject`]), counted in [`FaultStats`] when a
/// market-data connection performs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A WebSocket close frame (`1000`), then the close handshake (waiting up to 1 s for the
    /// client's reply), then the TCP connection closed ([`FaultStats::closes`]).
    Close,
    /// An abort: the connection is reset at once (`connect(AF_UNSPEC)` sends a TCP RST with
    /// `SO_LINGER` 0 set, whatever other handles to the socket still exist), no close frame,
    /// no FIN ([`FaultStats::resets`]).
    Reset,
    /// A hang-up: the TCP connection closed (FIN) without a close frame
    /// ([`FaultStats::drops`], as [`Faults::drop_every`]).
    Hangup,
    /// The first half of a text frame (its header announces the whole payload), then a hang-up
    /// ([`FaultStats::torn_frames`]).
    Torn,
    /// Silence from now on (no frames, pings or answers) on an open connection
    /// ([`FaultStats::stalls`], as [`Faults::stall_after`]).
    Stall,
    /// One invalid (non-JSON) text frame; the connection stays up
    /// ([`FaultStats::garbage_frames`]).
    Garbage,
    /// One frame of [`Faults::oversized_bytes`] ([`FaultStats::oversized_frames`]).
    Oversized,
    /// One text frame that is not valid UTF-8 ([`FaultStats::invalid_utf8_frames`]).
    InvalidUtf8,
}

/// Everything [`VenueSim::start`] needs.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The frames.
    pub source: SimSource,
    /// Their pace.
    pub pace: SimPace,
    /// Market-data port on 127.0.0.1; 0 picks a free one.
    pub ws_port: u16,
    /// REST port on 127.0.0.1; 0 picks a free one.
    pub http_port: u16,
    /// Serve market data over TLS (`wss://`, or `tls://` with `raw_tcp`).
    pub tls: bool,
    /// Where to write the self-signed certificate's PEM (TLS mode); `None`: a temporary file,
    /// removed when the simulator stops.
    pub cert_out: Option<PathBuf>,
    /// Newline-delimited combined frames over plain TCP (or TLS) instead of WebSocket.
    pub raw_tcp: bool,
    /// Faults to inject.
    pub faults: Faults,
    /// Symbols served besides the source's own. For a capture whose REST snapshots name no
    /// symbol (line format), the first one is theirs; with none given, a capture carrying
    /// exactly one symbol lends it.
    pub symbols: Vec<String>,
    /// The feed starts once this many connections have subscribed to at least one stream
    /// (raw TCP connections count on connecting). 0: at once.
    pub wait_for_subscribers: usize,
    /// Server pings; zero disables them.
    pub ping_interval: Duration,
    /// A client that has not answered a ping within this long is disconnected.
    pub pong_timeout: Duration,
    /// Frames queued per connection before it counts as too slow and is disconnected.
    pub queue_frames: usize,
    /// In [`SimPace::Asap`], how long the publisher waits for a full queue to drain before it
    /// disconnects that client.
    pub slow_client_timeout: Duration,
    /// Capacity of the send-time record ([`VenueSim::send_times`]), allocated at start.
    pub send_times_capacity: usize,
    /// Connections served at once, per port; more are closed on accepting (counted).
    pub max_connections: usize,
    /// Answer order-API requests (`order.place`, ...); off, they get an error and no trade tap
    /// is registered with the publisher.
    pub order_api: bool,
    /// How long each order-API request waits before it is handled (in arrival order per
    /// connection); zero handles it at once.
    pub order_latency: Duration,
    /// Write the ledger here: one JSON line per `order.place` request accepted or refused and
    /// per fill reported ([`LedgerEntry`]), each written as it happens. The file is created
    /// (or truncated) at start; `None`: no ledger.
    pub ledger: Option<PathBuf>,
    /// How order-API requests are authenticated: as Binance ([`SimAuth::Strict`] with the
    /// built-in test keys, the default) or not at all ([`SimAuth::Lenient`], the escape hatch
    /// for raw-protocol tests with made-up signatures).
    pub auth: SimAuth,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            source: SimSource::Generated(GenConfig {
                symbols: vec!["BTCUSDT".into()],
                events: 100_000,
                seed: 1,
                start_ns: 1_000_000_000,
            }),
            pace: SimPace::Recorded(1.0),
            ws_port: 0,
            http_port: 0,
            tls: false,
            cert_out: None,
            raw_tcp: false,
            faults: Faults::default(),
            symbols: Vec::new(),
            wait_for_subscribers: 1,
            ping_interval: Duration::from_secs(20),
            pong_timeout: Duration::from_secs(60),
            queue_frames: 16_384,
            slow_client_timeout: Duration::from_secs(1),
            send_times_capacity: 1 << 18,
            max_connections: 256,
            order_api: true,
            order_latency: Duration::ZERO,
            ledger: None,
            auth: SimAuth::default(),
        }
    }
}

/// Injected faults, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Connections dropped without a close frame by [`Faults::drop_every`] or
    /// [`FaultKind::Hangup`].
    pub drops: u64,
    /// Connections stalled by [`Faults::stall_after`] or [`FaultKind::Stall`].
    pub stalls: u64,
    /// Connections closed with a close frame by [`FaultKind::Close`].
    pub closes: u64,
    /// Connections reset by [`FaultKind::Reset`].
    pub resets: u64,
    /// Frames torn mid-way, then the connection dropped ([`FaultKind::Torn`]).
    pub torn_frames: u64,
    /// Invalid (non-JSON) text frames sent.
    pub garbage_frames: u64,
    /// Oversized frames sent.
    pub oversized_frames: u64,
    /// Messages sent in fragments.
    pub fragmented_messages: u64,
    /// Frames with invalid UTF-8 sent.
    pub invalid_utf8_frames: u64,
    /// TLS handshakes cut off.
    pub tls_refused: u64,
}

/// Order-API counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderStats {
    /// Order-API requests received (`order.place`, `order.cancel`, `openOrders.status`, ...).
    pub requests: u64,
    /// Of those, answered with an error (refused orders included).
    pub errors: u64,
    /// Orders accepted by the matching engine.
    pub placed: u64,
    /// Orders canceled.
    pub canceled: u64,
    /// Trades reported (`executionReport` with `x` = `TRADE`; a match of two client orders
    /// counts twice).
    pub fills: u64,
    /// Events for connections that were gone or not reading (dropped).
    pub events_dropped: u64,
    /// Probe orders (`probe-<trade id>`) received.
    pub probes: u64,
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Market-data connections accepted (TCP).
    pub connections_accepted: u64,
    /// Market-data connections past their handshakes and not yet closed.
    pub connections_open: u64,
    /// Connections (either port) closed on accepting because [`SimConfig::max_connections`]
    /// of their kind were open.
    pub connections_refused: u64,
    /// TLS or WebSocket handshakes that failed (bad path, untrusting client, timeout).
    pub handshakes_failed: u64,
    /// Frames published on the shared timeline.
    pub frames_published: u64,
    /// Data frames written, summed over connections.
    pub frames_sent: u64,
    /// Payload bytes of those frames.
    pub bytes_sent: u64,
    /// Streams subscribed (in handshake paths and by `SUBSCRIBE`).
    pub subscriptions: u64,
    /// Streams unsubscribed.
    pub unsubscriptions: u64,
    /// Requests received over WebSocket (`SUBSCRIBE` and the rest).
    pub control_requests: u64,
    /// Of those, answered with an error.
    pub control_errors: u64,
    /// Pings sent.
    pub pings_sent: u64,
    /// Pongs received.
    pub pongs_received: u64,
    /// Client pings answered.
    pub client_pings: u64,
    /// Connections closed for not answering pings.
    pub pong_timeouts: u64,
    /// Connections closed because they did not keep up.
    pub slow_disconnects: u64,
    /// REST requests.
    pub rest_requests: u64,
    /// REST requests answered with an error status.
    pub rest_errors: u64,
    /// Unreadable source records (and frames with no stream name).
    pub source_errors: u64,
    /// Source frames the simulator's own decoder refused (still sent as recorded).
    pub decode_errors: u64,
    /// The source is exhausted.
    pub feed_done: bool,
    /// Injected faults.
    pub faults: FaultStats,
    /// The order API.
    pub orders: OrderStats,
}

impl SimStats {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        let f = &self.faults;
        let o = &self.orders;
        serde_json::json!({
            "connections_accepted": self.connections_accepted,
            "connections_open": self.connections_open,
            "connections_refused": self.connections_refused,
            "handshakes_failed": self.handshakes_failed,
            "frames_published": self.frames_published,
            "frames_sent": self.frames_sent,
            "bytes_sent": self.bytes_sent,
            "subscriptions": self.subscriptions,
            "unsubscriptions": self.unsubscriptions,
            "control_requests": self.control_requests,
            "control_errors": self.control_errors,
            "pings_sent": self.pings_sent,
            "pongs_received": self.pongs_received,
            "client_pings": self.client_pings,
            "pong_timeouts": self.pong_timeouts,
            "slow_disconnects": self.slow_disconnects,
            "rest_requests": self.rest_requests,
            "rest_errors": self.rest_errors,
            "source_errors": self.source_errors,
            "decode_errors": self.decode_errors,
            "feed_done": self.feed_done,
            "faults": {
                "drops": f.drops,
                "stalls": f.stalls,
                "closes": f.closes,
                "resets": f.resets,
                "torn_frames": f.torn_frames,
                "garbage_frames": f.garbage_frames,
                "oversized_frames": f.oversized_frames,
                "fragmented_messages": f.fragmented_messages,
                "invalid_utf8_frames": f.invalid_utf8_frames,
                "tls_refused": f.tls_refused,
            },
            "orders": {
                "requests": o.requests,
                "errors": o.errors,
                "placed": o.placed,
                "canceled": o.canceled,
                "fills": o.fills,
                "events_dropped": o.events_dropped,
                "probes": o.probes,
            },
        })
        .to_string()
    }
}

/// A running simulator. Dropping it (or [`VenueSim::stop`]) stops every thread, closes every
/// connection (WebSocket clients get a `1001 going away` close frame) and removes a temporary
/// certificate file.
pub struct VenueSim {
    hub: Arc<Hub>,
    ws_addr: SocketAddr,
    http_addr: SocketAddr,
    cert: Option<(PathBuf, bool)>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for VenueSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VenueSim")
            .field("ws_url", &self.ws_url())
            .field("http_url", &self.http_url())
            .field("cert", &self.cert_path())
            .finish_non_exhaustive()
    }
}

impl VenueSim {
    /// Loads or prepares the source, makes the certificate (TLS), binds both ports and starts
    /// serving. Fails on a bad configuration, an unreadable capture, or a port in use.
    pub fn start(cfg: SimConfig) -> Result<VenueSim> {
        Self::start_with(cfg, false)
    }

    /// [`VenueSim::start`], as Binance spot (`futures` false) or USD-M futures (a generated
    /// feed in futures' frame layout: [`venues::binance_usdm`]).
    pub(crate) fn start_with(cfg: SimConfig, futures: bool) -> Result<VenueSim> {
        match cfg.pace {
            SimPace::Recorded(s) if !(s.is_finite() && s > 0.0) => {
                bail!("pace: the speed factor must be a positive number, not {s}")
            }
            SimPace::Rate(0) => bail!("pace: the rate must be at least 1 frame per second"),
            _ => {}
        }
        if cfg.queue_frames == 0 {
            bail!("queue_frames must be at least 1");
        }
        let mut names: Vec<String> = cfg.symbols.clone();
        let (feed, line_default) = match &cfg.source {
            SimSource::Generated(g) => {
                let gen = FeedGenerator::new(g.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
                names.extend(g.symbols.iter().cloned());
                (publisher::Feed::Generated(Box::new(gen)), None)
            }
            SimSource::Capture(path) => {
                let cap = LoadedCapture::open(path)
                    .with_context(|| format!("loading capture {}", path.display()))?;
                let scan = scan_capture(&cap);
                let default = match (cfg.symbols.first(), scan.symbols.as_slice()) {
                    (Some(s), _) => Some(s.clone()),
                    (None, [only]) => Some(only.clone()),
                    _ => None,
                };
                if scan.symbolless_snapshots && default.is_none() {
                    bail!(
                        "capture {}: its REST snapshots name no symbol and it carries {} symbols; \
                         name the snapshots' symbol first in `symbols`",
                        path.display(),
                        scan.symbols.len()
                    );
                }
                names.extend(scan.symbols);
                (publisher::Feed::Capture(Box::new(cap)), default)
            }
        };
        let mut symbols = SymbolTable::new();
        for n in &names {
            symbols
                .intern(n)
                .map_err(|e| anyhow::anyhow!("symbol {n:?}: {e}"))?;
        }
        let default_symbol: Option<SymbolId> =
            line_default.and_then(|s| symbols.lookup(s.as_bytes()));
        let books = (0..symbols.len())
            .map(|_| OrderBook::new(BookConfig::default()))
            .collect();
        let identity = if cfg.tls {
            Some(tls::make_identity(cfg.cert_out.as_deref())?)
        } else {
            None
        };
        let ws_listener = TcpListener::bind(("127.0.0.1", cfg.ws_port))
            .with_context(|| format!("binding 127.0.0.1:{}", cfg.ws_port))?;
        let http_listener = TcpListener::bind(("127.0.0.1", cfg.http_port))
            .with_context(|| format!("binding 127.0.0.1:{}", cfg.http_port))?;
        let ws_addr = ws_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let (reg_tx, reg_rx) = unbounded();
        let decoder = market::MarketDecoder::new(symbols.clone());
        let ledger = match &cfg.ledger {
            Some(p) => Some(
                ledger::Ledger::create(p)
                    .with_context(|| format!("creating the ledger {}", p.display()))?,
            ),
            None => None,
        };
        let venue = orders::Venue::new(&cfg, &symbols, ledger);
        // The trade tap goes first in the publisher's list, ahead of every connection, so an
        // order can never have seen a trade the matching engine has not been handed.
        let tap_rx = if cfg.order_api {
            let (reg, rx) = orders::tap(&symbols, cfg.queue_frames.max(orders::TAP_QUEUE));
            let _ = reg_tx.send(reg);
            venue.attach_tap(rx.clone());
            Some(rx)
        } else {
            None
        };
        let hub = Arc::new(Hub::new(
            cfg,
            symbols,
            books,
            reg_tx,
            identity.as_ref().map(|i| i.config.clone()),
            venue,
        ));
        let cert = identity.map(|i| (i.cert_path, i.cert_is_temp));
        let mut sim = VenueSim {
            hub: hub.clone(),
            ws_addr,
            http_addr,
            cert,
            threads: Vec::new(),
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .with_context(|| format!("spawning {name}"))
        };
        if let Some(rx) = tap_rx {
            let i = hub.clone();
            sim.threads.push(spawn(
                "sim-matcher",
                Box::new(move || orders::run_matcher(i, rx)),
            )?);
        }
        let i = hub.clone();
        sim.threads.push(spawn(
            "sim-publisher",
            Box::new(move || {
                let fut = futures.then(venues::binance_usdm::Futurize::default);
                publisher::run(i, reg_rx, feed, decoder, default_symbol, fut)
            }),
        )?);
        let i = hub.clone();
        sim.threads.push(spawn(
            "sim-ws-accept",
            Box::new(move || hub::accept_loop(i, ws_listener, true)),
        )?);
        let i = hub;
        sim.threads.push(spawn(
            "sim-http-accept",
            Box::new(move || hub::accept_loop(i, http_listener, false)),
        )?);
        Ok(sim)
    }

    /// `ws://127.0.0.1:P`, `wss://localhost:P` (TLS), `tcp://127.0.0.1:P` (raw TCP) or
    /// `tls://localhost:P` (raw TCP over TLS). Append the path: `/stream?streams=..`, `/ws`.
    pub fn ws_url(&self) -> String {
        let port = self.ws_addr.port();
        match (self.hub.cfg().raw_tcp, self.hub.cfg().tls) {
            (false, false) => format!("ws://127.0.0.1:{port}"),
            (false, true) => format!("wss://localhost:{port}"),
            (true, false) => format!("tcp://127.0.0.1:{port}"),
            (true, true) => format!("tls://localhost:{port}"),
        }
    }

    /// `http://127.0.0.1:P`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_addr.port())
    }

    /// The market-data socket address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.ws_addr
    }

    /// The REST socket address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// PEM of the self-signed certificate clients should trust (TLS mode).
    pub fn cert_path(&self) -> Option<&Path> {
        self.cert.as_ref().map(|(p, _)| p.as_path())
    }

    /// Counters since start.
    pub fn stats(&self) -> SimStats {
        self.hub.stats()
    }

    /// `(trade id, send ns on CLOCK_MONOTONIC)` of every trade frame written to the first
    /// market-data connection (a `/ws-api/v3` connection never counts), stamped just before its
    /// write call, in send order (up to [`SimConfig::send_times_capacity`]).
    pub fn send_times(&self) -> Vec<(u64, u64)> {
        self.hub.send_times()
    }

    /// Wire-to-wire latency of every probe order (client order id `probe-<trade id>`) whose
    /// trade was sent to the first connection: the time from the simulator's stamp just before
    /// it wrote that trade's frame ([`VenueSim::send_times`]) to the order's arrival (stamped
    /// when the bytes completing it were read), both on `CLOCK_MONOTONIC`, ns, in arrival order.
    /// A probe answering a trade not in the send-time record gives no sample.
    pub fn probe_latencies(&self) -> Vec<u64> {
        self.hub.venue().probe_latencies(&self.hub.send_times())
    }

    /// The ledger's file ([`SimConfig::ledger`]), if there is one.
    pub fn ledger_path(&self) -> Option<&Path> {
        self.hub.cfg().ledger.as_deref()
    }

    /// Everything the ledger holds so far, read back from its file ([`read_ledger`]). Fails
    /// when there is no ledger or the file cannot be read.
    pub fn ledger(&self) -> Result<Vec<LedgerEntry>> {
        let Some(path) = self.ledger_path() else {
            bail!("this simulator keeps no ledger (SimConfig::ledger is None)");
        };
        read_ledger(path).with_context(|| format!("reading the ledger {}", path.display()))
    }

    /// Percentiles of [`VenueSim::probe_latencies`].
    pub fn probe_summary(&self) -> LatencySummary {
        LatencySummary::from_samples(&self.probe_latencies())
    }

    /// Asks for one fault now: the next market-data connection (not a `/ws-api/v3` one) that
    /// has subscribed and is not stalled performs it at its next data frame, or within 100 ms
    /// when no frame comes, and counts it in [`SimStats::faults`]. Faults asked for in a row
    /// are performed in order, each once, by whichever connection takes it. A drill that
    /// forces disconnects one at a time (waiting for the client to come back before the next)
    /// knows exactly what was injected, unlike the periodic [`Faults`].
    pub fn inject(&self, kind: FaultKind) {
        self.hub.inject(kind);
    }

    /// Waits until the source is exhausted and every open connection has been sent (or has
    /// filtered out) every frame queued for it. False on timeout.
    pub fn wait_until_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.hub.is_done() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops the simulator (the same as dropping it).
    pub fn stop(self) {}

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        let hub = &self.hub;
        hub.begin_stop();
        // Wake the accept loops.
        for addr in [self.ws_addr, self.http_addr] {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(500));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // The publisher is gone, so connection threads see their queues close and say goodbye;
        // give them a moment, then cut off whatever is still blocked (handshakes, slow writes).
        let deadline = Instant::now() + Duration::from_millis(500);
        while hub.threads_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        hub.cut_sockets();
        let deadline = Instant::now() + Duration::from_secs(2);
        while hub.threads_running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        hub.close_registrations();
        if let Some((path, true)) = &self.cert {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for VenueSim {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What a capture holds, found before serving it.
#[derive(Debug, Default)]
struct CaptureScan {
    /// Upper-case symbols from `.tlc` snapshot records and frames' `"s"` fields, in order of
    /// first appearance.
    symbols: Vec<String>,
    /// Some snapshot names no symbol (line format).
    symbolless_snapshots: bool,
}

fn scan_capture(cap: &LoadedCapture) -> CaptureScan {
    let mut scan = CaptureScan::default();
    let add = |s: &[u8], scan: &mut CaptureScan| {
        if s.is_empty()
            || s.len() > engine::symbol::MAX_SYMBOL_LEN
            || !s.iter().all(u8::is_ascii_alphanumeric)
        {
            return;
        }
        let up = String::from_utf8_lossy(s).to_ascii_uppercase();
        if !scan.symbols.contains(&up) {
            scan.symbols.push(up);
        }
    };
    for rec in cap.records().flatten() {
        match rec.kind {
            RecordKind::Snapshot => match rec.symbol {
                Some(s) => add(s, &mut scan),
                None => scan.symbolless_snapshots = true,
            },
            RecordKind::TextFrame => {
                if let Some(s) = symbol_field(rec.payload) {
                    add(s, &mut scan);
                }
            }
            _ => {}
        }
    }
    scan
}

/// The value of the first `"s":"..."` in a frame.
fn symbol_field(payload: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"s\":\"";
    let at = payload.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = payload[at..].iter().position(|&b| b == b'"')?;
    Some(&payload[at..at + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_fields() {
        assert_eq!(
            symbol_field(br#"{"stream":"x","data":{"e":"trade","s":"BTCUSDT","t":1}}"#),
            Some(&b"BTCUSDT"[..])
        );
        assert_eq!(symbol_field(br#"{"lastUpdateId":1}"#), None);
    }

    #[test]
    fn bad_configs_are_refused() {
        for pace in [
            SimPace::Recorded(0.0),
            SimPace::Recorded(f64::NAN),
            SimPace::Rate(0),
        ] {
            let cfg = SimConfig {
                pace,
                ..SimConfig::default()
            };
            assert!(VenueSim::start(cfg).is_err());
        }
        let cfg = SimConfig {
            source: SimSource::Capture("/nonexistent/capture.tlc".into()),
            ..SimConfig::default()
        };
        assert!(VenueSim::start(cfg).is_err());
    }
}
