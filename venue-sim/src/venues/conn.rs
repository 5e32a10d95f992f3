//! The connections of [`super::MdSim`]: the accept loop, the TLS and WebSocket handshakes
//! (the venue's paths only), and one thread per connection that answers the client through the
//! venue's `Protocol`, writes the frames its subscriptions select (a topic's frames published
//! at or before its (re)subscription are skipped: its snapshot has them), sends the venue's
//! own periodic frames, closes it when idle past the venue's limit, and injects the faults.

use super::server::{
    PubFrame, Shared, BATCH, GARBAGE, HANDSHAKE_TIMEOUT, INVALID_UTF8, MAX_CLIENT_MESSAGE, POLL,
    TICK, WRITE_TIMEOUT,
};
use super::{ConnInfo, Topic, TopicKind};
use crate::hub::C;
use crossbeam_channel::{bounded, Receiver, TryRecvError};
use rustls::{ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame as WsFrame, Utf8Bytes};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

struct ThreadGuard<'a>(&'a AtomicUsize);

impl Drop for ThreadGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) fn accept_loop(sh: Arc<Shared>, listener: TcpListener) {
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
    sh.lock().outs.push(super::server::Out {
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
            self.send_text(Bytes::from_static(INVALID_UTF8))?;
        }
        if every(faults.oversized_every) {
            sh.count(C::Oversized, 1);
            self.send_text(sh.oversized.clone())?;
        }
        if every(faults.drop_every_frames) {
            sh.count(C::Drops, 1);
            return Err(Over);
        }
        Ok(())
    }

    /// One final text frame of whatever bytes (the invalid-UTF-8 fault's included).
    fn send_text(&mut self, payload: Bytes) -> Result<(), Over> {
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
