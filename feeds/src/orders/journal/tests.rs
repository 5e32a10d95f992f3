//! Unit tests of the journal's private parts (framing, replay).

use super::format::*;
use super::recovery::*;
use crate::framing::{le_u16, le_u32, le_u64};
use std::io::{self};

use engine::event::{ClientOrderId, OrderRequest, OrderType, Side};
use engine::fixed::{Price, Qty};

fn id(n: u64) -> ClientOrderId {
    ClientOrderId::new(ClientOrderId::NS_ENGINE, n)
}

fn journal(recs: &[JournalRecord<'_>]) -> Vec<u8> {
    let mut out = encode_header(42).to_vec();
    let mut buf = Vec::new();
    for r in recs {
        encode_record(r, &mut buf).unwrap();
        out.extend_from_slice(&buf);
    }
    out
}

fn intent(n: u64, side: Side, qty: i64) -> JournalRecord<'static> {
    JournalRecord::Intent {
        client_id: id(n),
        symbol: "BTCUSDT",
        req: OrderRequest {
            side,
            price: Price(100 * 100_000_000),
            qty: Qty(qty),
            order_type: OrderType::LimitGtc,
        },
        ts_ns: n,
    }
}

#[test]
fn header_layout_is_as_documented() {
    let h = encode_header(42);
    assert_eq!(&h[..8], &MAGIC);
    assert_eq!(le_u16(&h, 8), 1);
    assert_eq!(le_u16(&h, 10), 32);
    assert_eq!(le_u32(&h, 12), 0);
    assert_eq!(le_u64(&h, 16), 42);
    assert_eq!(le_u32(&h, 24), 0);
    assert_eq!(le_u32(&h, 28), crc32fast::hash(&h[..28]));
    let parsed = parse_header(&h).unwrap().unwrap();
    assert_eq!(parsed.created_ns, 42);
}

#[test]
fn record_layout_is_as_documented() {
    let mut buf = Vec::new();
    let rec = JournalRecord::Ack {
        client_id: id(7),
        venue_order_id: 0x0102_0304_0506_0708,
        ts_ns: 99,
    };
    encode_record(&rec, &mut buf).unwrap();
    assert_eq!(buf.len(), 16 + 24);
    assert_eq!(le_u32(&buf, 0), 24);
    assert_eq!(le_u32(&buf, 4), !24u32);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[0..8]);
    crc.update(&buf[12..]);
    assert_eq!(le_u32(&buf, 8), crc.finalize());
    assert_eq!(buf[12], KIND_ACK);
    assert_eq!(&buf[13..16], &[0, 0, 0]);
    assert_eq!(le_u64(&buf, 16), id(7).0);
    assert_eq!(le_u64(&buf, 24), 99);
    assert_eq!(le_u64(&buf, 32), 0x0102_0304_0506_0708);

    let rec = intent(3, Side::Sell, 5);
    encode_record(&rec, &mut buf).unwrap();
    assert_eq!(buf.len(), 16 + 36 + 7);
    let p = &buf[16..];
    assert_eq!(le_u64(p, 0), id(3).0);
    assert_eq!(le_u64(p, 8), 3);
    assert_eq!(le_u64(p, 16), 100 * 100_000_000);
    assert_eq!(le_u64(p, 24), 5);
    assert_eq!(&p[32..36], &[1, 0, 7, 0]);
    assert_eq!(&p[36..], b"BTCUSDT");

    let rec = JournalRecord::TraderState {
        symbol: "ETH",
        trader: 0x0a0b_0c0d,
        state: b"xyz",
        ts_ns: 5,
    };
    encode_record(&rec, &mut buf).unwrap();
    let p = &buf[16..];
    assert_eq!(p.len(), 16 + 3 + 3);
    assert_eq!(le_u64(p, 0), 5);
    assert_eq!(le_u32(p, 8), 0x0a0b_0c0d);
    assert_eq!(&p[12..16], &[3, 0, 0, 0]);
    assert_eq!(&p[16..], b"ETHxyz");
}

