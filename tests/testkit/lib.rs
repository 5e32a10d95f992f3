//! Helpers shared by Tickline's integration tests and benchmarks.
//!
//! The real captures live in `../shared/data` beside the repository (CI always has it). They are
//! never copied into this repository; tests that need one call [`shared_data`] and, where it is
//! absent, say so plainly and skip.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

pub mod orders;

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

/// A scratch directory under the system's temp dir, removed (with what it holds) when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `tickline-<name>-<pid>`, emptied first.
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("tickline-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creating a scratch directory");
        TempDir(p)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes an order-API key file (mode 0600, as the engine requires) into `dir` for the venue
/// simulator: its built-in HMAC key (`venue_sim::TEST_HMAC_API_KEY` and `TEST_HMAC_SECRET`),
/// whose signatures it verifies.
pub fn venue_key_file(dir: &std::path::Path) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("venue.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .expect("creating the key file");
    writeln!(
        f,
        "api_key = simulatorKey0123456789\napi_secret = simulatorSecret0123456789"
    )
    .expect("writing the key file");
    path
}

/// Writes an Ed25519 order-API key file into `dir` (mode 0600, with its PKCS#8 PEM beside it,
/// 0600 too), for the venue simulator; the key is fixed, so runs are reproducible.
pub fn ed25519_key_file(dir: &std::path::Path) -> PathBuf {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let private = |name: &str, text: &str| {
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .expect("creating a key file");
        f.write_all(text.as_bytes()).expect("writing a key file");
        path
    };
    let pem = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .to_pkcs8_pem(LineEnding::LF)
        .expect("encoding the key");
    let pem = private("ed25519.pem", &pem);
    private(
        "ed25519.key",
        &format!(
            "api_key = edSessionKey0123456\ned25519_key_file = {}\n",
            pem.display()
        ),
    )
}
