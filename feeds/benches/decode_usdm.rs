//! Binance USD-M futures frame decoding: Tickline's decoder ([`BinanceDecoder::usdm`]) beside
//! serde_json on the same real frames.
//!
//! One group per message kind, `decode_usdm/<kind>`: `trade`, `bookTicker`, `depthUpdate` (the
//! capture's depth message with the median level count) and `snapshot` (the capture's REST
//! body, 1000 levels a side) from `../shared/data/binance-usdm/btcusdt_20240808.gz`; `aggTrade`
//! (the capture has none) from Binance's documented example; `depthUpdatePretty`, the
//! documented depthUpdate pretty-printed as the docs show it, which takes the decoder's general
//! path. Each group times:
//!
//! - `tickline`: frame to [`Event`]s, appended to a reused `Vec`;
//! - `serde_json_value`: `serde_json::from_slice::<serde_json::Value>` (a parse only: no event
//!   is made, no price parsed);
//! - `serde_json_typed`: serde_json into borrowed typed structs for that kind, then the same
//!   events (prices through [`Price::parse`]); checked equal to Tickline's before timing.
//!
//! Without the capture it says so and times the documented examples only.
//!
//! Run: `cargo bench -p feeds --bench decode_usdm -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::event::{
    AggTrade, BookSide, BookTicker, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel, Trade,
};
use engine::fixed::{Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use feeds::binance::market::BinanceDecoder;
use feeds::capture::LineCapture;
use feeds::venue::Decoded;
use serde::Deserialize;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/binance-usdm/btcusdt_20240808.gz"
);

/// Binance's USD-M examples (docs: Aggregate Trade Streams, Diff. Book Depth Streams, Order
/// Book), in a combined-stream envelope where the socket sends one.
const DOC_AGG_TRADE: &str = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}}"#;
const DOC_DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}"#;
const DOC_DEPTH_PRETTY: &str = r#"{
  "e": "depthUpdate",
  "E": 123456789,
  "T": 123456788,
  "s": "BTCUSDT",
  "U": 157,
  "u": 160,
  "pu": 149,
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
const DOC_TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#;
const DOC_BOOK_TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000","T":1568014460891,"E":1568014460893}}"#;
const DOC_SNAPSHOT: &str = r#"{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#;

/// `(kind, frame)` pairs to benchmark.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = Vec::new();
    if std::path::Path::new(CAPTURE).exists() {
        let cap = LineCapture::open(CAPTURE).expect("capture reads");
        let lines: Vec<&[u8]> = cap.iter().map(|r| r.expect("line").payload).collect();
        let first = |prefix: &[u8]| {
            lines
                .iter()
                .find(|f| f.starts_with(prefix))
                .map(|f| f.to_vec())
                .unwrap_or_else(|| panic!("no {} frame", String::from_utf8_lossy(prefix)))
        };
        let mut depth: Vec<&[u8]> = lines
            .iter()
            .copied()
            .filter(|f| f.starts_with(b"{\"stream\":\"btcusdt@depth"))
            .collect();
        let levels = |f: &[u8]| {
            f.windows(3)
                .filter(|w| w == b"[[\"" || w == b",[\"")
                .count()
        };
        depth.sort_by_key(|f| levels(f));
        v.push(("trade", first(b"{\"stream\":\"btcusdt@trade\"")));
        v.push(("bookTicker", first(b"{\"stream\":\"btcusdt@bookTicker\"")));
        v.push(("depthUpdate", depth[depth.len() / 2].to_vec()));
        v.push(("snapshot", first(b"{\"lastUpdateId\"")));
    } else {
        eprintln!("NOTICE: {CAPTURE} absent; benchmarking Binance's documented examples only");
        v.push(("trade", DOC_TRADE.into()));
        v.push(("bookTicker", DOC_BOOK_TICKER.into()));
        v.push(("depthUpdate", DOC_DEPTH.into()));
        v.push(("snapshot", DOC_SNAPSHOT.into()));
    }
    v.push(("aggTrade", DOC_AGG_TRADE.into()));
    v.push(("depthUpdatePretty", DOC_DEPTH_PRETTY.into()));
    v
}

