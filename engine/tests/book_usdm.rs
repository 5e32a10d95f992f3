//! Binance USD-M futures' book procedure through the one [`OrderBook`]: messages shaped as the
//! USD-M decoder makes them (`final_update_id = u`, `update_span = u - pu - 1`, so
//! `first_update_id() = pu + 1`), checked against Binance's documented rule ("How to manage a
//! local order book correctly", USD-M):
//!
//! 4. Drop any event where `u` is < `lastUpdateId` in the snapshot.
//! 5. The first processed event should have `U <= lastUpdateId` AND `u >= lastUpdateId`.
//! 6. Each new event's `pu` should be equal to the previous event's `u`, otherwise initialize
//!    the process from step 3.
//!
//! `feeds::binance::usdm`'s module docs derive why the book implements this rule; here the
//! book is run against a literal implementation of it on every snapshot id around a chain.

use engine::book::{BookConfig, BookUpdate, Level, OrderBook};
use engine::event::{BookSide, DepthLevel, LevelFlags, SnapshotLevel};
use engine::fixed::{Price, Qty};
use std::collections::BTreeMap;
use BookSide::{Ask, Bid};

/// One USD-M `depthUpdate` as it is on the wire (`U` is kept for the literal rule only: the
/// decoder and the book do not use it).
#[derive(Clone, Debug)]
struct Msg {
    pu: u64,
    first: u64,
    last: u64,
    levels: Vec<(BookSide, i64, i64)>,
}

fn msg(pu: u64, first: u64, last: u64, levels: &[(BookSide, i64, i64)]) -> Msg {
    Msg {
        pu,
        first,
        last,
        levels: levels.to_vec(),
    }
}

/// The events the USD-M decoder makes of `m` (span saturated as it does).
fn events(m: &Msg) -> Vec<DepthLevel> {
    let base = DepthLevel {
        exch_ns: 1_723_161_256_299_000_000,
        final_update_id: m.last,
        price: Price::ZERO,
        qty: Qty::ZERO,
        update_span: u32::try_from(m.last - m.pu - 1).unwrap_or(u32::MAX),
        side: Bid,
        flags: LevelFlags::default(),
    };
    if m.levels.is_empty() {
        return vec![DepthLevel {
            flags: LevelFlags::LAST.with(LevelFlags::EMPTY),
            ..base
        }];
    }
    let n = m.levels.len();
    m.levels
        .iter()
        .enumerate()
        .map(|(i, &(side, p, q))| DepthLevel {
            price: Price::from_int(p),
            qty: Qty::from_int(q),
            side,
            flags: if i + 1 == n {
                LevelFlags::LAST
            } else {
                LevelFlags::default()
            },
            ..base
        })
        .collect()
}

/// A reference book: price -> qty per side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Ref {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl Ref {
    fn apply(&mut self, m: &Msg) {
        for &(side, p, q) in &m.levels {
            let s = match side {
                Bid => &mut self.bids,
                Ask => &mut self.asks,
            };
            if q == 0 {
                s.remove(&p);
            } else {
                s.insert(p, q);
            }
        }
    }

    fn snapshot(&self, id: u64) -> Vec<SnapshotLevel> {
        let mut out: Vec<SnapshotLevel> = self
            .bids
            .iter()
            .map(|(&p, &q)| (Bid, p, q))
            .chain(self.asks.iter().map(|(&p, &q)| (Ask, p, q)))
            .map(|(side, p, q)| SnapshotLevel {
                last_update_id: id,
                price: Price::from_int(p),
                qty: Qty::from_int(q),
                side,
                flags: LevelFlags::default(),
            })
            .collect();
        match out.last_mut() {
            Some(l) => l.flags = LevelFlags::LAST,
            None => out.push(SnapshotLevel {
                last_update_id: id,
                price: Price::ZERO,
                qty: Qty::ZERO,
                side: Bid,
                flags: LevelFlags::LAST.with(LevelFlags::EMPTY),
            }),
        }
        out
    }

    /// Best first, as the book shows it.
    fn levels(&self) -> (Vec<Level>, Vec<Level>) {
        let lv = |(&p, &q): (&i64, &i64)| Level {
            price: Price::from_int(p),
            qty: Qty::from_int(q),
        };
        (
            self.bids.iter().rev().map(lv).collect(),
            self.asks.iter().map(lv).collect(),
        )
    }
}

