//! The Binance spot decoder against Binance's documented payloads, hostile input, the real
//! capture, and the serde_json / simd-json reference decoders as differential oracles.

use engine::event::{
    AggTrade, BookSide, BookTicker, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel, Trade,
};
use engine::fixed::{FixedError, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::{BinanceDecoder, DecodeError, DecodeStats, Decoded, IgnoreReason};
use feeds::json::JsonErrorKind;
use feeds::reference::{RefError, SerdeDecoder, SimdDecoder};

// ---------------------------------------------------------------------------------------------
// Allocation counting (per thread, so parallel tests do not disturb each other).

#[global_allocator]
static GLOBAL: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

fn allocations() -> u64 {
    tools::alloc::thread_allocations()
}

// ---------------------------------------------------------------------------------------------
// Binance's documented examples (spot web-socket-streams.md and rest-api.md), comments removed.

const DOC_AGG_TRADE: &str = r#"{
  "e": "aggTrade",
  "E": 1672515782136,
  "s": "BNBBTC",
  "a": 12345,
  "p": "0.001",
  "q": "100",
  "f": 100,
  "l": 105,
  "T": 1672515782136,
  "m": true,
  "M": true
}"#;

const DOC_TRADE: &str = r#"{
  "e": "trade",
  "E": 1672515782136,
  "s": "BNBBTC",
  "t": 12345,
  "p": "0.001",
  "q": "100",
  "b": 88,
  "a": 50,
  "T": 1672515782136,
  "m": true,
  "M": true
}"#;

const DOC_BOOK_TICKER: &str = r#"{
  "u":400900217,
  "s":"BNBUSDT",
  "b":"25.35190000",
  "B":"31.21000000",
  "a":"25.36520000",
  "A":"40.66000000"
}"#;

const DOC_DEPTH_UPDATE: &str = r#"{
  "e": "depthUpdate",
  "E": 1672515782136,
  "s": "BNBBTC",
  "U": 157,
  "u": 160,
  "b": [
    [
      "0.0024",
      "10"
    ]
  ],
  "a": [
    [
      "0.0026",
      "100"
    ]
  ]
}"#;

const DOC_REST_DEPTH: &str = r#"{
  "lastUpdateId": 1027024,
  "bids": [
    [
      "4.00000000",
      "431.00000000"
    ]
  ],
  "asks": [
    [
      "4.00000200",
      "12.00000000"
    ]
  ]
}"#;

const DOC_PARTIAL_DEPTH: &str = r#"{
  "lastUpdateId": 160,
  "bids": [
    [
      "0.0024",
      "10"
    ]
  ],
  "asks": [
    [
      "0.0026",
      "100"
    ]
  ]
}"#;

const DOC_KLINE: &str = r#"{
  "e": "kline",
  "E": 1672515782136,
  "s": "BNBBTC",
  "k": {
    "t": 1672515780000,
    "T": 1672515839999,
    "s": "BNBBTC",
    "i": "1m",
    "f": 100,
    "L": 200,
    "o": "0.0010",
    "c": "0.0020",
    "h": "0.0025",
    "l": "0.0015",
    "v": "1000",
    "n": 100,
    "x": false,
    "q": "1.0000",
    "V": "500",
    "Q": "0.500",
    "B": "123456"
  }
}"#;

const DOC_TICKER: &str = r#"{
  "e": "24hrTicker",
  "E": 1672515782136,
  "s": "BNBBTC",
  "p": "0.0015",
  "P": "250.00",
  "w": "0.0018",
  "x": "0.0009",
  "c": "0.0025",
  "Q": "10",
  "b": "0.0024",
  "B": "10",
  "a": "0.0026",
  "A": "100",
  "o": "0.0010",
  "h": "0.0025",
  "l": "0.0010",
  "v": "10000",
  "q": "18",
  "O": 0,
  "C": 86400000,
  "F": 0,
  "L": 18150,
  "n": 18151
}"#;

const DOC_SUBSCRIBE_RESPONSE: &str = r#"{"result": null, "id": 1}"#;
const DOC_LIST_RESPONSE: &str = r#"{"result": ["btcusdt@aggTrade"], "id": 3}"#;
const DOC_ERROR_RESPONSE: &str = r#"{"code": 0, "msg": "Unknown property","id": 5}"#;

/// The real frames at the head of the capture, one per kind (copied here as test vectors).
const REAL_TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
const REAL_BOOK_TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
const REAL_DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"],["61844.30000000","0.40163000"],["61862.50000000","0.05019000"],["61862.51000000","0.00000000"]]}}"#;

fn table() -> (SymbolTable, SymbolId, SymbolId, SymbolId) {
    let mut t = SymbolTable::new();
    let btc = t.intern("BTCUSDT").unwrap();
    let bnbbtc = t.intern("BNBBTC").unwrap();
    let bnbusdt = t.intern("BNBUSDT").unwrap();
    (t, btc, bnbbtc, bnbusdt)
}

fn decoder() -> BinanceDecoder {
    BinanceDecoder::new(table().0)
}