// ---------------------------------------------------------------------------------------------
// The typed serde_json reference: borrowed structs per kind, then the same events.

#[derive(Deserialize)]
struct Envelope<'a, T> {
    #[serde(borrow)]
    #[allow(dead_code)]
    stream: Option<&'a str>,
    data: T,
}

#[derive(Deserialize)]
struct TradeMsg<'a> {
    #[serde(rename = "E")]
    e_time: u64,
    s: &'a str,
    t: u64,
    p: &'a str,
    q: &'a str,
    m: bool,
}

#[derive(Deserialize)]
struct AggTradeMsg<'a> {
    #[serde(rename = "E")]
    e_time: u64,
    s: &'a str,
    a: u64,
    p: &'a str,
    q: &'a str,
    f: u64,
    l: u64,
    m: bool,
}

#[derive(Deserialize)]
struct BookTickerMsg<'a> {
    u: u64,
    s: &'a str,
    b: &'a str,
    #[serde(rename = "B")]
    bq: &'a str,
    a: &'a str,
    #[serde(rename = "A")]
    aq: &'a str,
}

#[derive(Deserialize)]
struct DepthMsg<'a> {
    #[serde(rename = "E")]
    e_time: u64,
    s: &'a str,
    u: u64,
    pu: u64,
    #[serde(borrow)]
    b: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    a: Vec<[&'a str; 2]>,
}

