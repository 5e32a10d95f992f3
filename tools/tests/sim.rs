//! The venue simulator over real loopback sockets: protocols, REST, TLS, raw TCP, faults,
//! sources and pacing. Every wait is bounded; nothing leaves the machine.

use engine::book::{BookConfig, OrderBook, SyncState};
use engine::event::EventKind;
use engine::symbol::SymbolTable;
use feeds::binance::market::BinanceDecoder;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};
use venue_sim::gen::{FeedGenerator, GenConfig, GenKind};
use venue_sim::{Faults, SimConfig, SimPace, SimSource, VenueSim};

/// Upper bound of any single wait in these tests.
const T: Duration = Duration::from_secs(15);

fn gen(symbols: &[&str], events: u64, seed: u64) -> GenConfig {
    GenConfig {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        events,
        seed,
        start_ns: 1_000_000_000,
    }
}

/// A generated frame: stream name, the combined frame, its bare payload, its receive time.
#[derive(Clone, Debug)]
struct GenFrame {
    stream: String,
    combined: String,
    data: String,
    recv_ns: u64,
}

/// The frames a generator streams (snapshots excluded), in order.
fn gen_frames(cfg: &GenConfig) -> Vec<GenFrame> {
    let mut g = FeedGenerator::new(cfg.clone()).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(f) = g.next_frame(&mut buf) {
        if f.kind == GenKind::Snapshot {
            continue;
        }
        let combined = String::from_utf8(buf.clone()).unwrap();
        let v: Value = serde_json::from_str(&combined).unwrap();
        let stream = v["stream"].as_str().unwrap().to_string();
        let head = format!("{{\"stream\":\"{stream}\",\"data\":");
        let data = combined[head.len()..combined.len() - 1].to_string();
        out.push(GenFrame {
            stream,
            combined,
            data,
            recv_ns: f.recv_ns,
        });
    }
    out
}

fn config(source: GenConfig, pace: SimPace) -> SimConfig {
    SimConfig {
        source: SimSource::Generated(source),
        pace,
        ..SimConfig::default()
    }
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickline-sim-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, T).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
    s
}

/// A plain WebSocket client on `path` (e.g. `/ws`).
fn ws(sim: &VenueSim, path: &str) -> WebSocket<TcpStream> {
    ws_with(sim, path, None)
}

fn ws_with(sim: &VenueSim, path: &str, cfg: Option<WebSocketConfig>) -> WebSocket<TcpStream> {
    let url = format!("{}{path}", sim.ws_url());
    let (ws, resp) = tungstenite::client::client_with_config(url, tcp(sim.ws_addr()), cfg).unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

/// The next text message (pings and pongs skipped).
fn next_text<S: Read + Write>(ws: &mut WebSocket<S>) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.as_str().to_string(),
            Message::Ping(_) | Message::Pong(_) => {}
            m => panic!("unexpected {m:?}"),
        }
    }
}

/// The next answer to a request (data frames in between are skipped).
fn next_answer<S: Read + Write>(ws: &mut WebSocket<S>) -> Value {
    loop {
        let v: Value = serde_json::from_str(&next_text(ws)).unwrap();
        if v.get("id").is_some() || v.get("code").is_some() {
            return v;
        }
    }
}

fn send<S: Read + Write>(ws: &mut WebSocket<S>, text: &str) {
    ws.send(Message::Text(text.into())).unwrap();
}

/// True when reading times out (nothing arrives) rather than yielding a message or an error.
fn read_times_out(ws: &mut WebSocket<TcpStream>, wait: Duration) -> bool {
    ws.get_ref().set_read_timeout(Some(wait)).unwrap();
    let r = loop {
        match ws.read() {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            other => break other,
        }
    };
    ws.get_ref().set_read_timeout(Some(T)).unwrap();
    match r {
        Err(tungstenite::Error::Io(e)) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        _ => false,
    }
}

/// One HTTP/1.1 request; returns the status and the body.
fn http(sim: &VenueSim, method: &str, target: &str) -> (u16, String) {
    let mut s = tcp(sim.http_addr());
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    parse_http(&resp)
}

fn parse_http(resp: &[u8]) -> (u16, String) {
    let text = String::from_utf8(resp.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), len, "{head}");
    (status, body.to_string())
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol

#[test]
fn combined_stream_gets_only_subscribed_streams_in_generator_order() {
    let g = gen(&["BTCUSDT", "ETHUSDT"], 3000, 11);
    let sim = VenueSim::start(config(g.clone(), SimPace::Asap)).unwrap();
    let streams = ["btcusdt@trade", "btcusdt@bookTicker", "ethusdt@depth@100ms"];
    let expected: Vec<GenFrame> = gen_frames(&g)
        .into_iter()
        .filter(|f| streams.contains(&f.stream.as_str()))
        .collect();
    assert!(expected.len() > 500);
    let mut c = ws(&sim, &format!("/stream?streams={}", streams.join("/")));
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(next_text(&mut c), e.combined, "frame {i}");
    }
    assert!(sim.wait_until_done(T));
    assert!(read_times_out(&mut c, Duration::from_millis(200)));
    let st = sim.stats();
    assert_eq!(st.frames_published, 3000);
    assert_eq!(st.frames_sent, expected.len() as u64);
    assert!(st.feed_done);
    assert_eq!(st.connections_open, 1);
    // Send times: every btcusdt trade frame of this (first) connection, in order.
    let trade_ids: Vec<u64> = expected
        .iter()
        .filter(|f| f.stream == "btcusdt@trade")
        .map(|f| {
            serde_json::from_str::<Value>(&f.data).unwrap()["t"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let times = sim.send_times();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), trade_ids);
    assert!(times.windows(2).all(|w| w[0].1 <= w[1].1));
    let now = tools::clock::MonoClock::now();
    assert!(times.iter().all(|t| t.1 > 0 && t.1 <= now));
}

