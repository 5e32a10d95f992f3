//! Every venue's simulator over real sockets on loopback, with a plain tungstenite client:
//! subscribe, get the venue's ack, the book snapshot (WebSocket-snapshot venues) and updates
//! whose ids chain from it, answer or get heartbeats, and come back after the simulator drops
//! the connection (`Faults::drop_every_frames`; `drop_every` for USD-M), resubscribing and
//! resyncing. Every wait is bounded.

use engine::venue::Venue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use venue_sim::gen::GenConfig;
use venue_sim::venues::{MdSim, VenueOptions};
use venue_sim::{Faults, SimConfig, SimPace, SimSource};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

const DEADLINE: Duration = Duration::from_secs(60);

fn gen_cfg(symbol: &str, events: u64, faults: Faults) -> SimConfig {
    SimConfig {
        source: SimSource::Generated(GenConfig {
            symbols: vec![symbol.into()],
            events,
            seed: 7,
            start_ns: 1_000_000_000,
        }),
        pace: SimPace::Rate(5_000),
        faults,
        wait_for_subscribers: 1,
        ..SimConfig::default()
    }
}

fn connect(url: &str) -> Ws {
    let (ws, _) = tungstenite::connect(url).unwrap_or_else(|e| panic!("connecting {url}: {e}"));
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws
}

/// The next text message: `Ok(text)`, or `Err(())` once the connection is gone.
fn next_text(ws: &mut Ws) -> Result<String, ()> {
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Ok(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return Err(()),
            Ok(_) => {}
        }
    }
}

fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).unwrap();
}

/// Fixed point with 8 decimals, for ordering levels.
fn fixed(s: &str) -> i128 {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<8}");
    i.parse::<i128>().unwrap() * 100_000_000 + f[..8].parse::<i128>().unwrap()
}

/// A client's L2 book, levels keyed by price, kept with the strings as received.
#[derive(Default)]
struct Book {
    bids: BTreeMap<i128, (String, String)>,
    asks: BTreeMap<i128, (String, String)>,
}

impl Book {
    fn set(&mut self, bid: bool, px: &str, qty: &str) {
        let side = if bid { &mut self.bids } else { &mut self.asks };
        if fixed(qty) == 0 {
            side.remove(&fixed(px));
        } else {
            side.insert(fixed(px), (px.to_string(), qty.to_string()));
        }
    }

    fn levels(&mut self, bid: bool, levels: &Value) {
        for l in levels.as_array().unwrap() {
            self.set(bid, l[0].as_str().unwrap(), l[1].as_str().unwrap());
        }
    }

    fn crossed(&self) -> bool {
        match (self.bids.keys().next_back(), self.asks.keys().next()) {
            (Some(b), Some(a)) => b >= a,
            _ => false,
        }
    }

    /// OKX's checksum: CRC32 of the top 25 levels interleaved, signed.
    fn okx_checksum(&self) -> i64 {
        let bids: Vec<_> = self.bids.values().rev().take(25).collect();
        let asks: Vec<_> = self.asks.values().take(25).collect();
        let mut parts = Vec::new();
        for i in 0..25 {
            for side in [&bids, &asks] {
                if let Some((p, q)) = side.get(i) {
                    parts.push(format!("{p}:{q}"));
                }
            }
        }
        i64::from(crc32fast::hash(parts.join(":").as_bytes()) as i32)
    }
}