#[derive(Deserialize)]
struct SnapshotMsg<'a> {
    #[serde(rename = "lastUpdateId")]
    last_update_id: u64,
    #[serde(borrow)]
    bids: Vec<[&'a str; 2]>,
    #[serde(borrow)]
    asks: Vec<[&'a str; 2]>,
}

fn px(s: &str) -> Option<Price> {
    Price::parse(s.as_bytes()).ok()
}

fn qt(s: &str) -> Option<Qty> {
    Qty::parse(s.as_bytes()).ok()
}

/// Appends `mk(side, price, qty)` per level, bids first, the last `LAST` (or one `LAST|EMPTY`).
fn push_levels(
    out: &mut Vec<Event>,
    bids: &[[&str; 2]],
    asks: &[[&str; 2]],
    mk: impl Fn(BookSide, Price, Qty, LevelFlags) -> Event,
) -> Option<usize> {
    let start = out.len();
    let n = bids.len() + asks.len();
    let sides = bids
        .iter()
        .map(|l| (BookSide::Bid, l))
        .chain(asks.iter().map(|l| (BookSide::Ask, l)));
    for (i, (side, [p, q])) in sides.enumerate() {
        let flags = if i + 1 == n {
            LevelFlags::LAST
        } else {
            LevelFlags::default()
        };
        out.push(mk(side, px(p)?, qt(q)?, flags));
    }
    if n == 0 {
        out.push(mk(
            BookSide::Bid,
            Price::ZERO,
            Qty::ZERO,
            LevelFlags::LAST.with(LevelFlags::EMPTY),
        ));
    }
    Some(out.len() - start)
}

/// serde_json into the typed struct of `kind`, then events; `None` on any failure.
fn typed(
    kind: &str,
    frame: &[u8],
    syms: &SymbolTable,
    btc: SymbolId,
    out: &mut Vec<Event>,
) -> Option<usize> {
    let sym = |s: &str| syms.lookup_on(Venue::BinanceUsdm, s.as_bytes());
    match kind {
        "trade" => {
            let m = serde_json::from_slice::<Envelope<TradeMsg>>(frame)
                .ok()?
                .data;
            let ev = Trade {
                exch_ns: m.e_time.checked_mul(1_000_000)?,
                trade_id: m.t,
                price: px(m.p)?,
                qty: qt(m.q)?,
                buyer_maker: m.m,
            };
            out.push(Event::new(1, sym(m.s)?, EventKind::Trade(ev)));
            Some(1)
        }
        "aggTrade" => {
            let m = serde_json::from_slice::<Envelope<AggTradeMsg>>(frame)
                .ok()?
                .data;
            let ev = AggTrade {
                exch_ns: m.e_time.checked_mul(1_000_000)?,
                agg_id: m.a,
                price: px(m.p)?,
                qty: qt(m.q)?,
                trade_count: u32::try_from(m.l.checked_sub(m.f)? + 1).unwrap_or(u32::MAX),
                buyer_maker: m.m,
            };
            out.push(Event::new(1, sym(m.s)?, EventKind::AggTrade(ev)));
            Some(1)
        }
        "bookTicker" => {
            let m = serde_json::from_slice::<Envelope<BookTickerMsg>>(frame)
                .ok()?
                .data;
            let ev = BookTicker {
                update_id: m.u,
                bid_px: px(m.b)?,
                bid_qty: qt(m.bq)?,
                ask_px: px(m.a)?,
                ask_qty: qt(m.aq)?,
            };
            out.push(Event::new(1, sym(m.s)?, EventKind::BookTicker(ev)));
            Some(1)
        }
        "depthUpdate" | "depthUpdatePretty" => {
            let m = match serde_json::from_slice::<Envelope<DepthMsg>>(frame) {
                Ok(e) => e.data,
                Err(_) => serde_json::from_slice::<DepthMsg>(frame).ok()?,
            };
            let symbol = sym(m.s)?;
            let exch_ns = m.e_time.checked_mul(1_000_000)?;
            let span = u32::try_from(m.u.checked_sub(m.pu)?.checked_sub(1)?).unwrap_or(u32::MAX);
            push_levels(out, &m.b, &m.a, |side, price, qty, flags| {
                Event::new(
                    1,
                    symbol,
                    EventKind::Depth(DepthLevel {
                        exch_ns,
                        final_update_id: m.u,
                        price,
                        qty,
                        update_span: span,
                        side,
                        flags,
                    }),
                )
            })
        }
        "snapshot" => {
            let m = serde_json::from_slice::<SnapshotMsg>(frame).ok()?;
            push_levels(out, &m.bids, &m.asks, |side, price, qty, flags| {
                Event::new(
                    1,
                    btc,
                    EventKind::Snapshot(SnapshotLevel {
                        last_update_id: m.last_update_id,
                        price,
                        qty,
                        side,
                        flags,
                    }),
                )
            })
        }
        _ => None,
    }
}

fn bench_decode(c: &mut Criterion) {
    let mut syms = SymbolTable::new();
    let btc = syms
        .intern_on(Venue::BinanceUsdm, "BTCUSDT")
        .expect("symbol");
    let mut ours = BinanceDecoder::usdm(syms.clone());
    // The capture's REST snapshot is a bare payload: it belongs to the file's symbol.
    ours.set_default_symbol(Some(btc));
    let mut out: Vec<Event> = Vec::with_capacity(8192);

    for (kind, frame) in frames() {
        // The decoders must agree before their speed means anything.
        out.clear();
        let want = ours.decode(&frame, 1, &mut out).expect("tickline decodes");
        let events = out.clone();
        assert!(
            matches!(want, Decoded::Events(n) if n > 0),
            "{kind}: {want:?}"
        );
        out.clear();
        let n = typed(kind, &frame, &syms, btc, &mut out).expect("typed serde_json decodes");
        assert_eq!(Decoded::Events(n), want);
        assert_eq!(out, events, "{kind}: typed serde_json differs");
        serde_json::from_slice::<serde_json::Value>(&frame).expect("valid JSON");
        eprintln!(
            "decode_usdm/{kind}: {} bytes, {} events",
            frame.len(),
            events.len()
        );

        let mut g = c.benchmark_group(format!("decode_usdm/{kind}"));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(BenchmarkId::from_parameter("tickline"), |b| {
            b.iter(|| {
                out.clear();
                black_box(ours.decode(black_box(&frame), 1, &mut out))
            })
        });
        g.bench_function(BenchmarkId::from_parameter("serde_json_value"), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    &frame,
                )))
                .ok()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("serde_json_typed"), |b| {
            b.iter(|| {
                out.clear();
                black_box(typed(kind, black_box(&frame), &syms, btc, &mut out))
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
