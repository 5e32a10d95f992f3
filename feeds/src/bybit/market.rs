//! Bybit v5 public market data (spot and linear): WebSocket frames to [`Event`]s.
//!
//! [`BybitDecoder::decode`] takes one frame of a `wss://stream.bybit.com/v5/public/{spot,linear}`
//! connection. One decoder serves one venue ([`Venue::BybitSpot`] or [`Venue::BybitLinear`]:
//! the two markets share instrument names, so the venue is the decoder's, never the frame's),
//! and looks every symbol up on it.
//!
//! # What is decoded
//!
//! | frame | recognised by | events |
//! |---|---|---|
//! | `orderbook.N.<SYM>`, `"type":"snapshot"` | topic prefix `orderbook` | one [`SnapshotLevel`] per level (`last_update_id` = `u`), bids first as sent, `LAST` on the last, one `EMPTY` event for an empty book |
//! | `orderbook.N.<SYM>`, `"type":"delta"` | same | one [`DepthLevel`] per level (`final_update_id` = `u`, `update_span` = 0, `exch_ns` = `ts`), `LAST`/`EMPTY` as above |
//! | `publicTrade.<SYM>` | topic prefix `publicTrade` | one [`Trade`] per element of `data` (`exch_ns` = `T`, `buyer_maker` = `S == "Sell"`, trade id from `i`: see below) |
//! | `tickers.<SYM>` carrying any of `bid1Price`/`bid1Size`/`ask1Price`/`ask1Size` | topic prefix `tickers` | one [`BookTicker`] once all four are known (`update_id` = `cs`, 0 if absent) |
//! | `tickers.<SYM>` carrying none of them (every spot ticker, linear deltas of other fields) | | `Ignored(UnknownStream)`: nothing of the best bid/ask |
//! | `kline.*`, `allLiquidation.*`, any other topic | | `Ignored(UnknownStream)` |
//! | `{"success":..,"op":"subscribe"|"unsubscribe",..}` | no `topic`, an `op` or `success` | `Ignored(Response)` |
//! | `{"op":"ping","ret_msg":"pong",..}`, `{"op":"pong",..}` | no `topic`, `op` is `ping` or `pong` | `Ignored(Heartbeat)` |
//!
//! The symbol is the payload's own (`data.s` of a book, each trade's `s`, `data.symbol` of a
//! ticker); one not in the table makes the frame `Ignored(UnknownSymbol)` (after the whole
//! frame is validated: a malformed frame is an error whatever its symbol).
//!
//! # The book's sequence rule
//!
//! Bybit's v5 "Orderbook" WebSocket page: "Once you have subscribed successfully, you will
//! receive a snapshot. The WebSocket will keep pushing delta messages every time the orderbook
//! changes. If you receive a new snapshot message, you will have to reset your local
//! orderbook." Of `u`: "Update ID", and "Occasionally, you'll receive "u"=1, which is a
//! snapshot data due to the restart of the service. So please overwrite your local orderbook".
//! The older derivatives page says it more plainly: "Update id, is always in sequence". Bybit's
//! SBE level-50 guide spells out the check: the next `u` should equal the previous `u` + 1,
//! except at `u` = 1. `seq` is the "Cross sequence" (shared with other depths and channels of
//! the symbol: "You can use this field to compare different levels orderbook data"), so it is
//! not part of the chain and is not read. The real capture agrees: on every book topic of
//! `../shared/data/cryptofeed/BYBIT.jsonl.zst` (spot and linear, `orderbook.200`) each delta's
//! `u` is the previous message's `u` + 1 (checked over the whole file by
//! `feeds/tests/bybit_capture.rs`), and the first delta follows the snapshot's `u` by one.
//!
//! So, on the engine's one book procedure ([`engine::book`]):
//!
//! - a snapshot is a WebSocket snapshot with id `u`: [`SnapshotLevel`]s with
//!   `last_update_id = u`. The book replaces itself on every snapshot, mid-stream too (also the
//!   `u = 1` snapshot after a restart, and the level-1 snapshot that repeats the previous `u`
//!   when nothing changed for 3 s), and the next delta must then have `u` = snapshot `u` + 1;
//! - a delta continues from `u - 1`: `final_update_id = u`, `update_span = 0`, so the book's
//!   continuity check (`first_update_id() == last applied + 1`) is exactly "the next `u` is the
//!   previous `u` + 1" and a lost delta is a counted gap (the io layer then resubscribes, which
//!   makes Bybit send a fresh snapshot: [`BookSync::WsSnapshot`](crate::venue::BookSync)).
//!   The decoder keeps no sequence state of its own.
//! - A delta with `u = 0` continues from nothing (no `u - 1`): it cannot be placed and is a
//!   [`DecodeError::BadRange`] on `u`. Bybit's ids start at 1.
//!
//! `ts` (when Bybit's system generated the message, ms) is the levels' `exch_ns`; `cts` (the
//! matching engine's time) is not used.
//!
//! # Trade ids
//!
//! `i` is a string: a decimal number on spot (`"2290000000000000042"`), a UUID on linear
//! (`"20f43950-d8dd-5b31-9112-a178eb6023af"` in Bybit's documented example). A decimal that
//! fits a `u64` is the trade id as is; a UUID becomes the XOR of its two 64-bit halves (unique
//! with overwhelming probability, but not ordered: linear trade ids carry no sequence). Any
//! other shape is a [`DecodeError::WrongType`] on `i`. Block trades (`BT`) and RPI trades are
//! trades like any other.
//!
//! # Tickers
//!
//! Bybit's "Ticker" page: "This topic utilises the snapshot field and delta field. If a
//! response param is not found in the message, then its value has not changed." Linear tickers
//! are a snapshot followed by deltas of only the changed fields; spot tickers are snapshots
//! without any best bid/ask. The decoder keeps the last best bid/ask per symbol: a snapshot
//! replaces it, a delta's present fields overwrite it, and a [`BookTicker`] is produced for
//! every frame that carried one of the four fields once all four are known (an empty string,
//! which Bybit sends for a side without orders, makes that field unknown again). Without a
//! snapshot since the last [`reset`](BybitDecoder::reset) a delta of one side only produces
//! nothing (`Ignored(UnknownStream)`) until the other side is seen.
//!
//! # Strictness and cost
//!
//! The whole frame is validated as JSON ([`crate::json`]) before anything is returned; known
//! keys appearing twice are an error; prices and sizes must be decimal strings that fit
//! [`engine::fixed`]; ids and times unsigned integers. One pass: the payload is decoded where
//! it stands when `topic` precedes `data` (Bybit's order), else found first and decoded after.
//! No allocation: events go into the caller's `Vec` (sized once), the ticker state is sized at
//! construction.

