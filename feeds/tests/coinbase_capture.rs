//! The Coinbase decoder on the real capture `../shared/data/cryptofeed/COINBASE.ws.28.0`
//! (cryptofeed v1 text: `<ts>: <frame>` for received frames, `<url> <-> <ts>` for the connect,
//! `<url> <- <ts>: <json>` for each subscribe sent).
//!
//! Every received frame decodes or is ignored with a reason; every product's book rebuilds from
//! its `level2` snapshot and stays synced, uncrossed and gap-free to the end; the `match` and
//! `ticker` sequences are checked here independently (serde_json) against what the decoder
//! delivered and counted. Every expected count is computed from the file.

use engine::book::{BookConfig, BookUpdate, OrderBook};
use engine::event::{BookSide, Event, EventKind};
use engine::fixed::{Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use feeds::coinbase::market::CoinbaseDecoder;
use feeds::venue::{Decoded, IgnoreReason};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cryptofeed/COINBASE.ws.28.0"
);

/// One line of the capture.
enum Line<'a> {
    /// A received frame and its receive time in ns.
    Frame(u64, &'a str),
    /// A subscribe request sent.
    Sent(&'a str),
    /// The connect line.
    Connect,
    /// An empty line (the file ends with two).
    Blank,
}

/// `1618677817.0208309` as nanoseconds, exactly (no f64).
fn ts_ns(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || frac.len() > 9
        || !(int.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut ns: u64 = int.parse::<u64>().ok()?.checked_mul(1_000_000_000)?;
    let mut scale = 100_000_000;
    for b in frac.bytes() {
        ns += u64::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(ns)
}

fn parse_line(line: &str) -> Line<'_> {
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some((ts, frame)) = line.split_once(": ") {
        if let Some(ns) = ts_ns(ts) {
            return Line::Frame(ns, frame);
        }
        if ts.contains(" <- ") {
            return Line::Sent(frame);
        }
    }
    assert!(line.contains(" <-> "), "unknown capture line {line:.200}");
    Line::Connect
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"))
}

fn dec(s: &str) -> i64 {
    Price::parse(s.as_bytes()).unwrap().0
}

/// Per product: what serde_json says the decoder must have done.
#[derive(Default, Debug)]
struct Expect {
    snapshots: u64,
    l2updates: u64,
    trades: u64,
    match_dups: u64,
    tickers: u64,
    ticker_dups: u64,
    last_match_seq: Option<u64>,
    last_ticker_seq: Option<u64>,
}

#[test]
fn every_frame_decodes_and_every_book_rebuilds() {
    let Ok(text) = std::fs::read_to_string(CAPTURE) else {
        eprintln!("NOTICE: {CAPTURE} not found; coinbase capture test skipped");
        return;
    };
    let lines: Vec<Line<'_>> = text.lines().map(parse_line).collect();

    // The products are the ones the recorder subscribed to.
    let mut symbols = SymbolTable::new();
    let mut ids: BTreeMap<String, SymbolId> = BTreeMap::new();
    for l in &lines {
        if let Line::Sent(json) = l {
            let v: Value = serde_json::from_str(json).unwrap();
            assert_eq!(str_of(&v, "type"), "subscribe");
            for p in v["product_ids"].as_array().unwrap() {
                let p = p.as_str().unwrap();
                if !ids.contains_key(p) {
                    ids.insert(
                        p.to_string(),
                        symbols.intern_on(Venue::Coinbase, p).unwrap(),
                    );
                }
            }
        }
    }
    assert_eq!(ids.len(), 10, "the capture subscribes ten products");
    let name_of: HashMap<SymbolId, String> = ids.iter().map(|(k, v)| (*v, k.clone())).collect();

    let mut d = CoinbaseDecoder::new(symbols);
    let mut books: HashMap<SymbolId, OrderBook> = ids
        .values()
        .map(|&s| (s, OrderBook::new(BookConfig::default())))
        .collect();
    let mut expect: BTreeMap<String, Expect> = BTreeMap::new();
    let mut frames = 0u64;
    let mut responses = 0u64;
    let mut expected_events = 0u64;
    let mut trades: HashMap<SymbolId, Vec<(u64, i64, i64, bool)>> = HashMap::new();
    let mut tickers: HashMap<SymbolId, Vec<u64>> = HashMap::new();
    let mut changed = 0u64;
    let mut out: Vec<Event> = Vec::with_capacity(1 << 16);

    for l in &lines {
        let Line::Frame(recv_ns, frame) = *l else {
            continue;
        };
        frames += 1;
        let v: Value = serde_json::from_str(frame).unwrap();
        let ty = str_of(&v, "type");
        out.clear();
        let r = d.decode(frame.as_bytes(), recv_ns, &mut out);
        let r = r.unwrap_or_else(|e| panic!("decode error {e} on {frame:.300}"));

        // What serde_json says this frame is and must give.
        if ty == "subscriptions" {
            responses += 1;
            assert_eq!(r, Decoded::Ignored(IgnoreReason::Response));
            continue;
        }
        let product = str_of(&v, "product_id");
        let e = expect.entry(product.to_string()).or_default();
        let symbol = ids[product];
        match ty {
            "snapshot" => {
                e.snapshots += 1;
                let n = v["bids"].as_array().unwrap().len() + v["asks"].as_array().unwrap().len();
                expected_events += n.max(1) as u64;
                assert_eq!(r, Decoded::Events(n.max(1)));
            }
            "l2update" => {
                e.l2updates += 1;
                let changes = v["changes"].as_array().unwrap();
                expected_events += changes.len().max(1) as u64;
                assert_eq!(r, Decoded::Events(changes.len().max(1)));
                for (ev, c) in out.iter().zip(changes) {
                    let EventKind::Depth(lvl) = ev.kind else {
                        panic!("{ev:?}")
                    };
                    let side = if c[0] == "buy" {
                        BookSide::Bid
                    } else {
                        BookSide::Ask
                    };
                    assert_eq!(lvl.side, side);
                    assert_eq!(lvl.price.0, dec(c[1].as_str().unwrap()));
                    assert_eq!(
                        lvl.qty,
                        Qty::parse(c[2].as_str().unwrap().as_bytes()).unwrap()
                    );
                    // The venue's clock and the recorder's agree within a minute.
                    assert!(
                        lvl.exch_ns.abs_diff(recv_ns) < 60_000_000_000,
                        "{frame:.200}"
                    );
                }
            }
            "match" | "last_match" => {
                let seq = v["sequence"].as_u64().unwrap();
                if e.last_match_seq.is_some_and(|l| seq <= l) {
                    e.match_dups += 1;
                    assert_eq!(r, Decoded::Ignored(IgnoreReason::Duplicate));
                } else {
                    e.last_match_seq = Some(seq);
                    e.trades += 1;
                    expected_events += 1;
                    assert_eq!(r, Decoded::Events(1));
                    trades.entry(symbol).or_default().push((
                        v["trade_id"].as_u64().unwrap(),
                        dec(str_of(&v, "price")),
                        dec(str_of(&v, "size")),
                        str_of(&v, "side") == "buy",
                    ));
                }
            }
            "ticker" => {
                let seq = v["sequence"].as_u64().unwrap();
                if e.last_ticker_seq.is_some_and(|l| seq <= l) {
                    e.ticker_dups += 1;
                    assert_eq!(r, Decoded::Ignored(IgnoreReason::Duplicate));
                } else {
                    e.last_ticker_seq = Some(seq);
                    e.tickers += 1;
                    expected_events += 1;
                    assert_eq!(r, Decoded::Events(1));
                    tickers.entry(symbol).or_default().push(seq);
                    let EventKind::BookTicker(t) = out[0].kind else {
                        panic!()
                    };
                    assert_eq!(t.bid_px.0, dec(str_of(&v, "best_bid")));
                    assert_eq!(t.ask_px.0, dec(str_of(&v, "best_ask")));
                }
            }
            other => panic!("the capture has a {other} message the test does not know"),
        }

        // Every event goes to its book (or is checked against the trades seen).
        for ev in &out {
            assert_eq!(ev.symbol, symbol);
            assert_eq!(ev.recv_ns, recv_ns);
            let book = books.get_mut(&ev.symbol).unwrap();
            let u = match ev.kind {
                EventKind::Depth(lvl) => book.apply_depth(&lvl),
                EventKind::Snapshot(lvl) => book.apply_snapshot(&lvl),
                EventKind::Trade(t) => {
                    let want = trades[&symbol].last().copied().unwrap();
                    assert_eq!((t.trade_id, t.price.0, t.qty.0, t.buyer_maker), want);
                    continue;
                }
                EventKind::BookTicker(_) => continue,
                ref k => panic!("unexpected event {k:?}"),
            };
            match u {
                BookUpdate::None => {}
                BookUpdate::Changed | BookUpdate::Synced => {
                    changed += 1;
                    let (b, a) = (book.best_bid().unwrap(), book.best_ask().unwrap());
                    assert!(
                        b.price < a.price,
                        "{} crossed at {frame:.200}",
                        name_of[&symbol]
                    );
                }
                other => panic!("{}: {other:?} at {frame:.200}", name_of[&symbol]),
            }
        }
    }

    // Counters add up.
    let st = *d.stats();
    assert_eq!(st.messages, frames);
    assert_eq!(st.decode_errors, 0);
    assert_eq!(st.unknown_symbol, 0);
    let dups: u64 = expect.values().map(|e| e.match_dups + e.ticker_dups).sum();
    assert_eq!(st.ignored, responses + dups);
    assert_eq!(st.events, expected_events);
    let seq = *d.sequence_stats();
    assert_eq!(
        seq.match_duplicates,
        expect.values().map(|e| e.match_dups).sum::<u64>()
    );
    assert_eq!(
        seq.ticker_duplicates,
        expect.values().map(|e| e.ticker_dups).sum::<u64>()
    );
    assert_eq!(
        seq.snapshots,
        expect.values().map(|e| e.snapshots).sum::<u64>()
    );

    // Each book: one snapshot, every update applied, synced to the end, no gap, no cross.
    for (name, e) in &expect {
        let id = ids[name.as_str()];
        let book = &books[&id];
        let bs = book.stats();
        assert!(book.is_synced(), "{name}: {book:?}");
        assert_eq!(e.snapshots, 1, "{name}");
        assert_eq!(bs.snapshots, e.snapshots, "{name}");
        assert_eq!(bs.gaps, 0, "{name}");
        assert_eq!(bs.crossed, 0, "{name}");
        assert_eq!(bs.snapshots_rejected, 0, "{name}");
        assert_eq!(bs.messages_applied, e.l2updates, "{name}");
        assert_eq!(book.last_update_id(), e.snapshots + e.l2updates, "{name}");
        // Trades: strictly increasing ids per product once duplicates are dropped.
        if let Some(t) = trades.get(&id) {
            assert_eq!(t.len() as u64, e.trades);
            assert!(
                t.windows(2).all(|w| w[0].0 < w[1].0),
                "{name}: trade ids out of order"
            );
        }
        if let Some(t) = tickers.get(&id) {
            assert_eq!(t.len() as u64, e.tickers);
        }
    }
    assert_eq!(expect.len(), ids.len(), "every product sent something");
    eprintln!(
        "coinbase capture: {frames} frames, {} events, {changed} book updates, {} snapshots, \
         {} match and {} ticker duplicates dropped",
        st.events, seq.snapshots, seq.match_duplicates, seq.ticker_duplicates
    );
}

/// Events lost between the decoder and a book are a gap the book sees, and the next snapshot
/// (what the resubscribe brings) makes it synced again.
#[test]
fn lost_updates_are_a_gap_and_a_snapshot_resyncs() {
    let Ok(text) = std::fs::read_to_string(CAPTURE) else {
        eprintln!("NOTICE: {CAPTURE} not found; coinbase capture test skipped");
        return;
    };
    let mut symbols = SymbolTable::new();
    let skl = symbols.intern_on(Venue::Coinbase, "SKL-USD").unwrap();
    let mut d = CoinbaseDecoder::new(symbols);
    let mut book = OrderBook::new(BookConfig::default());
    let mut out = Vec::with_capacity(1 << 16);
    let mut snapshot_frame = None;
    let (mut updates, mut gaps, mut resynced) = (0u64, 0u64, false);
    for line in text.lines() {
        let Line::Frame(ns, frame) = parse_line(line) else {
            continue;
        };
        out.clear();
        d.decode(frame.as_bytes(), ns, &mut out).unwrap();
        let Some(first) = out.first() else { continue };
        if first.symbol != skl {
            continue;
        }
        match first.kind {
            EventKind::Snapshot(_) => snapshot_frame = Some(frame),
            EventKind::Depth(_) => {
                updates += 1;
                if updates == 100 {
                    continue; // lost
                }
            }
            _ => continue,
        }
        for ev in &out {
            let u = match ev.kind {
                EventKind::Depth(l) => book.apply_depth(&l),
                EventKind::Snapshot(l) => book.apply_snapshot(&l),
                _ => BookUpdate::None,
            };
            if let BookUpdate::Gap { expected, got } = u {
                assert_eq!(got, expected + 1);
                gaps += 1;
            }
        }
        if updates == 101 && gaps == 1 && !resynced {
            assert!(!book.is_synced());
            // The resubscribe's snapshot (here: the capture's, decoded again, so it takes the
            // next id) replaces the book; the updates after it apply.
            out.clear();
            d.decode(snapshot_frame.unwrap().as_bytes(), ns, &mut out)
                .unwrap();
            let mut last = BookUpdate::None;
            for ev in &out {
                if let EventKind::Snapshot(l) = ev.kind {
                    last = book.apply_snapshot(&l);
                }
            }
            assert!(
                matches!(last, BookUpdate::None | BookUpdate::Synced),
                "{last:?}"
            );
            resynced = true;
        } else if resynced && updates == 102 {
            assert!(book.is_synced(), "{book:?}");
        }
    }
    assert_eq!(gaps, 1);
    assert!(resynced && updates > 102);
    assert_eq!(book.stats().snapshots, 2);
    assert_eq!(book.stats().gaps, 1);
}

#[test]
fn timestamps_parse_exactly() {
    assert_eq!(ts_ns("1618677817.0208309"), Some(1_618_677_817_020_830_900));
    assert_eq!(ts_ns("1618677816"), Some(1_618_677_816_000_000_000));
    assert_eq!(ts_ns("wss://x <- 1"), None);
}
