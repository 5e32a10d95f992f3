//! The I/O thread over real sockets on 127.0.0.1: frames into the ring in order, subscriptions,
//! reconnects with backoff, idle detection, heartbeats, garbage frames, refused ports, and
//! recording to a `.tlc` capture.
//!
//! The server side is a small RFC 6455 server written here on `std::net` (handshake, unmasked
//! server frames, masked client frames, automatic pongs), one thread per scripted server. Every
//! wait has a deadline, so a broken build fails instead of hanging.

use engine::event::{Connection, Event, EventKind};
use engine::ring::{event_ring, OnFull};
use engine::symbol::SymbolTable;
use feeds::binance::market::BinanceDecoder;
use feeds::capture::{CaptureWriter, RecordKind, TicklineCapture};
use feeds::io::{
    FeedSpec, IoConfig, IoEnd, IoLoop, IoNotice, IoReport, IoShared, LinkState, ReconnectPolicy,
};
use feeds::recorder::{recorder, run_writer, RecorderTx};
use rtrb::Consumer;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, RwLock, RwLockReadGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use tools::clock::MonoClock;

/// Upper bound for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(10);

#[global_allocator]
static ALLOC: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

/// The allocation counter is process-wide: tests share this lock for reading, and the one that
/// counts allocations takes it for writing, so it runs alone.
static ALLOC_COUNTING: RwLock<()> = RwLock::new(());

fn shared_test() -> RwLockReadGuard<'static, ()> {
    ALLOC_COUNTING.read().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// A minimal WebSocket server
// ---------------------------------------------------------------------------------------------

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes(block[4 * i..4 * i + 4].try_into().unwrap());
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// The RFC 6455 `Sec-WebSocket-Accept` for a key.
fn ws_accept(key: &str) -> String {
    base64(&sha1(
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    ))
}

/// A frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
}

/// One accepted, upgraded client connection, seen from the server.
struct Peer {
    s: TcpStream,
    pings: u32,
}

