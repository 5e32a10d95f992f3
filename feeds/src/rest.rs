//! REST, off the hot path: depth snapshots (every venue whose book starts from one) and Binance
//! spot's `exchangeInfo` over a blocking HTTP client (ureq, rustls), and the book-resync side
//! thread.
//!
//! The core asks for a resync by pushing a [`SymbolId`] into a small SPSC ring (see
//! `engine::core::CoreBuilder::resync_sink`); [`run_snapshot_worker`] serves it by the symbol's
//! venue ([`SymbolTable::venue`]) and that venue's [`BookSync`]:
//!
//! - [`BookSync::RestSnapshot`] (Binance spot, USD-M): `GET` the adapter's
//!   [`snapshot_url`](crate::venue::Adapter::snapshot_url) on the venue's [`RestClient`],
//!   decode it with the venue's decoder ([`MarketDecoder::decode_snapshot`]) and push the
//!   snapshot's level events into its own ring to the core, where the book bridges it with the
//!   diffs it buffered;
//! - [`BookSync::WsSnapshot`] (OKX, Bybit, Coinbase): ask the I/O loop to unsubscribe and
//!   subscribe the symbol's depth stream again ([`IoCommand::Resubscribe`]); the venue then
//!   sends a fresh snapshot on the socket.
//!
//! A failed fetch (or a full command queue) is retried with backoff until it succeeds or the
//! engine stops; nothing is dropped silently.
use crate::io::{AdapterOf, IoCommand, IoCommandError, IoCommandTx};
use crate::recorder::RecorderTx;
use crate::venue::{Adapter, AnyDecoder, BookSync, MarketDecoder};
use engine::event::Event;
use engine::fixed::{parse_fixed, Price, Qty};
use engine::ring::EventTx;
use engine::strategy::SymbolRules;
use engine::symbol::{SymbolId, SymbolTable};
use engine::venue::Venue;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Why a REST call failed.
#[derive(Debug)]
pub enum RestError {
    /// Transport, TLS or HTTP status error, with the URL.
    Http {
        /// The URL requested.
        url: String,
        /// What went wrong.
        error: String,
    },
    /// The body was not what the venue documents.
    Body {
        /// The URL requested.
        url: String,
        /// What was wrong.
        why: String,
    },
}

impl fmt::Display for RestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestError::Http { url, error } => write!(f, "GET {url}: {error}"),
            RestError::Body { url, why } => write!(f, "GET {url}: unexpected body: {why}"),
        }
    }
}

impl std::error::Error for RestError {}

/// A symbol's trading rules from `exchangeInfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolInfo {
    /// Upper-case symbol.
    pub symbol: String,
    /// Tick, lot and minimum notional.
    pub rules: SymbolRules,
}

/// A blocking REST client of one venue's base URL, with a timeout.
#[derive(Debug, Clone)]
pub struct RestClient {
    base: String,
    agent: ureq::Agent,
}

/// Largest body read (a 5,000-level snapshot is about 300 KB).
const MAX_BODY: u64 = 16 * 1024 * 1024;

impl RestClient {
    /// A client for `base_url` (for example `https://api.binance.com` or the simulator's
    /// `http://127.0.0.1:PORT`), every request bounded by `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .build()
            .into();
        RestClient {
            base: base_url.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// The base URL (no trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    fn get(&self, path_and_query: &str) -> Result<Vec<u8>, RestError> {
        self.get_url(format!("{}{}", self.base, path_and_query))
    }

