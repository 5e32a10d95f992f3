//! The cryptofeed readers on the real captures in `../shared/data/cryptofeed` (skipped with a
//! NOTICE when absent): every line is read as one record, none is an error, and the counts of
//! each kind match what the raw text says.

use engine::venue::Venue;
use feeds::capture::{
    CaptureFormat, CryptofeedReader, CryptofeedVersion, LoadedCapture, RecordKind, ReplayReader,
};
use feeds::venue::{rest_snapshot_symbol, venue_of_url};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

fn data(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/cryptofeed"
    ))
    .join(name);
    if p.exists() {
        Some(p)
    } else {
        println!("NOTICE: {} absent; skipped", p.display());
        None
    }
}

/// The raw text of a capture (decompressed with ruzstd's own streaming decoder if zstd).
fn raw_text(path: &PathBuf) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&feeds::capture::ZSTD_MAGIC) {
        let mut out = Vec::new();
        ruzstd::decoding::StreamingDecoder::new(&bytes[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    }
}

fn non_empty_lines(text: &[u8]) -> Vec<&[u8]> {
    text.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect()
}

/// Reads every record; returns (kind counts, records per conn, errors, last line number).
fn read(path: &PathBuf) -> (BTreeMap<String, usize>, BTreeMap<u32, usize>, Vec<String>) {
    let mut r = CryptofeedReader::open(path).unwrap();
    let (mut kinds, mut conns, mut errs) = (BTreeMap::new(), BTreeMap::new(), Vec::new());
    loop {
        match r.next() {
            Ok(Some(rec)) => {
                *kinds.entry(format!("{:?}", rec.kind)).or_insert(0) += 1;
                *conns.entry(rec.conn_id).or_insert(0) += 1;
                assert!(!rec.payload.is_empty() || rec.kind == RecordKind::Disconnect);
            }
            Ok(None) => break,
            Err(e) => errs.push(e.to_string()),
        }
    }
    (kinds, conns, errs)
}

#[test]
fn v1_captures_read_every_line() {
    for name in ["BINANCE-ee25be.0", "COINBASE.ws.28.0", "OKX.ws.1.0"] {
        let Some(path) = data(name) else { continue };
        assert_eq!(
            CaptureFormat::detect(&path).unwrap(),
            CaptureFormat::CryptofeedV1,
            "{name}"
        );
        let text = raw_text(&path);
        let lines = non_empty_lines(&text);
        let count = |pred: &dyn Fn(&[u8]) -> bool| lines.iter().filter(|l| pred(l)).count();
        let connects = count(&|l| l.windows(5).any(|w| w == b" <-> "));
        let sent = count(&|l| !l[0].is_ascii_digit() && l.windows(4).any(|w| w == b" <- "));
        let rest = count(&|l| !l[0].is_ascii_digit() && l.windows(4).any(|w| w == b" -> "));
        let frames = count(&|l| l[0].is_ascii_digit());
        assert_eq!(connects + sent + rest + frames, lines.len(), "{name}");
        let (kinds, conns, errs) = read(&path);
        assert!(errs.is_empty(), "{name}: {errs:?}");
        let got = |k: &str| kinds.get(k).copied().unwrap_or(0);
        assert_eq!(got("Connect"), connects, "{name}");
        assert_eq!(got("Subscribe"), sent, "{name}");
        assert_eq!(got("Rest"), rest, "{name}");
        assert_eq!(got("TextFrame"), frames, "{name}");
        assert_eq!(kinds.values().sum::<usize>(), lines.len(), "{name}");
        // One connection in each of these files; REST responses are on connection 0.
        assert_eq!(conns.keys().copied().max(), Some(1), "{name}");
        assert_eq!(conns.get(&0).copied().unwrap_or(0), rest, "{name}");
        // The in-memory reader and the replay reader see the same number of records.
        let loaded = LoadedCapture::open(&path).unwrap();
        assert_eq!(loaded.format(), CaptureFormat::CryptofeedV1);
        assert_eq!(loaded.records().filter(Result::is_ok).count(), lines.len());
        let mut rr = ReplayReader::open(&path).unwrap();
        let mut n = 0;
        while let Some(rec) = rr.next().unwrap() {
            if rec.kind == RecordKind::Rest {
                assert!(rec.url().is_some());
            }
            n += 1;
        }
        assert_eq!(n, lines.len(), "{name}");
    }
}

#[test]
fn v1_venues_and_rest_snapshots() {
    let want = [
        ("BINANCE-ee25be.0", Venue::Binance),
        ("COINBASE.ws.28.0", Venue::Coinbase),
        ("OKX.ws.1.0", Venue::Okx),
    ];
    for (name, venue) in want {
        let Some(path) = data(name) else { continue };
        let mut r = ReplayReader::open(&path).unwrap();
        let mut snapshots = Vec::new();
        let mut venues = Vec::new();
        while let Some(rec) = r.next().unwrap() {
            match rec.kind {
                RecordKind::Connect => {
                    venues.push(venue_of_url(std::str::from_utf8(rec.payload).unwrap()))
                }
                RecordKind::Rest => {
                    let url = std::str::from_utf8(rec.url().unwrap()).unwrap();
                    assert_eq!(venue_of_url(url), Some(venue));
                    snapshots.push(rest_snapshot_symbol(url).map(str::to_owned));
                    assert!(rec.payload.starts_with(b"{\"lastUpdateId\""));
                }
                _ => {}
            }
        }
        assert_eq!(venues, [Some(venue)], "{name}");
        if venue == Venue::Binance {
            let mut s: Vec<_> = snapshots.into_iter().map(Option::unwrap).collect();
            s.sort();
            assert_eq!(s, ["BTCUSDT", "DOTUSDT", "ETHUSDT"]);
        } else {
            assert!(snapshots.is_empty());
        }
    }
}

#[test]
fn v3_zstd_capture_reads_every_line_with_a_venue_per_connection() {
    let Some(path) = data("BYBIT.jsonl.zst") else {
        return;
    };
    assert_eq!(
        CaptureFormat::detect(&path).unwrap(),
        CaptureFormat::CryptofeedV3
    );
    let text = raw_text(&path);
    let lines = non_empty_lines(&text);
    let count = |t: &str| {
        let tag = format!("{{\"t\":\"{t}\"");
        lines
            .iter()
            .filter(|l| l.starts_with(tag.as_bytes()))
            .count()
    };
    let (kinds, _conns, errs) = read(&path);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(kinds.values().sum::<usize>(), lines.len());
    assert_eq!(kinds.get("TextFrame").copied(), Some(count("recv")));
    assert_eq!(kinds.get("Subscribe").copied(), Some(count("send")));
    assert_eq!(kinds.get("Connect").copied(), Some(count("connect")));
    assert_eq!(kinds.get("Rest").copied(), Some(count("http")));
    assert_eq!(kinds.get("Meta").copied(), Some(count("header")));

    // Each websocket connection's venue comes from its connect record; frames are raw JSON.
    let mut r = CryptofeedReader::open(&path).unwrap();
    assert!(r.is_zstd());
    assert_eq!(r.version(), CryptofeedVersion::V3);
    let mut venue_of_conn = BTreeMap::new();
    let mut frames_per_venue = BTreeMap::new();
    while let Some(rec) = r.next().unwrap() {
        match rec.kind {
            RecordKind::Connect => {
                let v = venue_of_url(std::str::from_utf8(rec.payload).unwrap()).unwrap();
                venue_of_conn.insert(rec.conn_id, v);
            }
            RecordKind::TextFrame => {
                assert!(rec.payload.starts_with(b"{"), "line {}", rec.line);
                assert!(rec.recv_ns > 1_700_000_000_000_000_000);
                let v = venue_of_conn[&rec.conn_id];
                *frames_per_venue.entry(v.name()).or_insert(0usize) += 1;
            }
            _ => {}
        }
    }
    let mut vs: Vec<_> = venue_of_conn.values().copied().collect();
    vs.sort();
    assert_eq!(vs, [Venue::BybitSpot, Venue::BybitLinear]);
    assert_eq!(
        frames_per_venue.values().sum::<usize>(),
        count("recv"),
        "{frames_per_venue:?}"
    );
    assert!(frames_per_venue.len() == 2, "{frames_per_venue:?}");
}
