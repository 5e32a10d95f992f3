//! What an I/O loop is told: its feeds, reconnect backoff, timeouts.

use crate::net::ConnOptions;
use engine::venue::Venue;
use std::time::Duration;

/// One feed connection. `FeedSpec { conn_id, url, subscribe, ..Default::default() }` is a
/// Binance spot feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedSpec {
    /// Id of the connection in events, records and notices.
    pub conn_id: u32,
    /// `ws://` or `wss://` URL (a combined-stream URL such as
    /// `wss://stream.binance.com:9443/stream?streams=btcusdt@trade` needs no subscription).
    pub url: String,
    /// Venue-native stream names (`btcusdt@trade`, OKX `trades:BTC-USDT`: see
    /// [`Adapter::stream`](crate::venue::Adapter::stream)) subscribed with the venue's
    /// [`Adapter::subscribe`](crate::venue::Adapter::subscribe) frames after the connection
    /// opens, and again after every reconnect; may be empty.
    pub subscribe: Vec<String>,
    /// The venue the connection speaks to: its adapter subscribes and heartbeats, its decoder
    /// decodes the frames. Default Binance spot.
    pub venue: Venue,
}

/// Reconnect backoff: `initial * factor^(n-1)` for the n-th consecutive attempt, capped at
/// `max`, then spread by `+-jitter` (a fraction) and capped at `max` again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first reconnect attempt.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Growth per consecutive failed attempt (at least 1).
    pub factor: f64,
    /// Random spread, a fraction in `0..=1`: the delay is scaled by a factor in
    /// `1 - jitter ..= 1 + jitter`.
    pub jitter: f64,
    /// Reconnect attempts in a row (without the backoff being reset by a stable connection)
    /// after which the connection is given up ([`IoNotice::GaveUp`](crate::io::IoNotice::GaveUp));
    /// `None` retries forever.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    /// 100 ms doubling up to 5 s, +-20 % jitter, retrying forever.
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.2,
            max_attempts: None,
        }
    }
}

/// Everything an [`IoLoop`](crate::io::IoLoop) needs besides its ring, decoder and recorder.
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// The connections; `IoShared` slot `i` is `feeds[i]`.
    pub feeds: Vec<FeedSpec>,
    /// Connection options (frame limits, TLS). Without a TLS config, a `wss://` feed gets one
    /// with the bundled web PKI roots.
    pub conn: ConnOptions,
    /// Reconnect backoff.
    pub reconnect: ReconnectPolicy,
    /// An open connection that delivers no frame (of any kind, pongs included) for this long is
    /// dead and is reconnected. Zero disables it. Default 10 s.
    pub idle_timeout: Duration,
    /// A heartbeat is sent this often on an open connection: a WebSocket ping, or the venue's
    /// text ping ([`Heartbeat`](crate::venue::Heartbeat): OKX wants one within 30 s, Bybit
    /// every 20 s). Zero disables it. Default 5 s.
    pub heartbeat: Duration,
    /// A connection not open (TCP, TLS and WebSocket handshakes) after this long has failed.
    /// Zero disables it. Default 10 s.
    pub connect_timeout: Duration,
    /// At stop, how long to wait for close handshakes before dropping the sockets. Default 250 ms.
    pub close_timeout: Duration,
    /// Busy-poll (`poll` with a zero timeout): the lowest latency, one core at 100 %.
    pub spin: bool,
    /// The backoff starts again from `initial` when a lost connection had delivered a data
    /// frame and had been open at least this long. Zero: any frame is enough. Default 1 s, so
    /// a server that sends a frame and hangs up at once is not hammered every `initial`.
    pub stable_after: Duration,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            feeds: Vec::new(),
            conn: ConnOptions::default(),
            reconnect: ReconnectPolicy::default(),
            idle_timeout: Duration::from_secs(10),
            heartbeat: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_millis(250),
            spin: false,
            stable_after: Duration::from_secs(1),
        }
    }
}

/// `d` in ns (saturating).
pub(super) fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