    fn get_url(&self, url: String) -> Result<Vec<u8>, RestError> {
        let mut resp = self.agent.get(&url).call().map_err(|e| RestError::Http {
            url: url.clone(),
            error: e.to_string(),
        })?;
        resp.body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| RestError::Http {
                url,
                error: e.to_string(),
            })
    }

    /// The Binance spot REST depth snapshot body of `symbol` (`limit` levels a side).
    pub fn depth_snapshot(&self, symbol: &str, limit: u32) -> Result<Vec<u8>, RestError> {
        self.venue_snapshot(&crate::binance::adapter::BINANCE_SPOT, symbol, limit)
    }

    /// The REST depth snapshot body of `symbol` on `adapter`'s venue (its
    /// [`snapshot_url`](Adapter::snapshot_url) under this client's base URL).
    pub fn venue_snapshot(
        &self,
        adapter: &dyn Adapter,
        symbol: &str,
        limit: u32,
    ) -> Result<Vec<u8>, RestError> {
        let url = adapter
            .snapshot_url(&self.base, symbol, limit)
            .ok_or_else(|| RestError::Http {
                url: self.base.clone(),
                error: format!("{} has no REST depth snapshot", adapter.venue()),
            })?;
        self.get_url(url)
    }

    /// Tick size, lot size and minimum notional of `symbols`.
    pub fn exchange_info(&self, symbols: &[&str]) -> Result<Vec<SymbolInfo>, RestError> {
        let list: Vec<String> = symbols
            .iter()
            .map(|s| format!("%22{}%22", s.to_ascii_uppercase()))
            .collect();
        let path = format!("/api/v3/exchangeInfo?symbols=%5B{}%5D", list.join(","));
        let body = self.get(&path)?;
        parse_exchange_info(&body).map_err(|why| RestError::Body {
            url: format!("{}{path}", self.base),
            why,
        })
    }
}

/// Parses `exchangeInfo`: `PRICE_FILTER.tickSize`, `LOT_SIZE.stepSize`, and `NOTIONAL.minNotional`
/// (or the older `MIN_NOTIONAL.minNotional`) of every symbol.
pub fn parse_exchange_info(body: &[u8]) -> Result<Vec<SymbolInfo>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let symbols = v
        .get("symbols")
        .and_then(|s| s.as_array())
        .ok_or("no `symbols` array")?;
    let dec = |f: &serde_json::Value, key: &str, sym: &str| -> Result<i64, String> {
        let s = f
            .get(key)
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("{sym}: filter without string `{key}`"))?;
        parse_fixed(s.as_bytes()).map_err(|e| format!("{sym}: {key} {s:?}: {e}"))
    };
    let mut out = Vec::with_capacity(symbols.len());
    for s in symbols {
        let name = s
            .get("symbol")
            .and_then(|x| x.as_str())
            .ok_or("symbol without a name")?;
        let mut rules = SymbolRules::default();
        let (mut tick, mut lot) = (false, false);
        for f in s
            .get("filters")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            match f.get("filterType").and_then(|x| x.as_str()) {
                Some("PRICE_FILTER") => {
                    rules.tick_size = Price(dec(f, "tickSize", name)?);
                    tick = true;
                }
                Some("LOT_SIZE") => {
                    rules.lot_size = Qty(dec(f, "stepSize", name)?);
                    lot = true;
                }
                Some("NOTIONAL") | Some("MIN_NOTIONAL") => {
                    rules.min_notional = dec(f, "minNotional", name)?;
                }
                _ => {}
            }
        }
        if !tick || !lot || rules.tick_size.0 <= 0 || rules.lot_size.0 <= 0 {
            return Err(format!(
                "{name}: missing or zero PRICE_FILTER tickSize / LOT_SIZE stepSize"
            ));
        }
        out.push(SymbolInfo {
            symbol: name.to_ascii_uppercase(),
            rules,
        });
    }
    Ok(out)
}

/// Counters of the snapshot worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Snapshots fetched, decoded and pushed.
    pub fetched: u64,
    /// Fetches, decodes or resubscriptions that failed (each retried).
    pub failures: u64,
    /// Resyncs served by resubscribing the symbol's depth streams ([`BookSync::WsSnapshot`]).
    pub resubscribed: u64,
    /// Requests received from the core.
    pub requests: u64,
}

