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
//! | [`JournalRecord::Fill`] | for every execution report | applies it once per `(client id, trade id)` to the symbol's [`Position`] (a repeat is counted in [`Recovered::duplicate_fills`]); a fully filled order is closed |
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
//! 2. **A start epoch in every id** ([`ClientOrderId`]: `tl-<epoch>-<seq>`): each start numbers
//!    from `(epoch, 1)`, the epoch being the later of now (seconds since 2024) and one past the
//!    last epoch in the journal ([`crate::idcheck::start_number`]), and journals `NextClientId`
//!    at that number, so no two starts share an epoch unless the wall clock went back and the
//!    journal was lost.
//! 3. **The venue's word** ([`crate::idcheck`]): on every connect the order session lists the
//!    venue's open and recent orders, and moves numbering past any engine id it finds at or
//!    beyond the next one, before any order is sent.
//!
//! Old journals (ids `tl-<n>`, epoch 0) recover unchanged: an id is stored as its `u64`.
//!
//! # Start-up procedure
//!
//! ```no_run
//! use feeds::journal::{recover, FsyncPolicy, JournalWriter, TailState};
//! # fn main() -> Result<(), feeds::journal::JournalError> {
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
//! # Durability
//!
//! Each record is encoded into one reused buffer and written with one `write` call, then synced
//! according to the [`FsyncPolicy`] (`fdatasync`). A new file's header is synced with the file
//! and its directory entry, and a truncation is synced before anything is appended after it
//! (except under [`FsyncPolicy::Never`]). After a failed `fdatasync` the writer refuses further
//! appends (the kernel may have dropped the unsynced pages; reopen to see what reached the
//! disk); after a failed `write` it cuts the file back to its last complete record, or refuses
//! further appends if it cannot. An append that returned an error means: do not send the order.
//!
//! The writer makes a syscall per record (two with `Always`), so it belongs to the thread that
//! sends orders, never to the core.
//!
//! # Format
//!
//! A fixed header, then framed records. Every integer is **little-endian**. The file is read
//! whole at recovery (and at [`JournalWriter::open`], to validate it); [`compact`] rewrites a
//! long journal as the state it holds (keeping the old one as an archive) before that matters,
//! and `tickline run` does so at start-up past `orders.journal_compact_mb`.
//!
//! File header (32 bytes in version 1, the layout of the `.tlc` capture header):
//!
//! | offset | size | field | notes |
//! |---:|---:|---|---|
//! | 0 | 8 | magic | `89 54 4C 4A 0D 0A 1A 0A` (`\x89TLJ\r\n\x1a\n`) |
//! | 8 | 2 | format version | `u16`, [`FORMAT_VERSION`] = 1; others are refused ([`JournalError::UnsupportedVersion`]) |
//! | 10 | 2 | header length | `u16`, bytes before the first record: 32 in version 1 (anything else is a corrupt header) |
//! | 12 | 4 | flags | `u32`, none defined (written 0) |
//! | 16 | 8 | creation time | `u64`, ns since the Unix epoch |
//! | 24 | 4 | reserved | written 0 |
//! | 28 | 4 | header CRC32 | `crc32fast` over every header byte except these four |
//!
//! Record (16-byte record header, then the payload):
//!
//! | offset | size | field | notes |
//! |---:|---:|---|---|
//! | 0 | 4 | payload length | `u32`, at most [`MAX_PAYLOAD`] |
//! | 4 | 4 | length check | `u32`, the bitwise NOT of the length: a damaged length is corrupt, never mistaken for a torn tail |
//! | 8 | 4 | CRC32 | `crc32fast` over bytes 0..8 and 12..16 of the record header, then the payload |
//! | 12 | 1 | kind | code below |
//! | 13 | 3 | reserved | written 0, covered by the CRC, ignored by readers |
//! | 16 | len | payload | by kind, below |
//!
//! Payloads (`id` is a [`ClientOrderId`]'s `u64`: namespace in the top 8 bits; `side` 0 buy,
//! 1 sell; `type` 0 limit GTC, 1 limit IOC, 2 limit FOK, 3 market; prices, quantities and fees
//! in 1e-8 units; `sym` is a UTF-8 symbol of 1 to [`MAX_SYMBOL_LEN`] bytes, its length in `sl`):
//!
//! | code | kind | size | payload |
//! |---:|---|---:|---|
//! | 1 | Intent | 36 + sl | `id u64, ts_ns u64, price i64, qty i64, side u8, type u8, sl u8, reserved u8, sym` |
//! | 2 | Ack | 24 | `id u64, ts_ns u64, venue_order_id u64` |
//! | 3 | Fill | 48 | `id u64, ts_ns u64, trade_id u64, price i64, qty i64, fee i64` |
//! | 4 | Canceled | 24 | `id u64, ts_ns u64, leaves i64` |
//! | 5 | Rejected | 24 | `id u64, ts_ns u64, code i64` |
//! | 6 | TraderState | 16 + sl + n | `ts_ns u64, trader u32, sl u8, reserved 3 bytes, sym, state (the remaining n bytes)` |
//! | 7 | NextClientId | 8 | `next u64` |
//! | 8 | Position | 80 + sl | `qty i64, avg_price i64, realized i128, fees i128, fills u64, volume i128, sl u8, reserved 7 bytes, sym` |
//! | 9 | OpenOrder | 56 + sl + 8n | `id u64, ts_ns u64, price i64, qty i64, filled i64, venue_order_id u64 (0: none), side u8, type u8, acked u8, sl u8, n u32, sym, n trade ids u64` |
//!
//! Kinds 8 and 9 are written only by [`compact`]: a symbol's whole position, and an order still
//! open with what is known of it (its fills' trade ids, for de-duplication; their quantities are
//! in `filled` and already in the position).
//!
//! Reading classifies how the records end ([`TailState`]):
//! - **Clean**: the file ends exactly after a record.
//! - **Torn** `{ offset, bytes }`: the file ends inside the record (or the header) starting at
//!   `offset`, `bytes` of it present: the write in progress when the process died. An empty file
//!   is a torn header (`Torn { offset: 0, bytes: 0 }`).
//! - **Corrupt** `{ offset }`: the record at `offset` is complete by its (checked) length but its
//!   CRC does not match, its length check fails or is beyond [`MAX_PAYLOAD`], its kind is unknown
//!   or its payload does not decode, including values out of range: a position that no fills
//!   can produce ([`Position::is_sane`]: money beyond 2^100 units, a negative average price or
//!   volume), an open order with a negative quantity, a `NextClientId` beyond
//!   [`MAX_NEXT_CLIENT_ID`]. This holds for the last record too: writing whole records
//!   cannot leave a full-length record with wrong bytes, so such a record is damage (or a file
//!   system that exposed unwritten blocks as zeros after a power cut), for an operator to judge.
//!
//! Nothing after the first torn or corrupt record is read: there is no resynchronisation.
//!
//! **Sizes read from the file.** Every length in a record (the payload length, a symbol's `sl`,
//! an open order's trade-id count `n`) is bounded ([`MAX_PAYLOAD`], `u8`, the payload) and checked
//! against the bytes actually present before it is used, and nothing is allocated from a length
//! before that check: a record claiming more bytes than the file holds is never read (a torn
//! tail if its length is within bounds, corrupt if not). The one allocation sized by the file is
//! reading the file itself, by its real length.

