//! The bodies of Tickline's fuzz targets, one function per target, each taking the raw input.
//!
//! One copy of each body serves two callers: the cargo-fuzz targets in `fuzz/fuzz_targets/`
//! (libFuzzer, nightly, under AddressSanitizer) and the stable regression test
//! `tests/fuzz_regressions.rs`, which runs every file under `fuzz/seeds/` and
//! `fuzz/regressions/` through the same body (it includes this file with `#[path]`).
//!
//! A body checks invariants, not only "no panic": a violated invariant is a panic, which
//! libFuzzer reports as a crash. Bodies never read the clock and never print.
//!
//! "Decode never allocates" and "no allocation sized by a number read from the input" are
//! checked with [`FuzzAlloc`], which both callers install as the global allocator (it counts
//! allocations and records the largest request, per thread). Under libFuzzer a huge request
//! is also an out-of-memory crash (`-rss_limit_mb`); on stable, where Linux overcommits and a
//! 4 GB `Vec::with_capacity` succeeds, only the recorded size catches it.

use engine::event::{BookSide, Event, EventKind};
use engine::fixed::{Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use feeds::binance::market::{BinanceDecoder, DecodeError, Decoded};
use feeds::reference::{RefError, SerdeDecoder};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

#[path = "okx.rs"] // relative to this file, also when it is included with `#[path]`
mod okx;
pub use okx::okx_decode;

thread_local! {
    // Const-initialised, no destructor: touching them from the allocator never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

/// The system allocator, counting this thread's allocations and its largest request.
#[derive(Debug)]
pub struct FuzzAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees carry over; the only addition is bookkeeping in thread-locals that never allocate.
unsafe impl GlobalAlloc for FuzzAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn thread_allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Runs `f` and returns its result with the largest single allocation it asked for.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let saved = LARGEST.with(|c| c.replace(0));
    let r = f();
    let largest = LARGEST.with(|c| c.replace(saved.max(c.get())));
    (r, largest)
}

/// The most a capture reader may ask for at once for an input of `len` bytes: the input
/// inflated at deflate's best ratio (about 1032:1), plus the readers' fixed buffers.
fn capture_allocation_bound(len: usize) -> usize {
    len.saturating_mul(1100).saturating_add(8 << 20)
}

/// A target's body: takes the fuzzer's input, panics when an invariant does not hold.
pub type Body = fn(&[u8]);

/// Every target: its name (the folder under `seeds/`, `regressions/` and `corpus/`) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("binance_decode", binance_decode),
    ("binance_diff", binance_diff),
    ("binance_usdm_decode", binance_usdm_decode),
    ("decimal_roundtrip", decimal_roundtrip),
    ("rest_parsers", rest_parsers),
    ("binance_api", binance_api),
    ("capture", capture),
    ("journal_bytes", journal_bytes),
    ("journal_torn", journal_torn),
    ("config", config),
    ("control", control),
    ("coinbase_decode", coinbase_decode),
    ("okx_decode", okx_decode),
    ("bybit_decode", bybit_decode),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The symbols the market-data targets know: the real captures' BTCUSDT (also the default
/// symbol for bare snapshots) and the symbols of Binance's documented examples.
fn table() -> (SymbolTable, SymbolId) {
    let mut t = SymbolTable::new();
    let mut btc = None;
    for s in ["BTCUSDT", "ETHUSDT", "BNBBTC", "BNBUSDT"] {
        let id = t.intern(s).ok();
        btc = btc.or(id);
    }
    match btc {
        Some(b) => (t, b),
        None => unreachable!("a fresh table interns four symbols"),
    }
}

/// Room for every event `frame` can produce, so the caller's `Vec` never grows during a
/// decode (the smallest depth level, `["1","1"]`, is 9 bytes; one event is never less than 2).
fn events_room(frame: &[u8]) -> Vec<Event> {
    Vec::with_capacity(frame.len() / 2 + 16)
}

/// Runs `f` and returns its result with how many allocations this thread made meanwhile.
fn counting<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = thread_allocations();
    let r = f();
    (r, thread_allocations() - before)
}

