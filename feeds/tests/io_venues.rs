//! The I/O loop on a venue adapter, over a real socket on 127.0.0.1 with a small tungstenite
//! server: a venue whose heartbeat is a text frame (`Heartbeat::Text`, like OKX's `ping`) gets
//! its text pings instead of WebSocket pings, its text `pong`s keep the link alive past the idle
//! timeout (and a server that does not answer is timed out), and subscriptions, run-time
//! subscribes and resubscriptions (the `BookSync::WsSnapshot` resync) are the adapter's frames.
//!
//! The adapter is a test double of an OKX-style protocol (`{"op":"subscribe","args":[..]}`,
//! text `ping`) over the Binance spot venue and decoder, so only the loop's venue plumbing is
//! under test here; each venue's own frames are tested with its adapter. Every wait has a
//! deadline.

use engine::ring::{event_ring, OnFull};
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::binance::market::BinanceDecoder;
use feeds::io::{
    command_channel, FeedSpec, IoCommand, IoConfig, IoLoop, IoNotice, IoReport, IoShared,
    ReconnectPolicy,
};
use feeds::venue::{Adapter, AnyDecoder, BookSync, Heartbeat, StreamKind};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::Message;

/// Upper bound for anything a test waits for.
const PATIENCE: Duration = Duration::from_secs(10);

fn now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// An OKX-style protocol on the Binance venue: `{"op":"subscribe","args":[...]}` and a text
/// `ping` heartbeat; stream names must not be empty.
struct TextPingVenue;

static TEXT_PING: TextPingVenue = TextPingVenue;

fn op(op: &str, streams: &[String]) -> Result<Vec<String>, String> {
    if let Some(bad) = streams.iter().find(|s| s.is_empty()) {
        return Err(format!("bad stream {bad:?}"));
    }
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let args: Vec<String> = streams.iter().map(|s| format!("\"{s}\"")).collect();
    Ok(vec![format!(
        r#"{{"op":"{op}","args":[{}]}}"#,
        args.join(",")
    )])
}

impl Adapter for TextPingVenue {
    fn venue(&self) -> Venue {
        Venue::Binance
    }
    fn ws_url(&self) -> &'static str {
        "ws://127.0.0.1:1"
    }
    fn rest_url(&self) -> Option<&'static str> {
        None
    }
    fn snapshot_url(&self, _: &str, _: &str, _: u32) -> Option<String> {
        None
    }
    fn stream(&self, _: StreamKind, symbol: &str) -> Option<String> {
        Some(format!("books:{symbol}"))
    }
    fn subscribe(&self, streams: &[String], _id: u64) -> Result<Vec<String>, String> {
        op("subscribe", streams)
    }
    fn unsubscribe(&self, streams: &[String], _id: u64) -> Result<Vec<String>, String> {
        op("unsubscribe", streams)
    }
    fn heartbeat(&self) -> Heartbeat {
        Heartbeat::Text("ping")
    }
    fn book_sync(&self) -> BookSync {
        BookSync::WsSnapshot
    }
    fn decoder(&self, symbols: SymbolTable) -> AnyDecoder {
        BinanceDecoder::new(symbols).into()
    }
}

fn text_ping_adapter(v: Venue) -> Option<&'static dyn Adapter> {
    (v == Venue::Binance).then_some(&TEXT_PING as &dyn Adapter)
}

/// What the server saw of one connection.
#[derive(Debug, Default)]
struct Seen {
    texts: Vec<String>,
    ws_pings: usize,
}

/// A tungstenite server on 127.0.0.1 that accepts connections until `stop`, records each one's
/// text frames (sent on `texts` as they come) and, with `answer`, replies `pong` to `ping`.
fn server(
    answer: bool,
    stop: Arc<AtomicBool>,
) -> (
    String,
    mpsc::Receiver<String>,
    thread::JoinHandle<Vec<Seen>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", l.local_addr().unwrap());
    l.set_nonblocking(true).unwrap();
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let deadline = Instant::now() + PATIENCE;
        let mut conns = Vec::new();
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let s = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                }
                Err(e) => panic!("accept: {e}"),
            };
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut ws = tungstenite::accept(s).expect("WebSocket handshake");
            let mut seen = Seen::default();
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        let t = t.as_str().to_string();
                        if answer && t == "ping" {
                            ws.send(Message::text("pong")).unwrap();
                        }
                        let _ = tx.send(t.clone());
                        seen.texts.push(t);
                    }
                    Ok(Message::Ping(_)) => seen.ws_pings += 1,
                    Ok(_) => {}
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break, // closed by the client (an idle timeout, or the stop)
                }
            }
            conns.push(seen);
        }
        conns
    });
    (url, rx, h)
}

