//! Feeds of several venues in one live engine: the `[[feeds]]` config tables and the plan a
//! live run is built from ([`FeedPlan`]).
//!
//! `[venue]` stays the Binance spot feed it always was (an existing config runs unchanged);
//! every `[[feeds]]` table adds one connection to one more venue:
//!
//! ```toml
//! [[feeds]]
//! venue = "okx"               # binance | binance-usdm | coinbase | okx | bybit-spot | bybit-linear
//! symbols = ["BTC-USDT"]      # that venue's instrument names (interned on that venue)
//! streams = ["trade", "book_ticker", "depth"]   # trade | agg_trade | book_ticker | depth
//! # trade = ["BTC-USDT"]      # subscribed and trading from the start (default: every symbol)
//! # ws_url = "wss://..."      # default: the venue adapter's public market-data URL
//! # rest_url = "https://..."  # default: the adapter's (venues whose books start from REST)
//! # conn_id = 2               # default: 2, 3, ... in table order
//! # allow_plaintext = true    # ws:// or http:// to a host that is not loopback (warned)
//! ```
//!
//! Stream kinds become the venue's own stream names through its adapter
//! ([`Adapter::stream`]: `depth` is Binance `btcusdt@depth@100ms`, OKX `books:BTC-USDT`, ...),
//! its frames are decoded by the venue's decoder, and its books resync the venue's way
//! ([`BookSync`]: a REST snapshot from `rest_url`, or a resubscription). A venue without an
//! adapter in this build is a config error naming it. `[venue] symbols = []` runs without the
//! Binance spot feed when `[[feeds]]` gives others. `tickline ctl start-trading` and
//! `stop-trading` (un)subscribe a symbol on its own venue's connection; name a symbol as
//! `venue:SYMBOL` (`okx:BTC-USDT`) where the bare name is on several venues.

use crate::config::{Config, MARKET_CONN_ID};
use anyhow::{anyhow, bail, Result};
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use feeds::io::FeedSpec;
use feeds::rest::{RestClient, ResyncRoutes};
use feeds::venue::{adapter, Adapter, BookSync, Heartbeat, StreamKind};
use serde::Deserialize;
use std::time::Duration;

/// Longest `net.heartbeat_ms` for a venue whose heartbeat is a text ping (Bybit drops a
/// connection without one for 20 s, OKX for 30 s).
pub const MAX_TEXT_HEARTBEAT_MS: u64 = 15_000;

/// One `[[feeds]]` table: a connection to one venue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSection {
    /// The venue's name (`okx`, `bybit-spot`, ...: [`Venue::name`]).
    pub venue: String,
    /// The venue's instrument names.
    pub symbols: Vec<String>,
    /// The symbols subscribed and trading from the start (default: every one of `symbols`).
    pub trade: Option<Vec<String>>,
    /// Stream kinds per symbol: `trade`, `agg_trade`, `book_ticker`, `depth`.
    pub streams: Vec<String>,
    /// WebSocket URL (default: the venue adapter's).
    pub ws_url: Option<String>,
    /// REST base URL for depth snapshots (default: the venue adapter's).
    pub rest_url: Option<String>,
    /// The connection's id (default: 2, 3, ... in table order).
    pub conn_id: Option<u32>,
    /// Accept `ws://` or `http://` to a host that is not loopback (warned at start).
    pub allow_plaintext: bool,
}

impl Default for FeedSection {
    fn default() -> Self {
        FeedSection {
            venue: String::new(),
            symbols: Vec::new(),
            trade: None,
            streams: vec!["trade".into(), "book_ticker".into(), "depth".into()],
            ws_url: None,
            rest_url: None,
            conn_id: None,
            allow_plaintext: false,
        }
    }
}

/// A stream kind as the config names it.
fn parse_kind(s: &str) -> Option<StreamKind> {
    Some(match s {
        "trade" => StreamKind::Trade,
        "agg_trade" | "aggTrade" => StreamKind::AggTrade,
        "book_ticker" | "bookTicker" => StreamKind::BookTicker,
        "depth" => StreamKind::Depth,
        _ => return None,
    })
}

