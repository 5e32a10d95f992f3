//! The health endpoint (`[health] listen`) over real loopback sockets, with the live engine
//! running in this process against the venue simulator: ready once feeds, books and the order
//! API are up; a dropped feed named in readiness until it is back; a core thread really blocked
//! (a strategy callback that sleeps) failing liveness until it polls again; trade-only symbols
//! never waiting for a book; malformed, oversized and unknown requests refused. Every wait is
//! bounded.

use engine::event::Trade;
use engine::strategy::{Ctx, Strategy};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tools::config::Config;
use tools::live::{run_live, LiveOptions, StrategyFactory};
use tools::runtime::RunReport;
use venue_sim::{FaultKind, SimConfig, SimPace, SimSource, VenueSim};

/// Upper bound of any single wait.
const T: Duration = Duration::from_secs(20);

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tickline-health-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sim() -> VenueSim {
    VenueSim::start(SimConfig {
        source: SimSource::Generated(venue_sim::gen::GenConfig {
            symbols: vec!["BTCUSDT".into(), "ETHUSDT".into()],
            events: 2_000_000,
            seed: 21,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(2_000),
        ..SimConfig::default()
    })
    .expect("start the venue simulator")
}

/// A strategy that places nothing and, when `stall_ms` is set, blocks the core thread that
/// long in its next trade callback (once).
struct Staller {
    stall_ms: Arc<AtomicU64>,
}

impl Strategy for Staller {
    fn name(&self) -> &'static str {
        "staller"
    }
    fn on_trade(&mut self, _ctx: &mut Ctx<'_>, _t: &Trade) {
        let ms = self.stall_ms.swap(0, Ordering::Relaxed);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms));
        }
    }
}

/// The engine, running in a thread of this process.
struct Engine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<RunReport>>>,
    addr: SocketAddr,
}

