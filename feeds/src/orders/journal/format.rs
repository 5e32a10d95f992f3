//! The journal's bytes: the file header, record framing, each record's payload, and the reader
//! that classifies how the records end. No I/O: bytes in, records out, and records to bytes.
//!
//! # Format
//!
//! A fixed header, then framed records. Every integer is **little-endian**. The file is read
//! whole at recovery (and at [`JournalWriter::open`](super::JournalWriter::open), to validate it); [`compact`](fn@super::compact) rewrites a
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
//! Kinds 8 and 9 are written only by [`compact`](fn@super::compact): a symbol's whole position, and an order still
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
//!   [`MAX_NEXT_CLIENT_ID`] (the writer refuses to append such a record, `InvalidInput`, so
//!   only damage can put one on disk). This holds for the last record too: writing whole records
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
use std::io;
use std::path::PathBuf;

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
pub(super) const HEADER_FIXED: usize = 12;
pub(super) const HEADER_CRC_AT: usize = 28;

pub(super) const KIND_INTENT: u8 = 1;
pub(super) const KIND_ACK: u8 = 2;
pub(super) const KIND_FILL: u8 = 3;
pub(super) const KIND_CANCELED: u8 = 4;
pub(super) const KIND_REJECTED: u8 = 5;
pub(super) const KIND_TRADER_STATE: u8 = 6;
pub(super) const KIND_NEXT_CLIENT_ID: u8 = 7;
pub(super) const KIND_POSITION: u8 = 8;
pub(super) const KIND_OPEN_ORDER: u8 = 9;

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
    pub(super) fn encode_payload(&self, out: &mut Vec<u8>) -> io::Result<()> {
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
    pub(super) fn decode(kind: u8, payload: &'a [u8]) -> Option<Self> {
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

pub(super) fn symbol_len(symbol: &str) -> io::Result<u8> {
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

pub(super) fn symbol_from(b: &[u8]) -> Option<&str> {
    if b.is_empty() {
        return None;
    }
    core::str::from_utf8(b).ok()
}

pub(super) fn side_code(s: Side) -> u8 {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

pub(super) fn side_from(c: u8) -> Option<Side> {
    match c {
        0 => Some(Side::Buy),
        1 => Some(Side::Sell),
        _ => None,
    }
}

pub(super) fn type_code(t: OrderType) -> u8 {
    match t {
        OrderType::LimitGtc => 0,
        OrderType::LimitIoc => 1,
        OrderType::LimitFok => 2,
        OrderType::Market => 3,
    }
}

pub(super) fn type_from(c: u8) -> Option<OrderType> {
    match c {
        0 => Some(OrderType::LimitGtc),
        1 => Some(OrderType::LimitIoc),
        2 => Some(OrderType::LimitFok),
        3 => Some(OrderType::Market),
        _ => None,
    }
}

/// A little-endian cursor over a payload.
pub(super) struct Cur<'a> {
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
    /// An I/O error (a missing file at [`recover`](super::recover) included).
    Io(io::Error),
    /// The file does not start with the journal magic; it was not touched.
    BadMagic,
    /// A journal of a format version this build cannot read; it was not touched.
    UnsupportedVersion(u16),
    /// The file header's CRC does not match or its length is impossible; nothing can be trusted.
    CorruptHeader,
    /// [`JournalWriter::open`](super::JournalWriter::open) found a damaged record and refuses to append after it; the file
    /// was not touched.
    CorruptRecord {
        /// Byte offset of the damaged record.
        offset: u64,
    },
    /// Another process holds the journal's lock ([`JournalLock`](super::JournalLock)): a second engine on one
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

pub(super) fn encode_header(created_ns: u64) -> [u8; HEADER_LEN] {
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
pub(super) fn parse_header(b: &[u8]) -> Result<Option<JournalHeader>, JournalError> {
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
pub(super) fn encode_record(rec: &JournalRecord<'_>, buf: &mut Vec<u8>) -> io::Result<()> {
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
    // What the reader would refuse as out of range (a position no fills can reach, an open
    // order with a negative quantity, a `NextClientId` beyond 56 bits) is refused here, so a
    // journal never holds a record its own recovery calls corrupt. (Only these kinds carry range
    // checks; the order path's intents, acks and fills are not decoded again.)
    let checked = matches!(
        rec.kind(),
        KIND_NEXT_CLIENT_ID | KIND_POSITION | KIND_OPEN_ORDER
    );
    if checked && JournalRecord::decode(rec.kind(), &buf[RECORD_HEADER_LEN..]).is_none() {
        buf.clear();
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "journal record with an out-of-range value (see the journal format's range checks); not written",
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