/// Every price and quantity of an event survives a format/parse round trip.
fn check_round_trips(events: &[Event]) {
    fn px(p: Price) {
        let s = p.to_string();
        assert_eq!(
            Price::parse(s.as_bytes()),
            Ok(p),
            "price {s} does not re-parse"
        );
    }
    fn qt(q: Qty) {
        let s = q.to_string();
        assert_eq!(Qty::parse(s.as_bytes()), Ok(q), "qty {s} does not re-parse");
    }
    for e in events {
        match e.kind {
            EventKind::Trade(t) => (px(t.price), qt(t.qty)),
            EventKind::AggTrade(t) => (px(t.price), qt(t.qty)),
            EventKind::BookTicker(b) => {
                px(b.bid_px);
                qt(b.bid_qty);
                (px(b.ask_px), qt(b.ask_qty))
            }
            EventKind::Depth(l) => (px(l.price), qt(l.qty)),
            EventKind::Snapshot(l) => (px(l.price), qt(l.qty)),
            EventKind::Fill(f) => (px(f.price), qt(f.qty)),
            EventKind::OrderCanceled(c) => ((), qt(c.leaves_qty)),
            _ => ((), ()),
        };
    }
}

/// Checks what a call left in `out` against what it returned.
fn check_output(r: &Result<Decoded, DecodeError>, out: &[Event]) {
    match r {
        Ok(Decoded::Events(n)) => assert_eq!(*n, out.len(), "event count"),
        Ok(Decoded::Ignored(_)) | Err(_) => assert!(out.is_empty(), "events left by {r:?}"),
    }
}

/// `BinanceDecoder::decode` and `decode_snapshot` on any bytes: no panic, no allocation inside
/// the call, no output on error or when ignored, the returned count equals the events
/// appended, the counters add up, and every decoded price and quantity formats to a decimal
/// that parses back to the same value.
pub fn binance_decode(data: &[u8]) {
    let (t, btc) = table();
    let mut d = BinanceDecoder::new(t);
    d.set_default_symbol(Some(btc));
    let mut out = events_room(data);
    let cap = out.capacity();
    let (r, allocs) = counting(|| d.decode(data, 7, &mut out));
    assert_eq!(allocs, 0, "decode allocated {allocs} times ({r:?})");
    assert_eq!(out.capacity(), cap, "the events Vec grew");
    check_output(&r, &out);
    check_round_trips(&out);
    for e in &out {
        assert_eq!(e.recv_ns, 7, "receive time not stamped");
    }

    out.clear();
    let (s, allocs) = counting(|| d.decode_snapshot(data, btc, 9, &mut out));
    assert_eq!(
        allocs, 0,
        "decode_snapshot allocated {allocs} times ({s:?})"
    );
    check_output(&s, &out);
    check_round_trips(&out);
    if let Ok(Decoded::Events(_)) = s {
        assert!(
            out.iter()
                .all(|e| matches!(e.kind, EventKind::Snapshot(_)) && e.symbol == btc),
            "a snapshot produced something else than levels of its symbol"
        );
    }

    let st = d.stats();
    assert_eq!(st.messages, 2);
    let errors = u64::from(r.is_err()) + u64::from(s.is_err());
    assert_eq!(st.decode_errors, errors);
}

/// The fast decoder against the serde_json reference (`feeds::reference::SerdeDecoder`), on
/// the contract of `feeds::binance`'s docs: the same accept/refuse decision on every input,
/// the same `Decoded` and the same events when both accept, and the same error where both
/// refuse a frame that is valid JSON for a semantic reason. (The reference decoder exists to
/// be this oracle: "they decode exactly what BinanceDecoder decodes, with the same rules".)
pub fn binance_diff(data: &[u8]) {
    let (t, btc) = table();
    let mut ours = BinanceDecoder::new(t.clone());
    let mut reference = SerdeDecoder::new(t);
    ours.set_default_symbol(Some(btc));
    reference.set_default_symbol(Some(btc));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let ra = ours.decode(data, 7, &mut a);
    let rb = reference.decode(data, 7, &mut b);
    let text = String::from_utf8_lossy(data);
    match (&ra, &rb) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x, y, "decoders disagree on the outcome of {text:?}");
            assert_eq!(a, b, "decoders disagree on the events of {text:?}");
        }
        // An integer beyond u64 in a field that must be one: the fast decoder says IntOverflow,
        // the reference WrongType (serde_json reads such an integer as an f64, so the reference
        // cannot tell it from a fraction). The same field refused: agreement.
        (
            Err(DecodeError::IntOverflow { field: a }),
            Err(RefError::Decode(DecodeError::WrongType { field: b })),
        ) if a == b => {}
        (Err(e), Err(RefError::Decode(r))) => {
            assert_eq!(e, r, "decoders refuse {text:?} for different reasons");
        }
        (Err(_), Err(RefError::Json(_) | RefError::Simd(_))) => {}
        // Not Unicode text (invalid UTF-8, or a lone surrogate escape) anywhere in the frame:
        // the contract is a refusal by both. The fast decoder may meet another fault first (a
        // frame cut short, a syntax error) and name that one: still a refusal.
        (Err(_), Err(RefError::NotUnicode { .. })) => {}
        (Ok(x), Err(e)) => {
            panic!("fast decoder accepts ({x:?}), serde_json refuses ({e}): {text:?}")
        }
        (Err(e), Ok(y)) => {
            panic!("serde_json accepts ({y:?}), fast decoder refuses ({e}): {text:?}")
        }
    }
    assert!(ra.is_ok() || a.is_empty(), "partial output on error");
    assert!(
        rb.is_ok() || b.is_empty(),
        "reference left partial output on error"
    );
}

