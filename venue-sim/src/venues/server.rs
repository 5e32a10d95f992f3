//! [`MdSim`]: the sockets, the publisher and the connections of the other venues' simulators.
//!
//! One listener on 127.0.0.1 (WebSocket, plain or TLS); one publisher thread that reads the
//! source, paces it (`crate::publisher::Pacer`, the Binance simulator's), applies each event
//! to the `Market` and fans the venue's frames out; one thread per connection that owns its
//! socket, answers the client's messages through the venue's `Protocol`, writes the frames
//! its subscriptions select, and injects the faults. A connection polls its socket with a
//! 2 ms read timeout between batches of frames: simple, bounded, and fast enough for a test
//! venue (frames wait at most that long).

use super::model::{Market, MdEvent, Translator};
use super::native::NativeTranslator;
use super::{protocol, ConnInfo, Protocol, Topic, TopicKind, VenueOptions};
use crate::gen::{FeedGenerator, GenKind};
use crate::hub::C;
use crate::publisher::Pacer;
use crate::{tls, FaultStats, SimConfig, SimPace, SimSource, SimStats};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use feeds::capture::{CaptureFormat, LoadedCapture, RecordKind};
use rustls::{ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame, Utf8Bytes};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

const COUNTERS: usize = C::TlsRefused as usize + 1;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection's read waits before it looks at its frame queue again.
const POLL: Duration = Duration::from_millis(2);
/// Frames written between two looks at the client's input.
const BATCH: usize = 256;
const MAX_CLIENT_MESSAGE: usize = 64 << 10;
/// The venue's own periodic frames (Coinbase heartbeats) go out this often.
const TICK: Duration = Duration::from_secs(1);
const GARBAGE: &[u8] = b"{\"arg\":{\"channel\":\"garbage\"},\"data\":[{<<not json>>";
const INVALID_UTF8: &[u8] = b"{\"topic\":\"invalid\",\"data\":\"\xff\xfe\xc3\x28\"}";

/// One published frame, shared by the queues of every connection subscribed to its topic.
#[derive(Debug)]
struct PubFrame {
    topic: Topic,
    /// Publication number, from 1: a connection drops frames of a topic at or before the
    /// number it (re)subscribed at (its snapshot already has them).
    seq: u64,
    text: Bytes,
}

/// A connection as the publisher sees it.
#[derive(Debug)]
struct Out {
    id: u64,
    tx: Sender<Arc<PubFrame>>,
    subs: Vec<Topic>,
    closed: Arc<AtomicBool>,
    sock: Option<TcpStream>,
}