#[test]
fn ws_subscribe_gets_bare_payloads_and_the_result_answer() {
    let g = gen(&["BTCUSDT", "ETHUSDT"], 1500, 12);
    let sim = VenueSim::start(config(g.clone(), SimPace::Asap)).unwrap();
    let mut c = ws(&sim, "/ws");
    send(
        &mut c,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth"],"id":1}"#,
    );
    assert_eq!(next_text(&mut c), r#"{"result":null,"id":1}"#);
    // `btcusdt@depth` also receives the feed's `btcusdt@depth@100ms` diffs.
    let expected: Vec<GenFrame> = gen_frames(&g)
        .into_iter()
        .filter(|f| f.stream == "btcusdt@trade" || f.stream == "btcusdt@depth@100ms")
        .collect();
    for (i, e) in expected.iter().enumerate() {
        assert_eq!(next_text(&mut c), e.data, "frame {i}");
    }
    assert!(sim.wait_until_done(T));
    assert!(read_times_out(&mut c, Duration::from_millis(100)));
    assert_eq!(sim.stats().subscriptions, 2);
}

#[test]
fn combined_frames_carry_the_subscribed_depth_name() {
    let g = gen(&["BTCUSDT"], 300, 13);
    let sim = VenueSim::start(config(g.clone(), SimPace::Asap)).unwrap();
    let mut c = ws(&sim, "/stream?streams=btcusdt@depth");
    let expected: Vec<GenFrame> = gen_frames(&g)
        .into_iter()
        .filter(|f| f.stream == "btcusdt@depth@100ms")
        .collect();
    for e in &expected {
        let want = format!("{{\"stream\":\"btcusdt@depth\",\"data\":{}}}", e.data);
        assert_eq!(next_text(&mut c), want);
    }
}

#[test]
fn unsubscribe_stops_a_stream() {
    let g = gen(&["BTCUSDT"], 50_000, 14);
    let sim = VenueSim::start(config(g, SimPace::Rate(3000))).unwrap();
    let mut c = ws(&sim, "/stream?streams=btcusdt@trade/btcusdt@bookTicker");
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
        seen.insert(v["stream"].as_str().unwrap().to_string());
    }
    send(
        &mut c,
        r#"{"method":"UNSUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}"#,
    );
    loop {
        let t = next_text(&mut c);
        if t.starts_with("{\"result\"") {
            assert_eq!(t, r#"{"result":null,"id":7}"#);
            break;
        }
    }
    for _ in 0..100 {
        let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
        assert_eq!(v["stream"], "btcusdt@trade");
    }
    assert_eq!(sim.stats().unsubscriptions, 1);
}

#[test]
fn list_subscriptions_properties_and_errors() {
    let g = gen(&["BTCUSDT", "ETHUSDT"], 100_000, 15);
    let sim = VenueSim::start(config(g, SimPace::Rate(1000))).unwrap();
    let mut c = ws(&sim, "/ws/btcusdt@trade");
    send(&mut c, r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#);
    assert_eq!(
        next_answer(&mut c),
        serde_json::json!({"result":["btcusdt@trade"],"id":3})
    );
    send(
        &mut c,
        r#"{"method":"SUBSCRIBE","params":["ethusdt@trade"],"id":4}"#,
    );
    assert_eq!(
        next_answer(&mut c),
        serde_json::json!({"result":null,"id":4})
    );
    send(&mut c, r#"{"method":"LIST_SUBSCRIPTIONS","id":"q1"}"#);
    assert_eq!(
        next_answer(&mut c),
        serde_json::json!({"result":["btcusdt@trade","ethusdt@trade"],"id":"q1"})
    );
    send(&mut c, r#"{"method":"FOO","params":[],"id":5}"#);
    let v = next_answer(&mut c);
    assert_eq!((v["code"].as_i64(), v["id"].as_i64()), (Some(2), Some(5)));
    assert!(v["msg"].as_str().unwrap().contains("unknown variant `FOO`"));
    send(&mut c, "{not json");
    assert_eq!(next_answer(&mut c)["code"], 3);
    // Bare payloads until the combined property is set.
    let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
    assert_eq!(v["e"], "trade");
    send(
        &mut c,
        r#"{"method":"SET_PROPERTY","params":["combined",true],"id":6}"#,
    );
    assert_eq!(
        next_answer(&mut c),
        serde_json::json!({"result":null,"id":6})
    );
    let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
    assert!(v["stream"].as_str().unwrap().ends_with("@trade"), "{v}");
    send(
        &mut c,
        r#"{"method":"GET_PROPERTY","params":["combined"],"id":8}"#,
    );
    assert_eq!(
        next_answer(&mut c),
        serde_json::json!({"result":true,"id":8})
    );
    let st = sim.stats();
    assert_eq!(st.control_requests, 7);
    assert_eq!(st.control_errors, 2);
}

#[test]
fn unknown_paths_and_bad_stream_names_are_refused() {
    let sim = VenueSim::start(config(gen(&["BTCUSDT"], 10, 1), SimPace::Asap)).unwrap();
    for (path, status) in [("/nope", 404), ("/ws/BTCUSDT@trade", 400)] {
        let url = format!("{}{path}", sim.ws_url());
        match tungstenite::client(url, tcp(sim.ws_addr())) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                assert_eq!(r.status(), status, "{path}")
            }
            other => panic!("{path}: {:?}", other.map(|_| ())),
        }
    }
    wait_for("failed handshakes", || sim.stats().handshakes_failed == 2);
}

#[test]
fn misbehaving_clients_do_not_hurt_others() {
    let sim = VenueSim::start(config(gen(&["BTCUSDT"], 200, 2), SimPace::Asap)).unwrap();
    // Not HTTP at all, on both ports; then a half-finished handshake that just hangs up.
    for addr in [sim.ws_addr(), sim.http_addr()] {
        let mut s = tcp(addr);
        s.write_all(b"\x00\x01\x02garbage\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    {
        let mut s = tcp(sim.ws_addr());
        s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    // A client sending an oversized message is cut off.
    let mut bad = ws(&sim, "/ws");
    let big = "x".repeat(1 << 20);
    let _ = bad.send(Message::Text(big.into()));
    assert!(loop {
        match bad.read() {
            Ok(Message::Text(_)) | Ok(Message::Ping(_)) => continue,
            Ok(_) => break false,
            Err(_) => break true,
        }
    });
    // A well-behaved client is still served.
    let mut c = ws(&sim, "/stream?streams=btcusdt@trade");
    let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
    assert_eq!(v["stream"], "btcusdt@trade");
}

#[test]
fn pings_pongs_and_close() {
    let sim = VenueSim::start(SimConfig {
        ping_interval: Duration::from_millis(150),
        ..config(gen(&["BTCUSDT"], 100_000, 3), SimPace::Rate(100))
    })
    .unwrap();
    let mut c = ws(&sim, "/ws/btcusdt@bookTicker");
    let start = Instant::now();
    loop {
        match c.read().unwrap() {
            Message::Ping(_) => break,
            Message::Text(_) => assert!(start.elapsed() < T),
            m => panic!("{m:?}"),
        }
    }
    // tungstenite queued the pong; it goes out with the next write.
    c.send(Message::Ping(b"hi".to_vec().into())).unwrap();
    loop {
        match c.read().unwrap() {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"hi");
                break;
            }
            Message::Text(_) | Message::Ping(_) => {}
            m => panic!("{m:?}"),
        }
    }
    wait_for("pong counted", || sim.stats().pongs_received >= 1);
    assert!(sim.stats().pings_sent >= 1);
    assert_eq!(sim.stats().client_pings, 1);
    c.close(None).unwrap();
    loop {
        match c.read() {
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    wait_for("connection closed", || sim.stats().connections_open == 0);
}

#[test]
fn unanswered_pings_end_the_connection() {
    let sim = VenueSim::start(SimConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(300),
        ..config(gen(&["BTCUSDT"], 10, 3), SimPace::Asap)
    })
    .unwrap();
    // A raw socket that completes the handshake and then never reads or answers.
    let mut s = tcp(sim.ws_addr());
    s.write_all(
        b"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    wait_for("pong timeout", || sim.stats().pong_timeouts == 1);
    wait_for("connection closed", || sim.stats().connections_open == 0);
}

// ---------------------------------------------------------------------------------------------
// REST

#[test]
fn rest_snapshot_bridges_the_next_diff_and_exchange_info_parses() {
    let g = gen(&["BTCUSDT"], 20_000, 16);
    let sim = VenueSim::start(config(g, SimPace::Rate(2000))).unwrap();
    let mut c = ws(&sim, "/stream?streams=btcusdt@depth@100ms");
    let diff = |c: &mut WebSocket<TcpStream>| -> (String, u64, u64) {
        let t = next_text(c);
        let v: Value = serde_json::from_str(&t).unwrap();
        let (first, last) = (
            v["data"]["U"].as_u64().unwrap(),
            v["data"]["u"].as_u64().unwrap(),
        );
        (t, first, last)
    };
    // Binance's procedure: buffer the stream, then take the snapshot.
    let mut buffered: Vec<(String, u64, u64)> = (0..5).map(|_| diff(&mut c)).collect();
    let (status, body) = http(&sim, "GET", "/api/v3/depth?symbol=BTCUSDT&limit=1000");
    assert_eq!(status, 200, "{body}");
    let snap: Value = serde_json::from_str(&body).unwrap();
    let last_id = snap["lastUpdateId"].as_u64().unwrap();
    let (bids, asks) = (
        snap["bids"].as_array().unwrap(),
        snap["asks"].as_array().unwrap(),
    );
    assert!(bids.len() >= 30 && asks.len() >= 30);
    let px = |l: &Value| l[0].as_str().unwrap().parse::<f64>().unwrap();
    assert!(px(&bids[0]) < px(&asks[0]));
    assert!(bids.windows(2).all(|w| px(&w[0]) > px(&w[1])));
    assert!(bids[0][0]
        .as_str()
        .unwrap()
        .ends_with(|c: char| c.is_ascii_digit()));
    assert_eq!(
        bids[0][0]
            .as_str()
            .unwrap()
            .split('.')
            .nth(1)
            .unwrap()
            .len(),
        8
    );
    while buffered.last().unwrap().2 <= last_id {
        buffered.push(diff(&mut c));
    }
    let first = buffered.iter().find(|d| d.2 > last_id).unwrap();
    assert!(
        first.1 <= last_id + 1 && last_id < first.2,
        "U {} u {} lastUpdateId {last_id}",
        first.1,
        first.2
    );
    // The engine's book syncs from it and stays synced over the following diffs.
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern("BTCUSDT").unwrap();
    let mut dec = BinanceDecoder::new(symbols);
    let mut book = OrderBook::new(BookConfig::default());
    let mut events = Vec::new();
    dec.decode_snapshot(body.as_bytes(), btc, 0, &mut events)
        .unwrap();
    for _ in 0..30 {
        buffered.push(diff(&mut c));
    }
    for (t, _, _) in &buffered {
        dec.decode(t.as_bytes(), 0, &mut events).unwrap();
    }
    for e in &events {
        match &e.kind {
            EventKind::Snapshot(l) => {
                book.apply_snapshot(l);
            }
            EventKind::Depth(l) => {
                book.apply_depth(l);
            }
            k => panic!("{k:?}"),
        }
    }
    assert_eq!(book.state(), SyncState::Synced);
    assert!(book.best_bid().unwrap().price < book.best_ask().unwrap().price);
    assert_eq!(book.last_update_id(), buffered.last().unwrap().2);

    let (status, body) = http(&sim, "GET", "/api/v3/exchangeInfo?symbol=BTCUSDT");
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    let s = &info["symbols"][0];
    assert_eq!(s["symbol"], "BTCUSDT");
    assert_eq!(
        (s["baseAsset"].as_str(), s["quoteAsset"].as_str()),
        (Some("BTC"), Some("USDT"))
    );
    let filter = |name: &str| {
        s["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filterType"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(filter("PRICE_FILTER")["tickSize"], "0.01000000");
    assert_eq!(filter("LOT_SIZE")["stepSize"], "0.00001000");
    assert_eq!(filter("NOTIONAL")["minNotional"], "5.00000000");
    let (status, body) = http(
        &sim,
        "GET",
        "/api/v3/exchangeInfo?symbols=%5B%22BTCUSDT%22%5D",
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(&sim, "GET", "/api/v3/depth?symbol=BTCUSDT&limit=5");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["bids"].as_array().unwrap().len(), 5);
}

#[test]
fn rest_errors_are_binance_style_json() {
    let sim = VenueSim::start(config(gen(&["BTCUSDT"], 10, 1), SimPace::Asap)).unwrap();
    for (method, target, status, code) in [
        ("GET", "/api/v3/depth", 400, -1102),
        ("GET", "/api/v3/depth?symbol=NOPE", 400, -1121),
        ("GET", "/api/v3/depth?symbol=BTCUSDT&limit=0", 400, -1100),
        ("GET", "/api/v3/depth?symbol=BTCUSDT&limit=x", 400, -1100),
        ("GET", "/api/v3/exchangeInfo?symbol=NOPE", 400, -1121),
        ("GET", "/api/v3/order", 404, -1),
        ("GET", "/", 404, -1),
        ("POST", "/api/v3/depth?symbol=BTCUSDT", 400, -1),
    ] {
        let (s, body) = http(&sim, method, target);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (s, v["code"].as_i64()),
            (status, Some(code)),
            "{method} {target}: {body}"
        );
        assert!(v["msg"].is_string());
    }
    let (s, body) = http(&sim, "GET", "/api/v3/ping");
    assert_eq!((s, body.as_str()), (200, "{}"));
    let (s, body) = http(&sim, "GET", "/api/v3/time");
    assert_eq!(s, 200);
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["serverTime"]
            .as_u64()
            .unwrap()
            > 0
    );
    // Keep-alive: two requests on one connection, answered in order.
    let mut s = tcp(sim.http_addr());
    s.write_all(
        b"GET /api/v3/ping HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v3/depth?symbol=BTCUSDT&limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8(resp).unwrap();
    let second = text.find("HTTP/1.1 200 OK\r\nContent-Type").unwrap();
    let second = text[second + 1..].find("HTTP/1.1").unwrap() + second + 1;
    assert_eq!(
        parse_http(&text.as_bytes()[..second]),
        (200, "{}".to_string())
    );
    let (st, body) = parse_http(&text.as_bytes()[second..]);
    assert_eq!(st, 200);
    assert!(body.starts_with("{\"lastUpdateId\":"));
    assert_eq!(sim.stats().rest_errors, 8);
}

// ---------------------------------------------------------------------------------------------
// TLS and raw TCP

fn tls_client(
    sim: &VenueSim,
    trust: Option<&std::path::Path>,
    name: &str,
) -> Result<WebSocket<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(p) = trust {
        roots
            .add(CertificateDer::from_pem_file(p).unwrap())
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), server).unwrap();
    let stream = rustls::StreamOwned::new(conn, tcp(sim.ws_addr()));
    let url = format!("{}/stream?streams=btcusdt@trade", sim.ws_url());
    tungstenite::client(url, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| format!("{e}"))
}

#[test]
fn tls_with_the_written_cert_works_and_an_untrusting_client_fails() {
    let dir = tmp_dir("tls");
    let cert = dir.join("sim.pem");
    let sim = VenueSim::start(SimConfig {
        tls: true,
        cert_out: Some(cert.clone()),
        ..config(gen(&["BTCUSDT"], 100_000, 4), SimPace::Rate(500))
    })
    .unwrap();
    assert!(sim.ws_url().starts_with("wss://localhost:"));
    assert_eq!(sim.cert_path(), Some(cert.as_path()));
    assert!(std::fs::read_to_string(&cert)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    let err = tls_client(&sim, None, "localhost").err().unwrap();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    wait_for("failed handshake", || sim.stats().handshakes_failed == 1);
    for name in ["localhost", "127.0.0.1"] {
        let mut c = tls_client(&sim, Some(&cert), name).unwrap();
        let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
        assert_eq!(v["stream"], "btcusdt@trade", "{name}");
    }
    drop(sim);
    // A file the caller named is the caller's; it stays.
    assert!(cert.exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn temporary_cert_is_removed_on_stop() {
    let sim = VenueSim::start(SimConfig {
        tls: true,
        ..config(gen(&["BTCUSDT"], 10, 4), SimPace::Asap)
    })
    .unwrap();
    let cert = sim.cert_path().unwrap().to_path_buf();
    assert!(cert.exists());
    sim.stop();
    assert!(!cert.exists());
}

#[test]
fn refused_tls_handshakes_fail() {
    let sim = VenueSim::start(SimConfig {
        tls: true,
        faults: Faults {
            refuse_tls: true,
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 10, 4), SimPace::Asap)
    })
    .unwrap();
    let cert = sim.cert_path().unwrap().to_path_buf();
    assert!(tls_client(&sim, Some(&cert), "localhost").is_err());
    wait_for("refusal counted", || sim.stats().faults.tls_refused == 1);
}

#[test]
fn raw_tcp_mode_sends_newline_delimited_combined_frames() {
    let g = gen(&["BTCUSDT", "ETHUSDT"], 800, 5);
    let sim = VenueSim::start(SimConfig {
        raw_tcp: true,
        ..config(g.clone(), SimPace::Asap)
    })
    .unwrap();
    assert!(sim.ws_url().starts_with("tcp://127.0.0.1:"));
    let mut r = BufReader::new(tcp(sim.ws_addr()));
    for (i, e) in gen_frames(&g).iter().enumerate() {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{}\n", e.combined), "line {i}");
    }
    assert!(sim.wait_until_done(T));
    assert_eq!(sim.stats().frames_sent, 800);
}

// ---------------------------------------------------------------------------------------------
// Faults

#[test]
fn drop_fault_closes_the_connection_after_the_interval() {
    let sim = VenueSim::start(SimConfig {
        faults: Faults {
            drop_every: Some(Duration::from_millis(700)),
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 100_000, 6), SimPace::Rate(300))
    })
    .unwrap();
    let start = Instant::now();
    let mut c = ws(&sim, "/ws/btcusdt@trade");
    let mut frames = 0;
    let err = loop {
        match c.read() {
            Ok(Message::Text(_)) => frames += 1,
            Ok(Message::Ping(_)) => {}
            Ok(m) => panic!("{m:?}"),
            Err(e) => break e,
        }
    };
    let took = start.elapsed();
    assert!(frames > 10, "{frames} frames");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Dropped, not closed: no close frame.
    assert!(
        matches!(
            err,
            tungstenite::Error::Protocol(_) | tungstenite::Error::Io(_)
        ),
        "{err}"
    );
    wait_for("drop counted", || sim.stats().faults.drops == 1);
}

#[test]
fn stall_fault_stops_frames_but_keeps_the_connection_open() {
    let sim = VenueSim::start(SimConfig {
        faults: Faults {
            stall_after: Some(Duration::from_millis(300)),
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 100_000, 7), SimPace::Rate(500))
    })
    .unwrap();
    let start = Instant::now();
    let mut c = ws(&sim, "/ws/btcusdt@bookTicker/btcusdt@trade");
    let mut frames = 0;
    while !read_times_out(&mut c, Duration::from_millis(500)) {
        frames += 1;
        assert!(start.elapsed() < T);
    }
    assert!(frames > 10, "{frames}");
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Still open: writes succeed, nothing comes back (not even a pong), no close.
    c.send(Message::Ping(Bytes::from_static(b"x"))).unwrap();
    assert!(read_times_out(&mut c, Duration::from_millis(500)));
    let st = sim.stats();
    assert_eq!((st.faults.stalls, st.connections_open), (1, 1));
}

use tungstenite::Bytes;

#[test]
fn garbage_fault_sends_invalid_text_frames() {
    let sim = VenueSim::start(SimConfig {
        faults: Faults {
            garbage_every: Some(10),
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 1000, 8), SimPace::Asap)
    })
    .unwrap();
    let mut c = ws(
        &sim,
        "/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    for round in 0..3 {
        for i in 0..10 {
            let t = next_text(&mut c);
            assert!(
                serde_json::from_str::<Value>(&t).is_ok(),
                "{round}/{i}: {t}"
            );
        }
        let t = next_text(&mut c);
        assert!(serde_json::from_str::<Value>(&t).is_err(), "{t}");
    }
    // The writer counts a fault after its write returns: the client can be faster.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sim.stats().faults.garbage_frames < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(sim.stats().faults.garbage_frames >= 3);
}

#[test]
fn invalid_utf8_fault_is_a_utf8_error_at_the_client() {
    let sim = VenueSim::start(SimConfig {
        faults: Faults {
            invalid_utf8_every: Some(5),
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 1000, 9), SimPace::Asap)
    })
    .unwrap();
    let mut c = ws(
        &sim,
        "/ws/btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    for _ in 0..5 {
        next_text(&mut c);
    }
    match c.read() {
        Err(tungstenite::Error::Utf8(_)) => {}
        other => panic!("{other:?}"),
    }
    wait_for("fault counted", || {
        sim.stats().faults.invalid_utf8_frames >= 1
    });
}

#[test]
fn oversized_fault_exceeds_the_client_limit() {
    let sim = VenueSim::start(SimConfig {
        faults: Faults {
            oversized_every: Some(3),
            oversized_bytes: 2 << 20,
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 100_000, 10), SimPace::Rate(1000))
    })
    .unwrap();
    let limits = WebSocketConfig::default()
        .max_frame_size(Some(1 << 20))
        .max_message_size(Some(1 << 20));
    let mut c = ws_with(&sim, "/ws/btcusdt@trade/btcusdt@bookTicker", Some(limits));
    for _ in 0..3 {
        next_text(&mut c);
    }
    match c.read() {
        Err(tungstenite::Error::Capacity(_)) => {}
        other => panic!("{other:?}"),
    }
    drop(c);
    // Without the limit it is one (big) valid JSON frame.
    let mut c = ws(&sim, "/ws/btcusdt@trade/btcusdt@bookTicker");
    let big = loop {
        let t = next_text(&mut c);
        if t.len() > 1 << 20 {
            break t;
        }
    };
    assert_eq!(big.len(), 2 << 20);
    assert!(serde_json::from_str::<Value>(&big).is_ok());
}