impl Engine {
    fn start(cfg_text: &str, port: u16, stall_ms: Arc<AtomicU64>) -> Engine {
        let cfg = Config::parse(cfg_text).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let opts = LiveOptions {
            cfg,
            strategy: None,
            custom_strategy: Some(StrategyFactory(Box::new(move || {
                Box::new(Staller {
                    stall_ms: stall_ms.clone(),
                })
            }))),
            record: None,
            duration: Some(Duration::from_secs(120)),
            status_every: None,
            stop: stop.clone(),
            done: None,
        };
        let thread = std::thread::spawn(move || run_live(opts));
        Engine {
            stop,
            thread: Some(thread),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// Polls `path` until `want` holds for (status, body), failing after [`T`].
    fn wait_for(&self, path: &str, what: &str, want: impl Fn(u16, &Value) -> bool) -> Value {
        let end = Instant::now() + T;
        let mut last = None;
        loop {
            if let Ok((code, body)) = get(self.addr, path) {
                if want(code, &body) {
                    return body;
                }
                last = Some((code, body));
            }
            if self.thread.as_ref().unwrap().is_finished() {
                panic!("the engine ended before {what}; last answer {last:?}");
            }
            assert!(
                Instant::now() < end,
                "no {what} within {T:?}; last answer {last:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stop(mut self) -> RunReport {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends raw bytes and reads the whole answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Status code and body of an HTTP answer; the body must be JSON and its length must match.
fn parse_answer(text: &str) -> (u16, Value) {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head: {text:?}"));
    let code: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head} / {body}"
    );
    (code, serde_json::from_str(body).expect("a JSON body"))
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Value)> {
    let text = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.30\r\n\r\n")
            .as_bytes(),
    )?;
    Ok(parse_answer(&text))
}

fn reasons(body: &Value) -> Vec<String> {
    body["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn config(
    sim: &VenueSim,
    dir: &Path,
    port: u16,
    streams: &str,
    rest_url: &str,
    orders: bool,
) -> String {
    let orders = if orders {
        format!(
            r#"
[orders]
enabled = true
url = "{ws}/ws-api/v3"
credentials_file = "{key}"
journal = "{journal}"
"#,
            ws = sim.ws_url(),
            key = venue_key_file(dir).display(),
            journal = dir.join("orders.tlj").display(),
        )
    } else {
        String::new()
    };
    format!(
        r#"[engine]
io_cpu = -1
core_cpu = -1
idle = "backoff"

[venue]
ws_url = "{ws}"
rest_url = "{rest_url}"
symbols = ["BTCUSDT", "ETHUSDT"]
streams = {streams}
exchange_info = false

[net]
reconnect_initial_ms = 1500
reconnect_max_ms = 3000
reconnect_jitter = 0.0

[control]
enabled = false

[health]
listen = "127.0.0.1:{port}"
live_max_ms = 1000
{orders}"#,
        ws = sim.ws_url(),
    )
}

/// The simulator's built-in HMAC key, in a 0600 key file.
fn venue_key_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("venue.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    writeln!(
        f,
        "api_key = simulatorKey0123456789\napi_secret = simulatorSecret0123456789"
    )
    .unwrap();
    path
}

#[test]
fn ready_when_up_a_dropped_feed_and_a_stalled_core_are_reported_then_clear() {
    let dir = tmp_dir("probes");
    let sim = sim();
    let port = free_port();
    let stall = Arc::new(AtomicU64::new(0));
    let cfg = config(
        &sim,
        &dir,
        port,
        r#"["trade", "depth@100ms"]"#,
        &sim.http_url(),
        true,
    );
    let engine = Engine::start(&cfg, port, stall.clone());

    // Ready: feed open, both books synced, the order API's user data stream confirmed.
    let body = engine.wait_for("/readyz", "readiness", |c, _| c == 200);
    assert_eq!(body, serde_json::json!({"ready": true, "reasons": []}));
    let (code, body) = get(engine.addr, "/livez").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["live"], true);
    assert!(body["last_poll_ms_ago"].as_u64().unwrap() <= 1000, "{body}");
    let (code, _) = get(engine.addr, "/healthz?verbose=1").unwrap();
    assert_eq!(code, 200);

    // The market-data connection dropped by the venue: not ready, naming the feed, while the
    // engine waits 1.5 s to reconnect; live all along (the core keeps polling).
    sim.inject(FaultKind::Hangup);
    let body = engine.wait_for("/readyz", "the dropped feed", |c, b| {
        c == 503 && reasons(b).iter().any(|r| r == "feed 1 disconnected")
    });
    assert_eq!(body["ready"], false);
    let (code, body) = get(engine.addr, "/livez").unwrap();
    assert_eq!(code, 200, "live while the feed is down: {body}");
    // Back: reconnected and the books synced again.
    engine.wait_for("/readyz", "readiness after the reconnect", |c, _| c == 200);

    // The core thread blocked for 3 s in a strategy callback: not live (and not ready, naming
    // the stall), then live again once it polls.
    stall.store(3_000, Ordering::Relaxed);
    let body = engine.wait_for("/livez", "the stall", |c, _| c == 503);
    assert_eq!(body["live"], false);
    // Not live once the last poll is more than 1 s old: in whole milliseconds, 1000 or more.
    assert!(body["last_poll_ms_ago"].as_u64().unwrap() >= 1000, "{body}");
    let (code, body) = get(engine.addr, "/readyz").unwrap();
    assert_eq!(code, 503);
    assert!(
        reasons(&body).iter().any(|r| r.starts_with("core stalled")),
        "{body}"
    );
    engine.wait_for("/livez", "liveness after the stall", |c, _| c == 200);
    engine.wait_for("/readyz", "readiness after the stall", |c, _| c == 200);

    // HEAD: the head alone.
    let text = exchange(engine.addr, b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"),
        "{text:?}"
    );
    // What is not a probe is refused, each with a JSON error; the server carries on.
    let refused = |req: &[u8], code: u16| {
        let (c, body) = parse_answer(&exchange(engine.addr, req).unwrap());
        assert_eq!(c, code, "{body}");
        assert!(body["error"].is_string(), "{body}");
    };
    refused(b"POST /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 405);
    refused(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404);
    refused(b"GET /readyz\r\n\r\n", 400);
    let mut big = b"GET /readyz HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(vec![b'a'; 8192]);
    big.extend(b"\r\n\r\n");
    refused(&big, 431);
    // A client that never finishes its request is dropped, and the next is served.
    let mut slow = TcpStream::connect(engine.addr).unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = String::new();
    let _ = slow.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out:?}");
    let (code, _) = get(engine.addr, "/livez").unwrap();
    assert_eq!(code, 200);

    let report = engine.stop();
    assert!(report.frames > 0);
    // Stopped: nothing listens any more.
    assert!(TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err());
}

#[test]
fn books_that_cannot_sync_are_named_and_trade_only_symbols_have_none_to_wait_for() {
    let dir = tmp_dir("books");
    let sim = sim();
    // A REST endpoint that refuses every connection: no depth snapshot ever arrives.
    let dead_rest = format!("http://127.0.0.1:{}", free_port());

    let port = free_port();
    let cfg = config(
        &sim,
        &dir,
        port,
        r#"["trade", "depth@100ms"]"#,
        &dead_rest,
        false,
    );
    let engine = Engine::start(&cfg, port, Arc::default());
    // Once the feed is open and the core polls, the books are the only reasons, and stay so.
    let only_books = |c: u16, b: &Value| {
        c == 503 && reasons(b) == ["BTCUSDT book not synced", "ETHUSDT book not synced"]
    };
    engine.wait_for("/readyz", "the unsynced books", only_books);
    std::thread::sleep(Duration::from_millis(300));
    let (code, body) = get(engine.addr, "/readyz").unwrap();
    assert!(only_books(code, &body), "{code} {body}");
    let (code, _) = get(engine.addr, "/livez").unwrap();
    assert_eq!(code, 200);
    engine.stop();

    // Trades only: no book to sync, so ready as soon as the feed is open (same dead REST).
    let port = free_port();
    let cfg = config(&sim, &dir, port, r#"["trade"]"#, &dead_rest, false);
    let engine = Engine::start(&cfg, port, Arc::default());
    let body = engine.wait_for("/readyz", "readiness without books", |c, _| c == 200);
    assert_eq!(body["reasons"], serde_json::json!([]));
    engine.stop();
}
