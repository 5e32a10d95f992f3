//! The venue-neutral feed of [`super::MdSim`]: events ([`MdEvent`]), the market they build
//! ([`Market`]: one book and the venue's counters per instrument), and where they come from
//! ([`Translator`]: Binance-format frames from the generator or a capture, read with
//! serde_json; a simulator's source, not a hot path).
//!
//! Prices and quantities are fixed point with 8 decimals (`i64`), written back in the shortest
//! decimal form (`"61800.2"`, `"0.0002"`, `"0"`): the form OKX's checksum is computed over.

use serde_json::Value;
use std::collections::BTreeMap;

/// Units per 1 in [`parse_dec`]'s fixed point.
const SCALE: i64 = 100_000_000;

/// A price level: (price, quantity), fixed point.
pub(crate) type Level = (i64, i64);

/// Book side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Bid,
    Ask,
}

/// One change of the feed, venue-neutral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MdEvent {
    /// The instrument's whole book (the source's REST snapshot): replaces it, sends nothing.
    Snapshot {
        sym: usize,
        bids: Vec<(i64, i64)>,
        asks: Vec<(i64, i64)>,
    },
    /// Levels set to an absolute quantity (0 removes), bids then asks.
    Depth {
        sym: usize,
        exch_ms: u64,
        changes: Vec<(Side, i64, i64)>,
    },
    /// A trade; `taker_buy` when the buyer took liquidity.
    Trade {
        sym: usize,
        exch_ms: u64,
        price: i64,
        qty: i64,
        taker_buy: bool,
    },
    /// The top of the book may have changed (the source's bookTicker): a ticker goes out.
    Ticker { sym: usize, exch_ms: u64 },
}

impl MdEvent {
    pub(crate) fn sym(&self) -> usize {
        match self {
            MdEvent::Snapshot { sym, .. }
            | MdEvent::Depth { sym, .. }
            | MdEvent::Trade { sym, .. }
            | MdEvent::Ticker { sym, .. } => *sym,
        }
    }
}

/// The last trade of an instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LastTrade {
    pub(crate) id: u64,
    pub(crate) price: i64,
    pub(crate) qty: i64,
    pub(crate) taker_buy: bool,
    pub(crate) exch_ms: u64,
    /// The venue sequence number it was published with (Coinbase `sequence`, Bybit `seq`).
    pub(crate) seq: u64,
}

/// One instrument: its book, and the counters the venue's protocol numbers frames with.
#[derive(Clone, Debug)]
pub(crate) struct SymState {
    /// The venue's instrument name (`BTC-USDT`, `BTC-USD`, `BTCUSDT`).
    pub(crate) name: String,
    pub(crate) bids: BTreeMap<i64, i64>,
    pub(crate) asks: BTreeMap<i64, i64>,
    /// A snapshot arrived (before it nothing is published for this instrument).
    pub(crate) has_book: bool,
    /// The venue's id of the book's last change (OKX `seqId`, Bybit `u`).
    pub(crate) book_id: u64,
    /// The venue's running sequence (Coinbase `sequence`, Bybit `seq`).
    pub(crate) seq: u64,
    /// Trades so far (the next trade id is this + 1, offset per venue).
    pub(crate) trades: u64,
    pub(crate) last_trade: Option<LastTrade>,
    /// Exchange time of the last event, ms.
    pub(crate) exch_ms: u64,
    /// Traded quantity since start.
    pub(crate) volume: i64,
}

impl SymState {
    fn new(name: String, index: usize) -> SymState {
        SymState {
            name,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            has_book: false,
            book_id: 1000 + index as u64 * 100_000,
            seq: 5_000_000 + index as u64 * 10_000_000,
            trades: 0,
            last_trade: None,
            exch_ms: 0,
            volume: 0,
        }
    }

    /// The best `n` bids, best first.
    pub(crate) fn top_bids(&self, n: usize) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.bids.iter().rev().take(n).map(|(p, q)| (*p, *q))
    }

    /// The best `n` asks, best first.
    pub(crate) fn top_asks(&self, n: usize) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.asks.iter().take(n).map(|(p, q)| (*p, *q))
    }

    /// Best bid and ask, where the book has them.
    pub(crate) fn best(&self) -> (Option<Level>, Option<Level>) {
        (self.top_bids(1).next(), self.top_asks(1).next())
    }
}

/// Every instrument served, behind the server's one lock.
#[derive(Debug)]
pub(crate) struct Market {
    pub(crate) syms: Vec<SymState>,
}

impl Market {
    /// A market of `names` (venue-native), empty books.
    pub(crate) fn new(names: &[String]) -> Market {
        Market {
            syms: names
                .iter()
                .enumerate()
                .map(|(i, n)| SymState::new(n.clone(), i))
                .collect(),
        }
    }

