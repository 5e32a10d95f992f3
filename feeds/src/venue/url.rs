//! Which venue a URL belongs to, and which instrument a REST depth-snapshot URL asks for.
//!
//! Captures name their connections by URL (a `.tlc` [`Connect`](crate::capture::RecordKind::Connect)
//! record, cryptofeed's `<url> <-> <ts>` lines and v3 `connect` envelopes) and their REST
//! responses by request URL, so a replay picks each connection's decoder with [`venue_of_url`]
//! and attributes a REST depth body to its instrument with [`rest_snapshot_symbol`].
//!
//! | URL (host, path, query) | venue |
//! |---|---|
//! | `stream.binance.com`, `api.binance.com`, `www.binance.com`, `*.binance.vision` | [`Venue::Binance`] |
//! | `fstream.binance.com`, `fapi.binance.com` (and their testnet hosts `*.binancefuture.com`) | [`Venue::BinanceUsdm`] |
//! | `*.coinbase.com` (`ws-feed.pro.coinbase.com`, `ws-feed.exchange.coinbase.com`, `api.exchange.coinbase.com`, ...) | [`Venue::Coinbase`] |
//! | `*.okx.com` (`ws.okx.com`, `wsaws.okx.com`, `www.okx.com`) | [`Venue::Okx`] |
//! | `*.bybit.com` with path `/v5/public/spot` or query `category=spot` | [`Venue::BybitSpot`] |
//! | `*.bybit.com` with path `/v5/public/linear` or query `category=linear` | [`Venue::BybitLinear`] |
//!
//! Anything else (a simulator on `127.0.0.1`, Binance COIN-M `dstream`, Bybit inverse or option)
//! is `None`: the caller says which venue it is (`tickline replay --venue`).

use engine::venue::Venue;

/// The parts of a URL this module looks at: host (lower-cased by the caller's comparisons),
/// path, query.
struct Parts<'a> {
    host: &'a str,
    path: &'a str,
    query: &'a str,
}

fn split(url: &str) -> Parts<'_> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // user@host:port
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host.split_once(':').map_or(host, |(h, _)| h);
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    Parts { host, path, query }
}

/// True if `host` is `domain` or a subdomain of it (ASCII case-insensitive).
fn under(host: &str, domain: &str) -> bool {
    let (h, d) = (host.as_bytes(), domain.as_bytes());
    if h.len() < d.len() || !h[h.len() - d.len()..].eq_ignore_ascii_case(d) {
        return false;
    }
    h.len() == d.len() || h[h.len() - d.len() - 1] == b'.'
}

/// The value of query parameter `key` in `url` (not percent-decoded), if present.
pub fn query_param<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    split(url)
        .query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The venue a WebSocket or REST URL belongs to (see the [module docs](self) for the table),
/// or `None` when the URL does not say.
pub fn venue_of_url(url: &str) -> Option<Venue> {
    let p = split(url);
    let first_label = p.host.split('.').next().unwrap_or("");
    let label_is = |s: &str| first_label.eq_ignore_ascii_case(s);
    if under(p.host, "binance.com") || under(p.host, "binance.vision") {
        if label_is("fstream") || label_is("fapi") {
            return Some(Venue::BinanceUsdm);
        }
        if label_is("dstream") || label_is("dapi") {
            return None; // COIN-M futures: not a venue of this build
        }
        return Some(Venue::Binance);
    }
    if under(p.host, "binancefuture.com") {
        return Some(Venue::BinanceUsdm);
    }
    if under(p.host, "coinbase.com") {
        return Some(Venue::Coinbase);
    }
    if under(p.host, "okx.com") {
        return Some(Venue::Okx);
    }
    if under(p.host, "bybit.com") {
        let category = p
            .path
            .strip_prefix("/v5/public/")
            .or_else(|| query_param(url, "category"))?;
        return match category.trim_end_matches('/') {
            "spot" => Some(Venue::BybitSpot),
            "linear" => Some(Venue::BybitLinear),
            _ => None,
        };
    }
    None
}

