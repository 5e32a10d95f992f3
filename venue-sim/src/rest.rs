//! The REST side: a minimal HTTP/1.1 server (one thread per connection, keep-alive,
//! `Content-Length` bodies) answering `GET /api/v3/depth`, `GET /api/v3/exchangeInfo`,
//! `GET /api/v3/ping` and `GET /api/v3/time` as Binance spot does, with Binance-style JSON
//! errors (`{"code":-1121,"msg":"Invalid symbol."}`) for anything else.

use super::hub::{Hub, C};
use engine::book::Level;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Idle keep-alive connections are closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line and headers).
const MAX_HEAD: usize = 16 << 10;
/// Largest request body (GET requests have none; it is read and ignored).
const MAX_BODY: usize = 64 << 10;
/// Binance's `limit` range for the depth endpoint; larger values are truncated to it.
const MAX_DEPTH_LIMIT: usize = 5000;
const DEFAULT_DEPTH_LIMIT: usize = 100;

/// Tick size, step size and minimum notional of every simulated symbol, as Binance writes them.
const TICK_SIZE: &str = "0.01000000";
const STEP_SIZE: &str = "0.00001000";
/// [`TICK_SIZE`] in 1e-8 units (the order API enforces it as Binance's `PRICE_FILTER`).
pub(crate) const TICK_UNITS: i64 = 1_000_000;

const MIN_NOTIONAL: &str = "5.00000000";

/// Serves one HTTP connection until it closes, errs, idles out, or asks to close.
pub(crate) fn serve(hub: Arc<Hub>, mut sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let _ = sock.set_read_timeout(Some(IDLE_TIMEOUT));
    let _ = sock.set_write_timeout(Some(IDLE_TIMEOUT));
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        if hub.stopping() {
            break;
        }
        let head_end = match read_head(&mut sock, &mut buf) {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(Bad) => {
                hub.count(C::RestRequests, 1);
                hub.count(C::RestErrors, 1);
                let body = error_body(-1100, "Malformed HTTP request.");
                let _ = write_response(&mut sock, 400, &body, false);
                break;
            }
        };
        hub.count(C::RestRequests, 1);
        let req = match parse_head(&buf[..head_end]) {
            Some(r) => r,
            None => {
                hub.count(C::RestErrors, 1);
                let body = error_body(-1100, "Malformed HTTP request.");
                let _ = write_response(&mut sock, 400, &body, false);
                break;
            }
        };
        let body_len = req.content_length;
        if body_len > MAX_BODY {
            hub.count(C::RestErrors, 1);
            let body = error_body(-1100, "Request body too large.");
            let _ = write_response(&mut sock, 400, &body, false);
            break;
        }
        // Skip the body (GET requests carry none).
        let have = buf.len() - head_end;
        if have < body_len {
            let mut rest = vec![0u8; body_len - have];
            if sock.read_exact(&mut rest).is_err() {
                break;
            }
            buf.clear();
        } else {
            buf.drain(..head_end + body_len);
        }
        let (status, body) = route(&hub, &req.method, &req.target);
        if status != 200 {
            hub.count(C::RestErrors, 1);
        }
        if write_response(&mut sock, status, &body, req.keep_alive).is_err() || !req.keep_alive {
            break;
        }
    }
    let _ = sock.shutdown(Shutdown::Both);
}

/// A request the server cannot parse.
struct Bad;

/// Reads until `buf` holds a whole request head; `Ok(None)` on a clean close or timeout
/// between requests.
fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<usize>, Bad> {
    let mut scanned: usize = 0;
    loop {
        if let Some(i) = find(&buf[scanned.saturating_sub(3)..], b"\r\n\r\n") {
            return Ok(Some(scanned.saturating_sub(3) + i + 4));
        }
        scanned = buf.len();
        if buf.len() > MAX_HEAD {
            return Err(Bad);
        }
        let mut chunk = [0u8; 4096];
        match sock.read(&mut chunk) {
            Ok(0) => return if buf.is_empty() { Ok(None) } else { Err(Bad) },
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(None),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    content_length: usize,
    keep_alive: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return None; // no chunked request bodies here
        }
    }
    Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        content_length,
        keep_alive,
    })
}

fn write_response(
    sock: &mut TcpStream,
    status: u16,
    body: &str,
    keep_alive: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut out = String::with_capacity(body.len() + 160);
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if keep_alive { "" } else { "Connection: close\r\n" }
    );
    out.push_str(body);
    sock.write_all(out.as_bytes())?;
    sock.flush()
}

fn error_body(code: i64, msg: &str) -> String {
    format!(
        "{{\"code\":{code},\"msg\":{}}}",
        serde_json::to_string(msg).unwrap_or_else(|_| "\"\"".into())
    )
}

