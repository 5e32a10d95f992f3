//! The body of the `okx_decode` target (OKX v5 market data, `feeds::okx`).

use super::{check_round_trips, counting, events_room};
use engine::book::{BookConfig, OrderBook};
use engine::checksum::okx_book_checksum;
use engine::event::EventKind;
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::okx::market::OkxDecoder;
use feeds::venue::{DecodeError, Decoded};

fn check_output(r: &Result<Decoded, DecodeError>, out: &[engine::event::Event]) {
    match r {
        Ok(Decoded::Events(n)) => assert_eq!(*n, out.len(), "event count"),
        Ok(Decoded::Ignored(_)) | Err(_) => assert!(out.is_empty(), "events left by {r:?}"),
    }
}

/// `OkxDecoder::decode` and `decode_snapshot` on any bytes: no panic, no allocation inside the
/// call, no output on error or when ignored, the returned count equals the events appended,
/// only market kinds of known OKX symbols come out, prices and quantities round-trip, the
/// counters add up; then the events go through an order book and OKX's checksum of it (no
/// panic on any prices).
pub fn okx_decode(data: &[u8]) {
    let mut t = SymbolTable::new();
    t.intern("BTCUSDT").ok(); // another venue's symbol
    for s in ["BTC-USDT", "BTC-USD-SWAP", "BTC-USD-220527", "UNI-USD-SWAP"] {
        t.intern_on(Venue::Okx, s).ok();
    }
    let Some(btc) = t.lookup_on(Venue::Okx, b"BTC-USDT") else {
        unreachable!("interned above")
    };
    let mut d = OkxDecoder::new(t.clone());
    let mut out = events_room(data);
    let cap = out.capacity();
    let (r, allocs) = counting(|| d.decode(data, 7, &mut out));
    assert_eq!(allocs, 0, "decode allocated {allocs} times ({r:?})");
    assert_eq!(out.capacity(), cap, "the events Vec grew");
    check_output(&r, &out);
    check_round_trips(&out);
    for e in &out {
        assert_eq!(e.recv_ns, 7, "receive time not stamped");
        assert_eq!(t.venue(e.symbol), Some(Venue::Okx), "not an OKX symbol");
        assert!(
            matches!(
                e.kind,
                EventKind::Depth(_)
                    | EventKind::Snapshot(_)
                    | EventKind::BookChecksum(_)
                    | EventKind::Trade(_)
                    | EventKind::BookTicker(_)
                    | EventKind::Gap(_)
            ),
            "unexpected kind {:?}",
            e.kind
        );
    }
    let mut book = OrderBook::new(BookConfig {
        max_levels_per_side: 64,
        max_buffered_levels: 1024,
    });
    let feed = |book: &mut OrderBook, evs: &[engine::event::Event]| {
        for e in evs {
            match &e.kind {
                EventKind::Depth(l) => {
                    book.apply_depth(l);
                }
                EventKind::Snapshot(l) => {
                    book.apply_snapshot(l);
                }
                EventKind::BookChecksum(_) => {
                    okx_book_checksum(book);
                }
                _ => {}
            }
        }
    };
    feed(&mut book, &out);

    out.clear();
    let (s, allocs) = counting(|| d.decode_snapshot(data, btc, 9, &mut out));
    assert_eq!(
        allocs, 0,
        "decode_snapshot allocated {allocs} times ({s:?})"
    );
    check_output(&s, &out);
    check_round_trips(&out);
    assert!(
        out.iter().all(|e| e.symbol == btc
            && matches!(e.kind, EventKind::Snapshot(_) | EventKind::BookChecksum(_))),
        "a snapshot produced something else than levels of its symbol"
    );
    feed(&mut book, &out);

    let st = d.stats();
    assert_eq!(st.messages, 2);
    let errors = u64::from(r.is_err()) + u64::from(s.is_err());
    assert_eq!(st.decode_errors, errors);
}