impl Peer {
    /// Reads the upgrade request and answers `101`.
    fn upgrade(mut s: TcpStream) -> Peer {
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1];
        while !req.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("reading the upgrade request");
            req.push(b[0]);
        }
        let req = String::from_utf8(req).unwrap();
        assert!(req.starts_with("GET /ws"), "{req}");
        let key = req
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| v.trim().to_string())
            })
            .expect("Sec-WebSocket-Key");
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            ws_accept(&key)
        );
        s.write_all(resp.as_bytes()).unwrap();
        Peer { s, pings: 0 }
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n < 65_536 => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        self.s.write_all(&f)
    }

    fn send_text(&mut self, text: &str) {
        self.send_frame(0x1, text.as_bytes()).expect("server send");
    }

    /// Reads one (masked) client frame.
    fn read_frame(&mut self) -> io::Result<Frame> {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h)?;
        let opcode = h[0] & 0x0f;
        assert!(h[1] & 0x80 != 0, "client frames are masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b)?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b)?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        let mut mask = [0u8; 4];
        self.s.read_exact(&mut mask)?;
        let mut p = vec![0u8; len];
        self.s.read_exact(&mut p)?;
        for (i, b) in p.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
        Ok(match opcode {
            0x1 => Frame::Text(String::from_utf8(p).unwrap()),
            0x2 => Frame::Binary(p),
            0x8 => Frame::Close((p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))),
            0x9 => Frame::Ping(p),
            0xA => Frame::Pong(p),
            op => panic!("unexpected opcode {op}"),
        })
    }

    /// Reads frames, answering pings, until a text frame (returned) or a close (`None`).
    fn next_text(&mut self) -> Option<String> {
        loop {
            match self.read_frame().ok()? {
                Frame::Text(t) => return Some(t),
                Frame::Ping(p) => {
                    self.pings += 1;
                    self.send_frame(0xA, &p).ok()?;
                }
                Frame::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Reads frames, answering pings, until the client closes; answers the close and returns
    /// its code.
    fn until_close(&mut self) -> Option<u16> {
        loop {
            match self.read_frame() {
                Ok(Frame::Ping(p)) => {
                    self.pings += 1;
                    let _ = self.send_frame(0xA, &p);
                }
                Ok(Frame::Close(code)) => {
                    let _ = self.send_frame(0x8, &code.unwrap_or(1000).to_be_bytes());
                    return code;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

/// Accepts one TCP connection within [`PATIENCE`].
fn accept(l: &TcpListener) -> (TcpStream, Instant) {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                let at = Instant::now();
                s.set_nonblocking(false).unwrap();
                return (s, at);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection came");
                thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", l.local_addr().unwrap().port());
    (l, url)
}

// ---------------------------------------------------------------------------------------------
// Running the I/O loop
// ---------------------------------------------------------------------------------------------

fn trade(id: u64) -> String {
    format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":{id},"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}}}"#
    )
}

fn trade_id(ev: &Event) -> Option<u64> {
    match ev.kind {
        EventKind::Trade(t) => Some(t.trade_id),
        _ => None,
    }
}

/// What the I/O thread pushes when a (Binance spot) connection opens.
fn up(conn_id: u32) -> EventKind {
    EventKind::ConnectionUp(Connection {
        conn_id,
        venue: Some(engine::venue::Venue::Binance),
    })
}

fn down(conn_id: u32) -> EventKind {
    EventKind::ConnectionDown(Connection {
        conn_id,
        venue: Some(engine::venue::Venue::Binance),
    })
}

fn config(url: &str, subscribe: &[&str]) -> IoConfig {
    IoConfig {
        feeds: vec![FeedSpec {
            conn_id: 7,
            url: url.to_string(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            ..FeedSpec::default()
        }],
        reconnect: ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            factor: 2.0,
            jitter: 0.0,
            max_attempts: None,
        },
        ..IoConfig::default()
    }
}

/// An I/O thread under test, with the consumer end of its ring and its notices.
struct Run {
    stop: Arc<AtomicBool>,
    io: Option<JoinHandle<IoReport>>,
    events: Consumer<Event>,
    notices: mpsc::Receiver<(Instant, IoNotice)>,
    seen: Vec<(Instant, IoNotice)>,
    shared: Arc<IoShared>,
}

impl Run {
    fn start(cfg: IoConfig, recorder: Option<RecorderTx>) -> Run {
        Self::start_with_ring(cfg, recorder, 4096)
    }

    fn start_with_ring(cfg: IoConfig, recorder: Option<RecorderTx>, ring: usize) -> Run {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap();
        let decoder = BinanceDecoder::new(symbols);
        let (tx, events) = event_ring(ring, OnFull::Drop);
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(IoShared::new(cfg.feeds.len()));
        let (ntx, notices) = mpsc::channel();
        let io = {
            let (stop, shared) = (stop.clone(), shared.clone());
            thread::spawn(move || {
                let mut on_notice = |n: IoNotice| {
                    let _ = ntx.send((Instant::now(), n));
                };
                IoLoop::new(cfg, decoder, tx, MonoClock::now)
                    .recorder(recorder)
                    .run(&shared, &stop, &mut on_notice)
            })
        };
        Run {
            stop,
            io: Some(io),
            events,
            notices,
            seen: Vec::new(),
            shared,
        }
    }

    /// The next event of the ring, within [`PATIENCE`].
    fn next_event(&mut self) -> (Instant, Event) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(ev) = self.events.pop() {
                return (Instant::now(), ev);
            }
            assert!(
                Instant::now() < deadline,
                "no event; notices so far: {:?}",
                self.seen
            );
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// No event arrives for `d`.
    fn assert_quiet_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Ok(ev) = self.events.pop() {
                panic!("unexpected event {ev:?}; notices: {:?}", self.seen);
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits (within [`PATIENCE`]) for a notice matching `f`, keeping every notice seen.
    fn wait_notice(&mut self, f: impl Fn(&IoNotice) -> bool) -> (Instant, IoNotice) {
        if let Some(n) = self.seen.iter().find(|(_, n)| f(n)) {
            return n.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.notices.recv_timeout(left) {
                Ok(n) => {
                    self.seen.push(n.clone());
                    if f(&n.1) {
                        return n;
                    }
                }
                Err(_) => panic!("notice not seen; notices: {:?}", self.seen),
            }
        }
    }

    /// Stops the loop and returns its report, the events left in the ring and every notice.
    fn stop(mut self) -> (IoReport, Vec<Event>, Vec<IoNotice>) {
        let t0 = Instant::now();
        self.stop.store(true, Ordering::Release);
        let report = self
            .io
            .take()
            .unwrap()
            .join()
            .expect("the I/O thread panicked");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "stop took {:?}",
            t0.elapsed()
        );
        assert!(!self.shared.is_running());
        let rest = std::iter::from_fn(|| self.events.pop().ok()).collect();
        self.seen.extend(self.notices.try_iter());
        let notices = self.seen.drain(..).map(|(_, n)| n).collect();
        (report, rest, notices)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_websocket_test_server_computes_the_rfc_6455_accept_key() {
    let _serial = shared_test();
    assert_eq!(
        ws_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(base64(b"ab"), "YWI=");
}

#[test]
fn frames_arrive_decoded_and_in_order_after_connection_up_and_stop_closes_politely() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        let sub = p.next_text().expect("SUBSCRIBE");
        p.send_text(r#"{"result":null,"id":1}"#);
        for id in 1..=200 {
            p.send_text(&trade(id));
        }
        (sub, p.until_close())
    });
    let mut run = Run::start(config(&url, &["btcusdt@trade"]), None);
    let (_, first) = run.next_event();
    assert_eq!(first.kind, up(7));
    let ids: Vec<u64> = (0..200)
        .map(|_| {
            let (_, ev) = run.next_event();
            assert!(ev.recv_ns >= first.recv_ns);
            trade_id(&ev).unwrap_or_else(|| panic!("not a trade: {ev:?}"))
        })
        .collect();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>());
    run.wait_notice(|n| matches!(n, IoNotice::Connected { conn_id: 7 }));
    let deadline = Instant::now() + PATIENCE;
    while run.shared.state(0) != Some(LinkState::Open) {
        assert!(
            Instant::now() < deadline,
            "published within a millisecond or so"
        );
        thread::sleep(Duration::from_millis(1));
    }

    let (report, rest, notices) = run.stop();
    let (sub, close_code) = server.join().unwrap();
    let sub: serde_json::Value = serde_json::from_str(&sub).unwrap();
    assert_eq!(sub["method"], "SUBSCRIBE");
    assert_eq!(sub["params"], serde_json::json!(["btcusdt@trade"]));
    assert!(sub["id"].is_u64());
    assert_eq!(close_code, Some(1000), "a close handshake at stop");
    assert_eq!(rest.iter().map(|e| e.kind).collect::<Vec<_>>(), [down(7)]);
    assert!(notices.contains(&IoNotice::Disconnected {
        conn_id: 7,
        reason: "stopped".into()
    }));
    assert_eq!(report.end, IoEnd::Stopped);
    let c = report.totals;
    assert_eq!((c.frames, c.events, c.ignored), (201, 200, 1), "{c:?}");
    assert_eq!((c.decode_errors, c.connects, c.disconnects), (0, 1, 0));
    assert_eq!(c.error_responses, 0, "a `result` reply is no error");
    assert_eq!(report.ring.dropped, 0);
    assert_eq!(report.connections[0].state, LinkState::Open);
    assert_eq!(run_totals_frames(&report), 201);
}

fn run_totals_frames(r: &IoReport) -> u64 {
    r.connections.iter().map(|c| c.counters.frames).sum()
}

#[test]
fn a_dropped_connection_goes_down_reconnects_after_the_backoff_and_subscribes_again() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        let sub1 = p.next_text().expect("first SUBSCRIBE");
        p.send_text(&trade(1));
        thread::sleep(Duration::from_millis(50));
        drop(p); // TCP close, no close frame
        let dropped_at = Instant::now();
        let (s, accepted_at) = accept(&l);
        let mut p = Peer::upgrade(s);
        let sub2 = p.next_text().expect("SUBSCRIBE after the reconnect");
        p.send_text(&trade(2));
        let code = p.until_close();
        (sub1, sub2, accepted_at - dropped_at, code)
    });
    let mut cfg = config(&url, &["btcusdt@trade", "btcusdt@depth@100ms"]);
    cfg.reconnect.initial = Duration::from_millis(300);
    cfg.reconnect.jitter = 0.1;
    let mut run = Run::start(cfg, None);
    let kinds: Vec<_> = (0..5).map(|_| run.next_event().1).collect();
    assert_eq!(kinds[0].kind, up(7));
    assert_eq!(trade_id(&kinds[1]), Some(1));
    assert_eq!(kinds[2].kind, down(7));
    assert_eq!(kinds[3].kind, up(7));
    assert_eq!(trade_id(&kinds[4]), Some(2));
    let down_to_up = Duration::from_nanos(kinds[3].recv_ns - kinds[2].recv_ns);
    assert!(
        down_to_up >= Duration::from_millis(260) && down_to_up < Duration::from_secs(3),
        "{down_to_up:?}"
    );
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::Reconnecting { .. }));
    match n {
        IoNotice::Reconnecting {
            conn_id: 7,
            attempt: 1,
            delay,
        } => assert!(
            (270..=330).contains(&delay.as_millis()),
            "300 ms +-10 %: {delay:?}"
        ),
        n => panic!("{n:?}"),
    }
    run.wait_notice(|n| matches!(n, IoNotice::Disconnected { conn_id: 7, .. }));
    let (report, _, _) = run.stop();
    let (sub1, sub2, gap, code) = server.join().unwrap();
    assert!(gap >= Duration::from_millis(260), "{gap:?}");
    assert_eq!(code, Some(1000));
    let (s1, s2): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&sub1).unwrap(),
        serde_json::from_str(&sub2).unwrap(),
    );
    assert_eq!(s1["params"], s2["params"]);
    assert_eq!(
        s1["params"],
        serde_json::json!(["btcusdt@trade", "btcusdt@depth@100ms"])
    );
    let c = report.totals;
    assert_eq!(
        (c.connects, c.disconnects, c.reconnect_attempts),
        (2, 1, 1),
        "{c:?}"
    );
}

