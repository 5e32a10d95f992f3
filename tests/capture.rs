//! Capture formats and the synthetic feed: round trips, torn and corrupt files, live reading, the
//! real Binance capture, and the generator's consistency checked with serde_json.

use engine::fixed::parse_fixed;
use feeds::capture::{
    CaptureError, CaptureFormat, CaptureReader, CaptureWriter, LineCapture, LineFault, LineReader,
    LoadedCapture, ReadOutcome, RecordKind, ReplayReader, TicklineCapture, HEADER_LEN,
    RECORD_HEADER_LEN,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use venue_sim::gen::{
    write_line_capture, write_tickline_capture, FeedGenerator, GenConfig, GenKind,
};

#[global_allocator]
static ALLOC: tools::alloc::CountingAlloc = tools::alloc::CountingAlloc;

/// The allocation counter is process-wide, so the tests of this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "tickline-capture-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const EVERY_KIND: [RecordKind; 8] = [
    RecordKind::TextFrame,
    RecordKind::BinaryFrame,
    RecordKind::Connect,
    RecordKind::Disconnect,
    RecordKind::Subscribe,
    RecordKind::Snapshot,
    RecordKind::Other(0),
    RecordKind::Other(200),
];

/// `(recv_ns, conn_id, kind, payload)` for a small file with every kind.
fn sample_records() -> Vec<(u64, u32, RecordKind, Vec<u8>)> {
    EVERY_KIND
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let payload = match kind {
                RecordKind::Snapshot => {
                    b"BTCUSDT {\"lastUpdateId\":5,\"bids\":[],\"asks\":[]}".to_vec()
                }
                RecordKind::Disconnect => Vec::new(),
                RecordKind::BinaryFrame => (0..=255u8).collect(),
                _ => format!("payload {i} of {kind:?}").into_bytes(),
            };
            (1_000 + i as u64, i as u32 % 3, kind, payload)
        })
        .collect()
}

fn encode(records: &[(u64, u32, RecordKind, Vec<u8>)]) -> (Vec<u8>, Vec<usize>) {
    let mut w = CaptureWriter::with_header(Vec::new(), 7, 0).unwrap();
    let mut ends = Vec::new();
    for (ns, conn, kind, p) in records {
        w.append(*ns, *conn, *kind, p).unwrap();
        ends.push(w.bytes_written() as usize);
    }
    (w.into_inner(), ends)
}

/// Reads until the reader stops giving records; returns the records and how it stopped.
fn drain<R: std::io::Read>(
    r: &mut CaptureReader<R>,
    out: &mut Vec<(u64, u32, RecordKind, Vec<u8>)>,
) -> Result<ReadOutcome<'static>, CaptureError> {
    loop {
        match r.next()? {
            ReadOutcome::Record(rec) => {
                out.push((rec.recv_ns, rec.conn_id, rec.kind, rec.payload.to_vec()))
            }
            ReadOutcome::End => return Ok(ReadOutcome::End),
            ReadOutcome::Incomplete { have, need } => {
                return Ok(ReadOutcome::Incomplete { have, need })
            }
        }
    }
}