/// One OKX session: subscribe, snapshot, chained updates with matching checksums, trades,
/// a ping answered; returns (updates applied, trades, pongs, garbage frames) when the
/// simulator drops the connection.
fn okx_session(url: &str, sessions: u32) -> (u64, u64, u64, u64) {
    let mut ws = connect(url);
    send(
        &mut ws,
        r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"},{"channel":"tickers","instId":"BTC-USDT"}]}"#,
    );
    let (mut updates, mut trades, mut pongs, mut garbage, mut acks) = (0, 0, 0, 0, 0);
    let mut book = Book::default();
    let mut seq: Option<i64> = None;
    let mut pinged = false;
    while let Ok(t) = next_text(&mut ws) {
        if t == "pong" {
            pongs += 1;
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&t) else {
            garbage += 1;
            continue;
        };
        if v["event"] == "subscribe" {
            assert!(v["connId"].is_string(), "{t}");
            acks += 1;
            continue;
        }
        let ch = v["arg"]["channel"]
            .as_str()
            .unwrap_or_else(|| panic!("{t}"));
        let d = &v["data"][0];
        match ch {
            "books" => {
                let action = v["action"].as_str().unwrap();
                if action == "snapshot" {
                    assert_eq!(acks, 3, "the acks come before the snapshot");
                    assert_eq!(d["prevSeqId"], -1);
                    book = Book::default();
                } else {
                    let prev = seq.expect("an update before the snapshot");
                    assert_eq!(d["prevSeqId"].as_i64(), Some(prev), "seqId chain: {t}");
                    updates += 1;
                }
                assert!(d["seqId"].as_i64().unwrap() > d["prevSeqId"].as_i64().unwrap());
                seq = d["seqId"].as_i64();
                book.levels(true, &d["bids"]);
                book.levels(false, &d["asks"]);
                assert!(!book.crossed());
                assert_eq!(book.okx_checksum(), d["checksum"].as_i64().unwrap(), "{t}");
            }
            "trades" => {
                assert!(matches!(d["side"].as_str(), Some("buy" | "sell")));
                trades += 1;
            }
            "tickers" => assert!(d["bidPx"].is_string() && d["askPx"].is_string()),
            other => panic!("channel {other}"),
        }
        if !pinged && updates > 5 {
            send(&mut ws, "ping");
            pinged = true;
        }
    }
    assert!(seq.is_some(), "session {sessions}: no snapshot");
    (updates, trades, pongs, garbage)
}

#[test]
fn okx_books_chain_checksums_match_ping_pong_and_reconnect() {
    let faults = Faults {
        garbage_every: Some(97),
        drop_every_frames: Some(400),
        ..Faults::default()
    };
    let opts = VenueOptions::new(Venue::Okx);
    let sim = MdSim::start(gen_cfg("BTC-USDT", 50_000, faults), opts).unwrap();
    let url = format!("{}/ws/v5/public", sim.ws_url());
    let start = Instant::now();
    let mut totals = (0, 0, 0, 0);
    for session in 1..=3 {
        let (u, t, p, g) = okx_session(&url, session);
        totals = (totals.0 + u, totals.1 + t, totals.2 + p, totals.3 + g);
        assert!(start.elapsed() < DEADLINE);
    }
    assert!(totals.0 > 100, "updates {totals:?}");
    assert!(totals.1 > 10, "trades {totals:?}");
    assert_eq!(totals.2, 3, "one pong per session");
    assert!(totals.3 > 3, "garbage frames {totals:?}");
    let st = sim.stats();
    assert_eq!(st.faults.drops, 3);
    assert_eq!(st.client_pings, 3);
    assert_eq!(st.subscriptions, 9);
    assert!(st.faults.garbage_frames >= totals.3);
}

#[test]
fn okx_closes_a_silent_connection_and_refuses_bad_requests() {
    let mut opts = VenueOptions::new(Venue::Okx);
    opts.idle_timeout = Some(Duration::from_millis(300));
    let sim = MdSim::start(gen_cfg("BTC-USDT", 100, Faults::default()), opts).unwrap();
    let mut ws = connect(&format!("{}/ws/v5/public", sim.ws_url()));
    send(
        &mut ws,
        r#"{"op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT"}]}"#,
    );
    let v: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["code"].as_str()),
        (Some("error"), Some("60018"))
    );
    send(&mut ws, "{oops");
    let v: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
    assert_eq!(v["code"], "60012");
    // Silent from now on: the venue hangs up (bounded by the client's 5 s read timeout).
    let t0 = Instant::now();
    while next_text(&mut ws).is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(20));
    }
    assert_eq!(sim.stats().pong_timeouts, 1);
    assert!(tungstenite::connect(format!("{}/ws/v5/private", sim.ws_url())).is_err());
}

