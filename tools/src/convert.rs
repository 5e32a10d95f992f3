//! `tickline convert IN OUT.tlc`: any capture `tickline replay` reads, rewritten as a `.tlc`.
//!
//! Records keep their order, receive times and connection ids: connects (payload the URL, so
//! each connection's venue is recovered the way a replay of the input recovers it), disconnects,
//! subscriptions, text and binary frames, `.tlc` snapshots, REST responses (`<URL> <body>`,
//! [`RecordKind::Rest`]) and cryptofeed v3 headers ([`RecordKind::Meta`]). A line capture's
//! REST snapshot names no symbol: it becomes a snapshot record for the given symbol (`--symbol`,
//! default `BTCUSDT`). A line capture names no URL either: with `--venue`, a connect record
//! carrying that venue's WebSocket URL ([`feeds::venue::Adapter::ws_url`]) is written before
//! the first record of each connection that has none. Unreadable input records are counted
//! and skipped, as a replay skips them.

use anyhow::{bail, Context, Result};
use engine::venue::Venue;
use feeds::capture::{CaptureWriter, RecordKind, ReplayReader};
use std::collections::HashSet;
use std::io::{BufWriter, Write};
use std::path::Path;

/// What a conversion wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    /// Records written.
    pub records: u64,
    /// Input records that could not be read (skipped).
    pub unreadable: u64,
}

/// Converts `input` (any supported format) into the `.tlc` file `output`, a line capture's
/// snapshots attributed to `BTCUSDT` (see [`convert_with`]).
pub fn convert(input: &Path, output: &Path, venue: Option<Venue>) -> Result<ConvertStats> {
    convert_with(input, output, venue, "BTCUSDT")
}

/// Converts `input` into `output` (see the [module docs](self)); symbol-less snapshots are
/// written for `symbol`.
pub fn convert_with(
    input: &Path,
    output: &Path,
    venue: Option<Venue>,
    symbol: &str,
) -> Result<ConvertStats> {
    let ws_url = match venue {
        Some(v) => Some(
            feeds::venue::adapter(v)
                .with_context(|| format!("venue {v} is not in this build: no adapter for its URL"))?
                .ws_url(),
        ),
        None => None,
    };
    if symbol.is_empty() || symbol.bytes().any(|b| b.is_ascii_whitespace()) {
        bail!("symbol {symbol:?}: must be non-empty without spaces");
    }
    let mut reader =
        ReplayReader::open(input).with_context(|| format!("opening {}", input.display()))?;
    let file =
        std::fs::File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut w = CaptureWriter::new(BufWriter::new(file))?;
    let mut stats = ConvertStats::default();
    // Connections seen (announced by a connect record, or given one by `--venue`).
    let mut announced: HashSet<u32> = HashSet::new();
    loop {
        let rec = match reader.next() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                stats.unreadable += 1;
                if stats.unreadable <= 5 {
                    eprintln!("warning: {}: {e}", input.display());
                }
                continue;
            }
        };
        let conn = rec.conn_id;
        match rec.kind {
            RecordKind::Connect => {
                announced.insert(conn);
            }
            RecordKind::Rest | RecordKind::Meta => {}
            _ => {
                if let Some(url) = ws_url {
                    if announced.insert(conn) {
                        w.append(rec.recv_ns, conn, RecordKind::Connect, url.as_bytes())?;
                        stats.records += 1;
                    }
                }
            }
        }
        match (rec.kind, rec.symbol) {
            (RecordKind::Snapshot, Some(sym)) => {
                w.append_snapshot(rec.recv_ns, conn, sym, rec.payload)?
            }
            (RecordKind::Snapshot, None) => {
                w.append_snapshot(rec.recv_ns, conn, symbol.as_bytes(), rec.payload)?
            }
            (RecordKind::Rest, Some(url)) => w.append_rest(rec.recv_ns, conn, url, rec.payload)?,
            (kind, _) => w.append(rec.recv_ns, conn, kind, rec.payload)?,
        }
        stats.records += 1;
    }
    let mut out = w.into_inner();
    out.flush()
        .with_context(|| format!("writing {}", output.display()))?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(stats)
}