#[test]
fn round_trip_every_kind_through_a_file() {
    let _s = serial();
    let recs = sample_records();
    let tmp = TempFile::new("roundtrip.tlc");
    {
        let f = std::io::BufWriter::new(std::fs::File::create(&tmp.0).unwrap());
        let mut w = CaptureWriter::new(f).unwrap();
        for (ns, conn, kind, p) in &recs {
            w.append(*ns, *conn, *kind, p).unwrap();
        }
        // A large payload too.
        w.append(9_999, 9, RecordKind::TextFrame, &vec![b'x'; 3 << 20])
            .unwrap();
        w.flush().unwrap();
    }
    assert_eq!(
        CaptureFormat::detect(&tmp.0).unwrap(),
        CaptureFormat::Tickline
    );

    let mut r = CaptureReader::open(&tmp.0).unwrap();
    let h = *r.header().unwrap();
    assert_eq!(
        (h.version, h.header_len as usize, h.flags),
        (1, HEADER_LEN, 0)
    );
    assert!(
        h.created_ns > 1_600_000_000_000_000_000,
        "wall-clock creation time"
    );
    let mut got = Vec::new();
    assert_eq!(drain(&mut r, &mut got).unwrap(), ReadOutcome::End);
    assert_eq!(got.len(), recs.len() + 1);
    assert_eq!(got[..recs.len()], recs[..]);
    assert_eq!(got[recs.len()].3.len(), 3 << 20);

    // The in-memory form and the replay reader agree.
    let mem = TicklineCapture::open(&tmp.0).unwrap();
    let mem_recs: Vec<_> = mem
        .iter()
        .map(|r| r.map(|r| (r.recv_ns, r.conn_id, r.kind, r.payload.to_vec())))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(mem_recs, got);

    let mut rr = ReplayReader::open(&tmp.0).unwrap();
    assert_eq!(rr.format(), CaptureFormat::Tickline);
    let mut n = 0;
    while let Some(rec) = rr.next().unwrap() {
        let (ns, conn, kind, payload) = &got[n];
        assert_eq!((rec.recv_ns, rec.conn_id, rec.kind), (*ns, *conn, *kind));
        if *kind == RecordKind::Snapshot {
            assert_eq!(rec.symbol, Some(&b"BTCUSDT"[..]));
            assert_eq!(rec.payload, &payload[8..]);
        } else {
            assert_eq!(rec.symbol, None);
            assert_eq!(rec.payload, &payload[..]);
        }
        n += 1;
    }
    assert_eq!(n, got.len());
}

#[test]
fn torn_last_record_at_every_truncation_point() {
    let _s = serial();
    let recs = sample_records();
    let (bytes, ends) = encode(&recs);
    for cut in 0..=bytes.len() {
        let complete = ends.iter().filter(|&&e| e <= cut).count();
        let at_boundary = cut == HEADER_LEN || ends.contains(&cut);
        let mut r = CaptureReader::new(Cursor::new(bytes[..cut].to_vec()))
            .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let mut got = Vec::new();
        let stop = drain(&mut r, &mut got).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!(got[..], recs[..complete], "cut {cut}");
        match stop {
            ReadOutcome::End => assert!(at_boundary, "cut {cut}: End inside a record"),
            ReadOutcome::Incomplete { have, need } => {
                assert!(!at_boundary, "cut {cut}: Incomplete at a boundary");
                assert!(
                    have < need && have > 0 || cut == 0,
                    "cut {cut}: {have}/{need}"
                );
                let start = if cut < HEADER_LEN {
                    0
                } else {
                    *ends
                        .iter()
                        .rev()
                        .find(|&&e| e <= cut)
                        .unwrap_or(&HEADER_LEN)
                };
                assert_eq!(have, cut - start, "cut {cut}");
            }
            ReadOutcome::Record(_) => unreachable!(),
        }
        // Asking again changes nothing.
        let again = drain(&mut r, &mut got).unwrap();
        assert_eq!(again, stop, "cut {cut}");
        assert_eq!(got.len(), complete, "cut {cut}");

        // In memory, a torn tail is one Truncated after the complete records.
        if cut >= HEADER_LEN {
            let mem = TicklineCapture::from_bytes(bytes[..cut].to_vec()).unwrap();
            let items: Vec<_> = mem.iter().collect();
            assert_eq!(items.iter().filter(|i| i.is_ok()).count(), complete);
            let errs: Vec<_> = items.iter().filter_map(|i| i.as_ref().err()).collect();
            if at_boundary {
                assert!(errs.is_empty(), "cut {cut}");
            } else {
                assert_eq!(errs.len(), 1, "cut {cut}");
                assert!(
                    matches!(errs[0], CaptureError::Truncated { .. }),
                    "cut {cut}"
                );
            }
        }
    }
}

