//! Coinbase Exchange's [`Adapter`]: one public WebSocket URL, `subscribe`/`unsubscribe`
//! messages by channel, WebSocket pings, and books that start from the `snapshot` the
//! `level2` channel sends after subscribing.
//!
//! **Streams** are written `<channel>:<product>`: `level2:BTC-USD` (depth), `matches:BTC-USD`
//! (trades), `ticker:BTC-USD` (best bid and ask), plus `level2_batch:` (the same `snapshot` and
//! `l2update` messages, batched by the venue) and `heartbeat:` (see below). Product ids are
//! upper-cased. [`Adapter::subscribe`] groups the streams by channel, one frame per channel in
//! the order the channels first appear, products in their order without repeats:
//! `{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channels":["level2"]}` (the shape the
//! capture's recorder sent). The request id is not used: Coinbase answers every subscribe and
//! unsubscribe with a `subscriptions` message listing what is subscribed
//! (`Ignored(Response)`).
//!
//! **Heartbeat.** [`Heartbeat::WsPing`]: Coinbase answers WebSocket pings. The alternative is
//! Coinbase's own `heartbeat` channel (subscribe `heartbeat:BTC-USD`): one
//! `{"type":"heartbeat","sequence":..,"last_trade_id":..,"product_id":..,"time":..}` a second
//! per product, which keeps data flowing on a quiet product; the decoder counts those frames
//! as `Ignored(Heartbeat)` and draws nothing from them.
//!
//! **Book sync.** [`BookSync::WsSnapshot`]: `level2` sends one `snapshot` per product after
//! subscribing and then every change (see [`super::market`] for how they are numbered). A
//! resync is an `unsubscribe` and `subscribe` of the product's `level2` stream, which makes
//! Coinbase send a fresh snapshot. There is no REST snapshot URL.

use super::market::CoinbaseDecoder;
use crate::venue::{
    json_string, Adapter, AnyDecoder, BookSync, DecodeError, DecodeStats, Decoded, Heartbeat,
    MarketDecoder, StreamKind,
};
use engine::event::Event;
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// Coinbase Exchange.
#[derive(Clone, Copy, Debug)]
pub struct Coinbase;

/// The one Coinbase adapter.
pub static COINBASE: Coinbase = Coinbase;

/// Channels a stream may name.
const CHANNELS: [&str; 5] = ["level2", "level2_batch", "matches", "ticker", "heartbeat"];

impl Adapter for Coinbase {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }

    fn ws_url(&self) -> &'static str {
        "wss://ws-feed.exchange.coinbase.com"
    }

    fn rest_url(&self) -> Option<&'static str> {
        None
    }

    fn snapshot_url(&self, _base: &str, _symbol: &str, _limit: u32) -> Option<String> {
        None
    }

    fn stream(&self, kind: StreamKind, symbol: &str) -> Option<String> {
        let channel = match kind {
            StreamKind::Trade => "matches",
            StreamKind::BookTicker => "ticker",
            StreamKind::Depth => "level2",
            StreamKind::AggTrade => return None,
        };
        Some(format!("{channel}:{}", symbol.to_ascii_uppercase()))
    }

    fn subscribe(&self, streams: &[String], _id: u64) -> Result<Vec<String>, String> {
        requests("subscribe", streams)
    }

    fn unsubscribe(&self, streams: &[String], _id: u64) -> Result<Vec<String>, String> {
        requests("unsubscribe", streams)
    }

    fn heartbeat(&self) -> Heartbeat {
        Heartbeat::WsPing
    }

    fn book_sync(&self) -> BookSync {
        BookSync::WsSnapshot
    }

    fn decoder(&self, symbols: SymbolTable) -> AnyDecoder {
        AnyDecoder::Coinbase(CoinbaseDecoder::new(symbols))
    }
}

/// `channel:product` split and checked.
fn parse_stream(s: &str) -> Result<(&'static str, String), String> {
    let (channel, product) = s
        .split_once(':')
        .ok_or_else(|| format!("coinbase stream {s:?} is not <channel>:<product>"))?;
    let channel = CHANNELS
        .into_iter()
        .find(|c| *c == channel)
        .ok_or_else(|| {
            format!(
                "coinbase stream {s:?}: unknown channel {channel:?} (one of {})",
                CHANNELS.join(", ")
            )
        })?;
    let product = product.to_ascii_uppercase();
    if product.is_empty() || !product.bytes().all(|b| Venue::Coinbase.symbol_byte_ok(b)) {
        return Err(format!("coinbase stream {s:?}: bad product id {product:?}"));
    }
    Ok((channel, product))
}

