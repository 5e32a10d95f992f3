//! Orders against the venue simulator, shared by the crash and scale-out drills: fills as the
//! venue's ledger and as an engine's journal count them, and the engine run as a child process
//! (this test binary re-run on one of its own tests) so it can be really SIGKILLed.

use feeds::orders::journal::{JournalReader, JournalRecord};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use venue_sim::{LedgerEntry, VenueSim};

/// Fills the venue reported so far (every account, every engine).
pub fn venue_fills(sim: &VenueSim) -> usize {
    sim.ledger()
        .expect("reading the venue's ledger")
        .iter()
        .filter(|e| matches!(e, LedgerEntry::Fill { .. }))
        .count()
}

/// Distinct fills in a journal: (client id, trade id) -> (price, qty), in the ledger's units.
pub fn journal_fills(path: &Path) -> BTreeMap<(String, u64), (i64, i64)> {
    let bytes = std::fs::read(path).expect("reading the journal");
    let mut out = BTreeMap::new();
    for e in JournalReader::new(&bytes).expect("a journal") {
        if let JournalRecord::Fill {
            client_id,
            trade_id,
            price,
            qty,
            ..
        } = e.record
        {
            out.entry((client_id.to_string(), trade_id))
                .or_insert((price.0, qty.0));
        }
    }
    out
}

/// A decimal string (as the ledger writes prices and quantities) in fixed-point units.
pub fn fixed(s: &str) -> i64 {
    engine::fixed::parse_fixed(s.as_bytes()).expect("a decimal")
}

/// This test binary again, to run only its test `test` (which acts as the child when it finds
/// its variables in `env`); stdin null, stdout and stderr piped (redirect stderr to a file for a
/// child that may write more than a pipe holds before it is waited for).
pub fn test_child(test: &str, env: &[(&str, &std::ffi::OsStr)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