/// Answers one request: status and JSON body.
pub(crate) fn route(hub: &Hub, method: &str, target: &str) -> (u16, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // USD-M futures' endpoints (`/fapi/v1/..`) answer as spot's; their depth adds `E` and `T`.
    let mapped: String;
    let (path, futures) = match path.strip_prefix("/fapi/v1/") {
        Some(rest) => {
            mapped = format!("/api/v3/{rest}");
            (mapped.as_str(), true)
        }
        None => (path, false),
    };
    let known = matches!(
        path,
        "/api/v3/depth" | "/api/v3/exchangeInfo" | "/api/v3/ping" | "/api/v3/time"
    );
    if !known {
        return (404, error_body(-1, &format!("Unknown endpoint {path}.")));
    }
    if method != "GET" {
        return (
            400,
            error_body(-1, &format!("Unsupported method {method} for {path}.")),
        );
    }
    let params = query_pairs(query);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match path {
        "/api/v3/ping" => (200, "{}".into()),
        "/api/v3/time" => (200, format!("{{\"serverTime\":{}}}", now_ms())),
        "/api/v3/depth" => depth(hub, param("symbol"), param("limit"), futures),
        _ => exchange_info(hub, param("symbol"), param("symbols")),
    }
}

fn depth(hub: &Hub, symbol: Option<&str>, limit: Option<&str>, futures: bool) -> (u16, String) {
    let Some(symbol) = symbol.filter(|s| !s.is_empty()) else {
        return (400, missing_param("symbol"));
    };
    let Some(id) = hub.symbols().lookup(symbol.as_bytes()) else {
        return (400, error_body(-1121, "Invalid symbol."));
    };
    let limit =
        match limit {
            None => DEFAULT_DEPTH_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if n >= 1 => n.min(MAX_DEPTH_LIMIT),
                _ => return (
                    400,
                    error_body(
                        -1100,
                        "Illegal characters found in parameter 'limit'; legal range is '1-5000'.",
                    ),
                ),
            },
        };
    let (last_id, bids, asks) = {
        let books = hub.lock_books();
        let Some(book) = books.get(id.index()) else {
            return (400, error_body(-1121, "Invalid symbol."));
        };
        if !book.is_synced() {
            return (
                503,
                error_body(
                    -1001,
                    "Internal error; unable to process your request. Please try again. \
                     (the simulator's book is not synced yet)",
                ),
            );
        }
        let bids: Vec<Level> = book.bids().take(limit).collect();
        let asks: Vec<Level> = book.asks().take(limit).collect();
        (book.last_update_id(), bids, asks)
    };
    let mut out = String::with_capacity(64 + (bids.len() + asks.len()) * 36);
    let _ = write!(out, "{{\"lastUpdateId\":{last_id},");
    if futures {
        let now = now_ms();
        let _ = write!(out, "\"E\":{now},\"T\":{now},");
    }
    out.push_str("\"bids\":");
    push_levels(&mut out, &bids);
    out.push_str(",\"asks\":");
    push_levels(&mut out, &asks);
    out.push('}');
    (200, out)
}

fn push_levels(out: &mut String, levels: &[Level]) {
    out.push('[');
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("[\"");
        push_fixed8(out, l.price.0);
        out.push_str("\",\"");
        push_fixed8(out, l.qty.0);
        out.push_str("\"]");
    }
    out.push(']');
}

/// 1e-8 units with eight decimals, as Binance writes prices and quantities.
fn push_fixed8(out: &mut String, units: i64) {
    if units < 0 {
        out.push('-');
    }
    let u = units.unsigned_abs();
    let _ = write!(out, "{}.{:08}", u / 100_000_000, u % 100_000_000);
}

fn missing_param(name: &str) -> String {
    error_body(
        -1102,
        &format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
    )
}

fn exchange_info(hub: &Hub, symbol: Option<&str>, symbols: Option<&str>) -> (u16, String) {
    let wanted: Vec<String> = match (symbol, symbols) {
        (Some(_), Some(_)) => {
            return (
                400,
                error_body(
                    -1106,
                    "Parameter 'symbols' sent when not required (use 'symbol' or 'symbols').",
                ),
            )
        }
        (Some(s), None) => vec![s.to_string()],
        (None, Some(list)) => match serde_json::from_str::<Vec<String>>(list) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                return (
                    400,
                    error_body(-1100, "Illegal characters found in parameter 'symbols'."),
                )
            }
        },
        (None, None) => hub.symbols().iter().map(|(_, n)| n.to_string()).collect(),
    };
    let mut entries = Vec::with_capacity(wanted.len());
    for w in &wanted {
        let Some(id) = hub.symbols().lookup(w.as_bytes()) else {
            return (400, error_body(-1121, "Invalid symbol."));
        };
        let name = hub.symbols().name(id).unwrap_or_default();
        entries.push(symbol_info(name));
    }
    let body = format!(
        "{{\"timezone\":\"UTC\",\"serverTime\":{},\"rateLimits\":[],\"exchangeFilters\":[],\"symbols\":[{}]}}",
        now_ms(),
        entries.join(",")
    );
    (200, body)
}

