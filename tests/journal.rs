//! The order journal: round trips of every record kind, recovery of positions and open orders,
//! duplicate fills, client ids across restarts, torn tails at every truncation point, corrupt
//! records, fsync policies, and a writer process killed with SIGKILL while appending.

use engine::event::{ClientOrderId, Fill, OrderAck, OrderCanceled, OrderRequest, OrderType, Side};
use engine::fixed::{Price, Qty};
use engine::portfolio::Position;
use feeds::orders::journal::{
    compact, recover, recover_bytes, FsyncPolicy, JournalError, JournalLock, JournalReader,
    JournalRecord, JournalWriter, Recovered, RecoveredOrder, TailState, HEADER_LEN,
    MAX_NEXT_CLIENT_ID, MAX_PAYLOAD, RECORD_HEADER_LEN,
};
use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A temporary file path, removed on drop.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "tickline-journal-test-{}-{name}.tlj",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const CREATED_NS: u64 = 1_732_000_000_000_000_000;

fn eng(n: u64) -> ClientOrderId {
    ClientOrderId::new(ClientOrderId::NS_ENGINE, n)
}

fn px(s: &str) -> Price {
    Price::parse(s.as_bytes()).unwrap()
}

fn q(s: &str) -> Qty {
    Qty::parse(s.as_bytes()).unwrap()
}

fn req(side: Side, price: &str, qty: &str, order_type: OrderType) -> OrderRequest {
    OrderRequest {
        side,
        price: px(price),
        qty: q(qty),
        order_type,
    }
}

fn intent<'a>(id: ClientOrderId, symbol: &'a str, r: OrderRequest) -> JournalRecord<'a> {
    JournalRecord::Intent {
        client_id: id,
        symbol,
        req: r,
        ts_ns: 1_000 + id.number(),
    }
}

fn fill(
    id: ClientOrderId,
    trade_id: u64,
    price: &str,
    qty: &str,
    fee: i64,
) -> JournalRecord<'static> {
    JournalRecord::Fill {
        client_id: id,
        trade_id,
        price: px(price),
        qty: q(qty),
        fee,
        ts_ns: 2_000 + trade_id,
    }
}

/// Writes `recs` to a fresh journal at `path` and returns the file's bytes.
fn write_journal(path: &Path, policy: FsyncPolicy, recs: &[JournalRecord<'_>]) -> Vec<u8> {
    let _ = std::fs::remove_file(path);
    let mut w = JournalWriter::open_with_created_ns(path, policy, CREATED_NS).unwrap();
    for r in recs {
        w.append(r).unwrap();
    }
    assert_eq!(w.records(), recs.len() as u64);
    drop(w);
    std::fs::read(path).unwrap()
}

/// Byte offsets where each record ends (the header's end first).
fn boundaries(bytes: &[u8]) -> Vec<u64> {
    let mut r = JournalReader::new(bytes).unwrap();
    let mut b = vec![HEADER_LEN as u64];
    while r.next().is_some() {
        b.push(r.offset());
    }
    assert_eq!(r.tail(), Some(TailState::Clean));
    b
}

/// `rec` as if its tail were clean (to compare with a recovery of the intact prefix).
fn with_clean_tail(mut rec: Recovered) -> Recovered {
    rec.tail = TailState::Clean;
    rec
}

/// One record of every kind, with edge values.
fn every_kind() -> Vec<JournalRecord<'static>> {
    static STATE: [u8; 5] = [0, 1, 2, 0xfe, 0xff];
    vec![
        JournalRecord::NextClientId { next: 1 },
        intent(
            eng(1),
            "BTCUSDT",
            req(Side::Buy, "61837.63", "0.015", OrderType::LimitGtc),
        ),
        JournalRecord::Ack {
            client_id: eng(1),
            venue_order_id: u64::MAX,
            ts_ns: 3,
        },
        fill(eng(1), 9_000_000_001, "61837.63", "0.005", -1_234),
        JournalRecord::Canceled {
            client_id: eng(1),
            leaves: q("0.01"),
            ts_ns: 4,
        },
        intent(
            ClientOrderId::probe(3_735_683_259),
            "ÉTHUSDT",
            req(Side::Sell, "0", "0.0001", OrderType::Market),
        ),
        JournalRecord::Rejected {
            client_id: ClientOrderId::probe(3_735_683_259),
            code: -2010,
            ts_ns: u64::MAX,
        },
        JournalRecord::TraderState {
            symbol: "BTCUSDT",
            trader: u32::MAX,
            state: &STATE,
            ts_ns: 5,
        },
        JournalRecord::TraderState {
            symbol: "B",
            trader: 0,
            state: &[],
            ts_ns: 6,
        },
        intent(
            eng(2),
            "BTCUSDT",
            req(Side::Buy, "1", "1", OrderType::LimitIoc),
        ),
        intent(
            eng(3),
            "BTCUSDT",
            req(Side::Sell, "2", "3", OrderType::LimitFok),
        ),
        JournalRecord::Position {
            symbol: "BTCUSDT",
            position: Position {
                qty: -150_000_000,
                avg_price: px("61837.63"),
                // The range recovery accepts (beyond it a position is refused).
                realized: -Position::MONEY_BOUND,
                fees: -7,
                mark: Price::ZERO,
                fills: u64::MAX,
                volume: Position::MONEY_BOUND,
            },
        },
        JournalRecord::OpenOrder {
            client_id: eng(5),
            symbol: "ÉTHUSDT",
            req: req(Side::Sell, "2000.5", "3", OrderType::LimitGtc),
            filled: q("1.5"),
            venue_order_id: Some(u64::MAX),
            acked: true,
            trade_ids: &TRADE_IDS,
            ts_ns: 7,
        },
        JournalRecord::OpenOrder {
            client_id: ClientOrderId::probe(1),
            symbol: "B",
            req: req(Side::Buy, "1", "1", OrderType::LimitIoc),
            filled: Qty::ZERO,
            venue_order_id: None,
            acked: false,
            trade_ids: &[],
            ts_ns: 8,
        },
        // The largest in range (one past the largest 56-bit engine number).
        JournalRecord::NextClientId {
            next: MAX_NEXT_CLIENT_ID,
        },
    ]
}

/// Two trade ids, little-endian (`1` and `u64::MAX`).
static TRADE_IDS: [u8; 16] = [
    1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255,
];

