//! The simulator's own reading of the market-data frames it publishes and the REST depth
//! snapshots it is seeded with (serde_json), independent of `feeds::binance`: a decoder bug in
//! the engine cannot hide behind the same bug in the venue that tests it.
//!
//! It reads what the venue needs and checks what a frame of each kind must hold:
//!
//! | payload | recognised by | what the venue takes |
//! |---|---|---|
//! | trade | `"e":"trade"` | [`Market::Trade`]: symbol, trade id, price, quantity (the trade tap fills resting orders with it) |
//! | diff depth | `"e":"depthUpdate"` | [`Market::Depth`]: one [`DepthLevel`] per level, bids first (the venue's books apply them) |
//! | aggTrade, bookTicker | `"e"`, or no `e` and a `u` key, or a stream named `*@bookTicker` | [`Market::Other`] once checked |
//! | depth snapshot on a stream (`<symbol>@depth<N>`) | no `e` and a `lastUpdateId` key | [`Market::Other`] once checked |
//! | any other `e`, a `data` array, an unknown symbol, anything unrecognised | | [`Market::Other`] |
//! | a response (`{"result":null,"id":1}`, `{"code":..,"msg":..}`) | top-level `result`, `id` or `code` | [`Market::Response`] |
//!
//! A recognised payload missing a field it needs, or holding one of the wrong type (prices and
//! quantities are decimal strings that fit [`engine::fixed`] exactly; ids and times unsigned
//! integers; `m` a boolean; levels exactly `["price","qty"]`; `U <= u`), and anything that is not
//! JSON, is a [`MarketError`]: the publisher counts it and still sends the frame as recorded.
//!
//! Costs: one serde_json pass over borrowed strings per frame; a depth frame or snapshot also
//! collects its levels into a small `Vec` before checking them. The simulator is not on the
//! engine's hot path; what it must be is independent and strict.

use engine::event::{BookSide, DepthLevel, LevelFlags, SnapshotLevel};
use engine::fixed::{parse_fixed, Price, Qty};
use engine::symbol::{SymbolId, SymbolTable};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// Nanoseconds per Binance millisecond timestamp.
const NS_PER_MS: u64 = 1_000_000;

/// What one frame is to the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Market {
    /// A trade.
    Trade {
        symbol: SymbolId,
        trade_id: u64,
        price: Price,
        qty: Qty,
    },
    /// A diff depth message of `symbol`; its levels are [`MarketDecoder::levels`].
    Depth { symbol: SymbolId },
    /// Valid, but nothing the venue keeps (aggTrade, bookTicker, a snapshot on a stream, an
    /// unknown stream or symbol).
    Other,
    /// A recorded answer to a request (`{"result":null,"id":1}`); not market data.
    Response,
}

/// Why a frame was refused.
#[derive(Debug)]
pub(crate) enum MarketError {
    /// Not JSON, or a known key with a value of the wrong JSON type.
    Json(serde_json::Error),
    /// The payload is not a JSON object.
    NotAnObject,
    /// A field its kind needs is missing.
    Missing(&'static str),
    /// A field holds a value out of its range (a decimal that does not fit, `U > u`, ..).
    Bad(&'static str),
    /// A snapshot frame without a stream name to take its symbol from.
    MissingSymbol,
}

impl fmt::Display for MarketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarketError::Json(e) => write!(f, "invalid JSON: {e}"),
            MarketError::NotAnObject => f.write_str("not a JSON object"),
            MarketError::Missing(k) => write!(f, "missing field {k:?}"),
            MarketError::Bad(k) => write!(f, "bad value in field {k:?}"),
            MarketError::MissingSymbol => f.write_str("a snapshot without a symbol"),
        }
    }
}

impl From<serde_json::Error> for MarketError {
    fn from(e: serde_json::Error) -> Self {
        MarketError::Json(e)
    }
}

/// A key that may hold anything, `null` included: only whether it is there counts.
#[derive(Debug, Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| Present(true))
    }
}

/// Every key the venue reads, of an envelope (`stream`, `data`), a response (`result`, `id`,
/// `code`) or a payload. Unknown keys are skipped; a known key twice is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Fields<'a> {
    #[serde(borrow)]
    stream: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    result: Present,
    id: Present,
    code: Present,
    #[serde(borrow)]
    e: Option<Cow<'a, str>>,
    #[serde(rename = "E")]
    event_time: Option<u64>,
    #[serde(borrow)]
    s: Option<Cow<'a, str>>,
    t: Option<u64>,
    #[serde(borrow)]
    p: Option<Cow<'a, str>>,
    #[serde(borrow)]
    q: Option<Cow<'a, str>>,
    m: Option<bool>,
    f: Option<u64>,
    l: Option<u64>,
    #[serde(rename = "U")]
    first_update: Option<u64>,
    u: Option<u64>,
    /// USD-M futures: the previous diff's `u` (the diff continues from it, whatever its `U`).
    pu: Option<u64>,
    /// Bids of a diff (an array), or the best bid of a bookTicker (a string).
    #[serde(borrow)]
    b: Option<&'a RawValue>,
    /// Asks of a diff (an array), the best ask of a bookTicker (a string), or an aggTrade's id.
    #[serde(borrow)]
    a: Option<&'a RawValue>,
    #[serde(rename = "B", borrow)]
    bid_qty: Option<Cow<'a, str>>,
    #[serde(rename = "A", borrow)]
    ask_qty: Option<Cow<'a, str>>,
    #[serde(rename = "lastUpdateId")]
    last_update_id: Option<u64>,
    #[serde(borrow)]
    bids: Option<&'a RawValue>,
    #[serde(borrow)]
    asks: Option<&'a RawValue>,
}