use crate::json::{self, JsonNum, JsonStr, NumError, Scanner, ValueKind};
use crate::venue::decode::with_unescaped;
use crate::venue::decode::{DecodeError, DecodeStats, Decoded, IgnoreReason};
use engine::event::{
    BookSide, BookTicker, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel, Trade,
};
use engine::fixed::{parse_fixed, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// Nanoseconds per Bybit millisecond timestamp.
const NS_PER_MS: u64 = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Small readers.

/// Runs `op` on a string's content (decoded on the stack if it has escapes).
#[inline(always)]
fn with_str<R>(
    s: &JsonStr<'_>,
    field: &'static str,
    op: impl FnOnce(&[u8]) -> R,
) -> Result<R, DecodeError> {
    match s.unescaped() {
        Some(b) => Ok(op(b)),
        None => with_unescaped(s.raw(), field, op),
    }
}

/// A key's id through `id_of` (escaped keys decoded first; a key too long is unknown).
#[inline(always)]
fn key_id<K>(k: &JsonStr<'_>, id_of: impl Fn(&[u8]) -> Option<K>) -> Option<K> {
    match k.unescaped() {
        Some(raw) => id_of(raw),
        None => escaped_key_id(k, id_of),
    }
}

#[cold]
fn escaped_key_id<K>(k: &JsonStr<'_>, id_of: impl Fn(&[u8]) -> Option<K>) -> Option<K> {
    let mut buf = [0u8; 16];
    id_of(k.decode_into(&mut buf)?)
}

/// A string value (a `WrongType` on `field` otherwise).
#[inline(always)]
fn string<'a>(sc: &mut Scanner<'a>, field: &'static str) -> Result<JsonStr<'a>, DecodeError> {
    if sc.peek()? != ValueKind::String {
        return Err(DecodeError::WrongType { field });
    }
    Ok(sc.string()?)
}

/// An unsigned integer value.
#[inline(always)]
fn uint(sc: &mut Scanner<'_>, field: &'static str) -> Result<u64, DecodeError> {
    if sc.peek()? != ValueKind::Number {
        return Err(DecodeError::WrongType { field });
    }
    let n = sc.number()?;
    num_u64(&n, field)
}

#[inline(always)]
fn num_u64(n: &JsonNum<'_>, field: &'static str) -> Result<u64, DecodeError> {
    n.as_u64().map_err(|e| match e {
        NumError::NotUnsigned => DecodeError::WrongType { field },
        NumError::Overflow => DecodeError::IntOverflow { field },
    })
}

#[inline(always)]
fn ms_to_ns(ms: u64, field: &'static str) -> Result<u64, DecodeError> {
    ms.checked_mul(NS_PER_MS)
        .ok_or(DecodeError::IntOverflow { field })
}

#[inline(always)]
fn fixed(s: &JsonStr<'_>, field: &'static str) -> Result<i64, DecodeError> {
    with_str(s, field, parse_fixed)?.map_err(|err| DecodeError::BadDecimal { field, err })
}

/// Stores `v` in `slot`, refusing a second value for one key.
#[inline(always)]
fn put<T>(slot: &mut Option<T>, v: T, field: &'static str) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateField(field));
    }
    *slot = Some(v);
    Ok(())
}

/// Skips a duplicate-checked key's value, remembering that it was seen.
#[inline(always)]
fn seen(sc: &mut Scanner<'_>, flag: &mut bool, field: &'static str) -> Result<(), DecodeError> {
    if *flag {
        return Err(DecodeError::DuplicateField(field));
    }
    *flag = true;
    sc.skip_value()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Trade ids.

/// The `u64` of a Bybit trade id: a decimal as is, a UUID as the XOR of its halves.
pub fn trade_id(id: &[u8]) -> Option<u64> {
    if !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit) {
        return json::parse_u64(id).ok();
    }
    uuid_id(id)
}

/// `8-4-4-4-12` hex digits (either case) to `hi64 ^ lo64`.
fn uuid_id(id: &[u8]) -> Option<u64> {
    if id.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &b) in id.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | d as u128;
    }
    Some((v >> 64) as u64 ^ v as u64)
}

// ---------------------------------------------------------------------------------------------
// Frame structure.

/// What a topic is, from its first dot-separated part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    Book,
    Trade,
    Ticker,
    Other,
}

fn topic_of(t: &[u8]) -> Topic {
    let name = match t.iter().position(|&b| b == b'.') {
        Some(dot) => t.get(..dot).unwrap_or_default(),
        None => t,
    };
    match name {
        b"orderbook" => Topic::Book,
        b"publicTrade" => Topic::Trade,
        b"tickers" => Topic::Ticker,
        _ => Topic::Other,
    }
}

/// A top-level scalar kept for later.
#[derive(Clone, Copy, Debug)]
enum Scalar<'a> {
    Str(JsonStr<'a>),
    Num(JsonNum<'a>),
    Other,
}

impl<'a> Scalar<'a> {
    /// Reads the value at the scanner (containers are skipped).
    fn read(sc: &mut Scanner<'a>) -> Result<Self, DecodeError> {
        Ok(match sc.peek()? {
            ValueKind::String => Scalar::Str(sc.string()?),
            ValueKind::Number => Scalar::Num(sc.number()?),
            _ => {
                sc.skip_value()?;
                Scalar::Other
            }
        })
    }

    fn u64(&self, field: &'static str) -> Result<u64, DecodeError> {
        match self {
            Scalar::Num(n) => num_u64(n, field),
            _ => Err(DecodeError::WrongType { field }),
        }
    }

    fn str(&self, field: &'static str) -> Result<JsonStr<'a>, DecodeError> {
        match self {
            Scalar::Str(s) => Ok(*s),
            _ => Err(DecodeError::WrongType { field }),
        }
    }
}

/// Top-level members the decoder reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TopKey {
    Topic,
    Type,
    Ts,
    Data,
    Cs,
    Op,
    Success,
}

fn top_key(k: &[u8]) -> Option<TopKey> {
    Some(match k {
        b"topic" => TopKey::Topic,
        b"type" => TopKey::Type,
        b"ts" => TopKey::Ts,
        b"data" => TopKey::Data,
        b"cs" => TopKey::Cs,
        b"op" => TopKey::Op,
        b"success" => TopKey::Success,
        _ => return None,
    })
}

/// What the payload held, beyond the events it appended.
#[derive(Clone, Copy, Debug)]
enum Payload<'a> {
    /// Not decoded (another topic, or no topic).
    Skipped,
    /// Book levels were appended as placeholders (see [`book_data`]).
    Book {
        s: Option<JsonStr<'a>>,
        u: Option<u64>,
    },
    /// Trades were appended, complete; `unknown` if a symbol was not in the table.
    Trades { unknown: bool },
    /// A ticker's fields.
    Ticker(TickerData<'a>),
}

/// One best bid/ask field of a ticker frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Field {
    /// Not in the frame: unchanged.
    #[default]
    Absent,
    /// `""`: no value.
    Empty,
    /// A value.
    Value(i64),
}

