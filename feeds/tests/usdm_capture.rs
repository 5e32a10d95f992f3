//! Binance USD-M futures on real data: `../shared/data/binance-usdm/btcusdt_20240808.gz`
//! (hftbacktest's collector: `<recv_ns> <json>` lines of trade, bookTicker and depthUpdate@0ms
//! frames, and one REST depth snapshot unwrapped).
//!
//! Every frame decodes or is ignored with a reason; `pu` continuity holds over the whole file
//! (checked from the raw JSON with serde_json, and through the decoder's events); the book
//! rebuilds from the snapshot with no gap, no rejected snapshot, never crossed, and stays
//! synced to the end. Every count is computed from the file here.

use engine::book::{BookConfig, BookUpdate, OrderBook};
use engine::event::{Event, EventKind, LevelFlags};
use engine::fixed::{Price, Qty};
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::binance::market::BinanceDecoder;
use feeds::capture::LineCapture;
use feeds::venue::{adapter, Decoded, MarketDecoder};
use serde_json::Value;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/binance-usdm/btcusdt_20240808.gz"
);

fn load() -> Option<LineCapture> {
    if !std::path::Path::new(CAPTURE).exists() {
        println!("NOTICE: {CAPTURE} absent; USD-M capture test skipped");
        return None;
    }
    Some(LineCapture::open(CAPTURE).expect("capture reads"))
}

fn px(v: &Value) -> Price {
    Price::parse(v.as_str().expect("price string").as_bytes()).expect("price")
}

fn qty(v: &Value) -> Qty {
    Qty::parse(v.as_str().expect("qty string").as_bytes()).expect("qty")
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("unsigned integer")
}

/// What serde_json finds in the file.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    frames: u64,
    trades: u64,
    book_tickers: u64,
    depth_msgs: u64,
    depth_levels: u64,
    snapshots: u64,
    snapshot_levels: u64,
}

