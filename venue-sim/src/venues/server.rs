//! [`MdSim`]: the other venues' simulator: its state, start and stop, and the publisher.
//!
//! One listener on 127.0.0.1 (WebSocket, plain or TLS; the connections are `conn.rs`'s); one
//! publisher thread that reads the source, paces it (`crate::publisher::Pacer`, the Binance
//! simulator's), applies each event to the `Market` and fans the venue's frames out to the
//! queues of the connections subscribed to their topics. A connection polls its socket with a
//! 2 ms read timeout between batches of frames: simple, bounded, and fast enough for a test
//! venue (frames wait at most that long).

use super::model::{Market, MdEvent, Translator};
use super::native::NativeTranslator;
use super::{protocol, Protocol, Topic, VenueOptions};
use crate::gen::{FeedGenerator, GenKind};
use crate::hub::C;
use crate::publisher::Pacer;
use crate::{tls, FaultStats, SimConfig, SimPace, SimSource, SimStats};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Sender, TrySendError};
use feeds::capture::{CaptureFormat, LoadedCapture, RecordKind};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::Bytes;

const COUNTERS: usize = C::TlsRefused as usize + 1;
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection's read waits before it looks at its frame queue again.
pub(super) const POLL: Duration = Duration::from_millis(2);
/// Frames written between two looks at the client's input.
pub(super) const BATCH: usize = 256;
pub(super) const MAX_CLIENT_MESSAGE: usize = 64 << 10;
/// The venue's own periodic frames (Coinbase heartbeats) go out this often.
pub(super) const TICK: Duration = Duration::from_secs(1);
pub(super) const GARBAGE: &[u8] = b"{\"arg\":{\"channel\":\"garbage\"},\"data\":[{<<not json>>";
pub(super) const INVALID_UTF8: &[u8] = b"{\"topic\":\"invalid\",\"data\":\"\xff\xfe\xc3\x28\"}";

/// One published frame, shared by the queues of every connection subscribed to its topic.
#[derive(Debug)]
pub(super) struct PubFrame {
    pub(super) topic: Topic,
    /// Publication number, from 1: a connection drops frames of a topic at or before the
    /// number it (re)subscribed at (its snapshot already has them).
    pub(super) seq: u64,
    pub(super) text: Bytes,
}

/// A connection as the publisher sees it.
#[derive(Debug)]
pub(super) struct Out {
    pub(super) id: u64,
    pub(super) tx: Sender<Arc<PubFrame>>,
    pub(super) subs: Vec<Topic>,
    pub(super) closed: Arc<AtomicBool>,
    pub(super) sock: Option<TcpStream>,
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
pub(super) struct Inner {
    pub(super) market: Market,
    pub(super) outs: Vec<Out>,
    /// Frames published so far.
    pub(super) seq: u64,
}

pub(super) struct Shared {
    pub(super) cfg: SimConfig,
    pub(super) opts: VenueOptions,
    pub(super) proto: Box<dyn Protocol>,
    pub(super) inner: Mutex<Inner>,
    pub(super) counters: [AtomicU64; COUNTERS],
    pub(super) stop: AtomicBool,
    pub(super) done: AtomicBool,
    pub(super) subscribed: AtomicUsize,
    pub(super) open: AtomicU64,
    pub(super) frames_sent: AtomicU64,
    pub(super) bytes_sent: AtomicU64,
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) sockets: Mutex<Vec<(u64, TcpStream)>>,
    pub(super) threads: AtomicUsize,
    pub(super) oversized: Bytes,
}

impl Shared {
    pub(super) fn count(&self, c: C, n: u64) {
        self.counters[c as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, c: C) -> u64 {
        self.counters[c as usize].load(Ordering::Relaxed)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn stopping(&self) -> bool {
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
                .spawn(move || super::conn::accept_loop(sh, listener))
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