#[test]
fn reading_continues_as_a_writer_appends() {
    let _s = serial();
    let recs = sample_records();
    let (bytes, ends) = encode(&recs);
    let tmp = TempFile::new("live.tlc");
    let mut f = std::fs::File::create(&tmp.0).unwrap();

    // Nothing written yet: the header is incomplete, not an error.
    let mut r = CaptureReader::open(&tmp.0).unwrap();
    assert_eq!(
        r.next().unwrap(),
        ReadOutcome::Incomplete { have: 0, need: 32 }
    );

    // Write half (ending inside a record), read to Incomplete.
    let half = bytes.len() / 2;
    assert!(!ends.contains(&half));
    f.write_all(&bytes[..half]).unwrap();
    let mut got = Vec::new();
    assert!(matches!(
        drain(&mut r, &mut got).unwrap(),
        ReadOutcome::Incomplete { .. }
    ));
    let first = got.len();
    assert!(first > 0 && first < recs.len());

    // A few bytes more, still incomplete; then the rest.
    f.write_all(&bytes[half..half + 3]).unwrap();
    assert!(matches!(
        drain(&mut r, &mut got).unwrap(),
        ReadOutcome::Incomplete { .. }
    ));
    f.write_all(&bytes[half + 3..]).unwrap();
    assert_eq!(drain(&mut r, &mut got).unwrap(), ReadOutcome::End);
    assert_eq!(got, recs);

    // Appending through a CaptureWriter works the same way: read to End, append, continue.
    let tmp2 = TempFile::new("live2.tlc");
    let mut w = CaptureWriter::new(std::fs::File::create(&tmp2.0).unwrap()).unwrap();
    let mut r = CaptureReader::open(&tmp2.0).unwrap();
    let mut got = Vec::new();
    for (i, (ns, conn, kind, p)) in recs.iter().enumerate() {
        assert_eq!(drain(&mut r, &mut got).unwrap(), ReadOutcome::End);
        assert_eq!(got.len(), i);
        w.append(*ns, *conn, *kind, p).unwrap();
    }
    assert_eq!(drain(&mut r, &mut got).unwrap(), ReadOutcome::End);
    assert_eq!(got, recs);
}

#[test]
fn reading_alongside_a_writer_thread() {
    let _s = serial();
    const N: u64 = 2_000;
    let tmp = TempFile::new("threaded.tlc");
    let file = std::fs::File::create(&tmp.0).unwrap();
    let writer = std::thread::spawn(move || {
        // Unbuffered: each record is two writes, so the reader does see torn records.
        let mut w = CaptureWriter::new(file).unwrap();
        for i in 0..N {
            let payload = format!(
                "{{\"frame\":{i},\"pad\":\"{}\"}}",
                "z".repeat((i % 97) as usize)
            );
            w.append(i, 1, RecordKind::TextFrame, payload.as_bytes())
                .unwrap();
        }
    });
    let mut r = CaptureReader::open(&tmp.0).unwrap();
    let mut next = 0u64;
    let mut incomplete = 0u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while next < N {
        assert!(
            std::time::Instant::now() < deadline,
            "reader stalled at {next}"
        );
        match r.next().unwrap() {
            ReadOutcome::Record(rec) => {
                assert_eq!(rec.recv_ns, next);
                let want = format!("{{\"frame\":{next},");
                assert!(rec.payload.starts_with(want.as_bytes()));
                next += 1;
            }
            ReadOutcome::Incomplete { .. } => {
                incomplete += 1;
                std::thread::yield_now();
            }
            ReadOutcome::End => std::thread::yield_now(),
        }
    }
    writer.join().unwrap();
    assert_eq!(r.next().unwrap(), ReadOutcome::End);
    eprintln!("read {N} records alongside the writer; {incomplete} incomplete reads on the way");
}

