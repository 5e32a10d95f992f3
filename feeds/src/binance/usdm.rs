//! Binance USD-M futures market data: the [`Adapter`] ([`BINANCE_USDM`]) and what USD-M's frames
//! add to the spot decoder ([`super::market`]).
//!
//! USD-M speaks spot's protocol with a few more fields, so one decoder serves both:
//! [`BinanceDecoder::usdm`] builds a [`BinanceDecoder`] that looks its symbols up on
//! [`Venue::BinanceUsdm`], knows the `pu` key, requires it on `depthUpdate` and takes the
//! message's span from it. Everything else (the general path, strictness, the contract on
//! hostile input, responses, unknown streams) is spot's, documented in [`super::market`].
//!
//! | payload (as the capture and the docs show it) | events |
//! |---|---|
//! | `{"e":"trade","E","T","s","t","p","q","X","m"}` | one [`Trade`] (`exch_ns` from `E`, like spot; `X` is not read) |
//! | `{"e":"aggTrade","E","s","a","p","q","f","l","T","m"}` (`a` before `s` also) | one [`AggTrade`] |
//! | `{"e":"bookTicker","u","s","b","B","a","A","T","E"}` (`E`,`T` may come first, as in the docs) | one [`BookTicker`] |
//! | `{"e":"depthUpdate","E","T","s","U","u","pu","b","a"}` | one [`DepthLevel`] per level, `final_update_id = u`, `update_span = u - pu - 1` |
//! | REST `GET /fapi/v1/depth`: `{"lastUpdateId","E","T","bids","asks"}` | one [`SnapshotLevel`] per level |
//!
//! # The sync rule, and why the one book procedure implements it
//!
//! Binance's USD-M docs ("How to manage a local order book correctly"), steps 4 to 6:
//!
//! > 4. Drop any event where `u` is < `lastUpdateId` in the snapshot.
//! > 5. The first processed event should have `U <= lastUpdateId` AND `u >= lastUpdateId`
//! > 6. While listening to the stream, each new event's `pu` should be equal to the previous
//! >    event's `u`, otherwise initialize the process from step 3.
//!
//! USD-M update ids are not consecutive within a symbol's stream (the next event's `U` is
//! usually well above the previous `u`: the capture's first message has `U - pu = 69`); `pu`
//! is what links messages. So the decoder sets `prev = pu`: `final_update_id = u` and
//! `update_span = u - pu - 1`, which makes the book's `first_update_id() = pu + 1`. The book
//! ([`engine::book`]) then does, with `L` the snapshot's `lastUpdateId` and `last` the last
//! applied `u`:
//!
//! * **continuity** `first == last + 1` is `pu + 1 == last + 1`, i.e. `pu == last`: step 6
//!   exactly. Anything else is a gap, the book goes stale and asks for a snapshot (step 6's
//!   "initialize the process from step 3"). One difference in what is counted: a message with
//!   `u <= last` (a duplicate) is dropped as stale without a resync, as for spot.
//! * **dropping**: a buffered message with `u <= L` is dropped. Step 4 drops `u < L`; the
//!   message with `u == L` is the edge case. Step 5 would process it first (`U <= L == u`), but
//!   every update in it has an id `<= L`, so the snapshot already holds its result: applying
//!   it changes nothing. The book drops it instead, and the next message (`pu == L`, by step 6)
//!   is the one that bridges, below. Same book, same next message.
//! * **bridge** `first <= L + 1 <= final` is `pu + 1 <= L + 1 <= u`, i.e. `pu <= L < u`, for
//!   the first message not dropped. With the messages before it dropped (`u_prev = pu <= L`)
//!   this is step 5 for every `L` that step 5 can bridge: `U <= L < u` implies `pu < U <= L`,
//!   and `L == u` is the edge case above. It also accepts `pu <= L < U`, where step 5 read
//!   literally bridges nothing and the process would loop; by step 6 no update of this book
//!   lies between `pu` and `U`, so the snapshot at such an `L` is the book at `pu`, and applying
//!   the message is exact (Binance's forum shows snapshots with `lastUpdateId == pu` of the
//!   next event: <https://dev.binance.vision/t/updateid/4072>).
//!
//! `engine/tests/book_usdm.rs` checks all of this through [`engine::book::OrderBook`] with
//! futures-shaped messages, and `feeds/tests/usdm_capture.rs` on the real capture.
//!
//! **Ids that contradict each other.** `U > u` is [`DecodeError::BadRange`] on `U` (as for
//! spot). `pu >= U` is [`DecodeError::BadRange`] on `pu`: by the docs `pu` is the previous
//! message's `u`, so such a message would repeat updates of the one before it (or, with
//! `pu >= u`, continue from its own end); it cannot be placed, and the derivation above relies
//! on `pu < U <= u` for every decoded message. The real capture has none. A span above
//! `u32::MAX` saturates: the book then sees a gap (safe) rather than a false bridge.
//!
//! # Cost
//!
//! Frames in the exact layout Binance USD-M sends (the table above; envelope or bare; no
//! whitespace or escapes) take a specialised path per kind, like spot's and built from the same
//! pieces; anything else goes through the general path, which gives the same result or the
//! error. Spot pays one predictable branch in [`BinanceDecoder::decode`] to choose the fast path
//! and nothing else on its fast path; on its general path, unknown keys are tested against `pu`
//! only when the decoder is USD-M. No allocation. Figures: `cargo bench -p feeds --bench
//! decode_usdm` (per kind, real frames, beside `serde_json` on the same frames).