impl Out {
    fn cut(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(s) = &self.sock {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// What the lock guards: the market and who is subscribed to what, so subscribing (with its
/// snapshot) and publishing never interleave.
#[derive(Debug)]
struct Inner {
    market: Market,
    outs: Vec<Out>,
    /// Frames published so far.
    seq: u64,
}

struct Shared {
    cfg: SimConfig,
    opts: VenueOptions,
    proto: Box<dyn Protocol>,
    inner: Mutex<Inner>,
    counters: [AtomicU64; COUNTERS],
    stop: AtomicBool,
    done: AtomicBool,
    subscribed: AtomicUsize,
    open: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    tls: Option<Arc<rustls::ServerConfig>>,
    sockets: Mutex<Vec<(u64, TcpStream)>>,
    threads: AtomicUsize,
    oversized: Bytes,
}

impl Shared {
    fn count(&self, c: C, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, c: C) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A running simulator of one venue's public market data (OKX, Coinbase, Bybit; see the
/// [module docs](super)). Dropping it (or [`MdSim::stop`]) stops every thread and closes every
/// connection (`1001 going away`).
pub struct MdSim {
    sh: Arc<Shared>,
    addr: SocketAddr,
    cert: Option<(PathBuf, bool)>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for MdSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdSim")
            .field("venue", &self.sh.opts.venue)
            .field("ws_url", &self.ws_url())
            .finish_non_exhaustive()
    }
}

/// Where the publisher's events come from.
enum Feed {
    Generated(Box<FeedGenerator>),
    /// A Binance-format capture (translated), with the instrument of its symbol-less snapshots.
    Capture(Box<LoadedCapture>, Option<usize>),
    /// The venue's own capture (cryptofeed's formats).
    Native(Box<LoadedCapture>, NativeTranslator),
}

/// The instruments of a venue's own capture, in order of first appearance (Bybit: on the
/// connections of the venue's category only).
fn scan_native(cap: &LoadedCapture, venue: engine::venue::Venue) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut probe = NativeTranslator::new(venue, &[]);
    for r in cap.records().flatten() {
        match r.kind {
            RecordKind::Connect => probe.connect(r.conn_id, r.payload),
            RecordKind::TextFrame if probe.is_ours(r.conn_id) => {
                if let Some(n) = NativeTranslator::instrument(venue, r.payload) {
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
            _ => {}
        }
    }
    names
}

impl MdSim {
    /// Prepares the source, binds the port and starts serving `opts.venue`'s protocol. From
    /// `cfg` it takes the source (generated or a Binance-format capture, translated), pace,
    /// port, TLS, faults, symbols (venue names like `BTC-USDT` or Binance ones like `BTCUSDT`),
    /// `wait_for_subscribers`, `queue_frames`, `max_connections` and `slow_client_timeout`;
    /// the order API, REST and pings are the Binance simulator's and not used here.
    pub fn start(cfg: SimConfig, opts: VenueOptions) -> Result<MdSim> {
        let proto = protocol(opts.venue)
            .ok_or_else(|| anyhow!("venue {}: not served by MdSim", opts.venue.name()))?;
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
        // Binance-style names for the source, venue names for the wire.
        let (feed, source_names) = match &cfg.source {
            SimSource::Generated(g) => {
                let mut g = g.clone();
                g.symbols = g.symbols.iter().map(|s| s.replace('-', "")).collect();
                let names = g.symbols.clone();
                let gen = FeedGenerator::new(g).map_err(|e| anyhow!("{e}"))?;
                (Feed::Generated(Box::new(gen)), names)
            }
            SimSource::Capture(path) => {
                let cap = LoadedCapture::open(path)
                    .with_context(|| format!("loading capture {}", path.display()))?;
                if matches!(
                    cap.format(),
                    CaptureFormat::CryptofeedV1 | CaptureFormat::CryptofeedV3
                ) && NativeTranslator::serves(opts.venue)
                {
                    let names = scan_native(&cap, opts.venue);
                    if names.is_empty() {
                        bail!(
                            "capture {}: no {} frames in it",
                            path.display(),
                            opts.venue.name()
                        );
                    }
                    let tr = NativeTranslator::new(opts.venue, &names);
                    let feed = Feed::Native(Box::new(cap), tr);
                    return Self::serve(cfg, opts, proto, feed, names.clone(), names);
                }
                let scan = crate::scan_capture(&cap);
                let mut names: Vec<String> =
                    cfg.symbols.iter().map(|s| s.replace('-', "")).collect();
                for s in scan.symbols {
                    if !names.iter().any(|n| n.eq_ignore_ascii_case(&s)) {
                        names.push(s);
                    }
                }
                if names.is_empty() {
                    bail!("capture {}: no symbols found", path.display());
                }
                (Feed::Capture(Box::new(cap), Some(0)), names)
            }
        };
        let venue_names: Vec<String> = match &cfg.source {
            SimSource::Generated(g) => g
                .symbols
                .iter()
                .map(|s| super::venue_symbol(opts.venue, s))
                .collect(),
            SimSource::Capture(_) => source_names
                .iter()
                .map(|s| {
                    cfg.symbols
                        .iter()
                        .find(|c| c.replace('-', "").eq_ignore_ascii_case(s))
                        .cloned()
                        .unwrap_or_else(|| super::venue_symbol(opts.venue, s))
                })
                .collect(),
        };
        Self::serve(cfg, opts, proto, feed, source_names, venue_names)
    }

    /// Binds the port and starts the threads: `source_names` are the instruments as the feed
    /// names them, `venue_names` as the wire does (same order).
    fn serve(
        cfg: SimConfig,
        opts: VenueOptions,
        proto: Box<dyn Protocol>,
        feed: Feed,
        source_names: Vec<String>,
        venue_names: Vec<String>,
    ) -> Result<MdSim> {
        let identity = if cfg.tls {
            Some(tls::make_identity(cfg.cert_out.as_deref())?)
        } else {
            None
        };
        let listener = TcpListener::bind(("127.0.0.1", cfg.ws_port))
            .with_context(|| format!("binding 127.0.0.1:{}", cfg.ws_port))?;
        let addr = listener.local_addr()?;
        let oversized = {
            let len = match cfg.faults.oversized_bytes {
                0 => (16 << 20) + 1,
                n => n.max(40),
            };
            let mut v = b"{\"oversized\":\"".to_vec();
            v.resize(len - 2, b'x');
            v.extend_from_slice(b"\"}");
            Bytes::from(v)
        };
        let sh = Arc::new(Shared {
            inner: Mutex::new(Inner {
                market: Market::new(&venue_names),
                outs: Vec::new(),
                seq: 0,
            }),
            cfg,
            opts,
            proto,
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            stop: AtomicBool::new(false),
            done: AtomicBool::new(false),
            subscribed: AtomicUsize::new(0),
            open: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            tls: identity.as_ref().map(|i| i.config.clone()),
            sockets: Mutex::new(Vec::new()),
            threads: AtomicUsize::new(0),
            oversized,
        });
        let mut sim = MdSim {
            sh: sh.clone(),
            addr,
            cert: identity.map(|i| (i.cert_path, i.cert_is_temp)),
            threads: Vec::new(),
        };
        let translator = Translator::new(&source_names);
        let s = sh.clone();
        sim.threads.push(
            std::thread::Builder::new()
                .name("mdsim-publisher".into())
                .spawn(move || run_publisher(s, feed, translator))
                .context("spawning the publisher")?,
        );
        sim.threads.push(
            std::thread::Builder::new()
                .name("mdsim-accept".into())
                .spawn(move || accept_loop(sh, listener))
                .context("spawning the accept loop")?,
        );
        Ok(sim)
    }

    /// `ws://127.0.0.1:P` or `wss://localhost:P` (TLS); append a venue path (`/ws/v5/public`,
    /// `/v5/public/spot`, `/`).
    pub fn ws_url(&self) -> String {
        match self.sh.cfg.tls {
            false => format!("ws://127.0.0.1:{}", self.addr.port()),
            true => format!("wss://localhost:{}", self.addr.port()),
        }
    }

    /// The venue served.
    pub fn venue(&self) -> engine::venue::Venue {
        self.sh.proto.venue()
    }

    /// The venue's WebSocket paths served.
    pub fn paths(&self) -> &'static [&'static str] {
        self.sh.proto.paths()
    }

    /// The socket address.
    pub fn ws_addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the self-signed certificate (TLS mode).
    pub fn cert_path(&self) -> Option<&Path> {
        self.cert.as_ref().map(|(p, _)| p.as_path())
    }

    /// The instruments served, as the venue names them.
    pub fn symbols(&self) -> Vec<String> {
        self.sh
            .lock()
            .market
            .syms
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }

    /// Counters since start (the Binance simulator's, those that apply).
    pub fn stats(&self) -> SimStats {
        let s = &self.sh;
        SimStats {
            connections_accepted: s.get(C::ConnectionsAccepted),
            connections_open: s.open.load(Ordering::Relaxed),
            connections_refused: s.get(C::ConnectionsRefused),
            handshakes_failed: s.get(C::HandshakesFailed),
            frames_published: s.get(C::FramesPublished),
            frames_sent: s.frames_sent.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            subscriptions: s.get(C::Subscriptions),
            unsubscriptions: s.get(C::Unsubscriptions),
            control_requests: s.get(C::ControlRequests),
            control_errors: s.get(C::ControlErrors),
            client_pings: s.get(C::ClientPings),
            pong_timeouts: s.get(C::PongTimeouts),
            slow_disconnects: s.get(C::SlowDisconnects),
            source_errors: s.get(C::SourceErrors),
            decode_errors: s.get(C::DecodeErrors),
            feed_done: s.done.load(Ordering::SeqCst),
            faults: FaultStats {
                drops: s.get(C::Drops),
                stalls: s.get(C::Stalls),
                garbage_frames: s.get(C::Garbage),
                oversized_frames: s.get(C::Oversized),
                fragmented_messages: s.get(C::Fragmented),
                invalid_utf8_frames: s.get(C::InvalidUtf8),
                tls_refused: s.get(C::TlsRefused),
                ..FaultStats::default()
            },
            ..SimStats::default()
        }
    }

    /// Waits until the source is exhausted and every open connection's queue is empty. False
    /// on timeout.
    pub fn wait_until_done(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.sh.done.load(Ordering::SeqCst)
                && self
                    .sh
                    .lock()
                    .outs
                    .iter()
                    .all(|o| o.tx.is_empty() || o.closed.load(Ordering::Acquire))
            {
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
}

impl Drop for MdSim {
    fn drop(&mut self) {
        let sh = &self.sh;
        sh.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while sh.threads.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        for (_, s) in sh.sockets.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while sh.threads.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some((path, true)) = &self.cert {
            let _ = std::fs::remove_file(path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The publisher

struct Publisher {
    sh: Arc<Shared>,
    pacer: Pacer,
    started: bool,
    frames: Vec<(Topic, String)>,
}

fn run_publisher(sh: Arc<Shared>, feed: Feed, mut tr: Translator) {
    let mut p = Publisher {
        pacer: Pacer::new(sh.cfg.pace),
        sh,
        started: false,
        frames: Vec::new(),
    };
    match feed {
        Feed::Generated(mut g) => {
            let mut buf = Vec::with_capacity(1 << 16);
            while let Some(f) = g.next_frame(&mut buf) {
                let ev = if f.kind == GenKind::Snapshot {
                    tr.snapshot(f.symbol, &buf).ok_or(())
                } else {
                    tr.frame(&buf).and_then(|e| e.ok_or(()))
                };
                if let Ok(ev) = ev {
                    if p.on_event(f.recv_ns, ev).is_break() {
                        break;
                    }
                }
            }
        }
        Feed::Native(cap, mut native) => {
            let mut evs = Vec::new();
            'records: for rec in cap.records() {
                let r = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        p.sh.count(C::SourceErrors, 1);
                        if !e.is_recoverable() {
                            break;
                        }
                        continue;
                    }
                };
                match r.kind {
                    RecordKind::Connect => native.connect(r.conn_id, r.payload),
                    RecordKind::TextFrame => {
                        if native
                            .frame(r.conn_id, r.recv_ns, r.payload, &mut evs)
                            .is_err()
                        {
                            p.sh.count(C::DecodeErrors, 1);
                        }
                        for ev in evs.drain(..) {
                            if p.on_event(r.recv_ns, ev).is_break() {
                                break 'records;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Feed::Capture(cap, default) => {
            for rec in cap.records() {
                let r = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        p.sh.count(C::SourceErrors, 1);
                        if !e.is_recoverable() {
                            break;
                        }
                        continue;
                    }
                };
                let ev = match r.kind {
                    RecordKind::Snapshot => {
                        let sym = match r.symbol {
                            Some(s) => tr.lookup(s),
                            None => default,
                        };
                        match sym.and_then(|s| tr.snapshot(s, r.payload)) {
                            Some(ev) => ev,
                            None => {
                                p.sh.count(C::DecodeErrors, 1);
                                continue;
                            }
                        }
                    }
                    RecordKind::TextFrame => match tr.frame(r.payload) {
                        Ok(Some(ev)) => ev,
                        Ok(None) => continue,
                        Err(()) => {
                            p.sh.count(C::DecodeErrors, 1);
                            continue;
                        }
                    },
                    _ => continue,
                };
                if p.on_event(r.recv_ns, ev).is_break() {
                    break;
                }
            }
        }
    }
    p.sh.done.store(true, Ordering::SeqCst);
}

impl Publisher {
    fn on_event(&mut self, recv_ns: u64, ev: MdEvent) -> ControlFlow<()> {
        if self.sh.stopping() {
            return ControlFlow::Break(());
        }
        // A snapshot is neither waited for nor paced: it seeds or replaces a book, and goes
        // to that book's subscribers at once.
        let snapshot = matches!(ev, MdEvent::Snapshot { .. });
        if !snapshot {
            self.wait_and_pace(recv_ns)?;
        }
        self.publish(&ev)
    }

    /// Starts the timeline once enough connections subscribed, then waits until the event at
    /// `recv_ns` is due.
    fn wait_and_pace(&mut self, recv_ns: u64) -> ControlFlow<()> {
        if !self.started {
            while self.sh.subscribed.load(Ordering::SeqCst) < self.sh.cfg.wait_for_subscribers {
                if self.sh.stopping() {
                    return ControlFlow::Break(());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            self.pacer.start(recv_ns);
            self.started = true;
        }
        if let Some(t) = self.pacer.target(recv_ns, true) {
            loop {
                if self.sh.stopping() {
                    return ControlFlow::Break(());
                }
                let now = Instant::now();
                if now + Duration::from_micros(50) >= t {
                    break;
                }
                std::thread::sleep((t - now).min(Duration::from_millis(50)));
            }
        }
        ControlFlow::Continue(())
    }

    /// Applies `ev`, renders its frames and queues them for their subscribers, under the
    /// market's lock.
    fn publish(&mut self, ev: &MdEvent) -> ControlFlow<()> {
        let sh = self.sh.clone();
        let mut g = sh.lock();
        let inner = &mut *g;
        if !inner.market.apply(ev) {
            return ControlFlow::Continue(());
        }
        sh.proto.publish(ev, &mut inner.market, &mut self.frames);
        let asap = matches!(sh.cfg.pace, SimPace::Asap);
        for (topic, text) in self.frames.drain(..) {
            inner.seq += 1;
            let f = Arc::new(PubFrame {
                topic,
                seq: inner.seq,
                text: Bytes::from(text),
            });
            sh.count(C::FramesPublished, 1);
            inner.outs.retain(|o| {
                if o.closed.load(Ordering::Acquire) {
                    return false;
                }
                if !o.subs.contains(&topic) {
                    return true;
                }
                match o.tx.try_send(f.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Disconnected(_)) => false,
                    Err(TrySendError::Full(item)) => {
                        if asap && o.tx.send_timeout(item, sh.cfg.slow_client_timeout).is_ok() {
                            return true;
                        }
                        sh.count(C::SlowDisconnects, 1);
                        o.cut();
                        false
                    }
                }
            });
        }
        ControlFlow::Continue(())
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

struct ThreadGuard<'a>(&'a AtomicUsize);

impl Drop for ThreadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
    let mut next_id = 0u64;
    for sock in listener.incoming() {
        if sh.stopping() {
            break;
        }
        let Ok(sock) = sock else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        sh.count(C::ConnectionsAccepted, 1);
        if sh.threads.load(Ordering::Acquire) >= sh.cfg.max_connections {
            sh.count(C::ConnectionsRefused, 1);
            continue;
        }
        next_id += 1;
        let id = next_id;
        if let Ok(c) = sock.try_clone() {
            sh.sockets
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id, c));
        }
        sh.threads.fetch_add(1, Ordering::AcqRel);
        let s = sh.clone();
        let spawned = std::thread::Builder::new()
            .name("mdsim-conn".into())
            .spawn(move || {
                let _g = ThreadGuard(&s.threads);
                serve(&s, sock, id);
                s.sockets
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|(i, _)| *i != id);
            });
        if spawned.is_err() {
            sh.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The connection is over.
struct Over;

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e)
        if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

#[allow(clippy::result_large_err)] // tungstenite's callback returns its `ErrorResponse` by value
fn serve(sh: &Shared, sock: TcpStream, id: u64) {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
    let Ok(raw) = sock.try_clone() else { return };
    if sh.tls.is_some() && sh.cfg.faults.refuse_tls {
        let mut hello = [0u8; 1024];
        let _ = (&sock).read(&mut hello);
        sh.count(C::TlsRefused, 1);
        return;
    }
    let stream = match &sh.tls {
        Some(cfg) => match ServerConnection::new(cfg.clone()) {
            Ok(c) => Stream::Tls(Box::new(StreamOwned::new(c, sock))),
            Err(_) => {
                sh.count(C::HandshakesFailed, 1);
                return;
            }
        },
        None => Stream::Plain(sock),
    };
    let paths = sh.proto.paths();
    let mut path = String::new();
    let callback = |req: &Request, resp: Response| {
        let p = req.uri().path();
        if paths.contains(&p) {
            path = p.to_string();
            Ok(resp)
        } else {
            let mut r = ErrorResponse::new(Some(format!("Unknown path {p}")));
            *r.status_mut() = StatusCode::NOT_FOUND;
            Err(r)
        }
    };
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE));
    let ws = match tungstenite::accept_hdr_with_config(stream, callback, Some(cfg)) {
        Ok(ws) => ws,
        Err(_) => {
            sh.count(C::HandshakesFailed, 1);
            return;
        }
    };
    let _ = raw.set_read_timeout(Some(POLL));
    let (tx, rx) = bounded(sh.cfg.queue_frames.max(1));
    let closed = Arc::new(AtomicBool::new(false));
    sh.lock().outs.push(Out {
        id,
        tx,
        subs: Vec::new(),
        closed: closed.clone(),
        sock: raw.try_clone().ok(),
    });
    sh.open.fetch_add(1, Ordering::Relaxed);
    let mut c = Conn {
        sh,
        id,
        ws,
        conn_id: format!(
            "{:08x}",
            (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
        ),
        path,
        subs: Vec::new(),
        data_frames: 0,
        stalled: false,
        ever_subscribed: false,
        last_input: Instant::now(),
    };
    c.run(&rx, &closed);
    closed.store(true, Ordering::Release);
    sh.lock().outs.retain(|o| o.id != id);
    sh.open.fetch_sub(1, Ordering::Relaxed);
    let _ = raw.shutdown(Shutdown::Both);
}

struct Conn<'a> {
    sh: &'a Shared,
    id: u64,
    ws: WebSocket<Stream>,
    conn_id: String,
    path: String,
    /// Subscribed topics, with the publication number each was (re)subscribed at.
    subs: Vec<(Topic, u64)>,
    data_frames: u64,
    stalled: bool,
    ever_subscribed: bool,
    last_input: Instant,
}

impl Conn<'_> {
    fn run(&mut self, rx: &Receiver<Arc<PubFrame>>, closed: &AtomicBool) {
        let sh = self.sh;
        let start = Instant::now();
        let faults = &sh.cfg.faults;
        let drop_at = faults.drop_every.map(|d| start + d);
        let stall_at = faults.stall_after.map(|d| start + d);
        let idle = sh.opts.idle_timeout.or(sh.proto.idle_timeout());
        let mut next_tick = start + TICK;
        loop {
            if sh.stopping() {
                let _ = self.ws.close(Some(CloseFrame {
                    code: CloseCode::Away,
                    reason: Utf8Bytes::from_static("venue simulator stopping"),
                }));
                let _ = self.ws.flush();
                return;
            }
            if closed.load(Ordering::Acquire) {
                return; // cut off as too slow
            }
            let now = Instant::now();
            if drop_at.is_some_and(|t| now >= t) {
                sh.count(C::Drops, 1);
                return;
            }
            if !self.stalled && stall_at.is_some_and(|t| now >= t) {
                self.stalled = true;
                sh.count(C::Stalls, 1);
            }
            if idle.is_some_and(|d| now.duration_since(self.last_input) >= d) {
                sh.count(C::PongTimeouts, 1);
                return;
            }
            if now >= next_tick {
                next_tick = now + TICK;
                if !self.stalled && self.tick().is_err() {
                    return;
                }
            }
            if self.input().is_err() || self.drain(rx).is_err() {
                return;
            }
        }
    }

    /// Reads what the client sent (waiting up to [`POLL`]) and answers it.
    fn input(&mut self) -> Result<(), Over> {
        loop {
            let msg = match self.ws.read() {
                Ok(m) => m,
                Err(e) if would_block(&e) => {
                    return match self.ws.flush() {
                        Ok(()) => Ok(()),
                        Err(e) if would_block(&e) => Ok(()),
                        Err(_) => Err(Over),
                    };
                }
                Err(_) => return Err(Over),
            };
            self.last_input = Instant::now();
            if self.stalled {
                continue;
            }
            match msg {
                Message::Text(t) => self.on_text(t.as_str())?,
                Message::Binary(b) => match std::str::from_utf8(&b) {
                    Ok(t) => self.on_text(t)?,
                    Err(_) => self.sh.count(C::ControlErrors, 1),
                },
                Message::Ping(_) => self.sh.count(C::ClientPings, 1),
                Message::Pong(_) => self.sh.count(C::PongsReceived, 1),
                Message::Close(_) => {
                    let _ = self.ws.flush();
                    return Err(Over);
                }
                Message::Frame(_) => {}
            }
        }
    }

    fn on_text(&mut self, text: &str) -> Result<(), Over> {
        let sh = self.sh;
        let mut snaps = Vec::new();
        let reply = {
            let mut g = sh.lock();
            let inner = &mut *g;
            let topics: Vec<Topic> = self.subs.iter().map(|s| s.0).collect();
            let info = ConnInfo {
                conn_id: &self.conn_id,
                path: &self.path,
                subs: &topics,
            };
            let reply = sh.proto.on_text(text, &info, &inner.market);
            let seq = inner.seq;
            for t in &reply.remove {
                self.subs.retain(|s| s.0 != *t);
            }
            for &t in &reply.add {
                match self.subs.iter_mut().find(|s| s.0 == t) {
                    Some(s) => s.1 = seq,
                    None => self.subs.push((t, seq)),
                }
                sh.proto.on_subscribe(t, &info, &inner.market, &mut snaps);
            }
            if let Some(o) = inner.outs.iter_mut().find(|o| o.id == self.id) {
                o.subs = self.subs.iter().map(|s| s.0).collect();
            }
            reply
        };
        if reply.heartbeat {
            sh.count(C::ClientPings, 1);
        } else {
            sh.count(C::ControlRequests, 1);
        }
        if reply.error {
            sh.count(C::ControlErrors, 1);
        }
        sh.count(C::Subscriptions, reply.add.len() as u64);
        sh.count(C::Unsubscriptions, reply.remove.len() as u64);
        if !self.ever_subscribed && !reply.add.is_empty() {
            self.ever_subscribed = true;
            sh.subscribed.fetch_add(1, Ordering::SeqCst);
        }
        for t in reply.texts {
            self.send_text(Bytes::from(t))?;
        }
        for s in snaps {
            self.data(Bytes::from(s))?;
        }
        Ok(())
    }

    /// The venue's own periodic frames for the subscribed topics.
    fn tick(&mut self) -> Result<(), Over> {
        let mut out = Vec::new();
        {
            let g = self.sh.lock();
            for (t, _) in &self.subs {
                if t.kind == TopicKind::Heartbeat {
                    self.sh.proto.tick(*t, &g.market, &mut out);
                }
            }
        }
        for f in out {
            self.data(Bytes::from(f))?;
        }
        Ok(())
    }

    fn drain(&mut self, rx: &Receiver<Arc<PubFrame>>) -> Result<(), Over> {
        for _ in 0..BATCH {
            let f = match rx.try_recv() {
                Ok(f) => f,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Over),
            };
            if self.stalled {
                continue;
            }
            let wanted = self
                .subs
                .iter()
                .any(|(t, since)| *t == f.topic && f.seq > *since);
            if wanted {
                self.data(f.text.clone())?;
            }
        }
        Ok(())
    }

    /// Writes one data frame, then the faults that follow every Nth.
    fn data(&mut self, text: Bytes) -> Result<(), Over> {
        let sh = self.sh;
        let faults = &sh.cfg.faults;
        let len = text.len() as u64;
        if faults.fragment && text.len() >= 3 {
            sh.count(C::Fragmented, 1);
            let (a, b) = (text.len() / 3, 2 * text.len() / 3);
            let parts = [
                WsFrame::message(text.slice(..a), OpCode::Data(Data::Text), false),
                WsFrame::message(text.slice(a..b), OpCode::Data(Data::Continue), false),
                WsFrame::message(text.slice(b..), OpCode::Data(Data::Continue), true),
            ];
            for p in parts {
                self.ws.send(Message::Frame(p)).map_err(|_| Over)?;
            }
        } else {
            self.send_text(text)?;
        }
        sh.frames_sent.fetch_add(1, Ordering::Relaxed);
        sh.bytes_sent.fetch_add(len, Ordering::Relaxed);
        self.data_frames += 1;
        let n = self.data_frames;
        let every = |k: Option<u64>| k.is_some_and(|k| k > 0 && n.is_multiple_of(k));
        if every(faults.garbage_every) {
            sh.count(C::Garbage, 1);
            self.send_text(Bytes::from_static(GARBAGE))?;
        }
        if every(faults.invalid_utf8_every) {
            sh.count(C::InvalidUtf8, 1);
            self.send_raw_text(Bytes::from_static(INVALID_UTF8))?;
        }
        if every(faults.oversized_every) {
            sh.count(C::Oversized, 1);
            self.send_text(sh.oversized.clone())?;
        }
        if every(sh.opts.drop_every_frames) {
            sh.count(C::Drops, 1);
            return Err(Over);
        }
        Ok(())
    }

    fn send_text(&mut self, text: Bytes) -> Result<(), Over> {
        self.send_raw_text(text)
    }

    /// One final text frame with whatever bytes (the invalid-UTF-8 fault needs this).
    fn send_raw_text(&mut self, payload: Bytes) -> Result<(), Over> {
        self.ws
            .send(Message::Frame(WsFrame::message(
                payload,
                OpCode::Data(Data::Text),
                true,
            )))
            .map_err(|e| {
                if would_block(&e) {
                    self.sh.count(C::SlowDisconnects, 1);
                }
                Over
            })
    }
}