#[test]
fn compaction_keeps_the_state_and_the_history() {
    let tmp = TempPath::new("compact");
    let archive = TempPath::new("compact-archive");
    let (btc, eth) = ("BTCUSDT", "ETHUSDT");
    let mut recs = small_journal();
    // A long history of closed orders the compacted journal folds into positions.
    for n in 100..400u64 {
        let side = if n % 2 == 0 { Side::Buy } else { Side::Sell };
        recs.push(intent(
            eng(n),
            eth,
            req(side, "2000", "0.1", OrderType::LimitIoc),
        ));
        recs.push(fill(
            eng(n),
            n,
            if n % 2 == 0 { "2000" } else { "2001" },
            "0.1",
            2,
        ));
    }
    // Open at the end: a partly filled GTC (two fills), an unacked probe.
    recs.push(intent(
        eng(500),
        btc,
        req(Side::Buy, "100", "2", OrderType::LimitGtc),
    ));
    recs.push(JournalRecord::Ack {
        client_id: eng(500),
        venue_order_id: 55,
        ts_ns: 9,
    });
    recs.push(fill(eng(500), 9_001, "100", "0.5", 1));
    recs.push(fill(eng(500), 9_002, "99", "0.25", 1));
    recs.push(intent(
        ClientOrderId::probe(77),
        btc,
        req(Side::Buy, "90", "0.001", OrderType::LimitIoc),
    ));
    recs.push(JournalRecord::TraderState {
        symbol: btc,
        trader: 1,
        state: b"selling",
        ts_ns: 10,
    });
    let original = write_journal(tmp.path(), FsyncPolicy::Never, &recs);
    let before = recover(tmp.path()).unwrap();
    let _ = std::fs::remove_file(archive.path());
    let c = compact(tmp.path(), Some(archive.path())).unwrap();
    assert_eq!(c.before, original.len() as u64);
    assert!(c.after * 10 < c.before, "{c:?}");
    assert_eq!(
        std::fs::read(archive.path()).unwrap(),
        original,
        "the history is kept"
    );
    let after = recover(tmp.path()).unwrap();
    assert_eq!(after.tail, TailState::Clean);
    assert_eq!(after.next_client_id, before.next_client_id);
    assert_eq!(after.positions, before.positions);
    assert_eq!(after.open_orders, before.open_orders);
    assert_eq!(after.trader_states, before.trader_states);
    // small_journal's tl-1, tl-500 and the probe.
    assert_eq!(after.open_orders.len(), 3);
    let open = |r: &Recovered, id| {
        r.open_orders
            .iter()
            .find(|o| o.client_id == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(open(&after, eng(500)).trade_ids, vec![9_001, 9_002]);

    // Trading goes on on the compacted journal: a fill the venue sends again is still known,
    // a new one applies on top of the compacted position.
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Never).unwrap();
    w.append(&fill(eng(500), 9_002, "99", "0.25", 1)).unwrap();
    w.append(&fill(eng(500), 9_003, "98", "0.25", 1)).unwrap();
    drop(w);
    let later = recover(tmp.path()).unwrap();
    assert_eq!(later.duplicate_fills, 1);
    let mut want = before.positions.iter().find(|p| p.0 == btc).unwrap().1;
    want.apply_fill(Side::Buy, px("98"), q("0.25"), 1);
    assert_eq!(later.positions.iter().find(|p| p.0 == btc).unwrap().1, want);
    assert_eq!(open(&later, eng(500)).filled, q("1"));

    // Compacting again changes nothing but the size.
    let again = compact(tmp.path(), None).unwrap();
    assert_eq!(again.archived, None);
    let twice = recover(tmp.path()).unwrap();
    assert_eq!(twice.positions, later.positions);
    assert_eq!(twice.open_orders, later.open_orders);
    assert_eq!(twice.next_client_id, later.next_client_id);
    let _ = std::fs::remove_file(archive.path());
}

#[test]
fn every_record_kind_round_trips() {
    let tmp = TempPath::new("round-trip");
    let recs = every_kind();
    let bytes = write_journal(tmp.path(), FsyncPolicy::Never, &recs);
    let mut r = JournalReader::new(&bytes).unwrap();
    assert_eq!(r.header().map(|h| h.created_ns), Some(CREATED_NS));
    let got: Vec<_> = r.by_ref().collect();
    assert_eq!(r.tail(), Some(TailState::Clean));
    assert_eq!(r.offset(), bytes.len() as u64);
    assert_eq!(got.len(), recs.len());
    for (g, want) in got.iter().zip(&recs) {
        assert_eq!(&g.record, want);
    }
    assert_eq!(got[0].offset, HEADER_LEN as u64);
    assert_eq!(got[1].offset, (HEADER_LEN + RECORD_HEADER_LEN + 8) as u64);
    assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));

    // The conversions from engine events journal the same fields.
    let f = Fill {
        client_id: eng(4),
        trade_id: 77,
        price: px("10.5"),
        qty: q("2"),
        fee: 3,
    };
    assert_eq!(
        JournalRecord::fill(&f, 8),
        JournalRecord::Fill {
            client_id: eng(4),
            trade_id: 77,
            price: px("10.5"),
            qty: q("2"),
            fee: 3,
            ts_ns: 8
        }
    );
    let a = OrderAck {
        client_id: eng(4),
        venue_order_id: 5,
    };
    let c = OrderCanceled {
        client_id: eng(4),
        leaves_qty: q("1"),
    };
    let extra = [JournalRecord::ack(&a, 9), JournalRecord::canceled(&c, 10)];

    // Reopening appends after what is there; the file reads back whole.
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Always).unwrap();
    assert_eq!(w.records(), recs.len() as u64);
    assert_eq!(w.len(), bytes.len() as u64);
    assert_eq!(w.truncated(), None);
    for e in &extra {
        w.append(e).unwrap();
    }
    drop(w);
    let bytes = std::fs::read(tmp.path()).unwrap();
    let all: Vec<_> = JournalReader::new(&bytes)
        .unwrap()
        .map(|e| e.record)
        .collect();
    let want: Vec<_> = recs.iter().chain(&extra).copied().collect();
    assert_eq!(all, want);
    assert_eq!(
        JournalReader::new(&bytes)
            .unwrap()
            .header()
            .unwrap()
            .created_ns,
        CREATED_NS,
        "reopening keeps the header"
    );
}