impl FeedSection {
    /// The venue and its adapter; an unknown venue or one without an adapter in this build is
    /// an error naming it (`key` is the table's name in messages).
    pub fn adapter(&self, key: &str) -> Result<&'static dyn Adapter> {
        let venue = Venue::parse(&self.venue).ok_or_else(|| {
            anyhow!(
                "{key}.venue = {:?}: expected one of {}",
                self.venue,
                engine::venue::names()
            )
        })?;
        adapter(venue).ok_or_else(|| {
            anyhow!("{key}.venue = \"{venue}\": this build has no adapter for {venue}")
        })
    }

    /// The stream kinds.
    fn kinds(&self, key: &str) -> Result<Vec<StreamKind>> {
        self.streams
            .iter()
            .map(|s| {
                parse_kind(s).ok_or_else(|| {
                    anyhow!("{key}.streams: {s:?}: expected trade, agg_trade, book_ticker or depth")
                })
            })
            .collect()
    }

    /// True if `symbol` trades (and is subscribed) from the start.
    pub fn trading_at_start(&self, symbol: &str) -> bool {
        match &self.trade {
            None => true,
            Some(t) => t.iter().any(|s| s.eq_ignore_ascii_case(symbol)),
        }
    }
}

/// `[[feeds]]` checks, called by [`Config::validate`]: venues with adapters, symbols valid on
/// their venue and on one connection only, known stream kinds the venue has, URL schemes,
/// plaintext to remote hosts, distinct connection ids.
pub fn validate(cfg: &Config) -> Result<()> {
    let mut symbols = SymbolTable::new();
    for s in &cfg.venue.symbols {
        let _ = symbols.intern(s);
    }
    let mut ids = vec![
        (MARKET_CONN_ID, "the [venue] feed".to_string()),
        (feeds::rest::REST_CONN_ID, "the REST side".to_string()),
    ];
    if cfg.orders.enabled {
        ids.push((cfg.orders.conn_id, "orders.conn_id".to_string()));
    }
    for (i, f) in cfg.feeds.iter().enumerate() {
        let key = format!("feeds[{i}]");
        let a = f.adapter(&key)?;
        let venue = a.venue();
        if f.symbols.is_empty() {
            bail!("{key}.symbols: at least one symbol");
        }
        for s in &f.symbols {
            if symbols.lookup_on(venue, s.as_bytes()).is_some() {
                bail!("{key}.symbols: {s} on {venue} is already fed by another table");
            }
            symbols
                .intern_on(venue, s)
                .map_err(|e| anyhow!("{key}.symbols: {e}"))?;
        }
        for s in f.trade.iter().flatten() {
            if !f.symbols.iter().any(|x| x.eq_ignore_ascii_case(s)) {
                bail!("{key}.trade: {s} is not in {key}.symbols; add it there");
            }
        }
        for k in f.kinds(&key)? {
            if a.stream(k, &f.symbols[0]).is_none() {
                bail!("{key}.streams: {venue} has no {k:?} stream");
            }
        }
        if let Heartbeat::Text(ping) = a.heartbeat() {
            let ms = cfg.net.heartbeat_ms;
            if !(1..=MAX_TEXT_HEARTBEAT_MS).contains(&ms) {
                bail!(
                    "net.heartbeat_ms = {ms}: {key} ({venue}) keeps its connection with a text {ping:?} the venue wants within 20 s (Bybit) to 30 s (OKX); use 1..={MAX_TEXT_HEARTBEAT_MS}"
                );
            }
        }
        let ws = f.ws_url.as_deref().unwrap_or(a.ws_url());
        if !ws.starts_with("ws://") && !ws.starts_with("wss://") {
            bail!("{key}.ws_url = {ws:?}: expected ws:// or wss://");
        }
        let rest = f.rest_url.as_deref().or(a.rest_url());
        if let Some(r) = rest {
            if !r.starts_with("http://") && !r.starts_with("https://") {
                bail!("{key}.rest_url = {r:?}: expected http:// or https://");
            }
        }
        for (what, url) in [("ws_url", Some(ws)), ("rest_url", rest)] {
            let Some(url) = url else { continue };
            if !f.allow_plaintext && crate::config::plaintext_to_remote(url).is_some() {
                bail!(
                    "{key}.{what} = {url:?} is unencrypted and the host is not loopback (market data anyone on the path can read and alter); use wss:// / https:// or set {key}.allow_plaintext = true"
                );
            }
        }
        let id = conn_id(cfg, i);
        if let Some((_, owner)) = ids.iter().find(|(x, _)| *x == id) {
            bail!("{key}.conn_id = {id}: taken by {owner}");
        }
        ids.push((id, key));
    }
    FeedPlan::new(cfg).map(|_| ())
}