use crate::framing::{header_crc, le_u16, le_u32, le_u64};
use core::fmt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::event::{ClientOrderId, Fill, OrderAck, OrderCanceled, OrderRequest, OrderType, Side};
use engine::fixed::{Price, Qty};
use engine::portfolio::Position;

/// The journal magic: `\x89TLJ\r\n\x1a\n`.
pub const MAGIC: [u8; 8] = [0x89, b'T', b'L', b'J', b'\r', b'\n', 0x1a, b'\n'];
/// The journal format version this module writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// Length of a version-1 file header.
pub const HEADER_LEN: usize = 32;
/// Length of a record header (before the payload).
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a record may carry: 1 MiB.
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Longest symbol a record may carry, in bytes.
pub const MAX_SYMBOL_LEN: usize = u8::MAX as usize;
/// Largest `next` a [`JournalRecord::NextClientId`] may carry: one past the largest 56-bit
/// engine number. A larger one is out of range (the record is corrupt).
pub const MAX_NEXT_CLIENT_ID: u64 = ClientOrderId::NUMBER_MAX + 1;

/// Bytes of the header before the part that may grow: magic, version, header length.
const HEADER_FIXED: usize = 12;
const HEADER_CRC_AT: usize = 28;

const KIND_INTENT: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_FILL: u8 = 3;
const KIND_CANCELED: u8 = 4;
const KIND_REJECTED: u8 = 5;
const KIND_TRADER_STATE: u8 = 6;
const KIND_NEXT_CLIENT_ID: u8 = 7;
const KIND_POSITION: u8 = 8;
const KIND_OPEN_ORDER: u8 = 9;

// ---------------------------------------------------------------------------------------------
// Policy, records, errors
// ---------------------------------------------------------------------------------------------

/// When [`JournalWriter::append`] makes records durable with `fdatasync`.
///
/// The policy changes only when data reaches the disk, never what is written: every policy
/// produces the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every record: an appended intent survives a power cut.
    Always,
    /// `fdatasync` after every `n` records (`EveryN(0)` behaves as `EveryN(1)`).
    EveryN(u32),
    /// `fdatasync` on an append at least this long after the last sync. There is no background
    /// thread: call [`JournalWriter::sync_if_due`] from a timer to bound an idle journal's
    /// unsynced records too.
    Interval(Duration),
    /// Never sync (the kernel writes back when it likes); [`JournalWriter::sync`] still syncs.
    Never,
}

/// One journal record. See the module docs for when each is written and its layout on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalRecord<'a> {
    /// An order is about to be sent (written before the send).
    Intent {
        /// Our id for it.
        client_id: ClientOrderId,
        /// Instrument name (1 to [`MAX_SYMBOL_LEN`] bytes).
        symbol: &'a str,
        /// The order.
        req: OrderRequest,
        /// When, ns (writer's clock).
        ts_ns: u64,
    },
    /// The venue accepted the order.
    Ack {
        /// Our id.
        client_id: ClientOrderId,
        /// The venue's id.
        venue_order_id: u64,
        /// When, ns.
        ts_ns: u64,
    },
    /// (Part of) the order was filled.
    Fill {
        /// Our id.
        client_id: ClientOrderId,
        /// The venue's trade id.
        trade_id: u64,
        /// Fill price.
        price: Price,
        /// Filled quantity.
        qty: Qty,
        /// Fee in 1e-8 quote units (negative for rebates).
        fee: i64,
        /// When, ns.
        ts_ns: u64,
    },
    /// The order left the book without (further) fills: canceled or expired.
    Canceled {
        /// Our id.
        client_id: ClientOrderId,
        /// Quantity that was still open.
        leaves: Qty,
        /// When, ns.
        ts_ns: u64,
    },
    /// The order was refused.
    Rejected {
        /// Our id.
        client_id: ClientOrderId,
        /// The venue's error code (or the engine's, for its own refusals).
        code: i64,
        /// When, ns.
        ts_ns: u64,
    },
    /// A trader's opaque state, to hand back to it after a restart (the latest one wins).
    TraderState {
        /// Instrument name (1 to [`MAX_SYMBOL_LEN`] bytes).
        symbol: &'a str,
        /// The trader's number within the symbol's strategy.
        trader: u32,
        /// The state, encoded by the strategy.
        state: &'a [u8],
        /// When, ns.
        ts_ns: u64,
    },
    /// Engine-namespace client order ids below `next` are used or reserved.
    NextClientId {
        /// The next number the engine may use.
        next: u64,
    },
    /// A symbol's position as of a compaction (it replaces what came before; later fills apply
    /// on top). The mark is market data and is not kept.
    Position {
        /// Instrument name.
        symbol: &'a str,
        /// The position.
        position: Position,
    },
    /// An order still open at a compaction, with what was known of it.
    OpenOrder {
        /// Our id.
        client_id: ClientOrderId,
        /// Instrument name.
        symbol: &'a str,
        /// The order as intended.
        req: OrderRequest,
        /// Quantity filled so far (already in the symbol's position).
        filled: Qty,
        /// The venue's id, if it was acked.
        venue_order_id: Option<u64>,
        /// It was acked.
        acked: bool,
        /// Trade ids of its fills so far (already applied).
        trade_ids: &'a [u8],
        /// When the intent was written.
        ts_ns: u64,
    },
}

impl<'a> JournalRecord<'a> {
    /// The record of a venue's acceptance.
    pub fn ack(ack: &OrderAck, ts_ns: u64) -> Self {
        JournalRecord::Ack {
            client_id: ack.client_id,
            venue_order_id: ack.venue_order_id,
            ts_ns,
        }
    }

    /// The record of a fill.
    pub fn fill(fill: &Fill, ts_ns: u64) -> Self {
        JournalRecord::Fill {
            client_id: fill.client_id,
            trade_id: fill.trade_id,
            price: fill.price,
            qty: fill.qty,
            fee: fill.fee,
            ts_ns,
        }
    }

    /// The record of a cancel.
    pub fn canceled(c: &OrderCanceled, ts_ns: u64) -> Self {
        JournalRecord::Canceled {
            client_id: c.client_id,
            leaves: c.leaves_qty,
            ts_ns,
        }
    }

    fn kind(&self) -> u8 {
        match self {
            JournalRecord::Intent { .. } => KIND_INTENT,
            JournalRecord::Ack { .. } => KIND_ACK,
            JournalRecord::Fill { .. } => KIND_FILL,
            JournalRecord::Canceled { .. } => KIND_CANCELED,
            JournalRecord::Rejected { .. } => KIND_REJECTED,
            JournalRecord::TraderState { .. } => KIND_TRADER_STATE,
            JournalRecord::NextClientId { .. } => KIND_NEXT_CLIENT_ID,
            JournalRecord::Position { .. } => KIND_POSITION,
            JournalRecord::OpenOrder { .. } => KIND_OPEN_ORDER,
        }
    }