use super::adapter::streams_request;
use super::market::fast::{body, boolean, decimal_string, levels, lit, ms, string, uint};
use super::market::{finish_levels, trade_count, BinanceDecoder};
use crate::json::JsonStr;
use crate::venue::{
    Adapter, AnyDecoder, BookSync, DecodeError, Decoded, Heartbeat, IgnoreReason, StreamKind,
};
use engine::event::{
    AggTrade, BookSide, BookTicker, DepthLevel, Event, EventKind, LevelFlags, SnapshotLevel, Trade,
};
use engine::fixed::{Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

const USDM: Venue = Venue::BinanceUsdm;

/// Binance USD-M futures.
#[derive(Clone, Copy, Debug)]
pub struct BinanceUsdm;

/// The one Binance USD-M futures adapter.
pub static BINANCE_USDM: BinanceUsdm = BinanceUsdm;

/// The depth limits `GET /fapi/v1/depth` accepts.
const SNAPSHOT_LIMITS: [u32; 7] = [5, 10, 20, 50, 100, 500, 1000];

impl Adapter for BinanceUsdm {
    fn venue(&self) -> Venue {
        USDM
    }

    fn ws_url(&self) -> &'static str {
        "wss://fstream.binance.com/stream"
    }

    fn rest_url(&self) -> Option<&'static str> {
        Some("https://fapi.binance.com")
    }

    /// `GET /fapi/v1/depth`. USD-M accepts only the limits 5, 10, 20, 50, 100, 500 and 1000:
    /// `limit` becomes the smallest of them at or above it (1000 at most).
    fn snapshot_url(&self, base: &str, symbol: &str, limit: u32) -> Option<String> {
        let limit = SNAPSHOT_LIMITS
            .into_iter()
            .find(|&l| l >= limit)
            .unwrap_or(1000);
        Some(format!(
            "{}/fapi/v1/depth?symbol={}&limit={limit}",
            base.trim_end_matches('/'),
            symbol.to_ascii_uppercase()
        ))
    }

    /// `<s>@trade`, `<s>@aggTrade`, `<s>@bookTicker`, `<s>@depth@100ms` (USD-M also has
    /// `@depth@0ms`, which the real capture used; any stream name can be subscribed as written).
    fn stream(&self, kind: StreamKind, symbol: &str) -> Option<String> {
        let s = symbol.to_ascii_lowercase();
        Some(match kind {
            StreamKind::Trade => format!("{s}@trade"),
            StreamKind::AggTrade => format!("{s}@aggTrade"),
            StreamKind::BookTicker => format!("{s}@bookTicker"),
            StreamKind::Depth => format!("{s}@depth@100ms"),
        })
    }

    fn subscribe(&self, streams: &[String], id: u64) -> Result<Vec<String>, String> {
        Ok(streams_request("SUBSCRIBE", streams, id)
            .into_iter()
            .collect())
    }

    fn unsubscribe(&self, streams: &[String], id: u64) -> Result<Vec<String>, String> {
        Ok(streams_request("UNSUBSCRIBE", streams, id)
            .into_iter()
            .collect())
    }

    fn heartbeat(&self) -> Heartbeat {
        Heartbeat::WsPing
    }

    fn book_sync(&self) -> BookSync {
        BookSync::RestSnapshot
    }

    fn decoder(&self, symbols: SymbolTable) -> AnyDecoder {
        AnyDecoder::Binance(BinanceDecoder::usdm(symbols))
    }
}

