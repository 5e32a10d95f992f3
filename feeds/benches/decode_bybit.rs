//! Bybit v5 decoding on real frames of cryptofeed's `BYBIT.jsonl.zst`: `bybit_decode/<kind>`
//! times Tickline's decoder and `serde_json::from_slice::<serde_json::Value>` on the same frame.
//!
//! | kind | frame |
//! |---|---|
//! | `orderbook_delta_linear` | a linear `orderbook.200.BTCUSDT` delta of median size in the capture |
//! | `orderbook_delta_spot` | a spot `orderbook.200.BTCUSDT` delta of median size |
//! | `public_trade_linear` | a linear `publicTrade.BTCUSDT` frame with one trade (UUID trade id) |
//! | `public_trade_spot` | a spot `publicTrade.BTCUSDT` frame with one trade (decimal trade id) |
//! | `tickers_linear` | a linear `tickers.BTCUSDT` delta carrying both best bid and best ask |
//!
//! Without the shared capture it prints a NOTICE and measures nothing.
//!
//! Run: `cargo bench -p feeds --bench decode_bybit -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::event::Event;
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::bybit::market::BybitDecoder;
use feeds::capture::{CryptofeedCapture, RecordKind};
use feeds::venue::{venue_of_url, Decoded};
use std::collections::HashMap;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cryptofeed/BYBIT.jsonl.zst"
);

/// The received frames of the capture with their connection's venue.
fn capture_frames() -> Option<Vec<(Venue, String)>> {
    let capture = CryptofeedCapture::open(CAPTURE).ok()?;
    let mut venues = HashMap::new();
    let mut frames = Vec::new();
    for rec in capture.iter().flatten() {
        match rec.kind {
            RecordKind::Connect => {
                let url = String::from_utf8_lossy(rec.payload);
                venues.insert(rec.conn_id, venue_of_url(&url)?);
            }
            RecordKind::TextFrame => frames.push((
                *venues.get(&rec.conn_id)?,
                String::from_utf8_lossy(rec.payload).into_owned(),
            )),
            _ => {}
        }
    }
    Some(frames)
}

fn bench(c: &mut Criterion) {
    let Some(frames) = capture_frames() else {
        eprintln!("NOTICE: {CAPTURE} absent: Bybit decode benchmark skipped");
        return;
    };
    let pick = |venue: Venue, has: &[&str]| -> Vec<&String> {
        frames
            .iter()
            .filter(|(v, f)| *v == venue && has.iter().all(|h| f.contains(h)))
            .map(|(_, f)| f)
            .collect()
    };
    let median = |mut v: Vec<&String>| -> String {
        v.sort_by_key(|f| f.len());
        v[v.len() / 2].clone()
    };
    let one_trade = |venue: Venue| -> String {
        pick(venue, &["\"topic\":\"publicTrade.BTCUSDT\""])
            .into_iter()
            .find(|f| f.matches("\"T\":").count() == 1)
            .expect("a one-trade frame")
            .clone()
    };
    let book = ["\"topic\":\"orderbook.200.BTCUSDT\"", "\"type\":\"delta\""];
    let kinds = [
        (
            "orderbook_delta_linear",
            Venue::BybitLinear,
            median(pick(Venue::BybitLinear, &book)),
        ),
        (
            "orderbook_delta_spot",
            Venue::BybitSpot,
            median(pick(Venue::BybitSpot, &book)),
        ),
        (
            "public_trade_linear",
            Venue::BybitLinear,
            one_trade(Venue::BybitLinear),
        ),
        (
            "public_trade_spot",
            Venue::BybitSpot,
            one_trade(Venue::BybitSpot),
        ),
        (
            "tickers_linear",
            Venue::BybitLinear,
            pick(
                Venue::BybitLinear,
                &[
                    "\"topic\":\"tickers.BTCUSDT\"",
                    "\"type\":\"delta\"",
                    "bid1Price",
                    "ask1Price",
                ],
            )[0]
            .clone(),
        ),
    ];
    let mut out: Vec<Event> = Vec::with_capacity(8192);
    for (kind, venue, frame) in &kinds {
        let mut t = SymbolTable::new();
        t.intern_on(*venue, "BTCUSDT").expect("symbol");
        let mut dec = BybitDecoder::new(*venue, t);
        let frame = frame.as_bytes();
        out.clear();
        let r = dec.decode(frame, 1, &mut out).expect("decodes");
        assert!(matches!(r, Decoded::Events(n) if n > 0), "{kind}: {r:?}");
        eprintln!(
            "bybit_decode/{kind}: {} bytes, {} events",
            frame.len(),
            out.len()
        );
        let mut g = c.benchmark_group(format!("bybit_decode/{kind}"));
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(BenchmarkId::from_parameter("tickline"), |b| {
            b.iter(|| {
                out.clear();
                black_box(dec.decode(black_box(frame), 1, &mut out)).ok()
            })
        });
        g.bench_function(BenchmarkId::from_parameter("serde_json_value"), |b| {
            b.iter(|| {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    frame,
                )))
                .ok()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
