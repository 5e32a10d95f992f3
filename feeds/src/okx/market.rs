//! OKX v5 public market data: WebSocket frames (and REST `books` bodies) to [`Event`]s.
//!
//! See the [module overview](super) for what is decoded and how OKX's ids map onto the book.
//! A frame is one object `{"arg":{"channel":..,"instId":..},"action":..,"data":[{..},..]}`
//! (keys in any order) or an event reply `{"event":..}`, or the bare text `pong`. The frame is
//! read in one pass when `arg` (and, for books, `action`) come before `data`, as OKX sends
//! them; in any other order the pass notes where `data` is and a second one reads it. Nothing is
//! allocated; a frame that fails (or is ignored) appends nothing and leaves the decoder's
//! per-instrument ids as they were.

use crate::json::{self, JsonStr, Scanner, ValueKind};
use crate::venue::decode::{fixed_of, with_unescaped};
use crate::venue::decode::{DecodeError, DecodeStats, Decoded, IgnoreReason};
use engine::event::{
    BookChecksum, BookSide, BookTicker, DepthLevel, Event, EventKind, Gap, GapReason, LevelFlags,
    SnapshotLevel, Trade,
};
use engine::fixed::{Price, Qty};
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

/// Where a frame's `data` goes.
#[derive(Clone, Copy, Debug)]
struct Target {
    channel: Channel,
    symbol: SymbolId,
    snapshot: bool,
}