#[test]
fn every_corrupted_byte_is_caught() {
    let _s = serial();
    let recs = sample_records();
    let (bytes, ends) = encode(&recs);
    let starts: Vec<usize> = std::iter::once(HEADER_LEN)
        .chain(ends.iter().copied())
        .collect();
    for pos in HEADER_LEN..bytes.len() {
        let rec = starts.iter().rposition(|&s| s <= pos).unwrap();
        let rec_start = starts[rec];
        for flip in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[pos] ^= flip;
            let mut r = CaptureReader::new(Cursor::new(bad)).unwrap();
            let mut got = Vec::new();
            let res = drain(&mut r, &mut got);
            assert_eq!(got[..], recs[..rec], "byte {pos}");
            match res {
                Err(CaptureError::Corrupt { offset }) => {
                    assert_eq!(offset, rec_start as u64, "byte {pos}")
                }
                // A length made larger waits for bytes that never come: indistinguishable
                // from a torn record, and documented so.
                Ok(ReadOutcome::Incomplete { .. }) => {
                    assert!(
                        pos < rec_start + 4,
                        "byte {pos}: Incomplete outside a length"
                    )
                }
                other => panic!("byte {pos} flip {flip:#x}: {other:?}"),
            }
        }
    }
    // The replay reader reports the corruption once, then ends (a loop that counts errors and
    // carries on still finishes); the in-memory iterator does the same.
    let tmp = TempFile::new("corrupt.tlc");
    let mut bad = bytes.clone();
    bad[ends[1] + RECORD_HEADER_LEN] ^= 0x10; // first payload byte of the 3rd record
    std::fs::write(&tmp.0, &bad).unwrap();
    let mut rr = ReplayReader::open(&tmp.0).unwrap();
    let (mut ok, mut errs) = (0, Vec::new());
    loop {
        match rr.next() {
            Ok(Some(_)) => ok += 1,
            Ok(None) => break,
            Err(e) => errs.push(e.to_string()),
        }
    }
    assert_eq!(ok, 2);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains(&format!("byte offset {}", ends[1])),
        "{}",
        errs[0]
    );
    let mem = LoadedCapture::from_bytes(bad).unwrap();
    let items: Vec<_> = mem.records().collect();
    assert_eq!(items.len(), 3);
    assert!(matches!(items[2], Err(CaptureError::Corrupt { offset }) if offset == ends[1] as u64));

    // Header bytes: bad magic, a version we cannot read, or a header CRC mismatch.
    for pos in 0..HEADER_LEN {
        let mut bad = bytes.clone();
        bad[pos] ^= 0x01;
        match CaptureReader::new(Cursor::new(bad)) {
            Err(CaptureError::BadMagic) => assert!(pos < 8),
            Err(CaptureError::UnsupportedVersion(_)) => assert!((8..10).contains(&pos)),
            Err(CaptureError::Corrupt { offset: 0 }) => assert!(pos >= 10),
            other => panic!("header byte {pos}: {other:?}"),
        }
    }
}

#[test]
fn bad_magic_and_version() {
    let _s = serial();
    let (good, _) = encode(&sample_records());
    let tmp = TempFile::new("bad.tlc");

    let mut bad = good.clone();
    bad[0] = b'1';
    std::fs::write(&tmp.0, &bad).unwrap();
    assert!(matches!(
        CaptureReader::open(&tmp.0),
        Err(CaptureError::BadMagic)
    ));
    // Not our magic, so the detector calls it a line capture.
    assert_eq!(CaptureFormat::detect(&tmp.0).unwrap(), CaptureFormat::Line);

    let mut v9 = good.clone();
    v9[8..10].copy_from_slice(&9u16.to_le_bytes());
    std::fs::write(&tmp.0, &v9).unwrap();
    assert_eq!(
        CaptureFormat::detect(&tmp.0).unwrap(),
        CaptureFormat::Tickline
    );
    let e = CaptureReader::open(&tmp.0).unwrap_err();
    assert!(matches!(e, CaptureError::UnsupportedVersion(9)));
    assert!(e.to_string().contains("version 9"));
    assert!(matches!(
        ReplayReader::open(&tmp.0),
        Err(CaptureError::UnsupportedVersion(9))
    ));
    assert!(matches!(
        LoadedCapture::from_bytes(v9),
        Err(CaptureError::UnsupportedVersion(9))
    ));
}