/// What `engine::fixed` must make of an unsigned decimal `digits(.digits)?`: its canonical
/// eight-decimal form (what `Display` prints), or `None` when it is out of range or more
/// precise than 1e-8. Computed independently of `engine::fixed`, in `u128`.
fn expected_decimal(s: &[u8]) -> Option<Option<String>> {
    let (int, frac) = match s.iter().position(|&c| c == b'.') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &s[s.len()..]),
    };
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    let has_point = int.len() < s.len();
    if !digits(int) || (has_point && !digits(frac)) {
        return None; // not well-formed: no expectation
    }
    let int = &int[int.iter().position(|&c| c != b'0').unwrap_or(int.len())..];
    if int.len() > 20 || frac.iter().skip(8).any(|&c| c != b'0') {
        return Some(None);
    }
    let mut units: u128 = 0;
    for &c in int {
        units = units * 10 + u128::from(c - b'0');
    }
    let mut f8 = [b'0'; 8];
    for (d, &c) in f8.iter_mut().zip(frac) {
        *d = c;
    }
    for &c in &f8 {
        units = units * 10 + u128::from(c - b'0');
    }
    if units > i64::MAX as u128 {
        return Some(None);
    }
    let int = if int.is_empty() {
        "0"
    } else {
        std::str::from_utf8(int).ok()?
    };
    Some(Some(format!("{int}.{}", std::str::from_utf8(&f8).ok()?)))
}

/// A decoded price or quantity re-formats to the input decimal: the input is split at its
/// first space into a price and a quantity (the quantity defaults to the price), both are put
/// into a Binance trade frame, a bookTicker frame and a depth diff, and where both are
/// well-formed decimals the decoder must accept exactly those in range, with values whose
/// `Display` is the input's canonical eight-decimal form (the input itself for Binance's own
/// layout, `"61837.63000000"`). Malformed strings must only be refused cleanly.
pub fn decimal_roundtrip(data: &[u8]) {
    let (p, q) = match data.iter().position(|&c| c == b' ') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    // Keep the frame JSON: no quote, backslash or control byte inside the strings.
    if p.iter()
        .chain(q)
        .any(|&c| c == b'"' || c == b'\\' || c < 0x20)
    {
        return;
    }
    let frames: [Vec<u8>; 3] = [
        [
            &br#"{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":""#[..],
            p,
            br#"","q":""#,
            q,
            br#"","T":1723161255342,"m":true,"M":true}"#,
        ]
        .concat(),
        [
            &br#"{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":""#[..],
            p,
            br#"","B":""#,
            q,
            br#"","a":""#,
            p,
            br#"","A":""#,
            q,
            br#""}}"#,
        ]
        .concat(),
        [
            &br#"{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[[""#[..],
            p,
            br#"",""#,
            q,
            br#""]],"a":[]}"#,
        ]
        .concat(),
    ];
    let (t, _) = table();
    let mut d = BinanceDecoder::new(t);
    let want = (expected_decimal(p), expected_decimal(q));
    for frame in &frames {
        let mut out = events_room(frame);
        let r = d.decode(frame, 1, &mut out);
        check_output(&r, &out);
        let (Some(wp), Some(wq)) = (&want.0, &want.1) else {
            continue; // not well-formed: a clean refusal or any accepted value is fine
        };
        let (Some(wp), Some(wq)) = (wp, wq) else {
            assert!(
                r.is_err(),
                "out-of-range decimal accepted: {:?}",
                String::from_utf8_lossy(frame)
            );
            continue;
        };
        assert_eq!(
            r,
            Ok(Decoded::Events(1)),
            "{:?}",
            String::from_utf8_lossy(frame)
        );
        let (gp, gq) = match out[0].kind {
            EventKind::Trade(t) => (t.price, t.qty),
            EventKind::BookTicker(b) => {
                assert_eq!((b.ask_px, b.ask_qty), (b.bid_px, b.bid_qty));
                (b.bid_px, b.bid_qty)
            }
            EventKind::Depth(l) => (l.price, l.qty),
            k => panic!("unexpected event {k:?}"),
        };
        assert_eq!(
            &gp.to_string(),
            wp,
            "price of {:?}",
            String::from_utf8_lossy(frame)
        );
        assert_eq!(
            &gq.to_string(),
            wq,
            "qty of {:?}",
            String::from_utf8_lossy(frame)
        );
    }
}