/// Reads one raw server frame (unmasked): (fin, opcode, payload).
fn read_raw_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h[0] & 0x80 != 0, h[0] & 0x0f, payload)
}

#[test]
fn fragment_fault_sends_three_fragments_per_message() {
    let sim = VenueSim::start(SimConfig {
        faults: Faults {
            fragment: true,
            ..Faults::default()
        },
        ..config(gen(&["BTCUSDT"], 100_000, 17), SimPace::Rate(500))
    })
    .unwrap();
    let mut s = tcp(sim.ws_addr());
    s.write_all(
        b"GET /ws/btcusdt@trade/btcusdt@bookTicker HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Upgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    for _ in 0..5 {
        let mut message = Vec::new();
        let mut shape = Vec::new();
        loop {
            let (fin, op, payload) = read_raw_frame(&mut s);
            if op == 9 {
                continue; // a ping
            }
            shape.push((fin, op));
            message.extend_from_slice(&payload);
            if fin {
                break;
            }
        }
        assert_eq!(shape, [(false, 1), (false, 0), (true, 0)]);
        assert!(serde_json::from_slice::<Value>(&message).is_ok());
    }
    // A WebSocket client reassembles them.
    let mut c = ws(&sim, "/ws/btcusdt@trade");
    let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
    assert_eq!(v["e"], "trade");
    wait_for("fragments counted", || {
        sim.stats().faults.fragmented_messages >= 6
    });
}