    /// Appends the payload to `out`.
    fn encode_payload(&self, out: &mut Vec<u8>) -> io::Result<()> {
        match *self {
            JournalRecord::Intent {
                client_id,
                symbol,
                req,
                ts_ns,
            } => {
                let sl = symbol_len(symbol)?;
                out.extend_from_slice(&client_id.0.to_le_bytes());
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&req.price.0.to_le_bytes());
                out.extend_from_slice(&req.qty.0.to_le_bytes());
                out.extend_from_slice(&[side_code(req.side), type_code(req.order_type), sl, 0]);
                out.extend_from_slice(symbol.as_bytes());
            }
            JournalRecord::Ack {
                client_id,
                venue_order_id,
                ts_ns,
            } => {
                out.extend_from_slice(&client_id.0.to_le_bytes());
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&venue_order_id.to_le_bytes());
            }
            JournalRecord::Fill {
                client_id,
                trade_id,
                price,
                qty,
                fee,
                ts_ns,
            } => {
                out.extend_from_slice(&client_id.0.to_le_bytes());
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&trade_id.to_le_bytes());
                out.extend_from_slice(&price.0.to_le_bytes());
                out.extend_from_slice(&qty.0.to_le_bytes());
                out.extend_from_slice(&fee.to_le_bytes());
            }
            JournalRecord::Canceled {
                client_id,
                leaves,
                ts_ns,
            } => {
                out.extend_from_slice(&client_id.0.to_le_bytes());
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&leaves.0.to_le_bytes());
            }
            JournalRecord::Rejected {
                client_id,
                code,
                ts_ns,
            } => {
                out.extend_from_slice(&client_id.0.to_le_bytes());
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&code.to_le_bytes());
            }
            JournalRecord::TraderState {
                symbol,
                trader,
                state,
                ts_ns,
            } => {
                let sl = symbol_len(symbol)?;
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&trader.to_le_bytes());
                out.extend_from_slice(&[sl, 0, 0, 0]);
                out.extend_from_slice(symbol.as_bytes());
                out.extend_from_slice(state);
            }
            JournalRecord::NextClientId { next } => out.extend_from_slice(&next.to_le_bytes()),
            JournalRecord::Position { symbol, position } => {
                let sl = symbol_len(symbol)?;
                out.extend_from_slice(&position.qty.to_le_bytes());
                out.extend_from_slice(&position.avg_price.0.to_le_bytes());
                out.extend_from_slice(&position.realized.to_le_bytes());
                out.extend_from_slice(&position.fees.to_le_bytes());
                out.extend_from_slice(&position.fills.to_le_bytes());
                out.extend_from_slice(&position.volume.to_le_bytes());
                out.extend_from_slice(&[sl, 0, 0, 0, 0, 0, 0, 0]);
                out.extend_from_slice(symbol.as_bytes());
            }
            JournalRecord::OpenOrder {
                client_id,
                symbol,
                req,
                filled,
                venue_order_id,
                acked,
                trade_ids,
                ts_ns,
            } => {
                let sl = symbol_len(symbol)?;
                if trade_ids.len() % 8 != 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "trade ids are whole u64s",
                    ));
                }
                out.extend_from_slice(&client_id.0.to_le_bytes());
                out.extend_from_slice(&ts_ns.to_le_bytes());
                out.extend_from_slice(&req.price.0.to_le_bytes());
                out.extend_from_slice(&req.qty.0.to_le_bytes());
                out.extend_from_slice(&filled.0.to_le_bytes());
                out.extend_from_slice(&venue_order_id.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&[
                    side_code(req.side),
                    type_code(req.order_type),
                    acked as u8,
                    sl,
                ]);
                out.extend_from_slice(&((trade_ids.len() / 8) as u32).to_le_bytes());
                out.extend_from_slice(symbol.as_bytes());
                out.extend_from_slice(trade_ids);
            }
        }
        Ok(())
    }

    /// Decodes a payload of kind `kind`; `None` if it is not a valid one.
    fn decode(kind: u8, payload: &'a [u8]) -> Option<Self> {
        let mut c = Cur { b: payload, at: 0 };
        let rec = match kind {
            KIND_INTENT => {
                let client_id = ClientOrderId(c.u64()?);
                let ts_ns = c.u64()?;
                let price = Price(c.i64()?);
                let qty = Qty(c.i64()?);
                let side = side_from(c.u8()?)?;
                let order_type = type_from(c.u8()?)?;
                let sl = c.u8()? as usize;
                c.take(1)?;
                let symbol = symbol_from(c.take(sl)?)?;
                JournalRecord::Intent {
                    client_id,
                    symbol,
                    req: OrderRequest {
                        side,
                        price,
                        qty,
                        order_type,
                    },
                    ts_ns,
                }
            }
            KIND_ACK => JournalRecord::Ack {
                client_id: ClientOrderId(c.u64()?),
                ts_ns: c.u64()?,
                venue_order_id: c.u64()?,
            },
            KIND_FILL => JournalRecord::Fill {
                client_id: ClientOrderId(c.u64()?),
                ts_ns: c.u64()?,
                trade_id: c.u64()?,
                price: Price(c.i64()?),
                qty: Qty(c.i64()?),
                fee: c.i64()?,
            },
            KIND_CANCELED => JournalRecord::Canceled {
                client_id: ClientOrderId(c.u64()?),
                ts_ns: c.u64()?,
                leaves: Qty(c.i64()?),
            },
            KIND_REJECTED => JournalRecord::Rejected {
                client_id: ClientOrderId(c.u64()?),
                ts_ns: c.u64()?,
                code: c.i64()?,
            },
            KIND_TRADER_STATE => {
                let ts_ns = c.u64()?;
                let trader = c.u32()?;
                let sl = c.u8()? as usize;
                c.take(3)?;
                let symbol = symbol_from(c.take(sl)?)?;
                let state = c.rest();
                JournalRecord::TraderState {
                    symbol,
                    trader,
                    state,
                    ts_ns,
                }
            }
            KIND_NEXT_CLIENT_ID => {
                let next = c.u64()?;
                // Engine numbers are 56 bits: a larger `next` cannot have been written by an
                // engine, and numbering from it would overflow.
                if next > MAX_NEXT_CLIENT_ID {
                    return None;
                }
                JournalRecord::NextClientId { next }
            }
            KIND_POSITION => {
                let qty = c.i64()?;
                let avg_price = Price(c.i64()?);
                let realized = c.i128()?;
                let fees = c.i128()?;
                let fills = c.u64()?;
                let volume = c.i128()?;
                let sl = c.u8()? as usize;
                c.take(7)?;
                let symbol = symbol_from(c.take(sl)?)?;
                let position = Position {
                    qty,
                    avg_price,
                    realized,
                    fees,
                    mark: Price::ZERO,
                    fills,
                    volume,
                };
                // Values no sequence of fills can reach are damage (or a hostile file), not a
                // position to trade on: the record is corrupt.
                if !position.is_sane() {
                    return None;
                }
                JournalRecord::Position { symbol, position }
            }
            KIND_OPEN_ORDER => {
                let client_id = ClientOrderId(c.u64()?);
                let ts_ns = c.u64()?;
                let price = Price(c.i64()?);
                let qty = Qty(c.i64()?);
                let filled = Qty(c.i64()?);
                let venue = c.u64()?;
                let side = side_from(c.u8()?)?;
                let order_type = type_from(c.u8()?)?;
                let acked = match c.u8()? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
                let sl = c.u8()? as usize;
                let n = c.u32()? as usize;
                if qty.0 < 0 || filled.0 < 0 {
                    return None;
                }
                let symbol = symbol_from(c.take(sl)?)?;
                // The count is checked against the bytes there before anything is allocated.
                let trade_ids = c.take(n.checked_mul(8)?)?;
                JournalRecord::OpenOrder {
                    client_id,
                    symbol,
                    req: OrderRequest {
                        side,
                        price,
                        qty,
                        order_type,
                    },
                    filled,
                    venue_order_id: (venue != 0).then_some(venue),
                    acked,
                    trade_ids,
                    ts_ns,
                }
            }
            _ => return None,
        };
        c.is_done().then_some(rec)
    }
}