/// Base and quote assets of a symbol: the longest known quote suffix, else half and half.
fn split_assets(symbol: &str) -> (&str, &str) {
    const QUOTES: [&str; 12] = [
        "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY",
    ];
    for q in QUOTES {
        if let Some(base) = symbol.strip_suffix(q) {
            if !base.is_empty() {
                return (base, q);
            }
        }
    }
    let mid = symbol.len() / 2;
    symbol.split_at(mid)
}

fn symbol_info(symbol: &str) -> String {
    let (base, quote) = split_assets(symbol);
    format!(
        concat!(
            "{{\"symbol\":\"{s}\",\"status\":\"TRADING\",\"baseAsset\":\"{b}\",\"baseAssetPrecision\":8,",
            "\"quoteAsset\":\"{q}\",\"quotePrecision\":8,\"quoteAssetPrecision\":8,",
            "\"baseCommissionPrecision\":8,\"quoteCommissionPrecision\":8,",
            "\"orderTypes\":[\"LIMIT\",\"LIMIT_MAKER\",\"MARKET\",\"STOP_LOSS_LIMIT\",\"TAKE_PROFIT_LIMIT\"],",
            "\"icebergAllowed\":true,\"ocoAllowed\":true,\"otoAllowed\":true,",
            "\"quoteOrderQtyMarketAllowed\":true,\"allowTrailingStop\":true,\"cancelReplaceAllowed\":true,",
            "\"isSpotTradingAllowed\":true,\"isMarginTradingAllowed\":false,",
            "\"filters\":[",
            "{{\"filterType\":\"PRICE_FILTER\",\"minPrice\":\"{tick}\",\"maxPrice\":\"1000000.00000000\",\"tickSize\":\"{tick}\"}},",
            "{{\"filterType\":\"LOT_SIZE\",\"minQty\":\"{step}\",\"maxQty\":\"9000.00000000\",\"stepSize\":\"{step}\"}},",
            "{{\"filterType\":\"NOTIONAL\",\"minNotional\":\"{notional}\",\"applyMinToMarket\":true,",
            "\"maxNotional\":\"9000000.00000000\",\"applyMaxToMarket\":false,\"avgPriceMins\":5}}",
            "],\"permissions\":[],\"permissionSets\":[[\"SPOT\"]],",
            "\"defaultSelfTradePreventionMode\":\"EXPIRE_MAKER\",",
            "\"allowedSelfTradePreventionModes\":[\"EXPIRE_TAKER\",\"EXPIRE_MAKER\",\"EXPIRE_BOTH\"]}}"
        ),
        s = symbol,
        b = base,
        q = quote,
        tick = TICK_SIZE,
        step = STEP_SIZE,
        notional = MIN_NOTIONAL,
    )
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// `a=1&b=x%2Fy` as decoded pairs (`+` is a space).
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; malformed escapes are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("btcusdt%40trade"), "btcusdt@trade");
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(
            query_pairs("symbol=BTCUSDT&limit=5&&x"),
            vec![
                ("symbol".to_string(), "BTCUSDT".to_string()),
                ("limit".to_string(), "5".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn heads() {
        let h = parse_head(
            b"GET /api/v3/depth?symbol=X HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((h.method.as_str(), h.keep_alive), ("GET", true));
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
        assert!(!h.keep_alive);
        assert!(parse_head(b"GET / SPDY\r\n\r\n").is_none());
        assert!(parse_head(b"GET\r\n\r\n").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").is_none());
    }

    #[test]
    fn fixed_and_assets() {
        let mut s = String::new();
        push_fixed8(&mut s, 6_183_763_000_000);
        s.push(' ');
        push_fixed8(&mut s, 1);
        assert_eq!(s, "61837.63000000 0.00000001");
        assert_eq!(split_assets("BTCUSDT"), ("BTC", "USDT"));
        assert_eq!(split_assets("ETHBTC"), ("ETH", "BTC"));
        assert_eq!(split_assets("A1B2"), ("A1", "B2"));
        let v: serde_json::Value = serde_json::from_str(&symbol_info("BTCUSDT")).unwrap();
        assert_eq!(v["filters"][0]["tickSize"], "0.01000000");
    }
}