fn config(url: &str, subscribe: &[&str], idle_ms: u64) -> IoConfig {
    IoConfig {
        feeds: vec![FeedSpec {
            conn_id: 3,
            url: url.to_string(),
            subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
            venue: Venue::Binance,
        }],
        reconnect: ReconnectPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            ..ReconnectPolicy::default()
        },
        heartbeat: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(idle_ms),
        ..IoConfig::default()
    }
}

/// Waits for the server to see `want` (in order among what it sees); returns what it saw.
fn wait_texts(rx: &mpsc::Receiver<String>, want: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut got = Vec::new();
    let mut i = 0;
    while i < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let t = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("waited for {:?}; the server saw {got:?}", want[i]));
        if t == want[i] {
            i += 1;
        }
        got.push(t);
    }
    got
}

struct Run {
    stop: Arc<AtomicBool>,
    io: thread::JoinHandle<IoReport>,
    notices: mpsc::Receiver<IoNotice>,
}

fn start(cfg: IoConfig, commands: Option<feeds::io::IoCommandRx>) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let (ntx, notices) = mpsc::channel();
    let io = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (tx, _rx) = event_ring(1024, OnFull::Drop);
            let shared = IoShared::new(cfg.feeds.len());
            let mut symbols = SymbolTable::new();
            symbols.intern("BTCUSDT").unwrap();
            IoLoop::new(cfg, BinanceDecoder::new(symbols), tx, now)
                .adapters(text_ping_adapter)
                .commands(commands)
                .run(&shared, &stop, &mut |n| {
                    let _ = ntx.send(n);
                })
        })
    };
    Run { stop, io, notices }
}

impl Run {
    fn stop(self) -> (IoReport, Vec<IoNotice>) {
        self.stop.store(true, Ordering::Relaxed);
        let r = self.io.join().unwrap();
        (r, self.notices.try_iter().collect())
    }
}

#[test]
fn a_text_heartbeat_venue_gets_text_pings_and_its_text_pongs_keep_the_link_alive() {
    let server_stop = Arc::new(AtomicBool::new(false));
    let (url, texts, srv) = server(true, server_stop.clone());
    let (cmd_tx, cmd_rx) = command_channel(8);
    // Idle after 350 ms without a frame: only the pongs arrive, and 8 pings take 800 ms.
    let run = start(config(&url, &["books:BTC-USDT"], 350), Some(cmd_rx));
    let mut want = vec![r#"{"op":"subscribe","args":["books:BTC-USDT"]}"#];
    want.extend(["ping"; 8]);
    wait_texts(&texts, &want);
    // Run-time changes and the WebSocket-snapshot resync go through the adapter too.
    cmd_tx
        .send(IoCommand::Subscribe {
            conn_id: 3,
            streams: vec!["trades:BTC-USDT".into()],
        })
        .unwrap();
    cmd_tx
        .send(IoCommand::Resubscribe {
            venue: Venue::Binance,
            streams: vec!["books:BTC-USDT".into(), "books:ETH-USDT".into()],
        })
        .unwrap();
    cmd_tx
        .send(IoCommand::Subscribe {
            conn_id: 3,
            streams: vec![String::new()],
        })
        .unwrap();
    wait_texts(
        &texts,
        &[
            r#"{"op":"subscribe","args":["trades:BTC-USDT"]}"#,
            r#"{"op":"unsubscribe","args":["books:BTC-USDT"]}"#,
            r#"{"op":"subscribe","args":["books:BTC-USDT"]}"#,
        ],
    );
    let (report, notices) = run.stop();
    server_stop.store(true, Ordering::Relaxed);
    let conns = srv.join().unwrap();
    assert_eq!(conns.len(), 1, "one connection all along: {conns:?}");
    assert_eq!(
        conns[0].ws_pings, 0,
        "a text-heartbeat venue gets no WebSocket pings"
    );
    let c = &report.connections[0].counters;
    assert_eq!(
        (c.connects, c.disconnects, c.idle_timeouts),
        (1, 0, 0),
        "{c:?}"
    );
    assert!(c.heartbeats_sent >= 8, "{c:?}");
    assert!(c.frames >= 8, "the pongs arrived as frames: {c:?}");
    assert!(
        notices.iter().any(|n| matches!(
            n,
            IoNotice::CommandRejected { conn_id: 3, reason } if reason.contains("bad stream")
        )),
        "a stream the adapter refuses is rejected: {notices:?}"
    );
}

#[test]
fn a_text_heartbeat_venue_that_never_answers_is_timed_out_and_reconnected() {
    let server_stop = Arc::new(AtomicBool::new(false));
    let (url, texts, srv) = server(false, server_stop.clone());
    let run = start(config(&url, &[], 350), None);
    wait_texts(&texts, &["ping", "ping"]);
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match run.notices.recv_timeout(left) {
            Ok(IoNotice::Disconnected { reason, .. }) if reason.contains("idle timeout") => break,
            Ok(n) => seen.push(n),
            Err(_) => panic!("no idle timeout; notices: {seen:?}"),
        }
    }
    let (report, _) = run.stop();
    server_stop.store(true, Ordering::Relaxed);
    srv.join().unwrap();
    assert!(report.connections[0].counters.idle_timeouts >= 1);
}

