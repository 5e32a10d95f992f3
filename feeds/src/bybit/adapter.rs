//! Bybit v5's [`Adapter`]s, spot ([`BYBIT_SPOT`]) and linear ([`BYBIT_LINEAR`]): one public
//! WebSocket per category, `{"op":"subscribe","args":[..],"req_id":".."}` requests, a text
//! `{"op":"ping"}` heartbeat, and books that start from the WebSocket snapshot.
//!
//! Bybit's "Connect" page: the public streams are `wss://stream.bybit.com/v5/public/spot` and
//! `.../linear`; a client should send `{"op":"ping"}` every 20 seconds (the I/O loop's heartbeat
//! interval), answered by `{"success":true,"ret_msg":"pong",..,"op":"ping"}` (which the decoder
//! counts as `Ignored(Heartbeat)`). A spot subscribe request takes at most 10 `args`, and the
//! args of one request must stay under 21,000 characters: [`Adapter::subscribe`] splits the
//! streams into as many requests as that takes, with request ids `<id>` (one request) or
//! `<id>-1`, `<id>-2`, .. (several).

use super::market::BybitDecoder;
use crate::venue::{
    json_string, Adapter, AnyDecoder, BookSync, DecodeError, DecodeStats, Decoded, Heartbeat,
    MarketDecoder, StreamKind,
};
use engine::event::Event;
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// One Bybit v5 public category.
#[derive(Clone, Copy, Debug)]
pub struct Bybit {
    venue: Venue,
    url: &'static str,
    /// Most `args` in one request.
    max_args: usize,
}

/// Bybit v5 spot (`bybit-spot`).
pub static BYBIT_SPOT: Bybit = Bybit {
    venue: Venue::BybitSpot,
    url: "wss://stream.bybit.com/v5/public/spot",
    max_args: 10,
};

/// Bybit v5 USDT/USDC linear contracts (`bybit-linear`).
pub static BYBIT_LINEAR: Bybit = Bybit {
    venue: Venue::BybitLinear,
    url: "wss://stream.bybit.com/v5/public/linear",
    // No count limit is documented for linear; the length limit below still applies.
    max_args: usize::MAX,
};

/// Longest total length of the `args` of one request (Bybit: "21,000 characters").
const MAX_ARGS_CHARS: usize = 21_000;

/// The book depth [`Adapter::stream`] subscribes (`orderbook.50.<SYM>`, pushed every 20 ms).
pub const DEPTH: u32 = 50;

/// Bybit's public topic names (the part before the first dot).
const TOPICS: [&str; 9] = [
    "orderbook",
    "publicTrade",
    "tickers",
    "kline",
    "liquidation",
    "allLiquidation",
    "insurance",
    "priceLimit",
    "adlAlert",
];

/// Whether `s` is a Bybit public topic: a known name, a dot, then `[A-Za-z0-9._/-]+`; the
/// depth of `orderbook.<depth>.<SYM>` must be digits.
fn valid_topic(s: &str) -> bool {
    let Some((name, rest)) = s.split_once('.') else {
        return false;
    };
    let rest_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    let depth_ok = name != "orderbook"
        || rest.split_once('.').is_some_and(|(d, sym)| {
            !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) && !sym.is_empty()
        });
    TOPICS.contains(&name) && rest_ok && depth_ok
}

impl Bybit {
    /// `{"op":"<op>","args":[..],"req_id":".."}` frames for `streams`, split per the limits.
    fn requests(&self, op: &str, streams: &[String], id: u64) -> Result<Vec<String>, String> {
        if let Some(bad) = streams.iter().find(|s| !valid_topic(s)) {
            return Err(format!(
                "not a Bybit topic: {bad:?} (expected orderbook.<depth>.<SYMBOL>, \
                 publicTrade.<SYMBOL>, tickers.<SYMBOL>, kline.<interval>.<SYMBOL>, ..)"
            ));
        }
        let mut chunks: Vec<Vec<String>> = Vec::new();
        let mut chars = 0;
        for s in streams {
            let arg = json_string(s);
            match chunks.last_mut() {
                Some(c) if c.len() < self.max_args && chars + arg.len() <= MAX_ARGS_CHARS => {
                    chars += arg.len();
                    c.push(arg);
                }
                _ => {
                    chars = arg.len();
                    chunks.push(vec![arg]);
                }
            }
        }
        let several = chunks.len() > 1;
        Ok(chunks
            .iter()
            .enumerate()
            .map(|(k, args)| {
                let req_id = if several {
                    format!("{id}-{}", k + 1)
                } else {
                    id.to_string()
                };
                format!(
                    r#"{{"op":"{op}","args":[{}],"req_id":"{req_id}"}}"#,
                    args.join(",")
                )
            })
            .collect())
    }
}