fn symbol_len(symbol: &str) -> io::Result<u8> {
    match u8::try_from(symbol.len()) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "journal symbol must be 1 to {MAX_SYMBOL_LEN} bytes, got {}",
                symbol.len()
            ),
        )),
    }
}

fn symbol_from(b: &[u8]) -> Option<&str> {
    if b.is_empty() {
        return None;
    }
    core::str::from_utf8(b).ok()
}

fn side_code(s: Side) -> u8 {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

fn side_from(c: u8) -> Option<Side> {
    match c {
        0 => Some(Side::Buy),
        1 => Some(Side::Sell),
        _ => None,
    }
}

fn type_code(t: OrderType) -> u8 {
    match t {
        OrderType::LimitGtc => 0,
        OrderType::LimitIoc => 1,
        OrderType::LimitFok => 2,
        OrderType::Market => 3,
    }
}

fn type_from(c: u8) -> Option<OrderType> {
    match c {
        0 => Some(OrderType::LimitGtc),
        1 => Some(OrderType::LimitIoc),
        2 => Some(OrderType::LimitFok),
        3 => Some(OrderType::Market),
        _ => None,
    }
}

/// A little-endian cursor over a payload.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    fn u32(&mut self) -> Option<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Some(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Option<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Some(u64::from_le_bytes(a))
    }

    fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| v as i64)
    }

    fn i128(&mut self) -> Option<i128> {
        let mut a = [0u8; 16];
        a.copy_from_slice(self.take(16)?);
        Some(i128::from_le_bytes(a))
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }

    fn is_done(&self) -> bool {
        self.at == self.b.len()
    }
}

/// How the records of a journal end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailState {
    /// The file ends exactly after its last record.
    Clean,
    /// The file ends inside the record (or the header, at offset 0) starting at `offset`: a
    /// write cut short. Everything before `offset` was read.
    Torn {
        /// Byte offset of the incomplete record.
        offset: u64,
        /// Bytes of it present (the file is `offset + bytes` long).
        bytes: u64,
    },
    /// The record at `offset` is damaged (CRC mismatch, damaged length, unknown kind or a
    /// payload that does not decode). Everything before `offset` was read, nothing after it.
    Corrupt {
        /// Byte offset of the damaged record.
        offset: u64,
    },
}

/// Everything that can go wrong opening, reading or validating a journal.
#[derive(Debug)]
pub enum JournalError {
    /// An I/O error (a missing file at [`recover`] included).
    Io(io::Error),
    /// The file does not start with the journal magic; it was not touched.
    BadMagic,
    /// A journal of a format version this build cannot read; it was not touched.
    UnsupportedVersion(u16),
    /// The file header's CRC does not match or its length is impossible; nothing can be trusted.
    CorruptHeader,
    /// [`JournalWriter::open`] found a damaged record and refuses to append after it; the file
    /// was not touched.
    CorruptRecord {
        /// Byte offset of the damaged record.
        offset: u64,
    },
    /// Another process holds the journal's lock ([`JournalLock`]): a second engine on one
    /// journal would number and journal orders beside the first.
    Locked {
        /// The journal.
        journal: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder's process id, as it wrote it in the lock file (`None` if unreadable).
        pid: Option<u32>,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(e) => write!(f, "journal I/O error: {e}"),
            JournalError::BadMagic => f.write_str("not a Tickline order journal (bad magic)"),
            JournalError::UnsupportedVersion(v) => write!(
                f,
                "order journal format version {v} is not supported (this build reads {FORMAT_VERSION})"
            ),
            JournalError::CorruptHeader => {
                f.write_str("order journal header is corrupt (CRC mismatch or impossible length)")
            }
            JournalError::CorruptRecord { offset } => write!(
                f,
                "order journal has a corrupt record at byte offset {offset} (CRC mismatch, damaged \
                 length, undecodable payload or out-of-range value); refusing to append after it. \
                 recover() replays the records before it; move the file aside and investigate \
                 before trading"
            ),
            JournalError::Locked { journal, lock, pid } => {
                write!(
                    f,
                    "order journal {} is in use by another engine (",
                    journal.display()
                )?;
                match pid {
                    Some(pid) => write!(f, "pid {pid}")?,
                    None => f.write_str("pid unknown")?,
                }
                write!(
                    f,
                    " holds the lock on {}); refusing to start a second engine on it",
                    lock.display()
                )
            }
        }
    }
}

impl std::error::Error for JournalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for JournalError {
    fn from(e: io::Error) -> Self {
        JournalError::Io(e)
    }
}

// ---------------------------------------------------------------------------------------------
// Header and record framing
// ---------------------------------------------------------------------------------------------

/// The decoded file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u16,
    /// Bytes before the first record.
    pub header_len: u16,
    /// Flags (none defined in version 1).
    pub flags: u32,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
}

fn encode_header(created_ns: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    h[16..24].copy_from_slice(&created_ns.to_le_bytes());
    let crc = header_crc(&h, HEADER_CRC_AT);
    h[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes the header at the start of `b`: `Ok(None)` if `b` ends inside it.
fn parse_header(b: &[u8]) -> Result<Option<JournalHeader>, JournalError> {
    let m = b.len().min(MAGIC.len());
    if b[..m] != MAGIC[..m] {
        return Err(JournalError::BadMagic);
    }
    if b.len() < HEADER_FIXED {
        return Ok(None);
    }
    let version = le_u16(b, 8);
    if version != FORMAT_VERSION {
        return Err(JournalError::UnsupportedVersion(version));
    }
    // Version 1 defines a 32-byte header. Accepting a longer one would let a damaged length
    // make the whole file look like a torn header, which the writer would truncate.
    let header_len = le_u16(b, 10);
    let hl = header_len as usize;
    if hl != HEADER_LEN {
        return Err(JournalError::CorruptHeader);
    }
    if b.len() < hl {
        return Ok(None);
    }
    let h = &b[..hl];
    if le_u32(h, HEADER_CRC_AT) != header_crc(h, HEADER_CRC_AT) {
        return Err(JournalError::CorruptHeader);
    }
    Ok(Some(JournalHeader {
        version,
        header_len,
        flags: le_u32(h, 12),
        created_ns: le_u64(h, 16),
    }))
}

/// Encodes `rec` as a whole framed record into `buf` (cleared first).
fn encode_record(rec: &JournalRecord<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    buf.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    rec.encode_payload(buf)?;
    let len = buf.len() - RECORD_HEADER_LEN;
    if len > MAX_PAYLOAD {
        buf.clear();
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("journal record payload of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
        ));
    }
    let len = len as u32;
    buf[0..4].copy_from_slice(&len.to_le_bytes());
    buf[4..8].copy_from_slice(&(!len).to_le_bytes());
    buf[12] = rec.kind();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&buf[0..8]);
    crc.update(&buf[12..]);
    let crc = crc.finalize();
    buf[8..12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One record read from a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalEntry<'a> {
    /// Byte offset of the record in the file.
    pub offset: u64,
    /// The record.
    pub record: JournalRecord<'a>,
}

/// Iterates over the complete, intact records of a journal held in memory, then says how the
/// records end ([`JournalReader::tail`]).
#[derive(Clone, Debug)]
pub struct JournalReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    header: Option<JournalHeader>,
    tail: Option<TailState>,
}

