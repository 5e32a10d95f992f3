//! Binance spot REST, off the hot path: depth snapshots and `exchangeInfo` over a blocking HTTP
//! client (ureq, rustls) on a side thread.
//!
//! The core asks for a snapshot by pushing a [`SymbolId`] into a small SPSC ring (see
//! `engine::core::CoreBuilder::resync_sink`); [`run_snapshot_worker`] fetches
//! `GET {base}/api/v3/depth?symbol=S&limit=N`, decodes it with the same [`BinanceDecoder`] the
//! feeds use, and pushes the snapshot's level events into its own ring to the core, where the
//! book bridges it with the diffs it buffered. A failed fetch is retried with backoff until it
//! succeeds or the engine stops; nothing is dropped silently.

use crate::binance::market::BinanceDecoder;
use crate::recorder::RecorderTx;
use engine::event::Event;
use engine::fixed::{parse_fixed, Price, Qty};
use engine::ring::EventTx;
use engine::strategy::SymbolRules;
use engine::symbol::{SymbolId, SymbolTable};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The body was not what Binance documents.
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

/// A blocking Binance REST client with a timeout.
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

    fn get(&self, path_and_query: &str) -> Result<Vec<u8>, RestError> {
        let url = format!("{}{}", self.base, path_and_query);
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

    /// The REST depth snapshot body of `symbol` (`limit` levels a side).
    pub fn depth_snapshot(&self, symbol: &str, limit: u32) -> Result<Vec<u8>, RestError> {
        self.get(&format!(
            "/api/v3/depth?symbol={}&limit={limit}",
            symbol.to_ascii_uppercase()
        ))
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
    /// Fetches or decodes that failed (each retried).
    pub failures: u64,
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
}

impl Default for SnapshotWorkerConfig {
    fn default() -> Self {
        SnapshotWorkerConfig {
            limit: 1000,
            retry: Duration::from_millis(100),
            max_retry: Duration::from_secs(5),
        }
    }
}

/// Connection id under which snapshots are recorded (the WebSocket feeds use their own ids).
pub const REST_CONN_ID: u32 = 0;

/// Serves the core's snapshot requests until `stop` is set. Each snapshot body is recorded
/// first if a recorder is given; `report` hears every failure.
#[allow(clippy::too_many_arguments)]
pub fn run_snapshot_worker(
    client: &RestClient,
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
    let mut decoder = BinanceDecoder::new(symbols.clone());
    let mut pending = vec![false; symbols.len()];
    let mut next_try = vec![Instant::now(); symbols.len()];
    let mut failures_in_row = vec![0u32; symbols.len()];
    let mut out: Vec<Event> = Vec::with_capacity(16_384);
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
            let name = symbols.name(sym).unwrap_or("?").to_string();
            let result = client
                .depth_snapshot(&name, cfg.limit)
                .map_err(|e| e.to_string())
                .and_then(|body| {
                    out.clear();
                    let recv_ns = now();
                    if let Some(r) = recorder.as_mut() {
                        if !r.snapshot(recv_ns, REST_CONN_ID, &name, &body) {
                            report(&format!("recorder full: snapshot of {name} not recorded"));
                        }
                    }
                    decoder
                        .decode_snapshot(&body, sym, recv_ns, &mut out)
                        .map_err(|e| format!("snapshot of {name}: {e}"))
                });
            match result {
                Ok(_) => {
                    if tx.push_all(&out).is_err() {
                        return stats;
                    }
                    stats.fetched += 1;
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
                    report(&format!(
                        "snapshot fetch failed (retrying in {wait:?}): {e}"
                    ));
                }
            }
        }
        if !worked {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stats
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
}
