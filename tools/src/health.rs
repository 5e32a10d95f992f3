//! Liveness and readiness probes over HTTP/1.1 (`[health] listen`), for a scheduler such as
//! Kubernetes: a small blocking server on its own thread (`health`), off the hot threads.
//!
//! - `GET /livez` (also `/healthz`): 200 while the core loop polls, i.e. its heartbeat
//!   ([`CoreStatus::last_poll_ns`], one relaxed store every 100 ms of the loop, with the status
//!   counters) is at most `live_max_ms` old; 503 otherwise (a stalled or ended core).
//! - `GET /readyz`: 200 when the core is live, every market-data feed is open, the book of
//!   every symbol that trades on a depth feed is synced (a trade-only or `bookTicker` symbol has
//!   no book to sync and is never a reason), the order API's user data stream is confirmed where
//!   orders are enabled, and the run is not stopping; 503 otherwise, naming every reason.
//!
//! Bodies are JSON always: `{"live":true,"last_poll_ms_ago":3}`,
//! `{"ready":false,"reasons":["feed 1 disconnected","BTCUSDT book not synced"]}`.
//!
//! The server reads only atomics the I/O and core threads already publish: a probe costs the
//! hot threads nothing. It serves one request per connection, one connection at a time: a
//! request head over [`MAX_REQUEST`] bytes is refused with 431, anything but `GET`/`HEAD` with
//! 405, an unknown path with 404, and a client that does not send its head within
//! [`REQUEST_DEADLINE`] is dropped; each refusal is counted ([`HealthStats`]).

use crate::clock::MonoClock;
use crate::runtime::{CoreStatus, BOOK_NOT_SYNCED};
use anyhow::{Context, Result};
use feeds::io::{IoShared, LinkState};
use feeds::orders::session::UserStream;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest request head accepted (request line and headers), bytes.
pub const MAX_REQUEST: usize = 4096;

/// A client must send its whole request head within this.
pub const REQUEST_DEADLINE: Duration = Duration::from_millis(500);

/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// What the probes read: the core's and the I/O thread's published state.
#[derive(Clone, Debug)]
pub struct HealthSources {
    /// The core's heartbeat and books.
    pub status: Arc<CoreStatus>,
    /// The market-data connections and the order session's user data stream.
    pub shared: Arc<IoShared>,
    /// Connection id of each slot of `shared`.
    pub feeds: Vec<u32>,
    /// Symbol names by table index (as in [`CoreStatus::books`]).
    pub symbols: Vec<String>,
    /// With live orders: whether a refused user data stream makes the run not ready
    /// (`orders.require_user_stream`). None: orders trade on paper.
    pub orders: Option<bool>,
    /// Live while the core's heartbeat is at most this old, ns.
    pub live_max_ns: u64,
    /// Set when the run is stopping (not ready from then on).
    pub stopping: Arc<AtomicBool>,
}

/// A liveness answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The core polled within `live_max_ms`.
    pub live: bool,
    /// Age of its last heartbeat, ms (None: it has not polled yet).
    pub last_poll_ms_ago: Option<u64>,
}

impl HealthSources {
    /// Whether the core loop is polling, at `now_ns` (monotonic).
    pub fn liveness(&self, now_ns: u64) -> Liveness {
        let last = self.status.last_poll_ns.load(Ordering::Relaxed);
        if last == 0 {
            return Liveness {
                live: false,
                last_poll_ms_ago: None,
            };
        }
        let age = now_ns.saturating_sub(last);
        Liveness {
            live: age <= self.live_max_ns,
            last_poll_ms_ago: Some(age / 1_000_000),
        }
    }

    /// Every reason the run is not ready at `now_ns`; empty when it is.
    pub fn not_ready(&self, now_ns: u64) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.stopping.load(Ordering::Relaxed) {
            reasons.push("stopping".to_string());
        }
        let l = self.liveness(now_ns);
        match l.last_poll_ms_ago {
            None => reasons.push("core not polling yet".to_string()),
            Some(ms) if !l.live => reasons.push(format!("core stalled (last poll {ms} ms ago)")),
            Some(_) => {}
        }
        for (i, conn_id) in self.feeds.iter().enumerate() {
            match self.shared.state(i) {
                Some(LinkState::Open) => {}
                Some(LinkState::Connecting) => reasons.push(format!("feed {conn_id} connecting")),
                _ => reasons.push(format!("feed {conn_id} disconnected")),
            }
        }
        for (cell, name) in self.status.books.iter().zip(&self.symbols) {
            if cell.load(Ordering::Relaxed) == BOOK_NOT_SYNCED {
                reasons.push(format!("{name} book not synced"));
            }
        }
        if let Some(require_user_stream) = self.orders {
            match self.shared.user_stream() {
                UserStream::Active => {}
                UserStream::Refused if !require_user_stream => {}
                UserStream::Refused => {
                    reasons.push("order API: user data stream refused".to_string())
                }
                UserStream::Pending => reasons.push("order API not logged on yet".to_string()),
                UserStream::Off => reasons.push("order API disconnected".to_string()),
            }
        }
        reasons
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct HealthStats {
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Requests refused: malformed, oversized, too slow, wrong method or unknown path.
    pub refused: AtomicU64,
}

/// The bound listening socket, before its thread starts.
#[derive(Debug)]
pub struct HealthServer {
    listener: TcpListener,
    stats: Arc<HealthStats>,
}

impl HealthServer {
    /// Binds `addr` (before the engine touches the venue, so a busy port fails the start).
    pub fn bind(addr: SocketAddr) -> Result<HealthServer> {
        let listener =
            TcpListener::bind(addr).with_context(|| format!("health.listen: binding {addr}"))?;
        listener
            .set_nonblocking(true)
            .context("health.listen: non-blocking accept")?;
        Ok(HealthServer {
            listener,
            stats: Arc::default(),
        })
    }

