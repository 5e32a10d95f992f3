//! Helpers shared by Tickline's integration tests and benchmarks.
//!
//! The real captures live in `../shared/data` beside the repository (CI always has it). They are
//! never copied into this repository; tests that need one call [`shared_data`] and, where it is
//! absent, say so plainly and skip.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

/// The Binance spot capture every test and benchmark uses.
pub const BINANCE_SPOT: &str = "binance-spot/btcusdt_20240808.gz";

/// Path of `rel` under `../shared/data` (relative to the workspace root), if it exists.
///
/// `TICKLINE_SHARED_DATA` overrides the directory.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("TICKLINE_SHARED_DATA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    };
    let p = dir.join(rel);
    p.exists().then_some(p)
}

/// Like [`shared_data`], but prints a plain notice when the file is missing.
pub fn shared_data_or_notice(rel: &str) -> Option<PathBuf> {
    let p = shared_data(rel);
    if p.is_none() {
        eprintln!(
            "NOTICE: ../shared/data/{rel} is not present on this machine; this check was skipped"
        );
    }
    p
}

/// Reads a line capture (`<recv_ns> <json>`, gzip or plain) into `(recv_ns, json)` pairs.
///
/// A test helper: it panics on unreadable input, which is what a test wants.
pub fn read_line_capture(path: &std::path::Path) -> Vec<(u64, Vec<u8>)> {
    let mut raw = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut raw))
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let text: Box<dyn Read> = if raw.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(&raw[..]))
    } else {
        Box::new(&raw[..])
    };
    BufReader::new(text)
        .split(b'\n')
        .map(|l| l.expect("read line"))
        .filter(|l| !l.is_empty())
        .map(|l| {
            let sp = l.iter().position(|&b| b == b' ').expect("space in line");
            let ns = std::str::from_utf8(&l[..sp]).unwrap().parse().unwrap();
            (ns, l[sp + 1..].to_vec())
        })
        .collect()
}
