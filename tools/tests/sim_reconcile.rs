//! Reconciling with the venue simulator after a restart, over real loopback sockets:
//! `order.status` for open, filled, canceled, expired and unknown orders, `myTrades` returning
//! exactly the fills the execution reports carried (filters, limit, account scope), fills of a
//! connection that is gone, and the ledger (in process, and written by `tickline venue-sim
//! --ledger` while it runs and after it is killed). Every wait is bounded.

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};
use venue_sim::gen::{FeedGenerator, GenConfig, GenKind};
use venue_sim::{read_ledger, LedgerEntry, SimAuth, SimConfig, SimPace, SimSource, VenueSim};

/// Upper bound of any single wait in these tests.
const T: Duration = Duration::from_secs(15);
/// 1.0 in the 1e-8 units of prices and quantities.
const ONE: i64 = 100_000_000;
/// The API key of the default account.
const KEY: &str = "test-key";

fn gen(events: u64, seed: u64) -> GenConfig {
    GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed,
        start_ns: 1_000_000_000,
    }
}

/// A simulator whose generated feed has been published to the end before it returns, so its
/// book stands still.
fn still_sim(seed: u64, ledger: Option<PathBuf>) -> VenueSim {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(2_000, seed)),
        pace: SimPace::Asap,
        wait_for_subscribers: 0,
        ledger,
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    assert!(sim.wait_until_done(T));
    sim
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tickline-reconcile-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, T).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.set_write_timeout(Some(T)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Units of 1e-8 as Binance writes them.
fn dec(units: i64) -> String {
    format!("{}.{:08}", units / ONE, units % ONE)
}

/// Price levels as `(price, qty)` units, best first.
type Levels = Vec<(i64, i64)>;

/// A decimal string as 1e-8 units.
fn units(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"));
    let (w, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<8}");
    w.parse::<i64>().unwrap() * ONE + f[..8].parse::<i64>().unwrap()
}

/// `GET /api/v3/depth`: bids and asks; `None` until the simulator has a book.
fn try_depth(http: SocketAddr) -> Option<(Levels, Levels)> {
    let mut s = tcp(http);
    write!(
        s,
        "GET /api/v3/depth?symbol=BTCUSDT&limit=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    let v: Value = serde_json::from_str(body).unwrap();
    let side = |k: &str| -> Levels {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|l| (units(&l[0]), units(&l[1])))
            .collect()
    };
    Some((side("bids"), side("asks")))
}

fn depth(sim: &VenueSim) -> (Levels, Levels) {
    try_depth(sim.http_addr()).expect("a book")
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A WebSocket client of the order API.
struct Client {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// `executionReport` payloads received while waiting for replies.
    events: VecDeque<Value>,
    /// The text of the last reply.
    raw: String,
}

impl Client {
    fn connect_to(ws_url: &str, addr: SocketAddr) -> Client {
        let url = format!("{ws_url}/ws-api/v3");
        let (ws, resp) = tungstenite::client(url, tcp(addr)).unwrap();
        assert_eq!(resp.status(), 101);
        Client {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            raw: String::new(),
        }
    }

    fn connect(sim: &VenueSim) -> Client {
        Client::connect_to(&sim.ws_url(), sim.ws_addr())
    }

    /// The next text message (pings skipped).
    fn read_text(&mut self) -> String {
        loop {
            match self.ws.read().unwrap() {
                Message::Text(t) => return t.as_str().to_string(),
                Message::Ping(_) | Message::Pong(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
    }

    /// Sends a request and returns its reply (events on the way are kept).
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let req = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::Text(req.into())).unwrap();
        loop {
            let text = self.read_text();
            let v: Value = serde_json::from_str(&text).unwrap();
            if let Some(e) = v.get("event") {
                self.events.push_back(e.clone());
                continue;
            }
            assert_eq!(v["id"], id, "{v}");
            self.raw = text;
            return v;
        }
    }

    /// The next `executionReport`.
    fn event(&mut self) -> Value {
        loop {
            if let Some(e) = self.events.pop_front() {
                assert_eq!(e["e"], "executionReport", "{e}");
                return e;
            }
            let v: Value = serde_json::from_str(&self.read_text()).unwrap();
            match v.get("event") {
                Some(e) => self.events.push_back(e.clone()),
                None => panic!("unexpected {v}"),
            }
        }
    }

    /// The next `n` reports.
    fn events(&mut self, n: usize) -> Vec<Value> {
        (0..n).map(|_| self.event()).collect()
    }
}

/// The authentication parameters of `key`'s account added to `p`.
fn auth_as(key: &str, mut p: Value) -> Value {
    p["apiKey"] = json!(key);
    p["signature"] = json!("0123abcd");
    p["timestamp"] = json!(1_700_000_000_000u64);
    p
}

fn auth(p: Value) -> Value {
    auth_as(KEY, p)
}

/// `order.place` parameters for `key`'s account.
fn order_as(
    key: &str,
    side: &str,
    typ: &str,
    tif: Option<&str>,
    price: Option<i64>,
    qty: i64,
    id: &str,
) -> Value {
    let mut p = json!({
        "symbol": "BTCUSDT", "side": side, "type": typ, "quantity": dec(qty),
        "newClientOrderId": id,
    });
    if let Some(t) = tif {
        p["timeInForce"] = json!(t);
    }
    if let Some(px) = price {
        p["price"] = json!(dec(px));
    }
    auth_as(key, p)
}

fn order(
    side: &str,
    typ: &str,
    tif: Option<&str>,
    price: Option<i64>,
    qty: i64,
    id: &str,
) -> Value {
    order_as(KEY, side, typ, tif, price, qty, id)
}

/// `(status, error code)` of an error reply.
fn err(r: &Value) -> (u64, i64) {
    (
        r["status"].as_u64().unwrap(),
        r["error"]["code"].as_i64().unwrap(),
    )
}

/// The `myTrades` entry a `TRADE` execution report stands for.
fn trade_of(e: &Value) -> Value {
    assert_eq!(e["x"], "TRADE", "{e}");
    let is_buyer = e["S"] == "BUY";
    json!({
        "symbol": e["s"], "id": e["t"], "orderId": e["i"], "orderListId": -1,
        "price": e["L"], "qty": e["l"], "quoteQty": e["Y"], "commission": e["n"],
        "commissionAsset": e["N"], "time": e["T"], "isBuyer": is_buyer,
        "isMaker": e["m"], "isBestMatch": true,
    })
}

fn trades(c: &mut Client, key: &str, extra: Value) -> Vec<Value> {
    let mut p = auth_as(key, json!({"symbol": "BTCUSDT"}));
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    let r = c.call("myTrades", p);
    assert_eq!(r["status"], 200, "{r}");
    r["result"].as_array().unwrap().clone()
}

fn ids(list: &[Value]) -> Vec<u64> {
    list.iter().map(|t| t["id"].as_u64().unwrap()).collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn order_status_for_open_filled_canceled_expired_and_unknown_orders() {
    let sim = still_sim(31, None);
    let (bids, asks) = depth(&sim);
    let mut c = Client::connect(&sim);

    // Open: a passive buy below the best bid.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[3].0),
            ONE / 10,
            "tl-1",
        ),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    let open_id = r["result"]["orderId"].as_u64().unwrap();
    let t = r["result"]["transactTime"].as_u64().unwrap();
    let st = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "orderId": open_id})),
    );
    // The whole reply, keys in Binance's documented order.
    let expected = format!(
        "{{\"id\":2,\"status\":200,\"result\":{{\"symbol\":\"BTCUSDT\",\"orderId\":{open_id},\
         \"orderListId\":-1,\"clientOrderId\":\"tl-1\",\"price\":\"{}\",\"origQty\":\"0.10000000\",\
         \"executedQty\":\"0.00000000\",\"cummulativeQuoteQty\":\"0.00000000\",\"status\":\"NEW\",\
         \"timeInForce\":\"GTC\",\"type\":\"LIMIT\",\"side\":\"BUY\",\"stopPrice\":\"0.00000000\",\
         \"icebergQty\":\"0.00000000\",\"time\":{t},\"updateTime\":{t},\"isWorking\":true,\
         \"workingTime\":{t},\"origQuoteOrderQty\":\"0.00000000\",\
         \"selfTradePreventionMode\":\"NONE\"}}}}",
        dec(bids[3].0)
    );
    assert_eq!(c.raw, expected);
    eprintln!("order.status (open): {}", c.raw);
    // By client order id, and by both: the same order.
    let by_cid = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-1"})),
    );
    assert_eq!(by_cid["result"], st["result"]);
    let both = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "orderId": open_id, "origClientOrderId": "tl-1"})),
    );
    assert_eq!(both["result"], st["result"]);
    // openOrders.status reports it identically.
    let oo = c.call("openOrders.status", auth(json!({"symbol": "BTCUSDT"})));
    assert_eq!(oo["result"], json!([st["result"]]));

    // Filled: a market buy of the best ask.
    let r = c.call(
        "order.place",
        order("BUY", "MARKET", None, None, asks[0].1, "tl-2"),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let filled_id = r["result"]["orderId"].as_u64().unwrap();
    let st = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-2"})),
    );
    eprintln!("order.status (filled): {}", c.raw);
    let o = &st["result"];
    assert_eq!(
        (
            o["status"].as_str(),
            o["type"].as_str(),
            o["orderId"].as_u64()
        ),
        (Some("FILLED"), Some("MARKET"), Some(filled_id))
    );
    assert_eq!(o["executedQty"], dec(asks[0].1));
    assert_eq!(o["origQty"], dec(asks[0].1));
    assert_eq!(o["cummulativeQuoteQty"], r["result"]["cummulativeQuoteQty"]);
    assert_eq!(o["price"], "0.00000000");
    assert!(o["updateTime"].as_u64() >= o["time"].as_u64());

    // Canceled.
    let r = c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "orderId": open_id})),
    );
    assert_eq!(r["result"]["status"], "CANCELED", "{r}");
    let st = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "orderId": open_id})),
    );
    let o = &st["result"];
    assert_eq!(
        (o["status"].as_str(), o["clientOrderId"].as_str()),
        (Some("CANCELED"), Some("tl-1"))
    );
    assert!(o["updateTime"].as_u64() >= o["time"].as_u64());
    assert_eq!(o["executedQty"], "0.00000000");

    // Expired: an IOC that crosses nothing.
    let r = c.call(
        "order.place",
        order(
            "SELL",
            "LIMIT",
            Some("IOC"),
            Some(asks[5].0),
            ONE / 10,
            "tl-3",
        ),
    );
    assert_eq!(r["result"]["status"], "EXPIRED", "{r}");
    let st = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-3"})),
    );
    assert_eq!(
        (
            st["result"]["status"].as_str(),
            st["result"]["timeInForce"].as_str()
        ),
        (Some("EXPIRED"), Some("IOC"))
    );

    // Unknown orders: Binance's error, exactly.
    let r = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "orderId": 999_999})),
    );
    assert_eq!(
        c.raw,
        format!(
            "{{\"id\":{},\"status\":400,\"error\":{{\"code\":-2013,\"msg\":\"Order does not exist.\"}}}}",
            r["id"]
        )
    );
    eprintln!("order.status (unknown): {}", c.raw);
    for p in [
        json!({"symbol": "BTCUSDT", "origClientOrderId": "never-sent"}),
        // The order found by id must carry the client id given with it.
        json!({"symbol": "BTCUSDT", "orderId": filled_id, "origClientOrderId": "tl-1"}),
        // Orders are per symbol... (the only one here) and per account:
    ] {
        let r = c.call("order.status", auth(p.clone()));
        assert_eq!(err(&r), (400, -2013), "{p}: {r}");
    }
    for p in [
        json!({"symbol": "BTCUSDT", "orderId": filled_id}),
        json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-2"}),
    ] {
        let r = c.call("order.status", auth_as("someone-else", p.clone()));
        assert_eq!(err(&r), (400, -2013), "{p}: {r}");
    }
    // Malformed requests keep their own errors.
    let r = c.call("order.status", auth(json!({"symbol": "BTCUSDT"})));
    assert_eq!(err(&r), (400, -1102), "{r}");
    let r = c.call(
        "order.status",
        auth(json!({"symbol": "NOPE", "orderId": 1})),
    );
    assert_eq!(err(&r), (400, -1121), "{r}");

    // A client order id used again once its order is done: the new order answers to it, the
    // old one still to its order id.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[4].0),
            ONE / 10,
            "tl-2",
        ),
    );
    let again = r["result"]["orderId"].as_u64().unwrap();
    let st = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-2"})),
    );
    assert_eq!(
        (
            st["result"]["orderId"].as_u64(),
            st["result"]["status"].as_str()
        ),
        (Some(again), Some("NEW"))
    );
    let st = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "orderId": filled_id})),
    );
    assert_eq!(st["result"]["status"], "FILLED");
}

