//! The venue simulator's order API over real loopback sockets: Binance WebSocket API requests
//! (`order.place`, `order.cancel`, `openOrders.status`), their replies and `executionReport`
//! events, matching against the feed's book and between client orders, fills from published
//! trades, probe latency, latency injection, and error handling. Every wait is bounded.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};
use venue_sim::gen::{FeedGenerator, GenConfig, GenKind};
use venue_sim::{SimAuth, SimConfig, SimPace, SimSource, VenueSim};

/// Upper bound of any single wait in these tests.
const T: Duration = Duration::from_secs(15);
/// 1.0 in the 1e-8 units of prices and quantities.
const ONE: i64 = 100_000_000;

fn gen(events: u64, seed: u64) -> GenConfig {
    GenConfig {
        symbols: vec!["BTCUSDT".into()],
        events,
        seed,
        start_ns: 1_000_000_000,
    }
}

/// A simulator whose generated feed has been published to the end before it returns, so its
/// book stands still (nobody needs to subscribe).
fn still_sim(seed: u64) -> VenueSim {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(2_000, seed)),
        pace: SimPace::Asap,
        wait_for_subscribers: 0,
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    assert!(sim.wait_until_done(T));
    sim
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

/// A decimal string as 1e-8 units.
fn units(v: &Value) -> i64 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a decimal string: {v}"));
    let (w, f) = s.split_once('.').unwrap_or((s, ""));
    let f = format!("{f:0<8}");
    w.parse::<i64>().unwrap() * ONE + f[..8].parse::<i64>().unwrap()
}

/// Price levels as `(price, qty)` units, best first.
type Levels = Vec<(i64, i64)>;

/// `GET /api/v3/depth`: bids and asks.
fn depth(sim: &VenueSim) -> (Levels, Levels) {
    let mut s = tcp(sim.http_addr());
    write!(
        s,
        "GET /api/v3/depth?symbol=BTCUSDT&limit=100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let v: Value = serde_json::from_str(body).unwrap();
    let side = |k: &str| -> Levels {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|l| (units(&l[0]), units(&l[1])))
            .collect()
    };
    (side("bids"), side("asks"))
}

/// A WebSocket client of the order API.
struct Client {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// `executionReport` payloads received while waiting for replies.
    events: VecDeque<Value>,
    /// Market-data frames received while waiting for replies.
    frames: VecDeque<Value>,
}

impl Client {
    fn connect(sim: &VenueSim, path: &str) -> Client {
        let url = format!("{}{path}", sim.ws_url());
        let (ws, resp) = tungstenite::client(url, tcp(sim.ws_addr())).unwrap();
        assert_eq!(resp.status(), 101);
        Client {
            ws,
            next_id: 1,
            events: VecDeque::new(),
            frames: VecDeque::new(),
        }
    }

    /// The next JSON text message (pings skipped).
    fn read(&mut self) -> Value {
        loop {
            match self.ws.read().unwrap() {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                m => panic!("unexpected {m:?}"),
            }
        }
    }

    /// Reads until a reply (a message with `status` or, from the stream API, `code`/`result`)
    /// arrives; events and data frames on the way are kept.
    fn reply(&mut self) -> Value {
        loop {
            let v = self.read();
            if let Some(e) = v.get("event") {
                self.events.push_back(e.clone());
            } else if v.get("status").is_some()
                || v.get("code").is_some()
                || (v.get("id").is_some() && v.get("result").is_some())
            {
                return v;
            } else {
                self.frames.push_back(v);
            }
        }
    }

    fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).unwrap();
    }

    /// Sends a request and returns its reply.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}).to_string());
        let r = self.reply();
        assert_eq!(r["id"], id, "{r}");
        r
    }

    /// The next `executionReport`.
    fn event(&mut self) -> Value {
        loop {
            if let Some(e) = self.events.pop_front() {
                assert_eq!(e["e"], "executionReport", "{e}");
                return e;
            }
            let v = self.read();
            match v.get("event") {
                Some(e) => self.events.push_back(e.clone()),
                None => self.frames.push_back(v),
            }
        }
    }

    /// The next `n` reports, as `(x, X)` pairs and the reports themselves.
    fn events(&mut self, n: usize) -> (Vec<(String, String)>, Vec<Value>) {
        let evs: Vec<Value> = (0..n).map(|_| self.event()).collect();
        let kinds = evs
            .iter()
            .map(|e| {
                (
                    e["x"].as_str().unwrap().to_string(),
                    e["X"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (kinds, evs)
    }

    /// True when nothing at all arrives for `wait`.
    fn quiet(&mut self, wait: Duration) -> bool {
        if !self.events.is_empty() {
            return false;
        }
        self.ws.get_ref().set_read_timeout(Some(wait)).unwrap();
        let r = loop {
            match self.ws.read() {
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
                other => break other,
            }
        };
        self.ws.get_ref().set_read_timeout(Some(T)).unwrap();
        match r {
            Err(tungstenite::Error::Io(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }
}

/// `order.place` parameters with the authentication fields.
fn order(
    side: &str,
    typ: &str,
    tif: Option<&str>,
    price: Option<i64>,
    qty: i64,
    id: &str,
) -> Value {
    let mut p = json!({
        "symbol": "BTCUSDT", "side": side, "type": typ, "quantity": dec(qty),
        "newClientOrderId": id, "apiKey": "test-key", "signature": "0123abcd",
        "timestamp": 1_700_000_000_000u64,
    });
    if let Some(t) = tif {
        p["timeInForce"] = json!(t);
    }
    if let Some(px) = price {
        p["price"] = json!(dec(px));
    }
    p
}

fn auth(mut p: Value) -> Value {
    p["apiKey"] = json!("test-key");
    p["signature"] = json!("0123abcd");
    p["timestamp"] = json!(1_700_000_000_000u64);
    p
}

/// `(price, qty)` of each fill of an `order.place` result.
fn fills(result: &Value) -> Vec<(i64, i64)> {
    result["fills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (units(&f["price"]), units(&f["qty"])))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn limit_market_ioc_fok_and_cancel_against_the_feeds_book() {
    let sim = still_sim(21);
    let (bids, asks) = depth(&sim);
    assert!(bids.len() > 5 && asks.len() > 5);
    let mut c = Client::connect(&sim, "/ws-api/v3");

    // MARKET buy: all of the best ask and half of the next level, at their prices.
    let half = asks[1].1 / 2;
    let r = c.call(
        "order.place",
        order("BUY", "MARKET", None, None, asks[0].1 + half, "tl-1"),
    );
    assert_eq!(r["status"], 200, "{r}");
    let res = &r["result"];
    assert_eq!(
        (res["status"].as_str(), res["type"].as_str()),
        (Some("FILLED"), Some("MARKET"))
    );
    assert_eq!(res["clientOrderId"], "tl-1");
    assert_eq!(fills(res), vec![asks[0], (asks[1].0, half)]);
    assert_eq!(units(&res["executedQty"]), asks[0].1 + half);
    let (kinds, evs) = c.events(3);
    assert_eq!(
        kinds,
        pairs(&[
            ("NEW", "NEW"),
            ("TRADE", "PARTIALLY_FILLED"),
            ("TRADE", "FILLED")
        ])
    );
    assert_eq!(evs[1]["c"], "tl-1");
    assert_eq!(units(&evs[1]["L"]), asks[0].0);
    assert_eq!(units(&evs[2]["l"]), half);
    assert_eq!(evs[2]["m"], false);
    assert_eq!(evs[2]["N"], "BTC");
    assert!(evs[2]["t"].as_u64().unwrap() >= 1 << 40);
    assert_eq!(evs[2]["i"], res["orderId"]);

    // LIMIT IOC sell of twice the best bid at its price: half fills, the rest expires.
    let r = c.call(
        "order.place",
        order(
            "SELL",
            "LIMIT",
            Some("IOC"),
            Some(bids[0].0),
            2 * bids[0].1,
            "tl-2",
        ),
    );
    let res = &r["result"];
    assert_eq!(res["status"], "EXPIRED", "{r}");
    assert_eq!(fills(res), vec![bids[0]]);
    let (kinds, evs) = c.events(3);
    assert_eq!(
        kinds,
        pairs(&[
            ("NEW", "NEW"),
            ("TRADE", "PARTIALLY_FILLED"),
            ("EXPIRED", "EXPIRED")
        ])
    );
    assert_eq!(units(&evs[2]["z"]), bids[0].1);
    assert_eq!(evs[1]["N"], "USDT");

    // FOK for more than is left up to the second ask (its other half): nothing trades.
    let left = asks[1].1 - half;
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("FOK"),
            Some(asks[1].0),
            left + 1,
            "tl-3",
        ),
    );
    assert_eq!(r["result"]["status"], "EXPIRED", "{r}");
    assert_eq!(units(&r["result"]["executedQty"]), 0);
    let (kinds, _) = c.events(2);
    assert_eq!(kinds, pairs(&[("NEW", "NEW"), ("EXPIRED", "EXPIRED")]));
    // Exactly what is left: filled, from the consumed level's remainder.
    let r = c.call(
        "order.place",
        order("BUY", "LIMIT", Some("FOK"), Some(asks[1].0), left, "tl-4"),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    assert_eq!(fills(&r["result"]), vec![(asks[1].0, left)]);
    c.events(2);

    // LIMIT GTC that crosses the third ask: takes it, rests the rest at its price.
    let extra = ONE / 100;
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(asks[2].0),
            asks[2].1 + extra,
            "tl-5",
        ),
    );
    assert_eq!(r["result"]["status"], "PARTIALLY_FILLED", "{r}");
    assert_eq!(fills(&r["result"]), vec![asks[2]]);
    let gtc_id = r["result"]["orderId"].as_u64().unwrap();
    let (kinds, evs) = c.events(2);
    assert_eq!(
        kinds,
        pairs(&[("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED")])
    );
    assert_eq!(evs[1]["w"], true);

    // A passive GTC and a LIMIT_MAKER below the bid rest untouched.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[3].0),
            ONE / 10,
            "tl-6",
        ),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    assert_eq!(fills(&r["result"]), vec![]);
    let (kinds, evs) = c.events(1);
    assert_eq!(kinds, pairs(&[("NEW", "NEW")]));
    assert_eq!(evs[0]["w"], true);
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT_MAKER",
            None,
            Some(bids[4].0),
            ONE / 10,
            "tl-7",
        ),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    c.events(1);
    // A LIMIT_MAKER that would take is refused: an error and a REJECTED report.
    let r = c.call(
        "order.place",
        order(
            "SELL",
            "LIMIT_MAKER",
            None,
            Some(bids[1].0),
            ONE / 10,
            "tl-8",
        ),
    );
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(400), Some(-2010))
    );
    let (kinds, _) = c.events(1);
    assert_eq!(kinds, pairs(&[("REJECTED", "REJECTED")]));
    // A second order with an open order's client id is refused too.
    let r = c.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(bids[5].0),
            ONE / 10,
            "tl-6",
        ),
    );
    assert_eq!(r["error"]["code"], -2010, "{r}");
    assert_eq!(r["error"]["msg"], "Duplicate order sent.");
    c.events(1);

    // openOrders.status lists the three resting orders, oldest first.
    let r = c.call("openOrders.status", auth(json!({"symbol": "BTCUSDT"})));
    let list: Vec<&str> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    assert_eq!(list, ["tl-5", "tl-6", "tl-7"], "{r}");
    assert_eq!(units(&r["result"][0]["executedQty"]), asks[2].1);
    // Another account sees none of them.
    let mut other = auth(json!({}));
    other["apiKey"] = json!("someone-else");
    let r = c.call("openOrders.status", other);
    assert_eq!(r["result"], json!([]));

    // Cancels: by client id, by order id; unknown orders are refused.
    let r = c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-6", "newClientOrderId": "x-1"})),
    );
    assert_eq!(r["result"]["status"], "CANCELED", "{r}");
    assert_eq!(r["result"]["origClientOrderId"], "tl-6");
    assert_eq!(r["result"]["clientOrderId"], "x-1");
    let (kinds, evs) = c.events(1);
    assert_eq!(kinds, pairs(&[("CANCELED", "CANCELED")]));
    assert_eq!(
        (evs[0]["c"].as_str(), evs[0]["C"].as_str()),
        (Some("x-1"), Some("tl-6"))
    );
    let r = c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "orderId": gtc_id})),
    );
    assert_eq!(r["result"]["status"], "CANCELED", "{r}");
    assert_eq!(units(&r["result"]["executedQty"]), asks[2].1);
    c.events(1);
    let r = c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "orderId": gtc_id})),
    );
    assert_eq!(
        (r["status"].as_u64(), r["error"]["code"].as_i64()),
        (Some(400), Some(-2011))
    );
    let r = c.call("openOrders.status", auth(json!({})));
    assert_eq!(r["result"].as_array().unwrap().len(), 1, "{r}");

    let st = sim.stats().orders;
    assert_eq!((st.placed, st.canceled), (7, 2));
    assert_eq!((st.fills, st.errors), (5, 3), "{st:?}");
    assert!(c.quiet(Duration::from_millis(100)));
}

