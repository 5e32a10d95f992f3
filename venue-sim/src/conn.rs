//! One client connection of the market-data port: TLS and WebSocket handshakes, the route
//! (`/stream?streams=..`, `/ws`, `/ws/<stream>`), live subscriptions, the send loop, pings, and
//! fault injection. Raw TCP mode sends newline-delimited combined frames instead.
//!
//! Threads: this connection's thread owns the socket's write side and all protocol state; a
//! small reader thread blocks on the socket's read side and hands what it reads over a bounded
//! channel. The connection thread waits on that channel and on its frame queue at once
//! (`crossbeam_channel::Select`), so a frame is written the moment it is published, with one
//! write call, and client requests are answered without polling the socket.
//!
//! Order-API requests (`order.place` and the rest, on any path, or anything on `/ws-api/v3`) go
//! to the connection's [`Desk`]; events for its orders that other threads produce arrive on a
//! third channel the connection thread also waits on. The reader thread stamps every chunk it
//! reads on `CLOCK_MONOTONIC`, so a request's arrival time is when its last byte was read.

use super::control::{self, SubState};
use super::hub::{Hub, C};
use super::orders::Desk;
use super::publisher::Frame;
use super::rest::{percent_decode, query_pairs};
use super::streams::{
    build_combined, depth_alias, match_stream, valid_stream_name, Match, MatchCache,
    MAX_STREAMS_PER_CONNECTION,
};
use super::wsapi::API_PATH;
use super::FaultKind;
use crate::clock::mono_now;
use crossbeam_channel::{bounded, Receiver, Select, Sender, TryRecvError};
use rustls::{ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{StatusCode, Uri};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame, Utf8Bytes};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

/// How long a client may take over the TCP, TLS and WebSocket handshakes.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A write blocked this long means the client stopped reading: it is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The connection thread wakes at least this often (to notice a stop).
const IDLE_WAKE: Duration = Duration::from_millis(100);
/// Frames written per wake-up before client input is looked at again.
const BATCH: usize = 256;
/// Inbound chunks buffered between the reader thread and the connection thread.
const INBOUND_CHUNKS: usize = 64;
const INBOUND_CHUNK: usize = 16 << 10;
/// Largest message or frame a client may send (subscription requests are small).
const MAX_CLIENT_MESSAGE: usize = 64 << 10;

/// The invalid text frame of the garbage fault: valid UTF-8, not JSON.
const GARBAGE: &[u8] = b"{\"stream\":\"garbage\",\"data\":{\"e\":\"trade\",<<not json>>";
/// The text frame of the invalid-UTF-8 fault.
const INVALID_UTF8: &[u8] = b"{\"stream\":\"invalid\",\"data\":\"\xff\xfe\xc3\x28\"}";
/// The message of the torn-frame fault, of which only the first half is sent.
const TORN: &[u8] = b"{\"stream\":\"torn\",\"data\":{\"e\":\"trade\",\"note\":\"this frame is cut in the middle, then the connection is dropped\"}}";
/// How long an injected close waits for the client's close frame.
const CLOSE_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the publisher and the statistics see of a connection.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) id: u64,
    /// Raw TCP: every stream, combined.
    pub(crate) all_streams: bool,
    /// Bumped after every change of `subs`.
    pub(crate) subs_version: AtomicU64,
    pub(crate) subs: Mutex<Vec<String>>,
    /// Frames queued for this connection (written by the publisher only).
    pub(crate) enqueued: AtomicU64,
    /// Frames taken off the queue and written or filtered out (written by this connection only).
    pub(crate) handled: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) closed: AtomicBool,
    /// For the publisher to cut off a client that does not keep up (`None`: not a socket, the
    /// order side's trade tap).
    pub(crate) sock: Option<TcpStream>,
}

impl ConnShared {
    /// Ends the connection from another thread: blocked reads and writes return.
    pub(crate) fn cut(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(sock) = &self.sock {
            let _ = sock.shutdown(Shutdown::Both);
        }
    }
}

/// A connection announced to the publisher.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) shared: Arc<ConnShared>,
    pub(crate) tx: Sender<Arc<Frame>>,
}