#[test]
fn my_trades_returns_exactly_the_reported_fills() {
    let sim = still_sim(32, None);
    let (bids, asks) = depth(&sim);
    let mut c = Client::connect(&sim);

    // A market buy over three ask levels: three fills.
    let q = asks[0].1 + asks[1].1 + asks[2].1 / 2;
    let r = c.call("order.place", order("BUY", "MARKET", None, None, q, "tl-1"));
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let buy_id = r["result"]["orderId"].as_u64().unwrap();
    let buy_evs = c.events(4);
    // A sell IOC over two bid levels: two fills.
    let q = bids[0].1 + bids[1].1 / 2;
    let r = c.call(
        "order.place",
        order("SELL", "LIMIT", Some("IOC"), Some(bids[1].0), q, "tl-2"),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let sell_id = r["result"]["orderId"].as_u64().unwrap();
    let sell_evs = c.events(3);
    let reported: Vec<Value> = buy_evs[1..]
        .iter()
        .chain(&sell_evs[1..])
        .map(trade_of)
        .collect();
    assert_eq!(reported.len(), 5);

    // Everything: exactly the reported fills, oldest first.
    let all = trades(&mut c, KEY, json!({}));
    assert_eq!(all, reported);
    let raw = c.raw.clone();
    eprintln!("myTrades: {raw}");
    // Keys in Binance's documented order.
    let first = &raw[raw.find("[{").unwrap() + 1..raw.find("},{").unwrap() + 1];
    let keys: Vec<&str> = first
        .split("\":")
        .map(|s| s.rsplit('"').next().unwrap())
        .collect();
    assert_eq!(
        &keys[..keys.len() - 1],
        [
            "symbol",
            "id",
            "orderId",
            "orderListId",
            "price",
            "qty",
            "quoteQty",
            "commission",
            "commissionAsset",
            "time",
            "isBuyer",
            "isMaker",
            "isBestMatch"
        ]
    );
    assert_eq!(all[0]["commissionAsset"], "BTC");
    assert_eq!(all[4]["commissionAsset"], "USDT");
    assert_eq!(
        (all[0]["isBuyer"].as_bool(), all[0]["isMaker"].as_bool()),
        (Some(true), Some(false))
    );
    let rid = ids(&reported);

    // By order.
    assert_eq!(
        ids(&trades(&mut c, KEY, json!({"orderId": buy_id}))),
        rid[..3]
    );
    assert_eq!(
        ids(&trades(&mut c, KEY, json!({"orderId": sell_id}))),
        rid[3..]
    );
    assert_eq!(
        ids(&trades(
            &mut c,
            KEY,
            json!({"orderId": sell_id, "limit": 1})
        )),
        rid[3..4]
    );
    assert!(trades(&mut c, KEY, json!({"orderId": 999_999})).is_empty());
    // From a trade id (inclusive), with and without a limit; with an order.
    assert_eq!(
        ids(&trades(&mut c, KEY, json!({"fromId": rid[1]}))),
        rid[1..]
    );
    assert_eq!(
        ids(&trades(&mut c, KEY, json!({"fromId": rid[1], "limit": 2}))),
        rid[1..3]
    );
    assert_eq!(
        ids(&trades(
            &mut c,
            KEY,
            json!({"fromId": rid[1], "orderId": buy_id})
        )),
        rid[1..3]
    );
    assert!(trades(&mut c, KEY, json!({"fromId": rid[4] + 1})).is_empty());
    // A limit alone: the most recent, oldest first.
    assert_eq!(ids(&trades(&mut c, KEY, json!({"limit": 2}))), rid[3..]);
    // A time range covering them all.
    let t0 = reported[0]["time"].as_u64().unwrap();
    let t1 = reported[4]["time"].as_u64().unwrap();
    assert_eq!(
        ids(&trades(
            &mut c,
            KEY,
            json!({"startTime": t0, "endTime": t1})
        )),
        rid
    );
    assert!(trades(&mut c, KEY, json!({"startTime": t1 + 1})).is_empty());
    // Another account has none of them.
    assert!(trades(&mut c, "someone-else", json!({})).is_empty());
    // Bad combinations and limits.
    for (p, code) in [
        (json!({"limit": 1001}), -1130),
        (json!({"limit": 0}), -1130),
        (json!({"fromId": 1, "startTime": t0}), -1128),
        (json!({"orderId": buy_id, "endTime": t1}), -1128),
        (json!({"startTime": 0, "endTime": 86_400_001}), -1127),
    ] {
        let mut params = auth(json!({"symbol": "BTCUSDT"}));
        for (k, v) in p.as_object().unwrap() {
            params[k] = v.clone();
        }
        let r = c.call("myTrades", params);
        assert_eq!(err(&r), (400, code), "{p}: {r}");
    }
    let r = c.call("myTrades", auth(json!({})));
    assert_eq!(err(&r), (400, -1102), "{r}");
}

#[test]
fn a_match_between_two_accounts_is_one_trade_id_seen_from_each_side() {
    let sim = still_sim(33, None);
    let (bids, asks) = depth(&sim);
    // One tick (0.01) inside the spread: the order API refuses prices off the tick.
    const TICK: i64 = 1_000_000;
    assert!(asks[0].0 - bids[0].0 > TICK, "a spread to rest inside");
    let p = asks[0].0 - TICK;
    let mut maker = Client::connect(&sim);
    let mut taker = Client::connect(&sim);
    let r = maker.call(
        "order.place",
        order_as(
            "maker-key",
            "SELL",
            "LIMIT",
            Some("GTC"),
            Some(p),
            ONE / 10,
            "m-1",
        ),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    let m_id = r["result"]["orderId"].as_u64().unwrap();
    assert_eq!(maker.event()["x"], "NEW");
    let r = taker.call(
        "order.place",
        order_as(
            "taker-key",
            "BUY",
            "LIMIT",
            Some("IOC"),
            Some(p),
            ONE / 10,
            "t-1",
        ),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let m_ev = maker.event();
    let t_evs = taker.events(2);
    assert_eq!(m_ev["t"], t_evs[1]["t"]);

    let m = trades(&mut maker, "maker-key", json!({}));
    let t = trades(&mut taker, "taker-key", json!({}));
    assert_eq!(m, vec![trade_of(&m_ev)]);
    assert_eq!(t, vec![trade_of(&t_evs[1])]);
    assert_eq!(m[0]["id"], t[0]["id"]);
    assert_eq!(
        (m[0]["isMaker"].as_bool(), m[0]["isBuyer"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(
        (t[0]["isMaker"].as_bool(), t[0]["isBuyer"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(
        (
            m[0]["commissionAsset"].as_str(),
            t[0]["commissionAsset"].as_str()
        ),
        (Some("USDT"), Some("BTC"))
    );
    // Each account sees its own order only.
    let r = taker.call(
        "order.status",
        auth_as("taker-key", json!({"symbol": "BTCUSDT", "orderId": m_id})),
    );
    assert_eq!(err(&r), (400, -2013), "{r}");
    let r = taker.call(
        "order.status",
        auth_as("maker-key", json!({"symbol": "BTCUSDT", "orderId": m_id})),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
}

/// The generator's trades, in order: `(price, qty)` units.
fn gen_trades(cfg: &GenConfig) -> Vec<(i64, i64)> {
    let mut g = FeedGenerator::new(cfg.clone()).unwrap();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(f) = g.next_frame(&mut buf) {
        if f.kind != GenKind::Trade {
            continue;
        }
        let v: Value = serde_json::from_slice(&buf).unwrap();
        out.push((units(&v["data"]["p"]), units(&v["data"]["q"])));
    }
    out
}

#[test]
fn fills_made_while_the_owner_was_gone_are_recovered_and_in_the_ledger() {
    let dir = tmp_dir("gone");
    let ledger = dir.join("ledger.jsonl");
    let cfg = gen(3_000, 34);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(cfg.clone()),
        pace: SimPace::Rate(5_000),
        wait_for_subscribers: 1,
        ledger: Some(ledger.clone()),
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    wait_for("the snapshot", || try_depth(sim.http_addr()).is_some());
    let (bids, asks) = depth(&sim);
    // A resting order the first published trade at or through its price fills.
    let trades_in_feed = gen_trades(&cfg);
    let qty = ONE / 1000;
    let buy = trades_in_feed
        .iter()
        .find(|t| t.0 <= bids[0].0)
        .map(|_| ("BUY", bids[0].0));
    let sell = trades_in_feed
        .iter()
        .find(|t| t.0 >= asks[0].0)
        .map(|_| ("SELL", asks[0].0));
    let (side, price) = buy.or(sell).expect("a trade through the touch");
    let order_id = {
        // The engine's connection: it places the order and is killed.
        let mut engine = Client::connect(&sim);
        let r = engine.call(
            "order.place",
            order(side, "LIMIT", Some("GTC"), Some(price), qty, "tl-7"),
        );
        assert_eq!(r["result"]["status"], "NEW", "{r}");
        r["result"]["orderId"].as_u64().unwrap()
    };
    wait_for("the connection to go", || sim.stats().connections_open == 0);
    // The feed starts; the order fills with nobody to tell.
    let _md = tungstenite::client(
        format!("{}/stream?streams=btcusdt@trade", sim.ws_url()),
        tcp(sim.ws_addr()),
    )
    .unwrap();
    wait_for("the fill", || sim.stats().orders.fills >= 1);
    wait_for("the dropped report", || {
        sim.stats().orders.events_dropped >= 1
    });
    // Once the feed is exhausted, every request sees all of its trades (each drains the trade
    // tap first), so the answers below cannot change under us.
    wait_for("the end of the feed", || sim.stats().feed_done);

    // The engine restarts and asks.
    let mut engine = Client::connect(&sim);
    let st = engine.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-7"})),
    );
    let o = &st["result"];
    assert_eq!(o["orderId"].as_u64(), Some(order_id), "{st}");
    assert!(units(&o["executedQty"]) > 0, "{st}");
    let fills = trades(&mut engine, KEY, json!({"orderId": order_id}));
    assert!(!fills.is_empty());
    let filled: i64 = fills.iter().map(|f| units(&f["qty"])).sum();
    assert_eq!(dec(filled), o["executedQty"].as_str().unwrap());
    assert!(fills
        .iter()
        .all(|f| units(&f["price"]) == price && f["isMaker"] == true));

    // The ledger says the same.
    let entries = sim.ledger().unwrap();
    assert_eq!(
        entries[0],
        LedgerEntry::Place {
            client_order_id: Some("tl-7".into()),
            order_id: Some(order_id),
            accepted: true
        }
    );
    let ledger_fills: Vec<(u64, String)> = entries[1..]
        .iter()
        .map(|e| match e {
            LedgerEntry::Fill {
                client_order_id,
                order_id: o,
                trade_id,
                price: p,
                qty,
            } => {
                assert_eq!((client_order_id.as_str(), *o), ("tl-7", order_id));
                assert_eq!(p, &dec(price));
                (*trade_id, qty.clone())
            }
            e => panic!("{e:?}"),
        })
        .collect();
    let api_fills: Vec<(u64, String)> = fills
        .iter()
        .map(|f| {
            (
                f["id"].as_u64().unwrap(),
                f["qty"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ledger_fills, api_fills);
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_ledger_logs_every_place_request_and_exactly_the_reported_fills() {
    let dir = tmp_dir("ledger");
    let path = dir.join("ledger.jsonl");
    let sim = still_sim(35, Some(path.clone()));
    assert_eq!(sim.ledger_path(), Some(path.as_path()));
    assert_eq!(sim.ledger().unwrap(), vec![]);
    let (bids, asks) = depth(&sim);
    let mut c = Client::connect(&sim);
    let mut reports = Vec::new();

    // Accepted and filled over two levels.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "MARKET",
            None,
            None,
            asks[0].1 + asks[1].1 / 2,
            "tl-1",
        ),
    );
    let id1 = r["result"]["orderId"].as_u64().unwrap();
    reports.extend(c.events(3));
    // Accepted, resting.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[2].0),
            ONE / 10,
            "tl-2",
        ),
    );
    let id2 = r["result"]["orderId"].as_u64().unwrap();
    reports.extend(c.events(1));
    // The same client id again while it is open: refused by the matching engine.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[3].0),
            ONE / 10,
            "tl-2",
        ),
    );
    assert_eq!(err(&r), (400, -2010), "{r}");
    let rejected = c.event();
    assert_eq!(rejected["X"], "REJECTED");
    let id3 = rejected["i"].as_u64().unwrap();
    // Refused before the matching engine (bad price), and without a client id at all.
    let mut bad = order("BUY", "LIMIT", Some("GTC"), Some(ONE), ONE, "tl-3");
    bad["price"] = json!("1,5");
    assert_eq!(err(&c.call("order.place", bad)), (400, -1100));
    let anon_qty = bids[0].1.min(ONE / 100);
    let mut anon = order("SELL", "LIMIT", Some("IOC"), Some(bids[0].0), anon_qty, "x");
    anon.as_object_mut().unwrap().remove("newClientOrderId");
    let r = c.call("order.place", anon);
    let id4 = r["result"]["orderId"].as_u64().unwrap();
    let anon_id = r["result"]["clientOrderId"].as_str().unwrap().to_string();
    assert_eq!(anon_id, format!("sim-{id4}"));
    reports.extend(c.events(2));
    // Cancels are not in the ledger.
    c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "orderId": id2})),
    );
    reports.extend(c.events(1));

    let entries = sim.ledger().unwrap();
    let places: Vec<(Option<String>, Option<u64>, bool)> = entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Place {
                client_order_id,
                order_id,
                accepted,
            } => Some((client_order_id.clone(), *order_id, *accepted)),
            _ => None,
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        places,
        vec![
            (s("tl-1"), Some(id1), true),
            (s("tl-2"), Some(id2), true),
            (s("tl-2"), Some(id3), false),
            (s("tl-3"), None, false),
            (Some(anon_id.clone()), Some(id4), true),
        ]
    );
    // Every client order id was placed (accepted) at most once.
    let mut accepted: HashMap<String, u32> = HashMap::new();
    for (cid, _, ok) in &places {
        if *ok {
            *accepted.entry(cid.clone().unwrap()).or_default() += 1;
        }
    }
    assert!(accepted.values().all(|&n| n == 1), "{accepted:?}");
    // The ledger's fills are exactly the reported ones.
    let ledger_fills: BTreeSet<(String, u64, u64, String, String)> = entries
        .iter()
        .filter_map(|e| match e {
            LedgerEntry::Fill {
                client_order_id,
                order_id,
                trade_id,
                price,
                qty,
            } => Some((
                client_order_id.clone(),
                *order_id,
                *trade_id,
                price.clone(),
                qty.clone(),
            )),
            _ => None,
        })
        .collect();
    let reported: BTreeSet<(String, u64, u64, String, String)> = reports
        .iter()
        .filter(|e| e["x"] == "TRADE")
        .map(|e| {
            (
                e["c"].as_str().unwrap().to_string(),
                e["i"].as_u64().unwrap(),
                e["t"].as_u64().unwrap(),
                e["L"].as_str().unwrap().to_string(),
                e["l"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reported.len(), 3);
    assert_eq!(ledger_fills, reported);
    // An order's place line comes before its fills.
    let pos = |want: &dyn Fn(&LedgerEntry) -> bool| entries.iter().position(want).unwrap();
    assert!(
        pos(&|e| matches!(e, LedgerEntry::Place { order_id: Some(i), .. } if *i == id1))
            < pos(&|e| matches!(e, LedgerEntry::Fill { order_id: i, .. } if *i == id1))
    );
    // The file, as written.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{{\"type\":\"place\",\"clientOrderId\":\"tl-1\",\"orderId\":{id1},\"accepted\":true}}"
        )
    );
    let f = reports.iter().find(|e| e["x"] == "TRADE").unwrap();
    assert_eq!(
        lines[1],
        format!(
            "{{\"type\":\"fill\",\"clientOrderId\":\"tl-1\",\"orderId\":{id1},\"tradeId\":{},\
             \"price\":{},\"qty\":{}}}",
            f["t"], f["L"], f["l"]
        )
    );
    eprintln!("ledger:\n{text}");
    assert_eq!(read_ledger(&path).unwrap(), entries);

    // A simulator without a ledger has none to read.
    drop(sim);
    let plain = still_sim(36, None);
    assert_eq!(plain.ledger_path(), None);
    assert!(plain.ledger().is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the child when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ledger_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn venue_sim_writes_the_ledger_while_running_and_keeps_it_when_killed() {
    let dir = tmp_dir("cli");
    let path = dir.join("ledger.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_tickline"))
        .args([
            "venue-sim",
            "--events",
            "2000",
            "--seed",
            "37",
            "--pace",
            "asap",
            "--wait-for",
            "0",
            "--linger",
            "60s",
            "--lenient-auth",
            "--ledger",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run tickline");
    let mut child = Killed(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut addr = |name: &str| {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let url = line
            .strip_prefix(&format!("{name} "))
            .unwrap_or_else(|| panic!("{line:?}"))
            .trim()
            .to_string();
        let hostport: SocketAddr = url.rsplit('/').next().unwrap().parse().unwrap();
        (url, hostport)
    };
    let (ws_url, ws_addr) = addr("ws");
    let (_, http_addr) = addr("http");
    wait_for("the feed's book", || {
        try_depth(http_addr).is_some_and(|(b, a)| !b.is_empty() && !a.is_empty())
    });
    let (_, asks) = try_depth(http_addr).unwrap();
    let mut c = Client::connect_to(&ws_url, ws_addr);
    // The feed may still be moving the book: however many fills the order gets, the ledger has
    // them all, after its place line.
    let r = c.call(
        "order.place",
        order("BUY", "MARKET", None, None, asks[0].1, "tl-1"),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let id = r["result"]["orderId"].as_u64().unwrap();
    let n = r["result"]["fills"].as_array().unwrap().len();
    assert!(n >= 1);
    let evs = c.events(1 + n);
    let mut expected = vec![format!(
        "{{\"type\":\"place\",\"clientOrderId\":\"tl-1\",\"orderId\":{id},\"accepted\":true}}"
    )];
    for e in &evs[1..] {
        assert_eq!(e["x"], "TRADE");
        expected.push(format!(
            "{{\"type\":\"fill\",\"clientOrderId\":\"tl-1\",\"orderId\":{id},\"tradeId\":{},\
             \"price\":{},\"qty\":{}}}",
            e["t"], e["L"], e["l"]
        ));
    }
    // Readable while the simulator runs.
    let lines = ledger_lines(&path);
    assert_eq!(lines, expected);
    // SIGKILL: everything written is still there.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(ledger_lines(&path), lines);
    assert_eq!(read_ledger(&path).unwrap().len(), 1 + n);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn all_orders_lists_open_and_finished_orders_of_the_account_by_order_id() {
    let sim = still_sim(37, None);
    let (bids, asks) = depth(&sim);
    let mut c = Client::connect(&sim);
    // Two resting, one canceled, one filled (IOC through the best ask), one of another account.
    let mut placed = Vec::new();
    for (i, (side, tif, px)) in [
        ("BUY", "GTC", bids[3].0),
        ("BUY", "GTC", bids[4].0),
        ("BUY", "GTC", bids[5].0),
        ("BUY", "IOC", asks[0].0),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("tl-92550000-{}", i + 1);
        let r = c.call(
            "order.place",
            order(side, "LIMIT", Some(tif), Some(px), ONE / 1000, &id),
        );
        assert_eq!(r["status"], 200, "{r}");
        placed.push((id, r["result"]["orderId"].as_u64().unwrap()));
    }
    let r = c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": placed[2].0})),
    );
    assert_eq!(r["status"], 200, "{r}");
    let other = c.call(
        "order.place",
        order_as(
            "other-key",
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[3].0),
            ONE / 1000,
            "x-1",
        ),
    );
    assert_eq!(other["status"], 200, "{other}");

    // Every order of the account, by order id, each written as order.status writes it.
    let all = c.call(
        "allOrders",
        auth(json!({"symbol": "BTCUSDT", "limit": 1000})),
    );
    assert_eq!(all["status"], 200, "{all}");
    let list = all["result"].as_array().unwrap();
    let cids: Vec<&str> = list
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = placed.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(cids, want, "{all}");
    let statuses: Vec<&str> = list.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses[..3], ["NEW", "NEW", "CANCELED"], "{all}");
    for (o, (cid, oid)) in list.iter().zip(&placed) {
        let st = c.call(
            "order.status",
            auth(json!({"symbol": "BTCUSDT", "origClientOrderId": cid})),
        );
        assert_eq!(&st["result"], o, "{cid}");
        assert_eq!(o["orderId"].as_u64(), Some(*oid));
    }
    // The most recent `limit`, or from an order id on.
    let recent = c.call("allOrders", auth(json!({"symbol": "BTCUSDT", "limit": 2})));
    let ids = |v: &Value| -> Vec<u64> {
        v["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&recent), vec![placed[2].1, placed[3].1]);
    let from = c.call(
        "allOrders",
        auth(json!({"symbol": "BTCUSDT", "orderId": placed[1].1, "limit": 2})),
    );
    assert_eq!(ids(&from), vec![placed[1].1, placed[2].1]);
    // Binance's errors for bad parameters.
    let bad = c.call(
        "allOrders",
        auth(json!({"symbol": "BTCUSDT", "limit": 1001})),
    );
    assert_eq!(err(&bad), (400, -1130), "{bad}");
    let bad = c.call("allOrders", auth(json!({})));
    assert_eq!(err(&bad).1, -1102, "{bad}");
}