impl BinanceDecoder {
    /// A Binance USD-M futures decoder: symbols are looked up on [`Venue::BinanceUsdm`], and
    /// `depthUpdate` must carry `pu` (see the [module docs](self)).
    pub fn usdm(symbols: SymbolTable) -> Self {
        BinanceDecoder::on(USDM, symbols)
    }
}

/// Whether a key is `pu` (escaped or not).
#[inline]
pub(super) fn is_pu_key(k: &JsonStr<'_>) -> bool {
    match k.unescaped() {
        Some(raw) => raw == b"pu",
        None => is_pu_escaped(k),
    }
}

#[cold]
fn is_pu_escaped(k: &JsonStr<'_>) -> bool {
    let mut buf = [0u8; 4];
    k.decode_into(&mut buf) == Some(&b"pu"[..])
}

/// The span of a USD-M depth message: `u - pu - 1`, saturated at `u32::MAX`, so that the book's
/// `first_update_id()` is `pu + 1`. `U > u` and `pu >= U` are [`DecodeError::BadRange`].
#[inline]
pub(super) fn update_span(first: u64, last: u64, pu: u64) -> Result<u32, DecodeError> {
    if first > last {
        return Err(DecodeError::BadRange { field: "U" });
    }
    if pu >= first {
        return Err(DecodeError::BadRange { field: "pu" });
    }
    Ok(u32::try_from(last - pu - 1).unwrap_or(u32::MAX))
}