/// One `{"type":<kind>,"product_ids":[..],"channels":[<channel>]}` per channel.
fn requests(kind: &str, streams: &[String]) -> Result<Vec<String>, String> {
    let mut groups: Vec<(&'static str, Vec<String>)> = Vec::new();
    for s in streams {
        let (channel, product) = parse_stream(s)?;
        let i = match groups.iter().position(|(c, _)| *c == channel) {
            Some(i) => i,
            None => {
                groups.push((channel, Vec::new()));
                groups.len() - 1
            }
        };
        if let Some((_, products)) = groups.get_mut(i) {
            if !products.contains(&product) {
                products.push(product);
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|(channel, products)| {
            let ids: Vec<String> = products.iter().map(|p| json_string(p)).collect();
            format!(
                r#"{{"type":"{kind}","product_ids":[{}],"channels":["{channel}"]}}"#,
                ids.join(",")
            )
        })
        .collect())
}

impl MarketDecoder for CoinbaseDecoder {
    fn venue(&self) -> Venue {
        Venue::Coinbase
    }

    #[inline]
    fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        CoinbaseDecoder::decode(self, frame, recv_ns, out)
    }

    /// Coinbase books start from the socket's `snapshot`: there is no REST body to decode, and
    /// every body is refused ([`DecodeError::MissingField`] `"snapshot"`, counted).
    fn decode_snapshot(
        &mut self,
        _body: &[u8],
        _symbol: SymbolId,
        _recv_ns: u64,
        _out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        CoinbaseDecoder::refuse_rest_snapshot(self)
    }

    fn stats(&self) -> &DecodeStats {
        CoinbaseDecoder::stats(self)
    }

    fn symbols(&self) -> &SymbolTable {
        CoinbaseDecoder::symbols(self)
    }

    fn reset(&mut self) {
        CoinbaseDecoder::reset(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_groups_by_channel() {
        let a = &COINBASE;
        assert_eq!(a.ws_url(), "wss://ws-feed.exchange.coinbase.com");
        assert_eq!(a.book_sync(), BookSync::WsSnapshot);
        assert_eq!(a.heartbeat(), Heartbeat::WsPing);
        assert_eq!(a.snapshot_url("https://x", "BTC-USD", 10), None);
        let streams: Vec<String> = [
            a.stream(StreamKind::Depth, "btc-usd").unwrap(),
            a.stream(StreamKind::Trade, "BTC-USD").unwrap(),
            "level2:ETH-USD".into(),
            a.stream(StreamKind::BookTicker, "BTC-USD").unwrap(),
            "level2:BTC-USD".into(),
        ]
        .into();
        assert_eq!(streams[0], "level2:BTC-USD");
        assert_eq!(a.stream(StreamKind::AggTrade, "BTC-USD"), None);
        assert_eq!(
            a.subscribe(&streams, 1).unwrap(),
            vec![
                r#"{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channels":["level2"]}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches"]}"#,
                r#"{"type":"subscribe","product_ids":["BTC-USD"],"channels":["ticker"]}"#,
            ]
        );
        assert_eq!(
            a.unsubscribe(&["level2:BTC-USD".into()], 2).unwrap(),
            vec![r#"{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2"]}"#]
        );
        assert!(a.subscribe(&[], 1).unwrap().is_empty());
    }

    #[test]
    fn bad_streams_are_named() {
        let a = &COINBASE;
        for bad in [
            "level2",
            "full:BTC-USD",
            "level2:",
            "ticker:BTC USD",
            "btcusdt@trade",
        ] {
            let e = a.subscribe(&[bad.into()], 1).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn rest_snapshots_are_refused_and_counted() {
        let mut d = COINBASE.decoder(SymbolTable::new());
        assert_eq!(d.venue(), Venue::Coinbase);
        let mut out = Vec::new();
        assert!(d.decode_snapshot(b"{}", SymbolId(0), 1, &mut out).is_err());
        assert!(out.is_empty());
        assert_eq!(d.stats().decode_errors, 1);
        assert_eq!(d.stats().messages, 1);
    }
}