/// Warnings for the `[[feeds]]` URLs that are plaintext to a remote host (allowed).
pub fn plaintext_warnings(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in cfg.feeds.iter().enumerate() {
        for url in [f.ws_url.as_deref(), f.rest_url.as_deref()]
            .into_iter()
            .flatten()
        {
            if crate::config::plaintext_to_remote(url).is_some() {
                out.push(format!(
                    "feeds[{i}]: {url:?} is plaintext to a host that is not loopback, allowed by allow_plaintext = true: anyone on the path can read and alter this market data"
                ));
            }
        }
    }
    out
}

/// The connection id of `[[feeds]]` table `i`.
fn conn_id(cfg: &Config, i: usize) -> u32 {
    cfg.feeds[i]
        .conn_id
        .unwrap_or(MARKET_CONN_ID + 1 + i as u32)
}

/// How one symbol is fed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolFeed {
    /// The connection that carries its streams.
    pub conn_id: u32,
    /// Its stream names (what `start-trading` subscribes and `stop-trading` unsubscribes).
    pub streams: Vec<String>,
    /// Subscribed from the start (a raw feed's symbols always are).
    pub at_start: bool,
    /// Its strategy runs from the start (`trade`, default every symbol).
    pub trading: bool,
    /// Its books get depth diffs or snapshots, so they sync and resync.
    pub depth: bool,
    /// The feed is a raw feed (everything arrives; nothing can be subscribed).
    pub raw: bool,
}

/// Everything a live run needs of its feeds: the symbol table (per venue), one [`FeedSpec`]
/// per connection, each symbol's feed, and where its book resyncs come from.
#[derive(Debug)]
pub struct FeedPlan {
    /// Every symbol of every feed, `[venue]`'s first.
    pub symbols: SymbolTable,
    /// `[venue]`'s symbols, with their names in the config's order.
    pub binance_symbols: Vec<String>,
    /// The connections (`[venue]`'s first, when it has symbols).
    pub feeds: Vec<FeedSpec>,
    /// Per [`SymbolId`] index.
    pub symbol_feeds: Vec<SymbolFeed>,
    /// `(venue, REST base URL)` of the `[[feeds]]` venues whose books start from a REST
    /// snapshot.
    pub rest: Vec<(Venue, String)>,
}