impl<'a> JournalReader<'a> {
    /// Checks the header. A foreign file, another version or a damaged header is an error; a
    /// file that ends inside the header reads as no records with a torn tail at offset 0.
    pub fn new(bytes: &'a [u8]) -> Result<Self, JournalError> {
        let header = parse_header(bytes)?;
        let (pos, tail) = match header {
            Some(h) => (h.header_len as usize, None),
            None => (
                0,
                Some(TailState::Torn {
                    offset: 0,
                    bytes: bytes.len() as u64,
                }),
            ),
        };
        Ok(JournalReader {
            bytes,
            pos,
            header,
            tail,
        })
    }

    /// The file header (`None` when the file ends inside it).
    pub fn header(&self) -> Option<&JournalHeader> {
        self.header.as_ref()
    }

    /// Byte offset just after the last record returned (the header's end before the first).
    pub fn offset(&self) -> u64 {
        self.pos as u64
    }

    /// How the records end: `None` until the iterator has returned `None`.
    pub fn tail(&self) -> Option<TailState> {
        self.tail
    }

    fn stop(&mut self, tail: TailState) -> Option<JournalEntry<'a>> {
        self.tail = Some(tail);
        None
    }
}

impl<'a> Iterator for JournalReader<'a> {
    type Item = JournalEntry<'a>;

    fn next(&mut self) -> Option<JournalEntry<'a>> {
        if self.tail.is_some() {
            return None;
        }
        let bytes: &'a [u8] = self.bytes;
        let rest = &bytes[self.pos..];
        let offset = self.pos as u64;
        let torn = TailState::Torn {
            offset,
            bytes: rest.len() as u64,
        };
        if rest.is_empty() {
            return self.stop(TailState::Clean);
        }
        if rest.len() < 8 {
            return self.stop(torn);
        }
        let len = le_u32(rest, 0);
        if le_u32(rest, 4) != !len || len as usize > MAX_PAYLOAD {
            return self.stop(TailState::Corrupt { offset });
        }
        let total = RECORD_HEADER_LEN + len as usize;
        if rest.len() < total {
            return self.stop(torn);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&rest[0..8]);
        crc.update(&rest[12..total]);
        if crc.finalize() != le_u32(rest, 8) {
            return self.stop(TailState::Corrupt { offset });
        }
        match JournalRecord::decode(rest[12], &rest[RECORD_HEADER_LEN..total]) {
            Some(record) => {
                self.pos += total;
                Some(JournalEntry { offset, record })
            }
            None => self.stop(TailState::Corrupt { offset }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/// Appends records to a journal file. See the module docs for the start-up procedure.
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    policy: FsyncPolicy,
    buf: Vec<u8>,
    /// File length: the end of the last complete record.
    len: u64,
    records: u64,
    unsynced: u32,
    last_sync: Instant,
    truncated: Option<TailState>,
    /// A failed `fdatasync` (or a failed write that could not be undone): appends are refused.
    failed: bool,
    /// The journal's lock, kept for as long as the writer lives.
    lock: Option<JournalLock>,
}

impl fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalWriter")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("len", &self.len)
            .field("records", &self.records)
            .field("unsynced", &self.unsynced)
            .field("truncated", &self.truncated)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

fn now_unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Makes a new directory entry durable.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl JournalWriter {
    /// Opens `path` for appending, creating it (header stamped with the wall clock) if missing or
    /// empty. An existing file is validated first: a torn tail is truncated ([`Self::truncated`]
    /// says what was cut), a corrupt record is refused with [`JournalError::CorruptRecord`], and
    /// a foreign or damaged header is refused; refused files are not touched.
    pub fn open(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<Self, JournalError> {
        Self::open_with_created_ns(path, policy, now_unix_ns())
    }

    /// [`Self::open`] with the creation time to write if the header is new (reproducible files).
    pub fn open_with_created_ns(
        path: impl AsRef<Path>,
        policy: FsyncPolicy,
        created_ns: u64,
    ) -> Result<Self, JournalError> {
        let path = path.as_ref();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let sync = policy != FsyncPolicy::Never;
        let mut records = 0u64;
        let (len, truncated) = if bytes.is_empty() {
            file.write_all(&encode_header(created_ns))?;
            if sync {
                file.sync_all()?;
                sync_parent_dir(path)?;
            }
            (HEADER_LEN as u64, None)
        } else {
            let mut r = JournalReader::new(&bytes)?;
            for _ in r.by_ref() {
                records += 1;
            }
            match r.tail() {
                Some(TailState::Corrupt { offset }) => {
                    return Err(JournalError::CorruptRecord { offset })
                }
                Some(tail @ TailState::Torn { offset, .. }) => {
                    file.set_len(offset)?;
                    let mut len = offset;
                    if offset == 0 {
                        file.write_all(&encode_header(created_ns))?;
                        len = HEADER_LEN as u64;
                    }
                    if sync {
                        file.sync_all()?;
                    }
                    (len, Some(tail))
                }
                Some(TailState::Clean) | None => (bytes.len() as u64, None),
            }
        };
        Ok(JournalWriter {
            file,
            path: path.to_path_buf(),
            policy,
            buf: Vec::with_capacity(256),
            len,
            records,
            unsynced: 0,
            last_sync: Instant::now(),
            truncated,
            failed: false,
            lock: None,
        })
    }

    /// Appends one record (one `write`), then syncs if the policy says so. On `Ok` the record is
    /// in the file (and on disk if it was synced). On `Err`, for an intent, the order must not be
    /// sent: either nothing was written (a symbol that is empty or longer than
    /// [`MAX_SYMBOL_LEN`] or a payload over [`MAX_PAYLOAD`] is `InvalidInput`; a failed `write`
    /// is cut back off the file), or the record was written but its `fdatasync` failed, so it may
    /// or may not survive a power cut and the writer refuses further appends.
    pub fn append(&mut self, rec: &JournalRecord<'_>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "journal writer failed earlier (fdatasync or an undoable write); reopen the journal",
            ));
        }
        encode_record(rec, &mut self.buf)?;
        if let Err(e) = self.file.write_all(&self.buf) {
            // Cut a partial record off, so later records never follow a torn one.
            if self.file.set_len(self.len).is_err() {
                self.failed = true;
            }
            return Err(e);
        }
        self.len += self.buf.len() as u64;
        self.records += 1;
        self.unsynced = self.unsynced.saturating_add(1);
        let due = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::EveryN(n) => self.unsynced >= n.max(1),
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// `fdatasync` now, whatever the policy. A failure is sticky: the writer refuses appends.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "journal writer failed earlier (fdatasync or an undoable write); reopen the journal",
            ));
        }
        if let Err(e) = self.file.sync_data() {
            self.failed = true;
            return Err(e);
        }
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Under [`FsyncPolicy::Interval`], syncs if records are waiting and the interval has passed
    /// since the last sync; `Ok(true)` if it synced. Other policies: `Ok(false)`.
    pub fn sync_if_due(&mut self) -> io::Result<bool> {
        match self.policy {
            FsyncPolicy::Interval(d) if self.unsynced > 0 && self.last_sync.elapsed() >= d => {
                self.sync().map(|()| true)
            }
            _ => Ok(false),
        }
    }

    /// The torn tail [`Self::open`] cut off, as recovery reported it; `None` if it cut nothing.
    pub fn truncated(&self) -> Option<TailState> {
        self.truncated
    }

    /// Records in the file (those found at open plus those appended).
    pub fn records(&self) -> u64 {
        self.records
    }

    /// File length: the end of the last complete record.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the journal holds no records.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Records appended since the last `fdatasync`.
    pub fn unsynced(&self) -> u32 {
        self.unsynced
    }

    /// The policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps `lock` (the journal's [`JournalLock`]) until the writer is dropped, so the lock
    /// lives exactly as long as something may append.
    pub fn hold_lock(&mut self, lock: JournalLock) {
        self.lock = Some(lock);
    }

    /// True when the writer holds the journal's lock.
    pub fn holds_lock(&self) -> bool {
        self.lock.is_some()
    }
}