impl Adapter for Bybit {
    fn venue(&self) -> Venue {
        self.venue
    }

    fn ws_url(&self) -> &'static str {
        self.url
    }

    fn rest_url(&self) -> Option<&'static str> {
        None
    }

    fn snapshot_url(&self, _base: &str, _symbol: &str, _limit: u32) -> Option<String> {
        None
    }

    /// `publicTrade.<SYM>`, `orderbook.50.<SYM>`, and on linear `tickers.<SYM>`. Spot tickers
    /// carry no best bid/ask (spot's best bid/ask is `orderbook.1`, a depth stream), and Bybit
    /// has no aggregated trades: `None`.
    fn stream(&self, kind: StreamKind, symbol: &str) -> Option<String> {
        let s = symbol.to_ascii_uppercase();
        match kind {
            StreamKind::Trade => Some(format!("publicTrade.{s}")),
            StreamKind::Depth => Some(format!("orderbook.{DEPTH}.{s}")),
            StreamKind::BookTicker if self.venue == Venue::BybitLinear => {
                Some(format!("tickers.{s}"))
            }
            StreamKind::BookTicker | StreamKind::AggTrade => None,
        }
    }

    fn subscribe(&self, streams: &[String], id: u64) -> Result<Vec<String>, String> {
        self.requests("subscribe", streams, id)
    }

    fn unsubscribe(&self, streams: &[String], id: u64) -> Result<Vec<String>, String> {
        self.requests("unsubscribe", streams, id)
    }

    fn heartbeat(&self) -> Heartbeat {
        Heartbeat::Text(r#"{"op":"ping"}"#)
    }

    fn book_sync(&self) -> BookSync {
        BookSync::WsSnapshot
    }

    fn decoder(&self, symbols: SymbolTable) -> AnyDecoder {
        AnyDecoder::Bybit(BybitDecoder::new(self.venue, symbols))
    }
}

impl MarketDecoder for BybitDecoder {
    fn venue(&self) -> Venue {
        BybitDecoder::venue(self)
    }

