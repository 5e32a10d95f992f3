//! Coinbase frame decoding: Tickline's decoder vs `serde_json::from_slice::<Value>` on the same
//! real frames from `../shared/data/cryptofeed/COINBASE.ws.28.0`.
//!
//! One group per message kind (`coinbase/l2update`, `coinbase/match`, `coinbase/ticker`,
//! `coinbase/snapshot`), each the frame of median length among that kind's frames in the
//! capture. The decoder appends to a reused `Vec` and is `reset` before each call, so a
//! `match` or `ticker` is decoded and delivered every time rather than dropped as a repeat of
//! its own sequence. Without the capture it says so and benchmarks frames shaped like
//! Coinbase's documented examples.
//!
//! Run: `cargo bench -p feeds --bench decode_coinbase -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::event::Event;
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::coinbase::market::CoinbaseDecoder;
use feeds::venue::Decoded;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cryptofeed/COINBASE.ws.28.0"
);

const DOC_L2UPDATE: &str = r#"{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z","changes":[["buy","10101.80000000","0.162567"]]}"#;
const DOC_MATCH: &str = r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#;
const DOC_TICKER: &str = r#"{"type":"ticker","sequence":37475248783,"product_id":"BTC-USD","price":"1285.22","open_24h":"1310.79","volume_24h":"245532.79269678","low_24h":"1280.52","high_24h":"1313.8","volume_30d":"9788783.60117027","best_bid":"1285.04","best_bid_size":"0.46688654","best_ask":"1285.27","best_ask_size":"1.56637040","side":"buy","time":"2022-10-19T23:28:22.061769Z","trade_id":370843401,"last_size":"11.4396987"}"#;
const DOC_SNAPSHOT: &str = r#"{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.45054140"]],"asks":[["10102.55","0.57753524"]]}"#;

/// `(kind, frame)` pairs to benchmark.
fn frames() -> Vec<(&'static str, Vec<u8>)> {
    let Ok(text) = std::fs::read_to_string(CAPTURE) else {
        eprintln!("NOTICE: {CAPTURE} not found; benchmarking documented examples only");
        return vec![
            ("l2update", DOC_L2UPDATE.into()),
            ("match", DOC_MATCH.into()),
            ("ticker", DOC_TICKER.into()),
            ("snapshot", DOC_SNAPSHOT.into()),
        ];
    };
    // Received frames are `<ts>: <json>`; requests and the connect line start with a URL.
    let received: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|l| l.split_once(": ").map(|(_, f)| f))
        .collect();
    ["l2update", "match", "ticker", "snapshot"]
        .into_iter()
        .map(|kind| {
            let tag = format!("{{\"type\":\"{kind}\"");
            let mut of_kind: Vec<&str> = received
                .iter()
                .copied()
                .filter(|f| f.starts_with(&tag))
                .collect();
            assert!(!of_kind.is_empty(), "no {kind} frame in the capture");
            of_kind.sort_by_key(|f| f.len());
            (kind, of_kind[of_kind.len() / 2].as_bytes().to_vec())
        })
        .collect()
}

/// A decoder that knows the frame's product.
fn decoder_for(frame: &[u8]) -> CoinbaseDecoder {
    let v: serde_json::Value = serde_json::from_slice(frame).expect("a JSON frame");
    let product = v["product_id"].as_str().expect("a product_id");
    let mut t = SymbolTable::new();
    t.intern_on(Venue::Coinbase, product)
        .expect("a valid product id");
    CoinbaseDecoder::new(t)
}

fn bench(c: &mut Criterion) {
    for (kind, frame) in frames() {
        let mut g = c.benchmark_group(format!("coinbase/{kind}"));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        let mut d = decoder_for(&frame);
        let mut out: Vec<Event> = Vec::with_capacity(frame.len() / 2 + 16);
        // The frame decodes to events (not ignored, not an error) before it is timed.
        assert!(matches!(
            d.decode(&frame, 1, &mut out),
            Ok(Decoded::Events(n)) if n > 0
        ));
        g.bench_function(BenchmarkId::new("tickline", frame.len()), |b| {
            b.iter(|| {
                out.clear();
                d.reset();
                black_box(d.decode(black_box(&frame), 1, &mut out)).ok();
            })
        });
        g.bench_function(BenchmarkId::new("serde_json_value", frame.len()), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&frame)).ok())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