#[derive(Clone, Copy, Debug, Default)]
struct TickerData<'a> {
    symbol: Option<JsonStr<'a>>,
    bid_px: Field,
    bid_qty: Field,
    ask_px: Field,
    ask_qty: Field,
}

/// The last best bid/ask of one symbol (`None`: unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Top {
    bid_px: Option<i64>,
    bid_qty: Option<i64>,
    ask_px: Option<i64>,
    ask_qty: Option<i64>,
}

impl Top {
    fn merge(&mut self, t: &TickerData<'_>) {
        fn one(slot: &mut Option<i64>, f: Field) {
            match f {
                Field::Absent => {}
                Field::Empty => *slot = None,
                Field::Value(v) => *slot = Some(v),
            }
        }
        one(&mut self.bid_px, t.bid_px);
        one(&mut self.bid_qty, t.bid_qty);
        one(&mut self.ask_px, t.ask_px);
        one(&mut self.ask_qty, t.ask_qty);
    }
}

// ---------------------------------------------------------------------------------------------
// Payload readers.

/// Reads `data` of a topic at the scanner, appending events.
fn payload<'a>(
    sc: &mut Scanner<'a>,
    topic: Topic,
    symbols: &SymbolTable,
    venue: Venue,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<Payload<'a>, DecodeError> {
    let kind = sc.peek()?;
    let wrong = DecodeError::WrongType { field: "data" };
    match topic {
        Topic::Book if kind == ValueKind::Object => book_data(sc, recv_ns, out),
        Topic::Trade if kind == ValueKind::Array => trades(sc, symbols, venue, recv_ns, out),
        Topic::Ticker if kind == ValueKind::Object => ticker_data(sc).map(Payload::Ticker),
        Topic::Book | Topic::Trade | Topic::Ticker => Err(wrong),
        Topic::Other => {
            sc.skip_value()?;
            Ok(Payload::Skipped)
        }
    }
}

/// A placeholder level: the side, price and quantity; the rest is filled in by [`finish_book`].
#[inline(always)]
fn placeholder(recv_ns: u64, side: BookSide, price: i64, qty: i64) -> Event {
    Event::new(
        recv_ns,
        SymbolId(0),
        EventKind::Depth(DepthLevel {
            exch_ns: 0,
            final_update_id: 0,
            price: Price(price),
            qty: Qty(qty),
            update_span: 0,
            side,
            flags: LevelFlags::default(),
        }),
    )
}

/// `{"s":..,"b":[..],"a":[..],"u":..,"seq":..}`: levels appended as placeholders.
fn book_data<'a>(
    sc: &mut Scanner<'a>,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<Payload<'a>, DecodeError> {
    let (mut s, mut u) = (None, None);
    let (mut b, mut a) = (false, false);
    sc.begin_object()?;
    while let Some(k) = sc.next_key()? {
        match key_id(&k, |k| match k {
            b"s" | b"b" | b"a" | b"u" => k.first().copied(),
            _ => None,
        }) {
            Some(b's') => put(&mut s, string(sc, "s")?, "s")?,
            Some(b'u') => put(&mut u, uint(sc, "u")?, "u")?,
            Some(b'b') => {
                if b {
                    return Err(DecodeError::DuplicateField("b"));
                }
                b = true;
                levels(sc, "b", BookSide::Bid, recv_ns, out)?;
            }
            Some(b'a') => {
                if a {
                    return Err(DecodeError::DuplicateField("a"));
                }
                a = true;
                levels(sc, "a", BookSide::Ask, recv_ns, out)?;
            }
            _ => {
                sc.skip_value()?;
            }
        }
    }
    if !b {
        return Err(DecodeError::MissingField("b"));
    }
    if !a {
        return Err(DecodeError::MissingField("a"));
    }
    Ok(Payload::Book { s, u })
}

