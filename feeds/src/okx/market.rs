//! OKX v5 public market data: WebSocket frames (and REST `books` bodies) to [`Event`]s.
//!
//! See the [module overview](super) for what is decoded and how OKX's ids map onto the book.
//! A frame is one object `{"arg":{"channel":..,"instId":..},"action":..,"data":[{..},..]}`
//! (keys in any order) or an event reply `{"event":..}`, or the bare text `pong`. The frame is
//! read in two passes over the same bytes, both borrowing: the first validates the whole frame
//! and notes where `arg`, `action` and `data` are; the second reads `arg`, then each element of
//! `data`. Nothing is allocated; a frame that fails appends nothing.

use crate::json::{self, JsonStr, Scanner, ValueKind};
use crate::venue::decode::{DecodeError, DecodeStats, Decoded, IgnoreReason};
use engine::event::{
    BookChecksum, BookSide, BookTicker, DepthLevel, Event, EventKind, Gap, GapReason, LevelFlags,
    SnapshotLevel, Trade,
};
use engine::fixed::{parse_fixed, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// Nanoseconds per OKX millisecond timestamp.
const NS_PER_MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Slots: where a known key's value is.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Kind {
    #[default]
    Absent,
    Str,
    EscStr,
    Num,
    Object,
    Array,
    Other,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    kind: Kind,
    start: u32,
    end: u32,
}

impl Slot {
    #[inline(always)]
    fn present(&self) -> bool {
        self.kind != Kind::Absent
    }

