//! Which venue each record of a capture belongs to, and which instruments a capture names.
//!
//! A replay decodes each frame with its connection's venue's decoder. [`VenueRouter`] follows
//! one capture's records in order: a [`RecordKind::Connect`] names its connection's venue by
//! URL ([`venue_of_url`]); a connection whose URL names none (a simulator on `127.0.0.1`) or
//! that was never announced (every line of an hftbacktest line capture) belongs to the
//! router's default venue (`tickline replay --venue`, else Binance spot). A
//! [`RecordKind::Rest`] record belongs to its own URL's venue, falling back to its
//! connection's.
//!
//! [`symbols_named`] reads the instruments a record names (the subscription requests, the
//! Binance stream URL, a REST depth URL, a `.tlc` snapshot's symbol), so a replay can intern
//! them on their venue before it starts. Cold path: it may allocate.

use super::replay::ReplayRecord;
use super::tlc::RecordKind;
use crate::venue::{rest_snapshot_symbol, venue_of_url};
use engine::venue::Venue;
use std::collections::HashMap;

/// Follows one capture's connections to tell each record's venue (see the
/// [module docs](self)).
#[derive(Clone, Debug)]
pub struct VenueRouter {
    default: Venue,
    /// True when the default was given by the user (`--venue`), not assumed.
    explicit: bool,
    conns: HashMap<u32, Venue>,
    last: Option<(u32, Venue)>,
}

impl VenueRouter {
    /// A router whose unnamed connections belong to `default` (`Some`: given by the user;
    /// `None`: Binance spot, or the exchange a cryptofeed v3 header names).
    pub fn new(default: Option<Venue>) -> Self {
        Self {
            default: default.unwrap_or(Venue::Binance),
            explicit: default.is_some(),
            // Room for the connections of ordinary captures: none allocated while replaying.
            conns: HashMap::with_capacity(32),
            last: None,
        }
    }

    /// The venue of connections that name none.
    pub fn default_venue(&self) -> Venue {
        self.default
    }

    /// Takes note of a record: a connect names its connection's venue; a cryptofeed v3
    /// header's `exchange` sets the default (unless the user gave one) where it names a single
    /// venue. Returns the venue a connect assigned, if it was one.
    pub fn observe(&mut self, rec: &ReplayRecord<'_>) -> Option<Venue> {
        match rec.kind {
            RecordKind::Connect => {
                let v = std::str::from_utf8(rec.payload)
                    .ok()
                    .and_then(venue_of_url)
                    .unwrap_or(self.default);
                self.conns.insert(rec.conn_id, v);
                self.last = None;
                Some(v)
            }
            RecordKind::Meta if !self.explicit => {
                if let Some(v) = header_exchange(rec.payload) {
                    self.default = v;
                }
                None
            }
            _ => None,
        }
    }

    /// The venue of connection `conn`.
    #[inline]
    pub fn venue_of_conn(&mut self, conn: u32) -> Venue {
        if let Some((c, v)) = self.last {
            if c == conn {
                return v;
            }
        }
        let v = self.conns.get(&conn).copied().unwrap_or(self.default);
        self.last = Some((conn, v));
        v
    }

    /// The venue of a record: its URL's for a REST response, else its connection's.
    #[inline]
    pub fn venue_of(&mut self, rec: &ReplayRecord<'_>) -> Venue {
        if rec.kind == RecordKind::Rest {
            if let Some(v) = rec
                .url()
                .and_then(|u| std::str::from_utf8(u).ok())
                .and_then(venue_of_url)
            {
                return v;
            }
        }
        self.venue_of_conn(rec.conn_id)
    }
}

/// The venue a cryptofeed v3 header's `exchange` names, where it names exactly one.
fn header_exchange(json: &[u8]) -> Option<Venue> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    match v.get("exchange")?.as_str()? {
        "BINANCE" => Some(Venue::Binance),
        "BINANCE_FUTURES" => Some(Venue::BinanceUsdm),
        "COINBASE" => Some(Venue::Coinbase),
        "OKX" | "OKEX" => Some(Venue::Okx),
        _ => None, // BYBIT: spot or linear, said per connection
    }
}