#[test]
fn a_client_that_stops_reading_is_disconnected() {
    let sim = VenueSim::start(SimConfig {
        queue_frames: 64,
        slow_client_timeout: Duration::from_millis(100),
        ..config(gen(&["BTCUSDT"], 200_000, 18), SimPace::Asap)
    })
    .unwrap();
    let _idle = ws(
        &sim,
        "/stream?streams=btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    wait_for("slow client cut off", || sim.stats().slow_disconnects == 1);
    wait_for("connection gone", || sim.stats().connections_open == 0);
    // The feed goes on without it.
    assert!(sim.wait_until_done(Duration::from_secs(60)));
}

// ---------------------------------------------------------------------------------------------
// Sources and pacing

#[test]
fn capture_source_from_a_tlc_file() {
    let g = gen(&["BTCUSDT", "ETHUSDT"], 600, 19);
    let dir = tmp_dir("tlc");
    let path = dir.join("feed.tlc");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    venue_sim::gen::write_tickline_capture(&g, &mut f).unwrap();
    f.flush().unwrap();
    drop(f);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Capture(path),
        pace: SimPace::Asap,
        ..SimConfig::default()
    })
    .unwrap();
    let frames = gen_frames(&g);
    let mut streams: Vec<&str> = frames.iter().map(|f| f.stream.as_str()).collect();
    streams.sort();
    streams.dedup();
    assert_eq!(streams.len(), 6);
    let mut c = ws(&sim, &format!("/stream?streams={}", streams.join("/")));
    for (i, e) in frames.iter().enumerate() {
        assert_eq!(next_text(&mut c), e.combined, "frame {i}");
    }
    assert!(sim.wait_until_done(T));
    // Both books, from the capture's snapshots and the published diffs.
    for sym in ["BTCUSDT", "ETHUSDT"] {
        let last_u = frames
            .iter()
            .filter(|f| f.stream == format!("{}@depth@100ms", sym.to_lowercase()))
            .map(|f| {
                serde_json::from_str::<Value>(&f.data).unwrap()["u"]
                    .as_u64()
                    .unwrap()
            })
            .next_back()
            .unwrap();
        let (s, body) = http(&sim, "GET", &format!("/api/v3/depth?symbol={sym}"));
        assert_eq!(s, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lastUpdateId"].as_u64(), Some(last_u));
        assert_eq!(
            v["bids"].as_array().unwrap().len().min(100),
            v["bids"].as_array().unwrap().len()
        );
    }
    let (_, body) = http(&sim, "GET", "/api/v3/exchangeInfo");
    let v: Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["BTCUSDT", "ETHUSDT"]);
    assert_eq!(sim.stats().decode_errors, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn capture_source_from_a_line_file_takes_its_one_symbol() {
    let g = gen(&["SOLUSDT"], 300, 20);
    let dir = tmp_dir("line");
    let path = dir.join("feed.txt");
    let mut f = std::fs::File::create(&path).unwrap();
    venue_sim::gen::write_line_capture(&g, &mut f).unwrap();
    drop(f);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Capture(path),
        pace: SimPace::Asap,
        wait_for_subscribers: 0,
        ..SimConfig::default()
    })
    .unwrap();
    assert!(sim.wait_until_done(T));
    let (s, body) = http(&sim, "GET", "/api/v3/depth?symbol=SOLUSDT&limit=3");
    assert_eq!(s, 200, "{body}");
    assert_eq!(sim.stats().frames_published, 300);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn rate_pace_is_roughly_respected() {
    let sim = VenueSim::start(config(gen(&["BTCUSDT"], 200, 21), SimPace::Rate(400))).unwrap();
    let mut c = ws(
        &sim,
        "/ws/btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    let start = Instant::now();
    for _ in 0..200 {
        next_text(&mut c);
    }
    let took = start.elapsed();
    // 200 frames at 400/s: 0.5 s.
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[test]
fn recorded_pace_follows_the_recorded_gaps() {
    let g = gen(&["BTCUSDT"], 150, 22);
    let frames = gen_frames(&g);
    let span = Duration::from_nanos(frames.last().unwrap().recv_ns - frames[0].recv_ns);
    let sim = VenueSim::start(config(g, SimPace::Recorded(2.0))).unwrap();
    let mut c = ws(
        &sim,
        "/ws/btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms",
    );
    next_text(&mut c);
    let start = Instant::now();
    for _ in 1..150 {
        next_text(&mut c);
    }
    let took = start.elapsed();
    let want = span / 2;
    assert!(
        took >= want.mul_f64(0.8) && took < want * 3 + Duration::from_secs(1),
        "{took:?} for {want:?}"
    );
}

#[test]
fn two_concurrent_clients_both_get_every_frame() {
    let g = gen(&["BTCUSDT", "ETHUSDT"], 2000, 23);
    let sim = VenueSim::start(SimConfig {
        wait_for_subscribers: 2,
        ..config(g.clone(), SimPace::Asap)
    })
    .unwrap();
    let expected: Vec<String> = gen_frames(&g).into_iter().map(|f| f.combined).collect();
    let streams = "btcusdt@trade/btcusdt@bookTicker/btcusdt@depth@100ms/ethusdt@trade/ethusdt@bookTicker/ethusdt@depth@100ms";
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let mut c = ws(&sim, &format!("/stream?streams={streams}"));
            let n = expected.len();
            std::thread::spawn(move || (0..n).map(|_| next_text(&mut c)).collect::<Vec<_>>())
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), expected);
    }
    assert!(sim.wait_until_done(T));
    assert_eq!(sim.stats().frames_sent, 2 * expected.len() as u64);
}