#[test]
fn a_flapping_server_is_retried_with_growing_delays() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut accepted = Vec::new();
        for _ in 0..4 {
            let (s, at) = accept(&l);
            accepted.push(at);
            let p = Peer::upgrade(s);
            drop(p); // open, then gone before any frame: no reset of the backoff
        }
        let mut p = Peer::upgrade(accept(&l).0);
        p.send_text(&trade(9));
        p.until_close();
        accepted
    });
    let mut run = Run::start(config(&url, &[]), None);
    let mut ups = 0;
    while ups < 5 {
        if run.next_event().1.kind == up(7) {
            ups += 1;
        }
    }
    let (_, ev) = run.next_event();
    assert_eq!(trade_id(&ev), Some(9));
    let (report, _, notices) = run.stop();
    let accepted = server.join().unwrap();
    // Jitter 0: exactly 100, 200, 400 ms (plus the time to notice the drop).
    let delays: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            IoNotice::Reconnecting { attempt, delay, .. } => Some((*attempt, delay.as_millis())),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [(1, 100), (2, 200), (3, 400), (4, 800)]);
    for (i, w) in accepted.windows(2).enumerate() {
        let gap = w[1] - w[0];
        let want = Duration::from_millis(100 << i);
        assert!(
            gap >= want.mul_f64(0.9) && gap < want + Duration::from_millis(700),
            "gap {i}: {gap:?}, want about {want:?}"
        );
    }
    assert_eq!(report.totals.connects, 5);
    assert_eq!(report.totals.disconnects, 4);
    assert_eq!(report.totals.reconnect_attempts, 4);
}

