//! Coinbase Exchange market data: WebSocket feed messages to [`Event`]s.
//!
//! Every Coinbase message is one JSON object with a `type`; the decoder reads the whole object
//! once (keys in any order, unknown keys skipped but validated), then interprets it by type:
//!
//! | `type` | channel | events |
//! |---|---|---|
//! | `snapshot` | `level2` (`level2_batch`) | one [`SnapshotLevel`] per level of `bids` then `asks` (`[["px","size"],..]`), `LAST` on the last, one `LAST \| EMPTY` level for an empty book |
//! | `l2update` | `level2` (`level2_batch`) | one [`DepthLevel`] per entry of `changes` (`[["buy"\|"sell","px","size"],..]`, in order), `exch_ns` from `time` |
//! | `match`, `last_match` | `matches` | one [`Trade`]: `trade_id`, `price`, `size`, `time`; `buyer_maker` is `side == "buy"` |
//! | `ticker` | `ticker` | one [`BookTicker`]: `best_bid`/`best_ask`, `best_bid_size`/`best_ask_size` (0 where absent, as in feeds before 2022), `update_id` = `sequence` |
//! | `subscriptions`, `error` | | `Ignored(Response)` |
//! | `heartbeat` | `heartbeat` | `Ignored(Heartbeat)` |
//! | any other `type`, or none | | `Ignored(UnknownStream)` |
//!
//! The product comes from `product_id` (`BTC-USD`), looked up on [`Venue::Coinbase`]; a product
//! not in the table is `Ignored(UnknownSymbol)` before its other fields are read. Times are
//! ISO-8601 UTC strings, parsed to nanoseconds by [`super::time`].
//!
//! **The maker side.** Coinbase documents the `side` of a `match` as the *maker* order's side
//! ("if the side is sell this indicates the maker was a sell order and the match is considered
//! an up-tick"), so `side == "buy"` means a resting buy was hit by a seller: the buyer is the
//! maker, which is what [`Trade::buyer_maker`] says. (The `ticker`'s `side` is the taker's; the
//! decoder does not use it.)
//!
//! # Sequences
//!
//! **`level2` carries no sequence number.** The channel guarantees delivery on its connection
//! (one `snapshot`, then every `l2update`), so the decoder numbers its messages per product for
//! the engine's one book procedure ([`engine::book`]): a `snapshot` gets id `n + 1` where `n`
//! is the product's last id, and each `l2update` continues from the last id (`final =
//! last + 1`, `update_span = 0`). A new snapshot (after a resubscribe or a reconnect) takes the
//! next id, replaces the book and restarts the chain; the count never goes back, not even on
//! [`MarketDecoder::reset`](crate::venue::MarketDecoder::reset), so an id never names two
//! messages. An `l2update` before any snapshot continues from 0 and is superseded by the
//! snapshot when it comes. A book can therefore see a gap only if frames are lost between the
//! decoder and the book; "a gap resyncs" for Coinbase means unsubscribing and subscribing
//! `level2` again, which makes the venue send a fresh snapshot
//! ([`BookSync::WsSnapshot`](crate::venue::BookSync::WsSnapshot)).
//!
//! **`match`/`last_match` and `ticker` carry the product's `sequence`.** Coinbase numbers every
//! message of a product's full channel (received, open, done, match, ...) with one sequence, so a
//! subscriber of `matches` or `ticker` alone sees jumps between consecutive messages as a matter
//! of course (consecutive matches of a product in the capture are 2 to 2,152 apart, never 1): a
//! jump is **not** a gap and is not reported. What the docs do say is that a sequence lower than
//! the previous one is a message arriving out of order. The decoder keeps the last sequence per product and channel (matches
//! and ticker separately: the ticker sent on subscribing repeats the `last_match`'s sequence),
//! and a message whose sequence is not above it is a duplicate or out of order: it produces no
//! event, is `Ignored(Duplicate)` and is counted in [`SequenceStats`]. Those last sequences are
//! per connection and forgotten on `reset`.
//!
//! **Heartbeats.** Coinbase's `heartbeat` channel sends `{"type":"heartbeat","sequence":..,
//! "last_trade_id":..}` once a second per product; it is an alternative to WebSocket pings for
//! proving the connection alive. The decoder ignores it (`Ignored(Heartbeat)`), updating no
//! sequence state (its `sequence` is the full channel's, not a message of ours).
//!
//! # Strictness and cost
//!
//! The frame is validated as JSON (UTF-8, nesting, trailing data) before any event is
//! produced; a frame that fails appends nothing and changes no sequence state. Known keys
//! appearing twice are an error; prices and sizes are decimal strings that must fit
//! [`engine::fixed`] exactly; `trade_id` and `sequence` are unsigned JSON integers. No
//! allocation: events go into the caller's `Vec`, escaped strings are decoded on the stack.
//! The hot message, `l2update` (97% of the capture's frames), in exactly the layout Coinbase
//! sends, takes a specialised single-pass path that gives identical results (a unit test holds
//! the two paths equal on every frame of the real capture); everything else, including every
//! malformed frame, takes the general path (any key order and whitespace), which names the
//! error. `cargo bench -p feeds --bench decode_coinbase` times each kind against serde_json.