#[test]
fn price_time_priority_of_two_client_orders() {
    let sim = still_sim(22);
    let (_, asks) = depth(&sim);
    let p = asks[0].0;
    // A on a market-data path, B on the API path: both may trade.
    let mut a = Client::connect(&sim, "/ws");
    let mut b = Client::connect(&sim, "/ws-api/v3");
    let mut taker = Client::connect(&sim, "/ws-api/v3");
    let r = a.call(
        "order.place",
        order("SELL", "LIMIT", Some("GTC"), Some(p), ONE / 2, "a-1"),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    let r = b.call(
        "order.place",
        order("SELL", "LIMIT", Some("GTC"), Some(p), ONE / 2, "b-1"),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    assert_eq!(a.event()["x"], "NEW");
    assert_eq!(b.event()["x"], "NEW");

    // The feed's quantity at the price was there first, then A's order (the earlier one).
    let r = taker.call(
        "order.place",
        order(
            "BUY",
            "LIMIT",
            Some("IOC"),
            Some(p),
            asks[0].1 + 3 * ONE / 10,
            "t-1",
        ),
    );
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    assert_eq!(fills(&r["result"]), vec![asks[0], (p, 3 * ONE / 10)]);
    let ea = a.event();
    assert_eq!(
        (ea["x"].as_str(), ea["X"].as_str()),
        (Some("TRADE"), Some("PARTIALLY_FILLED"))
    );
    assert_eq!((units(&ea["l"]), units(&ea["L"])), (3 * ONE / 10, p));
    assert_eq!(ea["m"], true);
    assert!(
        b.quiet(Duration::from_millis(200)),
        "B must not trade before A is done"
    );

    // The next buy finishes A, then reaches B.
    let r = taker.call(
        "order.place",
        order("BUY", "LIMIT", Some("IOC"), Some(p), ONE / 2, "t-2"),
    );
    assert_eq!(
        fills(&r["result"]),
        vec![(p, 2 * ONE / 10), (p, 3 * ONE / 10)]
    );
    let ea = a.event();
    assert_eq!(
        (ea["X"].as_str(), units(&ea["l"])),
        (Some("FILLED"), 2 * ONE / 10)
    );
    let eb = b.event();
    assert_eq!(
        (eb["X"].as_str(), units(&eb["l"])),
        (Some("PARTIALLY_FILLED"), 3 * ONE / 10)
    );
    assert_eq!(eb["c"], "b-1");
    // Maker and taker of one match share a trade id.
    let (_, tev) = taker.events(6);
    let taker_trades: Vec<u64> = tev
        .iter()
        .filter(|e| e["x"] == "TRADE")
        .map(|e| e["t"].as_u64().unwrap())
        .collect();
    assert!(taker_trades.contains(&ea["t"].as_u64().unwrap()));
    assert!(taker_trades.contains(&eb["t"].as_u64().unwrap()));
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
fn resting_order_fills_on_a_published_trade_through_its_price() {
    let cfg = gen(3_000, 23);
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(cfg.clone()),
        pace: SimPace::Rate(5_000),
        wait_for_subscribers: 1,
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    // The snapshot is applied; the feed waits for a subscriber.
    wait_for("the snapshot", || {
        let mut s = tcp(sim.http_addr());
        write!(
            s,
            "GET /api/v3/depth?symbol=BTCUSDT HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r.starts_with("HTTP/1.1 200")
    });
    let (bids, asks) = depth(&sim);
    let trades = gen_trades(&cfg);
    // A buy resting at the best bid, or else a sell at the best ask: the first published trade
    // at or through its price fills it.
    let qty = ONE / 1000;
    let buy = trades
        .iter()
        .find(|t| t.0 <= bids[0].0)
        .map(|t| ("BUY", bids[0].0, t.1));
    let sell = trades
        .iter()
        .find(|t| t.0 >= asks[0].0)
        .map(|t| ("SELL", asks[0].0, t.1));
    let (side, price, trade_qty) = buy.or(sell).expect("a trade through the touch");
    let mut c = Client::connect(&sim, "/ws-api/v3");
    let r = c.call(
        "order.place",
        order(side, "LIMIT", Some("GTC"), Some(price), qty, "tl-9"),
    );
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    assert_eq!(c.event()["x"], "NEW");
    assert_eq!(sim.stats().frames_published, 0);

    // Start the feed.
    let mut md = Client::connect(&sim, "/stream?streams=btcusdt@trade");
    let e = c.event();
    assert_eq!(e["x"], "TRADE", "{e}");
    assert_eq!(units(&e["L"]), price);
    assert_eq!(units(&e["l"]), qty.min(trade_qty));
    assert_eq!(e["m"], true);
    assert!(e["t"].as_u64().unwrap() >= 1 << 40);
    // The market-data client saw that trade: at or through the price.
    let through = |p: i64| {
        if side == "BUY" {
            p <= price
        } else {
            p >= price
        }
    };
    loop {
        let f = md.read();
        if through(units(&f["data"]["p"])) {
            break;
        }
    }
}

#[test]
fn probe_orders_after_their_trades_yield_one_latency_sample_each() {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(20_000, 24)),
        pace: SimPace::Rate(2_000),
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    // An order-API connection first: it never takes the send-time record ...
    let mut api = Client::connect(&sim, "/ws-api/v3");
    assert_eq!(api.call("ping", json!({}))["status"], 200);
    // ... so the first market-data connection does: its trade frames are stamped when written.
    let mut md = Client::connect(&sim, "/stream?streams=btcusdt@trade");
    let next_trade = |md: &mut Client| loop {
        let f = md.read();
        if f["data"]["e"] == "trade" {
            break f["data"]["t"].as_u64().unwrap();
        }
    };
    let probe = |t: u64| {
        order(
            "BUY",
            "LIMIT",
            Some("IOC"),
            Some(ONE),
            ONE / 10_000,
            &format!("probe-{t}"),
        )
    };
    // The answer on the same connection (any path takes orders) ...
    let t1 = next_trade(&mut md);
    let r = md.call("order.place", probe(t1));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["status"], "EXPIRED");
    assert_eq!(r["result"]["clientOrderId"], format!("probe-{t1}"));
    assert_eq!(sim.probe_latencies().len(), 1);
    // ... or on the dedicated one.
    let t2 = next_trade(&mut md);
    let r = api.call("order.place", probe(t2));
    assert_eq!(r["result"]["status"], "EXPIRED", "{r}");
    // A probe naming a trade that was never sent gives no sample.
    let r = api.call("order.place", probe(999_999_999_999));
    assert_eq!(r["status"], 200, "{r}");
    let lat = sim.probe_latencies();
    eprintln!("probe wire-to-wire latencies (ns): {lat:?}");
    assert_eq!(lat.len(), 2, "{lat:?}");
    assert!(
        lat.iter().all(|&l| l > 0 && l < T.as_nanos() as u64),
        "{lat:?}"
    );
    let sent = sim.send_times();
    assert!([t1, t2].iter().all(|t| sent.iter().any(|(id, _)| id == t)));
    let s = sim.probe_summary();
    assert_eq!((s.count, s.max), (2, *lat.iter().max().unwrap()));
    assert_eq!(sim.stats().orders.probes, 3);
}

#[test]
fn malformed_requests_get_errors_and_the_connection_stays_up() {
    let sim = still_sim(25);
    let mut c = Client::connect(&sim, "/ws-api/v3");
    let err = |r: &Value| {
        (
            r["status"].as_u64().unwrap(),
            r["error"]["code"].as_i64().unwrap(),
        )
    };
    c.send("not json");
    let r = c.reply();
    assert_eq!((r["id"].clone(), err(&r)), (Value::Null, (400, -1135)));
    c.send(r#"{"id":"q1","method":"SUBSCRIBE","params":["btcusdt@trade"]}"#);
    let r = c.reply();
    assert_eq!((r["id"].as_str(), err(&r)), (Some("q1"), (400, -1020)));
    let base = order("BUY", "LIMIT", Some("GTC"), Some(ONE), ONE, "tl-1");
    for (change, code) in [
        (json!({"signature": null}), -1102),
        (json!({"apiKey": null}), -1102),
        (json!({"timestamp": null}), -1102),
        (json!({"timestamp": "yesterday"}), -1100),
        (json!({"side": "LONG"}), -1117),
        (json!({"type": "STOP_LOSS"}), -1116),
        (json!({"timeInForce": "DAY"}), -1115),
        (json!({"symbol": "NOPE"}), -1121),
        (json!({"price": "1,5"}), -1100),
        (json!({"price": "0.000000001"}), -1111),
        (json!({"quantity": null}), -1102),
        (json!({"newClientOrderId": "no spaces"}), -1100),
    ] {
        let mut p = base.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                p.as_object_mut().unwrap().remove(k);
            } else {
                p[k] = v.clone();
            }
        }
        let r = c.call("order.place", p);
        assert_eq!(err(&r), (400, code), "{change}: {r}");
        assert!(r["error"]["msg"].is_string());
    }
    let r = c.call("order.cancel", auth(json!({"symbol": "BTCUSDT"})));
    assert_eq!(err(&r).1, -1102);
    let r = c.call(
        "order.cancel",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "nope"})),
    );
    assert_eq!(err(&r).1, -2011);
    c.send(r#"{"id":5,"method":"order.place","params":"symbol=BTCUSDT"}"#);
    assert_eq!(err(&c.reply()).1, -1130);
    // Still up: the next valid request works.
    let r = c.call("ping", json!({}));
    assert_eq!(
        (r["status"].as_u64(), r["result"].clone()),
        (Some(200), json!({}))
    );
    let r = c.call("time", json!({}));
    assert!(r["result"]["serverTime"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(
        c.quiet(Duration::from_millis(100)),
        "no report for refused requests"
    );

    // On a market-data path, order requests get the order API's errors, and the stream
    // protocol keeps its own.
    let mut m = Client::connect(&sim, "/ws");
    let mut p = base.clone();
    p.as_object_mut().unwrap().remove("signature");
    let r = m.call("order.place", p);
    assert_eq!(err(&r), (400, -1102), "{r}");
    m.send("not json");
    let r = m.reply();
    assert_eq!(r["code"], 3, "{r}");
    m.send(r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":9}"#);
    assert_eq!(m.reply(), json!({"result": null, "id": 9}));
    let r = m.call("order.place", base);
    assert_eq!(r["result"]["status"], "NEW", "{r}");
    let st = sim.stats();
    assert!(st.orders.errors >= 17, "{:?}", st.orders);
    assert_eq!(st.orders.placed, 1);
}

#[test]
fn order_latency_delays_every_request_in_order() {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(500, 26)),
        pace: SimPace::Asap,
        wait_for_subscribers: 0,
        order_latency: Duration::from_millis(150),
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    assert!(sim.wait_until_done(T));
    let mut c = Client::connect(&sim, "/ws-api/v3");
    let t0 = Instant::now();
    c.send(
        &json!({"id": 1, "method": "order.place",
        "params": order("BUY", "LIMIT", Some("GTC"), Some(ONE), ONE, "tl-1")})
        .to_string(),
    );
    c.send(&json!({"id": 2, "method": "openOrders.status", "params": auth(json!({}))}).to_string());
    let r1 = c.reply();
    let first = t0.elapsed();
    let r2 = c.reply();
    assert_eq!((r1["id"].as_u64(), r2["id"].as_u64()), (Some(1), Some(2)));
    assert!(first >= Duration::from_millis(150), "{first:?}");
    // The listing ran after the order was placed.
    assert_eq!(r2["result"][0]["clientOrderId"], "tl-1", "{r2}");
}

#[test]
fn order_api_can_be_switched_off() {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(100, 27)),
        pace: SimPace::Asap,
        wait_for_subscribers: 0,
        order_api: false,
        auth: SimAuth::Lenient,
        ..SimConfig::default()
    })
    .unwrap();
    let mut c = Client::connect(&sim, "/ws-api/v3");
    let r = c.call(
        "order.place",
        order("BUY", "MARKET", None, None, ONE, "tl-1"),
    );
    assert_eq!(r["error"]["code"], -1020, "{r}");
}