/// What the reader thread hands over: when it read the bytes (`CLOCK_MONOTONIC` ns), and them.
type Chunk = (u64, Vec<u8>);

/// Adds one to a counter only this thread writes (no read-modify-write instruction).
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Transport

/// The socket as the protocol layers see it. During the handshakes reads go to the socket
/// (blocking, with a timeout); afterwards they come from the reader thread's channel and say
/// `WouldBlock` when it is empty. Writes always go straight to the socket (blocking).
#[derive(Debug)]
struct Wire {
    sock: TcpStream,
    inbound: Option<Receiver<Chunk>>,
    chunk: Vec<u8>,
    pos: usize,
    /// When the reader thread read `chunk`.
    chunk_ns: u64,
}

impl Wire {
    /// Drops whatever the client sent without looking at it; false once the client is gone.
    fn discard_inbound(&mut self) -> bool {
        self.chunk.clear();
        self.pos = 0;
        let Some(rx) = &self.inbound else {
            return true;
        };
        loop {
            match rx.try_recv() {
                Ok(_) => {}
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(rx) = &self.inbound else {
            return (&self.sock).read(buf);
        };
        loop {
            if self.pos < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.pos);
                buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            match rx.try_recv() {
                Ok((ns, c)) => {
                    self.chunk = c;
                    self.chunk_ns = ns;
                    self.pos = 0;
                }
                Err(TryRecvError::Empty) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(TryRecvError::Disconnected) => return Ok(0),
            }
        }
    }
}

impl Write for Wire {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.sock).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
enum Transport {
    Plain(Wire),
    Tls(Box<StreamOwned<ServerConnection, Wire>>),
}

impl Transport {
    fn wire_mut(&mut self) -> &mut Wire {
        match self {
            Transport::Plain(w) => w,
            Transport::Tls(s) => &mut s.sock,
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(w) => w.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(w) => w.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(w) => w.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// What the handshake's path asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) combined: bool,
    pub(crate) subs: Vec<String>,
}

/// `/stream?streams=a/b` (combined), `/ws` and `/ws/<a>/<b>` (bare). Error: HTTP status and text.
pub(crate) fn parse_route(uri: &Uri) -> Result<Route, (u16, String)> {
    let path = uri.path();
    let (combined, names): (bool, Vec<String>) = if path == "/stream" || path == "/stream/" {
        let mut names = Vec::new();
        for (k, v) in query_pairs(uri.query().unwrap_or("")) {
            if k == "streams" {
                names.extend(v.split('/').filter(|s| !s.is_empty()).map(str::to_string));
            }
        }
        (true, names)
    } else if path == "/ws" || path == "/ws/" || path.trim_end_matches('/') == API_PATH {
        (false, Vec::new())
    } else if let Some(rest) = path.strip_prefix("/ws/") {
        let names = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        (false, names)
    } else {
        return Err((404, format!("Unknown path {path}")));
    };
    let mut subs: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !valid_stream_name(&n) {
            return Err((400, format!("Invalid stream name {n:?}")));
        }
        if !subs.contains(&n) {
            subs.push(n);
        }
    }
    if subs.len() > MAX_STREAMS_PER_CONNECTION {
        return Err((
            400,
            format!("At most {MAX_STREAMS_PER_CONNECTION} streams per connection"),
        ));
    }
    Ok(Route { combined, subs })
}

fn error_response(status: u16, msg: &str) -> ErrorResponse {
    let body = format!(
        "{{\"code\":-1,\"msg\":{}}}",
        serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into())
    );
    let mut r = ErrorResponse::new(Some(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    r
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 << 10)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

// ---------------------------------------------------------------------------------------------
// Serving a connection

/// Serves one accepted connection until it ends. Never panics on client behaviour.
pub(crate) fn serve(hub: Arc<Hub>, sock: TcpStream, id: u64) {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let _ = sock.set_write_timeout(Some(WRITE_TIMEOUT));
    if let Some(io) = handshake(&hub, &sock) {
        run_session(&hub, sock.try_clone().ok(), io, id);
    }
    let _ = sock.shutdown(Shutdown::Both);
}

/// The handshakes. `None` when the connection should end (counted).
/// Besides the route, says whether the path was the order API's own (`/ws-api/v3`).
#[allow(clippy::result_large_err)] // tungstenite's callback returns its `ErrorResponse` by value
fn handshake(hub: &Hub, sock: &TcpStream) -> Option<(Io, Route, bool)> {
    let fail = || {
        hub.count(C::HandshakesFailed, 1);
        None
    };
    if hub.tls().is_some() && hub.cfg().faults.refuse_tls {
        // Read (part of) the ClientHello, then hang up in the middle of the handshake.
        let mut hello = [0u8; 1024];
        let _ = (&*sock).read(&mut hello);
        hub.count(C::TlsRefused, 1);
        return None;
    }
    let wire = Wire {
        sock: sock.try_clone().ok()?,
        inbound: None,
        chunk: Vec::new(),
        pos: 0,
        chunk_ns: 0,
    };
    let mut transport = match hub.tls() {
        Some(cfg) => match ServerConnection::new(cfg.clone()) {
            Ok(c) => Transport::Tls(Box::new(StreamOwned::new(c, wire))),
            Err(_) => return fail(),
        },
        None => Transport::Plain(wire),
    };
    if hub.cfg().raw_tcp {
        if let Transport::Tls(s) = &mut transport {
            while s.conn.is_handshaking() {
                if s.conn.complete_io(&mut s.sock).is_err() {
                    return fail();
                }
            }
        }
        let route = Route {
            combined: true,
            subs: Vec::new(),
        };
        return Some((Io::Raw(transport), route, false));
    }
    let mut route = None;
    let mut api = false;
    let callback = |req: &Request, resp: Response| match parse_route(req.uri()) {
        Ok(r) => {
            route = Some(r);
            api = req.uri().path().trim_end_matches('/') == API_PATH;
            Ok(resp)
        }
        Err((status, msg)) => Err(error_response(status, &msg)),
    };
    match tungstenite::accept_hdr_with_config(transport, callback, Some(ws_config())) {
        Ok(ws) => match route {
            Some(r) => Some((Io::Ws(Box::new(ws)), r, api)),
            None => fail(),
        },
        Err(_) => fail(),
    }
}

enum Io {
    Ws(Box<WebSocket<Transport>>),
    Raw(Transport),
}

impl Io {
    fn wire_mut(&mut self) -> &mut Wire {
        match self {
            Io::Ws(ws) => ws.get_mut().wire_mut(),
            Io::Raw(t) => t.wire_mut(),
        }
    }
}

fn spawn_reader(mut sock: TcpStream, tx: Sender<Chunk>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("sim-conn-rd".into())
        .spawn(move || loop {
            let mut buf = vec![0u8; INBOUND_CHUNK];
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let ns = mono_now();
                    buf.truncate(n);
                    if tx.send((ns, buf)).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        })
        .map(|_| ())
}

fn run_session(
    hub: &Arc<Hub>,
    sock: Option<TcpStream>,
    (mut io, route, api): (Io, Route, bool),
    id: u64,
) {
    let Some(sock) = sock else { return };
    let Ok(shared_sock) = sock.try_clone() else {
        return;
    };
    let _ = sock.set_read_timeout(None);
    let (in_tx, in_rx) = bounded(INBOUND_CHUNKS);
    if spawn_reader(sock, in_tx).is_err() {
        return;
    }
    io.wire_mut().inbound = Some(in_rx.clone());

    let raw = matches!(io, Io::Raw(_));
    let shared = Arc::new(ConnShared {
        id,
        all_streams: raw,
        subs_version: AtomicU64::new(1),
        subs: Mutex::new(route.subs.clone()),
        enqueued: AtomicU64::new(0),
        handled: AtomicU64::new(0),
        frames_sent: AtomicU64::new(0),
        bytes_sent: AtomicU64::new(0),
        closed: AtomicBool::new(false),
        sock: Some(shared_sock),
    });
    let (tx, frames_rx) = bounded(hub.cfg().queue_frames.max(1));
    hub.register(Registration {
        shared: shared.clone(),
        tx,
    });
    let added = route.subs.len() as u64;
    let (desk, events_rx) = Desk::open(hub, id, api);
    let mut s = Session {
        hub,
        shared: &shared,
        io,
        state: SubState {
            subs: route.subs,
            combined: route.combined,
        },
        cache: MatchCache::default(),
        // `/ws-api/v3` carries no market data: it never takes the send-time record.
        record: !api && hub.claim_first_connection(),
        market: !api,
        data_frames: 0,
        handled: 0,
        stalled: false,
        ever_subscribed: false,
        line: Vec::with_capacity(1024),
        scratch: Vec::new(),
        desk,
        replies: Vec::new(),
    };
    s.cache.sync(1);
    hub.count(C::Subscriptions, added);
    if raw || added > 0 {
        s.ever_subscribed = true;
        hub.note_subscribed();
    }
    s.run(&frames_rx, &in_rx, &events_rx);
    shared.cut();
    hub.unregister(&shared);
}

struct Session<'a> {
    hub: &'a Hub,
    shared: &'a ConnShared,
    io: Io,
    state: SubState,
    cache: MatchCache,
    /// This is the first connection: record send times of trade frames.
    record: bool,
    /// Not the order API's own path: takes faults asked for by `VenueSim::inject`.
    market: bool,
    /// Data frames written (faults count these).
    data_frames: u64,
    handled: u64,
    stalled: bool,
    ever_subscribed: bool,
    /// Raw TCP: the frame plus its newline, written with one call.
    line: Vec<u8>,
    scratch: Vec<u8>,
    /// The order side of this connection.
    desk: Desk,
    /// Order-API replies and events waiting to be written.
    replies: Vec<String>,
}

/// The connection is over.
struct Over;

/// A write failed: the connection is over. A write that timed out means the client stopped
/// reading: counted as a slow client.
fn write_failed(hub: &Hub, e: &io::Error) -> Over {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        hub.count(C::SlowDisconnects, 1);
    }
    Over
}

fn ws_write_failed(hub: &Hub, e: &tungstenite::Error) -> Over {
    match e {
        tungstenite::Error::Io(e) => write_failed(hub, e),
        _ => Over,
    }
}

impl Session<'_> {
    fn run(
        &mut self,
        frames_rx: &Receiver<Arc<Frame>>,
        in_rx: &Receiver<Chunk>,
        events_rx: &Receiver<String>,
    ) {
        let cfg = self.hub.cfg();
        let start = Instant::now();
        let drop_at = cfg.faults.drop_every.map(|d| start + d);
        let stall_at = cfg.faults.stall_after.map(|d| start + d);
        let ping_every = match self.io {
            Io::Ws(_) if !cfg.ping_interval.is_zero() => Some(cfg.ping_interval),
            _ => None,
        };
        let mut next_ping = ping_every.map(|d| start + d);
        let mut pong_deadline: Option<Instant> = None;
        let mut sel = Select::new();
        let frames_op = sel.recv(frames_rx);
        let _input_op = sel.recv(in_rx);
        let events_op = sel.recv(events_rx);
        // Whatever the handshake left buffered (nothing, for a client that waits for the 101
        // as RFC 6455 asks) would never be announced by the channel: handle it first.
        if self.on_input(&mut pong_deadline).is_err() {
            return;
        }
        loop {
            if self.hub.stopping() {
                self.close_going_away();
                return;
            }
            if self.market && self.ever_subscribed && !self.stalled {
                if let Some(kind) = self.hub.take_injection() {
                    if self.inject(kind, in_rx).is_err() {
                        return;
                    }
                }
            }
            let now = Instant::now();
            if drop_at.is_some_and(|t| now >= t) {
                self.hub.count(C::Drops, 1);
                return;
            }
            if !self.stalled && stall_at.is_some_and(|t| now >= t) {
                self.stalled = true;
                self.hub.count(C::Stalls, 1);
            }
            if !self.stalled {
                if let (Some(t), Some(every)) = (next_ping, ping_every) {
                    if now >= t {
                        if self.send_ping().is_err() {
                            return;
                        }
                        next_ping = Some(now + every);
                        pong_deadline.get_or_insert(now + cfg.pong_timeout);
                    }
                }
                if pong_deadline.is_some_and(|t| now >= t) {
                    self.hub.count(C::PongTimeouts, 1);
                    return;
                }
                if self.desk.next_due().is_some_and(|t| now >= t) {
                    self.desk.run_due(now, &mut self.replies);
                    if self.write_replies().is_err() {
                        return;
                    }
                }
            }
            let mut deadline = now + IDLE_WAKE;
            let timers = if self.stalled {
                [drop_at, None, None, None, None]
            } else {
                [
                    drop_at,
                    stall_at,
                    next_ping,
                    pong_deadline,
                    self.desk.next_due(),
                ]
            };
            for t in timers.into_iter().flatten() {
                deadline = deadline.min(t);
            }
            let step = match sel.ready_deadline(deadline) {
                Ok(op) if op == frames_op => self.drain_frames(frames_rx),
                Ok(op) if op == events_op => self.on_events(),
                Ok(_) => self.on_input(&mut pong_deadline),
                Err(_) => Ok(()),
            };
            if step.is_err() {
                return;
            }
        }
    }