/// Settings of [`run_snapshot_worker`].
#[derive(Clone, Debug)]
pub struct SnapshotWorkerConfig {
    /// Levels per side (`limit`; Binance accepts up to 5000).
    pub limit: u32,
    /// Wait after a failed fetch, doubled up to `max_retry` per consecutive failure.
    pub retry: Duration,
    /// Longest wait between retries.
    pub max_retry: Duration,
    /// With a wake the core calls after every request (`engine::core::CoreBuilder::
    /// resync_notify`), the worker sleeps until a request, a retry or `idle_park` is due.
    /// Without one it looks at its ring every millisecond.
    pub wake: Option<SnapshotWake>,
    /// The longest a worker with a wake sleeps before it looks at its ring and the stop flag
    /// anyway (whoever sets the stop flag can [`SnapshotWake::wake`] it sooner).
    pub idle_park: Duration,
}

impl Default for SnapshotWorkerConfig {
    fn default() -> Self {
        SnapshotWorkerConfig {
            limit: 1000,
            retry: Duration::from_millis(100),
            max_retry: Duration::from_secs(5),
            wake: None,
            idle_park: Duration::from_millis(100),
        }
    }
}

/// How often a worker without a [`SnapshotWake`] looks at its ring.
const POLL: Duration = Duration::from_millis(1);

/// Wakes a sleeping [`run_snapshot_worker`]: the core calls [`wake`](Self::wake) after pushing
/// a request (`engine::core::CoreBuilder::resync_notify`). Waking a worker that is not asleep,
/// or one not started yet, costs two atomic operations; the system call (a futex wake) happens
/// only when the worker is parked, so at most once per request.
#[derive(Clone, Debug, Default)]
pub struct SnapshotWake(Arc<OnceLock<std::thread::Thread>>);

impl SnapshotWake {
    /// A wake with no worker yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the worker if it is asleep.
    pub fn wake(&self) {
        if let Some(t) = self.0.get() {
            t.unpark();
        }
    }

    /// Makes the calling thread the one [`wake`](Self::wake) wakes (the first caller wins).
    fn register_current(&self) {
        let _ = self.0.set(std::thread::current());
    }
}

/// Connection id under which snapshots are recorded (the WebSocket feeds use their own ids).
pub const REST_CONN_ID: u32 = 0;

/// Where [`run_snapshot_worker`] takes each venue's resyncs: a [`RestClient`] per
/// [`BookSync::RestSnapshot`] venue, and for [`BookSync::WsSnapshot`] venues the I/O loop's
/// command queue and each symbol's depth streams.
#[derive(Clone, Debug)]
pub struct ResyncRoutes {
    rest: [Option<RestClient>; Venue::COUNT],
    io: Option<IoCommandTx>,
    depth_streams: Vec<Vec<String>>,
    adapter_of: AdapterOf,
    resubscribe_gap: Duration,
}

impl Default for ResyncRoutes {
    fn default() -> Self {
        ResyncRoutes {
            rest: std::array::from_fn(|_| None),
            io: None,
            depth_streams: Vec::new(),
            adapter_of: crate::venue::adapter,
            resubscribe_gap: Duration::from_secs(1),
        }
    }
}

impl ResyncRoutes {
    /// No route yet: every request fails (and is retried) until one is given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binance spot snapshots from `client` (today's single-venue engine).
    pub fn binance(client: RestClient) -> Self {
        Self::new().rest(Venue::Binance, client)
    }

    /// `venue`'s REST snapshots from `client`.
    pub fn rest(mut self, venue: Venue, client: RestClient) -> Self {
        self.rest[venue.index()] = Some(client);
        self
    }

    /// Resubscriptions for the [`BookSync::WsSnapshot`] venues go to this I/O loop.
    pub fn io(mut self, io: IoCommandTx) -> Self {
        self.io = Some(io);
        self
    }

    /// The depth streams of `symbol`, resubscribed when its (WebSocket-snapshot) book resyncs.
    pub fn depth_streams(mut self, symbol: SymbolId, streams: Vec<String>) -> Self {
        let i = symbol.index();
        if self.depth_streams.len() <= i {
            self.depth_streams.resize(i + 1, Vec::new());
        }
        self.depth_streams[i] = streams;
        self
    }

    /// Finds the venues' adapters with `adapter_of` instead of [`crate::venue::adapter`].
    pub fn adapters(mut self, adapter_of: AdapterOf) -> Self {
        self.adapter_of = adapter_of;
        self
    }