fn bybit_session(url: &str, want_linear: bool) -> (u64, u64, bool) {
    let mut ws = connect(url);
    send(
        &mut ws,
        r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT","publicTrade.BTCUSDT","tickers.BTCUSDT"],"req_id":"s1"}"#,
    );
    let ack: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
    assert_eq!(ack["success"], true, "{ack}");
    assert_eq!(
        (ack["op"].as_str(), ack["req_id"].as_str()),
        (Some("subscribe"), Some("s1"))
    );
    let (mut deltas, mut trades, mut pong) = (0, 0, false);
    let mut u: Option<u64> = None;
    let mut seq = 0u64;
    let mut book = Book::default();
    let mut pinged = false;
    while let Ok(t) = next_text(&mut ws) {
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["op"] == "ping" {
            assert_eq!(
                (v["success"].as_bool(), v["ret_msg"].as_str()),
                (Some(true), Some("pong"))
            );
            pong = true;
            continue;
        }
        let topic = v["topic"].as_str().unwrap_or_else(|| panic!("{t}"));
        let d = &v["data"];
        if topic == "orderbook.50.BTCUSDT" {
            let nu = d["u"].as_u64().unwrap();
            if v["type"] == "snapshot" {
                book = Book::default();
            } else {
                assert_eq!(v["type"], "delta");
                assert_eq!(Some(nu), u.map(|u| u + 1), "u chain: {t}");
                deltas += 1;
            }
            let ns = d["seq"].as_u64().unwrap();
            assert!(ns > seq || v["type"] == "snapshot");
            (u, seq) = (Some(nu), ns);
            book.levels(true, &d["b"]);
            book.levels(false, &d["a"]);
            assert!(!book.crossed());
        } else if topic == "publicTrade.BTCUSDT" {
            let tr = &d[0];
            assert!(matches!(tr["S"].as_str(), Some("Buy" | "Sell")));
            assert!(tr["seq"].as_u64().unwrap() > 0);
            trades += 1;
        } else {
            assert_eq!(topic, "tickers.BTCUSDT");
            assert_eq!(d["bid1Price"].is_string(), want_linear, "{t}");
            assert!(d["lastPrice"].is_string() || want_linear);
        }
        if !pinged && deltas > 3 {
            send(&mut ws, r#"{"op":"ping","req_id":"hb"}"#);
            pinged = true;
        }
    }
    assert!(u.is_some(), "no snapshot");
    (deltas, trades, pong)
}

#[test]
fn bybit_spot_and_linear_books_chain_ping_and_reconnect() {
    for (venue, path, linear) in [
        (Venue::BybitSpot, "/v5/public/spot", false),
        (Venue::BybitLinear, "/v5/public/linear", true),
    ] {
        let faults = Faults {
            drop_every_frames: Some(300),
            ..Faults::default()
        };
        let sim =
            MdSim::start(gen_cfg("BTCUSDT", 50_000, faults), VenueOptions::new(venue)).unwrap();
        let url = format!("{}{path}", sim.ws_url());
        let (mut deltas, mut trades, mut pongs) = (0, 0, 0);
        for _ in 0..2 {
            let (d, t, p) = bybit_session(&url, linear);
            deltas += d;
            trades += t;
            pongs += u32::from(p);
        }
        assert!(
            deltas > 50 && trades > 10,
            "{venue}: {deltas} deltas {trades} trades"
        );
        assert_eq!(pongs, 2, "{venue}");
        assert_eq!(sim.stats().faults.drops, 2, "{venue}");
        // A bad topic fails the request; a good one in it still counts.
        let mut ws = connect(&url);
        send(
            &mut ws,
            r#"{"op":"subscribe","args":["orderbook.7.BTCUSDT"],"req_id":9}"#,
        );
        let v: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
        assert_eq!(v["success"], false);
        assert!(v["ret_msg"]
            .as_str()
            .unwrap()
            .contains("orderbook.7.BTCUSDT"));
    }
}

fn coinbase_session(url: &str) -> (u64, u64, u64) {
    let mut ws = connect(url);
    send(
        &mut ws,
        r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2","matches","heartbeat",{"name":"ticker","product_ids":["BTC-USD"]}]}"#,
    );
    let subs: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
    assert_eq!(subs["type"], "subscriptions");
    assert_eq!(subs["channels"].as_array().unwrap().len(), 4, "{subs}");
    let (mut updates, mut matches, mut heartbeats) = (0, 0, 0);
    let mut book: Option<Book> = None;
    let mut seq = 0u64;
    let mut last_trade = 0u64;
    while let Ok(t) = next_text(&mut ws) {
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["product_id"], "BTC-USD", "{t}");
        match v["type"].as_str().unwrap() {
            "snapshot" => {
                let mut b = Book::default();
                b.levels(true, &v["bids"]);
                b.levels(false, &v["asks"]);
                assert!(!b.crossed());
                book = Some(b);
            }
            "l2update" => {
                let b = book.as_mut().expect("an l2update before the snapshot");
                for c in v["changes"].as_array().unwrap() {
                    let bid = c[0] == "buy";
                    b.set(bid, c[1].as_str().unwrap(), c[2].as_str().unwrap());
                }
                assert!(!b.crossed());
                assert!(v["time"].as_str().unwrap().ends_with('Z'));
                updates += 1;
            }
            kind @ ("match" | "last_match") => {
                let s = v["sequence"].as_u64().unwrap();
                assert!(s > seq || kind == "last_match", "sequence rises: {t}");
                seq = seq.max(s);
                let id = v["trade_id"].as_u64().unwrap();
                assert!(id > last_trade || kind == "last_match");
                last_trade = last_trade.max(id);
                matches += u64::from(kind == "match");
            }
            "ticker" => assert!(v["best_bid"].is_string() && v["sequence"].is_u64()),
            "heartbeat" => {
                assert!(v["sequence"].as_u64().unwrap() >= seq);
                heartbeats += 1;
            }
            other => panic!("type {other}: {t}"),
        }
    }
    assert!(book.is_some(), "no snapshot");
    (updates, matches, heartbeats)
}