/// One `["price","qty"]` level.
#[derive(Debug, Deserialize)]
struct Level<'a>(#[serde(borrow)] Cow<'a, str>, #[serde(borrow)] Cow<'a, str>);

/// The kinds of payload the venue recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Trade,
    AggTrade,
    Depth,
    BookTicker,
    Snapshot,
}

/// Reads frames for the symbols of one table. Keeps the levels of the last depth message or
/// snapshot, reused from frame to frame.
#[derive(Debug)]
pub(crate) struct MarketDecoder {
    symbols: SymbolTable,
    levels: Vec<DepthLevel>,
    snapshot: Vec<SnapshotLevel>,
}

impl MarketDecoder {
    /// A decoder that knows the symbols of `symbols`.
    pub(crate) fn new(symbols: SymbolTable) -> Self {
        MarketDecoder {
            symbols,
            levels: Vec::with_capacity(256),
            snapshot: Vec::with_capacity(2048),
        }
    }

    /// The symbol table.
    pub(crate) fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// The levels of the last [`Market::Depth`] (bids first; the last one flagged
    /// [`LevelFlags::LAST`], or one [`LevelFlags::EMPTY`] level for a message without any).
    pub(crate) fn levels(&self) -> &[DepthLevel] {
        &self.levels
    }

