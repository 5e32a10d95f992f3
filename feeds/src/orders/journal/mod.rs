//! The order journal: an append-only write-ahead log of what the engine asked for and what the
//! venue answered, and the recovery that rebuilds positions, open orders, trader state and the
//! next client order id after a restart or a crash.
//!
//! # What is journaled, and when
//!
//! | record | written | recovery does |
//! |---|---|---|
//! | [`JournalRecord::Intent`] | **before** the order is sent (the append must have returned `Ok`, and with [`FsyncPolicy::Always`] it is on disk) | opens the order; an engine-namespace id (`tl-<n>`) raises the next client id to `n + 1` |
//! | [`JournalRecord::Ack`] | when the venue accepts the order | marks it acked, keeps the venue's order id |
//! | [`JournalRecord::Fill`] | for every execution report | applies it once per `(client id, trade id)` to the symbol's [`Position`](engine::portfolio::Position) (a repeat is counted in [`Recovered::duplicate_fills`]); a fully filled order is closed |
//! | [`JournalRecord::Canceled`] | when the order left the book (canceled, expired, IOC rest) | closes the order |
//! | [`JournalRecord::Rejected`] | when the venue (or pre-trade risk, after the intent) refused it | closes the order |
//! | [`JournalRecord::TraderState`] | when a strategy's trader wants its state to survive a restart | keeps the latest blob per `(symbol, trader)` |
//! | [`JournalRecord::NextClientId`] | to reserve client ids (see below) | raises the next client id to at least `next` |
//!
//! Fills are de-duplicated by `(client id, trade id)`, not by the trade id alone: two of our own
//! orders can be the two sides of one venue trade (same trade id, two client ids), and the paper
//! venue numbers its trades from 1 again in every process. A venue re-sending an execution report
//! (after a reconnect, say) repeats both ids, which is the duplicate the journal must not apply
//! twice. A fill that arrives after the order's cancel is still applied (it happened); an event
//! for a client id that was never intended is counted in [`Recovered::unknown_order_events`] and
//! not applied (its side and symbol are unknown).
//!
//! Time stamps (`ts_ns`) are the writer's: use the wall clock (nanoseconds since the Unix epoch),
//! since the journal outlives the process and the monotonic clock restarts with it. Recovery does
//! not interpret them.
//!
//! # Client order ids across restarts
//!
//! [`Recovered::next_client_id`] is `1 +` the highest engine-namespace number ever intended, or
//! the highest [`JournalRecord::NextClientId`] recorded, whichever is larger (and 1 for an empty
//! journal). Probe ids (`probe-<trade id>`) carry a trade id, not a sequence number, and do not
//! count.
//!
//! The journal alone cannot keep ids unique: a power cut under [`FsyncPolicy::Never`] loses its
//! tail, an operator may move a corrupt journal aside, and two processes could share one file.
//! So uniqueness rests on three things, of which the journal is one input:
//!
//! 1. **The lock** ([`JournalLock`], `<journal>.lock`): one engine per journal, refused with
//!    the holder's pid ([`JournalError::Locked`]).
//! 2. **A start epoch in every id** ([`ClientOrderId`](engine::event::ClientOrderId): `tl-<epoch>-<seq>`): each start numbers
//!    from `(epoch, 1)`, the epoch being the later of now (seconds since 2024) and one past the
//!    last epoch in the journal ([`crate::orders::idcheck::start_number`]), and journals `NextClientId`
//!    at that number, so no two starts share an epoch unless the wall clock went back and the
//!    journal was lost.
//! 3. **The venue's word** ([`crate::orders::idcheck`]): on every connect the order session lists the
//!    venue's open and recent orders, and moves numbering past any engine id it finds at or
//!    beyond the next one, before any order is sent.
//!
//! Old journals (ids `tl-<n>`, epoch 0) recover unchanged: an id is stored as its `u64`.
//!
//! # Start-up procedure
//!
//! ```no_run
//! use feeds::orders::journal::{recover, FsyncPolicy, JournalWriter, TailState};
//! # fn main() -> Result<(), feeds::orders::journal::JournalError> {
//! let path = std::path::Path::new("orders.tlj");
//! // 1. Rebuild the state from every complete record. A missing file is an I/O error
//! //    (NotFound), on purpose: a journal that vanished is not the same as a first start.
//! let rec = recover(path)?;
//! match rec.tail {
//!     TailState::Clean => {}
//!     // 2. The record being written when the process died. Report it: it never completed, so if
//!     //    it was an intent the order was never sent.
//!     TailState::Torn { offset, bytes } => eprintln!("journal: torn record at {offset} ({bytes} B)"),
//!     // A damaged record: `rec` holds what came before it. Stop and investigate; the writer
//!     // refuses the file (records after the damage would be unreachable).
//!     TailState::Corrupt { offset } => panic!("journal corrupt at byte offset {offset}"),
//! }
//! // 3. Reopen for appending: this validates the file again and truncates exactly the torn tail
//! //    recover() reported (nothing else); `truncated()` says what it cut.
//! let mut w = JournalWriter::open(path, FsyncPolicy::Always)?;
//! assert_eq!(w.truncated(), match rec.tail { TailState::Torn { .. } => Some(rec.tail), _ => None });
//! // 4. Seed the engine's order numbering with rec.next_client_id, its positions with
//! //    rec.positions, its order table with rec.open_orders (reconcile them with the venue),
//! //    and the strategies with rec.trader_states.
//! # let _ = &mut w; Ok(()) }
//! ```
//!
//! [`JournalWriter::open`] creates a missing file. It never truncates anything but a torn tail
//! (a record, or the file header, that the file ends inside), and it refuses a file with a
//! corrupt record anywhere with [`JournalError::CorruptRecord`], leaving the file untouched. Only
//! one writer may have a journal open at a time: take the [`JournalLock`] first (before
//! compaction and recovery) and hand it to the writer ([`JournalWriter::hold_lock`]).
//!
//! # Parts
//!
//! | module | holds | I/O |
//! |---|---|---|
//! | [`format`](mod@format) | constants, [`JournalRecord`], header and record framing, [`JournalReader`], [`JournalError`] | none |
//! | [`file`](mod@file) | [`FsyncPolicy`], [`JournalWriter`], [`JournalLock`] | the journal file |
//! | [`recovery`] | [`recover`], [`recover_bytes`], [`Recovered`] | reads the file whole |
//! | [`compact`](mod@compact) | [`compact()`], [`Compacted`] | rewrites the file |
//!
//! `format` depends on nothing here; `file` and `recovery` on `format`; `compact` on all three.

pub mod compact;
pub mod file;
pub mod format;
pub mod recovery;
#[cfg(test)]
mod tests;

pub use compact::{compact, Compacted};
pub use file::{FsyncPolicy, JournalLock, JournalWriter};
pub use format::{
    JournalEntry, JournalError, JournalHeader, JournalReader, JournalRecord, TailState,
    FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_NEXT_CLIENT_ID, MAX_PAYLOAD, MAX_SYMBOL_LEN,
    RECORD_HEADER_LEN,
};
pub use recovery::{recover, recover_bytes, Recovered, RecoveredOrder};