#[test]
fn coinbase_level2_matches_heartbeats_and_reconnect() {
    let faults = Faults {
        drop_every_frames: Some(600),
        ..Faults::default()
    };
    let mut cfg = gen_cfg("BTC-USD", 50_000, faults);
    // Slow enough that a connection lives through a heartbeat (one a second).
    cfg.pace = SimPace::Rate(300);
    let sim = MdSim::start(cfg, VenueOptions::new(Venue::Coinbase)).unwrap();
    let url = format!("{}/", sim.ws_url());
    let mut totals = (0, 0, 0);
    for _ in 0..2 {
        let (u, m, h) = coinbase_session(&url);
        totals = (totals.0 + u, totals.1 + m, totals.2 + h);
    }
    assert!(totals.0 > 100 && totals.1 > 10, "{totals:?}");
    assert!(totals.2 >= 1, "heartbeats {totals:?}");
    assert_eq!(sim.stats().faults.drops, 2);
    let mut ws = connect(&url);
    send(
        &mut ws,
        r#"{"type":"subscribe","product_ids":["BTC-EUR"],"channels":["level2"]}"#,
    );
    let v: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
    assert_eq!(v["type"], "error");
}

/// Minimal HTTP GET on loopback.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn binance_usdm_generated_diffs_chain_by_pu_rest_snapshot_and_reconnect() {
    let faults = Faults {
        drop_every: Some(Duration::from_millis(700)),
        ..Faults::default()
    };
    let mut cfg = gen_cfg("BTCUSDT", 50_000, faults);
    cfg.order_api = false;
    let sim = venue_sim::venues::binance_usdm::start(cfg).unwrap();
    let url = format!(
        "{}/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade",
        sim.ws_url()
    );
    let mut diffs = 0;
    for session in 0..2 {
        let mut ws = connect(&url);
        let mut prev_u: Option<u64> = None;
        let mut bridged = false;
        let mut last_id = None;
        while let Ok(t) = next_text(&mut ws) {
            let v: Value = serde_json::from_str(&t).unwrap();
            let d = &v["data"];
            match d["e"].as_str().unwrap() {
                "depthUpdate" => {
                    assert!(d["T"].is_u64());
                    let (pu, u) = (d["pu"].as_u64().unwrap(), d["u"].as_u64().unwrap());
                    if let Some(p) = prev_u {
                        assert_eq!(pu, p, "pu continuity: {t}");
                    }
                    prev_u = Some(u);
                    diffs += 1;
                    if last_id.is_none() && diffs % 5 == 0 {
                        // The futures REST snapshot, after some diffs: a later diff bridges it.
                        let (status, body) =
                            http_get(sim.http_addr(), "/fapi/v1/depth?symbol=BTCUSDT&limit=50");
                        assert!(status.contains("200"), "{status} {body}");
                        let snap: Value = serde_json::from_str(&body).unwrap();
                        assert!(snap["E"].is_u64() && snap["T"].is_u64());
                        last_id = snap["lastUpdateId"].as_u64();
                    }
                    if let Some(l) = last_id {
                        bridged |= pu <= l && l <= u;
                    }
                }
                "bookTicker" => assert!(d["E"].is_u64() && d["T"].is_u64()),
                "trade" => assert_eq!(d["X"], "MARKET"),
                e => panic!("{e}"),
            }
        }
        assert!(
            prev_u.is_some() && bridged,
            "session {session}: no diffs or no bridge"
        );
    }
    assert!(diffs > 20);
    assert!(sim.stats().faults.drops >= 2);
}