#[test]
fn damaged_length_is_corrupt_not_torn() {
    let bytes = journal(&[intent(1, Side::Buy, 5), intent(2, Side::Buy, 5)]);
    // Make the first record's length claim more than the file holds.
    let mut b = bytes.clone();
    b[HEADER_LEN + 1] ^= 0x10;
    let mut r = JournalReader::new(&b).unwrap();
    assert!(r.next().is_none());
    assert_eq!(
        r.tail(),
        Some(TailState::Corrupt {
            offset: HEADER_LEN as u64
        })
    );
    // A payload that does not decode, with a valid CRC, is corrupt too.
    let mut b = bytes.clone();
    b[HEADER_LEN + 12] = 99;
    let mut crc = crc32fast::Hasher::new();
    let len = le_u32(&b, HEADER_LEN) as usize;
    crc.update(&b[HEADER_LEN..HEADER_LEN + 8]);
    crc.update(&b[HEADER_LEN + 12..HEADER_LEN + 16 + len]);
    let c = crc.finalize().to_le_bytes();
    b[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&c);
    let rec = recover_bytes(&b).unwrap();
    assert_eq!(
        rec.tail,
        TailState::Corrupt {
            offset: HEADER_LEN as u64
        }
    );
    assert_eq!(rec.records, 0);
}

#[test]
fn decode_refuses_trailing_bytes_and_bad_codes() {
    let mut p = Vec::new();
    JournalRecord::NextClientId { next: 5 }
        .encode_payload(&mut p)
        .unwrap();
    assert!(JournalRecord::decode(KIND_NEXT_CLIENT_ID, &p).is_some());
    p.push(0);
    assert!(JournalRecord::decode(KIND_NEXT_CLIENT_ID, &p).is_none());
    let mut p = Vec::new();
    intent(1, Side::Buy, 1).encode_payload(&mut p).unwrap();
    p[32] = 2; // no such side
    assert!(JournalRecord::decode(KIND_INTENT, &p).is_none());
    p[32] = 0;
    p[33] = 4; // no such order type
    assert!(JournalRecord::decode(KIND_INTENT, &p).is_none());
    p[33] = 0;
    p[34] = 0; // empty symbol
    assert!(JournalRecord::decode(KIND_INTENT, &p).is_none());
    assert!(JournalRecord::decode(0, &[]).is_none());
}

#[test]
fn encode_refuses_bad_symbols_and_clears_nothing_written() {
    let mut buf = Vec::new();
    let long = "X".repeat(MAX_SYMBOL_LEN + 1);
    for sym in ["", long.as_str()] {
        let rec = JournalRecord::TraderState {
            symbol: sym,
            trader: 1,
            state: b"",
            ts_ns: 0,
        };
        let e = encode_record(&rec, &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
    let big = vec![0u8; MAX_PAYLOAD];
    let rec = JournalRecord::TraderState {
        symbol: "A",
        trader: 1,
        state: &big,
        ts_ns: 0,
    };
    assert!(encode_record(&rec, &mut buf).is_err());
    let ok = JournalRecord::TraderState {
        symbol: "A",
        trader: 1,
        state: &big[..MAX_PAYLOAD - 17],
        ts_ns: 0,
    };
    encode_record(&ok, &mut buf).unwrap();
    assert_eq!(buf.len(), RECORD_HEADER_LEN + MAX_PAYLOAD);
}

#[test]
fn replay_closes_orders_and_counts_strays() {
    let bytes = journal(&[
        intent(1, Side::Buy, 10),
        intent(2, Side::Sell, 10),
        intent(2, Side::Sell, 10),
        JournalRecord::Fill {
            client_id: id(1),
            trade_id: 1,
            price: Price(5),
            qty: Qty(10),
            fee: 0,
            ts_ns: 0,
        },
        JournalRecord::Rejected {
            client_id: id(9),
            code: -2010,
            ts_ns: 0,
        },
        JournalRecord::NextClientId { next: 40 },
    ]);
    let rec = recover_bytes(&bytes).unwrap();
    assert_eq!(rec.tail, TailState::Clean);
    assert_eq!(rec.records, 6);
    assert_eq!(rec.valid_len, bytes.len() as u64);
    assert_eq!(rec.open_orders.len(), 1);
    assert_eq!(rec.open_orders[0].client_id, id(2));
    assert_eq!(rec.open_orders[0].leaves(), Qty(10));
    assert_eq!(rec.duplicate_intents, 1);
    assert_eq!(rec.unknown_order_events, 1);
    assert_eq!(rec.next_client_id, 40);
}

#[test]
fn errors_display_their_context() {
    let e = JournalError::CorruptRecord { offset: 77 };
    assert!(e.to_string().contains("byte offset 77"));
    assert!(e.to_string().contains("refusing to append"));
    let e = JournalError::from(io::Error::from(io::ErrorKind::NotFound));
    assert!(std::error::Error::source(&e).is_some());
    assert!(JournalError::UnsupportedVersion(9)
        .to_string()
        .contains('9'));
}
