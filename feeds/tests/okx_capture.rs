//! OKX v5 on real data: cryptofeed's `OKX.ws.1.0` (2022-05-13, three instruments: books with
//! checksums, trades, tickers). Every frame decodes or is ignored with a reason, each book
//! rebuilds without a gap, and every checksum in the capture matches the rebuilt book.

use engine::book::{BookConfig, BookUpdate, OrderBook};
use engine::checksum::okx_book_checksum;
use engine::event::{Event, EventKind};
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::okx::market::OkxDecoder;
use feeds::venue::{Decoded, IgnoreReason};
use std::collections::HashMap;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cryptofeed/OKX.ws.1.0"
);

const INSTRUMENTS: [&str; 3] = ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"];

/// The received frames of a cryptofeed v1 text capture: `<ts>: <frame>` lines, as
/// `(receive ns, frame)`; connect (`wss://.. <-> ts`) and send (`wss://.. <- ts: ..`) lines
/// are not received frames and are skipped.
fn frames(text: &str) -> Vec<(u64, &str)> {
    text.lines()
        .filter(|l| !l.starts_with("wss://") && !l.is_empty())
        .map(|l| {
            let (ts, frame) = l.split_once(": ").expect("`<ts>: <frame>` line");
            let secs: f64 = ts.parse().expect("receive time");
            ((secs * 1e9) as u64, frame)
        })
        .collect()
}

#[test]
fn okx_capture_decodes_and_every_checksum_matches() {
    let Ok(text) = std::fs::read_to_string(CAPTURE) else {
        println!("NOTICE: {CAPTURE} absent: OKX capture test skipped");
        return;
    };
    let frames = frames(&text);
    assert!(frames.len() > 400, "{} frames", frames.len());

    let mut symbols = SymbolTable::new();
    for s in INSTRUMENTS {
        symbols.intern_on(Venue::Okx, s).unwrap();
    }
    // What the test expects, computed from the frames themselves (serde_json, independent of
    // the decoder): books messages with a non-zero checksum for the instruments in the table.
    let mut expected_checksums = 0u64;
    for (_, f) in &frames {
        let v: serde_json::Value = serde_json::from_str(f).unwrap();
        if v.get("event").is_none()
            && v["arg"]["channel"] == "books"
            && INSTRUMENTS.contains(&v["arg"]["instId"].as_str().unwrap_or(""))
        {
            for d in v["data"].as_array().unwrap() {
                if d["checksum"].as_i64().unwrap_or(0) != 0 {
                    expected_checksums += 1;
                }
            }
        }
    }
    assert!(expected_checksums > 250, "{expected_checksums}");

    let mut dec = OkxDecoder::new(symbols.clone());
    let mut books: Vec<OrderBook> = INSTRUMENTS
        .iter()
        .map(|_| OrderBook::new(BookConfig::default()))
        .collect();
    let mut out: Vec<Event> = Vec::with_capacity(4096);
    let mut ignored: HashMap<IgnoreReason, u64> = HashMap::new();
    let (mut matched, mut mismatched, mut unchecked) = (0u64, 0u64, 0u64);
    let (mut trades, mut tickers, mut gaps_seen) = (0u64, 0u64, 0u64);
    for (recv_ns, f) in &frames {
        out.clear();
        match dec.decode(f.as_bytes(), *recv_ns, &mut out) {
            Ok(Decoded::Events(_)) => {}
            Ok(Decoded::Ignored(why)) => *ignored.entry(why).or_default() += 1,
            Err(e) => panic!("decode error {e} on {f}"),
        }
        for ev in &out {
            let book = &mut books[ev.symbol.index()];
            let r = match &ev.kind {
                EventKind::Depth(d) => book.apply_depth(d),
                EventKind::Snapshot(s) => book.apply_snapshot(s),
                EventKind::BookChecksum(c) => {
                    if book.is_synced() && book.last_update_id() == c.update_id {
                        if okx_book_checksum(book) == c.checksum {
                            matched += 1;
                        } else {
                            mismatched += 1;
                        }
                    } else {
                        unchecked += 1;
                    }
                    BookUpdate::None
                }
                EventKind::Trade(_) => {
                    trades += 1;
                    BookUpdate::None
                }
                EventKind::BookTicker(_) => {
                    tickers += 1;
                    BookUpdate::None
                }
                EventKind::Gap(_) => {
                    gaps_seen += 1;
                    BookUpdate::None
                }
                other => panic!("unexpected event {other:?}"),
            };
            assert!(
                !matches!(
                    r,
                    BookUpdate::Gap { .. } | BookUpdate::Crossed | BookUpdate::SnapshotRejected
                ),
                "{r:?} at {f}"
            );
        }
    }
    let st = dec.stats();
    println!(
        "OKX capture: {} frames, {} events, ignored {:?}, trades {trades}, tickers {tickers}, \
         checksums matched {matched} of {expected_checksums}",
        st.messages, st.events, ignored
    );
    assert_eq!(st.messages, frames.len() as u64);
    assert_eq!(st.decode_errors, 0);
    assert_eq!(st.ignored, ignored.values().sum::<u64>());
    // 18 subscription acks, nothing else ignored.
    assert_eq!(ignored.get(&IgnoreReason::Response), Some(&18));
    assert_eq!(ignored.len(), 1);
    assert_eq!((trades, tickers), (74, 28));
    assert_eq!(mismatched, 0, "checksum mismatches");
    assert_eq!(
        unchecked, 0,
        "checksums that found no synced book at their id"
    );
    assert_eq!(matched, expected_checksums);
    assert_eq!(gaps_seen, 0);
    assert_eq!(dec.sequence_resets(), 0);
    for (i, b) in books.iter().enumerate() {
        let s = b.stats();
        assert!(b.is_synced(), "{}: {:?}", INSTRUMENTS[i], b.state());
        assert_eq!(s.gaps, 0, "{}", INSTRUMENTS[i]);
        assert_eq!(s.crossed, 0, "{}", INSTRUMENTS[i]);
        assert_eq!(s.snapshots, 1, "{}", INSTRUMENTS[i]);
        assert!(s.messages_applied > 90, "{}: {s:?}", INSTRUMENTS[i]);
    }
}