/// For a REST depth-snapshot request URL of a known venue, the instrument it asks for (as the
/// venue spells it): Binance `/api/v*/depth?symbol=` and `/fapi/v1/depth?symbol=`, OKX
/// `/api/v5/market/books?instId=`, Bybit `/v5/market/orderbook?symbol=`, Coinbase
/// `/products/<ID>/book`. `None` for any other URL (an instruments list, say).
pub fn rest_snapshot_symbol(url: &str) -> Option<&str> {
    let p = split(url);
    let venue = venue_of_url(url)?;
    let sym = match venue {
        Venue::Binance | Venue::BinanceUsdm => p
            .path
            .ends_with("/depth")
            .then(|| query_param(url, "symbol"))??,
        Venue::Okx => p
            .path
            .ends_with("/market/books")
            .then(|| query_param(url, "instId"))??,
        Venue::BybitSpot | Venue::BybitLinear => p
            .path
            .ends_with("/market/orderbook")
            .then(|| query_param(url, "symbol"))??,
        Venue::Coinbase => {
            let id = p.path.strip_prefix("/products/")?;
            id.strip_suffix("/book")?
        }
    };
    (!sym.is_empty() && !sym.contains('/')).then_some(sym)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venues_of_the_captures_and_adapters() {
        let cases = [
            (
                "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms",
                Some(Venue::Binance),
            ),
            (
                "https://www.binance.com/api/v1/depth?symbol=DOTUSDT&limit=1000",
                Some(Venue::Binance),
            ),
            (
                "https://api.binance.com/api/v3/depth?symbol=BTCUSDT",
                Some(Venue::Binance),
            ),
            ("wss://data-stream.binance.vision/ws", Some(Venue::Binance)),
            (
                "wss://fstream.binance.com/stream?streams=btcusdt@depth@0ms",
                Some(Venue::BinanceUsdm),
            ),
            (
                "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT",
                Some(Venue::BinanceUsdm),
            ),
            ("wss://dstream.binance.com/ws", None),
            ("wss://ws-feed.pro.coinbase.com", Some(Venue::Coinbase)),
            ("wss://ws-feed.exchange.coinbase.com", Some(Venue::Coinbase)),
            ("wss://ws.okx.com:8443/ws/v5/public", Some(Venue::Okx)),
            (
                "wss://stream.bybit.com/v5/public/spot",
                Some(Venue::BybitSpot),
            ),
            (
                "wss://stream.bybit.com/v5/public/linear",
                Some(Venue::BybitLinear),
            ),
            ("wss://stream.bybit.com/v5/public/inverse", None),
            (
                "https://api.bybit.com/v5/market/instruments-info?&category=linear&status=Trading",
                Some(Venue::BybitLinear),
            ),
            (
                "https://api.bybit.com/v5/market/orderbook?category=spot&symbol=BTCUSDT",
                Some(Venue::BybitSpot),
            ),
            ("ws://127.0.0.1:9443/stream", None),
            ("wss://notokx.com/ws", None),
            ("wss://okx.com.evil.example/ws", None),
            ("", None),
            ("://", None),
        ];
        for (url, want) in cases {
            assert_eq!(venue_of_url(url), want, "{url}");
        }
    }

    #[test]
    fn snapshot_symbols() {
        let cases = [
            (
                "https://www.binance.com/api/v1/depth?symbol=DOTUSDT&limit=1000",
                Some("DOTUSDT"),
            ),
            (
                "https://fapi.binance.com/fapi/v1/depth?limit=1000&symbol=BTCUSDT",
                Some("BTCUSDT"),
            ),
            (
                "https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400",
                Some("BTC-USDT"),
            ),
            (
                "https://api.bybit.com/v5/market/orderbook?category=linear&symbol=BTCUSDT",
                Some("BTCUSDT"),
            ),
            (
                "https://api.exchange.coinbase.com/products/BTC-USD/book?level=2",
                Some("BTC-USD"),
            ),
            (
                "https://api.bybit.com/v5/market/instruments-info?&category=linear",
                None,
            ),
            ("https://www.binance.com/api/v1/depth?limit=1000", None),
            (
                "https://www.binance.com/api/v3/exchangeInfo?symbol=BTCUSDT",
                None,
            ),
            ("http://127.0.0.1/api/v3/depth?symbol=BTCUSDT", None),
        ];
        for (url, want) in cases {
            assert_eq!(rest_snapshot_symbol(url), want, "{url}");
        }
        assert_eq!(query_param("https://x/a?b=1&c=2#frag", "c"), Some("2"));
        assert_eq!(query_param("https://x/a", "c"), None);
    }
}