    fn drain_frames(&mut self, rx: &Receiver<Arc<Frame>>) -> Result<(), Over> {
        for _ in 0..BATCH {
            match rx.try_recv() {
                Ok(f) => {
                    let r = self.on_frame(&f);
                    self.handled += 1;
                    self.shared.handled.store(self.handled, Ordering::Release);
                    r?;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => {
                    // The publisher stopped (or cut this connection off as too slow).
                    if self.hub.stopping() {
                        self.close_going_away();
                    }
                    return Err(Over);
                }
            }
        }
        Ok(())
    }

    fn on_frame(&mut self, f: &Frame) -> Result<(), Over> {
        if self.stalled {
            return Ok(());
        }
        let m = if self.shared.all_streams {
            Match::Exact
        } else {
            let subs = &self.state.subs;
            self.cache
                .get(f.stream_id, || match_stream(subs, &f.stream))
        };
        let payload = match m {
            Match::No => return Ok(()),
            _ if !self.state.combined => f.data.clone(),
            Match::Exact => f.combined.clone(),
            Match::Alias => {
                let alias = depth_alias(&f.stream).unwrap_or_else(|| f.stream.to_string());
                Bytes::from(build_combined(&alias, &f.data))
            }
        };
        let stamp = match f.trade_id {
            Some(id) if self.record => Some((id, mono_now())),
            _ => None,
        };
        let len = payload.len() as u64;
        self.write_data(payload)?;
        if let Some((id, t)) = stamp {
            self.hub.record_send(id, t);
        }
        bump(&self.shared.frames_sent, 1);
        bump(&self.shared.bytes_sent, len);
        self.data_frames += 1;
        self.inject_faults()
    }

    /// The faults that follow every Nth data frame.
    fn inject_faults(&mut self) -> Result<(), Over> {
        let n = self.data_frames;
        let faults = &self.hub.cfg().faults;
        let every = |k: Option<u64>| k.is_some_and(|k| k > 0 && n.is_multiple_of(k));
        if every(faults.garbage_every) {
            self.write_fault(Bytes::from_static(GARBAGE))?;
            self.hub.count(C::Garbage, 1);
        }
        if every(faults.invalid_utf8_every) {
            self.write_fault(Bytes::from_static(INVALID_UTF8))?;
            self.hub.count(C::InvalidUtf8, 1);
        }
        if every(faults.oversized_every) {
            let big = self.hub.oversized_frame();
            self.write_fault(big)?;
            self.hub.count(C::Oversized, 1);
        }
        if every(faults.drop_every_frames) {
            self.hub.count(C::Drops, 1);
            return Err(Over);
        }
        Ok(())
    }

    /// Performs a fault asked for by `VenueSim::inject`, counted first (a client that hangs up
    /// on reading the start of an oversized frame still had it injected). `Err`: the connection
    /// is over.
    #[cold]
    fn inject(&mut self, kind: FaultKind, in_rx: &Receiver<Chunk>) -> Result<(), Over> {
        let hub = self.hub;
        match kind {
            FaultKind::Garbage => {
                hub.count(C::Garbage, 1);
                self.write_fault(Bytes::from_static(GARBAGE))
            }
            FaultKind::InvalidUtf8 => {
                hub.count(C::InvalidUtf8, 1);
                self.write_fault(Bytes::from_static(INVALID_UTF8))
            }
            FaultKind::Oversized => {
                hub.count(C::Oversized, 1);
                self.write_fault(hub.oversized_frame())
            }
            FaultKind::Stall => {
                hub.count(C::Stalls, 1);
                self.stalled = true;
                Ok(())
            }
            FaultKind::Hangup => {
                hub.count(C::Drops, 1);
                Err(Over)
            }
            FaultKind::Close => {
                hub.count(C::Closes, 1);
                self.close_handshake(in_rx);
                Err(Over)
            }
            FaultKind::Reset => {
                hub.count(C::Resets, 1);
                self.reset();
                Err(Over)
            }
            FaultKind::Torn => {
                hub.count(C::Torn, 1);
                let _ = self.write_torn();
                Err(Over)
            }
        }
    }

    /// Sends a close frame (`1000`) and waits a bounded time for the client's reply, as a
    /// venue closing cleanly does; raw TCP has no close frame (a plain hang-up).
    fn close_handshake(&mut self, in_rx: &Receiver<Chunk>) {
        let Io::Ws(ws) = &mut self.io else {
            return;
        };
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: Utf8Bytes::from_static("venue simulator: injected close"),
        };
        if ws.close(Some(close)).is_err() || ws.flush().is_err() {
            return;
        }
        let deadline = Instant::now() + CLOSE_HANDSHAKE_TIMEOUT;
        let mut sel = Select::new();
        sel.recv(in_rx);
        loop {
            match ws.read() {
                Ok(Message::Close(_)) => {
                    let _ = ws.flush();
                    return;
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    if sel.ready_deadline(deadline).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// Aborts the connection with a TCP RST. `connect(AF_UNSPEC)` disconnects the socket at
    /// once (Linux sends the RST for an established connection), where `SO_LINGER` 0 alone
    /// would only take effect when the last handle to the socket closes (the reader thread and
    /// the publisher hold some); it is set too, for kernels that need the close.
    fn reset(&mut self) {
        let sock = &self.io.wire_mut().sock;
        let _ = rustix::net::sockopt::set_socket_linger(sock, Some(Duration::ZERO));
        let _ = rustix::net::connect_unspec(sock);
    }

    /// Writes the first half of a text frame (header and about half its payload; raw TCP: half
    /// a line), straight to the socket.
    fn write_torn(&mut self) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(TORN.len() + 16);
        match &self.io {
            Io::Ws(_) => {
                WsFrame::message(Bytes::from_static(TORN), OpCode::Data(Data::Text), true)
                    .format(&mut bytes)
                    .map_err(io::Error::other)?;
                let header = bytes.len() - TORN.len();
                bytes.truncate(header + TORN.len() / 2);
            }
            Io::Raw(_) => bytes.extend_from_slice(&TORN[..TORN.len() / 2]),
        }
        let t = match &mut self.io {
            Io::Ws(ws) => ws.get_mut(),
            Io::Raw(t) => t,
        };
        t.write_all(&bytes)?;
        t.flush()
    }

    /// Writes one data frame (three fragments with the fragment fault).
    fn write_data(&mut self, payload: Bytes) -> Result<(), Over> {
        let hub = self.hub;
        let fragment = self.hub.cfg().faults.fragment && payload.len() >= 3;
        if fragment {
            self.hub.count(C::Fragmented, 1);
        }
        match &mut self.io {
            Io::Ws(ws) => {
                if fragment {
                    let (a, b) = (payload.len() / 3, 2 * payload.len() / 3);
                    let parts = [
                        WsFrame::message(payload.slice(..a), OpCode::Data(Data::Text), false),
                        WsFrame::message(payload.slice(a..b), OpCode::Data(Data::Continue), false),
                        WsFrame::message(payload.slice(b..), OpCode::Data(Data::Continue), true),
                    ];
                    for p in parts {
                        ws.send(Message::Frame(p))
                            .map_err(|e| ws_write_failed(hub, &e))?;
                    }
                    Ok(())
                } else {
                    ws.send(Message::Frame(WsFrame::message(
                        payload,
                        OpCode::Data(Data::Text),
                        true,
                    )))
                    .map_err(|e| ws_write_failed(hub, &e))
                }
            }
            Io::Raw(t) => {
                self.line.clear();
                self.line.extend_from_slice(&payload);
                self.line.push(b'\n');
                if fragment {
                    let (a, b) = (self.line.len() / 3, 2 * self.line.len() / 3);
                    for part in [&self.line[..a], &self.line[a..b], &self.line[b..]] {
                        t.write_all(part).map_err(|e| write_failed(hub, &e))?;
                        t.flush().map_err(|e| write_failed(hub, &e))?;
                    }
                    Ok(())
                } else {
                    t.write_all(&self.line).map_err(|e| write_failed(hub, &e))?;
                    t.flush().map_err(|e| write_failed(hub, &e))
                }
            }
        }
    }

    /// Writes a fault frame as one text frame (or one line), whatever it contains.
    fn write_fault(&mut self, payload: Bytes) -> Result<(), Over> {
        let hub = self.hub;
        match &mut self.io {
            Io::Ws(ws) => ws
                .send(Message::Frame(WsFrame::message(
                    payload,
                    OpCode::Data(Data::Text),
                    true,
                )))
                .map_err(|e| ws_write_failed(hub, &e)),
            Io::Raw(t) => {
                self.line.clear();
                self.line.extend_from_slice(&payload);
                self.line.push(b'\n');
                t.write_all(&self.line).map_err(|e| write_failed(hub, &e))?;
                t.flush().map_err(|e| write_failed(hub, &e))
            }
        }
    }

    fn send_ping(&mut self) -> Result<(), Over> {
        let hub = self.hub;
        if let Io::Ws(ws) = &mut self.io {
            ws.send(Message::Ping(Bytes::new()))
                .map_err(|e| ws_write_failed(hub, &e))?;
            self.hub.count(C::PingsSent, 1);
        }
        Ok(())
    }

    fn close_going_away(&mut self) {
        if let Io::Ws(ws) = &mut self.io {
            let _ = ws.close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: Utf8Bytes::from_static("venue simulator stopping"),
            }));
            let _ = ws.flush();
        }
    }