    /// A symbol is resubscribed at most once per `gap` (later requests wait for it; default
    /// 1 s), so a venue that keeps breaking its sequence is not flooded with requests.
    pub fn resubscribe_gap(mut self, gap: Duration) -> Self {
        self.resubscribe_gap = gap;
        self
    }
}

/// What serving one resync request did.
enum Served {
    /// A snapshot was pushed to the core.
    Fetched,
    /// The symbol's depth streams were handed to the I/O loop to resubscribe.
    Resubscribed,
    /// The core (or the I/O loop) is gone: stop.
    Gone,
}

/// The worker's per-venue decoders (made on first use from the venues' adapters).
struct SnapshotDecoders {
    by_venue: [Option<AnyDecoder>; Venue::COUNT],
}

/// Serves the core's resync requests until `stop` is set, each by its symbol's venue (see the
/// [module docs](self)). Each snapshot body is recorded first if a recorder is given; `report`
/// hears every failure.
#[allow(clippy::too_many_arguments)]
pub fn run_snapshot_worker(
    routes: &ResyncRoutes,
    cfg: &SnapshotWorkerConfig,
    symbols: &SymbolTable,
    mut requests: rtrb::Consumer<SymbolId>,
    mut tx: EventTx,
    mut recorder: Option<RecorderTx>,
    stop: &AtomicBool,
    now: fn() -> u64,
    report: &mut dyn FnMut(&str),
) -> SnapshotStats {
    let mut stats = SnapshotStats::default();
    let mut decoders = SnapshotDecoders {
        by_venue: std::array::from_fn(|_| None),
    };
    let mut pending = vec![false; symbols.len()];
    let mut next_try = vec![Instant::now(); symbols.len()];
    let mut failures_in_row = vec![0u32; symbols.len()];
    let mut out: Vec<Event> = Vec::with_capacity(16_384);
    if let Some(w) = &cfg.wake {
        // Before the first look at the ring: a request pushed after that look wakes us.
        w.register_current();
    }
    while !stop.load(Ordering::Relaxed) {
        while let Ok(sym) = requests.pop() {
            stats.requests += 1;
            if let Some(p) = pending.get_mut(sym.index()) {
                *p = true;
            }
        }
        let mut worked = false;
        for i in 0..pending.len() {
            if !pending[i] || Instant::now() < next_try[i] {
                continue;
            }
            worked = true;
            let sym = SymbolId(i as u32);
            let mut job = Job {
                routes,
                cfg,
                symbols,
                decoders: &mut decoders,
                out: &mut out,
                recorder: &mut recorder,
                now,
                report,
            };
            match job.serve(sym) {
                Ok(Served::Gone) => return stats,
                Ok(served) => {
                    if let Served::Fetched = served {
                        if tx.push_all(&out).is_err() {
                            return stats;
                        }
                        stats.fetched += 1;
                    } else {
                        stats.resubscribed += 1;
                        next_try[i] = Instant::now() + routes.resubscribe_gap;
                    }
                    pending[i] = false;
                    failures_in_row[i] = 0;
                }
                Err(e) => {
                    stats.failures += 1;
                    failures_in_row[i] += 1;
                    let wait = cfg
                        .retry
                        .saturating_mul(1 << failures_in_row[i].min(16))
                        .min(cfg.max_retry);
                    next_try[i] = Instant::now() + wait;
                    report(&format!("resync failed (retrying in {wait:?}): {e}"));
                }
            }
        }
        if !worked {
            idle(cfg, &pending, &next_try);
        }
    }
    stats
}

/// Waits for the worker's next reason to look again: with a wake, until a request wakes it,
/// the earliest pending retry is due, or `idle_park` has passed; without one, [`POLL`].
fn idle(cfg: &SnapshotWorkerConfig, pending: &[bool], next_try: &[Instant]) {
    if cfg.wake.is_none() {
        std::thread::sleep(POLL);
        return;
    }
    let now = Instant::now();
    let due = pending
        .iter()
        .zip(next_try)
        .filter(|(p, _)| **p)
        .map(|(_, t)| t.saturating_duration_since(now))
        .min()
        .unwrap_or(cfg.idle_park);
    // `park_timeout` returns at once if a wake came since the last park, so a request pushed
    // between the look at the ring and here is not slept through.
    std::thread::park_timeout(due.min(cfg.idle_park));
}

