//! Market-data simulators of the other venues: OKX v5, Coinbase Exchange, Bybit v5 (spot and
//! linear) and Binance USD-M futures, each speaking its venue's public WebSocket protocol on
//! loopback so every venue has a live test over real sockets, reconnects included.
//!
//! | venue | module | served by | book sync |
//! |---|---|---|---|
//! | Binance USD-M | [`binance_usdm`] | the Binance simulator ([`crate::VenueSim`]) in its futures flavour | REST `GET /fapi/v1/depth` + diffs with `pu` |
//! | OKX | `okx.rs` | [`MdSim`] | `books`: a snapshot on subscribe, then updates chained by `prevSeqId`/`seqId`, each with its CRC32 checksum |
//! | Coinbase | `coinbase.rs` | [`MdSim`] | `level2`: a `snapshot` on subscribe, then `l2update`s |
//! | Bybit | `bybit.rs` | [`MdSim`] | `orderbook.N`: a snapshot on subscribe, then deltas with `u` (+1 each) and `seq` |
//!
//! **One venue model, one wire per venue.** [`MdSim`] (`server.rs`) owns the sockets (plain or
//! TLS WebSocket, the same self-signed certificate as the Binance simulator), one publisher
//! thread and one thread per connection. The feed is venue-neutral (`model::MdEvent`:
//! snapshot, depth change, trade, top-of-book change), read from the Binance-format generator
//! ([`crate::gen`], translated), from a Binance-format capture (line format or `.tlc`,
//! translated the same way) or from the venue's own capture in cryptofeed's formats (the real
//! ones in `../shared/data/cryptofeed`, read by `feeds::capture` and translated by
//! `native.rs`), and kept in one book per instrument (`model::Market`). A
//! `Protocol` turns it into its venue's frames:
//!
//! - `Protocol::on_text`: a client's text message becomes replies (acks, errors, pongs) and
//!   subscription changes (`Reply`);
//! - `Protocol::publish`: one applied event becomes the frames each `Topic` gets, numbered
//!   per the venue (OKX `seqId`, Bybit `u`/`seq`, Coinbase `sequence`);
//! - `Protocol::on_subscribe`: what a new subscriber of a topic gets first (the book snapshot of
//!   a WebSocket-snapshot venue, Coinbase's `last_match` and first `ticker`);
//! - `Protocol::tick`: the frames the venue sends on its own every second (Coinbase
//!   `heartbeat`s);
//! - the client heartbeat (OKX text `ping` -> `pong`, Bybit `{"op":"ping"}` -> its pong reply)
//!   is a reply like any other; a venue with an idle limit (`Protocol::idle_timeout`, OKX's
//!   30 s) closes a connection that sent nothing for that long ([`VenueOptions::idle_timeout`]
//!   overrides it).
//!
//! Subscribing and publishing happen under one lock on the market, so a snapshot sent on
//! subscribe is exactly the book before the first update the connection receives for it: the
//! update ids chain from the snapshot without gap or overlap, whatever the timing.
//!
//! **Faults** are the Binance simulator's ([`crate::Faults`]: `drop_every`,
//! `drop_every_frames`, `stall_after`, `garbage_every`, `oversized_every`,
//! `invalid_utf8_every`, `fragment`, `refuse_tls`), each counted in [`crate::SimStats`]'s
//! `faults`.

pub mod binance_usdm;
mod bybit;
mod coinbase;
mod conn;
pub(crate) mod model;
mod native;
mod okx;
mod server;

pub use server::MdSim;

use engine::venue::Venue;
use model::{Market, MdEvent};
use std::time::Duration;

/// What a topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum TopicKind {
    /// The L2 book (snapshot and diffs).
    Book,
    /// Trades.
    Trades,
    /// Ticker (best bid and ask, last trade).
    Ticker,
    /// The venue's own heartbeat channel (Coinbase).
    Heartbeat,
}

/// One subscribable stream of one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Topic {
    pub(crate) kind: TopicKind,
    /// Index of the instrument in [`Market::syms`].
    pub(crate) sym: u16,
    /// A variant of the stream (Bybit's book depth, 0 elsewhere).
    pub(crate) variant: u16,
}

impl Topic {
    pub(crate) fn new(kind: TopicKind, sym: usize, variant: u16) -> Topic {
        Topic {
            kind,
            sym: sym as u16,
            variant,
        }
    }
}

/// What the server knows of the connection a message came on.
#[derive(Debug)]
pub(crate) struct ConnInfo<'a> {
    /// The venue's connection id (OKX `connId`, Bybit `conn_id`).
    pub(crate) conn_id: &'a str,
    /// The handshake's path (Bybit: `/v5/public/spot` or `/v5/public/linear`).
    pub(crate) path: &'a str,
    /// The topics subscribed before this message.
    pub(crate) subs: &'a [Topic],
}