fn combined(stream: &str, data: &str) -> String {
    format!(r#"{{"stream":"{stream}","data":{data}}}"#)
}

fn px(s: &str) -> Price {
    Price::parse(s.as_bytes()).unwrap()
}

fn qty(s: &str) -> Qty {
    Qty::parse(s.as_bytes()).unwrap()
}

/// Decodes with ours and both references; asserts all three agree and returns ours.
fn decode3(frame: &[u8], default: Option<SymbolId>) -> (Result<Decoded, DecodeError>, Vec<Event>) {
    decode_with(frame, default, true)
}

/// Like [`decode3`] but without simd-json, for the inputs where simd-json knowingly differs:
/// it reads `-0` as the integer 0, and rejects numbers outside `f64` range anywhere in the frame
/// (we and serde_json accept them where the field is ignored).
fn decode2(frame: &[u8], default: Option<SymbolId>) -> (Result<Decoded, DecodeError>, Vec<Event>) {
    decode_with(frame, default, false)
}

fn decode_with(
    frame: &[u8],
    default: Option<SymbolId>,
    with_simd: bool,
) -> (Result<Decoded, DecodeError>, Vec<Event>) {
    let t = table().0;
    let mut ours = BinanceDecoder::new(t.clone());
    ours.set_default_symbol(default);
    let mut serde = SerdeDecoder::new(t.clone());
    serde.set_default_symbol(default);
    let mut simd = SimdDecoder::new(t);
    simd.set_default_symbol(default);
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let ra = ours.decode(frame, 42, &mut a);
    let rb = serde.decode(frame, 42, &mut b);
    let rc = if with_simd {
        simd.decode(frame, 42, &mut c)
    } else {
        // Stand in with serde_json's answer.
        let mut stand_in = SerdeDecoder::new(table().0);
        stand_in.set_default_symbol(default);
        stand_in.decode(frame, 42, &mut c)
    };
    let text = String::from_utf8_lossy(frame);
    match &ra {
        Ok(d) => {
            assert_eq!(
                rb.as_ref().ok(),
                Some(d),
                "serde_json differs on {text}: {rb:?}"
            );
            assert_eq!(
                rc.as_ref().ok(),
                Some(d),
                "simd-json differs on {text}: {rc:?}"
            );
        }
        Err(e) => {
            assert!(
                rb.is_err(),
                "serde_json accepts what we reject ({e}) on {text}"
            );
            assert!(
                rc.is_err(),
                "simd-json accepts what we reject ({e}) on {text}"
            );
        }
    }
    assert_eq!(a, b, "{text}");
    assert_eq!(a, c, "{text}");
    (ra, a)
}

// ---------------------------------------------------------------------------------------------
// Documented examples.

#[test]
fn documented_trade() {
    let (_, _, bnbbtc, _) = table();
    let want = vec![Event::new(
        42,
        bnbbtc,
        EventKind::Trade(Trade {
            exch_ns: 1_672_515_782_136_000_000,
            trade_id: 12345,
            price: px("0.001"),
            qty: qty("100"),
            buyer_maker: true,
        }),
    )];
    for frame in [DOC_TRADE.to_string(), combined("bnbbtc@trade", DOC_TRADE)] {
        let (r, ev) = decode3(frame.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(ev, want);
    }
    if let EventKind::Trade(t) = want[0].kind {
        assert_eq!(t.aggressor(), engine::event::Side::Sell);
    }
}

#[test]
fn documented_agg_trade() {
    let (_, _, bnbbtc, _) = table();
    let want = vec![Event::new(
        42,
        bnbbtc,
        EventKind::AggTrade(AggTrade {
            exch_ns: 1_672_515_782_136_000_000,
            agg_id: 12345,
            price: px("0.001"),
            qty: qty("100"),
            trade_count: 6,
            buyer_maker: true,
        }),
    )];
    for frame in [
        DOC_AGG_TRADE.to_string(),
        combined("bnbbtc@aggTrade", DOC_AGG_TRADE),
    ] {
        let (r, ev) = decode3(frame.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(ev, want);
    }
}

#[test]
fn documented_book_ticker() {
    let (_, _, _, bnbusdt) = table();
    let want = vec![Event::new(
        42,
        bnbusdt,
        EventKind::BookTicker(BookTicker {
            update_id: 400_900_217,
            bid_px: px("25.3519"),
            bid_qty: qty("31.21"),
            ask_px: px("25.3652"),
            ask_qty: qty("40.66"),
        }),
    )];
    for frame in [
        DOC_BOOK_TICKER.to_string(),
        combined("bnbusdt@bookTicker", DOC_BOOK_TICKER),
    ] {
        let (r, ev) = decode3(frame.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(ev, want);
    }
}

#[test]
fn documented_depth_update() {
    let (_, _, bnbbtc, _) = table();
    let lvl = |side, p: &str, q: &str, flags| {
        Event::new(
            42,
            bnbbtc,
            EventKind::Depth(DepthLevel {
                exch_ns: 1_672_515_782_136_000_000,
                final_update_id: 160,
                price: px(p),
                qty: qty(q),
                update_span: 3,
                side,
                flags,
            }),
        )
    };
    let want = vec![
        lvl(BookSide::Bid, "0.0024", "10", LevelFlags::default()),
        lvl(BookSide::Ask, "0.0026", "100", LevelFlags::LAST),
    ];
    for frame in [
        DOC_DEPTH_UPDATE.to_string(),
        combined("bnbbtc@depth", DOC_DEPTH_UPDATE),
    ] {
        let (r, ev) = decode3(frame.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Events(2)));
        assert_eq!(ev, want);
    }
    if let EventKind::Depth(d) = want[0].kind {
        assert_eq!(d.first_update_id(), 157);
    }
}

fn snapshot_events(
    symbol: SymbolId,
    id: u64,
    bids: &[(&str, &str)],
    asks: &[(&str, &str)],
) -> Vec<Event> {
    let mut v: Vec<Event> = bids
        .iter()
        .map(|l| (BookSide::Bid, l))
        .chain(asks.iter().map(|l| (BookSide::Ask, l)))
        .map(|(side, (p, q))| {
            Event::new(
                42,
                symbol,
                EventKind::Snapshot(SnapshotLevel {
                    last_update_id: id,
                    price: px(p),
                    qty: qty(q),
                    side,
                    flags: LevelFlags::default(),
                }),
            )
        })
        .collect();
    if let Some(EventKind::Snapshot(s)) = v.last_mut().map(|e| &mut e.kind) {
        s.flags = LevelFlags::LAST;
    }
    v
}

#[test]
fn documented_rest_snapshot_via_default_symbol_and_decode_snapshot() {
    let (t, btc, bnbbtc, _) = table();
    let want = snapshot_events(
        bnbbtc,
        1_027_024,
        &[("4.00000000", "431.00000000")],
        &[("4.00000200", "12.00000000")],
    );
    // Bare in a line capture: needs the default symbol.
    let (r, _) = decode3(DOC_REST_DEPTH.as_bytes(), None);
    assert_eq!(r, Err(DecodeError::MissingSymbol));
    let (r, ev) = decode3(DOC_REST_DEPTH.as_bytes(), Some(bnbbtc));
    assert_eq!(r, Ok(Decoded::Events(2)));
    assert_eq!(ev, want);

    // As a REST body, with the symbol given.
    let mut d = BinanceDecoder::new(t.clone());
    let mut s = SerdeDecoder::new(t.clone());
    let mut m = SimdDecoder::new(t);
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    assert_eq!(
        d.decode_snapshot(DOC_REST_DEPTH.as_bytes(), bnbbtc, 42, &mut a),
        Ok(Decoded::Events(2))
    );
    assert_eq!(
        s.decode_snapshot(DOC_REST_DEPTH.as_bytes(), bnbbtc, 42, &mut b)
            .unwrap(),
        Decoded::Events(2)
    );
    assert_eq!(
        m.decode_snapshot(DOC_REST_DEPTH.as_bytes(), bnbbtc, 42, &mut c)
            .unwrap(),
        Decoded::Events(2)
    );
    assert_eq!(a, want);
    assert_eq!(b, want);
    assert_eq!(c, want);
    assert_eq!(d.stats().messages, 1);
    assert_eq!(d.stats().events, 2);

    // A REST error body is not a snapshot.
    let err = br#"{"code":-1121,"msg":"Invalid symbol."}"#;
    assert_eq!(
        d.decode_snapshot(err, btc, 42, &mut a),
        Err(DecodeError::MissingField("lastUpdateId"))
    );
    assert!(s.decode_snapshot(err, btc, 42, &mut b).is_err());
    assert_eq!(a.len(), 2);
    assert_eq!(d.stats().decode_errors, 1);
    assert_eq!(
        d.decode_snapshot(b"[]", btc, 42, &mut a),
        Err(DecodeError::NotAnObject)
    );
}

#[test]
fn documented_partial_depth_stream_takes_the_stream_symbol() {
    let (_, _, bnbbtc, _) = table();
    let want = snapshot_events(bnbbtc, 160, &[("0.0024", "10")], &[("0.0026", "100")]);
    let frame = combined("bnbbtc@depth5@100ms", DOC_PARTIAL_DEPTH);
    let (r, ev) = decode3(frame.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Events(2)));
    assert_eq!(ev, want);
    let frame = combined("xrpusdt@depth5", DOC_PARTIAL_DEPTH);
    let (r, _) = decode3(frame.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol)));
}