/// The REST parsers: `feeds::rest::parse_exchange_info` (every symbol it returns is non-empty
/// upper case) and the depth snapshot body through `BinanceDecoder::decode_snapshot` (levels
/// only, bids before asks).
pub fn rest_parsers(data: &[u8]) {
    if let Ok(infos) = feeds::rest::parse_exchange_info(data) {
        for i in &infos {
            assert!(!i.symbol.is_empty(), "empty symbol from exchangeInfo");
        }
    }
    let (t, btc) = table();
    let mut d = BinanceDecoder::new(t);
    let mut out = events_room(data);
    let r = d.decode_snapshot(data, btc, 3, &mut out);
    check_output(&r, &out);
    check_round_trips(&out);
    let bids_first = out
        .iter()
        .map(|e| match e.kind {
            EventKind::Snapshot(l) => l.side == BookSide::Ask,
            k => panic!("a snapshot produced {k:?}"),
        })
        .collect::<Vec<bool>>();
    assert!(
        bids_first.windows(2).all(|w| w[0] <= w[1]),
        "snapshot levels not bids first"
    );
}

/// The WebSocket API decoders: `parse_reply`, `parse_order_status`, `parse_my_trades` and
/// `parse_execution_report` (at most one event, none on error, its prices round-trip).
pub fn binance_api(data: &[u8]) {
    use feeds::binance::api::{
        parse_execution_report, parse_my_trades, parse_order_status, parse_reply,
    };
    let _ = parse_reply(data);
    let _ = parse_order_status(data);
    let _ = parse_my_trades(data);
    let (t, _) = table();
    let mut out = events_room(data);
    match parse_execution_report(data, &t, 5, &mut out) {
        Ok(n) => {
            assert!(n <= 1, "{n} events from one report");
            assert_eq!(n, out.len(), "event count");
        }
        Err(_) => assert!(out.is_empty(), "events left on error"),
    }
    check_round_trips(&out);
}

/// At most this many records are read from one input (a loop guard, far above what fits).
const MAX_RECORDS: usize = 1 << 16;

/// The capture readers on any bytes (line, gzip, `.tlc` and cryptofeed's v1 text and v3
/// JSONL, plain or zstd, are told apart by their first bytes): the in-memory readers
/// (`LoadedCapture`, `TicklineCapture`, `LineCapture`, `CryptofeedCapture`) and the streaming
/// ones (`CaptureReader`, `LineReader`, `CryptofeedReader`) must not panic, must end, and must
/// agree with each other on the records they read.
///
/// No reader may ask for more memory at once than the input could inflate to (a size read
/// from the input, such as a gzip trailer or a record length, is never trusted as a capacity).
pub fn capture(data: &[u8]) {
    let ((), largest) = largest_allocation(|| read_captures(data));
    assert!(
        largest <= capture_allocation_bound(data.len()),
        "a capture reader asked for {largest} bytes at once for a {}-byte input",
        data.len()
    );
}

