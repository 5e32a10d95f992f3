//! Bybit v5 on real data: cryptofeed's `BYBIT.jsonl.zst` (v3 envelopes; one linear and one
//! spot connection: `orderbook.200`, `publicTrade`, `tickers`, `kline`, `allLiquidation`).
//!
//! Every received frame decodes or is ignored with the reason the frame itself calls for
//! (worked out here with serde_json, independently of the decoder), on the venue its
//! connection's URL names; the `u` chain of every book topic is checked independently; each
//! book rebuilds through the engine's book without a gap where that chain is unbroken, never
//! crosses, and ends equal to a book rebuilt independently from the raw frames.

use engine::book::{BookConfig, BookUpdate, OrderBook};
use engine::event::{BookSide, Event, EventKind, LevelFlags};
use engine::fixed::{Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use feeds::bybit::market::{trade_id, BybitDecoder};
use feeds::capture::{CryptofeedCapture, RecordKind};
use feeds::venue::{venue_of_url, Decoded, IgnoreReason};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cryptofeed/BYBIT.jsonl.zst"
);

/// One received frame: its connection's venue, receive time and bytes.
struct Frame {
    venue: Venue,
    recv_ns: u64,
    bytes: Vec<u8>,
}

fn px(v: &Value) -> Price {
    Price::parse(v.as_str().unwrap().as_bytes()).unwrap()
}

fn qty(v: &Value) -> Qty {
    Qty::parse(v.as_str().unwrap().as_bytes()).unwrap()
}

/// The symbol part of a topic (`orderbook.200.BTCUSDT` -> `BTCUSDT`).
fn topic_symbol(topic: &str) -> &str {
    topic.rsplit('.').next().unwrap()
}

/// What the decoder must say of a frame, from the frame alone, and the book of the frame if
/// it is a book message. `tickers_known` tracks which best bid/ask fields each ticker symbol has
/// had since its snapshot (Bybit's rule: a delta carries only changed fields).
fn expected(
    v: &Value,
    venue: Venue,
    tickers_known: &mut HashMap<(Venue, String), [bool; 4]>,
) -> Result<usize, IgnoreReason> {
    let Some(topic) = v.get("topic").and_then(Value::as_str) else {
        return Err(match v.get("op").and_then(Value::as_str) {
            Some("ping" | "pong") => IgnoreReason::Heartbeat,
            _ => IgnoreReason::Response,
        });
    };
    let data = &v["data"];
    match topic.split('.').next().unwrap() {
        "orderbook" => {
            let n = data["b"].as_array().unwrap().len() + data["a"].as_array().unwrap().len();
            Ok(n.max(1))
        }
        "publicTrade" => Ok(data.as_array().unwrap().len()),
        "tickers" => {
            const KEYS: [&str; 4] = ["bid1Price", "bid1Size", "ask1Price", "ask1Size"];
            let known = tickers_known
                .entry((venue, data["symbol"].as_str().unwrap().to_string()))
                .or_default();
            if v["type"] == "snapshot" {
                *known = [false; 4];
            }
            let mut carried = false;
            for (k, key) in KEYS.iter().enumerate() {
                if let Some(f) = data.get(*key) {
                    carried = true;
                    known[k] = f.as_str() != Some("");
                }
            }
            if carried && known.iter().all(|&k| k) {
                Ok(1)
            } else {
                Err(IgnoreReason::UnknownStream)
            }
        }
        _ => Err(IgnoreReason::UnknownStream),
    }
}

/// An independent book: price -> quantity per side, from the raw frames.
#[derive(Default)]
struct RefBook {
    bids: BTreeMap<Price, Qty>,
    asks: BTreeMap<Price, Qty>,
}