#[test]
fn recovery_rebuilds_positions_and_open_orders() {
    let tmp = TempPath::new("positions");
    let (btc, eth) = ("BTCUSDT", "ETHUSDT");
    let probe = ClientOrderId::probe(123);
    let recs = vec![
        // tl-1: filled in two parts, closed.
        intent(eng(1), btc, req(Side::Buy, "100", "1", OrderType::LimitGtc)),
        JournalRecord::Ack {
            client_id: eng(1),
            venue_order_id: 11,
            ts_ns: 1,
        },
        fill(eng(1), 1, "100", "0.4", 4),
        fill(eng(1), 2, "99.5", "0.6", 6),
        // tl-2: partly filled with a maker rebate, open.
        intent(
            eng(2),
            btc,
            req(Side::Sell, "110", "2", OrderType::LimitGtc),
        ),
        JournalRecord::Ack {
            client_id: eng(2),
            venue_order_id: 12,
            ts_ns: 2,
        },
        fill(eng(2), 3, "110", "0.5", -1),
        // tl-3: IOC, partly filled then canceled.
        intent(
            eng(3),
            btc,
            req(Side::Buy, "90", "0.3", OrderType::LimitIoc),
        ),
        JournalRecord::Ack {
            client_id: eng(3),
            venue_order_id: 13,
            ts_ns: 3,
        },
        fill(eng(3), 4, "90", "0.1", 0),
        JournalRecord::Canceled {
            client_id: eng(3),
            leaves: q("0.2"),
            ts_ns: 4,
        },
        // tl-4: rejected.
        intent(eng(4), btc, req(Side::Buy, "80", "1", OrderType::LimitGtc)),
        JournalRecord::Rejected {
            client_id: eng(4),
            code: -2010,
            ts_ns: 5,
        },
        // tl-5: in flight, never acked: open.
        intent(eng(5), eth, req(Side::Sell, "0", "0.7", OrderType::Market)),
        // tl-6: trade id 1 again, on another order: a distinct fill. Partly filled, open.
        intent(
            eng(6),
            eth,
            req(Side::Buy, "2500.12345678", "3", OrderType::LimitGtc),
        ),
        JournalRecord::Ack {
            client_id: eng(6),
            venue_order_id: 14,
            ts_ns: 6,
        },
        fill(eng(6), 1, "2500.12345678", "1.5", 375),
        // tl-7: fills through zero (long 1.5 -> short 3.5); filled without an ack: closed.
        intent(
            eng(7),
            eth,
            req(Side::Sell, "2600", "5", OrderType::LimitGtc),
        ),
        fill(eng(7), 9, "2600", "5", 1_300),
        // A probe order, canceled without fills.
        intent(
            probe,
            btc,
            req(Side::Buy, "50", "0.0001", OrderType::LimitIoc),
        ),
        JournalRecord::Canceled {
            client_id: probe,
            leaves: q("0.0001"),
            ts_ns: 7,
        },
        // Trader state: the latest per (symbol, trader) wins.
        JournalRecord::TraderState {
            symbol: btc,
            trader: 0,
            state: b"first",
            ts_ns: 8,
        },
        JournalRecord::TraderState {
            symbol: eth,
            trader: 3,
            state: &[0, 1, 2],
            ts_ns: 9,
        },
        JournalRecord::TraderState {
            symbol: btc,
            trader: 0,
            state: b"second",
            ts_ns: 10,
        },
    ];
    write_journal(tmp.path(), FsyncPolicy::Always, &recs);
    let rec = recover(tmp.path()).unwrap();

    // Positions: exactly what applying each fill once gives.
    let mut pb = Position::default();
    pb.apply_fill(Side::Buy, px("100"), q("0.4"), 4);
    pb.apply_fill(Side::Buy, px("99.5"), q("0.6"), 6);
    pb.apply_fill(Side::Sell, px("110"), q("0.5"), -1);
    pb.apply_fill(Side::Buy, px("90"), q("0.1"), 0);
    let mut pe = Position::default();
    pe.apply_fill(Side::Buy, px("2500.12345678"), q("1.5"), 375);
    pe.apply_fill(Side::Sell, px("2600"), q("5"), 1_300);
    assert_eq!(
        rec.positions,
        vec![("BTCUSDT".to_string(), pb), ("ETHUSDT".to_string(), pe)]
    );
    // And those are the figures worked out by hand, in 1e-8 units.
    assert_eq!(pb.qty, 60_000_000);
    assert_eq!(pb.realized, 515_000_000); // (110 - 99.7) x 0.5
    assert_eq!(pb.avg_price, Price(9_808_333_333)); // (99.7 x 0.5 + 90 x 0.1) / 0.6, truncated
    assert_eq!(pb.fees, 9);
    assert_eq!(pb.fills, 4);
    assert_eq!(pe.qty, -350_000_000);
    assert_eq!(pe.avg_price, px("2600"));
    assert_eq!(pe.realized, 14_981_481_483); // (2600 - 2500.12345678) x 1.5

    assert_eq!(rec.fills, 6);
    assert_eq!(rec.duplicate_fills, 0);
    assert_eq!(rec.next_client_id, 8);
    assert_eq!(rec.tail, TailState::Clean);
    assert_eq!(rec.records, recs.len());
    assert_eq!(rec.unknown_order_events, 0);
    assert_eq!(
        rec.open_orders,
        vec![
            RecoveredOrder {
                client_id: eng(2),
                symbol: btc.into(),
                req: req(Side::Sell, "110", "2", OrderType::LimitGtc),
                filled: q("0.5"),
                venue_order_id: Some(12),
                acked: true,
                trade_ids: vec![3],
                ts_ns: 1_002,
            },
            RecoveredOrder {
                client_id: eng(5),
                symbol: eth.into(),
                req: req(Side::Sell, "0", "0.7", OrderType::Market),
                filled: Qty::ZERO,
                venue_order_id: None,
                acked: false,
                trade_ids: vec![],
                ts_ns: 1_005,
            },
            RecoveredOrder {
                client_id: eng(6),
                symbol: eth.into(),
                req: req(Side::Buy, "2500.12345678", "3", OrderType::LimitGtc),
                filled: q("1.5"),
                venue_order_id: Some(14),
                acked: true,
                trade_ids: vec![1],
                ts_ns: 1_006,
            },
        ]
    );
    assert_eq!(rec.open_orders[0].leaves(), q("1.5"));
    assert_eq!(
        rec.trader_states,
        vec![
            ("BTCUSDT".to_string(), 0, b"second".to_vec()),
            ("ETHUSDT".to_string(), 3, vec![0, 1, 2]),
        ]
    );

    // A fill that crosses the cancel on the wire is still applied (it happened).
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Never).unwrap();
    w.append(&fill(eng(3), 5, "90", "0.2", 0)).unwrap();
    drop(w);
    let rec2 = recover(tmp.path()).unwrap();
    pb.apply_fill(Side::Buy, px("90"), q("0.2"), 0);
    assert_eq!(rec2.positions[0], ("BTCUSDT".to_string(), pb));
    assert_eq!(rec2.open_orders, rec.open_orders);
}

#[test]
fn duplicate_fills_are_applied_once() {
    let tmp = TempPath::new("dups");
    let recs = vec![
        intent(
            eng(1),
            "BTCUSDT",
            req(Side::Buy, "100", "2", OrderType::LimitGtc),
        ),
        intent(
            eng(2),
            "BTCUSDT",
            req(Side::Sell, "100", "1", OrderType::LimitGtc),
        ),
        fill(eng(1), 5, "100", "1", 10),
        fill(eng(1), 5, "100", "1", 10), // re-sent by the venue
        // Our two orders on the two sides of one venue trade: same trade id, both real.
        fill(eng(2), 5, "100", "1", 10),
    ];
    write_journal(tmp.path(), FsyncPolicy::EveryN(2), &recs);
    // Re-sent again after a restart (reconnect): still a duplicate.
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::EveryN(2)).unwrap();
    w.append(&fill(eng(1), 5, "100", "1", 10)).unwrap();
    drop(w);

    let rec = recover(tmp.path()).unwrap();
    assert_eq!(rec.fills, 2);
    assert_eq!(rec.duplicate_fills, 2);
    let mut p = Position::default();
    p.apply_fill(Side::Buy, px("100"), q("1"), 10);
    p.apply_fill(Side::Sell, px("100"), q("1"), 10);
    assert_eq!(rec.positions, vec![("BTCUSDT".to_string(), p)]);
    assert_eq!(p.qty, 0);
    assert_eq!(p.fills, 2);
    // tl-1 is half filled (a double count would have closed it); tl-2 is done.
    assert_eq!(rec.open_orders.len(), 1);
    assert_eq!(rec.open_orders[0].client_id, eng(1));
    assert_eq!(rec.open_orders[0].filled, q("1"));
}

#[test]
fn next_client_id_never_repeats_across_restarts() {
    let tmp = TempPath::new("ids");
    // Engine numbers whose intent was completely written (so the order may have been sent), or
    // that were used under a durable reservation.
    let mut used: BTreeSet<u64> = BTreeSet::new();
    let mut expected_next = 1u64;
    for restart in 0..12u64 {
        let next = if tmp.path().exists() {
            let rec = recover(tmp.path()).unwrap();
            assert!(!matches!(rec.tail, TailState::Corrupt { .. }));
            rec.next_client_id
        } else {
            1
        };
        assert_eq!(next, expected_next, "restart {restart}");
        if let Some(&max) = used.iter().next_back() {
            assert!(
                next > max,
                "restart {restart}: {next} would reuse up to {max}"
            );
        }
        let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Always).unwrap();
        let mut n = next;
        let sym = "BTCUSDT";
        let r = req(Side::Buy, "1", "1", OrderType::LimitGtc);
        match restart % 4 {
            0 => {
                for _ in 0..3 {
                    w.append(&intent(eng(n), sym, r)).unwrap();
                    assert!(used.insert(n));
                    n += 1;
                }
                expected_next = n;
            }
            1 => {
                // Reserve a block durably, then number orders from it without journaling their
                // intents (what a power cut under a lazy policy can lose).
                w.append(&JournalRecord::NextClientId { next: n + 100 })
                    .unwrap();
                w.sync().unwrap();
                for k in 0..5 {
                    assert!(used.insert(n + k));
                }
                expected_next = n + 100;
            }
            2 => {
                // Probe ids carry trade ids, not sequence numbers: they do not move the counter.
                w.append(&intent(ClientOrderId::probe(1 << 40), sym, r))
                    .unwrap();
                w.append(&intent(eng(n), sym, r)).unwrap();
                assert!(used.insert(n));
                expected_next = n + 1;
            }
            _ => {
                // Killed while writing the next intent: the torn record never completed, so that
                // order was never sent and its number is free.
                w.append(&intent(eng(n), sym, r)).unwrap();
                assert!(used.insert(n));
                w.append(&intent(eng(n + 1), sym, r)).unwrap();
                let len = w.len();
                drop(w);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(tmp.path())
                    .unwrap();
                f.set_len(len - 5).unwrap();
                expected_next = n + 1;
            }
        }
    }
    assert!(used.len() > 20);
}

