//! Reference Binance decoders built on serde_json and simd-json (feature `reference-decoders`).
//!
//! They decode exactly what [`crate::binance::market::BinanceDecoder`] decodes, with the same rules (see
//! that module's docs), into identical [`Event`]s; they exist as the benchmark's
//! comparison and as a differential oracle in tests, never on the hot path.
//!
//! Both deserialize one derive struct with borrowed string fields (`Cow<'a, str>`, borrowed
//! unless the string has escapes). Every field is a small lenient [`Val`] rather than its final
//! type because Binance reuses keys with different types across payloads (`a` is an id in
//! `aggTrade`, a price in `bookTicker` and a level list in `depthUpdate`) and an unknown payload
//! must be ignored, not rejected, whatever the types of its fields; the types are checked after
//! the message kind is known.
//!
//! - [`SerdeDecoder`]: `serde_json::from_slice` on the frame in place.
//! - [`SimdDecoder`]: simd-json needs a mutable input, so the frame is copied into a reused
//!   `Vec<u8>` and parsed with reused [`simd_json::Buffers`]
//!   (`simd_json::serde::from_slice_with_buffers`).
//!
//! Their error type is [`RefError`]: the parser's own error, or the [`DecodeError`] the native
//! decoder would also report for a frame that is valid JSON.
//!
//! # The hostile-input contract
//!
//! [`SerdeDecoder`] follows [the native decoder's contract](crate::binance#the-contract-on-hostile-input),
//! where serde_json alone would not:
//!
//! - serde_json checks neither UTF-8 nor surrogate pairing in strings it skips, so the frame is
//!   checked as Unicode text first ([`RefError::NotUnicode`]) and then parsed as `&str`.
//! - serde_json evaluates every number in a declared field and fails on one beyond `f64`, also
//!   where the message does not use that field; such a frame is read a second time with every
//!   field taken as raw JSON text and classified by its text, never evaluated (`mod raw`), so it
//!   is accepted exactly where the native decoder accepts it.
//!
//! [`SimdDecoder`] is a benchmark baseline and is not held to the second point: simd-json
//! evaluates every number in the frame and refuses one beyond `f64` anywhere.

use crate::binance::market::{DecodeError, Decoded, IgnoreReason};
use core::fmt;
use engine::event::{
    AggTrade, BookSide, BookTicker, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel, Trade,
};
use engine::fixed::{parse_fixed, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;

/// Why a reference decoder failed.
#[derive(Debug)]
pub enum RefError {
    /// serde_json rejected the frame (syntax, or a struct where the frame is a scalar).
    Json(serde_json::Error),
    /// simd-json rejected the frame.
    Simd(simd_json::Error),
    /// Valid JSON that is not a valid message.
    Decode(DecodeError),
    /// The frame is not Unicode text: invalid UTF-8, or a `\u` escape that is an unpaired UTF-16
    /// surrogate, at this byte offset, wherever it is (the contract: see the module docs).
    NotUnicode {
        /// Byte offset of the first offending byte or escape.
        offset: usize,
    },
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefError::Json(e) => write!(f, "serde_json: {e}"),
            RefError::Simd(e) => write!(f, "simd-json: {e}"),
            RefError::Decode(e) => write!(f, "{e}"),
            RefError::NotUnicode { offset } => write!(
                f,
                "not Unicode text at byte {offset} (invalid UTF-8, or an unpaired surrogate escape)"
            ),
        }
    }
}

impl std::error::Error for RefError {}

impl From<DecodeError> for RefError {
    fn from(e: DecodeError) -> Self {
        RefError::Decode(e)
    }
}

/// A field's value, typed leniently: see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Val<'a> {
    /// The key was absent.
    #[default]
    Absent,
    /// A string.
    Str(Cow<'a, str>),
    /// A non-negative integer that fits `u64`.
    U64(u64),
    /// Any other number (negative, fractional, exponent, or too large).
    OtherNum,
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An array: per element, `Some((price, qty))` if it is a `[string, string]` pair.
    Array(Vec<Option<(Cow<'a, str>, Cow<'a, str>)>>),
    /// An object (contents ignored).
    Object,
}

impl Val<'_> {
    fn present(&self) -> bool {
        !matches!(self, Val::Absent)
    }
}