/// What to do with a frame's `data`.
#[derive(Clone, Copy, Debug)]
enum Route {
    Decode(Target),
    Ignore(IgnoreReason),
    /// Not known yet (a key `data` depends on comes after it).
    Later,
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
    /// The `last_id` entry changed by the call in progress and its value before, so a frame
    /// that fails or turns out to be ignored leaves no trace.
    touched: Option<(usize, u64)>,
    /// `sequence_resets` before the call in progress.
    resets_before: u64,
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
            touched: None,
            resets_before: 0,
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
        self.resets_before = self.sequence_resets;
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
        self.resets_before = self.sequence_resets;
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
        if let Some((i, old)) = self.touched.take() {
            if !matches!(r, Ok(Decoded::Events(_))) {
                self.undo(i, old);
            }
        }
        self.stats.account(&r, out, len0);
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
        let start = out.len();
        let mut top = [Slot::default(); TOP.len()];
        // One pass when `arg` (and for books `action`) come before `data`, as OKX sends them:
        // `data` is decoded where it is found. Otherwise it is decoded after the pass.
        let mut inline = false;
        sc.begin_object()?;
        while let Some(k) = sc.next_key()? {
            let Some(i) = key_index(&k, &TOP) else {
                sc.skip_value()?;
                continue;
            };
            if top.get(i).is_some_and(Slot::present) {
                return Err(DecodeError::DuplicateField(
                    TOP.get(i).copied().unwrap_or("?"),
                ));
            }
            let slot = if i == T_DATA && sc.peek()? == ValueKind::Array {
                match self.route(frame, &top, false)? {
                    Route::Decode(target) => {
                        let at = sc.pos();
                        self.data(&mut sc, frame, target, recv_ns, out)?;
                        inline = true;
                        Slot {
                            kind: Kind::Array,
                            start: at as u32,
                            end: sc.pos() as u32,
                        }
                    }
                    _ => read_slot(&mut sc)?,
                }
            } else {
                read_slot(&mut sc)?
            };
            if let Some(s) = top.get_mut(i) {
                *s = slot;
            }
        }
        sc.finish()?;
        if inline {
            // Only an `event` after `data` can still turn the frame into a reply.
            if top[T_EVENT].present() {
                out.truncate(start);
                return Ok(Decoded::Ignored(IgnoreReason::Response));
            }
            return Ok(Decoded::Events(out.len() - start));
        }
        match self.route(frame, &top, true)? {
            Route::Decode(target) => {
                let data = array(top[T_DATA], "data")?;
                let mut sc = Scanner::at(frame, data.start as usize);
                self.data(&mut sc, frame, target, recv_ns, out)?;
                Ok(Decoded::Events(out.len() - start))
            }
            Route::Ignore(why) => Ok(Decoded::Ignored(why)),
            Route::Later => Err(DecodeError::MissingField("action")),
        }
    }

    /// What the top-level fields say to do with `data`. `last`: all of the frame has been
    /// read (else a books frame whose `action` has not been seen yet is [`Route::Later`]).
    fn route(
        &self,
        frame: &[u8],
        top: &[Slot; TOP.len()],
        last: bool,
    ) -> Result<Route, DecodeError> {
        if top[T_EVENT].present() {
            // subscribe / unsubscribe / error / notice / channel-conn-count ...
            return Ok(Route::Ignore(IgnoreReason::Response));
        }
        let arg = top[T_ARG];
        match arg.kind {
            Kind::Object => {}
            _ if !last => return Ok(Route::Later),
            Kind::Absent if top[T_CODE].present() => {
                return Ok(Route::Ignore(IgnoreReason::Response))
            }
            Kind::Absent => return Ok(Route::Ignore(IgnoreReason::UnknownStream)),
            _ => return Err(DecodeError::WrongType { field: "arg" }),
        }
        let mut a = [Slot::default(); ARG.len()];
        scan_object(&mut Scanner::at(frame, arg.start as usize), &ARG, &mut a)?;
        let Some(channel) = str_field(frame, a[A_CHANNEL], "channel", channel_of)? else {
            return Ok(Route::Ignore(IgnoreReason::UnknownStream));
        };
        let symbol = str_field(frame, a[A_INST], "instId", |s| {
            self.symbols.lookup_on(Venue::Okx, s)
        })?;
        let Some(symbol) = symbol else {
            return Ok(Route::Ignore(IgnoreReason::UnknownSymbol));
        };
        let snapshot = if channel == Channel::Books {
            if !last && !top[T_ACTION].present() {
                return Ok(Route::Later);
            }
            str_field(frame, top[T_ACTION], "action", |s| match s {
                b"snapshot" => Ok(true),
                b"update" => Ok(false),
                _ => Err(DecodeError::WrongType { field: "action" }),
            })??
        } else {
            false
        };
        Ok(Route::Decode(Target {
            channel,
            symbol,
            snapshot,
        }))
    }

    /// Decodes the `data` array at the scanner.
    fn data(
        &mut self,
        sc: &mut Scanner<'_>,
        frame: &[u8],
        t: Target,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<(), DecodeError> {
        let symbol = t.symbol;
        sc.begin_array()?;
        while sc.next_element()? {
            if sc.peek()? != ValueKind::Object {
                return Err(DecodeError::WrongType { field: "data" });
            }
            match t.channel {
                Channel::Books => {
                    let mut f = [Slot::default(); BOOK.len()];
                    scan_object(sc, &BOOK, &mut f)?;
                    self.book_message(frame, &f, symbol, t.snapshot, false, recv_ns, out)?;
                }
                Channel::Trades => {
                    let mut f = [Slot::default(); TRADE.len()];
                    scan_object(sc, &TRADE, &mut f)?;
                    let ev = trade(frame, &f)?;
                    out.push(Event::new(recv_ns, symbol, EventKind::Trade(ev)));
                }
                Channel::Tickers => {
                    let mut f = [Slot::default(); TICKER.len()];
                    scan_object(sc, &TICKER, &mut f)?;
                    let ev = ticker(frame, &f)?;
                    out.push(Event::new(recv_ns, symbol, EventKind::BookTicker(ev)));
                }
            }
        }
        Ok(())
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
            if self.touched.is_none() {
                self.touched = Some((symbol.index(), *l));
            }
            *l = id;
        }
    }

    /// Puts back the id a failed frame changed (and its reset count, if it counted one).
    #[cold]
    fn undo(&mut self, i: usize, old: u64) {
        if let Some(l) = self.last_id.get_mut(i) {
            *l = old;
        }
        self.sequence_resets = self.resets_before;
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::book::{BookConfig, BookUpdate, OrderBook};

    fn decoder() -> (OkxDecoder, SymbolId) {
        let mut symbols = SymbolTable::new();
        symbols.intern("BTCUSDT").unwrap(); // another venue's symbol: index 0
        let btc = symbols.intern_on(Venue::Okx, "BTC-USDT").unwrap();
        (OkxDecoder::new(symbols), btc)
    }

    fn decode(d: &mut OkxDecoder, frame: &str) -> (Result<Decoded, DecodeError>, Vec<Event>) {
        let mut out = Vec::new();
        let r = d.decode(frame.as_bytes(), 7, &mut out);
        (r, out)
    }

    fn book_frame(action: &str, ids: &str, bids: &str, asks: &str, checksum: i64) -> String {
        format!(
            r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}","data":[{{"asks":[{asks}],"bids":[{bids}],"ts":"1597026383085","checksum":{checksum}{ids}}}]}}"#
        )
    }

    fn apply(book: &mut OrderBook, evs: &[Event]) -> Vec<BookUpdate> {
        evs.iter()
            .filter_map(|e| match &e.kind {
                EventKind::Depth(d) => Some(book.apply_depth(d)),
                EventKind::Snapshot(s) => Some(book.apply_snapshot(s)),
                _ => None,
            })
            .collect()
    }

    /// The documented trades and tickers pushes (OKX v5 API docs, "Trades channel" and
    /// "Tickers channel" examples).
    #[test]
    fn documented_trade_and_ticker() {
        let (mut d, btc) = decoder();
        let (r, out) = decode(
            &mut d,
            r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}"#,
        );
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(
            out[0],
            Event::new(
                7,
                btc,
                EventKind::Trade(Trade {
                    exch_ns: 1_630_048_897_897_000_000,
                    trade_id: 130_639_474,
                    price: Price(4_221_990_000_000),
                    qty: Qty(12_060_306),
                    buyer_maker: false,
                })
            )
        );
        let (r, out) = decode(
            &mut d,
            r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instType":"SPOT","instId":"BTC-USDT","last":"9999.99","lastSz":"0.1","askPx":"9999.99","askSz":"11","bidPx":"8888.88","bidSz":"5","open24h":"9000","high24h":"10000","low24h":"8888.88","volCcy24h":"2222","vol24h":"2222","sodUtc0":"2222","sodUtc8":"2222","ts":"1597026383085"}]}"#,
        );
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(
            out[0].kind,
            EventKind::BookTicker(BookTicker {
                update_id: 1_597_026_383_085,
                bid_px: Price(888_888_000_000),
                bid_qty: Qty(500_000_000),
                ask_px: Price(999_999_000_000),
                ask_qty: Qty(1_100_000_000),
            })
        );
        // A sell-side taker: the buyer was the maker.
        let (_, out) = decode(
            &mut d,
            r#"{"data":[{"tradeId":"1","px":"1","sz":"2","side":"sell","ts":"3"},{"tradeId":"2","px":"1","sz":"2","side":"buy","ts":"3"}],"arg":{"instId":"BTC-USDT","channel":"trades"}}"#,
        );
        assert!(matches!(out[0].kind, EventKind::Trade(t) if t.buyer_maker && t.trade_id == 1));
        assert!(matches!(out[1].kind, EventKind::Trade(t) if !t.buyer_maker && t.trade_id == 2));
    }

    /// `seqId`/`prevSeqId`: snapshot, chained update, no-change update, reset.
    #[test]
    fn seq_ids_map_onto_the_book() {
        let (mut d, btc) = decoder();
        let mut book = OrderBook::new(BookConfig::default());
        let ids = |prev: i64, seq: i64| format!(r#","prevSeqId":{prev},"seqId":{seq}"#);
        let (r, out) = decode(
            &mut d,
            &book_frame(
                "snapshot",
                &ids(-1, 10),
                r#"["8476.97","256","0","12"],["8475.55","101","0","1"]"#,
                r#"["8476.98","415","0","13"]"#,
                -855_196_043,
            ),
        );
        assert_eq!(r, Ok(Decoded::Events(4)));
        assert!(
            matches!(out[2].kind, EventKind::Snapshot(s) if s.last_update_id == 10 && s.flags == LevelFlags::LAST)
        );
        assert_eq!(
            out[3],
            Event::new(
                7,
                btc,
                EventKind::BookChecksum(BookChecksum {
                    update_id: 10,
                    checksum: (-855_196_043i32) as u32
                })
            )
        );
        assert_eq!(
            apply(&mut book, &out),
            vec![BookUpdate::None, BookUpdate::None, BookUpdate::Synced]
        );

        // prevSeqId = the last seqId: continues the chain (span = 15 - 10 - 1).
        let (_, out) = decode(
            &mut d,
            &book_frame("update", &ids(10, 15), r#"["8476.97","0","0","0"]"#, "", 0),
        );
        assert_eq!(out.len(), 1, "no checksum event for 0");
        let EventKind::Depth(l) = out[0].kind else {
            panic!("{out:?}")
        };
        assert_eq!(
            (l.final_update_id, l.update_span, l.first_update_id()),
            (15, 4, 11)
        );
        assert_eq!(l.exch_ns, 1_597_026_383_085_000_000);
        assert_eq!(apply(&mut book, &out), vec![BookUpdate::Changed]);

        // seqId == prevSeqId: no change; the checksum still refers to 15.
        let (r, out) = decode(&mut d, &book_frame("update", &ids(15, 15), "", "", 5));
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert!(matches!(out[0].kind, EventKind::BookChecksum(c) if c.update_id == 15));
        let (r, _) = decode(
            &mut d,
            &book_frame("update", &ids(15, 15), r#"["1","1","0","1"]"#, "", 5),
        );
        assert_eq!(r, Err(DecodeError::BadRange { field: "seqId" }));

        // A skipped message is a gap for the book.
        let (_, out) = decode(&mut d, &book_frame("update", &ids(16, 18), "", "", 0));
        assert!(matches!(
            apply(&mut book, &out)[..],
            [BookUpdate::Gap {
                expected: 16,
                got: 17
            }]
        ));

        // seqId < prevSeqId (reset after maintenance): a sequence gap, never levels.
        let (r, out) = decode(
            &mut d,
            &book_frame("update", &ids(18, 3), r#"["1","1","0","1"]"#, "", 0),
        );
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(
            out[0].kind,
            EventKind::Gap(Gap {
                lost: 0,
                reason: GapReason::Sequence
            })
        );
        assert_eq!(d.sequence_resets(), 1);

        // Half the pair is an error.
        let (r, _) = decode(&mut d, &book_frame("update", r#","seqId":4"#, "", "", 0));
        assert_eq!(r, Err(DecodeError::MissingField("prevSeqId")));
    }

    /// From a REST snapshot with id S, the first applied update has `prevSeqId <= S < seqId`.
    #[test]
    fn rest_snapshot_bridges_by_prev_seq_id() {
        for (prev, seq, bridges) in [(98, 103, true), (100, 101, true), (101, 104, false)] {
            let (mut d, btc) = decoder();
            let mut book = OrderBook::new(BookConfig::default());
            let mut out = Vec::new();
            let body = r#"{"code":"0","msg":"","data":[{"asks":[["41006.8","0.60038921","0","1"]],"bids":[["41006.3","0.30178218","0","2"]],"ts":"1629966436396","seqId":100}]}"#;
            d.decode_snapshot(body.as_bytes(), btc, 1, &mut out)
                .unwrap();
            let (_, upd) = decode(
                &mut d,
                &book_frame(
                    "update",
                    &format!(r#","prevSeqId":{prev},"seqId":{seq}"#),
                    r#"["41006.2","1","0","1"]"#,
                    "",
                    0,
                ),
            );
            // The update arrives first (buffered), the snapshot completes the sync.
            apply(&mut book, &upd);
            let r = apply(&mut book, &out);
            let want = if bridges {
                BookUpdate::Synced
            } else {
                BookUpdate::SnapshotRejected
            };
            assert_eq!(r.last(), Some(&want), "prev {prev} seq {seq}");
        }
        let (mut d, btc) = decoder();
        let mut out = Vec::new();
        let no_seq = r#"{"code":"0","data":[{"asks":[],"bids":[],"ts":"1"}]}"#;
        assert_eq!(
            d.decode_snapshot(no_seq.as_bytes(), btc, 1, &mut out),
            Err(DecodeError::MissingField("seqId"))
        );
        let refused = r#"{"code":"51001","msg":"Instrument ID does not exist","data":[]}"#;
        assert_eq!(
            d.decode_snapshot(refused.as_bytes(), btc, 1, &mut out),
            Ok(Decoded::Ignored(IgnoreReason::Response))
        );
        assert!(out.is_empty());
    }

    /// Frames without `seqId` (the 2022 capture): the decoder numbers them per instrument.
    #[test]
    fn frames_without_seq_ids_are_numbered() {
        let (mut d, _) = decoder();
        let (_, out) = decode(&mut d, &book_frame("snapshot", "", r#"["1","1"]"#, "", 9));
        assert!(matches!(out[0].kind, EventKind::Snapshot(s) if s.last_update_id == 1));
        assert!(
            matches!(out[1].kind, EventKind::BookChecksum(c) if c.update_id == 1 && c.checksum == 9)
        );
        let (_, out) = decode(&mut d, &book_frame("update", "", "", "", 0));
        let EventKind::Depth(l) = out[0].kind else {
            panic!("{out:?}")
        };
        assert_eq!((l.final_update_id, l.update_span), (2, 0));
        assert_eq!(l.flags, LevelFlags::LAST.with(LevelFlags::EMPTY));
        let (_, out) = decode(&mut d, &book_frame("snapshot", "", "", "", 0));
        assert!(matches!(out[0].kind, EventKind::Snapshot(s) if s.last_update_id == 3));
    }

    /// Any key order decodes the same; a frame that fails or is ignored leaves the
    /// per-instrument numbering as it was.
    #[test]
    fn key_order_does_not_matter_and_failures_leave_no_trace() {
        let (mut d, _) = decoder();
        let (_, a) = decode(&mut d, &book_frame("snapshot", "", r#"["1","1"]"#, "", 9));
        let reordered = r#"{"data":[{"bids":[["1","1"]],"checksum":9,"asks":[],"ts":"1597026383085"}],"action":"snapshot","arg":{"instId":"BTC-USDT","channel":"books"}}"#;
        let (mut d2, _) = decoder();
        let (r, b) = decode(&mut d2, reordered);
        assert_eq!(r, Ok(Decoded::Events(2)));
        assert_eq!(a, b);
        // `action` after `data`: decoded after the pass.
        let late_action = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[{"asks":[],"bids":[],"ts":"1"}],"action":"update"}"#;
        let (r, out) = decode(&mut d2, late_action);
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert!(matches!(out[0].kind, EventKind::Depth(l) if l.final_update_id == 2));
        // An `event` after an inline-decoded `data` makes it a reply, with nothing appended.
        let late_event = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1"}],"event":"x"}"#;
        assert_eq!(
            decode(&mut d2, late_event),
            (Ok(Decoded::Ignored(IgnoreReason::Response)), vec![])
        );
        // Two messages, the second bad: nothing appended, the numbering unchanged.
        let two = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1"},{"asks":[],"bids":[],"ts":"x"}]}"#;
        let (r, out) = decode(&mut d2, two);
        assert!(r.is_err() && out.is_empty());
        let trailing = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1"}]}]"#;
        assert!(decode(&mut d2, trailing).0.is_err());
        let (_, out) = decode(&mut d2, late_action);
        assert!(
            matches!(out[0].kind, EventKind::Depth(l) if l.final_update_id == 3),
            "{out:?}"
        );
        // A reset inside a failing frame is not counted.
        let reset_then_bad = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[],"ts":"1","prevSeqId":9,"seqId":2},{}]}"#;
        assert!(decode(&mut d2, reset_then_bad).0.is_err());
        assert_eq!(d2.sequence_resets(), 0);
    }

    #[test]
    fn replies_heartbeats_and_unknowns_are_ignored_with_a_reason() {
        let (mut d, _) = decoder();
        for (frame, why) in [
            ("pong", IgnoreReason::Heartbeat),
            (
                r#"{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#,
                IgnoreReason::Response,
            ),
            (
                r#"{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}"#,
                IgnoreReason::Response,
            ),
            (
                r#"{"arg":{"channel":"books5","instId":"BTC-USDT"},"data":[{"asks":[],"bids":[],"ts":"1"}]}"#,
                IgnoreReason::UnknownStream,
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[]}"#,
                IgnoreReason::UnknownSymbol,
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"BTCUSDT"},"data":[]}"#,
                IgnoreReason::UnknownSymbol,
            ),
        ] {
            assert_eq!(
                decode(&mut d, frame).0,
                Ok(Decoded::Ignored(why)),
                "{frame}"
            );
        }
        assert_eq!(d.stats().ignored, 6);
        assert_eq!(d.stats().unknown_symbol, 2);
    }

    #[test]
    fn bad_frames_are_errors_and_append_nothing() {
        let (mut d, _) = decoder();
        let good_lvl = r#"["1","1","0","1"]"#;
        for (frame, want) in [
            ("ping".to_string(), None),
            ("[1]".to_string(), Some(DecodeError::NotAnObject)),
            (
                book_frame("update", "", &format!(r#"{good_lvl},["1","1","0","1","5"]"#), "", 0),
                Some(DecodeError::WrongType { field: "bids" }),
            ),
            (
                book_frame("update", "", r#"[1,"1"]"#, "", 0),
                Some(DecodeError::WrongType { field: "bids" }),
            ),
            (
                book_frame("update", "", good_lvl, r#"["1"]"#, 0),
                Some(DecodeError::WrongType { field: "asks" }),
            ),
            (
                book_frame("update", "", good_lvl, "", 4_294_967_296),
                Some(DecodeError::IntOverflow { field: "checksum" }),
            ),
            (
                book_frame("refresh", "", good_lvl, "", 0),
                Some(DecodeError::WrongType { field: "action" }),
            ),
            (
                r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"data":[]}"#.to_string(),
                Some(DecodeError::MissingField("action")),
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"1","sz":"1","side":"up","ts":"1"}]}"#.to_string(),
                Some(DecodeError::WrongType { field: "side" }),
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1"},{"tradeId":"x","px":"1","sz":"1","side":"buy","ts":"1"}]}"#.to_string(),
                Some(DecodeError::WrongType { field: "tradeId" }),
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"arg":{},"data":[]}"#.to_string(),
                Some(DecodeError::DuplicateField("arg")),
            ),
            (
                r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[]} x"#.to_string(),
                None,
            ),
        ] {
            let mut out = Vec::new();
            let r = d.decode(frame.as_bytes(), 1, &mut out);
            assert!(r.is_err(), "{frame}: {r:?}");
            if let Some(want) = want {
                assert_eq!(r, Err(want), "{frame}");
            }
            assert!(out.is_empty(), "{frame}");
        }
        assert_eq!(d.stats().decode_errors, 12);
        assert_eq!(d.stats().events, 0);
    }

    /// Every prefix and a sample of byte flips of a real frame: no panic, and an error leaves
    /// the output as it was.
    #[test]
    fn cut_and_flipped_frames_never_panic() {
        let frame = book_frame(
            "snapshot",
            r#","prevSeqId":-1,"seqId":7"#,
            r#"["30237.2","0.5","0","1"],["30236.1","0.05452","0","1"]"#,
            r#"["30243.5","1.2112","0","4"]"#,
            -652_563_973,
        );
        let (mut d, _) = decoder();
        let mut out = Vec::new();
        for n in 0..frame.len() {
            out.clear();
            if d.decode(&frame.as_bytes()[..n], 1, &mut out).is_err() {
                assert!(out.is_empty());
            }
        }
        let mut bytes = frame.into_bytes();
        for i in (0..bytes.len()).step_by(3) {
            let old = bytes[i];
            for b in [b'"', b'-', b'9', b'[', 0xff] {
                bytes[i] = b;
                out.clear();
                if d.decode(&bytes, 1, &mut out).is_err() {
                    assert!(out.is_empty());
                }
            }
            bytes[i] = old;
        }
    }
}