/// `[["price","size"],...]`, pushing a placeholder per level.
#[inline(always)]
fn levels(
    sc: &mut Scanner<'_>,
    field: &'static str,
    side: BookSide,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<(), DecodeError> {
    let wrong = DecodeError::WrongType { field };
    if sc.peek()? != ValueKind::Array {
        return Err(wrong);
    }
    sc.begin_array()?;
    while sc.next_element()? {
        if sc.peek()? != ValueKind::Array {
            return Err(wrong);
        }
        sc.begin_array()?;
        if !sc.next_element()? {
            return Err(wrong);
        }
        let px = string(sc, field)?;
        if !sc.next_element()? {
            return Err(wrong);
        }
        let qty = string(sc, field)?;
        if sc.next_element()? {
            return Err(wrong);
        }
        out.push(placeholder(
            recv_ns,
            side,
            fixed(&px, field)?,
            fixed(&qty, field)?,
        ));
    }
    Ok(())
}

/// `[{"T":..,"s":..,"S":..,"v":..,"p":..,"i":..,..},..]`: one [`Trade`] per element.
fn trades<'a>(
    sc: &mut Scanner<'a>,
    symbols: &SymbolTable,
    venue: Venue,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<Payload<'a>, DecodeError> {
    let mut unknown = false;
    // The last name looked up and its id: a frame's trades share one symbol.
    let mut last: Option<(JsonStr<'a>, Option<SymbolId>)> = None;
    sc.begin_array()?;
    while sc.next_element()? {
        if sc.peek()? != ValueKind::Object {
            return Err(DecodeError::WrongType { field: "data" });
        }
        let (mut t, mut s, mut side, mut v, mut p, mut i) = (None, None, None, None, None, None);
        sc.begin_object()?;
        while let Some(k) = sc.next_key()? {
            match key_id(&k, |k| match k {
                b"T" | b"s" | b"S" | b"v" | b"p" | b"i" => k.first().copied(),
                _ => None,
            }) {
                Some(b'T') => put(&mut t, uint(sc, "T")?, "T")?,
                Some(b's') => put(&mut s, string(sc, "s")?, "s")?,
                Some(b'S') => put(&mut side, string(sc, "S")?, "S")?,
                Some(b'v') => put(&mut v, string(sc, "v")?, "v")?,
                Some(b'p') => put(&mut p, string(sc, "p")?, "p")?,
                Some(b'i') => put(&mut i, string(sc, "i")?, "i")?,
                _ => {
                    sc.skip_value()?;
                }
            }
        }
        let exch_ns = ms_to_ns(t.ok_or(DecodeError::MissingField("T"))?, "T")?;
        let s = s.ok_or(DecodeError::MissingField("s"))?;
        let buyer_maker =
            match with_str(
                &side.ok_or(DecodeError::MissingField("S"))?,
                "S",
                |b| match b {
                    b"Buy" => Some(false),
                    b"Sell" => Some(true),
                    _ => None,
                },
            )? {
                Some(m) => m,
                None => return Err(DecodeError::WrongType { field: "S" }),
            };
        let qty = fixed(&v.ok_or(DecodeError::MissingField("v"))?, "v")?;
        let price = fixed(&p.ok_or(DecodeError::MissingField("p"))?, "p")?;
        let id = with_str(&i.ok_or(DecodeError::MissingField("i"))?, "i", trade_id)?
            .ok_or(DecodeError::WrongType { field: "i" })?;
        let symbol = match last {
            Some((name, id)) if name.raw() == s.raw() => id,
            _ => {
                let id = with_str(&s, "s", |n| symbols.lookup_on(venue, n))?;
                last = Some((s, id));
                id
            }
        };
        match symbol {
            Some(symbol) if !unknown => out.push(Event::new(
                recv_ns,
                symbol,
                EventKind::Trade(Trade {
                    exch_ns,
                    trade_id: id,
                    price: Price(price),
                    qty: Qty(qty),
                    buyer_maker,
                }),
            )),
            _ => unknown = true,
        }
    }
    Ok(Payload::Trades { unknown })
}

/// A ticker's `data` object: the symbol and the best bid/ask fields.
fn ticker_data<'a>(sc: &mut Scanner<'a>) -> Result<TickerData<'a>, DecodeError> {
    let mut t = TickerData::default();
    sc.begin_object()?;
    while let Some(k) = sc.next_key()? {
        let id = key_id(&k, |k| {
            Some(match k {
                b"symbol" => 0u8,
                b"bid1Price" => 1,
                b"bid1Size" => 2,
                b"ask1Price" => 3,
                b"ask1Size" => 4,
                _ => return None,
            })
        });
        let (slot, field) = match id {
            Some(0) => {
                put(&mut t.symbol, string(sc, "symbol")?, "symbol")?;
                continue;
            }
            Some(1) => (&mut t.bid_px, "bid1Price"),
            Some(2) => (&mut t.bid_qty, "bid1Size"),
            Some(3) => (&mut t.ask_px, "ask1Price"),
            Some(4) => (&mut t.ask_qty, "ask1Size"),
            _ => {
                sc.skip_value()?;
                continue;
            }
        };
        if *slot != Field::Absent {
            return Err(DecodeError::DuplicateField(field));
        }
        let s = string(sc, field)?;
        *slot = if s.raw().is_empty() {
            Field::Empty
        } else {
            Field::Value(fixed(&s, field)?)
        };
    }
    Ok(t)
}

// ---------------------------------------------------------------------------------------------
// The decoder.

/// Decodes Bybit v5 public spot or linear frames; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct BybitDecoder {
    venue: Venue,
    symbols: SymbolTable,
    stats: DecodeStats,
    /// The last best bid/ask per symbol index (tickers).
    tops: Vec<Top>,
}

impl BybitDecoder {
    /// A decoder for `venue` ([`Venue::BybitSpot`] or [`Venue::BybitLinear`]) over `symbols`
    /// (only `venue`'s symbols are looked up).
    pub fn new(venue: Venue, symbols: SymbolTable) -> Self {
        let tops = vec![Top::default(); symbols.len()];
        BybitDecoder {
            venue,
            symbols,
            stats: DecodeStats::default(),
            tops,
        }
    }

    /// The venue.
    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// Counters since construction.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The symbol table.
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// Forgets the best bid/ask of every symbol (after a disconnect: the next ticker snapshot
    /// starts afresh).
    pub fn reset(&mut self) {
        self.tops.fill(Top::default());
    }