#[test]
fn binance_usdm_real_capture_replays_with_pu_continuity() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/binance-usdm/btcusdt_20240808.gz"
    );
    if !std::path::Path::new(path).exists() {
        eprintln!(
            "NOTICE: {path} absent; binance_usdm_real_capture_replays_with_pu_continuity skipped"
        );
        return;
    }
    let cfg = SimConfig {
        source: SimSource::Capture(path.into()),
        pace: SimPace::Asap,
        order_api: false,
        ..SimConfig::default()
    };
    let sim = venue_sim::venues::binance_usdm::start(cfg).unwrap();
    let mut ws = connect(&format!("{}/ws", sim.ws_url()));
    send(
        &mut ws,
        r#"{"method":"SUBSCRIBE","params":["btcusdt@depth@0ms"],"id":1}"#,
    );
    assert_eq!(next_text(&mut ws).unwrap(), r#"{"result":null,"id":1}"#);
    let mut prev: Option<u64> = None;
    let mut n = 0;
    while n < 2_000 {
        let v: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
        let (pu, u) = (v["pu"].as_u64().unwrap(), v["u"].as_u64().unwrap());
        if let Some(p) = prev {
            assert_eq!(pu, p);
        }
        prev = Some(u);
        n += 1;
    }
    let (status, body) = http_get(sim.http_addr(), "/fapi/v1/depth?symbol=BTCUSDT&limit=5");
    assert!(status.contains("200"), "{status} {body}");
    let snap: Value = serde_json::from_str(&body).unwrap();
    assert!(snap["lastUpdateId"].as_u64().unwrap() >= prev.unwrap());
    assert_eq!(sim.stats().decode_errors, 0);
}

/// A venue's own real capture (`../shared/data/cryptofeed/..`), replayed as fast as the client
/// reads, or `None` (with a NOTICE) when the data is absent.
fn native_sim(file: &str, venue: Venue) -> Option<MdSim> {
    let path = format!(
        "{}/../../shared/data/cryptofeed/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    if !std::path::Path::new(&path).exists() {
        eprintln!("NOTICE: {path} absent; its replay test skipped");
        return None;
    }
    let cfg = SimConfig {
        source: SimSource::Capture(path.into()),
        pace: SimPace::Asap,
        ..SimConfig::default()
    };
    Some(MdSim::start(cfg, VenueOptions::new(venue)).unwrap())
}

/// Reads until the feed is over (a 1 s silence once the simulator says it is done).
fn read_all(sim: &MdSim, ws: &mut Ws) -> Vec<Value> {
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    }
    let start = Instant::now();
    let mut out = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => out.push(serde_json::from_str(&t).unwrap()),
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(_) if sim.stats().feed_done => break,
            Err(_) => assert!(start.elapsed() < DEADLINE, "the feed never ended"),
        }
    }
    out
}

