//! Binance frame decoding: Tickline's scanner vs serde_json vs simd-json on the same frames.
//!
//! One group per message kind (`decode/trade`, `decode/bookTicker`, `decode/depthUpdate`,
//! `decode/snapshot` from the real capture; `decode/aggTrade` from Binance's documented
//! example, and `decode/aggTradePretty`, the same as the docs print it, which takes the
//! decoder's general path), each timing the three decoders on the same frame in the same run. Every decoder
//! appends to a reused `Vec`, and the simd-json one copies the frame into a reused buffer
//! (it parses in place) with reused `simd_json::Buffers`. The trade group also times the two
//! libraries' best case, typed structs for a frame already known to be a trade
//! (`serde_json_typed`, `simd_json_typed`), to calibrate against figures quoted elsewhere.
//!
//! Without the shared capture it says so and benchmarks Binance's documented examples only.
//!
//! Run: `cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::event::Event;
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::{BinanceDecoder, Decoded};
use feeds::reference::{SerdeDecoder, SimdDecoder, TypedTradeDecoder};

/// Binance's documented aggTrade payload (web-socket-streams.md), in a combined-stream envelope.
const DOC_AGG_TRADE: &str = r#"{"stream":"bnbbtc@aggTrade","data":{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001","q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}}"#;
/// The same, exactly as the documentation prints it (whitespace and newlines): Binance never
/// sends this layout, so it measures the decoder's general (any key order, any whitespace) path.
const DOC_AGG_TRADE_PRETTY: &str = r#"{
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
/// The documented trade, bookTicker, diff depth and REST depth payloads, for when the capture
/// is absent.
const DOC_TRADE: &str = r#"{"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}}"#;
const DOC_BOOK_TICKER: &str = r#"{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}}"#;
const DOC_DEPTH_UPDATE: &str = r#"{"stream":"bnbbtc@depth","data":{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}"#;
const DOC_REST_DEPTH: &str = r#"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#;

/// `(kind, frame)` pairs to benchmark.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = Vec::new();
    match testkit::shared_data_or_notice(testkit::BINANCE_SPOT) {
        Some(path) => {
            let lines = testkit::read_line_capture(&path);
            let first = |prefix: &[u8]| {
                lines
                    .iter()
                    .find(|(_, f)| f.starts_with(prefix))
                    .map(|(_, f)| f.clone())
                    .unwrap_or_else(|| panic!("no {} frame", String::from_utf8_lossy(prefix)))
            };
            v.push(("trade", first(b"{\"stream\":\"btcusdt@trade\"")));
            v.push(("bookTicker", first(b"{\"stream\":\"btcusdt@bookTicker\"")));
            v.push(("depthUpdate", first(b"{\"stream\":\"btcusdt@depth")));
            v.push(("aggTrade", DOC_AGG_TRADE.into()));
            v.push(("aggTradePretty", DOC_AGG_TRADE_PRETTY.into()));
            v.push(("snapshot", first(b"{\"lastUpdateId\"")));
        }
        None => {
            eprintln!("NOTICE: benchmarking Binance's documented examples only");
            v.push(("trade", DOC_TRADE.into()));
            v.push(("bookTicker", DOC_BOOK_TICKER.into()));
            v.push(("depthUpdate", DOC_DEPTH_UPDATE.into()));
            v.push(("aggTrade", DOC_AGG_TRADE.into()));
            v.push(("aggTradePretty", DOC_AGG_TRADE_PRETTY.into()));
            v.push(("snapshot", DOC_REST_DEPTH.into()));
        }
    }
    v
}

fn symbols() -> (SymbolTable, SymbolId) {
    let mut t = SymbolTable::new();
    let btc = t.intern("BTCUSDT").expect("symbol");
    t.intern("BNBBTC").expect("symbol");
    t.intern("BNBUSDT").expect("symbol");
    (t, btc)
}

