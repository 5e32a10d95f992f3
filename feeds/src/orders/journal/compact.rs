//! Compaction: rewrites a long journal as the state it holds, crash-safe (written beside the old
//! one, then renamed over it).

use super::file::{sync_parent_dir, FsyncPolicy, JournalWriter};
use super::format::*;
use super::recovery::recover_bytes;
use std::path::{Path, PathBuf};

/// What [`compact`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compacted {
    /// Size of the journal before, bytes.
    pub before: u64,
    /// Size after, bytes.
    pub after: u64,
    /// Records written.
    pub records: usize,
    /// Where the old journal is kept, if asked.
    pub archived: Option<PathBuf>,
}

/// Rewrites the journal at `path` as the state it holds: the next client id, every symbol's
/// position, every order still open (with its fills' trade ids) and the latest trader states,
/// so a long-running engine's journal (and its start-up) stays small. The old file is kept at
/// `archive` (a hard link, made first) when given.
///
/// Crash-safe: the new journal is written and synced beside the old one, then renamed over it
/// (and the directory synced), so `path` always holds one whole journal. A corrupt journal is
/// refused ([`JournalError::CorruptRecord`]) and left alone; a torn tail is dropped, as
/// [`JournalWriter::open`] would drop it. Call it holding the journal's [`JournalLock`](super::JournalLock) (as
/// `tickline run` does) and before the writer opens it: the lock is on a sidecar file, so the
/// rename does not drop it.
pub fn compact(path: &Path, archive: Option<&Path>) -> Result<Compacted, JournalError> {
    let bytes = std::fs::read(path)?;
    let rec = recover_bytes(&bytes)?;
    if let TailState::Corrupt { offset } = rec.tail {
        return Err(JournalError::CorruptRecord { offset });
    }
    let tmp = path.with_extension("compacting");
    let _ = std::fs::remove_file(&tmp);
    let mut records = 0;
    {
        let mut w = JournalWriter::open(&tmp, FsyncPolicy::Never)?;
        let mut put = |r: &JournalRecord<'_>| -> Result<(), JournalError> {
            records += 1;
            w.append(r).map_err(JournalError::from)
        };
        put(&JournalRecord::NextClientId {
            next: rec.next_client_id,
        })?;
        for (symbol, position) in &rec.positions {
            put(&JournalRecord::Position {
                symbol,
                position: *position,
            })?;
        }
        for o in &rec.open_orders {
            let ids: Vec<u8> = o.trade_ids.iter().flat_map(|t| t.to_le_bytes()).collect();
            put(&JournalRecord::OpenOrder {
                client_id: o.client_id,
                symbol: &o.symbol,
                req: o.req,
                filled: o.filled,
                venue_order_id: o.venue_order_id,
                acked: o.acked,
                trade_ids: &ids,
                ts_ns: o.ts_ns,
            })?;
        }
        for (symbol, trader, state) in &rec.trader_states {
            put(&JournalRecord::TraderState {
                symbol,
                trader: *trader,
                state,
                ts_ns: 0,
            })?;
        }
        w.sync()?;
    }
    if let Some(a) = archive {
        std::fs::hard_link(path, a)?;
    }
    std::fs::rename(&tmp, path)?;
    sync_parent_dir(path)?;
    Ok(Compacted {
        before: bytes.len() as u64,
        after: std::fs::metadata(path)?.len(),
        records,
        archived: archive.map(Path::to_path_buf),
    })
}
