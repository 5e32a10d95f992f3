//! OKX v5 decoding on real frames of cryptofeed's `OKX.ws.1.0`: `okx_decode/<kind>` times
//! Tickline's decoder and `serde_json::from_slice::<serde_json::Value>` on the same frame
//! (`books_update`: a BTC-USDT book update of median size in the capture, `books_snapshot`,
//! `trades`, `tickers`), and `okx_checksum/book400` the checksum the core computes after a
//! message (top 25 levels of each side of the capture's rebuilt BTC-USDT book).
//!
//! Without the shared capture it prints a NOTICE and measures nothing.
//!
//! Run: `cargo bench -p feeds --bench decode_okx -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::book::{BookConfig, OrderBook};
use engine::checksum::okx_book_checksum;
use engine::event::{Event, EventKind};
use engine::symbol::SymbolTable;
use engine::venue::Venue;
use feeds::okx::market::OkxDecoder;
use feeds::venue::Decoded;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/cryptofeed/OKX.ws.1.0"
);

/// The received frames of the capture (`<ts>: <frame>` lines; connect and send lines skipped).
fn capture_frames() -> Option<Vec<String>> {
    let text = std::fs::read_to_string(CAPTURE).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with("wss://"))
            .filter_map(|l| l.split_once(": ").map(|(_, f)| f.to_string()))
            .collect(),
    )
}

fn symbols() -> SymbolTable {
    let mut t = SymbolTable::new();
    for s in ["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"] {
        t.intern_on(Venue::Okx, s).expect("symbol");
    }
    t
}

fn bench(c: &mut Criterion) {
    let Some(frames) = capture_frames() else {
        eprintln!("NOTICE: {CAPTURE} absent: OKX decode benchmark skipped");
        return;
    };
    let pick = |prefix: &str| -> Vec<&String> {
        frames.iter().filter(|f| f.starts_with(prefix)).collect()
    };
    let mut updates = pick(r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update""#);
    updates.sort_by_key(|f| f.len());
    let kinds = [
        ("books_update", updates[updates.len() / 2].clone()),
        (
            "books_snapshot",
            pick(r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot""#)[0]
                .clone(),
        ),
        (
            "trades",
            pick(r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data""#)[0].clone(),
        ),
        (
            "tickers",
            pick(r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data""#)[0].clone(),
        ),
    ];
    let mut dec = OkxDecoder::new(symbols());
    let mut out: Vec<Event> = Vec::with_capacity(8192);
    for (kind, frame) in &kinds {
        let frame = frame.as_bytes();
        out.clear();
        let r = dec.decode(frame, 1, &mut out).expect("decodes");
        assert!(matches!(r, Decoded::Events(n) if n > 0), "{kind}: {r:?}");
        eprintln!(
            "okx_decode/{kind}: {} bytes, {} events",
            frame.len(),
            out.len()
        );
        let mut g = c.benchmark_group(format!("okx_decode/{kind}"));
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

    // The BTC-USDT book after the whole capture, as the core holds it.
    let mut dec = OkxDecoder::new(symbols());
    let btc = dec
        .symbols()
        .lookup_on(Venue::Okx, b"BTC-USDT")
        .expect("symbol");
    let mut book = OrderBook::new(BookConfig::default());
    for f in &frames {
        out.clear();
        if dec.decode(f.as_bytes(), 1, &mut out).is_err() {
            continue;
        }
        for ev in out.iter().filter(|e| e.symbol == btc) {
            match &ev.kind {
                EventKind::Depth(d) => {
                    book.apply_depth(d);
                }
                EventKind::Snapshot(s) => {
                    book.apply_snapshot(s);
                }
                _ => {}
            }
        }
    }
    assert!(book.is_synced());
    let (bids, asks) = book.depth();
    eprintln!("okx_checksum/book400: book of {bids} bids and {asks} asks");
    let mut g = c.benchmark_group("okx_checksum");
    g.bench_function(BenchmarkId::from_parameter("book400"), |b| {
        b.iter(|| black_box(okx_book_checksum(black_box(&book))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