    /// Reads everything the client sent so far and answers it.
    fn on_input(&mut self, pong_deadline: &mut Option<Instant>) -> Result<(), Over> {
        if self.stalled {
            // A stalled venue answers nothing, not even pings; the socket stays open.
            return if self.io.wire_mut().discard_inbound() {
                Ok(())
            } else {
                Err(Over)
            };
        }
        match &mut self.io {
            Io::Raw(t) => {
                self.scratch.resize(INBOUND_CHUNK, 0);
                loop {
                    match t.read(&mut self.scratch) {
                        Ok(0) => return Err(Over),
                        Ok(_) => {} // raw TCP clients have nothing to say
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => return Err(Over),
                    }
                }
            }
            Io::Ws(_) => self.on_ws_input(pong_deadline),
        }
    }

    fn on_ws_input(&mut self, pong_deadline: &mut Option<Instant>) -> Result<(), Over> {
        loop {
            let Io::Ws(ws) = &mut self.io else {
                return Ok(());
            };
            let msg = match ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Pongs to the client's pings may still be queued.
                    return match ws.flush() {
                        Ok(()) => Ok(()),
                        Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                            Ok(())
                        }
                        Err(_) => Err(Over),
                    };
                }
                Err(_) => return Err(Over),
            };
            match msg {
                Message::Text(t) => self.on_request(t.as_bytes())?,
                Message::Binary(b) => self.on_request(&b)?,
                Message::Ping(_) => self.hub.count(C::ClientPings, 1),
                Message::Pong(_) => {
                    self.hub.count(C::PongsReceived, 1);
                    *pong_deadline = None;
                }
                Message::Close(_) => {
                    // tungstenite queued the reply; write it and end.
                    let _ = ws.flush();
                    return Err(Over);
                }
                Message::Frame(_) => {}
            }
        }
    }

    /// Writes the events other threads queued for this connection's orders.
    fn on_events(&mut self) -> Result<(), Over> {
        self.desk.take_events(&mut self.replies);
        if self.stalled {
            self.replies.clear();
            return Ok(());
        }
        self.write_replies()
    }

    /// Writes the order-API replies and events waiting in `replies`.
    fn write_replies(&mut self) -> Result<(), Over> {
        let hub = self.hub;
        let Io::Ws(ws) = &mut self.io else {
            self.replies.clear();
            return Ok(());
        };
        for r in self.replies.drain(..) {
            ws.send(Message::Text(r.into()))
                .map_err(|e| ws_write_failed(hub, &e))?;
        }
        Ok(())
    }

    /// An order-API request (see [`Desk`]), or a
    /// `SUBSCRIBE`/`UNSUBSCRIBE`/`LIST_SUBSCRIPTIONS`/property request.
    fn on_request(&mut self, text: &[u8]) -> Result<(), Over> {
        let arrival_ns = match self.io.wire_mut().chunk_ns {
            0 => mono_now(), // read during the handshake
            ns => ns,
        };
        if self.desk.on_message(text, arrival_ns, &mut self.replies) {
            return self.write_replies();
        }
        let hub = self.hub;
        self.hub.count(C::ControlRequests, 1);
        let (resp, outcome) = control::handle(&mut self.state, text);
        if outcome.error {
            self.hub.count(C::ControlErrors, 1);
        }
        if outcome.changed() {
            self.hub.count(C::Subscriptions, outcome.added as u64);
            self.hub.count(C::Unsubscriptions, outcome.removed as u64);
            self.publish_subs();
        }
        if let Io::Ws(ws) = &mut self.io {
            ws.send(Message::Text(resp.into()))
                .map_err(|e| ws_write_failed(hub, &e))?;
        }
        Ok(())
    }

    /// Shows the new subscription set to the publisher.
    fn publish_subs(&mut self) {
        let version = {
            let mut subs = match self.shared.subs.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            subs.clone_from(&self.state.subs);
            let v = self.shared.subs_version.load(Ordering::Relaxed) + 1;
            self.shared.subs_version.store(v, Ordering::Release);
            v
        };
        self.cache.sync(version);
        if !self.ever_subscribed && !self.state.subs.is_empty() {
            self.ever_subscribed = true;
            self.hub.note_subscribed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str) -> Result<Route, (u16, String)> {
        parse_route(&s.parse::<Uri>().unwrap())
    }

    #[test]
    fn routes() {
        assert_eq!(
            route("/stream?streams=btcusdt@trade/btcusdt@depth@100ms").unwrap(),
            Route {
                combined: true,
                subs: vec!["btcusdt@trade".into(), "btcusdt@depth@100ms".into()]
            }
        );
        assert_eq!(
            route("/stream?streams=btcusdt%40trade&timeUnit=MICROSECOND").unwrap(),
            Route {
                combined: true,
                subs: vec!["btcusdt@trade".into()]
            }
        );
        assert_eq!(
            route("/ws").unwrap(),
            Route {
                combined: false,
                subs: vec![]
            }
        );
        assert_eq!(
            route("/ws/btcusdt@bookTicker").unwrap().subs,
            ["btcusdt@bookTicker"]
        );
        assert_eq!(route("/ws/BTCUSDT@trade").unwrap_err().0, 400);
        assert_eq!(
            route("/ws/btcusdt@trade/btcusdt@trade").unwrap().subs,
            ["btcusdt@trade"]
        );
        assert_eq!(route("/nope").unwrap_err().0, 404);
        assert_eq!(route("/stream?streams=BAD").unwrap_err().0, 400);
    }
}