#[test]
fn documented_responses_and_other_streams_are_ignored_and_counted() {
    let mut d = decoder();
    let mut out = Vec::new();
    let cases: Vec<(String, IgnoreReason)> = vec![
        (DOC_SUBSCRIBE_RESPONSE.into(), IgnoreReason::Response),
        (DOC_LIST_RESPONSE.into(), IgnoreReason::Response),
        (DOC_ERROR_RESPONSE.into(), IgnoreReason::Response),
        (DOC_KLINE.into(), IgnoreReason::UnknownStream),
        (combined("bnbbtc@kline_1m", DOC_KLINE), IgnoreReason::UnknownStream),
        (DOC_TICKER.into(), IgnoreReason::UnknownStream),
        (combined("bnbbtc@ticker", DOC_TICKER), IgnoreReason::UnknownStream),
        (format!("[{DOC_TICKER},{DOC_TICKER}]"), IgnoreReason::UnknownStream),
        (combined("!ticker@arr", &format!("[{DOC_TICKER}]")), IgnoreReason::UnknownStream),
        (r#"{"stream":"btcusdt@avgPrice","data":{"e":"avgPrice","E":1693907033000,"s":"BTCUSDT","i":"5m","w":"25776.86000000","T":1693907032213}}"#.into(), IgnoreReason::UnknownStream),
        ("{}".into(), IgnoreReason::UnknownStream),
        (r#"{"stream":"x","data":{}}"#.into(), IgnoreReason::UnknownStream),
    ];
    for (frame, why) in &cases {
        let (r, ev) = decode3(frame.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Ignored(*why)), "{frame}");
        assert!(ev.is_empty());
        assert_eq!(
            d.decode(frame.as_bytes(), 1, &mut out),
            Ok(Decoded::Ignored(*why))
        );
    }
    assert!(out.is_empty());
    let n = cases.len() as u64;
    assert_eq!(
        *d.stats(),
        DecodeStats {
            messages: n,
            events: 0,
            decode_errors: 0,
            ignored: n,
            unknown_symbol: 0
        }
    );
}

#[test]
fn unknown_symbol_is_ignored_and_counted_even_with_odd_fields() {
    let mut d = decoder();
    let mut out = Vec::new();
    let frames = [
        REAL_TRADE.replace("BTCUSDT", "ETHUSDT"),
        REAL_BOOK_TICKER.replace("BTCUSDT", "ETHUSDT"),
        REAL_DEPTH.replace("BTCUSDT", "ETHUSDT"),
        DOC_AGG_TRADE.replace("BNBBTC", "ETHBTC"),
        // Fields past the symbol are not looked at for a symbol we do not trade.
        REAL_TRADE
            .replace("BTCUSDT", "ETHUSDT")
            .replace("\"0.02000000\"", "0.02"),
    ];
    for f in &frames {
        let (r, _) = decode3(f.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol)), "{f}");
        assert_eq!(
            d.decode(f.as_bytes(), 1, &mut out),
            Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol))
        );
    }
    assert_eq!(d.stats().unknown_symbol, frames.len() as u64);
    assert_eq!(d.stats().ignored, frames.len() as u64);
    // The symbol is matched ignoring ASCII case.
    let lower = REAL_TRADE.replace("\"BTCUSDT\"", "\"btcusdt\"");
    assert_eq!(
        d.decode(lower.as_bytes(), 1, &mut out),
        Ok(Decoded::Events(1))
    );
}

#[test]
fn real_frames_decode_to_the_expected_events() {
    let (_, btc, _, _) = table();
    let (r, ev) = decode3(REAL_TRADE.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Events(1)));
    assert_eq!(
        ev,
        vec![Event::new(
            42,
            btc,
            EventKind::Trade(Trade {
                exch_ns: 1_723_161_255_343_000_000,
                trade_id: 3_735_683_259,
                price: Price(6_183_763_000_000),
                qty: Qty(2_000_000),
                buyer_maker: true,
            })
        )]
    );
    let (r, ev) = decode3(REAL_DEPTH.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Events(5)));
    let flags: Vec<_> = ev
        .iter()
        .map(|e| match e.kind {
            EventKind::Depth(d) => (d.side, d.flags, d.update_span, d.final_update_id),
            _ => panic!("not depth"),
        })
        .collect();
    assert_eq!(
        flags[0],
        (BookSide::Bid, LevelFlags::default(), 4, 50_093_239_207)
    );
    assert_eq!(flags[3].1, LevelFlags::default());
    assert_eq!(
        flags[4],
        (BookSide::Ask, LevelFlags::LAST, 4, 50_093_239_207)
    );
}

#[test]
fn key_order_whitespace_and_escapes_do_not_matter() {
    let (_, want) = decode3(REAL_TRADE.as_bytes(), None);
    let variants = [
        // data before stream.
        r#"{"data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true},"stream":"btcusdt@trade"}"#.to_string(),
        // Payload keys shuffled, extra keys, whitespace everywhere.
        " {\r\n \"stream\" : \"btcusdt@trade\" ,\t\"data\" : { \"M\" : true , \"m\" : true , \"x\" : [ {\"y\": null} ] , \"q\" : \"0.02000000\" , \"p\" : \"61837.63000000\" , \"t\" : 3735683259 , \"s\" : \"BTCUSDT\" , \"E\" : 1723161255343 , \"e\" : \"trade\" } } \n".to_string(),
        // Bare payload.
        r#"{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}"#.to_string(),
        // Escapes in keys and values.
        r#"{"stream":"btcusdt@trade","data":{"\u0065":"tr\u0061de","E":1723161255343,"s":"BTC\u0055SDT","t":3735683259,"p":"61837.63000000","\u0071":"0.0200\u00300\u00300","T":1723161255342,"m":true,"M":true}}"#.to_string(),
    ];
    for v in &variants {
        let (r, ev) = decode3(v.as_bytes(), None);
        assert_eq!(r, Ok(Decoded::Events(1)), "{v}");
        assert_eq!(ev, want, "{v}");
    }
    // Depth with asks before bids still emits bids first.
    let swapped = r#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","a":[["0.0026","100"]],"b":[["0.0024","10"]],"u":160,"U":157}"#;
    let (_, want) = decode3(DOC_DEPTH_UPDATE.as_bytes(), None);
    let (r, ev) = decode3(swapped.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Events(2)));
    assert_eq!(ev, want);
}

// ---------------------------------------------------------------------------------------------
// Depth and snapshot edge cases.

#[test]
fn empty_depth_and_snapshot_become_one_empty_last_event() {
    let (_, _, bnbbtc, _) = table();
    let f = r#"{"e":"depthUpdate","E":1,"s":"BNBBTC","U":5,"u":5,"b":[],"a":[]}"#;
    let (r, ev) = decode3(f.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Events(1)));
    assert_eq!(
        ev,
        vec![Event::new(
            42,
            bnbbtc,
            EventKind::Depth(DepthLevel {
                exch_ns: 1_000_000,
                final_update_id: 5,
                price: Price::ZERO,
                qty: Qty::ZERO,
                update_span: 0,
                side: BookSide::Bid,
                flags: LevelFlags::LAST.with(LevelFlags::EMPTY),
            })
        )]
    );
    let f = r#"{"lastUpdateId":9,"bids":[],"asks":[]}"#;
    let (r, ev) = decode3(f.as_bytes(), Some(bnbbtc));
    assert_eq!(r, Ok(Decoded::Events(1)));
    match ev[0].kind {
        EventKind::Snapshot(s) => {
            assert!(s.flags.contains(LevelFlags::EMPTY) && s.flags.contains(LevelFlags::LAST));
            assert_eq!(s.last_update_id, 9);
        }
        _ => panic!("not a snapshot"),
    }
    // Only asks: the last ask carries LAST.
    let f = r#"{"lastUpdateId":9,"bids":[],"asks":[["1","2"],["3","4"]]}"#;
    let (_, ev) = decode3(f.as_bytes(), Some(bnbbtc));
    let flags: Vec<_> = ev
        .iter()
        .map(|e| match e.kind {
            EventKind::Snapshot(s) => s.flags,
            _ => panic!(),
        })
        .collect();
    assert_eq!(flags, vec![LevelFlags::default(), LevelFlags::LAST]);
}