/// The instruments `rec` names on `venue`, as the venue spells them: the symbols of a Binance
/// stream URL (`?streams=btcusdt@trade/...` or `/ws/btcusdt@trade`, upper-cased), of a
/// subscription request (Binance `params`, OKX `args[].instId`, Bybit `args` topics'
/// last part, Coinbase `product_ids`), a REST depth URL's, and a `.tlc` snapshot's symbol.
pub fn symbols_named(venue: Venue, rec: &ReplayRecord<'_>) -> Vec<String> {
    let mut out = Vec::new();
    match rec.kind {
        RecordKind::Connect => {
            if let Ok(url) = std::str::from_utf8(rec.payload) {
                binance_url_symbols(venue, url, &mut out);
            }
        }
        RecordKind::Subscribe => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rec.payload) {
                request_symbols(venue, &v, &mut out);
            }
        }
        RecordKind::Rest => {
            if let Some(s) = rec
                .url()
                .and_then(|u| std::str::from_utf8(u).ok())
                .and_then(rest_snapshot_symbol)
            {
                out.push(s.to_string());
            }
        }
        RecordKind::Snapshot => {
            if let Some(s) = rec.symbol.and_then(|s| std::str::from_utf8(s).ok()) {
                out.push(s.to_string());
            }
        }
        _ => {}
    }
    out.retain(|s| !s.is_empty() && s.bytes().all(|b| venue.symbol_byte_ok(b)));
    out.sort();
    out.dedup();
    out
}

fn is_binance(venue: Venue) -> bool {
    matches!(venue, Venue::Binance | Venue::BinanceUsdm)
}

/// `btcusdt@depth@100ms` -> `BTCUSDT`.
fn binance_stream_symbol(stream: &str) -> Option<String> {
    let (sym, _) = stream.split_once('@')?;
    Some(sym.to_ascii_uppercase())
}

fn binance_url_symbols(venue: Venue, url: &str, out: &mut Vec<String>) {
    if !is_binance(venue) {
        return;
    }
    if let Some(streams) = crate::venue::url::query_param(url, "streams") {
        out.extend(streams.split('/').filter_map(binance_stream_symbol));
    } else if let Some((_, last)) = url.split('?').next().and_then(|p| p.rsplit_once('/')) {
        out.extend(binance_stream_symbol(last));
    }
}

