//! The adapter model: one value per venue that knows its URLs, how to subscribe and
//! unsubscribe, its heartbeat, its decoder and its book-sync rule, so that the I/O loop,
//! reconnects, recording and replay stay venue-agnostic.
//!
//! | piece | what it is | hot path? |
//! |---|---|---|
//! | [`Adapter`] | a venue's protocol facts and request builders (`&'static`, one per [`Venue`]: [`adapter`]) | no: connect, subscribe, heartbeat timers |
//! | [`MarketDecoder`] | frames to `Event`s, per venue | yes |
//! | [`AnyDecoder`] | every venue's decoder behind one `enum` (static dispatch, no `dyn` on the frame path) | yes |
//! | [`BookSync`] | how a venue's book starts and stays in sync, and how its ids map onto the book's `(first, final)` update ids | documentation and the snapshot fetcher |
//!
//! **Streams.** A feed subscribes to venue-native stream names, written the way each adapter
//! documents ([`Adapter::stream`] builds them from a [`StreamKind`] and a symbol): Binance
//! `btcusdt@trade`, OKX `trades:BTC-USDT`, Bybit `publicTrade.BTCUSDT`, Coinbase
//! `matches:BTC-USD`. [`Adapter::subscribe`] turns a list of them into the text frames the venue
//! wants after every (re)connect.
//!
//! **Sequence ids.** Every venue's depth messages reach the core as
//! [`DepthLevel`](engine::event::DepthLevel)s whose `first_update_id() - 1` is the id the message
//! continues from and whose `final_update_id` is its own id, so one book procedure
//! ([`engine::book`]) serves them all: Binance spot sends `U`/`u` directly; Binance USD-M's `pu`,
//! OKX's `prevSeqId`/`seqId` and Bybit's `u` are translated by their decoders, and venues that
//! number nothing (Coinbase `level2`) are numbered per instrument by their decoder, starting at
//! each snapshot.

pub mod decode;
pub mod url;

pub use decode::{DecodeError, DecodeStats, Decoded, IgnoreReason, MarketDecoder};
pub use url::{rest_snapshot_symbol, venue_of_url};

use crate::binance::market::BinanceDecoder;
use crate::bybit::market::BybitDecoder;
use crate::okx::market::OkxDecoder;
use engine::event::Event;
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;

/// What a strategy or a recording wants of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Every trade (Binance `trade`, OKX `trades`, Bybit `publicTrade`, Coinbase `matches`).
    Trade,
    /// Aggregated trades (Binance `aggTrade`; other venues have none).
    AggTrade,
    /// Best bid and ask (Binance `bookTicker`, OKX and Bybit `tickers`, Coinbase `ticker`).
    BookTicker,
    /// The L2 book: diffs, and snapshots where the venue sends them on the socket.
    Depth,
}

/// How a venue proves a connection is alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// A WebSocket ping frame every interval (Binance, Coinbase also accepts it).
    WsPing,
    /// A text frame every interval, answered by the venue (OKX `ping` -> `pong`; Bybit
    /// `{"op":"ping"}` -> a `pong` reply).
    Text(&'static str),
}

/// How a venue's L2 book starts and stays in sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookSync {
    /// Diffs on the socket, a REST snapshot fetched after subscribing; the first applied diff
    /// spans the snapshot's id (Binance spot `U <= id+1 <= u`, USD-M `U <= id <= u` with `pu`
    /// continuity after it).
    RestSnapshot,
    /// The venue sends a snapshot on the socket after subscribing (and may send one again at
    /// any time, which replaces the book): OKX `books`, Bybit `orderbook.N`, Coinbase `level2`.
    /// OKX also documents a REST snapshot with the `prevSeqId <= seqId < seqId` bridge.
    WsSnapshot,
}

/// A venue's protocol: URLs, stream names, subscription and heartbeat frames, decoder, book
/// sync. Cold: called at connect, subscribe and heartbeat time, never per frame.
pub trait Adapter: Sync {
    /// The venue.
    fn venue(&self) -> Venue;

    /// The public market-data WebSocket URL (production).
    fn ws_url(&self) -> &'static str;

    /// The REST base URL for depth snapshots, if the venue's book needs one.
    fn rest_url(&self) -> Option<&'static str>;

    /// The REST depth-snapshot URL for `symbol` under `base` (`None`: the book starts from a
    /// WebSocket snapshot).
    fn snapshot_url(&self, base: &str, symbol: &str, limit: u32) -> Option<String>;

    /// The venue-native stream name of `kind` for `symbol` (as the config and `ctl subscribe`
    /// take it), or `None` when the venue has no such stream.
    fn stream(&self, kind: StreamKind, symbol: &str) -> Option<String>;

    /// The text frames that subscribe to `streams` (request id `id`, where the venue uses one).
    /// Empty input, no frames. An unknown stream name is an error naming it.
    fn subscribe(&self, streams: &[String], id: u64) -> Result<Vec<String>, String>;