#[test]
fn depth_update_id_range_is_checked() {
    let f = |u_lo: u64, u_hi: u64| {
        format!(
            r#"{{"e":"depthUpdate","E":1,"s":"BNBBTC","U":{u_lo},"u":{u_hi},"b":[["1","1"]],"a":[]}}"#
        )
    };
    assert_eq!(
        decode3(f(161, 160).as_bytes(), None).0,
        Err(DecodeError::BadRange { field: "U" })
    );
    let max = u32::MAX as u64;
    assert_eq!(
        decode3(f(10, 10 + max).as_bytes(), None).0,
        Ok(Decoded::Events(1))
    );
    assert_eq!(
        decode3(f(10, 11 + max).as_bytes(), None).0,
        Err(DecodeError::BadRange { field: "U" })
    );
    let agg = DOC_AGG_TRADE.replace("\"l\": 105", "\"l\": 99");
    assert_eq!(
        decode3(agg.as_bytes(), None).0,
        Err(DecodeError::BadRange { field: "l" })
    );
    let agg = DOC_AGG_TRADE
        .replace("\"f\": 100", "\"f\": 0")
        .replace("\"l\": 105", "\"l\": 18446744073709551615");
    let (r, ev) = decode3(agg.as_bytes(), None);
    assert_eq!(r, Ok(Decoded::Events(1)));
    assert!(matches!(ev[0].kind, EventKind::AggTrade(a) if a.trade_count == u32::MAX));
}