#[test]
fn a_stalled_server_is_caught_by_the_idle_timeout_and_reconnected() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        p.send_text(&trade(1));
        // Stall: keep the socket open, read nothing, send nothing.
        let (s, _) = accept(&l);
        drop(p);
        let mut p = Peer::upgrade(s);
        p.send_text(&trade(2));
        p.until_close()
    });
    let mut cfg = config(&url, &[]);
    cfg.idle_timeout = Duration::from_millis(300);
    cfg.heartbeat = Duration::from_millis(100);
    let mut run = Run::start(cfg, None);
    assert_eq!(run.next_event().1.kind, up(7));
    let (_, t1) = run.next_event();
    assert_eq!(trade_id(&t1), Some(1));
    let (_, d) = run.next_event();
    assert_eq!(d.kind, down(7));
    let silence = Duration::from_nanos(d.recv_ns - t1.recv_ns);
    assert!(
        silence >= Duration::from_millis(290) && silence < Duration::from_secs(3),
        "{silence:?}"
    );
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::Disconnected { .. }));
    assert!(format!("{n:?}").contains("idle"), "{n:?}");
    assert_eq!(run.next_event().1.kind, up(7));
    assert_eq!(trade_id(&run.next_event().1), Some(2));
    let (report, _, _) = run.stop();
    assert_eq!(server.join().unwrap(), Some(1000));
    let c = report.totals;
    assert_eq!(c.idle_timeouts, 1, "{c:?}");
    assert!(c.heartbeats_sent >= 2, "{c:?}");
    assert_eq!(c.connects, 2);
}