use super::time::parse_iso8601_ns;
use crate::json::{self, JsonStr, NumError, Scanner, ValueKind};
use crate::venue::decode::{fixed_of, with_unescaped};
use crate::venue::decode::{DecodeError, DecodeStats, Decoded, IgnoreReason};
use engine::event::{
    BookSide, BookTicker, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel, Trade,
};
use engine::fixed::{parse_fixed, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

// ---------------------------------------------------------------------------------------------
// Known keys.

mod key {
    pub const TYPE: usize = 0;
    pub const PRODUCT: usize = 1;
    pub const BIDS: usize = 2;
    pub const ASKS: usize = 3;
    pub const CHANGES: usize = 4;
    pub const TIME: usize = 5;
    pub const TRADE_ID: usize = 6;
    pub const SIDE: usize = 7;
    pub const SIZE: usize = 8;
    pub const PRICE: usize = 9;
    pub const SEQUENCE: usize = 10;
    pub const BEST_BID: usize = 11;
    pub const BEST_ASK: usize = 12;
    pub const BEST_BID_SIZE: usize = 13;
    pub const BEST_ASK_SIZE: usize = 14;
    pub const COUNT: usize = 15;
}

/// Every key the decoder reads, by id.
const KEY_NAMES: [&str; key::COUNT] = [
    "type",
    "product_id",
    "bids",
    "asks",
    "changes",
    "time",
    "trade_id",
    "side",
    "size",
    "price",
    "sequence",
    "best_bid",
    "best_ask",
    "best_bid_size",
    "best_ask_size",
];

#[inline(always)]
fn key_id(k: &[u8]) -> Option<usize> {
    Some(match k {
        b"type" => key::TYPE,
        b"product_id" => key::PRODUCT,
        b"bids" => key::BIDS,
        b"asks" => key::ASKS,
        b"changes" => key::CHANGES,
        b"time" => key::TIME,
        b"trade_id" => key::TRADE_ID,
        b"side" => key::SIDE,
        b"size" => key::SIZE,
        b"price" => key::PRICE,
        b"sequence" => key::SEQUENCE,
        b"best_bid" => key::BEST_BID,
        b"best_ask" => key::BEST_ASK,
        b"best_bid_size" => key::BEST_BID_SIZE,
        b"best_ask_size" => key::BEST_ASK_SIZE,
        _ => return None,
    })
}

#[inline(always)]
fn resolve_key(k: &JsonStr<'_>) -> Option<usize> {
    match k.unescaped() {
        Some(raw) => key_id(raw),
        None => {
            let mut buf = [0u8; 16];
            key_id(k.decode_into(&mut buf)?)
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum SlotKind {
    #[default]
    Absent,
    Str,
    EscStr,
    Num,
    Other,
    Array,
}

/// Where a known key's value is (for strings: between the quotes).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    kind: SlotKind,
    start: u32,
    end: u32,
}

impl Slot {
    #[inline(always)]
    fn bytes<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
}

struct Fields {
    slots: [Slot; key::COUNT],
}

impl Fields {
    #[inline(always)]
    fn get(&self, id: usize) -> Slot {
        self.slots.get(id).copied().unwrap_or_default()
    }

    #[inline(always)]
    fn present(&self, id: usize) -> bool {
        self.get(id).kind != SlotKind::Absent
    }
}

/// Reads the top-level object's members (the scanner is at its `{`).
fn scan_object(sc: &mut Scanner<'_>, f: &mut Fields) -> Result<(), DecodeError> {
    sc.begin_object()?;
    while let Some(k) = sc.next_key()? {
        let Some(id) = resolve_key(&k) else {
            sc.skip_value()?;
            continue;
        };
        let Some(slot) = f.slots.get_mut(id) else {
            sc.skip_value()?;
            continue;
        };
        if slot.kind != SlotKind::Absent {
            return Err(DecodeError::DuplicateField(KEY_NAMES[id]));
        }
        *slot = match sc.peek()? {
            ValueKind::String => {
                let s = sc.string()?;
                let kind = if s.has_escapes() {
                    SlotKind::EscStr
                } else {
                    SlotKind::Str
                };
                let start = s.offset();
                Slot {
                    kind,
                    start: start as u32,
                    end: (start + s.raw().len()) as u32,
                }
            }
            ValueKind::Number => {
                let n = sc.number()?;
                let start = n.offset();
                Slot {
                    kind: SlotKind::Num,
                    start: start as u32,
                    end: (start + n.raw().len()) as u32,
                }
            }
            ValueKind::Array => {
                let r = sc.skip_value()?;
                Slot {
                    kind: SlotKind::Array,
                    start: r.start as u32,
                    end: r.end as u32,
                }
            }
            _ => {
                let r = sc.skip_value()?;
                Slot {
                    kind: SlotKind::Other,
                    start: r.start as u32,
                    end: r.end as u32,
                }
            }
        };
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Field readers.

/// Runs `op` on the content of the string field `id` (decoded on the stack if escaped).
#[inline(always)]
fn str_field<R>(
    buf: &[u8],
    f: &Fields,
    id: usize,
    op: impl FnOnce(&[u8]) -> R,
) -> Result<R, DecodeError> {
    let s = f.get(id);
    let field = KEY_NAMES[id];
    match s.kind {
        SlotKind::Str => Ok(op(s.bytes(buf))),
        SlotKind::EscStr => with_unescaped(s.bytes(buf), field, op),
        SlotKind::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

#[inline(always)]
fn decimal_field(buf: &[u8], f: &Fields, id: usize) -> Result<i64, DecodeError> {
    let field = KEY_NAMES[id];
    str_field(buf, f, id, |b| fixed_of(b, field))?
}

#[inline(always)]
fn u64_field(buf: &[u8], f: &Fields, id: usize) -> Result<u64, DecodeError> {
    let s = f.get(id);
    let field = KEY_NAMES[id];
    match s.kind {
        SlotKind::Num => json::parse_u64(s.bytes(buf)).map_err(|e| match e {
            NumError::NotUnsigned => DecodeError::WrongType { field },
            NumError::Overflow => DecodeError::IntOverflow { field },
        }),
        SlotKind::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

/// `time` as nanoseconds since the epoch.
#[inline(always)]
fn time_field(buf: &[u8], f: &Fields) -> Result<u64, DecodeError> {
    str_field(buf, f, key::TIME, parse_iso8601_ns)?.ok_or(DecodeError::WrongType { field: "time" })
}

fn array_slot(f: &Fields, id: usize) -> Result<Slot, DecodeError> {
    let s = f.get(id);
    match s.kind {
        SlotKind::Array => Ok(s),
        SlotKind::Absent => Err(DecodeError::MissingField(KEY_NAMES[id])),
        _ => Err(DecodeError::WrongType {
            field: KEY_NAMES[id],
        }),
    }
}

/// The content of a string element of a level array.
#[inline(always)]
fn level_str<'a>(sc: &mut Scanner<'a>, field: &'static str) -> Result<JsonStr<'a>, DecodeError> {
    if !sc.next_element()? || sc.peek()? != ValueKind::String {
        return Err(DecodeError::WrongType { field });
    }
    Ok(sc.string()?)
}

#[inline(always)]
fn level_decimal(s: &JsonStr<'_>, field: &'static str) -> Result<i64, DecodeError> {
    match s.unescaped() {
        Some(b) => fixed_of(b, field),
        None => with_unescaped(s.raw(), field, |b| fixed_of(b, field))?,
    }
}

/// `"buy"` or `"sell"` as a book side.
#[inline(always)]
fn side_of(b: &[u8]) -> Option<BookSide> {
    match b {
        b"buy" => Some(BookSide::Bid),
        b"sell" => Some(BookSide::Ask),
        _ => None,
    }
}

/// Marks the last event appended since `start` with `LAST`, or appends `empty` flagged
/// `LAST | EMPTY` when there is none; returns how many events were appended.
fn finish_levels(out: &mut Vec<Event>, start: usize, mut empty: Event) -> usize {
    let has_levels = out.len() > start;
    match out.last_mut() {
        Some(ev) if has_levels => ev.add_level_flags(LevelFlags::LAST),
        _ => {
            empty.add_level_flags(LevelFlags::LAST.with(LevelFlags::EMPTY));
            out.push(empty);
        }
    }
    out.len() - start
}

// ---------------------------------------------------------------------------------------------
// The decoder.

/// What a message is, from its `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Snapshot,
    L2Update,
    Match,
    Ticker,
}

/// Sequence bookkeeping of the `matches` and `ticker` channels (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceStats {
    /// `match`/`last_match` messages whose `sequence` was not above the product's last one:
    /// dropped.
    pub match_duplicates: u64,
    /// `ticker` messages whose `sequence` was not above the product's last one: dropped.
    pub ticker_duplicates: u64,
    /// `level2` snapshots numbered (each restarts its product's chain).
    pub snapshots: u64,
}

/// Per-product state.
#[derive(Clone, Copy, Debug, Default)]
struct Product {
    /// The last id given to a `level2` message (0: none yet).
    book_id: u64,
    /// The last `match`/`last_match` sequence on this connection.
    match_seq: Option<u64>,
    /// The last `ticker` sequence on this connection.
    ticker_seq: Option<u64>,
}

/// Decodes Coinbase Exchange WebSocket feed messages; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct CoinbaseDecoder {
    symbols: SymbolTable,
    stats: DecodeStats,
    seq: SequenceStats,
    /// Indexed by [`SymbolId::index`]; sized to the table once.
    products: Vec<Product>,
}

impl CoinbaseDecoder {
    /// A decoder that looks products up among `symbols`' [`Venue::Coinbase`] names.
    pub fn new(symbols: SymbolTable) -> Self {
        let products = vec![Product::default(); symbols.len()];
        CoinbaseDecoder {
            symbols,
            stats: DecodeStats::default(),
            seq: SequenceStats::default(),
            products,
        }
    }

    /// Counters since construction.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// Sequence counters since construction.
    pub fn sequence_stats(&self) -> &SequenceStats {
        &self.seq
    }

    /// The symbol table.
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// Forgets the last `match`/`ticker` sequence of every product (a new connection). The
    /// `level2` numbering carries on (see the [module docs](self)).
    pub fn reset(&mut self) {
        for p in &mut self.products {
            p.match_seq = None;
            p.ticker_seq = None;
        }
    }

    /// A REST depth snapshot: Coinbase books start from the socket's `snapshot`, so every body
    /// is refused ([`DecodeError::MissingField`] `"snapshot"`), and counted.
    pub fn refuse_rest_snapshot(&mut self) -> Result<Decoded, DecodeError> {
        self.stats.messages += 1;
        self.stats.decode_errors += 1;
        Err(DecodeError::MissingField("snapshot"))
    }

    /// Decodes one frame received at `recv_ns`, appending its events to `out`. On error or
    /// when ignored, `out` is left as it was.
    pub fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        let len0 = out.len();
        let r = match fast::l2update(self, frame, recv_ns, out) {
            Some(n) => Ok(Decoded::Events(n)),
            None => {
                out.truncate(len0);
                self.decode_general(frame, recv_ns, out)
            }
        };
        self.stats.account(&r, out, len0);
        r
    }

    /// Any key order and whitespace, every message type; reports what is wrong.
    fn decode_general(
        &mut self,
        buf: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        if buf.len() >= u32::MAX as usize {
            return Err(DecodeError::FrameTooLarge);
        }
        let mut sc = Scanner::new(buf);
        if sc.peek()? != ValueKind::Object {
            sc.skip_value()?;
            sc.finish()?;
            return Err(DecodeError::NotAnObject);
        }
        let mut f = Fields {
            slots: [Slot::default(); key::COUNT],
        };
        scan_object(&mut sc, &mut f)?;
        sc.finish()?;

        if !f.present(key::TYPE) {
            return Ok(Decoded::Ignored(IgnoreReason::UnknownStream));
        }
        let kind = match str_field(buf, &f, key::TYPE, |t| match t {
            b"l2update" => Ok(Kind::L2Update),
            b"match" | b"last_match" => Ok(Kind::Match),
            b"ticker" => Ok(Kind::Ticker),
            b"snapshot" => Ok(Kind::Snapshot),
            b"subscriptions" | b"error" => Err(IgnoreReason::Response),
            b"heartbeat" => Err(IgnoreReason::Heartbeat),
            _ => Err(IgnoreReason::UnknownStream),
        })? {
            Ok(k) => k,
            Err(why) => return Ok(Decoded::Ignored(why)),
        };
        let symbols = &self.symbols;
        let found = str_field(buf, &f, key::PRODUCT, |p| {
            symbols.lookup_on(Venue::Coinbase, p)
        })?;
        let Some((symbol, product)) =
            found.and_then(|s| Some((s, self.products.get_mut(s.index())?)))
        else {
            return Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol));
        };

        match kind {
            Kind::L2Update => {
                let id = product.book_id.saturating_add(1);
                let n = l2update(buf, &f, symbol, id, recv_ns, out)?;
                product.book_id = id;
                Ok(Decoded::Events(n))
            }
            Kind::Snapshot => {
                let id = product.book_id.saturating_add(1);
                let n = snapshot(buf, &f, symbol, id, recv_ns, out)?;
                product.book_id = id;
                self.seq.snapshots += 1;
                Ok(Decoded::Events(n))
            }
            Kind::Match => {
                let t = trade(buf, &f)?;
                let seq = u64_field(buf, &f, key::SEQUENCE)?;
                if !advance(&mut product.match_seq, seq) {
                    self.seq.match_duplicates += 1;
                    return Ok(Decoded::Ignored(IgnoreReason::Duplicate));
                }
                out.push(Event::new(recv_ns, symbol, EventKind::Trade(t)));
                Ok(Decoded::Events(1))
            }
            Kind::Ticker => {
                let t = ticker(buf, &f)?;
                if !advance(&mut product.ticker_seq, t.update_id) {
                    self.seq.ticker_duplicates += 1;
                    return Ok(Decoded::Ignored(IgnoreReason::Duplicate));
                }
                out.push(Event::new(recv_ns, symbol, EventKind::BookTicker(t)));
                Ok(Decoded::Events(1))
            }
        }
    }
}

/// The specialised path for the one hot message, an `l2update` in exactly the layout Coinbase
/// sends: `{"type":"l2update","product_id":"..","changes":[[..],..],"time":".."}` (or `time`
/// before `changes`, as the documentation prints it), no whitespace, strings without escapes or
/// non-ASCII bytes, for a product in the table. Such a frame is valid JSON by construction, and
/// within it the path checks everything the general path checks, so it either produces exactly
/// what [`CoinbaseDecoder::decode_general`] would (events and numbering) or gives up (`None`)
/// and the general path starts over and reports whatever is wrong.
mod fast {
    use super::*;

    /// Consumes `lit` at `*pos`.
    #[inline(always)]
    fn lit(buf: &[u8], pos: &mut usize, lit: &[u8]) -> Option<()> {
        let end = *pos + lit.len();
        (buf.get(*pos..end)? == lit).then(|| *pos = end)
    }

    /// A plain string body at `*pos` (just after its opening quote), through the closing quote.
    #[inline(always)]
    fn body<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
        let start = *pos;
        let end = json::plain_string_end(buf, start)?;
        *pos = end + 1;
        buf.get(start..end)
    }

    /// `"<time>"` after its key, as nanoseconds.
    #[inline(always)]
    fn time(buf: &[u8], pos: &mut usize) -> Option<u64> {
        lit(buf, pos, b",\"time\":\"")?;
        parse_iso8601_ns(body(buf, pos)?)
    }

    /// `,"changes":[...]`, pushing one level per change.
    #[inline(always)]
    fn changes(
        buf: &[u8],
        pos: &mut usize,
        out: &mut Vec<Event>,
        mk: impl Fn(BookSide, Price, Qty) -> Event,
    ) -> Option<()> {
        lit(buf, pos, b",\"changes\":[")?;
        if lit(buf, pos, b"]").is_some() {
            return Some(());
        }
        loop {
            lit(buf, pos, b"[\"")?;
            let side = side_of(body(buf, pos)?)?;
            lit(buf, pos, b",\"")?;
            let price = parse_fixed(body(buf, pos)?).ok()?;
            lit(buf, pos, b",\"")?;
            let qty = parse_fixed(body(buf, pos)?).ok()?;
            lit(buf, pos, b"]")?;
            out.push(mk(side, Price(price), Qty(qty)));
            match buf.get(*pos)? {
                b',' => *pos += 1,
                b']' => {
                    *pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Decodes `buf` if it is an `l2update` in the usual layout; `None` otherwise (the caller
    /// undoes anything appended).
    #[inline]
    pub(super) fn l2update(
        dec: &mut CoinbaseDecoder,
        buf: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Option<usize> {
        let mut pos = 0;
        lit(buf, &mut pos, b"{\"type\":\"l2update\",\"product_id\":\"")?;
        let symbol = dec
            .symbols
            .lookup_on(Venue::Coinbase, body(buf, &mut pos)?)?;
        let product = dec.products.get_mut(symbol.index())?;
        let id = product.book_id.saturating_add(1);
        let mk = |exch_ns| {
            move |side, price, qty| {
                Event::new(
                    recv_ns,
                    symbol,
                    EventKind::Depth(DepthLevel {
                        exch_ns,
                        final_update_id: id,
                        price,
                        qty,
                        update_span: 0,
                        side,
                        flags: LevelFlags::default(),
                    }),
                )
            }
        };
        let start = out.len();
        let exch_ns = if buf.get(pos + 2) == Some(&b'c') {
            // Coinbase's order: changes, then time (stamped on the levels once read).
            changes(buf, &mut pos, out, mk(0))?;
            let exch_ns = time(buf, &mut pos)?;
            for ev in out.get_mut(start..)? {
                if let EventKind::Depth(l) = &mut ev.kind {
                    l.exch_ns = exch_ns;
                }
            }
            exch_ns
        } else {
            let exch_ns = time(buf, &mut pos)?;
            changes(buf, &mut pos, out, mk(exch_ns))?;
            exch_ns
        };
        lit(buf, &mut pos, b"}")?;
        if pos != buf.len() {
            return None;
        }
        product.book_id = id;
        Some(finish_levels(
            out,
            start,
            mk(exch_ns)(BookSide::Bid, Price::ZERO, Qty::ZERO),
        ))
    }
}

/// Moves `last` to `seq` if `seq` is above it (or nothing was seen); false for a duplicate or
/// an out-of-order message.
#[inline(always)]
fn advance(last: &mut Option<u64>, seq: u64) -> bool {
    match *last {
        Some(l) if seq <= l => false,
        _ => {
            *last = Some(seq);
            true
        }
    }
}

fn trade(buf: &[u8], f: &Fields) -> Result<Trade, DecodeError> {
    let trade_id = u64_field(buf, f, key::TRADE_ID)?;
    let side =
        str_field(buf, f, key::SIDE, side_of)?.ok_or(DecodeError::WrongType { field: "side" })?;
    Ok(Trade {
        exch_ns: time_field(buf, f)?,
        trade_id,
        price: Price(decimal_field(buf, f, key::PRICE)?),
        qty: Qty(decimal_field(buf, f, key::SIZE)?),
        buyer_maker: side == BookSide::Bid,
    })
}

fn ticker(buf: &[u8], f: &Fields) -> Result<BookTicker, DecodeError> {
    let size = |id| {
        if f.present(id) {
            decimal_field(buf, f, id)
        } else {
            Ok(0)
        }
    };
    Ok(BookTicker {
        update_id: u64_field(buf, f, key::SEQUENCE)?,
        bid_px: Price(decimal_field(buf, f, key::BEST_BID)?),
        bid_qty: Qty(size(key::BEST_BID_SIZE)?),
        ask_px: Price(decimal_field(buf, f, key::BEST_ASK)?),
        ask_qty: Qty(size(key::BEST_ASK_SIZE)?),
    })
}

fn l2update(
    buf: &[u8],
    f: &Fields,
    symbol: SymbolId,
    id: u64,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<usize, DecodeError> {
    let exch_ns = time_field(buf, f)?;
    let changes = array_slot(f, key::CHANGES)?;
    let mk = |side, price, qty| {
        Event::new(
            recv_ns,
            symbol,
            EventKind::Depth(DepthLevel {
                exch_ns,
                final_update_id: id,
                price,
                qty,
                update_span: 0,
                side,
                flags: LevelFlags::default(),
            }),
        )
    };
    const FIELD: &str = "changes";
    let wrong = DecodeError::WrongType { field: FIELD };
    let start = out.len();
    let mut sc = Scanner::at(buf, changes.start as usize);
    sc.begin_array()?;
    while sc.next_element()? {
        if sc.peek()? != ValueKind::Array {
            return Err(wrong);
        }
        sc.begin_array()?;
        let side = level_str(&mut sc, FIELD)?;
        let price = level_str(&mut sc, FIELD)?;
        let qty = level_str(&mut sc, FIELD)?;
        if sc.next_element()? {
            return Err(wrong);
        }
        let side = match side.unescaped() {
            Some(b) => side_of(b),
            None => with_unescaped(side.raw(), FIELD, side_of)?,
        }
        .ok_or(wrong)?;
        let price = level_decimal(&price, FIELD)?;
        let qty = level_decimal(&qty, FIELD)?;
        out.push(mk(side, Price(price), Qty(qty)));
    }
    Ok(finish_levels(
        out,
        start,
        mk(BookSide::Bid, Price::ZERO, Qty::ZERO),
    ))
}

fn snapshot(
    buf: &[u8],
    f: &Fields,
    symbol: SymbolId,
    id: u64,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<usize, DecodeError> {
    let bids = array_slot(f, key::BIDS)?;
    let asks = array_slot(f, key::ASKS)?;
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
    for (slot, side, field) in [(bids, BookSide::Bid, "bids"), (asks, BookSide::Ask, "asks")] {
        let mut sc = Scanner::at(buf, slot.start as usize);
        sc.begin_array()?;
        while sc.next_element()? {
            if sc.peek()? != ValueKind::Array {
                return Err(DecodeError::WrongType { field });
            }
            sc.begin_array()?;
            let price = level_str(&mut sc, field)?;
            let qty = level_str(&mut sc, field)?;
            if sc.next_element()? {
                return Err(DecodeError::WrongType { field });
            }
            let price = level_decimal(&price, field)?;
            let qty = level_decimal(&qty, field)?;
            out.push(mk(side, Price(price), Qty(qty)));
        }
    }
    Ok(finish_levels(
        out,
        start,
        mk(BookSide::Bid, Price::ZERO, Qty::ZERO),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frames in the shape of Coinbase's documentation examples.
    const DOC_SNAPSHOT: &str = r#"{"type":"snapshot","product_id":"BTC-USD","bids":[["10101.10","0.45054140"]],"asks":[["10102.55","0.57753524"]]}"#;
    const DOC_L2UPDATE: &str = r#"{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27.265Z","changes":[["buy","10101.80000000","0.162567"]]}"#;
    const DOC_MATCH: &str = r#"{"type":"match","trade_id":10,"sequence":50,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2014-11-07T08:19:27.028459Z","product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell"}"#;
    const DOC_TICKER: &str = r#"{"type":"ticker","sequence":37475248783,"product_id":"ETH-USD","price":"1285.22","open_24h":"1310.79","volume_24h":"245532.79269678","low_24h":"1280.52","high_24h":"1313.8","volume_30d":"9788783.60117027","best_bid":"1285.04","best_bid_size":"0.46688654","best_ask":"1285.27","best_ask_size":"1.56637040","side":"buy","time":"2022-10-19T23:28:22.061769Z","trade_id":370843401,"last_size":"11.4396987"}"#;
    const DOC_HEARTBEAT: &str = r#"{"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD","time":"2014-11-07T08:19:28.464459Z"}"#;
    const DOC_SUBSCRIPTIONS: &str = r#"{"type":"subscriptions","channels":[{"name":"level2","product_ids":["ETH-USD","ETH-EUR"]},{"name":"heartbeat","product_ids":["ETH-USD","ETH-EUR"]}]}"#;
    const DOC_ERROR: &str = r#"{"type":"error","message":"error message"}"#;

    fn dec() -> (CoinbaseDecoder, SymbolId, SymbolId) {
        let mut t = SymbolTable::new();
        t.intern("BTCUSDT").unwrap();
        let btc = t.intern_on(Venue::Coinbase, "BTC-USD").unwrap();
        let eth = t.intern_on(Venue::Coinbase, "ETH-USD").unwrap();
        (CoinbaseDecoder::new(t), btc, eth)
    }

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }

    fn qty(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn level2_is_numbered_per_product() {
        let (mut d, btc, _) = dec();
        let mut out = Vec::new();
        assert_eq!(
            d.decode(DOC_SNAPSHOT.as_bytes(), 5, &mut out),
            Ok(Decoded::Events(2))
        );
        let EventKind::Snapshot(b) = out[0].kind else {
            panic!("{out:?}")
        };
        let EventKind::Snapshot(a) = out[1].kind else {
            panic!("{out:?}")
        };
        assert_eq!(
            (b.side, b.price, b.qty, b.last_update_id),
            (BookSide::Bid, px("10101.10"), qty("0.45054140"), 1)
        );
        assert_eq!(
            (a.side, a.price, a.qty),
            (BookSide::Ask, px("10102.55"), qty("0.57753524"))
        );
        assert!(!b.flags.contains(LevelFlags::LAST) && a.flags.contains(LevelFlags::LAST));
        assert!(out.iter().all(|e| e.symbol == btc && e.recv_ns == 5));

        for want in 2..4u64 {
            out.clear();
            assert_eq!(
                d.decode(DOC_L2UPDATE.as_bytes(), 6, &mut out),
                Ok(Decoded::Events(1))
            );
            let EventKind::Depth(l) = out[0].kind else {
                panic!("{out:?}")
            };
            assert_eq!(l.final_update_id, want);
            assert_eq!(l.first_update_id(), want);
            assert_eq!(l.update_span, 0);
            assert_eq!(
                (l.side, l.price, l.qty),
                (BookSide::Bid, px("10101.8"), qty("0.162567"))
            );
            assert_eq!(l.exch_ns, 1_565_815_347_265_000_000);
            assert!(l.flags.contains(LevelFlags::LAST));
        }
        // A new snapshot continues the count and the next update bridges it.
        out.clear();
        d.decode(DOC_SNAPSHOT.as_bytes(), 7, &mut out).unwrap();
        let EventKind::Snapshot(s) = out[0].kind else {
            panic!()
        };
        assert_eq!(s.last_update_id, 4);
        assert_eq!(d.sequence_stats().snapshots, 2);
        // Empty changes: one LAST | EMPTY level; empty book: the same for a snapshot.
        out.clear();
        let empty = r#"{"type":"l2update","product_id":"BTC-USD","changes":[],"time":"2019-08-14T20:42:27Z"}"#;
        assert_eq!(
            d.decode(empty.as_bytes(), 8, &mut out),
            Ok(Decoded::Events(1))
        );
        let EventKind::Depth(l) = out[0].kind else {
            panic!()
        };
        assert!(l.flags.contains(LevelFlags::LAST.with(LevelFlags::EMPTY)));
        assert_eq!(l.final_update_id, 5);
        out.clear();
        let empty = r#"{"type":"snapshot","product_id":"BTC-USD","bids":[],"asks":[]}"#;
        assert_eq!(
            d.decode(empty.as_bytes(), 8, &mut out),
            Ok(Decoded::Events(1))
        );
        let EventKind::Snapshot(s) = out[0].kind else {
            panic!()
        };
        assert!(s.flags.contains(LevelFlags::LAST.with(LevelFlags::EMPTY)));
        assert_eq!(s.last_update_id, 6);
        // reset() keeps the numbering.
        d.reset();
        out.clear();
        d.decode(DOC_L2UPDATE.as_bytes(), 9, &mut out).unwrap();
        let EventKind::Depth(l) = out[0].kind else {
            panic!()
        };
        assert_eq!(l.final_update_id, 7);
    }

    #[test]
    fn the_maker_side_sets_buyer_maker() {
        let (mut d, btc, _) = dec();
        let mut out = Vec::new();
        assert_eq!(
            d.decode(DOC_MATCH.as_bytes(), 1, &mut out),
            Ok(Decoded::Events(1))
        );
        let EventKind::Trade(t) = out[0].kind else {
            panic!("{out:?}")
        };
        assert_eq!(out[0].symbol, btc);
        assert_eq!(t.trade_id, 10);
        assert_eq!(t.price, px("400.23"));
        assert_eq!(t.qty, qty("5.23512"));
        // side "sell": the maker sold, the taker bought.
        assert!(!t.buyer_maker);
        assert_eq!(t.exch_ns, 1_415_348_367_028_459_000);
        let buy = DOC_MATCH
            .replace(r#""side":"sell""#, r#""side":"buy""#)
            .replace(r#""sequence":50"#, r#""sequence":51"#);
        out.clear();
        d.decode(buy.as_bytes(), 1, &mut out).unwrap();
        let EventKind::Trade(t) = out[0].kind else {
            panic!()
        };
        assert!(t.buyer_maker);
        let last = DOC_MATCH
            .replace(r#""type":"match""#, r#""type":"last_match""#)
            .replace(r#""sequence":50"#, r#""sequence":52"#);
        out.clear();
        assert_eq!(
            d.decode(last.as_bytes(), 1, &mut out),
            Ok(Decoded::Events(1))
        );
    }

    #[test]
    fn repeated_or_older_sequences_are_dropped_and_counted() {
        let (mut d, _, _) = dec();
        let mut out = Vec::new();
        let m = |seq: u64| DOC_MATCH.replace(r#""sequence":50"#, &format!(r#""sequence":{seq}"#));
        assert_eq!(
            d.decode(m(50).as_bytes(), 1, &mut out),
            Ok(Decoded::Events(1))
        );
        // A jump is normal on a matches-only subscription.
        assert_eq!(
            d.decode(m(900).as_bytes(), 1, &mut out),
            Ok(Decoded::Events(1))
        );
        assert_eq!(
            d.decode(m(900).as_bytes(), 1, &mut out),
            Ok(Decoded::Ignored(IgnoreReason::Duplicate))
        );
        assert_eq!(
            d.decode(m(60).as_bytes(), 1, &mut out),
            Ok(Decoded::Ignored(IgnoreReason::Duplicate))
        );
        assert_eq!(out.len(), 2);
        assert_eq!(d.sequence_stats().match_duplicates, 2);
        // The ticker's sequence is tracked apart: the same number is not a duplicate there.
        let t = DOC_TICKER
            .replace(r#""sequence":37475248783"#, r#""sequence":900"#)
            .replace("ETH-USD", "BTC-USD");
        assert_eq!(d.decode(t.as_bytes(), 1, &mut out), Ok(Decoded::Events(1)));
        assert_eq!(
            d.decode(t.as_bytes(), 1, &mut out),
            Ok(Decoded::Ignored(IgnoreReason::Duplicate))
        );
        assert_eq!(d.sequence_stats().ticker_duplicates, 1);
        // Another product has its own sequence.
        let e = DOC_MATCH.replace("BTC-USD", "ETH-USD");
        assert_eq!(d.decode(e.as_bytes(), 1, &mut out), Ok(Decoded::Events(1)));
        // A new connection forgets them.
        d.reset();
        assert_eq!(
            d.decode(m(60).as_bytes(), 1, &mut out),
            Ok(Decoded::Events(1))
        );
        let s = d.stats();
        assert_eq!((s.messages, s.ignored, s.decode_errors), (8, 3, 0));
    }

    #[test]
    fn ticker_is_a_book_ticker() {
        let (mut d, _, eth) = dec();
        let mut out = Vec::new();
        assert_eq!(
            d.decode(DOC_TICKER.as_bytes(), 3, &mut out),
            Ok(Decoded::Events(1))
        );
        assert_eq!(out[0].symbol, eth);
        let EventKind::BookTicker(t) = out[0].kind else {
            panic!()
        };
        assert_eq!(
            t,
            BookTicker {
                update_id: 37_475_248_783,
                bid_px: px("1285.04"),
                bid_qty: qty("0.46688654"),
                ask_px: px("1285.27"),
                ask_qty: qty("1.56637040"),
            }
        );
        // Feeds before 2022 carry no sizes: 0. (Its older sequence would be a duplicate on
        // this connection.)
        d.reset();
        let old = r#"{"type":"ticker","sequence":333938798,"product_id":"ETH-USD","price":"14.7775","best_bid":"14.7550","best_ask":"14.8060","side":"buy","time":"2021-04-17T16:43:30.244075Z","trade_id":881613,"last_size":"0.04"}"#;
        out.clear();
        assert_eq!(
            d.decode(old.as_bytes(), 3, &mut out),
            Ok(Decoded::Events(1))
        );
        let EventKind::BookTicker(t) = out[0].kind else {
            panic!()
        };
        assert_eq!(
            (t.bid_qty, t.ask_qty, t.bid_px),
            (Qty::ZERO, Qty::ZERO, px("14.755"))
        );
    }

    #[test]
    fn responses_heartbeats_and_strangers_are_ignored() {
        let (mut d, _, _) = dec();
        let mut out = Vec::new();
        for (f, why) in [
            (DOC_HEARTBEAT, IgnoreReason::Heartbeat),
            (DOC_SUBSCRIPTIONS, IgnoreReason::Response),
            (DOC_ERROR, IgnoreReason::Response),
            (
                r#"{"type":"status","products":[]}"#,
                IgnoreReason::UnknownStream,
            ),
            (
                r#"{"type":"received","product_id":"BTC-USD"}"#,
                IgnoreReason::UnknownStream,
            ),
            ("{}", IgnoreReason::UnknownStream),
            (
                &DOC_MATCH.replace("BTC-USD", "BTC-EUR"),
                IgnoreReason::UnknownSymbol,
            ),
            // BTCUSDT is a Binance symbol, not a Coinbase product.
            (
                &DOC_MATCH.replace("BTC-USD", "BTCUSDT"),
                IgnoreReason::UnknownSymbol,
            ),
        ] {
            assert_eq!(
                d.decode(f.as_bytes(), 1, &mut out),
                Ok(Decoded::Ignored(why)),
                "{f}"
            );
        }
        assert!(out.is_empty());
        assert_eq!(d.stats().unknown_symbol, 2);
    }

    #[test]
    fn bad_frames_are_errors_and_leave_nothing() {
        let (mut d, _, _) = dec();
        let mut out = Vec::new();
        let cases: [(String, DecodeError); 12] = [
            ("[]".into(), DecodeError::NotAnObject),
            (
                r#"{"type":"match""#.into(),
                DecodeError::Truncated { offset: 15 },
            ),
            (
                DOC_MATCH.replace(r#""side":"sell""#, r#""side":"up""#),
                DecodeError::WrongType { field: "side" },
            ),
            (
                DOC_MATCH.replace(r#""trade_id":10"#, r#""trade_id":"10""#),
                DecodeError::WrongType { field: "trade_id" },
            ),
            (
                DOC_MATCH.replace(r#""sequence":50,"#, ""),
                DecodeError::MissingField("sequence"),
            ),
            (
                DOC_MATCH.replace("2014-11-07T08:19:27.028459Z", "yesterday"),
                DecodeError::WrongType { field: "time" },
            ),
            (
                DOC_MATCH.replace(r#""type":"match","#, r#""type":"match","type":"match","#),
                DecodeError::DuplicateField("type"),
            ),
            (
                DOC_L2UPDATE.replace(
                    r#"["buy","10101.80000000","0.162567"]"#,
                    r#"["buy","10101.8"]"#,
                ),
                DecodeError::WrongType { field: "changes" },
            ),
            (
                DOC_L2UPDATE.replace(r#""buy""#, r#""bid""#),
                DecodeError::WrongType { field: "changes" },
            ),
            (
                DOC_L2UPDATE.replace(
                    r#"["buy","10101.80000000","0.162567"]"#,
                    r#"["buy","1","2","3"]"#,
                ),
                DecodeError::WrongType { field: "changes" },
            ),
            (
                DOC_SNAPSHOT.replace(r#""asks":"#, r#""x":"#),
                DecodeError::MissingField("asks"),
            ),
            (
                DOC_TICKER.replace(r#""best_bid":"1285.04""#, r#""best_bid":null"#),
                DecodeError::WrongType { field: "best_bid" },
            ),
        ];
        for (f, e) in cases {
            assert_eq!(d.decode(f.as_bytes(), 1, &mut out), Err(e), "{f}");
            assert!(out.is_empty(), "{f}");
        }
        // A bad level after good ones appends nothing and does not advance the numbering.
        let bad = r#"{"type":"l2update","product_id":"BTC-USD","time":"2019-08-14T20:42:27Z","changes":[["buy","1","1"],["sell","x","1"]]}"#;
        assert!(d.decode(bad.as_bytes(), 1, &mut out).is_err());
        assert!(out.is_empty());
        d.decode(DOC_L2UPDATE.as_bytes(), 1, &mut out).unwrap();
        let EventKind::Depth(l) = out[0].kind else {
            panic!()
        };
        assert_eq!(l.final_update_id, 1);
        assert_eq!(d.stats().decode_errors, 13);
    }

    /// The fast path gives exactly what the general path gives, on every frame of the real
    /// capture and on variants of the documented l2update.
    #[test]
    fn fast_path_equals_general_path() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/cryptofeed/COINBASE.ws.28.0"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|_| {
            eprintln!("NOTICE: {path} not found; documented examples only");
            String::new()
        });
        let mut frames: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .filter_map(|l| l.split_once(": ").map(|(_, f)| f.to_string()))
            .collect();
        let doc = DOC_L2UPDATE;
        frames.extend([
            doc.to_string(),
            doc.replace(r#","time":"2019-08-14T20:42:27.265Z","changes":[["buy","10101.80000000","0.162567"]]"#, r#","changes":[["buy","10101.80000000","0.162567"],["sell","1","0"]],"time":"2019-08-14T20:42:27.265Z""#),
            doc.replace(r#"[["buy","10101.80000000","0.162567"]]"#, "[]"),
            doc.replace("buy", "bid"),
            doc.replace("0.162567", "0.1625670000001"),
            doc.replace("2019-08-14", "2019-02-30"),
            doc.replace("BTC-USD", "XRP-USD"),
            doc.replace("]]", "],]"),
            format!("{doc} "),
            doc.replace("}", "},"),
        ]);
        let mut symbols = SymbolTable::new();
        for p in [
            "BTC-USD", "SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC",
            "DASH-BTC", "NU-GBP", "CRV-EUR", "SKL-GBP",
        ] {
            symbols.intern_on(Venue::Coinbase, p).unwrap();
        }
        let mut a = CoinbaseDecoder::new(symbols.clone());
        let mut b = CoinbaseDecoder::new(symbols);
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        let mut fast = 0;
        for f in &frames {
            ea.clear();
            eb.clear();
            let ra = a.decode(f.as_bytes(), 1, &mut ea);
            let rb = b.decode_general(f.as_bytes(), 1, &mut eb);
            if rb.is_err() {
                eb.clear();
            }
            assert_eq!(ra, rb, "{f:.200}");
            assert_eq!(ea, eb, "{f:.200}");
            fast += usize::from(
                fast::l2update(&mut b.clone(), f.as_bytes(), 1, &mut Vec::new()).is_some(),
            );
        }
        // The capture's l2updates (all but the altered examples) take the fast path.
        assert!(
            fast >= frames.len().saturating_sub(10) * 9 / 10 || text.is_empty(),
            "{fast}"
        );
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let (mut d, _, _) = dec();
        let mut out = Vec::new();
        let f = DOC_MATCH
            .replace(r#""type":"match""#, r#""t\u0079pe":"m\u0061tch""#)
            .replace(r#""400.23""#, r#""4\u00300.23""#);
        assert_eq!(d.decode(f.as_bytes(), 1, &mut out), Ok(Decoded::Events(1)));
        let EventKind::Trade(t) = out[0].kind else {
            panic!()
        };
        assert_eq!(t.price, px("400.23"));
    }
}