    /// Reads one published frame (combined `{"stream":..,"data":..}` or a bare payload).
    pub(crate) fn decode(&mut self, frame: &[u8]) -> Result<Market, MarketError> {
        self.levels.clear();
        match first_byte(frame) {
            Some(b'{') => {}
            Some(b'[') => {
                serde_json::from_slice::<IgnoredAny>(frame)?;
                return Ok(Market::Other); // `!ticker@arr` and friends on a raw stream
            }
            _ => {
                serde_json::from_slice::<IgnoredAny>(frame)?;
                return Err(MarketError::NotAnObject);
            }
        }
        let top: Fields<'_> = serde_json::from_slice(frame)?;
        let (inner, combined) = match top.data {
            None => (None, false),
            Some(d) => match first_byte(d.get().as_bytes()) {
                Some(b'{') => (Some(serde_json::from_str::<Fields<'_>>(d.get())?), true),
                Some(b'[') => return Ok(Market::Other),
                _ => return Err(MarketError::Bad("data")),
            },
        };
        let p = inner.as_ref().unwrap_or(&top);
        let stream = top.stream.as_deref();

        let kind = if let Some(e) = p.e.as_deref() {
            match e {
                "trade" => Kind::Trade,
                "aggTrade" => Kind::AggTrade,
                "depthUpdate" => Kind::Depth,
                "bookTicker" => Kind::BookTicker,
                _ => return Ok(Market::Other),
            }
        } else if p.last_update_id.is_some() {
            Kind::Snapshot
        } else if p.u.is_some() || stream.is_some_and(|s| s.ends_with("@bookTicker")) {
            Kind::BookTicker
        } else if !combined && (p.result.0 || p.id.0 || p.code.0) {
            return Ok(Market::Response);
        } else {
            return Ok(Market::Other);
        };

        let symbol = if kind == Kind::Snapshot {
            let s = stream.ok_or(MarketError::MissingSymbol)?;
            let sym = s.split('@').next().unwrap_or(s);
            self.symbols.lookup(sym.as_bytes())
        } else {
            let s = p.s.as_deref().ok_or(MarketError::Missing("s"))?;
            self.symbols.lookup(s.as_bytes())
        };
        let Some(symbol) = symbol else {
            return Ok(Market::Other); // a symbol the venue does not list
        };

        match kind {
            Kind::Trade => {
                ms_to_ns(need(p.event_time, "E")?, "E")?;
                let trade_id = need(p.t, "t")?;
                let price = Price(decimal(p.p.as_deref(), "p")?);
                let qty = Qty(decimal(p.q.as_deref(), "q")?);
                need(p.m, "m")?;
                Ok(Market::Trade {
                    symbol,
                    trade_id,
                    price,
                    qty,
                })
            }
            Kind::AggTrade => {
                ms_to_ns(need(p.event_time, "E")?, "E")?;
                serde_json::from_str::<u64>(need(p.a, "a")?.get())?;
                decimal(p.p.as_deref(), "p")?;
                decimal(p.q.as_deref(), "q")?;
                let first = need(p.f, "f")?;
                let last = need(p.l, "l")?;
                last.checked_sub(first).ok_or(MarketError::Bad("l"))?;
                need(p.m, "m")?;
                Ok(Market::Other)
            }
            Kind::BookTicker => {
                need(p.u, "u")?;
                decimal_raw(p.b, "b")?;
                decimal(p.bid_qty.as_deref(), "B")?;
                decimal_raw(p.a, "a")?;
                decimal(p.ask_qty.as_deref(), "A")?;
                Ok(Market::Other)
            }
            Kind::Depth => {
                let exch_ns = ms_to_ns(need(p.event_time, "E")?, "E")?;
                let last = need(p.u, "u")?;
                let first = match p.pu {
                    Some(pu) => pu.checked_add(1).ok_or(MarketError::Bad("pu"))?,
                    None => need(p.first_update, "U")?,
                };
                let span = last.checked_sub(first).ok_or(MarketError::Bad("U"))?;
                let update_span = u32::try_from(span).map_err(|_| MarketError::Bad("U"))?;
                let bids = levels(p.b, "b")?;
                let asks = levels(p.a, "a")?;
                let mk = |side, price, qty, flags| DepthLevel {
                    exch_ns,
                    final_update_id: last,
                    price,
                    qty,
                    update_span,
                    side,
                    flags,
                };
                for (side, ls) in [(BookSide::Bid, bids), (BookSide::Ask, asks)] {
                    for (px, q) in ls {
                        self.levels.push(mk(side, px, q, LevelFlags::default()));
                    }
                }
                match self.levels.last_mut() {
                    Some(l) => l.flags = l.flags.with(LevelFlags::LAST),
                    None => self.levels.push(mk(
                        BookSide::Bid,
                        Price::ZERO,
                        Qty::ZERO,
                        LevelFlags::LAST.with(LevelFlags::EMPTY),
                    )),
                }
                Ok(Market::Depth { symbol })
            }
            Kind::Snapshot => {
                snapshot_levels(p, &mut self.snapshot)?;
                Ok(Market::Other)
            }
        }
    }

    /// Reads a REST `GET /api/v3/depth` body: one [`SnapshotLevel`] per level (bids first; the
    /// last flagged [`LevelFlags::LAST`], or one [`LevelFlags::EMPTY`] level if there is none).
    pub(crate) fn decode_snapshot(&mut self, body: &[u8]) -> Result<&[SnapshotLevel], MarketError> {
        self.snapshot.clear();
        if first_byte(body) != Some(b'{') {
            serde_json::from_slice::<IgnoredAny>(body)?;
            return Err(MarketError::NotAnObject);
        }
        let f: Fields<'_> = serde_json::from_slice(body)?;
        snapshot_levels(&f, &mut self.snapshot)?;
        Ok(&self.snapshot)
    }
}

/// The snapshot levels of `p` into `out` (cleared first).
fn snapshot_levels(p: &Fields<'_>, out: &mut Vec<SnapshotLevel>) -> Result<(), MarketError> {
    out.clear();
    let last_update_id = need(p.last_update_id, "lastUpdateId")?;
    let bids = levels(p.bids, "bids")?;
    let asks = levels(p.asks, "asks")?;
    let mk = |side, price, qty, flags| SnapshotLevel {
        last_update_id,
        price,
        qty,
        side,
        flags,
    };
    for (side, ls) in [(BookSide::Bid, bids), (BookSide::Ask, asks)] {
        for (px, q) in ls {
            out.push(mk(side, px, q, LevelFlags::default()));
        }
    }
    match out.last_mut() {
        Some(l) => l.flags = l.flags.with(LevelFlags::LAST),
        None => out.push(mk(
            BookSide::Bid,
            Price::ZERO,
            Qty::ZERO,
            LevelFlags::LAST.with(LevelFlags::EMPTY),
        )),
    }
    Ok(())
}

/// The first byte that is not JSON whitespace.
fn first_byte(b: &[u8]) -> Option<u8> {
    b.iter()
        .copied()
        .find(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
}

fn need<T>(v: Option<T>, field: &'static str) -> Result<T, MarketError> {
    v.ok_or(MarketError::Missing(field))
}

fn ms_to_ns(ms: u64, field: &'static str) -> Result<u64, MarketError> {
    ms.checked_mul(NS_PER_MS).ok_or(MarketError::Bad(field))
}

fn decimal(s: Option<&str>, field: &'static str) -> Result<i64, MarketError> {
    parse_fixed(need(s, field)?.as_bytes()).map_err(|_| MarketError::Bad(field))
}

/// A decimal string held in a field that other kinds use for something else.
fn decimal_raw(v: Option<&RawValue>, field: &'static str) -> Result<i64, MarketError> {
    let s: Cow<'_, str> = serde_json::from_str(need(v, field)?.get())?;
    decimal(Some(&s), field)
}

/// An array of `["price","qty"]` levels.
fn levels(v: Option<&RawValue>, field: &'static str) -> Result<Vec<(Price, Qty)>, MarketError> {
    let raw = need(v, field)?;
    let ls: Vec<Level<'_>> = serde_json::from_str(raw.get())?;
    ls.iter()
        .map(|Level(p, q)| {
            Ok((
                Price(decimal(Some(p), field)?),
                Qty(decimal(Some(q), field)?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> MarketDecoder {
        let mut t = SymbolTable::new();
        t.intern("BTCUSDT").unwrap();
        MarketDecoder::new(t)
    }

    #[test]
    fn reads_a_trade_combined_and_bare() {
        let mut d = decoder();
        let bare = br#"{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":42,"p":"100.50000000","q":"0.25000000","T":1700000000000,"m":true,"M":true}"#;
        let m = d.decode(bare).unwrap();
        let Market::Trade {
            trade_id,
            price,
            qty,
            ..
        } = m
        else {
            panic!("{m:?}")
        };
        assert_eq!(trade_id, 42);
        assert_eq!(price.0, parse_fixed(b"100.5").unwrap());
        assert_eq!(qty.0, parse_fixed(b"0.25").unwrap());
        let mut combined = br#"{"stream":"btcusdt@trade","data":"#.to_vec();
        combined.extend_from_slice(bare);
        combined.push(b'}');
        assert_eq!(d.decode(&combined).unwrap(), m);
    }

    #[test]
    fn reads_depth_levels_bids_first_last_flagged() {
        let mut d = decoder();
        let f = br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":10,"u":12,"b":[["1.00","2"]],"a":[["1.10","0.00000000"],["1.20","3"]]}}"#;
        assert!(matches!(d.decode(f).unwrap(), Market::Depth { .. }));
        let l = d.levels();
        assert_eq!(l.len(), 3);
        assert_eq!((l[0].side, l[2].side), (BookSide::Bid, BookSide::Ask));
        assert_eq!((l[0].final_update_id, l[0].update_span), (12, 2));
        assert!(l[2].flags.contains(LevelFlags::LAST) && !l[1].flags.contains(LevelFlags::LAST));
        let empty = br#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":13,"u":13,"b":[],"a":[]}"#;
        d.decode(empty).unwrap();
        assert_eq!(d.levels().len(), 1);
        assert!(d.levels()[0]
            .flags
            .contains(LevelFlags::LAST.with(LevelFlags::EMPTY)));
    }

    #[test]
    fn tells_responses_and_others_from_errors() {
        let mut d = decoder();
        assert_eq!(
            d.decode(br#"{"result":null,"id":1}"#).unwrap(),
            Market::Response
        );
        assert_eq!(
            d.decode(br#"{"code":2,"msg":"x","id":1}"#).unwrap(),
            Market::Response
        );
        let ticker = br#"{"u":5,"s":"BTCUSDT","b":"1.00","B":"1","a":"1.10","A":"2"}"#;
        assert_eq!(d.decode(ticker).unwrap(), Market::Other);
        let other_symbol = br#"{"e":"trade","E":1,"s":"ETHUSDT","t":1,"p":"1","q":"1","m":true}"#;
        assert_eq!(d.decode(other_symbol).unwrap(), Market::Other);
        assert_eq!(d.decode(b"[1,2]").unwrap(), Market::Other);
        for bad in [
            &b"not json"[..],
            b"42",
            br#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1e3","q":"1","m":true}"#,
            br#"{"e":"trade","E":1,"s":"BTCUSDT","p":"1","q":"1","m":true}"#,
            br#"{"e":"trade","e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","m":true}"#,
            br#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":3,"u":2,"b":[],"a":[]}"#,
            br#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["1","2","3"]],"a":[]}"#,
            br#"{"lastUpdateId":1,"bids":[],"asks":[]}"#,
        ] {
            assert!(d.decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reads_a_snapshot() {
        let mut d = decoder();
        let s = d
            .decode_snapshot(br#"{"lastUpdateId":7,"bids":[["1.00","2"]],"asks":[["1.10","3"]]}"#)
            .unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].last_update_id, 7);
        assert!(s[1].flags.contains(LevelFlags::LAST));
        assert!(d.decode_snapshot(b"[]").is_err());
        assert!(d.decode_snapshot(br#"{"bids":[],"asks":[]}"#).is_err());
    }
}