    /// The address it listens on (the port chosen when `listen` said port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("health.listen: local address")
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<HealthStats> {
        self.stats.clone()
    }

    /// Serves on a thread named `health` until `stop` is set.
    pub fn spawn(self, sources: HealthSources, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
        crate::threads::spawn_housekeeping("health", move || self.serve(&sources, &stop))
            .context("spawning the health thread")
    }

    fn serve(self, sources: &HealthSources, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((sock, _)) => {
                    let ok = handle(sock, sources);
                    self.stats.requests.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: counted, and the loop carries on after a pause.
                    tracing::warn!(target: "tickline::health", "accept failed: {e}");
                    self.stats.refused.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Live,
    Ready,
}

/// A refusal: status code and message.
type Refusal = (u16, &'static str);

/// Reads the request head (bounded in size and time) and picks the route.
fn parse(sock: &mut TcpStream) -> Result<(Route, bool), Refusal> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut buf = [0u8; MAX_REQUEST];
    let mut len = 0;
    let head_end = loop {
        if let Some(p) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if len == buf.len() {
            return Err((431, "request head too large"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            return Err((408, "request timeout"));
        }
        match sock.read(&mut buf[len..]) {
            Ok(0) => return Err((400, "incomplete request")),
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Err((408, "request timeout")),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| (400, "not UTF-8"))?;
    let line = head.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (Some(method), Some(target), Some(version), None) = (method, target, version, parts.next())
    else {
        return Err((400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err((400, "HTTP/1.x only"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "GET or HEAD only")),
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/livez" | "/healthz" => Ok((Route::Live, head_only)),
        "/readyz" => Ok((Route::Ready, head_only)),
        _ => Err((404, "not found: try /livez or /readyz")),
    }
}

/// Answers one connection; false if the request was refused.
fn handle(mut sock: TcpStream, sources: &HealthSources) -> bool {
    // The listener is non-blocking; the connection is served blocking, with timeouts.
    if sock.set_nonblocking(false).is_err() {
        return false;
    }
    let _ = sock.set_write_timeout(Some(REQUEST_DEADLINE));
    let _ = sock.set_nodelay(true);
    let (code, body, head_only, ok) = match parse(&mut sock) {
        Ok((route, head_only)) => {
            let now = MonoClock::now();
            let (code, body) = match route {
                Route::Live => {
                    let l = sources.liveness(now);
                    let body = serde_json::json!({
                        "live": l.live,
                        "last_poll_ms_ago": l.last_poll_ms_ago,
                    });
                    (if l.live { 200 } else { 503 }, body)
                }
                Route::Ready => {
                    let reasons = sources.not_ready(now);
                    let ready = reasons.is_empty();
                    let body = serde_json::json!({"ready": ready, "reasons": reasons});
                    (if ready { 200 } else { 503 }, body)
                }
            };
            (code, body, head_only, true)
        }
        Err((code, msg)) => (code, serde_json::json!({"error": msg}), false, false),
    };
    let body = body.to_string();
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(&body);
    }
    let _ = sock.write_all(out.as_bytes());
    let _ = sock.shutdown(std::net::Shutdown::Write);
    if !ok {
        drain(&mut sock);
    }
    ok
}

/// After refusing a request: reads (and drops) what the client still sends, bounded in bytes
/// and time, so closing does not reset the connection before the client has read the answer.
fn drain(sock: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_millis(200);
    let mut buf = [0u8; 4096];
    let mut left: usize = 64 << 10;
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() || sock.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::BOOK_SYNCED;

    fn sources(symbols: usize) -> HealthSources {
        HealthSources {
            status: Arc::new(CoreStatus::with_symbols(symbols)),
            shared: Arc::new(IoShared::new(1)),
            feeds: vec![1],
            symbols: (0..symbols).map(|i| format!("SYM{i}")).collect(),
            orders: None,
            live_max_ns: 1_000_000_000,
            stopping: Arc::default(),
        }
    }

    #[test]
    fn liveness_follows_the_heartbeat_age() {
        let s = sources(0);
        assert!(!s.liveness(5_000_000_000).live, "never polled");
        s.status
            .last_poll_ns
            .store(4_000_000_000, Ordering::Relaxed);
        let l = s.liveness(4_500_000_000);
        assert_eq!((l.live, l.last_poll_ms_ago), (true, Some(500)));
        let l = s.liveness(5_000_000_001);
        assert_eq!((l.live, l.last_poll_ms_ago), (false, Some(1000)));
    }

    #[test]
    fn readiness_names_each_reason_and_skips_symbols_without_a_book() {
        let s = sources(3);
        s.status.last_poll_ns.store(1, Ordering::Relaxed);
        s.status.books[0].store(BOOK_NOT_SYNCED, Ordering::Relaxed);
        s.status.books[1].store(BOOK_SYNCED, Ordering::Relaxed);
        // books[2]: not expected (trade-only): never a reason.
        let r = s.not_ready(2);
        assert_eq!(r, vec!["feed 1 disconnected", "SYM0 book not synced"]);
        s.stopping.store(true, Ordering::Relaxed);
        let r = s.not_ready(5_000_000_000);
        assert_eq!(r[0], "stopping");
        assert!(r[1].starts_with("core stalled"), "{r:?}");
        let mut s = sources(0);
        s.orders = Some(true);
        s.status.last_poll_ns.store(1, Ordering::Relaxed);
        assert!(s
            .not_ready(2)
            .contains(&"order API disconnected".to_string()));
    }
}