    /// The index of the instrument named `name` (exactly as the venue spells it).
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.syms.iter().position(|s| s.name == name)
    }

    /// Applies `ev` to the books (the protocol numbers it afterwards). False when the event
    /// cannot be published (no book yet for a depth change, or an unknown instrument).
    pub(crate) fn apply(&mut self, ev: &MdEvent) -> bool {
        let Some(s) = self.syms.get_mut(ev.sym()) else {
            return false;
        };
        match ev {
            MdEvent::Snapshot { bids, asks, .. } => {
                s.bids = bids.iter().copied().filter(|l| l.1 > 0).collect();
                s.asks = asks.iter().copied().filter(|l| l.1 > 0).collect();
                // Book subscribers get it: the first one seeds the book (a client that
                // subscribed before has had no snapshot yet), a later one (a venue's own
                // capture) replaces it mid-stream.
                s.has_book = true;
                true
            }
            MdEvent::Depth {
                changes, exch_ms, ..
            } => {
                if !s.has_book {
                    return false;
                }
                s.exch_ms = *exch_ms;
                for &(side, px, qty) in changes {
                    let book = match side {
                        Side::Bid => &mut s.bids,
                        Side::Ask => &mut s.asks,
                    };
                    if qty > 0 {
                        book.insert(px, qty);
                    } else {
                        book.remove(&px);
                    }
                }
                true
            }
            MdEvent::Trade {
                exch_ms,
                price,
                qty,
                taker_buy,
                ..
            } => {
                s.exch_ms = *exch_ms;
                s.trades += 1;
                s.volume = s.volume.saturating_add(*qty);
                s.last_trade = Some(LastTrade {
                    id: s.trades,
                    price: *price,
                    qty: *qty,
                    taker_buy: *taker_buy,
                    exch_ms: *exch_ms,
                    seq: s.seq,
                });
                true
            }
            MdEvent::Ticker { exch_ms, .. } => {
                s.exch_ms = *exch_ms;
                s.has_book
            }
        }
    }
}

/// `"61800.20000000"` -> 6_180_020_000_000 (8 decimals); `None` for anything else (signs,
/// exponents, more than 8 decimals, overflow).
pub(crate) fn parse_dec(s: &str) -> Option<i64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || frac.len() > 8 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = int.parse::<i64>().ok()?.checked_mul(SCALE)?;
    let mut unit = SCALE / 10;
    for b in frac.bytes() {
        v = v.checked_add(i64::from(b - b'0') * unit)?;
        unit /= 10;
    }
    Some(v)
}

/// The shortest decimal form of a fixed-point value: 6_180_020_000_000 -> `"61800.2"`.
pub(crate) fn fmt_dec(v: i64) -> String {
    let (sign, v) = if v < 0 {
        ("-", -(v as i128))
    } else {
        ("", v as i128)
    };
    let int = v / SCALE as i128;
    let frac = v % SCALE as i128;
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let f = format!("{frac:08}");
    format!("{sign}{int}.{}", f.trim_end_matches('0'))
}

/// Binance-format frames (the generator's, or a capture's) to [`MdEvent`]s.
#[derive(Debug)]
pub(crate) struct Translator {
    /// Binance-style upper-case names, by instrument index.
    binance_names: Vec<String>,
    /// Per instrument, the Binance id of the book's last change (`lastUpdateId` or `u`):
    /// diffs at or before it are already in the book.
    last_id: Vec<Option<u64>>,
}

impl Translator {
    /// A translator for instruments named (Binance style, any case) `names`.
    pub(crate) fn new(names: &[String]) -> Translator {
        Translator {
            binance_names: names.iter().map(|n| n.to_ascii_uppercase()).collect(),
            last_id: vec![None; names.len()],
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.binance_names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
    }

    /// A REST depth snapshot of instrument `sym` (`None`: it names none and there is no
    /// default). `None`: unreadable.
    pub(crate) fn snapshot(&mut self, sym: usize, body: &[u8]) -> Option<MdEvent> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let id = v.get("lastUpdateId")?.as_u64()?;
        let bids = levels(v.get("bids")?)?;
        let asks = levels(v.get("asks")?)?;
        *self.last_id.get_mut(sym)? = Some(id);
        Some(MdEvent::Snapshot { sym, bids, asks })
    }

    /// The index of a symbol name, for a snapshot record naming it.
    pub(crate) fn lookup(&self, name: &[u8]) -> Option<usize> {
        self.index(std::str::from_utf8(name).ok()?)
    }