/// `../shared/data/<rel>` beside the workspace (or under `TICKLINE_SHARED_DATA`), if present.
fn shared_data(rel: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("TICKLINE_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    };
    let p = dir.join(rel);
    if !p.exists() {
        eprintln!(
            "NOTICE: ../shared/data/{rel} is not present on this machine; this check was skipped"
        );
    }
    p.exists().then_some(p)
}

#[test]
fn real_binance_capture_is_served_and_its_book_bridges() {
    let Some(path) = shared_data("binance-spot/btcusdt_20240808.gz") else {
        return;
    };
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Capture(path),
        pace: SimPace::Asap,
        ..SimConfig::default()
    })
    .unwrap();
    // The line capture's REST snapshot names no symbol; its frames' one symbol is lent to it.
    let mut c = ws(&sim, "/stream?streams=btcusdt@depth@100ms/btcusdt@trade");
    // The capture (SOURCES.md): 9,757 trades and 3,451 unbroken diffs.
    let (mut trades, mut diffs, mut last_u) = (0u64, 0u64, 0u64);
    while trades < 9_757 || diffs < 3_451 {
        let v: Value = serde_json::from_str(&next_text(&mut c)).unwrap();
        if v["stream"] == "btcusdt@trade" {
            trades += 1;
            continue;
        }
        let (u0, u1) = (
            v["data"]["U"].as_u64().unwrap(),
            v["data"]["u"].as_u64().unwrap(),
        );
        if last_u != 0 {
            assert_eq!(u0, last_u + 1, "the capture's diffs are unbroken");
        }
        last_u = u1;
        diffs += 1;
    }
    assert_eq!(trades, 9_757);
    assert!(sim.wait_until_done(T));
    let st = sim.stats();
    assert_eq!(st.frames_published, 41_248);
    assert_eq!((st.decode_errors, st.source_errors), (0, 0));
    let (s, body) = http(&sim, "GET", "/api/v3/depth?symbol=BTCUSDT&limit=5000");
    assert_eq!(s, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["lastUpdateId"].as_u64(), Some(last_u));
    assert!(v["bids"].as_array().unwrap().len() > 900);
}