impl FeedPlan {
    /// The plan of a (validated) config.
    pub fn new(cfg: &Config) -> Result<FeedPlan> {
        let mut symbols = SymbolTable::new();
        let mut symbol_feeds = Vec::new();
        let mut feeds = Vec::new();
        let v = &cfg.venue;
        for s in &v.symbols {
            symbols
                .intern(s)
                .map_err(|e| anyhow!("venue.symbols: {e}"))?;
            symbol_feeds.push(SymbolFeed {
                conn_id: MARKET_CONN_ID,
                streams: v.streams_of(s),
                at_start: v.is_raw_feed() || v.trading_at_start(s),
                trading: v.trading_at_start(s),
                depth: v.carries_depth(),
                raw: v.is_raw_feed(),
            });
        }
        if !v.symbols.is_empty() {
            let (url, subscribe) = v.connect_target();
            feeds.push(FeedSpec {
                conn_id: MARKET_CONN_ID,
                url,
                subscribe,
                venue: Venue::Binance,
            });
        }
        // One REST URL per venue: [venue]'s for Binance spot, else the first table's (or the
        // adapter's); a table naming another one is refused.
        let mut rest: Vec<(Venue, String)> = Vec::new();
        let preset = !v.symbols.is_empty();
        if preset {
            rest.push((Venue::Binance, v.rest_url.trim_end_matches('/').to_string()));
        }
        for (i, f) in cfg.feeds.iter().enumerate() {
            let key = format!("feeds[{i}]");
            let a = f.adapter(&key)?;
            let venue = a.venue();
            let kinds = f.kinds(&key)?;
            let conn_id = conn_id(cfg, i);
            let mut subscribe = Vec::new();
            for s in &f.symbols {
                let name = s.to_ascii_uppercase();
                symbols
                    .intern_on(venue, &name)
                    .map_err(|e| anyhow!("{key}.symbols: {e}"))?;
                let streams: Vec<String> =
                    kinds.iter().filter_map(|&k| a.stream(k, &name)).collect();
                let at_start = f.trading_at_start(s);
                if at_start {
                    subscribe.extend(streams.iter().cloned());
                }
                symbol_feeds.push(SymbolFeed {
                    conn_id,
                    streams,
                    at_start,
                    trading: at_start,
                    depth: kinds.contains(&StreamKind::Depth),
                    raw: false,
                });
            }
            if a.book_sync() == BookSync::RestSnapshot {
                let known = rest
                    .iter()
                    .find(|(x, _)| *x == venue)
                    .map(|(_, u)| u.as_str());
                match (f.rest_url.as_deref().map(|u| u.trim_end_matches('/')), known) {
                    (Some(u), Some(k)) if u != k => bail!(
                        "{key}.rest_url = {u:?}: {venue} already takes its snapshots from {k:?} (one REST URL per venue)"
                    ),
                    (_, Some(_)) => {}
                    (Some(u), None) => rest.push((venue, u.to_string())),
                    (None, None) => {
                        if let Some(u) = a.rest_url() {
                            rest.push((venue, u.to_string()));
                        }
                    }
                }
            }
            feeds.push(FeedSpec {
                conn_id,
                url: f.ws_url.clone().unwrap_or_else(|| a.ws_url().to_string()),
                subscribe,
                venue,
            });
        }
        if preset {
            rest.remove(0); // [venue]'s own client serves Binance spot
        }
        Ok(FeedPlan {
            symbols,
            binance_symbols: v.symbols.clone(),
            feeds,
            symbol_feeds,
            rest,
        })
    }

    /// The venues the feeds speak to, each once.
    pub fn venues(&self) -> Vec<Venue> {
        let mut v: Vec<Venue> = self.feeds.iter().map(|f| f.venue).collect();
        v.sort();
        v.dedup();
        v
    }

    /// Where each book's resyncs go: `binance` (the `[venue]` REST client) for Binance spot,
    /// a REST client per `[[feeds]]` REST-snapshot venue, and `io` for the resubscriptions of
    /// the WebSocket-snapshot venues (each symbol's depth streams).
    pub fn resync_routes(
        &self,
        binance: RestClient,
        io: feeds::io::IoCommandTx,
        timeout: Duration,
    ) -> ResyncRoutes {
        let mut r = ResyncRoutes::binance(binance).io(io);
        for (venue, url) in &self.rest {
            r = r.rest(*venue, RestClient::new(url, timeout));
        }
        for (id, venue, name) in self.symbols.iter_venues() {
            let Some(a) = adapter(venue) else { continue };
            if a.book_sync() == BookSync::WsSnapshot {
                if let Some(depth) = a.stream(StreamKind::Depth, name) {
                    r = r.depth_streams(id, vec![depth]);
                }
            }
        }
        r
    }

    /// The feed of `id`.
    pub fn feed_of(&self, id: SymbolId) -> Option<&SymbolFeed> {
        self.symbol_feeds.get(id.index())
    }
}