    /// A market-data frame (combined `{"stream":..,"data":..}` or bare). `Ok(None)`: nothing
    /// to publish (a stale diff, a response, another stream); `Err`: unreadable.
    pub(crate) fn frame(&mut self, payload: &[u8]) -> Result<Option<MdEvent>, ()> {
        let v: Value = serde_json::from_slice(payload).map_err(|_| ())?;
        let d = v.get("data").unwrap_or(&v);
        let Some(name) = d.get("s").and_then(Value::as_str) else {
            return Ok(None); // a response or an unknown frame
        };
        let Some(sym) = self.index(name) else {
            return Ok(None);
        };
        let exch_ms = d
            .get("E")
            .or_else(|| d.get("T"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let e = d.get("e").and_then(Value::as_str);
        match e {
            Some("depthUpdate") => {
                let u = d.get("u").and_then(Value::as_u64).ok_or(())?;
                if self.last_id[sym].is_none_or(|last| u <= last) {
                    return Ok(None); // before the snapshot, or already in it
                }
                self.last_id[sym] = Some(u);
                let mut changes = Vec::new();
                for (key, side) in [("b", Side::Bid), ("a", Side::Ask)] {
                    for (p, q) in levels(d.get(key).ok_or(())?).ok_or(())? {
                        changes.push((side, p, q));
                    }
                }
                Ok(Some(MdEvent::Depth {
                    sym,
                    exch_ms,
                    changes,
                }))
            }
            Some("trade") | Some("aggTrade") => {
                let num = |k: &str| d.get(k).and_then(Value::as_str).and_then(parse_dec);
                let (Some(price), Some(qty)) = (num("p"), num("q")) else {
                    return Err(());
                };
                let maker_buy = d.get("m").and_then(Value::as_bool).ok_or(())?;
                Ok(Some(MdEvent::Trade {
                    sym,
                    exch_ms,
                    price,
                    qty,
                    taker_buy: !maker_buy,
                }))
            }
            Some("bookTicker") | None if d.get("b").is_some_and(Value::is_string) => {
                Ok(Some(MdEvent::Ticker { sym, exch_ms }))
            }
            _ => Ok(None),
        }
    }
}

/// `[["p","q"],..]` as fixed point.
fn levels(v: &Value) -> Option<Vec<(i64, i64)>> {
    v.as_array()?
        .iter()
        .map(|l| {
            let l = l.as_array()?;
            Some((
                parse_dec(l.first()?.as_str()?)?,
                parse_dec(l.get(1)?.as_str()?)?,
            ))
        })
        .collect()
}

/// Milliseconds since the epoch as ISO 8601 with microseconds, `2021-04-17T16:43:37.075000Z`
/// (Coinbase's `time`).
pub(crate) fn iso_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        (ms % 1000) * 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_in_shortest_form() {
        assert_eq!(parse_dec("61800.20000000"), Some(6_180_020_000_000));
        assert_eq!(fmt_dec(6_180_020_000_000), "61800.2");
        assert_eq!(fmt_dec(parse_dec("0.0002").unwrap()), "0.0002");
        assert_eq!(fmt_dec(0), "0");
        assert_eq!(fmt_dec(parse_dec("30316").unwrap()), "30316");
        for bad in ["", "-1", "1e5", "0.123456789", ".5", "1.2.3"] {
            assert_eq!(parse_dec(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso_times() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(iso_time(1_618_677_817_075), "2021-04-17T16:43:37.075000Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn translates_binance_frames_and_skips_stale_diffs() {
        let mut t = Translator::new(&["BTCUSDT".into()]);
        assert_eq!(
            t.frame(br#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}}"#),
            Ok(None),
            "no snapshot yet"
        );
        let snap = t
            .snapshot(
                0,
                br#"{"lastUpdateId":10,"bids":[["1.5","2"]],"asks":[["2","1"]]}"#,
            )
            .unwrap();
        let mut m = Market::new(&["BTC-USDT".into()]);
        assert!(m.apply(&snap));
        assert_eq!(
            m.syms[0].best(),
            (
                Some((150_000_000, 200_000_000)),
                Some((200_000_000, 100_000_000))
            )
        );
        let stale = br#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":5,"s":"BTCUSDT","U":8,"u":10,"b":[],"a":[]}}"#;
        assert_eq!(t.frame(stale), Ok(None));
        let ev = t
            .frame(br#"{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":6,"s":"BTCUSDT","U":9,"u":11,"b":[["1.5","0"]],"a":[["2.1","3"]]}}"#)
            .unwrap()
            .unwrap();
        assert!(m.apply(&ev));
        assert_eq!(m.syms[0].best().0, None);
        let tr = t
            .frame(br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":7,"s":"BTCUSDT","t":1,"p":"2","q":"0.5","T":7,"m":true}}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(
            tr,
            MdEvent::Trade {
                taker_buy: false,
                ..
            }
        ));
        assert!(t.frame(b"not json").is_err());
        assert_eq!(t.frame(br#"{"result":null,"id":1}"#), Ok(None));
    }
}