#[test]
fn every_frame_decodes_pu_is_unbroken_and_the_book_stays_synced() {
    let Some(cap) = load() else { return };
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern_on(Venue::BinanceUsdm, "BTCUSDT").unwrap();
    let mut dec = BinanceDecoder::usdm(symbols.clone());
    dec.set_default_symbol(Some(btc));
    let mut any = adapter(Venue::BinanceUsdm).unwrap().decoder(symbols);

    let mut want = Counts::default();
    let mut got = Counts::default();
    let mut book = OrderBook::new(BookConfig::default());
    let (mut raw_prev_u, mut raw_pu_checked) = (None::<u64>, 0u64);
    let (mut ev_prev_final, mut ev_pu_checked) = (None::<u64>, 0u64);
    let mut snapshot_id = None::<u64>;
    // From the raw JSON: depth messages after the snapshot, and those before it newer than it.
    let (mut applied_after_snapshot, mut buffered_newer) = (0u64, 0u64);
    let mut buffered_u: Vec<u64> = Vec::new();
    let (mut synced_at, mut changed) = (None::<u64>, 0u64);
    let mut out: Vec<Event> = Vec::with_capacity(4096);

    for rec in &cap {
        let rec = rec.expect("well-formed line");
        want.frames += 1;

        // The file, read independently.
        let v: Value = serde_json::from_slice(rec.payload).expect("valid JSON");
        let data = v.get("data").unwrap_or(&v);
        match data.get("e").and_then(Value::as_str) {
            Some("trade") => want.trades += 1,
            Some("bookTicker") => want.book_tickers += 1,
            Some("depthUpdate") => {
                want.depth_msgs += 1;
                want.depth_levels += (data["b"].as_array().unwrap().len()
                    + data["a"].as_array().unwrap().len())
                    as u64;
                let (pu, last) = (u(&data["pu"]), u(&data["u"]));
                if let Some(prev) = raw_prev_u {
                    assert_eq!(pu, prev, "line {}: pu is not the previous u", rec.line);
                    raw_pu_checked += 1;
                }
                raw_prev_u = Some(last);
                match snapshot_id {
                    Some(l) if last > l => applied_after_snapshot += 1,
                    Some(_) => {}
                    None => buffered_u.push(last),
                }
            }
            Some(e) => panic!("line {}: unexpected event {e}", rec.line),
            None => {
                let l = u(&data["lastUpdateId"]);
                want.snapshots += 1;
                want.snapshot_levels += (data["bids"].as_array().unwrap().len()
                    + data["asks"].as_array().unwrap().len())
                    as u64;
                snapshot_id = Some(l);
                buffered_newer = buffered_u.iter().filter(|&&x| x > l).count() as u64;
            }
        }

        // The decoder.
        out.clear();
        let r = dec.decode(rec.payload, rec.recv_ns, &mut out);
        let n = match r {
            Ok(Decoded::Events(n)) => n,
            other => panic!("line {}: {other:?}", rec.line),
        };
        assert_eq!(n, out.len());
        // The adapter's decoder (the AnyDecoder the I/O loop holds) agrees, snapshot aside
        // (it has no default symbol: a bare snapshot comes through decode_snapshot).
        let mut via_any = Vec::new();
        if data.get("e").is_some() {
            assert_eq!(any.decode(rec.payload, rec.recv_ns, &mut via_any), r);
            assert_eq!(via_any, out, "line {}", rec.line);
        } else {
            let rest = any.decode_snapshot(rec.payload, btc, rec.recv_ns, &mut via_any);
            assert_eq!(rest, r);
            assert_eq!(via_any, out, "line {}: REST path", rec.line);
        }

        let mut msg_final = None;
        for (i, ev) in out.iter().enumerate() {
            assert_eq!(ev.symbol, btc);
            assert_eq!(ev.recv_ns, rec.recv_ns);
            match ev.kind {
                EventKind::Trade(t) => {
                    got.trades += 1;
                    assert_eq!(t.trade_id, u(&data["t"]));
                    assert_eq!(t.price, px(&data["p"]));
                    assert_eq!(t.qty, qty(&data["q"]));
                    assert_eq!(t.buyer_maker, data["m"].as_bool().unwrap());
                    assert_eq!(t.exch_ns, u(&data["E"]) * 1_000_000);
                }
                EventKind::BookTicker(b) => {
                    got.book_tickers += 1;
                    assert_eq!(b.update_id, u(&data["u"]));
                    assert_eq!((b.bid_px, b.bid_qty), (px(&data["b"]), qty(&data["B"])));
                    assert_eq!((b.ask_px, b.ask_qty), (px(&data["a"]), qty(&data["A"])));
                }
                EventKind::Depth(d) => {
                    got.depth_levels += 1;
                    assert_eq!(d.final_update_id, u(&data["u"]));
                    assert_eq!(d.first_update_id(), u(&data["pu"]) + 1);
                    let bids = data["b"].as_array().unwrap();
                    let lvl = bids
                        .get(i)
                        .unwrap_or_else(|| &data["a"].as_array().unwrap()[i - bids.len()]);
                    assert_eq!((d.price, d.qty), (px(&lvl[0]), qty(&lvl[1])));
                    if i == 0 {
                        got.depth_msgs += 1;
                        if let Some(prev) = ev_prev_final {
                            assert_eq!(d.first_update_id(), prev + 1, "line {}", rec.line);
                            ev_pu_checked += 1;
                        }
                        msg_final = Some(d.final_update_id);
                    }
                    assert_eq!(d.flags.contains(LevelFlags::LAST), i + 1 == out.len());
                    match book.apply_depth(&d) {
                        BookUpdate::None => {}
                        BookUpdate::Changed => changed += 1,
                        other => panic!("line {}: {other:?}", rec.line),
                    }
                }
                EventKind::Snapshot(s) => {
                    if i == 0 {
                        got.snapshots += 1;
                    }
                    got.snapshot_levels += 1;
                    assert_eq!(s.last_update_id, u(&data["lastUpdateId"]));
                    match book.apply_snapshot(&s) {
                        BookUpdate::None => assert!(i + 1 < out.len()),
                        BookUpdate::Synced => synced_at = Some(rec.line),
                        other => panic!("line {}: snapshot {other:?}", rec.line),
                    }
                }
                k => panic!("line {}: unexpected {k:?}", rec.line),
            }
        }
        if msg_final.is_some() {
            ev_prev_final = msg_final;
        }
        if synced_at.is_some() {
            assert!(book.is_synced(), "line {}: book fell out of sync", rec.line);
            let (b, a) = (book.best_bid().unwrap(), book.best_ask().unwrap());
            assert!(b.price < a.price, "line {}: crossed", rec.line);
        }
    }
    got.frames = dec.stats().messages;

    assert_eq!(got, want);
    assert_eq!(want.snapshots, 1, "the capture holds one snapshot");
    assert!(want.depth_msgs > 1000 && want.trades > 1000 && want.book_tickers > 1000);
    let s = dec.stats();
    assert_eq!((s.decode_errors, s.ignored, s.unknown_symbol), (0, 0, 0));
    assert_eq!(
        s.events,
        want.trades + want.book_tickers + want.depth_levels + want.snapshot_levels
    );
    assert_eq!(any.stats().decode_errors, 0);

    // pu continuity over the whole file, both ways.
    assert_eq!(raw_pu_checked, want.depth_msgs - 1);
    assert_eq!(ev_pu_checked, want.depth_msgs - 1);

    // The book: synced at the snapshot, every later message applied, nothing else.
    assert!(synced_at.is_some(), "the snapshot synced the book");
    assert!(book.is_synced());
    let bs = book.stats();
    assert_eq!((bs.gaps, bs.snapshots_rejected, bs.crossed), (0, 0, 0));
    assert_eq!(bs.snapshots, 1);
    assert_eq!(bs.buffer_overflows, 0);
    assert_eq!(book.last_update_id(), raw_prev_u.unwrap());
    // Applied: the buffered messages newer than the snapshot (from the one that bridged on),
    // then every message after it; the older buffered ones were dropped.
    assert!(
        buffered_newer >= 1,
        "a buffered message bridged the snapshot"
    );
    assert_eq!(bs.messages_applied, buffered_newer + applied_after_snapshot);
    assert_eq!(changed, applied_after_snapshot);
    assert!(
        bs.stale_levels_dropped > 0,
        "older buffered messages were dropped"
    );
}