/// What a client message asks of the server.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// Text frames to send, in order, before any snapshot.
    pub(crate) texts: Vec<String>,
    /// Topics to subscribe (each then gets `Protocol::on_subscribe`'s frames).
    pub(crate) add: Vec<Topic>,
    /// Topics to unsubscribe.
    pub(crate) remove: Vec<Topic>,
    /// The message was a request the venue refused (counted as a control error).
    pub(crate) error: bool,
    /// The message was a heartbeat (counted as a client ping).
    pub(crate) heartbeat: bool,
}

/// One venue's public market-data protocol. See the module docs.
pub(crate) trait Protocol: Send + Sync + std::fmt::Debug {
    /// The venue.
    fn venue(&self) -> Venue;

    /// The WebSocket paths served (the handshake of any other path gets a 404).
    fn paths(&self) -> &'static [&'static str];

    /// Handles one text message from a client (`market` is locked; read-only).
    fn on_text(&self, text: &str, conn: &ConnInfo<'_>, market: &Market) -> Reply;

    /// The frames for `ev`, already applied to `market` (which the protocol may renumber:
    /// its ids live in `model::SymState`).
    fn publish(&self, ev: &MdEvent, market: &mut Market, out: &mut Vec<(Topic, String)>);

    /// The frames a new subscriber of `topic` gets before its updates.
    fn on_subscribe(
        &self,
        topic: Topic,
        conn: &ConnInfo<'_>,
        market: &Market,
        out: &mut Vec<String>,
    );

    /// Frames the venue sends every second on `topic` by itself (Coinbase heartbeats).
    fn tick(&self, _topic: Topic, _market: &Market, _out: &mut Vec<String>) {}

    /// A connection that sent nothing for this long is closed (OKX: 30 s).
    fn idle_timeout(&self) -> Option<Duration> {
        None
    }
}

/// The protocol of `venue`, for the venues [`MdSim`] serves (not Binance spot or USD-M, which
/// the Binance simulator serves).
pub(crate) fn protocol(venue: Venue) -> Option<Box<dyn Protocol>> {
    match venue {
        Venue::Okx => Some(Box::new(okx::Okx)),
        Venue::Coinbase => Some(Box::new(coinbase::Coinbase)),
        Venue::BybitSpot | Venue::BybitLinear => Some(Box::new(bybit::Bybit { venue })),
        _ => None,
    }
}

/// Options of [`MdSim`] beyond the Binance simulator's [`crate::SimConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueOptions {
    /// The venue to speak: [`Venue::Okx`], [`Venue::Coinbase`], [`Venue::BybitSpot`] or
    /// [`Venue::BybitLinear`] (either Bybit serves both `/v5/public/spot` and
    /// `/v5/public/linear`; the venue names the default symbols).
    pub venue: Venue,
    /// Close a connection that sent nothing for this long; `None`: the venue's own limit
    /// (OKX 30 s, the others none).
    pub idle_timeout: Option<Duration>,
}

impl VenueOptions {
    /// Options for `venue` with the venue's own idle limit.
    pub fn new(venue: Venue) -> VenueOptions {
        VenueOptions {
            venue,
            idle_timeout: None,
        }
    }
}

/// The instrument name `venue` uses for a Binance-style symbol (`BTCUSDT` -> OKX `BTC-USDT`,
/// Coinbase `BTC-USD` stays, ...): names that already have a `-`, and Bybit's and Binance's,
/// are kept.
pub fn venue_symbol(venue: Venue, name: &str) -> String {
    let up = name.to_ascii_uppercase();
    if up.contains('-') || !matches!(venue, Venue::Okx | Venue::Coinbase) {
        return up;
    }
    for quote in ["USDT", "USDC", "USD", "EUR", "GBP", "BTC", "ETH"] {
        if let Some(base) = up.strip_suffix(quote) {
            if !base.is_empty() {
                return format!("{base}-{quote}");
            }
        }
    }
    up
}

/// The default instrument of `venue` for a generated feed.
pub fn default_symbol(venue: Venue) -> &'static str {
    match venue {
        Venue::Okx => "BTC-USDT",
        Venue::Coinbase => "BTC-USD",
        _ => "BTCUSDT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venue_symbols() {
        assert_eq!(venue_symbol(Venue::Okx, "BTCUSDT"), "BTC-USDT");
        assert_eq!(venue_symbol(Venue::Coinbase, "btcusd"), "BTC-USD");
        assert_eq!(venue_symbol(Venue::Coinbase, "ETH-BTC"), "ETH-BTC");
        assert_eq!(venue_symbol(Venue::BybitLinear, "BTCUSDT"), "BTCUSDT");
        assert_eq!(venue_symbol(Venue::Okx, "USDT"), "USDT");
    }
}