fn send(book: &mut OrderBook, m: &Msg) -> BookUpdate {
    let evs = events(m);
    let (last, init) = evs.split_last().unwrap();
    for l in init {
        assert_eq!(book.apply_depth(l), BookUpdate::None);
    }
    book.apply_depth(last)
}

fn load(book: &mut OrderBook, snap: &[SnapshotLevel]) -> BookUpdate {
    let (last, init) = snap.split_last().unwrap();
    for l in init {
        assert_eq!(book.apply_snapshot(l), BookUpdate::None);
    }
    book.apply_snapshot(last)
}

fn shown(book: &OrderBook) -> (Vec<Level>, Vec<Level>) {
    (book.bids().collect(), book.asks().collect())
}

/// Binance's literal rule: the book after the snapshot (holding everything up to `l`) and the
/// buffered `msgs`; `None` when no buffered event may be processed first (step 5 fails).
fn literal(snapshot: &Ref, l: u64, msgs: &[Msg]) -> Option<Ref> {
    let rest: Vec<&Msg> = msgs.iter().skip_while(|m| m.last < l).collect();
    let mut book = snapshot.clone();
    let Some((first, more)) = rest.split_first() else {
        return Some(book); // nothing newer buffered yet: synced, the next live event bridges
    };
    if !(first.first <= l && first.last >= l) {
        return None;
    }
    book.apply(first);
    let mut prev = first.last;
    for m in more {
        assert_eq!(m.pu, prev, "the test chain is unbroken");
        book.apply(m);
        prev = m.last;
    }
    Some(book)
}

fn base() -> Ref {
    let mut r = Ref::default();
    r.apply(&msg(
        0,
        0,
        0,
        &[(Bid, 90, 1), (Bid, 95, 2), (Ask, 105, 3), (Ask, 110, 4)],
    ));
    r
}

/// A chain of USD-M messages with ids that skip (`U > pu + 1`), like the real stream.
fn chain(start_pu: u64, n: usize) -> Vec<Msg> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut pu = start_pu;
    (0..n)
        .map(|_| {
            let first = pu + 1 + next() % 4;
            let last = first + next() % 3;
            let levels: Vec<(BookSide, i64, i64)> = (0..next() % 4)
                .map(|_| {
                    let bid = next() % 2 == 0;
                    let p = 90 + (next() % 8) as i64;
                    let q = (next() % 3) as i64;
                    if bid {
                        (Bid, p, q)
                    } else {
                        (Ask, p + 13, q)
                    }
                })
                .collect();
            let m = Msg {
                pu,
                first,
                last,
                levels,
            };
            pu = last;
            m
        })
        .collect()
}