    /// The text frames that unsubscribe from `streams`.
    fn unsubscribe(&self, streams: &[String], id: u64) -> Result<Vec<String>, String>;

    /// The heartbeat.
    fn heartbeat(&self) -> Heartbeat;

    /// The book-sync rule.
    fn book_sync(&self) -> BookSync;

    /// A decoder over `symbols` (only this venue's symbols are looked up).
    fn decoder(&self, symbols: SymbolTable) -> AnyDecoder;
}

/// The adapter of `venue`, where this build has one.
pub fn adapter(venue: Venue) -> Option<&'static dyn Adapter> {
    match venue {
        Venue::Binance => Some(&crate::binance::adapter::BINANCE_SPOT),
        Venue::Coinbase => Some(&crate::coinbase::adapter::COINBASE),
        Venue::BinanceUsdm => Some(&crate::binance::usdm::BINANCE_USDM),
        Venue::Okx => Some(&crate::okx::adapter::OKX),
        Venue::BybitSpot => Some(&crate::bybit::adapter::BYBIT_SPOT),
        Venue::BybitLinear => Some(&crate::bybit::adapter::BYBIT_LINEAR),
    }
}

/// Every venue's decoder in one type: a `match` per frame instead of a virtual call.
#[derive(Debug)]
pub enum AnyDecoder {
    /// Binance spot, and Binance USD-M futures ([`BinanceDecoder::usdm`]; its `venue()` says
    /// which).
    Binance(BinanceDecoder),
    /// Coinbase Exchange.
    Coinbase(crate::coinbase::market::CoinbaseDecoder),
    /// OKX v5.
    Okx(OkxDecoder),
    /// Bybit v5 spot or linear (the decoder knows which).
    Bybit(BybitDecoder),
}

impl AnyDecoder {
    /// The decoder inside, as the trait.
    #[inline]
    fn get(&self) -> &dyn MarketDecoder {
        match self {
            AnyDecoder::Binance(d) => d,
            AnyDecoder::Coinbase(d) => d,
            AnyDecoder::Okx(d) => d,
            AnyDecoder::Bybit(d) => d,
        }
    }
}

impl From<BinanceDecoder> for AnyDecoder {
    fn from(d: BinanceDecoder) -> Self {
        AnyDecoder::Binance(d)
    }
}

impl MarketDecoder for AnyDecoder {
    fn venue(&self) -> Venue {
        self.get().venue()
    }

    #[inline]
    fn decode(
        &mut self,
        frame: &[u8],
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        match self {
            AnyDecoder::Binance(d) => d.decode(frame, recv_ns, out),
            AnyDecoder::Coinbase(d) => MarketDecoder::decode(d, frame, recv_ns, out),
            AnyDecoder::Okx(d) => d.decode(frame, recv_ns, out),
            AnyDecoder::Bybit(d) => d.decode(frame, recv_ns, out),
        }
    }

    fn decode_snapshot(
        &mut self,
        body: &[u8],
        symbol: SymbolId,
        recv_ns: u64,
        out: &mut Vec<Event>,
    ) -> Result<Decoded, DecodeError> {
        match self {
            AnyDecoder::Binance(d) => d.decode_snapshot(body, symbol, recv_ns, out),
            AnyDecoder::Coinbase(d) => d.decode_snapshot(body, symbol, recv_ns, out),
            AnyDecoder::Okx(d) => d.decode_snapshot(body, symbol, recv_ns, out),
            AnyDecoder::Bybit(d) => d.decode_snapshot(body, symbol, recv_ns, out),
        }
    }

    fn stats(&self) -> &DecodeStats {
        self.get().stats()
    }

    fn symbols(&self) -> &SymbolTable {
        self.get().symbols()
    }

    fn reset(&mut self) {
        match self {
            AnyDecoder::Binance(d) => MarketDecoder::reset(d),
            AnyDecoder::Coinbase(d) => MarketDecoder::reset(d),
            AnyDecoder::Okx(d) => MarketDecoder::reset(d),
            AnyDecoder::Bybit(d) => MarketDecoder::reset(d),
        }
    }
}

/// `s` as a JSON string literal (quotes, backslashes and control characters escaped), for the
/// request builders.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The core decides per book whether a snapshot supersedes the buffered diffs from
    /// `Venue::snapshots_in_stream`; it must say what each adapter's book sync says.
    #[test]
    fn the_engine_s_in_stream_snapshot_rule_matches_every_adapter_s_book_sync() {
        for venue in Venue::ALL {
            let Some(a) = adapter(venue) else { continue };
            assert_eq!(
                venue.snapshots_in_stream(),
                a.book_sync() == BookSync::WsSnapshot,
                "{venue:?}"
            );
        }
    }
}