#[test]
fn okx_real_capture_replays_with_chained_ids_and_matching_checksums() {
    let Some(sim) = native_sim("OKX.ws.1.0", Venue::Okx) else {
        return;
    };
    assert_eq!(
        sim.symbols(),
        ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"]
    );
    let mut ws = connect(&format!("{}/ws/v5/public", sim.ws_url()));
    send(
        &mut ws,
        r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USDT"}]}"#,
    );
    let (mut book, mut seq, mut updates, mut trades) = (Book::default(), None, 0, 0);
    for v in read_all(&sim, &mut ws) {
        if v["event"].is_string() {
            continue;
        }
        let d = &v["data"][0];
        if v["arg"]["channel"] == "trades" {
            trades += 1;
            continue;
        }
        if v["action"] == "snapshot" {
            book = Book::default();
        } else {
            assert_eq!(d["prevSeqId"].as_i64(), seq, "{v}");
            updates += 1;
        }
        seq = d["seqId"].as_i64();
        book.levels(true, &d["bids"]);
        book.levels(false, &d["asks"]);
        assert_eq!(book.okx_checksum(), d["checksum"].as_i64().unwrap());
    }
    assert!(updates > 50, "{updates} updates");
    assert!(trades > 0);
    let st = sim.stats();
    assert_eq!((st.decode_errors, st.source_errors), (0, 0));
}

#[test]
fn coinbase_real_capture_replays_level2_and_matches() {
    let Some(sim) = native_sim("COINBASE.ws.28.0", Venue::Coinbase) else {
        return;
    };
    let names = sim.symbols();
    assert_eq!(names.len(), 10, "{names:?}");
    let mut ws = connect(&format!("{}/", sim.ws_url()));
    let ids = serde_json::to_string(&names).unwrap();
    send(
        &mut ws,
        &format!(r#"{{"type":"subscribe","product_ids":{ids},"channels":["level2","matches"]}}"#),
    );
    let mut books: std::collections::HashMap<String, Book> = Default::default();
    let (mut updates, mut matches) = (0, 0);
    for v in read_all(&sim, &mut ws) {
        let p = v["product_id"].as_str().unwrap_or("").to_string();
        match v["type"].as_str().unwrap() {
            "subscriptions" => {}
            "snapshot" => {
                let mut b = Book::default();
                b.levels(true, &v["bids"]);
                b.levels(false, &v["asks"]);
                books.insert(p, b);
            }
            "l2update" => {
                let b = books.get_mut(&p).expect("an l2update before its snapshot");
                for c in v["changes"].as_array().unwrap() {
                    b.set(
                        c[0] == "buy",
                        c[1].as_str().unwrap(),
                        c[2].as_str().unwrap(),
                    );
                }
                updates += 1;
            }
            "match" | "last_match" => matches += 1,
            t => panic!("{t}"),
        }
    }
    assert_eq!(books.len(), 10);
    assert!(updates > 5_000 && matches > 50, "{updates} {matches}");
    assert_eq!(sim.stats().decode_errors, 0);
}

#[test]
fn bybit_real_capture_replays_spot_and_linear_books() {
    for venue in [Venue::BybitSpot, Venue::BybitLinear] {
        let Some(sim) = native_sim("BYBIT.jsonl.zst", venue) else {
            return;
        };
        let path = if venue == Venue::BybitSpot {
            "spot"
        } else {
            "linear"
        };
        let mut ws = connect(&format!("{}/v5/public/{path}", sim.ws_url()));
        send(
            &mut ws,
            r#"{"op":"subscribe","args":["orderbook.200.BTCUSDT","publicTrade.BTCUSDT"]}"#,
        );
        let (mut u, mut deltas, mut trades) = (None, 0, 0);
        for v in read_all(&sim, &mut ws) {
            if v["op"].is_string() {
                assert_eq!(v["success"], true, "{v}");
                continue;
            }
            if v["topic"] == "publicTrade.BTCUSDT" {
                trades += 1;
                continue;
            }
            let nu = v["data"]["u"].as_u64();
            if v["type"] == "delta" {
                assert_eq!(nu, u.map(|u: u64| u + 1));
                deltas += 1;
            }
            u = nu;
        }
        assert!(
            deltas > 10 && trades > 0,
            "{venue}: {deltas} deltas {trades} trades"
        );
        assert_eq!(sim.stats().decode_errors, 0, "{venue}");
    }
}

#[test]
fn binance_spot_drop_every_frames_hangs_up_after_exactly_n_frames() {
    let faults = Faults {
        drop_every_frames: Some(100),
        ..Faults::default()
    };
    let mut cfg = gen_cfg("BTCUSDT", 50_000, faults);
    cfg.order_api = false;
    let sim = venue_sim::VenueSim::start(cfg).unwrap();
    let url = format!(
        "{}/stream?streams=btcusdt@trade/btcusdt@depth@100ms",
        sim.ws_url()
    );
    for _ in 0..2 {
        let mut ws = connect(&url);
        let mut n = 0;
        while next_text(&mut ws).is_ok() {
            n += 1;
        }
        assert_eq!(n, 100);
    }
    assert_eq!(sim.stats().faults.drops, 2);
}

#[test]
fn fragmented_frames_reassemble_and_a_stalled_connection_goes_silent() {
    let faults = Faults {
        fragment: true,
        stall_after: Some(Duration::from_millis(400)),
        ..Faults::default()
    };
    let sim = MdSim::start(
        gen_cfg("BTCUSDT", 50_000, faults),
        VenueOptions::new(Venue::BybitLinear),
    )
    .unwrap();
    let mut ws = connect(&format!("{}/v5/public/linear", sim.ws_url()));
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    }
    send(
        &mut ws,
        r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}"#,
    );
    let mut frames = 0;
    // Every message (three fragments each) reads as one JSON text until the stall; then
    // nothing comes, and the socket stays open.
    while let Ok(t) = next_text(&mut ws) {
        let v: Value = serde_json::from_str(&t).unwrap();
        assert!(
            v["success"] == true || v["topic"] == "orderbook.50.BTCUSDT",
            "{t}"
        );
        frames += 1;
    }
    assert!(frames > 10, "{frames}");
    let st = sim.stats();
    assert_eq!(st.faults.stalls, 1);
    assert_eq!(st.connections_open, 1, "stalled, not closed");
    assert!(st.faults.fragmented_messages >= frames - 1, "{st:?}");
}