struct ValVisitor;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Val<'de>, E> {
        Ok(Val::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Val<'de>, E> {
        Ok(Val::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Val<'de>, E> {
        Ok(u64::try_from(v).map_or(Val::OtherNum, Val::U64))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Val<'de>, E> {
        Ok(u64::try_from(v).map_or(Val::OtherNum, Val::U64))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Val<'de>, E> {
        Ok(u64::try_from(v).map_or(Val::OtherNum, Val::U64))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Val<'de>, E> {
        Ok(Val::OtherNum)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Val<'de>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Val<'de>, E> {
        Ok(Val::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Val::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
        let mut elems = Vec::new();
        while let Some(Pair(p)) = seq.next_element::<Pair<'de>>()? {
            elems.push(p);
        }
        Ok(Val::Array(elems))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Val<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

/// An array element: `Some` if it is exactly `[string, string]`.
struct Pair<'a>(Option<(Cow<'a, str>, Cow<'a, str>)>);

struct PairVisitor;

impl<'de> Visitor<'de> for PairVisitor {
    type Value = Pair<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair<'de>, A::Error> {
        let a = seq.next_element::<Val<'de>>()?;
        let b = match a {
            Some(_) => seq.next_element::<Val<'de>>()?,
            None => None,
        };
        let mut extra = false;
        if b.is_some() {
            while seq.next_element::<IgnoredAny>()?.is_some() {
                extra = true;
            }
        }
        Ok(Pair(match (a, b, extra) {
            (Some(Val::Str(p)), Some(Val::Str(q)), false) => Some((p, q)),
            _ => None,
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pair<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Pair(None))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
    fn visit_none<E: de::Error>(self) -> Result<Pair<'de>, E> {
        Ok(Pair(None))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Pair<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PairVisitor)
    }
}

/// The `data` member of a combined-stream frame.
#[derive(Debug, Default)]
enum Data<'a> {
    #[default]
    Absent,
    Object(Box<Payload<'a>>),
    Array,
    Other,
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Data<'de>, A::Error> {
        let p = Payload::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Data::Object(Box::new(p)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Data::Array)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Data<'de>, E> {
        Ok(Data::Other)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Data<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataVisitor)
    }
}

/// Declares a struct with every payload field, plus `$extra` fields.
macro_rules! payload_struct {
    ($(#[$m:meta])* $name:ident, $v:ty, { $($extra:tt)* }) => {
        $(#[$m])*
        #[derive(Debug, Default, serde::Deserialize)]
        struct $name<'a> {
            $($extra)*
            #[serde(borrow, default)]
            e: $v,
            #[serde(borrow, default, rename = "E")]
            event_time: $v,
            #[serde(borrow, default)]
            s: $v,
            #[serde(borrow, default)]
            t: $v,
            #[serde(borrow, default)]
            p: $v,
            #[serde(borrow, default)]
            q: $v,
            #[serde(borrow, default)]
            m: $v,
            #[serde(borrow, default)]
            a: $v,
            #[serde(borrow, default)]
            b: $v,
            #[serde(borrow, default, rename = "A")]
            ask_qty: $v,
            #[serde(borrow, default, rename = "B")]
            bid_qty: $v,
            #[serde(borrow, default)]
            f: $v,
            #[serde(borrow, default)]
            l: $v,
            #[serde(borrow, default, rename = "U")]
            first_update: $v,
            #[serde(borrow, default)]
            u: $v,
            #[serde(borrow, default, rename = "lastUpdateId")]
            last_update_id: $v,
            #[serde(borrow, default)]
            bids: $v,
            #[serde(borrow, default)]
            asks: $v,
        }
    };
}

payload_struct!(
    /// A payload (the `data` of a combined frame).
    Payload, Val<'a>, {}
);

payload_struct!(
    /// A whole frame: combined-stream envelope or bare payload.
    Frame, Val<'a>, {
        #[serde(borrow, default)]
        stream: Val<'a>,
        #[serde(borrow, default)]
        data: Data<'a>,
        #[serde(borrow, default)]
        result: Val<'a>,
        #[serde(borrow, default)]
        id: Val<'a>,
        #[serde(borrow, default)]
        code: Val<'a>,
    }
);

/// The payload fields of a [`Frame`] or [`Payload`], by reference.
struct Fields<'r, 'a> {
    e: &'r Val<'a>,
    event_time: &'r Val<'a>,
    s: &'r Val<'a>,
    t: &'r Val<'a>,
    p: &'r Val<'a>,
    q: &'r Val<'a>,
    m: &'r Val<'a>,
    a: &'r Val<'a>,
    b: &'r Val<'a>,
    ask_qty: &'r Val<'a>,
    bid_qty: &'r Val<'a>,
    f: &'r Val<'a>,
    l: &'r Val<'a>,
    first_update: &'r Val<'a>,
    u: &'r Val<'a>,
    last_update_id: &'r Val<'a>,
    bids: &'r Val<'a>,
    asks: &'r Val<'a>,
}

macro_rules! fields_of {
    ($x:expr) => {
        Fields {
            e: &$x.e,
            event_time: &$x.event_time,
            s: &$x.s,
            t: &$x.t,
            p: &$x.p,
            q: &$x.q,
            m: &$x.m,
            a: &$x.a,
            b: &$x.b,
            ask_qty: &$x.ask_qty,
            bid_qty: &$x.bid_qty,
            f: &$x.f,
            l: &$x.l,
            first_update: &$x.first_update,
            u: &$x.u,
            last_update_id: &$x.last_update_id,
            bids: &$x.bids,
            asks: &$x.asks,
        }
    };
}

fn want_u64(v: &Val<'_>, field: &'static str) -> Result<u64, DecodeError> {
    match v {
        Val::U64(n) => Ok(*n),
        Val::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

fn want_str<'r>(v: &'r Val<'_>, field: &'static str) -> Result<&'r str, DecodeError> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

fn want_bool(v: &Val<'_>, field: &'static str) -> Result<bool, DecodeError> {
    match v {
        Val::Bool(b) => Ok(*b),
        Val::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

fn want_fixed(v: &Val<'_>, field: &'static str) -> Result<i64, DecodeError> {
    let s = want_str(v, field)?;
    parse_fixed(s.as_bytes()).map_err(|err| DecodeError::BadDecimal { field, err })
}

fn want_ms(v: &Val<'_>, field: &'static str) -> Result<u64, DecodeError> {
    want_u64(v, field)?
        .checked_mul(1_000_000)
        .ok_or(DecodeError::IntOverflow { field })
}

type Level<'a> = Option<(Cow<'a, str>, Cow<'a, str>)>;

fn want_levels<'r, 'a>(
    v: &'r Val<'a>,
    field: &'static str,
) -> Result<&'r [Level<'a>], DecodeError> {
    match v {
        Val::Array(levels) => Ok(levels),
        Val::Absent => Err(DecodeError::MissingField(field)),
        _ => Err(DecodeError::WrongType { field }),
    }
}

/// One side's levels as `(side, price, qty)`; element by element, shape before decimals.
fn parse_levels(
    levels: &[Level<'_>],
    side: BookSide,
    field: &'static str,
) -> Result<Vec<(BookSide, Price, Qty)>, DecodeError> {
    levels
        .iter()
        .map(|level| {
            let (p, q) = level.as_ref().ok_or(DecodeError::WrongType { field })?;
            let bad = |err| DecodeError::BadDecimal { field, err };
            Ok((
                side,
                Price(parse_fixed(p.as_bytes()).map_err(bad)?),
                Qty(parse_fixed(q.as_bytes()).map_err(bad)?),
            ))
        })
        .collect()
}

/// Turns a deserialized frame into events by the rules of [`crate::binance`].
fn convert(
    frame: &Frame<'_>,
    symbols: &SymbolTable,
    default_symbol: Option<SymbolId>,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<Decoded, DecodeError> {
    let stream: Option<&str> = match &frame.stream {
        Val::Absent => None,
        Val::Str(s) => Some(s),
        _ => return Err(DecodeError::WrongType { field: "stream" }),
    };
    let (fl, combined) = match &frame.data {
        Data::Absent => (fields_of!(frame), false),
        Data::Object(p) => (fields_of!(p), true),
        Data::Array => return Ok(Decoded::Ignored(IgnoreReason::UnknownStream)),
        Data::Other => return Err(DecodeError::WrongType { field: "data" }),
    };

    #[derive(PartialEq)]
    enum K {
        Trade,
        Agg,
        Depth,
        Ticker,
        Snap,
    }
    let kind = if fl.e.present() {
        match want_str(fl.e, "e")? {
            "trade" => K::Trade,
            "aggTrade" => K::Agg,
            "depthUpdate" => K::Depth,
            "bookTicker" => K::Ticker,
            _ => return Ok(Decoded::Ignored(IgnoreReason::UnknownStream)),
        }
    } else if fl.last_update_id.present() {
        K::Snap
    } else if fl.u.present() || stream.is_some_and(|s| s.ends_with("@bookTicker")) {
        K::Ticker
    } else if !combined && (frame.result.present() || frame.id.present() || frame.code.present()) {
        return Ok(Decoded::Ignored(IgnoreReason::Response));
    } else {
        return Ok(Decoded::Ignored(IgnoreReason::UnknownStream));
    };

    let symbol = match (&kind, stream) {
        (K::Snap, Some(st)) => symbols.lookup(st.split('@').next().unwrap_or(st).as_bytes()),
        (K::Snap, None) => Some(default_symbol.ok_or(DecodeError::MissingSymbol)?),
        _ => symbols.lookup(want_str(fl.s, "s")?.as_bytes()),
    };
    let Some(symbol) = symbol else {
        return Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol));
    };
    let ev = |kind| Event::new(recv_ns, symbol, kind);

    match kind {
        K::Trade => {
            let t = Trade {
                exch_ns: want_ms(fl.event_time, "E")?,
                trade_id: want_u64(fl.t, "t")?,
                price: Price(want_fixed(fl.p, "p")?),
                qty: Qty(want_fixed(fl.q, "q")?),
                buyer_maker: want_bool(fl.m, "m")?,
            };
            out.push(ev(EventKind::Trade(t)));
            Ok(Decoded::Events(1))
        }
        K::Agg => {
            let exch_ns = want_ms(fl.event_time, "E")?;
            let agg_id = want_u64(fl.a, "a")?;
            let price = Price(want_fixed(fl.p, "p")?);
            let qty = Qty(want_fixed(fl.q, "q")?);
            let first = want_u64(fl.f, "f")?;
            let last = want_u64(fl.l, "l")?;
            let buyer_maker = want_bool(fl.m, "m")?;
            if last < first {
                return Err(DecodeError::BadRange { field: "l" });
            }
            let n = (last as u128) - (first as u128) + 1;
            let t = AggTrade {
                exch_ns,
                agg_id,
                price,
                qty,
                trade_count: n.min(u32::MAX as u128) as u32,
                buyer_maker,
            };
            out.push(ev(EventKind::AggTrade(t)));
            Ok(Decoded::Events(1))
        }
        K::Ticker => {
            let t = BookTicker {
                update_id: want_u64(fl.u, "u")?,
                bid_px: Price(want_fixed(fl.b, "b")?),
                bid_qty: Qty(want_fixed(fl.bid_qty, "B")?),
                ask_px: Price(want_fixed(fl.a, "a")?),
                ask_qty: Qty(want_fixed(fl.ask_qty, "A")?),
            };
            out.push(ev(EventKind::BookTicker(t)));
            Ok(Decoded::Events(1))
        }
        K::Depth => {
            let exch_ns = want_ms(fl.event_time, "E")?;
            let first = want_u64(fl.first_update, "U")?;
            let last = want_u64(fl.u, "u")?;
            if first > last || last - first > u32::MAX as u64 {
                return Err(DecodeError::BadRange { field: "U" });
            }
            let span = (last - first) as u32;
            let bids = want_levels(fl.b, "b")?;
            let asks = want_levels(fl.a, "a")?;
            let mut all = parse_levels(bids, BookSide::Bid, "b")?;
            all.extend(parse_levels(asks, BookSide::Ask, "a")?);
            let n = push_levels(&all, |side, price, qty, flags| {
                out.push(ev(EventKind::Depth(DepthLevel {
                    exch_ns,
                    final_update_id: last,
                    price,
                    qty,
                    update_span: span,
                    side,
                    flags,
                })))
            });
            Ok(Decoded::Events(n))
        }
        K::Snap => {
            let last_update_id = want_u64(fl.last_update_id, "lastUpdateId")?;
            let bids = want_levels(fl.bids, "bids")?;
            let asks = want_levels(fl.asks, "asks")?;
            let mut all = parse_levels(bids, BookSide::Bid, "bids")?;
            all.extend(parse_levels(asks, BookSide::Ask, "asks")?);
            let n = push_levels(&all, |side, price, qty, flags| {
                out.push(ev(EventKind::Snapshot(SnapshotLevel {
                    last_update_id,
                    price,
                    qty,
                    side,
                    flags,
                })))
            });
            Ok(Decoded::Events(n))
        }
    }
}

/// Emits every level with `LAST` on the final one, or one `EMPTY|LAST` event if there are none.
fn push_levels(
    all: &[(BookSide, Price, Qty)],
    mut emit: impl FnMut(BookSide, Price, Qty, LevelFlags),
) -> usize {
    if all.is_empty() {
        emit(
            BookSide::Bid,
            Price::ZERO,
            Qty::ZERO,
            LevelFlags::EMPTY.with(LevelFlags::LAST),
        );
        return 1;
    }
    for (i, &(side, price, qty)) in all.iter().enumerate() {
        let flags = if i + 1 == all.len() {
            LevelFlags::LAST
        } else {
            LevelFlags::default()
        };
        emit(side, price, qty, flags);
    }
    all.len()
}

/// The first non-whitespace byte.
fn first_byte(frame: &[u8]) -> Option<u8> {
    frame
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Shared bookkeeping of both reference decoders.
#[derive(Clone, Debug)]
struct Common {
    symbols: SymbolTable,
    default_symbol: Option<SymbolId>,
}

/// Decodes a REST snapshot body for `symbol` (only its payload fields count).
fn convert_snapshot(
    body: &Payload<'_>,
    symbol: SymbolId,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Result<Decoded, DecodeError> {
    let last_update_id = want_u64(&body.last_update_id, "lastUpdateId")?;
    let bids = want_levels(&body.bids, "bids")?;
    let asks = want_levels(&body.asks, "asks")?;
    let mut all = parse_levels(bids, BookSide::Bid, "bids")?;
    all.extend(parse_levels(asks, BookSide::Ask, "asks")?);
    let n = push_levels(&all, |side, price, qty, flags| {
        out.push(Event::new(
            recv_ns,
            symbol,
            EventKind::Snapshot(SnapshotLevel {
                last_update_id,
                price,
                qty,
                side,
                flags,
            }),
        ))
    });
    Ok(Decoded::Events(n))
}

/// The frame as text, if it is Unicode everywhere: valid UTF-8, and no `\u` escape that is an
/// unpaired surrogate, in skipped strings too (serde_json checks neither in what it skips).
fn unicode_text(frame: &[u8]) -> Result<&str, RefError> {
    let text = std::str::from_utf8(frame).map_err(|e| RefError::NotUnicode {
        offset: e.valid_up_to(),
    })?;
    match lone_surrogate(text.as_bytes()) {
        Some(offset) => Err(RefError::NotUnicode { offset }),
        None => Ok(text),
    }
}

/// Byte offset of the first `\u` escape inside a string that is an unpaired UTF-16 surrogate.
/// Malformed escapes are left to the parser (this only looks for surrogates).
fn lone_surrogate(b: &[u8]) -> Option<usize> {
    if !b.contains(&b'\\') {
        return None;
    }
    let hex4 = |at: usize| -> Option<u16> {
        let h = b.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let (mut i, mut in_string) = (0, false);
    // A high surrogate escape waiting for its low half, which must follow at once.
    let mut high: Option<usize> = None;
    while i < b.len() {
        match b[i] {
            b'\\' if in_string => {
                let unit = if b.get(i + 1) == Some(&b'u') {
                    hex4(i + 2)
                } else {
                    None
                };
                match unit {
                    Some(0xD800..=0xDBFF) => {
                        if high.is_some() {
                            return high;
                        }
                        high = Some(i);
                    }
                    Some(0xDC00..=0xDFFF) if high.take().is_none() => return Some(i),
                    Some(0xDC00..=0xDFFF) => {}
                    _ if high.is_some() => return high,
                    _ => {}
                }
                i += if unit.is_some() { 6 } else { 2 };
            }
            c => {
                if high.is_some() {
                    return high;
                }
                if c == b'"' {
                    in_string = !in_string;
                }
                i += 1;
            }
        }
    }
    high
}

/// True for serde_json's error on a number it cannot hold in an `f64` (`1e400`, 400 digits).
fn out_of_f64_range(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("number out of range")
}

/// serde_json's second reading of a frame that holds a number beyond `f64`: every declared
/// field is first taken as raw JSON text ([`RawValue`](serde_json::value::RawValue), which
/// checks syntax only), then turned into a [`Val`] by its text, so a number is classified
/// without being evaluated, as [`crate::binance`] does. Same fields, same duplicate-key rule,
/// same results as the first reading wherever that one succeeds.
mod raw {
    use super::{Data, Frame, Level, Payload, Val};
    use serde_json::value::RawValue;
    use serde_json::Error;
    use std::borrow::Cow;

    type Raw<'a> = Option<&'a RawValue>;

    payload_struct!(
        /// A [`Payload`] with every field as raw text.
        RawPayload, Raw<'a>, {}
    );

    payload_struct!(
        /// A [`Frame`] with every field as raw text.
        RawFrame, Raw<'a>, {
            #[serde(borrow, default)]
            stream: Raw<'a>,
            #[serde(borrow, default)]
            data: Raw<'a>,
            #[serde(borrow, default)]
            result: Raw<'a>,
            #[serde(borrow, default)]
            id: Raw<'a>,
            #[serde(borrow, default)]
            code: Raw<'a>,
        }
    );

    fn string(s: &str) -> Result<Cow<'_, str>, Error> {
        match serde_json::from_str::<&str>(s) {
            Ok(b) => Ok(Cow::Borrowed(b)),
            Err(_) => serde_json::from_str::<String>(s).map(Cow::Owned),
        }
    }

    /// serde_json's own reading of a number, minus the range: an integer that fits `u64` is
    /// `U64`, anything else (sign, fraction, exponent, too large) is `OtherNum`.
    fn number(s: &str) -> Val<'_> {
        match s.parse::<u64>() {
            Ok(n) if s.bytes().all(|c| c.is_ascii_digit()) => Val::U64(n),
            _ => Val::OtherNum,
        }
    }

    fn pair(raw: &RawValue) -> Result<Level<'_>, Error> {
        let s = raw.get().trim_start();
        if !s.starts_with('[') {
            return Ok(None);
        }
        let items: Vec<&RawValue> = serde_json::from_str(s)?;
        Ok(match items.as_slice() {
            [p, q] if p.get().starts_with('"') && q.get().starts_with('"') => {
                Some((string(p.get())?, string(q.get())?))
            }
            _ => None,
        })
    }

    fn val(raw: Raw<'_>) -> Result<Val<'_>, Error> {
        let Some(raw) = raw else {
            return Ok(Val::Absent);
        };
        let s = raw.get().trim_start();
        Ok(match s.as_bytes().first() {
            Some(b'"') => Val::Str(string(s)?),
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(s)?;
                Val::Array(items.into_iter().map(pair).collect::<Result<_, _>>()?)
            }
            Some(b'{') => Val::Object,
            Some(b't') => Val::Bool(true),
            Some(b'f') => Val::Bool(false),
            Some(b'n') => Val::Null,
            _ => number(s),
        })
    }

    fn data(raw: Raw<'_>) -> Result<Data<'_>, Error> {
        let Some(raw) = raw else {
            return Ok(Data::Absent);
        };
        let s = raw.get().trim_start();
        Ok(match s.as_bytes().first() {
            Some(b'{') => Data::Object(Box::new(payload(s)?)),
            Some(b'[') => Data::Array,
            _ => Data::Other,
        })
    }

    macro_rules! convert_fields {
        ($r:expr, $($extra:ident: $how:ident),*) => {
            Ok(Self_ {
                $($extra: $how($r.$extra)?,)*
                e: val($r.e)?,
                event_time: val($r.event_time)?,
                s: val($r.s)?,
                t: val($r.t)?,
                p: val($r.p)?,
                q: val($r.q)?,
                m: val($r.m)?,
                a: val($r.a)?,
                b: val($r.b)?,
                ask_qty: val($r.ask_qty)?,
                bid_qty: val($r.bid_qty)?,
                f: val($r.f)?,
                l: val($r.l)?,
                first_update: val($r.first_update)?,
                u: val($r.u)?,
                last_update_id: val($r.last_update_id)?,
                bids: val($r.bids)?,
                asks: val($r.asks)?,
            })
        };
    }

    /// A payload read the second way.
    pub(super) fn payload(text: &str) -> Result<Payload<'_>, Error> {
        type Self_<'a> = Payload<'a>;
        let r: RawPayload<'_> = serde_json::from_str(text)?;
        convert_fields!(r,)
    }

    /// A frame read the second way.
    pub(super) fn frame(text: &str) -> Result<Frame<'_>, Error> {
        type Self_<'a> = Frame<'a>;
        let r: RawFrame<'_> = serde_json::from_str(text)?;
        convert_fields!(r, stream: val, data: data, result: val, id: val, code: val)
    }
}

/// The serde_json reference decoder.
#[derive(Clone, Debug)]
pub struct SerdeDecoder {
    c: Common,
}

impl SerdeDecoder {
    /// A decoder that knows the symbols of `symbols`.
    pub fn new(symbols: SymbolTable) -> Self {
        SerdeDecoder {
            c: Common {
                symbols,
                default_symbol: None,
            },
        }
    }

    /// See [`crate::binance::market::BinanceDecoder::set_default_symbol`].
    pub fn set_default_symbol(&mut self, s: Option<SymbolId>) {
        self.c.default_symbol = s;
    }

    /// See [`crate::binance::market::BinanceDecoder::decode`]; on error `out` is left as it was.
    pub fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        let len0 = out.len();
        let r = self.decode_inner(frame, recv_ns, out);
        if r.is_err() {
            out.truncate(len0);
        }
        r
    }

    fn decode_inner(
        &self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        let text = unicode_text(frame)?;
        match first_byte(frame) {
            Some(b'[') => {
                serde_json::from_str::<IgnoredAny>(text).map_err(RefError::Json)?;
                return Ok(Decoded::Ignored(IgnoreReason::UnknownStream));
            }
            Some(b'{') => {}
            _ => {
                serde_json::from_str::<IgnoredAny>(text).map_err(RefError::Json)?;
                return Err(RefError::Decode(DecodeError::NotAnObject));
            }
        }
        let f = match serde_json::from_str::<Frame<'_>>(text) {
            Ok(f) => f,
            Err(e) if out_of_f64_range(&e) => raw::frame(text).map_err(RefError::Json)?,
            Err(e) => return Err(RefError::Json(e)),
        };
        Ok(convert(
            &f,
            &self.c.symbols,
            self.c.default_symbol,
            recv_ns,
            out,
        )?)
    }

    /// See [`crate::binance::market::BinanceDecoder::decode_snapshot`].
    pub fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        let text = unicode_text(body)?;
        if first_byte(body) != Some(b'{') {
            serde_json::from_str::<IgnoredAny>(text).map_err(RefError::Json)?;
            return Err(RefError::Decode(DecodeError::NotAnObject));
        }
        let f = match serde_json::from_str::<Payload<'_>>(text) {
            Ok(f) => f,
            Err(e) if out_of_f64_range(&e) => raw::payload(text).map_err(RefError::Json)?,
            Err(e) => return Err(RefError::Json(e)),
        };
        let len0 = out.len();
        let r = convert_snapshot(&f, symbol, recv_ns, out);
        if r.is_err() {
            out.truncate(len0);
        }
        Ok(r?)
    }
}