#[test]
fn pongs_keep_a_quiet_connection_alive() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        let code = p.until_close(); // answering every ping meanwhile
        (p.pings, code)
    });
    let mut cfg = config(&url, &[]);
    cfg.idle_timeout = Duration::from_millis(300);
    cfg.heartbeat = Duration::from_millis(100);
    let mut run = Run::start(cfg, None);
    assert_eq!(run.next_event().1.kind, up(7));
    run.assert_quiet_for(Duration::from_millis(1000));
    let (report, rest, _) = run.stop();
    assert_eq!(rest.iter().map(|e| e.kind).collect::<Vec<_>>(), [down(7)]);
    let (pings, code) = server.join().unwrap();
    assert!(pings >= 5, "{pings}");
    assert_eq!(code, Some(1000));
    let c = report.totals;
    assert_eq!(
        (c.idle_timeouts, c.disconnects, c.connects),
        (0, 0, 1),
        "{c:?}"
    );
    assert!(c.pongs >= 5 && c.heartbeats_sent >= c.pongs, "{c:?}");
}

#[test]
fn garbage_frames_are_counted_and_the_connection_stays_up() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        p.send_text(&trade(1));
        p.send_text("this is not json");
        p.send_text(r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":17"#);
        p.send_frame(0x2, &[0xff, 0x00, 0x13]).unwrap();
        p.send_text(&trade(2));
        p.until_close()
    });
    let mut run = Run::start(config(&url, &[]), None);
    assert_eq!(run.next_event().1.kind, up(7));
    assert_eq!(trade_id(&run.next_event().1), Some(1));
    assert_eq!(trade_id(&run.next_event().1), Some(2));
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::DecodeError { count: 3, .. }));
    assert!(format!("{n}").contains("conn 7"), "{n}");
    let (report, rest, notices) = run.stop();
    assert_eq!(server.join().unwrap(), Some(1000));
    assert_eq!(rest.iter().map(|e| e.kind).collect::<Vec<_>>(), [down(7)]);
    let c = report.totals;
    assert_eq!((c.frames, c.decode_errors, c.events), (5, 3, 2), "{c:?}");
    assert_eq!((c.disconnects, c.connects), (0, 1));
    assert_eq!(report.decode.decode_errors, 3);
    assert_eq!(
        notices
            .iter()
            .filter(|n| matches!(n, IoNotice::DecodeError { .. }))
            .count(),
        3
    );
}

#[test]
fn a_refused_port_is_retried_with_backoff_and_can_be_given_up() {
    let _serial = shared_test();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connecting is refused
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut cfg = config(&url, &["btcusdt@trade"]);
    cfg.reconnect.initial = Duration::from_millis(20);
    cfg.reconnect.max = Duration::from_millis(80);
    let mut run = Run::start(cfg.clone(), None);
    run.wait_notice(|n| matches!(n, IoNotice::Reconnecting { attempt: 5, .. }));
    assert_eq!(
        run.shared.state(0).map(|s| s != LinkState::Open),
        Some(true)
    );
    let (report, rest, notices) = run.stop();
    assert!(
        rest.is_empty(),
        "nothing opened, nothing to report: {rest:?}"
    );
    let failed: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            IoNotice::ConnectFailed { conn_id: 7, error } => Some(error.clone()),
            _ => None,
        })
        .collect();
    assert!(failed.len() >= 5, "{notices:?}");
    assert!(failed[0].contains(&port.to_string()), "{}", failed[0]);
    let delays: Vec<_> = notices
        .iter()
        .filter_map(|n| match n {
            IoNotice::Reconnecting { delay, .. } => Some(delay.as_millis()),
            _ => None,
        })
        .take(5)
        .collect();
    assert_eq!(delays, [20, 40, 80, 80, 80]);
    let c = report.totals;
    assert_eq!(c.connects, 0);
    assert!(c.connect_failures >= 5 && c.connect_errors >= 5, "{c:?}");

    // With a limit, the connection is given up and the loop keeps running until stopped.
    cfg.reconnect.max_attempts = Some(2);
    let mut run = Run::start(cfg, None);
    run.wait_notice(|n| matches!(n, IoNotice::GaveUp { conn_id: 7, .. }));
    let deadline = Instant::now() + PATIENCE;
    while run.shared.state(0) != Some(LinkState::Dead) {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(1));
    }
    assert!(run.shared.is_running());
    let (report, _, _) = run.stop();
    assert_eq!(
        report.totals.connect_failures, 3,
        "first try and two retries"
    );
    assert_eq!(report.connections[0].state, LinkState::Dead);
}