/// A flipped quantity anywhere in the top 25 makes the recomputed checksum differ.
#[test]
fn a_flipped_quantity_fails_the_capture_checksum() {
    let Ok(text) = std::fs::read_to_string(CAPTURE) else {
        println!("NOTICE: {CAPTURE} absent: OKX capture test skipped");
        return;
    };
    let frames = frames(&text);
    let snap = frames
        .iter()
        .find(|(_, f)| f.contains(r#""instId":"BTC-USDT"},"action":"snapshot""#))
        .expect("BTC-USDT snapshot")
        .1;
    // The best bid's size, changed by one digit.
    let v: serde_json::Value = serde_json::from_str(snap).unwrap();
    let sz = v["data"][0]["bids"][0][1].as_str().unwrap().to_string();
    let flipped_sz = if sz.ends_with('1') {
        format!("{}2", &sz[..sz.len() - 1])
    } else {
        format!("{}1", &sz[..sz.len() - 1])
    };
    let px = v["data"][0]["bids"][0][0].as_str().unwrap();
    let flipped = snap.replacen(
        &format!(r#"["{px}","{sz}""#),
        &format!(r#"["{px}","{flipped_sz}""#),
        1,
    );
    assert_ne!(flipped, snap);

    for (frame, want_match) in [(snap, true), (flipped.as_str(), false)] {
        let mut symbols = SymbolTable::new();
        symbols.intern_on(Venue::Okx, "BTC-USDT").unwrap();
        let mut dec = OkxDecoder::new(symbols);
        let mut out = Vec::new();
        dec.decode(frame.as_bytes(), 1, &mut out).unwrap();
        let mut book = OrderBook::new(BookConfig::default());
        let mut checked = None;
        for ev in &out {
            match &ev.kind {
                EventKind::Snapshot(s) => {
                    book.apply_snapshot(s);
                }
                EventKind::BookChecksum(c) => {
                    assert!(book.is_synced());
                    checked = Some(okx_book_checksum(&book) == c.checksum);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(checked, Some(want_match));
    }
}

/// The same capture through the core (ring, dispatch, book, checksum check): every checksum
/// verified, none failed, no gap, no resync.
#[test]
fn okx_capture_through_the_core_verifies_every_checksum() {
    use engine::core::{Clock, CoreBuilder, CoreConfig};
    use engine::ring::{event_ring, OnFull};
    struct At;
    impl Clock for At {
        fn now_ns(&self) -> u64 {
            0
        }
    }
    let Ok(text) = std::fs::read_to_string(CAPTURE) else {
        println!("NOTICE: {CAPTURE} absent: OKX capture test skipped");
        return;
    };
    let mut symbols = SymbolTable::new();
    for s in INSTRUMENTS {
        symbols.intern_on(Venue::Okx, s).unwrap();
    }
    let (rtx, mut resyncs) = rtrb::RingBuffer::new(64);
    let mut core = CoreBuilder::new(&symbols, CoreConfig::default(), At)
        .resync_sink(rtx)
        .build();
    let (mut tx, rx) = event_ring(4096, OnFull::Drop);
    core.add_input(rx);
    let mut dec = OkxDecoder::new(symbols);
    let mut out = Vec::with_capacity(4096);
    let mut books_with_checksum = 0;
    for (recv_ns, f) in frames(&text) {
        out.clear();
        dec.decode(f.as_bytes(), recv_ns, &mut out).unwrap();
        books_with_checksum += out
            .iter()
            .filter(|e| matches!(e.kind, EventKind::BookChecksum(_)))
            .count() as u64;
        tx.push_all(&out).unwrap();
        while core.poll(recv_ns) > 0 {}
    }
    let c = core.counters();
    assert_eq!(c.checksums_verified, books_with_checksum);
    assert_eq!(c.checksums_verified, 290);
    assert_eq!(c.checksum_failures, 0);
    assert_eq!(c.book_gaps, 0);
    assert_eq!(c.book_crossed, 0);
    assert_eq!(c.book_syncs, 3);
    assert_eq!(core.book_stats().checksum_failures, 0);
    // Each book's WebSocket snapshot came before its first update: no resync was ever needed.
    let mut asked = 0;
    while resyncs.pop().is_ok() {
        asked += 1;
    }
    assert_eq!(asked, 0, "resync requests");
}
