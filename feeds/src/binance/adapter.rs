//! Binance spot's [`Adapter`]: combined-stream URL, `SUBSCRIBE`/`UNSUBSCRIBE` requests, WebSocket
//! pings, REST depth snapshots bridged by `U <= lastUpdateId + 1 <= u`.

use super::market::BinanceDecoder;
use crate::venue::{
    json_string, Adapter, AnyDecoder, BookSync, DecodeError, DecodeStats, Decoded, Heartbeat,
    MarketDecoder, StreamKind,
};
use engine::event::Event;
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// Binance spot.
#[derive(Clone, Copy, Debug)]
pub struct BinanceSpot;

/// The one Binance spot adapter.
pub static BINANCE_SPOT: BinanceSpot = BinanceSpot;

impl Adapter for BinanceSpot {
    fn venue(&self) -> Venue {
        Venue::Binance
    }

    fn ws_url(&self) -> &'static str {
        "wss://stream.binance.com:9443/stream"
    }

    fn rest_url(&self) -> Option<&'static str> {
        Some("https://api.binance.com")
    }

    fn snapshot_url(&self, base: &str, symbol: &str, limit: u32) -> Option<String> {
        Some(format!(
            "{}/api/v3/depth?symbol={}&limit={limit}",
            base.trim_end_matches('/'),
            symbol.to_ascii_uppercase()
        ))
    }

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
        AnyDecoder::Binance(BinanceDecoder::new(symbols))
    }
}

/// Binance's `{"method":"<METHOD>","params":[...],"id":N}` (`SUBSCRIBE`, `UNSUBSCRIBE`); `None`
/// for no streams.
pub fn streams_request(method: &str, streams: &[String], id: u64) -> Option<String> {
    if streams.is_empty() {
        return None;
    }
    let params: Vec<String> = streams.iter().map(|s| json_string(s)).collect();
    Some(format!(
        r#"{{"method":"{method}","params":[{}],"id":{id}}}"#,
        params.join(",")
    ))
}

impl MarketDecoder for BinanceDecoder {
    fn venue(&self) -> Venue {
        BinanceDecoder::venue(self)
    }

    #[inline]
    fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        BinanceDecoder::decode(self, frame, recv_ns, out)
    }

    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        BinanceDecoder::decode_snapshot(self, body, symbol, recv_ns, out)
    }

    fn stats(&self) -> &DecodeStats {
        BinanceDecoder::stats(self)
    }

    fn symbols(&self) -> &SymbolTable {
        BinanceDecoder::symbols(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_is_binance_json() {
        let a = &BINANCE_SPOT;
        let streams = [
            a.stream(StreamKind::Trade, "BTCUSDT").unwrap(),
            "btcusdt@depth@100ms".to_string(),
        ];
        assert_eq!(
            a.subscribe(&streams, 3).unwrap(),
            vec![
                r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth@100ms"],"id":3}"#
            ]
        );
        assert_eq!(
            a.unsubscribe(&["a\"b\\c\n".into()], 1).unwrap(),
            vec![r#"{"method":"UNSUBSCRIBE","params":["a\"b\\c\u000a"],"id":1}"#]
        );
        assert!(a.subscribe(&[], 1).unwrap().is_empty());
        assert_eq!(
            a.snapshot_url("http://127.0.0.1:9/", "btcusdt", 1000)
                .unwrap(),
            "http://127.0.0.1:9/api/v3/depth?symbol=BTCUSDT&limit=1000"
        );
    }
}
