//! OKX's [`Adapter`]: the v5 public WebSocket, `{"op":"subscribe","args":[..]}` requests, text
//! `ping` heartbeats, books that start from a WebSocket snapshot (or a REST one bridged by
//! `prevSeqId <= seqId(snapshot) < seqId`).

use super::market::OkxDecoder;
use crate::venue::{
    json_string, Adapter, AnyDecoder, BookSync, DecodeError, DecodeStats, Decoded, Heartbeat,
    MarketDecoder, StreamKind,
};
use engine::event::Event;
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// OKX v5.
#[derive(Clone, Copy, Debug)]
pub struct Okx;

/// The one OKX adapter.
pub static OKX: Okx = Okx;

/// Most levels the REST `books` endpoint returns (`sz`).
pub const REST_BOOK_MAX: u32 = 400;

impl Adapter for Okx {
    fn venue(&self) -> Venue {
        Venue::Okx
    }

    fn ws_url(&self) -> &'static str {
        "wss://ws.okx.com:8443/ws/v5/public"
    }

    fn rest_url(&self) -> Option<&'static str> {
        Some("https://www.okx.com")
    }

    /// `GET /api/v5/market/books?instId=..&sz=..` (`sz` clamped to 1..=400).
    fn snapshot_url(&self, base: &str, symbol: &str, limit: u32) -> Option<String> {
        Some(format!(
            "{}/api/v5/market/books?instId={}&sz={}",
            base.trim_end_matches('/'),
            symbol.to_ascii_uppercase(),
            limit.clamp(1, REST_BOOK_MAX)
        ))
    }

    /// `trades:BTC-USDT`, `tickers:BTC-USDT`, `books:BTC-USDT` (channel, a colon, the `instId`);
    /// OKX has no aggregated-trade channel.
    fn stream(&self, kind: StreamKind, symbol: &str) -> Option<String> {
        let s = symbol.to_ascii_uppercase();
        Some(match kind {
            StreamKind::Trade => format!("trades:{s}"),
            StreamKind::BookTicker => format!("tickers:{s}"),
            StreamKind::Depth => format!("books:{s}"),
            StreamKind::AggTrade => return None,
        })
    }

    fn subscribe(&self, streams: &[String], _id: u64) -> Result<Vec<String>, String> {
        op_request("subscribe", streams).map(|r| r.into_iter().collect())
    }

    fn unsubscribe(&self, streams: &[String], _id: u64) -> Result<Vec<String>, String> {
        op_request("unsubscribe", streams).map(|r| r.into_iter().collect())
    }

    /// The text `ping` (OKX answers `pong`, and closes a connection after 30 s of silence).
    fn heartbeat(&self) -> Heartbeat {
        Heartbeat::Text("ping")
    }

    fn book_sync(&self) -> BookSync {
        BookSync::WsSnapshot
    }

    fn decoder(&self, symbols: SymbolTable) -> AnyDecoder {
        AnyDecoder::Okx(OkxDecoder::new(symbols))
    }
}

/// `{"op":"<op>","args":[{"channel":..,"instId":..},..]}`; `None` for no streams. A stream not
/// written `channel:instId` is an error naming it.
pub fn op_request(op: &str, streams: &[String]) -> Result<Option<String>, String> {
    if streams.is_empty() {
        return Ok(None);
    }
    let mut args = Vec::with_capacity(streams.len());
    for s in streams {
        match s.split_once(':') {
            Some((channel, inst)) if !channel.is_empty() && !inst.is_empty() => args.push(format!(
                r#"{{"channel":{},"instId":{}}}"#,
                json_string(channel),
                json_string(inst)
            )),
            _ => {
                return Err(format!(
                    "OKX stream `{s}` is not `channel:instId` (e.g. `books:BTC-USDT`)"
                ))
            }
        }
    }
    Ok(Some(format!(
        r#"{{"op":"{op}","args":[{}]}}"#,
        args.join(",")
    )))
}

impl MarketDecoder for OkxDecoder {
    fn venue(&self) -> Venue {
        Venue::Okx
    }

    #[inline]
    fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        OkxDecoder::decode(self, frame, recv_ns, out)
    }

    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        OkxDecoder::decode_snapshot(self, body, symbol, recv_ns, out)
    }

    fn stats(&self) -> &DecodeStats {
        OkxDecoder::stats(self)
    }

    fn symbols(&self) -> &SymbolTable {
        OkxDecoder::symbols(self)
    }

    /// Nothing to forget: with `seqId`s every snapshot carries its own id, and the decoder's own
    /// numbering (frames without `seqId`) keeps counting up across connections, so ids never
    /// repeat and a new connection's snapshot starts the chain afresh either way.
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_is_okx_json() {
        let a = &OKX;
        let streams = [
            a.stream(StreamKind::Depth, "btc-usdt").unwrap(),
            a.stream(StreamKind::Trade, "BTC-USD-SWAP").unwrap(),
            a.stream(StreamKind::BookTicker, "BTC-USD-220527").unwrap(),
        ];
        assert_eq!(a.stream(StreamKind::AggTrade, "BTC-USDT"), None);
        assert_eq!(
            a.subscribe(&streams, 7).unwrap(),
            vec![
                r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"trades","instId":"BTC-USD-SWAP"},{"channel":"tickers","instId":"BTC-USD-220527"}]}"#
            ]
        );
        assert_eq!(
            a.unsubscribe(&["books:BTC-USDT".into()], 1).unwrap(),
            vec![r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#]
        );
        assert!(a.subscribe(&[], 1).unwrap().is_empty());
        let err = a.subscribe(&["btcusdt@trade".into()], 1).unwrap_err();
        assert!(err.contains("btcusdt@trade"), "{err}");
        assert!(a.subscribe(&[":BTC-USDT".into()], 1).is_err());
        assert_eq!(a.heartbeat(), Heartbeat::Text("ping"));
        assert_eq!(a.book_sync(), BookSync::WsSnapshot);
        assert_eq!(
            a.snapshot_url("https://www.okx.com/", "BTC-USDT", 5000)
                .unwrap(),
            "https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400"
        );
        assert_eq!(a.ws_url(), "wss://ws.okx.com:8443/ws/v5/public");
    }
}