/// The simd-json reference decoder (copies each frame into a reused buffer).
pub struct SimdDecoder {
    c: Common,
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl fmt::Debug for SimdDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimdDecoder")
            .field("symbols", &self.c.symbols)
            .field("default_symbol", &self.c.default_symbol)
            .finish_non_exhaustive()
    }
}

impl SimdDecoder {
    /// A decoder that knows the symbols of `symbols`.
    pub fn new(symbols: SymbolTable) -> Self {
        SimdDecoder {
            c: Common {
                symbols,
                default_symbol: None,
            },
            scratch: Vec::with_capacity(64 * 1024),
            buffers: simd_json::Buffers::new(64 * 1024),
        }
    }

    /// See [`crate::binance::market::BinanceDecoder::set_default_symbol`].
    pub fn set_default_symbol(&mut self, s: Option<SymbolId>) {
        self.c.default_symbol = s;
    }

    /// See [`crate::binance::market::BinanceDecoder::decode`]; on error `out` is left as it was.
    pub fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        let len0 = out.len();
        self.scratch.clear();
        self.scratch.extend_from_slice(frame);
        let r = match first_byte(frame) {
            Some(b'[') => simd_json::serde::from_slice_with_buffers::<IgnoredAny>(
                &mut self.scratch,
                &mut self.buffers,
            )
            .map(|_| Decoded::Ignored(IgnoreReason::UnknownStream))
            .map_err(RefError::Simd),
            Some(b'{') => {
                match simd_json::serde::from_slice_with_buffers::<Frame<'_>>(
                    &mut self.scratch,
                    &mut self.buffers,
                ) {
                    Ok(f) => convert(&f, &self.c.symbols, self.c.default_symbol, recv_ns, out)
                        .map_err(RefError::Decode),
                    Err(e) => Err(RefError::Simd(e)),
                }
            }
            _ => simd_json::serde::from_slice_with_buffers::<IgnoredAny>(
                &mut self.scratch,
                &mut self.buffers,
            )
            .map_err(RefError::Simd)
            .and(Err(RefError::Decode(DecodeError::NotAnObject))),
        };
        if r.is_err() {
            out.truncate(len0);
        }
        r
    }

    /// See [`crate::binance::market::BinanceDecoder::decode_snapshot`].
    pub fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        if first_byte(body) != Some(b'{') {
            simd_json::serde::from_slice_with_buffers::<IgnoredAny>(
                &mut self.scratch,
                &mut self.buffers,
            )
            .map_err(RefError::Simd)?;
            return Err(RefError::Decode(DecodeError::NotAnObject));
        }
        let f: Payload<'_> =
            simd_json::serde::from_slice_with_buffers(&mut self.scratch, &mut self.buffers)
                .map_err(RefError::Simd)?;
        let len0 = out.len();
        let r = convert_snapshot(&f, symbol, recv_ns, out);
        if r.is_err() {
            out.truncate(len0);
        }
        Ok(r?)
    }
}