    /// Decodes one WebSocket frame received at `recv_ns`, appending its events to `out`. On
    /// error or when ignored, `out` is left as it was.
    #[inline]
    pub fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        let len0 = out.len();
        let r = self.decode_frame(frame, recv_ns, out);
        self.stats.account(&r, out, len0);
        r
    }

    /// Bybit's books start from the WebSocket snapshot
    /// ([`BookSync::WsSnapshot`](crate::venue::BookSync::WsSnapshot)), so a REST body is
    /// refused: validated as JSON, then [`DecodeError::NotAnObject`] for a non-object and
    /// [`DecodeError::MissingField`]`("topic")` for an object.
    pub fn decode_snapshot(
        &mut self,
        body: &[u8],
        _symbol: SymbolId,
        _recv_ns: u64,
        _out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        let r = (|| {
            let mut sc = Scanner::new(body);
            let kind = sc.peek()?;
            sc.skip_value()?;
            sc.finish()?;
            Err(if kind == ValueKind::Object {
                DecodeError::MissingField("topic")
            } else {
                DecodeError::NotAnObject
            })
        })();
        self.stats.messages += 1;
        self.stats.decode_errors += 1;
        r
    }

    fn decode_frame(
        &mut self,
        buf: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        if buf.len() >= u32::MAX as usize {
            return Err(DecodeError::FrameTooLarge);
        }
        let start = out.len();
        let mut sc = Scanner::new(buf);
        if sc.peek()? != ValueKind::Object {
            sc.skip_value()?;
            sc.finish()?;
            return Err(DecodeError::NotAnObject);
        }
        let mut topic: Option<(JsonStr<'_>, Topic)> = None;
        let (mut typ, mut ts, mut cs, mut op) = (None, None, None, None);
        let mut success = false;
        let mut data_at: Option<usize> = None;
        let mut payload_read: Option<Payload<'_>> = None;
        sc.begin_object()?;
        while let Some(k) = sc.next_key()? {
            match key_id(&k, top_key) {
                Some(TopKey::Topic) => {
                    let s = string(&mut sc, "topic")?;
                    let t = with_str(&s, "topic", topic_of)?;
                    put(&mut topic, (s, t), "topic")?;
                }
                Some(TopKey::Type) => put(&mut typ, Scalar::read(&mut sc)?, "type")?,
                Some(TopKey::Ts) => put(&mut ts, Scalar::read(&mut sc)?, "ts")?,
                Some(TopKey::Cs) => put(&mut cs, Scalar::read(&mut sc)?, "cs")?,
                Some(TopKey::Op) => put(&mut op, Scalar::read(&mut sc)?, "op")?,
                Some(TopKey::Success) => seen(&mut sc, &mut success, "success")?,
                Some(TopKey::Data) => {
                    if data_at.is_some() {
                        return Err(DecodeError::DuplicateField("data"));
                    }
                    data_at = Some(sc.pos());
                    match topic {
                        Some((_, t)) => {
                            payload_read = Some(payload(
                                &mut sc,
                                t,
                                &self.symbols,
                                self.venue,
                                recv_ns,
                                out,
                            )?);
                        }
                        None => {
                            sc.skip_value()?;
                        }
                    }
                }
                None => {
                    sc.skip_value()?;
                }
            }
        }
        sc.finish()?;

        let Some((_, topic)) = topic else {
            return Ok(Decoded::Ignored(match op {
                Some(Scalar::Str(s)) if with_str(&s, "op", |o| o == b"ping" || o == b"pong")? => {
                    IgnoreReason::Heartbeat
                }
                Some(_) => IgnoreReason::Response,
                None if success => IgnoreReason::Response,
                None => IgnoreReason::UnknownStream,
            }));
        };
        if topic == Topic::Other {
            return Ok(Decoded::Ignored(IgnoreReason::UnknownStream));
        }
        let payload = match (payload_read, data_at) {
            (Some(p), _) => p,
            (None, Some(at)) => payload(
                &mut Scanner::at(buf, at),
                topic,
                &self.symbols,
                self.venue,
                recv_ns,
                out,
            )?,
            (None, None) => return Err(DecodeError::MissingField("data")),
        };
        match payload {
            Payload::Skipped => Ok(Decoded::Ignored(IgnoreReason::UnknownStream)),
            Payload::Trades { unknown: true } => Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol)),
            Payload::Trades { unknown: false } => Ok(Decoded::Events(out.len() - start)),
            Payload::Book { s, u } => {
                let snapshot = snapshot_type(typ)?;
                let ts = ts.ok_or(DecodeError::MissingField("ts"))?.u64("ts")?;
                let exch_ns = ms_to_ns(ts, "ts")?;
                let u = u.ok_or(DecodeError::MissingField("u"))?;
                if !snapshot && u == 0 {
                    return Err(DecodeError::BadRange { field: "u" });
                }
                let s = s.ok_or(DecodeError::MissingField("s"))?;
                let Some(symbol) = with_str(&s, "s", |n| self.symbols.lookup_on(self.venue, n))?
                else {
                    return Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol));
                };
                Ok(Decoded::Events(finish_book(
                    out, start, symbol, snapshot, u, exch_ns, recv_ns,
                )))
            }
            Payload::Ticker(t) => {
                let snapshot = snapshot_type(typ)?;
                let update_id = match cs {
                    Some(cs) => cs.u64("cs")?,
                    None => 0,
                };
                let s = t.symbol.ok_or(DecodeError::MissingField("symbol"))?;
                let Some(symbol) =
                    with_str(&s, "symbol", |n| self.symbols.lookup_on(self.venue, n))?
                else {
                    return Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol));
                };
                let Some(top) = self.tops.get_mut(symbol.index()) else {
                    return Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol));
                };
                if snapshot {
                    *top = Top::default();
                }
                top.merge(&t);
                let carried = [t.bid_px, t.bid_qty, t.ask_px, t.ask_qty]
                    .iter()
                    .any(|f| *f != Field::Absent);
                match (carried, *top) {
                    (
                        true,
                        Top {
                            bid_px: Some(bp),
                            bid_qty: Some(bq),
                            ask_px: Some(ap),
                            ask_qty: Some(aq),
                        },
                    ) => {
                        out.push(Event::new(
                            recv_ns,
                            symbol,
                            EventKind::BookTicker(BookTicker {
                                update_id,
                                bid_px: Price(bp),
                                bid_qty: Qty(bq),
                                ask_px: Price(ap),
                                ask_qty: Qty(aq),
                            }),
                        ));
                        Ok(Decoded::Events(1))
                    }
                    _ => Ok(Decoded::Ignored(IgnoreReason::UnknownStream)),
                }
            }
        }
    }
}

/// `type`: `true` for `snapshot`, `false` for `delta`.
fn snapshot_type(typ: Option<Scalar<'_>>) -> Result<bool, DecodeError> {
    let s = typ.ok_or(DecodeError::MissingField("type"))?.str("type")?;
    match with_str(&s, "type", |t| match t {
        b"snapshot" => Some(true),
        b"delta" => Some(false),
        _ => None,
    })? {
        Some(v) => Ok(v),
        None => Err(DecodeError::WrongType { field: "type" }),
    }
}