/// Every snapshot id from before the chain to after it, the messages buffered before the
/// snapshot arrives: where the literal rule syncs, the book syncs to the same levels; where it
/// cannot, the book rejects the snapshot, except for `pu <= L < U` (documented: the book at
/// `pu` is the book at `L`, and the book applies the message exactly).
#[test]
fn the_book_does_what_the_documented_rule_does_for_every_snapshot_id() {
    let msgs = chain(1_000, 40);
    let (lo, hi) = (msgs[0].pu - 2, msgs.last().unwrap().last + 2);
    let (mut synced, mut rejected, mut gap_case) = (0, 0, 0);
    for l in lo..=hi {
        // The snapshot holds every message with u <= L (a message L cuts in two is applied
        // whole by both procedures, so its first part does not matter).
        let mut snap = base();
        for m in msgs.iter().filter(|m| m.last <= l) {
            snap.apply(m);
        }
        let mut book = OrderBook::new(BookConfig::default());
        for m in &msgs {
            assert_eq!(send(&mut book, m), BookUpdate::None, "buffered");
        }
        let got = load(&mut book, &snap.snapshot(l));
        let in_gap = msgs.iter().any(|m| m.pu <= l && l < m.first);
        match literal(&snap, l, &msgs) {
            Some(want) => {
                assert_eq!(got, BookUpdate::Synced, "L={l}");
                assert_eq!(shown(&book), want.levels(), "L={l}");
                synced += 1;
            }
            None if in_gap => {
                assert_eq!(got, BookUpdate::Synced, "L={l} between pu and U");
                let mut want = snap.clone();
                for m in msgs.iter().filter(|m| m.last > l) {
                    want.apply(m);
                }
                assert_eq!(shown(&book), want.levels(), "L={l}");
                gap_case += 1;
            }
            None => {
                assert_eq!(got, BookUpdate::SnapshotRejected, "L={l}");
                assert!(!book.is_synced());
                rejected += 1;
            }
        }
        assert_eq!(book.stats().gaps, 0, "L={l}");
        // And it stays synced on the next message of the chain.
        if book.is_synced() {
            let last = msgs.last().unwrap();
            let more = msg(last.last, last.last + 3, last.last + 5, &[(Bid, 91, 7)]);
            assert_eq!(send(&mut book, &more), BookUpdate::Changed, "L={l}");
            assert_eq!(book.last_update_id(), last.last + 5);
        }
    }
    assert!(
        synced > 40 && rejected > 0 && gap_case > 0,
        "{synced} {rejected} {gap_case}"
    );
}

/// Step 4 and 5 with the edge case `u == lastUpdateId`: step 5 processes that event first; the
/// book drops it (everything in it is in the snapshot) and bridges with the next, whose `pu`
/// is `lastUpdateId`. Ids from Binance's forum (DOGEUSD_PERP, `lastUpdateId` = 129749858329).
#[test]
fn an_event_ending_at_the_snapshot_id_is_dropped_and_the_next_bridges() {
    let l = 129_749_858_329;
    let older = msg(
        129_749_850_000,
        129_749_850_100,
        129_749_853_386,
        &[(Bid, 96, 5)],
    );
    let at = msg(129_749_853_386, 129_749_854_368, l, &[(Ask, 104, 2)]);
    let next = msg(l, 129_749_858_353, 129_749_861_408, &[(Bid, 97, 1)]);
    let after = msg(
        129_749_861_408,
        129_749_861_451,
        129_749_870_463,
        &[(Ask, 104, 0)],
    );
    let msgs = [older.clone(), at.clone(), next.clone(), after.clone()];
    let mut snap = base();
    snap.apply(&older);
    snap.apply(&at);
    let want = literal(&snap, l, &msgs).expect("step 5 processes `at` first");

    let mut book = OrderBook::new(BookConfig::default());
    for m in &msgs[..3] {
        send(&mut book, m);
    }
    assert_eq!(load(&mut book, &snap.snapshot(l)), BookUpdate::Synced);
    assert_eq!(send(&mut book, &after), BookUpdate::Changed);
    assert_eq!(shown(&book), want.levels());
    let s = book.stats();
    assert_eq!((s.gaps, s.snapshots, s.snapshots_rejected), (0, 1, 0));
    assert_eq!(
        s.stale_levels_dropped, 2,
        "`older` and `at`, one level each"
    );
    assert_eq!(book.last_update_id(), 129_749_870_463);
}