/// The snapshot's REST body decodes the same through `decode_snapshot` as through the line
/// (which takes the fast path), and the book built from it bridges the buffered message whose
/// `pu <= lastUpdateId < u`.
#[test]
fn the_snapshot_is_bridged_by_the_message_around_it() {
    let Some(cap) = load() else { return };
    let mut frames: Vec<(u64, Value)> = Vec::new();
    let mut l = None;
    for rec in &cap {
        let rec = rec.unwrap();
        let v: Value = serde_json::from_slice(rec.payload).unwrap();
        if let Some(id) = v.get("lastUpdateId") {
            l = Some(u(id));
            break;
        }
        let d = &v["data"];
        if d["e"] == "depthUpdate" {
            frames.push((u(&d["pu"]), d.clone()));
        }
    }
    let l = l.expect("a snapshot");
    let bridging: Vec<_> = frames
        .iter()
        .filter(|(pu, d)| *pu <= l && l < u(&d["u"]))
        .collect();
    assert_eq!(
        bridging.len(),
        1,
        "exactly one buffered message spans lastUpdateId"
    );
    // In this capture it is step 5's ordinary case: U <= lastUpdateId <= u.
    let d = &bridging[0].1;
    assert!(u(&d["U"]) <= l && l <= u(&d["u"]));

    // The REST path and the line path give the same events.
    let line = cap
        .iter()
        .map(Result::unwrap)
        .find(|r| r.payload.starts_with(b"{\"lastUpdateId\""))
        .unwrap();
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern_on(Venue::BinanceUsdm, "BTCUSDT").unwrap();
    let mut dec = BinanceDecoder::usdm(symbols);
    let (mut rest, mut framed) = (Vec::new(), Vec::new());
    let n = dec
        .decode_snapshot(line.payload, btc, 7, &mut rest)
        .unwrap();
    dec.set_default_symbol(Some(btc));
    assert_eq!(dec.decode(line.payload, 7, &mut framed), Ok(n));
    assert_eq!(rest, framed);
    assert!(rest.len() > 100);
}