#[test]
fn line_reader_reads_the_real_capture() {
    let _s = serial();
    let Some(path) = testkit::shared_data_or_notice(testkit::BINANCE_SPOT) else {
        return;
    };
    assert_eq!(CaptureFormat::detect(&path).unwrap(), CaptureFormat::Line);
    let reference = testkit::read_line_capture(&path);
    assert_eq!(reference.len(), 41_249);

    let mut r = LineReader::open(&path).unwrap();
    assert!(r.is_gzip());
    let mut n = 0;
    while let Some(rec) = r.next().unwrap() {
        let (ns, payload) = &reference[n];
        assert_eq!(
            (rec.recv_ns, rec.payload),
            (*ns, &payload[..]),
            "line {}",
            rec.line
        );
        n += 1;
    }
    assert_eq!(n, 41_249);
    assert_eq!(r.line_number(), 41_249);

    let mem = LineCapture::open(&path).unwrap();
    assert_eq!(mem.iter().filter(|r| r.is_ok()).count(), 41_249);

    // As replay sees it: one snapshot, and the stream mix SOURCES.md gives.
    let mut rr = ReplayReader::open(&path).unwrap();
    let (mut snapshots, mut tickers, mut trades, mut depth) = (0, 0, 0, 0);
    while let Some(rec) = rr.next().unwrap() {
        let p = rec.payload;
        let has = |s: &[u8]| p.windows(s.len()).take(64).any(|w| w == s);
        match rec.kind {
            RecordKind::Snapshot => snapshots += 1,
            _ if has(b"@bookTicker\"") => tickers += 1,
            _ if has(b"@trade\"") => trades += 1,
            _ if has(b"@depth@100ms\"") => depth += 1,
            k => panic!("unexpected {k:?}"),
        }
    }
    assert_eq!(
        (snapshots, tickers, trades, depth),
        (1, 28_040, 9_757, 3_451)
    );
}