/// One resync request being served, with what it needs of the worker.
struct Job<'a, 'r> {
    routes: &'a ResyncRoutes,
    cfg: &'a SnapshotWorkerConfig,
    symbols: &'a SymbolTable,
    decoders: &'a mut SnapshotDecoders,
    out: &'a mut Vec<Event>,
    recorder: &'a mut Option<RecorderTx>,
    now: fn() -> u64,
    report: &'a mut (dyn FnMut(&str) + 'r),
}

impl Job<'_, '_> {
    /// Serves `sym` by its venue's book-sync rule.
    fn serve(&mut self, sym: SymbolId) -> Result<Served, String> {
        let name = self.symbols.name(sym).unwrap_or("?");
        let venue = self.symbols.venue(sym).unwrap_or_default();
        let adapter = (self.routes.adapter_of)(venue)
            .ok_or_else(|| format!("{name}: venue {venue} has no adapter in this build"))?;
        match adapter.book_sync() {
            BookSync::RestSnapshot => self.fetch(sym, name, adapter),
            BookSync::WsSnapshot => self.resubscribe(sym, name, venue),
        }
    }

    /// Fetches, records and decodes `sym`'s REST snapshot into `out`.
    fn fetch(
        &mut self,
        sym: SymbolId,
        name: &str,
        adapter: &'static dyn Adapter,
    ) -> Result<Served, String> {
        let venue = adapter.venue();
        let client = self.routes.rest[venue.index()]
            .as_ref()
            .ok_or_else(|| format!("{name}: no REST URL for venue {venue}"))?;
        let body = client
            .venue_snapshot(adapter, name, self.cfg.limit)
            .map_err(|e| e.to_string())?;
        self.out.clear();
        let recv_ns = (self.now)();
        if let Some(r) = self.recorder.as_mut() {
            if !r.snapshot(recv_ns, REST_CONN_ID, name, &body) {
                (self.report)(&format!("recorder full: snapshot of {name} not recorded"));
            }
        }
        let decoder = self.decoders.by_venue[venue.index()]
            .get_or_insert_with(|| adapter.decoder(self.symbols.clone()));
        decoder
            .decode_snapshot(&body, sym, recv_ns, self.out)
            .map_err(|e| format!("snapshot of {name} ({venue}): {e}"))?;
        Ok(Served::Fetched)
    }