#[test]
fn venue_sim_prints_probe_percentiles_when_it_stops() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "venue-sim",
            "--events",
            "300",
            "--pace",
            "asap",
            "--wait-for",
            "0",
            "--order-latency",
            "1ms",
        ];
        args.extend_from_slice(extra);
        let out = Command::new(env!("CARGO_BIN_EXE_tickline"))
            .args(&args)
            .output()
            .expect("run tickline");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
    };
    let (_, stderr) = run(&[]);
    assert!(
        stderr.contains("probe wire-to-wire") && stderr.contains("0 samples, p50 0 ns"),
        "{stderr}"
    );
    assert!(stderr.contains("venue_sim: orders: 0 requests"), "{stderr}");
    let (stdout, _) = run(&["--json"]);
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(v["probe_latency_ns"]["count"], 0, "{v}");
    assert!(v["probe_latency_ns"]["p999"].is_u64());
    assert_eq!(v["orders"]["requests"], 0);
}

#[test]
fn session_logon_lets_requests_go_unsigned_on_that_connection_only() {
    let sim = still_sim(41);
    let (_, asks) = depth(&sim);
    let mut c = Client::connect(&sim, "/ws-api/v3");
    let unsigned = |id: &str| {
        let mut p = order(
            "BUY",
            "LIMIT",
            Some("GTC"),
            Some(asks[0].0 / 2 / 1_000_000 * 1_000_000),
            100_000,
            id,
        );
        let m = p.as_object_mut().unwrap();
        m.remove("apiKey");
        m.remove("signature");
        p
    };
    // Before logon an unsigned request is refused.
    let r = c.call("order.place", unsigned("tl-1"));
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(r["error"]["code"], -1102, "{r}");
    // session.logon (Binance documents the result's fields).
    let r = c.call("session.logon", auth(json!({})));
    assert_eq!(r["status"], 200, "{r}");
    let res = &r["result"];
    assert_eq!(res["apiKey"], "test-key", "{r}");
    assert!(res["authorizedSince"].as_u64().is_some(), "{r}");
    assert!(res["connectedSince"].as_u64().is_some(), "{r}");
    assert_eq!(res["userDataStream"], false, "{r}");
    // Now the same request is placed for the session's account.
    let r = c.call("order.place", unsigned("tl-2"));
    assert_eq!(r["status"], 200, "{r}");
    let q = c.call(
        "order.status",
        auth(json!({"symbol": "BTCUSDT", "origClientOrderId": "tl-2"})),
    );
    assert_eq!(q["result"]["clientOrderId"], "tl-2", "{q}");
    // Another connection is not logged on.
    let mut other = Client::connect(&sim, "/ws-api/v3");
    let r = other.call("order.place", unsigned("tl-3"));
    assert_eq!(r["status"], 400, "{r}");
    // After logout, unsigned requests are refused again.
    let r = c.call("session.logout", json!({}));
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["result"]["apiKey"].is_null(), "{r}");
    let r = c.call("order.place", unsigned("tl-4"));
    assert_eq!(r["status"], 400, "{r}");
}