/// The best case for serde_json and simd-json, for calibration only: a decoder that already
/// knows the frame is a combined-stream trade, deserializing straight into typed structs with
/// borrowed `&str` fields and no dispatch. It accepts less than [`SerdeDecoder`] (other kinds,
/// other key sets and escaped strings are errors) but yields the same event for trade frames.
pub struct TypedTradeDecoder {
    symbols: SymbolTable,
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl fmt::Debug for TypedTradeDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedTradeDecoder")
            .field("symbols", &self.symbols)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct CombinedTrade<'a> {
    #[allow(dead_code)]
    stream: &'a str,
    #[serde(borrow)]
    data: TypedTrade<'a>,
}

#[derive(serde::Deserialize)]
struct TypedTrade<'a> {
    e: &'a str,
    #[serde(rename = "E")]
    event_time: u64,
    s: &'a str,
    t: u64,
    p: &'a str,
    q: &'a str,
    m: bool,
}

impl TypedTradeDecoder {
    /// A decoder that knows the symbols of `symbols`.
    pub fn new(symbols: SymbolTable) -> Self {
        TypedTradeDecoder {
            symbols,
            scratch: Vec::with_capacity(4096),
            buffers: simd_json::Buffers::new(4096),
        }
    }

    fn event(
        symbols: &SymbolTable,
        t: &TypedTrade<'_>,
        recv_ns: u64,
    ) -> Result<Option<Event>, DecodeError> {
        if t.e != "trade" {
            return Err(DecodeError::WrongType { field: "e" });
        }
        let Some(symbol) = symbols.lookup(t.s.as_bytes()) else {
            return Ok(None);
        };
        let ev = Trade {
            exch_ns: t
                .event_time
                .checked_mul(1_000_000)
                .ok_or(DecodeError::IntOverflow { field: "E" })?,
            trade_id: t.t,
            price: Price(want_fixed(&Val::Str(Cow::Borrowed(t.p)), "p")?),
            qty: Qty(want_fixed(&Val::Str(Cow::Borrowed(t.q)), "q")?),
            buyer_maker: t.m,
        };
        Ok(Some(Event::new(recv_ns, symbol, EventKind::Trade(ev))))
    }

    fn push(ev: Option<Event>, out: &mut Vec<Event>) -> Decoded {
        match ev {
            Some(ev) => {
                out.push(ev);
                Decoded::Events(1)
            }
            None => Decoded::Ignored(IgnoreReason::UnknownSymbol),
        }
    }

    /// A combined-stream trade frame with `serde_json::from_slice`.
    pub fn decode_serde(
        &self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        let f: CombinedTrade<'_> = serde_json::from_slice(frame).map_err(RefError::Json)?;
        Ok(Self::push(
            Self::event(&self.symbols, &f.data, recv_ns)?,
            out,
        ))
    }

    /// A combined-stream trade frame with simd-json (reused copy and buffers).
    pub fn decode_simd(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, RefError> {
        self.scratch.clear();
        self.scratch.extend_from_slice(frame);
        let f: CombinedTrade<'_> =
            simd_json::serde::from_slice_with_buffers(&mut self.scratch, &mut self.buffers)
                .map_err(RefError::Simd)?;
        Ok(Self::push(
            Self::event(&self.symbols, &f.data, recv_ns)?,
            out,
        ))
    }
}