/// A small journal with every kind of record.
fn small_journal() -> Vec<JournalRecord<'static>> {
    vec![
        intent(
            eng(1),
            "BTCUSDT",
            req(Side::Buy, "100", "1", OrderType::LimitGtc),
        ),
        JournalRecord::Ack {
            client_id: eng(1),
            venue_order_id: 7,
            ts_ns: 1,
        },
        fill(eng(1), 1, "100", "0.25", 3),
        JournalRecord::TraderState {
            symbol: "BTCUSDT",
            trader: 2,
            state: b"buying",
            ts_ns: 2,
        },
        intent(
            eng(2),
            "ETHUSDT",
            req(Side::Sell, "2000", "2", OrderType::LimitGtc),
        ),
        JournalRecord::Canceled {
            client_id: eng(2),
            leaves: q("2"),
            ts_ns: 3,
        },
        intent(
            eng(3),
            "ETHUSDT",
            req(Side::Buy, "1900", "1", OrderType::LimitIoc),
        ),
        JournalRecord::Rejected {
            client_id: eng(3),
            code: -1013,
            ts_ns: 4,
        },
        JournalRecord::NextClientId { next: 10 },
    ]
}

#[test]
fn torn_tail_at_every_truncation_point() {
    let tmp = TempPath::new("torn");
    let recs = small_journal();
    let full = write_journal(tmp.path(), FsyncPolicy::Never, &recs);
    let ends = boundaries(&full);
    assert_eq!(ends.len(), recs.len() + 1);
    // The state after the first k records, for every k.
    let reference: Vec<Recovered> = ends
        .iter()
        .map(|&e| recover_bytes(&full[..e as usize]).unwrap())
        .collect();
    assert!(reference.iter().all(|r| r.tail == TailState::Clean));
    assert_eq!(reference.last().unwrap().records, recs.len());

    let mut torn_seen = 0;
    for cut in 0..=full.len() {
        let prefix = &full[..cut];
        std::fs::write(tmp.path(), prefix).unwrap();
        let rec = recover(tmp.path()).unwrap();
        // Records wholly inside the prefix.
        let k = ends.iter().skip(1).filter(|&&e| e <= cut as u64).count();
        let want_tail = if cut < HEADER_LEN {
            TailState::Torn {
                offset: 0,
                bytes: cut as u64,
            }
        } else if ends.contains(&(cut as u64)) {
            TailState::Clean
        } else {
            TailState::Torn {
                offset: ends[k],
                bytes: cut as u64 - ends[k],
            }
        };
        assert_eq!(rec.tail, want_tail, "cut at {cut}");
        assert_eq!(with_clean_tail(rec.clone()).records, k, "cut at {cut}");
        if cut >= HEADER_LEN {
            assert_eq!(
                with_clean_tail(rec.clone()),
                reference[k],
                "cut at {cut}: everything before the torn record is recovered"
            );
        } else {
            assert_eq!(rec.records, 0);
            assert_eq!(rec.valid_len, 0);
        }
        if matches!(want_tail, TailState::Torn { .. }) {
            torn_seen += 1;
        }

        // Reopening truncates exactly the torn tail; appending the rest restores the journal
        // byte for byte.
        let mut w = JournalWriter::open_with_created_ns(tmp.path(), FsyncPolicy::Never, CREATED_NS)
            .unwrap();
        let want_cut = match want_tail {
            TailState::Torn { .. } if cut > 0 => Some(want_tail),
            _ => None,
        };
        assert_eq!(w.truncated(), want_cut, "cut at {cut}");
        assert_eq!(w.len(), ends[k], "cut at {cut}");
        for r in &recs[k..] {
            w.append(r).unwrap();
        }
        drop(w);
        assert!(std::fs::read(tmp.path()).unwrap() == full, "cut at {cut}");
    }
    assert_eq!(torn_seen, full.len() + 1 - ends.len());
}

#[test]
fn flipped_byte_is_corrupt_and_refused() {
    let tmp = TempPath::new("corrupt");
    let recs = small_journal();
    let full = write_journal(tmp.path(), FsyncPolicy::Never, &recs);
    let ends = boundaries(&full);
    let reference: Vec<Recovered> = ends
        .iter()
        .map(|&e| recover_bytes(&full[..e as usize]).unwrap())
        .collect();

    // Every byte of a record in the middle, and of the last record, with several masks.
    for idx in [recs.len() / 2, recs.len() - 1] {
        let (start, end) = (ends[idx], ends[idx + 1]);
        for at in start..end {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = full.clone();
                b[at as usize] ^= mask;
                let rec = recover_bytes(&b).unwrap();
                assert_eq!(
                    rec.tail,
                    TailState::Corrupt { offset: start },
                    "byte {at} ^ {mask:#x}"
                );
                let mut clean = rec;
                clean.tail = TailState::Clean;
                assert_eq!(clean, reference[idx], "byte {at} ^ {mask:#x}");
            }
        }
    }

    // The writer refuses it with a clear error and leaves the file as it was.
    let mid = ends[recs.len() / 2];
    let mut b = full.clone();
    b[mid as usize + RECORD_HEADER_LEN + 2] ^= 0x04;
    std::fs::write(tmp.path(), &b).unwrap();
    let rec = recover(tmp.path()).unwrap();
    assert_eq!(rec.tail, TailState::Corrupt { offset: mid });
    let err = JournalWriter::open(tmp.path(), FsyncPolicy::Always).unwrap_err();
    assert!(
        matches!(err, JournalError::CorruptRecord { offset } if offset == mid),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("byte offset {mid}")), "{msg}");
    assert!(msg.contains("refusing to append"), "{msg}");
    assert_eq!(std::fs::read(tmp.path()).unwrap(), b);

    // The header: foreign, other version or damaged, all refused and untouched.
    for at in 0..HEADER_LEN {
        let mut b = full.clone();
        b[at] ^= 0x01;
        let err = recover_bytes(&b).unwrap_err();
        match at {
            0..=7 => assert!(matches!(err, JournalError::BadMagic), "{at}: {err}"),
            8..=9 => assert!(
                matches!(err, JournalError::UnsupportedVersion(_)),
                "{at}: {err}"
            ),
            _ => assert!(matches!(err, JournalError::CorruptHeader), "{at}: {err}"),
        }
        std::fs::write(tmp.path(), &b).unwrap();
        assert!(JournalWriter::open(tmp.path(), FsyncPolicy::Never).is_err());
        assert_eq!(std::fs::read(tmp.path()).unwrap(), b);
    }
    std::fs::write(tmp.path(), b"1723161253937085768 {\"e\":\"trade\"}\n").unwrap();
    assert!(matches!(
        JournalWriter::open(tmp.path(), FsyncPolicy::Never),
        Err(JournalError::BadMagic)
    ));
    assert!(matches!(
        recover(tmp.path().with_extension("missing")),
        Err(JournalError::Io(e)) if e.kind() == io::ErrorKind::NotFound
    ));
}