#[test]
fn levels_must_be_pairs_of_strings() {
    for (levels, err) in [
        (r#"[["1","2","3"]]"#, DecodeError::WrongType { field: "b" }),
        (r#"[["1"]]"#, DecodeError::WrongType { field: "b" }),
        (r#"[[]]"#, DecodeError::WrongType { field: "b" }),
        (r#"[["1",2]]"#, DecodeError::WrongType { field: "b" }),
        (r#"[[1,"2"]]"#, DecodeError::WrongType { field: "b" }),
        (r#"["1","2"]"#, DecodeError::WrongType { field: "b" }),
        (
            r#"[{"p":"1","q":"2"}]"#,
            DecodeError::WrongType { field: "b" },
        ),
        (r#"{"1":"2"}"#, DecodeError::WrongType { field: "b" }),
        (r#""1""#, DecodeError::WrongType { field: "b" }),
        (
            r#"[["1","2"],["x","2"]]"#,
            DecodeError::BadDecimal {
                field: "b",
                err: FixedError::InvalidByte(0),
            },
        ),
    ] {
        let f = format!(
            r#"{{"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"u":2,"b":{levels},"a":[["5","6"]]}}"#
        );
        assert_eq!(decode3(f.as_bytes(), None).0, Err(err), "{levels}");
    }
    let f = r#"{"e":"depthUpdate","E":1,"s":"BNBBTC","U":1,"u":2,"a":[]}"#;
    assert_eq!(
        decode3(f.as_bytes(), None).0,
        Err(DecodeError::MissingField("b"))
    );
    let f = r#"{"lastUpdateId":1,"bids":[]}"#;
    assert_eq!(
        decode3(f.as_bytes(), Some(SymbolId(0))).0,
        Err(DecodeError::MissingField("asks"))
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input.

/// Every frame we have as a test vector.
fn vectors() -> Vec<String> {
    vec![
        REAL_TRADE.into(),
        REAL_BOOK_TICKER.into(),
        REAL_DEPTH.into(),
        DOC_AGG_TRADE.into(),
        DOC_TRADE.into(),
        DOC_BOOK_TICKER.into(),
        DOC_DEPTH_UPDATE.into(),
        DOC_REST_DEPTH.into(),
        combined("bnbbtc@aggTrade", DOC_AGG_TRADE),
        combined("bnbbtc@depth5", DOC_PARTIAL_DEPTH),
        DOC_KLINE.into(),
        DOC_SUBSCRIBE_RESPONSE.into(),
    ]
}

fn check_truncations(frame: &[u8], d: &mut BinanceDecoder) -> u64 {
    let mut out = vec![Event::new(
        0,
        SymbolId(0),
        EventKind::Trade(Trade {
            exch_ns: 0,
            trade_id: 0,
            price: Price::ZERO,
            qty: Qty::ZERO,
            buyer_maker: false,
        }),
    )];
    let before = out.clone();
    let mut n = 0;
    for cut in truncation_points(frame.len()) {
        let r = d.decode(&frame[..cut], 1, &mut out);
        assert!(r.is_err(), "prefix of {cut} bytes accepted: {r:?}");
        assert_eq!(out, before, "output changed on error");
        n += 1;
    }
    n
}

/// Every offset of frames up to 8 KiB. Of longer ones (the 64 KiB snapshot, whose middle is
/// the same level shape thousands of times, and whose every-offset run is quadratic) every
/// offset of the first and last 2 KiB and every 101st in between.
fn truncation_points(len: usize) -> Vec<usize> {
    if len <= 8192 {
        return (0..len).collect();
    }
    (0..2048)
        .chain((2048..len - 2048).step_by(101))
        .chain(len - 2048..len)
        .collect()
}

#[test]
fn truncation_at_every_byte_offset_is_an_error() {
    let mut d = decoder();
    d.set_default_symbol(Some(SymbolId(1)));
    let mut n = 0;
    for v in vectors() {
        n += check_truncations(v.as_bytes(), &mut d);
    }
    // And real frames of every kind from the capture, when it is here.
    if let Some(path) = testkit::shared_data_or_notice(testkit::BINANCE_SPOT) {
        let lines = testkit::read_line_capture(&path);
        let mut seen = std::collections::HashSet::new();
        for (_, frame) in &lines {
            let kind = frame.get(..30).map(|k| k.to_vec()).unwrap_or_default();
            if seen.insert(kind) {
                n += check_truncations(frame, &mut d);
            }
        }
        assert!(
            seen.len() >= 4,
            "expected trade, bookTicker, depth and snapshot frames"
        );
    }
    assert_eq!(d.stats().decode_errors, n);
    assert_eq!(d.stats().messages, n);
    // A truncated frame reports where it ended.
    assert_eq!(
        decoder().decode(&REAL_TRADE.as_bytes()[..100], 0, &mut Vec::new()),
        Err(DecodeError::Truncated { offset: 100 })
    );
}

#[test]
fn empty_and_blank_input() {
    let mut d = decoder();
    let mut out = Vec::new();
    assert_eq!(
        d.decode(b"", 0, &mut out),
        Err(DecodeError::Truncated { offset: 0 })
    );
    assert_eq!(
        d.decode(b" \r\n\t", 0, &mut out),
        Err(DecodeError::Truncated { offset: 4 })
    );
    assert_eq!(
        d.decode(b"null", 0, &mut out),
        Err(DecodeError::NotAnObject)
    );
    assert_eq!(
        d.decode(b"\"trade\"", 0, &mut out),
        Err(DecodeError::NotAnObject)
    );
    assert_eq!(d.decode(b"42", 0, &mut out), Err(DecodeError::NotAnObject));
    for f in [&b""[..], b"  ", b"null", b"42", b"\"x\""] {
        assert!(decode3(f, None).0.is_err());
    }
    assert_eq!(d.stats().decode_errors, 5);
}

#[test]
fn wrong_types_are_rejected() {
    let t = REAL_TRADE;
    let cases: Vec<(String, DecodeError)> = vec![
        // Number where a string belongs, and the reverse.
        (
            t.replace("\"61837.63000000\"", "61837.63"),
            DecodeError::WrongType { field: "p" },
        ),
        (
            t.replace("\"0.02000000\"", "0.02"),
            DecodeError::WrongType { field: "q" },
        ),
        (
            t.replace("3735683259", "\"3735683259\""),
            DecodeError::WrongType { field: "t" },
        ),
        (
            t.replace("1723161255343", "\"1723161255343\""),
            DecodeError::WrongType { field: "E" },
        ),
        (
            t.replace("\"m\":true", "\"m\":\"true\""),
            DecodeError::WrongType { field: "m" },
        ),
        (
            t.replace("\"m\":true", "\"m\":1"),
            DecodeError::WrongType { field: "m" },
        ),
        (
            t.replace("\"m\":true", "\"m\":null"),
            DecodeError::WrongType { field: "m" },
        ),
        (
            t.replace("\"BTCUSDT\"", "42"),
            DecodeError::WrongType { field: "s" },
        ),
        (
            t.replace("\"e\":\"trade\"", "\"e\":1"),
            DecodeError::WrongType { field: "e" },
        ),
        (
            t.replace("\"btcusdt@trade\"", "7"),
            DecodeError::WrongType { field: "stream" },
        ),
        // Fractions, exponents and negatives are not ids.
        (
            t.replace("3735683259", "3735683259.0"),
            DecodeError::WrongType { field: "t" },
        ),
        (
            t.replace("3735683259", "3.735683259e9"),
            DecodeError::WrongType { field: "t" },
        ),
        (
            t.replace("3735683259", "-3735683259"),
            DecodeError::WrongType { field: "t" },
        ),
        // A data member that is not an object.
        (
            r#"{"stream":"btcusdt@trade","data":"x"}"#.into(),
            DecodeError::WrongType { field: "data" },
        ),
        (
            r#"{"stream":"btcusdt@trade","data":null}"#.into(),
            DecodeError::WrongType { field: "data" },
        ),
        // Missing fields.
        (t.replace(",\"m\":true", ""), DecodeError::MissingField("m")),
        (
            t.replace("\"s\":\"BTCUSDT\",", ""),
            DecodeError::MissingField("s"),
        ),
        (
            REAL_BOOK_TICKER.replace(",\"A\":\"1.54698000\"", ""),
            DecodeError::MissingField("A"),
        ),
        (
            REAL_BOOK_TICKER.replace("\"u\":50093239212,", ""),
            DecodeError::MissingField("u"),
        ),
        // Depth sides that are not arrays.
        (
            REAL_DEPTH.replace(
                "\"b\":[[\"55653.87000000\",\"0.00000000\"]]",
                "\"b\":\"55653.87\"",
            ),
            DecodeError::WrongType { field: "b" },
        ),
        // Known keys twice.
        (
            t.replace("\"M\":true", "\"p\":\"1\""),
            DecodeError::DuplicateField("p"),
        ),
        (
            t.replace("\"stream\":\"btcusdt@trade\"", "\"data\":{}"),
            DecodeError::DuplicateField("data"),
        ),
    ];
    for (frame, err) in cases {
        assert_eq!(decode3(frame.as_bytes(), None).0, Err(err), "{frame}");
    }
    // `-0` is not an id either (simd-json reads it as 0).
    let f = t.replace("3735683259", "-0");
    assert_eq!(
        decode2(f.as_bytes(), None).0,
        Err(DecodeError::WrongType { field: "t" })
    );
}

#[test]
fn huge_numbers_and_bad_decimals_are_rejected() {
    let t = REAL_TRADE;
    let cases: Vec<(String, Result<Decoded, DecodeError>)> = vec![
        (
            t.replace("3735683259", "18446744073709551615"),
            Ok(Decoded::Events(1)),
        ),
        (
            t.replace("3735683259", "18446744073709551616"),
            Err(DecodeError::IntOverflow { field: "t" }),
        ),
        (
            t.replace("3735683259", &"9".repeat(400)),
            Err(DecodeError::IntOverflow { field: "t" }),
        ),
        // E in ms that does not fit u64 nanoseconds.
        (
            t.replace("1723161255343", "18446744073710"),
            Err(DecodeError::IntOverflow { field: "E" }),
        ),
        (
            t.replace("1723161255343", "18446744073709"),
            Ok(Decoded::Events(1)),
        ),
        // Decimals out of range or too precise.
        (
            t.replace("61837.63000000", "92233720368.54775808"),
            Err(DecodeError::BadDecimal {
                field: "p",
                err: FixedError::Overflow,
            }),
        ),
        (
            t.replace("61837.63000000", &"9".repeat(30)),
            Err(DecodeError::BadDecimal {
                field: "p",
                err: FixedError::Overflow,
            }),
        ),
        (
            t.replace("0.02000000", "0.000000001"),
            Err(DecodeError::BadDecimal {
                field: "q",
                err: FixedError::TooPrecise,
            }),
        ),
        (
            t.replace("0.02000000", "0.123456789"),
            Err(DecodeError::BadDecimal {
                field: "q",
                err: FixedError::TooPrecise,
            }),
        ),
        (
            t.replace("0.02000000", "0.0200000000000"),
            Ok(Decoded::Events(1)),
        ),
        (
            t.replace("0.02000000", "1e-2"),
            Err(DecodeError::BadDecimal {
                field: "q",
                err: FixedError::InvalidByte(1),
            }),
        ),
        (
            t.replace("0.02000000", ""),
            Err(DecodeError::BadDecimal {
                field: "q",
                err: FixedError::Empty,
            }),
        ),
        (
            t.replace("0.02000000", " 0.02"),
            Err(DecodeError::BadDecimal {
                field: "q",
                err: FixedError::InvalidByte(0),
            }),
        ),
        (
            REAL_BOOK_TICKER.replace("61837.64000000", "1.2.3"),
            Err(DecodeError::BadDecimal {
                field: "a",
                err: FixedError::InvalidByte(3),
            }),
        ),
    ];
    for (frame, want) in cases {
        assert_eq!(decode3(frame.as_bytes(), None).0, want, "{frame}");
    }
    // Numbers in ignored fields only need to be JSON (simd-json rejects these two).
    for big in ["1.7e400", &"9".repeat(400)] {
        let f = t.replace("1723161255342", big);
        assert_eq!(decode2(f.as_bytes(), None).0, Ok(Decoded::Events(1)), "{f}");
    }
}

#[test]
fn invalid_utf8_is_a_typed_error() {
    let mut d = decoder();
    let mut out = Vec::new();
    // In the symbol.
    let mut f = REAL_TRADE.as_bytes().to_vec();
    let at = REAL_TRADE.find("BTCUSDT").unwrap() + 3;
    f[at] = 0xff;
    assert_eq!(
        d.decode(&f, 0, &mut out),
        Err(DecodeError::InvalidUtf8 { offset: at })
    );
    // In an ignored key and an ignored value: still an error.
    let f = [
        &br#"{"stream":"btcusdt@trade","data":{"e":"trade","x":"caf"#[..],
        b"\xc3\x28",
        br#"","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","m":true}}"#,
    ]
    .concat();
    assert!(matches!(
        d.decode(&f, 0, &mut out),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    let f = [&br#"{"e":"trade","k"#[..], b"\xe2\x82", br#"":1}"#].concat();
    assert!(matches!(
        d.decode(&f, 0, &mut out),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    // A truncated multi-byte sequence at the very end of a string.
    let f = [&br#"{"a":"x"#[..], b"\xf0\x9f\x98", br#""}"#].concat();
    assert!(matches!(
        d.decode(&f, 0, &mut out),
        Err(DecodeError::InvalidUtf8 { .. })
    ));
    // Outside strings it is a syntax error.
    let f = [&br#"{"a":"#[..], b"\xc3\xa9", b"}"].concat();
    assert!(matches!(
        d.decode(&f, 0, &mut out),
        Err(DecodeError::Syntax {
            kind: JsonErrorKind::Unexpected(0xc3),
            offset: 5
        })
    ));
    // Valid non-ASCII is fine.
    let f = REAL_TRADE.replace("\"M\":true", "\"M\":\"日本語 é 😀\"");
    assert_eq!(d.decode(f.as_bytes(), 0, &mut out), Ok(Decoded::Events(1)));
    assert_eq!(decode3(f.as_bytes(), None).0, Ok(Decoded::Events(1)));
}

/// The hostile-input contract (`feeds::binance::market` module docs), held by the native decoder and
/// the serde_json reference alike: not-Unicode text is refused wherever it is, in the fields a
/// message uses and in those it skips; a number beyond `f64` in a field the message does not use
/// is accepted (syntax only, never evaluated); in a field it uses, it is that field's error.
/// Before, serde_json accepted invalid UTF-8 and lone surrogates in what it skipped and refused
/// `1e400` in a declared field the message does not use.
#[test]
fn hostile_frames_follow_the_decoder_contract() {
    let (t, btc, _, _) = table();
    let mut ours = BinanceDecoder::new(t.clone());
    let mut serde = SerdeDecoder::new(t);
    ours.set_default_symbol(Some(btc));
    serde.set_default_symbol(Some(btc));
    let mut both = |frame: &[u8]| {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ra = ours.decode(frame, 9, &mut a);
        let rb = serde.decode(frame, 9, &mut b);
        assert_eq!(a, b, "{}", String::from_utf8_lossy(frame));
        (ra, rb, a)
    };
    let splice = |frame: &str, from: &str, bytes: &[u8]| -> Vec<u8> {
        let at = frame.find(from).unwrap();
        [
            &frame.as_bytes()[..at],
            bytes,
            &frame.as_bytes()[at + from.len()..],
        ]
        .concat()
    };
    let unknown = REAL_TRADE.replace("BTCUSDT", "ETHUSDT");

    // 1. Not Unicode: refused by both, wherever it is.
    let not_unicode: Vec<(&str, Vec<u8>)> = vec![
        // A key no decoder declares (serde_json skips it as IgnoredAny).
        (
            "skipped value",
            splice(REAL_TRADE, "\"M\":true", b"\"M\":\"\xff\""),
        ),
        (
            "skipped key",
            splice(REAL_TRADE, "\"M\":true", b"\"\xc3\x28\":1"),
        ),
        (
            "truncated sequence",
            splice(REAL_TRADE, "\"M\":true", b"\"M\":\"\xf0\x9f\x98\""),
        ),
        (
            "overlong encoding",
            splice(REAL_TRADE, "\"M\":true", b"\"M\":\"\xc0\xaf\""),
        ),
        (
            "encoded surrogate",
            splice(REAL_TRADE, "\"M\":true", b"\"M\":\"\xed\xa0\x80\""),
        ),
        // A declared field this message kind does not use (`U` belongs to depth updates).
        (
            "unused declared field",
            splice(REAL_TRADE, "\"M\":true", b"\"U\":\"\xff\""),
        ),
        // A message for a symbol we do not trade: nothing after `s` is used.
        (
            "unknown symbol",
            splice(&unknown, "\"M\":true", b"\"M\":\"\xfe\""),
        ),
        // Inside a skipped nested value.
        (
            "nested",
            splice(REAL_TRADE, "\"M\":true", b"\"M\":{\"k\":[\"\x80\"]}"),
        ),
        // Unpaired surrogate escapes, skipped too.
        (
            "lone high",
            splice(REAL_TRADE, "\"M\":true", br#""M":"\ud83d""#),
        ),
        (
            "lone low",
            splice(REAL_TRADE, "\"M\":true", br#""M":"x\ude00y""#),
        ),
        (
            "high then other",
            splice(REAL_TRADE, "\"M\":true", br#""M":"\ud83d\n""#),
        ),
        (
            "lone in key",
            splice(REAL_TRADE, "\"M\":true", br#""\udfff":1"#),
        ),
        (
            "lone, unknown symbol",
            splice(&unknown, "\"M\":true", br#""M":"\ud800""#),
        ),
    ];
    for (what, f) in &not_unicode {
        let (ra, rb, _) = both(f);
        assert!(
            matches!(
                ra,
                Err(DecodeError::InvalidUtf8 { .. } | DecodeError::Syntax { .. })
            ),
            "{what}: we gave {ra:?}"
        );
        assert!(
            matches!(rb, Err(RefError::NotUnicode { .. })),
            "{what}: serde_json gave {rb:?}"
        );
    }
    // Paired surrogates and real non-ASCII text are Unicode: accepted by both.
    for ok in [
        splice(REAL_TRADE, "\"M\":true", br#""M":"\ud83d\ude00 \u00e9""#),
        splice(REAL_TRADE, "\"M\":true", "\"M\":\"日本語 😀\"".as_bytes()),
        splice(REAL_TRADE, "\"M\":true", br#""M":"a\\ud800""#), // an escaped backslash, no escape
    ] {
        let (ra, rb, ev) = both(&ok);
        assert_eq!(
            ra,
            Ok(Decoded::Events(1)),
            "{}",
            String::from_utf8_lossy(&ok)
        );
        assert_eq!(rb.ok(), Some(Decoded::Events(1)));
        assert_eq!(ev.len(), 1);
    }

    // 2. Numbers beyond f64 in fields the message does not use: accepted by both, same events.
    let huge = [
        "1e400",
        "-1.5E+999",
        "1e99999999999999999999",
        &"9".repeat(400),
    ];
    for n in huge {
        let unused: Vec<(&str, String)> = vec![
            (
                "undeclared key",
                REAL_TRADE.replace("\"M\":true", &format!("\"M\":{n}")),
            ),
            (
                "undeclared, nested",
                REAL_TRADE.replace("\"M\":true", &format!("\"M\":[{{\"x\":{n}}}]")),
            ),
            (
                "declared, other kind",
                REAL_TRADE.replace("\"M\":true", &format!("\"U\":{n}")),
            ),
            (
                "declared level list",
                REAL_TRADE.replace("\"M\":true", &format!("\"b\":[[{n},\"1\"]]")),
            ),
            (
                "snapshot field in a ticker",
                REAL_BOOK_TICKER.replace("\"u\":", &format!("\"bids\":{n},\"u\":")),
            ),
            ("unknown symbol", unknown.replace("3735683259", n)),
            (
                "depth, unused t",
                REAL_DEPTH.replace("\"U\":", &format!("\"t\":{n},\"U\":")),
            ),
            (
                "envelope",
                REAL_TRADE.replace("{\"stream\"", &format!("{{\"id\":{n},\"stream\"")),
            ),
        ];
        for (what, f) in &unused {
            let (ra, rb, ev) = both(f.as_bytes());
            assert!(ra.is_ok(), "{what} {n}: we gave {ra:?}");
            assert_eq!(
                ra.ok(),
                rb.as_ref().ok().copied(),
                "{what} {n}: serde_json gave {rb:?}"
            );
            if *what != "unknown symbol" {
                assert!(!ev.is_empty(), "{what} {n}");
            }
        }
        // In a field the message uses it is an error in both.
        for (field, f) in [
            ("t", REAL_TRADE.replace("3735683259", n)),
            ("E", REAL_TRADE.replace("1723161255343", n)),
            ("u", REAL_BOOK_TICKER.replace("50093239212", n)),
        ] {
            let (ra, rb, _) = both(f.as_bytes());
            assert!(
                matches!(ra, Err(DecodeError::IntOverflow { field: x } | DecodeError::WrongType { field: x }) if x == field),
                "{field} {n}: we gave {ra:?}"
            );
            assert!(rb.is_err(), "{field} {n}: serde_json gave {rb:?}");
        }
    }
    // The snapshot path keeps the same contract.
    let body = DOC_REST_DEPTH.replace("\"lastUpdateId\"", "\"x\":1e400,\"lastUpdateId\"");
    let mut ours_out = Vec::new();
    let mut serde_out = Vec::new();
    let ra = BinanceDecoder::new(table().0).decode_snapshot(body.as_bytes(), btc, 1, &mut ours_out);
    let rb = SerdeDecoder::new(table().0).decode_snapshot(body.as_bytes(), btc, 1, &mut serde_out);
    assert!(ra.is_ok(), "{ra:?}");
    assert_eq!(ra.ok(), rb.ok());
    assert_eq!(ours_out, serde_out);
    let body = [DOC_REST_DEPTH.as_bytes(), b" \"\xff\""].concat();
    let rb = SerdeDecoder::new(table().0).decode_snapshot(&body, btc, 1, &mut serde_out);
    assert!(matches!(rb, Err(RefError::NotUnicode { .. })), "{rb:?}");
}

#[test]
fn trailing_garbage_is_rejected() {
    let mut d = decoder();
    let mut out = Vec::new();
    for tail in ["x", "}", "{}", ",", "\0", " 1", "\n{\"a\":1}"] {
        let f = format!("{REAL_TRADE}{tail}");
        let r = d.decode(f.as_bytes(), 0, &mut out);
        assert!(
            matches!(
                r,
                Err(DecodeError::Syntax {
                    kind: JsonErrorKind::TrailingData,
                    ..
                })
            ),
            "{tail:?}: {r:?}"
        );
        assert!(decode3(f.as_bytes(), None).0.is_err());
    }
    let f = format!("{REAL_TRADE} \r\n\t");
    assert_eq!(d.decode(f.as_bytes(), 0, &mut out), Ok(Decoded::Events(1)));
    let f = format!("{REAL_DEPTH}]");
    assert!(d.decode(f.as_bytes(), 0, &mut out).is_err());
}

#[test]
fn deep_nesting_is_capped() {
    let mut d = decoder();
    let mut out = Vec::new();
    let depth = 100_000;
    let f = format!(
        r#"{{"e":"trade","x":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(matches!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::TooDeep { .. })
    ));
    let f = "{\"a\":".repeat(depth);
    assert!(matches!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::TooDeep { .. })
    ));
    let f = "[".repeat(depth);
    assert!(matches!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::TooDeep { .. })
    ));
    // Moderate nesting in an ignored field is fine.
    let f = REAL_TRADE.replace(
        "\"M\":true",
        &format!("\"M\":{}1{}", "[".repeat(20), "]".repeat(20)),
    );
    assert_eq!(decode3(f.as_bytes(), None).0, Ok(Decoded::Events(1)));
}

#[test]
fn syntax_errors_carry_offsets() {
    let mut d = decoder();
    let mut out = Vec::new();
    let f = REAL_TRADE.replacen(',', ";", 1);
    assert_eq!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::Syntax {
            offset: 25,
            kind: JsonErrorKind::Unexpected(b';')
        })
    );
    let f = REAL_TRADE.replace("}}", ",}}");
    assert!(matches!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::Syntax { .. })
    ));
    let f = REAL_TRADE.replace("\"p\"", "'p'");
    assert!(matches!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::Syntax { .. })
    ));
    let f = REAL_TRADE.replace("\"M\":true", "\"M\":tru");
    assert!(matches!(
        d.decode(f.as_bytes(), 0, &mut out),
        Err(DecodeError::Syntax { .. })
    ));
    // Errors display something useful.
    let e = d.decode(f.as_bytes(), 0, &mut out).unwrap_err();
    assert!(e.to_string().contains("byte"), "{e}");
    let e: Box<dyn std::error::Error> = Box::new(DecodeError::MissingField("p"));
    assert_eq!(e.to_string(), "missing field `p`");
}

#[test]
fn errors_never_leave_partial_output() {
    let mut d = decoder();
    let mut out = Vec::new();
    assert_eq!(
        d.decode(REAL_TRADE.as_bytes(), 1, &mut out),
        Ok(Decoded::Events(1))
    );
    // A depth message whose last level is bad: the good levels before it must not stay.
    let bad = REAL_DEPTH.replace("61862.51000000", "61862.510000001");
    assert!(d.decode(bad.as_bytes(), 2, &mut out).is_err());
    assert_eq!(out.len(), 1);
    assert_eq!(
        d.decode(REAL_DEPTH.as_bytes(), 3, &mut out),
        Ok(Decoded::Events(5))
    );
    assert_eq!(out.len(), 6);
    assert_eq!(
        *d.stats(),
        DecodeStats {
            messages: 3,
            events: 6,
            decode_errors: 1,
            ignored: 0,
            unknown_symbol: 0
        }
    );
    assert_eq!(d.symbols().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// The real capture.

fn capture() -> Option<Vec<(u64, Vec<u8>)>> {
    let path = testkit::shared_data_or_notice(testkit::BINANCE_SPOT)?;
    Some(testkit::read_line_capture(&path))
}

#[test]
fn whole_capture_matches_the_references() {
    let Some(lines) = capture() else { return };
    assert_eq!(lines.len(), 41_249);
    let (t, btc, _, _) = table();
    let mut ours = BinanceDecoder::new(t.clone());
    let mut serde = SerdeDecoder::new(t.clone());
    let mut simd = SimdDecoder::new(t);
    ours.set_default_symbol(Some(btc));
    serde.set_default_symbol(Some(btc));
    simd.set_default_symbol(Some(btc));
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut kinds = [0u64; 5];
    for (i, (ns, frame)) in lines.iter().enumerate() {
        let len0 = a.len();
        let r = ours.decode(frame, *ns, &mut a);
        assert!(r.is_ok(), "line {}: {r:?}", i + 1);
        assert_eq!(
            serde.decode(frame, *ns, &mut b).unwrap(),
            r.unwrap(),
            "line {}",
            i + 1
        );
        assert_eq!(
            simd.decode(frame, *ns, &mut c).unwrap(),
            r.unwrap(),
            "line {}",
            i + 1
        );
        let k = match a.get(len0).map(|e| e.kind) {
            Some(EventKind::Trade(_)) => 0,
            Some(EventKind::BookTicker(_)) => 1,
            Some(EventKind::Depth(_)) => 2,
            Some(EventKind::Snapshot(_)) => 3,
            _ => 4,
        };
        kinds[k] += 1;
    }
    assert_eq!(a, b);
    assert_eq!(a, c);
    let s = *ours.stats();
    assert_eq!(s.messages, 41_249);
    assert_eq!(s.decode_errors, 0);
    assert_eq!(s.ignored, 0);
    assert_eq!(s.events, a.len() as u64);
    assert_eq!(kinds, [9_757, 28_040, 3_451, 1, 0]);
    assert!(a.iter().all(|e| e.symbol == btc));
    // Every depth and snapshot message ends with exactly one LAST.
    let lasts = a
        .iter()
        .filter(|e| match e.kind {
            EventKind::Depth(d) => d.flags.contains(LevelFlags::LAST),
            EventKind::Snapshot(s) => s.flags.contains(LevelFlags::LAST),
            _ => false,
        })
        .count();
    assert_eq!(lasts, 3_451 + 1);
}

#[test]
fn decoding_the_capture_allocates_nothing() {
    let Some(lines) = capture() else { return };
    let (t, btc, _, _) = table();
    let mut d = BinanceDecoder::new(t);
    d.set_default_symbol(Some(btc));
    let mut out = Vec::with_capacity(4096);
    let before = allocations();
    for (ns, frame) in &lines {
        out.clear();
        d.decode(frame, *ns, &mut out).unwrap();
    }
    // Hostile frames take the error paths; those must not allocate either.
    for (ns, frame) in lines.iter().take(200) {
        out.clear();
        let _ = d.decode(&frame[..frame.len() / 2], *ns, &mut out);
        let _ = d.decode(&frame[1..], *ns, &mut out);
    }
    // The general path (any key order, whitespace, escapes), on valid frames.
    let general = [
        DOC_AGG_TRADE,
        DOC_TRADE,
        DOC_BOOK_TICKER,
        DOC_DEPTH_UPDATE,
        DOC_REST_DEPTH,
        DOC_KLINE,
        DOC_SUBSCRIBE_RESPONSE,
    ];
    for frame in general {
        out.clear();
        d.decode(frame.as_bytes(), 0, &mut out).unwrap();
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(d.stats().decode_errors, 400);
}

// ---------------------------------------------------------------------------------------------
// Deterministic mutation test.

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that make mutations interesting for a JSON decoder.
const ALPHABET: &[u8] = b"{}[],:\"\\ 0123456789.-+eE tfnrulasbpqmBAU\x00\x1f\x7f\x80\xc3\xff";

fn mutate(rng: &mut SplitMix64, frame: &mut Vec<u8>) {
    let ops = 1 + rng.below(3);
    for _ in 0..ops {
        let byte = if rng.below(2) == 0 {
            ALPHABET[rng.below(ALPHABET.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(3) {
            0 if !frame.is_empty() => {
                let at = rng.below(frame.len());
                frame[at] = byte;
            }
            1 => {
                let at = rng.below(frame.len() + 1);
                frame.insert(at, byte);
            }
            _ if !frame.is_empty() => {
                let at = rng.below(frame.len());
                let n = 1 + rng.below(3.min(frame.len() - at));
                frame.drain(at..at + n);
            }
            _ => {}
        }
    }
}

#[test]
fn mutated_frames_never_panic_and_agree_with_serde_json() {
    let mut seeds: Vec<Vec<u8>> = vectors().into_iter().map(String::into_bytes).collect();
    if let Some(lines) = capture() {
        // A spread of real frames, the snapshot included.
        seeds.extend(lines.iter().step_by(997).map(|(_, f)| f.clone()));
        seeds.extend(
            lines
                .iter()
                .filter(|(_, f)| f.starts_with(b"{\"lastUpdateId\""))
                .map(|(_, f)| f.clone()),
        );
    }
    let (t, btc, _, _) = table();
    let mut ours = BinanceDecoder::new(t.clone());
    let mut reference = SerdeDecoder::new(t);
    ours.set_default_symbol(Some(btc));
    reference.set_default_symbol(Some(btc));
    // Bounded and deterministic by default; longer campaigns via the environment.
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let iterations = env("TICKLINE_MUTATION_ITERS", 20_000);
    let mut rng = SplitMix64(env("TICKLINE_MUTATION_SEED", 0x7ACC_11E5_EED5_0001));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut compared = 0u32;
    let mut not_utf8 = 0u32;
    let mut accepted = 0u32;
    for _ in 0..iterations {
        let mut frame = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut frame);
        a.clear();
        b.clear();
        let ra = ours.decode(&frame, 7, &mut a);
        if ra.is_err() {
            assert!(a.is_empty(), "partial output on error");
        }
        // Invalid UTF-8 anywhere is refused by both (the contract); it is compared like the rest.
        if std::str::from_utf8(&frame).is_err() {
            assert!(
                ra.is_err(),
                "accepted invalid UTF-8: {}",
                String::from_utf8_lossy(&frame)
            );
            not_utf8 += 1;
        } else {
            compared += 1;
        }
        let rb = reference.decode(&frame, 7, &mut b);
        let text = String::from_utf8_lossy(&frame);
        match (&ra, &rb) {
            (Ok(x), Ok(y)) => {
                assert_eq!(x, y, "{text}");
                assert_eq!(a, b, "{text}");
                accepted += 1;
            }
            (Err(_), Err(_)) => {}
            (Ok(x), Err(e)) => panic!("we accept ({x:?}), serde_json rejects ({e}): {text}"),
            (Err(e), Ok(y)) => panic!("serde_json accepts ({y:?}), we reject ({e}): {text}"),
        }
        // Where both reject a valid-JSON frame for a semantic reason, the reason agrees.
        if let (Err(e), Err(RefError::Decode(r))) = (&ra, &rb) {
            assert_eq!(e, r, "{text}");
        }
    }
    eprintln!("mutations: {compared} valid UTF-8, {not_utf8} not, {accepted} accepted by both");
    assert!(
        compared > 10_000,
        "only {compared} mutated frames were valid UTF-8"
    );
    assert!(
        not_utf8 > 100,
        "only {not_utf8} mutated frames were not UTF-8"
    );
    assert!(
        accepted > 100,
        "only {accepted} mutated frames were accepted"
    );
    assert_eq!(ours.stats().messages, iterations);
}