#[test]
fn a_bad_url_is_given_up_at_once() {
    let _serial = shared_test();
    let mut run = Run::start(config("http://127.0.0.1:1/ws", &[]), None);
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::GaveUp { .. }));
    assert!(format!("{n}").contains("http://127.0.0.1:1/ws"), "{n}");
    let (report, rest, _) = run.stop();
    assert!(rest.is_empty());
    assert_eq!(report.connections[0].state, LinkState::Dead);
}

#[test]
fn a_full_ring_drops_counts_and_reports_a_gap() {
    let _serial = shared_test();
    let (l, url) = listener();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        for id in 1..=50 {
            p.send_text(&trade(id));
        }
        go_rx.recv().unwrap();
        p.send_text(&trade(51));
        p.until_close()
    });
    let mut run = Run::start_with_ring(config(&url, &[]), None, 16);
    // Do not read until all 50 frames went through the I/O thread.
    let deadline = Instant::now() + PATIENCE;
    while run.shared.counters(0).unwrap().frames < 50 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(2));
    }
    let first: Vec<_> = (0..16).map(|_| run.next_event().1).collect();
    assert_eq!(first[0].kind, up(7));
    assert_eq!(
        first[1..].iter().filter_map(trade_id).collect::<Vec<_>>(),
        (1..=15).collect::<Vec<_>>()
    );
    go_tx.send(()).unwrap();
    let (_, gap) = run.next_event();
    match gap.kind {
        EventKind::Gap(g) => assert_eq!(g.lost, 35),
        k => panic!("{k:?}"),
    }
    assert_eq!(trade_id(&run.next_event().1), Some(51));
    let (report, _, _) = run.stop();
    assert_eq!(server.join().unwrap(), Some(1000));
    assert_eq!((report.ring.dropped, report.ring.gaps_reported), (35, 1));
}

#[test]
fn recording_while_receiving_writes_a_capture_with_the_same_frames() {
    let _serial = shared_test();
    let path = TempFile(
        std::env::temp_dir().join(format!("tickline-io-thread-{}.tlc", std::process::id())),
    );
    let (l, url) = listener();
    let sent: Vec<String> = std::iter::once(r#"{"result":null,"id":1}"#.to_string())
        .chain((1..=100).map(trade))
        .chain(std::iter::once("garbage".to_string()))
        .collect();
    let server = {
        let sent = sent.clone();
        thread::spawn(move || {
            let mut p = Peer::upgrade(accept(&l).0);
            let sub = p.next_text().expect("SUBSCRIBE");
            for f in &sent {
                p.send_text(f);
            }
            p.until_close();
            sub
        })
    };
    let (rec_tx, rec_rx) = recorder(1 << 20);
    let writer_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let file = std::io::BufWriter::new(std::fs::File::create(&path.0).unwrap());
        let stop = writer_stop.clone();
        thread::spawn(move || run_writer(rec_rx, CaptureWriter::new(file).unwrap(), &stop))
    };
    let mut run = Run::start(config(&url, &["btcusdt@trade"]), Some(rec_tx));
    assert_eq!(run.next_event().1.kind, up(7));
    let trades: Vec<Event> = (0..100).map(|_| run.next_event().1).collect();
    run.wait_notice(|n| matches!(n, IoNotice::DecodeError { .. }));
    let (report, _, _) = run.stop();
    let sub = server.join().unwrap();
    writer_stop.store(true, Ordering::Release);
    let wstats = writer.join().unwrap().unwrap();
    let rec = report.recorder.unwrap();
    assert_eq!((rec.dropped, rec.rejected), (0, 0));
    assert_eq!(wstats.records, rec.records);

    let cap = TicklineCapture::open(&path.0).unwrap();
    let recs: Vec<_> = cap.iter().map(|r| r.unwrap()).collect();
    assert!(recs.iter().all(|r| r.conn_id == 7));
    assert_eq!(recs.len(), 2 + sent.len() + 1, "{recs:?}");
    assert_eq!(recs[0].kind, RecordKind::Connect);
    assert_eq!(recs[0].payload, url.as_bytes());
    assert_eq!(recs[1].kind, RecordKind::Subscribe);
    assert_eq!(recs[1].payload, sub.as_bytes());
    let frames = &recs[2..2 + sent.len()];
    for (r, s) in frames.iter().zip(&sent) {
        assert_eq!(r.kind, RecordKind::TextFrame);
        assert_eq!(r.payload, s.as_bytes());
    }
    assert!(frames.windows(2).all(|w| w[0].recv_ns <= w[1].recv_ns));
    // The events carry the very stamps the frames were recorded with.
    for (ev, r) in trades.iter().zip(&frames[1..]) {
        assert_eq!(ev.recv_ns, r.recv_ns);
    }
    let last = recs.last().unwrap();
    assert_eq!(
        (last.kind, last.payload),
        (RecordKind::Disconnect, &b"stopped"[..])
    );
}