impl RefBook {
    fn apply(&mut self, data: &Value, snapshot: bool) {
        if snapshot {
            self.bids.clear();
            self.asks.clear();
        }
        for (key, side) in [("b", &mut self.bids), ("a", &mut self.asks)] {
            for l in data[key].as_array().unwrap() {
                let (p, q) = (px(&l[0]), qty(&l[1]));
                if q.0 == 0 {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
    }
}

#[test]
fn bybit_capture_decodes_and_every_book_rebuilds() {
    let Some((frames, symbols)) = load_frames() else {
        return;
    };
    // One spot and one linear connection, each frame on its connection's venue.
    let mut venues: Vec<Venue> = frames.iter().map(|f| f.venue).collect();
    venues.sort();
    venues.dedup();
    assert_eq!(venues, [Venue::BybitSpot, Venue::BybitLinear]);
    assert!(frames.len() > 3000, "{} frames", frames.len());
    let parsed: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_slice(&f.bytes).expect("every frame is JSON"))
        .collect();

    // The `u` chain of each book topic, checked independently: breaks (a delta whose `u` is not
    // the previous message's `u` + 1) and the deltas counted per (venue, topic).
    let mut chain: HashMap<(Venue, String), u64> = HashMap::new();
    let (mut breaks, mut deltas, mut snapshots) = (0u64, 0u64, 0u64);
    for (f, v) in frames.iter().zip(&parsed) {
        let Some(t) = v.get("topic").and_then(Value::as_str) else {
            continue;
        };
        if !t.starts_with("orderbook.") {
            continue;
        }
        let u = v["data"]["u"].as_u64().unwrap();
        let key = (f.venue, t.to_string());
        if v["type"] == "snapshot" {
            snapshots += 1;
        } else {
            deltas += 1;
            match chain.get(&key) {
                Some(&prev) if prev + 1 == u => {}
                _ => breaks += 1,
            }
        }
        chain.insert(key, u);
    }
    println!(
        "book topics {}: {snapshots} snapshots, {deltas} deltas, {breaks} breaks in the u chain",
        chain.len()
    );
    assert!(chain.len() >= 6 && deltas > 2000, "{chain:?}");

    // Decode every frame on its venue's decoder.
    let mut decoders: HashMap<Venue, BybitDecoder> = venues
        .iter()
        .map(|&v| (v, BybitDecoder::new(v, symbols.clone())))
        .collect();
    let mut books: HashMap<SymbolId, OrderBook> = HashMap::new();
    let mut ref_books: HashMap<SymbolId, RefBook> = HashMap::new();
    let mut tickers_known = HashMap::new();
    let mut out: Vec<Event> = Vec::with_capacity(4096);
    let mut ignored: HashMap<IgnoreReason, u64> = HashMap::new();
    let mut kinds: HashMap<&str, u64> = HashMap::new();
    let (mut gaps, mut crossed, mut rejected, mut synced) = (0u64, 0u64, 0u64, 0u64);
    for (f, v) in frames.iter().zip(&parsed) {
        out.clear();
        let got = decoders
            .get_mut(&f.venue)
            .unwrap()
            .decode(&f.bytes, f.recv_ns, &mut out);
        let frame = String::from_utf8_lossy(&f.bytes);
        let want = expected(v, f.venue, &mut tickers_known);
        match (got, want) {
            (Ok(Decoded::Events(n)), Ok(m)) => {
                assert_eq!(n, m, "{frame}");
                assert_eq!(out.len(), n);
            }
            (Ok(Decoded::Ignored(why)), Err(w)) => {
                assert_eq!(why, w, "{frame}");
                *ignored.entry(why).or_default() += 1;
                continue;
            }
            (got, want) => panic!("{got:?}, expected {want:?}, on {frame}"),
        }
        let topic = v["topic"].as_str().unwrap();
        let data = &v["data"];
        for ev in &out {
            assert_eq!(symbols.venue(ev.symbol), Some(f.venue));
            assert_eq!(ev.recv_ns, f.recv_ns);
        }
        match &out[0].kind {
            EventKind::Snapshot(_) | EventKind::Depth(_) => {
                let snapshot = v["type"] == "snapshot";
                *kinds
                    .entry(if snapshot {
                        "book snapshot"
                    } else {
                        "book delta"
                    })
                    .or_default() += 1;
                let sym = out[0].symbol;
                assert_eq!(symbols.name(sym), Some(data["s"].as_str().unwrap()));
                // The levels as sent, bids then asks, with the frame's ids.
                let sent: Vec<(BookSide, Price, Qty)> =
                    [("b", BookSide::Bid), ("a", BookSide::Ask)]
                        .iter()
                        .flat_map(|(k, side)| {
                            data[*k]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(move |l| (*side, px(&l[0]), qty(&l[1])))
                        })
                        .collect();
                let u = data["u"].as_u64().unwrap();
                let book = books
                    .entry(sym)
                    .or_insert_with(|| OrderBook::new(BookConfig::default()));
                let mut result = BookUpdate::None;
                for (i, ev) in out.iter().enumerate() {
                    let last = i + 1 == out.len();
                    result = match &ev.kind {
                        EventKind::Snapshot(s) => {
                            assert!(snapshot);
                            assert_eq!(s.last_update_id, u);
                            assert_eq!(s.flags.contains(LevelFlags::LAST), last);
                            if let Some(&(side, p, q)) = sent.get(i) {
                                assert_eq!((s.side, s.price, s.qty), (side, p, q));
                            }
                            book.apply_snapshot(s)
                        }
                        EventKind::Depth(d) => {
                            assert!(!snapshot);
                            assert_eq!((d.final_update_id, d.update_span), (u, 0));
                            assert_eq!(d.exch_ns, v["ts"].as_u64().unwrap() * 1_000_000);
                            assert_eq!(d.flags.contains(LevelFlags::LAST), last);
                            if let Some(&(side, p, q)) = sent.get(i) {
                                assert_eq!((d.side, d.price, d.qty), (side, p, q));
                            }
                            book.apply_depth(d)
                        }
                        k => panic!("{k:?} in a book message"),
                    };
                    match result {
                        BookUpdate::Gap { .. } => gaps += 1,
                        BookUpdate::Crossed => crossed += 1,
                        BookUpdate::SnapshotRejected => rejected += 1,
                        _ => {}
                    }
                }
                if snapshot {
                    assert_eq!(result, BookUpdate::Synced, "{topic}");
                    synced += 1;
                }
                assert!(book.is_synced(), "{topic} u={u}");
                if let (Some(b), Some(a)) = (book.best_bid(), book.best_ask()) {
                    assert!(b.price < a.price, "{topic} crossed at u={u}");
                }
                ref_books.entry(sym).or_default().apply(data, snapshot);
            }
            EventKind::Trade(_) => {
                *kinds.entry("trade").or_default() += out.len() as u64;
                for (ev, t) in out.iter().zip(data.as_array().unwrap()) {
                    let EventKind::Trade(tr) = ev.kind else {
                        panic!("{ev:?}")
                    };
                    assert_eq!(tr.exch_ns, t["T"].as_u64().unwrap() * 1_000_000);
                    assert_eq!((tr.price, tr.qty), (px(&t["p"]), qty(&t["v"])));
                    assert_eq!(tr.buyer_maker, t["S"] == "Sell");
                    let id = t["i"].as_str().unwrap();
                    assert_eq!(Some(tr.trade_id), trade_id(id.as_bytes()));
                    if f.venue == Venue::BybitSpot {
                        assert_eq!(tr.trade_id, id.parse::<u64>().unwrap());
                    }
                }
            }
            EventKind::BookTicker(b) => {
                *kinds.entry("book ticker").or_default() += 1;
                assert_eq!(f.venue, Venue::BybitLinear);
                assert_eq!(b.update_id, v["cs"].as_u64().unwrap());
                for (key, got) in [("bid1Price", b.bid_px.0), ("ask1Price", b.ask_px.0)] {
                    if let Some(p) = data.get(key) {
                        assert_eq!(got, px(p).0);
                    }
                }
                for (key, got) in [("bid1Size", b.bid_qty.0), ("ask1Size", b.ask_qty.0)] {
                    if let Some(q) = data.get(key) {
                        assert_eq!(got, qty(q).0);
                    }
                }
                assert!(b.bid_px < b.ask_px, "{frame}");
            }
            k => panic!("unexpected {k:?}"),
        }
    }

    let mut stats = Vec::new();
    for (venue, d) in &decoders {
        let s = *d.stats();
        assert_eq!(s.decode_errors, 0, "{venue:?}");
        stats.push((venue.name(), s));
    }
    println!("decoders: {stats:?}");
    println!("kinds: {kinds:?}; ignored: {ignored:?}");
    println!("books: {} synced by {synced} snapshots; gaps {gaps}, crossed {crossed}, snapshots rejected {rejected}", books.len());
    let total: u64 = stats.iter().map(|(_, s)| s.messages).sum();
    assert_eq!(total, frames.len() as u64);
    // The capture's chains are unbroken, so the books saw no gap; none crossed.
    assert_eq!(breaks, 0);
    assert_eq!(gaps, breaks);
    assert_eq!((crossed, rejected), (0, 0));
    assert_eq!(synced, snapshots);
    assert_eq!(books.len(), chain.len());
    // Every kind the brief names was seen, and each reason for ignoring.
    for k in ["book snapshot", "book delta", "trade", "book ticker"] {
        assert!(kinds.get(k).copied().unwrap_or(0) > 0, "no {k}");
    }
    for why in [IgnoreReason::Response, IgnoreReason::UnknownStream] {
        assert!(ignored.get(&why).copied().unwrap_or(0) > 0, "no {why:?}");
    }
    // Each rebuilt book equals the independent one, level for level.
    for (sym, book) in &books {
        let r = &ref_books[sym];
        let bids: Vec<(Price, Qty)> = book.bids().map(|l| (l.price, l.qty)).collect();
        let asks: Vec<(Price, Qty)> = book.asks().map(|l| (l.price, l.qty)).collect();
        let want_bids: Vec<(Price, Qty)> = r.bids.iter().rev().map(|(p, q)| (*p, *q)).collect();
        let want_asks: Vec<(Price, Qty)> = r.asks.iter().map(|(p, q)| (*p, *q)).collect();
        assert_eq!(bids, want_bids, "{:?} bids", symbols.name(*sym));
        assert_eq!(asks, want_asks, "{:?} asks", symbols.name(*sym));
        assert!(
            bids.len() >= 150 && asks.len() >= 150,
            "{} {}",
            bids.len(),
            asks.len()
        );
    }
}

/// The received frames of the capture, each on its connection's venue, and a table of the
/// topics' symbols; `None` (after a NOTICE) when the capture is absent.
fn load_frames() -> Option<(Vec<Frame>, SymbolTable)> {
    if std::fs::metadata(CAPTURE).is_err() {
        println!("NOTICE: {CAPTURE} absent: Bybit capture test skipped");
        return None;
    }
    let capture = CryptofeedCapture::open(CAPTURE).expect("capture reads");
    let mut conn_venue: HashMap<u32, Venue> = HashMap::new();
    let mut frames = Vec::new();
    let mut symbols = SymbolTable::new();
    for rec in capture.iter() {
        let rec = rec.expect("every capture line parses");
        match rec.kind {
            RecordKind::Connect => {
                let url = std::str::from_utf8(rec.payload).unwrap();
                conn_venue.insert(rec.conn_id, venue_of_url(url).unwrap());
            }
            RecordKind::TextFrame => {
                let venue = conn_venue[&rec.conn_id];
                let v: Value = serde_json::from_slice(rec.payload).unwrap();
                if let Some(t) = v.get("topic").and_then(Value::as_str) {
                    symbols.intern_on(venue, topic_symbol(t)).unwrap();
                }
                frames.push(Frame {
                    venue,
                    recv_ns: rec.recv_ns,
                    bytes: rec.payload.to_vec(),
                });
            }
            _ => {}
        }
    }
    Some((frames, symbols))
}

#[test]
fn a_dropped_delta_is_one_gap_on_its_book_only() {
    let Some((frames, symbols)) = load_frames() else {
        return;
    };
    // Drop the 100th delta of every book topic.
    let mut seen: HashMap<(Venue, String), u32> = HashMap::new();
    let mut dropped = 0;
    let kept: Vec<&Frame> = frames
        .iter()
        .filter(|f| {
            let v: Value = serde_json::from_slice(&f.bytes).unwrap();
            let (Some(t), Some("delta")) = (
                v.get("topic").and_then(Value::as_str),
                v.get("type").and_then(Value::as_str),
            ) else {
                return true;
            };
            if !t.starts_with("orderbook.") {
                return true;
            }
            let n = seen.entry((f.venue, t.to_string())).or_default();
            *n += 1;
            let drop = *n == 100;
            dropped += u32::from(drop);
            !drop
        })
        .collect();
    assert_eq!(dropped as usize, seen.len());
    let mut decoders: HashMap<Venue, BybitDecoder> = [Venue::BybitSpot, Venue::BybitLinear]
        .into_iter()
        .map(|v| (v, BybitDecoder::new(v, symbols.clone())))
        .collect();
    let mut books: HashMap<SymbolId, OrderBook> = HashMap::new();
    let mut gaps: HashMap<SymbolId, u32> = HashMap::new();
    let mut out = Vec::with_capacity(4096);
    for f in kept {
        out.clear();
        decoders
            .get_mut(&f.venue)
            .unwrap()
            .decode(&f.bytes, f.recv_ns, &mut out)
            .unwrap();
        for ev in &out {
            let book = books
                .entry(ev.symbol)
                .or_insert_with(|| OrderBook::new(BookConfig::default()));
            let r = match &ev.kind {
                EventKind::Snapshot(s) => book.apply_snapshot(s),
                EventKind::Depth(d) => book.apply_depth(d),
                _ => continue,
            };
            if let BookUpdate::Gap { expected, got } = r {
                assert_eq!(got, expected + 1, "exactly one update id lost");
                *gaps.entry(ev.symbol).or_default() += 1;
            }
        }
    }
    assert_eq!(gaps.len(), seen.len(), "every book saw its gap: {gaps:?}");
    assert!(gaps.values().all(|&n| n == 1), "{gaps:?}");
    // Without a new snapshot the books stay stale (the live path resubscribes for one).
    assert!(books.values().all(|b| !b.is_synced()));
}
