//! The core verifies a venue's book checksum ([`EventKind::BookChecksum`]) after the message it
//! follows: equal books are counted as verified; a flipped quantity makes the book stale, asks
//! for a resync and is counted per book and in the core's counters.

use engine::core::{Clock, Core, CoreBuilder, CoreConfig};
use engine::event::{
    BookChecksum, BookSide, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel,
};
use engine::fixed::{Price, Qty};
use engine::ring::{event_ring, EventTx, OnFull};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

struct Fixed;
impl Clock for Fixed {
    fn now_ns(&self) -> u64 {
        1_000
    }
}

/// OKX's documented example book: bids 3366.1 x 7, 3366 x 6; asks 3366.8 x 9, 3368 x 8.
const EXAMPLE: [(BookSide, &str, &str); 4] = [
    (BookSide::Bid, "3366.1", "7"),
    (BookSide::Bid, "3366", "6"),
    (BookSide::Ask, "3366.8", "9"),
    (BookSide::Ask, "3368", "8"),
];
/// Its checksum (signed, as OKX sends it).
const EXAMPLE_CHECKSUM: i32 = -1_881_014_294;

fn setup() -> (Core<Fixed>, EventTx, rtrb::Consumer<SymbolId>, SymbolId) {
    let mut symbols = SymbolTable::new();
    let btc = symbols.intern_on(Venue::Okx, "BTC-USDT").unwrap();
    let (rtx, rrx) = rtrb::RingBuffer::new(16);
    let mut core = CoreBuilder::new(&symbols, CoreConfig::default(), Fixed)
        .resync_sink(rtx)
        .build();
    let (tx, rx) = event_ring(64, OnFull::Drop);
    core.add_input(rx);
    (core, tx, rrx, btc)
}

fn push(tx: &mut EventTx, sym: SymbolId, kind: EventKind) {
    tx.push(Event::new(1, sym, kind)).unwrap();
}

fn snapshot(tx: &mut EventTx, sym: SymbolId, id: u64) {
    for (i, (side, px, sz)) in EXAMPLE.iter().enumerate() {
        let flags = if i + 1 == EXAMPLE.len() {
            LevelFlags::LAST
        } else {
            LevelFlags::default()
        };
        push(
            tx,
            sym,
            EventKind::Snapshot(SnapshotLevel {
                last_update_id: id,
                price: Price::parse(px.as_bytes()).unwrap(),
                qty: Qty::parse(sz.as_bytes()).unwrap(),
                side: *side,
                flags,
            }),
        );
    }
}

fn checksum(tx: &mut EventTx, sym: SymbolId, id: u64, c: i32) {
    push(
        tx,
        sym,
        EventKind::BookChecksum(BookChecksum {
            update_id: id,
            checksum: c as u32,
        }),
    );
}

#[test]
fn matching_checksums_are_verified_and_the_book_stays_synced() {
    let (mut core, mut tx, mut resyncs, btc) = setup();
    snapshot(&mut tx, btc, 1);
    checksum(&mut tx, btc, 1, EXAMPLE_CHECKSUM);
    // A checksum for another message id is not checked (nothing to compare it with).
    checksum(&mut tx, btc, 7, 12345);
    core.poll(2_000);
    let book = core.book(btc).unwrap();
    assert!(book.is_synced());
    assert_eq!(book.stats().checksum_failures, 0);
    assert_eq!(core.counters().checksums_verified, 1);
    assert_eq!(core.counters().checksum_failures, 0);
    assert!(resyncs.pop().is_err(), "no resync asked");
}

#[test]
fn a_flipped_quantity_fails_the_checksum_and_the_book_goes_stale() {
    let (mut core, mut tx, mut resyncs, btc) = setup();
    snapshot(&mut tx, btc, 1);
    checksum(&mut tx, btc, 1, EXAMPLE_CHECKSUM);
    // Message 2 sets the best bid to 8 here, but the venue's book still has 7 (its checksum is
    // the example's): our book is wrong.
    push(
        &mut tx,
        btc,
        EventKind::Depth(DepthLevel {
            exch_ns: 0,
            final_update_id: 2,
            price: Price::parse(b"3366.1").unwrap(),
            qty: Qty::parse(b"8").unwrap(),
            update_span: 0,
            side: BookSide::Bid,
            flags: LevelFlags::LAST,
        }),
    );
    checksum(&mut tx, btc, 2, EXAMPLE_CHECKSUM);
    core.poll(2_000);
    let book = core.book(btc).unwrap();
    assert!(!book.is_synced(), "{:?}", book.state());
    assert_eq!(book.stats().checksum_failures, 1);
    assert_eq!(book.stats().gaps, 0);
    assert_eq!(core.counters().checksums_verified, 1);
    assert_eq!(core.counters().checksum_failures, 1);
    assert_eq!(core.book_stats().checksum_failures, 1);
    assert_eq!(resyncs.pop(), Ok(btc), "resync asked");

    // A new snapshot brings the book back; its checksum matches again.
    snapshot(&mut tx, btc, 3);
    checksum(&mut tx, btc, 3, EXAMPLE_CHECKSUM);
    core.poll(3_000);
    let book = core.book(btc).unwrap();
    assert!(book.is_synced());
    assert_eq!(core.counters().checksums_verified, 2);
    assert_eq!(core.counters().checksum_failures, 1);
}