    /// Asks the I/O loop to resubscribe `sym`'s depth streams.
    fn resubscribe(&mut self, sym: SymbolId, name: &str, venue: Venue) -> Result<Served, String> {
        let streams = self
            .routes
            .depth_streams
            .get(sym.index())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{name} ({venue}): no depth stream to resubscribe"))?;
        let io = self
            .routes
            .io
            .as_ref()
            .ok_or_else(|| format!("{name} ({venue}): no I/O loop to resubscribe on"))?;
        match io.send(IoCommand::Resubscribe {
            venue,
            streams: streams.clone(),
        }) {
            Ok(()) => Ok(Served::Resubscribed),
            Err(IoCommandError::Stopped(_)) => Ok(Served::Gone),
            Err(e) => Err(format!("resubscribing {name} ({venue}): {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_exchange_info() {
        // Shape from Binance's spot API documentation (GET /api/v3/exchangeInfo), trimmed.
        let body = br#"{"timezone":"UTC","serverTime":1565246363776,"rateLimits":[],"exchangeFilters":[],
          "symbols":[{"symbol":"ETHBTC","status":"TRADING","baseAsset":"ETH","quoteAsset":"BTC",
            "filters":[{"filterType":"PRICE_FILTER","minPrice":"0.00000100","maxPrice":"100000.00000000","tickSize":"0.00000100"},
                       {"filterType":"LOT_SIZE","minQty":"0.00100000","maxQty":"100000.00000000","stepSize":"0.00100000"},
                       {"filterType":"NOTIONAL","minNotional":"0.00010000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5}]}]}"#;
        let v = parse_exchange_info(body).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].symbol, "ETHBTC");
        assert_eq!(v[0].rules.tick_size, Price(100));
        assert_eq!(v[0].rules.lot_size, Qty(100_000));
        assert_eq!(v[0].rules.min_notional, 10_000);
    }

    #[test]
    fn bad_exchange_info_is_an_error_naming_the_problem() {
        assert!(parse_exchange_info(b"{}").unwrap_err().contains("symbols"));
        let e = parse_exchange_info(br#"{"symbols":[{"symbol":"X","filters":[{"filterType":"PRICE_FILTER","tickSize":1}]}]}"#)
            .unwrap_err();
        assert!(e.contains("tickSize"), "{e}");
        assert!(parse_exchange_info(b"not json").is_err());
    }

    #[test]
    fn unreachable_venue_is_a_clear_error() {
        // Port 9 on loopback: nothing listens there in the test environment.
        let c = RestClient::new("http://127.0.0.1:9", Duration::from_secs(2));
        let e = c.depth_snapshot("btcusdt", 10).unwrap_err().to_string();
        assert!(
            e.contains("127.0.0.1:9/api/v3/depth?symbol=BTCUSDT&limit=10"),
            "{e}"
        );
    }

    /// A WebSocket-snapshot venue for the routing tests (OKX's book-sync rule).
    struct WsBooks;

    impl Adapter for WsBooks {
        fn venue(&self) -> Venue {
            Venue::Okx
        }
        fn ws_url(&self) -> &'static str {
            "ws://127.0.0.1:1"
        }
        fn rest_url(&self) -> Option<&'static str> {
            None
        }
        fn snapshot_url(&self, _: &str, _: &str, _: u32) -> Option<String> {
            None
        }
        fn stream(&self, _: crate::venue::StreamKind, s: &str) -> Option<String> {
            Some(format!("books:{s}"))
        }
        fn subscribe(&self, _: &[String], _: u64) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
        fn unsubscribe(&self, _: &[String], _: u64) -> Result<Vec<String>, String> {
            Ok(Vec::new())
        }
        fn heartbeat(&self) -> crate::venue::Heartbeat {
            crate::venue::Heartbeat::Text("ping")
        }
        fn book_sync(&self) -> BookSync {
            BookSync::WsSnapshot
        }
        fn decoder(&self, symbols: SymbolTable) -> AnyDecoder {
            crate::binance::market::BinanceDecoder::new(symbols).into()
        }
    }

    static WS_BOOKS: WsBooks = WsBooks;

    fn test_adapters(v: Venue) -> Option<&'static dyn Adapter> {
        match v {
            Venue::Okx => Some(&WS_BOOKS),
            v => crate::venue::adapter(v),
        }
    }

    fn mono() -> u64 {
        1
    }

    /// The next command the worker hands the I/O loop, looked for every millisecond until
    /// `deadline`.
    fn next_cmd(rx: &crate::io::IoCommandRx, deadline: Instant) -> Option<IoCommand> {
        loop {
            if let Some(c) = rx.try_recv() {
                return Some(c);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn resyncs_go_by_venue_a_websocket_snapshot_venue_is_resubscribed() {
        let mut symbols = SymbolTable::new();
        let btc = symbols.intern("BTCUSDT").unwrap();
        let okx = symbols.intern_on(Venue::Okx, "BTC-USDT").unwrap();
        let (cmd_tx, cmd_rx) = crate::io::command_channel(4);
        let routes = ResyncRoutes::new()
            .io(cmd_tx)
            .depth_streams(okx, vec!["books:BTC-USDT".into()])
            .adapters(test_adapters)
            .resubscribe_gap(Duration::from_secs(60));
        let (mut req_tx, req_rx) = rtrb::RingBuffer::new(8);
        let (ev_tx, _ev_rx) = engine::ring::event_ring(64, engine::ring::OnFull::Drop);
        let stop = AtomicBool::new(false);
        let cfg = SnapshotWorkerConfig {
            retry: Duration::from_secs(60),
            ..SnapshotWorkerConfig::default()
        };
        req_tx.push(okx).unwrap();
        req_tx.push(btc).unwrap();
        let mut failures = Vec::new();
        let (stats, cmd) = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                run_snapshot_worker(
                    &routes,
                    &cfg,
                    &symbols,
                    req_rx,
                    ev_tx,
                    None,
                    &stop,
                    mono,
                    &mut |m| failures.push(m.to_string()),
                )
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            let cmd = next_cmd(&cmd_rx, deadline);
            // A second request within the gap waits (here past the test's end).
            req_tx.push(okx).unwrap();
            while req_tx.slots() < 8 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(20));
            stop.store(true, Ordering::Relaxed);
            (worker.join().unwrap(), cmd)
        });
        assert_eq!(
            cmd,
            Some(IoCommand::Resubscribe {
                venue: Venue::Okx,
                streams: vec!["books:BTC-USDT".into()]
            })
        );
        assert_eq!(cmd_rx.try_recv(), None, "one resubscription within the gap");
        assert_eq!(
            (stats.requests, stats.resubscribed, stats.fetched),
            (3, 1, 0)
        );
        // Binance spot has no REST client in these routes: a failure naming what is missing.
        assert_eq!(stats.failures, 1);
        assert!(
            failures[0].contains("no REST URL for venue binance"),
            "{failures:?}"
        );
    }

    #[test]
    fn a_worker_with_a_wake_sleeps_until_a_request_or_the_stop_wakes_it() {
        let mut symbols = SymbolTable::new();
        let btc = symbols.intern_on(Venue::Okx, "BTC-USDT").unwrap();
        let eth = symbols.intern_on(Venue::Okx, "ETH-USDT").unwrap();
        let (cmd_tx, cmd_rx) = crate::io::command_channel(4);
        let routes = ResyncRoutes::new()
            .io(cmd_tx)
            .depth_streams(btc, vec!["books:BTC-USDT".into()])
            .depth_streams(eth, vec!["books:ETH-USDT".into()])
            .adapters(test_adapters);
        let (mut req_tx, req_rx) = rtrb::RingBuffer::new(8);
        let (ev_tx, _ev_rx) = engine::ring::event_ring(64, engine::ring::OnFull::Drop);
        let stop = AtomicBool::new(false);
        let wake = SnapshotWake::new();
        // Asleep for a minute unless woken: a step that finishes within the deadline was woken
        // (and a broken wake fails the test within about a minute).
        let cfg = SnapshotWorkerConfig {
            wake: Some(wake.clone()),
            idle_park: Duration::from_secs(60),
            ..SnapshotWorkerConfig::default()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let stats = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                run_snapshot_worker(
                    &routes,
                    &cfg,
                    &symbols,
                    req_rx,
                    ev_tx,
                    None,
                    &stop,
                    mono,
                    &mut |m| panic!("{m}"),
                )
            });
            // Stops the worker however this closure ends (a failed assertion too), so the scope's
            // join ends within one park.
            struct StopOnDrop<'a>(&'a AtomicBool, &'a SnapshotWake);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Relaxed);
                    self.1.wake();
                }
            }
            let stopper = StopOnDrop(&stop, &wake);
            for (sym, stream) in [(btc, "books:BTC-USDT"), (eth, "books:ETH-USDT")] {
                // Let the worker fall asleep with nothing to do, then ask as the core does.
                std::thread::sleep(Duration::from_millis(50));
                req_tx.push(sym).unwrap();
                wake.wake();
                assert_eq!(
                    next_cmd(&cmd_rx, deadline),
                    Some(IoCommand::Resubscribe {
                        venue: Venue::Okx,
                        streams: vec![stream.into()]
                    })
                );
            }
            std::thread::sleep(Duration::from_millis(50));
            drop(stopper);
            worker.join().unwrap()
        });
        assert_eq!((stats.requests, stats.resubscribed), (2, 2));
    }
}