#[test]
fn bad_input_is_refused_and_nothing_written() {
    let tmp = TempPath::new("input");
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Always).unwrap();
    let long = "S".repeat(256);
    let big = vec![7u8; MAX_PAYLOAD];
    for bad in [
        intent(eng(1), "", req(Side::Buy, "1", "1", OrderType::LimitGtc)),
        intent(eng(1), &long, req(Side::Buy, "1", "1", OrderType::LimitGtc)),
        JournalRecord::TraderState {
            symbol: "BTCUSDT",
            trader: 1,
            state: &big,
            ts_ns: 0,
        },
    ] {
        let e = w.append(&bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
    assert_eq!(w.len(), HEADER_LEN as u64);
    assert!(w.is_empty());
    w.append(&JournalRecord::NextClientId { next: 3 }).unwrap();
    drop(w);
    let rec = recover(tmp.path()).unwrap();
    assert_eq!((rec.records, rec.next_client_id), (1, 3));
    assert_eq!(rec.tail, TailState::Clean);
}

#[test]
fn fsync_policies_produce_identical_files() {
    let tmp = TempPath::new("policies");
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut recs = Vec::new();
    for i in 1..=40u64 {
        recs.push(intent(
            eng(i),
            "BTCUSDT",
            req(Side::Buy, "100", "1", OrderType::LimitGtc),
        ));
        recs.push(fill(eng(i), i, "100", "0.5", 1));
        if i % 10 == 0 {
            recs.push(JournalRecord::TraderState {
                symbol: "BTCUSDT",
                trader: i as u32,
                state: &big[..(i as usize) * 2_000],
                ts_ns: i,
            });
        }
    }
    let policies = [
        FsyncPolicy::Always,
        FsyncPolicy::EveryN(0),
        FsyncPolicy::EveryN(1),
        FsyncPolicy::EveryN(7),
        FsyncPolicy::Interval(Duration::ZERO),
        FsyncPolicy::Interval(Duration::from_millis(1)),
        FsyncPolicy::Interval(Duration::from_secs(3600)),
        FsyncPolicy::Never,
    ];
    let reference = write_journal(tmp.path(), FsyncPolicy::Never, &recs);
    for policy in policies {
        // In one go.
        let bytes = write_journal(tmp.path(), policy, &recs);
        assert!(bytes == reference, "{policy:?}");
        // In two sessions, the second under another policy, with explicit syncs.
        let _ = std::fs::remove_file(tmp.path());
        let (a, b) = recs.split_at(recs.len() / 3);
        let mut w = JournalWriter::open_with_created_ns(tmp.path(), policy, CREATED_NS).unwrap();
        for r in a {
            w.append(r).unwrap();
        }
        match policy {
            FsyncPolicy::Always | FsyncPolicy::EveryN(0) | FsyncPolicy::EveryN(1) => {
                assert_eq!(w.unsynced(), 0)
            }
            FsyncPolicy::EveryN(n) => assert_eq!(w.unsynced(), a.len() as u32 % n),
            FsyncPolicy::Interval(d) if d.is_zero() => assert_eq!(w.unsynced(), 0),
            FsyncPolicy::Interval(d) => {
                let pending = w.unsynced() > 0;
                std::thread::sleep(Duration::from_millis(2));
                let synced = w.sync_if_due().unwrap();
                assert_eq!(
                    synced,
                    pending && d < Duration::from_millis(2),
                    "{policy:?}"
                );
                assert_eq!(w.unsynced() == 0, !pending || synced);
            }
            FsyncPolicy::Never => {
                assert_eq!(w.unsynced(), a.len() as u32);
                assert!(!w.sync_if_due().unwrap());
                w.sync().unwrap();
                assert_eq!(w.unsynced(), 0);
            }
        }
        drop(w);
        let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::EveryN(3)).unwrap();
        for r in b {
            w.append(r).unwrap();
        }
        w.sync().unwrap();
        drop(w);
        assert!(
            std::fs::read(tmp.path()).unwrap() == reference,
            "{policy:?}"
        );
    }
    // Files created at different times differ only in the header's creation time.
    let _ = std::fs::remove_file(tmp.path());
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Always).unwrap();
    for r in &recs {
        w.append(r).unwrap();
    }
    drop(w);
    let bytes = std::fs::read(tmp.path()).unwrap();
    assert!(bytes[HEADER_LEN..] == reference[HEADER_LEN..]);
    assert_eq!(
        recover(tmp.path()).unwrap(),
        recover_bytes(&reference).unwrap()
    );
}

// ---------------------------------------------------------------------------------------------
// A writer process killed with SIGKILL
// ---------------------------------------------------------------------------------------------

const CHILD_PATH_ENV: &str = "TICKLINE_JOURNAL_CHILD_PATH";
const CHILD_POLICY_ENV: &str = "TICKLINE_JOURNAL_CHILD_POLICY";
const CHILD_SEED_ENV: &str = "TICKLINE_JOURNAL_CHILD_SEED";
const CHILD_BURST_ENV: &str = "TICKLINE_JOURNAL_CHILD_BURST";
/// The child stops appending after this many records, or this many 1 MiB records (and waits to
/// be killed), so a parent that died cannot leave it filling the disk.
const CHILD_MAX_RECORDS: u64 = 4_000;
const CHILD_MAX_BURST: u64 = 64;

/// An owned journal record, for the generated sequence.
#[derive(Clone, Debug)]
enum Owned {
    Intent(ClientOrderId, String, OrderRequest, u64),
    Ack(ClientOrderId, u64, u64),
    Fill(ClientOrderId, u64, Price, Qty, i64, u64),
    Canceled(ClientOrderId, Qty, u64),
    Rejected(ClientOrderId, i64, u64),
    TraderState(String, u32, Vec<u8>, u64),
    NextClientId(u64),
}

impl Owned {
    fn as_record(&self) -> JournalRecord<'_> {
        match self {
            Owned::Intent(id, sym, req, ts) => JournalRecord::Intent {
                client_id: *id,
                symbol: sym,
                req: *req,
                ts_ns: *ts,
            },
            Owned::Ack(id, v, ts) => JournalRecord::Ack {
                client_id: *id,
                venue_order_id: *v,
                ts_ns: *ts,
            },
            Owned::Fill(id, t, p, qty, fee, ts) => JournalRecord::Fill {
                client_id: *id,
                trade_id: *t,
                price: *p,
                qty: *qty,
                fee: *fee,
                ts_ns: *ts,
            },
            Owned::Canceled(id, leaves, ts) => JournalRecord::Canceled {
                client_id: *id,
                leaves: *leaves,
                ts_ns: *ts,
            },
            Owned::Rejected(id, code, ts) => JournalRecord::Rejected {
                client_id: *id,
                code: *code,
                ts_ns: *ts,
            },
            Owned::TraderState(sym, trader, state, ts) => JournalRecord::TraderState {
                symbol: sym,
                trader: *trader,
                state,
                ts_ns: *ts,
            },
            Owned::NextClientId(next) => JournalRecord::NextClientId { next: *next },
        }
    }
}

/// A deterministic stream of plausible order flow, with duplicate fills and trader states of up
/// to 232 KiB; from record `burst_from` on, only trader states of about [`MAX_PAYLOAD`], so the
/// writer spends most of its time inside one long `write` and a kill often tears it.
struct FlowGen {
    rng: u64,
    made: u64,
    burst_from: u64,
    next_id: u64,
    trade_id: u64,
    ts: u64,
    /// Open orders: id, quantity left.
    open: Vec<(ClientOrderId, i64)>,
    last_fill: Option<Owned>,
    blob: Vec<u8>,
}