/// The specialised path for USD-M's own layouts (see the [module docs](self)); `None` (with
/// anything appended undone) hands the frame to the general path.
#[inline(always)]
pub(super) fn try_decode(
    syms: &SymbolTable,
    default_symbol: Option<SymbolId>,
    frame: &[u8],
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Result<Decoded, DecodeError>> {
    let len0 = out.len();
    let r = decode(syms, default_symbol, frame, recv_ns, out);
    if r.is_none() {
        out.truncate(len0);
    }
    r.map(Ok)
}

#[inline(always)]
fn decode(
    syms: &SymbolTable,
    default_symbol: Option<SymbolId>,
    buf: &[u8],
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Decoded> {
    let mut pos = 0;
    let combined = lit(buf, &mut pos, b"{\"stream\":\"").is_some();
    if combined {
        body(buf, &mut pos)?;
        lit(buf, &mut pos, b",\"data\":{")?;
    } else {
        lit(buf, &mut pos, b"{")?;
    }
    let p = &mut pos;
    let r = match buf.get(*p + 1)? {
        b'e' if lit(buf, p, b"\"e\":\"bookTicker\",").is_some() => {
            book_ticker(syms, buf, p, recv_ns, out)?
        }
        b'e' if lit(buf, p, b"\"e\":\"trade\",").is_some() => trade(syms, buf, p, recv_ns, out)?,
        b'e' if lit(buf, p, b"\"e\":\"depthUpdate\",").is_some() => {
            depth(syms, buf, p, recv_ns, out)?
        }
        b'e' if lit(buf, p, b"\"e\":\"aggTrade\",").is_some() => {
            agg_trade(syms, buf, p, recv_ns, out)?
        }
        b'l' if !combined => snapshot(default_symbol?, buf, p, recv_ns, out)?,
        _ => return None,
    };
    if combined {
        lit(buf, &mut pos, b"}")?;
    }
    buf.get(pos..)?
        .iter()
        .all(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .then_some(r)
}

/// After `"e":"trade",`: `"E":..,"T":..,"s":..,"t":..,"p":..,"q":..,"X":..,"m":..}`.
#[inline(always)]
fn trade(
    syms: &SymbolTable,
    buf: &[u8],
    pos: &mut usize,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Decoded> {
    lit(buf, pos, b"\"E\":")?;
    let e_ms = uint(buf, pos)?;
    lit(buf, pos, b",\"T\":")?;
    uint(buf, pos)?;
    lit(buf, pos, b",\"s\":")?;
    let sym = string(buf, pos)?;
    lit(buf, pos, b",\"t\":")?;
    let trade_id = uint(buf, pos)?;
    lit(buf, pos, b",\"p\":")?;
    let p = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"q\":")?;
    let q = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"X\":")?;
    string(buf, pos)?;
    lit(buf, pos, b",\"m\":")?;
    let buyer_maker = boolean(buf, pos)?;
    lit(buf, pos, b"}")?;
    let Some(symbol) = syms.lookup_on(USDM, sym) else {
        return Some(Decoded::Ignored(IgnoreReason::UnknownSymbol));
    };
    let ev = Trade {
        exch_ns: ms(e_ms)?,
        trade_id,
        price: Price(p.value()?),
        qty: Qty(q.value()?),
        buyer_maker,
    };
    out.push(Event::new(recv_ns, symbol, EventKind::Trade(ev)));
    Some(Decoded::Events(1))
}

/// After `"e":"aggTrade",`: `"E"`, then `"s","a"` (the docs) or `"a","s"`, then
/// `"p","q","f","l","T","m"` and `}`.
#[inline(always)]
fn agg_trade(
    syms: &SymbolTable,
    buf: &[u8],
    pos: &mut usize,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Decoded> {
    lit(buf, pos, b"\"E\":")?;
    let e_ms = uint(buf, pos)?;
    let (sym, agg_id) = if lit(buf, pos, b",\"s\":").is_some() {
        let sym = string(buf, pos)?;
        lit(buf, pos, b",\"a\":")?;
        (sym, uint(buf, pos)?)
    } else {
        lit(buf, pos, b",\"a\":")?;
        let agg_id = uint(buf, pos)?;
        lit(buf, pos, b",\"s\":")?;
        (string(buf, pos)?, agg_id)
    };
    lit(buf, pos, b",\"p\":")?;
    let p = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"q\":")?;
    let q = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"f\":")?;
    let first = uint(buf, pos)?;
    lit(buf, pos, b",\"l\":")?;
    let last = uint(buf, pos)?;
    lit(buf, pos, b",\"T\":")?;
    uint(buf, pos)?;
    lit(buf, pos, b",\"m\":")?;
    let buyer_maker = boolean(buf, pos)?;
    lit(buf, pos, b"}")?;
    let Some(symbol) = syms.lookup_on(USDM, sym) else {
        return Some(Decoded::Ignored(IgnoreReason::UnknownSymbol));
    };
    let ev = AggTrade {
        exch_ns: ms(e_ms)?,
        agg_id,
        price: Price(p.value()?),
        qty: Qty(q.value()?),
        trade_count: trade_count(first, last).ok()?,
        buyer_maker,
    };
    out.push(Event::new(recv_ns, symbol, EventKind::AggTrade(ev)));
    Some(Decoded::Events(1))
}

/// After `"e":"bookTicker",`: `"u":..,"s":..,"b":..,"B":..,"a":..,"A":..,"T":..,"E":..}`.
#[inline(always)]
fn book_ticker(
    syms: &SymbolTable,
    buf: &[u8],
    pos: &mut usize,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Decoded> {
    lit(buf, pos, b"\"u\":")?;
    let update_id = uint(buf, pos)?;
    lit(buf, pos, b",\"s\":")?;
    let sym = string(buf, pos)?;
    lit(buf, pos, b",\"b\":")?;
    let b = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"B\":")?;
    let bq = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"a\":")?;
    let a = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"A\":")?;
    let aq = decimal_string(buf, pos)?;
    lit(buf, pos, b",\"T\":")?;
    uint(buf, pos)?;
    lit(buf, pos, b",\"E\":")?;
    uint(buf, pos)?;
    lit(buf, pos, b"}")?;
    let Some(symbol) = syms.lookup_on(USDM, sym) else {
        return Some(Decoded::Ignored(IgnoreReason::UnknownSymbol));
    };
    let ev = BookTicker {
        update_id,
        bid_px: Price(b.value()?),
        bid_qty: Qty(bq.value()?),
        ask_px: Price(a.value()?),
        ask_qty: Qty(aq.value()?),
    };
    out.push(Event::new(recv_ns, symbol, EventKind::BookTicker(ev)));
    Some(Decoded::Events(1))
}