fn request_symbols(venue: Venue, v: &serde_json::Value, out: &mut Vec<String>) {
    let strings = |x: Option<&serde_json::Value>| -> Vec<String> {
        x.and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    match venue {
        Venue::Binance | Venue::BinanceUsdm => {
            out.extend(
                strings(v.get("params"))
                    .iter()
                    .filter_map(|s| binance_stream_symbol(s)),
            );
        }
        Venue::Okx => {
            if let Some(args) = v.get("args").and_then(|a| a.as_array()) {
                out.extend(
                    args.iter()
                        .filter_map(|a| a.get("instId")?.as_str().map(str::to_string)),
                );
            }
        }
        Venue::BybitSpot | Venue::BybitLinear => {
            out.extend(
                strings(v.get("args"))
                    .iter()
                    .filter_map(|t| t.rsplit_once('.').map(|(_, s)| s.to_string())),
            );
        }
        Venue::Coinbase => {
            out.extend(strings(v.get("product_ids")));
            if let Some(chans) = v.get("channels").and_then(|c| c.as_array()) {
                for c in chans {
                    out.extend(strings(c.get("product_ids")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(
        kind: RecordKind,
        conn_id: u32,
        symbol: Option<&'a [u8]>,
        payload: &'a [u8],
    ) -> ReplayRecord<'a> {
        ReplayRecord {
            recv_ns: 1,
            conn_id,
            kind,
            symbol,
            payload,
        }
    }

    #[test]
    fn connections_rest_and_defaults() {
        let mut r = VenueRouter::new(None);
        assert_eq!(r.venue_of_conn(0), Venue::Binance);
        let c = rec(
            RecordKind::Connect,
            2,
            None,
            b"wss://stream.bybit.com/v5/public/spot",
        );
        assert_eq!(r.observe(&c), Some(Venue::BybitSpot));
        let c = rec(
            RecordKind::Connect,
            3,
            None,
            b"wss://stream.bybit.com/v5/public/linear",
        );
        assert_eq!(r.observe(&c), Some(Venue::BybitLinear));
        assert_eq!(r.venue_of_conn(2), Venue::BybitSpot);
        assert_eq!(r.venue_of_conn(3), Venue::BybitLinear);
        assert_eq!(r.venue_of_conn(2), Venue::BybitSpot);
        let rest = rec(
            RecordKind::Rest,
            0,
            Some(b"https://www.okx.com/api/v5/market/books?instId=BTC-USDT"),
            b"{}",
        );
        assert_eq!(r.venue_of(&rest), Venue::Okx);
        // A simulator URL belongs to the default; a header sets the default unless given.
        let mut r = VenueRouter::new(None);
        r.observe(&rec(
            RecordKind::Meta,
            0,
            None,
            b"{\"t\":\"header\",\"exchange\":\"OKX\"}",
        ));
        assert_eq!(r.default_venue(), Venue::Okx);
        let c = rec(RecordKind::Connect, 1, None, b"ws://127.0.0.1:9000/ws");
        assert_eq!(r.observe(&c), Some(Venue::Okx));
        let mut r = VenueRouter::new(Some(Venue::BinanceUsdm));
        r.observe(&rec(RecordKind::Meta, 0, None, b"{\"exchange\":\"OKX\"}"));
        assert_eq!(r.venue_of_conn(9), Venue::BinanceUsdm);
    }

    #[test]
    fn symbols_of_requests_urls_and_snapshots() {
        let s = |venue, kind, symbol: Option<&[u8]>, payload: &[u8]| {
            symbols_named(venue, &rec(kind, 1, symbol, payload))
        };
        assert_eq!(
            s(Venue::Binance, RecordKind::Connect, None, b"wss://stream.binance.com:9443/stream?streams=dotusdt@depth@100ms/btcusdt@depth@100ms/btcusdt@aggTrade"),
            ["BTCUSDT", "DOTUSDT"]
        );
        assert_eq!(
            s(
                Venue::Binance,
                RecordKind::Connect,
                None,
                b"wss://stream.binance.com:9443/ws/ethusdt@trade"
            ),
            ["ETHUSDT"]
        );
        assert_eq!(
            s(
                Venue::Binance,
                RecordKind::Subscribe,
                None,
                b"{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@trade\"],\"id\":1}"
            ),
            ["BTCUSDT"]
        );
        assert_eq!(
            s(Venue::Okx, RecordKind::Subscribe, None, b"{\"op\":\"subscribe\",\"args\":[{\"channel\":\"tickers\",\"instId\":\"BTC-USD-220527\"},{\"channel\":\"books\",\"instId\":\"BTC-USDT\"}]}"),
            ["BTC-USD-220527", "BTC-USDT"]
        );
        assert_eq!(
            s(
                Venue::BybitLinear,
                RecordKind::Subscribe,
                None,
                b"{\"op\":\"subscribe\",\"args\":[\"orderbook.200.BTCUSDT\",\"tickers.ETHUSDT\"]}"
            ),
            ["BTCUSDT", "ETHUSDT"]
        );
        assert_eq!(
            s(Venue::Coinbase, RecordKind::Subscribe, None, b"{\"type\":\"subscribe\",\"product_ids\":[\"SKL-USD\"],\"channels\":[\"level2\",{\"name\":\"ticker\",\"product_ids\":[\"BTC-USD\"]}]}"),
            ["BTC-USD", "SKL-USD"]
        );
        assert_eq!(
            s(
                Venue::Binance,
                RecordKind::Rest,
                Some(b"https://www.binance.com/api/v1/depth?symbol=DOTUSDT&limit=1000"),
                b"{}"
            ),
            ["DOTUSDT"]
        );
        assert_eq!(
            s(
                Venue::Binance,
                RecordKind::Snapshot,
                Some(b"ETHUSDT"),
                b"{}"
            ),
            ["ETHUSDT"]
        );
        // Not JSON, or a name the venue cannot have: nothing.
        assert!(s(Venue::Okx, RecordKind::Subscribe, None, b"nope").is_empty());
        assert!(s(
            Venue::Binance,
            RecordKind::Snapshot,
            Some(b"BTC-USD"),
            b"{}"
        )
        .is_empty());
        assert!(s(Venue::Binance, RecordKind::TextFrame, None, b"{}").is_empty());
    }
}