#[test]
fn malformed_lines_are_reported_and_reading_continues() {
    let _s = serial();
    let text = "1 {\"a\":1}\r\n\
                garbage-without-space\n\
                \n\
                12x3 {\"b\":2}\n\
                2 {\"c\":3}\n\
                99999999999999999999999 {}\n\
                3 \n\
                4 {\"d\":4}";
    let tmp = TempFile::new("malformed.txt");
    let tmpgz = TempFile::new("malformed.gz");
    std::fs::write(&tmp.0, text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(&tmpgz.0, gz.finish().unwrap()).unwrap();

    for path in [&tmp.0, &tmpgz.0] {
        let mut r = LineReader::open(path).unwrap();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        loop {
            match r.next() {
                Ok(Some(rec)) => good.push((rec.line, rec.recv_ns)),
                Ok(None) => break,
                Err(CaptureError::BadLine { line, fault }) => bad.push((line, fault)),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(good, [(1, 1), (5, 2), (8, 4)]);
        assert_eq!(
            bad,
            [
                (2, LineFault::NoSpace),
                (4, LineFault::BadTimestamp),
                (6, LineFault::BadTimestamp),
                (7, LineFault::EmptyPayload),
            ]
        );
        // The replay reader reports the same errors and carries on.
        let mut rr = ReplayReader::open(path).unwrap();
        let (mut ok, mut errs) = (0, 0);
        loop {
            match rr.next() {
                Ok(Some(_)) => ok += 1,
                Ok(None) => break,
                Err(e) => {
                    assert!(e.to_string().starts_with("malformed line "), "{e}");
                    errs += 1
                }
            }
        }
        assert_eq!((ok, errs), (3, 4));
    }
}

fn gen_cfg(symbols: &[&str], events: u64, seed: u64) -> GenConfig {
    GenConfig {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        events,
        seed,
        start_ns: 1_723_161_253_937_085_768,
    }
}

#[test]
fn generator_is_deterministic() {
    let _s = serial();
    let line = |seed| {
        let mut out = Vec::new();
        write_line_capture(&gen_cfg(&["BTCUSDT"], 5_000, seed), &mut out).unwrap();
        out
    };
    let tlc = |seed| {
        let mut out = Vec::new();
        write_tickline_capture(
            &gen_cfg(&["BTCUSDT", "ETHUSDT", "SOLUSDT"], 5_000, seed),
            &mut out,
        )
        .unwrap();
        out
    };
    assert_eq!(line(42), line(42));
    assert_ne!(line(42), line(43));
    assert_eq!(tlc(42), tlc(42));
    assert_ne!(tlc(42), tlc(43));
    assert_eq!(
        LineCapture::from_bytes(line(1)).unwrap().iter().count(),
        5_001
    );
}

/// A book rebuilt from the generated JSON alone, as a consumer would.
#[derive(Default)]
struct Consumer {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    snapshot_id: Option<u64>,
    last_u: Option<u64>,
    last_trade: Option<u64>,
    last_e: u64,
    counts: [u64; 4],
}

fn fixed8(v: &Value) -> i64 {
    let s = v.as_str().expect("decimal string");
    let (_, frac) = s.split_once('.').expect("decimal point");
    assert_eq!(frac.len(), 8, "{s}: Binance sends 8 decimals");
    parse_fixed(s.as_bytes()).expect("decimal")
}

fn u(v: &Value) -> u64 {
    v.as_u64().expect("unsigned integer")
}

impl Consumer {
    fn best_bid(&self) -> i64 {
        *self.bids.keys().next_back().expect("bids")
    }
    fn best_ask(&self) -> i64 {
        *self.asks.keys().next().expect("asks")
    }

    fn apply(book: &mut BTreeMap<i64, i64>, levels: &Value) {
        for l in levels.as_array().expect("levels") {
            let (p, q) = (fixed8(&l[0]), fixed8(&l[1]));
            assert!(p > 0 && p % 1_000_000 == 0, "price on the 0.01 tick");
            if q == 0 {
                book.remove(&p);
            } else {
                book.insert(p, q);
            }
        }
    }

    fn snapshot(&mut self, body: &Value) {
        assert!(self.snapshot_id.is_none(), "one snapshot per symbol");
        self.snapshot_id = Some(u(&body["lastUpdateId"]));
        let bids = body["bids"].as_array().unwrap();
        let asks = body["asks"].as_array().unwrap();
        assert!((40..=60).contains(&bids.len()) && (40..=60).contains(&asks.len()));
        let bp: Vec<i64> = bids.iter().map(|l| fixed8(&l[0])).collect();
        let ap: Vec<i64> = asks.iter().map(|l| fixed8(&l[0])).collect();
        assert!(bp.windows(2).all(|w| w[0] > w[1]), "bids best first");
        assert!(ap.windows(2).all(|w| w[0] < w[1]), "asks best first");
        Self::apply(&mut self.bids, &body["bids"]);
        Self::apply(&mut self.asks, &body["asks"]);
        assert!(self.best_bid() < self.best_ask());
        self.counts[0] += 1;
    }

    fn frame(&mut self, sym: &str, stream: &str, d: &Value) -> GenKind {
        let snap = self
            .snapshot_id
            .expect("a frame before the symbol's snapshot");
        assert_eq!(d["s"], sym);
        let lower = sym.to_ascii_lowercase();
        let kind = if stream == format!("{lower}@depth@100ms") {
            assert_eq!(d["e"], "depthUpdate");
            let (first, last) = (u(&d["U"]), u(&d["u"]));
            assert!(first <= last);
            match self.last_u {
                None => {
                    // Binance's rule for the first diff applied: U <= lastUpdateId + 1 <= u.
                    let next = snap + 1;
                    assert!(first <= next && next <= last, "first diff bridges");
                }
                Some(prev) => assert_eq!(first, prev + 1, "U = previous u + 1"),
            }
            self.last_u = Some(last);
            let bp: Vec<i64> = d["b"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| fixed8(&l[0]))
                .collect();
            let ap: Vec<i64> = d["a"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| fixed8(&l[0]))
                .collect();
            assert!(bp.windows(2).all(|w| w[0] > w[1]) && ap.windows(2).all(|w| w[0] < w[1]));
            assert!(!bp.is_empty() || !ap.is_empty());
            Self::apply(&mut self.bids, &d["b"]);
            Self::apply(&mut self.asks, &d["a"]);
            assert!(self.best_bid() < self.best_ask(), "book crossed");
            self.check_e(u(&d["E"]));
            self.counts[1] += 1;
            GenKind::Depth
        } else if stream == format!("{lower}@bookTicker") {
            assert_eq!(u(&d["u"]), self.last_u.unwrap_or(snap));
            let (b, a) = (self.best_bid(), self.best_ask());
            assert_eq!(fixed8(&d["b"]), b);
            assert_eq!(fixed8(&d["B"]), self.bids[&b]);
            assert_eq!(fixed8(&d["a"]), a);
            assert_eq!(fixed8(&d["A"]), self.asks[&a]);
            self.counts[2] += 1;
            GenKind::BookTicker
        } else if stream == format!("{lower}@trade") {
            assert_eq!(d["e"], "trade");
            let t = u(&d["t"]);
            if let Some(prev) = self.last_trade {
                assert!(t > prev, "trade ids increase");
            }
            self.last_trade = Some(t);
            let p = fixed8(&d["p"]);
            assert!(
                self.best_bid() <= p && p <= self.best_ask(),
                "trade inside the spread"
            );
            assert!(fixed8(&d["q"]) > 0);
            let e = u(&d["E"]);
            assert!(u(&d["T"]) <= e);
            assert!(d["m"].is_boolean());
            assert_eq!(d["M"], true);
            self.check_e(e);
            self.counts[3] += 1;
            GenKind::Trade
        } else {
            panic!("unexpected stream {stream}");
        };
        kind
    }

    fn check_e(&mut self, e: u64) {
        assert!(e >= self.last_e, "exchange time goes forwards");
        self.last_e = e;
    }
}

/// Checks a whole generated feed; `frames` yields `(recv_ns, snapshot symbol, json)`.
fn check_feed<'a>(
    symbols: &[&str],
    frames: impl Iterator<Item = (u64, Option<String>, Vec<u8>, Option<GenKind>)> + 'a,
) -> Vec<[u64; 4]> {
    let mut books: Vec<Consumer> = symbols.iter().map(|_| Consumer::default()).collect();
    let mut last_recv = None;
    for (recv_ns, snap_sym, json, kind) in frames {
        if let Some(prev) = last_recv {
            assert!(recv_ns > prev, "recv_ns strictly increasing");
        }
        last_recv = Some(recv_ns);
        let v: Value = serde_json::from_slice(&json).expect("valid JSON");
        match snap_sym {
            Some(sym) => {
                let i = symbols
                    .iter()
                    .position(|s| *s == sym)
                    .expect("known symbol");
                books[i].snapshot(&v);
                assert!(kind.is_none() || kind == Some(GenKind::Snapshot));
            }
            None => {
                let sym = v["data"]["s"].as_str().expect("data.s");
                let i = symbols
                    .iter()
                    .position(|s| *s == sym)
                    .expect("known symbol");
                let stream = v["stream"].as_str().expect("stream");
                let got = books[i].frame(sym, stream, &v["data"]);
                assert!(kind.is_none() || kind == Some(got));
            }
        }
    }
    books.iter().map(|b| b.counts).collect()
}

#[test]
fn generated_feed_is_consistent_in_memory() {
    let _s = serial();
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
    let mut g = FeedGenerator::new(gen_cfg(&symbols, 60_000, 11)).unwrap();
    let mut buf = Vec::new();
    let names: Vec<String> = (0..3)
        .map(|i| g.symbol_name(i).unwrap().to_string())
        .collect();
    let frames = std::iter::from_fn(move || {
        let f = g.next_frame(&mut buf)?;
        let sym = (f.kind == GenKind::Snapshot).then(|| names[f.symbol].clone());
        Some((f.recv_ns, sym, buf.clone(), Some(f.kind)))
    });
    let counts = check_feed(&symbols, frames);
    let total: u64 = counts.iter().flat_map(|c| c[1..].iter()).sum();
    assert_eq!(total, 60_000);
    for c in &counts {
        assert_eq!(c[0], 1);
        // A real mix of diffs, tickers and trades for every symbol.
        assert!(c[1..].iter().all(|&n| n > 2_000), "{counts:?}");
    }
    eprintln!("per symbol [snapshot, depth, bookTicker, trade]: {counts:?}");
}

#[test]
fn generated_tickline_capture_is_consistent() {
    let _s = serial();
    let symbols = ["BTCUSDT", "ETHUSDT"];
    let tmp = TempFile::new("gen.tlc");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp.0).unwrap());
    let n = write_tickline_capture(&gen_cfg(&symbols, 20_000, 5), &mut f).unwrap();
    drop(f);
    assert_eq!(n, 20_002);
    let mut r = ReplayReader::open(&tmp.0).unwrap();
    let mut frames = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        let sym = rec.symbol.map(|s| String::from_utf8(s.to_vec()).unwrap());
        assert_eq!(sym.is_some(), rec.kind == RecordKind::Snapshot);
        if rec.kind != RecordKind::Snapshot {
            assert_eq!(rec.kind, RecordKind::TextFrame);
        }
        frames.push((rec.recv_ns, sym, rec.payload.to_vec(), None));
    }
    assert_eq!(frames.len(), 20_002);
    check_feed(&symbols, frames.into_iter());

    // The line capture of one symbol checks out the same way.
    let mut out = Vec::new();
    write_line_capture(&gen_cfg(&["BNBUSDT"], 20_000, 5), &mut out).unwrap();
    let cap = LoadedCapture::from_bytes(out).unwrap();
    let frames: Vec<_> = cap
        .records()
        .map(|r| {
            let r = r.unwrap();
            let sym = (r.kind == RecordKind::Snapshot).then(|| "BNBUSDT".to_string());
            (r.recv_ns, sym, r.payload.to_vec(), None)
        })
        .collect();
    check_feed(&["BNBUSDT"], frames.into_iter());
}