#[test]
fn a_handshake_that_never_completes_hits_the_connect_timeout_and_is_retried() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        // Accept TCP, never answer the upgrade request.
        let (first, _) = accept(&l);
        let (second, _) = accept(&l);
        drop((first, second));
    });
    let mut cfg = config(&url, &[]);
    cfg.connect_timeout = Duration::from_millis(200);
    let mut run = Run::start(cfg, None);
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::ConnectFailed { .. }));
    assert!(format!("{n}").contains("connect timeout"), "{n}");
    server.join().unwrap(); // the retry came
    let (report, rest, _) = run.stop();
    assert!(rest.is_empty(), "{rest:?}");
    let c = report.totals;
    assert!(
        c.connect_timeouts >= 1 && c.reconnect_attempts >= 1,
        "{c:?}"
    );
    assert_eq!(c.connects, 0);
}

#[test]
fn a_tls_failure_is_reported_with_its_message_and_retried() {
    let _serial = shared_test();
    // `wss://` to a server that answers the TLS ClientHello with plain HTTP.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://127.0.0.1:{}/ws", l.local_addr().unwrap().port());
    let server = thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = accept(&l);
            let mut hello = [0u8; 5];
            let _ = s.read(&mut hello);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let mut run = Run::start(config(&url, &[]), None);
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::ConnectFailed { .. }));
    assert!(format!("{n}").contains("TLS"), "{n}");
    run.wait_notice(|n| matches!(n, IoNotice::Reconnecting { attempt: 2, .. }));
    server.join().unwrap();
    let (report, rest, _) = run.stop();
    assert!(rest.is_empty(), "{rest:?}");
    let c = report.totals;
    assert!(c.tls_errors >= 2, "{c:?}");
    assert_eq!(c.connects, 0);
}

#[test]
fn an_error_reply_of_the_venue_is_reported() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        p.next_text().expect("SUBSCRIBE");
        p.send_text(r#"{"error":{"code":2,"msg":"Invalid request: unknown stream"},"id":1}"#);
        p.until_close()
    });
    let mut run = Run::start(config(&url, &["nosuch@stream"]), None);
    let (_, n) = run.wait_notice(|n| matches!(n, IoNotice::VenueError { .. }));
    assert!(format!("{n}").contains("unknown stream"), "{n}");
    let (report, _, _) = run.stop();
    assert_eq!(server.join().unwrap(), Some(1000));
    let c = report.totals;
    assert_eq!((c.ignored, c.error_responses, c.disconnects), (1, 1, 0));
}