/// A masked client text frame (payload under 126 bytes).
fn client_text_frame(text: &str) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    assert!(text.len() < 126);
    let mut f = vec![0x81, 0x80 | text.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

#[test]
fn data_sent_before_the_handshake_answer_is_refused() {
    // RFC 6455 4.1: a client waits for the server's answer before sending frames.
    let sim = VenueSim::start(config(gen(&["BTCUSDT"], 10, 1), SimPace::Asap)).unwrap();
    let mut s = tcp(sim.ws_addr());
    let handshake: &[u8] = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n";
    let request = client_text_frame(r#"{"method":"LIST_SUBSCRIPTIONS","id":9}"#);
    s.write_all(&[handshake, &request].concat()).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(!rest.starts_with(b"HTTP/1.1 101"));
    wait_for("failed handshake", || sim.stats().handshakes_failed == 1);
    // Sent after the answer, the same frame is answered.
    let mut s = tcp(sim.ws_addr());
    s.write_all(handshake).unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    s.write_all(&request).unwrap();
    let (fin, op, payload) = read_raw_frame(&mut s);
    assert_eq!((fin, op), (true, 1));
    assert_eq!(payload, br#"{"result":[],"id":9}"#);
}

#[test]
fn connections_beyond_the_limit_are_refused() {
    let sim = VenueSim::start(SimConfig {
        max_connections: 1,
        ..config(gen(&["BTCUSDT"], 10, 1), SimPace::Asap)
    })
    .unwrap();
    let _first = ws(&sim, "/ws");
    let url = format!("{}/ws", sim.ws_url());
    assert!(tungstenite::client(url, tcp(sim.ws_addr())).is_err());
    assert_eq!(sim.stats().connections_refused, 1);
    assert_eq!(sim.stats().connections_accepted, 2);
}