#[test]
fn steady_state_reading_and_generating_do_not_allocate() {
    let _s = serial();
    let allocs = tools::alloc::allocations;

    // Generator: warm up, then a long run with no allocation.
    let mut g = FeedGenerator::new(gen_cfg(&["BTCUSDT", "ETHUSDT"], 200_000, 3)).unwrap();
    let mut buf = Vec::with_capacity(1 << 16);
    for _ in 0..20_000 {
        g.next_frame(&mut buf).unwrap();
    }
    let before = allocs();
    let mut frames = 0u64;
    while g.next_frame(&mut buf).is_some() {
        frames += 1;
    }
    assert_eq!(
        allocs() - before,
        0,
        "generator allocated over {frames} frames"
    );

    // A line capture of it, plain and gzip, through the streaming reader.
    let mut plain = Vec::new();
    write_line_capture(&gen_cfg(&["BTCUSDT"], 100_000, 3), &mut plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    for bytes in [&plain, &gz] {
        let mut r = LineReader::new(Cursor::new(bytes)).unwrap();
        for _ in 0..1_000 {
            r.next().unwrap().unwrap();
        }
        let before = allocs();
        let mut n = 0u64;
        while let Some(rec) = r.next().unwrap() {
            n += rec.payload.len() as u64 & 1;
        }
        assert_eq!(allocs() - before, 0, "line reader allocated ({n})");
    }

    // The in-memory iterator.
    let mem = LineCapture::from_bytes(plain).unwrap();
    let before = allocs();
    let lines = mem.iter().filter(|r| r.is_ok()).count();
    assert_eq!(allocs() - before, 0);
    assert_eq!(lines, 100_001);

    // The .tlc reader.
    let mut tlc = Vec::new();
    write_tickline_capture(&gen_cfg(&["BTCUSDT", "ETHUSDT"], 100_000, 3), &mut tlc).unwrap();
    let mut r = CaptureReader::new(Cursor::new(&tlc)).unwrap();
    for _ in 0..1_000 {
        assert!(matches!(r.next().unwrap(), ReadOutcome::Record(_)));
    }
    let before = allocs();
    let mut n = 1_000u64;
    while let ReadOutcome::Record(_) = r.next().unwrap() {
        n += 1;
    }
    assert_eq!(allocs() - before, 0, "tlc reader allocated");
    assert_eq!(n, 100_002);
    let mem = TicklineCapture::from_bytes(tlc).unwrap();
    let before = allocs();
    assert_eq!(mem.iter().filter(|r| r.is_ok()).count(), 100_002);
    assert_eq!(allocs() - before, 0);
}