fn read_captures(data: &[u8]) {
    use feeds::capture::{
        CaptureReader, LineCapture, LineReader, LoadedCapture, ReadOutcome, TicklineCapture,
    };
    if let Ok(c) = LoadedCapture::from_bytes(data.to_vec()) {
        for r in c.records().take(MAX_RECORDS) {
            if r.is_err() {
                break;
            }
        }
    }
    // cryptofeed (v1 text, v3 JSONL plain or zstd): streaming and in memory agree, errors
    // included.
    cryptofeed_agree(data);
    // .tlc: in memory and streaming agree record for record, up to the first error.
    let mut mem = Vec::new();
    if let Ok(c) = TicklineCapture::from_bytes(data.to_vec()) {
        for r in c.iter().take(MAX_RECORDS) {
            match r {
                Ok(r) => mem.push((r.offset, r.recv_ns, r.conn_id, r.kind, r.payload.to_vec())),
                Err(_) => break,
            }
        }
    }
    let mut streamed = Vec::new();
    if let Ok(mut rd) = CaptureReader::new(Cursor::new(data)) {
        for _ in 0..MAX_RECORDS {
            match rd.next() {
                Ok(ReadOutcome::Record(r)) => {
                    streamed.push((r.offset, r.recv_ns, r.conn_id, r.kind, r.payload.to_vec()))
                }
                Ok(_) | Err(_) => break,
            }
        }
    }
    assert_eq!(
        mem, streamed,
        ".tlc records differ between TicklineCapture and CaptureReader"
    );
    // Line format (plain or gzip): streaming and in memory agree on the good lines.
    let mut streamed = Vec::new();
    if let Ok(mut rd) = LineReader::new(Cursor::new(data)) {
        for _ in 0..MAX_RECORDS {
            match rd.next() {
                Ok(Some(l)) => streamed.push((l.recv_ns, l.payload.to_vec(), l.line)),
                Ok(None) => break,
                Err(e) if e.is_recoverable() => {}
                Err(_) => break,
            }
        }
    }
    if let Ok(c) = LineCapture::from_bytes(data.to_vec()) {
        let mut mem = Vec::new();
        let mut failed = false;
        for r in c.iter().take(MAX_RECORDS) {
            match r {
                Ok(l) => mem.push((l.recv_ns, l.payload.to_vec(), l.line)),
                Err(e) if e.is_recoverable() => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed && mem.len() < MAX_RECORDS && streamed.len() < MAX_RECORDS {
            assert_eq!(
                mem, streamed,
                "line records differ between LineCapture and LineReader"
            );
        }
    }
}

type CryptofeedItem = Result<
    (
        u64,
        u32,
        feeds::capture::RecordKind,
        Option<Vec<u8>>,
        Vec<u8>,
        u64,
    ),
    String,
>;

/// `CryptofeedReader` (streaming) and `CryptofeedCapture` (in memory) read the same records
/// and the same errors, in the same order.
fn cryptofeed_agree(data: &[u8]) {
    use feeds::capture::{CryptofeedCapture, CryptofeedReader};
    let own = |r: feeds::capture::CryptofeedRecord<'_>| {
        (
            r.recv_ns,
            r.conn_id,
            r.kind,
            r.url.map(<[u8]>::to_vec),
            r.payload.to_vec(),
            r.line,
        )
    };
    let mut streamed: Vec<CryptofeedItem> = Vec::new();
    if let Ok(mut rd) = CryptofeedReader::new(Cursor::new(data)) {
        for _ in 0..MAX_RECORDS {
            match rd.next() {
                Ok(Some(r)) => streamed.push(Ok(own(r))),
                Ok(None) => break,
                Err(e) => {
                    let end = !e.is_recoverable();
                    streamed.push(Err(e.to_string()));
                    if end {
                        break;
                    }
                }
            }
        }
    }
    if streamed.len() >= MAX_RECORDS {
        return;
    }
    if let Ok(c) = CryptofeedCapture::from_bytes(data) {
        let mem: Vec<CryptofeedItem> = c
            .iter()
            .map(|r| r.map(own).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(
            mem, streamed,
            "cryptofeed records differ between CryptofeedCapture and CryptofeedReader"
        );
    }
}

/// `feeds::orders::journal::recover_bytes` and `JournalReader` on any bytes: no panic, and the reader
/// ends with a tail state that lies inside the input, after the last record it returned.
pub fn journal_bytes(data: &[u8]) {
    use feeds::orders::journal::{recover_bytes, JournalReader, TailState};
    let _ = recover_bytes(data);
    if let Ok(mut rd) = JournalReader::new(data) {
        let mut last_end = 0u64;
        for e in rd.by_ref().take(MAX_RECORDS) {
            assert!(e.offset >= last_end, "records out of order");
            last_end = e.offset;
        }
        let end = rd.offset();
        assert!(end <= data.len() as u64);
        match rd.tail() {
            Some(TailState::Clean) => {
                assert_eq!(end, data.len() as u64, "clean tail before the end")
            }
            Some(TailState::Torn { offset, bytes }) => {
                assert_eq!(
                    offset + bytes,
                    data.len() as u64,
                    "torn tail does not reach the end"
                )
            }
            Some(TailState::Corrupt { offset }) => assert!(offset < data.len() as u64),
            None => {} // stopped by MAX_RECORDS
        }
    }
}

/// A small reader of fuzzer bytes: each call takes what it needs, zeros once exhausted.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |acc, _| acc << 8 | u64::from(self.u8()))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// A journal built from valid records and torn at any byte recovers every record before the
/// tear: the input chooses up to 32 records (kinds, ids, prices, a trader state) and a tear
/// point; they are written with `JournalWriter` to a temporary file, the file is cut at the
/// tear, and `JournalReader` must return exactly the records that end at or before it (equal
/// to what was written), then a clean or torn tail (never "corrupt"); `recover_bytes` must
/// succeed on it.
pub fn journal_torn(data: &[u8]) {
    use engine::event::{ClientOrderId, OrderRequest, OrderType, Side};
    use feeds::orders::journal::{
        recover_bytes, FsyncPolicy, JournalReader, JournalRecord, JournalWriter, TailState,
    };
    let mut b = Bytes(data);
    let tear = b.u64();
    let n = usize::from(b.u8() % 33);
    let symbols = ["BTCUSDT", "ETHUSDT", "BNBBTC"];
    let mut states: Vec<Vec<u8>> = Vec::new();
    let mut specs = Vec::new();
    for _ in 0..n {
        let kind = b.u8();
        let id = ClientOrderId(b.u64());
        let x = b.u64();
        let ts = b.u64();
        let sym = symbols[usize::from(kind >> 4) % symbols.len()];
        specs.push((kind % 8, id, x, ts, sym));
        if kind % 8 == 5 {
            let len = usize::from(b.u8());
            states.push(b.take(len).to_vec());
        }
    }
    let mut si = 0;
    let mut records = Vec::new();
    for &(k, id, x, ts, sym) in &specs {
        let px = Price((x >> 1) as i64);
        let qty = Qty((x >> 2) as i64);
        records.push(match k {
            0 => JournalRecord::Intent {
                client_id: id,
                symbol: sym,
                req: OrderRequest {
                    side: if x & 1 == 0 { Side::Buy } else { Side::Sell },
                    price: px,
                    qty,
                    order_type: OrderType::LimitGtc,
                },
                ts_ns: ts,
            },
            1 => JournalRecord::Ack {
                client_id: id,
                venue_order_id: x,
                ts_ns: ts,
            },
            2 => JournalRecord::Fill {
                client_id: id,
                trade_id: x,
                price: px,
                qty,
                fee: x as i64,
                ts_ns: ts,
            },
            3 => JournalRecord::Canceled {
                client_id: id,
                leaves: qty,
                ts_ns: ts,
            },
            4 => JournalRecord::Rejected {
                client_id: id,
                code: x as i64,
                ts_ns: ts,
            },
            5 => {
                let state = &states[si];
                si += 1;
                JournalRecord::TraderState {
                    symbol: sym,
                    trader: x as u32,
                    state,
                    ts_ns: ts,
                }
            }
            _ => JournalRecord::NextClientId { next: x },
        });
    }
    let path =
        std::env::temp_dir().join(format!("tickline-fuzz-journal-{}.tlj", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut w = match JournalWriter::open(&path, FsyncPolicy::Never) {
        Ok(w) => w,
        Err(e) => panic!("cannot open a journal in {}: {e}", path.display()),
    };
    let mut written = Vec::new();
    for r in &records {
        if w.append(r).is_ok() {
            written.push(*r);
        }
    }
    drop(w);
    let bytes = std::fs::read(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    // An untorn read returns every record written, and where each ends.
    let mut full = match JournalReader::new(&bytes) {
        Ok(r) => r,
        Err(e) => panic!("a journal just written does not open: {e}"),
    };
    let mut ends = Vec::new();
    while let Some(e) = full.next() {
        assert_eq!(
            Some(&e.record),
            written.get(ends.len()),
            "record {} read back differs",
            ends.len()
        );
        ends.push(full.offset());
    }
    assert_eq!(
        full.tail(),
        Some(TailState::Clean),
        "a journal just written is not clean"
    );
    assert_eq!(ends.len(), written.len(), "records lost without a tear");
    let header_end = JournalReader::new(&bytes).map(|r| r.offset()).unwrap_or(0);
    let cut = if bytes.is_empty() {
        0
    } else {
        (tear % (bytes.len() as u64 + 1)) as usize
    };
    let torn = &bytes[..cut];
    let expect = ends.iter().filter(|&&e| e <= cut as u64).count();
    match JournalReader::new(torn) {
        Ok(mut rd) => {
            let got: Vec<_> = rd.by_ref().map(|e| e.record).collect();
            assert_eq!(
                got.len(),
                expect,
                "torn at {cut} of {}: records before the tear lost",
                bytes.len()
            );
            assert_eq!(
                &got[..],
                &written[..expect],
                "torn at {cut}: records differ"
            );
            match rd.tail() {
                Some(TailState::Clean) => assert!(
                    cut == bytes.len() || ends.contains(&(cut as u64)) || cut as u64 == header_end
                ),
                Some(TailState::Torn {
                    offset,
                    bytes: have,
                }) => {
                    assert_eq!(offset + have, cut as u64, "torn tail offset")
                }
                t => panic!("torn at {cut}: tail {t:?}"),
            }
        }
        Err(e) => panic!("journal torn at {cut} of {} refused: {e}", bytes.len()),
    }
    if let Err(e) = recover_bytes(torn) {
        panic!("recover_bytes on a journal torn at {cut}: {e}");
    }
}

/// The config loader `tools::config::Config::parse` on any UTF-8 text: no panic (a refusal is
/// a plain error message).
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = tools::config::Config::parse(text) {
            let _ = format!("{e:#}");
        }
    }
}

/// The control protocol's line parser, as the server runs it on each line (JSON, then
/// `CtlRequest::from_json`): no panic, and every request it accepts survives `to_json` /
/// `from_json` unchanged. `parse_kv` on the same text: an accepted key is trimmed and non-empty.
pub fn control(data: &[u8]) {
    use tools::control::{parse_kv, CtlRequest};
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Ok(req) = CtlRequest::from_json(&v) {
            assert_eq!(
                CtlRequest::from_json(&req.to_json()),
                Ok(req.clone()),
                "request does not round-trip"
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok((k, v)) = parse_kv(text) {
            assert!(
                !k.is_empty() && k.trim() == k && v.trim() == v,
                "parse_kv({text:?})"
            );
        }
    }
}

/// `feeds::coinbase::market::CoinbaseDecoder::decode` on any bytes, twice (the second pass meets
/// the first one's sequence state: repeats are dropped): no panic, no allocation inside the
/// call, no output on error or when ignored, the returned count equals the events appended,
/// the counters add up, every price and quantity round-trips, and the levels of one message
/// share one numbered id (`update_span` 0), `LAST` on the last only. The ISO-8601 parser gets
/// the raw bytes too.
pub fn coinbase_decode(data: &[u8]) {
    use engine::venue::Venue;
    use feeds::coinbase::market::CoinbaseDecoder;
    use feeds::coinbase::time::parse_iso8601_ns;
    use feeds::venue::MarketDecoder;

    let _ = parse_iso8601_ns(data);
    let mut t = SymbolTable::new();
    for s in ["BTC-USD", "ETH-USD", "SKL-USD", "BAND-GBP"] {
        if t.intern_on(Venue::Coinbase, s).is_err() {
            unreachable!("a valid Coinbase product id");
        }
    }
    let mut d = CoinbaseDecoder::new(t);
    let mut errors = 0;
    for pass in 0..2u64 {
        let mut out = events_room(data);
        let cap = out.capacity();
        let (r, allocs) = counting(|| d.decode(data, 7 + pass, &mut out));
        assert_eq!(allocs, 0, "decode allocated {allocs} times ({r:?})");
        assert_eq!(out.capacity(), cap, "the events Vec grew");
        check_output(&r, &out);
        check_round_trips(&out);
        errors += u64::from(r.is_err());
        let levels =
            |flags: engine::event::LevelFlags| flags.contains(engine::event::LevelFlags::LAST);
        for (i, e) in out.iter().enumerate() {
            assert_eq!(e.recv_ns, 7 + pass, "receive time not stamped");
            let last = i + 1 == out.len();
            match (e.kind, out[0].kind) {
                (EventKind::Depth(l), EventKind::Depth(f)) => {
                    assert_eq!((l.final_update_id, l.update_span), (f.final_update_id, 0));
                    assert_eq!(levels(l.flags), last, "LAST misplaced");
                }
                (EventKind::Snapshot(l), EventKind::Snapshot(f)) => {
                    assert_eq!(l.last_update_id, f.last_update_id);
                    assert_eq!(levels(l.flags), last, "LAST misplaced");
                }
                (EventKind::Trade(_) | EventKind::BookTicker(_), _) => {
                    assert_eq!(out.len(), 1)
                }
                (k, f) => panic!("unexpected events {k:?} after {f:?}"),
            }
        }
    }
    let mut out = Vec::new();
    assert!(d.decode_snapshot(data, SymbolId(0), 9, &mut out).is_err());
    assert!(out.is_empty());
    let st = *MarketDecoder::stats(&d);
    assert_eq!(st.messages, 3);
    assert_eq!(st.decode_errors, errors + 1);
}

/// `BybitDecoder::decode` (spot and linear) and `decode_snapshot` on any bytes: no panic, no
/// allocation inside the call, no output on error or when ignored, the returned count equals
/// the events appended, every event is stamped and belongs to the decoder's venue, a delta
/// level continues from `u - 1` (span 0, `u >= 1`), prices and quantities round-trip, and
/// decoding the same frame again gives the same result (the ticker state only merges).
pub fn bybit_decode(data: &[u8]) {
    use engine::venue::Venue;
    use feeds::bybit::market::BybitDecoder;
    for venue in [Venue::BybitSpot, Venue::BybitLinear] {
        let mut t = SymbolTable::new();
        for s in ["BTCUSDT", "ETHUSDT"] {
            // The other venues' namesakes first: an event of the wrong venue would show.
            assert!(t.intern_on(Venue::Binance, s).is_ok());
            assert!(t.intern_on(venue, s).is_ok());
        }
        let mut d = BybitDecoder::new(venue, t.clone());
        let mut out = events_room(data);
        let cap = out.capacity();
        let (r, allocs) = counting(|| d.decode(data, 7, &mut out));
        assert_eq!(allocs, 0, "decode allocated {allocs} times ({r:?})");
        assert_eq!(out.capacity(), cap, "the events Vec grew");
        check_output(&r, &out);
        check_round_trips(&out);
        for e in &out {
            assert_eq!(e.recv_ns, 7, "receive time not stamped");
            assert_eq!(t.venue(e.symbol), Some(venue), "event of another venue");
            if let EventKind::Depth(l) = e.kind {
                assert_eq!(l.update_span, 0, "a Bybit delta spans one update");
                assert!(l.final_update_id >= 1, "a delta with u = 0");
            }
        }
        let mut again = events_room(data);
        let r2 = d.decode(data, 7, &mut again);
        assert_eq!(r, r2, "a second decode differs");
        assert_eq!(out, again, "a second decode differs");

        let mut none = Vec::new();
        let (s, allocs) = counting(|| d.decode_snapshot(data, SymbolId(1), 9, &mut none));
        assert_eq!(
            allocs, 0,
            "decode_snapshot allocated {allocs} times ({s:?})"
        );
        assert!(
            s.is_err() && none.is_empty(),
            "a REST body was accepted: {s:?}"
        );
        let st = d.stats();
        assert_eq!(st.messages, 3);
        assert_eq!(st.decode_errors, 1 + 2 * u64::from(r.is_err()));
    }
}

/// `BinanceDecoder::usdm` on any bytes: what [`binance_decode`] checks, plus: every event's
/// symbol is a USD-M one (the table also holds the same names on spot), the levels of one
/// depth message share their ids with `first_update_id() <= final_update_id`, and the frame
/// with a space after its opening `{` (same JSON, always the general path) decodes to the same
/// result and events, so USD-M's fast path never decides differently from the general one.
pub fn binance_usdm_decode(data: &[u8]) {
    use engine::venue::Venue;
    let (mut t, _) = table();
    let mut btc = None;
    for s in ["BTCUSDT", "ETHUSDT", "BNBUSDT"] {
        let id = t.intern_on(Venue::BinanceUsdm, s).ok();
        btc = btc.or(id);
    }
    let Some(btc) = btc else {
        unreachable!("a fresh venue interns three symbols")
    };
    let mut d = BinanceDecoder::usdm(t.clone());
    d.set_default_symbol(Some(btc));
    let mut out = events_room(data);
    let cap = out.capacity();
    let (r, allocs) = counting(|| d.decode(data, 7, &mut out));
    assert_eq!(allocs, 0, "decode allocated {allocs} times ({r:?})");
    assert_eq!(out.capacity(), cap, "the events Vec grew");
    check_output(&r, &out);
    check_round_trips(&out);
    for e in &out {
        assert_eq!(e.recv_ns, 7, "receive time not stamped");
        assert_eq!(
            t.venue(e.symbol),
            Some(Venue::BinanceUsdm),
            "a symbol off USD-M"
        );
        if let EventKind::Depth(l) = e.kind {
            assert!(l.first_update_id() <= l.final_update_id);
            assert!(
                out.iter().all(|o| match o.kind {
                    EventKind::Depth(m) =>
                        (m.final_update_id, m.update_span) == (l.final_update_id, l.update_span),
                    _ => false,
                }),
                "one message, one id pair"
            );
        }
    }

    if let [b'{', rest @ ..] = data {
        let mut spaced = Vec::with_capacity(data.len() + 1);
        spaced.extend_from_slice(b"{ ");
        spaced.extend_from_slice(rest);
        let mut general = events_room(&spaced);
        let g = d.decode(&spaced, 7, &mut general);
        match (&r, &g) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a, b, "fast and general paths disagree");
                assert_eq!(out, general, "fast and general paths give different events");
            }
            (Err(_), Err(_)) => {}
            _ => panic!("fast and general paths disagree: {r:?} vs {g:?}"),
        }
    }

    out.clear();
    let (s, allocs) = counting(|| d.decode_snapshot(data, btc, 9, &mut out));
    assert_eq!(
        allocs, 0,
        "decode_snapshot allocated {allocs} times ({s:?})"
    );
    check_output(&s, &out);
    check_round_trips(&out);
    if let Ok(Decoded::Events(_)) = s {
        assert!(
            out.iter()
                .all(|e| matches!(e.kind, EventKind::Snapshot(_)) && e.symbol == btc),
            "a snapshot produced something else than levels of its symbol"
        );
    }
    let st = d.stats();
    let errors = st.decode_errors;
    assert!(st.messages >= 2 && errors <= st.messages);
}