#[test]
fn okx_resubscribe_resyncs_with_a_fresh_snapshot_and_no_stale_update() {
    let sim = MdSim::start(
        gen_cfg("BTC-USDT", 50_000, Faults::default()),
        VenueOptions::new(Venue::Okx),
    )
    .unwrap();
    let mut ws = connect(&format!("{}/ws/v5/public", sim.ws_url()));
    let books = r#"[{"channel":"books","instId":"BTC-USDT"}]"#;
    let trades = r#"[{"channel":"trades","instId":"BTC-USDT"}]"#;
    send(&mut ws, &format!(r#"{{"op":"subscribe","args":{books}}}"#));
    send(&mut ws, &format!(r#"{{"op":"subscribe","args":{trades}}}"#));
    // Updates chain from the snapshot; after 30, unsubscribe and subscribe again at once (the
    // venue's resync): updates already sent still chain, then a fresh snapshot comes and the
    // updates chain from it, none from before it. Three times.
    let (mut seq, mut book) = (None::<i64>, Book::default());
    let (mut rounds, mut updates, mut resubscribed) = (0, 0, false);
    while rounds < 3 {
        let v: Value = serde_json::from_str(&next_text(&mut ws).unwrap()).unwrap();
        if v["event"].is_string() || v["arg"]["channel"] != "books" {
            continue;
        }
        let d = &v["data"][0];
        if v["action"] == "snapshot" {
            assert!(seq.is_none() || resubscribed, "an unasked snapshot: {v}");
            book = Book::default();
            if resubscribed {
                (rounds, updates, resubscribed) = (rounds + 1, 0, false);
            }
        } else {
            assert_eq!(
                d["prevSeqId"].as_i64(),
                seq,
                "round {rounds}: a stale or lost update"
            );
            updates += 1;
        }
        seq = d["seqId"].as_i64();
        book.levels(true, &d["bids"]);
        book.levels(false, &d["asks"]);
        assert_eq!(book.okx_checksum(), d["checksum"].as_i64().unwrap());
        if updates == 30 && !resubscribed {
            send(
                &mut ws,
                &format!(r#"{{"op":"unsubscribe","args":{books}}}"#),
            );
            send(&mut ws, &format!(r#"{{"op":"subscribe","args":{books}}}"#));
            resubscribed = true;
        }
    }
    let st = sim.stats();
    assert_eq!(st.unsubscriptions, 3);
    assert_eq!(st.subscriptions, 2 + 3);
}