#[test]
fn a_frame_from_a_connection_that_does_not_last_does_not_reset_the_backoff() {
    let _serial = shared_test();
    for (stable_after, want) in [
        (Duration::from_secs(1), [1, 2, 3]),
        (Duration::ZERO, [1, 1, 1]),
    ] {
        let (l, url) = listener();
        let server = thread::spawn(move || {
            for id in 1..=3 {
                let mut p = Peer::upgrade(accept(&l).0);
                p.send_text(&trade(id));
                thread::sleep(Duration::from_millis(20));
            }
            let mut p = Peer::upgrade(accept(&l).0);
            p.until_close()
        });
        let mut cfg = config(&url, &[]);
        cfg.reconnect.initial = Duration::from_millis(20);
        cfg.stable_after = stable_after;
        let mut run = Run::start(cfg, None);
        let mut ups = 0;
        while ups < 4 {
            if run.next_event().1.kind == up(7) {
                ups += 1;
            }
        }
        let (_, _, notices) = run.stop();
        assert_eq!(server.join().unwrap(), Some(1000));
        let attempts: Vec<u32> = notices
            .iter()
            .filter_map(|n| match n {
                IoNotice::Reconnecting { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect();
        assert_eq!(attempts, want, "stable_after {stable_after:?}");
    }
}

#[test]
fn the_frame_path_does_not_allocate() {
    let _alone = ALLOC_COUNTING.write().unwrap_or_else(|e| e.into_inner());
    const N: u64 = 20_000;
    let (l, url) = listener();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        p.send_text(&trade(0));
        // Encoded up front, written in one go: the server allocates nothing while counted.
        let mut burst = Vec::new();
        for id in 1..=N {
            let t = trade(id);
            burst.extend_from_slice(&[0x81, 126]);
            burst.extend_from_slice(&(t.len() as u16).to_be_bytes());
            burst.extend_from_slice(t.as_bytes());
        }
        go_rx.recv().unwrap();
        p.s.write_all(&burst).unwrap();
        p.until_close()
    });
    let path = TempFile(std::env::temp_dir().join(format!(
        "tickline-io-thread-alloc-{}.tlc",
        std::process::id()
    )));
    let (rec_tx, rec_rx) = recorder(8 << 20);
    let writer_stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let file = std::io::BufWriter::new(std::fs::File::create(&path.0).unwrap());
        let stop = writer_stop.clone();
        thread::spawn(move || run_writer(rec_rx, CaptureWriter::new(file).unwrap(), &stop))
    };
    let mut cfg = config(&url, &[]);
    cfg.heartbeat = Duration::ZERO;
    let mut run = Run::start_with_ring(cfg, Some(rec_tx), 1 << 16);
    assert_eq!(run.next_event().1.kind, up(7));
    assert_eq!(trade_id(&run.next_event().1), Some(0));
    thread::sleep(Duration::from_millis(50)); // let every thread settle
    let before = tools::alloc::allocations();
    go_tx.send(()).unwrap();
    let mut n = 0;
    let deadline = Instant::now() + PATIENCE;
    while n < N {
        match run.events.pop() {
            Ok(ev) => {
                n += 1;
                assert_eq!(trade_id(&ev), Some(n));
            }
            Err(_) => assert!(Instant::now() < deadline, "{n} of {N} events"),
        }
    }
    let allocs = tools::alloc::allocations() - before;
    let (report, _, _) = run.stop();
    server.join().unwrap();
    writer_stop.store(true, Ordering::Release);
    let wstats = writer.join().unwrap().unwrap();
    assert_eq!(
        wstats.records,
        1 + 1 + N + 1,
        "Connect, frame 0, the burst, Disconnect"
    );
    assert_eq!(report.ring.dropped, 0);
    // Socket, TLS-free WebSocket decoding, stamping, recording, decoding, the ring and the
    // capture writer: a few allocations at most while buffers settle, none per frame.
    assert!(allocs < N / 1000, "{allocs} allocations for {N} frames");
}

#[test]
fn busy_polling_delivers_the_same_and_still_stops_promptly() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        for id in 1..=20 {
            p.send_text(&trade(id));
        }
        p.until_close()
    });
    let mut cfg = config(&url, &[]);
    cfg.spin = true;
    let mut run = Run::start(cfg, None);
    assert_eq!(run.next_event().1.kind, up(7));
    let ids: Vec<_> = (0..20)
        .filter_map(|_| trade_id(&run.next_event().1))
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    let (report, _, _) = run.stop();
    assert_eq!(server.join().unwrap(), Some(1000));
    assert_eq!(report.totals.events, 20);
}

#[test]
fn the_loop_ends_when_the_core_drops_its_ring() {
    let _serial = shared_test();
    let (l, url) = listener();
    let server = thread::spawn(move || {
        let mut p = Peer::upgrade(accept(&l).0);
        for id in 1..=5 {
            p.send_text(&trade(id));
        }
        p.until_close()
    });
    let mut run = Run::start_with_ring(config(&url, &[]), None, 1024); // never full
    assert_eq!(run.next_event().1.kind, up(7));
    for id in 1..=5 {
        assert_eq!(trade_id(&run.next_event().1), Some(id));
    }
    let (dead_tx, events) = event_ring(2, OnFull::Drop);
    drop(dead_tx);
    drop(std::mem::replace(&mut run.events, events)); // the core is gone
    let io = run.io.take().unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !io.is_finished() {
        assert!(Instant::now() < deadline, "the loop did not notice");
        thread::sleep(Duration::from_millis(1));
    }
    let report = io.join().unwrap();
    assert_eq!(report.end, IoEnd::CoreGone);
    assert_eq!(
        server.join().unwrap(),
        Some(1000),
        "closed politely all the same"
    );
}