/// The snapshot arrives before any event newer than it: the first live event must bridge
/// (`pu <= L < u`); one with `pu > L` is a gap.
#[test]
fn the_first_live_event_bridges_or_is_a_gap() {
    let snap = base().snapshot(500);
    let mut book = OrderBook::new(BookConfig::default());
    assert_eq!(load(&mut book, &snap), BookUpdate::Synced);
    // Older than the snapshot: dropped.
    assert_eq!(
        send(&mut book, &msg(480, 490, 500, &[(Bid, 94, 9)])),
        BookUpdate::None
    );
    assert_eq!(
        send(&mut book, &msg(500, 507, 512, &[(Bid, 94, 9)])),
        BookUpdate::Changed
    );
    assert_eq!(book.best_bid().unwrap().qty, Qty::from_int(2));
    assert_eq!(book.bids().nth(1).unwrap().qty, Qty::from_int(9));

    let mut book = OrderBook::new(BookConfig::default());
    load(&mut book, &snap);
    assert!(matches!(
        send(&mut book, &msg(501, 507, 512, &[])),
        BookUpdate::Gap {
            expected: 501,
            got: 502
        }
    ));
    assert_eq!(book.stats().gaps, 1);
}

/// Step 6: `pu` must be the previous `u`; a lost message (`pu` above it) or an overlapping one
/// (`pu` below it) is a gap, and a fresh snapshot resyncs.
#[test]
fn pu_continuity_while_synced() {
    let mut book = OrderBook::new(BookConfig::default());
    load(&mut book, &base().snapshot(100));
    assert_eq!(
        send(&mut book, &msg(100, 104, 110, &[(Bid, 96, 1)])),
        BookUpdate::Changed
    );
    assert_eq!(
        send(&mut book, &msg(110, 150, 160, &[(Ask, 106, 1)])),
        BookUpdate::Changed
    );
    // A message lost: the next one's pu (170) is not 160.
    assert_eq!(
        send(&mut book, &msg(170, 171, 180, &[(Bid, 97, 1)])),
        BookUpdate::Gap {
            expected: 161,
            got: 171
        }
    );
    assert!(!book.is_synced());
    // Resync: a new snapshot at 175 bridges the buffered message (pu 170 <= 175 < 180).
    assert_eq!(load(&mut book, &base().snapshot(175)), BookUpdate::Synced);
    assert_eq!(book.last_update_id(), 180);
    // Overlap: pu below the last u.
    assert_eq!(
        send(&mut book, &msg(178, 185, 190, &[])),
        BookUpdate::Gap {
            expected: 181,
            got: 179
        }
    );
    assert_eq!(book.stats().gaps, 2);
}

/// A snapshot older than every buffered event (`pu > L` for the first not dropped) cannot be
/// bridged (step 5 fails too): rejected, the buffer kept for the next snapshot.
#[test]
fn a_snapshot_too_old_is_rejected_and_the_next_one_syncs() {
    let msgs = [
        msg(200, 210, 220, &[(Bid, 96, 1)]),
        msg(220, 230, 240, &[(Ask, 104, 1)]),
    ];
    let mut book = OrderBook::new(BookConfig::default());
    for m in &msgs {
        send(&mut book, m);
    }
    assert!(literal(&base(), 150, &msgs).is_none());
    assert_eq!(
        load(&mut book, &base().snapshot(150)),
        BookUpdate::SnapshotRejected
    );
    assert_eq!(load(&mut book, &base().snapshot(225)), BookUpdate::Synced);
    assert_eq!(book.last_update_id(), 240);
    assert_eq!(book.stats().snapshots_rejected, 1);
}

/// A span too large for `u32` saturates: the book sees a gap, never a false bridge.
#[test]
fn a_saturated_span_is_a_gap_not_a_bridge() {
    let mut book = OrderBook::new(BookConfig::default());
    load(&mut book, &base().snapshot(100));
    let far = 100 + u32::MAX as u64 + 10;
    assert!(matches!(
        send(&mut book, &msg(100, far - 1, far, &[])),
        BookUpdate::Gap { expected: 101, .. }
    ));
}