/// Turns the placeholders appended since `start` into the message's level events, marks the
/// last `LAST` (or appends one `EMPTY | LAST` event), and returns how many there are.
fn finish_book(
    out: &mut Vec<Event>,
    start: usize,
    symbol: SymbolId,
    snapshot: bool,
    u: u64,
    exch_ns: u64,
    recv_ns: u64,
) -> usize {
    let level = |side, price, qty| {
        if snapshot {
            EventKind::Snapshot(SnapshotLevel {
                last_update_id: u,
                price,
                qty,
                side,
                flags: LevelFlags::default(),
            })
        } else {
            EventKind::Depth(DepthLevel {
                exch_ns,
                final_update_id: u,
                price,
                qty,
                update_span: 0,
                side,
                flags: LevelFlags::default(),
            })
        }
    };
    for ev in out.get_mut(start..).unwrap_or_default() {
        if let EventKind::Depth(d) = ev.kind {
            ev.symbol = symbol;
            ev.kind = level(d.side, d.price, d.qty);
        }
    }
    let has_levels = out.len() > start;
    match out.last_mut() {
        Some(ev) if has_levels => ev.add_level_flags(LevelFlags::LAST),
        _ => {
            let mut ev = Event::new(
                recv_ns,
                symbol,
                level(BookSide::Bid, Price::ZERO, Qty::ZERO),
            );
            ev.add_level_flags(LevelFlags::LAST.with(LevelFlags::EMPTY));
            out.push(ev);
        }
    }
    out.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::book::{BookConfig, BookUpdate, OrderBook};

    fn decoder(venue: Venue) -> BybitDecoder {
        let mut t = SymbolTable::new();
        // Another venue's BTCUSDT first, so ids differ from the venue's.
        t.intern_on(Venue::Binance, "BTCUSDT").unwrap();
        t.intern_on(venue, "BTCUSDT").unwrap();
        t.intern_on(venue, "ETHUSDT").unwrap();
        BybitDecoder::new(venue, t)
    }

    fn dec(d: &mut BybitDecoder, f: &str) -> (Result<Decoded, DecodeError>, Vec<Event>) {
        let mut out = Vec::with_capacity(64);
        let r = d.decode(f.as_bytes(), 42, &mut out);
        (r, out)
    }

    /// Bybit's documented v5 `orderbook.50` snapshot example (levels elided there, a few kept).
    const DOC_SNAPSHOT: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1671179923028,"data":{"s":"BTCUSDT","b":[["17440.00","40.833"],["17439.50","0.513"],["17416.00","6.156"],["17415.50","32.268"]],"a":[["17440.50","78.815"],["17441.00","8.858"],["17464.50","4.901"],["17465.00","5.744"]],"u":13079592,"seq":22520573250}}"#;
    /// The documented delta that follows it (`u` the next one).
    const DOC_DELTA: &str = r#"{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1671179923046,"data":{"s":"BTCUSDT","b":[],"a":[["17440.50","78.857"],["17442.00","1.510"]],"u":13079593,"seq":22520573270},"cts":1671179923044}"#;
    /// Bybit's documented v5 `publicTrade` example (linear: a UUID trade id).
    const DOC_TRADE: &str = r#"{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}"#;

    #[test]
    fn documented_book_snapshot_and_delta_rebuild_a_book() {
        let mut d = decoder(Venue::BybitLinear);
        let sym = SymbolId(1);
        let (r, snap) = dec(&mut d, DOC_SNAPSHOT);
        assert_eq!(r, Ok(Decoded::Events(8)));
        for (i, ev) in snap.iter().enumerate() {
            assert_eq!(ev.symbol, sym);
            assert_eq!(ev.recv_ns, 42);
            let EventKind::Snapshot(s) = ev.kind else {
                panic!("{ev:?}")
            };
            assert_eq!(s.last_update_id, 13_079_592);
            assert_eq!(s.side, if i < 4 { BookSide::Bid } else { BookSide::Ask });
            assert_eq!(s.flags.contains(LevelFlags::LAST), i == 7);
        }
        let (r, delta) = dec(&mut d, DOC_DELTA);
        assert_eq!(r, Ok(Decoded::Events(2)));
        let EventKind::Depth(l) = delta[1].kind else {
            panic!()
        };
        assert_eq!(l.final_update_id, 13_079_593);
        assert_eq!(l.first_update_id(), 13_079_593);
        assert_eq!(l.update_span, 0);
        assert_eq!(l.exch_ns, 1_671_179_923_046 * NS_PER_MS);
        assert_eq!(l.price, Price::parse(b"17442.00").unwrap());
        assert_eq!(l.qty, Qty::parse(b"1.510").unwrap());
        assert!(l.flags.contains(LevelFlags::LAST));

        let mut book = OrderBook::new(BookConfig::default());
        let mut last = BookUpdate::None;
        for ev in &snap {
            if let EventKind::Snapshot(s) = &ev.kind {
                last = book.apply_snapshot(s);
            }
        }
        assert_eq!(last, BookUpdate::Synced);
        for ev in &delta {
            if let EventKind::Depth(l) = &ev.kind {
                last = book.apply_depth(l);
            }
        }
        assert_eq!(last, BookUpdate::Changed);
        assert_eq!(book.best_ask().unwrap().qty, Qty::parse(b"78.857").unwrap());
        assert_eq!(book.depth(), (4, 5));
        // A snapshot mid-stream (here the `u = 1` one after a restart) replaces the book.
        let restart = DOC_SNAPSHOT.replace("13079592", "1");
        let (_, snap) = dec(&mut d, &restart);
        for ev in &snap {
            if let EventKind::Snapshot(s) = &ev.kind {
                last = book.apply_snapshot(s);
            }
        }
        assert_eq!(last, BookUpdate::Synced);
        assert_eq!(book.depth(), (4, 4));
        let (_, delta) = dec(&mut d, &DOC_DELTA.replace("13079593", "2"));
        for ev in &delta {
            if let EventKind::Depth(l) = &ev.kind {
                last = book.apply_depth(l);
            }
        }
        assert_eq!(last, BookUpdate::Changed);
        assert_eq!(book.last_update_id(), 2);
        // A lost delta is a gap.
        let (_, delta) = dec(&mut d, &DOC_DELTA.replace("13079593", "4"));
        let EventKind::Depth(l) = delta[0].kind else {
            panic!()
        };
        assert_eq!(
            book.apply_depth(&l),
            BookUpdate::Gap {
                expected: 3,
                got: 4
            }
        );
    }

    #[test]
    fn empty_delta_keeps_its_id() {
        let mut d = decoder(Venue::BybitSpot);
        let f = r#"{"topic":"orderbook.200.BTCUSDT","ts":1700000000116,"type":"delta","data":{"s":"BTCUSDT","b":[],"a":[],"u":5000,"seq":9000},"cts":1700000000079}"#;
        let (r, out) = dec(&mut d, f);
        assert_eq!(r, Ok(Decoded::Events(1)));
        let EventKind::Depth(l) = out[0].kind else {
            panic!()
        };
        assert_eq!(l.final_update_id, 5000);
        assert!(l.flags.contains(LevelFlags::LAST.with(LevelFlags::EMPTY)));
        let snap = f.replace("\"delta\"", "\"snapshot\"");
        let (r, out) = dec(&mut d, &snap);
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert!(
            matches!(out[0].kind, EventKind::Snapshot(s) if s.flags.contains(LevelFlags::EMPTY))
        );
    }

    #[test]
    fn key_order_does_not_matter() {
        let mut d = decoder(Venue::BybitLinear);
        let (_, a) = dec(&mut d, DOC_DELTA);
        // data before topic and type, members of data reordered, whitespace.
        let f = r#" { "data" : { "u" : 13079593 , "a" : [ [ "17440.50" , "78.857" ] , ["17442.00","1.510"] ] , "seq":1, "b":[] , "s":"BTCUSDT" } , "cts":1, "ts":1671179923046 , "type":"delta", "topic":"orderbook.50.BTCUSDT" } "#;
        let (r, b) = dec(&mut d, f);
        assert_eq!(r, Ok(Decoded::Events(2)));
        assert_eq!(a, b);
        let (_, a) = dec(&mut d, DOC_TRADE);
        let f = r#"{"data":[{"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"p":"16578.50","v":"0.001","S":"Buy","s":"BTCUSDT","T":1672304486865}],"ts":1,"type":"snapshot","topic":"publicTrade.BTCUSDT"}"#;
        assert_eq!(dec(&mut d, f).1, a);
        // Escaped keys and values decode like plain ones.
        let f = DOC_DELTA
            .replace("\"topic\"", "\"t\\u006fpic\"")
            .replace("\"17442.00\"", "\"1744\\u0032.00\"");
        assert_eq!(dec(&mut d, DOC_DELTA).1, dec(&mut d, &f).1);
    }

    #[test]
    fn documented_trade() {
        let mut d = decoder(Venue::BybitLinear);
        let (r, out) = dec(&mut d, DOC_TRADE);
        assert_eq!(r, Ok(Decoded::Events(1)));
        assert_eq!(out[0].symbol, SymbolId(1));
        let EventKind::Trade(t) = out[0].kind else {
            panic!()
        };
        assert_eq!(t.exch_ns, 1_672_304_486_865 * NS_PER_MS);
        assert_eq!(t.price, Price::parse(b"16578.50").unwrap());
        assert_eq!(t.qty, Qty::parse(b"0.001").unwrap());
        assert!(!t.buyer_maker, "the taker bought");
        assert_eq!(t.aggressor(), engine::event::Side::Buy);
        assert_eq!(t.trade_id, 0x20f4_3950_d8dd_5b31 ^ 0x9112_a178_eb60_23af);
        // Spot: a decimal id, several trades in one frame, the taker sold.
        let f = r#"{"topic":"publicTrade.ETHUSDT","ts":1700000001917,"type":"snapshot","data":[{"i":"2280000000000000001","T":1700000001917,"p":"2000.50","v":"0.5","S":"Sell","seq":7700,"s":"ETHUSDT","BT":false,"RPI":false},{"i":"2280000000000000002","T":1700000001918,"p":"2000.25","v":"1","S":"Sell","seq":7700,"s":"ETHUSDT","BT":true,"RPI":false}]}"#;
        let (r, out) = dec(&mut d, f);
        assert_eq!(r, Ok(Decoded::Events(2)));
        let EventKind::Trade(t) = out[1].kind else {
            panic!()
        };
        assert_eq!(t.trade_id, 2_280_000_000_000_000_002);
        assert!(t.buyer_maker);
        assert_eq!(out[1].symbol, SymbolId(2));
    }

    #[test]
    fn trade_ids() {
        assert_eq!(trade_id(b"0"), Some(0));
        assert_eq!(trade_id(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(trade_id(b"18446744073709551616"), None);
        assert_eq!(
            trade_id(b"00000000-0000-0001-0000-000000000002"),
            Some(1 ^ 2)
        );
        assert_eq!(
            trade_id(b"20F43950-D8DD-5B31-9112-A178EB6023AF"),
            trade_id(b"20f43950-d8dd-5b31-9112-a178eb6023af")
        );
        for bad in [
            &b""[..],
            b"12a",
            b"-1",
            b"20f43950-d8dd-5b31-9112-a178eb6023a",
            b"20f43950-d8dd-5b31-9112_a178eb6023af",
            b"g0f43950-d8dd-5b31-9112-a178eb6023af",
        ] {
            assert_eq!(trade_id(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn linear_tickers_merge_deltas() {
        let mut d = decoder(Venue::BybitLinear);
        let snap = r#"{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT","lastPrice":"30000.50","bid1Price":"30000.40","bid1Size":"1.5","ask1Price":"30000.50","ask1Size":"2.5","preOpenPrice":""},"cs":800100,"ts":1700000001800}"#;
        let (r, out) = dec(&mut d, snap);
        assert_eq!(r, Ok(Decoded::Events(1)));
        let EventKind::BookTicker(b) = out[0].kind else {
            panic!()
        };
        assert_eq!(b.update_id, 800_100);
        assert_eq!(b.bid_qty, Qty::parse(b"1.5").unwrap());
        // A delta of the ask only keeps the bid.
        let delta = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"30001.00","ask1Price":"30000.60","ask1Size":"2.75"},"cs":800200,"ts":1700000002000}"#;
        let (r, out) = dec(&mut d, delta);
        assert_eq!(r, Ok(Decoded::Events(1)));
        let EventKind::BookTicker(b2) = out[0].kind else {
            panic!()
        };
        assert_eq!(b2.bid_px, b.bid_px);
        assert_eq!(b2.bid_qty, b.bid_qty);
        assert_eq!(b2.ask_px, Price::parse(b"30000.60").unwrap());
        assert_eq!(b2.update_id, 800_200);
        // A delta of other fields only: nothing.
        let other = r#"{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT","markPrice":"30001.00"},"cs":800201,"ts":1700000002100}"#;
        assert_eq!(
            dec(&mut d, other).0,
            Ok(Decoded::Ignored(IgnoreReason::UnknownStream))
        );
        // After a reset, a one-sided delta has nothing to merge into.
        d.reset();
        assert_eq!(
            dec(&mut d, delta).0,
            Ok(Decoded::Ignored(IgnoreReason::UnknownStream))
        );
        // An empty side makes the ticker unknown until it is seen again.
        assert_eq!(dec(&mut d, snap).0, Ok(Decoded::Events(1)));
        let empty = delta.replace("\"30000.60\"", "\"\"");
        assert_eq!(
            dec(&mut d, &empty).0,
            Ok(Decoded::Ignored(IgnoreReason::UnknownStream))
        );
        assert_eq!(dec(&mut d, delta).0, Ok(Decoded::Events(1)));
    }

    #[test]
    fn spot_tickers_have_no_best_bid_ask() {
        let mut d = decoder(Venue::BybitSpot);
        let f = r#"{"topic":"tickers.BTCUSDT","ts":1700000003000,"type":"snapshot","cs":9100,"data":{"symbol":"BTCUSDT","lastPrice":"30010.5","highPrice24h":"30100.1","lowPrice24h":"29900.2","prevPrice24h":"29950.3","volume24h":"100.5","turnover24h":"3000000.25","price24hPcnt":"0.002","usdIndexPrice":"30005.125"}}"#;
        assert_eq!(
            dec(&mut d, f).0,
            Ok(Decoded::Ignored(IgnoreReason::UnknownStream))
        );
    }

    #[test]
    fn replies_heartbeats_and_other_topics() {
        let mut d = decoder(Venue::BybitSpot);
        let cases = [
            (
                r#"{"success":true,"ret_msg":"","conn_id":"conn-1","req_id":"","op":"subscribe"}"#,
                IgnoreReason::Response,
            ),
            (
                r#"{"success":false,"ret_msg":"error:handler not found","conn_id":"x","op":"subscribe"}"#,
                IgnoreReason::Response,
            ),
            (
                r#"{"success":true,"ret_msg":"pong","conn_id":"0970e817-426e-429a-a679-ff7f55e0b16a","op":"ping"}"#,
                IgnoreReason::Heartbeat,
            ),
            (
                r#"{"req_id":"test","op":"pong","args":["1675418560633"],"conn_id":"cfcb4ocsvfriu23r3er0-1b"}"#,
                IgnoreReason::Heartbeat,
            ),
            (
                r#"{"type":"snapshot","topic":"kline.1.BTCUSDT","data":[{"start":1700000040000,"end":1700000099999,"interval":"1","open":"30010.4","close":"30010.5","high":"30010.5","low":"30010.4","volume":"0.25","turnover":"7502.6","confirm":false,"timestamp":1700000050000}],"ts":1700000050000}"#,
                IgnoreReason::UnknownStream,
            ),
            (r#"{}"#, IgnoreReason::UnknownStream),
            // The documented spread-book example: its symbol is no spot symbol.
            (
                r#"{"topic":"orderbook.25.SOLUSDT_SOL/USDT","ts":1744165512257,"type":"delta","data":{"s":"SOLUSDT_SOL/USDT","b":[],"a":[["22.3755","4.7"]],"u":64892,"seq":299084},"cts":1744165512234}"#,
                IgnoreReason::UnknownSymbol,
            ),
            (
                &DOC_TRADE.replace("BTCUSDT", "SOLUSDT"),
                IgnoreReason::UnknownSymbol,
            ),
        ];
        for (f, why) in cases {
            let (r, out) = dec(&mut d, f);
            assert_eq!(r, Ok(Decoded::Ignored(why)), "{f}");
            assert!(out.is_empty());
        }
        // The spot decoder does not know linear's BTCUSDT, nor Binance's.
        let mut t = SymbolTable::new();
        t.intern_on(Venue::BybitLinear, "BTCUSDT").unwrap();
        t.intern_on(Venue::Binance, "BTCUSDT").unwrap();
        let mut spot = BybitDecoder::new(Venue::BybitSpot, t);
        assert_eq!(
            dec(&mut spot, DOC_SNAPSHOT).0,
            Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol))
        );
        let s = d.stats();
        assert_eq!(s.messages, 8);
        assert_eq!(s.ignored, 8);
        assert_eq!(s.unknown_symbol, 2);
    }

    #[test]
    fn malformed_frames_are_errors_and_append_nothing() {
        let mut d = decoder(Venue::BybitLinear);
        let cases: Vec<(String, DecodeError)> = vec![
            (
                DOC_DELTA.replace("13079593", "0"),
                DecodeError::BadRange { field: "u" },
            ),
            (
                DOC_DELTA.replace(",\"u\":13079593", ""),
                DecodeError::MissingField("u"),
            ),
            (
                DOC_DELTA.replace("\"ts\":1671179923046,", ""),
                DecodeError::MissingField("ts"),
            ),
            (
                DOC_DELTA.replace("\"type\":\"delta\"", "\"type\":\"partial\""),
                DecodeError::WrongType { field: "type" },
            ),
            (
                DOC_DELTA.replace("\"type\":\"delta\",", ""),
                DecodeError::MissingField("type"),
            ),
            (
                DOC_DELTA.replace("\"b\":[]", "\"b\":[],\"b\":[]"),
                DecodeError::DuplicateField("b"),
            ),
            (
                DOC_DELTA.replace("\"b\":[],", ""),
                DecodeError::MissingField("b"),
            ),
            (
                DOC_DELTA.replace("\"1.510\"", "1.510"),
                DecodeError::WrongType { field: "a" },
            ),
            (
                DOC_DELTA.replace("\"1.510\"]", "\"1.510\",\"1\"]"),
                DecodeError::WrongType { field: "a" },
            ),
            (
                DOC_DELTA.replace("\"1.510\"", "\"1.5x\""),
                DecodeError::BadDecimal {
                    field: "a",
                    err: engine::fixed::FixedError::InvalidByte(3),
                },
            ),
            (
                DOC_DELTA
                    .replace("\"data\":{", "\"data\":[{")
                    .replace("},\"cts\"", "}],\"cts\""),
                DecodeError::WrongType { field: "data" },
            ),
            (
                DOC_DELTA.replace(
                    "\"topic\":\"orderbook.50.BTCUSDT\",",
                    "\"topic\":\"orderbook.50.BTCUSDT\",\"topic\":\"x\",",
                ),
                DecodeError::DuplicateField("topic"),
            ),
            (
                DOC_TRADE.replace("\"Buy\"", "\"buy\""),
                DecodeError::WrongType { field: "S" },
            ),
            (
                DOC_TRADE.replace("20f43950-d8dd", "20f43950+d8dd"),
                DecodeError::WrongType { field: "i" },
            ),
            (
                DOC_TRADE.replace("\"T\":1672304486865,", ""),
                DecodeError::MissingField("T"),
            ),
            (
                DOC_TRADE.replace("1672304486865", "18446744073709551615"),
                DecodeError::IntOverflow { field: "T" },
            ),
            (
                DOC_TRADE
                    .replace("\"data\":[{", "\"data\":{\"x\":{")
                    .replace("}]}", "}}}"),
                DecodeError::WrongType { field: "data" },
            ),
            (
                DOC_TRADE
                    .replace(",\"data\":[", ",\"x\":[")
                    .replace("}]}", "}],\"y\":1}"),
                DecodeError::MissingField("data"),
            ),
            ("[1]".into(), DecodeError::NotAnObject),
            (
                format!("{DOC_DELTA} x"),
                DecodeError::Syntax {
                    offset: DOC_DELTA.len() + 1,
                    kind: crate::json::JsonErrorKind::TrailingData,
                },
            ),
        ];
        for (f, want) in cases {
            let mut out = Vec::with_capacity(8);
            assert_eq!(d.decode(f.as_bytes(), 1, &mut out), Err(want), "{f}");
            assert!(out.is_empty(), "{f}");
        }
        assert!(matches!(
            dec(&mut d, &DOC_DELTA[..DOC_DELTA.len() - 5]).0,
            Err(DecodeError::Truncated { .. })
        ));
        // A REST body is refused.
        let mut out = Vec::new();
        assert_eq!(
            d.decode_snapshot(b"{\"retCode\":0}", SymbolId(1), 0, &mut out),
            Err(DecodeError::MissingField("topic"))
        );
    }

    #[test]
    fn every_prefix_and_byte_flip_is_handled() {
        // No panic, nothing appended on error, whatever the bytes.
        let mut d = decoder(Venue::BybitLinear);
        for f in [DOC_SNAPSHOT, DOC_DELTA, DOC_TRADE] {
            let b = f.as_bytes();
            for n in 0..b.len() {
                let mut out = Vec::new();
                if d.decode(&b[..n], 0, &mut out).is_err() {
                    assert!(out.is_empty());
                }
            }
            for i in 0..b.len() {
                for x in [0u8, b'"', b'{', b']', b',', b'1', 0xff] {
                    let mut v = b.to_vec();
                    v[i] = x;
                    let mut out = Vec::new();
                    if d.decode(&v, 0, &mut out).is_err() {
                        assert!(out.is_empty());
                    }
                }
            }
        }
    }
}