#[test]
fn a_feed_of_a_venue_without_an_adapter_or_a_decoder_never_connects_and_says_why() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/ws", l.local_addr().unwrap());
    let mut cfg = config(&url, &[], 1000);
    cfg.feeds.push(FeedSpec {
        conn_id: 4,
        venue: Venue::Okx,
        ..cfg.feeds[0].clone()
    });
    cfg.feeds.push(FeedSpec {
        conn_id: 5,
        subscribe: vec![String::new()],
        ..cfg.feeds[0].clone()
    });
    cfg.feeds[0].conn_id = 6;
    let stop = AtomicBool::new(true); // stopped at once: only the start-up checks run
    let (tx, _rx) = event_ring(16, OnFull::Drop);
    let shared = IoShared::new(cfg.feeds.len());
    let mut notices = Vec::new();
    let mut symbols = SymbolTable::new();
    symbols.intern("BTCUSDT").unwrap();
    let report = IoLoop::new(cfg, BinanceDecoder::new(symbols), tx, now)
        .adapters(text_ping_adapter)
        .run(&shared, &stop, &mut |n| notices.push(n));
    let gave_up = |id: u32| {
        notices.iter().find_map(|n| match n {
            IoNotice::GaveUp { conn_id, reason } if *conn_id == id => Some(reason.clone()),
            _ => None,
        })
    };
    let okx = gave_up(4).expect("the OKX feed gives up");
    assert!(okx.contains("okx") && okx.contains("adapter"), "{okx}");
    let bad = gave_up(5).expect("a refused stream gives up");
    assert!(bad.contains("bad stream"), "{bad}");
    assert_eq!(gave_up(6), None, "the good feed was fine: {notices:?}");
    assert_eq!(report.connections.len(), 3);
    // And with the real adapters: a venue with an adapter but no decoder in the loop.
    let mut cfg = config(&url, &[], 1000);
    cfg.feeds[0].venue = Venue::Binance;
    let mut notices = Vec::new();
    let (tx, _rx) = event_ring(16, OnFull::Drop);
    let okx_decoder_missing = IoLoop::new(
        IoConfig {
            feeds: vec![FeedSpec {
                venue: Venue::Okx,
                ..cfg.feeds[0].clone()
            }],
            ..cfg
        },
        BinanceDecoder::new(SymbolTable::new()),
        tx,
        now,
    )
    .adapters(|_| Some(&TEXT_PING as &dyn Adapter))
    .run(&IoShared::new(1), &stop, &mut |n| notices.push(n));
    assert_eq!(okx_decoder_missing.connections.len(), 1);
    assert!(
        notices.iter().any(|n| matches!(
            n,
            IoNotice::GaveUp { reason, .. } if reason.contains("no decoder")
        )),
        "{notices:?}"
    );
}