impl FlowGen {
    fn new(seed: u64, burst_from: u64) -> Self {
        FlowGen {
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            made: 0,
            burst_from,
            next_id: 1,
            trade_id: 0,
            ts: 1_700_000_000_000_000_000,
            open: Vec::new(),
            last_fill: None,
            blob: (0..MAX_PAYLOAD as u32).map(|i| (i % 253) as u8).collect(),
        }
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rand() % n
    }

    fn pick_open(&mut self) -> usize {
        self.below(self.open.len() as u64) as usize
    }

    fn next_record(&mut self) -> Owned {
        self.ts += 1_000 + self.below(1_000_000);
        let ts = self.ts;
        self.made += 1;
        if self.made > self.burst_from {
            let len = MAX_PAYLOAD - 16 - 7 - self.below(4096) as usize;
            let mut state = self.blob[..len].to_vec();
            state[..8].copy_from_slice(&ts.to_le_bytes());
            return Owned::TraderState("BTCUSDT".to_string(), 9, state, ts);
        }
        loop {
            let roll = self.below(100);
            let has_open = !self.open.is_empty();
            match roll {
                0..=24 => {
                    let sym = ["BTCUSDT", "ETHUSDT", "SOLUSDT"][self.below(3) as usize];
                    let id = if self.below(10) == 0 {
                        ClientOrderId::probe(self.rand() >> 20)
                    } else {
                        self.next_id += 1;
                        ClientOrderId::new(ClientOrderId::NS_ENGINE, self.next_id - 1)
                    };
                    let qty = (1 + self.below(100) as i64) * 1_000_000;
                    let req = OrderRequest {
                        side: if self.below(2) == 0 {
                            Side::Buy
                        } else {
                            Side::Sell
                        },
                        price: Price(1_000_000_000 + self.below(1_000_000_000) as i64),
                        qty: Qty(qty),
                        order_type: [
                            OrderType::LimitGtc,
                            OrderType::LimitIoc,
                            OrderType::LimitFok,
                            OrderType::Market,
                        ][self.below(4) as usize],
                    };
                    self.open.push((id, qty));
                    return Owned::Intent(id, sym.to_string(), req, ts);
                }
                25..=39 if has_open => {
                    let i = self.pick_open();
                    return Owned::Ack(self.open[i].0, self.rand() >> 8, ts);
                }
                40..=69 if has_open => {
                    if self.below(8) == 0 {
                        if let Some(dup) = self.last_fill.clone() {
                            return dup;
                        }
                    }
                    let i = self.pick_open();
                    let (id, left) = self.open[i];
                    let qty = 1 + self.below(left as u64) as i64;
                    if qty == left {
                        self.open.swap_remove(i);
                    } else {
                        self.open[i].1 -= qty;
                    }
                    self.trade_id += 1;
                    let f = Owned::Fill(
                        id,
                        self.trade_id,
                        Price(1_000_000_000 + self.below(1_000_000_000) as i64),
                        Qty(qty),
                        self.below(20_000) as i64 - 5_000,
                        ts,
                    );
                    self.last_fill = Some(f.clone());
                    return f;
                }
                70..=79 if has_open => {
                    let i = self.pick_open();
                    let (id, left) = self.open.swap_remove(i);
                    return Owned::Canceled(id, Qty(left), ts);
                }
                80..=83 if has_open => {
                    let i = self.pick_open();
                    let (id, _) = self.open.swap_remove(i);
                    return Owned::Rejected(id, -2010, ts);
                }
                84..=97 => {
                    let len = if self.below(3) == 0 {
                        32 * 1024 + self.below(200 * 1024) as usize
                    } else {
                        self.below(64) as usize
                    };
                    let start = self.below(16) as usize;
                    let mut state = self.blob[start..start + len].to_vec();
                    if len >= 8 {
                        state[..8].copy_from_slice(&ts.to_le_bytes());
                    }
                    let sym = ["BTCUSDT", "ETHUSDT"][self.below(2) as usize];
                    return Owned::TraderState(sym.to_string(), self.below(4) as u32, state, ts);
                }
                98..=99 => {
                    self.next_id += 10;
                    return Owned::NextClientId(self.next_id);
                }
                _ => continue,
            }
        }
    }
}

/// Not a test on its own: the writer process of [`sigkill_while_appending_recovers`]. Without
/// its environment it returns at once.
#[test]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_PATH_ENV) else {
        return;
    };
    let policy = match std::env::var(CHILD_POLICY_ENV).as_deref() {
        Ok("always") => FsyncPolicy::Always,
        Ok("every") => FsyncPolicy::EveryN(8),
        Ok("interval") => FsyncPolicy::Interval(Duration::from_millis(1)),
        _ => FsyncPolicy::Never,
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV).unwrap().parse().unwrap();
    let burst_from: u64 = std::env::var(CHILD_BURST_ENV).unwrap().parse().unwrap();
    let mut w = JournalWriter::open(&path, policy).unwrap();
    let mut g = FlowGen::new(seed, burst_from);
    let mut out = io::stdout().lock();
    let start = Instant::now();
    let max = CHILD_MAX_RECORDS.min(burst_from.saturating_add(CHILD_MAX_BURST));
    let mut rec = g.next_record();
    for i in 1..=max {
        w.append(&rec.as_record()).unwrap();
        rec = g.next_record();
        // Reported only once append returned: every reported record must be recovered.
        writeln!(out, "appended {i} {}", w.len()).unwrap();
        out.flush().unwrap();
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    // Wait to be killed (bounded, in case the parent is gone).
    std::thread::sleep(Duration::from_secs(30));
}

/// `(records appended, file length)` from a child's report line.
fn parse_appended(line: &str) -> Option<(u64, u64)> {
    let at = line.rfind("appended ")?;
    let (n, len) = line[at + "appended ".len()..].trim().split_once(' ')?;
    Some((n.parse().ok()?, len.parse().ok()?))
}

/// The journal of the first `n` generated records, recovered.
fn reference_recovery(seed: u64, burst_from: u64, n: usize, path: &Path) -> (Recovered, Vec<u8>) {
    let mut g = FlowGen::new(seed, burst_from);
    let owned: Vec<Owned> = (0..n).map(|_| g.next_record()).collect();
    let recs: Vec<JournalRecord<'_>> = owned.iter().map(Owned::as_record).collect();
    let bytes = write_journal(path, FsyncPolicy::Never, &recs);
    (recover_bytes(&bytes).unwrap(), bytes)
}