fn bench_decode(c: &mut Criterion) {
    let (table, btc) = symbols();
    let mut ours = BinanceDecoder::new(table.clone());
    let mut serde = SerdeDecoder::new(table.clone());
    let mut simd = SimdDecoder::new(table);
    // The capture's REST snapshot is a bare payload: it belongs to the file's symbol.
    ours.set_default_symbol(Some(btc));
    serde.set_default_symbol(Some(btc));
    simd.set_default_symbol(Some(btc));
    let mut out: Vec<Event> = Vec::with_capacity(8192);

    for (kind, frame) in frames() {
        // All three must agree before their speed means anything.
        out.clear();
        let want = ours.decode(&frame, 1, &mut out).expect("tickline decodes");
        let events = out.clone();
        assert!(
            matches!(want, Decoded::Events(n) if n > 0),
            "{kind}: {want:?}"
        );
        out.clear();
        assert_eq!(serde.decode(&frame, 1, &mut out).expect("serde_json"), want);
        assert_eq!(out, events, "{kind}: serde_json differs");
        out.clear();
        assert_eq!(simd.decode(&frame, 1, &mut out).expect("simd-json"), want);
        assert_eq!(out, events, "{kind}: simd-json differs");
        eprintln!(
            "decode/{kind}: {} bytes, {} events",
            frame.len(),
            events.len()
        );

        let mut g = c.benchmark_group(format!("decode/{kind}"));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(BenchmarkId::from_parameter("tickline"), |b| {
            b.iter(|| {
                out.clear();
                black_box(ours.decode(black_box(&frame), 1, &mut out))
            })
        });
        g.bench_function(BenchmarkId::from_parameter("serde_json"), |b| {
            b.iter(|| {
                out.clear();
                black_box(serde.decode(black_box(&frame), 1, &mut out)).ok()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("simd_json"), |b| {
            b.iter(|| {
                out.clear();
                black_box(simd.decode(black_box(&frame), 1, &mut out)).ok()
            })
        });
        if kind == "trade" {
            // Calibration: the best case for the two libraries, a decoder that already knows
            // the frame is a trade and deserializes straight into typed structs.
            let mut typed = TypedTradeDecoder::new(ours.symbols().clone());
            out.clear();
            assert_eq!(
                typed
                    .decode_serde(&frame, 1, &mut out)
                    .expect("typed serde_json"),
                want
            );
            assert_eq!(out, events, "typed serde_json differs");
            out.clear();
            assert_eq!(
                typed
                    .decode_simd(&frame, 1, &mut out)
                    .expect("typed simd-json"),
                want
            );
            assert_eq!(out, events, "typed simd-json differs");
            g.bench_function(BenchmarkId::from_parameter("serde_json_typed"), |b| {
                b.iter(|| {
                    out.clear();
                    black_box(typed.decode_serde(black_box(&frame), 1, &mut out)).ok()
                })
            });
            g.bench_function(BenchmarkId::from_parameter("simd_json_typed"), |b| {
                b.iter(|| {
                    out.clear();
                    black_box(typed.decode_simd(black_box(&frame), 1, &mut out)).ok()
                })
            });
        }
        g.finish();
    }
    bench_capture(c, &mut ours, &mut out);
}

/// Every frame of the spot capture decoded once per iteration, in the capture's order: the
/// feed thread's decode work on its real mix (bookTicker, trades and 36-level depth messages on
/// average). Throughput is in frames, so the time per element is the mean decode per message.
fn bench_capture(c: &mut Criterion, ours: &mut BinanceDecoder, out: &mut Vec<Event>) {
    let Some(path) = testkit::shared_data_or_notice(testkit::BINANCE_SPOT) else {
        return;
    };
    let frames: Vec<Vec<u8>> = testkit::read_line_capture(&path)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    let decode_all = |ours: &mut BinanceDecoder, out: &mut Vec<Event>| {
        let mut events = 0usize;
        for f in &frames {
            out.clear();
            if let Ok(Decoded::Events(n)) = ours.decode(black_box(f), 1, out) {
                events += n;
            }
        }
        events
    };
    // The work is the whole capture: every frame decodes to events (none refused).
    let events = decode_all(ours, out);
    eprintln!("decode/capture: {} frames, {events} events", frames.len());
    let mut g = c.benchmark_group("decode/capture");
    g.sample_size(20);
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function(BenchmarkId::from_parameter("tickline"), |b| {
        b.iter(|| black_box(decode_all(ours, out)))
    });
    g.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