/// The symbol `name` names: `venue:NAME` (`okx:BTC-USDT`), or a bare name on Binance spot or
/// on the one venue that has it; an unknown or ambiguous name is an error saying so.
pub fn resolve(symbols: &SymbolTable, name: &str) -> Result<SymbolId, String> {
    if let Some((v, n)) = name.split_once(':') {
        let venue = Venue::parse(v).ok_or_else(|| {
            format!(
                "{v}: not a venue (expected one of {})",
                engine::venue::names()
            )
        })?;
        return symbols
            .lookup_on(venue, n.to_ascii_uppercase().as_bytes())
            .ok_or_else(|| {
                format!(
                    "{} is not a symbol of {venue} in this engine",
                    n.to_ascii_uppercase()
                )
            });
    }
    let upper = name.to_ascii_uppercase();
    if let Some(id) = symbols.lookup(upper.as_bytes()) {
        return Ok(id);
    }
    let found: Vec<(SymbolId, Venue)> = Venue::ALL
        .into_iter()
        .filter_map(|v| symbols.lookup_on(v, upper.as_bytes()).map(|id| (id, v)))
        .collect();
    match found.as_slice() {
        [(id, _)] => Ok(*id),
        [] => Err(format!("{upper} is not a symbol of this engine")),
        many => Err(format!(
            "{upper} is on several venues ({}): name it as VENUE:{upper}",
            many.iter()
                .map(|(_, v)| v.name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A symbol's name in reports: bare on Binance spot (`BTCUSDT`, as before venues), else
/// `VENUE:NAME` (`binance-usdm:BTCUSDT`, `okx:BTC-USDT`), so two venues' same-named
/// instruments never share a key.
pub fn qualified_name(venue: Venue, name: &str) -> String {
    if venue == Venue::Binance {
        name.to_string()
    } else {
        format!("{venue}:{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_config_plans_one_binance_feed_as_before() {
        let c = Config::parse("[venue]\nws_url = \"ws://127.0.0.1:9\"\nsymbols = [\"BTCUSDT\"]\nstreams = [\"trade\"]\n").unwrap();
        let p = FeedPlan::new(&c).unwrap();
        assert_eq!(p.feeds.len(), 1);
        assert_eq!(p.feeds[0].venue, Venue::Binance);
        assert_eq!(p.feeds[0].conn_id, MARKET_CONN_ID);
        assert_eq!(
            p.feeds[0].url,
            "ws://127.0.0.1:9/stream?streams=btcusdt@trade"
        );
        assert_eq!(p.venues(), [Venue::Binance]);
        assert_eq!(p.symbols.lookup(b"BTCUSDT"), Some(SymbolId(0)));
        assert_eq!(p.feed_of(SymbolId(0)).unwrap().streams, ["btcusdt@trade"]);
    }

    #[test]
    fn a_second_binance_table_gets_its_own_connection_and_adapter_streams() {
        let c = Config::parse(
            "[venue]\nsymbols = []\n[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ethusdt\", \"BNBUSDT\"]\ntrade = [\"ETHUSDT\"]\nws_url = \"ws://127.0.0.1:7/ws\"\nrest_url = \"http://127.0.0.1:8\"\n",
        )
        .unwrap();
        let p = FeedPlan::new(&c).unwrap();
        assert_eq!(p.feeds.len(), 1, "no [venue] feed without its symbols");
        let f = &p.feeds[0];
        assert_eq!((f.conn_id, f.venue), (2, Venue::Binance));
        assert_eq!(f.url, "ws://127.0.0.1:7/ws");
        assert_eq!(
            f.subscribe,
            ["ethusdt@trade", "ethusdt@bookTicker", "ethusdt@depth@100ms"]
        );
        let bnb = p.symbols.lookup(b"BNBUSDT").unwrap();
        let sf = p.feed_of(bnb).unwrap();
        assert!(!sf.at_start && sf.depth && sf.conn_id == 2);
        assert_eq!(p.rest, [(Venue::Binance, "http://127.0.0.1:8".to_string())]);
        // Beside [venue], a Binance table takes [venue]'s REST URL, and may not name another.
        let two = "[venue]\nrest_url = \"http://127.0.0.1:8\"\n[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\n";
        assert!(FeedPlan::new(&Config::parse(two).unwrap())
            .unwrap()
            .rest
            .is_empty());
        let e = Config::parse(&format!("{two}rest_url = \"http://127.0.0.1:9\"\n")).unwrap_err();
        assert!(format!("{e:#}").contains("one REST URL per venue"), "{e:#}");
    }

    #[test]
    fn bad_feed_tables_are_refused_naming_the_key() {
        for (toml, want) in [
            ("[[feeds]]\nvenue = \"kraken\"\nsymbols = [\"X\"]\n", "feeds[0].venue"),
            ("[[feeds]]\nvenue = \"binance\"\n", "feeds[0].symbols"),
            (
                "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"BTCUSDT\"]\n",
                "already fed",
            ),
            (
                "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\nstreams = [\"klines\"]\n",
                "feeds[0].streams",
            ),
            (
                "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\ntrade = [\"XRPUSDT\"]\n",
                "feeds[0].trade",
            ),
            (
                "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\nws_url = \"ws://10.0.0.1/ws\"\n",
                "allow_plaintext",
            ),
            (
                "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\nconn_id = 1\n",
                "feeds[0].conn_id",
            ),
            (
                "[[feeds]]\nvenue = \"binance\"\nsymbols = [\"ETHUSDT\"]\nvenu = 1\n",
                "venu",
            ),
        ] {
            let e = Config::parse(toml)
                .and_then(|c| c.validate().map(|_| c))
                .map(|_| ())
                .unwrap_err();
            let e = format!("{e:#}");
            assert!(e.contains(want), "{toml}: {e}");
        }
        // A venue this build has no adapter for is named (any venue still without one).
        if let Some(v) = Venue::ALL.into_iter().find(|&v| adapter(v).is_none()) {
            let toml = format!("[[feeds]]\nvenue = \"{v}\"\nsymbols = [\"BTC\"]\n");
            let e = format!("{:#}", Config::parse(&toml).unwrap_err());
            assert!(e.contains(&format!("no adapter for {v}")), "{e}");
        }
    }

    #[test]
    fn a_text_heartbeat_venue_needs_a_heartbeat_within_its_limit() {
        let Some(a) = Venue::ALL
            .into_iter()
            .filter_map(adapter)
            .find(|a| matches!(a.heartbeat(), Heartbeat::Text(_)))
        else {
            println!("NOTICE: no venue with a text heartbeat in this build; skipped");
            return;
        };
        let sym = if a.venue().symbol_byte_ok(b'-') {
            "BTC-USDT"
        } else {
            "BTCUSDT"
        };
        let feed = format!(
            "[[feeds]]\nvenue = \"{}\"\nsymbols = [\"{sym}\"]\n",
            a.venue()
        );
        Config::parse(&feed).unwrap();
        for ms in [0, MAX_TEXT_HEARTBEAT_MS + 1] {
            let toml = format!("[net]\nheartbeat_ms = {ms}\nidle_timeout_ms = 60000\n{feed}");
            let e = format!("{:#}", Config::parse(&toml).unwrap_err());
            assert!(e.contains("net.heartbeat_ms"), "{e}");
        }
    }

    #[test]
    fn symbols_resolve_by_venue_prefix_or_a_unique_bare_name() {
        let mut t = SymbolTable::new();
        let a = t.intern("BTCUSDT").unwrap();
        let b = t.intern_on(Venue::BinanceUsdm, "BTCUSDT").unwrap();
        let c = t.intern_on(Venue::Okx, "BTC-USDT").unwrap();
        let d = t.intern_on(Venue::BinanceUsdm, "ETHUSDT").unwrap();
        let e = t.intern_on(Venue::BybitSpot, "ETHUSDT").unwrap();
        assert_eq!(resolve(&t, "btcusdt"), Ok(a));
        assert_eq!(resolve(&t, "binance-usdm:btcusdt"), Ok(b));
        assert_eq!(resolve(&t, "BTC-USDT"), Ok(c));
        assert_eq!(resolve(&t, "bybit-spot:ETHUSDT"), Ok(e));
        assert_ne!(d, e);
        assert!(resolve(&t, "ETHUSDT")
            .unwrap_err()
            .contains("several venues"));
        assert!(resolve(&t, "kraken:X").unwrap_err().contains("not a venue"));
        assert!(resolve(&t, "XRPUSDT").unwrap_err().contains("not a symbol"));
    }
}