#[test]
fn sigkill_while_appending_recovers() {
    use std::os::unix::process::ExitStatusExt;

    let started = Instant::now();
    let exe = std::env::current_exe().unwrap();
    // (policy, records reported before the kill, then 1 MiB records and a kill mid-write?)
    let plans = [
        ("always", 40u64, true),
        ("never", 200, true),
        ("every", 300, true),
        ("interval", 120, false),
        ("never", 600, false),
    ];
    let mut torn = 0;
    for (round, &(policy, kill_after, burst)) in plans.iter().enumerate() {
        let burst_from = if burst { kill_after } else { u64::MAX };
        let tmp = TempPath::new(&format!("kill-{round}"));
        let ref_path = TempPath::new(&format!("kill-ref-{round}"));
        let seed = 7_000 + round as u64;
        let mut child = Command::new(&exe)
            .args(["child_writer", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_PATH_ENV, tmp.path())
            .env(CHILD_POLICY_ENV, policy)
            .env(CHILD_SEED_ENV, seed.to_string())
            .env(CHILD_BURST_ENV, burst_from.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = parse_appended(&line) {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut reported, mut reported_len) = (0, 0);
        while reported < kill_after {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok((n, len)) => (reported, reported_len) = (n, len),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("round {round}: child stalled or exited after {reported} records: {e}");
                }
            }
        }
        if burst {
            // Kill as soon as the file grows: the page cache takes a long write page by page,
            // so this usually lands inside the `write` of a 1 MiB record.
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                match std::fs::metadata(tmp.path()) {
                    Ok(m) if m.len() > reported_len => break,
                    _ => std::hint::spin_loop(),
                }
            }
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: {status:?}");
        reader.join().unwrap();
        while let Ok((n, _)) = rx.try_recv() {
            reported = n;
        }

        let file_len = std::fs::metadata(tmp.path()).unwrap().len();
        let rec = recover(tmp.path()).unwrap();
        // Every record the child saw appended is there, plus at most the one it was writing.
        let n = rec.records as u64;
        assert!(
            n == reported || n == reported + 1,
            "round {round}: {n} records recovered, {reported} reported"
        );
        match rec.tail {
            TailState::Clean => assert_eq!(rec.valid_len, file_len),
            TailState::Torn { offset, bytes } => {
                torn += 1;
                assert_eq!(offset, rec.valid_len);
                assert_eq!(offset + bytes, file_len);
            }
            TailState::Corrupt { offset } => panic!("round {round}: corrupt at {offset}"),
        }
        // The recovered state is exactly that of the complete records.
        let (want, want_bytes) = reference_recovery(seed, burst_from, rec.records, ref_path.path());
        assert_eq!(with_clean_tail(rec.clone()), want, "round {round}");
        let got_bytes = std::fs::read(tmp.path()).unwrap();
        assert!(
            got_bytes[HEADER_LEN..rec.valid_len as usize] == want_bytes[HEADER_LEN..],
            "round {round}"
        );

        // Reopen (truncating the torn tail), append the next record, and recover cleanly.
        let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Always).unwrap();
        let expect_cut = match rec.tail {
            TailState::Torn { .. } => Some(rec.tail),
            _ => None,
        };
        assert_eq!(w.truncated(), expect_cut);
        let mut g = FlowGen::new(seed, burst_from);
        let next = (0..=rec.records).map(|_| g.next_record()).last().unwrap();
        w.append(&next.as_record()).unwrap();
        drop(w);
        let after = recover(tmp.path()).unwrap();
        assert_eq!(after.tail, TailState::Clean);
        let (want, _) = reference_recovery(seed, burst_from, rec.records + 1, ref_path.path());
        assert_eq!(after, want, "round {round}");
        eprintln!(
            "round {round} ({policy}): killed after {reported} reported, {} recovered, tail {:?}",
            rec.records, rec.tail
        );
    }
    eprintln!("{torn} of {} kills left a torn tail", plans.len());
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}

/// A position no fills can produce, field by field.
fn hostile_positions() -> Vec<(&'static str, Position)> {
    let base = Position {
        qty: 100_000,
        avg_price: px("100"),
        realized: 5,
        fees: 1,
        mark: Price::ZERO,
        fills: 3,
        volume: 10_000,
    };
    vec![
        (
            "every field at its limit",
            Position {
                qty: i64::MAX,
                avg_price: Price(i64::MAX),
                realized: i128::MAX,
                fees: i128::MIN,
                mark: Price::ZERO,
                fills: u64::MAX,
                volume: i128::MAX,
            },
        ),
        (
            "realized beyond the bound",
            Position {
                realized: Position::MONEY_BOUND + 1,
                ..base
            },
        ),
        (
            "fees beyond the bound",
            Position {
                fees: -Position::MONEY_BOUND - 1,
                ..base
            },
        ),
        ("negative volume", Position { volume: -1, ..base }),
        (
            "negative average price",
            Position {
                avg_price: Price(-1),
                ..base
            },
        ),
        (
            "quantity i64::MIN",
            Position {
                qty: i64::MIN,
                ..base
            },
        ),
    ]
}