// ---------------------------------------------------------------------------------------------
// Lock
// ---------------------------------------------------------------------------------------------

/// An exclusive lock on a journal: one engine per journal.
///
/// The lock is a kernel lock (`flock`, through [`File::try_lock`]) on a sidecar file,
/// `<journal>.lock` ([`JournalLock::path_for`]), which holds the holder's process id as text. The
/// kernel releases it when the holder's file is closed, which includes the process dying in any
/// way (SIGKILL too), so a stale lock file never blocks a restart: only a live holder does. The
/// sidecar (not the journal itself) carries the lock because [`compact`] replaces the journal
/// file by a rename, which a lock on the journal's own inode would not survive. The sidecar is
/// never deleted (deleting it would let two processes lock two different files of one name).
///
/// Take it before anything else touches the journal (compaction, recovery, the writer), and keep
/// it for as long as orders may be sent: [`JournalWriter::hold_lock`] ties it to the writer.
pub struct JournalLock {
    file: File,
    path: PathBuf,
}

impl fmt::Debug for JournalLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalLock")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl JournalLock {
    /// The lock file of the journal at `journal`: its name with `.lock` appended.
    pub fn path_for(journal: &Path) -> PathBuf {
        let mut name = journal.as_os_str().to_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the lock of the journal at `journal` without waiting, and writes this process's
    /// id into the lock file. Another live holder: [`JournalError::Locked`] with its pid.
    pub fn acquire(journal: &Path) -> Result<JournalLock, JournalError> {
        let path = Self::path_for(journal);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                // A pid is a few digits: read at most 32 bytes, whatever the file holds.
                let mut text = String::new();
                let pid = match (&mut file).take(32).read_to_string(&mut text) {
                    Ok(_) => text.trim().parse::<u32>().ok(),
                    Err(_) => None,
                };
                return Err(JournalError::Locked {
                    journal: journal.to_path_buf(),
                    lock: path,
                    pid,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(JournalError::Io(e)),
        }
        file.set_len(0)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())?;
        Ok(JournalLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid written in the lock file of `journal`, if it holds one (for messages and tests;
    /// says nothing about whether the lock is held).
    pub fn holder(journal: &Path) -> Option<u32> {
        let mut text = String::new();
        File::open(Self::path_for(journal))
            .ok()?
            .take(32)
            .read_to_string(&mut text)
            .ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for JournalLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first says so explicitly.
        let _ = self.file.unlock();
    }
}

// ---------------------------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------------------------

/// An order that was intended and has no final state (fully filled, canceled or rejected).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredOrder {
    /// Our id.
    pub client_id: ClientOrderId,
    /// Instrument name.
    pub symbol: String,
    /// The order as intended.
    pub req: OrderRequest,
    /// Quantity filled so far (each fill counted once).
    pub filled: Qty,
    /// The venue's id, if it was acked.
    pub venue_order_id: Option<u64>,
    /// True once an ack was journaled (a fill without an ack leaves it false).
    pub acked: bool,
    /// The venue trade ids of its fills so far (each once), so reconciliation can tell which of
    /// the venue's trades for it the journal already holds.
    pub trade_ids: Vec<u64>,
    /// When the intent was written (writer's clock).
    pub ts_ns: u64,
}

impl RecoveredOrder {
    /// Quantity still open.
    pub fn leaves(&self) -> Qty {
        Qty(self.req.qty.0.saturating_sub(self.filled.0))
    }
}

/// The state rebuilt from a journal by [`recover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The engine-namespace number to give the next order (see the module docs).
    pub next_client_id: u64,
    /// Orders without a final state, in the order they were intended.
    pub open_orders: Vec<RecoveredOrder>,
    /// Positions by symbol (sorted), from every distinct fill. The mark is market data and is
    /// not journaled: it is zero here.
    pub positions: Vec<(String, Position)>,
    /// Distinct fills applied.
    pub fills: usize,
    /// Fills seen again with a `(client id, trade id)` already applied: counted, not applied.
    pub duplicate_fills: usize,
    /// The latest state of each `(symbol, trader)`, sorted.
    pub trader_states: Vec<(String, u32, Vec<u8>)>,
    /// How the records end.
    pub tail: TailState,
    /// Complete, intact records replayed.
    pub records: usize,
    /// Byte offset where the replayed records end (where a torn or corrupt record starts).
    pub valid_len: u64,
    /// Intents for a client id already intended: counted, ignored (the first one stands).
    pub duplicate_intents: usize,
    /// Acks, fills, cancels and rejects for client ids never intended: counted, not applied.
    pub unknown_order_events: usize,
}

struct OrderSlot {
    order: RecoveredOrder,
    closed: bool,
}

/// Applies records in journal order.
struct Replay {
    orders: Vec<OrderSlot>,
    index: HashMap<ClientOrderId, usize>,
    positions: BTreeMap<String, Position>,
    seen_fills: HashSet<(ClientOrderId, u64)>,
    trader_states: BTreeMap<(String, u32), Vec<u8>>,
    next_client_id: u64,
    fills: usize,
    duplicate_fills: usize,
    duplicate_intents: usize,
    unknown_order_events: usize,
    records: usize,
}

impl Replay {
    fn new() -> Self {
        Replay {
            orders: Vec::new(),
            index: HashMap::new(),
            positions: BTreeMap::new(),
            seen_fills: HashSet::new(),
            trader_states: BTreeMap::new(),
            next_client_id: 1,
            fills: 0,
            duplicate_fills: 0,
            duplicate_intents: 0,
            unknown_order_events: 0,
            records: 0,
        }
    }

    fn slot(&mut self, id: ClientOrderId) -> Option<&mut OrderSlot> {
        match self.index.get(&id) {
            Some(&i) => self.orders.get_mut(i),
            None => {
                self.unknown_order_events += 1;
                None
            }
        }
    }

    fn apply(&mut self, rec: &JournalRecord<'_>) {
        self.records += 1;
        match *rec {
            JournalRecord::Intent {
                client_id,
                symbol,
                req,
                ts_ns,
            } => {
                if client_id.namespace() == ClientOrderId::NS_ENGINE {
                    self.next_client_id = self.next_client_id.max(client_id.number() + 1);
                }
                if self.index.contains_key(&client_id) {
                    self.duplicate_intents += 1;
                    return;
                }
                self.index.insert(client_id, self.orders.len());
                self.orders.push(OrderSlot {
                    order: RecoveredOrder {
                        client_id,
                        symbol: symbol.to_owned(),
                        req,
                        filled: Qty::ZERO,
                        venue_order_id: None,
                        acked: false,
                        trade_ids: Vec::new(),
                        ts_ns,
                    },
                    closed: false,
                });
            }
            JournalRecord::Ack {
                client_id,
                venue_order_id,
                ..
            } => {
                if let Some(s) = self.slot(client_id) {
                    s.order.acked = true;
                    s.order.venue_order_id = Some(venue_order_id);
                }
            }
            JournalRecord::Fill {
                client_id,
                trade_id,
                price,
                qty,
                fee,
                ..
            } => {
                let Some(&i) = self.index.get(&client_id) else {
                    self.unknown_order_events += 1;
                    return;
                };
                if !self.seen_fills.insert((client_id, trade_id)) {
                    self.duplicate_fills += 1;
                    return;
                }
                self.fills += 1;
                let s = &mut self.orders[i];
                s.order.trade_ids.push(trade_id);
                s.order.filled = Qty(s.order.filled.0.saturating_add(qty.0.max(0)));
                if s.order.filled.0 >= s.order.req.qty.0 {
                    s.closed = true;
                }
                let side = s.order.req.side;
                let pos = match self.positions.get_mut(s.order.symbol.as_str()) {
                    Some(p) => p,
                    None => self.positions.entry(s.order.symbol.clone()).or_default(),
                };
                pos.apply_fill(side, price, qty, fee);
            }
            JournalRecord::Canceled { client_id, .. }
            | JournalRecord::Rejected { client_id, .. } => {
                if let Some(s) = self.slot(client_id) {
                    s.closed = true;
                }
            }
            JournalRecord::TraderState {
                symbol,
                trader,
                state,
                ..
            } => {
                let slot = self
                    .trader_states
                    .entry((symbol.to_owned(), trader))
                    .or_default();
                slot.clear();
                slot.extend_from_slice(state);
            }
            JournalRecord::NextClientId { next } => {
                self.next_client_id = self.next_client_id.max(next);
            }
            JournalRecord::Position { symbol, position } => {
                self.positions.insert(symbol.to_owned(), position);
            }
            JournalRecord::OpenOrder {
                client_id,
                symbol,
                req,
                filled,
                venue_order_id,
                acked,
                trade_ids,
                ts_ns,
            } => {
                if client_id.namespace() == ClientOrderId::NS_ENGINE {
                    self.next_client_id = self.next_client_id.max(client_id.number() + 1);
                }
                if self.index.contains_key(&client_id) {
                    self.duplicate_intents += 1;
                    return;
                }
                let ids: Vec<u64> = trade_ids
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                    .collect();
                for &t in &ids {
                    self.seen_fills.insert((client_id, t));
                }
                self.index.insert(client_id, self.orders.len());
                self.orders.push(OrderSlot {
                    order: RecoveredOrder {
                        client_id,
                        symbol: symbol.to_owned(),
                        req,
                        filled,
                        venue_order_id,
                        acked,
                        trade_ids: ids,
                        ts_ns,
                    },
                    closed: false,
                });
            }
        }
    }

    fn finish(self, tail: TailState, valid_len: u64) -> Recovered {
        Recovered {
            next_client_id: self.next_client_id,
            open_orders: self
                .orders
                .into_iter()
                .filter(|s| !s.closed)
                .map(|s| s.order)
                .collect(),
            positions: self.positions.into_iter().collect(),
            fills: self.fills,
            duplicate_fills: self.duplicate_fills,
            trader_states: self
                .trader_states
                .into_iter()
                .map(|((sym, trader), state)| (sym, trader, state))
                .collect(),
            tail,
            records: self.records,
            valid_len,
            duplicate_intents: self.duplicate_intents,
            unknown_order_events: self.unknown_order_events,
        }
    }
}

/// Rebuilds the state from the journal at `path`: every complete, intact record is replayed in
/// order; how the records end is in [`Recovered::tail`]. The file is only read. A missing file,
/// a foreign file, another format version or a damaged header is an error.
pub fn recover(path: impl AsRef<Path>) -> Result<Recovered, JournalError> {
    let bytes = std::fs::read(path)?;
    recover_bytes(&bytes)
}

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
/// [`JournalWriter::open`] would drop it. Call it holding the journal's [`JournalLock`] (as
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

/// [`recover`] over a journal's bytes in memory.
pub fn recover_bytes(bytes: &[u8]) -> Result<Recovered, JournalError> {
    let mut r = JournalReader::new(bytes)?;
    let mut replay = Replay::new();
    for e in r.by_ref() {
        replay.apply(&e.record);
    }
    let tail = r.tail().unwrap_or(TailState::Clean);
    Ok(replay.finish(tail, r.offset()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ClientOrderId {
        ClientOrderId::new(ClientOrderId::NS_ENGINE, n)
    }

    fn journal(recs: &[JournalRecord<'_>]) -> Vec<u8> {
        let mut out = encode_header(42).to_vec();
        let mut buf = Vec::new();
        for r in recs {
            encode_record(r, &mut buf).unwrap();
            out.extend_from_slice(&buf);
        }
        out
    }

    fn intent(n: u64, side: Side, qty: i64) -> JournalRecord<'static> {
        JournalRecord::Intent {
            client_id: id(n),
            symbol: "BTCUSDT",
            req: OrderRequest {
                side,
                price: Price(100 * 100_000_000),
                qty: Qty(qty),
                order_type: OrderType::LimitGtc,
            },
            ts_ns: n,
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let h = encode_header(42);
        assert_eq!(&h[..8], &MAGIC);
        assert_eq!(le_u16(&h, 8), 1);
        assert_eq!(le_u16(&h, 10), 32);
        assert_eq!(le_u32(&h, 12), 0);
        assert_eq!(le_u64(&h, 16), 42);
        assert_eq!(le_u32(&h, 24), 0);
        assert_eq!(le_u32(&h, 28), crc32fast::hash(&h[..28]));
        let parsed = parse_header(&h).unwrap().unwrap();
        assert_eq!(parsed.created_ns, 42);
    }

    #[test]
    fn record_layout_is_as_documented() {
        let mut buf = Vec::new();
        let rec = JournalRecord::Ack {
            client_id: id(7),
            venue_order_id: 0x0102_0304_0506_0708,
            ts_ns: 99,
        };
        encode_record(&rec, &mut buf).unwrap();
        assert_eq!(buf.len(), 16 + 24);
        assert_eq!(le_u32(&buf, 0), 24);
        assert_eq!(le_u32(&buf, 4), !24u32);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&buf[0..8]);
        crc.update(&buf[12..]);
        assert_eq!(le_u32(&buf, 8), crc.finalize());
        assert_eq!(buf[12], KIND_ACK);
        assert_eq!(&buf[13..16], &[0, 0, 0]);
        assert_eq!(le_u64(&buf, 16), id(7).0);
        assert_eq!(le_u64(&buf, 24), 99);
        assert_eq!(le_u64(&buf, 32), 0x0102_0304_0506_0708);

        let rec = intent(3, Side::Sell, 5);
        encode_record(&rec, &mut buf).unwrap();
        assert_eq!(buf.len(), 16 + 36 + 7);
        let p = &buf[16..];
        assert_eq!(le_u64(p, 0), id(3).0);
        assert_eq!(le_u64(p, 8), 3);
        assert_eq!(le_u64(p, 16), 100 * 100_000_000);
        assert_eq!(le_u64(p, 24), 5);
        assert_eq!(&p[32..36], &[1, 0, 7, 0]);
        assert_eq!(&p[36..], b"BTCUSDT");

        let rec = JournalRecord::TraderState {
            symbol: "ETH",
            trader: 0x0a0b_0c0d,
            state: b"xyz",
            ts_ns: 5,
        };
        encode_record(&rec, &mut buf).unwrap();
        let p = &buf[16..];
        assert_eq!(p.len(), 16 + 3 + 3);
        assert_eq!(le_u64(p, 0), 5);
        assert_eq!(le_u32(p, 8), 0x0a0b_0c0d);
        assert_eq!(&p[12..16], &[3, 0, 0, 0]);
        assert_eq!(&p[16..], b"ETHxyz");
    }

    #[test]
    fn damaged_length_is_corrupt_not_torn() {
        let bytes = journal(&[intent(1, Side::Buy, 5), intent(2, Side::Buy, 5)]);
        // Make the first record's length claim more than the file holds.
        let mut b = bytes.clone();
        b[HEADER_LEN + 1] ^= 0x10;
        let mut r = JournalReader::new(&b).unwrap();
        assert!(r.next().is_none());
        assert_eq!(
            r.tail(),
            Some(TailState::Corrupt {
                offset: HEADER_LEN as u64
            })
        );
        // A payload that does not decode, with a valid CRC, is corrupt too.
        let mut b = bytes.clone();
        b[HEADER_LEN + 12] = 99;
        let mut crc = crc32fast::Hasher::new();
        let len = le_u32(&b, HEADER_LEN) as usize;
        crc.update(&b[HEADER_LEN..HEADER_LEN + 8]);
        crc.update(&b[HEADER_LEN + 12..HEADER_LEN + 16 + len]);
        let c = crc.finalize().to_le_bytes();
        b[HEADER_LEN + 8..HEADER_LEN + 12].copy_from_slice(&c);
        let rec = recover_bytes(&b).unwrap();
        assert_eq!(
            rec.tail,
            TailState::Corrupt {
                offset: HEADER_LEN as u64
            }
        );
        assert_eq!(rec.records, 0);
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_bad_codes() {
        let mut p = Vec::new();
        JournalRecord::NextClientId { next: 5 }
            .encode_payload(&mut p)
            .unwrap();
        assert!(JournalRecord::decode(KIND_NEXT_CLIENT_ID, &p).is_some());
        p.push(0);
        assert!(JournalRecord::decode(KIND_NEXT_CLIENT_ID, &p).is_none());
        let mut p = Vec::new();
        intent(1, Side::Buy, 1).encode_payload(&mut p).unwrap();
        p[32] = 2; // no such side
        assert!(JournalRecord::decode(KIND_INTENT, &p).is_none());
        p[32] = 0;
        p[33] = 4; // no such order type
        assert!(JournalRecord::decode(KIND_INTENT, &p).is_none());
        p[33] = 0;
        p[34] = 0; // empty symbol
        assert!(JournalRecord::decode(KIND_INTENT, &p).is_none());
        assert!(JournalRecord::decode(0, &[]).is_none());
    }

    #[test]
    fn encode_refuses_bad_symbols_and_clears_nothing_written() {
        let mut buf = Vec::new();
        let long = "X".repeat(MAX_SYMBOL_LEN + 1);
        for sym in ["", long.as_str()] {
            let rec = JournalRecord::TraderState {
                symbol: sym,
                trader: 1,
                state: b"",
                ts_ns: 0,
            };
            let e = encode_record(&rec, &mut buf).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        let big = vec![0u8; MAX_PAYLOAD];
        let rec = JournalRecord::TraderState {
            symbol: "A",
            trader: 1,
            state: &big,
            ts_ns: 0,
        };
        assert!(encode_record(&rec, &mut buf).is_err());
        let ok = JournalRecord::TraderState {
            symbol: "A",
            trader: 1,
            state: &big[..MAX_PAYLOAD - 17],
            ts_ns: 0,
        };
        encode_record(&ok, &mut buf).unwrap();
        assert_eq!(buf.len(), RECORD_HEADER_LEN + MAX_PAYLOAD);
    }

    #[test]
    fn replay_closes_orders_and_counts_strays() {
        let bytes = journal(&[
            intent(1, Side::Buy, 10),
            intent(2, Side::Sell, 10),
            intent(2, Side::Sell, 10),
            JournalRecord::Fill {
                client_id: id(1),
                trade_id: 1,
                price: Price(5),
                qty: Qty(10),
                fee: 0,
                ts_ns: 0,
            },
            JournalRecord::Rejected {
                client_id: id(9),
                code: -2010,
                ts_ns: 0,
            },
            JournalRecord::NextClientId { next: 40 },
        ]);
        let rec = recover_bytes(&bytes).unwrap();
        assert_eq!(rec.tail, TailState::Clean);
        assert_eq!(rec.records, 6);
        assert_eq!(rec.valid_len, bytes.len() as u64);
        assert_eq!(rec.open_orders.len(), 1);
        assert_eq!(rec.open_orders[0].client_id, id(2));
        assert_eq!(rec.open_orders[0].leaves(), Qty(10));
        assert_eq!(rec.duplicate_intents, 1);
        assert_eq!(rec.unknown_order_events, 1);
        assert_eq!(rec.next_client_id, 40);
    }

    #[test]
    fn errors_display_their_context() {
        let e = JournalError::CorruptRecord { offset: 77 };
        assert!(e.to_string().contains("byte offset 77"));
        assert!(e.to_string().contains("refusing to append"));
        let e = JournalError::from(io::Error::from(io::ErrorKind::NotFound));
        assert!(std::error::Error::source(&e).is_some());
        assert!(JournalError::UnsupportedVersion(9)
            .to_string()
            .contains('9'));
    }
}