    #[inline(always)]
    fn bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

/// Top-level keys.
const TOP: [&str; 5] = ["arg", "action", "data", "event", "code"];
const T_ARG: usize = 0;
const T_ACTION: usize = 1;
const T_DATA: usize = 2;
const T_EVENT: usize = 3;
const T_CODE: usize = 4;

/// Keys of `arg`.
const ARG: [&str; 2] = ["channel", "instId"];
const A_CHANNEL: usize = 0;
const A_INST: usize = 1;

/// Keys of a `books` data element (and of a REST `books` data element).
const BOOK: [&str; 6] = ["asks", "bids", "ts", "checksum", "seqId", "prevSeqId"];
const B_ASKS: usize = 0;
const B_BIDS: usize = 1;
const B_TS: usize = 2;
const B_CHECKSUM: usize = 3;
const B_SEQ: usize = 4;
const B_PREV: usize = 5;

/// Keys of a `trades` data element.
const TRADE: [&str; 5] = ["tradeId", "px", "sz", "side", "ts"];
const TR_ID: usize = 0;
const TR_PX: usize = 1;
const TR_SZ: usize = 2;
const TR_SIDE: usize = 3;
const TR_TS: usize = 4;

/// Keys of a `tickers` data element.
const TICKER: [&str; 5] = ["bidPx", "bidSz", "askPx", "askSz", "ts"];
const TK_BID_PX: usize = 0;
const TK_BID_SZ: usize = 1;
const TK_ASK_PX: usize = 2;
const TK_ASK_SZ: usize = 3;
const TK_TS: usize = 4;

/// Keys of a REST response.
const REST: [&str; 2] = ["code", "data"];
const R_CODE: usize = 0;
const R_DATA: usize = 1;

/// The index of key `k` in `names` (escaped keys are decoded on the stack first).
#[inline(always)]
fn key_index(k: &JsonStr<'_>, names: &[&str]) -> Option<usize> {
    match k.unescaped() {
        Some(raw) => names.iter().position(|n| n.as_bytes() == raw),
        None => escaped_key_index(k, names),
    }
}

#[cold]
fn escaped_key_index(k: &JsonStr<'_>, names: &[&str]) -> Option<usize> {
    let mut tmp = [0u8; 16];
    let raw = k.decode_into(&mut tmp)?;
    names.iter().position(|n| n.as_bytes() == raw)
}

/// Reads one object's members into `slots` (by `names`); unknown keys are skipped (validated).
fn scan_object<const N: usize>(
    sc: &mut Scanner<'_>,
    names: &[&'static str; N],
    slots: &mut [Slot; N],
) -> Result<(), DecodeError> {
    sc.begin_object()?;
    while let Some(k) = sc.next_key()? {
        let Some(i) = key_index(&k, names) else {
            sc.skip_value()?;
            continue;
        };
        let Some(slot) = slots.get_mut(i) else {
            sc.skip_value()?;
            continue;
        };
        if slot.present() {
            return Err(DecodeError::DuplicateField(
                names.get(i).copied().unwrap_or("?"),
            ));
        }
        *slot = read_slot(sc)?;
    }
    Ok(())
}

#[inline(always)]
fn read_slot(sc: &mut Scanner<'_>) -> Result<Slot, DecodeError> {
    let (kind, start, end) = match sc.peek()? {
        ValueKind::String => {
            let s = sc.string()?;
            let kind = if s.has_escapes() {
                Kind::EscStr
            } else {
                Kind::Str
            };
            (kind, s.offset(), s.offset() + s.raw().len())
        }
        ValueKind::Number => {
            let n = sc.number()?;
            (Kind::Num, n.offset(), n.offset() + n.raw().len())
        }
        ValueKind::Object => {
            let r = sc.skip_value()?;
            (Kind::Object, r.start, r.end)
        }
        ValueKind::Array => {
            let r = sc.skip_value()?;
            (Kind::Array, r.start, r.end)
        }
        _ => {
            let r = sc.skip_value()?;
            (Kind::Other, r.start, r.end)
        }
    };
    Ok(Slot {
        kind,
        start: start as u32,
        end: end as u32,
    })
}

// ---------------------------------------------------------------------------------------------
// Field readers.

/// Longest escaped string decoded on the stack.
const ESC_BUF: usize = 256;

/// Runs `op` on a string field's content (decoded if it has escapes).
#[inline(always)]
fn str_field<R>(
    buf: &[u8],
    s: Slot,
    field: &'static str,
    op: impl FnOnce(&[u8]) -> R,
) -> Result<R, DecodeError> {
    match s.kind {
        Kind::Str => Ok(op(s.bytes(buf))),
        Kind::EscStr => with_unescaped(s.bytes(buf), field, op),
        Kind::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

#[cold]
fn with_unescaped<R>(
    raw: &[u8],
    field: &'static str,
    op: impl FnOnce(&[u8]) -> R,
) -> Result<R, DecodeError> {
    let mut tmp = [0u8; ESC_BUF];
    let s = json::unescape(raw, &mut tmp).ok_or(DecodeError::StringTooLong { field })?;
    Ok(op(s))
}

#[inline(always)]
fn fixed_of(bytes: &[u8], field: &'static str) -> Result<i64, DecodeError> {
    parse_fixed(bytes).map_err(|err| DecodeError::BadDecimal { field, err })
}

/// A decimal string field.
#[inline(always)]
fn decimal(buf: &[u8], s: Slot, field: &'static str) -> Result<i64, DecodeError> {
    str_field(buf, s, field, |b| fixed_of(b, field))?
}

/// A decimal string field where OKX sends `""` for "none" (an empty side of a ticker): 0.
#[inline(always)]
fn decimal_or_empty(buf: &[u8], s: Slot, field: &'static str) -> Result<i64, DecodeError> {
    str_field(buf, s, field, |b| {
        if b.is_empty() {
            Ok(0)
        } else {
            fixed_of(b, field)
        }
    })?
}

/// Digits in a string (`"338476307"`, OKX's ids and times) as a `u64`.
#[inline(always)]
fn u64_of_digits(b: &[u8], field: &'static str) -> Result<u64, DecodeError> {
    json::parse_u64(b).map_err(|e| match e {
        json::NumError::NotUnsigned => DecodeError::WrongType { field },
        json::NumError::Overflow => DecodeError::IntOverflow { field },
    })
}

/// A string of digits.
#[inline(always)]
fn u64_string(buf: &[u8], s: Slot, field: &'static str) -> Result<u64, DecodeError> {
    str_field(buf, s, field, |b| u64_of_digits(b, field))?
}

/// A millisecond time string, in ns.
#[inline(always)]
fn ms_string(buf: &[u8], s: Slot, field: &'static str) -> Result<u64, DecodeError> {
    u64_string(buf, s, field)?
        .checked_mul(NS_PER_MS)
        .ok_or(DecodeError::IntOverflow { field })
}

/// A JSON integer (optionally negative) as an `i64`.
#[inline(always)]
fn i64_number(buf: &[u8], s: Slot, field: &'static str) -> Result<i64, DecodeError> {
    if s.kind != Kind::Num {
        return Err(match s.kind {
            Kind::Absent => DecodeError::MissingField(field),
            _ => DecodeError::WrongType { field },
        });
    }
    let b = s.bytes(buf);
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let mag = u64_of_digits(digits, field)?;
    if neg {
        if mag > i64::MAX as u64 + 1 {
            return Err(DecodeError::IntOverflow { field });
        }
        Ok((mag as i64).wrapping_neg())
    } else {
        i64::try_from(mag).map_err(|_| DecodeError::IntOverflow { field })
    }
}

/// An array field's slot.
#[inline(always)]
fn array(s: Slot, field: &'static str) -> Result<Slot, DecodeError> {
    match s.kind {
        Kind::Array => Ok(s),
        Kind::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

/// Reads a `[["px","sz","0","numOrders"], ...]` array, pushing `mk(side, price, qty)` per level.
/// A level is 2 to 4 strings (v5 sends 4: price, size, liquidated orders (deprecated, `"0"`),
/// order count; older frames fewer); only the first two are used, the rest must be strings.
fn levels(
    buf: &[u8],
    slot: Slot,
    field: &'static str,
    side: BookSide,
    out: &mut Vec<Event>,
    mk: impl Fn(BookSide, Price, Qty) -> Event,
) -> Result<(), DecodeError> {
    let wrong = DecodeError::WrongType { field };
    let mut sc = Scanner::at(buf, slot.start as usize);
    sc.begin_array()?;
    while sc.next_element()? {
        if sc.peek()? != ValueKind::Array {
            return Err(wrong);
        }
        sc.begin_array()?;
        let mut n = 0;
        let (mut px, mut sz) = (None, None);
        while sc.next_element()? {
            if sc.peek()? != ValueKind::String {
                return Err(wrong);
            }
            let s = sc.string()?;
            match n {
                0 => px = Some(s),
                1 => sz = Some(s),
                _ => {}
            }
            n += 1;
        }
        let (Some(px), Some(sz), true) = (px, sz, n <= 4) else {
            return Err(wrong);
        };
        let price = level_decimal(&px, field)?;
        let qty = level_decimal(&sz, field)?;
        out.push(mk(side, Price(price), Qty(qty)));
    }
    Ok(())
}

#[inline(always)]
fn level_decimal(s: &JsonStr<'_>, field: &'static str) -> Result<i64, DecodeError> {
    match s.unescaped() {
        Some(b) => fixed_of(b, field),
        None => with_unescaped(s.raw(), field, |b| fixed_of(b, field))?,
    }
}

/// Marks the last level event appended since `start` with `LAST`, or appends `empty` marked
/// `LAST | EMPTY` if there is none.
fn finish_levels(out: &mut Vec<Event>, start: usize, mut empty: Event) {
    let has_levels = out.len() > start;
    match out.last_mut() {
        Some(ev) if has_levels => ev.add_level_flags(LevelFlags::LAST),
        _ => {
            empty.add_level_flags(LevelFlags::LAST.with(LevelFlags::EMPTY));
            out.push(empty);
        }
    }
}

/// `final - prev - 1`, saturated at `u32::MAX` (a false gap is safe, a false bridge is not).
#[inline(always)]
fn span(prev: u64, fin: u64) -> u32 {
    u32::try_from(fin.saturating_sub(prev).saturating_sub(1)).unwrap_or(u32::MAX)
}

/// What a data element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Books,
    Trades,
    Tickers,
}

fn channel_of(name: &[u8]) -> Option<Channel> {
    match name {
        // The tick-by-tick books have the same messages as `books`.
        b"books" | b"books-l2-tbt" | b"books50-l2-tbt" => Some(Channel::Books),
        b"trades" => Some(Channel::Trades),
        b"tickers" => Some(Channel::Tickers),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The decoder.

/// Decodes OKX v5 public market data; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct OkxDecoder {
    symbols: SymbolTable,
    stats: DecodeStats,
    /// Per symbol index: the id of the last `books` message (its `seqId`, or the decoder's own
    /// number when the venue sent none).
    last_id: Vec<u64>,
    /// `books` updates with `seqId < prevSeqId` (OKX's sequence reset after maintenance).
    sequence_resets: u64,
}

impl OkxDecoder {
    /// A decoder that knows the OKX symbols of `symbols`.
    pub fn new(symbols: SymbolTable) -> Self {
        let n = symbols.len();
        OkxDecoder {
            symbols,
            stats: DecodeStats::default(),
            last_id: vec![0; n],
            sequence_resets: 0,
        }
    }

    /// Counters since construction.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The symbol table.
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// `books` updates seen with `seqId < prevSeqId` (each became a [`Gap`] event).
    pub fn sequence_resets(&self) -> u64 {
        self.sequence_resets
    }

    /// Decodes one WebSocket frame received at `recv_ns`, appending its events to `out`. On
    /// error `out` is left as it was.
    #[inline]
    pub fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        let len0 = out.len();
        let r = self.decode_frame(frame, recv_ns, out);
        self.account(r, len0, out)
    }

    /// Decodes a REST `GET /api/v5/market/books` body for `symbol` (`{"code":"0","msg":"",
    /// "data":[{"asks":..,"bids":..,"ts":..,"seqId":..}]}`), appending [`SnapshotLevel`]s whose
    /// id is the body's `seqId` (required: without it nothing could be bridged), then its
    /// checksum if non-zero. A reply with a non-zero `code` is `Ignored(Response)`.
    pub fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        let len0 = out.len();
        let r = self.decode_rest(body, symbol, recv_ns, out);
        self.account(r, len0, out)
    }

    #[inline(always)]
    fn account(
        &mut self,
        r: Result<Decoded, DecodeError>,
        len0: usize,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        self.stats.messages += 1;
        match r {
            Ok(Decoded::Events(n)) => self.stats.events += n as u64,
            Ok(Decoded::Ignored(why)) => {
                self.stats.ignored += 1;
                if why == IgnoreReason::UnknownSymbol {
                    self.stats.unknown_symbol += 1;
                }
            }
            Err(_) => {
                self.stats.decode_errors += 1;
                out.truncate(len0);
            }
        }
        r
    }

    fn decode_frame(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        if frame.len() >= u32::MAX as usize {
            return Err(DecodeError::FrameTooLarge);
        }
        if frame == b"pong" {
            return Ok(Decoded::Ignored(IgnoreReason::Heartbeat));
        }
        let mut sc = Scanner::new(frame);
        if sc.peek()? != ValueKind::Object {
            sc.skip_value()?;
            sc.finish()?;
            return Err(DecodeError::NotAnObject);
        }
        let mut top = [Slot::default(); TOP.len()];
        scan_object(&mut sc, &TOP, &mut top)?;
        sc.finish()?;

        if top[T_EVENT].present() {
            // subscribe / unsubscribe / error / notice / channel-conn-count ...
            return Ok(Decoded::Ignored(IgnoreReason::Response));
        }
        let arg = top[T_ARG];
        match arg.kind {
            Kind::Object => {}
            Kind::Absent if top[T_CODE].present() => {
                return Ok(Decoded::Ignored(IgnoreReason::Response))
            }
            Kind::Absent => return Ok(Decoded::Ignored(IgnoreReason::UnknownStream)),
            _ => return Err(DecodeError::WrongType { field: "arg" }),
        }
        let mut a = [Slot::default(); ARG.len()];
        scan_object(&mut Scanner::at(frame, arg.start as usize), &ARG, &mut a)?;
        let Some(channel) = str_field(frame, a[A_CHANNEL], "channel", channel_of)? else {
            return Ok(Decoded::Ignored(IgnoreReason::UnknownStream));
        };
        let data = array(top[T_DATA], "data")?;
        let symbol = str_field(frame, a[A_INST], "instId", |s| {
            self.symbols.lookup_on(Venue::Okx, s)
        })?;
        let Some(symbol) = symbol else {
            return Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol));
        };
        let snapshot = if channel == Channel::Books {
            str_field(frame, top[T_ACTION], "action", |s| match s {
                b"snapshot" => Ok(true),
                b"update" => Ok(false),
                _ => Err(DecodeError::WrongType { field: "action" }),
            })??
        } else {
            false
        };

        let start = out.len();
        let mut sc = Scanner::at(frame, data.start as usize);
        sc.begin_array()?;
        while sc.next_element()? {
            if sc.peek()? != ValueKind::Object {
                return Err(DecodeError::WrongType { field: "data" });
            }
            match channel {
                Channel::Books => {
                    let mut f = [Slot::default(); BOOK.len()];
                    scan_object(&mut sc, &BOOK, &mut f)?;
                    self.book_message(frame, &f, symbol, snapshot, false, recv_ns, out)?;
                }
                Channel::Trades => {
                    let mut f = [Slot::default(); TRADE.len()];
                    scan_object(&mut sc, &TRADE, &mut f)?;
                    out.push(Event::new(
                        recv_ns,
                        symbol,
                        EventKind::Trade(trade(frame, &f)?),
                    ));
                }
                Channel::Tickers => {
                    let mut f = [Slot::default(); TICKER.len()];
                    scan_object(&mut sc, &TICKER, &mut f)?;
                    let t = ticker(frame, &f)?;
                    out.push(Event::new(recv_ns, symbol, EventKind::BookTicker(t)));
                }
            }
        }
        Ok(Decoded::Events(out.len() - start))
    }

    fn decode_rest(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        if body.len() >= u32::MAX as usize {
            return Err(DecodeError::FrameTooLarge);
        }
        let mut sc = Scanner::new(body);
        if sc.peek()? != ValueKind::Object {
            sc.skip_value()?;
            sc.finish()?;
            return Err(DecodeError::NotAnObject);
        }
        let mut top = [Slot::default(); REST.len()];
        scan_object(&mut sc, &REST, &mut top)?;
        sc.finish()?;
        let ok = match top[R_CODE].kind {
            Kind::Absent => true,
            Kind::Num => top[R_CODE].bytes(body) == b"0",
            _ => str_field(body, top[R_CODE], "code", |c| c == b"0")?,
        };
        if !ok {
            return Ok(Decoded::Ignored(IgnoreReason::Response));
        }
        let data = array(top[R_DATA], "data")?;
        let start = out.len();
        let mut sc = Scanner::at(body, data.start as usize);
        sc.begin_array()?;
        while sc.next_element()? {
            if sc.peek()? != ValueKind::Object {
                return Err(DecodeError::WrongType { field: "data" });
            }
            let mut f = [Slot::default(); BOOK.len()];
            scan_object(&mut sc, &BOOK, &mut f)?;
            self.book_message(body, &f, symbol, true, true, recv_ns, out)?;
        }
        Ok(Decoded::Events(out.len() - start))
    }

    /// One `books` message (a data element): levels, then its checksum. `rest`: a REST body,
    /// whose snapshot must carry a `seqId`.
    #[allow(clippy::too_many_arguments)]
    fn book_message(
        &mut self,
        buf: &[u8],
        f: &[Slot; BOOK.len()],
        symbol: SymbolId,
        snapshot: bool,
        rest: bool,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), DecodeError> {
        let exch_ns = ms_string(buf, f[B_TS], "ts")?;
        let checksum = if f[B_CHECKSUM].present() {
            let c = i64_number(buf, f[B_CHECKSUM], "checksum")?;
            i32::try_from(c).map_err(|_| DecodeError::IntOverflow { field: "checksum" })?
        } else {
            0
        };
        let seq = if f[B_SEQ].present() {
            let s = i64_number(buf, f[B_SEQ], "seqId")?;
            Some(u64::try_from(s).map_err(|_| DecodeError::BadRange { field: "seqId" })?)
        } else {
            None
        };
        let prev = if f[B_PREV].present() {
            Some(i64_number(buf, f[B_PREV], "prevSeqId")?)
        } else {
            None
        };
        let bids = array(f[B_BIDS], "bids")?;
        let asks = array(f[B_ASKS], "asks")?;
        let last = self
            .last_id
            .get(symbol.index())
            .copied()
            .unwrap_or_default();

        let id = if snapshot {
            let id = match seq {
                Some(s) => s,
                None if rest => return Err(DecodeError::MissingField("seqId")),
                None => last.saturating_add(1),
            };
            let mk = |side, price, qty| {
                Event::new(
                    recv_ns,
                    symbol,
                    EventKind::Snapshot(SnapshotLevel {
                        last_update_id: id,
                        price,
                        qty,
                        side,
                        flags: LevelFlags::default(),
                    }),
                )
            };
            let start = out.len();
            levels(buf, bids, "bids", BookSide::Bid, out, mk)?;
            levels(buf, asks, "asks", BookSide::Ask, out, mk)?;
            finish_levels(out, start, mk(BookSide::Bid, Price::ZERO, Qty::ZERO));
            id
        } else {
            let (prev, fin) = match (seq, prev) {
                (Some(s), Some(p)) => {
                    let p = u64::try_from(p)
                        .map_err(|_| DecodeError::BadRange { field: "prevSeqId" })?;
                    if s < p {
                        // Sequence reset (maintenance): the chain is broken, the book must be
                        // rebuilt from a new snapshot. Its levels cannot be placed.
                        self.sequence_resets += 1;
                        self.set_last(symbol, s);
                        let gap = Gap {
                            lost: 0,
                            reason: GapReason::Sequence,
                        };
                        out.push(Event::new(recv_ns, symbol, EventKind::Gap(gap)));
                        return Ok(());
                    }
                    if s == p {
                        // No change: OKX documents `seqId == prevSeqId` as an update without
                        // levels. Nothing to apply; its checksum still checks the book at `s`.
                        if !(is_empty_array(buf, bids) && is_empty_array(buf, asks)) {
                            return Err(DecodeError::BadRange { field: "seqId" });
                        }
                        self.set_last(symbol, s);
                        push_checksum(out, recv_ns, symbol, s, checksum);
                        return Ok(());
                    }
                    (p, s)
                }
                (Some(_), None) => return Err(DecodeError::MissingField("prevSeqId")),
                (None, Some(_)) => return Err(DecodeError::MissingField("seqId")),
                (None, None) => (last, last.saturating_add(1)),
            };
            let update_span = span(prev, fin);
            let mk = |side, price, qty| {
                Event::new(
                    recv_ns,
                    symbol,
                    EventKind::Depth(DepthLevel {
                        exch_ns,
                        final_update_id: fin,
                        price,
                        qty,
                        update_span,
                        side,
                        flags: LevelFlags::default(),
                    }),
                )
            };
            let start = out.len();
            levels(buf, bids, "bids", BookSide::Bid, out, mk)?;
            levels(buf, asks, "asks", BookSide::Ask, out, mk)?;
            finish_levels(out, start, mk(BookSide::Bid, Price::ZERO, Qty::ZERO));
            fin
        };
        self.set_last(symbol, id);
        push_checksum(out, recv_ns, symbol, id, checksum);
        Ok(())
    }

    #[inline(always)]
    fn set_last(&mut self, symbol: SymbolId, id: u64) {
        if let Some(l) = self.last_id.get_mut(symbol.index()) {
            *l = id;
        }
    }
}

/// True if the array at `slot` has no elements.
fn is_empty_array(buf: &[u8], slot: Slot) -> bool {
    slot.bytes(buf)
        .iter()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count()
        == 2
}

/// A [`BookChecksum`] after the message `id`, if the venue sent a non-zero checksum.
#[inline(always)]
fn push_checksum(out: &mut Vec<Event>, recv_ns: u64, symbol: SymbolId, id: u64, checksum: i32) {
    if checksum != 0 {
        out.push(Event::new(
            recv_ns,
            symbol,
            EventKind::BookChecksum(BookChecksum {
                update_id: id,
                checksum: checksum as u32,
            }),
        ));
    }
}

fn trade(buf: &[u8], f: &[Slot; TRADE.len()]) -> Result<Trade, DecodeError> {
    let buyer_maker = str_field(buf, f[TR_SIDE], "side", |s| match s {
        b"buy" => Ok(false),
        b"sell" => Ok(true),
        _ => Err(DecodeError::WrongType { field: "side" }),
    })??;
    Ok(Trade {
        exch_ns: ms_string(buf, f[TR_TS], "ts")?,
        trade_id: u64_string(buf, f[TR_ID], "tradeId")?,
        price: Price(decimal(buf, f[TR_PX], "px")?),
        qty: Qty(decimal(buf, f[TR_SZ], "sz")?),
        buyer_maker,
    })
}

fn ticker(buf: &[u8], f: &[Slot; TICKER.len()]) -> Result<BookTicker, DecodeError> {
    Ok(BookTicker {
        update_id: u64_string(buf, f[TK_TS], "ts")?,
        bid_px: Price(decimal_or_empty(buf, f[TK_BID_PX], "bidPx")?),
        bid_qty: Qty(decimal_or_empty(buf, f[TK_BID_SZ], "bidSz")?),
        ask_px: Price(decimal_or_empty(buf, f[TK_ASK_PX], "askPx")?),
        ask_qty: Qty(decimal_or_empty(buf, f[TK_ASK_SZ], "askSz")?),
    })
}