/// Writes `recs`, then swaps the payload of record `index` for `payload` (the same length) and
/// recomputes its CRC: a record the writer refuses to write, built by hand for the reader's
/// range checks. Returns the file's bytes.
fn write_with_payload(
    path: &Path,
    recs: &[JournalRecord<'_>],
    index: usize,
    payload: &[u8],
) -> Vec<u8> {
    let mut bytes = write_journal(path, FsyncPolicy::Never, recs);
    let start = boundaries_prefix(&bytes, index);
    let end = boundaries_prefix(&bytes, index + 1);
    assert_eq!(
        end - start - RECORD_HEADER_LEN,
        payload.len(),
        "same length"
    );
    bytes[start + RECORD_HEADER_LEN..end].copy_from_slice(payload);
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[start..start + 8]);
    h.update(&bytes[start + 12..end]);
    bytes[start + 8..start + 12].copy_from_slice(&h.finalize().to_le_bytes());
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// A Position record's payload, laid out as the journal format documents it.
fn position_payload(symbol: &str, p: &Position) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&p.qty.to_le_bytes());
    out.extend_from_slice(&p.avg_price.0.to_le_bytes());
    out.extend_from_slice(&p.realized.to_le_bytes());
    out.extend_from_slice(&p.fees.to_le_bytes());
    out.extend_from_slice(&p.fills.to_le_bytes());
    out.extend_from_slice(&p.volume.to_le_bytes());
    out.extend_from_slice(&[symbol.len() as u8, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(symbol.as_bytes());
    out
}

#[test]
fn hostile_position_record_is_refused_not_overflowed() {
    let tmp = TempPath::new("hostile-position");
    let sane = Position {
        qty: 100_000,
        avg_price: px("100"),
        realized: Position::MONEY_BOUND,
        fees: -Position::MONEY_BOUND,
        mark: Price::ZERO,
        fills: u64::MAX,
        volume: Position::MONEY_BOUND,
    };
    for (what, hostile) in hostile_positions() {
        // The writer refuses to write it (a journal never holds what its recovery refuses).
        let _ = std::fs::remove_file(tmp.path());
        let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Never).unwrap();
        let e = w
            .append(&JournalRecord::Position {
                symbol: "BTCUSDT",
                position: hostile,
            })
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{what}: {e}");
        drop(w);
        // A valid CRC around hostile values, made by hand: the reader refuses it.
        let bytes = write_with_payload(
            tmp.path(),
            &[
                JournalRecord::Position {
                    symbol: "ETHUSDT",
                    position: sane,
                },
                JournalRecord::Position {
                    symbol: "BTCUSDT",
                    position: sane,
                },
                JournalRecord::NextClientId { next: 9 },
            ],
            1,
            &position_payload("BTCUSDT", &hostile),
        );
        let offset = boundaries_prefix(&bytes, 1) as u64;
        let rec = recover(tmp.path()).unwrap();
        assert_eq!(rec.tail, TailState::Corrupt { offset }, "{what}");
        assert_eq!(rec.records, 1, "{what}");
        // What was recovered is in range: its PnL cannot overflow.
        assert_eq!(rec.positions, vec![("ETHUSDT".to_string(), sane)], "{what}");
        let _ = rec.positions[0].1.net_pnl();
        // The writer refuses the file with the byte offset, and leaves it alone.
        match JournalWriter::open(tmp.path(), FsyncPolicy::Never) {
            Err(e @ JournalError::CorruptRecord { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&format!("byte offset {offset}")), "{msg}");
                assert!(msg.contains("out-of-range"), "{msg}");
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(std::fs::read(tmp.path()).unwrap(), bytes, "{what}");
        // And a position that reached its limits by saturation never panics.
        let mut p = hostile;
        let _ = p.net_pnl();
        p.apply_fill(Side::Buy, Price(i64::MAX), Qty(i64::MAX), i64::MAX);
        let _ = p.net_pnl();
    }
}

/// The length of the file up to the end of record `n` (1-based; 0: the header).
fn boundaries_prefix(bytes: &[u8], n: usize) -> usize {
    let mut r = JournalReader::new(bytes).unwrap();
    let mut end = HEADER_LEN as u64;
    for _ in 0..n {
        if r.next().is_none() {
            break;
        }
        end = r.offset();
    }
    end as usize
}

#[test]
fn journal_record_length_larger_than_file_is_refused() {
    let tmp = TempPath::new("long-length");
    let recs = small_journal();
    let bytes = write_journal(tmp.path(), FsyncPolicy::Never, &recs);
    let ends = boundaries(&bytes);
    let last = ends[ends.len() - 2] as usize;
    // Claim lengths up to the largest payload (and beyond) in the last record's header, with a
    // matching length check: nothing is read or allocated past the bytes that are there.
    for claim in [
        (bytes.len() - last) as u32,
        1 << 16,
        MAX_PAYLOAD as u32,
        MAX_PAYLOAD as u32 + 1,
        u32::MAX,
    ] {
        let mut b = bytes.clone();
        b[last..last + 4].copy_from_slice(&claim.to_le_bytes());
        b[last + 4..last + 8].copy_from_slice(&(!claim).to_le_bytes());
        let rec = recover_bytes(&b).unwrap();
        assert_eq!(rec.records, recs.len() - 1, "claim {claim}");
        assert_eq!(rec.valid_len, last as u64, "claim {claim}");
        if claim as usize > MAX_PAYLOAD {
            assert_eq!(
                rec.tail,
                TailState::Corrupt {
                    offset: last as u64
                },
                "claim {claim}"
            );
        } else {
            // Within bounds but beyond the file: the record is not there (a torn tail); it is
            // never read, and the writer cuts exactly it.
            assert_eq!(
                rec.tail,
                TailState::Torn {
                    offset: last as u64,
                    bytes: (b.len() - last) as u64
                },
                "claim {claim}"
            );
        }
        std::fs::write(tmp.path(), &b).unwrap();
        match JournalWriter::open(tmp.path(), FsyncPolicy::Never) {
            Ok(w) => {
                assert!(claim as usize <= MAX_PAYLOAD);
                assert_eq!(w.len(), last as u64);
            }
            Err(JournalError::CorruptRecord { offset }) => {
                assert!(claim as usize > MAX_PAYLOAD);
                assert_eq!(offset, last as u64);
            }
            Err(e) => panic!("claim {claim}: {e}"),
        }
    }
}

#[test]
fn open_order_trade_id_count_beyond_the_record_is_refused() {
    let tmp = TempPath::new("trade-id-count");
    let ids: Vec<u8> = [7u64, 8].iter().flat_map(|t| t.to_le_bytes()).collect();
    let rec = JournalRecord::OpenOrder {
        client_id: eng(3),
        symbol: "BTCUSDT",
        req: req(Side::Buy, "100", "1", OrderType::LimitGtc),
        filled: q("0.5"),
        venue_order_id: Some(9),
        acked: true,
        trade_ids: &ids,
        ts_ns: 1,
    };
    let bytes = write_journal(tmp.path(), FsyncPolicy::Never, &[rec]);
    let at = HEADER_LEN;
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    // `n` sits after id, ts, price, qty, filled, venue id (48 bytes) and 4 one-byte fields.
    let n_at = at + RECORD_HEADER_LEN + 52;
    assert_eq!(&bytes[n_at..n_at + 4], &2u32.to_le_bytes());
    for n in [3u32, 1 << 20, u32::MAX] {
        let mut b = bytes.clone();
        b[n_at..n_at + 4].copy_from_slice(&n.to_le_bytes());
        // Re-seal the CRC so only the count is wrong.
        let mut crc = crc32fast::Hasher::new();
        crc.update(&b[at..at + 8]);
        crc.update(&b[at + 12..at + RECORD_HEADER_LEN + len]);
        b[at + 8..at + 12].copy_from_slice(&crc.finalize().to_le_bytes());
        let rec = recover_bytes(&b).unwrap();
        assert_eq!(
            rec.tail,
            TailState::Corrupt {
                offset: HEADER_LEN as u64
            },
            "n = {n}"
        );
        assert!(rec.open_orders.is_empty());
    }
}

#[test]
fn second_lock_on_a_journal_is_refused_with_the_holders_pid() {
    let tmp = TempPath::new("lock");
    let lock_path = JournalLock::path_for(tmp.path());
    let _ = std::fs::remove_file(&lock_path);
    let first = JournalLock::acquire(tmp.path()).unwrap();
    assert_eq!(first.path(), lock_path);
    assert_eq!(JournalLock::holder(tmp.path()), Some(std::process::id()));
    // A second holder (another open file, as another process would have) is refused, named.
    match JournalLock::acquire(tmp.path()) {
        Err(e @ JournalError::Locked { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("pid {}", std::process::id())),
                "{msg}"
            );
            assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    // Compaction works under the lock (the lock is on the sidecar, the journal is renamed).
    write_journal(tmp.path(), FsyncPolicy::Never, &small_journal());
    let before = recover(tmp.path()).unwrap();
    compact(tmp.path(), None).unwrap();
    assert_eq!(recover(tmp.path()).unwrap().positions, before.positions);
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Never).unwrap();
    w.hold_lock(first);
    assert!(w.holds_lock());
    assert!(matches!(
        JournalLock::acquire(tmp.path()),
        Err(JournalError::Locked { .. })
    ));
    // Dropping the writer releases it; a stale lock file does not block the next holder.
    drop(w);
    assert!(lock_path.exists());
    let again = JournalLock::acquire(tmp.path()).unwrap();
    drop(again);
    let _ = std::fs::remove_file(&lock_path);
}

#[test]
fn next_client_id_beyond_56_bits_is_refused_not_numbered_from() {
    let tmp = TempPath::new("next-id-range");
    // The writer refuses to write it.
    let _ = std::fs::remove_file(tmp.path());
    let mut w = JournalWriter::open(tmp.path(), FsyncPolicy::Never).unwrap();
    let e = w
        .append(&JournalRecord::NextClientId {
            next: MAX_NEXT_CLIENT_ID + 1,
        })
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    drop(w);
    // Made by hand, with a valid CRC: the reader refuses it.
    let bytes = write_with_payload(
        tmp.path(),
        &[
            JournalRecord::NextClientId { next: 7 },
            JournalRecord::NextClientId { next: 8 },
        ],
        1,
        &(MAX_NEXT_CLIENT_ID + 1).to_le_bytes(),
    );
    let offset = boundaries_prefix(&bytes, 1) as u64;
    let rec = recover(tmp.path()).unwrap();
    assert_eq!(rec.tail, TailState::Corrupt { offset });
    assert_eq!(rec.next_client_id, 7);
    assert!(matches!(
        JournalWriter::open(tmp.path(), FsyncPolicy::Never),
        Err(JournalError::CorruptRecord { offset: o }) if o == offset
    ));
    // What a start numbers from stays within the 56 bits, whatever the journal said.
    let start = feeds::orders::idcheck::start_number(u64::MAX, MAX_NEXT_CLIENT_ID);
    assert!(start <= MAX_NEXT_CLIENT_ID, "{start}");
}