    #[inline]
    fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        BybitDecoder::decode(self, frame, recv_ns, out)
    }

    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        BybitDecoder::decode_snapshot(self, body, symbol, recv_ns, out)
    }

    fn stats(&self) -> &DecodeStats {
        BybitDecoder::stats(self)
    }

    fn symbols(&self) -> &SymbolTable {
        BybitDecoder::symbols(self)
    }

    fn reset(&mut self) {
        BybitDecoder::reset(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_requests() {
        let a = &BYBIT_SPOT;
        assert_eq!(a.ws_url(), "wss://stream.bybit.com/v5/public/spot");
        assert_eq!(
            BYBIT_LINEAR.ws_url(),
            "wss://stream.bybit.com/v5/public/linear"
        );
        assert_eq!(a.book_sync(), BookSync::WsSnapshot);
        assert_eq!(a.heartbeat(), Heartbeat::Text("{\"op\":\"ping\"}"));
        assert_eq!(a.snapshot_url("https://x", "BTCUSDT", 50), None);
        assert_eq!(
            a.stream(StreamKind::Depth, "btcusdt").unwrap(),
            "orderbook.50.BTCUSDT"
        );
        assert_eq!(
            a.stream(StreamKind::Trade, "BTCUSDT").unwrap(),
            "publicTrade.BTCUSDT"
        );
        assert_eq!(a.stream(StreamKind::BookTicker, "BTCUSDT"), None);
        assert_eq!(a.stream(StreamKind::AggTrade, "BTCUSDT"), None);
        assert_eq!(
            BYBIT_LINEAR
                .stream(StreamKind::BookTicker, "BTCUSDT")
                .unwrap(),
            "tickers.BTCUSDT"
        );
        let streams = ["orderbook.50.BTCUSDT".to_string(), "tickers.BTCUSDT".into()];
        assert_eq!(
            a.subscribe(&streams, 7).unwrap(),
            vec![
                r#"{"op":"subscribe","args":["orderbook.50.BTCUSDT","tickers.BTCUSDT"],"req_id":"7"}"#
            ]
        );
        assert_eq!(
            a.unsubscribe(&streams[..1], 8).unwrap(),
            vec![r#"{"op":"unsubscribe","args":["orderbook.50.BTCUSDT"],"req_id":"8"}"#]
        );
        assert!(a.subscribe(&[], 1).unwrap().is_empty());
    }

    #[test]
    fn spot_requests_take_at_most_ten_args() {
        let streams: Vec<String> = (0..23).map(|i| format!("publicTrade.S{i}USDT")).collect();
        let spot = BYBIT_SPOT.subscribe(&streams, 5).unwrap();
        assert_eq!(spot.len(), 3);
        let mut all = Vec::new();
        for (k, f) in spot.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            assert_eq!(v["op"], "subscribe");
            assert_eq!(v["req_id"], format!("5-{}", k + 1));
            let args = v["args"].as_array().unwrap();
            assert!(args.len() <= 10);
            all.extend(args.iter().map(|a| a.as_str().unwrap().to_string()));
        }
        assert_eq!(all, streams, "every stream once, in order");
        // Linear has no count limit, only the length limit.
        assert_eq!(BYBIT_LINEAR.subscribe(&streams, 5).unwrap().len(), 1);
        let long: Vec<String> = (0..2000)
            .map(|i| format!("orderbook.50.S{i:05}USDT"))
            .collect();
        let frames = BYBIT_LINEAR.subscribe(&long, 1).unwrap();
        assert!(frames.len() > 1);
        let mut n = 0;
        for f in &frames {
            let v: serde_json::Value = serde_json::from_str(f).unwrap();
            let args = v["args"].as_array().unwrap();
            let chars: usize = args.iter().map(|a| a.as_str().unwrap().len() + 2).sum();
            assert!(chars <= MAX_ARGS_CHARS + args.len());
            n += args.len();
        }
        assert_eq!(n, long.len());
    }

    #[test]
    fn unknown_streams_are_refused_by_name() {
        for bad in [
            "btcusdt@trade",
            "orderbook.BTCUSDT",
            "orderbook.x.BTCUSDT",
            "trades.BTCUSDT",
            "tickers.",
            "tickers.BTC\"USDT",
            "",
        ] {
            let e = BYBIT_SPOT
                .subscribe(&["publicTrade.BTCUSDT".into(), bad.into()], 1)
                .unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        for good in [
            "kline.1.BTCUSDT",
            "allLiquidation.BTCUSDT",
            "orderbook.1.BTCUSDT",
        ] {
            assert!(BYBIT_SPOT.subscribe(&[good.into()], 1).is_ok(), "{good}");
        }
    }

    #[test]
    fn decoders_belong_to_their_venue() {
        let mut t = SymbolTable::new();
        t.intern_on(Venue::BybitSpot, "BTCUSDT").unwrap();
        assert_eq!(BYBIT_SPOT.decoder(t.clone()).venue(), Venue::BybitSpot);
        assert_eq!(BYBIT_LINEAR.decoder(t).venue(), Venue::BybitLinear);
        assert_eq!(
            crate::venue::adapter(Venue::BybitLinear).unwrap().venue(),
            Venue::BybitLinear
        );
        assert_eq!(
            crate::venue::adapter(Venue::BybitSpot).unwrap().ws_url(),
            BYBIT_SPOT.url
        );
    }
}