/// After `"e":"depthUpdate",`: `"E":..,"T":..,"s":..,"U":..,"u":..,"pu":..,"b":[..],"a":[..]}`.
#[inline(always)]
fn depth(
    syms: &SymbolTable,
    buf: &[u8],
    pos: &mut usize,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Decoded> {
    lit(buf, pos, b"\"E\":")?;
    let exch_ns = ms(uint(buf, pos)?)?;
    lit(buf, pos, b",\"T\":")?;
    uint(buf, pos)?;
    lit(buf, pos, b",\"s\":")?;
    // An unknown symbol is rare: the general path validates and ignores it.
    let symbol = syms.lookup_on(USDM, string(buf, pos)?)?;
    lit(buf, pos, b",\"U\":")?;
    let first = uint(buf, pos)?;
    lit(buf, pos, b",\"u\":")?;
    let last = uint(buf, pos)?;
    lit(buf, pos, b",\"pu\":")?;
    let pu = uint(buf, pos)?;
    let update_span = update_span(first, last, pu).ok()?;
    let mk = |side, price, qty| {
        Event::new(
            recv_ns,
            symbol,
            EventKind::Depth(DepthLevel {
                exch_ns,
                final_update_id: last,
                price,
                qty,
                update_span,
                side,
                flags: LevelFlags::default(),
            }),
        )
    };
    let start = out.len();
    lit(buf, pos, b",\"b\":")?;
    levels(buf, pos, BookSide::Bid, out, mk)?;
    lit(buf, pos, b",\"a\":")?;
    levels(buf, pos, BookSide::Ask, out, mk)?;
    lit(buf, pos, b"}")?;
    let n = finish_levels(out, start, mk(BookSide::Bid, Price::ZERO, Qty::ZERO));
    Some(Decoded::Events(n))
}

/// After `{` of a bare snapshot: `"lastUpdateId":..,"E":..,"T":..,"bids":[..],"asks":[..]}`.
#[inline(always)]
fn snapshot(
    symbol: SymbolId,
    buf: &[u8],
    pos: &mut usize,
    recv_ns: u64,
    out: &mut Vec<Event>,
) -> Option<Decoded> {
    lit(buf, pos, b"\"lastUpdateId\":")?;
    let last_update_id = uint(buf, pos)?;
    lit(buf, pos, b",\"E\":")?;
    uint(buf, pos)?;
    lit(buf, pos, b",\"T\":")?;
    uint(buf, pos)?;
    let mk = |side, price, qty| {
        Event::new(
            recv_ns,
            symbol,
            EventKind::Snapshot(SnapshotLevel {
                last_update_id,
                price,
                qty,
                side,
                flags: LevelFlags::default(),
            }),
        )
    };
    let start = out.len();
    lit(buf, pos, b",\"bids\":")?;
    levels(buf, pos, BookSide::Bid, out, mk)?;
    lit(buf, pos, b",\"asks\":")?;
    levels(buf, pos, BookSide::Ask, out, mk)?;
    lit(buf, pos, b"}")?;
    let n = finish_levels(out, start, mk(BookSide::Bid, Price::ZERO, Qty::ZERO));
    Some(Decoded::Events(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::{adapter, MarketDecoder};

    fn table() -> (SymbolTable, SymbolId) {
        let mut t = SymbolTable::new();
        // The same name on spot first: a USD-M decoder must not pick it.
        t.intern("BTCUSDT").unwrap();
        let id = t.intern_on(USDM, "BTCUSDT").unwrap();
        t.intern_on(USDM, "BNBUSDT").unwrap();
        (t, id)
    }

    fn decoder() -> BinanceDecoder {
        BinanceDecoder::usdm(table().0)
    }

    /// Frames of the real capture (`binance-usdm/btcusdt_20240808.gz`), one per kind.
    const DEPTH: &[u8] = br#"{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5123107832006,"u":5123107837557,"pu":5123107831937,"b":[["58710.20","0.014"],["61496.50","0.010"]],"a":[["61800.30","3.330"]]}}"#;
    const BOOK_TICKER: &[u8] = br#"{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}"#;
    const TRADE: &[u8] = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}"#;
    const SNAPSHOT: &[u8] = br#"{"lastUpdateId":5123107852948,"E":1723161256501,"T":1723161256493,"bids":[["61800.20","2.909"],["61800.10","0.696"]],"asks":[["61800.30","0.010"]]}"#;
    /// Binance's USD-M aggTrade example (docs: Aggregate Trade Streams).
    const AGG_TRADE_DOC: &[u8] = br#"{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#;

    /// Decodes `f` on the fast path (which must take it) and, with a space after the first
    /// `{` (which sends it down the general path), on the general one; both must agree.
    fn both_paths(d: &mut BinanceDecoder, f: &[u8]) -> Vec<Event> {
        d.set_default_symbol(Some(SymbolId(1)));
        let mut fast = Vec::new();
        let r = try_decode(d.symbols(), Some(SymbolId(1)), f, 9, &mut fast);
        assert!(r.is_some(), "fast path: {}", String::from_utf8_lossy(f));
        let spaced = String::from_utf8_lossy(f).replacen('{', "{ ", 1);
        assert!(try_decode(d.symbols(), None, spaced.as_bytes(), 9, &mut Vec::new()).is_none());
        let mut general = Vec::new();
        assert_eq!(r.unwrap(), d.decode(spaced.as_bytes(), 9, &mut general));
        assert_eq!(fast, general, "{}", String::from_utf8_lossy(f));
        fast
    }

    fn depth_level(e: &Event) -> DepthLevel {
        match e.kind {
            EventKind::Depth(d) => d,
            k => panic!("not a depth level: {k:?}"),
        }
    }

    #[test]
    fn depth_update_takes_its_span_from_pu() {
        let mut d = decoder();
        d.set_default_symbol(Some(SymbolId(1)));
        let evs = both_paths(&mut d, DEPTH);
        assert_eq!(evs.len(), 3);
        let l = depth_level(&evs[0]);
        assert_eq!(l.final_update_id, 5123107837557);
        assert_eq!(l.first_update_id(), 5123107831937 + 1, "first = pu + 1");
        assert_eq!(l.update_span, (5123107837557u64 - 5123107831937 - 1) as u32);
        assert_eq!(l.exch_ns, 1723161256299 * 1_000_000);
        assert_eq!(evs[0].symbol, table().1);
        assert!(depth_level(&evs[2]).flags.contains(LevelFlags::LAST));
        assert_eq!(d.venue(), Venue::BinanceUsdm);
    }

    /// Binance's USD-M `depthUpdate` example (docs: Diff. Book Depth Streams).
    #[test]
    fn documented_depth_update() {
        let f = br#"{"e":"depthUpdate","E":123456789,"T":123456788,"s":"BTCUSDT","U":157,"u":160,"pu":149,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}"#;
        let evs = both_paths(&mut decoder(), f);
        assert_eq!(evs.len(), 2);
        let (b, a) = (depth_level(&evs[0]), depth_level(&evs[1]));
        assert_eq!((b.first_update_id(), b.final_update_id), (150, 160));
        assert_eq!(
            (b.side, b.price, b.qty),
            (
                BookSide::Bid,
                Price::parse(b"0.0024").unwrap(),
                Qty::parse(b"10").unwrap()
            )
        );
        assert_eq!(
            (a.side, a.price),
            (BookSide::Ask, Price::parse(b"0.0026").unwrap())
        );
        // Pretty-printed as in the docs: the general path, same events.
        let pretty = String::from_utf8_lossy(f).replace(',', ",\n  ");
        let mut out = Vec::new();
        assert_eq!(
            decoder().decode(pretty.as_bytes(), 9, &mut out),
            Ok(Decoded::Events(2))
        );
        assert_eq!(out, evs);
    }

    #[test]
    fn every_capture_kind_takes_the_fast_path_and_agrees_with_the_general_one() {
        let mut d = decoder();
        for f in [BOOK_TICKER, TRADE, DEPTH, SNAPSHOT, AGG_TRADE_DOC] {
            assert!(!both_paths(&mut d, f).is_empty());
        }
        // aggTrade with `a` before `s` (coin-M's documented order) also.
        let a_first = br#"{"e":"aggTrade","E":123456789,"a":5933014,"s":"BTCUSDT","p":"0.001","q":"100","f":100,"l":105,"T":123456785,"m":true}"#;
        assert_eq!(
            both_paths(&mut d, a_first),
            both_paths(&mut d, AGG_TRADE_DOC)
        );
        match both_paths(&mut d, AGG_TRADE_DOC)[0].kind {
            EventKind::AggTrade(a) => {
                assert_eq!((a.agg_id, a.trade_count, a.buyer_maker), (5933014, 6, true));
                assert_eq!(a.exch_ns, 123456789 * 1_000_000);
            }
            k => panic!("{k:?}"),
        }
        match both_paths(&mut d, TRADE)[0].kind {
            EventKind::Trade(t) => {
                assert_eq!((t.trade_id, t.buyer_maker), (5266583935, false));
                assert_eq!(t.price, Price::parse(b"61800.30").unwrap());
            }
            k => panic!("{k:?}"),
        }
        match both_paths(&mut d, BOOK_TICKER)[0].kind {
            EventKind::BookTicker(b) => {
                assert_eq!(b.update_id, 5123107839020);
                assert_eq!(b.ask_qty, Qty::parse(b"2.510").unwrap());
            }
            k => panic!("{k:?}"),
        }
        let snap = both_paths(&mut d, SNAPSHOT);
        assert_eq!(snap.len(), 3);
        assert!(snap.iter().all(|e| e.symbol == SymbolId(1)));
    }

    /// Binance's documented USD-M bookTicker (`E`, `T` before `s`) and REST snapshot bodies:
    /// the general path.
    #[test]
    fn documented_book_ticker_and_snapshot() {
        let mut d = decoder();
        let bt = br#"{"e":"bookTicker","u":400900217,"E":1568014460893,"T":1568014460891,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000","a":"25.36520000","A":"40.66000000"}"#;
        let mut out = Vec::new();
        assert_eq!(d.decode(bt, 1, &mut out), Ok(Decoded::Events(1)));
        assert!(matches!(out[0].kind, EventKind::BookTicker(b) if b.update_id == 400900217));
        let body = br#"{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#;
        out.clear();
        let btc = table().1;
        assert_eq!(
            d.decode_snapshot(body, btc, 1, &mut out),
            Ok(Decoded::Events(2))
        );
        assert!(
            matches!(out[1].kind, EventKind::Snapshot(s) if s.last_update_id == 1027024 && s.flags.contains(LevelFlags::LAST))
        );
    }

    #[test]
    fn pu_is_required_checked_and_never_a_duplicate() {
        let mut d = decoder();
        let mut out = Vec::new();
        let base = String::from_utf8_lossy(DEPTH).into_owned();
        let cases: [(String, DecodeError); 6] = [
            (
                base.replace(r#""pu":5123107831937,"#, ""),
                DecodeError::MissingField("pu"),
            ),
            (
                base.replace(r#""pu":5123107831937"#, r#""pu":"5123107831937""#),
                DecodeError::WrongType { field: "pu" },
            ),
            (
                base.replace(r#""pu":5123107831937"#, r#""pu":-1"#),
                DecodeError::WrongType { field: "pu" },
            ),
            (
                base.replace(r#""pu":5123107831937"#, r#""pu":99999999999999999999"#),
                DecodeError::IntOverflow { field: "pu" },
            ),
            (
                base.replace(r#""pu":5123107831937"#, r#""pu":5123107837557"#),
                DecodeError::BadRange { field: "pu" },
            ),
            (
                base.replace(r#""pu":5123107831937"#, r#""pu":1,"p\u0075":1"#),
                DecodeError::DuplicateField("pu"),
            ),
        ];
        for (f, want) in cases {
            assert_eq!(d.decode(f.as_bytes(), 0, &mut out), Err(want), "{f}");
            assert!(out.is_empty());
        }
        let u_above = base.replace(r#""U":5123107832006"#, r#""U":5123107837558"#);
        assert_eq!(
            d.decode(u_above.as_bytes(), 0, &mut out),
            Err(DecodeError::BadRange { field: "U" })
        );
        // An escaped `pu` key is the same key.
        let escaped = base.replace(r#""pu":"#, r#""p\u0075":"#);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert_eq!(
            d.decode(escaped.as_bytes(), 0, &mut a),
            Ok(Decoded::Events(3))
        );
        assert_eq!(d.decode(DEPTH, 0, &mut b), Ok(Decoded::Events(3)));
        assert_eq!(a, b);
        assert_eq!(d.stats().decode_errors, 7);
    }

    #[test]
    fn spans_saturate_into_a_gap_never_a_bridge() {
        assert_eq!(update_span(157, 160, 149), Ok(10));
        assert_eq!(update_span(160, 160, 159), Ok(0));
        assert_eq!(update_span(5, 1 << 40, 0), Ok(u32::MAX));
        assert_eq!(update_span(1, u64::MAX, 0), Ok(u32::MAX));
        assert_eq!(
            update_span(161, 160, 149),
            Err(DecodeError::BadRange { field: "U" })
        );
        assert_eq!(
            update_span(157, 160, 160),
            Err(DecodeError::BadRange { field: "pu" })
        );
        assert_eq!(
            update_span(157, 160, 170),
            Err(DecodeError::BadRange { field: "pu" })
        );
        assert_eq!(
            update_span(157, 160, 157),
            Err(DecodeError::BadRange { field: "pu" })
        );
        assert_eq!(update_span(157, 160, 156), Ok(3));
    }

    #[test]
    fn symbols_are_looked_up_on_usdm_only() {
        let mut spot_only = SymbolTable::new();
        spot_only.intern("BTCUSDT").unwrap();
        let mut d = BinanceDecoder::usdm(spot_only);
        let mut out = Vec::new();
        for f in [BOOK_TICKER, TRADE, DEPTH, AGG_TRADE_DOC] {
            assert_eq!(
                d.decode(f, 0, &mut out),
                Ok(Decoded::Ignored(IgnoreReason::UnknownSymbol))
            );
        }
        assert!(out.is_empty());
        assert_eq!(d.stats().unknown_symbol, 4);
        // And a spot decoder over the same table never sees the USD-M symbol.
        let (t, usdm_id) = table();
        let mut spot = BinanceDecoder::new(t);
        assert_eq!(spot.venue(), Venue::Binance);
        assert_eq!(spot.decode(TRADE, 0, &mut out), Ok(Decoded::Events(1)));
        assert_ne!(out[0].symbol, usdm_id);
    }

    #[test]
    fn a_spot_decoder_does_not_know_pu() {
        // Spot reads U..u as before and skips `pu`, duplicates included.
        let (t, _) = table();
        let mut spot = BinanceDecoder::new(t);
        let f =
            String::from_utf8_lossy(DEPTH).replace(r#""pu":5123107831937"#, r#""pu":1,"pu":"x""#);
        let mut out = Vec::new();
        assert_eq!(
            spot.decode(f.as_bytes(), 0, &mut out),
            Ok(Decoded::Events(3))
        );
        assert_eq!(depth_level(&out[0]).first_update_id(), 5123107832006);
    }

    #[test]
    fn responses_and_other_streams_are_ignored_with_a_reason() {
        let mut d = decoder();
        let mut out = Vec::new();
        let ignored: [(&[u8], IgnoreReason); 4] = [
            (br#"{"result":null,"id":1}"#, IgnoreReason::Response),
            (br#"{"code":2,"msg":"Invalid request"}"#, IgnoreReason::Response),
            (br#"{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1"}}"#, IgnoreReason::UnknownStream),
            (br#"{"stream":"!forceOrder@arr","data":[]}"#, IgnoreReason::UnknownStream),
        ];
        for (f, why) in ignored {
            assert_eq!(d.decode(f, 0, &mut out), Ok(Decoded::Ignored(why)));
        }
        assert!(out.is_empty());
    }

    #[test]
    fn adapter_speaks_usdm() {
        let a = adapter(Venue::BinanceUsdm).expect("registered");
        assert_eq!(a.venue(), Venue::BinanceUsdm);
        assert_eq!(a.ws_url(), "wss://fstream.binance.com/stream");
        assert_eq!(a.rest_url(), Some("https://fapi.binance.com"));
        assert_eq!(a.heartbeat(), Heartbeat::WsPing);
        assert_eq!(a.book_sync(), BookSync::RestSnapshot);
        let streams: Vec<String> = [
            StreamKind::Trade,
            StreamKind::AggTrade,
            StreamKind::BookTicker,
            StreamKind::Depth,
        ]
        .into_iter()
        .map(|k| a.stream(k, "BTCUSDT").unwrap())
        .collect();
        assert_eq!(
            streams,
            [
                "btcusdt@trade",
                "btcusdt@aggTrade",
                "btcusdt@bookTicker",
                "btcusdt@depth@100ms"
            ]
        );
        assert_eq!(
            a.subscribe(&streams[..1], 7).unwrap(),
            [r#"{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":7}"#]
        );
        assert_eq!(
            a.unsubscribe(&["btcusdt@depth@0ms".into()], 8).unwrap(),
            [r#"{"method":"UNSUBSCRIBE","params":["btcusdt@depth@0ms"],"id":8}"#]
        );
        assert!(a.subscribe(&[], 1).unwrap().is_empty());
        let url = |limit| {
            a.snapshot_url("http://127.0.0.1:9/", "btcusdt", limit)
                .unwrap()
        };
        assert_eq!(
            url(1000),
            "http://127.0.0.1:9/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        );
        assert_eq!(
            url(200),
            "http://127.0.0.1:9/fapi/v1/depth?symbol=BTCUSDT&limit=500"
        );
        assert_eq!(
            url(5000),
            "http://127.0.0.1:9/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        );
        assert_eq!(
            url(1),
            "http://127.0.0.1:9/fapi/v1/depth?symbol=BTCUSDT&limit=5"
        );
        let mut dec = a.decoder(table().0);
        assert_eq!(dec.venue(), Venue::BinanceUsdm);
        let mut out = Vec::new();
        assert_eq!(dec.decode(DEPTH, 0, &mut out), Ok(Decoded::Events(3)));
        assert_eq!(depth_level(&out[0]).first_update_id(), 5123107831938);
    }
}