// ---------------------------------------------------------------------------------------------
// Strict authentication (the default; issue #15).

/// Wall clock, ms (the strict simulator checks `timestamp` against it).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The signature payload of `p`: every param but `signature`, sorted, `k=v` joined by `&`.
fn payload_of(p: &Value) -> String {
    let mut keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    keys.sort();
    keys.iter()
        .filter(|k| k.as_str() != "signature")
        .map(|k| match &p[k.as_str()] {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `p` with the built-in HMAC key, the current time and its HMAC-SHA256 signature.
fn signed(mut p: Value) -> Value {
    use hmac::Mac;
    p["apiKey"] = json!(venue_sim::TEST_HMAC_API_KEY);
    p["timestamp"] = json!(now_ms());
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(venue_sim::TEST_HMAC_SECRET.as_bytes()).unwrap();
    mac.update(payload_of(&p).as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    p["signature"] = json!(hex);
    p
}

/// `p` with the built-in Ed25519 key, the current time and its signature.
fn ed_signed(mut p: Value) -> Value {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    p["apiKey"] = json!(venue_sim::TEST_ED25519_API_KEY);
    p["timestamp"] = json!(now_ms());
    let key = ed25519_dalek::SigningKey::from_bytes(&venue_sim::TEST_ED25519_SEED);
    let sig = key.sign(payload_of(&p).as_bytes());
    p["signature"] = json!(base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()));
    p
}

fn strict_sim(seed: u64) -> VenueSim {
    let sim = VenueSim::start(SimConfig {
        source: SimSource::Generated(gen(2_000, seed)),
        pace: SimPace::Asap,
        wait_for_subscribers: 0,
        ..SimConfig::default()
    })
    .unwrap();
    assert!(sim.wait_until_done(T));
    sim
}

#[test]
fn strict_by_default_keys_signatures_timestamps_and_the_user_stream_are_checked() {
    let sim = strict_sim(41);
    let (_, asks) = depth(&sim);
    let mut c = Client::connect(&sim, "/ws-api/v3");
    let code = |r: &Value| (r["status"].as_u64().unwrap(), r["error"]["code"].as_i64());

    // Without session.logon, the plain subscription is refused (Binance: it "requires an
    // authenticated WebSocket connection").
    let r = c.call("userDataStream.subscribe", json!({}));
    assert_eq!(code(&r), (401, Some(-1002)), "{r}");
    // Made-up signatures, unknown keys, stale timestamps: refused.
    let r = c.call("userDataStream.subscribe.signature", auth(json!({})));
    assert_eq!(code(&r).1, Some(-2015), "{r}");
    let mut bad = signed(json!({}));
    bad["signature"] = json!("00".repeat(32));
    let r = c.call("userDataStream.subscribe.signature", bad);
    assert_eq!(code(&r).1, Some(-1022), "{r}");
    let mut stale = json!({"recvWindow": 1000});
    stale = signed(stale);
    stale["timestamp"] = json!(now_ms() - 10_000);
    let r = c.call("userDataStream.subscribe.signature", stale);
    assert_eq!(code(&r).1, Some(-1021), "{r}");
    let r = c.call(
        "order.place",
        order("BUY", "LIMIT", Some("IOC"), Some(asks[0].0), 1_000, "tl-1"),
    );
    assert_eq!(code(&r).1, Some(-2015), "{r}");

    // A signed order before any subscription: a FULL reply, and no report at all.
    let mut p = order("BUY", "LIMIT", Some("IOC"), Some(asks[0].0), 1_000, "tl-2");
    p["newOrderRespType"] = json!("FULL");
    let r = c.call("order.place", signed(p));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    assert_eq!(fills(&r["result"]), vec![(asks[0].0, 1_000)], "{r}");
    assert!(r["result"]["fills"][0]["tradeId"].as_u64().is_some(), "{r}");
    assert!(c.quiet(Duration::from_millis(200)));

    // The signed subscription: then the reports come.
    let r = c.call(
        "userDataStream.subscribe.signature",
        signed(json!({"recvWindow": 5000})),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["result"]["subscriptionId"].as_u64().is_some(), "{r}");
    let mut p = order("BUY", "LIMIT", Some("IOC"), Some(asks[0].0), 1_000, "tl-3");
    p["newOrderRespType"] = json!("RESULT");
    let r = c.call("order.place", signed(p));
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    assert!(
        r["result"].get("fills").is_none(),
        "RESULT has no fills: {r}"
    );
    let (kinds, evs) = c.events(2);
    assert_eq!(kinds, pairs(&[("NEW", "NEW"), ("TRADE", "FILLED")]));
    assert_eq!(evs[1]["c"], "tl-3");

    // Ed25519 with session.logon: the plain subscription is accepted.
    let mut e = Client::connect(&sim, "/ws-api/v3");
    let r = e.call("session.logon", ed_signed(json!({})));
    assert_eq!(r["status"], 200, "{r}");
    let r = e.call("userDataStream.subscribe", json!({}));
    assert_eq!(r["status"], 200, "{r}");
    let mut p = order("BUY", "LIMIT", Some("IOC"), Some(asks[0].0), 1_000, "tl-4");
    p.as_object_mut().unwrap().remove("apiKey");
    p.as_object_mut().unwrap().remove("signature");
    p["timestamp"] = json!(now_ms());
    let r = e.call("order.place", p);
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let (kinds, _) = e.events(2);
    assert_eq!(kinds, pairs(&[("NEW", "NEW"), ("TRADE", "FILLED")]));
    // session.logout ends the plain subscription (not a signed one): no more reports there.
    let r = e.call("session.logout", json!({}));
    assert_eq!(r["status"], 200, "{r}");
    let p = order("BUY", "LIMIT", Some("IOC"), Some(asks[0].0), 1_000, "tl-5");
    let r = e.call("order.place", ed_signed(p));
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    assert!(e.quiet(Duration::from_millis(200)));
}
